// .ci/report_current.ts, the CI check that the committed report is what the committed code and
// runs render, on a toy git project with a committed folder remote: it passes on a current
// report, and fails with one line on a stale one and on a lock that would make CI train.
import assert from "node:assert/strict";
import { join } from "node:path";

const CHECK = new URL("../../.ci/report_current.ts", import.meta.url).pathname;
const CLI = new URL("../../pipeline/cli.ts", import.meta.url).pathname;

const FILES: Record<string, string> = {
  "stages.ts": `export const STAGES = [
  { name: "train", doc: "", deps: [], module: "train.ts", outputs: ["history.json", "weights.bin"], params: {} },
  { name: "report", doc: "", deps: ["train"], reads: { train: ["history.json"] }, module: "report.ts",
    outputs: ["REPORT.md"], params: {}, readsRecords: true, publish: "reports" },
];`,
  "train.ts": `export async function run(ctx) {
  await Deno.writeTextFile(ctx.outDir + "/history.json", JSON.stringify({ acc: 0.5 }));
  await Deno.writeFile(ctx.outDir + "/weights.bin", new Uint8Array(9 << 20).map((_, i) => i % 251));
  return { acc: 0.5 };
}`,
  "report.ts": `export async function run(ctx) {
  const h = JSON.parse(await Deno.readTextFile(ctx.inputs.train + "/history.json"));
  await Deno.writeTextFile(ctx.outDir + "/REPORT.md", "# Results\\n\\naccuracy " + h.acc + "\\n");
  return {};
}`,
  ".gitignore": ".cache/\nout/\n",
};

async function sh(cwd: string, cmd: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(cmd[0], { args: cmd.slice(1), cwd, env, stdout: "piped", stderr: "piped" })
    .output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stderr: text(out.stderr), stdout: text(out.stdout) };
}

/** A toy project trained, pushed to its committed remote and committed; then cloned with no cache. */
async function committedClone(): Promise<{ origin: string; clone: string }> {
  const origin = await Deno.makeTempDir({ prefix: "report-current-" });
  for (const [rel, text] of Object.entries(FILES)) await Deno.writeTextFile(join(origin, rel), text);
  const toy = ["--root", origin, "--pipeline", join(origin, "stages.ts")];
  const env = { PIPELINE_CACHE: join(origin, ".cache"), NO_COLOR: "1" };
  for (const cmd of [["reproduce"], ["push"]]) {
    const r = await sh(origin, [Deno.execPath(), "run", "-A", CLI, ...cmd, ...toy], env);
    assert.equal(r.code, 0, r.stderr);
  }
  const id = ["-c", "user.name=t", "-c", "user.email=t@t"];
  for (const cmd of [["init", "-q"], ["add", "-A"], [...id, "commit", "-qm", "runs"]]) {
    await sh(origin, ["git", ...cmd]);
  }
  const clone = `${origin}-clone`;
  await sh(origin, ["git", "clone", "-q", origin, clone]);
  return { origin, clone };
}

const check = (root: string) =>
  sh(root, [Deno.execPath(), "run", "-A", CHECK, "--root", root, "--pipeline", join(root, "stages.ts")], {
    PIPELINE_CACHE: join(root, ".cache"),
    NO_COLOR: "1",
  });

const lastLine = (s: string) => s.trim().split("\n").at(-1)!;

Deno.test("the report check passes on a current report and fails in one line on a stale one or a lock that would train", async () => {
  const { origin, clone } = await committedClone();
  const id = ["-c", "user.name=t", "-c", "user.email=t@t"];
  try {
    const ok = await check(clone);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(lastLine(ok.stderr), /^✓ the committed report is what the committed code and runs render/);

    // A change of the report's code committed without regenerating the report: CI fails, naming the fix.
    await Deno.writeTextFile(join(clone, "report.ts"), FILES["report.ts"].replace("# Results", "# Our results"));
    await sh(clone, ["git", ...id, "commit", "-qam", "report edited, not regenerated"]);
    const stale = await check(clone);
    assert.equal(stale.code, 1);
    assert.match(
      lastLine(stale.stderr),
      /^error: the committed report is not what the committed code and runs render \(pipeline\/lock\.json, reports\/REPORT\.md, reports\/provenance\.json changed\) — run `deno task reproduce` and commit reports\/ and pipeline\/lock\.json$/,
    );

    // A training stage's code changed without its run: CI would train; it says so instead, before anything.
    await sh(clone, ["git", "checkout", "-q", "--", "."]);
    await sh(clone, ["git", "reset", "-q", "--hard", "HEAD~1"]);
    await Deno.writeTextFile(join(clone, "train.ts"), FILES["train.ts"].replace("acc: 0.5 }));", "acc: 0.6 }));"));
    const trains = await check(clone);
    assert.equal(trains.code, 1);
    assert.match(
      lastLine(trains.stderr),
      /^error: train would run \(code: train\.ts changed\).*— run `deno task reproduce`/,
    );
  } finally {
    await Deno.remove(origin, { recursive: true });
    await Deno.remove(clone, { recursive: true });
  }
});
