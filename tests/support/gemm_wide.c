// A GEMM with the deterministic GEMM's bits (OpenBLAS 0.3.21 Haswell, 1-thread calls) that
// puts as many output elements in one instruction as the CPU's vectors hold: 8 with AVX2,
// 16 with AVX-512. Compiled after tests/support/gemm_order.c, whose written-out order it
// follows (G, walk, block): every element of C is one chain of fused multiply-adds over k
// from +0 in OpenBLAS's blocks of k (GEMM_Q = 320, halved to a multiple of 8 when 320 < left
// < 640), added as C = fma(sum, alpha, C) after each block; lanes are elements, so the
// vector width does not change any element's arithmetic. The few elements OpenBLAS sums in
// two chains (gemm_order.c's `walk` names their tiles: 8 columns × 6 or 4 rows) are summed
// again after each block of k, their way, over C's values saved before it.
//
// GEMM_ISA picks the vectors: 8 (AVX2, 8 lanes), 512 (AVX-512F, 16 lanes), or 16 (16 lanes
// as two AVX2 halves: the AVX-512 geometry, for testing it on a CPU without AVX-512).
// Built without -ffast-math and with -ffp-contract=off: every fma is written out.
#include <immintrin.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if GEMM_ISA == 512
typedef __m512 V;
enum { W = 16, MR = 12, MCJ = 384 };
#define vload _mm512_loadu_ps
#define vstore _mm512_storeu_ps
#define vfma _mm512_fmadd_ps
#define vmul _mm512_mul_ps
#define vset1 _mm512_set1_ps
#define vzero _mm512_setzero_ps
#elif GEMM_ISA == 16
typedef struct {
  __m256 lo, hi;
} V;
enum { W = 16, MR = 12, MCJ = 384 };
static inline V vload(const float *p) { return (V){_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
static inline void vstore(float *p, V v) { _mm256_storeu_ps(p, v.lo), _mm256_storeu_ps(p + 8, v.hi); }
static inline V vfma(V a, V b, V c) { return (V){_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)}; }
static inline V vmul(V a, V b) { return (V){_mm256_mul_ps(a.lo, b.lo), _mm256_mul_ps(a.hi, b.hi)}; }
static inline V vset1(float x) { return (V){_mm256_set1_ps(x), _mm256_set1_ps(x)}; }
static inline V vzero(void) { return (V){_mm256_setzero_ps(), _mm256_setzero_ps()}; }
#else
typedef __m256 V;
enum { W = 8, MR = 6, MCJ = 192 };
#define vload _mm256_loadu_ps
#define vstore _mm256_storeu_ps
#define vfma _mm256_fmadd_ps
#define vmul _mm256_mul_ps
#define vset1 _mm256_set1_ps
#define vzero _mm256_setzero_ps
#endif

// A tile of C is MR rows × NR columns (columns in lanes); A is packed MR rows at a time,
// B one block of MCJ columns at a time (kept in L2), NR columns at a time.
enum { NV = 2, NR = NV * W, Q = 320, P = 320 };

// The product (gemm_order.c's G: shapes, operands, alpha), beta, and its two-chain tiles.
typedef struct {
  G g;
  float beta;
  const int *rects; // i0, i1, j0, j1 of each two-chain tile
  int nRects;
} Gemm;

/** op(A)'s rows [i0, i0 + rows) × k in [l0, l0 + kc), as panels of MR rows: ap[panel][l][r] (zeros past the end). */
static void packA(const G *g, int i0, int rows, int l0, int kc, float *ap) {
  for (int p = 0; p < rows; p += MR, ap += (size_t)kc * MR) {
    const int h = rows - p < MR ? rows - p : MR;
    if (g->tA) { // op(A)'s rows are A's columns: MR of them side by side in each row of A
      for (int l = 0; l < kc; l++) {
        const float *s = g->a + (size_t)(l0 + l) * g->m + i0 + p;
        float *d = ap + (size_t)l * MR;
        for (int r = 0; r < MR; r++) d[r] = r < h ? s[r] : 0.0f;
      }
      continue;
    }
    const float *s[MR];
    for (int r = 0; r < MR; r++) s[r] = g->a + (size_t)(i0 + p + (r < h ? r : 0)) * g->k + l0;
    for (int l = 0; l < kc; l++)
      for (int r = 0; r < MR; r++) ap[(size_t)l * MR + r] = r < h ? s[r][l] : 0.0f;
  }
}

/** op(B)'s columns [j0, j0 + cols) × k in [l0, l0 + kc), as panels of NR columns: bp[panel][l][q]. */
static void packB(const G *g, int j0, int cols, int l0, int kc, float *bp) {
  for (int p = 0; p < cols; p += NR, bp += (size_t)kc * NR) {
    const int w = cols - p < NR ? cols - p : NR;
    if (!g->tB) { // op(B)'s rows are B's rows: NR columns of each, whole vectors while they last
      for (int l = 0; l < kc; l++) {
        const float *s = g->b + (size_t)(l0 + l) * g->n + j0 + p;
        float *d = bp + (size_t)l * NR;
        if (w == NR)
          for (int v = 0; v < NV; v++) vstore(d + v * W, vload(s + v * W));
        else
          for (int q = 0; q < NR; q++) d[q] = q < w ? s[q] : 0.0f;
      }
      continue;
    }
    const float *s[NR]; // op(B)'s columns are B's rows
    for (int q = 0; q < NR; q++) s[q] = g->b + (size_t)(j0 + p + (q < w ? q : 0)) * g->k + l0;
    for (int l = 0; l < kc; l++)
      for (int q = 0; q < NR; q++) bp[(size_t)l * NR + q] = q < w ? s[q][l] : 0.0f;
  }
}

/** c ← beta·c as the deterministic GEMM does it before the first block (beta = 1: unchanged). */
static inline float scaled(float c, float beta) { return beta == 1.0f ? c : beta == 0.0f ? 0.0f : c * beta; }

/**
 * One tile: sums over kc from +0, then C = fma(sum, alpha, C) — with C scaled by beta
 * first when this is the first block of k. rows ≤ MR, cols ≤ NR of the tile are in C.
 */
static void micro(const Gemm *g, int kc, const float *restrict ap, const float *restrict bp, float *c, int rows,
                  int cols, int first) {
  V acc[MR][NV];
  for (int r = 0; r < MR; r++) // C's tile, needed at the end: on its way meanwhile
    __builtin_prefetch(c + (size_t)r * g->g.n), __builtin_prefetch(c + (size_t)r * g->g.n + NR - 1);
#pragma GCC unroll 16
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) acc[r][v] = vzero();
  for (int l = 0; l < kc; l++, ap += MR, bp += NR) {
    V b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) b[v] = vload(bp + v * W);
#pragma GCC unroll 16
    for (int r = 0; r < MR; r++) {
      V a = vset1(ap[r]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) acc[r][v] = vfma(a, b[v], acc[r][v]);
    }
  }
  const int n = g->g.n;
  const float beta = first ? g->beta : 1.0f;
  if (rows == MR && cols == NR) {
    const V alpha = vset1(g->g.alpha), vbeta = vset1(beta);
#pragma GCC unroll 16
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) {
        float *p = c + (size_t)r * n + v * W;
        V x = vload(p);
        if (beta != 1.0f) x = beta == 0.0f ? vzero() : vmul(x, vbeta);
        vstore(p, vfma(acc[r][v], alpha, x));
      }
    return;
  }
  float t[MR][NR];
  for (int r = 0; r < MR; r++)
    for (int v = 0; v < NV; v++) vstore(&t[r][v * W], acc[r][v]);
  for (int r = 0; r < rows; r++)
    for (int q = 0; q < cols; q++) {
      float *p = c + (size_t)r * n + q;
      *p = __builtin_fmaf(t[r][q], g->g.alpha, scaled(*p, beta));
    }
}

/**
 * A two-chain tile's sums over this block of k, in place of the ones the tiles above added:
 * its 8 columns' and up to 6 rows' values of C as they were before (saved), with its two
 * chains added. Reads op(A) and op(B) from the packed blocks (ap from row a0, bp from column b0).
 */
static inline __attribute__((always_inline)) void twoChains(const Gemm *gm, const int *rect, const int rows,
                                                            const float *saved, int kc, int first, const float *ap,
                                                            int a0, const float *bp, int b0) {
  const G *g = &gm->g;
  const int paired = kc / 8 * 8;
  const float *ar[6];
  for (int r = 0; r < rows; r++) {
    const int i = rect[0] + r - a0;
    ar[r] = ap + ((size_t)(i / MR) * kc) * MR + i % MR; // ar[r][l * MR]: op(A)'s row, k from the block's start
  }
  const int j = rect[2] - b0;
  const float *br = bp + (size_t)(j / NR) * kc * NR + j % NR; // br + l * NR: 8 columns at k = l
  __m256 x[6], y[6];
  for (int r = 0; r < 6; r++) x[r] = y[r] = _mm256_setzero_ps();
  for (int l = 0; l < paired; l += 2) {
    const __m256 b0 = _mm256_loadu_ps(br + (size_t)l * NR), b1 = _mm256_loadu_ps(br + (size_t)(l + 1) * NR);
    for (int r = 0; r < rows; r++) {
      x[r] = _mm256_fmadd_ps(_mm256_set1_ps(ar[r][l * MR]), b0, x[r]);
      y[r] = _mm256_fmadd_ps(_mm256_set1_ps(ar[r][(l + 1) * MR]), b1, y[r]);
    }
  }
  for (int l = paired; l < kc; l++) {
    const __m256 b = _mm256_loadu_ps(br + (size_t)l * NR);
    for (int r = 0; r < rows; r++) x[r] = _mm256_fmadd_ps(_mm256_set1_ps(ar[r][l * MR]), b, x[r]);
  }
  const __m256 alpha = _mm256_set1_ps(g->alpha);
  for (int r = 0; r < rows; r++) {
    float v[8];
    for (int q = 0; q < 8; q++) v[q] = scaled(saved[r * 8 + q], first ? gm->beta : 1.0f);
    _mm256_storeu_ps(g->c + (size_t)(rect[0] + r) * g->n + rect[2],
                     _mm256_fmadd_ps(_mm256_add_ps(y[r], x[r]), alpha, _mm256_loadu_ps(v)));
  }
}

/** twoChains for the two tile heights there are (6 and 4 rows), each with its loops unrolled. */
static void twoChainTile(const Gemm *gm, const int *rect, const float *saved, int kc, int first, const float *ap,
                         int a0, const float *bp, int b0) {
  if (rect[1] - rect[0] == 6) twoChains(gm, rect, 6, saved, kc, first, ap, a0, bp, b0);
  else if (rect[1] - rect[0] == 4) twoChains(gm, rect, 4, saved, kc, first, ap, a0, bp, b0);
  else twoChains(gm, rect, rect[1] - rect[0], saved, kc, first, ap, a0, bp, b0);
}

typedef struct {
  const Gemm *g;
  int i0, i1;
  int failed;
  int slot; // which of the kept scratch buffers it uses, or -1: its own
} Part;

// Scratch memory kept from call to call (fresh pages cost page faults and zeroing: a tenth
// of a millisecond a megabyte), one buffer per thread of a call; a call that finds them in
// use by another allocates its own.
enum { SLOTS = 64 };
static pthread_mutex_t scratchLock = PTHREAD_MUTEX_INITIALIZER;
static float *scratch[SLOTS];
static size_t scratchSize[SLOTS];

static float *scratchFor(int slot, size_t floats) {
  if (slot < 0) return aligned_alloc(64, floats * sizeof(float));
  if (scratchSize[slot] < floats) {
    free(scratch[slot]);
    scratch[slot] = aligned_alloc(64, floats * sizeof(float));
    scratchSize[slot] = scratch[slot] ? floats : 0;
  }
  return scratch[slot];
}

static int byPanelThenColumn(const void *x, const void *y) {
  const int *a = x, *b = y; // [panel, i0, i1, j0, j1]
  return a[0] != b[0] ? a[0] - b[0] : a[3] - b[3];
}

/** Rows [i0, i1) of C (a multiple of 12 apart from the start: no two-chain tile is cut). */
static void *part(void *arg) {
  Part *pt = arg;
  const Gemm *gm = pt->g;
  const G *g = &gm->g;
  const int n = g->n, rows = pt->i1 - pt->i0, panels = (rows + MR - 1) / MR;
  // The two-chain tiles of these rows, each summed again right after the tile of MR × NR
  // that holds its last row and its columns (the data it reads still in cache): sorted by
  // that panel of rows, then by column. Their values of C are saved before each block of k.
  int mine = 0;
  for (int t = 0; t < gm->nRects; t++) mine += gm->rects[4 * t] >= pt->i0 && gm->rects[4 * t] < pt->i1;
  int *rects = malloc(((size_t)mine * 5 + 1) * sizeof(int)), *first = malloc(((size_t)panels + 2) * sizeof(int));
  float *saved = malloc(((size_t)mine * 48 + 1) * sizeof(float));
  const size_t apSize = (size_t)(rows + MR) * Q, bpSize = (size_t)(MCJ + NR) * Q; // multiples of 16 floats
  float *ap = scratchFor(pt->slot, apSize + bpSize), *bp = ap ? ap + apSize : 0;
  if (!rects || !first || !saved || !ap) {
    free(rects), free(first), free(saved);
    if (pt->slot < 0) free(ap);
    pt->failed = 1;
    return 0;
  }
  mine = 0;
  for (int t = 0; t < gm->nRects; t++) {
    const int *rc = gm->rects + 4 * t;
    if (rc[0] < pt->i0 || rc[0] >= pt->i1) continue;
    int *d = rects + 5 * mine++;
    d[0] = (rc[1] - 1 - pt->i0) / MR, memcpy(d + 1, rc, 16);
  }
  qsort(rects, mine, 5 * sizeof(int), byPanelThenColumn);
  for (int p = 0, t = 0; p <= panels; p++) {
    while (t < mine && rects[5 * t] < p) t++;
    first[p] = t;
  }
  for (int ls = 0, kc; ls < g->k; ls += kc) {
    kc = block(g->k - ls, Q);
    packA(g, pt->i0, rows, ls, kc, ap);
    for (int jc = 0; jc < n; jc += MCJ) {
      const int cols = n - jc < MCJ ? n - jc : MCJ;
      packB(g, jc, cols, ls, kc, bp);
      for (int t = 0; t < mine; t++) {
        const int *rc = rects + 5 * t + 1;
        if (rc[2] >= jc && rc[2] < jc + cols)
          for (int r = rc[0]; r < rc[1]; r++) memcpy(saved + t * 48 + (r - rc[0]) * 8, g->c + (size_t)r * n + rc[2], 32);
      }
      for (int ir = 0; ir < rows; ir += MR)
        for (int jr = 0; jr < cols; jr += NR) {
          micro(gm, kc, ap + (size_t)ir * kc, bp + (size_t)jr * kc, g->c + (size_t)(pt->i0 + ir) * n + jc + jr,
                rows - ir < MR ? rows - ir : MR, cols - jr < NR ? cols - jr : NR, ls == 0);
          for (int t = first[ir / MR]; t < first[ir / MR + 1]; t++) {
            const int *rc = rects + 5 * t + 1;
            if (rc[2] >= jc + jr && rc[2] < jc + jr + NR)
              twoChainTile(gm, rc, saved + t * 48, kc, ls == 0, ap, pt->i0, bp, jc);
          }
        }
    }
  }
  free(rects), free(first), free(saved);
  if (pt->slot < 0) free(ap);
  return 0;
}

typedef struct {
  int *r;
  int n, cap, failed;
} Rects;

static void collect(G *w, int i0, int i1, int j0, int j1, int l0, int kc, int two) {
  (void)l0, (void)kc;
  Rects *rs = w->ctx;
  if (!two || rs->failed) return;
  if (j1 - j0 != 8 || i1 - i0 > 6) return (void)(rs->failed = 1); // not a tile twoChainTile knows
  if (rs->n == rs->cap) {
    int *r = realloc(rs->r, (size_t)(rs->cap = rs->cap * 2 + 64) * 4 * sizeof(int));
    if (!r) return (void)(rs->failed = 1);
    rs->r = r;
  }
  int *r = rs->r + 4 * rs->n++;
  r[0] = i0, r[1] = i1, r[2] = j0, r[3] = j1;
}

/**
 * C = alpha·op(A)·op(B) + beta·C, row-major as in models/compute/blas.ts, on `threads`
 * threads (the bits do not depend on them). twoChains = 0 leaves out the two-chain tiles'
 * second pass (to show it is needed). Returns 0, or -1 when memory ran out (C is then
 * partly written).
 */
int gemm_wide(int tA, int tB, int m, int n, int k, float alpha, const float *a, const float *b, float beta,
              float *c, int threads, int twoChains) {
  if (m == 0 || n == 0) return 0;
  Gemm g = {{tA, tB, m, n, k, twoChains, alpha, a, b, c, 0, 0}, beta, 0, 0};
  if (k == 0 || alpha == 0.0f) {
    for (size_t x = 0; x < (size_t)m * n; x++) c[x] = scaled(c[x], beta);
    return 0;
  }
  // The two-chain tiles: the same in every block of k, so walked over the first one only.
  Rects rs = {0, 0, 0, 0};
  G w = {tA, tB, m, n, block(k, Q), 1, alpha, a, b, c, collect, &rs};
  walk(&w, P, Q);
  if (rs.failed) return free(rs.r), -1;
  g.rects = twoChains ? rs.r : 0, g.nRects = twoChains ? rs.n : 0;
  // Rows in parts cut at multiples of 12 (OpenBLAS's groups: a two-chain tile is never cut).
  const int groups = (m + 11) / 12;
  if (threads > groups) threads = groups;
  if ((double)m * n * k < (1 << 20)) threads = 1;
  if (threads < 1) threads = 1;
  Part parts[SLOTS];
  pthread_t ids[SLOTS];
  if (threads > SLOTS) threads = SLOTS;
  const int kept = pthread_mutex_trylock(&scratchLock) == 0;
  for (int t = 0; t < threads; t++) {
    int lo = (int)((long)groups * t / threads) * 12, hi = (int)((long)groups * (t + 1) / threads) * 12;
    parts[t] = (Part){&g, lo, hi > m ? m : hi, 0, kept ? t : -1};
  }
  int started = 1;
  for (; started < threads; started++)
    if (pthread_create(&ids[started], 0, part, &parts[started])) break;
  part(&parts[0]);
  for (int t = 1; t < started; t++) pthread_join(ids[t], 0);
  for (int t = started; t < threads; t++) part(&parts[t]); // threads that could not start: here
  if (kept) pthread_mutex_unlock(&scratchLock);
  free(rs.r);
  for (int t = 0; t < threads; t++)
    if (parts[t].failed) return -1;
  return 0;
}
