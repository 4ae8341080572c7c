// Trained weights and test predictions are artefacts: every training stage writes
// weights.safetensors and predictions.npy, and loading the weights back into a fresh model
// scores the test set exactly as the run did, with the same predictions.
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadSplits, makeSyntheticSplits, writeSplits } from "../../data/dataset.ts";
import { readNpy } from "../../data/npy.ts";
import { Rng } from "../../data/rng.ts";
import { PREDICTIONS, readWeights, WEIGHTS } from "../../models/artifacts.ts";
import { loadOnednn } from "../../models/compute/onednn.ts";
import { scoreWeights } from "../../models/cnn/score_weights.ts";
import { run as runCnn } from "../../models/cnn/stage.ts";
import { Vgg } from "../../models/cnn/vgg.ts";
import { getGemm } from "../../models/compute/gemm.ts";
import { MLP } from "../../models/numpy_mlp/modules.ts";
import { run as runNumpy } from "../../models/numpy_mlp/stage.ts";
import { evaluate as evaluateNumpy, loadNumpyMlp, predictClasses } from "../../models/numpy_mlp/train.ts";
import { TorchMlp } from "../../models/torch_mlp/model.ts";
import { run as runTorch } from "../../models/torch_mlp/stage.ts";
import {
  evaluate as evaluateTorch,
  loadTorchMlp,
  predictClasses as predictTorch,
} from "../../models/torch_mlp/train.ts";
import { makeTestContext } from "../support/stage_context.ts";
import type { ParamValue, StageContext, TrainingHistory } from "../../pipeline/types.ts";

async function trained<P extends Record<string, ParamValue>>(
  stage: string,
  run: (ctx: StageContext<P>) => Promise<unknown>,
  params: P,
) {
  const pre = await Deno.makeTempDir({ prefix: "artifacts-data-" });
  await writeSplits(pre, makeSyntheticSplits(120, 60));
  const ctx = await makeTestContext({ stage, params, inputs: { preprocess: pre }, quiet: true });
  await run(ctx);
  const history: TrainingHistory = JSON.parse(await Deno.readTextFile(join(ctx.outDir, "history.json")));
  const weights = await readWeights(join(ctx.outDir, WEIGHTS));
  const predictions = (await readNpy(join(ctx.outDir, PREDICTIONS))).data as Uint8Array;
  const { test } = await loadSplits(pre);
  return {
    history,
    runDir: ctx.outDir,
    dataDir: pre,
    weights,
    predictions,
    test,
    async cleanup() {
      await ctx.cleanup();
      await Deno.remove(pre, { recursive: true });
    },
  };
}

Deno.test("train-numpy-mlp: its weights.safetensors, loaded back, give the run's test accuracy and predictions", async () => {
  const r = await trained("train-numpy-mlp", runNumpy, {
    hidden: [16],
    lr: 2e-3,
    batch: 40,
    steps: 12,
    eval_every: 5,
    seed: 42,
  });
  try {
    assert.deepEqual(r.weights["layers.0.weight"].shape, [3072, 16]);
    const mlp = new MLP<Float32Array>(3072, [16], 10, new Rng(0), new Float32Array(0));
    loadNumpyMlp(mlp, r.weights);
    assert.equal(evaluateNumpy(mlp, r.test).acc, r.history.final.testAcc);
    assert.deepEqual(predictClasses(mlp, r.test), r.predictions);
    assert.equal(r.predictions.length, r.test.n);
  } finally {
    await r.cleanup();
  }
});

Deno.test("train-torch-mlp (batch norm): weights with running statistics, loaded back bit for bit", async () => {
  const params = {
    hidden: [16, 8],
    lr: 2e-3,
    batch: 40,
    steps: 9,
    dropout: true,
    batchnorm: true,
    eval_every: 4,
    seed: 42,
  };
  const r = await trained("train-torch-mlp", runTorch, params);
  const model = new TorchMlp(
    { inputs: 3072, hidden: [16, 8], classes: 10, dropout: true, batchnorm: "autograd" },
    new Rng(0),
  );
  try {
    assert.deepEqual(r.weights["layers.1.norm.running_var"].shape, [16]);
    loadTorchMlp(model, r.weights);
    assert.equal(evaluateTorch(model, r.test).acc, r.history.final.testAcc);
    assert.deepEqual(predictTorch(model, r.test), r.predictions);
  } finally {
    model.dispose();
    await r.cleanup();
  }
});

Deno.test("train-cnn: the VGG's named weights (HWIO convs, batch norm statistics) reload to the same score", async () => {
  const params = { lr: 1e-3, batch: 8, steps: 4, eval_every: 3, width: 0.125, seed: 42, compute: "own" as const };
  const r = await trained("train-cnn", runCnn, params);
  try {
    const model = new Vgg({ width: 0.125, size: 32, classes: 10 }, await getGemm(), 7);
    assert.deepEqual(r.weights["conv0.weight"].shape, [3, 3, 3, 8]);
    for (const [name, t] of Object.entries(model.named())) t.data.set(r.weights[name].data);
    assert.equal(model.evaluate(r.test.x, r.test.y, r.test.n).acc, r.history.final.testAcc);
    assert.equal((await scoreWeights(r.runDir, r.dataDir)).acc, r.history.final.testAcc, "the README's script");
  } finally {
    await r.cleanup();
  }
});

Deno.test({
  name: "train-cnn on oneDNN: its weights file, scored by the README's script, gives the run's own loss and accuracy",
  ignore: !loadOnednn().dnnl,
  async fn() {
    const params = { lr: 1e-3, batch: 8, steps: 4, eval_every: 3, width: 0.125, seed: 42, compute: "onednn" as const };
    const r = await trained("train-cnn", runCnn, params);
    try {
      const { acc, loss } = await scoreWeights(r.runDir, r.dataDir);
      assert.equal(acc, r.history.final.testAcc);
      assert.equal(loss, r.history.final.testLoss, "bit for bit: scored on the path it trained on");
    } finally {
      await r.cleanup();
    }
  },
});
