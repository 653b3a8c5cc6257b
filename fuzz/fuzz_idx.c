/* fuzz_idx.c — libFuzzer target for the IDX readers (data/idx.c).
 *
 * Each input is written to a private temporary file and read with idx_read_images,
 * idx_read_labels and idx_read_u8 (raw or gzip: inputs starting 1f 8b take the zlib path).
 * Success or a clean -1 are both fine; crashes, leaks and sanitizer reports are bugs.
 *
 * libFuzzer build and timed runs: fuzz/CMakeLists.txt, fuzz/README.md.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/idx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char g_path[256];

static void write_input(const uint8_t *data, size_t size) {
    if (!g_path[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(g_path, sizeof g_path, "%s/fuzz_idx.%ld.bin", tmp ? tmp : "/tmp", (long)getpid());
    }
    FILE *f = fopen(g_path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    if (fclose(f) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    write_input(data, size);
    tt_err e = {0};

    ds_images im = {0};
    if (idx_read_images(g_path, &im, &e) == 0) {
        size_t total = (size_t)im.n * ds_image_size(&im);
        volatile uint8_t sink = 0;
        if (total) sink ^= im.pixels[total - 1];
        (void)sink;
    } else if (im.pixels || im.labels || !e.msg[0]) {
        abort(); /* failures must leave the set empty and say why */
    }
    ds_images_free(&im);

    int32_t *labels = NULL;
    int n = 0;
    if (idx_read_labels(g_path, &labels, &n, &e) == 0) {
        if (n < 1 || labels[n - 1] < 0 || labels[n - 1] > 255) abort();
    } else if (labels) {
        abort();
    }
    free(labels);

    idx_u8 t;
    if (idx_read_u8(g_path, &t, &e) == 0) {
        if (t.ndims < 1 || t.ndims > IDX_MAX_DIMS || !t.data) abort();
    }
    idx_u8_free(&t);
    return 0;
}
