/* test_manifest.c - unit tests for TSV manifests and plain lists. */
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

#include "../harness.h"
#include "manifest.h"

static const char *write_tmp(const char *content, size_t n)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/cl_manifest_test_%d.tsv", (int)getpid());
    FILE *f = fopen(path, "wb");
    fwrite(content, 1, n, f);
    fclose(f);
    return path;
}

static void test_tsv_with_header(void)
{
    const char *txt = "path\tlabel\tgroup\tcaption\tn\na.png\t1\t2\ta red star\t7\r\n\nb.png\t-\t\n";
    const char *p = write_tmp(txt, strlen(txt));
    struct cl_manifest m;
    struct cl_manifest_row r = {0};
    struct cl_err e;
    CHECK(cl_manifest_open(&m, p, 1, &e) == CL_OK);
    CHECK(cl_manifest_next(&m, &r, &e) == CL_OK);
    CHECK(strcmp(r.path, "a.png") == 0 && r.has_label && r.label == 1 && r.has_group && r.group == 2 && r.line == 2);
    CHECK(cl_map_get_str(&r.extra, "caption") && strcmp(cl_map_get_str(&r.extra, "caption"), "a red star") == 0);
    int64_t n = 0;
    CHECK(cl_map_get_int(&r.extra, "n", &n) == 0 && n == 7);
    CHECK(cl_manifest_next(&m, &r, &e) == CL_OK);
    CHECK(strcmp(r.path, "b.png") == 0 && !r.has_label && !r.has_group && r.line == 4);
    CHECK(cl_manifest_next(&m, &r, &e) == CL_END);
    cl_manifest_close(&m, &r);
    unlink(p);
}

static void test_bad_label(void)
{
    const char *txt = "a.png\t1\nb.png\tcat\n";
    const char *p = write_tmp(txt, strlen(txt));
    struct cl_manifest m;
    struct cl_manifest_row r = {0};
    struct cl_err e;
    CHECK(cl_manifest_open(&m, p, 1, &e) == CL_OK);
    CHECK(cl_manifest_next(&m, &r, &e) == CL_OK);
    CHECK(cl_manifest_next(&m, &r, &e) == CL_ERR_DATA && strstr(e.msg, ":2: label 'cat'"));
    cl_manifest_close(&m, &r);
    unlink(p);
}

static void test_plain_list_and_nul(void)
{
    const char txt[] = "x y.png\nz\tw.png\nbad\0line\n";
    const char *p = write_tmp(txt, sizeof txt - 1);
    struct cl_manifest m;
    struct cl_manifest_row r = {0};
    struct cl_err e;
    CHECK(cl_manifest_open(&m, p, 0, &e) == CL_OK);
    CHECK(cl_manifest_next(&m, &r, &e) == CL_OK && strcmp(r.path, "x y.png") == 0);
    CHECK(cl_manifest_next(&m, &r, &e) == CL_OK && strcmp(r.path, "z\tw.png") == 0);
    CHECK(cl_manifest_next(&m, &r, &e) == CL_ERR_DATA && strstr(e.msg, "NUL"));
    cl_manifest_close(&m, &r);
    CHECK(cl_manifest_open(&m, "/nonexistent/m.tsv", 1, &e) == CL_ERR_IO && strstr(e.msg, "/nonexistent/m.tsv"));
    unlink(p);
}

TEST_MAIN("manifest", TEST(test_tsv_with_header), TEST(test_bad_label), TEST(test_plain_list_and_nul))
