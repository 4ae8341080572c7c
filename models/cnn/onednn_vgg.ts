// The study's small VGG (vgg.ts: same layers, initialisation and math) on oneDNN
// primitives: convolution forward / backward-data / backward-weights, batch norm with the
// ReLU fused in (training: batch statistics), max-pool forward/backward; in inference the
// batch norm (running statistics) and ReLU are post-ops of the convolution. Activations
// stay in the layout oneDNN picks for the convolutions (blocked, nChw8c on AVX2); reorders
// only at the edges (NHWC input, the classifier's features). Conv weights are stored in
// their forward format too, so the forward pass reorders no weights; Adam (wasm SIMD,
// simd_adam.ts) is element-wise: the layout does not matter to it.
//
// Layout of `params` (and grads, m, v): per conv [w (blocked) | b | γ | β], then the
// linear layer's W [features, classes] (features in NHWC order, as vgg.ts) and b, padded
// to a multiple of 4. `stats` is vgg.ts's: per conv [running mean | running variance].
// vggLayout() gives parameters or gradients in vgg.ts's layout (HWIO weights).
import { Rng } from "../../data/rng.ts";
import { Arg, BN_FUSE_RELU, BN_SCALE, BN_SHIFT, type Dnnl, type Md, type Mem, type Pd } from "../compute/onednn.ts";
import { postOpArg, Prop, Query, Tag } from "../compute/onednn.ts";
import { loadConvBwdWeights } from "../compute/conv_bwd_weights.ts";
import { loadNativeAdam } from "../compute/native_adam.ts";
import { simdAdam } from "../compute/simd_adam.ts";
import { BN_EPS, BN_MOMENTUM, softmaxCrossEntropy } from "./layers.ts";
import { VGG_LAYERS, type VggConfig } from "./vgg.ts";

interface ConvSpec {
  cin: number;
  cout: number;
  pool: boolean;
  /** Input spatial size; ho after the pool. */
  h: number;
  ho: number;
  /** Offsets into params: w, b, γ, β; into stats: running mean, variance. */
  w: number;
  wn: number;
  b: number;
  stat: number;
}

/** Tensors and primitives of one conv block for one batch size. */
interface Block {
  src: Mem; // input (the previous block's output)
  convF: Pd;
  z: Mem; // conv output (inference: after the fused batch norm and ReLU, = y)
  bnF?: Pd; // training only
  y: Mem;
  out: Mem; // = y without a pool
  mean?: Mem;
  variance?: Mem;
  wsBn?: Mem;
  poolF?: Pd;
  wsPool?: Mem;
  fwd: [Arg, Mem][][];
  // training only
  bwd?: { run: () => void };
}

export class OnednnVgg {
  readonly specs: ConvSpec[] = [];
  readonly features: number;
  readonly params: Float32Array;
  readonly grads: Float32Array;
  readonly m: Float32Array;
  readonly v: Float32Array;
  readonly stats: Float32Array;
  step = 0;
  private readonly adam: ReturnType<typeof simdAdam>;
  /** Canonical (blocked) weight descriptor of each conv: every primitive uses it. */
  private readonly wMd: Md[] = [];
  private readonly linW: number;
  private readonly nets = new Map<string, Net>();
  profile: Record<string, number> | null = null;
  /** The kernels oneDNN chose for the backward-weights (what determinism rests on). */
  readonly impls = new Set<string>();
  /** OpenMP threads this model's primitives run on (see useThreads). */
  readonly threads: number;

  constructor(readonly cfg: VggConfig, readonly dnnl: Dnnl, seed = 42) {
    let cin = 3, h = cfg.size, off = 0, soff = 0;
    for (const l of VGG_LAYERS) {
      const cout = Math.max(1, Math.round(l.out * cfg.width));
      const ho = l.pool ? Math.floor((h - 1) / 2) + 1 : h;
      // The weight format oneDNN's forward convolution wants (shape-dependent, not batch-dependent).
      const probe = dnnl.convFwd(
        Prop.training,
        dnnl.md([32, cin, h, h], Tag.any),
        dnnl.md([cout, cin, 3, 3], Tag.any),
        null,
        dnnl.md([32, cout, h, h], Tag.any),
        1,
        1,
      );
      const wMd = dnnl.mem(probe.query(Query.weights)).md;
      this.wMd.push(wMd);
      const wn = dnnl.bytes(wMd) / 4;
      this.specs.push({ cin, cout, pool: l.pool, h, ho, w: off, wn, b: off + wn, stat: soff });
      off += wn + 3 * cout;
      soff += 2 * cout;
      cin = cout;
      h = ho;
    }
    this.features = cin * h * h;
    this.threads = Math.max(1, Math.min(dnnl.threads, ...this.specs.map((s) => Math.ceil(s.cout / 8))));
    this.linW = off;
    // Four equal arrays in one wasm memory for the SIMD Adam (lengths a multiple of 4; the
    // padding is zero and stays zero).
    const n = Math.ceil((off + this.features * cfg.classes + cfg.classes) / 4) * 4;
    this.adam = simdAdam(4 * n);
    [this.params, this.grads, this.m, this.v] = [0, 1, 2, 3].map((k) =>
      new Float32Array(this.adam.memory.buffer, k * n * 4, n)
    );
    this.stats = new Float32Array(soff);
    this.init(seed);
  }

  /**
   * The compute path in words, e.g. "oneDNN 2.6.3 (AVX2 pinned, 2 threads, deterministic)":
   * bit-identical across thread counts when every backward-weights kernel is oneDNN's
   * direct jit one or the native one (each weight summed on one thread); the thread cap
   * sees to batch norm.
   */
  describe(batch: number): string {
    this.net(batch, true); // the backward kernels are chosen per batch size
    const notJit = [...this.impls].filter((i) => !/weights (jit:|native)/.test(i));
    const det = notJit.length ? `not deterministic: ${notJit.join(", ")}` : "deterministic";
    const native = [this.impls.has("conv bwd weights native") && "backward-weights", loadNativeAdam().step && "Adam"];
    const also = native.some(Boolean) ? `; native ${native.filter(Boolean).join(" + ")}` : "";
    const t = this.threads;
    return this.dnnl.description.replace(/\d+ threads?\)$/, `${t} thread${t === 1 ? "" : "s"}, ${det}${also})`);
  }

  /**
   * Measured: with more OpenMP threads than the narrowest layer has blocks of 8 channels,
   * results depend on the thread count (batch norm splits a block's sums; not only it: with
   * batch norm on one thread they still differ); up to that many they are bit-identical
   * (1, 2, 4 tested). So the model runs on at most that many threads (8 for the study's VGG).
   */
  private useThreads(): void {
    this.dnnl.setThreads(this.threads);
  }

  /** vgg.ts's initialisation (the same generator, the same order), weights reordered into place. */
  init(seed: number): void {
    const rng = new Rng(seed);
    const uniform = (a: Float32Array, bound: number) => {
      for (let i = 0; i < a.length; i++) a[i] = (2 * rng.next() - 1) * bound;
    };
    this.params.fill(0);
    for (const s of this.specs) {
      const bound = 1 / Math.sqrt(9 * s.cin), w = new Float32Array(9 * s.cin * s.cout);
      uniform(w, bound);
      this.weights(s, w, true);
      uniform(this.params.subarray(s.b, s.b + s.cout), bound);
      this.params.fill(1, s.b + s.cout, s.b + 2 * s.cout);
      this.stats.fill(0, s.stat, s.stat + s.cout);
      this.stats.fill(1, s.stat + s.cout, s.stat + 2 * s.cout);
    }
    const k = this.cfg.classes, bound = 1 / Math.sqrt(this.features);
    uniform(this.params.subarray(this.linW, this.linW + this.features * k + k), bound);
    this.grads.fill(0);
    this.m.fill(0);
    this.v.fill(0);
    this.step = 0;
  }

  /** Copies HWIO weights into conv s's blocked ones (toBlocked), or back. */
  private weights(s: ConvSpec, hwio: Float32Array, toBlocked: boolean, from = this.params): void {
    this.useThreads();
    const plain = this.dnnl.mem(this.dnnl.md([s.cout, s.cin, 3, 3], Tag.hwio), hwio);
    const blocked = this.dnnl.mem(this.wMd[this.specs.indexOf(s)], from.subarray(s.w, s.w + s.wn));
    const [a, b] = toBlocked ? [plain, blocked] : [blocked, plain];
    this.dnnl.reorder(a.md, b.md).run([[Arg.src, a], [Arg.dst, b]]);
  }

  /** An array (params or grads) in vgg.ts's flat layout. */
  vggLayout(a: Float32Array = this.params): Float32Array {
    const out: number[] = [];
    const parts: Float32Array[] = [];
    for (const s of this.specs) {
      const w = new Float32Array(9 * s.cin * s.cout);
      this.weights(s, w, false, a);
      parts.push(w, a.subarray(s.b, s.b + 3 * s.cout));
    }
    parts.push(a.subarray(this.linW, this.linW + this.features * this.cfg.classes + this.cfg.classes));
    const r = new Float32Array(parts.reduce((t, p) => t + p.length, out.length));
    let o = 0;
    for (const p of parts) r.set(p, o), o += p.length;
    return r;
  }

  /** Sets the parameters from vgg.ts's layout (e.g. a Vgg's params). */
  setVggLayout(p: Float32Array): void {
    let o = 0;
    for (const s of this.specs) {
      const n = 9 * s.cin * s.cout;
      this.weights(s, p.slice(o, o + n), true);
      this.params.set(p.subarray(o + n, o + n + 3 * s.cout), s.b);
      o += n + 3 * s.cout;
    }
    this.params.set(p.subarray(o, o + this.features * this.cfg.classes + this.cfg.classes), this.linW);
  }

  /**
   * Runs batch norm on one thread (it is also created on one, which fixes its count): its
   * sums over a channel's pixels depend on the thread count (measured). Pooling runs on the
   * model's threads: a max is exact and its backward adds into each input pixel in the same
   * order whatever the thread count (split over images and channel blocks), and a second
   * core halves it on a quiet machine (AMD EPYC, 7 Dec 2026: 25 → 13 ms of a 268 ms step).
   */
  serial(kind: string, f: () => void): void {
    this.dnnl.setThreads(1);
    try {
      this.time(kind, f);
    } finally {
      this.useThreads();
    }
  }

  time(kind: string, f: () => void): void {
    if (!this.profile) return f();
    const t = performance.now();
    f();
    this.profile[kind] = (this.profile[kind] ?? 0) + performance.now() - t;
  }

  private net(n: number, train: boolean): Net {
    this.useThreads(); // before creating or running any of its primitives
    const key = `${n}/${train}`;
    let net = this.nets.get(key);
    if (!net) this.nets.set(key, net = new Net(this, this.dnnl, n, train, this.wMd));
    return net;
  }

  /** Training-mode forward and backward: fills grads, updates the running statistics. */
  lossAndGrads(x: Float32Array, labels: Uint8Array, n: number): { loss: number; correct: number } {
    const net = this.net(n, true);
    const logits = net.forward(x);
    const k = this.cfg.classes;
    const res = softmaxCrossEntropy(logits, labels, n, k, net.dlogits);
    this.runningStats(net, n);
    net.backward();
    return res;
  }

  /** vgg.ts's update: running mean of (batch mean + conv bias), unbiased variance, momentum 0.1. */
  private runningStats(net: Net, n: number): void {
    net.blocks.forEach((b, i) => {
      const s = this.specs[i], rows = n * s.h * s.h, st = this.stats, p = this.params;
      for (let c = 0; c < s.cout; c++) {
        const mu = b.mean!.data[c], variance = b.variance!.data[c];
        st[s.stat + c] = (1 - BN_MOMENTUM) * st[s.stat + c] + BN_MOMENTUM * (mu + p[s.b + c]);
        const unbiased = rows > 1 ? variance * rows / (rows - 1) : variance;
        st[s.stat + s.cout + c] = (1 - BN_MOMENTUM) * st[s.stat + s.cout + c] + BN_MOMENTUM * unbiased;
      }
    });
  }

  trainStep(x: Float32Array, labels: Uint8Array, n: number, lr: number): { loss: number; acc: number } {
    const { loss, correct } = this.lossAndGrads(x, labels, n);
    this.step++;
    // The native Adam (both cores) where it builds, else the wasm one: the same bits.
    const adam = loadNativeAdam().step ?? this.adam.step;
    this.time("adam", () => adam(this.params, this.grads, this.m, this.v, this.step, lr));
    return { loss, acc: correct / n };
  }

  predict(x: Float32Array, n: number, chunk = 100): Float32Array {
    const k = this.cfg.classes, px = this.cfg.size * this.cfg.size * 3, out = new Float32Array(n * k);
    for (let s = 0; s < n; s += chunk) {
      const c = Math.min(chunk, n - s);
      out.set(this.net(c, false).forward(x.subarray(s * px, (s + c) * px)), s * k);
    }
    return out;
  }

  evaluate(x: Float32Array, labels: Uint8Array, n: number, chunk = 100): { loss: number; acc: number } {
    const { loss, correct } = softmaxCrossEntropy(this.predict(x, n, chunk), labels, n, this.cfg.classes);
    return { loss, acc: correct / n };
  }

  /** Views used by Net. */
  view(a: "params" | "grads", off: number, len: number): Float32Array {
    return this[a].subarray(off, off + len);
  }
  get linOffset(): number {
    return this.linW;
  }
}

/** The primitives and tensors of the whole network for one batch size and mode. */
class Net {
  readonly blocks: Block[] = [];
  private readonly x: Mem;
  private readonly toBlocked: Pd;
  private readonly xArgs: [Arg, Mem][];
  private readonly feat: Mem; // the last block's output, NHWC
  private readonly toFeat: Pd;
  private readonly featArgs: [Arg, Mem][];
  readonly logits: Float32Array;
  readonly dlogits: Float32Array;
  private readonly bwd: (() => void)[] = [];
  /** Inference: the batch norm as y = max(0, scale·z + shift), per block. */
  private readonly evalAffine: { scale: Float32Array; shift: Float32Array }[] = [];

  constructor(readonly model: OnednnVgg, d: Dnnl, readonly n: number, readonly train: boolean, wMd: Md[]) {
    const prop = train ? Prop.training : Prop.inference, cfg = model.cfg;
    // Batch norm fixes its thread count when created (see OnednnVgg.serial).
    const serial = <T>(f: () => T): T => {
      d.setThreads(1);
      try {
        return f();
      } finally {
        d.setThreads(model.threads);
      }
    };
    this.x = d.mem(d.md([n, 3, cfg.size, cfg.size], Tag.nhwc)); // rebound to each batch
    let src: Mem | null = null;
    let toBlocked: Pd | null = null, xb: Mem | null = null;
    model.specs.forEach((s, i) => {
      const srcMd = src ? src.md : d.md([n, s.cin, s.h, s.h], Tag.any), dstMd = d.md([n, s.cout, s.h, s.h], Tag.any);
      // Inference: the batch norm (running statistics) and ReLU fused into the convolution as
      // per-channel multiply, add and ReLU post-ops; training: a batch norm with the ReLU fused.
      const ch = d.md([1, s.cout, 1, 1], Tag.abcd);
      const convF = train
        ? d.convFwd(prop, srcMd, wMd[i], null, dstMd, 1, 1)
        : d.convFwd(prop, srcMd, wMd[i], null, dstMd, 1, 1, [{ mul: ch }, { add: ch }, "relu"]);
      if (!src) {
        xb = d.mem(convF.query(Query.src));
        toBlocked = d.reorder(this.x.md, xb.md);
        src = xb;
      }
      const z = d.mem(convF.query(Query.dst));
      const w = d.mem(wMd[i], model.view("params", s.w, s.wn));
      const block: Block = {
        src: src!,
        convF,
        z,
        y: z,
        out: z,
        fwd: [[[Arg.src, src!], [Arg.weights, w], [Arg.dst, z]]],
      };
      if (!train) {
        const scale = d.mem(ch), shift = d.mem(ch);
        this.evalAffine.push({ scale: scale.data, shift: shift.data });
        block.fwd[0].push([postOpArg(0), scale], [postOpArg(1), shift]);
      }
      const pv = (off: number) => d.mem(d.md([s.cout], Tag.a), model.view("params", off, s.cout));
      const gamma = pv(s.b + s.cout), beta = pv(s.b + 2 * s.cout);
      const mean = d.mem(d.md([s.cout], Tag.a)), variance = d.mem(d.md([s.cout], Tag.a));
      let bnF: Pd | null = null, y = z;
      if (train) {
        bnF = serial(() => d.bnFwd(prop, z.md, BN_EPS, BN_SCALE | BN_SHIFT | BN_FUSE_RELU));
        y = block.y = block.out = d.mem(bnF.query(Query.dst));
        Object.assign(block, { bnF, mean, variance, wsBn: d.mem(bnF.query(Query.workspace)) });
        block.fwd.push([[Arg.src, z], [Arg.dst, y], [Arg.mean, mean], [Arg.variance, variance], [Arg.scale, gamma], [
          Arg.shift,
          beta,
        ], [Arg.workspace, block.wsBn!]]);
      }
      const padR = (s.ho - 1) * 2 + 3 - s.h - 1;
      if (s.pool) {
        block.poolF = d.poolFwd(prop, y.md, d.md([n, s.cout, s.ho, s.ho], Tag.any), 3, 2, [1, 1], [padR, padR]);
        block.out = d.mem(block.poolF.query(Query.dst));
        const pArgs: [Arg, Mem][] = [[Arg.src, y], [Arg.dst, block.out]];
        if (train) {
          block.wsPool = d.mem(block.poolF.query(Query.workspace));
          pArgs.push([Arg.workspace, block.wsPool]);
        }
        block.fwd.push(pArgs);
      }
      this.blocks.push(block);
      src = block.out;
      if (train) {
        // Backward, in forward order here; run reversed. Gradients go straight into grads.
        const dOut = d.mem(block.out.md), dy = block.poolF ? d.mem(y.md) : dOut, dz = d.mem(z.md);
        (block as Block & { dOut: Mem }).dOut = dOut;
        const steps: (() => void)[] = [];
        if (block.poolF) {
          const poolB = d.poolBwd(y.md, block.out.md, 3, 2, [1, 1], [padR, padR], block.poolF!);
          const a: [Arg, Mem][] = [[Arg.diffDst, dOut], [Arg.diffSrc, dy], [Arg.workspace, block.wsPool!]];
          steps.push(() => model.time("pool", () => poolB.run(a)));
        }
        const bnB = serial(() => d.bnBwd(z.md, z.md, BN_EPS, BN_SCALE | BN_SHIFT | BN_FUSE_RELU, bnF!));
        const gv = (off: number) => d.mem(d.md([s.cout], Tag.a), model.view("grads", off, s.cout));
        const bA: [Arg, Mem][] = [
          [Arg.src, z],
          [Arg.mean, mean],
          [Arg.variance, variance],
          [Arg.diffDst, dy],
          [
            Arg.scale,
            gamma,
          ],
          [Arg.shift, beta],
          [Arg.workspace, block.wsBn!],
          [Arg.diffSrc, dz],
          [
            Arg.diffScale,
            gv(s.b + s.cout),
          ],
          [Arg.diffShift, gv(s.b + 2 * s.cout)],
        ];
        steps.push(() => model.serial("bn+relu", () => bnB.run(bA)));
        // Backward weights, with the conv bias's gradient Σ dz (zero up to rounding, as in vgg.ts).
        const dW = d.mem(wMd[i], model.view("grads", s.w, s.wn)), db = gv(s.b);
        const bwW = nativeBwdWeights(d, block.src, dz, dW, db, s, n) ??
          onednnBwdWeights(d, prop, convF, block.src, dz, dW, db, s, n);
        model.impls.add(`conv bwd weights ${bwW.impl}`);
        steps.push(() => model.time("conv bwd weights", bwW.run));
        // The backward convolutions choose their own formats (explicit forward ones would
        // send them to oneDNN's slow reference code); tensors are reordered in and out.
        const anyW = d.md([s.cout, s.cin, 3, 3], Tag.any), anyX = d.md([n, s.cin, s.h, s.h], Tag.any);
        const anyZ = d.md([n, s.cout, s.h, s.h], Tag.any);
        if (i > 0) {
          const prevDOut = (this.blocks[i - 1] as Block & { dOut: Mem }).dOut;
          const bd = d.convBwdData(anyX, anyW, anyZ, 1, 1, convF);
          const [bdZ, bdW, bdX] = [
            adapt(d, bd, Query.diffDst, dz),
            adapt(d, bd, Query.weights, w),
            adapt(d, bd, Query.diffSrc, prevDOut, true),
          ];
          const dA: [Arg, Mem][] = [[Arg.diffDst, bdZ.mem], [Arg.weights, bdW.mem], [Arg.diffSrc, bdX.mem]];
          steps.push(() =>
            model.time("conv bwd data", () => {
              bdZ.run(), bdW.run(), bd.run(dA), bdX.run();
            })
          );
        }
        this.bwd.push(() => steps.forEach((f) => f()));
      }
    });
    this.toBlocked = toBlocked!;
    this.xArgs = [[Arg.src, this.x], [Arg.dst, xb!]];
    const last = this.blocks[this.blocks.length - 1], ls = model.specs[model.specs.length - 1];
    this.feat = d.mem(d.md([n, ls.cout, ls.ho, ls.ho], Tag.nhwc));
    this.toFeat = d.reorder(last.out.md, this.feat.md);
    this.featArgs = [[Arg.src, last.out], [Arg.dst, this.feat]];
    this.logits = new Float32Array(n * cfg.classes);
    this.dlogits = new Float32Array(n * cfg.classes);
    if (train) {
      const dFeat = d.mem(this.feat.md), lastDOut = (last as Block & { dOut: Mem }).dOut;
      const back = d.reorder(dFeat.md, lastDOut.md), bArgs: [Arg, Mem][] = [[Arg.src, dFeat], [Arg.dst, lastDOut]];
      this.linearBackward = () => {
        linearBackward(model, n, this.feat.data, this.dlogits, dFeat.data);
        back.run(bArgs);
      };
    }
  }

  private linearBackward: () => void = () => {};

  forward(x: Float32Array): Float32Array {
    const m = this.model, d = m.dnnl;
    d.rebind(this.x, x);
    this.toBlocked.run(this.xArgs);
    if (!this.train) {
      // vgg.ts's bnReluEval: scale = γ/√(σ²+ε), shift = β + (b − μ)·scale (z lacks the conv bias).
      m.specs.forEach((s, i) => {
        const { scale, shift } = this.evalAffine[i], p = m.params, st = m.stats;
        for (let c = 0; c < s.cout; c++) {
          const k = p[s.b + s.cout + c] / Math.sqrt(st[s.stat + s.cout + c] + BN_EPS);
          scale[c] = k;
          shift[c] = p[s.b + 2 * s.cout + c] + (p[s.b + c] - st[s.stat + c]) * k;
        }
      });
    }
    this.blocks.forEach((b) => {
      m.time("conv", () => b.convF.run(b.fwd[0]));
      if (b.bnF) m.serial("bn+relu", () => b.bnF!.run(b.fwd[1]));
      if (b.poolF) m.time("pool", () => b.poolF!.run(b.fwd[b.fwd.length - 1]));
    });
    this.toFeat.run(this.featArgs);
    const k = m.cfg.classes, f = m.features, p = m.params, o = m.linOffset, feat = this.feat.data;
    for (let r = 0; r < this.n; r++) {
      for (let j = 0; j < k; j++) {
        let acc = p[o + f * k + j];
        for (let i = 0; i < f; i++) acc += feat[r * f + i] * p[o + i * k + j];
        this.logits[r * k + j] = acc;
      }
    }
    return this.logits;
  }

  backward(): void {
    this.linearBackward();
    for (let i = this.bwd.length - 1; i >= 0; i--) this.bwd[i]();
  }
}

export type BwdWeights = { impl: string; run: () => void };

/**
 * The backward-weights of conv s by the native kernel (conv_bwd_weights.ts: the same bits as
 * oneDNN's jit:avx2 one) where it is faster, on images of 8×8 and less (measured on a 2-core
 * AMD EPYC, 7 Dec 2026, batch 32: 8×8 128→256 channels 16.3 → 13.6 ms, 4×4 512→512 21.0 → 17.9,
 * 2×2 512→512 15.0 → 5.7; 16×16 64→128 16.1 → 16.2), and the tensors are in its layouts; else null.
 */
function nativeBwdWeights(d: Dnnl, x: Mem, dz: Mem, dW: Mem, db: Mem, s: ConvSpec, n: number): BwdWeights | null {
  const k = loadConvBwdWeights().kernel;
  if (!k || s.h > 8 || !k.fits(s.cin, s.cout)) return null;
  const blocked = (c: number) => d.md([n, c, s.h, s.h], Tag.nChw8c);
  if (
    !d.equal(x.md, blocked(s.cin)) || !d.equal(dz.md, blocked(s.cout)) ||
    !d.equal(dW.md, d.md([s.cout, s.cin, 3, 3], Tag.OIhw8i8o))
  ) return null;
  const scratch = new Float32Array(k.scratchFloats(n, s.cin, s.cout, s.h));
  return { impl: "native", run: () => k.run(n, s.cin, s.cout, s.h, x.data, dz.data, dW.data, db.data, scratch) };
}

/** oneDNN's backward-weights of conv s, its own formats chosen (tensors reordered in and out). */
export function onednnBwdWeights(
  d: Dnnl,
  prop: Prop,
  convF: Pd,
  x: Mem,
  dz: Mem,
  dW: Mem,
  db: Mem,
  s: ConvSpec,
  n: number,
): BwdWeights {
  const anyW = d.md([s.cout, s.cin, 3, 3], Tag.any), anyZ = d.md([n, s.cout, s.h, s.h], Tag.any);
  let bw = d.convBwdWeights(d.md([n, s.cin, s.h, s.h], Tag.any), anyW, d.md([s.cout], Tag.a), anyZ, 1, 1, convF);
  let bwX = adapt(d, bw, Query.src, x);
  if (!bw.impl.startsWith("jit")) {
    // On tiny images (2×2, 1×1) oneDNN picks a GEMM-based backward-weights whose sums
    // depend on the thread count; on an explicitly zero-padded input (padding 0) its
    // direct jit kernel applies. The border of `padded` stays zero.
    const h2 = s.h + 2, hint = d.convFwd(prop, d.md([n, s.cin, h2, h2], Tag.any), anyW, null, anyZ, 1, 0);
    bw = d.convBwdWeights(d.md([n, s.cin, h2, h2], Tag.any), anyW, d.md([s.cout], Tag.a), anyZ, 1, 0, hint);
    const padded = d.mem(bw.query(Query.src));
    const inner = d.mem(d.sub(padded.md, [n, s.cin, s.h, s.h], [0, 0, 1, 1]), padded.data);
    const r = d.reorder(x.md, inner.md), rA: [Arg, Mem][] = [[Arg.src, x], [Arg.dst, inner]];
    bwX = { mem: padded, run: () => r.run(rA) };
  }
  const [bwZ, bwDW] = [adapt(d, bw, Query.diffDst, dz), adapt(d, bw, Query.diffWeights, dW, true)];
  const wA: [Arg, Mem][] = [[Arg.src, bwX.mem], [Arg.diffDst, bwZ.mem], [Arg.diffWeights, bwDW.mem], [
    Arg.diffBias,
    db,
  ]];
  return { impl: bw.impl, run: () => (bwX.run(), bwZ.run(), bw.run(wA), bwDW.run()) };
}

/**
 * Tensor m in the format primitive pd wants for query q: m itself, or a copy with the
 * reorder that fills it (or, for an output, that copies it back into m).
 */
function adapt(d: Dnnl, pd: Pd, q: Query, m: Mem, output = false): { mem: Mem; run: () => void } {
  const md = pd.query(q);
  if (d.equal(md, m.md)) return { mem: m, run: () => {} };
  const t = d.mem(md), r = output ? d.reorder(md, m.md) : d.reorder(m.md, md);
  const args: [Arg, Mem][] = output ? [[Arg.src, t], [Arg.dst, m]] : [[Arg.src, m], [Arg.dst, t]];
  return { mem: t, run: () => r.run(args) };
}

/** The classifier's gradients: dW = featᵀ·dlogits, db = Σ dlogits, dfeat = dlogits·Wᵀ. */
function linearBackward(m: OnednnVgg, n: number, feat: Float32Array, dl: Float32Array, dFeat: Float32Array): void {
  const k = m.cfg.classes, f = m.features, p = m.params, g = m.grads, o = m.linOffset;
  for (let i = 0; i < f; i++) {
    for (let j = 0; j < k; j++) {
      let acc = 0;
      for (let r = 0; r < n; r++) acc += feat[r * f + i] * dl[r * k + j];
      g[o + i * k + j] = acc;
    }
  }
  for (let j = 0; j < k; j++) {
    let acc = 0;
    for (let r = 0; r < n; r++) acc += dl[r * k + j];
    g[o + f * k + j] = acc;
  }
  for (let r = 0; r < n; r++) {
    for (let i = 0; i < f; i++) {
      let acc = 0;
      for (let j = 0; j < k; j++) acc += dl[r * k + j] * p[o + i * k + j];
      dFeat[r * f + i] = acc;
    }
  }
}
