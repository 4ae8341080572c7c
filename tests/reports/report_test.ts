// The report stage on small fabricated histories: every section, Table 1 with
// all six rows, valid Vega-Lite specs, an SVG and a PNG per figure, index.html;
// a partial report when some runs have not run yet; broken inputs (or none) are
// one clear PipelineError.
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeTestContext } from "../support/stage_context.ts";
import { PipelineError } from "../../pipeline/types.ts";
import { inlineHtml } from "../../reports/build/document.ts";
import { pairWithTwin, type Run } from "../../reports/build/inputs.ts";
import { seeded, verdict } from "../../reports/build/report.ts";
import { run } from "../../reports/build/stage.ts";
import { compare, difference, estimate, t95 } from "../../reports/build/stats.ts";
import { complete, direction, equivalent, noGain, notRun, threshold, verdictOf } from "../../reports/build/claims.ts";
import { TABLE1 } from "../../reports/build/study.ts";
import { Graph } from "../../pipeline/engine/graph.ts";
import { STAGES } from "../../pipeline/stages.ts";
import { confusion, perClass } from "../../reports/build/sections/classes.ts";
import { pct, signed } from "../../reports/build/format.ts";
import { fabricateInputs, LABELS, PREDICTIONS } from "../support/report_fixture.ts";

async function build(opts: Parameters<typeof fabricateInputs>[1] = {}) {
  const base = await Deno.makeTempDir({ prefix: "report-inputs-" });
  const inputs = await fabricateInputs(base, opts);
  // As `reproduce --partial` would: the declared upstream nodes not among the inputs are named.
  const declared = new Graph(STAGES).nodes.get("report")!.deps;
  const notRun = declared.filter((d) => !inputs[d]);
  const ctx = { ...await makeTestContext({ stage: "report", params: {}, inputs, quiet: true }), notRun };
  return {
    ctx,
    async cleanup() {
      await ctx.cleanup();
      await Deno.remove(base, { recursive: true });
    },
  };
}

/** The figures of the full fixture, numbered in the order they appear. */
const FIGURES = [
  "fig1-numpy-mlp-accuracy",
  "fig2-numpy-mlp-loss",
  "fig3-torch-mlp-default-accuracy",
  "fig4-torch-mlp-default-loss",
  "fig5-torch-mlp-best-accuracy",
  "fig6-torch-mlp-best-loss",
  "fig7-table1",
  "fig8-batchnorm-accuracy",
  "fig9-cnn-accuracy",
  "fig10-cnn-loss",
  "fig11-confusion-cnn",
];

/** Every inline data set of a spec, its layers' included. */
// deno-lint-ignore no-explicit-any
const dataOf = (spec: any): unknown[][] =>
  [spec.data?.values, ...(spec.layer ?? []).flatMap(dataOf)].filter((v) => Array.isArray(v));

/** The body rows of the first Markdown table in `text`. */
function firstTable(text: string): string[] {
  const lines = text.split("\n");
  const start = lines.findIndex((l) => l.startsWith("| "));
  const end = lines.findIndex((l, i) => i > start && !l.startsWith("|"));
  return lines.slice(start + 2, end < 0 ? undefined : end);
}

Deno.test("report: every section, Table 1, figures as .vl.json + SVG + PNG, index.html", async () => {
  const { ctx, cleanup } = await build({ provenance: true, seeds: true, predictions: true });
  try {
    const metrics = await run(ctx);
    assert.equal(metrics.figures, FIGURES.length);
    assert.equal(metrics.best_variant, "ga3"); // the fixture's highest final test accuracy
    const md = await Deno.readTextFile(join(ctx.outDir, "REPORT.md"));
    for (
      const h of [
        "## Environment",
        "## Summary",
        "## 1. MLP with hand-written backpropagation",
        "## 2. MLP with automatic differentiation: Table 1",
        "## 3. Custom batch normalisation",
        "## 4. Convolutional network",
        "## 5. Per-class results",
        "## 6. Evolutionary hyper-parameter search",
        "## 7. What each run cost",
        "## 8. Where we differ from the study's code",
        "## Provenance",
      ]
    ) assert.ok(md.includes(h), `REPORT.md lacks ${h}`);

    // Table 1: one row per study row, the study's numbers, ours, and the difference in points.
    const table1 = firstTable(md.split("## 2.")[1]);
    assert.equal(table1.length, 6);
    for (const [i, row] of TABLE1.entries()) {
      const cells = table1[i].split(" | ");
      assert.match(cells[0], new RegExp(`^\\| \\[?${row.label.replaceAll("+", "\\+")}(\\]|$)`));
      assert.equal(cells[7], `${(row.testAcc * 100).toFixed(1)}%`);
    }
    // Default over 3 of its 5 seeds: 0.40, 0.42, 0.44 → 42.0% ± 2.0, t(2) interval 37.0–47.0% holding 44.4%.
    assert.match(
      table1[0],
      /^\| \[Default\]\(#prov-train-torch-mlp-default\) \|.*\| 44\.4% \| 42\.0% ± 2\.0 \| 3 of 5 \| 37\.0–47\.0% \| \*\*settings differ\*\*: not comparable \|$/,
    );
    // One seed: the value, no interval.
    assert.match(table1[1], /\| 53\.7% \| 43\.0% \| 1( of \d)? \| none \(n = 1\) \| \*\*settings differ\*\*/);
    assert.match(md, /\| autograd MLP, Default \| 44\.4% \| 42\.0% ± 2\.0 \| 3 of 5 \| 37\.0–47\.0% \| −2\.4 \|/);
    // Differences between rows: with one seed on a side, no interval.
    assert.match(
      md,
      /\| GA1 − Default \(GA1's network and schedule\) \| \+9\.3 \| \+1\.0 \| 1 and 3 \| none \| no interval: one seed of GA1 \|/,
    );
    // The environment, once; the runs without a record say so.
    assert.match(md, /\| Test CPU 9000 \| 2 \| x86-64 AVX2 \| Linux 6\.1 \| 2\.9\.6 \| 1: `train-torch-mlp@ga1` \|/);
    assert.match(
      md,
      /\| not recorded \| – \| – \| – \| 2\.9\.6 \| 12: `train-numpy-mlp`, `train-torch-mlp@default` \(seeds 42, 1, 2\), /,
    );
    assert.match(md, /The 13 training runs this report reads/);
    assert.match(md, /recorded the git commit they started from: one commit\./);
    assert.match(md, /- git commit `abc1234`\n/); // in GA1's provenance
    // Per class, from the CNN's fabricated predictions: every class right but cat (both called dog).
    assert.match(md, /\| cat \| 0\.0% \|\n\| deer \| 100\.0% \|/);
    assert.doesNotMatch(md, /true \\ predicted/); // the confusion matrix once, as its figure
    assert.match(md, /No per-class results for the best MLP \(GA3\) \(.*\): the run was made before/);
    // No internal names in prose.
    assert.doesNotMatch(md, /curveMaxAbsDifference|evalImagesPerSecond|steps_used|stopped_by_budget|val_acc/);

    // Batch norm: the checks table rendered generically, both backward curves.
    assert.match(md, /\| check \| shape \| max_rel_err \| tol \| pass \|/);
    assert.match(md, /manual dx vs finite differences \| 8×5 \| 3\.20e-9 \| 1\.00e-5 \| ✓/);
    assert.match(md, /custom batch norm, hand-written backward \(GA1 \+ dropout \+ batchnorm\) \| 51\.6% \| 49\.1% \|/);
    assert.match(md, /compared with its autograd twin `train-torch-mlp@ga1-dropout-batchnorm`/);
    assert.match(md, /test accuracy 0\.1 pts\./); // the largest difference between the two curves
    // Its cost row is its own run's; the twin's cost is in the twin's row.
    assert.match(
      md,
      /\| \[`train-batchnorm`\]\(#prov-train-batchnorm\) \| A \| 50 \| 200 \| 2\.0 s \| 1 \| 25\.0 \| 5000 \| – \| 2\.5 s \|/,
    );
    // Cost, quirks, the smoke-like settings flagged, notes, provenance verified, no search.
    assert.match(
      md,
      /\| \[`train-cnn`\]\(#prov-train-cnn\) \| A \| 50 \| 32 \| 1\.5 s \| 1 \| 33\.3 \| 1066 \| – \| 2\.5 s \|/,
    );
    // A resumed run: training time summed over its 3 processes (the record), beside its last process's stage time.
    assert.match(
      md,
      /\| \[`train-torch-mlp@ga1`\]\(#prov-train-torch-mlp-ga1\) \| B \| 50 \| 200 \| 1 h 10 min \| 3 \| 20\.0 \| 4000 \| 900 \| 2\.5 s \|/,
    );
    // An old run without a record: its resumption read from its notes.
    assert.match(
      md,
      /\| \[`train-torch-mlp@ga1-dropout`\]\(#prov-train-torch-mlp-ga1-dropout\) \| A \| 50 \| 200 \| 1\.5 s \| 2 \|/,
    );
    // Each compute path once, named by letter in the rows; the eval-mode stages train nothing.
    assert.match(
      md,
      /- compute path \*\*A\*\*: wasm \(test\)\n- compute path \*\*B\*\*: wasm \(test\) \+ BLAS \(test\), 1 thread\n/,
    );
    assert.match(
      md,
      /\| \[`dropout-eval-mode`\]\(#prov-dropout-eval-mode\) \| A \| no training \| – \| – \| 1 \| – \| – \| – \| 2\.5 s \|/,
    );
    // The seed runs in one row, summed.
    assert.match(
      md,
      /\| 2 more seeds \(\[\+s1\]\(#prov-train-torch-mlp-default-s1\), .*: sums \| A \| 100 \| 200 \| 3\.0 s \| 2 \|/,
    );
    assert.match(md, /ReLU derivative at 0/);
    assert.match(md, /did not use the study's settings/);
    assert.match(md, /fabricated for the report tests \(cnn\)/);
    assert.match(md, /matches the engine's record/);
    assert.doesNotMatch(md, /differs from the engine's record|provenance unavailable/);
    assert.match(md, /Skipped: the search/);
    // The dropout rows scored both ways (the eval-mode stages): inference = the Table 1 run's, training mode lower.
    assert.match(
      md,
      /\| run \| test acc, study \| ours, inference mode \| ours, training mode \| seeds \|/,
    );
    assert.match(
      md,
      /\| GA1 \+ dropout \| 49\.7% \| 46\.0% \| \*\*30\.0%\*\* ± 0\.4 \(SD over 3 draws of the masks\) \| 1 \| \[`dropout-eval-mode`\]\(#prov-dropout-eval-mode\) \|/,
    );
    assert.match(
      md,
      /\| GA1 \+ dropout \+ batchnorm \| 51\.6% \| 49\.0% \| \*\*32\.0%\*\* ± 0\.4 \(SD over 3 draws of the masks\) \| 1 \|/,
    );
    assert.match(
      md,
      /GA1 \+ dropout, test scored in training mode \(dropout on\) \| 49\.7% \| 30\.0% ± 0\.4 \(SD over 3 draws of the dropout masks\) \| 1 \| none \(n = 1\) \| −19\.7 \|/,
    );
    assert.match(
      md,
      /batchnorm, test scored in training mode \(dropout on, batch statistics\) \| 51\.6% \| 32\.0% ± 0\.4 /,
    );
    assert.match(md, /\| `train-search-pick` \| not run yet — `deno task reproduce train-search-pick` \|/);

    for (const id of FIGURES) {
      assert.ok(md.includes(`](figures/${id}.svg)`), `REPORT.md does not show ${id}`);
      const spec = JSON.parse(await Deno.readTextFile(join(ctx.outDir, "figures", `${id}.vl.json`)));
      assert.match(spec.$schema, /vega-lite\/v6/);
      assert.ok(dataOf(spec).some((v) => v.length > 0), `${id} has no inline data`);
      const svg = await Deno.readTextFile(join(ctx.outDir, "figures", `${id}.svg`));
      assert.match(svg, /^<svg[^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
      assert.match(svg, /class="mark-(line|rect)/);
      const png = await Deno.readFile(join(ctx.outDir, "figures", `${id}.png`));
      assert.deepEqual([...png.subarray(0, 8)], [137, 80, 78, 71, 13, 10, 26, 10]);
      assert.ok(png.length > 5000);
    }

    // The study inside the figures: its curve read from its figures, its final numbers as marks; loss on a log axis.
    const fig = async (id: string) => JSON.parse(await Deno.readTextFile(join(ctx.outDir, "figures", `${id}.vl.json`)));
    const numpy = dataOf(await fig("fig1-numpy-mlp-accuracy")) as Record<string, unknown>[][];
    const studyCurve = numpy.find((v) => v.some((p) => /read from its figure/.test(String(p.split))))!;
    assert.equal(studyCurve.length, 15);
    assert.deepEqual(studyCurve[1], { run: "study", split: studyCurve[1].split, step: 100, value: 0.405 });
    assert.ok(numpy.some((v) => v.some((p) => p.value === 0.46 && /assignment/.test(String(p.label)))));
    const def = dataOf(await fig("fig3-torch-mlp-default-accuracy")) as Record<string, unknown>[][];
    for (const [label, value] of [["study's test 44.4%", 0.444], ["study's train 42.5%", 0.425]] as const) {
      assert.ok(def.some((v) => v.some((p) => p.label === label && p.value === value)), label);
    }
    assert.ok(dataOf(await fig("fig9-cnn-accuracy")).some((v) => v.length === 11)); // the study's CNN curve
    // Loss on a linear axis fitted to the data; the Default row (3 seeds): the mean with a min–max band.
    const defLoss = await fig("fig4-torch-mlp-default-loss");
    // deno-lint-ignore no-explicit-any
    const band = defLoss.layer.find((l: any) => l.mark.type === "area");
    assert.equal(band.encoding.y.scale.zero, false);
    assert.equal(band.encoding.y2.field, "hi");
    const first = band.data.values.find((v: { split: string; step: number }) =>
      v.split === "test set" && v.step === 50
    );
    // Final test loss of the 3 seeds: 2.3 − 1 each (the fixture's loss does not depend on the seed).
    assert.ok(Math.abs(first.lo - 1.3) < 1e-9 && Math.abs(first.hi - 1.3) < 1e-9);
    const accBand = (await fig("fig3-torch-mlp-default-accuracy")).layer[0].data.values;
    const last = accBand.find((v: { split: string; step: number }) => v.split === "test set" && v.step === 50);
    assert.ok(Math.abs(last.lo - 0.4) < 1e-9 && Math.abs(last.hi - 0.44) < 1e-9); // seeds 42, 1, 2: 0.40–0.44
    assert.match(
      md,
      /Figure 3: Autograd MLP, default: accuracy .*mean over 3 seeds \(seeds 42, 1, 2\), the shaded band/,
    );
    // Table 1's chart: our Default bar carries its t-interval (3 seeds), GA1's (1 seed) none.
    const bars = dataOf(await fig("fig7-table1"))[0] as Record<string, number | string>[];
    const ours = (run: string) => bars.find((x) => x.run === run && x.source === "ours")!;
    const half = 4.303 * 0.02 / Math.sqrt(3);
    assert.ok(Math.abs((ours("Default").lo as number) - (0.42 - half)) < 1e-9);
    assert.equal(ours("GA1").lo, undefined);
    const heat = await fig("fig11-confusion-cnn");
    assert.equal(dataOf(heat)[0].length, 100);
    const cells = dataOf(heat)[0] as { true: string; predicted: string; count: number }[];
    assert.equal(cells.find((c) => c.true === "cat" && c.predicted === "dog")!.count, 2);
    assert.equal(cells.find((c) => c.true === "cat" && c.predicted === "cat")!.count, 0);

    const html = await Deno.readTextFile(join(ctx.outDir, "index.html"));
    assert.equal(html.match(/<div class="chart"/g)?.length, FIGURES.length);
    assert.match(html, /<script data-lib="vega@6\.4\.0">/);
    assert.match(html, /<script data-lib="vega-embed@7\.3\.0">/);
    assert.doesNotMatch(html, /<script[^>]+src=|https:\/\/cdn|unpkg\.com|jsdelivr\.net/);
  } finally {
    await cleanup();
  }
});

Deno.test("report: the search's pick over seeds: its mean ± sd and interval against the study's GA1, in section 6 and the summary", async () => {
  const { ctx, cleanup } = await build({ search: true, rowSeeds: true });
  try {
    await run(ctx);
    const md = await Deno.readTextFile(join(ctx.outDir, "REPORT.md"));
    assert.match(
      md,
      /trained for its full steps .*scores \*\*55\.0% ± 1\.0\*\* on the test set \(mean ± sd over 3 of 5 seeds, 42, 1, 2; 95% interval 52\.5–57\.5%; against the study's GA1: reproduced: the study's value lies inside our interval \(\+1\.3 pts\)\), beside our GA1 /,
    );
    assert.match(
      md,
      /search's pick, trained for its full steps .* \| 53\.7% \| 55\.0% ± 1\.0 \| 3 of 5 \| 52\.5–57\.5% \| \+1\.3 \|/,
    );
  } finally {
    await cleanup();
  }
});

Deno.test("report: the search section when search-mlp is an input; provenance unavailable without the engine", async () => {
  const { ctx, cleanup } = await build({ search: true });
  try {
    const metrics = await run(ctx);
    assert.equal(metrics.figures, FIGURES.length); // no predictions (no confusion matrix), the search's fig11
    const md = await Deno.readTextFile(join(ctx.outDir, "REPORT.md"));
    assert.ok(md.includes("](figures/fig11-search.svg)"));
    assert.match(
      md,
      /\| generation \| hidden \| lr \| batch \| steps \| validation acc \| validation loss \| train acc \|/,
    );
    assert.match(md, /\| 3 \| 1000,500 \| 2\.00e-4 \| 201 \| 18 \| 46\.0% \|/);
    assert.match(md, /\| 1000,500 \| 2\.00e-4 \| 201 \| 18 \| 46\.0% \| 1\.7 \| 55\.0% \| 47\.0% \| 1\.6 \|/); // the pick
    // Like with like: only the pick trained for its full steps is set beside the study's GA1.
    assert.doesNotMatch(md, /\| 53\.7% \| 47\.0% \|/);
    assert.match(md, /It trained 99 steps in all\./);
    assert.match(md, /trained for its full steps .*scores \*\*55\.0%\*\* on the test set, beside our GA1 43\.0%, GA2 /);
    assert.match(
      md,
      /search's pick, trained for its full steps .* \| 53\.7% \| 55\.0% \| 1 \| none \(n = 1\) \| \+1\.3 \|/,
    );
    // The search figure: best so far (a running maximum) and each generation's size.
    const spec = JSON.parse(await Deno.readTextFile(join(ctx.outDir, "figures", "fig11-search.vl.json")));
    assert.deepEqual(spec.layer[0].transform[1].window, [{ op: "max", field: "gen_best", as: "best_so_far" }]);
    assert.equal(spec.layer[0].transform[0].aggregate[1].op, "count");
    assert.match(md, /provenance unavailable \(run through the engine\)/);
    await Deno.stat(join(ctx.outDir, "figures", "fig11-search.png"));

    // A search.json of another shape: its tables, generically, and a chart if it has generation + accuracy.
    await Deno.writeTextFile(
      join(ctx.inputs["search-mlp"], "search.json"),
      JSON.stringify({ population: [{ gen: 1, fitness: 0.3 }, { gen: 2, fitness: 0.4 }], best: { test_acc: 0.5 } }),
    );
    await Deno.remove(ctx.outDir, { recursive: true });
    await Deno.mkdir(ctx.outDir);
    await run(ctx);
    const generic = await Deno.readTextFile(join(ctx.outDir, "REPORT.md"));
    assert.match(generic, /\| gen \| fitness \|/);
    assert.match(generic, /- best \/ test_acc: 0\.5/);
    assert.ok(generic.includes("](figures/fig11-search.svg)"));
  } finally {
    await cleanup();
  }
});

Deno.test("report: a partial report from the runs finished so far (the others: not run yet)", async () => {
  const missing = ["train-torch-mlp@ga2", "train-torch-mlp@ga3", "train-batchnorm", "train-cnn"];
  const { ctx, cleanup } = await build({ omit: missing, search: true, provenance: true });
  try {
    const metrics = await run(ctx);
    // Numbered in order: the figures of the runs that have not run are left out, the search's follows.
    const kept = [...FIGURES.slice(0, 7), "fig8-search"];
    assert.equal(metrics.figures, kept.length);
    assert.equal(metrics.missing_runs, 4);
    assert.equal(metrics.best_variant, "ga1-dropout-batchnorm"); // ga3, the fixture's best, has not run
    assert.equal(metrics.cnn_test_acc, undefined);
    const md = await Deno.readTextFile(join(ctx.outDir, "REPORT.md"));
    assert.ok(
      md.includes(
        "> **Note.** Partial report: 4 of 13 stages are not finished yet (a stage: a Table 1 row or a model, its seeds " +
          "counted with it): `train-torch-mlp@ga2`, " +
          "`train-torch-mlp@ga3`, `train-batchnorm`, `train-cnn`.",
      ),
    );
    for (
      const h of ["## Summary", "## 1.", "## 2.", "## 3.", "## 4.", "## 5.", "## 6.", "## 7.", "## 8.", "## Provenance"]
    ) {
      assert.ok(md.includes(`\n${h}`), `REPORT.md lacks ${h}`);
    }

    // Table 1: all six rows; the two missing ones "—" beside the study's numbers, named below the table.
    const section2 = md.split("## 2.")[1].split("\n## ")[0];
    const table1 = firstTable(section2);
    assert.equal(table1.length, 6);
    for (const [i, row] of TABLE1.entries()) {
      const cells = table1[i].split(" | ");
      assert.match(cells[0], new RegExp(`^\\| \\[?${row.label.replaceAll("+", "\\+")}(\\]|$)`));
      assert.equal(cells[7], `${(row.testAcc * 100).toFixed(1)}%`);
      assert.equal(cells[8], ["ga2", "ga3"].includes(row.variant) ? "—" : `${(40 + 3 * i).toFixed(1)}%`);
    }
    assert.match(table1[4], /^\| GA2 \| .*\| 100\.0% \| — \| 50\.6% \| — \| — \| — \| — \|$/);
    assert.ok(
      section2.includes(
        "— not run yet: GA2 (`deno task reproduce train-torch-mlp@ga2`), GA3 (`deno task reproduce train-torch-mlp@ga3`).",
      ),
    );
    assert.match(section2, /best of our 4 finished rows by mean test accuracy, \*\*GA1 \+ dropout \+ batchnorm\*\*/);

    // In place of the missing runs: the marker in the summary, the sections, the cost table and the provenance.
    assert.match(
      md,
      /\| CNN \(small VGG\) \| 75\.0% \(assignment\) \| — \| — \| — \| — \| not run yet — `deno task reproduce train-cnn` \|/,
    );
    assert.match(
      md,
      /\| autograd MLP, GA3 \| 53\.5% \| — \| — \| — \| — \| not run yet — `deno task reproduce train-torch-mlp@ga3` \|/,
    );
    assert.match(md, /target for the best autograd MLP \(among the 4 finished\), ours GA1 \+ dropout \+ batchnorm/);
    assert.match(md, /eqs\. 46, 50 and 69: not run yet — `deno task reproduce train-batchnorm`\./);
    assert.match(md, /\(the study's figures 7–8\): not run yet — `deno task reproduce train-cnn`\./);
    assert.match(md, /\| `train-batchnorm` \| not run yet — `deno task reproduce train-batchnorm` \| — \|/);
    assert.match(
      md,
      /### <a id="prov-train-cnn"><\/a>`train-cnn`\n\n- not run yet — `deno task reproduce train-cnn`\n/,
    );
    assert.doesNotMatch(md, /checks\.json/);

    // The rest as in a full report.
    assert.match(
      md,
      /\| hand-written MLP, SGD \| 46\.0% \(assignment\) \| 45\.0% \| 1 of 5 \| none \(n = 1\) \| −1\.0 \|/,
    );
    assert.match(
      md,
      /\| \[`train-torch-mlp@ga1`\]\(#prov-train-torch-mlp-ga1\) \| B \| 50 \| 200 \|/,
    );
    assert.match(md, /matches the engine's record/);
    const files: string[] = [];
    for await (const e of Deno.readDir(join(ctx.outDir, "figures"))) files.push(e.name);
    assert.deepEqual(files.sort(), kept.flatMap((id) => [`${id}.png`, `${id}.svg`, `${id}.vl.json`]).sort());
    for (const id of kept) assert.ok(md.includes(`](figures/${id}.svg)`), `REPORT.md does not show ${id}`);
    const table1Chart = JSON.parse(await Deno.readTextFile(join(ctx.outDir, "figures", "fig7-table1.vl.json")));
    assert.equal(table1Chart.data.values.length, 6 + 4); // the study's six bars, ours for the four that ran

    const html = await Deno.readTextFile(join(ctx.outDir, "index.html"));
    assert.match(
      html,
      /<p class="note"><strong>Note\.<\/strong> Partial report: 4 of 13 stages are not finished yet/,
    );
    assert.equal(html.match(/<div class="chart"/g)?.length, kept.length);
  } finally {
    await cleanup();
  }
});

Deno.test("report: no training run at all, or an input given without its files, is a PipelineError", async () => {
  const training = [
    "train-numpy-mlp",
    "dropout-eval-mode",
    "batchnorm-eval-mode",
    "train-batchnorm",
    "train-cnn",
    "train-search-pick",
    ...TABLE1.map((r) => `train-torch-mlp@${r.variant}`),
  ];
  const none = await build({ omit: training, search: true });
  try {
    await assert.rejects(() => run(none.ctx), (e: unknown) => {
      assert.ok(e instanceof PipelineError);
      assert.match(e.message, /none of its training runs among its inputs \(search-mlp\)/);
      assert.match(e.fix, /deno task reproduce report/);
      return true;
    });
  } finally {
    await none.cleanup();
  }
  // Given but empty (the engine said it ran): not "not run yet" but a real error naming the stage and file.
  for (const [stage, file] of [["train-cnn", "history.json"], ["train-torch-mlp@ga2", "history.json"]]) {
    const { ctx, cleanup } = await build();
    try {
      await Deno.remove(join(ctx.inputs[stage], file));
      await assert.rejects(() => run(ctx), PipelineError, `${stage} did not provide ${file}`);
    } finally {
      await cleanup();
    }
  }
});

Deno.test("report: a broken history or missing checks.json is a PipelineError naming the file", async () => {
  const { ctx, cleanup } = await build();
  try {
    await Deno.writeTextFile(join(ctx.inputs["train-cnn"], "history.json"), JSON.stringify({ run: "cnn", evals: 3 }));
    await assert.rejects(() => run(ctx), PipelineError, "train-cnn/history.json: evals is missing");
    await Deno.writeTextFile(join(ctx.inputs["train-cnn"], "history.json"), "{ not json");
    await assert.rejects(() => run(ctx), PipelineError, "train-cnn/history.json is not valid JSON");
    await Deno.remove(join(ctx.inputs["train-batchnorm"], "checks.json"));
    await assert.rejects(() => run(ctx), PipelineError, "train-batchnorm did not provide checks.json");
  } finally {
    await cleanup();
  }
});

Deno.test("report: inline Markdown → HTML (links holding code, code spans kept literal)", () => {
  assert.equal(
    inlineHtml("see [`a@b`](#prov-a) and **c** `x*y*<z>` *d*"),
    'see <a href="#prov-a"><code>a@b</code></a> and <strong>c</strong> <code>x*y*&lt;z&gt;</code> <em>d</em>',
  );
});

Deno.test("report: the batch-norm curve is set beside its autograd twin only when their settings match", () => {
  const evals = [{ step: 1, trainLoss: 2, trainAcc: 0.1, testLoss: 2, testAcc: 0.1 }];
  const params = {
    hidden: [8],
    lr: 1e-3,
    batch: 10,
    steps: 1,
    eval_every: 1,
    seed: 42,
    dropout: true,
    batchnorm: true,
  };
  const runOf = (stage: string, p: Run["history"]["params"], acc = 0.1): Run => {
    const e = [{ ...evals[0], testAcc: acc }];
    const history = { run: stage, params: p, backend: "t", evals: e, final: e[0], wallSeconds: 1, stepsPerSecond: 1 };
    return {
      stage,
      history,
      curves: [{ label: stage, evals: e }],
      source: { stage, file: "history.json", sha256: "" },
    };
  };
  const twin = "train-torch-mlp@ga1-dropout-batchnorm";
  const bn = runOf("train-batchnorm", params, 0.12);
  Object.assign(bn.history, { twin });

  const paired = pairWithTwin(bn, [runOf(twin, params)]);
  assert.deepEqual(paired.curves.map((c) => c.label), ["autograd", "manual"]);
  assert.equal(paired.curves[0].from?.stage, twin);
  const diff = (paired.history as unknown as { curveMaxAbsDifference: Record<string, number> }).curveMaxAbsDifference;
  assert.ok(Math.abs(diff.testAcc - 0.02) < 1e-12);

  const alone = pairWithTwin(bn, []);
  assert.deepEqual(alone.curves.map((c) => c.label), ["manual"]);
  assert.match(alone.pairing!, /has not run yet/);

  const other = pairWithTwin(bn, [runOf(twin, { ...params, lr: 2e-3 })]);
  assert.deepEqual(other.curves.map((c) => c.label), ["manual"]);
  assert.match(other.pairing!, /settings differ \(lr 0\.001 vs 0\.002\)/);
});

Deno.test("report statistics: mean, SD and t-interval of 3 seeds; Welch difference; n = 1 has no interval", () => {
  const e = estimate([0.40, 0.42, 0.44]);
  assert.equal(e.n, 3);
  assert.ok(Math.abs(e.mean - 0.42) < 1e-12);
  assert.ok(Math.abs(e.sd! - 0.02) < 1e-12);
  const half = 4.303 * 0.02 / Math.sqrt(3); // t(0.975, 2) = 4.303
  assert.ok(Math.abs(e.lo! - (0.42 - half)) < 1e-12 && Math.abs(e.hi! - (0.42 + half)) < 1e-12);
  const one = estimate([0.5]);
  assert.deepEqual([one.sd, one.lo, one.hi], [undefined, undefined, undefined]);
  assert.deepEqual([t95(1), t95(4), t95(4.7), t95(100)], [12.706, 2.776, 2.776, 1.96]);
  // Two rows of 3 seeds each, 2 points apart with the same spread: Welch df = 4.
  const d = difference(estimate([0.42, 0.44, 0.46]), e);
  assert.ok(Math.abs(d.diff - 0.02) < 1e-12 && Math.abs(d.df! - 4) < 1e-9);
  const se = Math.sqrt(2 * 0.02 ** 2 / 3);
  assert.ok(Math.abs(d.hi! - (0.02 + 2.776 * se)) < 1e-12);
  assert.deepEqual(difference(one, e), { diff: 0.5 - 0.42 });
  // One rounding rule: halves away from zero, float noise removed.
  assert.deepEqual([pct(0.5505), pct(0.5835), pct(0.4375), signed(-0.0105), signed(0.0004)], [
    "55.1%",
    "58.4%",
    "43.8%",
    "−1.1",
    "±0.0",
  ]);
});

Deno.test("report per-class results from a fabricated predictions file", () => {
  const m = confusion(LABELS, PREDICTIONS);
  assert.equal(m[3][5], 2);
  assert.equal(m[3][3], 0);
  assert.equal(m.flat().reduce((a, b) => a + b, 0), 20);
  assert.deepEqual(perClass(m), [1, 1, 1, 0, 1, 1, 1, 1, 1, 1]);
  assert.throws(() => confusion(LABELS, PREDICTIONS.subarray(1)), /19 predictions for 20 test labels/);
});

Deno.test("report seeds: a seed run with other settings than its base is left out of the mean, and said so", () => {
  const runOf = (stage: string, params: Record<string, number>, acc: number): Run => {
    const e = [{ step: 1, trainLoss: 2, trainAcc: acc, testLoss: 2, testAcc: acc }];
    return {
      stage,
      history: { run: stage, params, backend: "t", evals: e, final: e[0], wallSeconds: 1, stepsPerSecond: 1 },
      curves: [{ label: stage, evals: e }],
      source: { stage, file: "history.json", sha256: "" },
    };
  };
  const base = runOf("train-cnn", { steps: 50, seed: 42 }, 0.7);
  const inp = {
    seeds: new Map([["train-cnn", [
      runOf("train-cnn+s1", { steps: 50, seed: 1 }, 0.72),
      runOf("train-cnn+s2", { steps: 10, seed: 2 }, 0.3),
    ]]]),
    declaredSeeds: new Map([["train-cnn", 5]]),
  } as unknown as Parameters<typeof seeded>[0];
  const s = seeded(inp, base);
  assert.deepEqual(s.runs.map((r) => r.stage), ["train-cnn", "train-cnn+s1"]);
  assert.deepEqual(s.excluded.map((x) => [x.run.stage, x.differ]), [["train-cnn+s2", ["steps 10 (study 50)"]]]);
  assert.equal(s.test.n, 2);
  assert.ok(Math.abs(s.test.mean - 0.71) < 1e-12);
  assert.equal(verdict(s.test, 0.75), "reproduced: the study's value lies inside our interval (−4.0 pts)");
  assert.equal(verdict(estimate([0.7]), 0.75), "−5.0 pts on one seed; its spread over seeds not measured");
});

Deno.test("claims: a threshold that holds, a direction that does not, an inconclusive one, one seed", () => {
  const e = (v: number[]) => estimate(v);
  // Default-like row, 42% ± 1 over 3 seeds: below 50% with its whole 95% interval.
  const below = threshold("Default, test", e([0.41, 0.42, 0.43]), 0.5, "below");
  assert.equal(below.outcome, "holds");
  assert.equal(verdictOf([below]).text, "holds");
  // a is clearly above b, the claim says below: does not hold.
  const s = (v: number[]) => v.map((value, k) => ({ seed: k + 1, value }));
  const up = direction("a − b", compare(s([0.55, 0.56, 0.57]), s([0.50, 0.51, 0.52])), -1);
  assert.equal(up.outcome, "does not hold");
  assert.equal(verdictOf([below, up]).text, "does not hold");
  // Noise on either side of 0: inconclusive at n = 3.
  const noisy = direction("a − b", compare(s([0.50, 0.53, 0.51]), s([0.52, 0.50, 0.52])), 1);
  assert.equal(noisy.outcome, "inconclusive");
  assert.equal(verdictOf([below, noisy]).text, "inconclusive at n = 3");
  // One seed: no interval, no verdict, even where the difference looks large.
  const one = direction("a − b", compare(s([0.6]), s([0.5])), 1);
  assert.equal(one.n, 1);
  assert.match(one.evidence, /one seed each/);
  assert.doesNotMatch(one.evidence, /95%/);
  assert.equal(verdictOf([below, one]).text, "inconclusive: one seed");
  assert.equal(verdictOf([notRun("GA1")]).text, "inconclusive: not run yet");
  // Every seed at 100% on its last batch: complete; one seed short of it: inconclusive.
  assert.equal(complete("GA1, train", e([1, 1, 1])).outcome, "holds");
  assert.equal(complete("GA1, train", e([1, 0.999, 1])).outcome, "inconclusive");
  // A seed short of 100% is named by its value.
  assert.equal(
    complete("GA2, train", e([1, 0.5027, 1])).evidence,
    "GA2, train 83.4%, 100% on 2 of 3 seeds (the other: 50.3%)",
  );
  assert.equal(complete("GA1, train", e([0.9, 0.91, 0.92])).outcome, "does not hold");
});

Deno.test("claims: equivalence by two one-sided tests (90% interval inside the margin)", () => {
  const s = (v: number[]) => v.map((value, k) => ({ seed: k + 1, value }));
  const m = 0.01;
  // Paired differences of +0.1, −0.1, +0.2, 0, +0.1 points: 90% interval well inside ±1.
  const close = compare(s([0.531, 0.529, 0.532, 0.53, 0.531]), s([0.53, 0.53, 0.53, 0.53, 0.53]));
  assert.equal(equivalent("GA1 − GA3", close, m).outcome, "holds");
  // 3 points apart, tightly: the 95% interval lies wholly outside ±1.
  const far = compare(s([0.56, 0.561, 0.559]), s([0.53, 0.53, 0.53]));
  assert.equal(equivalent("GA1 − GA3", far, m).outcome, "does not hold");
  // Seeds spread by 2 points: the 90% interval reaches past the margin, the 95% one covers 0: inconclusive.
  const wide = compare(s([0.51, 0.55, 0.53]), s([0.53, 0.53, 0.53]));
  const part = equivalent("GA1 − GA3", wide, m);
  assert.equal(part.outcome, "inconclusive");
  assert.match(part.evidence, /90% .*95% .*margin ±1\.0/);
  // "Does not improve": a real gain does not hold; a difference below +1 point with its 95% interval holds.
  assert.equal(noGain("bn − dropout", far, m).outcome, "does not hold");
  assert.equal(noGain("bn − dropout", compare(s([0.52, 0.521, 0.519]), s([0.53, 0.53, 0.53])), m).outcome, "holds");
});

Deno.test("claims: the paired interval (same seeds) against Welch's (different seeds)", () => {
  const a = [{ seed: 1, value: 0.5 }, { seed: 2, value: 0.52 }, { seed: 3, value: 0.54 }];
  const b = [{ seed: 1, value: 0.49 }, { seed: 2, value: 0.5 }, { seed: 3, value: 0.52 }];
  const p = compare(a, b);
  assert.equal(p.paired, true);
  // Differences 0.01, 0.02, 0.02: mean 0.016667, SD 0.005774, SE 0.003333, t(2) = 4.303.
  const half = 4.303 * 0.005773503 / Math.sqrt(3);
  assert.ok(Math.abs(p.diff - 0.0166667) < 1e-6);
  assert.ok(Math.abs(p.lo! - (p.diff - half)) < 1e-6 && Math.abs(p.hi! - (p.diff + half)) < 1e-6);
  assert.equal(p.df, 2);
  assert.ok(p.lo! > 0); // paired: the row's gain is real
  // The same values on other seeds: Welch's interval, far wider, covers 0.
  const w = compare(a, b.map((x) => ({ ...x, seed: x.seed + 10 })));
  assert.equal(w.paired, false);
  assert.ok(w.lo! < 0 && w.hi! > 0);
  assert.ok(Math.abs(w.diff - p.diff) < 1e-12);
});

Deno.test("report: the Claims section first, verdicts from fabricated seeds of every row", async () => {
  const { ctx, cleanup } = await build({ provenance: true, seeds: true, rowSeeds: true });
  try {
    await run(ctx);
    const md = await Deno.readTextFile(join(ctx.outDir, "REPORT.md"));
    const h2s = [...md.matchAll(/^## (?:<a id="[^"]+"><\/a>)?(.+)$/gm)].map((m) => m[1]);
    assert.equal(h2s[0], "Contents");
    assert.equal(h2s[1], "Claims");
    const rows = firstTable(md.slice(md.indexOf("## Claims")));
    assert.equal(rows.length, 10); // 7 claims, 4–6 twice (two scorings)
    const verdict = (n: string) => rows.find((r) => r.startsWith(`| ${n} |`))!.split(" | ").at(-1)!;
    // Default: 42% ± 2 over seeds 42, 1, 2 — below 50% with its whole interval.
    assert.match(verdict("1"), /\*\*holds\*\*/);
    // GA1 and GA3 are 12 points apart on every seed: not similar.
    assert.match(verdict("3"), /\*\*does not hold\*\*/);
    assert.match(rows.find((r) => r.startsWith("| 3 |"))!, /paired by seed, n = 3/);
    // Dropout raises the test score in inference mode here (the fixture's rows rise by 3 points each).
    assert.match(verdict("4 (a)"), /\*\*does not hold\*\*/);
    // The CNN has one seed.
    assert.match(verdict("7"), /\*\*inconclusive: one seed\*\*/);
    // The difference table: paired intervals over the three seeds, the scale sentence gone (every row has seeds).
    assert.match(
      md,
      /\| GA3 − GA1 \(GA3 instead of GA1\) \| −0\.2 \| \+12\.4 \| 3 \| \+11\.4 to \+13\.4 \(paired\) \| a real difference \(the interval excludes 0\), the other way from the study's/,
    );
    assert.doesNotMatch(md, /For a sense of scale/);
    // The manual batch norm over its three seeds in the summary: 49.1% ± 1.0 (three of the five it declares).
    assert.match(
      md,
      /\| custom batch norm, hand-written backward \(GA1 \+ dropout \+ batchnorm\) \| 51\.6% \| 49\.1% ± 1\.0 \| 3 of 5 \| /,
    );
    // Section 3: the two backwards over the seeds both trained, paired, judged against the margin (manual 49.1,
    // 50.1, 48.1% against the twin's 49.0, 50.6, 48.3%).
    assert.ok(
      md.includes(
        "Over the 3 seeds both trained (42, 1, 2): test: hand-written − autograd: −0.2 pts (paired by seed, n = 3; " +
          "90% −0.7 to +0.3, 95% −0.9 to +0.5); margin ±1.0: the two backwards train to the same test accuracy " +
          "within the margin.",
      ),
    );
    // The eval-mode stages over seeds: training-mode scores 30.0, 31.4, 29.2% (the base's, + 0.01 + 0.004, − 0.01 +
    // 0.002 for row 2) → mean over seeds with its interval, in their section and the summary.
    assert.match(
      md,
      /\| GA1 \+ dropout \| 49\.7% \| 46\.[0-9]% ± [0-9.]+ \(95% [^)]*\) \| \*\*30\.2% ± 1\.1\*\* \(95% 27\.4–33\.0%; SD over seeds\) \| 3 \|/,
    );
    assert.match(
      md,
      /GA1 \+ dropout, test scored in training mode \(dropout on\) \| 49\.7% \| 30\.2% ± 1\.1 \| 3 \| 27\.4–33\.0% \| −19\.5 \|/,
    );
  } finally {
    await cleanup();
  }
});
