// Section 5, per-class results of the CNN and the best MLP: test accuracy
// per class and the confusion matrix, from the test predictions a training run
// writes (predictions.npy) and the test labels (preprocess's test_y.npy). Runs
// made before predictions were written have none: the section says so.
import { confusionSpec, type Figure } from "../charts.ts";
import type { Block } from "../document.ts";
import { pct, src } from "../format.ts";
import type { Run } from "../inputs.ts";
import type { Report } from "../report.ts";
import { CLASSES } from "../study.ts";

/** counts[t][p]: test images of true class t predicted as p. */
export function confusion(labels: Uint8Array, predictions: Uint8Array, classes = CLASSES.length): number[][] {
  if (labels.length !== predictions.length) {
    throw new Error(`${predictions.length} predictions for ${labels.length} test labels`);
  }
  const m = Array.from({ length: classes }, () => new Array(classes).fill(0));
  for (let i = 0; i < labels.length; i++) m[labels[i]][predictions[i]]++;
  return m;
}

/** Accuracy of each true class: the diagonal over the row. */
export const perClass = (m: number[][]) => m.map((row, t) => row[t] / Math.max(1, row.reduce((a, b) => a + b, 0)));

/** Section 5: the CNN and the best MLP (seed 42 of each), or why not. */
export function classSection(r: Report): Block[] {
  const runs = [
    { label: "CNN", slug: "cnn", run: r.cnn?.base },
    ...(r.best ? [{ label: `best MLP (${r.best.row.label})`, slug: "best-mlp", run: r.best.s.base }] : []),
  ];
  const b = classBlocks(runs, r.inp.testLabels?.labels, r.figure);
  return b.length ? b : [{ kind: "para", text: `Neither the CNN nor the best MLP has run yet.` }];
}

/** The section's blocks for the named runs (label → run); `figure` registers a figure. */
function classBlocks(
  runs: { label: string; slug: string; run?: Run }[],
  labels: Uint8Array | undefined,
  figure: (id: string, caption: string, spec: Figure["spec"]) => Block,
): Block[] {
  const out: Block[] = [];
  const have = runs.filter((r) => r.run?.predictions);
  const without = runs.filter((r) => r.run && !r.run.predictions);
  if (without.length) {
    out.push({
      kind: "para",
      text: `No per-class results for ${without.map((r) => `the ${r.label} (${src(r.run!)})`).join(" or ")}: ` +
        `${without.length > 1 ? "these runs were" : "the run was"} made before the training stages wrote their ` +
        "test predictions; rerunning writes them.",
    });
  }
  if (have.length && !labels) {
    out.push({ kind: "para", text: "No per-class results: the test labels (`preprocess`) are not among the inputs." });
    return out;
  }
  if (!have.length) return out;
  const matrices = have.map((r) => ({ ...r, m: confusion(labels!, r.run!.predictions!) }));
  out.push({
    kind: "para",
    text: `Test accuracy per class (${matrices.map((r) => `${r.label}: ${src(r.run!)}`).join(", ")}; the ` +
      "seed-42 run of each, from its test predictions):",
  });
  const accs = matrices.map((r) => perClass(r.m));
  out.push({
    kind: "table",
    head: ["class", ...matrices.map((r) => r.label)],
    right: matrices.map((_, i) => i + 1),
    rows: CLASSES.map((c, k) => [c, ...accs.map((a) => pct(a[k]))]),
  });
  // Each confusion matrix once: as a heat map that writes every count in its cell.
  for (const r of matrices) {
    const cells = r.m.flatMap((row, t) => {
      const total = Math.max(1, row.reduce((a, b) => a + b, 0));
      return row.map((count, p) => ({ true: CLASSES[t], predicted: CLASSES[p], count, share: count / total }));
    });
    out.push(
      figure(
        `confusion-${r.slug}`,
        `${r.label}: confusion matrix on the test set — rows the true class, columns the predicted one, each ` +
          "cell the number of test images, its colour their share of the row (not in the study)",
        confusionSpec(`${r.label}: confusion matrix (test set)`, CLASSES, cells),
      ),
    );
  }
  return out;
}
