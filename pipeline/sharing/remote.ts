// Remotes: stores of the cache's own layout (runs/<key>.json + objects/ab/cdef…)
// that runs are pushed to and restored from. Two kinds: the folder committed to
// git (pipeline/remote/, small results only) and S3 (pipeline/sharing/s3.ts: everything).
// Either way a run entry is written after all its objects (the commit point),
// and every object is checked against its hash by the Store before it is used.
import { dirname, join, relative } from "node:path";
import type { RunEntry } from "../store/cache.ts";
import { type EntryRead, parseEntry } from "../store/entry.ts";
import { hashFile, writeFileAtomic } from "../store/hash.ts";
import { formatDuration } from "../terminal/progress.ts";
import { readLocalSettings } from "../engine/settings.ts";
import { PipelineError } from "../types.ts";

export interface Remote {
  /** For messages: pipeline/remote, s3://bucket/prefix. */
  readonly url: string;
  /** The run entry stored under key, undefined if none, { corrupt } if it is not one to trust (see entry.ts). */
  readEntry(key: string): Promise<EntryRead>;
  /**
   * Is object `hash` there whole (the right size; the folder remote checks its hash too)? For
   * status and --dry-run, which say what would be restored without copying anything.
   */
  has(hash: string, size: number): Promise<boolean>;
  /** Write object `hash` (expected `size` bytes) to dest; false if the remote lacks it. The caller verifies it. */
  download(hash: string, size: number, dest: string): Promise<boolean>;
  /** Copy runs in, objects first and each entry last; skips what is there. Returns the keys it holds now. */
  push(entries: RunEntry[], objectPath: (hash: string) => string): Promise<Set<string>>;
  /** Where object `hash` is, for error messages. */
  where(hash: string): string;
  /** Set by push/pull to show a progress line. */
  progress?: TransferProgress;
}

export const objectKey = (hash: string) => `objects/${hash.slice(0, 2)}/${hash.slice(2)}`;

/**
 * The committed folder: a plain copy of files up to maxBytes (git is not a place for datasets or
 * weights) and every run entry; a run with bigger files is restored without them (RunEntry.absent).
 */
export class FolderRemote implements Remote {
  constructor(readonly dir: string, readonly maxBytes = 8 << 20, readonly url = dir) {}

  async readEntry(key: string): Promise<EntryRead> {
    try {
      return parseEntry(await Deno.readTextFile(join(this.dir, "runs", `${key}.json`)), key);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return undefined;
      throw e;
    }
  }

  async has(hash: string, _size: number): Promise<boolean> {
    try {
      return (await hashFile(join(this.dir, objectKey(hash)))) === hash;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return false;
      throw e;
    }
  }

  async download(hash: string, _size: number, dest: string): Promise<boolean> {
    try {
      await Deno.copyFile(join(this.dir, objectKey(hash)), dest);
      return true;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return false;
      throw e;
    }
  }

  async push(entries: RunEntry[], objectPath: (hash: string) => string): Promise<Set<string>> {
    const held = new Set<string>();
    for (const { absent: _, ...entry } of entries) {
      // Files over maxBytes stay out (the shared remote has them); the entry names them by hash, so a
      // clone restores the run without them and downstream keys are those of the whole run.
      for (const { hash, size } of Object.values(entry.outputs)) {
        if (size > this.maxBytes) continue;
        const dest = join(this.dir, objectKey(hash));
        await Deno.mkdir(dirname(dest), { recursive: true });
        await writeFileAtomic(dest, await Deno.readFile(objectPath(hash)));
      }
      await Deno.mkdir(join(this.dir, "runs"), { recursive: true });
      await writeFileAtomic(join(this.dir, "runs", `${entry.key}.json`), JSON.stringify(entry, null, 1) + "\n");
      held.add(entry.key);
    }
    return held;
  }

  where(hash: string) {
    return join(this.url, objectKey(hash));
  }
}

/**
 * The remotes a cache restores from, in order: the committed folder, then the
 * shared remote named by `url` (--remote) or by pipeline/config.local.json's
 * "remote". "git" names the folder alone. The last one is where push goes.
 */
export async function openRemotes(root: string, folder: string, url?: string): Promise<Remote[]> {
  const git = new FolderRemote(folder, 8 << 20, relative(root, folder) || folder);
  url ??= (await readLocalSettings(root)).remote;
  if (!url || url === "git") return [git];
  if (url.startsWith("s3://")) {
    const { S3Remote } = await import("./s3.ts"); // the SDK loads only when an S3 remote is used
    const s3 = S3Remote.fromUrl(url);
    // Restores during reproduce say how far they are every 10 s (push and pull set a live line of their own).
    s3.progress = new TransferProgress(`restore ${s3.url}`, undefined, false);
    return [git, s3];
  }
  throw new PipelineError(
    `unsupported remote ${JSON.stringify(url)}`,
    'use s3://bucket/prefix, or "git" for the committed pipeline/remote/ (--remote or "remote" in pipeline/config.local.json)',
  );
}

/** At most n tasks at once. */
export class Limiter {
  private active = 0;
  private queue: Array<() => void> = [];
  constructor(readonly n: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.n) await new Promise<void>((r) => this.queue.push(r));
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.queue.shift()?.();
    }
  }
}

const units = ["B", "KiB", "MiB", "GiB", "TiB"];
export function formatBytes(n: number): string {
  let i = 0;
  while (n >= 1024 && i < units.length - 1) (n /= 1024), i++;
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

const ETA_AFTER_S = 2;

/** "push s3://b/p: 12/40 objects · 1.2 GiB/3.4 GiB · 85.0 MiB/s · 20s left": live on a terminal, plain every 10 s. */
export class TransferProgress {
  objects = 0;
  bytes = 0;
  totalObjects = 0;
  totalBytes = 0;
  private start: number;
  private lastPlain = -Infinity;
  private live: boolean;
  constructor(
    readonly label: string,
    readonly out: (line: string) => void = (l) => console.error(l),
    live = Deno.stderr.isTerminal(),
    private readonly clock: () => number = () => performance.now(),
  ) {
    this.live = live && !Deno.env.get("PIPELINE_PLAIN") && !Deno.env.get("CI");
    this.start = clock();
  }

  plan(objects: number, bytes: number) {
    this.totalObjects += objects;
    this.totalBytes += bytes;
  }

  add(objects: number, bytes: number) {
    this.objects += objects;
    this.bytes += bytes;
    this.show(false);
  }

  line(): string {
    const secs = (this.clock() - this.start) / 1000;
    const rate = secs > 0 ? this.bytes / secs : 0;
    const fields = [
      `${this.objects}/${this.totalObjects} objects`,
      `${formatBytes(this.bytes)}/${formatBytes(this.totalBytes)}`,
      `${formatBytes(rate)}/s`,
    ];
    // No estimate from the first moments: a few small files in no time gave "9h59m left".
    if (rate > 0 && secs >= ETA_AFTER_S && this.bytes < this.totalBytes) {
      fields.push(`${formatDuration((this.totalBytes - this.bytes) / rate)} left`);
    }
    return `${this.label}: ${fields.join(" · ")}`;
  }

  show(final: boolean) {
    const now = this.clock();
    if (this.live) Deno.stderr.writeSync(new TextEncoder().encode(`\r\x1b[K${this.line()}${final ? "\n" : ""}`));
    else if (final || now - this.lastPlain >= 10_000) {
      this.out(this.line());
      this.lastPlain = now;
    }
  }
}
