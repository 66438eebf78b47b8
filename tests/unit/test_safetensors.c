/* test_safetensors.c - the safetensors reader on a good file and on hand-made hostile ones. */
#include "../harness.h"
#include "safetensors.h"

#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[64];

/* Write 8-byte LE header length + header + data; returns the path (static buffer). */
static const char *write_file(const char *name, uint64_t hlen, const char *header,
                              const void *data, size_t dlen)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        return path;
    unsigned char le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (unsigned char)(hlen >> (8 * i));
    fwrite(le, 1, 8, f);
    fwrite(header, 1, strlen(header), f);
    if (dlen)
        fwrite(data, 1, dlen, f);
    fclose(f);
    return path;
}

static const char *write_st(const char *name, const char *header, const void *data, size_t dlen)
{
    return write_file(name, strlen(header), header, data, dlen);
}

/* Opening must fail with status want and a message containing both needles. */
static void expect_fail(const char *path, enum cl_status want, const char *needle1, const char *needle2)
{
    struct cl_safetensors *st = (void *)1;
    struct cl_err e = {{0}};
    enum cl_status s = cl_safetensors_open(&st, path, &e);
    CHECKF(s == want, "%s: status %s, want %s (%s)", path, cl_status_str(s), cl_status_str(want), e.msg);
    CHECKF(st == NULL, "%s: handle not NULL on failure", path);
    CHECKF(strstr(e.msg, path) != NULL, "message '%s' does not name the file", e.msg);
    if (needle1)
        CHECKF(strstr(e.msg, needle1) != NULL, "message '%s' lacks '%s'", e.msg, needle1);
    if (needle2)
        CHECKF(strstr(e.msg, needle2) != NULL, "message '%s' lacks '%s'", e.msg, needle2);
    if (s == CL_OK)
        cl_safetensors_close(st);
}

static void test_good_file(void)
{
    /* a: F32 [2,3]; b: F16 [2]; c: BF16 [] (scalar); pos: I64 [2]; padded header */
    float a[6] = {1, -2, 3.5f, 0, 1e-3f, -7};
    unsigned char data[24 + 4 + 2 + 16];
    memcpy(data, a, 24);
    uint16_t b[2] = {cl_f32_to_f16(0.5f), cl_f32_to_f16(-3.0f)};
    memcpy(data + 24, b, 4);
    uint16_t c = cl_f32_to_bf16(2.25f);
    memcpy(data + 28, &c, 2);
    int64_t pos[2] = {0, 1};
    memcpy(data + 30, pos, 16);
    const char *hdr = "{\"__metadata__\":{\"format\":\"pt\"},"
                      "\"pos\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[30,46]},"
                      "\"b\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[24,28]},"
                      "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                      "\"c\":{\"dtype\":\"BF16\",\"shape\":[],\"data_offsets\":[28,30]}}      ";
    const char *path = write_st("good.safetensors", hdr, data, sizeof data);
    struct cl_safetensors *st;
    struct cl_err e = {{0}};
    CHECKF(cl_safetensors_open(&st, path, &e) == CL_OK, "%s", e.msg);
    if (!st)
        return;
    CHECK(st->n == 4);
    const struct cl_st_tensor *t;
    float out[6];
    CHECKF(cl_safetensors_get(st, "a", &t, &e) == CL_OK, "%s", e.msg);
    if (t) {
        CHECK(t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 && t->numel == 6);
        cl_safetensors_read_f32(t, out);
        CHECK(memcmp(out, a, sizeof a) == 0);
    }
    CHECKF(cl_safetensors_get(st, "b", &t, &e) == CL_OK, "%s", e.msg);
    if (t) {
        cl_safetensors_read_f32(t, out);
        CHECK(out[0] == 0.5f && out[1] == -3.0f);
    }
    CHECKF(cl_safetensors_get(st, "c", &t, &e) == CL_OK, "%s", e.msg);
    if (t) {
        CHECK(t->ndim == 0 && t->numel == 1);
        cl_safetensors_read_f32(t, out);
        CHECK(out[0] == 2.25f);
    }
    /* int64 bookkeeping tensors open but are refused by name when read */
    CHECK(cl_safetensors_find(st, "pos") != NULL);
    CHECK(cl_safetensors_get(st, "pos", &t, &e) == CL_ERR_DATA);
    CHECKF(strstr(e.msg, "'pos'") && strstr(e.msg, "I64") && strstr(e.msg, path), "%s", e.msg);
    CHECK(cl_safetensors_find(st, "__metadata__") == NULL);
    CHECK(cl_safetensors_get(st, "nope", &t, &e) == CL_ERR_DATA);
    CHECKF(strstr(e.msg, "'nope'") && strstr(e.msg, "missing"), "%s", e.msg);
    const int64_t want[2] = {3, 2};
    CHECK(cl_safetensors_get_shaped(st, "a", 2, want, &t, &e) == CL_ERR_DATA);
    CHECKF(strstr(e.msg, "'a'") && strstr(e.msg, "[2, 3]") && strstr(e.msg, "[3, 2]"), "%s", e.msg);
    const int64_t right[2] = {2, 3};
    CHECK(cl_safetensors_get_shaped(st, "a", 2, right, &t, &e) == CL_OK && t != NULL);
    cl_safetensors_close(st);
    cl_safetensors_close(NULL);
}

static void test_empty_header(void)
{
    struct cl_safetensors *st;
    struct cl_err e = {{0}};
    const char *path = write_st("empty.safetensors", "{}", NULL, 0);
    CHECKF(cl_safetensors_open(&st, path, &e) == CL_OK, "%s", e.msg);
    if (st) {
        CHECK(st->n == 0 && cl_safetensors_find(st, "x") == NULL);
        cl_safetensors_close(st);
    }
}

static void test_missing_file(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/does-not-exist.safetensors", dir);
    expect_fail(path, CL_ERR_IO, NULL, NULL);
    expect_fail(dir, CL_ERR_IO, "not a regular file", NULL);
}

static void test_short_files(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/short.safetensors", dir);
    FILE *f = fopen(path, "wb");
    fwrite("\x02\0\0", 1, 3, f);
    fclose(f);
    expect_fail(path, CL_ERR_DATA, "too short", NULL);
    snprintf(path, sizeof path, "%s/zero.safetensors", dir);
    fclose(fopen(path, "wb"));
    expect_fail(path, CL_ERR_DATA, "too short", NULL);
}

static void test_bad_header_length(void)
{
    const char *h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    float x = 1;
    expect_fail(write_file("long.safetensors", strlen(h) + 100, h, &x, 4), CL_ERR_DATA,
                "header length", NULL);
    expect_fail(write_file("huge.safetensors", UINT64_MAX, h, &x, 4), CL_ERR_DATA, "header length", NULL);
    /* a header length cutting the JSON short */
    expect_fail(write_file("cut.safetensors", 10, h, &x, 4), CL_ERR_DATA, "JSON", NULL);
}

static void test_not_json(void)
{
    expect_fail(write_st("garbage.safetensors", "\x89PNG\r\n not json at all", NULL, 0), CL_ERR_DATA,
                "not valid JSON", NULL);
    expect_fail(write_st("array.safetensors", "[1, 2, 3]", NULL, 0), CL_ERR_DATA, "not a JSON object", NULL);
    expect_fail(write_st("junk.safetensors", "{} xyz", NULL, 0), CL_ERR_DATA, "junk", NULL);
    expect_fail(write_st("entry.safetensors", "{\"w\": 3}", NULL, 0), CL_ERR_DATA, "'w'", "not an object");
    expect_fail(write_st("fields.safetensors", "{\"w\": {\"dtype\": \"F32\", \"shape\": [1]}}", NULL, 0),
                CL_ERR_DATA, "'w'", "data_offsets");
}

static void test_offsets_past_end(void)
{
    float x[2] = {1, 2};
    expect_fail(write_st("past.safetensors",
                         "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", x, 8),
                CL_ERR_DATA, "'w'", "outside the data region");
    expect_fail(write_st("backwards.safetensors",
                         "{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", x, 8),
                CL_ERR_DATA, "'w'", "outside the data region");
    expect_fail(write_st("neg.safetensors",
                         "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", x, 8),
                CL_ERR_DATA, "'w'", "data_offsets");
    expect_fail(write_st("big.safetensors",
                         "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,1e300]}}", x, 8),
                CL_ERR_DATA, "'w'", "data_offsets");
}

static void test_wrong_length(void)
{
    float x[4] = {1, 2, 3, 4};
    expect_fail(write_st("len.safetensors",
                         "{\"ok\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                         "\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}", x, 16),
                CL_ERR_DATA, "'w'", "needs 16");
    expect_fail(write_st("len16.safetensors",
                         "{\"w\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[0,8]}}", x, 16),
                CL_ERR_DATA, "'w'", "needs 6");
    /* a shape whose product overflows */
    expect_fail(write_st("overflow.safetensors",
                         "{\"w\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776],"
                         "\"data_offsets\":[0,16]}}", x, 16),
                CL_ERR_DATA, "'w'", "larger than the data region");
}

static void test_bad_dtype_and_shape(void)
{
    float x[4] = {0};
    expect_fail(write_st("dtype.safetensors",
                         "{\"w\":{\"dtype\":\"Q4_K\",\"shape\":[4],\"data_offsets\":[0,16]}}", x, 16),
                CL_ERR_DATA, "'w'", "unknown dtype 'Q4_K'");
    expect_fail(write_st("dtype2.safetensors",
                         "{\"w\":{\"dtype\":7,\"shape\":[4],\"data_offsets\":[0,16]}}", x, 16),
                CL_ERR_DATA, "'w'", "dtype");
    expect_fail(write_st("shape.safetensors",
                         "{\"w\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}", x, 16),
                CL_ERR_DATA, "'w'", "shape[0]");
    expect_fail(write_st("shape2.safetensors",
                         "{\"w\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,16]}}", x, 16),
                CL_ERR_DATA, "'w'", "shape[0]");
    expect_fail(write_st("shape3.safetensors",
                         "{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,4],\"data_offsets\":[0,16]}}",
                         x, 16),
                CL_ERR_DATA, "'w'", "dimensions");
    expect_fail(write_st("shape4.safetensors",
                         "{\"w\":{\"dtype\":\"F32\",\"shape\":[\"4\"],\"data_offsets\":[0,16]}}", x, 16),
                CL_ERR_DATA, "'w'", "shape[0]");
}

static void test_memory(void)
{
    static const char hdr[] = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    unsigned char buf[8 + sizeof hdr - 1 + 8];
    uint64_t n = sizeof hdr - 1;
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)(n >> (8 * i));
    memcpy(buf + 8, hdr, n);
    float x[2] = {1.5f, -2};
    memcpy(buf + 8 + n, x, 8);
    struct cl_safetensors *st;
    struct cl_err e = {{0}};
    CHECKF(cl_safetensors_open_mem(&st, buf, sizeof buf, "mem", &e) == CL_OK, "%s", e.msg);
    if (st) {
        const struct cl_st_tensor *t;
        float out[2];
        CHECK(cl_safetensors_get(st, "w", &t, &e) == CL_OK);
        if (t) {
            cl_safetensors_read_f32(t, out);
            CHECK(memcmp(out, x, 8) == 0);
        }
        cl_safetensors_close(st);
    }
    /* every truncation of the buffer fails cleanly, naming the buffer */
    for (size_t len = 0; len < sizeof buf; len++) {
        CHECK(cl_safetensors_open_mem(&st, buf, len, "mem", &e) == CL_ERR_DATA && st == NULL);
        CHECKF(strncmp(e.msg, "mem: ", 5) == 0, "%s", e.msg);
    }
}

static void test_duplicate(void)
{
    float x[2] = {0};
    expect_fail(write_st("dup.safetensors",
                         "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                         "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", x, 8),
                CL_ERR_DATA, "'w'", "twice");
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/cl-test-st-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        exit(3);
    }
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

int main(void)
{
    static const struct th_case cases[] = {
        TEST(test_good_file), TEST(test_empty_header), TEST(test_missing_file), TEST(test_short_files),
        TEST(test_bad_header_length), TEST(test_not_json), TEST(test_offsets_past_end),
        TEST(test_wrong_length), TEST(test_bad_dtype_and_shape), TEST(test_duplicate), TEST(test_memory),
    };
    setup();
    int rc = th_run("safetensors", cases, (int)(sizeof cases / sizeof cases[0]));
    teardown();
    return rc;
}
