/* test_decompose.c - the decomposition of image embeddings (common/decompose.h) on the
 * committed fixture models in both layouts: parts sum to the embedding at every
 * granularity and in both conventions, agree with the independent PyTorch implementation
 * (scripts/decompose_reference.py, goldens in tests/fixtures/decompose), neurons relate to
 * their MLP exactly, the second-order factorisation equals P2's direct formula, subsets,
 * batches and f16 behave, and bad calls fail by name.
 *
 * Legend: B batch, L layers, L' kept layers, H heads, Dh head width, N tokens, D width,
 * M MLP width, E embedding dim.
 */
#include "../harness.h"

#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "decompose.h"
#include "linalg.h"
#include "model.h"
#include "safetensors.h"
#include "tensor.h"

static const char *const fixtures[] = {"vit-tiny-gelu", "vit-tiny-hw20"};
static const char *const layouts[] = {"hf", "openclip"};
static const enum cl_ln_conv convs[] = {CL_LN_UNIFORM, CL_LN_CENTERED};
static char root[256]; /* tests/fixtures */

/* ---------------------------------------------------------------- comparisons */

/* ||a - b|| / ||b|| over n floats. */
static double rel_err(const float *a, const float *b, size_t n, double *maxdiff)
{
    double dd = 0, bb = 0, mx = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        dd += d * d;
        bb += (double)b[i] * b[i];
        if (!(fabs(d) <= mx))
            mx = fabs(d);
    }
    if (maxdiff)
        *maxdiff = mx;
    return sqrt(dd / (bb > 0 ? bb : 1e-300));
}

static void check_rel(const char *what, const float *a, const float *b, size_t n, double tol)
{
    double mx, r = rel_err(a, b, n, &mx);
    CHECKF(r <= tol, "%s: relative error %.3g (limit %.1g), largest difference %.3g", what, r, tol, mx);
    if (getenv("CL_TEST_VERBOSE"))
        fprintf(stderr, "  %-50s rel %.3g maxdiff %.3g\n", what, r, mx);
}

/* ---------------------------------------------------------------- fixtures */

static struct cl_model *load(const char *fx, const char *layout)
{
    char dir[512];
    struct cl_err e;
    struct cl_model *m = NULL;
    snprintf(dir, sizeof dir, "%s/models/%s-%s", root, fx, layout);
    CHECKF(cl_model_load(&m, dir, &e) == CL_OK, "%s", e.msg);
    return m;
}

/* Tensor name of a safetensors file as malloc'd f32 with numel elements, or NULL. */
static float *st_read(const char *path, const char *name, size_t numel)
{
    struct cl_safetensors *st;
    const struct cl_st_tensor *t;
    struct cl_err e;
    if (cl_safetensors_open(&st, path, &e) != CL_OK) {
        CHECKF(0, "%s", e.msg);
        return NULL;
    }
    float *p = NULL;
    if (cl_safetensors_get(st, name, &t, &e) != CL_OK)
        CHECKF(0, "%s", e.msg);
    else if (t->numel != numel)
        CHECKF(0, "%s: %s has %zu elements, expected %zu", path, name, t->numel, numel);
    else if ((p = malloc(numel * sizeof *p)))
        cl_safetensors_read_f32(t, p);
    cl_safetensors_close(st);
    return p;
}

static float *golden_pixels(const char *fx, const struct cl_model *m, int B)
{
    char path[512];
    snprintf(path, sizeof path, "%s/golden/%s.safetensors", root, fx);
    size_t S = (size_t)m->cfg.image_size;
    return st_read(path, "pixels", (size_t)B * 3 * S * S);
}

static float *golden_part(const char *fx, const char *name, size_t numel)
{
    char path[512];
    snprintf(path, sizeof path, "%s/decompose/%s.safetensors", root, fx);
    return st_read(path, name, numel);
}

/* ---------------------------------------------------------------- running a decomposition */

/* The parts of B images, copied out of the decomposer: every buffer [B, ...]. */
struct parts {
    int B, Lk, lo, H, N, E, M;
    float *embedding, *embed, *heads, *mlps, *rest, *bias, *neurons, *neurons2; /* NULL if absent */
    size_t n_heads;        /* per image: L' H N E */
};

static void parts_free(struct parts *p)
{
    float *f[] = {p->embedding, p->embed, p->heads, p->mlps, p->rest, p->bias, p->neurons, p->neurons2};
    for (size_t i = 0; i < sizeof f / sizeof *f; i++)
        free(f[i]);
    memset(p, 0, sizeof *p);
}

/* dst [B, n]: row b <- src (if src is non-NULL; allocates on b == 0). */
static void keep(float **dst, const float *src, size_t n, int b, int B)
{
    if (!src)
        return;
    if (b == 0)
        *dst = malloc((size_t)B * n * sizeof **dst);
    if (*dst)
        memcpy(*dst + (size_t)b * n, src, n * sizeof **dst);
}

/* Forward B images through m with a capture, decompose them with o, copy every part. */
static int run(struct cl_model *m, const float *pixels, int B, const struct cl_decompose_opts *o,
               struct parts *p)
{
    struct cl_err e;
    struct cl_vit_state *vs = NULL;
    struct cl_decomposer *d = NULL;
    struct cl_vit_capture *cap = NULL;
    int E = m->cfg.embed_dim, rc = -1;
    float *emb = malloc((size_t)B * E * sizeof *emb);
    memset(p, 0, sizeof *p);
    if (!emb || cl_vit_state_new(&vs, m, B, 1, &e) || cl_decomposer_new(&d, m, o, B, &e) ||
        cl_decomposer_capture_new(d, &cap, &e) || cl_vit_forward(vs, pixels, B, emb, cap, &e) ||
        cl_decompose_batch(d, cap, emb, B, &e)) {
        CHECKF(0, "%s", e.msg);
        goto out;
    }
    for (int b = 0; b < B; b++) {
        struct cl_decomposition r;
        if (cl_decompose_image(d, b, &r, &e) != CL_OK) {
            CHECKF(0, "%s", e.msg);
            goto out;
        }
        p->B = B;
        p->Lk = r.kept;
        p->lo = r.layer_lo;
        p->H = r.heads;
        p->N = r.tokens ? r.tokens : 1;
        p->E = r.embed_dim;
        p->M = r.mlp;
        p->n_heads = (size_t)r.kept * r.heads * p->N * r.embed_dim;
        size_t Ez = (size_t)E, ME = (size_t)r.mlp * E;
        keep(&p->embedding, r.embedding, Ez, b, B);
        keep(&p->embed, r.embed, Ez, b, B);
        keep(&p->heads, r.heads_part, p->n_heads, b, B);
        keep(&p->mlps, r.mlps, (size_t)r.kept * E, b, B);
        keep(&p->rest, r.rest, Ez, b, B);
        keep(&p->bias, r.bias, Ez, b, B);
        keep(&p->neurons, r.neurons, ME, b, B);
        keep(&p->neurons2, r.neurons2, ME, b, B);
    }
    rc = 0;
out:
    free(emb);
    cl_vit_capture_free(cap);
    cl_decomposer_free(d);
    cl_vit_state_free(vs);
    return rc;
}

/* sum [E] of image b's parts: embed + heads + mlps (+ rest) (+ bias). */
static void sum_parts(const struct parts *p, int b, double *sum)
{
    int E = p->E;
    for (int i = 0; i < E; i++)
        sum[i] = p->embed[(size_t)b * E + i];
    const float *h = p->heads + (size_t)b * p->n_heads;
    for (size_t k = 0; k < p->n_heads / E; k++)
        for (int i = 0; i < E; i++)
            sum[i] += h[k * E + i];
    for (int k = 0; k < p->Lk; k++)
        for (int i = 0; i < E; i++)
            sum[i] += p->mlps[((size_t)b * p->Lk + k) * E + i];
    for (int i = 0; i < E; i++) {
        if (p->rest)
            sum[i] += p->rest[(size_t)b * E + i];
        if (p->bias)
            sum[i] += p->bias[(size_t)b * E + i];
    }
}

static void check_sum(const char *what, const struct parts *p, double tol)
{
    for (int b = 0; b < p->B; b++) {
        double sum[4096];
        float s32[4096];
        sum_parts(p, b, sum);
        for (int i = 0; i < p->E; i++)
            s32[i] = (float)sum[i];
        char w[300];
        snprintf(w, sizeof w, "%s image %d: sum of parts vs embedding", what, b);
        check_rel(w, s32, p->embedding + (size_t)b * p->E, (size_t)p->E, tol);
    }
}

/* ---------------------------------------------------------------- tests */

#define NGOLD 2 /* images in each golden file */

/* Every part against the PyTorch reference; parts sum to the embedding. */
static void test_goldens(void)
{
    for (size_t f = 0; f < 2; f++)
        for (size_t l = 0; l < 2; l++) {
            struct cl_model *m = load(fixtures[f], layouts[l]);
            if (!m)
                continue;
            float *px = golden_pixels(fixtures[f], m, NGOLD);
            int L = m->cfg.vision.layers, H = m->cfg.vision.heads, N = m->cfg.tokens, E = m->cfg.embed_dim;
            int M = m->cfg.vision.mlp;
            for (size_t c = 0; c < 2 && px; c++) {
                const char *cn = cl_ln_conv_name(convs[c]);
                char what[200], name[64];
                snprintf(what, sizeof what, "%s-%s %s", fixtures[f], layouts[l], cn);
                struct cl_decompose_opts o;
                cl_decompose_opts_default(&o);
                o.ln = convs[c];
                o.tokens = 1;
                o.neurons = L - 1;
                o.second_order = 0;
                struct parts p, q;
                if (run(m, px, NGOLD, &o, &p))
                    continue;
                o.tokens = 0;
                if (run(m, px, NGOLD, &o, &q)) {
                    parts_free(&p);
                    continue;
                }
                check_sum(what, &p, 1e-4);
                check_sum(what, &q, 1e-4);
                size_t nh = (size_t)L * H * N * E;
                struct { const char *name; const float *ours; size_t n; } cmp[] = {
                    {"embed", p.embed, (size_t)E}, {"heads", p.heads, nh}, {"mlps", p.mlps, (size_t)L * E},
                    {"neurons", p.neurons, (size_t)M * E}, {"bias", p.bias, (size_t)E},
                };
                for (size_t k = 0; k < sizeof cmp / sizeof *cmp; k++) {
                    if (!strcmp(cmp[k].name, "bias") && convs[c] != CL_LN_CENTERED) {
                        CHECK(p.bias == NULL);
                        continue;
                    }
                    snprintf(name, sizeof name, "%s.%s", cn, cmp[k].name);
                    float *g = golden_part(fixtures[f], name, NGOLD * cmp[k].n);
                    if (!g || !cmp[k].ours) {
                        CHECKF(0, "%s: %s missing", what, name);
                        free(g);
                        continue;
                    }
                    for (int b = 0; b < NGOLD; b++) {
                        char w[300];
                        snprintf(w, sizeof w, "%s image %d: %s vs PyTorch", what, b, name);
                        check_rel(w, cmp[k].ours + b * cmp[k].n, g + b * cmp[k].n, cmp[k].n, 1e-4);
                    }
                    /* heads without tokens: the golden per-token heads summed over tokens */
                    if (!strcmp(cmp[k].name, "heads")) {
                        float *hs = calloc((size_t)NGOLD * L * H * E, sizeof *hs);
                        for (size_t r = 0; hs && r < (size_t)NGOLD * L * H; r++)
                            for (int i = 0; i < N; i++)
                                for (int j = 0; j < E; j++)
                                    hs[r * E + j] += g[(r * N + i) * E + j];
                        char w[300];
                        snprintf(w, sizeof w, "%s heads summed over tokens vs PyTorch", what);
                        if (hs)
                            check_rel(w, q.heads, hs, (size_t)NGOLD * L * H * E, 1e-4);
                        free(hs);
                    }
                    free(g);
                }
                float *g = golden_part(fixtures[f], "embedding", (size_t)NGOLD * E);
                if (g)
                    check_rel("embedding vs PyTorch", p.embedding, g, (size_t)NGOLD * E, 1e-4);
                free(g);
                g = golden_part(fixtures[f], "neurons2", (size_t)NGOLD * M * E);
                if (g && p.neurons2) {
                    char w[300];
                    snprintf(w, sizeof w, "%s neurons2 vs PyTorch direct", what);
                    check_rel(w, p.neurons2, g, (size_t)NGOLD * M * E, 1e-4);
                }
                free(g);
                parts_free(&p);
                parts_free(&q);
            }
            free(px);
            cl_model_free(m);
        }
}

/* Random pixels [B, 3, S, S] in [-2, 2] (a fixed LCG). */
static float *random_pixels(const struct cl_model *m, int B, unsigned seed)
{
    size_t n = (size_t)B * 3 * m->cfg.image_size * m->cfg.image_size;
    float *p = malloc(n * sizeof *p);
    uint32_t s = seed * 2654435761u + 1;
    for (size_t i = 0; p && i < n; i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = (float)(s >> 8) / (float)(1u << 24) * 4.0f - 2.0f;
    }
    return p;
}

/* Every granularity and layer subset sums to the embedding; a subset's heads and MLPs are the
 * full decomposition's, and rest is the sum of what was left out. */
static void test_sums_and_subsets(void)
{
    for (size_t f = 0; f < 2; f++)
        for (size_t l = 0; l < 2; l++) {
            struct cl_model *m = load(fixtures[f], layouts[l]);
            if (!m)
                continue;
            int B = 3, L = m->cfg.vision.layers, H = m->cfg.vision.heads, N = m->cfg.tokens, E = m->cfg.embed_dim;
            float *px = random_pixels(m, B, 7 + (unsigned)f);
            for (size_t c = 0; c < 2 && px; c++)
                for (int tokens = 0; tokens < 2; tokens++) {
                    struct cl_decompose_opts o;
                    cl_decompose_opts_default(&o);
                    o.ln = convs[c];
                    o.tokens = tokens;
                    struct parts full;
                    if (run(m, px, B, &o, &full))
                        continue;
                    char what[200];
                    snprintf(what, sizeof what, "%s-%s %s tokens=%d", fixtures[f], layouts[l],
                             cl_ln_conv_name(convs[c]), tokens);
                    check_sum(what, &full, 1e-4);
                    CHECK(full.rest == NULL);
                    size_t per_layer = (size_t)H * (tokens ? N : 1) * E;
                    for (int lo = 0; lo < L; lo++) {
                        struct parts sub;
                        o.layer_lo = o.layer_hi = lo;
                        if (run(m, px, B, &o, &sub))
                            continue;
                        char w[300];
                        snprintf(w, sizeof w, "%s layers %d-%d", what, lo, lo);
                        check_sum(w, &sub, 1e-4);
                        CHECK(sub.Lk == 1 && sub.lo == lo && sub.rest != NULL);
                        for (int b = 0; b < B; b++) {
                            snprintf(w, sizeof w, "%s layers %d-%d image %d heads vs full", what, lo, lo, b);
                            check_rel(w, sub.heads + b * per_layer, full.heads + b * full.n_heads + lo * per_layer,
                                      per_layer, 1e-6);
                            snprintf(w, sizeof w, "%s layers %d-%d image %d mlp vs full", what, lo, lo, b);
                            check_rel(w, sub.mlps + (size_t)b * E, full.mlps + ((size_t)b * L + lo) * E,
                                      (size_t)E, 1e-6);
                            /* rest = the heads and MLPs of the other layers */
                            float r[4096];
                            for (int i = 0; i < E; i++) {
                                double s = 0;
                                for (int k = 0; k < L; k++) {
                                    if (k == lo)
                                        continue;
                                    s += full.mlps[((size_t)b * L + k) * E + i];
                                    for (size_t j = 0; j < per_layer / E; j++)
                                        s += full.heads[b * full.n_heads + k * per_layer + j * E + i];
                                }
                                r[i] = (float)s;
                            }
                            snprintf(w, sizeof w, "%s layers %d-%d image %d rest", what, lo, lo, b);
                            check_rel(w, sub.rest + (size_t)b * E, r, (size_t)E, 1e-5);
                        }
                        parts_free(&sub);
                    }
                    o.layer_lo = o.layer_hi = -1;
                    parts_free(&full);
                }
            free(px);
            cl_model_free(m);
        }
}

/* Tokens summed over N give the heads without tokens. */
static void test_tokens_sum_to_heads(void)
{
    struct cl_model *m = load("vit-tiny-gelu", "hf");
    if (!m)
        return;
    int B = 2, L = m->cfg.vision.layers, H = m->cfg.vision.heads, N = m->cfg.tokens, E = m->cfg.embed_dim;
    float *px = random_pixels(m, B, 3);
    for (size_t c = 0; c < 2; c++) {
        struct cl_decompose_opts o;
        cl_decompose_opts_default(&o);
        o.ln = convs[c];
        struct parts h, t;
        if (run(m, px, B, &o, &h))
            continue;
        o.tokens = 1;
        if (run(m, px, B, &o, &t) == 0) {
            float *s = calloc((size_t)B * L * H * E, sizeof *s);
            for (size_t r = 0; s && r < (size_t)B * L * H; r++)
                for (int i = 0; i < N; i++)
                    for (int j = 0; j < E; j++)
                        s[r * E + j] += t.heads[(r * N + i) * E + j];
            if (s)
                check_rel(cl_ln_conv_name(convs[c]), s, h.heads, (size_t)B * L * H * E, 1e-5);
            free(s);
            parts_free(&t);
        }
        parts_free(&h);
    }
    free(px);
    cl_model_free(m);
}

/* Neurons of layer l sum to that layer's MLP part minus the c_proj bias's own term
 * P g c(b_proj) / sigma / |e| (c: centring in the centered convention). */
static void test_neurons_sum_to_mlp(void)
{
    for (size_t f = 0; f < 2; f++) {
        struct cl_model *m = load(fixtures[f], "openclip");
        if (!m)
            continue;
        int B = 2, L = m->cfg.vision.layers, D = m->cfg.vision.width, M = m->cfg.vision.mlp, E = m->cfg.embed_dim;
        float *px = random_pixels(m, B, 11);
        /* sigma and |e| of each image from a plain forward */
        struct cl_err e;
        struct cl_vit_state *vs;
        struct cl_vit_capture *cap;
        float emb[2 * 4096];
        if (cl_vit_state_new(&vs, m, B, 1, &e) || cl_vit_capture_new(&cap, m, B, CL_CAP_LN, NULL, &e)) {
            CHECKF(0, "%s", e.msg);
            continue;
        }
        cl_vit_forward(vs, px, B, emb, cap, &e);
        for (size_t c = 0; c < 2; c++)
            for (int layer = 0; layer < L; layer++) {
                struct cl_decompose_opts o;
                cl_decompose_opts_default(&o);
                o.ln = convs[c];
                o.neurons = layer;
                struct parts p;
                if (run(m, px, B, &o, &p))
                    continue;
                const struct cl_block *blk = &m->vis.blocks[layer];
                double mean = 0;
                for (int i = 0; i < D; i++)
                    mean += blk->b_proj[i];
                mean = convs[c] == CL_LN_CENTERED ? mean / D : 0;
                for (int b = 0; b < B; b++) {
                    double norm = 0;
                    for (int i = 0; i < E; i++)
                        norm += (double)emb[b * E + i] * emb[b * E + i];
                    norm = sqrt(norm);
                    float sum[4096];
                    for (int k = 0; k < E; k++) {
                        double s = 0;
                        for (int j = 0; j < M; j++)
                            s += p.neurons[((size_t)b * M + j) * E + k];
                        double t = 0; /* the bias term, straight from the weights */
                        for (int i = 0; i < D; i++)
                            t += (double)m->vis.proj[(size_t)k * D + i] * m->vis.ln_post_g[i] * (blk->b_proj[i] - mean);
                        sum[k] = (float)(s + t / cap->post_std[b] / norm);
                    }
                    char w[200];
                    snprintf(w, sizeof w, "%s %s layer %d image %d: neurons + bias term vs mlp", fixtures[f],
                             cl_ln_conv_name(convs[c]), layer, b);
                    check_rel(w, sum, p.mlps + ((size_t)b * L + layer) * E, (size_t)E, 1e-5);
                }
                parts_free(&p);
            }
        cl_vit_capture_free(cap);
        cl_vit_state_free(vs);
        free(px);
        cl_model_free(m);
    }
}

/* P2's direct formula in plain loops: neurons2 [M, E] of image b of a full capture. */
static void second_order_slow(const struct cl_model *m, const struct cl_vit_capture *cap, int b, int l2,
                              const float *emb, double *out)
{
    const struct cl_model_config *c = &m->cfg;
    int L = c->vision.layers, Dh = c->vision.head_dim, N = c->tokens, D = c->vision.width;
    int M = c->vision.mlp, E = c->embed_dim;
    const float *act = cl_cap_mlp_act(cap, l2, b); /* [N, M] */
    const float *wp = m->vis.blocks[l2].w_proj;     /* [D, M] */
    double *y = malloc((size_t)D * sizeof *y), *v = malloc((size_t)D * sizeof *v);
    double *o = malloc((size_t)D * sizeof *o);
    double norm = 0;
    for (int i = 0; i < E; i++)
        norm += (double)emb[i] * emb[i];
    norm = sqrt(norm);
    for (int n = 0; n < M; n++) {
        memset(o, 0, (size_t)D * sizeof *o); /* the neuron's total effect on the final CLS residual */
        for (int lp = l2 + 1; lp < L; lp++) {
            const struct cl_block *blk = &m->vis.blocks[lp];
            const float *A = cl_cap_attn_cls(cap, lp, b), *sd = cl_cap_ln1_std(cap, lp, b);
            for (int i = 0; i < N; i++) {
                /* the neuron's output at token i through ln_1 linearised at that token */
                double mean = 0;
                for (int k = 0; k < D; k++)
                    mean += (double)act[(size_t)i * M + n] * wp[(size_t)k * M + n];
                mean /= D;
                for (int k = 0; k < D; k++)
                    y[k] = blk->ln1_g[k] * ((double)act[(size_t)i * M + n] * wp[(size_t)k * M + n] - mean) / sd[i];
                for (int r = 0; r < D; r++) {
                    double s = 0;
                    for (int k = 0; k < D; k++)
                        s += (double)blk->wv[(size_t)r * D + k] * y[k];
                    v[r] = s * A[(size_t)(r / Dh) * N + i]; /* value of head r / Dh, weighted by its CLS attention */
                }
                for (int r = 0; r < D; r++) {
                    double s = 0;
                    for (int k = 0; k < D; k++)
                        s += (double)blk->wo[(size_t)r * D + k] * v[k];
                    o[r] += s;
                }
            }
        }
        double mean = 0;
        for (int k = 0; k < D; k++)
            mean += o[k];
        mean /= D;
        for (int e = 0; e < E; e++) {
            double s = 0;
            for (int k = 0; k < D; k++)
                s += (double)m->vis.proj[(size_t)e * D + k] * m->vis.ln_post_g[k] * (o[k] - mean);
            out[(size_t)n * E + e] = s / cap->post_std[b] / norm;
        }
    }
    free(y);
    free(v);
    free(o);
}

/* The factorised second-order effects equal the direct formula on random images, for every
 * layer (the last has no later attention: all zero). */
static void test_second_order_direct(void)
{
    for (size_t f = 0; f < 2; f++) {
        struct cl_model *m = load(fixtures[f], "hf");
        if (!m)
            continue;
        int B = 2, L = m->cfg.vision.layers, M = m->cfg.vision.mlp, E = m->cfg.embed_dim;
        float *px = random_pixels(m, B, 5);
        struct cl_err e;
        struct cl_vit_state *vs;
        struct cl_vit_capture *cap;
        float emb[2 * 4096];
        double *slow = malloc((size_t)M * E * sizeof *slow);
        float *s32 = malloc((size_t)M * E * sizeof *s32);
        if (cl_vit_state_new(&vs, m, B, 1, &e) ||
            cl_vit_capture_new(&cap, m, B, CL_CAP_LN | CL_CAP_ATTN_CLS | CL_CAP_MLP_ACT, NULL, &e)) {
            CHECKF(0, "%s", e.msg);
            continue;
        }
        cl_vit_forward(vs, px, B, emb, cap, &e);
        for (int l2 = 0; l2 < L; l2++) {
            struct cl_decompose_opts o;
            cl_decompose_opts_default(&o);
            o.second_order = l2;
            struct parts p;
            if (run(m, px, B, &o, &p))
                continue;
            for (int b = 0; b < B; b++) {
                second_order_slow(m, cap, b, l2, emb + (size_t)b * E, slow);
                double mx = 0;
                for (size_t i = 0; i < (size_t)M * E; i++) {
                    s32[i] = (float)slow[i];
                    mx = fmax(mx, fabs(slow[i]));
                }
                char w[200];
                snprintf(w, sizeof w, "%s layer %d image %d: factorised vs direct", fixtures[f], l2, b);
                if (l2 == L - 1)
                    CHECKF(mx == 0 && rel_err(p.neurons2 + (size_t)b * M * E, s32, (size_t)M * E, &mx) >= 0 &&
                               mx == 0, "%s: expected zeros, largest %g", w, mx);
                else
                    check_rel(w, p.neurons2 + (size_t)b * M * E, s32, (size_t)M * E, 1e-5);
            }
            parts_free(&p);
        }
        free(slow);
        free(s32);
        cl_vit_capture_free(cap);
        cl_vit_state_free(vs);
        free(px);
        cl_model_free(m);
    }
}

/* Same inputs, same bytes; a batch gives each image what it gets alone (to float precision). */
static void test_deterministic_and_batch(void)
{
    struct cl_model *m = load("vit-tiny-hw20", "hf");
    if (!m)
        return;
    int B = 3, E = m->cfg.embed_dim;
    float *px = random_pixels(m, B, 9);
    size_t S2 = 3 * (size_t)m->cfg.image_size * m->cfg.image_size;
    struct cl_decompose_opts o;
    cl_decompose_opts_default(&o);
    o.tokens = 1;
    o.neurons = 1;
    o.second_order = 0;
    struct parts a, b, one;
    if (run(m, px, B, &o, &a) == 0 && run(m, px, B, &o, &b) == 0) {
        CHECK(memcmp(a.heads, b.heads, B * a.n_heads * sizeof(float)) == 0);
        CHECK(memcmp(a.neurons, b.neurons, (size_t)B * a.M * E * sizeof(float)) == 0);
        CHECK(memcmp(a.neurons2, b.neurons2, (size_t)B * a.M * E * sizeof(float)) == 0);
        CHECK(memcmp(a.embed, b.embed, (size_t)B * E * sizeof(float)) == 0);
        for (int i = 0; i < B; i++) {
            if (run(m, px + i * S2, 1, &o, &one))
                continue;
            check_rel("image alone vs in a batch: heads", one.heads, a.heads + i * a.n_heads, a.n_heads, 1e-5);
            check_rel("image alone vs in a batch: neurons2", one.neurons2, a.neurons2 + (size_t)i * a.M * E,
                      (size_t)a.M * E, 1e-5);
            parts_free(&one);
        }
        parts_free(&a);
        parts_free(&b);
    }
    free(px);
    cl_model_free(m);
}

/* Parts stored as f16 still sum to the embedding, to f16 precision. */
static void test_f16_sums(void)
{
    struct cl_model *m = load("vit-tiny-gelu", "hf");
    if (!m)
        return;
    float *px = golden_pixels("vit-tiny-gelu", m, NGOLD);
    for (int tokens = 0; tokens < 2 && px; tokens++) {
        struct cl_decompose_opts o;
        cl_decompose_opts_default(&o);
        o.tokens = tokens;
        struct parts p;
        if (run(m, px, NGOLD, &o, &p))
            continue;
        float *bufs[] = {p.embedding, p.embed, p.heads, p.mlps};
        size_t ns[] = {(size_t)p.E, (size_t)p.E, p.n_heads, (size_t)p.Lk * p.E};
        for (size_t k = 0; k < 4; k++)
            for (size_t i = 0; i < NGOLD * ns[k]; i++)
                bufs[k][i] = cl_f16_to_f32(cl_f32_to_f16(bufs[k][i]));
        check_sum(tokens ? "f16 tokens" : "f16 heads", &p, 2e-3);
        parts_free(&p);
    }
    free(px);
    cl_model_free(m);
}

static void test_bad_calls(void)
{
    struct cl_model *m = load("vit-tiny-gelu", "hf");
    if (!m)
        return;
    struct cl_err e;
    struct cl_decomposer *d = NULL;
    struct cl_decompose_opts o;
    cl_decompose_opts_default(&o);
    o.layer_lo = 1;
    o.layer_hi = 2;
    CHECK(cl_decomposer_new(&d, m, &o, 2, &e) == CL_ERR_USAGE && d == NULL);
    CHECKF(strstr(e.msg, "layers 1-2") && strstr(e.msg, "vit-tiny-gelu"), "%s", e.msg);
    cl_decompose_opts_default(&o);
    o.layer_lo = 1;
    o.layer_hi = 0;
    CHECK(cl_decomposer_new(&d, m, &o, 2, &e) == CL_ERR_USAGE);
    cl_decompose_opts_default(&o);
    o.neurons = 2;
    CHECK(cl_decomposer_new(&d, m, &o, 2, &e) == CL_ERR_USAGE);
    CHECKF(strstr(e.msg, "neuron layer 2"), "%s", e.msg);
    cl_decompose_opts_default(&o);
    o.second_order = -5;
    CHECK(cl_decomposer_new(&d, m, &o, 2, &e) == CL_ERR_USAGE);
    cl_decompose_opts_default(&o);
    CHECK(cl_decomposer_new(&d, m, &o, 0, &e) == CL_ERR_USAGE);

    /* a capture without what the decomposition needs; images out of range; zero embedding */
    o.neurons = 1;
    struct cl_vit_state *vs = NULL;
    struct cl_vit_capture *thin = NULL, *cap = NULL;
    float *px = random_pixels(m, 2, 1), emb[2 * 64];
    struct cl_decomposition r;
    if (cl_decomposer_new(&d, m, &o, 2, &e) || cl_vit_state_new(&vs, m, 2, 1, &e) ||
        cl_vit_capture_new(&thin, m, 2, CL_CAP_LN, NULL, &e) || cl_decomposer_capture_new(d, &cap, &e)) {
        CHECKF(0, "%s", e.msg);
    } else {
        CHECK(cl_decompose_image(d, 0, &r, &e) == CL_ERR_USAGE); /* no batch yet */
        cl_vit_forward(vs, px, 2, emb, thin, &e);
        CHECK(cl_decompose_batch(d, thin, emb, 2, &e) == CL_ERR_USAGE);
        CHECKF(strstr(e.msg, "capture"), "%s", e.msg);
        cl_vit_forward(vs, px, 2, emb, cap, &e);
        CHECK(cl_decompose_batch(d, cap, emb, 3, &e) == CL_ERR_USAGE);
        CHECK(cl_decompose_batch(d, cap, emb, 2, &e) == CL_OK);
        CHECK(cl_decompose_image(d, 2, &r, &e) == CL_ERR_USAGE);
        CHECK(cl_decompose_image(d, 1, &r, &e) == CL_OK && r.neurons && !r.neurons2 && !r.bias && !r.rest);
        memset(emb + m->cfg.embed_dim, 0, (size_t)m->cfg.embed_dim * sizeof *emb);
        CHECK(cl_decompose_batch(d, cap, emb, 2, &e) == CL_ERR_DATA);
        CHECKF(strstr(e.msg, "image 1"), "%s", e.msg);
    }
    enum cl_ln_conv lc;
    CHECK(cl_ln_conv_parse("centered", &lc) == 0 && lc == CL_LN_CENTERED);
    CHECK(cl_ln_conv_parse("uniform", &lc) == 0 && lc == CL_LN_UNIFORM);
    CHECK(cl_ln_conv_parse("centred", &lc) == -1);
    cl_decomposer_free(NULL);
    cl_vit_capture_free(cap);
    cl_vit_capture_free(thin);
    cl_vit_state_free(vs);
    cl_decomposer_free(d);
    free(px);
    cl_model_free(m);
}

static int find_root(void)
{
    const char *cands[] = {"tests/fixtures", "../tests/fixtures", "../../tests/fixtures"};
    for (size_t i = 0; i < sizeof cands / sizeof *cands; i++) {
        char p[300];
        snprintf(p, sizeof p, "%s/decompose/vit-tiny-gelu.safetensors", cands[i]);
        if (access(p, R_OK) == 0) {
            snprintf(root, sizeof root, "%s", cands[i]);
            return 0;
        }
    }
    fprintf(stderr, "test_decompose: tests/fixtures/decompose not found (run from the repository root)\n");
    return -1;
}

int main(void)
{
    static const struct th_case cases[] = {
        TEST(test_goldens), TEST(test_sums_and_subsets), TEST(test_tokens_sum_to_heads),
        TEST(test_neurons_sum_to_mlp), TEST(test_second_order_direct), TEST(test_deterministic_and_batch),
        TEST(test_f16_sums), TEST(test_bad_calls),
    };
    if (find_root())
        return 1;
    return th_run("decompose", cases, (int)(sizeof cases / sizeof cases[0]));
}
