// Section 4, the convolutional network (train-cnn): its settings, compute
// path, final test accuracy over its seeds (and the seeds not run yet)
// against the assignment's number, and the study's figures 7–8.
import type { Block } from "../document.ts";
import { interval, meanSd, pct, settings } from "../format.ts";
import { notRunYet } from "../inputs.ts";
import { nOf, type Report, studyCurve, verdict } from "../report.ts";
import { EXPECTED, STUDY_CURVES } from "../study.ts";
import { costOf } from "./costs.ts";

/** Section 4: the CNN, its final accuracy over seeds and its two figures (the study's 7–8). */
export function cnnSection(r: Report): Block[] {
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
    ...r.pair("cnn", "CNN", s.runs, {
      curve: studyCurve("study", STUDY_CURVES.cnn),
      marks: [{ label: `assignment's test ${pct(EXPECTED.cnnTestAcc)}`, value: EXPECTED.cnnTestAcc }],
    }),
  ];
}
