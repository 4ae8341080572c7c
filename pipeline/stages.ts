// The study's pipeline, declared in one place. Defaults are the study's
// (../shared/SPEC.md). The engine derives everything else: order, cache keys,
// what is stale and why. Each declaration also types its stage's parameters:
// the `…Params` types below are what each stage module's run() gets as
// ctx.params (`run(ctx: StageContext<TrainCnnParams>)`, an `import type`), so a
// renamed or misspelt parameter fails `deno task check`, not a run.
import type { ParamsOf, ParamSpec, ParamValue, Profile, StageDef } from "./types.ts";

/**
 * One stage's declaration, its parameter specs kept literal (`type: "float"`,
 * `choices`) so that ParamsOf<typeof it> gives the stage's typed parameters; a
 * variant naming a parameter the stage does not declare fails the type check.
 */
function defineStage<const P extends Record<string, ParamSpec>>(
  def: Omit<StageDef<P>, "variants"> & { variants?: Record<string, { [K in keyof P]?: ParamValue }> },
): StageDef<P> {
  return def as StageDef<P>;
}

const seed = { type: "int", default: 42, min: 0, doc: "seed of every random draw of the stage" } as const;
const evalEvery = (n: number) =>
  ({ type: "int", default: n, min: 1, doc: "evaluate every N steps and at the last step" }) as const;

/**
 * Seeds of the runs repeated to measure the spread over seeds (42 is every stage's default):
 * each other seed is its own node, `<node>+s<seed>` (pipeline/engine/graph.ts).
 */
const SEEDS = [42, 1, 2, 3, 4];

/** The study's GA1 network and schedule (Table 1), shared by its rows and the stages that retrain it. */
const GA1 = { hidden: [1000, 500, 250, 100], lr: 1.68e-4, batch: 1609, steps: 4681 };

/** GA1's settings as parameters, for a stage that trains the network of a Table 1 run (`run`) again. */
const ga1Params = (run: string) =>
  ({
    hidden: { type: "ints", default: GA1.hidden, min: 1, doc: `hidden layer sizes (${run}'s)` },
    lr: { type: "float", default: GA1.lr, min: 0, doc: `Adam learning rate (${run}'s)` },
    batch: { type: "int", default: GA1.batch, min: 1, doc: `mini-batch size (${run}'s)` },
    steps: { type: "int", default: GA1.steps, min: 1, doc: `training steps (${run}'s)` },
    eval_every: evalEvery(100),
  }) as const;

/** A stage that scores a dropout row of Table 1 (`twin`)'s final weights on the test set in both modes. */
const evalModeStage = (name: string, twin: string, doc: string) =>
  defineStage({
    name,
    doc,
    deps: ["preprocess", twin],
    reads: { [twin]: ["history.json", "weights.safetensors"] },
    perSeedOf: twin, // one run per seed of the twin, scoring that seed's weights
    module: "models/torch_mlp/eval_mode_stage.ts",
    outputs: ["history.json"],
    params: {
      draws: { type: "int", default: 5, min: 1, doc: "draws of the dropout masks for the training-mode score" },
    },
  });

const download = defineStage({
  name: "download",
  doc: "fetch the CIFAR-10 binary archive, verify it, extract the six batch files",
  deps: [],
  module: "data/download_stage.ts",
  resources: { memMB: 2048, seconds: 3600 },
  outputs: [
    "cifar-10-batches-bin/data_batch_1.bin",
    "cifar-10-batches-bin/data_batch_2.bin",
    "cifar-10-batches-bin/data_batch_3.bin",
    "cifar-10-batches-bin/data_batch_4.bin",
    "cifar-10-batches-bin/data_batch_5.bin",
    "cifar-10-batches-bin/test_batch.bin",
    "cifar-10-batches-bin/batches.meta.txt",
  ],
  params: {
    dataset: {
      type: "string",
      default: "cifar-10",
      choices: ["cifar-10", "synthetic"],
      doc: "the real CIFAR-10 (checked against its official per-file MD5s) or a small fake set for smoke runs",
    },
    url: {
      type: "string",
      default: "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
      doc: "http(s) URL or local path of the archive (where from, not what: kept out of the cache key)",
      transport: true,
    },
    mirrors: {
      type: "string",
      default: "../shared/data/cifar-10-binary.tar.gz",
      doc: "comma-separated fallbacks tried in order when url fails (verified by the same checksums)",
      transport: true,
    },
    synthetic_train: {
      type: "int",
      default: 500,
      min: 10,
      doc: "images per training batch file when dataset=synthetic",
    },
    synthetic_test: { type: "int", default: 500, min: 10, doc: "test images when dataset=synthetic" },
  },
});
export type DownloadParams = ParamsOf<typeof download>;

const preprocess = defineStage({
  name: "preprocess",
  doc: "float32, minus the training set's per-pixel mean image (NHWC .npy files)",
  deps: ["download"],
  module: "data/preprocess_stage.ts",
  resources: { memMB: 4096, seconds: 3600 },
  outputs: ["train_x.npy", "train_y.npy", "test_x.npy", "test_y.npy", "mean.npy", "summary.json"],
  params: {},
});
export type PreprocessParams = ParamsOf<typeof preprocess>;

const trainNumpyMlp = defineStage({
  name: "train-numpy-mlp",
  doc: "MLP with hand-written forward/backward and plain SGD (no autograd)",
  deps: ["preprocess"],
  module: "models/numpy_mlp/stage.ts",
  outputs: ["history.json", "weights.safetensors", "predictions.npy"],
  seeds: SEEDS,
  params: {
    hidden: { type: "ints", default: [100], min: 1, doc: "hidden layer sizes" },
    lr: { type: "float", default: 2e-3, min: 0, doc: "SGD learning rate" },
    batch: { type: "int", default: 200, min: 1, doc: "mini-batch size" },
    steps: { type: "int", default: 1500, min: 1, doc: "training steps" },
    eval_every: evalEvery(100),
    seed,
  },
});
export type TrainNumpyMlpParams = ParamsOf<typeof trainNumpyMlp>;

const trainTorchMlp = defineStage({
  name: "train-torch-mlp",
  doc: "the same MLP with automatic differentiation (tfjs), Adam; the study's Table 1",
  deps: ["preprocess"],
  module: "models/torch_mlp/stage.ts",
  outputs: ["history.json", "weights.safetensors", "predictions.npy"],
  params: {
    hidden: { type: "ints", default: [100], min: 1, doc: "hidden layer sizes" },
    lr: { type: "float", default: 2e-3, min: 0, doc: "Adam learning rate" },
    batch: { type: "int", default: 200, min: 1, doc: "mini-batch size" },
    steps: { type: "int", default: 1500, min: 1, doc: "training steps" },
    dropout: { type: "bool", default: false, doc: "Dropout p=0.5 after each hidden ReLU" },
    batchnorm: { type: "bool", default: false, doc: "BatchNorm before each Linear" },
    eval_every: evalEvery(100),
    seed,
  },
  variants: {
    default: {},
    ga1: GA1,
    "ga1-dropout": { ...GA1, dropout: true },
    // The autograd twin of train-batchnorm: same settings, batch norm by autograd.
    "ga1-dropout-batchnorm": { ...GA1, dropout: true, batchnorm: true },
    ga2: { hidden: [1000, 100], lr: 1.5e-4, batch: 1824, steps: 3030 },
    ga3: { hidden: [1000, 1000], lr: 5.72e-5, batch: 809, steps: 4365 },
  },
  // Every row over the five seeds (each GA seed is 8-60 min here), all in the committed remote: a seed declared
  // but not pushed there would make a fresh clone's `reproduce` train it.
  seeds: SEEDS,
});
export type TrainTorchMlpParams = ParamsOf<typeof trainTorchMlp>;

const trainBatchnorm = defineStage({
  name: "train-batchnorm",
  doc: "custom batch norm: the gradient checks, and the GA1+dropout+BN MLP trained with the hand-written backward",
  // Not a dependent of its autograd twin (train-torch-mlp@ga1-dropout-batchnorm), so that the
  // two long runs can train at once (--jobs 2); the report sets their curves side by side.
  deps: ["preprocess"],
  module: "models/torch_mlp/batchnorm_stage.ts",
  seeds: SEEDS, // 36-44 min a seed here
  outputs: ["history.json", "checks.json", "weights.safetensors", "predictions.npy"],
  params: {
    ...ga1Params("train-torch-mlp@ga1-dropout-batchnorm"),
    seed: { ...seed, doc: "seed of the checks' random inputs and of training (the twin's)" },
  },
});
export type TrainBatchnormParams = ParamsOf<typeof trainBatchnorm>;

const dropoutEvalMode = evalModeStage(
  "dropout-eval-mode",
  "train-torch-mlp@ga1-dropout",
  "evidence: GA1+dropout's final weights, its test set scored in inference mode and in training mode (dropout on)",
);

const batchnormEvalMode = evalModeStage(
  "batchnorm-eval-mode",
  "train-torch-mlp@ga1-dropout-batchnorm",
  "evidence: GA1+dropout+BN's final weights, its test set scored in inference mode and in training mode " +
    "(dropout on, batch statistics)",
);
/** The parameters of both eval-mode stages (models/torch_mlp/eval_mode_stage.ts). */
export type EvalModeParams = ParamsOf<typeof dropoutEvalMode>;

const trainCnn = defineStage({
  name: "train-cnn",
  doc: "the study's small VGG, Adam, batch norm after every conv",
  deps: ["preprocess"],
  module: "models/cnn/stage.ts",
  resources: { memMB: 8192, seconds: 8 * 3600 },
  outputs: ["history.json", "weights.safetensors", "predictions.npy"],
  // Each seed is an hour or more here: `reproduce report --partial` shows the seeds cached so far.
  seeds: SEEDS,
  params: {
    lr: { type: "float", default: 1e-4, min: 0, doc: "Adam learning rate" },
    batch: { type: "int", default: 32, min: 1, doc: "mini-batch size" },
    steps: { type: "int", default: 5000, min: 1, doc: "training steps" },
    eval_every: evalEvery(500),
    width: {
      type: "float",
      default: 1,
      min: 0,
      doc: "channel multiplier (1 = the study's VGG; smaller for smoke runs)",
    },
    seed,
    compute: {
      type: "string",
      default: "onednn",
      choices: ["onednn", "own"],
      doc: "onednn: oneDNN primitives (needs libdnnl2); own: JS kernels + GEMM (other bits, its own key)",
    },
  },
});
export type TrainCnnParams = ParamsOf<typeof trainCnn>;

const searchMlp = defineStage({
  name: "search-mlp",
  doc: "the study's evolutionary hyper-parameter search, selecting on a validation split",
  deps: ["preprocess"],
  module: "models/search/stage.ts",
  // The stage's job only waits for its individuals' jobs (taskResources): one per individual.
  resources: { memMB: 1024, seconds: 7 * 86400 },
  taskResources: { memMB: 4096, seconds: 2 * 3600 },
  outputs: ["search.json"],
  params: {
    population: { type: "int", default: 10, min: 2, doc: "individuals per generation" },
    generations: { type: "int", default: 5, min: 1, doc: "generations" },
    validation: { type: "int", default: 5000, min: 1, doc: "training images held out for selection" },
    step_scale: { type: "float", default: 1, min: 0, doc: "multiply every individual's steps (a cheap search: 0.1)" },
    budget_steps: {
      type: "int",
      default: 0,
      min: 0,
      doc: "stop after this many training steps in all (0: no limit)",
    },
    seed,
  },
});
export type SearchMlpParams = ParamsOf<typeof searchMlp>;

const trainSearchPick = defineStage({
  name: "train-search-pick",
  doc: "the search's final pick trained as a Table 1 run (full steps, whole training set)",
  deps: ["preprocess", "search-mlp"],
  reads: { "search-mlp": ["search.json"] },
  module: "models/search/train_pick.ts",
  seeds: SEEDS, // about 6 min a seed here
  outputs: ["history.json", "weights.safetensors", "predictions.npy"],
  params: {
    step_scale: { type: "float", default: 1, min: 0, doc: "multiply the pick's steps (1: as the search found them)" },
    eval_every: evalEvery(100),
    seed,
  },
});
export type TrainSearchPickParams = ParamsOf<typeof trainSearchPick>;

const report = defineStage({
  name: "report",
  doc: "figures (Vega-Lite → SVG/PNG), Table 1 beside the study's, REPORT.md and index.html",
  deps: [
    "preprocess", // the test labels, for per-class results from the runs' test predictions
    "train-numpy-mlp",
    "train-torch-mlp",
    "dropout-eval-mode",
    "batchnorm-eval-mode",
    "train-batchnorm",
    "train-cnn",
    "search-mlp",
    "train-search-pick",
  ],
  // Curves, metrics and test predictions: never weights or the raw data, so a clone whose runs are
  // thin (restored from the committed remote) re-renders the report in seconds.
  reads: {
    preprocess: ["test_y.npy"],
    "train-numpy-mlp": ["history.json", "predictions.npy"],
    "train-torch-mlp": ["history.json", "predictions.npy"],
    "dropout-eval-mode": ["history.json"],
    "batchnorm-eval-mode": ["history.json"],
    "train-batchnorm": ["history.json", "checks.json", "predictions.npy"],
    "train-cnn": ["history.json", "predictions.npy"],
    "search-mlp": ["search.json"],
    "train-search-pick": ["history.json", "predictions.npy"],
  },
  module: "reports/build/stage.ts",
  outputs: ["REPORT.md", "index.html"],
  params: {},
  readsRecords: true,
  publish: "reports",
});
export type ReportParams = ParamsOf<typeof report>;

export const STAGES: StageDef[] = [
  download,
  preprocess,
  trainNumpyMlp,
  trainTorchMlp,
  trainBatchnorm,
  dropoutEvalMode,
  batchnormEvalMode,
  trainCnn,
  searchMlp,
  trainSearchPick,
  report,
];

/** Named sets of overrides: `deno task reproduce --profile smoke`. */
export const PROFILES: Record<string, Profile> = {
  smoke: {
    doc: "the whole pipeline on a tiny synthetic CIFAR-format set, two seeds per stage, a few steps each: " +
      "checks the plumbing (about 20 CPU-seconds), not the science",
    set: {
      "download.dataset": "synthetic",
      "download.synthetic_train": 100,
      "download.synthetic_test": 100,
      "train-numpy-mlp.steps": 20,
      "train-numpy-mlp.eval_every": 10,
      // Every variant's network small (GA1's alone is 3.5M weights to draw, write and hash per node).
      "train-torch-mlp.hidden": [100, 50],
      "train-torch-mlp.steps": 6,
      "train-torch-mlp.batch": 50,
      "train-torch-mlp.eval_every": 3,
      "train-batchnorm.hidden": [100, 50],
      "train-batchnorm.steps": 6,
      "train-batchnorm.batch": 50,
      "train-batchnorm.eval_every": 3,
      "train-cnn.steps": 4,
      "train-cnn.batch": 8,
      "train-cnn.width": 0.125,
      "train-cnn.eval_every": 2,
      // Two individuals over two generations (a crossover, a mutation, the elite kept), a step or two each.
      "search-mlp.population": 2,
      "search-mlp.generations": 2,
      "search-mlp.step_scale": 0.0004,
      "search-mlp.validation": 100,
      "train-search-pick.step_scale": 0.0004,
      "train-search-pick.eval_every": 1,
    },
    maxSeeds: 2,
    publish: { report: "reports/smoke" },
  },
};
