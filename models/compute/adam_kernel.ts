// A fused Adam update for the tfjs wasm backend: one pass over p, g, m, v instead of the
// eleven tfjs kernels (each a pass and an allocation) of models/torch_mlp/adam.ts, and
// bit-identical to them: every operation is rounded to float32 in the same order as those
// kernels compute it. Two implementations of that one formula (adamRange):
// - a wasm SIMD loop (4 lanes) run on tfjs's own wasm memory, where the tensors live:
//   f32x4 +, −, ×, ÷ and √ are IEEE float32's, exactly rounded and with no fused
//   multiply-add, so each lane computes what tfjs's scalar float32 kernels compute;
// - TypeScript with Math.fround (+, −, ×, ÷ and √ of float32 values computed in double and
//   rounded once to float32 are exactly IEEE float32's), the fallback, and what pool
//   workers run (they cannot reach tfjs's memory from wasm): large tensors go over the
//   worker pool when the SIMD loop is unavailable.
// adamInPlace writes p, m and v where they are (no new tensors) when nothing else shares
// their data; the kernel (ADAM_KERNEL) returns new tensors.
import type * as tf from "@tensorflow/tfjs-core";
import { POOL_ADAM, sharedPool } from "./pool.ts";
import {
  ADD,
  BR,
  BR_IF,
  DIV,
  GET,
  I32_ADD,
  I32_CONST,
  I32_GE_U,
  leb,
  LOAD,
  MUL,
  section,
  SET,
  SPLAT,
  SQRT,
  STORE,
  str,
  SUB,
} from "./simd_adam.ts";

export const ADAM_KERNEL = "PipelineAdamUpdate";

/** Adam's per-step constants as the tfjs version passes them (float32 scalars). */
export interface AdamAttrs {
  b1: number;
  b2: number;
  eps: number;
  /** lr / (1 − β₁ᵗ) */
  stepSize: number;
  /** √(1 − β₂ᵗ) */
  sqrtBc2: number;
}

type Info = tf.TensorInfo;
interface WasmBackend {
  makeOutput(shape: number[], dtype: tf.DataType): Info;
  typedArrayFromHeap(t: Info): Float32Array;
  refCount(dataId: tf.DataId): number;
  dataIdMap: { get(id: tf.DataId): { memoryOffset: number } | undefined };
  wasm?: { asm?: { memory?: unknown } };
}

// Below this many elements the calling thread does it alone.
const MIN_PARALLEL = 1 << 16;

/**
 * p, m, v ← Adam(p, g, m, v) for i in [from, to), as the tfjs ops compute it:
 *   m ← m·β₁ + g·(1−β₁);  v ← v·β₂ + g²·(1−β₂);  p ← p − (m / (√v / √(1−β₂ᵗ) + ε))·stepSize.
 * c = [β₁, 1−β₁, β₂, 1−β₂, √(1−β₂ᵗ), ε, stepSize], each already a float32 value.
 */
export function adamRange(
  p: Float32Array,
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  po: Float32Array,
  mo: Float32Array,
  vo: Float32Array,
  c: ArrayLike<number>,
  from: number,
  to: number,
): void {
  const f = Math.fround;
  const b1 = c[0], c1 = c[1], b2 = c[2], c2 = c[3], s2 = c[4], eps = c[5], ss = c[6];
  for (let i = from; i < to; i++) {
    const gi = g[i];
    const mi = f(f(m[i] * b1) + f(gi * c1));
    const vi = f(f(v[i] * b2) + f(f(gi * gi) * c2));
    const d = f(f(f(Math.sqrt(vi)) / s2) + eps);
    mo[i] = mi;
    vo[i] = vi;
    po[i] = f(p[i] - f(f(mi / d) * ss));
  }
}

/** The float32 constants of one step, in adamRange's order. */
export function adamConstants(a: AdamAttrs): number[] {
  const f = Math.fround;
  return [f(a.b1), f(1 - a.b1), f(a.b2), f(1 - a.b2), f(a.sqrtBc2), f(a.eps), f(a.stepSize)];
}

// The SIMD loop: adam(p, g, m, v, p', m', v', len, b1, 1−b1, b2, 1−b2, √(1−β₂ᵗ), ε, stepSize)
// over len bytes (a multiple of 16) at those byte offsets of the imported memory; outputs
// may be the inputs (each vector is loaded before it is stored).
const [P, G, M, V, PO, MO, VO, LEN] = [0, 1, 2, 3, 4, 5, 6, 7];
const I = 15, B1 = 16, C1 = 17, B2 = 18, C2 = 19, S2 = 20, EPS = 21, SS = 22, GI = 23, MI = 24, VI = 25;
const at = (base: number) => [GET, base, GET, I, I32_ADD];
// deno-fmt-ignore
const body = [
  2, 1, 0x7f, 10, 0x7b, // locals: 1 i32, 10 v128
  ...[8, 9, 10, 11, 12, 13, 14].flatMap((f, k) => [GET, f, ...SPLAT, SET, B1 + k]),
  0x02, 0x40, 0x03, 0x40, // block, loop
  GET, I, GET, LEN, I32_GE_U, BR_IF, 1,
  ...at(G), ...LOAD, SET, GI,
  // m' = m·b1 + g·(1−b1)
  ...at(M), ...LOAD, GET, B1, ...MUL, GET, GI, GET, C1, ...MUL, ...ADD, SET, MI,
  ...at(MO), GET, MI, ...STORE,
  // v' = v·b2 + (g·g)·(1−b2)
  ...at(V), ...LOAD, GET, B2, ...MUL, GET, GI, GET, GI, ...MUL, GET, C2, ...MUL, ...ADD, SET, VI,
  ...at(VO), GET, VI, ...STORE,
  // p' = p − (m' / (√v' / √(1−β₂ᵗ) + ε))·stepSize
  ...at(PO), ...at(P), ...LOAD,
  GET, MI, GET, VI, ...SQRT, GET, S2, ...DIV, GET, EPS, ...ADD, ...DIV, GET, SS, ...MUL, ...SUB, ...STORE,
  GET, I, I32_CONST, 16, I32_ADD, SET, I, BR, 0,
  0x0b, 0x0b, 0x0b, // end loop, block, function
];
// deno-fmt-ignore
const moduleBytes = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
  ...section(1, [1, 0x60, 15, ...Array(8).fill(0x7f), ...Array(7).fill(0x7d), 0]),
  ...section(2, [1, ...str("env"), ...str("mem"), 0x02, 0x00, 0]),
  ...section(3, [1, 0]),
  ...section(7, [1, ...str("adam"), 0x00, 0]),
  ...section(10, [1, ...leb(body.length), ...body]),
]);

type SimdAdam = (...args: number[]) => void;
const simdByMemory = new WeakMap<object, SimdAdam | null>();

/** The SIMD loop on the backend's wasm memory, or null (no such memory, or no wasm SIMD here). */
function simdAdamOf(be: WasmBackend): SimdAdam | null {
  const memory = be.wasm?.asm?.memory;
  if (!(memory instanceof WebAssembly.Memory)) return null;
  let fn = simdByMemory.get(memory);
  if (fn === undefined) {
    try {
      const inst = new WebAssembly.Instance(new WebAssembly.Module(moduleBytes), { env: { mem: memory } });
      fn = inst.exports.adam as SimdAdam;
    } catch {
      fn = null;
    }
    simdByMemory.set(memory, fn);
  }
  return fn;
}

/** Whether the SIMD loop serves this backend (tests, benchmarks). */
export function hasSimdAdam(backend: unknown): boolean {
  return simdAdamOf(backend as WasmBackend) !== null;
}

/** The update of [p, g, m, v] into [p', m', v'] (tensors on the wasm heap, all of one size). */
function update(be: WasmBackend, ins: Info[], outs: Info[], c: number[]): void {
  const simd = simdAdamOf(be);
  // Views after every allocation: a growing heap detaches older views.
  const [pv, gv, mv, vv, po, mo, vo] = [...ins, ...outs].map((t) => be.typedArrayFromHeap(t));
  const n = pv.length;
  if (simd) {
    const whole = n - n % 4;
    simd(...[pv, gv, mv, vv, po, mo, vo].map((x) => x.byteOffset), whole * 4, ...c);
    adamRange(pv, gv, mv, vv, po, mo, vo, c, whole, n);
    return;
  }
  const pool = sharedPool();
  if (!pool || n < MIN_PARALLEL) return adamRange(pv, gv, mv, vv, po, mo, vo, c, 0, n);
  const addr = (x: Float32Array) =>
    Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(x as Float32Array<ArrayBuffer>)));
  const base = [pv, gv, mv, vv, po, mo, vo].map(addr);
  const parts = 2 * pool.size, cut = (i: number) => Math.round(n * i / parts);
  const tasks = Array.from({ length: parts }, (_, i) => [...base, ...c, cut(i), cut(i + 1)]);
  pool.run(POOL_ADAM, (t) => adamRange(pv, gv, mv, vv, po, mo, vo, c, t[14], t[15]), tasks);
}

/** The wasm kernel: inputs {p, g, m, v} → [p', m', v'] (new tensors). */
export function adamKernel(
  { inputs, backend, attrs }: { inputs: Record<string, Info>; backend: unknown; attrs?: unknown },
): Info[] {
  const be = backend as WasmBackend;
  const { p, g, m, v } = inputs;
  const outs = [p, m, v].map((t) => be.makeOutput([...t.shape], "float32"));
  update(be, [p, g, m, v], outs, adamConstants(attrs as AdamAttrs));
  return outs;
}

/**
 * The same update written over p, m and v in place, with the same bits as the kernel; only
 * on the wasm backend, for float32 tensors of one size whose data nothing else shares
 * (p, m and v then hold the new values as after assign()). Returns false, changing
 * nothing, where it does not apply: the caller runs the kernel instead.
 */
export function adamInPlace(
  backend: unknown,
  p: tf.Tensor,
  g: tf.Tensor,
  m: tf.Tensor,
  v: tf.Tensor,
  attrs: AdamAttrs,
): boolean {
  const be = backend as WasmBackend;
  if (typeof be.refCount !== "function" || !be.dataIdMap || !simdAdamOf(be)) return false;
  const all = [p, g, m, v];
  if (all.some((t) => t.dtype !== "float32" || t.size !== p.size || !be.dataIdMap.get(t.dataId))) return false;
  if ([p, m, v].some((t) => be.refCount(t.dataId) !== 1)) return false;
  if (new Set(all.map((t) => t.dataId)).size !== 4) return false;
  update(be, all, [p, m, v], adamConstants(attrs));
  return true;
}

/** A pool worker's share: [p, g, m, v, p', m', v' addresses, 7 constants, from, to]. */
export function poolTask(t: Float64Array): void {
  const from = t[14], to = t[15];
  const view = (i: number) =>
    new Float32Array(Deno.UnsafePointerView.getArrayBuffer(Deno.UnsafePointer.create(BigInt(t[i]))!, to * 4));
  const [p, g, m, v, po, mo, vo] = [0, 1, 2, 3, 4, 5, 6].map(view);
  adamRange(p, g, m, v, po, mo, vo, t.subarray(7, 14), from, to);
}
