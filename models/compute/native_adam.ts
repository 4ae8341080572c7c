// Adam for the oneDNN VGG over both cores: simd_adam.ts's loop written in C (native.ts
// builds it) and split over OpenMP threads. Each element gets the same float32 operations
// in the same order as there (no fused multiply-add, exact square root, subnormals kept),
// so the bits are simd_adam.ts's whatever the thread count (tests/models/native_kernels_test.ts).
// Measured on a 2-core AMD EPYC (7 Dec 2026): the VGG's 9.2 M parameters 8.3 → 4.8 ms.
import { cpuHas, nativeLibrary } from "./native.ts";
import { envGet } from "./onednn.ts";

const SOURCE = String.raw`
#include <immintrin.h>
#include <stddef.h>

// m = b1·m + c1·g;  v = b2·v + (c2·g)·g;  p = p − (s·m) / (√v·r + eps), over n floats; the
// last n % 8 one at a time (float32 scalar arithmetic: the same roundings).
void adam(float *p, const float *g, float *m, float *v, long n, float b1, float c1, float b2, float c2,
          float s, float r, float eps) {
  const __m256 B1 = _mm256_set1_ps(b1), C1 = _mm256_set1_ps(c1), B2 = _mm256_set1_ps(b2);
  const __m256 C2 = _mm256_set1_ps(c2), S = _mm256_set1_ps(s), R = _mm256_set1_ps(r), E = _mm256_set1_ps(eps);
  #pragma omp parallel for schedule(static)
  for (long i = 0; i < n - n % 8; i += 8) {
    const __m256 gi = _mm256_loadu_ps(g + i);
    const __m256 mi = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(m + i), B1), _mm256_mul_ps(C1, gi));
    const __m256 vi = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(v + i), B2), _mm256_mul_ps(_mm256_mul_ps(C2, gi), gi));
    _mm256_storeu_ps(m + i, mi);
    _mm256_storeu_ps(v + i, vi);
    const __m256 d = _mm256_add_ps(_mm256_mul_ps(_mm256_sqrt_ps(vi), R), E);
    _mm256_storeu_ps(p + i, _mm256_sub_ps(_mm256_loadu_ps(p + i), _mm256_div_ps(_mm256_mul_ps(S, mi), d)));
  }
  for (long i = n - n % 8; i < n; i++) {
    m[i] = m[i] * b1 + c1 * g[i];
    v[i] = v[i] * b2 + (c2 * g[i]) * g[i];
    p[i] = p[i] - (s * m[i]) / (__builtin_sqrtf(v[i]) * r + eps);
  }
}
`;
const FLAGS = ["-O2", "-mavx2", "-ffp-contract=off", "-fopenmp"];
const F32 = "f32";
const SYMBOLS = {
  adam: {
    parameters: ["buffer", "buffer", "buffer", "buffer", "i64", F32, F32, F32, F32, F32, F32, F32],
    result: "void",
  },
} as const;

export type AdamStep = (
  p: Float32Array,
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  t: number,
  lr: number,
) => void;

let cached: { step: AdamStep | null; reason: string } | undefined;

/** The native Adam step (simdAdam's signature and bits), or null with the reason. */
export function loadNativeAdam(): { step: AdamStep | null; reason: string } {
  if (cached) return cached;
  if (envGet("COMPUTE_NATIVE") === "off") return cached = { step: null, reason: "COMPUTE_NATIVE=off" };
  if (!cpuHas("avx2")) return cached = { step: null, reason: "this CPU lacks AVX2" };
  const { lib, reason } = nativeLibrary("adam", SOURCE, FLAGS, SYMBOLS);
  if (!lib) return cached = { step: null, reason };
  const b1 = 0.9, b2 = 0.999, eps = 1e-8;
  const view = (a: Float32Array) => a as Float32Array<ArrayBuffer>;
  return cached = {
    reason: "",
    step(p, g, m, v, t, lr) {
      if ([g, m, v].some((a) => a.length !== p.length)) {
        throw new Error("native adam: arrays of unequal lengths");
      }
      const f = lib.symbols.adam;
      f(
        view(p),
        view(g),
        view(m),
        view(v),
        BigInt(p.length),
        b1,
        1 - b1,
        b2,
        1 - b2,
        lr / (1 - b1 ** t),
        1 / Math.sqrt(1 - b2 ** t),
        eps,
      );
    },
  };
}
