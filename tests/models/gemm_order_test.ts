// The deterministic GEMM's order of operations, written out element by element
// (tests/support/gemm_order.c), against the GEMM itself (models/compute/blas.ts: OpenBLAS
// 0.3.21 Haswell, 1-thread calls): bit for bit on every product shape of the GA1 MLP's
// training step but the widest (the batch at its full 1609 rows), and on shapes that reach
// every tile, block rule, transpose and scale. Each part of the order is needed: the model
// with another block size, or one chain where the kernel uses two, differs.
import assert from "node:assert/strict";
import { loadBlas } from "../../models/compute/blas.ts";
import { cpuHas, nativeLibrary } from "../../models/compute/native.ts";
import { rand } from "../support/arrays.ts";
import { differingBits, EDGE_SHAPES, ga1Shapes, type Shape, shape } from "../support/gemm_shapes.ts";

const { blas, reason: noBlas } = loadBlas();
const model = nativeLibrary(
  "gemm_order",
  Deno.readTextFileSync(new URL("../support/gemm_order.c", import.meta.url)),
  ["-O2", "-ffp-contract=off", ...(cpuHas("fma") ? ["-mfma"] : [])],
  {
    gemm_order: {
      parameters: ["i32", "i32", "i32", "i32", "i32", "f32", "buffer", "buffer", "f32", "buffer", "i32", "i32", "i32"],
      result: "void",
    },
  } as const,
);
const skip = !blas ? noBlas : !blas.description.includes("(deterministic)") ? blas.description : model.reason;
if (skip) console.log(`GEMM order tests skipped: ${skip}`);

type Order = { P: number; Q: number; twoChains: boolean };
const OPENBLAS: Order = { P: 320, Q: 320, twoChains: true };

/** How many elements of C the model computes with other bits than the GEMM. */
function differing({ tA, tB, m, n, k, alpha, beta }: Shape, order: Order): number {
  const a = rand(m * k, m + 3 * k), b = rand(k * n, n + 5 * k), c0 = rand(m * n, 7);
  const ours = c0.slice(), written = c0.slice();
  blas!.sgemm(tA, tB, m, n, k, a, b, ours, beta, alpha);
  const args = [+tA, +tB, m, n, k, alpha, a, b, beta, written, order.P, order.Q, +order.twoChains] as const;
  model.lib!.symbols.gemm_order(...args);
  return differingBits(ours, written);
}

// GA1's products with the batch cut to 161 rows (the full 1609 takes ~30 s here and is the
// same order: checked when this model was written).
const ga1 = ga1Shapes(161);
const edges = EDGE_SHAPES;

Deno.test({
  name: "the GEMM's order written out equals OpenBLAS Haswell bit for bit: GA1's products and every tile",
  ignore: !!skip,
  fn() {
    for (const s of [...ga1, ...edges]) assert.equal(differing(s, OPENBLAS), 0, JSON.stringify(s));
  },
});

Deno.test({
  name: "each part of the written-out order is needed: other blocks, or one chain everywhere, differ",
  ignore: !!skip,
  fn() {
    const s = shape(100, 700, 700);
    assert.equal(differing(s, OPENBLAS), 0);
    for (const order of [{ ...OPENBLAS, Q: 384 }, { ...OPENBLAS, P: 768 }, { ...OPENBLAS, twoChains: false }]) {
      assert.ok(differing(s, order) > 0, `${JSON.stringify(order)} matched`);
    }
  },
});
