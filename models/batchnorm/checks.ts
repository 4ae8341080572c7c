// The assignment's batch-norm checks (unittests.py, TestBatchNorm), one table
// row each: normalised output statistics, the manual gradient against central
// finite differences in float64, and the manual gradient against autograd.
import { Rng } from "../../data/rng.ts";
import { initCompute, tf } from "../compute/backend.ts";
import { numericGradArray } from "../numpy_mlp/gradcheck.ts";
import { batchNormAutograd, batchNormManual, bnBackward64, bnForward64 } from "./bn.ts";

export interface CheckRow {
  check: string;
  /** "autograd" / "manual" (tfjs, float32) or "manual-float64" (typed arrays). */
  impl: string;
  trials: number;
  /** The worst value over the trials. */
  measured: number;
  threshold: number;
  pass: boolean;
  how: string;
}

type Impl = "autograd" | "manual" | "manual-float64";
const IMPLS: Impl[] = ["autograd", "manual", "manual-float64"];

interface Case {
  b: number;
  f: number;
  x: Float64Array;
  gamma: Float64Array;
  beta: Float64Array;
}

/** x = 2·N(0,1) + 10, as the assignment's tests; γ, β as given. */
function makeCase(rng: Rng, b: number, f: number, scaled: boolean): Case {
  const x = Float64Array.from({ length: b * f }, () => 2 * rng.normal() + 10);
  const gamma = Float64Array.from({ length: f }, (_, j) => scaled ? Math.sqrt(10 * j) : 1);
  const beta = Float64Array.from({ length: f }, (_, j) => scaled ? 100 * j : 0);
  return { b, f, x, gamma, beta };
}

/** Run tfjs ops in a tidy scope and read the results out as float64. */
function read(fn: () => tf.Tensor[]): Float64Array[] {
  const ts = tf.tidy(fn);
  const out = ts.map((t) => Float64Array.from(t.dataSync()));
  tf.dispose(ts);
  return out;
}

function tensors(c: Case): [tf.Tensor2D, tf.Tensor1D, tf.Tensor1D] {
  return [
    tf.tensor2d(Float32Array.from(c.x), [c.b, c.f]),
    tf.tensor1d(Float32Array.from(c.gamma)),
    tf.tensor1d(Float32Array.from(c.beta)),
  ];
}

function forward(impl: Impl, c: Case): Float64Array {
  if (impl === "manual-float64") return bnForward64(c.x, c.b, c.f, c.gamma, c.beta).y;
  const fn = impl === "manual" ? batchNormManual : batchNormAutograd;
  return read(() => [fn(...tensors(c))])[0];
}

/** Gradients of L = Σ y·dy with respect to x, γ, β. */
function gradients(impl: Impl, c: Case, dy: Float64Array): Float64Array[] {
  if (impl === "manual-float64") {
    const { xhat, invStd } = bnForward64(c.x, c.b, c.f, c.gamma, c.beta);
    const g = bnBackward64(dy, xhat, invStd, c.gamma, c.b, c.f);
    return [g.dx, g.dGamma, g.dBeta];
  }
  const fn = impl === "manual" ? batchNormManual : batchNormAutograd;
  return read(() => {
    const d = tf.tensor2d(Float32Array.from(dy), [c.b, c.f]);
    const loss = (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.mul(fn(x as tf.Tensor2D, g as tf.Tensor1D, b as tf.Tensor1D), d));
    return tf.grads(loss)(tensors(c));
  });
}

/** Per-feature mean and biased variance (÷B) of a B×F batch, in float64. */
function stats(y: Float64Array, b: number, f: number): { mean: Float64Array; variance: Float64Array } {
  const mean = new Float64Array(f), variance = new Float64Array(f);
  for (let s = 0; s < b; s++) for (let j = 0; j < f; j++) mean[j] += y[s * f + j] / b;
  for (let s = 0; s < b; s++) for (let j = 0; j < f; j++) variance[j] += (y[s * f + j] - mean[j]) ** 2 / b;
  return { mean, variance };
}

/** ‖a−b‖ / (‖a‖+‖b‖): the relative error of a whole gradient. */
export function normRelError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) {
    d += (a[i] - b[i]) ** 2;
    na += a[i] ** 2;
    nb += b[i] ** 2;
  }
  return Math.sqrt(d) / Math.max(1e-300, Math.sqrt(na) + Math.sqrt(nb));
}

export async function runBatchNormChecks(seed = 42): Promise<CheckRow[]> {
  await initCompute();
  const rows: CheckRow[] = [];
  const row = (r: Omit<CheckRow, "pass">) => rows.push({ ...r, pass: r.measured < r.threshold });

  // 1. γ = 1, β = 0: per-feature mean ≈ 0, variance ≈ 1 (10 trials, B in [32, 128), F in [1, 10)).
  for (const impl of IMPLS) {
    const rng = new Rng(seed);
    let meanDev = 0, varDev = 0;
    for (let t = 0; t < 10; t++) {
      const c = makeCase(rng, 32 + rng.below(96), 1 + rng.below(9), false);
      const { mean, variance } = stats(forward(impl, c), c.b, c.f);
      for (let j = 0; j < c.f; j++) {
        meanDev = Math.max(meanDev, Math.abs(mean[j]));
        varDev = Math.max(varDev, Math.abs(variance[j] - 1));
      }
    }
    const how = "x = 2·N(0,1)+10, B∈[32,128), F∈[1,10); biased variance (÷B)";
    row({ check: "γ=1, β=0: max |mean(y)|", impl, trials: 10, measured: meanDev, threshold: 1e-5, how });
    row({ check: "γ=1, β=0: max |var(y) − 1|", impl, trials: 10, measured: varDev, threshold: 0.1, how });
  }

  // 2. γⱼ = √(10j), βⱼ = 100j: mean β, variance γ² (5 trials, B in [64, 256), F in [4, 10)).
  for (const impl of IMPLS) {
    const rng = new Rng(seed);
    let meanDev = 0, varDev = 0;
    for (let t = 0; t < 5; t++) {
      const c = makeCase(rng, 64 + rng.below(192), 4 + rng.below(6), true);
      const { mean, variance } = stats(forward(impl, c), c.b, c.f);
      for (let j = 0; j < c.f; j++) {
        meanDev = Math.max(meanDev, Math.abs(mean[j] - c.beta[j]) / Math.max(1, c.beta[j]));
        varDev = Math.max(varDev, Math.abs(variance[j] - c.gamma[j] ** 2));
      }
    }
    const how = "B∈[64,256), F∈[4,10); mean deviation relative to max(1, β) (float32 holds β=800 to ~6e-5)";
    row({ check: "γⱼ=√(10j), βⱼ=100j: max |mean(y) − β|", impl, trials: 5, measured: meanDev, threshold: 1e-5, how });
    row({ check: "γⱼ=√(10j), βⱼ=100j: max |var(y) − γ²|", impl, trials: 5, measured: varDev, threshold: 1, how });
  }

  // 3. Gradients: manual float64 vs central differences; tfjs manual vs tfjs autograd; tfjs manual vs float64.
  const rng = new Rng(seed);
  const worst = { fd: 0, auto: 0, f64: 0 };
  for (let t = 0; t < 5; t++) {
    const c = makeCase(rng, 64 + rng.below(192), 4 + rng.below(6), true);
    const dy = Float64Array.from({ length: c.b * c.f }, () => rng.normal());
    const analytic = gradients("manual-float64", c, dy);
    const y = () => bnForward64(c.x, c.b, c.f, c.gamma, c.beta).y;
    const numeric = [c.x, c.gamma, c.beta].map((v) => numericGradArray(y, v, dy));
    const manual32 = gradients("manual", c, dy), auto32 = gradients("autograd", c, dy);
    for (let k = 0; k < 3; k++) {
      worst.fd = Math.max(worst.fd, normRelError(analytic[k], numeric[k]));
      worst.auto = Math.max(worst.auto, normRelError(manual32[k], auto32[k]));
      worst.f64 = Math.max(worst.f64, normRelError(manual32[k], analytic[k]));
    }
  }
  const how = "dx, dγ, dβ of L = Σ y·dy (dy ~ N(0,1)); worst of ‖a−b‖/(‖a‖+‖b‖) over the three and 5 trials; " +
    "γⱼ=√(10j), βⱼ=100j, B∈[64,256), F∈[4,10)";
  row({
    check: "manual backward vs central differences (h=1e-5), float64",
    impl: "manual-float64",
    trials: 5,
    measured: worst.fd,
    threshold: 1e-5,
    how,
  });
  row({
    check: "manual backward vs autograd, tfjs float32",
    impl: "manual",
    trials: 5,
    measured: worst.auto,
    threshold: 1e-5,
    how,
  });
  row({
    check: "manual backward tfjs float32 vs float64",
    impl: "manual",
    trials: 5,
    measured: worst.f64,
    threshold: 1e-5,
    how,
  });
  return rows;
}
