// The order-keeping wide GEMM (tests/support/gemm_wide.c) against the deterministic GEMM
// (models/compute/blas.ts: OpenBLAS 0.3.21 Haswell, 1-thread calls), bit for bit: GA1's
// products at the full batch of 1609 and the shapes that reach every tile, for each vector
// width this CPU runs — 8 lanes (AVX2), 16 lanes as two AVX2 halves (AVX-512's tiles and
// packing on any AVX2 CPU), and AVX-512 itself where the CPU has it — on 1, 2 and 3
// threads. The second pass over OpenBLAS's two-chain tiles is needed: without it, bits differ.
import assert from "node:assert/strict";
import { loadBlas } from "../../models/compute/blas.ts";
import { rand } from "../support/arrays.ts";
import { differingBits, EDGE_SHAPES, ga1Shapes, label, type Shape, shape } from "../support/gemm_shapes.ts";
import { buildWideGemm, loadWideGemm, type WideGemm, type WideIsa } from "../support/gemm_wide.ts";

const { blas, reason: noBlas } = loadBlas();
const isas: WideIsa[] = [8, 16, 512];
const wide = new Map(isas.map((isa) => [isa, loadWideGemm(isa, 2)] as const));
// Skipped where it cannot run: no deterministic GEMM to compare with, no AVX2 or AVX-512F, no
// C compiler. A kernel that does not build fails its test.
const cannot = (isa: WideIsa) => {
  const w = wide.get(isa)!;
  return typeof w === "string" && /lacks|no C compiler/.test(w) ? w : undefined;
};
const skip = !blas ? noBlas : !blas.description.includes("(deterministic)") ? blas.description : undefined;
const skip8 = skip ?? cannot(8);
if (skip8) console.log(`wide GEMM tests skipped: ${skip8}`);
if (!skip8 && cannot(512)) console.log(`wide GEMM tests: AVX-512F itself not run (${cannot(512)})`);
const built = (isa: WideIsa): WideGemm => {
  const w = wide.get(isa)!;
  if (typeof w === "string") assert.fail(w);
  return w;
};

/** Elements of C the wide GEMM computes with other bits than OpenBLAS, for each of `runs`. */
function differing(
  w: WideGemm,
  { tA, tB, m, n, k, alpha, beta }: Shape,
  runs: { threads?: number; twoChains?: boolean }[] = [{}],
): number[] {
  const a = rand(m * k, m + 3 * k), b = rand(k * n, n + 5 * k), c0 = rand(m * n, 7);
  const want = c0.slice();
  blas!.sgemm(tA, tB, m, n, k, a, b, want, beta, alpha);
  return runs.map((opts) => {
    const got = c0.slice();
    w.sgemm(tA, tB, m, n, k, a, b, got, beta, alpha, opts);
    return differingBits(want, got);
  });
}

for (const isa of isas) {
  Deno.test({
    name: `the wide GEMM (${isa === 512 ? "AVX-512F" : isa === 16 ? "16 lanes as two AVX2 halves" : "AVX2"}) ` +
      `equals OpenBLAS Haswell bit for bit: GA1's products at batch 1609 and every tile, on 1, 2 and 3 threads`,
    ignore: !!(skip8 ?? cannot(isa)),
    fn() {
      const g = built(isa);
      for (const s of [...ga1Shapes(1609), ...EDGE_SHAPES]) {
        assert.deepEqual(differing(g, s, [{ threads: 1 }, { threads: 2 }, { threads: 3 }]), [0, 0, 0], label(s));
      }
    },
  });
}

Deno.test({
  name: "the wide GEMM's second pass over OpenBLAS's two-chain tiles is needed: without it, bits differ",
  ignore: !!skip8,
  fn() {
    const w = built(8);
    for (const s of [shape(1609, 1000, 3072), shape(100, 333, 650, { tA: true, tB: true, beta: 0.5 })]) {
      const [whole, oneChain] = differing(w, s, [{}, { twoChains: false }]);
      assert.equal(whole, 0, label(s));
      assert.ok(oneChain > 0, label(s));
    }
  },
});

Deno.test({
  name:
    "the AVX-512F build of the wide GEMM compiles on any CPU (it runs, and is checked above, only on one with AVX-512F)",
  ignore: !!skip8,
  fn() {
    const { lib, reason } = buildWideGemm(512);
    assert.ok(lib, reason);
    lib.close();
  },
});
