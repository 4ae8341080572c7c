// Stage "train-cnn": the study's small VGG (vgg.ts), Adam, the study's mini-batch order,
// evaluation on the whole test set in inference mode (running statistics). A checkpoint
// at every evaluation (ctx.checkpointDir) lets a killed run resume where it left off and
// end exactly as an uninterrupted run would.
import { join } from "node:path";
import { BatchSampler, gather, loadSplits } from "../../data/dataset.ts";
import type { TrainCnnParams } from "../../pipeline/stages.ts";
import { type EvalPoint, PipelineError, type StageContext, type TrainingHistory } from "../../pipeline/types.ts";
import * as ckpt from "../checkpoint.ts";
import { getGemm } from "../compute/gemm.ts";
import { argmaxRows, writeArtifacts } from "../artifacts.ts";
import { loadOnednn } from "../compute/onednn.ts";
import { weightsDigest } from "../weights_digest.ts";
import { OnednnVgg } from "./onednn_vgg.ts";
import { Vgg } from "./vgg.ts";
import { checkLoss } from "../diverged.ts";

/** After update i (0-based) the study evaluated when i % evalEvery == 0, and after the last. */
export function isEvalStep(i: number, steps: number, evalEvery: number): boolean {
  return i % evalEvery === 0 || i === steps - 1;
}

const LAYOUT = "VGG on NHWC images (the pixels minus the training mean image): for each conv<i>, a 3×3 " +
  "convolution, padding 1 (HWIO weights) + bias, batch norm (eps 1e-5) and ReLU, then a 3×3 max-pool (stride 2, padding 1) where the study has one; " +
  "the flattened features (NHWC order) · classifier.weight + classifier.bias";

interface Checkpoint {
  /** Updates done. */
  step: number;
  evals: EvalPoint[];
  trainMs: number;
  evalMs: number;
  key: string;
  /** Processes that trained this run so far (1 + resumptions). */
  processes: number;
}

export async function run(ctx: StageContext<TrainCnnParams>): Promise<Record<string, number | string>> {
  const dir = ctx.inputs["preprocess"];
  if (!dir) throw new PipelineError(`${ctx.stage} needs the preprocess stage's output`, 'declare deps: ["preprocess"]');
  const p = ctx.params;
  const { lr, batch, steps, eval_every: evalEvery, width, seed } = p;
  if (!(width > 0)) throw new PipelineError(`train-cnn: width ${width} must be > 0`, "use width=1 (the study's VGG)");
  const { train, test } = await loadSplits(dir);
  const cfg = { width, size: 32, classes: 10 };
  // compute=onednn (the default): oneDNN primitives. Without libdnnl2 this is an error, not a
  // silent fall back: the own kernels sum in another order, so their run would hold other bits
  // under the same key. compute=own is that path, under a key of its own.
  const onednn = p.compute === "onednn" ? loadOnednn() : null;
  if (onednn && !onednn.dnnl) {
    throw new PipelineError(
      `${ctx.stage}: compute=onednn but ${onednn.reason}`,
      "apt-get install libdnnl2, or --set train-cnn.compute=own (own kernels + GEMM: other bits, its own cached run)",
    );
  }
  let model: Vgg | OnednnVgg, backend: string;
  if (onednn?.dnnl) {
    const m = new OnednnVgg(cfg, onednn.dnnl, seed);
    model = m, backend = m.describe(batch);
  } else {
    const gemm = await getGemm();
    model = new Vgg(cfg, gemm, seed);
    backend = `own kernels (JS, NHWC, im2col) + ${gemm.name} GEMM`;
  }
  const sampler = new BatchSampler(train.n, batch, seed);
  ctx.log(`VGG width ${width}: ${model.params.length} parameters; ${backend}`);

  // The oneDNN model's arrays have their own layout: its checkpoints are not the other's.
  const path = model instanceof OnednnVgg ? { compute: "onednn" } : {};
  const key = JSON.stringify({ lr, batch, steps, evalEvery, width, seed, n: model.params.length, ...path });
  let state: Checkpoint = { step: 0, evals: [], trainMs: 0, evalMs: 0, key, processes: 1 };
  const resumed = await loadCheckpoint(ctx.checkpointDir, model, key, (m) => ctx.log(m));
  if (resumed) {
    state = { ...resumed, processes: resumed.processes + 1 };
    for (let i = 0; i < state.step; i++) sampler.next(); // the same batches as an uninterrupted run
    ctx.log(`resumed from the checkpoint at step ${state.step}`);
  }

  for (let i = state.step; i < steps; i++) {
    const t0 = performance.now();
    const b = gather(train, sampler.next());
    const r = model.trainStep(b.x, b.y, batch, lr);
    state.trainMs += performance.now() - t0;
    checkLoss(r.loss, i + 1, lr); // a diverging run is a user input (the lr): one line, nothing cached
    state.step = i + 1;
    if (isEvalStep(i, steps, evalEvery)) {
      const t1 = performance.now();
      const e = model.evaluate(test.x, test.y, test.n);
      state.evalMs += performance.now() - t1;
      state.evals.push({
        step: i + 1,
        trainLoss: r.loss,
        trainAcc: r.acc,
        testLoss: e.loss,
        testAcc: e.acc,
        weights: weightsDigest([model.params, model.stats]),
      });
      ctx.log(`step ${i + 1}: train loss ${r.loss.toFixed(4)}, test acc ${e.acc.toFixed(4)}`);
      await saveCheckpoint(ctx.checkpointDir, model, state);
    }
    ctx.progress({ step: i + 1, total: steps, itemsPerStep: batch, loss: r.loss });
    if (ctx.stopAfterSteps === i + 1) break;
  }

  const final = state.evals[state.evals.length - 1];
  const stepsPerSecond = state.step / (state.trainMs / 1000);
  ctx.record({
    compute: backend,
    trainSeconds: (state.trainMs + state.evalMs) / 1000,
    stepsPerSecond,
    evalImagesPerSecond: (state.evals.length * test.n) / (state.evalMs / 1000),
    resumes: state.processes - 1,
  });
  const history: TrainingHistory & { parameters: number } = {
    run: ctx.stage,
    params: p,
    evals: state.evals,
    final,
    parameters: model.params.length,
    notes: [
      "Every conv has its own BatchNorm (the study's code shared one between conv3_a/b, 4_a/b, 5_a/b).",
      "The test set is evaluated in inference mode with the running statistics (momentum 0.1); the study's code " +
      "evaluated it in training mode (batch statistics).",
      "PyTorch's default initialisation (uniform ±1/√fan_in for conv and linear weights and biases), Adam " +
      "(β 0.9, 0.999, ε 1e-8); forward and backward written by hand, checked against tfjs autograd.",
      "Evaluated after update i (0-based) when i % eval_every == 0 and after the last; `step` counts the updates " +
      "done. Train loss/accuracy are those of that step's mini-batch, before its update.",
    ],
  };
  await Deno.writeTextFile(join(ctx.outDir, "history.json"), JSON.stringify(history, null, 2) + "\n");
  const predictions = argmaxRows(model.predict(test.x, test.n), test.n, 10);
  await writeArtifacts(ctx.outDir, await namedWeights(model), predictions, LAYOUT);
  ctx.log(`test accuracy ${final.testAcc.toFixed(4)} after ${state.step} steps (${stepsPerSecond.toFixed(2)} steps/s)`);
  return {
    test_acc: final.testAcc,
    test_loss: final.testLoss,
    train_acc: final.trainAcc,
    steps_per_s: stepsPerSecond,
  };
}

// The checkpoint (../checkpoint.ts: hashed, manifest written last): one file params | m | v | stats
// (float32), and the curves, timers and Adam's step in the manifest.
/** The weights by name, in vgg.ts's layout whichever model trained them (oneDNN's arrays are blocked). */
async function namedWeights(model: Vgg | OnednnVgg) {
  if (model instanceof Vgg) return model.named();
  const plain = new Vgg(model.cfg, await getGemm(), 0);
  plain.params.set(model.vggLayout());
  plain.stats.set(model.stats);
  return plain.named();
}

/** What a checkpoint holds of either model. */
type Trained = { params: Float32Array; m: Float32Array; v: Float32Array; stats: Float32Array; step: number };

async function saveCheckpoint(dir: string, model: Trained, state: Checkpoint): Promise<void> {
  const arrays = [model.params, model.m, model.v, model.stats];
  const bytes = new Uint8Array(arrays.reduce((s, a) => s + a.byteLength, 0));
  let off = 0;
  for (const a of arrays) {
    bytes.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), off);
    off += a.byteLength;
  }
  await ckpt.saveCheckpoint(dir, state.step, { ...state, adamStep: model.step }, [bytes]);
}

async function loadCheckpoint(
  dir: string,
  model: Trained,
  key: string,
  log: (m: string) => void,
): Promise<Checkpoint | null> {
  const found = await ckpt.loadCheckpoint<Checkpoint & { adamStep: number }>(dir, (s) => s?.key === key, log);
  const arrays = [model.params, model.m, model.v, model.stats];
  const need = arrays.reduce((s, a) => s + a.byteLength, 0);
  if (!found || found.blobs[0].byteLength !== need) return null;
  const state = found.meta;
  const f = new Float32Array(found.blobs[0].slice().buffer);
  let off = 0;
  for (const a of arrays) {
    a.set(f.subarray(off, off + a.length));
    off += a.length;
  }
  model.step = state.adamStep;
  return {
    step: state.step,
    evals: state.evals,
    trainMs: state.trainMs,
    evalMs: state.evalMs,
    key,
    processes: state.processes ?? 1,
  };
}
