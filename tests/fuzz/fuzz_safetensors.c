/* fuzz_safetensors.c - libFuzzer target: the safetensors reader on arbitrary files. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    if (!path[0])
        snprintf(path, sizeof path, "/tmp/cl_fuzz_st_%d.safetensors", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    struct cl_safetensors *st;
    struct cl_err e;
    if (cl_safetensors_open(&st, path, &e) == CL_OK) {
        for (int i = 0; i < st->n; i++) { /* read every tensor the header claims */
            const struct cl_st_tensor *t = &st->t[i];
            size_t n = t->numel;
            if (t->supported && n <= (1u << 22)) {
                float *buf = malloc(n * sizeof *buf + 1);
                if (buf) cl_safetensors_read_f32(t, buf);
                free(buf);
            }
        }
        cl_safetensors_close(st);
    }
    return 0;
}
