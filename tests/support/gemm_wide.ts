// The order-keeping wide GEMM (gemm_wide.c, compiled after gemm_order.c) through Deno FFI:
// a candidate for the deterministic GEMM's place (models/compute/blas.ts), measured by
// `deno task bench gemm` and checked bit for bit by tests/models/gemm_wide_test.ts. Not
// imported by any stage: it is in no cache key until it replaces OpenBLAS there.
import type { Sgemm } from "../../models/compute/blas.ts";
import { cpuHas, nativeLibrary } from "../../models/compute/native.ts";

/** 8: AVX2 (8 lanes); 512: AVX-512F (16 lanes); 16: 16 lanes as two AVX2 halves (AVX-512's geometry, testable on AVX2). */
export type WideIsa = 8 | 16 | 512;

export interface WideGemm {
  /** e.g. "order-keeping wide GEMM, AVX-512F (16 lanes, 12×32 tiles)". */
  name: string;
  /**
   * C = alpha·op(A)·op(B) + beta·C as models/compute/blas.ts's sgemm; twoChains = false
   * leaves out OpenBLAS's two-chain tiles (to show they matter).
   */
  sgemm(...args: [...Parameters<Sgemm>, alpha?: number, opts?: { threads?: number; twoChains?: boolean }]): void;
}

const SYMBOLS = {
  gemm_wide: {
    parameters: ["i32", "i32", "i32", "i32", "i32", "f32", "buffer", "buffer", "f32", "buffer", "i32", "i32"],
    result: "i32",
  },
} as const;

const TILES: Record<WideIsa, string> = {
  8: "AVX2 (8 lanes, 6×16 tiles)",
  16: "two AVX2 halves as 16 lanes (12×32 tiles)",
  512: "AVX-512F (16 lanes, 12×32 tiles)",
};

/** The widest ISA this CPU runs (512 with AVX-512F, else 8), or null without AVX2 + FMA. */
export function widestIsa(): WideIsa | null {
  return cpuHas("avx512f", "avx2", "fma") ? 512 : cpuHas("avx2", "fma") ? 8 : null;
}

/** The library built for `isa` (any CPU can build it; only one with the ISA can run it), or why it was not. */
export function buildWideGemm(isa: WideIsa): ReturnType<typeof nativeLibrary<typeof SYMBOLS>> {
  const source = ["gemm_order.c", "gemm_wide.c"].map((f) => Deno.readTextFileSync(new URL(f, import.meta.url)))
    .join("\n");
  const flags = ["-O3", "-ffp-contract=off", "-mavx2", "-mfma", ...(isa === 512 ? ["-mavx512f"] : [])];
  return nativeLibrary(`gemm_wide${isa}`, source, [...flags, `-DGEMM_ISA=${isa}`, "-pthread"], SYMBOLS);
}

/** The wide GEMM built for `isa`, or the reason it cannot run here. */
export function loadWideGemm(isa: WideIsa, threads: number): WideGemm | string {
  if (!cpuHas("avx2", "fma") || (isa === 512 && !cpuHas("avx512f"))) {
    return `this CPU lacks ${isa === 512 ? "AVX-512F" : "AVX2 + FMA"}`;
  }
  const { lib, reason } = buildWideGemm(isa);
  if (!lib) return reason;
  return {
    name: `order-keeping wide GEMM, ${TILES[isa]}, ${threads} thread${threads === 1 ? "" : "s"}`,
    sgemm(tA, tB, m, n, k, a, b, c, beta = 0, alpha = 1, opts = {}) {
      if (a.length < m * k || b.length < k * n || c.length < m * n) throw new Error("gemm_wide: buffers too small");
      const r = lib.symbols.gemm_wide(
        +tA,
        +tB,
        m,
        n,
        k,
        alpha,
        a,
        b,
        beta,
        c,
        opts.threads ?? threads,
        +(opts.twoChains ?? true),
      );
      if (r !== 0) throw new Error("gemm_wide: out of memory");
    },
  };
}
