// Option groups that several commands take, each defined once. Two groups are
// plug-in points, kept apart so that a registry can supply them: how stages run
// (EXECUTOR_OPTIONS, executorFrom) and where runs are shared (REMOTE_OPTIONS).
import { type Executor, makeExecutor } from "../executors/executor.ts";
import type { LocalSettings } from "../engine/settings.ts";
import { type Options, UsageError, type Values } from "./command.ts";

/** Taken by every command. */
export const GLOBAL_OPTIONS: Options = {
  root: { type: "string", arg: "DIR", help: "another project (tests use it)" },
  pipeline: { type: "string", arg: "FILE", help: "another stage declaration (tests use it)" },
  version: { type: "boolean", help: "project, Deno and TensorFlow.js versions" },
  help: { type: "boolean", short: "h", help: "this text (after a command: that command's)" },
};

export const SET: Options = {
  set: {
    type: "string",
    multiple: true,
    arg: "stage.param=value",
    help: "override a parameter (stage@variant.param for one variant); repeatable",
  },
};

export const PROFILE: Options = {
  profile: {
    type: "string",
    arg: "NAME",
    help: "a named set of overrides (e.g. smoke: the whole pipeline on tiny synthetic data)",
  },
};

/** The parameters a command sees: --set and --profile. */
export const PARAMETER_OPTIONS: Options = { ...SET, ...PROFILE };

export const JSON_OPTION: Options = { json: { type: "boolean", help: "machine-readable output on stdout" } };

export const DRY_RUN: Options = {
  "dry-run": { type: "boolean", short: "n", help: "say what would be done and why, change nothing" },
};

/** Shared by reproduce --verify and accept. */
export const VERIFY_STEPS: Options = {
  "verify-steps": {
    type: "string",
    arg: "N",
    help: "with --verify: only the first N steps of training stages (the curve and weights digests);\n" +
      "with accept: how many steps to re-execute (default: up to the first evaluation)",
  },
};

export const REBUILD_THIN: Options = {
  "rebuild-thin": {
    type: "boolean",
    help: "go ahead with rebuilds of thin runs that cost more than 10 min in their records (else: listed, exit 1)",
  },
};

// ---- Where runs are shared (plug-in point: the remote schemes) ----

/** Taken by every command (a reproduce restores from it too). */
export const REMOTE_OPTIONS: Options = {
  remote: {
    type: "string",
    arg: "URL",
    help: 'the shared remote: s3://bucket/prefix (default: "remote" in pipeline/config.local.json; endpoint\n' +
      "and credentials from AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, …), or git for pipeline/remote/ alone",
  },
};

/** The hint of a pull that restored runs without their big files: where whole ones come from. */
export const WHOLE_REMOTE_HINT = 'pull from a shared remote that has them (--remote s3://… or "remote" in ' +
  "pipeline/config.local.json)";

// ---- How stages run (plug-in point: the executors) ----

/** Taken by the commands that run stages (reproduce, accept). */
export const EXECUTOR_OPTIONS: Options = {
  executor: {
    type: "string",
    arg: "local|slurm",
    help: "run stages as local processes (default) or as Slurm jobs (see README; also in config.local.json)",
  },
  "slurm-partition": {
    type: "string",
    arg: "NAME",
    help: 'the partition for Slurm jobs (else the "slurm" settings in pipeline/config.local.json)',
  },
};

/** The executor the options and pipeline/config.local.json ask for. */
export function executorFrom(values: Values, settings: LocalSettings): Executor {
  const partition = values["slurm-partition"] as string | undefined;
  const executor = (values.executor ?? settings.executor ?? "local") as string;
  if (executor !== "local" && executor !== "slurm") {
    throw new UsageError(`--executor ${executor}: expected local or slurm`, "e.g. --executor slurm");
  }
  return makeExecutor(executor, { ...settings.slurm, ...(partition ? { partition } : {}) });
}
