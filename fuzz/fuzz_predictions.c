/* fuzz_predictions.c — libFuzzer target for the predictions reader (reports/predictions.c).
 *
 * Each input is parsed in memory with predictions_parse; an accepted one is written back with
 * predictions_write and must read back to the same bytes (a fixed point), and its statistics
 * (reports/stats.c, a few resamples) must compute. A clean -1 with a one-line message is fine;
 * crashes, leaks, sanitizer reports and multi-line errors are bugs.
 *
 * libFuzzer build and timed runs: fuzz/CMakeLists.txt, fuzz/README.md.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fileio.h"
#include "reports/predictions.h"
#include "reports/stats.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char g_path[256];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_path[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(g_path, sizeof g_path, "%s/fuzz_predictions.%ld.bits", tmp ? tmp : "/tmp", (long)getpid());
    }
    tt_err e = {0};
    predictions p;
    if (predictions_parse("input", data, size, &p, &e) != 0) {
        if (strchr(e.msg, '\n')) abort(); /* errors are one line */
        return 0;
    }
    long total = 0;
    for (int t = 0; t < p.n_tasks; t++) total += p.tasks[t].n;
    if (predictions_write(g_path, &p, &e) != 0) abort();
    char *back = NULL;
    size_t n = 0;
    if (fio_read_all(g_path, &back, &n, (size_t)1 << 30, &e) != 0) abort();
    if (n != size || memcmp(back, data, size) != 0) abort(); /* accepted input == canonical bytes */
    free(back);
    remove(g_path);
    if (total <= 4096) { /* keep each input fast */
        stats_opts o = stats_defaults();
        o.resamples = 5;
        o.ref = p.method;
        stats_board b;
        bool any_empty = false;
        for (int t = 0; t < p.n_tasks; t++) any_empty |= p.tasks[t].n == 0;
        int rc = stats_compute(&p, 1, &o, &b, &e);
        if (rc != 0 && !any_empty) abort();
        if (rc == 0) stats_free(&b);
    }
    predictions_free(&p);
    return 0;
}
