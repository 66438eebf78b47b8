/* linalg.c - sgemm wrappers over OpenBLAS, LayerNorm, GELU, softmax, thread count. */
#include "linalg.h"

#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
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

void cl_linalg_blas_threads(int n) { openblas_set_num_threads(n < 1 ? 1 : n); }

/* ---------------------------------------------------------------- worker pool
 * Workers 1 .. T-1 sleep on a condition variable; a job is published by bumping
 * pool_gen under the mutex, worker i runs chunk i, the last one done signals. */
#define MAX_WORKERS 64

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_go = PTHREAD_COND_INITIALIZER, pool_done = PTHREAD_COND_INITIALIZER;
static int pool_workers;                  /* threads started (workers 1 .. pool_workers) */
static unsigned long pool_gen;            /* job number */
static unsigned long worker_seen[MAX_WORKERS + 1];
static int pool_pending;                  /* chunks of the current job still running */
static cl_task_fn pool_fn;
static void *pool_ctx;
static int pool_n, pool_chunks;
static int pool_busy;                     /* a job is running: further callers run serially */

static void run_chunk(int c)
{
    int b = (int)((int64_t)pool_n * c / pool_chunks), e = (int)((int64_t)pool_n * (c + 1) / pool_chunks);
    pool_fn(pool_ctx, b, e, c);
}

static void *pool_worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    pthread_mutex_lock(&pool_mu);
    for (;;) {
        while (pool_gen == worker_seen[id])
            pthread_cond_wait(&pool_go, &pool_mu);
        worker_seen[id] = pool_gen;
        if (id < pool_chunks) {
            pthread_mutex_unlock(&pool_mu);
            run_chunk(id);
            pthread_mutex_lock(&pool_mu);
            if (--pool_pending == 0)
                pthread_cond_signal(&pool_done);
        }
    }
    return NULL;
}

void cl_parallel_for(int n, int grain, cl_task_fn fn, void *ctx)
{
    int chunks = cl_linalg_threads();
    if (grain < 1)
        grain = 1;
    if (chunks > (n + grain - 1) / grain)
        chunks = (n + grain - 1) / grain;
    if (chunks > MAX_WORKERS + 1)
        chunks = MAX_WORKERS + 1;
    pthread_mutex_lock(&pool_mu);
    while (pool_workers < chunks - 1) { /* start missing workers; they wait for the next job */
        int id = pool_workers + 1;
        pthread_t t;
        worker_seen[id] = pool_gen;
        if (pthread_create(&t, NULL, pool_worker, (void *)(intptr_t)id) != 0)
            break;
        pthread_detach(t);
        pool_workers = id;
    }
    if (chunks > pool_workers + 1)
        chunks = pool_workers + 1;
    if (chunks <= 1 || pool_busy) { /* one chunk, or nested / concurrent use: run here */
        pthread_mutex_unlock(&pool_mu);
        if (n > 0)
            fn(ctx, 0, n, 0);
        return;
    }
    pool_busy = 1;
    pool_fn = fn;
    pool_ctx = ctx;
    pool_n = n;
    pool_chunks = chunks;
    pool_pending = chunks - 1;
    pool_gen++;
    pthread_cond_broadcast(&pool_go);
    pthread_mutex_unlock(&pool_mu);
    run_chunk(0);
    pthread_mutex_lock(&pool_mu);
    while (pool_pending > 0)
        pthread_cond_wait(&pool_done, &pool_mu);
    pool_busy = 0;
    pthread_mutex_unlock(&pool_mu);
}

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

struct ln_job {
    float *y, *mean, *std;
    const float *x, *g, *b;
    int d;
    float eps;
};

static void ln_rows(void *ctx, int r0, int r1, int worker)
{
    const struct ln_job *j = ctx;
    int d = j->d;
    (void)worker;
    for (int r = r0; r < r1; r++) {
        const float *xr = j->x + (size_t)r * d;
        float *yr = j->y + (size_t)r * d;
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
        float sd = (float)sqrt(v / d + (double)j->eps);
        float rs = (float)(1.0 / sqrt(v / d + (double)j->eps));
        for (int i = 0; i < d; i++)
            yr[i] = (xr[i] - m) * rs * j->g[i] + j->b[i];
        if (j->mean)
            j->mean[r] = m;
        if (j->std)
            j->std[r] = sd;
    }
}

void cl_layernorm(float *y, float *mean, float *std, const float *x, const float *g, const float *b,
                  int rows, int d, float eps)
{
    struct ln_job j = {y, mean, std, x, g, b, d, eps};
    cl_parallel_for(rows, 16, ln_rows, &j);
}

/* ---------------------------------------------------------------- element-wise kernels
 * Each op has a plain C reference kernel (the definition) and, on CPUs with AVX2
 * and FMA, an 8-wide kernel chosen at run time:
 *   exp: Cephes' expf (range reduction by ln 2, degree-5 polynomial), relative
 *        error ~1e-7 (1-2 ulp);
 *   erf: the form of Abramowitz & Stegun 7.1.26, 1 - t p(t) exp(-z^2) with
 *        t = 1 / (1 + |z| / 2), p a degree-7 least-squares fit of erfc(z) exp(z^2)
 *        (error 5e-10 in exact arithmetic): in float, GELU is as close to the true
 *        value as the erff definition (max abs error 2.6e-7 either way; test_linalg). */

static int use_avx2(void)
{
    static int v = -1;
    if (v < 0) { /* CLIPLENS_REF_KERNELS=1 forces the reference kernels (for checking) */
        const char *force = getenv("CLIPLENS_REF_KERNELS");
        __builtin_cpu_init();
        v = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && !(force && *force == '1');
    }
    return v;
}

void cl_gelu_ref(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        x[i] = 0.5f * v * (1.0f + erff(v * (float)M_SQRT1_2));
    }
}

void cl_quick_gelu_ref(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        x[i] = v / (1.0f + expf(-1.702f * v));
    }
}

void cl_softmax_rows_ref(float *x, int rows, int cols, int ld, const int *n)
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

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2,fma")))

AVX2 static inline __m256 exp8(__m256 x)
{
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-88.3762626647949f)), _mm256_set1_ps(88.3762626647949f));
    /* x = n ln2 + r, |r| <= ln2 / 2; ln2 split in two for an exact n ln2 */
    __m256 n = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    /* times 2^n, n in [-127, 128]: build the exponent bits */
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

AVX2 static void quick_gelu_avx2(float *x, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 d = _mm256_add_ps(_mm256_set1_ps(1.0f), exp8(_mm256_mul_ps(v, _mm256_set1_ps(-1.702f))));
        _mm256_storeu_ps(x + i, _mm256_div_ps(v, d));
    }
    cl_quick_gelu_ref(x + i, n - i);
}

AVX2 static void gelu_avx2(float *x, size_t n)
{
    const __m256 sign = _mm256_set1_ps(-0.0f), one = _mm256_set1_ps(1.0f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 z = _mm256_mul_ps(v, _mm256_set1_ps((float)M_SQRT1_2));
        /* erf(z) = sign(z) (1 - t p(t) exp(-z^2)), t = 1 / (1 + |z| / 2), p of degree 7 */
        __m256 sg = _mm256_and_ps(sign, z), a = _mm256_xor_ps(sg, z);
        __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(0.5f), a, one));
        __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(-0.05109127173f), t, _mm256_set1_ps(0.3403678329f));
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.8785479945f));
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.9761077118f));
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.3498141349f));
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.4321598573f));
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.2456221081f));
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.2851958914f));
        __m256 ex = exp8(_mm256_xor_ps(sign, _mm256_mul_ps(z, z)));
        __m256 erf = _mm256_xor_ps(sg, _mm256_fnmadd_ps(_mm256_mul_ps(p, t), ex, one));
        _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), v), _mm256_add_ps(one, erf)));
    }
    cl_gelu_ref(x + i, n - i);
}

AVX2 static void softmax_avx2(float *x, int rows, int cols, int ld, const int *n)
{
    for (int r = 0; r < rows; r++) {
        float *row = x + (size_t)r * ld;
        int k = n ? n[r] : cols, j;
        __m256 m8 = _mm256_set1_ps(-INFINITY);
        for (j = 0; j + 8 <= k; j += 8)
            m8 = _mm256_max_ps(m8, _mm256_loadu_ps(row + j));
        float lanes[8], mx = -INFINITY, s = 0;
        _mm256_storeu_ps(lanes, m8);
        for (int i = 0; i < 8; i++)
            mx = lanes[i] > mx ? lanes[i] : mx;
        for (; j < k; j++)
            mx = row[j] > mx ? row[j] : mx;
        __m256 mv = _mm256_set1_ps(mx), s8 = _mm256_setzero_ps();
        for (j = 0; j + 8 <= k; j += 8) {
            __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(row + j), mv));
            _mm256_storeu_ps(row + j, e);
            s8 = _mm256_add_ps(s8, e);
        }
        for (; j < k; j++) {
            row[j] = expf(row[j] - mx);
            s += row[j];
        }
        _mm256_storeu_ps(lanes, s8);
        for (int i = 0; i < 8; i++)
            s += lanes[i];
        __m256 inv = _mm256_set1_ps(1.0f / s);
        for (j = 0; j + 8 <= k; j += 8)
            _mm256_storeu_ps(row + j, _mm256_mul_ps(_mm256_loadu_ps(row + j), inv));
        for (; j < k; j++)
            row[j] *= 1.0f / s;
        for (j = k; j < cols; j++)
            row[j] = 0;
    }
}
#else
static void quick_gelu_avx2(float *x, size_t n) { cl_quick_gelu_ref(x, n); }
static void gelu_avx2(float *x, size_t n) { cl_gelu_ref(x, n); }
static void softmax_avx2(float *x, int rows, int cols, int ld, const int *n)
{
    cl_softmax_rows_ref(x, rows, cols, ld, n);
}
#define use_avx2() 0
#endif

/* element-wise jobs work on blocks of 1024 floats */
#define EW_BLOCK 1024

struct ew_job {
    float *x;
    size_t n;
    enum { EW_GELU, EW_QUICK_GELU } kind;
};

static void ew_blocks(void *ctx, int b0, int b1, int worker)
{
    const struct ew_job *j = ctx;
    size_t at = (size_t)b0 * EW_BLOCK, end = (size_t)b1 * EW_BLOCK < j->n ? (size_t)b1 * EW_BLOCK : j->n;
    int v = use_avx2();
    (void)worker;
    if (j->kind == EW_GELU)
        (v ? gelu_avx2 : cl_gelu_ref)(j->x + at, end - at);
    else
        (v ? quick_gelu_avx2 : cl_quick_gelu_ref)(j->x + at, end - at);
}

void cl_gelu(float *x, size_t n)
{
    struct ew_job j = {x, n, EW_GELU};
    cl_parallel_for((int)((n + EW_BLOCK - 1) / EW_BLOCK), 16, ew_blocks, &j);
}

void cl_quick_gelu(float *x, size_t n)
{
    struct ew_job j = {x, n, EW_QUICK_GELU};
    cl_parallel_for((int)((n + EW_BLOCK - 1) / EW_BLOCK), 16, ew_blocks, &j);
}

void cl_softmax_rows(float *x, int rows, int cols, int ld, const int *n)
{
    if (use_avx2())
        softmax_avx2(x, rows, cols, ld, n);
    else
        cl_softmax_rows_ref(x, rows, cols, ld, n);
}
