/* image.c - PNG (libpng) and JPEG (libjpeg-turbo) decoding to RGB, and PNG writing. */
#include "image.h"

#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <png.h>

/* ---------------------------------------------------------------- PNG writing */

/* libpng error state: the first error or warning text, and where to jump on error. */
struct png_ctx {
    jmp_buf jmp;
    char msg[200];
};

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
                                 const uint8_t *pixels, struct cl_err *e)
{
    enum cl_status s = check_write_args(w, h, channels, pixels, e);
    if (s) return s;
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
    return png_encode(fp, NULL, w, h, channels, pixels, e);
}

enum cl_status cl_png_encode_mem(int w, int h, int channels, const uint8_t *pixels,
                                 uint8_t **out, size_t *out_len, struct cl_err *e)
{
    struct mem_sink sink = {0};
    *out = NULL;
    *out_len = 0;
    enum cl_status s = png_encode(NULL, &sink, w, h, channels, pixels, e);
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
    size_t n = strlen(path) + 16;
    char *tmp = malloc(n);
    if (!tmp) return cl_errf(e, CL_ERR_NOMEM, "%s: out of memory", path);
    snprintf(tmp, n, "%s.tmpXXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        s = cl_errf(e, CL_ERR_IO, "%s: cannot create temporary file: %s", path, strerror(errno));
        free(tmp);
        return s;
    }
    mode_t mask = umask(0); /* mkstemp makes 0600; give the file the usual mode */
    umask(mask);
    FILE *fp = fchmod(fd, 0666 & ~mask) == 0 ? fdopen(fd, "wb") : NULL;
    if (!fp) {
        s = cl_errf(e, CL_ERR_IO, "%s: %s", path, strerror(errno));
        close(fd);
        unlink(tmp);
        free(tmp);
        return s;
    }
    s = png_encode(fp, NULL, w, h, channels, pixels, e);
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
