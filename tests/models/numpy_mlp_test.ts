// train-numpy-mlp: the GEMM, each module's backward against finite differences
// in float64 (as the assignment's unittests.py), and training on small data.
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeSyntheticSplits, writeSplits } from "../../data/dataset.ts";
import { Rng } from "../../data/rng.ts";
import { numericGradArray, numericGradScalar, relError } from "../../models/numpy_mlp/gradcheck.ts";
import { CrossEntropy, Linear, ReLU, SoftMax } from "../../models/numpy_mlp/modules.ts";
import { run } from "../../models/numpy_mlp/stage.ts";
import { asMat, type Mat, matmul } from "../../models/numpy_mlp/tensor.ts";
import { trainNumpyMlp } from "../../models/numpy_mlp/train.ts";
import { makeTestContext } from "../support/stage_context.ts";
import type { TrainingHistory } from "../../pipeline/types.ts";

// Each test reseeds (like the assignment's np.random.seed(42)), so a test's draws do not depend on the others.
let rng = new Rng(42);
const reseed = () => rng = new Rng(42);
const pick = (lo: number, hi: number) => lo + rng.below(hi - lo); // like np.random.choice(range(lo, hi))
const randn = (r: number, c: number): Mat<Float64Array> =>
  asMat(Float64Array.from({ length: r * c }, () => rng.normal()), r, c);

Deno.test("matmul: every transpose form and ragged sizes match a naive product", () => {
  reseed();
  for (const [m, k, n] of [[1, 1, 1], [5, 7, 3], [9, 300, 6], [13, 4, 17]]) {
    const a = randn(m, k), b = randn(k, n);
    const want = new Float64Array(m * n);
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) for (let p = 0; p < k; p++) want[i * n + j] += a.data[i * k + p] * b.data[p * n + j];
    }
    const t = (x: Mat<Float64Array>) => {
      const y = new Float64Array(x.data.length);
      for (let i = 0; i < x.rows; i++) for (let j = 0; j < x.cols; j++) y[j * x.rows + i] = x.data[i * x.cols + j];
      return asMat(y, x.cols, x.rows);
    };
    for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]]) {
      const got = matmul(ta ? t(a) : a, tb ? t(b) : b, ta, tb);
      assert.ok(relError(got.data, want) < 1e-12, `${m}×${k}×${n} transA=${ta} transB=${tb}`);
    }
    const f32 = matmul(asMat(Float32Array.from(a.data), m, k), asMat(Float32Array.from(b.data), k, n));
    assert.ok(f32.data instanceof Float32Array);
    for (let i = 0; i < want.length; i++) assert.ok(Math.abs(f32.data[i] - want[i]) < 1e-4 * (1 + Math.abs(want[i])));
  }
});

Deno.test("Linear backward (dx, dW, db) matches finite differences, rel. error < 1e-5", () => {
  reseed();
  let worst = 0;
  for (let t = 0; t < 10; t++) {
    const [n, d, c] = [pick(1, 20), pick(1, 100), pick(1, 10)];
    const x = randn(n, d), dout = randn(n, c);
    const layer = new Linear<Float64Array>(d, c, rng, new Float64Array(0), 1); // std 1: weights of a useful size for the check
    for (let j = 0; j < c; j++) layer.bias[j] = rng.normal();
    layer.forward(x);
    const dx = layer.backward(dout);
    const f = () => layer.forward(x).data;
    worst = Math.max(
      worst,
      relError(dx.data, numericGradArray(f, x.data, dout.data)),
      relError(layer.gradWeight.data, numericGradArray(f, layer.weight.data, dout.data)),
      relError(layer.gradBias, numericGradArray(f, layer.bias, dout.data)),
    );
  }
  assert.ok(worst < 1e-5, `worst relative error ${worst}`);
});

Deno.test("ReLU backward matches finite differences, rel. error < 1e-6", () => {
  reseed();
  let worst = 0;
  for (let t = 0; t < 10; t++) {
    const x = randn(pick(1, 20), pick(1, 100)), dout = randn(x.rows, x.cols);
    // Central differences straddling the kink measure nothing: keep inputs 1e-3 away from 0.
    x.data.forEach((v, i) => x.data[i] = Math.abs(v) < 1e-3 ? Math.sign(v || 1) * 1e-3 : v);
    const relu = new ReLU<Float64Array>();
    relu.forward(x);
    const dx = relu.backward(dout);
    worst = Math.max(worst, relError(dx.data, numericGradArray(() => relu.forward(x).data, x.data, dout.data)));
  }
  assert.ok(worst < 1e-6, `worst relative error ${worst}`);
});

Deno.test("SoftMax backward matches finite differences, rel. error < 1e-5; rows sum to 1", () => {
  reseed();
  let worst = 0;
  for (let t = 0; t < 10; t++) {
    const x = randn(pick(1, 20), pick(1, 100)), dout = randn(x.rows, x.cols);
    const sm = new SoftMax<Float64Array>();
    const out = sm.forward(x);
    for (let i = 0; i < x.rows; i++) {
      assert.ok(Math.abs(out.data.subarray(i * x.cols, (i + 1) * x.cols).reduce((a, b) => a + b) - 1) < 1e-12);
    }
    const dx = sm.backward(dout);
    worst = Math.max(worst, relError(dx.data, numericGradArray(() => sm.forward(x).data, x.data, dout.data)));
  }
  assert.ok(worst < 1e-5, `worst relative error ${worst}`);
  // Max-subtraction: huge logits stay finite.
  const big = new SoftMax<Float64Array>().forward(asMat(Float64Array.of(1000, 999, -1000), 1, 3));
  assert.ok(big.data.every(Number.isFinite));
});

Deno.test("CrossEntropy backward matches finite differences, rel. error < 1e-5", () => {
  reseed();
  let worst = 0;
  for (let t = 0; t < 10; t++) {
    const [n, c] = [pick(1, 100), pick(1, 10)];
    const x = new SoftMax<Float64Array>().forward(randn(n, c)); // probabilities, as the assignment's test
    const y = Uint8Array.from({ length: n }, () => rng.below(c));
    const ce = new CrossEntropy();
    const dx = ce.backward(x, y);
    worst = Math.max(worst, relError(dx.data, numericGradScalar(() => ce.forward(x, y), x.data)));
  }
  assert.ok(worst < 1e-5, `worst relative error ${worst}`);
});

const cfg = { hidden: [20], lr: 2e-3, batch: 50, steps: 40, evalEvery: 10, seed: 7 };

Deno.test("trainNumpyMlp: the loss falls, the schedule is the study's, the same seed gives the same curve", () => {
  reseed();
  const data = makeSyntheticSplits(300, 200);
  const a = trainNumpyMlp(data, cfg);
  assert.deepEqual(a.evals.map((e) => e.step), [1, 11, 21, 31, 40]);
  assert.ok(a.final.testLoss < a.evals[0].testLoss - 0.3, `test loss ${a.evals[0].testLoss} → ${a.final.testLoss}`);
  assert.ok(a.final.testAcc > 0.5, `test accuracy ${a.final.testAcc}`);
  const b = trainNumpyMlp(data, cfg);
  assert.deepEqual(b.evals, a.evals);
  const c = trainNumpyMlp(data, { ...cfg, seed: 8 });
  assert.notDeepEqual(c.evals, a.evals);
});

Deno.test("stage train-numpy-mlp writes history.json from the preprocess outputs", async () => {
  reseed();
  const pre = await Deno.makeTempDir();
  await writeSplits(pre, makeSyntheticSplits(200, 100));
  const ctx = await makeTestContext({
    stage: "train-numpy-mlp",
    params: { hidden: [16], lr: 2e-3, batch: 40, steps: 12, eval_every: 5, seed: 42 },
    inputs: { preprocess: pre },
    quiet: true,
  });
  try {
    const m = await run(ctx);
    const h: TrainingHistory = JSON.parse(await Deno.readTextFile(join(ctx.outDir, "history.json")));
    assert.equal(h.evals.length, 4);
    assert.equal(h.final.step, 12);
    assert.equal(m.test_acc, h.final.testAcc);
    assert.ok(Number(ctx.recorded.stepsPerSecond) > 0);
    assert.equal(h.stepsPerSecond, undefined, "timings go to the run's record, not its outputs");
  } finally {
    await ctx.cleanup();
    await Deno.remove(pre, { recursive: true });
  }
});

Deno.test("stage train-numpy-mlp: two clean runs write the same bytes; --verify-steps stops early on a prefix", async () => {
  const pre = await Deno.makeTempDir();
  await writeSplits(pre, makeSyntheticSplits(200, 100));
  const params = { hidden: [16], lr: 2e-3, batch: 40, steps: 12, eval_every: 5, seed: 42 };
  const opts = { stage: "train-numpy-mlp", params, inputs: { preprocess: pre }, quiet: true };
  const runs = [await makeTestContext(opts), await makeTestContext(opts), await makeTestContext(opts)];
  try {
    runs[2].stopAfterSteps = 7;
    for (const ctx of runs) await run(ctx);
    const [a, b, c] = await Promise.all(runs.map((ctx) => Deno.readFile(join(ctx.outDir, "history.json"))));
    assert.deepEqual(a, b, "outputs hold results only: no timings");
    const full: TrainingHistory = JSON.parse(new TextDecoder().decode(a));
    const early: TrainingHistory = JSON.parse(new TextDecoder().decode(c));
    assert.deepEqual(early.evals, full.evals.filter((e) => e.step <= 7));
    assert.deepEqual(early.evals.map((e) => e.step), [1, 6]);
  } finally {
    for (const ctx of runs) await ctx.cleanup();
    await Deno.remove(pre, { recursive: true });
  }
});
