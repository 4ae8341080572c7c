// Finite-difference gradient checks as the assignment's unittests.py did them:
// central differences (h = 1e-5) in float64 and the largest elementwise
// relative error max |a−b| / max(1e-8, |a|+|b|).
import type { Arr } from "./tensor.ts";

export function relError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`relError: lengths ${a.length} and ${b.length}`);
  let e = 0;
  for (let i = 0; i < a.length; i++) {
    e = Math.max(e, Math.abs(a[i] - b[i]) / Math.max(1e-8, Math.abs(a[i]) + Math.abs(b[i])));
  }
  return e;
}

/** d⟨f(x), dout⟩/dx by central differences, perturbing x in place (restored afterwards). */
export function numericGradArray(f: () => ArrayLike<number>, x: Arr, dout: ArrayLike<number>, h = 1e-5): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const old = x[i];
    x[i] = old + h;
    const pos = Float64Array.from(f());
    x[i] = old - h;
    const neg = Float64Array.from(f());
    x[i] = old;
    let s = 0;
    for (let k = 0; k < pos.length; k++) s += (pos[k] - neg[k]) * dout[k];
    g[i] = s / (2 * h);
  }
  return g;
}

/** dL/dx of a scalar function by central differences. */
export function numericGradScalar(f: () => number, x: Arr, h = 1e-5): Float64Array {
  return numericGradArray(() => [f()], x, [1], h);
}
