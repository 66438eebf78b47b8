/* safetensors.c - mmap a .safetensors file, validate its JSON header, look tensors up. */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct { const char *name; size_t size; int supported; enum cl_dtype dtype; } st_dtypes[] = {
    {"F32", 4, 1, CL_F32}, {"F16", 2, 1, CL_F16}, {"BF16", 2, 1, CL_BF16},
    {"F64", 8, 0, CL_F32}, {"I64", 8, 0, CL_F32}, {"U64", 8, 0, CL_F32},
    {"I32", 4, 0, CL_F32}, {"U32", 4, 0, CL_F32}, {"I16", 2, 0, CL_F32},
    {"U16", 2, 0, CL_F32}, {"I8", 1, 0, CL_F32},  {"U8", 1, 0, CL_F32},
    {"BOOL", 1, 0, CL_F32}, {"F8_E4M3", 1, 0, CL_F32}, {"F8_E5M2", 1, 0, CL_F32},
};
#define N_ST_DTYPES (sizeof st_dtypes / sizeof st_dtypes[0])

void cl_shape_str(char *buf, size_t len, const int64_t *shape, int ndim)
{
    size_t at = 0;
    if (len == 0)
        return;
    buf[0] = '\0';
    at += (size_t)snprintf(buf + at, len - at, "[");
    for (int i = 0; i < ndim && at < len; i++)
        at += (size_t)snprintf(buf + at, len - at, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (at < len)
        snprintf(buf + at, len - at, "]");
}

/* A JSON number that is a non-negative integer below 2^53 (exact in a double). */
static int json_uint(const cJSON *j, uint64_t *out)
{
    if (!cJSON_IsNumber(j))
        return -1;
    double d = j->valuedouble;
    if (!isfinite(d) || d < 0 || d > 9007199254740992.0 || d != floor(d))
        return -1;
    *out = (uint64_t)d;
    return 0;
}

static int cmp_tensor(const void *a, const void *b)
{
    return strcmp(((const struct cl_st_tensor *)a)->name, ((const struct cl_st_tensor *)b)->name);
}

/* Fill t from one header entry; the data region is [data, data + region). */
static enum cl_status parse_entry(struct cl_st_tensor *t, const cJSON *j, const char *path,
                                  const uint8_t *data, uint64_t region, struct cl_err *e)
{
    const char *name = t->name;
    if (!cJSON_IsObject(j))
        return cl_errf(e, CL_ERR_DATA, "%s: tensor '%s': header entry is not an object", path, name);
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(j, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(j, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(j, "data_offsets");
    if (!cJSON_IsString(jd) || !cJSON_IsArray(js) || !cJSON_IsArray(jo))
        return cl_errf(e, CL_ERR_DATA, "%s: tensor '%s': expected string \"dtype\", array \"shape\" "
                       "and array \"data_offsets\"", path, name);
    size_t k;
    for (k = 0; k < N_ST_DTYPES; k++)
        if (strcmp(jd->valuestring, st_dtypes[k].name) == 0)
            break;
    if (k == N_ST_DTYPES)
        return cl_errf(e, CL_ERR_DATA, "%s: tensor '%s': unknown dtype '%.32s'", path, name, jd->valuestring);
    snprintf(t->dtype_name, sizeof t->dtype_name, "%s", st_dtypes[k].name);
    t->supported = st_dtypes[k].supported;
    t->dtype = st_dtypes[k].dtype;

    int nd = cJSON_GetArraySize(js);
    if (nd > CL_MAX_DIMS)
        return cl_errf(e, CL_ERR_DATA, "%s: tensor '%s': %d dimensions, at most %d supported",
                       path, name, nd, CL_MAX_DIMS);
    t->ndim = nd;
    for (int i = 0; i < nd; i++) {
        uint64_t d;
        if (json_uint(cJSON_GetArrayItem(js, i), &d) || d > (uint64_t)CL_MAX_DIM)
            return cl_errf(e, CL_ERR_DATA, "%s: tensor '%s': shape[%d] is not an integer in [0, 2^40]",
                           path, name, i);
        t->shape[i] = (int64_t)d;
    }
    uint64_t begin, end;
    if (cJSON_GetArraySize(jo) != 2 || json_uint(cJSON_GetArrayItem(jo, 0), &begin) ||
        json_uint(cJSON_GetArrayItem(jo, 1), &end))
        return cl_errf(e, CL_ERR_DATA, "%s: tensor '%s': data_offsets must be two non-negative integers",
                       path, name);
    if (begin > end || end > region)
        return cl_errf(e, CL_ERR_DATA, "%s: tensor '%s': data_offsets [%llu, %llu] outside the data region "
                       "of %llu bytes", path, name, (unsigned long long)begin, (unsigned long long)end,
                       (unsigned long long)region);
    size_t numel, nbytes;
    char sh[128];
    cl_shape_str(sh, sizeof sh, t->shape, nd);
    if (cl_shape_bytes(t->shape, nd, st_dtypes[k].size, (size_t)region, &numel, &nbytes))
        return cl_errf(e, CL_ERR_DATA, "%s: tensor '%s': shape %s of %s is larger than the data region "
                       "of %llu bytes", path, name, sh, t->dtype_name, (unsigned long long)region);
    if (nbytes != end - begin)
        return cl_errf(e, CL_ERR_DATA, "%s: tensor '%s': data_offsets [%llu, %llu] hold %llu bytes, "
                       "shape %s of %s needs %zu", path, name, (unsigned long long)begin,
                       (unsigned long long)end, (unsigned long long)(end - begin), sh, t->dtype_name, nbytes);
    t->numel = numel;
    t->nbytes = nbytes;
    t->data = data + begin;
    return CL_OK;
}

/* Parse and validate the header of an already mapped file into st. */
static enum cl_status parse_header(struct cl_safetensors *st, struct cl_err *e)
{
    const char *path = st->path;
    if (st->map_size < 8)
        return cl_errf(e, CL_ERR_DATA, "%s: %zu bytes, too short for a safetensors header length",
                       path, st->map_size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | st->map[i];
    if (hlen > CL_ST_MAX_HEADER || hlen > st->map_size - 8)
        return cl_errf(e, CL_ERR_DATA, "%s: header length %llu does not fit the file of %zu bytes "
                       "(cap %llu)", path, (unsigned long long)hlen, st->map_size,
                       (unsigned long long)CL_ST_MAX_HEADER);
    const char *hdr = (const char *)st->map + 8;
    const char *parse_end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, (size_t)hlen, &parse_end, 0);
    if (!root)
        return cl_errf(e, CL_ERR_DATA, "%s: header is not valid JSON (near byte %lld)", path,
                       (long long)(parse_end ? parse_end - hdr + 8 : -1));
    enum cl_status s = CL_OK;
    for (const char *p = parse_end; p && p < hdr + hlen; p++) /* only padding may follow */
        if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t') {
            s = cl_errf(e, CL_ERR_DATA, "%s: junk after the header's JSON at byte %lld", path,
                        (long long)(p - hdr + 8));
            goto out;
        }
    if (!cJSON_IsObject(root)) {
        s = cl_errf(e, CL_ERR_DATA, "%s: header is not a JSON object", path);
        goto out;
    }
    int n = 0;
    size_t names_len = 0;
    for (const cJSON *c = root->child; c; c = c->next) {
        if (strcmp(c->string, "__metadata__") == 0)
            continue;
        n++;
        names_len += strlen(c->string) + 1;
    }
    st->t = calloc(n ? (size_t)n : 1, sizeof *st->t);
    st->names = malloc(names_len ? names_len : 1);
    if (!st->t || !st->names) {
        s = cl_errf(e, CL_ERR_NOMEM, "%s: out of memory for %d tensor entries", path, n);
        goto out;
    }
    const uint8_t *data = st->map + 8 + hlen;
    uint64_t region = st->map_size - 8 - hlen;
    char *np = st->names;
    for (const cJSON *c = root->child; c; c = c->next) {
        if (strcmp(c->string, "__metadata__") == 0)
            continue;
        struct cl_st_tensor *t = &st->t[st->n++];
        size_t l = strlen(c->string) + 1;
        memcpy(np, c->string, l);
        t->name = np;
        np += l;
        if ((s = parse_entry(t, c, path, data, region, e)) != CL_OK)
            goto out;
    }
    qsort(st->t, (size_t)st->n, sizeof *st->t, cmp_tensor);
    for (int i = 1; i < st->n; i++)
        if (strcmp(st->t[i - 1].name, st->t[i].name) == 0) {
            s = cl_errf(e, CL_ERR_DATA, "%s: tensor '%s' appears twice in the header", path, st->t[i].name);
            goto out;
        }
out:
    cJSON_Delete(root);
    return s;
}

enum cl_status cl_safetensors_open(struct cl_safetensors **out, const char *path, struct cl_err *e)
{
    *out = NULL;
    struct cl_safetensors *st = calloc(1, sizeof *st);
    if (!st || !(st->path = strdup(path))) {
        free(st);
        return cl_errf(e, CL_ERR_NOMEM, "%s: out of memory", path);
    }
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        enum cl_status s = cl_errf(e, CL_ERR_IO, "%s: %s", path, strerror(errno));
        cl_safetensors_close(st);
        return s;
    }
    struct stat sb;
    enum cl_status s = CL_OK;
    if (fstat(fd, &sb) != 0)
        s = cl_errf(e, CL_ERR_IO, "%s: %s", path, strerror(errno));
    else if (!S_ISREG(sb.st_mode))
        s = cl_errf(e, CL_ERR_IO, "%s: not a regular file", path);
    else if (sb.st_size < 8)
        s = cl_errf(e, CL_ERR_DATA, "%s: %lld bytes, too short for a safetensors header length",
                    path, (long long)sb.st_size);
    else {
        void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED)
            s = cl_errf(e, CL_ERR_IO, "%s: mmap: %s", path, strerror(errno));
        else {
            st->map = m;
            st->map_size = (size_t)sb.st_size;
            st->mapped = 1;
        }
    }
    close(fd);
    if (s == CL_OK)
        s = parse_header(st, e);
    if (s != CL_OK) {
        cl_safetensors_close(st);
        return s;
    }
    *out = st;
    return CL_OK;
}

enum cl_status cl_safetensors_open_mem(struct cl_safetensors **out, const void *buf, size_t len,
                                       const char *name, struct cl_err *e)
{
    *out = NULL;
    struct cl_safetensors *st = calloc(1, sizeof *st);
    if (!st || !(st->path = strdup(name))) {
        free(st);
        return cl_errf(e, CL_ERR_NOMEM, "%s: out of memory", name);
    }
    st->map = buf;
    st->map_size = len;
    enum cl_status s = parse_header(st, e);
    if (s != CL_OK) {
        cl_safetensors_close(st);
        return s;
    }
    *out = st;
    return CL_OK;
}

void cl_safetensors_close(struct cl_safetensors *st)
{
    if (!st)
        return;
    if (st->map && st->mapped)
        munmap((void *)st->map, st->map_size);
    free(st->t);
    free(st->names);
    free(st->path);
    free(st);
}

const struct cl_st_tensor *cl_safetensors_find(const struct cl_safetensors *st, const char *name)
{
    int lo = 0, hi = st->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(name, st->t[mid].name);
        if (c == 0)
            return &st->t[mid];
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return NULL;
}

enum cl_status cl_safetensors_get(const struct cl_safetensors *st, const char *name,
                                  const struct cl_st_tensor **out, struct cl_err *e)
{
    const struct cl_st_tensor *t = cl_safetensors_find(st, name);
    *out = NULL;
    if (!t)
        return cl_errf(e, CL_ERR_DATA, "%s: tensor '%s' is missing", st->path, name);
    if (!t->supported)
        return cl_errf(e, CL_ERR_DATA, "%s: tensor '%s' has dtype %s; cliplens reads F32, F16 and BF16",
                       st->path, name, t->dtype_name);
    *out = t;
    return CL_OK;
}

enum cl_status cl_safetensors_get_shaped(const struct cl_safetensors *st, const char *name,
                                         int ndim, const int64_t *shape,
                                         const struct cl_st_tensor **out, struct cl_err *e)
{
    const struct cl_st_tensor *t;
    enum cl_status s = cl_safetensors_get(st, name, &t, e);
    *out = NULL;
    if (s != CL_OK)
        return s;
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = t->shape[i] == shape[i];
    if (!same) {
        char have[128], want[128];
        cl_shape_str(have, sizeof have, t->shape, t->ndim);
        cl_shape_str(want, sizeof want, shape, ndim);
        return cl_errf(e, CL_ERR_DATA, "%s: tensor '%s' has shape %s, the config implies %s",
                       st->path, name, have, want);
    }
    *out = t;
    return CL_OK;
}

void cl_safetensors_read_f32(const struct cl_st_tensor *t, float *dst)
{
    if (t->dtype == CL_F32)
        memcpy(dst, t->data, t->numel * sizeof(float)); /* handles unaligned data */
    else
        cl_convert_to_f32(dst, t->data, t->dtype, t->numel);
}
