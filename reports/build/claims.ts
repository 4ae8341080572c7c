// The verdict rule of the report's claims, written once: each claim of the
// study is split into parts (a threshold, a direction, an equivalence), each
// part judged from our runs over seeds, and the claim's verdict is the
// conjunction of its parts. A part on one seed gets no interval and no verdict.
import { pct, signed, spread } from "./format.ts";
import type { Comparison, Estimate } from "./stats.ts";

export type Outcome = "holds" | "does not hold" | "inconclusive";

/** One judged part of a claim: what it compares, the outcome, the smallest n it rests on, the evidence in words. */
export interface Part {
  outcome: Outcome;
  /** The fewest seeds among the rows it uses (1: no interval, no verdict; 0: a row has not run). */
  n: number;
  evidence: string;
}

/** "46.1–48.0%" of a fraction interval. */
const range = (lo: number, hi: number) => `${spread(lo)}–${spread(hi)}%`;
/** "−1.2 to +3.4" of a points interval. */
const ptsRange = (lo: number, hi: number) => `${signed(lo)} to ${signed(hi)}`;

/** A row that has not run: its part rests on nothing. */
export const notRun = (label: string): Part => ({ outcome: "inconclusive", n: 0, evidence: `${label}: not run yet` });

const estimateText = (label: string, e: Estimate) =>
  e.n < 2
    ? `${label} ${pct(e.mean)} (one seed)`
    : `${label} ${pct(e.mean)} ± ${spread(e.sd!)} (n = ${e.n}, 95% ${range(e.lo!, e.hi!)})`;

/** A single row against a threshold: holds when the 95% interval of its mean lies wholly on the claimed side. */
export function threshold(label: string, e: Estimate, t: number, side: "below" | "above"): Part {
  const evidence = estimateText(label, e);
  if (e.n < 2) return { outcome: "inconclusive", n: e.n, evidence };
  const below = e.hi! < t, above = e.lo! > t;
  const outcome = (side === "below" ? below : above)
    ? "holds"
    : (side === "below" ? above : below)
    ? "does not hold"
    : "inconclusive";
  return { outcome, n: e.n, evidence };
}

/** Every seed of a row at 100% (train accuracy): holds when all of n ≥ 2 seeds are; not when the interval is below. */
export function complete(label: string, e: Estimate): Part {
  const full = e.values.filter((v) => v >= 1).length, short = e.values.filter((v) => v < 1);
  const evidence = `${label} ${pct(e.mean)}, 100% on ${full} of ${e.n} seed${e.n === 1 ? "" : "s"}` +
    (full && short.length ? ` (the other${short.length === 1 ? "" : "s"}: ${short.map(pct).join(", ")})` : "");
  if (e.n < 2) return { outcome: "inconclusive", n: e.n, evidence };
  const outcome = full === e.n ? "holds" : e.hi! < 1 ? "does not hold" : "inconclusive";
  return { outcome, n: e.n, evidence };
}

const comparisonText = (label: string, c: Comparison, ninety = false) => {
  const n = Math.min(c.na, c.nb);
  if (c.lo === undefined) return `${label}: ${signed(c.diff)} pts (one seed${c.na === 1 && c.nb === 1 ? " each" : ""})`;
  const how = c.paired ? `paired by seed, n = ${c.na}` : `Welch, n = ${c.na} and ${c.nb}`;
  const ci = ninety
    ? `90% ${ptsRange(c.lo90!, c.hi90!)}, 95% ${ptsRange(c.lo!, c.hi!)}`
    : `95% ${ptsRange(c.lo!, c.hi!)}`;
  return n < 2 ? `${label}: ${signed(c.diff)} pts` : `${label}: ${signed(c.diff)} pts (${how}; ${ci})`;
};

/** a − b in the claimed direction (sign −1: a below b): holds when the 95% interval excludes 0 on that side. */
export function direction(label: string, c: Comparison, sign: 1 | -1): Part {
  const n = Math.min(c.na, c.nb);
  const evidence = comparisonText(label, c);
  if (c.lo === undefined) return { outcome: "inconclusive", n, evidence };
  const pos = c.lo > 0, neg = c.hi! < 0;
  const outcome = (sign > 0 ? pos : neg) ? "holds" : (sign > 0 ? neg : pos) ? "does not hold" : "inconclusive";
  return { outcome, n, evidence };
}

/**
 * a and b equivalent within ±margin (two one-sided tests at 5%): holds when the 90% interval of a − b lies
 * inside (−margin, +margin); does not hold when the 95% interval lies wholly outside it.
 */
export function equivalent(label: string, c: Comparison, margin: number): Part {
  const n = Math.min(c.na, c.nb);
  const evidence = comparisonText(label, c, true) + `; margin ±${spread(margin)}`;
  if (c.lo === undefined) return { outcome: "inconclusive", n, evidence };
  const outcome = c.lo90! > -margin && c.hi90! < margin
    ? "holds"
    : c.lo! > margin || c.hi! < -margin
    ? "does not hold"
    : "inconclusive";
  return { outcome, n, evidence };
}

/**
 * a does not improve on b: does not hold when the 95% interval of a − b lies above 0 (a real gain);
 * holds when it lies below +margin (any gain smaller than the margin).
 */
export function noGain(label: string, c: Comparison, margin: number): Part {
  const n = Math.min(c.na, c.nb);
  const evidence = comparisonText(label, c) + `; margin +${spread(margin)}`;
  if (c.lo === undefined) return { outcome: "inconclusive", n, evidence };
  const outcome = c.lo > 0 ? "does not hold" : c.hi! < margin ? "holds" : "inconclusive";
  return { outcome, n, evidence };
}

/**
 * A claim's verdict from its parts: "does not hold" when a part on ≥ 2 seeds does not; else "not run yet" or
 * "inconclusive: one seed" when a part lacks seeds; else "inconclusive at n = k" (k the fewest seeds) when a part
 * is; else "holds".
 */
export function verdictOf(parts: Part[]): { outcome: Outcome; text: string } {
  if (parts.some((p) => p.n >= 2 && p.outcome === "does not hold")) {
    return { outcome: "does not hold", text: "does not hold" };
  }
  if (parts.some((p) => p.n === 0)) return { outcome: "inconclusive", text: "inconclusive: not run yet" };
  if (parts.some((p) => p.n === 1)) return { outcome: "inconclusive", text: "inconclusive: one seed" };
  if (parts.some((p) => p.outcome === "inconclusive")) {
    return { outcome: "inconclusive", text: `inconclusive at n = ${Math.min(...parts.map((p) => p.n))}` };
  }
  return { outcome: "holds", text: "holds" };
}
