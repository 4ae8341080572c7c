// `pull`: restore the lock file's runs from the remotes.
import type { Command } from "./command.ts";
import { PARAMETER_OPTIONS } from "./options.ts";
import { transfer } from "./transfer.ts";

export const pull: Command = {
  name: "pull",
  synopsis: "[stage…]",
  help: "restore the lock file's runs from the remotes into the cache and out/",
  options: PARAMETER_OPTIONS,
  run: async (c) => transfer(await c.engine(), "pull", c.args),
};
