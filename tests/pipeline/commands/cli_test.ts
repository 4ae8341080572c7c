// The command line on a toy project: status/--dry-run predict what reproduce then does
// (fresh clone, after edits) without changing the cache; --keep-going; --force; exp, diff,
// gc (also beside a running reproduce), dag, params, --json, --version, exit codes.
import assert from "node:assert/strict";
import { join } from "node:path";
import { Engine, type StageResult } from "../../../pipeline/engine/engine.ts";
import type { Override } from "../../../pipeline/engine/graph.ts";
import { ProgressLine } from "../../../pipeline/terminal/progress.ts";
import { TransferProgress } from "../../../pipeline/sharing/remote.ts";
import { colorWanted } from "../../../pipeline/terminal/style.ts";
import type { StageDef } from "../../../pipeline/types.ts";

const CLI = new URL("../../../pipeline/cli.ts", import.meta.url).pathname;
const REPO = new URL("../../..", import.meta.url).pathname;

//           ┌── train@small ──┐
// data ─────┼── train@big ────┼── report
//           └── other ────────┘
const FILES: Record<string, string> = {
  "stages.ts": `
export const STAGES = [
  { name: "data", doc: "the data", deps: [], module: "data.ts", outputs: ["data.txt"], params: {} },
  {
    name: "train", doc: "a model", deps: ["data"], module: "train.ts", outputs: ["model.txt"],
    params: { n: { type: "int", default: 1, doc: "size" }, lr: { type: "float", default: 0.1, doc: "rate" } },
    variants: { small: {}, big: { n: 5 } },
  },
  { name: "other", doc: "", deps: ["data"], module: "other.ts", outputs: ["other.txt"], params: {} },
  { name: "report", doc: "", deps: ["train", "other"], module: "report.ts", outputs: ["report.txt"], params: {} },
];
export const PROFILES = { tiny: { doc: "", set: { "train.lr": 0.5 } } };
`,
  "events.ts": `export async function event(root, text) {
  await Deno.writeTextFile(root + "/events.log", text + "\\n", { append: true });
}
`,
  "data.ts": `import { event } from "./events.ts";
export async function run(ctx) {
  await event(ctx.root, "data");
  await Deno.writeTextFile(ctx.outDir + "/data.txt", "D");
  return {};
}
`,
  "train.ts": `import { event } from "./events.ts";
export async function run(ctx) {
  await event(ctx.root, ctx.stage);
  if (Deno.env.get("TOY_FAIL") === ctx.stage) throw new Error("diverged");
  const data = await Deno.readTextFile(ctx.inputs.data + "/data.txt");
  await Deno.writeTextFile(ctx.outDir + "/model.txt", data + ":" + ctx.params.n + ":" + ctx.params.lr);
  return { score: ctx.params.n * ctx.params.lr };
}
`,
  "other.ts": `import { event } from "./events.ts";
export async function run(ctx) {
  await event(ctx.root, "other");
  await Deno.writeTextFile(ctx.outDir + "/other.txt", "O");
  return {};
}
`,
  "report.ts": `import { event } from "./events.ts";
export async function run(ctx) {
  await event(ctx.root, "report");
  if (Deno.env.get("TOY_WAIT")) {
    await Deno.writeTextFile(ctx.root + "/report.waiting", "");
    while (true) {
      try { await Deno.stat(ctx.root + "/go"); break; } catch { await new Promise((r) => setTimeout(r, 50)); }
    }
  }
  const read = (s, f) => Deno.readTextFile(ctx.inputs[s] + "/" + f);
  const text = [await read("train@small", "model.txt"), await read("train@big", "model.txt"), await read("other", "other.txt")];
  await Deno.writeTextFile(ctx.outDir + "/report.txt", text.join(" "));
  return {};
}
`,
};

async function toyProject(): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "cli-test-" });
  for (const [rel, text] of Object.entries(FILES)) await Deno.writeTextFile(join(root, rel), text);
  return root;
}

async function engineFor(root: string, overrides: Override[] = []) {
  const { STAGES } = await import(`file://${root}/stages.ts?${crypto.randomUUID()}`);
  return Engine.open({ root, defs: STAGES as StageDef[], overrides, log: () => {} });
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(root: string, args: string[], env: Record<string, string> = {}): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, "--root", root, "--pipeline", join(root, "stages.ts"), ...args],
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  });
}

async function run(root: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  const out = await cli(root, args, env).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

async function ok(root: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  const r = await run(root, args, env);
  assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
  return r;
}

async function events(root: string): Promise<string[]> {
  const text = await Deno.readTextFile(join(root, "events.log")).catch(() => "");
  await Deno.remove(join(root, "events.log")).catch(() => {});
  return text.trim().split("\n").filter(Boolean).sort();
}

const outcomes = (rs: StageResult[]) => Object.fromEntries(rs.map((r) => [r.stage, r.outcome]));

/** Every file of the cache that holds runs (stat.json, locks and tmp/ aside). */
async function cacheListing(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string, rel: string) => {
    for await (const e of Deno.readDir(dir)) {
      if (e.isDirectory) await walk(join(dir, e.name), `${rel}${e.name}/`);
      else out.push(rel + e.name);
    }
  };
  for (const sub of ["runs", "trees", "objects"]) await walk(join(root, ".cache", sub), `${sub}/`).catch(() => {});
  return out.sort();
}

/** Prediction (dry run) then the run: the same action for every stage, and the cache untouched by the prediction. */
async function predictThenRun(root: string, overrides: Override[] = []): Promise<Record<string, string>> {
  const before = await cacheListing(root);
  const status = outcomes(await (await engineFor(root, overrides)).status());
  const planned = outcomes(await (await engineFor(root, overrides)).reproduce({ dryRun: true }));
  assert.deepEqual(await cacheListing(root), before, "status and --dry-run change nothing in the cache");
  assert.deepEqual(planned, status, "status and --dry-run say the same");
  const done = outcomes(await (await engineFor(root, overrides)).reproduce());
  assert.deepEqual(done, planned, "reproduce does what was predicted");
  return done;
}

Deno.test("status and --dry-run predict exactly what reproduce does: fresh clone, after edits, after --set", async () => {
  const root = await toyProject();
  await ok(root, ["reproduce"]);
  await ok(root, ["push", "train", "other", "report"]); // not data: like the real data, too big for the remote
  // A fresh clone: no cache, no out/; an older lock file without outputsHash (the committed one has none).
  await Deno.remove(join(root, ".cache"), { recursive: true });
  await Deno.remove(join(root, "out"), { recursive: true });
  const lockFile = join(root, "pipeline/lock.json");
  const lock = JSON.parse(await Deno.readTextFile(lockFile));
  for (const s of Object.values(lock.stages) as Array<Record<string, unknown>>) delete s.outputsHash;
  await Deno.writeTextFile(lockFile, JSON.stringify(lock));
  await events(root);
  assert.deepEqual(await predictThenRun(root), {
    data: "run",
    "train@small": "restore from remote",
    "train@big": "restore from remote",
    other: "restore from remote",
    report: "restore from remote",
  });
  assert.deepEqual(await events(root), ["data"], "only the data rebuilt");
  assert.equal(await Deno.readTextFile(join(root, "out/report/report.txt")), "D:1:0.1 D:5:0.1 O");

  await Deno.writeTextFile(
    join(root, "other.ts"),
    (await Deno.readTextFile(join(root, "other.ts"))).replace('"O"', '"O2"'),
  );
  assert.deepEqual(await predictThenRun(root), {
    data: "up to date",
    "train@small": "up to date",
    "train@big": "up to date",
    other: "run",
    report: "run",
  });
  const lr = [{ target: "train@big", param: "lr", raw: "0.2" }];
  assert.deepEqual(await predictThenRun(root, lr), {
    data: "up to date",
    "train@small": "up to date",
    "train@big": "run",
    other: "up to date",
    report: "run",
  });
  assert.deepEqual((await predictThenRun(root)).report, "restore from cache", "back to the settings run before");

  // The CLI prints the same lines for both, on stdout.
  const status = await ok(root, ["status"]);
  const dry = await ok(root, ["reproduce", "--dry-run"]);
  assert.equal(status.stdout, dry.stdout);
  assert.match(status.stdout, /^✓ data: up to date$/m);
  assert.match(dry.stderr, /5 stages, would: 5 up to date/);
  const json = JSON.parse((await ok(root, ["status", "--json"])).stdout);
  assert.deepEqual(json[0], { stage: "data", action: "up to date", reasons: [], key: json[0].key });
});

Deno.test("--keep-going: independent stages go on after a failure, the summary names it, exit 1", async () => {
  const root = await toyProject();
  const failing = await run(root, ["reproduce", "--keep-going"], { TOY_FAIL: "train@small" });
  assert.equal(failing.code, 1, failing.stderr);
  assert.deepEqual(await events(root), ["data", "other", "train@big", "train@small"]);
  assert.match(failing.stderr, /^✗ report: skipped \(upstream train@small failed\)$/m);
  assert.match(failing.stderr, /^failed: train@small \(stage train@small crashed: diverged/m);
  assert.match(failing.stderr, /5 stages: .*1 failed.*1 skipped/);
  // Without it, the first failure stops the run.
  await Deno.remove(join(root, ".cache"), { recursive: true });
  const stopped = await run(root, ["reproduce"], { TOY_FAIL: "train@small" });
  assert.equal(stopped.code, 1);
  assert.ok(!(await events(root)).includes("other"), "nothing started after the failure");
});

Deno.test("reproduce X --force reruns X only, not its upstream", async () => {
  const root = await toyProject();
  await ok(root, ["reproduce"]);
  await events(root);
  const forced = await ok(root, ["reproduce", "train@big", "--force"]);
  assert.deepEqual(await events(root), ["train@big"]);
  assert.match(forced.stderr, /▶ train@big: running \(forced\)/);
  assert.match(forced.stderr, /✓ data: up to date/);
});

Deno.test("exp lists every run of a stage (cache and remote) with changed parameters and metrics; exp show one", async () => {
  const root = await toyProject();
  await ok(root, ["reproduce", "train"]);
  await ok(root, ["reproduce", "train@small", "--set", "train.lr=0.3"]); // an experiment: not in the lock
  await ok(root, ["push", "train@small"]);
  const runs = JSON.parse((await ok(root, ["exp", "train", "--json", "--sort", "score"])).stdout);
  assert.deepEqual(
    runs.map((r: Record<string, unknown>) => [r.stage, r.changed, r.metrics, r.where, r.current, !!r.experiment]),
    [
      ["train@big", { n: 5 }, { score: 0.5 }, ["cache"], true, false],
      ["train@small", { lr: 0.3 }, { score: 0.3 }, ["cache"], false, true],
      ["train@small", {}, { score: 0.1 }, ["cache", "remote"], true, false],
    ],
  );
  const table = (await ok(root, ["exp", "train@small"])).stdout;
  assert.match(table, /^train@small +[0-9a-f]{8}\* +0\.1 .* cache\+remote +-$/m);
  assert.match(table, /^train@small +[0-9a-f]{8}e +0\.3 .* cache +lr=0\.3$/m);
  const shown = JSON.parse((await ok(root, ["exp", "show", runs[0].key.slice(0, 10)])).stdout);
  assert.equal(shown.key, runs[0].key);
  assert.ok(shown.code["train.ts"], "the full record");
  const missing = await run(root, ["exp", "show", "zzzz"]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^error: no run with a key starting zzzz/);
});

Deno.test({
  name: "exp on this repository's committed remote lists the six Table 1 runs with their settings and test accuracy",
  // Reads only the committed remote and lock (a temporary cache); nothing runs.
  fn: async () => {
    const cache = await Deno.makeTempDir({ prefix: "cli-test-cache-" });
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", CLI, "exp", "train-torch-mlp", "--json"],
      cwd: REPO,
      env: { PIPELINE_CACHE: cache },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const runs = JSON.parse(new TextDecoder().decode(out.stdout)) as Array<Record<string, never>>;
    const inRemote = runs.filter((r) => (r.where as string[]).includes("remote"));
    const variants = ["default", "ga1", "ga1-dropout", "ga1-dropout-batchnorm", "ga2", "ga3"];
    // Each row of Table 1 (runs carried over by accept are there under their old and new keys; seeds beside).
    const rows = [...new Set(inRemote.map((r) => r.stage as string).filter((s) => !s.includes("+s")))].sort();
    assert.deepEqual(rows, variants.map((v) => `train-torch-mlp@${v}`));
    for (const r of inRemote) assert.equal(typeof (r.metrics as Record<string, number>).test_acc, "number");
    const ga2 = inRemote.find((r) => r.stage === "train-torch-mlp@ga2")!;
    assert.deepEqual((ga2.changed as Record<string, unknown>).hidden, [1000, 100]);
    await Deno.remove(cache, { recursive: true });
  },
});

Deno.test("diff: parameters and metrics between two git revisions of the lock file, absolute and relative", async () => {
  const root = await toyProject();
  const git = (...args: string[]) =>
    new Deno.Command("git", {
      args: ["-c", "user.name=t", "-c", "user.email=t@t", ...args],
      cwd: root,
      stdout: "null",
      stderr: "null",
    }).output();
  await git("init", "-q");
  await ok(root, ["reproduce", "train@big"]);
  await git("add", "pipeline/lock.json");
  await git("commit", "-qm", "first");
  await Deno.writeTextFile(join(root, "pipeline/params.json"), JSON.stringify({ "train@big.lr": 0.3 }));
  await ok(root, ["reproduce", "train@big"]);
  const rows = JSON.parse((await ok(root, ["diff", "--json"])).stdout);
  const round = (x: number) => +x.toFixed(9);
  assert.deepEqual(
    rows.map((r: Record<string, number>) => ({ ...r, change: round(r.change), relative: round(r.relative) })),
    [
      { stage: "train@big", kind: "param", name: "lr", old: 0.1, new: 0.3, change: 0.2, relative: 2, changed: true },
      { stage: "train@big", kind: "metric", name: "score", old: 0.5, new: 1.5, change: 1, relative: 2, changed: true },
    ],
  );
  const text = (await ok(root, ["diff"])).stdout;
  assert.match(text, /^train@big +metric +score +0\.5 +1\.5 +\+1 +\+200\.0%$/m);
  assert.equal(JSON.parse((await ok(root, ["diff", "HEAD", "HEAD", "--json"])).stdout).length, 0);
  const bad = await run(root, ["diff", "nope"]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^error: git show nope/);
});

Deno.test("gc removes what no lock, remote or --keep-last needs; --dry-run removes nothing; reachable runs stay", async () => {
  const root = await toyProject();
  const params = (lr: number) => Deno.writeTextFile(join(root, "pipeline/params.json"), `{"train.lr": ${lr}}`);
  await ok(root, ["reproduce"]);
  await params(0.2);
  await ok(root, ["reproduce"]);
  await params(0.3);
  await ok(root, ["reproduce"]); // the lock records these
  const before = await cacheListing(root);
  const dry = await ok(root, ["gc", "--dry-run", "--keep-last", "2"]);
  assert.deepEqual(await cacheListing(root), before, "a dry run removes nothing");
  assert.equal(dry.stdout.match(/^would remove /gm)?.length, 3, dry.stdout); // the oldest train ×2 and report
  const freed = JSON.parse((await ok(root, ["gc", "--keep-last", "2", "--json"])).stdout);
  assert.equal(freed.runs.length, 3);
  assert.equal(freed.objects, 3, "three files only those runs held");
  const all = JSON.parse((await ok(root, ["gc", "--json"])).stdout);
  assert.equal(all.runs.length, 3, "the lr=0.2 runs");
  assert.equal((await cacheListing(root)).filter((f) => f.startsWith("objects/")).length, 5);
  await events(root);
  const again = JSON.parse((await ok(root, ["reproduce", "--json"])).stdout);
  assert.ok(again.every((r: { action: string }) => r.action === "up to date"), JSON.stringify(again));
  assert.deepEqual(await events(root), []);
});

Deno.test("gc beside a running reproduce keeps the runs it uses, though the lock no longer names them", async () => {
  const root = await toyProject();
  await ok(root, ["reproduce"]);
  await ok(root, ["reproduce", "--set", "train.lr=0.2"]);
  // X trains with lr=0.3 and waits inside report, reading train@*'s lr=0.3 outputs.
  const x = cli(root, ["reproduce", "--set", "train.lr=0.3"], { TOY_WAIT: "1" }).spawn();
  for (let i = 0; i < 400; i++) {
    if (await Deno.stat(join(root, "report.waiting")).then(() => true, () => false)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  // Meanwhile the lock moves train back to lr=0.1: X's lr=0.3 runs are in no lock file now.
  await ok(root, ["reproduce", "train"]);
  const runs = JSON.parse((await ok(root, ["exp", "--json"])).stdout) as Array<{ stage: string; key: string }>;
  const lr3 = JSON.parse((await ok(root, ["exp", "train", "--json"])).stdout)
    .filter((r: { changed: { lr?: number } }) => r.changed.lr === 0.3).map((r: { key: string }) => r.key);
  assert.equal(lr3.length, 2);
  const collected = JSON.parse((await ok(root, ["gc", "--json"])).stdout);
  const removed = collected.runs.map((r: string) => r.split(" ")[1]);
  for (const key of lr3) assert.ok(!removed.includes(key.slice(0, 8)), "X's inputs are kept");
  assert.equal(collected.runs.length, 3, `lr=0.2's train runs and the first report: ${collected.runs}`);
  assert.ok(runs.length > collected.runs.length);
  await Deno.writeTextFile(join(root, "go"), "");
  const { code, stderr } = await x.output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  assert.equal(await Deno.readTextFile(join(root, "out/report/report.txt")), "D:1:0.3 D:5:0.3 O");
});

Deno.test("dag: a tree with states, Mermaid, DOT, JSON", async () => {
  const root = await toyProject();
  await ok(root, ["reproduce", "data"]);
  const tree = (await ok(root, ["dag"])).stdout;
  assert.match(tree, /^data +up to date$/m);
  assert.match(tree, /^├─ train@small +run \(never run\)$/m);
  assert.match(tree, /^└─ other\s+run \(never run\)$/m);
  assert.match(tree, /^ {3}└─ report \(\+ train@small, train@big\) +run \(upstream .* stale\)$/m);
  assert.match((await ok(root, ["dag", "--mermaid"])).stdout, /^ {2}data --> train_small$/m);
  assert.match((await ok(root, ["dag", "--dot"])).stdout, /^ {2}"train@big" -> "report";$/m);
  const json = JSON.parse((await ok(root, ["dag", "--json"])).stdout);
  assert.deepEqual(json.at(-1).deps, ["train@small", "train@big", "other"]);
});

Deno.test("params: each value with its source (default, variant, params.json, profile, --set)", async () => {
  const root = await toyProject();
  await Deno.mkdir(join(root, "pipeline"), { recursive: true });
  await Deno.writeTextFile(join(root, "pipeline/params.json"), JSON.stringify({ "train@small.n": 2 }));
  const p = JSON.parse((await ok(root, ["params", "train", "--json", "--profile", "tiny"])).stdout);
  assert.deepEqual(p["train@small"].params.n, { value: 2, source: "params.json", type: "int", doc: "size" });
  assert.equal(p["train@big"].params.n.source, "variant");
  assert.equal(p["train@big"].params.lr.source, "profile tiny");
  const set = JSON.parse((await ok(root, ["params", "--json", "--set", "train@big.lr=0.9"])).stdout);
  assert.deepEqual([set["train@big"].params.lr.value, set["train@big"].params.lr.source], [0.9, "--set"]);
  assert.equal(set["train@small"].params.lr.source, "default");
  const text = (await ok(root, ["params", "train@big"])).stdout;
  assert.match(text, /^ {2}n = 5 {2}\[variant\] {2}\(int\) size$/m);
});

Deno.test("command-line conventions: usage and exit codes, --, --help, --version", async () => {
  const root = await toyProject();
  const none = await run(root, []);
  assert.equal(none.code, 2);
  assert.equal(none.stdout, "");
  assert.match(none.stderr, /^usage: /);
  const help = await ok(root, ["--help"]);
  assert.match(help.stdout, /exit status: 0 done; 1 /);
  for (
    const args of [["reproduce", "--frob"], ["frobnicate"], ["status", "--jobs", "2"], ["reproduce", "--jobs", "0"], [
      "reproduce",
      "--set",
      "oops",
    ]]
  ) {
    const r = await run(root, args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, /^error: .* — /);
    assert.equal(r.stderr.trim().split("\n").length, 1);
  }
  const unknownStage = await run(root, ["reproduce", "nope"]);
  assert.equal(unknownStage.code, 1, "a runtime error, not a usage error");
  assert.match((await ok(root, ["reproduce", "--", "data"])).stderr, /1 stage: 1 run/);
  const version = (await ok(root, ["--version"])).stdout;
  assert.match(version, new RegExp(`^deno ${Deno.version.deno.replaceAll(".", "\\.")} `, "m"));
  assert.match(version, /^tfjs \d+\.\d+\.\d+$/m);
});

Deno.test("styling: colour only on a terminal, never with NO_COLOR or TERM=dumb", () => {
  const tty = { isTerminal: () => true };
  const saved = { NO_COLOR: Deno.env.get("NO_COLOR"), TERM: Deno.env.get("TERM") };
  try {
    Deno.env.delete("NO_COLOR");
    Deno.env.set("TERM", "xterm");
    assert.equal(colorWanted(tty), true);
    assert.equal(colorWanted({ isTerminal: () => false }), false);
    Deno.env.set("NO_COLOR", "1");
    assert.equal(colorWanted(tty), false);
    Deno.env.delete("NO_COLOR");
    Deno.env.set("TERM", "dumb");
    assert.equal(colorWanted(tty), false);
  } finally {
    for (const [k, v] of Object.entries(saved)) v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
  }
});

Deno.test("a download's progress line says the time left once", async () => {
  const lines: string[] = [];
  const original = console.error;
  console.error = (l: string) => lines.push(l);
  try {
    const line = new ProgressLine("download", false);
    // What data/download_stage.ts reports: MiB as steps, with its own rate and time left.
    const extra = (mib: number) => ({ download: `${mib.toFixed(1)} MiB`, rate: "5.0 MiB/s", left: "0s" });
    line.update({ step: 0, total: 100, extra: extra(0) });
    await new Promise((r) => setTimeout(r, 20));
    line.update({ step: 100, total: 100, extra: extra(100) });
  } finally {
    console.error = original;
  }
  const last = lines.at(-1)!;
  assert.equal(last, "[download] step 100/100 · download 100.0 MiB · rate 5.0 MiB/s · left 0s");
  assert.equal(last.match(/left/g)?.length, 1);
});

Deno.test("a push or pull estimates the time left only after its first seconds", () => {
  let now = 0;
  const lines: string[] = [];
  const progress = new TransferProgress("pull", (l) => lines.push(l), false, () => now);
  progress.plan(98, 955 * 2 ** 20);
  now = 30; // ms: a few small entries in no time
  progress.add(3, 4096);
  assert.doesNotMatch(progress.line(), /left/, "no estimate from 30 ms of small files");
  now = 3000;
  progress.add(10, 100 * 2 ** 20);
  assert.match(progress.line(), /13\/98 objects · .* · \d+s left$/);
});
