// One GEMM on plain Float32Arrays, for code that runs its own kernels (models/cnn):
// OpenBLAS's sgemm when it loads, else tfjs's wasm matMul (XNNPACK, 1 thread) with a copy
// in and out of the wasm heap.
import { initCompute, tf } from "./backend.ts";
import { loadBlas, type Sgemm, startBlasThreads } from "./blas.ts";
import { transpose } from "./im2col.ts";

export interface Gemm {
  /** e.g. "OpenBLAS 0.3.21 Haswell, 1-thread kernels over 2 threads (deterministic)" or "wasm XNNPACK (1 thread)". */
  name: string;
  native: boolean;
  /** Row-major C[m×n] = op(A)·op(B) + beta·C; A is m×k (k×m when tA), B is k×n (n×k when tB). */
  gemm: Sgemm;
}

/** The fastest GEMM here; `native: false` forces the wasm one. */
export async function getGemm(opts: { native?: boolean } = {}): Promise<Gemm> {
  const blas = opts.native === false ? null : loadBlas().blas;
  if (blas) {
    await startBlasThreads();
    return {
      name: blas.description,
      native: true,
      gemm: (tA, tB, m, n, k, a, b, c, beta = 0) => blas.sgemm(tA, tB, m, n, k, a, b, c, beta),
    };
  }
  await initCompute({ native: false });
  // Transposes are done here in JS (tiled; faster than the wasm Transpose kernel on
  // im2col's shapes), and the product is read straight from the wasm heap.
  let scratch = new Float32Array(0);
  const transposed = (x: Float32Array, rows: number, cols: number) => {
    if (scratch.length < rows * cols) scratch = new Float32Array(rows * cols);
    transpose(x, rows, cols, scratch);
    return scratch.subarray(0, rows * cols);
  };
  return {
    name: "wasm XNNPACK (tfjs, 1 thread)",
    native: false,
    gemm(tA, tB, m, n, k, a, b, c, beta = 0) {
      const at = tf.tensor2d(tA ? transposed(a, k, m) : a.subarray(0, m * k), [m, k]);
      const bt = tf.tensor2d(tB ? transposed(b, n, k) : b.subarray(0, k * n), [k, n]);
      const out = tf.matMul(at, bt);
      const v = heapView(out);
      if (beta === 0) c.set(v);
      else for (let i = 0; i < m * n; i++) c[i] = beta * c[i] + v[i];
      at.dispose(), bt.dispose(), out.dispose();
    },
  };
}

/** A tensor's float32 data in place on the wasm heap (valid until the next allocation). */
function heapView(t: tf.Tensor): Float32Array {
  const backend = tf.backend() as unknown as { typedArrayFromHeap?: (t: tf.TensorInfo) => Float32Array };
  return backend.typedArrayFromHeap ? backend.typedArrayFromHeap(t) : t.dataSync() as Float32Array;
}
