// The evolutionary search's operators: ranges, crossover between parents,
// elitism, self-adapting widths, determinism.
import assert from "node:assert/strict";
import { Rng } from "../../data/rng.ts";
import {
  crossover,
  type Individual,
  LAYOUTS,
  mutate,
  nextGeneration,
  randomIndividual,
} from "../../models/search/ga.ts";

function inRange(ind: Individual) {
  const g = ind.genes;
  assert.ok(Number.isInteger(g.layout) && g.layout >= 0 && g.layout < LAYOUTS.length, `layout ${g.layout}`);
  assert.ok(g.lr >= 2e-6 && g.lr <= 2e-4, `lr ${g.lr}`);
  assert.ok(Number.isInteger(g.steps) && g.steps >= 1500 && g.steps < 5000, `steps ${g.steps}`);
  assert.ok(Number.isInteger(g.batch) && g.batch >= 100 && g.batch < 1000, `batch ${g.batch}`);
}

Deno.test("random individuals, crossovers and mutations stay in the study's ranges", () => {
  const rng = new Rng(1);
  for (let i = 0; i < 500; i++) {
    const a = randomIndividual(rng);
    const b = randomIndividual(rng);
    inRange(a);
    const c = crossover(a, b, rng);
    inRange(c);
    for (const k of ["layout", "lr", "steps", "batch"] as const) {
      const lo = Math.min(a.genes[k], b.genes[k]);
      const hi = Math.max(a.genes[k], b.genes[k]);
      assert.ok(c.genes[k] >= lo - 0.5 && c.genes[k] <= hi + 0.5, `${k} between the parents`);
    }
    inRange(mutate(c, rng));
  }
});

Deno.test("mutation widths adapt: they change, and stay positive", () => {
  const rng = new Rng(2);
  let x = randomIndividual(rng);
  const first = x.sigma.lr;
  for (let i = 0; i < 20; i++) x = mutate(x, rng);
  assert.notEqual(x.sigma.lr, first);
  assert.ok(x.sigma.lr > 0 && x.sigma.steps > 0);
});

Deno.test("the best individual is kept as it is; the same seed gives the same generations", () => {
  const run = (seed: number) => {
    const rng = new Rng(seed);
    let pop = Array.from({ length: 10 }, () => randomIndividual(rng));
    const history: string[] = [];
    for (let g = 0; g < 5; g++) {
      // A stand-in fitness: prefer lr near 1e-4 and big batches.
      const fitness = pop.map((p) => -Math.abs(p.genes.lr - 1e-4) * 1e4 + p.genes.batch / 1000);
      const best = pop[fitness.indexOf(Math.max(...fitness))];
      const next = nextGeneration(pop, fitness, rng);
      assert.ok(next.includes(best), "elitism");
      assert.equal(next.length, pop.length);
      pop = next;
      history.push(JSON.stringify(pop));
    }
    return history;
  };
  assert.deepEqual(run(42), run(42));
  assert.notDeepEqual(run(42), run(43));
});
