// Runs one stage in its own process: imports the stage module, gives it a
// StageContext, writes its metrics (or its one-line error) next to outDir.
// Separate processes let independent stages use separate cores.
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { listFiles } from "../store/cache.ts";
import { DiskFull, isDiskFull, knownFault } from "../engine/faults.ts";
import { canonicalJson, sha256, writeFileAtomic } from "../store/hash.ts";
import { dieWithParent } from "./lifeline.ts";
import { hostFacts } from "../engine/host.ts";
import { limiter, runTask } from "./tasks.ts";
import { ProgressLine } from "../terminal/progress.ts";
import { maskConsole } from "../terminal/style.ts";
import { PipelineError, type StageContext } from "../types.ts";

export interface WorkerConfig {
  module: string;
  stage: string;
  params: StageContext["params"];
  inputs: Record<string, string>;
  outDir: string;
  checkpointDir: string;
  root: string;
  jobs: number;
  memoDir: string;
  /** Hash of the stage's code: memo entries are reused across parameter changes, not code changes. */
  memoSalt: string;
  resultFile: string;
  /** `--verify-steps`: a training stage stops after this many steps. */
  stopAfterSteps?: number;
  /** Upstream nodes a `--partial` run goes without. */
  notRun?: string[];
}

export async function runWorker(config: WorkerConfig): Promise<void> {
  const progress = new ProgressLine(config.stage);
  const record: Record<string, unknown> = {};
  const limit = limiter(config.jobs);
  const ctx: StageContext = {
    stage: config.stage,
    params: config.params,
    inputs: config.inputs,
    notRun: config.notRun ?? [],
    outDir: config.outDir,
    checkpointDir: config.checkpointDir,
    root: config.root,
    jobs: config.jobs,
    stopAfterSteps: config.stopAfterSteps,
    progress: (p) => progress.update(p),
    log: (m) => progress.log(m),
    record: (facts) => Object.assign(record, facts),
    task: (module, fn, arg) => limit(() => runTask(module, fn, arg, config.jobs)),
    async memo<T>(key: unknown, fn: () => Promise<T>): Promise<T> {
      const file = join(config.memoDir, `${sha256(config.memoSalt + canonicalJson(key))}.json`);
      try {
        return JSON.parse(await Deno.readTextFile(file)).value as T;
      } catch {
        const value = await fn();
        await writeFileAtomic(file, JSON.stringify({ key, value }));
        return value;
      }
    },
  };
  const mod = await import(pathToFileURL(config.module).href);
  if (typeof mod.run !== "function") {
    throw new PipelineError(
      `${config.module} does not export run(ctx)`,
      "export async function run(ctx) from the stage module",
    );
  }
  const metrics = (await mod.run(ctx)) ?? {};
  // Where it ran: this process's host (a Slurm node, not necessarily the engine's).
  const host = await hostFacts(config.root, Deno.env.toObject());
  await writeResult(config.resultFile, { ok: true, metrics, record: { ...record, host } });
}

/** Bytes the engine reserves for the result (blank), so that even a full disk can take it. */
export const RESULT_RESERVE = 16 << 10;

/** Write the result over the engine's blank reservation (no new disk blocks); JSON ignores the trailing blanks. */
async function writeResult(file: string, value: unknown) {
  const bytes = new TextEncoder().encode(JSON.stringify(value));
  const reserved = await Deno.stat(file).then((i) => i.size).catch(() => 0);
  if (bytes.length > reserved) return await writeFileAtomic(file, bytes);
  using f = await Deno.open(file, { write: true });
  for (let off = 0; off < bytes.length;) off += await f.write(bytes.subarray(off));
}

if (import.meta.main) {
  maskConsole(); // a URL's password never reaches the console (a stage's log lines, its error)
  // If the engine is killed, stop too instead of computing for nobody (under Slurm the parent is the job's step).
  dieWithParent();
  const config: WorkerConfig = JSON.parse(await Deno.readTextFile(Deno.args[0]));
  // Tasks' directories (tasks.ts) go in this run's tmp dir in the cache: removed with it, or by gcTmp after a kill.
  Deno.env.set("PIPELINE_TASK_DIR", join(dirname(config.resultFile), "tasks"));
  try {
    await runWorker(config);
    Deno.exit(0); // tfjs may keep timers or threads alive
  } catch (e) {
    // A machine fault (full disk) or a user input (e.g. a diverging lr) is one line; only a bug keeps its trace.
    let known = knownFault(e) ?? await undeclaredRead(e, config);
    if (isDiskFull(e)) {
      // Free what this run wrote (it will not be kept), so the result below fits.
      const written = await treeBytes(config.outDir);
      await Deno.remove(config.outDir, { recursive: true }).catch(() => {});
      if (!(e instanceof DiskFull)) { // a write the stage did not wrap: where is what the OS said, else its outputs
        const said = /'([^']+)'/.test((e as Error).message) ? (known as DiskFull).path : config.outDir;
        known = new DiskFull(said, undefined, written);
      }
    }
    if (!known) console.error(e instanceof Error ? e.stack : e);
    const err = known
      ? {
        what: known.message.startsWith(config.stage) ? known.message : `${config.stage}: ${known.message}`,
        fix: known.fix.replaceAll("<stage>", config.stage),
      }
      : {
        what: `stage ${config.stage} crashed: ${e instanceof Error ? e.message : e}`,
        fix: "see the stack trace above, fix the stage, and rerun",
      };
    await writeResult(config.resultFile, { ok: false, ...err })
      .catch(() => console.error(`error: ${err.what} — ${err.fix}`));
    Deno.exit(2);
  }
}

/**
 * A failure that names an upstream output the stage's view leaves out (StageDef.reads): the
 * declaration is what is wrong, so say that instead of "file not found".
 */
async function undeclaredRead(e: unknown, config: WorkerConfig): Promise<PipelineError | undefined> {
  const message = e instanceof Error ? e.message : String(e);
  for (const [dep, dir] of Object.entries(config.inputs)) {
    if (!message.includes(dir)) continue;
    const provenance = await Deno.readTextFile(join(dir, "_provenance.json")).then(JSON.parse, () => undefined);
    for (const rel of Object.keys(provenance?.outputs ?? {})) {
      if (!message.includes(join(dir, rel)) || (await Deno.lstat(join(dir, rel)).then(() => true, () => false))) {
        continue;
      }
      return new PipelineError(
        `${config.stage} read ${rel} of ${dep}, which its declaration does not list among the files it reads`,
        `add "${rel}" to the stage's reads of ${dep.replace(/\+s\d+$/, "")} in the pipeline declaration`,
      );
    }
  }
  return undefined;
}

async function treeBytes(dir: string): Promise<number> {
  let n = 0;
  for (const rel of await listFiles(dir).catch(() => [])) {
    n += (await Deno.stat(join(dir, rel)).catch(() => ({ size: 0 }))).size;
  }
  return n;
}
