// A short fingerprint of a model's state (every parameter and running statistic, in a
// fixed order): training curves carry it at each evaluation, so `reproduce --verify-steps`
// can check that a rerun reached the very same weights, not only the same scores.
import { createHash } from "node:crypto";

export function weightsDigest(arrays: Float32Array[]): string {
  const h = createHash("sha256");
  for (const a of arrays) h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  return h.digest("hex").slice(0, 32);
}
