// The contract every remote backend passes (after DVC's dvc/testing/remote_tests.py): one set of
// scenarios, run by a small test file per backend (tests/pipeline/sharing/*_test.ts) against the
// real server it talks to. A run is pushed from one cache and pulled into an empty one; a corrupt
// or truncated object is refused; a push that dies before its entry leaves no entry; a run whose
// big files a size-limited remote leaves out restores thin, and says so; a rerun of a key that
// wrote more outputs completes the entry there; a second push sends nothing. A read-only backend runs the read half against a layout another backend wrote.
import assert from "node:assert/strict";
import { join } from "node:path";
import { type RunEntry, Store } from "../../pipeline/store/cache.ts";
import { objectKey, Remote } from "../../pipeline/sharing/remote.ts";
import type { Backend } from "../../pipeline/sharing/backend.ts";
import { runParts } from "./runs.ts";

/** One fresh location on the backend's server, for one scenario. */
export interface Place {
  /** The backend under test at this place. */
  backend: Backend;
  /** For a read-only backend: one that writes the same layout at the same place (a folder it serves). */
  writer?: Backend;
  /** Replace the bytes stored at rel (a damaged or truncated copy), behind the backend's back. */
  damage(rel: string, bytes: Uint8Array): Promise<void>;
}

export interface ContractOptions {
  /** A fresh place named `name` (a prefix, a folder) on the server the test started. */
  place(name: string): Promise<Place>;
  readOnly?: boolean;
}

const SMALL = '{"final": 0.5}\n';
const BIG = new Uint8Array(64 << 10).map((_, i) => (i * 2654435761) >>> 24);

/** A cache in dir holding one run: a small file and a big one (weights), and `more` files. */
async function storeWithRun(
  dir: string,
  key: string,
  more: Record<string, string> = {},
): Promise<{ store: Store; entry: RunEntry }> {
  const store = await Store.open(dir);
  const out = join(await store.makeTmp(key), "out");
  await Deno.mkdir(join(out, "sub"), { recursive: true });
  await Deno.writeTextFile(join(out, "history.json"), SMALL);
  await Deno.writeFile(join(out, "sub", "weights.bin"), BIG);
  for (const [rel, text] of Object.entries(more)) await Deno.writeTextFile(join(out, rel), text);
  const entry = await store.commit(out, runParts(key));
  return { store, entry };
}

/** The backend with its puts counted, and failing (as a killed process stops) once `failAfter` puts are done. */
function watched(inner: Backend, failAfter = Infinity): Backend & { puts: string[] } {
  const puts: string[] = [];
  return {
    url: inner.url,
    maxBytes: inner.maxBytes,
    readOnly: inner.readOnly,
    jobs: 1, // one at a time, so that "after n puts" is well defined
    dir: inner.dir,
    puts,
    open: () => inner.open?.() ?? Promise.resolve(),
    stat: (rel) => inner.stat(rel),
    holds: inner.holds && ((rel, hash) => inner.holds!(rel, hash)),
    read: (rel) => inner.read(rel),
    get: (rel, dest, on) => inner.get(rel, dest, on),
    put: async (rel, src, on) => {
      if (puts.length >= failAfter) throw new Error("killed mid-push");
      await inner.put!(rel, src, on);
      puts.push(rel);
    },
  };
}

/** Run the contract's scenarios as steps of test t. */
export async function remoteContract(t: Deno.TestContext, opts: ContractOptions) {
  const root = await Deno.makeTempDir({ prefix: "remote-contract-" });
  let n = 0;
  const key = () => String(++n).padStart(2, "0").repeat(32);
  /** A place with a run pushed to it (by the writer for a read-only backend), and the pushing cache. */
  const pushed = async (name: string, maxBytes?: number) => {
    const place = await opts.place(name);
    const k = key();
    const { store, entry } = await storeWithRun(join(root, `${name}-a`), k);
    const writer = new Remote(place.writer ?? place.backend, undefined, { maxBytes });
    await writer.push([entry], (h) => store.objectPath(h));
    return { place, entry, store, remote: new Remote(place.backend, undefined, { maxBytes }) };
  };
  /** An empty cache restoring from remote; its warnings collected. */
  const empty = async (name: string, remote: Remote) => {
    const store = await Store.open(join(root, `${name}-b`), [remote]);
    const warned: string[] = [];
    store.warn = (l) => warned.push(l);
    return { store, warned };
  };
  try {
    await t.step("push, then pull into an empty cache: the same bytes", async () => {
      const { entry, remote } = await pushed("roundtrip");
      assert.equal(await remote.has(entry.outputs["sub/weights.bin"].hash, BIG.length), true);
      const { store, warned } = await empty("roundtrip", remote);
      assert.ok(await store.remoteEntry(entry.key), "status sees it");
      const got = await store.fetch(entry.key);
      assert.deepEqual(warned, []);
      assert.equal(got?.outputsHash, entry.outputsHash);
      assert.equal(got?.absent, undefined);
      assert.deepEqual(await Deno.readFile(join(store.treeDir(entry.key), "sub/weights.bin")), BIG);
      assert.equal(await Deno.readTextFile(join(store.treeDir(entry.key), "history.json")), SMALL);
      assert.equal(await remote.readEntry("f".repeat(64)), undefined, "an absent entry is none, not an error");
    });

    for (const [what, bytes] of [["corrupt", BIG.map((b) => b ^ 1)], ["truncated", BIG.subarray(0, 1000)]] as const) {
      await t.step(`a ${what} object is refused with one line, never restored`, async () => {
        const { place, entry, remote } = await pushed(what);
        const { hash } = entry.outputs["sub/weights.bin"];
        await place.damage(objectKey(hash), bytes);
        const { store, warned } = await empty(what, remote);
        assert.equal(await store.fetch(entry.key), undefined);
        assert.equal(warned.length, 1, warned.join("\n"));
        assert.match(
          warned[0],
          new RegExp(`^✗ the remote object .*${objectKey(hash)} \\(sub/weights.bin of train-x\\) is corrupt`),
        );
        assert.equal(await store.readEntry(entry.key), undefined, "no entry");
        await assert.rejects(Deno.stat(store.objectPath(hash)), Deno.errors.NotFound, "no object");
      });
    }

    await t.step("a run whose big files the remote leaves out restores thin, and says so", async () => {
      const { entry, remote } = await pushed("thin", 1024);
      const { store, warned } = await empty("thin", remote);
      assert.deepEqual((await store.remoteEntry(entry.key))?.absent, ["sub/weights.bin"], "status predicts it");
      const thin = await store.fetch(entry.key);
      assert.deepEqual(thin?.absent, ["sub/weights.bin"]);
      assert.equal(thin?.outputsHash, entry.outputsHash, "downstream keys are those of the whole run");
      assert.deepEqual(warned, []);
    });

    if (opts.readOnly) {
      await t.step("push is refused in one line naming a writable scheme", async () => {
        const { entry, store, place } = await pushed("readonly");
        const remote = new Remote(place.backend);
        await assert.rejects(
          remote.push([entry], (h) => store.objectPath(h)),
          (e: Error & { fix?: string }) => /is read-only/.test(e.message) && /s3:\/\//.test(e.fix ?? ""),
        );
      });
      return;
    }

    await t.step("a push that dies before the entry leaves no entry; the rerun completes it", async () => {
      const place = await opts.place("killed");
      const { store, entry } = await storeWithRun(join(root, "killed-a"), key());
      const dying = watched(place.backend, 1); // one object stored, then gone
      await assert.rejects(new Remote(dying).push([entry], (h) => store.objectPath(h)), /killed mid-push/);
      assert.deepEqual(dying.puts.map((p) => p.split("/")[0]), ["objects"]);
      const remote = new Remote(place.backend);
      assert.equal(await remote.readEntry(entry.key), undefined, "no entry before all its objects");
      const rerun = watched(place.backend);
      await new Remote(rerun).push([entry], (h) => store.objectPath(h));
      assert.equal(rerun.puts.length, 2, `the stored object is not sent again: ${rerun.puts}`);
      assert.match(rerun.puts.at(-1)!, /^runs\//, "the entry last");
      const { store: b } = await empty("killed", remote);
      assert.equal((await b.fetch(entry.key))?.outputsHash, entry.outputsHash);
    });

    await t.step(
      "a rerun of the key with outputs the entry there lacks completes it (an accepted one too); one that disagrees does not",
      async () => {
        const { place, entry } = await pushed("complete");
        const remote = new Remote(place.backend);
        // Older code wrote no predictions; `--force` made them, the rest bit for bit.
        const fuller = await storeWithRun(join(root, "complete-c"), entry.key, { "predictions.npy": "p" });
        await remote.push([fuller.entry], (h) => fuller.store.objectPath(h));
        const after = await remote.readEntry(entry.key);
        assert.ok(after && !("corrupt" in after));
        assert.deepEqual(Object.keys(after.outputs).sort(), ["history.json", "predictions.npy", "sub/weights.bin"]);
        const { store } = await empty("complete", remote);
        assert.equal((await store.fetch(entry.key))?.outputsHash, fuller.entry.outputsHash);
        // Same key, other bits in a file both name: the entry there stays.
        const other = await storeWithRun(join(root, "complete-d"), entry.key, {
          "predictions.npy": "p",
          "more.txt": "m",
        });
        const changed = {
          ...other.entry,
          outputs: { ...other.entry.outputs, "history.json": { hash: "0".repeat(64), size: 1 } },
        };
        await remote.push([changed], (h) => other.store.objectPath(h));
        const kept = await remote.readEntry(entry.key);
        assert.ok(kept && !("corrupt" in kept));
        assert.deepEqual(kept.outputs, after.outputs);
        // A run carried over by accept (older code's bytes, its curve verified) gives way to the current
        // code's rerun of its key, whose history.json differs as bytes (`--force` compared the curves).
        const place2 = await opts.place("carried"), k = key(), carriedOver = new Remote(place2.backend);
        const old = await storeWithRun(join(root, "carried-a"), k);
        const accepted = { from: "a".repeat(64), verifiedSteps: 1, at: "2026-11-30T08:09:42.137Z" };
        await carriedOver.push([{ ...old.entry, record: { accepted } }], (h) => old.store.objectPath(h));
        const rerun = await storeWithRun(join(root, "carried-b"), k, {
          "history.json": '{"final": 0.5, "evals": []}\n',
          "predictions.npy": "p",
        });
        await carriedOver.push([rerun.entry], (h) => rerun.store.objectPath(h));
        const now = await carriedOver.readEntry(k);
        assert.ok(now && !("corrupt" in now));
        assert.equal(now.outputsHash, rerun.entry.outputsHash);
        assert.equal(now.record?.accepted, undefined);
      },
    );

    await t.step("a second push sends nothing", async () => {
      const { place, entry, store } = await pushed("again");
      const again = watched(place.backend);
      const held = await new Remote(again).push([entry], (h) => store.objectPath(h));
      assert.deepEqual([...held], [entry.key]);
      assert.deepEqual(again.puts, []);
    });
  } finally {
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
}
