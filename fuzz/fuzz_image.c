/* fuzz_image.c — libFuzzer target for the JPEG (libjpeg-turbo) and PNG (libpng) decoders
 * (data/image.c) and the CLIP resample of what they decode (data/clip_preprocess.c).
 *
 * Each input is decoded from memory with a limit of 2^20 pixels (keeps every run fast and
 * small; the limit itself is part of what is checked). A failure must leave the image zeroed
 * with one line that starts with the name; a success must give a sane size, and must then
 * resize + crop (to 7 and to 32 pixels: up- and downscaling) and normalise without trouble.
 * Crashes, leaks, sanitizer reports and a libjpeg/libpng exit() are bugs.
 *
 * libFuzzer build and timed runs: fuzz/CMakeLists.txt, fuzz/README.md.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data/clip_preprocess.h"
#include "data/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_PIXELS (1L << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    img_rgb im;
    memset(&im, 0x5a, sizeof im); /* img_decode must initialise it */
    tt_err e = {0};
    if (img_decode(data, size, "fuzz.img", FUZZ_MAX_PIXELS, &im, &e) != 0) {
        if (im.rgb || im.width || im.height || strncmp(e.msg, "fuzz.img: ", 10) || strchr(e.msg, '\n')) abort();
        return 0;
    }
    if (im.width < 1 || im.height < 1 || (long)im.width * im.height > FUZZ_MAX_PIXELS || !im.rgb) abort();
    volatile uint8_t sink = im.rgb[(size_t)im.width * im.height * 3 - 1];
    (void)sink;
    static uint8_t px[32 * 32 * 3];
    static float x[3 * 32 * 32];
    const int sizes[2] = {7, 32};
    for (int i = 0; i < 2; i++) {
        if (clipp_resize_crop(&im, sizes[i], px, &e) != 0) {
            /* only an absurd aspect ratio may refuse: 2^30 pixels on the long side */
            long lo = im.width < im.height ? im.width : im.height, hi = im.width + im.height - lo;
            if ((double)sizes[i] * hi / lo <= (double)(1 << 30)) abort();
            continue;
        }
        clipp_normalize(px, sizes[i], x);
        for (int j = 0; j < 3 * sizes[i] * sizes[i]; j++)
            if (!(x[j] >= -2.0f && x[j] <= 2.2f)) abort(); /* (0 - mean)/std .. (1 - mean)/std */
    }
    img_rgb_free(&im);
    return 0;
}
