// The same VGG written with tfjs ops and autograd, from a Vgg's parameters: the oracle
// the hand-written gradients are tested against (cpu backend), and the "tfjs autograd"
// path of the benchmark (wasm with the kernel fixes). BatchNorm is written as
// (h−μ)·γ·rsqrt(σ²+ε)+β: tf.batchNorm's gradient goes through a slow Tile on wasm.
import { tf } from "../compute/backend.ts";
import { BN_EPS, BN_MOMENTUM } from "./layers.ts";
import type { Vgg } from "./vgg.ts";

export class TfVgg {
  /** Parameters in Vgg's flat order. */
  readonly vars: tf.Variable[] = [];
  private readonly run: { mean: tf.Variable; var: tf.Variable }[] = [];
  private readonly opt: tf.Optimizer;

  constructor(readonly model: Vgg, lr = 1e-4) {
    for (const l of model.convs) {
      this.vars.push(
        tf.variable(tf.tensor4d(l.p.w, [3, 3, l.cin, l.cout])),
        tf.variable(tf.tensor1d(l.p.b)),
        tf.variable(tf.tensor1d(l.p.gamma)),
        tf.variable(tf.tensor1d(l.p.beta)),
      );
      this.run.push({ mean: tf.variable(tf.tensor1d(l.runMean)), var: tf.variable(tf.tensor1d(l.runVar)) });
    }
    this.vars.push(
      tf.variable(tf.tensor2d(model.linW, [model.features, model.cfg.classes])),
      tf.variable(tf.tensor1d(model.linB)),
    );
    this.opt = tf.train.adam(lr, 0.9, 0.999, 1e-8);
  }

  /** Logits of n NHWC images; in training mode also updates the running statistics. */
  logits(x: tf.Tensor4D, train: boolean): tf.Tensor2D {
    const n = x.shape[0];
    let h: tf.Tensor4D = x;
    this.model.convs.forEach((l, i) => {
      const [w, b, gamma, beta] = this.vars.slice(4 * i, 4 * i + 4);
      h = tf.add(tf.conv2d(h, w as tf.Tensor4D, 1, "same"), b);
      let mean: tf.Tensor, variance: tf.Tensor;
      if (train) {
        mean = tf.mean(h, [0, 1, 2]);
        variance = tf.mean(tf.square(tf.sub(h, mean)), [0, 1, 2]);
        const rows = h.size / l.cout, r = this.run[i];
        tf.tidy(() => {
          r.mean.assign(tf.add(tf.mul(r.mean, 1 - BN_MOMENTUM), tf.mul(mean, BN_MOMENTUM)));
          const unbiased = tf.mul(variance, rows / Math.max(1, rows - 1));
          r.var.assign(tf.add(tf.mul(r.var, 1 - BN_MOMENTUM), tf.mul(unbiased, BN_MOMENTUM)));
        });
      } else {
        mean = this.run[i].mean;
        variance = this.run[i].var;
      }
      h = tf.add(tf.mul(tf.mul(tf.sub(h, mean), gamma), tf.rsqrt(tf.add(variance, BN_EPS))), beta);
      h = tf.relu(h);
      if (l.pool) h = tf.maxPool(h, 3, 2, 1);
    });
    const feat = tf.reshape(h, [n, this.model.features]);
    return tf.add(tf.matMul(feat, this.vars[this.vars.length - 2] as tf.Tensor2D), this.vars[this.vars.length - 1]);
  }

  private loss(x: tf.Tensor4D, y: tf.Tensor2D): tf.Scalar {
    return tf.losses.softmaxCrossEntropy(y, this.logits(x, true)) as tf.Scalar;
  }

  private inputs(x: Float32Array, labels: Uint8Array, n: number): [tf.Tensor4D, tf.Tensor2D] {
    const s = this.model.cfg.size;
    return [
      tf.tensor4d(x.subarray(0, n * s * s * 3), [n, s, s, 3]),
      tf.oneHot(tf.tensor1d(Int32Array.from(labels.subarray(0, n)), "int32"), 10) as tf.Tensor2D,
    ];
  }

  /** Loss, flat gradient (Vgg layout) and running statistics after one training-mode pass. */
  lossAndGrads(
    x: Float32Array,
    labels: Uint8Array,
    n: number,
  ): { loss: number; grads: Float32Array; stats: Float32Array } {
    return tf.tidy(() => {
      const [xt, yt] = this.inputs(x, labels, n);
      const { value, grads } = tf.variableGrads(() => this.loss(xt, yt), this.vars);
      const flat = new Float32Array(this.model.params.length);
      let off = 0;
      for (const v of this.vars) {
        flat.set(grads[v.name].dataSync(), off);
        off += v.size;
      }
      return { loss: value.dataSync()[0], grads: flat, stats: this.stats() };
    });
  }

  /** Running means and variances in Vgg's `stats` layout. */
  stats(): Float32Array {
    const out = new Float32Array(this.model.stats.length);
    let off = 0;
    for (const r of this.run) {
      out.set(r.mean.dataSync(), off);
      out.set(r.var.dataSync(), off + r.mean.size);
      off += 2 * r.mean.size;
    }
    return out;
  }

  /** One Adam step (tfjs's optimizer); returns the loss. */
  trainStep(x: Float32Array, labels: Uint8Array, n: number): number {
    return tf.tidy(() => {
      const [xt, yt] = this.inputs(x, labels, n);
      return this.opt.minimize(() => this.loss(xt, yt), true, this.vars)!.dataSync()[0];
    });
  }

  /** Inference-mode logits. */
  predict(x: Float32Array, n: number): Float32Array {
    return tf.tidy(() => {
      const s = this.model.cfg.size;
      return this.logits(tf.tensor4d(x.subarray(0, n * s * s * 3), [n, s, s, 3]), false).dataSync() as Float32Array;
    });
  }

  dispose(): void {
    for (const v of this.vars) v.dispose();
    for (const r of this.run) r.mean.dispose(), r.var.dispose();
    this.opt.dispose();
  }
}
