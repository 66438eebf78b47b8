/* clip-textspan - per-head component streams + a text pool -> the texts that span
 * what each attention head writes (TextSpan, P1), a readable report and a basis stream. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ablate.h"
#include "cli.h"
#include "linalg.h"
#include "stream.h"
#include "textspan.h"

static void usage(FILE *f)
{
    fprintf(f,
"Usage: clip-textspan --pool POOL.cts [OPTIONS] [PARTS.cts]\n"
"TextSpan (P1): for every attention head of the chosen layers, pick from a pool of texts\n"
"the directions that explain most of the head's variance over the images, in order.\n"
"PARTS is a decompose stream (clip-decompose; heads [L,H,E], or [L,H,N,E] summed over\n"
"tokens); '-' or absent: standard input.  POOL is a text stream (clip-encode --texts;\n"
"meta \"text\"), normalised here.  Output: a kind \"textspan\" stream (per head \"L.H\":\n"
"meta texts, variance, share (cumulative), indices (pool rows), rank, total_variance;\n"
"\"basis\" [m,E] orthonormal, \"mean\" [E]) to -o FILE or stdout, and a\n"
"report (per head: texts in order, the variance each explains, its share of the head's\n"
"total variance and the cumulative share) on stderr or --report FILE.\n"
"\n"
"Options:\n"
"  --pool FILE         the text pool (required)\n"
"  --layers LIST       layers to run, model numbering: 9-11, 8,10 or all\n"
"                      (default: the last 4 layers in the stream)\n"
"  --per-head M        texts per head (default: 10)\n"
"  --rank R            rank of the span the texts are projected on (default: %d; capped\n"
"                      by the numerical rank of the head's components)\n"
"  --report FILE       the readable report to FILE ('-': stdout; then -o is required)\n"
"  -o, --output FILE   textspan stream (default: stdout); written atomically\n"
"  -t, --threads N     BLAS threads (default: %d, the online processors)\n"
"  --level N           zstd level 1..19, 0 = uncompressed (default: %d)\n"
"  -q, --quiet         no report or messages on stderr\n"
"  -h, --help, --version\n"
"\n"
"The pool and the parts must come from the same model.\n"
"Exit status: 0 ok, 1 usage, 2 bad input (wrong kind, model mismatch, shapes), 3 I/O.\n"
"Examples:\n"
"  clip-encode --texts descriptions.txt -o pool.cts\n"
"  clip-decompose --manifest val.tsv --layers 8-11 -o parts.cts\n"
"  clip-textspan --pool pool.cts parts.cts -o basis.cts\n"
"  clip-textspan --pool pool.cts --layers 11 --per-head 20 --report - -o basis.cts parts.cts\n",
            CL_TEXTSPAN_DEFAULT_RANK, cl_default_threads(), CL_STREAM_DEFAULT_LEVEL);
}

struct args {
    const char *input, *pool, *layers, *report, *output;
    long per_head, rank, threads, level;
    struct cl_opts opts;
};

static void parse_args(struct args *a, int argc, char **argv)
{
    memset(a, 0, sizeof *a);
    a->per_head = 10;
    a->rank = CL_TEXTSPAN_DEFAULT_RANK;
    a->threads = cl_default_threads();
    a->level = CL_STREAM_DEFAULT_LEVEL;
    struct cl_opts *o = &a->opts;
    cl_opts_init(o, argc, argv);
    while (cl_opts_next(o)) {
        if (cl_opt_is(o, "-h", "--help")) { usage(stdout); exit(0); }
        else if (cl_opt_is(o, NULL, "--version")) { printf("clip-textspan %s\n", CL_VERSION); exit(0); }
        else if (cl_opt_is(o, NULL, "--pool")) a->pool = cl_opt_value(o);
        else if (cl_opt_is(o, NULL, "--layers")) a->layers = cl_opt_value(o);
        else if (cl_opt_is(o, NULL, "--per-head")) a->per_head = cl_flag_long("--per-head", cl_opt_value(o), 1, 100000);
        else if (cl_opt_is(o, NULL, "--rank")) a->rank = cl_flag_long("--rank", cl_opt_value(o), 1, CL_TEXTSPAN_MAX_DIM);
        else if (cl_opt_is(o, NULL, "--report")) a->report = cl_opt_value(o);
        else if (cl_opt_is(o, "-o", "--output")) a->output = cl_opt_value(o);
        else if (cl_opt_is(o, "-t", "--threads")) a->threads = cl_flag_long("--threads", cl_opt_value(o), 1, 256);
        else if (cl_opt_is(o, NULL, "--level")) a->level = cl_flag_long("--level", cl_opt_value(o), 0, 19);
        else if (cl_opt_is(o, "-q", "--quiet")) cl_quiet = 1;
        else cl_opt_unknown(o);
    }
    if (o->noperands > 1) cl_usage_error("one parts stream at most (got %d)", o->noperands);
    a->input = o->noperands ? o->operands[0] : "-";
    if (!a->pool) cl_usage_error("a text pool is required (--pool FILE, from clip-encode --texts)");
    if (a->report && strcmp(a->report, "-") == 0 && (!a->output || strcmp(a->output, "-") == 0))
        cl_usage_error("--report - puts the report on stdout: give the stream a file with -o FILE");
}


/* ------------------------------------------------------------ the pool */

struct pool {
    int M, E;
    float *emb;   /* [M,E] normalised */
    char **text;  /* [M] */
    struct cl_model_info model;
};

static void load_pool(struct pool *p, const char *path)
{
    struct cl_reader *r;
    struct cl_item it = {0};
    struct cl_err e;
    enum cl_status s;
    int cap = 0;
    memset(p, 0, sizeof *p);
    if ((s = cl_reader_open(&r, path, &e)) != CL_OK) cl_die_status(s, &e);
    const char *kind = cl_reader_header(r)->kind;
    if (strcmp(kind, "text") != 0 && strcmp(kind, "classifier") != 0)
        cl_die(2, "%s: stream kind is \"%s\", expected \"text\" (from clip-encode --texts)", path, kind);
    p->model = cl_reader_header(r)->model;
    while ((s = cl_reader_next(r, &it, &e)) == CL_OK) {
        const struct cl_tensor *t = cl_item_get(&it, "embedding");
        const char *txt = cl_map_get_str(&it.meta, "text");
        uint64_t i = cl_reader_items(r) - 1;
        if (!t || t->ndim != 1 || t->shape[0] < 1 || t->shape[0] > CL_TEXTSPAN_MAX_DIM || t->dtype == CL_I32 ||
            t->dtype == CL_U8 || (p->M && t->shape[0] != p->E))
            cl_die(2, "%s: item %" PRIu64 " (id \"%s\") has no float \"embedding\" [E]%s", path, i, it.id,
                   p->M ? " of the first item's size" : "");
        if (!txt) cl_die(2, "%s: item %" PRIu64 " (id \"%s\") has no meta \"text\"", path, i, it.id);
        if (p->M == INT32_MAX / 2) cl_die(2, "%s: more than %d texts", path, INT32_MAX / 2);
        p->E = (int)t->shape[0];
        if (p->M == cap) {
            cap = cap ? cap * 2 : 256;
            p->emb = realloc(p->emb, (size_t)cap * p->E * sizeof *p->emb);
            p->text = realloc(p->text, (size_t)cap * sizeof *p->text);
            if (!p->emb || !p->text) cl_die(3, "out of memory for %d texts", cap);
        }
        float *v = p->emb + (size_t)p->M * p->E;
        cl_convert_to_f32(v, t->data, t->dtype, (size_t)p->E);
        double n2 = 0;
        for (int k = 0; k < p->E; k++) n2 += (double)v[k] * v[k];
        if (!(n2 > 0) || !isfinite(n2)) cl_die(2, "%s: item %" PRIu64 " (\"%s\"): zero or non-finite embedding", path, i, txt);
        for (int k = 0; k < p->E; k++) v[k] = (float)(v[k] / sqrt(n2));
        if (!(p->text[p->M] = strdup(txt))) cl_die(3, "out of memory");
        p->M++;
    }
    if (s != CL_END) cl_die_status(s, &e);
    if (p->M == 0) cl_die(2, "%s: the text pool is empty", path);
    cl_item_free(&it);
    cl_reader_close(r);
}

/* ------------------------------------------------------------ the heads */

#define STATS_MAX_GIB 16 /* cap on the per-head E x E statistics held at once */

struct heads {
    struct cl_parts_shape shape;
    int nsel;                        /* selected heads */
    int *row, *head;                 /* [nsel] layer row and head of each */
    struct cl_textspan_stats *stats; /* [nsel] */
    struct cl_model_info model;
    uint64_t n;
};

/* Stream the parts once, accumulating the statistics of every selected head. */
static void accumulate(struct heads *hs, const struct args *a, const struct pool *pool)
{
    struct cl_reader *r;
    struct cl_item it = {0};
    struct cl_parts p = {0};
    struct cl_err e;
    enum cl_status s;
    const char *name = strcmp(a->input, "-") == 0 ? "standard input" : a->input;
    memset(hs, 0, sizeof *hs);
    if ((s = cl_reader_open(&r, a->input, &e)) != CL_OK) cl_die_status(s, &e);
    if (strcmp(cl_reader_header(r)->kind, "decompose") != 0)
        cl_die(2, "%s: stream kind is \"%s\", expected \"decompose\" (from clip-decompose)", name, cl_reader_header(r)->kind);
    hs->model = cl_reader_header(r)->model;
    cl_require_same_model(&hs->model, name, &pool->model, a->pool);
    struct cl_progress prog;
    cl_progress_start(&prog, "heads", 0);
    while ((s = cl_reader_next(r, &it, &e)) == CL_OK) {
        uint64_t idx = cl_reader_items(r) - 1;
        if (idx == 0) {
            struct cl_parts_shape *sh = &hs->shape;
            if ((s = cl_parts_shape_of(&it, sh, &e)) != CL_OK) cl_die(2, "%s: item 0 (id \"%s\"): %s", name, it.id, e.msg);
            if (!sh->has_heads) cl_die(2, "%s: item 0 (id \"%s\") has no \"heads\"", name, it.id);
            if (sh->E != pool->E)
                cl_die(2, "%s has embedding dim %d, the pool %s has %d", name, sh->E, a->pool, pool->E);
            uint8_t rows[CL_PARTS_MAX_LAYERS] = {0};
            if (a->layers) {
                if ((s = cl_index_list_parse(a->layers, sh->layers, sh->L, rows, &e)) != CL_OK)
                    cl_die(1, "--layers %s: %s", a->layers, e.msg);
            } else {
                for (int t = sh->L > 4 ? sh->L - 4 : 0; t < sh->L; t++) rows[t] = 1;
            }
            for (int t = 0; t < sh->L; t++) hs->nsel += rows[t] ? sh->H : 0;
            double gib = (double)hs->nsel * ((double)sh->E * sh->E + 129.0 * sh->E) * 8 / (1 << 30);
            if (gib > STATS_MAX_GIB)
                cl_die(2, "%s: %d heads of dim %d need %.1f GiB of statistics (at most %d): choose fewer with --layers",
                       name, hs->nsel, sh->E, gib, STATS_MAX_GIB);
            hs->row = calloc((size_t)hs->nsel, sizeof *hs->row);
            hs->head = calloc((size_t)hs->nsel, sizeof *hs->head);
            hs->stats = calloc((size_t)hs->nsel, sizeof *hs->stats);
            if (!hs->row || !hs->head || !hs->stats) cl_die(3, "out of memory");
            int k = 0;
            for (int t = 0; t < sh->L; t++)
                for (int h = 0; rows[t] && h < sh->H; h++, k++) {
                    hs->row[k] = t;
                    hs->head[k] = h;
                    if ((s = cl_textspan_stats_build(&hs->stats[k], sh->E, 128, &e)) != CL_OK) cl_die_status(s, &e);
                }
            if ((s = cl_parts_build(&p, sh, &e)) != CL_OK) cl_die_status(s, &e);
        }
        if ((s = cl_parts_load(&p, &it, name, idx, &e)) != CL_OK) cl_die_status(s, &e);
        for (int k = 0; k < hs->nsel; k++)
            cl_textspan_stats_add(&hs->stats[k], p.heads + ((size_t)hs->row[k] * hs->shape.H + hs->head[k]) * hs->shape.E);
        hs->n++;
        cl_progress_add(&prog, 1);
    }
    if (s != CL_END) cl_die_status(s, &e);
    cl_progress_end(&prog);
    if (hs->n < 2) cl_die(2, "%s: %" PRIu64 " image%s: TextSpan needs at least 2", name, hs->n, hs->n == 1 ? "" : "s");
    cl_parts_free(&p);
    cl_item_free(&it);
    cl_reader_close(r);
}

/* ------------------------------------------------------------ outputs */

static void report_head(FILE *f, int layer, int head, const struct cl_textspan_result *res, const struct pool *pool)
{
    fprintf(f, "== head %d.%d  (%" PRId64 " images, rank %d, total variance %.6g)\n", layer, head, res->n, res->rank,
            res->total_variance);
    fprintf(f, "  %3s  %10s  %6s  %6s  %s\n", "#", "variance", "share", "cum", "text");
    for (int k = 0; k < res->m; k++)
        fprintf(f, "  %3d  %10.4g  %5.1f%%  %5.1f%%  %s\n", k + 1, res->variance[k],
                res->total_variance > 0 ? 100 * res->variance[k] / res->total_variance : 0.0, 100 * res->share[k],
                pool->text[res->text[k]]);
    if (res->m == 0) fprintf(f, "  (no text explains any variance)\n");
}

static void write_head(struct cl_writer *w, int layer, int head, const struct cl_textspan_result *res,
                       const struct pool *pool)
{
    struct cl_value meta = CL_VALUE_NIL, texts, var, share, idx, v;
    struct cl_tensor t[2] = {{0}, {0}};
    struct cl_err e;
    enum cl_status s;
    char id[32];
    cl_value_array(&texts);
    cl_value_array(&var);
    cl_value_array(&share);
    cl_value_array(&idx);
    for (int k = 0; k < res->m; k++) {
        const char *txt = pool->text[res->text[k]];
        if (cl_value_str(&v, txt, strlen(txt)) != CL_OK || cl_array_push(&texts, &v) != CL_OK) cl_die(3, "out of memory");
        cl_value_float(&v, res->variance[k]);
        cl_array_push(&var, &v);
        cl_value_float(&v, res->share[k]);
        cl_array_push(&share, &v);
        cl_value_int(&v, res->text[k]);
        cl_array_push(&idx, &v);
    }
    cl_map_set_int(&meta, "layer", layer);
    cl_map_set_int(&meta, "head", head);
    cl_map_set(&meta, "texts", &texts);
    cl_map_set(&meta, "variance", &var);
    cl_map_set(&meta, "share", &share);
    cl_map_set(&meta, "indices", &idx);
    cl_map_set_int(&meta, "rank", res->rank);
    cl_map_set_float(&meta, "total_variance", res->total_variance);
    t[0].name = "basis"; t[0].dtype = CL_F32; t[0].ndim = 2; t[0].shape[0] = res->m; t[0].shape[1] = res->dim;
    t[0].data = res->basis; t[0].nbytes = (size_t)res->m * res->dim * sizeof(float);
    t[1].name = "mean"; t[1].dtype = CL_F32; t[1].ndim = 1; t[1].shape[0] = res->dim;
    t[1].data = res->mean; t[1].nbytes = (size_t)res->dim * sizeof(float);
    snprintf(id, sizeof id, "%d.%d", layer, head);
    if ((s = cl_writer_item_parts(w, id, &meta, t, 2, &e)) != CL_OK) cl_die_status(s, &e);
    cl_value_free(&meta);
}

int main(int argc, char **argv)
{
    struct args a;
    struct pool pool;
    struct heads hs;
    struct cl_output out, rep = {0};
    struct cl_writer *w;
    struct cl_header h;
    struct cl_err e;
    enum cl_status s;
    cl_cli_init(argc, argv);
    parse_args(&a, argc, argv);
    cl_linalg_set_threads((int)a.threads);
    if ((s = cl_output_open(&out, a.output, 1, &e)) != CL_OK) cl_die_status(s, &e);
    load_pool(&pool, a.pool);
    double t_read = cl_now();
    accumulate(&hs, &a, &pool);
    t_read = cl_now() - t_read;
    FILE *report = cl_quiet ? NULL : stderr;
    if (a.report) {
        if ((s = cl_output_open(&rep, a.report, 0, &e)) != CL_OK) cl_die_status(s, &e);
        report = rep.fp;
    }
    cl_header_init(&h, "textspan");
    h.model = hs.model;
    cl_map_set_int(&h.meta, "rank", a.rank);
    cl_map_set_int(&h.meta, "per_head", a.per_head);
    cl_map_set_int(&h.meta, "images", (int64_t)hs.n);
    cl_map_set_int(&h.meta, "pool_texts", pool.M);
    cl_map_set_str(&h.meta, "pool", a.pool);
    if ((s = cl_writer_open(&w, out.fp, &h, (int)a.level, &e)) != CL_OK) cl_die_status(s, &e);
    if (report)
        fprintf(report, "TextSpan: %" PRIu64 " images, %d heads, pool of %d texts (%s), rank %ld, %ld texts per head\n",
                hs.n, hs.nsel, pool.M, a.pool, a.rank, a.per_head);
    double t0 = cl_now();
    for (int k = 0; k < hs.nsel; k++) {
        struct cl_textspan_result res;
        int layer = hs.shape.layers[hs.row[k]];
        if ((s = cl_textspan_run(&hs.stats[k], pool.emb, pool.M, (int)a.rank, (int)a.per_head, &res, &e)) != CL_OK)
            cl_die(cl_status_exit(s), "head %d.%d: %s", layer, hs.head[k], e.msg);
        if (report) report_head(report, layer, hs.head[k], &res, &pool);
        write_head(w, layer, hs.head[k], &res, &pool);
        cl_textspan_result_free(&res);
        cl_textspan_stats_free(&hs.stats[k]);
    }
    if ((s = cl_writer_close(w, &e)) != CL_OK || (s = cl_output_commit(&out, &e)) != CL_OK) cl_die_status(s, &e);
    if (a.report && (s = cl_output_commit(&rep, &e)) != CL_OK) cl_die_status(s, &e);
    cl_info("%d heads: reading %" PRIu64 " images and their statistics %.3f s, TextSpan %.3f s", hs.nsel, hs.n,
            t_read, cl_now() - t0);
    cl_header_free(&h);
    cl_opts_free(&a.opts);
    return 0;
}
