/* decompose.h - the exact additive decomposition of a CLIP image embedding into the
 * direct contributions of the ln_pre term, every attention head (optionally per source
 * token), every MLP, the neurons of one MLP layer, and the second-order effects of those
 * neurons through later attention layers (SPEC §5, §9; papers P1 and P2).
 *
 * Dimension legend:
 *   B batch (images)   L layers   H heads   Dh head width   N tokens (CLS first)
 *   D width   M MLP width (neurons of a layer)   E embedding dim
 *   L' kept layers (--layers)   K2 = (L - 1 - l2) H later heads of second-order layer l2
 *
 * The formulas.  z = x_L[0], the final CLS residual, is exactly
 *   z = x_0[0] + sum_l attn_l[0] + sum_l mlp_l[0],
 *   attn_l[0] = sum_h sum_i A_lh[0,i] W_O,h v_lh,i + b_O     (v includes b_V),
 *   mlp_l[0]  = sum_n act_ln,0 w_ln + b_proj                  (w_ln: column n of c_proj).
 * LN_post is linear once the image's own mean mu and std sigma of z are fixed (computed
 * from the captured CLS outputs, z summed in the forward pass's order), so a summand c
 * with a mean share m and bias share beta maps to
 *   P (g (c - m) / sigma + beta) / |e|,
 * where P is the projection, g, b ln_post's weight and bias and |e| the norm of the
 * image's (unnormalised) embedding e.  Every part below has that form, and the parts
 * of each granularity sum to e / |e| ("embedding").
 *
 * Conventions (struct cl_decompose_opts.ln):
 *   CL_LN_UNIFORM (default, P1's code): each of the 2L+1 stream components (the ln_pre
 *     term, L attention outputs, L MLP outputs) takes m = mu / (2L+1) and beta = b / (2L+1).
 *     An attention layer's shares and its b_O are split evenly over its H heads, and
 *     also evenly over the N source tokens when tokens are kept.
 *   CL_LN_CENTERED: every summand is centred on its own mean (m = mean(c)); b is its own
 *     summand, the part "bias" = P b / |e|.  b_O is split over heads (and tokens) as above.
 *
 * Parts of one image (struct cl_decomposition):
 *   embedding [E]          e / |e|
 *   embed     [E]          the ln_pre term: the CLS residual entering block 0 (the same
 *                          vector for every image: LN_pre(class embedding + position 0))
 *   heads     [L',H,E]     direct effect of each head of the kept layers, summed over
 *                          source tokens, its share of b_O included;
 *             [L',H,N,E]   with tokens: per source token i (tokens summed give the above)
 *   mlps      [L',E]       direct effect of each kept MLP (c_proj bias included)
 *   rest      [E]          the heads and MLPs of the layers not kept (only if L' < L)
 *   bias      [E]          CL_LN_CENTERED only
 *   neurons   [M,E]        first-order (direct) effect of every neuron n of MLP layer l1 at
 *                          CLS.  UNIFORM: P (g (act_n w_n - mu/((2L+1)M)) / sigma
 *                          + b/((2L+1)M)) / |e| (the layer's shares split evenly over its
 *                          neurons, as the attention shares over heads); CENTERED:
 *                          P g (act_n w_n - mean(act_n w_n)) / sigma / |e|.
 *                          Relation, exact in both conventions:
 *                            sum_n neurons[n] = mlps[l1] - P g c(b_proj) / sigma / |e|
 *                          with c(b_proj) = b_proj (uniform) or b_proj - mean(b_proj)
 *                          (centered): the neurons sum to the layer's MLP part minus the
 *                          c_proj bias's own term.
 *   neurons2  [M,E]        second-order effect of every neuron of MLP layer l2 through all
 *                          later attention layers l' > l2 (all zero when l2 = L-1):
 *                            sum_{l',h} s[n,l',h] u[n,l',h] / sigma / |e|,
 *                            s[n,l',h] = sum_i A_l'h[0,i] act_n,i / std_l'(i)  (per image),
 *                            u[n,l',h] = P g C W_O,h W_V,h (g_l' C w_n)        (per model),
 *                          C the centring over D, g_l' and std_l'(i) ln_1's weight and
 *                          the token's std in layer l'.  The attribution is exact: the
 *                          neuron's own centred contribution at every LayerNorm (P2's code
 *                          instead hands each neuron an even share of each LN's mean and
 *                          bias).  Independent of the ln convention.  The vectors u take
 *                          M K2 E floats, computed once per decomposer.
 *
 * Usage:
 *   struct cl_decompose_opts o; cl_decompose_opts_default(&o); o.tokens = 1;
 *   struct cl_decomposer *d; cl_decomposer_new(&d, m, &o, 8, &e);
 *   struct cl_vit_capture *cap; cl_decomposer_capture_new(d, &cap, &e);
 *   cl_vit_forward(vs, pixels, n, emb, cap, &e);             // emb [n, E]
 *   cl_decompose_batch(d, cap, emb, n, &e);                  // everything batched
 *   for (b = 0; b < n; b++) { struct cl_decomposition p; cl_decompose_image(d, b, &p, &e); ... }
 *
 * Cost beyond the forward pass (per image): heads L D E and mlps L D E multiply-adds
 * (one small sgemm per head for the batch); tokens L' H N (Dh+3) E (one sgemm per head
 * per image through precomputed [E, Dh+3] matrices P g W_O,h | P g b_O | P g | P b, never
 * a [N, D] vector per head); neurons M E; second order K2 (N M + M E) (one sgemm per
 * image for s, one per neuron over the batch for the sum).  Precomputed per decomposer:
 * L' H E (Dh+3) floats for heads, M E for neurons, M K2 E for second order (ViT-B/16,
 * layer 9: 151 MB; layer 0: 830 MB).  The capture holds attention and values of every
 * layer ([L,B,N,D]), ln_1 statistics only for the second order (which then runs the last
 * block for every token), MLP activations only of the neuron layers; without them the
 * last block stays CLS-only, as when encoding.
 * Memory is allocated at cl_decomposer_new for at most max_batch images; the calls per
 * batch and per image do not allocate.  Results depend only on the inputs, the batch
 * composition and the BLAS thread count (deterministic).
 */
#ifndef CL_DECOMPOSE_H
#define CL_DECOMPOSE_H

#include "model.h"
#include "status.h"

enum cl_ln_conv { CL_LN_UNIFORM = 0, CL_LN_CENTERED };

const char *cl_ln_conv_name(enum cl_ln_conv c);        /* "uniform" or "centered" */
int cl_ln_conv_parse(const char *s, enum cl_ln_conv *out); /* 0 on success, -1 if unknown */

struct cl_decompose_opts {
    enum cl_ln_conv ln;     /* default CL_LN_UNIFORM */
    int tokens;             /* 1: heads per source token [L',H,N,E] */
    int layer_lo, layer_hi; /* kept layers, inclusive, 0-based; default 0 .. L-1 (-1 = that) */
    int neurons;            /* l1: MLP layer for first-order neuron effects, or -1 (default) */
    int second_order;       /* l2: MLP layer for second-order neuron effects, or -1 (default) */
};

void cl_decompose_opts_default(struct cl_decompose_opts *o);

/* One image's parts (see the top of this file); pointers into the decomposer, valid
 * until its next cl_decompose_batch or cl_decompose_image.  Absent parts are NULL. */
struct cl_decomposition {
    int kept, layer_lo;  /* L' and the first kept layer (kept layers are consecutive) */
    int heads, tokens, embed_dim, mlp; /* H, N (0 when heads are not per token), E, M */
    const float *embedding;  /* [E] */
    const float *embed;      /* [E] */
    const float *heads_part; /* [L',H,E] or [L',H,N,E] */
    const float *mlps;       /* [L',E] */
    const float *rest;       /* [E] or NULL */
    const float *bias;       /* [E] or NULL */
    const float *neurons;    /* [M,E] or NULL */
    const float *neurons2;   /* [M,E] or NULL */
};

struct cl_decomposer;

/* Precompute the image-independent matrices of model m for these options and allocate
 * work buffers for up to max_batch images.  Out-of-range layers are CL_ERR_USAGE. */
enum cl_status cl_decomposer_new(struct cl_decomposer **out, const struct cl_model *m,
                                 const struct cl_decompose_opts *o, int max_batch, struct cl_err *e);
void cl_decomposer_free(struct cl_decomposer *d); /* NULL ok */

/* The capture (of the decomposer's batch size) a forward pass must fill for it. */
enum cl_status cl_decomposer_capture_new(const struct cl_decomposer *d, struct cl_vit_capture **cap,
                                         struct cl_err *e);

/* Decompose the n images of the forward pass that filled cap and emb [n, E] (1 <= n <=
 * max_batch).  Does the batched work; keeps cap for cl_decompose_image, so cap must not
 * change until the batch's images are read.  CL_ERR_DATA if an embedding is zero or not
 * finite (naming the image index). */
enum cl_status cl_decompose_batch(struct cl_decomposer *d, const struct cl_vit_capture *cap,
                                  const float *emb, int n, struct cl_err *e);

/* The parts of image b (0 <= b < n) of the last batch; computes the per-token and
 * first-order neuron parts of that image. */
enum cl_status cl_decompose_image(struct cl_decomposer *d, int b, struct cl_decomposition *out,
                                  struct cl_err *e);

#endif
