// Cache locks that several hosts sharing one cache can trust (two processes
// presenting different host identities through $PIPELINE_HOST), copies where hard
// links cannot cross filesystems, and the collection of stale checkpoints.
import assert from "node:assert/strict";
import { join } from "node:path";
import { Store } from "../../../pipeline/store/cache.ts";
import { hostId, parseOwner } from "../../../pipeline/store/lease.ts";
import { localRef } from "../../../pipeline/executors/local.ts";
import { runParts } from "../../support/runs.ts";

const CACHE = new URL("../../../pipeline/store/cache.ts", import.meta.url).pathname;
const dec = new TextDecoder();

/** A process on "host" that takes lock "x", says so, holds it for holdMs, then releases it. */
function holder(cache: string, host: string, holdMs: number, leaseMs = 3000) {
  const code = `import { Store } from ${JSON.stringify(CACHE)};
const store = await Store.open(${JSON.stringify(cache)});
const release = await store.lock("x", (who) => console.log("waiting for " + who));
console.log("got " + Date.now());
await new Promise((r) => setTimeout(r, ${holdMs}));
await release();
console.log("released " + Date.now());`;
  return new Deno.Command(Deno.execPath(), {
    args: ["eval", code],
    env: { PIPELINE_HOST: host, PIPELINE_LOCK_LEASE_MS: String(leaseMs) },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
}

async function firstLine(child: Deno.ChildProcess, re: RegExp): Promise<string> {
  const reader = child.stdout.getReader();
  let text = "";
  while (!re.test(text)) {
    const { value, done } = await reader.read();
    if (done) break;
    text += dec.decode(value);
  }
  reader.releaseLock();
  return text;
}

Deno.test("locks across hosts: another host's lock is waited for while its lease is renewed, never stolen", async () => {
  const cache = await Deno.makeTempDir();
  try {
    // Host a holds the lock for 7 s, more than its 3 s lease: the heartbeat keeps it.
    const a = holder(cache, "host-a", 7000);
    await firstLine(a, /got/);
    const lock = parseOwner(await Deno.readTextFile(join(cache, "locks", "x.lock")))!;
    assert.equal(lock.host, "host-a");
    assert.ok(lock.start !== "" && lock.lease > Date.now());
    const b = holder(cache, "host-b", 0);
    const out = await b.output();
    const text = dec.decode(out.stdout);
    assert.match(text, /waiting for pid \d+ on host-a/);
    const got = Number(text.match(/got (\d+)/)![1]);
    const released = Number((await firstLine(a, /released \d+\n/)).match(/released (\d+)/)![1]);
    assert.ok(got >= released, `host b took the lock ${released - got} ms before host a released it`);
    await a.status;
  } finally {
    await Deno.remove(cache, { recursive: true });
  }
});

Deno.test("locks across hosts: a killed holder is stale at once on its host, on another only when its lease expires", async () => {
  const cache = await Deno.makeTempDir();
  try {
    for (const other of ["host-a", "host-b"]) {
      const a = holder(cache, "host-a", 60_000, 8000);
      await firstLine(a, /got/);
      a.kill("SIGKILL");
      await a.status;
      const lease = parseOwner(await Deno.readTextFile(join(cache, "locks", "x.lock")))!.lease;
      const text = dec.decode((await holder(cache, other, 0, 8000).output()).stdout);
      const got = Number(text.match(/got (\d+)/)![1]);
      if (other === "host-a") {
        assert.doesNotMatch(text, /waiting/, "on its own host a dead holder's lock is stale at once");
      } else {
        assert.match(text, /waiting for pid \d+ on host-a/);
        assert.ok(got >= lease, `host b took it ${lease - got} ms before the lease expired`);
      }
    }
  } finally {
    await Deno.remove(cache, { recursive: true });
  }
});

Deno.test("locks across hosts: a stale lock of another host never gets a signal sent to a pid it names", async () => {
  const cache = await Deno.makeTempDir();
  // A live local process that looks like a stage worker: were the host ignored, it would be killed.
  const bystander = new Deno.Command("bash", { args: ["-c", "sleep 30; true", "pipeline/executors/worker.ts"] })
    .spawn();
  try {
    const store = await Store.open(cache);
    const stale = {
      host: `not-${hostId()}`,
      pid: bystander.pid,
      start: "",
      lease: Date.now() - 1,
      worker: { executor: "local", id: localRef(bystander.pid, `not-${hostId()}`) },
    };
    await Deno.writeTextFile(join(cache, "locks", "y.lock"), JSON.stringify(stale));
    const release = await store.lock("y", () => {});
    await release();
    assert.ok(await Deno.stat(`/proc/${bystander.pid}`).then(() => true, () => false), "the bystander lives");
  } finally {
    bystander.kill("SIGKILL");
    await bystander.status;
    await Deno.remove(cache, { recursive: true });
  }
});

Deno.test("locks: a dead holder's local worker is killed on takeover; a process that only got its pid is not", async () => {
  const cache = await Deno.makeTempDir();
  // Two live processes: one whose command line is a stage worker's, one that is not ("; true":
  // else bash execs sleep, and the command line is sleep's).
  const worker = new Deno.Command("bash", { args: ["-c", "sleep 30; true", "pipeline/executors/worker.ts"] }).spawn();
  const other = new Deno.Command("sleep", { args: ["30"] }).spawn();
  try {
    const store = await Store.open(cache);
    const dead = new Deno.Command("true").spawn();
    await dead.status;
    for (const [name, p] of [["w", worker], ["o", other]] as const) {
      const stale = {
        host: hostId(),
        pid: dead.pid,
        start: "",
        lease: 0,
        worker: { executor: "local", id: localRef(p.pid) },
      };
      await Deno.writeTextFile(join(cache, "locks", `${name}.lock`), JSON.stringify(stale));
      await (await store.lock(name, () => {}))();
    }
    assert.equal((await worker.status).signal, "SIGKILL", "the dead holder's worker is stopped");
    assert.ok(await Deno.stat(`/proc/${other.pid}`).then(() => true, () => false), "a process that is no worker lives");
  } finally {
    for (const p of [worker, other]) {
      try {
        p.kill("SIGKILL");
      } catch { /* ended */ }
      await p.status;
    }
    await Deno.remove(cache, { recursive: true });
  }
});

Deno.test("cache across filesystems: objects on another filesystem are copied into trees, not hard-linked", async () => {
  const cache = await Deno.makeTempDir();
  const other = await Deno.makeTempDir({ dir: "/dev/shm" }).catch(() => undefined);
  if (!other || Deno.statSync(other).dev === Deno.statSync(cache).dev) {
    console.error("skipped: no second filesystem (/dev/shm) here");
    return;
  }
  try {
    await Deno.symlink(other, join(cache, "objects"));
    const store = await Store.open(cache);
    const out = join(await store.makeTmp("k".repeat(64)), "out");
    await Deno.mkdir(out);
    await Deno.writeTextFile(join(out, "a.txt"), "hello");
    const entry = await store.commit(out, runParts("k".repeat(64), "s"));
    assert.equal(await Deno.readTextFile(join(store.treeDir(entry.key), "a.txt")), "hello");
    assert.deepEqual(await store.verify(entry), { ok: true });
  } finally {
    await Deno.remove(cache, { recursive: true });
    await Deno.remove(other, { recursive: true });
  }
});

Deno.test("gcTmp collects checkpoints no lock holds: empty or committed at once, a failed or forced run's after N days", async () => {
  const cache = await Deno.makeTempDir();
  try {
    const store = await Store.open(cache);
    const make = async (key: string, file?: string) => {
      await Deno.mkdir(store.checkpointDir(key), { recursive: true });
      if (file) await Deno.writeTextFile(join(store.checkpointDir(key), file), "x");
    };
    await make("empty");
    await make("recent", "step");
    await make("old", "step");
    const tenDaysAgo = new Date(Date.now() - 10 * 86_400_000);
    await Deno.utime(store.checkpointDir("old"), tenDaysAgo, tenDaysAgo);
    await make("held");
    // A committed run's leftover checkpoint goes; one written after its key's entry (a --force rerun) stays.
    for (const key of ["committed", "forced"]) await Deno.writeTextFile(store.entryPath(key), "{}");
    await make("committed", "step");
    const hourAgo = new Date(Date.now() - 3_600_000);
    await Deno.utime(join(store.checkpointDir("committed"), "step"), hourAgo, hourAgo);
    await Deno.utime(store.checkpointDir("committed"), hourAgo, hourAgo);
    await Deno.utime(store.entryPath("forced"), hourAgo, hourAgo); // its checkpoint: written now
    await make("forced", "step");
    const release = await store.lock("held", () => {});
    // A dead process's tmp dir (and its task dirs) go too; a live one's stays.
    const dead = join(cache, "tmp", `abc.999999.1234abcd@${hostId().replace(/[^A-Za-z0-9_-]/g, "_")}`);
    await Deno.mkdir(join(dead, "tasks", "task-1"), { recursive: true });
    const live = await store.makeTmp("def");
    await store.gcTmp();
    await release();
    const left = [...Deno.readDirSync(join(cache, "checkpoints"))].map((e) => e.name).sort();
    assert.deepEqual(left, ["forced", "held", "recent"]);
    assert.ok(!(await Deno.stat(dead).then(() => true, () => false)));
    await Deno.stat(live);
  } finally {
    await Deno.remove(cache, { recursive: true });
  }
});
