/* block.c - a pre-LN transformer block: x += Attn(LN1(x)); x += MLP(LN2(x)).
 *
 * Legend: B batch, N tokens, R = B N rows, D width, H heads, Dh = D / H, M MLP width.
 * Every dense layer is one sgemm over all R rows; attention is two small sgemms
 * per (item, head) reading the heads in place (row stride D).
 */
#include "block.h"

#include <assert.h>
#include <math.h>
#include <string.h>

#include "linalg.h"

size_t cl_block_bufs_floats(size_t R, size_t D, size_t hid, size_t N, size_t T)
{
    return cl_up16(R * D) * 5 + cl_up16(hid) + cl_up16(N * N * T) + cl_up16(R) * 2;
}

void cl_block_bufs_carve(struct cl_block_bufs *b, float **at, size_t R, size_t D, size_t hid, size_t N,
                         size_t T)
{
    b->h = cl_carve(at, R * D);
    b->q = cl_carve(at, R * D);
    b->k = cl_carve(at, R * D);
    b->v = cl_carve(at, R * D);
    b->o = cl_carve(at, R * D);
    b->hid = cl_carve(at, hid);
    b->scores = cl_carve(at, N * N * T);
    b->workers = (int)T;
    b->mean = cl_carve(at, R);
    b->std = cl_carve(at, R);
    b->causal_n = NULL;
}

struct add_job {
    float *x;
    const float *y;
    size_t n;
};

static void add_blocks(void *ctx, int b0, int b1, int worker)
{
    const struct add_job *j = ctx;
    size_t end = (size_t)b1 * 4096 < j->n ? (size_t)b1 * 4096 : j->n;
    (void)worker;
    for (size_t i = (size_t)b0 * 4096; i < end; i++)
        j->x[i] += j->y[i];
}

/* x += y over n floats */
static void add_inplace(float *x, const float *y, size_t n)
{
    struct add_job j = {x, y, n};
    cl_parallel_for((int)((n + 4095) / 4096), 8, add_blocks, &j);
}

/* Copy row 0 of every item of a [B, N, D] buffer into dst [B, D]. */
static void copy_cls(float *dst, const float *src, int B, int N, int D)
{
    for (int b = 0; b < B; b++)
        memcpy(dst + (size_t)b * D, src + (size_t)b * N * D, (size_t)D * sizeof *dst);
}

struct attn_job {
    float *ctx;
    const float *q, *k, *v;
    int N;
    const struct cl_tower_config *t;
    const struct cl_block_bufs *buf;
    const struct cl_block_taps *taps;
};

/* (item, head) pairs p0 .. p1-1: ctx = softmax(Q K^T / sqrt(Dh)) V, heads read in place
 * (row stride D); each worker has its own score matrix unless attention is captured. */
static void attn_pairs(void *ctx, int p0, int p1, int worker)
{
    const struct attn_job *j = ctx;
    int N = j->N, D = j->t->width, H = j->t->heads, Dh = j->t->head_dim;
    float scale = 1.0f / sqrtf((float)Dh);
    const struct cl_block_taps *tp = j->taps;
    for (int p = p0; p < p1; p++) {
        int b = p / H, h = p % H;
        size_t col = (size_t)b * N * D + (size_t)h * Dh;
        float *s = tp && tp->attn ? tp->attn + (size_t)p * N * N
                                  : j->buf->scores + (size_t)worker * N * N; /* [N, N] */
        cl_gemm_nt(N, N, Dh, scale, j->q + col, D, j->k + col, D, 0.0f, s, N);
        cl_softmax_rows(s, N, N, N, j->buf->causal_n);
        if (tp && tp->attn_cls)
            memcpy(tp->attn_cls + (size_t)p * N, s, (size_t)N * sizeof *s);
        cl_gemm_nn(N, Dh, N, 1.0f, s, N, j->v + col, D, 0.0f, j->ctx + col, D);
    }
}

/* ctx [R, D] <- multi-head attention of q, k, v [R, D]: the (item, head) pairs are
 * spread over the workers, each calling single-threaded sgemm. */
static void attention(float *ctx, const float *q, const float *k, const float *v, int B, int N,
                      const struct cl_tower_config *t, const struct cl_block_bufs *buf,
                      const struct cl_block_taps *taps)
{
    struct attn_job j = {ctx, q, k, v, N, t, buf, taps};
    int threads = cl_linalg_threads();
    assert(threads <= buf->workers);
    if (threads > 1)
        cl_linalg_blas_threads(1);
    cl_parallel_for(B * t->heads, 1, attn_pairs, &j);
    if (threads > 1)
        cl_linalg_blas_threads(threads);
}

static void activation(float *x, size_t n, enum cl_act act)
{
    if (act == CL_ACT_GELU)
        cl_gelu(x, n);
    else
        cl_quick_gelu(x, n);
}

void cl_block_forward(float *x, int B, int N, const struct cl_tower_config *t, const struct cl_block *w,
                      const struct cl_block_bufs *buf, const struct cl_block_taps *taps)
{
    static const struct cl_block_taps none;
    const struct cl_block_taps *tp = taps ? taps : &none;
    int R = B * N, D = t->width, M = t->mlp;
    size_t RD = (size_t)R * D;
    float *h = buf->h, *o = buf->o;

    /* attention: h = LN1(x); q, k, v = h W^T + b; ctx (in h) = softmax(q k^T / sqrt Dh) v */
    cl_layernorm(h, tp->ln1_mean ? tp->ln1_mean : buf->mean, tp->ln1_std ? tp->ln1_std : buf->std, x,
                 w->ln1_g, w->ln1_b, R, D, t->ln_eps);
    cl_linear(buf->q, h, w->wq, w->bq, R, D, D);
    cl_linear(buf->k, h, w->wk, w->bk, R, D, D);
    cl_linear(buf->v, h, w->wv, w->bv, R, D, D);
    if (tp->values)
        memcpy(tp->values, buf->v, RD * sizeof *x);
    attention(h, buf->q, buf->k, buf->v, B, N, t, buf, taps);
    cl_linear(o, h, w->wo, w->bo, R, D, D);
    if (tp->attn_out_cls)
        copy_cls(tp->attn_out_cls, o, B, N, D);
    add_inplace(x, o, RD);

    /* MLP: h = LN2(x); hid = act(h W_fc^T + b_fc); x += hid W_proj^T + b_proj */
    cl_layernorm(h, tp->ln2_mean ? tp->ln2_mean : buf->mean, tp->ln2_std ? tp->ln2_std : buf->std, x,
                 w->ln2_g, w->ln2_b, R, D, t->ln_eps);
    cl_linear(buf->hid, h, w->w_fc, w->b_fc, R, M, D);
    activation(buf->hid, (size_t)R * M, t->act);
    if (tp->mlp_act)
        memcpy(tp->mlp_act, buf->hid, (size_t)R * M * sizeof *x);
    cl_linear(o, buf->hid, w->w_proj, w->b_proj, R, D, M);
    if (tp->mlp_out_cls)
        copy_cls(tp->mlp_out_cls, o, B, N, D);
    add_inplace(x, o, RD);
}

/* x[b, 0, :] += y[b, :] for every item: the CLS rows of x [B, N, D] */
static void add_cls(float *x, const float *y, int B, int N, int D)
{
    for (int b = 0; b < B; b++)
        for (int d = 0; d < D; d++)
            x[(size_t)b * N * D + d] += y[(size_t)b * D + d];
}

void cl_block_forward_cls(float *x, int B, int N, const struct cl_tower_config *t, const struct cl_block *w,
                          const struct cl_block_bufs *buf, const struct cl_block_taps *taps)
{
    static const struct cl_block_taps none;
    const struct cl_block_taps *tp = taps ? taps : &none;
    int R = B * N, D = t->width, M = t->mlp, H = t->heads, Dh = t->head_dim;
    size_t ND = (size_t)N * D;
    float *h = buf->h, *o = buf->o, *qc = buf->q; /* qc [B, D]: the CLS queries */
    float scale = 1.0f / sqrtf((float)Dh);

    /* h = LN1(x) for every token; keys and values for every token, the query for CLS only
     * (the CLS rows of h are N D floats apart) */
    cl_layernorm(h, tp->ln1_mean ? tp->ln1_mean : buf->mean, tp->ln1_std ? tp->ln1_std : buf->std, x,
                 w->ln1_g, w->ln1_b, R, D, t->ln_eps);
    for (int b = 0; b < B; b++)
        memcpy(qc + (size_t)b * D, w->bq, (size_t)D * sizeof *qc);
    cl_gemm_nt(B, D, D, 1.0f, h, (int)ND, w->wq, D, 1.0f, qc, D);
    cl_linear(buf->k, h, w->wk, w->bk, R, D, D);
    cl_linear(buf->v, h, w->wv, w->bv, R, D, D);
    if (tp->values)
        memcpy(tp->values, buf->v, (size_t)R * D * sizeof *x);

    /* the CLS row of every head's attention; ctx [B, D] into h */
    for (int b = 0; b < B; b++)
        for (int hh = 0; hh < H; hh++) {
            size_t col = (size_t)b * ND + (size_t)hh * Dh;
            float *s = buf->scores; /* [N] */
            cl_gemm_nt(1, N, Dh, scale, qc + (size_t)b * D + (size_t)hh * Dh, Dh, buf->k + col, D, 0.0f, s, N);
            cl_softmax_rows(s, 1, N, N, NULL);
            if (tp->attn_cls)
                memcpy(tp->attn_cls + ((size_t)b * H + hh) * N, s, (size_t)N * sizeof *s);
            cl_gemm_nn(1, Dh, N, 1.0f, s, N, buf->v + col, D, 0.0f, h + (size_t)b * D + (size_t)hh * Dh, Dh);
        }
    cl_linear(o, h, w->wo, w->bo, B, D, D);
    if (tp->attn_out_cls)
        memcpy(tp->attn_out_cls, o, (size_t)B * D * sizeof *o);
    add_cls(x, o, B, N, D);

    /* MLP of the CLS rows: h [B, D] = LN2(x_cls); x_cls += MLP(h) */
    for (int b = 0; b < B; b++)
        cl_layernorm(h + (size_t)b * D, NULL, NULL, x + b * ND, w->ln2_g, w->ln2_b, 1, D, t->ln_eps);
    cl_linear(buf->hid, h, w->w_fc, w->b_fc, B, M, D);
    activation(buf->hid, (size_t)B * M, t->act);
    cl_linear(o, buf->hid, w->w_proj, w->b_proj, B, D, M);
    if (tp->mlp_out_cls)
        memcpy(tp->mlp_out_cls, o, (size_t)B * D * sizeof *o);
    add_cls(x, o, B, N, D);
}
