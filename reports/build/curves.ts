// Comparing two training curves point by point: the report sets the manual and
// the autograd batch norm (train-batchnorm and its twin, trained from the same
// seed) side by side and shows their largest difference.
import type { EvalPoint } from "../../pipeline/types.ts";

const FIELDS = ["trainLoss", "trainAcc", "testLoss", "testAcc"] as const;
export type CurveDifference = Record<(typeof FIELDS)[number], number>;

/** Largest |a−b| per field over two curves evaluated at the same steps. */
export function curveDifference(a: EvalPoint[], b: EvalPoint[]): CurveDifference {
  if (a.length !== b.length || a.some((p, i) => p.step !== b[i].step)) throw new Error("curves at different steps");
  const d = { trainLoss: 0, trainAcc: 0, testLoss: 0, testAcc: 0 };
  for (let i = 0; i < a.length; i++) for (const f of FIELDS) d[f] = Math.max(d[f], Math.abs(a[i][f] - b[i][f]));
  return d;
}
