// Section 2, the autograd MLP: the study's Table 1 with our numbers (mean
// over seeds, 95% interval, verdict), the differences between its rows that
// the study draws, and its figures: the default and the best run (the study's
// figures 3–6) and Table 1 as a chart. The dropout rows scored both ways sit
// between the differences and the figures: eval_mode.ts.
import { table1Spec } from "../charts.ts";
import type { Block } from "../document.ts";
import { cell, deviations, interval, meanSd, NOT_RUN, pct, signed, spread, src } from "../format.ts";
import { notRunYet, torchStage } from "../inputs.ts";
import { nOf, type Report, rowMarks, studyCurve } from "../report.ts";
import { compare, type Estimate } from "../stats.ts";
import { ClaimData } from "./claims.ts";
import { STUDY_CURVES, TABLE1 } from "../study.ts";
import { costOf } from "./costs.ts";

/** The study's Table 1, its numbers beside ours, and the rows not run yet. */
export function table1Section(r: Report): Block[] {
  const b: Block[] = [{
    kind: "para",
    text: "The study's Table 1, its numbers beside ours. Each row is one variant of `train-torch-mlp` with the " +
      "study's settings (the note at the top names any that differ); our numbers are the mean over the seeds " +
      "run so far (± SD when there are two or more), with the 95% interval of the mean and whether the study's " +
      "number falls inside it. Each run's name links to its provenance.",
  }];
  b.push({
    kind: "table",
    head: [
      "run (its provenance)",
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
      "verdict",
    ],
    right: [2, 3, 4, 5, 6, 7, 8, 9, 10],
    rows: TABLE1.map((row) => {
      const t = r.torch.find((x) => x.row === row);
      const name = t ? `[${row.label}](#${src(t.s.base).split("(#")[1]}` : row.label;
      const study = [name, row.hidden.join(", "), cell(row.lr), String(row.batch), String(row.steps)];
      if (!t) return [...study, pct(row.trainAcc), NOT_RUN, pct(row.testAcc), ...Array(4).fill(NOT_RUN)];
      const { s } = t;
      const differ = deviations(s.base, { hidden: row.hidden, lr: row.lr, batch: row.batch, steps: row.steps });
      return [
        ...study,
        pct(row.trainAcc),
        meanSd(s.train),
        pct(row.testAcc),
        meanSd(s.test),
        nOf(s),
        interval(s.test),
        differ.length ? "**settings differ**: not comparable" : shortVerdict(s.test, row.testAcc),
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

/** Our estimate against the study's number, briefly (Table 1's last column). */
function shortVerdict(e: Estimate, study: number): string {
  const d = signed(e.mean - study);
  if (e.lo === undefined || e.hi === undefined) return `${d} pts, one seed (no interval)`;
  if (e.lo <= study && study <= e.hi) return `reproduced: the study's inside (${d} pts)`;
  return `not reproduced: our interval lies ${e.mean > study ? "above" : "below"} the study's (${d} pts)`;
}

/** The differences the study draws between rows, ours with their uncertainty. */
export function rowDifferences(r: Report): Block[] {
  const pairs: [string, string, string][] = [
    ["ga1", "default", "GA1's network and schedule"],
    ["ga1-dropout", "ga1", "dropout"],
    ["ga1-dropout-batchnorm", "ga1-dropout", "batch norm, with dropout"],
    ["ga2", "ga1", "GA2 instead of GA1"],
    ["ga3", "ga1", "GA3 instead of GA1"],
  ];
  const d = new ClaimData(r);
  let oneSeed = false;
  const rows = pairs.flatMap(([a, b, what]) => {
    const [x, y] = [r.variant(a), r.variant(b)];
    const [sa, sb] = [d.test(a, "inference"), d.test(b, "inference")];
    if (!x || !y || !sa || !sb) return [];
    const c = compare(sa, sb);
    const has = c.lo !== undefined && c.hi !== undefined;
    if (!has) oneSeed = true;
    return [[
      `${x.row.label} − ${y.row.label} (${what})`,
      signed(x.row.testAcc - y.row.testAcc),
      signed(c.diff),
      c.na === c.nb ? String(c.na) : `${c.na} and ${c.nb}`,
      has ? `${signed(c.lo!)} to ${signed(c.hi!)} (${c.paired ? "paired" : "Welch"})` : "none",
      !has
        ? `no interval: one seed of ${[x, y].filter((t) => t.s.runs.length < 2).map((t) => t.row.label).join(" and ")}`
        : c.lo! > 0 || c.hi! < 0
        ? `a real difference (the interval excludes 0)${
          Math.sign(c.diff) !== Math.sign(x.row.testAcc - y.row.testAcc) ? ", the other way from the study's" : ""
        }`
        : "within seed noise (the interval includes 0)",
    ]];
  });
  if (!rows.length) return [];
  const def = r.variant("default")?.s.test;
  // Said only while some row has one seed: once all have seeds, the intervals speak for themselves.
  const noise = oneSeed && def?.sd !== undefined
    ? ` For a sense of scale: the Default row's test accuracy varies over its ${def.n} seeds with an SD of ` +
      `${spread(def.sd)} pts, so if the other rows varied as much, the difference of two single runs would ` +
      `need to exceed about ${spread(1.96 * Math.SQRT2 * def.sd)} pts (1.96 · √2 · SD) to stand out from seed ` +
      "noise (an assumption, not a measurement, for the rows of one seed)."
    : "";
  return [
    {
      kind: "para",
      text: "Differences between rows of Table 1, the study's and ours (test accuracy in inference mode, points), " +
        "with a 95% interval for ours where both rows have two or more seeds: paired seed by seed where both rows " +
        "ran the same seeds (the t interval of the per-seed differences), Welch's otherwise. The claims these " +
        "differences bear on are judged at the top, in [Claims](#claims)." + noise,
    },
    {
      kind: "table",
      head: ["difference", "study (pts)", "ours (pts)", "seeds", "95% interval (pts)", "verdict"],
      right: [1, 2, 3, 4],
      rows,
    },
  ];
}

/** The default and the best row's figures (the study's 3–6), and Table 1 as a chart. */
export function table1Figures(r: Report): Block[] {
  const b: Block[] = [];
  const def = r.variant("default");
  const { best, studyBest } = r;
  const bestText = best
    ? `the best of our ${r.missingTorch.length ? `${r.torch.length} finished` : "six"} rows by mean test ` +
      `accuracy, **${best.row.label}** (the study's figures 5–6 for its best; the study's best was ${studyBest.label})`
    : `the best run: none has finished yet (the study's best was ${studyBest.label})`;
  b.push({
    kind: "para",
    text:
      `${
        def ? "The default run (the study's figures 3–4)" : `The default run: ${notRunYet(torchStage("default"))}`
      } and ` +
      `${bestText}.${(def ?? best) ? ` Compute path: ${costOf((def ?? best)!.s.base).compute}.` : ""}`,
  });
  if (def) {
    b.push(...r.pair("torch-mlp-default", "Autograd MLP, default", def.s.runs, {
      curve: studyCurve("study", STUDY_CURVES.default),
      marks: rowMarks(def.row),
    }));
  }
  if (best) {
    // The study's curve of its own best run (GA1), named as such when our best is another row.
    const ga1 = best.row.variant === "ga1" ? "study" : `study's ${studyBest.label} (its best)`;
    b.push(...r.pair("torch-mlp-best", `Autograd MLP, best run (${best.row.label})`, best.s.runs, {
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
