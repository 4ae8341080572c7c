// The products the GEMM order tests check (gemm_order_test, gemm_wide_test) and the GEMM
// bench times: GA1's training step, and shapes that reach every tile of OpenBLAS's kernel.

/** Row-major C[m×n] = alpha·op(A)·op(B) + beta·C, as models/compute/blas.ts's sgemm takes it. */
export type Shape = { tA: boolean; tB: boolean; m: number; n: number; k: number; alpha: number; beta: number };

export const shape = (m: number, n: number, k: number, more: Partial<Shape> = {}): Shape => ({
  tA: false,
  tB: false,
  m,
  n,
  k,
  alpha: 1,
  beta: 0,
  ...more,
});

/** GA1's layers (3072 → 1000 → 500 → 250 → 100 → 10). */
export const GA1_LAYERS = [[3072, 1000], [1000, 500], [500, 250], [250, 100], [100, 10]];

/**
 * GA1's products: forward X·W, weight gradient Xᵀ·dZ, input gradient dZ·Wᵀ of each layer
 * (a training step runs all but the first layer's input gradient: the images need none).
 */
export const ga1Shapes = (batch: number, { step = false } = {}): Shape[] =>
  GA1_LAYERS.flatMap(([i, o], l) => [
    shape(batch, o, i),
    shape(i, o, batch, { tA: true }),
    ...(step && l === 0 ? [] : [shape(batch, i, o, { tB: true })]),
  ]);

/**
 * Every tile: 12-column groups with an even and an odd number of 8-row steps, and under 16
 * rows; 8/4/2/1-column and 4/2/1-row ends; blocks of k and of rows halved (320 < left < 640)
 * and split (≥ 640); both transposes; alpha and beta other than 1 and 0.
 */
export const EDGE_SHAPES: Shape[] = [
  shape(1, 1, 1),
  shape(15, 15, 9),
  shape(37, 53, 29, { beta: 1 }),
  shape(61, 1000, 700, { alpha: 0.7 }),
  shape(100, 333, 650, { tA: true, tB: true, beta: 0.5 }),
  shape(641, 7, 2000),
  shape(27, 664, 17, { tB: true }),
];

/** The product's label, e.g. "NT 1609×3072×1000". */
export const label = (s: Shape) => `${s.tA ? "T" : "N"}${s.tB ? "T" : "N"} ${s.m}×${s.n}×${s.k}`;

/** How many elements of x and y differ in their bits. */
export function differingBits(x: Float32Array, y: Float32Array): number {
  const [a, b] = [new Uint32Array(x.buffer, x.byteOffset, x.length), new Uint32Array(y.buffer, y.byteOffset, y.length)];
  let d = Math.abs(a.length - b.length);
  for (let i = 0; i < Math.min(a.length, b.length); i++) d += a[i] !== b[i] ? 1 : 0;
  return d;
}
