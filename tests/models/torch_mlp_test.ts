// train-torch-mlp: Adam, initialisation, dropout masks, training on small data,
// determinism, and checkpoint/resume giving the uninterrupted curve.
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeSyntheticSplits, writeSplits } from "../../data/dataset.ts";
import { Rng } from "../../data/rng.ts";
import { initCompute, tf } from "../../models/compute/backend.ts";
import { Adam } from "../../models/torch_mlp/adam.ts";
import { dropoutMasks, TorchMlp } from "../../models/torch_mlp/model.ts";
import { run as runEvalModes } from "../../models/torch_mlp/eval_mode_stage.ts";
import { run } from "../../models/torch_mlp/stage.ts";
import { type TorchMlpConfig, trainTorchMlp } from "../../models/torch_mlp/train.ts";
import { makeTestContext } from "../support/stage_context.ts";
import type { TrainingHistory } from "../../pipeline/types.ts";

const data = makeSyntheticSplits(300, 200);
const base: TorchMlpConfig = {
  hidden: [32, 16],
  lr: 1e-3,
  batch: 50,
  steps: 24,
  evalEvery: 8,
  seed: 3,
  dropout: false,
  batchnorm: "none",
};

Deno.test("Adam matches torch.optim.Adam's update, computed by hand in float64", async () => {
  await initCompute();
  const p0 = [0.5, -1.5, 2], grads = [[0.1, -0.2, 0.3], [1, 0.5, -2], [-0.3, 0.02, 0.7]];
  const p = tf.variable(tf.tensor1d(p0));
  const adam = new Adam([p], 0.01);
  const want = [...p0], m = [0, 0, 0], v = [0, 0, 0];
  grads.forEach((g, t) => {
    tf.tidy(() => adam.step([tf.tensor1d(g)]));
    for (let i = 0; i < 3; i++) {
      m[i] = 0.9 * m[i] + 0.1 * g[i];
      v[i] = 0.999 * v[i] + 0.001 * g[i] ** 2;
      const denom = Math.sqrt(v[i]) / Math.sqrt(1 - 0.999 ** (t + 1)) + 1e-8;
      want[i] -= (0.01 / (1 - 0.9 ** (t + 1))) * m[i] / denom;
    }
  });
  const got = p.dataSync();
  for (let i = 0; i < 3; i++) assert.ok(Math.abs(got[i] - want[i]) < 1e-6, `${got[i]} vs ${want[i]}`);
  adam.dispose();
  p.dispose();
});

Deno.test("TorchMlp: PyTorch's initialisation bounds, BatchNorm before each Linear", async () => {
  await initCompute();
  const model = new TorchMlp(
    { inputs: 3072, hidden: [100], classes: 10, dropout: true, batchnorm: "manual" },
    new Rng(1),
  );
  model.weights.forEach((w, l) => {
    const bound = 1 / Math.sqrt(w.shape[0]);
    const v = w.dataSync(), b = model.biases[l].dataSync();
    assert.ok(v.every((x) => Math.abs(x) <= bound) && b.every((x) => Math.abs(x) <= bound));
    assert.ok(Math.max(...v.slice(0, 1000).map(Math.abs)) > 0.9 * bound); // uniform fills the range
  });
  assert.deepEqual(model.norms.map((n) => n.features), [3072, 100]);
  assert.equal(model.trainable().length, 8);
  model.dispose();
});

Deno.test("dropout masks: values 0 or 2, about half kept, a pure function of (seed, step)", () => {
  const [a] = dropoutMasks(1, 5, 100, [200]);
  assert.ok(a.every((x) => x === 0 || x === 2));
  const kept = a.filter((x) => x === 2).length / a.length;
  assert.ok(Math.abs(kept - 0.5) < 0.02, `kept ${kept}`);
  assert.deepEqual(dropoutMasks(1, 5, 100, [200])[0], a);
  assert.notDeepEqual(dropoutMasks(1, 6, 100, [200])[0], a);
  assert.notDeepEqual(dropoutMasks(2, 5, 100, [200])[0], a);
});

Deno.test("trainTorchMlp: every variant lowers the loss; the same seed gives the same curve; no tensor leaks", async () => {
  await initCompute();
  const before = tf.memory().numTensors;
  for (const v of [{}, { dropout: true }, { dropout: true, batchnorm: "autograd" as const }]) {
    const cfg = { ...base, ...v };
    const a = await trainTorchMlp(data, cfg);
    assert.deepEqual(a.evals.map((e) => e.step), [1, 9, 17, 24]);
    assert.ok(
      a.final.testLoss < a.evals[0].testLoss,
      `${JSON.stringify(v)}: ${a.evals[0].testLoss} → ${a.final.testLoss}`,
    );
    assert.ok(a.final.testAcc > 0.5, `${JSON.stringify(v)}: test accuracy ${a.final.testAcc}`);
    const b = await trainTorchMlp(data, cfg);
    assert.deepEqual(b.evals, a.evals);
  }
  assert.equal(tf.memory().numTensors, before);
});

Deno.test("checkpoint/resume: a run stopped after an evaluation continues to the uninterrupted curve", async () => {
  const cfg: TorchMlpConfig = { ...base, dropout: true, batchnorm: "manual" };
  const whole = await trainTorchMlp(data, cfg);
  const dir = await Deno.makeTempDir();
  try {
    const first = await trainTorchMlp(data, cfg, { checkpointDir: dir, stopAfter: 9 });
    assert.ok(first.stopped);
    assert.deepEqual(first.evals.map((e) => e.step), [1, 9]);
    const rest = await trainTorchMlp(data, cfg, { checkpointDir: dir });
    assert.equal(rest.resumedFrom, 9);
    assert.deepEqual(rest.evals, whole.evals);
    // A checkpoint of another configuration is not used.
    const other = await trainTorchMlp(data, { ...cfg, lr: 2e-3 }, { checkpointDir: dir });
    assert.equal(other.resumedFrom, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("stage train-torch-mlp writes history.json (inference-mode test, notes on batch norm)", async () => {
  const pre = await Deno.makeTempDir();
  await writeSplits(pre, data);
  const params = {
    hidden: [16],
    lr: 2e-3,
    batch: 40,
    steps: 10,
    dropout: true,
    batchnorm: true,
    eval_every: 4,
    seed: 42,
  };
  const ctx = await makeTestContext({ stage: "train-torch-mlp", params, inputs: { preprocess: pre }, quiet: true });
  try {
    const m = await run(ctx);
    const h: TrainingHistory = JSON.parse(await Deno.readTextFile(join(ctx.outDir, "history.json")));
    assert.deepEqual(h.evals.map((e) => e.step), [1, 5, 9, 10]);
    assert.equal(m.test_acc, h.final.testAcc);
    assert.ok(String(ctx.recorded.compute).startsWith("wasm"));
    assert.equal(h.backend, undefined);
    assert.ok(h.notes?.some((n) => n.includes("Batch norm")));
  } finally {
    await ctx.cleanup();
    await Deno.remove(pre, { recursive: true });
  }
});

Deno.test("stage dropout-eval-mode: a Table 1 run's final weights scored in both modes; a run without weights: not scored, said why", async () => {
  const pre = await Deno.makeTempDir();
  await writeSplits(pre, makeSyntheticSplits(300, 200));
  const params = { hidden: [32, 16], lr: 1e-3, batch: 50, steps: 12, eval_every: 4, seed: 42, batchnorm: false };
  const table1 = await makeTestContext({
    stage: "train-torch-mlp@ga1-dropout",
    params: { ...params, dropout: true },
    inputs: { preprocess: pre },
    quiet: true,
  });
  const inputs = { preprocess: pre, "train-torch-mlp@ga1-dropout": table1.outDir };
  const ctx = await makeTestContext({ stage: "dropout-eval-mode", params: { draws: 3 }, inputs, quiet: true });
  try {
    await run(table1);
    const m = await runEvalModes(ctx);
    const read = async (dir: string) => JSON.parse(await Deno.readTextFile(join(dir, "history.json")));
    const [ours, twin] = [await read(ctx.outDir), await read(table1.outDir)];
    assert.deepEqual(ours.evals, twin.evals, "the Table 1 run's curve");
    assert.deepEqual(ours.params, twin.params);
    assert.equal(ours.evalModes.inference.testAcc, twin.final.testAcc, "its weights give its score");
    assert.equal(ours.evalModes.training.testAccs.length, 3);
    assert.ok(ours.evalModes.training.testAccs.every((a: number) => a >= 0 && a <= 1));
    assert.ok(new Set(ours.evalModes.training.testAccs).size > 1, "each draw its own masks");
    assert.equal(m.test_acc_training_mode, ours.evalModes.training.testAccMean);

    // A Table 1 run from before weights were outputs: nothing to score, said in the output (not an error:
    // training the twin again changes this stage's inputs, so it reruns then).
    await Deno.remove(join(table1.outDir, "weights.safetensors"));
    const again = await makeTestContext({ stage: "dropout-eval-mode", params: { draws: 3 }, inputs, quiet: true });
    assert.deepEqual(await runEvalModes(again), {});
    const unscored = await read(again.outDir);
    await again.cleanup();
    assert.equal(unscored.evalModes, undefined);
    assert.deepEqual(unscored.evals, twin.evals);
    assert.match(
      unscored.unscored,
      /^train-torch-mlp@ga1-dropout's run has no weights\.safetensors .*`deno task reproduce train-torch-mlp@ga1-dropout --force`/,
    );
  } finally {
    await ctx.cleanup();
    await table1.cleanup();
    await Deno.remove(pre, { recursive: true });
  }
});
