// Thin runs: the committed folder remote keeps files up to its size limit and every run entry;
// a clone restores a run with big files (trained weights) without them, under the whole run's
// outputs hash, and fills them in from a remote that has them when a stage needs them.
import assert from "node:assert/strict";
import { join } from "node:path";
import { type RunEntry, Store } from "../../../pipeline/store/cache.ts";
import { Remote } from "../../../pipeline/sharing/remote.ts";
import { FolderBackend } from "../../../pipeline/sharing/folder.ts";
import { runParts } from "../../support/runs.ts";

const KEY = "t".repeat(64);

async function storeWithRun(dir: string): Promise<{ store: Store; entry: RunEntry }> {
  const store = await Store.open(dir);
  const out = join(await store.makeTmp(KEY), "out");
  await Deno.mkdir(out);
  await Deno.writeTextFile(join(out, "history.json"), '{"final": 0.5}\n');
  await Deno.writeFile(join(out, "weights.safetensors"), new Uint8Array(4096).map((_, i) => i % 251));
  const entry = await store.commit(out, runParts(KEY));
  return { store, entry };
}

Deno.test("a run with a file over the folder remote's limit is pushed and restored without it, then filled in", async () => {
  const root = await Deno.makeTempDir({ prefix: "thin-" });
  try {
    const { store: a, entry } = await storeWithRun(join(root, "a"));
    const git = new Remote(new FolderBackend(join(root, "git"), 1024)); // 1 KiB: the weights stay out
    const full = new Remote(new FolderBackend(join(root, "full"))); // stands in for S3: everything
    assert.deepEqual([...await git.push([entry], (h) => a.objectPath(h))], [KEY], "the entry is pushed");
    await full.push([entry], (h) => a.objectPath(h));
    assert.equal(await git.has(entry.outputs["weights.safetensors"].hash, 4096), false);

    // A clone with the git folder only: the run without its weights, under the whole run's outputs hash.
    const b = await Store.open(join(root, "b"), [git]);
    const planned = await b.remoteEntry(KEY);
    assert.deepEqual(planned?.absent, ["weights.safetensors"], "status predicts a thin restore");
    const thin = await b.fetch(KEY);
    assert.ok(thin);
    assert.deepEqual(thin.absent, ["weights.safetensors"]);
    assert.equal(thin.outputsHash, entry.outputsHash, "downstream keys are those of the whole run");
    assert.deepEqual(thin.outputs, entry.outputs);
    assert.deepEqual(await b.verify(thin), { ok: true });
    assert.equal(await Deno.readTextFile(join(b.treeDir(KEY), "history.json")), '{"final": 0.5}\n');
    assert.deepEqual(await b.fill(thin), thin, "no remote has the weights: still thin");

    // The same clone with a remote that has everything: fill brings the weights, hash-checked.
    const c = await Store.open(join(root, "b"), [git, full]);
    const whole = await c.fill((await c.readEntry(KEY))!);
    assert.equal(whole.absent, undefined);
    assert.deepEqual(await c.verify(whole), { ok: true });
    assert.deepEqual(
      await Deno.readFile(join(c.treeDir(KEY), "weights.safetensors")),
      new Uint8Array(4096).map((_, i) => i % 251),
    );
    assert.equal((await c.readEntry(KEY))?.absent, undefined, "the entry on disk is whole again");

    // A thin entry pushed back to the folder never carries `absent`; a remote that has it all is preferred.
    await git.push([thin], (h) => c.objectPath(h));
    const pushed = JSON.parse(await Deno.readTextFile(join(root, "git", "runs", `${KEY}.json`)));
    assert.equal(pushed.absent, undefined);
    const d = await Store.open(join(root, "d"), [git, full]);
    assert.equal((await d.fetch(KEY))?.absent, undefined, "whole from the remote that has it whole");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
