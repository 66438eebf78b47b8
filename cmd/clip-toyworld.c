/* clip-toyworld - the synthetic toy world: render a scene from a caption, make
 * labelled data sets (PNG images + masks + manifest, or a tensor stream), and
 * print the text pools TextSpan uses to name what heads do. */
#include <errno.h>
#include <fcntl.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "image.h"
#include "manifest.h"
#include "stream.h"
#include "toyworld.h"

static void usage(FILE *f)
{
    fprintf(f,
"Usage: clip-toyworld COMMAND [OPTIONS]\n"
"The toy world: scenes of 1-3 simple objects (shape, colour, size, position on\n"
"a 3x3 grid) on textured backgrounds, with exact masks and labels.  The same\n"
"seed gives the same bytes on every machine and for any thread count.\n"
"\n"
"Commands:\n"
"  render CAPTION -o FILE.png   one scene from a caption; what the caption leaves\n"
"                               out is drawn from --seed ('-o -': PNG to stdout)\n"
"      --mask-prefix P          also write each object's mask to P_0.png, P_1.png ...\n"
"  dataset --n N -o DIR         DIR/images/000000.png, DIR/masks/000000_K.png (object K,\n"
"                               coverage 0..255) and DIR/manifest.tsv (header line;\n"
"                               path, label, group, captions and every attribute),\n"
"                               written last: the set is complete when it exists\n"
"  stream --n N [-o FILE]       the same as a tensor stream (kind \"toyworld\"; default:\n"
"                               stdout): per item \"pixels\" u8 [3,S,S], \"masks\" u8\n"
"                               [K,S,S], meta with label, group, text (the caption),\n"
"                               caption_full and every attribute of every object\n"
"  pool                         TextSpan text pool on stdout: family<TAB>text lines\n"
"      --kind attributes|distractors|all   (default: all)\n"
"      --plain                  the text only, one phrase per line\n"
"\n"
"Options of render, dataset and stream:\n"
"  --seed S          seed (default: 0)\n"
"  --size N          image side in pixels, %d..%d (default: %d)\n"
"Options of dataset and stream:\n"
"  --n N             number of scenes (required)\n"
"  --split NAME      random (default): label = shape of object 0, group = background\n"
"                    balanced: as random, every (shape, background) pair once per 80\n"
"                    spurious-train: label 0 triangle / 1 square, group = label*2 +\n"
"                      background type (0 water/sky, 1 grass/sand); type == label\n"
"                      with probability --bias (default 0.95)\n"
"                    spurious-test: as spurious-train, the four groups balanced\n"
"  --objects A-B     objects per scene, 1..9 (default: 1-3; spurious splits: 1)\n"
"  --bias P          spurious-train correlation in 0..1 (default: 0.95)\n"
"  --captions FILE   render these captions instead (one per line; '-' stdin):\n"
"                    label = shape of object 0, group = background\n"
"  -t, --threads N   worker threads (default: online CPUs, at most 8)\n"
"  --level N         stream: zstd level 1..19, 0 = uncompressed (default: %d)\n"
"Common:\n"
"  -q, --quiet       no informational messages or progress\n"
"  -h, --help        this help;  --version  print the version\n"
"\n"
"Captions: words are matched case-insensitively; every word must be known.\n"
"  shapes: circle square triangle star cross ring heart diamond\n"
"  colours: red orange yellow green cyan blue purple pink brown white black grey\n"
"  sizes: small large;  counts: one .. nine (\"two red stars\")\n"
"  positions: at the top left, at the top, at the top right, on the left, in the\n"
"    center, on the right, at the bottom left, at the bottom, at the bottom right\n"
"  backgrounds: plain striped dotted checkered water grass sand sky brick wood\n"
"  objects are separated by 'and', 'with' or commas.\n"
"\n"
"Exit status: 0 ok, 1 usage, 2 bad caption (unknown word, contradiction), 3 I/O.\n"
"Examples:\n"
"  clip-toyworld render \"a large red star at the top left on a water background\" -o star.png\n"
"  clip-toyworld dataset --n 1000 --seed 1 --split spurious-test -o spur\n"
"  clip-toyworld stream --n 100000 --seed 7 -o train.cts\n"
"  clip-toyworld pool --plain | clip-encode --text -o pool.cts\n",
            CL_TW_MIN_SIZE, CL_TW_MAX_SIZE, CL_TW_DEFAULT_SIZE, CL_STREAM_DEFAULT_LEVEL);
}

struct args {
    const char *cmd, *output, *mask_prefix, *captions_path, *kind;
    char *caption;            /* render: the operands joined by spaces (owned) */
    struct cl_tw_config cfg;
    long n;                   /* -1: not given */
    int objects_given, bias_given, plain, threads, level;
    struct cl_opts opts;
};

static void parse_objects(const char *s, struct cl_tw_config *c)
{
    long lo, hi;
    const char *dash = strchr(s, '-');
    char buf[32];
    if (dash && (size_t)(dash - s) < sizeof buf) {
        memcpy(buf, s, (size_t)(dash - s));
        buf[dash - s] = '\0';
        if (cl_parse_long(buf, 1, CL_TW_MAX_OBJECTS, &lo) || cl_parse_long(dash + 1, lo, CL_TW_MAX_OBJECTS, &hi))
            cl_usage_error("invalid value '%s' for --objects (expected A-B with 1 <= A <= B <= %d)",
                           s, CL_TW_MAX_OBJECTS);
    } else {
        lo = hi = cl_flag_long("--objects", s, 1, CL_TW_MAX_OBJECTS);
    }
    c->min_objects = (int)lo;
    c->max_objects = (int)hi;
}

static enum cl_tw_split parse_split(const char *s)
{
    for (int i = 0; i < CL_TW_NSPLITS; i++)
        if (!strcmp(s, cl_tw_split_names[i])) return (enum cl_tw_split)i;
    cl_usage_error("unknown split '%s' (expected random, balanced, spurious-train or spurious-test)", s);
}

static char *join_operands(char **v, int n)
{
    size_t len = 1;
    for (int i = 0; i < n; i++) len += strlen(v[i]) + 1;
    char *s = malloc(len);
    if (!s) cl_die(CL_EXIT_IO, "out of memory");
    s[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (i) strcat(s, " ");
        strcat(s, v[i]);
    }
    return s;
}

static void parse_args(struct args *a, int argc, char **argv)
{
    memset(a, 0, sizeof *a);
    cl_tw_config_init(&a->cfg);
    a->n = -1;
    a->kind = "all";
    a->level = CL_STREAM_DEFAULT_LEVEL;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    a->threads = ncpu < 1 ? 1 : ncpu > 8 ? 8 : (int)ncpu;
    if (argc < 2) cl_usage_error("missing command (render, dataset, stream, pool)");
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) { usage(stdout); exit(0); }
    if (!strcmp(argv[1], "--version")) { printf("clip-toyworld %s\n", CL_VERSION); exit(0); }
    a->cmd = argv[1];
    if (strcmp(a->cmd, "render") && strcmp(a->cmd, "dataset") && strcmp(a->cmd, "stream") &&
        strcmp(a->cmd, "pool"))
        cl_usage_error("unknown command '%s' (expected render, dataset, stream or pool)", a->cmd);
    struct cl_opts *o = &a->opts;
    cl_opts_init(o, argc - 1, argv + 1);
    while (cl_opts_next(o)) {
        if (cl_opt_is(o, "-h", "--help")) { usage(stdout); exit(0); }
        else if (cl_opt_is(o, "-o", "--output")) a->output = cl_opt_value(o);
        else if (cl_opt_is(o, "-q", "--quiet")) cl_quiet = 1;
        else if (cl_opt_is(o, NULL, "--seed")) a->cfg.seed = (uint64_t)cl_flag_long("--seed", cl_opt_value(o), 0, INT64_MAX);
        else if (cl_opt_is(o, NULL, "--size")) a->cfg.size = (int)cl_flag_long("--size", cl_opt_value(o), CL_TW_MIN_SIZE, CL_TW_MAX_SIZE);
        else if (cl_opt_is(o, "-n", "--n")) a->n = cl_flag_long("--n", cl_opt_value(o), 0, 1000000000L);
        else if (cl_opt_is(o, NULL, "--split")) a->cfg.split = parse_split(cl_opt_value(o));
        else if (cl_opt_is(o, NULL, "--objects")) { parse_objects(cl_opt_value(o), &a->cfg); a->objects_given = 1; }
        else if (cl_opt_is(o, NULL, "--bias")) { a->cfg.bias = cl_flag_double("--bias", cl_opt_value(o), 0, 1); a->bias_given = 1; }
        else if (cl_opt_is(o, NULL, "--captions")) a->captions_path = cl_opt_value(o);
        else if (cl_opt_is(o, NULL, "--mask-prefix")) a->mask_prefix = cl_opt_value(o);
        else if (cl_opt_is(o, "-t", "--threads")) a->threads = (int)cl_flag_long("--threads", cl_opt_value(o), 1, 64);
        else if (cl_opt_is(o, NULL, "--level")) a->level = (int)cl_flag_long("--level", cl_opt_value(o), 0, 19);
        else if (cl_opt_is(o, NULL, "--kind")) a->kind = cl_opt_value(o);
        else if (cl_opt_is(o, NULL, "--plain")) a->plain = 1;
        else cl_opt_unknown(o);
    }
    int render = !strcmp(a->cmd, "render"), pool = !strcmp(a->cmd, "pool");
    int dataset = !strcmp(a->cmd, "dataset"), stream = !strcmp(a->cmd, "stream");
    if (render) {
        if (o->noperands == 0) cl_usage_error("render needs a CAPTION");
        a->caption = join_operands(o->operands, o->noperands);
    } else if (o->noperands) {
        cl_usage_error("unexpected argument '%s'", o->operands[0]);
    }
    if (dataset && !a->output) cl_usage_error("dataset needs -o DIR");
    if (dataset && !strcmp(a->output, "-")) cl_usage_error("dataset writes a directory: -o - is not possible (use stream)");
    if ((dataset || stream) && a->n < 0 && !a->captions_path) cl_usage_error("%s needs --n N (or --captions FILE)", a->cmd);
    if (a->captions_path && a->n >= 0) cl_usage_error("--captions and --n exclude each other (the file gives the count)");
    if (a->bias_given && a->cfg.split != CL_TW_SPLIT_SPURIOUS_TRAIN) cl_usage_error("--bias applies to --split spurious-train only");
    if (a->captions_path && (a->objects_given || a->cfg.split != CL_TW_SPLIT_RANDOM))
        cl_usage_error("--captions excludes --objects and --split (the captions say what to draw)");
    if (!a->objects_given && (a->cfg.split == CL_TW_SPLIT_SPURIOUS_TRAIN || a->cfg.split == CL_TW_SPLIT_SPURIOUS_TEST))
        a->cfg.min_objects = a->cfg.max_objects = 1;
    if (pool && strcmp(a->kind, "attributes") && strcmp(a->kind, "distractors") && strcmp(a->kind, "all"))
        cl_usage_error("unknown --kind '%s' (expected attributes, distractors or all)", a->kind);
    if (!render && a->mask_prefix) cl_usage_error("--mask-prefix applies to render only");
    if (!pool && (a->plain || strcmp(a->kind, "all"))) cl_usage_error("--kind and --plain apply to pool only");
}

/* ------------------------------------------------------------------------ */
/* Items: a batch rendered by worker threads, in index order                 */
/* ------------------------------------------------------------------------ */

/* Where a data set's files go: DIR/images/<id>.png, DIR/masks/<id>_<k>.png. */
struct files {
    const char *dir;
    int width;                 /* digits of the ids */
};

static void item_paths(const struct files *f, uint64_t index, int k, char *buf, size_t cap)
{
    if (k < 0) snprintf(buf, cap, "%s/images/%0*llu.png", f->dir, f->width, (unsigned long long)index);
    else snprintf(buf, cap, "%s/masks/%0*llu_%d.png", f->dir, f->width, (unsigned long long)index, k);
}

struct batch {
    const struct cl_tw_config *cfg;
    char **captions;           /* NULL: sampled items */
    const struct files *files; /* NULL: no PNG files (stream) */
    int S, cap, threads;
    uint64_t first;            /* index of items[0] */
    int count;
    struct cl_tw_item *items;  /* [cap] */
    uint8_t *rgb;              /* [cap, S, S, 3] */
    uint8_t *masks;            /* [cap, 9, S, S] */
    enum cl_status *st;        /* [cap] */
    struct cl_err *err;        /* [cap] */
};

struct worker { struct batch *b; int t, stride; };

/* Write buf to path directly.  A data set's files are not renamed into place one by
 * one (on ext4 a rename after a fresh write costs ten times the write): the set as a
 * whole is atomic instead, as manifest.tsv is removed first, written last and renamed
 * into place, and every file of the set is removed again on failure. */
static enum cl_status write_file(const char *path, const uint8_t *buf, size_t len, struct cl_err *e)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) return cl_errf(e, CL_ERR_IO, "cannot create '%s': %s", path, strerror(errno));
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, buf + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            enum cl_status st = cl_errf(e, CL_ERR_IO, "error writing '%s': %s", path,
                                        w < 0 ? strerror(errno) : "short write");
            close(fd);
            unlink(path);
            return st;
        }
        done += (size_t)w;
    }
    if (close(fd) != 0) {
        enum cl_status st = cl_errf(e, CL_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
        unlink(path);
        return st;
    }
    return CL_OK;
}

static enum cl_status write_png(const char *path, int S, int channels, const uint8_t *pixels,
                                struct cl_err *e)
{
    uint8_t *png;
    size_t len;
    enum cl_status st = cl_png_encode_mem(S, S, channels, pixels, CL_PNG_FAST, &png, &len, e);
    if (st != CL_OK) return cl_err_prefix(e, st, "%s", path);
    st = write_file(path, png, len, e);
    free(png);
    return st;
}

static enum cl_status write_pngs(const struct batch *b, int j, struct cl_err *e)
{
    char path[4096];
    const struct cl_tw_scene *s = &b->items[j].scene;
    size_t px = (size_t)b->S * b->S;
    item_paths(b->files, b->first + (uint64_t)j, -1, path, sizeof path);
    enum cl_status st = write_png(path, b->S, 3, b->rgb + (size_t)j * px * 3, e);
    for (int k = 0; k < s->n && st == CL_OK; k++) {
        item_paths(b->files, b->first + (uint64_t)j, k, path, sizeof path);
        st = write_png(path, b->S, 1, b->masks + ((size_t)j * CL_TW_MAX_OBJECTS + k) * px, e);
    }
    return st;
}

static void *work(void *arg)
{
    struct worker *w = arg;
    struct batch *b = w->b;
    size_t px = (size_t)b->S * b->S;
    for (int j = w->t; j < b->count; j += w->stride) {
        uint64_t index = b->first + (uint64_t)j;
        struct cl_tw_item *it = &b->items[j];
        b->st[j] = b->captions ? cl_tw_item_from_caption(b->cfg, index, b->captions[index], it, &b->err[j])
                               : cl_tw_sample_item(b->cfg, index, it, &b->err[j]);
        if (b->st[j] != CL_OK) continue;
        cl_tw_render(&it->scene, b->rgb + (size_t)j * px * 3, b->masks + (size_t)j * CL_TW_MAX_OBJECTS * px);
        if (b->files) b->st[j] = write_pngs(b, j, &b->err[j]);
    }
    return NULL;
}

static void batch_init(struct batch *b, const struct cl_tw_config *cfg, int threads)
{
    memset(b, 0, sizeof *b);
    b->cfg = cfg;
    b->S = cfg->size;
    b->threads = threads;
    size_t per = (size_t)b->S * b->S * (3 + CL_TW_MAX_OBJECTS);
    size_t cap = ((size_t)64 << 20) / per;            /* ~64 MB of pixels per batch */
    if (cap > 256) cap = 256;
    if (cap < (size_t)threads) cap = (size_t)threads;
    b->cap = (int)cap;
    b->items = malloc(cap * sizeof *b->items);
    b->rgb = malloc(cap * (size_t)b->S * b->S * 3);
    b->masks = malloc(cap * (size_t)b->S * b->S * CL_TW_MAX_OBJECTS);
    b->st = malloc(cap * sizeof *b->st);
    b->err = malloc(cap * sizeof *b->err);
    if (!b->items || !b->rgb || !b->masks || !b->st || !b->err) cl_die(CL_EXIT_IO, "out of memory");
}

static void batch_free(struct batch *b)
{
    free(b->items);
    free(b->rgb);
    free(b->masks);
    free(b->st);
    free(b->err);
}

/* Make items [first, first + count); returns the first failure's index or -1. */
static int batch_run(struct batch *b, uint64_t first, int count)
{
    struct worker w[64];
    pthread_t tid[64];
    int nt = b->threads < count ? b->threads : count;
    if (nt < 1) nt = 1;
    b->first = first;
    b->count = count;
    for (int t = 0; t < nt; t++) {
        w[t].b = b;
        w[t].t = t;
        w[t].stride = nt;
    }
    /* thread t makes items t, t + nt, ...; item i depends on i only */
    for (int t = 1; t < nt; t++)
        if (pthread_create(&tid[t], NULL, work, &w[t]) != 0) cl_die(CL_EXIT_IO, "cannot start worker threads");
    work(&w[0]);
    for (int t = 1; t < nt; t++) pthread_join(tid[t], NULL);
    for (int j = 0; j < count; j++)
        if (b->st[j] != CL_OK) return j;
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Captions from a file                                                      */
/* ------------------------------------------------------------------------ */

struct captions { char **line; uint64_t n; struct cl_manifest m; };

/* Read every caption and check it renders (all errors before any output). */
static void read_captions(struct captions *c, const char *path, const struct cl_tw_config *cfg)
{
    struct cl_err e;
    struct cl_manifest_row row;
    enum cl_status st;
    size_t cap = 0;
    memset(c, 0, sizeof *c);
    if ((st = cl_manifest_open(&c->m, path, 0, &e)) != CL_OK) cl_die_status(st, &e);
    while ((st = cl_manifest_next(&c->m, &row, &e)) == CL_OK) {
        if (c->n == cap) {
            cap = cap ? 2 * cap : 1024;
            char **l = realloc(c->line, cap * sizeof *l);
            if (!l) cl_die(CL_EXIT_IO, "out of memory");
            c->line = l;
        }
        struct cl_tw_item it;
        if ((st = cl_tw_item_from_caption(cfg, c->n, row.path, &it, &e)) != CL_OK)
            cl_die(cl_status_exit(st), "%s:%llu: %s", path && strcmp(path, "-") ? path : "stdin",
                   (unsigned long long)row.line, e.msg);
        if (!(c->line[c->n++] = strdup(row.path))) cl_die(CL_EXIT_IO, "out of memory");
    }
    if (st != CL_END) cl_die_status(st, &e);
    cl_manifest_close(&c->m, &row);
}

static void free_captions(struct captions *c)
{
    for (uint64_t i = 0; i < c->n; i++) free(c->line[i]);
    free(c->line);
}

/* ------------------------------------------------------------------------ */
/* render                                                                    */
/* ------------------------------------------------------------------------ */

static int cmd_render(const struct args *a)
{
    struct cl_tw_item it;
    struct cl_err e;
    enum cl_status st;
    const char *out = a->output ? a->output : "-";
    if (!strcmp(out, "-") && isatty(STDOUT_FILENO))
        cl_usage_error("refusing to write a PNG to a terminal (use -o FILE or a pipe)");
    if ((st = cl_tw_item_from_caption(&a->cfg, 0, a->caption, &it, &e)) != CL_OK) cl_die_status(st, &e);
    int S = a->cfg.size;
    uint8_t *rgb = malloc((size_t)S * S * 3), *masks = malloc((size_t)S * S * CL_TW_MAX_OBJECTS);
    if (!rgb || !masks) cl_die(CL_EXIT_IO, "out of memory");
    cl_tw_render(&it.scene, rgb, masks);
    if ((st = cl_png_write(out, S, S, 3, rgb, &e)) != CL_OK) cl_die_status(st, &e);
    for (int k = 0; a->mask_prefix && k < it.scene.n; k++) {
        char path[4096];
        snprintf(path, sizeof path, "%s_%d.png", a->mask_prefix, k);
        if ((st = cl_png_write(path, S, S, 1, masks + (size_t)k * S * S, &e)) != CL_OK) {
            /* leave nothing behind: the image and the masks written so far */
            if (strcmp(out, "-")) unlink(out);
            for (int j = 0; j < k; j++) {
                snprintf(path, sizeof path, "%s_%d.png", a->mask_prefix, j);
                unlink(path);
            }
            cl_die_status(st, &e);
        }
    }
    cl_info("%s: %s (seed %llu)", strcmp(out, "-") ? out : "stdout", it.caption_full,
            (unsigned long long)a->cfg.seed);
    free(rgb);
    free(masks);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* dataset                                                                   */
/* ------------------------------------------------------------------------ */

static void make_dir(const char *path)
{
    struct stat sb;
    if (mkdir(path, 0777) == 0) return;
    if (errno == EEXIST && stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) return;
    cl_die(CL_EXIT_IO, "cannot create directory '%s': %s", path,
           errno == EEXIST ? "a file of that name exists" : strerror(errno));
}

/* Remove the files of items [0, done) after a failure: no half data set stays. */
static void remove_items(const struct files *f, uint64_t done)
{
    char path[4096];
    for (uint64_t i = 0; i < done; i++) {
        item_paths(f, i, -1, path, sizeof path);
        unlink(path);
        for (int k = 0; k < CL_TW_MAX_OBJECTS; k++) {
            item_paths(f, i, k, path, sizeof path);
            if (unlink(path) != 0) break;
        }
    }
}

static void manifest_header(FILE *fp, int max_objects)
{
    fputs("path\tlabel\tgroup\tclass\tgroup_name\tcaption\tcaption_full\tcount\tbackground\tbgtype", fp);
    for (int k = 0; k < max_objects; k++)
        fprintf(fp, "\tshape_%d\tcolour_%d\tsize_%d\tposition_%d\tmask_%d", k, k, k, k, k);
    fputc('\n', fp);
}

static void manifest_row(FILE *fp, const struct files *f, enum cl_tw_split split, uint64_t index,
                         const struct cl_tw_item *it, int max_objects)
{
    char path[4096], cls[64] = "-", grp[64] = "-";
    const struct cl_tw_scene *s = &it->scene;
    item_paths(f, index, -1, path, sizeof path);
    if (it->label >= 0) cl_tw_label_name(split, it->label, cls, sizeof cls);
    if (it->group >= 0) cl_tw_group_name(split, it->group, grp, sizeof grp);
    int bt = cl_tw_bgtype(s->background);
    fprintf(fp, "%s\t", path);
    if (it->label >= 0) fprintf(fp, "%d\t", it->label);
    else fputs("-\t", fp);
    fprintf(fp, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s", it->group, cls, grp, it->caption, it->caption_full,
            s->n, cl_tw_background_names[s->background], bt >= 0 ? cl_tw_bgtype_names[bt] : "-");
    for (int k = 0; k < max_objects; k++) {
        if (k >= s->n) { fputs("\t-\t-\t-\t-\t-", fp); continue; }
        const struct cl_tw_object *o = &s->obj[k];
        item_paths(f, index, k, path, sizeof path);
        fprintf(fp, "\t%s\t%s\t%s\t%s\t%s", cl_tw_shape_names[o->shape], cl_tw_colour_names[o->colour],
                cl_tw_size_names[o->size], cl_tw_position_names[o->position], path);
    }
    fputc('\n', fp);
}

static int digits(uint64_t n)
{
    int d = 1;
    while (n >= 10) { n /= 10; d++; }
    return d < 6 ? 6 : d;
}

static int cmd_dataset(const struct args *a, char **captions, uint64_t n)
{
    struct files f = {a->output, digits(n ? n - 1 : 0)};
    struct cl_output out;
    struct cl_err e;
    struct batch b;
    struct cl_progress prog;
    enum cl_status st;
    char path[4096];
    int max_objects = a->cfg.max_objects;
    if (captions) /* the manifest has a column group per object of the busiest caption */
        for (uint64_t i = 0; i < n; i++) {
            struct cl_tw_item it;
            if (cl_tw_item_from_caption(&a->cfg, i, captions[i], &it, &e) == CL_OK && it.scene.n > max_objects)
                max_objects = it.scene.n;
        }
    make_dir(f.dir);
    snprintf(path, sizeof path, "%s/images", f.dir);
    make_dir(path);
    snprintf(path, sizeof path, "%s/masks", f.dir);
    make_dir(path);
    snprintf(path, sizeof path, "%s/manifest.tsv", f.dir);
    /* an old manifest would list the files being overwritten: the set is gone from here on */
    if (unlink(path) != 0 && errno != ENOENT) cl_die(CL_EXIT_IO, "cannot remove '%s': %s", path, strerror(errno));
    if ((st = cl_output_open(&out, path, 0, &e)) != CL_OK) cl_die_status(st, &e);
    manifest_header(out.fp, max_objects);
    batch_init(&b, &a->cfg, a->threads);
    b.captions = captions;
    b.files = &f;
    cl_progress_start(&prog, "scenes", n);
    double t0 = cl_now();
    for (uint64_t first = 0; first < n; first += (uint64_t)b.cap) {
        int count = n - first < (uint64_t)b.cap ? (int)(n - first) : b.cap;
        int bad = batch_run(&b, first, count);
        if (bad >= 0) {
            cl_output_abort(&out);
            remove_items(&f, first + (uint64_t)count);
            cl_die(cl_status_exit(b.st[bad]), "item %llu: %s", (unsigned long long)(first + (uint64_t)bad),
                   b.err[bad].msg);
        }
        for (int j = 0; j < count; j++)
            manifest_row(out.fp, &f, a->cfg.split, first + (uint64_t)j, &b.items[j], max_objects);
        cl_progress_add(&prog, (uint64_t)count);
    }
    cl_progress_end(&prog);
    if ((st = cl_output_commit(&out, &e)) != CL_OK) {
        remove_items(&f, n);
        cl_die_status(st, &e);
    }
    double dt = cl_now() - t0;
    cl_info("%s: %llu scenes (%.0f/s), split %s, seed %llu", f.dir, (unsigned long long)n,
            dt > 0 ? (double)n / dt : 0.0, cl_tw_split_names[a->cfg.split], (unsigned long long)a->cfg.seed);
    batch_free(&b);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* stream                                                                    */
/* ------------------------------------------------------------------------ */

static void check(enum cl_status st, const struct cl_err *e)
{
    if (st != CL_OK) cl_die_status(st, e);
}

static void set_names(struct cl_value *map, const char *key, const char *const *names, int n)
{
    struct cl_value arr, v;
    cl_value_array(&arr);
    for (int i = 0; i < n; i++) {
        if (cl_value_str(&v, names[i], strlen(names[i])) != CL_OK || cl_array_push(&arr, &v) != CL_OK)
            cl_die(CL_EXIT_IO, "out of memory");
    }
    if (cl_map_set(map, key, &arr) != CL_OK) cl_die(CL_EXIT_IO, "out of memory");
}

static void header_meta(struct cl_value *m, const struct args *a, uint64_t n)
{
    enum cl_tw_split sp = a->cfg.split;
    const char *classes[CL_TW_NSHAPES], *groups[CL_TW_NBACKGROUNDS];
    char cbuf[CL_TW_NSHAPES][32], gbuf[CL_TW_NBACKGROUNDS][48];
    int ok = cl_map_set_str(m, "generator", "clip-toyworld " CL_VERSION) == CL_OK &&
             cl_map_set_int(m, "size", a->cfg.size) == CL_OK &&
             cl_map_set_str(m, "split", a->captions_path ? "captions" : cl_tw_split_names[sp]) == CL_OK &&
             cl_map_set_int(m, "seed", (int64_t)a->cfg.seed) == CL_OK &&
             cl_map_set_int(m, "n", (int64_t)n) == CL_OK;
    if (!a->captions_path)
        ok = ok && cl_map_set_int(m, "min_objects", a->cfg.min_objects) == CL_OK &&
             cl_map_set_int(m, "max_objects", a->cfg.max_objects) == CL_OK;
    if (sp == CL_TW_SPLIT_SPURIOUS_TRAIN) ok = ok && cl_map_set_float(m, "bias", a->cfg.bias) == CL_OK;
    if (!ok) cl_die(CL_EXIT_IO, "out of memory");
    int nl = cl_tw_num_labels(sp), ng = cl_tw_num_groups(sp);
    for (int i = 0; i < nl; i++) { cl_tw_label_name(sp, i, cbuf[i], sizeof cbuf[i]); classes[i] = cbuf[i]; }
    for (int i = 0; i < ng; i++) { cl_tw_group_name(sp, i, gbuf[i], sizeof gbuf[i]); groups[i] = gbuf[i]; }
    set_names(m, "classes", classes, nl);
    set_names(m, "groups", groups, ng);
    set_names(m, "shapes", cl_tw_shape_names, CL_TW_NSHAPES);
    set_names(m, "colours", cl_tw_colour_names, CL_TW_NCOLOURS);
    set_names(m, "sizes", cl_tw_size_names, CL_TW_NSIZES);
    set_names(m, "positions", cl_tw_position_names, CL_TW_NPOSITIONS);
    set_names(m, "backgrounds", cl_tw_background_names, CL_TW_NBACKGROUNDS);
}

/* Item meta: label, group, text, captions and every attribute. */
static void item_meta(struct cl_value *m, enum cl_tw_split sp, const struct cl_tw_item *it)
{
    const struct cl_tw_scene *s = &it->scene;
    char name[64];
    int ok = 1, bt = cl_tw_bgtype(s->background);
    cl_value_map(m);
    if (it->label >= 0) {
        cl_tw_label_name(sp, it->label, name, sizeof name);
        ok = cl_map_set_int(m, "label", it->label) == CL_OK && cl_map_set_str(m, "class", name) == CL_OK;
    }
    cl_tw_group_name(sp, it->group, name, sizeof name);
    ok = ok && cl_map_set_int(m, "group", it->group) == CL_OK && cl_map_set_str(m, "group_name", name) == CL_OK &&
         cl_map_set_str(m, "text", it->caption) == CL_OK &&
         cl_map_set_str(m, "caption_full", it->caption_full) == CL_OK &&
         cl_map_set_int(m, "count", s->n) == CL_OK &&
         cl_map_set_str(m, "background", cl_tw_background_names[s->background]) == CL_OK &&
         (bt < 0 || cl_map_set_str(m, "bgtype", cl_tw_bgtype_names[bt]) == CL_OK);
    struct cl_value objs, o, v;
    cl_value_array(&objs);
    for (int k = 0; ok && k < s->n; k++) {
        const struct cl_tw_object *ob = &s->obj[k];
        int box[4];
        cl_tw_object_box(s, k, box);
        cl_value_map(&o);
        ok = cl_map_set_str(&o, "shape", cl_tw_shape_names[ob->shape]) == CL_OK &&
             cl_map_set_str(&o, "colour", cl_tw_colour_names[ob->colour]) == CL_OK &&
             cl_map_set_str(&o, "size", cl_tw_size_names[ob->size]) == CL_OK &&
             cl_map_set_str(&o, "position", cl_tw_position_names[ob->position]) == CL_OK &&
             cl_map_set_float(&o, "x", ob->cx / 64.0) == CL_OK &&      /* centre, pixels */
             cl_map_set_float(&o, "y", ob->cy / 64.0) == CL_OK &&
             cl_map_set_float(&o, "r", ob->r / 64.0) == CL_OK;         /* half box side, pixels */
        struct cl_value arr;
        cl_value_array(&arr);
        for (int i = 0; ok && i < 4; i++) {
            cl_value_int(&v, box[i]);
            ok = cl_array_push(&arr, &v) == CL_OK;
        }
        ok = ok && cl_map_set(&o, "box", &arr) == CL_OK && cl_array_push(&objs, &o) == CL_OK;
    }
    ok = ok && cl_map_set(m, "objects", &objs) == CL_OK;
    if (!ok) cl_die(CL_EXIT_IO, "out of memory");
}

static int cmd_stream(const struct args *a, char **captions, uint64_t n)
{
    static char pixels_name[] = "pixels", masks_name[] = "masks";
    struct cl_output out;
    struct cl_err e;
    struct cl_header h;
    struct cl_writer *w;
    struct batch b;
    struct cl_progress prog;
    int S = a->cfg.size;
    size_t px = (size_t)S * S;
    check(cl_output_open(&out, a->output, 1, &e), &e);
    cl_header_init(&h, "toyworld");
    header_meta(&h.meta, a, n);
    check(cl_writer_open(&w, out.fp, &h, a->level, &e), &e);
    batch_init(&b, &a->cfg, a->threads);
    b.captions = captions;
    uint8_t *chw = malloc(px * 3);                 /* [3,S,S] */
    if (!chw) cl_die(CL_EXIT_IO, "out of memory");
    struct cl_tensor t[2];
    memset(t, 0, sizeof t);
    t[0].name = pixels_name;
    t[0].dtype = CL_U8;
    t[0].ndim = 3;
    t[0].shape[0] = 3; t[0].shape[1] = S; t[0].shape[2] = S;
    t[0].data = chw;
    t[0].nbytes = px * 3;
    t[1].name = masks_name;
    t[1].dtype = CL_U8;
    t[1].ndim = 3;
    t[1].shape[1] = S; t[1].shape[2] = S;
    cl_progress_start(&prog, "scenes", n);
    double t0 = cl_now();
    for (uint64_t first = 0; first < n; first += (uint64_t)b.cap) {
        int count = n - first < (uint64_t)b.cap ? (int)(n - first) : b.cap;
        int bad = batch_run(&b, first, count);
        if (bad >= 0)
            cl_die(cl_status_exit(b.st[bad]), "item %llu: %s", (unsigned long long)(first + (uint64_t)bad),
                   b.err[bad].msg);
        for (int j = 0; j < count; j++) {
            const struct cl_tw_item *it = &b.items[j];
            const uint8_t *rgb = b.rgb + (size_t)j * px * 3;     /* [S,S,3] */
            for (size_t p = 0; p < px; p++)
                for (int c = 0; c < 3; c++) chw[c * px + p] = rgb[3 * p + c];
            t[1].shape[0] = it->scene.n;
            t[1].data = b.masks + (size_t)j * CL_TW_MAX_OBJECTS * px;
            t[1].nbytes = (size_t)it->scene.n * px;
            char id[32];
            struct cl_value meta;
            snprintf(id, sizeof id, "%06llu", (unsigned long long)(first + (uint64_t)j));
            item_meta(&meta, captions ? CL_TW_SPLIT_RANDOM : a->cfg.split, it);
            enum cl_status st = cl_writer_item_parts(w, id, &meta, t, 2, &e);
            cl_value_free(&meta);
            check(st, &e);
        }
        cl_progress_add(&prog, (uint64_t)count);
    }
    cl_progress_end(&prog);
    check(cl_writer_close(w, &e), &e);
    check(cl_output_commit(&out, &e), &e);
    double dt = cl_now() - t0;
    cl_info("%llu scenes (%.0f/s), split %s, seed %llu", (unsigned long long)n, dt > 0 ? (double)n / dt : 0.0,
            a->captions_path ? "captions" : cl_tw_split_names[a->cfg.split], (unsigned long long)a->cfg.seed);
    free(chw);
    batch_free(&b);
    cl_header_free(&h);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* pool                                                                      */
/* ------------------------------------------------------------------------ */

static int cmd_pool(const struct args *a)
{
    int attrs = strcmp(a->kind, "distractors") != 0, distr = strcmp(a->kind, "attributes") != 0;
    size_t n = cl_tw_pool(attrs, distr, NULL, 0);
    struct cl_tw_phrase *p = malloc(n * sizeof *p);
    if (!p) cl_die(CL_EXIT_IO, "out of memory");
    cl_tw_pool(attrs, distr, p, n);
    if (!a->plain) puts("family\ttext");
    for (size_t i = 0; i < n; i++) {
        if (a->plain) puts(p[i].text);
        else printf("%s\t%s\n", cl_tw_family_names[p[i].family], p[i].text);
    }
    free(p);
    if (fflush(stdout) != 0 || ferror(stdout)) cl_die(CL_EXIT_IO, "error writing standard output: %s", strerror(errno));
    return 0;
}

int main(int argc, char **argv)
{
    struct args a;
    struct captions caps = {0};
    int rc;
    cl_cli_init(argc, argv);
#ifdef __GLIBC__
    /* every PNG encode allocates and frees ~200 KB of zlib state: keep freed
     * memory instead of returning it (and faulting it back in) each time */
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    mallopt(M_MMAP_THRESHOLD, 16 << 20);
#endif
    parse_args(&a, argc, argv);
    if (!strcmp(a.cmd, "pool")) rc = cmd_pool(&a);
    else if (!strcmp(a.cmd, "render")) rc = cmd_render(&a);
    else {
        uint64_t n = (uint64_t)a.n;
        if (a.captions_path) {
            a.cfg.min_objects = 1;
            a.cfg.max_objects = 1;
            read_captions(&caps, a.captions_path, &a.cfg);
            n = caps.n;
        }
        rc = !strcmp(a.cmd, "dataset") ? cmd_dataset(&a, caps.line, n) : cmd_stream(&a, caps.line, n);
        free_captions(&caps);
    }
    free(a.caption);
    cl_opts_free(&a.opts);
    return rc;
}
