// The seeded generator of the data module: xoshiro128** (Blackman & Vigna,
// 2018), a 32-bit generator with 128 bits of state, whose state is filled from
// the seed by SplitMix32 (a Weyl sequence step of 0x9e3779b9 followed by the
// MurmurHash3 fmix32 finaliser). Everything here uses 32-bit integer ops only,
// so the streams are identical on every platform.

export class Rng {
  private s = new Uint32Array(4);

  constructor(seed = 42) {
    let x = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
    if (this.s.every((v) => v === 0)) this.s[0] = 1; // all-zero state is a fixed point
  }

  /** A generator with the given raw state (for checks against the reference implementation). */
  static fromState(state: [number, number, number, number]): Rng {
    const r = new Rng(0);
    r.s.set(state);
    return r;
  }

  /** Next uniform 32-bit unsigned integer. */
  nextU32(): number {
    const s = this.s;
    const r = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return r;
  }

  /** Uniform float in [0, 1) with 32 random bits. */
  next(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform integer in [0, k), unbiased (rejection of the top partial range). */
  below(k: number): number {
    if (!(k >= 1 && k <= 4294967296)) throw new RangeError(`below(${k})`);
    const limit = 4294967296 - (4294967296 % k);
    for (;;) {
      const r = this.nextU32();
      if (r < limit) return r % k;
    }
  }

  /** Standard normal draw (Box–Muller). */
  normal(): number {
    const u = 1 - this.next(); // (0, 1]
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }

  /** Fisher–Yates shuffle in place: for i = n−1 … 1 swap a[i] with a[below(i+1)]. */
  shuffle<T extends { length: number; [i: number]: unknown }>(a: T): T {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.below(i + 1);
      const tmp = a[i];
      a[i] = a[j];
      a[j] = tmp;
    }
    return a;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
