/* test_textspan.c - TextSpan: planted text directions picked in order, streaming
 * statistics equal to the direct two-pass ones, the rank cap, edge cases, and
 * parity with scripts/textspan_reference.py (P1's loop) on committed goldens. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../harness.h"
#include "stream.h"
#include "textspan.h"

#define FIX "tests/fixtures/textspan"

/* ------------------------------------------------------------ helpers */

static uint64_t rng_state = 88172645463325252ull;
static double urand(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}
static double nrand(void)
{
    double u = urand() + 1e-300, v = urand();
    return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

static void normalise(float *v, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)v[i] * v[i];
    for (int i = 0; i < n; i++) v[i] = (float)(v[i] / sqrt(s));
}

/* texts [M,E]: rows 0..P-1 orthonormal (Gram-Schmidt), the rest random unit. */
static void make_pool(float *T, int M, int E, int P)
{
    for (int j = 0; j < M; j++) {
        float *t = T + (size_t)j * E;
        for (int i = 0; i < E; i++) t[i] = (float)nrand();
        if (j < P)
            for (int k = 0; k < j; k++) {
                const float *q = T + (size_t)k * E;
                double d = 0;
                for (int i = 0; i < E; i++) d += (double)t[i] * q[i];
                for (int i = 0; i < E; i++) t[i] -= (float)(d * q[i]);
            }
        normalise(t, E);
    }
}

/* ------------------------------------------------------------ tests */

/* Components = mean + sum_k z_k sigma_k t_{plant[k]} + small noise: the planted
 * texts come out first, in order of their variances, with those variances. */
static void test_planted_order(void)
{
    enum { E = 32, M = 60, N = 800, P = 4 };
    static float T[M * E], c[E];
    make_pool(T, M, E, P);
    /* put the planted texts at scattered pool positions */
    const int plant[P] = {17, 3, 42, 29};
    const double sigma[P] = {4.0, 3.0, 2.0, 1.0};
    static float O[P * E];
    memcpy(O, T, sizeof O);
    for (int k = 0; k < P; k++) memcpy(T + (size_t)k * E, T + (size_t)(P + k) * E, E * sizeof *T);
    for (int k = 0; k < P; k++) memcpy(T + (size_t)plant[k] * E, O + (size_t)k * E, E * sizeof *T);
    struct cl_textspan_stats s;
    struct cl_err e;
    CHECK(cl_textspan_stats_build(&s, E, 64, &e) == CL_OK);
    float mu[E];
    for (int i = 0; i < E; i++) mu[i] = (float)(3 * nrand());
    for (int n = 0; n < N; n++) {
        for (int i = 0; i < E; i++) c[i] = mu[i] + (float)(0.01 * nrand());
        for (int k = 0; k < P; k++) {
            double z = sigma[k] * nrand();
            for (int i = 0; i < E; i++) c[i] += (float)(z * T[(size_t)plant[k] * E + i]);
        }
        cl_textspan_stats_add(&s, c);
    }
    struct cl_textspan_result r;
    CHECK(cl_textspan_run(&s, T, M, 0, 6, &r, &e) == CL_OK);
    CHECK(r.m == 6);
    CHECK(r.rank == E);
    for (int k = 0; k < P; k++) {
        CHECKF(r.text[k] == plant[k], "pick %d is text %d, planted %d", k, r.text[k], plant[k]);
        /* the sampling variance of sigma^2 over 800 draws is within 15% */
        CHECKF(fabs(r.variance[k] / (sigma[k] * sigma[k]) - 1) < 0.15, "variance %g vs %g", r.variance[k],
               sigma[k] * sigma[k]);
    }
    /* four planted directions hold all but the noise: share ~ 1 after 4 picks */
    CHECKF(r.share[P - 1] > 0.99 && r.share[P - 1] <= 1.0 + 1e-9, "share after %d picks %g", P, r.share[P - 1]);
    for (int k = 1; k < r.m; k++) CHECK(r.share[k] >= r.share[k - 1]);
    /* the basis is orthonormal and the planted directions come out exactly (up to sign) */
    double worst = 0;
    for (int a = 0; a < r.m; a++)
        for (int b = 0; b < r.m; b++) {
            double d = 0;
            for (int i = 0; i < E; i++) d += (double)r.basis[(size_t)a * E + i] * r.basis[(size_t)b * E + i];
            worst = fmax(worst, fabs(d - (a == b)));
        }
    CHECKF(worst < 1e-5, "basis not orthonormal: %g", worst);
    double cosmin = 1;
    for (int k = 0; k < P; k++) {
        double d = 0;
        for (int i = 0; i < E; i++) d += (double)r.basis[(size_t)k * E + i] * T[(size_t)plant[k] * E + i];
        cosmin = fmin(cosmin, fabs(d));
    }
    CHECKF(cosmin > 0.999, "planted direction recovered with |cos| %g", cosmin);
    CHECK_CLOSE(r.mean, mu, E, 0.5, 0);
    cl_textspan_result_free(&r);
    cl_textspan_stats_free(&s);
}

/* Batch-merged statistics equal a direct two-pass computation. */
static void test_stats_merge(void)
{
    enum { E = 9, N = 257 };
    static float X[N * E];
    for (int i = 0; i < N * E; i++) X[i] = (float)(100 + nrand() * (1 + i % E));
    double mean[E] = {0}, sc[E * E] = {0};
    for (int n = 0; n < N; n++) for (int i = 0; i < E; i++) mean[i] += X[n * E + i] / (double)N;
    for (int n = 0; n < N; n++)
        for (int i = 0; i < E; i++)
            for (int j = 0; j < E; j++) sc[i * E + j] += (X[n * E + i] - mean[i]) * (X[n * E + j] - mean[j]);
    const int batches[] = {1, 7, 64, 1000};
    for (size_t b = 0; b < sizeof batches / sizeof *batches; b++) {
        struct cl_textspan_stats s;
        struct cl_err e;
        CHECK(cl_textspan_stats_build(&s, E, batches[b], &e) == CL_OK);
        for (int n = 0; n < N; n++) cl_textspan_stats_add(&s, X + n * E);
        cl_textspan_stats_flush(&s);
        CHECK(s.n == N);
        CHECK_CLOSE(s.mean, mean, E, 1e-9, 1e-12);
        double worst = 0;
        for (int i = 0; i < E; i++)
            for (int j = i; j < E; j++) worst = fmax(worst, fabs(s.scatter[i * E + j] - sc[i * E + j]) / (1 + fabs(sc[i * E + j])));
        CHECKF(worst < 1e-9, "batch %d: scatter differs by %g", batches[b], worst);
        cl_textspan_stats_free(&s);
    }
}

/* Data in a 5-dim affine subspace: rank capped at 6 (5 + the mean direction of the
 * uncentred SVD), at most 6 picks, and with every direction the reconstruction is exact. */
static void test_rank_cap_and_exact_reconstruction(void)
{
    enum { E = 20, N = 100, K = 5, M = 30 };
    static float B[K * E], X[N * E], T[M * E], mu[E], rec[E];
    make_pool(B, K, E, K);
    make_pool(T, M, E, 0);
    for (int i = 0; i < E; i++) mu[i] = (float)nrand();
    struct cl_textspan_stats s;
    struct cl_err e;
    CHECK(cl_textspan_stats_build(&s, E, 16, &e) == CL_OK);
    for (int n = 0; n < N; n++) {
        for (int i = 0; i < E; i++) X[n * E + i] = mu[i];
        for (int k = 0; k < K; k++) {
            double z = nrand() * (k + 1);
            for (int i = 0; i < E; i++) X[n * E + i] += (float)(z * B[k * E + i]);
        }
        cl_textspan_stats_add(&s, X + n * E);
    }
    struct cl_textspan_result r;
    CHECK(cl_textspan_run(&s, T, M, 80, 20, &r, &e) == CL_OK);
    CHECKF(r.rank == K + 1, "rank %d, expected %d", r.rank, K + 1);
    CHECK(r.m <= K + 1 && r.m >= K);
    CHECKF(fabs(r.share[r.m - 1] - 1) < 1e-5, "share with every direction: %g", r.share[r.m - 1]);
    double worst = 0;
    for (int n = 0; n < N; n++) {
        cl_textspan_reconstruct(r.basis, r.mean, r.m, E, X + n * E, rec);
        for (int i = 0; i < E; i++) worst = fmax(worst, fabs(rec[i] - X[n * E + i]));
    }
    CHECKF(worst < 1e-4, "full reconstruction off by %g", worst);
    cl_textspan_result_free(&r);
    cl_textspan_stats_free(&s);
}

static void test_edges(void)
{
    enum { E = 4 };
    float T[2 * E] = {1, 0, 0, 0, 0, 1, 0, 0}, x[E] = {1, 2, 3, 4}, zero[E] = {0};
    struct cl_textspan_stats s;
    struct cl_textspan_result r;
    struct cl_err e;
    CHECK(cl_textspan_stats_build(&s, 0, 8, &e) == CL_ERR_DATA);
    CHECK(cl_textspan_stats_build(&s, E, 8, &e) == CL_OK);
    cl_textspan_stats_add(&s, x);
    CHECK(cl_textspan_run(&s, T, 2, 0, 3, &r, &e) == CL_ERR_DATA);   /* one image */
    CHECK(strstr(e.msg, "at least 2") != NULL);
    cl_textspan_stats_add(&s, x);
    CHECK(cl_textspan_run(&s, T, 0, 0, 3, &r, &e) == CL_ERR_DATA);   /* empty pool */
    /* two equal images: rank 1 (the mean), zero variance: no picks */
    CHECK(cl_textspan_run(&s, T, 2, 0, 3, &r, &e) == CL_OK);
    CHECK(r.m == 0 && r.rank == 1 && r.total_variance == 0);
    cl_textspan_result_free(&r);
    cl_textspan_stats_free(&s);
    /* all-zero data: rank 0 */
    CHECK(cl_textspan_stats_build(&s, E, 8, &e) == CL_OK);
    for (int n = 0; n < 5; n++) cl_textspan_stats_add(&s, zero);
    CHECK(cl_textspan_run(&s, T, 2, 0, 3, &r, &e) == CL_OK);
    CHECK(r.m == 0 && r.rank == 0);
    cl_textspan_result_free(&r);
    cl_textspan_result_free(NULL);
    cl_textspan_stats_free(&s);
    cl_textspan_stats_free(NULL);
}

/* ------------------------------------------------------------ golden parity */

struct fixture {
    int N, E, L, H, M;
    float *heads;   /* [N,L,H,E] */
    float *texts;   /* [M,E] normalised */
};

static int load_fixture(struct fixture *f, const char *dir)
{
    char path[512];
    struct cl_reader *rd;
    struct cl_item it = {0};
    struct cl_err e;
    enum cl_status s;
    memset(f, 0, sizeof *f);
    snprintf(path, sizeof path, "%s/parts.cts", dir);
    if (cl_reader_open(&rd, path, &e) != CL_OK) { fprintf(stderr, "  %s\n", e.msg); return -1; }
    size_t cap = 0;
    while ((s = cl_reader_next(rd, &it, &e)) == CL_OK) {
        const struct cl_tensor *h = cl_item_get(&it, "heads");
        if (!h || h->ndim != 3 || h->dtype != CL_F32) return -1;
        f->L = (int)h->shape[0]; f->H = (int)h->shape[1]; f->E = (int)h->shape[2];
        size_t per = (size_t)f->L * f->H * f->E;
        if ((size_t)(f->N + 1) * per > cap) {
            cap = cap ? cap * 2 : per * 64;
            f->heads = realloc(f->heads, cap * sizeof(float));
        }
        memcpy(f->heads + (size_t)f->N * per, h->data, per * sizeof(float));
        f->N++;
    }
    cl_reader_close(rd);
    if (s != CL_END) return -1;
    snprintf(path, sizeof path, "%s/pool.cts", dir);
    if (cl_reader_open(&rd, path, &e) != CL_OK) return -1;
    while ((s = cl_reader_next(rd, &it, &e)) == CL_OK) {
        const struct cl_tensor *t = cl_item_get(&it, "embedding");
        f->texts = realloc(f->texts, (size_t)(f->M + 1) * f->E * sizeof(float));
        memcpy(f->texts + (size_t)f->M * f->E, t->data, (size_t)f->E * sizeof(float));
        normalise(f->texts + (size_t)f->M * f->E, f->E);
        f->M++;
    }
    cl_reader_close(rd);
    cl_item_free(&it);
    return s == CL_END ? 0 : -1;
}

static double meta_num(const struct cl_value *arr, size_t i)
{
    const struct cl_value *v = &arr->u.a.v[i];
    return v->type == CL_V_INT ? (double)v->u.i : v->u.f;
}

/* Every head of the golden: same picks in the same order as P1's loop (up to the
 * first near-tie, where float32 and double may part), same variances and stds,
 * same directions, and the same reconstruction of every image. */
static void golden_parity(const char *dir)
{
    struct fixture f;
    char path[512];
    if (load_fixture(&f, dir) != 0) { CHECKF(0, "cannot load %s", dir); return; }
    struct cl_reader *rd;
    struct cl_item it = {0};
    struct cl_err e;
    enum cl_status s;
    snprintf(path, sizeof path, "%s/golden.cts", dir);
    CHECK(cl_reader_open(&rd, path, &e) == CL_OK);
    int64_t per_head = 0, rank = 0;
    cl_map_get_int(&cl_reader_header(rd)->meta, "per_head", &per_head);
    cl_map_get_int(&cl_reader_header(rd)->meta, "rank", &rank);
    float *col = malloc((size_t)f.N * f.E * sizeof *col), rec[4096];
    int heads = 0, compared = 0;
    double worst_rec = 0, worst_var = 0, worst_dir = 0;
    while ((s = cl_reader_next(rd, &it, &e)) == CL_OK) {
        int64_t l = 0, h = 0, grank = 0;
        cl_map_get_int(&it.meta, "layer", &l);
        cl_map_get_int(&it.meta, "head", &h);
        cl_map_get_int(&it.meta, "rank", &grank);
        const struct cl_value *idx = cl_map_get(&it.meta, "indices"), *std = cl_map_get(&it.meta, "std"),
                              *margin = cl_map_get(&it.meta, "margin"), *var = cl_map_get(&it.meta, "variance");
        const struct cl_tensor *basis = cl_item_get(&it, "basis"), *grec = cl_item_get(&it, "recon");
        struct cl_textspan_stats st;
        CHECK(cl_textspan_stats_build(&st, f.E, 32, &e) == CL_OK);
        for (int n = 0; n < f.N; n++) {
            float *c = col + (size_t)n * f.E;
            memcpy(c, f.heads + (((size_t)n * f.L + l) * f.H + h) * f.E, (size_t)f.E * sizeof *c);
            cl_textspan_stats_add(&st, c);
        }
        struct cl_textspan_result r;
        CHECK(cl_textspan_run(&st, f.texts, f.M, (int)rank, (int)per_head, &r, &e) == CL_OK);
        CHECKF(r.rank == grank, "head %lld.%lld: rank %d, reference %lld", (long long)l, (long long)h, r.rank,
               (long long)grank);
        CHECKF((size_t)r.m == idx->u.a.n, "head %lld.%lld: %d picks, reference %zu", (long long)l, (long long)h, r.m,
               idx->u.a.n);
        int upto = 0; /* picks compared: up to and including the first near-tie */
        for (int k = 0; k < r.m && (size_t)k < idx->u.a.n; k++) {
            upto = k + 1;
            CHECKF(r.text[k] == (int)meta_num(idx, k), "head %lld.%lld pick %d: text %d, reference %d",
                   (long long)l, (long long)h, k, r.text[k], (int)meta_num(idx, k));
            worst_var = fmax(worst_var, fabs(r.variance[k] - meta_num(var, k)) / meta_num(var, k));
            worst_var = fmax(worst_var, fabs(r.score[k] - meta_num(std, k)) / meta_num(std, k));
            double d = 0;
            for (int i = 0; i < f.E; i++) d += (double)r.basis[(size_t)k * f.E + i] * ((float *)basis->data)[(size_t)k * f.E + i];
            worst_dir = fmax(worst_dir, 1 - d);
            if (meta_num(margin, k) < 1e-3) break;
        }
        compared += upto;
        if (upto == r.m) /* the whole reconstruction is comparable */
            for (int n = 0; n < f.N; n++) {
                cl_textspan_reconstruct(r.basis, r.mean, r.m, f.E, col + (size_t)n * f.E, rec);
                const float *g = (const float *)grec->data + (size_t)n * f.E;
                for (int i = 0; i < f.E; i++) worst_rec = fmax(worst_rec, fabs(rec[i] - g[i]) / (1 + fabs(g[i])));
            }
        heads++;
        cl_textspan_result_free(&r);
        cl_textspan_stats_free(&st);
    }
    CHECK(s == CL_END);
    fprintf(stderr, "  %s: %d heads, %d picks compared; max rel diff: variance/std %.2g, "
            "1 - cos(direction) %.2g, reconstruction %.2g\n", dir, heads, compared, worst_var, worst_dir, worst_rec);
    CHECK(heads > 0 && compared >= heads * 3);
    CHECKF(worst_var < 1e-4, "variance/std differ by %g", worst_var);
    CHECKF(worst_dir < 1e-5, "directions differ: 1 - cos = %g", worst_dir);
    CHECKF(worst_rec < 1e-4, "reconstruction differs by %g", worst_rec);
    cl_item_free(&it);
    cl_reader_close(rd);
    free(col);
    free(f.heads);
    free(f.texts);
}

/* synthetic components with planted texts */
static void test_golden_parity_synthetic(void) { golden_parity(FIX); }
/* real components: the tiny fixture model on 120 toy-world scenes, a toy-world pool */
static void test_golden_parity_real(void) { golden_parity(FIX "/real"); }

TEST_MAIN("textspan", TEST(test_planted_order), TEST(test_stats_merge), TEST(test_rank_cap_and_exact_reconstruction),
          TEST(test_edges), TEST(test_golden_parity_synthetic),
          TEST(test_golden_parity_real))
