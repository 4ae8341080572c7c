// Two fused kernels for the autograd MLP stages' step, each one node on tfjs's tape:
// - PipelineDense: y = x·W + b, then ReLU (attr relu), where tfjs's ops record three nodes;
// - PipelineSoftmaxXentMean: the mean softmax cross-entropy of logits against one-hot
//   labels, where tf.losses.softmaxCrossEntropy runs about 20 kernels forward and 10 back.
// Besides its two large GEMMs, a small MLP step (3072-100-10, batch 200) was mostly the
// engine's bookkeeping per op (tape, scopes, a wasm allocation per kernel): these cut it.
// Their gradients are registered per input and run only for the inputs on the path (a
// first layer's dx is never computed).
//
// Same bits as the ops they replace. The dense layer calls the kernels tfjs's ops would
// (the GEMM of wasm_kernels.ts, then wasm's Add and Relu), and its gradient is tfjs's own
// composition (step, multiply, the two products, a sum). The loss, always n × 10, is written
// out as tfjs's kernels compute it: exp and log are tfjs's wasm kernels; each +, −, ×, ÷ of
// float32 values is rounded once to float32 (Math.fround: exactly IEEE float32's); sums are
// taken in order from 0, as tfjs's wasm Sum takes them. tests/models/mlp_kernels_test.ts compares
// both with the plain ops, values and gradients, bit for bit (−0, ties and NaN included).
import * as tf from "@tensorflow/tfjs-core";

export const DENSE_KERNEL = "PipelineDense";
export const XENT_KERNEL = "PipelineSoftmaxXentMean";
export const XENT_GRAD_KERNEL = "PipelineSoftmaxXentMeanGrad";

type Info = tf.TensorInfo;
type KernelFn = (args: { inputs: Record<string, Info>; backend: unknown; attrs?: tf.NamedAttrMap }) => Info | Info[];
interface WasmBackend {
  makeOutput(shape: number[], dtype: tf.DataType): Info;
  typedArrayFromHeap(t: Info): Float32Array;
  disposeData(id: tf.DataId): boolean;
}

/** The wasm kernels these call (wasm_kernels.ts captures them before replacing any). */
export const KERNELS_USED = [tf.Add, tf.Exp, tf.Log, tf.Relu];

/** What the kernels need from wasm_kernels.ts: the original wasm kernels and its GEMM. */
export interface WasmParts {
  original(name: string): KernelFn;
  matMul(backend: WasmBackend, a: Info, b: Info, transposeA: boolean, transposeB: boolean): Info;
}

const f32 = Math.fround;

/** The kernels by name, for wasm_kernels.ts to register on the wasm backend. */
export function mlpKernels(parts: WasmParts): Record<string, KernelFn> {
  // Heap views are taken after the last allocation of each kernel: a growing heap detaches older ones.
  const heap = (be: WasmBackend, ...ts: Info[]) => ts.map((t) => be.typedArrayFromHeap(t));
  const exp = (be: WasmBackend, x: Info) => parts.original(tf.Exp)({ inputs: { x }, backend: be }) as Info;

  /** Row-wise logits − logSumExp(logits) into a new [n, k] tensor, as tfjs's softmaxCrossEntropy computes it. */
  const logSoftmax = (be: WasmBackend, logits: Info): Info => {
    const [n, k] = logits.shape;
    const shifted = be.makeOutput([n, k], "float32"), rowMax = new Float32Array(n);
    {
      const [x, a] = heap(be, logits, shifted);
      for (let i = 0; i < n; i++) {
        let m = x[i * k];
        for (let j = 1; j < k; j++) if (x[i * k + j] > m) m = x[i * k + j];
        rowMax[i] = m;
        for (let j = 0; j < k; j++) a[i * k + j] = f32(x[i * k + j] - m);
      }
    }
    const e = exp(be, shifted), sums = be.makeOutput([n], "float32");
    {
      const [ev, s] = heap(be, e, sums);
      for (let i = 0; i < n; i++) {
        let acc = 0;
        for (let j = 0; j < k; j++) acc = f32(acc + ev[i * k + j]);
        s[i] = acc;
      }
    }
    const logs = parts.original(tf.Log)({ inputs: { x: sums }, backend: be }) as Info;
    const [x, d, out] = heap(be, logits, logs, shifted); // the shifted values are done with: reused
    for (let i = 0; i < n; i++) {
      const lse = f32(rowMax[i] + d[i]);
      for (let j = 0; j < k; j++) out[i * k + j] = f32(x[i * k + j] - lse);
    }
    for (const t of [e, sums, logs]) be.disposeData(t.dataId);
    return shifted;
  };

  const dense: KernelFn = ({ inputs, backend, attrs }) => {
    const be = backend as WasmBackend;
    const prod = parts.matMul(be, inputs.x, inputs.w, false, false);
    const pre = parts.original(tf.Add)({ inputs: { a: prod, b: inputs.b }, backend: be }) as Info;
    be.disposeData(prod.dataId);
    if (!attrs?.relu) return pre;
    const y = parts.original(tf.Relu)({ inputs: { x: pre }, backend: be }) as Info;
    be.disposeData(pre.dataId);
    return y;
  };

  const xent: KernelFn = ({ inputs, backend }) => {
    const be = backend as WasmBackend;
    const { logits, labels } = inputs;
    const [n, k] = logits.shape;
    const lr = logSoftmax(be, logits), out = be.makeOutput([], "float32");
    const [l, t, o] = heap(be, lr, labels, out);
    let total = 0;
    for (let i = 0; i < n; i++) {
      let row = 0;
      for (let j = 0; j < k; j++) row = f32(row + -f32(l[i * k + j] * t[i * k + j]));
      total = f32(total + row);
    }
    o[0] = f32(total / n);
    be.disposeData(lr.dataId);
    return out;
  };

  // d(mean)/d(logits) = (dy / n) · (exp(logSoftmax) − labels), as tfjs's gradients compute
  // it (the mean's division, then Sum's gradient: a product with ones, exact); of "labels"
  // (dy / n) · (labels − exp(logSoftmax)).
  const xentGrad: KernelFn = ({ inputs, backend, attrs }) => {
    const be = backend as WasmBackend;
    const { dy, logits, labels } = inputs;
    const lr = logSoftmax(be, logits), e = exp(be, lr);
    const [g, ev, t] = heap(be, dy, e, labels);
    const rowDy = f32(g[0] / logits.shape[0]), ofLabels = attrs?.of === "labels";
    for (let i = 0; i < ev.length; i++) ev[i] = f32(rowDy * (ofLabels ? f32(t[i] - ev[i]) : f32(ev[i] - t[i])));
    be.disposeData(lr.dataId);
    return e;
  };

  return { [DENSE_KERNEL]: dense, [XENT_KERNEL]: xent, [XENT_GRAD_KERNEL]: xentGrad };
}

let gradientsRegistered = false;

/** The two kernels' gradients (tfjs keeps gradients per kernel name, for every backend). */
export function registerMlpGradients(): void {
  if (gradientsRegistered) return;
  gradientsRegistered = true;
  tf.registerGradient({
    kernelName: DENSE_KERNEL,
    inputsToSave: ["x", "w"],
    outputsToSave: [true],
    // tfjs's gradients of matMul, add and relu, composed: relu multiplies dy by
    // step(pre-activation); step(y) is the same (y > 0 exactly where the pre-activation
    // is > 0, NaN where it is NaN). The step runs once, for every input on the path.
    gradFunc: (dy, saved, attrs) => {
      const [x, w, y] = saved as tf.Tensor2D[];
      const d = attrs.relu ? tf.mul(dy as tf.Tensor2D, tf.step(y)) : dy as tf.Tensor2D;
      return {
        x: () => tf.matMul(d, w, false, true),
        w: () => tf.matMul(x, d, true, false),
        b: () => tf.sum(d, 0),
      };
    },
  });
  tf.registerGradient({
    kernelName: XENT_KERNEL,
    inputsToSave: ["logits", "labels"],
    gradFunc: (dy, saved) => {
      const [logits, labels] = saved;
      const grad = (of: string) => () =>
        tf.engine().runKernel(XENT_GRAD_KERNEL, { dy: dy as tf.Tensor, logits, labels }, { of }) as tf.Tensor;
      return { logits: grad("logits"), labels: grad("labels") };
    },
  });
}

const fused = (name: string) => tf.getKernel(name, tf.getBackend()) !== undefined;

/** x·W + b, then ReLU when `relu`: one tape node on the wasm backend, tfjs's ops elsewhere. */
export function dense(x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D, relu: boolean): tf.Tensor2D {
  if (!fused(DENSE_KERNEL)) {
    const pre = tf.add(tf.matMul(x, w), b) as tf.Tensor2D;
    return relu ? tf.relu(pre) : pre;
  }
  return tf.engine().runKernel(DENSE_KERNEL, { x, w, b }, { relu }) as tf.Tensor2D;
}

/** The mean softmax cross-entropy of logits against float32 one-hot labels (tf.losses.softmaxCrossEntropy's). */
export function softmaxCrossEntropyMean(logits: tf.Tensor2D, labels: tf.Tensor2D): tf.Scalar {
  if (!fused(XENT_KERNEL)) return tf.losses.softmaxCrossEntropy(labels, logits) as tf.Scalar;
  return tf.engine().runKernel(XENT_KERNEL, { logits, labels }) as tf.Scalar;
}
