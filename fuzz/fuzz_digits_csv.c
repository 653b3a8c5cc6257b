/* fuzz_digits_csv.c — libFuzzer target for the sklearn digits CSV reader (data/digits_csv.c
 * with idx_slurp from data/idx.c for the raw/gzip layer).
 *
 * Each input is written to a private temporary file and read with digits_read at the
 * native 8x8 size and resampled to 28x28. Success or a clean -1 are both fine; crashes and
 * sanitizer reports are bugs.
 *
 * libFuzzer build and timed runs: fuzz/CMakeLists.txt, fuzz/README.md.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/digits_csv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char g_path[256];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_path[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(g_path, sizeof g_path, "%s/fuzz_digits_csv.%ld.csv", tmp ? tmp : "/tmp",
                 (long)getpid());
    }
    FILE *f = fopen(g_path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    if (fclose(f) != 0) abort();

    static const int sizes[2] = {8, 28};
    int n8 = -1;
    for (int k = 0; k < 2; k++) {
        tt_err e = {0};
        ds_images im = {0};
        if (digits_read(g_path, sizes[k], &im, &e) == 0) {
            if (im.n < 1 || im.height != sizes[k]) abort();
            for (int i = 0; i < im.n; i++)
                if (im.labels[i] < 0 || im.labels[i] > 9) abort();
            if (k == 0) n8 = im.n;
            else if (im.n != n8) abort();
        } else if (im.pixels || !e.msg[0]) {
            abort();
        }
        ds_images_free(&im);
    }
    return 0;
}
