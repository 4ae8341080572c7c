// The report's last section, provenance: for every stage it read, the
// engine's cache key, the hash of its code, the SHA-256 of each file read
// (checked against the engine's record), parameters, Deno and npm versions,
// and when it ran; "not run yet" for a stage not among the inputs. Every
// source link of the report (format.ts src) points here.
import type { Block } from "../document.ts";
import { cell, provId, seconds } from "../format.ts";
import { notRunYet, RUN_STAGES, type Source } from "../inputs.ts";
import { allRuns, type Report } from "../report.ts";

/** The last section: every stage the report read, its cache key, code hash, files and parameters. */
export function provenanceSection({ inp }: Report): Block[] {
  const out: Block[] = [{
    kind: "para",
    text: "For every input: the engine's cache key of the run, the hash of its code (its import closure), the " +
      "SHA-256 of each file this report read (checked against the engine's record), parameters, Deno and npm " +
      "versions, and when it ran. The study's numbers: `reports/build/study.ts` (the study's Table 1 and text; " +
      "expected accuracies from the assignment, via `SPEC.md`); its curves: " +
      "`shared/seeds/study-curves-read-from-figures.json`, via `reports/build/study.ts`.",
  }];
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
        ...(typeof p.record.host === "object" && p.record.host && "commit" in p.record.host
          ? [`git commit \`${(p.record.host as { commit: unknown }).commit}\``]
          : []),
        ...fileItems,
        `parameters: ${Object.entries(p.params).map(([k, v]) => `${k} ${cell(v, k)}`).join(", ") || "none"}`,
        `Deno ${p.deno}; npm: ${p.npm.join(", ") || "none"}`,
        `started ${p.started}, last process ${seconds(p.wall_s)}`,
      ],
    });
  }
  return out;
}
