// train-batchnorm: the assignment's checks, the module's running statistics,
// and the stage on small data (checks.json, a curve that matches its autograd twin's).
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeSyntheticSplits, writeSplits } from "../../data/dataset.ts";
import { BatchNorm, batchNormAutograd, batchNormManual } from "../../models/batchnorm/bn.ts";
import { type CheckRow, runBatchNormChecks } from "../../models/batchnorm/checks.ts";
import { curveDifference } from "../../reports/build/curves.ts";
import { AUTOGRAD_TWIN, run } from "../../models/torch_mlp/batchnorm_stage.ts";
import { run as runTorchMlp } from "../../models/torch_mlp/stage.ts";
import { initCompute, tf } from "../../models/compute/backend.ts";
import { makeTestContext } from "../support/stage_context.ts";
import type { TrainingHistory } from "../../pipeline/types.ts";

Deno.test("the assignment's batch-norm checks pass for both versions and the float64 backward", async () => {
  const rows = await runBatchNormChecks();
  const failed = rows.filter((r) => !r.pass);
  assert.deepEqual(failed, [], JSON.stringify(failed));
  assert.deepEqual(new Set(rows.map((r) => r.impl)), new Set(["autograd", "manual", "manual-float64"]));
  assert.ok(rows.some((r) => r.check.includes("central differences")));
});

Deno.test("BatchNorm: running statistics with momentum 0.1 (unbiased variance), used in inference mode", async () => {
  await initCompute();
  for (const impl of ["autograd", "manual"] as const) {
    const bn = new BatchNorm(2, impl);
    const x = tf.tensor2d([1, 10, 3, 20, 5, 60], [3, 2]);
    const y = bn.apply(x, true);
    // Batch statistics: feature 0 has mean 3, biased variance 8/3, unbiased 4.
    assert.ok(Math.abs(y.dataSync()[0] - (1 - 3) / Math.sqrt(8 / 3 + 1e-5)) < 1e-5);
    const rm = bn.runningMean.dataSync(), rv = bn.runningVar.dataSync();
    assert.ok(Math.abs(rm[0] - 0.3) < 1e-6 && Math.abs(rm[1] - 3) < 1e-5);
    assert.ok(Math.abs(rv[0] - (0.9 + 0.1 * 4)) < 1e-6);
    const inf = bn.apply(tf.tensor2d([1, 10], [1, 2]), false).dataSync();
    assert.ok(Math.abs(inf[0] - (1 - 0.3) / Math.sqrt(1.3 + 1e-5)) < 1e-5);
    bn.dispose();
  }
});

Deno.test("manual and autograd batch norm: identical forward, gradients equal to float32 rounding", async () => {
  await initCompute();
  const x = tf.randomNormal([64, 5], 10, 2, "float32", 1) as tf.Tensor2D;
  const g = tf.tensor1d([1, 2, 3, 4, 5]), b = tf.tensor1d([0, 1, 2, 3, 4]);
  const dy = tf.randomNormal([64, 5], 0, 1, "float32", 2);
  assert.deepEqual(batchNormManual(x, g, b).dataSync(), batchNormAutograd(x, g, b).dataSync());
  const grads = (fn: typeof batchNormManual) =>
    tf.grads((a, c, d) => tf.sum(tf.mul(fn(a as tf.Tensor2D, c as tf.Tensor1D, d as tf.Tensor1D), dy)))([x, g, b]);
  const gm = grads(batchNormManual), ga = grads(batchNormAutograd);
  for (let k = 0; k < 3; k++) {
    const [u, v] = [gm[k].dataSync(), ga[k].dataSync()];
    const scale = Math.max(...v.map(Math.abs));
    for (let i = 0; i < u.length; i++) {
      assert.ok(Math.abs(u[i] - v[i]) < 1e-5 * scale, `grad ${k}[${i}]: ${u[i]} vs ${v[i]}`);
    }
  }
  tf.dispose([x, g, b, dy, ...gm, ...ga]);
});

Deno.test("stage train-batchnorm: checks.json, and a curve equal to its autograd twin's to float32 rounding", async () => {
  const pre = await Deno.makeTempDir();
  await writeSplits(pre, makeSyntheticSplits(300, 200));
  const params = { hidden: [32, 16], lr: 1e-3, batch: 50, steps: 12, eval_every: 4, seed: 42 };
  // Its autograd twin: train-torch-mlp with dropout and batch norm, same settings.
  const twin = await makeTestContext({
    stage: AUTOGRAD_TWIN,
    params: { ...params, dropout: true, batchnorm: true },
    inputs: { preprocess: pre },
    quiet: true,
  });
  await runTorchMlp(twin);
  const ctx = await makeTestContext({ stage: "train-batchnorm", params, inputs: { preprocess: pre }, quiet: true });
  try {
    const m = await run(ctx);
    const checks: CheckRow[] = JSON.parse(await Deno.readTextFile(join(ctx.outDir, "checks.json")));
    assert.ok(checks.length >= 10 && checks.every((c) => c.pass));
    const read = async (dir: string) =>
      JSON.parse(await Deno.readTextFile(join(dir, "history.json"))) as TrainingHistory & { twin?: string };
    const [manual, auto] = [await read(ctx.outDir), await read(twin.outDir)];
    assert.deepEqual(manual.evals.map((e) => e.step), [1, 5, 9, 12]);
    assert.equal(manual.twin, AUTOGRAD_TWIN);
    assert.deepEqual(manual.params, auto.params, "the twin's settings, batch norm and dropout on");
    const diff = curveDifference(auto.evals, manual.evals);
    assert.ok(diff.testLoss < 1e-3 && diff.trainLoss < 1e-3, JSON.stringify(diff));
    assert.ok(manual.final.testLoss < manual.evals[0].testLoss);
    assert.equal(m.checks_passed, checks.length);
  } finally {
    await ctx.cleanup();
    await twin.cleanup();
    await Deno.remove(pre, { recursive: true });
  }
});
