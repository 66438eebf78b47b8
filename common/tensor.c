/* tensor.c - dtype table, exact f16/bf16 conversions, shape checks, buffers. */
#include "tensor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const struct { const char *name; size_t size; } dtypes[CL_NDTYPES] = {
    [CL_F32] = {"f32", 4}, [CL_F16] = {"f16", 2}, [CL_BF16] = {"bf16", 2},
    [CL_I32] = {"i32", 4}, [CL_U8] = {"u8", 1},
};

size_t cl_dtype_size(enum cl_dtype t) { return (unsigned)t < CL_NDTYPES ? dtypes[t].size : 0; }
const char *cl_dtype_name(enum cl_dtype t) { return (unsigned)t < CL_NDTYPES ? dtypes[t].name : "?"; }

int cl_dtype_parse(const char *s, size_t len, enum cl_dtype *out)
{
    for (int i = 0; i < CL_NDTYPES; i++) {
        if (strlen(dtypes[i].name) == len && memcmp(dtypes[i].name, s, len) == 0) {
            *out = (enum cl_dtype)i;
            return 0;
        }
    }
    return -1;
}

static uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

uint16_t cl_f32_to_f16(float f)
{
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) /* inf or nan: keep nan quiet and non-zero */
        return sign | 0x7c00u | (absx > 0x7f800000u ? 0x0200u | ((absx >> 13) & 0x3ffu) : 0);
    if (absx >= 0x477ff000u) /* rounds to >= 65520: overflow to inf */
        return sign | 0x7c00u;
    if (absx < 0x38800000u) { /* result is subnormal or zero in f16 */
        if (absx < 0x33000000u) /* below half the smallest subnormal: zero */
            return sign;
        uint32_t mant = (absx & 0x7fffffu) | 0x800000u;
        /* value = mant * 2^(e-150) and the f16 subnormal unit is 2^-24 */
        int shift = 126 - (int)(absx >> 23); /* 14..24 */
        uint32_t q = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1u)))
            q++;
        return sign | (uint16_t)q;
    }
    /* normal: rebias exponent, round 13 dropped bits to nearest even */
    uint32_t r = absx - 0x38000000u; /* exponent 127 -> 15 */
    uint32_t q = r >> 13;
    uint32_t rem = r & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (q & 1u)))
        q++; /* may carry into the exponent, which is correct rounding */
    return sign | (uint16_t)q;
}

float cl_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    if (exp == 0x1f)
        return bits_f32(sign | 0x7f800000u | (mant << 13));
    if (exp == 0) {
        if (mant == 0)
            return bits_f32(sign);
        float v = ldexpf((float)mant, -24); /* exact */
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t cl_f32_to_bf16(float f)
{
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) /* nan: keep it a quiet nan */
        return (uint16_t)((x >> 16) | 0x0040u);
    uint32_t lsb = (x >> 16) & 1u;
    x += 0x7fffu + lsb;
    return (uint16_t)(x >> 16);
}

float cl_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

int cl_shape_bytes(const int64_t *shape, int ndim, size_t elem_size, size_t max_bytes,
                   size_t *numel, size_t *nbytes)
{
    if (ndim < 0 || ndim > CL_MAX_DIMS)
        return -1;
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || shape[i] > CL_MAX_DIM)
            return -1;
        size_t d = (size_t)shape[i];
        if (d != 0 && n > SIZE_MAX / d)
            return -1;
        n *= d;
    }
    if (elem_size != 0 && n > SIZE_MAX / elem_size)
        return -1;
    if (n * elem_size > max_bytes)
        return -1;
    if (numel)
        *numel = n;
    if (nbytes)
        *nbytes = n * elem_size;
    return 0;
}

size_t cl_tensor_numel(const struct cl_tensor *t)
{
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= (size_t)t->shape[i];
    return n;
}

static void free_axes(struct cl_tensor *t)
{
    for (int i = 0; i < CL_MAX_DIMS; i++) {
        free(t->axes[i]);
        t->axes[i] = NULL;
    }
}

enum cl_status cl_tensor_reshape(struct cl_tensor *t, const char *name, enum cl_dtype dtype,
                                 int ndim, const int64_t *shape, struct cl_err *e)
{
    size_t nbytes;
    if (cl_shape_bytes(shape, ndim, cl_dtype_size(dtype), SIZE_MAX / 2, NULL, &nbytes) != 0)
        return cl_errf(e, CL_ERR_DATA, "tensor shape too large or invalid (rank %d)", ndim);
    if (name) {
        char *copy = strdup(name);
        if (!copy)
            return cl_errf(e, CL_ERR_NOMEM, "out of memory for tensor name");
        free(t->name);
        t->name = copy;
    }
    if (nbytes > t->cap || t->data == NULL) {
        size_t cap = (nbytes + 63) / 64 * 64;
        if (cap == 0)
            cap = 64;
        void *p = aligned_alloc(64, cap);
        if (!p)
            return cl_errf(e, CL_ERR_NOMEM, "out of memory allocating %zu bytes for tensor", nbytes);
        free(t->data);
        t->data = p;
        t->cap = cap;
    }
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < CL_MAX_DIMS; i++)
        t->shape[i] = i < ndim ? shape[i] : 0;
    t->nbytes = nbytes;
    free_axes(t);
    return CL_OK;
}

enum cl_status cl_tensor_set_axes(struct cl_tensor *t, const char *const *axes, struct cl_err *e)
{
    free_axes(t);
    if (!axes)
        return CL_OK;
    for (int i = 0; i < t->ndim; i++) {
        t->axes[i] = strdup(axes[i] ? axes[i] : "");
        if (!t->axes[i]) {
            free_axes(t);
            return cl_errf(e, CL_ERR_NOMEM, "out of memory for axis names");
        }
    }
    return CL_OK;
}

void cl_tensor_free(struct cl_tensor *t)
{
    if (!t)
        return;
    free(t->name);
    free(t->data);
    free_axes(t);
    memset(t, 0, sizeof *t);
}


/* F16C fast paths (x86-64 with F16C, checked at run time).  The hardware
 * rounds to nearest even and handles subnormals and infinities exactly as the
 * scalar code; only NaN payloads may differ (both stay NaN). */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define CL_HAVE_F16C_PATH 1
__attribute__((target("f16c,avx"))) static void f32_to_f16_f16c(unsigned char *d, const float *src, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm_storeu_si128((__m128i *)(d + 2 * i), h);
    }
    for (; i < n; i++) { uint16_t h = cl_f32_to_f16(src[i]); memcpy(d + 2 * i, &h, 2); }
}

__attribute__((target("f16c,avx"))) static void f16_to_f32_f16c(float *dst, const unsigned char *s, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + 2 * i))));
    for (; i < n; i++) { uint16_t h; memcpy(&h, s + 2 * i, 2); dst[i] = cl_f16_to_f32(h); }
}

static int have_f16c(void)
{
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx") && !getenv("CLIPLENS_REF_KERNELS");
    }
    return cached;
}
#endif

void cl_convert_to_f32(float *dst, const void *src, enum cl_dtype st, size_t n)
{
    const unsigned char *s = src;
    switch (st) {
    case CL_F32: memmove(dst, src, n * 4); break;
    case CL_F16:
#ifdef CL_HAVE_F16C_PATH
        if (have_f16c()) { f16_to_f32_f16c(dst, s, n); break; }
#endif
        for (size_t i = 0; i < n; i++) { uint16_t h; memcpy(&h, s + 2 * i, 2); dst[i] = cl_f16_to_f32(h); }
        break;
    case CL_BF16:
        for (size_t i = 0; i < n; i++) { uint16_t h; memcpy(&h, s + 2 * i, 2); dst[i] = cl_bf16_to_f32(h); }
        break;
    case CL_I32:
        for (size_t i = 0; i < n; i++) { int32_t v; memcpy(&v, s + 4 * i, 4); dst[i] = (float)v; }
        break;
    case CL_U8:
        for (size_t i = 0; i < n; i++) dst[i] = (float)s[i];
        break;
    }
}

static double clampd(double v, double lo, double hi) { return v < lo ? lo : v > hi ? hi : v; }

void cl_convert_from_f32(void *dst, enum cl_dtype dt, const float *src, size_t n)
{
    unsigned char *d = dst;
    switch (dt) {
    case CL_F32: memmove(dst, src, n * 4); break;
    case CL_F16:
#ifdef CL_HAVE_F16C_PATH
        if (have_f16c()) { f32_to_f16_f16c(d, src, n); break; }
#endif
        for (size_t i = 0; i < n; i++) { uint16_t h = cl_f32_to_f16(src[i]); memcpy(d + 2 * i, &h, 2); }
        break;
    case CL_BF16:
        for (size_t i = 0; i < n; i++) { uint16_t h = cl_f32_to_bf16(src[i]); memcpy(d + 2 * i, &h, 2); }
        break;
    case CL_I32:
        for (size_t i = 0; i < n; i++) {
            double v = isnan(src[i]) ? 0.0 : clampd(nearbyint(src[i]), -2147483648.0, 2147483647.0);
            int32_t x = (int32_t)v;
            memcpy(d + 4 * i, &x, 4);
        }
        break;
    case CL_U8:
        for (size_t i = 0; i < n; i++)
            d[i] = (unsigned char)(isnan(src[i]) ? 0.0 : clampd(nearbyint(src[i]), 0.0, 255.0));
        break;
    }
}

enum cl_status cl_tensor_convert(struct cl_tensor *out, const struct cl_tensor *t,
                                 enum cl_dtype dt, struct cl_err *e)
{
    enum cl_status s = cl_tensor_reshape(out, t->name, dt, t->ndim, t->shape, e);
    if (s != CL_OK)
        return s;
    if (t->axes[0] && (s = cl_tensor_set_axes(out, (const char *const *)t->axes, e)) != CL_OK)
        return s;
    size_t n = cl_tensor_numel(t);
    if (dt == t->dtype) {
        memcpy(out->data, t->data, t->nbytes);
    } else if (dt == CL_F32) {
        cl_convert_to_f32(out->data, t->data, t->dtype, n);
    } else if (t->dtype == CL_F32) {
        cl_convert_from_f32(out->data, dt, t->data, n);
    } else {
        /* via f32 in chunks: every dtype here is exactly representable in f32
         * except i32 beyond 2^24, which is rounded as f32 would */
        float buf[1024];
        size_t es = cl_dtype_size(t->dtype), ed = cl_dtype_size(dt);
        for (size_t i = 0; i < n; i += 1024) {
            size_t k = n - i < 1024 ? n - i : 1024;
            cl_convert_to_f32(buf, (const char *)t->data + i * es, t->dtype, k);
            cl_convert_from_f32((char *)out->data + i * ed, dt, buf, k);
        }
    }
    return CL_OK;
}
