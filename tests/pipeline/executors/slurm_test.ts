// --executor slurm on a real one-node Slurm cluster (.ci/slurm-up): the smoke
// pipeline gives the local executor's outputs and the same search picks; a job
// cancelled with scancel, and one killed by its time limit, give a one-line error
// and a rerun that resumes from the checkpoint; a stage that returns on the time
// limit's SIGTERM fails all the same; Ctrl-C leaves no job behind. The cluster is
// $SLURM_CONF's when it answers (CI's), else one of this run's own (its own
// directory, ports and munged), stopped at the end. Skipped, with the reason,
// where no cluster can be started (not root, no packages).
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { DEFAULT_RESOURCES, resolveResources } from "../../../pipeline/executors/executor.ts";
import { type JobInfo, slurmTime } from "../../../pipeline/executors/slurm.ts";
import { jobEnd } from "../../../pipeline/executors/slurm_executor.ts";
import { checkSlurmSettings } from "../../../pipeline/executors/slurm_settings.ts";
import { PipelineError } from "../../../pipeline/types.ts";
import { copyProject } from "../../support/project_copy.ts";

const ROOT = new URL("../../..", import.meta.url).pathname;
const CLI = join(ROOT, "pipeline/cli.ts");
const dec = new TextDecoder();

/** $SLURM_CONF's cluster if it answers, else a new one of this run's own; the reason to skip when none can be had. */
async function slurmUp(): Promise<{ conf?: string; started?: boolean; skip?: string }> {
  if (Deno.env.get("PIPELINE_SKIP_SLURM")) return { skip: "PIPELINE_SKIP_SLURM is set" };
  const given = Deno.env.get("SLURM_CONF");
  if (given) {
    const r = await new Deno.Command("sinfo", { args: ["-h", "-N", "-o", "%t"], env: { SLURM_CONF: given } }).output()
      .catch(() => undefined);
    if (r?.success && /^(idle|mix|alloc)/.test(dec.decode(r.stdout))) return { conf: given };
  }
  if (Deno.uid() !== 0) return { skip: "needs root to start a one-node Slurm cluster (.ci/slurm-up)" };
  const env = { ...Deno.env.toObject() };
  delete env.SLURM_CI_DIR; // a directory of its own: another run's cluster is not this one's to stop
  const r = await new Deno.Command("bash", {
    args: [join(ROOT, ".ci/slurm-up")],
    env,
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  if (!r.success) return { skip: `.ci/slurm-up failed: ${dec.decode(r.stderr).trim().split("\n").pop()}` };
  return { conf: dec.decode(r.stdout).trim(), started: true };
}

Deno.test("slurm resources: defaults, then the stage's declaration, then settings for its name and name@variant", () => {
  const settings = { resources: { "train-torch-mlp": { memMB: 5000 }, "train-torch-mlp@ga1": { seconds: 9 * 3600 } } };
  assert.deepEqual(resolveResources("train-torch-mlp@ga1", { cpus: 2, seconds: 3600 }, settings.resources), {
    ...DEFAULT_RESOURCES,
    cpus: 2,
    memMB: 5000,
    seconds: 9 * 3600,
  });
  assert.deepEqual(resolveResources("train-cnn"), DEFAULT_RESOURCES);
});

Deno.test("slurm: limits in seconds become --time in whole minutes, rounded up", () => {
  assert.equal(slurmTime(60), "0-00:01:00");
  assert.equal(slurmTime(61), "0-00:02:00");
  assert.equal(slurmTime(5), "0-00:01:00");
  assert.equal(slurmTime(4 * 3600), "0-04:00:00");
  assert.equal(slurmTime(7 * 86400), "7-00:00:00");
});

Deno.test("slurm: a job's end state decides; the worker's result only for COMPLETED or its own exit status", () => {
  const info = (state: string, exitCode: string): JobInfo => ({ state, exitCode, reason: "", node: "", timeLimit: "" });
  const err = () => new PipelineError("ended by Slurm", "");
  assert.deepEqual(jobEnd(info("COMPLETED", "0:0"), err), { code: 0 });
  assert.deepEqual(jobEnd(info("FAILED", "2:0"), err), { code: 2 }, "the worker's own error: its result says why");
  // A worker that wrote its result and exited 0 on the time limit's SIGTERM: still a failure.
  for (const [state, exit] of [["TIMEOUT", "0:0"], ["CANCELLED", "0:15"], ["FAILED", "0:9"], ["NODE_FAIL", "0:0"]]) {
    assert.equal(jobEnd(info(state, exit), err).error?.message, "ended by Slurm", state);
  }
});

Deno.test("slurm settings: checked, each fault one line; a time limit is in seconds", () => {
  assert.deepEqual(checkSlurmSettings(undefined, "f"), {});
  const ok = { partition: "cpu", args: ["--qos=x"], resources: { "train-cnn": { seconds: 3600, memMB: 8000 } } };
  assert.deepEqual(checkSlurmSettings(ok, "f"), ok);
  assert.throws(
    () => checkSlurmSettings({ resources: { "train-cnn": { time: "12:00:00" } } }, "f"),
    /a time limit is given in seconds/,
  );
  assert.throws(() => checkSlurmSettings({ partiton: "cpu" }, "f"), /unknown "slurm" setting "partiton"/);
  assert.throws(() => checkSlurmSettings({ args: "--qos=x" }, "f"), /"slurm".args is "--qos=x"/);
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
    const root = await copyProject("slurm-e2e-");
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
    resources: { memMB: 256, seconds: 60 }, // the time-limit test
    variants: { cancel: { steps: 40 }, timeout: { steps: 110, ms: 1000 }, interrupt: { steps: 60 } } },
  { name: "hog", doc: "", deps: [], module: "hog.ts", outputs: ["x"], params: {}, resources: { memMB: 200, seconds: 120 } },
  { name: "graceful", doc: "", deps: [], module: "graceful.ts", outputs: ["done.json"], params: {},
    resources: { memMB: 256, seconds: 60 } },
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

// Sleeps until the time limit's SIGTERM, then writes its output and returns: its worker writes an
// ok result and exits 0, yet Slurm ends the job TIMEOUT. The run must fail, not be reported done.
const GRACEFUL = `
export async function run(ctx) {
  let term = false;
  Deno.addSignalListener("SIGTERM", () => { term = true; });
  while (!term) await new Promise((r) => setTimeout(r, 200));
  console.error("[graceful] SIGTERM: returning");
  await Deno.writeTextFile(ctx.outDir + "/done.json", "{}");
  return {};
}
`;

async function sleepyProject(): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "slurm-sleepy-" });
  await Deno.writeTextFile(join(root, "graceful.ts"), GRACEFUL);
  await Deno.writeTextFile(join(root, "sleepy.ts"), SLEEPY);
  await Deno.writeTextFile(join(root, "hog.ts"), HOG);
  await Deno.mkdir(join(root, "pipeline"));
  await Deno.writeTextFile(join(root, "pipeline", "stages.ts"), STAGES);
  return root;
}

/** reproduce sleepy@<variant>, or another stage of the sleepy project by its name. */
function sleepyRun(root: string, variant: string) {
  const target = ["hog", "graceful"].includes(variant) ? variant : `sleepy@${variant}`;
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, "reproduce", target, "--root", root, "--executor", "slurm"],
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
      const graceful = follow(sleepyRun(root, "graceful"));
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
      assert.match(t.log, /error: stage sleepy@timeout: Slurm job \d+ TIMEOUT .*hit its time limit of 60 s/);

      // The worker returned on SIGTERM and wrote an ok result: the job's TIMEOUT stands.
      const g = await graceful.end();
      assert.equal(g.code, 1, g.log);
      assert.match(
        g.log.trim().split("\n").pop()!,
        /^error: stage graceful: Slurm job \d+ TIMEOUT exit 0:0 — it hit its time limit of 60 s: raise resources\.seconds of graceful; log \S+\.log — rerun/,
      );
      assert.doesNotMatch(g.log, /✓ graceful/);
      const gLog = g.log.match(/Slurm job \d+ submitted .*; log (\S+)\n/)![1];
      assert.match(
        await Deno.readTextFile(gLog),
        /SIGTERM: returning/,
        "the stage did return and its worker wrote a result",
      );
      assert.ok(!(await Deno.stat(join(root, "out", "graceful")).then(() => true, () => false)), "nothing published");

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
      const r = await follow(sleepyRun(root, "hog")).end();
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
    }
  },
});

Deno.test({
  name: "slurm: this run's own cluster stops (another run's, or CI's, is left alone)",
  ignore: !cluster.started,
  fn: async () => {
    const r = await new Deno.Command("bash", { args: [join(ROOT, ".ci/slurm-down"), cluster.conf!] }).output();
    assert.ok(r.success, dec.decode(r.stderr));
    assert.ok(!(await Deno.stat(dirname(cluster.conf!)).then(() => true, () => false)), "its directory is removed");
  },
});
