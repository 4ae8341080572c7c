// `push` and `pull` (like `dvc push` / `dvc pull`): the runs the lock file names, copied to a
// remote, or restored from the remotes into the cache and linked into the project.
import type { RunEntry } from "../store/cache.ts";
import { isCorrupt } from "../store/entry.ts";
import { materialise } from "./publish.ts";
import { completes, type Remote } from "../sharing/remote.ts";
import type { Workspace } from "./workspace.ts";

/**
 * Copy the lock file's runs into the last remote (the shared one if set, else the committed
 * folder, which takes every run entry and the files up to 8 MiB). Returns the stages copied now, those
 * the remote held already (unchanged runs), and those it could not copy. A run whose remote entry
 * lacks outputs it has (older code wrote none; `--force` made them) replaces that entry.
 */
export async function push(
  ws: Workspace,
  targets?: string[],
  remote: Remote = ws.store.remotes.at(-1)!,
): Promise<{ pushed: string[]; already: string[]; skipped: string[] }> {
  const lock = await ws.lock.read();
  const names = targets?.length ? targets.flatMap((t) => ws.graph.resolve(t)) : Object.keys(lock.stages);
  const entries = new Map<string, RunEntry>();
  for (const name of names) {
    const key = lock.stages[name]?.key;
    const entry = key ? await ws.store.readEntry(key) : undefined;
    if (entry && (await ws.store.verify(entry)).ok) entries.set(name, entry);
  }
  // Held unchanged: an entry there that this cache's run does not complete (remote.ts).
  const there = async (name: string) => {
    const key = lock.stages[name]?.key;
    const e = key ? await remote.readEntry(key).catch(() => undefined) : undefined;
    const mine = entries.get(name);
    return !!e && !isCorrupt(e) && !(mine && completes(mine, e));
  };
  const already = new Set<string>();
  for (const name of names) if (await there(name)) already.add(name);
  const held = await remote.push([...entries.values()], (h) => ws.store.objectPath(h));
  const pushed = names.filter((n) => held.has(entries.get(n)?.key ?? "") && !already.has(n));
  return {
    pushed,
    already: names.filter((n) => already.has(n)),
    skipped: names.filter((n) => !pushed.includes(n) && !already.has(n)),
  };
}

/** Restore the lock file's runs from the remotes into the cache and link out/<stage> (like `dvc pull`). */
export async function pull(
  ws: Workspace,
  targets?: string[],
): Promise<{ pulled: string[]; missing: string[]; thin: string[]; neverRun: string[] }> {
  await ws.store.gcTmp(); // partial downloads of a killed pull
  const lock = await ws.lock.read();
  const names = targets?.length
    ? targets.flatMap((t) => ws.graph.resolve(t))
    : Object.keys(lock.stages).filter((n) => ws.graph.nodes.has(n)); // a stage since removed: nothing to link
  const neverRun = names.filter((n) => !lock.stages[n]); // e.g. a seed declared but not trained yet
  const got = await Promise.all(
    names.filter((n) => lock.stages[n]).map(async (name) => {
      const key = lock.stages[name]?.key;
      let entry = key ? await ws.store.readOrFetch(key, lock.stages[name]) : undefined;
      if (!entry || !(await ws.store.verify(entry)).ok) return false;
      entry = await ws.store.fill(entry); // a thin run's big files, from a remote that has them
      await materialise(ws, ws.graph.nodes.get(name)!, entry);
      return entry.absent?.length ? `${name} (without ${entry.absent.join(", ")})` : true;
    }),
  );
  await ws.store.stats.save();
  const locked = names.filter((n) => lock.stages[n]);
  return {
    pulled: locked.filter((_, i) => got[i] === true),
    missing: locked.filter((_, i) => !got[i]),
    thin: got.filter((g): g is string => typeof g === "string"),
    neverRun,
  };
}
