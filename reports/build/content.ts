// What the report says: one function per section, built from the inputs
// (ours) and study.ts (the study's numbers). Every number of ours names its
// source stage, whose provenance closes the report. A run repeated over seeds
// is shown as mean ± SD with n and a t-based 95% interval; n = 1 as the one
// value, without an interval. A run not among the inputs (not run yet) is said
// so wherever its results would be. Families of sections live beside this
// file: runs.ts (environment, cost, provenance), search.ts, classes.ts.
import type { EvalPoint, TrainingHistory } from "../../pipeline/types.ts";
import { curveSpec, type Figure, type StudyRefs, table1Spec } from "./charts.ts";
import { classBlocks } from "./classes.ts";
import type { Block } from "./document.ts";
import {
  cell,
  deviations,
  interval,
  meanSd,
  NOT_RUN,
  paramsOf,
  pct,
  pts,
  scalarsBlock,
  settings,
  signed,
  spread,
  src,
  tableBlock,
} from "./format.ts";
import { EVAL_MODE_STAGES, notRunYet, type ReportInputs, type Run, RUN_STAGES, torchStage } from "./inputs.ts";
import { allRuns, costBlocks, costOf, environmentBlocks, provenanceBlocks } from "./runs.ts";
import { searchBlocks } from "./search.ts";
import { difference, type Estimate, estimate } from "./stats.ts";
import { EXPECTED, QUIRKS, STUDY_CURVES, STUDY_SETTINGS, type StudyRow, TABLE1 } from "./study.ts";

export const TITLE = "Reproducing “Assignment 1: MLPs, CNNs and Backpropagation” on CIFAR-10";

export interface Built {
  blocks: Block[];
  figures: Figure[];
  metrics: Record<string, number | string>;
}

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

/** Figure numbers: the study's figures 1–8 keep their numbers, ours follow. */
const FIGURE_NUMBERS = [
  "numpy-mlp-accuracy",
  "numpy-mlp-loss",
  "torch-mlp-default-accuracy",
  "torch-mlp-default-loss",
  "torch-mlp-best-accuracy",
  "torch-mlp-best-loss",
  "cnn-accuracy",
  "cnn-loss",
  "batchnorm-accuracy",
  "batchnorm-loss",
  "table1",
  "search",
  "confusion-cnn",
  "confusion-best-mlp",
];

const finalOf = (evals: EvalPoint[]) => evals[evals.length - 1];

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

/** "5", or "3 of 5" while seeds are missing. */
const nOf = (s: Seeded) => (s.runs.length < s.declared ? `${s.runs.length} of ${s.declared}` : String(s.runs.length));

/** Our estimate against the study's number, in words. */
export function verdict(e: Estimate, study: number): string {
  const d = signed(e.mean - study);
  if (e.lo === undefined || e.hi === undefined) return `${d} pts on one seed; its spread over seeds not measured`;
  if (e.lo <= study && study <= e.hi) return `reproduced: the study's value lies inside our interval (${d} pts)`;
  return `${e.mean > study ? "above" : "below"} the study: ${d} pts, its value outside our interval`;
}

/** The state shared by the sections: inputs, derived runs, and the figures registered so far. */
class Report {
  readonly figures: Figure[] = [];
  readonly torch: { row: StudyRow; s: Seeded }[];
  readonly best?: { row: StudyRow; s: Seeded };
  readonly missingTorch: StudyRow[];
  readonly studyBest = TABLE1.reduce((a, b) => (b.testAcc > a.testAcc ? b : a));
  readonly bnRow = TABLE1.find((r) => r.batchnorm)!;
  readonly numpy?: Seeded;
  readonly cnn?: Seeded;
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

  /** Registers a figure and returns its block. */
  figure = (id: string, caption: string, spec: Figure["spec"]): Block => {
    const number = FIGURE_NUMBERS.indexOf(id) + 1 || FIGURE_NUMBERS.length + this.figures.length + 1;
    const fig = { id: `fig${number}-${id}`, number, caption, spec };
    this.figures.push(fig);
    return { kind: "figure", figure: fig };
  };

  /** The accuracy and loss figures of one run, with the study's numbers in the accuracy figure. */
  pair(slug: string, name: string, run: Run, refs: StudyRefs): Block[] {
    const curve = run.curves.slice(0, 1);
    const study = [
      refs.curve ? "the study's curve read from its figure (±0.01)" : "",
      refs.marks?.length ? "its final numbers (dotted lines, named below the plot)" : "",
    ]
      .filter((x) => x).join(" and ");
    return [
      this.figure(
        `${slug}-accuracy`,
        `${name}: accuracy of the training batch and the whole test set (seed ${cell(run.history.params.seed ?? 42)})` +
          (study ? `, with ${study}` : ""),
        curveSpec(`${name}: accuracy`, curve, "accuracy", refs),
      ),
      this.figure(
        `${slug}-loss`,
        `${name}: loss of the training batch and the whole test set, log scale (the first evaluations' ` +
          "losses are far above the rest: on a linear axis the rest of the run would be a flat line)",
        curveSpec(`${name}: loss`, curve, "loss"),
      ),
    ];
  }
}

/** The study's curve for a figure: point k at step k × every; a plateau to the end when the study gives one. */
function studyCurve(label: string, c: { every: number; testAcc: number[]; plateau?: number; steps?: number }) {
  const points = c.testAcc.map((value, k) => ({ step: Math.round(k * c.every), value }));
  if (c.plateau !== undefined && c.steps !== undefined) points.push({ step: c.steps, value: c.plateau });
  return { label: `${label} (test, read from its figure ±0.01)`, points };
}

const rowMarks = (row: StudyRow) => [
  { label: `study's test ${pct(row.testAcc)}`, value: row.testAcc },
  { label: `study's train ${pct(row.trainAcc)}`, value: row.trainAcc },
];

export function buildReport(inp: ReportInputs): Built {
  const r = new Report(inp);
  const blocks: Block[] = [
    ...header(r),
    ...environmentBlocks(allRuns(inp)),
    ...summary(r),
    { kind: "heading", level: 2, text: "1. MLP with hand-written backpropagation" },
    ...numpySection(r),
    { kind: "heading", level: 2, text: "2. MLP with automatic differentiation: Table 1" },
    ...table1Section(r),
    ...rowDifferences(r),
    ...evalModeSection(r),
    ...table1Figures(r),
    { kind: "heading", level: 2, text: "3. Custom batch normalisation" },
    ...batchnormSection(r),
    { kind: "heading", level: 2, text: "4. Convolutional network" },
    ...cnnSection(r),
    { kind: "heading", level: 2, text: "5. Per-class results" },
    ...classSection(r),
    { kind: "heading", level: 2, text: "6. Evolutionary hyper-parameter search" },
    ...searchBlocks(inp, r.figure, (v) => r.torch.find((t) => t.row.variant === v)?.s.test.mean),
    { kind: "heading", level: 2, text: "7. What each run cost" },
    ...costBlocks(inp),
    { kind: "heading", level: 2, text: "8. Where we differ from the study's code" },
    ...quirksSection(r),
    ...provenanceBlocks(inp),
  ];
  return {
    blocks,
    figures: r.figures,
    metrics: {
      figures: r.figures.length,
      // A partial report leaves out what it does not have and counts what is missing.
      ...(r.best ? { best_variant: r.best.row.variant, best_test_acc: r.best.s.test.mean } : {}),
      ...(r.numpy ? { numpy_test_acc: r.numpy.test.mean, numpy_seeds: r.numpy.runs.length } : {}),
      ...(r.cnn ? { cnn_test_acc: r.cnn.test.mean, cnn_seeds: r.cnn.runs.length } : {}),
      off_study_settings: r.off.length,
      ...(inp.missing.length ? { missing_runs: inp.missing.length } : {}),
    },
  };
}

// ---------------------------------------------------------------- header and summary

function header(r: Report): Block[] {
  const { inp } = r;
  const b: Block[] = [{ kind: "heading", level: 1, text: TITLE }];
  if (inp.missing.length) {
    b.push({
      kind: "note",
      text:
        `Partial report: ${inp.missing.length} of ${RUN_STAGES.length} ${
          inp.missing.length === 1 ? "runs is" : "runs are"
        } not finished yet: ` +
        `${inp.missing.map((s) => `\`${s}\``).join(", ")}. Where their results belong, the report says ` +
        "“not run yet” and how to run them; `deno task reproduce report` once they are done gives the full report.",
    });
  }
  b.push({
    kind: "para",
    text: "This report is written by the pipeline's `report` stage from the outputs of the training stages. " +
      "The study's numbers come from one file, `reports/build/study.ts`, typed in from the study's Table 1, " +
      "`SPEC.md` and the study's own figures; every other number is read from a stage's output and names that " +
      "stage, whose cache key, code hash and file hashes are listed under [Provenance](#provenance). Test " +
      "accuracy is over the whole test set, train accuracy over the last training mini-batch (as the study " +
      "measured it); differences are ours minus the study's, in percentage points. Percentages and points are " +
      "rounded to one decimal, halves away from zero.",
  });
  b.push({
    kind: "para",
    text: "Runs repeated over seeds (each seed its own cached run, `<stage>+s<seed>`) are shown as mean ± SD " +
      "over the seeds, with n and a 95% interval for the mean (Student's t with n − 1 degrees of freedom: " +
      "small n gives wide intervals). A run of one seed is shown as its value, with no interval: its spread " +
      "over seeds was not measured, and a difference from the study smaller than that spread would mean nothing.",
  });
  if (r.off.length) {
    b.push({
      kind: "note",
      text: `${r.off.length} run(s) did not use the study's settings, so their differences from the study say ` +
        `nothing about the reproduction (a smoke run checks the plumbing, not the science): ${r.off.join("; ")}.`,
    });
  }
  return b;
}

function summary(r: Report): Block[] {
  const { inp } = r;
  const dash = [NOT_RUN, NOT_RUN, NOT_RUN, NOT_RUN];
  const notRunRow = (label: string, study: string, stage: string) => [label, study, ...dash, notRunYet(stage)];
  /** ours as mean ± SD with n and interval, beside the study's number. */
  const seededRow = (label: string, study: number, s: Seeded, studyText = pct(study)) => [
    label,
    studyText,
    meanSd(s.test),
    nOf(s),
    interval(s.test),
    pts(s.test.mean, study),
    src(s.base),
  ];
  const oneRow = (label: string, study: number, ours: number, source: string, studyText = pct(study)) => [
    label,
    studyText,
    pct(ours),
    "1",
    interval({}),
    pts(ours, study),
    source,
  ];
  const assignment = (x: number) => `${pct(x)} (assignment)`;
  const rows: string[][] = [
    r.numpy
      ? seededRow("hand-written MLP, SGD", EXPECTED.numpyMlpTestAcc, r.numpy, assignment(EXPECTED.numpyMlpTestAcc))
      : notRunRow("hand-written MLP, SGD", assignment(EXPECTED.numpyMlpTestAcc), "train-numpy-mlp"),
    ...TABLE1.map((row) => {
      const t = r.torch.find((x) => x.row === row);
      const label = `autograd MLP, ${row.label}`;
      return t ? seededRow(label, row.testAcc, t.s) : notRunRow(label, pct(row.testAcc), torchStage(row.variant));
    }),
  ];
  if (r.best) {
    const among = r.missingTorch.length ? ` (among the ${r.torch.length} finished)` : "";
    const met = r.best.s.test.mean >= EXPECTED.bestMlpTarget;
    rows.push([
      `assignment's target for the best autograd MLP${among}, ours ${r.best.row.label}`,
      `≥ ${pct(EXPECTED.bestMlpTarget)}`,
      meanSd(r.best.s.test),
      nOf(r.best.s),
      interval(r.best.s.test),
      met ? "met" : "**not met**",
      src(r.best.s.base),
    ]);
  }
  const manual = inp.batchnorm?.curves.find((c) => !c.from);
  rows.push(
    inp.batchnorm && manual
      ? oneRow(
        `custom batch norm, hand-written backward (${r.bnRow.label})`,
        r.bnRow.testAcc,
        finalOf(manual.evals).testAcc,
        src(inp.batchnorm),
      )
      : notRunRow(
        `custom batch norm, hand-written backward (${r.bnRow.label})`,
        pct(r.bnRow.testAcc),
        "train-batchnorm",
      ),
  );
  // Like with like: the pick trained for its full steps against the study's best GA pick, also full steps.
  rows.push(
    inp.searchPick
      ? oneRow(
        `evolutionary search's pick, trained for its full steps (study's best GA pick: ${r.studyBest.label})`,
        r.studyBest.testAcc,
        inp.searchPick.history.final.testAcc,
        src(inp.searchPick),
      )
      : notRunRow(
        "evolutionary search's pick, trained for its full steps",
        pct(r.studyBest.testAcc),
        "train-search-pick",
      ),
  );
  for (const { stage, row, run, scores, mode } of evidence(inp)) {
    const label = `autograd MLP, ${row.label}, test scored in training mode (${mode})`;
    if (!run || !scores) {
      rows.push(notRunRow(label, pct(row.testAcc), stage));
      continue;
    }
    const t = scores.training;
    rows.push([
      label,
      pct(row.testAcc),
      `${pct(t.testAccMean)} ± ${spread(t.testAccSd)} (SD over ${t.testAccs.length} draws of the dropout masks)`,
      "1",
      interval({}),
      pts(t.testAccMean, row.testAcc),
      src(run),
    ]);
  }
  rows.push(
    r.cnn
      ? seededRow("CNN (small VGG)", EXPECTED.cnnTestAcc, r.cnn, assignment(EXPECTED.cnnTestAcc))
      : notRunRow("CNN (small VGG)", assignment(EXPECTED.cnnTestAcc), "train-cnn"),
  );
  return [
    { kind: "heading", level: 2, text: "Summary", id: "summary" },
    {
      kind: "table",
      head: ["result (test accuracy)", "study", "ours (mean ± SD)", "seeds", "95% interval", "Δ (pts)", "source"],
      right: [1, 2, 3, 4, 5],
      rows,
    },
  ];
}

// ---------------------------------------------------------------- 1. numpy MLP

function numpySection(r: Report): Block[] {
  const intro = "Linear → ReLU → Linear → softmax, every forward and backward written by hand, plain SGD (the " +
    "study's figures 1–2)";
  if (!r.numpy) return [{ kind: "para", text: `${intro}: ${notRunYet("train-numpy-mlp")}.` }];
  const s = r.numpy;
  return [
    {
      kind: "para",
      text: `${intro}. Settings: ${settings(s.base)}. Compute path: ${costOf(s.base).compute}. Final test ` +
        `accuracy ${meanSd(s.test)} over ${nOf(s)} seed(s), 95% interval ${interval(s.test)} (assignment: about ` +
        `${pct(EXPECTED.numpyMlpTestAcc)}): ${verdict(s.test, EXPECTED.numpyMlpTestAcc)}.`,
    },
    ...r.pair("numpy-mlp", "Hand-written MLP", s.base, {
      curve: studyCurve("study", STUDY_CURVES.numpy),
      marks: [{ label: `assignment's test ${pct(EXPECTED.numpyMlpTestAcc)}`, value: EXPECTED.numpyMlpTestAcc }],
    }),
  ];
}

// ---------------------------------------------------------------- 2. Table 1

function table1Section(r: Report): Block[] {
  const b: Block[] = [{
    kind: "para",
    text: "The study's Table 1, its numbers beside ours. Each row is one variant of `train-torch-mlp` with the " +
      "study's settings (the note at the top names any that differ); our numbers are the mean over the seeds " +
      "run so far (± SD when there are two or more), with the 95% interval of the mean and whether the study's " +
      "number falls inside it.",
  }];
  b.push({
    kind: "table",
    head: [
      "run",
      "hidden",
      "lr",
      "batch",
      "steps",
      "train acc, study",
      "ours",
      "test acc, study",
      "ours (mean ± SD)",
      "seeds",
      "95% interval",
      "study inside",
      "verdict",
      "source",
    ],
    right: [2, 3, 4, 5, 6, 7, 8, 9, 10],
    rows: TABLE1.map((row) => {
      const study = [row.label, row.hidden.join(","), cell(row.lr), String(row.batch), String(row.steps)];
      const t = r.torch.find((x) => x.row === row);
      if (!t) return [...study, pct(row.trainAcc), NOT_RUN, pct(row.testAcc), ...Array(6).fill(NOT_RUN)];
      const { s } = t;
      const differ = deviations(s.base, { hidden: row.hidden, lr: row.lr, batch: row.batch, steps: row.steps });
      const inside = s.test.lo === undefined
        ? "–"
        : s.test.lo <= row.testAcc && row.testAcc <= s.test.hi!
        ? "yes"
        : "no";
      return [
        ...study,
        pct(row.trainAcc),
        meanSd(s.train),
        pct(row.testAcc),
        meanSd(s.test),
        nOf(s),
        interval(s.test),
        inside,
        differ.length ? "**settings differ**: not comparable" : verdict(s.test, row.testAcc),
        `[@${row.variant}](#${src(s.base).split("(#")[1]}`,
      ];
    }),
  });
  if (r.missingTorch.length) {
    b.push({
      kind: "para",
      text: `${NOT_RUN} not run yet: ${
        r.missingTorch.map((x) => `${x.label} (\`deno task reproduce ${torchStage(x.variant)}\`)`).join(", ")
      }.`,
    });
  }
  return b;
}

/** The differences the study draws between rows, ours with their uncertainty. */
function rowDifferences(r: Report): Block[] {
  const pairs: [string, string, string][] = [
    ["ga1", "default", "GA1's network and schedule"],
    ["ga1-dropout", "ga1", "dropout"],
    ["ga1-dropout-batchnorm", "ga1-dropout", "batch norm, with dropout"],
    ["ga2", "ga1", "GA2 instead of GA1"],
    ["ga3", "ga1", "GA3 instead of GA1"],
  ];
  const get = (v: string) => r.torch.find((t) => t.row.variant === v);
  const rows = pairs.flatMap(([a, b, what]) => {
    const [x, y] = [get(a), get(b)];
    if (!x || !y) return [];
    const d = difference(x.s.test, y.s.test);
    const has = d.lo !== undefined && d.hi !== undefined;
    return [[
      `${x.row.label} − ${y.row.label} (${what})`,
      signed(x.row.testAcc - y.row.testAcc),
      signed(d.diff),
      `${x.s.runs.length} and ${y.s.runs.length}`,
      has ? `${signed(d.lo!)} to ${signed(d.hi!)}` : "none",
      !has
        ? `no interval: one seed of ${[x, y].filter((t) => t.s.runs.length < 2).map((t) => t.row.label).join(" and ")}`
        : d.lo! > 0 || d.hi! < 0
        ? "a real difference (the interval excludes 0)"
        : "within seed noise (the interval includes 0)",
    ]];
  });
  if (!rows.length) return [];
  const def = get("default")?.s.test;
  const noise = def?.sd !== undefined
    ? ` For a sense of scale: the Default row's test accuracy varies over its ${def.n} seeds with an SD of ` +
      `${spread(def.sd)} pts, so if the other rows varied as much, the difference of two single runs would ` +
      `need to exceed about ${spread(1.96 * Math.SQRT2 * def.sd)} pts (1.96 · √2 · SD) to stand out from seed ` +
      "noise (an assumption, not a measurement, for the rows of one seed)."
    : "";
  return [
    {
      kind: "para",
      text: "Differences between rows of Table 1, the study's and ours (test accuracy, points), with a 95% " +
        "interval for ours (Welch's t) where both rows have two or more seeds." + noise,
    },
    {
      kind: "table",
      head: ["difference", "study (pts)", "ours (pts)", "seeds", "95% interval (pts)", "verdict"],
      right: [1, 2, 3, 4],
      rows,
    },
  ];
}

/** The dropout rows of Table 1, each with the stage that scores it both ways (its run and scores, once run). */
function evidence(inp: ReportInputs) {
  return EVAL_MODE_STAGES.map(({ stage, variant }) => {
    const row = TABLE1.find((x) => x.variant === variant)!;
    const run = inp.evalModes.get(stage);
    const mode = row.batchnorm ? "dropout on, batch statistics" : "dropout on";
    return { stage, row, run, scores: run && asEvalModes(run.history), mode };
  });
}

/** Why our dropout rows score above the study's: the same networks scored both ways (the eval-mode stages). */
function evalModeSection(r: Report): Block[] {
  const ev = evidence(r.inp);
  return [
    {
      kind: "para",
      text: "Our dropout rows score the test set in inference mode (dropout off, batch norm with running " +
        "statistics). Had the study's MLP code, like its CNN code (SPEC), scored it with the model still in " +
        "training mode (dropout on; its batch norm kept no running statistics, so batch statistics), its figures " +
        `would be lower. To measure by how much, ${ev.map((e) => `\`${e.stage}\``).join(" and ")} load the ` +
        `final weights of ${ev.map((e) => e.row.label).join(" and ")} (their Table 1 runs' weights files) and ` +
        "score them both ways (training mode: the whole test set in one forward pass, several draws of the " +
        "dropout masks; the ± is the SD over those draws, not over seeds). Their inference-mode score is the " +
        "Table 1 run's, checked when scored.",
    },
    {
      kind: "table",
      head: [
        "run",
        "test acc, study",
        "ours, inference mode",
        "ours, training mode (± SD over draws)",
        "draws",
        "source",
      ],
      right: [1, 2, 3, 4],
      rows: ev.map(({ stage, row, run, scores }) => {
        if (!run || !scores) return [row.label, pct(row.testAcc), NOT_RUN, NOT_RUN, NOT_RUN, notRunYet(stage)];
        const t = scores.training;
        return [
          row.label,
          pct(row.testAcc),
          pct(scores.inference.testAcc),
          `**${pct(t.testAccMean)}** ± ${spread(t.testAccSd)}`,
          String(t.testAccs.length),
          src(run),
        ];
      }),
    },
  ];
}

function table1Figures(r: Report): Block[] {
  const b: Block[] = [];
  const def = r.torch.find((t) => t.row.variant === "default");
  const { best, studyBest } = r;
  const bestText = best
    ? `the best of our ${r.missingTorch.length ? `${r.torch.length} finished` : "six"} rows by mean test ` +
      `accuracy, **${best.row.label}** (figures 5–6; the study's best was ${studyBest.label})`
    : `the best run: none has finished yet (the study's best was ${studyBest.label})`;
  b.push({
    kind: "para",
    text: `${def ? "The default run (figures 3–4)" : `The default run: ${notRunYet(torchStage("default"))}`} and ` +
      `${bestText}.${(def ?? best) ? ` Compute path: ${costOf((def ?? best)!.s.base).compute}.` : ""}`,
  });
  if (def) {
    b.push(...r.pair("torch-mlp-default", "Autograd MLP, default", def.s.base, {
      curve: studyCurve("study", STUDY_CURVES.default),
      marks: rowMarks(def.row),
    }));
  }
  if (best) {
    // The study's curve of its own best run (GA1), named as such when our best is another row.
    const ga1 = best.row.variant === "ga1" ? "study" : `study's ${studyBest.label} (its best)`;
    b.push(...r.pair("torch-mlp-best", `Autograd MLP, best run (${best.row.label})`, best.s.base, {
      curve: studyCurve(ga1, STUDY_CURVES.ga1),
      marks: rowMarks(best.row),
    }));
  }
  if (r.torch.length) {
    b.push(
      r.figure(
        "table1",
        "Table 1 as a chart: the study's test accuracy beside ours (mean over seeds; not in the study)" +
          (r.missingTorch.length ? `; not run yet: ${r.missingTorch.map((x) => x.label).join(", ")}` : ""),
        table1Spec(TABLE1.flatMap((row) => {
          const t = r.torch.find((x) => x.row === row);
          return [
            { run: row.label, source: "study", test: row.testAcc },
            ...(t
              ? [{
                run: row.label,
                source: "ours",
                test: t.s.test.mean,
                n: t.s.runs.length,
                interval: interval(t.s.test),
                lo: t.s.test.lo,
                hi: t.s.test.hi,
              }]
              : []),
          ];
        })),
      ),
    );
  }
  return b;
}

// ---------------------------------------------------------------- 3. batch norm

function batchnormSection(r: Report): Block[] {
  const { inp, bnRow } = r;
  const intro = "Batch norm for MLP activations in two versions: composed of framework ops and differentiated " +
    "automatically, and with the hand-written backward of the study's eqs. 46, 50 and 69";
  const bn = inp.batchnorm;
  const checks = inp.checks;
  if (!bn || !checks) return [{ kind: "para", text: `${intro}: ${notRunYet("train-batchnorm")}.` }];
  const curves = bn.curves;
  const b: Block[] = [{
    kind: "para",
    text: `${intro}. The checks below are those of the assignment (source: ${src(checks.source)}, \`checks.json\`).`,
  }];
  if (checks.tables.length) { for (const t of checks.tables) b.push(...tableBlock(t)); }
  else b.push({ kind: "para", text: "`checks.json` holds no table of checks." });
  b.push(...scalarsBlock(checks.scalars));
  const diff = (bn.history as unknown as { curveMaxAbsDifference?: Record<string, number> }).curveMaxAbsDifference;
  b.push({
    kind: "para",
    text: `The ${bnRow.label} network trained with the hand-written backward (${src(bn)}, settings: ` +
      `${settings(bn)}), ${bn.pairing ?? "not compared with an autograd run"}` +
      (curves.length > 1
        ? `; the dashes tell the ${curves.map((c) => c.label).join(" and ")} backward apart (where the curves ` +
          "coincide, the dashed line hides under the solid one)."
        : ".") +
      (diff
        ? ` The largest differences between the two curves: training-batch loss ${cell(diff.trainLoss)}, ` +
          `test loss ${cell(diff.testLoss)}, training-batch accuracy ${spread(diff.trainAcc)} pts, test ` +
          `accuracy ${spread(diff.testAcc)} pts.`
        : ""),
  });
  const label = curves.map((c) => c.label).join(" vs ");
  b.push(
    r.figure(
      "batchnorm-accuracy",
      `Batch-norm MLP, ${label} backward: accuracy, with the study's final numbers for ${bnRow.label} (dotted lines; ` +
        "not in the study)",
      curveSpec("Custom batch norm: accuracy", curves, "accuracy", { marks: rowMarks(bnRow) }),
    ),
    r.figure(
      "batchnorm-loss",
      `Batch-norm MLP, ${label} backward: loss, log scale (not in the study)`,
      curveSpec("Custom batch norm: loss", curves, "loss"),
    ),
  );
  return b;
}

// ---------------------------------------------------------------- 4. CNN, 5. per class

function cnnSection(r: Report): Block[] {
  const intro = "The study's small VGG with a batch norm after every conv, Adam (the study's figures 7–8)";
  if (!r.cnn) return [{ kind: "para", text: `${intro}: ${notRunYet("train-cnn")}.` }];
  const s = r.cnn;
  const missing = s.declared - s.runs.length;
  return [
    {
      kind: "para",
      text: `${intro}. Settings: ${settings(s.base)}. Compute path: ${costOf(s.base).compute}. Final test ` +
        `accuracy ${meanSd(s.test)} over ${nOf(s)} seed(s), 95% interval ${interval(s.test)} (assignment: about ` +
        `${pct(EXPECTED.cnnTestAcc)}): ${verdict(s.test, EXPECTED.cnnTestAcc)}.` +
        (missing > 0
          ? ` ${missing} of the ${s.declared} declared seeds have not run yet (\`deno task reproduce train-cnn\`).`
          : ""),
    },
    ...r.pair("cnn", "CNN", s.base, {
      curve: studyCurve("study", STUDY_CURVES.cnn),
      marks: [{ label: `assignment's test ${pct(EXPECTED.cnnTestAcc)}`, value: EXPECTED.cnnTestAcc }],
    }),
  ];
}

function classSection(r: Report): Block[] {
  const runs = [
    { label: "CNN", slug: "cnn", run: r.cnn?.base },
    ...(r.best ? [{ label: `best MLP (${r.best.row.label})`, slug: "best-mlp", run: r.best.s.base }] : []),
  ];
  const b = classBlocks(runs, r.inp.testLabels?.labels, r.figure);
  return b.length ? b : [{ kind: "para", text: `Neither the CNN nor the best MLP has run yet.` }];
}

// ---------------------------------------------------------------- 8. differences from the study's code

function quirksSection(r: Report): Block[] {
  const b: Block[] = [{
    kind: "table",
    head: ["what", "the study's code", "ours"],
    rows: QUIRKS.map((q) => [q.what, q.study, q.ours]),
  }];
  // Each distinct note once, with every stage that recorded it (seed runs under their base).
  const notes = new Map<string, string[]>();
  for (const run of allRuns(r.inp)) {
    const stage = run.stage.replace(/\+s\d+$/, "");
    for (const n of run.history.notes ?? []) {
      const stages = notes.get(n) ?? [];
      if (!stages.includes(stage)) notes.set(n, [...stages, stage]);
    }
  }
  if (notes.size) {
    b.push({ kind: "para", text: "Notes the runs recorded:" });
    b.push({
      kind: "list",
      items: [...notes].map(([n, stages]) => `${stages.map((s) => `\`${s}\``).join(", ")}: ${plainWords(n)}`),
    });
  }
  return b;
}

/** A run's note in the report's words: the history's field names become what the report calls them. */
function plainWords(note: string): string {
  const words: Record<string, string> = {
    stepsPerSecond: "steps/s",
    wallSeconds: "the training time",
    evalImagesPerSecond: "test images/s",
    "`step`": "the step",
  };
  return Object.entries(words).reduce((n, [k, v]) => n.replaceAll(k, v), note);
}

/** The two scores an eval-mode stage records (undefined: another shape). */
function asEvalModes(h: TrainingHistory): {
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
