// `diff`: parameters and metrics of every stage between two git revisions of
// the lock file (like `dvc params diff` + `dvc metrics diff`).
import { relative } from "node:path";
import type { LockFile } from "./lockfile.ts";
import { table } from "./style.ts";
import { PipelineError } from "./types.ts";

export interface DiffRow {
  stage: string;
  kind: "param" | "metric";
  name: string;
  old: unknown;
  new: unknown;
  /** new − old, for numbers. */
  change?: number;
  /** (new − old) / |old|, for numbers with old ≠ 0. */
  relative?: number;
}

/** The lock file at a git revision; undefined: the working tree. A revision without the file: no stages. */
export async function readLockAt(root: string, lockFile: string, rev?: string): Promise<LockFile> {
  let text: string;
  if (rev === undefined) {
    text = await Deno.readTextFile(lockFile).catch(() => "");
  } else {
    const out = await new Deno.Command("git", {
      args: ["show", `${rev}:./${relative(root, lockFile)}`],
      cwd: root,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(out.stderr);
    if (!out.success && !/does not exist in|exists on disk, but not in/.test(err)) {
      throw new PipelineError(`git show ${rev}: ${err.trim().split("\n")[0]}`, "name a commit, branch or tag");
    }
    text = out.success ? new TextDecoder().decode(out.stdout) : "";
  }
  return text ? JSON.parse(text) : { version: 1, stages: {} };
}

export function diffLocks(a: LockFile, b: LockFile): DiffRow[] {
  const rows: DiffRow[] = [];
  const stages = [...new Set([...Object.keys(a.stages), ...Object.keys(b.stages)])].sort();
  for (const stage of stages) {
    for (const kind of ["param", "metric"] as const) {
      const field = kind === "param" ? "params" : "metrics";
      const x: Record<string, unknown> = a.stages[stage]?.[field] ?? {};
      const y: Record<string, unknown> = b.stages[stage]?.[field] ?? {};
      for (const name of [...new Set([...Object.keys(x), ...Object.keys(y)])].sort()) {
        if (JSON.stringify(x[name]) === JSON.stringify(y[name])) continue;
        const row: DiffRow = { stage, kind, name, old: x[name], new: y[name] };
        if (typeof x[name] === "number" && typeof y[name] === "number") {
          row.change = y[name] - x[name];
          if (x[name] !== 0) row.relative = row.change / Math.abs(x[name]);
        }
        rows.push(row);
      }
    }
  }
  return rows;
}

export function formatDiff(rows: DiffRow[], color = false): string {
  if (!rows.length) return "no parameter or metric changed";
  const show = (v: unknown) =>
    v === undefined
      ? "-"
      : typeof v === "number"
      ? String(+v.toPrecision(4))
      : Array.isArray(v)
      ? v.join(",")
      : String(v);
  return table(
    ["stage", "kind", "name", "old", "new", "change", "relative"],
    rows.map((r) => [
      r.stage,
      r.kind,
      r.name,
      show(r.old),
      show(r.new),
      r.change === undefined ? "" : `${r.change > 0 ? "+" : ""}${show(r.change)}`,
      r.relative === undefined ? "" : `${r.relative > 0 ? "+" : ""}${(100 * r.relative).toFixed(1)}%`,
    ]),
    color,
  );
}
