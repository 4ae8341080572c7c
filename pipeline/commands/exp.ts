// `exp`: every run of a stage in the cache and the remote (exp_runs.ts), one
// run's record, sharing experiments, adopting one as the study's run.
import { relative } from "node:path";
import { type Command, UsageError } from "./command.ts";
import { applyRun, formatRuns, listRuns, pushRuns, showRun } from "./exp_runs.ts";
import { JSON_OPTION, PROFILE } from "./options.ts";

export const exp: Command = {
  name: "exp",
  synopsis: "[stage] | show|apply KEY | push KEY…",
  help: "every run of a stage in the cache and the remote: parameters, metrics, when, how long, where;\n" +
    "experiments (runs with --set or a profile) are marked e, smoke-profile runs SMOKE; a run under several\n" +
    "keys is one row. `exp show KEY-PREFIX`: one run's full record; `exp push KEY…`: copy experiments to\n" +
    "the remote; `exp apply KEY`: make one the study's run (its settings into params.json, the lock names it)",
  options: {
    ...PROFILE,
    ...JSON_OPTION,
    sort: { type: "string", arg: "METRIC[:asc]", help: "order runs by a metric, highest first" },
  },
  async run(c) {
    const engine = await c.engine();
    const [sub, ...keys] = c.args;
    if (sub === "show") {
      if (keys.length !== 1) throw new UsageError("exp show takes one key prefix", "e.g. deno task exp show bf34");
      console.log(JSON.stringify(await showRun(engine, keys[0]), null, 2));
      return 0;
    }
    if (sub === "push") {
      if (!keys.length) throw new UsageError("exp push takes run keys", "e.g. deno task exp push bf34");
      const url = engine.store.remotes.at(-1)!.url;
      const { pushed, already } = await pushRuns(engine, keys);
      console.error(`pushed to ${url}: ${pushed.join(", ") || "nothing new"}`);
      if (already.length) console.error(`already there: ${already.join(", ")}`);
      return 0;
    }
    if (sub === "apply") {
      if (keys.length !== 1) throw new UsageError("exp apply takes one key prefix", "e.g. deno task exp apply bf34");
      if (c.values.set) throw new UsageError("exp apply does not take --set", "apply the run, then reproduce");
      const r = await applyRun(engine, c.root, keys[0]);
      const params = Object.entries(r.params).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(", ");
      console.error(
        `applied: ${relative(c.root, engine.lockFile)} now records ${r.stage} ${r.key.slice(0, 8)}` +
          (params ? `; pipeline/params.json: ${params}` : "") +
          "; `deno task status` shows what downstream is stale",
      );
      return 0;
    }
    if (c.args.length > 1) throw new UsageError("exp takes one stage", "e.g. deno task exp train-torch-mlp");
    const runs = await listRuns(engine, c.args[0], c.values.sort as string | undefined, await c.profiles());
    console.log(c.values.json ? JSON.stringify(runs, null, 2) : formatRuns(runs, c.color));
    return 0;
  },
};
