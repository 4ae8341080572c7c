// Part of section 2: why our dropout rows score above the study's. The
// eval-mode stages (dropout-eval-mode, batchnorm-eval-mode) load the final
// weights of those Table 1 runs and score the test set both ways: inference
// mode (ours) and training mode (as the study's code may have scored it).
// The runs and their scores are read once, in report.ts (Report.evalModes).
import type { Block } from "../document.ts";
import { interval, meanSd, NOT_RUN, pct, spread, src } from "../format.ts";
import { notRunYet } from "../inputs.ts";
import { asEvalModes, type Report } from "../report.ts";
import { estimate } from "../stats.ts";

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
        "dropout masks). With one seed the ± is the SD over those draws, not over seeds; with several, each " +
        "seed's score is its mean over the draws and the ± is the SD over seeds. Their inference-mode score is " +
        "the Table 1 run's, checked when scored.",
    },
    {
      kind: "table",
      head: [
        "run",
        "test acc, study",
        "ours, inference mode",
        "ours, training mode",
        "seeds",
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
        const runs = r.evalRuns(stage);
        if (runs.length > 1) {
          // Over seeds: each seed's training-mode score is its mean over the mask draws.
          const inf = estimate(runs.map((x) => asEvalModes(x.history)!.inference.testAcc));
          const tr = estimate(runs.map((x) => asEvalModes(x.history)!.training.testAccMean));
          return [
            row.label,
            pct(row.testAcc),
            `${meanSd(inf)} (95% ${interval(inf)})`,
            `**${meanSd(tr)}** (95% ${interval(tr)}; SD over seeds)`,
            String(runs.length),
            src(run),
          ];
        }
        const t = scores.training;
        return [
          row.label,
          pct(row.testAcc),
          pct(scores.inference.testAcc),
          `**${pct(t.testAccMean)}** ± ${spread(t.testAccSd)} (SD over ${t.testAccs.length} draws of the masks)`,
          "1",
          src(run),
        ];
      }),
    },
  ];
}
