// Where a stage's worker runs: the contract every executor meets (local.ts, slurm_executor.ts,
// or one of yours: see registry.ts). The engine plans, keys, caches and publishes; an executor
// only starts `pipeline/executors/worker.ts <worker.json>`, says how it ended, and can stop it
// later from a bare reference. The worker writes its result next to worker.json, so a job on
// another node needs only the same cache directory (a shared filesystem) and the project at the same path.
import { join } from "node:path";
import { PipelineError, type Resources } from "../types.ts";

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

/**
 * Who computes a run, as the run's lock records it: the executor's name and its own reference
 * (a pid, a job id, …), opaque to everyone else. A later run that finds the lock stale hands it
 * back to that executor (registry.ts stopWorker) to stop the worker.
 */
export interface WorkerRef {
  executor: string;
  id: string;
}

export interface JobEnd {
  code: number | null;
  signal?: string | null;
  /**
   * Set when the executor or its scheduler ended the job (time limit, memory, cancel, node lost):
   * one line. It stands whatever the worker's result file says (the worker may have been stopped
   * part-way after it wrote one), so the run fails.
   */
  error?: PipelineError;
}

/** One command's executor: runs stage workers. */
export interface Executor {
  readonly name: string;
  /** Start `job`'s worker, call `started` with its reference once it has one, resolve when it has ended. */
  run(job: WorkerJob, started: (w: WorkerRef) => Promise<void>): Promise<JobEnd>;
}

/** One task of the work a stage spreads out (tasks.ts): a command whose result file is in `dir`. */
export interface TaskJob {
  /** "fn of module", for messages. */
  what: string;
  command: string[];
  /** The task's private directory (on the cache's filesystem). */
  dir: string;
  /** Environment the task needs on top of the worker's. */
  env: Record<string, string>;
}

/** An executor as the CLI, the settings file, the store and a stage's tasks reach it (registry.ts). */
export interface ExecutorPlugin<S = unknown> {
  readonly name: string;
  /**
   * Its module's URL (import.meta.url), for one registered at run time (registerExecutor): the
   * worker's task processes load it from there. Those in registry.ts need none.
   */
  readonly module?: string;
  /** One line for `--help`. */
  readonly doc: string;
  /** Its options of reproduce/accept, each given as `--<name>-<option> VALUE`: option → help. */
  readonly options?: Record<string, { arg: string; help: string }>;
  /**
   * Its settings, checked: `value` is its block of pipeline/config.local.json (the key is its
   * name; undefined when absent), `options` the values of its options given on the command line.
   * A bad value throws a PipelineError naming `where`.
   */
  settings(value: unknown, options: Record<string, string>, where: string): S;
  create(settings: S, log: (line: string) => void): Executor;
  /**
   * Stop the worker `id` (as this executor's `run` reported it) if it may still be running: a run
   * whose engine died is taken over. Must never touch what is not that worker; never throws.
   */
  stop(id: string): Promise<void>;
  /**
   * Run one task from inside a worker this executor started (the worker's environment carries
   * `context`, see workerEnv). Resolves to an error when the executor ended the task (it stands
   * whatever the task's result file says), else undefined: the task's result file tells.
   * Absent: tasks run as child processes of the worker.
   */
  task?(task: TaskJob, context: string): Promise<PipelineError | undefined>;
}

/**
 * Environment for a worker: which executor started it and its context for tasks (registry.ts
 * workerExecutor reads them back). An executor with a `task` hook passes this to the worker it starts.
 */
export function workerEnv(plugin: Pick<ExecutorPlugin, "name" | "module">, context: string): Record<string, string> {
  return {
    PIPELINE_EXECUTOR: plugin.name,
    PIPELINE_EXECUTOR_CONTEXT: context,
    ...(plugin.module ? { PIPELINE_EXECUTOR_MODULE: plugin.module } : {}),
  };
}

/** What a job gets where its stage declares nothing (`resources` on the stage, or the executor's settings). */
export const DEFAULT_RESOURCES: Resources = { cpus: 1, memMB: 4096, seconds: 4 * 3600 };

/** A stage's resources: defaults, then its declaration, then the overrides for its name and name@variant. */
export function resolveResources(
  stage: string,
  declared: Partial<Resources> = {},
  overrides: Record<string, Partial<Resources>> = {},
): Resources {
  return { ...DEFAULT_RESOURCES, ...declared, ...overrides[stage.split("@")[0]], ...overrides[stage] };
}

const WORKER = new URL("./worker.ts", import.meta.url).pathname;

/** The command that runs a job's worker: `deno run -A [--config deno.json] worker.ts worker.json`. */
export async function workerCommand(job: WorkerJob): Promise<string[]> {
  const args = [Deno.execPath(), "run", "-A", "--no-prompt"];
  const config = join(job.root, "deno.json");
  if (await Deno.stat(config).then(() => true, () => false)) args.push("--config", config);
  return [...args, WORKER, job.configFile];
}

/**
 * Environment for one of `jobs` processes sharing this machine: a fair share of
 * the cores for its thread pools (PIPELINE_THREADS: the OpenBLAS worker pool of
 * models/compute/blas.ts; OMP_NUM_THREADS: OpenMP libraries), and plain progress lines.
 */
export function jobEnv(jobs: number): Record<string, string> {
  if (jobs <= 1) return {};
  const threads = String(Math.max(1, Math.floor(navigator.hardwareConcurrency / jobs)));
  return { PIPELINE_PLAIN: "1", PIPELINE_THREADS: threads, OMP_NUM_THREADS: threads };
}

let interruptedBy: "SIGINT" | "SIGTERM" | undefined;

/** An executor that stops its jobs on Ctrl-C / SIGTERM says so: the command then exits with the signal's status. */
export function noteInterrupted(signal: "SIGINT" | "SIGTERM") {
  interruptedBy = signal;
}

/** The exit status of a run whose jobs were stopped by Ctrl-C (130) or SIGTERM (143), if so. */
export function interruptedStatus(): number | undefined {
  return interruptedBy && (interruptedBy === "SIGINT" ? 130 : 143);
}

const RESOURCE_FIELDS = ["cpus", "memMB", "seconds", "gpus"];

/** Check resources written in a settings file (per-stage overrides): positive numbers in the neutral units. */
export function checkResources(value: unknown, where: string): Partial<Resources> {
  if (!value || typeof value !== "object" || Array.isArray(value)) {
    throw new PipelineError(
      `${where} is ${JSON.stringify(value)}`,
      'write {"cpus": 2, "memMB": 8000, "seconds": 7200}',
    );
  }
  for (const [k, v] of Object.entries(value)) {
    if (k === "time") {
      throw new PipelineError(
        `${where}.time: a time limit is given in seconds`,
        `write "seconds": N instead of "time" (e.g. 7200 for 2 h)`,
      );
    }
    if (!RESOURCE_FIELDS.includes(k)) {
      throw new PipelineError(`${where}: unknown resource "${k}"`, `use ${RESOURCE_FIELDS.join(", ")}`);
    }
    if (typeof v !== "number" || !(v > 0) || (k !== "memMB" && k !== "seconds" && !Number.isInteger(v))) {
      throw new PipelineError(`${where}.${k} is ${JSON.stringify(v)}`, `write a positive number (${k})`);
    }
  }
  return value as Partial<Resources>;
}
