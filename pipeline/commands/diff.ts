// `diff`: parameters and metrics of every stage between two git revisions of
// the lock file (like `dvc params diff` + `dvc metrics diff`): reading a revision's lock, the terminal table.
import { relative } from "node:path";
import { cells, type DeltaRow } from "./diff_md.ts";
import type { LockFile } from "../engine/lockfile.ts";
import { table } from "../terminal/style.ts";
import { PipelineError } from "../types.ts";

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

/** The delta table for a terminal (diff_md.ts makes the rows, and the Markdown). */
export function formatDiff(rows: DeltaRow[], color = false): string {
  if (!rows.length) return "no parameter or metric changed";
  return table(
    ["stage", "kind", "name", "old", "new", "change", "relative"],
    rows.map((r) => {
      const c = cells(r);
      return [
        r.seeds ? `${r.stage} (${r.seeds.new || r.seeds.old} seeds)` : r.stage,
        r.kind,
        r.name,
        c.old,
        c.new,
        c.change,
        c.relative,
      ];
    }),
    color,
  );
}
