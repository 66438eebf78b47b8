/* model.h - CLIP models: loading (HF or OpenCLIP layout), the image tower (ViT)
 * with optional capture of intermediates, and the text tower.
 *
 * Dimension legend (used in every shape comment below):
 *   B batch (images or texts)      L layers of a tower
 *   H attention heads              Dh head width (D / H)
 *   N image tokens, 1 + G (CLS first)  G patches = (S / P)^2
 *   D width of a tower             M MLP hidden width (usually 4 D)
 *   E joint embedding dim          S image size, P patch size
 *   C text context length          V vocabulary size
 *
 * Usage:
 *   struct cl_model *m; struct cl_err e;
 *   cl_model_load(&m, "models/ViT-B-16", &e);
 *   struct cl_vit_state *vs; cl_vit_state_new(&vs, m, 32, 2, &e);    // up to 32 images, 2 threads
 *   cl_vit_forward(vs, pixels, n, emb, NULL, &e);                     // pixels [n,3,S,S] -> emb [n,E]
 *   struct cl_vit_capture *cap;                                       // optional intermediates
 *   cl_vit_capture_new(&cap, m, 32, CL_CAP_LN | CL_CAP_ATTN_CLS, NULL, &e);
 *   cl_vit_forward(vs, pixels, n, emb, cap, &e);
 *   struct cl_text_state *ts; cl_text_state_new(&ts, m, 64, 2, &e);
 *   cl_text_forward(ts, ids, n, emb, &e);                             // ids [n,C] -> emb [n,E]
 *   ... free in reverse order; every *_free accepts NULL.
 *
 * Embeddings are projected, not normalised.  All activation buffers belong to a
 * state (one per model and maximum batch); a forward pass does not allocate.
 * A model is read-only once loaded; a state is used by one thread at a time.  The
 * BLAS thread count and the worker pool (common/linalg.h) are process-wide: a
 * forward sets them to its state's thread count.
 *
 * Weights: F32 tensors of the file are used in place from the read-only mapping
 * (untouched tensors cost no memory); F16/BF16 tensors, and OpenCLIP's projections
 * (stored [in, out]), are converted once at load into one f32 arena.
 */
#ifndef CL_MODEL_H
#define CL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

struct cl_model_info; /* formats/stream.h */
struct cl_safetensors;

enum cl_layout { CL_LAYOUT_HF = 0, CL_LAYOUT_OPENCLIP };
enum cl_act { CL_ACT_GELU = 0, CL_ACT_QUICK_GELU };

#define CL_MODEL_MAX_LAYERS 256
#define CL_MODEL_PATH 4096

struct cl_tower_config {
    int layers;          /* L */
    int width;           /* D */
    int heads;           /* H */
    int head_dim;        /* Dh = D / H */
    int mlp;             /* M */
    enum cl_act act;     /* GELU (exact, erf) or QuickGELU (x sigmoid(1.702 x)) */
    float ln_eps;        /* LayerNorm epsilon */
};

struct cl_model_config {
    char name[256];          /* directory base name */
    char dir[CL_MODEL_PATH]; /* as given to cl_model_load */
    enum cl_layout layout;
    int embed_dim;           /* E */
    struct cl_tower_config vision, text;
    int image_size;          /* S: the crop fed to the ViT */
    int resize;              /* shorter side resized to this before the centre crop (usually S) */
    int patch;               /* P */
    int grid;                /* S / P */
    int tokens;              /* N = 1 + grid^2 */
    int context;             /* C */
    int vocab_size;          /* V; the end-of-text token is the highest id */
    float mean[3], std[3];   /* per RGB channel, applied to pixels in [0, 1] */
    float logit_scale;       /* as stored (log of the temperature's inverse); 0 if absent */
    char vocab_path[CL_MODEL_PATH];  /* vocab.json, or "" if the directory has none */
    char merges_path[CL_MODEL_PATH]; /* merges.txt, or "" */
};

/* One pre-LN residual block: x += Attn(LN1(x)); x += MLP(LN2(x)).
 * Linear weights are [out, in] (y = x W^T + b). Widths D and M of its tower. */
struct cl_block {
    const float *ln1_g, *ln1_b;   /* [D] */
    const float *wq, *wk, *wv;    /* [D, D]; head h owns rows h*Dh .. h*Dh+Dh-1 */
    const float *bq, *bk, *bv;    /* [D] */
    const float *wo, *bo;         /* [D, D], [D]: attention output projection */
    const float *ln2_g, *ln2_b;   /* [D] */
    const float *w_fc, *b_fc;     /* [M, D], [M] */
    const float *w_proj, *b_proj; /* [D, M], [D] */
};

struct cl_vision_weights {
    const float *patch;           /* [D, 3*P*P]: conv1 flattened in (channel, ky, kx) order, no bias */
    const float *cls;             /* [D] class embedding */
    const float *pos;             /* [N, D] */
    const float *ln_pre_g, *ln_pre_b;   /* [D] */
    struct cl_block *blocks;      /* [L] */
    const float *ln_post_g, *ln_post_b; /* [D] */
    const float *proj;            /* [E, D]: emb = LN_post(x_cls) proj^T */
};

struct cl_text_weights {
    const float *tok;             /* [V, D] */
    const float *pos;             /* [C, D] */
    struct cl_block *blocks;      /* [L] */
    const float *ln_final_g, *ln_final_b; /* [D] */
    const float *proj;            /* [E, D] */
};

struct cl_model {
    struct cl_model_config cfg;
    struct cl_vision_weights vis;
    struct cl_text_weights txt;
    /* private: f32 weights either point into the mapped file (F32, aligned) or into arena */
    struct cl_safetensors *st;
    float *arena;
    size_t arena_floats;
    struct cl_block *block_store; /* [Lv + Lt] */
};

/* Load a model directory; the layout is detected from its files:
 *   OpenCLIP: open_clip_config.json + open_clip_model.safetensors
 *   HF:       config.json + model.safetensors + preprocessor_config.json
 * (vocab.json and merges.txt are recorded when present).  Unsupported towers
 * (ModifiedResNet, timm, HF text models, SigLIP, ...) are CL_ERR_UNSUPPORTED
 * by name; configs inconsistent with the weights are CL_ERR_DATA naming the
 * file and tensor. */
enum cl_status cl_model_load(struct cl_model **out, const char *dir, struct cl_err *e);
void cl_model_free(struct cl_model *m);

const char *cl_layout_name(enum cl_layout l);  /* "hf" or "open_clip" */
/* Fill the stream header's model description (name, layout, vision layers, heads, width, E, P, S). */
void cl_model_describe(const struct cl_model *m, struct cl_model_info *info);

/* ---------------------------------------------------------------- image tower */

/* What a capture holds; OR the flags. Shapes use B = the capture's batch capacity;
 * a forward of n images fills b < n. */
enum {
    CL_CAP_LN       = 1u << 0, /* ln1_mean, ln1_std, ln2_mean, ln2_std [L,B,N]; post_mean, post_std [B] */
    CL_CAP_ATTN     = 1u << 1, /* attn [L,B,H,N,N]: softmax probabilities, row = query token */
    CL_CAP_ATTN_CLS = 1u << 2, /* attn_cls [L,B,H,N]: the CLS query's row of attn */
    CL_CAP_VALUES   = 1u << 3, /* values [L,B,N,D]: LN1(x) W_V^T + b_V, head h in columns h*Dh.. */
    CL_CAP_MLP_ACT  = 1u << 4, /* mlp_act [Lsel,B,N,M]: MLP hidden after GELU, chosen layers */
    CL_CAP_RESID    = 1u << 5, /* resid [L+1,B,N,D]: stream entering block l (l = 0: after ln_pre);
                                  resid[L] is the output of the last block */
    CL_CAP_CLS_OUT  = 1u << 6, /* attn_out_cls, mlp_out_cls [L,B,D]: what block l adds to the CLS
                                  token (attention incl. b_O; MLP incl. its bias); pooled [B,D]:
                                  LN_post(x_cls) before the projection; post_mean, post_std [B] */
};

/* Buffers are NULL unless their flag was requested. std = sqrt(var + eps), the divisor. */
struct cl_vit_capture {
    unsigned flags;
    int layers, batch, tokens, heads, head_dim, width, mlp; /* L, B (capacity), N, H, Dh, D, M */
    int n;                       /* images filled by the last forward */
    int mlp_slot[CL_MODEL_MAX_LAYERS]; /* layer -> index into mlp_act's first axis, or -1 */
    int mlp_layers;              /* Lsel */
    float *ln1_mean, *ln1_std;   /* [L, B, N] */
    float *ln2_mean, *ln2_std;   /* [L, B, N] */
    float *post_mean, *post_std; /* [B]: ln_post statistics of the final CLS residual
                                    (with CL_CAP_LN or CL_CAP_CLS_OUT) */
    float *attn;                 /* [L, B, H, N, N] */
    float *attn_cls;             /* [L, B, H, N] */
    float *values;               /* [L, B, N, D] */
    float *mlp_act;              /* [Lsel, B, N, M] */
    float *resid;                /* [L+1, B, N, D] */
    float *attn_out_cls;         /* [L, B, D] */
    float *mlp_out_cls;          /* [L, B, D] */
    float *pooled;               /* [B, D] */
};

/* Allocate a capture for up to max_batch images. mlp_layers (for CL_CAP_MLP_ACT):
 * an array of L flags choosing the layers, or NULL for all. */
enum cl_status cl_vit_capture_new(struct cl_vit_capture **out, const struct cl_model *m, int max_batch,
                                  unsigned flags, const uint8_t *mlp_layers, struct cl_err *e);
void cl_vit_capture_free(struct cl_vit_capture *c);

/* Per-image views into a capture (l layer, b image); NULL if not captured. */
static inline float *cl_cap_resid(const struct cl_vit_capture *c, int l, int b)        /* [N, D] */
{ return c->resid ? c->resid + ((size_t)l * c->batch + b) * c->tokens * c->width : NULL; }
static inline float *cl_cap_attn(const struct cl_vit_capture *c, int l, int b)         /* [H, N, N] */
{ return c->attn ? c->attn + ((size_t)l * c->batch + b) * c->heads * c->tokens * c->tokens : NULL; }
static inline float *cl_cap_attn_cls(const struct cl_vit_capture *c, int l, int b)     /* [H, N] */
{ return c->attn_cls ? c->attn_cls + ((size_t)l * c->batch + b) * c->heads * c->tokens : NULL; }
static inline float *cl_cap_values(const struct cl_vit_capture *c, int l, int b)       /* [N, D] */
{ return c->values ? c->values + ((size_t)l * c->batch + b) * c->tokens * c->width : NULL; }
static inline float *cl_cap_mlp_act(const struct cl_vit_capture *c, int l, int b)      /* [N, M] */
{ return c->mlp_act && c->mlp_slot[l] >= 0
      ? c->mlp_act + ((size_t)c->mlp_slot[l] * c->batch + b) * c->tokens * c->mlp : NULL; }
static inline float *cl_cap_ln1_mean(const struct cl_vit_capture *c, int l, int b)     /* [N] */
{ return c->ln1_mean ? c->ln1_mean + ((size_t)l * c->batch + b) * c->tokens : NULL; }
static inline float *cl_cap_ln1_std(const struct cl_vit_capture *c, int l, int b)      /* [N] */
{ return c->ln1_std ? c->ln1_std + ((size_t)l * c->batch + b) * c->tokens : NULL; }
static inline float *cl_cap_ln2_mean(const struct cl_vit_capture *c, int l, int b)     /* [N] */
{ return c->ln2_mean ? c->ln2_mean + ((size_t)l * c->batch + b) * c->tokens : NULL; }
static inline float *cl_cap_ln2_std(const struct cl_vit_capture *c, int l, int b)      /* [N] */
{ return c->ln2_std ? c->ln2_std + ((size_t)l * c->batch + b) * c->tokens : NULL; }
static inline float *cl_cap_attn_out_cls(const struct cl_vit_capture *c, int l, int b) /* [D] */
{ return c->attn_out_cls ? c->attn_out_cls + ((size_t)l * c->batch + b) * c->width : NULL; }
static inline float *cl_cap_mlp_out_cls(const struct cl_vit_capture *c, int l, int b)  /* [D] */
{ return c->mlp_out_cls ? c->mlp_out_cls + ((size_t)l * c->batch + b) * c->width : NULL; }

struct cl_vit_state;

/* Activation buffers for up to max_batch images; threads sets the BLAS threads. */
enum cl_status cl_vit_state_new(struct cl_vit_state **out, const struct cl_model *m, int max_batch,
                                int threads, struct cl_err *e);
void cl_vit_state_free(struct cl_vit_state *s);

/* pixels [n,3,S,S] (preprocessed) -> emb [n,E]; 1 <= n <= max_batch. cap may be NULL;
 * its capacity must be >= n. Fails only on bad arguments (CL_ERR_USAGE).
 * Unless cap asks for CL_CAP_LN, CL_CAP_ATTN, CL_CAP_RESID or the last layer's MLP
 * activations, the last block is computed for the CLS token only (keys and values of
 * all tokens): about 1/L less work, the same embedding to float rounding. */
enum cl_status cl_vit_forward(struct cl_vit_state *s, const float *pixels, int n, float *emb,
                              struct cl_vit_capture *cap, struct cl_err *e);

/* ---------------------------------------------------------------- text tower */

struct cl_text_state;

enum cl_status cl_text_state_new(struct cl_text_state **out, const struct cl_model *m, int max_batch,
                                 int threads, struct cl_err *e);
void cl_text_state_free(struct cl_text_state *s);

/* ids [n,C] (int32, as the tokenizer makes them) -> emb [n,E], pooled at each row's
 * highest id (the end-of-text token). An id outside [0, V) is CL_ERR_DATA naming the row. */
enum cl_status cl_text_forward(struct cl_text_state *s, const int32_t *ids, int n, float *emb,
                               struct cl_err *e);

#endif
