// One run of one stage: its module is started in a worker process (through the executor:
// a local process, a batch job, …) in a private directory of the cache, over read-only views
// of its upstream runs; its outputs are then committed to the cache under its key. A
// `--force` rerun of a cached key must give the same bits (the determinism check).
import { dirname, join, resolve } from "node:path";
import { type KeyParts, listFiles, type RunEntry } from "../store/cache.ts";
import { checkCheckpoints, sealWhileRunning } from "./checkpoints.ts";
import { LocalExecutor } from "../executors/local.ts";
import { DiskFull, isDiskFull } from "./faults.ts";
import { type Node, readFiles } from "./graph.ts";
import { canonicalJson, hashFile, sha256 } from "../store/hash.ts";
import { provenance } from "./publish.ts";
import { PipelineError } from "../types.ts";
import { NOT_RUN } from "./keys.ts";
import { compareUpTo, describeDifference, type Difference, firstDifference } from "./verify.ts";
import { RESULT_RESERVE, type WorkerConfig } from "../executors/worker.ts";
import type { Workspace } from "./workspace.ts";

/** A stage's upstream runs: upstream node → its run entry. */
export type Upstream = Array<readonly [string, RunEntry]>;

/**
 * Run a stage in a worker process and commit its outputs. With `expect` (a `--force` rerun
 * of a cached key), outputs that differ from the cached run are a determinism bug: refused,
 * named, and the cache keeps the run it had; the same bytes keep the cached run's record.
 */
export async function execute(
  ws: Workspace,
  node: Node,
  key: string,
  parts: KeyParts,
  upstream: Upstream,
  jobs: number,
  expect?: RunEntry,
): Promise<RunEntry> {
  const tmp = await ws.store.makeTmp(key);
  try {
    const checkpointDir = ws.store.checkpointDir(key);
    const run = await launch(ws, node, parts, upstream, jobs, tmp, {
      checkpointDir,
      memoDir: join(ws.store.dir, "memo"),
      lockKey: key,
    });
    let same: RunEntry | undefined;
    if (expect) {
      // A thin run's absent files are known by hash only.
      const absent = new Set(expect.absent ?? []);
      let d: Difference | undefined;
      for (const rel of absent) {
        const actual = await hashFile(join(run.outDir, rel)).catch(() => "missing");
        const recorded = expect.outputs[rel].hash;
        if (actual !== recorded) d ??= { file: rel, where: "sha256", cached: recorded, rerun: actual };
      }
      const files = Object.keys(expect.outputs).filter((rel) => !absent.has(rel));
      const differs = (steps?: number) =>
        firstDifference(ws.store.treeDir(expect.key), files, run.outDir, steps, [...absent]);
      d ??= await differs(compareUpTo(expect));
      if (d) {
        throw new PipelineError(
          `${node.name}: NOT DETERMINISTIC — rerunning the cached key ${key.slice(0, 12)}… gave other outputs: ` +
            describeDifference(d),
          "this is a bug in the stage or its kernels (same code, parameters and inputs must give the same bits); " +
            "the cache keeps the earlier run",
        );
      }
      // Every byte of the cached run (an accept carry-over, compared on its curve, may hold older code's
      // bytes): the rerun is that run again and keeps its record (host, timings), so nothing that reads
      // records changes and the remotes' copy of the run stays the run.
      if (compareUpTo(expect) === undefined || !(await differs())) same = expect;
    }
    const { metrics, record, startedAt, wallSeconds } = same ?? run;
    const entry = await publishing(ws, node, tmp, () =>
      ws.store.commit(run.outDir, {
        key,
        stage: node.name,
        params: parts.params,
        inputs: parts.inputs,
        code: parts.code,
        external: parts.external,
        deno: parts.deno,
        metrics,
        record,
        startedAt,
        wallSeconds,
      }));
    await Deno.remove(checkpointDir, { recursive: true }).catch(() => {});
    return entry;
  } catch (e) {
    if (!(e instanceof PipelineError) && isDiskFull(e)) {
      let bytes = 0; // what the outputs need in the cache
      for (const rel of await listFiles(tmp).catch(() => [])) bytes += (await Deno.stat(join(tmp, rel))).size;
      throw new DiskFull(ws.store.dir, bytes || undefined);
    }
    throw e;
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

/**
 * Committing a finished run: a full disk is one line naming the stage and the file being written
 * (the run entry, an object, the stat cache), with what the outputs need.
 */
async function publishing<T>(ws: Workspace, node: Node, tmp: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (!isDiskFull(e)) throw e;
    let bytes = 0;
    for (const rel of await listFiles(tmp).catch(() => [])) bytes += (await Deno.stat(join(tmp, rel))).size;
    const said = [...String((e as Error)?.message).matchAll(/'([^']+)'/g)].at(-1)?.[1]; // what the OS names
    const path = e instanceof DiskFull ? e.path : said?.replace(/\.\d+\.[0-9a-f]{8}\.tmp$/, "") ?? ws.store.dir;
    const full = new DiskFull(path, bytes || undefined);
    full.message = `${node.name}: ${
      full.message.replace(/^disk full writing/, "disk full publishing its run, writing")
    }`;
    throw full;
  }
}

/**
 * Run a stage's module in a worker process, writing into tmp/out; its metrics and record, or its error.
 * `where.lockKey`: the key whose lock names the worker (unset for a verify rerun, which holds no lock).
 */
export async function launch(
  ws: Workspace,
  node: Node,
  parts: KeyParts,
  upstream: Upstream,
  jobs: number,
  tmp: string,
  where: { checkpointDir: string; memoDir: string; stopAfterSteps?: number; lockKey?: string },
) {
  const outDir = join(tmp, "out");
  await Deno.mkdir(outDir);
  const inputs: Record<string, string> = {};
  for (const [dep, entry] of upstream) {
    const files = readFiles(node, dep, entry).filter((f) => f in entry.outputs); // an older run may lack one
    inputs[dep] = await inputView(ws, join(tmp, "inputs", dep), entry, files);
  }
  await Deno.mkdir(where.checkpointDir, { recursive: true });
  // Resume only from checkpoints whose manifests are as written (see checkpoints.ts).
  await checkCheckpoints(where.checkpointDir, (line) => ws.log(`✗ ${node.name}: ${line}`));
  await Deno.mkdir(where.memoDir, { recursive: true });
  const config: WorkerConfig = {
    module: resolve(ws.root, node.def.module),
    stage: node.name,
    params: node.params,
    inputs,
    outDir,
    checkpointDir: where.checkpointDir,
    root: ws.root,
    jobs,
    memoDir: where.memoDir,
    memoSalt: sha256(canonicalJson(parts.code)),
    resultFile: join(tmp, "result.json"),
    stopAfterSteps: where.stopAfterSteps,
    notRun: Object.keys(parts.inputs).filter((d) => parts.inputs[d] === NOT_RUN),
  };
  await Deno.writeTextFile(join(tmp, "worker.json"), JSON.stringify(config));
  await Deno.writeTextFile(config.resultFile, " ".repeat(RESULT_RESERVE)); // see writeResult in worker.ts
  const started = new Date();
  const t0 = performance.now();
  const sealer = sealWhileRunning(where.checkpointDir);
  const status = await (ws.executor ?? new LocalExecutor()).run({
    stage: node.name,
    key: where.lockKey ?? `verify-${parts.stage}`,
    configFile: join(tmp, "worker.json"),
    root: ws.root,
    jobs,
    resources: node.def.resources,
    taskResources: node.def.taskResources,
    logDir: join(ws.store.dir, "logs"),
  }, (worker) => where.lockKey ? ws.store.lockWorker(where.lockKey, worker) : Promise.resolve())
    .finally(() => sealer.stop());
  const wallSeconds = (performance.now() - t0) / 1000;
  let result: {
    ok: boolean;
    metrics?: Record<string, unknown>;
    record?: Record<string, unknown>;
    what?: string;
    fix?: string;
  };
  // The executor ended it (time limit, memory, cancel): one line with job id, state, log. It stands
  // even over a result the worker wrote: a worker stopped at its limit may have written one.
  if (status.error) throw status.error;
  try {
    result = JSON.parse(await Deno.readTextFile(config.resultFile));
  } catch {
    result = {
      ok: false,
      what: `stage ${node.name} ended without a result (exit ${status.code}${
        status.signal ? `, ${status.signal}` : ""
      })`,
      fix: "see its output above; rerun to resume from its last checkpoint",
    };
  }
  if (!result.ok) throw new PipelineError(result.what!, result.fix!);
  if (where.stopAfterSteps === undefined) {
    for (const out of node.def.outputs) {
      if (!(await exists(join(outDir, out)))) {
        throw new PipelineError(
          `stage ${node.name} did not write its declared output ${out}`,
          `write it into ctx.outDir, or fix the outputs of ${node.def.name} in the pipeline declaration`,
        );
      }
    }
  }
  return {
    outDir,
    metrics: result.metrics ?? {},
    record: { ...result.record, stageSeconds: wallSeconds },
    startedAt: started.toISOString(),
    wallSeconds,
  };
}

/** A stage's key locked across processes, saying so while another reproduce builds it. */
export function lockStage(ws: Workspace, name: string, key: string) {
  return ws.store.lock(key, (who) => ws.log(`… ${name}: waiting for another reproduce (${who}) that is building it`));
}

/**
 * A read-only view of an upstream run: symlinks to the files the stage reads (StageDef.reads)
 * plus _provenance.json. A file it does not declare is not there, so reading it fails (and the
 * worker names the missing declaration); a declared one must be whole (see thin.ts).
 */
async function inputView(ws: Workspace, dir: string, entry: RunEntry, files: string[]): Promise<string> {
  const absent = files.filter((rel) => entry.absent?.includes(rel));
  if (absent.length) {
    throw new PipelineError(
      `${entry.stage}'s ${absent.join(", ")} is not in the cache (a thin run), and a stage reads it`,
      `run \`deno task reproduce ${entry.stage} --whole\` (rebuilds it, or fetches it from a remote that has it)`,
    );
  }
  for (const rel of files) {
    await Deno.mkdir(dirname(join(dir, rel)), { recursive: true });
    await Deno.symlink(join(ws.store.treeDir(entry.key), rel), join(dir, rel));
  }
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(join(dir, "_provenance.json"), JSON.stringify(provenance(entry), null, 2));
  return dir;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}
