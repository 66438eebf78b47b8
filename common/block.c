/* block.c - a pre-LN transformer block: x += Attn(LN1(x)); x += MLP(LN2(x)).
 *
 * Legend: B batch, N tokens, R = B N rows, D width, H heads, Dh = D / H, M MLP width.
 * Every dense layer is one sgemm over all R rows; attention is two small sgemms
 * per (item, head) reading the heads in place (row stride D).
 */
#include "block.h"

#include <math.h>
#include <string.h>

#include "linalg.h"

static void add_inplace(float *x, const float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] += y[i];
}

/* Copy row 0 of every item of a [B, N, D] buffer into dst [B, D]. */
static void copy_cls(float *dst, const float *src, int B, int N, int D)
{
    for (int b = 0; b < B; b++)
        memcpy(dst + (size_t)b * D, src + (size_t)b * N * D, (size_t)D * sizeof *dst);
}

/* ctx [R, D] <- softmax(Q K^T / sqrt(Dh)) V per item and head; q, k, v [R, D]. */
static void attention(float *ctx, const float *q, const float *k, const float *v, int B, int N,
                      const struct cl_tower_config *t, const struct cl_block_bufs *buf,
                      const struct cl_block_taps *taps)
{
    int D = t->width, H = t->heads, Dh = t->head_dim;
    float scale = 1.0f / sqrtf((float)Dh);
    for (int b = 0; b < B; b++) {
        size_t base = (size_t)b * N * D;
        for (int h = 0; h < H; h++) {
            size_t col = base + (size_t)h * Dh;
            float *s = taps && taps->attn ? taps->attn + ((size_t)b * H + h) * N * N : buf->scores; /* [N, N] */
            cl_gemm_nt(N, N, Dh, scale, q + col, D, k + col, D, 0.0f, s, N);
            cl_softmax_rows(s, N, N, N, buf->causal_n);
            if (taps && taps->attn_cls)
                memcpy(taps->attn_cls + ((size_t)b * H + h) * N, s, (size_t)N * sizeof *s);
            cl_gemm_nn(N, Dh, N, 1.0f, s, N, v + col, D, 0.0f, ctx + col, D);
        }
    }
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
