// The engine on toy pipelines in temporary projects: caching, staleness and
// its reasons, parallel jobs, crash safety, corruption, concurrent runs.
import assert from "node:assert/strict";
import { join } from "node:path";
import { Engine, type StageResult } from "../../../pipeline/engine/engine.ts";
import type { Override } from "../../../pipeline/engine/graph.ts";
import { PipelineError, type StageDef } from "../../../pipeline/types.ts";

const CLI = new URL("../../../pipeline/cli.ts", import.meta.url).pathname;

// a ──┐
//     ├── c      a imports lib/util.ts, which imports lib/deep.ts
// b ──┘          b is independent of lib/
const TOY_STAGES = `
export const STAGES = [
  { name: "a", doc: "", deps: [], module: "a.ts", outputs: ["a.txt"], params: { n: { type: "int", default: 1, doc: "" } } },
  { name: "b", doc: "", deps: [], module: "b.ts", outputs: ["b.txt"], params: { wait: { type: "bool", default: false, doc: "" } } },
  { name: "c", doc: "", deps: ["a", "b"], module: "c.ts", outputs: ["c.txt"], params: {} },
];
`;

const EVENTS = `
export async function event(root, text) {
  await Deno.writeTextFile(root + "/events.log", text + "\\n", { append: true });
}
export async function rendezvous(root, me, other) {
  // Proves two stages run at once: each waits until the other has started.
  await Deno.writeTextFile(root + "/" + me + ".started", "");
  for (let i = 0; i < 200; i++) {
    try { await Deno.stat(root + "/" + other + ".started"); return; } catch { await new Promise((r) => setTimeout(r, 50)); }
  }
  throw new Error(me + " waited 10 s for " + other + ": not run in parallel");
}
`;

const FILES: Record<string, string> = {
  "stages.ts": TOY_STAGES,
  "events.ts": EVENTS,
  "lib/deep.ts": `export const factor = 10;\n`,
  "lib/util.ts": `import { factor } from "./deep.ts";\nexport const scale = (n) => n * factor;\n`,
  "a.ts": `import { scale } from "./lib/util.ts";
import { event, rendezvous } from "./events.ts";
export async function run(ctx) {
  await event(ctx.root, "start a");
  if (Deno.env.get("TOY_RENDEZVOUS")) await rendezvous(ctx.root, "a", "b");
  if (Deno.env.get("TOY_SLOW")) await new Promise((r) => setTimeout(r, 1500));
  try {
    await Deno.stat(ctx.checkpointDir + "/half");
    await event(ctx.root, "resumed a");
  } catch { /* a fresh start */ }
  if (Deno.env.get("TOY_HANG")) {
    await Deno.writeTextFile(ctx.checkpointDir + "/half", "");
    await Deno.writeTextFile(ctx.outDir + "/a.txt", "partial");
    await Deno.writeTextFile(ctx.root + "/a.hanging", String(Deno.pid));
    const end = Date.now() + 60_000;
    while (Date.now() < end) { /* busy, like a training loop: no timer of its own can fire */ }
  }
  await Deno.writeTextFile(ctx.outDir + "/a.txt", String(scale(ctx.params.n)));
  await event(ctx.root, "end a");
  return { value: scale(ctx.params.n) };
}
`,
  "b.ts": `import { event, rendezvous } from "./events.ts";
export async function run(ctx) {
  await event(ctx.root, "start b");
  if (Deno.env.get("TOY_RENDEZVOUS")) await rendezvous(ctx.root, "b", "a");
  await Deno.writeTextFile(ctx.outDir + "/b.txt", "b");
  await event(ctx.root, "end b");
  return {};
}
`,
  "c.ts": `import { event } from "./events.ts";
export async function run(ctx) {
  await event(ctx.root, "start c");
  const a = await Deno.readTextFile(ctx.inputs.a + "/a.txt");
  const b = await Deno.readTextFile(ctx.inputs.b + "/b.txt");
  await Deno.writeTextFile(ctx.outDir + "/c.txt", a + "+" + b);
  await event(ctx.root, "end c");
  return {};
}
`,
};

async function toyProject(): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "engine-test-" });
  for (const [rel, text] of Object.entries(FILES)) {
    await Deno.mkdir(join(root, rel, ".."), { recursive: true });
    await Deno.writeTextFile(join(root, rel), text);
  }
  return root;
}

async function engineFor(root: string, overrides: Override[] = [], logs: string[] = []) {
  const { STAGES } = await import(`file://${root}/stages.ts?${crypto.randomUUID()}`);
  return Engine.open({ root, defs: STAGES as StageDef[], overrides, log: (l) => logs.push(l) });
}

async function events(root: string): Promise<string[]> {
  try {
    return (await Deno.readTextFile(join(root, "events.log"))).trim().split("\n");
  } catch {
    return [];
  }
}

async function clearEvents(root: string) {
  await Deno.remove(join(root, "events.log")).catch(() => {});
}

/** Alive and not a zombie (an orphan's exit is reaped by whoever is init here). */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(Deno.readTextFileSync(`/proc/${pid}/stat`));
  } catch {
    return false;
  }
}

const outcomes = (rs: StageResult[]) => Object.fromEntries(rs.map((r) => [r.stage, r.outcome]));

function cli(root: string, args: string[], env: Record<string, string> = {}) {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, "--root", root, "--pipeline", join(root, "stages.ts"), ...args],
    env,
    stdout: "piped",
    stderr: "piped",
  });
}

Deno.test("a cache hit does not rerun; outputs flow downstream", async () => {
  const root = await toyProject();
  const first = await (await engineFor(root)).reproduce();
  assert.deepEqual(outcomes(first), { a: "run", b: "run", c: "run" });
  assert.equal(await Deno.readTextFile(join(root, "out/c/c.txt")), "10+b");
  await clearEvents(root);
  const second = await (await engineFor(root)).reproduce();
  assert.deepEqual(outcomes(second), { a: "up to date", b: "up to date", c: "up to date" });
  assert.deepEqual(await events(root), []);
  const lock = JSON.parse(await Deno.readTextFile(join(root, "pipeline/lock.json")));
  assert.equal(lock.stages.a.metrics.value, 10);
  assert.ok(lock.stages.a.code["lib/deep.ts"], "the lock records the import closure");
});

Deno.test("editing a file two imports down reruns exactly the affected stages, and status names it", async () => {
  const root = await toyProject();
  await (await engineFor(root)).reproduce();
  await Deno.writeTextFile(join(root, "lib/deep.ts"), "export const factor = 100;\n");
  const status = await (await engineFor(root)).status();
  const a = status.find((s) => s.stage === "a")!;
  assert.equal(a.outcome, "run");
  assert.deepEqual(a.reasons, ["code: lib/deep.ts changed"]);
  assert.equal(status.find((s) => s.stage === "b")!.outcome, "up to date");
  const c = status.find((s) => s.stage === "c")!;
  assert.deepEqual(c.reasons, ["upstream a is stale"]);
  // Its cost is known before its key: its last run's time.
  const lock = JSON.parse(await Deno.readTextFile(join(root, "pipeline/lock.json")));
  assert.deepEqual([a.seconds, c.seconds], [lock.stages.a.wallSeconds, lock.stages.c.wallSeconds]);
  await clearEvents(root);
  const logs: string[] = [];
  const rerun = await (await engineFor(root, [], logs)).reproduce();
  assert.deepEqual(outcomes(rerun), { a: "run", b: "up to date", c: "run" });
  assert.ok(logs.some((l) => l.includes("▶ a: running (code: lib/deep.ts changed)")), logs.join("\n"));
  assert.ok(logs.some((l) => l.includes("▶ c: running (input a changed)")), logs.join("\n"));
  assert.equal(await Deno.readTextFile(join(root, "out/c/c.txt")), "100+b");
});

Deno.test("a parameter change reruns that stage and its downstream only; going back restores from the run-cache", async () => {
  const root = await toyProject();
  await (await engineFor(root)).reproduce();
  await clearEvents(root);
  const changed = await (await engineFor(root, [{ target: "a", param: "n", raw: "3" }])).reproduce();
  assert.deepEqual(outcomes(changed), { a: "run", b: "up to date", c: "run" });
  assert.deepEqual(changed[0].reasons, ["param n: 1 → 3"]);
  assert.equal(await Deno.readTextFile(join(root, "out/c/c.txt")), "30+b");
  await clearEvents(root);
  const back = await (await engineFor(root)).reproduce();
  assert.deepEqual(outcomes(back), { a: "restore from cache", b: "up to date", c: "restore from cache" });
  assert.deepEqual(await events(root), [], "a combination seen before is restored, not rerun");
  assert.equal(await Deno.readTextFile(join(root, "out/c/c.txt")), "10+b");
});

Deno.test("a cached run the lock does not name yet is restored as new to the lock, not as never run", async () => {
  // As when another checkout's runs share this cache (a newly declared seed trained in a worktree).
  const root = await toyProject();
  try {
    await (await engineFor(root)).reproduce();
    await Deno.remove(join(root, "pipeline/lock.json"));
    await clearEvents(root);
    const predicted = await (await engineFor(root)).status();
    const logs: string[] = [];
    const done = await (await engineFor(root, [], logs)).reproduce();
    for (const rs of [predicted, done]) {
      assert.deepEqual(outcomes(rs), { a: "restore from cache", b: "restore from cache", c: "restore from cache" });
      assert.deepEqual(rs[0].reasons, ["not yet in the lock file"]);
    }
    assert.ok(logs.includes("✓ a: restored from cache (not yet in the lock file)"), logs.join("\n"));
    assert.deepEqual(await events(root), [], "nothing ran");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("--jobs 2 runs independent stages at the same time", async () => {
  const root = await toyProject();
  const run = await cli(root, ["reproduce", "--jobs", "2"], { TOY_RENDEZVOUS: "1" }).output();
  assert.equal(run.code, 0, new TextDecoder().decode(run.stderr));
  const ev = await events(root);
  // Both started before either ended (each waited for the other to start).
  assert.deepEqual(ev.slice(0, 2).sort(), ["start a", "start b"]);
  assert.deepEqual(ev.slice(-2), ["start c", "end c"]);
});

Deno.test("SIGKILL during a stage leaves no trusted entry; a rerun gives the right result", async () => {
  const root = await toyProject();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, "--root", root, "--pipeline", join(root, "stages.ts"), "reproduce", "a"],
    env: { TOY_HANG: "1" },
    stdout: "null", // an orphaned worker would hold pipes open
    stderr: "null",
  }).spawn();
  for (let i = 0; i < 200; i++) {
    try {
      await Deno.stat(join(root, "a.hanging"));
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  child.kill("SIGKILL");
  await child.status;
  const orphan = Number(await Deno.readTextFile(join(root, "a.hanging")));
  const runs = [...Deno.readDirSync(join(root, ".cache/runs"))];
  assert.deepEqual(runs, [], "no run entry after a kill");
  const rerun = await (await engineFor(root)).reproduce({ targets: ["a"] });
  assert.ok(!running(orphan), "the killed run's busy worker was stopped");
  assert.deepEqual(outcomes(rerun), { a: "run" });
  assert.ok((await events(root)).includes("resumed a"), "the rerun resumed from the killed run's checkpoint");
  assert.equal(await Deno.readTextFile(join(root, "out/a/a.txt")), "10");
  assert.deepEqual([...Deno.readDirSync(join(root, ".cache/tmp"))], [], "the killed run's temporary files are gone");
});

Deno.test("a flipped byte in a cached artefact is detected and rebuilt", async () => {
  const root = await toyProject();
  const first = await (await engineFor(root)).reproduce();
  const file = join(root, ".cache/trees", first[0].key!, "a.txt");
  await Deno.chmod(file, 0o644);
  const bytes = await Deno.readFile(file);
  bytes[0] ^= 1;
  await Deno.writeFile(file, bytes);
  const logs: string[] = [];
  const again = await (await engineFor(root, [], logs)).reproduce();
  assert.equal(outcomes(again).a, "run");
  assert.ok(logs.some((l) => /✗ a: cached a\.txt is corrupt/.test(l)), logs.join("\n"));
  assert.equal(await Deno.readTextFile(join(root, "out/c/c.txt")), "10+b");
  assert.equal(outcomes(again).c, "up to date", "same bytes rebuilt: downstream stays valid");
});

Deno.test("two concurrent reproduce runs both finish with the right result, building each stage once", async () => {
  const root = await toyProject();
  const env = { TOY_SLOW: "1" };
  const [one, two] = await Promise.all([
    cli(root, ["reproduce"], env).output(),
    cli(root, ["reproduce"], env).output(),
  ]);
  const err = (o: Deno.CommandOutput) => new TextDecoder().decode(o.stderr);
  assert.equal(one.code, 0, err(one));
  assert.equal(two.code, 0, err(two));
  assert.equal(await Deno.readTextFile(join(root, "out/c/c.txt")), "10+b");
  assert.equal((await events(root)).filter((e) => e === "start a").length, 1);
  assert.ok(/waiting for another reproduce/.test(err(one) + err(two)), err(one) + err(two));
});

Deno.test("bad input: one-line errors, non-zero exit", async () => {
  const root = await toyProject();
  const cases: Array<[string[], RegExp]> = [
    [["reproduce", "nope"], /^error: unknown stage nope — use one of: a, b, c/],
    [["reproduce", "--set", "a.n=abc"], /^error: a\.n=abc: expected an integer/],
    [["reproduce", "--set", "a.zzz=1"], /^error: unknown parameter a\.zzz — a takes: n/],
    [["reproduce", "--set", "oops"], /^error: --set oops: not of the form stage\.param=value/],
    [["reproduce", "c", "--single"], /^error: c needs the outputs of a, which are not in the cache/],
    [["frobnicate"], /^error: unknown command frobnicate/],
  ];
  for (const [args, pattern] of cases) {
    const out = await cli(root, args).output();
    const stderr = new TextDecoder().decode(out.stderr).trim();
    assert.notEqual(out.code, 0, args.join(" "));
    assert.match(stderr, pattern);
    assert.equal(stderr.split("\n").length, 1, `one line for ${args.join(" ")}: ${stderr}`);
  }
});

Deno.test("graph errors: cycles, unknown deps, a stage that fails or skips a declared output", async () => {
  const root = await toyProject();
  const def = (name: string, deps: string[], module = "b.ts", outputs = ["b.txt"]): StageDef => ({
    name,
    doc: "",
    deps,
    module,
    outputs,
    params: {},
  });
  await assert.rejects(
    Engine.open({ root, defs: [def("x", ["y"]), def("y", ["x"])] }),
    (e: PipelineError) => /dependency cycle: (x → y → x|y → x → y)/.test(e.message),
  );
  await assert.rejects(
    Engine.open({ root, defs: [def("x", ["missing"])] }),
    (e: PipelineError) => /x depends on unknown stage missing/.test(e.message),
  );
  await Deno.writeTextFile(join(root, "bad.ts"), `export async function run() { throw new Error("boom"); }`);
  const failing = await Engine.open({ root, defs: [def("x", [], "bad.ts")], log: () => {} });
  await assert.rejects(failing.reproduce(), (e: PipelineError) => /stage x crashed: boom/.test(e.message));
  const skipping = await Engine.open({ root, defs: [def("x", [], "b.ts", ["other.txt"])], log: () => {} });
  await assert.rejects(
    skipping.reproduce(),
    (e: PipelineError) => /stage x did not write its declared output other\.txt/.test(e.message),
  );
  assert.deepEqual([...Deno.readDirSync(join(root, ".cache/runs"))], [], "nothing cached from failed runs");
});

Deno.test("pushed runs are restored from the committed remote on a machine without the cache", async () => {
  const root = await toyProject();
  await (await engineFor(root)).reproduce();
  const { pushed } = await (await engineFor(root)).push();
  assert.deepEqual(pushed.sort(), ["a", "b", "c"]);
  await Deno.remove(join(root, ".cache"), { recursive: true });
  await clearEvents(root);
  const again = await (await engineFor(root)).reproduce();
  assert.deepEqual(outcomes(again), { a: "restore from remote", b: "restore from remote", c: "restore from remote" });
  assert.deepEqual(await events(root), [], "nothing retrained");
  assert.equal(await Deno.readTextFile(join(root, "out/c/c.txt")), "10+b");
  // A tampered remote object is refused (and the stage rebuilt), never trusted.
  await Deno.remove(join(root, ".cache"), { recursive: true });
  const entry = JSON.parse(await Deno.readTextFile(join(root, "pipeline/lock.json"))).stages.a;
  const hash = entry.outputs["a.txt"];
  await Deno.writeTextFile(join(root, "pipeline/remote/objects", hash.slice(0, 2), hash.slice(2)), "666");
  const status = await (await engineFor(root)).status(["a"]);
  assert.equal(status[0].outcome, "run", "a damaged remote run is not restorable");
  const rebuilt = await (await engineFor(root)).reproduce({ targets: ["a"] });
  assert.equal(outcomes(rebuilt).a, "run");
  assert.equal(await Deno.readTextFile(join(root, "out/a/a.txt")), "10");
});

Deno.test("--partial runs a stage from the upstream outputs cached so far, leaving the rest out", async () => {
  const root = await toyProject();
  await Deno.writeTextFile(
    join(root, "d.ts"),
    `export async function run(ctx) { await Deno.writeTextFile(ctx.outDir + "/d.txt", Object.keys(ctx.inputs).join(",")); return {}; }`,
  );
  const { STAGES } = await import(`file://${root}/stages.ts`);
  const defs = [...STAGES, { name: "d", doc: "", deps: ["a", "b"], module: "d.ts", outputs: ["d.txt"], params: {} }];
  const engine = () => Engine.open({ root, defs, log: () => {} });
  await (await engine()).reproduce({ targets: ["a"] });
  await assert.rejects((await engine()).reproduce({ targets: ["d"], single: true }), /d needs the outputs of b/);
  const partial = await (await engine()).reproduce({ targets: ["d"], single: true, partial: true });
  assert.deepEqual(outcomes(partial), { d: "run" });
  assert.equal(await Deno.readTextFile(join(root, "out/d/d.txt")), "a");
});

Deno.test({
  name: "a full disk during a stage: one-line error, non-zero exit, nothing cached",
  // /dev/full answers every write with ENOSPC, the error a full disk gives.
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const root = await toyProject();
    await Deno.writeTextFile(
      join(root, "full.ts"),
      `export async function run(ctx) {
  await Deno.writeTextFile(ctx.outDir + "/f.txt", "half");
  await Deno.writeTextFile("/dev/full", "x".repeat(1 << 16));
  return {};
}`,
    );
    await Deno.writeTextFile(
      join(root, "stages.ts"),
      `export const STAGES = [{ name: "f", doc: "", deps: [], module: "full.ts", outputs: ["f.txt"], params: {} }];`,
    );
    const out = await cli(root, ["reproduce"]).output();
    const stderr = new TextDecoder().decode(out.stderr).trim().split("\n");
    assert.notEqual(out.code, 0);
    assert.match(stderr.at(-1)!, /^error: f: disk full writing \/dev\/full: needs more .*— free disk space/);
    assert.deepEqual([...Deno.readDirSync(join(root, ".cache/runs"))], [], "nothing cached");
    await assert.rejects(Deno.stat(join(root, "out/f/f.txt")), "no half-written output published");
  },
});

Deno.test("a run with files over 8 MiB is restored thin from the committed remote, and rebuilt (checked) when a stage downstream runs", async () => {
  const root = await Deno.makeTempDir({ prefix: "engine-thin-" });
  const files: Record<string, string> = {
    "stages.ts": `export const STAGES = [
  { name: "big", doc: "", deps: [], module: "big.ts", outputs: ["small.txt", "big.bin"], params: {} },
  { name: "use", doc: "", deps: ["big"], module: "use.ts", outputs: ["use.txt"], params: { k: { type: "int", default: 1, doc: "" } } },
];`,
    "big.ts": `export async function run(ctx) {
  const drift = Deno.env.get("TOY_DRIFT") ? 1 : 0;
  await Deno.writeFile(ctx.outDir + "/big.bin", new Uint8Array(9 << 20).map((_, i) => (i + drift) % 253));
  await Deno.writeTextFile(ctx.outDir + "/small.txt", "small");
  await Deno.writeTextFile(ctx.root + "/big.ran", "x", { append: true });
  return {};
}`,
    "use.ts": `export async function run(ctx) {
  const b = await Deno.readFile(ctx.inputs.big + "/big.bin");
  await Deno.writeTextFile(ctx.outDir + "/use.txt", b.length + ":" + b[1000] + ":" + ctx.params.k);
  return {};
}`,
  };
  for (const [rel, text] of Object.entries(files)) await Deno.writeTextFile(join(root, rel), text);
  const ran = () => Deno.readTextFile(join(root, "big.ran")).then((t) => t.length, () => 0);
  try {
    await (await engineFor(root)).reproduce();
    assert.deepEqual((await (await engineFor(root)).push()).pushed.sort(), ["big", "use"]);
    const stored = JSON.parse(await Deno.readTextFile(join(root, "pipeline/lock.json"))).stages.big.outputs;
    const object = (h: string) => join(root, "pipeline/remote/objects", h.slice(0, 2), h.slice(2));
    await Deno.stat(object(stored["small.txt"]));
    await assert.rejects(Deno.stat(object(stored["big.bin"])), Deno.errors.NotFound, "git keeps files ≤ 8 MiB");

    // A clone: both restored, big.bin not; status says so; nothing runs.
    await Deno.remove(join(root, ".cache"), { recursive: true });
    await Deno.remove(join(root, "big.ran"));
    const status = await (await engineFor(root)).status();
    assert.deepEqual(status[0].reasons, ["thin: big.bin only in a shared remote, read by use"]);
    const restored = await (await engineFor(root)).reproduce();
    assert.deepEqual(outcomes(restored), { big: "restore from remote", use: "restore from remote" });
    assert.equal(await ran(), 0);
    assert.equal(await Deno.readTextFile(join(root, "out/big/small.txt")), "small");

    // use must run (a new parameter value): big is rebuilt under its key, its bytes checked against the record.
    const logs: string[] = [];
    const k2 = [{ target: "use", param: "k", value: 2, source: "test" }];
    const rerun = await (await engineFor(root, k2, logs)).reproduce();
    assert.deepEqual(outcomes(rerun), { big: "rebuild", use: "run" });
    assert.equal(await ran(), 1);
    assert.ok(logs.some((l) => /↻ big: rebuilding \(big\.bin: read by use; about/.test(l)), logs.join("\n"));
    assert.ok(logs.some((l) => /✓ big: rebuilt in .*, the same bits as its recorded run/.test(l)));
    assert.equal(await Deno.readTextFile(join(root, "out/use/use.txt")), `${9 << 20}:${1000 % 253}:2`);

    // A rebuild that gives other bytes is a determinism bug: refused, named.
    await Deno.remove(join(root, ".cache"), { recursive: true });
    await (await engineFor(root)).reproduce(); // thin again
    Deno.env.set("TOY_DRIFT", "1");
    const k3 = [{ target: "use", param: "k", value: 3, source: "test" }];
    await assert.rejects(
      (await engineFor(root, k3)).reproduce(),
      (e: Error) => e instanceof PipelineError && /big: NOT DETERMINISTIC .* big\.bin \(sha256\)/.test(e.message),
    );
  } finally {
    Deno.env.delete("TOY_DRIFT");
    await Deno.remove(root, { recursive: true });
  }
});
