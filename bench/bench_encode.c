/* bench_encode.c - time the image tower of a model directory: img/s, share of
 * time in sgemm, peak RSS.  Built and run by bench/encode.sh.
 *
 * usage: bench_encode MODELDIR [THREADS [BATCH [ITERS]]]
 * Prints one line: "cliplens images K seconds S img/s R threads T sgemm_share F peak_rss_mb M
 * cpu_seconds C" (C: user + system time of the timed loop, all threads).
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "linalg.h"
#include "model.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double cpu_seconds(const struct rusage *r)
{
    return (double)(r->ru_utime.tv_sec + r->ru_stime.tv_sec) +
           1e-6 * (double)(r->ru_utime.tv_usec + r->ru_stime.tv_usec);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_encode MODELDIR [THREADS [BATCH [ITERS]]]\n");
        return 1;
    }
    int threads = argc > 2 ? atoi(argv[2]) : 2, batch = argc > 3 ? atoi(argv[3]) : 8;
    int iters = argc > 4 ? atoi(argv[4]) : 3;
    struct cl_err e;
    struct cl_model *m;
    struct cl_vit_state *s;
    if (cl_model_load(&m, argv[1], &e) || cl_vit_state_new(&s, m, batch, threads, &e)) {
        fprintf(stderr, "bench_encode: %s\n", e.msg);
        return 2;
    }
    size_t S = (size_t)m->cfg.image_size, npx = (size_t)batch * 3 * S * S;
    float *px = malloc(npx * sizeof *px), *emb = malloc((size_t)batch * m->cfg.embed_dim * sizeof *emb);
    if (!px || !emb)
        return 3;
    srand(1);
    for (size_t i = 0; i < npx; i++)
        px[i] = (float)rand() / RAND_MAX * 4.0f - 2.0f;
    cl_vit_forward(s, px, batch, emb, NULL, &e); /* warm-up: faults the weights in */
    cl_linalg_profile(1);
    cl_linalg_profile_reset();
    struct rusage ru0, ru;
    getrusage(RUSAGE_SELF, &ru0);
    double t0 = now();
    for (int i = 0; i < iters; i++)
        cl_vit_forward(s, px, batch, emb, NULL, &e);
    double dt = now() - t0;
    getrusage(RUSAGE_SELF, &ru);
    printf("cliplens images %d seconds %.3f img/s %.2f threads %d sgemm_share %.3f peak_rss_mb %.0f "
           "cpu_seconds %.3f\n", batch * iters, dt, batch * iters / dt, threads,
           cl_linalg_sgemm_seconds() / dt, ru.ru_maxrss / 1024.0, cpu_seconds(&ru) - cpu_seconds(&ru0));
    free(px);
    free(emb);
    cl_vit_state_free(s);
    cl_model_free(m);
    return 0;
}
