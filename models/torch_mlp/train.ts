// The study's train_mlp_pytorch loop in tfjs: automatic differentiation
// (tf.variableGrads), softmax cross-entropy on logits, Adam, the study's
// mini-batch order; evaluation on the whole test set in inference mode.
// Checkpoints at every evaluation; a run finds its checkpoint and continues.
import { BatchBuffer } from "../../data/batches.ts";
import { BatchSampler, chunks, type Split } from "../../data/dataset.ts";
import { Rng } from "../../data/rng.ts";
import type { EvalPoint, Progress } from "../../pipeline/types.ts";
import type { BnImpl } from "../batchnorm/bn.ts";
import { filledTensor, initCompute, tf } from "../compute/backend.ts";
import { Adam } from "./adam.ts";
import { argmaxRows, load, type NamedTensor } from "../artifacts.ts";
import { weightsDigest } from "../weights_digest.ts";
import { loadCheckpoint, saveCheckpoint } from "./checkpoint.ts";
import { dropoutMasks, TorchMlp } from "./model.ts";
import { checkLoss } from "../diverged.ts";
import { softmaxCrossEntropyMean } from "../compute/mlp_kernels.ts";

export interface TorchMlpConfig {
  hidden: number[];
  lr: number;
  batch: number;
  steps: number;
  evalEvery: number;
  seed: number;
  dropout: boolean;
  batchnorm: "none" | BnImpl;
}

export interface TorchMlpHooks {
  progress?: (p: Progress) => void;
  log?: (m: string) => void;
  /** Save a checkpoint here at every evaluation and resume from it when present. */
  checkpointDir?: string;
  /** Tests: stop (as if killed) right after the checkpoint at this step. */
  stopAfter?: number;
  /** `--verify-steps`: end the run after this many updates (with the curve so far). */
  stopAfterSteps?: number;
}

export interface TorchMlpResult {
  evals: EvalPoint[];
  final: EvalPoint;
  /** Training steps per second (evaluation and checkpoints excluded). */
  stepsPerSecond: number;
  /** Test images per second during evaluation. */
  evalImagesPerSecond: number;
  /** Seconds of work over all sessions of the run (a resumed run adds up its parts). */
  wallSeconds: number;
  /** The step a checkpoint resumed from (0: a fresh run). */
  resumedFrom: number;
  /** Processes that trained this run (1 + resumptions). */
  processes: number;
  backend: string;
  /** Set when stopAfter ended the run early. */
  stopped?: boolean;
  /** The final state, named (see torchMlpWeights), and the predicted class of every test image. */
  weights: Record<string, NamedTensor>;
  predictions: Uint8Array;
}

interface RunState {
  adamT: number;
  evals: EvalPoint[];
  trainMs: number;
  evalMs: number;
  evalImages: number;
  wallMs: number;
  /** Processes so far (a checkpoint from before this field counts as 1). */
  processes?: number;
}

const FEATURES = 3072, CLASSES = 10, EVAL_CHUNK = 1000;

/** The study's schedule: evaluate after update i (0-based) when i % evalEvery == 0 or at the last. */
export function isEvalStep(i: number, steps: number, evalEvery: number): boolean {
  return i % evalEvery === 0 || i === steps - 1;
}

/** Summed loss and correct count of a whole split in inference mode. */
export function evaluate(model: TorchMlp, split: Split): { loss: number; acc: number } {
  let loss = 0, correct = 0;
  for (const c of chunks(split, EVAL_CHUNK)) {
    const [l, k] = tf.tidy(() => {
      const n = c.y.length;
      const logits = model.forward(tf.tensor2d(c.x, [n, FEATURES]), false);
      const labels = tf.tensor1d(c.y, "int32");
      const sum = tf.losses.softmaxCrossEntropy(tf.oneHot(labels, CLASSES), logits, undefined, 0, tf.Reduction.SUM);
      const hits = tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), labels), "int32"));
      return [sum.dataSync()[0], hits.dataSync()[0]];
    });
    loss += l;
    correct += k;
  }
  return { loss: loss / split.n, acc: correct / split.n };
}

/** The predicted class of every image of a split (inference mode). */
export function predictClasses(model: TorchMlp, split: Split): Uint8Array {
  const out = new Uint8Array(split.n);
  let at = 0;
  for (const c of chunks(split, EVAL_CHUNK)) {
    const n = c.y.length;
    const logits = tf.tidy(() => model.forward(tf.tensor2d(c.x, [n, FEATURES]), false));
    out.set(argmaxRows(logits.dataSync() as Float32Array, n, CLASSES), at);
    logits.dispose();
    at += n;
  }
  return out;
}

/**
 * The state as PyTorch would name it: layers.<l>.weight (in × out: y = x·W + b), layers.<l>.bias, and
 * with batch norm layers.<l>.norm.{weight,bias,running_mean,running_var} (applied before Linear l).
 */
export function torchMlpWeights(model: TorchMlp): Record<string, NamedTensor> {
  const named = (v: tf.Variable) => ({ shape: v.shape, data: v.dataSync() as Float32Array });
  const out: Record<string, NamedTensor> = {};
  model.weights.forEach((w, l) => {
    out[`layers.${l}.weight`] = named(w);
    out[`layers.${l}.bias`] = named(model.biases[l]);
    const norm = model.norms[l];
    if (norm) {
      out[`layers.${l}.norm.weight`] = named(norm.gamma);
      out[`layers.${l}.norm.bias`] = named(norm.beta);
      out[`layers.${l}.norm.running_mean`] = named(norm.runningMean);
      out[`layers.${l}.norm.running_var`] = named(norm.runningVar);
    }
  });
  return out;
}

/** Put saved weights (torchMlpWeights' names) into a model of the same shape. */
export function loadTorchMlp(model: TorchMlp, weights: Record<string, NamedTensor>): void {
  const names = Object.keys(torchMlpWeights(model));
  const vars = model.weights.flatMap((w, l) => {
    const norm = model.norms[l];
    return [w, model.biases[l], ...(norm ? [norm.gamma, norm.beta, norm.runningMean, norm.runningVar] : [])];
  });
  vars.forEach((v, i) => {
    const buf = new Float32Array(v.size);
    load(buf, weights[names[i]], names[i]);
    tf.tidy(() => v.assign(tf.tensor(buf, v.shape)));
  });
}

/** A batch's images (batch × 3072), or a function that writes them into the array it is given. */
export type BatchImages = Float32Array | ((x: Float32Array) => void);

/**
 * One training step: forward in training mode, softmax cross-entropy on the
 * logits, gradients by tf.variableGrads, an Adam update. Returns the batch's
 * loss and number of correct predictions (before the update). Images given as
 * a function are written straight into the input tensor (no copy). The loss and
 * the layers are fused kernels (compute/mlp_kernels.ts: tfjs's bits, fewer tape nodes).
 */
export function makeTrainStep(
  model: TorchMlp,
  adam: Adam,
): (x: BatchImages, y: Uint8Array, masks: Float32Array[]) => [number, number] {
  const trainable = model.trainable();
  return (xs, ys, masks) =>
    tf.tidy(() => {
      const batch = ys.length;
      const x = typeof xs === "function"
        ? filledTensor([batch, FEATURES], xs) as tf.Tensor2D
        : tf.tensor2d(xs, [batch, FEATURES]);
      const onehot = filledTensor([batch, CLASSES], (v) => {
        v.fill(0); // fresh wasm memory is not zeroed
        ys.forEach((c, i) => {
          if (c >= CLASSES) throw new RangeError(`label ${c} of batch row ${i} is not a class (0–${CLASSES - 1})`);
          v[i * CLASSES + c] = 1;
        });
      });
      const m = masks.map((a, l) => tf.tensor2d(a, [batch, model.hiddenSizes[l]]));
      let logits: tf.Tensor | undefined;
      const { value, grads } = tf.variableGrads(() => {
        logits = tf.keep(model.forward(x, true, m));
        return softmaxCrossEntropyMean(logits as tf.Tensor2D, onehot as tf.Tensor2D);
      }, trainable);
      // Off the tape: the count reads the logits (first maximum wins, as tf.argMax).
      const predicted = argmaxRows(logits!.dataSync() as Float32Array, batch, CLASSES);
      logits!.dispose(); // kept: no tidy disposes it
      adam.step(trainable.map((v) => grads[v.name]));
      return [value.dataSync()[0], predicted.reduce((k, p, i) => k + (p === ys[i] ? 1 : 0), 0)];
    });
}

export async function trainTorchMlp(
  data: { train: Split; test: Split },
  cfg: TorchMlpConfig,
  hooks: TorchMlpHooks = {},
): Promise<TorchMlpResult> {
  const backend = await initCompute();
  // Separate streams: data order = seed (the study's 42), weights = seed+1, dropout = hash(seed+2, step).
  const model = new TorchMlp(
    { inputs: FEATURES, hidden: cfg.hidden, classes: CLASSES, dropout: cfg.dropout, batchnorm: cfg.batchnorm },
    new Rng(cfg.seed + 1),
  );
  const adam = new Adam(model.trainable(), cfg.lr);
  const saved = [...model.variables(), ...adam.variables()];
  const sampler = new BatchSampler(data.train.n, cfg.batch, cfg.seed);
  const key = JSON.stringify(cfg);
  let st: RunState = { adamT: 0, evals: [], trainMs: 0, evalMs: 0, evalImages: 0, wallMs: 0 };
  let start = 0;
  try {
    if (hooks.checkpointDir) {
      const ck = await loadCheckpoint<RunState>(hooks.checkpointDir, key, saved, hooks.log);
      if (ck) {
        start = ck.step;
        st = ck.state;
        st.processes = (st.processes ?? 1) + 1;
        adam.t = st.adamT;
        for (let i = 0; i < start; i++) sampler.next(); // the sampler's state is a function of the step
        hooks.log?.(`resuming from the checkpoint at step ${start}`);
      }
    }
    const step = makeTrainStep(model, adam);
    const batches = new BatchBuffer(data.train, cfg.batch);
    const maskBuffers = model.hiddenSizes.map((f) => new Float32Array(cfg.batch * f)); // reused: see BatchBuffer
    let wallFrom = performance.now();
    for (let i = start; i < cfg.steps; i++) {
      const ts = performance.now();
      const idx = sampler.next();
      const masks = cfg.dropout ? dropoutMasks(cfg.seed + 2, i, cfg.batch, model.hiddenSizes, maskBuffers) : [];
      const [loss, correct] = step((x) => batches.images(idx, x), batches.labels(idx), masks);
      st.trainMs += performance.now() - ts;
      checkLoss(loss, i + 1, cfg.lr); // a diverging run is a user input (the lr): one line, nothing cached
      if (isEvalStep(i, cfg.steps, cfg.evalEvery)) {
        const te = performance.now();
        const test = evaluate(model, data.test);
        st.evalMs += performance.now() - te;
        st.evalImages += data.test.n;
        st.evals.push({
          step: i + 1,
          trainLoss: loss,
          trainAcc: correct / cfg.batch,
          testLoss: test.loss,
          testAcc: test.acc,
          weights: weightsDigest(model.variables().map((v) => v.dataSync() as Float32Array)),
        });
        const now = performance.now();
        st.wallMs += now - wallFrom;
        wallFrom = now;
        st.adamT = adam.t;
        if (hooks.checkpointDir) await saveCheckpoint(hooks.checkpointDir, key, i + 1, st, saved);
        if (hooks.stopAfter === i + 1) return result(true);
      }
      hooks.progress?.({ step: i + 1, total: cfg.steps, itemsPerStep: cfg.batch, loss });
      if (hooks.stopAfterSteps === i + 1) return result(true);
    }
    return result(false);
  } finally {
    model.dispose();
    adam.dispose();
  }

  function result(stopped: boolean): TorchMlpResult {
    return {
      weights: torchMlpWeights(model),
      predictions: predictClasses(model, data.test),
      evals: st.evals,
      final: st.evals[st.evals.length - 1],
      stepsPerSecond: st.evals[st.evals.length - 1].step / (st.trainMs / 1000),
      evalImagesPerSecond: st.evalImages / (st.evalMs / 1000),
      wallSeconds: st.wallMs / 1000,
      resumedFrom: start,
      processes: st.processes ?? 1,
      backend,
      ...(stopped ? { stopped } : {}),
    };
  }
}
