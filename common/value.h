/* value.h - a small dynamic value tree for stream meta data (labels, paths,
 * texts, per-head lists).  Plain data: formats/stream.c (de)serialises it.
 *
 * Values own their contents.  Maps keep insertion order; keys are unique
 * (setting an existing key replaces its value).
 */
#ifndef CL_VALUE_H
#define CL_VALUE_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

enum cl_vtype { CL_V_NIL = 0, CL_V_BOOL, CL_V_INT, CL_V_FLOAT, CL_V_STR, CL_V_BIN, CL_V_ARRAY, CL_V_MAP };

struct cl_value {
    enum cl_vtype type;
    union {
        int b;
        int64_t i;
        double f;
        struct { char *p; size_t len; } s;          /* STR (NUL-terminated too) and BIN */
        struct { struct cl_value *v; size_t n, cap; } a;
        struct { char **k; struct cl_value *v; size_t n, cap; } m;
    } u;
};

#define CL_VALUE_NIL ((struct cl_value){0})

void cl_value_free(struct cl_value *v);   /* frees contents, leaves NIL; NULL ok */
enum cl_status cl_value_copy(struct cl_value *dst, const struct cl_value *src);
int cl_value_equal(const struct cl_value *a, const struct cl_value *b);

/* Constructors (dst is overwritten, not freed). */
void cl_value_int(struct cl_value *dst, int64_t i);
void cl_value_float(struct cl_value *dst, double f);
void cl_value_bool(struct cl_value *dst, int b);
enum cl_status cl_value_str(struct cl_value *dst, const char *s, size_t len);
void cl_value_map(struct cl_value *dst);   /* empty map */
void cl_value_array(struct cl_value *dst); /* empty array */

/* Map access; a NIL value is treated as an empty map by readers. */
const struct cl_value *cl_map_get(const struct cl_value *map, const char *key);
/* Set key to *val, taking ownership of val's contents (val becomes NIL). */
enum cl_status cl_map_set(struct cl_value *map, const char *key, struct cl_value *val);
enum cl_status cl_map_set_int(struct cl_value *map, const char *key, int64_t i);
enum cl_status cl_map_set_float(struct cl_value *map, const char *key, double f);
enum cl_status cl_map_set_str(struct cl_value *map, const char *key, const char *s);
/* Typed getters: return 0 and set *out when key exists with a matching type. */
int cl_map_get_int(const struct cl_value *map, const char *key, int64_t *out);
int cl_map_get_float(const struct cl_value *map, const char *key, double *out); /* int ok too */
const char *cl_map_get_str(const struct cl_value *map, const char *key);
/* Array append, taking ownership of *val. */
enum cl_status cl_array_push(struct cl_value *arr, struct cl_value *val);

/* Render a value as compact JSON-like text (for info and select --meta);
 * strings are quoted.  Returns a malloc'd string or NULL. */
char *cl_value_to_text(const struct cl_value *v);
/* Render a scalar for KEY=VALUE matching: strings unquoted, numbers as %g / %lld. */
char *cl_value_to_plain(const struct cl_value *v);

#endif
