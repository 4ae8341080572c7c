// Stage "train-torch-mlp": the study's MLP with automatic differentiation
// (tfjs), Adam; each row of the study's Table 1 is a variant of this stage.
import { join } from "node:path";
import { loadSplits } from "../../data/dataset.ts";
import { writeArtifacts } from "../artifacts.ts";
import { PipelineError, type StageContext, type TrainingHistory } from "../../pipeline/types.ts";
import { type TorchMlpConfig, type TorchMlpHooks, type TorchMlpResult, trainTorchMlp } from "./train.ts";

/** The hooks every autograd MLP stage gives the training loop: progress, log, checkpoints, --verify-steps. */
export function stageHooks(ctx: StageContext, extra?: Record<string, string>): TorchMlpHooks {
  return {
    progress: (p) => ctx.progress(extra ? { ...p, extra } : p),
    log: (m) => ctx.log(m),
    checkpointDir: ctx.checkpointDir,
    stopAfterSteps: ctx.stopAfterSteps,
  };
}

/** What the run cost and ran on: the run's record, not its outputs (two runs of one key give the same bytes). */
export function recordRun(ctx: StageContext, r: TorchMlpResult): void {
  ctx.record({
    compute: r.backend,
    trainSeconds: r.wallSeconds,
    stepsPerSecond: r.stepsPerSecond,
    evalImagesPerSecond: r.evalImagesPerSecond,
    resumes: r.processes - 1,
    ...(r.resumedFrom ? { resumedFrom: r.resumedFrom } : {}),
  });
}

const LAYOUT = "MLP: for each l, [x = (x - norm.running_mean) / sqrt(norm.running_var + 1e-5) * norm.weight + " +
  "norm.bias], x = x · layers.l.weight + layers.l.bias, relu between layers; weights are in × out; inputs are the " +
  "NHWC pixels minus the training mean image, flattened";

/** history.json, weights.safetensors and predictions.npy of an autograd MLP run. */
export async function writeRun(ctx: StageContext, history: TrainingHistory, r: TorchMlpResult): Promise<void> {
  await Deno.writeTextFile(join(ctx.outDir, "history.json"), JSON.stringify(history, null, 2) + "\n");
  await writeArtifacts(ctx.outDir, r.weights, r.predictions, LAYOUT);
}

/** The notes every autograd MLP history carries. */
export function torchMlpNotes(cfg: TorchMlpConfig): string[] {
  const notes = [
    "Automatic differentiation (tf.variableGrads); PyTorch's nn.Linear initialisation (uniform ±1/√fan_in); " +
    "softmax cross-entropy on logits; Adam (0.9, 0.999, 1e-8) as torch.optim.Adam computes it.",
    "Evaluated as the study's code did: after update i (0-based) when i % eval_every == 0 and after the last; " +
    "`step` counts the updates done. Train loss/accuracy are those of that step's mini-batch in training mode " +
    "(before its update); the test set is evaluated in inference mode (the study's code left the model in " +
    "training mode: dropout on, batch statistics).",
  ];
  if (cfg.dropout) notes.push("Dropout p=0.5 after each hidden ReLU (masks seeded per step).");
  if (cfg.batchnorm !== "none") {
    notes.push(
      `Batch norm (models/batchnorm, ${cfg.batchnorm} backward) before each Linear; running statistics ` +
        "(momentum 0.1, unbiased variance, as PyTorch) for inference mode.",
    );
  }
  return notes;
}

export function configFromParams(p: Record<string, unknown>, batchnorm: TorchMlpConfig["batchnorm"]): TorchMlpConfig {
  return {
    hidden: p.hidden as number[],
    lr: p.lr as number,
    batch: p.batch as number,
    steps: p.steps as number,
    evalEvery: p.eval_every as number,
    seed: p.seed as number,
    dropout: Boolean(p.dropout),
    batchnorm,
  };
}

export async function run(ctx: StageContext): Promise<Record<string, number | string>> {
  const dir = ctx.inputs["preprocess"];
  if (!dir) throw new PipelineError(`${ctx.stage} needs the preprocess stage's output`, 'declare deps: ["preprocess"]');
  const data = await loadSplits(dir);
  const cfg = configFromParams(ctx.params, ctx.params.batchnorm ? "autograd" : "none");
  const r = await trainTorchMlp(data, cfg, stageHooks(ctx));
  recordRun(ctx, r);
  const history: TrainingHistory = {
    run: ctx.stage,
    params: ctx.params,
    evals: r.evals,
    final: r.final,
    notes: torchMlpNotes(cfg),
  };
  await writeRun(ctx, history, r);
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
