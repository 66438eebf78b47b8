/* stream.h - the cliplens tensor stream (formats/STREAM.md is normative).
 *
 * A stream is header, item*, trailer as msgpack maps, in one or more zstd
 * frames or uncompressed; concatenated streams are one stream.  The reader
 * validates everything before allocating and reports the byte offset (in the
 * decompressed content) and item index of any error.  A stream that ends
 * without its trailer is truncated: an error, never a clean end.
 *
 * Reader usage:
 *   struct cl_reader *r; struct cl_item it = {0}; struct cl_err e;
 *   if (cl_reader_open(&r, "in.cts", &e)) ... ;
 *   const struct cl_header *h = cl_reader_header(r);
 *   while ((s = cl_reader_next(r, &it, &e)) == CL_OK) { ... it.t[i] ... }
 *   if (s != CL_END) error;   // CL_END only after a valid trailer and EOF
 *   cl_item_free(&it); cl_reader_close(r);
 *
 * Writer usage:
 *   struct cl_writer *w; cl_writer_open(&w, fp, &header, level, &e);
 *   cl_writer_item(w, &item, &e) ...; cl_writer_close(w, &e);  // writes trailer
 */
#ifndef CL_STREAM_H
#define CL_STREAM_H

#include <stdint.h>
#include <stdio.h>

#include "status.h"
#include "tensor.h"
#include "value.h"

#define CL_STREAM_VERSION 1
#define CL_STREAM_MAX_RECORD ((size_t)4 << 30) /* cap on one item's encoded size */
#define CL_STREAM_MAX_TENSORS 4096             /* cap on tensors per item */
#define CL_STREAM_MAX_DEPTH 32                 /* msgpack nesting cap */

struct cl_model_info {
    int present;         /* 0: the header's "model" is nil */
    char name[256];
    char layout[32];     /* "hf" or "open_clip" */
    int64_t layers, heads, width, embed_dim, patch, image_size;
};

struct cl_header {
    char kind[64];               /* "image", "text", "classifier", "pixels", "decompose", ... */
    struct cl_model_info model;
    struct cl_value meta;        /* map (or NIL) */
};

struct cl_item {
    char *id;
    struct cl_value meta;        /* map (or NIL) */
    int nt;                      /* tensors in use */
    int cap;                     /* tensors allocated (buffers are reused between items) */
    struct cl_tensor *t;
};

/* ---- items ---- */
void cl_item_free(struct cl_item *it);  /* NULL ok */
void cl_item_clear(struct cl_item *it); /* drop id, meta and tensors, keep buffers */
const struct cl_tensor *cl_item_get(const struct cl_item *it, const char *name);
/* Add (or reuse) a tensor slot with this name, dtype and shape; returns it via *out. */
enum cl_status cl_item_add(struct cl_item *it, const char *name, enum cl_dtype dtype, int ndim,
                           const int64_t *shape, struct cl_tensor **out, struct cl_err *e);
enum cl_status cl_item_set_id(struct cl_item *it, const char *id, struct cl_err *e);

/* ---- headers ---- */
void cl_header_init(struct cl_header *h, const char *kind);
void cl_header_free(struct cl_header *h);
/* Same model: name and architecture (the layout is not compared: both layouts of a
 * model give the same outputs). */
int cl_model_info_same(const struct cl_model_info *a, const struct cl_model_info *b);
/* Same kind and model, layout included (what a repeated header must keep). */
int cl_header_compatible(const struct cl_header *a, const struct cl_header *b);

/* ---- reader ---- */
struct cl_reader;
/* path "-" or NULL: stdin.  Reads and validates the first header. */
enum cl_status cl_reader_open(struct cl_reader **r, const char *path, struct cl_err *e);
/* Read from an open FILE (not closed by the reader); name is used in messages. */
enum cl_status cl_reader_open_fp(struct cl_reader **r, FILE *fp, const char *name, struct cl_err *e);
/* Read from memory (fuzzing, tests). */
enum cl_status cl_reader_open_mem(struct cl_reader **r, const void *buf, size_t len,
                                  const char *name, struct cl_err *e);
const struct cl_header *cl_reader_header(const struct cl_reader *r);
/* Next item: CL_OK, CL_END after the last trailer at EOF, or an error. */
enum cl_status cl_reader_next(struct cl_reader *r, struct cl_item *it, struct cl_err *e);
uint64_t cl_reader_items(const struct cl_reader *r);   /* items read so far */
uint64_t cl_reader_streams(const struct cl_reader *r); /* headers seen so far */
void cl_reader_close(struct cl_reader *r);             /* NULL ok */

/* ---- writer ---- */
struct cl_writer;
/* level: zstd level 1..19, or 0 for uncompressed msgpack.  The writer flushes
 * after each item so a reader downstream of a pipe sees items as they come. */
enum cl_status cl_writer_open(struct cl_writer **w, FILE *fp, const struct cl_header *h,
                              int level, struct cl_err *e);
enum cl_status cl_writer_item(struct cl_writer *w, const struct cl_item *it, struct cl_err *e);
/* Write item parts directly (no cl_item needed). */
enum cl_status cl_writer_item_parts(struct cl_writer *w, const char *id, const struct cl_value *meta,
                                    const struct cl_tensor *t, int nt, struct cl_err *e);
/* Writes the trailer, ends the frame and flushes; frees w. */
enum cl_status cl_writer_close(struct cl_writer *w, struct cl_err *e);
/* Frees w without writing a trailer (the output is then a truncated stream). */
void cl_writer_abort(struct cl_writer *w);
uint64_t cl_writer_count(const struct cl_writer *w);

#define CL_STREAM_DEFAULT_LEVEL 3

#endif
