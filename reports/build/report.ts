// The context every section of the report is built from: the inputs (ours),
// the rows derived from them once (each run with its seeds, Table 1's rows
// that ran, the best row, the dropout rows scored both ways, the runs off the
// study's settings), and the helpers the sections share: registering a figure
// (the study's figures keep their numbers), a run's accuracy and loss figures,
// the study's curve and final numbers for a figure, a verdict in words.
import type { EvalPoint, TrainingHistory } from "../../pipeline/types.ts";
import { curveSpec, type Figure, lossAxis, overSeeds, type StudyRefs } from "./charts.ts";
import type { Block } from "./document.ts";
import { cell, deviations, paramsOf, pct, signed } from "./format.ts";
import { EVAL_MODE_STAGES, type ReportInputs, type Run, RUN_STAGES } from "./inputs.ts";
import { type Estimate, estimate, type Sample } from "./stats.ts";
import { STUDY_SETTINGS, type StudyRow, TABLE1 } from "./study.ts";

export const TITLE = "Reproducing “Assignment 1: MLPs, CNNs and Backpropagation” on CIFAR-10";

/** A result over seeds: the base run (seed 42) and its seed runs, the estimates of their final accuracies. */
export interface Seeded {
  base: Run;
  runs: Run[];
  /** How many seeds the pipeline declares for this run (1: not repeated). */
  declared: number;
  /** Seed runs left out: their settings other than the seed differ from the base run's (a --set on one seed). */
  excluded: { run: Run; differ: string[] }[];
  test: Estimate;
  train: Estimate;
}

/** The study's figures 1–8, by our figure id: a figure of ours that redraws one names it; ours are numbered in order. */
const STUDY_FIGURES = [
  "numpy-mlp-accuracy",
  "numpy-mlp-loss",
  "torch-mlp-default-accuracy",
  "torch-mlp-default-loss",
  "torch-mlp-best-accuracy",
  "torch-mlp-best-loss",
  "cnn-accuracy",
  "cnn-loss",
];

export const finalOf = (evals: EvalPoint[]) => evals[evals.length - 1];

/** The base run and its seed runs among the inputs. */
export function seeded(inp: ReportInputs, base: Run): Seeded {
  const { seed: _, ...settings } = paramsOf(base);
  const excluded: Seeded["excluded"] = [];
  const runs = [base];
  for (const run of inp.seeds.get(base.stage) ?? []) {
    const differ = deviations(run, settings);
    if (differ.length) excluded.push({ run, differ });
    else runs.push(run);
  }
  return {
    base,
    runs,
    excluded,
    declared: inp.declaredSeeds.get(base.stage) ?? 1,
    test: estimate(runs.map((r) => r.history.final.testAcc)),
    train: estimate(runs.map((r) => r.history.final.trainAcc)),
  };
}

/** The seed a run used (42: every stage's default). */
export const seedOf = (r: Run) => Number(paramsOf(r).seed ?? 42);

/** A row's values over its seeds, each with its seed. */
export const sampleOf = (runs: Run[], value: (r: Run) => number): Sample =>
  runs.map((r) => ({ seed: seedOf(r), value: value(r) }));

/** "5", or "3 of 5" while seeds are missing. */
export const nOf = (s: Seeded) =>
  s.runs.length < s.declared ? `${s.runs.length} of ${s.declared}` : String(s.runs.length);

/** Our estimate against the study's number, in words. */
export function verdict(e: Estimate, study: number): string {
  const d = signed(e.mean - study);
  if (e.lo === undefined || e.hi === undefined) return `${d} pts on one seed; its spread over seeds not measured`;
  if (e.lo <= study && study <= e.hi) return `reproduced: the study's value lies inside our interval (${d} pts)`;
  return `${e.mean > study ? "above" : "below"} the study: ${d} pts, its value outside our interval`;
}

/** Every training run the report read, base runs in the report's order, each followed by its seed runs. */
export function allRuns(inp: ReportInputs): Run[] {
  const bases = [inp.numpy, ...inp.torch.values(), ...inp.evalModes.values(), inp.batchnorm, inp.cnn, inp.searchPick];
  const byStage = new Map(bases.flatMap((r) => (r ? [[r.stage, r] as const] : [])));
  return RUN_STAGES.flatMap((s) => [...(byStage.has(s) ? [byStage.get(s)!] : []), ...(inp.seeds.get(s) ?? [])]);
}

/** The two scores an eval-mode stage records (undefined: another shape). */
export function asEvalModes(h: TrainingHistory): {
  inference: { testAcc: number };
  training: { testAccMean: number; testAccSd: number; testAccs: number[] };
} | undefined {
  const m = (h as unknown as { evalModes?: Record<string, Record<string, unknown>> }).evalModes;
  const num = (v: unknown) => typeof v === "number";
  if (!m || !num(m.inference?.testAcc) || !num(m.training?.testAccMean) || !num(m.training?.testAccSd)) {
    return undefined;
  }
  if (!Array.isArray(m.training.testAccs)) return undefined;
  return m as never;
}

/**
 * The dropout rows of Table 1, each with the stage that scores it both ways (its run and scores, once
 * run); `unscored`: why a run has no scores (its Table 1 run predates weight files).
 */
function evidence(inp: ReportInputs) {
  return EVAL_MODE_STAGES.map(({ stage, variant }) => {
    const row = TABLE1.find((x) => x.variant === variant)!;
    const run = inp.evalModes.get(stage);
    const mode = row.batchnorm ? "dropout on, batch statistics" : "dropout on";
    const unscored = (run?.history as { unscored?: string } | undefined)?.unscored;
    return { stage, row, run, scores: run && asEvalModes(run.history), mode, unscored };
  });
}

/** The state shared by the sections: inputs, derived runs, and the figures registered so far. */
export class Report {
  readonly figures: Figure[] = [];
  readonly torch: { row: StudyRow; s: Seeded }[];
  readonly best?: { row: StudyRow; s: Seeded };
  readonly missingTorch: StudyRow[];
  readonly studyBest = TABLE1.reduce((a, b) => (b.testAcc > a.testAcc ? b : a));
  readonly bnRow = TABLE1.find((r) => r.batchnorm)!;
  readonly numpy?: Seeded;
  readonly cnn?: Seeded;
  /** The dropout rows of Table 1 scored both ways by the eval-mode stages (run and scores: once run). */
  readonly evalModes: ReturnType<typeof evidence>;
  /** Runs that did not use the study's settings (a smoke profile, an override). */
  readonly off: string[] = [];

  constructor(readonly inp: ReportInputs) {
    this.torch = TABLE1.flatMap((row) => {
      const run = inp.torch.get(row.variant);
      return run ? [{ row, s: seeded(inp, run) }] : [];
    });
    // The best row by mean test accuracy over its seeds.
    this.best = this.torch.length ? this.torch.reduce((a, b) => (b.s.test.mean > a.s.test.mean ? b : a)) : undefined;
    this.missingTorch = TABLE1.filter((row) => !inp.torch.has(row.variant));
    this.numpy = inp.numpy && seeded(inp, inp.numpy);
    this.cnn = inp.cnn && seeded(inp, inp.cnn);
    this.evalModes = evidence(inp);
    for (const { row, s } of this.torch) {
      const d = deviations(s.base, { hidden: row.hidden, lr: row.lr, batch: row.batch, steps: row.steps });
      if (d.length) this.off.push(`\`${s.base.stage}\`: ${d.join(", ")}`);
    }
    for (const s of [this.numpy, this.cnn, ...this.torch.map((t) => t.s)]) {
      for (const { run, differ } of s?.excluded ?? []) {
        this.off.push(
          `\`${run.stage}\`: ${differ.join(", ").replaceAll("(study ", "(seed 42's ")}, left out of the mean`,
        );
      }
    }
    for (const run of [inp.numpy, ...inp.evalModes.values(), inp.batchnorm, inp.cnn]) {
      if (!run) continue;
      const d = deviations(run, STUDY_SETTINGS[run.stage]);
      if (d.length) this.off.push(`\`${run.stage}\`: ${d.join(", ")}`);
    }
    const searchParams = inp.search &&
      { ...inp.search.source.provenance?.params, ...(inp.search.data as { params?: object } | null)?.params };
    if (searchParams) {
      const d = deviations(searchParams, STUDY_SETTINGS["search-mlp"]);
      if (d.length) this.off.push(`\`search-mlp\`: ${d.join(", ")}`);
    }
  }

  /** An eval-mode stage's scored runs over its seeds (the base first); empty until it has scored. */
  evalRuns = (stage: string): Run[] => {
    const e = this.evalModes.find((x) => x.stage === stage);
    return e?.run && e.scores ? seeded(this.inp, e.run).runs.filter((x) => asEvalModes(x.history)) : [];
  };

  /** Our Table 1 row of a variant, once it has run. */
  variant = (variant: string) => this.torch.find((t) => t.row.variant === variant);

  /** Registers a figure and returns its block. */
  figure = (id: string, caption: string, spec: Figure["spec"]): Block => {
    const number = this.figures.length + 1;
    const study = STUDY_FIGURES.indexOf(id) + 1;
    const fig = {
      id: `fig${number}-${id}`,
      number,
      caption: caption + (study ? ` (the study's figure ${study})` : ""),
      spec,
    };
    this.figures.push(fig);
    return { kind: "figure", figure: fig };
  };

  /**
   * The accuracy and loss figures of a run over its seeds: with two or more seeds the mean over seeds with the
   * band from the lowest to the highest seed; with one, that seed's curve. The study's numbers in the accuracy figure.
   */
  pair(slug: string, name: string, runs: Run[], refs: StudyRefs): Block[] {
    const several = runs.length > 1;
    const { curve, bands } = several
      ? overSeeds(`mean over ${runs.length} seeds`, runs.map((x) => x.curves[0].evals))
      : { curve: runs[0].curves[0], bands: { accuracy: [], loss: [] } };
    const seeds = several
      ? `mean over ${runs.length} seeds (seeds ${runs.map(seedOf).join(", ")}), the shaded band from the lowest to ` +
        "the highest seed at each evaluation"
      : `one seed (seed ${cell(seedOf(runs[0]))})`;
    const study = [
      refs.curve ? "the study's curve read from its figure (±0.01)" : "",
      refs.marks?.length ? "its final numbers (dotted lines, named below the plot)" : "",
    ]
      .filter((x) => x).join(" and ");
    return [
      this.figure(
        `${slug}-accuracy`,
        `${name}: accuracy of the training batch and the whole test set, ${seeds}` +
          (study ? `; with ${study}` : ""),
        curveSpec(`${name}: accuracy`, [curve], "accuracy", refs, bands.accuracy),
      ),
      this.figure(
        `${slug}-loss`,
        `${name}: loss (cross-entropy) of the training batch and the whole test set, ${seeds}; ` +
          lossWords(lossAxis([curve], bands.loss)),
        curveSpec(`${name}: loss`, [curve], "loss", {}, bands.loss),
      ),
    ];
  }
}

/** What a loss figure's axis is, in words. */
export const lossWords = (a: { log: boolean; lo: number; hi: number }) =>
  a.log
    ? `log scale from ${cell(a.lo)} to ${cell(a.hi)} (the losses span a factor of ${Math.round(a.hi / a.lo)})`
    : `linear axis fitted to the data (${cell(a.lo)} to ${cell(a.hi)})`;

/** The study's curve for a figure: point k at step k × every; a plateau to the end when the study gives one. */
export function studyCurve(label: string, c: { every: number; testAcc: number[]; plateau?: number; steps?: number }) {
  const points = c.testAcc.map((value, k) => ({ step: Math.round(k * c.every), value }));
  if (c.plateau !== undefined && c.steps !== undefined) points.push({ step: c.steps, value: c.plateau });
  return { label: `${label} (test, read from its figure ±0.01)`, points };
}

/** A Table 1 row's final numbers, as marks in a figure. */
export const rowMarks = (row: StudyRow) => [
  { label: `study's test ${pct(row.testAcc)}`, value: row.testAcc },
  { label: `study's train ${pct(row.trainAcc)}`, value: row.trainAcc },
];
