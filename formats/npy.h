/* npy.h - NumPy .npy files (format version 1.0 written; 1.0, 2.0, 3.0 read).
 *
 * Writer: rows of one shape are appended and the leading dimension (the row
 * count) is written into the header at the end; the header is padded to a
 * fixed 256 bytes so it can be rewritten in place.  Non-seekable outputs are
 * spooled to a temporary file first.
 * Reader: little-endian '<f4' '<f2' '<i4' '|u1' (and '<f8' read as f32), C
 * order only; the header is validated and the data length checked against
 * the file size before anything is read.
 */
#ifndef CL_NPY_H
#define CL_NPY_H

#include <stdint.h>
#include <stdio.h>

#include "status.h"
#include "tensor.h"

struct cl_npy_writer {
    FILE *fp;          /* final output */
    FILE *spool;       /* non-NULL when fp is not seekable */
    enum cl_dtype dtype;
    int ndim;          /* of one row */
    int64_t shape[CL_MAX_DIMS];
    uint64_t rows;
};

enum cl_status cl_npy_begin(struct cl_npy_writer *w, FILE *fp, enum cl_dtype dtype, int ndim,
                            const int64_t *row_shape, int spool, struct cl_err *e);
/* Append one row; its dtype and shape must equal the first row's. */
enum cl_status cl_npy_append(struct cl_npy_writer *w, const struct cl_tensor *row, struct cl_err *e);
enum cl_status cl_npy_finish(struct cl_npy_writer *w, struct cl_err *e);

struct cl_npy_reader {
    FILE *fp;
    char path[256];
    enum cl_dtype dtype;   /* dtype delivered (f8 files are delivered as f32) */
    int file_f64;          /* the file holds f8 */
    int ndim;
    int64_t shape[CL_MAX_DIMS];
    uint64_t rows_read;
};

enum cl_status cl_npy_open(struct cl_npy_reader *r, const char *path, struct cl_err *e);
/* Read the next row (shape[1:]) into row, which must be shaped for it. */
enum cl_status cl_npy_read_row(struct cl_npy_reader *r, struct cl_tensor *row, struct cl_err *e);
void cl_npy_close(struct cl_npy_reader *r);

#endif
