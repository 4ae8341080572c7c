// Runs one stage in its own process: imports the stage module, gives it a
// StageContext, writes its metrics (or its one-line error) next to outDir.
// Separate processes let independent stages use separate cores.
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { canonicalJson, sha256, writeFileAtomic } from "./hash.ts";
import { dieWithParent } from "./lifeline.ts";
import { ProgressLine } from "./progress.ts";
import { PipelineError, type StageContext } from "./types.ts";

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
}

export async function runWorker(config: WorkerConfig): Promise<void> {
  const progress = new ProgressLine(config.stage);
  const record: Record<string, unknown> = {};
  const ctx: StageContext = {
    stage: config.stage,
    params: config.params,
    inputs: config.inputs,
    outDir: config.outDir,
    checkpointDir: config.checkpointDir,
    root: config.root,
    jobs: config.jobs,
    progress: (p) => progress.update(p),
    log: (m) => progress.log(m),
    record: (facts) => Object.assign(record, facts),
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
  await writeFileAtomic(config.resultFile, JSON.stringify({ ok: true, metrics, record }));
}

if (import.meta.main) {
  // If the engine is killed, stop too instead of computing for nobody (under Slurm the parent is the job's step).
  dieWithParent();
  const config: WorkerConfig = JSON.parse(await Deno.readTextFile(Deno.args[0]));
  // Tasks' directories (tasks.ts) go in this run's tmp dir in the cache: removed with it, or by gcTmp after a kill.
  Deno.env.set("PIPELINE_TASK_DIR", join(dirname(config.resultFile), "tasks"));
  try {
    await runWorker(config);
    Deno.exit(0); // tfjs may keep timers or threads alive
  } catch (e) {
    const err = e instanceof PipelineError
      ? { what: e.message, fix: e.fix }
      : /No space left on device/.test(String(e))
      ? {
        what: `disk full while running ${config.stage}`,
        fix: "free disk space (or set PIPELINE_CACHE to a bigger disk) and rerun",
      }
      : undefined;
    if (!err) console.error(e instanceof Error ? e.stack : e);
    const fallback = {
      what: `stage ${config.stage} crashed: ${e instanceof Error ? e.message : e}`,
      fix: "see the stack trace above, fix the stage, and rerun",
    };
    await writeFileAtomic(config.resultFile, JSON.stringify({ ok: false, ...(err ?? fallback) }));
    Deno.exit(2);
  }
}
