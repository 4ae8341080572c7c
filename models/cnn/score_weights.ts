// Score a trained VGG from its artefacts alone: `deno run -A models/cnn/score_weights.ts
// [out/train-cnn] [out/preprocess]` loads weights.safetensors into a fresh model and prints
// its test accuracy (the run's own, bit for bit) — e.g. after `deno task pull train-cnn`.
import { basename, join } from "node:path";
import { loadSplits } from "../../data/dataset.ts";
import { readWeights, WEIGHTS } from "../artifacts.ts";
import { getGemm } from "../compute/gemm.ts";
import { loadOnednn } from "../compute/onednn.ts";
import { OnednnVgg } from "./onednn_vgg.ts";
import { Vgg } from "./vgg.ts";

/** Test loss and accuracy of a run's weights file, on the compute path it trained on (so its own bits). */
export async function scoreWeights(runDir: string, dataDir: string): Promise<{ loss: number; acc: number }> {
  const weights = await readWeights(join(runDir, WEIGHTS));
  const { params } = JSON.parse(await Deno.readTextFile(join(runDir, "history.json")));
  const cfg = { width: params.width, size: 32, classes: 10 };
  const model = new Vgg(cfg, await getGemm(), 0);
  for (const [name, t] of Object.entries(model.named())) {
    if (!weights[name] || weights[name].data.length !== t.data.length) throw new Error(`${name}: not in the file`);
    t.data.set(weights[name].data);
  }
  const { test } = await loadSplits(dataDir);
  if (params.compute !== "onednn") return model.evaluate(test.x, test.y, test.n);
  const { dnnl, reason } = loadOnednn();
  if (!dnnl) throw new Error(`the run trained on oneDNN: ${reason}`);
  const onednn = new OnednnVgg(cfg, dnnl, 0);
  onednn.setVggLayout(model.params);
  onednn.stats.set(model.stats);
  return onednn.evaluate(test.x, test.y, test.n);
}

/** The files scoreWeights reads that are not there (a thin run, or a stage never run), each with the command that brings it. */
export function missingInputs(run: string, data: string): string[] {
  const need = [[run, WEIGHTS], [run, "history.json"], [data, "test_x.npy"], [data, "test_y.npy"]];
  return need.filter(([dir, f]) => !existsSync(join(dir, f))).map(([dir, f]) => {
    const stage = basename(dir); // out/<stage>
    return `${join(dir, f)} is missing (a thin run restored without its files over 8 MiB, or not run) — ` +
      `bring it with \`deno task reproduce ${stage} --whole\` (or \`deno task pull ${stage} --remote s3://…\`)`;
  });
}

function existsSync(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

if (import.meta.main) {
  const [run = "out/train-cnn", data = "out/preprocess"] = Deno.args;
  const missing = missingInputs(run, data);
  if (missing.length) {
    console.error(`error: ${missing[0]}`);
    Deno.exit(1);
  }
  const { acc, loss } = await scoreWeights(run, data);
  console.log(`test accuracy ${acc} (loss ${loss.toFixed(4)}) from ${join(run, WEIGHTS)}`);
}
