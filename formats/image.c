/* image.c - PNG (libpng) and JPEG (libjpeg-turbo) decoding to RGB, and PNG writing. */
#include "image.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jerror.h>
#include <jpeglib.h>
#include <png.h>

#define MAX_FILE_BYTES ((size_t)1 << 30) /* cap on an image file read into memory */
#define MAX_JPEG_SCANS 1000              /* hostile progressive JPEGs: cap on scans */

/* ---------------------------------------------------------------- PNG writing */

/* libpng error state: the error text, and where to jump on error. */
struct png_ctx {
    jmp_buf jmp;
    char msg[200];
};

/* Check a decoder-reported size against the caps; returns the RGB buffer size or 0. */
static size_t rgb_bytes(int64_t w, int64_t h)
{
    if (w < 1 || h < 1 || w > CL_IMAGE_MAX_SIDE || h > CL_IMAGE_MAX_SIDE) return 0;
    if (w * h > CL_IMAGE_MAX_PIXELS) return 0;
    return (size_t)(w * h * 3); /* <= 3 * 178956970: fits in size_t */
}

static enum cl_status size_error(struct cl_err *e, const char *name, const char *fmt,
                                 int64_t w, int64_t h)
{
    return cl_errf(e, CL_ERR_DATA,
                   "%s: %s image of %lldx%lld pixels is outside the limits (each side 1..%d, "
                   "at most %lld pixels)", name, fmt, (long long)w, (long long)h,
                   CL_IMAGE_MAX_SIDE, (long long)CL_IMAGE_MAX_PIXELS);
}

static void png_on_error(png_structp png, png_const_charp msg)
{
    struct png_ctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    longjmp(c->jmp, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg; /* warnings are benign (e.g. an unknown chunk): kept silent */
}

/* Growable output buffer for cl_png_encode_mem. */
struct mem_sink {
    uint8_t *buf;
    size_t len, cap;
    int oom;
};

static void mem_write(png_structp png, png_bytep data, png_size_t n)
{
    struct mem_sink *s = png_get_io_ptr(png);
    if (s->oom) return;
    if (n > SIZE_MAX - s->len) { s->oom = 1; return; }
    if (s->len + n > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + n) cap = cap > SIZE_MAX / 2 ? s->len + n : cap * 2;
        uint8_t *nb = realloc(s->buf, cap);
        if (!nb) { s->oom = 1; return; }
        s->buf = nb;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, data, n);
    s->len += n;
}

static void mem_flush(png_structp png) { (void)png; }

static enum cl_status check_write_args(int w, int h, int channels, const uint8_t *pixels,
                                       struct cl_err *e)
{
    if (w < 1 || h < 1 || w > CL_IMAGE_MAX_SIDE || h > CL_IMAGE_MAX_SIDE)
        return cl_errf(e, CL_ERR_USAGE, "PNG write: size %dx%d outside 1..%d", w, h,
                       CL_IMAGE_MAX_SIDE);
    if (channels != 1 && channels != 3 && channels != 4)
        return cl_errf(e, CL_ERR_USAGE, "PNG write: %d channels, expected 1, 3 or 4", channels);
    if (!pixels) return cl_errf(e, CL_ERR_USAGE, "PNG write: no pixels");
    return CL_OK;
}

/* Encode to fp (if non-NULL) or to sink. */
static enum cl_status png_encode(FILE *fp, struct mem_sink *sink, int w, int h, int channels,
                                 const uint8_t *pixels, enum cl_png_speed speed, struct cl_err *e)
{
    enum cl_status s = check_write_args(w, h, channels, pixels, e);
    if (s) return s;
    if (speed != CL_PNG_DEFAULT && speed != CL_PNG_FAST)
        return cl_errf(e, CL_ERR_USAGE, "PNG write: unknown speed setting %d", (int)speed);
    struct png_ctx ctx = {.msg = ""};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &ctx, png_on_error,
                                              png_on_warning);
    if (!png) return cl_errf(e, CL_ERR_NOMEM, "PNG write: out of memory");
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return cl_errf(e, CL_ERR_NOMEM, "PNG write: out of memory");
    }
    if (setjmp(ctx.jmp)) {
        png_destroy_write_struct(&png, &info);
        if (sink && sink->oom) return cl_errf(e, CL_ERR_NOMEM, "PNG write: out of memory");
        return cl_errf(e, CL_ERR_IO, "PNG write: %s", ctx.msg);
    }
    if (fp) png_init_io(png, fp);
    else png_set_write_fn(png, sink, mem_write, mem_flush);
    int type = channels == 1 ? PNG_COLOR_TYPE_GRAY
             : channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_RGB_ALPHA;
    if (speed == CL_PNG_FAST) { /* no row filters beat libpng's adaptive choice on the toy world */
        png_set_compression_level(png, 1);
        png_set_filter(png, 0, PNG_FILTER_NONE);
    }
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, type, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    size_t stride = (size_t)w * (size_t)channels;
    for (int y = 0; y < h; y++) {
        png_write_row(png, (png_const_bytep)(pixels + (size_t)y * stride));
        if (sink && sink->oom) png_error(png, "out of memory");
    }
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    if (fp && (fflush(fp) != 0 || ferror(fp)))
        return cl_errf(e, CL_ERR_IO, "PNG write: %s", strerror(errno));
    return CL_OK;
}

enum cl_status cl_png_write_fp(FILE *fp, int w, int h, int channels, const uint8_t *pixels,
                               struct cl_err *e)
{
    if (!fp) return cl_errf(e, CL_ERR_USAGE, "PNG write: no output stream");
    return png_encode(fp, NULL, w, h, channels, pixels, CL_PNG_DEFAULT, e);
}

enum cl_status cl_png_encode_mem(int w, int h, int channels, const uint8_t *pixels,
                                 enum cl_png_speed speed,
                                 uint8_t **out, size_t *out_len, struct cl_err *e)
{
    struct mem_sink sink = {0};
    *out = NULL;
    *out_len = 0;
    enum cl_status s = png_encode(NULL, &sink, w, h, channels, pixels, speed, e);
    if (s) { free(sink.buf); return s; }
    *out = sink.buf;
    *out_len = sink.len;
    return CL_OK;
}

enum cl_status cl_png_write(const char *path, int w, int h, int channels,
                            const uint8_t *pixels, struct cl_err *e)
{
    if (!path) return cl_errf(e, CL_ERR_USAGE, "PNG write: no path");
    if (strcmp(path, "-") == 0) {
        enum cl_status s = cl_png_write_fp(stdout, w, h, channels, pixels, e);
        return s ? cl_err_prefix(e, s, "<stdout>") : CL_OK;
    }
    enum cl_status s = check_write_args(w, h, channels, pixels, e);
    if (s) return cl_err_prefix(e, s, "%s", path);
    size_t n = strlen(path) + 48;
    char *tmp = malloc(n);
    if (!tmp) return cl_errf(e, CL_ERR_NOMEM, "%s: out of memory", path);
    /* a unique temporary name; O_EXCL with mode 0666 lets the kernel apply the
     * umask (reading it with umask() would race between threads) */
    static _Atomic unsigned counter;
    snprintf(tmp, n, "%s.tmp.%ld.%u", path, (long)getpid(), counter++);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0) {
        s = cl_errf(e, CL_ERR_IO, "%s: cannot create temporary file: %s", path, strerror(errno));
        free(tmp);
        return s;
    }
    FILE *fp = fdopen(fd, "wb");
    if (!fp) {
        s = cl_errf(e, CL_ERR_IO, "%s: %s", path, strerror(errno));
        close(fd);
        unlink(tmp);
        free(tmp);
        return s;
    }
    s = png_encode(fp, NULL, w, h, channels, pixels, CL_PNG_DEFAULT, e);
    if (fclose(fp) != 0 && s == CL_OK)
        s = cl_errf(e, CL_ERR_IO, "PNG write: close: %s", strerror(errno));
    if (s == CL_OK && rename(tmp, path) != 0)
        s = cl_errf(e, CL_ERR_IO, "rename %s: %s", tmp, strerror(errno));
    if (s) {
        unlink(tmp);
        cl_err_prefix(e, s, "%s", path);
    }
    free(tmp);
    return s;
}

/* ---------------------------------------------------------------- PNG reading */

struct mem_source {
    const uint8_t *buf;
    size_t len, pos;
};

static void mem_read(png_structp png, png_bytep out, png_size_t n)
{
    struct mem_source *src = png_get_io_ptr(png);
    if (n > src->len - src->pos) png_error(png, "file is truncated");
    memcpy(out, src->buf + src->pos, n);
    src->pos += n;
}

/* State kept across setjmp: everything the error path must free. */
struct png_read {
    png_structp png;
    png_infop info;
    uint8_t *rgb;      /* [h, w, 3] the result */
    uint8_t *raw;      /* [h, rowbytes] decoded samples before conversion */
    png_bytep *rows;   /* [h] pointers into raw */
};

/* Convert one row of libpng output to RGB as Pillow's convert("RGB") would.
 * src holds 8-bit samples except for 16-bit grey (big-endian 16-bit samples). */
static void png_row_to_rgb(uint8_t *dst, const uint8_t *src, int w, int color_type,
                           int depth, const uint8_t *palette /* [256, 3] */)
{
    switch (color_type) {
    case PNG_COLOR_TYPE_GRAY:
        if (depth == 16) { /* Pillow: mode "I", then clipped to 0..255 */
            for (int x = 0; x < w; x++) {
                unsigned v = (unsigned)src[2 * x] << 8 | src[2 * x + 1];
                dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = (uint8_t)(v > 255 ? 255 : v);
            }
        } else {
            for (int x = 0; x < w; x++) dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = src[x];
        }
        break;
    case PNG_COLOR_TYPE_GRAY_ALPHA:
        for (int x = 0; x < w; x++) dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = src[2 * x];
        break;
    case PNG_COLOR_TYPE_PALETTE:
        for (int x = 0; x < w; x++) memcpy(dst + 3 * x, palette + 3 * src[x], 3);
        break;
    case PNG_COLOR_TYPE_RGB:
        memcpy(dst, src, (size_t)w * 3);
        break;
    case PNG_COLOR_TYPE_RGB_ALPHA:
        for (int x = 0; x < w; x++) memcpy(dst + 3 * x, src + 4 * x, 3);
        break;
    }
}

static enum cl_status png_decode(struct cl_image *img, const uint8_t *buf, size_t len,
                                 const char *name, struct cl_err *e)
{
    struct png_ctx ctx = {.msg = ""};
    struct mem_source src = {buf, len, 0};
    /* volatile: these change between setjmp and a possible longjmp */
    struct png_read *volatile st = calloc(1, sizeof *st);
    if (!st) return cl_errf(e, CL_ERR_NOMEM, "%s: out of memory", name);
    volatile enum cl_status status = CL_OK;
    int w = 0, h = 0;

    st->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, png_on_error, png_on_warning);
    if (st->png) st->info = png_create_info_struct(st->png);
    if (!st->png || !st->info) {
        status = cl_errf(e, CL_ERR_NOMEM, "%s: out of memory", name);
        goto done;
    }
    if (setjmp(ctx.jmp)) {
        status = cl_errf(e, CL_ERR_DATA, "%s: corrupt PNG: %s", name, ctx.msg);
        goto done;
    }
    png_structp png = st->png;
    png_infop info = st->info;
    png_set_read_fn(png, &src, mem_read);
    /* Bound ancillary chunk memory; the image size is checked after the header. */
    png_set_chunk_cache_max(png, 1000);
    png_set_chunk_malloc_max(png, (png_alloc_size_t)64 << 20);
    png_read_info(png, info);

    png_uint_32 uw, uh;
    int depth, color_type, interlace;
    png_get_IHDR(png, info, &uw, &uh, &depth, &color_type, &interlace, NULL, NULL);
    size_t nrgb = rgb_bytes(uw, uh);
    if (!nrgb) {
        status = size_error(e, name, "PNG", uw, uh);
        goto done;
    }
    w = (int)uw;
    h = (int)uh;

    /* The 256-entry palette; entries past PLTE keep Pillow's default grey ramp. */
    uint8_t palette[256 * 3];
    for (int i = 0; i < 256; i++) palette[3 * i] = palette[3 * i + 1] = palette[3 * i + 2] = (uint8_t)i;
    if (color_type == PNG_COLOR_TYPE_PALETTE) {
        png_colorp plte;
        int nplte = 0;
        if (!png_get_PLTE(png, info, &plte, &nplte)) png_error(png, "palette image without PLTE chunk");
        for (int i = 0; i < nplte && i < 256; i++) {
            palette[3 * i] = plte[i].red;
            palette[3 * i + 1] = plte[i].green;
            palette[3 * i + 2] = plte[i].blue;
        }
    }
    /* Sample transforms: unpack sub-byte samples, scale sub-byte grey to 0..255, keep the
     * high byte of 16-bit colour samples; 16-bit grey stays 16-bit (clipped below). */
    if (depth < 8) {
        if (color_type == PNG_COLOR_TYPE_GRAY) png_set_expand_gray_1_2_4_to_8(png);
        else png_set_packing(png);
    }
    if (depth == 16 && color_type != PNG_COLOR_TYPE_GRAY) png_set_strip_16(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);

    size_t rowbytes = png_get_rowbytes(png, info);
    size_t need = (size_t)w * (depth == 16 && color_type == PNG_COLOR_TYPE_GRAY ? 2 : 1)
                  * (size_t)png_get_channels(png, info);
    if (rowbytes < need) png_error(png, "unexpected row size after transforms");
    st->raw = malloc(rowbytes * (size_t)h);
    st->rows = malloc(sizeof *st->rows * (size_t)h);
    st->rgb = malloc(nrgb);
    if (!st->raw || !st->rows || !st->rgb) {
        status = cl_errf(e, CL_ERR_NOMEM, "%s: out of memory for a %dx%d image", name, w, h);
        goto done;
    }
    for (int y = 0; y < h; y++) st->rows[y] = st->raw + (size_t)y * rowbytes;
    png_read_image(png, st->rows);
    /* Like Pillow, stop after the image data: chunks after IDAT (and IEND) are not needed. */
    for (int y = 0; y < h; y++)
        png_row_to_rgb(st->rgb + (size_t)y * w * 3, st->rows[y], w, color_type, depth, palette);

done:
    if (st->png) png_destroy_read_struct(&st->png, st->info ? &st->info : NULL, NULL);
    free(st->raw);
    free(st->rows);
    if (status == CL_OK) {
        img->w = w;
        img->h = h;
        img->rgb = st->rgb;
    } else {
        free(st->rgb);
    }
    free(st);
    return status;
}

/* ---------------------------------------------------------------- JPEG reading */

struct jpeg_ctx {
    struct jpeg_error_mgr pub;
    jmp_buf jmp;
    int truncated;
};

static void jpeg_on_error(j_common_ptr cinfo)
{
    struct jpeg_ctx *c = (struct jpeg_ctx *)cinfo->err;
    longjmp(c->jmp, 1);
}

/* Warnings are silent (Pillow ignores libjpeg's corrupt-data warnings and decodes on),
 * except premature end of data: Pillow refuses truncated files, and so do we. */
static void jpeg_on_message(j_common_ptr cinfo, int level)
{
    struct jpeg_ctx *c = (struct jpeg_ctx *)cinfo->err;
    if (level == -1 && c->pub.msg_code == JWRN_JPEG_EOF) {
        c->truncated = 1;
        longjmp(c->jmp, 1);
    }
}

static void jpeg_on_output(j_common_ptr cinfo) { (void)cinfo; }

/* Abort hostile progressive files whose many scans would make decoding crawl. */
static void jpeg_on_progress(j_common_ptr cinfo)
{
    j_decompress_ptr d = (j_decompress_ptr)cinfo;
    if (d->is_decompressor && d->input_scan_number > MAX_JPEG_SCANS) {
        cinfo->err->msg_code = JMSG_LASTMSGCODE; /* marks "too many scans" below */
        longjmp(((struct jpeg_ctx *)cinfo->err)->jmp, 2);
    }
}

/* Pillow's CMYK -> RGB (after its "CMYK;I" unpacking has inverted the Adobe samples). */
static uint8_t cmyk_channel(unsigned c, unsigned nk)
{
    unsigned t = c * nk + 128;
    int v = (int)nk - (int)(((t >> 8) + t) >> 8);
    return (uint8_t)(v < 0 ? 0 : v);
}

static enum cl_status jpeg_decode(struct cl_image *img, const uint8_t *buf, size_t len,
                                  const char *name, struct cl_err *e)
{
    struct jpeg_decompress_struct cinfo;
    struct jpeg_ctx ctx;
    struct jpeg_progress_mgr progress = {.progress_monitor = jpeg_on_progress};
    uint8_t *volatile rgb = NULL;    /* [h, w, 3] */
    uint8_t *volatile row = NULL;    /* [w, components] one decoded scanline */
    volatile enum cl_status status = CL_OK;

    memset(&ctx, 0, sizeof ctx);
    cinfo.err = jpeg_std_error(&ctx.pub);
    ctx.pub.error_exit = jpeg_on_error;
    ctx.pub.emit_message = jpeg_on_message;
    ctx.pub.output_message = jpeg_on_output;
    jpeg_create_decompress(&cinfo);
    int jumped = setjmp(ctx.jmp);
    if (jumped) {
        if (ctx.truncated) {
            status = cl_errf(e, CL_ERR_DATA, "%s: truncated JPEG: data ends before the image "
                             "is complete", name);
        } else if (jumped == 2) {
            status = cl_errf(e, CL_ERR_DATA, "%s: JPEG has more than %d scans (hostile or "
                             "corrupt progressive file)", name, MAX_JPEG_SCANS);
        } else {
            char msg[JMSG_LENGTH_MAX];
            ctx.pub.format_message((j_common_ptr)&cinfo, msg);
            status = cl_errf(e, CL_ERR_DATA, "%s: corrupt JPEG: %s", name, msg);
        }
        goto done;
    }
    cinfo.progress = &progress;
    cinfo.mem->max_memory_to_use = (long)1 << 30;
    jpeg_mem_src(&cinfo, buf, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);

    if (!rgb_bytes(cinfo.image_width, cinfo.image_height)) {
        status = size_error(e, name, "JPEG", cinfo.image_width, cinfo.image_height);
        goto done;
    }
    if (cinfo.data_precision != 8) {
        status = cl_errf(e, CL_ERR_UNSUPPORTED, "%s: %d-bit JPEG samples (only 8-bit, as "
                         "Pillow)", name, cinfo.data_precision);
        goto done;
    }
    int ncomp = cinfo.num_components;
    if (ncomp == 1) cinfo.out_color_space = JCS_GRAYSCALE;
    else if (ncomp == 3) cinfo.out_color_space = JCS_RGB;
    else if (ncomp == 4) cinfo.out_color_space = JCS_CMYK; /* libjpeg converts YCCK */
    else {
        status = cl_errf(e, CL_ERR_UNSUPPORTED, "%s: JPEG with %d components (expected 1, 3 "
                         "or 4, as Pillow)", name, ncomp);
        goto done;
    }
    /* libjpeg's defaults are what Pillow uses: ISLOW IDCT, fancy upsampling, no scaling. */
    jpeg_start_decompress(&cinfo);
    int w = (int)cinfo.output_width, h = (int)cinfo.output_height;
    int oc = cinfo.output_components;
    rgb = malloc(rgb_bytes(w, h));
    row = malloc((size_t)w * (size_t)oc);
    if (!rgb || !row) {
        status = cl_errf(e, CL_ERR_NOMEM, "%s: out of memory for a %dx%d image", name, w, h);
        goto done;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        uint8_t *dst = rgb + (size_t)cinfo.output_scanline * w * 3;
        JSAMPROW rp = row;
        jpeg_read_scanlines(&cinfo, &rp, 1);
        if (oc == 3) {
            memcpy(dst, row, (size_t)w * 3);
        } else if (oc == 1) {
            for (int x = 0; x < w; x++) dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = row[x];
        } else { /* Pillow always assumes Adobe's inverted CMYK */
            for (int x = 0; x < w; x++) {
                const uint8_t *p = row + 4 * x;
                unsigned nk = p[3]; /* 255 - (255 - k) */
                for (int c = 0; c < 3; c++) dst[3 * x + c] = cmyk_channel(255u - p[c], nk);
            }
        }
    }
    jpeg_finish_decompress(&cinfo);
    img->w = w;
    img->h = h;
    img->rgb = rgb;
    rgb = NULL;
done:
    jpeg_destroy_decompress(&cinfo);
    free(rgb);
    free(row);
    return status;
}

/* ---------------------------------------------------------------- entry points */

void cl_image_free(struct cl_image *img)
{
    if (!img) return;
    free(img->rgb);
    img->rgb = NULL;
    img->w = img->h = 0;
}

enum cl_status cl_image_decode(struct cl_image *img, const void *buf, size_t len,
                               const char *name, struct cl_err *e)
{
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    const uint8_t *b = buf;
    img->w = img->h = 0;
    img->rgb = NULL;
    if (!name) name = "<image>";
    if (len >= 8 && memcmp(b, png_sig, 8) == 0) return png_decode(img, b, len, name, e);
    if (len >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF)
        return jpeg_decode(img, b, len, name, e);
    if (len == 0) return cl_errf(e, CL_ERR_DATA, "%s: empty file, expected a PNG or JPEG image", name);
    return cl_errf(e, CL_ERR_UNSUPPORTED, "%s: not a PNG or JPEG image (unknown magic bytes "
                   "%02x %02x %02x %02x)", name, b[0], len > 1 ? b[1] : 0, len > 2 ? b[2] : 0,
                   len > 3 ? b[3] : 0);
}

/* Read all of fp into a malloc'd buffer (at most MAX_FILE_BYTES). */
static enum cl_status read_all(FILE *fp, const char *name, uint8_t **out, size_t *out_len,
                               struct cl_err *e)
{
    size_t cap = 1 << 16, len = 0;
    uint8_t *buf = malloc(cap);
    if (!buf) return cl_errf(e, CL_ERR_NOMEM, "%s: out of memory", name);
    for (;;) {
        if (len == cap) {
            if (cap >= MAX_FILE_BYTES) {
                free(buf);
                return cl_errf(e, CL_ERR_DATA, "%s: file larger than %zu bytes, refused as "
                               "an image", name, MAX_FILE_BYTES);
            }
            uint8_t *nb = realloc(buf, cap * 2);
            if (!nb) { free(buf); return cl_errf(e, CL_ERR_NOMEM, "%s: out of memory", name); }
            buf = nb;
            cap *= 2;
        }
        size_t n = fread(buf + len, 1, cap - len, fp);
        len += n;
        if (n == 0) break;
    }
    if (ferror(fp)) {
        free(buf);
        return cl_errf(e, CL_ERR_IO, "%s: read error: %s", name, strerror(errno));
    }
    *out = buf;
    *out_len = len;
    return CL_OK;
}

enum cl_status cl_image_load(struct cl_image *img, const char *path, struct cl_err *e)
{
    img->w = img->h = 0;
    img->rgb = NULL;
    int is_stdin = strcmp(path, "-") == 0;
    const char *name = is_stdin ? "<stdin>" : path;
    FILE *fp = is_stdin ? stdin : fopen(path, "rb");
    if (!fp) return cl_errf(e, CL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    uint8_t *buf = NULL;
    size_t len = 0;
    enum cl_status s = read_all(fp, name, &buf, &len, e);
    if (!is_stdin) fclose(fp);
    if (s) return s;
    s = cl_image_decode(img, buf, len, name, e);
    free(buf);
    return s;
}
