// The CNN's non-GEMM kernels on NHWC Float32Arrays, fused where it saves passes over
// memory: BatchNorm + ReLU (forward, backward), 3×3/2 max-pool with argmax, softmax
// cross-entropy, Adam. Checked against tfjs autograd and finite differences (tests/models/cnn_test.ts).
import type { ConvGeom } from "../compute/im2col.ts";

export const BN_EPS = 1e-5;
export const BN_MOMENTUM = 0.1;

/**
 * Training-mode BatchNorm + ReLU over rows × C (channels last). z is the conv output
 * without its bias b (BatchNorm removes a per-channel constant; b only moves the running
 * mean, as in PyTorch). Writes y = max(0, γ·(z−μ)/√(σ²+ε) + β), keeps μ and 1/√(σ²+ε) for
 * the backward, and updates the running statistics (unbiased variance, momentum 0.1).
 */
export function bnReluTrain(
  z: Float32Array,
  rows: number,
  C: number,
  p: { b: Float32Array; gamma: Float32Array; beta: Float32Array; runMean: Float32Array; runVar: Float32Array },
  mean: Float64Array,
  rstd: Float64Array,
  y: Float32Array,
): void {
  const sum = new Float64Array(C), sq = new Float64Array(C);
  for (let r = 0, i = 0; r < rows; r++) {
    for (let c = 0; c < C; c++, i++) {
      const v = z[i];
      sum[c] += v;
      sq[c] += v * v;
    }
  }
  const scale = new Float64Array(C), shift = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    const mu = sum[c] / rows, variance = Math.max(0, sq[c] / rows - mu * mu);
    mean[c] = mu;
    rstd[c] = 1 / Math.sqrt(variance + BN_EPS);
    scale[c] = p.gamma[c] * rstd[c];
    shift[c] = p.beta[c] - mu * scale[c];
    p.runMean[c] = (1 - BN_MOMENTUM) * p.runMean[c] + BN_MOMENTUM * (mu + p.b[c]);
    const unbiased = rows > 1 ? variance * rows / (rows - 1) : variance;
    p.runVar[c] = (1 - BN_MOMENTUM) * p.runVar[c] + BN_MOMENTUM * unbiased;
  }
  affineRelu(z, rows, C, scale, shift, y);
}

/** Inference-mode BatchNorm + ReLU with the running statistics. */
export function bnReluEval(
  z: Float32Array,
  rows: number,
  C: number,
  p: { b: Float32Array; gamma: Float32Array; beta: Float32Array; runMean: Float32Array; runVar: Float32Array },
  y: Float32Array,
): void {
  const scale = new Float64Array(C), shift = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    scale[c] = p.gamma[c] / Math.sqrt(p.runVar[c] + BN_EPS);
    shift[c] = p.beta[c] + (p.b[c] - p.runMean[c]) * scale[c];
  }
  affineRelu(z, rows, C, scale, shift, y);
}

// Branch-free on purpose: a ReLU's sign is a coin toss, and a mispredicted branch costs
// ~10× the arithmetic. max(v, 0) = (v + |v|)/2 exactly; [y > 0] as +(y > 0).
function affineRelu(
  z: Float32Array,
  rows: number,
  C: number,
  scale: Float64Array,
  shift: Float64Array,
  y: Float32Array,
) {
  for (let r = 0, i = 0; r < rows; r++) {
    for (let c = 0; c < C; c++, i++) {
      const v = z[i] * scale[c] + shift[c];
      y[i] = (v + Math.abs(v)) * 0.5;
    }
  }
}

/**
 * Backward of bnReluTrain. dy (gradient wrt y) is overwritten by the gradient wrt z.
 * With dh = dy·[y>0], x̂ = (z−μ)·rstd: dβ = Σdh, dγ = Σdh·x̂,
 * dz = γ·rstd/M·(M·dh − dβ − x̂·dγ), and the conv bias gets Σdz (zero up to rounding).
 */
export function bnReluBackward(
  z: Float32Array,
  y: Float32Array,
  rows: number,
  C: number,
  gamma: Float32Array,
  mean: Float64Array,
  rstd: Float64Array,
  dy: Float32Array,
  g: { b: Float32Array; gamma: Float32Array; beta: Float32Array },
): void {
  const sdh = new Float64Array(C), sdhx = new Float64Array(C);
  for (let r = 0, i = 0; r < rows; r++) {
    for (let c = 0; c < C; c++, i++) {
      const d = dy[i] * +(y[i] > 0);
      sdh[c] += d;
      sdhx[c] += d * (z[i] - mean[c]);
    }
  }
  const k = new Float64Array(C), a = new Float64Array(C), bb = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    sdhx[c] *= rstd[c]; // Σ dh·x̂
    g.beta[c] = sdh[c];
    g.gamma[c] = sdhx[c];
    // dz = k·dh − a − bb·z, with k = γ·rstd, a = k·(dβ − μ·rstd·dγ)/M, bb = k·rstd·dγ/M
    k[c] = gamma[c] * rstd[c];
    a[c] = k[c] * (sdh[c] - mean[c] * rstd[c] * sdhx[c]) / rows;
    bb[c] = k[c] * rstd[c] * sdhx[c] / rows;
  }
  const sdz = new Float64Array(C);
  for (let r = 0, i = 0; r < rows; r++) {
    for (let c = 0; c < C; c++, i++) {
      const dh = dy[i] * +(y[i] > 0);
      const v = k[c] * dh - a[c] - bb[c] * z[i];
      dy[i] = v;
      sdz[c] += v;
    }
  }
  for (let c = 0; c < C; c++) g.b[c] = sdz[c];
}

/**
 * Max-pool, window kh×kw with padding that never wins (every window here holds its centre
 * pixel). Branch-free: max(a, b) = (a + b + |a − b|)/2, exact once stored as float32.
 */
export function maxPoolForward(x: Float32Array, g: ConvGeom, out: Float32Array): void {
  const { n, h, w, c, kh, kw, sh, sw, pt, pl, oh, ow } = g;
  let o = 0;
  for (let b = 0; b < n; b++) {
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++, o += c) {
        let first = true;
        for (let ky = 0; ky < kh; ky++) {
          const iy = oy * sh - pt + ky;
          if (iy < 0 || iy >= h) continue;
          for (let kx = 0; kx < kw; kx++) {
            const ix = ox * sw - pl + kx;
            if (ix < 0 || ix >= w) continue;
            const s = ((b * h + iy) * w + ix) * c;
            if (first) out.set(x.subarray(s, s + c), o);
            else {
              for (let ch = 0; ch < c; ch++) {
                const m = out[o + ch], v = x[s + ch];
                out[o + ch] = (m + v + Math.abs(m - v)) * 0.5;
              }
            }
            first = false;
          }
        }
      }
    }
  }
}

/**
 * Max-pool backward: each output's gradient goes to the first window position (in window
 * order, PyTorch's rule for ties) holding the maximum. dx (input-sized) is overwritten.
 * Branch-free too: the window is scanned backwards and the position selected arithmetically.
 */
export function maxPoolBackward(x: Float32Array, out: Float32Array, dout: Float32Array, g: ConvGeom, dx: Float32Array) {
  const { n, h, w, c, kh, kw, sh, sw, pt, pl, oh, ow } = g;
  dx.fill(0, 0, n * h * w * c);
  const pos = new Float64Array(c);
  let o = 0;
  for (let b = 0; b < n; b++) {
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++, o += c) {
        for (let ky = kh - 1; ky >= 0; ky--) {
          const iy = oy * sh - pt + ky;
          if (iy < 0 || iy >= h) continue;
          for (let kx = kw - 1; kx >= 0; kx--) {
            const ix = ox * sw - pl + kx;
            if (ix < 0 || ix >= w) continue;
            const s = ((b * h + iy) * w + ix) * c;
            for (let ch = 0; ch < c; ch++) {
              const hit = +(x[s + ch] === out[o + ch]);
              pos[ch] += hit * (s + ch - pos[ch]);
            }
          }
        }
        for (let ch = 0; ch < c; ch++) dx[pos[ch]] += dout[o + ch];
      }
    }
  }
}

/**
 * Mean softmax cross-entropy of logits (n × k) against labels; writes dlogits (gradient of
 * the mean loss) when given. Returns the loss and the number of correct argmaxes.
 */
export function softmaxCrossEntropy(
  logits: Float32Array,
  labels: Uint8Array,
  n: number,
  k: number,
  dlogits?: Float32Array,
): { loss: number; correct: number } {
  let loss = 0, correct = 0;
  for (let i = 0; i < n; i++) {
    const o = i * k;
    let max = -Infinity, arg = 0;
    for (let j = 0; j < k; j++) if (logits[o + j] > max) max = logits[o + j], arg = j;
    let sum = 0;
    for (let j = 0; j < k; j++) sum += Math.exp(logits[o + j] - max);
    const y = labels[i];
    loss += Math.log(sum) + max - logits[o + y];
    if (arg === y) correct++;
    if (dlogits) {
      for (let j = 0; j < k; j++) dlogits[o + j] = (Math.exp(logits[o + j] - max) / sum - (j === y ? 1 : 0)) / n;
    }
  }
  return { loss: loss / n, correct };
}

/** PyTorch's Adam (no weight decay, no amsgrad); `step` counts from 1. */
export function adam(
  p: Float32Array,
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  step: number,
  lr: number,
  b1 = 0.9,
  b2 = 0.999,
  eps = 1e-8,
): void {
  const stepSize = lr / (1 - b1 ** step), rbc2 = 1 / Math.sqrt(1 - b2 ** step);
  for (let i = 0; i < p.length; i++) {
    const gi = g[i];
    const mi = b1 * m[i] + (1 - b1) * gi, vi = b2 * v[i] + (1 - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] -= stepSize * mi / (Math.sqrt(vi) * rbc2 + eps);
  }
}
