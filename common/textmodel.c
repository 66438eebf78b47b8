/* textmodel.c - the CLIP text tower: token + position embeddings, causal pre-LN
 * blocks, ln_final at the end-of-text token (the row's highest id), projection.
 *
 * Legend: B batch, C context (tokens per text), R = B C rows, D width, M MLP width,
 * V vocabulary, E embedding dim.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "block.h"
#include "linalg.h"
#include "model.h"

#define MAX_BATCH 65536
#define MAX_THREADS 64 /* as the worker pool */

struct cl_text_state {
    const struct cl_model *m;
    int max_batch;
    int threads;
    float *mem;          /* one allocation carved into the buffers below */
    float *x;            /* [B, C, D] residual stream */
    float *pooled;       /* [B, D] LN_final at the end-of-text token */
    int *causal_n;       /* [C]: i + 1 */
    struct cl_block_bufs bufs;
};

enum cl_status cl_text_state_new(struct cl_text_state **out, const struct cl_model *m, int max_batch,
                                 int threads, struct cl_err *e)
{
    *out = NULL;
    const struct cl_model_config *c = &m->cfg;
    if (max_batch < 1 || max_batch > MAX_BATCH)
        return cl_errf(e, CL_ERR_USAGE, "text batch %d outside [1, %d]", max_batch, MAX_BATCH);
    threads = threads < 1 ? 1 : threads > MAX_THREADS ? MAX_THREADS : threads;
    if ((int64_t)max_batch * c->context > INT_MAX / 4)
        return cl_errf(e, CL_ERR_USAGE, "%s: %d texts of %d tokens are too many for one batch", c->name,
                       max_batch, c->context);
    size_t T = (size_t)threads, B = (size_t)max_batch, C = (size_t)c->context;
    size_t D = (size_t)c->text.width, M = (size_t)c->text.mlp;
    size_t R = B * C;
    size_t total = cl_up16(R * D) + cl_block_bufs_floats(R, D, R * M, C, T) + cl_up16(B * D);
    struct cl_text_state *s = calloc(1, sizeof *s);
    if (!s || total > SIZE_MAX / sizeof(float) ||
        posix_memalign((void **)&s->mem, 64, total * sizeof(float)) != 0 ||
        !(s->causal_n = malloc(C * sizeof *s->causal_n))) {
        if (s)
            free(s->mem);
        free(s);
        return cl_errf(e, CL_ERR_NOMEM, "%s: out of memory for text activations of %d texts", c->name,
                       max_batch);
    }
    s->m = m;
    s->max_batch = max_batch;
    s->threads = threads;
    float *at = s->mem;
    s->x = cl_carve(&at, R * D);
    cl_block_bufs_carve(&s->bufs, &at, R, D, R * M, C, T);
    s->pooled = cl_carve(&at, B * D);
    for (size_t i = 0; i < C; i++)
        s->causal_n[i] = (int)i + 1;
    s->bufs.causal_n = s->causal_n;
    *out = s;
    return CL_OK;
}

void cl_text_state_free(struct cl_text_state *s)
{
    if (!s)
        return;
    free(s->mem);
    free(s->causal_n);
    free(s);
}

enum cl_status cl_text_forward(struct cl_text_state *s, const int32_t *ids, int n, float *emb,
                               struct cl_err *e)
{
    const struct cl_model *m = s->m;
    const struct cl_model_config *c = &m->cfg;
    const struct cl_text_weights *w = &m->txt;
    const struct cl_tower_config *t = &c->text;
    int C = c->context, D = t->width, V = c->vocab_size;
    if (n < 1 || n > s->max_batch)
        return cl_errf(e, CL_ERR_USAGE, "%d texts for a state of at most %d", n, s->max_batch);
    for (int b = 0; b < n; b++)
        for (int i = 0; i < C; i++)
            if (ids[(size_t)b * C + i] < 0 || ids[(size_t)b * C + i] >= V)
                return cl_errf(e, CL_ERR_DATA, "text %d: token %d has id %d outside the vocabulary [0, %d)",
                               b, i, ids[(size_t)b * C + i], V);
    cl_linalg_set_threads(s->threads);

    /* x[b, i] = tok[ids[b, i]] + pos[i] */
    for (int b = 0; b < n; b++)
        for (int i = 0; i < C; i++) {
            float *xr = s->x + ((size_t)b * C + i) * D;
            const float *te = w->tok + (size_t)ids[(size_t)b * C + i] * D, *pe = w->pos + (size_t)i * D;
            for (int d = 0; d < D; d++)
                xr[d] = te[d] + pe[d];
        }
    for (int l = 0; l < t->layers; l++)
        cl_block_forward(s->x, n, C, t, &w->blocks[l], &s->bufs, NULL);

    /* pool at the first position of the row's highest id, ln_final, project */
    for (int b = 0; b < n; b++) {
        const int32_t *row = ids + (size_t)b * C;
        int at = 0;
        for (int i = 1; i < C; i++)
            if (row[i] > row[at])
                at = i;
        cl_layernorm(s->pooled + (size_t)b * D, NULL, NULL, s->x + ((size_t)b * C + at) * D, w->ln_final_g,
                     w->ln_final_b, 1, D, t->ln_eps);
    }
    cl_linear(emb, s->pooled, w->proj, NULL, n, c->embed_dim, D);
    return CL_OK;
}
