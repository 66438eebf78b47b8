/* status.c - status strings, exit codes and message formatting. */
#include "status.h"

#include <stdio.h>
#include <string.h>

const char *cl_status_str(enum cl_status s)
{
    switch (s) {
    case CL_OK: return "ok";
    case CL_END: return "end of input";
    case CL_ERR_USAGE: return "usage error";
    case CL_ERR_DATA: return "bad input data";
    case CL_ERR_UNSUPPORTED: return "unsupported input";
    case CL_ERR_IO: return "I/O error";
    case CL_ERR_NOMEM: return "out of memory";
    }
    return "unknown status";
}

int cl_status_exit(enum cl_status s)
{
    switch (s) {
    case CL_OK: case CL_END: return 0;
    case CL_ERR_USAGE: return 1;
    case CL_ERR_DATA: case CL_ERR_UNSUPPORTED: return 2;
    case CL_ERR_IO: case CL_ERR_NOMEM: return 3;
    }
    return 3;
}

enum cl_status cl_errf(struct cl_err *e, enum cl_status s, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return s;
}

enum cl_status cl_err_prefix(struct cl_err *e, enum cl_status s, const char *fmt, ...)
{
    if (e) {
        char old[CL_ERR_MSG];
        va_list ap;
        memcpy(old, e->msg, sizeof old);
        old[sizeof old - 1] = 0;
        va_start(ap, fmt);
        int n = vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
        if (n < 0)
            n = 0;
        size_t used = (size_t)n < sizeof e->msg ? (size_t)n : sizeof e->msg - 1;
        /* append ": old", truncating to the buffer */
        const char *parts[2] = {": ", old};
        for (int i = 0; i < 2; i++) {
            size_t k = strlen(parts[i]);
            if (k > sizeof e->msg - 1 - used)
                k = sizeof e->msg - 1 - used;
            memcpy(e->msg + used, parts[i], k);
            used += k;
        }
        e->msg[used] = 0;
    }
    return s;
}
