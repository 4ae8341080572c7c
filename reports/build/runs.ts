// The sections about the runs rather than their results: the environment
// (once, at the top), what each run cost, and the provenance of every input.
// Facts come from each run's record (_provenance.json); runs made before the
// engine kept one fall back to their history, and host facts read "not recorded".
import type { Block } from "./document.ts";
import { cell, NOT_RUN, paramsOf, provId, rate, seconds, src } from "./format.ts";
import { notRunYet, type ReportInputs, type Run, RUN_STAGES, type Source } from "./inputs.ts";

const num = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : undefined);

/** Every training run the report read, base runs in the report's order, each followed by its seed runs. */
export function allRuns(inp: ReportInputs): Run[] {
  const bases = [inp.numpy, ...inp.torch.values(), ...inp.evalModes.values(), inp.batchnorm, inp.cnn, inp.searchPick];
  const byStage = new Map(bases.flatMap((r) => (r ? [[r.stage, r] as const] : [])));
  return RUN_STAGES.flatMap((s) => [...(byStage.has(s) ? [byStage.get(s)!] : []), ...(inp.seeds.get(s) ?? [])]);
}

// ---------------------------------------------------------------- what a run cost

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

export function costBlocks(inp: ReportInputs): Block[] {
  const head = [
    "stage",
    "compute path",
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
    rows.push([
      label,
      c.compute,
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
        `${stage}, ${seeds.length} more seeds (${seeds.map((s) => src(s)).join(", ")}): sums`,
        [...new Set(costs.map((x) => x.compute))].join("; "),
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
    rows.push([src(inp.search.source), "–", cell(used), "–", "–", "1", "–", "–", "–", seconds(wall ?? NaN)]);
  } else rows.push(["`search-mlp`", notRunYet("search-mlp"), ...Array(head.length - 2).fill(NOT_RUN)]);
  return [
    {
      kind: "para",
      text: "Training time is summed over every process of a run: a run stopped and resumed from its checkpoint " +
        "ran in several processes (the “processes” column), so its training time can exceed the stage time of " +
        "its last process, which the engine measured (start-up, data loading and evaluations included). Rates " +
        "count training steps only; test images/s is the speed of the evaluations on the test set.",
    },
    { kind: "table", head, rows, right: [2, 3, 4, 5, 6, 7, 8, 9] },
  ];
}

// ---------------------------------------------------------------- environment

const HOST_FIELDS = [["cpu", "CPU"], ["cores", "cores"], ["isa", "instruction set"], ["os", "OS"], [
  "deno",
  "Deno",
]] as const;

/** The machines the runs ran on, once: one row per distinct host, the commits of the code that ran. */
export function environmentBlocks(runs: Run[]): Block[] {
  const hosts = new Map<string, { host: Record<string, unknown>; stages: string[] }>();
  const commits = new Set<string>();
  const unrecorded: string[] = [];
  for (const r of runs) {
    const host = r.source.provenance?.record.host as Record<string, unknown> | undefined;
    if (!host || typeof host !== "object") {
      unrecorded.push(r.stage);
      continue;
    }
    if (typeof host.commit === "string") commits.add(host.commit);
    const key = JSON.stringify(HOST_FIELDS.map(([k]) => host[k]));
    hosts.set(key, { host, stages: [...(hosts.get(key)?.stages ?? []), r.stage] });
  }
  const out: Block[] = [{ kind: "heading", level: 2, text: "Environment", id: "environment" }];
  const denos = [...new Set(runs.map((r) => r.source.provenance?.deno).filter((d) => d))];
  if (hosts.size) {
    out.push({
      kind: "table",
      head: [...HOST_FIELDS.map(([, h]) => h), "runs"],
      right: [1],
      rows: [...hosts.values()].map(({ host, stages }) => [
        ...HOST_FIELDS.map(([k]) => cell(host[k], k)),
        stages.length === runs.length ? "all" : String(stages.length),
      ]),
    });
    out.push({
      kind: "para",
      text: `Code: git commit ${[...commits].map((c) => `\`${c}\``).join(", ") || "not recorded"}. ` +
        "The compute path (kernels and threads) of each run is in its row of the cost table (section 7).",
    });
  }
  if (unrecorded.length) {
    out.push({
      kind: "para",
      text: `${hosts.size ? `${unrecorded.length} of ${runs.length}` : "All"} runs were made before the ` +
        "pipeline recorded its host: CPU, cores, instruction set, OS and git commit not recorded for " +
        `${hosts.size ? unrecorded.map((s) => `\`${s}\``).join(", ") : "them"}` +
        `${denos.length ? ` (Deno ${denos.join(", ")}, from the engine's record)` : ""}; their compute path ` +
        "is in the cost table (section 7).",
    });
  }
  return out;
}

// ---------------------------------------------------------------- provenance

export function provenanceBlocks(inp: ReportInputs): Block[] {
  const out: Block[] = [{ kind: "heading", level: 2, text: "Provenance", id: "provenance" }];
  out.push({
    kind: "para",
    text: "For every input: the engine's cache key of the run, the hash of its code (its import closure), the " +
      "SHA-256 of each file this report read (checked against the engine's record), parameters, Deno and npm " +
      "versions, and when it ran. The study's numbers: `reports/build/study.ts` (the study's Table 1 and text; " +
      "expected accuracies from the assignment, via `SPEC.md`); its curves: " +
      "`shared/seeds/study-curves-read-from-figures.json`, via `reports/build/study.ts`.",
  });
  const runs = allRuns(inp);
  const sources: Source[] = runs.flatMap((r) => [r.source, ...(r.predictionsSource ? [r.predictionsSource] : [])]);
  if (inp.checks) sources.push(inp.checks.source);
  if (inp.search) sources.push(inp.search.source);
  if (inp.testLabels) sources.push(inp.testLabels.source);
  const stages = [
    ...(inp.testLabels ? ["preprocess"] : []),
    ...RUN_STAGES.flatMap((s) => [s, ...(inp.seeds.get(s) ?? []).map((r) => r.stage)]),
  ];
  for (const stage of stages) {
    const files = sources.filter((s) => s.stage === stage);
    out.push({ kind: "heading", level: 3, text: `\`${stage}\``, id: provId(stage) });
    if (!files.length) {
      out.push({ kind: "list", items: [notRunYet(stage)] });
      continue;
    }
    const p = files[0].provenance;
    const fileItems = files.map((f) =>
      `\`${f.file}\` sha256 \`${f.sha256}\`${
        f.verified === true
          ? " (matches the engine's record)"
          : f.verified === false
          ? " (**differs from the engine's record**)"
          : ""
      }`
    );
    if (!p) {
      out.push({ kind: "list", items: ["provenance unavailable (run through the engine)", ...fileItems] });
      continue;
    }
    out.push({
      kind: "list",
      items: [
        `cache key \`${p.key}\``,
        `code hash \`${p.code_hash}\``,
        ...fileItems,
        `parameters: ${Object.entries(p.params).map(([k, v]) => `${k} ${cell(v, k)}`).join(", ") || "none"}`,
        `Deno ${p.deno}; npm: ${p.npm.join(", ") || "none"}`,
        `started ${p.started}, last process ${seconds(p.wall_s)}`,
      ],
    });
  }
  return out;
}
