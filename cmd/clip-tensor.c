/* clip-tensor - inspect, validate, slice, concatenate, export and import tensor streams. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "npy.h"
#include "stream.h"

static void usage(FILE *f)
{
    fprintf(f,
"Usage: clip-tensor COMMAND [OPTIONS] [FILE...]\n"
"Inspect, validate, slice, concatenate, export and import cliplens tensor streams.\n"
"FILE '-' or no FILE means standard input; binary output goes to -o FILE or stdout\n"
"(never to a terminal).\n"
"\n"
"Commands:\n"
"  info [FILE]                 header, item count, tensor names/dtypes/shapes, meta keys\n"
"  cat FILE...                 validate and concatenate into one stream (one header)\n"
"  head -n K [FILE]            the first K items\n"
"  select --id ID [FILE]       items with this id (repeatable)\n"
"  select --meta KEY=VALUE [FILE]  items whose meta KEY equals VALUE (repeatable: all must match)\n"
"  npy NAME -o OUT.npy [FILE]  stack tensor NAME of every item into one .npy\n"
"                              (--dtype f32 (default) | own: keep the stream's dtype)\n"
"  from-npy NAME FILE.npy      one item per leading index of the array\n"
"                              [--ids FILE] one id per line (default: 0, 1, ...)\n"
"                              [--kind KIND] header kind (default: tensor)\n"
"  convert --dtype f32|f16|bf16 [FILE]  convert float tensors (i32/u8 are kept)\n"
"\n"
"Options:\n"
"  -o, --output FILE   output file (default: stdout); written atomically\n"
"  --level N           zstd level 1..19 for stream output, 0 = uncompressed (default: %d)\n"
"  -q, --quiet         no informational messages\n"
"  -h, --help          this help;  --version  print the version\n"
"\n"
"Exit status: 0 ok, 1 usage, 2 bad input data (truncated, corrupt, inconsistent), 3 I/O.\n"
"Example:\n"
"  cat a.cts b.cts | clip-tensor info\n"
"  clip-tensor select --meta label=3 heads.cts | clip-tensor npy heads -o heads.npy\n",
            CL_STREAM_DEFAULT_LEVEL);
}

struct args {
    const char *cmd, *output, *name, *dtype, *ids, *kind;
    long head_n, level;
    const char *sel_ids[64];
    int n_sel_ids;
    const char *sel_meta[64];
    int n_sel_meta;
    char **files;
    int nfiles;
    struct cl_opts opts;
};

static void parse_args(struct args *a, int argc, char **argv)
{
    memset(a, 0, sizeof *a);
    a->head_n = -1;
    a->level = CL_STREAM_DEFAULT_LEVEL;
    a->kind = "tensor";
    if (argc < 2)
        cl_usage_error("missing command (info, cat, head, select, npy, from-npy, convert)");
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) { usage(stdout); exit(0); }
    if (!strcmp(argv[1], "--version")) { printf("clip-tensor %s\n", CL_VERSION); exit(0); }
    a->cmd = argv[1];
    struct cl_opts *o = &a->opts;
    cl_opts_init(o, argc - 1, argv + 1);
    while (cl_opts_next(o)) {
        if (cl_opt_is(o, "-h", "--help")) { usage(stdout); exit(0); }
        else if (cl_opt_is(o, "-o", "--output")) a->output = cl_opt_value(o);
        else if (cl_opt_is(o, "-q", "--quiet")) cl_quiet = 1;
        else if (cl_opt_is(o, NULL, "--level")) a->level = cl_flag_long("--level", cl_opt_value(o), 0, 19);
        else if (cl_opt_is(o, "-n", "--lines")) a->head_n = cl_flag_long("-n", cl_opt_value(o), 0, 1L << 40);
        else if (cl_opt_is(o, NULL, "--dtype")) a->dtype = cl_opt_value(o);
        else if (cl_opt_is(o, NULL, "--ids")) a->ids = cl_opt_value(o);
        else if (cl_opt_is(o, NULL, "--kind")) a->kind = cl_opt_value(o);
        else if (cl_opt_is(o, NULL, "--id")) {
            if (a->n_sel_ids == 64) cl_usage_error("at most 64 --id options");
            a->sel_ids[a->n_sel_ids++] = cl_opt_value(o);
        } else if (cl_opt_is(o, NULL, "--meta")) {
            if (a->n_sel_meta == 64) cl_usage_error("at most 64 --meta options");
            const char *kv = cl_opt_value(o);
            if (!strchr(kv, '=') || kv[0] == '=') cl_usage_error("--meta expects KEY=VALUE, got '%s'", kv);
            a->sel_meta[a->n_sel_meta++] = kv;
        } else cl_opt_unknown(o);
    }
    a->files = o->operands;
    a->nfiles = o->noperands;
}

/* ---------------------------------------------------------------- info */

struct tinfo { char name[256]; enum cl_dtype dtype; int ndim; int64_t shape[CL_MAX_DIMS]; int varies; uint64_t n; };

static void print_model(const struct cl_model_info *m)
{
    if (!m->present) { printf("model: none\n"); return; }
    printf("model: %s (layout %s; layers %" PRId64 ", heads %" PRId64 ", width %" PRId64 ", embed_dim %" PRId64
           ", patch %" PRId64 ", image_size %" PRId64 ")\n", m->name, m->layout, m->layers, m->heads, m->width,
           m->embed_dim, m->patch, m->image_size);
}

static int cmd_info(const struct args *a)
{
    if (a->nfiles > 1) cl_usage_error("info takes at most one FILE (use 'cat' to join streams first)");
    const char *path = a->nfiles ? a->files[0] : "-";
    struct cl_reader *r;
    struct cl_err e;
    enum cl_status s = cl_reader_open(&r, path, &e);
    if (s != CL_OK) cl_die_status(s, &e);
    struct tinfo ti[64];
    int nti = 0;
    char *meta_keys[256];
    int nkeys = 0;
    struct cl_item it = {0};
    while ((s = cl_reader_next(r, &it, &e)) == CL_OK) {
        for (int i = 0; i < it.nt; i++) {
            const struct cl_tensor *t = &it.t[i];
            int j = 0;
            while (j < nti && strcmp(ti[j].name, t->name) != 0) j++;
            if (j == nti) {
                if (nti == 64) continue;
                nti++;
                snprintf(ti[j].name, sizeof ti[j].name, "%s", t->name);
                ti[j].dtype = t->dtype;
                ti[j].ndim = t->ndim;
                memcpy(ti[j].shape, t->shape, sizeof t->shape);
                ti[j].varies = 0;
                ti[j].n = 0;
            } else if (ti[j].dtype != t->dtype || ti[j].ndim != t->ndim ||
                       memcmp(ti[j].shape, t->shape, sizeof t->shape) != 0) {
                ti[j].varies = 1;
            }
            ti[j].n++;
        }
        if (it.meta.type == CL_V_MAP) {
            for (size_t k = 0; k < it.meta.u.m.n; k++) {
                int j = 0;
                while (j < nkeys && strcmp(meta_keys[j], it.meta.u.m.k[k]) != 0) j++;
                if (j == nkeys && nkeys < 256) meta_keys[nkeys++] = strdup(it.meta.u.m.k[k]);
            }
        }
    }
    if (s != CL_END) {
        cl_item_free(&it);
        cl_die_status(s, &e);
    }
    const struct cl_header *h = cl_reader_header(r);
    printf("kind: %s\n", h->kind);
    print_model(&h->model);
    char *mt = cl_value_to_text(&h->meta);
    printf("meta: %s\n", mt ? mt : "?");
    free(mt);
    printf("streams: %" PRIu64 "\n", cl_reader_streams(r));
    printf("items: %" PRIu64 "\n", cl_reader_items(r));
    for (int j = 0; j < nti; j++) {
        printf("tensor: %s %s [", ti[j].name, cl_dtype_name(ti[j].dtype));
        for (int d = 0; d < ti[j].ndim; d++) printf(d ? ",%" PRId64 : "%" PRId64, ti[j].shape[d]);
        printf("]%s in %" PRIu64 " items\n", ti[j].varies ? " (shape varies)" : "", ti[j].n);
    }
    printf("item meta keys:");
    for (int j = 0; j < nkeys; j++) { printf(" %s", meta_keys[j]); free(meta_keys[j]); }
    printf("\n");
    cl_item_free(&it);
    cl_reader_close(r);
    struct cl_output out = {.fp = stdout, .is_stdout = 1};
    if ((s = cl_output_commit(&out, &e)) != CL_OK) cl_die_status(s, &e);
    return 0;
}

/* --------------------------------------------- stream -> stream filters */

enum filter { F_CAT, F_HEAD, F_SELECT, F_CONVERT };

static int meta_matches(const struct cl_item *it, const char *kv)
{
    const char *eq = strchr(kv, '=');
    char key[256];
    size_t kl = (size_t)(eq - kv);
    if (kl >= sizeof key) return 0;
    memcpy(key, kv, kl);
    key[kl] = 0;
    const struct cl_value *v = cl_map_get(&it->meta, key);
    if (!v) return 0;
    char *plain = cl_value_to_plain(v);
    int m = plain && strcmp(plain, eq + 1) == 0;
    free(plain);
    return m;
}

static int keep_item(const struct args *a, enum filter f, const struct cl_item *it)
{
    if (f != F_SELECT) return 1;
    if (a->n_sel_ids) {
        int hit = 0;
        for (int i = 0; i < a->n_sel_ids && !hit; i++) hit = strcmp(a->sel_ids[i], it->id) == 0;
        if (!hit) return 0;
    }
    for (int i = 0; i < a->n_sel_meta; i++)
        if (!meta_matches(it, a->sel_meta[i])) return 0;
    return 1;
}

/* Convert float tensors of it in place to dtype dt, using scratch. */
static enum cl_status convert_item(struct cl_item *it, enum cl_dtype dt, struct cl_tensor *scratch,
                                   struct cl_err *e)
{
    for (int i = 0; i < it->nt; i++) {
        struct cl_tensor *t = &it->t[i];
        if (t->dtype == dt || t->dtype == CL_I32 || t->dtype == CL_U8) continue;
        enum cl_status s = cl_tensor_convert(scratch, t, dt, e);
        if (s != CL_OK) return s;
        struct cl_tensor tmp = *t; /* swap buffers so both stay owned */
        *t = *scratch;
        *scratch = tmp;
    }
    return CL_OK;
}

static int cmd_filter(const struct args *a, enum filter f)
{
    struct cl_err e;
    enum cl_status s;
    enum cl_dtype to = CL_F32;
    if (f == F_HEAD && a->head_n < 0) cl_usage_error("head needs -n K");
    if (f == F_SELECT && !a->n_sel_ids && !a->n_sel_meta) cl_usage_error("select needs --id ID or --meta KEY=VALUE");
    if (f == F_CONVERT) {
        if (!a->dtype) cl_usage_error("convert needs --dtype f32|f16|bf16");
        if (cl_dtype_parse(a->dtype, strlen(a->dtype), &to) != 0 || (to != CL_F32 && to != CL_F16 && to != CL_BF16))
            cl_usage_error("--dtype must be f32, f16 or bf16, not '%s'", a->dtype);
    }
    if (f != F_CAT && a->nfiles > 1) cl_usage_error("%s takes at most one FILE", a->cmd);
    int nfiles = a->nfiles ? a->nfiles : 1;
    struct cl_output out;
    if ((s = cl_output_open(&out, a->output, 1, &e)) != CL_OK) cl_die_status(s, &e);
    struct cl_writer *w = NULL;
    struct cl_header first;
    struct cl_item it = {0};
    struct cl_tensor scratch = {0};
    uint64_t seen = 0;
    for (int fi = 0; fi < nfiles; fi++) {
        const char *path = a->nfiles ? a->files[fi] : "-";
        struct cl_reader *r;
        if ((s = cl_reader_open(&r, path, &e)) != CL_OK) cl_die_status(s, &e);
        const struct cl_header *h = cl_reader_header(r);
        if (!w) {
            first = *h;
            if ((s = cl_value_copy(&first.meta, &h->meta)) != CL_OK) cl_die(3, "out of memory");
            if ((s = cl_writer_open(&w, out.fp, &first, (int)a->level, &e)) != CL_OK) cl_die_status(s, &e);
        } else if (!cl_header_compatible(&first, h)) {
            cl_die(2, "%s: kind \"%s\" / model \"%s\" differs from the first input's kind \"%s\" / model \"%s\"",
                   path, h->kind, h->model.present ? h->model.name : "none", first.kind,
                   first.model.present ? first.model.name : "none");
        }
        while ((f != F_HEAD || seen < (uint64_t)a->head_n) && (s = cl_reader_next(r, &it, &e)) == CL_OK) {
            if (!keep_item(a, f, &it)) continue;
            if (f == F_CONVERT && (s = convert_item(&it, to, &scratch, &e)) != CL_OK) cl_die_status(s, &e);
            if ((s = cl_writer_item(w, &it, &e)) != CL_OK) cl_die_status(s, &e);
            seen++;
        }
        if (f == F_HEAD && seen >= (uint64_t)a->head_n) s = CL_END; /* rest unread, by design */
        if (s != CL_END) cl_die_status(s, &e);
        cl_reader_close(r);
    }
    if ((s = cl_writer_close(w, &e)) != CL_OK) cl_die_status(s, &e);
    if ((s = cl_output_commit(&out, &e)) != CL_OK) cl_die_status(s, &e);
    cl_header_free(&first);
    cl_item_free(&it);
    cl_tensor_free(&scratch);
    return 0;
}

/* ------------------------------------------------------------------ npy */

static int cmd_npy(const struct args *a)
{
    struct cl_err e;
    enum cl_status s;
    if (a->nfiles < 1) cl_usage_error("npy needs the tensor NAME");
    if (a->nfiles > 2) cl_usage_error("npy takes NAME and at most one FILE");
    if (!a->output) cl_usage_error("npy needs -o OUT.npy (or -o - for stdout)");
    int own = a->dtype && !strcmp(a->dtype, "own");
    if (a->dtype && !own && strcmp(a->dtype, "f32")) cl_usage_error("--dtype for npy is f32 or own, not '%s'", a->dtype);
    const char *name = a->files[0], *path = a->nfiles > 1 ? a->files[1] : "-";
    struct cl_reader *r;
    if ((s = cl_reader_open(&r, path, &e)) != CL_OK) cl_die_status(s, &e);
    struct cl_output out;
    if ((s = cl_output_open(&out, a->output, 1, &e)) != CL_OK) cl_die_status(s, &e);
    struct cl_npy_writer nw;
    struct cl_item it = {0};
    struct cl_tensor conv = {0};
    int started = 0;
    while ((s = cl_reader_next(r, &it, &e)) == CL_OK) {
        const struct cl_tensor *t = cl_item_get(&it, name);
        if (!t) cl_die(2, "%s: item %" PRIu64 " (id \"%s\") has no tensor \"%s\"", path, cl_reader_items(r) - 1, it.id, name);
        if (!own && t->dtype != CL_F32) {
            if ((s = cl_tensor_convert(&conv, t, CL_F32, &e)) != CL_OK) cl_die_status(s, &e);
            t = &conv;
        }
        if (!started) {
            if (t->dtype == CL_BF16) cl_die(2, "tensor \"%s\" is bf16, which numpy lacks: use --dtype f32", name);
            if ((s = cl_npy_begin(&nw, out.fp, t->dtype, t->ndim, t->shape, out.is_stdout, &e)) != CL_OK)
                cl_die_status(s, &e);
            started = 1;
        }
        if ((s = cl_npy_append(&nw, t, &e)) != CL_OK)
            cl_die(cl_status_exit(s), "%s: item %" PRIu64 " (id \"%s\"): %s", path, cl_reader_items(r) - 1, it.id, e.msg);
    }
    if (s != CL_END) cl_die_status(s, &e);
    if (!started) cl_die(2, "%s: no items: nothing to stack (the .npy shape would be unknown)", path);
    if ((s = cl_npy_finish(&nw, &e)) != CL_OK) cl_die_status(s, &e);
    if ((s = cl_output_commit(&out, &e)) != CL_OK) cl_die_status(s, &e);
    cl_info("wrote %" PRIu64 " x \"%s\" to %s", cl_reader_items(r), name, out.is_stdout ? "stdout" : a->output);
    cl_reader_close(r);
    cl_item_free(&it);
    cl_tensor_free(&conv);
    return 0;
}

/* ------------------------------------------------------------- from-npy */

static char **read_ids(const char *path, uint64_t n)
{
    FILE *fp;
    struct cl_err e;
    enum cl_status s = cl_input_open(&fp, path, &e);
    if (s != CL_OK) cl_die_status(s, &e);
    char **ids = calloc(n ? n : 1, sizeof *ids);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    uint64_t k = 0;
    if (!ids) cl_die(3, "out of memory");
    while ((len = getline(&line, &cap, fp)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (k == n) cl_die(2, "%s: more ids than the array's %" PRIu64 " rows", path, n);
        if (!(ids[k++] = strdup(line))) cl_die(3, "out of memory");
    }
    if (k != n) cl_die(2, "%s: %" PRIu64 " ids for %" PRIu64 " rows", path, k, n);
    free(line);
    if (fp != stdin) fclose(fp);
    return ids;
}

static int cmd_from_npy(const struct args *a)
{
    struct cl_err e;
    enum cl_status s;
    if (a->nfiles != 2) cl_usage_error("from-npy needs NAME and FILE.npy");
    const char *name = a->files[0], *path = a->files[1];
    struct cl_npy_reader nr;
    if ((s = cl_npy_open(&nr, path, &e)) != CL_OK) cl_die_status(s, &e);
    if (nr.ndim < 1) cl_die(2, "%s: a 0-d array has no leading index to split into items", path);
    uint64_t n = (uint64_t)nr.shape[0];
    char **ids = a->ids ? read_ids(a->ids, n) : NULL;
    struct cl_output out;
    if ((s = cl_output_open(&out, a->output, 1, &e)) != CL_OK) cl_die_status(s, &e);
    struct cl_header h;
    cl_header_init(&h, a->kind);
    struct cl_writer *w;
    if ((s = cl_writer_open(&w, out.fp, &h, (int)a->level, &e)) != CL_OK) cl_die_status(s, &e);
    struct cl_tensor t = {0};
    if ((s = cl_tensor_reshape(&t, name, nr.dtype, nr.ndim - 1, nr.shape + 1, &e)) != CL_OK) cl_die_status(s, &e);
    for (uint64_t i = 0; i < n; i++) {
        char idbuf[32];
        snprintf(idbuf, sizeof idbuf, "%" PRIu64, i);
        if ((s = cl_npy_read_row(&nr, &t, &e)) != CL_OK) cl_die_status(s, &e);
        if ((s = cl_writer_item_parts(w, ids ? ids[i] : idbuf, NULL, &t, 1, &e)) != CL_OK) cl_die_status(s, &e);
    }
    if ((s = cl_writer_close(w, &e)) != CL_OK) cl_die_status(s, &e);
    if ((s = cl_output_commit(&out, &e)) != CL_OK) cl_die_status(s, &e);
    cl_npy_close(&nr);
    cl_tensor_free(&t);
    cl_header_free(&h);
    if (ids) { for (uint64_t i = 0; i < n; i++) free(ids[i]); free(ids); }
    return 0;
}

int main(int argc, char **argv)
{
    struct args a;
    cl_cli_init(argc, argv);
    parse_args(&a, argc, argv);
    int rc;
    if (!strcmp(a.cmd, "info")) rc = cmd_info(&a);
    else if (!strcmp(a.cmd, "cat")) rc = cmd_filter(&a, F_CAT);
    else if (!strcmp(a.cmd, "head")) rc = cmd_filter(&a, F_HEAD);
    else if (!strcmp(a.cmd, "select")) rc = cmd_filter(&a, F_SELECT);
    else if (!strcmp(a.cmd, "convert")) rc = cmd_filter(&a, F_CONVERT);
    else if (!strcmp(a.cmd, "npy")) rc = cmd_npy(&a);
    else if (!strcmp(a.cmd, "from-npy")) rc = cmd_from_npy(&a);
    else cl_usage_error("unknown command '%s' (info, cat, head, select, npy, from-npy, convert)", a.cmd);
    cl_opts_free(&a.opts);
    return rc;
}
