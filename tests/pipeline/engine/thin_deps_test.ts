// Building on a clone whose runs are thin (restored from the committed remote without their
// files over 8 MiB): a stage depends on the upstream files it reads (StageDef.reads), so only
// what a running stage reads is rebuilt; status predicts every run and rebuild in reproduce's
// words; rebuilds above the limit wait for --rebuild-thin; --whole, --verify and a stage that
// reads an undeclared file.
import assert from "node:assert/strict";
import { join } from "node:path";
import { Engine, type ReproduceOptions, type StageResult } from "../../../pipeline/engine/engine.ts";
import { Graph } from "../../../pipeline/engine/graph.ts";
import { hashFile } from "../../../pipeline/store/hash.ts";
import { PipelineError, type StageDef } from "../../../pipeline/types.ts";

const CLI = new URL("../../../pipeline/cli.ts", import.meta.url).pathname;

// big ──┬── report  (reads small.txt only; shows records, like the study's report)
//       └── score   (reads big.bin)
const FILES: Record<string, string> = {
  "stages.ts": `export const STAGES = [
  { name: "big", doc: "", deps: [], module: "big.ts", outputs: ["small.txt", "big.bin"], params: {} },
  { name: "report", doc: "", deps: ["big"], reads: { big: ["small.txt"] }, module: "report.ts",
    outputs: ["report.txt"], params: {}, readsRecords: true },
  { name: "score", doc: "", deps: ["big"], reads: { big: ["big.bin"] }, module: "score.ts",
    outputs: ["score.txt"], params: {} },
];`,
  "big.ts": `export async function run(ctx) {
  await Deno.writeFile(ctx.outDir + "/big.bin", new Uint8Array(9 << 20).map((_, i) => i % 253));
  await Deno.writeTextFile(ctx.outDir + "/small.txt", "small");
  await Deno.writeTextFile(ctx.root + "/big.ran", "x", { append: true });
  return {};
}`,
  "report.ts": `export async function run(ctx) {
  const s = await Deno.readTextFile(ctx.inputs.big + "/small.txt");
  await Deno.writeTextFile(ctx.outDir + "/report.txt", "report of " + s);
  return {};
}`,
  "score.ts": `export async function run(ctx) {
  const b = await Deno.readFile(ctx.inputs.big + "/big.bin");
  await Deno.writeTextFile(ctx.outDir + "/score.txt", String(b.length + b[1000]));
  return {};
}`,
};

async function project(): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "thin-deps-" });
  for (const [rel, text] of Object.entries(FILES)) await Deno.writeTextFile(join(root, rel), text);
  return root;
}

async function engineFor(root: string, logs: string[] = []) {
  const { STAGES } = await import(`file://${root}/stages.ts?${crypto.randomUUID()}`);
  return Engine.open({ root, defs: STAGES as StageDef[], cacheDir: join(root, ".cache"), log: (l) => logs.push(l) });
}

const outcomes = (rs: StageResult[]) => Object.fromEntries(rs.map((r) => [r.stage, r.outcome]));
const ran = (root: string) => Deno.readTextFile(join(root, "big.ran")).then((t) => t.length, () => 0);

/** A trained project pushed to its committed folder remote, then its cache dropped: a fresh clone. */
async function thinClone(): Promise<string> {
  const root = await project();
  await (await engineFor(root)).reproduce();
  await (await engineFor(root)).push();
  await Deno.remove(join(root, ".cache"), { recursive: true });
  await Deno.remove(join(root, "big.ran"));
  return root;
}

/** What status predicts, then what reproduce does: the same action for every stage. */
async function predictThenRun(root: string, ro: ReproduceOptions = {}, logs: string[] = []) {
  const predicted = await (await engineFor(root)).reproduce({ ...ro, dryRun: true });
  const done = await (await engineFor(root, logs)).reproduce(ro);
  assert.deepEqual(outcomes(done), outcomes(predicted), "reproduce did what status predicted");
  return { predicted, done };
}

Deno.test("a clone changes a stage that reads no thin file in seconds: nothing rebuilt, as predicted", async () => {
  const root = await thinClone();
  try {
    const status = await (await engineFor(root)).status();
    assert.deepEqual(outcomes(status), {
      big: "restore from remote",
      report: "restore from remote",
      score: "restore from remote",
    });
    assert.deepEqual(status[0].reasons, ["thin: big.bin only in a shared remote, read by score"]);
    await predictThenRun(root);

    await Deno.writeTextFile(join(root, "report.ts"), FILES["report.ts"].replace('"report of "', '"the report of "'));
    const { predicted } = await predictThenRun(root);
    assert.deepEqual(outcomes(predicted), { big: "up to date", report: "run", score: "up to date" });
    assert.equal(await ran(root), 0, "big was not rebuilt: report does not read big.bin");
    assert.equal(await Deno.readTextFile(join(root, "out/report/report.txt")), "the report of small");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a stage that reads a thin file: its run is rebuilt at its place, predicted with its cost, in the same words", async () => {
  const root = await thinClone();
  try {
    await Deno.writeTextFile(join(root, "score.ts"), FILES["score.ts"].replace("b.length + b[1000]", "b[1000]"));
    const logs: string[] = [];
    const { predicted } = await predictThenRun(root, {}, logs);
    const big = predicted.find((r) => r.stage === "big")!;
    assert.equal(big.outcome, "rebuild");
    assert.match(big.reasons[0], /^big\.bin: read by score; about \d+s, from its record$/);
    assert.ok(logs.includes(`↻ big: rebuilding (${big.reasons[0]})`), logs.join("\n"));
    assert.ok(logs.some((l) => /^✓ big: rebuilt in .*, the same bits as its recorded run$/.test(l)));
    assert.equal(await ran(root), 1);
    assert.equal(await Deno.readTextFile(join(root, "out/score/score.txt")), String(1000 % 253));

    // The rebuilt run is the recorded one, completed: same entry, so the lock and what reads records stay.
    const status = await (await engineFor(root)).status();
    assert.deepEqual(outcomes(status), { big: "up to date", report: "up to date", score: "up to date" });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("--force of a thin run with the same bits completes it and keeps its record: nothing downstream reruns", async () => {
  const root = await thinClone();
  try {
    await (await engineFor(root)).reproduce();
    const before = JSON.parse(await Deno.readTextFile(join(root, "pipeline/lock.json"))).stages.big;
    const logs: string[] = [];
    await (await engineFor(root, logs)).reproduce({ targets: ["big"], force: true });
    assert.ok(
      logs.some((l) => /^✓ big: rerun in .*, the same bits as its cached run \(its record kept\)$/.test(l)),
      logs.join("\n"),
    );
    const after = JSON.parse(await Deno.readTextFile(join(root, "pipeline/lock.json"))).stages.big;
    assert.deepEqual(after, before, "the lock names the same run, record and all");
    const { predicted } = await predictThenRun(root);
    assert.deepEqual(outcomes(predicted), { big: "up to date", report: "up to date", score: "up to date" });
    assert.equal(await ran(root), 1, "only the forced run");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("rebuilds above the limit are listed and wait for --rebuild-thin; --whole and --verify fill their inputs", async () => {
  const root = await thinClone();
  const run = async (args: string[]) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", CLI, "--root", root, "--pipeline", join(root, "stages.ts"), ...args],
      env: { PIPELINE_CACHE: join(root, ".cache"), PIPELINE_ASK_ABOVE_S: "0", NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = (b: Uint8Array) => new TextDecoder().decode(b);
    return { code: out.code, stderr: text(out.stderr) + text(out.stdout) };
  };
  try {
    await Deno.writeTextFile(join(root, "score.ts"), FILES["score.ts"].replace("b.length + b[1000]", "b[1000]"));
    const asked = await run(["reproduce"]);
    assert.equal(asked.code, 1);
    assert.match(asked.stderr, /^ {2}↻ big: rebuild \(big\.bin: read by score; about \d+s, from its record\)$/m);
    assert.match(asked.stderr, /error: reproduce would rebuild 1 thin run .* `deno task reproduce --rebuild-thin`/);
    assert.equal(await ran(root), 0, "nothing started");
    const status = await run(["status"]);
    assert.match(
      status.stderr,
      /^3 stages, would: 1 rebuild \(about \d+s from their records\), 1 restore from remote, 1 run \(about \d+s from their last runs\)$/m,
    );

    const verify = await run(["reproduce", "--verify", "report", "--rebuild-thin"]);
    assert.equal(verify.code, 0, verify.stderr);
    assert.equal(await ran(root), 0, "report reads no thin file: nothing rebuilt to verify it");
    const verifyScore = await run(["reproduce", "--verify", "score"]);
    assert.equal(verifyScore.code, 1, "score's run under its new key is not cached: nothing to verify");
    assert.match(verifyScore.stderr, /no cached run under its current key/);

    const gone = await run(["reproduce", "--rebuild-thin"]);
    assert.equal(gone.code, 0, gone.stderr);
    assert.match(gone.stderr, /↻ big: rebuilding \(big\.bin: read by score/);
    assert.equal(await ran(root), 1);

    // --whole: a clone makes a thin run whole on request (the data stages: `reproduce preprocess --whole`).
    await Deno.remove(join(root, ".cache"), { recursive: true });
    const whole = await run(["reproduce", "big", "--whole", "--rebuild-thin"]);
    assert.equal(whole.code, 0, whole.stderr);
    assert.match(whole.stderr, /↻ big: rebuilding \(big\.bin: read by --whole; about/);
    assert.equal((await Deno.stat(join(root, "out/big/big.bin"))).size, 9 << 20);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("--verify on a clone rebuilds the thin inputs it reads first, and says so", async () => {
  const root = await thinClone();
  try {
    await (await engineFor(root)).reproduce();
    const logs: string[] = [];
    const [result] = await (await engineFor(root, logs)).verify(["score"]);
    assert.equal(result.identical, true, result.difference ?? result.refused);
    assert.ok(logs.some((l) => /^↻ big: rebuilding \(big\.bin: read by score; about/.test(l)), logs.join("\n"));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("accept carries a thin run over a code change that keeps its outputs: still thin, its absent file by hash", async () => {
  const root = await thinClone();
  try {
    await (await engineFor(root)).reproduce({ targets: ["report"] }); // big restored thin: big.bin absent
    const path = join(root, "big.ts");
    await Deno.writeTextFile(
      path,
      (await Deno.readTextFile(path)).replace("return {};", "const same = {};\n  return same;"),
    );
    const engine = await engineFor(root);
    const [result] = await engine.accept(["big"]);
    assert.equal(result.stage, "big");
    const lock = JSON.parse(await Deno.readTextFile(join(root, "pipeline/lock.json")));
    const entry = JSON.parse(await Deno.readTextFile(join(root, ".cache/runs", `${lock.stages.big.key}.json`)));
    assert.deepEqual(entry.absent, ["big.bin"]);
    assert.ok(entry.outputs["big.bin"].hash, "the absent file is named by its hash");
    // The report shows records (the accepted run's is new); score was never restored on this clone.
    assert.deepEqual(outcomes(await (await engineFor(root)).status()), {
      big: "up to date",
      report: "run",
      score: "restore from remote",
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a rebuild of a carried-over thin run whose small files changed keeps the recorded files with its entry", async () => {
  // big also writes a training curve: accept compares a carry-over on it, not on small.txt.
  const curve = (label: string) =>
    FILES["big.ts"].replace('"small"', `"small ${label}"`).replace(
      "return {};",
      `await Deno.writeTextFile(ctx.outDir + "/history.json", JSON.stringify({ evals: [{ step: 1, trainLoss: 1 }] }));
  return {};`,
    );
  const root = await project();
  try {
    await Deno.writeTextFile(
      join(root, "stages.ts"),
      FILES["stages.ts"].replace('"big.bin"]', '"big.bin", "history.json"]'),
    );
    await Deno.writeTextFile(join(root, "big.ts"), curve("v1"));
    await (await engineFor(root)).reproduce();
    await (await engineFor(root)).push();
    await Deno.remove(join(root, ".cache"), { recursive: true });
    await (await engineFor(root)).reproduce({ targets: ["report"] }); // big restored thin: big.bin absent
    await Deno.writeTextFile(join(root, "big.ts"), curve("v2")); // same curve and big.bin, another small.txt
    const [accepted] = await (await engineFor(root)).accept(["big"], 1);
    assert.equal(accepted.identical, true, accepted.difference ?? accepted.refused);
    const key = JSON.parse(await Deno.readTextFile(join(root, "pipeline/lock.json"))).stages.big.key;
    const recorded = JSON.parse(await Deno.readTextFile(join(root, ".cache/runs", `${key}.json`)));

    // score reads big.bin: big is rebuilt under its key by the v2 code.
    await Deno.writeTextFile(join(root, "score.ts"), FILES["score.ts"].replace("b.length + b[1000]", "b[1000]"));
    const logs: string[] = [];
    await (await engineFor(root, logs)).reproduce();
    assert.ok(
      logs.some((l) =>
        /^✓ big: rebuilt in .*, big\.bin the same bits as its recorded run; small\.txt kept from the recorded run \(today's code writes other bytes there/
          .test(l)
      ),
      logs.join("\n"),
    );
    const entry = JSON.parse(await Deno.readTextFile(join(root, ".cache/runs", `${key}.json`)));
    const { absent: _, ...whole } = recorded;
    assert.deepEqual(entry, whole, "the recorded run, completed");
    for (const [rel, { hash }] of Object.entries(entry.outputs as Record<string, { hash: string }>)) {
      assert.equal(await hashFile(join(root, "out/big", rel)), hash, `out/big/${rel} is what its entry says`);
    }
    assert.equal(await Deno.readTextFile(join(root, "out/big/small.txt")), "small v1");
    assert.equal(await Deno.readTextFile(join(root, "out/report/report.txt")), "report of small v1");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a stage that opens an upstream file it does not declare fails, naming the declaration", async () => {
  const root = await project();
  try {
    await Deno.writeTextFile(
      join(root, "stages.ts"),
      FILES["stages.ts"].replace('reads: { big: ["big.bin"] }', 'reads: { big: ["small.txt"] }'),
    );
    await assert.rejects(
      (await engineFor(root)).reproduce(),
      (e: Error) =>
        e instanceof PipelineError &&
        /score read big\.bin of big, which its declaration does not list among the files it reads/.test(e.message) &&
        /add "big\.bin" to the stage's reads of big/.test(e.fix),
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("reads must name a dep and outputs it declares", () => {
  const base = (reads: Record<string, string[]>): StageDef[] => [
    { name: "up", doc: "", deps: [], module: "u.ts", outputs: ["a.txt"], params: {} },
    { name: "down", doc: "", deps: ["up"], reads, module: "d.ts", outputs: ["d.txt"], params: {} },
  ];
  assert.throws(() => new Graph(base({ other: ["a.txt"] })), /down reads from other, which is not among its deps/);
  assert.throws(() => new Graph(base({ up: ["b.txt"] })), /down reads b\.txt of up, which up does not declare/);
  assert.deepEqual(new Graph(base({ up: ["a.txt"] })).nodes.get("down")!.reads, { up: ["a.txt"] });
});
