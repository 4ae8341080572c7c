// Mini-batches into reused buffers, for the trainers' hot loop: the batch
// sampler (dataset.ts's BatchSampler) says which images, this copies them.
import { IMAGE } from "./cifar.ts";
import type { Split } from "./dataset.ts";

/**
 * gather() into reused buffers: a fresh 20 MB array per GA1-size batch costs
 * 75–130 ms of page faults here (2–3 ms when the buffer is reused).
 */
export class BatchBuffer {
  readonly x: Float32Array;
  readonly y: Uint8Array;

  constructor(readonly split: Split, batch: number) {
    this.x = new Float32Array(batch * IMAGE);
    this.y = new Uint8Array(batch);
  }

  /** The images and labels at idx (idx.length = the batch size), in this buffer. */
  read(idx: Int32Array): { x: Float32Array; y: Uint8Array } {
    this.images(idx, this.x);
    return { x: this.x, y: this.labels(idx) };
  }

  /** The images at idx, row after row, into x (at least idx.length × 3072 values). */
  images(idx: Int32Array, x: Float32Array): void {
    const { x: all, n } = this.split;
    for (let k = 0; k < idx.length; k++) {
      const i = idx[k];
      if (!(i >= 0 && i < n)) throw new RangeError(`batch index ${i} outside 0..${n - 1}`);
      x.set(all.subarray(i * IMAGE, (i + 1) * IMAGE), k * IMAGE);
    }
  }

  /** The labels at idx, in this buffer. */
  labels(idx: Int32Array): Uint8Array {
    const { y, n } = this.split;
    for (let k = 0; k < idx.length; k++) {
      const i = idx[k];
      if (!(i >= 0 && i < n)) throw new RangeError(`batch index ${i} outside 0..${n - 1}`);
      this.y[k] = y[i];
    }
    return this.y;
  }
}
