// The default executor: each stage's worker is a child process of the engine, on this host.
// Its reference is "pid:start@host" (start: the process's start time, against a reused pid).
import { hostId, startTime } from "../store/lease.ts";
import {
  type Executor,
  type ExecutorPlugin,
  type JobEnd,
  jobEnv,
  workerCommand,
  type WorkerJob,
  type WorkerRef,
} from "./executor.ts";
import { PipelineError } from "../types.ts";

export class LocalExecutor implements Executor {
  readonly name = "local";
  async run(job: WorkerJob, started: (w: WorkerRef) => Promise<void>): Promise<JobEnd> {
    const [exe, ...args] = await workerCommand(job);
    const child = new Deno.Command(exe, { args, cwd: job.root, stdin: "null", env: jobEnv(job.jobs) }).spawn();
    await started({ executor: "local", id: localRef(child.pid) });
    const status = await child.status;
    return { code: status.code, signal: status.signal };
  }
}

/** The reference of a local worker process. */
export function localRef(pid: number, host = hostId()): string {
  return `${pid}:${startTime(pid) ?? ""}@${host}`;
}

/**
 * The pid of the worker `ref` names if it still runs here: same host, same start time, and
 * really a stage worker (not a process that got its pid since). Never a process on another host.
 */
export function liveWorker(ref: string): number | undefined {
  const m = ref.match(/^(\d+):(\d*)@(.*)$/);
  if (!m || m[3] !== hostId()) return undefined;
  const pid = Number(m[1]);
  const start = startTime(pid);
  if (start === undefined || (m[2] && m[2] !== start)) return undefined;
  try {
    return Deno.readTextFileSync(`/proc/${pid}/cmdline`).includes("pipeline/executors/worker.ts") ? pid : undefined;
  } catch {
    return undefined;
  }
}

export const localExecutor: ExecutorPlugin<Record<never, never>> = {
  name: "local",
  doc: "each stage's worker is a process on this machine (default)",
  settings(value, _options, where) {
    if (value !== undefined) {
      throw new PipelineError(`${where}: "local" takes no settings`, 'remove the "local" block');
    }
    return {};
  },
  create: () => new LocalExecutor(),
  stop(id) {
    const pid = liveWorker(id);
    try {
      if (pid) Deno.kill(pid, "SIGKILL");
    } catch { /* it ended meanwhile */ }
    return Promise.resolve();
  },
};
