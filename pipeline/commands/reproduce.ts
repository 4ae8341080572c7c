// `reproduce`: run what is stale, restore what is cached; or, with --verify,
// re-execute cached runs and compare them bit for bit.
import { formatDuration } from "../terminal/progress.ts";
import { resultLine } from "../terminal/style.ts";
import { type Command, positiveInt } from "./command.ts";
import { DRY_RUN, EXECUTOR_OPTIONS, JSON_OPTION, PARAMETER_OPTIONS, REBUILD_THIN, VERIFY_STEPS } from "./options.ts";
import { plain, summaryLine, verified } from "./output.ts";

export const reproduce: Command = {
  name: "reproduce",
  synopsis: "[stage…]",
  help: "run what is stale, restore what is cached (default: every stage)",
  options: {
    ...PARAMETER_OPTIONS,
    force: {
      type: "boolean",
      short: "f",
      help: "rerun the named stages (every stage if none is named) even when cached; never their upstream",
    },
    single: {
      type: "boolean",
      short: "s",
      help: "only the named stages, from cached upstream outputs (like dvc repro -s)",
    },
    partial: {
      type: "boolean",
      help: "like --single, leaving out upstream stages not finished yet (a partial report)",
    },
    ...DRY_RUN,
    jobs: { type: "string", short: "j", arg: "N", help: "run up to N independent stages at once (default 1)" },
    verify: {
      type: "boolean",
      help: "re-execute the stages from their cached inputs in a scratch directory and compare every output\n" +
        "with the cached run: bit-identical, or the first difference (exit 1); changes nothing",
    },
    ...VERIFY_STEPS,
    whole: {
      type: "boolean",
      help: "also make the named stages' thin files whole: fetched from a remote that has them, else rebuilt\n" +
        "under their key and checked (e.g. `reproduce preprocess --whole`: the data, from the URL or a mirror)",
    },
    ...REBUILD_THIN,
    live: {
      type: "boolean",
      help: "write out/live/index.html while stages train: each one's curves so far beside its previous run\n" +
        "(self-contained, reloads itself every few seconds; open it in a browser)",
    },
    "keep-going": {
      type: "boolean",
      short: "k",
      help: "after a failure, go on with the stages that do not depend on it; exit 1 at the end",
    },
    ...JSON_OPTION,
    ...EXECUTOR_OPTIONS,
  },
  async run(c) {
    const t0 = performance.now();
    const engine = await c.engine();
    const steps = c.values["verify-steps"] === undefined
      ? undefined
      : positiveInt("verify-steps", c.values["verify-steps"], 1);
    if (c.values.verify || steps !== undefined) {
      const jobs = positiveInt("jobs", c.values.jobs, 1);
      return verified(await engine.verify(c.args, steps, jobs, !!c.values["rebuild-thin"]), c.values.json);
    }
    const dryRun = !!c.values["dry-run"];
    // Loaded only when asked for: it brings the plotting packages.
    const live = c.values.live && !dryRun ? new (await import("./live.ts")).LiveView(engine, c.root) : undefined;
    if (live) {
      await live.start();
      console.error(`live view: ${live.file} (reloads itself every few seconds)`);
    }
    const results = await engine.reproduce({
      targets: c.args,
      force: !!c.values.force,
      dryRun,
      jobs: positiveInt("jobs", c.values.jobs, 1),
      single: !!(c.values.single || c.values.partial),
      partial: !!c.values.partial,
      keepGoing: !!c.values["keep-going"],
      whole: !!c.values.whole,
      rebuildThin: !!c.values["rebuild-thin"],
    }).finally(() => live?.stop());
    if (c.values.json) console.log(JSON.stringify(results.map(plain), null, 2));
    else if (dryRun) { for (const r of results) console.log(resultLine(r, c.color)); }
    const took = dryRun ? "" : ` (${formatDuration((performance.now() - t0) / 1000)})`;
    console.error(`${summaryLine(results, dryRun)}${took}`);
    const failed = results.filter((r) => r.outcome === "failed");
    if (failed.length) console.error(`failed: ${failed.map((r) => `${r.stage} (${r.reasons[0]})`).join("; ")}`);
    if (!dryRun && c.values.set) {
      console.error(
        "an experiment (--set): recorded in the cache, not in pipeline/lock.json — `deno task exp` lists it, " +
          "`exp apply KEY` adopts it, `exp push KEY` shares it",
      );
    }
    return failed.length ? 1 : 0;
  },
};
