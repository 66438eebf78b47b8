/* clip-ablate - zero-shot accuracy (overall, per group, worst group) of decomposed
 * image embeddings re-summed after mean-ablating or replacing chosen parts. */
#include <cjson/cJSON.h>
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
"Usage: clip-ablate -c CLASSIFIER.cts [OPTIONS] [PARTS.cts]\n"
"Zero-shot accuracy of decomposed image embeddings (clip-decompose, labels in item\n"
"meta \"label\", groups in \"group\") re-summed after interventions on their parts.\n"
"PARTS '-' or absent: standard input (spooled to a temporary file: means need two passes).\n"
"\n"
"Interventions (they combine into one; the baseline row is always reported):\n"
"  --mean PARTS         mean-ablate these parts: replace each by its mean over the images\n"
"  --keep PARTS         keep only these parts and mean-ablate every other one\n"
"  --replace FILE       replace every head of a textspan stream (clip-textspan) by its\n"
"                       reconstruction: the stream's mean + projection onto its basis\n"
"  --sweep attn|mlps    add a row per layer k: the intervention plus mean-ablation of the\n"
"                       attention (or MLP) outputs of every layer up to k (P1's curve)\n"
"  --means-from FILE    means from this decompose stream (a held-out set) instead of PARTS\n"
"PARTS (flags repeat and add up): heads:L.H,L.H  heads:all  layers:A-B  mlps:A-B  mlps:all\n"
"  cls:A-B (the CLS-to-CLS slice of heads; needs decompose --tokens)  embed  rest  bias  all\n"
"  Layer numbers are the model's (a stream of layers 8-11 has layers:8-11).\n"
"\n"
"Output: TSV on stdout, one row per evaluation: intervention, images, accuracy,\n"
"worst_group, worst_group_accuracy, then group_G for every group (accuracies in %%).\n"
"  --json               JSON instead of TSV\n"
"  -o FILE              the ablated embeddings of the intervention row as a kind \"image\"\n"
"                       stream (\"embedding\" [E], not renormalised; item meta kept);\n"
"                       with -o - the table goes to stderr\n"
"  -c, --classifier F   zero-shot classifier stream (clip-encode --classes; required)\n"
"  --level N            zstd level of -o, 0 = uncompressed (default: %d)\n"
"  -q, --quiet          no messages on stderr\n"
"  -h, --help, --version\n"
"\n"
"The classifier, the parts and every other input must come from the same model.\n"
"Exit status: 0 ok, 1 usage, 2 bad input (wrong kind, model mismatch, missing label), 3 I/O.\n"
"Examples:\n"
"  clip-ablate -c classes.cts parts.cts --mean mlps:all\n"
"  clip-ablate -c classes.cts parts.cts --sweep attn --json\n"
"  clip-ablate -c spur.cts test.cts --mean heads:3.1,3.2 --means-from train.cts\n"
"  clip-ablate -c classes.cts parts.cts --replace basis.cts --mean layers:0-7\n",
            CL_STREAM_DEFAULT_LEVEL);
}

#define MAX_SPECS 256

struct args {
    const char *input, *classifier, *replace, *means_from, *output, *sweep;
    const char *mean[MAX_SPECS], *keep[MAX_SPECS];
    int nmean, nkeep, json;
    long level;
    struct cl_opts opts;
};

static void parse_args(struct args *a, int argc, char **argv)
{
    memset(a, 0, sizeof *a);
    a->level = CL_STREAM_DEFAULT_LEVEL;
    struct cl_opts *o = &a->opts;
    cl_opts_init(o, argc, argv);
    while (cl_opts_next(o)) {
        if (cl_opt_is(o, "-h", "--help")) { usage(stdout); exit(0); }
        else if (cl_opt_is(o, NULL, "--version")) { printf("clip-ablate %s\n", CL_VERSION); exit(0); }
        else if (cl_opt_is(o, "-c", "--classifier")) a->classifier = cl_opt_value(o);
        else if (cl_opt_is(o, "-o", "--output")) a->output = cl_opt_value(o);
        else if (cl_opt_is(o, NULL, "--replace")) a->replace = cl_opt_value(o);
        else if (cl_opt_is(o, NULL, "--means-from")) a->means_from = cl_opt_value(o);
        else if (cl_opt_is(o, NULL, "--sweep")) a->sweep = cl_opt_value(o);
        else if (cl_opt_is(o, NULL, "--json")) a->json = 1;
        else if (cl_opt_is(o, NULL, "--level")) a->level = cl_flag_long("--level", cl_opt_value(o), 0, 19);
        else if (cl_opt_is(o, NULL, "--mean")) {
            if (a->nmean == MAX_SPECS) cl_usage_error("too many --mean flags (at most %d)", MAX_SPECS);
            a->mean[a->nmean++] = cl_opt_value(o);
        } else if (cl_opt_is(o, NULL, "--keep")) {
            if (a->nkeep == MAX_SPECS) cl_usage_error("too many --keep flags (at most %d)", MAX_SPECS);
            a->keep[a->nkeep++] = cl_opt_value(o);
        } else if (cl_opt_is(o, "-q", "--quiet")) cl_quiet = 1;
        else cl_opt_unknown(o);
    }
    if (o->noperands > 1) cl_usage_error("one parts stream at most (got %d)", o->noperands);
    a->input = o->noperands ? o->operands[0] : "-";
    if (!a->classifier) cl_usage_error("a classifier is required (-c FILE, from clip-encode --classes)");
    if (a->sweep && strcmp(a->sweep, "attn") != 0 && strcmp(a->sweep, "mlps") != 0)
        cl_usage_error("--sweep takes attn or mlps, not '%s'", a->sweep);
}

/* ------------------------------------------------------------ inputs */


static struct cl_reader *open_kind(const char *path, const char *kind, const char *hint)
{
    struct cl_reader *r;
    struct cl_err e;
    enum cl_status s;
    if ((s = cl_reader_open(&r, path, &e)) != CL_OK) cl_die_status(s, &e);
    if (strcmp(cl_reader_header(r)->kind, kind) != 0)
        cl_die(2, "%s: stream kind is \"%s\", expected \"%s\" (%s)", path, cl_reader_header(r)->kind, kind, hint);
    return r;
}

/* stdin cannot be read twice: copy it to an unnamed temporary file. */
static FILE *spool_stdin(void)
{
    FILE *tmp = tmpfile();
    char buf[1 << 16];
    size_t n;
    if (!tmp) cl_die(3, "cannot create a temporary file to spool standard input");
    while ((n = fread(buf, 1, sizeof buf, stdin)) > 0)
        if (fwrite(buf, 1, n, tmp) != n) cl_die(3, "cannot spool standard input: write failed");
    if (ferror(stdin)) cl_die(3, "error reading standard input");
    return tmp;
}

struct classes {
    int K, E;
    float *emb;  /* [K,E] */
    struct cl_model_info model;
};

static void load_classes(struct classes *c, const char *path)
{
    struct cl_reader *r = open_kind(path, "classifier", "from clip-encode --classes --templates");
    struct cl_item it = {0};
    struct cl_err e;
    enum cl_status s;
    memset(c, 0, sizeof *c);
    c->model = cl_reader_header(r)->model;
    while ((s = cl_reader_next(r, &it, &e)) == CL_OK) {
        const struct cl_tensor *t = cl_item_get(&it, "embedding");
        uint64_t i = cl_reader_items(r) - 1;
        if (!t || t->ndim != 1 || t->shape[0] < 1 || t->shape[0] > CL_PARTS_MAX_DIM || t->dtype == CL_I32 ||
            t->dtype == CL_U8 || (c->K && t->shape[0] != c->E))
            cl_die(2, "%s: class %" PRIu64 " (id \"%s\") has no float \"embedding\" [E]%s", path, i, it.id,
                   c->K ? " of the first class's size" : "");
        int64_t label = (int64_t)i;
        if (cl_map_get(&it.meta, "label") && (cl_map_get_int(&it.meta, "label", &label) != 0 || label != (int64_t)i))
            cl_die(2, "%s: class %" PRIu64 " (id \"%s\") has meta label %" PRId64 ", expected its position %" PRIu64,
                   path, i, it.id, label, i);
        c->E = (int)t->shape[0];
        float *p = realloc(c->emb, (size_t)(c->K + 1) * c->E * sizeof *p);
        if (!p) cl_die(3, "out of memory");
        c->emb = p;
        cl_convert_to_f32(c->emb + (size_t)c->K * c->E, t->data, t->dtype, (size_t)c->E);
        c->K++;
    }
    if (s != CL_END) cl_die_status(s, &e);
    if (c->K < 1) cl_die(2, "%s: the classifier has no classes", path);
    cl_item_free(&it);
    cl_reader_close(r);
}

/* ------------------------------------------------------------ evaluations */

struct row {
    char name[512];
    struct cl_ablation ab;
    float *konst;      /* [E] the mean-ablated parts' sum */
    int *pred;         /* [cap] predictions */
};

struct eval {
    struct cl_parts_shape shape;
    int nrows, main_row;
    struct row *rows;
    int64_t n, cap;
    int *label, *group; /* [cap] */
};

static void set_specs(struct cl_ablation *ab, const char *flag, const char *const *specs, int n, enum cl_action act)
{
    struct cl_selection sel;
    struct cl_err e;
    enum cl_status s;
    if ((s = cl_selection_build(&sel, &ab->shape, &e)) != CL_OK) cl_die_status(s, &e);
    for (int i = 0; i < n; i++)
        if ((s = cl_selection_add(&sel, &ab->shape, specs[i], &e)) != CL_OK)
            cl_die(cl_status_exit(s), "%s %s: %s", flag, specs[i], e.msg);
    cl_ablation_set(ab, &sel, act);
    cl_selection_free(&sel);
}

/* The intervention of the flags: --keep (everything else mean-ablated), then
 * --mean, then --replace (a head named by both --mean and --replace is replaced). */
static void configure(struct cl_ablation *ab, const struct args *a, const struct cl_model_info *pm)
{
    struct cl_err e;
    enum cl_status s;
    if (a->nkeep) {
        static const char *const all[] = {"all"};
        set_specs(ab, "--keep", all, 1, CL_ACT_MEAN);
        set_specs(ab, "--keep", a->keep, a->nkeep, CL_ACT_KEEP);
    }
    set_specs(ab, "--mean", a->mean, a->nmean, CL_ACT_MEAN);
    if (!a->replace) return;
    struct cl_reader *r = open_kind(a->replace, "textspan", "from clip-textspan");
    struct cl_item it = {0};
    cl_require_same_model(pm, a->input, &cl_reader_header(r)->model, a->replace);
    while ((s = cl_reader_next(r, &it, &e)) == CL_OK) {
        int64_t l, h;
        const struct cl_tensor *b = cl_item_get(&it, "basis"), *m = cl_item_get(&it, "mean");
        if (cl_map_get_int(&it.meta, "layer", &l) != 0 || cl_map_get_int(&it.meta, "head", &h) != 0 || l < 0 || h < 0 ||
            l > INT32_MAX || h > INT32_MAX || !b || !m || b->dtype != CL_F32 || m->dtype != CL_F32 || b->ndim != 2 ||
            b->shape[1] != ab->shape.E || m->ndim != 1 || m->shape[0] != ab->shape.E)
            cl_die(2, "%s: item %" PRIu64 " (id \"%s\"): expected meta layer, head and f32 \"basis\" [m,%d], \"mean\" [%d]",
                   a->replace, cl_reader_items(r) - 1, it.id, ab->shape.E, ab->shape.E);
        if ((s = cl_ablation_replace(ab, (int)l, (int)h, b->data, (int)b->shape[0], m->data, &e)) != CL_OK)
            cl_die(cl_status_exit(s), "%s: %s", a->replace, e.msg);
    }
    if (s != CL_END) cl_die_status(s, &e);
    cl_item_free(&it);
    cl_reader_close(r);
}

static void describe_flags(char *buf, size_t cap, const struct args *a)
{
    size_t at = 0;
    buf[0] = 0;
    for (int i = 0; i < a->nkeep && at < cap; i++) at += (size_t)snprintf(buf + at, cap - at, "%skeep %s", at ? " + " : "", a->keep[i]);
    for (int i = 0; i < a->nmean && at < cap; i++) at += (size_t)snprintf(buf + at, cap - at, "%smean %s", at ? " + " : "", a->mean[i]);
    if (a->replace && at < cap) snprintf(buf + at, cap - at, "%sreplace %s", at ? " + " : "", a->replace);
}

static void eval_build(struct eval *ev, const struct args *a, const struct cl_parts_shape *sh,
                       const struct cl_model_info *pm)
{
    struct cl_err e;
    enum cl_status s;
    int has_int = a->nmean || a->nkeep || a->replace;
    int nsweep = a->sweep ? sh->L : 0;
    memset(ev, 0, sizeof *ev);
    ev->shape = *sh;
    ev->nrows = 1 + has_int + nsweep;
    ev->main_row = has_int ? 1 : 0;
    ev->rows = calloc((size_t)ev->nrows, sizeof *ev->rows);
    if (!ev->rows) cl_die(3, "out of memory");
    if (a->sweep && strcmp(a->sweep, "attn") == 0 && !sh->has_heads) cl_die(2, "%s: --sweep attn: the stream has no heads", a->input);
    if (a->sweep && strcmp(a->sweep, "mlps") == 0 && !sh->has_mlps) cl_die(2, "%s: --sweep mlps: the stream has no mlps", a->input);
    for (int r = 0; r < ev->nrows; r++) {
        struct row *row = &ev->rows[r];
        if ((s = cl_ablation_build(&row->ab, sh, &e)) != CL_OK) cl_die_status(s, &e);
        if (!(row->konst = calloc((size_t)sh->E, sizeof *row->konst))) cl_die(3, "out of memory");
        if (r == 0) { snprintf(row->name, sizeof row->name, "baseline"); continue; }
        configure(&row->ab, a, pm);
        describe_flags(row->name, sizeof row->name, a);
        if (r > has_int) {
            int k = r - 1 - has_int;
            size_t at = strlen(row->name);
            snprintf(row->name + at, sizeof row->name - at, "%smean %s:%d-%d", at ? " + " : "",
                     strcmp(a->sweep, "attn") == 0 ? "layers" : "mlps", sh->layers[0], sh->layers[k]);
            for (int t = 0; t <= k; t++) {
                if (strcmp(a->sweep, "attn") == 0)
                    for (int h = 0; h < sh->H; h++) row->ab.head[t * sh->H + h] = CL_ACT_MEAN;
                else
                    row->ab.mlp[t] = CL_ACT_MEAN;
            }
        }
    }
}

static void eval_push(struct eval *ev, const struct cl_item *it, const char *path, uint64_t index)
{
    int64_t label, group = -1;
    if (cl_map_get_int(&it->meta, "label", &label) != 0)
        cl_die(2, "%s: item %" PRIu64 " (id \"%s\") has no integer meta \"label\" (clip-decompose --manifest carries labels)",
               path, index, it->id);
    if (cl_map_get(&it->meta, "group") && (cl_map_get_int(&it->meta, "group", &group) != 0 || group < 0 || group >= CL_MAX_GROUPS))
        cl_die(2, "%s: item %" PRIu64 " (id \"%s\"): meta \"group\" must be an integer in 0..%d", path, index, it->id,
               CL_MAX_GROUPS - 1);
    if (ev->n == ev->cap) {
        ev->cap = ev->cap ? ev->cap * 2 : 1024;
        ev->label = realloc(ev->label, (size_t)ev->cap * sizeof *ev->label);
        ev->group = realloc(ev->group, (size_t)ev->cap * sizeof *ev->group);
        if (!ev->label || !ev->group) cl_die(3, "out of memory");
        for (int r = 0; r < ev->nrows; r++)
            if (!(ev->rows[r].pred = realloc(ev->rows[r].pred, (size_t)ev->cap * sizeof(int)))) cl_die(3, "out of memory");
    }
    ev->label[ev->n] = (int)(label > INT32_MAX ? -1 : label < 0 ? -1 : label);
    ev->group[ev->n] = (int)group;
    if (label < 0 || label > INT32_MAX)
        cl_die(2, "%s: item %" PRIu64 " (id \"%s\"): meta \"label\" %" PRId64 " is negative or too large", path, index,
               it->id, label);
    ev->n++;
}

/* ------------------------------------------------------------ reports */

static void report_tsv(FILE *f, const struct eval *ev, struct cl_accuracy *acc)
{
    int G = acc[0].ngroups;
    fprintf(f, "intervention\timages\taccuracy\tworst_group\tworst_group_accuracy");
    for (int g = 0; g < G; g++) if (acc[0].group_n[g]) fprintf(f, "\tgroup_%d", g);
    fputc('\n', f);
    for (int r = 0; r < ev->nrows; r++) {
        const struct cl_accuracy *x = &acc[r];
        fprintf(f, "%s\t%" PRId64 "\t%.2f", ev->rows[r].name, x->n, 100.0 * (double)x->correct / (double)x->n);
        if (x->worst >= 0) fprintf(f, "\t%d\t%.2f", x->worst, cl_accuracy_group(x, x->worst));
        else fprintf(f, "\t-\t-");
        for (int g = 0; g < G; g++) if (x->group_n[g]) fprintf(f, "\t%.2f", cl_accuracy_group(x, g));
        fputc('\n', f);
    }
}

static void report_json(FILE *f, const struct eval *ev, struct cl_accuracy *acc, int K)
{
    cJSON *root = cJSON_CreateObject(), *rows;
    cJSON_AddNumberToObject(root, "images", (double)ev->n);
    cJSON_AddNumberToObject(root, "classes", K);
    rows = cJSON_AddArrayToObject(root, "rows");
    for (int r = 0; r < ev->nrows; r++) {
        const struct cl_accuracy *x = &acc[r];
        cJSON *o = cJSON_CreateObject(), *gs;
        cJSON_AddStringToObject(o, "intervention", ev->rows[r].name);
        cJSON_AddNumberToObject(o, "images", (double)x->n);
        cJSON_AddNumberToObject(o, "accuracy", 100.0 * (double)x->correct / (double)x->n);
        if (x->worst >= 0) {
            cJSON_AddNumberToObject(o, "worst_group", x->worst);
            cJSON_AddNumberToObject(o, "worst_group_accuracy", cl_accuracy_group(x, x->worst));
        }
        gs = cJSON_AddArrayToObject(o, "groups");
        for (int g = 0; g < x->ngroups; g++) {
            if (!x->group_n[g]) continue;
            cJSON *go = cJSON_CreateObject();
            cJSON_AddNumberToObject(go, "group", g);
            cJSON_AddNumberToObject(go, "images", (double)x->group_n[g]);
            cJSON_AddNumberToObject(go, "accuracy", cl_accuracy_group(x, g));
            cJSON_AddItemToArray(gs, go);
        }
        cJSON_AddItemToArray(rows, o);
    }
    char *txt = cJSON_Print(root);
    if (!txt) cl_die(3, "out of memory");
    fprintf(f, "%s\n", txt);
    free(txt);
    cJSON_Delete(root);
}

/* ------------------------------------------------------------ passes */

/* Means of every part over a decompose stream of shape sh. */
static void means_of(struct cl_parts_mean *pm, struct cl_reader *r, const char *path, const struct cl_parts_shape *sh)
{
    struct cl_parts p;
    struct cl_item it = {0};
    struct cl_err e;
    enum cl_status s;
    if ((s = cl_parts_build(&p, sh, &e)) != CL_OK || (s = cl_parts_mean_build(pm, sh, &e)) != CL_OK) cl_die_status(s, &e);
    while ((s = cl_reader_next(r, &it, &e)) == CL_OK) {
        if ((s = cl_parts_load(&p, &it, path, cl_reader_items(r) - 1, &e)) != CL_OK) cl_die_status(s, &e);
        cl_parts_mean_add(pm, &p);
    }
    if (s != CL_END) cl_die_status(s, &e);
    if ((s = cl_parts_mean_finish(pm, &e)) != CL_OK) cl_die(2, "%s: %s", path, e.msg);
    cl_item_free(&it);
    cl_parts_free(&p);
}

/* The shape of a stream from its first item (the reader is reopened by the caller). */
static void shape_of(struct cl_reader *r, const char *path, struct cl_parts_shape *sh)
{
    struct cl_item it = {0};
    struct cl_err e;
    enum cl_status s = cl_reader_next(r, &it, &e);
    if (s == CL_END) cl_die(2, "%s: no images", path);
    if (s != CL_OK) cl_die_status(s, &e);
    if ((s = cl_parts_shape_of(&it, sh, &e)) != CL_OK) cl_die(2, "%s: item 0 (id \"%s\"): %s", path, it.id, e.msg);
    cl_item_free(&it);
}

static struct cl_reader *reopen(FILE *spool, const char *path)
{
    struct cl_reader *r;
    struct cl_err e;
    enum cl_status s;
    if (spool) {
        rewind(spool);
        s = cl_reader_open_fp(&r, spool, "standard input", &e);
    } else {
        s = cl_reader_open(&r, path, &e);
    }
    if (s != CL_OK) cl_die_status(s, &e);
    return r;
}

static int same_shape(const struct cl_parts_shape *x, const struct cl_parts_shape *y)
{
    if (x->L != y->L || x->H != y->H || x->T != y->T || x->E != y->E || x->has_heads != y->has_heads ||
        x->has_mlps != y->has_mlps || x->has_embed != y->has_embed || x->has_rest != y->has_rest ||
        x->has_bias != y->has_bias)
        return 0;
    return memcmp(x->layers, y->layers, (size_t)x->L * sizeof *x->layers) == 0;
}

/* Pass 1: kind, models, shapes, means (from the input or --means-from). */
struct run {
    struct args a;
    struct classes cls;
    FILE *spool;                /* stdin copied, or NULL */
    const char *name;           /* the input's name in messages */
    struct cl_model_info model; /* the parts' model */
    struct cl_parts_shape shape;
    struct cl_parts_mean means;
    struct eval ev;
};

static void prepare(struct run *R)
{
    struct cl_parts_shape msh;
    struct cl_reader *r = reopen(R->spool, R->a.input);
    if (strcmp(cl_reader_header(r)->kind, "decompose") != 0)
        cl_die(2, "%s: stream kind is \"%s\", expected \"decompose\" (from clip-decompose)", R->name,
               cl_reader_header(r)->kind);
    R->model = cl_reader_header(r)->model;
    cl_require_same_model(&R->model, R->name, &R->cls.model, R->a.classifier);
    shape_of(r, R->name, &R->shape);
    cl_reader_close(r);
    if (R->shape.E != R->cls.E)
        cl_die(2, "%s has embedding dim %d, the classifier %s has %d", R->name, R->shape.E, R->a.classifier, R->cls.E);
    const char *mpath = R->a.means_from ? R->a.means_from : R->name;
    if (R->a.means_from) {
        r = open_kind(R->a.means_from, "decompose", "from clip-decompose");
        cl_require_same_model(&R->model, R->name, &cl_reader_header(r)->model, R->a.means_from);
        shape_of(r, R->a.means_from, &msh);
        cl_reader_close(r);
        if (!same_shape(&R->shape, &msh))
            cl_die(2, "--means-from %s: its parts differ in shape from those of %s", R->a.means_from, R->name);
        r = open_kind(R->a.means_from, "decompose", "from clip-decompose");
    } else {
        r = reopen(R->spool, R->a.input);
    }
    means_of(&R->means, r, mpath, &R->shape);
    cl_reader_close(r);
    eval_build(&R->ev, &R->a, &R->shape, &R->model);
    for (int k = 0; k < R->ev.nrows; k++)
        cl_ablation_constant(&R->ev.rows[k].ab, &R->means.mean, R->ev.rows[k].konst);
}

static struct cl_writer *open_embeddings(struct run *R, struct cl_output *out)
{
    struct cl_header oh;
    struct cl_writer *w;
    struct cl_err e;
    enum cl_status s;
    char desc[600];
    if ((s = cl_output_open(out, R->a.output, 1, &e)) != CL_OK) cl_die_status(s, &e);
    cl_header_init(&oh, "image");
    oh.model = R->model;
    cl_ablation_describe(&R->ev.rows[R->ev.main_row].ab, desc, sizeof desc);
    cl_map_set_str(&oh.meta, "ablation", R->ev.rows[R->ev.main_row].name);
    cl_map_set_str(&oh.meta, "ablation_parts", desc);
    if ((s = cl_writer_open(&w, out->fp, &oh, (int)R->a.level, &e)) != CL_OK) cl_die_status(s, &e);
    cl_header_free(&oh);
    return w;
}

/* Pass 2: every row's prediction for every image; the intervention row's embeddings to w. */
static void evaluate(struct run *R, struct cl_writer *w)
{
    struct cl_parts p;
    struct cl_item it = {0};
    struct cl_err e;
    enum cl_status s;
    struct eval *ev = &R->ev;
    int E = R->shape.E;
    float *v = malloc((size_t)E * sizeof *v); /* [E] */
    if (!v || (s = cl_parts_build(&p, &R->shape, &e)) != CL_OK) cl_die(3, "out of memory");
    struct cl_reader *r = reopen(R->spool, R->a.input);
    while ((s = cl_reader_next(r, &it, &e)) == CL_OK) {
        uint64_t idx = cl_reader_items(r) - 1;
        if ((s = cl_parts_load(&p, &it, R->name, idx, &e)) != CL_OK) cl_die_status(s, &e);
        eval_push(ev, &it, R->name, idx);
        if (ev->label[ev->n - 1] >= R->cls.K)
            cl_die(2, "%s: item %" PRIu64 " (id \"%s\") has label %d, the classifier has %d classes", R->name, idx,
                   it.id, ev->label[ev->n - 1], R->cls.K);
        for (int k = 0; k < ev->nrows; k++) {
            cl_ablation_apply(&ev->rows[k].ab, &p, v);
            for (int i = 0; i < E; i++) v[i] += ev->rows[k].konst[i];
            ev->rows[k].pred[ev->n - 1] = cl_zeroshot_predict(R->cls.emb, R->cls.K, E, v);
            if (w && k == ev->main_row) {
                struct cl_tensor t = {0};
                t.name = "embedding"; t.dtype = CL_F32; t.ndim = 1; t.shape[0] = E; t.data = v;
                t.nbytes = (size_t)E * sizeof *v;
                if ((s = cl_writer_item_parts(w, it.id, &it.meta, &t, 1, &e)) != CL_OK) cl_die_status(s, &e);
            }
        }
    }
    if (s != CL_END) cl_die_status(s, &e);
    cl_reader_close(r);
    cl_item_free(&it);
    cl_parts_free(&p);
    free(v);
}

int main(int argc, char **argv)
{
    static struct run R;
    struct cl_output out = {0};
    struct cl_writer *w = NULL;
    struct cl_err e;
    enum cl_status s;
    cl_cli_init(argc, argv);
    parse_args(&R.a, argc, argv);
    load_classes(&R.cls, R.a.classifier);
    R.spool = strcmp(R.a.input, "-") == 0 ? spool_stdin() : NULL;
    R.name = R.spool ? "standard input" : R.a.input;
    prepare(&R);
    if (R.a.output) w = open_embeddings(&R, &out);
    evaluate(&R, w);
    struct cl_accuracy *acc = calloc((size_t)R.ev.nrows, sizeof *acc);
    if (!acc) cl_die(3, "out of memory");
    for (int k = 0; k < R.ev.nrows; k++)
        if ((s = cl_accuracy_tally(&acc[k], R.ev.rows[k].pred, R.ev.label, R.ev.group, R.ev.n, &e)) != CL_OK)
            cl_die_status(s, &e);
    if (w && ((s = cl_writer_close(w, &e)) != CL_OK || (s = cl_output_commit(&out, &e)) != CL_OK)) cl_die_status(s, &e);
    FILE *table = w && out.is_stdout ? stderr : stdout;
    if (R.a.json) report_json(table, &R.ev, acc, R.cls.K);
    else report_tsv(table, &R.ev, acc);
    if (fflush(stdout) != 0 || ferror(stdout)) cl_die(3, "error writing standard output");
    cl_info("%" PRId64 " images, %d classes, means over %" PRId64 " images of %s", R.ev.n, R.cls.K, R.means.n,
            R.a.means_from ? R.a.means_from : R.name);
    for (int k = 0; k < R.ev.nrows; k++) cl_accuracy_free(&acc[k]);
    free(acc);
    if (R.spool) fclose(R.spool);
    cl_opts_free(&R.a.opts);
    return 0;
}
