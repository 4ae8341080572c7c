// `accept`: carry cached runs over a code change once re-executing them finds them bit-identical.
import { type Command, positiveInt } from "./command.ts";
import { EXECUTOR_OPTIONS, JSON_OPTION, PARAMETER_OPTIONS, REBUILD_THIN, VERIFY_STEPS } from "./options.ts";
import { verified } from "./output.ts";

export const accept: Command = {
  name: "accept",
  synopsis: "[stage…]",
  help: "carry cached runs over a code change (default: every stage stale only by code), after re-executing\n" +
    "each (up to its first evaluation; whole stages under a minute) and finding it bit-identical",
  options: { ...PARAMETER_OPTIONS, ...VERIFY_STEPS, ...REBUILD_THIN, ...JSON_OPTION, ...EXECUTOR_OPTIONS },
  async run(c) {
    const steps = c.values["verify-steps"] === undefined
      ? undefined
      : positiveInt("verify-steps", c.values["verify-steps"], 1);
    const results = await (await c.engine()).accept(c.args, steps, 1, !!c.values["rebuild-thin"]);
    if (!results.length && !c.values.json) console.error("nothing to accept: no stage is stale by its code alone");
    return verified(results, c.values.json);
  },
};
