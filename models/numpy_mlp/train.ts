// The study's train_mlp_numpy loop: plain SGD on the hand-written MLP, the
// study's mini-batch order, evaluation on the whole test set.
import { BatchSampler, chunks, type Split } from "../../data/dataset.ts";
import { Rng } from "../../data/rng.ts";
import { checkLoss } from "../../pipeline/faults.ts";
import type { EvalPoint, Progress } from "../../pipeline/types.ts";
import { argmaxRows, load, type NamedTensor } from "../artifacts.ts";
import { weightsDigest } from "../weights_digest.ts";
import { CrossEntropy, MLP } from "./modules.ts";
import { asMat, type Mat, sgd } from "./tensor.ts";

export interface NumpyMlpConfig {
  hidden: number[];
  lr: number;
  batch: number;
  steps: number;
  evalEvery: number;
  seed: number;
  /** `--verify-steps`: end the run after this many updates (with the curve so far). */
  stopAfterSteps?: number;
}

export interface NumpyMlpResult {
  evals: EvalPoint[];
  final: EvalPoint;
  /** Training steps per second (evaluation time excluded). */
  stepsPerSecond: number;
  /** Test images per second during evaluation. */
  evalImagesPerSecond: number;
  wallSeconds: number;
  /** The trained network (for its weights and predictions). */
  mlp: MLP<Float32Array>;
}

export const FEATURES = 3072, CLASSES = 10, EVAL_CHUNK = 1000;

/**
 * The evaluation schedule of the study's code: after update i (0-based) when
 * i % evalEvery == 0 or i is the last; `step` in the curves counts the
 * updates done (1, 1+evalEvery, …, steps).
 */
export function isEvalStep(i: number, steps: number, evalEvery: number): boolean {
  return i % evalEvery === 0 || i === steps - 1;
}

/**
 * gather() into reused buffers: a fresh 20 MB array per GA1-size batch costs
 * 75–130 ms of page faults here (2–3 ms when the buffer is reused).
 */
export class BatchBuffer {
  readonly x: Float32Array;
  readonly y: Uint8Array;

  constructor(readonly split: Split, batch: number) {
    this.x = new Float32Array(batch * FEATURES);
    this.y = new Uint8Array(batch);
  }

  /** The images and labels at idx (idx.length = the batch size), in this buffer. */
  read(idx: Int32Array): { x: Float32Array; y: Uint8Array } {
    this.images(idx, this.x);
    return { x: this.x, y: this.labels(idx) };
  }

  /** The images at idx, row after row, into x (at least idx.length × 3072 values). */
  images(idx: Int32Array, x: Float32Array): void {
    const { x: all, n } = this.split;
    for (let k = 0; k < idx.length; k++) {
      const i = idx[k];
      if (!(i >= 0 && i < n)) throw new RangeError(`batch index ${i} outside 0..${n - 1}`);
      x.set(all.subarray(i * FEATURES, (i + 1) * FEATURES), k * FEATURES);
    }
  }

  /** The labels at idx, in this buffer. */
  labels(idx: Int32Array): Uint8Array {
    const { y, n } = this.split;
    for (let k = 0; k < idx.length; k++) {
      const i = idx[k];
      if (!(i >= 0 && i < n)) throw new RangeError(`batch index ${i} outside 0..${n - 1}`);
      this.y[k] = y[i];
    }
    return this.y;
  }
}

/** Fraction of rows whose largest entry is at the label. */
export function accuracy(p: Mat, y: Uint8Array): number {
  let correct = 0;
  for (let i = 0; i < p.rows; i++) {
    let best = 0;
    for (let j = 1; j < p.cols; j++) if (p.data[i * p.cols + j] > p.data[i * p.cols + best]) best = j;
    if (best === y[i]) correct++;
  }
  return correct / p.rows;
}

/** Mean loss and accuracy over a whole split, in chunks. */
export function evaluate(mlp: MLP<Float32Array>, split: Split): { loss: number; acc: number } {
  const ce = new CrossEntropy();
  let loss = 0, acc = 0;
  for (const c of chunks(split, EVAL_CHUNK)) {
    const p = mlp.forward(asMat(c.x, c.y.length, FEATURES));
    loss += ce.forward(p, c.y) * c.y.length;
    acc += accuracy(p, c.y) * c.y.length;
  }
  return { loss: loss / split.n, acc: acc / split.n };
}

/** One step: forward, loss, hand-written backward, SGD. Returns the batch's probabilities and loss (before the update). */
export function sgdStep(
  mlp: MLP<Float32Array>,
  x: Float32Array,
  y: Uint8Array,
  lr: number,
): { p: Mat<Float32Array>; loss: number } {
  const ce = new CrossEntropy();
  const p = mlp.forward(asMat(x, y.length, FEATURES));
  const loss = ce.forward(p, y);
  mlp.backward(ce.backward(p, y));
  for (const lin of mlp.linears) {
    sgd(lin.weight.data, lin.gradWeight.data, lr);
    sgd(lin.bias, lin.gradBias, lr);
  }
  return { p, loss };
}

export function trainNumpyMlp(
  data: { train: Split; test: Split },
  cfg: NumpyMlpConfig,
  progress: (p: Progress) => void = () => {},
): NumpyMlpResult {
  const t0 = performance.now();
  // Separate streams: the data order uses the seed itself (the study's seed 42), the weights seed+1.
  const sampler = new BatchSampler(data.train.n, cfg.batch, cfg.seed);
  const mlp = new MLP<Float32Array>(FEATURES, cfg.hidden, CLASSES, new Rng(cfg.seed + 1), new Float32Array(0));
  const batches = new BatchBuffer(data.train, cfg.batch);
  const evals: EvalPoint[] = [];
  let trainMs = 0, evalMs = 0, evalImages = 0;
  for (let i = 0; i < cfg.steps; i++) {
    const ts = performance.now();
    const b = batches.read(sampler.next());
    const { p, loss } = sgdStep(mlp, b.x, b.y, cfg.lr);
    trainMs += performance.now() - ts;
    checkLoss(loss, i + 1, cfg.lr); // a diverging run is a user input (the lr): one line, nothing cached
    if (isEvalStep(i, cfg.steps, cfg.evalEvery)) {
      const te = performance.now();
      const test = evaluate(mlp, data.test);
      evalMs += performance.now() - te;
      evalImages += data.test.n;
      evals.push({
        step: i + 1,
        trainLoss: loss,
        trainAcc: accuracy(p, b.y),
        testLoss: test.loss,
        testAcc: test.acc,
        weights: weightsDigest(mlp.linears.flatMap((l) => [l.weight.data, l.bias])),
      });
    }
    progress({ step: i + 1, total: cfg.steps, itemsPerStep: cfg.batch, loss });
    if (cfg.stopAfterSteps === i + 1) break;
  }
  return {
    evals,
    final: evals[evals.length - 1],
    stepsPerSecond: evals[evals.length - 1].step / (trainMs / 1000),
    evalImagesPerSecond: evalImages / (evalMs / 1000),
    wallSeconds: (performance.now() - t0) / 1000,
    mlp,
  };
}

/** The trained parameters, named as layers.<l>.weight (in × out: y = x·W + b) and layers.<l>.bias. */
export function numpyMlpWeights(mlp: MLP<Float32Array>): Record<string, NamedTensor> {
  return Object.fromEntries(mlp.linears.flatMap((lin, l) => [
    [`layers.${l}.weight`, { shape: [lin.inFeatures, lin.outFeatures], data: lin.weight.data }],
    [`layers.${l}.bias`, { shape: [lin.outFeatures], data: lin.bias }],
  ]));
}

/** Put saved weights into a network of the same shape. */
export function loadNumpyMlp(mlp: MLP<Float32Array>, weights: Record<string, NamedTensor>): void {
  mlp.linears.forEach((lin, l) => {
    load(lin.weight.data, weights[`layers.${l}.weight`], `layers.${l}.weight`);
    load(lin.bias, weights[`layers.${l}.bias`], `layers.${l}.bias`);
  });
}

/** The predicted class of every image of a split. */
export function predictClasses(mlp: MLP<Float32Array>, split: Split): Uint8Array {
  const out = new Uint8Array(split.n);
  let at = 0;
  for (const c of chunks(split, EVAL_CHUNK)) {
    const p = mlp.forward(asMat(c.x, c.y.length, FEATURES));
    out.set(argmaxRows(p.data, p.rows, p.cols), at);
    at += c.y.length;
  }
  return out;
}
