// The native kernels of the oneDNN VGG, bit for bit against what they replace: the
// backward-weights (models/compute/conv_bwd_weights.ts) against oneDNN's jit:avx2 one on every
// shape of the study's VGG where the model uses it and a few beyond, and Adam
// (models/compute/native_adam.ts) against the wasm SIMD one, on 1 and 2 threads; the model
// with and without them (subprocesses); the fallbacks' reasons (no compiler, a source that
// does not build).
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { loadConvBwdWeights } from "../../models/compute/conv_bwd_weights.ts";
import { nativeLibrary } from "../../models/compute/native.ts";
import { loadNativeAdam } from "../../models/compute/native_adam.ts";
import { simdAdam } from "../../models/compute/simd_adam.ts";
import { loadOnednn, Prop, Tag } from "../../models/compute/onednn.ts";
import { onednnBwdWeights } from "../../models/cnn/onednn_vgg.ts";
import { rand } from "../support/arrays.ts";

const { dnnl, reason: noDnnl } = loadOnednn();
const { kernel, reason: noKernel } = loadConvBwdWeights();
const ignore = !dnnl || !kernel;
if (ignore) console.log(`native backward-weights tests skipped: ${noDnnl || noKernel}`);

/** The first element where a and b differ as bits, or -1. */
function firstDiff(a: Float32Array, b: Float32Array): number {
  const [x, y] = [new Uint32Array(a.buffer, a.byteOffset, a.length), new Uint32Array(b.buffer, b.byteOffset, b.length)];
  return x.findIndex((v, i) => v !== y[i]);
}

// [cin, cout, h, batch]: the VGG's layers 2-7 at width 1 (8×8 128→256 and 256→256, 4×4
// 256→512 and 512→512, 2×2 512→512: the last on oneDNN's zero-padded path), then 16×16, 1×1
// and an odd size.
const shapes = [
  [128, 256, 8, 8],
  [256, 256, 8, 8],
  [256, 512, 4, 16],
  [512, 512, 4, 8],
  [512, 512, 2, 32],
  [64, 128, 16, 4],
  [16, 32, 1, 8],
  [8, 16, 5, 3],
];
for (const [cin, cout, h, n] of shapes) {
  Deno.test({
    name: `native backward-weights ${h}×${h} ${cin}→${cout}, batch ${n}: oneDNN's bits on 1 and 2 threads`,
    ignore,
    fn() {
      const d = dnnl!, k = kernel!;
      const xMd = d.md([n, cin, h, h], Tag.nChw8c), zMd = d.md([n, cout, h, h], Tag.nChw8c);
      const wMd = d.md([cout, cin, 3, 3], Tag.OIhw8i8o);
      const x = d.mem(xMd, rand(n * cin * h * h, cin + h)), dz = d.mem(zMd, rand(n * cout * h * h, cout * h));
      const spec = { cin, cout, h, pool: false, ho: h, w: 0, wn: 9 * cin * cout, b: 0, stat: 0 };
      const hint = d.convFwd(
        Prop.training,
        d.md([n, cin, h, h], Tag.any),
        wMd,
        null,
        d.md([n, cout, h, h], Tag.any),
        1,
        1,
      );
      const want = { dw: d.mem(wMd), db: d.mem(d.md([cout], Tag.a)) };
      const ref = onednnBwdWeights(d, Prop.training, hint, x, dz, want.dw, want.db, spec, n);
      assert.match(ref.impl, /^jit/, "oneDNN's reference is its direct jit kernel");
      d.setThreads(1);
      ref.run();
      const scratch = new Float32Array(k.scratchFloats(n, cin, cout, h));
      for (const threads of [1, 2]) {
        d.setThreads(threads);
        const dw = new Float32Array(9 * cin * cout).fill(NaN), db = new Float32Array(cout).fill(NaN);
        k.run(n, cin, cout, h, x.data, dz.data, dw, db, scratch);
        const [iw, ib] = [firstDiff(dw, want.dw.data), firstDiff(db, want.db.data)];
        assert.equal(iw, -1, `${threads} thread(s): weight ${iw} is ${dw[iw]}, oneDNN's ${want.dw.data[iw]}`);
        assert.equal(ib, -1, `${threads} thread(s): bias ${ib} is ${db[ib]}, oneDNN's ${want.db.data[ib]}`);
      }
      d.setThreads(d.threads);
    },
  });
}

Deno.test({
  name:
    "native Adam: the wasm SIMD Adam's bits over 10 steps (subnormals, a tail of 4 past the 8-wide loop) on 1 and 2 threads",
  ignore: !dnnl || !loadNativeAdam().step,
  fn() {
    const len = 100_004, native = loadNativeAdam().step!;
    for (const threads of [1, 2]) {
      dnnl!.setThreads(threads);
      const wasm = simdAdam(4 * len),
        at = (k: number) => new Float32Array(wasm.memory.buffer, k * 4 * len, len);
      const [p, g, m, v] = [0, 1, 2, 3].map(at), mine = [0, 1, 2, 3].map(() => new Float32Array(len));
      p.set(rand(len, 1)), mine[0].set(p);
      for (let t = 1; t <= 10; t++) {
        const grad = rand(len, 100 + t).map((x, i) => i % 7 === 0 ? x * 1e-40 : i % 11 === 0 ? 0 : x);
        g.set(grad), mine[1].set(grad);
        wasm.step(p, g, m, v, t, 1e-3);
        native(mine[0], mine[1], mine[2], mine[3], t, 1e-3);
      }
      ["p", "g", "m", "v"].forEach((name, k) => {
        const i = firstDiff(mine[k], [p, g, m, v][k]);
        assert.equal(
          i,
          -1,
          `${threads} thread(s): ${name}[${i}] is ${mine[k][i]}, the wasm Adam's ${[p, g, m, v][k][i]}`,
        );
      });
      assert.ok(mine[2].some((x) => x !== 0 && Math.abs(x) < 1.2e-38), "subnormal moments were exercised");
    }
    dnnl!.setThreads(dnnl!.threads);
  },
});

Deno.test({
  name: "oneDNN VGG with the native backward-weights: the same bits as without it (COMPUTE_NATIVE=off)",
  ignore,
  async fn() {
    const child = fileURLToPath(new URL("../support/onednn_steps.ts", import.meta.url));
    const run = async (native: string) => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", child, "0.5", "8", "2"], // width 1/2: layers 2-7 on 8×8 images and less
        env: { COMPUTE_NATIVE: native, OMP_NUM_THREADS: "2" },
        stderr: "inherit",
      }).output();
      assert.ok(out.success, `child with COMPUTE_NATIVE=${native} failed`);
      const [desc, ...hashes] = new TextDecoder().decode(out.stdout).trim().split("\n");
      return { desc, hashes };
    };
    const [on, off] = [await run("on"), await run("off")];
    assert.match(
      on.desc,
      /deterministic; native backward-weights \+ Adam\) \| conv bwd weights jit:avx2, conv bwd weights native$/,
    );
    assert.match(off.desc, /deterministic\) \| conv bwd weights jit:avx2$/);
    assert.deepEqual(on.hashes, off.hashes);
  },
});

Deno.test("native kernels: without a compiler, or with a source that does not build, null and the reason", () => {
  const dir = Deno.makeTempDirSync();
  const symbols = { f: { parameters: [], result: "i32" } } as const;
  const saved = Deno.env.get("CC");
  try {
    Deno.env.set("PIPELINE_NATIVE_DIR", dir);
    Deno.env.set("CC", "/nonexistent/cc");
    const a = nativeLibrary("t", "int f(void) { return 1; }", ["-O2"], symbols);
    assert.equal(a.lib, null);
    assert.match(a.reason, /^t: no C compiler \(\/nonexistent\/cc: .*\); Debian: apt-get install gcc/);
    Deno.env.delete("CC");
    const b = nativeLibrary("t", "int f(void) { return }", ["-O2"], symbols);
    assert.equal(b.lib, null);
    assert.match(b.reason, /^t: gcc could not build it: .*error/);
    const c = nativeLibrary("t", "int f(void) { return 7; }", ["-O2"], symbols);
    assert.equal(c.lib?.symbols.f(), 7);
    c.lib!.close();
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => !n.endsWith(".so")), []);
  } finally {
    saved === undefined ? Deno.env.delete("CC") : Deno.env.set("CC", saved);
    Deno.env.delete("PIPELINE_NATIVE_DIR");
    Deno.removeSync(dir, { recursive: true });
  }
});
