/* test_toyclip.c - the bundled toy CLIP (models/toyclip) run by our C code matches the
 * PyTorch reference: image embeddings of rendered toy scenes and text embeddings and
 * token ids of captions, against goldens written by
 * `scripts/train_toyclip.py --golden models/toyclip tests/fixtures/toyclip`.
 * Runs bin/clip-toyworld and bin/clip-encode; run from the repository root (make test does). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../harness.h"
#include "stream.h"

#define FIX "tests/fixtures/toyclip"
#define MODEL "models/toyclip"

enum { MAXR = 16, MAXD = 1024, MAXC = 128 };

/* Read every item's "embedding" (and "ids" when ids != NULL) of a stream; returns the item
 * count, -1 on error. *dim and *ctx receive the tensor sizes of the first item. */
static int load(const char *path, float *rows, int *dim, int32_t *ids, int *ctx)
{
    struct cl_reader *r;
    struct cl_err e;
    if (cl_reader_open(&r, path, &e) != CL_OK) { fprintf(stderr, "  %s\n", e.msg); return -1; }
    struct cl_item it = {0};
    int n = 0;
    enum cl_status s;
    while ((s = cl_reader_next(r, &it, &e)) == CL_OK) {
        const struct cl_tensor *t = cl_item_get(&it, "embedding");
        size_t d = t ? cl_tensor_numel(t) : 0;
        if (n == 0) *dim = (int)d;
        if (n >= MAXR || d == 0 || d > MAXD || (int)d != *dim) { fprintf(stderr, "  %s: item %d: bad embedding\n", path, n); n = -1; break; }
        cl_convert_to_f32(rows + (size_t)n * d, t->data, t->dtype, d);
        if (ids) {
            const struct cl_tensor *ti = cl_item_get(&it, "ids");
            size_t c = ti ? cl_tensor_numel(ti) : 0;
            if (n == 0) *ctx = (int)c;
            if (!ti || ti->dtype != CL_I32 || c == 0 || c > MAXC || (int)c != *ctx) {
                fprintf(stderr, "  %s: item %d: bad ids\n", path, n); n = -1; break;
            }
            memcpy(ids + (size_t)n * c, ti->data, c * sizeof(int32_t));
        }
        n++;
    }
    if (n >= 0 && s != CL_END) { fprintf(stderr, "  %s\n", e.msg); n = -1; }
    cl_item_free(&it);
    cl_reader_close(r);
    return n;
}

/* Row by row: cosine >= 0.99999 and relative error <= 1e-4 (f32 weights in both). */
static void compare(const char *what, const float *got, const float *want, int n, int dim)
{
    double worst_cos = 1, worst_rel = 0, max_abs = 0;
    for (int i = 0; i < n; i++) {
        double dot = 0, ng = 0, nw = 0, nd = 0;
        for (int d = 0; d < dim; d++) {
            double g = got[(size_t)i * dim + d], w = want[(size_t)i * dim + d];
            dot += g * w; ng += g * g; nw += w * w; nd += (g - w) * (g - w);
            if (fabs(g - w) > max_abs) max_abs = fabs(g - w);
        }
        double cos = dot / (sqrt(ng * nw) + 1e-30), rel = sqrt(nd / (nw + 1e-30));
        if (cos < worst_cos) worst_cos = cos;
        if (rel > worst_rel) worst_rel = rel;
    }
    fprintf(stderr, "  %-8s %d rows x %d: worst cosine %.8f, worst relative error %.2e, largest difference %.2e\n",
            what, n, dim, worst_cos, worst_rel, max_abs);
    CHECKF(worst_cos >= 0.99999 && worst_rel <= 1e-4, "%s: cosine %.8f rel %.2e", what, worst_cos, worst_rel);
}

static int run(const char *cmd)
{
    int rc = system(cmd);
    if (rc != 0) fprintf(stderr, "  command failed (%d): %s\n", rc, cmd);
    return rc;
}

static float got[MAXR * MAXD], want[MAXR * MAXD];
static int32_t gids[MAXR * MAXC], wids[MAXR * MAXC];

/* The scenes of the golden, rendered again by clip-toyworld and encoded by clip-encode. */
static void test_images(void)
{
    char dir[128], out[160], cmd[1024];
    snprintf(dir, sizeof dir, "/tmp/cl_toyclip_%d", (int)getpid());
    snprintf(out, sizeof out, "%s/images.cts", dir);
    snprintf(cmd, sizeof cmd, "bin/clip-toyworld dataset -q --n 6 --seed 5 -o %s && "
             "bin/clip-encode -q -t 1 -m " MODEL " --manifest %s/manifest.tsv -o %s", dir, dir, out);
    if (run(cmd) == 0) {
        int dg = 0, dw = 0;
        int ng = load(out, got, &dg, NULL, NULL), nw = load(FIX "/images.cts", want, &dw, NULL, NULL);
        CHECKF(ng == nw && ng > 0 && dg == dw, "%d images of dim %d, golden %d of dim %d", ng, dg, nw, dw);
        if (ng == nw && ng > 0 && dg == dw) compare("images", got, want, ng, dg);
    } else {
        CHECK(0);
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    run(cmd);
}

/* Captions: the C tokenizer's ids on the toy vocabulary, and the text tower. */
static void test_texts(void)
{
    char out[128], cmd[512];
    snprintf(out, sizeof out, "/tmp/cl_toyclip_texts_%d.cts", (int)getpid());
    snprintf(cmd, sizeof cmd, "bin/clip-encode -q -t 1 -m " MODEL " --texts " FIX "/texts.txt -o %s", out);
    if (run(cmd) != 0) { CHECK(0); return; }
    int dg = 0, dw = 0, cg = 0, cw = 0;
    int ng = load(out, got, &dg, gids, &cg), nw = load(FIX "/texts.cts", want, &dw, wids, &cw);
    CHECKF(ng == nw && ng > 0 && dg == dw && cg == cw, "%d texts (dim %d, context %d), golden %d (%d, %d)",
           ng, dg, cg, nw, dw, cw);
    if (ng == nw && ng > 0 && dg == dw && cg == cw) {
        compare("texts", got, want, ng, dg);
        for (int i = 0; i < ng; i++)
            CHECKF(memcmp(gids + (size_t)i * cg, wids + (size_t)i * cg, (size_t)cg * sizeof(int32_t)) == 0,
                   "text %d: token ids differ from the Python tokenizer", i);
    }
    unlink(out);
}

TEST_MAIN("toyclip", TEST(test_images), TEST(test_texts))
