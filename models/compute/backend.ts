// Picks the tfjs backend every tfjs stage uses and says which. Owned by the
// compute work (issue 5): kernel fixes for the wasm backend and native paths
// are registered here, so that stages only call initCompute().
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import "@tensorflow/tfjs-backend-wasm";

let chosen: string | undefined;

/** Initialise tfjs once; returns a one-line description of the backend. */
export async function initCompute(): Promise<string> {
  if (chosen) return chosen;
  await tf.setBackend("wasm");
  await tf.ready();
  chosen = `wasm (tfjs ${tf.version_core})`;
  return chosen;
}

export { tf };
