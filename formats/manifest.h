/* manifest.h - line-oriented inputs: image manifests (TSV: path, label, group,
 * then any further columns) and plain lists (one path or text per line).
 *
 * A manifest may start with a header line whose first field is "path"; its
 * column names then name the extra columns, which travel into item meta as
 * strings (integers when the whole field is an integer).  Without a header,
 * extra columns are named "col4", "col5", ...  Empty lines are skipped; a
 * label or group field that is empty or "-" is absent.  Lines end in LF or
 * CRLF; a NUL byte or a line over CL_MANIFEST_MAX_LINE bytes is an error.
 */
#ifndef CL_MANIFEST_H
#define CL_MANIFEST_H

#include <stdint.h>
#include <stdio.h>

#include "status.h"
#include "value.h"

#define CL_MANIFEST_MAX_LINE (1 << 20)
#define CL_MANIFEST_MAX_COLS 64

struct cl_manifest_row {
    const char *path;   /* first field (valid until the next call) */
    int has_label, has_group;
    int64_t label, group;
    struct cl_value extra; /* map of the other columns (owned by the reader) */
    uint64_t line;         /* 1-based line number */
};

struct cl_manifest {
    FILE *fp;
    int own;
    char name[256];
    int tsv;            /* 1: split on tabs into path/label/group/extra; 0: whole line is the path */
    char *line;
    size_t cap;
    uint64_t lineno;
    int ncols;
    char *cols[CL_MANIFEST_MAX_COLS];
};

/* path "-" or NULL: stdin.  tsv selects manifest parsing; a plain list otherwise. */
enum cl_status cl_manifest_open(struct cl_manifest *m, const char *path, int tsv, struct cl_err *e);
/* CL_OK with a row, CL_END at end of input, or an error naming the line. */
enum cl_status cl_manifest_next(struct cl_manifest *m, struct cl_manifest_row *row, struct cl_err *e);
void cl_manifest_close(struct cl_manifest *m, struct cl_manifest_row *row);


/* The image inputs of a program: paths given as arguments, else a TSV manifest
 * (relative paths taken from the manifest's directory; label, group and extra
 * columns into meta), else one path per line on stdin.  Every row's meta gets
 * "path". */
struct cl_image_source {
    char *const *args;
    int nargs, next;
    struct cl_manifest man;
    struct cl_manifest_row row;
    int use_manifest;
    char dir[4096];    /* manifest directory for relative paths, "" if none */
    char path[8192];   /* the current image's path */
    uint64_t index;    /* 1-based number of the current image */
};

/* args/nargs: image arguments (used when nargs > 0); manifest: a TSV path, or NULL
 * for paths on stdin. */
enum cl_status cl_image_source_open(struct cl_image_source *src, char *const *args, int nargs,
                                    const char *manifest, struct cl_err *e);
/* CL_OK with src->path set and *meta a fresh map (the caller owns it), CL_END, or an error. */
enum cl_status cl_image_source_next(struct cl_image_source *src, struct cl_value *meta, struct cl_err *e);
void cl_image_source_close(struct cl_image_source *src);

#endif
