// `gc`: remove cache runs (entry, tree) no longer wanted, then the objects no run links to
// (like `dvc gc`). Kept: the runs every pipeline/lock*.json records, the runs in the committed
// remote, the last N runs of each stage, and whatever a live `reproduce` uses: the keys it holds
// locks on, and those it listed in .cache/locks/inuse.<pid>.
import { me, ownerAlive, parseOwner, sameOwner } from "./lease.ts";
import { join } from "node:path";
import { processAlive, type RunEntry, type Store } from "./cache.ts";

export interface GcResult {
  /** "stage key-prefix" of each run removed (or that would be). */
  runs: string[];
  objects: number;
  bytes: number;
}

export async function gc(
  store: Store,
  opts: { lockFiles: string[]; keepLast?: number; dryRun?: boolean },
): Promise<GcResult> {
  if (!opts.dryRun) await store.gcPartialEntries(); // a failed publish's runs/<key>.json.<pid>.<rand>.tmp
  const keep = new Set<string>();
  for (const file of opts.lockFiles) {
    const lock = await readJson<{ stages: Record<string, { key: string }> }>(file);
    for (const s of Object.values(lock?.stages ?? {})) keep.add(s.key);
  }
  if (store.folderRemote) {
    for (const f of await names(join(store.folderRemote, "runs"))) keep.add(f.replace(/\.json$/, ""));
  }
  const entries: RunEntry[] = [];
  for (const f of await names(join(store.dir, "runs"))) {
    const e = await readJson<RunEntry>(join(store.dir, "runs", f));
    if (e) entries.push(e);
  }
  // The newest N runs of each stage.
  const byStage = Map.groupBy(entries, (e) => e.stage);
  for (const runs of byStage.values()) {
    runs.sort((a, b) => b.startedAt.localeCompare(a.startedAt)).slice(0, opts.keepLast ?? 0).forEach((e) =>
      keep.add(e.key)
    );
  }
  const result: GcResult = { runs: [], objects: 0, bytes: 0 };
  const referenced = new Set<string>();
  for (const e of entries) {
    if (keep.has(e.key) || (await inUse(store)).has(e.key)) {
      for (const o of Object.values(e.outputs)) referenced.add(o.hash);
      continue;
    }
    if (!opts.dryRun) {
      // Holding the key's lock: a reproduce that wants this run now waits, then finds it gone and reruns it.
      const release = await store.tryLock(e.key);
      if (!release) continue;
      try {
        if ((await inUse(store)).has(e.key)) continue;
        await Deno.remove(store.entryPath(e.key)); // the entry first: a half-removed tree is never trusted
        await Deno.remove(store.treeDir(e.key), { recursive: true }).catch(() => {});
      } finally {
        await release();
      }
    }
    result.runs.push(`${e.stage} ${e.key.slice(0, 8)}`);
  }
  // Trees without an entry: a killed commit's leftovers, unless a live process is committing one now.
  const withEntry = new Set(entries.map((e) => e.key));
  for (const key of await names(join(store.dir, "trees"))) {
    if (withEntry.has(key) || opts.dryRun || (await store.holder(key))) continue;
    await Deno.remove(store.treeDir(key), { recursive: true }).catch(() => {});
  }
  // An object no tree links to any more has one link left; a run being committed links its files first.
  for (const prefix of await names(join(store.dir, "objects"))) {
    for (const rest of await names(join(store.dir, "objects", prefix))) {
      const hash = prefix + rest;
      if (referenced.has(hash)) continue;
      const path = store.objectPath(hash);
      const info = await Deno.stat(path).catch(() => undefined);
      if (!info || (!opts.dryRun && (info.nlink ?? 1) > 1)) continue;
      if (!opts.dryRun) await Deno.remove(path).catch(() => {});
      result.objects++;
      result.bytes += info.size;
    }
  }
  return result;
}

/** Keys live reproduce processes use: those listed in their inuse.<pid> files and those they hold locks on. */
async function inUse(store: Store): Promise<Set<string>> {
  const keys = new Set<string>();
  const dir = join(store.dir, "locks");
  for (const f of await names(dir)) {
    const inuse = /^inuse\.(\d+)$/.exec(f);
    if (inuse && processAlive(Number(inuse[1]))) {
      const text = await Deno.readTextFile(join(dir, f)).catch(() => "");
      for (const k of text.split("\n")) if (k) keys.add(k);
    } else if (f.endsWith(".lock")) {
      const owner = parseOwner(await Deno.readTextFile(join(dir, f)).catch(() => ""));
      if (owner && ownerAlive(owner) && !sameOwner(owner, me())) keys.add(f.slice(0, -5)); // not gc's own lock
    }
  }
  return keys;
}

async function names(dir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) out.push(e.name);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out.sort();
}

async function readJson<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch {
    return undefined;
  }
}
