// The statistics of the report: mean, sample SD and a t-based 95% interval
// over seeds (small n), and the difference of two such means (Welch).

/** Two-sided 95% quantiles of Student's t for 1…30 degrees of freedom (beyond: the normal's 1.96). */
const T95 = [
  12.706,
  4.303,
  3.182,
  2.776,
  2.571,
  2.447,
  2.365,
  2.306,
  2.262,
  2.228,
  2.201,
  2.179,
  2.16,
  2.145,
  2.131,
  2.12,
  2.11,
  2.101,
  2.093,
  2.086,
  2.08,
  2.074,
  2.069,
  2.064,
  2.06,
  2.056,
  2.052,
  2.048,
  2.045,
  2.042,
];

/** t(0.975, df); a fractional df (Welch) rounds down, the conservative side. */
export function t95(df: number): number {
  const d = Math.floor(df);
  if (!(d >= 1)) return NaN;
  return d <= T95.length ? T95[d - 1] : 1.96;
}

/** Our number for one row: the values over its seeds, their mean, and with n ≥ 2 the SD and 95% interval. */
export interface Estimate {
  values: number[];
  n: number;
  mean: number;
  /** Sample SD (n − 1); undefined for n = 1 (no spread measured). */
  sd?: number;
  /** The t-based 95% interval of the mean; undefined for n = 1. */
  lo?: number;
  hi?: number;
}

export function estimate(values: number[]): Estimate {
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  if (n < 2) return { values, n, mean };
  const sd = Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1));
  const half = t95(n - 1) * sd / Math.sqrt(n);
  return { values, n, mean, sd, lo: mean - half, hi: mean + half };
}

/** a − b with a Welch 95% interval; no interval unless both have n ≥ 2. */
export function difference(a: Estimate, b: Estimate): { diff: number; lo?: number; hi?: number; df?: number } {
  const diff = a.mean - b.mean;
  if (a.sd === undefined || b.sd === undefined) return { diff };
  const va = a.sd ** 2 / a.n;
  const vb = b.sd ** 2 / b.n;
  const se = Math.sqrt(va + vb);
  if (se === 0) return { diff, lo: diff, hi: diff, df: a.n + b.n - 2 };
  const df = (va + vb) ** 2 / (va ** 2 / (a.n - 1) + vb ** 2 / (b.n - 1));
  const half = t95(df) * se;
  return { diff, lo: diff - half, hi: diff + half, df };
}
