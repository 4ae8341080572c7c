// Batch normalisation of MLP activations (batch × features), two ways:
// (a) composed of tfjs ops and differentiated automatically, (b) the same
// forward with the hand-written backward of the report (eqs. 46, 50, 69 as
// corrected in SPEC) through tf.customGrad. Plus a float64 typed-array copy of
// (b) for the finite-difference check (tfjs has no float64), and a module with
// running statistics for inference mode (the study's code kept none).
//
// Written as (x−μ)·(γ·rsqrt(σ²+ε)) + β rather than with tf.batchNorm, whose
// gradient goes through a slow Tile on the wasm backend.
import { tf } from "../compute/backend.ts";

export const BN_EPS = 1e-5;
export const BN_MOMENTUM = 0.1;

export type BnImpl = "autograd" | "manual";

/** Per-feature batch mean and biased variance (÷B). */
function moments(x: tf.Tensor2D): { xc: tf.Tensor2D; invStd: tf.Tensor1D } {
  const xc = tf.sub(x, tf.mean(x, 0)) as tf.Tensor2D;
  const variance = tf.mean(tf.square(xc), 0);
  return { xc, invStd: tf.rsqrt(tf.add(variance, BN_EPS)) as tf.Tensor1D };
}

/** (a) Composed of tfjs ops; tfjs differentiates it. */
export function batchNormAutograd(x: tf.Tensor2D, gamma: tf.Tensor1D, beta: tf.Tensor1D): tf.Tensor2D {
  const { xc, invStd } = moments(x);
  return tf.add(tf.mul(xc, tf.mul(gamma, invStd)), beta);
}

/**
 * (b) The same forward, with the backward written by hand:
 * dβ = Σₛ dy, dγ = Σₛ dy·x̂, dx = (1/B)·invStd·(B·dx̂ − Σₛ dx̂ − x̂·Σₛ(dx̂·x̂)) with dx̂ = dy·γ,
 * where Σₛ dx̂ = γ·dβ and Σₛ(dx̂·x̂) = γ·dγ.
 */
function manualForward(x: tf.Tensor2D, gamma: tf.Tensor1D, beta: tf.Tensor1D, save: tf.GradSaveFunc) {
  const { xc, invStd } = moments(x);
  const value = tf.add(tf.mul(xc, tf.mul(gamma, invStd)), beta) as tf.Tensor2D;
  save([xc, invStd, gamma]);
  return {
    value,
    gradFunc: (dy: tf.Tensor2D, saved: tf.Tensor[]) => {
      const [xc, invStd, gamma] = saved as [tf.Tensor2D, tf.Tensor1D, tf.Tensor1D];
      const b = dy.shape[0];
      const xhat = tf.mul(xc, invStd);
      const dBeta = tf.sum(dy, 0);
      const dGamma = tf.sum(tf.mul(dy, xhat), 0);
      const dxhat = tf.mul(dy, gamma);
      const inner = tf.sub(tf.sub(tf.mul(dxhat, b), tf.mul(gamma, dBeta)), tf.mul(xhat, tf.mul(gamma, dGamma)));
      const dx = tf.mul(inner, tf.div(invStd, b));
      return [dx, dGamma, dBeta];
    },
  };
}

// tfjs types customGrad's callback with untyped variadic inputs: cast in and out.
export const batchNormManual = tf.customGrad(
  manualForward as unknown as Parameters<typeof tf.customGrad>[0],
) as unknown as (x: tf.Tensor2D, gamma: tf.Tensor1D, beta: tf.Tensor1D) => tf.Tensor2D;

/** Float64 forward of (b), for the checks: y, x̂ and 1/√(σ²+ε) of a B×F row-major batch. */
export function bnForward64(
  x: Float64Array,
  b: number,
  f: number,
  gamma: Float64Array,
  beta: Float64Array,
): { y: Float64Array; xhat: Float64Array; invStd: Float64Array } {
  const y = new Float64Array(b * f), xhat = new Float64Array(b * f), invStd = new Float64Array(f);
  for (let j = 0; j < f; j++) {
    let mean = 0, v = 0;
    for (let s = 0; s < b; s++) mean += x[s * f + j];
    mean /= b;
    for (let s = 0; s < b; s++) v += (x[s * f + j] - mean) ** 2;
    invStd[j] = 1 / Math.sqrt(v / b + BN_EPS);
    for (let s = 0; s < b; s++) {
      xhat[s * f + j] = (x[s * f + j] - mean) * invStd[j];
      y[s * f + j] = gamma[j] * xhat[s * f + j] + beta[j];
    }
  }
  return { y, xhat, invStd };
}

/** Float64 copy of (b)'s hand-written backward, term by term. */
export function bnBackward64(
  dy: Float64Array,
  xhat: Float64Array,
  invStd: Float64Array,
  gamma: Float64Array,
  b: number,
  f: number,
): { dx: Float64Array; dGamma: Float64Array; dBeta: Float64Array } {
  const dx = new Float64Array(b * f), dGamma = new Float64Array(f), dBeta = new Float64Array(f);
  for (let j = 0; j < f; j++) {
    let sumDxhat = 0, sumDxhatXhat = 0;
    for (let s = 0; s < b; s++) {
      const k = s * f + j;
      dBeta[j] += dy[k];
      dGamma[j] += dy[k] * xhat[k];
      sumDxhat += dy[k] * gamma[j];
      sumDxhatXhat += dy[k] * gamma[j] * xhat[k];
    }
    for (let s = 0; s < b; s++) {
      const k = s * f + j;
      dx[k] = (invStd[j] / b) * (b * dy[k] * gamma[j] - sumDxhat - xhat[k] * sumDxhatXhat);
    }
  }
  return { dx, dGamma, dBeta };
}

/**
 * A batch-norm layer: learnable γ (1) and β (0); in training mode batch
 * statistics, and running statistics updated PyTorch's way (momentum 0.1,
 * the running variance from the unbiased batch variance); in inference mode
 * the running statistics.
 */
export class BatchNorm {
  readonly gamma: tf.Variable<tf.Rank.R1>;
  readonly beta: tf.Variable<tf.Rank.R1>;
  readonly runningMean: tf.Variable<tf.Rank.R1>;
  readonly runningVar: tf.Variable<tf.Rank.R1>;

  constructor(readonly features: number, readonly impl: BnImpl) {
    // tidy: a variable keeps its initial value's data; the initial tensor itself is freed.
    [this.gamma, this.beta, this.runningMean, this.runningVar] = tf.tidy(() => [
      tf.variable(tf.ones([features]), true),
      tf.variable(tf.zeros([features]), true),
      tf.variable(tf.zeros([features]), false),
      tf.variable(tf.ones([features]), false),
    ]);
  }

  apply(x: tf.Tensor2D, training: boolean): tf.Tensor2D {
    if (!training) {
      const scale = tf.mul(this.gamma, tf.rsqrt(tf.add(this.runningVar, BN_EPS)));
      return tf.add(tf.mul(tf.sub(x, this.runningMean), scale), this.beta);
    }
    tf.tidy(() => {
      const b = x.shape[0];
      const mean = tf.mean(x, 0);
      const unbiased = tf.div(tf.sum(tf.square(tf.sub(x, mean)), 0), Math.max(1, b - 1));
      this.runningMean.assign(tf.add(tf.mul(this.runningMean, 1 - BN_MOMENTUM), tf.mul(mean, BN_MOMENTUM)));
      this.runningVar.assign(tf.add(tf.mul(this.runningVar, 1 - BN_MOMENTUM), tf.mul(unbiased, BN_MOMENTUM)));
    });
    return (this.impl === "manual" ? batchNormManual : batchNormAutograd)(x, this.gamma, this.beta);
  }

  /** Every tensor of the layer's state, trainable first. */
  variables(): tf.Variable[] {
    return [this.gamma, this.beta, this.runningMean, this.runningVar];
  }

  dispose(): void {
    for (const v of this.variables()) v.dispose();
  }
}
