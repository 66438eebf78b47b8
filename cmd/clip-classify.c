/* clip-classify - zero-shot classification of embeddings against a classifier stream:
 * accuracy overall, per group and for the worst group; optional per-item predictions. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "stream.h"
#include "zeroshot.h"

static void usage(FILE *f)
{
    fprintf(f,
"Usage: clip-classify -c CLASSIFIER.cts [OPTIONS] [FILE]\n"
"Zero-shot classify every item's \"embedding\" (an image, decompose or ablated stream;\n"
"FILE '-' or none: stdin) against a classifier stream (clip-encode --classes), and\n"
"report accuracy against meta \"label\": overall, per meta \"group\", and the worst group.\n"
"\n"
"Options:\n"
"  -c, --classifier FILE  the classifier stream (one item per class, in label order)\n"
"  --predictions FILE     also write per-item TSV: id, label, predicted label, class, score\n"
"  --json                 the report as JSON instead of TSV\n"
"  -q, --quiet            no summary on stderr\n"
"  -h, --help, --version\n"
"\n"
"Report (stdout, TSV with a header line): scope, items, correct, accuracy; scope is 'all',\n"
"'group G' for each group, and 'worst-group G'. Items without a label are predicted but\n"
"not scored. Streams made with different models are refused (exit 2).\n"
"Example:\n"
"  clip-encode --manifest test.tsv | clip-classify -c classes.cts\n");
}

struct args {
    const char *classifier, *predictions, *input;
    int json;
    struct cl_opts opts;
};

static void parse_args(struct args *a, int argc, char **argv)
{
    memset(a, 0, sizeof *a);
    struct cl_opts *o = &a->opts;
    cl_opts_init(o, argc, argv);
    while (cl_opts_next(o)) {
        if (cl_opt_is(o, "-h", "--help")) { usage(stdout); exit(0); }
        else if (cl_opt_is(o, NULL, "--version")) { printf("clip-classify %s\n", CL_VERSION); exit(0); }
        else if (cl_opt_is(o, "-c", "--classifier")) a->classifier = cl_opt_value(o);
        else if (cl_opt_is(o, NULL, "--predictions")) a->predictions = cl_opt_value(o);
        else if (cl_opt_is(o, NULL, "--json")) a->json = 1;
        else if (cl_opt_is(o, "-q", "--quiet")) cl_quiet = 1;
        else cl_opt_unknown(o);
    }
    if (!a->classifier) cl_usage_error("missing -c CLASSIFIER.cts");
    if (o->noperands > 1) cl_usage_error("at most one input FILE");
    a->input = o->noperands ? o->operands[0] : "-";
}

struct classifier {
    int K, E;
    float *W;      /* [K, E] */
    char **names;  /* [K] */
};

static void load_classifier(struct classifier *c, const char *path, struct cl_header *h)
{
    struct cl_reader *r;
    struct cl_item it = {0};
    struct cl_err e;
    enum cl_status s;
    memset(c, 0, sizeof *c);
    if ((s = cl_reader_open(&r, path, &e)) != CL_OK) cl_die_status(s, &e);
    *h = *cl_reader_header(r);
    cl_value_copy(&h->meta, &cl_reader_header(r)->meta);
    if (strcmp(h->kind, "classifier") != 0)
        cl_die(2, "%s: stream kind is \"%s\", expected \"classifier\" (from clip-encode --classes)", path, h->kind);
    int cap = 0;
    while ((s = cl_reader_next(r, &it, &e)) == CL_OK) {
        const struct cl_tensor *t = cl_item_get(&it, "embedding");
        if (!t || t->ndim != 1 || (c->K && t->shape[0] != c->E))
            cl_die(2, "%s: class %d (id \"%s\") has no \"embedding\" vector of the common size", path, c->K, it.id);
        int64_t label;
        if (cl_map_get_int(&it.meta, "label", &label) == 0 && label != c->K)
            cl_die(2, "%s: class %d (id \"%s\") has label %" PRId64 ": classes must come in label order", path,
                   c->K, it.id, label);
        if (c->K == cap) {
            cap = cap ? cap * 2 : 64;
            c->W = realloc(c->W, (size_t)cap * (size_t)t->shape[0] * sizeof *c->W);
            c->names = realloc(c->names, (size_t)cap * sizeof *c->names);
            if (!c->W || !c->names) cl_die(3, "out of memory");
        }
        c->E = (int)t->shape[0];
        cl_convert_to_f32(c->W + (size_t)c->K * c->E, t->data, t->dtype, (size_t)c->E);
        const char *text = cl_map_get_str(&it.meta, "text");
        if (!(c->names[c->K] = strdup(text ? text : it.id))) cl_die(3, "out of memory");
        c->K++;
    }
    if (s != CL_END) cl_die_status(s, &e);
    if (c->K == 0) cl_die(2, "%s: the classifier has no classes", path);
    cl_item_free(&it);
    cl_reader_close(r);
}


static void report(const struct cl_zs_tally *t, int json)
{
    double wa;
    int w = cl_zs_worst_group(t, &wa);
    if (json) {
        printf("{\"items\": %" PRIu64 ", \"correct\": %" PRIu64 ", \"accuracy\": %.6f, \"unlabelled\": %" PRIu64
               ", \"groups\": [", t->n, t->correct, cl_zs_accuracy(t), t->unlabelled);
        for (int i = 0; i < t->ngroups; i++)
            printf("%s{\"group\": %" PRId64 ", \"items\": %" PRIu64 ", \"correct\": %" PRIu64 ", \"accuracy\": %.6f}",
                   i ? ", " : "", t->groups[i].group, t->groups[i].n, t->groups[i].correct,
                   (double)t->groups[i].correct / (double)t->groups[i].n);
        printf("]");
        if (w >= 0) printf(", \"worst_group\": %" PRId64 ", \"worst_group_accuracy\": %.6f", t->groups[w].group, wa);
        printf("}\n");
        return;
    }
    printf("scope\titems\tcorrect\taccuracy\n");
    printf("all\t%" PRIu64 "\t%" PRIu64 "\t%.6f\n", t->n, t->correct, cl_zs_accuracy(t));
    for (int i = 0; i < t->ngroups; i++)
        printf("group %" PRId64 "\t%" PRIu64 "\t%" PRIu64 "\t%.6f\n", t->groups[i].group, t->groups[i].n,
               t->groups[i].correct, (double)t->groups[i].correct / (double)t->groups[i].n);
    if (w >= 0)
        printf("worst-group %" PRId64 "\t%" PRIu64 "\t%" PRIu64 "\t%.6f\n", t->groups[w].group, t->groups[w].n,
               t->groups[w].correct, wa);
}

int main(int argc, char **argv)
{
    struct args a;
    struct classifier c;
    struct cl_header ch;
    struct cl_reader *r;
    struct cl_item it = {0};
    struct cl_zs_tally tally = {0};
    struct cl_output pred = {0};
    struct cl_err e;
    enum cl_status s;
    cl_cli_init(argc, argv);
    parse_args(&a, argc, argv);
    load_classifier(&c, a.classifier, &ch);
    if ((s = cl_reader_open(&r, a.input, &e)) != CL_OK) cl_die_status(s, &e);
    cl_require_same_model(&cl_reader_header(r)->model, a.input, &ch.model, a.classifier);
    if (a.predictions) {
        if ((s = cl_output_open(&pred, a.predictions, 0, &e)) != CL_OK) cl_die_status(s, &e);
        fprintf(pred.fp, "id\tlabel\tpred\tclass\tscore\n");
    }
    while ((s = cl_reader_next(r, &it, &e)) == CL_OK) {
        const struct cl_tensor *t = cl_item_get(&it, "embedding");
        if (!t || t->ndim != 1 || t->shape[0] != c.E)
            cl_die(2, "%s: item %" PRIu64 " (id \"%s\") has no \"embedding\" of size %d (the classifier's)", a.input,
                   cl_reader_items(r) - 1, it.id, c.E);
        float x[8192], score;
        if (c.E > 8192) cl_die(2, "embedding size %d is above 8192", c.E);
        cl_convert_to_f32(x, t->data, t->dtype, (size_t)c.E);
        int k = cl_zs_predict(c.W, c.K, c.E, x, &score);
        int64_t label, group;
        int has_label = cl_map_get_int(&it.meta, "label", &label) == 0;
        int has_group = cl_map_get_int(&it.meta, "group", &group) == 0;
        if (has_label && (label < 0 || label >= c.K))
            cl_die(2, "%s: item %" PRIu64 " (id \"%s\") has label %" PRId64 ", the classifier has %d classes", a.input,
                   cl_reader_items(r) - 1, it.id, label, c.K);
        if (has_label && (s = cl_zs_add(&tally, label, k, has_group, group, &e)) != CL_OK) cl_die_status(s, &e);
        if (!has_label) tally.unlabelled++;
        if (a.predictions) {
            if (has_label) fprintf(pred.fp, "%s\t%" PRId64 "\t%d\t%s\t%.6f\n", it.id, label, k, c.names[k], score);
            else fprintf(pred.fp, "%s\t-\t%d\t%s\t%.6f\n", it.id, k, c.names[k], score);
        }
    }
    if (s != CL_END) cl_die_status(s, &e);
    if (tally.n == 0 && !tally.unlabelled) cl_die(2, "%s: no items to classify", a.input);
    report(&tally, a.json);
    if (a.predictions && (s = cl_output_commit(&pred, &e)) != CL_OK) cl_die_status(s, &e);
    struct cl_output out = {.fp = stdout, .is_stdout = 1};
    if ((s = cl_output_commit(&out, &e)) != CL_OK) cl_die_status(s, &e);
    cl_info("%" PRIu64 " items, accuracy %.4f over %d classes%s", tally.n, cl_zs_accuracy(&tally), c.K,
            tally.unlabelled ? " (some items had no label)" : "");
    cl_reader_close(r);
    cl_item_free(&it);
    cl_zs_free(&tally);
    for (int k = 0; k < c.K; k++) free(c.names[k]);
    free(c.names);
    free(c.W);
    cl_header_free(&ch);
    cl_opts_free(&a.opts);
    return 0;
}
