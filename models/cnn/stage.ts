// Stage "train-cnn": the study's small VGG (vgg.ts), Adam, the study's mini-batch order,
// evaluation on the whole test set in inference mode (running statistics). A checkpoint
// at every evaluation (ctx.checkpointDir) lets a killed run resume where it left off and
// end exactly as an uninterrupted run would.
import { join } from "node:path";
import { BatchSampler, gather, loadSplits } from "../../data/dataset.ts";
import { type EvalPoint, PipelineError, type StageContext, type TrainingHistory } from "../../pipeline/types.ts";
import { getGemm } from "../compute/gemm.ts";
import { loadOnednn } from "../compute/onednn.ts";
import { OnednnVgg } from "./onednn_vgg.ts";
import { Vgg } from "./vgg.ts";

/** After update i (0-based) the study evaluated when i % evalEvery == 0, and after the last. */
export function isEvalStep(i: number, steps: number, evalEvery: number): boolean {
  return i % evalEvery === 0 || i === steps - 1;
}

interface Checkpoint {
  /** Updates done. */
  step: number;
  evals: EvalPoint[];
  trainMs: number;
  evalMs: number;
  key: string;
}

export async function run(ctx: StageContext): Promise<Record<string, number | string>> {
  const dir = ctx.inputs["preprocess"];
  if (!dir) throw new PipelineError(`${ctx.stage} needs the preprocess stage's output`, 'declare deps: ["preprocess"]');
  const p = ctx.params;
  const [lr, batch, steps, evalEvery, width, seed] = [
    p.lr,
    p.batch,
    p.steps,
    p.eval_every,
    p.width,
    p.seed,
  ] as number[];
  if (!(width > 0)) throw new PipelineError(`train-cnn: width ${width} must be > 0`, "use width=1 (the study's VGG)");
  const { train, test } = await loadSplits(dir);
  const cfg = { width, size: 32, classes: 10 };
  // compute=onednn (opt-in): oneDNN primitives; without libdnnl2 the own kernels, saying why.
  const onednn = p.compute === "onednn" ? loadOnednn() : null;
  let model: Vgg | OnednnVgg, backend: string;
  if (onednn?.dnnl) {
    const m = new OnednnVgg(cfg, onednn.dnnl, seed);
    model = m, backend = m.describe(batch);
  } else {
    const gemm = await getGemm();
    model = new Vgg(cfg, gemm, seed);
    backend = `own kernels (JS, NHWC, im2col) + ${gemm.name} GEMM${onednn ? ` (${onednn.reason})` : ""}`;
  }
  const sampler = new BatchSampler(train.n, batch, seed);
  ctx.log(`VGG width ${width}: ${model.params.length} parameters; ${backend}`);

  // The oneDNN model's arrays have their own layout: its checkpoints are not the other's.
  const path = model instanceof OnednnVgg ? { compute: "onednn" } : {};
  const key = JSON.stringify({ lr, batch, steps, evalEvery, width, seed, n: model.params.length, ...path });
  let state: Checkpoint = { step: 0, evals: [], trainMs: 0, evalMs: 0, key };
  const resumed = await loadCheckpoint(ctx.checkpointDir, model, key);
  if (resumed) {
    state = resumed;
    for (let i = 0; i < state.step; i++) sampler.next(); // the same batches as an uninterrupted run
    ctx.log(`resumed from the checkpoint at step ${state.step}`);
  }

  for (let i = state.step; i < steps; i++) {
    const t0 = performance.now();
    const b = gather(train, sampler.next());
    const r = model.trainStep(b.x, b.y, batch, lr);
    state.trainMs += performance.now() - t0;
    if (!Number.isFinite(r.loss)) throw new Error(`train-cnn: loss became ${r.loss} at step ${i + 1}`);
    state.step = i + 1;
    if (isEvalStep(i, steps, evalEvery)) {
      const t1 = performance.now();
      const e = model.evaluate(test.x, test.y, test.n);
      state.evalMs += performance.now() - t1;
      state.evals.push({ step: i + 1, trainLoss: r.loss, trainAcc: r.acc, testLoss: e.loss, testAcc: e.acc });
      ctx.log(`step ${i + 1}: train loss ${r.loss.toFixed(4)}, test acc ${e.acc.toFixed(4)}`);
      await saveCheckpoint(ctx.checkpointDir, model, state);
    }
    ctx.progress({ step: i + 1, total: steps, itemsPerStep: batch, loss: r.loss });
  }

  const final = state.evals[state.evals.length - 1];
  const stepsPerSecond = steps / (state.trainMs / 1000);
  const history: TrainingHistory & { evalImagesPerSecond: number; parameters: number } = {
    run: ctx.stage,
    params: p,
    backend,
    evals: state.evals,
    final,
    wallSeconds: (state.trainMs + state.evalMs) / 1000,
    stepsPerSecond,
    evalImagesPerSecond: (state.evals.length * test.n) / (state.evalMs / 1000),
    parameters: model.params.length,
    notes: [
      "Every conv has its own BatchNorm (the study's code shared one between conv3_a/b, 4_a/b, 5_a/b).",
      "The test set is evaluated in inference mode with the running statistics (momentum 0.1); the study's code " +
      "evaluated it in training mode (batch statistics).",
      "PyTorch's default initialisation (uniform ±1/√fan_in for conv and linear weights and biases), Adam " +
      "(β 0.9, 0.999, ε 1e-8); forward and backward written by hand, checked against tfjs autograd.",
      "Evaluated after update i (0-based) when i % eval_every == 0 and after the last; `step` counts the updates " +
      "done. Train loss/accuracy are those of that step's mini-batch, before its update.",
      "stepsPerSecond counts training steps only; wallSeconds includes the evaluations" +
      (resumed ? "; this run resumed from a checkpoint." : "."),
    ],
  };
  await Deno.writeTextFile(join(ctx.outDir, "history.json"), JSON.stringify(history, null, 2) + "\n");
  ctx.log(`test accuracy ${final.testAcc.toFixed(4)} after ${steps} steps (${stepsPerSecond.toFixed(2)} steps/s)`);
  return {
    test_acc: final.testAcc,
    test_loss: final.testLoss,
    train_acc: final.trainAcc,
    steps_per_s: stepsPerSecond,
  };
}

// The checkpoint: state.json naming model-<step>.bin, which holds params | m | v | stats
// (float32). The binary is written first and state.json replaced by a rename, so a kill at
// any moment leaves a consistent pair.
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
  const file = `model-${state.step}.bin`;
  await Deno.writeFile(join(dir, file), bytes);
  await Deno.writeTextFile(join(dir, "state.json.tmp"), JSON.stringify({ ...state, adamStep: model.step, file }));
  await Deno.rename(join(dir, "state.json.tmp"), join(dir, "state.json"));
  for await (const e of Deno.readDir(dir)) {
    if (e.name.startsWith("model-") && e.name !== file) await Deno.remove(join(dir, e.name));
  }
}

async function loadCheckpoint(dir: string, model: Trained, key: string): Promise<Checkpoint | null> {
  let state: Checkpoint & { adamStep: number; file: string };
  let bytes: Uint8Array;
  try {
    state = JSON.parse(await Deno.readTextFile(join(dir, "state.json")));
    bytes = await Deno.readFile(join(dir, state.file));
  } catch {
    return null; // none (or unreadable): start afresh
  }
  const arrays = [model.params, model.m, model.v, model.stats];
  const need = arrays.reduce((s, a) => s + a.byteLength, 0);
  if (state.key !== key || bytes.byteLength !== need) return null;
  const f = new Float32Array(bytes.slice().buffer);
  let off = 0;
  for (const a of arrays) {
    a.set(f.subarray(off, off + a.length));
    off += a.length;
  }
  model.step = state.adamStep;
  return { step: state.step, evals: state.evals, trainMs: state.trainMs, evalMs: state.evalMs, key };
}
