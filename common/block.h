/* block.h - one pre-LN transformer block over a batch, shared by both towers
 * (internal to common/: vit.c and textmodel.c).
 *
 * Legend: B batch, N tokens per item, R = B N rows, D width, H heads,
 * Dh = D / H, M MLP width.
 */
#ifndef CL_BLOCK_H
#define CL_BLOCK_H

#include "model.h"

/* Scratch of a tower state, sized for its maximum batch. */
struct cl_block_bufs {
    float *h;        /* [R, D] LN output; also the attention context */
    float *q, *k, *v;/* [R, D] */
    float *o;        /* [R, D] output of the attention / MLP projection */
    float *hid;      /* [R, M] MLP hidden */
    float *scores;   /* [T, N, N] attention of one (item, head) per worker, when not captured */
    int workers;     /* T: scratch matrices in scores (the state's thread count) */
    float *mean, *std; /* [R] LN statistics when not captured */
    int *causal_n;   /* [N]: row i attends to i + 1 keys (causal), or NULL */
};

/* Floats the buffers of R rows of width D, an MLP hidden of hid floats and T scratch
 * attention matrices of N x N take, each rounded up to 16 floats (cl_up16). */
size_t cl_block_bufs_floats(size_t R, size_t D, size_t hid, size_t N, size_t T);

/* Carve those buffers from *at (advanced past them); causal_n is left NULL. */
void cl_block_bufs_carve(struct cl_block_bufs *b, float **at, size_t R, size_t D, size_t hid, size_t N,
                         size_t T);

/* Optional destinations for one layer, each contiguous over the batch (NULL: skip). */
struct cl_block_taps {
    float *ln1_mean, *ln1_std, *ln2_mean, *ln2_std; /* [B, N] */
    float *attn;         /* [B, H, N, N] */
    float *attn_cls;     /* [B, H, N] */
    float *values;       /* [B, N, D] */
    float *mlp_act;      /* [B, N, M] */
    float *attn_out_cls; /* [B, D] */
    float *mlp_out_cls;  /* [B, D] */
};

/* x [B, N, D] <- block(x). taps may be NULL. */
void cl_block_forward(float *x, int B, int N, const struct cl_tower_config *t, const struct cl_block *w,
                      const struct cl_block_bufs *buf, const struct cl_block_taps *taps);

/* The same block when only the CLS token's output is needed (the last block of an
 * image tower): LN1, keys and values of every token, the rest for each item's token 0.
 * Updates only x[b, 0, :]; fills only the taps ln1_*, values, attn_cls, *_out_cls. */
void cl_block_forward_cls(float *x, int B, int N, const struct cl_tower_config *t, const struct cl_block *w,
                          const struct cl_block_bufs *buf, const struct cl_block_taps *taps);

#endif
