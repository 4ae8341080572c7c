// Section 8, where we differ from the study's code: the table of its quirks
// (study.ts QUIRKS: what its code does, what ours does), and every distinct
// note the runs recorded in their histories, with the stages that recorded it,
// in the report's words.
import type { Block } from "../document.ts";
import { allRuns, type Report } from "../report.ts";
import { QUIRKS } from "../study.ts";

/** Section 8: the study's code against ours, then each note the runs recorded, once. */
export function quirksSection(r: Report): Block[] {
  const b: Block[] = [{
    kind: "table",
    head: ["what", "the study's code", "ours"],
    rows: QUIRKS.map((q) => [q.what, q.study, q.ours]),
  }];
  // Each distinct note once, with every stage that recorded it (seed runs under their base).
  const notes = new Map<string, string[]>();
  for (const run of allRuns(r.inp)) {
    const stage = run.stage.replace(/\+s\d+$/, "");
    for (const n of run.history.notes ?? []) {
      const stages = notes.get(n) ?? [];
      if (!stages.includes(stage)) notes.set(n, [...stages, stage]);
    }
  }
  if (notes.size) {
    b.push({ kind: "para", text: "Notes the runs recorded:" });
    b.push({
      kind: "list",
      items: [...notes].map(([n, stages]) => `${stages.map((s) => `\`${s}\``).join(", ")}: ${plainWords(n)}`),
    });
  }
  return b;
}

/** A run's note in the report's words: the history's field names become what the report calls them. */
function plainWords(note: string): string {
  const words: Record<string, string> = {
    stepsPerSecond: "steps/s",
    wallSeconds: "the training time",
    evalImagesPerSecond: "test images/s",
    "`step`": "the step",
  };
  return Object.entries(words).reduce((n, [k, v]) => n.replaceAll(k, v), note);
}
