// Terminal styling, only where it helps and is wanted: colour on a terminal,
// never with NO_COLOR set (https://no-color.org) or TERM=dumb, never in pipes.
import type { StageResult } from "../engine/plan.ts";

export function colorWanted(stream: { isTerminal(): boolean }): boolean {
  return !Deno.env.get("NO_COLOR") && Deno.env.get("TERM") !== "dumb" && stream.isTerminal();
}

const CODES = { green: 32, yellow: 33, red: 31, cyan: 36, dim: 2 } as const;

export function paint(on: boolean, color: keyof typeof CODES, text: string): string {
  return on ? `\x1b[${CODES[color]}m${text}\x1b[0m` : text;
}

const MARKS: Record<StageResult["outcome"], [string, keyof typeof CODES]> = {
  "up to date": ["✓", "green"],
  "restore from cache": ["↓", "cyan"],
  "restore from remote": ["↓", "cyan"],
  "run": ["▶", "yellow"],
  "rebuild": ["↻", "yellow"],
  "failed": ["✗", "red"],
  "skipped": ["✗", "dim"],
};

/** "▶ stage: run (why)": the one line status, --dry-run and the reproduce summary share. */
export function resultLine(r: StageResult, color = false): string {
  const [mark, c] = MARKS[r.outcome];
  const why = r.reasons.length ? ` (${r.reasons.join("; ")})` : "";
  return `${paint(color, c, mark)} ${r.stage}: ${paint(color, c, r.outcome)}${why}`;
}

/** Columns padded to their widest cell; the header line is dimmed on a terminal. */
export function table(header: string[], rows: string[][], color = false): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  return [paint(color, "dim", line(header)), ...rows.map(line)].join("\n");
}

/** "https://user:secret@host/x" → "https://user:***@host/x" (a bare token before @ too): no password on a console. */
export function maskCredentials(text: string): string {
  return text.replace(
    /\b([a-z][a-z0-9+.-]*:\/\/)([^\s/@:]*)(:[^\s/@]*)?@/gi,
    // A bare `user@` may be a token (https://TOKEN@host), except for ssh, where it is a login name.
    (_, scheme: string, user: string, pass?: string) =>
      `${scheme}${pass ? `${user}:***` : /^(ssh|sftp):/i.test(scheme) ? user : "***"}@`,
  );
}

/** Every console line of this process with credentials in URLs masked (the CLI and each stage worker). */
export function maskConsole() {
  for (const name of ["log", "error", "warn", "info"] as const) {
    const print = console[name].bind(console);
    console[name] = (...args: unknown[]) => print(...args.map((a) => typeof a === "string" ? maskCredentials(a) : a));
  }
}
