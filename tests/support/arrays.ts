// Helpers the kernel and model tests share: reproducible inputs, and a tolerance check.
import assert from "node:assert/strict";

/** n floats in [lo, hi) from a linear congruential generator started at `seed`. */
export function rand(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return lo + (hi - lo) * (s / 2 ** 32);
  });
}

/** |got − want| ≤ atol + rtol·max|want| elementwise. */
export function close(got: ArrayLike<number>, want: ArrayLike<number>, what: string, rtol = 1e-4, atol = 1e-6) {
  assert.equal(got.length, want.length, `${what}: length`);
  let scale = 0;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]));
  for (let i = 0; i < got.length; i++) {
    if (!(Math.abs(got[i] - want[i]) <= atol + rtol * scale)) {
      assert.fail(`${what}: element ${i} is ${got[i]}, want ${want[i]} (max |want| ${scale})`);
    }
  }
}
