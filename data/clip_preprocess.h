/* clip_preprocess.h — CLIP's evaluation transform, pixel for pixel as Pillow 9.4 +
 * torchvision compute it:
 *
 *   Resize(S, interpolation=BICUBIC) -> CenterCrop(S) -> convert("RGB") -> ToTensor -> Normalize
 *
 * on an image already converted to RGB (data/image.h; ImageFolder's loader converts first, and
 * for an RGB image CLIP's own `_convert_image_to_rgb` is then the identity).
 *
 *   Resize     torchvision: the shorter side becomes S, the longer int(S * long / short)
 *              (float division, truncated); w <= h counts as "w is the shorter side".
 *              Pillow's ImagingResample with the bicubic filter (a = -0.5, support 2, widened by
 *              the downscale factor so that downscaling antialiases), box (0, 0, w, h):
 *              per output index the taps [xmin, xmin+n) and weights are computed in double,
 *              normalised by their sum, converted to fixed point with 22 fraction bits
 *              (rounded half away from zero); a pass sums 2^21 + sum(pixel * k), shifts right
 *              22 and clips to 0..255. The horizontal pass runs first (only on the source rows
 *              the vertical pass reads) into a uint8 intermediate, then the vertical pass; a
 *              pass whose size does not change is skipped, as Pillow skips it.
 *   CenterCrop top = round((H - S) / 2), left likewise, Python's round (half to even).
 *   ToTensor   float32(v) / 255;  Normalize (x - mean) / std in float32 (CLIP's constants).
 *
 * Every output pixel of a separable resample depends only on its own row's and column's
 * taps, so only the S x S window the crop keeps is computed: bit-identical to resizing the
 * whole image and cropping, and less work for non-square images.
 *
 *   uint8_t px[224 * 224 * 3];                         // HWC RGB
 *   if (clipp_resize_crop(&im, 224, px, err)) ...;      // im from img_read_file
 *   float x[3 * 224 * 224];                             // CHW, as ToTensor + Normalize
 *   clipp_normalize(px, 224, x);
 *
 * Ownership: callers own every buffer; nothing here keeps state (thread-safe).
 */
#ifndef TT_CLIP_PREPROCESS_H
#define TT_CLIP_PREPROCESS_H

#include <stdint.h>

#include "core/err.h"
#include "data/image.h"

#define CLIPP_DEFAULT_SIZE 224
#define CLIPP_MAX_SIZE 4096

extern const float clipp_mean[3]; /* 0.48145466, 0.4578275, 0.40821073 */
extern const float clipp_std[3];  /* 0.26862954, 0.26130258, 0.27577711 */

typedef struct clipp_geom {
    int resized_w, resized_h; /* after Resize(S) */
    int left, top;            /* CenterCrop(S) offsets into the resized image */
} clipp_geom;

/* Resize(S) + CenterCrop(S) geometry of a w x h image. -1 (TT_EINPUT) when the resized long
 * side would exceed 2^30 (an absurd aspect ratio). */
int clipp_geometry(int w, int h, int size, clipp_geom *g, tt_err *err);

/* Pillow's bicubic resample of src (w x h RGB, HWC) to ow x oh, writing only the window of
 * cw x ch output pixels at (x0, y0) into dst (cw x ch RGB, HWC). The window must lie inside
 * ow x oh. -1 only on allocation failure (TT_ENOMEM). */
int clipp_resize_window(const uint8_t *src, int w, int h, int ow, int oh, int x0, int y0, int cw, int ch,
                        uint8_t *dst, tt_err *err);

/* Resize(S) + CenterCrop(S) of im into out (S x S RGB, HWC). */
int clipp_resize_crop(const img_rgb *im, int size, uint8_t *out, tt_err *err);

/* ToTensor + Normalize: hwc (S x S RGB uint8) -> chw (3 x S x S float32). */
void clipp_normalize(const uint8_t *hwc, int size, float *chw);

#endif
