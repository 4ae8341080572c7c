// Child-process tasks and the concurrency limiter used by stages for --jobs.
import assert from "node:assert/strict";
import { join } from "node:path";
import { limiter, runTask } from "../../../pipeline/executors/tasks.ts";
import { PipelineError } from "../../../pipeline/types.ts";

const TASKS = new URL("../../../pipeline/executors/tasks.ts", import.meta.url).pathname;

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

Deno.test("a task lives in the stage's tmp dir (PIPELINE_TASK_DIR) and dies with its parent, even mid-loop", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const mod = join(dir, "spin.ts");
    await Deno.writeTextFile(
      mod,
      `export function spin(a) {
  Deno.writeTextFileSync(a.pidFile, String(Deno.pid));
  const end = Date.now() + 60_000;
  while (Date.now() < end) { /* a synchronous training loop: no timer of its own fires */ }
}`,
    );
    const pidFile = join(dir, "task.pid");
    const tasks = join(dir, "stage-tmp", "tasks");
    const parent = new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `import { runTask } from ${JSON.stringify(TASKS)};
await runTask(${JSON.stringify(mod)}, "spin", { pidFile: ${JSON.stringify(pidFile)} });`,
      ],
      env: { PIPELINE_TASK_DIR: tasks },
    }).spawn();
    let pid = 0;
    for (let i = 0; i < 600 && !pid; i++) {
      pid = Number(await Deno.readTextFile(pidFile).catch(() => "0"));
      if (!pid) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(pid, "the task started");
    assert.equal([...Deno.readDirSync(tasks)].filter((e) => e.name.startsWith("task-")).length, 1);
    parent.kill("SIGKILL");
    await parent.status;
    const t0 = Date.now();
    while (Date.now() - t0 < 5000 && (await Deno.stat(`/proc/${pid}`).then(() => true, () => false))) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const gone = Date.now() - t0;
    console.error(`the orphaned task was gone ${gone} ms after its parent's SIGKILL`);
    assert.ok(gone < 4000, `the orphaned task ran on for ${gone} ms`); // ~0.2 s idle; a loaded machine adds seconds
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
