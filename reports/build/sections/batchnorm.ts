// Section 3, the custom batch normalisation (train-batchnorm): the
// assignment's gradient checks (checks.json, shown as they come), the network
// trained with the hand-written backward beside its autograd twin (the
// largest differences between the two curves), and its two figures.
import { curveSpec } from "../charts.ts";
import type { Block } from "../document.ts";
import { cell, scalarsBlock, settings, spread, src, tableBlock } from "../format.ts";
import { notRunYet } from "../inputs.ts";
import { type Report, rowMarks } from "../report.ts";

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
        : ""),
  });
  const same = curves.length > 1 && diff && Object.values(diff).every((v) => v === 0);
  if (same) {
    // Identical at every evaluation: one curve says it all; the sentence says why only one is drawn.
    b.push({
      kind: "para",
      text: `The two curves are identical at every evaluation (all four largest differences are 0), so the ` +
        `figure draws the ${curves[1].label} backward's alone: the autograd curve would lie exactly on it.`,
    });
    b.push(
      r.figure(
        "batchnorm-accuracy",
        `Batch-norm MLP, ${curves[1].label} backward (identical to the autograd one): accuracy of the training ` +
          `batch and the whole test set, one seed, with the study's final numbers for ${bnRow.label} (dotted ` +
          "lines; not in the study)",
        curveSpec("Custom batch norm: accuracy", [curves[1]], "accuracy", { marks: rowMarks(bnRow) }),
      ),
    );
    return b;
  }
  const label = curves.map((c) => c.label).join(" vs ");
  b.push(
    r.figure(
      "batchnorm-accuracy",
      `Batch-norm MLP, ${label} backward: accuracy, one seed, with the study's final numbers for ${bnRow.label} ` +
        "(dotted lines; not in the study)",
      curveSpec("Custom batch norm: accuracy", curves, "accuracy", { marks: rowMarks(bnRow) }),
    ),
    r.figure(
      "batchnorm-loss",
      `Batch-norm MLP, ${label} backward: loss, one seed, the axis spanning the data's range (not in the study)`,
      curveSpec("Custom batch norm: loss", curves, "loss"),
    ),
  );
  return b;
}
