// Reviewing a change on a toy project: `diff --md` (changed rows, --all, seeds as mean ± SD, the
// report's precision), the regression gate (`--fail-on`: exit 3 on a regression, 0 otherwise),
// `diff --plots` (both revisions' curves overlaid: SVG, PNG, Vega-Lite, index.md, index.html),
// experiments kept out of the study's record (a --set run leaves pipeline/lock.json and
// pipeline/remote/ untouched; exp marks it, exp push / push --exp share it, exp apply adopts it),
// and the CLI's small print.
import assert from "node:assert/strict";
import { join } from "node:path";
import { deltaRows, formatMarkdown, parseLimit, regressions } from "../../../pipeline/commands/diff_md.ts";
import type { LockFile } from "../../../pipeline/engine/lockfile.ts";

const CLI = new URL("../../../pipeline/cli.ts", import.meta.url).pathname;

// data ── train (seeds 0, 1, 2): test_acc grows with lr, a little with the seed; a curve in history.json.
const FILES: Record<string, string> = {
  "stages.ts": `
export const STAGES = [
  {
    name: "data", doc: "the data", deps: [], module: "data.ts", outputs: ["data.txt"], publish: "published",
    params: { tiny: { type: "bool", default: false, doc: "tiny data" } },
  },
  {
    name: "train", doc: "a model", deps: ["data"], module: "train.ts", outputs: ["model.txt", "history.json"],
    params: {
      lr: { type: "float", default: 0.1, doc: "rate" },
      seed: { type: "int", default: 0, doc: "seed" },
      steps: { type: "int", default: 4, doc: "steps" },
    },
    seeds: [0, 1, 2],
  },
];
export const PROFILES = { smoke: { doc: "tiny", set: { "data.tiny": true, "train.steps": 2 } } };
`,
  "data.ts": `export async function run(ctx) {
  await Deno.writeTextFile(ctx.outDir + "/data.txt", ctx.params.tiny ? "d" : "D");
  return {};
}
`,
  "train.ts": `export async function run(ctx) {
  const { lr, seed, steps } = ctx.params;
  const acc = (s) => Math.min(0.99, 0.3 + lr * s + seed * 0.01);
  const evals = [];
  for (let s = 0; s <= steps; s++) {
    evals.push({ step: s * 10, trainLoss: 2 / (1 + s), trainAcc: acc(s) + 0.05, testLoss: 2.2 / (1 + s), testAcc: acc(s) });
  }
  await Deno.writeTextFile(ctx.outDir + "/history.json", JSON.stringify({ params: ctx.params, evals }));
  await Deno.writeTextFile(ctx.outDir + "/model.txt", String(lr) + ":" + seed);
  return { test_acc: evals.at(-1).testAcc, test_loss: evals.at(-1).testLoss };
}
`,
};

async function toyProject(): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "review-test-" });
  for (const [rel, text] of Object.entries(FILES)) await Deno.writeTextFile(join(root, rel), text);
  await Deno.mkdir(join(root, "pipeline"));
  await git(root, "init", "-q");
  return root;
}

async function git(root: string, ...args: string[]) {
  const out = await new Deno.Command("git", {
    args: ["-c", "user.name=t", "-c", "user.email=t@t", ...args],
    cwd: root,
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(root: string, args: string[]): Promise<Run> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, "--root", root, "--pipeline", join(root, "stages.ts"), ...args],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

async function ok(root: string, args: string[]): Promise<Run> {
  const r = await run(root, args);
  assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
  return r;
}

const setParams = (root: string, params: Record<string, unknown>) =>
  Deno.writeTextFile(join(root, "pipeline/params.json"), JSON.stringify(params));

/** A project with two commits: lr 0.1 (HEAD~1) and lr 0.05 (HEAD, a regression of test_acc). */
async function twoRevisions(): Promise<string> {
  const root = await toyProject();
  await ok(root, ["reproduce"]);
  await git(root, "add", "pipeline/lock.json");
  await git(root, "commit", "-qm", "lr 0.1");
  await setParams(root, { "train.lr": 0.05 });
  await ok(root, ["reproduce"]);
  await git(root, "add", "pipeline/lock.json", "pipeline/params.json");
  await git(root, "commit", "-qm", "lr 0.05");
  return root;
}

Deno.test("diff --md: changed rows only (--all: every row), seeds as mean ± SD, the report's precision", async () => {
  const root = await twoRevisions();
  const md = (await ok(root, ["diff", "--md", "HEAD~1", "HEAD"])).stdout;
  assert.match(md, /^\*\*HEAD~1\*\* → \*\*HEAD\*\*$/m);
  assert.match(md, /^\| stage \| kind \| name \| old \| new \| change \| relative \|$/m);
  // test_acc per seed 0.7/0.71/0.72 → 0.5/0.51/0.52: mean ± SD in %, the change in points.
  assert.match(
    md,
    /^\| `train` \(3 seeds\) \| metric \| test_acc \| 71\.0% ± 1\.0 \| 51\.0% ± 1\.0 \| −20\.0 pts \| −28\.2% \|$/m,
  );
  assert.match(md, /^\| `train` \| param \| lr \| 0\.1 \| 0\.05 \| −0\.05 \| −50\.0% \|$/m);
  assert.ok(!/test_loss/.test(md), "an unchanged metric is left out");
  assert.ok(!/`data`/.test(md), "an unchanged stage is left out");
  const all = (await ok(root, ["diff", "--md", "--all", "HEAD~1", "HEAD"])).stdout;
  assert.match(all, /^\| `train` \(3 seeds\) \| metric \| test_loss \| 0\.44 ± 0 \| 0\.44 ± 0 \| ±0 \| ±0\.0% \|$/m);
  assert.match(all, /^\| `data` \| param \| tiny \| false \| false \| {2}\| {2}\|$/m);
  const json = JSON.parse((await ok(root, ["diff", "--json", "HEAD~1", "HEAD"])).stdout);
  const acc = json.find((r: { name: string }) => r.name === "test_acc");
  assert.deepEqual(acc.seeds, { old: 3, new: 3 });
  assert.ok(Math.abs(acc.oldSd - 0.01) < 1e-9);
  assert.equal(
    (await ok(root, ["diff", "--md", "HEAD", "HEAD"])).stdout.trim(),
    "**HEAD** → **HEAD**: no parameter or metric changed",
  );
});

Deno.test("diff --fail-on: exit 3 on a regression past the limit, 0 otherwise; absolute, relative, direction", async () => {
  const root = await twoRevisions();
  const regressed = await run(root, ["diff", "HEAD~1", "HEAD", "--fail-on", "test_acc:-0.01"]);
  assert.equal(regressed.code, 3, regressed.stderr);
  assert.match(
    regressed.stderr,
    /^✗ regression: train test_acc: 71\.0% ± 1\.0 → 51\.0% ± 1\.0 \(−20\.0 pts, −28\.2%\) past the limit test_acc:-0\.01$/m,
  );
  assert.equal((await run(root, ["diff", "HEAD~1", "HEAD", "--fail-on", "test_acc:-30%"])).code, 0, "within 30%");
  assert.equal((await run(root, ["diff", "HEAD~1", "HEAD", "--fail-on", "train/test_acc:-1%"])).code, 3);
  assert.equal((await run(root, ["diff", "HEAD~1", "HEAD", "--fail-on", "other/test_acc:-1%"])).code, 0);
  // The other way round it is an improvement: no regression; a rise limit on the loss holds (unchanged).
  assert.equal((await run(root, ["diff", "HEAD", "HEAD~1", "--fail-on", "test_acc:-0.01"])).code, 0);
  assert.equal((await run(root, ["diff", "HEAD~1", "HEAD", "--fail-on", "test_loss:+0"])).code, 0);
  assert.equal((await run(root, ["diff", "HEAD", "HEAD~1", "--fail-on", "test_acc:+0.1"])).code, 3, "a rise limit");
  const bad = await run(root, ["diff", "--fail-on", "test_acc"]);
  assert.equal(bad.code, 2, "a malformed limit is a usage error");
  assert.match(bad.stderr, /^error: --fail-on test_acc: expected \[stage\/\]metric:±limit\[%\] — /);
  const help = (await ok(root, ["--help"])).stdout;
  assert.match(help, /^ {2}3 diff --fail-on: a metric moved past its limit/m);
});

Deno.test("the delta rows and the gate as functions: one seed, a stage added, unsigned limits refused", () => {
  const lock = (stages: Record<string, Record<string, unknown>>): LockFile => ({
    version: 1,
    stages: Object.fromEntries(
      Object.entries(stages).map(([k, metrics]) => [k, { key: k, params: {}, metrics } as never]),
    ),
  });
  const rows = deltaRows(lock({ a: { test_acc: 0.5 } }), lock({ a: { test_acc: 0.49 }, b: { test_acc: 0.9 } }));
  assert.deepEqual(rows.map((r) => [r.stage, r.old, r.new]), [["a", 0.5, 0.49], ["b", undefined, 0.9]]);
  assert.match(formatMarkdown(rows, ["x", "y"]), /^\| `b` \| metric \| test_acc \| – \| 90\.0% \| {2}\| {2}\|$/m);
  assert.equal(regressions(rows, [parseLimit("test_acc:-0.02")]).length, 0);
  assert.equal(regressions(rows, [parseLimit("test_acc:-0.005")]).length, 1, "a stage only on one side is not judged");
  assert.throws(() => parseLimit("test_acc:0.01"), /expected \[stage\/\]metric:±limit/);
});

Deno.test("diff --plots: each changed stage's curves of both revisions overlaid, as SVG, PNG, Vega-Lite, index.md/html", async () => {
  const root = await twoRevisions();
  const dir = join(root, "review");
  const r = await ok(root, ["diff", "--md", "--plots", dir, "HEAD~1", "HEAD"]);
  assert.match(r.stderr, /3 figures \(train, train\+s1, train\+s2\)/, r.stderr);
  const files = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
  for (const s of ["train", "train_s1", "train_s2"]) {
    for (const ext of ["svg", "png", "vl.json"]) assert.ok(files.includes(`${s}.${ext}`), `${s}.${ext}: ${files}`);
  }
  assert.ok(!files.some((f) => f.startsWith("data")), "data has no curve and did not change");
  const svg = await Deno.readTextFile(join(dir, "train.svg"));
  const lock = (rev: string) =>
    new Deno.Command("git", { args: ["show", `${rev}:pipeline/lock.json`], cwd: root, stdout: "piped" }).outputSync();
  const keyAt = (rev: string) => JSON.parse(new TextDecoder().decode(lock(rev).stdout)).stages.train.key.slice(0, 8);
  for (const [rev, colour] of [["HEAD~1", "#4c78a8"], ["HEAD", "#f58518"]]) {
    assert.ok(svg.includes(`${rev} (${keyAt(rev)})`), `${rev}'s series is named in the legend`);
    assert.ok(svg.includes(`stroke="${colour}"`), `${rev}'s curves drawn in ${colour}`);
  }
  assert.ok(svg.includes("test set") && svg.includes("training batch"));
  const png = await Deno.readFile(join(dir, "train.png"));
  assert.deepEqual([...png.slice(1, 4)], [...new TextEncoder().encode("PNG")]);
  const spec = JSON.parse(await Deno.readTextFile(join(dir, "train.vl.json")));
  assert.equal(spec.data.values.length, 2 * 2 * 5, "two revisions × two splits × five evaluations");
  const md = await Deno.readTextFile(join(dir, "index.md"));
  assert.match(md, /^!\[train: .*\]\(train\.png\)$/m);
  assert.match(md, /\| `train` \(3 seeds\) \| metric \| test_acc \|/);
  const html = await Deno.readTextFile(join(dir, "index.html"));
  assert.ok(html.includes("<svg") && html.includes("<table>"), "figures and the table inline");
  assert.ok(!/<script|https?:\/\/(?!www\.w3\.org)/.test(html), "self-contained: no script, no external URL");
});

Deno.test("experiments stay out of the study's record: --set leaves lock.json and the remote untouched", async () => {
  const root = await toyProject();
  await ok(root, ["reproduce"]);
  await ok(root, ["push"]);
  const lockFile = join(root, "pipeline/lock.json");
  const remote = join(root, "pipeline/remote");
  const listing = async () => {
    const out: string[] = [];
    const walk = async (d: string) => {
      for await (const e of Deno.readDir(d)) e.isDirectory ? await walk(join(d, e.name)) : out.push(join(d, e.name));
    };
    await walk(remote);
    return out.sort();
  };
  const [lockBefore, remoteBefore] = [await Deno.readTextFile(lockFile), await listing()];

  const exp = await ok(root, ["reproduce", "train", "--set", "train.lr=0.2"]);
  assert.match(exp.stderr, /an experiment \(--set\): recorded in the cache, not in pipeline\/lock\.json/);
  assert.equal(await Deno.readTextFile(lockFile), lockBefore, "the lock is untouched");
  const pushed = await ok(root, ["push"]);
  assert.match(pushed.stderr, /already there: data, train, train\+s1, train\+s2/, pushed.stderr);
  assert.deepEqual(await listing(), remoteBefore, "a plain push does not copy the experiment");
  assert.equal(await Deno.readTextFile(lockFile), lockBefore);

  const runs = JSON.parse((await ok(root, ["exp", "train", "--json"])).stdout) as Array<Record<string, never>>;
  const experiment = runs.filter((r) => r.experiment);
  assert.equal(experiment.length, 3, "the experiment's three seeds");
  assert.deepEqual(experiment[0].experiment, { set: ["train.lr=0.2"] });
  assert.ok(experiment.every((r) => !r.current && (r.changed as { lr: number }).lr === 0.2));

  // A published stage's copies (like the report) are not overwritten by an experiment: out/experiment/ has them.
  await ok(root, ["reproduce", "data", "--set", "data.tiny=true"]);
  assert.equal(await Deno.readTextFile(join(root, "published/data.txt")), "D", "the committed copy stays");
  assert.equal(await Deno.readTextFile(join(root, "out/experiment/data/data.txt")), "d");
  assert.equal(await Deno.readTextFile(lockFile), lockBefore);

  // exp push KEY shares one; push --exp the rest.
  const one = experiment.find((r) => r.stage === "train")!;
  // diff --runs: the study's run against the experiment, table and curves.
  const study = runs.find((r) => r.stage === "train" && r.current)!;
  const [a, b] = [(study.key as string).slice(0, 8), (one.key as string).slice(0, 8)];
  const vs = await ok(root, ["diff", "--runs", a, b, "--md", "--plots", join(root, "runs-plots")]);
  assert.match(vs.stdout, /^\| `train` \| param \| lr \| 0\.1 \| 0\.2 \| \+0\.1 \| \+100\.0% \|$/m);
  const svg = await Deno.readTextFile(join(root, "runs-plots/train.svg"));
  assert.ok(svg.includes(`train ${a}`) && svg.includes(`train ${b}`), "both runs in the legend");
  assert.ok(!svg.includes(`train ${a} (${a})`), "the key once");
  const shared = await ok(root, ["exp", "push", (one.key as string).slice(0, 10)]);
  assert.match(shared.stderr, /^pushed to pipeline\/remote: train [0-9a-f]{8}$/m);
  assert.ok(await Deno.stat(join(remote, "runs", `${one.key}.json`)));
  const rest = await ok(root, ["push", "--exp"]);
  assert.match(rest.stderr, /^experiments pushed: train\+s1 [0-9a-f]{8}, train\+s2 [0-9a-f]{8}, data [0-9a-f]{8}$/m);
  assert.match(rest.stderr, /^already there: train [0-9a-f]{8}$/m);
  assert.equal(await Deno.readTextFile(lockFile), lockBefore, "pushing experiments leaves the lock alone");

  // exp apply KEY: the lock records it and params.json keeps its setting, so status agrees.
  const applied = await ok(root, ["exp", "apply", (one.key as string).slice(0, 10)]);
  assert.match(applied.stderr, /now records train [0-9a-f]{8}; pipeline\/params\.json: train\.lr=0\.2/);
  const lock = JSON.parse(await Deno.readTextFile(lockFile));
  assert.equal(lock.stages.train.key, one.key);
  assert.deepEqual(JSON.parse(await Deno.readTextFile(join(root, "pipeline/params.json"))), { "train.lr": 0.2 });
  const status = (await ok(root, ["status", "train"])).stdout;
  assert.match(status, /^✓ train: up to date$/m);
  assert.match(status, /^↓ train\+s1: restore from cache/m, "its seeds: cached by the experiment");
});

Deno.test("exp marks smoke-profile runs, and shows a run under several keys once", async () => {
  const root = await toyProject();
  await ok(root, ["reproduce"]);
  await ok(root, ["reproduce", "--profile", "smoke"]);
  assert.ok(await Deno.stat(join(root, "pipeline/lock.smoke.json")), "a profile keeps its own lock file");
  // The same run under a second key (as accept leaves a run carried over a code change).
  const lock = JSON.parse(await Deno.readTextFile(join(root, "pipeline/lock.json")));
  const key = lock.stages.train.key as string;
  const entry = JSON.parse(await Deno.readTextFile(join(root, ".cache/runs", `${key}.json`)));
  const alias = "0".repeat(64);
  await Deno.writeTextFile(
    join(root, ".cache/runs", `${alias}.json`),
    JSON.stringify({ ...entry, key: alias, startedAt: "2020-01-01T00:00:00.000Z" }),
  );
  const runs = JSON.parse((await ok(root, ["exp", "--json"])).stdout) as Array<Record<string, never>>;
  const smoke = runs.filter((r) => r.profile === "smoke").map((r) => r.stage).sort();
  assert.deepEqual(smoke, ["data", "train", "train+s1", "train+s2"], "data by its setting, train by both");
  const train = runs.filter((r) => r.stage === "train" && !r.profile);
  assert.equal(train.length, 1, "one row for the run under two keys");
  assert.deepEqual([train[0].key, train[0].aliases], [key, [alias]]);
  const sorted = JSON.parse((await ok(root, ["exp", "train", "--json", "--sort", "test_acc"])).stdout);
  assert.deepEqual(sorted.map((r: { profile?: string }) => r.profile ?? "-"), [
    "-",
    "-",
    "-",
    "smoke",
    "smoke",
    "smoke",
  ]);
  const table = (await ok(root, ["exp", "train"])).stdout;
  assert.match(table, /^train +[0-9a-f]{8}e? .* SMOKE profile$/m);
  assert.match(table, /^train +[0-9a-f]{8}\* .* also 00000000$/m);
});

Deno.test("CLI small print: wrapped help indented, accept's refusal once, gc --keep-last -1, 1 stage", async () => {
  const root = await toyProject();
  const help = (await ok(root, ["--help"])).stdout.split("\n");
  for (const flag of ["--verify ", "--verify-steps", "--remote", "--fail-on"]) {
    const i = help.findIndex((l) => l.startsWith(`  ${flag}`));
    assert.ok(i >= 0, flag);
    assert.match(help[i + 1], /^ {30}\S/, `${flag}: its second line is indented under the first`);
  }
  const never = await run(root, ["accept", "data"]);
  assert.equal(never.code, 1);
  assert.equal(
    `${never.stdout}${never.stderr}`.trim(),
    "✗ data: never run, so nothing to accept — run `deno task reproduce data`",
  );
  const nothing = await ok(root, ["accept"]);
  assert.equal(nothing.stderr.trim(), "nothing to accept: no stage is stale by its code alone");
  const gc = await run(root, ["gc", "--keep-last", "-1"]);
  assert.equal(gc.code, 2);
  assert.equal(gc.stderr.trim(), "error: --keep-last -1: expected an integer ≥ 0 — e.g. --keep-last 2");
  assert.match((await ok(root, ["reproduce", "data"])).stderr, /^1 stage: 1 run/m);
  const params = await run(root, ["accept", "data", "--set", "data.tiny=true"]);
  assert.equal(params.code, 1);
  assert.equal(params.stderr.match(/param tiny/g)?.length ?? 0, 0, "not on stderr as well");
  assert.match(
    params.stdout,
    /^✗ data: accept carries a run over a code change only, but param tiny: false → true — run `deno task reproduce data` to run it with these settings$/m,
  );
});
