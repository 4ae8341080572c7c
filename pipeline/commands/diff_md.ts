// `diff --md` and the regression gate `diff --fail-on`: the delta table of two lock files (or
// two runs) with seeded nodes folded into one row per metric (mean ± SD over seeds), written
// with the report's precision (accuracies in %, differences in points), and the metrics a
// change must not move past a limit (exit 3: a regression, apart from failure 1 and usage 2).
import { cell, MINUS, pct, round1, signed, spread } from "../../reports/build/format.ts";
import type { LockFile } from "../engine/lockfile.ts";
import { PipelineError } from "../types.ts";

export interface DeltaRow {
  /** The node, or for a seeded node the base node with its seeds folded in. */
  stage: string;
  kind: "param" | "metric";
  name: string;
  /** Seeded metrics: the mean over seeds. */
  old: unknown;
  new: unknown;
  /** new − old, for numbers. */
  change?: number;
  /** (new − old) / |old|, for numbers with old ≠ 0. */
  relative?: number;
  /** Seeded metrics: the seeds' SD (n ≥ 2) and count, on each side. */
  oldSd?: number;
  newSd?: number;
  seeds?: { old: number; new: number };
  /** False for the rows only --all shows. */
  changed: boolean;
}

/** `train-cnn+s3` → `train-cnn`; other nodes are their own group. */
export const seedBase = (node: string) => /^(.+)\+s\d+$/.exec(node)?.[1] ?? node;

interface Side {
  params: Record<string, unknown>;
  metrics: Record<string, { value: unknown; sd?: number; n: number }>;
}

/** A group of nodes (a base and its seeds) in one lock file: the base's parameters, metrics over seeds. */
function side(lock: LockFile, members: string[]): Side | undefined {
  const present = members.filter((m) => lock.stages[m]);
  if (!present.length) return undefined;
  const first = lock.stages[present[0]];
  const params = { ...first.params } as Record<string, unknown>;
  if (present.length > 1) delete params.seed;
  const metrics: Side["metrics"] = {};
  const names = [...new Set(present.flatMap((m) => Object.keys(lock.stages[m].metrics ?? {})))];
  for (const name of names) {
    const values = present.map((m) => lock.stages[m].metrics?.[name]).filter((v) => v !== undefined);
    if (present.length === 1) {
      metrics[name] = { value: values[0], n: 1 };
      continue;
    }
    const nums = values.filter((v): v is number => typeof v === "number" && Number.isFinite(v));
    if (nums.length !== values.length || !nums.length) continue; // a string metric of several seeds: not folded
    const mean = nums.reduce((s, x) => s + x, 0) / nums.length;
    const raw = nums.length > 1
      ? Math.sqrt(nums.reduce((s, x) => s + (x - mean) ** 2, 0) / (nums.length - 1))
      : undefined;
    const sd = raw !== undefined && raw <= 1e-12 * Math.max(1, Math.abs(mean)) ? 0 : raw; // float noise of equal values
    metrics[name] = { value: mean, sd, n: nums.length };
  }
  return { params, metrics };
}

const same = (x: unknown, y: unknown) => JSON.stringify(x) === JSON.stringify(y);

/** The delta table between two lock files: changed rows, or every row with `all`. */
export function deltaRows(a: LockFile, b: LockFile, all = false): DeltaRow[] {
  const nodes = [...new Set([...Object.keys(a.stages), ...Object.keys(b.stages)])];
  const groups = Map.groupBy(nodes, seedBase);
  const rows: DeltaRow[] = [];
  for (const base of [...groups.keys()].sort()) {
    const members = groups.get(base)!.sort();
    const [x, y] = [side(a, members), side(b, members)];
    const seeded = Math.max(members.filter((m) => a.stages[m]).length, members.filter((m) => b.stages[m]).length) > 1;
    for (const name of [...new Set([...Object.keys(x?.params ?? {}), ...Object.keys(y?.params ?? {})])].sort()) {
      const [o, n] = [x?.params[name], y?.params[name]];
      if (all || !same(o, n)) rows.push(row(base, "param", name, o, n));
    }
    for (const name of [...new Set([...Object.keys(x?.metrics ?? {}), ...Object.keys(y?.metrics ?? {})])].sort()) {
      const [o, n] = [x?.metrics[name], y?.metrics[name]];
      const r = row(base, "metric", name, o?.value, n?.value);
      if (seeded) {
        r.seeds = { old: o?.n ?? 0, new: n?.n ?? 0 };
        if (o?.sd !== undefined) r.oldSd = o.sd;
        if (n?.sd !== undefined) r.newSd = n.sd;
        r.changed ||= !same(o, n);
      }
      if (all || r.changed) rows.push(r);
    }
  }
  return rows;
}

function row(stage: string, kind: DeltaRow["kind"], name: string, o: unknown, n: unknown): DeltaRow {
  const r: DeltaRow = { stage, kind, name, old: o, new: n, changed: !same(o, n) };
  if (typeof o === "number" && typeof n === "number") {
    r.change = n - o;
    if (o !== 0) r.relative = r.change / Math.abs(o);
  }
  return r;
}

/** An accuracy-like metric, written as the report writes it: a percentage, differences in points. */
const isFraction = (r: DeltaRow) =>
  r.kind === "metric" && /acc/i.test(r.name) &&
  [r.old, r.new].every((v) => v === undefined || (typeof v === "number" && v >= 0 && v <= 1));

function value(r: DeltaRow, v: unknown, sd: number | undefined, frac: boolean): string {
  if (v === undefined) return "–";
  if (typeof v === "boolean") return String(v);
  if (typeof v !== "number") return cell(v, r.name);
  const main = frac ? pct(v) : cell(v, r.name);
  return sd === undefined ? main : `${main} ± ${frac ? spread(sd) : cell(sd)}`;
}

/** The cells of a row: old, new, change, relative, in the report's precision. */
export function cells(r: DeltaRow): { old: string; new: string; change: string; relative: string } {
  const frac = isFraction(r);
  const change = r.change === undefined
    ? ""
    : frac
    ? `${signed(r.change)} pts`
    : r.change === 0
    ? "±0"
    : `${r.change > 0 ? "+" : MINUS}${cell(Math.abs(r.change), r.name)}`;
  const relative = r.relative === undefined ? "" : (() => {
    const p = round1(r.relative * 100);
    return `${p > 0 ? "+" : p < 0 ? MINUS : "±"}${Math.abs(p).toFixed(1)}%`;
  })();
  return { old: value(r, r.old, r.oldSd, frac), new: value(r, r.new, r.newSd, frac), change, relative };
}

const seedNote = (r: DeltaRow) =>
  r.seeds ? ` (${r.seeds.old === r.seeds.new ? r.seeds.new : `${r.seeds.old}→${r.seeds.new}`} seeds)` : "";

/** The delta table in GitHub-flavoured Markdown (`labels`: the two sides' names, for the heading). */
export function formatMarkdown(rows: DeltaRow[], labels: [string, string], all = false): string {
  const head = `**${labels[0]}** → **${labels[1]}**`;
  if (!rows.length) return `${head}: ${all ? "no stages" : "no parameter or metric changed"}\n`;
  const esc = (s: string) => s.replace(/\|/g, "\\|");
  const lines = [
    head,
    "",
    "| stage | kind | name | old | new | change | relative |",
    "|---|---|---|--:|--:|--:|--:|",
  ];
  for (const r of rows) {
    const c = cells(r);
    lines.push(
      `| ${
        [
          `\`${r.stage}\`${seedNote(r)}`,
          r.kind,
          r.changed ? r.name : `${r.name}`,
          c.old,
          c.new,
          c.change,
          c.relative,
        ].map(esc).join(" | ")
      } |`,
    );
  }
  return lines.join("\n") + "\n";
}

/** The same table as HTML (for the self-contained index.html of --plots). */
export function formatHtmlTable(rows: DeltaRow[]): string {
  const h = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  if (!rows.length) return "<p>No parameter or metric changed.</p>";
  const body = rows.map((r) => {
    const c = cells(r);
    return `<tr><td><code>${h(r.stage)}</code>${h(seedNote(r))}</td><td>${r.kind}</td><td>${h(r.name)}</td>` +
      [c.old, c.new, c.change, c.relative].map((x) => `<td class="n">${h(x)}</td>`).join("") + "</tr>";
  });
  return `<table><thead><tr><th>stage</th><th>kind</th><th>name</th><th>old</th><th>new</th><th>change</th>` +
    `<th>relative</th></tr></thead><tbody>\n${body.join("\n")}\n</tbody></table>`;
}

// ---- the regression gate ----

export interface Limit {
  /** As written, for messages. */
  text: string;
  /** Only rows of this stage (a node, a stage name or a base node with its seeds); absent: every stage. */
  stage?: string;
  metric: string;
  /** The limit: a signed change (absolute, in the metric's unit) or, with relative, a signed fraction. */
  limit: number;
  /** Which way is a regression: a drop (−) or a rise (+); apart from limit, which may be ±0. */
  drop: boolean;
  relative: boolean;
}

/**
 * `[stage/]metric:±limit[%]`: the sign says which way is a regression (−: a drop, e.g. an
 * accuracy; +: a rise, e.g. a loss), the number how far the metric may move that way; % makes
 * it relative to the old value. `test_acc:-0.01`: test accuracy may fall by at most 0.01.
 */
export function parseLimit(text: string): Limit {
  const m = /^(?:([^/:\s]+)\/)?([^/:\s]+):([+-])(\d+(?:\.\d*)?(?:e-?\d+)?|\.\d+)(%?)$/i.exec(text.trim());
  if (!m) {
    throw new PipelineError(
      `--fail-on ${text}: expected [stage/]metric:±limit[%]`,
      "e.g. --fail-on test_acc:-0.01 (a drop of more than 0.01 fails), --fail-on train-cnn/test_loss:+5%",
    );
  }
  const magnitude = Number(m[4]) / (m[5] ? 100 : 1);
  const drop = m[3] === "-";
  return { text, stage: m[1], metric: m[2], limit: drop ? -magnitude : magnitude, drop, relative: !!m[5] };
}

export interface Violation {
  row: DeltaRow;
  limit: Limit;
}

const stageMatches = (row: string, want: string) =>
  row === want || row.startsWith(`${want}@`) || seedBase(row) === want || row === seedBase(want);

/** The rows that move a metric past its limit (rows without an old and a new number are not judged). */
export function regressions(rows: DeltaRow[], limits: Limit[]): Violation[] {
  const out: Violation[] = [];
  for (const limit of limits) {
    for (const row of rows) {
      if (row.kind !== "metric" || row.name !== limit.metric) continue;
      if (limit.stage && !stageMatches(row.stage, limit.stage)) continue;
      const moved = limit.relative ? row.relative : row.change;
      if (moved === undefined) continue;
      const eps = 1e-12 * Math.max(1, Math.abs(limit.limit));
      if (limit.drop ? moved < limit.limit - eps : moved > limit.limit + eps) out.push({ row, limit });
    }
  }
  return out;
}

/** "train-cnn test_acc: 76.4% → 74.0% (−2.4 pts) past the limit test_acc:-0.01" */
export function describeViolation(v: Violation): string {
  const c = cells(v.row);
  return `${v.row.stage} ${v.row.name}: ${c.old} → ${c.new} (${c.change}${c.relative ? `, ${c.relative}` : ""}) ` +
    `past the limit ${v.limit.text}`;
}
