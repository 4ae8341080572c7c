// A no-op reproduce (everything cached) must be fast, without re-hashing
// unchanged large files: the stat cache. Measured on a toy project with a
// 512 MB artefact, in-process and as a whole CLI process; then on the real
// project's code (every stage's real import closure), where keys come from
// normalised code: cached per file in code.json, typescript never loaded.
import { cpSync } from "node:fs";
import { join } from "node:path";
import { cpuUsage } from "node:process";
import { CodeCache, typescriptLoaded } from "../../pipeline/store/code.ts";
import { Engine } from "../../pipeline/engine/engine.ts";
import { StatCache } from "../../pipeline/store/hash.ts";
import { importClosure } from "../../pipeline/store/imports.ts";
import { STAGES } from "../../pipeline/stages.ts";
import type { StageDef } from "../../pipeline/types.ts";

const CLI = new URL("../../pipeline/cli.ts", import.meta.url).pathname;
const MB = 512;

function median(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function time(fn: () => Promise<unknown>, n = 5): Promise<number> {
  const ts: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn();
    ts.push((performance.now() - t0) / 1000);
  }
  return median(ts);
}

export async function bench() {
  await realLayout(); // first: it checks that this process never loaded typescript
  await artefact();
}

async function artefact() {
  const root = await Deno.makeTempDir({ prefix: "engine-bench-" });
  await Deno.writeTextFile(
    join(root, "big.ts"),
    `export async function run(ctx) {
  const chunk = new Uint8Array(1 << 20);
  using f = await Deno.open(ctx.outDir + "/big.bin", { write: true, create: true });
  for (let i = 0; i < ${MB}; i++) { chunk[0] = i & 255; await f.write(chunk); }
  return {};
}`,
  );
  await Deno.writeTextFile(
    join(root, "small.ts"),
    `export async function run(ctx) { await Deno.writeTextFile(ctx.outDir + "/s.txt", "x"); return {}; }`,
  );
  const defs: StageDef[] = [
    { name: "big", doc: "", deps: [], module: "big.ts", outputs: ["big.bin"], params: {} },
    ...["s1", "s2", "s3", "s4", "s5"].map((name) => ({
      name,
      doc: "",
      deps: ["big"],
      module: "small.ts",
      outputs: ["s.txt"],
      params: {},
    })),
  ];
  await Deno.writeTextFile(join(root, "stages.ts"), `export const STAGES = ${JSON.stringify(defs)};`);
  const engine = () => Engine.open({ root, defs, log: () => {} });
  await (await engine()).reproduce();

  const inProcess = await time(async () => (await engine()).reproduce());
  const cli = () =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", CLI, "--root", root, "--pipeline", join(root, "stages.ts"), "reproduce"],
      stdout: "null",
      stderr: "null",
    }).output();
  const wholeProcess = await time(cli);
  const statFile = join(root, ".cache/stat.json");
  const cold = await time(async () => {
    await Deno.remove(statFile);
    await (await engine()).reproduce();
  }, 3);
  console.log(`no-op reproduce, 6 stages, ${MB} MB artefact: in-process ${(inProcess * 1000).toFixed(0)} ms`);
  console.log(
    `no-op reproduce as a CLI process (deno start-up included): ${
      (wholeProcess * 1000).toFixed(0)
    } ms (target < 300 ms)`,
  );
  console.log(
    `same without the stat cache (re-hashing ${MB} MB): ${(cold * 1000).toFixed(0)} ms — stat cache ${
      (cold / inProcess).toFixed(0)
    }× faster`,
  );
  await Deno.remove(root, { recursive: true });
}

async function realLayout() {
  const project = new URL("../../", import.meta.url).pathname;
  const root = await Deno.makeTempDir({ prefix: "engine-bench-real-" });
  for (const dir of ["data", "models", "pipeline", "reports/build"]) {
    cpSync(join(project, dir), join(root, dir), {
      recursive: true,
      filter: (src) => !/pipeline\/(remote|lock[^/]*\.json|params[^/]*\.json)$/.test(src), // no settings: as in-process
    });
  }
  cpSync(join(project, "deno.json"), join(root, "deno.json"));
  // Each stage as a trivial run whose module reaches the real stage module (never loaded), so the keys hash
  // the real closures: 16 stages, their params and variants.
  await Deno.mkdir(join(root, "bench"));
  const defs: StageDef[] = [];
  for (const def of STAGES) {
    const module = `bench/${def.name}.ts`;
    await Deno.writeTextFile(
      join(root, module),
      `export async function run(ctx) { await Deno.writeTextFile(ctx.outDir + "/o.txt", "o"); return {}; }
export const code = () => import("../${def.module}");
`,
    );
    defs.push({ ...def, module, outputs: ["o.txt"], publish: undefined });
  }
  await Deno.writeTextFile(join(root, "bench/stages.ts"), `export const STAGES = ${JSON.stringify(defs)};`);
  const cli = (command: string) => () =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", CLI, "--root", root, "--pipeline", join(root, "bench/stages.ts"), command, "--jobs", "2"],
      stdout: "null",
      stderr: "null",
    }).output();
  await cli("reproduce")();

  const results = await (await Engine.open({ root, defs, log: () => {} })).reproduce();
  const files = new Set(results.flatMap((r) => Object.keys(r.entry?.code ?? {})));
  const upToDate = results.filter((r) => r.outcome === "up to date").length;
  const cpu0 = cpuUsage();
  const inProcess = await time(async () => (await Engine.open({ root, defs, log: () => {} })).reproduce());
  const cpu = cpuUsage(cpu0);
  const inProcessCpu = (cpu.user + cpu.system) / 5e6; // s per run; wall time on a busy machine says little
  // The code part of every key, from stat.json and code.json as a fresh process finds them.
  const keys = await time(async () => {
    const stats = await StatCache.open(join(root, ".cache/stat.json"));
    const code = await CodeCache.open(join(root, ".cache/code.json"));
    for (const def of defs) await importClosure(root, def.module, stats, code);
  });
  const loaded = typescriptLoaded();
  const wholeProcess = await time(cli("reproduce"));
  const empty = await Deno.makeTempFile({ suffix: ".ts" });
  const startUp = await time(() => new Deno.Command(Deno.execPath(), { args: ["run", empty] }).output());
  let edits = 0;
  const oneEdit = await time(async () => {
    await Deno.writeTextFile(join(root, "pipeline/types.ts"), `// edit ${++edits}\n`, { append: true });
    await cli("status")();
  }, 3);
  const cold = await time(async () => {
    await Deno.remove(join(root, ".cache/code.json"));
    await cli("status")();
  }, 3);
  const ms = (s: number) => `${(s * 1000).toFixed(0)} ms`;
  console.log(`real project code: ${results.length} stages (${upToDate} up to date), ${files.size} files in closures`);
  console.log(`their code hashes (closures, from stat.json + code.json): ${ms(keys)}`);
  console.log(
    `no-op reproduce in-process: ${ms(inProcess)}, CPU ${ms(inProcessCpu)} (typescript loaded: ${
      loaded ? "yes" : "no"
    })`,
  );
  console.log(
    `no-op reproduce as a CLI process: ${ms(wholeProcess)} (target < 300 ms; deno start-up alone: ${ms(startUp)})`,
  );
  console.log(`status after a comment in pipeline/types.ts (typescript loaded, one file normalised): ${ms(oneEdit)}`);
  console.log(`status without code.json (typescript loaded, every file normalised): ${ms(cold)}`);
  await Deno.remove(empty);
  await Deno.remove(root, { recursive: true });
}
