// Stage "train-torch-mlp": the study's MLP with automatic differentiation
// (tfjs), Adam; each row of the study's Table 1 is a variant of this stage.
import { join } from "node:path";
import { loadSplits } from "../../data/dataset.ts";
import { PipelineError, type StageContext, type TrainingHistory } from "../../pipeline/types.ts";
import { type TorchMlpConfig, type TorchMlpResult, trainTorchMlp } from "./train.ts";

/** The notes every autograd MLP history carries. */
export function torchMlpNotes(cfg: TorchMlpConfig, r: TorchMlpResult): string[] {
  const notes = [
    "Automatic differentiation (tf.variableGrads); PyTorch's nn.Linear initialisation (uniform ±1/√fan_in); " +
    "softmax cross-entropy on logits; Adam (0.9, 0.999, 1e-8) as torch.optim.Adam computes it.",
    "Evaluated as the study's code did: after update i (0-based) when i % eval_every == 0 and after the last; " +
    "`step` counts the updates done. Train loss/accuracy are those of that step's mini-batch in training mode " +
    "(before its update); the test set is evaluated in inference mode (the study's code left the model in " +
    "training mode: dropout on, batch statistics).",
    "stepsPerSecond counts training steps only (evaluation and checkpoints excluded).",
  ];
  if (cfg.dropout) notes.push("Dropout p=0.5 after each hidden ReLU (masks seeded per step).");
  if (cfg.batchnorm !== "none") {
    notes.push(
      `Batch norm (models/batchnorm, ${cfg.batchnorm} backward) before each Linear; running statistics ` +
        "(momentum 0.1, unbiased variance, as PyTorch) for inference mode.",
    );
  }
  if (r.resumedFrom) notes.push(`Resumed from a checkpoint at step ${r.resumedFrom}.`);
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
  const r = await trainTorchMlp(data, cfg, {
    progress: (p) => ctx.progress(p),
    log: (m) => ctx.log(m),
    checkpointDir: ctx.checkpointDir,
  });
  const history: TrainingHistory & { evalImagesPerSecond: number } = {
    run: ctx.stage,
    params: ctx.params,
    backend: r.backend,
    evals: r.evals,
    final: r.final,
    wallSeconds: r.wallSeconds,
    stepsPerSecond: r.stepsPerSecond,
    evalImagesPerSecond: r.evalImagesPerSecond,
    notes: torchMlpNotes(cfg, r),
  };
  await Deno.writeTextFile(join(ctx.outDir, "history.json"), JSON.stringify(history, null, 2) + "\n");
  ctx.log(
    `test accuracy ${r.final.testAcc.toFixed(4)} after ${cfg.steps} steps (${r.stepsPerSecond.toFixed(2)} steps/s)`,
  );
  return {
    test_acc: r.final.testAcc,
    test_loss: r.final.testLoss,
    train_acc: r.final.trainAcc,
    steps_per_s: r.stepsPerSecond,
  };
}
