// Faults of the machine, not of the code, told as one line each: a full disk,
// a read-only or misplaced cache. The data stages' writers import this file
// (like types.ts); it holds no engine internals. A diverging training run is
// the models' own (models/diverged.ts).
import { statfsSync } from "node:fs";
import { dirname } from "node:path";
import { PipelineError } from "./types.ts";

const MiB = 1 << 20;

/** The OS error code of e (ENOSPC, EROFS, …), if it has one. */
export function errorCode(e: unknown): string | undefined {
  const code = (e as { code?: unknown })?.code;
  if (typeof code === "string") return code;
  const m = /\(os error (\d+)\)/.exec(String((e as Error)?.message ?? e));
  return m ? ({ "28": "ENOSPC", "30": "EROFS", "20": "ENOTDIR" } as Record<string, string>)[m[1]] : undefined;
}

export const isDiskFull = (e: unknown) => e instanceof DiskFull || errorCode(e) === "ENOSPC";

/** Free bytes on the filesystem holding path (its nearest existing ancestor); undefined if unknown. */
export function freeBytes(path: string): number | undefined {
  for (let p = path;; p = dirname(p)) {
    try {
      const s = statfsSync(p);
      return Number(s.bavail) * Number(s.bsize);
    } catch {
      if (dirname(p) === p) return undefined;
    }
  }
}

const mib = (n: number) => n < MiB ? `${Math.ceil(n / 1024)} KiB` : `${(n / MiB).toFixed(n < 10 * MiB ? 1 : 0)} MiB`;

/**
 * ENOSPC, said once: where, how much more is needed, what is free. It is a
 * PipelineError, so nothing retries it or falls back to another source.
 */
export class DiskFull extends PipelineError {
  /** `written`: when the need is unknown, what the writer had written before (it needs more than that). */
  constructor(readonly path: string, needBytes?: number, written?: number) {
    const free = freeBytes(path);
    const need = needBytes
      ? `needs at least ${mib(needBytes)} more`
      : written
      ? `needs more than the ${mib(written)} it had written`
      : "needs more space";
    super(
      `disk full writing ${path}: ${need}` +
        (free !== undefined ? ` (${mib(free)} free)` : ""),
      "free disk space (or set PIPELINE_CACHE to a bigger disk) and rerun",
    );
    this.name = "DiskFull";
  }
}

/** Run a write; a full disk becomes DiskFull(path, bytes), anything else passes through. */
export async function writing<T>(path: string, bytes: number | undefined, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (isDiskFull(e) && !(e instanceof DiskFull)) throw new DiskFull(path, bytes);
    throw e;
  }
}

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
