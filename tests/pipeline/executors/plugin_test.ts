// Executors are plug-ins: a test-only executor (tests/support/probe_executor.ts), registered at
// run time and named nowhere in the pipeline, drives a project end to end through the CLI — its
// settings block, its option (--probe-tag), its --help line, the tasks a stage spreads out — and
// the store hands a stale lock's worker back to it to stop.
import assert from "node:assert/strict";
import { join } from "node:path";
import { registerExecutor } from "../../../pipeline/executors/registry.ts";
import { Store } from "../../../pipeline/store/cache.ts";
import { hostId } from "../../../pipeline/store/lease.ts";
import { probeExecutor } from "../../support/probe_executor.ts";

const PROBE_CLI = new URL("../../support/probe_cli.ts", import.meta.url).pathname;
const dec = new TextDecoder();

const FILES: Record<string, string> = {
  "pipeline/stages.ts": `
export const STAGES = [
  { name: "spread", doc: "", deps: [], module: "spread.ts", outputs: ["sum.txt"], params: {}, resources: { seconds: 90 } },
  { name: "after", doc: "", deps: ["spread"], module: "after.ts", outputs: ["out.txt"], params: {} },
];
`,
  "spread.ts": `export async function run(ctx) {
  const xs = await Promise.all([1, 2, 3].map((i) => ctx.task(ctx.root + "/square.ts", "square", i)));
  await Deno.writeTextFile(ctx.outDir + "/sum.txt", String(xs.reduce((a, b) => a + b)));
}
`,
  "square.ts": "export function square(i) { return i * i; }\n",
  "after.ts": `export async function run(ctx) {
  const sum = await Deno.readTextFile(ctx.inputs.spread + "/sum.txt");
  await Deno.writeTextFile(ctx.outDir + "/out.txt", "sum " + sum);
}
`,
};

async function project(settings: unknown): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "plugin-" });
  for (const [rel, text] of Object.entries(FILES)) {
    await Deno.mkdir(join(root, rel, ".."), { recursive: true });
    await Deno.writeTextFile(join(root, rel), text);
  }
  await Deno.writeTextFile(join(root, "pipeline", "config.local.json"), JSON.stringify(settings));
  return root;
}

async function cli(root: string, args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", PROBE_CLI, ...args, "--root", root],
    cwd: root,
    env: { PIPELINE_CACHE: join(root, ".cache"), PIPELINE_PLAIN: "1", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, out: dec.decode(out.stdout), err: dec.decode(out.stderr) };
}

function treeFile(cache: string, stage: string, file: string): string {
  for (const e of Deno.readDirSync(join(cache, "runs"))) {
    const entry = JSON.parse(Deno.readTextFileSync(join(cache, "runs", e.name)));
    if (entry.stage === stage) return Deno.readTextFileSync(join(cache, "trees", entry.key, file));
  }
  throw new Error(`no run of ${stage}`);
}

Deno.test("executor plug-in: a registered executor runs stages and their tasks, with its settings and option", async () => {
  const root = await Deno.makeTempDir({ prefix: "plugin-" });
  const journal = join(root, "journal.txt");
  const proj = await project({ executor: "probe", probe: { journal, tag: "from-settings" } });
  try {
    const r = await cli(proj, ["reproduce", "--probe-tag", "from-cli"]);
    assert.equal(r.code, 0, r.err);
    assert.equal(treeFile(join(proj, ".cache"), "after", "out.txt"), "sum 14");
    const lines = (await Deno.readTextFile(journal)).trim().split("\n");
    assert.deepEqual(lines.filter((l) => l.startsWith("run ")), [
      "run spread probe-1 from-cli seconds=90",
      "run after probe-2 from-cli seconds=undefined",
    ]);
    assert.deepEqual(lines.filter((l) => l.startsWith("task ")), Array(3).fill("task square from-cli"));

    const help = await cli(proj, ["--help"]);
    assert.match(help.out + help.err, /--probe-tag TEXT +a word journaled with every call/);
    assert.match(help.out + help.err, /probe: a test's executor/);
  } finally {
    await Deno.remove(root, { recursive: true });
    await Deno.remove(proj, { recursive: true });
  }
});

Deno.test("executor plug-in: its settings and options are checked, each fault one line", async () => {
  const proj = await project({ executor: "probe", probe: { journal: 7 } });
  try {
    const bad = await cli(proj, ["reproduce"]);
    assert.equal(bad.code, 1, bad.err);
    assert.match(bad.err.trim(), /^error: \S+config\.local\.json: "probe"\.journal is 7 — write "journal": "PATH"$/);
    await Deno.writeTextFile(join(proj, "pipeline", "config.local.json"), "{}");
    const other = await cli(proj, ["reproduce", "--executor", "local", "--probe-tag", "x"]);
    assert.equal(other.code, 2, other.err);
    assert.match(other.err, /--probe-tag is an option of the probe executor — add --executor probe/);
    const unknown = await cli(proj, ["reproduce", "--executor", "nope"]);
    assert.equal(unknown.code, 2, unknown.err);
    assert.match(unknown.err, /--executor nope: no such executor — use one of local, slurm, probe/);
  } finally {
    await Deno.remove(proj, { recursive: true });
  }
});

Deno.test("executor plug-in: a stale lock's worker is handed back to its executor to stop", async () => {
  registerExecutor(probeExecutor);
  const cache = await Deno.makeTempDir();
  const journal = join(cache, "journal.txt");
  Deno.env.set("PROBE_JOURNAL", journal);
  try {
    const dead = new Deno.Command("true").spawn();
    await dead.status;
    const store = await Store.open(cache);
    const stale = { host: hostId(), pid: dead.pid, start: "", lease: 0, worker: { executor: "probe", id: "probe-77" } };
    await Deno.writeTextFile(join(cache, "locks", "z.lock"), JSON.stringify(stale));
    const release = await store.lock("z", () => {});
    await release();
    assert.equal(await Deno.readTextFile(journal), "stop probe-77\n");
  } finally {
    Deno.env.delete("PROBE_JOURNAL");
    await Deno.remove(cache, { recursive: true });
  }
});
