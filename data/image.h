/* image.h — JPEG (libjpeg-turbo) and PNG (libpng) files decoded to 8-bit RGB exactly as
 * Pillow's `Image.open(f).convert("RGB")` gives them (Pillow 9.4, the Debian 12 version; the
 * proof is tests/image_equivalence.py).
 *
 * The format is detected from the first bytes (FF D8 FF: JPEG, the PNG signature: PNG), never
 * from the file name. What each stored mode becomes, as Pillow converts it:
 *   JPEG  grey -> R=G=B; YCbCr/RGB -> libjpeg's RGB (islow IDCT, fancy upsampling: its
 *         defaults, which Pillow keeps); CMYK/YCCK -> libjpeg's CMYK, inverted (Pillow assumes
 *         Adobe conventions), then Pillow's cmyk2rgb: nk = 255-k, r = nk - nk*c/255 (its
 *         rounding MULDIV255). EXIF orientation is not applied (Pillow does not either).
 *   PNG   grey 1/2/4/8 bit -> scaled to 0..255 (x255, x85, x17, x1), R=G=B;
 *         grey 16 bit -> Pillow's mode "I" whose RGB conversion CLIPS: min(v, 255);
 *         grey+alpha, RGBA -> alpha dropped (not composited); 16-bit samples of RGB, RGBA and
 *         grey+alpha -> their high byte; palette -> the PLTE colour (entries past the PLTE
 *         are Pillow's grey ramp i,i,i); tRNS, gAMA, sRGB and iCCP are ignored; Adam7 ok.
 *
 * Errors are one line naming the file: "a/b.jpg: truncated JPEG (Premature end of JPEG file)",
 * "a/b.png: corrupt PNG: IDAT: CRC error", "x.gif: not a JPEG or PNG file". A truncated file
 * is always an error (Pillow raises on one by default); libjpeg's other warnings (extraneous
 * bytes before a marker, ...) are ignored, as Pillow ignores them. A JPEG whose rows are all
 * decoded but whose EOI marker is missing is accepted, as Pillow accepts it. libpng checks
 * every chunk's CRC, so an image data chunk with a bad CRC is an error here (Pillow skips
 * those CRCs). Images above max_pixels are refused before any pixel memory is allocated
 * (IMG_MAX_PIXELS is Pillow's DecompressionBombError limit).
 *
 *   img_rgb im = {0};
 *   tt_err e = {0};
 *   if (img_read_file("cat.jpg", IMG_MAX_PIXELS, &im, &e)) { fprintf(stderr, "%s\n", e.msg); ... }
 *   uint8_t r = im.rgb[(y * im.width + x) * 3 + 0];
 *   img_rgb_free(&im);
 *
 * Ownership: an img_rgb owns rgb (malloc'd); img_rgb_free releases it and zeroes the struct.
 * On failure the img_rgb is left zeroed. The decoders keep no global state (thread-safe).
 */
#ifndef TT_IMAGE_H
#define TT_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* Pillow's Image.MAX_IMAGE_PIXELS * 2, above which Image.open raises DecompressionBombError. */
#define IMG_MAX_PIXELS 178956970L
/* Largest image file read whole into memory. */
#define IMG_MAX_FILE_BYTES (1L << 30)

typedef struct img_rgb {
    int width, height;
    uint8_t *rgb; /* [height, width, 3] */
} img_rgb;

/* Decode n bytes of a JPEG or PNG file; `name` is used in messages only. */
int img_decode(const uint8_t *buf, size_t n, const char *name, long max_pixels, img_rgb *out, tt_err *err);

/* Read and decode the file at path. TT_EIO when it cannot be read, TT_EINPUT when it is not a
 * valid JPEG/PNG, TT_ENOMEM. */
int img_read_file(const char *path, long max_pixels, img_rgb *out, tt_err *err);

void img_rgb_free(img_rgb *im);

#endif
