// The study's evolutionary hyper-parameter search (SPEC: population 10,
// 5 generations). A genome is (hidden layout, lr, steps, batch); every gene
// carries its own mutation width, which mutates too (self-adaptation, as in
// evolution strategies: σ' = σ·exp(τ·N(0,1)), then x' = x + σ'·N(0,1)).
// Each generation keeps the best individual as it is; every other one crosses
// over (each gene drawn uniformly between the two parents' values) with the
// best (probability 0.5) or with a random member, then mutates.
import { Rng } from "../../data/rng.ts";

export const LAYOUTS: number[][] = [
  [5000],
  [1000],
  [1000, 500],
  [1000, 500, 250],
  [1000, 500, 250, 100],
  [500, 500],
  [500, 500, 250, 250],
  [500, 500, 250, 250, 100],
  [500, 1000],
];

export interface Genes {
  /** Index into LAYOUTS. */
  layout: number;
  lr: number;
  steps: number;
  batch: number;
}

export interface Individual {
  genes: Genes;
  /** Mutation width of each gene. */
  sigma: Genes;
}

type Gene = keyof Genes;
const GENES: Gene[] = ["layout", "lr", "steps", "batch"];
/** Inclusive ranges; lr ~ U(2e-6, 2e-4), steps ~ U[1500, 5000), batch ~ U[100, 1000). */
const RANGE: Record<Gene, [number, number]> = {
  layout: [0, LAYOUTS.length - 1],
  lr: [2e-6, 2e-4],
  steps: [1500, 4999],
  batch: [100, 999],
};
const INTEGER: Record<Gene, boolean> = { layout: true, lr: false, steps: true, batch: true };
/** Learning rate of the widths: 1/√(2n) for n genes (Schwefel's rule of thumb). */
const TAU = 1 / Math.sqrt(2 * GENES.length);

function clip(gene: Gene, x: number): number {
  const [lo, hi] = RANGE[gene];
  const v = Math.min(hi, Math.max(lo, x));
  return INTEGER[gene] ? Math.round(v) : v;
}

export function randomIndividual(rng: Rng): Individual {
  const genes = {} as Genes;
  const sigma = {} as Genes;
  for (const g of GENES) {
    const [lo, hi] = RANGE[g];
    genes[g] = INTEGER[g] ? lo + rng.below(hi - lo + 1) : lo + rng.next() * (hi - lo);
    sigma[g] = (hi - lo) / 10; // start at a tenth of the range
  }
  return { genes, sigma };
}

export function crossover(a: Individual, b: Individual, rng: Rng): Individual {
  const between = (x: number, y: number) => Math.min(x, y) + rng.next() * Math.abs(x - y);
  const genes = {} as Genes;
  const sigma = {} as Genes;
  for (const g of GENES) {
    genes[g] = clip(g, between(a.genes[g], b.genes[g]));
    sigma[g] = between(a.sigma[g], b.sigma[g]);
  }
  return { genes, sigma };
}

export function mutate(x: Individual, rng: Rng): Individual {
  const genes = {} as Genes;
  const sigma = {} as Genes;
  for (const g of GENES) {
    const [lo, hi] = RANGE[g];
    // Keep widths within (range/1000, range): never frozen, never wilder than the range.
    sigma[g] = Math.min(hi - lo, Math.max((hi - lo) / 1000, x.sigma[g] * Math.exp(TAU * rng.normal())));
    genes[g] = clip(g, x.genes[g] + sigma[g] * rng.normal());
  }
  return { genes, sigma };
}

/** The next generation from scored individuals (higher fitness is better). */
export function nextGeneration(population: Individual[], fitness: number[], rng: Rng): Individual[] {
  const best = fitness.indexOf(Math.max(...fitness));
  return population.map((ind, i) => {
    if (i === best) return ind; // elitism: kept as it is
    const partner = rng.next() < 0.5 ? population[best] : population[rng.below(population.length)];
    return mutate(crossover(ind, partner, rng), rng);
  });
}

export function describe(g: Genes): string {
  return `hidden ${LAYOUTS[g.layout].join(",")} · lr ${g.lr.toExponential(2)} · batch ${g.batch} · steps ${g.steps}`;
}
