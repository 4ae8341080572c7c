// Checkpoints of a training run: every state tensor (weights, batch-norm
// running statistics, Adam's m and v) in one float32 file, and the rest (step,
// Adam's t, the curves so far, timings) in the manifest of ../checkpoint.ts,
// which hashes the file, writes the manifest last and checks both on load.
import { tf } from "../compute/backend.ts";
import * as ckpt from "../checkpoint.ts";

export interface CheckpointMeta<S> {
  /** What run this belongs to (the config); a checkpoint of another run is ignored. */
  key: string;
  step: number;
  /** Run-specific state (Adam's t, curves, timers). */
  state: S;
  /** Shapes of the tensors in the order saved. */
  shapes: number[][];
}

export async function saveCheckpoint<S>(
  dir: string,
  key: string,
  step: number,
  state: S,
  tensors: tf.Variable[],
): Promise<void> {
  const buf = new Float32Array(tensors.reduce((n, t) => n + t.size, 0));
  let at = 0;
  for (const t of tensors) {
    buf.set(t.dataSync() as Float32Array, at);
    at += t.size;
  }
  const meta: CheckpointMeta<S> = { key, step, state, shapes: tensors.map((t) => t.shape) };
  await ckpt.saveCheckpoint(dir, step, meta, [new Uint8Array(buf.buffer)]);
}

/**
 * Restore the tensors in place and return the metadata, or null when there is
 * no intact checkpoint of this run (none, another key, other shapes, damaged).
 */
export async function loadCheckpoint<S>(
  dir: string,
  key: string,
  tensors: tf.Variable[],
  log?: (message: string) => void,
): Promise<CheckpointMeta<S> | null> {
  const sameShapes = (meta: CheckpointMeta<S>) =>
    Array.isArray(meta?.shapes) && meta.shapes.length === tensors.length &&
    meta.shapes.every((s, i) => s.join() === tensors[i].shape.join());
  const found = await ckpt.loadCheckpoint<CheckpointMeta<S>>(dir, (m) => m?.key === key && sameShapes(m), log);
  if (!found) return null;
  const bytes = found.blobs[0];
  const buf = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >> 2);
  if (buf.length !== tensors.reduce((n, t) => n + t.size, 0)) return null;
  let at = 0;
  tf.tidy(() => {
    for (const t of tensors) {
      t.assign(tf.tensor(buf.subarray(at, at + t.size), t.shape));
      at += t.size;
    }
  });
  return found.meta;
}
