// Data movement in JS for the compute layer: a blocked transpose, and im2col / col2im
// for NHWC convolutions: a convolution is then one GEMM,
//   out[n·oh·ow, cout] = col[n·oh·ow, kh·kw·cin] · W[kh·kw·cin, cout]   (W in HWIO order),
// its filter gradient colᵀ·dy, and its input gradient col2im(dy·Wᵀ). Used by the tfjs
// kernel fixes (backend) and by the CNN's own kernels (models/cnn).

/** The geometry of one NHWC 2-D convolution or pooling window. */
export interface ConvGeom {
  n: number;
  h: number;
  w: number;
  c: number;
  kh: number;
  kw: number;
  sh: number;
  sw: number;
  dh: number;
  dw: number;
  /** Padding before the first row / column. */
  pt: number;
  pl: number;
  oh: number;
  ow: number;
}

/** A stride-s, dilation-1 geometry with symmetric padding p (the CNN's convs and pools). */
export function geom(n: number, h: number, w: number, c: number, k: number, s: number, p: number): ConvGeom {
  const oh = Math.floor((h + 2 * p - k) / s) + 1, ow = Math.floor((w + 2 * p - k) / s) + 1;
  return { n, h, w, c, kh: k, kw: k, sh: s, sw: s, dh: 1, dw: 1, pt: p, pl: p, oh, ow };
}

/** Rows × columns of the im2col matrix. */
export function colShape(g: ConvGeom): [number, number] {
  return [g.n * g.oh * g.ow, g.kh * g.kw * g.c];
}

/** col[row, (ky·kw + kx)·c + ci] = x[n, oy·sh − pt + ky·dh, ox·sw − pl + kx·dw, ci], 0 outside. */
export function im2col(x: Float32Array, g: ConvGeom, col: Float32Array): void {
  const { n, h, w, c, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow } = g;
  let dst = 0;
  for (let b = 0; b < n; b++) {
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        for (let ky = 0; ky < kh; ky++) {
          const iy = oy * sh - pt + ky * dh;
          for (let kx = 0; kx < kw; kx++) {
            const ix = ox * sw - pl + kx * dw;
            if (iy < 0 || iy >= h || ix < 0 || ix >= w) {
              col.fill(0, dst, dst + c);
            } else {
              const src = ((b * h + iy) * w + ix) * c;
              for (let i = 0; i < c; i++) col[dst + i] = x[src + i];
            }
            dst += c;
          }
        }
      }
    }
  }
}

/** The adjoint of im2col: dx = Σ over windows of dcol (dx is overwritten). */
export function col2im(dcol: Float32Array, g: ConvGeom, dx: Float32Array): void {
  const { n, h, w, c, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow } = g;
  dx.fill(0, 0, n * h * w * c);
  let src = 0;
  for (let b = 0; b < n; b++) {
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        for (let ky = 0; ky < kh; ky++) {
          const iy = oy * sh - pt + ky * dh;
          for (let kx = 0; kx < kw; kx++) {
            const ix = ox * sw - pl + kx * dw;
            if (iy >= 0 && iy < h && ix >= 0 && ix < w) {
              const dst = ((b * h + iy) * w + ix) * c;
              for (let i = 0; i < c; i++) dx[dst + i] += dcol[src + i];
            }
            src += c;
          }
        }
      }
    }
  }
}

/**
 * out[cols × rows] = xᵀ for a row-major x[rows × cols], in 16×16 tiles written along
 * out's rows (plain tiles thrash the cache when rows is a power of two, as im2col's are).
 */
export function transpose(x: Float32Array, rows: number, cols: number, out: Float32Array): void {
  const B = 16;
  for (let c0 = 0; c0 < cols; c0 += B) {
    const c1 = Math.min(c0 + B, cols);
    for (let r0 = 0; r0 < rows; r0 += B) {
      const r1 = Math.min(r0 + B, rows);
      for (let c = c0; c < c1; c++) {
        const o = c * rows;
        for (let r = r0; r < r1; r++) out[o + r] = x[r * cols + c];
      }
    }
  }
}
