// The engine: cache keys, what is stale and why, running stages in worker
// processes (in parallel where the graph allows), restoring cached runs,
// publishing outputs and keeping the lock file.
import { dirname, join, resolve } from "node:path";
import { type KeyParts, type RunEntry, Store } from "./cache.ts";
import { Graph, type Node, type Override } from "./graph.ts";
import { canonicalJson, sha256, writeFileAtomic } from "./hash.ts";
import { type Closure, importClosure, readImportMap } from "./imports.ts";
import { formatDuration } from "./progress.ts";
import { type Executor, LocalExecutor } from "./executor.ts";
import { PipelineError, type StageDef } from "./types.ts";
import type { WorkerConfig } from "./worker.ts";

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
  /** Where a stage's outputs are copied, relative to root (default: its `publish`). */
  publish?: Record<string, string>;
  log?: (line: string) => void;
  /** Where stage workers run (default: local processes). */
  executor?: Executor;
}

export interface ReproduceOptions {
  targets?: string[];
  /** Rerun the selected stages even when cached. */
  force?: boolean;
  dryRun?: boolean;
  jobs?: number;
  /** Only the targets, from cached upstream outputs (like `dvc repro -s`). */
  single?: boolean;
  /** With single: leave upstream stages that are not cached yet out of ctx.inputs instead of failing. */
  partial?: boolean;
}

interface LockStage extends KeyParts {
  key: string;
  outputs: Record<string, string>;
  metrics: Record<string, unknown>;
  wallSeconds: number;
  ranAt: string;
}

interface LockFile {
  version: 1;
  stages: Record<string, LockStage>;
}

export type Outcome = "ran" | "restored" | "up to date" | "would run" | "would restore";

export interface StageResult {
  stage: string;
  outcome: Outcome;
  reasons: string[];
  key?: string;
  entry?: RunEntry;
}

export class Engine {
  private closures = new Map<string, Promise<Closure>>();
  private importMap?: Record<string, string>;
  private constructor(
    readonly opts: EngineOptions,
    readonly graph: Graph,
    readonly store: Store,
    readonly lockFile: string,
  ) {}

  static async open(opts: EngineOptions): Promise<Engine> {
    const graph = new Graph(opts.defs, opts.overrides);
    const cacheDir = opts.cacheDir ?? Deno.env.get("PIPELINE_CACHE") ?? join(opts.root, ".cache");
    const store = await Store.open(resolve(opts.root, cacheDir), opts.remote ?? join(opts.root, "pipeline", "remote"));
    return new Engine(opts, graph, store, opts.lockFile ?? join(opts.root, "pipeline", "lock.json"));
  }

  private log(line: string) {
    (this.opts.log ?? ((l) => console.error(l)))(line);
  }

  private closure(module: string): Promise<Closure> {
    if (!this.closures.has(module)) {
      this.closures.set(
        module,
        (async () => {
          this.importMap ??= await readImportMap(this.opts.root);
          return importClosure(this.opts.root, module, this.store.stats, this.importMap);
        })(),
      );
    }
    return this.closures.get(module)!;
  }

  private async keyParts(node: Node, inputs: Record<string, string>): Promise<KeyParts> {
    const modulePath = resolve(this.opts.root, node.def.module);
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
      params: node.params,
      inputs,
      code: closure.files,
      external: closure.external,
      deno: Deno.version.deno,
    };
  }

  async readLock(): Promise<LockFile> {
    try {
      return JSON.parse(await Deno.readTextFile(this.lockFile));
    } catch {
      return { version: 1, stages: {} };
    }
  }

  /** Merge one stage into the lock file, under a cross-process lock. */
  private async recordLock(name: string, parts: KeyParts, entry: RunEntry) {
    const release = await this.store.lock("lockfile", () => {});
    try {
      const lock = await this.readLock();
      lock.stages[name] = {
        key: entry.key,
        ...parts,
        outputs: Object.fromEntries(Object.entries(entry.outputs).map(([f, o]) => [f, o.hash])),
        metrics: entry.metrics,
        wallSeconds: entry.wallSeconds,
        ranAt: entry.startedAt,
      };
      lock.stages = Object.fromEntries(Object.entries(lock.stages).sort(([a], [b]) => (a < b ? -1 : 1)));
      await Deno.mkdir(dirname(this.lockFile), { recursive: true });
      await writeFileAtomic(this.lockFile, JSON.stringify(lock, null, 2) + "\n");
    } finally {
      await release();
    }
  }

  /** Run what is stale, restore what is cached, in dependency order. */
  async reproduce(ro: ReproduceOptions = {}): Promise<StageResult[]> {
    await this.store.gcTmp();
    const targets = (ro.targets?.length ? ro.targets : this.graph.defs.map((d) => d.name))
      .flatMap((t) => this.graph.resolve(t));
    const selected = ro.single
      ? this.graph.order.filter((n) => targets.includes(n))
      : this.graph.upstreamClosure(targets);
    const lock = await this.readLock();
    const done = new Map<string, RunEntry | "pending">();
    const absent = new Set<string>();
    if (ro.single) {
      for (const name of selected) {
        for (const dep of this.graph.nodes.get(name)!.deps) {
          if (selected.includes(dep) || done.has(dep)) continue;
          const entry = await this.lockedEntry(dep, name, lock, ro.partial);
          if (entry) done.set(dep, entry);
          else absent.add(dep);
        }
      }
      if (absent.size) this.log(`… running without ${[...absent].join(", ")}: not in the cache yet`);
    }
    const results: StageResult[] = [];
    const jobs = Math.max(1, ro.jobs ?? 1);
    const pending = [...selected];
    const running = new Map<string, Promise<void>>();
    let failure: unknown;
    while ((pending.length || running.size) && !failure) {
      for (let i = 0; i < pending.length && running.size < jobs;) {
        const name = pending[i];
        const deps = this.graph.nodes.get(name)!.deps.filter((d) => !absent.has(d));
        if (!deps.every((d) => done.has(d))) {
          i++;
          continue;
        }
        pending.splice(i, 1);
        const task = this.processNode(name, done, lock, ro, jobs, absent)
          .then((r) => {
            results.push(r);
            done.set(name, r.entry ?? "pending");
          })
          .catch((e) => {
            failure ??= e;
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
    await this.store.stats.save();
    return selected.map((n) => results.find((r) => r.stage === n)!);
  }

  /** For --single: the cached outputs of an upstream stage the lock file names (undefined: absent, if allowed). */
  private async lockedEntry(
    dep: string,
    forStage: string,
    lock: LockFile,
    allowAbsent = false,
  ): Promise<RunEntry | undefined> {
    const key = lock.stages[dep]?.key;
    const entry = key ? await this.store.readEntry(key) : undefined;
    if (!entry || !(await this.store.verify(entry)).ok) {
      if (allowAbsent) return undefined;
      throw new PipelineError(
        `${forStage} needs the outputs of ${dep}, which are not in the cache`,
        `run \`deno task reproduce ${dep}\` first (or drop --single)`,
      );
    }
    return entry;
  }

  private async processNode(
    name: string,
    done: Map<string, RunEntry | "pending">,
    lock: LockFile,
    ro: ReproduceOptions,
    jobs: number,
    absent: Set<string>,
  ): Promise<StageResult> {
    const node = this.graph.nodes.get(name)!;
    const upstream = node.deps.filter((d) => !absent.has(d)).map((d) => [d, done.get(d)!] as const);
    const pendingDeps = upstream.filter(([, e]) => e === "pending").map(([d]) => d);
    if (pendingDeps.length) { // only in a dry run: upstream would run first
      return { stage: name, outcome: "would run", reasons: pendingDeps.map((d) => `upstream ${d} would run first`) };
    }
    const inputs = Object.fromEntries(upstream.map(([d, e]) => [d, (e as RunEntry).outputsHash]));
    const parts = await this.keyParts(node, inputs);
    const key = sha256(canonicalJson({ v: 1, ...parts }));
    const previous = lock.stages[name];
    const reasons = explain(previous, parts);
    if (ro.dryRun) {
      const entry = ro.force ? undefined : await this.store.readEntry(key);
      const outcome = entry ? "would restore" : "would run";
      this.log(
        `${outcome === "would run" ? "▶" : "✓"} ${name}: ${outcome}${reasons.length ? ` (${reasons.join("; ")})` : ""}`,
      );
      return { stage: name, outcome, reasons, key, entry };
    }
    const release = await this.store.lock(
      key,
      (who) => this.log(`… ${name}: waiting for another reproduce (${who}) that is building it`),
    );
    try {
      let entry = ro.force ? undefined : await this.store.readEntry(key);
      if (entry) {
        const verdict = await this.store.verify(entry);
        if (!verdict.ok) {
          this.log(
            `✗ ${name}: cached ${verdict.file} is corrupt (sha256 ${verdict.actual.slice(0, 12)}…, ` +
              `recorded ${verdict.expected.slice(0, 12)}…): rebuilding`,
          );
          await this.store.discard(entry, verdict.actual === "missing" ? undefined : verdict.expected);
          reasons.push(`cached ${verdict.file} was corrupt`);
          entry = undefined;
        }
      }
      let outcome: Outcome;
      if (entry) {
        outcome = previous?.key === key ? "up to date" : "restored";
        this.log(
          outcome === "up to date"
            ? `✓ ${name}: up to date`
            : `✓ ${name}: restored from cache, a run seen before (${reasons.join("; ")})`,
        );
      } else {
        if (ro.force) reasons.unshift("forced");
        if (previous?.key === key && !ro.force) reasons.push("outputs missing from the cache");
        this.log(`▶ ${name}: running (${reasons.join("; ")})`);
        entry = await this.execute(node, key, parts, upstream as Array<readonly [string, RunEntry]>, jobs);
        this.log(`✓ ${name}: done in ${formatDuration(entry.wallSeconds)}${metricsLine(entry.metrics)}`);
        outcome = "ran";
      }
      await this.materialise(node, entry);
      await this.recordLock(name, parts, entry);
      return { stage: name, outcome, reasons, key, entry };
    } finally {
      await release();
    }
  }

  private async execute(
    node: Node,
    key: string,
    parts: KeyParts,
    upstream: Array<readonly [string, RunEntry]>,
    jobs: number,
  ): Promise<RunEntry> {
    const tmp = await this.store.makeTmp(key);
    try {
      const outDir = join(tmp, "out");
      await Deno.mkdir(outDir);
      const inputs: Record<string, string> = {};
      for (const [dep, entry] of upstream) inputs[dep] = await this.inputView(join(tmp, "inputs", dep), entry);
      const checkpointDir = this.store.checkpointDir(key);
      await Deno.mkdir(checkpointDir, { recursive: true });
      const config: WorkerConfig = {
        module: resolve(this.opts.root, node.def.module),
        stage: node.name,
        params: node.params,
        inputs,
        outDir,
        checkpointDir,
        root: this.opts.root,
        jobs,
        memoDir: join(this.store.dir, "memo"),
        memoSalt: sha256(canonicalJson(parts.code)),
        resultFile: join(tmp, "result.json"),
      };
      await Deno.writeTextFile(join(tmp, "worker.json"), JSON.stringify(config));
      const started = new Date();
      const t0 = performance.now();
      const status = await (this.opts.executor ?? new LocalExecutor()).run({
        stage: node.name,
        key,
        configFile: join(tmp, "worker.json"),
        root: this.opts.root,
        jobs,
        resources: node.def.resources,
        taskResources: node.def.taskResources,
        logDir: join(this.store.dir, "logs"),
      }, (worker) => this.store.lockWorker(key, worker));
      const wallSeconds = (performance.now() - t0) / 1000;
      let result: {
        ok: boolean;
        metrics?: Record<string, unknown>;
        record?: Record<string, unknown>;
        what?: string;
        fix?: string;
      };
      try {
        result = JSON.parse(await Deno.readTextFile(config.resultFile));
      } catch {
        if (status.error) throw status.error; // the scheduler ended it: one line with job id, state, log
        result = {
          ok: false,
          what: `stage ${node.name} ended without a result (exit ${status.code}${
            status.signal ? `, ${status.signal}` : ""
          })`,
          fix: "see its output above; rerun to resume from its last checkpoint",
        };
      }
      if (!result.ok) throw new PipelineError(result.what!, result.fix!);
      for (const out of node.def.outputs) {
        if (!(await exists(join(outDir, out)))) {
          throw new PipelineError(
            `stage ${node.name} did not write its declared output ${out}`,
            `write it into ctx.outDir, or fix the outputs of ${node.def.name} in the pipeline declaration`,
          );
        }
      }
      const entry = await this.store.commit(outDir, {
        key,
        stage: node.name,
        params: parts.params,
        inputs: parts.inputs,
        code: parts.code,
        external: parts.external,
        deno: parts.deno,
        metrics: result.metrics ?? {},
        record: result.record ?? {},
        startedAt: started.toISOString(),
        wallSeconds,
      });
      await Deno.remove(checkpointDir, { recursive: true }).catch(() => {});
      return entry;
    } catch (e) {
      if (!(e instanceof PipelineError) && /No space left on device/.test(String(e))) {
        throw new PipelineError(
          `disk full while storing ${node.name}'s outputs`,
          "free disk space (or set PIPELINE_CACHE to a bigger disk) and rerun",
        );
      }
      throw e;
    } finally {
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
    }
  }

  /** A read-only view of an upstream run: symlinks to its files plus _provenance.json. */
  private async inputView(dir: string, entry: RunEntry): Promise<string> {
    for (const rel of Object.keys(entry.outputs)) {
      await Deno.mkdir(dirname(join(dir, rel)), { recursive: true });
      await Deno.symlink(join(this.store.treeDir(entry.key), rel), join(dir, rel));
    }
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeTextFile(join(dir, "_provenance.json"), JSON.stringify(provenance(entry), null, 2));
    return dir;
  }

  /** out/<stage> → the run's files; a published stage's files copied into the project. */
  private async materialise(node: Node, entry: RunEntry) {
    const link = join(this.opts.root, "out", node.name);
    await Deno.mkdir(dirname(link), { recursive: true });
    const tmpLink = `${link}.${Deno.pid}.tmp`;
    await Deno.remove(tmpLink).catch(() => {});
    await Deno.symlink(this.store.treeDir(entry.key), tmpLink);
    await Deno.rename(tmpLink, link);
    const publish = this.opts.publish?.[node.def.name] ?? node.def.publish;
    if (!publish) return;
    for (const rel of Object.keys(entry.outputs)) {
      const dest = join(this.opts.root, publish, rel);
      await Deno.mkdir(dirname(dest), { recursive: true });
      await writeFileAtomic(dest, await Deno.readFile(join(this.store.treeDir(entry.key), rel)));
    }
    await writeFileAtomic(join(this.opts.root, publish, "provenance.json"), JSON.stringify(provenance(entry), null, 2));
  }

  /** Copy the lock file's runs (those without big files) into the remote, to commit with the lock. */
  async push(targets?: string[], maxBytes = 8 << 20): Promise<{ pushed: string[]; skipped: string[] }> {
    const lock = await this.readLock();
    const names = targets?.length ? targets.flatMap((t) => this.graph.resolve(t)) : Object.keys(lock.stages);
    const pushed: string[] = [];
    const skipped: string[] = [];
    for (const name of names) {
      const key = lock.stages[name]?.key;
      const entry = key ? await this.store.readEntry(key) : undefined;
      if (entry && (await this.store.verify(entry)).ok && (await this.store.push(entry, maxBytes))) pushed.push(name);
      else skipped.push(name);
    }
    return { pushed, skipped };
  }

  /** For each selected stage: up to date, restorable, or stale and exactly why. */
  async status(targets?: string[]): Promise<StageResult[]> {
    const names = targets?.length
      ? this.graph.upstreamClosure(targets.flatMap((t) => this.graph.resolve(t)))
      : this.graph.order;
    const lock = await this.readLock();
    const known = new Map<string, RunEntry>();
    const out: StageResult[] = [];
    for (const name of names) {
      const node = this.graph.nodes.get(name)!;
      const staleDeps = node.deps.filter((d) => !known.has(d));
      if (staleDeps.length) {
        out.push({
          stage: name,
          outcome: "would run",
          reasons: [`upstream ${staleDeps.join(", ")} ${staleDeps.length > 1 ? "are" : "is"} stale`],
        });
        continue;
      }
      let parts: KeyParts;
      try {
        parts = await this.keyParts(node, Object.fromEntries(node.deps.map((d) => [d, known.get(d)!.outputsHash])));
      } catch (e) {
        if (!(e instanceof PipelineError)) throw e;
        out.push({ stage: name, outcome: "would run", reasons: [e.message] });
        continue;
      }
      const key = sha256(canonicalJson({ v: 1, ...parts }));
      const entry = await this.store.readEntry(key);
      const reasons = explain(lock.stages[name], parts);
      if (entry && (await this.store.verify(entry)).ok) {
        known.set(name, entry);
        out.push({
          stage: name,
          outcome: lock.stages[name]?.key === key ? "up to date" : "would restore",
          reasons,
          key,
          entry,
        });
      } else {
        const who = await this.store.holder(key);
        if (who) reasons.push(`being built now by ${who}`);
        out.push({
          stage: name,
          outcome: "would run",
          reasons: reasons.length ? reasons : ["outputs missing from the cache"],
          key,
        });
      }
    }
    await this.store.stats.save();
    return out;
  }
}

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
    if (previous.inputs[d] !== now.inputs[d]) reasons.push(`input ${d} changed`);
  }
  if (previous.deno !== now.deno) reasons.push(`Deno ${previous.deno} → ${now.deno}`);
  if (canonicalJson(previous.external) !== canonicalJson(now.external)) {
    const added = now.external.filter((x) => !previous.external.includes(x));
    reasons.push(`packages changed: ${added.join(", ") || "some removed"}`);
  }
  return reasons;
}

function provenance(entry: RunEntry) {
  return {
    stage: entry.stage,
    key: entry.key,
    params: entry.params,
    code_hash: sha256(canonicalJson(entry.code)),
    code: entry.code,
    inputs: entry.inputs,
    outputs: Object.fromEntries(Object.entries(entry.outputs).map(([f, o]) => [f, o.hash])),
    deno: entry.deno,
    npm: entry.external.filter((x) => x.startsWith("npm:")),
    started: entry.startedAt,
    wall_s: entry.wallSeconds,
    metrics: entry.metrics,
    record: entry.record ?? {},
  };
}

function metricsLine(metrics: Record<string, unknown>): string {
  const parts = Object.entries(metrics)
    .filter(([, v]) => typeof v === "number" || typeof v === "string")
    .slice(0, 6)
    .map(([k, v]) => `${k} ${typeof v === "number" ? +v.toPrecision(4) : v}`);
  return parts.length ? ` · ${parts.join(" · ")}` : "";
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}
