// Child process of tests/models/onednn_test.ts: a few Adam steps of the oneDNN VGG (thread count
// from OMP_NUM_THREADS), then prints its description and the SHA-256 of everything it
// computed (parameters, Adam moments, running statistics, inference logits).
import { loadOnednn } from "../../models/compute/onednn.ts";
import { OnednnVgg } from "../../models/cnn/onednn_vgg.ts";
import { makeSyntheticSplits } from "../../data/dataset.ts";

const { dnnl, reason } = loadOnednn();
if (!dnnl) throw new Error(reason);
const [width, n, steps] = Deno.args.map(Number);
const { train } = makeSyntheticSplits(n, 1);
const model = new OnednnVgg({ width, size: 32, classes: 10 }, dnnl, 7);
for (let i = 0; i < steps; i++) model.trainStep(train.x, train.y, n, 1e-3);
const logits = model.predict(train.x, n, 5);
const hash = async (a: Float32Array) =>
  Array.from(
    new Uint8Array(await crypto.subtle.digest("SHA-256", a.slice().buffer)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("").slice(0, 16);
console.log(`${model.describe(n)} | ${[...model.impls].sort().join(", ")}`);
for (const [k, a] of Object.entries({ params: model.params, m: model.m, v: model.v, stats: model.stats, logits })) {
  console.log(`${k} ${await hash(a)}`);
}
