// One project as the engine opens it, shared by the engine's parts (plan, reproduce, run,
// accept, sync): the stage graph, the cache and its remotes, the lock file, cache keys, where
// stage workers run and where messages go. Opened once per command by Engine.open.
import { join, resolve } from "node:path";
import { Store } from "../store/cache.ts";
import type { Executor } from "../executors/executor.ts";
import { Graph, type Override } from "./graph.ts";
import { Keys } from "./keys.ts";
import { type ExperimentTag, Lock } from "./lockfile.ts";
import { openRemotes } from "../sharing/remote.ts";
import type { StageDef } from "../types.ts";

export interface EngineOptions {
  root: string;
  defs: StageDef[];
  overrides?: Override[];
  /** Default: $PIPELINE_CACHE or <root>/.cache */
  cacheDir?: string;
  /** Default: <root>/pipeline/lock.json */
  lockFile?: string;
  /** The committed remote store runs are fetched from and pushed to. Default: <root>/pipeline/remote */
  remote?: string;
  /** The shared remote (s3://bucket/prefix; "git": the committed one alone). Default: pipeline/config.local.json's. */
  remoteUrl?: string;
  /** Where a stage's outputs are copied, relative to root (default: its `publish`). */
  publish?: Record<string, string>;
  log?: (line: string) => void;
  /** Where stage workers run (default: local processes). */
  executor?: Executor;
  /** An experiment (--set, a profile): its runs go to the cache's journal, not pipeline/lock.json. */
  experiment?: ExperimentTag;
}

export interface Workspace {
  readonly root: string;
  readonly graph: Graph;
  readonly store: Store;
  readonly lock: Lock;
  readonly keys: Keys;
  /** Stage name → where its outputs are copied, replacing the stage's own `publish`. */
  readonly publish?: Record<string, string>;
  /** Where stage workers run (unset: a local process per run). */
  readonly executor?: Executor;
  log(line: string): void;
}

export async function openWorkspace(opts: EngineOptions): Promise<Workspace> {
  // The graph first: a bad declaration or override fails before the cache is opened.
  const graph = new Graph(opts.defs, opts.overrides);
  const cacheDir = opts.cacheDir ?? Deno.env.get("PIPELINE_CACHE") ?? join(opts.root, ".cache");
  const remotes = await openRemotes(opts.root, opts.remote ?? join(opts.root, "pipeline", "remote"), opts.remoteUrl);
  const store = await Store.open(resolve(opts.root, cacheDir), remotes);
  const log = (line: string) => (opts.log ?? ((l) => console.error(l)))(line);
  store.warn = log;
  return {
    root: opts.root,
    graph,
    store,
    lock: new Lock(opts.lockFile ?? join(opts.root, "pipeline", "lock.json"), store, log, opts.experiment),
    keys: new Keys(opts.root, store),
    publish: opts.publish,
    executor: opts.executor,
    log,
  };
}
