// A tiny search end to end on synthetic data: deterministic picks, every
// individual memoised (a rerun trains nothing), the test set used once.
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeSyntheticSplits, writeSplits } from "../../data/dataset.ts";
import { run } from "../../models/search/stage.ts";
import { run as trainPick } from "../../models/search/train_pick.ts";
import type { SearchRecord } from "../../models/search/stage.ts";
import { makeTestContext } from "../support/stage_context.ts";

Deno.test({
  name: "search-mlp: same seed, same picks; a rerun is served from the memo",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dataDir = await Deno.makeTempDir();
    await writeSplits(dataDir, makeSyntheticSplits(300, 100, 7));
    const params = { population: 3, generations: 2, validation: 100, step_scale: 0.002, budget_steps: 0, seed: 5 };
    const ctx = await makeTestContext({ stage: "search-mlp", params, inputs: { preprocess: dataDir }, quiet: true });
    ctx.jobs = 2;
    let trained = 0;
    const memo = ctx.memo.bind(ctx);
    ctx.memo = (key, fn) => memo(key, () => (trained++, fn()));
    await run(ctx);
    const first: SearchRecord = JSON.parse(await Deno.readTextFile(join(ctx.outDir, "search.json")));
    assert.equal(first.generations.length, 2);
    assert.equal(first.generations[0].individuals.length, 3);
    const evaluations = trained;
    assert.ok(evaluations >= 4 && evaluations <= 7, `${evaluations} trainings`); // the elite repeats: memoised
    assert.ok(first.pick.test_acc >= 0 && first.pick.test_acc <= 1);
    assert.match(first.note, /validation images held out/);

    trained = 0;
    await run(ctx);
    assert.equal(trained, 0, "a rerun trains nothing");
    const second: SearchRecord = JSON.parse(await Deno.readTextFile(join(ctx.outDir, "search.json")));
    assert.deepEqual(second, first);

    // A fresh run (nothing memoised) with the same seed makes the same picks.
    const fresh = await makeTestContext({ stage: "search-mlp", params, inputs: { preprocess: dataDir }, quiet: true });
    fresh.jobs = 2;
    await run(fresh);
    const third: SearchRecord = JSON.parse(await Deno.readTextFile(join(fresh.outDir, "search.json")));
    assert.deepEqual(third.pick, first.pick);
    assert.deepEqual(third.generations, first.generations);

    // The budget stops the search early.
    const small = await makeTestContext({
      stage: "search-mlp",
      params: { ...params, budget_steps: 10 },
      inputs: { preprocess: dataDir },
      quiet: true,
    });
    await run(small);
    const budgeted: SearchRecord = JSON.parse(await Deno.readTextFile(join(small.outDir, "search.json")));
    assert.ok(budgeted.stopped_by_budget);
    assert.ok(budgeted.steps_used <= 10);

    // train-search-pick trains the pick's genes on the whole training set, steps scaled for the test.
    const pick = await makeTestContext({
      stage: "train-search-pick",
      params: { step_scale: 0.004, eval_every: 2, seed: 42 },
      inputs: { preprocess: dataDir, "search-mlp": ctx.outDir },
      quiet: true,
    });
    await trainPick(pick);
    const h = JSON.parse(await Deno.readTextFile(join(pick.outDir, "history.json")));
    const g = first.pick.genes;
    assert.deepEqual(
      [h.params.hidden, h.params.lr, h.params.batch, h.params.steps],
      [first.pick.hidden, g.lr, Math.min(g.batch, 300), Math.round(g.steps * 0.004)],
    );
    assert.equal(h.final.step, h.params.steps);
    await Promise.all([
      ctx.cleanup(),
      small.cleanup(),
      fresh.cleanup(),
      pick.cleanup(),
      Deno.remove(dataDir, { recursive: true }),
    ]);
  },
});
