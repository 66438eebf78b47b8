/* cli.h - shared command-line plumbing for cmd/ programs: checked number
 * parsing, `prog: message` diagnostics, exit codes, atomic output files, a
 * progress bar on a terminal, and refusing binary output to a terminal.
 *
 * This is the only module of common/ allowed to print (it prints on behalf of
 * cmd/ mains); it never exits on its own except cl_die().
 */
#ifndef CL_CLI_H
#define CL_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "status.h"

enum { CL_EXIT_OK = 0, CL_EXIT_USAGE = 1, CL_EXIT_DATA = 2, CL_EXIT_IO = 3 };

extern const char *cl_prog;   /* set by cl_cli_init from argv[0] (basename) */
extern int cl_quiet;          /* -q: silence informational messages and progress */
#define CL_VERSION "0.1.0"

void cl_cli_init(int argc, char **argv);

/* "prog: message\n" on stderr. */
void cl_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Informational line on stderr unless -q. */
void cl_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print "prog: message" and exit with code. */
_Noreturn void cl_die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print "prog: <e->msg>" and exit with cl_status_exit(s). */
_Noreturn void cl_die_status(enum cl_status s, const struct cl_err *e);
/* Usage error: "prog: message\nTry 'prog --help'." and exit 1. */
_Noreturn void cl_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Checked number parsing: whole string, no junk, range [lo, hi].
 * Return 0 on success, -1 otherwise. */
int cl_parse_long(const char *s, long lo, long hi, long *out);
int cl_parse_double(const char *s, double lo, double hi, double *out);
/* Same, but on failure exit 1 with "prog: invalid value 'x' for --flag (expected ...)". */
long cl_flag_long(const char *flag, const char *s, long lo, long hi);
double cl_flag_double(const char *flag, const char *s, double lo, double hi);

/* A simple option scanner over argv: handles "--" (end of options), "-" as
 * an operand, "--flag=value" and "--flag value", "-x value".
 * Usage:
 *   struct cl_opts o; cl_opts_init(&o, argc, argv);
 *   while (cl_opts_next(&o)) {
 *       if (cl_opt_is(&o, "-o", "--output")) out = cl_opt_value(&o);
 *       else if (cl_opt_is(&o, "-q", "--quiet")) cl_quiet = 1;
 *       else cl_opt_unknown(&o);
 *   }
 *   // operands: o.operands[0 .. o.noperands-1]
 */
struct cl_opts {
    int argc, i;
    char **argv;
    const char *cur;          /* the current option (without "=value") */
    const char *inline_value; /* value after '=' if any */
    char curbuf[128];
    char **operands;          /* points into a copy of argv pointers */
    int noperands;
    int ended;                /* saw "--" */
};
void cl_opts_init(struct cl_opts *o, int argc, char **argv);
int cl_opts_next(struct cl_opts *o);       /* 1 while there is an option to handle */
int cl_opt_is(const struct cl_opts *o, const char *shortname, const char *longname);
const char *cl_opt_value(struct cl_opts *o); /* exits 1 when missing */
_Noreturn void cl_opt_unknown(const struct cl_opts *o);
void cl_opts_free(struct cl_opts *o);

/* Output: "-" or NULL means stdout.  Files are written to "<path>.tmp.<pid>"
 * and renamed on cl_output_commit; cl_output_abort removes the temp file.
 * Binary output to a terminal is refused (exit 1) unless allow_tty. */
struct cl_output {
    FILE *fp;
    char *path;      /* final path, NULL for stdout */
    char *tmp;       /* temp path */
    int is_stdout;
};
enum cl_status cl_output_open(struct cl_output *out, const char *path, int binary,
                              struct cl_err *e);
enum cl_status cl_output_commit(struct cl_output *out, struct cl_err *e); /* flush, check, rename */
void cl_output_abort(struct cl_output *out);                              /* NULL-safe */
/* Register an output so cl_die removes its temp file on error exits. */
void cl_output_register_cleanup(struct cl_output *out);

/* Input: "-" or NULL means stdin. */
enum cl_status cl_input_open(FILE **fp, const char *path, struct cl_err *e);

/* Progress bar on stderr, drawn only when stderr is a terminal and !cl_quiet:
 * "label  123/1000  45.6 it/s  ETA 0:20".  total 0 = unknown. */
struct cl_progress {
    const char *label;
    uint64_t total, done;
    double t0, last;
    int active;
};
void cl_progress_start(struct cl_progress *p, const char *label, uint64_t total);
void cl_progress_add(struct cl_progress *p, uint64_t n);
void cl_progress_end(struct cl_progress *p);

double cl_now(void); /* monotonic seconds */

/* The model directory to use: the -m value if given, else $CLIPLENS_MODEL, else
 * the bundled toy model (in-tree build, then the installed copy).  Returns NULL
 * and fills e when none exists. */
const char *cl_model_dir(const char *flag_value, struct cl_err *e);

struct cl_model_info; /* formats/stream.h */
/* Exit 2 unless the two streams' models are the same (name and architecture) when
 * both name one: "model mismatch: A comes from model ..., B from ...". */
void cl_require_same_model(const struct cl_model_info *a, const char *a_name, const struct cl_model_info *b,
                           const char *b_name);

/* Default thread count: the number of online processors (at least 1). */
int cl_default_threads(void);

#endif
