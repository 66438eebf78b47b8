/* npy.c - NumPy .npy reader and writer (see npy.h). */
#include "npy.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define HEADER_TOTAL 256 /* magic + version + length + padded dict */

static const char *descr_of(enum cl_dtype t)
{
    switch (t) {
    case CL_F32: return "<f4";
    case CL_F16: return "<f2";
    case CL_I32: return "<i4";
    case CL_U8: return "|u1";
    default: return NULL;
    }
}

static enum cl_status write_header(FILE *fp, const char *descr, int ndim, const int64_t *shape, uint64_t rows,
                                   struct cl_err *e)
{
    char dict[HEADER_TOTAL];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (%" PRIu64 ",", descr, rows);
    for (int i = 0; i < ndim; i++)
        n += snprintf(dict + n, sizeof dict - (size_t)n, " %" PRId64 ",", shape[i]);
    n += snprintf(dict + n, sizeof dict - (size_t)n, "), }");
    int body = HEADER_TOTAL - 10;
    if (n >= body)
        return cl_errf(e, CL_ERR_DATA, "npy header too long for this shape");
    memset(dict + n, ' ', (size_t)(body - n));
    dict[body - 1] = '\n';
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(body & 0xff), (unsigned char)(body >> 8)};
    if (fwrite(pre, 1, 10, fp) != 10 || fwrite(dict, 1, (size_t)body, fp) != (size_t)body)
        return cl_errf(e, CL_ERR_IO, "write error: %s", strerror(errno));
    return CL_OK;
}

enum cl_status cl_npy_begin(struct cl_npy_writer *w, FILE *fp, enum cl_dtype dtype, int ndim,
                            const int64_t *row_shape, int spool, struct cl_err *e)
{
    memset(w, 0, sizeof *w);
    const char *descr = descr_of(dtype);
    if (!descr)
        return cl_errf(e, CL_ERR_UNSUPPORTED, "numpy has no %s dtype", cl_dtype_name(dtype));
    if (ndim >= CL_MAX_DIMS)
        return cl_errf(e, CL_ERR_DATA, "rank %d too large for npy export", ndim);
    w->fp = fp;
    w->dtype = dtype;
    w->ndim = ndim;
    memcpy(w->shape, row_shape, (size_t)ndim * sizeof *row_shape);
    if (spool) {
        w->spool = tmpfile();
        if (!w->spool)
            return cl_errf(e, CL_ERR_IO, "cannot create a spool file: %s", strerror(errno));
        return CL_OK;
    }
    return write_header(fp, descr, ndim, row_shape, 0, e);
}

enum cl_status cl_npy_append(struct cl_npy_writer *w, const struct cl_tensor *row, struct cl_err *e)
{
    if (row->dtype != w->dtype || row->ndim != w->ndim ||
        memcmp(row->shape, w->shape, (size_t)w->ndim * sizeof *w->shape) != 0)
        return cl_errf(e, CL_ERR_DATA, "tensor shape or dtype differs from the first item's; cannot stack");
    FILE *fp = w->spool ? w->spool : w->fp;
    if (row->nbytes && fwrite(row->data, 1, row->nbytes, fp) != row->nbytes)
        return cl_errf(e, CL_ERR_IO, "write error: %s", strerror(errno));
    w->rows++;
    return CL_OK;
}

enum cl_status cl_npy_finish(struct cl_npy_writer *w, struct cl_err *e)
{
    enum cl_status s;
    const char *descr = descr_of(w->dtype);
    if (w->spool) {
        if ((s = write_header(w->fp, descr, w->ndim, w->shape, w->rows, e)) != CL_OK)
            goto done;
        rewind(w->spool);
        char buf[1 << 16];
        size_t k;
        while ((k = fread(buf, 1, sizeof buf, w->spool)) > 0)
            if (fwrite(buf, 1, k, w->fp) != k) {
                s = cl_errf(e, CL_ERR_IO, "write error: %s", strerror(errno));
                goto done;
            }
        s = ferror(w->spool) ? cl_errf(e, CL_ERR_IO, "spool read error") : CL_OK;
    done:
        fclose(w->spool);
        w->spool = NULL;
        return s;
    }
    if (fseek(w->fp, 0, SEEK_SET) != 0)
        return cl_errf(e, CL_ERR_IO, "cannot seek output to rewrite the npy header: %s", strerror(errno));
    if ((s = write_header(w->fp, descr, w->ndim, w->shape, w->rows, e)) != CL_OK)
        return s;
    if (fseek(w->fp, 0, SEEK_END) != 0)
        return cl_errf(e, CL_ERR_IO, "seek error: %s", strerror(errno));
    return CL_OK;
}

/* ---- reader ---- */

/* Find 'key': in the dict text and return a pointer just after the colon. */
static const char *dict_value(const char *dict, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "'%s'", key);
    const char *p = strstr(dict, pat);
    if (!p) {
        snprintf(pat, sizeof pat, "\"%s\"", key);
        p = strstr(dict, pat);
    }
    if (!p)
        return NULL;
    p += strlen(pat);
    while (*p == ' ')
        p++;
    if (*p != ':')
        return NULL;
    p++;
    while (*p == ' ')
        p++;
    return p;
}

enum cl_status cl_npy_open(struct cl_npy_reader *r, const char *path, struct cl_err *e)
{
    memset(r, 0, sizeof *r);
    snprintf(r->path, sizeof r->path, "%s", path);
    r->fp = fopen(path, "rb");
    if (!r->fp)
        return cl_errf(e, CL_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    enum cl_status s = CL_ERR_DATA;
    unsigned char pre[12];
    char *dict = NULL;
    if (fread(pre, 1, 10, r->fp) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        cl_errf(e, CL_ERR_DATA, "%s: not a .npy file (bad magic)", path);
        goto fail;
    }
    uint64_t hlen;
    long data_off;
    if (pre[6] == 1) {
        hlen = pre[8] | (uint64_t)pre[9] << 8;
        data_off = 10;
    } else if (pre[6] == 2 || pre[6] == 3) {
        if (fread(pre + 10, 1, 2, r->fp) != 2) {
            cl_errf(e, CL_ERR_DATA, "%s: truncated .npy header", path);
            goto fail;
        }
        hlen = pre[8] | (uint64_t)pre[9] << 8 | (uint64_t)pre[10] << 16 | (uint64_t)pre[11] << 24;
        data_off = 12;
    } else {
        cl_errf(e, CL_ERR_UNSUPPORTED, "%s: unsupported .npy version %d.%d", path, pre[6], pre[7]);
        goto fail;
    }
    if (hlen > 65536) {
        cl_errf(e, CL_ERR_DATA, "%s: .npy header of %" PRIu64 " bytes is absurd", path, hlen);
        goto fail;
    }
    dict = malloc(hlen + 1);
    if (!dict || fread(dict, 1, hlen, r->fp) != hlen) {
        cl_errf(e, CL_ERR_DATA, "%s: truncated .npy header", path);
        goto fail;
    }
    dict[hlen] = 0;
    data_off += (long)hlen;
    const char *d = dict_value(dict, "descr"), *fo = dict_value(dict, "fortran_order"), *sh = dict_value(dict, "shape");
    if (!d || !fo || !sh) {
        cl_errf(e, CL_ERR_DATA, "%s: .npy header lacks descr, fortran_order or shape", path);
        goto fail;
    }
    if (strncmp(fo, "False", 5) != 0) {
        cl_errf(e, CL_ERR_UNSUPPORTED, "%s: Fortran-order arrays are not supported (save with np.ascontiguousarray)", path);
        goto fail;
    }
    static const struct { const char *descr; enum cl_dtype t; int f64; } known[] = {
        {"'<f4'", CL_F32, 0}, {"'<f2'", CL_F16, 0}, {"'<i4'", CL_I32, 0}, {"'|u1'", CL_U8, 0},
        {"'<u1'", CL_U8, 0}, {"'<f8'", CL_F32, 1}};
    int found = 0;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        if (strncmp(d, known[i].descr, strlen(known[i].descr)) == 0) {
            r->dtype = known[i].t;
            r->file_f64 = known[i].f64;
            found = 1;
        }
    }
    if (!found) {
        const char *q = strchr(d + 1, d[0]);
        cl_errf(e, CL_ERR_UNSUPPORTED, "%s: unsupported dtype %.*s (expected <f4, <f2, <i4, |u1 or <f8)", path,
                q ? (int)(q - d + 1) : 8, d);
        goto fail;
    }
    if (*sh != '(') {
        cl_errf(e, CL_ERR_DATA, "%s: .npy shape is not a tuple", path);
        goto fail;
    }
    const char *p = sh + 1;
    for (;;) {
        while (*p == ' ' || *p == ',')
            p++;
        if (*p == ')')
            break;
        if (!isdigit((unsigned char)*p) || r->ndim == CL_MAX_DIMS) {
            cl_errf(e, CL_ERR_DATA, "%s: bad .npy shape or rank above %d", path, CL_MAX_DIMS);
            goto fail;
        }
        char *end;
        errno = 0;
        unsigned long long v = strtoull(p, &end, 10);
        if (errno || v > (unsigned long long)CL_MAX_DIM) {
            cl_errf(e, CL_ERR_DATA, "%s: .npy dimension too large", path);
            goto fail;
        }
        r->shape[r->ndim++] = (int64_t)v;
        p = end;
    }
    size_t nbytes;
    if (cl_shape_bytes(r->shape, r->ndim, r->file_f64 ? 8 : cl_dtype_size(r->dtype), SIZE_MAX / 2, NULL, &nbytes) != 0) {
        cl_errf(e, CL_ERR_DATA, "%s: .npy shape overflows", path);
        goto fail;
    }
    struct stat st;
    if (fstat(fileno(r->fp), &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size != (uint64_t)data_off + nbytes) {
        cl_errf(e, CL_ERR_DATA, "%s: file is %lld bytes, header and shape say %llu", path, (long long)st.st_size,
                (unsigned long long)data_off + (unsigned long long)nbytes);
        goto fail;
    }
    free(dict);
    return CL_OK;
fail:
    free(dict);
    fclose(r->fp);
    r->fp = NULL;
    return s;
}

enum cl_status cl_npy_read_row(struct cl_npy_reader *r, struct cl_tensor *row, struct cl_err *e)
{
    size_t n = cl_tensor_numel(row);
    if (!r->file_f64) {
        if (row->nbytes && fread(row->data, 1, row->nbytes, r->fp) != row->nbytes)
            return cl_errf(e, CL_ERR_DATA, "%s: truncated data at row %" PRIu64, r->path, r->rows_read);
    } else {
        float *dst = row->data;
        for (size_t i = 0; i < n; i++) {
            double v;
            if (fread(&v, 8, 1, r->fp) != 1)
                return cl_errf(e, CL_ERR_DATA, "%s: truncated data at row %" PRIu64, r->path, r->rows_read);
            dst[i] = (float)v;
        }
    }
    r->rows_read++;
    return CL_OK;
}

void cl_npy_close(struct cl_npy_reader *r)
{
    if (r && r->fp) {
        fclose(r->fp);
        r->fp = NULL;
    }
}
