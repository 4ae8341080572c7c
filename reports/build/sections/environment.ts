// The environment, once, near the top of the report: one row per distinct
// host the runs ran on (CPU, cores, instruction set, OS, Deno), the commits of
// the code that ran, and which runs were made before the pipeline recorded its
// host. Facts come from each run's record (_provenance.json).
import type { Block } from "../document.ts";
import { cell } from "../format.ts";
import { allRuns, type Report } from "../report.ts";

const HOST_FIELDS = [["cpu", "CPU"], ["cores", "cores"], ["isa", "instruction set"], ["os", "OS"], [
  "deno",
  "Deno",
]] as const;

/** The machines the runs ran on, once: one row per distinct host, the commits of the code that ran. */
export function environmentSection({ inp }: Report): Block[] {
  const runs = allRuns(inp);
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
  const out: Block[] = [];
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
