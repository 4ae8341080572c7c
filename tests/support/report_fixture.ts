// Small fabricated upstream outputs for the report tests (report_test.ts,
// browser_test.ts): a history.json per training run, the batch-norm checks,
// optionally a search, the engine's _provenance.json (with a run's record),
// seed runs of the Default row, and test predictions with the test labels.
import { createHash } from "node:crypto";
import { join } from "node:path";
import { writeNpy } from "../../data/npy.ts";
import type { EvalPoint, TrainingHistory } from "../../pipeline/types.ts";

export const TORCH_VARIANTS = ["default", "ga1", "ga1-dropout", "ga1-dropout-batchnorm", "ga2", "ga3"];

function curve(steps: number, every: number, top: number, phase = 0): EvalPoint[] {
  const out: EvalPoint[] = [];
  for (let s = 0; s <= steps; s += every) {
    const t = s / steps;
    out.push({
      step: s,
      trainAcc: 0.1 + (top + 0.05) * t + 0.02 * Math.sin(s + phase),
      trainLoss: 2.3 - 1.2 * t + 0.05 * Math.cos(s + phase),
      testAcc: 0.1 + top * t,
      testLoss: 2.3 - t,
    });
  }
  return out;
}

function history(run: string, params: Record<string, number | number[] | boolean>, top: number): TrainingHistory {
  const evals = curve(50, 10, top);
  return {
    run,
    params,
    backend: "wasm (test)",
    evals,
    final: evals[evals.length - 1],
    wallSeconds: 1.5,
    stepsPerSecond: 33.3,
    notes: [`fabricated for the report tests (${run})`],
  };
}

export interface FixtureOptions {
  /** Leave these stages out of the returned inputs. */
  omit?: string[];
  search?: boolean;
  provenance?: boolean;
  /** Two more seeds of the Default row (test accuracy 0.42 and 0.44 beside the base's 0.40). */
  seeds?: boolean;
  /**
   * Seeds 1 and 2 of every Table 1 row and of the eval-mode stages (test accuracy the base's + 0.01 + 0.002·i
   * and − 0.01 + 0.001·i for row i), so that the claims get intervals; with `seeds`, the Default row's are those;
   * with `search`, the search's pick's too.
   */
  rowSeeds?: boolean;
  /** The CNN's test predictions and preprocess's test labels (20 images, see PREDICTIONS). */
  predictions?: boolean;
}

/** 20 test images, labels i % 10; the CNN gets all right but two cats (3) called dogs (5). */
export const LABELS = Uint8Array.from({ length: 20 }, (_, i) => i % 10);
export const PREDICTIONS = LABELS.map((l, i) => (l === 3 && i < 20 ? 5 : l));

/** The record the engine keeps for GA1 (with provenance): resumed twice, 1 h 10 min of training in all. */
export const GA1_RECORD = {
  trainSeconds: 4200,
  resumes: 2,
  stepsPerSecond: 20,
  evalImagesPerSecond: 900,
  compute: "wasm (test) + BLAS (test), 1 thread",
  host: { cpu: "Test CPU 9000", cores: 2, isa: "x86-64 AVX2", os: "Linux 6.1", deno: "2.9.6", commit: "abc1234" },
};

/** Writes the fabricated inputs under `base` and returns the report's ctx.inputs. */
export async function fabricateInputs(base: string, opts: FixtureOptions = {}): Promise<Record<string, string>> {
  const files: Record<string, Record<string, unknown>> = {
    "train-numpy-mlp": {
      "history.json": history("numpy-mlp", { hidden: [100], lr: 2e-3, batch: 200, steps: 50 }, 0.35),
    },
    "train-cnn": { "history.json": history("cnn", { lr: 1e-4, batch: 32, steps: 50 }, 0.6) },
  };
  TORCH_VARIANTS.forEach((v, i) => {
    const bn: Record<string, boolean> = v === "ga1-dropout-batchnorm" ? { dropout: true, batchnorm: true } : {};
    const h = history(v, { hidden: [100], lr: 2e-3, batch: 200, steps: 50, ...bn }, 0.3 + 0.03 * i);
    // A run resumed once, made before the engine kept a record: its note says so.
    if (v === "ga1-dropout") h.notes!.push("Resumed from a checkpoint at step 30.");
    files[`train-torch-mlp@${v}`] = { "history.json": h };
  });
  // As models/torch_mlp/batchnorm_stage.ts writes it: the manual run, with its twin's settings, naming the twin.
  const twin = "train-torch-mlp@ga1-dropout-batchnorm";
  const bnParams = { hidden: [100], lr: 2e-3, batch: 200, steps: 50, dropout: true, batchnorm: true };
  const bn = history("train-batchnorm", bnParams, 0.3 + 0.03 * 3 + 0.001);
  files["train-batchnorm"] = {
    "history.json": { ...bn, wallSeconds: 2, stepsPerSecond: 25, twin },
    "checks.json": [
      { check: "manual dx vs finite differences", shape: [8, 5], max_rel_err: 3.2e-9, tol: 1e-5, pass: true },
      { check: "manual vs autograd dγ", shape: [8, 5], max_rel_err: 0, tol: 1e-7, pass: true },
    ],
  };
  // As models/torch_mlp/eval_mode_stage.ts writes it: a dropout row's curve, scored both ways at the end.
  for (
    const [stage, variant, acc] of [["dropout-eval-mode", "ga1-dropout", 0.3], [
      "batchnorm-eval-mode",
      "ga1-dropout-batchnorm",
      0.32,
    ]] as const
  ) {
    const twin = files[`train-torch-mlp@${variant}`]["history.json"] as TrainingHistory;
    files[stage] = {
      "history.json": {
        ...twin,
        run: stage,
        evalModes: {
          inference: { testAcc: twin.final.testAcc, testLoss: twin.final.testLoss },
          training: { testAccMean: acc, testAccSd: 0.004, testAccs: [acc - 0.004, acc, acc + 0.004], testLossMean: 2 },
        },
      },
    };
  }
  if (opts.rowSeeds) {
    TORCH_VARIANTS.forEach((v, i) => {
      const bn: Record<string, boolean> = v === "ga1-dropout-batchnorm" ? { dropout: true, batchnorm: true } : {};
      for (const [seed, shift] of [[1, 0.01 + 0.002 * i], [2, -0.01 + 0.001 * i]]) {
        if (opts.seeds && v === "default") continue;
        const h = history(v, { hidden: [100], lr: 2e-3, batch: 200, steps: 50, seed, ...bn }, 0.3 + 0.03 * i + shift);
        files[`train-torch-mlp@${v}+s${seed}`] = { "history.json": h };
        const ev = [["dropout-eval-mode", "ga1-dropout", 0.3], ["batchnorm-eval-mode", "ga1-dropout-batchnorm", 0.32]]
          .find(([, variant]) => variant === v);
        if (ev) {
          const acc = (ev[2] as number) + shift;
          files[`${ev[0]}+s${seed}`] = {
            "history.json": {
              ...h,
              run: ev[0],
              evalModes: {
                inference: { testAcc: h.final.testAcc, testLoss: h.final.testLoss },
                training: { testAccMean: acc, testAccSd: 0.004, testAccs: [acc - 0.004, acc, acc + 0.004] },
              },
            },
          };
        }
      }
    });
  }
  if (opts.rowSeeds) {
    // The manual batch norm over seeds too (test accuracy 0.491, 0.501, 0.481).
    for (const [seed, shift] of [[1, 0.01], [2, -0.01]]) {
      const h = history("train-batchnorm", { ...bnParams, seed }, 0.3 + 0.03 * 3 + 0.001 + shift);
      files[`train-batchnorm+s${seed}`] = { "history.json": { ...h, twin: `${twin}+s${seed}` } };
    }
  }
  if (opts.seeds) {
    for (const [seed, top] of [[1, 0.32], [2, 0.34]]) {
      files[`train-torch-mlp@default+s${seed}`] = {
        "history.json": history("default", { hidden: [100], lr: 2e-3, batch: 200, steps: 50, seed }, top),
      };
    }
  }
  const binary: Record<string, Record<string, Uint8Array>> = {};
  if (opts.predictions) {
    binary["train-cnn"] = { "predictions.npy": PREDICTIONS };
    binary["preprocess"] = { "test_y.npy": LABELS };
    files["preprocess"] = {};
  }
  if (opts.search) {
    // The shape models/search/stage.ts writes (SearchRecord).
    const individual = (g: number, k: number) => ({
      genes: { layout: k, lr: 1e-4 * (k + 1), steps: 1500 + 100 * g, batch: 200 + k },
      hidden: k ? [1000, 500] : [1000],
      steps: 15 + g,
      val_acc: 0.3 + 0.05 * g + 0.01 * k,
      val_loss: 2 - 0.1 * g,
      train_acc: 0.4 + 0.05 * g,
    });
    const generations = [1, 2, 3].map((g) => ({
      generation: g,
      individuals: [0, 1].map((k) => individual(g, k)),
      best_val_acc: 0.31 + 0.05 * g,
    }));
    files["search-mlp"] = {
      "search.json": {
        params: { population: 2, generations: 3 },
        generations,
        pick: { ...individual(3, 1), test_acc: 0.47, test_loss: 1.6 },
        steps_used: 99,
        stopped_by_budget: false,
        note: "selected on 200 validation images held out of the training set",
      },
    };
    // As models/search/train_pick.ts writes it: the pick trained as a Table 1 run.
    const pickParams = { hidden: [1000, 500], lr: 2e-4, batch: 201, steps: 50 };
    files["train-search-pick"] = { "history.json": history("train-search-pick", pickParams, 0.45) };
    // With rowSeeds, the pick over seeds too (test accuracy 0.56 and 0.54 beside the base's 0.55).
    for (const [seed, top] of opts.rowSeeds ? [[1, 0.46], [2, 0.44]] : []) {
      files[`train-search-pick+s${seed}`] = {
        "history.json": history("train-search-pick", { ...pickParams, seed }, top),
      };
    }
  }
  const inputs: Record<string, string> = {};
  for (const [stage, content] of Object.entries(files)) {
    if (opts.omit?.includes(stage)) continue;
    const dir = join(base, stage);
    await Deno.mkdir(dir, { recursive: true });
    const outputs: Record<string, string> = {};
    for (const [name, value] of Object.entries(content)) {
      const text = JSON.stringify(value, null, 2);
      await Deno.writeTextFile(join(dir, name), text);
      outputs[name] = createHash("sha256").update(text).digest("hex");
    }
    for (const [name, data] of Object.entries(binary[stage] ?? {})) {
      await writeNpy(join(dir, name), data, [data.length]);
      outputs[name] = createHash("sha256").update(await Deno.readFile(join(dir, name))).digest("hex");
    }
    if (opts.provenance) {
      const prov = {
        stage,
        key: "k".repeat(64),
        params: (content["history.json"] as TrainingHistory | undefined)?.params ?? {},
        code_hash: "c".repeat(64),
        outputs,
        deno: "2.9.6",
        npm: ["npm:@tensorflow/tfjs-core@4.22.0"],
        started: "2025-01-01T00:00:00.000Z",
        wall_s: 2.5,
        record: stage === "train-torch-mlp@ga1" ? GA1_RECORD : {},
      };
      await Deno.writeTextFile(join(dir, "_provenance.json"), JSON.stringify(prov, null, 2));
    }
    inputs[stage] = dir;
  }
  return inputs;
}
