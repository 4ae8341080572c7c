// OpenBLAS through Deno FFI: the native GEMM. Debian package `libopenblas0-pthread`
// (libopenblas.so.0, 2 threads here). Missing library or no FFI permission: null, with
// the reason, and every caller falls back to the wasm backend.
//
// Environment: COMPUTE_BLAS=off disables it; COMPUTE_BLAS=/path/libopenblas.so picks a file.
// OpenBLAS picks its kernels for the CPU unless OPENBLAS_CORETYPE forces a family (e.g.
// Haswell = AVX2 only: on this AVX-512 machine that costs ~40% of sgemm's speed).

const CBLAS_ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112;

const symbols = {
  cblas_sgemm: {
    parameters: [
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "f32",
      "pointer",
      "i32",
      "pointer",
      "i32",
      "f32",
      "pointer",
      "i32",
    ],
    result: "void",
  },
  openblas_get_num_threads: { parameters: [], result: "i32" },
  openblas_get_config: { parameters: [], result: "pointer" },
  openblas_get_corename: { parameters: [], result: "pointer" },
} as const;

export interface Blas {
  /** e.g. "OpenBLAS 0.3.21 Haswell (2 threads)": version, kernel family, threads. */
  readonly description: string;
  /**
   * Row-major C[m×n] = alpha·op(A)·op(B) + beta·C, op = transpose when tA/tB, every
   * matrix contiguous. Views may point into any ArrayBuffer, the wasm heap included.
   */
  sgemm(
    tA: boolean,
    tB: boolean,
    m: number,
    n: number,
    k: number,
    a: Float32Array,
    b: Float32Array,
    c: Float32Array,
    beta?: number,
    alpha?: number,
  ): void;
}

let cached: { blas: Blas | null; reason: string } | undefined;

const candidates = ["libopenblas.so.0", "/usr/lib/x86_64-linux-gnu/libopenblas.so.0", "libopenblas.so"];

/** Loads OpenBLAS once. `reason` says why it is null (or what was loaded). */
export function loadBlas(): { blas: Blas | null; reason: string } {
  if (cached) return cached;
  const env = envGet("COMPUTE_BLAS");
  if (env === "off") return cached = { blas: null, reason: "disabled by COMPUTE_BLAS=off" };
  const paths = env ? [env] : candidates;
  const errors: string[] = [];
  for (const path of paths) {
    try {
      // OpenBLAS threads spin ~0.1 s after each call by default, stealing the core the JS
      // thread needs between GEMMs; a short timeout is read once, at load.
      if (envGet("OPENBLAS_THREAD_TIMEOUT") === undefined) Deno.env.set("OPENBLAS_THREAD_TIMEOUT", "4");
      const lib = Deno.dlopen(path, symbols);
      cached = { blas: wrap(lib), reason: "" };
      cached.reason = cached.blas!.description;
      return cached;
    } catch (e) {
      errors.push((e as Error).message.split("\n")[0].replace(/^(Could not open library: )+/, ""));
    }
  }
  return cached = {
    blas: null,
    reason: `OpenBLAS not loaded (${errors[0]}); install Debian's libopenblas0-pthread for the native path`,
  };
}

function envGet(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined; // no --allow-env: defaults
  }
}

function wrap(lib: Deno.DynamicLibrary<typeof symbols>): Blas {
  const s = lib.symbols;
  const config = Deno.UnsafePointerView.getCString(s.openblas_get_config()!);
  const core = Deno.UnsafePointerView.getCString(s.openblas_get_corename()!);
  const threads = s.openblas_get_num_threads();
  const ptr = (x: Float32Array) => Deno.UnsafePointer.of(x as Float32Array<ArrayBuffer>);
  return {
    description: `${config.split(" ").slice(0, 2).join(" ")} ${core} (${threads} thread${threads === 1 ? "" : "s"})`,
    sgemm(tA, tB, m, n, k, a, b, c, beta = 0, alpha = 1) {
      if (m === 0 || n === 0) return;
      if (a.length < m * k || b.length < k * n || c.length < m * n) throw new Error(`sgemm: buffers too small`);
      s.cblas_sgemm(
        CBLAS_ROW_MAJOR,
        tA ? TRANS : NO_TRANS,
        tB ? TRANS : NO_TRANS,
        m,
        n,
        k,
        alpha,
        ptr(a),
        tA ? m : k,
        ptr(b),
        tB ? k : n,
        beta,
        ptr(c),
        n,
      );
    },
  };
}
