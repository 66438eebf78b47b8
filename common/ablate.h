/* ablate.h - the parts of a decomposed image embedding and what can be done
 * to them (P1, SPEC §7, §8): selections of parts by name, mean-ablation,
 * replacement of heads by their TextSpan reconstruction, zero-shot accuracy
 * (overall, per group, worst group) of the re-summed parts, and nearest
 * neighbours using chosen parts only.
 *
 * Dimensions: L layer rows present in the stream (L' <= the model's layers,
 * with their absolute numbers in "layers"), H heads, T source tokens (0 when
 * heads are summed over tokens), E embedding dim, K classes, N images.
 *
 * Parts of one decompose item (formats/STREAM.md): "heads" [L,H,E] or
 * [L,H,T,E], "mlps" [L,E], "embed" [E], and when present "rest" [E] (layers
 * not kept) and "bias" [E] (the centred convention's bias).  Their sum is the
 * normalised image embedding.  With tokens, the CLS-to-CLS part of a head is
 * its token-0 slice ("cls").
 *
 * Selection specs (one term per flag, repeated flags add up):
 *   heads:L.H,L.H   heads:all     layers:A-B,C   layers:all  (all heads of those layers)
 *   mlps:A-B,C      mlps:all      cls:A-B        cls:all     (token-0 slice of heads)
 *   embed   rest   bias   all
 * Layer numbers are absolute (as in the model), so a stream holding layers 8-11
 * is addressed as layers:8-11.
 *
 * Interventions: every part is kept, mean-ablated (replaced by its mean over a
 * data set), or, for heads, replaced by mean_ts + B'B (c - mean_ts) with a
 * TextSpan basis B [m,E] and mean mean_ts.  Because scores are linear, the
 * mean-ablated parts add a constant vector to every image: images can be
 * scored in one pass, the means added when they are known.
 */
#ifndef CL_ABLATE_H
#define CL_ABLATE_H

#include <stdint.h>

#include "status.h"
#include "stream.h"

#define CL_PARTS_MAX_LAYERS 1024
#define CL_PARTS_MAX_HEADS 1024
#define CL_PARTS_MAX_TOKENS 65536
#define CL_PARTS_MAX_DIM 65536
#define CL_MAX_GROUPS 4096        /* group ids 0 .. CL_MAX_GROUPS-1 */

/* ---- index lists: "all", "3", "0-7", "1,4-6" over the values in vals[0..n) ---- */
/* mask[i] = 1 for every i with vals[i] listed.  A listed value missing from vals
 * is an error naming what exists. */
enum cl_status cl_index_list_parse(const char *spec, const int *vals, int n, uint8_t *mask, struct cl_err *e);

/* ---- shape of the parts of a stream ---- */
struct cl_parts_shape {
    int L, H, T, E;                  /* T = 0: heads summed over tokens */
    int layers[CL_PARTS_MAX_LAYERS]; /* absolute layer number of each row */
    int has_heads, has_mlps, has_embed, has_rest, has_bias;
};

/* Read the shape from an item of a decompose stream (validated: consistent E,
 * caps, a "layers" list of L distinct numbers when present). */
enum cl_status cl_parts_shape_of(const struct cl_item *it, struct cl_parts_shape *s, struct cl_err *e);
/* "heads [12,12,512] mlps [12,512] embed ..." for messages. */
void cl_parts_shape_describe(const struct cl_parts_shape *s, char *buf, size_t cap);

/* ---- the parts of one image, as f32 ---- */
struct cl_parts {
    struct cl_parts_shape shape;
    float *heads; /* [L,H,E] summed over tokens */
    float *cls;   /* [L,H,E] token 0, only when T > 0 */
    float *mlps;  /* [L,E] */
    float *embed, *rest, *bias; /* [E] each; zero when absent */
    float *block;   /* [size] one allocation holding all of the above */
    size_t size;
    float *scratch; /* [T,E] token slices being converted */
};
enum cl_status cl_parts_build(struct cl_parts *p, const struct cl_parts_shape *s, struct cl_err *e);
void cl_parts_free(struct cl_parts *p); /* NULL ok */
/* Load item it (any float dtype) into p; it must have p's shape.  name and
 * index are used in messages. */
enum cl_status cl_parts_load(struct cl_parts *p, const struct cl_item *it, const char *name, uint64_t index,
                             struct cl_err *e);
/* out [E] = the sum of every part (the embedding, up to rounding). */
void cl_parts_sum(const struct cl_parts *p, float *out);

/* ---- means over a data set ---- */
struct cl_parts_mean {
    struct cl_parts_shape shape;
    int64_t n;
    double *acc;          /* [size] running sums, in the layout of cl_parts */
    struct cl_parts mean; /* the means, after cl_parts_mean_finish */
};
enum cl_status cl_parts_mean_build(struct cl_parts_mean *m, const struct cl_parts_shape *s, struct cl_err *e);
void cl_parts_mean_add(struct cl_parts_mean *m, const struct cl_parts *p);
enum cl_status cl_parts_mean_finish(struct cl_parts_mean *m, struct cl_err *e); /* needs n >= 1 */
void cl_parts_mean_free(struct cl_parts_mean *m);

/* ---- selections and interventions ---- */
enum cl_action { CL_ACT_KEEP = 0, CL_ACT_MEAN = 1, CL_ACT_REPLACE = 2 };

struct cl_selection {
    uint8_t *head; /* [L*H] */
    uint8_t *cls;  /* [L*H] */
    uint8_t *mlp;  /* [L] */
    uint8_t embed, rest, bias;
};
enum cl_status cl_selection_build(struct cl_selection *sel, const struct cl_parts_shape *s, struct cl_err *e);
void cl_selection_free(struct cl_selection *sel);
/* Add the parts named by spec (see the top of this file) to sel. */
enum cl_status cl_selection_add(struct cl_selection *sel, const struct cl_parts_shape *s, const char *spec,
                                struct cl_err *e);
int cl_selection_count(const struct cl_selection *sel, const struct cl_parts_shape *s);

struct cl_ablation {
    struct cl_parts_shape shape;
    uint8_t *head;   /* [L*H] enum cl_action */
    uint8_t *cls;    /* [L*H] CL_ACT_KEEP or CL_ACT_MEAN */
    uint8_t *mlp;    /* [L] */
    uint8_t embed, rest, bias;
    float **basis;   /* [L*H] -> [m,E] for CL_ACT_REPLACE heads (owned) */
    float **ts_mean; /* [L*H] -> [E] (owned) */
    int *basis_m;    /* [L*H] */
};
enum cl_status cl_ablation_build(struct cl_ablation *a, const struct cl_parts_shape *s, struct cl_err *e);
void cl_ablation_free(struct cl_ablation *a);
/* Set every selected part to act (CL_ACT_KEEP or CL_ACT_MEAN). */
void cl_ablation_set(struct cl_ablation *a, const struct cl_selection *sel, enum cl_action act);
/* Replace head (layer, head) - layer absolute - by its TextSpan reconstruction
 * with basis [m,E] and mean [E] (copied).  CL_ERR_DATA if the layer is not in
 * the stream or the head is out of range. */
enum cl_status cl_ablation_replace(struct cl_ablation *a, int layer, int head, const float *basis, int m,
                                   const float *mean, struct cl_err *e);
/* "mean: 12 heads, 4 mlps; replace: 8 heads; keep: the rest" */
void cl_ablation_describe(const struct cl_ablation *a, char *buf, size_t cap);

/* out [E] = the image-dependent part: kept parts + replaced heads (+ the
 * non-CLS share of heads whose CLS slice is mean-ablated). */
void cl_ablation_apply(const struct cl_ablation *a, const struct cl_parts *p, float *out);
/* out [E] = the constant part: the sum of the means of the mean-ablated parts. */
void cl_ablation_constant(const struct cl_ablation *a, const struct cl_parts *mean, float *out);

/* ---- zero-shot accuracy ---- */
struct cl_accuracy {
    int64_t n, correct;
    int ngroups;                 /* 1 + the largest group id seen; 0 when no groups */
    int64_t *group_n, *group_correct; /* [ngroups] */
    int worst;                   /* the group with the lowest accuracy among groups with items, -1 if none */
};
/* predictions [N] (class indices), labels [N], groups [N] (-1: none) */
enum cl_status cl_accuracy_tally(struct cl_accuracy *acc, const int *pred, const int *label, const int *group,
                                 int64_t n, struct cl_err *e);
void cl_accuracy_free(struct cl_accuracy *acc);
double cl_accuracy_group(const struct cl_accuracy *acc, int g); /* percent; NAN when empty */

/* argmax over K classes [K,E] of <v, class> for v [E]. */
int cl_zeroshot_predict(const float *classes, int K, int E, const float *v);

/* ---- nearest neighbours ---- */
/* The k rows of db [N,E] with the largest cosine similarity to q [E], best
 * first, skipping row `exclude` (-1: none).  Returns how many were found. */
int cl_nearest(const float *db, int64_t n, int E, const float *q, int k, int64_t exclude, int64_t *idx, float *sim);

#endif
