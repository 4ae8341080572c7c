// Adam over float32 arrays in one wasm SIMD loop (4 lanes), for the oneDNN VGG whose
// parameters, gradients and moments live in one WebAssembly.Memory. The module is 150
// bytes written out below (no toolchain needed). Its arithmetic is float32 IEEE
// (no fused multiply-add, exact sqrt), so results are the same on every CPU.
//
// Per element, in this order (layers.ts's adam, rounded to float32 at each operation):
//   m = b1·m + (1−b1)·g;  v = b2·v + (1−b2)·g·g;  p = p − s·m / (√v·r + ε)
// with s = lr/(1−b1^t) and r = 1/√(1−b2^t).

export const leb = (n: number): number[] => {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
};
export const section = (id: number, body: number[]) => [id, ...leb(body.length), ...body];
export const str = (s: string) => [s.length, ...[...s].map((c) => c.charCodeAt(0))];

// Opcodes (WebAssembly core + SIMD; adam_kernel.ts builds its module with them too).
export const GET = 0x20, SET = 0x21, I32_ADD = 0x6a, I32_GE_U = 0x4f, I32_CONST = 0x41, BR_IF = 0x0d, BR = 0x0c;
export const simd = (op: number) => [0xfd, ...leb(op)];
export const LOAD = [...simd(0x00), 0, 0], STORE = [...simd(0x0b), 0, 0]; // memarg: align 1, offset 0
export const SPLAT = simd(0x13),
  SQRT = simd(0xe3),
  ADD = simd(0xe4),
  SUB = simd(0xe5),
  MUL = simd(0xe6),
  DIV = simd(0xe7);

// Parameters: p, g, m, v (byte offsets), len (bytes, a multiple of 16), b1, c1 = 1−b1, b2, c2 = 1−b2, s, r, eps.
const [p, g, m, v, len] = [0, 1, 2, 3, 4];
const I = 12, B1 = 13, C1 = 14, B2 = 15, C2 = 16, S = 17, R = 18, E = 19, GI = 20, MI = 21, VI = 22;
const at = (base: number) => [GET, base, GET, I, I32_ADD];
const body = [
  2,
  1,
  0x7f,
  10,
  0x7b, // locals: 1 i32, 10 v128
  ...[5, 6, 7, 8, 9, 10, 11].flatMap((f, k) => [GET, f, ...SPLAT, SET, B1 + k]),
  0x02,
  0x40,
  0x03,
  0x40, // block, loop
  GET,
  I,
  GET,
  len,
  I32_GE_U,
  BR_IF,
  1,
  ...at(g),
  ...LOAD,
  SET,
  GI,
  ...at(m),
  ...LOAD,
  GET,
  B1,
  ...MUL,
  GET,
  C1,
  GET,
  GI,
  ...MUL,
  ...ADD,
  SET,
  MI,
  ...at(m),
  GET,
  MI,
  ...STORE,
  ...at(v),
  ...LOAD,
  GET,
  B2,
  ...MUL,
  GET,
  C2,
  GET,
  GI,
  ...MUL,
  GET,
  GI,
  ...MUL,
  ...ADD,
  SET,
  VI,
  ...at(v),
  GET,
  VI,
  ...STORE,
  ...at(p),
  ...at(p),
  ...LOAD,
  GET,
  S,
  GET,
  MI,
  ...MUL,
  GET,
  VI,
  ...SQRT,
  GET,
  R,
  ...MUL,
  GET,
  E,
  ...ADD,
  ...DIV,
  ...SUB,
  ...STORE,
  GET,
  I,
  I32_CONST,
  16,
  I32_ADD,
  SET,
  I,
  BR,
  0,
  0x0b,
  0x0b,
  0x0b, // end loop, block, function
];
const bytes = new Uint8Array([
  0x00,
  0x61,
  0x73,
  0x6d,
  1,
  0,
  0,
  0,
  ...section(1, [1, 0x60, 12, ...Array(5).fill(0x7f), ...Array(7).fill(0x7d), 0]),
  ...section(2, [1, ...str("env"), ...str("mem"), 0x02, 0x00, 0]),
  ...section(3, [1, 0]),
  ...section(7, [1, ...str("adam"), 0x00, 0]),
  ...section(10, [1, ...leb(body.length), ...body]),
]);

/** A memory of `floats` float32s and Adam over four equal-sized, 16-byte-aligned arrays in it. */
export function simdAdam(floats: number): {
  memory: WebAssembly.Memory;
  step(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, t: number, lr: number): void;
} {
  const memory = new WebAssembly.Memory({ initial: Math.ceil((floats * 4) / 65536) });
  const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { mem: memory } });
  const adam = inst.exports.adam as (...a: number[]) => void;
  const b1 = 0.9, b2 = 0.999, eps = 1e-8;
  return {
    memory,
    step(p, g, m, v, t, lr) {
      for (const a of [p, g, m, v]) {
        if (a.buffer !== memory.buffer || a.byteOffset % 16 || a.length !== p.length || a.length % 4) {
          throw new Error("simdAdam: arrays must be equal, 16-byte aligned views of its memory, lengths × 4");
        }
      }
      adam(
        p.byteOffset,
        g.byteOffset,
        m.byteOffset,
        v.byteOffset,
        p.byteLength,
        b1,
        1 - b1,
        b2,
        1 - b2,
        lr / (1 - b1 ** t),
        1 / Math.sqrt(1 - b2 ** t),
        eps,
      );
    },
  };
}
