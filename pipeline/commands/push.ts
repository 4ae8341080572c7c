// `push`: copy finished runs to the shared remote (or into pipeline/remote/ to commit).
import { type Command, say } from "./command.ts";
import { experimentKeys, pushRuns } from "./exp_runs.ts";
import { PARAMETER_OPTIONS } from "./options.ts";
import { transfer } from "./transfer.ts";

export const push: Command = {
  name: "push",
  synopsis: "[stage…]",
  help: "copy finished runs to the shared remote (every file), or without one into pipeline/remote/\n" +
    "(small outputs only) to commit: a fresh clone then restores them instead of training again",
  options: {
    ...PARAMETER_OPTIONS,
    exp: {
      type: "boolean",
      help: "also the experiments the cache holds (runs with --set or a profile; a plain push copies\n" +
        "only the runs pipeline/lock.json records)",
    },
  },
  async run(c) {
    const engine = await c.engine();
    const code = await transfer(engine, "push", c.args);
    if (!c.values.exp) return code;
    const keys = await experimentKeys(engine);
    if (!keys.length) return say("no experiments in the cache");
    const { pushed, already } = await pushRuns(engine, keys);
    console.error(`experiments pushed: ${pushed.join(", ") || "nothing new"}`);
    if (already.length) console.error(`already there: ${already.join(", ")}`);
    return code;
  },
};
