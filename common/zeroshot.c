/* zeroshot.c - zero-shot predictions and per-group accuracy tallies. */
#include "zeroshot.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int cl_zs_predict(const float *W, int K, int E, const float *x, float *score)
{
    int best = 0;
    double bs = -INFINITY, nx = 0;
    for (int d = 0; d < E; d++)
        nx += (double)x[d] * x[d];
    for (int k = 0; k < K; k++) {
        double s = 0;
        const float *w = W + (size_t)k * E;
        for (int d = 0; d < E; d++) /* double accumulation: predictions must not flip with BLAS kernels */
            s += (double)w[d] * x[d];
        if (s > bs) {
            bs = s;
            best = k;
        }
    }
    if (score)
        *score = nx > 0 ? (float)(bs / sqrt(nx)) : 0.0f;
    return best;
}

enum cl_status cl_zs_add(struct cl_zs_tally *t, int64_t label, int pred, int has_group, int64_t group,
                         struct cl_err *e)
{
    int ok = label == pred;
    t->n++;
    t->correct += (uint64_t)ok;
    if (!has_group)
        return CL_OK;
    int lo = 0, hi = t->ngroups;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (t->groups[mid].group < group) lo = mid + 1;
        else hi = mid;
    }
    if (lo == t->ngroups || t->groups[lo].group != group) {
        if (t->ngroups == CL_ZS_MAX_GROUPS)
            return cl_errf(e, CL_ERR_DATA, "more than %d groups", CL_ZS_MAX_GROUPS);
        if (t->ngroups == t->cap) {
            int cap = t->cap ? t->cap * 2 : 16;
            struct cl_zs_group *g = realloc(t->groups, (size_t)cap * sizeof *g);
            if (!g)
                return cl_errf(e, CL_ERR_NOMEM, "out of memory");
            t->groups = g;
            t->cap = cap;
        }
        memmove(t->groups + lo + 1, t->groups + lo, (size_t)(t->ngroups - lo) * sizeof *t->groups);
        t->groups[lo] = (struct cl_zs_group){.group = group};
        t->ngroups++;
    }
    t->groups[lo].n++;
    t->groups[lo].correct += (uint64_t)ok;
    return CL_OK;
}

double cl_zs_accuracy(const struct cl_zs_tally *t)
{
    return t->n ? (double)t->correct / (double)t->n : 0.0;
}

int cl_zs_worst_group(const struct cl_zs_tally *t, double *acc)
{
    int worst = -1;
    double wa = 2;
    for (int i = 0; i < t->ngroups; i++) {
        double a = (double)t->groups[i].correct / (double)t->groups[i].n;
        if (a < wa) {
            wa = a;
            worst = i;
        }
    }
    if (acc)
        *acc = worst >= 0 ? wa : 0.0;
    return worst;
}

void cl_zs_free(struct cl_zs_tally *t)
{
    if (t) {
        free(t->groups);
        memset(t, 0, sizeof *t);
    }
}
