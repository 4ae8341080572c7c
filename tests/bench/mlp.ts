// Throughput of the three MLP stages' training steps and evaluations:
// train-numpy-mlp (3072-100-10, batch 200) with each GEMM it can use,
// train-torch-mlp default (3072-100-10, batch 200, Adam) and the GA1 size
// (1000,500,250,100, batch 1609) with its dropout / batch-norm variants, on
// the wasm backend alone and with OpenBLAS. Random data: speed only.
import type { Split } from "../../data/dataset.ts";
import { Rng } from "../../data/rng.ts";
import { initCompute } from "../../models/compute/backend.ts";
import { getGemm } from "../../models/compute/gemm.ts";
import { MLP } from "../../models/numpy_mlp/modules.ts";
import { type Float32Gemm, setFloat32Gemm } from "../../models/numpy_mlp/tensor.ts";
import { evaluate as evaluateNumpy, sgdStep } from "../../models/numpy_mlp/train.ts";
import { Adam } from "../../models/torch_mlp/adam.ts";
import { dropoutMasks, type MlpSpec, TorchMlp } from "../../models/torch_mlp/model.ts";
import { evaluate as evaluateTorch, makeTrainStep } from "../../models/torch_mlp/train.ts";

const EVAL_IMAGES = 2000; // of the 10,000-image test set: throughput is per image

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Median seconds of fn over `reps` runs after one warm-up run. */
function time(fn: () => void, reps: number): number {
  fn();
  const ts: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t = performance.now();
    fn();
    ts.push((performance.now() - t) / 1000);
  }
  return median(ts);
}

function randomSplit(n: number, rng: Rng): Split {
  const x = new Float32Array(n * 3072);
  for (let i = 0; i < x.length; i++) x[i] = 60 * rng.normal();
  return { x, y: Uint8Array.from({ length: n }, () => rng.below(10)), n };
}

function line(name: string, stepS: number, evalS: number, extra = ""): void {
  console.log(
    `${name.padEnd(58)} ${(1 / stepS).toFixed(2).padStart(8)} steps/s ${
      (EVAL_IMAGES / evalS).toFixed(0).padStart(7)
    } test images/s${extra}`,
  );
}

export async function bench(): Promise<void> {
  const rng = new Rng(0);
  const test = randomSplit(EVAL_IMAGES, rng);
  const batches = new Map<number, Split>();
  const batchOf = (b: number) => batches.get(b) ?? batches.set(b, randomSplit(b, rng)).get(b)!;

  // train-numpy-mlp: the same hand-written modules with each float32 GEMM.
  const gemms = new Map<string, Float32Gemm | null>([["TypeScript GEMM (4×4 tiles, 1 thread)", null]]);
  for (const native of [false, true]) {
    const g = await getGemm({ native });
    gemms.set(g.name, g.gemm);
  }
  let tsStep = 0;
  for (const [name, gemm] of gemms) {
    setFloat32Gemm(gemm);
    const mlp = new MLP<Float32Array>(3072, [100], 10, new Rng(1), new Float32Array(0));
    const b = batchOf(200);
    const stepS = time(() => sgdStep(mlp, b.x, b.y, 2e-3), 10);
    const evalS = time(() => evaluateNumpy(mlp, test), 2);
    if (!tsStep) tsStep = stepS;
    line(`numpy MLP 3072-100-10 b200, ${name}`, stepS, evalS, ` (${(tsStep / stepS).toFixed(1)}× TS)`);
  }
  setFloat32Gemm(null);

  // train-torch-mlp / train-batchnorm steps.
  const cases: [string, number[], number, Partial<MlpSpec>, number][] = [
    ["torch MLP default 3072-100-10 b200", [100], 200, {}, 10],
    ["GA1 b1609", [1000, 500, 250, 100], 1609, {}, 3],
    ["GA1 + dropout b1609", [1000, 500, 250, 100], 1609, { dropout: true }, 3],
    ["GA1 + dropout + BN (autograd) b1609", [1000, 500, 250, 100], 1609, { dropout: true, batchnorm: "autograd" }, 3],
    ["GA1 + dropout + BN (manual) b1609", [1000, 500, 250, 100], 1609, { dropout: true, batchnorm: "manual" }, 3],
  ];
  for (const native of [false, true]) {
    const backend = await initCompute({ native });
    console.log(`-- ${backend}`);
    for (const [name, hidden, batch, opts, reps] of cases) {
      const spec: MlpSpec = { inputs: 3072, hidden, classes: 10, dropout: false, batchnorm: "none", ...opts };
      const model = new TorchMlp(spec, new Rng(1));
      const adam = new Adam(model.trainable(), 1e-4);
      const step = makeTrainStep(model, adam);
      const b = batchOf(batch);
      const buffers = model.hiddenSizes.map((f) => new Float32Array(batch * f));
      let i = 0;
      const stepS = time(() => {
        const masks = spec.dropout ? dropoutMasks(1, i++, batch, model.hiddenSizes, buffers) : [];
        step(b.x, b.y, masks);
      }, reps);
      const evalS = time(() => evaluateTorch(model, test), 1);
      line(name, stepS, evalS);
      model.dispose();
      adam.dispose();
    }
  }
}

if (import.meta.main) {
  await bench();
  Deno.exit(0);
}
