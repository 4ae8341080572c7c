// Issue 27, "trust nothing that is not hashed" (the engine's part): edited remote run entries,
// caches in impossible places, parameters named like Object.prototype members, integers that
// are not plain decimals, leftovers of a failed publish, and the weak spots (a silent download
// server, passwords in URLs, a lease from the far future, accept's in-use marker, pull --profile).
// Each case failed before the fix. tests/support/faults_harness.ts holds the machinery.
import assert from "node:assert/strict";
import { join } from "node:path";
import { canonicalJson, sha256, writeFileAtomic } from "../../../pipeline/store/hash.ts";
import {
  checkBadInputs,
  cli,
  integrity,
  notOneLine,
  projectCopy,
  ROOT,
  toyProject,
  trustBadInputs,
} from "../../support/faults_harness.ts";

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

/** A pid that no process has now (one that just exited). */
async function deadPid(): Promise<number> {
  const child = new Deno.Command("true").spawn();
  await child.status;
  return child.pid;
}

Deno.test("a failed publish leaves no temporary entry: removed at once, else by the next run and by gc", async () => {
  // writeFileAtomic's own cleanup: the rename fails (a directory is in the way), the temporary goes.
  const dir = await Deno.makeTempDir({ prefix: "trust-atomic-" });
  await Deno.mkdir(join(dir, "entry.json"));
  await assert.rejects(writeFileAtomic(join(dir, "entry.json"), "{}"));
  assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["entry.json"]);
  await Deno.remove(dir, { recursive: true });

  // A killed or failed publish of a process that is gone: collected by reproduce and by gc.
  const root = await toyProject();
  assert.equal((await cli(root, ["reproduce"])).code, 0);
  const runs = join(root, ".cache/runs");
  const key = [...Deno.readDirSync(runs)][0].name.replace(/\.json$/, "");
  const leftover = async () => {
    const path = join(runs, `${key}.json.${await deadPid()}.0badf00d.tmp`);
    await Deno.writeFile(path, new Uint8Array());
    const old = new Date(Date.now() - 120_000);
    await Deno.utime(path, old, old);
    return path;
  };
  for (const args of [["reproduce"], ["gc"], ["pull"]]) {
    const path = await leftover();
    const r = await cli(root, args);
    assert.equal(r.code, 0, r.stderr);
    await assert.rejects(Deno.stat(path), `${args[0]} left ${path}`);
  }
  // A live writer's (ours, just now) is left alone.
  const live = join(runs, `${key}.json.${Deno.pid}.0badf00d.tmp`);
  await Deno.writeFile(live, new Uint8Array());
  assert.equal((await cli(root, ["gc"])).code, 0);
  await Deno.stat(live);
});

Deno.test({
  name: "a full disk while publishing a run: one line naming the stage and the file (as root: tmpfs)",
  ignore: Deno.uid() !== 0 || Deno.build.os !== "linux",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const root = await toyProject();
    // The stage writes its output, then fills the disk (in its private directory, removed after the run):
    // the run entry, written last, finds no space.
    await Deno.writeTextFile(
      join(root, "fill.ts"),
      `export async function run(ctx) {
  await Deno.writeTextFile(ctx.outDir + "/f.txt", "x".repeat(2000));
  const f = await Deno.open(ctx.outDir + "/../filler", { write: true, create: true });
  const piece = new Uint8Array(4096);
  try { for (;;) await f.write(piece); } catch { /* full */ } finally { f.close(); }
  return {};
}`,
    );
    await Deno.writeTextFile(
      join(root, "stages.ts"),
      `export const STAGES = [{ name: "f", doc: "", deps: [], module: "fill.ts", outputs: ["f.txt"], params: {} }];`,
    );
    const cache = await Deno.makeTempDir({ prefix: "trust-tmpfs-" });
    const m = await new Deno.Command("mount", { args: ["-t", "tmpfs", "-o", "size=2m", "tmpfs", cache] }).output();
    if (m.code !== 0) return console.log("skipped: cannot mount a tmpfs here");
    try {
      const r = await cli(root, ["reproduce"], { PIPELINE_CACHE: cache });
      assert.equal(r.code, 1, r.stderr);
      assert.equal(notOneLine(r.stderr), undefined);
      assert.match(
        r.stderr,
        /^error: f: disk full publishing its run, writing \/.*\/runs\/[0-9a-f]{64}\.json: needs at least [\d.]+ [KM]iB more/m,
      );
      assert.deepEqual([...Deno.readDirSync(join(cache, "runs"))], [], "no entry, no temporary left");
    } finally {
      await new Deno.Command("umount", { args: [cache] }).output();
      await Deno.remove(cache, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test("a foreign lease far in the future is named as clock skew or a bad file, and taken over", async () => {
  const root = await toyProject();
  assert.equal((await cli(root, ["reproduce"])).code, 0);
  const lock = JSON.parse(await Deno.readTextFile(join(root, "pipeline/lock.json")));
  const key = lock.stages["count@small"].key;
  await Deno.writeTextFile(
    join(root, ".cache/locks", `${key}.lock`),
    JSON.stringify({ host: "hostZ", pid: 4242, start: "", lease: Date.now() + 3_600_000 }),
  );
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(ROOT, "pipeline/cli.ts"), "--root", root, "--pipeline", join(root, "stages.ts")]
      .concat(["reproduce", "count@small", "--force"]),
    cwd: root,
    env: { PIPELINE_CACHE: join(root, ".cache"), NO_COLOR: "1", PIPELINE_LOCK_LEASE_MS: "1500" },
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000), // before the fix: a wait without end
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  assert.match(
    stderr,
    /✗ the lock .*\.lock \(pid 4242 on hostZ\) holds a lease until .*, .* ahead, longer than a lease lasts \(1\.5 s\): clock skew between hosts or a bad lock file — synchronise/,
  );
  assert.match(stderr, /✓ count@small: rerun in .*, the same bits as its cached run/);
});

Deno.test("accept removes its locks/inuse.<pid> marker when it ends", async () => {
  const root = await toyProject();
  assert.equal((await cli(root, ["reproduce"])).code, 0);
  // A code change that keeps join's behaviour: accept re-executes join from its upstream runs.
  const joinTs = join(root, "join.ts");
  await Deno.writeTextFile(joinTs, (await Deno.readTextFile(joinTs)) + "\nexport const unused = 1;\n");
  const accepted = await cli(root, ["accept"]);
  assert.equal(accepted.code, 0, accepted.stderr);
  assert.match(accepted.stderr + accepted.stdout, /join: bit-identical/);
  const markers = [...Deno.readDirSync(join(root, ".cache/locks"))].filter((e) => e.name.startsWith("inuse."));
  assert.deepEqual(markers, []);
});

Deno.test("pull takes --profile: the runs of lock.<profile>.json come back", async () => {
  const root = await toyProject();
  assert.equal((await cli(root, ["reproduce", "--profile", "quick"])).code, 0);
  assert.equal((await cli(root, ["push", "--profile", "quick"])).code, 0);
  await Deno.remove(join(root, ".cache"), { recursive: true });
  const pulled = await cli(root, ["pull", "--profile", "quick"]);
  assert.equal(pulled.code, 0, pulled.stderr);
  assert.match(pulled.stderr, /pulled from .*: .*count@small/);
  const quickLock = JSON.parse(await Deno.readTextFile(join(root, "pipeline/lock.quick.json")));
  assert.equal(
    await Deno.readTextFile(join(root, "out/count@small/count.txt")),
    await Deno.readTextFile(join(root, ".cache/trees", quickLock.stages["count@small"].key, "count.txt")),
  );
});

Deno.test({
  name: "a password in download.url is masked in every message",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const root = await projectCopy();
    const server = Deno.serve(
      { port: 0, hostname: "127.0.0.1", onListen() {} },
      () => new Response("no", { status: 404 }),
    );
    try {
      const url = `http://alice:s3cr3t-pw@127.0.0.1:${server.addr.port}/cifar-10-binary.tar.gz`;
      const r = await cli(root, [
        "reproduce",
        "download",
        "--profile",
        "smoke",
        "--set",
        "download.dataset=cifar-10",
        "--set",
        `download.url=${url}`,
      ]);
      assert.equal(r.code, 1, r.stderr);
      assert.equal(notOneLine(r.stderr), undefined);
      assert.doesNotMatch(r.stdout + r.stderr, /s3cr3t-pw/);
      assert.match(r.stderr, /http:\/\/alice:\*\*\*@127\.0\.0\.1:\d+\/cifar-10-binary\.tar\.gz answered HTTP 404/);
    } finally {
      await server.shutdown();
    }
  },
});

Deno.test("a server that accepts and never answers: one line after the total time-out, saying so", async () => {
  const { fetchResumable } = await import("../../../data/fetch.ts");
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) held.push(conn); // accepted, never answered
  })();
  const dir = await Deno.makeTempDir({ prefix: "trust-silent-" });
  const lines: string[] = [];
  const t0 = performance.now();
  try {
    const url = `http://127.0.0.1:${listener.addr.port}/cifar-10-binary.tar.gz`;
    await assert.rejects(
      fetchResumable(
        url,
        join(dir, "a.tar.gz"),
        {
          retries: 6,
          backoffMs: 10,
          idleTimeoutMs: 300,
          answerTimeoutMs: 800,
          log: (l) => lines.push(l),
        } as Parameters<typeof fetchResumable>[2],
      ),
      (e: Error) => {
        assert.match(e.message, /accepted the connection but never answered \(no reply in [\d.]+ s over 3 tries\)/);
        return true;
      },
    );
    assert.ok(performance.now() - t0 < 5000, "gave up after the total time-out, not after every retry");
    assert.ok(
      lines.every((l) => /accepted the connection but sent no answer in 0\.3 s; retrying/.test(l)),
      lines.join("\n"),
    );
  } finally {
    listener.close();
    for (const c of held) c.close();
    await accepting.catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
});
