// The rules of the house, checked rather than written down (tests/support/architecture.ts):
// no run-time import cycle, study code reaches pipeline/ only through pipeline/types.ts, no
// file in pipeline/ over 400 lines. The fixtures prove the checker fails where it should.
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { checkArchitecture, type Violation } from "../support/architecture.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

async function tree(files: Record<string, string>): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "architecture-" });
  for (const [path, text] of Object.entries(files)) {
    await Deno.mkdir(join(root, dirname(path)), { recursive: true });
    await Deno.writeTextFile(join(root, path), text);
  }
  return root;
}

const messages = (vs: Violation[]) => vs.map((v) => v.message);

Deno.test("architecture: a run-time import cycle is reported with its files in order; a type-only one is not", async () => {
  const root = await tree({
    "pipeline/engine/a.ts": 'import { b } from "./b.ts";\nexport const a = () => b();\n',
    "pipeline/engine/b.ts": 'import { c } from "../store/c.ts";\nexport const b = () => c();\n',
    "pipeline/store/c.ts": 'import { a } from "../engine/a.ts";\nexport const c = () => a;\n',
    // Erased at run time (as in the cache keys): no cycle.
    "pipeline/engine/d.ts": 'import type { E } from "./e.ts";\nexport type D = E;\nexport const d = 1;\n',
    "pipeline/engine/e.ts": 'import { d } from "./d.ts";\nexport type E = number;\nexport const e = d;\n',
    // A program started as a process (its path, not an import): no cycle either.
    "pipeline/executors/run.ts":
      'const W = new URL("./w.ts", import.meta.url).pathname;\nexport const run = () => W;\n',
    "pipeline/executors/w.ts": 'import { run } from "./run.ts";\nexport const w = run;\n',
  });
  try {
    assert.deepEqual(messages(await checkArchitecture(root)), [
      "import cycle: pipeline/engine/a.ts → pipeline/engine/b.ts → pipeline/store/c.ts → pipeline/engine/a.ts",
    ]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("architecture: study code importing an engine file is reported; pipeline/types.ts and types are fine", async () => {
  const root = await tree({
    "pipeline/types.ts": "export class PipelineError extends Error {}\nexport interface StageContext { x: number }\n",
    "pipeline/stages.ts": "export type TrainParams = { lr: number };\nexport const STAGES = [];\n",
    "pipeline/engine/keys.ts": "export const key = 1;\n",
    "models/good.ts": 'import { PipelineError, type StageContext } from "../pipeline/types.ts";\n' +
      'import type { TrainParams } from "../pipeline/stages.ts";\n' +
      "export const run = (c: StageContext, p: TrainParams) => { if (!p) throw new PipelineError(); };\n",
    "models/bad.ts": 'import { key } from "../pipeline/engine/keys.ts";\nexport const k = key;\n',
    "data/bad.ts": 'export const load = () => import("../pipeline/engine/keys.ts");\n',
  });
  try {
    const found = await checkArchitecture(root);
    assert.deepEqual(found.map((v) => [v.rule, ...v.files]), [
      ["layering", "data/bad.ts", "pipeline/engine/keys.ts"],
      ["layering", "models/bad.ts", "pipeline/engine/keys.ts"],
    ]);
    assert.match(found[1].message, /^models\/bad\.ts imports pipeline\/engine\/keys\.ts at run time: .*types\.ts/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("architecture: a file in pipeline/ over 400 lines is reported; committed data is not", async () => {
  const long = "export const x = 1;\n".repeat(401);
  const root = await tree({
    "pipeline/engine/long.ts": long,
    "pipeline/engine/fine.ts": "export const x = 1;\n".repeat(400),
    "pipeline/remote/runs/data.ts": long,
    "models/long.ts": long,
  });
  try {
    assert.deepEqual(messages(await checkArchitecture(root)), ["pipeline/engine/long.ts: 401 lines (at most 400)"]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("architecture: this project keeps the rules", async () => {
  const found = await checkArchitecture(ROOT);
  assert.deepEqual(messages(found), [], `${found.length} violation(s):\n${messages(found).join("\n")}`);
});

Deno.test("architecture: pipeline/README.md maps every folder and file of the engine, and README.md every folder", async () => {
  const map = await Deno.readTextFile(join(ROOT, "pipeline/README.md"));
  const readme = await Deno.readTextFile(join(ROOT, "README.md"));
  const layout = readme.split("\n## Layout")[1]?.split("\n## ")[0] ?? "";
  const folders: string[] = [];
  for await (const e of Deno.readDir(join(ROOT, "pipeline"))) {
    if (!e.isDirectory || e.name === "remote") continue;
    folders.push(e.name);
    for await (const f of Deno.readDir(join(ROOT, "pipeline", e.name))) {
      if (f.name.endsWith(".ts")) {
        assert.ok(map.includes(`\`${f.name}\``), `pipeline/README.md lacks ${e.name}/${f.name}`);
      }
    }
  }
  for (const folder of folders) {
    assert.ok(map.includes(`| \`${folder}/\``), `pipeline/README.md has no row for ${folder}/`);
    assert.ok(layout.includes(`\`${folder}/\``), `README.md's Layout does not name pipeline/${folder}/`);
  }
  // And no row for a folder that is gone.
  for (const [, named] of map.matchAll(/^\| `([a-z_]+)\/` /gm)) {
    assert.ok(folders.includes(named) || named === "remote", `pipeline/README.md maps ${named}/, which does not exist`);
  }
});
