// The real pipeline end to end, on a copy of the project: the smoke profile
// (tiny synthetic data) produces the whole report; then a comment reruns
// nothing, changing only the report's code reruns only the report, and a
// parameter change reruns that stage and its downstream only.
import assert from "node:assert/strict";
import { capSeeds, Graph } from "../../pipeline/engine/graph.ts";
import { PROFILES, STAGES } from "../../pipeline/stages.ts";
import { join } from "node:path";
import { copyProject } from "../support/project_copy.ts";

async function reproduce(root: string, ...args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(root, "pipeline/cli.ts"), "reproduce", "--profile", "smoke", ...args],
    cwd: root,
    env: { PIPELINE_CACHE: join(root, ".cache") },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const log = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, log);
  return log.split("\n");
}

const ran = (log: string[]) => log.filter((l) => l.startsWith("▶ ")).map((l) => l.slice(2).split(":")[0]).sort();

Deno.test({
  name: "pipeline end to end: smoke report; a report-only change reruns only the report; a parameter its downstream",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const root = await copyProject("pipeline-e2e-");
    try {
      const first = await reproduce(root, "--jobs", "2");
      // Every node runs once: the stages, their variants and the profile's seeds (and eval-mode per seed).
      const smoke = new Graph(capSeeds(STAGES, PROFILES.smoke.maxSeeds)).order;
      assert.equal(ran(first).length, smoke.length, first.join("\n"));
      assert.ok(smoke.includes("train-cnn+s1") && !smoke.includes("train-cnn+s2"), "two seeds of each stage");
      const report = join(root, "reports/smoke");
      const md = await Deno.readTextFile(join(report, "REPORT.md"));
      assert.match(md, /Table 1/);
      // Figures are numbered in the order they appear: found by name, whatever their number.
      const figures: string[] = [];
      for await (const e of Deno.readDir(join(report, "figures"))) figures.push(e.name);
      for (const fig of ["numpy-mlp-accuracy", "cnn-accuracy", "batchnorm-accuracy"]) {
        for (const ext of ["vl.json", "svg", "png"]) {
          assert.ok(
            figures.some((f) => new RegExp(`^fig\\d+-${fig}\\.${ext.replace(".", "\\.")}$`).test(f)),
            `${fig}.${ext}`,
          );
        }
      }
      await Deno.stat(join(report, "index.html"));

      // Keys follow behaviour: a comment in a file every stage imports reruns nothing.
      await Deno.writeTextFile(join(root, "pipeline/types.ts"), "// a comment\n", { append: true });
      assert.deepEqual(ran(await reproduce(root)), []);

      await Deno.writeTextFile(join(root, "reports/build/study.ts"), "export const EDITED = true;\n", {
        append: true,
      });
      const second = await reproduce(root);
      assert.deepEqual(ran(second), ["report"]);
      assert.ok(
        second.some((l) => l === "▶ report: running (code: reports/build/study.ts changed)"),
        second.join("\n"),
      );

      const third = await reproduce(root, "--set", "train-numpy-mlp.lr=0.001");
      const seeds = [1].map((s) => `train-numpy-mlp+s${s}`);
      assert.deepEqual(ran(third), ["report", "train-numpy-mlp", ...seeds]); // the stage's seeds alike
      assert.ok(
        third.some((l) => l.includes("▶ train-numpy-mlp: running (param lr: 0.002 → 0.001)")),
        third.join("\n"),
      );
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});
