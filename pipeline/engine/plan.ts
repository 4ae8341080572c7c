// Planning, like DVC's repo/reproduce.py: which stages a command selects, and what reproduce
// would do to each (run, restore from the cache or a remote, nothing) and exactly why —
// predicted without changing anything, for status, --dry-run and dag.
import type { KeyParts, RunEntry } from "../store/cache.ts";
import { type Graph, readFiles } from "./graph.ts";
import { explain, inputHash, keyOf, NOT_IN_LOCK, NOT_RUN, type Predicted } from "./keys.ts";
import { lockedOutputsHash } from "./lockfile.ts";
import { describeWhole, few, planWhole, undeclaredGaps } from "./thin.ts";
import { PipelineError } from "../types.ts";
import type { Workspace } from "./workspace.ts";

export interface ReproduceOptions {
  targets?: string[];
  /** Rerun the named targets (every stage when none is named) even when cached; never their upstream. */
  force?: boolean;
  /** After a stage fails, go on with the stages that do not depend on it (then report the failures). */
  keepGoing?: boolean;
  dryRun?: boolean;
  jobs?: number;
  /** Only the targets, from cached upstream outputs (like `dvc repro -s`). */
  single?: boolean;
  /** With single: leave upstream stages that are not cached yet out of ctx.inputs instead of failing. */
  partial?: boolean;
  /** Make the targets' own thin files whole too (fetched, else rebuilt): `reproduce preprocess --whole`. */
  whole?: boolean;
  /** Go ahead with thin rebuilds that cost more than askAbove() in their records (else: ask, exit 1). */
  rebuildThin?: boolean;
}

/** One vocabulary for status, --dry-run, dag and reproduce: what is (or would be) done to a stage. */
export type Action = "run" | "rebuild" | "restore from cache" | "restore from remote" | "up to date";
/** With --keep-going: a stage that failed, or that was not tried because an upstream stage failed. */
export type Outcome = Action | "failed" | "skipped";

export interface StageResult {
  stage: string;
  outcome: Outcome;
  reasons: string[];
  key?: string;
  entry?: RunEntry;
  /** Expected seconds of a run or rebuild: from its record (a rebuild) or the lock's last run of the stage. */
  seconds?: number;
}

/** The nodes the targets name (every stage when none is named). */
export function targets(graph: Graph, targets?: string[]): string[] {
  return (targets?.length ? targets : graph.defs.map((d) => d.name)).flatMap((t) => graph.resolve(t));
}

/** What reproduce works on, in dependency order: the targets and their upstream (--single: the targets). */
export function selection(graph: Graph, ro: ReproduceOptions): string[] {
  const named = targets(graph, ro.targets);
  return ro.single ? graph.order.filter((n) => named.includes(n)) : graph.upstreamClosure(named);
}

/** --force applies to the stages named (all when none is): a user who names one stage means that one. */
export function forced(graph: Graph, ro: ReproduceOptions): Set<string> {
  return new Set(ro.force ? targets(graph, ro.targets) : []);
}

/** For --single: upstream stages outside the selection, each with a selected stage that needs it. */
export function outsideDeps(graph: Graph, selected: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const name of selected) {
    for (const dep of graph.nodes.get(name)!.deps) if (!selected.includes(dep) && !out.has(dep)) out.set(dep, name);
  }
  return out;
}

/** For each selected stage (and its upstream): what reproduce would do and exactly why; changes nothing. */
export async function status(ws: Workspace, names?: string[]): Promise<StageResult[]> {
  const selected = names?.length ? ws.graph.upstreamClosure(targets(ws.graph, names)) : ws.graph.order;
  return await plan(ws, selected, {});
}

/**
 * What reproduce would do, changing nothing (status, --dry-run, dag). A stage that would run
 * with the key of its last recorded run is predicted to give that run's outputs again, so its
 * downstream is predicted through them (on a fresh clone: data rebuilt, training restored).
 */
export async function plan(ws: Workspace, selected: string[], ro: ReproduceOptions): Promise<StageResult[]> {
  const { graph, store } = ws;
  const lock = await ws.lock.read();
  const known = new Map<string, Predicted | undefined>(); // node → its outputs (and record), if predictable
  const absent = new Set<string>();
  if (ro.single) {
    for (const [dep, forStage] of outsideDeps(graph, selected)) {
      const entry = await ws.lock.lockedEntry(dep, forStage, lock, ro.partial, false);
      if (entry) known.set(dep, entry);
      else absent.add(dep);
    }
  }
  // A run's expected time: its last run's; a seed never run yet: its base seed's (the same work).
  const lastSeconds = (name: string) => {
    const seedOf = graph.nodes.get(name)!.seedOf;
    return lock.stages[name]?.wallSeconds ?? (seedOf ? lock.stages[seedOf]?.wallSeconds : undefined);
  };
  const force = forced(graph, ro);
  const out: StageResult[] = [];
  for (const name of selected) {
    const node = graph.nodes.get(name)!;
    const deps = node.deps.filter((d) => !absent.has(d));
    const unknown = deps.filter((d) => known.get(d) === undefined);
    if (unknown.length) {
      known.set(name, undefined);
      const are = unknown.length > 1 ? "are" : "is";
      const list = unknown.length > 4
        ? `${unknown.slice(0, 3).join(", ")} and ${unknown.length - 3} more`
        : unknown.join(", ");
      out.push({ stage: name, outcome: "run", reasons: [`upstream ${list} ${are} stale`], seconds: lastSeconds(name) });
      continue;
    }
    let parts: KeyParts;
    try {
      const inputs = node.deps.map((d) => [d, absent.has(d) ? NOT_RUN : inputHash(node, known.get(d)!)]);
      parts = await ws.keys.parts(node, Object.fromEntries(inputs));
    } catch (e) {
      if (!(e instanceof PipelineError)) throw e;
      known.set(name, undefined);
      out.push({ stage: name, outcome: "run", reasons: [e.message] });
      continue;
    }
    const key = keyOf(parts);
    const previous = lock.stages[name];
    const reasons = explain(previous, parts);
    let entry = await store.readEntry(key);
    let outcome: Action;
    if (entry) {
      const verdict = await store.verify(entry);
      if (!verdict.ok) {
        reasons.push(`cached ${verdict.file} is corrupt`);
        entry = undefined;
      }
    }
    if (entry) outcome = previous?.key === key ? "up to date" : "restore from cache";
    else if ((entry = await store.remoteEntry(key, previous))) outcome = "restore from remote";
    else outcome = "run";
    if (!previous && outcome !== "run") reasons[0] = NOT_IN_LOCK;
    if (force.has(name)) {
      outcome = "run";
      reasons.unshift("forced");
    } else if (outcome === "run") {
      if (previous?.key === key) reasons.push("outputs missing from the cache");
      const who = await store.holder(key);
      if (who) reasons.push(`being built now by ${who}`);
    }
    const again = previous?.key === key ? lockedOutputsHash(lock, name) : undefined; // a rerun gives these again
    // What runs is whole (and a forced rerun of a cached key must give its outputs again).
    const rerun = entry?.outputsHash ?? again;
    known.set(name, outcome === "run" ? (rerun ? { outputsHash: rerun } : undefined) : entry);
    const seconds = outcome === "run" ? lastSeconds(name) : undefined;
    out.push({ stage: name, outcome, reasons, key, entry, seconds });
  }
  // Thin runs that what runs reads (or --whole names): fetched, or rebuilt at their place.
  const runs = out.filter((r) => r.outcome === "run").map((r) => r.stage);
  const wholes = await planWhole(ws, runs, (n) => known.get(n), ro.whole ? targets(graph, ro.targets) : []);
  for (const r of out) {
    const w = wholes.get(r.stage);
    if (w && !w.remote) Object.assign(r, { outcome: "rebuild", reasons: [describeWhole(w)], seconds: w.seconds });
    else if (w) r.reasons.push(describeWhole(w));
    else if (r.entry?.absent?.length && r.outcome !== "run") r.reasons.push(thinNote(graph, r.stage, r.entry));
    const lacking = r.entry && r.outcome !== "run"
      ? undeclaredGaps(graph.nodes.get(r.stage)!.def.outputs, r.entry)
      : [];
    if (lacking.length) {
      r.reasons.push(
        `its run lacks the declared ${few(lacking)} (older code wrote none): \`reproduce --force ${r.stage}\` makes ${
          lacking.length > 1 ? "them" : "it"
        }`,
      );
    }
  }
  return out;
}

/** "thin: weights.safetensors (read by dropout-eval-mode)": what a thin run lacks, and who would need it. */
function thinNote(graph: Graph, name: string, entry: RunEntry): string {
  const readers = [...graph.nodes.values()]
    .filter((n) => n.deps.includes(name) && readFiles(n, name, entry).some((f) => entry.absent!.includes(f)))
    .map((n) => n.name);
  return `thin: ${few(entry.absent!)} only in a shared remote, ${
    readers.length ? `read by ${few(readers)}` : "read by no stage"
  }`;
}
