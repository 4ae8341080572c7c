// The study's PyTorch MLP in tfjs: per layer [BatchNorm] → Linear → ReLU →
// [Dropout 0.5], no ReLU or dropout after the last Linear. Weights are stored
// in×out so that the forward product is x·W.
import { Rng } from "../../data/rng.ts";
import { BatchNorm, type BnImpl } from "../batchnorm/bn.ts";
import { tf } from "../compute/backend.ts";
import { dense } from "../compute/mlp_kernels.ts";

export interface MlpSpec {
  inputs: number;
  hidden: number[];
  classes: number;
  dropout: boolean;
  batchnorm: "none" | BnImpl;
}

export class TorchMlp {
  readonly weights: tf.Variable[] = [];
  readonly biases: tf.Variable[] = [];
  readonly norms: BatchNorm[] = [];
  readonly sizes: number[];

  /** PyTorch's nn.Linear initialisation: weights and biases uniform in ±1/√fan_in, drawn from `rng`. */
  constructor(readonly spec: MlpSpec, rng: Rng) {
    this.sizes = [spec.inputs, ...spec.hidden, spec.classes];
    for (let l = 0; l + 1 < this.sizes.length; l++) {
      const [fanIn, fanOut] = [this.sizes[l], this.sizes[l + 1]];
      const bound = 1 / Math.sqrt(fanIn);
      const uniform = (n: number) => Float32Array.from({ length: n }, () => bound * (2 * rng.next() - 1));
      if (spec.batchnorm !== "none") this.norms.push(new BatchNorm(fanIn, spec.batchnorm));
      const [w, b] = [uniform(fanIn * fanOut), uniform(fanOut)];
      this.weights.push(tf.tidy(() => tf.variable(tf.tensor2d(w, [fanIn, fanOut]), true)));
      this.biases.push(tf.tidy(() => tf.variable(tf.tensor1d(b), true)));
    }
  }

  /** Hidden layer widths that get a dropout mask. */
  get hiddenSizes(): number[] {
    return this.sizes.slice(1, -1);
  }

  /** Logits. In training mode: batch statistics (running ones updated) and the given dropout masks (values 0 or 2). */
  forward(x: tf.Tensor2D, training: boolean, masks: tf.Tensor2D[] = []): tf.Tensor2D {
    let h = x;
    for (let l = 0; l < this.weights.length; l++) {
      if (this.norms.length) h = this.norms[l].apply(h, training);
      const hidden = l + 1 < this.weights.length;
      h = dense(h, this.weights[l] as tf.Tensor2D, this.biases[l] as tf.Tensor1D, hidden); // ReLU on hidden layers
      if (hidden && training && this.spec.dropout) h = tf.mul(h, masks[l]);
    }
    return h;
  }

  /** Parameters Adam updates. */
  trainable(): tf.Variable[] {
    return [...this.weights, ...this.biases, ...this.norms.flatMap((n) => [n.gamma, n.beta])];
  }

  /** Everything a checkpoint must hold (trainable first, then the running statistics). */
  variables(): tf.Variable[] {
    return [...this.trainable(), ...this.norms.flatMap((n) => [n.runningMean, n.runningVar])];
  }

  dispose(): void {
    for (const v of this.variables()) v.dispose();
  }
}

/**
 * Dropout masks (p = 0.5, kept units scaled by 2) for one training step, as a
 * pure function of (seed, step): a resumed run draws the same masks with no
 * generator state to save. One random bit per unit. `out`: buffers to fill
 * (reused across steps: fresh large arrays cost page faults).
 */
export function dropoutMasks(
  seed: number,
  step: number,
  batch: number,
  sizes: number[],
  out?: Float32Array[],
): Float32Array[] {
  const rng = new Rng(mix(seed, step));
  return sizes.map((f, l) => {
    const m = out?.[l] ?? new Float32Array(batch * f);
    if (m.length !== batch * f) throw new RangeError(`dropoutMasks: buffer ${l} holds ${m.length}, needs ${batch * f}`);
    for (let w = 0; w < m.length; w += 32) {
      const bits = rng.nextU32();
      const end = Math.min(32, m.length - w);
      for (let k = 0; k < end; k++) m[w + k] = ((bits >>> k) & 1) * 2; // arithmetic, not a branch: the bits are random
    }
    return m;
  });
}

/** A 32-bit hash of (seed, step) (MurmurHash3's finaliser) to seed the step's generator. */
function mix(seed: number, step: number): number {
  let h = (Math.imul(seed ^ 0x5bd1e995, 0x9e3779b1) ^ Math.imul(step + 1, 0x85ebca6b)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}
