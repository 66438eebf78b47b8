/* fuzz_stream.c - libFuzzer target: the tensor stream reader on arbitrary bytes.
 * Must never crash, leak, or allocate beyond what the input's bytes justify. */
#include <stddef.h>
#include <stdint.h>

#include "stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cl_reader *r;
    struct cl_err e;
    if (cl_reader_open_mem(&r, data, size, "fuzz", &e) != CL_OK)
        return 0;
    struct cl_item it = {0};
    double sum = 0;
    while (cl_reader_next(r, &it, &e) == CL_OK) {
        for (int i = 0; i < it.nt; i++) /* touch every byte the reader claims is there */
            for (size_t k = 0; k < it.t[i].nbytes; k++)
                sum += ((const unsigned char *)it.t[i].data)[k];
    }
    (void)sum;
    cl_item_free(&it);
    cl_reader_close(r);
    return 0;
}
