// Child process of tests/models/onednn_test.ts: train-cnn with compute=onednn where the library
// cannot load (COMPUTE_ONEDNN names a missing file): prints the error's message and fix.
import { makeSyntheticSplits, writeSplits } from "../../data/dataset.ts";
import { run } from "../../models/cnn/stage.ts";
import { PipelineError } from "../../pipeline/types.ts";
import { makeTestContext } from "./stage_context.ts";

const dir = await Deno.makeTempDir({ prefix: "cnn-no-onednn-" });
await writeSplits(dir, makeSyntheticSplits(16, 8));
const params = { lr: 1e-3, batch: 8, steps: 2, eval_every: 1, width: 0.125, seed: 42, compute: "onednn" as const };
const ctx = await makeTestContext({ stage: "train-cnn", params, inputs: { preprocess: dir }, quiet: true });
try {
  await run(ctx);
  console.log(JSON.stringify({ ran: true }));
} catch (e) {
  const pe = e instanceof PipelineError ? e : undefined;
  console.log(JSON.stringify({ message: String((e as Error).message), fix: pe?.fix }));
} finally {
  await ctx.cleanup();
  await Deno.remove(dir, { recursive: true });
}
