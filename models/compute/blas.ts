// OpenBLAS through Deno FFI: the native GEMM, deterministic. Debian package
// `libopenblas0-pthread` (libopenblas.so.0). Missing library or no FFI permission: null,
// with the reason, and every caller falls back to the wasm backend.
//
// Determinism: OpenBLAS's result depends on its kernel family and its thread count. The
// committed runs used "OpenBLAS 0.3.21 Haswell (1 thread)", so this module pins exactly
// that, whatever the machine's environment says: OPENBLAS_CORETYPE=Haswell and
// OPENBLAS_NUM_THREADS=1 are set before the library loads. For speed, a product's rows
// of C are spread over a pool of worker threads (pool.ts), each running a 1-thread sgemm
// on its block of rows; the blocks are cut where OpenBLAS's own 1-thread driver would
// treat them alike (rowBlocks), so every element is computed by the same instructions
// in the same order as in one 1-thread call: the bits do not depend on the pool's size.
//
// Environment: COMPUTE_BLAS=off disables OpenBLAS; COMPUTE_BLAS=/path/libopenblas.so picks
// a file. PIPELINE_THREADS sets the pool's size (default: the cores this process may use).
import { POOL_BLAS, sharedPool, startSharedPool } from "./pool.ts";

/** cblas.h's CBLAS_ORDER and CBLAS_TRANSPOSE values. */
export const CBLAS_ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112;

/**
 * The OpenBLAS entry points this project calls, as Deno FFI signatures: written once here
 * (tests/support/gemm_child.ts opens its plain reference library with the same ones).
 */
export const OPENBLAS_SYMBOLS = {
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
  openblas_set_num_threads: { parameters: ["i32"], result: "void" },
  openblas_get_num_threads: { parameters: [], result: "i32" },
  openblas_get_config: { parameters: [], result: "pointer" },
  openblas_get_corename: { parameters: [], result: "pointer" },
} as const;
type Lib = Deno.DynamicLibrary<typeof OPENBLAS_SYMBOLS>;

// The kernel family and the geometry of its 1-thread driver (OpenBLAS 0.3.21, param.h and
// kernel/x86_64/sgemm_kernel_8x4_haswell_2.c). Row-major C = A·B is column-major Cᵀ = Bᵀ·Aᵀ
// to OpenBLAS, so our rows are its "N" columns: it walks them in blocks of SGEMM_R (from
// its 128 MiB buffer: ((2^27 − 320·320·4) / (320·4) − 15) & ~15 = 104512), and its kernel
// takes them in groups of 12 (then 8, 4, 2, 1 at the end of each call; the driver calls
// it on 12-row chunks while packing B and on the whole block afterwards), and it sums a
// 4-row group with two accumulators but 8- and 12-row groups with one.
// A block of rows that starts at a multiple of 12 from its SGEMM_R block's start and
// stays inside that block is therefore computed exactly as in the whole call.
export const CORETYPE = "Haswell";
const GROUP = 12, SGEMM_R = 104512;
// Below this many multiply-adds a product runs on the calling thread alone (same bits).
const MIN_PARALLEL = 1 << 20;

/**
 * The shape of every float32 GEMM here (OpenBLAS's below, oneDNN's, gemm.ts's wasm
 * fallback, the numpy MLP's products): row-major C[m×n] = op(A)·op(B) + beta·C, op =
 * transpose when tA/tB (A is m×k, k×m when tA; B is k×n, n×k when tB), every matrix
 * contiguous; beta defaults to 0.
 */
export type Sgemm = (
  tA: boolean,
  tB: boolean,
  m: number,
  n: number,
  k: number,
  a: Float32Array,
  b: Float32Array,
  c: Float32Array,
  beta?: number,
) => void;

export interface Blas {
  /** e.g. "OpenBLAS 0.3.21 Haswell, 1-thread kernels over 2 threads (deterministic)". */
  readonly description: string;
  /** The threads a product may use (the calling thread included). */
  readonly threads: number;
  /** Use at most n of them from now on (benchmarks; the bits do not change). */
  limitThreads(n: number): void;
  /**
   * Sgemm with a scale: C = alpha·op(A)·op(B) + beta·C (alpha defaults to 1). Views may
   * point into any ArrayBuffer, the wasm heap included.
   */
  sgemm(...args: [...Parameters<Sgemm>, alpha?: number]): void;
}

/**
 * The blocks of rows [start, end) of an m-row product that 1-thread calls may compute
 * separately with the bits of one call: each SGEMM_R block of rows cut into up to
 * `parts` pieces at multiples of 12 rows. Returns one list of pieces per SGEMM_R block.
 */
export function rowBlocks(m: number, parts: number): [number, number][][] {
  const out: [number, number][][] = [];
  for (let s = 0; s < m; s += SGEMM_R) {
    const e = Math.min(m, s + SGEMM_R), groups = Math.ceil((e - s) / GROUP);
    const p = Math.max(1, Math.min(parts, groups));
    const cuts = Array.from({ length: p + 1 }, (_, i) => Math.min(e, s + Math.round(groups * i / p) * GROUP));
    out.push(cuts.slice(0, -1).map((a, i) => [a, cuts[i + 1]] as [number, number]));
  }
  return out;
}

let cached: { blas: Blas | null; reason: string } | undefined;
let lib: Lib | undefined;

const candidates = ["libopenblas.so.0", "/usr/lib/x86_64-linux-gnu/libopenblas.so.0", "libopenblas.so"];

/** Threads this process may use: PIPELINE_THREADS, else the cores it may run on. */
export function pipelineThreads(): number {
  const n = Number(envGet("PIPELINE_THREADS"));
  return Number.isInteger(n) && n >= 1 ? n : Math.max(1, navigator.hardwareConcurrency || 1);
}

/** Whether this CPU runs OpenBLAS's Haswell kernels (AVX2 and FMA); undefined if unknown. */
function cpuHasAvx2Fma(): boolean | undefined {
  try {
    const flags = Deno.readTextFileSync("/proc/cpuinfo").match(/^flags\s*:(.*)$/m)?.[1].split(/\s+/);
    return flags ? flags.includes("avx2") && flags.includes("fma") : undefined;
  } catch {
    return undefined;
  }
}

/** Loads OpenBLAS once (1 thread until startBlasThreads). `reason` says why it is null (or what was loaded). */
export function loadBlas(): { blas: Blas | null; reason: string } {
  if (cached) return cached;
  if (envGet("COMPUTE_BLAS") === "off") return cached = { blas: null, reason: "disabled by COMPUTE_BLAS=off" };
  // Read once, when the library loads: what the results depend on is set here, not taken
  // from the machine's environment. OPENBLAS_L2_SIZE / OPENBLAS_BLOCK_FACTOR do not change
  // the Haswell kernels' blocking in 0.3.21 (tests/models/gemm_determinism_test.ts checks it).
  try {
    if (cpuHasAvx2Fma() !== false) Deno.env.set("OPENBLAS_CORETYPE", CORETYPE);
    Deno.env.set("OPENBLAS_NUM_THREADS", "1");
  } catch { /* no --allow-env: the description still says what loaded */ }
  const opened = openLib();
  if (typeof opened === "string") return cached = { blas: null, reason: opened };
  lib = opened.lib;
  lib.symbols.openblas_set_num_threads(1);
  const blas = wrap(lib, opened.path);
  return cached = { blas, reason: blas.description };
}

/** dlopen of the first library that loads, or why none did. */
function openLib(): { lib: Lib; path: string } | string {
  const env = envGet("COMPUTE_BLAS");
  const errors: string[] = [];
  for (const path of env ? [env] : candidates) {
    try {
      return { lib: Deno.dlopen(path, OPENBLAS_SYMBOLS), path };
    } catch (e) {
      errors.push((e as Error).message.split("\n")[0].replace(/^(Could not open library: )+/, ""));
    }
  }
  return `OpenBLAS not loaded (${errors[0]}); install Debian's libopenblas0-pthread for the native path`;
}

/**
 * Starts the worker threads that share each product (once; pipelineThreads() in all).
 * Until it resolves, or if workers cannot start, products run on the calling thread —
 * with the same bits.
 */
export async function startBlasThreads(): Promise<void> {
  const { blas } = loadBlas();
  if (blas) await startSharedPool(blas.threads);
}

function envGet(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined; // no --allow-env: defaults
  }
}

type Ptr = Deno.PointerValue;
const addr = (p: Ptr) => Number(p ? Deno.UnsafePointer.value(p) : 0);

/** One 1-thread call on rows [r0, r1) of C; a and b as for the whole product. */
function callRows(
  l: Lib,
  tA: boolean,
  tB: boolean,
  m: number,
  n: number,
  k: number,
  alpha: number,
  a: Ptr,
  b: Ptr,
  beta: number,
  c: Ptr,
  r0: number,
  r1: number,
): void {
  // op(A)'s row r is A's row r (stride k), or A's column r when A is stored transposed.
  const aRow = a && Deno.UnsafePointer.offset(a, (tA ? r0 : r0 * k) * 4);
  const cRow = c && Deno.UnsafePointer.offset(c, r0 * n * 4);
  l.symbols.cblas_sgemm(
    CBLAS_ROW_MAJOR,
    tA ? TRANS : NO_TRANS,
    tB ? TRANS : NO_TRANS,
    r1 - r0,
    n,
    k,
    alpha,
    aRow,
    tA ? m : k,
    b,
    tB ? k : n,
    beta,
    cRow,
    n,
  );
}

/** In a pool worker, at its start: a handle on the library the process has loaded and configured. */
export function poolInit(): void {
  const opened = openLib();
  if (typeof opened === "string") throw new Error(opened);
  lib = opened.lib;
}

/** A pool worker's task (see WorkerPool): [tA, tB, m, n, k, alpha, a, b, beta, c, r0, r1]. */
export function poolTask(t: Float64Array): void {
  const p = (x: number) => x ? Deno.UnsafePointer.create(BigInt(x)) : null;
  callRows(lib!, !!t[0], !!t[1], t[2], t[3], t[4], t[5], p(t[6]), p(t[7]), t[8], p(t[9]), t[10], t[11]);
}

function wrap(l: Lib, path: string): Blas {
  const s = l.symbols;
  const config = Deno.UnsafePointerView.getCString(s.openblas_get_config()!);
  const core = Deno.UnsafePointerView.getCString(s.openblas_get_corename()!);
  const version = config.split(" ").slice(0, 2).join(" ");
  const threads = pipelineThreads();
  const ptr = (x: Float32Array) => Deno.UnsafePointer.of(x as Float32Array<ArrayBuffer>);
  let description = `${version} ${core}, 1-thread kernels over ${threads} thread${threads === 1 ? "" : "s"}`;
  if (core === CORETYPE && version === "OpenBLAS 0.3.21") description += " (deterministic)";
  else {
    description += ` — NOT the deterministic family (OpenBLAS 0.3.21 ${CORETYPE}${
      cpuHasAvx2Fma() === false ? ", which needs AVX2+FMA: this CPU lacks them" : ""
    }; ${path}): results differ from the committed runs`;
  }
  let limit = threads;
  return {
    description,
    threads,
    limitThreads: (n) => void (limit = Math.max(1, Math.min(threads, n))),
    sgemm(tA, tB, m, n, k, a, b, c, beta = 0, alpha = 1) {
      if (m === 0 || n === 0) return;
      if (a.length < m * k || b.length < k * n || c.length < m * n) throw new Error(`sgemm: buffers too small`);
      const pa = ptr(a), pb = ptr(b), pc = ptr(c), pool = sharedPool();
      if (!pool || limit === 1 || m * n * k < MIN_PARALLEL) {
        return callRows(l, tA, tB, m, n, k, alpha, pa, pb, beta, pc, 0, m);
      }
      const base = [tA ? 1 : 0, tB ? 1 : 0, m, n, k, alpha, addr(pa), addr(pb), beta, addr(pc)];
      const local = (t: Float64Array) => callRows(l, tA, tB, m, n, k, alpha, pa, pb, beta, pc, t[10], t[11]);
      for (const blocks of rowBlocks(m, Math.min(limit, pool.size))) {
        pool.run(POOL_BLAS, local, blocks.map(([r0, r1]) => [...base, r0, r1]));
      }
    },
  };
}
