// What a CLI command is: its name, what it takes (positional arguments and
// options, each with its help) and what it does. pipeline/cli.ts holds the table
// of them, parses the command line and generates --help from it; a new command
// is a new file in this folder and a line in that table.
import type { Engine } from "../engine/engine.ts";
import { PipelineError, type Profile } from "../types.ts";

/** A mistake in the command line itself (unknown command or option, a malformed option value): exit 2. */
export class UsageError extends PipelineError {}

/** One option, as parseArgs takes it, with its help. */
export interface Option {
  type: "string" | "boolean";
  short?: string;
  multiple?: boolean;
  /** The value's placeholder in --help. */
  arg?: string;
  help: string;
}

export type Options = Record<string, Option>;

export type Values = Record<string, string | boolean | string[] | undefined>;

/** What a command's run() gets. */
export interface Ctx {
  values: Values;
  /** Positional arguments after the command. */
  args: string[];
  root: string;
  /** The project's engine, opened on first use (stages, parameters, cache, remotes, executor). */
  engine(): Promise<Engine>;
  /** The profiles the stage declaration declares (after engine()): `exp` marks runs made with one. */
  profiles(): Promise<Record<string, Profile>>;
  /** Where the lock file of this invocation lives (lock.<profile>.json with --profile). */
  lockFile: string;
  color: boolean;
}

export interface Command {
  name: string;
  /** The positional arguments, for --help: "[stage…]". */
  synopsis: string;
  /** First line: the one-line summary in the command list; the rest: more detail. */
  help: string;
  /** The options it takes besides the global ones (options.ts), shared ones as the same object. */
  options: Options;
  /** The exit status: 0 done, 1 failed, 3 a regression (diff); a UsageError is 2. */
  run(c: Ctx): Promise<number>;
}

/** An option's value as an integer ≥ min (a usage error otherwise); `fallback` when absent. */
export function positiveInt(name: string, raw: unknown, fallback: number, min = 1): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) {
    throw new UsageError(`--${name} ${raw}: expected an integer ≥ ${min}`, `e.g. --${name} 2`);
  }
  return n;
}

/** A malformed option value is a usage error (exit 2), whoever detects it. */
export function asUsage<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof PipelineError && !(e instanceof UsageError)) throw new UsageError(e.message, e.fix);
    throw e;
  }
}

export const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? "" : "s"}`;

/** Print to stdout; exit status 0. */
export function say(text: string): number {
  console.log(text);
  return 0;
}
