/* manifest.c - TSV manifests and plain line lists (see manifest.h). */
#include "manifest.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

enum cl_status cl_manifest_open(struct cl_manifest *m, const char *path, int tsv, struct cl_err *e)
{
    memset(m, 0, sizeof *m);
    m->tsv = tsv;
    if (!path || strcmp(path, "-") == 0) {
        m->fp = stdin;
        snprintf(m->name, sizeof m->name, "standard input");
        return CL_OK;
    }
    snprintf(m->name, sizeof m->name, "%s", path);
    m->fp = fopen(path, "rb");
    if (!m->fp)
        return cl_errf(e, CL_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    m->own = 1;
    return CL_OK;
}

static int parse_int(const char *s, int64_t *v)
{
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (!*s || *end || errno)
        return -1;
    *v = x;
    return 0;
}

/* Read one line into m->line without its terminator; 1 = got one, 0 = EOF. */
static enum cl_status read_line(struct cl_manifest *m, int *got, struct cl_err *e)
{
    errno = 0;
    ssize_t n = getline(&m->line, &m->cap, m->fp);
    if (n < 0) {
        if (ferror(m->fp))
            return cl_errf(e, CL_ERR_IO, "%s: read error: %s", m->name, strerror(errno));
        *got = 0;
        return CL_OK;
    }
    m->lineno++;
    if ((size_t)n > CL_MANIFEST_MAX_LINE)
        return cl_errf(e, CL_ERR_DATA, "%s:%" PRIu64 ": line longer than %d bytes", m->name, m->lineno,
                       CL_MANIFEST_MAX_LINE);
    if (memchr(m->line, 0, (size_t)n))
        return cl_errf(e, CL_ERR_DATA, "%s:%" PRIu64 ": NUL byte in line (binary file?)", m->name, m->lineno);
    while (n > 0 && (m->line[n - 1] == '\n' || m->line[n - 1] == '\r'))
        m->line[--n] = 0;
    *got = 1;
    return CL_OK;
}

static void free_cols(struct cl_manifest *m)
{
    for (int i = 0; i < m->ncols; i++)
        free(m->cols[i]);
    m->ncols = 0;
}

enum cl_status cl_manifest_next(struct cl_manifest *m, struct cl_manifest_row *row, struct cl_err *e)
{
    cl_value_free(&row->extra);
    memset(row, 0, sizeof *row);
    for (;;) {
        int got;
        enum cl_status s = read_line(m, &got, e);
        if (s != CL_OK)
            return s;
        if (!got)
            return CL_END;
        if (m->line[0] == 0)
            continue;
        row->line = m->lineno;
        if (!m->tsv) {
            row->path = m->line;
            return CL_OK;
        }
        char *f[CL_MANIFEST_MAX_COLS];
        int nf = 0;
        for (char *p = m->line;;) {
            if (nf == CL_MANIFEST_MAX_COLS)
                return cl_errf(e, CL_ERR_DATA, "%s:%" PRIu64 ": more than %d columns", m->name, m->lineno,
                               CL_MANIFEST_MAX_COLS);
            f[nf++] = p;
            char *t = strchr(p, '\t');
            if (!t)
                break;
            *t = 0;
            p = t + 1;
        }
        if (m->lineno == 1 && strcmp(f[0], "path") == 0) { /* header line: remember the column names */
            for (int i = 0; i < nf; i++)
                if (!(m->cols[m->ncols++] = strdup(f[i])))
                    return cl_errf(e, CL_ERR_NOMEM, "out of memory");
            continue;
        }
        row->path = f[0];
        if (nf > 1 && f[1][0] && strcmp(f[1], "-") != 0) {
            if (parse_int(f[1], &row->label) != 0)
                return cl_errf(e, CL_ERR_DATA, "%s:%" PRIu64 ": label '%.40s' is not an integer", m->name, m->lineno,
                               f[1]);
            row->has_label = 1;
        }
        if (nf > 2 && f[2][0] && strcmp(f[2], "-") != 0) {
            if (parse_int(f[2], &row->group) != 0)
                return cl_errf(e, CL_ERR_DATA, "%s:%" PRIu64 ": group '%.40s' is not an integer", m->name, m->lineno,
                               f[2]);
            row->has_group = 1;
        }
        cl_value_map(&row->extra);
        for (int i = 3; i < nf; i++) {
            char autoname[16];
            const char *key = i < m->ncols ? m->cols[i] : (snprintf(autoname, sizeof autoname, "col%d", i + 1), autoname);
            int64_t v;
            enum cl_status st = parse_int(f[i], &v) == 0 ? cl_map_set_int(&row->extra, key, v)
                                                         : cl_map_set_str(&row->extra, key, f[i]);
            if (st != CL_OK)
                return cl_errf(e, CL_ERR_NOMEM, "out of memory");
        }
        return CL_OK;
    }
}

void cl_manifest_close(struct cl_manifest *m, struct cl_manifest_row *row)
{
    if (row)
        cl_value_free(&row->extra);
    if (m->own && m->fp)
        fclose(m->fp);
    free(m->line);
    free_cols(m);
    memset(m, 0, sizeof *m);
}

enum cl_status cl_image_source_open(struct cl_image_source *src, char *const *args, int nargs,
                                    const char *manifest, struct cl_err *e)
{
    memset(src, 0, sizeof *src);
    if (nargs > 0) {
        src->args = args;
        src->nargs = nargs;
        return CL_OK;
    }
    src->use_manifest = 1;
    enum cl_status s = cl_manifest_open(&src->man, manifest, manifest != NULL, e);
    if (s != CL_OK)
        return s;
    if (manifest && strcmp(manifest, "-") != 0) {
        const char *slash = strrchr(manifest, '/');
        if (slash)
            snprintf(src->dir, sizeof src->dir, "%.*s", (int)(slash - manifest), manifest);
    }
    return CL_OK;
}

enum cl_status cl_image_source_next(struct cl_image_source *src, struct cl_value *meta, struct cl_err *e)
{
    cl_value_map(meta);
    if (!src->use_manifest) {
        if (src->next == src->nargs)
            return CL_END;
        snprintf(src->path, sizeof src->path, "%s", src->args[src->next++]);
    } else {
        enum cl_status s = cl_manifest_next(&src->man, &src->row, e);
        if (s != CL_OK)
            return s;
        const char *p = src->row.path;
        if (src->dir[0] && p[0] != '/')
            snprintf(src->path, sizeof src->path, "%s/%s", src->dir, p);
        else
            snprintf(src->path, sizeof src->path, "%s", p);
        if ((src->row.has_label && cl_map_set_int(meta, "label", src->row.label) != CL_OK) ||
            (src->row.has_group && cl_map_set_int(meta, "group", src->row.group) != CL_OK))
            return cl_errf(e, CL_ERR_NOMEM, "out of memory");
        for (size_t i = 0; src->row.extra.type == CL_V_MAP && i < src->row.extra.u.m.n; i++) {
            struct cl_value v;
            if (cl_value_copy(&v, &src->row.extra.u.m.v[i]) != CL_OK ||
                cl_map_set(meta, src->row.extra.u.m.k[i], &v) != CL_OK)
                return cl_errf(e, CL_ERR_NOMEM, "out of memory");
        }
    }
    if (cl_map_set_str(meta, "path", src->path) != CL_OK)
        return cl_errf(e, CL_ERR_NOMEM, "out of memory");
    src->index++;
    return CL_OK;
}

void cl_image_source_close(struct cl_image_source *src)
{
    if (src->use_manifest)
        cl_manifest_close(&src->man, &src->row);
}
