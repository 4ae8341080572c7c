// `diff --plots DIR`: for every stage whose run differs between revisions (or for `--runs KEY…`),
// its training curves — accuracy and loss, training batch and test set — of every side on one
// figure, written as SVG + PNG + Vega-Lite JSON (rendered in-process as the report is: vega and
// resvg-wasm, no browser, no CDN), with DIR/index.md and a self-contained DIR/index.html.
// Curves come from the run's history.json in the cache or a remote (a thin run keeps it: small).
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { TopLevelSpec } from "vega-lite";
import type { RunEntry, Store } from "../store/cache.ts";
import { isCorrupt } from "../store/entry.ts";
import { type DeltaRow, formatHtmlTable, formatMarkdown } from "./diff_md.ts";
import { hashFile } from "../store/hash.ts";
import type { EvalPoint } from "../types.ts";

/** One side of the comparison: a revision (or a run), and the run key of each node there. */
export interface PlotSide {
  label: string;
  keys: Record<string, string | undefined>;
}

export interface Curves {
  label: string;
  key: string;
  evals: EvalPoint[];
}

/** Stable colours: the first side is always blue, the second orange, … (Tableau 10). */
export const COLOURS = [
  "#4c78a8",
  "#f58518",
  "#54a24b",
  "#e45756",
  "#72b7b2",
  "#b279a2",
  "#eeca3b",
  "#9d755d",
  "#ff9da6",
  "#bab0ac",
];

const SPLITS = ["test set", "training batch"];

/** A run's entry from the cache, else from a remote (read only, nothing copied). */
async function entryOf(store: Store, key: string): Promise<RunEntry | undefined> {
  const local = await store.readEntry(key).catch(() => undefined);
  if (local) return local;
  for (const r of store.remotes) {
    const e = await r.readEntry(key).catch(() => undefined);
    if (e && !isCorrupt(e)) return e;
  }
  return undefined;
}

/** A run's history.json (its curve), from the cache or a remote, checked against its hash; undefined: none. */
export async function readHistory(store: Store, key: string): Promise<{ evals: EvalPoint[] } | undefined> {
  const entry = await entryOf(store, key);
  const out = entry?.outputs["history.json"];
  if (!out) return undefined;
  const parse = async (path: string) =>
    (await hashFile(path).catch(() => "")) === out.hash ? JSON.parse(await Deno.readTextFile(path)) : undefined;
  const here = await parse(store.objectPath(out.hash));
  if (here) return here;
  const tmp = await Deno.makeTempFile({ prefix: "history-" });
  try {
    for (const r of store.remotes) {
      if (!(await r.download(out.hash, out.size, tmp).catch(() => false))) continue;
      const got = await parse(tmp);
      if (got) return got;
    }
  } finally {
    await Deno.remove(tmp).catch(() => {});
  }
  return undefined;
}

/** Accuracy and loss side by side; colour: the side (revision or run), dash: the split. */
export function overlaySpec(title: string, curves: Curves[]): TopLevelSpec {
  const labels = curves.map((c) => c.label);
  const values = curves.flatMap((c) =>
    c.evals.flatMap((e) => [
      { side: c.label, split: "training batch", step: e.step, accuracy: e.trainAcc, loss: e.trainLoss },
      { side: c.label, split: "test set", step: e.step, accuracy: e.testAcc, loss: e.testLoss },
    ])
  );
  // One legend for the side (colour, width, opacity all encode it: the same legend, merged).
  const sideLegend = {
    orient: "bottom",
    direction: "vertical",
    labelLimit: 700,
    labelFontSize: 12,
    symbolType: "stroke",
    symbolStrokeWidth: 3,
  };
  const panel = (metric: "accuracy" | "loss") => ({
    width: 420,
    height: 280,
    title: metric === "loss" ? "loss (log scale)" : "accuracy",
    transform: metric === "loss" ? [{ filter: "datum.loss > 0" }] : [],
    mark: { type: "line", point: { size: 18 } },
    encoding: {
      x: { field: "step", type: "quantitative", title: "training step" },
      y: {
        field: metric,
        type: "quantitative",
        title: metric,
        axis: { format: metric === "accuracy" ? ".0%" : "~g" },
        scale: metric === "loss" ? { type: "log" } : { zero: true },
      },
      color: {
        field: "side",
        type: "nominal",
        title: null,
        sort: labels,
        scale: { domain: labels, range: labels.map((_, i) => COLOURS[i % COLOURS.length]) },
        legend: sideLegend,
      },
      strokeDash: {
        field: "split",
        type: "nominal",
        title: null,
        sort: SPLITS,
        scale: { domain: SPLITS, range: [[1, 0], [5, 3]] },
        legend: {
          orient: "bottom",
          direction: "horizontal",
          labelFontSize: 12,
          symbolType: "stroke",
          symbolStrokeWidth: 2,
          encode: { symbols: { update: { stroke: { value: "#333" } } } },
        },
      },
      // The first side wide and pale beneath the others: identical curves still show both.
      strokeWidth: {
        field: "side",
        type: "nominal",
        sort: labels,
        scale: { domain: labels, range: labels.map((_, i) => (i === 0 && labels.length > 1 ? 5 : 2)) },
        legend: sideLegend,
      },
      opacity: {
        field: "side",
        type: "nominal",
        sort: labels,
        scale: { domain: labels, range: labels.map((_, i) => (i === 0 && labels.length > 1 ? 0.55 : 1)) },
        legend: sideLegend,
      },
      detail: { field: "side" },
      tooltip: [
        { field: "side" },
        { field: "split" },
        { field: "step", type: "quantitative" },
        { field: metric, type: "quantitative", format: metric === "accuracy" ? ".1%" : ".3f" },
      ],
    },
  });
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: { text: title, fontSize: 15, fontWeight: "normal" },
    data: { values },
    hconcat: [panel("accuracy"), panel("loss")],
    resolve: { legend: { color: "shared", strokeDash: "shared" } },
    config: {
      font: "DejaVu Sans",
      axis: { titleFontWeight: "normal", labelFontSize: 11, titleFontSize: 12 },
      legend: { titleFontWeight: "normal" },
      view: { stroke: null },
    },
  } as TopLevelSpec;
}

export interface PlotResult {
  /** Stage → the file stem of its figure in DIR. */
  figures: Array<{ stage: string; stem: string; sides: string[]; identical: boolean }>;
  /** Stages whose runs differ but no side has a curve. */
  withoutCurves: string[];
}

/** A file name for a node: train-torch-mlp@ga1+s2 → train-torch-mlp_ga1_s2. */
const stem = (node: string) => node.replace(/[^A-Za-z0-9_.-]+/g, "_");

/**
 * Write DIR/<stage>.{svg,png,vl.json} for every node whose key differs between the sides and
 * whose runs have a curve, and DIR/index.md and DIR/index.html with the delta table.
 */
export async function writePlots(
  store: Store,
  dir: string,
  sides: PlotSide[],
  rows: DeltaRow[],
  heading: string,
): Promise<PlotResult> {
  const { toPng, toSvg } = await import("../../reports/build/render.ts"); // vega loads only for --plots
  const self = fileURLToPath(new URL("../..", import.meta.url)); // this project's pinned packages, whatever --root says
  await Deno.mkdir(dir, { recursive: true });
  const nodes = [...new Set(sides.flatMap((s) => Object.keys(s.keys)))].sort();
  const result: PlotResult = { figures: [], withoutCurves: [] };
  const svgs: Record<string, string> = {};
  for (const node of nodes) {
    const keys = sides.map((s) => s.keys[node]);
    if (new Set(keys).size === 1) continue; // the same run on every side (or on none)
    const curves: Curves[] = [];
    for (const [i, side] of sides.entries()) {
      const key = keys[i];
      const history = key ? await readHistory(store, key) : undefined;
      if (history?.evals?.length) {
        curves.push({
          label: side.label.includes(key!.slice(0, 8)) ? side.label : `${side.label} (${key!.slice(0, 8)})`,
          key: key!,
          evals: history.evals,
        });
      }
    }
    if (!curves.length) {
      if (keys.some((k) => k && true)) {
        const anyHistory = await Promise.all(
          keys.map(async (k) => k && (await entryOf(store, k))?.outputs["history.json"]),
        );
        if (anyHistory.some(Boolean)) result.withoutCurves.push(node);
      }
      continue;
    }
    const identical = curves.length > 1 &&
      curves.every((c) => JSON.stringify(c.evals) === JSON.stringify(curves[0].evals));
    const title = `${node}: ${curves.map((c) => c.label).join(" vs ")}${identical ? " (identical curves)" : ""}`;
    const spec = overlaySpec(title, curves);
    const s = stem(node);
    const svg = await toSvg(spec);
    await Deno.writeTextFile(join(dir, `${s}.vl.json`), JSON.stringify(spec, null, 1) + "\n");
    await Deno.writeTextFile(join(dir, `${s}.svg`), svg);
    await Deno.writeFile(join(dir, `${s}.png`), await toPng(svg, self));
    svgs[s] = svg;
    result.figures.push({ stage: node, stem: s, sides: curves.map((c) => c.label), identical });
  }
  const labels: [string, string] = [sides[0]?.label ?? "", sides.at(-1)?.label ?? ""];
  const md = [
    `# ${heading}`,
    "",
    formatMarkdown(rows, labels),
    ...result.figures.flatMap((f) => [
      `## ${f.stage}`,
      "",
      `![${f.stage}: ${f.sides.join(" vs ")}](${f.stem}.png)`,
      ...(f.identical
        ? ["", "The curves are identical (the same training, e.g. a run carried over by `accept`)."]
        : []),
      "",
      `[SVG](${f.stem}.svg) · [Vega-Lite](${f.stem}.vl.json)`,
      "",
    ]),
    ...(result.figures.length ? [] : ["No stage whose run differs has a training curve.", ""]),
    ...(result.withoutCurves.length
      ? [`Curves not found (in no cache or remote here): ${result.withoutCurves.join(", ")}`, ""]
      : []),
  ].join("\n");
  await Deno.writeTextFile(join(dir, "index.md"), md);
  const h = (x: string) => x.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${h(heading)}</title>
<style>
body { font-family: "DejaVu Sans", system-ui, sans-serif; margin: 2em auto; max-width: 1000px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; } td, th { border: 1px solid #ccc; padding: 3px 8px; }
th { background: #f4f4f4; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 2em 0; } figure svg { max-width: 100%; height: auto; }
</style></head><body>
<h1>${h(heading)}</h1>
<p><b>${h(labels[0])}</b> → <b>${h(labels[1])}</b></p>
${formatHtmlTable(rows)}
${
    result.figures.map((f) =>
      `<figure id="${f.stem}"><h2>${h(f.stage)}</h2>\n${svgs[f.stem].replace(/^<\?xml[^>]*>\s*/, "")}\n` +
      `<figcaption>${h(f.sides.join(" vs "))}</figcaption></figure>`
    ).join("\n")
  }
</body></html>
`;
  await Deno.writeTextFile(join(dir, "index.html"), html);
  return result;
}
