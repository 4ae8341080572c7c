// Checkpoints of a training run: every state tensor (weights, batch-norm
// running statistics, Adam's m and v) in one float32 file, and a JSON file
// with the rest (step, Adam's t, the curves so far, timings). The JSON file is
// renamed into place last, so a kill at any moment leaves the previous
// checkpoint or the new one, never half of one.
import { join } from "node:path";
import { tf } from "../compute/backend.ts";

export interface CheckpointMeta<S> {
  /** What run this belongs to (the config); a checkpoint of another run is ignored. */
  key: string;
  step: number;
  /** Run-specific state (Adam's t, curves, timers). */
  state: S;
  /** Shapes of the tensors in the order saved, and the data file. */
  shapes: number[][];
  data: string;
}

const META = "checkpoint.json";

export async function saveCheckpoint<S>(
  dir: string,
  key: string,
  step: number,
  state: S,
  tensors: tf.Variable[],
): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const total = tensors.reduce((n, t) => n + t.size, 0);
  const buf = new Float32Array(total);
  let at = 0;
  for (const t of tensors) {
    buf.set(t.dataSync() as Float32Array, at);
    at += t.size;
  }
  const data = `tensors-${step}.f32`;
  await Deno.writeFile(join(dir, data), new Uint8Array(buf.buffer));
  const meta: CheckpointMeta<S> = { key, step, state, shapes: tensors.map((t) => t.shape), data };
  await Deno.writeTextFile(join(dir, META + ".tmp"), JSON.stringify(meta));
  await Deno.rename(join(dir, META + ".tmp"), join(dir, META));
  for (const e of Deno.readDirSync(dir)) {
    if (e.name.startsWith("tensors-") && e.name !== data) await Deno.remove(join(dir, e.name));
  }
}

/**
 * Restore the tensors in place and return the metadata, or null when there is
 * no checkpoint of this run (none, another key, or other shapes).
 */
export async function loadCheckpoint<S>(
  dir: string,
  key: string,
  tensors: tf.Variable[],
): Promise<CheckpointMeta<S> | null> {
  let meta: CheckpointMeta<S>;
  try {
    meta = JSON.parse(await Deno.readTextFile(join(dir, META)));
  } catch {
    return null;
  }
  const sameShapes = Array.isArray(meta.shapes) && meta.shapes.length === tensors.length &&
    meta.shapes.every((s, i) => s.join() === tensors[i].shape.join());
  if (meta.key !== key || !sameShapes) return null;
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(join(dir, meta.data));
  } catch {
    return null;
  }
  const buf = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >> 2);
  if (buf.length !== tensors.reduce((n, t) => n + t.size, 0)) return null;
  let at = 0;
  tf.tidy(() => {
    for (const t of tensors) {
      t.assign(tf.tensor(buf.subarray(at, at + t.size), t.shape));
      at += t.size;
    }
  });
  return meta;
}
