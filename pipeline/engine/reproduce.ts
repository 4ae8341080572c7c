// `reproduce`: bring the selected stages up to date in dependency order — restore what is
// cached (locally or on a remote), run what is stale (in parallel where the graph allows, up
// to --jobs), link each result into the project and record it in the lock file.
import type { RunEntry } from "../store/cache.ts";
import { explain, inputHash, keyOf, NOT_IN_LOCK, NOT_RUN } from "./keys.ts";
import type { LockFile } from "./lockfile.ts";
import { forced, type Outcome, outsideDeps, plan, type ReproduceOptions, selection, type StageResult } from "./plan.ts";
import { formatDuration } from "../terminal/progress.ts";
import { materialise } from "./publish.ts";
import { execute, lockStage } from "./run.ts";
import { askError, overLimit, rebuild, wholeFor } from "./thin.ts";
import { PipelineError } from "../types.ts";
import type { Workspace } from "./workspace.ts";

/**
 * Run what is stale, restore what is cached, in dependency order (with dryRun: only say what it
 * would do). The plan comes first: thin rebuilds that would cost more than askAbove() in their
 * records stop here, listed, unless ro.rebuildThin.
 */
export async function reproduce(ws: Workspace, ro: ReproduceOptions = {}): Promise<StageResult[]> {
  ws.store.assertWritable();
  const selected = selection(ws.graph, ro);
  const planned = await plan(ws, selected, ro);
  if (ro.dryRun) return planned;
  const rebuilds = planned.filter((r) => r.outcome === "rebuild");
  const ask = overLimit(rebuilds, !!ro.rebuildThin);
  if (ask.length) {
    for (const line of ask) ws.log(line);
    throw askError(rebuilds, "reproduce");
  }
  await ws.store.gcTmp();
  try {
    return await schedule(ws, selected, ro, new Map(planned.map((r) => [r.stage, r])));
  } finally {
    await ws.store.clearInUse();
  }
}

/** Start each stage once its upstream is done, at most `jobs` at once; with keepGoing, past failures. */
async function schedule(
  ws: Workspace,
  selected: string[],
  ro: ReproduceOptions,
  planned: Map<string, StageResult>,
): Promise<StageResult[]> {
  const lock = await ws.lock.read();
  const done = new Map<string, RunEntry>();
  const absent = new Set<string>();
  if (ro.single) {
    for (const [dep, forStage] of outsideDeps(ws.graph, selected)) {
      const entry = await ws.lock.lockedEntry(dep, forStage, lock, ro.partial, true);
      if (entry) done.set(dep, entry);
      else absent.add(dep);
    }
    if (absent.size) ws.log(`… running without ${[...absent].join(", ")}: not in the cache yet`);
  }
  const results: StageResult[] = [];
  const jobs = Math.max(1, ro.jobs ?? 1);
  const pending = [...selected];
  const running = new Map<string, Promise<void>>();
  const failed = new Set<string>();
  let failure: unknown;
  while ((pending.length || running.size) && !failure) {
    for (let i = 0; i < pending.length && running.size < jobs;) {
      const name = pending[i];
      const deps = ws.graph.nodes.get(name)!.deps.filter((d) => !absent.has(d));
      const broken = deps.filter((d) => failed.has(d));
      if (broken.length) { // --keep-going: what needs a failed stage is not tried
        pending.splice(i, 1);
        failed.add(name);
        results.push({ stage: name, outcome: "skipped", reasons: [`upstream ${broken.join(", ")} failed`] });
        ws.log(`✗ ${name}: skipped (upstream ${broken.join(", ")} failed)`);
        continue;
      }
      if (!deps.every((d) => done.has(d))) {
        i++;
        continue;
      }
      pending.splice(i, 1);
      const task = processNode(ws, name, done, ro, lock, jobs, absent, planned.get(name))
        .then((r) => {
          results.push(r);
          done.set(name, r.entry!);
        })
        .catch((e) => {
          if (!ro.keepGoing) {
            failure ??= e;
            return;
          }
          failed.add(name);
          const why = e instanceof PipelineError ? `${e.message} — ${e.fix}` : String(e);
          results.push({ stage: name, outcome: "failed", reasons: [why] });
          ws.log(`✗ ${name}: failed: ${why}`);
        })
        .finally(() => running.delete(name));
      running.set(name, task);
    }
    if (running.size) await Promise.race(running.values());
    else if (pending.length) throw new Error("scheduler stuck: unmet dependencies"); // unreachable: graph is sorted
  }
  if (failure) {
    await Promise.allSettled(running.values());
    throw failure;
  }
  await ws.store.stats.save();
  return selected.map((n) => results.find((r) => r.stage === n)!);
}

/**
 * One stage, under its key's cross-process lock (another reproduce building it is waited for):
 * restore a verified cached run (a corrupt one is discarded and rebuilt), else fetch it from a
 * remote, else run it; then link it into the project and record it in the lock file.
 */
async function processNode(
  ws: Workspace,
  name: string,
  done: Map<string, RunEntry>,
  ro: ReproduceOptions,
  lock: LockFile,
  jobs: number,
  absent: Set<string>,
  predicted?: StageResult,
): Promise<StageResult> {
  const { store } = ws;
  const node = ws.graph.nodes.get(name)!;
  const upstream = node.deps.filter((d) => !absent.has(d)).map((d) => [d, done.get(d)!] as const);
  const inputs = Object.fromEntries(
    node.deps.map((d) => [d, absent.has(d) ? NOT_RUN : inputHash(node, done.get(d)!)]),
  );
  const parts = await ws.keys.parts(node, inputs);
  const key = keyOf(parts);
  const previous = lock.stages[name];
  const reasons = explain(previous, parts);
  const release = await lockStage(ws, name, key);
  try {
    await store.markInUse(key); // gc keeps it while we live
    const force = forced(ws.graph, ro).has(name);
    let entry = force ? undefined : await store.readEntry(key);
    if (entry) {
      const verdict = await store.verify(entry);
      if (!verdict.ok) {
        ws.log(
          `✗ ${name}: cached ${verdict.file} is corrupt (sha256 ${verdict.actual.slice(0, 12)}…, ` +
            `recorded ${verdict.expected.slice(0, 12)}…): rebuilding`,
        );
        await store.discard(entry, verdict.actual === "missing" ? undefined : verdict.expected);
        reasons.push(`cached ${verdict.file} is corrupt`);
        entry = undefined;
      }
    }
    let outcome: Outcome;
    // Restored, a stage the lock does not name yet is new to the lock, not unrun.
    const restored = previous ? reasons : [NOT_IN_LOCK, ...reasons.slice(1)];
    const why = restored.length ? ` (${restored.join("; ")})` : "";
    const lookup = (dep: string) => Promise.resolve(done.get(dep)!);
    const note = (n: string, e: RunEntry) => done.set(n, e);
    if (predicted?.outcome === "rebuild" && !force && (entry ??= await store.fetch(key, previous))?.absent?.length) {
      // Planned: the thin run is completed here, at its place in the order (status said so).
      entry = await rebuild(ws, entry, predicted.reasons.join("; "), lookup, jobs, note);
      outcome = "rebuild";
    } else if (entry) {
      outcome = previous?.key === key ? "up to date" : "restore from cache";
      ws.log(outcome === "up to date" ? `✓ ${name}: up to date` : `✓ ${name}: restored from cache${why}`);
    } else if (!force && (entry = await store.fetch(key, previous))) {
      outcome = "restore from remote";
      ws.log(`✓ ${name}: restored from remote${why}`);
    } else {
      const before = force ? await store.readEntry(key) : undefined; // --force: the run it must equal
      if (force) reasons.unshift("forced");
      if (previous?.key === key && !force) reasons.push("outputs missing from the cache");
      ws.log(`▶ ${name}: running (${reasons.join("; ")})`);
      const t0 = performance.now();
      entry = await execute(ws, node, key, parts, await wholeFor(ws, node, upstream, lookup, jobs, note), jobs, before);
      if (before && entry.startedAt === before.startedAt) {
        const took = formatDuration((performance.now() - t0) / 1000);
        ws.log(`✓ ${name}: rerun in ${took}, the same bits as its cached run (its record kept)`);
      } else ws.log(`✓ ${name}: done in ${formatDuration(entry.wallSeconds)}${metricsLine(entry.metrics)}`);
      outcome = "run";
    }
    await materialise(ws, node, entry);
    await ws.lock.record(name, parts, entry);
    const said = outcome === "restore from cache" || outcome === "restore from remote" ? restored : reasons;
    return { stage: name, outcome, reasons: said, key, entry };
  } finally {
    await release();
  }
}

/** The first few scalar metrics of a run, for its "done" line. */
function metricsLine(metrics: Record<string, unknown>): string {
  const parts = Object.entries(metrics)
    .filter(([, v]) => typeof v === "number" || typeof v === "string")
    .slice(0, 6)
    .map(([k, v]) => `${k} ${typeof v === "number" ? +v.toPrecision(4) : v}`);
  return parts.length ? ` · ${parts.join(" · ")}` : "";
}
