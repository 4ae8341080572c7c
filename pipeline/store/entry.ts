// Run entries (runs/<key>.json, see cache.ts) as read from a cache or a remote: one parser and
// one validator for every path that reads them (the cache, the committed folder, S3, thin runs,
// pull, reproduce). An entry is trusted only as far as hashes cover it: its outputs must hash to
// its outputsHash, its key must be the key it is stored under, every output must be a plain
// relative path inside its run, and where the lock file records the stage's run under that key,
// the outputs must be the ones it records.
import { canonicalJson, sha256 } from "./hash.ts";
import type { LockStage } from "../engine/lockfile.ts";
import type { ParamValue } from "../types.ts";

/** What a cache key is made of; entries and the lock file keep it so `status` can say what changed. */
export interface KeyParts {
  stage: string;
  params: Record<string, ParamValue>;
  /** Upstream node → its outputsHash. */
  inputs: Record<string, string>;
  /** Project file → hash, of the stage module's import closure. */
  code: Record<string, string>;
  /** npm packages (name@version) the code reaches. */
  external: string[];
  deno: string;
}

export interface RunEntry extends KeyParts {
  key: string;
  outputs: Record<string, { hash: string; size: number }>;
  /** Hash of `outputs`: what downstream keys depend on. */
  outputsHash: string;
  metrics: Record<string, unknown>;
  /** Facts about the run that are not results (timings, host, compute path): not hashed, not in any key. */
  record?: Record<string, unknown>;
  startedAt: string;
  wallSeconds: number;
  /**
   * Outputs this cache does not hold: a run restored from the committed remote, which keeps files up
   * to 8 MiB (weights stay in the shared remote). Known by hash; fill() fetches them when needed.
   * Local to a cache: never pushed.
   */
  absent?: string[];
}

export type Verdict = { ok: true } | { ok: false; file: string; expected: string; actual: string };

/** What reading an entry gives: the entry, undefined when there is none, or why it cannot be trusted. */
export type EntryRead = RunEntry | undefined | Corrupt;
/** Why an entry is not to be trusted, and the stage it names if it names one (for messages). */
export type Corrupt = { corrupt: string; stage?: string };

export const isCorrupt = (read: EntryRead): read is Corrupt => read !== undefined && "corrupt" in read;

const SHA256 = /^[0-9a-f]{64}$/;
const short = (hash: string) => `${hash.slice(0, 12)}…`;
const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === "object" && !Array.isArray(v);

/** The text of runs/<key>.json → the entry, or why it is not the entry stored under key. */
export function parseEntry(text: string, key: string): RunEntry | Corrupt {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { corrupt: "truncated or not JSON" };
  }
  const problem = entryProblem(value, key);
  if (!problem) return value as RunEntry;
  const stage = (value as { stage?: unknown })?.stage;
  return typeof stage === "string" && !problem.startsWith("key:") ? { corrupt: problem, stage } : { corrupt: problem };
}

/** Why value is not a run entry stored under key (undefined: it is one), naming the field. */
export function entryProblem(value: unknown, key: string): string | undefined {
  if (!isObject(value)) return "not a run entry (not a JSON object)";
  const e = value;
  if (typeof e.key !== "string") return "key: missing";
  if (e.key !== key) return `key: it says ${short(e.key)}, stored under ${short(key)}`;
  if (typeof e.stage !== "string") return "stage: missing";
  for (const field of ["params", "inputs", "code", "metrics"]) {
    if (e[field] !== undefined && !isObject(e[field])) return `${field}: not an object`;
  }
  if (!isObject(e.outputs)) return "outputs: not an object";
  for (const [rel, out] of Object.entries(e.outputs)) {
    const name = `outputs[${JSON.stringify(rel)}]`;
    if (!safeRelative(rel)) return `${name}: not a relative path inside the run`;
    if (!isObject(out) || typeof out.hash !== "string" || !SHA256.test(out.hash)) return `${name}.hash: not a SHA-256`;
    if (!Number.isSafeInteger(out.size) || (out.size as number) < 0) return `${name}.size: not a byte count`;
  }
  if (typeof e.outputsHash !== "string") return "outputsHash: missing";
  const actual = sha256(canonicalJson(e.outputs));
  if (actual !== e.outputsHash) {
    return `outputsHash: the outputs hash to ${short(actual)}, the entry says ${short(e.outputsHash)}`;
  }
  if (e.absent !== undefined) {
    const outputs = e.outputs;
    if (!Array.isArray(e.absent) || !e.absent.every((r) => typeof r === "string" && Object.hasOwn(outputs, r))) {
      return "absent: not a list of its outputs";
    }
  }
  return undefined;
}

/**
 * Where the lock file records a run under the entry's key, do the two agree? The field that
 * differs, undefined if they agree (or the lock records another key, or nothing).
 */
export function lockProblem(entry: RunEntry, locked: LockStage | undefined): string | undefined {
  if (!locked || locked.key !== entry.key || !isObject(locked.outputs)) return undefined;
  const names = new Set([...Object.keys(locked.outputs), ...Object.keys(entry.outputs)]);
  for (const rel of [...names].sort()) {
    const want = Object.hasOwn(locked.outputs, rel) ? locked.outputs[rel] : undefined;
    const got = Object.hasOwn(entry.outputs, rel) ? entry.outputs[rel].hash : undefined;
    if (want !== got) {
      return `outputs[${JSON.stringify(rel)}]: ${got ? short(got) : "absent"}, the lock file records ` +
        (want ? short(String(want)) : "no such output");
    }
  }
  if (locked.outputsHash && locked.outputsHash !== entry.outputsHash) {
    return `outputsHash: ${short(entry.outputsHash)}, the lock file records ${short(locked.outputsHash)}`;
  }
  return undefined;
}

/** A plain relative path that stays inside its directory: no absolute path, no "..", no empty segment. */
export function safeRelative(rel: string): boolean {
  if (rel === "" || rel.startsWith("/") || rel.includes("\\") || rel.includes("\0")) return false;
  return rel.split("/").every((s) => s !== "" && s !== "." && s !== "..");
}
