/* safetensors.h - read-only, mmapped access to .safetensors files.
 *
 * The format (https://huggingface.co/docs/safetensors):
 *   1. 8 bytes: N, the header length, unsigned 64-bit little-endian;
 *   2. N bytes: a UTF-8 JSON object mapping tensor names to
 *      {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end]},
 *      plus an optional "__metadata__" object of strings (ignored here);
 *   3. the data region: every tensor's bytes, little-endian, C order, at
 *      [begin, end) relative to the start of the data region (byte 8 + N).
 *
 * cl_safetensors_open validates everything before anything is used: the header
 * length against the file size, the JSON, every entry's dtype name, shape
 * (non-negative integers, at most CL_MAX_DIMS dimensions), offsets (begin <=
 * end, inside the data region) and shape product x dtype size == end - begin;
 * duplicate names are refused.  Every message names the file and the tensor.
 *
 * Dtypes: all names of the format parse (BOOL, U8, I8, U16, I16, U32, I32, U64,
 * I64, F16, BF16, F32, F64, F8_E4M3, F8_E5M2), so that files with bookkeeping
 * tensors (e.g. HF's int64 "position_ids") open; cliplens reads only F32, F16
 * and BF16 tensors, and cl_safetensors_get refuses any other dtype by name.
 * An unknown dtype name makes the whole file invalid.
 *
 * Usage:
 *   struct cl_safetensors *st; struct cl_err e;
 *   if (cl_safetensors_open(&st, "model.safetensors", &e)) ...;
 *   const struct cl_st_tensor *t;
 *   if (cl_safetensors_get(st, "visual.proj", &t, &e)) ...;   // CL_ERR_DATA if absent
 *   cl_safetensors_read_f32(t, dst);                          // converts to f32
 *   cl_safetensors_close(st);                                 // t is invalid after
 */
#ifndef CL_SAFETENSORS_H
#define CL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "tensor.h"

#define CL_ST_MAX_HEADER ((uint64_t)100 << 20) /* header length cap, as the format's own */

struct cl_st_tensor {
    const char *name;            /* NUL-terminated, owned by the file object */
    char dtype_name[12];         /* as in the file: "F32", "I64", ... */
    int supported;               /* 1 if dtype is F32, F16 or BF16 */
    enum cl_dtype dtype;         /* valid when supported */
    int ndim;
    int64_t shape[CL_MAX_DIMS];  /* outermost first */
    size_t numel;
    const void *data;            /* into the mapping; may be unaligned */
    size_t nbytes;
};

struct cl_safetensors {
    char *path;                  /* as given to open */
    const uint8_t *map;          /* the whole file, read-only */
    size_t map_size;
    int n;                       /* tensors, sorted by name */
    struct cl_st_tensor *t;      /* [n] */
    char *names;                 /* storage of all names */
    int mapped;                  /* 1: map is our mmap of the file; 0: the caller's buffer */
};

enum cl_status cl_safetensors_open(struct cl_safetensors **out, const char *path, struct cl_err *e);
/* The same over a buffer the caller keeps alive until close; name is used in messages. */
enum cl_status cl_safetensors_open_mem(struct cl_safetensors **out, const void *buf, size_t len,
                                       const char *name, struct cl_err *e);
void cl_safetensors_close(struct cl_safetensors *st); /* NULL ok */

/* The tensor called name, or NULL (binary search). Any dtype. */
const struct cl_st_tensor *cl_safetensors_find(const struct cl_safetensors *st, const char *name);

/* The tensor called name with a readable dtype (F32, F16, BF16); CL_ERR_DATA
 * naming the file and tensor when it is absent or of another dtype. */
enum cl_status cl_safetensors_get(const struct cl_safetensors *st, const char *name,
                                  const struct cl_st_tensor **out, struct cl_err *e);

/* As cl_safetensors_get, and also require the given shape (ndim dims);
 * a mismatch is CL_ERR_DATA naming the file, tensor, found and expected shape. */
enum cl_status cl_safetensors_get_shaped(const struct cl_safetensors *st, const char *name,
                                         int ndim, const int64_t *shape,
                                         const struct cl_st_tensor **out, struct cl_err *e);

/* Convert a readable tensor's numel elements to f32 into dst. */
void cl_safetensors_read_f32(const struct cl_st_tensor *t, float *dst);

/* Format a shape as "[a, b, c]" into buf (always NUL-terminated). */
void cl_shape_str(char *buf, size_t len, const int64_t *shape, int ndim);

#endif
