// The oneDNN VGG against the hand-written one (models/cnn/vgg.ts, itself checked against
// tfjs autograd in tests/models/cnn_test.ts): every layer's gradients (conv backward-weights, batch
// norm backward with the fused ReLU, through max-pool and conv backward-data), the running
// statistics and inference logits on small shapes; a few training steps; bit-identical
// results across OpenMP thread counts (subprocesses); without the library, one line naming the fix.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { makeSyntheticSplits } from "../../data/dataset.ts";
import { getGemm } from "../../models/compute/gemm.ts";
import { loadOnednn, openOnednn } from "../../models/compute/onednn.ts";
import { simdAdam } from "../../models/compute/simd_adam.ts";
import { adam } from "../../models/cnn/layers.ts";
import { OnednnVgg } from "../../models/cnn/onednn_vgg.ts";
import { run } from "../../models/cnn/stage.ts";
import { makeTestContext } from "../support/stage_context.ts";
import type { TrainingHistory } from "../../pipeline/types.ts";
import { join } from "node:path";
import { writeSplits } from "../../data/dataset.ts";
import { Vgg, type VggConfig } from "../../models/cnn/vgg.ts";
import { close, rand } from "../support/arrays.ts";

const { dnnl, reason } = loadOnednn();
const ignore = !dnnl;
if (ignore) console.log(`oneDNN tests skipped: ${reason}`);

/** Both models from the same seed; the oneDNN one must start from the same parameters. */
async function pair(cfg: VggConfig, seed: number) {
  const ref = new Vgg(cfg, await getGemm(), seed), ours = new OnednnVgg(cfg, dnnl!, seed);
  assert.deepEqual(ours.vggLayout(), ref.params, "initialisation");
  return { ref, ours };
}

for (
  const [cfg, n] of [[{ width: 1 / 16, size: 8, classes: 10 }, 4], [
    { width: 1 / 4, size: 32, classes: 10 },
    6,
  ]] as const
) {
  Deno.test({
    name: `oneDNN VGG (width ${cfg.width}, ${cfg.size}×${cfg.size}, batch ${n}): every gradient, statistics, logits`,
    ignore,
    async fn() {
      const { ref, ours } = await pair(cfg, 3);
      const x = rand(n * cfg.size * cfg.size * 3, 15, -60, 60),
        labels = Uint8Array.from({ length: n }, (_, i) => i % 10);
      const want = ref.lossAndGrads(x, labels, n), got = ours.lossAndGrads(x, labels, n);
      close([got.loss], [want.loss], "loss", 1e-5);
      assert.equal(got.correct, want.correct);
      const g = ours.vggLayout(ours.grads);
      let off = 0;
      ref.convs.forEach((l, i) => {
        const dBeta = l.g.beta.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        for (const [name, a] of Object.entries(l.g)) {
          const mine = g.subarray(off, off + a.length);
          // The conv bias's gradient is Σ dz, zero up to rounding in both: only its size is checked.
          if (name === "b") close(mine, new Float32Array(a.length), `conv${i} db`, 0, 1e-4 * dBeta + 1e-7);
          else close(mine, a, `conv${i} d${name}`, 2e-3, 1e-6);
          off += a.length;
        }
      });
      close(g.subarray(off), ref.grads.subarray(off), "linear", 1e-3);
      close(ours.stats, ref.stats, "running statistics", 1e-4);
      close(ours.predict(x, n, 3), ref.predict(x, n, 3), "inference logits", 1e-4);
    },
  });
}

Deno.test({
  name: "oneDNN VGG: a few Adam steps follow the hand-written VGG's (close, not equal)",
  ignore,
  async fn() {
    const cfg = { width: 1 / 8, size: 32, classes: 10 }, n = 8;
    const { ref, ours } = await pair(cfg, 1);
    const { train } = makeSyntheticSplits(n, 1);
    for (let i = 0; i < 4; i++) {
      const a = ref.trainStep(train.x, train.y, n, 1e-3), b = ours.trainStep(train.x, train.y, n, 1e-3);
      close([b.loss], [a.loss], `loss at step ${i + 1}`, 1e-3);
    }
    // Conv biases get a gradient that is zero up to rounding (BatchNorm removes them), which
    // Adam turns into ±lr steps of either sign: those only stay within 4·lr.
    const got = ours.vggLayout();
    let off = 0;
    for (const [i, l] of ref.convs.entries()) {
      for (const [name, a] of Object.entries(l.p)) {
        const mine = got.subarray(off, off + a.length);
        if (name === "b") close(mine, a, `conv${i} b`, 0, 4 * 4e-3);
        else close(mine, a, `conv${i} ${name} after 4 steps`, 1e-3);
        off += a.length;
      }
    }
    close(got.subarray(off), ref.params.subarray(off), "linear after 4 steps", 1e-3);
    close(ours.stats, ref.stats, "running statistics after 4 steps", 1e-3);
  },
});

Deno.test({
  name: "oneDNN VGG: bit-identical parameters, moments, statistics and logits with 1, 2 and 4 OpenMP threads",
  ignore,
  async fn() {
    const child = fileURLToPath(new URL("../support/onednn_steps.ts", import.meta.url));
    const run = async (threads: number) => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", child, "0.25", "8", "2"],
        env: { OMP_NUM_THREADS: String(threads) },
        stderr: "inherit",
      }).output();
      assert.ok(out.success, `child with ${threads} thread(s) failed`);
      const [desc, ...hashes] = new TextDecoder().decode(out.stdout).trim().split("\n");
      // Width 1/4: 16 channels in the first layer = 2 blocks of 8, so at most 2 threads run.
      assert.match(desc, new RegExp(`AVX2 pinned, ${Math.min(threads, 2)} threads?, deterministic`));
      return hashes;
    };
    const [one, two, four] = [await run(1), await run(2), await run(4)];
    assert.deepEqual(two, one);
    assert.deepEqual(four, one);
  },
});

Deno.test("oneDNN absent: null with a reason that names the file and the package", () => {
  const r = openOnednn("/nonexistent/libdnnl.so.2");
  assert.equal(r.dnnl, null);
  assert.match(r.reason, /oneDNN not loaded \(.*\/nonexistent\/libdnnl\.so\.2.*\); install Debian's libdnnl2/);
});

Deno.test("train-cnn without libdnnl2: one line naming the fix, no run on other kernels under the oneDNN key", async () => {
  const child = fileURLToPath(new URL("../support/onednn_absent_child.ts", import.meta.url));
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", child],
    env: { COMPUTE_ONEDNN: "/nonexistent/libdnnl.so.2" },
    stderr: "inherit",
  }).output();
  assert.ok(out.success);
  const r = JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!);
  assert.match(r.message, /^train-cnn: compute=onednn but oneDNN not loaded \(.*\/nonexistent\/libdnnl\.so\.2/);
  assert.equal(
    r.fix,
    "apt-get install libdnnl2, or --set train-cnn.compute=own (own kernels + GEMM: other bits, its own cached run)",
  );
});

Deno.test("wasm SIMD Adam matches layers.ts's adam (float32 rounding apart)", () => {
  const n = 1000, A = simdAdam(4 * n);
  const [p, g, m, v] = [0, 1, 2, 3].map((k) => new Float32Array(A.memory.buffer, 4 * k * n, n));
  p.set(rand(n, 1));
  const p2 = p.slice(), m2 = new Float32Array(n), v2 = new Float32Array(n);
  for (let t = 1; t <= 4; t++) {
    g.set(rand(n, 10 + t, -0.1, 0.1));
    A.step(p, g, m, v, t, 1e-3);
    adam(p2, g, m2, v2, t, 1e-3);
  }
  close(p, p2, "parameters", 1e-6);
  close(m, m2, "first moments", 1e-5);
  close(v, v2, "second moments", 1e-5);
});

Deno.test({
  name: "train-cnn with compute=onednn: its description, and kill → resume ends exactly as an uninterrupted run",
  ignore,
  async fn() {
    const dataDir = await Deno.makeTempDir({ prefix: "cnn-onednn-data-" });
    await writeSplits(dataDir, makeSyntheticSplits(40, 20));
    const params = { lr: 1e-3, batch: 8, steps: 5, eval_every: 3, width: 0.25, seed: 42, compute: "onednn" as const };
    const opts = { stage: "train-cnn", params, inputs: { preprocess: dataDir }, quiet: true };
    const a = await makeTestContext(opts);
    await run(a);
    const histA: TrainingHistory = JSON.parse(await Deno.readTextFile(join(a.outDir, "history.json")));
    assert.match(
      String(a.recorded.compute),
      /^oneDNN 2\.\d+\.\d+ \(AVX2 pinned, \d threads?, deterministic(; native [^)]+)?\)$/,
    );
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
    await a.cleanup();
    await b.cleanup();
    await Deno.remove(dataDir, { recursive: true });
  },
});
