// A paper plan for the study's full search (population 10 × 5 generations, up to
// 5,000 steps per individual) on a Slurm cluster: wall time on N one-core slots.
// Cost model from the README's measured runs: seconds per step ∝ parameters ×
// batch, fitted to GA1 (4,681 steps in 42 min on one core: 0.54 s/step for 3.7 M
// weights × batch 1,609, i.e. 9.0e-11 s per weight·sample). Individuals are the
// search's own (ga.ts, seed 42); later generations use a stand-in fitness (the
// real one needs the training), so this is a plan, not a measurement.
// Run: deno run tests/bench/search_plan.ts
import { Rng } from "../../data/rng.ts";
import { type Individual, LAYOUTS, nextGeneration, randomIndividual } from "../../models/search/ga.ts";

const SECONDS_PER_WEIGHT_SAMPLE = (42 * 60 / 4681) / (weights([1000, 500, 250, 100]) * 1609);

function weights(hidden: number[]): number {
  const sizes = [3072, ...hidden, 10];
  return sizes.slice(1).reduce((n, s, i) => n + (sizes[i] + 1) * s, 0);
}

const cost = (ind: Individual) =>
  ind.genes.steps * SECONDS_PER_WEIGHT_SAMPLE * weights(LAYOUTS[ind.genes.layout]) * ind.genes.batch;

/** Each generation's individuals as jobs on `slots` cores (first free slot, in order); generations are barriers. */
function wall(generations: number[][], slots: number): number {
  return generations.reduce((total, jobs) => {
    const free = new Array(slots).fill(0);
    for (const c of jobs) free[free.indexOf(Math.min(...free))] += c;
    return total + Math.max(...free);
  }, 0);
}

const rng = new Rng(42);
let population = Array.from({ length: 10 }, () => randomIndividual(rng));
const generations: number[][] = [];
let previous: Individual[] = [];
for (let g = 0; g < 5; g++) {
  // The elite, kept as it is, is memoised from the generation before: it costs nothing again.
  generations.push(population.filter((ind) => !previous.includes(ind)).map(cost));
  // Stand-in fitness: a noisy preference for cheaper individuals (bigger nets train slower per step).
  const fitness = population.map((ind) => -cost(ind) + rng.next() * 600);
  previous = population;
  population = nextGeneration(population, fitness, rng);
}
const h = (s: number) => `${(s / 3600).toFixed(1)} h`;
const all = generations.flat();
console.log(
  `${all.length} trainings, ${h(all.reduce((a, b) => a + b, 0))} of one core in all; the longest ${
    h(Math.max(...all))
  }`,
);
for (const n of [1, 2, 5, 10, 20]) console.log(`${String(n).padStart(2)} slots: ${h(wall(generations, n))}`);
