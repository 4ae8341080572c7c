// Runs restored from remotes into the cache: an entry is trusted only as entry.ts allows (and the
// lock file agrees), every object only once it hashes to what the entry records; a run a remote
// keeps only its small files of (maxBytes) is restored thin (RunEntry.absent) and filled later.
import { dirname, join } from "node:path";
import { hashFile, writeFileAtomic } from "./hash.ts";
import { isCorrupt, lockProblem, type RunEntry } from "./entry.ts";
import { linkOrCopy } from "./files.ts";
import type { LockStage } from "../engine/lockfile.ts";
import type { Remote } from "../sharing/remote.ts";
import type { Store } from "./cache.ts";

export class Transfers {
  /** Remote entries refused (their ✗ lines), each named once. */
  private refused = new Set<string>();

  constructor(private store: Store) {}

  /**
   * The remote's entry for key, if it is one to trust (see entry.ts): each refusal is a ✗ line
   * naming the entry and the field. `locked`: what the lock file records for the stage.
   */
  private async trustedEntry(remote: Remote, key: string, locked?: LockStage): Promise<RunEntry | undefined> {
    const entry = await remote.readEntry(key);
    if (!entry) return undefined;
    const problem = isCorrupt(entry) ? entry.corrupt : lockProblem(entry, locked);
    if (!problem) return entry as RunEntry;
    const stage = entry.stage ? ` (${entry.stage})` : "";
    const line = `✗ the run entry ${key}.json${stage} in ${remote.url} is corrupt (${problem}): not restored from it`;
    if (!this.refused.has(line)) this.store.warn(line); // once, though fetch asks for a whole run, then a thin one
    this.refused.add(line);
    return undefined;
  }

  /**
   * The remote's entry for key if fetch() would restore it (every file there, with its hash),
   * read without copying anything: what status and --dry-run ask.
   */
  async remoteEntry(key: string, locked?: LockStage): Promise<RunEntry | undefined> {
    let thin: RunEntry | undefined;
    for (const remote of this.store.remotes) {
      const entry = await this.trustedEntry(remote, key, locked);
      if (!entry) continue;
      const files = Object.entries(entry.outputs);
      const there = await Promise.all(files.map(([, { hash, size }]) => remote.has(hash, size)));
      if (there.every(Boolean)) return entry;
      const absent = files.filter((_, i) => !there[i]).map(([rel]) => rel);
      if (!thin && keepsSmallOnly(remote, entry, absent)) thin = { ...entry, absent };
    }
    return thin;
  }

  /**
   * Copy a run from the first remote that has it whole, checking every file's hash; else, from the
   * committed folder, the run without its big files (see RunEntry.absent); undefined if neither.
   */
  async fetch(key: string, locked?: LockStage): Promise<RunEntry | undefined> {
    if (!this.store.writable) return undefined;
    return await this.fetchFrom(key, false, locked) ?? await this.fetchFrom(key, true, locked);
  }

  private async fetchFrom(key: string, thin: boolean, locked?: LockStage): Promise<RunEntry | undefined> {
    for (const remote of this.store.remotes) {
      if (thin && remote.maxBytes === Infinity) continue; // it keeps every file: whole or nothing
      const entry = await this.trustedEntry(remote, key, locked);
      if (!entry) continue;
      const tmp = await this.store.makeTmp(key);
      try {
        const whole = await Promise.all(
          Object.entries(entry.outputs).map(async ([rel, { hash, size }]) => {
            const dest = join(tmp, rel);
            await Deno.mkdir(dirname(dest), { recursive: true });
            if ((await this.store.stats.hash(this.store.objectPath(hash)).catch(() => "")) === hash) {
              await Deno.link(this.store.objectPath(hash), dest); // already here (another run's output): no transfer
              return true;
            }
            if (thin && size > remote.maxBytes) return rel; // kept elsewhere
            if (!(await remote.download(hash, size, dest))) {
              if (!thin && size > remote.maxBytes) return false; // not an error
              this.store.warn(
                `✗ the run of ${entry.stage} in ${remote.url} is incomplete (${rel}: ${remote.where(hash)} ` +
                  "is missing): not restored from it",
              );
              return false;
            }
            const actual = await hashFile(dest);
            if (actual === hash) return true;
            // A damaged or truncated remote copy is never trusted.
            this.store.warn(
              `✗ the remote object ${remote.where(hash)} (${rel} of ${entry.stage}) is corrupt ` +
                `(${(await Deno.stat(dest)).size} bytes, sha256 ${actual.slice(0, 12)}…; recorded ${size} bytes, ` +
                `${hash.slice(0, 12)}…): not restored from it`,
            );
            return false;
          }),
        );
        if (!whole.every(Boolean)) continue;
        const absent = whole.filter((w): w is string => typeof w === "string");
        if (thin !== absent.length > 0) continue;
        const { outputs: _o, outputsHash: _h, absent: _a, ...partial } = entry;
        return await this.store.commit(tmp, partial, absent.length ? { ...entry, absent } : undefined);
      } finally {
        await Deno.remove(tmp, { recursive: true }).catch(() => {});
        await Deno.remove(`${tmp}.tree`, { recursive: true }).catch(() => {});
      }
    }
    return undefined;
  }

  /**
   * Fetch a thin run's absent outputs from the remotes that have them (each checked against its
   * hash) into its tree. Returns the entry, whole if it could be filled, with what is still absent.
   */
  async fill(entry: RunEntry): Promise<RunEntry> {
    if (!entry.absent?.length || !this.store.writable) return entry;
    const absent: string[] = [];
    for (const rel of entry.absent) {
      const { hash, size } = entry.outputs[rel];
      const obj = this.store.objectPath(hash);
      let have = (await this.store.stats.hash(obj).catch(() => "")) === hash;
      for (const remote of this.store.remotes) {
        if (have) break;
        const tmp = `${obj}.${Deno.pid}.part`;
        await Deno.mkdir(dirname(obj), { recursive: true });
        try {
          if (!(await remote.download(hash, size, tmp))) continue;
          if ((await hashFile(tmp)) !== hash) {
            this.store.warn(
              `✗ the remote object ${remote.where(hash)} (${rel} of ${entry.stage}) is corrupt: not used`,
            );
            continue;
          }
          await Deno.chmod(tmp, 0o444);
          await Deno.rename(tmp, obj);
          have = true;
        } finally {
          await Deno.remove(tmp).catch(() => {});
        }
      }
      if (!have) {
        absent.push(rel);
        continue;
      }
      const dest = join(this.store.treeDir(entry.key), rel);
      await Deno.mkdir(dirname(dest), { recursive: true });
      await Deno.remove(dest).catch(() => {});
      await linkOrCopy(obj, dest);
    }
    const { absent: _, ...whole } = entry;
    const filled: RunEntry = absent.length ? { ...whole, absent } : whole;
    await writeFileAtomic(this.store.entryPath(entry.key), JSON.stringify(filled, null, 1));
    return filled;
  }
}

/** Does a remote that keeps small files only (the committed folder) lack exactly the entry's big files? */
function keepsSmallOnly(remote: Remote, entry: RunEntry, absent: string[]): boolean {
  return absent.every((rel) => entry.outputs[rel].size > remote.maxBytes);
}
