// Child-process tasks and the concurrency limiter used by stages for --jobs.
import assert from "node:assert/strict";
import { join } from "node:path";
import { limiter, runTask } from "../pipeline/tasks.ts";
import { PipelineError } from "../pipeline/types.ts";

Deno.test("runTask calls a module's export in a child process and returns its JSON result", async () => {
  const dir = await Deno.makeTempDir();
  const mod = join(dir, "m.ts");
  await Deno.writeTextFile(
    mod,
    `export function double(x) { return { y: x.n * 2, pid: Deno.pid }; }
export function fail() { throw new Error("nope"); }`,
  );
  const r = await runTask<{ y: number; pid: number }>(mod, "double", { n: 21 });
  assert.equal(r.y, 42);
  assert.notEqual(r.pid, Deno.pid);
  await assert.rejects(runTask(mod, "fail", {}), (e: PipelineError) => /task fail crashed: nope/.test(e.message));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("limiter runs at most N at once", async () => {
  const limit = limiter(2);
  let active = 0;
  let peak = 0;
  await Promise.all(Array.from({ length: 6 }, () =>
    limit(async () => {
      active++;
      peak = Math.max(peak, active);
      await new Promise((r) => setTimeout(r, 10));
      active--;
    })));
  assert.equal(peak, 2);
});
