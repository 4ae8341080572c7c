// `exp`: every run of a stage the cache or the committed remote holds (like
// `dvc exp show`): a `--set` run is cached under its key, this makes it visible. Experiments
// (runs made with --set or a profile) are recorded in the cache's journal, not in
// pipeline/lock.json: `exp push KEY` shares one, `exp apply KEY` makes one the study's run.
import { join } from "node:path";
import type { RunEntry } from "../store/cache.ts";
import { isCorrupt } from "../store/entry.ts";
import type { Engine } from "../engine/engine.ts";
import { type ExperimentRecord, experimentsJournal } from "../engine/lockfile.ts";
import { formatDuration } from "../terminal/progress.ts";
import { readParamsFile } from "../engine/params.ts";
import { table } from "../terminal/style.ts";
import { type ParamValue, PipelineError, type Profile } from "../types.ts";
import { writeFileAtomic } from "../store/hash.ts";

export interface ExpRun {
  stage: string;
  key: string;
  where: Array<"cache" | "remote">;
  /** The run the lock file records for its stage. */
  current: boolean;
  /** Parameters that differ from the stage's declared defaults (a variant's settings show here). */
  changed: Record<string, ParamValue>;
  metrics: Record<string, unknown>;
  startedAt: string;
  wallSeconds: number;
  /** Recorded as an experiment (journal): how it was made. */
  experiment?: { set: string[]; profile?: string };
  /** The profile whose settings it ran with (e.g. smoke: tiny synthetic data), if any. */
  profile?: string;
  /** Other keys of the same run (the same outputs: e.g. a run `accept` carried over), shown once. */
  aliases: string[];
}

/** The cache's experiment journal: key → how each experiment run was made (the latest line wins). */
export async function readJournal(cacheDir: string): Promise<Map<string, ExperimentRecord>> {
  const out = new Map<string, ExperimentRecord>();
  const text = await Deno.readTextFile(experimentsJournal(cacheDir)).catch(() => "");
  for (const line of text.split("\n")) {
    try {
      const r = JSON.parse(line) as ExperimentRecord;
      if (r?.key) out.set(r.key, r);
    } catch { /* a blank or torn line */ }
  }
  return out;
}

/**
 * The profile each run was made with, from its parameters (every setting the profile makes for its
 * stage, one at least not the default) or its inputs (an upstream run of the profile: its data).
 */
function profilesOf(
  engine: Engine,
  entries: RunEntry[],
  profiles: Record<string, Profile>,
): Map<string, string> {
  const out = new Map<string, string>();
  const byOutputs = new Map<string, string>(); // outputsHash → profile
  const sorted = [...entries].sort((a, b) =>
    (engine.graph.order.indexOf(a.stage) >>> 0) - (engine.graph.order.indexOf(b.stage) >>> 0)
  );
  for (let pass = 0; pass < 2; pass++) {
    for (const e of sorted) {
      if (out.has(e.key)) continue;
      const base = e.stage.replace(/\+s\d+$/, "");
      const def = engine.graph.nodes.get(e.stage)?.def;
      let found: string | undefined;
      for (const [name, p] of Object.entries(profiles)) {
        const mine = Object.entries(p.set).filter(([where]) => {
          const target = where.slice(0, where.lastIndexOf("."));
          return target === e.stage || target === base || target === base.split("@")[0];
        }).map(([where, v]) => [where.slice(where.lastIndexOf(".") + 1), v] as const);
        const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
        if (
          mine.length && mine.every(([k, v]) => same(e.params[k], v)) &&
          mine.some(([k, v]) => !same(def?.params[k]?.default, v))
        ) found = name;
      }
      found ??= Object.values(e.inputs).map((h) => byOutputs.get(h)).find(Boolean);
      if (found) {
        out.set(e.key, found);
        byOutputs.set(e.outputsHash, found);
      }
    }
  }
  return out;
}

/** Every run entry in the cache and the remote, by key (a run in both: once, in both places). */
export async function allRuns(engine: Engine): Promise<Map<string, { entry: RunEntry; where: ExpRun["where"] }>> {
  const out = new Map<string, { entry: RunEntry; where: ExpRun["where"] }>();
  const places: Array<[ExpRun["where"][number], string | undefined]> = [
    ["cache", engine.store.dir],
    ["remote", engine.store.folderRemote],
  ];
  for (const [where, dir] of places) {
    if (!dir) continue;
    for (const file of await jsonFiles(join(dir, "runs"))) {
      const key = file.slice(0, -".json".length);
      const known = out.get(key);
      if (known) {
        known.where.push(where);
        continue;
      }
      try {
        out.set(key, { entry: JSON.parse(await Deno.readTextFile(join(dir, "runs", file))), where: [where] });
      } catch { /* a run being written or damaged: not listed */ }
    }
  }
  return out;
}

export async function listRuns(
  engine: Engine,
  target?: string,
  sort?: string,
  profiles: Record<string, Profile> = {},
): Promise<ExpRun[]> {
  const wanted = target ? new Set(engine.graph.resolve(target)) : undefined;
  const lock = await engine.readLock();
  const journal = await readJournal(engine.store.dir);
  const every = await allRuns(engine);
  const profileOf = profilesOf(engine, [...every.values()].map((r) => r.entry), profiles);
  // The same run under several keys (same stage, same outputs): one row, the others as aliases.
  const groups = Map.groupBy([...every], ([, { entry }]) => `${entry.stage} ${entry.outputsHash}`);
  const runs: ExpRun[] = [];
  for (const group of groups.values()) {
    // The row's key: the lock's run if it is one, else the newest.
    group.sort(([ka, a], [kb, b]) =>
      Number(lock.stages[b.entry.stage]?.key === kb) - Number(lock.stages[a.entry.stage]?.key === ka) ||
      b.entry.startedAt.localeCompare(a.entry.startedAt)
    );
    const [key, { entry }] = group[0];
    const where = [...new Set(group.flatMap(([, r]) => r.where))].sort() as ExpRun["where"];
    if (wanted && !wanted.has(entry.stage)) continue;
    const def = engine.graph.nodes.get(entry.stage)?.def;
    const changed = Object.fromEntries(
      Object.entries(entry.params).filter(([k, v]) => JSON.stringify(v) !== JSON.stringify(def?.params[k]?.default)),
    );
    runs.push({
      stage: entry.stage,
      key,
      where,
      current: lock.stages[entry.stage]?.key === key,
      changed,
      metrics: entry.metrics,
      startedAt: entry.startedAt,
      wallSeconds: entry.wallSeconds,
      ...(() => {
        const j = group.map(([k]) => journal.get(k)).find(Boolean);
        return j ? { experiment: { set: j.set, ...(j.profile ? { profile: j.profile } : {}) } } : {};
      })(),
      ...(() => {
        const p = group.map(([k]) => profileOf.get(k) ?? journal.get(k)?.profile).find(Boolean);
        return p ? { profile: p } : {};
      })(),
      aliases: group.slice(1).map(([k]) => k),
    });
  }
  const position = new Map(engine.graph.order.map((n, i) => [n, i]));
  runs.sort((a, b) =>
    (position.get(a.stage) ?? 1e9) - (position.get(b.stage) ?? 1e9) || a.startedAt.localeCompare(b.startedAt)
  );
  if (sort) {
    // METRIC: highest first; METRIC:asc lowest first (e.g. a loss). Runs without it go last.
    const [metric, order] = sort.split(":");
    const sign = order === "asc" ? 1 : -1;
    const value = (r: ExpRun) => typeof r.metrics[metric] === "number" ? r.metrics[metric] as number : undefined;
    // A profile's runs (the smoke profile's 100% on tiny data) after the study's settings.
    runs.sort((a, b) => {
      const [x, y] = [value(a), value(b)];
      return Number(!!a.profile) - Number(!!b.profile) ||
        (x === undefined ? (y === undefined ? 0 : 1) : y === undefined ? -1 : sign * (x - y));
    });
  }
  return runs;
}

/** One table per stage: its metrics differ from stage to stage. */
export function formatRuns(runs: ExpRun[], color = false): string {
  if (!runs.length) return "no runs in the cache or the remote";
  const byDef = new Map<string, ExpRun[]>();
  for (const r of runs) {
    const def = r.stage.split("@")[0];
    byDef.set(def, [...(byDef.get(def) ?? []), r]);
  }
  const blocks: string[] = [];
  for (const [def, group] of byDef) {
    const metrics = [...new Set(group.flatMap((r) => Object.keys(r.metrics).filter((k) => isShort(r.metrics[k]))))];
    const header = ["run", "key", ...metrics, "when", "took", "where", "parameters (not default)", "note"];
    const rows = group.map((r) => [
      r.stage,
      r.key.slice(0, 8) + (r.current ? "*" : r.experiment ? "e" : ""),
      ...metrics.map((m) => show(r.metrics[m])),
      r.startedAt.slice(0, 16).replace("T", " "),
      formatDuration(r.wallSeconds),
      r.where.join("+"),
      Object.entries(r.changed).map(([k, v]) => `${k}=${show(v)}`).join(" ") || "-",
      [
        r.profile ? `${r.profile.toUpperCase()} profile` : "",
        r.aliases.length ? `also ${r.aliases.map((k) => k.slice(0, 8)).join(", ")}` : "",
      ].filter(Boolean).join("; "),
    ]);
    blocks.push(`${def}\n${table(header, rows, color)}`);
  }
  return blocks.join("\n\n") +
    "\n* the run pipeline/lock.json records; e an experiment (--set or a profile): `exp apply KEY` adopts it" +
    "\nalso: the same run under other keys (e.g. carried over by accept)";
}

/** A run found by a key prefix, in the cache (copied from a remote if need be) and whole. */
async function cachedRun(engine: Engine, prefix: string): Promise<RunEntry> {
  const { key } = await showRun(engine, prefix);
  const entry = await engine.store.readOrFetch(key);
  if (!entry || !(await engine.store.verify(entry)).ok) {
    throw new PipelineError(
      `the run ${key.slice(0, 12)}… is not whole in the cache`,
      "reproduce it again (`deno task exp show KEY` says how it was made)",
    );
  }
  return entry;
}

/** `exp push KEY…`: copy these runs to the remote a push writes to (the shared one if set). */
export async function pushRuns(engine: Engine, prefixes: string[]): Promise<{ pushed: string[]; already: string[] }> {
  const remote = engine.store.remotes.at(-1)!;
  const entries: RunEntry[] = [];
  for (const p of prefixes) entries.push(await cachedRun(engine, p));
  const already: string[] = [];
  for (const e of entries) {
    const there = await remote.readEntry(e.key).catch(() => undefined);
    if (there && !isCorrupt(there)) already.push(e.key);
  }
  const held = await remote.push(entries, (h) => engine.store.objectPath(h));
  const name = (e: RunEntry) => `${e.stage} ${e.key.slice(0, 8)}`;
  return {
    pushed: entries.filter((e) => held.has(e.key) && !already.includes(e.key)).map(name),
    already: entries.filter((e) => already.includes(e.key)).map(name),
  };
}

/** Every experiment run the journal records that the cache still holds (for `push --exp`). */
export async function experimentKeys(engine: Engine): Promise<string[]> {
  const out: string[] = [];
  for (const key of (await readJournal(engine.store.dir)).keys()) {
    if (await engine.store.readEntry(key)) out.push(key);
  }
  return out;
}

/**
 * `exp apply KEY`: make an experiment the study's run of its stage: its parameters that differ
 * from the current ones are written to pipeline/params.json (so a later reproduce keeps it), and
 * the lock file records the run. Downstream stages then are stale until reproduced.
 */
export async function applyRun(
  engine: Engine,
  root: string,
  prefix: string,
): Promise<{ stage: string; key: string; params: Record<string, ParamValue> }> {
  const entry = await cachedRun(engine, prefix);
  const node = engine.graph.nodes.get(entry.stage);
  if (!node) {
    throw new PipelineError(`${entry.stage} is not a stage of this pipeline any more`, "pick a run of a current stage");
  }
  const file = join(root, "pipeline", "params.json");
  const written: Record<string, ParamValue> = {};
  for (const [k, v] of Object.entries(entry.params)) {
    const spec = node.def.params[k];
    if (!spec || spec.transport || JSON.stringify(node.params[k]) === JSON.stringify(v)) continue;
    if (k === "seed" && node.seedOf) continue; // a seed node's seed is its name
    written[`${entry.stage}.${k}`] = v;
  }
  if (Object.keys(written).length) {
    await readParamsFile(file); // a malformed file is named, not overwritten
    const current = JSON.parse(await Deno.readTextFile(file).catch(() => "{}"));
    await writeFileAtomic(file, JSON.stringify({ ...current, ...written }, null, 2) + "\n");
  }
  await engine.adopt(entry);
  return { stage: entry.stage, key: entry.key, params: written };
}

/** One run's full record, found by a prefix of its key. */
export async function showRun(engine: Engine, prefix: string) {
  const matches = [...(await allRuns(engine))].filter(([key]) => key.startsWith(prefix));
  if (!matches.length) {
    throw new PipelineError(`no run with a key starting ${prefix}`, "see `deno task exp` for the runs and their keys");
  }
  if (matches.length > 1) {
    throw new PipelineError(
      `${matches.length} runs have a key starting ${prefix}: ${matches.map(([k]) => k.slice(0, 12)).join(", ")}`,
      "give more of the key",
    );
  }
  const [, { entry, where }] = matches[0];
  return { ...entry, where };
}

function isShort(v: unknown): boolean {
  return typeof v === "number" || (typeof v === "string" && v.length <= 24);
}

function show(v: unknown): string {
  if (typeof v === "number") return String(Number.isInteger(v) ? v : +v.toPrecision(4));
  if (Array.isArray(v)) return v.join(",");
  return v === undefined ? "" : String(v);
}

async function jsonFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) if (e.isFile && e.name.endsWith(".json")) out.push(e.name);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out.sort();
}
