// What reproduce, status and accept print: the summary line, a result for --json,
// the verdict of a verification.
import type { StageResult, VerifyResult } from "../engine/engine.ts";
import { formatDuration } from "../terminal/progress.ts";
import { plural } from "./command.ts";

/**
 * "46 stages, would: 2 run (about 28m from their last runs), 1 rebuild (about 6s), 43 up to date":
 * what a reproduce does, with what the records say it costs.
 */
export function summaryLine(results: StageResult[], would: boolean): string {
  const counts = Object.entries(Object.groupBy(results, (r) => r.outcome)).map(([o, rs]) => {
    const timed = rs!.filter((r) => r.seconds !== undefined);
    const total = timed.reduce((s, r) => s + r.seconds!, 0);
    const some = timed.length < rs!.length ? ` for ${timed.length} of them,` : "";
    const from = o === "rebuild" ? "from their records" : "from their last runs";
    return `${rs!.length} ${o}${would && timed.length ? ` (about ${formatDuration(total)}${some} ${from})` : ""}`;
  });
  return `${plural(results.length, "stage")}${would ? ", would" : ""}: ${counts.join(", ")}`;
}

/** A result without its run entry (which holds every code hash): for --json. */
export function plain(r: StageResult) {
  return { stage: r.stage, action: r.outcome, reasons: r.reasons, key: r.key, seconds: r.seconds };
}

/** One line per verified stage; exit status 1 if any differs. */
export function verified(results: VerifyResult[], json: unknown): number {
  if (json) console.log(JSON.stringify(results, null, 2));
  else {
    for (const r of results) {
      const how = r.steps === "all"
        ? "every output"
        : r.steps === "curve"
        ? "the whole curve: an accepted run's bytes are older code's"
        : `the first ${r.steps} steps`;
      console.log(
        r.identical
          ? `✓ ${r.stage}: bit-identical (${how})`
          : r.refused
          ? `✗ ${r.refused.startsWith(`${r.stage}: `) ? r.refused : `${r.stage}: not accepted — ${r.refused}`}`
          : `✗ ${r.stage}: differs (${how}) — ${r.difference}`,
      );
    }
  }
  return results.every((r) => r.identical) ? 0 : 1;
}
