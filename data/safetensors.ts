// safetensors (https://huggingface.co/docs/safetensors): the weights format other
// tools read without our code (Python's safetensors, PyTorch, numpy by hand).
//   8 bytes   header length N, unsigned little-endian
//   N bytes   JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}
//             (padded with spaces so the data starts 8-byte aligned)
//   the rest  every tensor's raw little-endian bytes, row-major, offsets relative to here, no gaps

export type Dtype =
  | "F64"
  | "F32"
  | "F16"
  | "BF16"
  | "I64"
  | "I32"
  | "I16"
  | "I8"
  | "U64"
  | "U32"
  | "U16"
  | "U8"
  | "BOOL";

export type TypedArray =
  | Float64Array
  | Float32Array
  | BigInt64Array
  | BigUint64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint32Array
  | Uint16Array
  | Uint8Array;

export interface Tensor {
  dtype: Dtype;
  /** [] for a scalar. */
  shape: number[];
  /** F16 and BF16 are carried as their raw 16-bit patterns (Uint16Array), BOOL as 0/1 bytes. */
  data: TypedArray;
}

type ArrayCtor = { new (buffer: ArrayBuffer, offset: number, length: number): TypedArray; BYTES_PER_ELEMENT: number };
const ARRAYS: Record<Dtype, ArrayCtor> = {
  F64: Float64Array,
  F32: Float32Array,
  F16: Uint16Array,
  BF16: Uint16Array,
  I64: BigInt64Array,
  I32: Int32Array,
  I16: Int16Array,
  I8: Int8Array,
  U64: BigUint64Array,
  U32: Uint32Array,
  U16: Uint16Array,
  U8: Uint8Array,
  BOOL: Uint8Array,
};

// Typed arrays use the machine's byte order; the format is little-endian. Every machine we run on is.
if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error("safetensors.ts assumes a little-endian CPU");

const count = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

export function encodeSafetensors(tensors: Record<string, Tensor>, metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") throw new Error(`safetensors metadata ${k}: values must be strings`);
    }
    header.__metadata__ = metadata;
  }
  const names = Object.keys(tensors).sort();
  let offset = 0;
  for (const name of names) {
    const { dtype, shape, data } = tensors[name];
    if (name === "__metadata__") throw new Error("safetensors: __metadata__ is not a tensor name");
    const ctor = ARRAYS[dtype];
    if (!ctor) throw new Error(`safetensors ${name}: unknown dtype ${dtype}`);
    if (!(data instanceof ctor)) throw new Error(`safetensors ${name}: ${dtype} needs a ${ctor.name}`);
    if (!shape.every((d) => Number.isInteger(d) && d >= 0) || data.length !== count(shape)) {
      throw new Error(`safetensors ${name}: shape [${shape}] does not hold ${data.length} values`);
    }
    header[name] = { dtype, shape, data_offsets: [offset, offset + data.byteLength] };
    offset += data.byteLength;
  }
  const text = JSON.stringify(header);
  const unpadded = new TextEncoder().encode(text).length;
  const json = new TextEncoder().encode(text + " ".repeat(Math.ceil(unpadded / 8) * 8 - unpadded));
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let at = 8 + json.length;
  for (const name of names) {
    const { data } = tensors[name];
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), at);
    at += data.byteLength;
  }
  return out;
}

export function decodeSafetensors(
  bytes: Uint8Array,
): { tensors: Record<string, Tensor>; metadata: Record<string, string> } {
  const bad = (why: string) => new Error(`not a valid safetensors file: ${why}`);
  if (bytes.length < 8) throw bad("shorter than its 8-byte header length");
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  if (n > bytes.length - 8) throw bad(`header length ${n} runs past the end (${bytes.length} bytes)`);
  let header: Record<string, { dtype: Dtype; shape: number[]; data_offsets: [number, number] }>;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (e) {
    throw bad(`header is not JSON (${(e as Error).message})`);
  }
  const data = bytes.subarray(8 + n);
  const metadata = (header.__metadata__ ?? {}) as unknown as Record<string, string>;
  const tensors: Record<string, Tensor> = {};
  const spans: Array<[number, number]> = [];
  for (const [name, t] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const ctor = ARRAYS[t.dtype];
    if (!ctor) throw bad(`${name}: unknown dtype ${t.dtype}`);
    const [begin, end] = t.data_offsets;
    if (!(begin >= 0 && begin <= end && end <= data.length)) {
      throw bad(`${name}: offsets [${begin}, ${end}] out of range`);
    }
    if (end - begin !== count(t.shape) * ctor.BYTES_PER_ELEMENT) {
      throw bad(`${name}: ${end - begin} bytes for shape [${t.shape}]`);
    }
    // A copy: its own buffer, aligned for the typed array.
    const own = data.slice(begin, end);
    tensors[name] = { dtype: t.dtype, shape: t.shape, data: new ctor(own.buffer, 0, count(t.shape)) };
    spans.push([begin, end]);
  }
  spans.sort((a, b) => a[0] - b[0]);
  let at = 0;
  for (const [begin, end] of spans) {
    if (begin !== at) throw bad(`the tensors' data has a gap or an overlap at byte ${at}`);
    at = end;
  }
  if (at !== data.length) throw bad(`${data.length - at} bytes after the last tensor`);
  return { tensors, metadata };
}

export async function writeSafetensors(
  path: string,
  tensors: Record<string, Tensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  await Deno.writeFile(path, encodeSafetensors(tensors, metadata));
}

export async function readSafetensors(
  path: string,
): Promise<{ tensors: Record<string, Tensor>; metadata: Record<string, string> }> {
  return decodeSafetensors(await Deno.readFile(path));
}
