// CIFAR-10 facts (../shared/SPEC.md) and the synthetic archive generator.
import { createHash } from "node:crypto";
import { PipelineError } from "../pipeline/types.ts";
import { Rng } from "./rng.ts";
import { gzip, tarBytes } from "./tar.ts";

export const OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
export const OFFICIAL_ARCHIVE_MD5 = "c32a1d4ab5d03f1284b67883e8d87530";
export const DIR = "cifar-10-batches-bin";
export const TRAIN_FILES = [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`);
export const TEST_FILE = "test_batch.bin";
export const META_FILE = "batches.meta.txt";
/** What the download stage extracts (everything else in the archive is skipped). */
export const WANTED = [...TRAIN_FILES, TEST_FILE, META_FILE];

/** The published per-file MD5s of the six batch files (shared/data/cifar-10-batches-bin.md5). */
export const OFFICIAL_FILE_MD5: Record<string, string> = {
  "data_batch_1.bin": "5dd7e06a14cb22eb9f671a540d1b7c25",
  "data_batch_2.bin": "5ea93a67294ea407fff1d09f752e9692",
  "data_batch_3.bin": "942cd6a4bcdd0dd3c604fbe906cb4421",
  "data_batch_4.bin": "ae636b3ba5c66a11e91e8cb52e771fcb",
  "data_batch_5.bin": "53f37980c15c3d472c316c40844f3f0d",
  "test_batch.bin": "803d5f7f4d78ea53de84dbe85f74fb6d",
};

export const CLASSES = [
  "airplane",
  "automobile",
  "bird",
  "cat",
  "deer",
  "dog",
  "frog",
  "horse",
  "ship",
  "truck",
];
export const PIXELS = 32 * 32;
export const IMAGE = 3 * PIXELS; // 3072 values per image
export const RECORD = 1 + IMAGE; // label byte, then R, G, B planes (CHW)

export function md5(bytes: Uint8Array): string {
  return createHash("md5").update(bytes).digest("hex");
}

/**
 * Records in the CIFAR-10 binary format whose classes are learnable but not
 * trivial: each class has its own mean colour and a horizontal or vertical
 * gradient, plus uniform noise. Deterministic in (n, seed).
 */
export function syntheticRecords(n: number, seed: number): Uint8Array {
  const rng = new Rng(seed);
  const out = new Uint8Array(n * RECORD);
  const proto = new Rng(7); // class looks: fixed, shared by train and test
  const base = CLASSES.map(() => [0, 1, 2].map(() => 60 + proto.below(136)));
  for (let i = 0; i < n; i++) {
    const label = rng.below(10);
    const rec = out.subarray(i * RECORD, (i + 1) * RECORD);
    rec[0] = label;
    for (let c = 0; c < 3; c++) {
      for (let p = 0; p < PIXELS; p++) {
        const ramp = (label % 2 ? p >> 5 : p & 31) - 16; // row or column gradient
        const v = base[label][c] + 2 * ramp + (rng.below(121) - 60);
        rec[1 + c * PIXELS + p] = Math.max(0, Math.min(255, v));
      }
    }
  }
  return out;
}

/**
 * A fake archive laid out exactly like the official one, with `perBatch`
 * images in each training batch file and `nTest` test images; returns the
 * gzip'd tar bytes and the MD5 of every batch file (its own checksums).
 */
export async function syntheticArchive(
  perBatch: number,
  nTest: number,
): Promise<{ archive: Uint8Array; fileMd5: Record<string, string> }> {
  const files: Record<string, Uint8Array> = {};
  TRAIN_FILES.forEach((f, i) => files[f] = syntheticRecords(perBatch, 1000 + i));
  files[TEST_FILE] = syntheticRecords(nTest, 2000);
  const fileMd5 = Object.fromEntries(Object.entries(files).map(([f, b]) => [f, md5(b)]));
  const meta = new TextEncoder().encode(CLASSES.join("\n") + "\n");
  const tar = tarBytes([
    { name: `${DIR}/` },
    { name: `${DIR}/${META_FILE}`, data: meta },
    ...Object.entries(files).map(([f, data]) => ({ name: `${DIR}/${f}`, data })),
  ]);
  return { archive: await gzip(tar), fileMd5 };
}

/**
 * Decode CIFAR records (label byte, then R, G, B planes of 32×32) into
 * float32 0–255 HWC images at image offset `at` of `x`, labels into `y`.
 * Returns the number of records decoded.
 */
export function decodeRecords(bytes: Uint8Array, x: Float32Array, y: Uint8Array, at: number, name = "batch"): number {
  if (bytes.length === 0 || bytes.length % RECORD !== 0) {
    throw new PipelineError(
      `${name} has ${bytes.length} bytes, not a whole number of ${RECORD}-byte CIFAR-10 records`,
      "rerun the download stage (the batch file is damaged)",
    );
  }
  const n = bytes.length / RECORD;
  for (let i = 0; i < n; i++) {
    const r = i * RECORD;
    const label = bytes[r];
    if (label > 9) {
      throw new PipelineError(`${name}: record ${i} has label ${label} (expected 0–9)`, "rerun the download stage");
    }
    y[at + i] = label;
    const o = (at + i) * IMAGE;
    for (let p = 0; p < PIXELS; p++) {
      x[o + 3 * p] = bytes[r + 1 + p];
      x[o + 3 * p + 1] = bytes[r + 1 + PIXELS + p];
      x[o + 3 * p + 2] = bytes[r + 1 + 2 * PIXELS + p];
    }
  }
  return n;
}

/** The per-pixel mean image of n images (accumulated in float64, stored as float32). */
export function meanImage(x: Float32Array, n: number): Float32Array {
  const sum = new Float64Array(IMAGE);
  for (let i = 0; i < n; i++) {
    const o = i * IMAGE;
    for (let j = 0; j < IMAGE; j++) sum[j] += x[o + j];
  }
  return Float32Array.from(sum, (s) => s / n);
}

/** x -= mean, image by image, in place (float32 arithmetic, as numpy's float32 subtraction). */
export function subtractMean(x: Float32Array, mean: Float32Array): void {
  for (let o = 0; o < x.length; o += IMAGE) {
    for (let j = 0; j < IMAGE; j++) x[o + j] -= mean[j];
  }
}
