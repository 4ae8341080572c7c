// Run a function of a module in its own Deno process (a core of its own), and
// bound how many run at once: how a stage spreads independent work (e.g. the
// individuals of a search) over `ctx.jobs` processes. Under `--executor slurm`
// each task is a Slurm job of its own (same command, same result file).
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { dieWithParent } from "./lifeline.ts";
import { cancel, DEFAULT_RESOURCES, endedBadly, submit, waitJob } from "./slurm.ts";
import { PipelineError } from "../types.ts";

const SELF = new URL(import.meta.url).pathname;

/**
 * Environment for one of `jobs` processes sharing this machine: a fair share of
 * the cores for its thread pools (PIPELINE_THREADS: the OpenBLAS worker pool of
 * models/compute/blas.ts; OMP_NUM_THREADS: OpenMP libraries), and plain progress lines.
 */
export function jobEnv(jobs: number): Record<string, string> {
  if (jobs <= 1) return {};
  const threads = String(Math.max(1, Math.floor(navigator.hardwareConcurrency / jobs)));
  return { PIPELINE_PLAIN: "1", PIPELINE_THREADS: threads, OMP_NUM_THREADS: threads };
}

/** Call `module`'s export `fn` with `arg` (JSON) in a child process; resolves to its JSON result. */
export async function runTask<T>(module: string, fn: string, arg: unknown, jobs = 1): Promise<T> {
  // In a stage's worker: inside the run's tmp dir in the cache (gone with it, even after a kill).
  const parent = Deno.env.get("PIPELINE_TASK_DIR");
  if (parent) await Deno.mkdir(parent, { recursive: true });
  const dir = await Deno.makeTempDir({ dir: parent, prefix: "task-" });
  try {
    const input = join(dir, "in.json");
    const output = join(dir, "out.json");
    await Deno.writeTextFile(input, JSON.stringify({ module, fn, arg, output }));
    const command = [Deno.execPath(), "run", "-A", "--no-prompt", SELF, input];
    let died = "";
    if (Deno.env.get("PIPELINE_EXECUTOR") === "slurm") {
      died = await slurmTask(`${fn} of ${module}`, command, dir);
    } else {
      const status = await new Deno.Command(command[0], {
        args: command.slice(1),
        stdin: "null",
        env: { PIPELINE_PLAIN: "1", ...jobEnv(jobs) },
      }).spawn().status;
      died = `task ${fn} of ${module} died (exit ${status.code})`;
    }
    let result: { ok: boolean; value?: T; what?: string; fix?: string };
    try {
      result = JSON.parse(await Deno.readTextFile(output));
    } catch {
      result = {
        ok: false,
        what: died || `task ${fn} of ${module} ended without a result`,
        fix: "see its output above",
      };
    }
    if (!result.ok) throw new PipelineError(result.what!, result.fix!);
    return result.value as T;
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Task jobs this process submitted and that have not ended: cancelled when it is told to stop. */
const liveJobs = new Set<string>();
let cancelOnSignal = false;

/** Run one task as a Slurm job (the stage job's resources); "" when it completed, else why not. */
async function slurmTask(what: string, command: string[], dir: string): Promise<string> {
  const res = JSON.parse(Deno.env.get("PIPELINE_TASK_RESOURCES") ?? "null") ?? DEFAULT_RESOURCES;
  const logDir = Deno.env.get("PIPELINE_LOG_DIR") ?? dir;
  await Deno.mkdir(logDir, { recursive: true });
  const log = join(logDir, `task-%j.log`);
  const id = await submit({
    script: join(dir, "job.sh"),
    command,
    name: `${Deno.env.get("SLURM_JOB_NAME") ?? "pipeline"}.task`,
    log,
    cwd: Deno.cwd(),
    resources: res,
    settings: JSON.parse(Deno.env.get("PIPELINE_SLURM") ?? "{}"),
    env: { PIPELINE_PLAIN: "1" },
  });
  if (!cancelOnSignal) {
    // scancel / a time limit sends this stage job SIGTERM first: take its tasks down with it.
    cancelOnSignal = true;
    for (const s of ["SIGTERM", "SIGINT"] as const) {
      Deno.addSignalListener(s, async () => {
        await cancel([...liveJobs]);
        Deno.exit(143);
      });
    }
  }
  liveJobs.add(id);
  try {
    const info = await waitJob(id, () => {});
    return info && info.state !== "COMPLETED"
      ? endedBadly(`task ${what}`, id, info, log.replace("%j", id), res).message
      : "";
  } finally {
    liveJobs.delete(id);
  }
}

/** A counting semaphore: at most `limit` of the wrapped calls run at once. */
export function limiter(limit: number) {
  let active = 0;
  const waiting: Array<() => void> = [];
  return async <T>(work: () => Promise<T>): Promise<T> => {
    while (active >= limit) await new Promise<void>((r) => waiting.push(r));
    active++;
    try {
      return await work();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}

if (import.meta.main) {
  dieWithParent(); // a killed stage worker takes its tasks with it, even mid-way through a synchronous loop
  const { module, fn, arg, output } = JSON.parse(await Deno.readTextFile(Deno.args[0]));
  try {
    const mod = await import(pathToFileURL(module).href);
    const value = await mod[fn](arg);
    await Deno.writeTextFile(output, JSON.stringify({ ok: true, value }));
  } catch (e) {
    if (!(e instanceof PipelineError)) console.error(e instanceof Error ? e.stack : e);
    const what = e instanceof PipelineError ? e.message : `task ${fn} crashed: ${e instanceof Error ? e.message : e}`;
    const fix = e instanceof PipelineError ? e.fix : "see the stack trace above";
    await Deno.writeTextFile(output, JSON.stringify({ ok: false, what, fix }));
  }
  Deno.exit(0);
}
