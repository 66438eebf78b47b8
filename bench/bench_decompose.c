/* bench_decompose.c - time the decomposition against the plain forward pass of a model
 * directory: per image, encode alone, then forward with capture + decomposition for heads,
 * heads x tokens and second-order neurons of one layer.  Built and run by bench/decompose.sh.
 *
 * usage: bench_decompose MODELDIR [THREADS [BATCH [ITERS [LAYER [ROUNDS]]]]]
 * Prints one line per mode: "cliplens MODE s_per_image S decompose_s_per_image S setup_s S ratio R
 * cpu_s_per_image C cpu_ratio Q", the best of ROUNDS rounds (encode and every mode in turn) of
 * wall and of process CPU time, then the peak RSS.  With THREADS 1 the CPU ratio is the cost
 * ratio even on a busy machine.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "cli.h"
#include "decompose.h"
#include "linalg.h"
#include "model.h"

struct mode { const char *name; int tokens, second; struct cl_decomposer *d; struct cl_vit_capture *cap;
              double setup, best, best_dec, best_cpu; };

/* CPU seconds of the whole process (all threads): with one thread, the work itself,
 * whatever else the machine runs. */
static double cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

/* Seconds per image of iters batches: forward (with capture and decomposition when md),
 * after one batch of warm-up if warm; *dec receives the share spent decomposing, *cpu the
 * CPU seconds per image. */
static double timed(struct cl_vit_state *s, const struct mode *md, const float *px, float *emb, int batch,
                    int iters, int warm, double *dec, double *cpu)
{
    struct cl_err e;
    double t0 = 0, td = 0, c0 = 0;
    for (int it = warm ? -1 : 0; it < iters; it++) { /* iteration -1 warms up */
        if (it == 0)
            t0 = cl_now(), c0 = cpu_now(), td = 0;
        if (cl_vit_forward(s, px, batch, emb, md ? md->cap : NULL, &e) != CL_OK) {
            fprintf(stderr, "bench_decompose: %s\n", e.msg);
            exit(2);
        }
        double t1 = cl_now();
        if (md && cl_decompose_batch(md->d, md->cap, emb, batch, &e) != CL_OK) {
            fprintf(stderr, "bench_decompose: %s\n", e.msg);
            exit(2);
        }
        for (int b = 0; md && b < batch; b++) {
            struct cl_decomposition p;
            cl_decompose_image(md->d, b, &p, &e);
        }
        td += cl_now() - t1;
    }
    *dec = td / ((double)iters * batch);
    *cpu = (cpu_now() - c0) / ((double)iters * batch);
    return (cl_now() - t0) / ((double)iters * batch);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_decompose MODELDIR [THREADS [BATCH [ITERS [LAYER [ROUNDS]]]]]\n");
        return 1;
    }
    int threads = argc > 2 ? atoi(argv[2]) : 2, batch = argc > 3 ? atoi(argv[3]) : 8;
    int iters = argc > 4 ? atoi(argv[4]) : 2, rounds = argc > 6 ? atoi(argv[6]) : 2;
    struct cl_err e;
    struct cl_model *m;
    struct cl_vit_state *s;
    if (cl_model_load(&m, argv[1], &e) || cl_vit_state_new(&s, m, batch, threads, &e)) {
        fprintf(stderr, "bench_decompose: %s\n", e.msg);
        return 2;
    }
    int layer = argc > 5 ? atoi(argv[5]) : m->cfg.vision.layers - 3;
    size_t S = (size_t)m->cfg.image_size, npx = (size_t)batch * 3 * S * S;
    float *px = malloc(npx * sizeof *px), *emb = malloc((size_t)batch * m->cfg.embed_dim * sizeof *emb);
    if (!px || !emb)
        return 3;
    srand(1);
    for (size_t i = 0; i < npx; i++)
        px[i] = (float)rand() / RAND_MAX * 4.0f - 2.0f;
    struct mode modes[] = {{"heads", 0, 0, 0, 0, 0, 1e30, 0, 1e30}, {"tokens", 1, 0, 0, 0, 0, 1e30, 0, 1e30},
                           {"second", 0, 1, 0, 0, 0, 1e30, 0, 1e30}};
    int nm = (int)(sizeof modes / sizeof *modes);
    for (int k = 0; k < nm; k++) {
        struct cl_decompose_opts o;
        cl_decompose_opts_default(&o);
        o.tokens = modes[k].tokens;
        if (modes[k].second)
            o.second_order = layer;
        double t0 = cl_now();
        if (cl_decomposer_new(&modes[k].d, m, &o, batch, &e) ||
            cl_decomposer_capture_new(modes[k].d, &modes[k].cap, &e)) {
            fprintf(stderr, "bench_decompose: %s\n", e.msg);
            return 2;
        }
        modes[k].setup = cl_now() - t0;
    }
    /* rounds of encode then every mode, so each ratio compares neighbours in time;
     * the best of each is kept (the machine is shared) */
    double enc = 1e30, enc_cpu = 1e30, dummy, cpu;
    for (int r = 0; r < rounds; r++) {
        double t = timed(s, NULL, px, emb, batch, iters, r == 0, &dummy, &cpu);
        enc = t < enc ? t : enc;
        enc_cpu = cpu < enc_cpu ? cpu : enc_cpu;
        for (int k = 0; k < nm; k++) {
            double dec, tk = timed(s, &modes[k], px, emb, batch, iters, r == 0, &dec, &cpu);
            if (tk < modes[k].best) {
                modes[k].best = tk;
                modes[k].best_dec = dec;
            }
            if (cpu < modes[k].best_cpu)
                modes[k].best_cpu = cpu;
        }
    }
    printf("cliplens encode s_per_image %.4f cpu_s_per_image %.4f\n", enc, enc_cpu);
    for (int k = 0; k < nm; k++)
        printf("cliplens %s s_per_image %.4f decompose_s_per_image %.4f setup_s %.3f ratio %.3f "
               "cpu_s_per_image %.4f cpu_ratio %.3f layer %d\n", modes[k].name, modes[k].best, modes[k].best_dec,
               modes[k].setup, modes[k].best / enc, modes[k].best_cpu, modes[k].best_cpu / enc_cpu, layer);
    printf("cliplens peak_rss_mb %.0f\n", rss_mb());
    for (int k = 0; k < nm; k++) {
        cl_vit_capture_free(modes[k].cap);
        cl_decomposer_free(modes[k].d);
    }
    free(px);
    free(emb);
    cl_vit_state_free(s);
    cl_model_free(m);
    return 0;
}
