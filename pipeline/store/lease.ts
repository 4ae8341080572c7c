// Who holds a cache lock, in a form that hosts sharing one cache directory
// (NFS, Lustre, …) can all judge: host + pid + process start time, and a lease
// its holder renews by a heartbeat. On the holder's own host /proc says at once
// whether it still lives (the start time guards against a reused pid); from
// another host only the lease can say, so such a lock is stale only once its
// lease has expired — and a process on another host is never signalled.
// Hosts' clocks must agree to well within the lease (NTP does).
import type { WorkerRef } from "../executors/executor.ts";

export interface Owner {
  host: string;
  pid: number;
  /** The process's start time (clock ticks since boot, /proc/<pid>/stat); "" when unknown. */
  start: string;
  /** Milliseconds since the epoch after which, without a renewal, the lock is stale. */
  lease: number;
  /**
   * Who computes the locked run for the holder, as its executor named it (opaque here: a stale
   * lock's worker is stopped through the executor registry). Older locks hold {pid} or {job}.
   */
  worker?: WorkerRef | { pid?: number; start?: string; job?: string };
}

/** This host's identity: $PIPELINE_HOST (tests present two hosts this way), else the host name. */
export function hostId(): string {
  return Deno.env.get("PIPELINE_HOST") || Deno.hostname();
}

/** The host as a file-name part (no dots: names in tmp/ are split on them). */
export function hostTag(host = hostId()): string {
  return host.replace(/[^A-Za-z0-9_-]/g, "_");
}

export function leaseMs(): number {
  return Number(Deno.env.get("PIPELINE_LOCK_LEASE_MS")) || 60_000;
}

/** Field 22 of /proc/<pid>/stat (start time in clock ticks since boot); undefined if no such process. */
export function startTime(pid: number): string | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

export function me(): Owner {
  return { host: hostId(), pid: Deno.pid, start: startTime(Deno.pid) ?? "", lease: Date.now() + leaseMs() };
}

/** A lock file's owner; the old format ("pid worker") is read as a local owner without a lease. */
export function parseOwner(text: string): Owner | undefined {
  try {
    const o = JSON.parse(text);
    if (o && typeof o.pid === "number" && typeof o.host === "string") return o;
  } catch { /* the old format */ }
  const [pid, worker] = text.split(" ").map(Number);
  if (!pid) return undefined;
  return { host: hostId(), pid, start: "", lease: 0, worker: worker ? { pid: worker } : undefined };
}

export function sameOwner(a: Owner | undefined, b: Owner): boolean {
  return !!a && a.host === b.host && a.pid === b.pid && a.start === b.start;
}

/** Is the owner still there? Its own host asks /proc; another host trusts the lease until it expires. */
export function ownerAlive(o: Owner, now = Date.now()): boolean {
  if (o.host !== hostId() || Deno.build.os !== "linux") return o.lease > now;
  const start = startTime(o.pid);
  return start !== undefined && (!o.start || start === o.start);
}

/** "pid 12" here, "pid 12 on node7" for another host: for "waiting for …" lines. */
export function describeOwner(o: Owner): string {
  return o.host === hostId() ? `pid ${o.pid}` : `pid ${o.pid} on ${o.host}`;
}
