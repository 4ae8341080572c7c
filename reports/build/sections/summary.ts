// The report's opening and its summary: the title, the notes that qualify
// everything below (a partial report, runs off the study's settings), how to
// read the numbers, and the summary table: every headline result of ours
// beside the study's (or the assignment's) number, with its source stage.
import type { Block } from "../document.ts";
import { interval, meanSd, NOT_RUN, pct, pts, spread, src } from "../format.ts";
import { notRunYet, RUN_STAGES, torchStage } from "../inputs.ts";
import { asEvalModes, finalOf, nOf, type Report, type Seeded, seeded, TITLE } from "../report.ts";
import { estimate } from "../stats.ts";
import { EXPECTED, TABLE1 } from "../study.ts";

/** The title, the notes (a partial report, runs off the study's settings) and how to read the numbers. */
export function opening(r: Report): Block[] {
  const { inp } = r;
  const b: Block[] = [{ kind: "heading", level: 1, text: TITLE }];
  if (inp.missing.length) {
    b.push({
      kind: "note",
      text:
        `Partial report: ${inp.missing.length} of ${RUN_STAGES.length} ${
          inp.missing.length === 1 ? "stage is" : "stages are"
        } not finished yet (a stage: a Table 1 row or a model, its seeds counted with it): ` +
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
        `nothing about the reproduction: ${r.off.join("; ")}.`,
    });
  }
  return b;
}

/** Every headline result beside the study's, one row each (a run not finished: the row says how to run it). */
export function summarySection(r: Report): Block[] {
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
  // Over seeds once they exist (the manual run's own final numbers, its history's).
  const bnSeeds = inp.batchnorm && seeded(inp, inp.batchnorm);
  const pickSeeds = inp.searchPick && seeded(inp, inp.searchPick);
  rows.push(
    bnSeeds && bnSeeds.runs.length > 1
      ? seededRow(`custom batch norm, hand-written backward (${r.bnRow.label})`, r.bnRow.testAcc, bnSeeds)
      : inp.batchnorm && manual
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
    pickSeeds && pickSeeds.runs.length > 1
      ? seededRow(
        `evolutionary search's pick, trained for its full steps (study's best GA pick: ${r.studyBest.label})`,
        r.studyBest.testAcc,
        pickSeeds,
      )
      : inp.searchPick
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
  for (const { stage, row, run, scores, mode, unscored } of r.evalModes) {
    const label = `autograd MLP, ${row.label}, test scored in training mode (${mode})`;
    if (!run || !scores) {
      rows.push(
        unscored
          ? [label, pct(row.testAcc), ...dash, `not scored: ${unscored}`]
          : notRunRow(label, pct(row.testAcc), stage),
      );
      continue;
    }
    const runs = r.evalRuns(stage);
    if (runs.length > 1) {
      const tr = estimate(runs.map((x) => asEvalModes(x.history)!.training.testAccMean));
      rows.push([
        label,
        pct(row.testAcc),
        meanSd(tr),
        String(runs.length),
        interval(tr),
        pts(tr.mean, row.testAcc),
        src(run),
      ]);
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
    {
      kind: "table",
      head: ["result (test accuracy)", "study", "ours (mean ± SD)", "seeds", "95% interval", "Δ (pts)", "source"],
      right: [1, 2, 3, 4, 5],
      rows,
    },
  ];
}
