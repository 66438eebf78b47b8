/* linalg.c - sgemm wrappers over OpenBLAS, LayerNorm, GELU, softmax, thread count. */
#include "linalg.h"

#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <string.h>
#include <time.h>

static int n_threads;          /* 0: never set */
static int profiling;
static double sgemm_seconds;
static uint64_t sgemm_calls;

void cl_linalg_set_threads(int n)
{
    if (n < 1)
        n = 1;
    if (n != n_threads) {
        openblas_set_num_threads(n);
        n_threads = n;
    }
}

int cl_linalg_threads(void) { return n_threads ? n_threads : 1; }

void cl_linalg_profile(int on) { profiling = on; }
double cl_linalg_sgemm_seconds(void) { return sgemm_seconds; }
uint64_t cl_linalg_sgemm_calls(void) { return sgemm_calls; }
void cl_linalg_profile_reset(void) { sgemm_seconds = 0; sgemm_calls = 0; }

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void cl_gemm_nt(int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
                float beta, float *c, int ldc)
{
    assert(m >= 0 && n >= 0 && k >= 0 && lda >= k && ldb >= k && ldc >= n);
    double t0 = profiling ? now() : 0;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    if (profiling) {
        sgemm_seconds += now() - t0;
        sgemm_calls++;
    }
}

void cl_gemm_nn(int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
                float beta, float *c, int ldc)
{
    assert(m >= 0 && n >= 0 && k >= 0 && lda >= k && ldb >= n && ldc >= n);
    double t0 = profiling ? now() : 0;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    if (profiling) {
        sgemm_seconds += now() - t0;
        sgemm_calls++;
    }
}

void cl_linear(float *y, const float *x, const float *w, const float *bias, int rows, int out, int in)
{
    /* as PyTorch's addmm: start from the bias, accumulate the product with beta = 1 */
    if (bias)
        for (int r = 0; r < rows; r++)
            memcpy(y + (size_t)r * out, bias, (size_t)out * sizeof *y);
    cl_gemm_nt(rows, out, in, 1.0f, x, in, w, in, bias ? 1.0f : 0.0f, y, out);
}

void cl_layernorm(float *y, float *mean, float *std, const float *x, const float *g, const float *b,
                  int rows, int d, float eps)
{
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * d;
        float *yr = y + (size_t)r * d;
        /* two passes in double: mean, then the biased variance about it */
        double s = 0;
        for (int i = 0; i < d; i++)
            s += xr[i];
        double mu = s / d, v = 0;
        for (int i = 0; i < d; i++) {
            double t = xr[i] - mu;
            v += t * t;
        }
        float m = (float)mu;
        float sd = (float)sqrt(v / d + (double)eps);
        float rs = (float)(1.0 / sqrt(v / d + (double)eps));
        for (int i = 0; i < d; i++)
            yr[i] = (xr[i] - m) * rs * g[i] + b[i];
        if (mean)
            mean[r] = m;
        if (std)
            std[r] = sd;
    }
}

void cl_gelu(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        x[i] = 0.5f * v * (1.0f + erff(v * (float)M_SQRT1_2));
    }
}

void cl_quick_gelu(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        x[i] = v / (1.0f + expf(-1.702f * v));
    }
}

void cl_softmax_rows(float *x, int rows, int cols, int ld, const int *n)
{
    for (int r = 0; r < rows; r++) {
        float *row = x + (size_t)r * ld;
        int k = n ? n[r] : cols;
        float mx = -INFINITY;
        for (int j = 0; j < k; j++)
            mx = row[j] > mx ? row[j] : mx;
        float s = 0;
        for (int j = 0; j < k; j++) {
            row[j] = expf(row[j] - mx);
            s += row[j];
        }
        float inv = 1.0f / s;
        for (int j = 0; j < k; j++)
            row[j] *= inv;
        for (int j = k; j < cols; j++)
            row[j] = 0;
    }
}
