/* cli.c - shared command-line plumbing for cmd/ mains: diagnostics, exit
 * codes, checked numbers, an option scanner, atomic outputs, a progress bar. */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "stream.h"

const char *cl_prog = "cliplens";
int cl_quiet = 0;

#define MAX_CLEANUP 8
static struct cl_output *cleanup[MAX_CLEANUP];

void cl_cli_init(int argc, char **argv)
{
    if (argc > 0 && argv[0]) {
        const char *slash = strrchr(argv[0], '/');
        cl_prog = slash ? slash + 1 : argv[0];
    }
}

static void vmsg(const char *fmt, va_list ap)
{
    fprintf(stderr, "%s: ", cl_prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void cl_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(fmt, ap);
    va_end(ap);
}

void cl_info(const char *fmt, ...)
{
    if (cl_quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    vmsg(fmt, ap);
    va_end(ap);
}

static void run_cleanup(void)
{
    for (int i = 0; i < MAX_CLEANUP; i++) {
        if (cleanup[i]) {
            cl_output_abort(cleanup[i]);
            cleanup[i] = NULL;
        }
    }
}

void cl_die(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(fmt, ap);
    va_end(ap);
    run_cleanup();
    exit(code);
}

void cl_die_status(enum cl_status s, const struct cl_err *e)
{
    cl_die(cl_status_exit(s), "%s", e && e->msg[0] ? e->msg : cl_status_str(s));
}

void cl_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(fmt, ap);
    va_end(ap);
    fprintf(stderr, "Try '%s --help' for more information.\n", cl_prog);
    run_cleanup();
    exit(CL_EXIT_USAGE);
}

int cl_parse_long(const char *s, long lo, long hi, long *out)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno == ERANGE || *end != 0 || end == s || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int cl_parse_double(const char *s, double lo, double hi, double *out)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno == ERANGE || *end != 0 || end == s || !isfinite(v) || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

long cl_flag_long(const char *flag, const char *s, long lo, long hi)
{
    long v;
    if (cl_parse_long(s, lo, hi, &v) != 0)
        cl_usage_error("invalid value '%s' for %s (expected an integer in %ld..%ld)", s, flag, lo, hi);
    return v;
}

double cl_flag_double(const char *flag, const char *s, double lo, double hi)
{
    double v;
    if (cl_parse_double(s, lo, hi, &v) != 0)
        cl_usage_error("invalid value '%s' for %s (expected a number in %g..%g)", s, flag, lo, hi);
    return v;
}

/* ---- option scanner ---- */
void cl_opts_init(struct cl_opts *o, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    o->argc = argc;
    o->argv = argv;
    o->i = 1;
    o->operands = calloc((size_t)(argc > 0 ? argc : 1), sizeof *o->operands);
    if (!o->operands)
        cl_die(CL_EXIT_IO, "out of memory");
}

int cl_opts_next(struct cl_opts *o)
{
    while (o->i < o->argc) {
        char *a = o->argv[o->i++];
        if (o->ended || a[0] != '-' || a[1] == 0) { /* operand, including "-" */
            o->operands[o->noperands++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            o->ended = 1;
            continue;
        }
        o->inline_value = NULL;
        const char *eq = a[1] == '-' ? strchr(a, '=') : NULL;
        size_t n = eq ? (size_t)(eq - a) : strlen(a);
        if (n >= sizeof o->curbuf)
            n = sizeof o->curbuf - 1;
        memcpy(o->curbuf, a, n);
        o->curbuf[n] = 0;
        o->cur = o->curbuf;
        if (eq)
            o->inline_value = eq + 1;
        return 1;
    }
    return 0;
}

int cl_opt_is(const struct cl_opts *o, const char *shortname, const char *longname)
{
    return (shortname && strcmp(o->cur, shortname) == 0) || (longname && strcmp(o->cur, longname) == 0);
}

const char *cl_opt_value(struct cl_opts *o)
{
    if (o->inline_value) {
        const char *v = o->inline_value;
        o->inline_value = NULL;
        return v;
    }
    if (o->i >= o->argc)
        cl_usage_error("option %s needs a value", o->cur);
    return o->argv[o->i++];
}

void cl_opt_unknown(const struct cl_opts *o)
{
    cl_usage_error("unknown option '%s'", o->cur);
}

void cl_opts_free(struct cl_opts *o)
{
    free(o->operands);
    o->operands = NULL;
}

/* ---- outputs ---- */
enum cl_status cl_output_open(struct cl_output *out, const char *path, int binary, struct cl_err *e)
{
    memset(out, 0, sizeof *out);
    if (!path || strcmp(path, "-") == 0) {
        if (binary && isatty(STDOUT_FILENO))
            return cl_errf(e, CL_ERR_USAGE,
                           "refusing to write binary output to a terminal (use -o FILE or a pipe)");
        out->fp = stdout;
        out->is_stdout = 1;
        return CL_OK;
    }
    size_t n = strlen(path) + 32;
    out->path = strdup(path);
    out->tmp = malloc(n);
    if (!out->path || !out->tmp) {
        free(out->path);
        free(out->tmp);
        return cl_errf(e, CL_ERR_NOMEM, "out of memory");
    }
    snprintf(out->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    out->fp = fopen(out->tmp, "wb");
    if (!out->fp) {
        enum cl_status s = cl_errf(e, CL_ERR_IO, "cannot create '%s': %s", out->tmp, strerror(errno));
        free(out->path);
        free(out->tmp);
        memset(out, 0, sizeof *out);
        return s;
    }
    cl_output_register_cleanup(out);
    return CL_OK;
}

static void unregister(struct cl_output *out)
{
    for (int i = 0; i < MAX_CLEANUP; i++)
        if (cleanup[i] == out)
            cleanup[i] = NULL;
}

void cl_output_register_cleanup(struct cl_output *out)
{
    for (int i = 0; i < MAX_CLEANUP; i++) {
        if (cleanup[i] == NULL || cleanup[i] == out) {
            cleanup[i] = out;
            return;
        }
    }
}

enum cl_status cl_output_commit(struct cl_output *out, struct cl_err *e)
{
    if (!out->fp)
        return cl_errf(e, CL_ERR_IO, "output not open");
    const char *name = out->is_stdout ? "standard output" : out->path;
    int bad = fflush(out->fp) != 0 || ferror(out->fp);
    if (out->is_stdout) {
        out->fp = NULL;
        if (bad)
            return cl_errf(e, CL_ERR_IO, "error writing %s: %s", name, strerror(errno));
        return CL_OK;
    }
    if (fclose(out->fp) != 0)
        bad = 1;
    out->fp = NULL;
    if (bad) {
        enum cl_status s = cl_errf(e, CL_ERR_IO, "error writing '%s': %s", name, strerror(errno));
        cl_output_abort(out);
        return s;
    }
    if (rename(out->tmp, out->path) != 0) {
        enum cl_status s = cl_errf(e, CL_ERR_IO, "cannot rename '%s' to '%s': %s", out->tmp, out->path,
                                   strerror(errno));
        cl_output_abort(out);
        return s;
    }
    unregister(out);
    free(out->tmp);
    free(out->path);
    out->tmp = out->path = NULL;
    return CL_OK;
}

void cl_output_abort(struct cl_output *out)
{
    if (!out)
        return;
    unregister(out);
    if (out->fp && !out->is_stdout)
        fclose(out->fp);
    out->fp = NULL;
    if (out->tmp)
        unlink(out->tmp);
    free(out->tmp);
    free(out->path);
    out->tmp = out->path = NULL;
}

enum cl_status cl_input_open(FILE **fp, const char *path, struct cl_err *e)
{
    if (!path || strcmp(path, "-") == 0) {
        *fp = stdin;
        return CL_OK;
    }
    *fp = fopen(path, "rb");
    if (!*fp)
        return cl_errf(e, errno == ENOENT || errno == EACCES || errno == EISDIR ? CL_ERR_IO : CL_ERR_IO,
                       "cannot open '%s': %s", path, strerror(errno));
    return CL_OK;
}

/* ---- progress ---- */
double cl_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void draw(struct cl_progress *p, double now)
{
    double el = now - p->t0, rate = el > 0 ? (double)p->done / el : 0;
    fprintf(stderr, "\r%s  %llu", p->label, (unsigned long long)p->done);
    if (p->total)
        fprintf(stderr, "/%llu", (unsigned long long)p->total);
    fprintf(stderr, "  %.1f it/s", rate);
    if (p->total && rate > 0 && p->done <= p->total) {
        long eta = (long)((double)(p->total - p->done) / rate);
        fprintf(stderr, "  ETA %ld:%02ld", eta / 60, eta % 60);
    }
    fprintf(stderr, "\033[K");
}

void cl_progress_start(struct cl_progress *p, const char *label, uint64_t total)
{
    memset(p, 0, sizeof *p);
    p->label = label;
    p->total = total;
    p->t0 = p->last = cl_now();
    p->active = !cl_quiet && isatty(STDERR_FILENO);
}

void cl_progress_add(struct cl_progress *p, uint64_t n)
{
    p->done += n;
    if (!p->active)
        return;
    double now = cl_now();
    if (now - p->last >= 0.1) {
        p->last = now;
        draw(p, now);
    }
}

void cl_progress_end(struct cl_progress *p)
{
    if (!p->active)
        return;
    draw(p, cl_now());
    fputc('\n', stderr);
    p->active = 0;
}

#ifndef CL_DEFAULT_MODEL_DIR
#define CL_DEFAULT_MODEL_DIR "models/toyclip"
#endif
#ifndef CL_INSTALLED_MODEL_DIR
#define CL_INSTALLED_MODEL_DIR "/usr/local/share/cliplens/models/toyclip"
#endif

static int is_dir(const char *p)
{
    struct stat st;
    return p && stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

const char *cl_model_dir(const char *flag_value, struct cl_err *e)
{
    if (flag_value)
        return flag_value;
    const char *env = getenv("CLIPLENS_MODEL");
    if (env && *env)
        return env;
    if (is_dir(CL_DEFAULT_MODEL_DIR))
        return CL_DEFAULT_MODEL_DIR;
    /* installed: PREFIX/bin/prog -> PREFIX/share/cliplens/models/toyclip, wherever PREFIX is */
    static char beside[4096];
    ssize_t n = readlink("/proc/self/exe", beside, sizeof beside - 64);
    if (n > 0) {
        beside[n] = 0;
        char *slash = strrchr(beside, '/');
        if (slash) {
            *slash = 0;
            slash = strrchr(beside, '/');
            if (slash) {
                snprintf(slash, sizeof beside - (size_t)(slash - beside), "/share/cliplens/models/toyclip");
                if (is_dir(beside))
                    return beside;
            }
        }
    }
    if (is_dir(CL_INSTALLED_MODEL_DIR))
        return CL_INSTALLED_MODEL_DIR;
    cl_errf(e, CL_ERR_USAGE, "no model: the bundled toy model is not built (expected %s or %s); pass -m DIR "
            "(an HF or OpenCLIP model directory) or set CLIPLENS_MODEL", CL_DEFAULT_MODEL_DIR, CL_INSTALLED_MODEL_DIR);
    return NULL;
}

void cl_require_same_model(const struct cl_model_info *x, const char *an, const struct cl_model_info *y,
                           const char *bn)
{
    if (!x->present || !y->present || cl_model_info_same(x, y))
        return;
    cl_die(CL_EXIT_DATA, "model mismatch: %s comes from model \"%s\" (%" PRId64 " layers, width %" PRId64
           ", embed_dim %" PRId64 "), %s from \"%s\" (%" PRId64 " layers, width %" PRId64 ", embed_dim %" PRId64
           "): embeddings of different models cannot be compared",
           an, x->name, x->layers, x->width, x->embed_dim, bn, y->name, y->layers, y->width, y->embed_dim);
}

int cl_default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 256 ? 256 : (int)n;
}
