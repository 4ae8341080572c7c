// A test-only executor, registered at run time (registry.ts registerExecutor), never in the
// registry's list: each worker and each task is a child process, and every call it gets is
// appended to the file its settings name — the proof that a plug-in alone drives the engine.
import { type ExecutorPlugin, type JobEnd, workerCommand, workerEnv } from "../../pipeline/executors/executor.ts";
import { PipelineError } from "../../pipeline/types.ts";

interface ProbeSettings {
  /** Where calls are recorded, one line each. */
  journal: string;
  tag: string;
}

let runs = 0;

function note(journal: string, line: string) {
  Deno.writeTextFileSync(journal, line + "\n", { append: true });
}

export const probeExecutor: ExecutorPlugin<ProbeSettings> = {
  name: "probe",
  module: import.meta.url,
  doc: "a test's executor: child processes, every call journaled",
  options: { tag: { arg: "TEXT", help: "a word journaled with every call" } },
  settings(value, options, where) {
    const v = (value ?? {}) as Record<string, unknown>;
    if (typeof v.journal !== "string") {
      throw new PipelineError(`${where}: "probe".journal is ${JSON.stringify(v.journal)}`, 'write "journal": "PATH"');
    }
    return { journal: v.journal, tag: options.tag ?? String(v.tag ?? "") };
  },
  create: (settings) => ({
    name: "probe",
    async run(job, started): Promise<JobEnd> {
      const [exe, ...args] = await workerCommand(job);
      const context = JSON.stringify(settings);
      const child = new Deno.Command(exe, {
        args,
        cwd: job.root,
        stdin: "null",
        env: workerEnv(probeExecutor, context),
      })
        .spawn();
      const id = `probe-${++runs}`;
      await started({ executor: "probe", id });
      note(settings.journal, `run ${job.stage} ${id} ${settings.tag} seconds=${job.resources?.seconds}`);
      const status = await child.status;
      return { code: status.code, signal: status.signal };
    },
  }),
  stop(id) {
    note(Deno.env.get("PROBE_JOURNAL") ?? "/dev/null", `stop ${id}`);
    return Promise.resolve();
  },
  async task(task, contextText) {
    const settings: ProbeSettings = JSON.parse(contextText);
    note(settings.journal, `task ${task.what.split(" of ")[0]} ${settings.tag}`);
    const [exe, ...args] = task.command;
    const status = await new Deno.Command(exe, { args, stdin: "null", env: task.env }).spawn().status;
    // The executor's own verdict: an exit status the task did not choose is one line.
    return status.signal
      ? new PipelineError(`task ${task.what} killed (${status.signal})`, "see its output")
      : undefined;
  },
};
