// Stage "preprocess": the study's preprocessing. CIFAR records (CHW planes)
// become float32 NHWC images with values 0–255, minus the per-pixel mean image
// of the training set (the same mean is subtracted from the test set).
// Peak memory is the two float32 sets (~737 MB for the real data) plus one
// batch file; nothing is copied on the way to disk.
import { join } from "node:path";
import type { PreprocessParams } from "../pipeline/stages.ts";
import { PipelineError, type StageContext } from "../pipeline/types.ts";
import { decodeRecords, DIR, IMAGE, meanImage, RECORD, subtractMean, TEST_FILE, TRAIN_FILES } from "./cifar.ts";
import { type Split, writeDataset } from "./dataset.ts";

/** Peak resident set size in bytes: the kernel's high-water mark where there is one, else our samples. */
function peakRss(sampled: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(Deno.readTextFileSync("/proc/self/status"));
    if (m) return Math.max(sampled, Number(m[1]) * 1024);
  } catch { /* not Linux */ }
  return sampled;
}

async function readSplit(dir: string, files: string[], tick: () => void): Promise<Split> {
  const sizes = await Promise.all(files.map(async (f) => {
    try {
      return (await Deno.stat(join(dir, f))).size;
    } catch {
      throw new PipelineError(`${join(dir, f)} is missing`, "rerun the download stage");
    }
  }));
  const n = sizes.reduce((a, s) => a + Math.floor(s / RECORD), 0);
  const x = new Float32Array(n * IMAGE);
  const y = new Uint8Array(n);
  let at = 0;
  for (const f of files) {
    at += decodeRecords(await Deno.readFile(join(dir, f)), x, y, at, f);
    tick();
  }
  return { x, y, n };
}

export async function run(ctx: StageContext<PreprocessParams>): Promise<Record<string, number | string>> {
  const t0 = performance.now();
  let rss = 0;
  const sample = () => rss = Math.max(rss, Deno.memoryUsage().rss);
  const timer = setInterval(sample, 100);
  try {
    const src = ctx.inputs["download"];
    if (!src) throw new PipelineError("preprocess needs the download stage's output", 'declare deps: ["download"]');
    const dir = join(src, DIR);
    // Steps: each batch file, the mean, the writing.
    const total = TRAIN_FILES.length + 3;
    let step = 0;
    const tick = () => {
      sample();
      ctx.progress({ step: ++step, total });
    };

    const train = await readSplit(dir, TRAIN_FILES, tick);
    const test = await readSplit(dir, [TEST_FILE], tick);
    const mean = meanImage(train.x, train.n);
    subtractMean(train.x, mean);
    subtractMean(test.x, mean);
    tick();
    const summary = await writeDataset(ctx.outDir, { train, test, mean });
    tick();

    const means = (summary.channel_means_before_centring as { train: number[] }).train;
    const peak = peakRss(rss);
    const seconds = (performance.now() - t0) / 1000;
    ctx.log(
      `${train.n} training and ${test.n} test images; RGB means ${means.map((m) => m.toFixed(1)).join(", ")}; ` +
        `${seconds.toFixed(1)} s, peak RSS ${(peak / 2 ** 20).toFixed(0)} MiB`,
    );
    return {
      n_train: train.n,
      n_test: test.n,
      mean_r: means[0],
      mean_g: means[1],
      mean_b: means[2],
      seconds: +seconds.toFixed(2),
      peak_rss_mib: Math.round(peak / 2 ** 20),
    };
  } finally {
    clearInterval(timer);
  }
}
