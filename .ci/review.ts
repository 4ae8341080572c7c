// The review a CI job writes for a push or a pull request (GitHub Actions: .github/workflows/
// reproduce.yml; GitLab: .gitlab-ci.yml — the YAML only calls this, .ci/run exercises it):
//   1. `deno task reproduce` (the committed remote; the shared one too when PIPELINE_REMOTE is set);
//   2. the check that the committed report is the committed code's (.ci/report_current.ts);
//   3. `diff --md --plots` against the base revision (--fail-on limits passed through: exit 3);
// then OUT/summary.md (the job summary, under 1 MiB: trimmed with a note when larger; appended to
// $GITHUB_STEP_SUMMARY when set), OUT/comment.md (the same behind a hidden marker, for the one
// pull-request comment updated in place), OUT/metrics.txt (OpenMetrics: GitLab's metrics report),
// OUT/plots/ (figures, index.md, index.html: the artifact).
//
// Usage: deno run -A .ci/review.ts [--base REV] [--out DIR] [--skip reproduce,report,diff]
//          [--fail-on METRIC:±LIMIT …] [--root DIR --pipeline FILE]
//        deno run -A .ci/review.ts comment --file OUT/comment.md --repo OWNER/NAME --pr N
//          (GITHUB_TOKEN, GITHUB_API_URL): create or update the pull request's review comment.
// Exit status: the first failing step's (1 a failure, 3 a regression past a --fail-on limit), else 0.
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";

const CLI = new URL("../pipeline/cli.ts", import.meta.url).pathname;
const REPORT_CHECK = new URL("./report_current.ts", import.meta.url).pathname;
/** The hidden marker that finds the review comment again. */
export const MARKER = "<!-- cifar10-pipeline-review -->";
/** GitHub's job summary takes up to 1 MiB per step. */
export const SUMMARY_LIMIT = 1024 * 1024;

/** Markdown cut at a line boundary to fit `limit` bytes, with a note saying where the rest is. */
export function trimMarkdown(md: string, limit = SUMMARY_LIMIT, rest = "the artifact's plots/index.md"): string {
  const bytes = new TextEncoder().encode(md);
  if (bytes.length <= limit) return md;
  const note = (n: number) =>
    `\n\n> **Trimmed**: ${n} bytes of ${bytes.length} shown; the whole review is in ${rest}.\n`;
  let cut = new TextDecoder().decode(bytes.slice(0, limit - new TextEncoder().encode(note(limit)).length));
  cut = cut.slice(0, Math.max(0, cut.lastIndexOf("\n"))); // whole lines (and no broken character)
  return cut + note(new TextEncoder().encode(cut).length);
}

interface Metric {
  stage: string;
  name: string;
  value: number;
}

/** The lock's numeric metrics in OpenMetrics text format (GitLab's metrics report). */
export function openMetrics(lock: { stages: Record<string, { metrics?: Record<string, unknown> }> }): string {
  const rows: Metric[] = [];
  for (const [stage, s] of Object.entries(lock.stages)) {
    for (const [name, value] of Object.entries(s.metrics ?? {})) {
      if (typeof value === "number" && Number.isFinite(value)) rows.push({ stage, name, value });
    }
  }
  const metric = (n: string) => `pipeline_${n.replace(/[^a-zA-Z0-9_]/g, "_")}`;
  const label = (v: string) => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
  const lines: string[] = [];
  for (const [name, group] of Map.groupBy(rows, (r) => metric(r.name))) {
    lines.push(`# TYPE ${name} gauge`, `# HELP ${name} ${group[0].name} of each stage's run in pipeline/lock.json`);
    for (const r of group) lines.push(`${name}{stage="${label(r.stage)}"} ${r.value}`);
  }
  return lines.join("\n") + (lines.length ? "\n" : "") + "# EOF\n";
}

/** Create the pull request's review comment, or update the one carrying MARKER; returns its id and what was done. */
export async function upsertComment(
  opts: { api: string; repo: string; pr: number; token: string; body: string },
): Promise<{ id: number; action: "created" | "updated" }> {
  const headers = {
    Authorization: `Bearer ${opts.token}`,
    Accept: "application/vnd.github+json",
    "Content-Type": "application/json",
    "X-GitHub-Api-Version": "2022-11-28",
  };
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${opts.api}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    return await res.json();
  };
  const body = opts.body.startsWith(MARKER) ? opts.body : `${MARKER}\n${opts.body}`;
  for (let page = 1; page < 50; page++) {
    const comments = await call("GET", `/repos/${opts.repo}/issues/${opts.pr}/comments?per_page=100&page=${page}`);
    const mine = (comments as Array<{ id: number; body?: string }>).find((c) => c.body?.includes(MARKER));
    if (mine) {
      await call("PATCH", `/repos/${opts.repo}/issues/comments/${mine.id}`, { body });
      return { id: mine.id, action: "updated" };
    }
    if (comments.length < 100) break;
  }
  const made = await call("POST", `/repos/${opts.repo}/issues/${opts.pr}/comments`, { body });
  return { id: made.id, action: "created" };
}

async function git(root: string, ...args: string[]): Promise<string | undefined> {
  const out = await new Deno.Command("git", { args, cwd: root, stdout: "piped", stderr: "null" }).output();
  return out.success ? new TextDecoder().decode(out.stdout).trim() : undefined;
}

/** The base to compare with: the one given if git knows it, else the previous commit, else none. */
async function baseRevision(root: string, wanted?: string): Promise<string | undefined> {
  for (const rev of [wanted, "HEAD~1"]) {
    if (rev && !/^0+$/.test(rev) && await git(root, "rev-parse", "--verify", "--quiet", `${rev}^{commit}`)) return rev;
  }
  return undefined;
}

interface Step {
  name: string;
  code: number;
  seconds: number;
  output: string;
}

async function review(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      base: { type: "string" },
      out: { type: "string" },
      skip: { type: "string" },
      "fail-on": { type: "string", multiple: true },
      root: { type: "string" },
      pipeline: { type: "string" },
    },
  });
  const root = resolve(values.root ?? new URL("..", import.meta.url).pathname);
  const project = values.root ? ["--root", root, ...(values.pipeline ? ["--pipeline", values.pipeline] : [])] : [];
  const out = resolve(root, values.out ?? "out/review");
  const skip = new Set((values.skip ?? "").split(",").filter(Boolean));
  await Deno.remove(out, { recursive: true }).catch(() => {});
  await Deno.mkdir(out, { recursive: true });
  const remote = Deno.env.get("PIPELINE_REMOTE"); // s3://… when the repository's secrets set it
  const steps: Step[] = [];
  const step = async (name: string, cmd: string[], tee = true): Promise<Step> => {
    const t0 = performance.now();
    console.error(`::group::${name}: ${cmd.join(" ")}`);
    const child = await new Deno.Command(cmd[0], {
      args: cmd.slice(1),
      cwd: root,
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    const text = new TextDecoder().decode(child.stdout) + new TextDecoder().decode(child.stderr);
    if (tee) console.error(text.trimEnd());
    console.error("::endgroup::");
    const s = { name, code: child.code, seconds: (performance.now() - t0) / 1000, output: text };
    steps.push(s);
    return s;
  };
  const deno = Deno.execPath();
  if (!skip.has("reproduce")) {
    await step("reproduce", [deno, "run", "-A", CLI, "reproduce", ...(remote ? ["--remote", remote] : []), ...project]);
  }
  if (!skip.has("report")) await step("report is current", [deno, "run", "-A", REPORT_CHECK, ...project]);
  const base = await baseRevision(root, values.base);
  let table = "";
  if (!skip.has("diff")) {
    if (!base) {
      table = "_No base revision to compare with (a first commit, or a shallow clone)._\n";
    } else {
      const limits = (values["fail-on"] ?? []).flatMap((l) => ["--fail-on", l]);
      const diff = await step(
        `diff against ${base}`,
        [deno, "run", "-A", CLI, "diff", "--md", "--plots", join(out, "plots"), base, ...limits, ...project],
        false,
      );
      const lines = diff.output.split("\n");
      table = lines.filter((l) => !/^(✗ regression|wrote )/.test(l)).join("\n").trim() + "\n";
      const regressions = lines.filter((l) => l.startsWith("✗ regression"));
      if (regressions.length) {
        table += `\n**Regressions** (exit 3):\n\n${regressions.map((l) => `- ${l.slice(2)}`).join("\n")}\n`;
      }
      console.error(lines.filter((l) => /^(✗|wrote )/.test(l)).join("\n"));
    }
  }
  const lock = JSON.parse(await Deno.readTextFile(join(root, "pipeline", "lock.json")).catch(() => '{"stages":{}}'));
  await Deno.writeTextFile(join(out, "metrics.txt"), openMetrics(lock));

  const head = (await git(root, "rev-parse", "--short", "HEAD")) ?? "working tree";
  const mark = (s: Step) => (s.code === 0 ? "✅" : s.code === 3 ? "⚠️ regression" : "❌");
  const pngs = (await Array.fromAsync(Deno.readDir(join(out, "plots"))).catch(() => [] as Deno.DirEntry[]))
    .filter((e) => e.name.endsWith(".png"));
  const drawn = /figures? \((.*)\)/.exec(steps.find((s) => s.name.startsWith("diff"))?.output ?? "")?.[1];
  const summary = [
    `## Pipeline review: ${head}${base ? ` against ${base}` : ""}`,
    "",
    "| step | result | time |",
    "|---|---|--:|",
    ...steps.map((s) => `| ${s.name} | ${mark(s)} ${s.code ? `(exit ${s.code})` : ""} | ${s.seconds.toFixed(0)} s |`),
    "",
    ...steps.filter((s) => s.code !== 0 && s.code !== 3).flatMap((s) => [
      `<details><summary>${s.name}: last lines</summary>`,
      "",
      "```",
      s.output.trimEnd().split("\n").slice(-30).join("\n"),
      "```",
      "</details>",
      "",
    ]),
    table,
    pngs.length
      ? `Curves of ${pngs.length} changed stage${pngs.length === 1 ? "" : "s"} (both revisions overlaid)` +
        `${drawn ? `: ${drawn.split(", ").map((n) => `\`${n}\``).join(", ")}` : ""} — in the artifact ` +
        "(plots/index.html, self-contained; plots/index.md).\n"
      : "",
  ].join("\n");
  const trimmed = trimMarkdown(summary);
  await Deno.writeTextFile(join(out, "summary.md"), trimmed);
  // The PR comment: the same, behind the marker that finds it again (a comment holds 65,536 characters).
  await Deno.writeTextFile(join(out, "comment.md"), trimMarkdown(`${MARKER}\n${summary}`, 60_000));
  const stepSummary = Deno.env.get("GITHUB_STEP_SUMMARY");
  if (stepSummary) await Deno.writeTextFile(stepSummary, trimmed, { append: true });
  console.error(`review: ${out}/summary.md, comment.md, metrics.txt${pngs.length ? `, plots/ (${pngs.length})` : ""}`);
  return steps.find((s) => s.code !== 0)?.code ?? 0;
}

async function comment(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { file: { type: "string" }, repo: { type: "string" }, pr: { type: "string" } },
  });
  const token = Deno.env.get("GITHUB_TOKEN");
  if (!values.file || !values.repo || !values.pr || !token) {
    console.error("error: comment needs --file, --repo, --pr and GITHUB_TOKEN — see the header of .ci/review.ts");
    return 2;
  }
  const r = await upsertComment({
    api: Deno.env.get("GITHUB_API_URL") ?? "https://api.github.com",
    repo: values.repo,
    pr: Number(values.pr),
    token,
    body: await Deno.readTextFile(values.file),
  });
  console.error(`review comment ${r.action} (id ${r.id})`);
  return 0;
}

if (import.meta.main) {
  const [first, ...rest] = Deno.args;
  Deno.exit(first === "comment" ? await comment(rest) : await review(Deno.args));
}
