// The study's small VGG (shared/SPEC.md, train-cnn) with hand-written forward and backward:
// every conv is im2col + one GEMM (OpenBLAS when present, see models/compute/gemm.ts), its
// gradients two more GEMMs; BatchNorm+ReLU, max-pool, loss and Adam are fused JS loops
// (layers.ts). One flat array holds every parameter (and one each the gradients and
// Adam's moments), so a checkpoint is a few array writes and Adam is one loop.
//
// Layout: activations NHWC; conv weights HWIO ([3,3,cin,cout] = the GEMM's [9·cin, cout]);
// the linear layer's weight [features, classes]. Every conv has its own bias, BatchNorm
// (γ, β, running mean and variance) and ReLU, as SPEC asks (the study's code shared them).
import { Rng } from "../../data/rng.ts";
import type { Gemm } from "../compute/gemm.ts";
import { col2im, geom, im2col } from "../compute/im2col.ts";
import { adam, bnReluBackward, bnReluEval, bnReluTrain, maxPoolBackward, maxPoolForward } from "./layers.ts";
import { softmaxCrossEntropy } from "./layers.ts";

/** SPEC's table: conv output channels and whether a 3×3/2 max-pool (padding 1) follows. */
export const VGG_LAYERS: { out: number; pool: boolean }[] = [
  { out: 64, pool: true }, // conv1, maxpool1
  { out: 128, pool: true }, // conv2, maxpool2
  { out: 256, pool: false }, // conv3_a
  { out: 256, pool: true }, // conv3_b, maxpool3
  { out: 512, pool: false }, // conv4_a
  { out: 512, pool: true }, // conv4_b, maxpool4
  { out: 512, pool: false }, // conv5_a
  { out: 512, pool: true }, // conv5_b, maxpool5 (then the 1×1 avg-pool: the identity)
];

export interface VggConfig {
  /** Channel multiplier: 1 = the study's VGG; smaller for tests and smoke runs. */
  width: number;
  /** Input height = width in pixels (CIFAR: 32), channels 3. */
  size: number;
  classes: number;
}

/** Views into the flat arrays for one conv layer (parameters, or their gradients). */
interface ConvParams {
  w: Float32Array;
  b: Float32Array;
  gamma: Float32Array;
  beta: Float32Array;
}
interface ConvLayer {
  cin: number;
  cout: number;
  pool: boolean;
  /** Input spatial size. */
  h: number;
  p: ConvParams;
  g: ConvParams;
  runMean: Float32Array;
  runVar: Float32Array;
}

/** Per-batch-size buffers, reused every step. */
interface Work {
  cap: number;
  col: Float32Array[];
  z: Float32Array[];
  y: Float32Array[];
  out: Float32Array[]; // pooled outputs (= y when no pool)
  mean: Float64Array[];
  rstd: Float64Array[];
  logits: Float32Array;
  dlogits: Float32Array;
  gradA: Float32Array;
  gradB: Float32Array;
}

export class Vgg {
  readonly convs: ConvLayer[] = [];
  readonly features: number;
  /** Every trainable parameter; grads, m, v have the same layout. */
  readonly params: Float32Array;
  readonly grads: Float32Array;
  readonly m: Float32Array;
  readonly v: Float32Array;
  /** BatchNorm running means and variances (not trained). */
  readonly stats: Float32Array;
  /** Adam steps taken. */
  step = 0;
  readonly linW: Float32Array;
  readonly linB: Float32Array;
  private readonly dLinW: Float32Array;
  private readonly dLinB: Float32Array;
  private works = new Map<number, Work>();
  /** When set, milliseconds spent per kind of kernel accumulate here (benchmarks). */
  profile: Record<string, number> | null = null;

  constructor(readonly cfg: VggConfig, readonly gemm: Gemm, seed = 42) {
    const shapes: { cin: number; cout: number; pool: boolean; h: number }[] = [];
    let cin = 3, h = cfg.size;
    for (const l of VGG_LAYERS) {
      const cout = Math.max(1, Math.round(l.out * cfg.width));
      shapes.push({ cin, cout, pool: l.pool, h });
      cin = cout;
      if (l.pool) h = Math.floor((h - 1) / 2) + 1;
    }
    this.features = cin * h * h;
    let nParams = this.features * cfg.classes + cfg.classes, nStats = 0;
    for (const s of shapes) nParams += 9 * s.cin * s.cout + 3 * s.cout, nStats += 2 * s.cout;
    this.params = new Float32Array(nParams);
    this.grads = new Float32Array(nParams);
    this.m = new Float32Array(nParams);
    this.v = new Float32Array(nParams);
    this.stats = new Float32Array(nStats);
    let off = 0, soff = 0;
    const take = (a: Float32Array, n: number) => a.subarray(off, off + n);
    const views = (s: { cin: number; cout: number }, a: Float32Array): ConvParams => {
      const o = off, wn = 9 * s.cin * s.cout;
      return {
        w: a.subarray(o, o + wn),
        b: a.subarray(o + wn, o + wn + s.cout),
        gamma: a.subarray(o + wn + s.cout, o + wn + 2 * s.cout),
        beta: a.subarray(o + wn + 2 * s.cout, o + wn + 3 * s.cout),
      };
    };
    for (const s of shapes) {
      const layer: ConvLayer = {
        ...s,
        p: views(s, this.params),
        g: views(s, this.grads),
        runMean: this.stats.subarray(soff, soff + s.cout),
        runVar: this.stats.subarray(soff + s.cout, soff + 2 * s.cout),
      };
      off += 9 * s.cin * s.cout + 3 * s.cout;
      soff += 2 * s.cout;
      this.convs.push(layer);
    }
    this.linW = take(this.params, this.features * cfg.classes);
    this.dLinW = take(this.grads, this.features * cfg.classes);
    off += this.features * cfg.classes;
    this.linB = take(this.params, cfg.classes);
    this.dLinB = take(this.grads, cfg.classes);
    this.init(seed);
  }

  /**
   * PyTorch's default initialisation: conv and linear weights and biases uniform in
   * ±1/√fan_in (kaiming-uniform with a=√5), γ=1, β=0, running mean 0 and variance 1.
   */
  init(seed: number): void {
    const rng = new Rng(seed);
    const uniform = (a: Float32Array, bound: number) => {
      for (let i = 0; i < a.length; i++) a[i] = (2 * rng.next() - 1) * bound;
    };
    for (const l of this.convs) {
      const bound = 1 / Math.sqrt(9 * l.cin);
      uniform(l.p.w, bound);
      uniform(l.p.b, bound);
      l.p.gamma.fill(1);
      l.p.beta.fill(0);
      l.runMean.fill(0);
      l.runVar.fill(1);
    }
    uniform(this.linW, 1 / Math.sqrt(this.features));
    uniform(this.linB, 1 / Math.sqrt(this.features));
    this.m.fill(0);
    this.v.fill(0);
    this.step = 0;
  }

  private time(kind: string, f: () => void): void {
    if (!this.profile) return f();
    const t = performance.now();
    f();
    this.profile[kind] = (this.profile[kind] ?? 0) + performance.now() - t;
  }

  /** Buffers for a batch of n (those of a somewhat larger batch serve too). */
  private work(n: number): Work {
    for (const [cap, w] of this.works) if (cap >= n && cap < 4 * n + 64) return w;
    const col: Float32Array[] = [], z: Float32Array[] = [], y: Float32Array[] = [], out: Float32Array[] = [];
    const mean: Float64Array[] = [], rstd: Float64Array[] = [];
    let maxAct = n * this.cfg.size * this.cfg.size * 3;
    for (const l of this.convs) {
      const ho = l.pool ? Math.floor((l.h - 1) / 2) + 1 : l.h;
      col.push(new Float32Array(n * l.h * l.h * 9 * l.cin));
      z.push(new Float32Array(n * l.h * l.h * l.cout));
      const yl = new Float32Array(n * l.h * l.h * l.cout);
      y.push(yl);
      out.push(l.pool ? new Float32Array(n * ho * ho * l.cout) : yl);
      mean.push(new Float64Array(l.cout));
      rstd.push(new Float64Array(l.cout));
      maxAct = Math.max(maxAct, yl.length);
    }
    const k = this.cfg.classes;
    const w: Work = {
      cap: n,
      col,
      z,
      y,
      out,
      mean,
      rstd,
      logits: new Float32Array(n * k),
      dlogits: new Float32Array(n * k),
      gradA: new Float32Array(maxAct),
      gradB: new Float32Array(maxAct),
    };
    this.works.set(n, w);
    return w;
  }

  /** Forward pass of n NHWC images; returns the logits (a view into the work buffers). */
  private forward(x: Float32Array, n: number, train: boolean, w: Work): Float32Array {
    let input = x;
    this.convs.forEach((l, i) => {
      const g = geom(n, l.h, l.h, l.cin, 3, 1, 1);
      const rows = n * l.h * l.h, kk = 9 * l.cin;
      this.time("im2col", () => im2col(input, g, w.col[i]));
      this.time("gemm", () => this.gemm.gemm(false, false, rows, l.cout, kk, w.col[i], l.p.w, w.z[i]));
      const bn = { ...l.p, runMean: l.runMean, runVar: l.runVar };
      this.time("bn+relu", () => {
        if (train) bnReluTrain(w.z[i], rows, l.cout, bn, w.mean[i], w.rstd[i], w.y[i]);
        else bnReluEval(w.z[i], rows, l.cout, bn, w.y[i]);
      });
      if (l.pool) this.time("pool", () => maxPoolForward(w.y[i], geom(n, l.h, l.h, l.cout, 3, 2, 1), w.out[i]));
      input = w.out[i];
    });
    const k = this.cfg.classes;
    this.gemm.gemm(false, false, n, k, this.features, input, this.linW, w.logits);
    for (let r = 0; r < n; r++) for (let j = 0; j < k; j++) w.logits[r * k + j] += this.linB[j];
    return w.logits.subarray(0, n * k);
  }

  /**
   * Training-mode forward and backward of one batch: fills `grads`, updates the running
   * statistics; returns the batch's mean loss and correct count (before any update).
   */
  lossAndGrads(x: Float32Array, labels: Uint8Array, n: number): { loss: number; correct: number } {
    const w = this.work(n), k = this.cfg.classes;
    const logits = this.forward(x, n, true, w);
    const res = softmaxCrossEntropy(logits, labels, n, k, w.dlogits);
    // Linear layer: dW = featᵀ·dlogits, db = Σ dlogits, dfeat = dlogits·Wᵀ.
    const last = this.convs.length - 1, feat = w.out[last];
    this.gemm.gemm(true, false, this.features, k, n, feat, w.dlogits, this.dLinW);
    this.dLinB.fill(0);
    for (let r = 0; r < n; r++) for (let j = 0; j < k; j++) this.dLinB[j] += w.dlogits[r * k + j];
    let dout = w.gradA; // gradient wrt the current layer's (pooled) output
    this.gemm.gemm(false, true, n, this.features, k, w.dlogits, this.linW, dout);
    for (let i = last; i >= 0; i--) {
      const l = this.convs[i], rows = n * l.h * l.h, kk = 9 * l.cin;
      let dy = dout;
      if (l.pool) {
        dy = w.gradB;
        const g = geom(n, l.h, l.h, l.cout, 3, 2, 1);
        this.time("pool", () => maxPoolBackward(w.y[i], w.out[i], dout, g, dy));
      }
      this.time(
        "bn+relu",
        () => bnReluBackward(w.z[i], w.y[i], rows, l.cout, l.p.gamma, w.mean[i], w.rstd[i], dy, l.g),
      );
      this.time("gemm", () => this.gemm.gemm(true, false, kk, l.cout, rows, w.col[i], dy, l.g.w));
      if (i > 0) {
        this.time("gemm", () => this.gemm.gemm(false, true, rows, kk, l.cout, dy, l.p.w, w.col[i])); // dcol, over col
        this.time("col2im", () => col2im(w.col[i], geom(n, l.h, l.h, l.cin, 3, 1, 1), w.gradA));
        dout = w.gradA;
      }
    }
    return res;
  }

  /** One Adam step on a batch; returns the batch's loss and accuracy before the update. */
  trainStep(x: Float32Array, labels: Uint8Array, n: number, lr: number): { loss: number; acc: number } {
    const { loss, correct } = this.lossAndGrads(x, labels, n);
    this.step++;
    this.time("adam", () => adam(this.params, this.grads, this.m, this.v, this.step, lr));
    return { loss, acc: correct / n };
  }

  /** Inference-mode logits (running statistics) of n images, in chunks; a fresh array. */
  predict(x: Float32Array, n: number, chunk = 100): Float32Array {
    const k = this.cfg.classes, px = this.cfg.size * this.cfg.size * 3, out = new Float32Array(n * k);
    for (let s = 0; s < n; s += chunk) {
      const c = Math.min(chunk, n - s);
      out.set(this.forward(x.subarray(s * px, (s + c) * px), c, false, this.work(Math.min(chunk, n))), s * k);
    }
    return out;
  }

  /**
   * Every parameter and running statistic by name: conv<i>.weight (3×3×cin×cout, HWIO), conv<i>.bias,
   * conv<i>.bn.{weight,bias,running_mean,running_var}, classifier.weight (features × classes), classifier.bias.
   * The arrays are the model's own (views): loading writes into them.
   */
  named(): Record<string, { shape: number[]; data: Float32Array }> {
    const out: Record<string, { shape: number[]; data: Float32Array }> = {};
    this.convs.forEach((c, i) => {
      out[`conv${i}.weight`] = { shape: [3, 3, c.cin, c.cout], data: c.p.w };
      out[`conv${i}.bias`] = { shape: [c.cout], data: c.p.b };
      out[`conv${i}.bn.weight`] = { shape: [c.cout], data: c.p.gamma };
      out[`conv${i}.bn.bias`] = { shape: [c.cout], data: c.p.beta };
      out[`conv${i}.bn.running_mean`] = { shape: [c.cout], data: c.runMean };
      out[`conv${i}.bn.running_var`] = { shape: [c.cout], data: c.runVar };
    });
    out["classifier.weight"] = { shape: [this.features, this.cfg.classes], data: this.linW };
    out["classifier.bias"] = { shape: [this.cfg.classes], data: this.linB };
    return out;
  }

  /** Inference-mode mean loss and accuracy. */
  evaluate(x: Float32Array, labels: Uint8Array, n: number, chunk = 100): { loss: number; acc: number } {
    const { loss, correct } = softmaxCrossEntropy(this.predict(x, n, chunk), labels, n, this.cfg.classes);
    return { loss, acc: correct / n };
  }
}
