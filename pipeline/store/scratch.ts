// Scratch space of the cache (tmp/<key>.<pid>.<rand>@<host>: one private directory per run or
// download) and its collection after a crash: tmp/ directories and run-entry temporaries whose
// writer is gone, checkpoints no run will resume from, old job logs of executors.
import { join } from "node:path";
import { atomicTmpPid } from "./hash.ts";
import { hostTag } from "./lease.ts";
import { listFiles, newestMtime, processAlive } from "./files.ts";
import type { Store } from "./cache.ts";

/** Days after which a failed run's checkpoint (or an old job log) is collected: $PIPELINE_CHECKPOINT_DAYS, 7. */
const keepDays = () => Number(Deno.env.get("PIPELINE_CHECKPOINT_DAYS") ?? 7);

export class Scratch {
  constructor(private store: Store) {}

  /** A fresh private directory for one run; removed by the caller or by gc after a crash. */
  async makeTmp(key: string): Promise<string> {
    // key.pid.uuid@host: gcTmp judges the pid only on its own host.
    const dir = join(
      this.store.dir,
      "tmp",
      `${key.slice(0, 16)}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}@${hostTag()}`,
    );
    await Deno.mkdir(dir, { recursive: true });
    return dir;
  }

  /**
   * Remove temporary directories of processes that no longer exist (killed runs; another
   * host's after keepDays()), and checkpoints no lock holds: at once when empty or
   * their run is committed, after keepDays() when a failed run left them to resume from.
   */
  async gcTmp() {
    const old = (path: string, days: number) =>
      Deno.stat(path).then((i) => Date.now() - (i.mtime?.getTime() ?? 0) > days * 86_400_000, () => false);
    for await (const e of Deno.readDir(join(this.store.dir, "tmp"))) {
      const [base, host = hostTag()] = e.name.split("@");
      const pid = Number(base.split(".")[1]);
      const path = join(this.store.dir, "tmp", e.name);
      const dead = host.split(".")[0] === hostTag()
        ? pid && pid !== Deno.pid && !processAlive(pid)
        : await old(path, keepDays()); // another host's: we cannot see its process, only its age
      if (dead) await Deno.remove(path, { recursive: true }).catch(() => {});
    }
    await this.gcPartialEntries();
    for await (const e of Deno.readDir(join(this.store.dir, "checkpoints"))) {
      if (await this.store.holder(e.name)) continue;
      const path = this.store.checkpointDir(e.name);
      const empty = (await listFiles(path).catch(() => [""])).length === 0;
      // Committed: the key's run entry is newer than every file of the checkpoint. A checkpoint
      // written after its key's entry is a --force rerun's, kept to resume like a failed run's.
      const entryAt = await Deno.stat(this.store.entryPath(e.name)).then(
        (i) => i.mtime?.getTime() ?? 0,
        () => undefined,
      );
      const committed = entryAt !== undefined && (await newestMtime(path)) <= entryAt;
      if (empty || committed || (await old(path, keepDays()))) {
        await Deno.remove(path, { recursive: true }).catch(() => {});
      }
    }
    for await (const e of Deno.readDir(join(this.store.dir, "logs"))) {
      const path = join(this.store.dir, "logs", e.name);
      if (await old(path, keepDays())) await Deno.remove(path).catch(() => {});
    }
  }

  /**
   * A run entry's temporary sibling (runs/<key>.json.<pid>.<rand>.tmp, see writeFileAtomic) whose
   * writer is gone: a publish that failed or was killed. Collected by gcTmp (reproduce, pull) and gc.
   */
  async gcPartialEntries() {
    const old = (path: string, secs: number) =>
      Deno.stat(path).then((i) => Date.now() - (i.mtime?.getTime() ?? 0) > secs * 1000, () => false);
    for await (const e of Deno.readDir(join(this.store.dir, "runs"))) {
      const pid = atomicTmpPid(e.name);
      if (!pid || pid === Deno.pid) continue;
      const path = join(this.store.dir, "runs", e.name);
      // A write takes milliseconds: a minute-old one whose pid is not alive here is no other host's
      // either (a shared cache); any is collected after keepDays().
      if ((!processAlive(pid) && (await old(path, 60))) || (await old(path, keepDays() * 86_400))) {
        await Deno.remove(path).catch(() => {});
      }
    }
  }
}
