// Adam as PyTorch's torch.optim.Adam computes it (β₁ 0.9, β₂ 0.999, ε 1e-8):
// m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g², p ← p − (lr/(1−β₁ᵗ))·m/(√v/√(1−β₂ᵗ) + ε).
// Written out (rather than tf.train.adam) so that its whole state — m, v, t —
// is in plain view for checkpoints. On the wasm backend one fused kernel does the
// same float32 operations in one pass (compute/adam_kernel.ts: same bits), in place
// where nothing else shares the variables' data.
import { ADAM_KERNEL, type AdamAttrs, adamInPlace } from "../compute/adam_kernel.ts";
import { tf } from "../compute/backend.ts";

export class Adam {
  t = 0;
  /** Use the fused kernel where the backend has it (tests compare it with the tfjs ops). */
  fusedKernel = true;
  /** With the fused kernel, update in place where it can (tests compare it with the kernel). */
  inPlace = true;
  readonly m: tf.Variable[];
  readonly v: tf.Variable[];

  constructor(
    readonly params: tf.Variable[],
    readonly lr: number,
    readonly b1 = 0.9,
    readonly b2 = 0.999,
    readonly eps = 1e-8,
  ) {
    this.m = tf.tidy(() => params.map((p) => tf.variable(tf.zerosLike(p), false)));
    this.v = tf.tidy(() => params.map((p) => tf.variable(tf.zerosLike(p), false)));
  }

  /** One update; grads[i] belongs to params[i]. */
  step(grads: tf.Tensor[]): void {
    this.t++;
    const stepSize = this.lr / (1 - this.b1 ** this.t);
    const sqrtBc2 = Math.sqrt(1 - this.b2 ** this.t);
    const fused = this.fusedKernel && tf.getKernel(ADAM_KERNEL, tf.getBackend()) !== undefined;
    const attrs: AdamAttrs = { b1: this.b1, b2: this.b2, eps: this.eps, stepSize, sqrtBc2 };
    tf.tidy(() => {
      this.params.forEach((p, i) => {
        const g = grads[i];
        if (fused && p.dtype === "float32" && g.dtype === "float32") {
          if (this.inPlace && adamInPlace(tf.backend(), p, g, this.m[i], this.v[i], attrs)) return;
          const inputs = { p, g, m: this.m[i], v: this.v[i] };
          const [np, nm, nv] = tf.engine().runKernel(ADAM_KERNEL, inputs, { ...attrs }) as tf.Tensor[];
          this.m[i].assign(nm);
          this.v[i].assign(nv);
          p.assign(np);
          return;
        }
        const m = tf.add(tf.mul(this.m[i], this.b1), tf.mul(g, 1 - this.b1));
        const v = tf.add(tf.mul(this.v[i], this.b2), tf.mul(tf.square(g), 1 - this.b2));
        this.m[i].assign(m);
        this.v[i].assign(v);
        const denom = tf.add(tf.div(tf.sqrt(v), sqrtBc2), this.eps);
        p.assign(tf.sub(p, tf.mul(tf.div(m, denom), stepSize)));
      });
    });
  }

  /** The optimiser's state tensors (t is saved separately). */
  variables(): tf.Variable[] {
    return [...this.m, ...this.v];
  }

  dispose(): void {
    for (const v of this.variables()) v.dispose();
  }
}
