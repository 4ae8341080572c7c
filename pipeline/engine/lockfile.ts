// pipeline/lock.json (like dvc.lock, committed): for every stage, the run it last ran or
// restored — its key, parameters, input, output and code hashes, metrics, timings, and what
// `accept` carried over. Status compares with it; --single, verify, accept, push and pull
// work on the runs it names.
// (lockfile.ts: the cache's cross-process locks are another thing, Store.lock and lease.ts.)
import { dirname, join } from "node:path";
import type { KeyParts, RunEntry, Store } from "../store/cache.ts";
import { writeFileAtomic } from "../store/hash.ts";
import { PipelineError } from "../types.ts";

export interface LockStage extends KeyParts {
  key: string;
  outputs: Record<string, string>;
  /** What downstream keys depend on (older lock files lack it: see lockedOutputsHash). */
  outputsHash?: string;
  metrics: Record<string, unknown>;
  wallSeconds: number;
  ranAt: string;
  /** Set when `accept` carried a run over a code change: from which key, verified how far, when. */
  accepted?: Accepted;
}

export interface Accepted {
  from: string;
  /** Steps re-executed and found bit-identical ("all": every output; "curve": the whole training curve). */
  verifiedSteps: number | "all" | "curve";
  at: string;
}

/**
 * A run made with `--set` or a profile: an experiment. Its runs are recorded in the cache's
 * journal (experiments.jsonl: `exp` lists them, `exp apply KEY` adopts one), never in
 * pipeline/lock.json; a profile's own lock file (lock.<profile>.json) is still written.
 */
export interface ExperimentTag {
  /** The --set assignments, as typed. */
  set: string[];
  profile?: string;
  /** Write the lock file too (a profile's own, never the study's lock.json). */
  recordLock: boolean;
}

/** One line of <cache>/experiments.jsonl. */
export interface ExperimentRecord {
  key: string;
  stage: string;
  at: string;
  set: string[];
  profile?: string;
}

export const experimentsJournal = (cacheDir: string) => join(cacheDir, "experiments.jsonl");

export interface LockFile {
  version: 1;
  stages: Record<string, LockStage>;
}

/** One project's lock file, and the cached runs it names. */
export class Lock {
  /** A corrupt lock file is named once per process, not on every read. */
  private warned = false;

  constructor(
    readonly file: string,
    private readonly store: Store,
    private readonly log: (line: string) => void,
    /** Set: this command is an experiment (see ExperimentTag). */
    readonly experiment?: ExperimentTag,
  ) {}

  async read(): Promise<LockFile> {
    let text: string;
    try {
      text = await Deno.readTextFile(this.file);
    } catch {
      return { version: 1, stages: {} };
    }
    try {
      const lock = JSON.parse(text);
      if (lock?.stages && typeof lock.stages === "object" && !Array.isArray(lock.stages)) return lock;
    } catch { /* named below */ }
    if (!this.warned) {
      this.log(`✗ ${this.file} is corrupt (not a lock file): ignoring it; a reproduce rewrites it from the cache`);
      this.warned = true;
    }
    return { version: 1, stages: {} };
  }

  /** Merge one stage into the lock file, under a cross-process lock. */
  async record(name: string, parts: KeyParts, entry: RunEntry) {
    if (this.experiment) {
      const { set, profile } = this.experiment;
      // A run the study's lock records already (an upstream stage restored as it was) is no experiment.
      if ((await this.read()).stages[name]?.key === entry.key && !this.experiment.recordLock) return;
      const line: ExperimentRecord = { key: entry.key, stage: name, at: new Date().toISOString(), set, profile };
      // One short line appended at once: concurrent writers do not interleave.
      await Deno.writeTextFile(experimentsJournal(this.store.dir), JSON.stringify(line) + "\n", { append: true });
      if (!this.experiment.recordLock) return;
    }
    const release = await this.store.lock("lockfile", () => {});
    try {
      const lock = await this.read();
      lock.stages[name] = {
        key: entry.key,
        ...parts,
        outputs: Object.fromEntries(Object.entries(entry.outputs).map(([f, o]) => [f, o.hash])),
        outputsHash: entry.outputsHash,
        metrics: entry.metrics,
        wallSeconds: entry.wallSeconds,
        ranAt: entry.startedAt,
        ...(entry.record?.accepted ? { accepted: entry.record.accepted as Accepted } : {}),
      };
      lock.stages = Object.fromEntries(Object.entries(lock.stages).sort(([a], [b]) => (a < b ? -1 : 1)));
      await Deno.mkdir(dirname(this.file), { recursive: true });
      await writeFileAtomic(this.file, JSON.stringify(lock, null, 2) + "\n");
    } finally {
      await release();
    }
  }

  /**
   * The cached run `lock` names for the upstream stage `dep` (for --single, verify and accept),
   * verified, fetched from a remote if need be (with `restore`; else only looked up there).
   * Undefined: absent, when `allowAbsent`; otherwise absence is an error naming `forStage`.
   */
  async lockedEntry(
    dep: string,
    forStage: string,
    lock: LockFile,
    allowAbsent: boolean | undefined,
    restore: boolean,
  ): Promise<RunEntry | undefined> {
    const key = lock.stages[dep]?.key;
    let entry = key ? await this.store.readEntry(key) : undefined;
    if (entry && !(await this.store.verify(entry)).ok) entry = undefined;
    if (key && !entry) {
      const locked = lock.stages[dep];
      entry = restore ? await this.store.fetch(key, locked) : await this.store.remoteEntry(key, locked);
    }
    if (!entry) {
      if (allowAbsent) return undefined;
      throw new PipelineError(
        `${forStage} needs the outputs of ${dep}, which are not in the cache`,
        `run \`deno task reproduce ${dep}\` first (or drop --single)`,
      );
    }
    if (restore) await this.store.markInUse(entry.key);
    return entry;
  }
}

/**
 * A stage's outputs hash as the lock records it; older lock files lack the field, so fall back
 * to the inputs their downstream stages record, when those agree.
 */
export function lockedOutputsHash(lock: LockFile, name: string): string | undefined {
  if (lock.stages[name]?.outputsHash) return lock.stages[name].outputsHash;
  const seen = new Set(Object.values(lock.stages).map((s) => s.inputs[name]).filter(Boolean));
  return seen.size === 1 ? [...seen][0] : undefined;
}
