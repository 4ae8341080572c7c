// The S3 remote against a real S3-compatible server (s3rver, on 127.0.0.1,
// started and stopped here): the remote contract (tests/support/remote_contract.ts),
// then what is S3's own, through the CLI: push from one cache (multipart uploads),
// pull into an empty one, a reproduce that runs nothing; a pull killed mid-way, a
// server killed mid-push, wrong credentials, an unknown bucket, a full disk.
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { sha256 } from "../../../pipeline/store/hash.ts";
import { explainS3Error, open as openS3, S3Backend } from "../../../pipeline/sharing/s3.ts";
import { Remote } from "../../../pipeline/sharing/remote.ts";
import { remoteContract } from "../../support/remote_contract.ts";
import { PipelineError } from "../../../pipeline/types.ts";

const CLI = new URL("../../../pipeline/cli.ts", import.meta.url).pathname;
const PARTS = 24;

// data: one 20 MiB file (a multipart upload) and PARTS small ones; sum: reads them.
const TOY_STAGES = `
const parts = Array.from({ length: ${PARTS} }, (_, i) => "parts/p" + String(i).padStart(2, "0") + ".bin");
export const STAGES = [
  { name: "data", doc: "", deps: [], module: "data.ts", outputs: ["big.bin", ...parts], params: {} },
  { name: "sum", doc: "", deps: ["data"], module: "sum.ts", outputs: ["sum.txt"], params: {} },
];
`;
const FILES: Record<string, string> = {
  "stages.ts": TOY_STAGES,
  "data.ts": `export async function run(ctx) {
  await Deno.writeTextFile(ctx.root + "/events.log", "data\\n", { append: true });
  const big = new Uint8Array(20 << 20);
  for (let i = 0; i < big.length; i++) big[i] = (i * 2654435761) >>> 24;
  await Deno.writeFile(ctx.outDir + "/big.bin", big);
  await Deno.mkdir(ctx.outDir + "/parts");
  for (let p = 0; p < ${PARTS}; p++) {
    await Deno.writeFile(ctx.outDir + "/parts/p" + String(p).padStart(2, "0") + ".bin", big.subarray(p * 65536, (p + 5) * 65536));
  }
  return {};
}
`,
  "sum.ts": `export async function run(ctx) {
  await Deno.writeTextFile(ctx.root + "/events.log", "sum\\n", { append: true });
  const big = await Deno.readFile(ctx.inputs.data + "/big.bin");
  await Deno.writeTextFile(ctx.outDir + "/sum.txt", String(big.reduce((a, b) => a + b, 0)));
  return { bytes: big.length };
}
`,
};

const CREDS = { AWS_ACCESS_KEY_ID: "S3RVER", AWS_SECRET_ACCESS_KEY: "S3RVER", AWS_REGION: "us-east-1" };

/** How to start s3rver: installed (.ci/setup), or through npx. */
function s3rverCommand(): string[] | undefined {
  const onPath = (cmd: string) =>
    new Deno.Command("sh", { args: ["-c", `command -v ${cmd}`], stdout: "null", stderr: "null" }).outputSync().success;
  if (!onPath("node")) return undefined;
  if (onPath("s3rver")) return ["s3rver"];
  if (onPath("npx")) return ["npx", "-y", "s3rver@3.7.1"];
  return undefined;
}
const S3RVER = s3rverCommand();

class Server {
  pid = 0;
  constructor(readonly dir: string, readonly port: number) {}

  static async start(): Promise<Server> {
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (probe.addr as Deno.NetAddr).port;
    probe.close();
    const s = new Server(await Deno.makeTempDir({ prefix: "s3rver-" }), port);
    await s.restart();
    return s;
  }

  /** In its own process group (npx → sh → node), so that stop() ends all of it. */
  async restart() {
    const cmd = [
      ...S3RVER!,
      "--directory",
      this.dir,
      "--port",
      String(this.port),
      "--address",
      "127.0.0.1",
      "--silent",
    ];
    const child = new Deno.Command("setsid", { args: cmd, stdin: "null", stdout: "null", stderr: "null" }).spawn();
    this.pid = child.pid;
    child.status.catch(() => {});
    child.unref();
    for (let i = 0; i < 600; i++) { // npx may fetch it first
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port: this.port })).close();
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    throw new Error(`s3rver did not listen on ${this.port} within 60 s`);
  }

  stop() {
    try {
      Deno.kill(-this.pid, "SIGKILL");
    } catch { /* gone already */ }
  }

  get endpoint() {
    return `http://127.0.0.1:${this.port}`;
  }

  client() {
    return new S3Client({
      endpoint: this.endpoint,
      forcePathStyle: true,
      region: "us-east-1",
      credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
    });
  }
}

/** A project as a fresh clone would have it (its lock file and settings, if given), with its own empty cache. */
async function project(files: Record<string, string> = {}): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "s3-test-" });
  for (const [rel, text] of Object.entries({ ...FILES, ...files })) {
    await Deno.mkdir(dirname(join(root, rel)), { recursive: true });
    await Deno.writeTextFile(join(root, rel), text);
  }
  return root;
}

async function clone(from: string): Promise<string> {
  return await project({
    "pipeline/lock.json": await Deno.readTextFile(join(from, "pipeline/lock.json")),
    "pipeline/config.local.json": await Deno.readTextFile(join(from, "pipeline/config.local.json")),
  });
}

async function cli(root: string, args: string[], env: Record<string, string>) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, "--root", root, "--pipeline", join(root, "stages.ts"), ...args],
    env: { PIPELINE_PLAIN: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

async function events(root: string): Promise<string[]> {
  return (await Deno.readTextFile(join(root, "events.log")).catch(() => "")).split("\n").filter(Boolean);
}

async function sameOutputs(a: string, b: string) {
  for (const stage of ["data", "sum"]) {
    for (const rel of ["big.bin", "parts/p07.bin", "sum.txt"]) {
      const pa = join(a, "out", stage, rel);
      if (!(await Deno.stat(pa).catch(() => undefined))) continue;
      assert.deepEqual(await Deno.readFile(join(b, "out", stage, rel)), await Deno.readFile(pa), `${stage}/${rel}`);
    }
  }
}

const lockedHash = async (root: string, stage: string, rel: string) =>
  JSON.parse(await Deno.readTextFile(join(root, "pipeline/lock.json"))).stages[stage].outputs[rel] as string;

Deno.test({
  name: S3RVER ? "S3 remote: push, pull, faults (s3rver on 127.0.0.1)" : "S3 remote (skipped: node/npx not found)",
  ignore: !S3RVER,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const server = await Server.start();
    const env = { ...CREDS, AWS_ENDPOINT_URL: server.endpoint };
    const s3 = server.client();
    const objectOnServer = (prefix: string, hash: string) => `${prefix}/objects/${hash.slice(0, 2)}/${hash.slice(2)}`;
    try {
      await s3.send(new CreateBucketCommand({ Bucket: "bkt" }));
      await t.step("the remote contract", async (t) => {
        const saved = Object.fromEntries(Object.keys(env).map((k) => [k, Deno.env.get(k)]));
        for (const [k, v] of Object.entries(env)) Deno.env.set(k, v);
        const backends: S3Backend[] = [];
        try {
          await remoteContract(t, {
            place: (name) => {
              const backend = new S3Backend("bkt", `contract/${name}`);
              backends.push(backend);
              const damage = async (rel: string, bytes: Uint8Array) => {
                await s3.send(new PutObjectCommand({ Bucket: "bkt", Key: `contract/${name}/${rel}`, Body: bytes }));
              };
              return Promise.resolve({ backend, damage });
            },
          });
        } finally {
          for (const b of backends) b.close();
          for (const [k, v] of Object.entries(saved)) v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
        }
      });

      const a = await project({ "pipeline/config.local.json": `{"remote": "s3://bkt/study"}` });
      const built = await cli(a, ["reproduce"], env);
      assert.equal(built.code, 0, built.stderr);

      await t.step("round trip: push, pull into an empty cache, reproduce runs nothing", async () => {
        const push = await cli(a, ["push"], env);
        assert.equal(push.code, 0, push.stderr);
        assert.match(push.stderr, /pushed to s3:\/\/bkt\/study: data, sum/);
        assert.match(push.stderr, /push s3:\/\/bkt\/study: 26\/26 objects · 27\.5 MiB\/27\.5 MiB/, push.stderr);
        // Every object on the server holds exactly our bytes (the SDK's checksum mode can corrupt them silently).
        const big = await lockedHash(a, "data", "big.bin");
        const res = await s3.send(new GetObjectCommand({ Bucket: "bkt", Key: objectOnServer("study", big) }));
        assert.equal(sha256(await res.Body!.transformToByteArray()), big);
        const again = await cli(a, ["push"], env);
        assert.match(again.stderr, /2 runs already there; 0 objects to send/, again.stderr);

        const b = await clone(a);
        const pull = await cli(b, ["pull"], env);
        assert.equal(pull.code, 0, pull.stderr);
        assert.match(pull.stderr, /pulled from pipeline\/remote \+ s3:\/\/bkt\/study: data, sum/);
        assert.match(pull.stderr, /pull s3:\/\/bkt\/study: 26\/26 objects · 27\.5 MiB\/27\.5 MiB/);
        await sameOutputs(a, b);
        const repro = await cli(b, ["reproduce"], env);
        assert.equal(repro.code, 0, repro.stderr);
        assert.doesNotMatch(repro.stderr, /\d+ run\b/);
        assert.deepEqual(await events(b), [], "nothing ran");
        await sameOutputs(a, b);

        // No pull: reproduce restores from S3 by itself.
        const c = await clone(a);
        const direct = await cli(c, ["reproduce"], env);
        assert.equal(direct.code, 0, direct.stderr);
        assert.doesNotMatch(direct.stderr, /\d+ run\b/);
        assert.match(direct.stderr, /restore s3:\/\/bkt\/study: \d+\/\d+ objects/, "restores say how far they are");
        assert.deepEqual(await events(c), []);
        await sameOutputs(a, c);
      });

      await t.step("pull killed mid-way: the rerun completes from what is sound", async () => {
        const b = await clone(a);
        const pulling = new Deno.Command(Deno.execPath(), {
          args: ["run", "-A", CLI, "--root", b, "--pipeline", join(b, "stages.ts"), "pull"],
          env: { ...env, PIPELINE_PLAIN: "1", PIPELINE_S3_JOBS: "1" },
          stdout: "null",
          stderr: "null",
        }).spawn();
        const partial = async () => (await listTree(join(b, ".cache/tmp"))).length >= 3;
        for (let i = 0; i < 3000 && !(await partial()); i++) await new Promise((r) => setTimeout(r, 10));
        pulling.kill("SIGKILL");
        await pulling.status;
        assert.ok((await listTree(join(b, ".cache/tmp"))).length > 0, "killed with downloads under way");
        const pull = await cli(b, ["pull"], env);
        assert.equal(pull.code, 0, pull.stderr);
        assert.deepEqual(await listTree(join(b, ".cache/tmp")), [], "the killed pull's partial files are gone");
        await sameOutputs(a, b);
      });

      await t.step(
        "an edited run entry on the server is refused, naming the entry and the field (issue 27)",
        async () => {
          const push = await cli(a, ["push", "--remote", "s3://bkt/entry"], env);
          assert.equal(push.code, 0, push.stderr);
          const sumKey = JSON.parse(await Deno.readTextFile(join(a, "pipeline/lock.json"))).stages.sum.key;
          const rel = `entry/runs/${sumKey}.json`;
          const entry = JSON.parse(
            await (await s3.send(new GetObjectCommand({ Bucket: "bkt", Key: rel }))).Body!.transformToString(),
          );
          const [file] = Object.keys(entry.outputs);
          entry.outputs[file].hash = await lockedHash(a, "data", "big.bin"); // another run's sound object
          await s3.send(new PutObjectCommand({ Bucket: "bkt", Key: rel, Body: JSON.stringify(entry) }));
          const b = await clone(a);
          const pull = await cli(b, ["pull", "--remote", "s3://bkt/entry"], env);
          assert.equal(pull.code, 1);
          assert.match(
            pull.stderr,
            new RegExp(`✗ the run entry ${sumKey}\\.json \\(sum\\) in s3://bkt/entry is corrupt \\(outputsHash: `),
          );
          await assert.rejects(Deno.stat(join(b, ".cache/runs", `${sumKey}.json`)), Deno.errors.NotFound);
        },
      );

      await t.step("wrong credentials, unknown bucket: one line each", async () => {
        const creds = await cli(a, ["push"], { ...env, AWS_ACCESS_KEY_ID: "WRONG" });
        assert.equal(creds.code, 1);
        assert.equal(creds.stderr.trim().split("\n").length, 1, creds.stderr);
        assert.match(
          creds.stderr,
          /^error: .* refused the credentials .*InvalidAccessKeyId.* — check AWS_ACCESS_KEY_ID/,
        );
        const bucket = await cli(await clone(a), ["pull", "--remote", "s3://nosuch/x"], env);
        assert.equal(bucket.code, 1);
        assert.equal(bucket.stderr.trim().split("\n").length, 1, bucket.stderr);
        assert.match(bucket.stderr, /^error: bucket nosuch does not exist on .* — create it/);
      });

      await t.step("disk full while pulling: one line with the fix", async () => {
        const saved = Object.fromEntries(Object.keys(env).map((k) => [k, Deno.env.get(k)]));
        for (const [k, v] of Object.entries(env)) Deno.env.set(k, v);
        try {
          const backend = openS3("s3://bkt/study");
          const remote = new Remote(backend);
          const big = await lockedHash(a, "data", "big.bin");
          // /dev/full answers every write with ENOSPC, as a full disk does.
          await assert.rejects(
            remote.download(big, 20 << 20, "/dev/full"),
            (e: PipelineError) =>
              /^disk full while pulling s3:\/\/bkt\/study\/objects\/.* \(20\.0 MiB\) into \/dev$/.test(e.message) &&
              /free space/.test(e.fix),
          );
          backend.close();
        } finally {
          for (const [k, v] of Object.entries(saved)) v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
        }
      });

      await t.step("server killed mid-push: the rerun completes; nothing half-written is trusted", async () => {
        const prefix = join(server.dir, "bkt", "killed");
        const pushing = new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "-A",
            CLI,
            "--root",
            a,
            "--pipeline",
            join(a, "stages.ts"),
            "push",
            "--remote",
            "s3://bkt/killed",
          ],
          env: { ...env, PIPELINE_PLAIN: "1", PIPELINE_S3_JOBS: "1" }, // one at a time, so the kill lands mid-push
          stdout: "null",
          stderr: "piped",
        }).spawn();
        // Killed once a few objects are stored whole (s3rver writes an object's metadata after its bytes).
        const landed = async () =>
          (await listTree(join(prefix, "objects"))).filter((f) => f.endsWith("_S3rver_metadata.json")).length >= 3;
        for (let i = 0; i < 3000 && !(await landed()); i++) await new Promise((r) => setTimeout(r, 10));
        server.stop();
        const died = await pushing.output();
        const stderr = new TextDecoder().decode(died.stderr);
        assert.equal(died.code, 1, stderr);
        assert.match(stderr, /error: cannot reach http:\/\/127\.0\.0\.1:\d+ .* — check that the server is up/);
        assert.deepEqual(await listTree(join(prefix, "runs")), [], "no run entry before all its objects");
        // s3rver writes an object's metadata file in place: a kill mid-write can leave it truncated, and its
        // listing then fails (500). S3's PUT is atomic, so S3 never holds such an object: drop it, as S3 would.
        for (const meta of (await listTree(prefix)).filter((f) => f.endsWith("._S3rver_metadata.json"))) {
          if (await Deno.readTextFile(meta).then((t) => (JSON.parse(t), true), () => false)) continue;
          for (const part of ["object", "object.md5", "metadata.json"]) {
            await Deno.remove(meta.replace(/metadata\.json$/, part)).catch(() => {});
          }
        }

        await server.restart();
        const rerun = await cli(a, ["push", "--remote", "s3://bkt/killed"], env);
        assert.equal(rerun.code, 0, rerun.stderr);
        const sent = /(\d+) objects to send .*, (\d+) already there/.exec(rerun.stderr);
        assert.ok(sent && Number(sent[2]) > 0 && Number(sent[1]) > 0, `resumed, not restarted: ${rerun.stderr}`);
        const b = await clone(a);
        const pull = await cli(b, ["pull", "--remote", "s3://bkt/killed"], env);
        assert.equal(pull.code, 0, pull.stderr);
        const repro = await cli(b, ["reproduce", "--remote", "s3://bkt/killed"], env);
        assert.doesNotMatch(repro.stderr, /\d+ run\b/, repro.stderr);
        assert.deepEqual(await events(b), []);
        await sameOutputs(a, b);
      });
    } finally {
      s3.destroy();
      server.stop();
    }
  },
});

Deno.test("S3 errors become one line with the fix: no permission, endpoint down, no credentials", () => {
  const r = { url: "s3://b/p", bucket: "b", endpoint: "http://127.0.0.1:9", doing: "upload objects/ab/cd" };
  const one = (e: unknown) => {
    const err = explainS3Error(e, r);
    assert.ok(err instanceof PipelineError);
    return `${err.message} — ${err.fix}`;
  };
  assert.match(
    one({ name: "AccessDenied", message: "Access Denied", $metadata: { httpStatusCode: 403 } }),
    /no permission to upload objects\/ab\/cd in s3:\/\/b\/p .* grant these credentials/,
  );
  assert.match(
    one(Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:9"), { code: "ECONNREFUSED", $metadata: {} })),
    /cannot reach http:\/\/127\.0\.0\.1:9 .* after 4 attempts — check that the server is up/,
  );
  assert.match(one({ name: "CredentialsProviderError", message: "Could not load credentials" }), /no AWS credentials/);
  assert.match(one(new Error("Region is missing")), /set AWS_REGION/);
});

async function listTree(dir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if (e.isDirectory) out.push(...await listTree(join(dir, e.name)));
      else out.push(join(dir, e.name));
    }
  } catch { /* not there yet */ }
  return out;
}
