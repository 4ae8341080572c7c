// Comparing a rerun with a cached run, for `reproduce --verify`, `accept` and `--force`: either
// nothing differs, or the first difference — which file, where in it (a JSON path, the training
// step), and both values — so a determinism bug is named, not just detected.
import { join } from "node:path";
import { listFiles, type RunEntry } from "../store/cache.ts";
import type { EvalPoint } from "../types.ts";

export interface Difference {
  file: string;
  /** JSON path (e.g. evals[3].testAcc), or a byte offset for other files. */
  where?: string;
  step?: number;
  cached: unknown;
  rerun: unknown;
}

export function describeDifference(d: Difference): string {
  const at = [d.where, d.step !== undefined ? `step ${d.step}` : ""].filter(Boolean).join(", ");
  return `${d.file}${at ? ` (${at})` : ""}: cached ${show(d.cached)}, rerun ${show(d.rerun)}`;
}

const show = (v: unknown) => (typeof v === "string" && v.length > 40 ? `${v.slice(0, 40)}…` : JSON.stringify(v));

/**
 * How far to compare a rerun with a cached run: every byte (undefined), or its training curve up
 * to `steps`. A run carried over by accept holds the outputs of older code (its curve verified,
 * its bytes not the current code's): it is compared on its whole curve.
 */
export function compareUpTo(cached: RunEntry, steps?: number): number | undefined {
  if (!cached.outputs["history.json"]) return undefined;
  return steps ?? (cached.record?.accepted ? Infinity : undefined);
}

/**
 * Compare the rerun's files (rerunDir) with the cached run's (cachedDir). With `steps`, the
 * rerun stopped early: only the training curve up to that step is compared (history.json's
 * evals, weights digests included), and other files are not.
 */
export async function firstDifference(
  cachedDir: string,
  cachedFiles: string[],
  rerunDir: string,
  steps?: number,
  /** Files compared elsewhere (a thin run's absent ones, by hash). */
  skip: string[] = [],
): Promise<Difference | undefined> {
  if (steps !== undefined && cachedFiles.includes("history.json")) {
    const cached = await readJson(join(cachedDir, "history.json")) as { evals: EvalPoint[] };
    const rerun = await readJson(join(rerunDir, "history.json")) as { evals?: EvalPoint[] };
    const want = cached.evals.filter((e) => e.step <= steps);
    // Runs from before the weights digest existed are compared on their curves alone.
    const got = (rerun.evals ?? []).map((
      e,
      i,
    ) => (want[i] && !("weights" in want[i]) ? { ...e, weights: undefined } : e));
    return jsonDifference("history.json", { evals: want }, JSON.parse(JSON.stringify({ evals: got })));
  }
  const rerunFiles = await listFiles(rerunDir);
  for (const file of [...new Set([...cachedFiles, ...rerunFiles])].sort()) {
    if (file === "_provenance.json" || skip.includes(file)) continue;
    if (!cachedFiles.includes(file)) return { file, cached: "absent", rerun: "present" };
    if (!rerunFiles.includes(file)) return { file, cached: "present", rerun: "absent" };
    const [a, b] = [await Deno.readFile(join(cachedDir, file)), await Deno.readFile(join(rerunDir, file))];
    if (sameBytes(a, b)) continue;
    if (file.endsWith(".json")) {
      try {
        const d = jsonDifference(file, JSON.parse(decode(a)), JSON.parse(decode(b)));
        if (d) return d;
      } catch { /* not JSON after all: compare bytes */ }
    }
    let i = 0;
    while (i < a.length && i < b.length && a[i] === b[i]) i++;
    return { file, where: `byte ${i} of ${a.length} / ${b.length}`, cached: a[i] ?? "end", rerun: b[i] ?? "end" };
  }
  return undefined;
}

/** The first place two JSON values differ (evals entries report their step). */
export function jsonDifference(file: string, cached: unknown, rerun: unknown): Difference | undefined {
  const walk = (a: unknown, b: unknown, path: string, step?: number): Difference | undefined => {
    if (Object.is(a, b)) return undefined;
    if (Array.isArray(a) && Array.isArray(b)) {
      for (let i = 0; i < Math.max(a.length, b.length); i++) {
        if (i >= a.length || i >= b.length) {
          return { file, where: `${path}[${i}]`, step, cached: a[i] ?? "absent", rerun: b[i] ?? "absent" };
        }
        const s = path.endsWith("evals") ? (a[i] as EvalPoint)?.step : step;
        const d = walk(a[i], b[i], `${path}[${i}]`, s);
        if (d) return d;
      }
      return undefined;
    }
    if (a && b && typeof a === "object" && typeof b === "object" && !Array.isArray(a) && !Array.isArray(b)) {
      const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
      for (const k of keys) {
        const [x, y] = [(a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]];
        const d = walk(x ?? "absent", y ?? "absent", path ? `${path}.${k}` : k, step);
        if (d) return d;
      }
      return undefined;
    }
    return { file, where: path || undefined, step, cached: a, rerun: b };
  };
  return walk(cached, rerun, "");
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const decode = (b: Uint8Array) => new TextDecoder().decode(b);
const readJson = async (path: string) => JSON.parse(await Deno.readTextFile(path));
