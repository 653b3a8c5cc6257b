/* fuzz_csv_images.c — libFuzzer target for the numeric-CSV reader (data/csv_images.c, with
 * idx_slurp from data/idx.c for the raw/gzip layer) and the sklearn digits on top of it
 * (data/digits_csv.c).
 *
 * Each input is written to a private temporary file and read as the digits (8x8 and 28x28)
 * and with three generic option sets (label first/middle/last, header on/off, 1 or 3
 * channels, up- and downsampling). For each set the range scan runs first; when it succeeds,
 * reading with exactly the range it found must succeed with the same rows. Success or a clean
 * -1 (one-line message, nothing allocated) are fine; crashes, leaks and sanitizer reports are
 * bugs.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address -I. fuzz/fuzz_csv_images.c data/csv_images.c \
 *         data/digits_csv.c data/idx.c data/dataset.c core/err.c -lcsv -lz -lm -o /tmp/fz_csv
 *   /tmp/fz_csv -max_total_time=30 fuzz/corpus/csv_images
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/csv_images.h"
#include "data/digits_csv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char g_path[256];

static void check_failure(const ds_images *im, const tt_err *e) {
    if (im->pixels || im->labels || im->n || !e->msg[0] || strchr(e->msg, '\n')) abort();
}

static void check_images(const ds_images *im, const csvim_opts *o) {
    if (im->n < 1 || im->channels != o->channels || im->height != o->out_size || im->width != o->out_size) abort();
    for (int i = 0; i < im->n; i++)
        if (im->labels[i] < 0 || im->labels[i] >= o->classes) abort();
    volatile uint8_t sink = im->pixels[(size_t)im->n * ds_image_size(im) - 1];
    (void)sink;
}

static void generic(const csvim_opts *opts) {
    csvim_opts o = *opts;
    tt_err e = {0};
    ds_images im = {0};
    float lo = 0, hi = 0;
    if (csvim_range(g_path, &o, &lo, &hi, &e) == 0) {
        if (!(lo <= hi)) abort();
        if (lo < hi) {
            o.lo = lo;
            o.hi = hi;
            if (csvim_read(g_path, &o, &im, &e) != 0) abort(); /* the scan accepted every row */
            check_images(&im, &o);
            ds_images_free(&im);
        }
    } else if (!e.msg[0] || strchr(e.msg, '\n')) {
        abort();
    }
    o = *opts; /* the fixed range: values outside it are errors */
    if (csvim_read(g_path, &o, &im, &e) == 0) check_images(&im, &o);
    else check_failure(&im, &e);
    ds_images_free(&im);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_path[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(g_path, sizeof g_path, "%s/fuzz_csv_images.%ld.csv", tmp ? tmp : "/tmp", (long)getpid());
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
            csvim_opts o = digits_opts(sizes[k]);
            check_images(&im, &o);
            if (k == 0) n8 = im.n;
            else if (im.n != n8) abort();
        } else {
            check_failure(&im, &e);
        }
        ds_images_free(&im);
    }
    static const csvim_opts sets[3] = {
        {.channels = 1, .height = 2, .width = 2, .label_column = 0, .header = true, .lo = 0, .hi = 16, .classes = 10,
         .out_size = 3},
        {.channels = 3, .height = 1, .width = 1, .label_column = 1, .lo = -1, .hi = 1, .classes = 256, .out_size = 2},
        {.channels = 1, .height = 1, .width = 3, .label_column = -1, .lo = 0, .hi = 255, .classes = 2, .out_size = 1},
    };
    for (int k = 0; k < 3; k++) generic(&sets[k]);
    return 0;
}
