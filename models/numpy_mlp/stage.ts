// Stage "train-numpy-mlp": the study's MLP with backpropagation written by
// hand (modules.ts) on typed arrays (tensor.ts), plain SGD, no autograd. The
// float32 matrix products go to the fastest GEMM here (OpenBLAS when it loads,
// as NumPy's would; else tfjs's wasm matMul): tests/bench/mlp.ts measures it
// against the TypeScript kernel.
import { join } from "node:path";
import { loadSplits } from "../../data/dataset.ts";
import type { TrainNumpyMlpParams } from "../../pipeline/stages.ts";
import { PipelineError, type StageContext, type TrainingHistory } from "../../pipeline/types.ts";
import { getGemm } from "../compute/gemm.ts";
import { setFloat32Gemm } from "./tensor.ts";
import { writeArtifacts } from "../artifacts.ts";
import { numpyMlpWeights, predictClasses, trainNumpyMlp } from "./train.ts";

const LAYOUT = "MLP: for each l, x = relu(x · layers.l.weight + layers.l.bias) (no relu after the last), softmax; " +
  "weights are in × out; inputs are the NHWC pixels minus the training mean image, flattened";

export async function run(ctx: StageContext<TrainNumpyMlpParams>): Promise<Record<string, number | string>> {
  const dir = ctx.inputs["preprocess"];
  if (!dir) throw new PipelineError(`${ctx.stage} needs the preprocess stage's output`, 'declare deps: ["preprocess"]');
  const data = await loadSplits(dir);
  const p = ctx.params;
  const gemm = await getGemm();
  setFloat32Gemm(gemm.gemm);
  const r = trainNumpyMlp(data, {
    hidden: p.hidden,
    lr: p.lr,
    batch: p.batch,
    steps: p.steps,
    evalEvery: p.eval_every,
    seed: p.seed,
    stopAfterSteps: ctx.stopAfterSteps,
  }, (pr) => ctx.progress(pr));
  ctx.record({
    compute: `typed arrays; float32 GEMM: ${gemm.name}`,
    trainSeconds: r.wallSeconds,
    stepsPerSecond: r.stepsPerSecond,
    evalImagesPerSecond: r.evalImagesPerSecond,
    resumes: 0,
  });
  const history: TrainingHistory = {
    run: ctx.stage,
    params: p,
    evals: r.evals,
    final: r.final,
    notes: [
      "Forward and backward written by hand over whole mini-batches; no automatic differentiation.",
      "Weights N(0, 1e-4²), biases 0; ReLU derivative taken as 0 at 0 (as the study's code).",
      "Evaluated as the study's code did: after update i (0-based) when i % eval_every == 0 and after the last; " +
      "`step` counts the updates done. Train loss/accuracy are those of that step's mini-batch, before its update.",
    ],
  };
  await Deno.writeTextFile(join(ctx.outDir, "history.json"), JSON.stringify(history, null, 2) + "\n");
  await writeArtifacts(ctx.outDir, numpyMlpWeights(r.mlp), predictClasses(r.mlp, data.test), LAYOUT);
  ctx.log(
    `test accuracy ${r.final.testAcc.toFixed(4)} after ${r.final.step} steps (${r.stepsPerSecond.toFixed(1)} steps/s)`,
  );
  return {
    test_acc: r.final.testAcc,
    test_loss: r.final.testLoss,
    train_acc: r.final.trainAcc,
    steps_per_s: r.stepsPerSecond,
  };
}
