// The Slurm executor: each stage's worker is a batch job (sbatch), followed by polling
// `scontrol`; the tasks a stage spreads out are jobs of their own. Its settings are the
// "slurm" block of pipeline/config.local.json, its options --slurm-partition, --slurm-account.
// Resources come in seconds, MB and cpus (pipeline/types.ts); slurm.ts turns them into flags.
import { dirname, join } from "node:path";
import {
  type Executor,
  type ExecutorPlugin,
  type JobEnd,
  noteInterrupted,
  resolveResources,
  type TaskJob,
  workerCommand,
  workerEnv,
  type WorkerJob,
  type WorkerRef,
} from "./executor.ts";
import { cancel, endedBadly, humanSeconds, type JobInfo, type SlurmSettings, submit, waitJob } from "./slurm.ts";
import { checkSlurmSettings } from "./slurm_settings.ts";
import { PipelineError, type Resources } from "../types.ts";

/** What a stage job hands its tasks (PIPELINE_EXECUTOR_CONTEXT): the settings, their resources, where logs go. */
interface TaskContext {
  settings: SlurmSettings;
  resources: Resources;
  stage: string;
  logDir: string;
}

/**
 * How a job ended, for the engine: COMPLETED, or FAILED with the worker's own exit status
 * (N:0, its result file says why), leave the verdict to the worker's result; any other end
 * (TIMEOUT, CANCELLED, a memory kill FAILED 0:9, NODE_FAIL, …) is Slurm's, and stands even
 * when the worker wrote a result first (a stage that catches SIGTERM and returns, or one that
 * ended right at its limit): the run fails with one line.
 */
export function jobEnd(info: JobInfo | undefined, error: () => PipelineError): JobEnd {
  if (!info || info.state === "COMPLETED") return { code: 0 }; // forgotten (MinJobAge): the result tells
  const own = info.state === "FAILED" && info.exitCode.match(/^([1-9]\d*):0$/);
  if (own) return { code: Number(own[1]) };
  return { code: null, error: error() };
}

export class SlurmExecutor implements Executor {
  readonly name = "slurm";
  constructor(readonly settings: SlurmSettings, private readonly log: (line: string) => void) {}

  async run(job: WorkerJob, started: (w: WorkerRef) => Promise<void>): Promise<JobEnd> {
    const res = resolveResources(job.stage, job.resources, this.settings.resources);
    await Deno.mkdir(job.logDir, { recursive: true });
    const logPattern = join(job.logDir, `${job.stage}-${job.key.slice(0, 12)}-%j.log`);
    const context: TaskContext = {
      settings: this.settings,
      resources: { ...res, ...job.taskResources },
      stage: job.stage,
      logDir: job.logDir,
    };
    const id = await submit({
      script: join(dirname(job.configFile), "job.sh"),
      command: await workerCommand(job),
      name: job.stage,
      log: logPattern,
      cwd: job.root,
      resources: res,
      settings: this.settings,
      // Tasks the stage spreads out (tasks.ts) become Slurm jobs too, with its taskResources.
      env: { PIPELINE_PLAIN: "1", ...workerEnv(slurmExecutor, JSON.stringify(context)) },
    });
    const log = logPattern.replace("%j", id);
    track(id, this.log);
    try {
      await started({ executor: "slurm", id });
      this.log(
        `… ${job.stage}: Slurm job ${id} submitted (${res.cpus} cpu, ${res.memMB} MB, ${
          humanSeconds(res.seconds)
        }); log ${log}`,
      );
      const info = await waitJob(id, this.reporter(job.stage, id, log), this.settings.poll);
      return jobEnd(
        info,
        () => endedBadly(`stage ${job.stage}`, { stage: job.stage, field: "resources" }, id, info, log, res),
      );
    } finally {
      untrack(id);
    }
  }

  /** A line at every state change, and the tail of the job's log every few seconds while it runs. */
  private reporter(stage: string, id: string, log: string) {
    let shown = "";
    let shownAt = 0;
    return (info: JobInfo) => {
      const where = info.state === "PENDING" || info.state === "UNREACHABLE"
        ? ` (${info.reason})`
        : info.state === "RUNNING"
        ? ` on ${info.node}`
        : "";
      const tail = info.state === "RUNNING" ? lastLine(log) : "";
      const line = `… ${stage}: job ${id} ${info.state}${where}${tail ? ` · ${tail}` : ""}`;
      const now = Date.now();
      const stateChanged = !shown.startsWith(`… ${stage}: job ${id} ${info.state}${where}`);
      if (line !== shown && (stateChanged || now - shownAt >= 5000)) {
        this.log(line);
        shown = line;
        shownAt = now;
      }
    };
  }
}

/** Jobs this process submitted (stages, or a stage's tasks) that have not ended: cancelled on Ctrl-C / SIGTERM. */
const live = new Set<string>();
let onSignal: Record<"SIGINT" | "SIGTERM", () => void> | undefined;

/**
 * Follow a job: on Ctrl-C / SIGTERM, cancel every job followed and exit with the signal's status.
 * In a stage job, scancel and a time limit send SIGTERM first: its task jobs go down with it.
 */
function track(id: string, log: (line: string) => void) {
  live.add(id);
  if (onSignal) return;
  const handler = (signal: "SIGINT" | "SIGTERM") => async () => {
    noteInterrupted(signal); // the job's end may reach the engine first: its exit status is the signal's still
    const ids = [...live];
    log(`… ${signal}: cancelling Slurm job${ids.length > 1 ? "s" : ""} ${ids.join(", ")}`);
    await cancel(ids);
    // Locks and tmp dirs left behind name this (dead) process: the next run collects them.
    Deno.exit(signal === "SIGINT" ? 130 : 143);
  };
  onSignal = { SIGINT: handler("SIGINT"), SIGTERM: handler("SIGTERM") };
  for (const [s, h] of Object.entries(onSignal)) Deno.addSignalListener(s as Deno.Signal, h);
}

function untrack(id: string) {
  live.delete(id);
  if (live.size || !onSignal) return;
  for (const [s, h] of Object.entries(onSignal)) Deno.removeSignalListener(s as Deno.Signal, h);
  onSignal = undefined;
}

/** Run one task as a Slurm job (its stage's taskResources). */
async function slurmTask(task: TaskJob, contextText: string): Promise<PipelineError | undefined> {
  const context: TaskContext = JSON.parse(contextText);
  await Deno.mkdir(context.logDir, { recursive: true });
  const log = join(context.logDir, `task-%j.log`);
  const id = await submit({
    script: join(task.dir, "job.sh"),
    command: task.command,
    name: `${context.stage}.task`,
    log,
    cwd: Deno.cwd(),
    resources: context.resources,
    settings: context.settings,
    env: { PIPELINE_PLAIN: "1", ...task.env },
  });
  track(id, (line) => console.error(line));
  try {
    const info = await waitJob(id, () => {}, context.settings.poll);
    const of = { stage: context.stage, field: "taskResources" as const };
    return jobEnd(info, () => endedBadly(`task ${task.what}`, of, id, info, log.replace("%j", id), context.resources))
      .error;
  } finally {
    untrack(id);
  }
}

/** The last non-empty line of a log (its last 4 KiB), without carriage-return redraws. */
function lastLine(path: string): string {
  try {
    using f = Deno.openSync(path);
    const size = f.statSync().size;
    const buf = new Uint8Array(Math.min(4096, size));
    f.seekSync(size - buf.length, Deno.SeekMode.Start);
    const n = f.readSync(buf) ?? 0;
    const text = new TextDecoder().decode(buf.subarray(0, n));
    return text.split(/[\r\n]/).map((l) => l.trim()).filter(Boolean).pop()?.slice(0, 160) ?? "";
  } catch {
    return "";
  }
}

export const slurmExecutor: ExecutorPlugin<SlurmSettings> = {
  name: "slurm",
  doc: "each stage's worker is a Slurm batch job (sbatch; see README, On a Slurm cluster)",
  options: {
    partition: { arg: "NAME", help: 'the partition for Slurm jobs (else "partition" in the "slurm" settings)' },
    account: { arg: "NAME", help: 'the account Slurm jobs are charged to (else "account" in the "slurm" settings)' },
  },
  settings: (value, options, where) => ({ ...checkSlurmSettings(value, where), ...options }),
  create: (settings, log) => new SlurmExecutor(settings, log),
  stop: (id) => cancel([id]).catch(() => {}),
  task: slurmTask,
};
