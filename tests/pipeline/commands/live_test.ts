// `reproduce --live` on a toy project: a training stage checkpoints its evaluations slowly; the
// page out/live/index.html, loaded twice in headless Chromium mid-run, shows more points the
// second time, beside the stage's previous run; when the run ends the page says so and stops
// reloading. Needs Chromium ($CHROMIUM, else chromium on PATH); without it the test is skipped.
import assert from "node:assert/strict";
import { join } from "node:path";
import { findEvals } from "../../../pipeline/commands/live.ts";

const CLI = new URL("../../../pipeline/cli.ts", import.meta.url).pathname;

function findChromium(): string | undefined {
  const named = Deno.env.get("CHROMIUM");
  if (named) return named;
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    for (const name of ["chromium", "chromium-browser", "google-chrome"]) {
      try {
        if (Deno.statSync(join(dir, name)).isFile) return join(dir, name);
      } catch { /* not here */ }
    }
  }
  return undefined;
}

const FILES: Record<string, string> = {
  "stages.ts": `
export const STAGES = [{
  name: "train", doc: "", deps: [], module: "train.ts", outputs: ["history.json"],
  params: { lr: { type: "float", default: 0.1, doc: "" }, pause: { type: "int", default: 0, doc: "" } },
}];
`,
  // Like the real stages: a checkpoint (manifest + meta with the evaluations so far) at every evaluation.
  "train.ts": `export async function run(ctx) {
  const evals = [];
  for (let s = 1; s <= 16; s++) {
    evals.push({ step: s * 10, trainLoss: 2 / s, trainAcc: Math.min(1, ctx.params.lr * s), testLoss: 2.2 / s,
      testAcc: Math.min(1, 0.9 * ctx.params.lr * s) });
    const manifest = ctx.checkpointDir + "/checkpoint-" + s * 10 + ".json";
    await Deno.writeTextFile(manifest + ".tmp", JSON.stringify({ step: s * 10, files: [], meta: { state: { evals } } }));
    await Deno.rename(manifest + ".tmp", manifest);
    await new Promise((r) => setTimeout(r, ctx.params.pause));
  }
  await Deno.writeTextFile(ctx.outDir + "/history.json", JSON.stringify({ evals }));
  return { test_acc: evals.at(-1).testAcc };
}
`,
};

async function domOf(chromium: string, file: string): Promise<string> {
  const profile = await Deno.makeTempDir({ prefix: "live-test-chromium-" });
  try {
    const out = await new Deno.Command(chromium, {
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        `--user-data-dir=${profile}`,
        "--virtual-time-budget=500",
        "--dump-dom",
        `file://${file}`,
      ],
      stdout: "piped",
      stderr: "null",
    }).output();
    return new TextDecoder().decode(out.stdout);
  } finally {
    await Deno.remove(profile, { recursive: true }).catch(() => {});
  }
}

const points = (dom: string) => Number(/data-stage="train" data-points="(\d+)"/.exec(dom)?.[1] ?? -1);

Deno.test({
  name: "reproduce --live: the page shows a running stage's points growing, beside its previous run",
  ignore: !findChromium(),
  fn: async () => {
    const chromium = findChromium()!;
    const root = await Deno.makeTempDir({ prefix: "live-test-" });
    for (const [rel, text] of Object.entries(FILES)) await Deno.writeTextFile(join(root, rel), text);
    const args = ["run", "-A", CLI, "--root", root, "--pipeline", join(root, "stages.ts"), "reproduce"];
    // The previous run: fast.
    const first = await new Deno.Command(Deno.execPath(), { args, stdout: "null", stderr: "piped" }).output();
    assert.equal(first.code, 0, new TextDecoder().decode(first.stderr));
    // Its next run, slow (other settings, committed as the study's: params.json), watched live.
    await Deno.writeTextFile(join(root, "pipeline/params.json"), '{"train.lr": 0.05, "train.pause": 700}');
    const child = new Deno.Command(Deno.execPath(), {
      args: [...args, "--live"],
      env: { PIPELINE_LIVE_MS: "300", NO_COLOR: "1" },
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const page = join(root, "out/live/index.html");
    try {
      let dom = "";
      for (let i = 0; i < 200 && points(dom) < 2; i++) {
        await new Promise((r) => setTimeout(r, 100));
        dom = await Deno.readTextFile(page).catch(() => "");
      }
      const once = await domOf(chromium, page);
      await new Promise((r) => setTimeout(r, 2500));
      const twice = await domOf(chromium, page);
      assert.ok(points(once) >= 1, once.slice(0, 500));
      assert.ok(points(twice) > points(once), `${points(once)} then ${points(twice)} points`);
      assert.match(twice, /<meta http-equiv="refresh" content="3">/);
      assert.match(twice, /train <small>running · \d+ evaluations/);
      assert.match(twice, /previous run \([0-9a-f]{8}\)/, "the previous run's curve beside");
      assert.match(twice, /now \([0-9a-f]{8}\)/);
      assert.ok(!/<script/.test(twice), "no script: nothing to load");
    } finally {
      const { code, stderr } = await child.output();
      const text = new TextDecoder().decode(stderr);
      assert.equal(code, 0, text);
      assert.match(text, new RegExp(`^live view: ${page.replaceAll("/", "\\/")} `, "m"));
    }
    const last = await Deno.readTextFile(page);
    assert.match(last, /<h1>reproduce: finished<\/h1>/);
    assert.match(last, /data-points="16" data-done="true"/);
    assert.ok(!/http-equiv="refresh"/.test(last), "a finished page stops reloading");
  },
});

Deno.test("the evaluations in a checkpoint, wherever the stage keeps them", () => {
  const evals = [{ step: 1, trainLoss: 1, trainAcc: 0, testLoss: 1, testAcc: 0 }];
  assert.deepEqual(findEvals({ step: 1, meta: { evals } }), evals); // the CNN's
  assert.deepEqual(findEvals({ step: 1, meta: { key: "k", step: 1, state: { evals } } }), evals); // the MLPs'
  assert.equal(findEvals({ step: 1, meta: {} }), undefined);
});
