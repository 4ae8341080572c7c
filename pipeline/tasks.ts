// Run a function of a module in its own Deno process (a core of its own), and
// bound how many run at once: how a stage spreads independent work (e.g. the
// individuals of a search) over `ctx.jobs` processes.
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { PipelineError } from "./types.ts";

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
  const dir = await Deno.makeTempDir({ prefix: "task-" });
  try {
    const input = join(dir, "in.json");
    const output = join(dir, "out.json");
    await Deno.writeTextFile(input, JSON.stringify({ module, fn, arg, output }));
    const status = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--no-prompt", SELF, input],
      stdin: "null",
      env: { PIPELINE_PLAIN: "1", ...jobEnv(jobs) },
    }).spawn().status;
    let result: { ok: boolean; value?: T; what?: string; fix?: string };
    try {
      result = JSON.parse(await Deno.readTextFile(output));
    } catch {
      result = { ok: false, what: `task ${fn} of ${module} died (exit ${status.code})`, fix: "see its output above" };
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
