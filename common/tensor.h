/* tensor.h - the one tensor type of cliplens: dtype, shape (outermost first,
 * PyTorch order), optional axis names, a name, and little-endian C-order data.
 *
 * Dtypes: f32, f16 (IEEE half), bf16 (bfloat16), i32, u8.  Conversions to f32
 * are exact; conversions from f32 round to nearest even (NaN stays NaN).
 */
#ifndef CL_TENSOR_H
#define CL_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

enum cl_dtype { CL_F32 = 0, CL_F16, CL_BF16, CL_I32, CL_U8 };
#define CL_NDTYPES 5

#define CL_MAX_DIMS 8                 /* rank cap for untrusted input */
#define CL_MAX_DIM ((int64_t)1 << 40) /* per-dimension cap for untrusted input */

struct cl_tensor {
    char *name;                  /* owned, NUL-terminated */
    enum cl_dtype dtype;
    int ndim;
    int64_t shape[CL_MAX_DIMS];  /* shape[0] outermost */
    char *axes[CL_MAX_DIMS];     /* owned axis names, or all NULL */
    void *data;                  /* owned, nbytes long, 64-byte aligned */
    size_t nbytes;
    size_t cap;                  /* allocated bytes of data (for reuse) */
};

size_t cl_dtype_size(enum cl_dtype t);
const char *cl_dtype_name(enum cl_dtype t);
/* Parse "f32", "f16", "bf16", "i32", "u8"; returns 0 on success, -1 if unknown. */
int cl_dtype_parse(const char *s, size_t len, enum cl_dtype *out);

uint16_t cl_f32_to_f16(float f);
float cl_f16_to_f32(uint16_t h);
uint16_t cl_f32_to_bf16(float f);
float cl_bf16_to_f32(uint16_t h);

/* Element count of a shape with overflow and cap checks; returns 0 on success,
 * -1 if a dimension is negative or above CL_MAX_DIM, or the product (times
 * elem_size) overflows size_t or exceeds max_bytes. */
int cl_shape_bytes(const int64_t *shape, int ndim, size_t elem_size, size_t max_bytes,
                   size_t *numel, size_t *nbytes);

size_t cl_tensor_numel(const struct cl_tensor *t);

/* (Re)shape t, keeping its buffer when large enough. name may be NULL to keep. */
enum cl_status cl_tensor_reshape(struct cl_tensor *t, const char *name, enum cl_dtype dtype,
                                 int ndim, const int64_t *shape, struct cl_err *e);
/* Set optional axis names (ndim strings) or clear them (axes == NULL). */
enum cl_status cl_tensor_set_axes(struct cl_tensor *t, const char *const *axes, struct cl_err *e);
void cl_tensor_free(struct cl_tensor *t); /* frees contents; t itself is not freed; NULL ok */

/* Convert n elements of src (dtype st) to f32 dst. */
void cl_convert_to_f32(float *dst, const void *src, enum cl_dtype st, size_t n);
/* Convert n f32 elements to dtype dt (i32: rounds to nearest, saturates; u8: same, 0..255). */
void cl_convert_from_f32(void *dst, enum cl_dtype dt, const float *src, size_t n);

/* Copy t converted to dtype dt into out (reshaped; name and axes copied). */
enum cl_status cl_tensor_convert(struct cl_tensor *out, const struct cl_tensor *t,
                                 enum cl_dtype dt, struct cl_err *e);

#endif
