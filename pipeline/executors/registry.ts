// The executors the pipeline knows, by name: what the CLI (--executor NAME and each executor's
// options), the settings file ("executor" and each executor's block), the store (stopping the
// worker of a stale lock) and a stage's tasks consult. Adding an executor: one file exporting
// an ExecutorPlugin (executor.ts says what each part does), and one line below.
import type { Executor, ExecutorPlugin, WorkerRef } from "./executor.ts";
import { localExecutor } from "./local.ts";
import { slurmExecutor } from "./slurm_executor.ts";
import { PipelineError } from "../types.ts";

const EXECUTORS = new Map<string, ExecutorPlugin>([
  ["local", localExecutor as ExecutorPlugin],
  ["slurm", slurmExecutor as ExecutorPlugin],
]);

/** Add an executor at run time (a test's, or a plug-in loaded by a wrapper of the CLI). */
export function registerExecutor<S>(plugin: ExecutorPlugin<S>) {
  EXECUTORS.set(plugin.name, plugin as ExecutorPlugin);
}

export function executorNames(): string[] {
  return [...EXECUTORS.keys()];
}

export function executorPlugin(name: string): ExecutorPlugin {
  const plugin = EXECUTORS.get(name);
  if (!plugin) {
    throw new PipelineError(`unknown executor "${name}"`, `use one of ${executorNames().join(", ")}`);
  }
  return plugin;
}

/** Every executor's command-line options: `--<executor>-<option>`. */
export function executorOptions(): Array<
  { flag: string; executor: string; option: string; arg: string; help: string }
> {
  return [...EXECUTORS.values()].flatMap((p) =>
    Object.entries(p.options ?? {}).map(([option, o]) => ({
      flag: `${p.name}-${option}`,
      executor: p.name,
      option,
      ...o,
    }))
  );
}

/** Check each executor's block of a settings file (the key is its name); `where` names the file. */
export function checkExecutorSettings(settings: Record<string, unknown>, where: string) {
  if (settings.executor !== undefined) {
    if (typeof settings.executor !== "string" || !EXECUTORS.has(settings.executor)) {
      throw new PipelineError(
        `${where}: "executor" is ${JSON.stringify(settings.executor)}`,
        `write one of ${executorNames().map((n) => `"${n}"`).join(", ")}`,
      );
    }
  }
  for (const plugin of EXECUTORS.values()) {
    if (settings[plugin.name] !== undefined) plugin.settings(settings[plugin.name], {}, where);
  }
}

/**
 * The executor `name`, with its block of the settings file and the values of its command-line
 * options (`values`: flag → value, as parsed; others are ignored). An option of another executor
 * than the one chosen is refused: it would do nothing.
 */
export function makeExecutor(
  name: string,
  settings: Record<string, unknown> = {},
  values: Record<string, unknown> = {},
  log: (line: string) => void = (l) => console.error(l),
): Executor {
  const plugin = executorPlugin(name);
  const options: Record<string, string> = {};
  for (const o of executorOptions()) {
    if (values[o.flag] === undefined) continue;
    if (o.executor !== name) {
      throw new PipelineError(`--${o.flag} is an option of the ${o.executor} executor`, `add --executor ${o.executor}`);
    }
    options[o.option] = String(values[o.flag]);
  }
  return plugin.create(plugin.settings(settings[name], options, "pipeline/config.local.json"), log);
}

/**
 * Stop the worker a stale lock names (its engine died), through the executor that started it.
 * Locks written before references were opaque hold {pid} or {job}: read as local and slurm ones.
 */
export async function stopWorker(ref: WorkerRef | { pid?: number; start?: string; job?: string }): Promise<void> {
  const r: Partial<WorkerRef> = "executor" in ref
    ? ref
    : "job" in ref && ref.job
    ? { executor: "slurm", id: ref.job }
    : {};
  const plugin = r.executor ? EXECUTORS.get(r.executor) : undefined;
  if (plugin && r.id !== undefined) await plugin.stop(r.id).catch(() => {});
}

/**
 * The executor a worker runs under (tasks.ts, inside the worker), if it runs tasks itself; one
 * registered at run time is loaded from its module (workerEnv).
 */
export async function workerExecutor(): Promise<{ plugin: ExecutorPlugin; context: string } | undefined> {
  const name = Deno.env.get("PIPELINE_EXECUTOR");
  const module = Deno.env.get("PIPELINE_EXECUTOR_MODULE");
  if (name && !EXECUTORS.has(name) && module) {
    for (const v of Object.values(await import(module))) {
      if ((v as ExecutorPlugin)?.name === name && typeof (v as ExecutorPlugin).create === "function") {
        registerExecutor(v as ExecutorPlugin);
      }
    }
  }
  const plugin = name ? EXECUTORS.get(name) : undefined;
  return plugin?.task ? { plugin, context: Deno.env.get("PIPELINE_EXECUTOR_CONTEXT") ?? "" } : undefined;
}
