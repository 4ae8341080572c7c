// The GEMM question of GA1: can a GEMM that keeps the deterministic GEMM's bits use wider
// vectors? Times the 14 products of a GA1 training step (batch 1609) with the deterministic
// GEMM (OpenBLAS 0.3.21 Haswell, 1-thread calls over the pool), with the order-keeping wide
// GEMM at the widest vectors this CPU has (tests/support/gemm_wide.c: 8 lanes with AVX2, 16
// with AVX-512F), and in PyTorch (gemm_reference.py, the machine's own environment, best of 1
// and 2 threads); checks each product's bits against the deterministic GEMM's; and puts the
// products' sum beside a GA1 step's time. Random data: speed only.
// First, so that its snapshot of the environment precedes everything (no library sets anything at import).
import { describeSides, loadLine, originalEnvCommand, PYTHON, torchAvailable } from "./environment.ts";
import { fileURLToPath } from "node:url";
import { initCompute } from "../../models/compute/backend.ts";
import { loadBlas, startBlasThreads } from "../../models/compute/blas.ts";
import { rand } from "../support/arrays.ts";
import { differingBits, ga1Shapes, label, type Shape } from "../support/gemm_shapes.ts";
import { loadWideGemm, widestIsa } from "../support/gemm_wide.ts";
import { torchMlpStep } from "./mlp.ts";

const REFERENCE = fileURLToPath(new URL("gemm_reference.py", import.meta.url));
const REPS = 5;

/**
 * Median milliseconds of each function over `reps` runs after one warm-up run, taking turns
 * (the machine's speed drifts by tens of percent from one minute to the next: both see it).
 */
function medianMs(fns: (() => void)[], reps = REPS): number[] {
  const ts = fns.map(() => [] as number[]);
  for (let r = -1; r < reps; r++) {
    fns.forEach((fn, i) => {
      const t = performance.now();
      fn();
      if (r >= 0) ts[i].push(performance.now() - t);
    });
  }
  return ts.map((t) => t.sort((a, b) => a - b)[reps >> 1]);
}

const gflops = (s: Shape, ms: number) => (2 * s.m * s.n * s.k / ms / 1e6).toFixed(0).padStart(4);

export async function bench(): Promise<void> {
  await describeSides();
  console.log(loadLine("at the start of gemm"));
  const { blas, reason } = loadBlas();
  if (!blas) return console.log(`GEMM bench skipped: ${reason}`);
  await startBlasThreads();
  const isa = widestIsa();
  const wide = isa ? loadWideGemm(isa, blas.threads) : "this CPU lacks AVX2 + FMA";
  if (typeof wide === "string") return console.log(`GEMM bench skipped: the wide GEMM cannot run (${wide})`);
  console.log(`deterministic: ${blas.description}\nwide: ${wide.name}`);

  const shapes = ga1Shapes(1609, { step: true });
  const first = { a: rand(shapes[0].m * shapes[0].k, 1), b: rand(shapes[0].k * shapes[0].n, 2) };
  let ours = 0, wides = 0, differ = 0;
  for (const s of shapes) {
    const { a, b } = s === shapes[0] ? first : { a: rand(s.m * s.k, 1), b: rand(s.k * s.n, 2) };
    const c = new Float32Array(s.m * s.n), d = c.slice();
    const [tOurs, tWide] = medianMs([
      () => blas.sgemm(s.tA, s.tB, s.m, s.n, s.k, a, b, c),
      () => wide.sgemm(s.tA, s.tB, s.m, s.n, s.k, a, b, d),
    ]);
    const bits = differingBits(c, d);
    ours += tOurs, wides += tWide, differ += bits;
    console.log(
      `  ${label(s).padEnd(19)} deterministic ${tOurs.toFixed(2).padStart(6)} ms ${gflops(s, tOurs)} GFLOP/s, ` +
        `wide ${tWide.toFixed(2).padStart(6)} ms ${gflops(s, tWide)} GFLOP/s (×${(tOurs / tWide).toFixed(2)}), ` +
        (bits ? `${bits} ELEMENTS DIFFER` : "same bits"),
    );
  }
  console.log(
    `GA1's 14 products: deterministic ${ours.toFixed(1)} ms, wide ${wides.toFixed(1)} ms (×${
      (ours / wides).toFixed(2)
    }); ` +
      (differ ? `${differ} ELEMENTS DIFFER: the wide GEMM does not keep the bits here` : "every bit the same"),
  );
  for (const threads of [1, blas.threads]) {
    const s = shapes[0], { a, b } = first, c = new Float32Array(s.m * s.n);
    blas.limitThreads(threads);
    const [tOurs, tWide] = medianMs([
      () => blas.sgemm(false, false, s.m, s.n, s.k, a, b, c),
      () => wide.sgemm(false, false, s.m, s.n, s.k, a, b, c, 0, 1, { threads }),
    ]);
    console.log(
      `  ${label(s)} on ${threads} thread${threads === 1 ? "" : "s"}: deterministic ${gflops(s, tOurs).trim()} ` +
        `GFLOP/s, wide ${gflops(s, tWide).trim()} GFLOP/s`,
    );
  }
  blas.limitThreads(blas.threads);

  await initCompute();
  const step = torchMlpStep({ hidden: [1000, 500, 250, 100], batch: 1609, reps: REPS }).stepMs;
  console.log(
    `GA1 step (train-torch-mlp, OpenBLAS pool): ${step.toFixed(1)} ms, of which its products ~${ours.toFixed(0)} ms; ` +
      `with the wide GEMM's products instead: ~${(step - ours + wides).toFixed(0)} ms (estimate: the step does not ` +
      `run the wide GEMM)`,
  );

  console.log(loadLine("before PyTorch"));
  if (!(await torchAvailable())) {
    return console.log("PyTorch reference skipped: install Debian's python3-torch (apt-get install python3-torch)");
  }
  const args = [REFERENCE, "1,2", String(REPS), JSON.stringify(shapes)];
  const out = await originalEnvCommand(PYTHON, { args, stderr: "inherit" }).output();
  if (!out.success) return console.log("PyTorch reference failed (see above)");
  const runs: { torch: string; threads: number; ms: number[] }[] = new TextDecoder().decode(out.stdout).trim()
    .split("\n").map((l) => JSON.parse(l));
  const totals = runs.map((r) => r.ms.reduce((x, y) => x + y, 0));
  runs.forEach((r, i) =>
    console.log(`  PyTorch ${r.torch}, ${r.threads} thread(s): the 14 products ${totals[i].toFixed(1)} ms`)
  );
  const best = Math.min(...totals);
  console.log(
    `GA1's products vs PyTorch (machine's environment, best of 1 and 2 threads: ${best.toFixed(1)} ms): ` +
      `deterministic ×${(best / ours).toFixed(2)}, wide ×${(best / wides).toFixed(2)} PyTorch's throughput`,
  );
}
