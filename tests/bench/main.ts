// `deno task bench`: every tests/bench/<area>.ts that exports bench(), in turn
// (or only the areas named: deno task bench engine mlp).
// First: environment.ts snapshots the environment the machine gave this process, before any
// area loads a library that pins its kernels through Deno.env (the PyTorch reference runs in
// the snapshot).
import "./environment.ts";

const dir = new URL(".", import.meta.url);
const wanted = Deno.args;
const areas = [...Deno.readDirSync(dir)]
  .map((e) => e.name)
  // Not an area: this file, the bench's own test and that test's child process.
  .filter((n) => n.endsWith(".ts") && n !== "main.ts" && !/_(test|child)\.ts$/.test(n))
  .map((n) => n.slice(0, -3))
  .filter((n) => !wanted.length || wanted.includes(n))
  .sort();
for (const area of areas) {
  const mod = await import(new URL(`${area}.ts`, dir).href);
  if (typeof mod.bench !== "function") continue;
  console.log(`\n== ${area}`);
  await mod.bench();
}
Deno.exit(0); // tfjs can keep the process alive
