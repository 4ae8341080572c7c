// `exp`: every run of a stage the cache or the committed remote holds (like
// `dvc exp show`): a `--set` run is cached under its key, this makes it visible.
import { join } from "node:path";
import type { RunEntry } from "./cache.ts";
import type { Engine } from "./engine.ts";
import { formatDuration } from "./progress.ts";
import { table } from "./style.ts";
import { type ParamValue, PipelineError } from "./types.ts";

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

export async function listRuns(engine: Engine, target?: string, sort?: string): Promise<ExpRun[]> {
  const wanted = target ? new Set(engine.graph.resolve(target)) : undefined;
  const lock = await engine.readLock();
  const runs: ExpRun[] = [];
  for (const [key, { entry, where }] of await allRuns(engine)) {
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
    runs.sort((a, b) => {
      const [x, y] = [value(a), value(b)];
      return x === undefined ? (y === undefined ? 0 : 1) : y === undefined ? -1 : sign * (x - y);
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
    const header = ["run", "key", ...metrics, "when", "took", "where", "parameters (not default)"];
    const rows = group.map((r) => [
      r.stage,
      r.key.slice(0, 8) + (r.current ? "*" : ""),
      ...metrics.map((m) => show(r.metrics[m])),
      r.startedAt.slice(0, 16).replace("T", " "),
      formatDuration(r.wallSeconds),
      r.where.join("+"),
      Object.entries(r.changed).map(([k, v]) => `${k}=${show(v)}`).join(" ") || "-",
    ]);
    blocks.push(`${def}\n${table(header, rows, color)}`);
  }
  return blocks.join("\n\n") + "\n* the run pipeline/lock.json records";
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
