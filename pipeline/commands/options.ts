// Option groups that several commands take, each defined once. Two groups are
// plug-in points, kept apart so that a registry can supply them: how stages run
// (EXECUTOR_OPTIONS, executorFrom) and where runs are shared (REMOTE_OPTIONS).
import type { Executor } from "../executors/executor.ts";
import { executorNames, executorOptions, executorPlugin, makeExecutor } from "../executors/registry.ts";
import { SCHEMES, schemesHelp } from "../sharing/registry.ts";
import { PipelineError } from "../types.ts";
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

// ---- Where runs are shared (plug-in point: the remote schemes, sharing/registry.ts) ----

/** Taken by every command (a reproduce restores from it too). */
export const REMOTE_OPTIONS: Options = {
  remote: {
    type: "string",
    arg: "URL",
    help: 'the shared remote (default: "remote" in pipeline/config.local.json), or git for pipeline/remote/ alone:\n' +
      schemesHelp(""),
  },
};

/** The hint of a pull that restored runs without their big files: where whole ones come from. */
export const WHOLE_REMOTE_HINT = `pull from a shared remote that has them (--remote ${
  SCHEMES.map((s) => `${s.schemes[0]}://…`).join("|")
}, or "remote" in pipeline/config.local.json)`;

// ---- How stages run (plug-in point: the executors, executors/registry.ts) ----

/** Taken by the commands that run stages (reproduce, accept): --executor and each executor's --<name>-<option>s. */
export const EXECUTOR_OPTIONS: Options = {
  executor: {
    type: "string",
    arg: executorNames().join("|"),
    help: 'where stages run (default local; also "executor" in pipeline/config.local.json):\n' +
      executorNames().map((n) => `${n}: ${executorPlugin(n).doc}`).join("\n"),
  },
  ...Object.fromEntries(
    executorOptions().map((o) => [o.flag, { type: "string" as const, arg: o.arg, help: o.help }]),
  ),
};

/** The executor the options and pipeline/config.local.json ask for. */
export function executorFrom(values: Values, settings: LocalSettings): Executor {
  const executor = (values.executor ?? settings.executor ?? "local") as string;
  if (!executorNames().includes(executor)) {
    throw new UsageError(`--executor ${executor}: no such executor`, `use one of ${executorNames().join(", ")}`);
  }
  try {
    return makeExecutor(executor, settings, values);
  } catch (e) {
    // A bad executor option or settings block is the user's input: a usage error (exit 2).
    if (e instanceof PipelineError && !(e instanceof UsageError)) throw new UsageError(e.message, e.fix);
    throw e;
  }
}
