// `deno task bench reliability`: the long version of tests/pipeline/engine/faults_test.ts.
// 50 SIGKILLs of the process group at seeded moments (44 across the toy stages,
// 6 across the smoke profile's download … train-torch-mlp), 10 concurrent
// reproduce runs on one cache, and every bad input of the table; prints the
// counts (the README's robustness section quotes them).
import {
  checkBadInputs,
  cli,
  concurrentRuns,
  type KillCounts,
  killRounds,
  projectCopy,
  toyBadInputs,
  toyProject,
  trustBadInputs,
} from "../support/faults_harness.ts";

const SMOKE = ["--profile", "smoke"];

export async function bench() {
  const t0 = performance.now();
  const elapsed = () => `${((performance.now() - t0) / 1000).toFixed(0)} s`;

  const toy = await toyProject();
  const kills: KillCounts[] = [];
  kills.push(await killRounds(toy, { n: 44, seed: 2026, minMs: 200, maxMs: 9000, args: ["reproduce"] }));
  console.log(`toy kills done (${elapsed()})`);
  const project = await projectCopy();
  const curves = (file: string, text: string) =>
    file.endsWith("history.json") ? JSON.stringify(JSON.parse(text).evals) : file.endsWith(".json") ? "" : text;
  kills.push(
    await killRounds(project, {
      n: 6,
      seed: 7,
      minMs: 1000,
      maxMs: 15000,
      args: ["reproduce", "train-torch-mlp@default", ...SMOKE, "--set", "train-torch-mlp.steps=60"],
      pick: curves,
    }),
  );
  console.log(`smoke kills done (${elapsed()})`);

  const concurrent = await concurrentRuns(await toyProject(), 10);
  console.log(`concurrent done (${elapsed()})`);

  const badRoot = await toyProject();
  await cli(badRoot, ["reproduce"]);
  const cases = [...toyBadInputs(badRoot), ...trustBadInputs(badRoot)];
  const bad = await checkBadInputs(badRoot, cases);
  const realCases = [
    { name: "numpy lr", args: ["reproduce", "train-numpy-mlp", ...SMOKE, "--set", "train-numpy-mlp.lr=1e30"] },
    { name: "torch lr", args: ["reproduce", "train-torch-mlp@default", ...SMOKE, "--set", "train-torch-mlp.lr=1e30"] },
    { name: "cnn lr", args: ["reproduce", "train-cnn", ...SMOKE, "--set", "train-cnn.lr=1e30"] },
  ].map((c) => ({
    ...c,
    expect: /training diverged: the loss (became NaN|reached [\d.e+]+) at step \d+ with lr=1e\+30/,
  }));
  await cli(project, ["reproduce", "preprocess", ...SMOKE]);
  bad.push(...await checkBadInputs(project, realCases));

  const sum = (f: (k: KillCounts) => number) => kills.reduce((n, k) => n + f(k), 0);
  const corrupt = kills.flatMap((k) => k.corrupt), wrong = kills.flatMap((k) => k.wrong);
  for (const line of [...corrupt, ...wrong, ...concurrent.conflicts, ...bad]) console.log(`  ✗ ${line}`);
  console.log(
    `kills: ${sum((k) => k.kills)} (${sum((k) => k.landed)} during a run, ${
      sum((k) => k.resumed)
    } reruns resumed from a checkpoint) → ${corrupt.length} corrupt, ${wrong.length} wrong results`,
  );
  console.log(`concurrent: ${concurrent.runs} runs on one cache → ${concurrent.conflicts.length} conflicts`);
  console.log(
    `bad inputs: ${cases.length + realCases.length} → ${
      cases.length + realCases.length - bad.length
    } one-line errors with exit 1 and the cache untouched, ${
      bad.filter((b) => b.includes("stack trace")).length
    } stack traces, ${bad.length} failures`,
  );
  console.log(`(${elapsed()})`);
}

if (import.meta.main) await bench();
