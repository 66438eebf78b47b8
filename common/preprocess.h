/* preprocess.h - CLIP image preprocessing with Pillow/torchvision parity.
 *
 * The pipeline is torchvision's Compose([Resize(size, BICUBIC), CenterCrop(size),
 * ToTensor(), Normalize(mean, std)]) applied to Image.open(f).convert("RGB")
 * (the decode in formats/image.h), with Pillow 9.4 as the resampler:
 *
 *   1. Resize: the shorter side becomes size, the longer one int(size * long / short)
 *      (truncated, as torchvision's _compute_resized_output_size).
 *   2. Pillow's Image.resize(..., BICUBIC) (ImagingResample): separable, horizontal pass
 *      first (only over the rows the vertical pass reads), then vertical; cubic kernel
 *      a = -0.5 with support 2 widened by the scale factor when shrinking; each output
 *      pixel's taps computed in double and normalised to sum 1, then rounded to
 *      fixed point with 22 fraction bits; the 8-bit intermediate rounded and clamped
 *      after each pass.  A pass whose length is unchanged is skipped (it is an identity).
 *   3. CenterCrop: top = round((h - size) / 2), left = round((w - size) / 2), Python's
 *      round (half to even).  Only the cropped window is resampled; every pixel is the
 *      one the full resize would give.
 *   4. ToTensor + Normalize in float32: ((float)v / 255 - mean[c]) / std[c], CHW.
 *
 * Buffers: an RGB image is [h, w, 3] uint8 rows top first; the model input is
 * [3, size, size] float32.
 */
#ifndef CL_PREPROCESS_H
#define CL_PREPROCESS_H

#include <stdint.h>

#include "image.h"
#include "status.h"

/* torchvision Resize(size) output dimensions for a w x h image. */
void cl_resize_dims(int w, int h, int size, int *out_w, int *out_h);

/* torchvision CenterCrop offsets of a crop_w x crop_h window in a w x h image. */
void cl_center_crop_offsets(int w, int h, int crop_w, int crop_h, int *left, int *top);

/* Pillow's Image.resize((out_w, out_h), BICUBIC) of an RGB image:
 * src [h, w, 3] -> dst [out_h, out_w, 3]. */
enum cl_status cl_resize_bicubic_u8(const uint8_t *src, int w, int h, uint8_t *dst,
                                    int out_w, int out_h, struct cl_err *e);

/* torchvision CenterCrop: src [h, w, 3] -> dst [crop_h, crop_w, 3]; the crop must fit. */
enum cl_status cl_center_crop(const uint8_t *src, int w, int h, uint8_t *dst, int crop_w,
                              int crop_h, struct cl_err *e);

/* Resize (shorter side to size) and center crop: img -> out [size, size, 3] uint8. */
enum cl_status cl_resize_crop_u8(const struct cl_image *img, int size, uint8_t *out,
                                 struct cl_err *e);

/* The whole pipeline: img -> out [3, size, size] float32, normalised with mean/std. */
enum cl_status cl_preprocess(const struct cl_image *img, int size, const float mean[3],
                             const float std[3], float *out, struct cl_err *e);

#endif
