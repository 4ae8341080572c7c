// The command line: the table of commands (one file each in commands/) and the
// dispatcher. A new command is a file exporting a Command (commands/command.ts)
// and a line in COMMANDS; its options, and --help, come from that file.
// Parsing is Node's parseArgs; exit codes: 0 done, 1 failed, 2 bad command line.
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { accept } from "./commands/accept.ts";
import { type Command, type Ctx, say, UsageError, type Values } from "./commands/command.ts";
import { dag } from "./commands/dag.ts";
import { diff } from "./commands/diff.ts";
import { exp } from "./commands/exp.ts";
import { gc } from "./commands/gc.ts";
import { commandUsage, optionTable, usage } from "./commands/help.ts";
import { type Opened, openEngine } from "./commands/open.ts";
import { params } from "./commands/params.ts";
import { pull } from "./commands/pull.ts";
import { push } from "./commands/push.ts";
import { reproduce } from "./commands/reproduce.ts";
import { status } from "./commands/status.ts";
import { knownFault } from "./engine/faults.ts";
import { interruptedStatus } from "./executors/executor.ts";
import { colorWanted, maskConsole } from "./terminal/style.ts";

/** Every command, in the order --help lists them. */
export const COMMANDS: Command[] = [reproduce, status, accept, push, pull, dag, params, exp, diff, gc];

/** `--keep-last -1`: a negative number after an option that takes a value is that value, not an option. */
function joinNegativeValues(argv: string[], options: ReturnType<typeof optionTable>): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const name = /^--([a-z-]+)$/.exec(argv[i])?.[1];
    if (argv[i] === "--") return [...out, ...argv.slice(i)];
    if (name && options.get(name)?.option.type === "string" && /^-\d/.test(argv[i + 1] ?? "")) {
      out.push(`${argv[i]}=${argv[++i]}`);
    } else out.push(argv[i]);
  }
  return out;
}

async function main(argv: string[]): Promise<number> {
  const options = optionTable(COMMANDS);
  argv = joinNegativeValues(argv, options);
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      // parseArgs rejects an undefined `short`: copy only what is set.
      options: Object.fromEntries(
        [...options].map(([k, { option: { type, short, multiple } }]) => [
          k,
          { type, ...(short && { short }), multiple: !!multiple },
        ]),
      ),
    });
  } catch (e) {
    // parseArgs says e.g. "Unknown option '--frob'. To specify a positional argument starting with a '-', …"
    throw new UsageError(
      (e as Error).message.split("\n")[0].split(". ")[0].replace(/'/g, "").replace(/\.$/, ""),
      "see --help",
    );
  }
  const values = parsed.values as Values;
  const [command, ...args] = parsed.positionals;
  const root = resolve((values.root as string | undefined) ?? new URL("..", import.meta.url).pathname);
  const cmd = COMMANDS.find((c) => c.name === command);
  if (values.help) return say(cmd ? commandUsage(cmd) : usage(COMMANDS));
  if (values.version) return say(await versions(resolve(new URL("..", import.meta.url).pathname)));
  if (!command) {
    console.error(usage(COMMANDS));
    return 2;
  }
  if (!cmd) {
    throw new UsageError(`unknown command ${command}`, `use one of: ${COMMANDS.map((c) => c.name).join(", ")}`);
  }
  for (const [name, v] of Object.entries(values)) {
    const takers = options.get(name)!.commands;
    if (v !== undefined && takers && !takers.includes(command)) {
      throw new UsageError(`${command} does not take --${name}`, `it is for: ${takers.join(", ")}`);
    }
  }
  const profile = values.profile as string | undefined;
  let opened: Promise<Opened> | undefined;
  const open = () => (opened ??= openEngine(root, values, ctx.lockFile));
  const ctx: Ctx = {
    values,
    args,
    root,
    lockFile: join(root, "pipeline", profile ? `lock.${profile}.json` : "lock.json"),
    color: colorWanted(Deno.stdout),
    engine: async () => (await open()).engine,
    profiles: async () => (await open()).profiles,
  };
  return await cmd.run(ctx);
}

/** This project's versions (the CLI's own, whatever --root says). */
async function versions(root: string): Promise<string> {
  const config = JSON.parse(await Deno.readTextFile(join(root, "deno.json")).catch(() => "{}"));
  const tfjs = String(config.imports?.["@tensorflow/tfjs-core"] ?? "").split("@").at(-1) || "?";
  const git = await new Deno.Command("git", {
    args: ["describe", "--always", "--dirty"],
    cwd: root,
    stdout: "piped",
    stderr: "null",
  })
    .output().then((o) => new TextDecoder().decode(o.stdout).trim(), () => "");
  return [
    `cifar10-pipeline ${config.version ?? "?"}${git ? ` (git ${git})` : ""}`,
    `deno ${Deno.version.deno} (v8 ${Deno.version.v8}, typescript ${Deno.version.typescript})`,
    `tfjs ${tfjs}`,
  ].join("\n");
}

/** The CLI as a program: runs `argv` and exits. Exported for a wrapper that registers an executor first. */
export async function cli(argv: string[]): Promise<never> {
  maskConsole(); // credentials in URLs (download.url=https://user:password@…) are masked in every message
  try {
    const code = await main(argv);
    Deno.exit(interruptedStatus() ?? code);
  } catch (e) {
    const known = knownFault(e); // a full disk or a read-only file system: one line, not a stack trace
    if (known) {
      console.error(`error: ${known.message} — ${known.fix}`);
      Deno.exit(interruptedStatus() ?? (known instanceof UsageError ? 2 : 1));
    }
    throw e;
  }
}

if (import.meta.main) await cli(Deno.args);
