// Checkpoint manifests are trusted only as the engine sealed them (pipeline/engine/checkpoints.ts): a
// run killed mid-way leaves sealed checkpoints; an altered, malformed or escaping manifest is
// "damaged: discarding it" (never a crash, never a file deleted outside the checkpoint), and
// the resumed run still equals an uninterrupted one.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { dirname, join } from "node:path";
import { checkCheckpoints, sealCheckpoints } from "../../../pipeline/engine/checkpoints.ts";
import { cli, toyProject } from "../../support/faults_harness.ts";

const CLI = new URL("../../../pipeline/cli.ts", import.meta.url).pathname;

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");
const SLOW = { TOY_DELAY_MS: "120" };

/** count@big killed once its engine has sealed two checkpoints: the run's checkpoint directory. */
async function interrupted(): Promise<{ root: string; dir: string }> {
  const root = await toyProject();
  // setsid: the CLI leads a new process group, so the kill reaches its worker too.
  const child = new Deno.Command("setsid", {
    args: [
      Deno.execPath(),
      "run",
      "-A",
      CLI,
      "--root",
      root,
      "--pipeline",
      join(root, "stages.ts"),
      "reproduce",
      "count@big",
    ],
    env: { PIPELINE_CACHE: join(root, ".cache"), NO_COLOR: "1", ...SLOW },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const sealed = () => {
    try {
      for (const k of Deno.readDirSync(join(root, ".cache/checkpoints"))) {
        const dir = join(root, ".cache/checkpoints", k.name);
        if ([...Deno.readDirSync(dir)].filter((e) => e.name.endsWith(".json.seal")).length >= 2) return dir;
      }
    } catch { /* not there yet */ }
  };
  let exited = false;
  child.status.then(() => exited = true);
  let dir: string | undefined;
  for (let i = 0; i < 1200 && !exited && !(dir = sealed()); i++) await new Promise((r) => setTimeout(r, 100));
  try {
    Deno.kill(-child.pid, "SIGKILL");
  } catch { /* it had finished */ }
  await child.status;
  if (!dir) {
    throw new Error(
      exited ? "the run ended before two checkpoints were sealed" : "no two sealed checkpoints after 120 s",
    );
  }
  return { root, dir };
}

/** The newest checkpoint the engine sealed (a newer one written just before the kill may be unsealed). */
const newest = (dir: string) =>
  [...Deno.readDirSync(dir)].map((e) => /^checkpoint-(\d+)\.json\.seal$/.exec(e.name)?.[1]).filter(Boolean)
    .map(Number).sort((a, b) => b - a)[0];

async function uninterrupted(): Promise<string> {
  const root = await toyProject();
  assert.equal((await cli(root, ["reproduce", "count@big"])).code, 0);
  return await Deno.readTextFile(join(root, "out/count@big/count.txt"));
}

Deno.test("an altered checkpoint manifest (valid JSON) is discarded, and the resumed run equals an uninterrupted one", async () => {
  const expected = await uninterrupted();
  const { root, dir } = await interrupted();
  const step = newest(dir);
  const path = join(dir, `checkpoint-${step}.json`);
  const manifest = JSON.parse(await Deno.readTextFile(path));
  manifest.meta.s.acc += 1; // a flipped digit in the state it resumes from
  await Deno.writeTextFile(path, JSON.stringify(manifest));
  const rerun = await cli(root, ["reproduce", "count@big"]);
  assert.equal(rerun.code, 0, rerun.stderr);
  assert.match(
    rerun.stderr,
    new RegExp(`checkpoint at step ${step} .* is damaged \\(its manifest does not match its seal`),
  );
  assert.equal(await Deno.readTextFile(join(root, "out/count@big/count.txt")), expected);
});

Deno.test("malformed or escaping manifests, even freshly sealed, are discarded with one line, never followed", async () => {
  const root = await Deno.makeTempDir({ prefix: "ckpt-seal-" });
  try {
    const dir = join(root, "cache/checkpoints/k");
    await Deno.mkdir(dir, { recursive: true });
    const victim = join(root, "victim.txt");
    await Deno.writeTextFile(victim, "keep me");
    const cases: Record<number, unknown> = {
      1: null,
      2: { step: 2, files: "no", meta: {} },
      3: { step: 3, files: [{ size: 1, sha256: "0".repeat(64) }], meta: {} },
      4: { step: 4, files: [{ name: "../../../victim.txt", size: 7, sha256: sha256("keep me") }], meta: {} },
      5: { step: 6, files: [], meta: {} },
      6: { step: 6, files: [{ name: "ckpt-6-0.bin", size: 1, sha256: "0".repeat(64) }], meta: { ok: true } },
    };
    for (const [step, m] of Object.entries(cases)) {
      await Deno.writeTextFile(join(dir, `checkpoint-${step}.json`), JSON.stringify(m));
      await Deno.writeTextFile(join(dir, `ckpt-${step}-0.bin`), "x");
    }
    await Deno.writeTextFile(join(dir, "checkpoint-7.json"), "{}"); // never sealed
    await sealCheckpoints(dir);
    await Deno.remove(join(dir, "checkpoint-7.json.seal"));
    const logs: string[] = [];
    await checkCheckpoints(dir, (l) => logs.push(l));
    const why = (s: number) => logs.find((l) => l.startsWith(`checkpoint at step ${s} `));
    assert.match(why(1)!, /its manifest is not an object\): discarding it$/);
    assert.match(why(2)!, /its manifest has no list of files/);
    assert.match(why(3)!, /its manifest names undefined, not a file of its own/);
    assert.match(why(4)!, /its manifest names "\.\.\/\.\.\/\.\.\/victim\.txt", not a file of its own/);
    assert.match(why(5)!, /its manifest says step 6/);
    assert.equal(why(6), undefined, "a sound sealed manifest is kept (its data files are the loader's to check)");
    assert.match(why(7)!, /its manifest was never sealed/);
    assert.equal(await Deno.readTextFile(victim), "keep me", "nothing outside the checkpoint is removed");
    assert.deepEqual(
      [...Deno.readDirSync(dir)].map((e) => e.name).sort(),
      ["checkpoint-6.json", "checkpoint-6.json.seal", "ckpt-6-0.bin"],
      "each damaged checkpoint's own files are gone",
    );
    assert.equal(dirname(dir), join(root, "cache/checkpoints"));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
