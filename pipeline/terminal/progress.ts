// Progress of long work: a live line on a terminal, a plain line every few
// seconds otherwise (CI logs), with step, loss, samples/s and time left.
import { maskCredentials } from "./style.ts";
import type { Progress } from "../types.ts";

const PLAIN_EVERY_MS = 10_000;

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

export class ProgressLine {
  private start = performance.now();
  private firstStep?: { step: number; t: number };
  private lastPlain = 0;
  private live: boolean;

  constructor(private readonly label: string, live = Deno.stderr.isTerminal()) {
    // A dumb terminal cannot redraw a line (\r, erase): plain lines there.
    this.live = live && !Deno.env.get("PIPELINE_PLAIN") && !Deno.env.get("CI") && Deno.env.get("TERM") !== "dumb";
  }

  update(p: Progress) {
    const now = performance.now();
    // Rates are measured from the first report, so start-up does not skew them.
    this.firstStep ??= { step: p.step, t: now };
    const steps = p.step - this.firstStep.step;
    const secs = (now - this.firstStep.t) / 1000;
    const stepsPerSec = steps > 0 && secs > 0 ? steps / secs : NaN;
    const fields = [`step ${p.step}/${p.total}`];
    if (p.loss !== undefined) fields.push(`loss ${p.loss.toFixed(4)}`);
    for (const [k, v] of Object.entries(p.extra ?? {})) {
      fields.push(`${k} ${typeof v === "number" ? +v.toFixed(4) : v}`);
    }
    // A stage that reports its own rate and time left (download: in MiB) gets no second pair.
    const own = p.extra !== undefined && "left" in p.extra;
    if (Number.isFinite(stepsPerSec) && !own) {
      fields.push(
        p.itemsPerStep ? `${(stepsPerSec * p.itemsPerStep).toFixed(0)} samples/s` : `${stepsPerSec.toFixed(2)} steps/s`,
      );
      fields.push(`${formatDuration((p.total - p.step) / stepsPerSec)} left`);
    }
    const line = `[${this.label}] ${fields.join(" · ")}`;
    const done = p.step >= p.total;
    if (this.live) {
      Deno.stderr.writeSync(new TextEncoder().encode(`\r\x1b[K${maskCredentials(line)}${done ? "\n" : ""}`));
    } else if (done || now - this.lastPlain >= PLAIN_EVERY_MS || this.lastPlain === 0) {
      console.error(line);
      this.lastPlain = now;
    }
  }

  /** A plain line that does not fight with a live progress line. */
  log(message: string) {
    const text = `[${this.label}] ${message}`;
    if (this.live) Deno.stderr.writeSync(new TextEncoder().encode(`\r\x1b[K${maskCredentials(text)}\n`));
    else console.error(text);
  }

  elapsed(): number {
    return (performance.now() - this.start) / 1000;
  }
}
