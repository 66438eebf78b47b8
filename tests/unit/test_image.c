/* test_image.c - PNG writer round trips; PNG/JPEG decoding parity with Pillow 9.4
 * (goldens from scripts/make_image_goldens.py); hostile files refused cleanly. */
#include <png.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../harness.h"
#include "image.h"

#define FIXTURES "tests/fixtures/images"
#include "../photos.h"

/* ------------------------------------------------------------------ helpers */

/* A deterministic test pattern [h, w, c]. */
static uint8_t *pattern(int w, int h, int c)
{
    uint8_t *p = malloc((size_t)w * h * c);
    for (int i = 0; i < w * h * c; i++) p[i] = (uint8_t)(i * 7 + i / 13);
    return p;
}

/* Decode a PNG with libpng's simplified API (an independent check of the writer). */
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

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    uint8_t *b = malloc(cap);
    size_t got;
    while ((got = fread(b + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) b = realloc(b, cap *= 2);
    }
    fclose(f);
    *len = n;
    return b;
}

static uint64_t fnv64(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

/* Split a MANIFEST.tsv line in place into at most max tab-separated fields. */
static int split_tabs(char *line, char **f, int max)
{
    int n = 0;
    line[strcspn(line, "\r\n")] = 0;
    if (line[0] == '#' || line[0] == 0) return 0;
    for (char *p = line; n < max;) {
        f[n++] = p;
        char *t = strchr(p, '\t');
        if (!t) break;
        *t = 0;
        p = t + 1;
    }
    return n;
}

/* Compare decoded image with a golden image; prints the largest difference. */
static void compare_rgb(const char *what, const struct cl_image *a, const struct cl_image *g)
{
    CHECKF(a->w == g->w && a->h == g->h, "%s: %dx%d, golden %dx%d", what, a->w, a->h, g->w, g->h);
    if (a->w != g->w || a->h != g->h) return;
    size_t n = (size_t)a->w * a->h * 3, same = 0;
    int mx = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)a->rgb[i] - (int)g->rgb[i]);
        if (d > mx) mx = d;
        same += d == 0;
    }
    fprintf(stderr, "  %-44s %4dx%-4d max diff %d, identical %.3f%%\n", what, a->w, a->h, mx,
            100.0 * (double)same / (double)n);
    CHECKF(mx == 0, "%s: decoded pixels differ from Pillow's (max diff %d)", what, mx);
}

/* ------------------------------------------------------------------ writer */

static void test_png_encode_mem_roundtrip(void)
{
    const int chans[] = {1, 3, 4};
    const enum cl_png_speed speeds[] = {CL_PNG_DEFAULT, CL_PNG_FAST, CL_PNG_DEFAULT};
    for (int k = 0; k < 3; k++) {
        int c = chans[k], w = 37, h = 11;
        enum cl_png_speed speed = speeds[k];
        uint8_t *px = pattern(w, h, c), *png = NULL;
        size_t len = 0;
        struct cl_err e;
        CHECKF(cl_png_encode_mem(w, h, c, px, speed, &png, &len, &e) == CL_OK, "speed %d", (int)speed);
        int rw, rh, rc;
        uint8_t *back = png_read_ref(png, len, &rw, &rh, &rc);
        CHECKF(back && rw == w && rh == h && rc == c, "channels %d", c);
        if (back) CHECKF(memcmp(back, px, (size_t)w * h * c) == 0, "channels %d pixels differ", c);
        /* and through our own decoder, as RGB */
        struct cl_image im;
        CHECK(cl_image_decode(&im, png, len, "mem.png", &e) == CL_OK);
        int ok = im.w == w && im.h == h;
        for (int i = 0; ok && i < w * h; i++)
            for (int ch = 0; ch < 3; ch++)
                ok &= im.rgb[3 * i + ch] == px[c * i + (c == 1 ? 0 : ch)];
        CHECKF(ok, "channels %d: cl_image_decode disagrees with the written pixels", c);
        cl_image_free(&im);
        free(back);
        free(png);
        free(px);
    }
}

/* The speed setting changes the bytes, never the pixels; an unknown one is refused. */
static void test_png_encode_speeds(void)
{
    const int chans[] = {1, 3, 4};
    for (int k = 0; k < 3; k++) {
        int c = chans[k], w = 64, h = 48;
        uint8_t *px = pattern(w, h, c), *png[2] = {NULL, NULL};
        size_t len[2] = {0, 0};
        for (int sp = 0; sp < 2; sp++) {
            struct cl_err e;
            CHECKF(cl_png_encode_mem(w, h, c, px, sp ? CL_PNG_FAST : CL_PNG_DEFAULT, &png[sp], &len[sp], &e) == CL_OK,
                   "channels %d speed %d", c, sp);
            int rw, rh, rc;
            uint8_t *back = png[sp] ? png_read_ref(png[sp], len[sp], &rw, &rh, &rc) : NULL;
            CHECKF(back && rw == w && rh == h && rc == c && memcmp(back, px, (size_t)w * h * c) == 0,
                   "channels %d speed %d: pixels differ", c, sp);
            free(back);
        }
        CHECKF(len[0] != len[1] || memcmp(png[0], png[1], len[0]) != 0,
               "channels %d: the fast setting wrote the default's bytes", c);
        free(png[0]);
        free(png[1]);
        free(px);
    }
    uint8_t *px = pattern(4, 4, 3), *png = (uint8_t *)1;
    size_t len = 1;
    struct cl_err e;
    CHECK(cl_png_encode_mem(4, 4, 3, px, (enum cl_png_speed)7, &png, &len, &e) == CL_ERR_USAGE);
    CHECK(png == NULL && len == 0);
    CHECKF(strstr(e.msg, "unknown speed setting 7") != NULL, "message: %s", e.msg);
    free(px);
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
    size_t n = 0;
    uint8_t *buf = slurp(path, &n);
    CHECK(buf != NULL);
    if (buf) {
        int rw, rh, rc;
        uint8_t *back = png_read_ref(buf, n, &rw, &rh, &rc);
        CHECK(back && rw == w && rh == h && rc == 3);
        if (back) CHECK(memcmp(back, px, (size_t)w * h * 3) == 0);
        free(back);
        free(buf);
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

/* ------------------------------------------------------------------ decoding */

/* Every "decode" and "error" case of the manifest. */
static void test_manifest_decode_and_errors(void)
{
    FILE *m = fopen(FIXTURES "/MANIFEST.tsv", "r");
    CHECKF(m != NULL, "cannot open %s/MANIFEST.tsv (run from the repository root)", FIXTURES);
    if (!m) return;
    char line[4096], *f[12], src[1024], gold[1024];
    int ndecode = 0, nerror = 0;
    while (fgets(line, sizeof line, m)) {
        int nf = split_tabs(line, f, 12);
        if (nf >= 3 && strcmp(f[0], "decode") == 0) {
            snprintf(src, sizeof src, "%s/%s", FIXTURES, f[1]);
            snprintf(gold, sizeof gold, "%s/%s", FIXTURES, f[2]);
            struct cl_image a, g;
            struct cl_err e;
            enum cl_status s = cl_image_load(&a, src, &e);
            CHECKF(s == CL_OK, "%s: %s", src, e.msg);
            CHECKF(cl_image_load(&g, gold, &e) == CL_OK, "%s: %s", gold, e.msg);
            if (s == CL_OK && g.rgb) compare_rgb(f[1], &a, &g);
            cl_image_free(&a);
            cl_image_free(&g);
            ndecode++;
        } else if (nf >= 4 && strcmp(f[0], "error") == 0) {
            snprintf(src, sizeof src, "%s/%s", FIXTURES, f[1]);
            enum cl_status want = strcmp(f[2], "data") == 0 ? CL_ERR_DATA : CL_ERR_UNSUPPORTED;
            struct cl_image a;
            struct cl_err e = {""};
            enum cl_status s = cl_image_load(&a, src, &e);
            fprintf(stderr, "  %-28s -> %s: %s\n", f[1], cl_status_str(s), e.msg);
            CHECKF(s == want, "%s: status %s, expected %s", f[1], cl_status_str(s), cl_status_str(want));
            CHECKF(strstr(e.msg, f[3]) != NULL, "%s: message lacks \"%s\"", f[1], f[3]);
            CHECKF(strstr(e.msg, src) != NULL, "%s: message does not name the file", f[1]);
            CHECK(a.rgb == NULL && a.w == 0 && a.h == 0);
            nerror++;
        }
    }
    fclose(m);
    fprintf(stderr, "  %d decode cases, %d error cases\n", ndecode, nerror);
    CHECK(ndecode >= 20 && nerror >= 10);
}

/* Every prefix of a PNG and of a JPEG: an error naming the file, or (only when just
 * the trailing chunks after the image data are cut, as Pillow) the full image. */
static void test_truncation_every_offset(void)
{
    const char *files[] = {FIXTURES "/src/palette4.png", FIXTURES "/src/rgb8_interlaced.png",
                           FIXTURES "/src/odd_13x7.jpg", FIXTURES "/src/progressive.jpg"};
    for (int k = 0; k < 4; k++) {
        size_t len = 0;
        uint8_t *buf = slurp(files[k], &len);
        CHECKF(buf != NULL, "cannot read %s", files[k]);
        if (!buf) continue;
        struct cl_image full;
        struct cl_err e;
        CHECK(cl_image_decode(&full, buf, len, files[k], &e) == CL_OK);
        int bad = 0, accepted = 0;
        for (size_t n = 0; n < len; n++) {
            uint8_t *cut = malloc(n ? n : 1); /* exact size, so overreads hit the allocator */
            memcpy(cut, buf, n);
            struct cl_image im;
            enum cl_status s = cl_image_decode(&im, cut, n, "cut", &e);
            if (s == CL_OK) {
                accepted++;
                /* only the tail (IEND, CRC) may be missing: the image must be complete */
                if (len - n > 16 || im.w != full.w || im.h != full.h ||
                    memcmp(im.rgb, full.rgb, (size_t)im.w * im.h * 3) != 0) bad++;
            } else if ((s != CL_ERR_DATA && s != CL_ERR_UNSUPPORTED) || !strstr(e.msg, "cut")) {
                bad++;
            }
            cl_image_free(&im);
            free(cut);
        }
        fprintf(stderr, "  %s: %zu prefixes, %d decoded (tail cut only)\n", files[k], len, accepted);
        CHECKF(bad == 0, "%s: %d prefixes decoded wrongly or failed without a clear error", files[k], bad);
        cl_image_free(&full);
        free(buf);
    }
}

/* Random byte corruption: any outcome but a crash; errors carry the name. */
static void test_corruption_never_crashes(void)
{
    const char *files[] = {FIXTURES "/src/palette8_trns.png", FIXTURES "/src/rgb16.png",
                           FIXTURES "/src/rgb_q90.jpg", FIXTURES "/src/progressive.jpg",
                           FIXTURES "/src/cmyk.jpg"};
    uint32_t rng = 12345;
    for (int k = 0; k < 5; k++) {
        size_t len = 0;
        uint8_t *buf = slurp(files[k], &len);
        if (!buf) { CHECKF(0, "cannot read %s", files[k]); continue; }
        int ok = 0, err = 0, bad = 0;
        for (int trial = 0; trial < 300; trial++) {
            uint8_t *m = malloc(len);
            memcpy(m, buf, len);
            int flips = 1 + trial % 4;
            for (int i = 0; i < flips; i++) {
                rng = rng * 1664525u + 1013904223u;
                size_t at = 8 + (rng >> 8) % (len - 8); /* keep the magic bytes */
                rng = rng * 1664525u + 1013904223u;
                m[at] ^= (uint8_t)(1 + (rng >> 24) % 255);
            }
            struct cl_image im;
            struct cl_err e = {""};
            enum cl_status s = cl_image_decode(&im, m, len, "mutant", &e);
            if (s == CL_OK) ok++;
            else if ((s == CL_ERR_DATA || s == CL_ERR_UNSUPPORTED) && strstr(e.msg, "mutant")) err++;
            else bad++;
            cl_image_free(&im);
            free(m);
        }
        fprintf(stderr, "  %s: 300 mutants, %d decoded, %d refused\n", files[k], ok, err);
        CHECK(bad == 0);
        free(buf);
    }
}

static void test_magic_not_extension(void)
{
    /* a PNG named .jpg and a JPEG named .png decode by their content */
    size_t lp = 0, lj = 0;
    uint8_t *png = slurp(FIXTURES "/src/rgb8.png", &lp), *jpg = slurp(FIXTURES "/src/grey.jpg", &lj);
    CHECK(png && jpg);
    if (png && jpg) {
        struct cl_image a, b;
        struct cl_err e;
        CHECK(cl_image_decode(&a, png, lp, "looks_like.jpg", &e) == CL_OK && a.w == 67);
        CHECK(cl_image_decode(&b, jpg, lj, "looks_like.png", &e) == CL_OK && b.w == 131);
        cl_image_free(&a);
        cl_image_free(&b);
    }
    free(png);
    free(jpg);
    struct cl_image c;
    struct cl_err e;
    CHECK(cl_image_load(&c, "/nonexistent/image.png", &e) == CL_ERR_IO);
    CHECKF(strstr(e.msg, "/nonexistent/image.png") != NULL, "message: %s", e.msg);
    cl_image_free(NULL);
}

/* Real photographs from Debian's python3-skimage (not committed): decoded RGB hash. */
static void test_real_photos_decode(void)
{
    const char *dir = photo_dir();
    FILE *m = fopen(FIXTURES "/MANIFEST.tsv", "r");
    if (!m) { CHECK(0); return; }
    char line[4096], *f[12], path[2048];
    int n = 0, missing = 0;
    while (fgets(line, sizeof line, m)) {
        if (split_tabs(line, f, 12) < 9 || strcmp(f[0], "photo") != 0) continue;
        snprintf(path, sizeof path, "%s/%s", dir, f[1]);
        size_t len = 0;
        uint8_t *buf = slurp(path, &len);
        if (!buf || len != strtoull(f[2], NULL, 10) || fnv64(buf, len) != strtoull(f[3], NULL, 16)) {
            printf("SKIP photo %s: absent or another version (make deps unpacks them into "
                   "build/photos, or set CL_PHOTO_DIR)\n", path);
            missing++;
            free(buf);
            continue;
        }
        struct cl_image im;
        struct cl_err e;
        CHECKF(cl_image_decode(&im, buf, len, path, &e) == CL_OK, "%s", e.msg);
        if (im.rgb) {
            uint64_t h = fnv64(im.rgb, (size_t)im.w * im.h * 3);
            int same = im.w == atoi(f[4]) && im.h == atoi(f[5]) && h == strtoull(f[6], NULL, 16);
            fprintf(stderr, "  photo %-26s %4dx%-4d decode %s Pillow's\n", f[1], im.w, im.h,
                    same ? "identical to" : "DIFFERS from");
            CHECKF(same, "%s: decoded RGB differs from Pillow's (hash)", f[1]);
        }
        cl_image_free(&im);
        free(buf);
        n++;
    }
    fclose(m);
    if (!n && !missing) CHECKF(0, "no photo cases in the manifest");
}

TEST_MAIN("image",
    TEST(test_png_encode_mem_roundtrip),
    TEST(test_png_encode_speeds),
    TEST(test_png_write_file_atomic),
    TEST(test_manifest_decode_and_errors),
    TEST(test_truncation_every_offset),
    TEST(test_corruption_never_crashes),
    TEST(test_magic_not_extension),
    TEST(test_real_photos_decode))
