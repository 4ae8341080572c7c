// The engine: cache keys, what is stale and why, running stages in worker
// processes (in parallel where the graph allows), restoring cached runs,
// publishing outputs and keeping the lock file.
import { dirname, join, resolve } from "node:path";
import { type KeyParts, listFiles, type RunEntry, Store } from "./cache.ts";
import { DiskFull, isDiskFull } from "./faults.ts";
import { Graph, type Node, type Override } from "./graph.ts";
import { canonicalJson, sha256, writeFileAtomic } from "./hash.ts";
import { type Closure, importClosure, readImportMap } from "./imports.ts";
import { formatDuration } from "./progress.ts";
import { type Executor, LocalExecutor } from "./executor.ts";
import { openRemotes } from "./remote.ts";
import { PipelineError, type StageDef } from "./types.ts";
import { describeDifference, firstDifference } from "./verify.ts";
import { RESULT_RESERVE, type WorkerConfig } from "./worker.ts";

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
}

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
}

export interface LockStage extends KeyParts {
  key: string;
  outputs: Record<string, string>;
  /** What downstream keys depend on (older lock files lack it: see lockedOutputsHash). */
  outputsHash?: string;
  metrics: Record<string, unknown>;
  wallSeconds: number;
  ranAt: string;
  /** Set when `accept` carried a run over a code change: from which key, verified how far, when. */
  accepted?: Accepted;
}

export interface Accepted {
  from: string;
  /** Steps re-executed and found bit-identical ("all": every output; "curve": the whole training curve). */
  verifiedSteps: number | "all" | "curve";
  at: string;
}

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

export interface LockFile {
  version: 1;
  stages: Record<string, LockStage>;
}

/** One vocabulary for status, --dry-run, dag and reproduce: what is (or would be) done to a stage. */
export type Action = "run" | "restore from cache" | "restore from remote" | "up to date";
/** With --keep-going: a stage that failed, or that was not tried because an upstream stage failed. */
export type Outcome = Action | "failed" | "skipped";

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
    const remotes = await openRemotes(opts.root, opts.remote ?? join(opts.root, "pipeline", "remote"), opts.remoteUrl);
    const store = await Store.open(resolve(opts.root, cacheDir), remotes);
    const engine = new Engine(opts, graph, store, opts.lockFile ?? join(opts.root, "pipeline", "lock.json"));
    store.warn = (line) => engine.log(line);
    return engine;
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
          return importClosure(this.opts.root, module, this.store.stats, this.store.code, this.importMap);
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
      // Transport-only parameters (where to fetch from) are not part of what a run is.
      params: Object.fromEntries(Object.entries(node.params).filter(([k]) => !node.def.params[k]?.transport)),
      inputs,
      code: closure.files,
      external: closure.external,
      deno: Deno.version.deno,
    };
  }

  private lockWarned = false;

  async readLock(): Promise<LockFile> {
    let text: string;
    try {
      text = await Deno.readTextFile(this.lockFile);
    } catch {
      return { version: 1, stages: {} };
    }
    try {
      const lock = JSON.parse(text);
      if (lock?.stages && typeof lock.stages === "object" && !Array.isArray(lock.stages)) return lock;
    } catch { /* named below */ }
    if (!this.lockWarned) {
      this.log(`✗ ${this.lockFile} is corrupt (not a lock file): ignoring it; a reproduce rewrites it from the cache`);
      this.lockWarned = true;
    }
    return { version: 1, stages: {} };
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
        outputsHash: entry.outputsHash,
        metrics: entry.metrics,
        wallSeconds: entry.wallSeconds,
        ranAt: entry.startedAt,
        ...(entry.record?.accepted ? { accepted: entry.record.accepted as Accepted } : {}),
      };
      lock.stages = Object.fromEntries(Object.entries(lock.stages).sort(([a], [b]) => (a < b ? -1 : 1)));
      await Deno.mkdir(dirname(this.lockFile), { recursive: true });
      await writeFileAtomic(this.lockFile, JSON.stringify(lock, null, 2) + "\n");
    } finally {
      await release();
    }
  }

  /** Run what is stale, restore what is cached, in dependency order (with dryRun: only say what it would do). */
  async reproduce(ro: ReproduceOptions = {}): Promise<StageResult[]> {
    this.store.assertWritable();
    const targets = this.targets(ro.targets);
    const selected = ro.single
      ? this.graph.order.filter((n) => targets.includes(n))
      : this.graph.upstreamClosure(targets);
    if (ro.dryRun) return await this.plan(selected, ro);
    await this.store.gcTmp();
    try {
      return await this.run(selected, ro);
    } finally {
      await this.store.clearInUse();
    }
  }

  private targets(targets?: string[]): string[] {
    return (targets?.length ? targets : this.graph.defs.map((d) => d.name)).flatMap((t) => this.graph.resolve(t));
  }

  /** --force applies to the stages named (all when none is): a user who names one stage means that one. */
  private forced(ro: ReproduceOptions): Set<string> {
    return new Set(ro.force ? this.targets(ro.targets) : []);
  }

  private async run(selected: string[], ro: ReproduceOptions): Promise<StageResult[]> {
    const lock = await this.readLock();
    const done = new Map<string, RunEntry>();
    const absent = new Set<string>();
    if (ro.single) {
      for (const [dep, forStage] of outsideDeps(this.graph, selected)) {
        const entry = await this.lockedEntry(dep, forStage, lock, ro.partial, true);
        if (entry) done.set(dep, entry);
        else absent.add(dep);
      }
      if (absent.size) this.log(`… running without ${[...absent].join(", ")}: not in the cache yet`);
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
        const deps = this.graph.nodes.get(name)!.deps.filter((d) => !absent.has(d));
        const broken = deps.filter((d) => failed.has(d));
        if (broken.length) { // --keep-going: what needs a failed stage is not tried
          pending.splice(i, 1);
          failed.add(name);
          results.push({ stage: name, outcome: "skipped", reasons: [`upstream ${broken.join(", ")} failed`] });
          this.log(`✗ ${name}: skipped (upstream ${broken.join(", ")} failed)`);
          continue;
        }
        if (!deps.every((d) => done.has(d))) {
          i++;
          continue;
        }
        pending.splice(i, 1);
        const task = this.processNode(name, done, ro, lock, jobs, absent)
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
            this.log(`✗ ${name}: failed: ${why}`);
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

  /**
   * What reproduce would do, changing nothing (status, --dry-run, dag). A stage that would run
   * with the key of its last recorded run is predicted to give that run's outputs again, so its
   * downstream is predicted through them (on a fresh clone: data rebuilt, training restored).
   */
  private async plan(selected: string[], ro: ReproduceOptions): Promise<StageResult[]> {
    const lock = await this.readLock();
    const known = new Map<string, Predicted | undefined>(); // node → its outputs (and record), if predictable
    const absent = new Set<string>();
    if (ro.single) {
      for (const [dep, forStage] of outsideDeps(this.graph, selected)) {
        const entry = await this.lockedEntry(dep, forStage, lock, ro.partial, false);
        if (entry) known.set(dep, entry);
        else absent.add(dep);
      }
    }
    const forced = this.forced(ro);
    const out: StageResult[] = [];
    for (const name of selected) {
      const node = this.graph.nodes.get(name)!;
      const deps = node.deps.filter((d) => !absent.has(d));
      const unknown = deps.filter((d) => known.get(d) === undefined);
      if (unknown.length) {
        known.set(name, undefined);
        const are = unknown.length > 1 ? "are" : "is";
        const list = unknown.length > 4
          ? `${unknown.slice(0, 3).join(", ")} and ${unknown.length - 3} more`
          : unknown.join(", ");
        out.push({ stage: name, outcome: "run", reasons: [`upstream ${list} ${are} stale`] });
        continue;
      }
      let parts: KeyParts;
      try {
        parts = await this.keyParts(node, Object.fromEntries(deps.map((d) => [d, inputHash(node, known.get(d)!)])));
      } catch (e) {
        if (!(e instanceof PipelineError)) throw e;
        known.set(name, undefined);
        out.push({ stage: name, outcome: "run", reasons: [e.message] });
        continue;
      }
      const key = keyOf(parts);
      const previous = lock.stages[name];
      const reasons = explain(previous, parts);
      let entry = await this.store.readEntry(key);
      let outcome: Action;
      if (entry) {
        const verdict = await this.store.verify(entry);
        if (!verdict.ok) {
          reasons.push(`cached ${verdict.file} is corrupt`);
          entry = undefined;
        }
      }
      if (entry) outcome = previous?.key === key ? "up to date" : "restore from cache";
      else if ((entry = await this.store.remoteEntry(key))) outcome = "restore from remote";
      else outcome = "run";
      if (forced.has(name)) {
        outcome = "run";
        reasons.unshift("forced");
      } else if (outcome === "run") {
        if (previous?.key === key) reasons.push("outputs missing from the cache");
        const who = await this.store.holder(key);
        if (who) reasons.push(`being built now by ${who}`);
      }
      const again = previous?.key === key ? lockedOutputsHash(lock, name) : undefined; // a rerun gives these again
      known.set(name, entry ?? (again ? { outputsHash: again } : undefined));
      out.push({ stage: name, outcome, reasons, key, entry });
    }
    return out;
  }

  /** For --single: the cached outputs of an upstream stage the lock file names (undefined: absent, if allowed). */
  private async lockedEntry(
    dep: string,
    forStage: string,
    lock: LockFile,
    allowAbsent: boolean | undefined,
    restore: boolean,
  ): Promise<RunEntry | undefined> {
    const key = lock.stages[dep]?.key;
    let entry = key ? await this.store.readEntry(key) : undefined;
    if (entry && !(await this.store.verify(entry)).ok) entry = undefined;
    if (key && !entry) entry = restore ? await this.store.fetch(key) : await this.store.remoteEntry(key);
    if (!entry) {
      if (allowAbsent) return undefined;
      throw new PipelineError(
        `${forStage} needs the outputs of ${dep}, which are not in the cache`,
        `run \`deno task reproduce ${dep}\` first (or drop --single)`,
      );
    }
    if (restore) await this.store.markInUse(entry.key);
    return entry;
  }

  private async processNode(
    name: string,
    done: Map<string, RunEntry>,
    ro: ReproduceOptions,
    lock: LockFile,
    jobs: number,
    absent: Set<string>,
  ): Promise<StageResult> {
    const node = this.graph.nodes.get(name)!;
    const upstream = node.deps.filter((d) => !absent.has(d)).map((d) => [d, done.get(d)!] as const);
    const inputs = Object.fromEntries(upstream.map(([d, e]) => [d, inputHash(node, e)]));
    const parts = await this.keyParts(node, inputs);
    const key = keyOf(parts);
    const previous = lock.stages[name];
    const reasons = explain(previous, parts);
    const release = await this.store.lock(
      key,
      (who) => this.log(`… ${name}: waiting for another reproduce (${who}) that is building it`),
    );
    try {
      await this.store.markInUse(key); // gc keeps it while we live
      const forced = this.forced(ro).has(name);
      let entry = forced ? undefined : await this.store.readEntry(key);
      if (entry) {
        const verdict = await this.store.verify(entry);
        if (!verdict.ok) {
          this.log(
            `✗ ${name}: cached ${verdict.file} is corrupt (sha256 ${verdict.actual.slice(0, 12)}…, ` +
              `recorded ${verdict.expected.slice(0, 12)}…): rebuilding`,
          );
          await this.store.discard(entry, verdict.actual === "missing" ? undefined : verdict.expected);
          reasons.push(`cached ${verdict.file} is corrupt`);
          entry = undefined;
        }
      }
      let outcome: Outcome;
      const why = reasons.length ? ` (${reasons.join("; ")})` : "";
      if (entry) {
        outcome = previous?.key === key ? "up to date" : "restore from cache";
        this.log(outcome === "up to date" ? `✓ ${name}: up to date` : `✓ ${name}: restored from cache${why}`);
      } else if (!forced && (entry = await this.store.fetch(key))) {
        outcome = "restore from remote";
        this.log(`✓ ${name}: restored from remote${why}`);
      } else {
        const before = forced ? await this.store.readEntry(key) : undefined;
        if (forced) reasons.unshift("forced");
        if (previous?.key === key && !forced) reasons.push("outputs missing from the cache");
        this.log(`▶ ${name}: running (${reasons.join("; ")})`);
        entry = await this.execute(node, key, parts, upstream, jobs, before);
        this.log(`✓ ${name}: done in ${formatDuration(entry.wallSeconds)}${metricsLine(entry.metrics)}`);
        outcome = "run";
      }
      await this.materialise(node, entry);
      await this.recordLock(name, parts, entry);
      return { stage: name, outcome, reasons, key, entry };
    } finally {
      await release();
    }
  }

  /**
   * Run a stage in a worker process and commit its outputs. With `expect` (a `--force` rerun
   * of a cached key), outputs that differ from the cached run are a determinism bug: refused,
   * named, and the cache keeps the run it had.
   */
  private async execute(
    node: Node,
    key: string,
    parts: KeyParts,
    upstream: Array<readonly [string, RunEntry]>,
    jobs: number,
    expect?: RunEntry,
  ): Promise<RunEntry> {
    const tmp = await this.store.makeTmp(key);
    try {
      const checkpointDir = this.store.checkpointDir(key);
      const run = await this.launch(node, parts, upstream, jobs, tmp, {
        checkpointDir,
        memoDir: join(this.store.dir, "memo"),
        lockKey: key,
      });
      if (expect) {
        const d = await firstDifference(
          this.store.treeDir(expect.key),
          Object.keys(expect.outputs),
          run.outDir,
          compareUpTo(expect),
        );
        if (d) {
          throw new PipelineError(
            `${node.name}: NOT DETERMINISTIC — rerunning the cached key ${key.slice(0, 12)}… gave other outputs: ` +
              describeDifference(d),
            "this is a bug in the stage or its kernels (same code, parameters and inputs must give the same bits); " +
              "the cache keeps the earlier run",
          );
        }
      }
      const entry = await this.store.commit(run.outDir, {
        key,
        stage: node.name,
        params: parts.params,
        inputs: parts.inputs,
        code: parts.code,
        external: parts.external,
        deno: parts.deno,
        metrics: run.metrics,
        record: run.record,
        startedAt: run.startedAt,
        wallSeconds: run.wallSeconds,
      });
      await Deno.remove(checkpointDir, { recursive: true }).catch(() => {});
      return entry;
    } catch (e) {
      if (!(e instanceof PipelineError) && isDiskFull(e)) {
        let bytes = 0; // what the outputs need in the cache
        for (const rel of await listFiles(tmp).catch(() => [])) bytes += (await Deno.stat(join(tmp, rel))).size;
        throw new DiskFull(this.store.dir, bytes || undefined);
      }
      throw e;
    } finally {
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
    }
  }

  /** Run a stage's module in a worker process, writing into tmp/out; its metrics and record, or its error. */
  private async launch(
    node: Node,
    parts: KeyParts,
    upstream: Array<readonly [string, RunEntry]>,
    jobs: number,
    tmp: string,
    where: { checkpointDir: string; memoDir: string; stopAfterSteps?: number; lockKey?: string },
  ) {
    const outDir = join(tmp, "out");
    await Deno.mkdir(outDir);
    const inputs: Record<string, string> = {};
    for (const [dep, entry] of upstream) inputs[dep] = await this.inputView(join(tmp, "inputs", dep), entry);
    await Deno.mkdir(where.checkpointDir, { recursive: true });
    await Deno.mkdir(where.memoDir, { recursive: true });
    const config: WorkerConfig = {
      module: resolve(this.opts.root, node.def.module),
      stage: node.name,
      params: node.params,
      inputs,
      outDir,
      checkpointDir: where.checkpointDir,
      root: this.opts.root,
      jobs,
      memoDir: where.memoDir,
      memoSalt: sha256(canonicalJson(parts.code)),
      resultFile: join(tmp, "result.json"),
      stopAfterSteps: where.stopAfterSteps,
    };
    await Deno.writeTextFile(join(tmp, "worker.json"), JSON.stringify(config));
    await Deno.writeTextFile(config.resultFile, " ".repeat(RESULT_RESERVE)); // see writeResult in worker.ts
    const started = new Date();
    const t0 = performance.now();
    const status = await (this.opts.executor ?? new LocalExecutor()).run({
      stage: node.name,
      key: where.lockKey ?? `verify-${parts.stage}`,
      configFile: join(tmp, "worker.json"),
      root: this.opts.root,
      jobs,
      resources: node.def.resources,
      taskResources: node.def.taskResources,
      logDir: join(this.store.dir, "logs"),
    }, (worker) => where.lockKey ? this.store.lockWorker(where.lockKey, worker) : Promise.resolve());
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
    if (where.stopAfterSteps === undefined) {
      for (const out of node.def.outputs) {
        if (!(await exists(join(outDir, out)))) {
          throw new PipelineError(
            `stage ${node.name} did not write its declared output ${out}`,
            `write it into ctx.outDir, or fix the outputs of ${node.def.name} in the pipeline declaration`,
          );
        }
      }
    }
    return {
      outDir,
      metrics: result.metrics ?? {},
      record: { ...result.record, stageSeconds: wallSeconds },
      startedAt: started.toISOString(),
      wallSeconds,
    };
  }

  /** A stage's key now (current code and parameters) over the upstream runs the lock names. */
  private async current(name: string, lock: LockFile) {
    const node = this.graph.nodes.get(name)!;
    const upstream: Array<readonly [string, RunEntry]> = [];
    for (const dep of node.deps) upstream.push([dep, (await this.lockedEntry(dep, name, lock, false, true))!] as const);
    const parts = await this.keyParts(node, Object.fromEntries(upstream.map(([d, e]) => [d, inputHash(node, e)])));
    return { node, upstream, parts, key: keyOf(parts) };
  }

  /**
   * `reproduce --verify`: re-execute stages from their cached inputs in a scratch directory
   * and compare every output (or, with `steps`, the training curve up to that step) with the
   * cached run. Touches neither the cache nor the lock.
   */
  async verify(targets?: string[], steps?: number, jobs = 1): Promise<VerifyResult[]> {
    const lock = await this.readLock();
    const names = targets?.length ? targets.flatMap((t) => this.graph.resolve(t)) : this.graph.order;
    const results: VerifyResult[] = [];
    for (const name of names) {
      const { node, upstream, parts, key } = await this.current(name, lock);
      const cached = await this.store.readOrFetch(key);
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
      results.push(await this.rerunAndCompare(node, parts, upstream, cached, steps, jobs));
    }
    return results;
  }

  /**
   * `accept`: a stage stale only because its code changed gets its cached run carried over to
   * the new key — after re-executing it (the first `steps`, default: up to its first evaluation;
   * the whole stage when it took under a minute) with the new code and finding it bit-identical.
   */
  async accept(targets?: string[], steps?: number, jobs = 1): Promise<VerifyResult[]> {
    this.store.assertWritable();
    const named = targets?.length ? targets.flatMap((t) => this.graph.resolve(t)) : undefined;
    const results: VerifyResult[] = [];
    for (const name of this.graph.order.filter((n) => !named || named.includes(n))) {
      if (!named && !(await this.readLock()).stages[name]) continue; // never run: nothing to carry over
      try {
        const verdict = await this.acceptOne(name, steps, jobs);
        if (verdict) results.push(verdict);
      } catch (e) {
        if (!(e instanceof PipelineError)) throw e;
        // One refused stage does not stop the others (its downstream still compares with its old run).
        this.log(`✗ ${e.message} — ${e.fix}`);
        results.push({ stage: name, key: "", identical: false, steps: "all", refused: e.message });
      }
    }
    return results;
  }

  /** Accept one stage: undefined when there was nothing to verify (up to date, or the new key cached already). */
  private async acceptOne(name: string, steps: number | undefined, jobs: number): Promise<VerifyResult | undefined> {
    const lock = await this.readLock(); // re-read: accepting upstream stages updates it
    const { node, upstream, parts, key } = await this.current(name, lock);
    const previous = lock.stages[name];
    if (previous?.key === key) {
      this.log(`✓ ${name}: up to date, nothing to accept`);
      return;
    }
    const already = await this.store.readOrFetch(key);
    if (already && (await this.store.verify(already)).ok) {
      await this.recordLock(name, parts, already);
      this.log(`✓ ${name}: a run of the new key is cached already; the lock now names it`);
      return;
    }
    const old = previous && await this.store.readOrFetch(previous.key);
    if (!previous || !old || !(await this.store.verify(old)).ok) {
      throw new PipelineError(
        `${name}: no cached run of its previous key to accept`,
        `run \`deno task reproduce ${name}\``,
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
        `run \`deno task reproduce ${name}\` to train it with these settings`,
      );
    }
    // A training stage is compared on its curve (results, not the timings older runs kept beside
    // them): up to its first evaluation, or all of it when the stage took under a minute.
    const evals = await evalSteps(this.store.treeDir(old.key), old);
    const n = steps ?? (evals && (old.wallSeconds < 60 ? evals.last : evals.first));
    this.log(`… ${name}: re-executing ${n === undefined ? "the whole stage" : `its first ${n} steps`} to compare`);
    const verdict = await this.rerunAndCompare(node, parts, upstream, old, n, jobs);
    if (!verdict.identical) {
      throw new PipelineError(
        `${name}: not accepted — the new code gives other results: ${verdict.difference}`,
        `run \`deno task reproduce ${name}\` to train it again (or undo the change)`,
      );
    }
    const accepted: Accepted = { from: old.key, verifiedSteps: verdict.steps, at: new Date().toISOString() };
    const release = await this.store.lock(key, () => {});
    try {
      const entry = await this.store.relink(old, {
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
      await this.materialise(node, entry);
      await this.recordLock(name, parts, entry);
    } finally {
      await release();
    }
    this.log(
      `✓ ${name}: accepted (bit-identical over ${
        verdict.steps === "all" ? "the whole stage" : `${verdict.steps} steps`
      })`,
    );
    return verdict;
  }

  private async rerunAndCompare(
    node: Node,
    parts: KeyParts,
    upstream: Array<readonly [string, RunEntry]>,
    cached: RunEntry,
    steps: number | undefined,
    jobs: number,
  ): Promise<VerifyResult> {
    const tmp = await this.store.makeTmp(`verify-${cached.key}`);
    try {
      const run = await this.launch(node, parts, upstream, jobs, tmp, {
        checkpointDir: join(tmp, "checkpoints"), // never resume, never reuse memoised work: compute it all again
        memoDir: join(tmp, "memo"),
        stopAfterSteps: steps,
      });
      const files = Object.keys(cached.outputs);
      const partial = steps !== undefined && files.includes("history.json");
      const d = await firstDifference(this.store.treeDir(cached.key), files, run.outDir, compareUpTo(cached, steps));
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

  /**
   * Copy the lock file's runs into the last remote (the shared one if set, else the committed
   * folder, which takes only runs without big files). Returns the stages the remote now holds.
   */
  async push(
    targets?: string[],
    remote = this.store.remotes.at(-1)!,
  ): Promise<{ pushed: string[]; skipped: string[] }> {
    const lock = await this.readLock();
    const names = targets?.length ? targets.flatMap((t) => this.graph.resolve(t)) : Object.keys(lock.stages);
    const entries = new Map<string, RunEntry>();
    for (const name of names) {
      const key = lock.stages[name]?.key;
      const entry = key ? await this.store.readEntry(key) : undefined;
      if (entry && (await this.store.verify(entry)).ok) entries.set(name, entry);
    }
    const held = await remote.push([...entries.values()], (h) => this.store.objectPath(h));
    const pushed = names.filter((n) => held.has(entries.get(n)?.key ?? ""));
    return { pushed, skipped: names.filter((n) => !pushed.includes(n)) };
  }

  /** Restore the lock file's runs from the remotes into the cache and link out/<stage> (like `dvc pull`). */
  async pull(targets?: string[]): Promise<{ pulled: string[]; missing: string[] }> {
    await this.store.gcTmp(); // partial downloads of a killed pull
    const lock = await this.readLock();
    const names = targets?.length
      ? targets.flatMap((t) => this.graph.resolve(t))
      : Object.keys(lock.stages).filter((n) => this.graph.nodes.has(n)); // a stage since removed: nothing to link
    const got = await Promise.all(names.map(async (name) => {
      const key = lock.stages[name]?.key;
      const entry = key ? await this.store.readOrFetch(key) : undefined;
      if (!entry || !(await this.store.verify(entry)).ok) return false;
      await this.materialise(this.graph.nodes.get(name)!, entry);
      return true;
    }));
    await this.store.stats.save();
    return { pulled: names.filter((_, i) => got[i]), missing: names.filter((_, i) => !got[i]) };
  }

  /** For each selected stage (and its upstream): what reproduce would do and exactly why; changes nothing. */
  async status(targets?: string[]): Promise<StageResult[]> {
    const names = targets?.length ? this.graph.upstreamClosure(this.targets(targets)) : this.graph.order;
    return await this.plan(names, {});
  }
}

/** For --single: upstream stages outside the selection, each with a selected stage that needs it. */
function outsideDeps(graph: Graph, selected: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const name of selected) {
    for (const dep of graph.nodes.get(name)!.deps) if (!selected.includes(dep) && !out.has(dep)) out.set(dep, name);
  }
  return out;
}

/**
 * A stage's outputs hash as the lock records it; older lock files lack the field, so fall back
 * to the inputs their downstream stages record, when those agree.
 */
export function lockedOutputsHash(lock: LockFile, name: string): string | undefined {
  if (lock.stages[name]?.outputsHash) return lock.stages[name].outputsHash;
  const seen = new Set(Object.values(lock.stages).map((s) => s.inputs[name]).filter(Boolean));
  return seen.size === 1 ? [...seen][0] : undefined;
}

/**
 * What a stage depends on of an upstream run: its outputs, and its record too for a stage
 * that shows records (the report's costs and environment), so such a stage is never
 * restored with another run's facts.
 */
function inputHash(node: Node, upstream: Predicted): string {
  if (!node.def.readsRecords) return upstream.outputsHash;
  // The record of a stage that will rerun is not known yet: no cached run can match.
  if (!("key" in upstream)) return "record not known yet";
  return sha256(upstream.outputsHash + canonicalJson(upstream.record ?? {}));
}

/** What downstream keys need of an upstream run: a cached run, or outputs a rerun is predicted to give again. */
type Predicted = RunEntry | { outputsHash: string };

/** A run's cache key: the hash of everything its outputs may depend on. */
export function keyOf(parts: KeyParts): string {
  return sha256(canonicalJson({ v: 2, ...parts }));
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

/**
 * How far to compare a rerun with a cached run: every byte (undefined), or its training curve up
 * to `steps`. A run carried over by accept holds the outputs of older code (its curve verified,
 * its bytes not the current code's): it is compared on its whole curve.
 */
function compareUpTo(cached: RunEntry, steps?: number): number | undefined {
  if (!cached.outputs["history.json"]) return undefined;
  return steps ?? (cached.record?.accepted ? Infinity : undefined);
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
