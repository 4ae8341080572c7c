// Typed stage parameters: a stage module's ctx.params are typed from its declaration in
// pipeline/stages.ts, so a misspelt parameter fails the type check, not a run.
import assert from "node:assert/strict";

const ROOT = new URL("../..", import.meta.url).pathname;
const FIXTURE = "tests/support/fixtures/type_errors/misspelt_param.ts";

Deno.test("a stage module that reads a parameter its stage does not declare fails deno check", async () => {
  // --no-config: deno.json excludes the fixture from `deno task check`; it imports only relative paths.
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["check", "--no-config", FIXTURE],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 1, text);
  assert.match(text, /TS2339 \[ERROR\]: Property 'lrr' does not exist on type 'TrainCnnParams'/);
  // The only error: the rightly spelt parameter is a number without a cast.
  assert.deepEqual(text.match(/TS\d+ \[ERROR\]/g), ["TS2339 [ERROR]"], text);
});
