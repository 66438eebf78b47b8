/* clip-decompose - images -> the contributions of the ln_pre term, layers, heads, source
 * tokens, MLPs and MLP neurons to each image's embedding (common/decompose.h). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "decompose.h"
#include "image.h"
#include "linalg.h"
#include "manifest.h"
#include "model.h"
#include "preprocess.h"
#include "stream.h"

static void usage(FILE *f)
{
    fprintf(f,
"Usage: clip-decompose [OPTIONS] [IMAGE...]\n"
"Decompose CLIP image embeddings into the direct contributions of the ln_pre term, every\n"
"attention head (optionally per source token) and every MLP, and the first- and\n"
"second-order effects of the neurons of an MLP layer; the parts of each image sum to its\n"
"normalised embedding.  Images come from the arguments, else from --manifest or\n"
"--from-pixels, else one path per line on standard input.  Output: a stream of kind\n"
"decompose to -o FILE or stdout (never a terminal).\n"
"\n"
"Tensors of each item (E embedding dim, L' kept layers, H heads, N tokens, M neurons):\n"
"  embedding [E]  normalised embedding     embed [E]   the ln_pre (class token) term\n"
"  heads [L',H,E] (--tokens: [L',H,N,E])   mlps [L',E]\n"
"  rest [E] + layers i32 [L']   with --layers: the layers not kept, summed; the kept ones\n"
"  bias [E]       with --ln centered: the ln_post bias\n"
"  neurons [M,E]  with --neurons;  neurons2 [M,E] with --second-order\n"
"\n"
"Options:\n"
"  --ln uniform|centered  how ln_post's mean and bias are shared (default: uniform, as P1's\n"
"                      code: evenly over the 2L+1 stream components, then over heads and\n"
"                      tokens; centered: every part centred on its own, the bias its own part)\n"
"  --tokens            keep source tokens: heads [L',H,N,E] (large: L'HNE values per image;\n"
"                      --layers, --dtype f16 and --level 1 or 0 keep it fast)\n"
"  --layers A[-B]      keep layers A..B (0-based, inclusive); the rest is summed into \"rest\"\n"
"  --neurons LAYER     first-order effects of the neurons of MLP layer LAYER\n"
"  --second-order LAYER  second-order effects of the neurons of MLP layer LAYER through\n"
"                      all later attention layers\n"
"  --dtype f32|f16     dtype of the stored parts (default: f32; f16 halves the output)\n"
"  --manifest FILE.tsv images from a TSV manifest: path, label, group, extra columns\n"
"                      (relative paths from the manifest's directory; columns go to meta)\n"
"  --from-pixels FILE  images from a pixels stream (clip-encode --pixels); ids and meta kept\n"
"  -m, --model DIR     HF or OpenCLIP model directory (default: $CLIPLENS_MODEL, else the\n"
"                      bundled toy model)\n"
"  -o, --output FILE   output stream (default: stdout); written atomically\n"
"  -t, --threads N     BLAS threads (default: %d, the online processors)\n"
"  --batch N           images per forward pass (default: 8); memory grows with it, not\n"
"                      with the number of images\n"
"  --skip-bad          skip unreadable images (counted on stderr) instead of stopping\n"
"  --level N           zstd level 1..19, 0 = uncompressed (default: %d)\n"
"  -q, --quiet         no progress or summary on stderr\n"
"  -h, --help, --version\n"
"\n"
"Exit status: 0 ok, 1 usage, 2 bad input (unreadable image, bad stream, bad model), 3 I/O.\n"
"Examples:\n"
"  clip-decompose -m ViT-B-16 --manifest val.tsv --layers 8-11 --dtype f16 -o heads.cts\n"
"  clip-decompose -m ViT-B-16 --tokens --layers 11 cat.jpg | clip-tensor npy heads -o cat.npy\n"
"  clip-decompose -m ViT-B-16 --second-order 9 < paths.txt > neurons.cts\n",
            cl_default_threads(), CL_STREAM_DEFAULT_LEVEL);
}

struct args {
    const char *model, *output, *manifest, *from_pixels;
    struct cl_decompose_opts dec;
    enum cl_dtype dtype;
    int skip_bad;
    long threads, batch, level;
    char **images;
    int nimages;
    struct cl_opts opts;
};

/* "A" or "A-B" (0-based layers) -> lo, hi; exits 1 when malformed. */
static void parse_layers(const char *s, int *lo, int *hi)
{
    char a[32];
    const char *dash = strchr(s, '-');
    size_t n = dash ? (size_t)(dash - s) : strlen(s);
    if (n == 0 || n >= sizeof a)
        cl_usage_error("invalid value '%s' for --layers (expected A or A-B, 0-based layers)", s);
    memcpy(a, s, n);
    a[n] = 0;
    *lo = (int)cl_flag_long("--layers", a, 0, CL_MODEL_MAX_LAYERS - 1);
    *hi = dash ? (int)cl_flag_long("--layers", dash + 1, 0, CL_MODEL_MAX_LAYERS - 1) : *lo;
    if (*hi < *lo)
        cl_usage_error("invalid value '%s' for --layers (the first layer is after the last)", s);
}

static void parse_args(struct args *a, int argc, char **argv)
{
    memset(a, 0, sizeof *a);
    cl_decompose_opts_default(&a->dec);
    a->dtype = CL_F32;
    a->threads = cl_default_threads();
    a->batch = 8;
    a->level = CL_STREAM_DEFAULT_LEVEL;
    struct cl_opts *o = &a->opts;
    cl_opts_init(o, argc, argv);
    while (cl_opts_next(o)) {
        if (cl_opt_is(o, "-h", "--help")) { usage(stdout); exit(0); }
        else if (cl_opt_is(o, NULL, "--version")) { printf("clip-decompose %s\n", CL_VERSION); exit(0); }
        else if (cl_opt_is(o, "-m", "--model")) a->model = cl_opt_value(o);
        else if (cl_opt_is(o, "-o", "--output")) a->output = cl_opt_value(o);
        else if (cl_opt_is(o, "-t", "--threads")) a->threads = cl_flag_long("--threads", cl_opt_value(o), 1, 256);
        else if (cl_opt_is(o, NULL, "--batch")) a->batch = cl_flag_long("--batch", cl_opt_value(o), 1, 4096);
        else if (cl_opt_is(o, NULL, "--level")) a->level = cl_flag_long("--level", cl_opt_value(o), 0, 19);
        else if (cl_opt_is(o, NULL, "--manifest")) a->manifest = cl_opt_value(o);
        else if (cl_opt_is(o, NULL, "--from-pixels")) a->from_pixels = cl_opt_value(o);
        else if (cl_opt_is(o, NULL, "--skip-bad")) a->skip_bad = 1;
        else if (cl_opt_is(o, "-q", "--quiet")) cl_quiet = 1;
        else if (cl_opt_is(o, NULL, "--tokens")) a->dec.tokens = 1;
        else if (cl_opt_is(o, NULL, "--layers")) parse_layers(cl_opt_value(o), &a->dec.layer_lo, &a->dec.layer_hi);
        else if (cl_opt_is(o, NULL, "--neurons"))
            a->dec.neurons = (int)cl_flag_long("--neurons", cl_opt_value(o), 0, CL_MODEL_MAX_LAYERS - 1);
        else if (cl_opt_is(o, NULL, "--second-order"))
            a->dec.second_order = (int)cl_flag_long("--second-order", cl_opt_value(o), 0, CL_MODEL_MAX_LAYERS - 1);
        else if (cl_opt_is(o, NULL, "--ln")) {
            const char *v = cl_opt_value(o);
            if (cl_ln_conv_parse(v, &a->dec.ln) != 0)
                cl_usage_error("invalid value '%s' for --ln (expected uniform or centered)", v);
        } else if (cl_opt_is(o, NULL, "--dtype")) {
            const char *v = cl_opt_value(o);
            if (strcmp(v, "f32") == 0) a->dtype = CL_F32;
            else if (strcmp(v, "f16") == 0) a->dtype = CL_F16;
            else cl_usage_error("invalid value '%s' for --dtype (expected f32 or f16)", v);
        } else cl_opt_unknown(o);
    }
    a->images = o->operands;
    a->nimages = o->noperands;
    if (a->manifest && a->from_pixels) cl_usage_error("--manifest and --from-pixels exclude each other");
    if ((a->manifest || a->from_pixels) && a->nimages)
        cl_usage_error("image arguments cannot be combined with --manifest or --from-pixels");
}

/* ------------------------------------------------------------ decomposition job */

struct pending { char *id; struct cl_value meta; };

struct job {
    const struct args *a;
    struct cl_model *m;
    struct cl_vit_state *vit;
    struct cl_decomposer *dec;
    struct cl_vit_capture *cap;
    int batch, n;         /* capacity; images waiting in pixels */
    size_t px;            /* floats per preprocessed image: 3 S S */
    float *pixels;        /* [batch, 3, S, S] */
    float *emb;           /* [batch, E] */
    struct pending *pend; /* [batch] */
    struct cl_item item;  /* reused for every output item */
    struct cl_writer *w;
    struct cl_progress prog;
    uint64_t done;
};

/* The header: model, kind decompose, and the options that shaped the parts. */
static void job_header(struct cl_header *h, const struct job *j)
{
    const struct cl_decompose_opts *o = &j->a->dec;
    int L = j->m->cfg.vision.layers;
    cl_header_init(h, "decompose");
    cl_model_describe(j->m, &h->model);
    cl_map_set_str(&h->meta, "ln", cl_ln_conv_name(o->ln));
    cl_map_set_int(&h->meta, "tokens", o->tokens);
    cl_map_set_int(&h->meta, "layer_lo", o->layer_lo < 0 ? 0 : o->layer_lo);
    cl_map_set_int(&h->meta, "layer_hi", o->layer_hi < 0 ? L - 1 : o->layer_hi);
    if (o->neurons >= 0) cl_map_set_int(&h->meta, "neurons_layer", o->neurons);
    if (o->second_order >= 0) cl_map_set_int(&h->meta, "second_order_layer", o->second_order);
    cl_map_set_str(&h->meta, "dtype", cl_dtype_name(j->a->dtype));
}

static void job_open(struct job *j, const struct args *a, struct cl_output *out)
{
    struct cl_err e;
    enum cl_status s;
    memset(j, 0, sizeof *j);
    j->a = a;
    const char *dir = cl_model_dir(a->model, &e);
    if (!dir) cl_die_status(CL_ERR_USAGE, &e);
    if ((s = cl_model_load(&j->m, dir, &e)) != CL_OK) cl_die_status(s, &e);
    const struct cl_model_config *c = &j->m->cfg;
    j->batch = (int)a->batch;
    j->px = (size_t)3 * c->image_size * c->image_size;
    if ((s = cl_decomposer_new(&j->dec, j->m, &a->dec, j->batch, &e)) != CL_OK ||
        (s = cl_decomposer_capture_new(j->dec, &j->cap, &e)) != CL_OK ||
        (s = cl_vit_state_new(&j->vit, j->m, j->batch, (int)a->threads, &e)) != CL_OK)
        cl_die_status(s, &e);
    j->pixels = malloc((size_t)j->batch * j->px * sizeof *j->pixels);
    j->emb = malloc((size_t)j->batch * c->embed_dim * sizeof *j->emb);
    j->pend = calloc((size_t)j->batch, sizeof *j->pend);
    if (!j->pixels || !j->emb || !j->pend) cl_die(3, "out of memory for a batch of %d images", j->batch);
    struct cl_header h;
    job_header(&h, j);
    if ((s = cl_writer_open(&j->w, out->fp, &h, (int)a->level, &e)) != CL_OK) cl_die_status(s, &e);
    cl_header_free(&h);
    cl_progress_start(&j->prog, "decompose", a->nimages > 0 ? (uint64_t)a->nimages : 0);
}

/* Conversion of f32 parts to the output dtype, spread over the worker threads in chunks
 * (a token decomposition of a large model is millions of values per image). */
#define CONVERT_CHUNK 16384
struct convert_job { void *dst; enum cl_dtype dt; const float *src; size_t n; };

static void convert_chunks(void *ctx, int begin, int end, int worker)
{
    const struct convert_job *j = ctx;
    size_t lo = (size_t)begin * CONVERT_CHUNK, hi = (size_t)end * CONVERT_CHUNK;
    (void)worker;
    if (hi > j->n) hi = j->n;
    cl_convert_from_f32((char *)j->dst + lo * cl_dtype_size(j->dt), j->dt, j->src + lo, hi - lo);
}

/* Add tensor name [shape] of dtype dt to the item, converted from f32 src. */
static void put(struct cl_item *it, const char *name, enum cl_dtype dt, int ndim, const int64_t *shape,
                const float *src, const char *const *axes)
{
    struct cl_tensor *t;
    struct cl_err e;
    enum cl_status s;
    if ((s = cl_item_add(it, name, dt, ndim, shape, &t, &e)) != CL_OK ||
        (s = cl_tensor_set_axes(t, axes, &e)) != CL_OK)
        cl_die_status(s, &e);
    struct convert_job job = {t->data, dt, src, cl_tensor_numel(t)};
    cl_parallel_for((int)((job.n + CONVERT_CHUNK - 1) / CONVERT_CHUNK), 4, convert_chunks, &job);
}

/* The item of one image's parts. */
static void fill_item(struct cl_item *it, const struct cl_decomposition *p, enum cl_dtype dt)
{
    static const char *const ax_e[] = {"dim"}, *const ax_h[] = {"layer", "head", "dim"},
                             *const ax_t[] = {"layer", "head", "token", "dim"}, *const ax_l[] = {"layer", "dim"},
                             *const ax_n[] = {"neuron", "dim"}, *const ax_k[] = {"layer"};
    int64_t E = p->embed_dim, Lk = p->kept, H = p->heads, N = p->tokens, M = p->mlp;
    int64_t s1[] = {E}, sh[] = {Lk, H, E}, st[] = {Lk, H, N, E}, sl[] = {Lk, E}, sn[] = {M, E}, sk[] = {Lk};
    put(it, "embedding", dt, 1, s1, p->embedding, ax_e);
    put(it, "embed", dt, 1, s1, p->embed, ax_e);
    if (p->tokens) put(it, "heads", dt, 4, st, p->heads_part, ax_t);
    else put(it, "heads", dt, 3, sh, p->heads_part, ax_h);
    put(it, "mlps", dt, 2, sl, p->mlps, ax_l);
    if (p->rest) {
        float layers[CL_MODEL_MAX_LAYERS];
        for (int i = 0; i < p->kept; i++) layers[i] = (float)(p->layer_lo + i);
        put(it, "rest", dt, 1, s1, p->rest, ax_e);
        put(it, "layers", CL_I32, 1, sk, layers, ax_k);
    }
    if (p->bias) put(it, "bias", dt, 1, s1, p->bias, ax_e);
    if (p->neurons) put(it, "neurons", dt, 2, sn, p->neurons, ax_n);
    if (p->neurons2) put(it, "neurons2", dt, 2, sn, p->neurons2, ax_n);
}

/* Forward and decompose the waiting images, write one item each. */
static void job_flush(struct job *j)
{
    struct cl_err e;
    enum cl_status s;
    if (j->n == 0) return;
    if ((s = cl_vit_forward(j->vit, j->pixels, j->n, j->emb, j->cap, &e)) != CL_OK ||
        (s = cl_decompose_batch(j->dec, j->cap, j->emb, j->n, &e)) != CL_OK)
        cl_die(cl_status_exit(s), "images %" PRIu64 "..%" PRIu64 ": %s", j->done + 1, j->done + j->n, e.msg);
    for (int b = 0; b < j->n; b++) {
        struct cl_decomposition p;
        if ((s = cl_decompose_image(j->dec, b, &p, &e)) != CL_OK) cl_die_status(s, &e);
        cl_item_clear(&j->item);
        j->item.id = j->pend[b].id;          /* moved into the item */
        j->item.meta = j->pend[b].meta;
        j->pend[b].id = NULL;
        j->pend[b].meta = CL_VALUE_NIL;
        fill_item(&j->item, &p, j->a->dtype);
        if ((s = cl_writer_item(j->w, &j->item, &e)) != CL_OK) cl_die_status(s, &e);
    }
    cl_progress_add(&j->prog, (uint64_t)j->n);
    j->done += (uint64_t)j->n;
    j->n = 0;
}

/* Queue an image (pixels already in slot j->n) with its id and meta (taken over). */
static void job_add(struct job *j, const char *id, struct cl_value *meta)
{
    struct pending *p = &j->pend[j->n];
    if (!(p->id = strdup(id))) cl_die(3, "out of memory");
    p->meta = *meta;
    *meta = CL_VALUE_NIL;
    if (++j->n == j->batch) job_flush(j);
}

/* Flush, end the stream, report, free. */
static void job_close(struct job *j, uint64_t skipped)
{
    struct cl_err e;
    enum cl_status s;
    job_flush(j);
    cl_progress_end(&j->prog);
    if ((s = cl_writer_close(j->w, &e)) != CL_OK) cl_die_status(s, &e);
    if (skipped) cl_warn("skipped %" PRIu64 " unreadable image%s", skipped, skipped == 1 ? "" : "s");
    if (j->done == 0 && skipped == 0) cl_info("no images given (arguments, --manifest, --from-pixels, or paths on stdin)");
    cl_info("decomposed %" PRIu64 " image%s with %s", j->done, j->done == 1 ? "" : "s", j->m->cfg.name);
    cl_item_free(&j->item);
    free(j->pend);
    free(j->pixels);
    free(j->emb);
    cl_vit_capture_free(j->cap);
    cl_vit_state_free(j->vit);
    cl_decomposer_free(j->dec);
    cl_model_free(j->m);
}

/* -------------------------------------------------------- image sources */


/* Decode and preprocess every image of the source into the job; returns images skipped. */
static uint64_t feed_images(struct job *j, const struct args *a)
{
    struct cl_image_source src;
    struct cl_value meta = CL_VALUE_NIL;
    struct cl_err e;
    enum cl_status s;
    const struct cl_model_config *c = &j->m->cfg;
    uint64_t skipped = 0;
    if ((s = cl_image_source_open(&src, a->images, a->nimages, a->manifest, &e)) != CL_OK) cl_die_status(s, &e);
    while ((s = cl_image_source_next(&src, &meta, &e)) == CL_OK) {
        struct cl_image img = {0};
        enum cl_status st = cl_image_load(&img, src.path, &e);
        if (st == CL_OK)
            st = cl_preprocess(&img, c->image_size, c->mean, c->std, j->pixels + (size_t)j->n * j->px, &e);
        cl_image_free(&img);
        if (st != CL_OK) {
            if (!a->skip_bad || st == CL_ERR_NOMEM)
                cl_die(cl_status_exit(st), "image %" PRIu64 ": %s%s", src.index, e.msg,
                       a->skip_bad ? "" : " (use --skip-bad to continue past unreadable images)");
            cl_warn("skipping image %" PRIu64 ": %s", src.index, e.msg);
            skipped++;
            cl_value_free(&meta);
            continue;
        }
        job_add(j, src.path, &meta);
    }
    cl_value_free(&meta);
    if (s != CL_END) cl_die_status(s, &e);
    cl_image_source_close(&src);
    return skipped;
}

/* Every item of a pixels stream into the job, id and meta kept. */
static void feed_pixels(struct job *j, const char *path)
{
    struct cl_reader *r;
    struct cl_item it = {0};
    struct cl_err e;
    enum cl_status s;
    int S = j->m->cfg.image_size;
    if ((s = cl_reader_open(&r, path, &e)) != CL_OK) cl_die_status(s, &e);
    const struct cl_header *in = cl_reader_header(r);
    if (strcmp(in->kind, "pixels") != 0)
        cl_die(2, "%s: stream kind is \"%s\", expected \"pixels\" (from clip-encode --pixels)", path, in->kind);
    if (in->model.present && in->model.image_size != S)
        cl_die(2, "%s: pixels were preprocessed for image size %" PRId64 ", the model takes %d", path,
               in->model.image_size, S);
    while ((s = cl_reader_next(r, &it, &e)) == CL_OK) {
        const struct cl_tensor *t = cl_item_get(&it, "pixels");
        if (!t || t->ndim != 3 || t->shape[0] != 3 || t->shape[1] != S || t->shape[2] != S)
            cl_die(2, "%s: item %" PRIu64 " (id \"%s\") has no \"pixels\" tensor of shape [3,%d,%d]", path,
                   cl_reader_items(r) - 1, it.id, S, S);
        cl_convert_to_f32(j->pixels + (size_t)j->n * j->px, t->data, t->dtype, j->px);
        struct cl_value meta;
        if (cl_value_copy(&meta, &it.meta) != CL_OK) cl_die(3, "out of memory");
        job_add(j, it.id, &meta);
    }
    if (s != CL_END) cl_die_status(s, &e);
    cl_item_free(&it);
    cl_reader_close(r);
}

int main(int argc, char **argv)
{
    struct args a;
    struct cl_output out;
    struct job j;
    struct cl_err e;
    enum cl_status s;
    uint64_t skipped = 0;
    cl_cli_init(argc, argv);
    parse_args(&a, argc, argv);
    if ((s = cl_output_open(&out, a.output, 1, &e)) != CL_OK) cl_die_status(s, &e);
    job_open(&j, &a, &out);
    if (a.from_pixels) feed_pixels(&j, a.from_pixels);
    else skipped = feed_images(&j, &a);
    job_close(&j, skipped);
    if ((s = cl_output_commit(&out, &e)) != CL_OK) cl_die_status(s, &e);
    cl_opts_free(&a.opts);
    return 0;
}
