// How the report writes numbers and small blocks. One rounding rule for
// every percentage and point difference: one decimal, half away from zero,
// after removing float noise (0.5505 → 55.1%, 0.5835 → 58.4%).
import type { Block } from "./document.ts";
import type { Run, Source, Table } from "./inputs.ts";
import type { Estimate } from "./stats.ts";

export const MINUS = "−";
/** A cell of a run that has not run yet (its marker is beside the table or in the row). */
export const NOT_RUN = "—";

/** x rounded to one decimal, half away from zero (x: already in percent or points). */
export function round1(x: number): number {
  const clean = Number(Math.abs(x).toPrecision(10)); // 55.04999… (float for 55.05) → 55.05
  return Math.sign(x) * Math.round(clean * 10) / 10;
}

const finite = (x: unknown): x is number => typeof x === "number" && Number.isFinite(x);

/** A fraction as a percentage: 0.5505 → "55.1%". */
export const pct = (x: number | null | undefined) => finite(x) ? `${round1(x * 100).toFixed(1)}%` : "–";

/** A difference of fractions in percentage points, signed: +5.3, −1.0, ±0.0 (the unit is in the column's head). */
export const pts = (ours: number | null | undefined, study: number) => (finite(ours) ? signed(ours - study) : "–");

/** A signed difference of fractions, in points. */
export function signed(d: number): string {
  const r = round1(d * 100);
  return `${r > 0 ? "+" : r < 0 ? MINUS : "±"}${Math.abs(r).toFixed(1)}`;
}

/** An SD or half-width of fractions, in points, unsigned: 0.011 → "1.1". */
export const spread = (x: number) => round1(x * 100).toFixed(1);

/** "43.8% ± 1.1" (mean ± SD over seeds), or the one value when n = 1. */
export const meanSd = (e: Estimate) => e.sd === undefined ? pct(e.mean) : `${pct(e.mean)} ± ${spread(e.sd)}`;

/** "42.4–45.1%", or "none (n = 1)". */
export const interval = (e: { lo?: number; hi?: number }) =>
  e.lo === undefined || e.hi === undefined
    ? "none (n = 1)"
    : `${round1(e.lo * 100).toFixed(1)}–${round1(e.hi * 100).toFixed(1)}%`;

export const seconds = (s: number) =>
  !Number.isFinite(s) || s < 0
    ? "–"
    : s < 10
    ? `${s.toFixed(1)} s`
    : s < 59.5
    ? `${s.toFixed(0)} s`
    : s < 3600
    ? `${Math.floor(s / 60)} min ${String(Math.round(s % 60)).padStart(2, "0")} s`
    : `${Math.floor(s / 3600)} h ${String(Math.round((s % 3600) / 60)).padStart(2, "0")} min`;

export const rate = (x: number) => (!Number.isFinite(x) ? "–" : x >= 100 ? x.toFixed(0) : x.toPrecision(3));

/** A generic cell: numbers compactly, booleans as ✓/✗, lists and objects inline. */
export function cell(v: unknown, key = ""): string {
  if (v === null || v === undefined) return "–";
  if (typeof v === "boolean") return v ? "✓" : "✗";
  if (typeof v === "number") {
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    return a !== 0 && (a < 1e-3 || a >= 1e6) ? v.toExponential(2) : String(+v.toPrecision(4));
  }
  if (Array.isArray(v) && v.every((x) => typeof x === "number")) return v.join(/shape|dims/i.test(key) ? "×" : ", ");
  if (typeof v === "object") return `\`${JSON.stringify(v)}\``;
  return String(v);
}

export const provId = (stage: string) => `prov-${stage.replace(/[^a-zA-Z0-9]+/g, "-")}`;
/** A link to a run's provenance. */
export const src = (s: Source | Run) => `[\`${s.stage}\`](#${provId(s.stage)})`;

/** The parameters a run really used: its history's, else the engine's record. */
export const paramsOf = (r: Run): Record<string, unknown> => ({ ...r.source.provenance?.params, ...r.history.params });

/** "hidden 100, lr 0.002, …" */
export const settings = (r: Run) =>
  Object.entries(paramsOf(r)).map(([k, v]) => `${k} ${cell(v, k)}`).join(", ") || "not recorded";

/** "steps 30 (study 1500)" for every setting that differs from the study's. */
export function deviations(r: Run | Record<string, unknown>, study: Record<string, unknown>): string[] {
  const p = "history" in r && "source" in r ? paramsOf(r as Run) : r;
  const same = (a: unknown, b: unknown) =>
    typeof a === "number" && typeof b === "number"
      ? Math.abs(a - b) <= 1e-9 * Math.max(Math.abs(a), Math.abs(b))
      : JSON.stringify(a) === JSON.stringify(b);
  return Object.entries(study)
    .filter(([k, v]) => k in p && !same(p[k], v))
    .map(([k, v]) => `${k} ${cell(p[k], k)} (study ${cell(v, k)})`);
}

/** A table of row objects; `heads` renames columns (the report shows words, not field names). */
export function tableBlock(t: Table, heads: Record<string, string> = {}, limit = 60): Block[] {
  const cols = [...new Set(t.rows.flatMap((r) => Object.keys(r)))];
  const rows = t.rows.slice(0, limit).map((r) => cols.map((c) => cell(r[c], c)));
  const numeric = (v: unknown) => typeof v === "number" || v == null || /^[\d.]+%$/.test(String(v));
  const right = cols.map((c, i) => (t.rows.every((r) => numeric(r[c])) ? i : -1))
    .filter((i) => i >= 0);
  const out: Block[] = [];
  if (t.title) out.push({ kind: "para", text: `**${t.title}**` });
  out.push({ kind: "table", head: cols.map((c) => heads[c] ?? c), rows, right });
  if (t.rows.length > limit) out.push({ kind: "para", text: `(first ${limit} of ${t.rows.length} rows)` });
  return out;
}

export function scalarsBlock(scalars: Record<string, unknown>): Block[] {
  const items = Object.entries(scalars).map(([k, v]) => `${k}: ${cell(v, k)}`);
  return items.length ? [{ kind: "list", items }] : [];
}
