// The command line: reproduce, status, dag, params.
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { Engine, type StageResult } from "./engine.ts";
import { makeExecutor } from "./executor.ts";
import type { Override } from "./graph.ts";
import { splitAssignment } from "./params.ts";
import { formatDuration } from "./progress.ts";
import { readLocalSettings } from "./settings.ts";
import { type ParamValue, PipelineError, type Profile, type StageDef } from "./types.ts";

const USAGE = `usage: deno task <command> [stage…] [options]
commands:
  reproduce [stage…]   run what is stale, restore what is cached (default: every stage)
  status [stage…]      say, for each stage, whether it is up to date and exactly what changed
  push [stage…]        copy finished runs (small outputs only) into pipeline/remote/, to commit:
                       a fresh clone then restores them instead of training again
  dag                  print the stage graph as a Mermaid flowchart
  params [stage…]      list each stage's parameters, defaults and meaning
options:
  --set stage.param=value   override a parameter (stage@variant.param for one variant); repeatable
  --profile NAME            a named set of overrides (e.g. smoke: the whole pipeline on tiny synthetic data)
  --force                   rerun the selected stages even when cached
  --single                  only the named stages, from cached upstream outputs (like dvc repro -s)
  --partial                 like --single, leaving out upstream stages not finished yet (a partial report)
  --dry-run                 say what would run and why, run nothing
  --jobs N                  run up to N independent stages at once (default 1); with slurm: jobs in the queue
  --executor local|slurm    run stages as local processes (default) or as Slurm jobs (see README)
  --slurm-partition NAME    the partition for Slurm jobs (else "slurm" settings in pipeline/config.local.json)
  --root DIR, --pipeline FILE   another project / stage declaration (tests use these)
lasting overrides: pipeline/params.json, {"stage.param": value, …}, applied before --profile and --set`;

interface Args {
  command: string;
  targets: string[];
  sets: string[];
  profile?: string;
  force: boolean;
  single: boolean;
  partial: boolean;
  dryRun: boolean;
  jobs: number;
  root: string;
  pipeline?: string;
  executor?: string;
  partition?: string;
}

function parseArgs(argv: string[]): Args {
  const args: Args = {
    command: "",
    targets: [],
    sets: [],
    force: false,
    single: false,
    partial: false,
    dryRun: false,
    jobs: 1,
    root: resolve(new URL("..", import.meta.url).pathname),
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = a.includes("=") ? a.slice(a.indexOf("=") + 1) : argv[++i];
      if (v === undefined) throw new PipelineError(`${a} needs a value`, `see --help`);
      return v;
    };
    const flag = a.split("=")[0];
    if (flag === "--set") args.sets.push(a.startsWith("--set=") ? a.slice(6) : value());
    else if (flag === "--profile") args.profile = value();
    else if (a === "--force" || a === "-f") args.force = true;
    else if (a === "--single" || a === "-s") args.single = true;
    else if (a === "--partial") args.partial = args.single = true;
    else if (a === "--dry-run" || a === "-n") args.dryRun = true;
    else if (flag === "--jobs" || flag === "-j") {
      const raw = value();
      args.jobs = Number(raw);
      if (!Number.isInteger(args.jobs) || args.jobs < 1) {
        throw new PipelineError(`--jobs ${raw}: expected a positive integer`, "e.g. --jobs 2");
      }
    } else if (flag === "--executor") args.executor = value();
    else if (flag === "--slurm-partition") args.partition = value();
    else if (flag === "--root") args.root = resolve(value());
    else if (flag === "--pipeline") args.pipeline = resolve(value());
    else if (a === "--help" || a === "-h") args.command = "help";
    else if (a.startsWith("-")) throw new PipelineError(`unknown option ${a}`, "see --help");
    else if (!args.command) args.command = a;
    else args.targets.push(a);
  }
  return args;
}

async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  if (!args.command || args.command === "help") {
    console.log(USAGE);
    return args.command ? 0 : 1;
  }
  const pipelineFile = args.pipeline ?? resolve(args.root, "pipeline/stages.ts");
  const mod = await import(pathToFileURL(pipelineFile).href);
  const defs: StageDef[] = mod.STAGES;
  const profiles: Record<string, Profile> = mod.PROFILES ?? {};
  const overrides: Override[] = [];
  let profile: Profile | undefined;
  if (args.profile) {
    profile = profiles[args.profile];
    if (!profile) {
      throw new PipelineError(
        `unknown profile ${args.profile}`,
        `use one of: ${Object.keys(profiles).join(", ") || "(none declared)"}`,
      );
    }
    overrides.push(...assignments(profile.set));
  }
  // pipeline/params.json: the user's lasting overrides (like DVC's params.yaml), before profile and --set.
  const paramsFile = resolve(args.root, "pipeline", "params.json");
  let saved: Record<string, ParamValue> = {};
  try {
    saved = JSON.parse(await Deno.readTextFile(paramsFile));
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      throw new PipelineError(
        `${paramsFile} is not valid JSON: ${(e as Error).message}`,
        'write {"stage.param": value, …}',
      );
    }
  }
  overrides.unshift(...assignments(saved));
  for (const s of args.sets) overrides.push(splitAssignment(s));
  const local = await readLocalSettings(args.root);
  const slurm = { ...local.slurm, ...(args.partition ? { partition: args.partition } : {}) };
  const engine = await Engine.open({
    executor: makeExecutor((args.executor ?? local.executor ?? "local") as "local" | "slurm", slurm),
    root: args.root,
    defs,
    overrides,
    lockFile: resolve(args.root, "pipeline", args.profile ? `lock.${args.profile}.json` : "lock.json"),
    publish: profile?.publish,
  });
  switch (args.command) {
    case "reproduce": {
      const t0 = performance.now();
      const results = await engine.reproduce({
        targets: args.targets,
        force: args.force,
        dryRun: args.dryRun,
        jobs: args.jobs,
        single: args.single,
        partial: args.partial,
      });
      const count = (o: string) => results.filter((r) => r.outcome === o).length;
      const summary = args.dryRun
        ? `${count("would run")} would run, ${count("would restore")} would restore`
        : `${count("ran")} ran, ${count("restored")} restored, ${count("up to date")} up to date`;
      console.error(`${results.length} stages: ${summary} (${formatDuration((performance.now() - t0) / 1000)})`);
      return 0;
    }
    case "status": {
      const results = await engine.status(args.targets);
      for (const r of results) console.log(statusLine(r));
      return 0;
    }
    case "push": {
      const { pushed, skipped } = await engine.push(args.targets);
      console.error(`pushed to pipeline/remote: ${pushed.join(", ") || "nothing"}`);
      if (skipped.length) console.error(`not pushed (not in the cache, or files over 8 MiB): ${skipped.join(", ")}`);
      return 0;
    }
    case "dag":
      console.log(engine.graph.mermaid());
      return 0;
    case "params": {
      const names = args.targets.length ? args.targets.flatMap((t) => engine.graph.resolve(t)) : engine.graph.order;
      for (const name of names) {
        const node = engine.graph.nodes.get(name)!;
        console.log(`${name}: ${node.def.doc}`);
        for (const [k, spec] of Object.entries(node.def.params)) {
          console.log(`  ${k} = ${JSON.stringify(node.params[k])}  (${spec.type}) ${spec.doc}`);
        }
      }
      return 0;
    }
    default:
      throw new PipelineError(
        `unknown command ${args.command}`,
        "use reproduce, status, push, dag or params (see --help)",
      );
  }
}

/** {"stage.param": value} → overrides. */
function assignments(set: Record<string, ParamValue>): Override[] {
  return Object.entries(set).map(([where, value]) => {
    const dot = where.lastIndexOf(".");
    return { target: where.slice(0, dot), param: where.slice(dot + 1), value };
  });
}

function statusLine(r: StageResult): string {
  switch (r.outcome) {
    case "up to date":
      return `✓ ${r.stage}: up to date`;
    case "would restore":
      return `✓ ${r.stage}: cached, restorable (${r.reasons.join("; ")})`;
    default:
      return `✗ ${r.stage}: stale (${r.reasons.join("; ")})`;
  }
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (e) {
    if (e instanceof PipelineError) {
      console.error(`error: ${e.message} — ${e.fix}`);
      Deno.exit(1);
    }
    throw e;
  }
}
