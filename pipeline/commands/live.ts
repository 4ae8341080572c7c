// `reproduce --live`: out/live/index.html, a self-contained page that reloads itself every few
// seconds (no server, no script), showing each running stage's curves so far beside the same
// stage's previous run (the one the lock file records). Nothing in the stages changes for it:
// a running stage is found by its worker config in the cache's tmp/ (worker.json: its name and
// checkpoint directory) and its key's lock, and its points are those its last checkpoint holds
// (checkpoint-<step>.json: the evaluations so far). The cache is shared with batch jobs (an executor on a cluster), so a
// stage running as a job shows the same way.
import { basename, join } from "node:path";
import type { Engine } from "../engine/engine.ts";
import { writeFileAtomic } from "../store/hash.ts";
import { type Curves, readHistory } from "./plots.ts";
import type { EvalPoint } from "../types.ts";

/** Seconds between the page's reloads. */
export const REFRESH_S = 3;

interface Running {
  stage: string;
  key: string;
  evals: EvalPoint[];
  done: boolean;
}

/** The evaluations in a checkpoint manifest, wherever its stage keeps them (meta.evals, meta.state.evals). */
export function findEvals(value: unknown, depth = 0): EvalPoint[] | undefined {
  if (!value || typeof value !== "object" || depth > 4) return undefined;
  const evals = (value as { evals?: unknown }).evals;
  if (Array.isArray(evals) && evals.every((e) => typeof e?.step === "number")) return evals as EvalPoint[];
  for (const v of Object.values(value)) {
    const found = findEvals(v, depth + 1);
    if (found) return found;
  }
  return undefined;
}

/** The evaluations of a run in progress: its newest checkpoint's (none yet: []). */
async function pointsSoFar(checkpointDir: string): Promise<EvalPoint[]> {
  const manifests = (await Array.fromAsync(Deno.readDir(checkpointDir)).catch(() => []))
    .map((e) => /^checkpoint-(\d+)\.json$/.exec(e.name)).filter((m) => m !== null)
    .sort((a, b) => Number(b![1]) - Number(a![1]));
  for (const m of manifests) {
    try {
      const evals = findEvals(JSON.parse(await Deno.readTextFile(join(checkpointDir, m![0]))));
      if (evals) return evals;
    } catch { /* being replaced: the next older one */ }
  }
  return [];
}

export class LiveView {
  readonly file: string;
  private seen = new Map<string, Running>();
  private previous = new Map<string, Curves | null>();
  private timer?: ReturnType<typeof setInterval>;
  private busy?: Promise<void>;

  constructor(private readonly engine: Engine, root: string, private readonly everyMs = liveInterval()) {
    this.file = join(root, "out", "live", "index.html");
  }

  /** Write the page now and every few seconds until stop(). */
  async start() {
    await this.tick();
    this.timer = setInterval(() => {
      this.busy ??= this.tick().catch(() => {}).finally(() => (this.busy = undefined));
    }, this.everyMs);
  }

  /** The last page: every stage seen, finished. */
  async stop() {
    clearInterval(this.timer);
    await this.busy;
    await this.tick(true);
  }

  private async running(): Promise<Array<{ stage: string; key: string; checkpointDir: string }>> {
    const store = this.engine.store;
    const out = [];
    for (const e of await Array.fromAsync(Deno.readDir(join(store.dir, "tmp"))).catch(() => [])) {
      try {
        const cfg = JSON.parse(await Deno.readTextFile(join(store.dir, "tmp", e.name, "worker.json")));
        const key = basename(cfg.checkpointDir);
        if (typeof cfg.stage === "string" && (await store.holder(key))) {
          out.push({ stage: cfg.stage, key, checkpointDir: cfg.checkpointDir });
        }
      } catch { /* not a worker's directory, or not yet written */ }
    }
    return out;
  }

  async tick(final = false) {
    const now = final ? [] : await this.running();
    for (const r of this.seen.values()) {
      if (r.done || now.some((n) => n.stage === r.stage)) continue;
      r.done = true;
      // Finished: its checkpoints are gone with success, its run's own curve is the whole one.
      const h = await readHistory(this.engine.store, r.key).catch(() => undefined);
      if (h?.evals?.length) r.evals = h.evals;
    }
    for (const r of now) {
      // A checkpoint directory emptied by the run's success (the lock not yet released) reads as no points.
      const evals = await pointsSoFar(r.checkpointDir);
      const before = this.seen.get(r.stage);
      const kept = before?.key === r.key && before.evals.length > evals.length ? before.evals : evals;
      this.seen.set(r.stage, { stage: r.stage, key: r.key, evals: kept, done: false });
    }
    // The previous run: the one the lock file records when the stage is first seen running.
    const lock = await this.engine.readLock();
    for (const [stage, r] of this.seen) {
      if (this.previous.has(stage)) continue;
      const key = lock.stages[stage]?.key;
      const h = key && key !== r.key ? await readHistory(this.engine.store, key).catch(() => undefined) : undefined;
      this.previous.set(
        stage,
        h?.evals?.length ? { label: `previous run (${key!.slice(0, 8)})`, key: key!, evals: h.evals } : null,
      );
    }
    await this.write(final);
  }

  private async write(final: boolean) {
    const { overlaySpec } = await import("./plots.ts");
    const { toSvg } = await import("../../reports/build/render.ts");
    const h = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
    const sections: string[] = [];
    for (const r of this.seen.values()) {
      const before = this.previous.get(r.stage);
      const label = `${r.done ? "this run (finished)" : "now"} (${r.key.slice(0, 8)})`;
      const curves: Curves[] = [
        ...(before ? [before] : []),
        ...(r.evals.length ? [{ label, key: r.key, evals: r.evals }] : []),
      ];
      const last = r.evals.at(-1);
      const status = last
        ? `${r.evals.length} evaluations, the last at step ${last.step}: test accuracy ${
          (100 * last.testAcc).toFixed(1)
        }%`
        : "no evaluation yet";
      const svg = curves.length ? (await toSvg(overlaySpec(r.stage, curves))).replace(/^<\?xml[^>]*>\s*/, "") : "";
      sections.push(
        `<section data-stage="${h(r.stage)}" data-points="${r.evals.length}" data-done="${r.done}">` +
          `<h2>${h(r.stage)} <small>${r.done ? "finished" : "running"} · ${h(status)}</small></h2>\n${svg}</section>`,
      );
    }
    const running = [...this.seen.values()].filter((r) => !r.done).length;
    const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
${final ? "" : `<meta http-equiv="refresh" content="${REFRESH_S}">`}
<title>live: ${running} running</title>
<style>
body { font-family: "DejaVu Sans", system-ui, sans-serif; margin: 2em auto; max-width: 1000px; color: #222; }
small { color: #666; font-weight: normal; font-size: 60%; } svg { max-width: 100%; height: auto; }
</style></head><body>
<h1>reproduce: ${final ? "finished" : `${running} stage${running === 1 ? "" : "s"} running`}</h1>
<p>Updated ${new Date().toISOString().slice(0, 19).replace("T", " ")} UTC${
      final ? "" : `; this page reloads itself every ${REFRESH_S} s`
    }. Each stage's curves so far (from its last checkpoint) beside its previous run.</p>
${sections.join("\n") || "<p>No training stage has run yet.</p>"}
</body></html>
`;
    await Deno.mkdir(join(this.file, ".."), { recursive: true });
    await writeFileAtomic(this.file, html);
  }
}

/** Milliseconds between rewrites of the page: $PIPELINE_LIVE_MS (tests), else a second under the reload. */
function liveInterval(): number {
  const ms = Number(Deno.env.get("PIPELINE_LIVE_MS"));
  return Number.isFinite(ms) && ms > 0 ? ms : (REFRESH_S - 1) * 1000;
}
