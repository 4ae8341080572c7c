// The fused MLP kernels (models/compute/mlp_kernels.ts) against the tfjs ops they replace:
// values and gradients bit for bit, with OpenBLAS and on wasm alone, and whole training
// steps (plain, dropout, batch norm) against a step written with the plain ops.
import assert from "node:assert/strict";
import { Rng } from "../../data/rng.ts";
import { initCompute, tf } from "../../models/compute/backend.ts";
import { dense, softmaxCrossEntropyMean } from "../../models/compute/mlp_kernels.ts";
import { Adam } from "../../models/torch_mlp/adam.ts";
import { dropoutMasks, type MlpSpec, TorchMlp } from "../../models/torch_mlp/model.ts";
import { makeTrainStep } from "../../models/torch_mlp/train.ts";

const random = (rng: Rng, n: number, scale: number) =>
  Float32Array.from({ length: n }, () => scale * (rng.next() - 0.5));
const bits = (t: tf.Tensor) => new Uint32Array((t.dataSync() as Float32Array).slice().buffer);
/** Bit-identical values (any NaN equals any NaN: their payloads are not results). */
const sameBits = (a: tf.Tensor, b: tf.Tensor, what: string) => {
  assert.deepEqual(a.shape, b.shape, `${what}: shape`);
  const [x, y, va, vb] = [bits(a), bits(b), a.dataSync(), b.dataSync()];
  const at = x.findIndex((v, i) => v !== y[i] && !(Number.isNaN(va[i]) && Number.isNaN(vb[i])));
  assert.equal(at, -1, `${what}: element ${at} differs (${va[at]} vs ${vb[at]})`);
};

for (const native of [true, false]) {
  const on = native ? "with OpenBLAS" : "on wasm alone";

  Deno.test(`dense (x·W + b, ReLU) and its gradients are tfjs's ops' bits, ${on}`, async () => {
    await initCompute({ native });
    const rng = new Rng(3);
    for (const [n, k, m, relu] of [[200, 300, 100, true], [7, 5, 10, false], [33, 64, 1, true]] as const) {
      tf.tidy(() => {
        const x = tf.tensor2d(random(rng, n * k, 4), [n, k]);
        const w = tf.tensor2d(random(rng, k * m, 0.2), [k, m]), b = tf.tensor1d(random(rng, m, 0.5));
        const up = tf.tensor2d(random(rng, n * m, 1), [n, m]); // a weighting, so that dy is not all ones
        const plain = (x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D) => {
          const pre = tf.add(tf.matMul(x, w), b);
          return relu ? tf.relu(pre) : pre;
        };
        const what = `${n}×${k}×${m}${relu ? " relu" : ""}`;
        sameBits(dense(x, w, b, relu), plain(x, w, b), `${what} forward`);
        const loss = (f: typeof plain) => (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) =>
          tf.sum(tf.mul(f(x as tf.Tensor2D, w as tf.Tensor2D, b as tf.Tensor1D), up));
        const ours = tf.grads(loss((x, w, b) => dense(x, w, b, relu)))([x, w, b]);
        const theirs = tf.grads(loss(plain))([x, w, b]);
        ["dx", "dW", "db"].forEach((name, i) => sameBits(ours[i], theirs[i], `${what} ${name}`));
      });
    }
  });

  Deno.test(`softmaxCrossEntropyMean and its gradients are tf.losses.softmaxCrossEntropy's bits, ${on}`, async () => {
    await initCompute({ native });
    const rng = new Rng(4);
    for (const [n, scale] of [[200, 10], [17, 200], [1, 3]] as const) {
      tf.tidy(() => {
        const logits = tf.tensor2d(random(rng, n * 10, scale), [n, 10]);
        const labels = tf.oneHot(tf.tensor1d(Array.from({ length: n }, (_, i) => (i * 7) % 10), "int32"), 10);
        const onehot = tf.cast(labels, "float32") as tf.Tensor2D;
        sameBits(
          softmaxCrossEntropyMean(logits, onehot),
          tf.losses.softmaxCrossEntropy(labels, logits),
          `n=${n} loss`,
        );
        const ours = tf.grads((l, y) => softmaxCrossEntropyMean(l as tf.Tensor2D, y as tf.Tensor2D))([logits, onehot]);
        const theirs = tf.grads((l, y) => tf.losses.softmaxCrossEntropy(y, l))([logits, onehot]);
        sameBits(ours[0], theirs[0], `n=${n} dlogits`);
        sameBits(ours[1], theirs[1], `n=${n} dlabels`);
      });
    }
  });
}

Deno.test("the fused kernels keep tfjs's bits on edge values: ties, −0, zeros, huge logits, NaN", async () => {
  await initCompute();
  tf.tidy(() => {
    const rows = [
      [1, 1, 1, 1, 1, 1, 1, 1, 1, 1], // all tied
      [-0, 0, -0, 0, -0, 0, -0, 0, -0, 0],
      [3e38, -3e38, 3e38, 0, 1, 2, 3, 4, 5, 6], // overflowing differences
      [NaN, 1, 2, 3, 4, 5, 6, 7, 8, 9],
      [0, 1, 2, 3, 4, 5, 6, 7, 8, NaN],
      [-1e-40, 1e-40, 0, 0, 0, 0, 0, 0, 0, 5], // subnormals
    ];
    const logits = tf.tensor2d(rows.flat(), [rows.length, 10]);
    const onehot = tf.oneHot(tf.tensor1d([0, 1, 2, 3, 9, 5], "int32"), 10);
    const f = tf.cast(onehot, "float32") as tf.Tensor2D;
    sameBits(softmaxCrossEntropyMean(logits, f), tf.losses.softmaxCrossEntropy(onehot, logits), "edge loss");
    const ours = tf.grads((l) => softmaxCrossEntropyMean(l as tf.Tensor2D, f))([logits]);
    const theirs = tf.grads((l) => tf.losses.softmaxCrossEntropy(f, l))([logits]);
    sameBits(ours[0], theirs[0], "edge dlogits");

    // Pre-activations of −0, 0, NaN and ±huge: zero rows and columns, a NaN input.
    const x = tf.tensor2d([0, 0, 0, -0, 1, -1, NaN, 2, 1e30, -1e30, 3, 4], [4, 3]);
    const w = tf.tensor2d([-1, 0, 1, -0, -2, 0, 1e10, 1, 0.5, -0.25, 0, 1], [3, 4]), b = tf.tensor1d([-0, 0, -1, 1]);
    for (const relu of [true, false]) {
      const plain = (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) => {
        const pre = tf.add(tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D), b);
        return relu ? tf.relu(pre) : pre;
      };
      const fused = (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) =>
        dense(x as tf.Tensor2D, w as tf.Tensor2D, b as tf.Tensor1D, relu);
      sameBits(fused(x, w, b), plain(x, w, b), `edge dense${relu ? " relu" : ""}`);
      const g = (f: typeof plain) => tf.grads((x, w, b) => tf.sum(f(x, w, b)))([x, w, b]);
      const [a, c] = [g(fused), g(plain)];
      ["dx", "dW", "db"].forEach((name, i) => sameBits(a[i], c[i], `edge dense ${name}`));
    }
  });
});

/** The step as it was written with tfjs's own ops (the oracle). */
function plainStep(model: TorchMlp, adam: Adam, x: Float32Array, ys: Uint8Array, masks: Float32Array[]) {
  const trainable = model.trainable();
  return tf.tidy(() => {
    const n = ys.length;
    const labels = tf.tensor1d(ys, "int32");
    const m = masks.map((a, l) => tf.tensor2d(a, [n, model.hiddenSizes[l]]));
    let logits: tf.Tensor | undefined;
    const { value, grads } = tf.variableGrads(() => {
      let h: tf.Tensor2D = tf.tensor2d(x, [n, 3072]);
      for (let l = 0; l < model.weights.length; l++) {
        if (model.norms.length) h = model.norms[l].apply(h, true);
        h = tf.add(tf.matMul(h, model.weights[l]), model.biases[l]);
        if (l + 1 < model.weights.length) {
          h = tf.relu(h);
          if (model.spec.dropout) h = tf.mul(h, m[l]);
        }
      }
      logits = tf.keep(h);
      return tf.losses.softmaxCrossEntropy(tf.oneHot(labels, 10), h) as tf.Scalar;
    }, trainable);
    const hits = tf.sum(tf.cast(tf.equal(tf.argMax(logits!, 1), labels), "int32")).dataSync()[0];
    logits!.dispose();
    adam.step(trainable.map((v) => grads[v.name]));
    return [value.dataSync()[0], hits];
  });
}

Deno.test("training steps with the fused kernels keep the plain ops' bits (plain, dropout, batch norm)", async () => {
  await initCompute();
  const specs: Partial<MlpSpec>[] = [{}, { dropout: true }, { dropout: true, batchnorm: "autograd" }];
  for (const extra of specs) {
    const spec: MlpSpec = { inputs: 3072, hidden: [40, 20], classes: 10, dropout: false, batchnorm: "none", ...extra };
    const [a, b] = [new TorchMlp(spec, new Rng(9)), new TorchMlp(spec, new Rng(9))];
    const [adamA, adamB] = [new Adam(a.trainable(), 1e-3), new Adam(b.trainable(), 1e-3)];
    const fused = makeTrainStep(a, adamA);
    const rng = new Rng(11);
    let buffers = 0;
    for (let step = 0; step < 4; step++) {
      const x = random(rng, 64 * 3072, 2);
      const y = Uint8Array.from({ length: 64 }, () => Math.floor(rng.next() * 10));
      const masks = spec.dropout ? dropoutMasks(5, step, 64, a.hiddenSizes) : [];
      assert.deepEqual(fused(x, y, masks), plainStep(b, adamB, x, y, masks), `${JSON.stringify(extra)} step ${step}`);
      if (step === 0) buffers = tf.backend().numDataIds();
    }
    assert.equal(tf.backend().numDataIds(), buffers, "the wasm heap holds as many tensors after 4 steps as after 1");
    a.variables().forEach((v, i) => sameBits(v, b.variables()[i], `${JSON.stringify(extra)} ${v.name}`));
    for (const t of [a, b, adamA, adamB]) t.dispose();
  }
});
