// Section 7, what each run cost: training time summed over every process of
// a run, its processes, rates, and the stage time of its last process; a
// run's seed runs summed in one row. Facts come from each run's record
// (_provenance.json); runs made before the engine kept one fall back to their
// history. costOf also gives the compute path the model sections name.
import type { Block } from "../document.ts";
import { cell, NOT_RUN, paramsOf, provId, rate, seconds, src } from "../format.ts";
import { EVAL_MODE_STAGES, notRunYet, type Run, RUN_STAGES } from "../inputs.ts";
import { allRuns, type Report } from "../report.ts";

const num = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : undefined);

/** What a run cost, from its record, else its history (runs made before the record). */
export function costOf(r: Run) {
  const rec = r.source.provenance?.record ?? {};
  const h = r.history as unknown as Record<string, unknown>;
  // Old runs: one note per resumption ("Resumed from a checkpoint at step N").
  const resumedNotes = (r.history.notes ?? []).filter((n) => /^Resumed from a checkpoint/.test(n)).length;
  return {
    /** Training time summed over every process of the run (a resumed run ran in several). */
    trainSeconds: num(rec.trainSeconds) ?? num(h.wallSeconds),
    resumes: num(rec.resumes) ?? resumedNotes,
    stepsPerSecond: num(rec.stepsPerSecond) ?? num(h.stepsPerSecond),
    evalImagesPerSecond: num(rec.evalImagesPerSecond) ?? num(h.evalImagesPerSecond),
    /** The stage time of the last process, as the engine measured it. */
    lastProcessSeconds: r.source.provenance?.wall_s,
    compute: typeof rec.compute === "string" ? rec.compute : r.history.backend ?? "not recorded",
  };
}

/** Section 7: one row per run (its seed runs summed in the next), the search's row last. */
export function costSection({ inp }: Report): Block[] {
  const head = [
    "stage",
    "path",
    "steps",
    "batch",
    "training time, all processes",
    "processes",
    "steps/s",
    "training images/s",
    "test images/s",
    "stage time, last process",
  ];
  const bases = new Map(allRuns(inp).map((r) => [r.stage, r]));
  const rows: string[][] = [];
  // Each compute path once, above the table; the rows name it by letter.
  const paths: string[] = [];
  const pathOf = (compute: string) => {
    if (!paths.includes(compute)) paths.push(compute);
    return String.fromCharCode(65 + paths.indexOf(compute));
  };
  const noTraining = new Set(EVAL_MODE_STAGES.map((e) => e.stage));
  for (const stage of RUN_STAGES.filter((s) => s !== "search-mlp")) {
    const r = bases.get(stage);
    if (!r) {
      rows.push([`\`${stage}\``, notRunYet(stage), ...Array(head.length - 2).fill(NOT_RUN)]);
      continue;
    }
    const p = paramsOf(r);
    const steps = typeof p.steps === "number" ? p.steps : r.history.final.step;
    const batch = typeof p.batch === "number" ? p.batch : NaN;
    const c = costOf(r);
    // The batch norm's curve read from its twin is the twin's cost, in the twin's row.
    const own = r.curves.filter((x) => !x.from);
    const label = own.length > 1 ? `${src(r)} (${own[0].label})` : src(r);
    if (noTraining.has(stage)) {
      // Scores a Table 1 run's weights: no training of its own, only the evaluations and the stage time.
      rows.push([
        label,
        pathOf(c.compute),
        "no training",
        "–",
        "–",
        "1",
        "–",
        "–",
        "–",
        seconds(c.lastProcessSeconds ?? NaN),
      ]);
      continue;
    }
    rows.push([
      label,
      pathOf(c.compute),
      String(steps),
      Number.isFinite(batch) ? String(batch) : "–",
      seconds(c.trainSeconds ?? NaN),
      String(c.resumes + 1),
      rate(c.stepsPerSecond ?? NaN),
      rate((c.stepsPerSecond ?? NaN) * batch),
      rate(c.evalImagesPerSecond ?? NaN),
      seconds(c.lastProcessSeconds ?? NaN),
    ]);
    const seeds = inp.seeds.get(stage) ?? [];
    if (seeds.length) {
      // The seed runs in one row: times and processes summed, rates averaged.
      const costs = seeds.map(costOf);
      const sum = (f: (x: ReturnType<typeof costOf>) => number | undefined) =>
        costs.reduce((a, x) => a + (f(x) ?? NaN), 0);
      rows.push([
        `${seeds.length} more seeds (${
          seeds.map((s) => `[${s.stage.slice(stage.length)}](#${provId(s.stage)})`).join(", ")
        }): sums`,
        [...new Set(costs.map((x) => pathOf(x.compute)))].join(", "),
        String(steps * seeds.length),
        Number.isFinite(batch) ? String(batch) : "–",
        seconds(sum((x) => x.trainSeconds)),
        String(sum((x) => x.resumes + 1)),
        rate(sum((x) => x.stepsPerSecond) / seeds.length),
        rate((sum((x) => x.stepsPerSecond) / seeds.length) * batch),
        rate(sum((x) => x.evalImagesPerSecond) / seeds.length),
        seconds(sum((x) => x.lastProcessSeconds)),
      ]);
    }
  }
  if (inp.search) {
    const used = (inp.search.data as { steps_used?: number } | null)?.steps_used;
    const wall = inp.search.source.provenance?.wall_s;
    rows.push([
      src(inp.search.source),
      "–",
      `${cell(used)} (all individuals)`,
      "–",
      "–",
      "1",
      "–",
      "–",
      "–",
      seconds(wall ?? NaN),
    ]);
  } else rows.push(["`search-mlp`", notRunYet("search-mlp"), ...Array(head.length - 2).fill(NOT_RUN)]);
  return [
    {
      kind: "para",
      text: "Training time is summed over every process of a run: a run stopped and resumed from its checkpoint " +
        "ran in several processes (the “processes” column), so its training time can exceed the stage time of " +
        "its last process, which the engine measured (start-up, data loading and evaluations included). Rates " +
        "count training steps only; test images/s is the speed of the evaluations on the test set. The eval-mode " +
        "stages train nothing: they score a Table 1 run's weights. Each run's compute path (kernels and threads) " +
        "is named by a letter:",
    },
    {
      kind: "list",
      items: paths.map((p, i) => `compute path **${String.fromCharCode(65 + i)}**: ${p}`),
    },
    { kind: "table", head, rows, right: [2, 3, 4, 5, 6, 7, 8, 9] },
  ];
}
