// Read and write NumPy .npy files (format v1.0 written; v1–v3 read), little-endian,
// C order. Arrays are typed-array views with a shape; large files are read into
// one buffer and viewed without a copy.
import { writing } from "../pipeline/types.ts";
import { PipelineError } from "../pipeline/types.ts";

export type NpyData = Float32Array | Float64Array | Uint8Array | Int32Array;
export interface NpyArray<T extends NpyData = NpyData> {
  data: T;
  shape: number[];
}

const DESCR: Record<string, { ctor: new (b: ArrayBuffer, o: number, n: number) => NpyData; size: number }> = {
  "<f4": { ctor: Float32Array, size: 4 },
  "<f8": { ctor: Float64Array, size: 8 },
  "|u1": { ctor: Uint8Array, size: 1 },
  "<i4": { ctor: Int32Array, size: 4 },
};
const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // "\x93NUMPY"

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  // Typed arrays are written as they lie in memory; .npy here is little-endian.
  throw new Error("npy.ts assumes a little-endian machine");
}

function descrOf(data: NpyData): string {
  if (data instanceof Float32Array) return "<f4";
  if (data instanceof Float64Array) return "<f8";
  if (data instanceof Uint8Array) return "|u1";
  if (data instanceof Int32Array) return "<i4";
  throw new Error("unsupported array type");
}

/** The v1.0 header (magic, version, length, dict padded with spaces to a multiple of 64 bytes). */
export function npyHeader(descr: string, shape: number[]): Uint8Array {
  const shapeStr = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(", ")})`;
  let dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeStr}, }`;
  const unpadded = 10 + dict.length + 1;
  dict += " ".repeat((64 - (unpadded % 64)) % 64) + "\n";
  if (dict.length > 0xffff) throw new Error("npy header too long");
  const out = new Uint8Array(10 + dict.length);
  out.set(MAGIC);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, dict.length, true);
  out.set(new TextEncoder().encode(dict), 10);
  return out;
}

/** Write one array as .npy (streams the data from its own buffer, no copy). */
export async function writeNpy(path: string, data: NpyData, shape: number[]): Promise<void> {
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== data.length) {
    throw new Error(`writeNpy ${path}: shape ${shape} holds ${count}, data has ${data.length}`);
  }
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  try {
    await writing(path, data.byteLength, async () => { // a full disk: one line naming the file
      await writeAll(file, npyHeader(descrOf(data), shape));
      await writeAll(file, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    });
  } finally {
    file.close();
  }
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  // Write in 16 MiB pieces: one write of a huge view can be short.
  for (let off = 0; off < bytes.length;) {
    off += await file.write(bytes.subarray(off, Math.min(off + (16 << 20), bytes.length)));
  }
}

/** Parse .npy bytes; the result views `bytes` when the data is aligned (always for v1 headers padded to 16/64). */
export function parseNpy(bytes: Uint8Array, name = "array"): NpyArray {
  const bad = (why: string) =>
    new PipelineError(`${name} is not a readable .npy file (${why})`, "rerun the stage that wrote it");
  if (bytes.length < 10 || MAGIC.some((m, i) => bytes[i] !== m)) throw bad("no NUMPY magic");
  const major = bytes[6];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = (major === 1 ? 10 : 12) + headerLen;
  if (start > bytes.length) throw bad("truncated header");
  const header = new TextDecoder().decode(bytes.subarray(major === 1 ? 10 : 12, start));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeStr = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || !fortran || shapeStr === undefined) throw bad("bad header");
  const kind = DESCR[descr === "<u1" ? "|u1" : descr];
  if (!kind) throw bad(`dtype ${descr} not supported`);
  if (fortran === "True") throw bad("Fortran order not supported");
  const shape = shapeStr.split(",").map((s) => s.trim()).filter((s) => s).map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  if (bytes.length - start < count * kind.size) throw bad(`truncated data`);
  const off = bytes.byteOffset + start;
  if (off % kind.size === 0) {
    return { data: new kind.ctor(bytes.buffer as ArrayBuffer, off, count), shape };
  }
  const copy = bytes.slice(start, start + count * kind.size);
  return { data: new kind.ctor(copy.buffer, 0, count), shape };
}

export async function readNpy(path: string): Promise<NpyArray> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new PipelineError(`${path} is missing`, "run the stage that writes it (deno task reproduce)");
    }
    throw e;
  }
  return parseNpy(bytes, path);
}
