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

/** One-sided 95% quantiles of Student's t (two-sided 90%) for 1…30 degrees of freedom (beyond: 1.645). */
const T90 = [
  6.314,
  2.92,
  2.353,
  2.132,
  2.015,
  1.943,
  1.895,
  1.86,
  1.833,
  1.812,
  1.796,
  1.782,
  1.771,
  1.761,
  1.753,
  1.746,
  1.74,
  1.734,
  1.729,
  1.725,
  1.721,
  1.717,
  1.714,
  1.711,
  1.708,
  1.706,
  1.703,
  1.701,
  1.699,
  1.697,
];

/** t(0.95, df), the one-sided 5% quantile (two one-sided tests); a fractional df rounds down. */
export function t90(df: number): number {
  const d = Math.floor(df);
  if (!(d >= 1)) return NaN;
  return d <= T90.length ? T90[d - 1] : 1.645;
}

/** A row's values over seeds, each with the seed that made it (to pair two rows seed by seed). */
export type Sample = { seed: number; value: number }[];

/** a − b over seeds: the difference of the means with its 95% and 90% intervals (none unless both n ≥ 2). */
export interface Comparison {
  diff: number;
  na: number;
  nb: number;
  /** Paired seed by seed (both rows have the same seeds), else Welch. */
  paired: boolean;
  df?: number;
  lo?: number;
  hi?: number;
  /** The two-sided 90% interval: its ends are the two one-sided 5% tests of an equivalence (TOST). */
  lo90?: number;
  hi90?: number;
}

/**
 * a − b: paired by seed when both rows have the same seeds (n ≥ 2): the t interval of the per-seed
 * differences, n − 1 degrees of freedom; otherwise Welch's interval of two independent means.
 */
export function compare(a: Sample, b: Sample): Comparison {
  const ea = estimate(a.map((x) => x.value));
  const eb = estimate(b.map((x) => x.value));
  const diff = ea.mean - eb.mean;
  const base = { diff, na: a.length, nb: b.length, paired: false };
  if (a.length < 2 || b.length < 2) return base;
  const bySeed = new Map(b.map((x) => [x.seed, x.value]));
  const same = a.length === b.length && new Set(a.map((x) => x.seed)).size === a.length &&
    a.every((x) => bySeed.has(x.seed));
  let se: number, df: number;
  if (same) {
    const d = estimate(a.map((x) => x.value - bySeed.get(x.seed)!));
    se = d.sd! / Math.sqrt(d.n);
    df = d.n - 1;
  } else {
    const va = ea.sd! ** 2 / ea.n;
    const vb = eb.sd! ** 2 / eb.n;
    se = Math.sqrt(va + vb);
    df = se === 0 ? ea.n + eb.n - 2 : (va + vb) ** 2 / (va ** 2 / (ea.n - 1) + vb ** 2 / (eb.n - 1));
  }
  const h95 = t95(df) * se;
  const h90 = t90(df) * se;
  return {
    ...base,
    paired: same,
    df,
    lo: diff - h95,
    hi: diff + h95,
    lo90: diff - h90,
    hi90: diff + h90,
  };
}
