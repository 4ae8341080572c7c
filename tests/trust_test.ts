// Issue 27, "trust nothing that is not hashed" (the engine's part): edited remote run entries,
// caches in impossible places, parameters named like Object.prototype members, integers that
// are not plain decimals, leftovers of a failed publish, and the weak spots (a silent download
// server, passwords in URLs, a lease from the far future, accept's in-use marker, pull --profile).
// Each case failed before the fix. tests/faults_harness.ts holds the machinery.
import assert from "node:assert/strict";
import { join } from "node:path";
import { canonicalJson, sha256 } from "../pipeline/hash.ts";
import { checkBadInputs, cli, integrity, toyProject, trustBadInputs } from "./faults_harness.ts";

interface Entry {
  key: string;
  stage: string;
  outputs: Record<string, { hash: string; size: number }>;
  outputsHash: string;
}

/** A toy project whose runs are all in its committed remote (pipeline/remote/), with an empty cache. */
async function pushedToy(): Promise<{ root: string; lock: { stages: Record<string, Entry> } }> {
  const root = await toyProject();
  assert.equal((await cli(root, ["reproduce"])).code, 0);
  assert.equal((await cli(root, ["push"])).code, 0);
  await Deno.remove(join(root, ".cache"), { recursive: true });
  return { root, lock: JSON.parse(await Deno.readTextFile(join(root, "pipeline/lock.json"))) };
}

const remoteEntry = (root: string, key: string) => join(root, "pipeline/remote/runs", `${key}.json`);

async function edit(root: string, key: string, change: (e: Entry) => void, rehash = false) {
  const path = remoteEntry(root, key);
  const entry = JSON.parse(await Deno.readTextFile(path)) as Entry;
  change(entry);
  if (rehash) entry.outputsHash = sha256(canonicalJson(entry.outputs));
  await Deno.writeTextFile(path, JSON.stringify(entry, null, 1));
}

Deno.test("an edited remote run entry is named with its field and not restored (reproduce, status, pull)", async (t) => {
  const { root, lock } = await pushedToy();
  const small = lock.stages["count@small"];
  const big = lock.stages["count@big"];
  const smallKey = small.key;
  const bigHash = (big.outputs as unknown as Record<string, string>)["count.txt"];
  const original = await Deno.readTextFile(remoteEntry(root, smallKey));
  const restore = () => Deno.writeTextFile(remoteEntry(root, smallKey), original);
  const field = (what: string) =>
    new RegExp(`✗ the run entry ${smallKey}\\.json \\(count@small\\) in pipeline/remote is corrupt \\(${what}`);

  await t.step("an output pointed at another run's object: outputsHash no longer matches", async () => {
    await Deno.remove(join(root, ".cache"), { recursive: true }).catch(() => {});
    await edit(root, smallKey, (e) => (e.outputs["count.txt"].hash = bigHash));
    const status = await cli(root, ["status"]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stderr, field("outputsHash: the outputs hash to [0-9a-f]{12}…, the entry says"));
    assert.match(status.stdout + status.stderr, /count@small: run/);
    const r = await cli(root, ["reproduce"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, field("outputsHash"));
    assert.match(r.stderr, /▶ count@small: running/);
    assert.match(r.stderr, /✓ count@big: restored from remote/);
    assert.notEqual(await Deno.readTextFile(join(root, "out/count@small/count.txt")), "");
    const relock = JSON.parse(await Deno.readTextFile(join(root, "pipeline/lock.json")));
    assert.equal(
      relock.stages["count@small"].outputs["count.txt"],
      (small.outputs as unknown as Record<string, string>)["count.txt"],
    );
    assert.deepEqual(await integrity(join(root, ".cache")), []);
    await Deno.remove(join(root, ".cache"), { recursive: true });
  });

  await t.step("the same with outputsHash recomputed: the lock file records other outputs", async () => {
    await Deno.remove(join(root, ".cache"), { recursive: true }).catch(() => {});
    await edit(root, smallKey, (e) => (e.outputs["count.txt"].hash = bigHash), true);
    const r = await cli(root, ["reproduce"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, field(`outputs\\["count\\.txt"\\]: [0-9a-f]{12}…, the lock file records [0-9a-f]{12}…`));
    assert.match(r.stderr, /▶ count@small: running/);
    await Deno.remove(join(root, ".cache"), { recursive: true });

    const pulled = await cli(root, ["pull"]);
    assert.match(pulled.stderr, field(`outputs\\["count\\.txt"\\]`));
    assert.doesNotMatch(pulled.stdout + pulled.stderr, /✓ count@small/);
    await assert.rejects(Deno.stat(join(root, ".cache/runs", `${smallKey}.json`)));
    await Deno.remove(join(root, ".cache"), { recursive: true });
  });

  await t.step("another run's entry stored under this key: key does not match", async () => {
    await Deno.remove(join(root, ".cache"), { recursive: true }).catch(() => {});
    await Deno.copyFile(remoteEntry(root, big.key), remoteEntry(root, smallKey));
    const r = await cli(root, ["reproduce"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(
        `✗ the run entry ${smallKey}\\.json in pipeline/remote is corrupt \\(key: it says ${big.key.slice(0, 12)}…`,
      ),
    );
    assert.match(r.stderr, /▶ count@small: running/);
    await Deno.remove(join(root, ".cache"), { recursive: true });
  });

  await t.step("an output named outside its run: refused before anything is written", async () => {
    await Deno.remove(join(root, ".cache"), { recursive: true }).catch(() => {});
    await restore();
    await edit(root, smallKey, (e) => {
      e.outputs["../../../victim.txt"] = e.outputs["count.txt"];
      delete e.outputs["count.txt"];
    }, true);
    const r = await cli(root, ["reproduce"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      field(`outputs\\["\\.\\./\\.\\./\\.\\./victim\\.txt"\\]: not a relative path inside the run`),
    );
    assert.match(r.stderr, /▶ count@small: running/);
    await Deno.remove(join(root, ".cache"), { recursive: true });
  });

  await t.step("the untouched entry is restored", async () => {
    await Deno.remove(join(root, ".cache"), { recursive: true }).catch(() => {});
    await restore();
    const r = await cli(root, ["reproduce"]);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /✗/);
    assert.match(r.stderr, /✓ count@small: restored from remote/);
  });
});

Deno.test("bad inputs of issue 27: Object.prototype names, non-decimal integers, impossible caches: one line, exit 1", async () => {
  const root = await toyProject();
  assert.equal((await cli(root, ["reproduce"])).code, 0);
  assert.deepEqual(await checkBadInputs(root, trustBadInputs(root)), []);
});
