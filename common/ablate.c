/* ablate.c - parts of decomposed embeddings: selections, means, mean-ablation
 * and TextSpan replacement, zero-shot accuracy per group, nearest neighbours.
 *
 * Dimensions: L layer rows, H heads, T tokens (0: summed), E embedding dim,
 * K classes, N images.
 */
#include "ablate.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ index lists */

static int parse_int(const char **p, long *out)
{
    char *end;
    if (!isdigit((unsigned char)**p))
        return -1;
    errno = 0;
    long v = strtol(*p, &end, 10);
    if (errno || v > 1 << 30)
        return -1;
    *p = end;
    *out = v;
    return 0;
}

static void describe_values(const int *vals, int n, char *buf, size_t cap)
{
    size_t at = 0;
    buf[0] = 0;
    for (int i = 0; i < n && at + 16 < cap; i++) {
        int j = i;
        while (j + 1 < n && vals[j + 1] == vals[j] + 1)
            j++;
        at += (size_t)snprintf(buf + at, cap - at, "%s%d", i ? "," : "", vals[i]);
        if (j > i)
            at += (size_t)snprintf(buf + at, cap - at, "-%d", vals[j]);
        i = j;
    }
}

enum cl_status cl_index_list_parse(const char *spec, const int *vals, int n, uint8_t *mask, struct cl_err *e)
{
    char have[256];
    if (strcmp(spec, "all") == 0) {
        for (int i = 0; i < n; i++)
            mask[i] = 1;
        return CL_OK;
    }
    const char *p = spec;
    if (!*p)
        return cl_errf(e, CL_ERR_USAGE, "empty list (expected e.g. 3, 0-7, 1,4-6 or all)");
    for (;;) {
        long a, b;
        if (parse_int(&p, &a) != 0)
            return cl_errf(e, CL_ERR_USAGE, "bad list '%s' (expected e.g. 3, 0-7, 1,4-6 or all)", spec);
        b = a;
        if (*p == '-') {
            p++;
            if (parse_int(&p, &b) != 0 || b < a)
                return cl_errf(e, CL_ERR_USAGE, "bad range in '%s' (expected A-B with A <= B)", spec);
        }
        for (long v = a; v <= b; v++) {
            int found = 0;
            for (int i = 0; i < n; i++)
                if (vals[i] == v) {
                    mask[i] = 1;
                    found = 1;
                }
            if (!found) {
                describe_values(vals, n, have, sizeof have);
                return cl_errf(e, CL_ERR_USAGE, "%ld in '%s' is not among the available %s", v, spec,
                               n ? have : "(none)");
            }
        }
        if (*p == 0)
            return CL_OK;
        if (*p != ',')
            return cl_errf(e, CL_ERR_USAGE, "bad list '%s' (expected e.g. 3, 0-7, 1,4-6 or all)", spec);
        p++;
    }
}

/* ------------------------------------------------------------ shapes */

static int dim_ok(int64_t v, int64_t cap) { return v >= 1 && v <= cap; }

enum cl_status cl_parts_shape_of(const struct cl_item *it, struct cl_parts_shape *s, struct cl_err *e)
{
    memset(s, 0, sizeof *s);
    const struct cl_tensor *h = cl_item_get(it, "heads"), *m = cl_item_get(it, "mlps"),
                           *em = cl_item_get(it, "embed"), *re = cl_item_get(it, "rest"),
                           *bi = cl_item_get(it, "bias"), *ly = cl_item_get(it, "layers");
    const struct cl_tensor *vecs[3] = {em, re, bi};
    const char *vnames[3] = {"embed", "rest", "bias"};
    s->E = -1;
    if (h) {
        if (h->ndim != 3 && h->ndim != 4)
            return cl_errf(e, CL_ERR_DATA, "\"heads\" has %d dimensions, expected [L,H,E] or [L,H,N,E]", h->ndim);
        s->L = (int)(dim_ok(h->shape[0], CL_PARTS_MAX_LAYERS) ? h->shape[0] : -1);
        s->H = (int)(dim_ok(h->shape[1], CL_PARTS_MAX_HEADS) ? h->shape[1] : -1);
        s->T = h->ndim == 4 ? (int)(dim_ok(h->shape[2], CL_PARTS_MAX_TOKENS) ? h->shape[2] : -1) : 0;
        s->E = (int)(dim_ok(h->shape[h->ndim - 1], CL_PARTS_MAX_DIM) ? h->shape[h->ndim - 1] : -1);
        if (s->L < 0 || s->H < 0 || s->T < 0 || s->E < 0)
            return cl_errf(e, CL_ERR_DATA, "\"heads\" shape out of range (caps: %d layers, %d heads, %d tokens, dim %d)",
                           CL_PARTS_MAX_LAYERS, CL_PARTS_MAX_HEADS, CL_PARTS_MAX_TOKENS, CL_PARTS_MAX_DIM);
        s->has_heads = 1;
    }
    if (m) {
        if (m->ndim != 2 || !dim_ok(m->shape[0], CL_PARTS_MAX_LAYERS) || !dim_ok(m->shape[1], CL_PARTS_MAX_DIM))
            return cl_errf(e, CL_ERR_DATA, "\"mlps\" must be [L,E] within the caps");
        if (h && (m->shape[0] != s->L || m->shape[1] != s->E))
            return cl_errf(e, CL_ERR_DATA, "\"mlps\" is [%" PRId64 ",%" PRId64 "], \"heads\" has %d layers of dim %d",
                           m->shape[0], m->shape[1], s->L, s->E);
        s->L = (int)m->shape[0];
        s->E = (int)m->shape[1];
        s->has_mlps = 1;
    }
    for (int k = 0; k < 3; k++) {
        if (!vecs[k])
            continue;
        if (vecs[k]->ndim != 1 || !dim_ok(vecs[k]->shape[0], CL_PARTS_MAX_DIM) ||
            (s->E >= 0 && vecs[k]->shape[0] != s->E))
            return cl_errf(e, CL_ERR_DATA, "\"%s\" must be [E] with E = %d", vnames[k], s->E);
        s->E = (int)vecs[k]->shape[0];
    }
    s->has_embed = em != NULL;
    s->has_rest = re != NULL;
    s->has_bias = bi != NULL;
    if (s->E < 0)
        return cl_errf(e, CL_ERR_DATA, "no parts: expected \"heads\", \"mlps\" or \"embed\" (a decompose stream)");
    for (int t = 0; t < s->L; t++)
        s->layers[t] = t;
    if (ly) {
        if (ly->dtype != CL_I32 || ly->ndim != 1 || ly->shape[0] != s->L)
            return cl_errf(e, CL_ERR_DATA, "\"layers\" must be i32 [%d] (one number per layer row)", s->L);
        const int32_t *v = ly->data;
        for (int t = 0; t < s->L; t++) {
            if (v[t] < 0 || v[t] >= 1 << 20 || (t && v[t] <= v[t - 1]))
                return cl_errf(e, CL_ERR_DATA, "\"layers\" must be increasing non-negative numbers");
            s->layers[t] = v[t];
        }
    }
    return CL_OK;
}

void cl_parts_shape_describe(const struct cl_parts_shape *s, char *buf, size_t cap)
{
    char ly[128];
    describe_values(s->layers, s->L, ly, sizeof ly);
    size_t at = 0;
    buf[0] = 0;
    if (s->has_heads && s->T)
        at += (size_t)snprintf(buf + at, cap - at, "heads [%d,%d,%d,%d] ", s->L, s->H, s->T, s->E);
    else if (s->has_heads)
        at += (size_t)snprintf(buf + at, cap - at, "heads [%d,%d,%d] ", s->L, s->H, s->E);
    if (at < cap && s->has_mlps)
        at += (size_t)snprintf(buf + at, cap - at, "mlps [%d,%d] ", s->L, s->E);
    if (at < cap)
        snprintf(buf + at, cap - at, "%s%s%s(layers %s, E = %d)", s->has_embed ? "embed " : "",
                 s->has_rest ? "rest " : "", s->has_bias ? "bias " : "", s->L ? ly : "none", s->E);
}

/* ------------------------------------------------------------ parts */

static size_t parts_size(const struct cl_parts_shape *s)
{
    size_t LH = (size_t)s->L * s->H, E = (size_t)s->E;
    return LH * E * (s->T ? 2 : 1) + (size_t)s->L * E + 3 * E;
}

static void parts_carve(struct cl_parts *p, float *block)
{
    const struct cl_parts_shape *s = &p->shape;
    size_t LH = (size_t)s->L * s->H, E = (size_t)s->E;
    p->block = block;
    p->heads = block;
    block += LH * E;
    p->cls = s->T ? block : NULL;
    block += s->T ? LH * E : 0;
    p->mlps = block;
    block += (size_t)s->L * E;
    p->embed = block;
    p->rest = block + E;
    p->bias = block + 2 * E;
}

enum cl_status cl_parts_build(struct cl_parts *p, const struct cl_parts_shape *s, struct cl_err *e)
{
    memset(p, 0, sizeof *p);
    p->shape = *s;
    p->size = parts_size(s);
    float *block = calloc(p->size, sizeof *block);
    p->scratch = malloc((size_t)(s->T ? s->T : 1) * s->E * sizeof *p->scratch);
    if (!block || !p->scratch) {
        free(block);
        free(p->scratch);
        return cl_errf(e, CL_ERR_NOMEM, "out of memory for the parts of one image (%zu floats)", p->size);
    }
    parts_carve(p, block);
    return CL_OK;
}

void cl_parts_free(struct cl_parts *p)
{
    if (!p)
        return;
    free(p->block);
    free(p->scratch);
    memset(p, 0, sizeof *p);
}

static int same_shape(const struct cl_tensor *t, int ndim, const int64_t *shape)
{
    if (!t || t->ndim != ndim)
        return 0;
    for (int i = 0; i < ndim; i++)
        if (t->shape[i] != shape[i])
            return 0;
    return t->dtype == CL_F32 || t->dtype == CL_F16 || t->dtype == CL_BF16;
}

enum cl_status cl_parts_load(struct cl_parts *p, const struct cl_item *it, const char *name, uint64_t index,
                             struct cl_err *e)
{
    const struct cl_parts_shape *s = &p->shape;
    char want[256];
    int64_t hs[4] = {s->L, s->H, s->T ? s->T : s->E, s->E}, ms[2] = {s->L, s->E}, vs[1] = {s->E};
    const struct cl_tensor *h = cl_item_get(it, "heads"), *m = cl_item_get(it, "mlps");
    const struct cl_tensor *v[3] = {cl_item_get(it, "embed"), cl_item_get(it, "rest"), cl_item_get(it, "bias")};
    float *dst[3] = {p->embed, p->rest, p->bias};
    int has[3] = {s->has_embed, s->has_rest, s->has_bias};
    int ok = (s->has_heads ? same_shape(h, s->T ? 4 : 3, hs) : !h) && (s->has_mlps ? same_shape(m, 2, ms) : !m);
    for (int k = 0; k < 3; k++)
        ok = ok && (has[k] ? same_shape(v[k], 1, vs) : !v[k]);
    if (!ok) {
        cl_parts_shape_describe(s, want, sizeof want);
        return cl_errf(e, CL_ERR_DATA, "%s: item %" PRIu64 " (id \"%s\"): parts differ from the first item's: "
                       "expected %s, float dtypes", name, index, it->id ? it->id : "", want);
    }
    size_t LH = (size_t)s->L * s->H, E = (size_t)s->E;
    if (s->has_heads && !s->T) {
        cl_convert_to_f32(p->heads, h->data, h->dtype, LH * E);
    } else if (s->has_heads) {
        size_t es = cl_dtype_size(h->dtype), TE = (size_t)s->T * E;
        for (size_t lh = 0; lh < LH; lh++) {
            cl_convert_to_f32(p->scratch, (const char *)h->data + lh * TE * es, h->dtype, TE);
            float *sum = p->heads + lh * E, *cls = p->cls + lh * E;
            for (size_t i = 0; i < E; i++)
                sum[i] = cls[i] = p->scratch[i];
            for (int t = 1; t < s->T; t++)
                for (size_t i = 0; i < E; i++)
                    sum[i] += p->scratch[(size_t)t * E + i];
        }
    }
    if (s->has_mlps)
        cl_convert_to_f32(p->mlps, m->data, m->dtype, (size_t)s->L * E);
    for (int k = 0; k < 3; k++)
        if (has[k])
            cl_convert_to_f32(dst[k], v[k]->data, v[k]->dtype, E);
    return CL_OK;
}

void cl_parts_sum(const struct cl_parts *p, float *out)
{
    const struct cl_parts_shape *s = &p->shape;
    int E = s->E;
    for (int i = 0; i < E; i++)
        out[i] = p->embed[i] + p->rest[i] + p->bias[i];
    for (int lh = 0; lh < s->L * s->H; lh++)
        for (int i = 0; i < E; i++)
            out[i] += p->heads[(size_t)lh * E + i];
    for (int l = 0; l < s->L; l++)
        for (int i = 0; i < E; i++)
            out[i] += p->mlps[(size_t)l * E + i];
}

/* ------------------------------------------------------------ means */

enum cl_status cl_parts_mean_build(struct cl_parts_mean *m, const struct cl_parts_shape *s, struct cl_err *e)
{
    memset(m, 0, sizeof *m);
    m->shape = *s;
    enum cl_status st = cl_parts_build(&m->mean, s, e);
    if (st != CL_OK)
        return st;
    m->acc = calloc(m->mean.size, sizeof *m->acc);
    if (!m->acc) {
        cl_parts_free(&m->mean);
        return cl_errf(e, CL_ERR_NOMEM, "out of memory for the means of %zu parts", m->mean.size);
    }
    return CL_OK;
}

void cl_parts_mean_add(struct cl_parts_mean *m, const struct cl_parts *p)
{
    for (size_t i = 0; i < m->mean.size; i++)
        m->acc[i] += p->block[i];
    m->n++;
}

enum cl_status cl_parts_mean_finish(struct cl_parts_mean *m, struct cl_err *e)
{
    if (m->n < 1)
        return cl_errf(e, CL_ERR_DATA, "no images to take means over");
    for (size_t i = 0; i < m->mean.size; i++)
        m->mean.block[i] = (float)(m->acc[i] / (double)m->n);
    return CL_OK;
}

void cl_parts_mean_free(struct cl_parts_mean *m)
{
    if (!m)
        return;
    free(m->acc);
    cl_parts_free(&m->mean);
    memset(m, 0, sizeof *m);
}

/* ------------------------------------------------------------ selections */

enum cl_status cl_selection_build(struct cl_selection *sel, const struct cl_parts_shape *s, struct cl_err *e)
{
    memset(sel, 0, sizeof *sel);
    size_t LH = (size_t)s->L * s->H;
    sel->head = calloc(LH + 1, 1);
    sel->cls = calloc(LH + 1, 1);
    sel->mlp = calloc((size_t)s->L + 1, 1);
    if (!sel->head || !sel->cls || !sel->mlp) {
        cl_selection_free(sel);
        return cl_errf(e, CL_ERR_NOMEM, "out of memory for a selection");
    }
    return CL_OK;
}

void cl_selection_free(struct cl_selection *sel)
{
    if (!sel)
        return;
    free(sel->head);
    free(sel->cls);
    free(sel->mlp);
    memset(sel, 0, sizeof *sel);
}

/* "heads:L.H,L.H" or "heads:all" */
static enum cl_status select_heads(struct cl_selection *sel, const struct cl_parts_shape *s, const char *list,
                                   struct cl_err *e)
{
    if (strcmp(list, "all") == 0) {
        memset(sel->head, 1, (size_t)s->L * s->H);
        return CL_OK;
    }
    const char *p = list;
    for (;;) {
        long l, h;
        if (parse_int(&p, &l) != 0 || *p++ != '.' || parse_int(&p, &h) != 0)
            return cl_errf(e, CL_ERR_USAGE, "bad head list 'heads:%s' (expected L.H,L.H e.g. heads:10.3,11.7)", list);
        int row = -1;
        for (int t = 0; t < s->L; t++)
            if (s->layers[t] == l)
                row = t;
        if (row < 0 || h >= s->H) {
            char have[128];
            describe_values(s->layers, s->L, have, sizeof have);
            return cl_errf(e, CL_ERR_USAGE, "head %ld.%ld is not in the stream (layers %s, heads 0-%d)", l, h,
                           s->L ? have : "none", s->H - 1);
        }
        sel->head[(size_t)row * s->H + h] = 1;
        if (*p == 0)
            return CL_OK;
        if (*p++ != ',')
            return cl_errf(e, CL_ERR_USAGE, "bad head list 'heads:%s' (expected L.H,L.H)", list);
    }
}

enum cl_status cl_selection_add(struct cl_selection *sel, const struct cl_parts_shape *s, const char *spec,
                                struct cl_err *e)
{
    const char *colon = strchr(spec, ':');
    size_t klen = colon ? (size_t)(colon - spec) : strlen(spec);
    const char *list = colon ? colon + 1 : NULL;
    enum cl_status st;
#define KEY(k) (klen == strlen(k) && strncmp(spec, k, klen) == 0)
    if (!list && (KEY("embed") || KEY("rest") || KEY("bias") || KEY("all"))) {
        int present = KEY("embed") ? s->has_embed : KEY("rest") ? s->has_rest : KEY("bias") ? s->has_bias : 1;
        if (!present)
            return cl_errf(e, CL_ERR_USAGE, "'%s': the stream has no \"%s\" part", spec, spec);
        if (KEY("all")) {
            memset(sel->head, s->has_heads, (size_t)s->L * s->H);
            memset(sel->mlp, s->has_mlps, (size_t)s->L);
            sel->embed = (uint8_t)s->has_embed;
            sel->rest = (uint8_t)s->has_rest;
            sel->bias = (uint8_t)s->has_bias;
        } else if (KEY("embed")) {
            sel->embed = 1;
        } else if (KEY("rest")) {
            sel->rest = 1;
        } else {
            sel->bias = 1;
        }
        return CL_OK;
    }
    if (!list)
        return cl_errf(e, CL_ERR_USAGE, "bad part '%s' (expected heads:L.H,.. layers:A-B mlps:A-B cls:A-B embed rest "
                       "bias all)", spec);
    if ((KEY("heads") || KEY("layers") || KEY("cls")) && !s->has_heads)
        return cl_errf(e, CL_ERR_USAGE, "'%s': the stream has no \"heads\"", spec);
    if (KEY("heads"))
        return select_heads(sel, s, list, e);
    uint8_t rows[CL_PARTS_MAX_LAYERS] = {0};
    if (KEY("layers") || KEY("mlps") || KEY("cls")) {
        if (KEY("mlps") && !s->has_mlps)
            return cl_errf(e, CL_ERR_USAGE, "'%s': the stream has no \"mlps\"", spec);
        if (KEY("cls") && !s->T)
            return cl_errf(e, CL_ERR_USAGE, "'%s': CLS-to-CLS parts need heads per token (decompose --tokens)", spec);
        if ((st = cl_index_list_parse(list, s->layers, s->L, rows, e)) != CL_OK)
            return cl_err_prefix(e, st, "'%s'", spec);
        for (int t = 0; t < s->L; t++) {
            if (!rows[t])
                continue;
            if (KEY("mlps"))
                sel->mlp[t] = 1;
            else
                memset((KEY("cls") ? sel->cls : sel->head) + (size_t)t * s->H, 1, (size_t)s->H);
        }
        return CL_OK;
    }
    return cl_errf(e, CL_ERR_USAGE, "bad part '%s' (expected heads:L.H,.. layers:A-B mlps:A-B cls:A-B embed rest bias "
                   "all)", spec);
#undef KEY
}

int cl_selection_count(const struct cl_selection *sel, const struct cl_parts_shape *s)
{
    int n = sel->embed + sel->rest + sel->bias;
    for (int i = 0; i < s->L * s->H; i++)
        n += sel->head[i] + sel->cls[i];
    for (int l = 0; l < s->L; l++)
        n += sel->mlp[l];
    return n;
}

/* ------------------------------------------------------------ ablations */

enum cl_status cl_ablation_build(struct cl_ablation *a, const struct cl_parts_shape *s, struct cl_err *e)
{
    memset(a, 0, sizeof *a);
    a->shape = *s;
    size_t LH = (size_t)s->L * s->H;
    a->head = calloc(LH + 1, 1);
    a->cls = calloc(LH + 1, 1);
    a->mlp = calloc((size_t)s->L + 1, 1);
    a->basis = calloc(LH + 1, sizeof *a->basis);
    a->ts_mean = calloc(LH + 1, sizeof *a->ts_mean);
    a->basis_m = calloc(LH + 1, sizeof *a->basis_m);
    if (!a->head || !a->cls || !a->mlp || !a->basis || !a->ts_mean || !a->basis_m) {
        cl_ablation_free(a);
        return cl_errf(e, CL_ERR_NOMEM, "out of memory for an ablation");
    }
    return CL_OK;
}

void cl_ablation_free(struct cl_ablation *a)
{
    if (!a)
        return;
    for (int i = 0; a->basis && i < a->shape.L * a->shape.H; i++) {
        free(a->basis[i]);
        free(a->ts_mean[i]);
    }
    free(a->head);
    free(a->cls);
    free(a->mlp);
    free(a->basis);
    free(a->ts_mean);
    free(a->basis_m);
    memset(a, 0, sizeof *a);
}

void cl_ablation_set(struct cl_ablation *a, const struct cl_selection *sel, enum cl_action act)
{
    const struct cl_parts_shape *s = &a->shape;
    for (int i = 0; i < s->L * s->H; i++) {
        if (sel->head[i])
            a->head[i] = (uint8_t)act;
        if (sel->cls[i])
            a->cls[i] = (uint8_t)act;
    }
    for (int l = 0; l < s->L; l++)
        if (sel->mlp[l])
            a->mlp[l] = (uint8_t)act;
    if (sel->embed)
        a->embed = (uint8_t)act;
    if (sel->rest)
        a->rest = (uint8_t)act;
    if (sel->bias)
        a->bias = (uint8_t)act;
}

enum cl_status cl_ablation_replace(struct cl_ablation *a, int layer, int head, const float *basis, int m,
                                   const float *mean, struct cl_err *e)
{
    const struct cl_parts_shape *s = &a->shape;
    int row = -1;
    for (int t = 0; t < s->L; t++)
        if (s->layers[t] == layer)
            row = t;
    if (row < 0 || head < 0 || head >= s->H || !s->has_heads)
        return cl_errf(e, CL_ERR_DATA, "head %d.%d of the basis is not among the heads of the parts", layer, head);
    if (m < 0)
        return cl_errf(e, CL_ERR_DATA, "head %d.%d: negative basis size", layer, head);
    size_t i = (size_t)row * s->H + head, E = (size_t)s->E;
    free(a->basis[i]);
    free(a->ts_mean[i]);
    a->basis[i] = malloc(((size_t)m + 1) * E * sizeof(float));
    a->ts_mean[i] = malloc(E * sizeof(float));
    if (!a->basis[i] || !a->ts_mean[i])
        return cl_errf(e, CL_ERR_NOMEM, "out of memory for the basis of head %d.%d", layer, head);
    memcpy(a->basis[i], basis, (size_t)m * E * sizeof(float));
    memcpy(a->ts_mean[i], mean, E * sizeof(float));
    a->basis_m[i] = m;
    a->head[i] = CL_ACT_REPLACE;
    return CL_OK;
}

void cl_ablation_describe(const struct cl_ablation *a, char *buf, size_t cap)
{
    const struct cl_parts_shape *s = &a->shape;
    int n[3][4] = {{0}}; /* [action][heads, cls, mlps, vectors] */
    for (int i = 0; i < s->L * s->H; i++) {
        n[a->head[i]][0]++;
        n[a->cls[i]][1] += s->T ? 1 : 0;
    }
    for (int l = 0; l < s->L; l++)
        n[a->mlp[l]][2]++;
    n[a->embed][3] += s->has_embed;
    n[a->rest][3] += s->has_rest;
    n[a->bias][3] += s->has_bias;
    snprintf(buf, cap, "mean-ablated: %d heads, %d cls, %d mlps, %d other; replaced: %d heads", n[1][0], n[1][1],
             n[1][2], n[1][3], n[2][0]);
}

static void add_to(float *out, const float *v, int E)
{
    for (int i = 0; i < E; i++)
        out[i] += v[i];
}

void cl_ablation_apply(const struct cl_ablation *a, const struct cl_parts *p, float *out)
{
    const struct cl_parts_shape *s = &a->shape;
    int E = s->E;
    memset(out, 0, (size_t)E * sizeof *out);
    if (a->embed == CL_ACT_KEEP)
        add_to(out, p->embed, E);
    if (a->rest == CL_ACT_KEEP)
        add_to(out, p->rest, E);
    if (a->bias == CL_ACT_KEEP)
        add_to(out, p->bias, E);
    for (int l = 0; l < s->L; l++)
        if (a->mlp[l] == CL_ACT_KEEP)
            add_to(out, p->mlps + (size_t)l * E, E);
    for (int i = 0; i < s->L * s->H; i++) {
        const float *c = p->heads + (size_t)i * E;
        if (a->head[i] == CL_ACT_KEEP) {
            add_to(out, c, E);
            if (s->T && a->cls[i] == CL_ACT_MEAN) /* the CLS slice goes to the constant */
                for (int k = 0; k < E; k++)
                    out[k] -= p->cls[(size_t)i * E + k];
        } else if (a->head[i] == CL_ACT_REPLACE) {
            const float *mu = a->ts_mean[i];
            for (int k = 0; k < E; k++)
                out[k] += mu[k];
            for (int j = 0; j < a->basis_m[i]; j++) {
                const float *b = a->basis[i] + (size_t)j * E;
                double d = 0;
                for (int k = 0; k < E; k++)
                    d += ((double)c[k] - mu[k]) * b[k];
                for (int k = 0; k < E; k++)
                    out[k] += (float)(d * b[k]);
            }
        }
    }
}

void cl_ablation_constant(const struct cl_ablation *a, const struct cl_parts *mean, float *out)
{
    const struct cl_parts_shape *s = &a->shape;
    int E = s->E;
    memset(out, 0, (size_t)E * sizeof *out);
    if (a->embed == CL_ACT_MEAN)
        add_to(out, mean->embed, E);
    if (a->rest == CL_ACT_MEAN)
        add_to(out, mean->rest, E);
    if (a->bias == CL_ACT_MEAN)
        add_to(out, mean->bias, E);
    for (int l = 0; l < s->L; l++)
        if (a->mlp[l] == CL_ACT_MEAN)
            add_to(out, mean->mlps + (size_t)l * E, E);
    for (int i = 0; i < s->L * s->H; i++) {
        if (a->head[i] == CL_ACT_MEAN)
            add_to(out, mean->heads + (size_t)i * E, E);
        else if (a->head[i] == CL_ACT_KEEP && s->T && a->cls[i] == CL_ACT_MEAN)
            add_to(out, mean->cls + (size_t)i * E, E);
    }
}

/* ------------------------------------------------------------ accuracy */

enum cl_status cl_accuracy_tally(struct cl_accuracy *acc, const int *pred, const int *label, const int *group,
                                 int64_t n, struct cl_err *e)
{
    memset(acc, 0, sizeof *acc);
    acc->worst = -1;
    int G = 0;
    for (int64_t i = 0; group && i < n; i++) {
        if (group[i] >= CL_MAX_GROUPS)
            return cl_errf(e, CL_ERR_DATA, "group %d of image %" PRId64 " is above the cap %d", group[i], i,
                           CL_MAX_GROUPS - 1);
        if (group[i] + 1 > G)
            G = group[i] + 1;
    }
    acc->ngroups = G;
    acc->group_n = calloc((size_t)G + 1, sizeof *acc->group_n);
    acc->group_correct = calloc((size_t)G + 1, sizeof *acc->group_correct);
    if (!acc->group_n || !acc->group_correct) {
        cl_accuracy_free(acc);
        return cl_errf(e, CL_ERR_NOMEM, "out of memory for %d groups", G);
    }
    for (int64_t i = 0; i < n; i++) {
        int ok = pred[i] == label[i];
        acc->n++;
        acc->correct += ok;
        if (group && group[i] >= 0) {
            acc->group_n[group[i]]++;
            acc->group_correct[group[i]] += ok;
        }
    }
    double worst = 2;
    for (int g = 0; g < G; g++) {
        if (!acc->group_n[g])
            continue;
        double a = (double)acc->group_correct[g] / (double)acc->group_n[g];
        if (a < worst) {
            worst = a;
            acc->worst = g;
        }
    }
    return CL_OK;
}

void cl_accuracy_free(struct cl_accuracy *acc)
{
    if (!acc)
        return;
    free(acc->group_n);
    free(acc->group_correct);
    memset(acc, 0, sizeof *acc);
    acc->worst = -1;
}

double cl_accuracy_group(const struct cl_accuracy *acc, int g)
{
    if (g < 0 || g >= acc->ngroups || acc->group_n[g] == 0)
        return NAN;
    return 100.0 * (double)acc->group_correct[g] / (double)acc->group_n[g];
}

int cl_zeroshot_predict(const float *classes, int K, int E, const float *v)
{
    int best = 0;
    double bs = -INFINITY;
    for (int k = 0; k < K; k++) {
        const float *c = classes + (size_t)k * E;
        double d = 0;
        for (int i = 0; i < E; i++)
            d += (double)v[i] * c[i];
        if (d > bs) {
            bs = d;
            best = k;
        }
    }
    return best;
}

/* ------------------------------------------------------------ neighbours */

int cl_nearest(const float *db, int64_t n, int E, const float *q, int k, int64_t exclude, int64_t *idx, float *sim)
{
    double qn = 0;
    for (int i = 0; i < E; i++)
        qn += (double)q[i] * q[i];
    qn = sqrt(qn);
    int found = 0;
    for (int64_t r = 0; r < n; r++) {
        if (r == exclude)
            continue;
        const float *x = db + (size_t)r * E;
        double d = 0, xn = 0;
        for (int i = 0; i < E; i++) {
            d += (double)x[i] * q[i];
            xn += (double)x[i] * x[i];
        }
        float c = (float)(qn > 0 && xn > 0 ? d / (qn * sqrt(xn)) : 0);
        /* insert into the sorted top-k (ties keep the earlier row first) */
        int pos = found;
        while (pos > 0 && sim[pos - 1] < c)
            pos--;
        if (pos >= k)
            continue;
        int last = found < k ? found : k - 1;
        for (int j = last; j > pos; j--) {
            idx[j] = idx[j - 1];
            sim[j] = sim[j - 1];
        }
        idx[pos] = r;
        sim[pos] = c;
        if (found < k)
            found++;
    }
    return found;
}
