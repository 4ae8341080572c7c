// The one frame every stage that trains the autograd MLP runs in
// (train-torch-mlp, train-batchnorm, train-search-pick): the training loop's
// hooks (progress, log, checkpoints, --verify-steps), the run's record (what it
// cost and ran on), history.json with the notes every such run carries, and
// the weights and test predictions. A stage adds only what is its own.
import { join } from "node:path";
import type { Split } from "../../data/dataset.ts";
import type { ParamValue, StageContext, TrainingHistory } from "../../pipeline/types.ts";
import { writeArtifacts } from "../artifacts.ts";
import { type TorchMlpConfig, type TorchMlpResult, trainTorchMlp } from "./train.ts";

/** The parameters an autograd MLP run is trained from (a Table 1 row's; history.json's `params`). */
export interface MlpRunParams {
  hidden: number[];
  lr: number;
  batch: number;
  steps: number;
  eval_every: number;
  seed: number;
  dropout?: boolean;
}

/** The training loop's settings from a run's parameters; `batchnorm`: none, or which backward. */
export function configFromParams(p: MlpRunParams, batchnorm: TorchMlpConfig["batchnorm"]): TorchMlpConfig {
  return {
    hidden: p.hidden,
    lr: p.lr,
    batch: p.batch,
    steps: p.steps,
    evalEvery: p.eval_every,
    seed: p.seed,
    dropout: Boolean(p.dropout),
    batchnorm,
  };
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

const LAYOUT = "MLP: for each l, [x = (x - norm.running_mean) / sqrt(norm.running_var + 1e-5) * norm.weight + " +
  "norm.bias], x = x · layers.l.weight + layers.l.bias, relu between layers; weights are in × out; inputs are the " +
  "NHWC pixels minus the training mean image, flattened";

/** What a stage adds to the common frame. */
export interface TorchMlpStageOptions {
  /** The parameters history.json records (default: ctx.params). */
  params?: TrainingHistory["params"];
  /** history.json's fields of the stage's own, after `final` (e.g. the run it is compared with). */
  fields?: Record<string, unknown>;
  /** Notes of the stage's own, before those of every autograd MLP run. */
  notes?: string[];
  /** Shown with every progress report, e.g. { bn: "manual" }. */
  progress?: Record<string, string>;
}

/**
 * Train the autograd MLP of `cfg` on `data` as a stage: checkpoints in ctx.checkpointDir,
 * `--verify-steps` honoured; the record, history.json, weights.safetensors and predictions.npy
 * written. Returns the run (for the stage's log line and metrics).
 */
export async function runTorchMlpStage(
  ctx: StageContext<Record<string, ParamValue>>,
  data: { train: Split; test: Split },
  cfg: TorchMlpConfig,
  opts: TorchMlpStageOptions = {},
): Promise<TorchMlpResult> {
  const extra = opts.progress;
  const r = await trainTorchMlp(data, cfg, {
    progress: (p) => ctx.progress(extra ? { ...p, extra } : p),
    log: (m) => ctx.log(m),
    checkpointDir: ctx.checkpointDir,
    stopAfterSteps: ctx.stopAfterSteps,
  });
  // What the run cost and ran on: the run's record, not its outputs (two runs of one key give the same bytes).
  ctx.record({
    compute: r.backend,
    trainSeconds: r.wallSeconds,
    stepsPerSecond: r.stepsPerSecond,
    evalImagesPerSecond: r.evalImagesPerSecond,
    resumes: r.processes - 1,
    ...(r.resumedFrom ? { resumedFrom: r.resumedFrom } : {}),
  });
  const history: TrainingHistory & Record<string, unknown> = {
    run: ctx.stage,
    params: opts.params ?? ctx.params,
    evals: r.evals,
    final: r.final,
    ...opts.fields,
    notes: [...(opts.notes ?? []), ...torchMlpNotes(cfg)],
  };
  await Deno.writeTextFile(join(ctx.outDir, "history.json"), JSON.stringify(history, null, 2) + "\n");
  await writeArtifacts(ctx.outDir, r.weights, r.predictions, LAYOUT);
  return r;
}
