/* tokenizer.c - CLIP byte-level BPE tokenizer (OpenAI SimpleTokenizer), see tokenizer.h. */
#include "tokenizer.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tokenizer_entities.h"

#define END_OF_WORD "</w>"
#define SOT_TEXT "<|startoftext|>"
#define EOT_TEXT "<|endoftext|>"

/* merge (a, b) -> merged with a rank; key = a << 32 | b, EMPTY_KEY marks a free slot */
#define EMPTY_KEY UINT64_MAX
struct merge_slot {
    uint64_t key;
    int32_t rank;
    int32_t merged;
};

struct cl_tokenizer {
    size_t n_vocab;
    char *strings;              /* (total bytes) every token, NUL-terminated */
    size_t *tok_off;            /* (n_vocab) offset of token id's string in strings */
    uint32_t *tok_len;          /* (n_vocab) its length in bytes */
    uint32_t *vocab_slots;      /* (vocab_cap) open addressing: id + 1, 0 = free */
    size_t vocab_cap;           /* power of two */
    struct merge_slot *merges;  /* (merge_cap) open addressing */
    size_t merge_cap;           /* power of two */
    size_t n_merges;
    int32_t byte_sym[256];      /* id of byte b's symbol */
    int32_t byte_end_sym[256];  /* id of byte b's symbol + "</w>" */
    int32_t sot, eot;
    int ordered;                /* merges ordered: heap BPE equals the reference loop */
    int naive;                  /* force the reference loop */
};

/* ------------------------------------------------------------------ hashing */

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static uint64_t hash_u64(uint64_t x)
{
    x ^= x >> 33; /* murmur3 finaliser */
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static size_t pow2_at_least(size_t n)
{
    size_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

static const char *tok_str(const struct cl_tokenizer *t, int32_t id)
{
    return t->strings + t->tok_off[id];
}

/* id of the token with these n bytes, or -1 */
static int32_t vocab_find(const struct cl_tokenizer *t, const char *s, size_t n)
{
    size_t mask = t->vocab_cap - 1;
    for (size_t i = hash_bytes(s, n) & mask;; i = (i + 1) & mask) {
        uint32_t v = t->vocab_slots[i];
        if (v == 0) return -1;
        if (t->tok_len[v - 1] == n && memcmp(tok_str(t, (int32_t)(v - 1)), s, n) == 0)
            return (int32_t)(v - 1);
    }
}

static const struct merge_slot *merge_find(const struct cl_tokenizer *t, int32_t a, int32_t b)
{
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    size_t mask = t->merge_cap - 1;
    for (size_t i = hash_u64(key) & mask;; i = (i + 1) & mask) {
        if (t->merges[i].key == key) return &t->merges[i];
        if (t->merges[i].key == EMPTY_KEY) return NULL;
    }
}

/* ------------------------------------------------------------------ loading */

static enum cl_status read_whole_file(const char *path, char **out, size_t *len, struct cl_err *e)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return cl_errf(e, CL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) { fclose(f); return cl_errf(e, CL_ERR_NOMEM, "%s: out of memory", path); }
    for (;;) {
        if (n == cap) {
            if (cap >= CL_TOKENIZER_MAX_FILE) {
                free(buf); fclose(f);
                return cl_errf(e, CL_ERR_DATA, "%s: larger than the %zu MiB limit for tokenizer files",
                               path, CL_TOKENIZER_MAX_FILE >> 20);
            }
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) { free(buf); fclose(f); return cl_errf(e, CL_ERR_NOMEM, "%s: out of memory", path); }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) { free(buf); return cl_errf(e, CL_ERR_IO, "%s: read error", path); }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return CL_OK;
}

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68
 * bytes to U+0100.. in byte order.  Writes byte b's symbol as UTF-8 (2 bytes max). */
static void byte_symbol(int b, char out[3])
{
    int cp = b, n = 0;
    if (!((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF))) {
        for (int x = 0; x < b; x++)
            if (!((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF))) n++;
        cp = 256 + n;
    }
    if (cp < 0x80) { out[0] = (char)cp; out[1] = '\0'; }
    else { out[0] = (char)(0xC0 | cp >> 6); out[1] = (char)(0x80 | (cp & 0x3F)); out[2] = '\0'; }
}

static enum cl_status load_vocab(struct cl_tokenizer *t, const char *path, struct cl_err *e)
{
    char *text;
    size_t len;
    enum cl_status st = read_whole_file(path, &text, &len, e);
    if (st) return st;
    cJSON *root = cJSON_ParseWithLength(text, len);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = at && at >= text && at <= text + len ? (size_t)(at - text) : 0;
        free(text);
        return cl_errf(e, CL_ERR_DATA, "%s: not valid JSON (near byte %zu); expected an object "
                       "mapping token strings to ids", path, off);
    }
    free(text);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return cl_errf(e, CL_ERR_DATA, "%s: expected a JSON object mapping token strings to ids", path);
    }
    size_t n = 0, bytes = 0;
    for (const cJSON *it = root->child; it; it = it->next) {
        n++;
        bytes += strlen(it->string) + 1;
    }
    if (n == 0 || n > (size_t)INT32_MAX / 2) {
        cJSON_Delete(root);
        return cl_errf(e, CL_ERR_DATA, "%s: %zu tokens; expected 1 to %d", path, n, INT32_MAX / 2);
    }
    t->n_vocab = n;
    t->vocab_cap = pow2_at_least(n * 2);
    t->strings = malloc(bytes);
    t->tok_off = malloc(n * sizeof *t->tok_off);
    t->tok_len = malloc(n * sizeof *t->tok_len);
    t->vocab_slots = calloc(t->vocab_cap, sizeof *t->vocab_slots);
    if (!t->strings || !t->tok_off || !t->tok_len || !t->vocab_slots) {
        cJSON_Delete(root);
        return cl_errf(e, CL_ERR_NOMEM, "%s: out of memory for %zu tokens", path, n);
    }
    for (size_t i = 0; i < n; i++) t->tok_off[i] = SIZE_MAX;
    size_t used = 0;
    st = CL_OK;
    for (const cJSON *it = root->child; it && !st; it = it->next) {
        const char *s = it->string;
        size_t sl = strlen(s);
        double v = cJSON_IsNumber(it) ? it->valuedouble : -1;
        if (sl == 0 || sl > UINT32_MAX) {
            st = cl_errf(e, CL_ERR_DATA, "%s: empty token string; expected non-empty tokens", path);
            break;
        }
        if (!cJSON_IsNumber(it) || v < 0 || v >= (double)n || v != (double)(int64_t)v) {
            st = cl_errf(e, CL_ERR_DATA, "%s: token \"%.80s\": id must be an integer in 0..%zu "
                         "(ids must be 0..N-1 for N = %zu tokens)", path, s, n - 1, n);
            break;
        }
        size_t id = (size_t)v;
        if (t->tok_off[id] != SIZE_MAX) {
            st = cl_errf(e, CL_ERR_DATA, "%s: id %zu given to both \"%.80s\" and \"%.80s\"; expected "
                         "each id once", path, id, t->strings + t->tok_off[id], s);
            break;
        }
        if (vocab_find(t, s, sl) >= 0) {
            st = cl_errf(e, CL_ERR_DATA, "%s: token \"%.80s\" appears twice", path, s);
            break;
        }
        memcpy(t->strings + used, s, sl + 1);
        t->tok_off[id] = used;
        t->tok_len[id] = (uint32_t)sl;
        used += sl + 1;
        size_t mask = t->vocab_cap - 1, i = hash_bytes(s, sl) & mask;
        while (t->vocab_slots[i]) i = (i + 1) & mask;
        t->vocab_slots[i] = (uint32_t)id + 1;
    }
    cJSON_Delete(root);
    if (st) return st;
    /* n distinct ids all < n: 0..n-1 each exactly once */

    t->sot = vocab_find(t, SOT_TEXT, strlen(SOT_TEXT));
    t->eot = vocab_find(t, EOT_TEXT, strlen(EOT_TEXT));
    if (t->sot < 0 || t->eot < 0)
        return cl_errf(e, CL_ERR_DATA, "%s: no %s token; expected both %s and %s", path,
                       t->sot < 0 ? SOT_TEXT : EOT_TEXT, SOT_TEXT, EOT_TEXT);
    for (int b = 0; b < 256; b++) {
        char sym[3 + sizeof END_OF_WORD];
        byte_symbol(b, sym);
        size_t sl = strlen(sym);
        t->byte_sym[b] = vocab_find(t, sym, sl);
        memcpy(sym + sl, END_OF_WORD, sizeof END_OF_WORD);
        t->byte_end_sym[b] = vocab_find(t, sym, strlen(sym));
        if (t->byte_sym[b] < 0 || t->byte_end_sym[b] < 0)
            return cl_errf(e, CL_ERR_DATA, "%s: no token \"%s\" for byte 0x%02x; expected all 512 "
                           "byte symbols (with and without " END_OF_WORD ")", path,
                           t->byte_sym[b] < 0 ? (sym[sl] = '\0', sym) : sym, b);
    }
    return CL_OK;
}

static enum cl_status load_merges(struct cl_tokenizer *t, const char *path, struct cl_err *e)
{
    char *text;
    size_t len;
    enum cl_status st = read_whole_file(path, &text, &len, e);
    if (st) return st;
    size_t lines = 1;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    t->merge_cap = pow2_at_least(lines * 2);
    t->merges = malloc(t->merge_cap * sizeof *t->merges);
    int32_t *max_prod = malloc(t->n_vocab * sizeof *max_prod); /* (n_vocab) last rank producing id */
    int32_t *min_use = malloc(t->n_vocab * sizeof *min_use);   /* (n_vocab) first rank using id */
    char *cat = malloc(len + 1);                               /* a + b of one line */
    if (!t->merges || !max_prod || !min_use || !cat) {
        st = cl_errf(e, CL_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    for (size_t i = 0; i < t->merge_cap; i++) t->merges[i].key = EMPTY_KEY;
    for (size_t i = 0; i < t->n_vocab; i++) { max_prod[i] = -1; min_use[i] = INT32_MAX; }

    size_t lineno = 0;
    for (char *p = text, *end = text + len; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl ? nl : end;
        char *next = nl ? nl + 1 : end;
        lineno++;
        if (le > p && le[-1] == '\r') le--;
        *le = '\0';
        if (lineno == 1 && strncmp(p, "#version", 8) == 0) { p = next; continue; }
        /* fields split on runs of blanks, as Python's str.split() */
        char *f[3];
        size_t fl[3];
        int nf = 0;
        for (char *q = p; q < le && nf < 3;) {
            while (q < le && (*q == ' ' || *q == '\t')) q++;
            if (q == le) break;
            f[nf] = q;
            while (q < le && *q != ' ' && *q != '\t') q++;
            fl[nf] = (size_t)(q - f[nf]);
            nf++;
        }
        if (nf == 0) { p = next; continue; } /* blank line */
        if (nf != 2) {
            st = cl_errf(e, CL_ERR_DATA, "%s: line %zu: \"%.80s\": expected two symbols \"a b\"",
                         path, lineno, p);
            goto done;
        }
        if (t->n_merges >= (size_t)INT32_MAX) {
            st = cl_errf(e, CL_ERR_DATA, "%s: too many merges", path);
            goto done;
        }
        int32_t a = vocab_find(t, f[0], fl[0]), b = vocab_find(t, f[1], fl[1]);
        memcpy(cat, f[0], fl[0]);
        memcpy(cat + fl[0], f[1], fl[1]);
        int32_t c = vocab_find(t, cat, fl[0] + fl[1]);
        if (a < 0 || b < 0 || c < 0) {
            const char *what = a < 0 ? f[0] : b < 0 ? f[1] : cat;
            size_t wl = a < 0 ? fl[0] : b < 0 ? fl[1] : fl[0] + fl[1];
            st = cl_errf(e, CL_ERR_DATA, "%s: line %zu: %s \"%.*s\" is not a token of the vocabulary",
                         path, lineno, c >= 0 || a < 0 || b < 0 ? "symbol" : "merged symbol",
                         (int)(wl > 80 ? 80 : wl), what);
            goto done;
        }
        uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
        size_t mask = t->merge_cap - 1, i = hash_u64(key) & mask;
        while (t->merges[i].key != EMPTY_KEY && t->merges[i].key != key) i = (i + 1) & mask;
        if (t->merges[i].key == key) {
            st = cl_errf(e, CL_ERR_DATA, "%s: line %zu: merge \"%s %s\" repeats rank %d", path,
                         lineno, tok_str(t, a), tok_str(t, b), t->merges[i].rank);
            goto done;
        }
        int32_t rank = (int32_t)t->n_merges++;
        t->merges[i] = (struct merge_slot){key, rank, c};
        if (rank > max_prod[c]) max_prod[c] = rank;
        if (rank < min_use[a]) min_use[a] = rank;
        if (rank < min_use[b]) min_use[b] = rank;
        p = next;
    }
    t->ordered = 1;
    for (size_t i = 0; i < t->n_vocab; i++)
        if (max_prod[i] >= 0 && min_use[i] <= max_prod[i]) t->ordered = 0;
done:
    free(max_prod);
    free(min_use);
    free(cat);
    free(text);
    return st;
}

enum cl_status cl_tokenizer_load(struct cl_tokenizer **out, const char *vocab_json_path,
                                 const char *merges_txt_path, struct cl_err *e)
{
    *out = NULL;
    struct cl_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return cl_errf(e, CL_ERR_NOMEM, "tokenizer: out of memory");
    enum cl_status st = load_vocab(t, vocab_json_path, e);
    if (!st) st = load_merges(t, merges_txt_path, e);
    if (st) {
        cl_tokenizer_free(t);
        return st;
    }
    *out = t;
    return CL_OK;
}

void cl_tokenizer_free(struct cl_tokenizer *t)
{
    if (!t) return;
    free(t->strings);
    free(t->tok_off);
    free(t->tok_len);
    free(t->vocab_slots);
    free(t->merges);
    free(t);
}

int32_t cl_tokenizer_sot(const struct cl_tokenizer *t) { return t->sot; }
int32_t cl_tokenizer_eot(const struct cl_tokenizer *t) { return t->eot; }
size_t cl_tokenizer_vocab_size(const struct cl_tokenizer *t) { return t->n_vocab; }
size_t cl_tokenizer_merge_count(const struct cl_tokenizer *t) { return t->n_merges; }
int cl_tokenizer_merges_ordered(const struct cl_tokenizer *t) { return t->ordered; }
void cl_tokenizer_force_naive_bpe(struct cl_tokenizer *t, int on) { t->naive = on != 0; }

const char *cl_tokenizer_token(const struct cl_tokenizer *t, int32_t id)
{
    if (id < 0 || (size_t)id >= t->n_vocab) return NULL;
    return tok_str(t, id);
}

/* ------------------------------------------------------------------ Unicode facts */

/* Python's str.isspace() (Unicode 14): bidi class WS, B or S, or category Zs. */
int cl_tokenizer_cp_isspace(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

/* The regex module's \s: White_Space, i.e. isspace() less the separators U+1C..U+1F. */
static int regex_space(uint32_t c)
{
    return cl_tokenizer_cp_isspace(c) && !(c >= 0x1C && c <= 0x1F);
}

char cl_tokenizer_cp_class(uint32_t c)
{
    if (regex_space(c)) return 'S';
    /* U+0345 (Mn) case-folds to iota: under IGNORECASE the regex module matches it with
     * neither [\p{L}] nor [^\s\p{L}\p{N}], so no branch takes it and it separates
     * pieces like white space (checked against Python in the Unicode facts test) */
    if (c == 0x345) return 'X';
    if (c > 0x10FFFF) return 'P';
    switch (utf8proc_category((utf8proc_int32_t)c)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO:
        return 'L';
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
        return 'N';
    default:
        return 'P';
    }
}

int cl_tokenizer_cp_lower(uint32_t c, uint32_t out[2])
{
    if (c == 0x130) { /* SpecialCasing: the one unconditional multi-character lower case */
        out[0] = 0x69;
        out[1] = 0x307;
        return 2;
    }
    out[0] = c > 0x10FFFF ? c : (uint32_t)utf8proc_tolower((utf8proc_int32_t)c);
    return 1;
}

/* Word_Break MidLetter, MidNumLet and Single_Quote: the Case_Ignorable characters
 * that are not Mn, Me, Cf, Lm or Sk. */
static int word_break_mid(uint32_t c)
{
    static const uint32_t mid[] = {0x27, 0x2E, 0x3A, 0xB7, 0x387, 0x55F, 0x5F4, 0x2018, 0x2019,
                                   0x2024, 0x2027, 0xFE13, 0xFE52, 0xFE55, 0xFF07, 0xFF0E, 0xFF1A};
    for (size_t i = 0; i < sizeof mid / sizeof mid[0]; i++)
        if (mid[i] == c) return 1;
    return 0;
}

/* Case-ignorable or cased characters new in Unicode 15.0: utf8proc 2.8 knows them,
 * Python 3.11's str (Unicode 14) sees unassigned code points. */
static int new_in_unicode15(uint32_t c)
{
    static const uint32_t r[][2] = {
        {0x0ECE, 0x0ECE}, {0x10EFD, 0x10EFF}, {0x11241, 0x11241}, {0x11F00, 0x11F01},
        {0x11F36, 0x11F3A}, {0x11F40, 0x11F40}, {0x11F42, 0x11F42}, {0x13439, 0x13440},
        {0x13447, 0x13455}, {0x1DF25, 0x1DF2A}, {0x1E030, 0x1E06D}, {0x1E08F, 0x1E08F},
        {0x1E4EB, 0x1E4EF}};
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++)
        if (c >= r[i][0] && c <= r[i][1]) return 1;
    return 0;
}

char cl_tokenizer_cp_sigma(uint32_t c)
{
    if (c > 0x10FFFF || new_in_unicode15(c)) return '-';
    utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)c);
    if (cat == UTF8PROC_CATEGORY_MN || cat == UTF8PROC_CATEGORY_ME || cat == UTF8PROC_CATEGORY_CF ||
        cat == UTF8PROC_CATEGORY_LM || cat == UTF8PROC_CATEGORY_SK || word_break_mid(c))
        return 'I';
    if (cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT)
        return 'C';
    /* Other_Lowercase / Other_Uppercase outside those categories: most have a case
     * mapping (circled letters, Roman numerals); the rest are listed */
    if (utf8proc_tolower((utf8proc_int32_t)c) != (utf8proc_int32_t)c ||
        utf8proc_toupper((utf8proc_int32_t)c) != (utf8proc_int32_t)c)
        return 'C';
    if (c == 0xAA || c == 0xBA || (c >= 0x1F130 && c <= 0x1F149) || (c >= 0x1F150 && c <= 0x1F169) ||
        (c >= 0x1F170 && c <= 0x1F189))
        return 'C';
    return '-';
}

/* Python's final-sigma rule for U+03A3 at s[i]: a cased letter before it (skipping
 * case-ignorables) and none after it. */
static int final_sigma(const uint32_t *s, size_t n, size_t i)
{
    size_t j = i;
    char k = '-';
    while (j > 0 && (k = cl_tokenizer_cp_sigma(s[--j])) == 'I') {}
    if (j == i || k != 'C') return 0;
    for (j = i + 1; j < n; j++) {
        k = cl_tokenizer_cp_sigma(s[j]);
        if (k != 'I') return k != 'C';
    }
    return 1;
}

/* ------------------------------------------------------------------ text cleaning */

/* Strict UTF-8 decoding, as Python's bytes.decode("utf-8"); returns the number of
 * code points, or sets *bad to the offset of the first invalid sequence. */
static size_t utf8_decode(const unsigned char *s, size_t len, uint32_t *out, size_t *bad)
{
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        unsigned c = s[i];
        uint32_t cp;
        size_t k;
        unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
        if (c < 0x80) { out[n++] = c; i++; continue; }
        else if (c >= 0xC2 && c <= 0xDF) { k = 1; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) {
            k = 2; cp = c & 0x0F;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F; /* no surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3; cp = c & 0x07;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F; /* <= U+10FFFF */
        } else { *bad = i; return SIZE_MAX; }
        for (size_t j = 1; j <= k; j++) {
            unsigned d = i + j < len ? s[i + j] : 0;
            if (i + j >= len || d < (j == 1 ? lo : 0x80) || d > (j == 1 ? hi : 0xBF)) {
                *bad = i;
                return SIZE_MAX;
            }
            cp = cp << 6 | (d & 0x3F);
        }
        out[n++] = cp;
        i += k + 1;
    }
    return n;
}

static size_t utf8_encode(uint32_t c, unsigned char *o)
{
    if (c < 0x80) { o[0] = (unsigned char)c; return 1; }
    if (c < 0x800) { o[0] = (unsigned char)(0xC0 | c >> 6); o[1] = (unsigned char)(0x80 | (c & 0x3F)); return 2; }
    if (c < 0x10000) {
        o[0] = (unsigned char)(0xE0 | c >> 12); o[1] = (unsigned char)(0x80 | (c >> 6 & 0x3F));
        o[2] = (unsigned char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | c >> 18); o[1] = (unsigned char)(0x80 | (c >> 12 & 0x3F));
    o[2] = (unsigned char)(0x80 | (c >> 6 & 0x3F)); o[3] = (unsigned char)(0x80 | (c & 0x3F));
    return 4;
}

static const struct cl_html_entity *entity_find(const char *name)
{
    size_t lo = 0, hi = sizeof cl_html_entities / sizeof cl_html_entities[0];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, cl_html_entities[mid].name);
        if (c == 0) return &cl_html_entities[mid];
        if (c < 0) hi = mid; else lo = mid + 1;
    }
    return NULL;
}

/* html._invalid_charrefs: numeric references remapped (0x80-0x9F as Windows-1252) */
static int charref_remap(uint32_t num, uint32_t *out)
{
    static const uint16_t cp1252[32] = {
        0x20AC, 0x81, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
        0x2039, 0x0152, 0x8D, 0x017D, 0x8F, 0x90, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013,
        0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D, 0x017E, 0x0178};
    if (num == 0) { *out = 0xFFFD; return 1; }
    if (num == 0x0D) { *out = 0x0D; return 1; }
    if (num >= 0x80 && num <= 0x9F) { *out = cp1252[num - 0x80]; return 1; }
    return 0;
}

/* html._invalid_codepoints: numeric references that expand to nothing */
static int charref_dropped(uint32_t c)
{
    return (c >= 0x1 && c <= 0x8) || c == 0xB || (c >= 0xE && c <= 0x1F) || (c >= 0x7F && c <= 0x9F) ||
           (c >= 0xFDD0 && c <= 0xFDEF) || (c & 0xFFFE) == 0xFFFE;
}

static int is_digit(uint32_t c, int hex)
{
    return (c >= '0' && c <= '9') || (hex && ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')));
}

/* characters allowed in a reference's name: Python's [^\t\n\f <&#;] */
static int is_name_char(uint32_t c)
{
    return c != '\t' && c != '\n' && c != '\f' && c != ' ' && c != '<' && c != '&' && c != '#' && c != ';';
}

/* Python's html.unescape on s[0..n), in place (the result is never longer). */
static size_t html_unescape(uint32_t *s, size_t n)
{
    size_t w = 0, r = 0;
    while (r < n) {
        if (s[r] != '&' || r + 1 >= n) { s[w++] = s[r++]; continue; }
        size_t p = r + 1;
        if (s[p] == '#') {
            int hex = p + 1 < n && (s[p + 1] == 'x' || s[p + 1] == 'X');
            size_t d = p + 1 + (size_t)hex;
            if (d >= n || !is_digit(s[d], hex)) { s[w++] = s[r++]; continue; } /* not a reference */
            uint32_t num = 0; /* saturates above 0x10FFFF */
            for (; d < n && is_digit(s[d], hex); d++) {
                uint32_t v = s[d] <= '9' ? s[d] - '0' : (s[d] | 0x20) - 'a' + 10;
                num = num > 0x10FFFF ? num : num * (hex ? 16 : 10) + v;
            }
            if (d < n && s[d] == ';') d++;
            uint32_t cp;
            r = d;
            if (charref_remap(num, &cp)) s[w++] = cp;
            else if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) s[w++] = 0xFFFD;
            else if (!charref_dropped(num)) s[w++] = num;
            continue;
        }
        /* named: up to 32 name characters and an optional ';' */
        size_t q = p;
        while (q < n && q - p < 32 && is_name_char(s[q])) q++;
        if (q == p) { s[w++] = s[r++]; continue; }
        size_t end = q < n && s[q] == ';' ? q + 1 : q; /* the match is s[p..end) */
        size_t slen = end - p, ascii = 0;
        char name[34];
        while (ascii < slen && s[p + ascii] < 0x80) { name[ascii] = (char)s[p + ascii]; ascii++; }
        const struct cl_html_entity *ent = NULL;
        size_t keep = 0; /* characters of the name the entity stands for */
        if (ascii == slen) {
            name[slen] = '\0';
            if ((ent = entity_find(name))) keep = slen;
        }
        /* else the longest prefix of at least 2 characters that is a name */
        for (size_t x = slen - 1; !ent && x >= 2; x--) {
            if (x > ascii) continue;
            name[x] = '\0';
            if ((ent = entity_find(name))) keep = x;
        }
        if (!ent) { /* not a reference: '&' and the name stay */
            while (r < end) s[w++] = s[r++];
            continue;
        }
        s[w++] = ent->cp[0];
        if (ent->cp[1]) s[w++] = ent->cp[1];
        for (r = p + keep; r < end;) s[w++] = s[r++];
    }
    return w;
}

/* Collapse runs of regex \s to one space and strip Python's isspace() at both ends;
 * in place, returns the new length.  (basic_clean's strip() is included: stripping
 * before the collapse removes nothing the strip after it would not.) */
static size_t clean_whitespace(uint32_t *s, size_t n)
{
    size_t a = 0, b = n;
    while (a < b && cl_tokenizer_cp_isspace(s[a])) a++;
    while (b > a && cl_tokenizer_cp_isspace(s[b - 1])) b--;
    size_t w = 0;
    for (size_t r = a; r < b;) {
        if (regex_space(s[r])) {
            while (r < b && regex_space(s[r])) r++;
            s[w++] = ' ';
        } else {
            s[w++] = s[r++];
        }
    }
    a = 0;
    while (a < w && cl_tokenizer_cp_isspace(s[a])) a++;
    while (w > a && cl_tokenizer_cp_isspace(s[w - 1])) w--;
    memmove(s, s + a, (w - a) * sizeof *s);
    return w - a;
}

/* str.lower() of s[0..n) into out (room for n + the number of U+0130); returns the
 * new length. */
static size_t lower_text(const uint32_t *s, size_t n, uint32_t *out)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == 0x3A3) { out[w++] = final_sigma(s, n, i) ? 0x3C2 : 0x3C3; continue; }
        w += (size_t)cl_tokenizer_cp_lower(s[i], out + w);
    }
    return w;
}

/* ------------------------------------------------------------------ BPE */

/* Scratch for one piece of up to cap byte symbols. */
struct bpe_work {
    size_t cap;
    int32_t *sym;   /* (cap) symbol ids */
    int32_t *next;  /* (cap) linked list over sym, -1 = end */
    int32_t *prev;  /* (cap) */
    uint64_t *heap; /* (3 cap) rank << 32 | position, min-heap */
};

static int bpe_work_reserve(struct bpe_work *w, size_t n)
{
    if (n <= w->cap) return 0;
    size_t cap = w->cap ? w->cap : 64;
    while (cap < n) cap *= 2;
    if (cap > (size_t)INT32_MAX || cap > SIZE_MAX / (3 * sizeof(uint64_t))) return -1;
    free(w->sym); free(w->next); free(w->prev); free(w->heap);
    w->sym = malloc(cap * sizeof *w->sym);
    w->next = malloc(cap * sizeof *w->next);
    w->prev = malloc(cap * sizeof *w->prev);
    w->heap = malloc(3 * cap * sizeof *w->heap);
    w->cap = (w->sym && w->next && w->prev && w->heap) ? cap : 0;
    return w->cap ? 0 : -1;
}

static void bpe_work_free(struct bpe_work *w)
{
    free(w->sym); free(w->next); free(w->prev); free(w->heap);
}

/* The reference's bpe(): find the lowest-ranked adjacent pair, merge each of its
 * occurrences left to right, repeat.  Quadratic; returns the symbol count. */
static size_t bpe_naive(const struct cl_tokenizer *t, int32_t *sym, size_t n)
{
    while (n > 1) {
        const struct merge_slot *best = NULL;
        for (size_t i = 0; i + 1 < n; i++) {
            const struct merge_slot *m = merge_find(t, sym[i], sym[i + 1]);
            if (m && (!best || m->rank < best->rank)) best = m;
        }
        if (!best) break;
        int32_t a = (int32_t)(best->key >> 32), b = (int32_t)(uint32_t)best->key;
        size_t w = 0;
        for (size_t i = 0; i < n;) {
            if (i + 1 < n && sym[i] == a && sym[i + 1] == b) { sym[w++] = best->merged; i += 2; }
            else sym[w++] = sym[i++];
        }
        n = w;
    }
    return n;
}

static void heap_push(uint64_t *h, size_t *n, uint64_t v)
{
    size_t i = (*n)++;
    while (i > 0 && h[(i - 1) / 2] > v) { h[i] = h[(i - 1) / 2]; i = (i - 1) / 2; }
    h[i] = v;
}

static uint64_t heap_pop(uint64_t *h, size_t *n)
{
    uint64_t top = h[0], v = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && h[c + 1] < h[c]) c++;
        if (h[c] >= v) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = v;
    return top;
}

/* Same result as bpe_naive when the merges are ordered: every pair a merge creates
 * ranks after it, so popping (rank, position) from a heap visits the best pair's
 * occurrences left to right before any later rank, exactly as the reference's
 * rounds do.  O(n log n).  Uses w->next/prev/heap; returns the symbol count. */
static size_t bpe_heap(const struct cl_tokenizer *t, int32_t *sym, size_t n, struct bpe_work *w)
{
    int32_t *next = w->next, *prev = w->prev;
    uint64_t *heap = w->heap;
    size_t nh = 0;
    for (size_t i = 0; i < n; i++) {
        next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
        prev[i] = (int32_t)i - 1;
    }
    for (size_t i = 0; i + 1 < n; i++) {
        const struct merge_slot *m = merge_find(t, sym[i], sym[i + 1]);
        if (m) heap_push(heap, &nh, (uint64_t)m->rank << 32 | i);
    }
    while (nh > 0) {
        uint64_t top = heap_pop(heap, &nh);
        int32_t rank = (int32_t)(top >> 32), i = (int32_t)(uint32_t)top;
        int32_t j = next[i];
        if (sym[i] < 0 || j < 0) continue; /* merged away, or now last */
        const struct merge_slot *m = merge_find(t, sym[i], sym[j]);
        if (!m || m->rank != rank) continue; /* the pair at i changed since the push */
        sym[i] = m->merged;
        sym[j] = -1;
        next[i] = next[j];
        if (next[j] >= 0) prev[next[j]] = i;
        if (prev[i] >= 0 && (m = merge_find(t, sym[prev[i]], sym[i])))
            heap_push(heap, &nh, (uint64_t)m->rank << 32 | (uint32_t)prev[i]);
        if (next[i] >= 0 && (m = merge_find(t, sym[i], sym[next[i]])))
            heap_push(heap, &nh, (uint64_t)m->rank << 32 | (uint32_t)i);
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (sym[i] >= 0) sym[k++] = sym[i];
    return k;
}

/* ------------------------------------------------------------------ tokenize */

static int piece_is(const uint32_t *s, size_t n, const char *lit)
{
    size_t i = 0;
    for (; i < n && lit[i]; i++)
        if (s[i] != (unsigned char)lit[i]) return 0;
    return i == n && !lit[i];
}

/* Does s[0..n) start with the ASCII literal under the regex module's IGNORECASE?
 * (Its simple case folding adds U+017F LONG S to 's'; no other character folds
 * onto the letters of the pattern's literals.) */
static size_t match_literal(const uint32_t *s, size_t n, const char *lit)
{
    size_t i = 0;
    for (; lit[i]; i++) {
        if (i >= n) return 0;
        uint32_t c = s[i], l = (unsigned char)lit[i];
        int ok = c == l || (l >= 'a' && l <= 'z' && c == l - 32) || (l == 's' && c == 0x17F);
        if (!ok) return 0;
    }
    return i;
}

/* Length of the regex match at s[0..n) (>= 1), or 0 if no branch matches at s[0]. */
static size_t next_piece(const uint32_t *s, size_t n)
{
    static const char *const lits[] = {SOT_TEXT, EOT_TEXT, "'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    size_t k;
    if (s[0] == '<' || s[0] == '\'')
        for (size_t i = 0; i < sizeof lits / sizeof lits[0]; i++)
            if ((k = match_literal(s, n, lits[i]))) return k;
    char cls = cl_tokenizer_cp_class(s[0]);
    if (cls == 'N') return 1;
    if (cls != 'L' && cls != 'P') return 0;
    for (k = 1; k < n && cl_tokenizer_cp_class(s[k]) == cls; k++) {}
    return k;
}

enum cl_status cl_tokenize(const struct cl_tokenizer *t, const char *text, size_t len,
                           int32_t *ids, int context, int *n_out, struct cl_err *e)
{
    if (n_out) *n_out = 0;
    if (context < 1) return cl_errf(e, CL_ERR_USAGE, "tokenize: context length %d; expected >= 1", context);
    if (len > CL_TOKENIZER_MAX_TEXT)
        return cl_errf(e, CL_ERR_DATA, "tokenize: text of %zu bytes; the limit is %zu MiB", len,
                       CL_TOKENIZER_MAX_TEXT >> 20);
    uint32_t *raw = malloc((len + 1) * sizeof *raw); /* (len) code points, at most one per byte */
    if (!raw) return cl_errf(e, CL_ERR_NOMEM, "tokenize: out of memory for %zu bytes", len);
    size_t bad = 0, n = utf8_decode((const unsigned char *)text, len, raw, &bad);
    if (n == SIZE_MAX) {
        free(raw);
        return cl_errf(e, CL_ERR_DATA, "tokenize: invalid UTF-8 at byte offset %zu (byte 0x%02x)", bad,
                       (unsigned char)text[bad]);
    }
    n = html_unescape(raw, n);
    n = html_unescape(raw, n);
    n = clean_whitespace(raw, n);
    size_t grow = 0; /* lower case lengthens each U+0130 by one */
    for (size_t i = 0; i < n; i++) grow += raw[i] == 0x130;
    uint32_t *low = malloc((n + grow + 1) * sizeof *low); /* (n + grow) lowered code points */
    if (!low) {
        free(raw);
        return cl_errf(e, CL_ERR_NOMEM, "tokenize: out of memory for %zu bytes", len);
    }
    n = lower_text(raw, n, low);
    free(raw);

    /* content ids go to ids[1..context-1]; filling them all means truncation */
    int cap = context - 1, count = 0;
    struct bpe_work w = {0};
    enum cl_status st = CL_OK;
    unsigned char bytes[4];
    for (size_t i = 0; i < n && count < cap;) {
        size_t k = next_piece(low + i, n - i);
        if (k == 0) { i++; continue; }
        const uint32_t *p = low + i;
        i += k;
        if (piece_is(p, k, SOT_TEXT) || piece_is(p, k, EOT_TEXT)) {
            ids[1 + count++] = piece_is(p, k, SOT_TEXT) ? t->sot : t->eot;
            continue;
        }
        size_t nb = 0;
        for (size_t j = 0; j < k; j++) nb += utf8_encode(p[j], bytes);
        if (bpe_work_reserve(&w, nb)) { st = cl_errf(e, CL_ERR_NOMEM, "tokenize: out of memory"); break; }
        size_t m = 0;
        for (size_t j = 0; j < k; j++) {
            size_t bl = utf8_encode(p[j], bytes);
            for (size_t b = 0; b < bl; b++) w.sym[m++] = t->byte_sym[bytes[b]];
            if (j == k - 1) w.sym[m - 1] = t->byte_end_sym[bytes[bl - 1]];
        }
        m = (t->ordered && !t->naive) ? bpe_heap(t, w.sym, m, &w) : bpe_naive(t, w.sym, m);
        for (size_t j = 0; j < m && count < cap; j++) ids[1 + count++] = w.sym[j];
    }
    bpe_work_free(&w);
    free(low);
    if (st) return st;

    ids[0] = t->sot;
    int total = count + 2;
    if (count >= cap) { /* too long (or context 1): cut, the last id is the end token */
        total = context;
        ids[context - 1] = t->eot;
    } else {
        ids[count + 1] = t->eot;
        for (int j = count + 2; j < context; j++) ids[j] = 0;
    }
    if (n_out) *n_out = total;
    return CL_OK;
}
