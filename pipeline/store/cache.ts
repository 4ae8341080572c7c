// The content-addressed cache under .cache/:
//   objects/ab/cdef…   every output file, stored once by its SHA-256, read-only
//   trees/<key>/…      a stage run's outputs as hard links to objects
//   runs/<key>.json    the run entry; written last, so it is the commit point:
//                      a run killed at any moment leaves no entry to trust
//   locks/, tmp/, checkpoints/<key>/, memo/, logs/ (executors' job logs), stat.json, code.json
// An object no tree links to (link count 1) is garbage: see gc.ts.
import { dirname, join, relative } from "node:path";
import { CodeCache } from "./code.ts";
import { DiskFull, errorCode, isDiskFull, writing } from "../engine/faults.ts";
import { atomicTmpPid, canonicalJson, hashFile, sha256, StatCache, writeFileAtomic } from "./hash.ts";
import { isCorrupt, lockProblem, parseEntry } from "./entry.ts";
import type { WorkerRef } from "../executors/executor.ts";
import { describeOwner, hostId, hostTag, leaseMs, me, type Owner, ownerAlive, parseOwner, sameOwner } from "./lease.ts";
import { FolderRemote, type Remote } from "../sharing/remote.ts";
import type { LockStage } from "../engine/lockfile.ts";
import { stopWorker } from "../executors/registry.ts";
import { type ParamValue, PipelineError } from "../types.ts";

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

/** Days after which a failed run's checkpoint (or an old job log) is collected: $PIPELINE_CHECKPOINT_DAYS, 7. */
const keepDays = () => Number(Deno.env.get("PIPELINE_CHECKPOINT_DAYS") ?? 7);

export class Store {
  /** Locks this process holds: path → its owner record, renewed by a heartbeat. */
  private held = new Map<string, Owner>();
  /** Remote entries refused (their ✗ lines), each named once. */
  private refused = new Set<string>();
  /** Locks named for a lease too far ahead (clock skew), each once. */
  private skewWarned = new Set<string>();

  /**
   * `remotes`: stores of the same layout (runs/, objects/) that missing runs are
   * fetched from, in order (see remote.ts: the folder committed to git, then S3).
   */
  constructor(
    readonly dir: string,
    readonly stats: StatCache,
    readonly remotes: Remote[] = [],
    /** False on a read-only mount: status works, reproduce refuses (see assertWritable). */
    readonly writable = true,
    /** Content → normalised code hash and specifiers, for cache keys (see code.ts). */
    readonly code = new CodeCache(join(dir, "code.json")),
  ) {}

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

  /** The committed folder remote's directory, if it is one of the remotes. */
  get folderRemote(): string | undefined {
    return this.remotes.find((r): r is FolderRemote => r instanceof FolderRemote)?.dir;
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
    const entry = await readEntry(path, key);
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

  /**
   * The remote's entry for key, if it is one to trust (see entry.ts): each refusal is a ✗ line
   * naming the entry and the field. `locked`: what the lock file records for the stage.
   */
  private async trustedEntry(remote: Remote, key: string, locked?: LockStage): Promise<RunEntry | undefined> {
    const entry = await remote.readEntry(key);
    if (!entry) return undefined;
    const problem = isCorrupt(entry) ? entry.corrupt : lockProblem(entry, locked);
    if (!problem) return entry as RunEntry;
    const stage = entry.stage ? ` (${entry.stage})` : "";
    const line = `✗ the run entry ${key}.json${stage} in ${remote.url} is corrupt (${problem}): not restored from it`;
    if (!this.refused.has(line)) this.warn(line); // once, though fetch asks for a whole run, then a thin one
    this.refused.add(line);
    return undefined;
  }

  /**
   * The remote's entry for key if fetch() would restore it (every file there, with its hash),
   * read without copying anything: what status and --dry-run ask.
   */
  async remoteEntry(key: string, locked?: LockStage): Promise<RunEntry | undefined> {
    let thin: RunEntry | undefined;
    for (const remote of this.remotes) {
      const entry = await this.trustedEntry(remote, key, locked);
      if (!entry) continue;
      const files = Object.entries(entry.outputs);
      const there = await Promise.all(files.map(([, { hash, size }]) => remote.has(hash, size)));
      if (there.every(Boolean)) return entry;
      const absent = files.filter((_, i) => !there[i]).map(([rel]) => rel);
      if (!thin && keepsSmallOnly(remote, entry, absent)) thin = { ...entry, absent };
    }
    return thin;
  }

  /**
   * Copy a run from the first remote that has it whole, checking every file's hash; else, from the
   * committed folder, the run without its big files (see RunEntry.absent); undefined if neither.
   */
  async fetch(key: string, locked?: LockStage): Promise<RunEntry | undefined> {
    if (!this.writable) return undefined;
    return await this.fetchFrom(key, false, locked) ?? await this.fetchFrom(key, true, locked);
  }

  private async fetchFrom(key: string, thin: boolean, locked?: LockStage): Promise<RunEntry | undefined> {
    for (const remote of this.remotes) {
      if (thin && !(remote instanceof FolderRemote)) continue;
      const entry = await this.trustedEntry(remote, key, locked);
      if (!entry) continue;
      const tmp = await this.makeTmp(key);
      try {
        const whole = await Promise.all(
          Object.entries(entry.outputs).map(async ([rel, { hash, size }]) => {
            const dest = join(tmp, rel);
            await Deno.mkdir(dirname(dest), { recursive: true });
            if ((await this.stats.hash(this.objectPath(hash)).catch(() => "")) === hash) {
              await Deno.link(this.objectPath(hash), dest); // already here (another run's output): no transfer
              return true;
            }
            if (thin && remote instanceof FolderRemote && size > remote.maxBytes) return rel; // kept elsewhere
            if (!(await remote.download(hash, size, dest))) {
              if (!thin && remote instanceof FolderRemote && size > remote.maxBytes) return false; // not an error
              this.warn(
                `✗ the run of ${entry.stage} in ${remote.url} is incomplete (${rel}: ${remote.where(hash)} ` +
                  "is missing): not restored from it",
              );
              return false;
            }
            const actual = await hashFile(dest);
            if (actual === hash) return true;
            // A damaged or truncated remote copy is never trusted.
            this.warn(
              `✗ the remote object ${remote.where(hash)} (${rel} of ${entry.stage}) is corrupt ` +
                `(${(await Deno.stat(dest)).size} bytes, sha256 ${actual.slice(0, 12)}…; recorded ${size} bytes, ` +
                `${hash.slice(0, 12)}…): not restored from it`,
            );
            return false;
          }),
        );
        if (!whole.every(Boolean)) continue;
        const absent = whole.filter((w): w is string => typeof w === "string");
        if (thin !== absent.length > 0) continue;
        const { outputs: _o, outputsHash: _h, absent: _a, ...partial } = entry;
        const committed = await this.commit(tmp, partial);
        if (!absent.length) return committed;
        // The entry names every output, the absent ones by hash (its outputsHash checked in trustedEntry):
        // downstream keys are those of the whole run.
        const thinEntry: RunEntry = { ...committed, outputs: entry.outputs, outputsHash: entry.outputsHash, absent };
        await writeFileAtomic(this.entryPath(key), JSON.stringify(thinEntry, null, 1));
        return thinEntry;
      } finally {
        await Deno.remove(tmp, { recursive: true }).catch(() => {});
        await Deno.remove(`${tmp}.tree`, { recursive: true }).catch(() => {});
      }
    }
    return undefined;
  }

  /** Do the entry's files still hold the bytes it recorded? (stat cache first, bytes when stat changed) */
  async verify(entry: RunEntry): Promise<Verdict> {
    for (const [rel, { hash }] of Object.entries(entry.outputs)) {
      if (entry.absent?.includes(rel)) continue;
      let actual: string;
      try {
        actual = await this.stats.hash(join(this.treeDir(entry.key), rel));
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
        actual = "missing";
      }
      if (actual !== hash) return { ok: false, file: rel, expected: hash, actual };
    }
    return { ok: true };
  }

  /**
   * Fetch a thin run's absent outputs from the remotes that have them (each checked against its
   * hash) into its tree. Returns the entry, whole if it could be filled, with what is still absent.
   */
  async fill(entry: RunEntry): Promise<RunEntry> {
    if (!entry.absent?.length || !this.writable) return entry;
    const absent: string[] = [];
    for (const rel of entry.absent) {
      const { hash, size } = entry.outputs[rel];
      const obj = this.objectPath(hash);
      let have = (await this.stats.hash(obj).catch(() => "")) === hash;
      for (const remote of this.remotes) {
        if (have) break;
        const tmp = `${obj}.${Deno.pid}.part`;
        await Deno.mkdir(dirname(obj), { recursive: true });
        try {
          if (!(await remote.download(hash, size, tmp))) continue;
          if ((await hashFile(tmp)) !== hash) {
            this.warn(`✗ the remote object ${remote.where(hash)} (${rel} of ${entry.stage}) is corrupt: not used`);
            continue;
          }
          await Deno.chmod(tmp, 0o444);
          await Deno.rename(tmp, obj);
          have = true;
        } finally {
          await Deno.remove(tmp).catch(() => {});
        }
      }
      if (!have) {
        absent.push(rel);
        continue;
      }
      const dest = join(this.treeDir(entry.key), rel);
      await Deno.mkdir(dirname(dest), { recursive: true });
      await Deno.remove(dest).catch(() => {});
      await linkOrCopy(obj, dest);
    }
    const { absent: _, ...whole } = entry;
    const filled: RunEntry = absent.length ? { ...whole, absent } : whole;
    await writeFileAtomic(this.entryPath(entry.key), JSON.stringify(filled, null, 1));
    return filled;
  }

  /** Forget a run whose bytes went bad: its entry, its tree, and the bad object. */
  async discard(entry: RunEntry, badHash?: string) {
    await Deno.remove(this.entryPath(entry.key)).catch(() => {});
    await Deno.remove(this.treeDir(entry.key), { recursive: true }).catch(() => {});
    if (badHash) await Deno.remove(this.objectPath(badHash)).catch(() => {});
  }

  /** A fresh private directory for one run; removed by the caller or by gc after a crash. */
  async makeTmp(key: string): Promise<string> {
    // key.pid.uuid@host: gcTmp judges the pid only on its own host.
    const dir = join(
      this.dir,
      "tmp",
      `${key.slice(0, 16)}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}@${hostTag()}`,
    );
    await Deno.mkdir(dir, { recursive: true });
    return dir;
  }

  /**
   * Remove temporary directories of processes that no longer exist (killed runs; another
   * host's after keepDays()), and checkpoints no lock holds: at once when empty or
   * their run is committed, after keepDays() when a failed run left them to resume from.
   */
  async gcTmp() {
    const old = (path: string, days: number) =>
      Deno.stat(path).then((i) => Date.now() - (i.mtime?.getTime() ?? 0) > days * 86_400_000, () => false);
    for await (const e of Deno.readDir(join(this.dir, "tmp"))) {
      const [base, host = hostTag()] = e.name.split("@");
      const pid = Number(base.split(".")[1]);
      const path = join(this.dir, "tmp", e.name);
      const dead = host.split(".")[0] === hostTag()
        ? pid && pid !== Deno.pid && !processAlive(pid)
        : await old(path, keepDays()); // another host's: we cannot see its process, only its age
      if (dead) await Deno.remove(path, { recursive: true }).catch(() => {});
    }
    await this.gcPartialEntries();
    for await (const e of Deno.readDir(join(this.dir, "checkpoints"))) {
      if (await this.holder(e.name)) continue;
      const path = this.checkpointDir(e.name);
      const empty = (await listFiles(path).catch(() => [""])).length === 0;
      // Committed: the key's run entry is newer than every file of the checkpoint. A checkpoint
      // written after its key's entry is a --force rerun's, kept to resume like a failed run's.
      const entryAt = await Deno.stat(this.entryPath(e.name)).then((i) => i.mtime?.getTime() ?? 0, () => undefined);
      const committed = entryAt !== undefined && (await newestMtime(path)) <= entryAt;
      if (empty || committed || (await old(path, keepDays()))) {
        await Deno.remove(path, { recursive: true }).catch(() => {});
      }
    }
    for await (const e of Deno.readDir(join(this.dir, "logs"))) {
      const path = join(this.dir, "logs", e.name);
      if (await old(path, keepDays())) await Deno.remove(path).catch(() => {});
    }
  }

  /**
   * A run entry's temporary sibling (runs/<key>.json.<pid>.<rand>.tmp, see writeFileAtomic) whose
   * writer is gone: a publish that failed or was killed. Collected by gcTmp (reproduce, pull) and gc.
   */
  async gcPartialEntries() {
    const old = (path: string, secs: number) =>
      Deno.stat(path).then((i) => Date.now() - (i.mtime?.getTime() ?? 0) > secs * 1000, () => false);
    for await (const e of Deno.readDir(join(this.dir, "runs"))) {
      const pid = atomicTmpPid(e.name);
      if (!pid || pid === Deno.pid) continue;
      const path = join(this.dir, "runs", e.name);
      // A write takes milliseconds: a minute-old one whose pid is not alive here is no other host's
      // either (a shared cache); any is collected after keepDays().
      if ((!processAlive(pid) && (await old(path, 60))) || (await old(path, keepDays() * 86_400))) {
        await Deno.remove(path).catch(() => {});
      }
    }
  }

  /**
   * Move a finished run's files into the store and write its entry (last).
   * `outDir` must be inside this store's tmp/ (same filesystem: renames are atomic).
   */
  async commit(outDir: string, partial: Omit<RunEntry, "outputs" | "outputsHash">): Promise<RunEntry> {
    const outputs: RunEntry["outputs"] = {};
    const treeTmp = `${outDir}.tree`;
    await Deno.mkdir(treeTmp, { recursive: true });
    const linked: Array<[string, string]> = [];
    for (const rel of await listFiles(outDir)) {
      const src = join(outDir, rel);
      const info = await Deno.stat(src);
      const hash = await this.stats.rehash(src);
      this.stats.forget(src);
      const obj = this.objectPath(hash);
      let have = false;
      try {
        have = (await this.stats.hash(obj)) === hash;
        if (!have) await Deno.remove(obj); // a corrupted object: replace it
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      }
      await Deno.mkdir(dirname(join(treeTmp, rel)), { recursive: true });
      if (have) {
        // gc may remove an unlinked object at any moment: if it just did, store ours instead.
        have = await Deno.link(obj, join(treeTmp, rel)).then(() => true, (e) => {
          if (e instanceof Deno.errors.NotFound) return false;
          throw e;
        });
      }
      if (!have) {
        // Linked into the tree before it becomes an object: an object with one link is garbage to gc.
        await Deno.mkdir(dirname(obj), { recursive: true });
        await Deno.chmod(src, 0o444);
        await linkOrCopy(src, join(treeTmp, rel));
        await moveOrCopy(src, obj);
      }
      linked.push([join(this.treeDir(partial.key), rel), hash]);
      outputs[rel] = { hash, size: info.size };
    }
    const tree = this.treeDir(partial.key);
    await Deno.remove(tree, { recursive: true }).catch(() => {}); // a leftover of a killed commit
    await Deno.rename(treeTmp, tree);
    // Linking changed the inodes' ctime: record the fresh stat with the hash we just computed.
    for (const [path, hash] of linked) this.stats.remember(path, await Deno.stat(path), hash);
    const entry: RunEntry = { ...partial, outputs, outputsHash: sha256(canonicalJson(outputs)) };
    const text = JSON.stringify(entry, null, 1);
    await writing(this.entryPath(entry.key), text.length, () => writeFileAtomic(this.entryPath(entry.key), text));
    await this.stats.save();
    return entry;
  }

  /** The same outputs under another key (accept): hard links to the objects, committed like a run. */
  async relink(from: RunEntry, partial: Omit<RunEntry, "outputs" | "outputsHash">): Promise<RunEntry> {
    const tmp = await this.makeTmp(partial.key);
    try {
      const out = join(tmp, "out");
      for (const [rel, { hash }] of Object.entries(from.outputs)) {
        await Deno.mkdir(dirname(join(out, rel)), { recursive: true });
        await linkOrCopy(this.objectPath(hash), join(out, rel));
      }
      return await this.commit(out, partial);
    } finally {
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
    }
  }

  /** Who holds `name`'s lock, if anyone alive does ("pid 12", or "pid 12 on node7"). */
  async holder(name: string): Promise<string | undefined> {
    const owner = parseOwner(await Deno.readTextFile(join(this.dir, "locks", `${name}.lock`)).catch(() => ""));
    return owner && ownerAlive(owner) ? describeOwner(owner) : undefined;
  }

  /** Record, in the lock we hold, who computes `name` (its executor's reference), so a later run can stop it if we die. */
  async lockWorker(name: string, worker: WorkerRef) {
    const path = join(this.dir, "locks", `${name}.lock`);
    const owner = this.held.get(path);
    if (!owner) return;
    owner.worker = worker;
    await writeFileAtomic(path, JSON.stringify(owner));
  }

  /** Note that this process uses run `key` (gc keeps it while we live); see gc.ts. */
  async markInUse(key: string) {
    await Deno.writeTextFile(join(this.dir, "locks", `inuse.${Deno.pid}`), key + "\n", { append: true });
  }

  async clearInUse() {
    await Deno.remove(join(this.dir, "locks", `inuse.${Deno.pid}`)).catch(() => {});
  }

  /** Like lock, without waiting: undefined while another live process holds it. */
  async tryLock(name: string): Promise<(() => Promise<void>) | undefined> {
    const path = join(this.dir, "locks", `${name}.lock`);
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        using f = await Deno.open(path, { write: true, createNew: true });
        await f.write(new TextEncoder().encode(JSON.stringify(me()))); // the owner format lock() writes
        return () => Deno.remove(path).catch(() => {});
      } catch (e) {
        if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
      }
      if (await this.holder(name)) return undefined;
      await Deno.remove(path).catch(() => {}); // a dead holder's: take it over
    }
    return undefined;
  }

  /**
   * Exclusive right to build `key` across processes and hosts. While a live owner
   * holds it, calls onWait once and polls; a dead owner's lock is stale (see lease.ts).
   */
  async lock(name: string, onWait: (who: string) => void): Promise<() => Promise<void>> {
    const path = join(this.dir, "locks", `${name}.lock`);
    let warned = false;
    /** A lease too far ahead (see below): its text and when it was first seen here. */
    let far: { text: string; since: number } | undefined;
    while (true) {
      const owner = me();
      try {
        using f = await Deno.open(path, { write: true, createNew: true });
        await f.write(new TextEncoder().encode(JSON.stringify(owner)));
        return this.hold(path, owner);
      } catch (e) {
        if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
      }
      const text = await Deno.readTextFile(path).catch(() => "");
      const holder = parseOwner(text);
      // An unreadable lock is being written (createNew, then write), unless it stayed so for 10 s
      // or holds something else than an owner (garbage: named while it is removed).
      const torn = !holder && (text !== "" ||
        (await Deno.stat(path).then((i) => Date.now() - (i.mtime?.getTime() ?? 0) > 10_000, () => true)));
      // Another host's lease ends further ahead than a lease lasts: its clock is off, or the file is bad.
      // Named once with the fix; then judged by this host's clock alone: a live holder rewrites its
      // lock every lease/3, so one unchanged for a whole lease has no holder.
      let skewed = false;
      if (holder && holder.host !== hostId() && holder.lease - Date.now() > leaseMs() * 1.5) {
        if (far?.text !== text) far = { text, since: Date.now() };
        if (!this.skewWarned.has(path)) {
          this.skewWarned.add(path);
          this.warn(
            `✗ the lock ${path} (${describeOwner(holder)}) holds a lease until ${
              new Date(holder.lease).toISOString()
            }, ` +
              `${formatMs(holder.lease - Date.now())} ahead, longer than a lease lasts (${formatMs(leaseMs())}): ` +
              `clock skew between hosts or a bad lock file — synchronise the hosts' clocks (NTP); if ${holder.host} ` +
              `runs nothing, the lock is taken over once it stays unchanged for ${formatMs(leaseMs())}`,
          );
        }
        skewed = Date.now() - far.since > leaseMs();
      } else far = undefined;
      if (torn || skewed || (holder && !ownerAlive(holder))) {
        if (torn && text !== "") {
          this.warn(`✗ the lock ${path} is corrupt (${JSON.stringify(text.slice(0, 40))}, not an owner): removing it`);
        }
        // Its engine died. Its worker may compute on (a synchronous loop, a batch job): its executor stops it first.
        if (holder?.worker) await stopWorker(holder.worker);
        // Remove only the lock judged stale: if it changed meanwhile, someone else took it over.
        if ((await Deno.readTextFile(path).catch(() => "")) === text) await Deno.remove(path).catch(() => {});
        continue;
      }
      if (!holder) {
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      if (!warned) {
        onWait(describeOwner(holder));
        warned = true;
      }
      await new Promise((r) => setTimeout(r, 150));
    }
  }

  /** Renew the lease while we hold the lock; release removes it if it still names us. */
  private hold(path: string, owner: Owner): () => Promise<void> {
    this.held.set(path, owner);
    let released = false;
    let beating = Promise.resolve();
    const beat = setInterval(() => {
      beating = (async () => {
        const now = parseOwner(await Deno.readTextFile(path).catch(() => ""));
        if (released || !sameOwner(now, owner)) return; // released, or lost (our lease expired, another took over)
        owner.lease = Date.now() + leaseMs();
        await writeFileAtomic(path, JSON.stringify(owner)).catch(() => {});
      })();
    }, leaseMs() / 3);
    Deno.unrefTimer(beat);
    return async () => {
      released = true;
      clearInterval(beat);
      await beating; // a renewal under way must not write the lock again after we removed it
      this.held.delete(path);
      if (sameOwner(parseOwner(await Deno.readTextFile(path).catch(() => "")), owner)) {
        await Deno.remove(path).catch(() => {});
      }
    };
  }
}

/** 90 s → "1m30s", 2500 ms → "2.5 s". */
function formatMs(ms: number): string {
  const s = ms / 1000;
  if (s < 60) return `${Number(s.toFixed(1))} s`;
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = Math.round(s % 60);
  return h ? `${h}h${String(m).padStart(2, "0")}m` : `${m}m${String(r).padStart(2, "0")}s`;
}

/** Hard links need one filesystem; across two (EXDEV) or where links are refused, copy. */
async function linkOrCopy(src: string, dest: string) {
  try {
    await Deno.link(src, dest);
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) throw e;
    await Deno.copyFile(src, dest);
    await Deno.chmod(dest, 0o444);
  }
}

async function moveOrCopy(src: string, dest: string) {
  try {
    await Deno.rename(src, dest);
  } catch (e) {
    if (!/os error 18|cross-device/i.test(String(e))) throw e;
    const tmp = `${dest}.${Deno.pid}.tmp`; // copy, then rename: an object is never half there
    await Deno.copyFile(src, tmp);
    await Deno.rename(tmp, dest);
    await Deno.remove(src);
  }
}

/** The run entry at path, stored under key: undefined if absent, { corrupt } if not one to trust (entry.ts). */
async function readEntry(path: string, key: string) {
  try {
    return parseEntry(await Deno.readTextFile(path), key);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

export function processAlive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return Deno.build.os !== "linux"; // without /proc, assume alive (never steal a live lock)
  }
}

/** Every file under dir, as sorted relative paths with "/" separators. */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      const p = join(d, e.name);
      if (e.isDirectory) await walk(p);
      else if (e.isFile) out.push(relative(dir, p).split("\\").join("/"));
    }
  };
  await walk(dir);
  return out.sort();
}

/** Does a remote that keeps small files only (the committed folder) lack exactly the entry's big files? */
function keepsSmallOnly(remote: Remote, entry: RunEntry, absent: string[]): boolean {
  return remote instanceof FolderRemote && absent.every((rel) => entry.outputs[rel].size > remote.maxBytes);
}

/** The latest modification time of a directory and everything in it (ms; 0 if unreadable). */
async function newestMtime(dir: string): Promise<number> {
  let t = (await Deno.stat(dir).catch(() => undefined))?.mtime?.getTime() ?? 0;
  for (const rel of await listFiles(dir).catch(() => [])) {
    t = Math.max(t, (await Deno.stat(join(dir, rel)).catch(() => undefined))?.mtime?.getTime() ?? 0);
  }
  return t;
}
