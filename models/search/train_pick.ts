// Stage "train-search-pick": the search's final pick trained as a Table 1 run
// (the whole training set, its full gene steps, not the search's scaled-down
// ones; step_scale shrinks them for a smoke run), so that its test accuracy
// stands beside GA1–GA3 on equal terms.
import { join } from "node:path";
import { loadSplits } from "../../data/dataset.ts";
import type { TrainSearchPickParams } from "../../pipeline/stages.ts";
import { PipelineError, type StageContext } from "../../pipeline/types.ts";
import { configFromParams, runTorchMlpStage } from "../torch_mlp/run_stage.ts";
import type { SearchRecord } from "./stage.ts";

export async function run(ctx: StageContext<TrainSearchPickParams>): Promise<Record<string, number | string>> {
  const [dataDir, searchDir] = [ctx.inputs["preprocess"], ctx.inputs["search-mlp"]];
  if (!dataDir || !searchDir) {
    throw new PipelineError(`${ctx.stage} needs the outputs of preprocess and search-mlp`, "declare both in deps");
  }
  const search: SearchRecord = JSON.parse(await Deno.readTextFile(join(searchDir, "search.json")));
  const { genes, hidden } = search.pick;
  const data = await loadSplits(dataDir);
  const params = {
    hidden,
    lr: genes.lr,
    batch: Math.min(genes.batch, data.train.n), // tiny (smoke) sets: a batch cannot exceed the set
    steps: Math.max(1, Math.round(genes.steps * ctx.params.step_scale)),
    dropout: false,
    batchnorm: false,
    step_scale: ctx.params.step_scale,
    eval_every: ctx.params.eval_every,
    seed: ctx.params.seed,
  };
  ctx.log(
    `training the search's pick: hidden ${hidden.join(",")} · lr ${genes.lr.toExponential(2)} · batch ` +
      `${params.batch} · ${params.steps} steps (the search trained it for ${search.pick.steps})`,
  );
  const cfg = configFromParams(params, "none");
  const r = await runTorchMlpStage(ctx, data, cfg, {
    params,
    fields: {
      pick: { val_acc: search.pick.val_acc, search_steps: search.pick.steps, search_test_acc: search.pick.test_acc },
    },
    notes: [
      "The search's final pick (selected on validation) trained like a Table 1 run: the whole training set and " +
      "the pick's full gene steps.",
    ],
  });
  ctx.log(`test accuracy ${r.final.testAcc.toFixed(4)} after ${cfg.steps} steps`);
  return { test_acc: r.final.testAcc, train_acc: r.final.trainAcc, steps_per_s: r.stepsPerSecond };
}
