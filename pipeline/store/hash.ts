// SHA-256 of strings, files and canonical JSON, and a stat cache so that an
// unchanged large file is not re-hashed (the same trick as DVC's state db).
import { createHash } from "node:crypto";

export function sha256(text: string | Uint8Array): string {
  return createHash("sha256").update(text).digest("hex");
}

/** JSON with sorted object keys: equal values give equal strings. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(
    value,
    (_k, v) =>
      v && typeof v === "object" && !Array.isArray(v)
        ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
        : v,
  );
}

export async function hashFile(path: string): Promise<string> {
  const h = createHash("sha256");
  using file = await Deno.open(path, { read: true });
  const buf = new Uint8Array(1 << 20);
  while (true) {
    const n = await file.read(buf);
    if (n === null) break;
    h.update(buf.subarray(0, n));
  }
  return h.digest("hex");
}

interface StatRecord {
  size: number;
  mtime: number;
  ctime: number;
  ino: number;
  hash: string;
}

function fingerprint(info: Deno.FileInfo) {
  return {
    size: info.size,
    mtime: info.mtime?.getTime() ?? 0,
    ctime: info.ctime?.getTime() ?? 0,
    ino: info.ino ?? 0,
  };
}

/**
 * Remembers (size, mtime, ctime, inode) → hash per path. A file whose stat is
 * unchanged is trusted without reading it; any write changes mtime/ctime.
 */
export class StatCache {
  private records: Record<string, StatRecord> = {};
  private dirty = false;
  /** On a read-only cache the records are used but never saved. */
  readOnly = false;

  constructor(private readonly file: string) {}

  static async open(file: string): Promise<StatCache> {
    const cache = new StatCache(file);
    try {
      cache.records = JSON.parse(await Deno.readTextFile(file));
    } catch {
      // Missing or unreadable: start empty (it is only an optimisation).
    }
    return cache;
  }

  /** Hash of the file, from the cache when its stat is unchanged. */
  async hash(path: string): Promise<string> {
    const info = await Deno.stat(path);
    const fp = fingerprint(info);
    const known = this.records[path];
    if (
      known && known.size === fp.size && known.mtime === fp.mtime && known.ctime === fp.ctime &&
      known.ino === fp.ino
    ) {
      return known.hash;
    }
    const hash = await hashFile(path);
    this.remember(path, info, hash);
    return hash;
  }

  /** Hash by reading the file, ignoring (and refreshing) the cached record. */
  async rehash(path: string): Promise<string> {
    const hash = await hashFile(path);
    this.remember(path, await Deno.stat(path), hash);
    return hash;
  }

  remember(path: string, info: Deno.FileInfo, hash: string) {
    this.records[path] = { ...fingerprint(info), hash };
    this.dirty = true;
  }

  forget(path: string) {
    if (path in this.records) {
      delete this.records[path];
      this.dirty = true;
    }
  }

  async save() {
    if (!this.dirty || this.readOnly) return;
    await writeFileAtomic(this.file, JSON.stringify(this.records));
    this.dirty = false;
  }
}

/** Write to a temporary sibling, then rename: readers see the old or the new file, never half. */
export async function writeFileAtomic(path: string, data: string | Uint8Array) {
  const tmp = `${path}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  try {
    if (typeof data === "string") await Deno.writeTextFile(tmp, data);
    else await Deno.writeFile(tmp, data);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {}); // a full disk leaves no half-written sibling (killed: see Store.gcTmp)
    throw e;
  }
}

/** `<file>.<pid>.<rand>.tmp`, a writeFileAtomic left by a process: that pid, else undefined. */
export function atomicTmpPid(name: string): number | undefined {
  const m = /\.(\d+)\.[0-9a-f]{8}\.tmp$/.exec(name);
  return m ? Number(m[1]) : undefined;
}
