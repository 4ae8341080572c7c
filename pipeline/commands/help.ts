// --help, generated from the command table: every command and option, or one command's.
import type { Command, Option } from "./command.ts";
import { GLOBAL_OPTIONS, REMOTE_OPTIONS } from "./options.ts";

const WIDTH = 28;

/** "name  first line" with the other lines of the help indented under the first (all of them after a long name). */
function entry(name: string, help: string): string[] {
  const lines = help.split("\n").map((l) => `  ${"".padEnd(WIDTH)}${l}`);
  if (name.length >= WIDTH) return [`  ${name}`, ...lines];
  return [`  ${name.padEnd(WIDTH)}${lines[0].trimStart()}`, ...lines.slice(1)];
}

function flag(name: string, o: Option): string {
  return `${o.short ? `-${o.short}, ` : ""}--${name}${o.arg ? ` ${o.arg}` : ""}`;
}

/** Every command's options and the global ones: name → the option and the commands that take it (none: all). */
export function optionTable(commands: Command[]): Map<string, { option: Option; commands?: string[] }> {
  const table = new Map<string, { option: Option; commands?: string[] }>();
  for (const cmd of commands) {
    for (const [name, option] of Object.entries(cmd.options)) {
      const known = table.get(name);
      // Two commands meaning different things by one option name would make one --help line wrong.
      if (known && known.option !== option) throw new Error(`--${name}: two definitions (${cmd.name}'s and another)`);
      table.set(name, { option, commands: [...known?.commands ?? [], cmd.name] });
    }
  }
  for (const [name, option] of Object.entries({ ...REMOTE_OPTIONS, ...GLOBAL_OPTIONS })) table.set(name, { option });
  return table;
}

const FOOTER = [
  "parameters: defaults ← variant ← pipeline/params.json ← pipeline/params.local.json ← --profile ← --set",
  "  (later wins; `params` shows each source); params.local.json is this machine's (git-ignored) and takes only",
  "  transport-only parameters (where to fetch from, e.g. download.url), which are not in any cache key",
  "--force: a stage you name is rerun; its upstream is restored or run only as usual",
  "`--` ends the options: what follows is a stage name even if it starts with -",
  "exit status: 0 done; 1 something failed (a stage, a bad parameter value or stage name, a missing run);",
  "  2 the command line is wrong (unknown command or option, an option's value malformed, e.g. --set x);",
  "  3 diff --fail-on: a metric moved past its limit (a regression)",
  "colour only on a terminal, never with NO_COLOR set or TERM=dumb",
];

export function usage(commands: Command[]): string {
  const lines = [
    "usage: deno task <command> [arguments] [options]   (or: deno run -A pipeline/cli.ts <command> …)",
    "commands:",
    ...commands.flatMap((cmd) => entry(`${cmd.name} ${cmd.synopsis}`, cmd.help)),
    "options:",
  ];
  for (const [name, { option, commands: takers }] of optionTable(commands)) {
    lines.push(...entry(flag(name, option), `${option.help}${takers ? ` [${takers.join(", ")}]` : ""}`));
  }
  lines.push("`deno task <command> --help`: one command's", ...FOOTER);
  return lines.join("\n");
}

/** `reproduce --help`: the command, its options, then the ones every command takes. */
export function commandUsage(cmd: Command): string {
  return [
    `usage: deno task ${cmd.name}${cmd.synopsis ? ` ${cmd.synopsis}` : ""} [options]`,
    ...cmd.help.split("\n").map((l) => `  ${l}`),
    "options:",
    ...Object.entries(cmd.options).flatMap(([name, o]) => entry(flag(name, o), o.help)),
    "options of every command:",
    ...Object.entries({ ...REMOTE_OPTIONS, ...GLOBAL_OPTIONS }).flatMap(([name, o]) => entry(flag(name, o), o.help)),
  ].join("\n");
}
