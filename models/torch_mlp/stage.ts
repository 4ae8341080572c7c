// Stage "train-torch-mlp": the study's MLP with automatic differentiation
// (tfjs), Adam; each row of the study's Table 1 is a variant of this stage.
import { loadSplits } from "../../data/dataset.ts";
import type { TrainTorchMlpParams } from "../../pipeline/stages.ts";
import { PipelineError, type StageContext } from "../../pipeline/types.ts";
import { configFromParams, runTorchMlpStage } from "./run_stage.ts";

export async function run(ctx: StageContext<TrainTorchMlpParams>): Promise<Record<string, number | string>> {
  const dir = ctx.inputs["preprocess"];
  if (!dir) throw new PipelineError(`${ctx.stage} needs the preprocess stage's output`, 'declare deps: ["preprocess"]');
  const data = await loadSplits(dir);
  const cfg = configFromParams(ctx.params, ctx.params.batchnorm ? "autograd" : "none");
  const r = await runTorchMlpStage(ctx, data, cfg);
  ctx.log(
    `test accuracy ${r.final.testAcc.toFixed(4)} after ${r.final.step} steps (${r.stepsPerSecond.toFixed(2)} steps/s)`,
  );
  return {
    test_acc: r.final.testAcc,
    test_loss: r.final.testLoss,
    train_acc: r.final.trainAcc,
    steps_per_s: r.stepsPerSecond,
  };
}
