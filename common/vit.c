/* vit.c - the CLIP image tower: patch embedding, class token, positions, ln_pre,
 * pre-LN blocks, ln_post on CLS, projection; batched, with optional capture.
 *
 * Legend: B batch, S image size, P patch, G = (S/P)^2 patches, N = 1 + G tokens,
 * R = B N rows, D width, M MLP width, H heads, L layers, E embedding dim.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "block.h"
#include "linalg.h"
#include "model.h"
#include "tensor.h"

#define MAX_BATCH 65536
#define MAX_THREADS 64 /* as the worker pool */

struct cl_vit_state {
    const struct cl_model *m;
    int max_batch;
    int threads;
    float *mem;          /* one allocation carved into the buffers below */
    float *x;            /* [B, N, D] residual stream */
    float *patches;      /* [B*G, 3*P*P] im2col of the pixels (aliases bufs.hid) */
    float *tok;          /* [B*G, D] patch embeddings (aliases bufs.o) */
    float *pooled;       /* [B, D] LN_post of the CLS token */
    float *post_mean, *post_std; /* [B] */
    struct cl_block_bufs bufs;
};

enum cl_status cl_vit_state_new(struct cl_vit_state **out, const struct cl_model *m, int max_batch,
                                int threads, struct cl_err *e)
{
    *out = NULL;
    const struct cl_model_config *c = &m->cfg;
    if (max_batch < 1 || max_batch > MAX_BATCH)
        return cl_errf(e, CL_ERR_USAGE, "image batch %d outside [1, %d]", max_batch, MAX_BATCH);
    threads = threads < 1 ? 1 : threads > MAX_THREADS ? MAX_THREADS : threads;
    if ((int64_t)max_batch * c->tokens > INT_MAX / 4)
        return cl_errf(e, CL_ERR_USAGE, "%s: %d images of %d tokens are too many for one batch", c->name,
                       max_batch, c->tokens);
    size_t T = (size_t)threads, B = (size_t)max_batch, N = (size_t)c->tokens, G = N - 1;
    size_t D = (size_t)c->vision.width;
    size_t M = (size_t)c->vision.mlp, K = 3 * (size_t)c->patch * c->patch, R = B * N;
    /* sizes are bounded by the config caps (D, M <= 2^16, N <= 2^16 + 1) and B <= 2^16:
     * every product below fits in 64 bits */
    size_t hid = R * M > B * G * K ? R * M : B * G * K;
    size_t total = cl_up16(R * D) + cl_block_bufs_floats(R, D, hid, N, T) + cl_up16(B * D) + cl_up16(B) * 2;
    struct cl_vit_state *s = calloc(1, sizeof *s);
    if (!s || total > SIZE_MAX / sizeof(float) ||
        posix_memalign((void **)&s->mem, 64, total * sizeof(float)) != 0) {
        free(s);
        return cl_errf(e, CL_ERR_NOMEM, "%s: out of memory for image activations of %d images (%zu MB)",
                       c->name, max_batch, total * sizeof(float) >> 20);
    }
    s->m = m;
    s->max_batch = max_batch;
    s->threads = threads;
    float *at = s->mem;
    s->x = cl_carve(&at, R * D);
    cl_block_bufs_carve(&s->bufs, &at, R, D, hid, N, T);
    s->pooled = cl_carve(&at, B * D);
    s->post_mean = cl_carve(&at, B);
    s->post_std = cl_carve(&at, B);
    s->patches = s->bufs.hid; /* dead before the first block */
    s->tok = s->bufs.o;
    *out = s;
    return CL_OK;
}

void cl_vit_state_free(struct cl_vit_state *s)
{
    if (!s)
        return;
    free(s->mem);
    free(s);
}

/* ---------------------------------------------------------------- capture */

/* Allocate a capture buffer of the given shape, its size checked for overflow. */
static enum cl_status cap_alloc(float **p, const char *what, int nd, const int64_t *shape, struct cl_err *e)
{
    size_t numel, nbytes;
    *p = NULL;
    if (cl_shape_bytes(shape, nd, sizeof(float), SIZE_MAX - 64, &numel, &nbytes) != 0)
        return cl_errf(e, CL_ERR_USAGE, "capturing %s: the buffer's size overflows", what);
    if (posix_memalign((void **)p, 64, nbytes + 1) != 0) {
        *p = NULL;
        return cl_errf(e, CL_ERR_NOMEM, "out of memory capturing %s (%zu MB)", what, nbytes >> 20);
    }
    return CL_OK;
}

#define CAP(ptr, what, ...) \
    cap_alloc(&(ptr), what, (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), \
              (const int64_t[]){__VA_ARGS__}, e)

enum cl_status cl_vit_capture_new(struct cl_vit_capture **out, const struct cl_model *m, int max_batch,
                                  unsigned flags, const uint8_t *mlp_layers, struct cl_err *e)
{
    *out = NULL;
    const struct cl_model_config *c = &m->cfg;
    if (max_batch < 1 || max_batch > MAX_BATCH)
        return cl_errf(e, CL_ERR_USAGE, "capture batch %d outside [1, %d]", max_batch, MAX_BATCH);
    struct cl_vit_capture *cap = calloc(1, sizeof *cap);
    if (!cap)
        return cl_errf(e, CL_ERR_NOMEM, "out of memory");
    cap->flags = flags;
    cap->layers = c->vision.layers;
    cap->batch = max_batch;
    cap->tokens = c->tokens;
    cap->heads = c->vision.heads;
    cap->head_dim = c->vision.head_dim;
    cap->width = c->vision.width;
    cap->mlp = c->vision.mlp;
    for (int l = 0; l < CL_MODEL_MAX_LAYERS; l++)
        cap->mlp_slot[l] = -1;
    if (flags & CL_CAP_MLP_ACT)
        for (int l = 0; l < cap->layers; l++)
            if (!mlp_layers || mlp_layers[l])
                cap->mlp_slot[l] = cap->mlp_layers++;
    int64_t L = cap->layers, B = max_batch, N = cap->tokens, H = cap->heads, D = cap->width, M = cap->mlp;
    enum cl_status s = CL_OK;
    if (flags & CL_CAP_LN) {
        if ((s = CAP(cap->ln1_mean, "ln_1 means", L, B, N)) ||
            (s = CAP(cap->ln1_std, "ln_1 stds", L, B, N)) ||
            (s = CAP(cap->ln2_mean, "ln_2 means", L, B, N)) ||
            (s = CAP(cap->ln2_std, "ln_2 stds", L, B, N)))
            goto fail;
    }
    if ((flags & (CL_CAP_LN | CL_CAP_CLS_OUT)) &&
        ((s = CAP(cap->post_mean, "ln_post means", B)) || (s = CAP(cap->post_std, "ln_post stds", B))))
        goto fail;
    if ((flags & CL_CAP_ATTN) && (s = CAP(cap->attn, "attention", L, B, H, N, N)))
        goto fail;
    if ((flags & CL_CAP_ATTN_CLS) && (s = CAP(cap->attn_cls, "CLS attention", L, B, H, N)))
        goto fail;
    if ((flags & CL_CAP_VALUES) && (s = CAP(cap->values, "values", L, B, N, D)))
        goto fail;
    if ((flags & CL_CAP_MLP_ACT) && cap->mlp_layers &&
        (s = CAP(cap->mlp_act, "MLP activations", cap->mlp_layers, B, N, M)))
        goto fail;
    if ((flags & CL_CAP_RESID) && (s = CAP(cap->resid, "residual stream", L + 1, B, N, D)))
        goto fail;
    if (flags & CL_CAP_CLS_OUT) {
        if ((s = CAP(cap->attn_out_cls, "attention outputs", L, B, D)) ||
            (s = CAP(cap->mlp_out_cls, "MLP outputs", L, B, D)) ||
            (s = CAP(cap->pooled, "pooled CLS", B, D)))
            goto fail;
    }
    *out = cap;
    return CL_OK;
fail:
    cl_vit_capture_free(cap);
    return s;
}

void cl_vit_capture_free(struct cl_vit_capture *c)
{
    if (!c)
        return;
    float *bufs[] = {c->ln1_mean, c->ln1_std, c->ln2_mean, c->ln2_std, c->post_mean, c->post_std, c->attn,
                     c->attn_cls, c->values, c->mlp_act, c->resid, c->attn_out_cls, c->mlp_out_cls,
                     c->pooled};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        free(bufs[i]);
    free(c);
}

/* The destinations of layer l in cap (all NULL without a capture). */
static struct cl_block_taps layer_taps(const struct cl_vit_capture *c, int l)
{
    struct cl_block_taps t = {0};
    if (!c)
        return t;
    t.ln1_mean = cl_cap_ln1_mean(c, l, 0);
    t.ln1_std = cl_cap_ln1_std(c, l, 0);
    t.ln2_mean = cl_cap_ln2_mean(c, l, 0);
    t.ln2_std = cl_cap_ln2_std(c, l, 0);
    t.attn = cl_cap_attn(c, l, 0);
    t.attn_cls = cl_cap_attn_cls(c, l, 0);
    t.values = cl_cap_values(c, l, 0);
    t.mlp_act = cl_cap_mlp_act(c, l, 0);
    t.attn_out_cls = cl_cap_attn_out_cls(c, l, 0);
    t.mlp_out_cls = cl_cap_mlp_out_cls(c, l, 0);
    return t;
}

/* ---------------------------------------------------------------- forward */

/* patches [B*G, 3*P*P] <- pixels [B, 3, S, S]: row (b, gy, gx), column (c, ky, kx),
 * the order of conv1's flattened weight. */
static void im2col(float *patches, const float *pixels, int B, int S, int P)
{
    int g = S / P, K = 3 * P * P;
    for (int b = 0; b < B; b++)
        for (int gy = 0; gy < g; gy++)
            for (int gx = 0; gx < g; gx++) {
                float *row = patches + ((size_t)(b * g + gy) * g + gx) * K;
                for (int c = 0; c < 3; c++)
                    for (int ky = 0; ky < P; ky++) {
                        const float *src = pixels + (((size_t)b * 3 + c) * S + gy * P + ky) * S + gx * P;
                        memcpy(row + (c * P + ky) * P, src, (size_t)P * sizeof *row);
                    }
            }
}

enum cl_status cl_vit_forward(struct cl_vit_state *s, const float *pixels, int n, float *emb,
                              struct cl_vit_capture *cap, struct cl_err *e)
{
    const struct cl_model *m = s->m;
    const struct cl_model_config *c = &m->cfg;
    const struct cl_vision_weights *w = &m->vis;
    const struct cl_tower_config *t = &c->vision;
    if (n < 1 || n > s->max_batch)
        return cl_errf(e, CL_ERR_USAGE, "%d images for a state of at most %d", n, s->max_batch);
    if (cap && (n > cap->batch || cap->layers != t->layers || cap->width != t->width ||
                cap->tokens != c->tokens))
        return cl_errf(e, CL_ERR_USAGE, "capture does not fit %d images of model %s", n, c->name);
    cl_linalg_set_threads(s->threads);
    int N = c->tokens, G = N - 1, D = t->width, P = c->patch, S = c->image_size, E = c->embed_dim;
    size_t ND = (size_t)N * D;

    /* patch embedding: one sgemm of all patches against conv1's weight */
    im2col(s->patches, pixels, n, S, P);
    cl_linear(s->tok, s->patches, w->patch, NULL, n * G, D, 3 * P * P);
    /* x[b] = [cls; tokens] + positions, then ln_pre */
    for (int b = 0; b < n; b++) {
        float *xb = s->x + b * ND;
        const float *tb = s->tok + (size_t)b * G * D;
        for (int d = 0; d < D; d++)
            xb[d] = w->cls[d] + w->pos[d];
        for (size_t i = 0; i < (size_t)G * D; i++)
            xb[D + i] = tb[i] + w->pos[D + i];
    }
    cl_layernorm(s->x, NULL, NULL, s->x, w->ln_pre_g, w->ln_pre_b, n * N, D, t->ln_eps);

    /* the last block only for the CLS token unless the capture wants all of its tokens */
    int L = t->layers;
    int full_last = cap && ((cap->flags & (CL_CAP_LN | CL_CAP_ATTN | CL_CAP_RESID)) ||
                            cl_cap_mlp_act(cap, L - 1, 0) != NULL);
    for (int l = 0; l < L; l++) {
        if (cap && cap->resid)
            memcpy(cl_cap_resid(cap, l, 0), s->x, n * ND * sizeof *s->x);
        struct cl_block_taps taps = layer_taps(cap, l);
        if (l == L - 1 && !full_last)
            cl_block_forward_cls(s->x, n, N, t, &w->blocks[l], &s->bufs, cap ? &taps : NULL);
        else
            cl_block_forward(s->x, n, N, t, &w->blocks[l], &s->bufs, cap ? &taps : NULL);
    }
    if (cap && cap->resid)
        memcpy(cl_cap_resid(cap, L, 0), s->x, n * ND * sizeof *s->x);

    /* ln_post on each CLS token, then the projection: emb [n, E] = pooled proj^T */
    for (int b = 0; b < n; b++)
        cl_layernorm(s->pooled + (size_t)b * D, s->post_mean + b, s->post_std + b, s->x + b * ND,
                     w->ln_post_g, w->ln_post_b, 1, D, t->ln_eps);
    cl_linear(emb, s->pooled, w->proj, NULL, n, E, D);
    if (cap) {
        if (cap->post_mean) {
            memcpy(cap->post_mean, s->post_mean, (size_t)n * sizeof(float));
            memcpy(cap->post_std, s->post_std, (size_t)n * sizeof(float));
        }
        if (cap->pooled)
            memcpy(cap->pooled, s->pooled, (size_t)n * D * sizeof(float));
        cap->n = n;
    }
    return CL_OK;
}
