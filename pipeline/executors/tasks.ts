// Run a function of a module in its own Deno process (a core of its own), and
// bound how many run at once: how a stage spreads independent work (e.g. the
// individuals of a search) over `ctx.jobs` processes. Under an executor with a
// task hook (the Slurm executor: a job per task) the executor runs it (same
// command, same result file); else it is a child process of the stage's worker.
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { jobEnv } from "./executor.ts";
import { dieWithParent } from "./lifeline.ts";
import { workerExecutor } from "./registry.ts";
import { PipelineError } from "../types.ts";

const SELF = new URL(import.meta.url).pathname;

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
    const what = `${fn} of ${module}`;
    let died = "";
    const executor = await workerExecutor();
    if (executor) {
      // The executor ended it (a time limit, a cancel): that stands, whatever the task wrote.
      const ended = await executor.plugin.task!({ what, command, dir, env: {} }, executor.context);
      if (ended) throw ended;
    } else {
      const status = await new Deno.Command(command[0], {
        args: command.slice(1),
        stdin: "null",
        env: { PIPELINE_PLAIN: "1", ...jobEnv(jobs) },
      }).spawn().status;
      died = `task ${what} died (exit ${status.code})`;
    }
    let result: { ok: boolean; value?: T; what?: string; fix?: string };
    try {
      result = JSON.parse(await Deno.readTextFile(output));
    } catch {
      result = {
        ok: false,
        what: died || `task ${what} ended without a result`,
        fix: "see its output above",
      };
    }
    if (!result.ok) throw new PipelineError(result.what!, result.fix!);
    return result.value as T;
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
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
