/* status.h - status codes and error messages shared by every library module.
 *
 * Library code (common/, formats/) never prints or exits: it returns an
 * enum cl_status and, on failure, fills a struct cl_err with a one-line
 * message naming the file, record and expectation.  Only cmd/ prints.
 */
#ifndef CL_STATUS_H
#define CL_STATUS_H

#include <stdarg.h>

enum cl_status {
    CL_OK = 0,
    CL_END,             /* clean end of input (not an error) */
    CL_ERR_USAGE,       /* bad flags or arguments */
    CL_ERR_DATA,        /* malformed, truncated or inconsistent input data */
    CL_ERR_UNSUPPORTED, /* well-formed input we refuse by design (named) */
    CL_ERR_IO,          /* open/read/write/rename failed */
    CL_ERR_NOMEM        /* allocation failed */
};

#define CL_ERR_MSG 512

struct cl_err {
    char msg[CL_ERR_MSG];
};

const char *cl_status_str(enum cl_status s);

/* Process exit code for a status: 0 ok, 1 usage, 2 bad data, 3 I/O or system. */
int cl_status_exit(enum cl_status s);

/* Format a message into e (if e is non-NULL) and return s. */
enum cl_status cl_errf(struct cl_err *e, enum cl_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefix an existing message: "prefix: old message". Returns s. */
enum cl_status cl_err_prefix(struct cl_err *e, enum cl_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
