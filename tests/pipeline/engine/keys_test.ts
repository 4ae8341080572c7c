// Cache keys follow what the code does, not its bytes: comments, `deno fmt`
// reflows, types and `import type` keep every key; a changed constant or
// operator reruns that stage and its downstream, naming the file.
import assert from "node:assert/strict";
import { join } from "node:path";
import { analyse } from "../../../pipeline/store/code.ts";
import { Engine, type StageResult } from "../../../pipeline/engine/engine.ts";
import type { StageDef } from "../../../pipeline/types.ts";

const BASE = `import type { Opts } from "./types.ts";
import { scale, type Unit } from "./lib/util.ts";
export const LIMIT = 10;
const re = /a b/g, tpl = \`x \${LIMIT} y\`;
export function run(opts: Opts, xs: number[]): number {
  let total = 0;
  for (const x of xs) if (x < LIMIT) total += scale(x, 'abc');
  return total;
}
`;

const hashOf = async (source: string) => (await analyse(source, "m.ts")).hash;

Deno.test("normaliser: comments, formatting and types do not change the hash; behaviour does", async () => {
  const base = await hashOf(BASE);
  const same: Record<string, string> = {
    comments: BASE.replace("let total = 0;", "/** sum */ let total = 0; // start\n  /* block */"),
    reflow: BASE.replace(
      "for (const x of xs) if (x < LIMIT) total += scale(x, 'abc');",
      `for (const x of xs) {\n    if (x < LIMIT) {\n      total += scale(\n        x,\n        "abc",\n      );\n    }\n  }`,
    ),
    annotation: BASE.replace("let total = 0;", "let total: number = 0 as number;"),
    interface: BASE + "interface Extra { a: number }\ntype Alias = Extra[];\n",
    "import type": `import type { Other } from "./other.ts";\n` + BASE,
    "type-only name": BASE.replace("scale, type Unit", "scale"),
  };
  for (const [what, source] of Object.entries(same)) {
    assert.notEqual(source, BASE, what);
    assert.equal(await hashOf(source), base, what);
  }
  const changed: Record<string, string> = {
    constant: BASE.replace("LIMIT = 10", "LIMIT = 11"),
    operator: BASE.replace("x < LIMIT", "x <= LIMIT"),
    string: BASE.replace("'abc'", "'abd'"),
    "regex whitespace": BASE.replace("/a b/g", "/a  b/g"),
    "template whitespace": BASE.replace("x ${LIMIT} y", "x ${LIMIT}  y"),
  };
  for (const [what, source] of Object.entries(changed)) assert.notEqual(await hashOf(source), base, what);
  // Braces are kept in the hash where dropping them would change which `if` an `else` belongs to.
  assert.notEqual(
    await hashOf("if (a) { if (b) f(); } else g();"),
    await hashOf("if (a) { if (b) f(); else g(); }"),
  );
  assert.notEqual(await hashOf("const h = [1, ,];"), await hashOf("const h = [1,];"), "a hole is not a trailing comma");
});

Deno.test("normaliser: deno fmt at other line widths keeps the hash of real project files", async () => {
  const project = new URL("../../../", import.meta.url).pathname;
  const files = [
    "models/torch_mlp/train.ts",
    "models/numpy_mlp/modules.ts",
    "models/cnn/vgg.ts",
    "reports/build/inputs.ts",
    "pipeline/engine/engine.ts",
    "data/rng.ts",
  ];
  const dir = await Deno.makeTempDir({ prefix: "keys-fmt-" });
  for (const width of ["60", "40"]) {
    const copies = files.map((f) => join(dir, f.replaceAll("/", "__")));
    for (const [i, f] of files.entries()) await Deno.copyFile(join(project, f), copies[i]);
    const fmt = await new Deno.Command(Deno.execPath(), { args: ["fmt", "-q", "--line-width", width, ...copies] })
      .output();
    assert.equal(fmt.code, 0);
    for (const [i, f] of files.entries()) {
      const [original, reflowed] = [await Deno.readTextFile(join(project, f)), await Deno.readTextFile(copies[i])];
      assert.notEqual(reflowed, original, `${f} is reflowed at ${width}`);
      assert.equal((await analyse(reflowed, f)).hash, (await analyse(original, f)).hash, `${f} at ${width}`);
    }
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("normaliser: run-time specifiers come from the transpiled code, not from types", async () => {
  const { specifiers } = await analyse(
    `import type { A } from "./a.ts";
import { B, type C } from "./b.ts";
import { OnlyType } from "./t.ts";
import "./side.ts";
export * from "./all.ts";
export type { D } from "./d.ts";
// import { E } from "./in-a-comment.ts";
const asset = new URL("./kernel.wasm", import.meta.url);
import.meta.resolve("located");
export async function f(x: OnlyType) { return [B, asset, await import("./dyn.ts")]; }
`,
    "m.ts",
  );
  assert.deepEqual(specifiers.sort(), ["./all.ts", "./b.ts", "./dyn.ts", "./kernel.wasm", "./side.ts", "located"]);
});

// a ──┐
//     ├── c      a imports lib/util.ts, which imports lib/deep.ts (and, as a type only, lib/types.ts)
// b ──┘
const STAGES = `export const STAGES = [
  { name: "a", doc: "", deps: [], module: "a.ts", outputs: ["a.txt"], params: {} },
  { name: "b", doc: "", deps: [], module: "b.ts", outputs: ["b.txt"], params: {} },
  { name: "c", doc: "", deps: ["a", "b"], module: "c.ts", outputs: ["c.txt"], params: {} },
];
`;

const FILES: Record<string, string> = {
  "stages.ts": STAGES,
  "lib/types.ts": `export interface Scaled { value: number; unit: string }\n`,
  "lib/deep.ts": `export const factor = 10;\nexport const unit = "px";\n`,
  "lib/util.ts": `import type { Scaled } from "./types.ts";
import { factor, unit } from "./deep.ts";
export function scale(n, offset) {
  if (n < 0) throw new Error("negative: " + n + " (a scale takes a count of items, not a difference of counts)");
  return { value: n * factor + offset, unit: unit };
}
`,
  "a.ts": `import { scale } from "./lib/util.ts";
export async function run(ctx) {
  const scaled = scale(1, 0);
  await Deno.writeTextFile(ctx.outDir + "/a.txt", String(scaled.value) + scaled.unit);
  return { value: scaled.value };
}
`,
  "b.ts": `export async function run(ctx) {
  await Deno.writeTextFile(ctx.outDir + "/b.txt", "b");
  return {};
}
`,
  "c.ts": `export async function run(ctx) {
  const a = await Deno.readTextFile(ctx.inputs.a + "/a.txt");
  const b = await Deno.readTextFile(ctx.inputs.b + "/b.txt");
  await Deno.writeTextFile(ctx.outDir + "/c.txt", a + "+" + b);
  return {};
}
`,
};

async function toyProject(): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "keys-test-" });
  for (const [rel, text] of Object.entries(FILES)) {
    await Deno.mkdir(join(root, rel, ".."), { recursive: true });
    await Deno.writeTextFile(join(root, rel), text);
  }
  return root;
}

async function status(root: string): Promise<StageResult[]> {
  const { STAGES } = await import(`file://${root}/stages.ts?${crypto.randomUUID()}`);
  return (await Engine.open({ root, defs: STAGES as StageDef[], log: () => {} })).status();
}

const outcomes = (rs: StageResult[]) => Object.fromEntries(rs.map((r) => [r.stage, r.outcome]));
const UP_TO_DATE = { a: "up to date", b: "up to date", c: "up to date" };

async function edit(root: string, rel: string, change: (text: string) => string) {
  const path = join(root, rel);
  const before = await Deno.readTextFile(path);
  const after = change(before);
  assert.notEqual(after, before, `the edit of ${rel} changes its bytes`);
  await Deno.writeTextFile(path, after);
}

/** `deno eval` in a fresh process: the status and whether typescript was loaded for it. */
async function freshStatus(root: string): Promise<{ outcomes: Record<string, string>; typescript: boolean }> {
  const code = `
    import { Engine } from "${new URL("../../../pipeline/engine/engine.ts", import.meta.url)}";
    import { typescriptLoaded } from "${new URL("../../../pipeline/store/code.ts", import.meta.url)}";
    const { STAGES } = await import("file://${root}/stages.ts");
    const rs = await (await Engine.open({ root: "${root}", defs: STAGES, log: () => {} })).status();
    console.log(JSON.stringify({ outcomes: Object.fromEntries(rs.map((r) => [r.stage, r.outcome])), typescript: typescriptLoaded() }));
  `;
  const out = await new Deno.Command(Deno.execPath(), { args: ["eval", code], stdout: "piped", stderr: "piped" })
    .output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

Deno.test("edits that change no behaviour keep every key; a no-op status does not load typescript", async () => {
  const root = await toyProject();
  const { STAGES } = await import(`file://${root}/stages.ts`);
  const first = await (await Engine.open({ root, defs: STAGES, log: () => {} })).reproduce();
  assert.deepEqual(outcomes(first), { a: "run", b: "run", c: "run" });
  const lock = JSON.parse(await Deno.readTextFile(join(root, "pipeline/lock.json")));
  assert.deepEqual(Object.keys(lock.stages.a.code).sort(), ["a.ts", "lib/deep.ts", "lib/util.ts"], "no type-only file");

  assert.deepEqual(await freshStatus(root), { outcomes: UP_TO_DATE, typescript: false }, "all from code.json");

  await edit(root, "lib/deep.ts", (t) => `// How much one item weighs.\n${t.replace("10;", "10; /* measured */")}`);
  assert.deepEqual(await freshStatus(root), { outcomes: UP_TO_DATE, typescript: true }, "comment");

  const code = ["a.ts", "b.ts", "c.ts", "lib/deep.ts", "lib/util.ts", "lib/types.ts"].map((f) => join(root, f));
  const fmt = await new Deno.Command(Deno.execPath(), { args: ["fmt", "-q", "--line-width", "40", ...code] }).output();
  assert.equal(fmt.code, 0);
  assert.match(await Deno.readTextFile(join(root, "lib/util.ts")), /if \(n < 0\) \{\n/, "the reflow added braces");
  assert.deepEqual(outcomes(await status(root)), UP_TO_DATE, "deno fmt --line-width 40");

  await edit(root, "lib/util.ts", (t) =>
    t.replace("scale(n, offset)", "scale(n: number, offset: number): Scaled") +
    "export interface Options { verbose?: boolean }\nexport type Pair = [number, number];\n");
  assert.deepEqual(outcomes(await status(root)), UP_TO_DATE, "type annotations, an interface, a type");

  await Deno.writeTextFile(join(root, "lib/units.ts"), `export type Unit = "px" | "em";\n`);
  await edit(root, "a.ts", (t) => `import type { Unit } from "./lib/units.ts";\n${t}`);
  await edit(root, "lib/deep.ts", (t) => `import { type Unit } from "./units.ts";\n${t}`);
  assert.deepEqual(outcomes(await status(root)), UP_TO_DATE, "import type of a new file");
  await Deno.remove(root, { recursive: true });
});

Deno.test("a changed constant or operator reruns that stage and its downstream, naming the file", async () => {
  const root = await toyProject();
  const { STAGES } = await import(`file://${root}/stages.ts`);
  await (await Engine.open({ root, defs: STAGES, log: () => {} })).reproduce();

  const expectStale = async (file: string) => {
    const rs = await status(root);
    assert.deepEqual(outcomes(rs), { a: "run", b: "up to date", c: "run" }, file);
    assert.deepEqual(rs.find((r) => r.stage === "a")!.reasons, [`code: ${file} changed`]);
    assert.deepEqual(rs.find((r) => r.stage === "c")!.reasons, ["upstream a is stale"]);
  };
  await edit(root, "lib/deep.ts", (t) => t.replace("factor = 10", "factor = 100"));
  await expectStale("lib/deep.ts");
  await edit(root, "lib/deep.ts", (t) => t.replace("factor = 100", "factor = 10"));
  assert.deepEqual(outcomes(await status(root)), UP_TO_DATE, "back to the recorded code");

  await edit(root, "lib/util.ts", (t) => t.replace("n * factor", "n + factor"));
  await expectStale("lib/util.ts");
  const logs: string[] = [];
  const rerun = await (await Engine.open({ root, defs: STAGES, log: (l) => logs.push(l) })).reproduce();
  assert.deepEqual(outcomes(rerun), { a: "run", b: "up to date", c: "run" });
  assert.ok(logs.some((l) => l.includes("▶ a: running (code: lib/util.ts changed)")), logs.join("\n"));
  assert.equal(await Deno.readTextFile(join(root, "out/c/c.txt")), "11px+b");
  await Deno.remove(root, { recursive: true });
});
