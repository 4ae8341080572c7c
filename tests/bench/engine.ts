// A no-op reproduce (everything cached) must be fast, without re-hashing
// unchanged large files: the stat cache. Measured on a toy project with a
// 512 MB artefact, in-process and as a whole CLI process.
import { join } from "node:path";
import { Engine } from "../../pipeline/engine.ts";
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
