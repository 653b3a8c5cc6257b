/* emr_run.c — runs EMR-Merging's per-tensor step (emr_tensor) on task vectors from a .npy file, for
 * the known-answer script tests/frontier_ref.py (which writes the input and checks the output).
 *
 *   emr_run TAU.npy OUT.npy
 * TAU.npy: float32 [K, n]; OUT.npy: float32 [1 + K, n] = τ_uni, then each task's mask as 0/1.
 * stdout: one line per task, "mean|tau_k| mean|m_k*tau_uni|" (%.17g). Errors: one line, exit 2. */
#include <stdio.h>
#include <stdlib.h>

#include "baselines/methods.h"
#include "core/npy.h"

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: emr_run TAU.npy OUT.npy\n");
        return 2;
    }
    tt_err e = {0};
    int nd;
    int64_t sh[NPY_MAX_DIMS];
    float *tau;
    if (npy_read_f32(argv[1], &nd, sh, &tau, &e)) {
        fprintf(stderr, "emr_run: %s\n", e.msg);
        return 2;
    }
    if (nd != 2 || sh[0] < 1 || sh[0] > MERGE_MAX_TASKS || sh[1] < 1) {
        fprintf(stderr, "emr_run: %s: expected [K <= %d, n]\n", argv[1], MERGE_MAX_TASKS);
        free(tau);
        return 2;
    }
    int K = (int)sh[0];
    size_t n = (size_t)sh[1];
    const float *views[MERGE_MAX_TASKS];
    uint8_t *mask[MERGE_MAX_TASKS];
    float *out = calloc((size_t)(K + 1) * n, sizeof *out);
    uint8_t *bits = calloc((size_t)K, (n + 7) / 8);
    if (!out || !bits) {
        fprintf(stderr, "emr_run: out of memory\n");
        return 3;
    }
    for (int k = 0; k < K; k++) {
        views[k] = tau + (size_t)k * n;
        mask[k] = bits + (size_t)k * ((n + 7) / 8);
    }
    double a[MERGE_MAX_TASKS], m[MERGE_MAX_TASKS];
    emr_tensor(views, K, n, out, mask, a, m);
    for (int k = 0; k < K; k++) {
        for (size_t j = 0; j < n; j++) out[(size_t)(k + 1) * n + j] = (float)((mask[k][j >> 3] >> (j & 7)) & 1);
        printf("%.17g %.17g\n", a[k], m[k]);
    }
    int rc = npy_write_f32(argv[2], 2, (int64_t[]){K + 1, (int64_t)n}, out, &e);
    if (rc) fprintf(stderr, "emr_run: %s\n", e.msg);
    free(tau);
    free(out);
    free(bits);
    return rc ? 2 : 0;
}
