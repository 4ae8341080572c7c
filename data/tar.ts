// A small streaming tar reader (ustar, GNU and pax long names) and a writer for
// synthetic archives. The reader never buffers file bodies: each chunk goes to
// the sink the caller returns for that entry.
import { PipelineError } from "../pipeline/types.ts";

export interface TarEntry {
  /** Path inside the archive, checked: relative, no ".." segment. */
  name: string;
  size: number;
  type: "file" | "dir" | "other";
}

export interface EntrySink {
  write(chunk: Uint8Array): Promise<unknown> | void;
  close(): Promise<unknown> | void;
}

const BLOCK = 512;
const dec = new TextDecoder();

function str(b: Uint8Array, off: number, len: number): string {
  const f = b.subarray(off, off + len);
  const z = f.indexOf(0);
  return dec.decode(z < 0 ? f : f.subarray(0, z));
}

function octal(b: Uint8Array, off: number, len: number): number {
  if (b[off] & 0x80) { // GNU base-256 for large numbers
    let v = b[off] & 0x7f;
    for (let i = 1; i < len; i++) v = v * 256 + b[off + i];
    return v;
  }
  const s = str(b, off, len).trim();
  return s === "" ? 0 : parseInt(s, 8);
}

/** Reject names that would land outside the target folder. */
export function checkEntryName(name: string): string {
  const parts = name.split(/[\\/]/);
  if (name.startsWith("/") || /^[A-Za-z]:/.test(name) || parts.includes("..")) {
    throw new PipelineError(
      `archive entry "${name}" points outside the extraction folder (path traversal)`,
      "the archive is not a genuine CIFAR-10 archive: use the official one (or a faithful copy)",
    );
  }
  return parts.filter((p) => p !== "" && p !== ".").join("/");
}

function corrupt(why: string): PipelineError {
  return new PipelineError(
    `the archive is truncated or corrupt (${why})`,
    "delete the partial file / download again, or check the url parameter",
  );
}

/**
 * Read a tar stream; `onEntry` returns a sink for the entry's bytes, or
 * undefined to skip it. Throws PipelineError on a truncated or malformed
 * archive and on path traversal.
 */
export async function readTar(
  stream: ReadableStream<Uint8Array>,
  onEntry: (e: TarEntry) => Promise<EntrySink | undefined> | EntrySink | undefined,
): Promise<void> {
  const reader = stream.getReader();
  let buf: Uint8Array = new Uint8Array(0); // unconsumed bytes
  let eof = false;
  // Ensure `n` bytes are in buf; false at a clean end of stream.
  const fill = async (n: number): Promise<boolean> => {
    while (buf.length < n && !eof) {
      const { value, done } = await reader.read();
      if (done) eof = true;
      else if (buf.length === 0) buf = value;
      else {
        const joined = new Uint8Array(buf.length + value.length);
        joined.set(buf);
        joined.set(value, buf.length);
        buf = joined;
      }
    }
    return buf.length >= n;
  };
  // Pass `n` bytes to `sink` (or drop them), chunk by chunk.
  const pipe = async (n: number, sink?: (c: Uint8Array) => Promise<unknown> | void) => {
    while (n > 0) {
      if (!(await fill(1))) throw corrupt(`stream ended ${n} bytes before the end of an entry`);
      const take = Math.min(n, buf.length);
      const chunk = buf.subarray(0, take);
      buf = buf.subarray(take);
      n -= take;
      if (sink) await sink(chunk);
    }
  };
  const readSmall = async (n: number): Promise<Uint8Array> => {
    if (n > 1 << 20) throw corrupt("oversized extended header");
    const out = new Uint8Array(n);
    let at = 0;
    await pipe(n, (c) => {
      out.set(c, at);
      at += c.length;
    });
    await pipe((BLOCK - (n % BLOCK)) % BLOCK);
    return out;
  };

  let longName: string | undefined;
  let paxPath: string | undefined;
  let paxSize: number | undefined;
  try {
    for (;;) {
      if (!(await fill(BLOCK))) {
        throw corrupt(buf.length ? "stream ended inside a header" : "no end-of-archive marker");
      }
      const h = buf.subarray(0, BLOCK);
      buf = buf.subarray(BLOCK);
      if (h.every((v) => v === 0)) return; // end-of-archive marker
      let sum = 0;
      for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : h[i];
      if (sum !== octal(h, 148, 8)) throw corrupt("bad header checksum: not a tar archive?");

      const flag = String.fromCharCode(h[156] || 48);
      let size = octal(h, 124, 12);
      if (flag === "L") { // GNU long name for the next entry
        longName = str(await readSmall(size), 0, size);
        continue;
      }
      if (flag === "x" || flag === "g") { // pax extended header
        const text = dec.decode(await readSmall(size));
        if (flag === "x") {
          for (const line of text.split("\n")) {
            const m = /^\d+ (\w+)=(.*)$/.exec(line);
            if (m?.[1] === "path") paxPath = m[2];
            if (m?.[1] === "size") paxSize = Number(m[2]);
          }
        }
        continue;
      }
      let name = str(h, 0, 100);
      if (str(h, 257, 6) === "ustar" && h[262] === 0) { // POSIX ustar: prefix field
        const prefix = str(h, 345, 155);
        if (prefix) name = `${prefix}/${name}`;
      }
      name = paxPath ?? longName ?? name;
      size = paxSize ?? size;
      paxPath = longName = paxSize = undefined;

      const type = flag === "0" || flag === "7" ? "file" : flag === "5" ? "dir" : "other";
      const entry: TarEntry = { name: checkEntryName(name), size, type };
      const bodySize = "123456".includes(flag) ? 0 : size; // links, devices, dirs: header only
      const sink = await onEntry(entry);
      await pipe(bodySize, sink ? (c) => sink.write(c) : undefined);
      await pipe((BLOCK - (bodySize % BLOCK)) % BLOCK);
      await sink?.close();
    }
  } catch (e) {
    if (e instanceof PipelineError) throw e;
    // DecompressionStream reports a cut gzip stream as a TypeError.
    throw corrupt(e instanceof Error ? e.message : String(e));
  } finally {
    reader.releaseLock();
  }
}

// ---- writer (synthetic archives and tests) ----

function header(name: string, size: number, type: "0" | "5", mode: number): Uint8Array {
  const h = new Uint8Array(BLOCK);
  const enc = new TextEncoder();
  const put = (off: number, s: string) => h.set(enc.encode(s), off);
  const num = (off: number, len: number, v: number) => put(off, v.toString(8).padStart(len - 1, "0") + "\0");
  if (enc.encode(name).length > 100) throw new Error(`tar name too long: ${name}`);
  put(0, name);
  num(100, 8, mode);
  num(108, 8, 0);
  num(116, 8, 0);
  num(124, 12, size);
  num(136, 12, 1244073600); // a fixed date (2009-06-04): archives are byte-reproducible
  put(148, "        ");
  put(156, type);
  put(257, "ustar\u000000");
  let sum = 0;
  for (const v of h) sum += v;
  put(148, sum.toString(8).padStart(6, "0") + "\0 ");
  return h;
}

/** A ustar archive of the given files (a name ending in "/" is a directory). */
export function tarBytes(entries: { name: string; data?: Uint8Array }[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const e of entries) {
    const dir = e.name.endsWith("/");
    const data = e.data ?? new Uint8Array(0);
    parts.push(header(e.name, dir ? 0 : data.length, dir ? "5" : "0", dir ? 0o755 : 0o644));
    if (!dir) {
      parts.push(data);
      parts.push(new Uint8Array((BLOCK - (data.length % BLOCK)) % BLOCK));
    }
  }
  parts.push(new Uint8Array(2 * BLOCK));
  const total = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(Math.ceil(total / 10240) * 10240); // tar's 10 KiB records
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}
