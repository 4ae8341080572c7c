// What a run is: a stage's cache key is the hash of everything its outputs may depend on —
// its name, its parameters (less transport-only ones), the outputs of its upstream runs, the
// code of its module's import closure, the npm packages it reaches and the Deno version — and
// `explain` says what differs between two such descriptions (status's reasons).
import { resolve } from "node:path";
import type { KeyParts, RunEntry, Store } from "../store/cache.ts";
import type { Node } from "./graph.ts";
import { canonicalJson, sha256 } from "../store/hash.ts";
import { type Closure, importClosure, readImportMap } from "../store/imports.ts";
import { PipelineError } from "../types.ts";

/** Key parts of stages, parsing each module's import closure once per process. */
export class Keys {
  private closures = new Map<string, Promise<Closure>>();
  private importMap?: Record<string, string>;

  constructor(private readonly root: string, private readonly store: Store) {}

  private closure(module: string): Promise<Closure> {
    if (!this.closures.has(module)) {
      this.closures.set(
        module,
        (async () => {
          this.importMap ??= await readImportMap(this.root);
          return importClosure(this.root, module, this.store.stats, this.store.code, this.importMap);
        })(),
      );
    }
    return this.closures.get(module)!;
  }

  /** What the run of `node` over upstream outputs `inputs` (node → inputHash) is made of. */
  async parts(node: Node, inputs: Record<string, string>): Promise<KeyParts> {
    const modulePath = resolve(this.root, node.def.module);
    try {
      await Deno.stat(modulePath);
    } catch {
      throw new PipelineError(
        `stage ${node.name} is not built yet: ${node.def.module} does not exist`,
        "build it (see its issue) or reproduce other stages by name",
      );
    }
    const closure = await this.closure(node.def.module);
    return {
      stage: node.name,
      // Transport-only parameters (where to fetch from) are not part of what a run is.
      params: Object.fromEntries(Object.entries(node.params).filter(([k]) => !node.def.params[k]?.transport)),
      inputs,
      code: closure.files,
      external: closure.external,
      deno: Deno.version.deno,
    };
  }
}

/**
 * The key's input for an upstream node a `--partial` run goes without: the run differs from one that had it
 * (the report says which runs are missing), and the worker tells the stage (StageContext.notRun).
 */
export const NOT_RUN = "not run";

/** A run\'s cache key: the hash of everything its outputs may depend on. */
export function keyOf(parts: KeyParts): string {
  return sha256(canonicalJson({ v: 2, ...parts }));
}

/** What downstream keys need of an upstream run: a cached run, or outputs a rerun is predicted to give again. */
export type Predicted = RunEntry | { outputsHash: string };

/**
 * What a stage depends on of an upstream run: its outputs, and its record too for a stage
 * that shows records (the report's costs and environment), so such a stage is never
 * restored with another run's facts.
 */
export function inputHash(node: Node, upstream: Predicted): string {
  if (!node.def.readsRecords) return upstream.outputsHash;
  // The record of a stage that will rerun is not known yet: no cached run can match.
  if (!("key" in upstream)) return "record not known yet";
  return sha256(upstream.outputsHash + canonicalJson(upstream.record ?? {}));
}

/**
 * Why a stage the lock does not name is restored (its key's run is in a cache or a remote): it
 * is new to the lock, not unrun — explain() says "never run", which is what a run needs.
 */
export const NOT_IN_LOCK = "not yet in the lock file";

/** What differs between the last recorded run of a stage and now. */
export function explain(previous: KeyParts | undefined, now: KeyParts): string[] {
  if (!previous) return ["never run"];
  const reasons: string[] = [];
  const files = new Set([...Object.keys(previous.code), ...Object.keys(now.code)]);
  for (const f of [...files].sort()) {
    if (!(f in previous.code)) reasons.push(`code: ${f} added`);
    else if (!(f in now.code)) reasons.push(`code: ${f} no longer imported`);
    else if (previous.code[f] !== now.code[f]) reasons.push(`code: ${f} changed`);
  }
  const keys = new Set([...Object.keys(previous.params), ...Object.keys(now.params)]);
  for (const k of [...keys].sort()) {
    const a = JSON.stringify(previous.params[k]);
    const b = JSON.stringify(now.params[k]);
    if (a !== b) reasons.push(`param ${k}: ${a ?? "unset"} → ${b ?? "unset"}`);
  }
  for (const d of new Set([...Object.keys(previous.inputs), ...Object.keys(now.inputs)])) {
    if (!(d in previous.inputs)) reasons.push(`input ${d} added`);
    else if (!(d in now.inputs)) reasons.push(`input ${d} no longer a dep`);
    else if (previous.inputs[d] !== now.inputs[d]) reasons.push(`input ${d} changed`);
  }
  if (previous.deno !== now.deno) reasons.push(`Deno ${previous.deno} → ${now.deno}`);
  if (canonicalJson(previous.external) !== canonicalJson(now.external)) {
    const added = now.external.filter((x) => !previous.external.includes(x));
    reasons.push(`packages changed: ${added.join(", ") || "some removed"}`);
  }
  return reasons;
}
