// What the report says: sections built from the inputs (ours) and study.ts
// (the study's numbers). Every number of ours names its source stage, whose
// provenance (cache key, code hash, file hash) closes the report. A run not
// among the inputs (not run yet) is said so wherever its results would be.
import { curveDifference } from "../../models/batchnorm/curves.ts";
import type { EvalPoint, TrainingHistory } from "../../pipeline/types.ts";
import { curveSpec, type Figure, searchSpec, table1Spec } from "./charts.ts";
import type { Block } from "./document.ts";
import {
  EVAL_MODE_STAGES,
  extraFields,
  findTables,
  notRunYet,
  type ReportInputs,
  type Run,
  RUN_STAGES,
  type Source,
  type Table,
  torchStage,
} from "./inputs.ts";
import { EXPECTED, QUIRKS, STUDY_SETTINGS, TABLE1 } from "./study.ts";

export const TITLE = "Reproducing “Assignment 1: MLPs, CNNs and Backpropagation” on CIFAR-10";

// ---------------------------------------------------------------- formatting

const MINUS = "−";
/** A cell of a run that has not run yet (its marker is beside the table or in the row). */
const NOT_RUN = "—";
export const pct = (x: number | null | undefined) =>
  typeof x === "number" && Number.isFinite(x) ? `${(x * 100).toFixed(1)}%` : "–";
/** ours − study, in percentage points (the unit is in the column's head). */
export const pts = (ours: number | null | undefined, study: number) => {
  if (typeof ours !== "number" || !Number.isFinite(ours)) return "–";
  const d = (ours - study) * 100;
  return `${d >= 0.05 ? "+" : d <= -0.05 ? MINUS : "±"}${Math.abs(d).toFixed(1)}`;
};
const seconds = (s: number) =>
  !Number.isFinite(s) || s < 0
    ? "–"
    : s < 10
    ? `${s.toFixed(1)} s`
    : s < 59.5
    ? `${s.toFixed(0)} s`
    : s < 3600
    ? `${Math.floor(s / 60)} min ${String(Math.round(s % 60)).padStart(2, "0")} s`
    : `${Math.floor(s / 3600)} h ${String(Math.round((s % 3600) / 60)).padStart(2, "0")} min`;
const rate = (x: number) => (!Number.isFinite(x) ? "–" : x >= 100 ? x.toFixed(0) : x.toPrecision(3));

/** A generic cell: numbers compactly, booleans as ✓/✗, lists and objects inline. */
export function cell(v: unknown, key = ""): string {
  if (v === null || v === undefined) return "–";
  if (typeof v === "boolean") return v ? "✓" : "✗";
  if (typeof v === "number") {
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    return a !== 0 && (a < 1e-3 || a >= 1e6) ? v.toExponential(2) : String(+v.toPrecision(4));
  }
  if (Array.isArray(v) && v.every((x) => typeof x === "number")) return v.join(/shape|dims/i.test(key) ? "×" : ", ");
  if (typeof v === "object") return `\`${JSON.stringify(v)}\``;
  return String(v);
}

const provId = (stage: string) => `prov-${stage.replace(/[^a-zA-Z0-9]+/g, "-")}`;
const src = (s: Source | Run) => {
  const stage = "history" in s ? s.stage : s.stage;
  return `[\`${stage}\`](#${provId(stage)})`;
};

/** The parameters a run really used: its history's, else the engine's record. */
const paramsOf = (r: Run): Record<string, unknown> => ({ ...r.source.provenance?.params, ...r.history.params });

/** "steps 30 (study 1500)" for every setting that differs from the study's. */
function deviations(r: Run | Record<string, unknown>, study: Record<string, unknown>): string[] {
  const p = "history" in r && "source" in r ? paramsOf(r as Run) : r;
  const same = (a: unknown, b: unknown) =>
    typeof a === "number" && typeof b === "number"
      ? Math.abs(a - b) <= 1e-9 * Math.max(Math.abs(a), Math.abs(b))
      : JSON.stringify(a) === JSON.stringify(b);
  return Object.entries(study)
    .filter(([k, v]) => k in p && !same(p[k], v))
    .map(([k, v]) => `${k} ${cell(p[k], k)} (study ${cell(v, k)})`);
}

function tableBlock(t: Table, limit = 60): Block[] {
  const cols = [...new Set(t.rows.flatMap((r) => Object.keys(r)))];
  const rows = t.rows.slice(0, limit).map((r) => cols.map((c) => cell(r[c], c)));
  const right = cols.map((c, i) => (t.rows.every((r) => typeof r[c] === "number" || r[c] == null) ? i : -1))
    .filter((i) => i >= 0);
  const out: Block[] = [];
  if (t.title) out.push({ kind: "para", text: `**${t.title}**` });
  out.push({ kind: "table", head: cols, rows, right });
  if (t.rows.length > limit) out.push({ kind: "para", text: `(first ${limit} of ${t.rows.length} rows)` });
  return out;
}

function scalarsBlock(scalars: Record<string, unknown>): Block[] {
  const items = Object.entries(scalars).map(([k, v]) => `${k}: ${cell(v, k)}`);
  return items.length ? [{ kind: "list", items }] : [];
}

// ---------------------------------------------------------------- the report

export interface Built {
  blocks: Block[];
  figures: Figure[];
  metrics: Record<string, number | string>;
}

export function buildReport(inp: ReportInputs): Built {
  const figures: Figure[] = [];
  const figure = (id: string, number: number, caption: string, spec: Figure["spec"]): Block => {
    const f = { id, number, caption, spec };
    figures.push(f);
    return { kind: "figure", figure: f };
  };
  const pair = (n: number, slug: string, name: string, run: Run): Block[] => [
    figure(
      `fig${n}-${slug}-accuracy`,
      n,
      `${name}: accuracy of the training batch and the whole test set`,
      curveSpec(`${name}: accuracy`, run.curves.slice(0, 1), "accuracy"),
    ),
    figure(
      `fig${n + 1}-${slug}-loss`,
      n + 1,
      `${name}: loss of the training batch and the whole test set`,
      curveSpec(`${name}: loss`, run.curves.slice(0, 1), "loss"),
    ),
  ];

  // Table 1 rows whose variant has run; the best is chosen among them (undefined: none has run).
  const torch = TABLE1.flatMap((row) => {
    const run = inp.torch.get(row.variant);
    return run ? [{ row, run }] : [];
  });
  const best = torch.length
    ? torch.reduce((a, b) => (b.run.history.final.testAcc > a.run.history.final.testAcc ? b : a))
    : undefined;
  const missingTorch = TABLE1.filter((row) => !inp.torch.has(row.variant));
  const notRunPara = (what: string, stage: string): Block => ({
    kind: "para",
    text: `${what}: ${notRunYet(stage)}.`,
  });
  const studyBest = TABLE1.reduce((a, b) => (b.testAcc > a.testAcc ? b : a));
  const bnRow = TABLE1.find((r) => r.batchnorm)!;
  // The dropout rows of Table 1, each with the stage that scores it both ways (and its run and scores, once run).
  const evidence = EVAL_MODE_STAGES.map(({ stage, variant }) => {
    const row = TABLE1.find((r) => r.variant === variant)!;
    const run = inp.evalModes.get(stage);
    const mode = row.batchnorm ? "dropout on, batch statistics" : "dropout on";
    return { stage, row, run, scores: run && asEvalModes(run.history), mode };
  });
  const finalOf = (evals: EvalPoint[]) => evals[evals.length - 1];

  // Runs that did not use the study's settings (a smoke profile, an override).
  const off: string[] = [];
  for (const { row, run } of torch) {
    const d = deviations(run, { hidden: row.hidden, lr: row.lr, batch: row.batch, steps: row.steps });
    if (d.length) off.push(`\`${run.stage}\`: ${d.join(", ")}`);
  }
  for (const run of [inp.numpy, ...inp.evalModes.values(), inp.batchnorm, inp.cnn]) {
    if (!run) continue;
    const d = deviations(run, STUDY_SETTINGS[run.stage]);
    if (d.length) off.push(`\`${run.stage}\`: ${d.join(", ")}`);
  }
  const searchParams = inp.search &&
    { ...inp.search.source.provenance?.params, ...(inp.search.data as { params?: object } | null)?.params };
  if (searchParams) {
    const d = deviations(searchParams, STUDY_SETTINGS["search-mlp"]);
    if (d.length) off.push(`\`search-mlp\`: ${d.join(", ")}`);
  }

  const b: Block[] = [];
  b.push({ kind: "heading", level: 1, text: TITLE });
  if (inp.missing.length) {
    b.push({
      kind: "note",
      text:
        `Partial report: ${inp.missing.length} of ${RUN_STAGES.length} ${
          inp.missing.length === 1 ? "runs is" : "runs are"
        } not finished yet: ` +
        `${inp.missing.map((s) => `\`${s}\``).join(", ")}. Where their results belong, the report says ` +
        "“not run yet” and how to run them; `deno task reproduce report` once they are done gives the full report.",
    });
  }
  b.push({
    kind: "para",
    text: "This report is written by the pipeline's `report` stage from the outputs of the training stages. " +
      "The study's numbers come from one file, `reports/build/study.ts`, typed in from the study's Table 1 and " +
      "`SPEC.md`; every other number is read from a stage's output and names that stage, whose cache key, code " +
      "hash and file hashes are listed under [Provenance](#provenance). Test accuracy is over the whole test set, " +
      "train accuracy over the last training mini-batch (as the study measured it); differences are " +
      "ours minus the study's, in percentage points.",
  });
  if (off.length) {
    b.push({
      kind: "note",
      text: `${off.length} run(s) did not use the study's settings, so their differences from the study say ` +
        `nothing about the reproduction (a smoke run checks the plumbing, not the science): ${off.join("; ")}.`,
    });
  }

  const searchPick = inp.search ? asSearch(inp.search.data)?.pick : undefined;

  // ------------------------------------------------------------ summary
  const bnCurves = inp.batchnorm?.curves ?? [];
  /** A summary row for a run that has not run yet. */
  const notRunRow = (label: string, study: string, stage: string) => [label, study, NOT_RUN, NOT_RUN, notRunYet(stage)];
  /** A summary row: our test accuracy beside the study's (shown as `studyText`), and the difference. */
  const accRow = (label: string, study: number, ours: number, source: string, studyText = pct(study)) => [
    label,
    studyText,
    pct(ours),
    pts(ours, study),
    source,
  ];
  // "of the 4 finished" when only some Table 1 variants have run.
  const among = missingTorch.length ? ` (among the ${torch.length} finished)` : "";
  b.push({ kind: "heading", level: 2, text: "Summary", id: "summary" });
  b.push({
    kind: "table",
    head: ["result (test accuracy)", "study", "ours", "difference (pts)", "source"],
    right: [1, 2, 3],
    rows: [
      inp.numpy
        ? accRow(
          "hand-written MLP, SGD",
          EXPECTED.numpyMlpTestAcc,
          inp.numpy.history.final.testAcc,
          src(inp.numpy),
          `${pct(EXPECTED.numpyMlpTestAcc)} (assignment)`,
        )
        : notRunRow("hand-written MLP, SGD", `${pct(EXPECTED.numpyMlpTestAcc)} (assignment)`, "train-numpy-mlp"),
      ...TABLE1.map((row) => {
        const run = inp.torch.get(row.variant);
        const label = `autograd MLP, ${row.label}`;
        if (!run) return notRunRow(label, pct(row.testAcc), torchStage(row.variant));
        return accRow(label, row.testAcc, run.history.final.testAcc, src(run));
      }),
      ...(best
        ? [
          accRow(
            `best autograd MLP${among}: ours ${best.row.label}, study's ${studyBest.label}`,
            studyBest.testAcc,
            best.run.history.final.testAcc,
            src(best.run),
          ),
          [
            `assignment's target for the best MLP: ≥ ${pct(EXPECTED.bestMlpTarget)}`,
            pct(EXPECTED.bestMlpTarget),
            pct(best.run.history.final.testAcc),
            best.run.history.final.testAcc >= EXPECTED.bestMlpTarget ? "met" : "**not met**",
            src(best.run),
          ],
        ]
        : [notRunRow(`best autograd MLP: study's ${studyBest.label}`, pct(studyBest.testAcc), "train-torch-mlp")]),
      ...(inp.batchnorm
        ? bnCurves.map((c) =>
          accRow(
            `custom batch norm (${bnRow.label}), ${c.label} backward`,
            bnRow.testAcc,
            finalOf(c.evals).testAcc,
            src(c.from ?? inp.batchnorm!),
          )
        )
        : [notRunRow(`custom batch norm (${bnRow.label})`, pct(bnRow.testAcc), "train-batchnorm")]),
      ...(searchPick
        ? [accRow(
          `evolutionary search's pick, selected on validation (study's best GA pick ${studyBest.label}, selected on test)`,
          studyBest.testAcc,
          searchPick.test_acc as number,
          src(inp.search!.source),
        )]
        : inp.search
        ? []
        : [notRunRow("evolutionary search's pick, selected on validation", pct(studyBest.testAcc), "search-mlp")]),
      inp.searchPick
        ? accRow(
          `evolutionary search's pick, trained as a Table 1 run (study's best GA pick ${studyBest.label})`,
          studyBest.testAcc,
          inp.searchPick.history.final.testAcc,
          src(inp.searchPick),
        )
        : notRunRow(
          "evolutionary search's pick, trained as a Table 1 run",
          pct(studyBest.testAcc),
          "train-search-pick",
        ),
      ...evidence.map(({ stage, row, run, scores, mode }) =>
        run && scores
          ? [
            `autograd MLP, ${row.label}, test scored in training mode (${mode})`,
            pct(row.testAcc),
            `${pct(scores.training.testAccMean)} ± ${(100 * scores.training.testAccSd).toFixed(1)}`,
            pts(scores.training.testAccMean, row.testAcc),
            src(run),
          ]
          : notRunRow(`autograd MLP, ${row.label}, test scored in training mode`, pct(row.testAcc), stage)
      ),
      inp.cnn
        ? accRow(
          "CNN (small VGG)",
          EXPECTED.cnnTestAcc,
          inp.cnn.history.final.testAcc,
          src(inp.cnn),
          `${pct(EXPECTED.cnnTestAcc)} (assignment)`,
        )
        : notRunRow("CNN (small VGG)", `${pct(EXPECTED.cnnTestAcc)} (assignment)`, "train-cnn"),
    ],
  });

  // ------------------------------------------------------------ 1. numpy MLP
  const settings = (r: Run) =>
    Object.entries(paramsOf(r)).map(([k, v]) => `${k} ${cell(v, k)}`).join(", ") || "not recorded";
  b.push({ kind: "heading", level: 2, text: "1. MLP with hand-written backpropagation" });
  if (inp.numpy) {
    b.push({
      kind: "para",
      text: `Linear → ReLU → Linear → softmax, every forward and backward written by hand, plain SGD (the study's ` +
        `figures 1–2). Settings: ${settings(inp.numpy)}. Backend: ${inp.numpy.history.backend}. Final test ` +
        `accuracy ${pct(inp.numpy.history.final.testAcc)} (assignment: about ${pct(EXPECTED.numpyMlpTestAcc)}).`,
    });
    b.push(...pair(1, "numpy-mlp", "Hand-written MLP", inp.numpy));
  } else {
    b.push(
      notRunPara(
        "Linear → ReLU → Linear → softmax, every forward and backward written by hand, plain SGD (the study's " +
          "figures 1–2)",
        "train-numpy-mlp",
      ),
    );
  }

  // ------------------------------------------------------------ 2. autograd MLP, Table 1
  b.push({ kind: "heading", level: 2, text: "2. MLP with automatic differentiation: Table 1" });
  b.push({
    kind: "para",
    text: "The study's Table 1, its numbers beside ours. Each row is one variant of `train-torch-mlp` with the " +
      "study's settings (“settings”: whether ours were the same; the note above says how they differ); " +
      "source: `train-torch-mlp@<variant>`.",
  });
  b.push({
    kind: "table",
    head: [
      "run",
      "hidden",
      "lr",
      "batch",
      "steps",
      "train acc, study",
      "ours",
      "Δ (pts)",
      "test acc, study",
      "ours",
      "Δ (pts)",
      "settings",
      "source",
    ],
    right: [2, 3, 4, 5, 6, 7, 8, 9, 10],
    rows: TABLE1.map((row) => {
      const run = inp.torch.get(row.variant);
      const study = [row.label, row.hidden.join(","), cell(row.lr), String(row.batch), String(row.steps)];
      if (!run) {
        const no = NOT_RUN;
        return [...study, pct(row.trainAcc), no, no, pct(row.testAcc), no, no, no, no];
      }
      const d = deviations(run, { hidden: row.hidden, lr: row.lr, batch: row.batch, steps: row.steps });
      const f = run.history.final;
      return [
        row.label,
        row.hidden.join(","),
        cell(row.lr),
        String(row.batch),
        String(row.steps),
        pct(row.trainAcc),
        pct(f.trainAcc),
        pts(f.trainAcc, row.trainAcc),
        pct(row.testAcc),
        pct(f.testAcc),
        pts(f.testAcc, row.testAcc),
        d.length ? "**differ**" : "same",
        `[@${row.variant}](#${provId(run.stage)})`,
      ];
    }),
  });
  if (missingTorch.length) {
    b.push({
      kind: "para",
      text: `${NOT_RUN} not run yet: ${
        missingTorch.map((r) => `${r.label} (\`deno task reproduce ${torchStage(r.variant)}\`)`).join(", ")
      }.`,
    });
  }
  b.push(...evalModeBlocks());
  const def = inp.torch.get("default");
  if (def && best && !missingTorch.length) {
    b.push({
      kind: "para",
      text: `The default run (figures 3–4) and the best of our six runs by final test accuracy, ` +
        `**${best.row.label}** (figures 5–6; the study's best was ${studyBest.label}). Backend: ${def.history.backend}.`,
    });
  } else {
    // A partial report: say which of the two pairs is there.
    const parts = [
      def ? "The default run (figures 3–4)" : `The default run (figures 3–4): ${notRunYet(torchStage("default"))}`,
      best
        ? `the best of our ${torch.length} finished runs by final test accuracy, **${best.row.label}** (figures 5–6; ` +
          `the study's best was ${studyBest.label}). Backend: ${(def ?? best.run).history.backend}.`
        : `the best run (figures 5–6): none has finished yet (the study's best was ${studyBest.label}).`,
    ];
    b.push({ kind: "para", text: parts.join(def ? " and " : "; ") });
  }
  if (def) b.push(...pair(3, "torch-mlp-default", "Autograd MLP, default", def));
  if (best) b.push(...pair(5, "torch-mlp-best", `Autograd MLP, best run (${best.row.label})`, best.run));
  if (torch.length) {
    b.push(
      figure(
        "fig11-table1",
        11,
        "Table 1 as a chart: the study's test accuracy beside ours (not in the study)" +
          (missingTorch.length ? `; not run yet: ${missingTorch.map((r) => r.label).join(", ")}` : ""),
        table1Spec(TABLE1.flatMap((row) => {
          const run = inp.torch.get(row.variant);
          return [
            { run: row.label, source: "study", test: row.testAcc },
            ...(run ? [{ run: row.label, source: "ours", test: run.history.final.testAcc }] : []),
          ];
        })),
      ),
    );
  }

  /** Why our dropout rows score above the study's: the same networks scored both ways (the eval-mode stages). */
  function evalModeBlocks(): Block[] {
    const out: Block[] = [{
      kind: "para",
      text: "Our dropout rows score the test set in inference mode (dropout off, batch norm with running " +
        "statistics). Had the study's MLP code, like its CNN code (SPEC), scored it with the model still in " +
        "training mode (dropout on; its batch norm kept no running statistics, so batch statistics), its figures " +
        `would be lower. To measure by how much, ${evidence.map((e) => `\`${e.stage}\``).join(" and ")} train ` +
        `${evidence.map((e) => e.row.label).join(" and ")} again and score the final weights both ways ` +
        "(training mode: the whole test set in one forward pass, several draws of the dropout masks). Each " +
        "trains with the code, seed and settings of its Table 1 run; the two curves differ only by float " +
        "rounding, amplified by training (the last column: the largest test-accuracy difference between them).",
    }];
    out.push({
      kind: "table",
      head: [
        "run",
        "test acc, study",
        "ours, inference mode",
        "ours, training mode",
        "draws",
        "source",
        "vs Table 1 run",
      ],
      right: [1, 2, 3, 4],
      rows: evidence.map(({ stage, row, run, scores }) => {
        if (!run || !scores) return [row.label, pct(row.testAcc), NOT_RUN, NOT_RUN, NOT_RUN, notRunYet(stage), NOT_RUN];
        const table1Run = inp.torch.get(row.variant);
        let vs = NOT_RUN;
        if (table1Run) {
          const [a, e] = [table1Run.history.evals, run.history.evals];
          try {
            vs = `${cell(curveDifference(a, e).testAcc)} over ${a.length} evaluations`;
          } catch { // curves at different steps
            vs = "evaluated at other steps";
          }
        }
        const t = scores.training;
        return [
          row.label,
          pct(row.testAcc),
          pct(scores.inference.testAcc),
          `**${pct(t.testAccMean)}** ± ${(100 * t.testAccSd).toFixed(1)}`,
          String(t.testAccs.length),
          src(run),
          vs,
        ];
      }),
    });
    return out;
  }

  // ------------------------------------------------------------ 3. batch norm
  function batchnormSection(intro: string, bn: Run, checks: NonNullable<ReportInputs["checks"]>): Block[] {
    const out: Block[] = [];
    out.push({
      kind: "para",
      text: `${intro}. The checks below are those of the assignment (source: ${src(checks.source)}, \`checks.json\`).`,
    });
    if (checks.tables.length) { for (const t of checks.tables) out.push(...tableBlock(t)); }
    else out.push({ kind: "para", text: "`checks.json` holds no table of checks." });
    out.push(...scalarsBlock(checks.scalars));
    out.push({
      kind: "para",
      text: `The ${bnRow.label} network trained with the hand-written backward (${src(bn)}, settings: ` +
        `${settings(bn)}), ${bn.pairing ?? "not compared with an autograd run"}` +
        (bnCurves.length > 1
          ? `; the dashes tell the ${bnCurves.map((c) => c.label).join(" and ")} backward apart (where the curves ` +
            "coincide, the dashed line hides under the solid one)."
          : "."),
    });
    const extras = extraFields(bn.history);
    if (Object.keys(extras).length) {
      out.push({ kind: "para", text: `Also from the run (${src(bn)}) and the comparison of the two curves:` });
      out.push(...scalarsBlock(extras));
    }
    out.push(
      figure(
        "fig9-batchnorm-accuracy",
        9,
        `Batch-norm MLP, ${bnCurves.map((c) => c.label).join(" vs ")} backward: accuracy (not in the study)`,
        curveSpec("Custom batch norm: accuracy", bnCurves, "accuracy"),
      ),
      figure(
        "fig10-batchnorm-loss",
        10,
        `Batch-norm MLP, ${bnCurves.map((c) => c.label).join(" vs ")} backward: loss (not in the study)`,
        curveSpec("Custom batch norm: loss", bnCurves, "loss"),
      ),
    );
    return out;
  }
  b.push({ kind: "heading", level: 2, text: "3. Custom batch normalisation" });
  const bnIntro = "Batch norm for MLP activations in two versions: composed of framework ops and differentiated " +
    "automatically, and with the hand-written backward of the study's eqs. 46, 50 and 69";
  if (inp.batchnorm && inp.checks) b.push(...batchnormSection(bnIntro, inp.batchnorm, inp.checks));
  else b.push(notRunPara(bnIntro, "train-batchnorm"));

  // ------------------------------------------------------------ 4. CNN
  b.push({ kind: "heading", level: 2, text: "4. Convolutional network" });
  if (inp.cnn) {
    b.push({
      kind: "para",
      text: `The study's small VGG with a batch norm after every conv, Adam (figures 7–8). Settings: ` +
        `${settings(inp.cnn)}. Backend: ${inp.cnn.history.backend}. Final test accuracy ` +
        `${pct(inp.cnn.history.final.testAcc)} (assignment: about ${pct(EXPECTED.cnnTestAcc)}).`,
    });
    b.push(...pair(7, "cnn", "CNN", inp.cnn));
  } else {
    b.push(notRunPara("The study's small VGG with a batch norm after every conv, Adam (figures 7–8)", "train-cnn"));
  }

  // ------------------------------------------------------------ 5. search
  b.push({ kind: "heading", level: 2, text: "5. Evolutionary hyper-parameter search" });
  if (!inp.search) {
    b.push({
      kind: "para",
      text: `Skipped: the search (\`search-mlp\`): ${notRunYet("search-mlp")}.`,
    });
  } else {
    b.push({
      kind: "para",
      text: `The study's evolutionary search, selecting on a validation split held out of the training set ` +
        `instead of on the test set (source: ${src(inp.search.source)}, \`search.json\`).`,
    });
    const search = asSearch(inp.search.data);
    if (search) {
      if (search.note) b.push({ kind: "para", text: `The search's own note: ${search.note}.` });
      const rows = search.rows;
      b.push(
        figure(
          "fig12-search",
          12,
          "Search: validation accuracy of every individual, and the best of each generation (not in the study)",
          searchSpec(rows, "generation", "val_acc", Object.keys(rows[0])),
        ),
      );
      if (search.pick) {
        b.push({ kind: "para", text: "The final pick, the only individual evaluated on the test set:" });
        b.push(...tableBlock({ rows: [search.pick] }));
      }
      b.push(
        inp.searchPick
          ? {
            kind: "para",
            text: `The pick trained as a Table 1 run (${src(inp.searchPick)}; settings: ${settings(inp.searchPick)}):` +
              ` test accuracy **${pct(inp.searchPick.history.final.testAcc)}**, beside ` +
              TABLE1.filter((r) => r.variant.startsWith("ga") && !r.dropout).map((r) => {
                const run = inp.torch.get(r.variant);
                return `${r.label} ${run ? pct(run.history.final.testAcc) : NOT_RUN}`;
              }).join(", ") + ` (ours) and the study's ${studyBest.label} ${pct(studyBest.testAcc)}.`,
          }
          : notRunPara("The pick trained as a Table 1 run", "train-search-pick"),
      );
      b.push(...scalarsBlock(search.scalars));
      b.push(...tableBlock({ title: "every individual evaluated", rows }));
    } else {
      // Not the shape this report knows: show whatever tables it holds.
      const { tables, scalars } = findTables(inp.search.data);
      const plot = searchPlot(tables);
      if (plot) b.push(figure("fig12-search", 12, "Search: every individual evaluated (not in the study)", plot));
      b.push(...scalarsBlock(scalars));
      for (const t of tables) b.push(...tableBlock(t));
    }
  }

  // ------------------------------------------------------------ 6. cost
  // Every training stage in order, its run or undefined (not run yet).
  const trainings = RUN_STAGES.filter((s) => s !== "search-mlp").map((stage) => ({
    stage,
    run: [inp.numpy, ...inp.torch.values(), ...inp.evalModes.values(), inp.batchnorm, inp.cnn, inp.searchPick]
      .find((r) => r?.stage === stage),
  }));
  const runs: Run[] = trainings.flatMap((t) => (t.run ? [t.run] : []));
  const notRunCost = (stage: string) => [`\`${stage}\``, notRunYet(stage), ...Array(6).fill(NOT_RUN)];
  b.push({ kind: "heading", level: 2, text: "6. What each run cost" });
  b.push({
    kind: "para",
    text: "Wall time of the training as the stage measured it, and of the whole stage process as the engine " +
      "measured it (start-up, data loading and evaluations included).",
  });
  b.push({
    kind: "table",
    head: ["stage", "backend", "steps", "batch", "training time", "steps/s", "images/s", "stage time (engine)"],
    right: [2, 3, 4, 5, 6, 7],
    // A run that trained several curves gets a row per curve.
    rows: trainings.flatMap(({ stage, run: r }) => {
      if (!r) return [notRunCost(stage)];
      const p = paramsOf(r);
      const steps = typeof p.steps === "number" ? p.steps : r.history.final.step;
      const batch = typeof p.batch === "number" ? p.batch : NaN;
      // A curve read from another run (the batch norm's twin) is that run's cost, in its own row.
      const own = r.curves.filter((c) => !c.from);
      const several = own.length > 1;
      return own.map((c, i) => [
        several ? `${src(r)} (${c.label})` : src(r),
        r.history.backend,
        String(steps),
        Number.isFinite(batch) ? String(batch) : "–",
        seconds(c.wallSeconds ?? NaN),
        rate(c.stepsPerSecond ?? NaN),
        rate((c.stepsPerSecond ?? NaN) * batch),
        r.source.provenance && i === 0 ? seconds(r.source.provenance.wall_s) : "–",
      ]);
    }).concat(
      inp.search
        ? [[
          src(inp.search.source),
          "–",
          cell((inp.search.data as { steps_used?: number } | null)?.steps_used),
          "–",
          "–",
          "–",
          "–",
          inp.search.source.provenance ? seconds(inp.search.source.provenance.wall_s) : "–",
        ]]
        : [notRunCost("search-mlp")],
    ),
  });

  // ------------------------------------------------------------ 7. differences
  b.push({ kind: "heading", level: 2, text: "7. Where we differ from the study's code" });
  b.push({
    kind: "table",
    head: ["what", "the study's code", "ours"],
    rows: QUIRKS.map((q) => [q.what, q.study, q.ours]),
  });
  // Each distinct note once, with every stage that recorded it.
  const notes = new Map<string, string[]>();
  for (const r of runs) for (const n of r.history.notes ?? []) notes.set(n, [...(notes.get(n) ?? []), r.stage]);
  if (notes.size) {
    b.push({ kind: "para", text: "Notes the runs recorded:" });
    b.push({
      kind: "list",
      items: [...notes].map(([n, stages]) => `${stages.map((s) => `\`${s}\``).join(", ")}: ${n}`),
    });
  }

  // ------------------------------------------------------------ 8. provenance
  b.push({ kind: "heading", level: 2, text: "Provenance", id: "provenance" });
  b.push({
    kind: "para",
    text: "For every input: the engine's cache key of the run, the hash of its code (its import closure), the " +
      "SHA-256 of each file this report read (checked against the engine's record), parameters, Deno and npm " +
      "versions, and when it ran. The study's numbers: `reports/build/study.ts` (the study's Table 1 and text; " +
      "expected accuracies from the assignment, via `SPEC.md`).",
  });
  const sources: Source[] = [...runs.map((r) => r.source)];
  if (inp.checks) sources.push(inp.checks.source);
  if (inp.search) sources.push(inp.search.source);
  for (const stage of RUN_STAGES) {
    const files = sources.filter((s) => s.stage === stage);
    b.push({ kind: "heading", level: 3, text: `\`${stage}\``, id: provId(stage) });
    if (!files.length) {
      b.push({ kind: "list", items: [notRunYet(stage)] });
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
      b.push({ kind: "list", items: ["provenance unavailable (run through the engine)", ...fileItems] });
      continue;
    }
    b.push({
      kind: "list",
      items: [
        `cache key \`${p.key}\``,
        `code hash \`${p.code_hash}\``,
        ...fileItems,
        `parameters: ${Object.entries(p.params).map(([k, v]) => `${k} ${cell(v, k)}`).join(", ") || "none"}`,
        `Deno ${p.deno}; npm: ${p.npm.join(", ") || "none"}`,
        `started ${p.started}, ${seconds(p.wall_s)}`,
      ],
    });
  }

  return {
    blocks: b,
    figures,
    metrics: {
      figures: figures.length,
      // A partial report leaves out what it does not have and counts what is missing.
      ...(best ? { best_variant: best.row.variant, best_test_acc: best.run.history.final.testAcc } : {}),
      ...(inp.numpy ? { numpy_test_acc: inp.numpy.history.final.testAcc } : {}),
      ...(inp.cnn ? { cnn_test_acc: inp.cnn.history.final.testAcc } : {}),
      off_study_settings: off.length,
      ...(inp.missing.length ? { missing_runs: inp.missing.length } : {}),
    },
  };
}

/** A chart of the search if some table has a generation and an accuracy-like column; else none. */
function searchPlot(tables: Table[]): Figure["spec"] | undefined {
  for (const t of tables) {
    const keys = [...new Set(t.rows.flatMap((r) => Object.keys(r)))];
    const numeric = keys.filter((k) => t.rows.every((r) => typeof r[k] === "number"));
    const x = numeric.find((k) => /^gen/i.test(k));
    const y = numeric.find((k) => /val.*acc|fitness/i.test(k)) ?? numeric.find((k) => /acc/i.test(k));
    if (x && y) {
      // Flat values only (a hidden layout becomes "1000,500"), so the spec stays plain data.
      const flat = (v: unknown) => (Array.isArray(v) ? v.join(",") : v && typeof v === "object" ? undefined : v);
      const tooltip = keys.filter((k) => t.rows.some((r) => flat(r[k]) !== undefined));
      const rows = t.rows.map((r) => Object.fromEntries(tooltip.map((k) => [k, flat(r[k]) ?? null])));
      return searchSpec(rows, x, y, tooltip);
    }
  }
  return undefined;
}

/** search.json as the search-mlp stage writes it (models/search/stage.ts SearchRecord), flattened for tables. */
function asSearch(data: unknown):
  | { rows: Record<string, unknown>[]; pick?: Record<string, unknown>; note?: string; scalars: Record<string, unknown> }
  | undefined {
  const d = data as Record<string, unknown> | null;
  const gens = d?.generations;
  if (!Array.isArray(gens) || !gens.every((g) => g && Array.isArray(g.individuals))) return undefined;
  const rows: Record<string, unknown>[] = gens.flatMap((g) =>
    (g.individuals as Record<string, unknown>[]).map((ind) => ({ generation: g.generation, ...flatIndividual(ind) }))
  );
  if (!rows.length || !rows.every((r) => typeof r.val_acc === "number")) return undefined;
  const pick = d!.pick && typeof d!.pick === "object" ? flatIndividual(d!.pick as Record<string, unknown>) : undefined;
  const scalars: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(d!)) {
    if (!["generations", "pick", "note", "params"].includes(k) && (v === null || typeof v !== "object")) scalars[k] = v;
  }
  return { rows, pick, note: typeof d!.note === "string" ? d!.note : undefined, scalars };
}

/** { genes: {layout, lr, batch, steps}, hidden: [..], val_acc, … } → hidden "1000,500", lr, batch, steps, accuracies. */
function flatIndividual(ind: Record<string, unknown>): Record<string, unknown> {
  const genes = (ind.genes && typeof ind.genes === "object" ? ind.genes : {}) as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  if (Array.isArray(ind.hidden)) out.hidden = ind.hidden.join(",");
  for (const k of ["lr", "batch", "steps"]) out[k] = ind[k] ?? genes[k];
  for (const [k, v] of Object.entries(ind)) {
    if (!(k in out) && k !== "genes" && (v === null || typeof v !== "object")) out[k] = v;
  }
  return out;
}

/** The two scores an eval-mode stage records (undefined: another shape). */
function asEvalModes(h: TrainingHistory): {
  inference: { testAcc: number };
  training: { testAccMean: number; testAccSd: number; testAccs: number[] };
} | undefined {
  const m = (h as unknown as { evalModes?: Record<string, Record<string, unknown>> }).evalModes;
  const num = (v: unknown) => typeof v === "number";
  if (!m || !num(m.inference?.testAcc) || !num(m.training?.testAccMean) || !num(m.training?.testAccSd)) {
    return undefined;
  }
  if (!Array.isArray(m.training.testAccs)) return undefined;
  return m as never;
}
