// The stage graph: variants and seeds expanded into nodes, parameters resolved
// (defaults ← variant ← profile ← --set), dependencies checked, topological order.
import { checkParam, parseParam } from "./params.ts";
import { type ParamValue, PipelineError, type StageDef } from "../types.ts";

export interface Node {
  /** "download", or "train-torch-mlp@ga1" for a variant. */
  name: string;
  def: StageDef;
  params: Record<string, ParamValue>;
  /** Where each parameter's value comes from: "default", "variant", or the override's source. */
  sources: Record<string, string>;
  /** Resolved upstream node names. */
  deps: string[];
  /** A seed node (`<base>+s<seed>`): the node it repeats with another seed. */
  seedOf?: string;
  /** Upstream node → the outputs of it the stage reads (StageDef.reads); absent: all of them. */
  reads: Record<string, string[]>;
}

/**
 * A seed node's name: `train-cnn+s7`, `train-torch-mlp@default+s7`. "+" needs no quoting in
 * shells, is plain in file names, and holds no "." (which --set splits at) or "@" (variants).
 */
export const seedNode = (node: string, seed: number) => `${node}+s${seed}`;

/** The seeds declared for a stage or one of its variants (empty: none). */
export function declaredSeeds(def: StageDef, variant?: string): number[] {
  if (!def.seeds) return [];
  return Array.isArray(def.seeds) ? def.seeds : def.seeds[variant ?? ""] ?? [];
}

/** The declarations with at most `max` seeds each (the first declared): a profile's maxSeeds. */
export function capSeeds(defs: StageDef[], max?: number): StageDef[] {
  if (max === undefined) return defs;
  const cap = (seeds: number[]) => seeds.slice(0, max);
  return defs.map((d) =>
    !d.seeds ? d : {
      ...d,
      seeds: Array.isArray(d.seeds) ? cap(d.seeds) : Object.fromEntries(
        Object.entries(d.seeds).map(([v, s]) => [v, cap(s)]),
      ),
    }
  );
}

export interface Override {
  /** Stage name (all its variants) or name@variant. */
  target: string;
  param: string;
  /** A raw command-line string (parsed by type) or an already typed value (profiles). */
  raw?: string;
  value?: ParamValue;
  /** Where it comes from, for `params` (e.g. "params.json", "profile smoke", "--set"). */
  source?: string;
  /** The file it came from (params.json): named in its errors. */
  from?: string;
}

export class Graph {
  readonly nodes = new Map<string, Node>();
  /** Node names in an order where every node comes after its deps. */
  readonly order: string[] = [];

  constructor(readonly defs: StageDef[], overrides: Override[] = []) {
    const byName = new Map<string, StageDef>();
    for (const def of defs) {
      if (byName.has(def.name)) throw new PipelineError(`stage ${def.name} is declared twice`, "rename one of them");
      byName.set(def.name, def);
    }
    for (const def of defs) {
      for (const variant of def.variants ? Object.keys(def.variants) : [undefined]) {
        const name = variant ? `${def.name}@${variant}` : def.name;
        const params: Record<string, ParamValue> = {};
        const sources: Record<string, string> = {};
        for (const [key, spec] of Object.entries(def.params)) [params[key], sources[key]] = [spec.default, "default"];
        for (const [key, value] of Object.entries(variant ? def.variants![variant] : {})) {
          const spec = own(def.params, key);
          if (!spec) throw unknownParam(name, key, def);
          params[key] = checkParam(`${name}.${key}`, spec, value);
          sources[key] = "variant";
        }
        this.nodes.set(name, { name, def, params, sources, deps: [], reads: {} });
        for (const seed of this.checkSeeds(def, name, variant)) {
          // The node's own seed stays the node (its key unchanged); the others are new nodes.
          if (seed === params.seed) continue;
          const replica = seedNode(name, seed);
          this.nodes.set(replica, {
            name: replica,
            def,
            params: { ...params, seed },
            sources: { ...sources, seed: "seeds" },
            deps: [],
            reads: {},
            seedOf: name,
          });
        }
        if (def.perSeedOf) this.pairSeeds(def, name);
      }
    }
    for (const def of defs) checkReads(def, byName);
    for (const node of this.nodes.values()) {
      node.deps = node.def.deps.flatMap((dep) => {
        const resolved = this.expand(dep);
        if (!resolved.length) {
          throw new PipelineError(
            `stage ${node.name} depends on unknown stage ${dep}`,
            `declare ${dep} in the pipeline or fix the deps of ${node.def.name}`,
          );
        }
        // A stage run per seed of a dep reads that dep's run of the same seed only.
        const ups = node.def.perSeedOf === dep
          ? resolved.filter((up) => seedSuffix(up) === seedSuffix(node.name))
          : resolved;
        const files = node.def.reads && Object.hasOwn(node.def.reads, dep) ? node.def.reads[dep] : undefined;
        if (files) { for (const up of ups) node.reads[up] = files; }
        return ups;
      });
    }
    for (const o of overrides) {
      try {
        this.applyOverride(o);
      } catch (e) {
        if (o.from && e instanceof PipelineError) throw new PipelineError(`${o.from}: ${e.message}`, e.fix);
        throw e;
      }
    }
    this.sort();
  }

  /**
   * A stage name → its node names (all variants and seeds), a name@variant → itself and its
   * seeds, a seed node → itself; unknown → []. `<node>+s<seed>` of the node's own seed is the node.
   */
  expand(target: string): string[] {
    const own = /^(.+)\+s(\d+)$/.exec(target);
    if (own && !this.nodes.has(target) && this.nodes.get(own[1])?.params.seed === Number(own[2])) return [own[1]];
    if (this.nodes.has(target)) return [target, ...this.seedsOf(target)];
    return [...this.nodes.keys()].filter((n) => n.startsWith(`${target}@`) || this.nodes.get(n)!.seedOf === target);
  }

  /** The seed nodes repeating `name`, in declaration order. */
  seedsOf(name: string): string[] {
    return [...this.nodes.values()].filter((n) => n.seedOf === name).map((n) => n.name);
  }

  /**
   * A stage run once per seed of a dep (StageDef.perSeedOf): a node `<name>+s<seed>` for each of
   * that dep's seed nodes, with this stage's parameters; the base node pairs with the dep's base.
   */
  private pairSeeds(def: StageDef, name: string) {
    const dep = def.perSeedOf!;
    if (!def.deps.includes(dep)) {
      throw new PipelineError(
        `${name}: perSeedOf ${dep} is not among its deps`,
        `add ${dep} to the deps of ${def.name}`,
      );
    }
    if (!this.nodes.has(dep)) {
      throw new PipelineError(
        `${name}: perSeedOf ${dep}, which is not declared before it`,
        `declare ${dep.split("@")[0]} before ${def.name} in the pipeline`,
      );
    }
    const base = this.nodes.get(name)!;
    for (const seedName of this.seedsOf(dep)) {
      const replica = name + seedSuffix(seedName);
      this.nodes.set(replica, { ...base, name: replica, params: { ...base.params }, reads: {}, seedOf: name });
    }
  }

  /** Like expand, but an unknown name is a one-line error. */
  resolve(target: string): string[] {
    const found = this.expand(target);
    const [stage, variant] = target.split("@");
    const def = this.defs.find((d) => d.name === stage);
    if (!found.length && def && variant !== undefined) {
      throw new PipelineError(
        `unknown variant ${target}`,
        def.variants
          ? `${stage} has the variants: ${Object.keys(def.variants).join(", ")} (or use ${stage} for all of them)`
          : `${stage} has no variants: use ${stage}`,
      );
    }
    if (!found.length) {
      throw new PipelineError(
        `unknown stage ${target}`,
        `use one of: ${this.defs.map((d) => d.name).join(", ")} (or name@variant)`,
      );
    }
    return found;
  }

  private applyOverride(o: Override) {
    const names = this.resolve(o.target);
    if (o.param === "seed" && names.every((n) => this.nodes.get(n)!.seedOf)) {
      throw new PipelineError(
        `${o.target}.seed: a seed node's seed is its name`,
        `change the seeds declared for ${this.nodes.get(names[0])!.def.name} in the pipeline, or set the base node's`,
      );
    }
    for (const name of names) {
      const node = this.nodes.get(name)!;
      // A seed node keeps its seed: an override of the stage's seed moves only the base node's.
      if (o.param === "seed" && node.seedOf) continue;
      const spec = own(node.def.params, o.param); // "constructor" is no parameter
      if (!spec) throw unknownParam(o.target, o.param, node.def);
      const where = `${o.target}.${o.param}`;
      node.params[o.param] = o.raw !== undefined ? parseParam(where, spec, o.raw) : checkParam(where, spec, o.value!);
      node.sources[o.param] = o.source ?? "override";
    }
  }

  private sort() {
    const state = new Map<string, "visiting" | "done">();
    const visit = (name: string, path: string[]) => {
      if (state.get(name) === "done") return;
      if (state.get(name) === "visiting") {
        const cycle = [...path.slice(path.indexOf(name)), name].join(" → ");
        throw new PipelineError(`dependency cycle: ${cycle}`, "remove one of these deps in the pipeline declaration");
      }
      state.set(name, "visiting");
      for (const dep of this.nodes.get(name)!.deps) visit(dep, [...path, name]);
      state.set(name, "done");
      this.order.push(name);
    };
    for (const name of this.nodes.keys()) visit(name, []);
  }

  /** The targets and everything upstream of them, in topological order. */
  upstreamClosure(targets: string[]): string[] {
    const wanted = new Set<string>();
    const add = (name: string) => {
      if (wanted.has(name)) return;
      wanted.add(name);
      for (const dep of this.nodes.get(name)!.deps) add(dep);
    };
    for (const t of targets) add(t);
    return this.order.filter((n) => wanted.has(n));
  }

  private checkSeeds(def: StageDef, name: string, variant?: string): number[] {
    const bad = (what: string) =>
      new PipelineError(`${name}: ${what}`, "declare seeds as distinct non-negative integers, on a stage with a seed");
    if (def.seeds && !Array.isArray(def.seeds)) {
      for (const v of Object.keys(def.seeds)) {
        if (!own(def.variants, v)) throw bad(`seeds declared for unknown variant ${v}`);
      }
    }
    const seeds = declaredSeeds(def, variant);
    if (seeds.length && !def.params.seed) throw bad("seeds declared but the stage has no seed parameter");
    if (seeds.some((s) => !Number.isInteger(s) || s < 0) || new Set(seeds).size !== seeds.length) {
      throw bad(`bad seeds ${seeds.join(", ")}`);
    }
    return seeds;
  }

  /** Mermaid flowchart of the graph. */
  mermaid(): string {
    const id = (n: string) => n.replace(/[^A-Za-z0-9]/g, "_");
    const lines = ["flowchart LR"];
    for (const name of this.order) {
      lines.push(`  ${id(name)}["${name}"]`);
      for (const dep of this.nodes.get(name)!.deps) lines.push(`  ${id(dep)} --> ${id(name)}`);
    }
    return lines.join("\n");
  }
}

/** "+s1" of `x+s1`, "" of a base node. */
const seedSuffix = (node: string) => /\+s\d+$/.exec(node)?.[0] ?? "";

/** The outputs of upstream run `entry` (node `dep`) that `node` reads: its declared reads, else all. */
export function readFiles(node: Node, dep: string, entry: { outputs: Record<string, unknown> }): string[] {
  return node.reads[dep] ?? Object.keys(entry.outputs);
}

/** A stage's `reads`: each names one of its deps, and only outputs that dep declares. */
function checkReads(def: StageDef, byName: Map<string, StageDef>) {
  for (const [dep, files] of Object.entries(def.reads ?? {})) {
    const fix = `fix reads of ${def.name} in the pipeline declaration`;
    if (!def.deps.includes(dep)) {
      throw new PipelineError(`${def.name} reads from ${dep}, which is not among its deps`, fix);
    }
    const outputs = byName.get(dep.split("@")[0])?.outputs ?? [];
    const unknown = files.filter((f) => !outputs.includes(f));
    if (unknown.length) {
      throw new PipelineError(
        `${def.name} reads ${unknown.join(", ")} of ${dep}, which ${dep} does not declare among its outputs`,
        `${fix} (${dep} writes ${outputs.join(", ")})`,
      );
    }
  }
}

/** obj[key] if obj has it as its own property: a name from a user is never an Object.prototype member. */
export function own<T>(obj: Record<string, T> | undefined, key: string): T | undefined {
  return obj && Object.hasOwn(obj, key) ? obj[key] : undefined;
}

function unknownParam(where: string, key: string, def: StageDef) {
  const known = Object.keys(def.params);
  return new PipelineError(
    `unknown parameter ${where}.${key}`,
    known.length ? `${def.name} takes: ${known.join(", ")}` : `${def.name} takes no parameters`,
  );
}
