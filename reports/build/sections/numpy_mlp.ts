// Section 1: the MLP with every forward and backward written by hand
// (train-numpy-mlp): its settings, compute path, final test accuracy over its
// seeds against the assignment's number, and the study's figures 1–2.
import type { Block } from "../document.ts";
import { interval, meanSd, pct, settings } from "../format.ts";
import { notRunYet } from "../inputs.ts";
import { nOf, type Report, studyCurve, verdict } from "../report.ts";
import { EXPECTED, STUDY_CURVES } from "../study.ts";
import { costOf } from "./costs.ts";

/** Section 1: the MLP with hand-written backpropagation, its final accuracy over seeds and its two figures. */
export function numpyMlpSection(r: Report): Block[] {
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
    ...r.pair("numpy-mlp", "Hand-written MLP", s.runs, {
      curve: studyCurve("study", STUDY_CURVES.numpy),
      marks: [{ label: `assignment's test ${pct(EXPECTED.numpyMlpTestAcc)}`, value: EXPECTED.numpyMlpTestAcc }],
    }),
  ];
}
