// `diff`: parameters and metrics of every stage between two git revisions of
// the lock file (like `dvc params diff` + `dvc metrics diff`), or between runs: reading a revision's lock,
// the terminal table (diff_md.ts: the rows, Markdown, limits; plots.ts: the curves overlaid).
import { join, relative, resolve } from "node:path";
import { asUsage, type Command, plural, UsageError } from "./command.ts";
import {
  cells,
  type DeltaRow,
  deltaRows,
  describeViolation,
  formatMarkdown,
  parseLimit,
  regressions,
  seedBase,
} from "./diff_md.ts";
import { showRun } from "./exp_runs.ts";
import { JSON_OPTION, PROFILE } from "./options.ts";
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

export const diff: Command = {
  name: "diff",
  synopsis: "[rev-a] [rev-b] | --runs KEY…",
  help: "parameters and metrics of every stage between two git revisions of the lock file\n" +
    "(default: HEAD and the working tree; one revision: it and the working tree), or between runs;\n" +
    "--md, --plots DIR, --fail-on (exit 3 on a regression)",
  options: {
    ...PROFILE,
    ...JSON_OPTION,
    md: { type: "boolean", help: "the delta table in Markdown (a pull request, a job summary)" },
    all: { type: "boolean", help: "every row, not only those that changed" },
    "fail-on": {
      type: "string",
      multiple: true,
      arg: "METRIC:±LIMIT",
      help: "exit 3 if the metric moves past the limit: test_acc:-0.01 a drop of more than 0.01,\n" +
        "test_loss:+5% a rise of more than 5% of the old value; stage/metric:… one stage's; seeds: their mean",
    },
    plots: {
      type: "string",
      arg: "DIR",
      help: "write the curves of every stage whose run differs, both sides overlaid (SVG, PNG, Vega-Lite),\n" +
        "with DIR/index.md and a self-contained DIR/index.html holding the delta table",
    },
    runs: {
      type: "boolean",
      help: "the arguments are run keys (prefixes, see `exp`), not revisions: compare those runs",
    },
  },
  async run(c) {
    const limits = ((c.values["fail-on"] as string[] | undefined) ?? []).map((t) => asUsage(() => parseLimit(t)));
    const all = !!c.values.all;
    let sides: Array<{ label: string; lock: LockFile }>;
    if (c.values.runs) {
      if (c.args.length < 2) {
        throw new UsageError("diff --runs takes two or more run keys", "e.g. deno task diff --runs bf34 c6ae");
      }
      const engine = await c.engine();
      const runs = [];
      for (const prefix of c.args) runs.push(await showRun(engine, prefix));
      const bases = new Set(runs.map((r) => seedBase(r.stage)));
      const node = bases.size === 1 ? runs[0].stage : "runs";
      sides = runs.map((r) => ({
        label: `${r.stage} ${r.key.slice(0, 8)}`,
        lock: { version: 1, stages: { [node]: r as unknown as LockFile["stages"][string] } },
      }));
    } else {
      if (c.args.length > 2) {
        throw new UsageError("diff takes at most two revisions", "e.g. deno task diff HEAD~1 HEAD");
      }
      const [a, b] = [c.args[0] ?? "HEAD", c.args[1]];
      sides = [
        { label: a, lock: await readLockAt(c.root, c.lockFile, a) },
        { label: b ?? "working tree", lock: await readLockAt(c.root, c.lockFile, b) },
      ];
    }
    // Two sides: one table; more runs: each against the first.
    const rows = sides.slice(1).flatMap((s) => deltaRows(sides[0].lock, s.lock, all));
    const labels: [string, string] = [sides[0].label, sides.slice(1).map((s) => s.label).join(", ")];
    if (c.values.json) console.log(JSON.stringify(rows, null, 2));
    else if (c.values.md) console.log(formatMarkdown(rows, labels, all).trimEnd());
    else console.log(formatDiff(rows, c.color));
    if (c.values.plots) {
      // Loaded only when asked for: it brings the plotting packages.
      const { writePlots } = await import("./plots.ts");
      const dir = resolve(c.values.plots as string);
      const result = await writePlots(
        (await c.engine()).store,
        dir,
        sides.map((s) => ({
          label: s.label,
          keys: Object.fromEntries(Object.entries(s.lock.stages).map(([n, st]) => [n, st.key])),
        })),
        rows,
        `${labels[0]} → ${labels[1]}`,
      );
      console.error(
        `wrote ${join(dir, "index.md")} and index.html: ${plural(result.figures.length, "figure")}` +
          (result.figures.length ? ` (${result.figures.map((f) => f.stage).join(", ")})` : "") +
          (result.withoutCurves.length ? `; no curves found for ${result.withoutCurves.join(", ")}` : ""),
      );
    }
    const bad = regressions(rows, limits);
    for (const v of bad) console.error(`✗ regression: ${describeViolation(v)}`);
    return bad.length ? 3 : 0;
  },
};
