// The command line. Commands and options are tables: a new one is an entry in
// COMMANDS or OPTIONS (its help text, and which commands take it) and a few lines.
// Parsing is Node's parseArgs; exit codes: 0 done, 1 failed, 2 bad command line.
import { join, relative, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { dagDot, dagJson, dagTree } from "./commands/dag.ts";
import { formatDiff, readLockAt } from "./commands/diff.ts";
import { deltaRows, describeViolation, formatMarkdown, parseLimit, regressions, seedBase } from "./commands/diff_md.ts";
import type { LockFile } from "./engine/lockfile.ts";
import { Engine, type StageResult, type VerifyResult } from "./engine/engine.ts";
import { interruptedStatus } from "./executors/executor.ts";
import { executorNames, executorOptions, executorPlugin, makeExecutor } from "./executors/registry.ts";
import { applyRun, experimentKeys, formatRuns, listRuns, pushRuns, showRun } from "./commands/exp.ts";
import { knownFault } from "./engine/faults.ts";
import { gc } from "./store/gc.ts";
import { type Override, own } from "./engine/graph.ts";
import { readParamsFile, splitAssignment } from "./engine/params.ts";
import { TransferProgress } from "./sharing/remote.ts";
import { SCHEMES, schemesHelp } from "./sharing/registry.ts";
import { formatDuration } from "./terminal/progress.ts";
import { readLocalSettings } from "./engine/settings.ts";
import { colorWanted, maskConsole, resultLine } from "./terminal/style.ts";
import { type ParamValue, PipelineError, type Profile, type StageDef } from "./types.ts";

/** A mistake in the command line itself (unknown command or option, a malformed option value): exit 2. */
class UsageError extends PipelineError {}

interface Option {
  type: "string" | "boolean";
  short?: string;
  multiple?: boolean;
  /** The value's placeholder in --help. */
  arg?: string;
  help: string;
  /** The commands that take it; absent: every command. */
  commands?: string[];
}

const OPTIONS: Record<string, Option> = {
  set: {
    type: "string",
    multiple: true,
    arg: "stage.param=value",
    help: "override a parameter (stage@variant.param for one variant); repeatable",
    commands: ["reproduce", "status", "dag", "params", "push", "pull", "accept"],
  },
  profile: {
    type: "string",
    arg: "NAME",
    help: "a named set of overrides (e.g. smoke: the whole pipeline on tiny synthetic data)",
    commands: ["reproduce", "status", "dag", "params", "push", "pull", "diff", "exp", "accept"],
  },
  force: {
    type: "boolean",
    short: "f",
    help: "rerun the named stages (every stage if none is named) even when cached; never their upstream",
    commands: ["reproduce"],
  },
  single: {
    type: "boolean",
    short: "s",
    help: "only the named stages, from cached upstream outputs (like dvc repro -s)",
    commands: ["reproduce"],
  },
  partial: {
    type: "boolean",
    help: "like --single, leaving out upstream stages not finished yet (a partial report)",
    commands: ["reproduce"],
  },
  "dry-run": {
    type: "boolean",
    short: "n",
    help: "say what would be done and why, change nothing",
    commands: ["reproduce", "gc"],
  },
  jobs: {
    type: "string",
    short: "j",
    arg: "N",
    help: "run up to N independent stages at once (default 1)",
    commands: ["reproduce"],
  },
  verify: {
    type: "boolean",
    help: "re-execute the stages from their cached inputs in a scratch directory and compare every output\n" +
      "with the cached run: bit-identical, or the first difference (exit 1); changes nothing",
    commands: ["reproduce"],
  },
  "verify-steps": {
    type: "string",
    arg: "N",
    help: "with --verify: only the first N steps of training stages (the curve and weights digests);\n" +
      "with accept: how many steps to re-execute (default: up to the first evaluation)",
    commands: ["reproduce", "accept"],
  },
  whole: {
    type: "boolean",
    help: "also make the named stages' thin files whole: fetched from a remote that has them, else rebuilt\n" +
      "under their key and checked (e.g. `reproduce preprocess --whole`: the data, from the URL or a mirror)",
    commands: ["reproduce"],
  },
  "rebuild-thin": {
    type: "boolean",
    help: "go ahead with rebuilds of thin runs that cost more than 10 min in their records (else: listed, exit 1)",
    commands: ["reproduce", "accept"],
  },
  live: {
    type: "boolean",
    help: "write out/live/index.html while stages train: each one's curves so far beside its previous run\n" +
      "(self-contained, reloads itself every few seconds; open it in a browser)",
    commands: ["reproduce"],
  },
  "keep-going": {
    type: "boolean",
    short: "k",
    help: "after a failure, go on with the stages that do not depend on it; exit 1 at the end",
    commands: ["reproduce"],
  },
  json: {
    type: "boolean",
    help: "machine-readable output on stdout",
    commands: ["reproduce", "status", "dag", "params", "exp", "diff", "gc", "accept"],
  },
  exp: {
    type: "boolean",
    help: "also the experiments the cache holds (runs with --set or a profile; a plain push copies\n" +
      "only the runs pipeline/lock.json records)",
    commands: ["push"],
  },
  md: { type: "boolean", help: "the delta table in Markdown (a pull request, a job summary)", commands: ["diff"] },
  all: { type: "boolean", help: "every row, not only those that changed", commands: ["diff"] },
  "fail-on": {
    type: "string",
    multiple: true,
    arg: "METRIC:±LIMIT",
    help: "exit 3 if the metric moves past the limit: test_acc:-0.01 a drop of more than 0.01,\n" +
      "test_loss:+5% a rise of more than 5% of the old value; stage/metric:… one stage's; seeds: their mean",
    commands: ["diff"],
  },
  plots: {
    type: "string",
    arg: "DIR",
    help: "write the curves of every stage whose run differs, both sides overlaid (SVG, PNG, Vega-Lite),\n" +
      "with DIR/index.md and a self-contained DIR/index.html holding the delta table",
    commands: ["diff"],
  },
  runs: {
    type: "boolean",
    help: "the arguments are run keys (prefixes, see `exp`), not revisions: compare those runs",
    commands: ["diff"],
  },
  mermaid: { type: "boolean", help: "the graph as a Mermaid flowchart", commands: ["dag"] },
  dot: { type: "boolean", help: "the graph in Graphviz DOT (| dot -Tsvg > dag.svg)", commands: ["dag"] },
  sort: { type: "string", arg: "METRIC[:asc]", help: "order runs by a metric, highest first", commands: ["exp"] },
  "keep-last": {
    type: "string",
    arg: "N",
    help: "also keep the newest N runs of each stage (default 0)",
    commands: ["gc"],
  },
  remote: {
    type: "string",
    arg: "URL",
    help: 'the shared remote (default: "remote" in pipeline/config.local.json), or git for pipeline/remote/ alone:\n' +
      schemesHelp(""),
  },
  executor: {
    type: "string",
    arg: executorNames().join("|"),
    help: 'where stages run (default local; also "executor" in pipeline/config.local.json):\n' +
      executorNames().map((n) => `${n}: ${executorPlugin(n).doc}`).join("\n"),
    commands: ["reproduce", "accept"],
  },
  // Each executor's own options (registry.ts): --<executor>-<option>.
  ...Object.fromEntries(
    executorOptions().map((o) => [o.flag, {
      type: "string" as const,
      arg: o.arg,
      help: o.help,
      commands: ["reproduce", "accept"],
    }]),
  ),
  root: { type: "string", arg: "DIR", help: "another project (tests use it)" },
  pipeline: { type: "string", arg: "FILE", help: "another stage declaration (tests use it)" },
  version: { type: "boolean", help: "project, Deno and TensorFlow.js versions" },
  help: { type: "boolean", short: "h", help: "this text" },
};

type Values = Record<string, string | boolean | string[] | undefined>;

interface Ctx {
  values: Values;
  /** Positional arguments after the command. */
  args: string[];
  root: string;
  engine(): Promise<Engine>;
  /** Where the lock file of this invocation lives (lock.<profile>.json with --profile). */
  lockFile: string;
  color: boolean;
}

interface Command {
  args: string;
  help: string;
  run(c: Ctx): Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  reproduce: {
    args: "[stage…]",
    help: "run what is stale, restore what is cached (default: every stage)",
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
      const live = c.values.live && !dryRun
        ? new (await import("./commands/live.ts")).LiveView(engine, c.root)
        : undefined;
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
  },
  status: {
    args: "[stage…]",
    help: "what reproduce would do to each stage, and exactly why; changes nothing",
    async run(c) {
      const results = await (await c.engine()).status(c.args);
      if (c.values.json) console.log(JSON.stringify(results.map(plain), null, 2));
      else for (const r of results) console.log(resultLine(r, c.color));
      if (!c.values.json) console.error(summaryLine(results, true));
      return 0;
    },
  },
  accept: {
    args: "[stage…]",
    help: "carry cached runs over a code change (default: every stage stale only by code), after re-executing\n" +
      "each (up to its first evaluation; whole stages under a minute) and finding it bit-identical",
    async run(c) {
      const steps = c.values["verify-steps"] === undefined
        ? undefined
        : positiveInt("verify-steps", c.values["verify-steps"], 1);
      const results = await (await c.engine()).accept(c.args, steps, 1, !!c.values["rebuild-thin"]);
      if (!results.length && !c.values.json) console.error("nothing to accept: no stage is stale by its code alone");
      return verified(results, c.values.json);
    },
  },
  push: {
    args: "[stage…]",
    help: "copy finished runs to the shared remote (every file), or without one into pipeline/remote/\n" +
      "(small outputs only) to commit: a fresh clone then restores them instead of training again",
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
  },
  pull: {
    args: "[stage…]",
    help: "restore the lock file's runs from the remotes into the cache and out/",
    run: async (c) => transfer(await c.engine(), "pull", c.args),
  },
  dag: {
    args: "",
    help: "the stage graph: a tree with each stage's state (default), --mermaid or --dot",
    async run(c) {
      const engine = await c.engine();
      if (c.values.mermaid) console.log(engine.graph.mermaid());
      else if (c.values.dot) console.log(dagDot(engine.graph));
      else {
        const states = new Map((await engine.status()).map((r) => [r.stage, r]));
        console.log(
          c.values.json
            ? JSON.stringify(dagJson(engine.graph, states), null, 2)
            : dagTree(engine.graph, states, c.color),
        );
      }
      return 0;
    },
  },
  params: {
    args: "[stage…]",
    help: "each stage's parameters: value, where it comes from, type and meaning",
    async run(c) {
      const engine = await c.engine();
      const names = c.args.length ? c.args.flatMap((t) => engine.graph.resolve(t)) : engine.graph.order;
      const table = Object.fromEntries(names.map((name) => {
        const node = engine.graph.nodes.get(name)!;
        return [name, {
          doc: node.def.doc,
          params: Object.fromEntries(
            Object.entries(node.def.params).map((
              [k, spec],
            ) => [k, { value: node.params[k], source: node.sources[k], type: spec.type, doc: spec.doc }]),
          ),
        }];
      }));
      if (c.values.json) return say(JSON.stringify(table, null, 2));
      for (const [name, { doc, params }] of Object.entries(table)) {
        console.log(`${name}: ${doc}`);
        for (const [k, p] of Object.entries(params)) {
          console.log(`  ${k} = ${JSON.stringify(p.value)}  [${p.source}]  (${p.type}) ${p.doc}`);
        }
      }
      return 0;
    },
  },
  exp: {
    args: "[stage] | show|apply KEY | push KEY…",
    help: "every run of a stage in the cache and the remote: parameters, metrics, when, how long, where;\n" +
      "experiments (runs with --set or a profile) are marked e, smoke-profile runs SMOKE; a run under several\n" +
      "keys is one row. `exp show KEY-PREFIX`: one run's full record; `exp push KEY…`: copy experiments to\n" +
      "the remote; `exp apply KEY`: make one the study's run (its settings into params.json, the lock names it)",
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
      const runs = await listRuns(engine, c.args[0], c.values.sort as string | undefined, declaredProfiles);
      console.log(c.values.json ? JSON.stringify(runs, null, 2) : formatRuns(runs, c.color));
      return 0;
    },
  },
  diff: {
    args: "[rev-a] [rev-b] | --runs KEY…",
    help: "parameters and metrics of every stage between two git revisions of the lock file\n" +
      "(default: HEAD and the working tree; one revision: it and the working tree), or between runs;\n" +
      "--md, --plots DIR, --fail-on (exit 3 on a regression)",
    async run(c) {
      const limits = ((c.values["fail-on"] as string[] | undefined) ?? []).map((t) => asUsage(() => parseLimit(t)));
      const all = !!c.values.all;
      let sides: Array<{ label: string; lock: LockFile }>;
      if (c.values.runs) {
        if (c.args.length < 2) {
          throw new UsageError("diff --runs takes two or more run keys", "e.g. deno task diff --runs bf34 c6ae");
        }
        const engine = await c.engine();
        const runs = [];
        for (const prefix of c.args) runs.push(await showRun(engine, prefix));
        const bases = new Set(runs.map((r) => seedBase(r.stage)));
        const node = bases.size === 1 ? runs[0].stage : "runs";
        sides = runs.map((r) => ({
          label: `${r.stage} ${r.key.slice(0, 8)}`,
          lock: { version: 1, stages: { [node]: r as unknown as LockFile["stages"][string] } },
        }));
      } else {
        if (c.args.length > 2) {
          throw new UsageError("diff takes at most two revisions", "e.g. deno task diff HEAD~1 HEAD");
        }
        const [a, b] = [c.args[0] ?? "HEAD", c.args[1]];
        sides = [
          { label: a, lock: await readLockAt(c.root, c.lockFile, a) },
          { label: b ?? "working tree", lock: await readLockAt(c.root, c.lockFile, b) },
        ];
      }
      // Two sides: one table; more runs: each against the first.
      const rows = sides.slice(1).flatMap((s) => deltaRows(sides[0].lock, s.lock, all));
      const labels: [string, string] = [sides[0].label, sides.slice(1).map((s) => s.label).join(", ")];
      if (c.values.json) console.log(JSON.stringify(rows, null, 2));
      else if (c.values.md) console.log(formatMarkdown(rows, labels, all).trimEnd());
      else console.log(formatDiff(rows, c.color));
      if (c.values.plots) {
        const { writePlots } = await import("./commands/plots.ts");
        const dir = resolve(c.values.plots as string);
        const result = await writePlots(
          (await c.engine()).store,
          dir,
          sides.map((s) => ({
            label: s.label,
            keys: Object.fromEntries(Object.entries(s.lock.stages).map(([n, st]) => [n, st.key])),
          })),
          rows,
          `${labels[0]} → ${labels[1]}`,
        );
        console.error(
          `wrote ${join(dir, "index.md")} and index.html: ${plural(result.figures.length, "figure")}` +
            (result.figures.length ? ` (${result.figures.map((f) => f.stage).join(", ")})` : "") +
            (result.withoutCurves.length ? `; no curves found for ${result.withoutCurves.join(", ")}` : ""),
        );
      }
      const bad = regressions(rows, limits);
      for (const v of bad) console.error(`✗ regression: ${describeViolation(v)}`);
      return bad.length ? 3 : 0;
    },
  },
  gc: {
    args: "",
    help: "remove cached runs and files not recorded by a lock file, not in the remote,\n" +
      "not among the newest --keep-last N of their stage, and not used by a running reproduce",
    async run(c) {
      const engine = await c.engine();
      const pipelineDir = join(c.root, "pipeline");
      const lockFiles = [...Deno.readDirSync(pipelineDir)]
        .filter((e) => /^lock(\..+)?\.json$/.test(e.name)).map((e) => join(pipelineDir, e.name));
      const dryRun = !!c.values["dry-run"];
      const r = await gc(engine.store, {
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
  },
};

/**
 * "46 stages, would: 2 run (about 28m from their last runs), 1 rebuild (about 6s), 43 up to date":
 * what a reproduce does, with what the records say it costs.
 */
function summaryLine(results: StageResult[], would: boolean): string {
  const counts = Object.entries(Object.groupBy(results, (r) => r.outcome)).map(([o, rs]) => {
    const timed = rs!.filter((r) => r.seconds !== undefined);
    const total = timed.reduce((s, r) => s + r.seconds!, 0);
    const some = timed.length < rs!.length ? ` for ${timed.length} of them,` : "";
    const from = o === "rebuild" ? "from their records" : "from their last runs";
    return `${rs!.length} ${o}${would && timed.length ? ` (about ${formatDuration(total)}${some} ${from})` : ""}`;
  });
  return `${plural(results.length, "stage")}${would ? ", would" : ""}: ${counts.join(", ")}`;
}

function usage(): string {
  const pad = (s: string, n: number) => s.padEnd(n);
  const lines = [
    "usage: deno task <command> [arguments] [options]   (or: deno run -A pipeline/cli.ts <command> …)",
    "commands:",
  ];
  for (const [name, cmd] of Object.entries(COMMANDS)) {
    const [first, ...rest] = cmd.help.split("\n");
    lines.push(`  ${pad(`${name} ${cmd.args}`, 28)}${first}`, ...rest.map((l) => `  ${pad("", 28)}${l}`));
  }
  lines.push("options:");
  for (const [name, o] of Object.entries(OPTIONS)) {
    const flag = `${o.short ? `-${o.short}, ` : ""}--${name}${o.arg ? ` ${o.arg}` : ""}`;
    const [first, ...rest] = `${o.help}${o.commands ? ` [${o.commands.join(", ")}]` : ""}`.split("\n");
    lines.push(`  ${pad(flag, 28)}${first}`, ...rest.map((l) => `  ${pad("", 28)}${l}`));
  }
  lines.push(
    "parameters: defaults ← variant ← pipeline/params.json ← pipeline/params.local.json ← --profile ← --set",
    "  (later wins; `params` shows each source); params.local.json is this machine's (git-ignored) and takes only",
    "  transport-only parameters (where to fetch from, e.g. download.url), which are not in any cache key",
    "--force: a stage you name is rerun; its upstream is restored or run only as usual",
    "`--` ends the options: what follows is a stage name even if it starts with -",
    "exit status: 0 done; 1 something failed (a stage, a bad parameter value or stage name, a missing run);",
    "  2 the command line is wrong (unknown command or option, an option's value malformed, e.g. --set x);",
    "  3 diff --fail-on: a metric moved past its limit (a regression)",
    "colour only on a terminal, never with NO_COLOR set or TERM=dumb",
  );
  return lines.join("\n");
}

/** `--keep-last -1`: a negative number after an option that takes a value is that value, not an option. */
function joinNegativeValues(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const name = /^--([a-z-]+)$/.exec(argv[i])?.[1];
    if (argv[i] === "--") return [...out, ...argv.slice(i)];
    if (name && OPTIONS[name]?.type === "string" && /^-\d/.test(argv[i + 1] ?? "")) {
      out.push(`${argv[i]}=${argv[++i]}`);
    } else out.push(argv[i]);
  }
  return out;
}

async function main(argv: string[]): Promise<number> {
  argv = joinNegativeValues(argv);
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: Object.fromEntries(
        // parseArgs rejects an undefined `short`: copy only what is set.
        Object.entries(OPTIONS).map((
          [k, { type, short, multiple }],
        ) => [k, { type, ...(short && { short }), multiple: !!multiple }]),
      ),
    });
  } catch (e) {
    // parseArgs says e.g. "Unknown option '--frob'. To specify a positional argument starting with a '-', …"
    throw new UsageError(
      (e as Error).message.split("\n")[0].split(". ")[0].replace(/'/g, "").replace(/\.$/, ""),
      "see --help",
    );
  }
  const values = parsed.values as Values;
  const [command, ...args] = parsed.positionals;
  const root = resolve((values.root as string | undefined) ?? new URL("..", import.meta.url).pathname);
  if (values.help) return say(usage());
  if (values.version) return say(await versions(resolve(new URL("..", import.meta.url).pathname)));
  if (!command) {
    console.error(usage());
    return 2;
  }
  const cmd = COMMANDS[command];
  if (!cmd) throw new UsageError(`unknown command ${command}`, `use one of: ${Object.keys(COMMANDS).join(", ")}`);
  for (const [name, v] of Object.entries(values)) {
    const o = OPTIONS[name];
    if (v !== undefined && o.commands && !o.commands.includes(command)) {
      throw new UsageError(`${command} does not take --${name}`, `it is for: ${o.commands.join(", ")}`);
    }
  }
  const profile = values.profile as string | undefined;
  let opened: Promise<Engine> | undefined;
  const ctx: Ctx = {
    values,
    args,
    root,
    lockFile: join(root, "pipeline", profile ? `lock.${profile}.json` : "lock.json"),
    color: colorWanted(Deno.stdout),
    engine: () => (opened ??= openEngine(root, values, ctx.lockFile)),
  };
  return await cmd.run(ctx);
}

/** The profiles the pipeline declares (set when the engine opens): `exp` marks runs made with one. */
let declaredProfiles: Record<string, Profile> = {};

async function openEngine(root: string, values: Values, lockFile: string): Promise<Engine> {
  const pipelineFile = (values.pipeline as string | undefined) ?? join(root, "pipeline/stages.ts");
  const mod = await import(pathToFileURL(resolve(pipelineFile)).href);
  const defs: StageDef[] = mod.STAGES;
  const profiles: Record<string, Profile> = mod.PROFILES ?? {};
  let profile: Profile | undefined;
  const name = values.profile as string | undefined;
  if (name) {
    profile = own(profiles, name);
    if (!profile) {
      throw new PipelineError(
        `unknown profile ${name}`,
        `use one of: ${Object.keys(profiles).join(", ") || "(none declared)"}`,
      );
    }
  }
  // Parameter sources, in the order applied (later wins); `params` shows which one set each value.
  const local = await readParamsFile(join(root, "pipeline", "params.local.json"));
  for (const o of local) {
    const def = defs.find((d) => d.name === o.target.split("@")[0]);
    if (def && !own(def.params, o.param)?.transport) {
      throw new PipelineError(
        `pipeline/params.local.json sets ${o.target}.${o.param}, which is not a transport-only parameter ` +
          "(it changes results)",
        `move it to pipeline/params.json (committed), or pass --set ${o.target}.${o.param}=…`,
      );
    }
  }
  const overrides: Override[] = [
    ...(await readParamsFile(join(root, "pipeline", "params.json"))).map((o) => ({ ...o, source: "params.json" })),
    ...local.map((o) => ({ ...o, source: "params.local.json" })),
    ...assignments(profile?.set ?? {}, `profile ${name}`),
    ...((values.set as string[] | undefined) ?? []).map((s) => ({
      ...asUsage(() => splitAssignment(s)),
      source: "--set",
    })),
  ];
  // A run with --set or a profile is an experiment: recorded in the cache, not in pipeline/lock.json.
  const set = (values.set as string[] | undefined) ?? [];
  const experiment = set.length || name ? { set, profile: name, recordLock: !set.length } : undefined;
  declaredProfiles = profiles;
  const settings = await readLocalSettings(root);
  const executor = (values.executor ?? settings.executor ?? "local") as string;
  if (!executorNames().includes(executor)) {
    throw new UsageError(`--executor ${executor}: no such executor`, `use one of ${executorNames().join(", ")}`);
  }
  return await Engine.open({
    root,
    defs,
    overrides,
    lockFile,
    // An experiment's published copies (e.g. the report) go under out/experiment/, not over the committed ones.
    publish: set.length
      ? {
        ...Object.fromEntries(defs.filter((d) => d.publish).map((d) => [d.name, join("out", "experiment", d.name)])),
        ...profile?.publish,
      }
      : profile?.publish,
    remoteUrl: values.remote as string | undefined,
    executor: asUsage(() => makeExecutor(executor, settings, values)),
    experiment,
  });
}

/** A malformed option value is a usage error (exit 2), whoever detects it. */
function asUsage<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof PipelineError && !(e instanceof UsageError)) throw new UsageError(e.message, e.fix);
    throw e;
  }
}

/** push or pull, with a progress line over every remote involved. */
async function transfer(engine: Engine, command: "push" | "pull", targets: string[]): Promise<number> {
  const remotes = engine.store.remotes;
  const url = remotes.at(-1)!.url;
  const progress = new TransferProgress(`${command} ${url}`);
  for (const r of remotes) r.progress = progress;
  if (command === "push") {
    const { pushed, already, skipped } = await engine.push(targets);
    if (progress.totalObjects) progress.show(true);
    console.error(`pushed to ${url}: ${pushed.join(", ") || "nothing new"}`);
    if (already.length) console.error(`already there: ${already.join(", ")}`);
    if (!skipped.length) return 0;
    const why = remotes.length === 1 ? "not in the cache" : "not whole in the cache";
    console.error(`not pushed (${why}): ${skipped.join(", ")}`);
    return 0;
  }
  const { pulled, missing, thin, neverRun } = await engine.pull(targets);
  if (progress.totalObjects || progress.objects) progress.show(true);
  console.error(`pulled from ${remotes.map((r) => r.url).join(" + ")}: ${pulled.join(", ") || "nothing"}`);
  if (neverRun.length) {
    console.error(`never run (nothing to pull; \`deno task reproduce\` trains them): ${neverRun.join(", ")}`);
  }
  if (!missing.length && !thin.length) return 0;
  if (!missing.length) {
    throw new PipelineError(
      `restored without their big files: ${thin.join(", ")} (the committed remote keeps files up to 8 MiB)`,
      `pull from a shared remote that has them (--remote ${SCHEMES.map((s) => `${s.schemes[0]}://…`).join("|")}, ` +
        'or "remote" in pipeline/config.local.json), ' +
        `or rebuild them here: \`deno task reproduce ${thin.join(" ")} --whole\` (\`deno task status\` first says ` +
        "what that costs)",
    );
  }
  throw new PipelineError(
    `not restored: ${missing.join(", ")} (not in any remote, or refused as shown above)`,
    "push them from a machine that has them, or run `deno task reproduce`",
  );
}

/** {"stage.param": value} → overrides. */
function assignments(set: Record<string, ParamValue>, source: string): Override[] {
  return Object.entries(set).map(([where, value]) => {
    const dot = where.lastIndexOf(".");
    return { target: where.slice(0, dot), param: where.slice(dot + 1), value, source };
  });
}

function positiveInt(name: string, raw: unknown, fallback: number, min = 1): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) {
    throw new UsageError(`--${name} ${raw}: expected an integer ≥ ${min}`, `e.g. --${name} 2`);
  }
  return n;
}

const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? "" : "s"}`;

/** Print to stdout; exit status 0. */
function say(text: string): number {
  console.log(text);
  return 0;
}

/** One line per verified stage; exit status 1 if any differs. */
function verified(results: VerifyResult[], json: unknown): number {
  if (json) console.log(JSON.stringify(results, null, 2));
  else {
    for (const r of results) {
      const how = r.steps === "all"
        ? "every output"
        : r.steps === "curve"
        ? "the whole curve: an accepted run's bytes are older code's"
        : `the first ${r.steps} steps`;
      console.log(
        r.identical
          ? `✓ ${r.stage}: bit-identical (${how})`
          : r.refused
          ? `✗ ${r.refused.startsWith(`${r.stage}: `) ? r.refused : `${r.stage}: not accepted — ${r.refused}`}`
          : `✗ ${r.stage}: differs (${how}) — ${r.difference}`,
      );
    }
  }
  return results.every((r) => r.identical) ? 0 : 1;
}

/** A result without its run entry (which holds every code hash): for --json. */
function plain(r: StageResult) {
  return { stage: r.stage, action: r.outcome, reasons: r.reasons, key: r.key, seconds: r.seconds };
}

/** This project's versions (the CLI's own, whatever --root says). */
async function versions(root: string): Promise<string> {
  const config = JSON.parse(await Deno.readTextFile(join(root, "deno.json")).catch(() => "{}"));
  const tfjs = String(config.imports?.["@tensorflow/tfjs-core"] ?? "").split("@").at(-1) || "?";
  const git = await new Deno.Command("git", {
    args: ["describe", "--always", "--dirty"],
    cwd: root,
    stdout: "piped",
    stderr: "null",
  })
    .output().then((o) => new TextDecoder().decode(o.stdout).trim(), () => "");
  return [
    `cifar10-pipeline ${config.version ?? "?"}${git ? ` (git ${git})` : ""}`,
    `deno ${Deno.version.deno} (v8 ${Deno.version.v8}, typescript ${Deno.version.typescript})`,
    `tfjs ${tfjs}`,
  ].join("\n");
}

/** The CLI as a program: runs `argv` and exits. Exported for a wrapper that registers an executor first. */
export async function cli(argv: string[]): Promise<never> {
  maskConsole(); // credentials in URLs (download.url=https://user:password@…) are masked in every message
  try {
    const code = await main(argv);
    Deno.exit(interruptedStatus() ?? code);
  } catch (e) {
    const known = knownFault(e); // a full disk or a read-only file system: one line, not a stack trace
    if (known) {
      console.error(`error: ${known.message} — ${known.fix}`);
      Deno.exit(interruptedStatus() ?? (known instanceof UsageError ? 2 : 1));
    }
    throw e;
  }
}

if (import.meta.main) await cli(Deno.args);
