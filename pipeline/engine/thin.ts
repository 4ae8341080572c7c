// Thin runs — restored from the committed remote without their big files (weights, the raw
// data) — and the stages that read those files. A stage depends on the files it reads
// (StageDef.reads), so a thin file nobody running reads stays in the shared remote; one that
// a running stage reads is fetched from a remote that has it, else the run is rebuilt under
// its key, its outputs checked against the recorded hashes. Planned before anything starts,
// with the cost from the run's record: status predicts it, reproduce asks before hours.
import type { RunEntry } from "../store/cache.ts";
import { type Node, readFiles } from "./graph.ts";
import { writeFileAtomic } from "../store/hash.ts";
import type { Predicted } from "./keys.ts";
import { formatDuration } from "../terminal/progress.ts";
import { materialise } from "./publish.ts";
import { execute, lockStage, type Upstream } from "./run.ts";
import { PipelineError } from "../types.ts";
import type { Workspace } from "./workspace.ts";

/** Rebuilds costing more than this in their records (seconds) wait for --rebuild-thin: $PIPELINE_ASK_ABOVE_S, 600. */
export const askAbove = () => Number(Deno.env.get("PIPELINE_ASK_ABOVE_S") ?? 600);

/** A thin run that must be made whole, and how. */
export interface Whole {
  stage: string;
  /** Its absent files that are read. */
  files: string[];
  /** Who reads them: stages that run, or "--whole". */
  readers: string[];
  /** A remote that has the files (fetched from it), or undefined: rebuilt under its key. */
  remote?: string;
  /** What the run took in its record (seconds): the rebuild's expected cost. */
  seconds: number;
}

/** "train_x.npy, test_x.npy: read by train-cnn; about 6s, from its record" (status and reproduce say the same). */
export function describeWhole(w: Whole): string {
  const what = `${few(w.files)}: read by ${few(w.readers)}`;
  return w.remote
    ? `${what}; fetched from ${w.remote}`
    : `${what}; about ${formatDuration(w.seconds)}, from its record`;
}

/** "a, b, c", or "a, b and 4 more": a list kept to one short line. */
export const few = (items: string[]) =>
  items.length > 3 ? `${items.slice(0, 2).join(", ")} and ${items.length - 2} more` : items.join(", ");

const absentOf = (e: Predicted | undefined): string[] => (e && "absent" in e && e.absent) || [];
const costOf = (e: RunEntry) => Number(e.record?.stageSeconds ?? e.wallSeconds) || 0;

/**
 * Which thin runs must be made whole before `runs` (the nodes that will execute, each seeing
 * `entryOf(dep)` of its upstream), and how. A rebuilt run executes too, so what it reads of its
 * own upstream must be whole: walked from downstream to upstream. `wholeTargets`: nodes to make
 * whole entirely (reproduce --whole).
 */
export async function planWhole(
  ws: Workspace,
  runs: Iterable<string>,
  entryOf: (name: string) => Promise<Predicted | undefined> | Predicted | undefined,
  wholeTargets: string[] = [],
): Promise<Map<string, Whole>> {
  const out = new Map<string, Whole>();
  const need = (name: string, entry: RunEntry, files: string[], reader: string) => {
    const w = out.get(name) ?? { stage: name, files: [], readers: [], seconds: costOf(entry) };
    out.set(name, w);
    for (const f of files) if (!w.files.includes(f)) w.files.push(f);
    if (!w.readers.includes(reader)) w.readers.push(reader);
  };
  for (const name of wholeTargets) {
    const entry = await entryOf(name);
    if (absentOf(entry).length) need(name, entry as RunEntry, absentOf(entry), "--whole");
  }
  const executing = new Set(runs);
  for (const name of [...ws.graph.order].reverse()) {
    const w = out.get(name);
    if (w) {
      w.remote = await remoteWith(ws, (await entryOf(name)) as RunEntry, w.files);
      if (!w.remote) executing.add(name); // rebuilt: it reads its own upstream
    }
    if (!executing.has(name)) continue;
    const node = ws.graph.nodes.get(name)!;
    for (const dep of node.deps) {
      const entry = await entryOf(dep);
      const files = absentOf(entry).filter((f) => readFiles(node, dep, entry as RunEntry).includes(f));
      if (files.length) need(dep, entry as RunEntry, files, name);
    }
  }
  return out;
}

/** A remote (or this cache's objects, another run's) that has every one of the files, else undefined. */
async function remoteWith(ws: Workspace, entry: RunEntry, files: string[]): Promise<string | undefined> {
  const { store } = ws;
  const local = async (f: string) =>
    (await store.stats.hash(store.objectPath(entry.outputs[f].hash)).catch(() => "")) === entry.outputs[f].hash;
  if ((await Promise.all(files.map(local))).every(Boolean)) return "this cache";
  for (const remote of store.remotes) {
    const there = await Promise.all(files.map((f) => remote.has(entry.outputs[f].hash, entry.outputs[f].size)));
    if (there.every(Boolean)) return remote.url;
  }
  return undefined;
}

/** A planned rebuild: its stage, expected seconds and why (describeWhole's line). */
export type Planned = { stage: string; seconds?: number; reasons: string[] };

const totalSeconds = (rebuilds: Planned[]) => rebuilds.reduce((s, w) => s + (w.seconds ?? 0), 0);

/** The thin rebuilds as lines when together they cost more than askAbove(); empty when they may just happen. */
export function overLimit(rebuilds: Planned[], allowed: boolean): string[] {
  if (allowed || totalSeconds(rebuilds) <= askAbove()) return [];
  return rebuilds.map((w) => `  ↻ ${w.stage}: rebuild (${w.reasons.join("; ")})`);
}

/** The one error after overLimit's lines: what it would cost, and the ways forward. */
export function askError(rebuilds: Planned[], command: string): PipelineError {
  const n = rebuilds.length;
  return new PipelineError(
    `${command} would rebuild ${n} thin run${n > 1 ? "s" : ""} (above: about ${
      formatDuration(totalSeconds(rebuilds))
    } ` +
      `from their records; over ${formatDuration(askAbove())}, so asking first)`,
    "pull their files from a remote that has them (`deno task pull --remote s3://…`), " +
      `or go ahead: \`deno task ${command} --rebuild-thin\``,
  );
}

/**
 * Make what `node` reads of its upstream whole: each thin file fetched from a remote that has it,
 * else its run rebuilt under its key (recursively: what the rebuild reads is made whole first).
 * `lookup(dep)`: the upstream run a rebuilt node reads; `done(name, entry)`: a run made whole.
 */
export async function wholeFor(
  ws: Workspace,
  node: Node,
  upstream: Upstream,
  lookup: (dep: string) => Promise<RunEntry>,
  jobs: number,
  done: (name: string, entry: RunEntry) => void = () => {},
  planned?: Map<string, Whole>,
): Promise<Upstream> {
  const out: Array<readonly [string, RunEntry]> = [];
  for (const [dep, entry] of upstream) {
    const files = (entry.absent ?? []).filter((f) => readFiles(node, dep, entry).includes(f));
    if (!files.length) {
      out.push([dep, entry]);
      continue;
    }
    const filled = await ws.store.fill(entry);
    if (!files.some((f) => filled.absent?.includes(f))) {
      ws.log(`✓ ${dep}: ${files.join(", ")} fetched from a remote`);
      done(dep, filled);
      out.push([dep, filled]);
      continue;
    }
    const release = await lockStage(ws, dep, filled.key);
    try {
      const w = planned?.get(dep) ?? { stage: dep, files, readers: [node.name], seconds: costOf(filled) };
      const rebuilt = await rebuild(ws, filled, describeWhole(w), lookup, jobs, done, planned);
      out.push([dep, rebuilt]);
    } finally {
      await release();
    }
  }
  return out;
}

/**
 * Re-execute a thin run under its key (its caller holds the key's lock) to bring back its absent
 * files: the outputs must equal the recorded hashes (else NOT DETERMINISTIC, and nothing changes).
 * The run keeps its entry — record, timings, host: it is the same run, completed.
 */
export async function rebuild(
  ws: Workspace,
  entry: RunEntry,
  why: string,
  lookup: (dep: string) => Promise<RunEntry>,
  jobs: number,
  done: (name: string, entry: RunEntry) => void = () => {},
  planned?: Map<string, Whole>,
): Promise<RunEntry> {
  const node = ws.graph.nodes.get(entry.stage)!;
  const deps = await Promise.all(node.deps.map(async (d) => [d, await lookup(d)] as const));
  const upstream = await wholeFor(ws, node, deps, lookup, jobs, done, planned);
  ws.log(`↻ ${node.name}: rebuilding (${why})`);
  const run = await execute(ws, node, entry.key, entry, upstream, jobs, entry);
  const { absent: _, ...whole } = entry;
  // An accept carry-over (compared on its curve) rebuilt by today's code: its absent files have the
  // recorded hashes (execute checked them), its others may not. The run completed is the recorded
  // one, so its tree is then linked from the recorded files, all in this cache now.
  const other = Object.keys(whole.outputs).filter((f) => run.outputs[f]?.hash !== whole.outputs[f].hash);
  if (other.length) {
    const { outputs: _o, outputsHash: _h, ...parts } = whole;
    await ws.store.relink(whole, parts);
  } else await writeFileAtomic(ws.store.entryPath(entry.key), JSON.stringify(whole, null, 1));
  ws.log(
    `✓ ${node.name}: rebuilt in ${formatDuration(run.wallSeconds)}, ` +
      (other.length
        ? `${few(entry.absent ?? [])} the same bits as its recorded run; ${few(other)} kept from the recorded run ` +
          `(today's code writes other bytes there: an accept carry-over, compared on its curve)`
        : "the same bits as its recorded run"),
  );
  await materialise(ws, node, whole);
  done(node.name, whole);
  return whole;
}

/**
 * For --verify and accept: what `node` reads of the upstream runs the lock names, made whole —
 * planned and said first, and asked for above the limit like reproduce's rebuilds.
 */
export async function wholeInputs(
  ws: Workspace,
  node: Node,
  upstream: Upstream,
  lookup: (dep: string) => Promise<RunEntry>,
  jobs: number,
  rebuildThin: boolean,
  command: string,
): Promise<Upstream> {
  const seen = new Map<string, RunEntry>(upstream);
  const entryOf = async (name: string) => {
    if (!seen.has(name)) seen.set(name, await lookup(name));
    return seen.get(name)!;
  };
  const planned = await planWhole(ws, [node.name], entryOf);
  const rebuilds = [...planned.values()].filter((w) => !w.remote)
    .map((w) => ({ stage: w.stage, seconds: w.seconds, reasons: [describeWhole(w)] }));
  const ask = overLimit(rebuilds, rebuildThin);
  if (ask.length) {
    for (const line of ask) ws.log(line);
    throw askError(rebuilds, command);
  }
  return await wholeFor(ws, node, upstream, entryOf, jobs, (n, e) => seen.set(n, e), planned);
}

/** The declared outputs a run does not have (even thin): a run carried over from before they were declared. */
export function undeclaredGaps(declared: string[], entry: RunEntry): string[] {
  return declared.filter((f) => !Object.hasOwn(entry.outputs, f));
}
