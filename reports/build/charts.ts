// Vega-Lite specs of the report's figures. Each spec carries its data inline,
// so a saved .vl.json reopens as it is in the Vega editor, and the same spec is
// rendered to SVG/PNG here and embedded interactively in index.html.
import type { TopLevelSpec } from "vega-lite";
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

/**
 * Accuracy or loss over training steps: the last training batch and the whole
 * test set (as the study plotted them); several runs are told apart by dash.
 */
export function curveSpec(title: string, curves: Curve[], metric: "accuracy" | "loss"): TopLevelSpec {
  const values = curves.flatMap((c) =>
    c.evals.flatMap((e) => [
      { run: c.label, split: "training batch", step: e.step, value: metric === "accuracy" ? e.trainAcc : e.trainLoss },
      { run: c.label, split: "test set", step: e.step, value: metric === "accuracy" ? e.testAcc : e.testLoss },
    ])
  );
  const several = curves.length > 1;
  const format = metric === "accuracy" ? ".1%" : ".3f";
  return {
    $schema: SCHEMA,
    title,
    width: 600,
    height: 300,
    data: { values },
    params: [
      // Click a legend entry to highlight it; drag / wheel to pan and zoom.
      { name: "pick", select: { type: "point", fields: ["split"] }, bind: "legend" },
      { name: "zoom", select: "interval", bind: "scales" },
    ],
    mark: { type: "line", point: { size: 30 }, strokeWidth: 2 },
    encoding: {
      x: { field: "step", type: "quantitative", title: "training step", axis: { tickMinStep: 1 } },
      y: {
        field: "value",
        type: "quantitative",
        title: metric,
        axis: { format: metric === "accuracy" ? ".0%" : "~g" },
        scale: { zero: metric === "accuracy" },
      },
      color: { field: "split", type: "nominal", title: null, sort: ["training batch", "test set"] },
      ...(several ? { strokeDash: { field: "run", type: "nominal", title: "backward" } } : {}),
      detail: { field: "run" },
      opacity: { condition: { param: "pick", value: 1 }, value: 0.15 },
      tooltip: [
        ...(several ? [{ field: "run", title: "run" }] : []),
        { field: "split" },
        { field: "step", type: "quantitative" },
        { field: "value", type: "quantitative", title: metric, format },
      ],
    },
    config: CONFIG,
  } as TopLevelSpec;
}

/** Table 1 as bars: the study's test accuracy beside ours, per run. */
export function table1Spec(rows: { run: string; source: string; test: number }[]): TopLevelSpec {
  return {
    $schema: SCHEMA,
    title: "Table 1: test accuracy, the study's and ours",
    width: 520,
    height: 260,
    data: { values: rows },
    params: [{ name: "pick", select: { type: "point", fields: ["source"] }, bind: "legend" }],
    mark: { type: "bar" },
    encoding: {
      y: { field: "run", type: "nominal", title: null, sort: null, axis: { labelLimit: 260 } },
      yOffset: { field: "source", sort: ["study", "ours"] },
      x: { field: "test", type: "quantitative", title: "test accuracy", axis: { format: ".0%" } },
      color: { field: "source", type: "nominal", title: null, sort: ["study", "ours"] },
      opacity: { condition: { param: "pick", value: 1 }, value: 0.2 },
      tooltip: [{ field: "run" }, { field: "source" }, { field: "test", title: "test accuracy", format: ".1%" }],
    },
    config: CONFIG,
  } as TopLevelSpec;
}

/** The search's individuals: one point per evaluated individual by generation, and the best of each generation. */
export function searchSpec(
  rows: Record<string, unknown>[],
  x: string,
  y: string,
  tooltip: string[],
): TopLevelSpec {
  const xEnc = { field: x, type: "quantitative", axis: { tickMinStep: 1 }, scale: { zero: false, padding: 20 } };
  return {
    $schema: SCHEMA,
    title: `Evolutionary search: ${y} of every individual, by ${x}`,
    width: 600,
    height: 280,
    data: { values: rows },
    layer: [
      {
        mark: { type: "line", color: "#999", strokeDash: [4, 3] },
        encoding: { x: xEnc, y: { aggregate: "max", field: y, type: "quantitative", title: y } },
      },
      {
        mark: { type: "point", filled: true, size: 60, opacity: 0.8 },
        encoding: {
          x: xEnc,
          y: { field: y, type: "quantitative", title: y, scale: { zero: false, padding: 10 } },
          tooltip: tooltip.map((f) => ({ field: f })),
        },
      },
    ],
    config: CONFIG,
  } as TopLevelSpec;
}
