/* image.h - PNG/JPEG decoding to 8-bit RGB (as PIL's convert("RGB")) and PNG writing.
 *
 * Decoding (cl_image_load, cl_image_decode):
 *   - the format is sniffed from the magic bytes (PNG signature, JPEG SOI), never
 *     from the file name's extension;
 *   - the result is always h*w*3 interleaved RGB, 8 bits per channel, rows top first,
 *     matching Pillow 9.4's Image.open(f).convert("RGB") byte for byte:
 *       grey                -> replicated into R, G, B
 *       grey+alpha, RGBA    -> alpha dropped (no compositing onto a background)
 *       palette (+tRNS)     -> the palette colours (transparency ignored)
 *       16-bit RGB(A), 16-bit grey+alpha
 *                           -> the high byte of each sample (Pillow reads these PNGs
 *                              as 8-bit "RGB"/"RGBA" with that reduction)
 *       16-bit grey         -> Pillow mode "I" clipped to 0..255, i.e. min(v, 255)
 *                              (not the high byte: a 16-bit grey PNG mostly turns white)
 *       grey < 8 bit        -> scaled to 0..255 (v * 255 / (2^bits - 1))
 *       JPEG grey / YCbCr   -> libjpeg's default decode, as Pillow's (ISLOW IDCT, fancy
 *                              upsampling, no scaling; the same libjpeg-turbo library)
 *       JPEG CMYK / YCCK    -> Pillow treats every 4-component JPEG as Adobe-inverted CMYK
 *                              (libjpeg turns YCCK into CMYK), then converts with
 *                              R = (255 - K) - round(C * (255 - K) / 255) (its MULDIV255),
 *                              where C = 255 - stored sample and K likewise
 *       JPEG with corrupt entropy-coded data: decoded anyway (libjpeg warns, Pillow ignores
 *                              the warning); JPEG or PNG data ending before the image is
 *                              complete: refused (as Pillow without LOAD_TRUNCATED_IMAGES).
 *                              A PNG missing only what follows the image data (IEND) loads.
 *     The EXIF orientation tag is ignored, as Image.open ignores it.
 *   - hostile input: the width and height must be in 1..CL_IMAGE_MAX_SIDE and their
 *     product at most CL_IMAGE_MAX_PIXELS (Pillow's decompression-bomb limit), checked
 *     before any allocation; files above 1 GiB and progressive JPEGs with more than
 *     1000 scans are refused; corrupt or truncated data gives CL_ERR_DATA with a message
 *     naming the file and the decoder's complaint; neither PNG nor JPEG magic gives
 *     CL_ERR_UNSUPPORTED; an unreadable file CL_ERR_IO.  The libraries never print.
 *
 * Writing (cl_png_write*): 8-bit grey (1), RGB (3) or RGBA (4) pixels, rows top first.
 */
#ifndef CL_IMAGE_H
#define CL_IMAGE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "status.h"

#define CL_IMAGE_MAX_SIDE 30000                /* cap on width and on height */
#define CL_IMAGE_MAX_PIXELS ((int64_t)178956970) /* Pillow's 2 * MAX_IMAGE_PIXELS */

struct cl_image {
    int w, h;
    uint8_t *rgb; /* [h, w, 3] interleaved RGB, owned */
};

/* Read and decode the file at path ("-" reads stdin). On failure img is zeroed. */
enum cl_status cl_image_load(struct cl_image *img, const char *path, struct cl_err *e);

/* Decode an in-memory PNG or JPEG; name is used only in error messages. */
enum cl_status cl_image_decode(struct cl_image *img, const void *buf, size_t len,
                               const char *name, struct cl_err *e);

/* Release img->rgb and zero img; accepts NULL and zeroed images. */
void cl_image_free(struct cl_image *img);

/* Write pixels [h, w, channels] (channels 1, 3 or 4) as an 8-bit PNG.  The file is
 * written to a temporary file in the same directory and renamed into place, so path
 * never holds a partial image; "-" writes to stdout. */
enum cl_status cl_png_write(const char *path, int w, int h, int channels,
                            const uint8_t *pixels, struct cl_err *e);

/* Write the PNG to an open stream (not closed; flushed). */
enum cl_status cl_png_write_fp(FILE *fp, int w, int h, int channels,
                               const uint8_t *pixels, struct cl_err *e);

/* How cl_png_encode_mem compresses: libpng's defaults (zlib level 6, adaptive row
 * filters; what the file writers use), or zlib level 1 without row filters, which
 * encodes the toy world's 64x64 scenes 2.5x as fast in files ~10% smaller. */
enum cl_png_speed { CL_PNG_DEFAULT, CL_PNG_FAST };

/* Encode the PNG into a malloc'd buffer *out of *out_len bytes (caller frees). */
enum cl_status cl_png_encode_mem(int w, int h, int channels, const uint8_t *pixels,
                                 enum cl_png_speed speed, uint8_t **out, size_t *out_len,
                                 struct cl_err *e);

#endif
