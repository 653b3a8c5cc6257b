/* testutil.h — helpers shared by the Criterion suites: deterministic random fills,
 * scale-aware comparison with evidence, temp paths, and running the CLI. */
#ifndef TT_TESTUTIL_H
#define TT_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Fill x[n] with uniform values in [lo, hi) from a tiny seeded generator (splitmix64). */
void tu_fill_uniform(float *x, size_t n, uint64_t seed, float lo, float hi);

/* max |a-b| / (atol + rtol*|b|) over n values; <= 1 means "close". On failure prints
 * the worst index and values with the label. */
double tu_max_rel_err(const float *a, const float *b, size_t n, double atol, double rtol);
int tu_allclose(const char *label, const float *got, const float *want, size_t n, double atol,
                double rtol);

/* A fresh empty directory under $TMPDIR for this test (caller does not free; static buffer per call). */
const char *tu_tmpdir(const char *tag);

/* Remove a file or a directory tree (best effort; for test temp dirs). */
void tu_rm_tree(const char *path);

/* Run a shell command line; returns the exit status (or -1), capturing stderr into err_out
 * (size cap) when non-NULL. */
int tu_run(const char *cmdline, char *err_out, size_t cap);

/* Path of the ttmerge binary under test (env TTMERGE_BIN, else build dir). */
const char *tu_ttmerge_bin(void);

/* Open the tiny suite built by the ctest fixture ($TTMERGE_TINY_SUITE); fails the calling
 * Criterion test with the reason when it is missing. The caller closes it (suite_close). */
struct suite;
void tu_open_tiny_suite(struct suite *s);

#endif
