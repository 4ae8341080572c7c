// The order in which OpenBLAS 0.3.21's Haswell sgemm (1 thread) sums each element of
// C = alpha·op(A)·op(B) + beta·C, written out one element at a time in plain C: the
// deterministic GEMM's numerics (models/compute/blas.ts), as any faster kernel would have
// to reproduce them. Read from driver/level3/level3.c (the blocking) and
// kernel/x86_64/sgemm_kernel_8x4_haswell_2.c (the tiles); tests/models/gemm_order_test.ts
// checks it bit for bit against the library.
//
// Row-major C = op(A)·op(B) is, to OpenBLAS, column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: its "M"
// (rows of its tiles) is our column j, its "N" (columns of its tiles) our row i.
// Every element is a chain of fused multiply-adds over k, from +0, in blocks of k cut by
// the driver (GEMM_Q = 320); at the end of each block C = fma(sum, alpha, C). Elements in
// two kinds of 8-row tiles (m8n6 at the ends of a 12-column group, m8n4) sum even and odd
// k of each 8-step stretch in two chains (the rest of the block in the first) and add
// them. Which element falls in which tile follows from the driver's blocks of M (GEMM_P =
// 320) and N (12-column chunks while it packs the first block of M, then whole).
// Lane-wise: a kernel with wider vectors that gives each element the same chain has the
// same bits (tests/support/gemm_wide.c is one: it walks the same tiles with `visit` to find
// the two-chain ones).
#include <stddef.h>

typedef struct G G;
struct G {
  int tA, tB, m, n, k, twoChains;
  float alpha;
  const float *a, *b;
  float *c;
  // Set: each tile is handed to it (rows [i0, i1) × columns [j0, j1) of C, k in [l0, l0 + kc),
  // in two chains or one) instead of being computed.
  void (*visit)(G *g, int i0, int i1, int j0, int j1, int l0, int kc, int two);
  void *ctx;
};

static inline float opA(const G *g, int i, int l) { return g->tA ? g->a[(size_t)l * g->m + i] : g->a[(size_t)i * g->k + l]; }
static inline float opB(const G *g, int l, int j) { return g->tB ? g->b[(size_t)j * g->k + l] : g->b[(size_t)l * g->n + j]; }

/** Element (row i, column j) over k in [l0, l0 + kc), in one chain or two. */
static void element(const G *g, int i, int j, int l0, int kc, int two) {
  two = two && g->twoChains;
  float x = 0.0f, y = 0.0f;
  int paired = two ? kc / 8 * 8 : 0;
  for (int q = 0; q < paired; q++) {
    if (q & 1) y = __builtin_fmaf(opB(g, l0 + q, j), opA(g, i, l0 + q), y);
    else x = __builtin_fmaf(opB(g, l0 + q, j), opA(g, i, l0 + q), x);
  }
  for (int q = paired; q < kc; q++) x = __builtin_fmaf(opB(g, l0 + q, j), opA(g, i, l0 + q), x);
  float *c = &g->c[(size_t)i * g->n + j];
  *c = __builtin_fmaf(two ? y + x : x, g->alpha, *c);
}

/** A tile of a kernel call: its rows [r0, r1) (our columns) × columns [c0, c1) (our rows). */
static void tile(const G *g, int m0, int n0, int r0, int r1, int c0, int c1, int l0, int kc, int two) {
  if (g->visit) return g->visit((G *)g, n0 + c0, n0 + c1, m0 + r0, m0 + r1, l0, kc, two && g->twoChains);
  for (int cc = c0; cc < c1; cc++)
    for (int r = r0; r < r1; r++) element(g, n0 + cc, m0 + r, l0, kc, two);
}

/** The rows left after the 8-row tiles: 4, 2, 1, each one chain. */
static void rowTails(const G *g, int m0, int n0, int rows, int at, int c0, int c1, int l0, int kc) {
  for (int t = 4; t >= 1; t /= 2)
    if (rows - at >= t) {
      tile(g, m0, n0, at, at + t, c0, c1, l0, kc, 0);
      at += t;
    }
}

/** One call of the kernel on a rows × cols block at (m0, n0), k in [l0, l0 + kc). */
static void kernel(const G *g, int m0, int rows, int n0, int cols, int l0, int kc) {
  int nn = 0;
  for (; cols - nn >= 12; nn += 12) {
    int at = 0, left = rows;
    const int L = nn, R = nn + 6, E = nn + 12;
    if (left >= 16) {
      // Two 6-column halves, staggered by 8 rows: 16-row tiles in one chain, with an 8-row
      // tile in two chains at the left half's start and at the end of one half.
      // The halves take turns, the right one first; the other finishes when fewer than 16 rows are left.
      tile(g, m0, n0, 0, 8, L, R, l0, kc, 1);
      for (int right = 1;; right = !right) {
        tile(g, m0, n0, at, at + 16, right ? R : L, right ? E : R, l0, kc, 0);
        at += 8, left -= 8;
        if (left < 16) {
          tile(g, m0, n0, at, at + 8, right ? L : R, right ? R : E, l0, kc, 1);
          at += 8;
          break;
        }
      }
    } else if (left >= 8) {
      tile(g, m0, n0, 0, 8, L, E, l0, kc, 0);
      at = 8;
    }
    rowTails(g, m0, n0, rows, at, L, E, l0, kc);
  }
  for (int width = 8; width >= 1; width /= 2) { // the columns left: 8, 4, 2, 1, at most once each
    if (cols - nn < width) continue;
    int at = 0;
    for (; rows - at >= 8; at += 8) tile(g, m0, n0, at, at + 8, nn, nn + width, l0, kc, width == 4);
    rowTails(g, m0, n0, rows, at, nn, nn + width, l0, kc);
    nn += width;
  }
}

/** level3.c's rule for a block of `left` (at most `max`, halved to a multiple of 8 below 2·max). */
static int block(int left, int max) {
  if (left >= 2 * max) return max;
  return left > max ? (left / 2 + 7) / 8 * 8 : left;
}

/** Every tile of the product g describes, in OpenBLAS's order for blocks P, Q (R = 104512). */
static void walk(const G *g, int P, int Q) {
  const int R = 104512, M = g->n, N = g->m, k = g->k;
  for (int js = 0; js < N; js += R) {
    int cols = N - js < R ? N - js : R;
    for (int ls = 0, kc; ls < k; ls += kc) {
      kc = block(k - ls, Q);
      int rows = block(M, P);
      for (int jjs = js, w; jjs < js + cols; jjs += w) {
        w = js + cols - jjs;
        w = w >= 12 ? 12 : w > 4 ? 4 : w;
        kernel(g, 0, rows, jjs, w, ls, kc);
      }
      for (int is = rows; is < M; is += rows) {
        rows = block(M - is, P);
        kernel(g, is, rows, js, cols, ls, kc);
      }
    }
  }
}

/** C = alpha·op(A)·op(B) + beta·C, row-major, in OpenBLAS's order for blocks P, Q. */
void gemm_order(int tA, int tB, int m, int n, int k, float alpha, const float *a, const float *b, float beta,
                float *c, int P, int Q, int twoChains) {
  G g = {tA, tB, m, n, k, twoChains, alpha, a, b, c, 0, 0};
  if (beta != 1.0f)
    for (size_t x = 0; x < (size_t)m * n; x++) c[x] = beta == 0.0f ? 0.0f : c[x] * beta;
  if (k == 0 || alpha == 0.0f) return;
  walk(&g, P, Q);
}
