// A small Slurm client: submit a batch script, follow the job by polling
// `scontrol` (sbatch --wait polls with growing gaps), cancel. Used by the Slurm
// executor (slurm_executor.ts) for stage jobs and for the tasks a stage spreads out.
// Facts this relies on (measured on Slurm 22.05): ../shared/NOTES-slurm-s3.md.
import { PipelineError, type Resources } from "../types.ts";

/** Cluster-wide choices, from `slurm` in pipeline/config.local.json and the CLI. */
export interface SlurmSettings {
  partition?: string;
  account?: string;
  /** Extra sbatch arguments, e.g. ["--qos=short"]. */
  args?: string[];
  /** Per stage (name or name@variant) overrides of its declared resources (seconds, MB, cpus). */
  resources?: Record<string, Partial<Resources>>;
  /** Seconds between polls of a job's state (default 1). */
  poll?: number;
}

export interface JobInfo {
  state: string;
  reason: string;
  exitCode: string;
  node: string;
  timeLimit: string;
}

const DONE = new Set([
  "COMPLETED",
  "FAILED",
  "CANCELLED",
  "TIMEOUT",
  "OUT_OF_MEMORY",
  "NODE_FAIL",
  "PREEMPTED",
  "BOOT_FAIL",
  "DEADLINE",
]);

async function cmd(name: string, args: string[]): Promise<{ ok: boolean; out: string; err: string }> {
  try {
    const r = await new Deno.Command(name, { args, stdin: "null", stdout: "piped", stderr: "piped" }).output();
    const dec = new TextDecoder();
    return { ok: r.success, out: dec.decode(r.stdout).trim(), err: dec.decode(r.stderr).trim() };
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new PipelineError(
        `${name} not found: --executor slurm needs the Slurm client commands`,
        "run on a cluster's login node (or `bash .ci/slurm-up` for a one-node test cluster), or use --executor local",
      );
    }
    throw e;
  }
}

const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/** Write a batch script that runs `command` with `env`, and submit it; resolves to the job id. */
export async function submit(opts: {
  /** Where to write the script: on the filesystem the nodes share. */
  script: string;
  command: string[];
  name: string;
  log: string;
  cwd: string;
  resources: Resources;
  settings: SlurmSettings;
  env?: Record<string, string>;
}): Promise<string> {
  const r = opts.resources;
  const s = opts.settings;
  const env = { ...opts.env, OPENBLAS_NUM_THREADS: String(r.cpus), OMP_NUM_THREADS: String(r.cpus) };
  await Deno.writeTextFile(
    opts.script,
    [
      "#!/bin/bash",
      ...Object.entries(env).map(([k, v]) => `export ${k}=${quote(v)}`),
      `exec ${opts.command.map(quote).join(" ")}`,
      "",
    ].join("\n"),
  );
  const args = [
    "--parsable",
    `--job-name=${opts.name}`,
    `--output=${opts.log}`,
    `--chdir=${opts.cwd}`,
    "--ntasks=1",
    `--cpus-per-task=${r.cpus}`,
    `--mem=${r.memMB}M`,
    `--time=${slurmTime(r.seconds)}`,
    ...(r.gpus ? [`--gres=gpu:${r.gpus}`] : []),
    ...(s.partition ? [`--partition=${s.partition}`] : []),
    ...(s.account ? [`--account=${s.account}`] : []),
    ...(s.args ?? []),
    "--export=ALL", // this process's environment (PIPELINE_CACHE, PATH, …); the script adds env
    opts.script,
  ];
  const out = await cmd("sbatch", args);
  if (!out.ok) {
    throw new PipelineError(
      `sbatch refused ${opts.name}: ${out.err.split("\n").pop()}`,
      "check the partition and resources (pipeline/stages.ts, `slurm` in pipeline/config.local.json)",
    );
  }
  return out.out.split(";")[0];
}

/** The job's state from `scontrol` (sacct needs an accounting daemon); undefined once Slurm forgot it. */
export async function jobInfo(id: string): Promise<JobInfo | undefined> {
  const r = await cmd("scontrol", ["-o", "show", "job", id]);
  if (!r.ok && /Invalid job id/i.test(r.err)) return undefined; // purged after MinJobAge
  // The controller unreachable for a moment (a restart, a failover): not an end; keep asking.
  if (!r.ok) return { state: "UNREACHABLE", reason: r.err.split("\n")[0], exitCode: "", node: "", timeLimit: "" };
  const field = (k: string) => r.out.match(new RegExp(`(?:^| )${k}=(\\S*)`))?.[1] ?? "";
  return {
    state: field("JobState"),
    reason: field("Reason"),
    exitCode: field("ExitCode"),
    node: field("NodeList"),
    timeLimit: field("TimeLimit"),
  };
}

export function isDone(info: JobInfo | undefined): boolean {
  return !info || DONE.has(info.state);
}

/** Poll until the job ends; onChange sees every new state (and each poll while running). */
export async function waitJob(
  id: string,
  onPoll: (info: JobInfo) => void,
  pollSeconds = 1,
): Promise<JobInfo | undefined> {
  while (true) {
    const info = await jobInfo(id);
    if (info) onPoll(info);
    if (isDone(info)) {
      // A job ended by Slurm (time limit, scancel) shows its end state at once, while its processes
      // get SIGTERM and up to KillWait seconds: wait them out, so nothing writes into a run's
      // directory once the engine has moved on.
      if (info && info.state !== "COMPLETED") await whileCompleting(id);
      return info;
    }
    await new Promise((r) => setTimeout(r, pollSeconds * 1000));
  }
}

/** Wait (≤ 60 s) while the job is COMPLETING (its processes not all gone). */
async function whileCompleting(id: string) {
  for (let i = 0; i < 120; i++) {
    const r = await cmd("squeue", ["-h", "-j", id, "-t", "CG", "-o", "%T"]);
    if (!r.ok || !r.out) return;
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** scancel, then wait (≤ 20 s) until none of the jobs is pending or running any more. */
export async function cancel(ids: string[]): Promise<void> {
  if (!ids.length) return;
  await cmd("scancel", ids).catch(() => {});
  for (let i = 0; i < 40; i++) {
    const infos = await Promise.all(ids.map(jobInfo));
    if (infos.every((x) => isDone(x))) return;
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Slurm's `--time` (D-HH:MM:SS) for a limit in seconds; Slurm counts whole minutes, rounding up. */
export function slurmTime(seconds: number): string {
  const s = Math.max(60, Math.ceil(seconds / 60) * 60);
  const d = Math.floor(s / 86400);
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d}-${p(Math.floor(s % 86400 / 3600))}:${p(Math.floor(s % 3600 / 60))}:00`;
}

/** "90 s", "20 min", "4 h", "7 d": a limit in seconds for messages. */
export function humanSeconds(s: number): string {
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${+(s / 60).toFixed(1)} min`;
  if (s < 2 * 86400) return `${+(s / 3600).toFixed(1)} h`;
  return `${+(s / 86400).toFixed(1)} d`;
}

/** One line for a job that did not complete: its id, state, and what usually causes it. */
export function endedBadly(
  what: string,
  /** Whose declaration sets its resources: the stage and its field (a task's: taskResources). */
  of: { stage: string; field: "resources" | "taskResources" },
  id: string,
  info: JobInfo | undefined,
  log: string,
  r: Resources,
): PipelineError {
  const state = info?.state ?? "ended (state no longer known)";
  const exit = info?.exitCode ? ` exit ${info.exitCode}` : "";
  const hint = info?.state === "TIMEOUT"
    ? `it hit its time limit of ${humanSeconds(r.seconds)}: raise ${of.field}.seconds of ${of.stage}`
    : info?.state === "OUT_OF_MEMORY" || (info?.state === "FAILED" && info.exitCode.endsWith(":9"))
    // Here a memory kill shows as FAILED 0:9 (OverMemoryKill), not OUT_OF_MEMORY.
    ? `killed (signal 9), most likely over its ${r.memMB} MB memory request: raise ${of.field}.memMB of ${of.stage}`
    : info?.state === "CANCELLED"
    ? "cancelled (scancel, or the administrator)"
    : info && ["NODE_FAIL", "PREEMPTED", "BOOT_FAIL"].includes(info.state)
    ? "its node failed or it was preempted"
    : "see its log";
  return new PipelineError(
    `${what}: Slurm job ${id} ${state}${exit} — ${hint}; log ${log}`,
    "rerun to resume from its last checkpoint",
  );
}
