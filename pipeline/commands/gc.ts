// `gc`: remove cached runs and files that nothing needs (pipeline/store/gc.ts decides which).
import { join } from "node:path";
import { gc as collect } from "../store/gc.ts";
import { type Command, plural, positiveInt, say } from "./command.ts";
import { DRY_RUN, JSON_OPTION } from "./options.ts";

export const gc: Command = {
  name: "gc",
  synopsis: "",
  help: "remove cached runs and files not recorded by a lock file, not in the remote,\n" +
    "not among the newest --keep-last N of their stage, and not used by a running reproduce",
  options: {
    ...DRY_RUN,
    ...JSON_OPTION,
    "keep-last": { type: "string", arg: "N", help: "also keep the newest N runs of each stage (default 0)" },
  },
  async run(c) {
    const engine = await c.engine();
    const pipelineDir = join(c.root, "pipeline");
    const lockFiles = [...Deno.readDirSync(pipelineDir)]
      .filter((e) => /^lock(\..+)?\.json$/.test(e.name)).map((e) => join(pipelineDir, e.name));
    const dryRun = !!c.values["dry-run"];
    const r = await collect(engine.store, {
      lockFiles,
      keepLast: positiveInt("keep-last", c.values["keep-last"], 0, 0),
      dryRun,
    });
    if (c.values.json) return say(JSON.stringify({ dryRun, ...r }, null, 2));
    for (const run of r.runs) console.log(`${dryRun ? "would remove" : "removed"} ${run}`);
    console.log(
      `${dryRun ? "would free" : "freed"} ${(r.bytes / 2 ** 20).toFixed(1)} MiB: ` +
        `${plural(r.runs.length, "run")}, ${plural(r.objects, "file")}`,
    );
    return 0;
  },
};
