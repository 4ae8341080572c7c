// Reads and checks what the upstream stages wrote: each training run's
// history.json, the batch-norm checks, the search, and the engine's
// _provenance.json next to them. A stage left out of the inputs has not run
// yet (`reproduce report --single` while long runs go on): the report says so
// in its place. A stage given but with bad or missing files is one PipelineError.
// A run repeated over seeds (`<node>+s<seed>`) is read with its base run;
// test predictions (`predictions.npy`) and the test labels when they exist.
import { createHash } from "node:crypto";
import { join } from "node:path";
import { parseNpy } from "../../data/npy.ts";
import { curveDifference } from "./curves.ts";
import { type EvalPoint, PipelineError, type TrainingHistory } from "../../pipeline/types.ts";
import { TABLE1 } from "./study.ts";

/** What the engine writes next to every input (engine.ts `provenance`). */
export interface Provenance {
  stage: string;
  key: string;
  params: Record<string, unknown>;
  code_hash: string;
  outputs: Record<string, string>;
  deno: string;
  /** "name@version" of every npm package the stage's code reaches. */
  npm: string[];
  started: string;
  /** The stage time of the run's last process (a resumed run's earlier processes are in record). */
  wall_s: number;
  /** Facts about the run that are not results (host, compute path, summed training time, resumptions). */
  record: Record<string, unknown>;
}

/** One file read from an input, with its hash (checked against the provenance when there is one). */
export interface Source {
  stage: string;
  file: string;
  sha256: string;
  /** true: matches the engine's record; false: differs; undefined: no record. */
  verified?: boolean;
  provenance?: Provenance;
}

/** A named curve: the history's own evals, or an extra one it carries (the manual batch norm). */
export interface Curve {
  label: string;
  evals: EvalPoint[];
  /** The cost of this curve's run, when the history records it beside the curve. */
  wallSeconds?: number;
  stepsPerSecond?: number;
  /** The run this curve was read from, when not the run that carries it (the batch norm's autograd twin). */
  from?: Run;
}

export interface Run {
  stage: string;
  history: TrainingHistory;
  curves: Curve[];
  source: Source;
  /** The batch-norm run only: how its curve was set beside its autograd twin's, or why not. */
  pairing?: string;
  /** The class predicted for each test image, in test order (runs that wrote predictions.npy). */
  predictions?: Uint8Array;
  predictionsSource?: Source;
}

export interface Table {
  title?: string;
  rows: Record<string, unknown>[];
}

export interface ReportInputs {
  /** Absent: the stage has not run yet (likewise for every optional field). */
  numpy?: Run;
  /** Table 1 variant → run, in the study's order; only the variants that have run. */
  torch: Map<string, Run>;
  batchnorm?: Run;
  checks?: { tables: Table[]; scalars: Record<string, unknown>; source: Source };
  cnn?: Run;
  search?: { data: unknown; source: Source };
  /** The eval-mode stages (a dropout row of Table 1 trained again, scored in inference and in training mode). */
  evalModes: Map<string, Run>;
  /** train-search-pick: the search's pick trained as a Table 1 run. */
  searchPick?: Run;
  /** The stages of RUN_STAGES not among the inputs, in that order (empty: a full report). */
  missing: string[];
  /** A run repeated over seeds: its base node → the seed nodes' runs among the inputs (the base not included). */
  seeds: Map<string, Run[]>;
  /** A run repeated over seeds: base node → how many seeds the pipeline declares for it (the base's included). */
  declaredSeeds: Map<string, number>;
  /** The test set's labels (preprocess's test_y.npy), when some run has predictions to score. */
  testLabels?: { labels: Uint8Array; source: Source };
}

const TORCH = "train-torch-mlp";
export const torchStage = (variant: string) => `${TORCH}@${variant}`;

/** The stages that score a dropout row of Table 1 both ways, and that row's variant. */
export const EVAL_MODE_STAGES = [
  { stage: "dropout-eval-mode", variant: "ga1-dropout" },
  { stage: "batchnorm-eval-mode", variant: "ga1-dropout-batchnorm" },
];

/** Every upstream run the report shows, in the report's order; all but the search are training runs. */
export const RUN_STAGES = [
  "train-numpy-mlp",
  ...TABLE1.map((r) => torchStage(r.variant)),
  ...EVAL_MODE_STAGES.map((e) => e.stage),
  "train-batchnorm",
  "train-cnn",
  "search-mlp",
  "train-search-pick",
];

/** What the report shows in place of a run that is not among its inputs. */
export const notRunYet = (stage: string) => `not run yet — \`deno task reproduce ${stage}\``;

/** `notRun`: upstream nodes declared but not finished (a `--partial` report, StageContext.notRun). */
export async function readInputs(inputs: Record<string, string>, notRun: string[] = []): Promise<ReportInputs> {
  const missing = RUN_STAGES.filter((s) => !inputs[s]);
  if (RUN_STAGES.every((s) => s === "search-mlp" || missing.includes(s))) {
    throw new PipelineError(
      `report has none of its training runs among its inputs (${Object.keys(inputs).join(", ") || "none"})`,
      `run \`deno task reproduce report\`, or finish a training stage first (e.g. \`deno task reproduce train-numpy-mlp\`)`,
    );
  }
  // Given but unreadable is a real error (readRun/readJson throw); not given is "not run yet".
  const maybe = <T>(stage: string, read: (dir: string) => Promise<T>) =>
    inputs[stage] ? read(inputs[stage]) : Promise.resolve(undefined);
  const torch = new Map<string, Run>();
  for (const row of TABLE1) {
    const run = await maybe(torchStage(row.variant), (d) => readRun(torchStage(row.variant), d));
    if (run) torch.set(row.variant, run);
  }
  const evalModes = new Map<string, Run>();
  for (const { stage } of EVAL_MODE_STAGES) {
    const run = await maybe(stage, (d) => readRun(stage, d));
    if (run) evalModes.set(stage, run);
  }
  // The seed nodes (`<stage>+s<seed>`) of each run the pipeline repeats over seeds: given, or declared and not run.
  const seeds = new Map<string, Run[]>();
  const declaredSeeds = new Map<string, number>();
  for (const base of RUN_STAGES) {
    const given = Object.keys(inputs).filter((k) => k.startsWith(`${base}+s`));
    const declared = given.length + notRun.filter((k) => k.startsWith(`${base}+s`)).length;
    if (!declared) continue;
    declaredSeeds.set(base, declared + 1);
    seeds.set(base, await Promise.all(given.map((name) => readRun(name, inputs[name]))));
  }
  const checks = await maybe("train-batchnorm", (d) => readJson("train-batchnorm", d, "checks.json"));
  const batchnorm = await maybe("train-batchnorm", (d) => readRun("train-batchnorm", d));
  const cnn = await maybe("train-cnn", (d) => readRun("train-cnn", d));
  const numpy = await maybe("train-numpy-mlp", (d) => readRun("train-numpy-mlp", d));
  const predicted = [numpy, cnn, ...torch.values()].some((r) => r?.predictions);
  const testLabels = predicted && inputs.preprocess ? await readLabels(inputs.preprocess) : undefined;
  return {
    numpy,
    torch,
    batchnorm: batchnorm && pairWithTwin(batchnorm, [...torch.values()]),
    checks: checks && { ...findTables(checks.data), source: checks.source },
    cnn,
    search: await maybe("search-mlp", (d) => readJson("search-mlp", d, "search.json")),
    evalModes,
    searchPick: await maybe("train-search-pick", (d) => readRun("train-search-pick", d)),
    missing,
    seeds,
    declaredSeeds,
    testLabels,
  };
}

/** A file's bytes and its Source (hash checked against the engine's record); undefined if absent. */
async function readBytes(stage: string, dir: string, file: string): Promise<{ bytes: Uint8Array; source: Source }> {
  const bytes = await Deno.readFile(join(dir, file));
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  const provenance = await readProvenance(dir);
  const recorded = provenance?.outputs[file];
  return { bytes, source: { stage, file, sha256, provenance, verified: recorded ? recorded === sha256 : undefined } };
}

/** uint8 class indices, one per test image; a wrong shape is a PipelineError. */
async function readClasses(stage: string, dir: string, file: string) {
  const { bytes, source } = await readBytes(stage, dir, file);
  const arr = parseNpy(bytes, `${stage}/${file}`);
  if (!(arr.data instanceof Uint8Array) || arr.shape.length !== 1) {
    throw new PipelineError(`${stage}/${file}: expected a 1-D uint8 array`, `rerun ${stage}`);
  }
  return { data: arr.data, source };
}

async function readLabels(dir: string) {
  try {
    const { data, source } = await readClasses("preprocess", dir, "test_y.npy");
    return { labels: data, source };
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined; // no labels: per-class results are left out, said so
    throw e;
  }
}

async function readJson(stage: string, dir: string, file: string): Promise<{ data: unknown; source: Source }> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(join(dir, file));
  } catch {
    throw new PipelineError(`${stage} did not provide ${file} (looked in ${dir})`, `rerun ${stage}: it writes ${file}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new PipelineError(`${stage}/${file} is not valid JSON (${(e as Error).message})`, `rerun ${stage}`);
  }
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  const provenance = await readProvenance(dir);
  const recorded = provenance?.outputs[file];
  return { data, source: { stage, file, sha256, provenance, verified: recorded ? recorded === sha256 : undefined } };
}

async function readProvenance(dir: string): Promise<Provenance | undefined> {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(await Deno.readTextFile(join(dir, "_provenance.json")));
  } catch {
    return undefined; // not run through the engine (e.g. a unit test): the report says so
  }
  // npm: the engine writes ["npm:vega@6.4.0", …]; accept { vega: "6.4.0" } too.
  const npm = Array.isArray(raw.npm)
    ? raw.npm.map((s) => String(s).replace(/^npm:/, ""))
    : Object.entries((raw.npm ?? {}) as Record<string, string>).map(([k, v]) => `${k}@${v}`);
  return {
    stage: String(raw.stage ?? ""),
    key: String(raw.key ?? ""),
    params: (raw.params ?? {}) as Record<string, unknown>,
    code_hash: String(raw.code_hash ?? ""),
    outputs: (raw.outputs ?? {}) as Record<string, string>,
    deno: String(raw.deno ?? ""),
    npm,
    started: String(raw.started ?? ""),
    wall_s: Number(raw.wall_s ?? NaN),
    record: (raw.record && typeof raw.record === "object" ? raw.record : {}) as Record<string, unknown>,
  };
}

async function readRun(stage: string, dir: string): Promise<Run> {
  const { data, source } = await readJson(stage, dir, "history.json");
  const bad = (what: string) =>
    new PipelineError(`${stage}/history.json: ${what}`, `rerun ${stage}; it must write a TrainingHistory`);
  if (!data || typeof data !== "object") throw bad("not an object");
  const h = data as TrainingHistory;
  if (!isCurve(h.evals) || !h.evals.length) throw bad("evals is missing or not a list of evaluation points");
  if (!isPoint(h.final)) throw bad("final is missing or not an evaluation point");
  h.params ??= {};
  h.notes ??= [];
  h.backend ??= "unknown";
  const run: Run = { stage, history: h, curves: curvesOf(h), source };
  try {
    const p = await readClasses(stage, dir, "predictions.npy");
    run.predictions = p.data;
    run.predictionsSource = p.source;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e; // runs made before predictions were written have none
  }
  return run;
}

/** What must match for the two batch-norm curves to be comparable. */
const TWIN_SETTINGS = ["hidden", "lr", "batch", "steps", "eval_every", "seed", "dropout", "batchnorm"];

/**
 * The manual batch-norm run (train-batchnorm) beside its autograd twin, the
 * Table 1 run its history names: both curves, the largest difference
 * between them, or why they are not compared.
 */
export function pairWithTwin(bn: Run, torchRuns: Run[]): Run {
  const twinName = String((bn.history as { twin?: unknown }).twin ?? torchStage("ga1-dropout-batchnorm"));
  const manual: Curve = { ...bn.curves[0], label: "manual" };
  const twin = torchRuns.find((r) => r.stage === twinName);
  if (!twin) return { ...bn, curves: [manual], pairing: `its autograd twin \`${twinName}\` has not run yet` };
  const show = (v: unknown) => JSON.stringify(v) ?? "unset";
  const differ = TWIN_SETTINGS.filter((k) => show(bn.history.params[k]) !== show(twin.history.params[k]))
    .map((k) => `${k} ${show(bn.history.params[k])} vs ${show(twin.history.params[k])}`);
  if (differ.length) {
    return {
      ...bn,
      curves: [manual],
      pairing: `not compared with \`${twinName}\`: settings differ (${differ.join(", ")})`,
    };
  }
  const h = twin.history;
  const autograd: Curve = {
    label: "autograd",
    evals: h.evals,
    wallSeconds: h.wallSeconds,
    stepsPerSecond: h.stepsPerSecond,
    from: twin,
  };
  let difference;
  try {
    difference = curveDifference(autograd.evals, manual.evals);
  } catch {
    return { ...bn, curves: [manual], pairing: `not compared with \`${twinName}\`: evaluated at different steps` };
  }
  return {
    ...bn,
    history: { ...bn.history, curveMaxAbsDifference: difference } as TrainingHistory,
    curves: [autograd, manual],
    pairing: `compared with its autograd twin \`${twinName}\` (same settings and seed)`,
  };
}

function isPoint(p: unknown): p is EvalPoint {
  if (!p || typeof p !== "object") return false;
  const q = p as Record<string, unknown>;
  // JSON turns NaN (a diverged loss) into null: allowed, plotted as a gap.
  const num = (v: unknown) => typeof v === "number" || v === null;
  return typeof q.step === "number" && num(q.trainLoss) && num(q.trainAcc) && num(q.testLoss) && num(q.testAcc);
}

function isCurve(v: unknown): v is EvalPoint[] {
  return Array.isArray(v) && v.every(isPoint);
}

/**
 * The history's own curve plus any other curve it carries, found by shape:
 * a field holding EvalPoint[] or { evals: EvalPoint[] }, up to two levels
 * down (the batch-norm stage keeps its manual-backward run this way).
 */
export function curvesOf(h: TrainingHistory): Curve[] {
  const extra: Curve[] = [];
  const visit = (v: unknown, path: string[], depth: number) => {
    if (isCurve(v) && v.length) extra.push({ label: path.join(" "), evals: v });
    else if (v && typeof v === "object" && !Array.isArray(v) && isCurve((v as { evals?: unknown }).evals)) {
      const run = v as { evals: EvalPoint[]; wallSeconds?: unknown; stepsPerSecond?: unknown };
      const num = (x: unknown) => (typeof x === "number" ? x : undefined);
      extra.push({
        label: path.join(" "),
        evals: run.evals,
        wallSeconds: num(run.wallSeconds),
        stepsPerSecond: num(run.stepsPerSecond),
      });
    } else if (v && typeof v === "object" && !Array.isArray(v) && depth < 2) {
      for (const [k, w] of Object.entries(v)) visit(w, k === "evals" ? path : [...path, k], depth + 1);
    }
  };
  for (const [k, v] of Object.entries(h)) if (!["evals", "final", "params"].includes(k)) visit(v, [k], 0);
  const same = (c: Curve) => JSON.stringify(c.evals) === JSON.stringify(h.evals);
  const others = extra.filter((c) => !same(c));
  const own = { evals: h.evals, wallSeconds: h.wallSeconds, stepsPerSecond: h.stepsPerSecond };
  if (!others.length) return [{ label: h.run || "run", ...own }];
  // Name the main curve by what the extras are not.
  const labels = others.map((c) => c.label.toLowerCase()).join(" ");
  const main = /manual|hand/.test(labels) ? "autograd" : /auto/.test(labels) ? "manual" : h.run || "main";
  return [{ label: main, ...own }, ...others.map((c) => ({ ...c, label: tidy(c.label) }))];
}

/** "manualEvals" → "manual", "curves manual" → "manual". */
function tidy(label: string): string {
  const words = label.replace(/([a-z])([A-Z])/g, "$1 $2").replace(/[_-]/g, " ").toLowerCase().split(/\s+/);
  const kept = words.filter((w) => !["evals", "curves", "curve", "history", "extra"].includes(w));
  return (kept.length ? kept : words).join(" ");
}

/** Every array of row objects in a JSON value (any shape), and its other values by path ("best / lr"). */
export function findTables(data: unknown): { tables: Table[]; scalars: Record<string, unknown> } {
  const tables: Table[] = [];
  const scalars: Record<string, unknown> = {};
  const isRows = (v: unknown): v is Record<string, unknown>[] =>
    Array.isArray(v) && v.length > 0 && v.every((r) => r && typeof r === "object" && !Array.isArray(r));
  const visit = (v: unknown, path: string[], depth: number) => {
    if (isRows(v)) tables.push({ title: path.join(" / ") || undefined, rows: v });
    else if (v && typeof v === "object" && !Array.isArray(v) && depth < 3) {
      for (const [k, w] of Object.entries(v)) visit(w, [...path, k], depth + 1);
    } else if (path.length) scalars[path.join(" / ")] = v;
  };
  visit(data, [], 0);
  return { tables, scalars };
}

const STANDARD = ["run", "params", "backend", "evals", "final", "wallSeconds", "stepsPerSecond", "notes"];

/** Scalars a history records beyond TrainingHistory and its curves (e.g. the largest curve difference). */
export function extraFields(h: TrainingHistory): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const visit = (v: unknown, path: string[], depth: number) => {
    if (v && typeof v === "object" && !Array.isArray(v) && depth < 2) {
      if (isCurve((v as { evals?: unknown }).evals)) return; // a curve's run: shown as a curve and a cost row
      for (const [k, w] of Object.entries(v)) visit(w, [...path, k], depth + 1);
    } else if (!isCurve(v)) out[path.join(" / ")] = v;
  };
  for (const [k, v] of Object.entries(h)) if (!STANDARD.includes(k)) visit(v, [k], 0);
  return out;
}
