// The contract between the engine and the stages. A stage is declared in
// pipeline/stages.ts (name, upstream stages, typed parameters, module, outputs)
// and implemented by a module that exports `run(ctx)`. Stages never deal with
// caching: they read `ctx.inputs`, write into `ctx.outDir`, and return metrics.
// A declaration's parameter specs also give its run() their types: stages.ts
// exports `ParamsOf<typeof stage>` per stage, and the module takes
// `ctx: StageContext<ThoseParams>` (an `import type`, so no cache key moves).
import { statfsSync } from "node:fs";
import { dirname } from "node:path";

export type ParamValue = number | string | boolean | number[];

export interface ParamSpec {
  /** int / float: a number; ints: comma-separated integers ("1000,500"); string; bool. */
  type: "int" | "float" | "ints" | "string" | "bool";
  default: ParamValue;
  doc: string;
  /** Allowed values for a string parameter (its type in ParamsOf: their union). */
  choices?: readonly string[];
  /** Inclusive lower bound for numbers (and every element of ints). */
  min?: number;
  /**
   * Where to get the inputs from, not what they are (a URL, mirrors): kept out of the cache
   * key; set it per machine in pipeline/params.local.json (git-ignored) or with --set.
   */
  transport?: boolean;
}

/** The value a parameter of spec S has in a stage's run(): int/float → number, ints → number[], bool → boolean, string → string (with choices: their union). */
export type ParamOf<S extends ParamSpec> = S["type"] extends "int" | "float" ? number
  : S["type"] extends "ints" ? number[]
  : S["type"] extends "bool" ? boolean
  : S extends { choices: readonly (infer C)[] } ? C
  : string;

/**
 * A stage's parameters as its run() sees them (`ctx.params`), from its declaration:
 * `export type TrainCnnParams = ParamsOf<typeof trainCnn>` in pipeline/stages.ts.
 */
export type ParamsOf<D extends { params: Record<string, ParamSpec> }> = {
  [K in keyof D["params"]]: ParamOf<D["params"][K]>;
};

/** `P`: the parameter specs, kept literal by defineStage (pipeline/stages.ts) so that ParamsOf can type them. */
export interface StageDef<P extends Record<string, ParamSpec> = Record<string, ParamSpec>> {
  name: string;
  doc: string;
  /** Upstream stage names. A stage with variants is addressed as a whole (all variants) or as name@variant. */
  deps: string[];
  /**
   * The upstream outputs the stage reads, per dep as written in `deps` (like DVC's deps, which are
   * paths): only these are in its view of that run, and only these must be whole when it runs — a
   * thin run's other files stay in the shared remote. A dep not named here: every output is read.
   */
  reads?: Record<string, string[]>;
  params: P;
  /** Module path relative to the project root; it exports `run(ctx: StageContext<ParamsOf<this stage>>)`. */
  module: string;
  /** Files the stage must write into ctx.outDir (relative paths). Others it writes are kept too. */
  outputs: string[];
  /** Named runs of one stage, each with its own parameters and cache entry (like DVC's foreach). */
  variants?: Record<string, Record<string, ParamValue>>;
  /**
   * The stage shows its inputs' records (costs, environment: `_provenance.json` → record), so
   * they are part of its key: it reruns when an upstream run's record changes.
   */
  readsRecords?: boolean;
  /**
   * Seeds as a dimension (like DVC's matrix): the stage (a list) or some of its variants
   * (variant → list) run once per seed, each its own node and cache entry. The node keeps its
   * `seed` parameter's value; every other seed adds a node `<node>+s<seed>` (graph.ts).
   */
  seeds?: number[] | Record<string, number[]>;
  /**
   * A dep (as written in `deps`) this stage runs once per seed of: each of that dep's seed nodes
   * gets a node `<stage>+s<seed>` reading it alone (e.g. a stage that scores each seed's weights).
   */
  perSeedOf?: string;
  /** Copy the outputs here (relative to the root) after each run or restore, e.g. reports/. */
  publish?: string;
  /**
   * What one run needs from an executor that schedules jobs (`--executor NAME`); unset fields take
   * the defaults in pipeline/executors/executor.ts.
   */
  resources?: Partial<Resources>;
  /** Resources of each task the stage spreads out (pipeline/executors/tasks.ts); unset fields take the stage's. */
  taskResources?: Partial<Resources>;
}

/**
 * A stage's (or a task's) request to the executor, in neutral units that each executor translates
 * to its scheduler's; not part of any cache key.
 */
export interface Resources {
  cpus: number;
  /** Memory, in MB. */
  memMB: number;
  /** Wall-clock limit, in seconds. */
  seconds: number;
  /** GPUs (room for them later). */
  gpus?: number;
}

/** A named set of parameter overrides, e.g. "smoke": the whole pipeline on tiny synthetic data. */
export interface Profile {
  doc: string;
  /** "stage.param" (or "stage@variant.param") → value. */
  set: Record<string, ParamValue>;
  /** Stage name → publish directory, replacing the stage's own. */
  publish?: Record<string, string>;
  /**
   * At most this many of each stage's declared seeds (the first ones): the same graph with fewer
   * seed nodes, for a cheap run (the smoke profile's 2 keep a spread over seeds to report).
   */
  maxSeeds?: number;
}

export interface Progress {
  step: number;
  total: number;
  /** Items per step (e.g. the batch size), for samples/s. */
  itemsPerStep?: number;
  loss?: number;
  /** Anything else worth one short field, e.g. { acc: 0.41 }. */
  extra?: Record<string, number | string>;
}

/** `P`: the stage's parameters, `ParamsOf<typeof itsDeclaration>` (pipeline/stages.ts exports one per stage). */
export interface StageContext<P = Record<string, ParamValue>> {
  /** The resolved stage name, e.g. "train-torch-mlp@ga1". */
  stage: string;
  /** Validated parameters, typed as declared, defaults filled in. */
  params: P;
  /** Upstream stage name (resolved, with @variant) → directory holding its outputs. Read-only. */
  inputs: Record<string, string>;
  /** Upstream nodes declared but not finished, left out by `reproduce --partial` (in the key). */
  notRun?: string[];
  /** Write every output here; it is moved into the cache only when run() returns. */
  outDir: string;
  /** Survives a killed run of the same cache key; removed after success. Save checkpoints here. */
  checkpointDir: string;
  /** Project root (absolute). */
  root: string;
  /** How many processes the stage may use for independent work (`--jobs`; see pipeline/executors/tasks.ts). */
  jobs: number;
  /** Report progress: a live line on a terminal, a plain line every few seconds otherwise. */
  progress(p: Progress): void;
  /** One plain log line, prefixed with the stage name. */
  log(message: string): void;
  /**
   * Facts about this run that are not results (timings, throughput, compute path, threads):
   * kept in the run's record (run entry, lock.json), never in the hashed outputs.
   */
  record(facts: Record<string, unknown>): void;
  /**
   * Set by `reproduce --verify-steps N` / `accept`: a training stage stops after N steps and
   * writes its outputs so far (the curve up to N, with the weights digest of each evaluation).
   */
  stopAfterSteps?: number;
  /**
   * Call `fn(arg)` of `module` (an absolute path) in a process of its own — a job of its own under
   * an executor that schedules jobs — at most `jobs` at once; resolves to its JSON result. How a stage spreads
   * independent work (the search's individuals) without importing the engine.
   */
  task<T>(module: string, fn: string, arg: unknown): Promise<T>;
  /**
   * Cache a pure computation inside a stage (e.g. one individual of a search):
   * the result of fn() is stored under hash(stage code, key) and reused on a rerun.
   */
  memo<T>(key: unknown, fn: () => Promise<T>): Promise<T>;
}

/** Thrown for bad input: printed as one line "error: <what> — <fix>", exit code 1. */
export class PipelineError extends Error {
  constructor(what: string, readonly fix: string) {
    super(what);
    this.name = "PipelineError";
  }
}

// Machine faults a stage may raise: a full disk, said once with where and how much.

const MiB = 1 << 20;

/** The OS error code of e (ENOSPC, EROFS, …), if it has one. */
export function errorCode(e: unknown): string | undefined {
  const code = (e as { code?: unknown })?.code;
  if (typeof code === "string") return code;
  const m = /\(os error (\d+)\)/.exec(String((e as Error)?.message ?? e));
  return m ? ({ "28": "ENOSPC", "30": "EROFS", "20": "ENOTDIR" } as Record<string, string>)[m[1]] : undefined;
}

export const isDiskFull = (e: unknown) => e instanceof DiskFull || errorCode(e) === "ENOSPC";

/** Free bytes on the filesystem holding path (its nearest existing ancestor); undefined if unknown. */
export function freeBytes(path: string): number | undefined {
  for (let p = path;; p = dirname(p)) {
    try {
      const s = statfsSync(p);
      return Number(s.bavail) * Number(s.bsize);
    } catch {
      if (dirname(p) === p) return undefined;
    }
  }
}

const mib = (n: number) => n < MiB ? `${Math.ceil(n / 1024)} KiB` : `${(n / MiB).toFixed(n < 10 * MiB ? 1 : 0)} MiB`;

/**
 * ENOSPC, said once: where, how much more is needed, what is free. It is a
 * PipelineError, so nothing retries it or falls back to another source.
 */
export class DiskFull extends PipelineError {
  /** `written`: when the need is unknown, what the writer had written before (it needs more than that). */
  constructor(readonly path: string, needBytes?: number, written?: number) {
    const free = freeBytes(path);
    const need = needBytes
      ? `needs at least ${mib(needBytes)} more`
      : written
      ? `needs more than the ${mib(written)} it had written`
      : "needs more space";
    super(
      `disk full writing ${path}: ${need}` +
        (free !== undefined ? ` (${mib(free)} free)` : ""),
      "free disk space (or set PIPELINE_CACHE to a bigger disk) and rerun",
    );
    this.name = "DiskFull";
  }
}

/** Run a write; a full disk becomes DiskFull(path, bytes), anything else passes through. */
export async function writing<T>(path: string, bytes: number | undefined, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (isDiskFull(e) && !(e instanceof DiskFull)) throw new DiskFull(path, bytes);
    throw e;
  }
}

/** One evaluation point of a training run (the study's curves). */
export interface EvalPoint {
  step: number;
  /** Loss/accuracy of the current training mini-batch (as the study measured). */
  trainLoss: number;
  trainAcc: number;
  /** Loss/accuracy on the whole test set. */
  testLoss: number;
  testAcc: number;
  /** SHA-256 of every trained parameter (and running statistic) after `step` updates. */
  weights?: string;
}

/**
 * What every training stage writes as `history.json` and the report reads: curves and the
 * final row — results only. What the run cost and ran on goes to ctx.record().
 */
export interface TrainingHistory {
  run: string;
  params: Record<string, ParamValue>;
  evals: EvalPoint[];
  final: EvalPoint;
  /** Free-form notes the report should show (e.g. deviations from the study). */
  notes?: string[];
  /** Runs trained before timings moved to the record carry these; new runs never do. */
  backend?: string;
  wallSeconds?: number;
  stepsPerSecond?: number;
}
