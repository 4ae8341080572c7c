// The environment, once, near the top of the report: one line per distinct
// environment the runs ran in (CPU, cores, instruction set, OS, Deno) with the
// runs it covers, and which runs were made before the pipeline recorded its
// host. The code of each run is pinned by its code hash (Provenance); the git
// commit each run recorded goes there too. Facts come from each run's record
// (_provenance.json).
import type { Block } from "../document.ts";
import { cell } from "../format.ts";
import type { Run } from "../inputs.ts";
import { allRuns, type Report, seedOf } from "../report.ts";

const HOST_FIELDS = [["cpu", "CPU"], ["cores", "cores"], ["isa", "instruction set"], ["os", "OS"], [
  "deno",
  "Deno",
]] as const;

/** "`train-cnn` (seeds 42, 1, 2), `search-mlp`": a stage's seed runs listed with it. */
export function runList(runs: Run[]): string {
  const byBase = new Map<string, Run[]>();
  for (const r of runs) {
    const base = r.stage.replace(/\+s\d+$/, "");
    byBase.set(base, [...(byBase.get(base) ?? []), r]);
  }
  return [...byBase].map(([s, rs]) =>
    `\`${s}\`${
      rs.length > 1 || rs[0].stage !== s ? ` (seed${rs.length > 1 ? "s" : ""} ${rs.map(seedOf).join(", ")})` : ""
    }`
  ).join(", ");
}

/** An instruction set as words: a JSON list of extensions → "sse4_2, avx, avx2, …". */
const isaText = (v: unknown) =>
  Array.isArray(v) ? v.join(", ") : typeof v === "string" && v.startsWith("[")
    ? (() => {
      try {
        return (JSON.parse(v) as string[]).join(", ");
      } catch {
        return v;
      }
    })()
    : cell(v);

/** The environments the runs ran in, once: one row per distinct one, with the runs it covers. */
export function environmentSection({ inp }: Report): Block[] {
  const runs = allRuns(inp);
  const hosts = new Map<string, { host: Record<string, unknown>; runs: Run[] }>();
  const unrecorded: Run[] = [];
  let commits = 0, dirty = 0;
  const seen = new Set<string>();
  for (const r of runs) {
    const host = r.source.provenance?.record.host as Record<string, unknown> | undefined;
    if (!host || typeof host !== "object") {
      unrecorded.push(r);
      continue;
    }
    if (typeof host.commit === "string" && !seen.has(host.commit)) {
      seen.add(host.commit);
      commits++;
      if (host.commit.endsWith("+dirty")) dirty++;
    }
    const key = JSON.stringify(HOST_FIELDS.map(([k]) => host[k]));
    hosts.set(key, { host, runs: [...(hosts.get(key)?.runs ?? []), r] });
  }
  const out: Block[] = [];
  const denos = [...new Set(unrecorded.map((r) => r.source.provenance?.deno).filter((d) => d))];
  const rows = [...hosts.values()].map(({ host, runs: covered }) => [
    ...HOST_FIELDS.map(([k]) => k === "isa" ? isaText(host[k]) : cell(host[k], k)),
    `${covered.length === runs.length ? "all " : ""}${covered.length}: ${runList(covered)}`,
  ]);
  if (unrecorded.length) {
    rows.push([
      "not recorded",
      "–",
      "–",
      "–",
      denos.length ? denos.join(", ") : "–",
      `${unrecorded.length}: ${runList(unrecorded)} (made before the pipeline recorded its host)`,
    ]);
  }
  out.push({
    kind: "para",
    text: `The ${runs.length} training runs this report reads (each seed its own run), by the environment they ran ` +
      "in. The compute path (kernels and threads) of each run is in the cost table (section 7).",
  });
  out.push({ kind: "table", head: [...HOST_FIELDS.map(([, h]) => h), "runs"], right: [1], rows });
  if (commits) {
    out.push({
      kind: "para",
      text: "What pins each run's code is its code hash, the hash of every file the stage imports (part of its " +
        `cache key), listed under [Provenance](#provenance). The runs also recorded the git commit they started ` +
        `from: ${commits === 1 ? "one commit" : `${commits} different commits`}` +
        (dirty
          ? `, ${dirty} of them marked \`+dirty\`: the working tree had uncommitted changes when the run ` +
            "started, so the commit alone does not say which code ran — its code hash does"
          : "") +
        ".",
    });
  }
  return out;
}
