// Re-executing a stage to compare it with its cached run, bit for bit: `reproduce --verify`
// (compare, touch nothing) and `accept` (DVC's commit, checked: after a code change that
// gives the same results, carry the cached run over to the new key). The comparison itself
// is verify.ts's.
import { join } from "node:path";
import type { KeyParts, RunEntry } from "../store/cache.ts";
import type { Node } from "./graph.ts";
import { canonicalJson, hashFile } from "../store/hash.ts";
import { explain, inputHash, keyOf } from "./keys.ts";
import type { Accepted, LockFile } from "./lockfile.ts";
import { materialise } from "./publish.ts";
import { launch, type Upstream } from "./run.ts";
import { PipelineError } from "../types.ts";
import { few, undeclaredGaps, wholeInputs } from "./thin.ts";
import { compareUpTo, describeDifference, type Difference, firstDifference } from "./verify.ts";
import type { Workspace } from "./workspace.ts";

export interface VerifyResult {
  stage: string;
  /** The cached run compared with. */
  key: string;
  identical: boolean;
  steps: number | "all" | "curve";
  difference?: string;
  /** accept: why the stage was not carried over (nothing compared, or not equal). */
  refused?: string;
}

/**
 * `reproduce --verify`: re-execute stages from their cached inputs in a scratch directory
 * and compare every output (or, with `steps`, the training curve up to that step) with the
 * cached run. Touches neither the cache nor the lock.
 */
export async function verify(
  ws: Workspace,
  targets?: string[],
  steps?: number,
  jobs = 1,
  rebuildThin = false,
): Promise<VerifyResult[]> {
  try {
    return await verifyAll(ws, targets, steps, jobs, rebuildThin);
  } finally {
    await ws.store.clearInUse(); // the runs it marked in use (locks/inuse.<pid>)
  }
}

async function verifyAll(
  ws: Workspace,
  targets: string[] | undefined,
  steps: number | undefined,
  jobs: number,
  rebuildThin: boolean,
): Promise<VerifyResult[]> {
  const lock = await ws.lock.read();
  const names = targets?.length ? targets.flatMap((t) => ws.graph.resolve(t)) : ws.graph.order;
  const results: VerifyResult[] = [];
  for (const name of names) {
    const { node, upstream, parts, key } = await current(ws, name, lock);
    const cached = await ws.store.readOrFetch(key, lock.stages[name]);
    if (!cached) { // named, and the other stages still verified
      results.push({
        stage: name,
        key,
        identical: false,
        steps: "all",
        refused: `${name}: no cached run under its current key to verify — run \`deno task reproduce ${name}\` ` +
          `first (after a code change: \`deno task accept ${name}\`)`,
      });
      continue;
    }
    const inputs = await wholeInputs(
      ws,
      node,
      upstream,
      lookupIn(ws, name, lock),
      jobs,
      rebuildThin,
      "reproduce --verify",
    );
    results.push(await rerunAndCompare(ws, node, parts, inputs, cached, steps, jobs));
  }
  return results;
}

/**
 * `accept`: a stage stale only because its code changed gets its cached run carried over to
 * the new key — after re-executing it (the first `steps`, default: up to its first evaluation;
 * the whole stage when it took under a minute) with the new code and finding it bit-identical.
 */
export async function accept(
  ws: Workspace,
  targets?: string[],
  steps?: number,
  jobs = 1,
  rebuildThin = false,
): Promise<VerifyResult[]> {
  ws.store.assertWritable();
  const named = targets?.length ? targets.flatMap((t) => ws.graph.resolve(t)) : undefined;
  const results: VerifyResult[] = [];
  try {
    for (const name of ws.graph.order.filter((n) => !named || named.includes(n))) {
      if (!named && !(await ws.lock.read()).stages[name]) continue; // never run: nothing to carry over
      try {
        const verdict = await acceptOne(ws, name, steps, jobs, rebuildThin);
        if (verdict) results.push(verdict);
      } catch (e) {
        if (!(e instanceof PipelineError)) throw e;
        // One refused stage does not stop the others (its downstream still compares with its old run).
        // Said once, with its fix, in the result line.
        results.push({ stage: name, key: "", identical: false, steps: "all", refused: `${e.message} — ${e.fix}` });
      }
    }
    return results;
  } finally {
    await ws.store.clearInUse(); // the runs it marked in use (locks/inuse.<pid>): gc may collect them again
  }
}

/** Accept one stage: undefined when there was nothing to verify (up to date, or the new key cached already). */
async function acceptOne(
  ws: Workspace,
  name: string,
  steps: number | undefined,
  jobs: number,
  rebuildThin: boolean,
): Promise<VerifyResult | undefined> {
  const { store } = ws;
  const lock = await ws.lock.read(); // re-read: accepting upstream stages updates it
  if (!lock.stages[name]) {
    throw new PipelineError(`${name}: never run, so nothing to accept`, `run \`deno task reproduce ${name}\``);
  }
  const { node, upstream, parts, key } = await current(ws, name, lock);
  const previous = lock.stages[name];
  if (previous?.key === key) {
    ws.log(`✓ ${name}: up to date, nothing to accept`);
    return;
  }
  const already = await store.readOrFetch(key);
  if (already && (await store.verify(already)).ok) {
    await ws.lock.record(name, parts, already);
    ws.log(`✓ ${name}: a run of the new key is cached already; the lock now names it`);
    return;
  }
  const old = previous && await store.readOrFetch(previous.key, previous);
  if (!previous || !old || !(await store.verify(old)).ok) {
    throw new PipelineError(
      `${name}: no cached run of its previous key to accept`,
      `run \`deno task reproduce ${name}\``,
    );
  }
  // A run without outputs the stage now declares would stay without them under the new key.
  const lacking = undeclaredGaps(node.def.outputs, old);
  if (lacking.length) {
    throw new PipelineError(
      `${name}: not accepted — its cached run lacks the declared ${few(lacking)} (the older code wrote none)`,
      `run \`deno task reproduce ${name}\` to train it with the new code, which writes them`,
    );
  }
  // Not differences: a parameter now transport-only, and one added since at its default (the old
  // code's fixed behaviour, which the re-execution below checks).
  const transport = (k: string) => node.def.params[k]?.transport;
  const added = (k: string) =>
    !(k in previous.params) && canonicalJson(parts.params[k]) === canonicalJson(node.def.params[k]?.default);
  const was = {
    ...previous,
    params: {
      ...Object.fromEntries(Object.entries(previous.params).filter(([k]) => !transport(k))),
      ...Object.fromEntries(Object.keys(parts.params).filter(added).map((k) => [k, parts.params[k]])),
    },
  };
  const other = explain(was, parts).filter((r) => !r.startsWith("code: ") && !r.startsWith("packages changed"));
  if (other.length) {
    throw new PipelineError(
      `${name}: accept carries a run over a code change only, but ${other.join("; ")}`,
      `run \`deno task reproduce ${name}\` to run it with these settings`,
    );
  }
  // A training stage is compared on its curve (results, not the timings older runs kept beside
  // them): up to its first evaluation, or all of it when the stage took under a minute.
  const evals = await evalSteps(store.treeDir(old.key), old);
  const n = steps ?? (evals && (old.wallSeconds < 60 ? evals.last : evals.first));
  ws.log(`… ${name}: re-executing ${n === undefined ? "the whole stage" : `its first ${n} steps`} to compare`);
  const inputs = await wholeInputs(ws, node, upstream, lookupIn(ws, name, lock), jobs, rebuildThin, "accept");
  const verdict = await rerunAndCompare(ws, node, parts, inputs, old, n, jobs);
  if (!verdict.identical) {
    throw new PipelineError(
      `${name}: not accepted — the new code gives other results: ${verdict.difference}`,
      `run \`deno task reproduce ${name}\` to train it again (or undo the change)`,
    );
  }
  const accepted: Accepted = { from: old.key, verifiedSteps: verdict.steps, at: new Date().toISOString() };
  const release = await store.lock(key, () => {});
  try {
    const entry = await store.relink(old, {
      key,
      stage: name,
      params: parts.params,
      inputs: parts.inputs,
      code: parts.code,
      external: parts.external,
      deno: parts.deno,
      metrics: old.metrics,
      record: { ...old.record, accepted },
      startedAt: old.startedAt,
      wallSeconds: old.wallSeconds,
    });
    await materialise(ws, node, entry);
    await ws.lock.record(name, parts, entry);
  } finally {
    await release();
  }
  ws.log(
    `✓ ${name}: accepted (bit-identical over ${
      verdict.steps === "all" ? "the whole stage" : `${verdict.steps} steps`
    })`,
  );
  return verdict;
}

/** Re-execute a stage in a scratch directory (its own checkpoints and memo) and compare with `cached`. */
async function rerunAndCompare(
  ws: Workspace,
  node: Node,
  parts: KeyParts,
  upstream: Upstream,
  cached: RunEntry,
  steps: number | undefined,
  jobs: number,
): Promise<VerifyResult> {
  const tmp = await ws.store.makeTmp(`verify-${cached.key}`);
  try {
    const run = await launch(ws, node, parts, upstream, jobs, tmp, {
      checkpointDir: join(tmp, "checkpoints"), // never resume, never reuse memoised work: compute it all again
      memoDir: join(tmp, "memo"),
      stopAfterSteps: steps,
    });
    const files = Object.keys(cached.outputs);
    const partial = steps !== undefined && files.includes("history.json");
    const upTo = compareUpTo(cached, steps);
    // A thin cached run's absent files are known by hash only (compared whole runs only).
    const absent = cached.absent ?? [];
    let d: Difference | undefined;
    for (const rel of upTo === undefined ? absent : []) {
      const actual = await hashFile(join(run.outDir, rel)).catch(() => "missing");
      if (actual !== cached.outputs[rel].hash) {
        d ??= { file: rel, where: "sha256", cached: cached.outputs[rel].hash, rerun: actual };
      }
    }
    d ??= await firstDifference(
      ws.store.treeDir(cached.key),
      files.filter((f) => !absent.includes(f)),
      run.outDir,
      upTo,
      absent,
    );
    return {
      stage: node.name,
      key: cached.key,
      identical: !d,
      steps: partial ? steps! : compareUpTo(cached) === Infinity ? "curve" : "all",
      difference: d && describeDifference(d),
    };
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

/** The run the lock names for an upstream stage of `name`, restored (thin, maybe) if need be. */
const lookupIn = (ws: Workspace, name: string, lock: LockFile) => async (dep: string) =>
  (await ws.lock.lockedEntry(dep, name, lock, false, true))!;

/** A stage's key now (current code and parameters) over the upstream runs the lock names. */
async function current(ws: Workspace, name: string, lock: LockFile) {
  const node = ws.graph.nodes.get(name)!;
  const upstream: Upstream = [];
  for (const dep of node.deps) {
    upstream.push([dep, (await ws.lock.lockedEntry(dep, name, lock, false, true))!] as const);
  }
  const parts = await ws.keys.parts(node, Object.fromEntries(upstream.map(([d, e]) => [d, inputHash(node, e)])));
  return { node, upstream, parts, key: keyOf(parts) };
}

/** The steps of a training run's first and last evaluations (undefined: not a training stage). */
async function evalSteps(dir: string, entry: RunEntry): Promise<{ first: number; last: number } | undefined> {
  if (!entry.outputs["history.json"]) return undefined;
  try {
    const evals: Array<{ step: number }> = JSON.parse(await Deno.readTextFile(join(dir, "history.json"))).evals;
    return evals?.length ? { first: evals[0].step, last: evals[evals.length - 1].step } : undefined;
  } catch {
    return undefined;
  }
}
