// A trained model as artefacts other tools read without our code:
//   weights.safetensors  every parameter and running statistic, named and shaped (metadata: the layout)
//   predictions.npy      uint8, the predicted class of each test image, in test-set order
// Loading the weights back into the model gives the run's test accuracy bit for bit (tests).
import { join } from "node:path";
import { writeNpy } from "../data/npy.ts";
import { readSafetensors, writeSafetensors } from "../data/safetensors.ts";

export interface NamedTensor {
  shape: number[];
  data: Float32Array;
}

export const WEIGHTS = "weights.safetensors", PREDICTIONS = "predictions.npy";

export async function writeArtifacts(
  dir: string,
  weights: Record<string, NamedTensor>,
  predictions: Uint8Array,
  layout: string,
): Promise<void> {
  const tensors = Object.fromEntries(
    Object.entries(weights).map(([name, t]) => [name, { dtype: "F32" as const, shape: t.shape, data: t.data }]),
  );
  await writeSafetensors(join(dir, WEIGHTS), tensors, { format: "pt", layout });
  await writeNpy(join(dir, PREDICTIONS), predictions, [predictions.length]);
}

/** The float32 tensors of a weights file, by name. */
export async function readWeights(path: string): Promise<Record<string, NamedTensor>> {
  const { tensors } = await readSafetensors(path);
  return Object.fromEntries(
    Object.entries(tensors).map(([name, t]) => {
      if (t.dtype !== "F32") throw new Error(`${path}: ${name} is ${t.dtype}, expected F32`);
      return [name, { shape: t.shape, data: t.data as Float32Array }];
    }),
  );
}

/** Copy `from` into `into` (a model's own buffer), checking the shape. */
export function load(into: Float32Array, from: NamedTensor | undefined, name: string): void {
  if (!from) throw new Error(`the weights file has no tensor ${name}`);
  if (from.data.length !== into.length) {
    throw new Error(`${name}: ${from.data.length} values in the file, the model has ${into.length}`);
  }
  into.set(from.data);
}

/** The index of each row's largest entry (the first on ties, like argmax). */
export function argmaxRows(scores: Float32Array, rows: number, cols: number): Uint8Array {
  const out = new Uint8Array(rows);
  for (let i = 0; i < rows; i++) {
    let best = 0;
    for (let j = 1; j < cols; j++) if (scores[i * cols + j] > scores[i * cols + best]) best = j;
    out[i] = best;
  }
  return out;
}
