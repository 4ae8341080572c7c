// --help comes from the command table: each command's file declares its options.
import assert from "node:assert/strict";
import { COMMANDS } from "../../../pipeline/cli.ts";
import { commandUsage, optionTable, usage } from "../../../pipeline/commands/help.ts";
import { JSON_OPTION } from "../../../pipeline/commands/options.ts";

Deno.test("--help lists every command and option once; `<command> --help` that command's options", () => {
  const all = usage(COMMANDS);
  for (const c of COMMANDS) assert.match(all, new RegExp(`^ {2}${c.name} `, "m"), c.name);
  assert.equal(all.match(/^ {2}--json /gm)?.length, 1);
  assert.match(
    all,
    /^ {2}--json +machine-readable output on stdout \[reproduce, status, accept, dag, params, exp, diff, gc\]$/m,
  );
  const gc = commandUsage(COMMANDS.find((c) => c.name === "gc")!);
  assert.match(gc, /^usage: deno task gc \[options\]$/m);
  assert.match(gc, /^ {2}--keep-last N +also keep the newest N runs/m);
  assert.doesNotMatch(gc, /--force|--executor/, "reproduce's options are not gc's");
  assert.match(gc, /^ {2}--remote URL /m, "the options of every command follow");
});

Deno.test("two commands defining one option name differently is refused, not a wrong --help", () => {
  const run = () => Promise.resolve(0);
  const a = { name: "a", synopsis: "", help: "a", options: JSON_OPTION, run };
  const b = { name: "b", synopsis: "", help: "b", options: { json: { type: "boolean" as const, help: "other" } }, run };
  assert.deepEqual(optionTable([a, { ...a, name: "c" }]).get("json")?.commands, ["a", "c"]);
  assert.throws(() => optionTable([a, b]), /--json: two definitions/);
});
