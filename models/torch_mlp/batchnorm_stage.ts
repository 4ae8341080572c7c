// Stage "train-batchnorm": the custom batch norm's checks (checks.json, from
// models/batchnorm/checks.ts), then the study's GA1 + dropout + batch norm MLP
// trained with the hand-written backward (history.json). Its autograd twin is
// the train-torch-mlp@ga1-dropout-batchnorm run, with the same settings and
// seed: not an input, so that both can train at once; the report sets the two
// curves side by side (reports/build/curves.ts) and checks that their settings
// match. It lives beside the autograd MLP it trains: models/batchnorm/ is the
// layer and its checks, and imports nothing of this folder.
import { join } from "node:path";
import { loadSplits } from "../../data/dataset.ts";
import type { TrainBatchnormParams } from "../../pipeline/stages.ts";
import { PipelineError, type StageContext } from "../../pipeline/types.ts";
import { runBatchNormChecks } from "../batchnorm/checks.ts";
import { configFromParams, runTorchMlpStage } from "./run_stage.ts";

/** The autograd run this stage's curve is compared with (in the report). */
export const AUTOGRAD_TWIN = "train-torch-mlp@ga1-dropout-batchnorm";

export async function run(ctx: StageContext<TrainBatchnormParams>): Promise<Record<string, number | string>> {
  const dir = ctx.inputs["preprocess"];
  if (!dir) throw new PipelineError(`${ctx.stage} needs the preprocess stage's output`, 'declare deps: ["preprocess"]');
  const checks = await runBatchNormChecks(ctx.params.seed);
  await Deno.writeTextFile(join(ctx.outDir, "checks.json"), JSON.stringify(checks, null, 2) + "\n");
  const failed = checks.filter((c) => !c.pass);
  if (failed.length) {
    throw new Error(
      `batch-norm checks failed: ${failed.map((c) => `${c.check} (${c.impl}): ${c.measured}`).join("; ")}`,
    );
  }
  ctx.log(`${checks.length} batch-norm checks passed`);

  const data = await loadSplits(dir);
  // The twin's network: dropout and batch norm on, the batch norm's backward written by hand.
  const params = { ...ctx.params, dropout: true, batchnorm: true };
  const cfg = configFromParams(params, "manual");
  const r = await runTorchMlpStage(ctx, data, cfg, {
    params,
    progress: { bn: "manual" },
    fields: { twin: AUTOGRAD_TWIN },
    notes: [
      `The hand-written backward (tf.customGrad); its autograd twin is ${AUTOGRAD_TWIN}, trained with the same ` +
      "settings and seed: same forward ops, so the two curves differ only by float32 rounding in the backward, " +
      "amplified by training.",
    ],
  });
  ctx.log(`test accuracy ${r.final.testAcc.toFixed(4)} with the manual batch norm`);
  return {
    test_acc: r.final.testAcc,
    train_acc: r.final.trainAcc,
    checks_passed: checks.length,
    steps_per_s: r.stepsPerSecond,
  };
}
