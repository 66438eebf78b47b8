/* clip-retrieve - property-based retrieval (P1, SPEC §8): nearest neighbours of
 * query images using only chosen parts (e.g. one head) of their decompositions. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ablate.h"
#include "cli.h"
#include "stream.h"

static void usage(FILE *f)
{
    fprintf(f,
"Usage: clip-retrieve [OPTIONS] DATABASE.cts\n"
"Nearest neighbours of images using only chosen parts of their decompositions\n"
"(clip-decompose streams): a colour head finds images of the same colour, a\n"
"background head the same background.  DATABASE '-': standard input.\n"
"Each image is represented by the sum of the chosen parts, centred on its mean over\n"
"the database; neighbours are ranked by cosine similarity.\n"
"\n"
"Options:\n"
"  --parts SPEC        parts to use (repeatable, they add up; default: all):\n"
"                      heads:L.H,L.H  layers:A-B  mlps:A-B  embed  rest  bias  all\n"
"  --query ID          query with this database item (repeatable; default: every item,\n"
"                      against all the others)\n"
"  --queries FILE      query with the items of another decompose stream\n"
"  -k N                neighbours per query (default: 5)\n"
"  --no-center         compare the raw sums (not centred on the database mean)\n"
"  --match KEY         instead of neighbour lists, print how often a neighbour shares\n"
"                      the query's item meta KEY (precision at k) next to chance\n"
"  -q, --quiet         no messages on stderr\n"
"  -h, --help, --version\n"
"\n"
"Output (TSV on stdout): query, rank, neighbour, similarity; with --match: parts, key,\n"
"k, queries, precision, chance (the precision of random neighbours).\n"
"Exit status: 0 ok, 1 usage, 2 bad input (wrong kind, model mismatch, unknown id), 3 I/O.\n"
"Examples:\n"
"  clip-retrieve --parts heads:3.1 --query img42.png -k 10 parts.cts\n"
"  clip-retrieve --parts heads:3.1 --match colour_0 -k 10 parts.cts\n");
}

#define MAX_SPECS 256

struct args {
    const char *db, *queries, *match;
    const char *parts[MAX_SPECS], *query[MAX_SPECS];
    int nparts, nquery, no_center;
    long k;
    struct cl_opts opts;
};

static void parse_args(struct args *a, int argc, char **argv)
{
    memset(a, 0, sizeof *a);
    a->k = 5;
    struct cl_opts *o = &a->opts;
    cl_opts_init(o, argc, argv);
    while (cl_opts_next(o)) {
        if (cl_opt_is(o, "-h", "--help")) { usage(stdout); exit(0); }
        else if (cl_opt_is(o, NULL, "--version")) { printf("clip-retrieve %s\n", CL_VERSION); exit(0); }
        else if (cl_opt_is(o, NULL, "--parts")) {
            if (a->nparts == MAX_SPECS) cl_usage_error("too many --parts flags (at most %d)", MAX_SPECS);
            a->parts[a->nparts++] = cl_opt_value(o);
        } else if (cl_opt_is(o, NULL, "--query")) {
            if (a->nquery == MAX_SPECS) cl_usage_error("too many --query flags (at most %d)", MAX_SPECS);
            a->query[a->nquery++] = cl_opt_value(o);
        } else if (cl_opt_is(o, NULL, "--queries")) a->queries = cl_opt_value(o);
        else if (cl_opt_is(o, "-k", NULL)) a->k = cl_flag_long("-k", cl_opt_value(o), 1, 100000);
        else if (cl_opt_is(o, NULL, "--no-center")) a->no_center = 1;
        else if (cl_opt_is(o, NULL, "--match")) a->match = cl_opt_value(o);
        else if (cl_opt_is(o, "-q", "--quiet")) cl_quiet = 1;
        else cl_opt_unknown(o);
    }
    if (o->noperands != 1) cl_usage_error("one database stream expected (got %d)", o->noperands);
    a->db = o->operands[0];
    if (a->queries && a->nquery) cl_usage_error("--query and --queries exclude each other");
}

/* The images of a stream as sums of the chosen parts. */
struct set {
    int64_t n, cap;
    int E;
    float *v;      /* [cap,E] */
    char **id;     /* [cap] */
    char **key;    /* [cap] meta value of --match as text, or NULL */
    struct cl_model_info model;
    struct cl_parts_shape shape;
};

static void load_set(struct set *s, const char *path, const struct args *a, const struct cl_parts_shape *want)
{
    struct cl_reader *r;
    struct cl_item it = {0};
    struct cl_parts p = {0};
    struct cl_ablation ab = {0};
    struct cl_err e;
    enum cl_status st;
    const char *name = strcmp(path, "-") == 0 ? "standard input" : path;
    memset(s, 0, sizeof *s);
    if ((st = cl_reader_open(&r, path, &e)) != CL_OK) cl_die_status(st, &e);
    if (strcmp(cl_reader_header(r)->kind, "decompose") != 0)
        cl_die(2, "%s: stream kind is \"%s\", expected \"decompose\" (from clip-decompose)", name, cl_reader_header(r)->kind);
    s->model = cl_reader_header(r)->model;
    while ((st = cl_reader_next(r, &it, &e)) == CL_OK) {
        uint64_t idx = cl_reader_items(r) - 1;
        if (idx == 0) {
            if ((st = cl_parts_shape_of(&it, &s->shape, &e)) != CL_OK) cl_die(2, "%s: item 0 (id \"%s\"): %s", name, it.id, e.msg);
            if (want && (want->E != s->shape.E || want->L != s->shape.L || want->H != s->shape.H))
                cl_die(2, "%s: its parts differ in shape from those of the database", name);
            struct cl_selection all, sel;
            if ((st = cl_parts_build(&p, &s->shape, &e)) != CL_OK || (st = cl_ablation_build(&ab, &s->shape, &e)) != CL_OK ||
                (st = cl_selection_build(&all, &s->shape, &e)) != CL_OK || (st = cl_selection_build(&sel, &s->shape, &e)) != CL_OK)
                cl_die_status(st, &e);
            cl_selection_add(&all, &s->shape, "all", &e);
            for (int i = 0; i < a->nparts; i++)
                if ((st = cl_selection_add(&sel, &s->shape, a->parts[i], &e)) != CL_OK)
                    cl_die(cl_status_exit(st), "--parts %s: %s", a->parts[i], e.msg);
            if (a->nparts) { /* keep the chosen parts, drop (not mean: left out of the sum) the rest */
                cl_ablation_set(&ab, &all, CL_ACT_MEAN);
                cl_ablation_set(&ab, &sel, CL_ACT_KEEP);
            }
            cl_selection_free(&all);
            cl_selection_free(&sel);
            s->E = s->shape.E;
        }
        if ((st = cl_parts_load(&p, &it, name, idx, &e)) != CL_OK) cl_die_status(st, &e);
        if (s->n == s->cap) {
            s->cap = s->cap ? s->cap * 2 : 1024;
            s->v = realloc(s->v, (size_t)s->cap * s->E * sizeof *s->v);
            s->id = realloc(s->id, (size_t)s->cap * sizeof *s->id);
            s->key = realloc(s->key, (size_t)s->cap * sizeof *s->key);
            if (!s->v || !s->id || !s->key) cl_die(3, "out of memory for %" PRId64 " images", s->cap);
        }
        cl_ablation_apply(&ab, &p, s->v + (size_t)s->n * s->E);
        const struct cl_value *kv = a->match ? cl_map_get(&it.meta, a->match) : NULL;
        s->key[s->n] = kv ? cl_value_to_plain(kv) : NULL;
        if (!(s->id[s->n] = strdup(it.id ? it.id : ""))) cl_die(3, "out of memory");
        s->n++;
    }
    if (st != CL_END) cl_die_status(st, &e);
    if (s->n == 0) cl_die(2, "%s: no images", name);
    cl_item_free(&it);
    cl_parts_free(&p);
    cl_ablation_free(&ab);
    cl_reader_close(r);
}

static void center(struct set *s, const double *mean)
{
    for (int64_t i = 0; i < s->n; i++)
        for (int k = 0; k < s->E; k++) s->v[(size_t)i * s->E + k] -= (float)mean[k];
}

static void describe_parts(char *buf, size_t cap, const struct args *a)
{
    size_t at = 0;
    snprintf(buf, cap, "all");
    for (int i = 0; i < a->nparts && at < cap; i++) at += (size_t)snprintf(buf + at, cap - at, "%s%s", i ? "+" : "", a->parts[i]);
}

int main(int argc, char **argv)
{
    struct args a;
    struct set db, qs;
    cl_cli_init(argc, argv);
    parse_args(&a, argc, argv);
    load_set(&db, a.db, &a, NULL);
    struct set *q = &db;
    if (a.queries) {
        load_set(&qs, a.queries, &a, &db.shape);
        const struct cl_model_info *x = &db.model, *y = &qs.model;
        if (x->present && y->present && (strcmp(x->name, y->name) != 0 || x->embed_dim != y->embed_dim || x->layers != y->layers))
            cl_die(2, "model mismatch: %s comes from model \"%s\", %s from \"%s\"", a.db, x->name, a.queries, y->name);
        q = &qs;
    }
    double *mean = calloc((size_t)db.E, sizeof *mean);
    int64_t *idx = malloc((size_t)a.k * sizeof *idx);
    float *sim = malloc((size_t)a.k * sizeof *sim);
    if (!mean || !idx || !sim) cl_die(3, "out of memory");
    for (int64_t i = 0; !a.no_center && i < db.n; i++)
        for (int k = 0; k < db.E; k++) mean[k] += db.v[(size_t)i * db.E + k] / (double)db.n;
    center(&db, mean);
    if (q != &db) center(q, mean);
    /* which queries: the named ids (resolved before any output), else all */
    int64_t nq = a.nquery ? a.nquery : q->n;
    int64_t *qrow = malloc((size_t)(a.nquery ? a.nquery : 1) * sizeof *qrow);
    if (!qrow) cl_die(3, "out of memory");
    for (int j = 0; j < a.nquery; j++) {
        qrow[j] = -1;
        for (int64_t i = 0; i < db.n && qrow[j] < 0; i++) if (strcmp(db.id[i], a.query[j]) == 0) qrow[j] = i;
        if (qrow[j] < 0) cl_die(2, "%s: no item with id \"%s\"", a.db, a.query[j]);
    }
    double hits = 0, chance = 0, counted = 0;
    char parts[1024];
    describe_parts(parts, sizeof parts, &a);
    if (!a.match) printf("query\trank\tneighbour\tsimilarity\n");
    for (int64_t j = 0; j < nq; j++) {
        int64_t qi = a.nquery ? qrow[j] : j;
        int64_t self = q == &db ? qi : -1;
        int found = cl_nearest(db.v, db.n, db.E, q->v + (size_t)qi * db.E, (int)a.k, self, idx, sim);
        if (!a.match) {
            for (int r = 0; r < found; r++) printf("%s\t%d\t%s\t%.6f\n", q->id[qi], r + 1, db.id[idx[r]], sim[r]);
            continue;
        }
        const char *key = q->key[qi];
        if (!key || !found) continue;
        int64_t same = 0;
        for (int64_t i = 0; i < db.n; i++) same += i != self && db.key[i] && strcmp(db.key[i], key) == 0;
        for (int r = 0; r < found; r++) hits += db.key[idx[r]] && strcmp(db.key[idx[r]], key) == 0 ? 1.0 / found : 0;
        chance += (double)same / (double)(db.n - (self >= 0));
        counted++;
    }
    if (a.match) {
        if (counted == 0) cl_die(2, "no query has a meta \"%s\"", a.match);
        printf("parts\tkey\tk\tqueries\tprecision\tchance\n%s\t%s\t%ld\t%.0f\t%.4f\t%.4f\n", parts, a.match, a.k, counted,
               hits / counted, chance / counted);
    }
    if (fflush(stdout) != 0 || ferror(stdout)) cl_die(3, "error writing standard output");
    cl_opts_free(&a.opts);
    return 0;
}
