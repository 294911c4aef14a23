/*
 * cgen kernel library: portable C99, no allocation, no doubles.
 *
 * The generator copies only the sections a model uses into model.c (so gcc's
 * -Wunused-function stays quiet and the image holds no dead code). A section starts with
 * a line "@kernel NAME [requires A B]" inside a comment and runs to the next such line.
 * Layout is NCHW with batch 1; int8 activations are always signed: uint8 tensors are
 * shifted by -128 together with their zero point, which leaves (q - zp) unchanged.
 */

/* @kernel clamp_f32 */
static float clamp_f32(float v, float lo, float hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

/* @kernel conv2d_f32 requires clamp_f32 */
static void conv2d_f32(const float *x, const float *w, const float *bias, float *y,
                       int c, int h, int wd, int m, int oh, int ow, int kh, int kw,
                       int sh, int sw, int pt, int pl, int groups, float lo, float hi)
{
    const int cg = c / groups, mg = m / groups;
    int oc, oy, ox, ic, ky, kx;
    for (oc = 0; oc < m; ++oc) {
        const int g = oc / mg;
        const float *wo = w + (size_t)oc * cg * kh * kw;
        for (oy = 0; oy < oh; ++oy) {
            for (ox = 0; ox < ow; ++ox) {
                float acc = bias ? bias[oc] : 0.0f;
                for (ic = 0; ic < cg; ++ic) {
                    const float *xc = x + (size_t)(g * cg + ic) * h * wd;
                    const float *wc = wo + (size_t)ic * kh * kw;
                    for (ky = 0; ky < kh; ++ky) {
                        const int iy = oy * sh - pt + ky;
                        if (iy < 0 || iy >= h) {
                            continue;
                        }
                        for (kx = 0; kx < kw; ++kx) {
                            const int ix = ox * sw - pl + kx;
                            if (ix >= 0 && ix < wd) {
                                acc += xc[iy * wd + ix] * wc[ky * kw + kx];
                            }
                        }
                    }
                }
                y[((size_t)oc * oh + oy) * ow + ox] = clamp_f32(acc, lo, hi);
            }
        }
    }
}

/* @kernel dense_f32 requires clamp_f32 */
/* y[r][j] = bias[r*bias_rs + j] + sum_i x[r*xs_r + i*xs_i] * w[j][i]; w is stored [n][k]. */
static void dense_f32(const float *x, const float *w, const float *bias, float *y, int rows,
                      int k, int n, int xs_r, int xs_i, int bias_rs, float lo, float hi)
{
    int r, j, i;
    for (r = 0; r < rows; ++r) {
        for (j = 0; j < n; ++j) {
            const float *wj = w + (size_t)j * k;
            const float *xr = x + (size_t)r * xs_r;
            float acc = bias ? bias[r * bias_rs + j] : 0.0f;
            for (i = 0; i < k; ++i) {
                acc += xr[i * xs_i] * wj[i];
            }
            y[(size_t)r * n + j] = clamp_f32(acc, lo, hi);
        }
    }
}

/* @kernel binary_f32 */
/* op: 0 add, 1 mul, 2 sub, 3 div; 4-D loop with per-operand strides (0 = broadcast). */
static void binary_f32(const float *a, const float *b, float *y, int op, const int *dims,
                       const int *sa, const int *sb)
{
    int i0, i1, i2, i3;
    size_t o = 0;
    for (i0 = 0; i0 < dims[0]; ++i0) {
        for (i1 = 0; i1 < dims[1]; ++i1) {
            for (i2 = 0; i2 < dims[2]; ++i2) {
                for (i3 = 0; i3 < dims[3]; ++i3) {
                    const float va = a[i0 * sa[0] + i1 * sa[1] + i2 * sa[2] + i3 * sa[3]];
                    const float vb = b[i0 * sb[0] + i1 * sb[1] + i2 * sb[2] + i3 * sb[3]];
                    float v;
                    switch (op) {
                    case 0: v = va + vb; break;
                    case 1: v = va * vb; break;
                    case 2: v = va - vb; break;
                    default: v = va / vb; break;
                    }
                    y[o++] = v;
                }
            }
        }
    }
}

/* @kernel unary_f32 requires clamp_f32 */
/* kind: 0 clamp to [lo, hi] (Relu, Clip), 1 sigmoid, 2 tanh. */
static void unary_f32(const float *x, float *y, int n, int kind, float lo, float hi)
{
    int i;
    for (i = 0; i < n; ++i) {
        const float v = x[i];
        if (kind == 0) {
            y[i] = clamp_f32(v, lo, hi);
        } else if (kind == 1) {
            y[i] = 1.0f / (1.0f + expf(-v));
        } else {
            y[i] = tanhf(v);
        }
    }
}

/* @kernel softmax_f32 */
static void softmax_f32(const float *x, float *y, int rows, int cols)
{
    int r, i;
    for (r = 0; r < rows; ++r) {
        const float *xr = x + (size_t)r * cols;
        float *yr = y + (size_t)r * cols;
        float mx = xr[0], sum = 0.0f;
        for (i = 1; i < cols; ++i) {
            mx = xr[i] > mx ? xr[i] : mx;
        }
        for (i = 0; i < cols; ++i) {
            yr[i] = expf(xr[i] - mx);
            sum += yr[i];
        }
        for (i = 0; i < cols; ++i) {
            yr[i] /= sum;
        }
    }
}

/* @kernel pool2d_f32 */
/* Max or average pooling; padded cells never win a max and count only with include_pad. */
static void pool2d_f32(const float *x, float *y, int c, int h, int w, int oh, int ow, int kh,
                       int kw, int sh, int sw, int pt, int pl, int is_max, int include_pad)
{
    int ch, oy, ox, ky, kx;
    for (ch = 0; ch < c; ++ch) {
        const float *xc = x + (size_t)ch * h * w;
        for (oy = 0; oy < oh; ++oy) {
            for (ox = 0; ox < ow; ++ox) {
                float acc = is_max ? -3.402823466e+38f : 0.0f;
                int count = 0;
                for (ky = 0; ky < kh; ++ky) {
                    const int iy = oy * sh - pt + ky;
                    for (kx = 0; kx < kw; ++kx) {
                        const int ix = ox * sw - pl + kx;
                        if (iy < 0 || iy >= h || ix < 0 || ix >= w) {
                            continue;
                        }
                        ++count;
                        if (is_max) {
                            acc = xc[iy * w + ix] > acc ? xc[iy * w + ix] : acc;
                        } else {
                            acc += xc[iy * w + ix];
                        }
                    }
                }
                if (!is_max) {
                    acc /= (float)(include_pad ? kh * kw : (count > 0 ? count : 1));
                }
                y[((size_t)ch * oh + oy) * ow + ox] = acc;
            }
        }
    }
}

/* @kernel global_avgpool_f32 */
static void global_avgpool_f32(const float *x, float *y, int c, int hw)
{
    int ch, i;
    for (ch = 0; ch < c; ++ch) {
        float acc = 0.0f;
        for (i = 0; i < hw; ++i) {
            acc += x[(size_t)ch * hw + i];
        }
        y[ch] = acc / (float)hw;
    }
}

/* @kernel affine_f32 */
/* Per-channel y = x * scale[c] + shift[c]: a BatchNormalization that could not be folded. */
static void affine_f32(const float *x, const float *scale, const float *shift, float *y, int c,
                       int inner)
{
    int ch, i;
    for (ch = 0; ch < c; ++ch) {
        for (i = 0; i < inner; ++i) {
            const size_t o = (size_t)ch * inner + i;
            y[o] = x[o] * scale[ch] + shift[ch];
        }
    }
}

/* @kernel quantize_f32 */
/* Division (not multiplication by 1/scale) matches ONNX QuantizeLinear bit for bit. */
static void quantize_f32(const float *x, int8_t *y, int n, float scale, int zp)
{
    int i;
    for (i = 0; i < n; ++i) {
        float v = roundf(x[i] / scale) + (float)zp;
        v = v < -128.0f ? -128.0f : (v > 127.0f ? 127.0f : v);
        y[i] = (int8_t)v;
    }
}

/* @kernel dequantize_f32 */
static void dequantize_f32(const int8_t *x, float *y, int n, float scale, int zp)
{
    int i;
    for (i = 0; i < n; ++i) {
        y[i] = (float)((int)x[i] - zp) * scale;
    }
}

/* @kernel requant_q31 */
/*
 * TFLite MultiplyByQuantizedMultiplier: x * mult * 2^shift / 2^31 with round-to-nearest.
 * mult is a Q31 fixed-point value in [2^30, 2^31); shift > 0 shifts left, < 0 right.
 */
static int32_t requant_q31(int32_t x, int32_t mult, int shift)
{
    const int left = shift > 0 ? shift : 0;
    const int right = shift > 0 ? 0 : -shift;
    int64_t a = (int64_t)x * ((int64_t)1 << left);
    int64_t p, nudge;
    int32_t hi;
    if (a > INT32_MAX) {
        a = INT32_MAX;
    } else if (a < INT32_MIN) {
        a = INT32_MIN;
    }
    p = a * (int64_t)mult;
    nudge = p >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    hi = (int32_t)((p + nudge) / ((int64_t)1 << 31));
    if (right > 0) {
        const int32_t mask = (int32_t)(((int64_t)1 << right) - 1);
        const int32_t rem = hi & mask;
        const int32_t threshold = (mask >> 1) + (hi < 0 ? 1 : 0);
        hi = (hi >> right) + (rem > threshold ? 1 : 0);
    }
    return hi;
}

/* @kernel store_s8 requires requant_q31 */
static int8_t store_s8(int32_t acc, int32_t mult, int shift, int zp, int lo, int hi)
{
    int32_t v = requant_q31(acc, mult, shift) + zp;
    v = v < lo ? lo : (v > hi ? hi : v);
    return (int8_t)v;
}

/* @kernel conv2d_s8 requires store_s8 */
/* int8 convolution; padding contributes zero because it stands for the input zero point. */
static void conv2d_s8(const int8_t *x, const int8_t *w, const int32_t *bias, int8_t *y, int c,
                      int h, int wd, int m, int oh, int ow, int kh, int kw, int sh, int sw,
                      int pt, int pl, int groups, int zx, const int32_t *mult,
                      const int8_t *shift, int zy, int lo, int hi)
{
    const int cg = c / groups, mg = m / groups;
    int oc, oy, ox, ic, ky, kx;
    for (oc = 0; oc < m; ++oc) {
        const int g = oc / mg;
        const int8_t *wo = w + (size_t)oc * cg * kh * kw;
        for (oy = 0; oy < oh; ++oy) {
            for (ox = 0; ox < ow; ++ox) {
                int32_t acc = bias ? bias[oc] : 0;
                for (ic = 0; ic < cg; ++ic) {
                    const int8_t *xc = x + (size_t)(g * cg + ic) * h * wd;
                    const int8_t *wc = wo + (size_t)ic * kh * kw;
                    for (ky = 0; ky < kh; ++ky) {
                        const int iy = oy * sh - pt + ky;
                        if (iy < 0 || iy >= h) {
                            continue;
                        }
                        for (kx = 0; kx < kw; ++kx) {
                            const int ix = ox * sw - pl + kx;
                            if (ix >= 0 && ix < wd) {
                                acc += ((int32_t)xc[iy * wd + ix] - zx) * wc[ky * kw + kx];
                            }
                        }
                    }
                }
                y[((size_t)oc * oh + oy) * ow + ox] =
                    store_s8(acc, mult[oc], shift[oc], zy, lo, hi);
            }
        }
    }
}

/* @kernel dense_s8 requires store_s8 */
/* int8 fully connected layer; w is stored [n][k] (one row per output feature). */
static void dense_s8(const int8_t *x, const int8_t *w, const int32_t *bias, int8_t *y, int rows,
                     int k, int n, int zx, const int32_t *mult, const int8_t *shift, int zy,
                     int lo, int hi)
{
    int r, j, i;
    for (r = 0; r < rows; ++r) {
        const int8_t *xr = x + (size_t)r * k;
        for (j = 0; j < n; ++j) {
            const int8_t *wj = w + (size_t)j * k;
            int32_t acc = bias ? bias[j] : 0;
            for (i = 0; i < k; ++i) {
                acc += ((int32_t)xr[i] - zx) * wj[i];
            }
            y[(size_t)r * n + j] = store_s8(acc, mult[j], shift[j], zy, lo, hi);
        }
    }
}

/* @kernel add_s8 requires store_s8 */
/* TFLite-style int8 addition: both inputs are rescaled to a common 2^20-scaled grid first. */
static void add_s8(const int8_t *a, const int8_t *b, int8_t *y, int n, int za, int32_t ma,
                   int sa, int zb, int32_t mb, int sb, int zy, int32_t my, int sy, int lo,
                   int hi)
{
    int i;
    for (i = 0; i < n; ++i) {
        const int32_t va = requant_q31(((int32_t)a[i] - za) * (1 << 20), ma, sa);
        const int32_t vb = requant_q31(((int32_t)b[i] - zb) * (1 << 20), mb, sb);
        y[i] = store_s8(va + vb, my, sy, zy, lo, hi);
    }
}

/* @kernel requant_s8 requires store_s8 */
/* Elementwise rescale with clamp: a quantized Relu/Clip or a change of scale. */
static void requant_s8(const int8_t *x, int8_t *y, int n, int zx, int32_t mult, int shift, int zy,
                       int lo, int hi)
{
    int i;
    for (i = 0; i < n; ++i) {
        y[i] = store_s8((int32_t)x[i] - zx, mult, shift, zy, lo, hi);
    }
}

/* @kernel pool2d_s8 requires store_s8 */
/* Max pooling keeps the input's scale; average pooling rounds the mean, then rescales. */
static void pool2d_s8(const int8_t *x, int8_t *y, int c, int h, int w, int oh, int ow, int kh,
                      int kw, int sh, int sw, int pt, int pl, int is_max, int include_pad,
                      int zx, int32_t mult, int shift, int zy)
{
    int ch, oy, ox, ky, kx;
    for (ch = 0; ch < c; ++ch) {
        const int8_t *xc = x + (size_t)ch * h * w;
        for (oy = 0; oy < oh; ++oy) {
            for (ox = 0; ox < ow; ++ox) {
                int32_t acc = is_max ? -128 : 0;
                int32_t count = 0;
                for (ky = 0; ky < kh; ++ky) {
                    const int iy = oy * sh - pt + ky;
                    for (kx = 0; kx < kw; ++kx) {
                        const int ix = ox * sw - pl + kx;
                        if (iy < 0 || iy >= h || ix < 0 || ix >= w) {
                            continue;
                        }
                        ++count;
                        if (is_max) {
                            acc = xc[iy * w + ix] > acc ? xc[iy * w + ix] : acc;
                        } else {
                            acc += (int32_t)xc[iy * w + ix] - zx;
                        }
                    }
                }
                if (!is_max) {
                    const int32_t div = include_pad ? kh * kw : (count > 0 ? count : 1);
                    acc = (acc >= 0 ? acc + div / 2 : acc - div / 2) / div;
                    acc = requant_q31(acc, mult, shift) + zy;
                    acc = acc < -128 ? -128 : (acc > 127 ? 127 : acc);
                }
                y[((size_t)ch * oh + oy) * ow + ox] = (int8_t)acc;
            }
        }
    }
}

/* @kernel global_avgpool_s8 requires store_s8 */
/* mult/shift encode s_in / (s_out * hw), so the mean costs a single rounding. */
static void global_avgpool_s8(const int8_t *x, int8_t *y, int c, int hw, int zx, int32_t mult,
                              int shift, int zy)
{
    int ch, i;
    for (ch = 0; ch < c; ++ch) {
        int32_t acc = 0;
        for (i = 0; i < hw; ++i) {
            acc += (int32_t)x[(size_t)ch * hw + i] - zx;
        }
        y[ch] = store_s8(acc, mult, shift, zy, -128, 127);
    }
}
