/* test_tokenizer.c - the CLIP tokenizer against ids from scripts/clip_tokenizer.py
 * (tiny committed vocabulary always; the real CLIP vocabulary when ../shared/data is
 * there), Unicode facts for every code point, hostile tokenizer files, the API. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../harness.h"
#include "tokenizer.h"

#define FIX "tests/fixtures/tokenizer/"
#define TINY_VOCAB FIX "tiny/vocab.json"
#define TINY_MERGES FIX "tiny/merges.txt"
#define CLIP_DIR "../shared/data/clip-bpe/"
#define CLIP_VOCAB CLIP_DIR "vocab.json"
#define CLIP_MERGES CLIP_DIR "merges.txt"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0, got;
    char *buf = malloc(cap + 1);
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) buf = realloc(buf, (cap *= 2) + 1);
    }
    fclose(f);
    if (buf) buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

static size_t unhex(const char *h, char *out)
{
    size_t n = 0;
    for (; h[0] && h[1]; h += 2) {
        unsigned v;
        sscanf(h, "%2x", &v);
        out[n++] = (char)v;
    }
    return n;
}

static struct cl_tokenizer *load_or_fail(const char *vocab, const char *merges)
{
    struct cl_tokenizer *t = NULL;
    struct cl_err e = {{0}};
    enum cl_status st = cl_tokenizer_load(&t, vocab, merges, &e);
    CHECKF(st == CL_OK, "%s", e.msg);
    return t;
}

/* Tokenize every case of a golden file; compare with the Python ids and, for the
 * invalid UTF-8 cases, the offset Python's decoder reports.  Returns cases checked. */
static int run_golden(const struct cl_tokenizer *t, const char *path)
{
    char *json = slurp(path, NULL);
    CHECKF(json != NULL, "cannot read %s", path);
    if (!json) return 0;
    cJSON *root = cJSON_Parse(json);
    free(json);
    CHECKF(root != NULL, "%s: bad JSON", path);
    if (!root) return 0;
    int context = cJSON_GetObjectItem(root, "context")->valueint, checked = 0, mismatched = 0;
    int32_t *ids = malloc((size_t)context * sizeof *ids);
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        const char *hex = cJSON_GetObjectItem(c, "hex")->valuestring;
        char *text = malloc(strlen(hex) / 2 + 1);
        size_t len = unhex(hex, text);
        struct cl_err e = {{0}};
        int n = -1;
        enum cl_status st = cl_tokenize(t, text, len, ids, context, &n, &e);
        const cJSON *want_off = cJSON_GetObjectItem(c, "error_offset");
        if (want_off) {
            char expect[64];
            snprintf(expect, sizeof expect, "byte offset %d ", want_off->valueint);
            CHECKF(st == CL_ERR_DATA && strstr(e.msg, expect), "%s: status %s, message \"%s\", want \"%s\"",
                   name, cl_status_str(st), e.msg, expect);
        } else {
            const cJSON *want = cJSON_GetObjectItem(c, "ids");
            int nw = cJSON_GetArraySize(want), first_diff = -1;
            CHECKF(st == CL_OK, "%s: %s", name, e.msg);
            for (int i = 0; i < context; i++) {
                int32_t w = i < nw ? (int32_t)cJSON_GetArrayItem(want, i)->valueint : 0;
                if (ids[i] != w && first_diff < 0) first_diff = i;
            }
            if (first_diff >= 0 || n != nw) {
                mismatched++;
                CHECKF(0, "%s: %d ids vs %d from Python; first difference at %d: %d vs %d", name, n, nw,
                       first_diff, first_diff >= 0 ? ids[first_diff] : 0,
                       first_diff >= 0 && first_diff < nw ? cJSON_GetArrayItem(want, first_diff)->valueint : 0);
            }
        }
        checked++;
        free(text);
    }
    fprintf(stderr, "  %s: %d cases, %d mismatched\n", path, checked, mismatched);
    free(ids);
    cJSON_Delete(root);
    return checked;
}

static void test_tiny_golden(void)
{
    struct cl_tokenizer *t = load_or_fail(TINY_VOCAB, TINY_MERGES);
    if (!t) return;
    CHECK(cl_tokenizer_merges_ordered(t));
    CHECK(run_golden(t, FIX "tiny_golden.json") > 300);
    cl_tokenizer_force_naive_bpe(t, 1); /* the reference loop gives the same ids */
    CHECK(run_golden(t, FIX "tiny_golden.json") > 300);
    cl_tokenizer_free(t);
}

static int have_clip(void)
{
    if (access(CLIP_VOCAB, R_OK) == 0 && access(CLIP_MERGES, R_OK) == 0) return 1;
    printf("SKIP tokenizer: real CLIP vocabulary not found at %s (golden ids against it not checked)\n",
           CLIP_DIR);
    return 0;
}

static void test_clip_golden(void)
{
    if (!have_clip()) return;
    struct cl_tokenizer *t = load_or_fail(CLIP_VOCAB, CLIP_MERGES);
    if (!t) return;
    CHECK(cl_tokenizer_vocab_size(t) == 49408);
    CHECK(cl_tokenizer_merge_count(t) == 48894);
    CHECK(cl_tokenizer_sot(t) == 49406 && cl_tokenizer_eot(t) == 49407);
    CHECK(cl_tokenizer_merges_ordered(t));
    /* the README's well-known ids */
    static const int32_t want[8] = {49406, 320, 1125, 539, 320, 2368, 269, 49407};
    int32_t ids[77];
    int n = 0;
    struct cl_err e = {{0}};
    CHECK(cl_tokenize(t, "a photo of a cat.", 17, ids, 77, &n, &e) == CL_OK);
    CHECK(n == 8 && memcmp(ids, want, sizeof want) == 0);
    CHECK(run_golden(t, FIX "clip_golden.json") > 300);
    cl_tokenizer_force_naive_bpe(t, 1);
    CHECK(run_golden(t, FIX "clip_golden.json") > 300);
    cl_tokenizer_free(t);
}

/* The heap merge must equal the reference loop on long and repetitive pieces too. */
static void test_heap_equals_naive(void)
{
    struct cl_tokenizer *t = load_or_fail(access(CLIP_VOCAB, R_OK) == 0 ? CLIP_VOCAB : TINY_VOCAB,
                                          access(CLIP_VOCAB, R_OK) == 0 ? CLIP_MERGES : TINY_MERGES);
    if (!t) return;
    static const char *const pool[] = {"a", "b", "e", "th", "in", "ing", "er", "ss", "o", "photo",
                                       "\xc3\xa9", "!", ".", "'", "0", " "};
    const int context = 400;
    int32_t *a = malloc(context * sizeof *a), *b = malloc(context * sizeof *b);
    char text[2048];
    unsigned seed = 12345;
    int diffs = 0;
    for (int it = 0; it < 2000; it++) {
        size_t len = 0;
        int words = 1 + (int)((seed = seed * 1103515245 + 12345) >> 16) % 120;
        for (int k = 0; k < words; k++) {
            const char *p = pool[((seed = seed * 1103515245 + 12345) >> 16) % (sizeof pool / sizeof pool[0])];
            memcpy(text + len, p, strlen(p));
            len += strlen(p);
        }
        struct cl_err e = {{0}};
        int na = 0, nb = 0;
        cl_tokenizer_force_naive_bpe(t, 0);
        CHECK(cl_tokenize(t, text, len, a, context, &na, &e) == CL_OK);
        cl_tokenizer_force_naive_bpe(t, 1);
        CHECK(cl_tokenize(t, text, len, b, context, &nb, &e) == CL_OK);
        if (na != nb || memcmp(a, b, context * sizeof *a) != 0) diffs++;
    }
    CHECKF(diffs == 0, "%d of 2000 random texts differ between heap and reference merging", diffs);
    free(a);
    free(b);
    cl_tokenizer_free(t);
}

/* Every code point: regex class, isspace, final-sigma class, lower case. */
static void test_unicode_facts(void)
{
    size_t len;
    char *txt = slurp(FIX "unicode_facts.txt", &len);
    CHECKF(txt != NULL, "cannot read " FIX "unicode_facts.txt");
    if (!txt) return;
    enum { NCP = 0x110000 };
    char *cls = malloc(NCP), *sig = malloc(NCP), *spc = calloc(NCP, 1);
    uint32_t *low = malloc(NCP * 2 * sizeof *low); /* (NCP, 2) lower case, second 0 if none */
    memset(cls, 'P', NCP);
    memset(sig, '-', NCP);
    for (uint32_t c = 0; c < NCP; c++) { low[2 * c] = c; low[2 * c + 1] = 0; }
    int lines = 0;
    for (char *line = strtok(txt, "\n"); line; line = strtok(NULL, "\n")) {
        unsigned a, b, m0, m1;
        char v;
        if (line[0] == '#') continue;
        lines++;
        if (line[0] == 'C' && sscanf(line, "C %x %x %c", &a, &b, &v) == 3)
            for (unsigned c = a; c <= b; c++) cls[c] = v;
        else if (line[0] == 'W' && sscanf(line, "W %x %x", &a, &b) == 2)
            for (unsigned c = a; c <= b; c++) spc[c] = 1;
        else if (line[0] == 'G' && sscanf(line, "G %x %x %c", &a, &b, &v) == 3)
            for (unsigned c = a; c <= b; c++) sig[c] = v;
        else if (line[0] == 'M' && (m1 = 0, sscanf(line, "M %x %x %x", &a, &m0, &m1) >= 2)) {
            low[2 * a] = m0;
            low[2 * a + 1] = m1;
        } else
            CHECKF(0, "unicode_facts.txt: bad line \"%s\"", line);
    }
    CHECK(lines > 2000);
    int bad_cls = 0, bad_spc = 0, bad_sig = 0, bad_low = 0;
    for (uint32_t c = 0; c < NCP; c++) {
        if (c >= 0xD800 && c <= 0xDFFF) continue;
        uint32_t o[2] = {0, 0};
        int n = cl_tokenizer_cp_lower(c, o);
        char k = cl_tokenizer_cp_class(c), g = cl_tokenizer_cp_sigma(c);
        int s = cl_tokenizer_cp_isspace(c);
        if (k != cls[c] && bad_cls++ < 5) fprintf(stderr, "  U+%04X class %c, Python %c\n", c, k, cls[c]);
        if (s != spc[c] && bad_spc++ < 5) fprintf(stderr, "  U+%04X isspace %d, Python %d\n", c, s, spc[c]);
        if (g != sig[c] && bad_sig++ < 5) fprintf(stderr, "  U+%04X sigma %c, Python %c\n", c, g, sig[c]);
        if ((o[0] != low[2 * c] || (n == 2 ? o[1] : 0) != low[2 * c + 1]) && bad_low++ < 5)
            fprintf(stderr, "  U+%04X lower U+%04X, Python U+%04X\n", c, o[0], low[2 * c]);
    }
    CHECKF(bad_cls + bad_spc + bad_sig + bad_low == 0,
           "code points differing from Python: class %d, isspace %d, sigma %d, lower %d",
           bad_cls, bad_spc, bad_sig, bad_low);
    free(cls); free(sig); free(spc); free(low); free(txt);
}

static void test_api(void)
{
    struct cl_tokenizer *t = load_or_fail(TINY_VOCAB, TINY_MERGES);
    if (!t) return;
    int32_t sot = cl_tokenizer_sot(t), eot = cl_tokenizer_eot(t), ids[8];
    CHECK((size_t)eot == cl_tokenizer_vocab_size(t) - 1 && sot == eot - 1);
    CHECK(strcmp(cl_tokenizer_token(t, sot), "<|startoftext|>") == 0);
    CHECK(strcmp(cl_tokenizer_token(t, 0), "!") == 0);
    CHECK(strcmp(cl_tokenizer_token(t, 256 + 'a' - '!'), "a</w>") == 0);
    CHECK(cl_tokenizer_token(t, -1) == NULL && cl_tokenizer_token(t, eot + 1) == NULL);
    struct cl_err e = {{0}};
    int n = -1;
    /* empty text: start, end, zeros */
    CHECK(cl_tokenize(t, "", 0, ids, 8, &n, &e) == CL_OK);
    CHECK(n == 2 && ids[0] == sot && ids[1] == eot && ids[2] == 0 && ids[7] == 0);
    /* short contexts: truncation keeps the end token; context 1 holds only it */
    const char *s = "a a a a a a a a a a";
    CHECK(cl_tokenize(t, s, strlen(s), ids, 4, &n, &e) == CL_OK);
    CHECK(n == 4 && ids[0] == sot && ids[3] == eot && ids[1] == ids[2] && ids[1] != eot);
    CHECK(cl_tokenize(t, s, strlen(s), ids, 2, &n, &e) == CL_OK && n == 2 && ids[0] == sot && ids[1] == eot);
    CHECK(cl_tokenize(t, s, strlen(s), ids, 1, &n, &e) == CL_OK && n == 1 && ids[0] == eot);
    CHECK(cl_tokenize(t, s, strlen(s), ids, 0, &n, &e) == CL_ERR_USAGE);
    /* exactly context - 2 tokens fits; one more truncates */
    CHECK(cl_tokenize(t, "a a", 3, ids, 4, &n, &e) == CL_OK && n == 4 && ids[3] == eot && ids[2] != eot);
    CHECK(cl_tokenize(t, "a a a", 5, ids, 4, &n, &e) == CL_OK && n == 4 && ids[3] == eot);
    CHECK(cl_tokenize(t, "a", 1, ids, 8, NULL, &e) == CL_OK); /* n_out may be NULL */
    /* NUL is an ordinary character; invalid UTF-8 names its offset */
    CHECK(cl_tokenize(t, "a\0b", 3, ids, 8, &n, &e) == CL_OK && n == 5);
    CHECK(cl_tokenize(t, "ok \xe2\x82", 5, ids, 8, &n, &e) == CL_ERR_DATA && strstr(e.msg, "byte offset 3"));
    cl_tokenizer_free(t);
    cl_tokenizer_free(NULL);
}

/* Hostile tokenizer files each give a clear error naming the file and the problem. */
static void test_bad_files(void)
{
    char dir[] = "/tmp/cl_tok_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char vpath[64], mpath[64];
    snprintf(vpath, sizeof vpath, "%s/vocab.json", dir);
    snprintf(mpath, sizeof mpath, "%s/merges.txt", dir);

    /* a valid vocabulary built from the tiny one's first 512 tokens + a merge "a b" */
    struct cl_tokenizer *tiny = load_or_fail(TINY_VOCAB, TINY_MERGES);
    if (!tiny) return;
    cJSON *v = cJSON_CreateObject();
    for (int32_t i = 0; i < 512; i++) cJSON_AddNumberToObject(v, cl_tokenizer_token(tiny, i), i);
    cl_tokenizer_free(tiny);
    cJSON_AddNumberToObject(v, "ab", 512);
    cJSON_AddNumberToObject(v, "<|startoftext|>", 513);
    cJSON_AddNumberToObject(v, "<|endoftext|>", 514);
    char *good = cJSON_PrintUnformatted(v);

    struct { const char *vocab, *merges, *want; enum cl_status st; } cases[] = {
        {good, "#version: 0.2\na b\n", NULL, CL_OK},
        {good, "a b", NULL, CL_OK},
        {"{\"a\": 0,", "", "not valid JSON", CL_ERR_DATA},
        {"[1, 2]", "", "expected a JSON object", CL_ERR_DATA},
        {"{\"a\": \"x\"}", "", "id must be an integer", CL_ERR_DATA},
        {"{\"a\": 0.5}", "", "id must be an integer", CL_ERR_DATA},
        {"{\"a\": 0, \"b\": 5}", "", "id must be an integer in 0..1", CL_ERR_DATA},
        {"{\"a\": 0, \"b\": 0}", "", "id 0 given to both", CL_ERR_DATA},
        {"{\"a\": 0, \"a\": 1}", "", "appears twice", CL_ERR_DATA},
        {"{\"\": 0}", "", "empty token", CL_ERR_DATA},
        {"{\"a\": 0, \"<|startoftext|>\": 1}", "", "no <|endoftext|> token", CL_ERR_DATA},
        {"{\"a\": 0, \"<|startoftext|>\": 1, \"<|endoftext|>\": 2}", "", "no token \"\xc4\x80\" for byte 0x00",
         CL_ERR_DATA},
        {good, "#version: 0.2\na b c\n", "line 2", CL_ERR_DATA},
        {good, "#version: 0.2\na zz\n", "symbol \"zz\" is not a token", CL_ERR_DATA},
        {good, "#version: 0.2\nb a\n", "merged symbol \"ba\" is not a token", CL_ERR_DATA},
        {good, "#version: 0.2\na b\na b\n", "repeats rank 0", CL_ERR_DATA},
        {NULL, "", "cannot open", CL_ERR_IO},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unlink(vpath);
        if (cases[i].vocab) CHECK(write_file(vpath, cases[i].vocab) == 0);
        CHECK(write_file(mpath, cases[i].merges) == 0);
        struct cl_tokenizer *t = (struct cl_tokenizer *)1;
        struct cl_err e = {{0}};
        enum cl_status st = cl_tokenizer_load(&t, vpath, mpath, &e);
        CHECKF(st == cases[i].st, "case %zu: status %s, want %s (%s)", i, cl_status_str(st),
               cl_status_str(cases[i].st), e.msg);
        if (cases[i].want) {
            CHECKF(strstr(e.msg, cases[i].want) && strstr(e.msg, dir), "case %zu: message \"%s\" lacks \"%s\"",
                   i, e.msg, cases[i].want);
            CHECK(t == NULL);
        } else if (st == CL_OK) {
            CHECK(cl_tokenizer_merge_count(t) == 1);
            int32_t ids[4];
            int n;
            CHECK(cl_tokenize(t, "ab", 2, ids, 4, &n, &e) == CL_OK && n == 4);
            /* "ab" -> a, b</w>: the merge "a b" needs a plain b, so nothing merges */
            CHECK(ids[1] == 'a' - '!' && ids[2] == 256 + 'b' - '!');
            CHECK(cl_tokenize(t, "abc", 3, ids, 4, &n, &e) == CL_OK && n == 4 && ids[1] == 512);
            cl_tokenizer_free(t);
        }
    }
    /* a merge list whose merge uses a symbol before it is produced: not ordered, so
     * the reference loop runs */
    cJSON_DeleteItemFromObject(v, "<|startoftext|>");
    cJSON_DeleteItemFromObject(v, "<|endoftext|>");
    cJSON_AddNumberToObject(v, "abc", 513);
    cJSON_AddNumberToObject(v, "<|startoftext|>", 514);
    cJSON_AddNumberToObject(v, "<|endoftext|>", 515);
    char *unordered = cJSON_PrintUnformatted(v);
    CHECK(write_file(vpath, unordered) == 0);
    CHECK(write_file(mpath, "ab c\na b\n") == 0);
    struct cl_tokenizer *t = NULL;
    struct cl_err e = {{0}};
    CHECKF(cl_tokenizer_load(&t, vpath, mpath, &e) == CL_OK, "%s", e.msg);
    if (t) {
        CHECK(!cl_tokenizer_merges_ordered(t));
        int32_t ids[4];
        int n;
        /* a b c d</w>: rank 1 merges "a b", then "ab c" (rank 0) applies: abc, d</w> */
        CHECK(cl_tokenize(t, "abcd", 4, ids, 4, &n, &e) == CL_OK && n == 4 && ids[1] == 513);
        cl_tokenizer_free(t);
    }
    free(unordered);
    free(good);
    cJSON_Delete(v);
    unlink(vpath);
    unlink(mpath);
    rmdir(dir);
}

/* Timings, printed; generous bounds so a busy machine does not fail the test. */
static void test_speed(void)
{
    int real = access(CLIP_VOCAB, R_OK) == 0;
    double t0 = now_ms();
    struct cl_tokenizer *t = load_or_fail(real ? CLIP_VOCAB : TINY_VOCAB, real ? CLIP_MERGES : TINY_MERGES);
    double load = now_ms() - t0;
    if (!t) return;
    const char *cap = "A photo of a Golden Retriever playing fetch in the park, it's sunny!";
    int32_t ids[77];
    struct cl_err e = {{0}};
    const int reps = 20000;
    t0 = now_ms();
    for (int i = 0; i < reps; i++) CHECK(cl_tokenize(t, cap, strlen(cap), ids, 77, NULL, &e) == CL_OK);
    double per = (now_ms() - t0) * 1e3 / reps;
    /* one 200 KB word: heap merging keeps this linear-ish */
    size_t big = 200000;
    char *word = malloc(big);
    for (size_t i = 0; i < big; i++) word[i] = "photographs"[i % 11];
    t0 = now_ms();
    CHECK(cl_tokenize(t, word, big, ids, 77, NULL, &e) == CL_OK);
    double longword = now_ms() - t0;
    free(word);
    fprintf(stderr, "  %s vocabulary: load %.1f ms, caption %.2f us, 200 KB word %.1f ms\n",
            real ? "CLIP" : "tiny", load, per, longword);
    CHECKF(load < 1000 && per < 1000 && longword < 5000, "too slow: load %.1f ms, caption %.2f us, word %.1f ms",
           load, per, longword);
    cl_tokenizer_free(t);
}

TEST_MAIN("tokenizer",
          TEST(test_unicode_facts),
          TEST(test_api),
          TEST(test_bad_files),
          TEST(test_tiny_golden),
          TEST(test_clip_golden),
          TEST(test_heap_equals_naive),
          TEST(test_speed))
