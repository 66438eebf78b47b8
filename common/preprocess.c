/* preprocess.c - Pillow-exact bicubic resize, torchvision center crop, normalisation. */
#include "preprocess.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PRECISION_BITS (32 - 8 - 2) /* Pillow's fixed-point fraction bits for 8-bit images */

/* Pillow's bicubic kernel, a = -0.5, support 2. */
static double bicubic(double x)
{
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

/* Resampling taps along one axis for outputs o0 .. o0+n-1 of an in_size -> out_size
 * resize: output i reads inputs first[i] .. first[i]+count[i]-1 with weights
 * w[i * ksize + t] (fixed point, PRECISION_BITS fraction bits). */
struct taps {
    int n, ksize;
    int *first;  /* [n] */
    int *count;  /* [n] */
    int32_t *w;  /* [n, ksize] */
};

static void taps_free(struct taps *t)
{
    free(t->first);
    free(t->count);
    free(t->w);
    memset(t, 0, sizeof *t);
}

/* As Pillow's precompute_coeffs + normalize_coeffs_8bpc, for the box (0, in_size). */
static enum cl_status taps_build(struct taps *t, int in_size, int out_size, int o0, int n,
                                 struct cl_err *e)
{
    double scale = (double)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 2.0 * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    memset(t, 0, sizeof *t);
    t->n = n;
    t->ksize = ksize;
    t->first = malloc(sizeof *t->first * (size_t)n);
    t->count = malloc(sizeof *t->count * (size_t)n);
    t->w = malloc(sizeof *t->w * (size_t)n * (size_t)ksize);
    double *k = malloc(sizeof *k * (size_t)ksize); /* [ksize] one output's weights */
    if (!t->first || !t->count || !t->w || !k) {
        free(k);
        taps_free(t);
        return cl_errf(e, CL_ERR_NOMEM, "resize: out of memory for %d x %d filter taps", n, ksize);
    }
    double ss = 1.0 / filterscale;
    for (int i = 0; i < n; i++) {
        int xx = o0 + i;
        double center = (xx + 0.5) * scale;
        int xmin = (int)(center - support + 0.5); /* truncation toward zero, as Pillow */
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        double ww = 0.0;
        for (int x = 0; x < xmax; x++) {
            k[x] = bicubic((x + xmin - center + 0.5) * ss);
            ww += k[x];
        }
        int32_t *kw = t->w + (size_t)i * ksize;
        for (int x = 0; x < xmax; x++) {
            double v = ww != 0.0 ? k[x] / ww : k[x];
            kw[x] = v < 0 ? (int32_t)(-0.5 + v * (1 << PRECISION_BITS))
                          : (int32_t)(0.5 + v * (1 << PRECISION_BITS));
        }
        t->first[i] = xmin;
        t->count[i] = xmax;
    }
    free(k);
    return CL_OK;
}

/* Fixed-point accumulator -> 8 bits, rounding already added; clamped as Pillow's clip8. */
static inline uint8_t clip8(int32_t v)
{
    if (v >= (1 << PRECISION_BITS << 8)) return 255;
    if (v <= 0) return 0;
    return (uint8_t)(v >> PRECISION_BITS);
}

/* Horizontal pass: rows of src (stride src_stride bytes, RGB) -> dst [rows, t->n, 3]. */
static void pass_horizontal(const uint8_t *src, size_t src_stride, int rows,
                            const struct taps *t, uint8_t *dst)
{
    for (int y = 0; y < rows; y++) {
        const uint8_t *row = src + (size_t)y * src_stride;
        uint8_t *out = dst + (size_t)y * t->n * 3;
        for (int i = 0; i < t->n; i++) {
            const int32_t *k = t->w + (size_t)i * t->ksize;
            const uint8_t *p = row + (size_t)t->first[i] * 3;
            int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
            for (int x = 0; x < t->count[i]; x++) {
                s0 += p[3 * x] * k[x];
                s1 += p[3 * x + 1] * k[x];
                s2 += p[3 * x + 2] * k[x];
            }
            out[3 * i] = clip8(s0);
            out[3 * i + 1] = clip8(s1);
            out[3 * i + 2] = clip8(s2);
        }
    }
}

/* Vertical pass: src rows (stride src_stride, row 0 = input row `base`), width w pixels
 * -> dst [t->n, w, 3]. acc is scratch [w * 3]. */
static void pass_vertical(const uint8_t *src, size_t src_stride, int base, int w,
                          const struct taps *t, uint8_t *dst, int32_t *acc)
{
    int n = w * 3;
    for (int i = 0; i < t->n; i++) {
        const int32_t *k = t->w + (size_t)i * t->ksize;
        for (int j = 0; j < n; j++) acc[j] = 1 << (PRECISION_BITS - 1);
        for (int y = 0; y < t->count[i]; y++) {
            const uint8_t *row = src + (size_t)(t->first[i] + y - base) * src_stride;
            int32_t ky = k[y];
            for (int j = 0; j < n; j++) acc[j] += row[j] * ky;
        }
        uint8_t *out = dst + (size_t)i * n;
        for (int j = 0; j < n; j++) out[j] = clip8(acc[j]);
    }
}

/* The window [y0, y0+ch) x [x0, x0+cw) of Pillow's BICUBIC resize of src [h, w, 3] to
 * out_w x out_h, into dst [ch, cw, 3].  Each output pixel depends only on its own row's
 * and column's taps, so the window equals the same region of the full resize. */
static enum cl_status resize_window(const uint8_t *src, int w, int h, int out_w, int out_h,
                                    int x0, int y0, int cw, int ch, uint8_t *dst,
                                    struct cl_err *e)
{
    int need_h = out_w != w, need_v = out_h != h; /* Pillow skips an unchanged axis */
    struct taps th = {0}, tv = {0};
    uint8_t *tmp = NULL; /* [rows, cw, 3] horizontal pass output */
    int32_t *acc = NULL; /* [cw * 3] vertical accumulators */
    enum cl_status s = CL_OK;

    /* Source rows the vertical pass reads: [r0, r1). */
    int r0 = y0, r1 = y0 + ch;
    if (need_v) {
        if ((s = taps_build(&tv, h, out_h, y0, ch, e))) goto done;
        r0 = tv.first[0];
        r1 = tv.first[ch - 1] + tv.count[ch - 1];
    }
    const uint8_t *plane = src + ((size_t)r0 * w + x0) * 3; /* row r0, column x0 */
    size_t stride = (size_t)w * 3;
    if (need_h) {
        if ((s = taps_build(&th, w, out_w, x0, cw, e))) goto done;
        tmp = malloc((size_t)(r1 - r0) * cw * 3);
        if (!tmp) { s = cl_errf(e, CL_ERR_NOMEM, "resize: out of memory"); goto done; }
        pass_horizontal(src + (size_t)r0 * stride, stride, r1 - r0, &th, tmp);
        plane = tmp;
        stride = (size_t)cw * 3;
    }
    if (need_v) {
        acc = malloc(sizeof *acc * (size_t)cw * 3);
        if (!acc) { s = cl_errf(e, CL_ERR_NOMEM, "resize: out of memory"); goto done; }
        pass_vertical(plane, stride, r0, cw, &tv, dst, acc);
    } else {
        for (int y = 0; y < ch; y++)
            memcpy(dst + (size_t)y * cw * 3, plane + (size_t)y * stride, (size_t)cw * 3);
    }
done:
    taps_free(&th);
    taps_free(&tv);
    free(tmp);
    free(acc);
    return s;
}

void cl_resize_dims(int w, int h, int size, int *out_w, int *out_h)
{
    int shorter = w <= h ? w : h, longer = w <= h ? h : w;
    int new_long = (int)((double)size * longer / shorter); /* truncated, as torchvision */
    *out_w = w <= h ? size : new_long;
    *out_h = w <= h ? new_long : size;
}

/* round(d / 2.0) with Python's half-to-even rounding, for d >= 0. */
static int half_even(int d)
{
    int k = d / 2;
    return (d & 1) && (k & 1) ? k + 1 : k;
}

void cl_center_crop_offsets(int w, int h, int crop_w, int crop_h, int *left, int *top)
{
    *left = half_even(w - crop_w);
    *top = half_even(h - crop_h);
}

/* Sides of a full resize's input or output: positive and small enough that every
 * index and fixed-point sum stays in int (outputs may exceed the decode cap). */
static int dims_ok(int w, int h)
{
    return w >= 1 && h >= 1 && w <= CL_IMAGE_MAX_SIDE * 32 && h <= CL_IMAGE_MAX_SIDE * 32;
}

enum cl_status cl_resize_bicubic_u8(const uint8_t *src, int w, int h, uint8_t *dst,
                                    int out_w, int out_h, struct cl_err *e)
{
    if (!dims_ok(w, h) || !dims_ok(out_w, out_h))
        return cl_errf(e, CL_ERR_USAGE, "resize: bad sizes %dx%d -> %dx%d", w, h, out_w, out_h);
    return resize_window(src, w, h, out_w, out_h, 0, 0, out_w, out_h, dst, e);
}

enum cl_status cl_center_crop(const uint8_t *src, int w, int h, uint8_t *dst, int crop_w,
                              int crop_h, struct cl_err *e)
{
    if (crop_w < 1 || crop_h < 1 || crop_w > w || crop_h > h)
        return cl_errf(e, CL_ERR_USAGE, "center crop: %dx%d does not fit in %dx%d",
                       crop_w, crop_h, w, h);
    int left, top;
    cl_center_crop_offsets(w, h, crop_w, crop_h, &left, &top);
    for (int y = 0; y < crop_h; y++)
        memcpy(dst + (size_t)y * crop_w * 3, src + ((size_t)(top + y) * w + left) * 3,
               (size_t)crop_w * 3);
    return CL_OK;
}

enum cl_status cl_resize_crop_u8(const struct cl_image *img, int size, uint8_t *out,
                                 struct cl_err *e)
{
    if (!img || !img->rgb || img->w < 1 || img->h < 1)
        return cl_errf(e, CL_ERR_USAGE, "preprocess: empty image");
    if (size < 1 || size > CL_IMAGE_MAX_SIDE)
        return cl_errf(e, CL_ERR_USAGE, "preprocess: size %d outside 1..%d", size,
                       CL_IMAGE_MAX_SIDE);
    int rw, rh, left, top;
    cl_resize_dims(img->w, img->h, size, &rw, &rh);
    cl_center_crop_offsets(rw, rh, size, size, &left, &top);
    return resize_window(img->rgb, img->w, img->h, rw, rh, left, top, size, size, out, e);
}

enum cl_status cl_preprocess(const struct cl_image *img, int size, const float mean[3],
                             const float std[3], float *out, struct cl_err *e)
{
    if (size < 1 || size > CL_IMAGE_MAX_SIDE)
        return cl_errf(e, CL_ERR_USAGE, "preprocess: size %d outside 1..%d", size,
                       CL_IMAGE_MAX_SIDE);
    size_t n = (size_t)size * size;
    uint8_t *px = malloc(n * 3); /* [size, size, 3] */
    if (!px) return cl_errf(e, CL_ERR_NOMEM, "preprocess: out of memory");
    enum cl_status s = cl_resize_crop_u8(img, size, px, e);
    if (s == CL_OK) {
        for (int c = 0; c < 3; c++) {
            float *plane = out + (size_t)c * n; /* [size, size] */
            for (size_t i = 0; i < n; i++)
                plane[i] = ((float)px[3 * i + c] / 255.0f - mean[c]) / std[c];
        }
    }
    free(px);
    return s;
}
