/* clip-encode - images -> image embeddings; texts -> text embeddings; class names x
 * templates -> a zero-shot classifier; images -> preprocessed pixels and back. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "image.h"
#include "manifest.h"
#include "model.h"
#include "preprocess.h"
#include "stream.h"
#include "tokenizer.h"

static void usage(FILE *f)
{
    fprintf(f,
"Usage: clip-encode [OPTIONS] [IMAGE...]\n"
"Encode images or texts with a CLIP model into a tensor stream.\n"
"Images come from the arguments, else from --manifest, else one path per line on\n"
"standard input. Output goes to -o FILE or stdout (never a terminal).\n"
"\n"
"Modes:\n"
"  (default)                image -> kind image, tensor \"embedding\" [E] (projected, not normalised)\n"
"  --manifest FILE.tsv      images from a TSV manifest: path, label, group, extra columns\n"
"                           (relative paths are taken from the manifest's directory;\n"
"                           label, group and the extra columns travel in item meta)\n"
"  --texts FILE             one text per line -> kind text, \"embedding\" [E] + \"ids\" i32 [C]\n"
"  --classes FILE --templates FILE\n"
"                           one class name per line x templates ('{}' is the class name)\n"
"                           -> kind classifier: per class the mean of the normalised\n"
"                           template embeddings, normalised again\n"
"  --pixels                 images -> kind pixels, \"pixels\" f32 [3,S,S] (preprocessed)\n"
"  --from-pixels FILE       encode a pixels stream (as written by --pixels)\n"
"\n"
"Options:\n"
"  -m, --model DIR     HF or OpenCLIP model directory (default: $CLIPLENS_MODEL, else the\n"
"                      bundled toy model)\n"
"  -o, --output FILE   output stream (default: stdout); written atomically\n"
"  -t, --threads N     BLAS threads (default: %d, the online processors)\n"
"  --batch N           images or texts per forward pass (default: 16)\n"
"  --skip-bad          skip unreadable images (counted on stderr) instead of stopping\n"
"  --level N           zstd level 1..19, 0 = uncompressed (default: %d)\n"
"  -q, --quiet         no progress or summary on stderr\n"
"  -h, --help, --version\n"
"\n"
"Exit status: 0 ok, 1 usage, 2 bad input (unreadable image, bad text, bad model), 3 I/O.\n"
"Examples:\n"
"  clip-encode -m ViT-B-16 cat.jpg dog.png -o emb.cts\n"
"  find photos -name '*.jpg' | clip-encode --batch 32 > emb.cts\n"
"  clip-encode --classes classes.txt --templates templates.txt -o classifier.cts\n",
            cl_default_threads(), CL_STREAM_DEFAULT_LEVEL);
}

struct args {
    const char *model, *output, *manifest, *texts, *classes, *templates, *from_pixels;
    int pixels, skip_bad;
    long threads, batch, level;
    char **images;
    int nimages;
    struct cl_opts opts;
};

static void parse_args(struct args *a, int argc, char **argv)
{
    memset(a, 0, sizeof *a);
    a->threads = cl_default_threads();
    a->batch = 16;
    a->level = CL_STREAM_DEFAULT_LEVEL;
    struct cl_opts *o = &a->opts;
    cl_opts_init(o, argc, argv);
    while (cl_opts_next(o)) {
        if (cl_opt_is(o, "-h", "--help")) { usage(stdout); exit(0); }
        else if (cl_opt_is(o, NULL, "--version")) { printf("clip-encode %s\n", CL_VERSION); exit(0); }
        else if (cl_opt_is(o, "-m", "--model")) a->model = cl_opt_value(o);
        else if (cl_opt_is(o, "-o", "--output")) a->output = cl_opt_value(o);
        else if (cl_opt_is(o, "-t", "--threads")) a->threads = cl_flag_long("--threads", cl_opt_value(o), 1, 256);
        else if (cl_opt_is(o, NULL, "--batch")) a->batch = cl_flag_long("--batch", cl_opt_value(o), 1, 4096);
        else if (cl_opt_is(o, NULL, "--level")) a->level = cl_flag_long("--level", cl_opt_value(o), 0, 19);
        else if (cl_opt_is(o, NULL, "--manifest")) a->manifest = cl_opt_value(o);
        else if (cl_opt_is(o, NULL, "--texts")) a->texts = cl_opt_value(o);
        else if (cl_opt_is(o, NULL, "--classes")) a->classes = cl_opt_value(o);
        else if (cl_opt_is(o, NULL, "--templates")) a->templates = cl_opt_value(o);
        else if (cl_opt_is(o, NULL, "--from-pixels")) a->from_pixels = cl_opt_value(o);
        else if (cl_opt_is(o, NULL, "--pixels")) a->pixels = 1;
        else if (cl_opt_is(o, NULL, "--skip-bad")) a->skip_bad = 1;
        else if (cl_opt_is(o, "-q", "--quiet")) cl_quiet = 1;
        else cl_opt_unknown(o);
    }
    a->images = o->operands;
    a->nimages = o->noperands;
    int modes = !!a->texts + !!(a->classes || a->templates) + !!a->from_pixels + !!a->manifest;
    if (modes > 1) cl_usage_error("--texts, --classes/--templates, --from-pixels and --manifest exclude each other");
    if ((a->classes != NULL) != (a->templates != NULL)) cl_usage_error("--classes and --templates go together");
    if (modes && a->nimages) cl_usage_error("image arguments cannot be combined with --texts, --classes, --from-pixels or --manifest");
    if (a->pixels && (a->texts || a->classes || a->from_pixels)) cl_usage_error("--pixels applies to images only");
}

/* ------------------------------------------------------------ encoder */

struct encoder {
    struct cl_model *m;
    struct cl_vit_state *vit;
    struct cl_text_state *txt;
    struct cl_tokenizer *tok;
    int batch;
    size_t px;        /* floats per preprocessed image: 3*S*S */
    float *pixels;    /* [batch, 3, S, S] */
    float *emb;       /* [batch, E] */
    int32_t *ids;     /* [batch, C] */
};

static void encoder_open(struct encoder *enc, const struct args *a, int need_vit, int need_text)
{
    struct cl_err e;
    enum cl_status s;
    memset(enc, 0, sizeof *enc);
    const char *dir = cl_model_dir(a->model, &e);
    if (!dir) cl_die_status(CL_ERR_USAGE, &e);
    if ((s = cl_model_load(&enc->m, dir, &e)) != CL_OK) cl_die_status(s, &e);
    const struct cl_model_config *c = &enc->m->cfg;
    enc->batch = (int)a->batch;
    enc->px = (size_t)3 * c->image_size * c->image_size;
    enc->emb = malloc((size_t)enc->batch * c->embed_dim * sizeof *enc->emb);
    if (!enc->emb) cl_die(3, "out of memory");
    if (need_vit) {
        enc->pixels = malloc((size_t)enc->batch * enc->px * sizeof *enc->pixels);
        if (!enc->pixels) cl_die(3, "out of memory for %d images of %dx%d", enc->batch, c->image_size, c->image_size);
        if (!a->pixels && (s = cl_vit_state_new(&enc->vit, enc->m, enc->batch, (int)a->threads, &e)) != CL_OK)
            cl_die_status(s, &e);
    }
    if (need_text) {
        if (!c->vocab_path[0] || !c->merges_path[0])
            cl_die(2, "%s: the model directory has no vocab.json and merges.txt: cannot tokenize texts", dir);
        if ((s = cl_tokenizer_load(&enc->tok, c->vocab_path, c->merges_path, &e)) != CL_OK) cl_die_status(s, &e);
        if ((s = cl_text_state_new(&enc->txt, enc->m, enc->batch, (int)a->threads, &e)) != CL_OK) cl_die_status(s, &e);
        enc->ids = malloc((size_t)enc->batch * c->context * sizeof *enc->ids);
        if (!enc->ids) cl_die(3, "out of memory");
    }
}

static void encoder_close(struct encoder *enc)
{
    cl_vit_state_free(enc->vit);
    cl_text_state_free(enc->txt);
    cl_tokenizer_free(enc->tok);
    cl_model_free(enc->m);
    free(enc->pixels);
    free(enc->emb);
    free(enc->ids);
}

static void header_for(struct cl_header *h, const char *kind, const struct encoder *enc)
{
    cl_header_init(h, kind);
    cl_model_describe(enc->m, &h->model);
}

/* -------------------------------------------------------- image sources */


/* ------------------------------------------------------------- modes */

struct pending { char *id; struct cl_value meta; };

/* Encode (or, with --pixels, pass through) the first n preprocessed images and write them. */
static void flush_images(struct encoder *enc, const struct args *a, struct cl_writer *w, struct pending *pend,
                         int n)
{
    struct cl_err e;
    enum cl_status s;
    const struct cl_model_config *c = &enc->m->cfg;
    if (n == 0) return;
    if (!a->pixels && (s = cl_vit_forward(enc->vit, enc->pixels, n, enc->emb, NULL, &e)) != CL_OK)
        cl_die_status(s, &e);
    for (int i = 0; i < n; i++) {
        struct cl_tensor t = {0};
        t.name = a->pixels ? "pixels" : "embedding";
        t.dtype = CL_F32;
        if (a->pixels) {
            t.ndim = 3;
            t.shape[0] = 3; t.shape[1] = c->image_size; t.shape[2] = c->image_size;
            t.data = enc->pixels + (size_t)i * enc->px;
            t.nbytes = enc->px * sizeof(float);
        } else {
            t.ndim = 1;
            t.shape[0] = c->embed_dim;
            t.data = enc->emb + (size_t)i * c->embed_dim;
            t.nbytes = (size_t)c->embed_dim * sizeof(float);
        }
        if ((s = cl_writer_item_parts(w, pend[i].id, &pend[i].meta, &t, 1, &e)) != CL_OK) cl_die_status(s, &e);
        free(pend[i].id);
        cl_value_free(&pend[i].meta);
    }
}

static void run_images(const struct args *a, struct cl_output *out)
{
    struct encoder enc;
    struct cl_image_source src;
    struct cl_header h;
    struct cl_writer *w;
    struct cl_err e;
    enum cl_status s;
    encoder_open(&enc, a, 1, 0);
    if ((s = cl_image_source_open(&src, a->images, a->nimages, a->manifest, &e)) != CL_OK) cl_die_status(s, &e);
    header_for(&h, a->pixels ? "pixels" : "image", &enc);
    if ((s = cl_writer_open(&w, out->fp, &h, (int)a->level, &e)) != CL_OK) cl_die_status(s, &e);
    const struct cl_model_config *c = &enc.m->cfg;
    struct pending *pend = calloc((size_t)enc.batch, sizeof *pend);
    struct cl_progress prog;
    struct cl_value meta = CL_VALUE_NIL;
    uint64_t done = 0, skipped = 0;
    int n = 0;
    if (!pend) cl_die(3, "out of memory");
    cl_progress_start(&prog, a->pixels ? "preprocess" : "encode", a->nimages > 0 ? (uint64_t)a->nimages : 0);
    while ((s = cl_image_source_next(&src, &meta, &e)) == CL_OK) {
        struct cl_image img = {0};
        s = cl_image_load(&img, src.path, &e);
        if (s == CL_OK)
            s = cl_preprocess(&img, c->image_size, c->mean, c->std, enc.pixels + (size_t)n * enc.px, &e);
        cl_image_free(&img);
        if (s != CL_OK) {
            if (!a->skip_bad || s == CL_ERR_NOMEM)
                cl_die(cl_status_exit(s), "image %" PRIu64 ": %s%s", src.index, e.msg,
                       a->skip_bad ? "" : " (use --skip-bad to continue past unreadable images)");
            cl_warn("skipping image %" PRIu64 ": %s", src.index, e.msg);
            skipped++;
            cl_value_free(&meta);
            continue;
        }
        pend[n].id = strdup(src.path);
        pend[n].meta = meta;
        meta = CL_VALUE_NIL;
        if (!pend[n].id) cl_die(3, "out of memory");
        if (++n == enc.batch) {
            flush_images(&enc, a, w, pend, n);
            cl_progress_add(&prog, (uint64_t)n);
            done += (uint64_t)n;
            n = 0;
        }
    }
    if (s != CL_END) cl_die_status(s, &e);
    flush_images(&enc, a, w, pend, n);
    cl_progress_add(&prog, (uint64_t)n);
    done += (uint64_t)n;
    cl_progress_end(&prog);
    if ((s = cl_writer_close(w, &e)) != CL_OK) cl_die_status(s, &e);
    if (skipped) cl_warn("skipped %" PRIu64 " unreadable image%s", skipped, skipped == 1 ? "" : "s");
    if (done == 0 && skipped == 0) cl_info("no images given (arguments, --manifest, or paths on stdin)");
    cl_info("%s %" PRIu64 " image%s with %s", a->pixels ? "preprocessed" : "encoded", done, done == 1 ? "" : "s", c->name);
    cl_value_free(&meta);
    free(pend);
    cl_header_free(&h);
    cl_image_source_close(&src);
    encoder_close(&enc);
}

static void run_from_pixels(const struct args *a, struct cl_output *out)
{
    struct encoder enc;
    struct cl_reader *r;
    struct cl_header h;
    struct cl_writer *w;
    struct cl_err e;
    enum cl_status s;
    encoder_open(&enc, a, 1, 0);
    const struct cl_model_config *c = &enc.m->cfg;
    if ((s = cl_reader_open(&r, a->from_pixels, &e)) != CL_OK) cl_die_status(s, &e);
    const struct cl_header *in = cl_reader_header(r);
    if (strcmp(in->kind, "pixels") != 0)
        cl_die(2, "%s: stream kind is \"%s\", expected \"pixels\" (from clip-encode --pixels)", a->from_pixels, in->kind);
    if (in->model.present && in->model.image_size != c->image_size)
        cl_die(2, "%s: pixels were preprocessed for image size %" PRId64 ", the model takes %d", a->from_pixels,
               in->model.image_size, c->image_size);
    header_for(&h, "image", &enc);
    if ((s = cl_writer_open(&w, out->fp, &h, (int)a->level, &e)) != CL_OK) cl_die_status(s, &e);
    struct pending *pend = calloc((size_t)enc.batch, sizeof *pend);
    struct cl_item it = {0};
    struct cl_progress prog;
    int n = 0;
    uint64_t done = 0;
    if (!pend) cl_die(3, "out of memory");
    cl_progress_start(&prog, "encode", 0);
    while ((s = cl_reader_next(r, &it, &e)) == CL_OK) {
        const struct cl_tensor *t = cl_item_get(&it, "pixels");
        if (!t || t->ndim != 3 || t->shape[0] != 3 || t->shape[1] != c->image_size || t->shape[2] != c->image_size)
            cl_die(2, "%s: item %" PRIu64 " (id \"%s\") has no \"pixels\" tensor of shape [3,%d,%d]", a->from_pixels,
                   cl_reader_items(r) - 1, it.id, c->image_size, c->image_size);
        cl_convert_to_f32(enc.pixels + (size_t)n * enc.px, t->data, t->dtype, enc.px);
        if (!(pend[n].id = strdup(it.id)) || cl_value_copy(&pend[n].meta, &it.meta) != CL_OK) cl_die(3, "out of memory");
        if (++n == enc.batch) {
            flush_images(&enc, a, w, pend, n);
            cl_progress_add(&prog, (uint64_t)n);
            done += (uint64_t)n;
            n = 0;
        }
    }
    if (s != CL_END) cl_die_status(s, &e);
    flush_images(&enc, a, w, pend, n);
    done += (uint64_t)n;
    cl_progress_end(&prog);
    if ((s = cl_writer_close(w, &e)) != CL_OK) cl_die_status(s, &e);
    cl_info("encoded %" PRIu64 " images from %s", done, a->from_pixels);
    cl_item_free(&it);
    cl_reader_close(r);
    free(pend);
    cl_header_free(&h);
    encoder_close(&enc);
}

/* Read a whole text file as lines (UTF-8 checked by the tokenizer, not here). */
static char **read_lines(const char *path, int *count)
{
    struct cl_manifest m;
    struct cl_manifest_row row = {0};
    struct cl_err e;
    enum cl_status s;
    char **lines = NULL;
    int n = 0, cap = 0;
    if ((s = cl_manifest_open(&m, path, 0, &e)) != CL_OK) cl_die_status(s, &e);
    while ((s = cl_manifest_next(&m, &row, &e)) == CL_OK) {
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **p = realloc(lines, (size_t)cap * sizeof *p);
            if (!p) cl_die(3, "out of memory");
            lines = p;
        }
        if (!(lines[n++] = strdup(row.path))) cl_die(3, "out of memory");
    }
    if (s != CL_END) cl_die_status(s, &e);
    cl_manifest_close(&m, &row);
    *count = n;
    return lines;
}

static void free_lines(char **lines, int n)
{
    for (int i = 0; i < n; i++) free(lines[i]);
    free(lines);
}

/* Tokenize texts[0..n) into enc->ids and encode them into enc->emb. */
static void encode_text_batch(struct encoder *enc, char *const *texts, int n, const char *what, int first)
{
    struct cl_err e;
    enum cl_status s;
    int C = enc->m->cfg.context;
    for (int i = 0; i < n; i++)
        if ((s = cl_tokenize(enc->tok, texts[i], strlen(texts[i]), enc->ids + (size_t)i * C, C, NULL, &e)) != CL_OK)
            cl_die(cl_status_exit(s), "%s, line %d: %s", what, first + i + 1, e.msg);
    if ((s = cl_text_forward(enc->txt, enc->ids, n, enc->emb, &e)) != CL_OK) cl_die_status(s, &e);
}

static void run_texts(const struct args *a, struct cl_output *out)
{
    struct encoder enc;
    struct cl_header h;
    struct cl_writer *w;
    struct cl_err e;
    enum cl_status s;
    int n;
    char **texts = read_lines(a->texts, &n);
    encoder_open(&enc, a, 0, 1);
    const struct cl_model_config *c = &enc.m->cfg;
    header_for(&h, "text", &enc);
    if ((s = cl_writer_open(&w, out->fp, &h, (int)a->level, &e)) != CL_OK) cl_die_status(s, &e);
    struct cl_progress prog;
    cl_progress_start(&prog, "encode texts", (uint64_t)n);
    for (int i0 = 0; i0 < n; i0 += enc.batch) {
        int k = n - i0 < enc.batch ? n - i0 : enc.batch;
        encode_text_batch(&enc, texts + i0, k, a->texts, i0);
        for (int i = 0; i < k; i++) {
            struct cl_tensor t[2] = {{0}, {0}};
            t[0].name = "embedding"; t[0].dtype = CL_F32; t[0].ndim = 1; t[0].shape[0] = c->embed_dim;
            t[0].data = enc.emb + (size_t)i * c->embed_dim; t[0].nbytes = (size_t)c->embed_dim * 4;
            t[1].name = "ids"; t[1].dtype = CL_I32; t[1].ndim = 1; t[1].shape[0] = c->context;
            t[1].data = enc.ids + (size_t)i * c->context; t[1].nbytes = (size_t)c->context * 4;
            struct cl_value meta = CL_VALUE_NIL;
            char id[32];
            snprintf(id, sizeof id, "%d", i0 + i);
            if (cl_map_set_str(&meta, "text", texts[i0 + i]) != CL_OK) cl_die(3, "out of memory");
            if ((s = cl_writer_item_parts(w, id, &meta, t, 2, &e)) != CL_OK) cl_die_status(s, &e);
            cl_value_free(&meta);
        }
        cl_progress_add(&prog, (uint64_t)k);
    }
    cl_progress_end(&prog);
    if ((s = cl_writer_close(w, &e)) != CL_OK) cl_die_status(s, &e);
    cl_info("encoded %d text%s with %s", n, n == 1 ? "" : "s", c->name);
    cl_header_free(&h);
    free_lines(texts, n);
    encoder_close(&enc);
}

/* Replace every "{}" in template by name; the template must contain one. */
static char *fill_template(const char *tpl, const char *name)
{
    size_t tl = strlen(tpl), nl = strlen(name), count = 0;
    for (const char *p = strstr(tpl, "{}"); p; p = strstr(p + 2, "{}")) count++;
    if (!count) return NULL;
    char *out = malloc(tl + count * nl + 1), *o = out;
    if (!out) cl_die(3, "out of memory");
    for (const char *p = tpl; *p;) {
        if (p[0] == '{' && p[1] == '}') { memcpy(o, name, nl); o += nl; p += 2; }
        else *o++ = *p++;
    }
    *o = 0;
    return out;
}

static void normalise(float *v, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)v[i] * v[i];
    float inv = s > 0 ? (float)(1.0 / sqrt(s)) : 0.0f;
    for (int i = 0; i < n; i++) v[i] *= inv;
}

static void run_classifier(const struct args *a, struct cl_output *out)
{
    struct encoder enc;
    struct cl_header h;
    struct cl_writer *w;
    struct cl_err e;
    enum cl_status s;
    int nc, nt;
    char **classes = read_lines(a->classes, &nc), **tpls = read_lines(a->templates, &nt);
    if (nt == 0) cl_die(2, "%s: no templates", a->templates);
    for (int j = 0; j < nt; j++)
        if (!strstr(tpls[j], "{}")) cl_die(2, "%s, line %d: template has no '{}' for the class name", a->templates, j + 1);
    encoder_open(&enc, a, 0, 1);
    const struct cl_model_config *c = &enc.m->cfg;
    int E = c->embed_dim;
    header_for(&h, "classifier", &enc);
    cl_map_set_int(&h.meta, "templates", nt);
    if ((s = cl_writer_open(&w, out->fp, &h, (int)a->level, &e)) != CL_OK) cl_die_status(s, &e);
    float *acc = malloc((size_t)E * sizeof *acc);
    char **filled = malloc((size_t)enc.batch * sizeof *filled);
    struct cl_progress prog;
    if (!acc || !filled) cl_die(3, "out of memory");
    cl_progress_start(&prog, "classes", (uint64_t)nc);
    for (int k = 0; k < nc; k++) {
        memset(acc, 0, (size_t)E * sizeof *acc);
        for (int j0 = 0; j0 < nt; j0 += enc.batch) {
            int m = nt - j0 < enc.batch ? nt - j0 : enc.batch;
            for (int j = 0; j < m; j++) filled[j] = fill_template(tpls[j0 + j], classes[k]);
            encode_text_batch(&enc, filled, m, a->templates, j0);
            for (int j = 0; j < m; j++) {
                float *v = enc.emb + (size_t)j * E;
                normalise(v, E);
                for (int d = 0; d < E; d++) acc[d] += v[d];
                free(filled[j]);
            }
        }
        normalise(acc, E);
        struct cl_tensor t = {0};
        t.name = "embedding"; t.dtype = CL_F32; t.ndim = 1; t.shape[0] = E; t.data = acc; t.nbytes = (size_t)E * 4;
        struct cl_value meta = CL_VALUE_NIL;
        cl_map_set_int(&meta, "label", k);
        cl_map_set_str(&meta, "text", classes[k]);
        if ((s = cl_writer_item_parts(w, classes[k], &meta, &t, 1, &e)) != CL_OK) cl_die_status(s, &e);
        cl_value_free(&meta);
        cl_progress_add(&prog, 1);
    }
    cl_progress_end(&prog);
    if ((s = cl_writer_close(w, &e)) != CL_OK) cl_die_status(s, &e);
    cl_info("classifier of %d classes x %d templates with %s", nc, nt, c->name);
    free(acc);
    free(filled);
    cl_header_free(&h);
    free_lines(classes, nc);
    free_lines(tpls, nt);
    encoder_close(&enc);
}

int main(int argc, char **argv)
{
    struct args a;
    struct cl_output out;
    struct cl_err e;
    enum cl_status s;
    cl_cli_init(argc, argv);
    parse_args(&a, argc, argv);
    if ((s = cl_output_open(&out, a.output, 1, &e)) != CL_OK) cl_die_status(s, &e);
    if (a.texts) run_texts(&a, &out);
    else if (a.classes) run_classifier(&a, &out);
    else if (a.from_pixels) run_from_pixels(&a, &out);
    else run_images(&a, &out);
    if ((s = cl_output_commit(&out, &e)) != CL_OK) cl_die_status(s, &e);
    cl_opts_free(&a.opts);
    return 0;
}
