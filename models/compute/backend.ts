// Picks the tfjs backend every tfjs stage uses and says which. Stages only call
// initCompute() and use the re-exported `tf`.
//
// Choice: always tfjs's wasm backend (SIMD, 1 thread: tfjs keeps threads off under
// Deno), with the kernel fixes of wasm_kernels.ts. When OpenBLAS loads (Debian package
// libopenblas0-pthread) its sgemm runs the matMuls and convolutions straight on the wasm
// heap, deterministic over a pool of threads (blas.ts); otherwise the fixed wasm kernels
// alone, and the description says why.
// COMPUTE_BLAS=off forces wasm alone.
import * as tf from "@tensorflow/tfjs-core";
// tfjs-core's Node bundle registers no gradients; the umbrella package does (~0.5 s to load).
import "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-cpu";
import "@tensorflow/tfjs-backend-wasm";
import { type Blas, loadBlas, startBlasThreads } from "./blas.ts";
import { installWasmKernels } from "./wasm_kernels.ts";

export interface ComputeInfo {
  /** One line for logs and TrainingHistory.backend. */
  description: string;
  /** The OpenBLAS in use, or null (wasm alone). */
  blas: Blas | null;
  /** Why OpenBLAS is not in use ("" when it is). */
  blasReason: string;
}

let info: ComputeInfo | undefined;

/**
 * Initialise tfjs once; returns a one-line description of the backend.
 * `native: false` keeps the fixed wasm kernels without OpenBLAS (tests, benchmarks);
 * calling again with another `native` switches.
 */
export async function initCompute(opts: { native?: boolean } = {}): Promise<string> {
  const wantNative = opts.native ?? true;
  if (info && (info.blas !== null) === (wantNative && loadBlas().blas !== null)) {
    if (tf.getBackend() !== "wasm") await tf.setBackend("wasm");
    return info.description;
  }
  if (tf.getBackend() !== "wasm") {
    if (!(await tf.setBackend("wasm"))) throw new Error("tfjs wasm backend failed to initialise");
  }
  await tf.ready();
  const loaded = loadBlas();
  const blas = wantNative ? loaded.blas : null;
  if (blas) await startBlasThreads();
  installWasmKernels(blas);
  const base = `wasm (tfjs ${tf.version_core}, SIMD, 1 thread, kernel fixes)`;
  const blasReason = blas ? "" : wantNative ? loaded.reason : "OpenBLAS off by request";
  const description = blas ? `${base} + ${blas.description} GEMM` : `${base}; ${blasReason}`;
  info = { description, blas, blasReason };
  return description;
}

/**
 * A new float32 tensor whose values `fill` writes: on the wasm backend straight into the
 * tensor's memory on the wasm heap (no copy); `fill` must not create tensors meanwhile.
 */
export function filledTensor(shape: number[], fill: (values: Float32Array) => void): tf.Tensor {
  const be = tf.backend() as unknown as Partial<WasmHeap>;
  if (tf.getBackend() === "wasm" && be.makeOutput && be.typedArrayFromHeap && be.disposeData) {
    const info = be.makeOutput(shape, "float32");
    try {
      fill(be.typedArrayFromHeap(info));
    } catch (e) {
      be.disposeData(info.dataId);
      throw e;
    }
    return tf.engine().makeTensorFromTensorInfo(info);
  }
  const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
  fill(values);
  return tf.tensor(values, shape);
}

interface WasmHeap {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array;
  disposeData(id: tf.DataId): boolean;
}

/** What initCompute chose (call it first). */
export function computeInfo(): ComputeInfo {
  if (!info) throw new Error("computeInfo() before initCompute()");
  return info;
}

export { tf };
