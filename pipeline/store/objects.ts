// Objects and trees: a finished run's files moved into objects/ (one copy per content, read-only)
// and linked into trees/<key>/, its entry written last (the commit point); checking a run's files
// against its entry; forgetting a run whose bytes went bad.
import { dirname, join } from "node:path";
import { writing } from "../engine/faults.ts";
import { canonicalJson, sha256, writeFileAtomic } from "./hash.ts";
import type { RunEntry, Verdict } from "./entry.ts";
import { linkOrCopy, listFiles, moveOrCopy } from "./files.ts";
import type { Store } from "./cache.ts";

export class Objects {
  constructor(private store: Store) {}

  /** Do the entry's files still hold the bytes it recorded? (stat cache first, bytes when stat changed) */
  async verify(entry: RunEntry): Promise<Verdict> {
    for (const [rel, { hash }] of Object.entries(entry.outputs)) {
      if (entry.absent?.includes(rel)) continue;
      let actual: string;
      try {
        actual = await this.store.stats.hash(join(this.store.treeDir(entry.key), rel));
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
        actual = "missing";
      }
      if (actual !== hash) return { ok: false, file: rel, expected: hash, actual };
    }
    return { ok: true };
  }

  /** Forget a run whose bytes went bad: its entry, its tree, and the bad object. */
  async discard(entry: RunEntry, badHash?: string) {
    await Deno.remove(this.store.entryPath(entry.key)).catch(() => {});
    await Deno.remove(this.store.treeDir(entry.key), { recursive: true }).catch(() => {});
    if (badHash) await Deno.remove(this.store.objectPath(badHash)).catch(() => {});
  }

  /**
   * Move a finished run's files into the store and write its entry (last).
   * `outDir` must be inside this store's tmp/ (same filesystem: renames are atomic).
   */
  /**
   * `thin`: the files in outDir are those of a thin run: its entry names every output of `thin.outputs`, the
   * absent ones by hash, so downstream keys are those of the whole run (its outputsHash is checked on reading).
   */
  async commit(
    outDir: string,
    partial: Omit<RunEntry, "outputs" | "outputsHash">,
    thin?: Pick<RunEntry, "outputs" | "outputsHash" | "absent">,
  ): Promise<RunEntry> {
    const outputs: RunEntry["outputs"] = {};
    const treeTmp = `${outDir}.tree`;
    await Deno.mkdir(treeTmp, { recursive: true });
    const linked: Array<[string, string]> = [];
    for (const rel of await listFiles(outDir)) {
      const src = join(outDir, rel);
      const info = await Deno.stat(src);
      const hash = await this.store.stats.rehash(src);
      this.store.stats.forget(src);
      const obj = this.store.objectPath(hash);
      let have = false;
      try {
        have = (await this.store.stats.hash(obj)) === hash;
        if (!have) await Deno.remove(obj); // a corrupted object: replace it
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      }
      await Deno.mkdir(dirname(join(treeTmp, rel)), { recursive: true });
      if (have) {
        // gc may remove an unlinked object at any moment: if it just did, store ours instead.
        have = await Deno.link(obj, join(treeTmp, rel)).then(() => true, (e) => {
          if (e instanceof Deno.errors.NotFound) return false;
          throw e;
        });
      }
      if (!have) {
        // Linked into the tree before it becomes an object: an object with one link is garbage to gc.
        await Deno.mkdir(dirname(obj), { recursive: true });
        await Deno.chmod(src, 0o444);
        await linkOrCopy(src, join(treeTmp, rel));
        await moveOrCopy(src, obj);
      }
      linked.push([join(this.store.treeDir(partial.key), rel), hash]);
      outputs[rel] = { hash, size: info.size };
    }
    const tree = this.store.treeDir(partial.key);
    await Deno.remove(tree, { recursive: true }).catch(() => {}); // a leftover of a killed commit
    await Deno.rename(treeTmp, tree);
    // Linking changed the inodes' ctime: record the fresh stat with the hash we just computed.
    for (const [path, hash] of linked) this.store.stats.remember(path, await Deno.stat(path), hash);
    const entry: RunEntry = thin
      ? { ...partial, outputs: thin.outputs, outputsHash: thin.outputsHash, absent: thin.absent }
      : { ...partial, outputs, outputsHash: sha256(canonicalJson(outputs)) };
    const text = JSON.stringify(entry, null, 1);
    await writing(
      this.store.entryPath(entry.key),
      text.length,
      () => writeFileAtomic(this.store.entryPath(entry.key), text),
    );
    await this.store.stats.save();
    return entry;
  }

  /**
   * The same outputs under another key (accept): hard links to the objects, committed like a run. A thin
   * run stays thin: its absent files are carried over by hash (as a thin restore writes them, transfers.ts).
   */
  async relink(from: RunEntry, partial: Omit<RunEntry, "outputs" | "outputsHash">): Promise<RunEntry> {
    const tmp = await this.store.makeTmp(partial.key);
    try {
      const out = join(tmp, "out");
      await Deno.mkdir(out, { recursive: true });
      const absent = from.absent ?? [];
      for (const [rel, { hash }] of Object.entries(from.outputs)) {
        if (absent.includes(rel)) continue;
        await Deno.mkdir(dirname(join(out, rel)), { recursive: true });
        await linkOrCopy(this.store.objectPath(hash), join(out, rel));
      }
      const { absent: _a, ...rest } = partial as RunEntry;
      return await this.commit(out, rest, absent.length ? { ...from, absent } : undefined);
    } finally {
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
    }
  }
}
