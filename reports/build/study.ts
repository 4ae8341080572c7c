// The study's reference numbers and the settings they came from: the ONLY
// typed-in numbers of the report. Source: the study's Table 1 and text
// (shared/seeds/000_87f48ea41277e7f6.txt) and shared/SPEC.md (the assignment's
// expected accuracies). Everything else in the report comes from the inputs.

export const STUDY_SOURCE = "the study (Assignment 1: MLPs, CNNs and Backpropagation) and its assignment, via SPEC.md";

/** One row of the study's Table 1; `variant` names the train-torch-mlp variant that reproduces it. */
export interface StudyRow {
  variant: string;
  label: string;
  hidden: number[];
  lr: number;
  batch: number;
  steps: number;
  dropout: boolean;
  batchnorm: boolean;
  /** Accuracy of the last training batch, as a fraction. */
  trainAcc: number;
  testAcc: number;
}

const GA1 = { hidden: [1000, 500, 250, 100], lr: 1.68e-4, batch: 1609, steps: 4681 };

export const TABLE1: StudyRow[] = [
  {
    variant: "default",
    label: "Default",
    hidden: [100],
    lr: 2e-3,
    batch: 200,
    steps: 1500,
    dropout: false,
    batchnorm: false,
    trainAcc: 0.425,
    testAcc: 0.444,
  },
  { variant: "ga1", label: "GA1", ...GA1, dropout: false, batchnorm: false, trainAcc: 1.0, testAcc: 0.537 },
  {
    variant: "ga1-dropout",
    label: "GA1 + dropout",
    ...GA1,
    dropout: true,
    batchnorm: false,
    trainAcc: 0.635,
    testAcc: 0.497,
  },
  {
    variant: "ga1-dropout-batchnorm",
    label: "GA1 + dropout + batchnorm",
    ...GA1,
    dropout: true,
    batchnorm: true,
    trainAcc: 0.826,
    testAcc: 0.516,
  },
  {
    variant: "ga2",
    label: "GA2",
    hidden: [1000, 100],
    lr: 1.5e-4,
    batch: 1824,
    steps: 3030,
    dropout: false,
    batchnorm: false,
    trainAcc: 1.0,
    testAcc: 0.506,
  },
  {
    variant: "ga3",
    label: "GA3",
    hidden: [1000, 1000],
    lr: 5.72e-5,
    batch: 809,
    steps: 4365,
    dropout: false,
    batchnorm: false,
    trainAcc: 1.0,
    testAcc: 0.535,
  },
];

/** The study's own settings for the other runs, to tell a faithful run from a smoke run. */
export const STUDY_SETTINGS: Record<string, Record<string, number | number[]>> = {
  "train-numpy-mlp": { hidden: [100], lr: 2e-3, batch: 200, steps: 1500 },
  "train-batchnorm": GA1,
  "dropout-eval-mode": GA1,
  "batchnorm-eval-mode": GA1,
  "train-cnn": { lr: 1e-4, batch: 32, steps: 5000 },
  // Population 10, 5 generations, every individual trained for its full steps, no budget.
  "search-mlp": { population: 10, generations: 5, step_scale: 1, budget_steps: 0 },
};

/** Expected test accuracies the study and its assignment state for the other runs. */
export const EXPECTED = {
  /** The assignment's figure for the hand-written MLP. */
  numpyMlpTestAcc: 0.46,
  /** The assignment asks for at least this from the best autograd MLP. */
  bestMlpTarget: 0.52,
  /** The assignment's figure for the CNN. */
  cnnTestAcc: 0.75,
};

/** Where our code does what the study's code did not (SPEC.md), in the report's words. */
export const QUIRKS: { what: string; study: string; ours: string }[] = [
  {
    what: "ReLU derivative at 0",
    study: "the report's derivation takes it as 1 at 0 (eq. 12), its code as 0",
    ours: "either; the hand-written MLP states its choice in its notes (below). They differ only at exactly 0",
  },
  {
    what: "Batch-norm running statistics",
    study: "the custom batch norm kept no running mean/variance, so evaluation used batch statistics",
    ours: "running mean and variance (momentum 0.1); evaluation in inference mode",
  },
  {
    what: "Batch-norm backward, eq. 69",
    study: "prints (x−μ)/(σ²+ε) where x̂ = (x−μ)/√(σ²+ε) belongs (the code is right)",
    ours: "dx = (1/B)·(1/√(σ²+ε))·(B·dx̂ − Σ dx̂ − x̂·Σ(dx̂·x̂)), checked against finite differences",
  },
  {
    what: "CNN batch norm",
    study: "conv3_a/conv3_b (and 4, 5) shared one BatchNorm; the test set was evaluated in training mode",
    ours: "one BatchNorm per conv; test evaluation in inference mode with running statistics",
  },
  {
    what: "Autograd MLP test evaluation",
    study: "not stated; its CNN code scored the test set in training mode and, by the evidence of the " +
      "eval-mode stages (section 2), so did its MLP code",
    ours: "inference mode: dropout off, batch norm with running statistics",
  },
  {
    what: "Hyper-parameter search (GA)",
    study: "selected individuals on test accuracy, which overfits the test set",
    ours: "selects on a validation split held out of the training set; only the final pick is tested",
  },
];

/**
 * The study's test-accuracy curves, read by eye (about ±0.01) from its own published figures
 * (shared/seeds/study-curves-read-from-figures.json). Point k is evaluation k (0: before
 * training), `every` steps apart; GA1's plot has 34 evaluations over its 4,681 steps, of which
 * the first five were read, then a plateau to the end.
 */
export const STUDY_CURVES = {
  numpy: {
    every: 100,
    testAcc: [0.145, 0.405, 0.433, 0.411, 0.433, 0.442, 0.426, 0.411, 0.433, 0.466, 0.476, 0.47, 0.424, 0.457, 0.465],
  },
  default: {
    every: 100,
    testAcc: [
      0.165,
      0.331,
      0.328,
      0.375,
      0.388,
      0.43,
      0.432,
      0.46,
      0.457,
      0.437,
      0.443,
      0.443,
      0.422,
      0.435,
      0.428,
      0.445,
    ],
  },
  ga1: { every: 4681 / 33, testAcc: [0.23, 0.5, 0.525, 0.525, 0.537], plateau: 0.538, steps: 4681 },
  cnn: { every: 500, testAcc: [0.15, 0.61, 0.655, 0.69, 0.715, 0.74, 0.74, 0.755, 0.767, 0.772, 0.76] },
};

/** CIFAR-10's classes, by label (SPEC.md). */
export const CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

/**
 * The study's claims (its section 2 and Table 1), as issue 24 words them; the report judges each against our
 * runs (reports/build/sections/claims.ts). `scored`: the claim depends on how the test set is scored (dropout).
 */
export const CLAIMS: { n: number; text: string; scored?: boolean }[] = [
  { n: 1, text: "With the default parameters the autograd MLP does not reach 50% test accuracy." },
  {
    n: 2,
    text: "The search found architectures that fit the training set completely (100% train accuracy: GA1, GA2, GA3).",
  },
  { n: 3, text: "GA1 and GA3, two very different architectures, reach similar test accuracy (53.7% and 53.5%)." },
  {
    n: 4,
    text: "Dropout after every linear layer (GA1 + dropout) stops the overfitting (train 63.5%) but lowers test " +
      "accuracy (49.7% vs GA1's 53.7%).",
    scored: true,
  },
  {
    n: 5,
    text: "Batch norm before every linear layer (GA1 + dropout + batchnorm) does not improve test accuracy further " +
      "(51.6%).",
    scored: true,
  },
  { n: 6, text: "GA1 is the best of the table; GA2 is below GA1 (50.6%).", scored: true },
  { n: 7, text: "The small VGG reaches about 75% (the assignment's target)." },
];

/** The thresholds of claims 1 and 7 (test accuracy, fractions). */
export const CLAIM_THRESHOLDS = { defaultBelow: 0.5, cnnAbout: 0.75 };

/**
 * Our margin for "similar" (claim 3), "does not improve" (claim 5) and "about" (claim 7): 1 point of test
 * accuracy, about the SD over seeds of one row (the Default row's, the CNN's: 1.5 and 2.3 points).
 */
export const EQUIVALENCE_MARGIN = 0.01;
