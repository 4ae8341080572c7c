// Stage "search-mlp": the study's evolutionary search (ga.ts), done right:
// individuals are scored on a validation split held out of the training set,
// and the test set is touched once, for the final pick. Every individual is a
// memoised run (a rerun of the search reuses every evaluation already made),
// evaluated in parallel over ctx.jobs processes.
import { join } from "node:path";
import { Rng } from "../../data/rng.ts";
import type { SearchMlpParams } from "../../pipeline/stages.ts";
import { PipelineError, type StageContext } from "../../pipeline/types.ts";
import type { EvaluateArg, Score } from "./evaluate.ts";
import { describe, type Genes, LAYOUTS, nextGeneration, randomIndividual } from "./ga.ts";

const EVALUATE = new URL("./evaluate.ts", import.meta.url).pathname;

export interface Scored {
  genes: Genes;
  hidden: number[];
  /** Steps actually trained (the gene times step_scale). */
  steps: number;
  val_acc: number;
  val_loss: number;
  train_acc: number;
}

export interface SearchRecord {
  params: StageContext["params"];
  generations: Array<{ generation: number; individuals: Scored[]; best_val_acc: number }>;
  pick: Scored & { test_acc: number; test_loss: number };
  steps_used: number;
  stopped_by_budget: boolean;
  note: string;
}

export async function run(ctx: StageContext<SearchMlpParams>): Promise<Record<string, number | string>> {
  const p = ctx.params;
  const dataDir = ctx.inputs["preprocess"];
  const dataId = await readDataId(dataDir);
  const rng = new Rng(p.seed);
  let population = Array.from({ length: p.population }, () => randomIndividual(rng));
  let budget = p.budget_steps > 0 ? p.budget_steps : Infinity;
  let stepsUsed = 0;
  let stopped = false;
  const generations: SearchRecord["generations"] = [];
  const all: Scored[] = [];

  const score = (genes: Genes, steps: number, onTest: boolean) => {
    const arg: EvaluateArg = {
      dataDir,
      validation: p.validation,
      hidden: LAYOUTS[genes.layout],
      lr: genes.lr,
      batch: genes.batch,
      steps,
      seed: p.seed,
      onTest,
    };
    // The memo key names the data by content, not by path, and everything that shapes the run.
    const { dataDir: _, ...key } = arg;
    return ctx.memo({ data: dataId, ...key }, () => ctx.task<Score>(EVALUATE, "evaluate", arg));
  };

  for (let g = 0; g < p.generations && !stopped; g++) {
    // Budget is charged in order, cached or not, so the same seed gives the same search.
    const plan = population.map((ind) => {
      const steps = Math.max(1, Math.round(ind.genes.steps * p.step_scale));
      if (steps > budget) return undefined;
      budget -= steps;
      stepsUsed += steps;
      return steps;
    });
    if (plan.some((s) => s === undefined)) stopped = true;
    let done = 0;
    const scores = await Promise.all(population.map(async (ind, i) => {
      if (plan[i] === undefined) return undefined;
      const s = await score(ind.genes, plan[i]!, false);
      ctx.progress({
        step: g * p.population + ++done,
        total: p.generations * p.population,
        extra: { gen: g + 1, val_acc: s.acc },
      });
      return s;
    }));
    const individuals: Scored[] = [];
    const fitness = scores.map((s) => s?.acc ?? -Infinity);
    population.forEach((ind, i) => {
      const s = scores[i];
      if (!s) return;
      const row: Scored = {
        genes: ind.genes,
        hidden: LAYOUTS[ind.genes.layout],
        steps: plan[i]!,
        val_acc: s.acc,
        val_loss: s.loss,
        train_acc: s.trainAcc,
      };
      individuals.push(row);
      all.push(row);
    });
    if (!individuals.length) break;
    const best = Math.max(...individuals.map((r) => r.val_acc));
    generations.push({ generation: g + 1, individuals, best_val_acc: best });
    ctx.log(`generation ${g + 1}: best validation accuracy ${best.toFixed(4)}`);
    if (g < p.generations - 1 && !stopped) population = nextGeneration(population, fitness, rng);
  }
  if (!all.length) {
    throw new PipelineError(
      `search-mlp.budget_steps=${p.budget_steps} is too small for even one individual`,
      "raise budget_steps (0 = no limit) or lower step_scale",
    );
  }
  const best = all.reduce((a, b) => (b.val_acc > a.val_acc ? b : a));
  ctx.log(`final pick: ${describe(best.genes)} (validation ${best.val_acc.toFixed(4)}); scoring it on the test set`);
  const test = await score(best.genes, best.steps, true);
  const record: SearchRecord = {
    params: ctx.params,
    generations,
    pick: { ...best, test_acc: test.acc, test_loss: test.loss },
    steps_used: stepsUsed,
    stopped_by_budget: stopped,
    note: `selected on ${p.validation} validation images held out of the training set; ` +
      "the test set was used once, for the final pick (the study selected on test accuracy)",
  };
  await Deno.writeTextFile(join(ctx.outDir, "search.json"), JSON.stringify(record, null, 2));
  return {
    best_val_acc: +best.val_acc.toFixed(4),
    test_acc: +test.acc.toFixed(4),
    pick: describe(best.genes),
    evaluated: all.length,
    steps_used: stepsUsed,
  };
}

/** The preprocessed data's content hash when run by the engine (its provenance), else its path. */
async function readDataId(dir: string): Promise<string> {
  try {
    return JSON.stringify(JSON.parse(await Deno.readTextFile(join(dir, "_provenance.json"))).outputs);
  } catch {
    return dir;
  }
}
