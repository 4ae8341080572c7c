// A small typed-array matrix module: what the hand-written MLP needs of NumPy.
// Every function is generic over Float32Array (training) and Float64Array
// (the gradient checks against finite differences). Matrices are row-major.
import type { Sgemm } from "../compute/blas.ts";

export type Arr = Float32Array | Float64Array;

export interface Mat<A extends Arr = Arr> {
  data: A;
  rows: number;
  cols: number;
}

/** A zero matrix of the same element type as `like`. */
export function zeros<A extends Arr>(rows: number, cols: number, like: A): Mat<A> {
  const C = like.constructor as new (n: number) => A;
  return { data: new C(rows * cols), rows, cols };
}

/** Wrap a flat array as a rows×cols matrix (no copy). */
export function asMat<A extends Arr>(data: A, rows: number, cols: number): Mat<A> {
  if (data.length !== rows * cols) throw new RangeError(`asMat: ${data.length} values for ${rows}×${cols}`);
  return { data, rows, cols };
}

export function clone<A extends Arr>(m: Mat<A>): Mat<A> {
  return { data: m.data.slice() as A, rows: m.rows, cols: m.cols };
}

/** Row-major C[m×n] = op(A)·op(B) on float32 (models/compute/gemm.ts's Gemm.gemm); called with beta 0. */
export type Float32Gemm = Sgemm;

let f32Gemm: Float32Gemm | null = null;

/**
 * Route float32 products to an external GEMM (e.g. OpenBLAS, as NumPy would);
 * null: the TypeScript kernel below. Float64 always uses the TypeScript kernel.
 */
export function setFloat32Gemm(g: Float32Gemm | null): void {
  f32Gemm = g;
}

/**
 * C = op(A)·op(B), op(X) = X or Xᵀ. The transposed forms read the stored
 * layout directly (no transposed copy): the backward pass needs Xᵀ·dY and dY·Wᵀ.
 */
export function matmul<A extends Arr>(a: Mat<A>, b: Mat<A>, transA = false, transB = false, out?: Mat<A>): Mat<A> {
  const m = transA ? a.cols : a.rows;
  const k = transA ? a.rows : a.cols;
  const kb = transB ? b.cols : b.rows;
  const n = transB ? b.rows : b.cols;
  if (k !== kb) {
    throw new RangeError(`matmul: inner sizes ${k} and ${kb} differ (${a.rows}×${a.cols}, ${b.rows}×${b.cols})`);
  }
  const c = out ?? zeros(m, n, a.data);
  if (c.rows !== m || c.cols !== n) throw new RangeError(`matmul: output is ${c.rows}×${c.cols}, needs ${m}×${n}`);
  if (f32Gemm && a.data instanceof Float32Array && b.data instanceof Float32Array) {
    f32Gemm(transA, transB, m, n, k, a.data, b.data, c.data as Float32Array);
    return c;
  }
  // Element (i, p) of op(A) is at i*ai + p*ap; element (p, j) of op(B) at p*bp + j*bj.
  const ai = transA ? 1 : a.cols, ap = transA ? a.cols : 1;
  const bp = transB ? 1 : b.cols, bj = transB ? b.cols : 1;
  gemm(m, n, k, a.data, ai, ap, b.data, bp, bj, c.data);
  return c;
}

const KC = 256; // k-block: packed panels of A (4×KC) and B (KC×4) stay in L1/L2 while the tiles are computed

// Packed panels are always Float64Array: the inner kernel then sees one element
// type (V8 slows down 2.5× when one function meets both array types) and
// accumulates in double precision, as JavaScript arithmetic does anyway.
let packA = new Float64Array(0);
let packB = new Float64Array(0);

/**
 * Strided GEMM, C (m×n, row-major, overwritten) = A·B. BLIS-style: per
 * k-block, copy A into 4-row panels and B into 4-column panels (zero-padded,
 * so there are no edge cases; the copy also absorbs any transposition), then
 * run a 4×4 register-tiled kernel (16 accumulators, 8 loads per 32 flops).
 */
function gemm(
  m: number,
  n: number,
  k: number,
  a: Arr,
  ai: number,
  ap: number,
  b: Arr,
  bp: number,
  bj: number,
  c: Arr,
): void {
  c.fill(0);
  const mp = Math.ceil(m / 4), np = Math.ceil(n / 4);
  const kcMax = Math.min(k, KC);
  if (packA.length < mp * 4 * kcMax) packA = new Float64Array(mp * 4 * kcMax);
  if (packB.length < np * 4 * kcMax) packB = new Float64Array(np * 4 * kcMax);
  const pa = packA, pb = packB;
  for (let p0 = 0; p0 < k; p0 += KC) {
    const kc = Math.min(k, p0 + KC) - p0;
    // A(i, p0+p) → pa[(ip·kc + p)·4 + i%4]
    for (let i = 0; i < mp * 4; i++) {
      const base = (i >> 2) * kc * 4 + (i & 3);
      if (i < m) {
        for (let p = 0, s = i * ai + p0 * ap; p < kc; p++, s += ap) pa[base + 4 * p] = a[s];
      } else {
        for (let p = 0; p < kc; p++) pa[base + 4 * p] = 0;
      }
    }
    // B(p0+p, j) → pb[(jp·kc + p)·4 + j%4]
    for (let j = 0; j < np * 4; j++) {
      const base = (j >> 2) * kc * 4 + (j & 3);
      if (j < n) {
        for (let p = 0, s = p0 * bp + j * bj; p < kc; p++, s += bp) pb[base + 4 * p] = b[s];
      } else {
        for (let p = 0; p < kc; p++) pb[base + 4 * p] = 0;
      }
    }
    for (let ip = 0; ip < mp; ip++) {
      for (let jp = 0; jp < np; jp++) {
        let c00 = 0, c01 = 0, c02 = 0, c03 = 0, c10 = 0, c11 = 0, c12 = 0, c13 = 0;
        let c20 = 0, c21 = 0, c22 = 0, c23 = 0, c30 = 0, c31 = 0, c32 = 0, c33 = 0;
        let oa = ip * kc * 4, ob = jp * kc * 4;
        for (let p = 0; p < kc; p++, oa += 4, ob += 4) {
          const a0 = pa[oa], a1 = pa[oa + 1], a2 = pa[oa + 2], a3 = pa[oa + 3];
          const b0 = pb[ob], b1 = pb[ob + 1], b2 = pb[ob + 2], b3 = pb[ob + 3];
          c00 += a0 * b0, c01 += a0 * b1, c02 += a0 * b2, c03 += a0 * b3;
          c10 += a1 * b0, c11 += a1 * b1, c12 += a1 * b2, c13 += a1 * b3;
          c20 += a2 * b0, c21 += a2 * b1, c22 += a2 * b2, c23 += a2 * b3;
          c30 += a3 * b0, c31 += a3 * b1, c32 += a3 * b2, c33 += a3 * b3;
        }
        const i0 = ip * 4, j0 = jp * 4;
        if (i0 + 4 <= m && j0 + 4 <= n) {
          let o = i0 * n + j0;
          c[o] += c00, c[o + 1] += c01, c[o + 2] += c02, c[o + 3] += c03, o += n;
          c[o] += c10, c[o + 1] += c11, c[o + 2] += c12, c[o + 3] += c13, o += n;
          c[o] += c20, c[o + 1] += c21, c[o + 2] += c22, c[o + 3] += c23, o += n;
          c[o] += c30, c[o + 1] += c31, c[o + 2] += c32, c[o + 3] += c33;
        } else {
          const t = [c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33];
          for (let ii = 0; ii < 4 && i0 + ii < m; ii++) {
            for (let jj = 0; jj < 4 && j0 + jj < n; jj++) c[(i0 + ii) * n + j0 + jj] += t[ii * 4 + jj];
          }
        }
      }
    }
  }
}

/** Add row vector v (length cols) to every row of m, in place. */
export function addRow<A extends Arr>(m: Mat<A>, v: A): Mat<A> {
  const { data, rows, cols } = m;
  for (let i = 0; i < rows; i++) {
    const o = i * cols;
    for (let j = 0; j < cols; j++) data[o + j] += v[j];
  }
  return m;
}

/** Column sums of m (the bias gradient: a sum over the batch). */
export function sumRows<A extends Arr>(m: Mat<A>, out?: A): A {
  const { data, rows, cols } = m;
  const s = out ?? (new (data.constructor as new (n: number) => A)(cols));
  s.fill(0);
  for (let i = 0; i < rows; i++) {
    const o = i * cols;
    for (let j = 0; j < cols; j++) s[j] += data[o + j];
  }
  return s;
}

/** x -= lr·g, elementwise (plain SGD). */
export function sgd(x: Arr, g: Arr, lr: number): void {
  for (let i = 0; i < x.length; i++) x[i] -= lr * g[i];
}
