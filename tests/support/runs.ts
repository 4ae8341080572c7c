// What a run entry needs besides its outputs, for tests that commit a run to a Store by hand.
import type { RunEntry } from "../../pipeline/store/entry.ts";

export function runParts(key: string, stage = "train-x"): Omit<RunEntry, "outputs" | "outputsHash"> {
  return {
    key,
    stage,
    params: {},
    inputs: {},
    code: {},
    external: [],
    deno: Deno.version.deno,
    metrics: {},
    startedAt: new Date().toISOString(),
    wallSeconds: 0,
  };
}
