// Same inputs, same bits: `reproduce --verify` / `--verify-steps`, `accept` after a code
// change, `--force` refusing different outputs under one key, and transport-only parameters
// (where data comes from is not part of any key), on a toy project in a temporary folder.
import assert from "node:assert/strict";
import { join } from "node:path";

const CLI = new URL("../../../pipeline/cli.ts", import.meta.url).pathname;

// "src" has a transport-only url; "train" writes a training curve (an evaluation every 2 steps,
// a weights digest) and honours ctx.stopAfterSteps; TOY_NOISE makes its numbers machine-dependent.
const FILES: Record<string, string> = {
  "stages.ts": `
export const STAGES = [
  { name: "src", doc: "", deps: [], module: "src.ts", outputs: ["data.txt"], params: {
    url: { type: "string", default: "http://a.example/data", doc: "", transport: true },
    n: { type: "int", default: 4, doc: "" } } },
  { name: "train", doc: "", deps: ["src"], module: "train.ts", outputs: ["history.json"], params: {
    steps: { type: "int", default: 7, doc: "" }, lr: { type: "float", default: 0.5, doc: "" } } },
];
`,
  "src.ts": `export async function run(ctx) {
  await Deno.writeTextFile(ctx.outDir + "/data.txt", String(ctx.params.n));
  return {};
}
`,
  "rate.ts": `export const decay = 0.5;\n`,
  "train.ts": `import { decay } from "./rate.ts";
export async function run(ctx) {
  const n = Number(await Deno.readTextFile(ctx.inputs.src + "/data.txt"));
  const noise = Deno.env.get("TOY_NOISE") ? 1e-9 : 0;
  let w = n, evals = [];
  for (let i = 0; i < ctx.params.steps; i++) {
    w = w - ctx.params.lr * decay * w + (i === 3 ? noise : 0);
    if (i % 2 === 0 || i === ctx.params.steps - 1) {
      evals.push({ step: i + 1, trainLoss: w, trainAcc: 0, testLoss: w * w, testAcc: 0, weights: String(w) });
    }
    if (ctx.stopAfterSteps === i + 1) break;
  }
  await Deno.writeTextFile(ctx.outDir + "/history.json", JSON.stringify({ evals, final: evals.at(-1) }));
  ctx.record({ trainSeconds: Math.random() });
  return { w };
}
`,
};

async function toy(): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "verify-test-" });
  for (const [rel, text] of Object.entries(FILES)) await Deno.writeTextFile(join(root, rel), text);
  return root;
}

async function cli(root: string, args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, "--root", root, "--pipeline", join(root, "stages.ts"), ...args],
    env: { PIPELINE_CACHE: join(root, ".cache"), ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  return { code: out.code, text };
}

const lock = async (root: string) => JSON.parse(await Deno.readTextFile(join(root, "pipeline/lock.json")));

Deno.test("--verify re-executes from cached inputs: bit-identical, or the first difference with its step (exit 1)", async () => {
  const root = await toy();
  assert.equal((await cli(root, ["reproduce"])).code, 0);
  const before = await lock(root);
  const same = await cli(root, ["reproduce", "--verify"]);
  assert.equal(same.code, 0, same.text);
  assert.match(same.text, /✓ src: bit-identical \(every output\)/);
  assert.match(same.text, /✓ train: bit-identical \(every output\)/);
  const noisy = await cli(root, ["reproduce", "--verify", "train"], { TOY_NOISE: "1" });
  assert.equal(noisy.code, 1, noisy.text);
  assert.match(
    noisy.text,
    /✗ train: differs .* history\.json \(evals\[2\]\.testLoss, step 5\): cached [\d.e-]+, rerun/,
  );
  const early = await cli(root, ["reproduce", "--verify-steps", "3", "train"], { TOY_NOISE: "1" });
  assert.equal(early.code, 0, early.text); // the noise comes at step 4: the first 3 steps are identical
  assert.match(early.text, /✓ train: bit-identical \(the first 3 steps\)/);
  assert.deepEqual(await lock(root), before, "verify touches neither the lock nor the cache's runs");
});

Deno.test("--force that gives other outputs under the same key is refused as a determinism bug; the cache keeps its run", async () => {
  const root = await toy();
  await cli(root, ["reproduce"]);
  const before = await lock(root);
  const forced = await cli(root, ["reproduce", "train", "--force"], { TOY_NOISE: "1" });
  assert.equal(forced.code, 1, forced.text);
  assert.match(forced.text, /train: NOT DETERMINISTIC .* history\.json \(evals\[2\]\.testLoss, step 5\)/);
  assert.deepEqual((await lock(root)).stages.train.outputs, before.stages.train.outputs);
  const clean = await cli(root, ["reproduce", "train", "--force"]);
  assert.equal(clean.code, 0, clean.text); // identical bits: fine, however often it is forced
});

Deno.test("accept carries a run over a code change only when re-executing it gives the same bits", async () => {
  const root = await toy();
  await cli(root, ["reproduce"]);
  const old = (await lock(root)).stages.train;
  // A change that keeps the behaviour: accepted, the lock names the new key and where it came from.
  await Deno.writeTextFile(join(root, "rate.ts"), "export const decay = 0.25 * 2;\n");
  assert.match((await cli(root, ["status"])).text, /train: run \(code: rate\.ts changed\)/);
  const ok = await cli(root, ["accept", "train", "--verify-steps", "3"]);
  assert.equal(ok.code, 0, ok.text);
  assert.match(ok.text, /✓ train: accepted \(bit-identical over 3 steps\)/);
  const now = (await lock(root)).stages.train;
  assert.notEqual(now.key, old.key);
  assert.deepEqual(now.outputs, old.outputs);
  assert.equal(now.accepted.from, old.key);
  assert.equal(now.accepted.verifiedSteps, 3);
  assert.match((await cli(root, ["status"])).text, /✓ train: up to date/);
  // Forced, the carried-over run gives every byte again: it keeps its record, the accept included.
  const forced = await cli(root, ["reproduce", "train", "--force"]);
  assert.match(forced.text, /✓ train: rerun in .*, the same bits as its cached run \(its record kept\)/);
  assert.deepEqual((await lock(root)).stages.train, now);
  // A change of behaviour: refused with the first difference; nothing recorded.
  await Deno.writeTextFile(join(root, "rate.ts"), "export const decay = 0.4;\n");
  const refused = await cli(root, ["accept", "train"]);
  assert.equal(refused.code, 1, refused.text);
  assert.match(refused.text, /train: not accepted — the new code gives other results: history\.json \(evals\[0\]/);
  assert.equal((await lock(root)).stages.train.key, now.key);
  // A parameter change is not a code change.
  await Deno.writeTextFile(join(root, "rate.ts"), "export const decay = 0.5;\n");
  const param = await cli(root, ["accept", "train", "--set", "train.lr=0.1"]);
  assert.equal(param.code, 1, param.text);
  assert.match(param.text, /accept carries a run over a code change only, but param lr: 0\.5 → 0\.1/);
});

Deno.test("a run from before an output was declared: status says so, accept refuses to carry it over", async () => {
  const root = await toy();
  await cli(root, ["reproduce"]);
  // The declaration gains an output the cached run never wrote: still its run, said loudly.
  const stages = await Deno.readTextFile(join(root, "stages.ts"));
  await Deno.writeTextFile(
    join(root, "stages.ts"),
    stages.replace('outputs: ["history.json"]', 'outputs: ["history.json", "extra.txt"]'),
  );
  const said = await cli(root, ["status", "train"]);
  assert.match(
    said.text,
    /train: up to date \(its run lacks the declared extra\.txt \(older code wrote none\): `reproduce --force train` makes it\)/,
  );
  // The code that writes it, otherwise unchanged: the old run's curve is the same, yet it has no extra.txt.
  const code = await Deno.readTextFile(join(root, "train.ts"));
  await Deno.writeTextFile(
    join(root, "train.ts"),
    code.replace("  ctx.record(", '  await Deno.writeTextFile(ctx.outDir + "/extra.txt", "x");\n  ctx.record('),
  );
  const refused = await cli(root, ["accept", "train"]);
  assert.equal(refused.code, 1, refused.text);
  assert.match(
    refused.text,
    /train: not accepted — its cached run lacks the declared extra\.txt \(the older code wrote none\)/,
  );
  assert.match(refused.text, /deno task reproduce train/);
  const ran = await cli(root, ["reproduce", "train"]);
  assert.equal(ran.code, 0, ran.text);
  assert.ok(Object.hasOwn((await lock(root)).stages.train.outputs, "extra.txt"));
  assert.doesNotMatch((await cli(root, ["status", "train"])).text, /lacks/);
});

Deno.test("transport-only parameters are not in the key: --set and params.local.json change where, not what", async () => {
  const root = await toy();
  await cli(root, ["reproduce"]);
  const key = (await lock(root)).stages.src.key;
  const moved = await cli(root, ["reproduce", "--set", "src.url=http://mirror.example/data"]);
  assert.match(moved.text, /✓ src: up to date/);
  await Deno.mkdir(join(root, "pipeline"), { recursive: true });
  await Deno.writeTextFile(join(root, "pipeline/params.local.json"), '{"src.url": "/local/copy"}');
  assert.match((await cli(root, ["status"])).text, /✓ src: up to date/);
  assert.equal((await lock(root)).stages.src.key, key);
  await Deno.writeTextFile(join(root, "pipeline/params.local.json"), '{"src.n": 5}');
  const wrong = await cli(root, ["status"]);
  assert.equal(wrong.code, 1);
  assert.match(wrong.text, /params\.local\.json sets src\.n, which is not a transport-only parameter/);
});

Deno.test("accept: a parameter added since, at its default, is the old code's behaviour (verified like a code change)", async () => {
  const root = await toy();
  await cli(root, ["reproduce"]);
  const stages = await Deno.readTextFile(join(root, "stages.ts"));
  await Deno.writeTextFile(
    join(root, "stages.ts"),
    stages.replace(
      'lr: { type: "float", default: 0.5, doc: "" } }',
      'lr: { type: "float", default: 0.5, doc: "" }, ' +
        'path: { type: "string", default: "plain", doc: "" } }',
    ),
  );
  const ok = await cli(root, ["accept", "train"]);
  assert.equal(ok.code, 0, ok.text);
  assert.match(ok.text, /✓ train: accepted/);
  const other = await cli(root, ["accept", "train", "--set", "train.path=fancy"]);
  assert.equal(other.code, 1, other.text);
  assert.match(other.text, /param path: "plain" → "fancy"/);
});
