// Stage "train-batchnorm": the custom batch norm's checks (checks.json), then
// the study's GA1 + dropout + batch norm MLP trained with the hand-written
// backward, from the same seed and settings as its autograd twin, the
// train-torch-mlp@ga1-dropout-batchnorm run (an input: trained once, not twice).
// history.json holds the autograd run as the main curve, the manual run under
// `manual`, and the largest difference between the two curves.
import { join } from "node:path";
import { loadSplits } from "../../data/dataset.ts";
import { type EvalPoint, PipelineError, type StageContext, type TrainingHistory } from "../../pipeline/types.ts";
import { configFromParams, torchMlpNotes } from "../torch_mlp/stage.ts";
import { trainTorchMlp } from "../torch_mlp/train.ts";
import { runBatchNormChecks } from "./checks.ts";

const FIELDS = ["trainLoss", "trainAcc", "testLoss", "testAcc"] as const;
/** The autograd run this stage compares against. */
export const AUTOGRAD_TWIN = "train-torch-mlp@ga1-dropout-batchnorm";

/** Largest |a−b| per field over two curves evaluated at the same steps. */
export function curveDifference(a: EvalPoint[], b: EvalPoint[]): Record<(typeof FIELDS)[number], number> {
  if (a.length !== b.length || a.some((p, i) => p.step !== b[i].step)) throw new Error("curves at different steps");
  const d = { trainLoss: 0, trainAcc: 0, testLoss: 0, testAcc: 0 };
  for (let i = 0; i < a.length; i++) for (const f of FIELDS) d[f] = Math.max(d[f], Math.abs(a[i][f] - b[i][f]));
  return d;
}

export async function run(ctx: StageContext): Promise<Record<string, number | string>> {
  const dir = ctx.inputs["preprocess"];
  if (!dir) throw new PipelineError(`${ctx.stage} needs the preprocess stage's output`, 'declare deps: ["preprocess"]');
  const checks = await runBatchNormChecks(ctx.params.seed as number);
  await Deno.writeTextFile(join(ctx.outDir, "checks.json"), JSON.stringify(checks, null, 2) + "\n");
  const failed = checks.filter((c) => !c.pass);
  if (failed.length) {
    throw new Error(
      `batch-norm checks failed: ${failed.map((c) => `${c.check} (${c.impl}): ${c.measured}`).join("; ")}`,
    );
  }
  ctx.log(`${checks.length} batch-norm checks passed`);

  const twinDir = ctx.inputs[AUTOGRAD_TWIN];
  if (!twinDir) throw new PipelineError(`${ctx.stage} needs ${AUTOGRAD_TWIN}'s output`, `declare it in deps`);
  const twin = JSON.parse(await Deno.readTextFile(join(twinDir, "history.json")));
  if (!twin.params.batchnorm || !twin.params.dropout) {
    throw new PipelineError(`${AUTOGRAD_TWIN} was trained without batch norm or dropout`, "leave both on for it");
  }
  const data = await loadSplits(dir);
  const params = twin.params as Record<string, unknown>;
  const cfg = configFromParams(params, "manual");
  ctx.log(`training with the manual batch norm, as ${AUTOGRAD_TWIN} (${JSON.stringify(params)})`);
  const r = await trainTorchMlp(data, cfg, {
    progress: (p) => ctx.progress({ ...p, extra: { bn: "manual" } }),
    log: (m) => ctx.log(m),
    checkpointDir: ctx.checkpointDir,
  });
  const auto = { cfg: configFromParams(params, "autograd"), r: twin as typeof r };
  const manual = { cfg, r };
  const diff = curveDifference(auto.r.evals, manual.r.evals);
  const history: TrainingHistory & Record<string, unknown> = {
    run: ctx.stage,
    params: params as TrainingHistory["params"],
    backend: auto.r.backend,
    evals: auto.r.evals,
    final: auto.r.final,
    wallSeconds: auto.r.wallSeconds,
    stepsPerSecond: auto.r.stepsPerSecond,
    evalImagesPerSecond: auto.r.evalImagesPerSecond,
    manual: {
      evals: manual.r.evals,
      final: manual.r.final,
      wallSeconds: manual.r.wallSeconds,
      stepsPerSecond: manual.r.stepsPerSecond,
      evalImagesPerSecond: manual.r.evalImagesPerSecond,
    },
    curveMaxAbsDifference: diff,
    notes: [
      `evals: the autograd batch norm (composed tfjs ops), from ${AUTOGRAD_TWIN}; manual: the hand-written ` +
      "backward (tf.customGrad), trained here. " +
      "Same seed, same forward ops: the curves differ only by float32 rounding in the backward, amplified by training.",
      ...torchMlpNotes(auto.cfg, auto.r),
    ],
  };
  await Deno.writeTextFile(join(ctx.outDir, "history.json"), JSON.stringify(history, null, 2) + "\n");
  ctx.log(
    `test accuracy ${auto.r.final.testAcc.toFixed(4)} (autograd), ${manual.r.final.testAcc.toFixed(4)} (manual); ` +
      `max curve difference: test loss ${diff.testLoss.toExponential(2)}`,
  );
  return {
    test_acc: auto.r.final.testAcc,
    test_acc_manual: manual.r.final.testAcc,
    train_acc: auto.r.final.trainAcc,
    max_test_loss_diff: diff.testLoss,
    checks_passed: checks.length,
    steps_per_s: auto.r.stepsPerSecond,
    steps_per_s_manual: manual.r.stepsPerSecond,
  };
}
