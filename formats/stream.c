/* stream.c - the tensor stream reader and writer (see formats/STREAM.md).
 *
 * Reader layers, bottom up:
 *   source   raw bytes from a FILE or memory;
 *   content  the logical msgpack bytes: zstd frames are decompressed, plain
 *            msgpack passes through; the mode is sniffed at every frame end
 *            and, for plain msgpack, at every record boundary, so any mix of
 *            concatenated streams reads as one;
 *   scanner  finds the extent of the next complete msgpack object without
 *            allocating and bounds it by CL_STREAM_MAX_RECORD; only a
 *            complete object is handed to msgpack-c, so every count it
 *            allocates for is backed by bytes present;
 *   records  header / item / trailer, validated into cl_header and cl_item.
 */
#include "stream.h"

#include <errno.h>
#include <inttypes.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

/* ================================================================ items */

void cl_item_clear(struct cl_item *it)
{
    free(it->id);
    it->id = NULL;
    cl_value_free(&it->meta);
    it->nt = 0;
}

void cl_item_free(struct cl_item *it)
{
    if (!it)
        return;
    cl_item_clear(it);
    for (int i = 0; i < it->cap; i++)
        cl_tensor_free(&it->t[i]);
    free(it->t);
    memset(it, 0, sizeof *it);
}

const struct cl_tensor *cl_item_get(const struct cl_item *it, const char *name)
{
    for (int i = 0; i < it->nt; i++)
        if (it->t[i].name && strcmp(it->t[i].name, name) == 0)
            return &it->t[i];
    return NULL;
}

enum cl_status cl_item_add(struct cl_item *it, const char *name, enum cl_dtype dtype, int ndim,
                           const int64_t *shape, struct cl_tensor **out, struct cl_err *e)
{
    if (it->nt >= CL_STREAM_MAX_TENSORS)
        return cl_errf(e, CL_ERR_DATA, "more than %d tensors in one item", CL_STREAM_MAX_TENSORS);
    if (it->nt == it->cap) {
        int cap = it->cap ? it->cap * 2 : 8;
        struct cl_tensor *t = realloc(it->t, (size_t)cap * sizeof *t);
        if (!t)
            return cl_errf(e, CL_ERR_NOMEM, "out of memory");
        memset(t + it->cap, 0, (size_t)(cap - it->cap) * sizeof *t);
        it->t = t;
        it->cap = cap;
    }
    struct cl_tensor *t = &it->t[it->nt];
    enum cl_status s = cl_tensor_reshape(t, name, dtype, ndim, shape, e);
    if (s != CL_OK)
        return s;
    it->nt++;
    if (out)
        *out = t;
    return CL_OK;
}

enum cl_status cl_item_set_id(struct cl_item *it, const char *id, struct cl_err *e)
{
    char *c = strdup(id);
    if (!c)
        return cl_errf(e, CL_ERR_NOMEM, "out of memory");
    free(it->id);
    it->id = c;
    return CL_OK;
}

/* ============================================================== headers */

void cl_header_init(struct cl_header *h, const char *kind)
{
    memset(h, 0, sizeof *h);
    snprintf(h->kind, sizeof h->kind, "%s", kind ? kind : "");
    cl_value_map(&h->meta);
}

void cl_header_free(struct cl_header *h)
{
    if (h)
        cl_value_free(&h->meta);
}

int cl_model_info_same(const struct cl_model_info *x, const struct cl_model_info *y)
{
    return strcmp(x->name, y->name) == 0 && x->layers == y->layers && x->heads == y->heads &&
           x->width == y->width && x->embed_dim == y->embed_dim && x->patch == y->patch &&
           x->image_size == y->image_size;
}

int cl_header_compatible(const struct cl_header *a, const struct cl_header *b)
{
    if (strcmp(a->kind, b->kind) != 0 || a->model.present != b->model.present)
        return 0;
    return !a->model.present ||
           (cl_model_info_same(&a->model, &b->model) && strcmp(a->model.layout, b->model.layout) == 0);
}

/* =============================================================== reader */

enum mode { MODE_SNIFF, MODE_ZSTD, MODE_RAW };
enum expect { EXPECT_HEADER, EXPECT_ITEM, EXPECT_AFTER_TRAILER };

struct cl_reader {
    /* source */
    FILE *fp;
    int own_fp;
    const unsigned char *mem;
    size_t mem_len, mem_pos;
    int src_eof;
    char name[256];
    /* compressed input (zstd mode) */
    unsigned char *in;
    size_t in_pos, in_len, in_cap;
    ZSTD_DCtx *dctx;
    int frame_open;     /* inside a zstd frame that has not ended */
    uint64_t frames;
    enum mode mode;
    /* content bytes */
    unsigned char *buf;
    size_t pos, len, cap;
    uint64_t base;      /* content offset of buf[0] */
    /* records */
    enum expect expect;
    struct cl_header header;
    uint64_t items, seg_items, streams;
    msgpack_zone zone;
    int zone_ok;
};

static const unsigned char zstd_magic[4] = {0x28, 0xb5, 0x2f, 0xfd};

static int is_frame_magic(const unsigned char *p)
{
    if (memcmp(p, zstd_magic, 4) == 0)
        return 1;
    /* skippable frames: 0x184D2A50..5F little-endian */
    return (p[0] & 0xf0) == 0x50 && p[1] == 0x2a && p[2] == 0x4d && p[3] == 0x18;
}

/* Read raw bytes from the source; returns count, 0 at EOF, -1 on error. */
static long src_read(struct cl_reader *r, unsigned char *dst, size_t n)
{
    if (r->src_eof || n == 0)
        return 0;
    if (r->mem) {
        size_t k = r->mem_len - r->mem_pos < n ? r->mem_len - r->mem_pos : n;
        memcpy(dst, r->mem + r->mem_pos, k);
        r->mem_pos += k;
        if (k == 0)
            r->src_eof = 1;
        return (long)k;
    }
    size_t k = fread(dst, 1, n, r->fp);
    if (k == 0) {
        if (ferror(r->fp))
            return -1;
        r->src_eof = 1;
    }
    return (long)k;
}

static enum cl_status reserve(unsigned char **p, size_t *cap, size_t want, struct cl_err *e)
{
    if (want <= *cap)
        return CL_OK;
    size_t c = *cap ? *cap : 65536;
    while (c < want)
        c = c > SIZE_MAX / 2 ? want : c * 2;
    unsigned char *q = realloc(*p, c);
    if (!q)
        return cl_errf(e, CL_ERR_NOMEM, "out of memory (%zu bytes of stream buffer)", c);
    *p = q;
    *cap = c;
    return CL_OK;
}

/* Make sure the compressed buffer holds at least n unconsumed bytes, if the source has them. */
static enum cl_status in_fill(struct cl_reader *r, size_t n, struct cl_err *e)
{
    if (r->in_len - r->in_pos >= n)
        return CL_OK;
    if (r->in_pos > 0) {
        memmove(r->in, r->in + r->in_pos, r->in_len - r->in_pos);
        r->in_len -= r->in_pos;
        r->in_pos = 0;
    }
    size_t want = n > (1 << 20) ? n : (1 << 20);
    enum cl_status s = reserve(&r->in, &r->in_cap, want, e);
    if (s != CL_OK)
        return s;
    while (r->in_len < n && !r->src_eof) {
        long k = src_read(r, r->in + r->in_len, r->in_cap - r->in_len);
        if (k < 0)
            return cl_errf(e, CL_ERR_IO, "%s: read error: %s", r->name, strerror(errno));
        r->in_len += (size_t)k;
    }
    return CL_OK;
}

static void compact(struct cl_reader *r)
{
    if (r->pos == 0)
        return;
    memmove(r->buf, r->buf + r->pos, r->len - r->pos);
    r->len -= r->pos;
    r->base += r->pos;
    r->pos = 0;
}

/* Add content bytes so that at least `need` unconsumed bytes are buffered,
 * or the input is exhausted.  Truncated zstd frames are errors here. */
static enum cl_status fill(struct cl_reader *r, size_t need, struct cl_err *e)
{
    enum cl_status s;
    if (r->len - r->pos >= need)
        return CL_OK;
    compact(r);
    while (r->len < need) {
        /* grow with the bytes that actually arrive, never to a size a record
         * merely claims: a hostile length must not allocate before its bytes */
        if (r->cap - r->len < (1 << 16)) {
            size_t want = r->cap * 2 > r->len + (1 << 20) ? r->cap * 2 : r->len + (1 << 20);
            if (want > need + (1 << 16))
                want = need + (1 << 16);
            if (want < r->len + (1 << 16))
                want = r->len + (1 << 16);
            if ((s = reserve(&r->buf, &r->cap, want, e)) != CL_OK)
                return s;
        }
        if (r->mode == MODE_SNIFF) {
            /* at a frame boundary (or the very start): zstd frame or plain msgpack? */
            if ((s = in_fill(r, 4, e)) != CL_OK)
                return s;
            size_t avail = r->in_len - r->in_pos;
            if (avail == 0)
                return CL_OK; /* clean byte-level EOF */
            if (avail >= 4 && is_frame_magic(r->in + r->in_pos)) {
                r->mode = MODE_ZSTD;
                ZSTD_DCtx_reset(r->dctx, ZSTD_reset_session_only);
            } else {
                r->mode = MODE_RAW;
            }
            continue;
        }
        if (r->mode == MODE_RAW) {
            /* first hand over bytes already read into the compressed buffer */
            size_t avail = r->in_len - r->in_pos;
            if (avail) {
                size_t k = avail < r->cap - r->len ? avail : r->cap - r->len;
                memcpy(r->buf + r->len, r->in + r->in_pos, k);
                r->in_pos += k;
                r->len += k;
                continue;
            }
            long k = src_read(r, r->buf + r->len, r->cap - r->len);
            if (k < 0)
                return cl_errf(e, CL_ERR_IO, "%s: read error: %s", r->name, strerror(errno));
            if (k == 0)
                return CL_OK;
            r->len += (size_t)k;
            continue;
        }
        /* MODE_ZSTD */
        if ((s = in_fill(r, 1, e)) != CL_OK)
            return s;
        if (r->in_len == r->in_pos) {
            if (r->frame_open)
                return cl_errf(e, CL_ERR_DATA,
                               "%s: truncated stream: input ends inside a zstd frame (frame %" PRIu64
                               ", content offset %" PRIu64 ")",
                               r->name, r->frames + 1, r->base + r->len);
            r->mode = MODE_SNIFF;
            return CL_OK;
        }
        if (!r->frame_open) {
            if ((s = in_fill(r, 4, e)) != CL_OK)
                return s;
            if (r->in_len - r->in_pos < 4 || !is_frame_magic(r->in + r->in_pos)) {
                r->mode = MODE_RAW; /* a plain msgpack stream follows */
                continue;
            }
            r->frame_open = 1;
        }
        ZSTD_inBuffer ib = {r->in, r->in_len, r->in_pos};
        ZSTD_outBuffer ob = {r->buf, r->cap, r->len};
        size_t ret = ZSTD_decompressStream(r->dctx, &ob, &ib);
        if (ZSTD_isError(ret))
            return cl_errf(e, CL_ERR_DATA, "%s: corrupt zstd data in frame %" PRIu64 " near content offset %" PRIu64
                           ": %s", r->name, r->frames + 1, r->base + r->len, ZSTD_getErrorName(ret));
        r->in_pos = ib.pos;
        r->len = ob.pos;
        if (ret == 0) {
            r->frame_open = 0;
            r->frames++;
        }
    }
    return CL_OK;
}

/* ---- scanner: extent of one msgpack object, no allocation ---- */

enum scan_result { SCAN_COMPLETE, SCAN_MORE, SCAN_BAD };

static uint64_t be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* On SCAN_COMPLETE *out is the object's length; on SCAN_MORE *out is a lower
 * bound on the bytes needed; on SCAN_BAD *out is the offset of the bad byte. */
static enum scan_result scan(const unsigned char *p, size_t n, size_t *out)
{
    uint64_t remaining[CL_STREAM_MAX_DEPTH + 1]; /* objects still to read per level */
    int depth = 0;
    size_t off = 0;
    remaining[0] = 1;
    while (depth >= 0) {
        if (remaining[depth] == 0) {
            depth--;
            continue;
        }
        remaining[depth]--;
        if (off >= n) { *out = off + 1; return SCAN_MORE; }
        unsigned char c = p[off];
        uint64_t skip = 0, children = 0; /* payload bytes after the header; nested objects */
        size_t hdr = 1;
        if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
        } else if (c >= 0x80 && c <= 0x8f) { children = 2 * (uint64_t)(c & 0x0f);
        } else if (c >= 0x90 && c <= 0x9f) { children = c & 0x0f;
        } else if (c >= 0xa0 && c <= 0xbf) { skip = c & 0x1f;
        } else {
            static const unsigned char lenbytes[] = {
                /* c4 bin8 */ 1, 2, 4, /* c7 ext8 */ 1, 2, 4, /* ca float */ 0, 0,
                /* cc uint */ 0, 0, 0, 0, /* d0 int */ 0, 0, 0, 0, /* d4 fixext */ 0, 0, 0, 0, 0,
                /* d9 str */ 1, 2, 4, /* dc array */ 2, 4, /* de map */ 2, 4};
            static const unsigned char fixed[] = {
                0, 0, 0, 0, 0, 0, 4, 8, 1, 2, 4, 8, 1, 2, 4, 8, 2, 3, 5, 9, 17, 0, 0, 0, 0, 0, 0, 0};
            if (c == 0xc1) { *out = off; return SCAN_BAD; }
            int idx = c - 0xc4;
            int lb = lenbytes[idx];
            hdr = 1 + (size_t)lb;
            if (off + hdr > n) { *out = off + hdr; return SCAN_MORE; }
            uint64_t len = lb ? be(p + off + 1, lb) : 0;
            if (c >= 0xc7 && c <= 0xc9) { hdr += 1; skip = len; }    /* ext: type byte + data */
            else if (c <= 0xc6 || (c >= 0xd9 && c <= 0xdb)) skip = len; /* bin, str */
            else if (c == 0xdc || c == 0xdd) children = len;
            else if (c == 0xde || c == 0xdf) children = 2 * len;
            else skip = fixed[idx];
        }
        uint64_t end = (uint64_t)off + hdr + skip;
        if (end > CL_STREAM_MAX_RECORD) { *out = SIZE_MAX; return SCAN_MORE; }
        if (end > n) { *out = (size_t)end; return SCAN_MORE; }
        off = (size_t)end;
        if (children) {
            /* every child needs at least one byte: a count beyond the cap can never complete */
            if (children > CL_STREAM_MAX_RECORD) { *out = SIZE_MAX; return SCAN_MORE; }
            if (depth == CL_STREAM_MAX_DEPTH) { *out = off; return SCAN_BAD; }
            remaining[++depth] = children;
        }
    }
    *out = off;
    return SCAN_COMPLETE;
}

/* ---- records ---- */

static int key_is(const msgpack_object *k, const char *s)
{
    size_t n = strlen(s);
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n && memcmp(k->via.str.ptr, s, n) == 0;
}

static const msgpack_object *map_find(const msgpack_object *m, const char *key)
{
    for (uint32_t i = 0; i < m->via.map.size; i++)
        if (key_is(&m->via.map.ptr[i].key, key))
            return &m->via.map.ptr[i].val;
    return NULL;
}

static int obj_int(const msgpack_object *o, int64_t *v)
{
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (o->via.u64 > INT64_MAX)
            return -1;
        *v = (int64_t)o->via.u64;
        return 0;
    }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *v = o->via.i64;
        return 0;
    }
    return -1;
}

static enum cl_status to_value(const msgpack_object *o, struct cl_value *v, struct cl_err *e)
{
    memset(v, 0, sizeof *v);
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return CL_OK;
    case MSGPACK_OBJECT_BOOLEAN: cl_value_bool(v, o->via.boolean); return CL_OK;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 > INT64_MAX)
            cl_value_float(v, (double)o->via.u64);
        else
            cl_value_int(v, (int64_t)o->via.u64);
        return CL_OK;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: cl_value_int(v, o->via.i64); return CL_OK;
    case MSGPACK_OBJECT_FLOAT32: case MSGPACK_OBJECT_FLOAT64: cl_value_float(v, o->via.f64); return CL_OK;
    case MSGPACK_OBJECT_STR:
        if (cl_value_str(v, o->via.str.ptr, o->via.str.size) != CL_OK)
            return cl_errf(e, CL_ERR_NOMEM, "out of memory");
        return CL_OK;
    case MSGPACK_OBJECT_BIN:
        if (cl_value_str(v, o->via.bin.ptr, o->via.bin.size) != CL_OK)
            return cl_errf(e, CL_ERR_NOMEM, "out of memory");
        v->type = CL_V_BIN;
        return CL_OK;
    case MSGPACK_OBJECT_ARRAY:
        cl_value_array(v);
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            struct cl_value c;
            enum cl_status s = to_value(&o->via.array.ptr[i], &c, e);
            if (s == CL_OK && cl_array_push(v, &c) != CL_OK)
                s = cl_errf(e, CL_ERR_NOMEM, "out of memory");
            if (s != CL_OK) {
                cl_value_free(&c);
                cl_value_free(v);
                return s;
            }
        }
        return CL_OK;
    case MSGPACK_OBJECT_MAP:
        cl_value_map(v);
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object *k = &o->via.map.ptr[i].key;
            if (k->type != MSGPACK_OBJECT_STR) {
                cl_value_free(v);
                return cl_errf(e, CL_ERR_DATA, "meta map key is not a string");
            }
            char key[256];
            if (k->via.str.size >= sizeof key || memchr(k->via.str.ptr, 0, k->via.str.size)) {
                cl_value_free(v);
                return cl_errf(e, CL_ERR_DATA, "meta map key too long or contains NUL");
            }
            memcpy(key, k->via.str.ptr, k->via.str.size);
            key[k->via.str.size] = 0;
            struct cl_value c;
            enum cl_status s = to_value(&o->via.map.ptr[i].val, &c, e);
            if (s == CL_OK && cl_map_set(v, key, &c) != CL_OK)
                s = cl_errf(e, CL_ERR_NOMEM, "out of memory");
            if (s != CL_OK) {
                cl_value_free(&c);
                cl_value_free(v);
                return s;
            }
        }
        return CL_OK;
    default:
        return cl_errf(e, CL_ERR_DATA, "unsupported msgpack type (ext) in meta");
    }
}

static enum cl_status copy_str(char *dst, size_t cap, const msgpack_object *o, const char *what, struct cl_err *e)
{
    if (o->type != MSGPACK_OBJECT_STR)
        return cl_errf(e, CL_ERR_DATA, "%s is not a string", what);
    if (o->via.str.size >= cap || memchr(o->via.str.ptr, 0, o->via.str.size))
        return cl_errf(e, CL_ERR_DATA, "%s longer than %zu bytes or contains NUL", what, cap - 1);
    memcpy(dst, o->via.str.ptr, o->via.str.size);
    dst[o->via.str.size] = 0;
    return CL_OK;
}

static enum cl_status parse_header(const msgpack_object *o, struct cl_header *h, struct cl_err *e)
{
    cl_header_init(h, "");
    const msgpack_object *ver = map_find(o, "cliplens");
    int64_t v;
    if (!ver || obj_int(ver, &v) != 0)
        return cl_errf(e, CL_ERR_DATA, "bad magic: not a cliplens stream (first record has no \"cliplens\" version)");
    if (v != CL_STREAM_VERSION)
        return cl_errf(e, CL_ERR_UNSUPPORTED, "unsupported stream version %" PRId64 " (this reader knows %d)", v,
                       CL_STREAM_VERSION);
    const msgpack_object *kind = map_find(o, "kind");
    if (!kind)
        return cl_errf(e, CL_ERR_DATA, "header has no \"kind\"");
    enum cl_status s = copy_str(h->kind, sizeof h->kind, kind, "header \"kind\"", e);
    if (s != CL_OK)
        return s;
    const msgpack_object *model = map_find(o, "model");
    if (model && model->type == MSGPACK_OBJECT_MAP) {
        struct cl_model_info *m = &h->model;
        m->present = 1;
        const msgpack_object *f;
        if ((f = map_find(model, "name")) && (s = copy_str(m->name, sizeof m->name, f, "model name", e)) != CL_OK)
            return s;
        if ((f = map_find(model, "layout")) && (s = copy_str(m->layout, sizeof m->layout, f, "model layout", e)) != CL_OK)
            return s;
        static const char *const keys[] = {"layers", "heads", "width", "embed_dim", "patch", "image_size"};
        int64_t *dst[] = {&m->layers, &m->heads, &m->width, &m->embed_dim, &m->patch, &m->image_size};
        for (int i = 0; i < 6; i++) {
            f = map_find(model, keys[i]);
            if (f && f->type != MSGPACK_OBJECT_NIL && (obj_int(f, dst[i]) != 0 || *dst[i] < 0))
                return cl_errf(e, CL_ERR_DATA, "model \"%s\" is not a non-negative integer", keys[i]);
        }
    } else if (model && model->type != MSGPACK_OBJECT_NIL) {
        return cl_errf(e, CL_ERR_DATA, "header \"model\" is neither a map nor nil");
    }
    const msgpack_object *meta = map_find(o, "meta");
    if (meta && meta->type != MSGPACK_OBJECT_NIL) {
        if (meta->type != MSGPACK_OBJECT_MAP)
            return cl_errf(e, CL_ERR_DATA, "header \"meta\" is not a map");
        cl_value_free(&h->meta);
        return to_value(meta, &h->meta, e);
    }
    return CL_OK;
}

static enum cl_status parse_tensor(const msgpack_object *name, const msgpack_object *o, struct cl_item *it,
                                   struct cl_err *e)
{
    char tname[256];
    enum cl_status s = copy_str(tname, sizeof tname, name, "tensor name", e);
    if (s != CL_OK)
        return s;
    if (o->type != MSGPACK_OBJECT_MAP)
        return cl_errf(e, CL_ERR_DATA, "tensor \"%s\" is not a map", tname);
    const msgpack_object *dt = map_find(o, "dtype"), *shape = map_find(o, "shape"), *data = map_find(o, "data");
    const msgpack_object *axes = map_find(o, "axes");
    if (!dt || dt->type != MSGPACK_OBJECT_STR)
        return cl_errf(e, CL_ERR_DATA, "tensor \"%s\" has no dtype string", tname);
    enum cl_dtype dtype;
    if (cl_dtype_parse(dt->via.str.ptr, dt->via.str.size, &dtype) != 0)
        return cl_errf(e, CL_ERR_DATA, "tensor \"%s\" has unknown dtype \"%.*s\" (expected f32, f16, bf16, i32 or u8)",
                       tname, (int)(dt->via.str.size > 32 ? 32 : dt->via.str.size), dt->via.str.ptr);
    if (!shape || shape->type != MSGPACK_OBJECT_ARRAY)
        return cl_errf(e, CL_ERR_DATA, "tensor \"%s\" has no shape array", tname);
    if (shape->via.array.size > CL_MAX_DIMS)
        return cl_errf(e, CL_ERR_DATA, "tensor \"%s\" has rank %u (at most %d)", tname, shape->via.array.size,
                       CL_MAX_DIMS);
    int64_t dims[CL_MAX_DIMS];
    int ndim = (int)shape->via.array.size;
    for (int i = 0; i < ndim; i++)
        if (obj_int(&shape->via.array.ptr[i], &dims[i]) != 0 || dims[i] < 0 || dims[i] > CL_MAX_DIM)
            return cl_errf(e, CL_ERR_DATA, "tensor \"%s\" has an invalid dimension %d", tname, i);
    size_t nbytes;
    if (cl_shape_bytes(dims, ndim, cl_dtype_size(dtype), CL_STREAM_MAX_RECORD, NULL, &nbytes) != 0)
        return cl_errf(e, CL_ERR_DATA, "tensor \"%s\" shape is absurd (overflows or exceeds %zu bytes)", tname,
                       CL_STREAM_MAX_RECORD);
    if (!data || data->type != MSGPACK_OBJECT_BIN)
        return cl_errf(e, CL_ERR_DATA, "tensor \"%s\" has no binary data", tname);
    if (data->via.bin.size != nbytes)
        return cl_errf(e, CL_ERR_DATA, "tensor \"%s\" data is %u bytes, shape x dtype needs %zu", tname,
                       data->via.bin.size, nbytes);
    if (axes && axes->type != MSGPACK_OBJECT_NIL &&
        (axes->type != MSGPACK_OBJECT_ARRAY || (int)axes->via.array.size != ndim))
        return cl_errf(e, CL_ERR_DATA, "tensor \"%s\" axes is not an array of %d names", tname, ndim);
    if (cl_item_get(it, tname))
        return cl_errf(e, CL_ERR_DATA, "tensor \"%s\" appears twice", tname);
    struct cl_tensor *t;
    if ((s = cl_item_add(it, tname, dtype, ndim, dims, &t, e)) != CL_OK)
        return s;
    if (nbytes)
        memcpy(t->data, data->via.bin.ptr, nbytes);
    if (axes && axes->type == MSGPACK_OBJECT_ARRAY) {
        char names[CL_MAX_DIMS][64];
        const char *ptrs[CL_MAX_DIMS];
        for (int i = 0; i < ndim; i++) {
            if ((s = copy_str(names[i], sizeof names[i], &axes->via.array.ptr[i], "axis name", e)) != CL_OK)
                return s;
            ptrs[i] = names[i];
        }
        if ((s = cl_tensor_set_axes(t, ptrs, e)) != CL_OK)
            return s;
    }
    return CL_OK;
}

static enum cl_status parse_item(const msgpack_object *o, struct cl_item *it, struct cl_err *e)
{
    cl_item_clear(it);
    const msgpack_object *id = map_find(o, "id"), *meta = map_find(o, "meta"), *t = map_find(o, "t");
    enum cl_status s;
    if (!id || id->type != MSGPACK_OBJECT_STR)
        return cl_errf(e, CL_ERR_DATA, "item has no \"id\" string");
    if (id->via.str.size > 4096 || memchr(id->via.str.ptr, 0, id->via.str.size))
        return cl_errf(e, CL_ERR_DATA, "item id longer than 4096 bytes or contains NUL");
    if (!(it->id = malloc(id->via.str.size + 1)))
        return cl_errf(e, CL_ERR_NOMEM, "out of memory");
    memcpy(it->id, id->via.str.ptr, id->via.str.size);
    it->id[id->via.str.size] = 0;
    if (meta && meta->type != MSGPACK_OBJECT_NIL) {
        if (meta->type != MSGPACK_OBJECT_MAP)
            return cl_errf(e, CL_ERR_DATA, "item \"meta\" is not a map");
        if ((s = to_value(meta, &it->meta, e)) != CL_OK)
            return s;
    }
    if (!t || t->type != MSGPACK_OBJECT_MAP)
        return cl_errf(e, CL_ERR_DATA, "item has no tensor map \"t\"");
    if (t->via.map.size > CL_STREAM_MAX_TENSORS)
        return cl_errf(e, CL_ERR_DATA, "item has %u tensors (at most %d)", t->via.map.size, CL_STREAM_MAX_TENSORS);
    for (uint32_t i = 0; i < t->via.map.size; i++)
        if ((s = parse_tensor(&t->via.map.ptr[i].key, &t->via.map.ptr[i].val, it, e)) != CL_OK)
            return s;
    return CL_OK;
}

enum rec_kind { REC_HEADER, REC_ITEM, REC_TRAILER };

/* Read the next record into zone-backed *obj.  CL_END at clean EOF. */
static enum cl_status next_object(struct cl_reader *r, msgpack_object *obj, uint64_t *at, struct cl_err *e)
{
    enum cl_status s;
    /* in plain mode, a record boundary may start a zstd frame */
    if (r->mode == MODE_RAW) {
        if ((s = fill(r, 4, e)) != CL_OK)
            return s;
        if (r->len - r->pos >= 4 && is_frame_magic(r->buf + r->pos)) {
            size_t rest = r->len - r->pos;
            /* hand the buffered bytes back to the compressed side */
            if (r->in_pos >= rest) {
                r->in_pos -= rest;
                memcpy(r->in + r->in_pos, r->buf + r->pos, rest);
            } else {
                size_t keep = r->in_len - r->in_pos;
                if ((s = reserve(&r->in, &r->in_cap, keep + rest, e)) != CL_OK)
                    return s;
                memmove(r->in + rest, r->in + r->in_pos, keep);
                memcpy(r->in, r->buf + r->pos, rest);
                r->in_pos = 0;
                r->in_len = keep + rest;
            }
            r->len = r->pos;
            r->mode = MODE_ZSTD;
            r->frame_open = 0;
            ZSTD_DCtx_reset(r->dctx, ZSTD_reset_session_only);
        }
    }
    size_t need = 1;
    for (;;) {
        if ((s = fill(r, need, e)) != CL_OK)
            return s;
        size_t avail = r->len - r->pos;
        *at = r->base + r->pos;
        if (avail == 0 && need == 1)
            return CL_END;
        size_t ext;
        enum scan_result sr = scan(r->buf + r->pos, avail, &ext);
        if (sr == SCAN_BAD)
            return cl_errf(e, CL_ERR_DATA, "%s: invalid msgpack at content offset %" PRIu64, r->name,
                           *at + ext);
        if (sr == SCAN_COMPLETE) {
            msgpack_zone_clear(&r->zone);
            size_t off = 0;
            msgpack_unpack_return ur = msgpack_unpack((const char *)r->buf + r->pos, ext, &off, &r->zone, obj);
            if (ur != MSGPACK_UNPACK_SUCCESS && ur != MSGPACK_UNPACK_EXTRA_BYTES)
                return cl_errf(e, ur == MSGPACK_UNPACK_NOMEM_ERROR ? CL_ERR_NOMEM : CL_ERR_DATA,
                               "%s: cannot decode msgpack record at content offset %" PRIu64, r->name, *at);
            r->pos += ext;
            return CL_OK;
        }
        if (ext == SIZE_MAX)
            return cl_errf(e, CL_ERR_DATA, "%s: record at content offset %" PRIu64 " is larger than %zu bytes",
                           r->name, *at, CL_STREAM_MAX_RECORD);
        if (avail < need || ext <= avail) {
            /* fill could not deliver: the input ended inside this record */
            return cl_errf(e, CL_ERR_DATA, "%s: truncated stream: input ends inside a record at content offset %"
                           PRIu64 " (item %" PRIu64 ", record needs at least %zu bytes, %zu present)",
                           r->name, *at, r->items, ext, avail);
        }
        need = ext;
    }
}

static enum rec_kind classify(const msgpack_object *o)
{
    if (map_find(o, "cliplens"))
        return REC_HEADER;
    if (map_find(o, "end") && !map_find(o, "t"))
        return REC_TRAILER;
    return REC_ITEM;
}

static enum cl_status read_header(struct cl_reader *r, struct cl_err *e)
{
    msgpack_object o;
    uint64_t at = 0;
    enum cl_status s = next_object(r, &o, &at, e);
    if (s == CL_END)
        return cl_errf(e, CL_ERR_DATA, "%s: empty input: no stream header", r->name);
    if (s != CL_OK)
        return s;
    if (o.type != MSGPACK_OBJECT_MAP || classify(&o) != REC_HEADER)
        return cl_errf(e, CL_ERR_DATA, "%s: bad magic: not a cliplens stream (no header at content offset %" PRIu64 ")",
                       r->name, at);
    if ((s = parse_header(&o, &r->header, e)) != CL_OK)
        return cl_err_prefix(e, s, "%s: header at content offset %" PRIu64, r->name, at);
    r->streams = 1;
    r->expect = EXPECT_ITEM;
    return CL_OK;
}

static enum cl_status open_common(struct cl_reader *r, struct cl_err *e)
{
    r->dctx = ZSTD_createDCtx();
    if (r->dctx)
        r->zone_ok = msgpack_zone_init(&r->zone, 1 << 16);
    if (!r->dctx || !r->zone_ok)
        return cl_errf(e, CL_ERR_NOMEM, "out of memory");
    r->mode = MODE_SNIFF;
    /* a file that starts neither with a zstd frame nor a msgpack map is not a stream */
    enum cl_status s = in_fill(r, 4, e);
    if (s == CL_OK && r->in_len > r->in_pos && !is_frame_magic(r->in + r->in_pos) &&
        !((r->in[r->in_pos] & 0xf0) == 0x80 || r->in[r->in_pos] == 0xde || r->in[r->in_pos] == 0xdf))
        s = r->in_len - r->in_pos >= 4 || r->src_eof
                ? cl_errf(e, CL_ERR_DATA, "%s: bad magic: not a cliplens stream (neither zstd nor msgpack)", r->name)
                : CL_OK;
    if (s == CL_OK)
        s = read_header(r, e);
    return s;
}

static struct cl_reader *new_reader(const char *name)
{
    struct cl_reader *r = calloc(1, sizeof *r);
    if (r)
        snprintf(r->name, sizeof r->name, "%s", name ? name : "-");
    return r;
}

enum cl_status cl_reader_open_fp(struct cl_reader **rp, FILE *fp, const char *name, struct cl_err *e)
{
    *rp = NULL;
    struct cl_reader *r = new_reader(name);
    if (!r)
        return cl_errf(e, CL_ERR_NOMEM, "out of memory");
    r->fp = fp;
    enum cl_status s = open_common(r, e);
    if (s != CL_OK) {
        cl_reader_close(r);
        return s;
    }
    *rp = r;
    return CL_OK;
}

enum cl_status cl_reader_open_mem(struct cl_reader **rp, const void *buf, size_t len, const char *name,
                                  struct cl_err *e)
{
    *rp = NULL;
    struct cl_reader *r = new_reader(name);
    if (!r)
        return cl_errf(e, CL_ERR_NOMEM, "out of memory");
    static const unsigned char empty[1];
    r->mem = buf ? buf : empty;
    r->mem_len = len;
    enum cl_status s = open_common(r, e);
    if (s != CL_OK) {
        cl_reader_close(r);
        return s;
    }
    *rp = r;
    return CL_OK;
}

enum cl_status cl_reader_open(struct cl_reader **rp, const char *path, struct cl_err *e)
{
    *rp = NULL;
    if (!path || strcmp(path, "-") == 0)
        return cl_reader_open_fp(rp, stdin, "standard input", e);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return cl_errf(e, CL_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    enum cl_status s = cl_reader_open_fp(rp, fp, path, e);
    if (s != CL_OK) {
        fclose(fp);
        return s;
    }
    (*rp)->own_fp = 1;
    return CL_OK;
}

const struct cl_header *cl_reader_header(const struct cl_reader *r) { return &r->header; }
uint64_t cl_reader_items(const struct cl_reader *r) { return r->items; }
uint64_t cl_reader_streams(const struct cl_reader *r) { return r->streams; }

enum cl_status cl_reader_next(struct cl_reader *r, struct cl_item *it, struct cl_err *e)
{
    for (;;) {
        msgpack_object o;
        uint64_t at = 0;
        enum cl_status s = next_object(r, &o, &at, e);
        if (s == CL_END) {
            if (r->expect == EXPECT_AFTER_TRAILER)
                return CL_END;
            return cl_errf(e, CL_ERR_DATA,
                           "%s: truncated stream: missing trailer after item %" PRIu64 " (content offset %" PRIu64 ")",
                           r->name, r->items, at);
        }
        if (s != CL_OK)
            return s;
        if (o.type != MSGPACK_OBJECT_MAP)
            return cl_errf(e, CL_ERR_DATA, "%s: record at content offset %" PRIu64 " is not a map", r->name, at);
        switch (classify(&o)) {
        case REC_HEADER: {
            if (r->expect != EXPECT_AFTER_TRAILER)
                return cl_errf(e, CL_ERR_DATA, "%s: truncated stream: a new header at content offset %" PRIu64
                               " before the trailer of the previous stream (after item %" PRIu64 ")",
                               r->name, at, r->items);
            struct cl_header h;
            s = parse_header(&o, &h, e);
            if (s != CL_OK) {
                cl_header_free(&h);
                return cl_err_prefix(e, s, "%s: header at content offset %" PRIu64, r->name, at);
            }
            int ok = cl_header_compatible(&r->header, &h);
            if (!ok)
                cl_errf(e, CL_ERR_DATA, "%s: concatenated stream at content offset %" PRIu64
                        " has kind \"%s\" / model \"%s\", the first has kind \"%s\" / model \"%s\"",
                        r->name, at, h.kind, h.model.present ? h.model.name : "nil", r->header.kind,
                        r->header.model.present ? r->header.model.name : "nil");
            cl_header_free(&h);
            if (!ok)
                return CL_ERR_DATA;
            r->streams++;
            r->seg_items = 0;
            r->expect = EXPECT_ITEM;
            continue;
        }
        case REC_TRAILER: {
            int64_t n;
            if (r->expect != EXPECT_ITEM)
                return cl_errf(e, CL_ERR_DATA, "%s: unexpected second trailer at content offset %" PRIu64,
                               r->name, at);
            if (obj_int(map_find(&o, "end"), &n) != 0 || n < 0)
                return cl_errf(e, CL_ERR_DATA, "%s: trailer at content offset %" PRIu64 " has no item count",
                               r->name, at);
            if ((uint64_t)n != r->seg_items)
                return cl_errf(e, CL_ERR_DATA, "%s: count mismatch: trailer says %" PRId64 " items, stream %" PRIu64
                               " has %" PRIu64 " (truncated or spliced stream)", r->name, n, r->streams, r->seg_items);
            r->expect = EXPECT_AFTER_TRAILER;
            continue;
        }
        case REC_ITEM:
            if (r->expect != EXPECT_ITEM)
                return cl_errf(e, CL_ERR_DATA, "%s: item at content offset %" PRIu64 " after the trailer",
                               r->name, at);
            s = parse_item(&o, it, e);
            if (s != CL_OK)
                return cl_err_prefix(e, s, "%s: item %" PRIu64 " at content offset %" PRIu64, r->name, r->items, at);
            r->items++;
            r->seg_items++;
            return CL_OK;
        }
    }
}

void cl_reader_close(struct cl_reader *r)
{
    if (!r)
        return;
    ZSTD_freeDCtx(r->dctx);
    if (r->zone_ok)
        msgpack_zone_destroy(&r->zone);
    if (r->own_fp)
        fclose(r->fp);
    cl_header_free(&r->header);
    free(r->in);
    free(r->buf);
    free(r);
}

/* =============================================================== writer */

struct cl_writer {
    FILE *fp;
    int level;           /* 0: plain msgpack */
    ZSTD_CCtx *cctx;
    unsigned char *out;  /* compressed output staging */
    size_t out_cap;
    msgpack_packer pk;
    int failed;          /* a write or compression error happened */
    char errmsg[200];
    uint64_t count;
};

static int flush_out(struct cl_writer *w, size_t n)
{
    if (n && fwrite(w->out, 1, n, w->fp) != n) {
        snprintf(w->errmsg, sizeof w->errmsg, "write error: %s", strerror(errno));
        w->failed = 1;
        return -1;
    }
    return 0;
}

/* Feed bytes to zstd (or straight out); mode is ZSTD_e_continue/flush/end. */
static int push(struct cl_writer *w, const void *buf, size_t len, ZSTD_EndDirective mode)
{
    if (w->failed)
        return -1;
    if (!w->level) {
        if (len && fwrite(buf, 1, len, w->fp) != len) {
            snprintf(w->errmsg, sizeof w->errmsg, "write error: %s", strerror(errno));
            w->failed = 1;
            return -1;
        }
        return 0;
    }
    ZSTD_inBuffer ib = {buf, len, 0};
    for (;;) {
        ZSTD_outBuffer ob = {w->out, w->out_cap, 0};
        size_t rem = ZSTD_compressStream2(w->cctx, &ob, &ib, mode);
        if (ZSTD_isError(rem)) {
            snprintf(w->errmsg, sizeof w->errmsg, "zstd: %s", ZSTD_getErrorName(rem));
            w->failed = 1;
            return -1;
        }
        if (flush_out(w, ob.pos) != 0)
            return -1;
        if (mode == ZSTD_e_continue ? ib.pos == ib.size : rem == 0)
            return 0;
    }
}

static int pack_cb(void *data, const char *buf, size_t len)
{
    return push(data, buf, len, ZSTD_e_continue);
}

static void pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void pack_value(msgpack_packer *pk, const struct cl_value *v)
{
    switch (v->type) {
    case CL_V_NIL: msgpack_pack_nil(pk); break;
    case CL_V_BOOL: if (v->u.b) msgpack_pack_true(pk); else msgpack_pack_false(pk); break;
    case CL_V_INT: msgpack_pack_int64(pk, v->u.i); break;
    case CL_V_FLOAT: msgpack_pack_double(pk, v->u.f); break;
    case CL_V_STR: msgpack_pack_str(pk, v->u.s.len); msgpack_pack_str_body(pk, v->u.s.p, v->u.s.len); break;
    case CL_V_BIN: msgpack_pack_bin(pk, v->u.s.len); msgpack_pack_bin_body(pk, v->u.s.p, v->u.s.len); break;
    case CL_V_ARRAY:
        msgpack_pack_array(pk, v->u.a.n);
        for (size_t i = 0; i < v->u.a.n; i++)
            pack_value(pk, &v->u.a.v[i]);
        break;
    case CL_V_MAP:
        msgpack_pack_map(pk, v->u.m.n);
        for (size_t i = 0; i < v->u.m.n; i++) {
            pack_str(pk, v->u.m.k[i]);
            pack_value(pk, &v->u.m.v[i]);
        }
        break;
    }
}

static void pack_meta(msgpack_packer *pk, const struct cl_value *meta)
{
    if (meta && meta->type == CL_V_MAP)
        pack_value(pk, meta);
    else
        msgpack_pack_map(pk, 0);
}

static enum cl_status writer_status(struct cl_writer *w, struct cl_err *e)
{
    return w->failed ? cl_errf(e, CL_ERR_IO, "%s", w->errmsg) : CL_OK;
}

enum cl_status cl_writer_open(struct cl_writer **wp, FILE *fp, const struct cl_header *h, int level,
                              struct cl_err *e)
{
    *wp = NULL;
    if (level < 0 || level > ZSTD_maxCLevel())
        return cl_errf(e, CL_ERR_USAGE, "zstd level %d out of range 0..%d", level, ZSTD_maxCLevel());
    struct cl_writer *w = calloc(1, sizeof *w);
    if (!w)
        return cl_errf(e, CL_ERR_NOMEM, "out of memory");
    w->fp = fp;
    w->level = level;
    if (level) {
        w->cctx = ZSTD_createCCtx();
        w->out_cap = ZSTD_CStreamOutSize();
        w->out = malloc(w->out_cap);
        if (!w->cctx || !w->out) {
            cl_writer_abort(w);
            return cl_errf(e, CL_ERR_NOMEM, "out of memory");
        }
        ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, level);
        ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 1);
    }
    msgpack_packer_init(&w->pk, w, pack_cb);
    msgpack_packer *pk = &w->pk;
    msgpack_pack_map(pk, 4);
    pack_str(pk, "cliplens");
    msgpack_pack_int(pk, CL_STREAM_VERSION);
    pack_str(pk, "kind");
    pack_str(pk, h->kind);
    pack_str(pk, "model");
    if (h->model.present) {
        const struct cl_model_info *m = &h->model;
        msgpack_pack_map(pk, 8);
        pack_str(pk, "name"); pack_str(pk, m->name);
        pack_str(pk, "layout"); pack_str(pk, m->layout);
        pack_str(pk, "layers"); msgpack_pack_int64(pk, m->layers);
        pack_str(pk, "heads"); msgpack_pack_int64(pk, m->heads);
        pack_str(pk, "width"); msgpack_pack_int64(pk, m->width);
        pack_str(pk, "embed_dim"); msgpack_pack_int64(pk, m->embed_dim);
        pack_str(pk, "patch"); msgpack_pack_int64(pk, m->patch);
        pack_str(pk, "image_size"); msgpack_pack_int64(pk, m->image_size);
    } else {
        msgpack_pack_nil(pk);
    }
    pack_str(pk, "meta");
    pack_meta(pk, &h->meta);
    push(w, NULL, 0, ZSTD_e_flush);
    if (!w->failed && fflush(fp) != 0) {
        snprintf(w->errmsg, sizeof w->errmsg, "write error: %s", strerror(errno));
        w->failed = 1;
    }
    enum cl_status s = writer_status(w, e);
    if (s != CL_OK) {
        cl_writer_abort(w);
        return s;
    }
    *wp = w;
    return CL_OK;
}

enum cl_status cl_writer_item_parts(struct cl_writer *w, const char *id, const struct cl_value *meta,
                                    const struct cl_tensor *t, int nt, struct cl_err *e)
{
    msgpack_packer *pk = &w->pk;
    for (int i = 0; i < nt; i++) {
        size_t nb;
        if (!t[i].name || cl_shape_bytes(t[i].shape, t[i].ndim, cl_dtype_size(t[i].dtype), CL_STREAM_MAX_RECORD,
                                         NULL, &nb) != 0 || nb != t[i].nbytes)
            return cl_errf(e, CL_ERR_USAGE, "item %s: tensor %d has no name or inconsistent size", id, i);
    }
    msgpack_pack_map(pk, 3);
    pack_str(pk, "id");
    pack_str(pk, id ? id : "");
    pack_str(pk, "meta");
    pack_meta(pk, meta);
    pack_str(pk, "t");
    msgpack_pack_map(pk, (size_t)nt);
    for (int i = 0; i < nt; i++) {
        const struct cl_tensor *x = &t[i];
        pack_str(pk, x->name);
        msgpack_pack_map(pk, x->axes[0] ? 4 : 3);
        pack_str(pk, "dtype");
        pack_str(pk, cl_dtype_name(x->dtype));
        pack_str(pk, "shape");
        msgpack_pack_array(pk, (size_t)x->ndim);
        for (int d = 0; d < x->ndim; d++)
            msgpack_pack_int64(pk, x->shape[d]);
        if (x->axes[0]) {
            pack_str(pk, "axes");
            msgpack_pack_array(pk, (size_t)x->ndim);
            for (int d = 0; d < x->ndim; d++)
                pack_str(pk, x->axes[d] ? x->axes[d] : "");
        }
        pack_str(pk, "data");
        msgpack_pack_bin(pk, x->nbytes);
        msgpack_pack_bin_body(pk, x->data, x->nbytes);
    }
    /* flush so a reader downstream of a pipe sees the item now */
    push(w, NULL, 0, ZSTD_e_flush);
    if (!w->failed && fflush(w->fp) != 0) {
        snprintf(w->errmsg, sizeof w->errmsg, "write error: %s", strerror(errno));
        w->failed = 1;
    }
    if (!w->failed)
        w->count++;
    return writer_status(w, e);
}

enum cl_status cl_writer_item(struct cl_writer *w, const struct cl_item *it, struct cl_err *e)
{
    return cl_writer_item_parts(w, it->id, &it->meta, it->t, it->nt, e);
}

uint64_t cl_writer_count(const struct cl_writer *w) { return w->count; }

enum cl_status cl_writer_close(struct cl_writer *w, struct cl_err *e)
{
    msgpack_pack_map(&w->pk, 1);
    pack_str(&w->pk, "end");
    msgpack_pack_uint64(&w->pk, w->count);
    push(w, NULL, 0, ZSTD_e_end);
    if (!w->failed && fflush(w->fp) != 0) {
        snprintf(w->errmsg, sizeof w->errmsg, "write error: %s", strerror(errno));
        w->failed = 1;
    }
    enum cl_status s = writer_status(w, e);
    cl_writer_abort(w);
    return s;
}

void cl_writer_abort(struct cl_writer *w)
{
    if (!w)
        return;
    ZSTD_freeCCtx(w->cctx);
    free(w->out);
    free(w);
}
