// The CNN's hand-written kernels and model against tfjs autograd on the cpu backend and
// finite differences (small shapes), training lowers the loss, and the stage resumes
// from its checkpoint exactly.
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeSyntheticSplits, writeSplits } from "../../data/dataset.ts";
import { makeTestContext } from "../support/stage_context.ts";
import type { TrainingHistory } from "../../pipeline/types.ts";
import { tf } from "../../models/compute/backend.ts";
import { getGemm } from "../../models/compute/gemm.ts";
import { geom } from "../../models/compute/im2col.ts";
import { loadBlas } from "../../models/compute/blas.ts";
import {
  adam,
  bnReluBackward,
  bnReluEval,
  bnReluTrain,
  maxPoolBackward,
  maxPoolForward,
  softmaxCrossEntropy,
} from "../../models/cnn/layers.ts";
import { run } from "../../models/cnn/stage.ts";
import { TfVgg } from "../../models/cnn/tf_vgg.ts";
import { Vgg } from "../../models/cnn/vgg.ts";
import { close, rand } from "../support/arrays.ts";

/** fn on the cpu backend, its tensors freed after. */
const onCpu = async <T>(fn: () => T): Promise<T> => {
  await tf.setBackend("cpu");
  tf.engine().startScope();
  try {
    return fn();
  } finally {
    tf.engine().endScope();
  }
};

Deno.test("BatchNorm+ReLU forward, backward and running statistics match tfjs autograd", async () => {
  const rows = 24, C = 5;
  const z = rand(rows * C, 1, -3, 5), r = rand(rows * C, 2);
  const p = {
    b: rand(C, 3),
    gamma: rand(C, 4, 0.5, 1.5),
    beta: rand(C, 5),
    runMean: rand(C, 6),
    runVar: rand(C, 7, 1, 2),
  };
  const run0 = { mean: p.runMean.slice(), var: p.runVar.slice() };
  const mean = new Float64Array(C), rstd = new Float64Array(C), y = new Float32Array(rows * C);
  bnReluTrain(z, rows, C, p, mean, rstd, y);
  const dz = r.slice(), g = { b: new Float32Array(C), gamma: new Float32Array(C), beta: new Float32Array(C) };
  bnReluBackward(z, y, rows, C, p.gamma, mean, rstd, dz, g);

  const want = await onCpu(() => {
    const f = (zt: tf.Tensor, b: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor) => {
      const h = tf.add(zt, b);
      const mu = tf.mean(h, 0), v = tf.mean(tf.square(tf.sub(h, mu)), 0);
      return tf.relu(tf.add(tf.mul(tf.mul(tf.sub(h, mu), gamma), tf.rsqrt(tf.add(v, 1e-5))), beta));
    };
    const args = [tf.tensor2d(z, [rows, C]), tf.tensor1d(p.b), tf.tensor1d(p.gamma), tf.tensor1d(p.beta)];
    const yt = f(...(args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]));
    const grads = tf.grads((a, b, c, d) => tf.sum(tf.mul(f(a, b, c, d), tf.tensor2d(r, [rows, C]))))(args);
    const h = tf.add(args[0], args[1]);
    const mu = tf.mean(h, 0), vb = tf.mul(tf.mean(tf.square(tf.sub(h, mu)), 0), rows / (rows - 1));
    const rm = tf.add(tf.mul(tf.tensor1d(run0.mean), 0.9), tf.mul(mu, 0.1));
    const rv = tf.add(tf.mul(tf.tensor1d(run0.var), 0.9), tf.mul(vb, 0.1));
    return [yt, ...grads, rm, rv].map((t) => t.dataSync() as Float32Array);
  });
  close(y, want[0], "y");
  close(dz, want[1], "dz", 1e-4, 1e-5);
  close(g.b, want[2], "db (≈0)", 0, 1e-5);
  close(g.gamma, want[3], "dγ");
  close(g.beta, want[4], "dβ");
  close(p.runMean, want[5], "running mean");
  close(p.runVar, want[6], "running variance");

  const ye = new Float32Array(rows * C);
  bnReluEval(z, rows, C, p, ye);
  const wantEval = await onCpu(() =>
    tf.relu(
      tf.batchNorm(tf.add(tf.tensor2d(z, [rows, C]), tf.tensor1d(p.b)), p.runMean, p.runVar, p.beta, p.gamma, 1e-5),
    )
      .dataSync()
  );
  close(ye, wantEval, "eval y");
});

Deno.test("max-pool 3×3/2 pad 1 forward and backward match tfjs (ties after a ReLU included)", async () => {
  for (const [h, relu] of [[7, false], [8, true], [2, true], [1, false]] as const) {
    const g = geom(2, h, h, 3, 3, 2, 1);
    let x = rand(2 * h * h * 3, 8 + h);
    if (relu) x = x.map((v) => Math.max(v, 0)); // many equal zeros: the first maximum must win
    const outSize = 2 * g.oh * g.ow * 3, out = new Float32Array(outSize), dout = rand(outSize, 9);
    maxPoolForward(x, g, out);
    const dx = new Float32Array(x.length);
    maxPoolBackward(x, out, dout, g, dx);
    const [wy, wdx] = await onCpu(() => {
      const xt = tf.tensor4d(x, [2, h, h, 3]);
      const f = (a: tf.Tensor) => tf.maxPool(a as tf.Tensor4D, 3, 2, 1);
      const gr = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(f(a), tf.tensor(dout, [2, g.oh, g.ow, 3]))))(xt);
      return [f(xt).dataSync(), gr.dataSync()];
    });
    close(out, wy, `pool h=${h}`, 0, 0);
    close(dx, wdx, `pool grad h=${h}`, 1e-6, 0);
  }
});

Deno.test("softmax cross-entropy and Adam match tfjs", async () => {
  const n = 6, k = 10, logits = rand(n * k, 10, -4, 4), labels = Uint8Array.from([3, 0, 9, 9, 1, 5]);
  const d = new Float32Array(n * k);
  const { loss } = softmaxCrossEntropy(logits, labels, n, k, d);
  const [wl, wd] = await onCpu(() => {
    const y = tf.oneHot(tf.tensor1d(labels, "int32"), k);
    const f = (l: tf.Tensor) => tf.losses.softmaxCrossEntropy(y, l);
    return [f(tf.tensor2d(logits, [n, k])).dataSync(), tf.grad(f)(tf.tensor2d(logits, [n, k])).dataSync()];
  });
  close([loss], wl, "loss");
  close(d, wd, "dlogits");

  const p = rand(20, 11), m = new Float32Array(20), v = new Float32Array(20);
  const grads = [rand(20, 12), rand(20, 13), rand(20, 14)];
  const want = await onCpu(() => {
    const pv = tf.variable(tf.tensor1d(p));
    const opt = tf.train.adam(1e-2, 0.9, 0.999, 1e-8);
    for (const g of grads) opt.applyGradients([{ name: pv.name, tensor: tf.tensor1d(g) }]);
    const out = pv.dataSync().slice();
    pv.dispose();
    opt.dispose();
    return out;
  });
  grads.forEach((g, i) => adam(p, g, m, v, i + 1, 1e-2));
  close(p, want, "adam", 1e-5, 1e-6);
});

const gemms = [false, ...(loadBlas().blas ? [true] : [])];

Deno.test("the whole VGG: loss, every gradient, running statistics and inference logits match tfjs autograd", async () => {
  for (const native of gemms) {
    const model = new Vgg({ width: 1 / 16, size: 8, classes: 10 }, await getGemm({ native }), 3);
    const n = 4, x = rand(n * 8 * 8 * 3, 15, -60, 60), labels = Uint8Array.from([1, 7, 3, 1]);
    await tf.setBackend("cpu");
    const oracle = new TfVgg(model);
    const want = oracle.lossAndGrads(x, labels, n);
    const got = model.lossAndGrads(x, labels, n);
    close([got.loss], [want.loss], "loss", 1e-5);
    let off = 0;
    model.convs.forEach((l, i) => {
      for (const [name, a] of Object.entries(l.g)) {
        close(a, want.grads.subarray(off, off + a.length), `${native ? "blas" : "wasm"} conv${i} d${name}`, 2e-3, 1e-6);
        off += a.length;
      }
    });
    close(model.grads.subarray(off), want.grads.subarray(off), "linear", 1e-3);
    close(model.stats, want.stats, "running statistics", 1e-4);
    close(model.predict(x, n, 3), oracle.predict(x, n), "inference logits", 1e-4);
    oracle.dispose();
  }
});

Deno.test("the whole VGG's gradient matches central finite differences at a few coordinates", async () => {
  const model = new Vgg({ width: 1 / 16, size: 8, classes: 10 }, await getGemm(), 5);
  const n = 4, x = rand(n * 8 * 8 * 3, 16, -60, 60), labels = Uint8Array.from([2, 4, 6, 8]);
  model.lossAndGrads(x, labels, n);
  const grads = model.grads.slice();
  const loss = () => model.lossAndGrads(x, labels, n).loss;
  // The largest gradient entry of each conv weight, γ, and of the linear layer.
  const picks: number[] = [];
  let off = 0;
  for (const l of model.convs) {
    for (const a of [l.p.w, l.p.b, l.p.gamma, l.p.beta]) {
      if (a !== l.p.b) {
        let best = 0;
        for (let i = 1; i < a.length; i++) if (Math.abs(grads[off + i]) > Math.abs(grads[off + best])) best = i;
        picks.push(off + best);
      }
      off += a.length;
    }
  }
  picks.push(off, model.params.length - 1);
  for (const i of picks) {
    const h = 1e-4, p0 = model.params[i]; // the loss is strongly curved here (BatchNorm over 4 rows)
    model.params[i] = p0 + h;
    const up = loss();
    model.params[i] = p0 - h;
    const down = loss();
    model.params[i] = p0;
    const fd = (up - down) / (2 * h);
    assert.ok(Math.abs(fd - grads[i]) <= 0.03 * Math.abs(grads[i]) + 5e-3, `param ${i}: ${grads[i]} vs fd ${fd}`);
  }
});

Deno.test("a few Adam steps lower the loss on a batch (width 1/8, 32×32)", async () => {
  const { train } = makeSyntheticSplits(16, 1);
  const model = new Vgg({ width: 0.125, size: 32, classes: 10 }, await getGemm(), 1);
  const losses = [];
  for (let i = 0; i < 6; i++) losses.push(model.trainStep(train.x, train.y, 16, 1e-3).loss);
  assert.ok(losses[5] < 0.8 * losses[0], `losses ${losses.map((l) => l.toFixed(3))}`);
});

Deno.test("train-cnn stage: history, and kill → resume ends exactly as an uninterrupted run", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "cnn-data-" });
  await writeSplits(dataDir, makeSyntheticSplits(40, 20));
  const params = { lr: 1e-3, batch: 8, steps: 6, eval_every: 3, width: 0.125, seed: 42, compute: "own" as const };
  const opts = { stage: "train-cnn", params, inputs: { preprocess: dataDir }, quiet: true };

  const a = await makeTestContext(opts);
  const metrics = await run(a);
  const histA: TrainingHistory = JSON.parse(await Deno.readTextFile(join(a.outDir, "history.json")));
  assert.deepEqual(histA.evals.map((e) => e.step), [1, 4, 6]);
  assert.equal(metrics.test_acc, histA.final.testAcc);
  assert.match(String(a.recorded.compute), /GEMM/, "the compute path goes to the record");
  assert.equal(histA.backend, undefined, "no host facts in the outputs");
  assert.match(histA.evals[0].weights!, /^[0-9a-f]{32}$/);

  // Killed during step 5 (after the checkpoint at step 4), then a fresh run resumes.
  const b = await makeTestContext(opts);
  const killed = {
    ...b,
    progress(p: { step: number }) {
      if (p.step === 5) throw new Error("killed");
    },
  };
  await assert.rejects(run(killed), /killed/);
  await run(b);
  const histB: TrainingHistory = JSON.parse(await Deno.readTextFile(join(b.outDir, "history.json")));
  assert.deepEqual(histB.evals, histA.evals);
  assert.deepEqual(
    await Deno.readFile(join(b.outDir, "history.json")),
    await Deno.readFile(join(a.outDir, "history.json")),
    "a resumed run writes the same bytes; the resumption is in the record",
  );
  assert.equal(b.recorded.resumes, 1);
  assert.equal(a.recorded.resumes, 0);
  await a.cleanup();
  await b.cleanup();
  await Deno.remove(dataDir, { recursive: true });
});
