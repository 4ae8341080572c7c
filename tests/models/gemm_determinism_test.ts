// The deterministic GEMM of models/compute/blas.ts: bit-identical to one plain 1-thread
// OpenBLAS Haswell sgemm (the committed runs' numerics) for every shape, transpose, alpha
// and beta of tests/support/gemm_child.ts, whatever the pool size and whatever the machine's
// environment presets (kernel family, L2 size, block factor, OpenBLAS threads).
import assert from "node:assert/strict";
import { loadBlas, rowBlocks } from "../../models/compute/blas.ts";

const CHILD = new URL("../support/gemm_child.ts", import.meta.url).pathname;
const hasBlas = loadBlas().blas !== null;

/** Clean environment: none of the variables that steer OpenBLAS or the pool. */
function cleanEnv(): Record<string, string> {
  const env = Deno.env.toObject();
  for (const k of Object.keys(env)) if (/^(OPENBLAS_|GOTO_|OMP_|PIPELINE_THREADS)/.test(k)) delete env[k];
  return env;
}

async function child(mode: "ref" | "ours", env: Record<string, string>) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CHILD, mode],
    env: { ...cleanEnv(), ...env },
    clearEnv: true,
  }).output();
  const err = new TextDecoder().decode(out.stderr);
  assert.ok(out.success, `${mode} ${JSON.stringify(env)}: ${err}`);
  return JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!) as {
    description: string;
    digests: string[];
  };
}

Deno.test("rowBlocks cuts at 12-row groups inside each SGEMM_R block and covers every row once", () => {
  const R = 104512;
  for (const m of [1, 11, 12, 13, 200, 1609, R - 1, R, R + 1, 2 * R + 301]) {
    for (const parts of [1, 2, 3, 4, 7]) {
      const blocks = rowBlocks(m, parts);
      let next = 0;
      for (const [i, pieces] of blocks.entries()) {
        assert.ok(pieces.length <= parts);
        for (const [a, b] of pieces) {
          assert.equal(a, next, `m=${m} parts=${parts}: contiguous`);
          assert.ok(b > a && b <= Math.min(m, (i + 1) * R), `m=${m} parts=${parts}: [${a}, ${b}) inside block ${i}`);
          assert.equal((a - i * R) % 12, 0, `m=${m} parts=${parts}: ${a} starts a 12-row group`);
          next = b;
        }
      }
      assert.equal(next, m);
    }
  }
});

Deno.test({
  name: "sgemm over 1–4 threads, under preset OpenBLAS variables, equals one plain 1-thread Haswell call",
  ignore: !hasBlas,
  async fn() {
    const ref = await child("ref", { OPENBLAS_CORETYPE: "Haswell", OPENBLAS_NUM_THREADS: "1" });
    assert.match(ref.description, /Haswell, 1 threads/);
    // The check has teeth: a plain 2-thread call does differ from the reference somewhere.
    const twoThreads = await child("ref", { OPENBLAS_CORETYPE: "Haswell", OPENBLAS_NUM_THREADS: "2" });
    assert.ok(twoThreads.digests.some((d, i) => d !== ref.digests[i]), "plain 2-thread OpenBLAS matched everywhere");
    const runs: Record<string, string>[] = [
      { PIPELINE_THREADS: "1" },
      { PIPELINE_THREADS: "2" },
      { PIPELINE_THREADS: "3" },
      { PIPELINE_THREADS: "4" },
      { PIPELINE_THREADS: "2", OPENBLAS_CORETYPE: "Zen", OPENBLAS_NUM_THREADS: "2" },
      { PIPELINE_THREADS: "3", OPENBLAS_CORETYPE: "SkylakeX", OPENBLAS_L2_SIZE: "65536" },
      { PIPELINE_THREADS: "2", OPENBLAS_NUM_THREADS: "2", OPENBLAS_BLOCK_FACTOR: "50", OMP_NUM_THREADS: "2" },
    ];
    for (const env of runs) {
      const got = await child("ours", env);
      assert.match(got.description, /Haswell, 1-thread kernels over \d threads? \(deterministic\)/);
      assert.ok(got.description.includes(`over ${env.PIPELINE_THREADS} thread`), got.description);
      got.digests.forEach((d, i) => assert.equal(d, ref.digests[i], `${JSON.stringify(env)}: case ${d}`));
    }
  },
});

/** Bitwise equality of two float arrays (NaN payloads and signed zeros included). */
function sameBits(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length &&
    new Uint32Array(a.buffer, a.byteOffset, a.length).every((x, i) =>
      x === new Uint32Array(b.buffer, b.byteOffset, b.length)[i]
    );
}

Deno.test({
  name: "training runs bit-identically on 1 and on all pool threads: own-kernel VGG, tfjs MLP with Adam",
  ignore: !hasBlas,
  async fn() {
    const { getGemm } = await import("../../models/compute/gemm.ts");
    const { Vgg } = await import("../../models/cnn/vgg.ts");
    const { initCompute } = await import("../../models/compute/backend.ts");
    const { Rng } = await import("../../data/rng.ts");
    const { TorchMlp } = await import("../../models/torch_mlp/model.ts");
    const { Adam } = await import("../../models/torch_mlp/adam.ts");
    const { makeTrainStep } = await import("../../models/torch_mlp/train.ts");
    const gemm = await getGemm();
    await initCompute();
    const blas = loadBlas().blas!;
    const x = Float32Array.from({ length: 16 * 3072 }, (_, i) => 60 * Math.sin(i * 0.37));
    const y = Uint8Array.from({ length: 16 }, (_, i) => (i * 7) % 10);
    const results: Float32Array[][] = [];
    for (const threads of [1, blas.threads]) {
      blas.limitThreads(threads);
      const vgg = new Vgg({ width: 1 / 4, size: 32, classes: 10 }, gemm, 3);
      for (let s = 0; s < 2; s++) vgg.trainStep(x, y, 16, 1e-3);
      const mlp = new TorchMlp(
        { inputs: 3072, hidden: [300, 50], classes: 10, dropout: false, batchnorm: "none" },
        new Rng(1),
      );
      const adam = new Adam(mlp.trainable(), 1e-3);
      const step = makeTrainStep(mlp, adam);
      for (let s = 0; s < 2; s++) step(x, y, []);
      results.push([
        vgg.params.slice(),
        vgg.predict(x, 16).slice(),
        ...mlp.variables().map((v) => v.dataSync() as Float32Array),
      ]);
      mlp.dispose();
      adam.dispose();
    }
    blas.limitThreads(blas.threads);
    results[1].forEach((r, i) =>
      assert.ok(sameBits(r, results[0][i]), `array ${i} differs between 1 and ${blas.threads} threads`)
    );
  },
});
