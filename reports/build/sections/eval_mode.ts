// Part of section 2: why our dropout rows score above the study's. The
// eval-mode stages (dropout-eval-mode, batchnorm-eval-mode) load the final
// weights of those Table 1 runs and score the test set both ways: inference
// mode (ours) and training mode (as the study's code may have scored it).
// The runs and their scores are read once, in report.ts (Report.evalModes).
import type { Block } from "../document.ts";
import { NOT_RUN, pct, spread, src } from "../format.ts";
import { notRunYet } from "../inputs.ts";
import type { Report } from "../report.ts";

/** Why our dropout rows score above the study's: the same networks scored both ways (the eval-mode stages). */
export function evalModeSection(r: Report): Block[] {
  const ev = r.evalModes;
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
      rows: ev.map(({ stage, row, run, scores, unscored }) => {
        if (!run || !scores) {
          return [
            row.label,
            pct(row.testAcc),
            NOT_RUN,
            NOT_RUN,
            NOT_RUN,
            unscored ? `not scored: ${unscored}` : notRunYet(stage),
          ];
        }
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
