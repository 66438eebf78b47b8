/* test_model.c - both towers against PyTorch goldens (scripts/reference.py) on the
 * committed fixture models in both layouts; capture buffers against the reference's
 * intermediates; the layouts agree bit for bit; broken model directories fail by name.
 *
 * Legend: B batch, L layers, H heads, N tokens, D width, M MLP width, E embedding dim.
 */
#include "../harness.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "linalg.h"
#include "model.h"
#include "safetensors.h"

static const char *const fixtures[] = {"vit-tiny-gelu", "vit-tiny-hw20"};
static const char *const layouts[] = {"hf", "openclip"};
static char root[256]; /* tests/fixtures, found from the working directory */
static char tmpdir[64];

/* ---------------------------------------------------------------- comparisons */

/* a vs golden b over n floats: relative error ||a-b|| / ||b|| and cosine; prints both
 * with the largest absolute difference when above the limits. */
static void check_vec(const char *what, const float *a, const float *b, size_t n, double max_rel,
                      double min_cos)
{
    double dd = 0, bb = 0, aa = 0, ab = 0, mx = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        dd += d * d;
        bb += (double)b[i] * b[i];
        aa += (double)a[i] * a[i];
        ab += (double)a[i] * b[i];
        if (fabs(d) > mx || d != d) {
            mx = fabs(d);
            at = i;
        }
    }
    double rel = sqrt(dd / (bb > 0 ? bb : 1e-300));
    double cos = ab / sqrt(aa * bb + 1e-300);
    int ok = rel <= max_rel && (min_cos <= 0 || cos >= min_cos);
    CHECKF(ok, "%s: rel err %.3g (max %.1g), cosine %.8f, largest diff %.3g at %zu (%g vs %g)", what, rel,
           max_rel, cos, mx, at, n ? a[at] : 0.f, n ? b[at] : 0.f);
    if (getenv("CL_TEST_VERBOSE"))
        fprintf(stderr, "  %-40s rel %.3g cos %.9f maxdiff %.3g\n", what, rel, cos, mx);
}

/* Compare per-item embeddings [n, E]: each row must pass the cosine and relative limits. */
static void check_rows(const char *what, const float *a, const float *b, int n, int E)
{
    for (int i = 0; i < n; i++) {
        char w[200];
        snprintf(w, sizeof w, "%s[%d]", what, i);
        check_vec(w, a + (size_t)i * E, b + (size_t)i * E, (size_t)E, 1e-4, 0.99999);
    }
}

/* ---------------------------------------------------------------- goldens */

struct golden {
    struct cl_safetensors *st;
    float *buf[32];
    int nbuf;
};

/* The golden tensor name as f32 (owned by g); its shape must have ndim dims. */
static float *gold(struct golden *g, const char *name, int ndim, int64_t *shape)
{
    const struct cl_st_tensor *t;
    struct cl_err e;
    if (cl_safetensors_get(g->st, name, &t, &e) != CL_OK || t->ndim != ndim || g->nbuf == 32) {
        CHECKF(0, "golden %s: %s", name, e.msg);
        return NULL;
    }
    float *p = malloc(t->numel * sizeof *p + 1);
    if (!p)
        return NULL;
    cl_safetensors_read_f32(t, p);
    if (shape)
        memcpy(shape, t->shape, (size_t)ndim * sizeof *shape);
    g->buf[g->nbuf++] = p;
    return p;
}

static int open_golden(struct golden *g, const char *path)
{
    struct cl_err e;
    memset(g, 0, sizeof *g);
    if (cl_safetensors_open(&g->st, path, &e) != CL_OK) {
        CHECKF(0, "%s", e.msg);
        return -1;
    }
    return 0;
}

static void close_golden(struct golden *g)
{
    for (int i = 0; i < g->nbuf; i++)
        free(g->buf[i]);
    cl_safetensors_close(g->st);
}

static struct cl_model *load_dir(const char *dir)
{
    struct cl_err e;
    struct cl_model *m = NULL;
    CHECKF(cl_model_load(&m, dir, &e) == CL_OK, "%s", e.msg);
    return m;
}

static struct cl_model *load(const char *fx, const char *layout)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/models/%s-%s", root, fx, layout);
    return load_dir(dir);
}

/* ---------------------------------------------------------------- outputs of one model */

struct outputs {
    int nimg, ntxt, E;
    float *img;  /* [nimg, E] with capture */
    float *txt;  /* [ntxt, E] */
};

/* A capture of only what the CLS-only last block provides (CLS attention, values, CLS
 * outputs), and a 2-thread state: the same embedding as plain and the same captured
 * values as the full capture (full), to float rounding (1e-5 relative). */
static void check_light_capture(const struct cl_model *m, const float *pixels, int B, const float *plain,
                                const struct cl_vit_capture *full, const char *fx, const char *layout)
{
    struct cl_vit_state *vs = NULL;
    struct cl_vit_capture *cap = NULL;
    struct cl_err e;
    int E = m->cfg.embed_dim, L = m->cfg.vision.layers;
    char what[160];
    float *emb = calloc((size_t)B * E, sizeof *emb);
    CHECKF(cl_vit_state_new(&vs, m, B, 2, &e) == CL_OK, "%s", e.msg);
    CHECKF(cl_vit_capture_new(&cap, m, B, CL_CAP_ATTN_CLS | CL_CAP_VALUES | CL_CAP_CLS_OUT, NULL, &e) == CL_OK,
           "%s", e.msg);
    if (vs && cap && emb) {
        CHECKF(cl_vit_forward(vs, pixels, B, emb, cap, &e) == CL_OK, "%s", e.msg);
        snprintf(what, sizeof what, "%s-%s 2 threads, light capture", fx, layout);
        check_vec(what, emb, plain, (size_t)B * E, 1e-5, 0);
        for (int b = 0; b < B; b++) {
            snprintf(what, sizeof what, "%s-%s light capture, image %d", fx, layout, b);
            check_vec(what, cl_cap_attn_cls(cap, L - 1, b), cl_cap_attn_cls(full, L - 1, b),
                      (size_t)cap->heads * cap->tokens, 1e-5, 0);
            check_vec(what, cl_cap_values(cap, L - 1, b), cl_cap_values(full, L - 1, b),
                      (size_t)cap->tokens * cap->width, 1e-5, 0);
            check_vec(what, cl_cap_attn_out_cls(cap, L - 1, b), cl_cap_attn_out_cls(full, L - 1, b),
                      (size_t)cap->width, 1e-5, 0);
            check_vec(what, cl_cap_mlp_out_cls(cap, L - 1, b), cl_cap_mlp_out_cls(full, L - 1, b),
                      (size_t)cap->width, 1e-5, 0);
            check_vec(what, cap->pooled + (size_t)b * cap->width, full->pooled + (size_t)b * cap->width,
                      (size_t)cap->width, 1e-5, 0);
            check_vec(what, cap->post_std + b, full->post_std + b, 1, 1e-5, 0);
        }
    }
    free(emb);
    cl_vit_capture_free(cap);
    cl_vit_state_free(vs);
}

/* Run both towers of the model in dir, compare with the golden file (intermediates
 * when it has them) and return the outputs for the cross-layout comparison.
 * fx and layout name the model in messages. */
static void run_model(const char *dir, const char *golden, const char *fx, const char *layout,
                      struct outputs *out)
{
    char what[160];
    memset(out, 0, sizeof *out);
    struct golden g;
    if (open_golden(&g, golden))
        return;
    struct cl_model *m = load_dir(dir);
    if (!m) {
        close_golden(&g);
        return;
    }
    const struct cl_model_config *c = &m->cfg;
    int64_t ps[4], is[2], es[2];
    float *pixels = gold(&g, "pixels", 4, ps);
    float *ids_f = gold(&g, "ids", 2, is);
    float *gimg = gold(&g, "image_embedding", 2, es);
    float *gtxt = gold(&g, "text_embedding", 2, NULL);
    if (!pixels || !ids_f || !gimg || !gtxt)
        goto done;
    int B = (int)ps[0], BT = (int)is[0], E = c->embed_dim;
    CHECK(ps[2] == c->image_size && is[1] == c->context && es[1] == E);
    CHECK(strcmp(cl_layout_name(c->layout), strcmp(layout, "hf") == 0 ? "hf" : "open_clip") == 0);
    CHECK(c->layout == (strcmp(layout, "hf") == 0 ? CL_LAYOUT_HF : CL_LAYOUT_OPENCLIP));
    int L = c->vision.layers, N = c->tokens, H = c->vision.heads, D = c->vision.width, M = c->vision.mlp;

    /* image tower: once with every capture, once without; identical embeddings */
    struct cl_vit_state *vs = NULL;
    struct cl_vit_capture *cap = NULL;
    struct cl_err e;
    out->nimg = B;
    out->ntxt = BT;
    out->E = E;
    out->img = calloc((size_t)B * E, sizeof(float));
    float *plain = calloc((size_t)B * E, sizeof(float));
    unsigned all = CL_CAP_LN | CL_CAP_ATTN | CL_CAP_ATTN_CLS | CL_CAP_VALUES | CL_CAP_MLP_ACT | CL_CAP_RESID |
                   CL_CAP_CLS_OUT;
    CHECKF(cl_vit_state_new(&vs, m, B + 1, 1, &e) == CL_OK, "%s", e.msg);
    CHECKF(cl_vit_capture_new(&cap, m, B + 1, all, NULL, &e) == CL_OK, "%s", e.msg);
    if (vs && cap && out->img && plain) {
        /* with a full capture every block runs on all tokens; without one the last block
         * runs for CLS only: both match the golden, and each other to float rounding */
        CHECKF(cl_vit_forward(vs, pixels, B, out->img, cap, &e) == CL_OK, "%s", e.msg);
        CHECKF(cl_vit_forward(vs, pixels, B, plain, NULL, &e) == CL_OK, "%s", e.msg);
        snprintf(what, sizeof what, "%s-%s image embedding", fx, layout);
        check_rows(what, out->img, gimg, B, E);
        snprintf(what, sizeof what, "%s-%s image embedding, no capture", fx, layout);
        check_rows(what, plain, gimg, B, E);
        check_vec(what, plain, out->img, (size_t)B * E, 1e-5, 0);
        CHECK(cap->n == B);
        check_light_capture(m, pixels, B, plain, cap, fx, layout);

        /* intermediates, [L, B, ...] in both (capture capacity B + 1: compare per layer) */
        struct { const char *name; int per_layer; size_t item; int layers; } inter[] = {
            {"resid", 1, (size_t)N * D, L + 1}, {"ln1_mean", 1, (size_t)N, L}, {"ln1_std", 1, (size_t)N, L},
            {"ln2_mean", 1, (size_t)N, L}, {"ln2_std", 1, (size_t)N, L}, {"attn", 1, (size_t)H * N * N, L},
            {"values", 1, (size_t)N * D, L}, {"mlp_act", 1, (size_t)N * M, L},
            {"attn_out_cls", 1, (size_t)D, L}, {"mlp_out_cls", 1, (size_t)D, L},
            {"post_mean", 0, 1, 1}, {"post_std", 0, 1, 1},
        };
        float *mine[] = {cap->resid, cap->ln1_mean, cap->ln1_std, cap->ln2_mean, cap->ln2_std, cap->attn,
                         cap->values, cap->mlp_act, cap->attn_out_cls, cap->mlp_out_cls, cap->post_mean,
                         cap->post_std};
        for (size_t i = 0; i < sizeof inter / sizeof *inter; i++) {
            const struct cl_st_tensor *t = cl_safetensors_find(g.st, inter[i].name);
            if (!t || !mine[i]) /* a golden without intermediates (full-size models) */
                continue;
            float *ref = gold(&g, inter[i].name, t->ndim, NULL);
            if (!ref)
                continue;
            CHECK(t->numel == (size_t)inter[i].layers * B * inter[i].item);
            for (int l = 0; l < inter[i].layers; l++) {
                snprintf(what, sizeof what, "%s-%s %s layer %d", fx, layout, inter[i].name, l);
                /* LN means of a re-centred stream are near zero: compare against the scale of the stds */
                check_vec(what, mine[i] + (size_t)l * (B + 1) * inter[i].item,
                          ref + (size_t)l * B * inter[i].item, (size_t)B * inter[i].item,
                          strstr(inter[i].name, "mean") ? 1e-3 : 1e-4, 0);
            }
        }
        /* the CLS attention row is row 0 of the full attention */
        CHECKF(cl_safetensors_find(g.st, "resid") != NULL, "%s-%s: the golden has no intermediates", fx, layout);
        for (int l = 0; l < L; l++)
            for (int b = 0; b < B; b++)
                for (int h = 0; h < H; h++)
                    CHECK(memcmp(cl_cap_attn_cls(cap, l, b) + (size_t)h * N,
                                 cl_cap_attn(cap, l, b) + (size_t)h * N * N, (size_t)N * sizeof(float)) == 0);
        /* the stream's exact additive structure at CLS: resid[L] = resid[0] + sum attn + sum mlp */
        for (int b = 0; b < B && D <= 4096; b++) {
            float sum[4096];
            for (int d = 0; d < D; d++) {
                double s = cl_cap_resid(cap, 0, b)[d];
                for (int l = 0; l < L; l++)
                    s += cl_cap_attn_out_cls(cap, l, b)[d] + cl_cap_mlp_out_cls(cap, l, b)[d];
                sum[d] = (float)s;
            }
            snprintf(what, sizeof what, "%s-%s CLS stream sum, image %d", fx, layout, b);
            check_vec(what, sum, cl_cap_resid(cap, L, b), (size_t)D, 1e-5, 0);
        }
        /* a batch of one gives the same embedding as inside the batch */
        float one[4096];
        CHECKF(E <= 4096 && cl_vit_forward(vs, pixels + (size_t)3 * c->image_size * c->image_size, 1, one, NULL,
                                           &e) == CL_OK, "%s", e.msg);
        snprintf(what, sizeof what, "%s-%s image 1 alone", fx, layout);
        check_vec(what, one, out->img + E, (size_t)E, 1e-6, 0);
    }
    free(plain);
    cl_vit_capture_free(cap);
    cl_vit_state_free(vs);

    /* text tower */
    struct cl_text_state *ts = NULL;
    int32_t *ids = malloc((size_t)BT * c->context * sizeof *ids);
    out->txt = calloc((size_t)BT * E, sizeof(float));
    CHECKF(cl_text_state_new(&ts, m, BT, 1, &e) == CL_OK, "%s", e.msg);
    if (ts && ids && out->txt) {
        for (size_t i = 0; i < (size_t)BT * c->context; i++)
            ids[i] = (int32_t)ids_f[i];
        CHECKF(cl_text_forward(ts, ids, BT, out->txt, &e) == CL_OK, "%s", e.msg);
        snprintf(what, sizeof what, "%s-%s text embedding", fx, layout);
        check_rows(what, out->txt, gtxt, BT, E);
        ids[5] = c->vocab_size; /* out of range: refused, naming the text and token */
        CHECK(cl_text_forward(ts, ids, BT, out->txt + 0, &e) == CL_ERR_DATA);
        CHECKF(strstr(e.msg, "text 0") && strstr(e.msg, "token 5"), "%s", e.msg);
        ids[5] = 0;
        CHECK(cl_text_forward(ts, ids, BT + 1, out->txt, &e) == CL_ERR_USAGE);
        CHECKF(cl_text_forward(ts, ids, BT, out->txt, &e) == CL_OK, "%s", e.msg);
    }
    free(ids);
    cl_text_state_free(ts);
done:
    cl_model_free(m);
    close_golden(&g);
}

static void run_fixture(const char *fx, const char *layout, struct outputs *out)
{
    char dir[512], golden[512];
    snprintf(dir, sizeof dir, "%s/models/%s-%s", root, fx, layout);
    snprintf(golden, sizeof golden, "%s/golden/%s.safetensors", root, fx);
    run_model(dir, golden, fx, layout, out);
    struct cl_model *m = load_dir(dir);
    if (m) /* the fixtures carry their (synthetic) tokenizer files */
        CHECK(m->cfg.vocab_path[0] && m->cfg.merges_path[0]);
    cl_model_free(m);
}

static void free_outputs(struct outputs *o)
{
    free(o->img);
    free(o->txt);
}

static void test_goldens_and_layouts(void)
{
    for (size_t f = 0; f < sizeof fixtures / sizeof *fixtures; f++) {
        struct outputs o[2];
        for (int l = 0; l < 2; l++)
            run_fixture(fixtures[f], layouts[l], &o[l]);
        /* the same weights in two layouts (and dtypes) give bit-identical results */
        if (o[0].img && o[1].img && o[0].nimg == o[1].nimg)
            CHECKF(memcmp(o[0].img, o[1].img, (size_t)o[0].nimg * o[0].E * sizeof(float)) == 0,
                   "%s: image embeddings differ between layouts", fixtures[f]);
        if (o[0].txt && o[1].txt && o[0].ntxt == o[1].ntxt)
            CHECKF(memcmp(o[0].txt, o[1].txt, (size_t)o[0].ntxt * o[0].E * sizeof(float)) == 0,
                   "%s: text embeddings differ between layouts", fixtures[f]);
        free_outputs(&o[0]);
        free_outputs(&o[1]);
    }
}

static void test_config(void)
{
    struct cl_model *m = load("vit-tiny-hw20", "openclip");
    if (!m)
        return;
    const struct cl_model_config *c = &m->cfg;
    CHECK(c->layout == CL_LAYOUT_OPENCLIP && strcmp(c->name, "vit-tiny-hw20-openclip") == 0);
    CHECK(c->vision.layers == 2 && c->vision.width == 40 && c->vision.heads == 2 && c->vision.head_dim == 20);
    CHECK(c->vision.mlp == 160 && c->vision.act == CL_ACT_QUICK_GELU && c->vision.ln_eps == 1e-6f);
    CHECK(c->image_size == 28 && c->patch == 7 && c->grid == 4 && c->tokens == 17 && c->embed_dim == 24);
    CHECK(c->text.width == 20 && c->text.heads == 1 && c->text.layers == 1 && c->context == 8);
    CHECK(c->mean[0] == 0.5f && c->std[2] == 0.5f);
    CHECK(fabsf(c->logit_scale - logf(1 / 0.07f)) < 1e-2f);
    cl_model_free(m);
    m = load("vit-tiny-gelu", "hf");
    if (!m)
        return;
    c = &m->cfg;
    CHECK(c->layout == CL_LAYOUT_HF && c->vision.act == CL_ACT_GELU && c->text.act == CL_ACT_GELU);
    CHECK(c->vision.heads == 4 && c->vision.head_dim == 16 && c->text.width == 32 && c->vocab_size == 524);
    CHECK(fabsf(c->mean[0] - 0.48145466f) < 1e-7f && fabsf(c->std[0] - 0.26862954f) < 1e-7f);
    CHECK(c->resize == 32 && c->vision.ln_eps == 1e-5f);
    cl_model_free(m);
}

/* ---------------------------------------------------------------- broken directories */

static int copy_file(const char *from, const char *to, const char *find, const char *repl)
{
    FILE *f = fopen(from, "rb");
    if (!f)
        return -1;
    static char buf[1 << 21];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    FILE *o = fopen(to, "wb");
    if (!o)
        return -1;
    char *at = NULL;
    for (size_t i = 0; find && !at && i + strlen(find) <= n; i++)
        if (memcmp(buf + i, find, strlen(find)) == 0)
            at = buf + i;
    if (find && !at) {
        fclose(o);
        return -1;
    }
    if (at) {
        fwrite(buf, 1, (size_t)(at - buf), o);
        fwrite(repl, 1, strlen(repl), o);
        fwrite(at + strlen(find), 1, n - (size_t)(at - buf) - strlen(find), o);
    } else
        fwrite(buf, 1, n, o);
    return fclose(o);
}

/* Make tmpdir/name as a copy of fixture src in which file has find replaced by repl. */
static const char *broken(const char *name, const char *src, const char *file, const char *find,
                          const char *repl)
{
    static char dir[512];
    char from[600], to[600];
    const char *files[] = {"config.json", "preprocessor_config.json", "model.safetensors", "open_clip_config.json",
                           "open_clip_model.safetensors", "vocab.json", "merges.txt"};
    snprintf(dir, sizeof dir, "%s/%s", tmpdir, name);
    mkdir(dir, 0700);
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(from, sizeof from, "%s/models/%s/%s", root, src, files[i]);
        snprintf(to, sizeof to, "%s/%s", dir, files[i]);
        if (access(from, R_OK) != 0)
            continue;
        int same = strcmp(files[i], file) == 0;
        CHECKF(copy_file(from, to, same ? find : NULL, repl) == 0, "could not make %s from %s", to, from);
    }
    return dir;
}

static void expect_load_error(const char *dir, enum cl_status want, const char *n1, const char *n2)
{
    struct cl_model *m = NULL;
    struct cl_err e = {{0}};
    enum cl_status s = cl_model_load(&m, dir, &e);
    CHECKF(s == want, "%s: status '%s', want '%s' (%s)", dir, cl_status_str(s), cl_status_str(want), e.msg);
    CHECK(m == NULL);
    if (n1)
        CHECKF(strstr(e.msg, n1) != NULL, "message '%s' lacks '%s'", e.msg, n1);
    if (n2)
        CHECKF(strstr(e.msg, n2) != NULL, "message '%s' lacks '%s'", e.msg, n2);
    cl_model_free(m);
}

static void test_broken_models(void)
{
    const char *g = "vit-tiny-gelu-hf", *o = "vit-tiny-gelu-openclip";
    char path[600];
    snprintf(path, sizeof path, "%s/nowhere", tmpdir);
    expect_load_error(path, CL_ERR_IO, "not a model directory", NULL);
    expect_load_error(tmpdir, CL_ERR_DATA, "not a model directory", NULL);
    expect_load_error(broken("badjson", g, "config.json", "{", "{{"), CL_ERR_DATA, "config.json", "JSON");
    /* config vs weights: a wider MLP than the weights have */
    expect_load_error(broken("mlp", g, "config.json", "\"intermediate_size\": 256", "\"intermediate_size\": 128"),
                      CL_ERR_DATA, "'vision_model.encoder.layers.0.mlp.fc1.weight'", "[256, 64]");
    expect_load_error(broken("embed", o, "open_clip_config.json", "\"embed_dim\": 32", "\"embed_dim\": 31"),
                      CL_ERR_DATA, "'visual.proj'", "[64, 31]");
    expect_load_error(broken("heads", o, "open_clip_config.json", "\"head_width\": 16", "\"head_width\": 15"),
                      CL_ERR_DATA, "head_width", NULL);
    /* a missing weight (renamed in the header, same length) */
    expect_load_error(broken("missing", o, "open_clip_model.safetensors", "visual.ln_post.weight",
                             "visual.ln_posT.weight"),
                      CL_ERR_DATA, "'visual.ln_post.weight'", "missing");
    expect_load_error(broken("missing2", g, "model.safetensors", "text_model.encoder.layers.1.self_attn.v_proj.bias",
                             "text_model.encoder.layers.1.self_attn.v_proj.biaS"),
                      CL_ERR_DATA, "'text_model.encoder.layers.1.self_attn.v_proj.bias'", "missing");
    /* a weight of another dtype */
    expect_load_error(broken("dtype", o, "open_clip_model.safetensors",
                             "\"visual.proj\":{\"dtype\":\"BF16\"", "\"visual.proj\":{\"dtype\":\"I16\" "),
                      CL_ERR_DATA, "'visual.proj'", "I16");
    /* unsupported towers, refused by name */
    expect_load_error(broken("resnet", o, "open_clip_config.json", "\"layers\": 2,", "\"layers\": [3, 4, 6, 3],"),
                      CL_ERR_UNSUPPORTED, "ModifiedResNet", NULL);
    expect_load_error(broken("timm", o, "open_clip_config.json", "\"vision_cfg\": {",
                             "\"vision_cfg\": {\"timm_model_name\": \"convnext_base\","),
                      CL_ERR_UNSUPPORTED, "timm_model_name", "convnext_base");
    expect_load_error(broken("hftext", o, "open_clip_config.json", "\"text_cfg\": {",
                             "\"text_cfg\": {\"hf_model_name\": \"xlm-roberta-base\","),
                      CL_ERR_UNSUPPORTED, "hf_model_name", "xlm-roberta-base");
    expect_load_error(broken("act", g, "config.json", "\"hidden_act\": \"gelu\"", "\"hidden_act\": \"gelu_new\""),
                      CL_ERR_UNSUPPORTED, "gelu_new", NULL);
    expect_load_error(broken("siglip", g, "config.json", "\"model_type\": \"clip\"", "\"model_type\": \"siglip\""),
                      CL_ERR_UNSUPPORTED, "siglip", NULL);
    expect_load_error(broken("patch", g, "config.json", "\"patch_size\": 8", "\"patch_size\": 7"), CL_ERR_DATA,
                      "patch size 7", NULL);
    expect_load_error(broken("layers", g, "config.json", "\"num_hidden_layers\": 2", "\"num_hidden_layers\": -2"),
                      CL_ERR_DATA, "num_hidden_layers", NULL);
    expect_load_error(broken("crop", g, "preprocessor_config.json", "\"height\": 32", "\"height\": 30"),
                      CL_ERR_UNSUPPORTED, "crop_size", NULL);
    expect_load_error(broken("std", o, "open_clip_config.json", "\"std\": [", "\"std\": [0, "), CL_ERR_DATA,
                      "\"std\"", NULL);
}

/* HF configs as older checkpoints write them: a "text_config_dict" overriding transformers'
 * defaults; OpenCLIP configs with [s, s] image sizes and explicit default options. */
static void test_config_variants(void)
{
    struct cl_model *ref = load("vit-tiny-gelu", "hf"), *m = NULL;
    struct cl_err e;
    const char *dir = broken("legacy", "vit-tiny-gelu-hf", "config.json", "\"text_config\": {",
                             "\"text_config_dict\": {");
    CHECKF(cl_model_load(&m, dir, &e) == CL_OK, "%s", e.msg);
    if (m && ref) {
        CHECK(m->cfg.text.width == ref->cfg.text.width && m->cfg.text.layers == ref->cfg.text.layers &&
              m->cfg.context == ref->cfg.context && m->cfg.vocab_size == ref->cfg.vocab_size &&
              m->cfg.text.act == CL_ACT_GELU);
    }
    cl_model_free(m);
    m = NULL;
    dir = broken("ocsize", "vit-tiny-gelu-openclip", "open_clip_config.json", "\"image_size\": 32,",
                 "\"image_size\": [32, 32], \"pool_type\": \"tok\", \"ls_init_value\": null,");
    CHECKF(cl_model_load(&m, dir, &e) == CL_OK, "%s", e.msg);
    if (m)
        CHECK(m->cfg.image_size == 32 && m->cfg.tokens == 17);
    cl_model_free(m);
    cl_model_free(ref);
}

static void test_bad_calls(void)
{
    struct cl_model *m = load("vit-tiny-hw20", "hf");
    if (!m)
        return;
    struct cl_vit_state *vs = NULL;
    struct cl_vit_capture *cap = NULL;
    struct cl_err e;
    CHECK(cl_vit_state_new(&vs, m, 0, 1, &e) == CL_ERR_USAGE && vs == NULL);
    CHECK(cl_vit_state_new(&vs, m, 2, 1, &e) == CL_OK);
    CHECK(cl_vit_capture_new(&cap, m, 1, CL_CAP_MLP_ACT, (const uint8_t[]){0, 1}, &e) == CL_OK);
    if (vs && cap) {
        static float px[2 * 3 * 28 * 28], emb[2 * 24];
        CHECK(cl_vit_forward(vs, px, 3, emb, NULL, &e) == CL_ERR_USAGE);
        CHECK(cl_vit_forward(vs, px, 2, emb, cap, &e) == CL_ERR_USAGE); /* capture too small */
        CHECK(cl_vit_forward(vs, px, 1, emb, cap, &e) == CL_OK);
        CHECK(cap->mlp_layers == 1 && cl_cap_mlp_act(cap, 0, 0) == NULL && cl_cap_mlp_act(cap, 1, 0) != NULL);
        CHECK(cap->resid == NULL && cl_cap_resid(cap, 0, 0) == NULL && cap->attn == NULL);
    }
    cl_vit_capture_free(cap);
    cl_vit_state_free(vs);
    cl_model_free(m);
}

/* Full-size random models generated by scripts/reference.py into /tmp (kept between
 * runs): B/32 (OpenCLIP, f32, QuickGELU) and H/14-mini (HF, f16, GELU, head width 80)
 * by default; CL_TEST_FULLSIZE=all adds B/16 and L/14, =off skips. Needs /usr/bin/python3
 * with torch; skipped visibly without it. */
static void test_fullsize(void)
{
    static const struct { const char *arch, *layout, *dtype; int all_only; } models[] = {
        {"B/32", "openclip", "f32", 0}, {"H/14-mini", "hf", "f16", 0},
        {"B/16", "hf", "f32", 1}, {"L/14", "openclip", "f16", 1},
    };
    const char *mode = getenv("CL_TEST_FULLSIZE");
    if (mode && strcmp(mode, "off") == 0) {
        printf("SKIP full-size parity (CL_TEST_FULLSIZE=off)\n");
        return;
    }
    /* made by `make fullsize-fixtures` (Python, at build time): this test never runs Python */
    const char *base = getenv("CL_FULLSIZE_DIR") ? getenv("CL_FULLSIZE_DIR") : "build/fullsize";
    for (size_t i = 0; i < sizeof models / sizeof *models; i++) {
        if (models[i].all_only && !(mode && strcmp(mode, "all") == 0))
            continue;
        char name[64], dir[512], golden[600];
        snprintf(name, sizeof name, "ViT-%s", models[i].arch);
        for (char *p = name; *p; p++)
            *p = *p == '/' ? '-' : *p;
        snprintf(dir, sizeof dir, "%s/%s-%s-%s", base, name, models[i].layout, models[i].dtype);
        snprintf(golden, sizeof golden, "%s/golden.safetensors", dir);
        if (access(golden, R_OK) != 0) { /* the golden is written last: its presence means complete */
            printf("SKIP full-size parity %s: %s absent (make fullsize-fixtures makes it)\n", name, golden);
            continue;
        }
        struct outputs o;
        run_model(dir, golden, name, models[i].layout, &o);
        free_outputs(&o);
    }
}

static int find_root(void)
{
    const char *cands[] = {"tests/fixtures", "../tests/fixtures", "../../tests/fixtures"};
    for (size_t i = 0; i < sizeof cands / sizeof *cands; i++) {
        char p[300];
        snprintf(p, sizeof p, "%s/golden/vit-tiny-gelu.safetensors", cands[i]);
        if (access(p, R_OK) == 0) {
            snprintf(root, sizeof root, "%s", cands[i]);
            return 0;
        }
    }
    fprintf(stderr, "test_model: tests/fixtures not found (run from the repository root)\n");
    return -1;
}

int main(void)
{
    static const struct th_case cases[] = {
        TEST(test_config), TEST(test_goldens_and_layouts), TEST(test_broken_models), TEST(test_bad_calls),
        TEST(test_config_variants), TEST(test_fullsize),
    };
    if (find_root())
        return 1;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cl-test-model-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 3;
    }
    int rc = th_run("model", cases, (int)(sizeof cases / sizeof cases[0]));
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return rc;
}
