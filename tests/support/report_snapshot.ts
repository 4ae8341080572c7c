// Renders the report from the test fixtures (report_fixture.ts) into a folder,
// one subfolder per fixture variant: REPORT.md, index.html, every figure
// (.vl.json, .svg, .png) and the stage's metrics. For a change that must not
// change the report (a refactor of reports/build/): render before and after,
// then `diff -r` the two folders.
//
//   deno run -A tests/support/report_snapshot.ts /tmp/report-before
//   … change reports/build/ …
//   deno run -A tests/support/report_snapshot.ts /tmp/report-after
//   diff -r /tmp/report-before /tmp/report-after
import { join } from "node:path";
import { makeTestContext } from "./stage_context.ts";
import { run } from "../../reports/build/stage.ts";
import { fabricateInputs, type FixtureOptions } from "./report_fixture.ts";

/** The fixture variants report_test.ts and browser_test.ts build, and a few more that leave out other runs. */
const VARIANTS: Record<string, FixtureOptions & { genericSearch?: boolean }> = {
  complete: { provenance: true, seeds: true, predictions: true },
  "complete-search": { provenance: true, seeds: true, predictions: true, search: true },
  "search-no-provenance": { search: true },
  "search-generic-shape": { search: true, genericSearch: true },
  partial: {
    omit: ["train-torch-mlp@ga2", "train-torch-mlp@ga3", "train-batchnorm", "train-cnn"],
    search: true,
    provenance: true,
  },
  "partial-others": {
    omit: ["train-numpy-mlp", "dropout-eval-mode", "train-torch-mlp@default", "train-torch-mlp@ga1-dropout"],
    provenance: true,
    seeds: true,
    predictions: true,
  },
  "only-cnn": {
    omit: [
      "train-numpy-mlp",
      "dropout-eval-mode",
      "batchnorm-eval-mode",
      "train-batchnorm",
      ...["default", "ga1", "ga1-dropout", "ga1-dropout-batchnorm", "ga2", "ga3"].map((v) => `train-torch-mlp@${v}`),
    ],
    predictions: true,
  },
  bare: {},
};

const target = Deno.args[0];
if (!target) throw new Error("usage: deno run -A tests/support/report_snapshot.ts <folder>");
await Deno.remove(target, { recursive: true }).catch(() => {});
for (const [name, opts] of Object.entries(VARIANTS)) {
  // The same input folder for every rendering: nothing of a temporary path can differ.
  const base = join(target, ".inputs", name);
  const inputs = await fabricateInputs(base, opts);
  if (opts.genericSearch) {
    await Deno.writeTextFile(
      join(inputs["search-mlp"], "search.json"),
      JSON.stringify({ population: [{ gen: 1, fitness: 0.3 }, { gen: 2, fitness: 0.4 }], best: { test_acc: 0.5 } }),
    );
  }
  const ctx = await makeTestContext({ stage: "report", params: {}, inputs, quiet: true });
  try {
    const metrics = await run(ctx);
    await Deno.writeTextFile(join(ctx.outDir, "metrics.json"), JSON.stringify(metrics, null, 2) + "\n");
    await Deno.mkdir(target, { recursive: true });
    await copy(ctx.outDir, join(target, name));
  } finally {
    await ctx.cleanup();
  }
  console.log(`${name}: written`);
}
await Deno.remove(join(target, ".inputs"), { recursive: true });

async function copy(from: string, to: string) {
  await Deno.mkdir(to, { recursive: true });
  for await (const e of Deno.readDir(from)) {
    if (e.isDirectory) await copy(join(from, e.name), join(to, e.name));
    else await Deno.copyFile(join(from, e.name), join(to, e.name));
  }
}
