/* svd_layer_run.c — runs one SVD-merge layer function on task vectors from a .npy file, for the
 * known-answer script tests/frontier_ref.py (which writes the input and checks the output).
 *
 *   svd_layer_run tsv-m|iso-c|iso-cts TAU.npy OUT.npy [common_space_fraction]
 * TAU.npy: float32 [K, m, n]; OUT.npy: float32 [m, n]. Errors: one line, exit 2 (3 internal). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "baselines/methods.h"
#include "baselines/svd.h"
#include "core/npy.h"

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: svd_layer_run tsv-m|iso-c|iso-cts TAU.npy OUT.npy [common_space_fraction]\n");
        return 2;
    }
    tt_err e = {0};
    svd_layer_fn fn = !strcmp(argv[1], "tsv-m")     ? tsvm_layer
                      : !strcmp(argv[1], "iso-c")   ? isoc_layer
                      : !strcmp(argv[1], "iso-cts") ? isocts_layer
                                                    : NULL;
    if (!fn) {
        fprintf(stderr, "svd_layer_run: unknown method '%s'\n", argv[1]);
        return 2;
    }
    if (svd_init(&e)) {
        fprintf(stderr, "svd_layer_run: %s\n", e.msg);
        return 2;
    }
    double fraction = argc > 4 ? strtod(argv[4], NULL) : 0.8;
    int nd;
    int64_t sh[NPY_MAX_DIMS];
    float *tau;
    if (npy_read_f32(argv[2], &nd, sh, &tau, &e)) {
        fprintf(stderr, "svd_layer_run: %s\n", e.msg);
        return 2;
    }
    if (nd != 3 || sh[0] < 1 || sh[0] > MERGE_MAX_TASKS || sh[1] < 1 || sh[2] < 1) {
        fprintf(stderr, "svd_layer_run: %s: expected [K <= %d, m, n]\n", argv[2], MERGE_MAX_TASKS);
        free(tau);
        return 2;
    }
    int K = (int)sh[0], m = (int)sh[1], n = (int)sh[2];
    const float *views[MERGE_MAX_TASKS];
    for (int t = 0; t < K; t++) views[t] = tau + (size_t)t * m * n;
    float *out = calloc((size_t)m * n, sizeof *out);
    int rc = 0;
    if (!out || fn(views, K, m, n, out, &fraction, &e)) rc = 1;
    else if (npy_write_f32(argv[3], 2, (int64_t[]){m, n}, out, &e)) rc = 1;
    if (rc) fprintf(stderr, "svd_layer_run: %s\n", out ? e.msg : "out of memory");
    free(tau);
    free(out);
    return rc ? (out ? tt_exit_status(&e) : 3) : 0;
}
