// A fused Adam update for the tfjs wasm backend: one pass over p, g, m, v instead of the
// eleven tfjs kernels (each a pass and an allocation) of models/torch_mlp/adam.ts, and
// bit-identical to them: every operation is rounded to float32 (Math.fround) in the same
// order as those kernels compute it (+, −, ×, ÷ and √ of float32 values computed in double
// and rounded once to float32 are exactly IEEE float32's). Large tensors are split over
// the worker pool (each element computed alike, so the bits do not depend on the split).
import type * as tf from "@tensorflow/tfjs-core";
import { POOL_ADAM, sharedPool } from "./pool.ts";

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

/** The wasm kernel: inputs {p, g, m, v} → [p', m', v'] (new tensors). */
export function adamKernel(
  { inputs, backend, attrs }: { inputs: Record<string, Info>; backend: unknown; attrs?: unknown },
): Info[] {
  const be = backend as WasmBackend;
  const { p, g, m, v } = inputs;
  const outs = [p, m, v].map((t) => be.makeOutput([...t.shape], "float32"));
  // Views after every allocation: a growing heap detaches older views.
  const [pv, gv, mv, vv, po, mo, vo] = [p, g, m, v, ...outs].map((t) => be.typedArrayFromHeap(t));
  const c = adamConstants(attrs as AdamAttrs);
  const n = pv.length, pool = sharedPool();
  if (!pool || n < MIN_PARALLEL) adamRange(pv, gv, mv, vv, po, mo, vo, c, 0, n);
  else {
    const addr = (x: Float32Array) =>
      Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(x as Float32Array<ArrayBuffer>)));
    const base = [pv, gv, mv, vv, po, mo, vo].map(addr);
    const parts = 2 * pool.size, cut = (i: number) => Math.round(n * i / parts);
    const tasks = Array.from({ length: parts }, (_, i) => [...base, ...c, cut(i), cut(i + 1)]);
    pool.run(POOL_ADAM, (t) => adamRange(pv, gv, mv, vv, po, mo, vo, c, t[14], t[15]), tasks);
  }
  return outs;
}

/** A pool worker's share: [p, g, m, v, p', m', v' addresses, 7 constants, from, to]. */
export function poolTask(t: Float64Array): void {
  const from = t[14], to = t[15];
  const view = (i: number) =>
    new Float32Array(Deno.UnsafePointerView.getArrayBuffer(Deno.UnsafePointer.create(BigInt(t[i]))!, to * 4));
  const [p, g, m, v, po, mo, vo] = [0, 1, 2, 3, 4, 5, 6].map(view);
  adamRange(p, g, m, v, po, mo, vo, t.subarray(7, 14), from, to);
}
