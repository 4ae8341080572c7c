// What the report says, in order: each section's heading and the function
// that writes it, from one context (report.ts: the inputs and the rows derived
// from them). The sections live in sections/, one file per family. Every
// number of ours names its source stage, whose provenance closes the report.
// A run repeated over seeds is shown as mean ± SD with n and a t-based 95%
// interval; n = 1 as the one value, without an interval. A run not among the
// inputs (not run yet) is said so wherever its results would be.
import type { Figure } from "./charts.ts";
import { type Block, slug } from "./document.ts";
import type { ReportInputs } from "./inputs.ts";
import { Report } from "./report.ts";
import { batchnormSection } from "./sections/batchnorm.ts";
import { claimsSection } from "./sections/claims.ts";
import { classSection } from "./sections/classes.ts";
import { cnnSection } from "./sections/cnn.ts";
import { costSection } from "./sections/costs.ts";
import { environmentSection } from "./sections/environment.ts";
import { evalModeSection } from "./sections/eval_mode.ts";
import { numpyMlpSection } from "./sections/numpy_mlp.ts";
import { provenanceSection } from "./sections/provenance.ts";
import { quirksSection } from "./sections/quirks.ts";
import { searchSection } from "./sections/search.ts";
import { opening, summarySection } from "./sections/summary.ts";
import { rowDifferences, table1Figures, table1Section } from "./sections/table1.ts";

export interface Built {
  blocks: Block[];
  figures: Figure[];
  metrics: Record<string, number | string>;
}

/** A section heading (`id`: the anchor other sections link to). */
const h2 = (text: string, id?: string): Block => ({ kind: "heading", level: 2, text, id });

export function buildReport(inp: ReportInputs): Built {
  const r = new Report(inp);
  const body: Block[] = [
    h2("Claims", "claims"),
    ...claimsSection(r),
    h2("Environment", "environment"),
    ...environmentSection(r),
    h2("Summary", "summary"),
    ...summarySection(r),
    h2("1. MLP with hand-written backpropagation"),
    ...numpyMlpSection(r),
    h2("2. MLP with automatic differentiation: Table 1"),
    ...table1Section(r),
    ...rowDifferences(r),
    ...evalModeSection(r),
    ...table1Figures(r),
    h2("3. Custom batch normalisation"),
    ...batchnormSection(r),
    h2("4. Convolutional network"),
    ...cnnSection(r),
    h2("5. Per-class results"),
    ...classSection(r),
    h2("6. Evolutionary hyper-parameter search"),
    ...searchSection(r),
    h2("7. What each run cost"),
    ...costSection(r),
    h2("8. Where we differ from the study's code"),
    ...quirksSection(r),
    h2("Provenance", "provenance"),
    ...provenanceSection(r),
  ];
  // A table of contents: every section, linked.
  const contents = body.flatMap((b) =>
    b.kind === "heading" && b.level === 2 ? [`[${b.text}](#${b.id ?? slug(b.text)})`] : []
  );
  const blocks: Block[] = [
    ...opening(r),
    h2("Contents", "contents"),
    { kind: "list", items: contents },
    ...body,
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
