// One individual of the search: train the MLP on the training set minus the
// held-out validation images, and score it on the validation images — or, for
// the final pick only, on the test set. Runs in its own process (runTask).
import { loadSplits, type Split } from "../../data/dataset.ts";
import { PipelineError } from "../../pipeline/types.ts";
import { trainTorchMlp } from "../torch_mlp/train.ts";

export interface EvaluateArg {
  dataDir: string;
  validation: number;
  hidden: number[];
  lr: number;
  batch: number;
  steps: number;
  seed: number;
  /** Score on the test set instead of the validation split (the final pick, once). */
  onTest: boolean;
}

export interface Score {
  acc: number;
  loss: number;
  /** Accuracy on the last training batch. */
  trainAcc: number;
  stepsPerSecond: number;
  batch: number;
}

/** The last `validation` training images are held out (CIFAR's training order is already random). */
export function holdOut(train: Split, validation: number): { fit: Split; val: Split } {
  if (validation < 1 || validation >= train.n) {
    throw new PipelineError(
      `search-mlp.validation=${validation} does not fit ${train.n} training images`,
      `use a validation size between 1 and ${train.n - 1}`,
    );
  }
  const cut = train.n - validation;
  const part = (from: number, to: number): Split => ({
    x: train.x.subarray(from * 3072, to * 3072),
    y: train.y.subarray(from, to),
    n: to - from,
  });
  return { fit: part(0, cut), val: part(cut, train.n) };
}

export async function evaluate(arg: EvaluateArg): Promise<Score> {
  const { train, test } = await loadSplits(arg.dataDir);
  const { fit, val } = holdOut(train, arg.validation);
  const batch = Math.min(arg.batch, fit.n); // tiny (smoke) sets: a batch cannot exceed the set
  const r = await trainTorchMlp(
    { train: fit, test: arg.onTest ? test : val },
    {
      hidden: arg.hidden,
      lr: arg.lr,
      batch,
      steps: arg.steps,
      evalEvery: arg.steps,
      seed: arg.seed,
      dropout: false,
      batchnorm: "none",
    },
  );
  return {
    acc: r.final.testAcc,
    loss: r.final.testLoss,
    trainAcc: r.final.trainAcc,
    stepsPerSecond: r.stepsPerSecond,
    batch,
  };
}
