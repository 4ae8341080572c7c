// Cross-process, cross-host locks of the cache (locks/<name>.lock: an owner record with a lease,
// renewed by a heartbeat; see lease.ts), and the in-use markers gc respects (locks/inuse.<pid>).
import { join } from "node:path";
import { writeFileAtomic } from "./hash.ts";
import type { WorkerRef } from "../executors/executor.ts";
import { describeOwner, hostId, leaseMs, me, type Owner, ownerAlive, parseOwner, sameOwner } from "./lease.ts";
import { stopWorker } from "../executors/registry.ts";

export class Locks {
  /** Locks this process holds: path → its owner record, renewed by a heartbeat. */
  private held = new Map<string, Owner>();
  /** Locks named for a lease too far ahead (clock skew), each once. */
  private skewWarned = new Set<string>();

  constructor(readonly dir: string, private warn: (line: string) => void) {}

  /** Who holds `name`'s lock, if anyone alive does ("pid 12", or "pid 12 on node7"). */
  async holder(name: string): Promise<string | undefined> {
    const owner = parseOwner(await Deno.readTextFile(this.path(name)).catch(() => ""));
    return owner && ownerAlive(owner) ? describeOwner(owner) : undefined;
  }

  /** Record, in the lock we hold, who computes `name` (its executor's reference), so a later run can stop it if we die. */
  async lockWorker(name: string, worker: WorkerRef) {
    const path = this.path(name);
    const owner = this.held.get(path);
    if (!owner) return;
    owner.worker = worker;
    await writeFileAtomic(path, JSON.stringify(owner));
  }

  /** Note that this process uses run `key` (gc keeps it while we live); see gc.ts. */
  async markInUse(key: string) {
    await Deno.writeTextFile(join(this.dir, `inuse.${Deno.pid}`), key + "\n", { append: true });
  }

  async clearInUse() {
    await Deno.remove(join(this.dir, `inuse.${Deno.pid}`)).catch(() => {});
  }

  /** Like lock, without waiting: undefined while another live process holds it. */
  async tryLock(name: string): Promise<(() => Promise<void>) | undefined> {
    const path = this.path(name);
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        using f = await Deno.open(path, { write: true, createNew: true });
        await f.write(new TextEncoder().encode(JSON.stringify(me()))); // the owner format lock() writes
        return () => Deno.remove(path).catch(() => {});
      } catch (e) {
        if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
      }
      if (await this.holder(name)) return undefined;
      await Deno.remove(path).catch(() => {}); // a dead holder's: take it over
    }
    return undefined;
  }

  /**
   * Exclusive right to build `key` across processes and hosts. While a live owner
   * holds it, calls onWait once and polls; a dead owner's lock is stale (see lease.ts).
   */
  async lock(name: string, onWait: (who: string) => void): Promise<() => Promise<void>> {
    const path = this.path(name);
    let warned = false;
    /** A lease too far ahead (see below): its text and when it was first seen here. */
    let far: { text: string; since: number } | undefined;
    while (true) {
      const owner = me();
      try {
        using f = await Deno.open(path, { write: true, createNew: true });
        await f.write(new TextEncoder().encode(JSON.stringify(owner)));
        return this.hold(path, owner);
      } catch (e) {
        if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
      }
      const text = await Deno.readTextFile(path).catch(() => "");
      const holder = parseOwner(text);
      // An unreadable lock is being written (createNew, then write), unless it stayed so for 10 s
      // or holds something else than an owner (garbage: named while it is removed).
      const torn = !holder && (text !== "" ||
        (await Deno.stat(path).then((i) => Date.now() - (i.mtime?.getTime() ?? 0) > 10_000, () => true)));
      // Another host's lease ends further ahead than a lease lasts: its clock is off, or the file is bad.
      // Named once with the fix; then judged by this host's clock alone: a live holder rewrites its
      // lock every lease/3, so one unchanged for a whole lease has no holder.
      let skewed = false;
      if (holder && holder.host !== hostId() && holder.lease - Date.now() > leaseMs() * 1.5) {
        if (far?.text !== text) far = { text, since: Date.now() };
        if (!this.skewWarned.has(path)) {
          this.skewWarned.add(path);
          this.warn(
            `✗ the lock ${path} (${describeOwner(holder)}) holds a lease until ${
              new Date(holder.lease).toISOString()
            }, ` +
              `${formatMs(holder.lease - Date.now())} ahead, longer than a lease lasts (${formatMs(leaseMs())}): ` +
              `clock skew between hosts or a bad lock file — synchronise the hosts' clocks (NTP); if ${holder.host} ` +
              `runs nothing, the lock is taken over once it stays unchanged for ${formatMs(leaseMs())}`,
          );
        }
        skewed = Date.now() - far.since > leaseMs();
      } else far = undefined;
      if (torn || skewed || (holder && !ownerAlive(holder))) {
        if (torn && text !== "") {
          this.warn(`✗ the lock ${path} is corrupt (${JSON.stringify(text.slice(0, 40))}, not an owner): removing it`);
        }
        // Its engine died. Its worker may compute on (a synchronous loop, a batch job): its executor stops it first.
        if (holder?.worker) await stopWorker(holder.worker);
        // Remove only the lock judged stale: if it changed meanwhile, someone else took it over.
        if ((await Deno.readTextFile(path).catch(() => "")) === text) await Deno.remove(path).catch(() => {});
        continue;
      }
      if (!holder) {
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      if (!warned) {
        onWait(describeOwner(holder));
        warned = true;
      }
      await new Promise((r) => setTimeout(r, 150));
    }
  }

  /** Renew the lease while we hold the lock; release removes it if it still names us. */
  private hold(path: string, owner: Owner): () => Promise<void> {
    this.held.set(path, owner);
    let released = false;
    let beating = Promise.resolve();
    const beat = setInterval(() => {
      beating = (async () => {
        const now = parseOwner(await Deno.readTextFile(path).catch(() => ""));
        if (released || !sameOwner(now, owner)) return; // released, or lost (our lease expired, another took over)
        owner.lease = Date.now() + leaseMs();
        await writeFileAtomic(path, JSON.stringify(owner)).catch(() => {});
      })();
    }, leaseMs() / 3);
    Deno.unrefTimer(beat);
    return async () => {
      released = true;
      clearInterval(beat);
      await beating; // a renewal under way must not write the lock again after we removed it
      this.held.delete(path);
      if (sameOwner(parseOwner(await Deno.readTextFile(path).catch(() => "")), owner)) {
        await Deno.remove(path).catch(() => {});
      }
    };
  }

  private path(name: string) {
    return join(this.dir, `${name}.lock`);
  }
}

/** 90 s → "1m30s", 2500 ms → "2.5 s". */
function formatMs(ms: number): string {
  const s = ms / 1000;
  if (s < 60) return `${Number(s.toFixed(1))} s`;
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = Math.round(s % 60);
  return h ? `${h}h${String(m).padStart(2, "0")}m` : `${m}m${String(r).padStart(2, "0")}s`;
}
