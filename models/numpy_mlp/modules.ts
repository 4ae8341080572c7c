// The assignment's modules with hand-written forward and backward passes over
// whole mini-batches (matrix products, no loop over samples), no autograd.
// Generic over Float32Array (training) and Float64Array (gradient checks).
//
// Layout: a batch is B×F, row-major. Linear stores its weight as in×out (the
// study's code stored out×in and computed W·xᵀ): forward is then x·W, and the
// backward products xᵀ·dY and dY·Wᵀ read the stored arrays directly.
import { Rng } from "../../data/rng.ts";
import { addRow, type Arr, type Mat, matmul, sumRows, zeros } from "./tensor.ts";

export interface Module<A extends Arr> {
  forward(x: Mat<A>): Mat<A>;
  backward(dout: Mat<A>): Mat<A>;
}

/** y = x·W + b; weights N(0, std²) (the study: std 1e-4), biases 0. */
export class Linear<A extends Arr> implements Module<A> {
  weight: Mat<A>;
  bias: A;
  gradWeight: Mat<A>;
  gradBias: A;
  /** The first layer needs no gradient for its input (the images): skip that product. */
  inputGrad = true;
  private x?: Mat<A>;

  constructor(readonly inFeatures: number, readonly outFeatures: number, rng: Rng, like: A, std = 1e-4) {
    this.weight = zeros(inFeatures, outFeatures, like);
    for (let i = 0; i < this.weight.data.length; i++) this.weight.data[i] = std * rng.normal();
    this.bias = zeros(1, outFeatures, like).data;
    this.gradWeight = zeros(inFeatures, outFeatures, like);
    this.gradBias = zeros(1, outFeatures, like).data;
  }

  forward(x: Mat<A>): Mat<A> {
    this.x = x;
    return addRow(matmul(x, this.weight), this.bias);
  }

  /** dW = xᵀ·dY (summed over the batch), db = Σ_batch dY, dx = dY·Wᵀ. */
  backward(dout: Mat<A>): Mat<A> {
    if (!this.x) throw new Error("Linear.backward before forward");
    matmul(this.x, dout, true, false, this.gradWeight);
    sumRows(dout, this.gradBias);
    return this.inputGrad ? matmul(dout, this.weight, false, true) : dout;
  }
}

/** max(0, x); the derivative is taken as 0 at 0 (as the study's code; its report says 1). */
export class ReLU<A extends Arr> implements Module<A> {
  private mask?: Uint8Array;

  forward(x: Mat<A>): Mat<A> {
    const out = zeros(x.rows, x.cols, x.data);
    const mask = new Uint8Array(x.data.length);
    for (let i = 0; i < x.data.length; i++) {
      if (x.data[i] > 0) {
        out.data[i] = x.data[i];
        mask[i] = 1;
      }
    }
    this.mask = mask;
    return out;
  }

  backward(dout: Mat<A>): Mat<A> {
    if (!this.mask) throw new Error("ReLU.backward before forward");
    const dx = zeros(dout.rows, dout.cols, dout.data);
    for (let i = 0; i < dx.data.length; i++) if (this.mask[i]) dx.data[i] = dout.data[i];
    return dx;
  }
}

/** Row-wise softmax with max-subtraction. */
export class SoftMax<A extends Arr> implements Module<A> {
  private out?: Mat<A>;

  forward(x: Mat<A>): Mat<A> {
    const { rows, cols, data } = x;
    const out = zeros(rows, cols, data);
    const o = out.data;
    for (let i = 0; i < rows; i++) {
      const r = i * cols;
      let max = -Infinity;
      for (let j = 0; j < cols; j++) max = Math.max(max, data[r + j]);
      let sum = 0;
      for (let j = 0; j < cols; j++) sum += o[r + j] = Math.exp(data[r + j] - max);
      for (let j = 0; j < cols; j++) o[r + j] /= sum;
    }
    this.out = out;
    return out;
  }

  /** The Jacobian diag(s) − s·sᵀ applied per row: dx = s ⊙ (dy − ⟨dy, s⟩). */
  backward(dout: Mat<A>): Mat<A> {
    const s = this.out;
    if (!s) throw new Error("SoftMax.backward before forward");
    const { rows, cols } = s;
    const dx = zeros(rows, cols, dout.data);
    for (let i = 0; i < rows; i++) {
      const r = i * cols;
      let dot = 0;
      for (let j = 0; j < cols; j++) dot += dout.data[r + j] * s.data[r + j];
      for (let j = 0; j < cols; j++) dx.data[r + j] = s.data[r + j] * (dout.data[r + j] - dot);
    }
    return dx;
  }
}

/** Cross-entropy of probabilities x against labels y (class indices), mean over the batch, 1e-8 inside the log. */
export class CrossEntropy {
  static readonly EPS = 1e-8;

  forward<A extends Arr>(x: Mat<A>, y: Uint8Array): number {
    let s = 0;
    for (let i = 0; i < x.rows; i++) s -= Math.log(x.data[i * x.cols + y[i]] + CrossEntropy.EPS);
    return s / x.rows;
  }

  /** dL/dx: −1/(B·(x+1e-8)) at each row's label, 0 elsewhere. */
  backward<A extends Arr>(x: Mat<A>, y: Uint8Array): Mat<A> {
    const dx = zeros(x.rows, x.cols, x.data);
    for (let i = 0; i < x.rows; i++) {
      const k = i * x.cols + y[i];
      dx.data[k] = -1 / (x.rows * (x.data[k] + CrossEntropy.EPS));
    }
    return dx;
  }
}

/** Linear→ReLU per hidden layer, then Linear→SoftMax: forward gives class probabilities. */
export class MLP<A extends Arr> {
  readonly linears: Linear<A>[] = [];
  private readonly modules: Module<A>[] = [];

  constructor(inputs: number, hidden: number[], classes: number, rng: Rng, like: A) {
    const sizes = [inputs, ...hidden, classes];
    for (let l = 0; l + 1 < sizes.length; l++) {
      const lin = new Linear(sizes[l], sizes[l + 1], rng, like);
      this.linears.push(lin);
      this.modules.push(lin, l + 2 < sizes.length ? new ReLU<A>() : new SoftMax<A>());
    }
    this.linears[0].inputGrad = false;
  }

  forward(x: Mat<A>): Mat<A> {
    return this.modules.reduce((h, m) => m.forward(h), x);
  }

  backward(dout: Mat<A>): void {
    this.modules.reduceRight((d, m) => m.backward(d), dout);
  }
}
