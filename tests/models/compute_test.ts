// The compute layer's kernels against tfjs's cpu backend (the reference), on small shapes:
// the fixed wasm kernels alone, and with OpenBLAS (skipped only where it is missing).
import assert from "node:assert/strict";
import { initCompute, tf } from "../../models/compute/backend.ts";
import { loadBlas } from "../../models/compute/blas.ts";
import { getGemm } from "../../models/compute/gemm.ts";
import { col2im, geom, im2col, transpose } from "../../models/compute/im2col.ts";
import { rand } from "../support/arrays.ts";

const hasBlas = loadBlas().blas !== null;
const modes = [{ name: "wasm", native: false }, ...(hasBlas ? [{ name: "wasm+openblas", native: true }] : [])];

function close(got: Float32Array, want: Float32Array, what: string, tol = 1e-4) {
  assert.equal(got.length, want.length, `${what}: length`);
  let scale = 1e-6;
  for (const v of want) scale = Math.max(scale, Math.abs(v));
  for (let i = 0; i < got.length; i++) {
    if (!(Math.abs(got[i] - want[i]) <= tol * scale)) {
      assert.fail(`${what}: element ${i} is ${got[i]}, want ${want[i]} (scale ${scale})`);
    }
  }
}

/** Runs fn on the cpu backend and on each wasm mode; compares every output. */
async function compare(what: string, fn: () => tf.Tensor[]) {
  await tf.setBackend("cpu");
  const want = tf.tidy(fn).map((t) => {
    const v = t.dataSync() as Float32Array;
    t.dispose();
    return v;
  });
  for (const m of modes) {
    await initCompute({ native: m.native });
    const got = tf.tidy(fn).map((t) => {
      const v = t.dataSync() as Float32Array;
      t.dispose();
      return v;
    });
    got.forEach((g, i) => close(g, want[i], `${what} [${m.name}] output ${i}`));
  }
}

Deno.test("initCompute says which backend it chose", async () => {
  const d = await initCompute();
  assert.match(d, /^wasm \(tfjs 4\.22\.0/);
  assert.equal(tf.getBackend(), "wasm");
  if (hasBlas) assert.match(d, /OpenBLAS/);
  else assert.match(d, /not loaded|off/);
});

Deno.test("without OpenBLAS the fixed wasm kernels serve, and the description says why", async () => {
  const script = `
    import { initCompute, tf } from ${JSON.stringify(new URL("../../models/compute/backend.ts", import.meta.url).href)};
    console.log(await initCompute());
    console.log(tf.matMul(tf.ones([2, 3]), tf.ones([2, 3]), false, true).dataSync().join(","));`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", script],
    env: { COMPUTE_BLAS: "/nonexistent/libopenblas.so.0" },
  }).output();
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  assert.match(lines[0], /^wasm .*OpenBLAS not loaded .*libopenblas0-pthread/);
  assert.equal(lines.at(-1), "3,3,3,3");
});

Deno.test("BatchMatMul, every transpose and batch broadcast, matches cpu", async () => {
  for (const [tA, tB] of [[false, false], [true, false], [false, true], [true, true]]) {
    for (const [ba, bb] of [[[], []], [[3], [3]], [[2, 3], [1]], [[1], [4]]] as number[][][]) {
      const [m, k, n] = [5, 7, 3];
      const aShape = [...ba, ...(tA ? [k, m] : [m, k])], bShape = [...bb, ...(tB ? [n, k] : [k, n])];
      const av = rand(aShape.reduce((x, y) => x * y, 1), 1), bv = rand(bShape.reduce((x, y) => x * y, 1), 2);
      await compare(`matMul tA=${tA} tB=${tB} ${aShape}×${bShape}`, () => [
        tf.matMul(tf.tensor(av, aShape), tf.tensor(bv, bShape), tA, tB),
      ]);
    }
  }
});

Deno.test("matMul gradients (transposed matMuls) match cpu", async () => {
  const av = rand(6 * 9, 3), bv = rand(9 * 4, 4), r = rand(6 * 4, 5);
  await compare("matMul grads", () => {
    const f = (a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.matMul(a, b), tf.tensor2d(r, [6, 4])));
    return tf.grads(f)([tf.tensor2d(av, [6, 9]), tf.tensor2d(bv, [9, 4])]);
  });
});

Deno.test("_FusedMatMul with bias, relu and transposes matches cpu", async () => {
  const av = rand(4 * 6, 6), bv = rand(6 * 5, 7), bias = rand(5, 8);
  for (const [tA, tB] of [[false, false], [true, true]]) {
    for (const activation of ["linear", "relu", "elu"] as const) {
      await compare(`fused matMul ${activation} tA=${tA} tB=${tB}`, () => [
        tf.fused.matMul({
          a: tA ? tf.tensor2d(av, [6, 4]) : tf.tensor2d(av, [4, 6]),
          b: tB ? tf.tensor2d(bv, [5, 6]) : tf.tensor2d(bv, [6, 5]),
          transposeA: tA,
          transposeB: tB,
          bias: tf.tensor1d(bias),
          activation,
        }),
      ]);
    }
  }
});

Deno.test("Conv2D and its gradients (filter, input) match cpu", async () => {
  const cases: [number[], number[], 1 | 2, "same" | "valid" | number][] = [
    [[2, 6, 6, 3], [3, 3, 3, 4], 1, 1],
    [[2, 7, 5, 2], [3, 3, 2, 3], 2, "same"],
    [[1, 6, 6, 4], [2, 2, 4, 2], 1, "valid"],
    [[3, 5, 5, 2], [3, 3, 2, 5], 2, 0],
  ];
  for (const [xs, fs, s, pad] of cases) {
    const xv = rand(xs.reduce((a, b) => a * b), 9), fv = rand(fs.reduce((a, b) => a * b), 10);
    await compare(`conv2d x=${xs} f=${fs} s=${s} pad=${pad}`, () => {
      const x = tf.tensor4d(xv, xs as [number, number, number, number]);
      const f = tf.tensor4d(fv, fs as [number, number, number, number]);
      const y = tf.conv2d(x, f, s, pad);
      const r = tf.tensor(rand(y.size, 11), y.shape);
      const g = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
        tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, s, pad), r))
      )([x, f]);
      return [y, ...g];
    });
  }
});

Deno.test("MaxPoolGrad matches cpu, windows of negative values included", async () => {
  const xs: [number, number, number, number] = [2, 6, 6, 3];
  const xv = rand(2 * 6 * 6 * 3, 12).map((v) => v - 2); // all negative: the wasm bug's case
  await compare("maxPool grad 3x3 s2 p1", () => {
    const x = tf.tensor4d(xv, xs);
    const padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], -1e9);
    const r = tf.tensor(rand(2 * 3 * 3 * 3, 13), [2, 3, 3, 3]);
    return [tf.grad((a: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(a as tf.Tensor4D, 3, 2, "valid"), r)))(padded)];
  });
  await compare("maxPool grad 2x2 s2 same", () => {
    const x = tf.tensor4d(xv, xs);
    const r = tf.tensor(rand(2 * 3 * 3 * 3, 14), [2, 3, 3, 3]);
    return [tf.grad((a: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(a as tf.Tensor4D, 2, 2, "same"), r)))(x)];
  });
});

Deno.test("im2col/col2im are adjoint (⟨im2col x, c⟩ = ⟨x, col2im c⟩)", () => {
  const g = geom(2, 5, 4, 3, 3, 2, 1);
  const n = g.n * g.h * g.w * g.c, rows = g.n * g.oh * g.ow, k = g.kh * g.kw * g.c;
  const x = rand(n, 15), c = rand(rows * k, 16);
  const col = new Float32Array(rows * k), dx = new Float32Array(n);
  im2col(x, g, col);
  col2im(c, g, dx);
  let lhs = 0, rhs = 0;
  for (let i = 0; i < col.length; i++) lhs += col[i] * c[i];
  for (let i = 0; i < n; i++) rhs += x[i] * dx[i];
  assert.ok(Math.abs(lhs - rhs) < 1e-4 * Math.abs(lhs), `${lhs} vs ${rhs}`);
});

Deno.test("transpose, odd and power-of-two shapes", () => {
  for (const [r, c] of [[1, 1], [3, 17], [64, 32], [33, 40]]) {
    const x = rand(r * c, r + c), out = new Float32Array(r * c);
    transpose(x, r, c, out);
    for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) assert.equal(out[j * r + i], x[i * c + j]);
  }
});

Deno.test("getGemm (native and wasm) computes op(A)·op(B) + beta·C", async () => {
  for (const native of hasBlas ? [false, true] : [false]) {
    const gemm = await getGemm({ native });
    for (const [tA, tB] of [[false, false], [true, false], [false, true], [true, true]]) {
      const [m, n, k] = [4, 3, 5];
      const a = rand(m * k, 17), b = rand(k * n, 18), c0 = rand(m * n, 19);
      const want = new Float32Array(m * n);
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          let s = 0.5 * c0[i * n + j];
          for (let p = 0; p < k; p++) s += (tA ? a[p * m + i] : a[i * k + p]) * (tB ? b[j * k + p] : b[p * n + j]);
          want[i * n + j] = s;
        }
      }
      const c = c0.slice();
      gemm.gemm(tA, tB, m, n, k, a, b, c, 0.5);
      close(c, want, `${gemm.name} tA=${tA} tB=${tB}`, 1e-5);
    }
  }
});

Deno.test("fused Adam (in place by wasm SIMD, the kernel, the TypeScript loop) is bit-identical to Adam's tfjs ops", async () => {
  const { Adam } = await import("../../models/torch_mlp/adam.ts");
  const { adamConstants, adamRange, hasSimdAdam } = await import("../../models/compute/adam_kernel.ts");
  for (const m of modes) {
    await initCompute({ native: m.native });
    assert.ok(hasSimdAdam(tf.backend()), "the SIMD loop serves the wasm backend");
    // Sizes with every remainder mod 4 (the SIMD loop's tail), one over the pool's threshold.
    const shapes = [[7, 13], [5], [2, 3], [3], [300, 301]];
    const sizes = shapes.map((s) => s.reduce((a, b) => a * b, 1));
    // Gradients over many magnitudes: zeros, subnormal squares, large values.
    const grads = (step: number) =>
      sizes.map((n, i) => {
        const g = rand(n, 100 * step + i);
        return g.map((x, j) => j % 11 === 0 ? 0 : x * 10 ** ((j % 9) - (j % 7 === 0 ? 25 : 4)));
      });
    const run = (mode: "ops" | "kernel" | "in place") => {
      // Made in a tidy, as the models make them: nothing else holds their data, so in place applies.
      const params = tf.tidy(() => shapes.map((s, i) => tf.variable(tf.tensor(rand(sizes[i], 50 + i), s))));
      const adam = new Adam(params, 1e-3);
      adam.fusedKernel = mode !== "ops";
      adam.inPlace = mode === "in place";
      for (let step = 1; step <= 4; step++) {
        const ids = params.map((p) => p.dataId);
        const g = grads(step).map((x, i) => tf.tensor(x, shapes[i]));
        adam.step(g);
        tf.dispose(g);
        const same = params.map((p, i) => p.dataId === ids[i]);
        assert.deepEqual(same, params.map(() => mode === "in place"), `[${m.name}] ${mode}: updated in place?`);
      }
      const out = [...params, ...adam.m, ...adam.v].map((t) => t.dataSync() as Float32Array);
      tf.dispose(params);
      adam.dispose();
      return out;
    };
    // The TypeScript loop (pool workers, and the fallback) on plain arrays.
    const ts = () => {
      const p = sizes.map((n, i) => rand(n, 50 + i)), mm = sizes.map((n) => new Float32Array(n));
      const vv = sizes.map((n) => new Float32Array(n));
      for (let step = 1; step <= 4; step++) {
        const c = adamConstants({
          b1: 0.9,
          b2: 0.999,
          eps: 1e-8,
          stepSize: 1e-3 / (1 - 0.9 ** step),
          sqrtBc2: Math.sqrt(1 - 0.999 ** step),
        });
        grads(step).forEach((g, i) => adamRange(p[i], g, mm[i], vv[i], p[i], mm[i], vv[i], c, 0, sizes[i]));
      }
      return [...p, ...mm, ...vv];
    };
    const want = run("ops");
    for (
      const [name, got] of [["kernel", run("kernel")], ["in place", run("in place")], ["TypeScript", ts()]] as const
    ) {
      got.forEach((g, i) => {
        const bad = g.findIndex((x, j) => !Object.is(x, want[i][j]));
        assert.equal(bad, -1, `[${m.name}] ${name}: tensor ${i} element ${bad}: ${g[bad]} vs ${want[i][bad]}`);
      });
    }
  }
});

Deno.test("Adam does not update in place a variable whose data another tensor shares", async () => {
  const { Adam } = await import("../../models/torch_mlp/adam.ts");
  await initCompute();
  const p = tf.tidy(() => tf.variable(tf.tensor1d([1, 2, 3, 4, 5])));
  const alias = tf.reshape(p, [5, 1]); // shares p's data
  const adam = new Adam([p], 0.1);
  const id = p.dataId;
  tf.tidy(() => adam.step([tf.tensor1d([1, 1, 1, 1, 1])]));
  assert.notEqual(p.dataId, id, "assigned, not written in place");
  assert.deepEqual([...alias.dataSync()], [1, 2, 3, 4, 5]);
  assert.ok(p.dataSync()[0] < 1);
  tf.dispose([p, alias]);
  adam.dispose();
});

Deno.test("Identity shares its input's data (no copy): a clone outlives its source", async () => {
  for (const m of modes) {
    await initCompute({ native: m.native });
    const x = tf.tensor2d([1, 2, 3, 4], [2, 2]);
    const before = tf.memory().numDataBuffers;
    const y = tf.clone(x);
    assert.equal(tf.memory().numDataBuffers, before, `[${m.name}] no new buffer`);
    x.dispose();
    assert.deepEqual([...y.dataSync()], [1, 2, 3, 4]);
    y.dispose();
    assert.equal(tf.memory().numDataBuffers, before - 1, `[${m.name}] freed with its last tensor`);
  }
});

Deno.test("filledTensor writes its values in place (wasm heap) or through an array (other backends)", async () => {
  const { filledTensor } = await import("../../models/compute/backend.ts");
  const want = rand(12, 7);
  for (const backend of ["wasm", "cpu"]) {
    if (backend === "wasm") await initCompute();
    else await tf.setBackend("cpu");
    const t = filledTensor([3, 4], (x) => x.set(want));
    assert.deepEqual(t.shape, [3, 4]);
    assert.deepEqual(t.dataSync(), want, backend);
    t.dispose();
    const before = tf.backend().numDataIds();
    assert.throws(() =>
      filledTensor([2], () => {
        throw new Error("no");
      }), /no/);
    assert.equal(tf.backend().numDataIds(), before, `${backend}: nothing left behind by a failed fill`);
  }
  await initCompute();
});
