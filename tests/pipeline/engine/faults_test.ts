// Fault injection in CI (a few minutes; fixed seeds for the kill moments):
// SIGKILLs across stages then equality with an uninterrupted run, concurrent
// runs on one cache, corrupt state named while repaired, damaged checkpoints,
// a table of bad inputs (exit 1, one line, cache untouched), read-only and
// full-disk caches (tmpfs, as root). `deno task bench reliability` runs the
// long version (tests/support/faults_harness.ts holds the machinery).
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeSyntheticSplits } from "../../../data/dataset.ts";
import { loadCheckpoint, saveCheckpoint } from "../../../models/checkpoint.ts";
import { type TorchMlpConfig, trainTorchMlp } from "../../../models/torch_mlp/train.ts";
import {
  checkBadInputs,
  cli,
  concurrentRuns,
  integrity,
  killRounds,
  notOneLine,
  projectCopy,
  snapshot,
  toyBadInputs,
  toyProject,
} from "../../support/faults_harness.ts";

const SMOKE = ["--profile", "smoke"];
/** A history.json reduced to its curves (timings differ between runs). */
const curves = (file: string, text: string) =>
  file.endsWith("history.json") ? JSON.stringify(JSON.parse(text).evals) : file.endsWith(".json") ? "" : text;

let project: Promise<string> | undefined;
/** One copy of this project per test file, with download + preprocess of the smoke profile cached. */
function smokeProject(): Promise<string> {
  return project ??= (async () => {
    const root = await projectCopy();
    const r = await cli(root, ["reproduce", "preprocess", ...SMOKE]);
    assert.equal(r.code, 0, r.stderr);
    return root;
  })();
}

/** A tmpfs of `size` at a fresh directory (root only); undefined, with the reason logged, where it cannot be. */
async function tmpfs(size: string): Promise<string | undefined> {
  const dir = await Deno.makeTempDir({ prefix: "faults-tmpfs-" });
  const r = await new Deno.Command("mount", { args: ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir] }).output()
    .catch(() => undefined);
  if (r?.code === 0) return dir;
  console.log(`skipped: cannot mount a tmpfs here (${r ? new TextDecoder().decode(r.stderr).trim() : "no mount"})`);
  return undefined;
}

async function umount(dir: string) {
  await new Deno.Command("umount", { args: [dir] }).output();
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}
const asRoot = Deno.uid() === 0;
const rootOnly = asRoot ? "" : " (skipped: needs root to mount a small tmpfs)";

Deno.test("SIGKILL of the process group at 5 seeded moments across the toy stages: no corrupt entry, equal outputs", async () => {
  const root = await toyProject();
  const r = await killRounds(root, { n: 5, seed: 17, minMs: 300, maxMs: 5000, args: ["reproduce"] });
  assert.deepEqual(r.corrupt, []);
  assert.deepEqual(r.wrong, []);
  assert.ok(r.landed >= 3, `only ${r.landed} of 5 kills landed during the run`);
  console.log(`${r.kills} kills, ${r.landed} during the run, ${r.resumed} reruns resumed from a checkpoint`);
});

Deno.test({
  name: "SIGKILL at 2 seeded moments of the smoke profile (download … train-torch-mlp): equal curves after the rerun",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const root = await projectCopy(); // its own: the rounds rewrite the lock file from their caches
    const args = ["reproduce", "train-torch-mlp@default", ...SMOKE, "--set", "train-torch-mlp.steps=60"];
    const r = await killRounds(root, { n: 2, seed: 5, minMs: 1500, maxMs: 9000, args, pick: curves });
    assert.deepEqual(r.corrupt, []);
    assert.deepEqual(r.wrong, []);
  },
});

Deno.test("3 concurrent reproduce runs on one cache: all succeed, each stage built once", async () => {
  const root = await toyProject();
  const r = await concurrentRuns(root, 3);
  assert.deepEqual(r.conflicts, []);
});

Deno.test("a damaged checkpoint is named and discarded: the previous intact one is used, else the start", async () => {
  const dir = await Deno.makeTempDir();
  const logs: string[] = [];
  for (const step of [1, 2, 3]) await saveCheckpoint(dir, step, { step }, [new Uint8Array(1000).fill(step)]);
  const names = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
  assert.deepEqual(names, ["checkpoint-2.json", "checkpoint-3.json", "ckpt-2-0.bin", "ckpt-3-0.bin"]);
  const file = join(dir, "ckpt-3-0.bin");
  const bytes = await Deno.readFile(file);
  bytes[500] ^= 1;
  await Deno.writeFile(file, bytes);
  const found = await loadCheckpoint<{ step: number }>(dir, () => true, (m) => logs.push(m));
  assert.equal(found?.step, 2);
  assert.deepEqual(found?.blobs[0], new Uint8Array(1000).fill(2));
  assert.match(
    logs[0],
    /^checkpoint at step 3 in .* is damaged \(ckpt-3-0\.bin does not match its SHA-256\): discarding/,
  );
  assert.equal(logs[1], "using the previous intact checkpoint, at step 2");
  await Deno.truncate(join(dir, "ckpt-2-0.bin"), 10);
  assert.equal(await loadCheckpoint(dir, () => true, (m) => logs.push(m)), null);
  assert.match(logs[2], /step 2 .* damaged \(ckpt-2-0\.bin has 10 bytes, not 1000\)/);
  assert.equal(logs[3], "no intact checkpoint left: starting from the beginning");
  assert.deepEqual([...Deno.readDirSync(dir)], [], "damaged checkpoints are removed");
  await Deno.writeTextFile(join(dir, "checkpoint-7.json"), "{garbage");
  assert.equal(await loadCheckpoint(dir, () => true, (m) => logs.push(m)), null);
  assert.match(logs[4], /step 7 .* damaged \(its manifest is unreadable\)/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("train-torch-mlp: a zeroed range in the newest checkpoint is caught; the resumed run equals the uninterrupted one", async () => {
  // The issue's reproduction, small: stopped after step 17 (checkpoints at 9 and 17), bytes zeroed in 17's tensors.
  const data = makeSyntheticSplits(300, 200);
  const cfg: TorchMlpConfig = {
    hidden: [32, 16],
    lr: 1e-3,
    batch: 50,
    steps: 24,
    evalEvery: 8,
    seed: 3,
    dropout: false,
    batchnorm: "none",
  };
  const whole = await trainTorchMlp(data, cfg);
  const dir = await Deno.makeTempDir();
  const logs: string[] = [];
  await trainTorchMlp(data, cfg, { checkpointDir: dir, stopAfter: 17 });
  const file = join(dir, "ckpt-17-0.bin");
  const bytes = await Deno.readFile(file);
  bytes.fill(0, 4000, 14000);
  await Deno.writeFile(file, bytes);
  const rest = await trainTorchMlp(data, cfg, { checkpointDir: dir, log: (m) => logs.push(m) });
  assert.equal(rest.resumedFrom, 9);
  assert.deepEqual(rest.evals, whole.evals);
  assert.ok(logs.some((l) => /checkpoint at step 17 .* is damaged/.test(l)), logs.join("\n"));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("corrupt state is named while it is repaired: lock file, run entry, stage lock, remote object", async () => {
  const root = await toyProject();
  assert.equal((await cli(root, ["reproduce"])).code, 0);
  const lockFile = join(root, "pipeline/lock.json");
  const lock = JSON.parse(await Deno.readTextFile(lockFile));

  await Deno.writeTextFile(lockFile, "garbage{");
  const status = await cli(root, ["status"]);
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stderr, /✗ .*pipeline\/lock\.json is corrupt \(not a lock file\): ignoring it/);
  const again = await cli(root, ["reproduce"]);
  assert.match(again.stderr, /lock\.json is corrupt/);
  assert.deepEqual(Object.keys(JSON.parse(await Deno.readTextFile(lockFile)).stages).sort(), Object.keys(lock.stages));

  const key = lock.stages["count@small"].key;
  const entry = join(root, ".cache/runs", `${key}.json`);
  const text = await Deno.readTextFile(entry);
  await Deno.writeTextFile(entry, text.slice(0, text.length >> 1));
  const truncated = await cli(root, ["reproduce"]);
  assert.equal(truncated.code, 0, truncated.stderr);
  assert.match(truncated.stderr, new RegExp(`✗ the run entry .*${key}\\.json is corrupt \\(truncated`));
  assert.match(truncated.stderr, /▶ count@small: running/);
  assert.deepEqual(await integrity(join(root, ".cache")), []);

  // Garbage in a stage's lock: named and removed, not waited on forever.
  await Deno.writeTextFile(join(root, ".cache/locks", `${key}.lock`), "garbage");
  const locked = await cli(root, ["reproduce", "count@small", "--force"]);
  assert.equal(locked.code, 0, locked.stderr);
  assert.match(locked.stderr, /✗ the lock .*\.lock is corrupt \("garbage", not an owner\): removing it/);

  // A tampered object in the committed remote: named, not restored, the stage rebuilt.
  assert.equal((await cli(root, ["push"])).code, 0);
  await Deno.remove(join(root, ".cache"), { recursive: true });
  const hash = lock.stages["count@small"].outputs["count.txt"];
  await Deno.writeTextFile(join(root, "pipeline/remote/objects", hash.slice(0, 2), hash.slice(2)), "666");
  const remote = await cli(root, ["reproduce"]);
  assert.equal(remote.code, 0, remote.stderr);
  assert.match(
    remote.stderr,
    /✗ the remote object .* \(count\.txt of count@small\) is corrupt \(\d+ bytes, sha256 [0-9a-f]{12}…; recorded/,
  );
  assert.match(remote.stderr, /▶ count@small: running/);
  assert.match(remote.stderr, /✓ count@big: restored from remote/);
});

Deno.test("bad inputs (a table of 49 on a toy project): exit 1, one line, no stack trace, the cache untouched", async () => {
  const root = await toyProject();
  assert.equal((await cli(root, ["reproduce"])).code, 0);
  const cases = toyBadInputs(root);
  assert.ok(cases.length >= 40);
  assert.deepEqual(await checkBadInputs(root, cases), []);
});

Deno.test({
  name: "bad inputs on the real stages: a diverging lr (numpy, torch, CNN) is one line naming stage, step and lr",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const root = await smokeProject();
    const cases = [
      [
        "train-numpy-mlp",
        "train-numpy-mlp.lr=1e30",
        /^train-numpy-mlp: training diverged: the loss became NaN at step 2/,
      ],
      [
        "train-torch-mlp@default",
        "train-torch-mlp.lr=1e30",
        /^train-torch-mlp@default: training diverged: .* at step \d+ with lr=1e\+30 — lower the learning rate/,
      ],
      [
        "train-cnn",
        "train-cnn.lr=1e30",
        /^train-cnn: training diverged: the loss (became NaN|reached [\d.e+]+) at step \d+ with lr=1e\+30/,
      ],
    ] as const;
    const failures = await checkBadInputs(root, [
      ...cases.map(([stage, set, expect]) => ({
        name: stage,
        args: ["reproduce", stage, ...SMOKE, "--set", set],
        expect,
      })),
      {
        name: "unknown variant",
        args: ["reproduce", "train-torch-mlp@gb1", ...SMOKE],
        expect: /^unknown variant train-torch-mlp@gb1 — train-torch-mlp has the variants: default, ga1,/,
      },
    ]);
    assert.deepEqual(failures, []);
  },
});

Deno.test({
  name: `a read-only cache: status works, reproduce says so in one line${rootOnly}`,
  ignore: !asRoot,
  fn: async () => {
    const root = await toyProject();
    const cache = await tmpfs("20m");
    if (!cache) return;
    try {
      assert.equal((await cli(root, ["reproduce"], { PIPELINE_CACHE: cache })).code, 0);
      await new Deno.Command("mount", { args: ["-o", "remount,ro", cache] }).output();
      const status = await cli(root, ["status"], { PIPELINE_CACHE: cache });
      assert.equal(status.code, 0, status.stderr);
      assert.match(status.stdout, /✓ join: up to date/);
      const before = await snapshot(cache, root);
      const r = await cli(root, ["reproduce", "--force"], { PIPELINE_CACHE: cache });
      assert.equal(r.code, 1);
      assert.equal(notOneLine(r.stderr), undefined);
      assert.match(
        r.stderr,
        /^error: the cache .* is not writable \(read-only file system or no permission\) — set PIPELINE_CACHE/m,
      );
      assert.equal(await snapshot(cache, root), before);
    } finally {
      await umount(cache);
    }
  },
});

Deno.test({
  name: `a full disk: one line with the path and the space needed, nothing cached, no retry or fallback${rootOnly}`,
  ignore: !asRoot,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    // A stage's own writes (toy: 3 MiB into 1 MiB).
    const toy = await toyProject();
    let cache = await tmpfs("1m");
    if (!cache) return;
    try {
      const r = await cli(toy, ["reproduce", "blob", "--set", "blob.mib=3"], { PIPELINE_CACHE: cache });
      assert.equal(r.code, 1);
      assert.equal(notOneLine(r.stderr), undefined);
      assert.match(
        r.stderr,
        /^error: blob: disk full writing \/.*\/out: needs more than the [\d.]+ [KM]iB it had written \([\d.]+ [KM]iB free\) — free disk space/m,
      );
      assert.deepEqual([...Deno.readDirSync(join(cache, "runs"))], []);
    } finally {
      await umount(cache);
    }

    // The download (a 3 MiB answer into 1 MiB) with a mirror left: no retry, no fallback.
    const root = await smokeProject();
    const body = new Uint8Array(3 << 20).fill(7);
    body.set([0x1f, 0x8b]);
    let requests = 0;
    const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, () => {
      requests++;
      return new Response(body, { headers: { "content-type": "application/gzip" } });
    });
    cache = await tmpfs("1m");
    try {
      const url = `http://127.0.0.1:${server.addr.port}/cifar-10-binary.tar.gz`;
      const r = await cli(root, [
        "reproduce",
        "download",
        ...SMOKE,
        "--set",
        "download.dataset=cifar-10", // a real download (the smoke profile makes a synthetic set)
        "--set",
        `download.url=${url}`,
        "--set",
        `download.mirrors=${join(root, "no-such-mirror.tar.gz")}`,
      ], { PIPELINE_CACHE: cache! });
      assert.equal(r.code, 1);
      assert.equal(notOneLine(r.stderr), undefined);
      assert.match(r.stderr, /^error: download: disk full writing \/.*cifar-10-binary\.tar\.gz\.part: needs at least/m);
      assert.doesNotMatch(r.stderr, /trying the next source|retrying/);
      assert.equal(requests, 1);
    } finally {
      await server.shutdown();
      await umount(cache!);
    }

    // Preprocessing the smoke data (about 7 MiB of .npy, after its 1.8 MiB download) on 5 MiB.
    cache = await tmpfs("5m");
    try {
      const r = await cli(root, ["reproduce", "preprocess", ...SMOKE], { PIPELINE_CACHE: cache! });
      assert.equal(r.code, 1);
      assert.equal(notOneLine(r.stderr), undefined);
      assert.match(r.stderr, /^error: preprocess: disk full writing \/.*\.npy: needs at least [\d.]+ [KM]iB more/m);
      assert.deepEqual([...Deno.readDirSync(join(cache!, "runs"))].map((e) => e.name).length, 1, "only download");
    } finally {
      await umount(cache!);
    }
  },
});
