/* test_stream.c - unit tests for tensors (dtype conversions), meta values and the tensor stream. */
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "../harness.h"
#include "stream.h"

/* ---------------------------------------------------------- conversions */

/* Reference: the nearest representable value by exhaustive comparison (ties to even mantissa). */
static uint16_t ref_f16(float f)
{
    if (isnan(f)) return 0x7e00;
    double x = f;
    uint16_t best = 0;
    double bd = INFINITY;
    uint16_t sign = signbit(f) ? 0x8000 : 0;
    double ax = fabs(x);
    if (ax >= 65520.0) return sign | 0x7c00;
    for (uint32_t h = 0; h < 0x7c00; h++) {
        double d = fabs((double)cl_f16_to_f32((uint16_t)h) - ax);
        if (d < bd || (d == bd && !(h & 1))) { bd = d; best = (uint16_t)h; }
    }
    return sign | best;
}

static void test_f16_roundtrip_all(void)
{
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = cl_f16_to_f32((uint16_t)h);
        uint16_t back = cl_f32_to_f16(f);
        if (isnan(f) ? !isnan(cl_f16_to_f32(back)) : back != h) bad++;
    }
    CHECKF(bad == 0, "%d f16 values do not survive f16->f32->f16", bad);
}

static void test_f16_rounding(void)
{
    CHECK(cl_f32_to_f16(1.0f + 0x1p-11f) == 0x3c00);            /* tie -> even (down) */
    CHECK(cl_f32_to_f16(1.0f + 3 * 0x1p-11f) == 0x3c02);        /* tie -> even (up) */
    CHECK(cl_f32_to_f16(65504.0f) == 0x7bff);
    CHECK(cl_f32_to_f16(65519.0f) == 0x7bff);
    CHECK(cl_f32_to_f16(65520.0f) == 0x7c00);
    CHECK(cl_f32_to_f16(0x1p-24f) == 0x0001);
    CHECK(cl_f32_to_f16(0x1p-25f) == 0x0000);                   /* tie to even zero */
    CHECK(cl_f32_to_f16(0x1.8p-25f) == 0x0001);
    CHECK(cl_f32_to_f16(-0.0f) == 0x8000);
    CHECK(cl_f32_to_f16(INFINITY) == 0x7c00);
    CHECK((cl_f32_to_f16(NAN) & 0x7c00) == 0x7c00 && (cl_f32_to_f16(NAN) & 0x3ff) != 0);
    /* random values against the exhaustive reference */
    uint64_t s = 88172645463325252ull;
    int bad = 0;
    for (int i = 0; i < 300; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        uint32_t bits = (uint32_t)s;
        float f;
        memcpy(&f, &bits, 4);
        if (isnan(f) || fabsf(f) > 70000.0f || fabsf(f) < 1e-9f) f = ldexpf((float)(s >> 40) / (float)(1 << 24), (int)(s % 40) - 25);
        if (cl_f32_to_f16(f) != ref_f16(f)) bad++;
    }
    CHECKF(bad == 0, "%d random floats rounded differently from the reference", bad);
}


/* The vectorised conversions (F16C where the CPU has it) equal the scalar ones. */
static void test_bulk_f16_equals_scalar(void)
{
    enum { N = 1 << 16 };
    static float buf[N], back[N];
    static uint16_t h[N];
    unsigned bad = 0;
    for (uint64_t base = 0; base < (1ull << 32); base += (uint64_t)997 * N) {
        for (int i = 0; i < N; i++) {
            uint32_t u = (uint32_t)(base + (uint64_t)i * 997);
            memcpy(&buf[i], &u, 4);
        }
        cl_convert_from_f32(h, CL_F16, buf, N - 3); /* odd length: vector body and scalar tail */
        for (int i = 0; i < N - 3; i++)
            if (h[i] != cl_f32_to_f16(buf[i]) && !isnan(buf[i])) bad++;
    }
    for (int i = 0; i < N; i++) h[i] = (uint16_t)i;
    cl_convert_to_f32(back, h, CL_F16, N);
    for (int i = 0; i < N; i++) {
        float r = cl_f16_to_f32((uint16_t)i);
        if (memcmp(&r, &back[i], 4) != 0 && !(isnan(r) && isnan(back[i]))) bad++;
    }
    CHECKF(bad == 0, "%u bulk conversions differ from the scalar ones", bad);
}

static void test_bf16(void)
{
    CHECK(cl_f32_to_bf16(1.0f) == 0x3f80);
    CHECK(cl_f32_to_bf16(1.0f + 0x1p-8f) == 0x3f80);          /* tie -> even */
    CHECK(cl_f32_to_bf16(1.0f + 3 * 0x1p-8f) == 0x3f82);
    CHECK(cl_bf16_to_f32(0x3f80) == 1.0f);
    CHECK(isnan(cl_bf16_to_f32(cl_f32_to_bf16(NAN))));
    CHECK(cl_f32_to_bf16(3.4e38f) == 0x7f80);                 /* rounds up to inf */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = cl_bf16_to_f32((uint16_t)h);
        if (!isnan(f) && cl_f32_to_bf16(f) != h) bad++;
    }
    CHECK(bad == 0);
}

static void test_shape_caps(void)
{
    int64_t ok[2] = {3, 4}, neg[1] = {-1}, huge[3] = {1LL << 40, 1LL << 40, 1LL << 40};
    size_t n, nb;
    CHECK(cl_shape_bytes(ok, 2, 4, 1000, &n, &nb) == 0 && n == 12 && nb == 48);
    CHECK(cl_shape_bytes(ok, 2, 4, 47, &n, &nb) != 0);
    CHECK(cl_shape_bytes(neg, 1, 4, SIZE_MAX, &n, &nb) != 0);
    CHECK(cl_shape_bytes(huge, 3, 4, SIZE_MAX, &n, &nb) != 0);
    CHECK(cl_shape_bytes(ok, 9, 4, SIZE_MAX, &n, &nb) != 0);
}

static void test_values(void)
{
    struct cl_value m = CL_VALUE_NIL, c;
    CHECK(cl_map_set_int(&m, "label", 3) == CL_OK);
    CHECK(cl_map_set_str(&m, "path", "a b.png") == CL_OK);
    CHECK(cl_map_set_float(&m, "x", 0.5) == CL_OK);
    CHECK(cl_map_set_int(&m, "label", 4) == CL_OK); /* replaces */
    int64_t v = 0;
    double d = 0;
    CHECK(cl_map_get_int(&m, "label", &v) == 0 && v == 4);
    CHECK(m.u.m.n == 3);
    CHECK(strcmp(cl_map_get_str(&m, "path"), "a b.png") == 0);
    CHECK(cl_map_get_float(&m, "x", &d) == 0 && d == 0.5);
    CHECK(cl_map_get_int(&m, "path", &v) != 0);
    CHECK(cl_value_copy(&c, &m) == CL_OK && cl_value_equal(&c, &m));
    cl_map_set_int(&c, "label", 5);
    CHECK(!cl_value_equal(&c, &m));
    char *t = cl_value_to_text(&m);
    CHECKF(t && strcmp(t, "{\"label\":4,\"path\":\"a b.png\",\"x\":0.5}") == 0, "%s", t);
    free(t);
    cl_value_free(&m);
    cl_value_free(&c);
}

/* -------------------------------------------------------------- streams */

struct membuf { char *p; size_t n; };

/* Write a stream of n items to memory with the given level. */
static struct membuf write_stream(int level, int n, const char *kind)
{
    struct membuf b = {0};
    FILE *fp = open_memstream(&b.p, &b.n);
    struct cl_header h;
    cl_header_init(&h, kind);
    h.model.present = 1;
    snprintf(h.model.name, sizeof h.model.name, "test-model");
    snprintf(h.model.layout, sizeof h.model.layout, "hf");
    h.model.layers = 2; h.model.heads = 4; h.model.width = 64; h.model.embed_dim = 32;
    h.model.patch = 8; h.model.image_size = 32;
    cl_map_set_str(&h.meta, "note", "unit test");
    struct cl_writer *w;
    struct cl_err e;
    CHECK(cl_writer_open(&w, fp, &h, level, &e) == CL_OK);
    struct cl_item it = {0};
    for (int i = 0; i < n; i++) {
        char id[16];
        snprintf(id, sizeof id, "img%d", i);
        cl_item_clear(&it);
        cl_item_set_id(&it, id, &e);
        cl_map_set_int(&it.meta, "label", i % 3);
        cl_map_set_str(&it.meta, "path", id);
        int64_t s1[2] = {2, 3}, s2[1] = {5};
        struct cl_tensor *t;
        CHECK(cl_item_add(&it, "heads", CL_F32, 2, s1, &t, &e) == CL_OK);
        for (int k = 0; k < 6; k++) ((float *)t->data)[k] = (float)(i * 10 + k) + 0.25f;
        const char *axes[2] = {"layer", "dim"};
        cl_tensor_set_axes(t, axes, &e);
        CHECK(cl_item_add(&it, "ids", CL_I32, 1, s2, &t, &e) == CL_OK);
        for (int k = 0; k < 5; k++) ((int32_t *)t->data)[k] = -i * k;
        CHECK(cl_writer_item(w, &it, &e) == CL_OK);
    }
    CHECK(cl_writer_close(w, &e) == CL_OK);
    fclose(fp);
    cl_item_free(&it);
    cl_header_free(&h);
    return b;
}

/* Read everything; returns the final status and the item count. */
static enum cl_status read_all(const void *p, size_t n, uint64_t *items, struct cl_err *e)
{
    struct cl_reader *r;
    enum cl_status s = cl_reader_open_mem(&r, p, n, "mem", e);
    *items = 0;
    if (s != CL_OK) return s;
    struct cl_item it = {0};
    while ((s = cl_reader_next(r, &it, e)) == CL_OK) (*items)++;
    cl_item_free(&it);
    cl_reader_close(r);
    return s;
}

static void test_roundtrip(void)
{
    for (int level = 0; level <= 3; level += 3) {
        struct membuf b = write_stream(level, 7, "image");
        struct cl_reader *r;
        struct cl_err e;
        CHECK(cl_reader_open_mem(&r, b.p, b.n, "mem", &e) == CL_OK);
        const struct cl_header *h = cl_reader_header(r);
        CHECK(strcmp(h->kind, "image") == 0 && h->model.present && h->model.layers == 2 && h->model.image_size == 32);
        CHECK(strcmp(cl_map_get_str(&h->meta, "note"), "unit test") == 0);
        struct cl_item it = {0};
        int i = 0;
        enum cl_status s;
        while ((s = cl_reader_next(r, &it, &e)) == CL_OK) {
            int64_t label;
            const struct cl_tensor *t = cl_item_get(&it, "heads"), *ids = cl_item_get(&it, "ids");
            CHECK(t && ids && t->dtype == CL_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3);
            CHECK(t && t->axes[0] && strcmp(t->axes[1], "dim") == 0);
            CHECK(t && ((float *)t->data)[5] == (float)(i * 10 + 5) + 0.25f);
            CHECK(ids && ((int32_t *)ids->data)[4] == -i * 4);
            CHECK(cl_map_get_int(&it.meta, "label", &label) == 0 && label == i % 3);
            i++;
        }
        CHECKF(s == CL_END, "%s", e.msg);
        CHECK(i == 7);
        cl_item_free(&it);
        cl_reader_close(r);
        free(b.p);
    }
}

static void test_truncation_every_offset(void)
{
    for (int level = 0; level <= 3; level += 3) {
        struct membuf b = write_stream(level, 3, "image");
        int wrong = 0;
        for (size_t cut = 0; cut < b.n; cut++) {
            uint64_t items;
            struct cl_err e;
            enum cl_status s = read_all(b.p, cut, &items, &e);
            if (s != CL_ERR_DATA) { wrong++; fprintf(stderr, "    level %d cut %zu: status %d\n", level, cut, s); }
        }
        CHECKF(wrong == 0, "level %d: %d of %zu cuts not reported as bad data", level, wrong, b.n);
        uint64_t items;
        struct cl_err e;
        CHECK(read_all(b.p, b.n, &items, &e) == CL_END && items == 3);
        free(b.p);
    }
}

static void test_concatenation(void)
{
    struct membuf a = write_stream(3, 2, "image"), b = write_stream(0, 3, "image"), c = write_stream(3, 1, "text");
    char *ab = malloc(a.n * 2 + b.n);
    memcpy(ab, a.p, a.n);
    memcpy(ab + a.n, b.p, b.n);
    memcpy(ab + a.n + b.n, a.p, a.n);
    uint64_t items;
    struct cl_err e;
    CHECKF(read_all(ab, a.n + b.n + a.n, &items, &e) == CL_END && items == 7, "%s", e.msg);
    /* a truncated first stream followed by a whole one is still an error */
    memcpy(ab, a.p, a.n - 1);
    memcpy(ab + a.n - 1, b.p, b.n);
    CHECK(read_all(ab, a.n - 1 + b.n, &items, &e) == CL_ERR_DATA);
    /* different kinds do not concatenate */
    char *ac = malloc(a.n + c.n);
    memcpy(ac, a.p, a.n);
    memcpy(ac + a.n, c.p, c.n);
    CHECK(read_all(ac, a.n + c.n, &items, &e) == CL_ERR_DATA && strstr(e.msg, "kind"));
    free(ab); free(ac); free(a.p); free(b.p); free(c.p);
}

/* Hand-made plain msgpack streams for the malformed cases. */
struct mk { msgpack_sbuffer sb; msgpack_packer pk; };
static void mk_init(struct mk *m) { msgpack_sbuffer_init(&m->sb); msgpack_packer_init(&m->pk, &m->sb, msgpack_sbuffer_write); }
static void mk_str(struct mk *m, const char *s) { msgpack_pack_str(&m->pk, strlen(s)); msgpack_pack_str_body(&m->pk, s, strlen(s)); }
static void mk_header(struct mk *m, int version)
{
    msgpack_pack_map(&m->pk, 4);
    mk_str(m, "cliplens"); msgpack_pack_int(&m->pk, version);
    mk_str(m, "kind"); mk_str(m, "x");
    mk_str(m, "model"); msgpack_pack_nil(&m->pk);
    mk_str(m, "meta"); msgpack_pack_map(&m->pk, 0);
}
static void mk_item(struct mk *m, const char *dtype, int ndim, const int64_t *shape, size_t nbytes)
{
    msgpack_pack_map(&m->pk, 3);
    mk_str(m, "id"); mk_str(m, "a");
    mk_str(m, "meta"); msgpack_pack_nil(&m->pk);
    mk_str(m, "t"); msgpack_pack_map(&m->pk, 1);
    mk_str(m, "x"); msgpack_pack_map(&m->pk, 3);
    mk_str(m, "dtype"); mk_str(m, dtype);
    mk_str(m, "shape"); msgpack_pack_array(&m->pk, (size_t)ndim);
    for (int i = 0; i < ndim; i++) msgpack_pack_int64(&m->pk, shape[i]);
    mk_str(m, "data"); msgpack_pack_bin(&m->pk, nbytes);
    char *zeros = calloc(1, nbytes + 1);
    msgpack_pack_bin_body(&m->pk, zeros, nbytes);
    free(zeros);
}
static void mk_trailer(struct mk *m, int n) { msgpack_pack_map(&m->pk, 1); mk_str(m, "end"); msgpack_pack_int(&m->pk, n); }

static enum cl_status mk_read(struct mk *m, struct cl_err *e)
{
    uint64_t items;
    enum cl_status s = read_all(m->sb.data, m->sb.size, &items, e);
    msgpack_sbuffer_destroy(&m->sb);
    return s;
}

static void test_malformed(void)
{
    struct mk m;
    struct cl_err e;
    int64_t s3[1] = {3}, absurd[4] = {1LL << 40, 1LL << 40, 1LL << 40, 1LL << 40};
    mk_init(&m); mk_header(&m, 1); mk_item(&m, "f32", 1, s3, 12); mk_trailer(&m, 1);
    CHECKF(mk_read(&m, &e) == CL_END, "%s", e.msg);
    mk_init(&m); mk_header(&m, 1); mk_item(&m, "f64", 1, s3, 24); mk_trailer(&m, 1);
    CHECK(mk_read(&m, &e) == CL_ERR_DATA && strstr(e.msg, "unknown dtype") && strstr(e.msg, "item 0"));
    mk_init(&m); mk_header(&m, 1); mk_item(&m, "f32", 1, s3, 11); mk_trailer(&m, 1);
    CHECK(mk_read(&m, &e) == CL_ERR_DATA && strstr(e.msg, "11 bytes"));
    mk_init(&m); mk_header(&m, 1); mk_item(&m, "f32", 4, absurd, 0); mk_trailer(&m, 1);
    CHECK(mk_read(&m, &e) == CL_ERR_DATA && strstr(e.msg, "absurd"));
    mk_init(&m); mk_header(&m, 1); mk_item(&m, "f32", 1, s3, 12); mk_trailer(&m, 2);
    CHECK(mk_read(&m, &e) == CL_ERR_DATA && strstr(e.msg, "count mismatch"));
    mk_init(&m); mk_header(&m, 1); mk_item(&m, "f32", 1, s3, 12);
    CHECK(mk_read(&m, &e) == CL_ERR_DATA && strstr(e.msg, "missing trailer"));
    mk_init(&m); mk_header(&m, 2); mk_trailer(&m, 0);
    CHECK(mk_read(&m, &e) == CL_ERR_UNSUPPORTED && strstr(e.msg, "version 2"));
    mk_init(&m); mk_trailer(&m, 0);
    CHECK(mk_read(&m, &e) == CL_ERR_DATA && strstr(e.msg, "bad magic"));
    mk_init(&m); mk_header(&m, 1); mk_item(&m, "f32", 1, s3, 12); mk_header(&m, 1); mk_trailer(&m, 0);
    CHECK(mk_read(&m, &e) == CL_ERR_DATA && strstr(e.msg, "before the trailer"));
    /* a map claiming 2^32-1 entries must not allocate for them */
    mk_init(&m); mk_header(&m, 1);
    unsigned char big[5] = {0xdf, 0xff, 0xff, 0xff, 0xff};
    msgpack_sbuffer_write(&m.sb, (const char *)big, 5);
    CHECK(mk_read(&m, &e) == CL_ERR_DATA);
    /* not a stream at all */
    CHECK(read_all("hello world", 11, &(uint64_t){0}, &e) == CL_ERR_DATA && strstr(e.msg, "bad magic"));
    CHECK(read_all("", 0, &(uint64_t){0}, &e) == CL_ERR_DATA && strstr(e.msg, "empty"));
}

static void test_corruption_never_crashes(void)
{
    struct membuf b = write_stream(3, 4, "image");
    int ok = 0, bad = 0;
    for (size_t i = 0; i < b.n; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            b.p[i] ^= (char)(1 << bit);
            uint64_t items;
            struct cl_err e;
            enum cl_status s = read_all(b.p, b.n, &items, &e);
            if (s == CL_END) ok++; else bad++;
            b.p[i] ^= (char)(1 << bit);
        }
    }
    /* the zstd checksum catches content flips; header bits may be harmless */
    CHECKF(bad > ok, "only %d of %d corruptions detected", bad, ok + bad);
    free(b.p);
}

TEST_MAIN("stream",
    TEST(test_f16_roundtrip_all), TEST(test_f16_rounding), TEST(test_bulk_f16_equals_scalar), TEST(test_bf16), TEST(test_shape_caps),
    TEST(test_values), TEST(test_roundtrip), TEST(test_truncation_every_offset), TEST(test_concatenation),
    TEST(test_malformed), TEST(test_corruption_never_crashes))
