// Where a stage's worker runs: a local child process (default) or a Slurm job.
// Either way the engine plans, keys, caches and publishes; the executor only
// starts `pipeline/executors/worker.ts <worker.json>` and says how it ended. The worker
// writes its result next to worker.json, so a job on another node needs only
// the same cache directory (a shared filesystem) and the project at the same path.
import { dirname, join } from "node:path";
import { cancel, endedBadly, type JobInfo, type SlurmSettings, submit, waitJob } from "./slurm.ts";
import { jobEnv } from "./tasks.ts";
import { DEFAULT_RESOURCES } from "./slurm.ts";
import { PipelineError, type Resources } from "../types.ts";

let interruptedBy: "SIGINT" | "SIGTERM" | undefined;

/** The exit status of a run whose Slurm jobs were cancelled by Ctrl-C (130) or SIGTERM (143), if so. */
export function interruptedStatus(): number | undefined {
  return interruptedBy && (interruptedBy === "SIGINT" ? 130 : 143);
}

export interface WorkerJob {
  /** Resolved stage name, e.g. train-torch-mlp@ga1. */
  stage: string;
  key: string;
  /** worker.json, inside the run's private directory in the cache's tmp/. */
  configFile: string;
  root: string;
  jobs: number;
  /** The stage's declared resources (StageDef.resources). */
  resources?: Partial<Resources>;
  /** The resources of each task it spreads out (StageDef.taskResources). */
  taskResources?: Partial<Resources>;
  /** Where job logs are kept (they outlive the run's tmp dir: errors name them). */
  logDir: string;
}

/** What the run's lock records about who computes it: a local pid, or a Slurm job id. */
export interface WorkerRef {
  pid?: number;
  job?: string;
}

export interface JobEnd {
  code: number | null;
  signal?: string | null;
  /** Set when the scheduler ended the job (timeout, memory, cancel): one line. */
  error?: PipelineError;
}

export interface Executor {
  readonly name: "local" | "slurm";
  run(job: WorkerJob, started: (w: WorkerRef) => Promise<void>): Promise<JobEnd>;
}

const WORKER = new URL("./worker.ts", import.meta.url).pathname;

async function workerCommand(job: WorkerJob): Promise<string[]> {
  const args = [Deno.execPath(), "run", "-A", "--no-prompt"];
  const config = join(job.root, "deno.json");
  if (await Deno.stat(config).then(() => true, () => false)) args.push("--config", config);
  return [...args, WORKER, job.configFile];
}

export class LocalExecutor implements Executor {
  readonly name = "local";
  async run(job: WorkerJob, started: (w: WorkerRef) => Promise<void>): Promise<JobEnd> {
    const [exe, ...args] = await workerCommand(job);
    const child = new Deno.Command(exe, { args, cwd: job.root, stdin: "null", env: jobEnv(job.jobs) }).spawn();
    await started({ pid: child.pid });
    const status = await child.status;
    return { code: status.code, signal: status.signal };
  }
}

/** A stage's resources: defaults, then its declaration, then the run's settings for its name and name@variant. */
export function resolveResources(stage: string, declared: Partial<Resources> = {}, s: SlurmSettings = {}): Resources {
  return { ...DEFAULT_RESOURCES, ...declared, ...s.resources?.[stage.split("@")[0]], ...s.resources?.[stage] };
}

export class SlurmExecutor implements Executor {
  readonly name = "slurm";
  /** Jobs this run submitted and that have not ended: cancelled on Ctrl-C / SIGTERM. */
  private live = new Set<string>();
  private onSignal?: Record<"SIGINT" | "SIGTERM", () => void>;

  constructor(readonly settings: SlurmSettings, private readonly log: (line: string) => void) {}

  async run(job: WorkerJob, started: (w: WorkerRef) => Promise<void>): Promise<JobEnd> {
    const res = resolveResources(job.stage, job.resources, this.settings);
    await Deno.mkdir(job.logDir, { recursive: true });
    const logPattern = join(job.logDir, `${job.stage}-${job.key.slice(0, 12)}-%j.log`);
    const id = await submit({
      script: join(dirname(job.configFile), "job.sh"),
      command: await workerCommand(job),
      name: job.stage,
      log: logPattern,
      cwd: job.root,
      resources: res,
      settings: this.settings,
      // Tasks the stage spreads out (tasks.ts) become Slurm jobs too, with the stage's resources.
      env: {
        PIPELINE_PLAIN: "1",
        PIPELINE_EXECUTOR: "slurm",
        PIPELINE_SLURM: JSON.stringify(this.settings),
        PIPELINE_TASK_RESOURCES: JSON.stringify({ ...res, ...job.taskResources }),
        PIPELINE_LOG_DIR: job.logDir,
      },
    });
    const log = logPattern.replace("%j", id);
    this.track(id);
    try {
      await started({ job: id });
      this.log(`… ${job.stage}: Slurm job ${id} submitted (${res.cpus} cpu, ${res.memMB} MB, ${res.time}); log ${log}`);
      const info = await waitJob(id, this.reporter(job.stage, id, log), this.settings.poll);
      if (!info || info.state === "COMPLETED") return { code: 0 };
      return { code: null, error: endedBadly(`stage ${job.stage}`, id, info, log, res) };
    } finally {
      this.untrack(id);
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

  private track(id: string) {
    this.live.add(id);
    if (this.onSignal) return;
    const handler = (signal: "SIGINT" | "SIGTERM") => async () => {
      interruptedBy = signal; // the job's end may reach the engine first: its exit status is the signal's still
      const ids = [...this.live];
      this.log(`… ${signal}: cancelling Slurm job${ids.length > 1 ? "s" : ""} ${ids.join(", ")}`);
      await cancel(ids);
      // Locks and tmp dirs left behind name this (dead) process: the next run collects them.
      Deno.exit(signal === "SIGINT" ? 130 : 143);
    };
    this.onSignal = { SIGINT: handler("SIGINT"), SIGTERM: handler("SIGTERM") };
    for (const [s, h] of Object.entries(this.onSignal)) Deno.addSignalListener(s as Deno.Signal, h);
  }

  private untrack(id: string) {
    this.live.delete(id);
    if (this.live.size || !this.onSignal) return;
    for (const [s, h] of Object.entries(this.onSignal)) Deno.removeSignalListener(s as Deno.Signal, h);
    this.onSignal = undefined;
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

export type ExecutorName = "local" | "slurm";

export function makeExecutor(
  name: ExecutorName = "local",
  settings: SlurmSettings = {},
  log: (line: string) => void = (l) => console.error(l),
): Executor {
  if (name === "slurm") return new SlurmExecutor(settings, log);
  if (name === "local") return new LocalExecutor();
  throw new PipelineError(`unknown executor ${name}`, "use --executor local or --executor slurm");
}
