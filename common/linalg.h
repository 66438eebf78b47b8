/* linalg.h - the dense kernels of the CLIP forward: checked sgemm wrappers,
 * LayerNorm with statistics, GELU / QuickGELU, row softmax, thread control.
 *
 * All matrices are row-major float32.  Dense layers keep PyTorch's Linear
 * layout: a weight W is [out, in] and y = x W^T + b.
 */
#ifndef CL_LINALG_H
#define CL_LINALG_H

#include <stddef.h>
#include <stdint.h>

/* Sizes and carving of one float allocation into 64-byte aligned buffers (16 floats). */
static inline size_t cl_up16(size_t n) { return (n + 15) & ~(size_t)15; }
/* Carve n floats from *at and advance it; NULL for n == 0. */
static inline float *cl_carve(float **at, size_t n)
{
    if (!n)
        return NULL;
    float *p = *at;
    *at += cl_up16(n);
    return p;
}

/* Threads for BLAS (openblas_set_num_threads) and for the element-wise kernels.
 * Process-wide; only calls into OpenBLAS when the number changes. n < 1 means 1. */
void cl_linalg_set_threads(int n);
int cl_linalg_threads(void);
/* Set OpenBLAS's own thread count only (e.g. 1 while workers call sgemm side by side);
 * cl_linalg_set_threads restores the full count on its next change. */
void cl_linalg_blas_threads(int n);

/* Run fn(ctx, begin, end, worker) over [0, n) split into at most cl_linalg_threads()
 * contiguous chunks, one per worker (worker 0 is the caller), and wait for all.
 * Chunks smaller than grain are not split further. A call made while another job
 * runs (from fn, or from another thread) runs all of [0, n) in the caller as worker 0. */
typedef void (*cl_task_fn)(void *ctx, int begin, int end, int worker);
void cl_parallel_for(int n, int grain, cl_task_fn fn, void *ctx);

/* Opt-in timing of every sgemm (for bench/): off by default, one branch per call. */
void cl_linalg_profile(int on);
double cl_linalg_sgemm_seconds(void);  /* accumulated while profiling */
uint64_t cl_linalg_sgemm_calls(void);
void cl_linalg_profile_reset(void);

/* C[m,n] = alpha * A[m,k] B^T + beta * C, with B given as [n,k] (a Linear weight);
 * lda, ldb, ldc are row strides in floats (>= the row length). */
void cl_gemm_nt(int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
                float beta, float *c, int ldc);
/* C[m,n] = alpha * A[m,k] B[k,n] + beta * C. */
void cl_gemm_nn(int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
                float beta, float *c, int ldc);

/* y[r,:] = x[r,:] W^T + bias for r < rows: W [out, in], bias [out] or NULL. y has
 * row stride out, x row stride in; y must not alias x. */
void cl_linear(float *y, const float *x, const float *w, const float *bias, int rows, int out, int in);

/* LayerNorm over the last dimension of x [rows, d] into y (may alias x):
 * y = (x - mean) / sqrt(var + eps) * g + b, var the biased variance.
 * mean and std (= sqrt(var + eps), the divisor) are written when non-NULL, [rows]. */
void cl_layernorm(float *y, float *mean, float *std, const float *x, const float *g, const float *b,
                  int rows, int d, float eps);

/* In place; split over the workers. On AVX2+FMA CPUs 8-wide kernels with a polynomial
 * exp (~1e-7 relative) and erf (see linalg.c; GELU as accurate as with erff); the _ref
 * kernels are the plain definitions with erff / expf, used on other CPUs or when the
 * environment has CLIPLENS_REF_KERNELS=1. */
void cl_gelu(float *x, size_t n);        /* x * (1 + erf(x / sqrt 2)) / 2 */
void cl_quick_gelu(float *x, size_t n);  /* x * sigmoid(1.702 x) */
void cl_gelu_ref(float *x, size_t n);
void cl_quick_gelu_ref(float *x, size_t n);

/* Softmax of each row of x [rows, ld] over its first n[r] entries (n == NULL: all
 * cols); entries from n[r] to cols are set to 0 (causal masking). In place. */
void cl_softmax_rows(float *x, int rows, int cols, int ld, const int *n);
void cl_softmax_rows_ref(float *x, int rows, int cols, int ld, const int *n);

#endif
