// --executor slurm on a real one-node Slurm cluster (.ci/slurm-up): the smoke
// pipeline gives the local executor's outputs and the same search picks; a job
// cancelled with scancel, and one killed by its time limit, give a one-line error
// and a rerun that resumes from the checkpoint; Ctrl-C leaves no job behind.
// Skipped, with the reason, where the cluster cannot be started (not root, no packages).
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { resolveResources } from "../../../pipeline/executors/executor.ts";
import { DEFAULT_RESOURCES } from "../../../pipeline/executors/slurm.ts";

const ROOT = new URL("../../..", import.meta.url).pathname;
const CLI = join(ROOT, "pipeline/cli.ts");
const dec = new TextDecoder();

/** Start the test cluster unless it is up; the reason to skip when it cannot be. */
async function slurmUp(): Promise<{ conf?: string; started?: boolean; skip?: string }> {
  if (Deno.uid() !== 0) return { skip: "needs root to start a one-node Slurm cluster (.ci/slurm-up)" };
  if (Deno.env.get("PIPELINE_SKIP_SLURM")) return { skip: "PIPELINE_SKIP_SLURM is set" };
  const r = await new Deno.Command("bash", { args: [join(ROOT, ".ci/slurm-up")], stdout: "piped", stderr: "piped" })
    .output();
  if (!r.success) return { skip: `.ci/slurm-up failed: ${dec.decode(r.stderr).trim().split("\n").pop()}` };
  return { conf: dec.decode(r.stdout).trim(), started: !dec.decode(r.stderr).includes("already up") };
}

Deno.test("slurm resources: defaults, then the stage's declaration, then settings for its name and name@variant", () => {
  const settings = { resources: { "train-torch-mlp": { memMB: 5000 }, "train-torch-mlp@ga1": { time: "9:00:00" } } };
  assert.deepEqual(resolveResources("train-torch-mlp@ga1", { cpus: 2, time: "1:00:00" }, settings), {
    ...DEFAULT_RESOURCES,
    cpus: 2,
    memMB: 5000,
    time: "9:00:00",
  });
  assert.deepEqual(resolveResources("train-cnn"), DEFAULT_RESOURCES);
});

const cluster = await slurmUp();
if (cluster.skip) console.error(`slurm_test: skipped — ${cluster.skip}`);
const ignore = !!cluster.skip;
const env = (extra: Record<string, string> = {}) => ({ SLURM_CONF: cluster.conf ?? "", PIPELINE_PLAIN: "1", ...extra });

async function reproduce(root: string, cache: string, args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, "reproduce", "--root", root, ...args],
    cwd: root,
    env: env({ PIPELINE_CACHE: cache }),
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, log: dec.decode(out.stderr) };
}

async function copyProject(): Promise<string> {
  const dest = await Deno.makeTempDir({ prefix: "slurm-e2e-" });
  const files = dec.decode(
    (await new Deno.Command("git", { args: ["ls-files", "-co", "--exclude-standard"], cwd: ROOT }).output()).stdout,
  ).trim().split("\n");
  for (const rel of files) {
    if (rel.startsWith("reports/") && !rel.startsWith("reports/build/")) continue;
    if (/^pipeline\/lock.*\.json$/.test(rel) || rel.startsWith("pipeline/remote/")) continue;
    await Deno.mkdir(join(dest, dirname(rel)), { recursive: true });
    await Deno.copyFile(join(ROOT, rel), join(dest, rel)).catch(() => {});
  }
  return dest;
}

/** stage → {output file → hash}, from a cache's run entries. */
async function outputsByStage(cache: string): Promise<Record<string, Record<string, string>>> {
  const out: Record<string, Record<string, string>> = {};
  for await (const e of Deno.readDir(join(cache, "runs"))) {
    const entry = JSON.parse(await Deno.readTextFile(join(cache, "runs", e.name)));
    out[entry.stage] = Object.fromEntries(
      Object.entries(entry.outputs as Record<string, { hash: string }>).map(([f, o]) => [f, o.hash]),
    );
  }
  return out;
}

Deno.test({
  name: "slurm: the smoke profile through --executor slurm gives the local executor's outputs and search picks",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const root = await copyProject();
    try {
      const [local, slurm] = await Promise.all([
        reproduce(root, join(root, "cache-local"), ["--profile", "smoke", "--jobs", "2"]),
        reproduce(root, join(root, "cache-slurm"), ["--profile", "smoke", "--jobs", "3", "--executor", "slurm"]),
      ]);
      assert.equal(local.code, 0, local.log);
      assert.equal(slurm.code, 0, slurm.log);
      assert.match(slurm.log, /… search-mlp: Slurm job \d+ submitted/);
      assert.match(slurm.log, /job \d+ RUNNING on \S+ · \[/, "the progress line shows the job's log tail");
      // The search's individuals ran as Slurm jobs of their own.
      const logs = [...Deno.readDirSync(join(root, "cache-slurm", "logs"))].map((e) => e.name);
      assert.ok(logs.filter((n) => n.startsWith("task-")).length >= 4, logs.join(" "));
      const [la, sl] = [join(root, "cache-local"), join(root, "cache-slurm")];
      const a = await outputsByStage(la);
      const b = await outputsByStage(sl);
      assert.deepEqual(Object.keys(b).sort(), Object.keys(a).sort());
      // Byte-identical outputs, stage by stage (a Slurm job here has 1 thread, a local run 2: the
      // numerics must not care) — but for the report, which shows its inputs' records: compute
      // paths (thread counts), timings, start times and the hashes of the files that hold them.
      const recordLine =
        /sha256 `[0-9a-f]{64}`|^- started |PerSecond|wallSeconds|^\| \[`[^`]+`\]\(#prov-|Compute path|\(deterministic\)|: sums \|/;
      for (const stage of Object.keys(a)) {
        for (const [file, hash] of Object.entries(a[stage])) {
          if (b[stage][file] === hash || file === "index.html") continue;
          assert.equal(file, "REPORT.md", `${stage}/${file} differs between the executors`);
          const read = (c: string) => Deno.readTextFile(join(c, "trees", keyOf(c, stage), file));
          const lines = [(await read(la)).split("\n"), (await read(sl)).split("\n")];
          assert.equal(lines[0].length, lines[1].length);
          const differ = lines[0].filter((l, i) => l !== lines[1][i] && !recordLine.test(l));
          assert.deepEqual(differ, [], "REPORT.md differs beyond the runs' records");
        }
      }
      const searchOf = (c: string) =>
        Deno.readTextFile(join(c, "trees", keyOf(c, "search-mlp"), "search.json")).then(JSON.parse);
      assert.deepEqual((await searchOf(sl)).pick, (await searchOf(la)).pick);
    } finally {
      await Deno.remove(root, { recursive: true }).catch(() => {});
    }
  },
});

function keyOf(cache: string, stage: string): string {
  for (const e of Deno.readDirSync(join(cache, "runs"))) {
    const entry = JSON.parse(Deno.readTextFileSync(join(cache, "runs", e.name)));
    if (entry.stage === stage) return entry.key;
  }
  throw new Error(`no run of ${stage} in ${cache}`);
}

// A stage that sleeps through `steps` steps, checkpointing each: cheap on the CPU, exact about resuming.
const SLEEPY = `
export async function run(ctx) {
  const file = ctx.checkpointDir + "/step";
  let from = 0;
  try { from = Number(await Deno.readTextFile(file)); } catch { /* fresh */ }
  for (let s = from + 1; s <= ctx.params.steps; s++) {
    await new Promise((r) => setTimeout(r, ctx.params.ms));
    await Deno.writeTextFile(file + ".tmp", String(s));
    await Deno.rename(file + ".tmp", file);
    console.error("[" + ctx.stage + "] step " + s + "/" + ctx.params.steps);
  }
  await Deno.writeTextFile(ctx.outDir + "/done.json", JSON.stringify({ resumedFrom: from }));
  return { resumedFrom: from };
}
`;
const STAGES = `
const params = { steps: { type: "int", default: 10, doc: "" }, ms: { type: "int", default: 500, doc: "" } };
export const STAGES = [
  { name: "sleepy", doc: "", deps: [], module: "sleepy.ts", outputs: ["done.json"], params,
    resources: { memMB: 256, time: "1" }, // one minute: the time-limit test
    variants: { cancel: { steps: 40 }, timeout: { steps: 110, ms: 1000 }, interrupt: { steps: 60 } } },
  { name: "hog", doc: "", deps: [], module: "hog.ts", outputs: ["x"], params: {}, resources: { memMB: 200, time: "2" } },
];
`;
// Allocates 2 GB, 50 MB at a time, against a 200 MB request.
const HOG = `
export async function run(ctx) {
  const chunks = [];
  for (let i = 0; i < 40; i++) { chunks.push(new Uint8Array(50 << 20).fill(1)); await new Promise((r) => setTimeout(r, 300)); }
  await Deno.writeTextFile(ctx.outDir + "/x", String(chunks.length));
}
`;

async function sleepyProject(): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "slurm-sleepy-" });
  await Deno.writeTextFile(join(root, "sleepy.ts"), SLEEPY);
  await Deno.writeTextFile(join(root, "hog.ts"), HOG);
  await Deno.mkdir(join(root, "pipeline"));
  await Deno.writeTextFile(join(root, "pipeline", "stages.ts"), STAGES);
  return root;
}

function sleepyRun(root: string, variant: string) {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, "reproduce", variant ? `sleepy@${variant}` : "hog", "--root", root, "--executor", "slurm"],
    cwd: root,
    env: env({ PIPELINE_CACHE: join(root, ".cache") }),
    stdout: "null",
    stderr: "piped",
  }).spawn();
}

/** Read a child's stderr as it comes; resolves `until` once a line matches. */
function follow(child: Deno.ChildProcess) {
  let text = "";
  const waiters: Array<[RegExp, (m: RegExpMatchArray) => void]> = [];
  const done = (async () => {
    for await (const chunk of child.stderr) {
      text += dec.decode(chunk);
      for (const [re, resolve] of waiters) {
        const m = text.match(re);
        if (m) resolve(m);
      }
    }
  })();
  return {
    until: (re: RegExp) =>
      new Promise<RegExpMatchArray>((resolve) => {
        const m = text.match(re);
        if (m) resolve(m);
        else waiters.push([re, resolve]);
      }),
    end: async () => {
      const status = await child.status;
      await done;
      return { code: status.code, log: text };
    },
  };
}

/** Wait until the job's own log shows `re` (the engine prints its tail only every few seconds). */
async function logShows(log: string, re: RegExp) {
  while (!re.test(await Deno.readTextFile(log).catch(() => ""))) await new Promise((r) => setTimeout(r, 200));
}

async function squeue(id: string): Promise<string> {
  const r = await new Deno.Command("squeue", {
    args: ["-h", "-j", id, "-t", "PD,R,CG,S", "-o", "%T"],
    env: env(),
    stdout: "piped",
  })
    .output();
  return dec.decode(r.stdout).trim();
}

Deno.test({
  name: "slurm: scancel mid-stage and a time limit: one-line errors, and reruns resume from the checkpoint",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const root = await sleepyProject();
    try {
      const cancelled = follow(sleepyRun(root, "cancel"));
      const timedOut = follow(sleepyRun(root, "timeout"));
      const [, id, log] = await cancelled.until(/Slurm job (\d+) submitted .*; log (\S+)\n/);
      await logShows(log, /step 3\/40/);
      await new Deno.Command("scancel", { args: [id], env: env() }).output();
      const c = await cancelled.end();
      assert.equal(c.code, 1, c.log);
      const line = c.log.trim().split("\n").pop()!;
      assert.match(line, new RegExp(`^error: stage sleepy@cancel: Slurm job ${id} CANCELLED .*log \\S+${id}\\.log`));
      assert.match(line, /rerun to resume from its last checkpoint/);

      const t = await timedOut.end();
      assert.equal(t.code, 1, t.log);
      assert.match(t.log, /error: stage sleepy@timeout: Slurm job \d+ TIMEOUT .*hit its time limit/);

      // Reruns resume where the jobs stopped (the timeout run needs < 1 minute from there).
      const [rc, rt] = await Promise.all(["cancel", "timeout"].map((v) => follow(sleepyRun(root, v)).end()));
      assert.equal(rc.code, 0, rc.log);
      assert.equal(rt.code, 0, rt.log);
      const resumed = async (v: string) =>
        JSON.parse(await Deno.readTextFile(join(root, "out", `sleepy@${v}`, "done.json"))).resumedFrom;
      assert.ok((await resumed("cancel")) >= 3, rc.log);
      assert.ok((await resumed("timeout")) >= 40, rt.log);
    } finally {
      await Deno.remove(root, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name: "slurm: a job over its memory request is reported as a memory kill (FAILED 0:9 here)",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const root = await sleepyProject();
    try {
      const r = await follow(sleepyRun(root, "")).end();
      assert.equal(r.code, 1, r.log);
      assert.match(
        r.log.trim().split("\n").pop()!,
        /^error: stage hog: Slurm job \d+ (FAILED exit 0:9|OUT_OF_MEMORY).*over its 200 MB memory request.*; log \S+\.log/,
      );
    } finally {
      await Deno.remove(root, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name: "slurm: Ctrl-C of reproduce cancels its jobs (none left in the queue) and a rerun resumes",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const root = await sleepyProject();
    try {
      const child = sleepyRun(root, "interrupt");
      const run = follow(child);
      const [, id, log] = await run.until(/Slurm job (\d+) submitted .*; log (\S+)\n/);
      await logShows(log, /step 2\/60/);
      child.kill("SIGINT");
      const r = await run.end();
      assert.equal(r.code, 130, r.log);
      assert.match(r.log, new RegExp(`SIGINT: cancelling Slurm job ${id}`));
      assert.equal(await squeue(id), "", "no job of this run left pending or running");
      const again = await follow(sleepyRun(root, "interrupt")).end();
      assert.equal(again.code, 0, again.log);
      const done = JSON.parse(await Deno.readTextFile(join(root, "out", "sleepy@interrupt", "done.json")));
      assert.ok(done.resumedFrom >= 2, again.log);
    } finally {
      await Deno.remove(root, { recursive: true }).catch(() => {});
      if (cluster.started) await new Deno.Command("bash", { args: [join(ROOT, ".ci/slurm-down")] }).output();
    }
  },
});
