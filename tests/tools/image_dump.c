/* image_dump.c — test helper for tests/image_equivalence.py: decodes images with data/image.h
 * and resamples them with data/clip_preprocess.h, dumping every intermediate for comparison
 * with Pillow + torchvision.
 *
 *   image_dump LIST OUT      LIST: one "SIZE PATH" per line
 *
 * OUT gets, per line of LIST, little-endian int32s and bytes:
 *   ok:     0, w, h, w*h*3 decoded RGB bytes,
 *           rw, rh, rw*rh*3 bytes of the whole image resized to Resize(SIZE)'s size,
 *           SIZE*SIZE*3 bytes of Resize(SIZE) + CenterCrop(SIZE) (clipp_resize_crop)
 *   failed: 1, n, the n bytes of the one-line error message
 * Exit status 0, or 2 on a usage or I/O problem of the tool itself. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/clip_preprocess.h"
#include "data/image.h"

static void put_i32(FILE *f, int32_t v) { fwrite(&v, 4, 1, f); }

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: image_dump LIST OUT\n");
        return 2;
    }
    FILE *in = fopen(argv[1], "r"), *out = fopen(argv[2], "wb");
    if (!in || !out) {
        fprintf(stderr, "image_dump: cannot open %s or %s\n", argv[1], argv[2]);
        return 2;
    }
    char line[4096];
    while (fgets(line, sizeof line, in)) {
        line[strcspn(line, "\n")] = 0;
        char *sp = strchr(line, ' ');
        if (!sp) continue;
        *sp = 0;
        int size = atoi(line);
        const char *path = sp + 1;
        img_rgb im = {0};
        tt_err e = {0};
        clipp_geom g = {0};
        uint8_t *full = NULL, *crop = NULL;
        if (img_read_file(path, IMG_MAX_PIXELS, &im, &e) == 0 && clipp_geometry(im.width, im.height, size, &g, &e) == 0) {
            full = malloc((size_t)g.resized_w * g.resized_h * 3);
            crop = malloc((size_t)size * size * 3);
            if (!full || !crop ||
                clipp_resize_window(im.rgb, im.width, im.height, g.resized_w, g.resized_h, 0, 0, g.resized_w,
                                    g.resized_h, full, &e) ||
                clipp_resize_crop(&im, size, crop, &e)) {
                fprintf(stderr, "image_dump: %s: %s\n", path, e.msg);
                return 2;
            }
            put_i32(out, 0);
            put_i32(out, im.width);
            put_i32(out, im.height);
            fwrite(im.rgb, 1, (size_t)im.width * im.height * 3, out);
            put_i32(out, g.resized_w);
            put_i32(out, g.resized_h);
            fwrite(full, 1, (size_t)g.resized_w * g.resized_h * 3, out);
            fwrite(crop, 1, (size_t)size * size * 3, out);
        } else {
            put_i32(out, 1);
            put_i32(out, (int32_t)strlen(e.msg));
            fwrite(e.msg, 1, strlen(e.msg), out);
        }
        free(full);
        free(crop);
        img_rgb_free(&im);
    }
    fclose(in);
    if (fclose(out) != 0) return 2;
    return 0;
}
