/* fuzz_results_csv.c — libFuzzer target for the results.csv reader (reports/results.c), and
 * through it the leaderboard and golden check.
 *
 * Each input is written to an in-memory file (memfd) and read by path through
 * /proc/self/fd/N, so results_read runs its real path. Contract checked:
 *   - a rejected file leaves an empty table and a one-line message starting with the path;
 *   - an accepted file gives a table whose every suite has a leaderboard (ranks 1..n, ok rows
 *     before incomplete before failed), and the table checked against itself passes;
 *   - write -> read -> write is byte-identical (the writer's output is a fixed point), when a
 *     scratch directory on /dev/shm is available (fsync is free there).
 *
 * libFuzzer build and timed runs: fuzz/CMakeLists.txt, fuzz/README.md.
 *
 * Without libFuzzer, fuzz/replay_main.c runs the target once per file named on the command
 * line: ctest replays the committed seed corpus that way (fuzz_<name>_corpus).
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/fileio.h"
#include "reports/check.h"
#include "reports/results.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int g_fd = -1;
static char g_path[64];
static char g_scratch[64]; /* "" when /dev/shm is unusable */
static int g_scratch_tried;

static void put_bytes(const uint8_t *data, size_t size) {
    if (g_fd < 0) {
        g_fd = memfd_create("fuzz_results_csv", MFD_CLOEXEC);
        if (g_fd < 0) abort();
        snprintf(g_path, sizeof g_path, "/proc/self/fd/%d", g_fd);
    }
    if (ftruncate(g_fd, 0) != 0) abort();
    size_t done = 0;
    while (done < size) {
        ssize_t w = pwrite(g_fd, data + done, size - done, (off_t)done);
        if (w <= 0) abort();
        done += (size_t)w;
    }
}

static void scratch_cleanup(void) {
    const char *names[] = {"a.csv", "b.csv", "c.csv"};
    char p[128];
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", g_scratch, names[i]);
        unlink(p);
    }
    rmdir(g_scratch);
}

static const char *scratch(void) {
    if (!g_scratch_tried) {
        g_scratch_tried = 1;
        snprintf(g_scratch, sizeof g_scratch, "/dev/shm/fuzz_results_XXXXXX");
        if (!mkdtemp(g_scratch)) g_scratch[0] = 0;
        else atexit(scratch_cleanup);
    }
    return g_scratch[0] ? g_scratch : NULL;
}

static void check_leaderboards(const results_table *t) {
    const char **suites = NULL;
    tt_err e = {0};
    long ns = results_suites(t, &suites, &e);
    if (ns < 0) abort();
    for (long s = 0; s < ns; s++) {
        leaderboard lb = {0};
        if (results_leaderboard_for(t, suites[s], &lb, &e)) abort();
        for (int r = 0; r < lb.n_rows; r++) {
            if (lb.rows[r].rank != r + 1) abort();
            if (r && lb.rows[r].status < lb.rows[r - 1].status) abort();
        }
        results_leaderboard_free(&lb);
    }
    free(suites);
    check_report rep = {0};
    if (check_compare(t, t, 0.0, &rep, &e)) abort();
    if (!check_passed(&rep) || rep.extra || rep.missing) abort();
    check_free(&rep);
}

static char *slurp(const char *path, size_t *n) {
    char *buf = NULL;
    tt_err e = {0};
    if (fio_read_all(path, &buf, n, RESULTS_MAX_FILE_BYTES, &e)) abort();
    return buf;
}

static void round_trip(const results_table *t) {
    const char *dir = scratch();
    if (!dir) return;
    char p1[128], p2[128];
    snprintf(p1, sizeof p1, "%s/a.csv", dir);
    snprintf(p2, sizeof p2, "%s/b.csv", dir);
    tt_err e = {0};
    results_table u = {0};
    if (results_write(p1, t, &e)) abort();
    if (results_read(p1, &u, &e)) {
        fprintf(stderr, "re-read of written table failed: %s\n", e.msg);
        abort();
    }
    if (u.n != t->n) abort();
    if (results_write(p2, &u, &e)) abort();
    results_table v = {0};
    if (results_read(p2, &v, &e)) abort();
    char p3[128];
    snprintf(p3, sizeof p3, "%s/c.csv", dir);
    if (results_write(p3, &v, &e)) abort();
    size_t n2 = 0, n3 = 0;
    char *b2 = slurp(p2, &n2), *b3 = slurp(p3, &n3);
    if (n2 != n3 || memcmp(b2, b3, n2) != 0) {
        fprintf(stderr, "writer output is not a fixed point\n");
        abort();
    }
    free(b2);
    free(b3);
    results_free(&u);
    results_free(&v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    put_bytes(data, size);
    results_table t = {0};
    tt_err e = {0};
    if (results_read(g_path, &t, &e) != 0) {
        if (t.n != 0 || t.rows != NULL || e.msg[0] == 0 || strchr(e.msg, '\n') ||
            strncmp(e.msg, g_path, strlen(g_path)) != 0)
            abort();
        return 0;
    }
    check_leaderboards(&t);
    round_trip(&t);
    results_free(&t);
    return 0;
}

