// The content-addressed cache under .cache/:
//   objects/ab/cdef…   every output file, stored once by its SHA-256, read-only
//   trees/<key>/…      a stage run's outputs as hard links to objects
//   runs/<key>.json    the run entry; written last, so it is the commit point:
//                      a run killed at any moment leaves no entry to trust
//   locks/, tmp/, checkpoints/<key>/, memo/, logs/ (executors' job logs), stat.json, code.json
// An object no tree links to (link count 1) is garbage: see gc.ts.
import { join } from "node:path";
import { CodeCache } from "./code.ts";
import { DiskFull, errorCode, isDiskFull } from "../engine/faults.ts";
import { StatCache } from "./hash.ts";
import { isCorrupt, type RunEntry, type Verdict } from "./entry.ts";
import { readEntryFile } from "./files.ts";
import { Locks } from "./locks.ts";
import { Objects } from "./objects.ts";
import { Scratch } from "./scratch.ts";
import { Transfers } from "./transfers.ts";
import type { WorkerRef } from "../executors/executor.ts";
import type { Remote } from "../sharing/remote.ts";
import type { LockStage } from "../engine/lockfile.ts";
import { PipelineError } from "../types.ts";

export type { KeyParts, RunEntry, Verdict } from "./entry.ts";
export { listFiles, processAlive } from "./files.ts";

/**
 * The cache, one idea per part: objects and trees (objects.ts), runs from remotes (transfers.ts),
 * locks and in-use markers (locks.ts), scratch space and its collection (scratch.ts). The methods
 * below are the engine's API; each says where its work is done.
 */
export class Store {
  readonly locks: Locks;
  private objects = new Objects(this);
  private transfers = new Transfers(this);
  private scratch = new Scratch(this);

  /**
   * `remotes`: stores of the same layout (runs/, objects/) that missing runs are
   * fetched from, in order (see sharing/remote.ts: the folder committed to git, then the shared one).
   */
  constructor(
    readonly dir: string,
    readonly stats: StatCache,
    readonly remotes: Remote[] = [],
    /** False on a read-only mount: status works, reproduce refuses (see assertWritable). */
    readonly writable = true,
    /** Content → normalised code hash and specifiers, for cache keys (see code.ts). */
    readonly code = new CodeCache(join(dir, "code.json")),
  ) {
    this.locks = new Locks(join(dir, "locks"), (l) => this.warn(l));
  }

  /** Where corrupt state and refused remote objects are named (the engine sets its log). */
  warn: (line: string) => void = (l) => console.error(l);

  static async open(dir: string, remotes: Remote[] = []): Promise<Store> {
    const info = await Deno.stat(dir).catch(() => undefined);
    let writable = true;
    try {
      if (info && !info.isDirectory) throw Object.assign(new Error(), { code: "ENOTDIR" });
      for (const sub of ["objects", "trees", "runs", "locks", "tmp", "checkpoints", "memo", "logs"]) {
        await Deno.mkdir(join(dir, sub), { recursive: true });
      }
      await Deno.remove(await Deno.makeTempFile({ dir: join(dir, "tmp"), prefix: `probe.${Deno.pid}.` })); // writable?
    } catch (e) {
      const code = errorCode(e);
      const fix = "point PIPELINE_CACHE at a directory (or unset it to use .cache/ in the project)";
      if (code === "ENOTDIR") {
        const there = !info
          ? "a parent of it is a file"
          : info.isFile
          ? "a regular file is there"
          : info.isCharDevice || info.isBlockDevice
          ? "a device is there"
          : "a special file is there";
        throw new PipelineError(`the cache ${dir} is not a directory (${there})`, fix);
      }
      if (isDiskFull(e)) throw new DiskFull(dir, 1 << 20);
      if (code !== "EROFS" && code !== "EACCES" && !(e instanceof Deno.errors.PermissionDenied)) {
        // /proc, a symlink loop, …: no place for a cache, whatever the cause; never a stack trace.
        const why = e instanceof Deno.errors.FilesystemLoop || /os error 40\b/.test(String(e))
          ? "a symlink loop"
          : String((e as Error)?.message ?? e).replace(/ \(os error \d+\)/, "");
        throw new PipelineError(`the cache ${dir} is unusable (${why})`, fix);
      }
      writable = false;
    }
    const stats = await StatCache.open(join(dir, "stat.json"));
    stats.readOnly = !writable;
    const code = await CodeCache.open(join(dir, "code.json"));
    code.readOnly = !writable;
    return new Store(dir, stats, remotes, writable, code);
  }

  /** Building needs a writable cache; say so in one line (status works without). */
  assertWritable() {
    if (this.writable) return;
    throw new PipelineError(
      `the cache ${this.dir} is not writable (read-only file system or no permission)`,
      "set PIPELINE_CACHE to a writable directory (or remount it read-write); `deno task status` works read-only",
    );
  }

  /** A local folder among the remotes (the committed one), if any: gc keeps the runs it holds. */
  get folderRemote(): string | undefined {
    return this.remotes.find((r) => r.backend.dir !== undefined)?.backend.dir;
  }

  treeDir(key: string) {
    return join(this.dir, "trees", key);
  }
  checkpointDir(key: string) {
    return join(this.dir, "checkpoints", key);
  }
  entryPath(key: string) {
    return join(this.dir, "runs", `${key}.json`);
  }
  objectPath(hash: string) {
    return join(this.dir, "objects", hash.slice(0, 2), hash.slice(2));
  }

  /** The run entry in this cache (never the remote: see remoteEntry and fetch). */
  async readEntry(key: string): Promise<RunEntry | undefined> {
    const path = this.entryPath(key);
    const entry = await readEntryFile(path, key);
    if (isCorrupt(entry)) {
      this.warn(`✗ the run entry ${path} is corrupt (${entry.corrupt}): discarding it, rebuilding the run`);
      if (this.writable) await Deno.remove(path).catch(() => {});
      return undefined;
    }
    return entry;
  }

  /** The cache's entry, else the remote's copied in (fetch): for a run that is needed now. */
  async readOrFetch(key: string, locked?: LockStage): Promise<RunEntry | undefined> {
    return await this.readEntry(key) ?? await this.fetch(key, locked);
  }

  // Runs from remotes: transfers.ts.
  /** The remote's entry for key if fetch() would restore it, read without copying anything (status, --dry-run). */
  remoteEntry(key: string, locked?: LockStage): Promise<RunEntry | undefined> {
    return this.transfers.remoteEntry(key, locked);
  }
  /** Copy a run in from the first remote that has it whole (else thin); every file checked against its hash. */
  fetch(key: string, locked?: LockStage): Promise<RunEntry | undefined> {
    return this.transfers.fetch(key, locked);
  }
  /** Fetch a thin run's absent outputs from the remotes that have them. */
  fill(entry: RunEntry): Promise<RunEntry> {
    return this.transfers.fill(entry);
  }

  // Objects and trees: objects.ts.
  /** Do the entry's files still hold the bytes it recorded? */
  verify(entry: RunEntry): Promise<Verdict> {
    return this.objects.verify(entry);
  }
  /** Forget a run whose bytes went bad: its entry, its tree, and the bad object. */
  discard(entry: RunEntry, badHash?: string): Promise<void> {
    return this.objects.discard(entry, badHash);
  }
  /** Move a finished run's files into the store and write its entry (last). */
  commit(
    outDir: string,
    partial: Omit<RunEntry, "outputs" | "outputsHash">,
    thin?: Pick<RunEntry, "outputs" | "outputsHash" | "absent">,
  ): Promise<RunEntry> {
    return this.objects.commit(outDir, partial, thin);
  }
  /** The same outputs under another key (accept). */
  relink(from: RunEntry, partial: Omit<RunEntry, "outputs" | "outputsHash">): Promise<RunEntry> {
    return this.objects.relink(from, partial);
  }

  // Scratch space: scratch.ts.
  /** A fresh private directory for one run; removed by the caller or by gc after a crash. */
  makeTmp(key: string): Promise<string> {
    return this.scratch.makeTmp(key);
  }
  /** Remove what killed processes left in tmp/, and checkpoints no run will resume from. */
  gcTmp(): Promise<void> {
    return this.scratch.gcTmp();
  }
  /** Remove run-entry temporaries whose writer is gone. */
  gcPartialEntries(): Promise<void> {
    return this.scratch.gcPartialEntries();
  }

  // Locks and in-use markers: locks.ts.
  holder(name: string): Promise<string | undefined> {
    return this.locks.holder(name);
  }
  lockWorker(name: string, worker: WorkerRef): Promise<void> {
    return this.locks.lockWorker(name, worker);
  }
  markInUse(key: string): Promise<void> {
    return this.locks.markInUse(key);
  }
  clearInUse(): Promise<void> {
    return this.locks.clearInUse();
  }
  tryLock(name: string): Promise<(() => Promise<void>) | undefined> {
    return this.locks.tryLock(name);
  }
  lock(name: string, onWait: (who: string) => void): Promise<() => Promise<void>> {
    return this.locks.lock(name, onWait);
  }
}
