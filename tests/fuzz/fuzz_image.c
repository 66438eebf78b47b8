/* fuzz_image.c - libFuzzer target: PNG/JPEG decoding and preprocessing of arbitrary bytes. */
#include <stddef.h>
#include <stdint.h>

#include "image.h"
#include "preprocess.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cl_image img = {0};
    struct cl_err e;
    if (cl_image_decode(&img, data, size, "fuzz", &e) == CL_OK) {
        static float out[3 * 16 * 16];
        const float mean[3] = {0.5f, 0.5f, 0.5f}, std[3] = {0.5f, 0.5f, 0.5f};
        if ((size_t)img.w * img.h <= 1 << 20) /* keep each run fast */
            cl_preprocess(&img, 16, mean, std, out, &e);
    }
    cl_image_free(&img);
    return 0;
}
