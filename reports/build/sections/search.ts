// Section 6, the evolutionary search (search-mlp): every individual, the best
// so far, the pick, and the pick trained as a Table 1 run (train-search-pick),
// compared like with like (full steps against full steps: the search's own
// scores come from a fraction of each individual's steps). A search.json of
// another shape is shown as whatever tables it holds.
import { type Figure, searchSpec } from "../charts.ts";
import type { Block } from "../document.ts";
import { interval, meanSd, NOT_RUN, pct, scalarsBlock, settings, src, tableBlock } from "../format.ts";
import { findTables, notRunYet, type Table } from "../inputs.ts";
import { nOf, type Report, seeded, seedOf, verdict } from "../report.ts";
import { TABLE1 } from "../study.ts";

/** Column names of search.json as the report writes them. */
const WORDS: Record<string, string> = {
  generation: "generation",
  val_acc: "validation acc",
  val_loss: "validation loss",
  train_acc: "train acc",
  test_acc: "test acc",
  test_loss: "test loss",
};

/** Section 6: the search's individuals, its figure and its pick, the pick beside Table 1's GA rows. */
export function searchSection(r: Report): Block[] {
  const { inp, figure, studyBest } = r;
  const b: Block[] = [];
  if (!inp.search) return [{ kind: "para", text: `Skipped: the search (\`search-mlp\`): ${notRunYet("search-mlp")}.` }];
  b.push({
    kind: "para",
    text: `The study's evolutionary search, selecting on a validation split held out of the training set ` +
      `instead of on the test set (source: ${src(inp.search.source)}, \`search.json\`).`,
  });
  const search = asSearch(inp.search.data);
  if (!search) {
    // Not the shape this report knows: show whatever tables it holds.
    const { tables, scalars } = findTables(inp.search.data);
    const plot = searchPlot(tables);
    if (plot) b.push(figure("search", "Search: every individual evaluated (not in the study)", plot));
    b.push(...scalarsBlock(scalars));
    for (const t of tables) b.push(...tableBlock(t, WORDS));
    return b;
  }
  if (search.note) b.push({ kind: "para", text: `The search's own note: ${search.note}.` });
  const d = inp.search.data as {
    steps_used?: unknown;
    stopped_by_budget?: unknown;
    params?: { budget_steps?: unknown };
  };
  if (typeof d.steps_used === "number") {
    b.push({
      kind: "para",
      text: `It trained ${d.steps_used} steps in all` +
        (d.stopped_by_budget === true
          ? `, and stopped at its budget${
            typeof d.params?.budget_steps === "number" ? ` of ${d.params.budget_steps} steps` : ""
          } before its last generation was complete (the last generation drawn is smaller: each point is labelled ` +
            "with its generation's size)."
          : "."),
    });
  }
  const rows = search.rows;
  b.push(
    figure(
      "search",
      "Search: validation accuracy of every individual; the dashed line is the best so far (with elitism it " +
        "never falls), the number above each generation its size (not in the study)",
      searchSpec(rows, "generation", "val_acc", Object.keys(rows[0]), WORDS),
    ),
  );
  if (search.pick) {
    b.push({
      kind: "para",
      text: "The final pick, the only individual evaluated on the test set, as the search trained it (its steps " +
        "scaled down: these scores are not comparable with the Table 1 runs):",
    });
    b.push(...tableBlock({ rows: [asPercent(search.pick)] }, WORDS));
  }
  const ga = TABLE1.filter((row) => row.variant.startsWith("ga") && !row.dropout);
  const pick = inp.searchPick && seeded(inp, inp.searchPick);
  b.push(
    pick
      ? {
        kind: "para",
        text: `Like with like: the pick trained for its full steps as a Table 1 run (${src(pick.base)}; ` +
          `settings: ${settings(pick.base)}) scores **${
            pick.runs.length > 1 ? meanSd(pick.test) : pct(pick.base.history.final.testAcc)
          }** on the test set` +
          (pick.runs.length > 1
            ? ` (mean ± sd over ${nOf(pick)} seeds, ${pick.runs.map(seedOf).join(", ")}; 95% interval ` +
              `${interval(pick.test)}; against the study's ${studyBest.label}: ` +
              `${verdict(pick.test, studyBest.testAcc)})`
            : "") +
          `, beside our ${
            ga.map((row) => {
              const m = r.variant(row.variant)?.s.test.mean;
              return `${row.label} ${m === undefined ? NOT_RUN : pct(m)}`;
            }).join(", ")
          } and the study's ${studyBest.label} ${pct(studyBest.testAcc)} (all trained for their full steps).`,
      }
      : { kind: "para", text: `The pick trained as a Table 1 run: ${notRunYet("train-search-pick")}.` },
  );
  b.push(...tableBlock({ title: "Every individual evaluated", rows: rows.map(asPercent) }, WORDS));
  return b;
}

/** Accuracies as percentages, like every other accuracy of the report. */
const asPercent = (row: Record<string, unknown>) =>
  Object.fromEntries(Object.entries(row).map(([k, v]) => [k, /_acc$/.test(k) && typeof v === "number" ? pct(v) : v]));

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
      return searchSpec(rows, x, y, tooltip, WORDS);
    }
  }
  return undefined;
}

/** search.json as the search-mlp stage writes it (models/search/stage.ts SearchRecord), flattened for tables. */
export function asSearch(data: unknown):
  | { rows: Record<string, unknown>[]; pick?: Record<string, unknown>; note?: string }
  | undefined {
  const d = data as Record<string, unknown> | null;
  const gens = d?.generations;
  if (!Array.isArray(gens) || !gens.every((g) => g && Array.isArray(g.individuals))) return undefined;
  const rows: Record<string, unknown>[] = gens.flatMap((g) =>
    (g.individuals as Record<string, unknown>[]).map((ind) => ({ generation: g.generation, ...flatIndividual(ind) }))
  );
  if (!rows.length || !rows.every((r) => typeof r.val_acc === "number")) return undefined;
  const pick = d!.pick && typeof d!.pick === "object" ? flatIndividual(d!.pick as Record<string, unknown>) : undefined;
  return { rows, pick, note: typeof d!.note === "string" ? d!.note : undefined };
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
