#include "tests/testutil.h"

#include <criterion/criterion.h>

#include "data/suite.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void tu_fill_uniform(float *x, size_t n, uint64_t seed, float lo, float hi) {
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        double u = (double)(splitmix64(&s) >> 11) * (1.0 / 9007199254740992.0);
        x[i] = lo + (float)u * (hi - lo);
    }
}

double tu_max_rel_err(const float *a, const float *b, size_t n, double atol, double rtol) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - (double)b[i]) / (atol + rtol * fabs((double)b[i]));
        if (!(e <= worst)) worst = e; /* NaN propagates as worst */
    }
    return worst;
}

int tu_allclose(const char *label, const float *got, const float *want, size_t n, double atol,
                double rtol) {
    size_t worst_i = 0;
    double worst = 0, max_abs = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        double e = d / (atol + rtol * fabs((double)want[i]));
        if (!(e <= worst)) { worst = e; worst_i = i; }
        if (d > max_abs) max_abs = d;
    }
    if (worst <= 1.0) return 1;
    fprintf(stderr, "%s: mismatch at [%zu]: got %.8g want %.8g (max abs err %.3g, atol %.1g rtol %.1g)\n",
            label, worst_i, (double)got[worst_i], (double)want[worst_i], max_abs, atol, rtol);
    return 0;
}

const char *tu_tmpdir(const char *tag) {
    static char buf[512];
    const char *base = getenv("TMPDIR");
    if (!base) base = "/tmp";
    snprintf(buf, sizeof buf, "%s/ttmerge-test-%s-XXXXXX", base, tag);
    if (!mkdtemp(buf)) return NULL;
    return buf;
}

void tu_rm_tree(const char *path) {
    struct stat sb;
    if (lstat(path, &sb) != 0) return;
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *de;
        while (d && (de = readdir(d))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
            char sub[1024];
            snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
            tu_rm_tree(sub);
        }
        if (d) closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

int tu_run(const char *cmdline, char *err_out, size_t cap) {
    char full[4096];
    char errfile[] = "/tmp/ttmerge-tu-err-XXXXXX";
    int fd = mkstemp(errfile);
    if (fd < 0) return -1;
    close(fd);
    snprintf(full, sizeof full, "%s 2>%s", cmdline, errfile);
    int st = system(full);
    if (err_out && cap) {
        FILE *f = fopen(errfile, "rb");
        size_t n = f ? fread(err_out, 1, cap - 1, f) : 0;
        err_out[n] = 0;
        if (f) fclose(f);
    }
    unlink(errfile);
    if (st == -1 || !WIFEXITED(st)) return -1;
    return WEXITSTATUS(st);
}

const char *tu_ttmerge_bin(void) {
    const char *b = getenv("TTMERGE_BIN");
    return b ? b : TTMERGE_BINARY_DIR "/ttmerge";
}

void tu_open_tiny_suite(suite *s) {
    tt_err e = {0};
    const char *dir = getenv("TTMERGE_TINY_SUITE");
    cr_assert_not_null(dir, "TTMERGE_TINY_SUITE is not set (run under ctest)");
    cr_assert_eq(suite_open(s, dir, NULL, &e), 0, "%s", e.msg);
}
