// The engine's front door, used by the CLI and the tests: open a project, then reproduce,
// status, verify, accept, push or pull. Each is one idea in a file of its own:
//   workspace.ts  what is opened: graph, cache and remotes, lock file, keys, log
//   keys.ts       a run's cache key, and what differs between two runs (status's reasons)
//   plan.ts       which stages a command selects, and what reproduce would do and why
//   reproduce.ts  the scheduler: restore what is cached, run what is stale, record it
//   run.ts        one run of one stage in a worker process, committed to the cache
//   publish.ts    out/<stage> links and published copies of a run's files
//   lockfile.ts   pipeline/lock.json, and the cached runs it names
//   accept.ts     reproduce --verify and accept: re-execute and compare bit for bit
//   sync.ts       push and pull between the cache and the remotes
import type { RunEntry, Store } from "../store/cache.ts";
import type { Graph } from "./graph.ts";
import { accept, verify, type VerifyResult } from "./accept.ts";
import type { LockFile } from "./lockfile.ts";
import { type ReproduceOptions, type StageResult, status } from "./plan.ts";
import { materialise } from "./publish.ts";
import type { Remote } from "../sharing/remote.ts";
import { reproduce } from "./reproduce.ts";
import { pull, push } from "./sync.ts";
import { type EngineOptions, openWorkspace, type Workspace } from "./workspace.ts";

export type { EngineOptions } from "./workspace.ts";
export type { Action, Outcome, ReproduceOptions, StageResult } from "./plan.ts";
export type { Accepted, LockFile, LockStage } from "./lockfile.ts";
export type { VerifyResult } from "./accept.ts";

/** Each method hands the opened workspace to the function of the same name in its module. */
export class Engine {
  readonly graph: Graph;
  readonly store: Store;
  readonly lockFile: string;

  private constructor(readonly opts: EngineOptions, private readonly ws: Workspace) {
    this.graph = ws.graph;
    this.store = ws.store;
    this.lockFile = ws.lock.file;
  }

  static async open(opts: EngineOptions): Promise<Engine> {
    return new Engine(opts, await openWorkspace(opts));
  }

  readLock(): Promise<LockFile> {
    return this.ws.lock.read();
  }

  /** Run what is stale, restore what is cached, in dependency order (with dryRun: only say what it would do). */
  reproduce(ro: ReproduceOptions = {}): Promise<StageResult[]> {
    return reproduce(this.ws, ro);
  }

  /** For each selected stage (and its upstream): what reproduce would do and exactly why; changes nothing. */
  status(targets?: string[]): Promise<StageResult[]> {
    return status(this.ws, targets);
  }

  /** `reproduce --verify`: re-execute stages and compare with their cached runs; changes nothing. */
  verify(targets?: string[], steps?: number, jobs = 1, rebuildThin = false): Promise<VerifyResult[]> {
    return verify(this.ws, targets, steps, jobs, rebuildThin);
  }

  /** `accept`: carry cached runs over a code change, once re-executed and found bit-identical. */
  accept(targets?: string[], steps?: number, jobs = 1, rebuildThin = false): Promise<VerifyResult[]> {
    return accept(this.ws, targets, steps, jobs, rebuildThin);
  }

  /** `exp apply`: make a cached run its stage's run — linked into out/ and recorded in the lock file. */
  async adopt(entry: RunEntry): Promise<void> {
    const { stage, params, inputs, code, external, deno } = entry;
    const node = this.graph.nodes.get(stage);
    if (node) await materialise(this.ws, node, entry);
    await this.ws.lock.record(stage, { stage, params, inputs, code, external, deno }, entry);
  }

  /** Copy the lock file's runs into a remote (default: the last, the shared one if set). */
  push(targets?: string[], remote?: Remote): Promise<{ pushed: string[]; already: string[]; skipped: string[] }> {
    return push(this.ws, targets, remote);
  }

  /** Restore the lock file's runs from the remotes and link out/<stage> (like `dvc pull`). */
  pull(targets?: string[]): Promise<{ pulled: string[]; missing: string[]; thin: string[]; neverRun: string[] }> {
    return pull(this.ws, targets);
  }
}
