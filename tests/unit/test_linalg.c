/* test_linalg.c - the dense kernels: fast element-wise kernels against their plain
 * definitions, LayerNorm against a double-precision reference, sgemm wrappers against
 * naive loops, and the worker pool's chunking. */
#include "../harness.h"

#include <stdint.h>
#include <stdlib.h>

#include "linalg.h"

static float frand(unsigned *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
}

/* Inputs: a dense sweep of [-lim, lim] plus special values. Returns the count. */
static size_t sweep(float *x, size_t cap, float lim)
{
    static const float special[] = {0.0f, -0.0f, 1e-30f, -1e-30f, 1e-7f, -1e-7f, 100.0f, -100.0f, 1e4f, -1e4f};
    size_t n = 0;
    for (size_t i = 0; i < sizeof special / sizeof *special && n < cap; i++)
        x[n++] = special[i];
    while (n < cap) {
        x[n] = -lim + 2 * lim * (float)n / (float)cap;
        n++;
    }
    return n;
}

/* fast(x) vs ref(x): |diff| <= atol * max(1, |x|) + rtol * |ref|; prints the worst. */
static void compare_ew(const char *what, void (*fast)(float *, size_t), void (*ref)(float *, size_t),
                       double atol, double rtol)
{
    enum { N = 200003 }; /* odd: exercises the scalar tails */
    static float x[N], a[N], b[N];
    size_t n = sweep(x, N, 12.0f);
    memcpy(a, x, sizeof x);
    memcpy(b, x, sizeof x);
    fast(a, n);
    ref(b, n);
    double worst = 0;
    size_t at = 0;
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        double lim = atol * fmax(1.0, fabs((double)x[i])) + rtol * fabs((double)b[i]);
        if (!(d <= lim))
            ok = 0;
        if (d / lim > worst || d != d) {
            worst = d / lim;
            at = i;
        }
    }
    CHECKF(ok, "%s: at x = %g fast %.9g vs reference %.9g (%.2f x the tolerance)", what, x[at], a[at], b[at],
           worst);
}

static void test_gelu(void)
{
    cl_linalg_set_threads(2);
    compare_ew("gelu", cl_gelu, cl_gelu_ref, 4e-7, 1e-6);
    compare_ew("quick_gelu", cl_quick_gelu, cl_quick_gelu_ref, 1e-7, 1e-6);
    float v[4] = {-100.0f, 0.0f, 100.0f, 1.0f};
    cl_gelu(v, 4);
    CHECK(v[0] == 0.0f && v[1] == 0.0f && v[2] == 100.0f && fabsf(v[3] - 0.8413447f) < 1e-6f);
    float q[3] = {-1000.0f, 0.0f, 1000.0f};
    cl_quick_gelu(q, 3);
    CHECK(fabsf(q[0]) < 1e-30f && q[1] == 0.0f && q[2] == 1000.0f);
}

static void test_softmax(void)
{
    static const int lens[] = {1, 7, 8, 9, 50, 197};
    unsigned seed = 7;
    for (size_t li = 0; li < sizeof lens / sizeof *lens; li++) {
        int cols = lens[li], rows = 5, ld = cols + 3;
        float a[5 * 200], b[5 * 200];
        int caus[5];
        for (int i = 0; i < rows * ld; i++)
            a[i] = b[i] = 12.0f * frand(&seed);
        for (int r = 0; r < rows; r++)
            caus[r] = r % cols + 1;
        for (int masked = 0; masked < 2; masked++) {
            float c[5 * 200], d[5 * 200];
            memcpy(c, a, sizeof c);
            memcpy(d, b, sizeof d);
            cl_softmax_rows(c, rows, cols, ld, masked ? caus : NULL);
            cl_softmax_rows_ref(d, rows, cols, ld, masked ? caus : NULL);
            for (int r = 0; r < rows; r++) {
                double sum = 0;
                for (int j = 0; j < cols; j++) {
                    float x = c[r * ld + j], y = d[r * ld + j];
                    CHECKF(fabsf(x - y) <= 1e-6f * y + 1e-12f, "len %d row %d col %d: %g vs %g", cols, r, j, x, y);
                    sum += x;
                    if (masked && j >= caus[r])
                        CHECK(x == 0.0f);
                }
                CHECKF(fabs(sum - 1) < 1e-5, "len %d row %d sums to %.8f", cols, r, sum);
                for (int j = cols; j < ld; j++) /* the row stride's padding is untouched */
                    CHECK(c[r * ld + j] == a[r * ld + j]);
            }
        }
    }
}

static void test_layernorm(void)
{
    enum { R = 37, D = 200 };
    static float x[R * D], y[R * D], g[D], bb[D], mean[R], sd[R];
    unsigned seed = 3;
    for (int i = 0; i < R * D; i++)
        x[i] = 5.0f + 3.0f * frand(&seed) * (1 + i % 7); /* far from zero mean */
    for (int i = 0; i < D; i++) {
        g[i] = 1 + 0.3f * frand(&seed);
        bb[i] = 0.3f * frand(&seed);
    }
    for (int threads = 1; threads <= 3; threads++) {
        cl_linalg_set_threads(threads);
        cl_layernorm(y, mean, sd, x, g, bb, R, D, 1e-5f);
        double worst = 0;
        for (int r = 0; r < R; r++) {
            double m = 0, v = 0;
            for (int i = 0; i < D; i++)
                m += x[r * D + i];
            m /= D;
            for (int i = 0; i < D; i++)
                v += (x[r * D + i] - m) * (x[r * D + i] - m);
            v = v / D + 1e-5;
            CHECK(fabs(mean[r] - m) <= 1e-6 * fabs(m) && fabs(sd[r] - sqrt(v)) <= 1e-6 * sqrt(v));
            for (int i = 0; i < D; i++) {
                double want = (x[r * D + i] - m) / sqrt(v) * g[i] + bb[i];
                worst = fmax(worst, fabs(y[r * D + i] - want));
            }
        }
        CHECKF(worst < 2e-6, "threads %d: largest LayerNorm difference %.3g", threads, worst);
    }
    /* in place, without statistics */
    memcpy(y, x, sizeof x);
    cl_layernorm(y, NULL, NULL, y, g, bb, R, D, 1e-5f);
    cl_layernorm(x, mean, sd, x, g, bb, R, D, 1e-5f);
    CHECK(memcmp(x, y, sizeof x) == 0);
}

static void test_gemm(void)
{
    enum { M = 13, K = 21, N = 17 };
    float a[M * K], w[N * K], bias[N], y[M * N], bt[K * N], c[M * N];
    unsigned seed = 11;
    for (int i = 0; i < M * K; i++)
        a[i] = frand(&seed);
    for (int i = 0; i < N * K; i++)
        w[i] = frand(&seed);
    for (int i = 0; i < N; i++)
        bias[i] = frand(&seed);
    for (int k = 0; k < K; k++)
        for (int n = 0; n < N; n++)
            bt[k * N + n] = w[n * K + k];
    cl_linalg_set_threads(2);
    cl_linear(y, a, w, bias, M, N, K);
    cl_gemm_nn(M, N, K, 1.0f, a, K, bt, N, 0.0f, c, N);
    double worst = 0, worst_nn = 0;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = 0;
            for (int k = 0; k < K; k++)
                s += (double)a[m * K + k] * w[n * K + k];
            worst = fmax(worst, fabs(y[m * N + n] - (s + bias[n])));
            worst_nn = fmax(worst_nn, fabs(c[m * N + n] - s));
        }
    CHECKF(worst < 1e-5, "cl_linear: largest difference %.3g", worst);
    CHECKF(worst_nn < 1e-5, "cl_gemm_nn: largest difference %.3g", worst_nn);
    /* profiling counts calls only while on */
    cl_linalg_profile(1);
    cl_linalg_profile_reset();
    cl_linear(y, a, w, NULL, M, N, K);
    CHECK(cl_linalg_sgemm_calls() == 1 && cl_linalg_sgemm_seconds() >= 0);
    cl_linalg_profile(0);
    cl_linear(y, a, w, NULL, M, N, K);
    CHECK(cl_linalg_sgemm_calls() == 1);
}

struct visit {
    int hits[1000];
    int max_worker;
    int chunks;
};

static void mark(void *ctx, int b, int e, int worker)
{
    struct visit *v = ctx;
    for (int i = b; i < e; i++)
        __atomic_add_fetch(&v->hits[i], 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&v->chunks, 1, __ATOMIC_RELAXED);
    int w = __atomic_load_n(&v->max_worker, __ATOMIC_RELAXED);
    while (worker > w && !__atomic_compare_exchange_n(&v->max_worker, &w, worker, 0, __ATOMIC_RELAXED,
                                                      __ATOMIC_RELAXED))
        ;
}

static void nested(void *ctx, int b, int e, int worker)
{
    (void)b;
    (void)e;
    (void)worker;
    cl_parallel_for(1000, 1, mark, ctx); /* runs in this worker, serially */
}

static void test_pool(void)
{
    static const int ns[] = {0, 1, 5, 999, 1000};
    for (int threads = 1; threads <= 4; threads++) {
        cl_linalg_set_threads(threads);
        CHECK(cl_linalg_threads() == threads);
        for (size_t k = 0; k < sizeof ns / sizeof *ns; k++)
            for (int grain = 1; grain <= 300; grain *= 17) {
                static struct visit v;
                memset(&v, 0, sizeof v);
                cl_parallel_for(ns[k], grain, mark, &v);
                for (int i = 0; i < 1000; i++)
                    CHECKF(v.hits[i] == (i < ns[k]), "threads %d n %d grain %d: index %d hit %d times", threads,
                           ns[k], grain, i, v.hits[i]);
                int want = ns[k] == 0 ? 0 : (ns[k] + grain - 1) / grain < threads ? (ns[k] + grain - 1) / grain
                                                                                  : threads;
                CHECKF(v.chunks == want && v.max_worker < threads, "threads %d n %d grain %d: %d chunks", threads,
                       ns[k], grain, v.chunks);
            }
        static struct visit v;
        memset(&v, 0, sizeof v);
        cl_parallel_for(threads, 1, nested, &v);
        for (int i = 0; i < 1000; i++)
            CHECK(v.hits[i] == threads);
    }
    cl_linalg_set_threads(1);
}

TEST_MAIN("linalg", TEST(test_gelu), TEST(test_softmax), TEST(test_layernorm), TEST(test_gemm), TEST(test_pool))
