// The CNN stage's speed: the VGG training step (batch 32) and inference throughput on
// every backend available here (oneDNN first, then our own kernels), a large sgemm's
// GFLOP/s (the "peak" each row's GFLOP/s is a fraction of), peak memory, the MLP steps
// as the tfjs stages run them (3072-100-10 at batch 200, and GA1; Adam), and the same
// steps in PyTorch (cnn_reference.py, Debian's python3-torch, the faster of 1 and 2
// threads for each figure), with the throughput ratio ours/PyTorch (> 1: we are faster).
// Medians after a warm-up; the MLP steps are measured before and after PyTorch, best of
// the two. PyTorch runs in the machine's own environment, not ours (environment.ts: our
// OpenBLAS and oneDNN pins are set in-process), and the bench first prints what each
// side runs. The machine's load is printed: on a shared 2-core machine every figure moves
// with it.
// First, so that its snapshot of the environment precedes everything (no library sets anything at import).
import { describeSides, loadLine, originalEnvCommand, PYTHON, torchAvailable } from "./environment.ts";
import { fileURLToPath } from "node:url";
import { initCompute } from "../../models/compute/backend.ts";
import { loadBlas } from "../../models/compute/blas.ts";
import { getGemm } from "../../models/compute/gemm.ts";
import { loadOnednn } from "../../models/compute/onednn.ts";
import { OnednnVgg } from "../../models/cnn/onednn_vgg.ts";
import { TfVgg } from "../../models/cnn/tf_vgg.ts";
import { Vgg, VGG_LAYERS } from "../../models/cnn/vgg.ts";
import { torchMlpStep } from "./mlp.ts";

const BATCH = 32, EVAL = 500;
const REFERENCE = fileURLToPath(new URL("cnn_reference.py", import.meta.url));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function timeMs(fn: () => void, reps: number): number {
  fn(); // warm-up (allocations, JIT)
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    fn();
    ts.push(performance.now() - t);
  }
  return median(ts);
}

function randomBatch(n: number, seed: number) {
  let s = seed;
  const rnd = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  return {
    x: Float32Array.from({ length: n * 3072 }, () => (rnd() - 0.5) * 120),
    y: Uint8Array.from({ length: n }, () => Math.floor(rnd() * 10)),
  };
}

interface Row {
  name: string;
  stepMs: number;
  evalImgPerS?: number;
}

/** Multiply-adds of one image's forward pass through the study's VGG (32×32). */
function forwardMacs(): number {
  let cin = 3, h = 32, macs = 0;
  for (const l of VGG_LAYERS) {
    macs += h * h * 9 * cin * l.out;
    cin = l.out;
    if (l.pool) h = Math.floor((h - 1) / 2) + 1;
  }
  return macs + cin * h * h * 10;
}
/** A training step (forward, backward-data, backward-weights) and an inference image, in GFLOP. */
const STEP_GFLOP = (3 * 2 * forwardMacs() * BATCH) / 1e9, IMAGE_GFLOP = (2 * forwardMacs()) / 1e9;

/** The process's peak resident memory so far (Linux), in MiB. */
function peakMiB(): string {
  try {
    const kb = Number(/VmHWM:\s+(\d+)/.exec(Deno.readTextFileSync("/proc/self/status"))?.[1]);
    return `${(kb / 1024).toFixed(0)} MiB`;
  } catch {
    return "unknown";
  }
}

/** The best GFLOP/s of a large sgemm (1024³, as cnn_reference.py) over the native GEMMs here. */
function sgemmPeak(): { name: string; gflops: number }[] {
  const n = 1024, a = new Float32Array(n * n).fill(0.5), b = new Float32Array(n * n).fill(0.25);
  const c = new Float32Array(n * n), out: { name: string; gflops: number }[] = [];
  const blas = loadBlas().blas, dnnl = loadOnednn().dnnl;
  const run = (name: string, f: () => void) => out.push({ name, gflops: (2 * n ** 3) / (timeMs(f, 7) * 1e6) });
  if (blas) run(blas.description, () => blas.sgemm(false, false, n, n, n, a, b, c));
  if (dnnl) run(`${dnnl.description} sgemm`, () => dnnl.sgemm(false, false, n, n, n, a, b, c));
  return out;
}

function onednnPath(): Row | string {
  const { dnnl, reason } = loadOnednn();
  if (!dnnl) return reason;
  const model = new OnednnVgg({ width: 1, size: 32, classes: 10 }, dnnl, 42);
  const b = randomBatch(BATCH, 1), e = randomBatch(EVAL, 2);
  const desc = model.describe(BATCH);
  const stepMs = timeMs(() => model.trainStep(b.x, b.y, BATCH, 1e-4), 7);
  const evalMs = timeMs(() => model.predict(e.x, EVAL), 3);
  model.profile = {};
  model.trainStep(b.x, b.y, BATCH, 1e-4);
  const parts = Object.entries(model.profile).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(", ");
  console.log(`  ${desc}: one step's ms by kernel: ${parts}; peak memory so far ${peakMiB()}`);
  return { name: desc, stepMs, evalImgPerS: EVAL / (evalMs / 1000) };
}

async function ownKernels(native: boolean): Promise<Row> {
  const gemm = await getGemm({ native });
  const model = new Vgg({ width: 1, size: 32, classes: 10 }, gemm, 42);
  const b = randomBatch(BATCH, 1), e = randomBatch(EVAL, 2);
  const stepMs = timeMs(() => model.trainStep(b.x, b.y, BATCH, 1e-4), native ? 7 : 3);
  const evalMs = timeMs(() => model.predict(e.x, EVAL), native ? 3 : 1);
  model.profile = {};
  model.trainStep(b.x, b.y, BATCH, 1e-4);
  const parts = Object.entries(model.profile).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(", ");
  console.log(`  own kernels + ${gemm.name}: one step's ms by kernel: ${parts}`);
  return { name: `own kernels + ${gemm.name} GEMM`, stepMs, evalImgPerS: EVAL / (evalMs / 1000) };
}

async function tfAutograd(native: boolean): Promise<Row> {
  const desc = await initCompute({ native });
  const model = new Vgg({ width: 1, size: 32, classes: 10 }, await getGemm({ native }), 42);
  const net = new TfVgg(model);
  const b = randomBatch(BATCH, 1), e = randomBatch(100, 2);
  const stepMs = timeMs(() => net.trainStep(b.x, b.y, BATCH), native ? 3 : 2);
  const evalMs = timeMs(() => net.predict(e.x, 100), 1);
  net.dispose();
  return { name: `tfjs autograd, ${desc.replace(/; .*/, "")}`, stepMs, evalImgPerS: 100 / (evalMs / 1000) };
}

/** A train-torch-mlp step as the stage runs it (mlp.ts), on OpenBLAS or wasm alone. */
async function tfMlpStep(native: boolean, hidden: number[], batch: number, reps: number): Promise<Row> {
  const desc = await initCompute({ native });
  const { stepMs } = torchMlpStep({ hidden, batch, reps });
  return {
    name: `train-torch-mlp ${[3072, ...hidden, 10].join("-")} b${batch} step, ${desc.replace(/; .*/, "")}`,
    stepMs,
  };
}

interface Reference {
  torch: string;
  threads: number;
  sgemm_1024_gflops: number;
  cnn_step_ms: number;
  cnn_eval_images_per_s: number;
  mlp_step_ms: number;
  mlp_ga1_step_ms: number;
}

async function pytorch(): Promise<Reference | string> {
  if (!(await torchAvailable())) {
    console.log("  installing python3-torch, libopenblas0-pthread (apt-get) for the PyTorch reference ...");
    const apt = await new Deno.Command("apt-get", {
      args: ["install", "-y", "-q", "python3-torch", "python3-numpy", "libopenblas0-pthread"],
      env: { DEBIAN_FRONTEND: "noninteractive" },
      stdout: "null",
      stderr: "null",
    }).output().catch(() => null);
    if (!apt?.success || !(await torchAvailable())) {
      return "PyTorch reference skipped: could not install Debian's python3-torch (apt-get install python3-torch)";
    }
  }
  const out = await originalEnvCommand(PYTHON, { args: [REFERENCE, "1,2", "5"], stderr: "inherit" }).output();
  if (!out.success) return "PyTorch reference failed (see above)";
  const runs: Reference[] = new TextDecoder().decode(out.stdout).trim().split("\n").map((l) => JSON.parse(l));
  for (const r of runs) {
    console.log(
      `  PyTorch ${r.torch} CPU, ${r.threads} thread(s): VGG step ${r.cnn_step_ms.toFixed(0)} ms, ` +
        `${r.cnn_eval_images_per_s.toFixed(0)} images/s inference, MLP step ${r.mlp_step_ms.toFixed(2)} ms, ` +
        `GA1 MLP step ${r.mlp_ga1_step_ms.toFixed(0)} ms, ` +
        `sgemm 1024³ ${r.sgemm_1024_gflops.toFixed(0)} GFLOP/s`,
    );
  }
  const best = (f: (r: Reference) => number, max = false) =>
    runs.map(f).reduce((a, b) => max ? Math.max(a, b) : Math.min(a, b));
  return {
    ...runs[0],
    threads: 0,
    cnn_step_ms: best((r) => r.cnn_step_ms),
    cnn_eval_images_per_s: best((r) => r.cnn_eval_images_per_s, true),
    mlp_step_ms: best((r) => r.mlp_step_ms),
    mlp_ga1_step_ms: best((r) => r.mlp_ga1_step_ms),
  };
}

export async function bench(): Promise<void> {
  await describeSides(); // before PyTorch could be installed below: then its side reads "not installed"
  const blas = loadBlas();
  console.log(loadLine("at the start of cnn"));
  const rows: Row[] = [];
  const onednn = onednnPath();
  if (typeof onednn === "string") console.log(`oneDNN path skipped: ${onednn}`);
  else rows.push(onednn);
  const gemms = sgemmPeak(), peak = gemms.reduce((m, g) => Math.max(m, g.gflops), 0);
  for (const g of gemms) console.log(`  sgemm 1024³, ${g.name}: ${g.gflops.toFixed(0)} GFLOP/s`);
  if (blas.blas) rows.push(await ownKernels(true));
  rows.push(await ownKernels(false));
  if (blas.blas) rows.push(await tfAutograd(true));
  rows.push(await tfAutograd(false));
  const mlp: Row[] = [], ga1: Row[] = [];
  for (const native of blas.blas ? [true, false] : [false]) {
    mlp.push(await tfMlpStep(native, [100], 200, 300));
    ga1.push(await tfMlpStep(native, [1000, 500, 250, 100], 1609, native ? 5 : 2));
  }
  await initCompute(); // leave the default behind

  console.log(loadLine("before PyTorch"));
  const ref = await pytorch();
  // The MLP steps again after PyTorch, best of the two (see mlp.ts: the machine's speed drifts).
  if (blas.blas) {
    for (
      const [rows, hidden, batch, reps] of [[mlp, [100], 200, 300], [ga1, [1000, 500, 250, 100], 1609, 5]] as const
    ) {
      const again = await tfMlpStep(true, [...hidden], batch, reps);
      rows[0].stepMs = Math.min(rows[0].stepMs, again.stepMs);
    }
    await initCompute();
  }
  const torch = typeof ref === "string" ? null : ref;
  const ratio = (ms: number, refMs?: number) =>
    torch && refMs ? `, ×${(refMs / ms).toFixed(2)} PyTorch's throughput` : "";
  if (!torch) console.log(ref);
  else console.log(`(ratios against PyTorch's best of 1 and 2 threads, in the machine's own environment)`);
  const ofPeak = (gflops: number) => peak ? `, ${(100 * gflops / peak).toFixed(0)}% of the sgemm peak` : "";
  console.log(
    `GEMM peak (large sgemm, this run): ${peak.toFixed(0)} GFLOP/s` +
      (torch ? `; PyTorch's sgemm 1024³ ${torch.sgemm_1024_gflops.toFixed(0)} GFLOP/s` : ""),
  );
  console.log(`VGG training step, batch ${BATCH} (${STEP_GFLOP.toFixed(1)} GFLOP):`);
  for (const r of rows) {
    const gf = STEP_GFLOP / (r.stepMs / 1000);
    console.log(
      `  ${r.name}: ${r.stepMs.toFixed(0)} ms/step (${gf.toFixed(0)} GFLOP/s${ofPeak(gf)})` +
        ratio(r.stepMs, torch?.cnn_step_ms),
    );
  }
  if (torch) {
    const gf = STEP_GFLOP / (torch.cnn_step_ms / 1000);
    console.log(`  PyTorch: ${torch.cnn_step_ms.toFixed(0)} ms/step (${gf.toFixed(0)} GFLOP/s${ofPeak(gf)})`);
  }
  console.log(`VGG inference (evaluation), images/s:`);
  for (const r of rows) {
    const ours = r.evalImgPerS!, theirs = torch?.cnn_eval_images_per_s ?? 0, gf = ours * IMAGE_GFLOP;
    console.log(
      `  ${r.name}: ${ours.toFixed(0)} images/s (${gf.toFixed(0)} GFLOP/s${ofPeak(gf)})` +
        (torch ? `, ×${(ours / theirs).toFixed(2)} PyTorch's` : ""),
    );
  }
  if (torch) console.log(`  PyTorch: ${torch.cnn_eval_images_per_s.toFixed(0)} images/s`);
  console.log(`MLP steps (Adam; the GA1 row of Table 1 is 4,681 such steps):`);
  for (const r of mlp) console.log(`  ${r.name}: ${r.stepMs.toFixed(2)} ms${ratio(r.stepMs, torch?.mlp_step_ms)}`);
  for (const r of ga1) console.log(`  ${r.name}: ${r.stepMs.toFixed(0)} ms${ratio(r.stepMs, torch?.mlp_ga1_step_ms)}`);
  console.log(`peak memory of this process (every path above): ${peakMiB()}`);
}

if (import.meta.main) {
  await bench();
  Deno.exit(0);
}
