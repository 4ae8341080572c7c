// The report's first section: each claim of the study quoted (study.ts
// CLAIMS), our evidence over seeds, and a verdict by the one rule of
// claims.ts, stated in the method paragraph. Claims that depend on how the
// test set is scored (dropout rows) are judged twice: in inference mode (our
// Table 1) and in training mode (the study's code; the eval-mode stages).
import { complete, direction, equivalent, noGain, notRun, type Part, threshold, verdictOf } from "../claims.ts";
import type { Block } from "../document.ts";
import { spread } from "../format.ts";
import type { Run } from "../inputs.ts";
import { asEvalModes, type Report, sampleOf } from "../report.ts";
import { compare, estimate, type Sample } from "../stats.ts";
import { CLAIM_THRESHOLDS, CLAIMS, EQUIVALENCE_MARGIN, TABLE1 } from "../study.ts";

export type Scoring = "inference" | "training";

/** The samples the claims read: a row's test or train accuracy over its seeds, in either scoring. */
export class ClaimData {
  constructor(readonly r: Report) {}

  label = (variant: string) => TABLE1.find((x) => x.variant === variant)?.label ?? variant;

  runs = (variant: string): Run[] | undefined => this.r.variant(variant)?.s.runs;

  train = (variant: string): Sample | undefined => {
    const runs = this.runs(variant);
    return runs && sampleOf(runs, (x) => x.history.final.trainAcc);
  };

  /** Test accuracy; in training mode a dropout row's is its eval-mode stage's mean over mask draws, per seed. */
  test = (variant: string, scoring: Scoring): Sample | undefined => {
    const row = TABLE1.find((x) => x.variant === variant);
    if (scoring === "training" && row?.dropout) {
      const ev = this.r.evalModes.find((e) => e.row.variant === variant);
      const runs = ev ? this.r.evalRuns(ev.stage) : [];
      return runs.length ? sampleOf(runs, (x) => asEvalModes(x.history)!.training.testAccMean) : undefined;
    }
    const runs = this.runs(variant);
    return runs && sampleOf(runs, (x) => x.history.final.testAcc);
  };
}

const SCORING_WORDS: Record<Scoring, string> = {
  inference: "test scored in inference mode (ours)",
  training: "test scored in training mode (the study's code)",
};

/** The parts of each claim (a scored claim: once per scoring). */
export function claimParts(d: ClaimData): { n: number; text: string; scoring?: Scoring; parts: Part[] }[] {
  const m = EQUIVALENCE_MARGIN;
  const est = (s: Sample) => estimate(s.map((x) => x.value));
  const diff = (a: string, b: string, sa?: Sample, sb?: Sample, f?: (c: ReturnType<typeof compare>) => Part) =>
    !sa ? notRun(d.label(a)) : !sb ? notRun(d.label(b)) : f!(compare(sa, sb));
  const out: { n: number; text: string; scoring?: Scoring; parts: Part[] }[] = [];
  for (const claim of CLAIMS) {
    const scorings: (Scoring | undefined)[] = claim.scored ? ["inference", "training"] : [undefined];
    for (const scoring of scorings) {
      const sc = scoring ?? "inference";
      const test = (v: string) => d.test(v, sc);
      const label = (a: string, b: string, what = "test") => `${what}: ${d.label(a)} − ${d.label(b)}`;
      let parts: Part[] = [];
      switch (claim.n) {
        case 1: {
          const s = test("default");
          parts = [
            s ? threshold("Default, test", est(s), CLAIM_THRESHOLDS.defaultBelow, "below") : notRun(d.label("default")),
          ];
          break;
        }
        case 2:
          parts = ["ga1", "ga2", "ga3"].map((v) => {
            const s = d.train(v);
            return s ? complete(`${d.label(v)}, train`, est(s)) : notRun(d.label(v));
          });
          break;
        case 3:
          parts = [diff("ga1", "ga3", test("ga1"), test("ga3"), (c) => equivalent(label("ga1", "ga3"), c, m))];
          break;
        case 4:
          parts = [
            diff(
              "ga1-dropout",
              "ga1",
              d.train("ga1-dropout"),
              d.train("ga1"),
              (c) => direction(label("ga1-dropout", "ga1", "train"), c, -1),
            ),
            diff(
              "ga1-dropout",
              "ga1",
              test("ga1-dropout"),
              test("ga1"),
              (c) => direction(label("ga1-dropout", "ga1"), c, -1),
            ),
          ];
          break;
        case 5:
          parts = [
            diff(
              "ga1-dropout-batchnorm",
              "ga1-dropout",
              test("ga1-dropout-batchnorm"),
              test("ga1-dropout"),
              (c) => noGain(label("ga1-dropout-batchnorm", "ga1-dropout"), c, m),
            ),
          ];
          break;
        case 6:
          parts = TABLE1.filter((x) => x.variant !== "ga1").map((x) =>
            diff("ga1", x.variant, test("ga1"), test(x.variant), (c) => direction(label("ga1", x.variant), c, 1))
          );
          break;
        case 7: {
          const s = d.r.cnn && sampleOf(d.r.cnn.runs, (x) => x.history.final.testAcc);
          parts = [
            s ? threshold("CNN, test", est(s), CLAIM_THRESHOLDS.cnnAbout - m, "above") : notRun("CNN"),
          ];
          break;
        }
      }
      out.push({ n: claim.n, text: claim.text, scoring, parts });
    }
  }
  return out;
}

/** The claims table and the rule its verdicts follow. */
export function claimsSection(r: Report): Block[] {
  const rows = claimParts(new ClaimData(r));
  const m = spread(EQUIVALENCE_MARGIN);
  return [
    {
      kind: "para",
      text: "Each claim the study makes (its section 2 and Table 1), in its words, with our evidence and a " +
        "verdict. Each claim is split into parts, each part judged from our runs over seeds by **one rule**:",
    },
    {
      kind: "list",
      items: [
        "*A difference between two rows* (claims 4–6): its 95% interval, paired seed by seed where both rows ran " +
        "the same seeds, Welch's otherwise. A claimed direction *holds* when the interval excludes 0 on that " +
        "side and *does not hold* when it excludes 0 on the other.",
        "*A threshold on one row* (claims 1 and 7): holds when the 95% interval of its mean lies wholly on the " +
        `claimed side, does not hold when it lies wholly on the other. "About 75%" (claim 7) means at least ` +
        `75% − ${m} points.`,
        `*"Similar"* (claim 3): equivalent within a margin of ±${m} points by two one-sided 5% tests: holds when ` +
        `the 90% interval of the difference lies inside ±${m}, does not hold when the 95% interval lies outside it.`,
        `*"Does not improve"* (claim 5): holds when the 95% interval of the gain lies below +${m} points, does not ` +
        "hold when it lies above 0.",
        `*"Fit completely"* (claim 2): every seed at 100% on its last training batch (the study's train ` +
        "accuracy); does not hold when the 95% interval of the mean lies below 100%.",
        "*The claim*: holds when all its parts hold, does not hold when a part resting on two or more seeds does " +
        "not, and is otherwise *inconclusive at n = k* (k the fewest seeds of its rows). A part resting on one " +
        "seed has no interval: the claim is then *inconclusive: one seed*, never a verdict.",
        "*Scoring*: claims 4–6 depend on how the test set is scored, so each is judged twice: (a) in inference " +
        "mode, our Table 1; (b) in training mode (dropout on), as the study's code scored it — the eval-mode " +
        "stages' scores of the same weights, the mean over mask draws for each seed. Train accuracy is the last " +
        "training batch's either way.",
      ],
    },
    {
      kind: "table",
      head: ["#", "the study's claim", "our evidence (test accuracy unless said; differences in points)", "verdict"],
      rows: rows.map((x) => [
        x.scoring ? `${x.n} (${x.scoring === "inference" ? "a" : "b"})` : String(x.n),
        x.scoring === "training"
          ? `(as above) — ${SCORING_WORDS.training}`
          : x.scoring
          ? `${x.text} — ${SCORING_WORDS.inference}`
          : x.text,
        x.parts.map((p) => p.evidence).join("; "),
        `**${verdictOf(x.parts).text}**`,
      ]),
    },
  ];
}
