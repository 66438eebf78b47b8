/* test_encode_golden.c - clip-encode end to end against goldens made independently in
 * PyTorch + PIL + the Python tokenizer (scripts/make_encode_goldens.py): images (decode,
 * preprocess, ViT), texts (tokenizer, text tower) and the zero-shot classifier.
 * Runs bin/clip-encode; run from the repository root (make test does). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../harness.h"
#include "stream.h"

#define FIX "tests/fixtures/encode"
static const char *models[] = {"vit-tiny-gelu-hf", "vit-tiny-hw20-openclip"};

/* Read every item's tensor `name` as f32 rows; returns the item count. */
static int load(const char *path, const char *name, float *rows, int max_rows, int dim, int32_t *ids, int ctx)
{
    struct cl_reader *r;
    struct cl_err e;
    if (cl_reader_open(&r, path, &e) != CL_OK) { fprintf(stderr, "  %s\n", e.msg); return -1; }
    struct cl_item it = {0};
    int n = 0;
    enum cl_status s;
    while ((s = cl_reader_next(r, &it, &e)) == CL_OK && n < max_rows) {
        const struct cl_tensor *t = cl_item_get(&it, name);
        if (!t || cl_tensor_numel(t) != (size_t)dim) { n = -1; break; }
        cl_convert_to_f32(rows + (size_t)n * dim, t->data, t->dtype, (size_t)dim);
        const struct cl_tensor *ti = ids ? cl_item_get(&it, "ids") : NULL;
        if (ti && cl_tensor_numel(ti) == (size_t)ctx) memcpy(ids + (size_t)n * ctx, ti->data, (size_t)ctx * 4);
        n++;
    }
    if (n >= 0 && s != CL_END && s != CL_OK) { fprintf(stderr, "  %s\n", e.msg); n = -1; }
    cl_item_free(&it);
    cl_reader_close(r);
    return n;
}

/* Compare row by row: cosine >= 0.99999 and relative error <= 1e-4. */
static void compare(const char *what, const float *got, const float *want, int n, int dim)
{
    double worst_cos = 1, worst_rel = 0;
    for (int i = 0; i < n; i++) {
        double dot = 0, ng = 0, nw = 0, nd = 0;
        for (int d = 0; d < dim; d++) {
            double g = got[(size_t)i * dim + d], w = want[(size_t)i * dim + d];
            dot += g * w; ng += g * g; nw += w * w; nd += (g - w) * (g - w);
        }
        double cos = dot / (sqrt(ng * nw) + 1e-30), rel = sqrt(nd / (nw + 1e-30));
        if (cos < worst_cos) worst_cos = cos;
        if (rel > worst_rel) worst_rel = rel;
    }
    fprintf(stderr, "  %-40s %d rows: worst cosine %.8f, worst relative error %.2e\n", what, n, worst_cos, worst_rel);
    CHECKF(worst_cos >= 0.99999 && worst_rel <= 1e-4, "%s: cosine %.8f rel %.2e", what, worst_cos, worst_rel);
}

static int run(const char *cmd)
{
    int rc = system(cmd);
    if (rc != 0) fprintf(stderr, "  command failed (%d): %s\n", rc, cmd);
    return rc;
}

enum { MAXR = 16, MAXD = 512, CTX = 16 };

static void check_mode(const char *model, const char *mode, const char *args, int with_ids)
{
    char cmd[2048], out[256], gold[256];
    snprintf(out, sizeof out, "/tmp/cl_encode_golden_%d.cts", (int)getpid());
    snprintf(gold, sizeof gold, FIX "/%s_%s.cts", model, mode);
    snprintf(cmd, sizeof cmd, "bin/clip-encode -q -t 1 -m tests/fixtures/models/%s %s -o %s", model, args, out);
    if (run(cmd) != 0) { CHECK(0); return; }
    static float got[MAXR * MAXD], want[MAXR * MAXD];
    static int32_t gids[MAXR * CTX], wids[MAXR * CTX];
    struct cl_reader *r;
    struct cl_err e;
    if (cl_reader_open(&r, gold, &e) != CL_OK) { CHECKF(0, "%s", e.msg); return; }
    struct cl_item it = {0};
    int dim = 0;
    if (cl_reader_next(r, &it, &e) == CL_OK) dim = (int)cl_tensor_numel(cl_item_get(&it, "embedding"));
    cl_item_free(&it);
    cl_reader_close(r);
    memset(gids, 0, sizeof gids);
    memset(wids, 0, sizeof wids);
    int ng = load(out, "embedding", got, MAXR, dim, with_ids ? gids : NULL, CTX);
    int nw = load(gold, "embedding", want, MAXR, dim, with_ids ? wids : NULL, CTX);
    CHECKF(ng == nw && ng > 0, "%s %s: %d items, golden has %d", model, mode, ng, nw);
    if (ng == nw && ng > 0) {
        char what[128];
        snprintf(what, sizeof what, "%s %s", model, mode);
        compare(what, got, want, ng, dim);
        if (with_ids) CHECKF(memcmp(gids, wids, sizeof gids) == 0, "%s: token ids differ from the reference", what);
    }
    unlink(out);
}

static void test_images(void)
{
    for (int i = 0; i < 2; i++) check_mode(models[i], "images", "< " FIX "/images.txt", 0); /* paths on stdin, relative to the root */
}

static void test_texts(void)
{
    for (int i = 0; i < 2; i++) check_mode(models[i], "texts", "--texts " FIX "/texts.txt", 1);
}

static void test_classifier(void)
{
    for (int i = 0; i < 2; i++)
        check_mode(models[i], "classifier", "--classes " FIX "/classes.txt --templates " FIX "/templates.txt", 0);
}

TEST_MAIN("encode_golden", TEST(test_images), TEST(test_texts), TEST(test_classifier))
