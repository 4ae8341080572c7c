// Faults of the machine, not of the code, told as one line each. What a stage may raise (a
// full disk: DiskFull, writing) is part of the stage context, in types.ts; this file adds what
// only the engine needs: turning an escaped OS error into its one line. A diverging training
// run is the models' own (models/diverged.ts).
import { DiskFull, errorCode, PipelineError } from "../types.ts";

export { DiskFull, errorCode, isDiskFull, writing } from "../types.ts";

/** The one-line form of a machine fault that escaped as a plain error (undefined: a real bug, keep its trace). */
export function knownFault(e: unknown): PipelineError | undefined {
  if (e instanceof PipelineError) return e;
  const code = errorCode(e);
  const path = [...String((e as Error)?.message).matchAll(/'([^']+)'/g)].at(-1)?.[1]; // copy 'a' -> 'b': b
  if (code === "ENOSPC") return new DiskFull(path ?? Deno.cwd());
  if (code === "EROFS") {
    return new PipelineError(
      `${path ?? "a file"} is on a read-only file system`,
      "set PIPELINE_CACHE to a writable directory (or remount it read-write) and rerun",
    );
  }
  return undefined;
}
