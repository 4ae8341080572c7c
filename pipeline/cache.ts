// The content-addressed cache under .cache/:
//   objects/ab/cdef…   every output file, stored once by its SHA-256, read-only
//   trees/<key>/…      a stage run's outputs as hard links to objects
//   runs/<key>.json    the run entry; written last, so it is the commit point:
//                      a run killed at any moment leaves no entry to trust
//   locks/, tmp/, checkpoints/<key>/, memo/, stat.json, code.json
// An object no tree links to (link count 1) is garbage: see gc.ts.
import { dirname, join, relative } from "node:path";
import { CodeCache } from "./code.ts";
import { DiskFull, errorCode, isDiskFull } from "./faults.ts";
import { canonicalJson, hashFile, sha256, StatCache, writeFileAtomic } from "./hash.ts";
import { FolderRemote, type Remote } from "./remote.ts";
import { type ParamValue, PipelineError } from "./types.ts";

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
}

export type Verdict = { ok: true } | { ok: false; file: string; expected: string; actual: string };

export class Store {
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
      for (const sub of ["objects", "trees", "runs", "locks", "tmp", "checkpoints", "memo"]) {
        await Deno.mkdir(join(dir, sub), { recursive: true });
      }
      await Deno.remove(await Deno.makeTempFile({ dir: join(dir, "tmp"), prefix: `probe.${Deno.pid}.` })); // writable?
    } catch (e) {
      const code = errorCode(e);
      if (code === "ENOTDIR") {
        throw new PipelineError(
          `the cache ${dir} is not a directory (${info ? "a regular file is there" : "a parent of it is a file"})`,
          "point PIPELINE_CACHE at a directory (or unset it to use .cache/ in the project)",
        );
      }
      if (isDiskFull(e)) throw new DiskFull(dir, 1 << 20);
      if (code !== "EROFS" && code !== "EACCES" && !(e instanceof Deno.errors.PermissionDenied)) throw e;
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
    const entry = await readJson<RunEntry>(path);
    if (entry === "corrupt") {
      this.warn(`✗ the run entry ${path} is corrupt (truncated or not a run entry): discarding it, rebuilding the run`);
      if (this.writable) await Deno.remove(path).catch(() => {});
      return undefined;
    }
    return entry;
  }

  /** The cache's entry, else the remote's copied in (fetch): for a run that is needed now. */
  async readOrFetch(key: string): Promise<RunEntry | undefined> {
    return await this.readEntry(key) ?? await this.fetch(key);
  }

  /**
   * The remote's entry for key if fetch() would restore it (every file there, with its hash),
   * read without copying anything: what status and --dry-run ask.
   */
  async remoteEntry(key: string): Promise<RunEntry | undefined> {
    for (const remote of this.remotes) {
      const entry = await remote.readEntry(key);
      if (!entry || entry === "corrupt") continue;
      const there = await Promise.all(Object.values(entry.outputs).map(({ hash, size }) => remote.has(hash, size)));
      if (there.every(Boolean)) return entry;
    }
    return undefined;
  }

  /** Copy a run from the first remote that has it whole, checking every file's hash; undefined if none does. */
  async fetch(key: string): Promise<RunEntry | undefined> {
    if (!this.writable) return undefined;
    for (const remote of this.remotes) {
      const entry = await remote.readEntry(key);
      if (entry === "corrupt") {
        this.warn(`✗ the run entry ${key}.json in ${remote.url} is corrupt: not restored from it`);
      }
      if (!entry || entry === "corrupt") continue;
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
            if (!(await remote.download(hash, size, dest))) {
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
              `✗ ${remote.where(hash)} is corrupt (${(await Deno.stat(dest)).size} bytes, sha256 ${
                actual.slice(0, 12)
              }…; ` +
                `expected ${size} bytes, ${hash.slice(0, 12)}…): refused`,
            );
            return false;
          }),
        );
        if (!whole.every(Boolean)) continue;
        const { outputs: _o, outputsHash: _h, ...partial } = entry;
        return await this.commit(tmp, partial);
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

  /** Forget a run whose bytes went bad: its entry, its tree, and the bad object. */
  async discard(entry: RunEntry, badHash?: string) {
    await Deno.remove(this.entryPath(entry.key)).catch(() => {});
    await Deno.remove(this.treeDir(entry.key), { recursive: true }).catch(() => {});
    if (badHash) await Deno.remove(this.objectPath(badHash)).catch(() => {});
  }

  /** A fresh private directory for one run; removed by the caller or by gc after a crash. */
  async makeTmp(key: string): Promise<string> {
    const dir = join(this.dir, "tmp", `${key.slice(0, 16)}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}`);
    await Deno.mkdir(dir, { recursive: true });
    return dir;
  }

  /** Remove temporary directories of processes that no longer exist (killed runs). */
  async gcTmp() {
    for await (const e of Deno.readDir(join(this.dir, "tmp"))) {
      const pid = Number(e.name.split(".")[1]);
      if (pid && pid !== Deno.pid && !processAlive(pid)) {
        await Deno.remove(join(this.dir, "tmp", e.name), { recursive: true }).catch(() => {});
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
        await Deno.link(src, join(treeTmp, rel));
        await Deno.rename(src, obj);
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
    await writeFileAtomic(this.entryPath(entry.key), JSON.stringify(entry, null, 1));
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
        await Deno.link(this.objectPath(hash), join(out, rel));
      }
      return await this.commit(out, partial);
    } finally {
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
    }
  }

  /** The live process holding `name`'s lock, if any (e.g. another reproduce building that run now). */
  async holder(name: string): Promise<number | undefined> {
    const text = await Deno.readTextFile(join(this.dir, "locks", `${name}.lock`)).catch(() => "0");
    const pid = parseLock(text)?.[0];
    return pid && processAlive(pid) ? pid : undefined;
  }

  /** Record, in the lock we hold, the worker process building `name`, so a later run can stop it if we die. */
  async lockWorker(name: string, worker: number) {
    await Deno.writeTextFile(join(this.dir, "locks", `${name}.lock`), `${Deno.pid} ${worker}`);
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
        await f.write(new TextEncoder().encode(String(Deno.pid)));
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
   * Exclusive right to build `key` across processes. While another live
   * process holds it, calls onWait once and polls; a dead holder's lock is stale.
   */
  async lock(name: string, onWait: (pid: number) => void): Promise<() => Promise<void>> {
    const path = join(this.dir, "locks", `${name}.lock`);
    let warned = false;
    while (true) {
      try {
        using f = await Deno.open(path, { write: true, createNew: true });
        await f.write(new TextEncoder().encode(String(Deno.pid)));
        return () => Deno.remove(path).catch(() => {});
      } catch (e) {
        if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
      }
      const text = await Deno.readTextFile(path).catch(() => "0");
      const parsed = parseLock(text);
      // Empty: its holder is between creating and writing it, unless that was long ago (then killed there).
      const age = Date.now() - ((await Deno.stat(path).catch(() => undefined))?.mtime?.getTime() ?? Date.now());
      if (!parsed && (text !== "" || age > 5000)) {
        this.warn(`✗ the lock ${path} is corrupt (${JSON.stringify(text.slice(0, 40))}, not a pid): removing it`);
        await Deno.remove(path).catch(() => {});
        continue;
      }
      const [pid, worker] = parsed ?? [0, 0];
      if (pid && !processAlive(pid)) {
        // Its engine was killed. A worker busy in a synchronous loop never noticed: stop it before taking over.
        if (worker && isWorker(worker)) Deno.kill(worker, "SIGKILL");
        await Deno.remove(path).catch(() => {});
        continue;
      }
      if (!warned && pid) {
        onWait(pid);
        warned = true;
      }
      await new Promise((r) => setTimeout(r, 150));
    }
  }
}

/** Is pid one of our stage workers (not an unrelated process that reused the pid)? */
function isWorker(pid: number): boolean {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/cmdline`).includes("pipeline/worker.ts");
  } catch {
    return false;
  }
}

/** A lock's "pid" or "pid worker"; undefined if it holds anything else. */
function parseLock(text: string): [number, number] | undefined {
  const m = /^(\d+)(?: (\d+))?$/.exec(text.trim());
  return m ? [Number(m[1]), Number(m[2] ?? 0)] : undefined;
}

/** A run entry, undefined if absent, "corrupt" if it is not one (truncated, garbage). */
async function readJson<T extends RunEntry>(path: string): Promise<T | undefined | "corrupt"> {
  try {
    const value = JSON.parse(await Deno.readTextFile(path));
    return value && typeof value === "object" && typeof value.key === "string" && value.outputs ? value : "corrupt";
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    if (e instanceof SyntaxError) return "corrupt";
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
