/* decompose.c - the additive decomposition of image embeddings (formulas in decompose.h).
 *
 * Legend: B batch, L layers, L' kept layers, H heads, Dh head width, N tokens, D width,
 * M MLP width, E embedding dim, K2 later heads of the second-order layer, X = Dh + 3.
 *
 * Every part is P (g (c - m) / sigma + beta) / |e| for a summand c.  With the matrix
 * post = P diag(g) [E, D] (centred on the right, P g C, in the centered convention) and
 * the vectors pg = P g, pb = P b, that is
 *     post c * a  +  pg * ms  +  pb * bs,      a = 1 / (sigma |e|),
 * ms = -mu a / (2L+1) and bs = 1 / ((2L+1) |e|) for a whole stream component under the
 * uniform convention (divided further by H, N or M for heads, tokens and neurons), and
 * ms = bs = 0 under the centered one.  A head's c is W_O,h ctx_h + b_O / H, so the three
 * scalar columns ride along with the head's context in one sgemm through
 * qaug_lh = [post W_O,h | post b_O | pg | pb]  [E, X].
 */
#include "decompose.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "linalg.h"

struct cl_decomposer {
    const struct cl_model *m;
    struct cl_decompose_opts o;
    int L, H, Dh, N, D, M, E, X;
    int lo, kept;          /* first kept layer, L' */
    int K2;                /* (L - 1 - l2) H, 0 without second order */
    int max_batch;
    float *mem;            /* one allocation carved into the buffers below */
    /* image-independent */
    float *post;           /* [E, D] P diag(g), right-centred when CENTERED */
    float *pg, *pb;        /* [E] P g, P b */
    float *x0;             /* [D] the CLS residual entering block 0 (the same for every image) */
    float *px0;            /* [E] post x0 */
    float *qaug;           /* [L', H, E, X] */
    float *wn;             /* [M, E] post w_n of MLP layer l1 */
    float *u;              /* [M, K2, E] second-order vectors of MLP layer l2 */
    /* per batch */
    const struct cl_vit_capture *cap;
    int n;
    float *a, *ms, *bs;    /* [B] 1/(sigma |e|), mean share, bias share of one component */
    float *mu, *sigma;     /* [B] ln_post statistics of the final CLS residual */
    float *z;              /* [2, D] the final CLS residual of one image; LN scratch */
    float *embedding;      /* [B, E] */
    float *embed;          /* [B, E] */
    float *heads;          /* [B, L', H, E] (without tokens) */
    float *mlps;           /* [B, L', E] */
    float *rest;           /* [B, E] */
    float *bias;           /* [B, E] */
    float *ya, *ym;        /* [L, B, E] post times the attention / MLP output at CLS */
    float *ctx;            /* [B, D] CLS attention context of one layer */
    float *x;              /* [max(B, N), X] head input rows */
    float *s2;             /* [B, M, K2] second-order scalars times a */
    float *sk;             /* [K2, N] later heads' CLS attention / ln_1 std */
    float *sm;             /* [K2, M] */
    float *neurons2;       /* [B, M, E] */
    /* per image */
    float *tok;            /* [L', H, N, E] */
    float *neurons;        /* [M, E] */
};

const char *cl_ln_conv_name(enum cl_ln_conv c) { return c == CL_LN_CENTERED ? "centered" : "uniform"; }

int cl_ln_conv_parse(const char *s, enum cl_ln_conv *out)
{
    if (!strcmp(s, "uniform"))
        *out = CL_LN_UNIFORM;
    else if (!strcmp(s, "centered"))
        *out = CL_LN_CENTERED;
    else
        return -1;
    return 0;
}

void cl_decompose_opts_default(struct cl_decompose_opts *o)
{
    memset(o, 0, sizeof *o);
    o->ln = CL_LN_UNIFORM;
    o->layer_lo = o->layer_hi = -1;
    o->neurons = o->second_order = -1;
}

/* ---------------------------------------------------------------- precomputation */

/* post [E, D] = P diag(g), minus each row's mean when centred; pg, pb [E]. */
static void build_post(float *post, float *pg, float *pb, const struct cl_vision_weights *w, int E, int D,
                       int centred)
{
    for (int e = 0; e < E; e++) {
        const float *p = w->proj + (size_t)e * D;
        float *q = post + (size_t)e * D;
        double sg = 0, sb = 0, sq = 0;
        for (int d = 0; d < D; d++) {
            q[d] = p[d] * w->ln_post_g[d];
            sg += (double)p[d] * w->ln_post_g[d];
            sb += (double)p[d] * w->ln_post_b[d];
            sq += q[d];
        }
        pg[e] = (float)sg;
        pb[e] = (float)sb;
        if (centred) {
            float mean = (float)(sq / D);
            for (int d = 0; d < D; d++)
                q[d] -= mean;
        }
    }
}

/* y [E] = A [E, D] x [D], in double. */
static void matvec(float *y, const float *A, const float *x, int E, int D)
{
    for (int e = 0; e < E; e++) {
        double s = 0;
        for (int d = 0; d < D; d++)
            s += (double)A[(size_t)e * D + d] * x[d];
        y[e] = (float)s;
    }
}

/* qaug [L', H, E, X] = [post W_O,h | post b_O | pg | pb] for the kept layers; tmp [E, D]. */
static void build_qaug(struct cl_decomposer *d, float *tmp)
{
    const struct cl_vision_weights *w = &d->m->vis;
    int E = d->E, D = d->D, H = d->H, Dh = d->Dh, X = d->X;
    float *bo = d->x; /* [E] scratch, free until the first batch */
    for (int lk = 0; lk < d->kept; lk++) {
        const struct cl_block *blk = &w->blocks[d->lo + lk];
        cl_gemm_nn(E, D, D, 1.0f, d->post, D, blk->wo, D, 0.0f, tmp, D);
        matvec(bo, d->post, blk->bo, E, D);
        for (int h = 0; h < H; h++) {
            float *q = d->qaug + ((size_t)lk * H + h) * E * X;
            for (int e = 0; e < E; e++) {
                memcpy(q + (size_t)e * X, tmp + (size_t)e * D + (size_t)h * Dh, (size_t)Dh * sizeof *q);
                q[(size_t)e * X + Dh] = bo[e];
                q[(size_t)e * X + Dh + 1] = d->pg[e];
                q[(size_t)e * X + Dh + 2] = d->pb[e];
            }
        }
    }
}

/* dst [cols, rows] = src [rows, cols]^T, in 32 x 32 tiles. */
static void transpose(float *dst, const float *src, int rows, int cols)
{
    for (int r0 = 0; r0 < rows; r0 += 32)
        for (int c0 = 0; c0 < cols; c0 += 32)
            for (int r = r0; r < rows && r < r0 + 32; r++)
                for (int c = c0; c < cols && c < c0 + 32; c++)
                    dst[(size_t)c * rows + r] = src[(size_t)r * cols + c];
}

/* wn [M, E] = W_proj^T post^T of MLP layer l1; wt [M, D] scratch. */
static void build_wn(struct cl_decomposer *d, float *wt)
{
    transpose(wt, d->m->vis.blocks[d->o.neurons].w_proj, d->D, d->M);
    cl_gemm_nt(d->M, d->E, d->D, 1.0f, wt, d->D, d->post, d->D, 0.0f, d->wn, d->E);
}

/* u [M, K2, E]: u[n, (l'-l2-1) H + h] = P g C W_O,h W_V,h (g_l' C w_n), w_n column n of
 * layer l2's c_proj; computed row by row of neurons (n outermost), so each head's block is
 * one sgemm writing u with row stride K2 E.  Scratch: post_c, pw [E, D]; wt, gt, vt [M, D]. */
static void build_u(struct cl_decomposer *d, float *post_c, float *pw, float *wt, float *gt, float *vt)
{
    const struct cl_vision_weights *w = &d->m->vis;
    int E = d->E, D = d->D, M = d->M, H = d->H, Dh = d->Dh, K2 = d->K2, l2 = d->o.second_order;
    float *pg = d->x, *pb = d->x + E; /* ignored copies of pg, pb */
    build_post(post_c, pg, pb, w, E, D, 1);
    /* wt = (C W_proj)^T: every neuron's output vector, centred over D, as a row */
    transpose(wt, w->blocks[l2].w_proj, D, M);
    for (int n = 0; n < M; n++) {
        float *r = wt + (size_t)n * D;
        double s = 0;
        for (int i = 0; i < D; i++)
            s += r[i];
        float mean = (float)(s / D);
        for (int i = 0; i < D; i++)
            r[i] -= mean;
    }
    for (int lp = l2 + 1; lp < d->L; lp++) {
        const struct cl_block *blk = &w->blocks[lp];
        for (int n = 0; n < M; n++)
            for (int i = 0; i < D; i++)
                gt[(size_t)n * D + i] = wt[(size_t)n * D + i] * blk->ln1_g[i];
        cl_gemm_nt(M, D, D, 1.0f, gt, D, blk->wv, D, 0.0f, vt, D);      /* vt = (W_V diag(g) C W)^T */
        cl_gemm_nn(E, D, D, 1.0f, post_c, D, blk->wo, D, 0.0f, pw, D);  /* pw = P g C W_O */
        for (int h = 0; h < H; h++) {
            int k = (lp - l2 - 1) * H + h;
            cl_gemm_nt(M, E, Dh, 1.0f, vt + (size_t)h * Dh, D, pw + (size_t)h * Dh, D, 0.0f,
                       d->u + (size_t)k * E, K2 * E);
        }
    }
}

enum cl_status cl_decomposer_new(struct cl_decomposer **out, const struct cl_model *m,
                                 const struct cl_decompose_opts *o, int max_batch, struct cl_err *e)
{
    *out = NULL;
    const struct cl_model_config *c = &m->cfg;
    int L = c->vision.layers;
    struct cl_decompose_opts op = *o;
    if (op.layer_lo < 0 && op.layer_hi < 0) {
        op.layer_lo = 0;
        op.layer_hi = L - 1;
    }
    if (op.layer_lo < 0 || op.layer_hi < op.layer_lo || op.layer_hi >= L)
        return cl_errf(e, CL_ERR_USAGE, "layers %d-%d outside the %d layers (0-%d) of %s", op.layer_lo,
                       op.layer_hi, L, L - 1, c->name);
    if (op.neurons < -1 || op.neurons >= L)
        return cl_errf(e, CL_ERR_USAGE, "neuron layer %d outside the %d layers (0-%d) of %s", op.neurons, L,
                       L - 1, c->name);
    if (op.second_order < -1 || op.second_order >= L)
        return cl_errf(e, CL_ERR_USAGE, "second-order layer %d outside the %d layers (0-%d) of %s",
                       op.second_order, L, L - 1, c->name);
    if (op.ln != CL_LN_UNIFORM && op.ln != CL_LN_CENTERED)
        return cl_errf(e, CL_ERR_USAGE, "unknown LayerNorm convention %d", (int)op.ln);
    if (max_batch < 1 || max_batch > 65536)
        return cl_errf(e, CL_ERR_USAGE, "decomposition batch %d outside [1, 65536]", max_batch);

    struct cl_decomposer *d = calloc(1, sizeof *d);
    if (!d)
        return cl_errf(e, CL_ERR_NOMEM, "out of memory");
    d->m = m;
    d->o = op;
    d->L = L;
    d->H = c->vision.heads;
    d->Dh = c->vision.head_dim;
    d->N = c->tokens;
    d->D = c->vision.width;
    d->M = c->vision.mlp;
    d->E = c->embed_dim;
    d->X = d->Dh + 3;
    d->lo = op.layer_lo;
    d->kept = op.layer_hi - op.layer_lo + 1;
    d->K2 = op.second_order >= 0 ? (L - 1 - op.second_order) * d->H : 0;
    d->max_batch = max_batch;

    /* the size table: model dimensions are capped by the loader (D, M <= 2^16, N <= 2^16 + 1,
     * L <= 256) and B <= 2^16, so no product below overflows 64 bits */
    size_t B = (size_t)max_batch, Lz = (size_t)L, H = (size_t)d->H, N = (size_t)d->N, D = (size_t)d->D;
    size_t M = (size_t)d->M, E = (size_t)d->E, X = (size_t)d->X, Lk = (size_t)d->kept, K2 = (size_t)d->K2;
    int first = op.neurons >= 0, second = op.second_order >= 0;
    size_t xrows = B > N ? B : N;
    /* leading dimensions handed to BLAS are ints */
    if (Lk * H * E > INT_MAX || M * K2 > INT_MAX || M * E > INT_MAX || K2 * E > INT_MAX || N * E > INT_MAX ||
        K2 * N > INT_MAX) {
        free(d);
        return cl_errf(e, CL_ERR_UNSUPPORTED, "%s: dimensions too large for a decomposition", c->name);
    }
    size_t sizes[] = {
        E * D, E, E, D, E,                               /* post, pg, pb, x0, px0 */
        Lk * H * E * X,                                  /* qaug */
        first ? M * E : 0, second ? M * K2 * E : 0,      /* wn, u */
        B, B, B, B, B, 2 * D,                            /* a, ms, bs, mu, sigma, z */
        B * E, B * E, op.tokens ? 0 : B * Lk * H * E,    /* embedding, embed, heads */
        B * Lk * E, B * E, B * E,                        /* mlps, rest, bias */
        Lz * B * E, Lz * B * E, B * D,                   /* ya, ym, ctx */
        xrows * X > 2 * E ? xrows * X : 2 * E,           /* x (also init scratch of 2 E) */
        second ? B * M * K2 : 0, second ? K2 * N : 0,    /* s2, sk */
        second ? K2 * M : 0, second ? B * M * E : 0,     /* sm, neurons2 */
        op.tokens ? Lk * H * N * E : 0, first ? M * E : 0, /* tok, neurons */
    };
    _Static_assert(sizeof sizes / sizeof *sizes == 30, "one size per carved buffer");
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        total += cl_up16(sizes[i]);
    if (total > SIZE_MAX / sizeof(float) / 2 ||
        posix_memalign((void **)&d->mem, 64, total * sizeof(float)) != 0) {
        free(d);
        return cl_errf(e, CL_ERR_NOMEM, "%s: out of memory for the decomposition of %d images (%zu MB)",
                       c->name, max_batch, total * sizeof(float) >> 20);
    }
    memset(d->mem, 0, total * sizeof(float));
    float *at = d->mem;
    float **dst[] = {&d->post, &d->pg, &d->pb, &d->x0, &d->px0, &d->qaug, &d->wn, &d->u,
                     &d->a, &d->ms, &d->bs, &d->mu, &d->sigma, &d->z,
                     &d->embedding, &d->embed, &d->heads, &d->mlps, &d->rest, &d->bias,
                     &d->ya, &d->ym, &d->ctx, &d->x, &d->s2, &d->sk, &d->sm, &d->neurons2,
                     &d->tok, &d->neurons};
    _Static_assert(sizeof dst / sizeof *dst == sizeof sizes / sizeof *sizes, "one pointer per size");
    for (size_t i = 0; i < sizeof dst / sizeof *dst; i++)
        *dst[i] = cl_carve(&at, sizes[i]);

    /* init-time scratch: [max(E, M), D] and, for second order, post_c, pw [E, D], two [M, D] */
    size_t EW = (E > M ? E : M) * D;
    size_t scratch = cl_up16(EW) + (second ? cl_up16(E * D) * 2 + cl_up16(D * M) * 2 : 0);
    float *tmp = NULL;
    if (posix_memalign((void **)&tmp, 64, scratch * sizeof(float)) != 0) {
        cl_decomposer_free(d);
        return cl_errf(e, CL_ERR_NOMEM, "%s: out of memory precomputing the decomposition (%zu MB)", c->name,
                       scratch * sizeof(float) >> 20);
    }
    const struct cl_vision_weights *w = &m->vis;
    build_post(d->post, d->pg, d->pb, w, d->E, d->D, op.ln == CL_LN_CENTERED);
    /* x0: LN_pre(class embedding + position 0), the same CLS residual for every image */
    for (int i = 0; i < d->D; i++)
        d->x0[i] = w->cls[i] + w->pos[i];
    cl_layernorm(d->x0, NULL, NULL, d->x0, w->ln_pre_g, w->ln_pre_b, 1, d->D, c->vision.ln_eps);
    matvec(d->px0, d->post, d->x0, d->E, d->D);
    build_qaug(d, tmp);
    if (first)
        build_wn(d, tmp);
    if (second && K2) {
        float *pc = tmp + cl_up16(EW), *pw = pc + cl_up16(E * D), *gt = pw + cl_up16(E * D);
        build_u(d, pc, pw, tmp, gt, gt + cl_up16(D * M));
    }
    free(tmp);
    *out = d;
    return CL_OK;
}

void cl_decomposer_free(struct cl_decomposer *d)
{
    if (!d)
        return;
    free(d->mem);
    free(d);
}

enum cl_status cl_decomposer_capture_new(const struct cl_decomposer *d, struct cl_vit_capture **cap,
                                         struct cl_err *e)
{
    /* no CL_CAP_LN unless the second order needs ln_1's stds: ln_post's statistics are
     * recomputed from the CLS outputs, so the last block may stay CLS-only as in encoding */
    uint8_t sel[CL_MODEL_MAX_LAYERS] = {0};
    unsigned flags = CL_CAP_ATTN_CLS | CL_CAP_VALUES | CL_CAP_CLS_OUT | (d->K2 ? CL_CAP_LN : 0);
    if (d->o.neurons >= 0 || d->o.second_order >= 0) {
        flags |= CL_CAP_MLP_ACT;
        if (d->o.neurons >= 0)
            sel[d->o.neurons] = 1;
        if (d->o.second_order >= 0)
            sel[d->o.second_order] = 1;
    }
    return cl_vit_capture_new(cap, d->m, d->max_batch, flags, sel, e);
}

/* ---------------------------------------------------------------- per batch */

/* y[i] = x[i] * a + pg[i] * ms + pb[i] * bs for i < E. */
static void affine(float *y, const float *x, float a, const float *pg, float ms, const float *pb, float bs,
                   int E)
{
    for (int i = 0; i < E; i++)
        y[i] = x[i] * a + pg[i] * ms + pb[i] * bs;
}

/* mu, sigma [n]: ln_post's statistics of z = x0 + sum_l (attn_l + mlp_l) at CLS, summed in the
 * forward pass's order (so z is the forward's own) and normalised by the forward's LayerNorm. */
static void ln_post_stats(struct cl_decomposer *d, int n)
{
    const struct cl_vision_weights *w = &d->m->vis;
    const struct cl_vit_capture *cap = d->cap;
    int D = d->D;
    float *z = d->z, *scratch = d->z + D;
    for (int b = 0; b < n; b++) {
        memcpy(z, d->x0, (size_t)D * sizeof *z);
        for (int l = 0; l < d->L; l++) {
            const float *ao = cl_cap_attn_out_cls(cap, l, b), *mo = cl_cap_mlp_out_cls(cap, l, b);
            for (int i = 0; i < D; i++)
                z[i] += ao[i];
            for (int i = 0; i < D; i++)
                z[i] += mo[i];
        }
        cl_layernorm(scratch, d->mu + b, d->sigma + b, z, w->ln_post_g, w->ln_post_b, 1, D,
                     d->m->cfg.vision.ln_eps);
    }
}

static enum cl_status check_capture(const struct cl_decomposer *d, const struct cl_vit_capture *cap, int n,
                                    struct cl_err *e)
{
    if (n < 1 || n > d->max_batch || !cap || n > cap->batch || n > cap->n)
        return cl_errf(e, CL_ERR_USAGE, "decomposition of %d images: batch of at most %d, capture of %d", n,
                       d->max_batch, cap ? cap->n : 0);
    if (cap->layers != d->L || cap->tokens != d->N || cap->width != d->D || cap->heads != d->H ||
        !cap->attn_cls || !cap->values || !cap->mlp_out_cls || !cap->attn_out_cls || (d->K2 && !cap->ln1_std))
        return cl_errf(e, CL_ERR_USAGE, "the capture lacks what the decomposition needs "
                                        "(make it with cl_decomposer_capture_new)");
    int layers[2] = {d->o.neurons, d->o.second_order};
    for (int i = 0; i < 2; i++)
        if (layers[i] >= 0 && !cl_cap_mlp_act(cap, layers[i], 0))
            return cl_errf(e, CL_ERR_USAGE, "the capture lacks the MLP activations of layer %d", layers[i]);
    return CL_OK;
}

/* ctx [n, D]: the CLS query's attention context of layer l, head by head. */
static void cls_context(float *ctx, const struct cl_vit_capture *cap, int l, int n, int H, int N, int D,
                        int Dh)
{
    for (int b = 0; b < n; b++) {
        const float *A = cl_cap_attn_cls(cap, l, b); /* [H, N] */
        const float *v = cl_cap_values(cap, l, b);   /* [N, D] */
        float *c = ctx + (size_t)b * D;
        memset(c, 0, (size_t)D * sizeof *c);
        for (int i = 0; i < N; i++)
            for (int h = 0; h < H; h++) {
                float p = A[(size_t)h * N + i];
                const float *vi = v + (size_t)i * D + (size_t)h * Dh;
                float *ch = c + (size_t)h * Dh;
                for (int j = 0; j < Dh; j++)
                    ch[j] += p * vi[j];
            }
    }
}

/* heads [n, L', H, E] from each kept layer's CLS context, one sgemm per head. */
static void batch_heads(struct cl_decomposer *d, int n)
{
    int H = d->H, Dh = d->Dh, D = d->D, E = d->E, X = d->X;
    size_t ldc = (size_t)d->kept * H * E;
    for (int lk = 0; lk < d->kept; lk++) {
        cls_context(d->ctx, d->cap, d->lo + lk, n, H, d->N, D, Dh);
        for (int h = 0; h < H; h++) {
            for (int b = 0; b < n; b++) {
                float *x = d->x + (size_t)b * X;
                const float *c = d->ctx + (size_t)b * D + (size_t)h * Dh;
                for (int j = 0; j < Dh; j++)
                    x[j] = c[j] * d->a[b];
                x[Dh] = d->a[b] / H;
                x[Dh + 1] = d->ms[b] / H;
                x[Dh + 2] = d->bs[b] / H;
            }
            const float *q = d->qaug + ((size_t)lk * H + h) * E * X;
            cl_gemm_nt(n, E, X, 1.0f, d->x, X, q, X, 0.0f, d->heads + ((size_t)lk * H + h) * E, (int)ldc);
        }
    }
}

/* neurons2 [n, M, E] of MLP layer l2: s2 = CLS attention / ln_1 std of the later heads times
 * the activations (one sgemm per image), then one small sgemm per neuron over the batch. */
static void batch_second_order(struct cl_decomposer *d, int n)
{
    int H = d->H, N = d->N, M = d->M, E = d->E, K2 = d->K2, l2 = d->o.second_order;
    if (!K2) {
        memset(d->neurons2, 0, (size_t)n * M * E * sizeof *d->neurons2);
        return;
    }
    const struct cl_vit_capture *cap = d->cap;
    for (int b = 0; b < n; b++) {
        for (int lp = l2 + 1; lp < d->L; lp++) {
            const float *A = cl_cap_attn_cls(cap, lp, b); /* [H, N] */
            const float *sd = cl_cap_ln1_std(cap, lp, b); /* [N] */
            for (int h = 0; h < H; h++) {
                float *row = d->sk + (size_t)((lp - l2 - 1) * H + h) * N;
                for (int i = 0; i < N; i++)
                    row[i] = A[(size_t)h * N + i] / sd[i];
            }
        }
        cl_gemm_nn(K2, M, N, 1.0f, d->sk, N, cl_cap_mlp_act(cap, l2, b), M, 0.0f, d->sm, M);
        float *s = d->s2 + (size_t)b * M * K2;
        for (int k = 0; k < K2; k++)
            for (int j = 0; j < M; j++)
                s[(size_t)j * K2 + k] = d->sm[(size_t)k * M + j] * d->a[b];
    }
    for (int j = 0; j < M; j++)
        cl_gemm_nn(n, E, K2, 1.0f, d->s2 + (size_t)j * K2, M * K2, d->u + (size_t)j * K2 * E, E, 0.0f,
                   d->neurons2 + (size_t)j * E, M * E);
}

enum cl_status cl_decompose_batch(struct cl_decomposer *d, const struct cl_vit_capture *cap,
                                  const float *emb, int n, struct cl_err *e)
{
    enum cl_status s = check_capture(d, cap, n, e);
    if (s != CL_OK)
        return s;
    int L = d->L, E = d->E, D = d->D, B = d->max_batch, cb = cap->batch;
    d->cap = cap;
    d->n = n;
    ln_post_stats(d, n);
    /* per-image scalars, the embedding, the ln_pre term and the bias */
    for (int b = 0; b < n; b++) {
        const float *eb = emb + (size_t)b * E;
        double ss = 0;
        for (int i = 0; i < E; i++)
            ss += (double)eb[i] * eb[i];
        double norm = sqrt(ss), sigma = d->sigma[b];
        if (!(norm > 0) || !isfinite(norm) || !(sigma > 0))
            return cl_errf(e, CL_ERR_DATA, "image %d of the batch: embedding norm %g, ln_post std %g "
                                           "(expected finite and positive)", b, norm, sigma);
        d->a[b] = (float)(1.0 / (sigma * norm));
        if (d->o.ln == CL_LN_UNIFORM) {
            d->ms[b] = (float)(-d->mu[b] / (sigma * norm) / (2 * L + 1));
            d->bs[b] = (float)(1.0 / (norm * (2 * L + 1)));
        } else {
            d->ms[b] = d->bs[b] = 0.0f;
        }
        for (int i = 0; i < E; i++) {
            d->embedding[(size_t)b * E + i] = (float)(eb[i] / norm);
            d->bias[(size_t)b * E + i] = (float)(d->pb[i] / norm);
        }
        affine(d->embed + (size_t)b * E, d->px0, d->a[b], d->pg, d->ms[b], d->pb, d->bs[b], E);
    }
    /* every layer's attention and MLP output at CLS through post: one sgemm per layer */
    for (int l = 0; l < L; l++) {
        cl_gemm_nt(n, E, D, 1.0f, cap->mlp_out_cls + (size_t)l * cb * D, D, d->post, D, 0.0f,
                   d->ym + (size_t)l * B * E, E);
        if (l < d->lo || l >= d->lo + d->kept)
            cl_gemm_nt(n, E, D, 1.0f, cap->attn_out_cls + (size_t)l * cb * D, D, d->post, D, 0.0f,
                       d->ya + (size_t)l * B * E, E);
    }
    for (int b = 0; b < n; b++) {
        for (int lk = 0; lk < d->kept; lk++)
            affine(d->mlps + ((size_t)b * d->kept + lk) * E, d->ym + ((size_t)(d->lo + lk) * B + b) * E,
                   d->a[b], d->pg, d->ms[b], d->pb, d->bs[b], E);
        /* rest: the attention and MLP of every layer not kept (two components each) */
        float *r = d->rest + (size_t)b * E;
        int others = L - d->kept;
        for (int i = 0; i < E; i++)
            r[i] = 2.0f * others * (d->pg[i] * d->ms[b] + d->pb[i] * d->bs[b]);
        for (int l = 0; l < L; l++) {
            if (l >= d->lo && l < d->lo + d->kept)
                continue;
            const float *ya = d->ya + ((size_t)l * B + b) * E, *ym = d->ym + ((size_t)l * B + b) * E;
            for (int i = 0; i < E; i++)
                r[i] += (ya[i] + ym[i]) * d->a[b];
        }
    }
    if (!d->o.tokens)
        batch_heads(d, n);
    if (d->o.second_order >= 0)
        batch_second_order(d, n);
    return CL_OK;
}

/* ---------------------------------------------------------------- per image */

/* tok [L', H, N, E] of image b: per head, the rows A[0,i] v_i,h a | a/(HN) | ms/(HN) | bs/(HN)
 * through qaug in one sgemm. */
static void image_tokens(struct cl_decomposer *d, int b)
{
    int H = d->H, Dh = d->Dh, D = d->D, N = d->N, E = d->E, X = d->X;
    float hn = (float)H * N, a = d->a[b];
    for (int lk = 0; lk < d->kept; lk++) {
        const float *A = cl_cap_attn_cls(d->cap, d->lo + lk, b); /* [H, N] */
        const float *v = cl_cap_values(d->cap, d->lo + lk, b);   /* [N, D] */
        for (int h = 0; h < H; h++) {
            for (int i = 0; i < N; i++) {
                float *x = d->x + (size_t)i * X, p = A[(size_t)h * N + i] * a;
                const float *vi = v + (size_t)i * D + (size_t)h * Dh;
                for (int j = 0; j < Dh; j++)
                    x[j] = vi[j] * p;
                x[Dh] = a / hn;
                x[Dh + 1] = d->ms[b] / hn;
                x[Dh + 2] = d->bs[b] / hn;
            }
            const float *q = d->qaug + ((size_t)lk * H + h) * E * X;
            cl_gemm_nt(N, E, X, 1.0f, d->x, X, q, X, 0.0f, d->tok + ((size_t)lk * H + h) * N * E, E);
        }
    }
}

/* neurons [M, E] of image b: act_n at CLS times post w_n, plus the even shares. */
static void image_neurons(struct cl_decomposer *d, int b)
{
    int M = d->M, E = d->E;
    const float *act = cl_cap_mlp_act(d->cap, d->o.neurons, b); /* [N, M]; row 0 is CLS */
    float ms = d->ms[b] / M, bs = d->bs[b] / M;
    for (int j = 0; j < M; j++)
        affine(d->neurons + (size_t)j * E, d->wn + (size_t)j * E, act[j] * d->a[b], d->pg, ms, d->pb, bs, E);
}

enum cl_status cl_decompose_image(struct cl_decomposer *d, int b, struct cl_decomposition *out,
                                  struct cl_err *e)
{
    if (!d->cap || b < 0 || b >= d->n)
        return cl_errf(e, CL_ERR_USAGE, "image %d of a decomposed batch of %d", b, d->n);
    int E = d->E, Lk = d->kept, M = d->M;
    if (d->o.tokens)
        image_tokens(d, b);
    if (d->o.neurons >= 0)
        image_neurons(d, b);
    memset(out, 0, sizeof *out);
    out->kept = Lk;
    out->layer_lo = d->lo;
    out->heads = d->H;
    out->tokens = d->o.tokens ? d->N : 0;
    out->embed_dim = E;
    out->mlp = M;
    out->embedding = d->embedding + (size_t)b * E;
    out->embed = d->embed + (size_t)b * E;
    out->heads_part = d->o.tokens ? d->tok : d->heads + (size_t)b * Lk * d->H * E;
    out->mlps = d->mlps + (size_t)b * Lk * E;
    out->rest = Lk < d->L ? d->rest + (size_t)b * E : NULL;
    out->bias = d->o.ln == CL_LN_CENTERED ? d->bias + (size_t)b * E : NULL;
    out->neurons = d->o.neurons >= 0 ? d->neurons : NULL;
    out->neurons2 = d->o.second_order >= 0 ? d->neurons2 + (size_t)b * M * E : NULL;
    return CL_OK;
}
