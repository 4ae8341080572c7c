// Kernel fixes for the tfjs wasm backend (see shared/NOTES-tfjs-wasm.md), optionally with
// OpenBLAS for the GEMMs. Each replaces the registered wasm kernel:
// - BatchMatMul: transposed operands ran a naive loop → explicit Transpose, then the fast
//   XNNPACK path; with OpenBLAS: sgemm straight on the wasm heap (transposes for free).
// - _FusedMatMul: the same transposes; with OpenBLAS, sgemm + the wasm bias/activation.
// - Conv2DBackpropFilter (missing): im2col + one GEMM (colᵀ·dy).
// - Conv2DBackpropInput (scalar loop): one GEMM (dy·Wᵀ) + col2im.
// - Conv2D with OpenBLAS: im2col + sgemm (XNNPACK's conv otherwise).
// - MaxPoolGrad: the wasm one starts its running max at the smallest positive float, so
//   windows ≤ 0 lose their gradient; rewritten with −∞ and the first maximum winning.
// - Identity: the wasm one copies the tensor; it shares the data instead (a reference
//   more), as tfjs's cpu backend does. The tape clones every tensor a gradient needs, so
//   each step copied its inputs and weights again.
// - PipelineAdamUpdate (new): Adam's update fused into one pass (adam_kernel.ts).
// - PipelineDense, PipelineSoftmaxXentMean and their gradients (new): an MLP layer and the
//   loss as one tape node each, from the same wasm kernels (mlp_kernels.ts).
import * as tf from "@tensorflow/tfjs-core";
import { ADAM_KERNEL, adamKernel } from "./adam_kernel.ts";
import type { Blas } from "./blas.ts";
import { col2im, type ConvGeom, im2col } from "./im2col.ts";
import { KERNELS_USED, mlpKernels, registerMlpGradients } from "./mlp_kernels.ts";

type DataId = object;
type Info = tf.TensorInfo;
/** The parts of tfjs-backend-wasm's BackendWasm used here. */
interface WasmBackend {
  incRef(id: DataId): void;
  dataIdMap: { get(id: DataId): { memoryOffset: number } | undefined };
  makeOutput(shape: number[], dtype: tf.DataType): Info;
  typedArrayFromHeap(t: Info): Float32Array;
  disposeData(id: DataId): boolean;
}
type Args = { inputs: Record<string, Info>; backend: unknown; attrs?: tf.NamedAttrMap };
type KernelFn = (args: Args) => Info | Info[];

const BACKEND = "wasm";
const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

// The wasm backend's own kernels, captured before the first replacement.
const originals = new Map<string, KernelFn | undefined>();

/**
 * Replace the wasm kernels (with OpenBLAS GEMMs when blas is given); returns the names
 * replaced. Call after setBackend("wasm"); calling again switches between the two modes.
 */
export function installWasmKernels(blas: Blas | null): string[] {
  const orig = (name: string) => {
    if (!originals.has(name)) originals.set(name, tf.getKernel(name, BACKEND)?.kernelFunc as KernelFn | undefined);
    return originals.get(name);
  };
  for (const name of [tf.Conv2D, tf.Conv2DBackpropFilter, ...KERNELS_USED]) orig(name);
  const transpose = orig(tf.Transpose)!, matMul = orig(tf.BatchMatMul)!, fused = orig(tf._FusedMatMul)!;
  const add = orig(tf.Add)!, identity = orig(tf.Identity)!;
  const activations: Record<string, KernelFn | undefined> = { relu: orig(tf.Relu), linear: undefined };

  /** x with its last two axes swapped (a new wasm tensor). */
  const swapLast2 = (backend: WasmBackend, x: Info): Info => {
    const r = x.shape.length;
    const perm = [...Array(r - 2).keys(), r - 1, r - 2];
    return transpose({ inputs: { x }, backend, attrs: { perm } }) as Info;
  };

  /** a·b (with transposes) on the wasm heap, by sgemm per batch; null when batch dims broadcast oddly. */
  const blasMatMul = (backend: WasmBackend, a: Info, b: Info, tA: boolean, tB: boolean): Info | null => {
    const ra = a.shape.length, rb = b.shape.length;
    const m = tA ? a.shape[ra - 1] : a.shape[ra - 2], k = tA ? a.shape[ra - 2] : a.shape[ra - 1];
    const n = tB ? b.shape[rb - 2] : b.shape[rb - 1];
    const batchA = size(a.shape.slice(0, -2)), batchB = size(b.shape.slice(0, -2));
    const outer = tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
    const batch = size(outer);
    if ((batchA !== batch && batchA !== 1) || (batchB !== batch && batchB !== 1)) return null;
    const out = backend.makeOutput([...outer, m, n], "float32");
    if (batch * m * n === 0) return out;
    const av = backend.typedArrayFromHeap(a), bv = backend.typedArrayFromHeap(b);
    const cv = backend.typedArrayFromHeap(out);
    if (k === 0) cv.fill(0);
    else {
      for (let i = 0; i < batch; i++) {
        const ai = batchA === 1 ? 0 : i * m * k, bi = batchB === 1 ? 0 : i * k * n;
        blas!.sgemm(tA, tB, m, n, k, av.subarray(ai, ai + m * k), bv.subarray(bi, bi + k * n), cv.subarray(i * m * n));
      }
    }
    return out;
  };

  /** a·b for rank-2/3 operands, by the best path available. */
  const matMulAny = (backend: WasmBackend, a: Info, b: Info, tA: boolean, tB: boolean): Info => {
    if (blas && a.dtype === "float32" && b.dtype === "float32") {
      const out = blasMatMul(backend, a, b, tA, tB);
      if (out) return out;
    }
    const a2 = tA ? swapLast2(backend, a) : a, b2 = tB ? swapLast2(backend, b) : b;
    const out = matMul({ inputs: { a: a2, b: b2 }, backend, attrs: { transposeA: false, transposeB: false } }) as Info;
    if (a2 !== a) backend.disposeData(a2.dataId);
    if (b2 !== b) backend.disposeData(b2.dataId);
    return out;
  };

  const batchMatMulFixed: KernelFn = ({ inputs, backend, attrs }) => {
    const { transposeA, transposeB } = attrs as unknown as tf.BatchMatMulAttrs;
    return matMulAny(backend as WasmBackend, inputs.a, inputs.b, transposeA, transposeB);
  };

  const fusedMatMulFixed: KernelFn = (args) => {
    const backend = args.backend as WasmBackend;
    const { a, b, bias, preluActivationWeights } = args.inputs;
    const attrs = args.attrs as unknown as tf._FusedMatMulAttrs;
    const act = attrs.activation ?? "linear";
    if (blas && !preluActivationWeights && act in activations && a.dtype === "float32" && b.dtype === "float32") {
      const prod = blasMatMul(backend, a, b, attrs.transposeA, attrs.transposeB);
      if (prod) {
        let out = prod;
        if (bias) {
          out = add({ inputs: { a: prod, b: bias }, backend }) as Info;
          backend.disposeData(prod.dataId);
        }
        const f = activations[act];
        if (f) {
          const y = f({ inputs: { x: out }, backend }) as Info;
          backend.disposeData(out.dataId);
          out = y;
        }
        return out;
      }
    }
    if (!attrs.transposeA && !attrs.transposeB) return fused(args);
    const a2 = attrs.transposeA ? swapLast2(backend, a) : a, b2 = attrs.transposeB ? swapLast2(backend, b) : b;
    const out = fused({
      inputs: { ...args.inputs, a: a2, b: b2 },
      backend,
      attrs: { ...args.attrs, transposeA: false, transposeB: false },
    }) as Info;
    if (a2 !== a) backend.disposeData(a2.dataId);
    if (b2 !== b) backend.disposeData(b2.dataId);
    return out;
  };

  /** im2col of x into a new wasm tensor [rows, kh·kw·cin]. */
  const im2colInfo = (backend: WasmBackend, x: Info, g: ConvGeom): Info => {
    const col = backend.makeOutput([g.n * g.oh * g.ow, g.kh * g.kw * g.c], "float32");
    im2col(backend.typedArrayFromHeap(x), g, backend.typedArrayFromHeap(col));
    return col;
  };

  const convInfoOf = (xShape: number[], filterShape: number[], attrs: tf.NamedAttrMap) => {
    const { strides, pad, dataFormat, dimRoundingMode } = attrs as unknown as tf.Conv2DAttrs;
    if (dataFormat && dataFormat !== "NHWC") throw new Error(`wasm conv fixes support NHWC only, got ${dataFormat}`);
    const dilations = (attrs as unknown as tf.Conv2DAttrs).dilations ?? 1;
    return tf.backend_util.computeConv2DInfo(
      xShape as [number, number, number, number],
      filterShape as [number, number, number, number],
      strides,
      dilations,
      pad,
      dimRoundingMode,
    );
  };
  const geomOf = (ci: tf.backend_util.Conv2DInfo): ConvGeom => ({
    n: ci.batchSize,
    h: ci.inHeight,
    w: ci.inWidth,
    c: ci.inChannels,
    kh: ci.filterHeight,
    kw: ci.filterWidth,
    sh: ci.strideHeight,
    sw: ci.strideWidth,
    dh: ci.dilationHeight,
    dw: ci.dilationWidth,
    pt: ci.padInfo.top,
    pl: ci.padInfo.left,
    oh: ci.outHeight,
    ow: ci.outWidth,
  });

  /** A rank-2 view of a wasm tensor (same data, no copy, not to be disposed). */
  const as2d = (t: Info, rows: number, cols: number): Info => ({
    dataId: t.dataId,
    shape: [rows, cols],
    dtype: t.dtype,
  });

  const conv2dBlas: KernelFn = ({ inputs, backend, attrs }) => {
    const be = backend as WasmBackend;
    const { x, filter } = inputs;
    const ci = convInfoOf(x.shape, filter.shape, attrs!);
    const g = geomOf(ci);
    const col = im2colInfo(be, x, g);
    const out = matMulAny(be, col, as2d(filter, col.shape[1], ci.outChannels), false, false);
    be.disposeData(col.dataId);
    return { ...out, shape: [g.n, g.oh, g.ow, ci.outChannels] };
  };

  const conv2dBackpropFilter: KernelFn = ({ inputs, backend, attrs }) => {
    const be = backend as WasmBackend;
    const { x, dy } = inputs;
    const { filterShape } = attrs as unknown as tf.Conv2DBackpropFilterAttrs;
    const ci = convInfoOf(x.shape, filterShape, attrs!);
    const col = im2colInfo(be, x, geomOf(ci));
    const dw = matMulAny(be, col, as2d(dy, col.shape[0], ci.outChannels), true, false);
    be.disposeData(col.dataId);
    return { ...dw, shape: [...filterShape] };
  };

  const conv2dBackpropInput: KernelFn = ({ inputs, backend, attrs }) => {
    const be = backend as WasmBackend;
    const { dy, filter } = inputs;
    const { inputShape } = attrs as unknown as tf.Conv2DBackpropInputAttrs;
    const ci = convInfoOf(inputShape, filter.shape, attrs!);
    const g = geomOf(ci);
    const rows = g.n * g.oh * g.ow, kk = g.kh * g.kw * g.c;
    const dcol = matMulAny(be, as2d(dy, rows, ci.outChannels), as2d(filter, kk, ci.outChannels), false, true);
    const dx = be.makeOutput([...inputShape], "float32");
    col2im(be.typedArrayFromHeap(dcol), g, be.typedArrayFromHeap(dx));
    be.disposeData(dcol.dataId);
    return dx;
  };

  const maxPoolGradFixed: KernelFn = ({ inputs, backend, attrs }) => {
    const be = backend as WasmBackend;
    const { dy, input } = inputs;
    const { filterSize, strides, pad, dimRoundingMode } = attrs as unknown as tf.MaxPoolGradAttrs;
    const ci = tf.backend_util.computePool2DInfo(
      input.shape as [number, number, number, number],
      filterSize,
      strides,
      1,
      pad,
      dimRoundingMode,
    );
    const dx = be.makeOutput([...input.shape], "float32");
    maxPoolBackward(be.typedArrayFromHeap(input), be.typedArrayFromHeap(dy), geomOf(ci), be.typedArrayFromHeap(dx));
    return dx;
  };

  const identityShared: KernelFn = ({ inputs, backend }) => {
    const { x } = inputs;
    if (x.dtype === "string") return identity({ inputs, backend });
    (backend as WasmBackend).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  };

  const replace = (name: string, kernelFunc: KernelFn) => {
    if (tf.getKernel(name, BACKEND)) tf.unregisterKernel(name, BACKEND);
    tf.registerKernel({ kernelName: name, backendName: BACKEND, kernelFunc: kernelFunc as tf.KernelFunc });
    return name;
  };
  const names = [
    replace(tf.BatchMatMul, batchMatMulFixed),
    replace(tf._FusedMatMul, fusedMatMulFixed),
    replace(tf.MaxPoolGrad, maxPoolGradFixed),
    replace(tf.Conv2DBackpropInput, conv2dBackpropInput),
    replace(tf.Conv2DBackpropFilter, conv2dBackpropFilter),
    replace(ADAM_KERNEL, adamKernel as KernelFn),
    replace(tf.Identity, identityShared),
  ];
  const mlp = mlpKernels({ original: (name) => orig(name)!, matMul: matMulAny });
  for (const [name, f] of Object.entries(mlp)) names.push(replace(name, f));
  registerMlpGradients();
  if (blas) names.push(replace(tf.Conv2D, conv2dBlas));
  else replace(tf.Conv2D, orig(tf.Conv2D)!);
  return names;
}

/**
 * Max-pool gradient: each window's dy goes to its first maximum (PyTorch's rule), with
 * padding never winning. x, dx: NHWC input-sized; dy: output-sized.
 */
export function maxPoolBackward(x: Float32Array, dy: Float32Array, g: ConvGeom, dx: Float32Array): void {
  const { n, h, w, c, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow } = g;
  dx.fill(0, 0, n * h * w * c);
  let o = 0;
  for (let b = 0; b < n; b++) {
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        for (let ch = 0; ch < c; ch++, o++) {
          let best = -Infinity, at = -1;
          for (let ky = 0; ky < kh; ky++) {
            const iy = oy * sh - pt + ky * dh;
            if (iy < 0 || iy >= h) continue;
            for (let kx = 0; kx < kw; kx++) {
              const ix = ox * sw - pl + kx * dw;
              if (ix < 0 || ix >= w) continue;
              const i = ((b * h + iy) * w + ix) * c + ch;
              if (x[i] > best || at < 0) best = x[i], at = i;
            }
          }
          if (at >= 0) dx[at] += dy[o];
        }
      }
    }
  }
}
