// One GEMM on plain Float32Arrays, for code that runs its own kernels (models/cnn):
// OpenBLAS's sgemm when it loads, else tfjs's wasm matMul (XNNPACK, 1 thread) with a copy
// in and out of the wasm heap.
import { initCompute, tf } from "./backend.ts";
import { loadBlas } from "./blas.ts";

export interface Gemm {
  /** e.g. "OpenBLAS 0.3.21 (2 threads)" or "wasm XNNPACK (1 thread)". */
  name: string;
  native: boolean;
  /** Row-major C[m×n] = op(A)·op(B) + beta·C; A is m×k (k×m when tA), B is k×n (n×k when tB). */
  gemm(
    tA: boolean,
    tB: boolean,
    m: number,
    n: number,
    k: number,
    a: Float32Array,
    b: Float32Array,
    c: Float32Array,
    beta?: number,
  ): void;
}

/** The fastest GEMM here; `native: false` forces the wasm one. */
export async function getGemm(opts: { native?: boolean } = {}): Promise<Gemm> {
  const blas = opts.native === false ? null : loadBlas().blas;
  if (blas) {
    return {
      name: blas.description,
      native: true,
      gemm: (tA, tB, m, n, k, a, b, c, beta = 0) => blas.sgemm(tA, tB, m, n, k, a, b, c, beta),
    };
  }
  await initCompute({ native: false });
  return {
    name: "wasm XNNPACK (tfjs, 1 thread)",
    native: false,
    gemm(tA, tB, m, n, k, a, b, c, beta = 0) {
      const out = tf.tidy(() =>
        tf.matMul(
          tf.tensor2d(a.subarray(0, m * k), tA ? [k, m] : [m, k]),
          tf.tensor2d(b.subarray(0, k * n), tB ? [n, k] : [k, n]),
          tA,
          tB,
        )
      );
      const v = out.dataSync() as Float32Array;
      out.dispose();
      if (beta === 0) c.set(v);
      else for (let i = 0; i < m * n; i++) c[i] = beta * c[i] + v[i];
    },
  };
}
