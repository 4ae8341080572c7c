// The data module of the trainers: load the preprocessed splits, make the
// study's mini-batches, and (for tests) make or write synthetic splits.
//
// Mini-batch order, as the study's cifar10_utils.DataSet.next_batch: the first
// epoch walks the training set in file order; when the next batch would run
// past the end, the whole set is reshuffled and the batch starts at index 0 of
// the new order (the remainder of the old epoch is dropped, never served). The
// shuffle is Fisher–Yates driven by xoshiro128** seeded with SplitMix32
// (data/rng.ts), seed 42 by default, so the order is identical on every run.
import { join } from "node:path";
import { PipelineError } from "../pipeline/types.ts";
import { CLASSES, decodeRecords, IMAGE, meanImage, PIXELS, subtractMean, syntheticRecords } from "./cifar.ts";
import { readNpy, writeNpy } from "./npy.ts";
import { Rng } from "./rng.ts";

/** n images, x is n×3072 (32×32×3 NHWC per image, row-major), y the labels 0–9. */
export interface Split {
  x: Float32Array;
  y: Uint8Array;
  n: number;
}

/** Load train/test as the preprocess stage wrote them (train_x.npy, train_y.npy, test_x.npy, test_y.npy). */
export async function loadSplits(dir: string): Promise<{ train: Split; test: Split }> {
  const load = async (name: string): Promise<Split> => {
    const x = await readNpy(join(dir, `${name}_x.npy`));
    const y = await readNpy(join(dir, `${name}_y.npy`));
    const n = x.shape[0];
    const ok = x.data instanceof Float32Array && y.data instanceof Uint8Array &&
      x.shape.join() === [n, 32, 32, 3].join() && y.shape.join() === String(n);
    if (!ok) {
      throw new PipelineError(
        `${dir}/${name}_x.npy, ${name}_y.npy: expected float32 (N,32,32,3) and uint8 (N,), found shapes ` +
          `(${x.shape}) and (${y.shape})`,
        "rerun the preprocess stage",
      );
    }
    return { x: x.data as Float32Array, y: y.data as Uint8Array, n };
  };
  return { train: await load("train"), test: await load("test") };
}

/** The study's mini-batch order (see the top of this file). */
export class BatchSampler {
  /** Current order of the whole set; shuffled in place at each epoch end. */
  readonly order: Int32Array;
  /** Completed reshuffles (0 during the first, unshuffled pass). */
  epoch = 0;
  private pos = 0;
  private rng: Rng;

  constructor(readonly n: number, readonly batchSize: number, seed = 42) {
    if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > n) {
      throw new PipelineError(
        `batch size ${batchSize} does not fit a set of ${n} images`,
        `use a batch size between 1 and ${n}`,
      );
    }
    this.order = Int32Array.from({ length: n }, (_, i) => i);
    this.rng = new Rng(seed);
  }

  /** Indices of the next mini-batch (a fresh array). */
  next(): Int32Array {
    if (this.pos + this.batchSize > this.n) {
      this.rng.shuffle(this.order);
      this.pos = 0;
      this.epoch++;
    }
    const idx = this.order.slice(this.pos, this.pos + this.batchSize);
    this.pos += this.batchSize;
    return idx;
  }
}

/** Copy the images and labels at `idx` into fresh arrays. */
export function gather(split: Split, idx: Int32Array): { x: Float32Array; y: Uint8Array } {
  const x = new Float32Array(idx.length * IMAGE);
  const y = new Uint8Array(idx.length);
  for (let k = 0; k < idx.length; k++) {
    const i = idx[k];
    if (!(i >= 0 && i < split.n)) throw new RangeError(`gather: index ${i} outside 0..${split.n - 1}`);
    x.set(split.x.subarray(i * IMAGE, (i + 1) * IMAGE), k * IMAGE);
    y[k] = split.y[i];
  }
  return { x, y };
}

/** The whole set in order, `size` images at a time (views, no copies; the last chunk may be smaller). */
export function* chunks(split: Split, size: number): Generator<{ x: Float32Array; y: Uint8Array }> {
  if (!(size >= 1)) throw new RangeError(`chunks: size ${size}`);
  for (let s = 0; s < split.n; s += size) {
    const e = Math.min(s + size, split.n);
    yield { x: split.x.subarray(s * IMAGE, e * IMAGE), y: split.y.subarray(s, e) };
  }
}

/**
 * Small learnable fake splits for tests, preprocessed exactly like the real
 * data (CIFAR records from the synthetic generator, float32, minus the
 * training mean image).
 */
export function makeSyntheticSplits(nTrain: number, nTest: number, seed = 42): { train: Split; test: Split } {
  const decode = (n: number, s: number): Split => {
    const x = new Float32Array(n * IMAGE);
    const y = new Uint8Array(n);
    if (n > 0) decodeRecords(syntheticRecords(n, s), x, y, 0, "synthetic");
    return { x, y, n };
  };
  const train = decode(nTrain, seed);
  const test = decode(nTest, seed + 1);
  const mean = meanImage(train.x, train.n);
  subtractMean(train.x, mean);
  subtractMean(test.x, mean);
  return { train, test };
}

/** Write splits as the preprocess stage would (mean.npy all zeros: the splits are taken as already centred). */
export async function writeSplits(dir: string, s: { train: Split; test: Split }): Promise<void> {
  await writeDataset(dir, { ...s, mean: new Float32Array(IMAGE) });
}

/** Per-channel (R, G, B) means of n NHWC images plus the channel means of `offset` (an image). */
export function channelMeans(x: Float32Array, n: number, offset?: Float32Array): number[] {
  const sums = [0, 0, 0];
  for (let i = 0; i < n * PIXELS; i++) {
    for (let c = 0; c < 3; c++) sums[c] += x[3 * i + c];
  }
  return sums.map((s, c) => {
    let m = n ? s / (n * PIXELS) : 0;
    if (offset) { for (let p = 0; p < PIXELS; p++) m += offset[3 * p + c] / PIXELS; }
    return m;
  });
}

/** The preprocess stage's outputs: the five .npy files and summary.json. */
export async function writeDataset(
  dir: string,
  d: { train: Split; test: Split; mean: Float32Array; extra?: Record<string, unknown> },
): Promise<Record<string, unknown>> {
  const counts = (s: Split) => {
    const c = new Array(10).fill(0);
    for (const v of s.y) c[v]++;
    return c;
  };
  await writeNpy(join(dir, "train_x.npy"), d.train.x, [d.train.n, 32, 32, 3]);
  await writeNpy(join(dir, "train_y.npy"), d.train.y, [d.train.n]);
  await writeNpy(join(dir, "test_x.npy"), d.test.x, [d.test.n, 32, 32, 3]);
  await writeNpy(join(dir, "test_y.npy"), d.test.y, [d.test.n]);
  await writeNpy(join(dir, "mean.npy"), d.mean, [32, 32, 3]);
  const round = (v: number[]) => v.map((m) => +m.toFixed(4));
  const summary = {
    classes: CLASSES,
    train: { n: d.train.n, class_counts: counts(d.train) },
    test: { n: d.test.n, class_counts: counts(d.test) },
    layout: "NHWC float32 (N,32,32,3); labels uint8 (N,)",
    preprocessing: "float32 pixel values 0–255 minus the training set's per-pixel mean image (mean.npy), " +
      "the same mean subtracted from the test set; no scaling, no augmentation",
    channel_means_before_centring: {
      train: round(channelMeans(d.train.x, d.train.n, d.mean)),
      test: round(channelMeans(d.test.x, d.test.n, d.mean)),
    },
    ...d.extra,
  };
  await Deno.writeTextFile(join(dir, "summary.json"), JSON.stringify(summary, null, 2) + "\n");
  return summary;
}
