// Vega-Lite specs of the report's figures. Each spec carries its data inline,
// so a saved .vl.json reopens as it is in the Vega editor, and the same spec is
// rendered to SVG/PNG here and embedded interactively in index.html.
import type { TopLevelSpec } from "vega-lite";
import type { EvalPoint } from "../../pipeline/types.ts";
import type { Curve } from "./inputs.ts";

export interface Figure {
  /** File stem, e.g. "fig1-numpy-mlp-accuracy". */
  id: string;
  /** "1", "2", … as in the study where the study has the figure. */
  number: number;
  caption: string;
  spec: TopLevelSpec;
}

/** Fonts: the one the project ships (reports/build/fonts), so SVG, PNG and browser agree. */
export const FONT_FAMILY = "DejaVu Sans";

const CONFIG = {
  font: FONT_FAMILY,
  title: { fontSize: 14, fontWeight: "normal" as const },
  axis: { titleFontWeight: "normal" as const, labelFontSize: 11, titleFontSize: 12 },
  legend: { titleFontWeight: "normal" as const, labelFontSize: 11, titleFontSize: 12 },
  view: { stroke: null },
};

const SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json";
/** Plot width of the curve figures (px). */
const WIDTH = 600;

/** The study inside a figure: its curve read from its own figures, and its final numbers as marks. */
export interface StudyRefs {
  /** Test accuracy read by eye from the study's published figure (about ±0.01), by training step; label: its legend. */
  curve?: { label: string; points: { step: number; value: number }[] };
  /** The study's (or assignment's) final numbers: a labelled horizontal mark each. */
  marks?: { label: string; value: number }[];
}

/** The spread over seeds at one evaluation of one split: the lowest and the highest seed. */
export interface Band {
  split: string;
  step: number;
  lo: number;
  hi: number;
}

/**
 * Runs of one setting over seeds as one curve: the mean over seeds at each step every run evaluated, and the
 * band from the lowest to the highest seed there, per metric and split.
 */
export function overSeeds(label: string, runs: EvalPoint[][]): { curve: Curve; bands: Record<Metric, Band[]> } {
  const bySteps = runs.map((evals) => new Map(evals.map((e) => [e.step, e])));
  const steps = runs[0].map((e) => e.step).filter((st) => bySteps.every((m) => m.has(st)));
  const bands: Record<Metric, Band[]> = { accuracy: [], loss: [] };
  const evals = steps.map((step) => {
    const at = bySteps.map((m) => m.get(step)!);
    const stat = (f: "trainAcc" | "testAcc" | "trainLoss" | "testLoss") => {
      const v = at.map((e) => e[f] as number | null).filter((x): x is number =>
        typeof x === "number" && Number.isFinite(x)
      );
      return v.length
        ? { mean: v.reduce((a, b) => a + b, 0) / v.length, lo: Math.min(...v), hi: Math.max(...v) }
        : undefined;
    };
    const point = { step } as EvalPoint;
    const fields = [
      ["trainAcc", "accuracy", "training batch"],
      ["testAcc", "accuracy", "test set"],
      ["trainLoss", "loss", "training batch"],
      ["testLoss", "loss", "test set"],
    ] as const;
    for (const [f, metric, split] of fields) {
      const x = stat(f);
      (point as unknown as Record<string, number | null>)[f] = x ? x.mean : null;
      if (x) bands[metric].push({ split, step, lo: x.lo, hi: x.hi });
    }
    return point;
  });
  return { curve: { label, evals }, bands };
}

export type Metric = "accuracy" | "loss";

/**
 * The loss axis, fitted to the data: linear when the losses stay within a factor of 5 of each other, else
 * logarithmic (the first evaluations' losses far above the rest); either way spanning just the data.
 */
export function lossAxis(curves: Curve[], band: Band[] = []): { log: boolean; lo: number; hi: number } {
  const v = [
    ...curves.flatMap((c) => c.evals.flatMap((e) => [e.trainLoss, e.testLoss])),
    ...band.flatMap((b) => [b.lo, b.hi]),
  ].filter((x): x is number => typeof x === "number" && Number.isFinite(x) && x > 0);
  const lo = v.length ? Math.min(...v) : 0.1;
  const hi = v.length ? Math.max(...v) : 1;
  return { log: hi / lo > 5, lo, hi };
}

/**
 * Accuracy or loss over training steps: the last training batch and the whole
 * test set (as the study plotted them); several runs are told apart by dash.
 * Loss on a linear axis fitted to the data. With `band`: the spread over seeds, shaded behind the lines.
 * Accuracy with the study's curve (dashed grey) and final numbers (labelled rules).
 */
export function curveSpec(
  title: string,
  curves: Curve[],
  metric: Metric,
  refs: StudyRefs = {},
  band: Band[] = [],
): TopLevelSpec {
  const axis = lossAxis(curves, band);
  const values = curves.flatMap((c) =>
    c.evals.flatMap((e) => [
      { run: c.label, split: "training batch", step: e.step, value: metric === "accuracy" ? e.trainAcc : e.trainLoss },
      { run: c.label, split: "test set", step: e.step, value: metric === "accuracy" ? e.testAcc : e.testLoss },
    ])
  ).filter((v) => typeof v.value === "number" && (metric === "accuracy" || !axis.log || v.value > 0));
  const several = curves.length > 1;
  const format = metric === "accuracy" ? ".1%" : ".3f";
  const study = metric === "accuracy" && refs.curve
    ? refs.curve.points.map((p) => ({ run: "study", split: refs.curve!.label, step: p.step, value: p.value }))
    : [];
  const splits = ["training batch", "test set", ...(study.length ? [refs.curve!.label] : [])];
  const x = { field: "step", type: "quantitative", title: "training step", axis: { tickMinStep: 1 } };
  const y = {
    field: "value",
    type: "quantitative",
    title: metric === "loss" && axis.log ? "loss (log scale)" : metric,
    axis: { format: metric === "accuracy" ? ".0%" : "~g" },
    scale: metric === "accuracy"
      ? { zero: true }
      : axis.log
      ? { type: "log", domain: [axis.lo / 1.1, axis.hi * 1.1], nice: false }
      : { zero: false, nice: true },
  };
  const color = {
    field: "split",
    type: "nominal",
    title: null,
    sort: splits,
    scale: { domain: splits, range: ["#4c78a8", "#f58518", "#777777"] },
    legend: { orient: "bottom", direction: "horizontal", labelLimit: 600 },
  };
  const marks = metric === "accuracy" ? refs.marks ?? [] : [];
  return {
    $schema: SCHEMA,
    title,
    width: WIDTH,
    height: 300,
    // The marks' dashes are their own scale and legend, apart from the runs' (the batch norm's two backwards).
    // The band's fill is its own scale too (no legend of its own: the lines' colour legend names the splits).
    resolve: {
      scale: { strokeDash: "independent", fill: "independent" },
      legend: { strokeDash: "independent", fill: "independent" },
    },
    layer: [
      ...(band.length
        ? [{
          // The spread over seeds (lowest to highest seed at each evaluation), behind the mean lines.
          data: { values: band },
          mark: { type: "area", opacity: 0.2 },
          encoding: {
            x,
            y: { ...y, field: "lo" },
            y2: { field: "hi" },
            // Its own fill scale, the same colours, no legend: the lines' legend names the splits.
            fill: { field: "split", type: "nominal", scale: color.scale, legend: null },
            tooltip: [
              { field: "split" },
              { field: "step", type: "quantitative" },
              { field: "lo", type: "quantitative", title: "lowest seed", format },
              { field: "hi", type: "quantitative", title: "highest seed", format },
            ],
          },
        }]
        : []),
      {
        data: { values },
        params: [
          // Click a legend entry to highlight it; drag / wheel to pan and zoom.
          { name: "pick", select: { type: "point", fields: ["split"] }, bind: "legend" },
          { name: "zoom", select: "interval", bind: "scales" },
        ],
        mark: { type: "line", point: { size: 30 }, strokeWidth: 2 },
        encoding: {
          x,
          y,
          color,
          ...(several
            ? { strokeDash: { field: "run", type: "nominal", title: "backward", sort: curves.map((c) => c.label) } }
            : {}),
          detail: { field: "run" },
          opacity: { condition: { param: "pick", value: 1 }, value: 0.15 },
          tooltip: [
            ...(several ? [{ field: "run", title: "run" }] : []),
            { field: "split" },
            { field: "step", type: "quantitative" },
            { field: "value", type: "quantitative", title: metric, format },
          ],
        },
      },
      ...(study.length
        ? [{
          // The study's curve: dashed, in the same legend as ours.
          data: { values: study },
          mark: { type: "line", point: { size: 20, shape: "diamond" }, strokeWidth: 1.5, strokeDash: [5, 3] },
          encoding: {
            x,
            y,
            color,
            tooltip: [{ field: "split" }, { field: "step", type: "quantitative" }, {
              field: "value",
              type: "quantitative",
              title: "accuracy (read from the study's figure)",
              format: ".2f",
            }],
          },
        }]
        : []),
      ...(marks.length
        ? [{
          // The study's final numbers: one rule each, named in a legend of their own (dash patterns).
          data: { values: marks },
          mark: { type: "rule", color: "#444", strokeWidth: 1.2 },
          encoding: {
            y: { field: "value", type: "quantitative" },
            strokeDash: {
              field: "label",
              type: "nominal",
              title: null,
              sort: marks.map((m) => m.label),
              scale: { domain: marks.map((m) => m.label), range: [[2, 2], [8, 3], [1, 3]] },
              legend: { orient: "right", labelLimit: 300, symbolType: "stroke", symbolStrokeColor: "#444" },
            },
            tooltip: [{ field: "label" }],
          },
        }]
        : []),
    ],
    config: CONFIG,
  } as TopLevelSpec;
}

/** Table 1 as bars: the study's test accuracy beside ours, per run. */
export function table1Spec(
  rows: { run: string; source: string; test: number; n?: number; interval?: string; lo?: number; hi?: number }[],
): TopLevelSpec {
  const y = { field: "run", type: "nominal", title: null, sort: null, axis: { labelLimit: 260 } };
  const yOffset = { field: "source", sort: ["study", "ours"] };
  return {
    $schema: SCHEMA,
    title: "Table 1: test accuracy, the study's and ours (mean over seeds, 95% interval where n ≥ 2)",
    width: 520,
    height: 260,
    data: { values: rows },
    encoding: { y, yOffset },
    layer: [
      {
        params: [{ name: "pick", select: { type: "point", fields: ["source"] }, bind: "legend" }],
        mark: { type: "bar" },
        encoding: {
          x: { field: "test", type: "quantitative", title: "test accuracy", axis: { format: ".0%" } },
          color: { field: "source", type: "nominal", title: null, sort: ["study", "ours"] },
          opacity: { condition: { param: "pick", value: 1 }, value: 0.2 },
          tooltip: [
            { field: "run" },
            { field: "source" },
            { field: "test", title: "test accuracy (ours: mean over seeds)", format: ".1%" },
            { field: "n", title: "seeds" },
            { field: "interval", title: "95% interval" },
          ],
        },
      },
      {
        // Our 95% interval over seeds, where there is one.
        transform: [{ filter: "isValid(datum.lo)" }],
        mark: { type: "rule", color: "black", strokeWidth: 1.5 },
        encoding: { x: { field: "lo", type: "quantitative" }, x2: { field: "hi" } },
      },
    ],
    config: CONFIG,
  } as TopLevelSpec;
}

/**
 * The search's individuals, one point each by generation; the best so far (a
 * cumulative maximum: with elitism it never falls) and each generation's size.
 */
export function searchSpec(
  rows: Record<string, unknown>[],
  x: string,
  y: string,
  tooltip: string[],
  titles: Record<string, string> = {},
): TopLevelSpec {
  const xEnc = {
    field: x,
    type: "quantitative",
    title: titles[x] ?? x,
    axis: { tickMinStep: 1 },
    scale: { zero: false, padding: 20 },
  };
  const yTitle = titles[y] ?? y;
  return {
    $schema: SCHEMA,
    title: `Evolutionary search: ${yTitle} of every individual, by ${titles[x] ?? x}`,
    width: 600,
    height: 280,
    data: { values: rows },
    layer: [
      {
        transform: [
          { aggregate: [{ op: "max", field: y, as: "gen_best" }, { op: "count", as: "size" }], groupby: [x] },
          { window: [{ op: "max", field: "gen_best", as: "best_so_far" }], sort: [{ field: x }], frame: [null, 0] },
          { calculate: "'n = ' + datum.size", as: "size_label" },
        ],
        layer: [
          {
            mark: { type: "line", color: "#999", strokeDash: [4, 3], interpolate: "step-after" },
            encoding: {
              x: xEnc,
              y: { field: "best_so_far", type: "quantitative", title: yTitle },
              tooltip: [{ field: "best_so_far", title: "best so far", format: ".3f" }],
            },
          },
          {
            // Each generation's size, above its points: a generation of one is not a failed elitism.
            mark: { type: "text", dy: -12, fontSize: 10, color: "#555" },
            encoding: {
              x: xEnc,
              y: { field: "best_so_far", type: "quantitative" },
              text: { field: "size_label", type: "nominal" },
            },
          },
        ],
      },
      {
        mark: { type: "point", filled: true, size: 60, opacity: 0.8 },
        encoding: {
          x: xEnc,
          y: { field: y, type: "quantitative", title: yTitle, scale: { zero: false, padding: 10 } },
          tooltip: tooltip.map((f) => ({ field: f, title: titles[f] ?? f })),
        },
      },
    ],
    config: CONFIG,
  } as TopLevelSpec;
}

/** A confusion matrix as a heat map: rows the true class, columns the predicted, colour the share of the row. */
export function confusionSpec(
  title: string,
  classes: string[],
  cells: { true: string; predicted: string; count: number; share: number }[],
): TopLevelSpec {
  const axis = (field: string, t: string) => ({ field, type: "nominal", title: t, sort: classes });
  return {
    $schema: SCHEMA,
    title,
    width: 360,
    height: 360,
    data: { values: cells },
    encoding: { x: axis("predicted", "predicted class"), y: axis("true", "true class") },
    layer: [
      {
        mark: { type: "rect" },
        encoding: {
          color: { field: "share", type: "quantitative", title: "share of row", legend: { format: ".0%" } },
          tooltip: [
            { field: "true", title: "true" },
            { field: "predicted", title: "predicted" },
            { field: "count", title: "images" },
            { field: "share", title: "share of the true class", format: ".1%" },
          ],
        },
      },
      {
        mark: { type: "text", fontSize: 9 },
        encoding: {
          text: { field: "count", type: "quantitative" },
          color: { condition: { test: "datum.share > 0.5", value: "white" }, value: "black" },
        },
      },
    ],
    config: CONFIG,
  } as TopLevelSpec;
}
