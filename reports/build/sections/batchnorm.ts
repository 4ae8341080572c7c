// Section 3, the custom batch normalisation (train-batchnorm): the
// assignment's gradient checks (checks.json, shown as they come), the network
// trained with the hand-written backward beside its autograd twin (the
// largest differences between the two curves), and its two figures.
import { curveSpec, lossAxis } from "../charts.ts";
import { equivalent } from "../claims.ts";
import type { Block } from "../document.ts";
import { cell, scalarsBlock, settings, spread, src, tableBlock } from "../format.ts";
import { notRunYet, type Run } from "../inputs.ts";
import { lossWords, type Report, rowMarks, sampleOf, seeded, seedOf } from "../report.ts";
import { compare } from "../stats.ts";
import { EQUIVALENCE_MARGIN } from "../study.ts";

/** Section 3: the assignment's checks, then the batch-norm network trained with the hand-written backward. */
export function batchnormSection(r: Report): Block[] {
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
        : "") +
      backwardsOverSeeds(r),
  });
  // The two backwards' curves lie on top of each other (the sentence above gives their largest differences): one
  // figure of the accuracy carries it; a loss figure would repeat it. A run without its twin shows both figures.
  const label = curves.map((c) => c.label).join(" vs ");
  b.push(
    r.figure(
      "batchnorm-accuracy",
      `Batch-norm MLP, ${label} backward: accuracy of the training batch and the whole test set, one seed, with ` +
        `the study's final numbers for ${bnRow.label} (dotted lines; not in the study)` +
        (curves.length > 1 ? "; the two backwards' losses differ as little (the largest differences above)" : ""),
      curveSpec("Custom batch norm: accuracy", curves, "accuracy", { marks: rowMarks(bnRow) }),
    ),
  );
  if (curves.length < 2) {
    b.push(
      r.figure(
        "batchnorm-loss",
        `Batch-norm MLP, ${label} backward: loss, one seed, ${lossWords(lossAxis(curves))} (not in the study)`,
        curveSpec("Custom batch norm: loss", curves, "loss"),
      ),
    );
  }
  return b;
}

/**
 * The two backwards' test accuracy over the seeds both trained, paired by seed and judged like claim 3
 * (equivalent within the report's margin by two one-sided 5% tests); "" below two common seeds.
 */
export function backwardsOverSeeds(r: Report): string {
  const twin = r.variant(r.bnRow.variant);
  if (!r.inp.batchnorm || !twin) return "";
  const manual = seeded(r.inp, r.inp.batchnorm).runs;
  const common = new Set(manual.map(seedOf).filter((s) => twin.s.runs.some((t) => seedOf(t) === s)));
  if (common.size < 2) return "";
  const test = (runs: Run[]) => sampleOf(runs.filter((x) => common.has(seedOf(x))), (x) => x.history.final.testAcc);
  const part = equivalent(
    "test: hand-written − autograd",
    compare(test(manual), test(twin.s.runs)),
    EQUIVALENCE_MARGIN,
  );
  const verdict = part.outcome === "holds"
    ? "the two backwards train to the same test accuracy within the margin"
    : part.outcome === "does not hold"
    ? "the two backwards' test accuracies differ by more than the margin"
    : `not enough seeds to tell whether they agree within the margin (inconclusive at n = ${part.n})`;
  return ` Over the ${common.size} seeds both trained (${[...common].join(", ")}): ${part.evidence}: ${verdict}.`;
}
