// A StageContext for unit tests of one stage module, without the engine (tests only: no stage
// module imports it, so it is in no cache key). Its params keep their literal's types, so a test
// passes a stage's run() what its declaration types (a missing or misspelt parameter fails the type check).
import { pathToFileURL } from "node:url";
import type { ParamValue, Progress, StageContext } from "../../pipeline/types.ts";

export async function makeTestContext<P extends Record<string, ParamValue> = Record<string, ParamValue>>(opts: {
  stage: string;
  params: P;
  inputs?: Record<string, string>;
  quiet?: boolean;
}): Promise<StageContext<P> & { recorded: Record<string, unknown>; cleanup(): Promise<void> }> {
  const base = await Deno.makeTempDir({ prefix: "stage-test-" });
  const outDir = `${base}/out`;
  const checkpointDir = `${base}/checkpoint`;
  await Deno.mkdir(outDir);
  await Deno.mkdir(checkpointDir);
  const memo = new Map<string, unknown>();
  const recorded: Record<string, unknown> = {};
  return {
    stage: opts.stage,
    params: opts.params,
    inputs: opts.inputs ?? {},
    outDir,
    checkpointDir,
    root: Deno.cwd(),
    jobs: 1,
    progress(p: Progress) {
      if (!opts.quiet) console.error(`[${opts.stage}] step ${p.step}/${p.total} loss ${p.loss ?? "-"}`);
    },
    log(message: string) {
      if (!opts.quiet) console.error(`[${opts.stage}] ${message}`);
    },
    recorded,
    async task<T>(module: string, fn: string, arg: unknown): Promise<T> {
      return (await import(pathToFileURL(module).href))[fn](arg); // in-process: tests need no child processes
    },
    record(facts: Record<string, unknown>) {
      Object.assign(recorded, facts);
    },
    async memo<T>(key: unknown, fn: () => Promise<T>): Promise<T> {
      const k = JSON.stringify(key);
      if (!memo.has(k)) memo.set(k, await fn());
      return memo.get(k) as T;
    },
    async cleanup() {
      await Deno.remove(base, { recursive: true });
    },
  };
}
