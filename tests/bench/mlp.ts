// Throughput of the three MLP stages' training steps and evaluations:
// train-numpy-mlp (3072-100-10, batch 200) with each GEMM it can use,
// train-torch-mlp default (3072-100-10, batch 200, Adam) and the GA1 size
// (1000,500,250,100, batch 1609) with its dropout / batch-norm variants, with
// OpenBLAS (the deterministic pool) and on the wasm backend alone; the same two
// steps in PyTorch (mlp_reference.py, Debian's python3-torch, the faster of 1 and
// 2 threads) with the throughput ratio ours/PyTorch (> 1: we are faster); a large
// sgemm's GFLOP/s (the peak) and the process's peak memory. Random data: speed
// only. PyTorch runs in the machine's own environment, not ours (environment.ts:
// our OpenBLAS pins are set in-process), and the bench first prints what each side
// runs. The machine's load is printed: on a shared 2-core machine every figure
// moves with it.
// First, so that its snapshot of the environment precedes everything (no library sets anything at import).
import { describeSides, loadLine, originalEnvCommand, PYTHON, torchAvailable } from "./environment.ts";
import { fileURLToPath } from "node:url";
import type { Split } from "../../data/dataset.ts";
import { Rng } from "../../data/rng.ts";
import { initCompute } from "../../models/compute/backend.ts";
import { loadBlas } from "../../models/compute/blas.ts";
import { getGemm } from "../../models/compute/gemm.ts";
import { MLP } from "../../models/numpy_mlp/modules.ts";
import { type Float32Gemm, setFloat32Gemm } from "../../models/numpy_mlp/tensor.ts";
import { evaluate as evaluateNumpy, sgdStep } from "../../models/numpy_mlp/train.ts";
import { Adam } from "../../models/torch_mlp/adam.ts";
import { dropoutMasks, type MlpSpec, TorchMlp } from "../../models/torch_mlp/model.ts";
import { evaluate as evaluateTorch, makeTrainStep } from "../../models/torch_mlp/train.ts";

const EVAL_IMAGES = 2000; // of the 10,000-image test set: throughput is per image
const REFERENCE = fileURLToPath(new URL("mlp_reference.py", import.meta.url));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Median seconds of fn over `reps` runs after one warm-up run. */
function time(fn: () => void, reps: number): number {
  fn();
  const ts: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t = performance.now();
    fn();
    ts.push((performance.now() - t) / 1000);
  }
  return median(ts);
}

function randomSplit(n: number, rng: Rng): Split {
  const x = new Float32Array(n * 3072);
  for (let i = 0; i < x.length; i++) x[i] = 60 * rng.normal();
  return { x, y: Uint8Array.from({ length: n }, () => rng.below(10)), n };
}

function line(name: string, stepS: number, evalS: number, extra = ""): void {
  console.log(
    `${name.padEnd(58)} ${(1 / stepS).toFixed(2).padStart(8)} steps/s ${
      (EVAL_IMAGES / evalS).toFixed(0).padStart(7)
    } test images/s${extra}`,
  );
}

export async function bench(): Promise<void> {
  await describeSides();
  console.log(loadLine("at the start of mlp"));
  const rng = new Rng(0);
  const test = randomSplit(EVAL_IMAGES, rng);
  const batches = new Map<number, Split>();
  const batchOf = (b: number) => batches.get(b) ?? batches.set(b, randomSplit(b, rng)).get(b)!;

  // train-numpy-mlp: the same hand-written modules with each float32 GEMM.
  const gemms = new Map<string, Float32Gemm | null>([["TypeScript GEMM (4×4 tiles, 1 thread)", null]]);
  for (const native of [false, true]) {
    const g = await getGemm({ native });
    gemms.set(g.name, g.gemm);
  }
  let tsStep = 0;
  for (const [name, gemm] of gemms) {
    setFloat32Gemm(gemm);
    const mlp = new MLP<Float32Array>(3072, [100], 10, new Rng(1), new Float32Array(0));
    const b = batchOf(200);
    const stepS = time(() => sgdStep(mlp, b.x, b.y, 2e-3), 10);
    const evalS = time(() => evaluateNumpy(mlp, test), 2);
    if (!tsStep) tsStep = stepS;
    line(`numpy MLP 3072-100-10 b200, ${name}`, stepS, evalS, ` (${(tsStep / stepS).toFixed(1)}× TS)`);
  }
  setFloat32Gemm(null);

  // train-torch-mlp / train-batchnorm steps: every case with OpenBLAS, the default alone on wasm.
  const cases: [string, number[], number, Partial<MlpSpec>, number][] = [
    ["torch MLP default 3072-100-10 b200", [100], 200, {}, 300],
    ["GA1 b1609", [1000, 500, 250, 100], 1609, {}, 5],
    ["GA1 + dropout b1609", [1000, 500, 250, 100], 1609, { dropout: true }, 3],
    ["GA1 + dropout + BN (autograd) b1609", [1000, 500, 250, 100], 1609, { dropout: true, batchnorm: "autograd" }, 3],
    ["GA1 + dropout + BN (manual) b1609", [1000, 500, 250, 100], 1609, { dropout: true, batchnorm: "manual" }, 3],
  ];
  const steps = new Map<string, number>();
  for (const native of [true, false]) {
    const backend = await initCompute({ native });
    console.log(`-- ${backend}`);
    for (const [name, hidden, batch, opts, reps] of native ? cases : cases.slice(0, 1)) {
      const r = torchMlpStep({ hidden, batch, reps, ...opts }, test);
      line(name, r.stepMs / 1000, r.evalS, ` (${r.stepMs.toFixed(1)} ms/step)`);
      if (native) steps.set(name, r.stepMs);
    }
  }
  await initCompute();

  // The peak: a large sgemm (GA1's first layer) on 1 thread and on the pool.
  const { blas } = loadBlas();
  const sg: string[] = [];
  if (blas) {
    const [m, n, k] = [1609, 1000, 3072];
    const a = new Float32Array(m * k).fill(0.5), bm = new Float32Array(k * n).fill(0.25), c = new Float32Array(m * n);
    for (const t of [...new Set([1, blas.threads])]) {
      blas.limitThreads(t);
      const s = time(() => blas.sgemm(false, false, m, n, k, a, bm, c), 5);
      sg.push(`${(2 * m * n * k / s / 1e9).toFixed(1)} GFLOP/s on ${t} thread${t === 1 ? "" : "s"}`);
    }
    blas.limitThreads(blas.threads);
    console.log(`sgemm ${m}×${n}×${k}, ${blas.description}: ${sg.join(", ")}`);
  }
  console.log(`peak memory (VmHWM) of this process: ${peakRssMiB()} MiB`);

  console.log(loadLine("before PyTorch"));
  const ref = await pytorch();
  if (typeof ref === "string") return console.log(ref);
  // Ours again after PyTorch, best of the two: the machine's speed drifts between runs
  // (up to 30% from one minute to the next here), and PyTorch's figure is a best of two (1 and 2 threads) as well.
  await initCompute();
  for (const [name, hidden, batch, opts, reps] of cases.slice(0, 2)) {
    steps.set(name, Math.min(steps.get(name)!, torchMlpStep({ hidden, batch, reps, ...opts }).stepMs));
  }
  const ratio = (ours?: number, theirs?: number) =>
    ours && theirs
      ? `${ours.toFixed(1)} ms vs ${theirs.toFixed(1)} ms: ×${(theirs / ours).toFixed(2)} PyTorch's throughput`
      : "-";
  console.log(
    `ours (OpenBLAS pool; best of before and after PyTorch) vs PyTorch ${ref.torch} in the machine's environment ` +
      `(best of 1 and 2 threads):`,
  );
  console.log(`  MLP 3072-100-10 b200 Adam step: ${ratio(steps.get(cases[0][0]), ref.mlp_step_ms)}`);
  console.log(`  GA1 3072-1000-500-250-100-10 b1609 Adam step: ${ratio(steps.get(cases[1][0]), ref.mlp_ga1_step_ms)}`);
  console.log(`  PyTorch's sgemm 1609×1000×3072: ${ref.sgemm_gflops.toFixed(1)} GFLOP/s`);
}

/**
 * A train-torch-mlp step as the stage runs it (makeTrainStep: the fused kernels, Adam in
 * place): median ms over `reps` steps on one random batch, on the backend initCompute last
 * chose; with `test`, also the seconds to evaluate it.
 */
export function torchMlpStep(
  c: { hidden: number[]; batch: number; reps: number } & Partial<MlpSpec>,
  test?: Split,
): { stepMs: number; evalS: number } {
  const { batch, reps, ...layers } = c;
  const spec: MlpSpec = { inputs: 3072, classes: 10, dropout: false, batchnorm: "none", ...layers };
  const model = new TorchMlp(spec, new Rng(1));
  const adam = new Adam(model.trainable(), 1e-4);
  const step = makeTrainStep(model, adam);
  const b = randomSplit(batch, new Rng(2));
  const buffers = model.hiddenSizes.map((f) => new Float32Array(batch * f));
  let i = 0;
  const stepS = time(() => {
    const masks = spec.dropout ? dropoutMasks(1, i++, batch, model.hiddenSizes, buffers) : [];
    step(b.x, b.y, masks);
  }, reps);
  const evalS = test ? time(() => evaluateTorch(model, test), 1) : 0;
  model.dispose();
  adam.dispose();
  return { stepMs: stepS * 1000, evalS };
}

interface Reference {
  torch: string;
  threads: number;
  sgemm_gflops: number;
  mlp_step_ms: number;
  mlp_ga1_step_ms: number;
}

/** PyTorch's figures, the best of 1 and 2 threads; a string when it cannot run. */
async function pytorch(): Promise<Reference | string> {
  if (!(await torchAvailable())) {
    return "PyTorch reference skipped: install Debian's python3-torch (apt-get install python3-torch)";
  }
  const out = await originalEnvCommand(PYTHON, { args: [REFERENCE, "1,2", "5"], stderr: "inherit" }).output();
  if (!out.success) return "PyTorch reference failed (see above)";
  const runs: Reference[] = new TextDecoder().decode(out.stdout).trim().split("\n").map((l) => JSON.parse(l));
  for (const r of runs) {
    console.log(
      `  PyTorch ${r.torch} CPU, ${r.threads} thread(s): MLP step ${r.mlp_step_ms.toFixed(2)} ms, ` +
        `GA1 step ${r.mlp_ga1_step_ms.toFixed(0)} ms, sgemm ${r.sgemm_gflops.toFixed(1)} GFLOP/s`,
    );
  }
  const min = (f: (r: Reference) => number) => Math.min(...runs.map(f));
  return {
    ...runs[0],
    sgemm_gflops: Math.max(...runs.map((r) => r.sgemm_gflops)),
    mlp_step_ms: min((r) => r.mlp_step_ms),
    mlp_ga1_step_ms: min((r) => r.mlp_ga1_step_ms),
  };
}

/** The process's peak resident memory so far, in MiB (Linux). */
function peakRssMiB(): string {
  try {
    const kb = Number(Deno.readTextFileSync("/proc/self/status").match(/^VmHWM:\s+(\d+)/m)?.[1]);
    return (kb / 1024).toFixed(0);
  } catch {
    return "?";
  }
}

if (import.meta.main) {
  await bench();
  Deno.exit(0);
}
