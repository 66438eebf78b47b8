/* value.c - the meta value tree: construction, maps, copies, text rendering. */
#include "value.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cl_value_free(struct cl_value *v)
{
    if (!v)
        return;
    switch (v->type) {
    case CL_V_STR: case CL_V_BIN: free(v->u.s.p); break;
    case CL_V_ARRAY:
        for (size_t i = 0; i < v->u.a.n; i++)
            cl_value_free(&v->u.a.v[i]);
        free(v->u.a.v);
        break;
    case CL_V_MAP:
        for (size_t i = 0; i < v->u.m.n; i++) {
            free(v->u.m.k[i]);
            cl_value_free(&v->u.m.v[i]);
        }
        free(v->u.m.k);
        free(v->u.m.v);
        break;
    default: break;
    }
    memset(v, 0, sizeof *v);
}

void cl_value_int(struct cl_value *dst, int64_t i) { memset(dst, 0, sizeof *dst); dst->type = CL_V_INT; dst->u.i = i; }
void cl_value_float(struct cl_value *dst, double f) { memset(dst, 0, sizeof *dst); dst->type = CL_V_FLOAT; dst->u.f = f; }
void cl_value_bool(struct cl_value *dst, int b) { memset(dst, 0, sizeof *dst); dst->type = CL_V_BOOL; dst->u.b = !!b; }
void cl_value_map(struct cl_value *dst) { memset(dst, 0, sizeof *dst); dst->type = CL_V_MAP; }
void cl_value_array(struct cl_value *dst) { memset(dst, 0, sizeof *dst); dst->type = CL_V_ARRAY; }

enum cl_status cl_value_str(struct cl_value *dst, const char *s, size_t len)
{
    memset(dst, 0, sizeof *dst);
    char *p = malloc(len + 1);
    if (!p)
        return CL_ERR_NOMEM;
    memcpy(p, s, len);
    p[len] = 0;
    dst->type = CL_V_STR;
    dst->u.s.p = p;
    dst->u.s.len = len;
    return CL_OK;
}

enum cl_status cl_value_copy(struct cl_value *dst, const struct cl_value *src)
{
    memset(dst, 0, sizeof *dst);
    switch (src->type) {
    case CL_V_STR: case CL_V_BIN: {
        enum cl_status s = cl_value_str(dst, src->u.s.p ? src->u.s.p : "", src->u.s.len);
        dst->type = src->type;
        return s;
    }
    case CL_V_ARRAY:
        cl_value_array(dst);
        for (size_t i = 0; i < src->u.a.n; i++) {
            struct cl_value c;
            if (cl_value_copy(&c, &src->u.a.v[i]) != CL_OK || cl_array_push(dst, &c) != CL_OK) {
                cl_value_free(&c);
                cl_value_free(dst);
                return CL_ERR_NOMEM;
            }
        }
        return CL_OK;
    case CL_V_MAP:
        cl_value_map(dst);
        for (size_t i = 0; i < src->u.m.n; i++) {
            struct cl_value c;
            if (cl_value_copy(&c, &src->u.m.v[i]) != CL_OK || cl_map_set(dst, src->u.m.k[i], &c) != CL_OK) {
                cl_value_free(&c);
                cl_value_free(dst);
                return CL_ERR_NOMEM;
            }
        }
        return CL_OK;
    default:
        *dst = *src;
        return CL_OK;
    }
}

int cl_value_equal(const struct cl_value *a, const struct cl_value *b)
{
    if (a->type != b->type)
        return 0;
    switch (a->type) {
    case CL_V_NIL: return 1;
    case CL_V_BOOL: return a->u.b == b->u.b;
    case CL_V_INT: return a->u.i == b->u.i;
    case CL_V_FLOAT: return a->u.f == b->u.f;
    case CL_V_STR: case CL_V_BIN:
        return a->u.s.len == b->u.s.len && (a->u.s.len == 0 || memcmp(a->u.s.p, b->u.s.p, a->u.s.len) == 0);
    case CL_V_ARRAY:
        if (a->u.a.n != b->u.a.n)
            return 0;
        for (size_t i = 0; i < a->u.a.n; i++)
            if (!cl_value_equal(&a->u.a.v[i], &b->u.a.v[i]))
                return 0;
        return 1;
    case CL_V_MAP:
        if (a->u.m.n != b->u.m.n)
            return 0;
        for (size_t i = 0; i < a->u.m.n; i++) {
            const struct cl_value *o = cl_map_get(b, a->u.m.k[i]);
            if (!o || !cl_value_equal(&a->u.m.v[i], o))
                return 0;
        }
        return 1;
    }
    return 0;
}

const struct cl_value *cl_map_get(const struct cl_value *map, const char *key)
{
    if (!map || map->type != CL_V_MAP)
        return NULL;
    for (size_t i = 0; i < map->u.m.n; i++)
        if (strcmp(map->u.m.k[i], key) == 0)
            return &map->u.m.v[i];
    return NULL;
}

enum cl_status cl_map_set(struct cl_value *map, const char *key, struct cl_value *val)
{
    if (map->type == CL_V_NIL)
        cl_value_map(map);
    if (map->type != CL_V_MAP)
        return CL_ERR_USAGE;
    for (size_t i = 0; i < map->u.m.n; i++) {
        if (strcmp(map->u.m.k[i], key) == 0) {
            cl_value_free(&map->u.m.v[i]);
            map->u.m.v[i] = *val;
            memset(val, 0, sizeof *val);
            return CL_OK;
        }
    }
    if (map->u.m.n == map->u.m.cap) {
        size_t cap = map->u.m.cap ? map->u.m.cap * 2 : 8;
        char **k = realloc(map->u.m.k, cap * sizeof *k);
        if (!k)
            return CL_ERR_NOMEM;
        map->u.m.k = k;
        struct cl_value *v = realloc(map->u.m.v, cap * sizeof *v);
        if (!v)
            return CL_ERR_NOMEM;
        map->u.m.v = v;
        map->u.m.cap = cap;
    }
    char *k = strdup(key);
    if (!k)
        return CL_ERR_NOMEM;
    map->u.m.k[map->u.m.n] = k;
    map->u.m.v[map->u.m.n] = *val;
    map->u.m.n++;
    memset(val, 0, sizeof *val);
    return CL_OK;
}

enum cl_status cl_map_set_int(struct cl_value *map, const char *key, int64_t i)
{
    struct cl_value v;
    cl_value_int(&v, i);
    return cl_map_set(map, key, &v);
}

enum cl_status cl_map_set_float(struct cl_value *map, const char *key, double f)
{
    struct cl_value v;
    cl_value_float(&v, f);
    return cl_map_set(map, key, &v);
}

enum cl_status cl_map_set_str(struct cl_value *map, const char *key, const char *s)
{
    struct cl_value v;
    enum cl_status st = cl_value_str(&v, s, strlen(s));
    if (st != CL_OK)
        return st;
    st = cl_map_set(map, key, &v);
    cl_value_free(&v);
    return st;
}

int cl_map_get_int(const struct cl_value *map, const char *key, int64_t *out)
{
    const struct cl_value *v = cl_map_get(map, key);
    if (!v || v->type != CL_V_INT)
        return -1;
    *out = v->u.i;
    return 0;
}

int cl_map_get_float(const struct cl_value *map, const char *key, double *out)
{
    const struct cl_value *v = cl_map_get(map, key);
    if (v && v->type == CL_V_FLOAT) { *out = v->u.f; return 0; }
    if (v && v->type == CL_V_INT) { *out = (double)v->u.i; return 0; }
    return -1;
}

const char *cl_map_get_str(const struct cl_value *map, const char *key)
{
    const struct cl_value *v = cl_map_get(map, key);
    return v && v->type == CL_V_STR ? v->u.s.p : NULL;
}

enum cl_status cl_array_push(struct cl_value *arr, struct cl_value *val)
{
    if (arr->type == CL_V_NIL)
        cl_value_array(arr);
    if (arr->type != CL_V_ARRAY)
        return CL_ERR_USAGE;
    if (arr->u.a.n == arr->u.a.cap) {
        size_t cap = arr->u.a.cap ? arr->u.a.cap * 2 : 8;
        struct cl_value *v = realloc(arr->u.a.v, cap * sizeof *v);
        if (!v)
            return CL_ERR_NOMEM;
        arr->u.a.v = v;
        arr->u.a.cap = cap;
    }
    arr->u.a.v[arr->u.a.n++] = *val;
    memset(val, 0, sizeof *val);
    return CL_OK;
}

/* ---- text rendering into a growable buffer ---- */
struct sbuf { char *p; size_t n, cap; int oom; };

static void sb_put(struct sbuf *b, const char *s, size_t len)
{
    if (b->oom)
        return;
    if (b->n + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + len + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) { b->oom = 1; return; }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = 0;
}

static void sb_puts(struct sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_quoted(struct sbuf *b, const char *s, size_t len)
{
    sb_puts(b, "\"");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') { esc[0] = '\\'; esc[1] = (char)c; sb_put(b, esc, 2); }
        else if (c == '\n') sb_puts(b, "\\n");
        else if (c == '\t') sb_puts(b, "\\t");
        else if (c < 0x20) { snprintf(esc, sizeof esc, "\\u%04x", c); sb_puts(b, esc); }
        else sb_put(b, (const char *)&c, 1);
    }
    sb_puts(b, "\"");
}

static void render(struct sbuf *b, const struct cl_value *v, int quote)
{
    char num[64];
    switch (v->type) {
    case CL_V_NIL: sb_puts(b, "null"); break;
    case CL_V_BOOL: sb_puts(b, v->u.b ? "true" : "false"); break;
    case CL_V_INT: snprintf(num, sizeof num, "%" PRId64, v->u.i); sb_puts(b, num); break;
    case CL_V_FLOAT: snprintf(num, sizeof num, "%.9g", v->u.f); sb_puts(b, num); break;
    case CL_V_STR:
        if (quote) sb_quoted(b, v->u.s.p, v->u.s.len);
        else sb_put(b, v->u.s.p, v->u.s.len);
        break;
    case CL_V_BIN: snprintf(num, sizeof num, "<%zu bytes>", v->u.s.len); sb_puts(b, num); break;
    case CL_V_ARRAY:
        sb_puts(b, "[");
        for (size_t i = 0; i < v->u.a.n; i++) {
            if (i) sb_puts(b, ",");
            render(b, &v->u.a.v[i], 1);
        }
        sb_puts(b, "]");
        break;
    case CL_V_MAP:
        sb_puts(b, "{");
        for (size_t i = 0; i < v->u.m.n; i++) {
            if (i) sb_puts(b, ",");
            sb_quoted(b, v->u.m.k[i], strlen(v->u.m.k[i]));
            sb_puts(b, ":");
            render(b, &v->u.m.v[i], 1);
        }
        sb_puts(b, "}");
        break;
    }
}

char *cl_value_to_text(const struct cl_value *v)
{
    struct sbuf b = {0};
    render(&b, v, 1);
    sb_puts(&b, "");
    if (b.oom) { free(b.p); return NULL; }
    return b.p;
}

char *cl_value_to_plain(const struct cl_value *v)
{
    struct sbuf b = {0};
    render(&b, v, 0);
    sb_puts(&b, "");
    if (b.oom) { free(b.p); return NULL; }
    return b.p;
}
