/* fuzz_tokenizer.c - libFuzzer target: tokenizing arbitrary bytes with the tiny test vocabulary. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct cl_tokenizer *tok;
    struct cl_err e;
    if (!tok && cl_tokenizer_load(&tok, "tests/fixtures/tokenizer/tiny/vocab.json",
                                  "tests/fixtures/tokenizer/tiny/merges.txt", &e) != CL_OK)
        abort(); /* run from the repository root */
    int32_t ids[77];
    int n;
    cl_tokenize(tok, (const char *)data, size, ids, 77, &n, &e);
    return 0;
}
