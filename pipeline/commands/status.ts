// `status`: what reproduce would do to each stage, and why.
import { resultLine } from "../terminal/style.ts";
import type { Command } from "./command.ts";
import { JSON_OPTION, PARAMETER_OPTIONS } from "./options.ts";
import { plain, summaryLine } from "./output.ts";

export const status: Command = {
  name: "status",
  synopsis: "[stage…]",
  help: "what reproduce would do to each stage, and exactly why; changes nothing",
  options: { ...PARAMETER_OPTIONS, ...JSON_OPTION },
  async run(c) {
    const results = await (await c.engine()).status(c.args);
    if (c.values.json) console.log(JSON.stringify(results.map(plain), null, 2));
    else for (const r of results) console.log(resultLine(r, c.color));
    if (!c.values.json) console.error(summaryLine(results, true));
    return 0;
  },
};
