// Remotes: stores of the cache's own layout (runs/<key>.json + objects/ab/cdef…) that runs are
// pushed to and restored from: the folder committed to git (pipeline/remote/, small files only),
// and the shared remote named by a URL (registry.ts: s3://, https://, ssh://, file://). Each is one
// Remote: the protocol, written once here, over a Backend (backend.ts: stat, read, get, put).
// Push: runs already there are skipped (unless the local run completes the remote's entry with outputs
// older code did not write), then objects (those not there whole), then each entry last, the commit
// point; a thin run (restored without its big files) is left out where it is not whole.
// Pull: entries are parsed by store/entry.ts, and every object is checked against its hash by the
// Store before it is used (store/transfers.ts).
import { relative } from "node:path";
import type { RunEntry } from "../store/entry.ts";
import { type EntryRead, parseEntry } from "../store/entry.ts";
import { formatDuration } from "../terminal/progress.ts";
import { type LocalSettings, readLocalSettings } from "../engine/settings.ts";
import { PipelineError } from "../types.ts";
import type { Backend } from "./backend.ts";
import { FolderBackend } from "./folder.ts";
import { findScheme, writableExamples } from "./registry.ts";

export const objectKey = (hash: string) => `objects/${hash.slice(0, 2)}/${hash.slice(2)}`;
const entryKey = (key: string) => `runs/${key}.json`;

/**
 * Whether `e` completes `there`, the remote's entry of the same key, and replaces it: `e` names every
 * output `there` names, and more (older code wrote fewer; `reproduce --force` made the rest), and
 * either agrees on every shared output, or `there` is a run carried over by `accept` (older code's
 * bytes) and `e` a run of the current code: `--force` compared its whole curve with the carried-over
 * run's before committing it (run.ts), and a clone restoring the carried-over entry would find a
 * report built from this one stale.
 */
export function completes(e: RunEntry, there: RunEntry): boolean {
  const named = Object.entries(there.outputs);
  if (Object.keys(e.outputs).length <= named.length || !named.every(([rel]) => rel in e.outputs)) return false;
  const carriedOver = !!there.record?.accepted && !e.record?.accepted;
  return carriedOver || named.every(([rel, o]) => e.outputs[rel].hash === o.hash);
}

export class Remote {
  /** Files above this are left out of pushes and restored thin (Infinity: none). */
  readonly maxBytes: number;
  /** Set by push/pull to show a progress line. */
  progress?: TransferProgress;
  private limiter: Limiter;
  private ready?: Promise<void>;

  /** `maxBytes`: a size limit of this remote's own (default: the backend's, if any). */
  constructor(readonly backend: Backend, readonly url = backend.url, opts: { maxBytes?: number } = {}) {
    this.maxBytes = opts.maxBytes ?? backend.maxBytes ?? Infinity;
    this.limiter = new Limiter(backend.jobs ?? 4);
  }

  private open(): Promise<void> {
    return this.ready ??= this.backend.open?.() ?? Promise.resolve();
  }

  /** The run entry stored under key, undefined if none, { corrupt } if it is not one to trust (see entry.ts). */
  async readEntry(key: string): Promise<EntryRead> {
    await this.open();
    const text = await this.limiter.run(() => this.backend.read(entryKey(key)));
    return text === undefined ? undefined : parseEntry(text, key);
  }

  /** Is object `hash` there whole (its size; its hash where the backend checks it cheaply)? For status and --dry-run. */
  async has(hash: string, size: number): Promise<boolean> {
    await this.open();
    return await this.limiter.run(async () => {
      if (this.backend.holds) return await this.backend.holds(objectKey(hash), hash);
      return (await this.backend.stat(objectKey(hash))) === size;
    });
  }

  /** Write object `hash` (expected `size` bytes) to dest; false if the remote lacks it. The caller verifies it. */
  async download(hash: string, size: number, dest: string): Promise<boolean> {
    await this.open();
    const progress = this.progress;
    progress?.plan(1, size);
    return await this.limiter.run(async () => {
      let got: boolean;
      try {
        got = await this.backend.get(objectKey(hash), dest, (n) => progress?.add(0, n));
      } catch (e) {
        if (!diskFull(e)) throw e;
        throw new PipelineError(
          `disk full while pulling ${this.where(hash)} (${formatBytes(size)}) into ${dirnameOf(dest)}`,
          "free space (or point PIPELINE_CACHE at a larger disk) and pull again: runs already pulled are kept",
        );
      }
      if (got) progress?.add(1, 0);
      return got;
    });
  }

  /** Can this remote take the run whole, as far as it keeps files (a thin run lacks some)? */
  private pushable(e: RunEntry): boolean {
    return (e.absent ?? []).every((rel) => e.outputs[rel].size > this.maxBytes);
  }

  /** Copy runs in, objects first and each entry last; skips what is there. Returns the keys it holds now. */
  async push(entries: RunEntry[], objectPath: (hash: string) => string): Promise<Set<string>> {
    const put = this.backend.put?.bind(this.backend);
    if (this.backend.readOnly || !put) {
      throw new PipelineError(
        `${this.url} is read-only: runs are pulled from it, never pushed`,
        `push to a writable remote (${writableExamples().join(", ")}, or "git"), then publish its folder there`,
      );
    }
    await this.open();
    const held = new Set<string>();
    const todo: RunEntry[] = [];
    await Promise.all(
      entries.filter((e) => this.pushable(e)).map((e) =>
        this.limiter.run(async () => {
          const there = await this.backend.read(entryKey(e.key)).then((t) => t !== undefined && parseEntry(t, e.key));
          if (there && !("corrupt" in there) && !completes(e, there)) held.add(e.key);
          else todo.push(e);
        })
      ),
    );
    const objects = new Map<string, number>();
    for (const e of todo) {
      for (const o of Object.values(e.outputs)) if (o.size <= this.maxBytes) objects.set(o.hash, o.size);
    }
    const send: Array<[string, number]> = [];
    // An object of the wrong size (a leftover of a killed upload on a server that writes in place) is replaced.
    await Promise.all([...objects].map(async ([hash, size]) => {
      if (!(await this.has(hash, size))) send.push([hash, size]);
    }));
    const bytes = send.reduce((s, [, n]) => s + n, 0);
    this.progress?.out(
      `push ${this.url}: ${held.size} runs already there; ${send.length} objects to send (${formatBytes(bytes)}), ` +
        `${objects.size - send.length} already there`,
    );
    this.progress?.plan(send.length, bytes);
    await Promise.all(send.map(([hash]) =>
      this.limiter.run(async () => {
        await put(objectKey(hash), objectPath(hash), (n) => this.progress?.add(0, n));
        this.progress?.add(1, 0);
      })
    ));
    // Entries last: a run becomes visible only once every object it names is there whole. It names
    // every output, those over maxBytes by hash: a clone restores it thin, with the whole run's keys.
    await Promise.all(todo.map((e) =>
      this.limiter.run(async () => {
        const text = JSON.stringify({ ...e, absent: undefined }, null, 1) + "\n";
        await put(entryKey(e.key), new TextEncoder().encode(text));
        held.add(e.key);
      })
    ));
    return held;
  }

  /** Where object `hash` is, for error messages. */
  where(hash: string) {
    return `${this.url.replace(/\/+$/, "")}/${objectKey(hash)}`;
  }

  async close() {
    await this.backend.close?.();
  }
}

/** The remote a URL names (registry.ts), with the machine's settings (keys, credentials). */
export async function openRemote(url: string, settings: LocalSettings = {}): Promise<Remote> {
  const scheme = findScheme(url);
  if (!scheme) {
    throw new PipelineError(
      `unsupported remote ${JSON.stringify(url)}`,
      `use ${writableExamples(true).join(", ")}, or "git" for the committed pipeline/remote/ ` +
        '(--remote or "remote" in pipeline/config.local.json)',
    );
  }
  return new Remote(await scheme.open(url, settings));
}

/**
 * The remotes a cache restores from, in order: the committed folder, then the
 * shared remote named by `url` (--remote) or by pipeline/config.local.json's
 * "remote". "git" names the folder alone. The last one is where push goes.
 */
export async function openRemotes(root: string, folder: string, url?: string): Promise<Remote[]> {
  const git = new Remote(new FolderBackend(folder, 8 << 20), relative(root, folder) || folder);
  const settings = await readLocalSettings(root);
  url ??= settings.remote;
  if (!url || url === "git") return [git];
  const shared = await openRemote(url, settings);
  // Restores during reproduce say how far they are every 10 s (push and pull set a live line of their own).
  shared.progress = new TransferProgress(`restore ${shared.url}`, undefined, false);
  return [git, shared];
}

function diskFull(e: unknown): boolean {
  const err = e as { code?: string; message?: string };
  return err?.code === "ENOSPC" || /No space left on device|os error 28/.test(err?.message ?? "");
}

const dirnameOf = (path: string) => path.replace(/\/[^/]*$/, "") || "/";

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
