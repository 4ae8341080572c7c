// Child process of tests/models/gemm_determinism_test.ts: computes every case of CASES and prints
// one JSON line {description, digests}, a SHA-256 per case of C's bytes.
//   deno run -A tests/support/gemm_child.ts ref   one plain cblas_sgemm per case, OpenBLAS as the
//                                         environment configures it (the reference when run
//                                         with OPENBLAS_CORETYPE=Haswell OPENBLAS_NUM_THREADS=1)
//   deno run -A tests/support/gemm_child.ts ours  models/compute/blas.ts with its thread pool
import {
  type Blas,
  CBLAS_ROW_MAJOR,
  loadBlas,
  NO_TRANS,
  OPENBLAS_SYMBOLS,
  startBlasThreads,
  TRANS,
} from "../../models/compute/blas.ts";
import { rand } from "./arrays.ts";

type Sgemm = Blas["sgemm"];

/** [m, n, k]: odd sizes; K around and above OpenBLAS's GEMM_Q (320) and 2·Q; n above 2·GEMM_P
 * (640); m across the pool's 12-row groups; one m above SGEMM_R (104512 rows). */
export const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [5, 3, 7],
  [13, 8, 319],
  [25, 17, 320],
  [37, 45, 321],
  [100, 33, 641],
  [101, 100, 700],
  [200, 100, 3072],
  [203, 13, 640],
  [64, 650, 100],
  [49, 681, 333],
  [300, 10, 1000],
  [1609, 21, 97],
  [3072, 100, 200],
  [104512 + 301, 20, 45],
];

async function digest(x: Float32Array): Promise<string> {
  const h = await crypto.subtle.digest("SHA-256", x.slice().buffer);
  return Array.from(new Uint8Array(h).slice(0, 12), (b) => b.toString(16).padStart(2, "0")).join("");
}

function plainCblas(): { sgemm: Sgemm; description: string } {
  // The same FFI signatures as the library under test (models/compute/blas.ts), none of its threading.
  const lib = Deno.dlopen("libopenblas.so.0", OPENBLAS_SYMBOLS);
  const p = (x: Float32Array) => Deno.UnsafePointer.of(x as Float32Array<ArrayBuffer>);
  const core = Deno.UnsafePointerView.getCString(lib.symbols.openblas_get_corename()!);
  return {
    description: `plain cblas_sgemm, ${core}, ${lib.symbols.openblas_get_num_threads()} threads`,
    sgemm: (tA, tB, m, n, k, a, b, c, beta = 0, alpha = 1) =>
      lib.symbols.cblas_sgemm(
        CBLAS_ROW_MAJOR,
        tA ? TRANS : NO_TRANS,
        tB ? TRANS : NO_TRANS,
        m,
        n,
        k,
        alpha,
        p(a),
        tA ? m : k,
        p(b),
        tB ? k : n,
        beta,
        p(c),
        n,
      ),
  };
}

async function ours(): Promise<{ sgemm: Sgemm; description: string }> {
  const { blas, reason } = loadBlas();
  if (!blas) throw new Error(reason);
  await startBlasThreads();
  return { description: blas.description, sgemm: (...args) => blas.sgemm(...args) };
}

if (import.meta.main) {
  const { sgemm, description } = Deno.args[0] === "ref" ? plainCblas() : await ours();
  const digests: string[] = [];
  for (const [i, [m, n, k]] of SHAPES.entries()) {
    const a = rand(m * k, 3 * i + 1), b = rand(k * n, 3 * i + 2), c0 = rand(m * n, 3 * i + 3);
    for (const [tA, tB] of [[false, false], [true, false], [false, true], [true, true]]) {
      for (const [beta, alpha] of [[0, 1], [0.5, 1], [1, -0.75]]) {
        const c = c0.slice();
        sgemm(tA, tB, m, n, k, a, b, c, beta, alpha);
        digests.push(`${m}x${n}x${k} tA=${tA} tB=${tB} beta=${beta} alpha=${alpha}: ${await digest(c)}`);
      }
    }
  }
  console.log(JSON.stringify({ description, digests }));
}
