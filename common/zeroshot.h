/* zeroshot.h - zero-shot classification: class scores of embeddings against a
 * classifier (one normalised text embedding per class) and accuracy tallies
 * overall and per group (for Waterbirds-style worst-group accuracy).
 *
 * Legend: K classes, E embedding dim.
 */
#ifndef CL_ZEROSHOT_H
#define CL_ZEROSHOT_H

#include <stdint.h>

#include "status.h"

#define CL_ZS_MAX_GROUPS 4096

/* Index of the best class for embedding x [E] given class embeddings W [K,E]
 * (ties: the lowest index); *score receives <x, W_k> / |x| (the cosine when W
 * rows are normalised). */
int cl_zs_predict(const float *W, int K, int E, const float *x, float *score);

struct cl_zs_group {
    int64_t group;
    uint64_t n, correct;
};

/* Counts per group; the tally grows as groups appear (up to CL_ZS_MAX_GROUPS). */
struct cl_zs_tally {
    uint64_t n, correct, unlabelled;
    int ngroups, cap;
    struct cl_zs_group *groups; /* sorted by group id */
};

/* Record one prediction. has_group 0: counted overall only. */
enum cl_status cl_zs_add(struct cl_zs_tally *t, int64_t label, int pred, int has_group, int64_t group,
                         struct cl_err *e);
double cl_zs_accuracy(const struct cl_zs_tally *t);
/* Worst group's accuracy and its index into t->groups; -1 when there are no groups. */
int cl_zs_worst_group(const struct cl_zs_tally *t, double *acc);
void cl_zs_free(struct cl_zs_tally *t);

#endif
