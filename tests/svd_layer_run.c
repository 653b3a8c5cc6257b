/* svd_layer_run.c — runs one SVD-merge layer function on task vectors from a .npy file, for the
 * known-answer script tests/frontier_ref.py (which writes the input and checks the output).
 *
 *   svd_layer_run tsv-m|iso-c|iso-cts|wudi|cart|pcb TAU.npy OUT.npy [PARAM]
 * TAU.npy: float32 [K, m, n]; OUT.npy: float32 [m, n]. PARAM: Iso-CTS's common_space_fraction (0.8),
 * WUDI's iters (300), CART's rank_ratio (0.12). CART runs with θ0 = 0 and λ = 2 (its whole formula:
 * θ_avg + λ Σ_t c̃_t), PCB on the K matrices as K flat rows with its defaults.
 * Errors: one line, exit 2 (3 internal). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "baselines/methods.h"
#include "baselines/svd.h"
#include "core/npy.h"

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: svd_layer_run tsv-m|iso-c|iso-cts|wudi|cart|pcb TAU.npy OUT.npy [PARAM]\n");
        return 2;
    }
    tt_err e = {0};
    svd_layer_fn fn = !strcmp(argv[1], "tsv-m")     ? tsvm_layer
                      : !strcmp(argv[1], "iso-c")   ? isoc_layer
                      : !strcmp(argv[1], "iso-cts") ? isocts_layer
                      : !strcmp(argv[1], "wudi")    ? wudi_layer
                      : !strcmp(argv[1], "cart")    ? cart_layer
                                                    : NULL;
    const bool pcb = !strcmp(argv[1], "pcb");
    if (!fn && !pcb) {
        fprintf(stderr, "svd_layer_run: unknown method '%s'\n", argv[1]);
        return 2;
    }
    if (svd_init(&e)) {
        fprintf(stderr, "svd_layer_run: %s\n", e.msg);
        return 2;
    }
    double fraction = argc > 4 ? strtod(argv[4], NULL) : 0.8;
    double ratio = argc > 4 ? strtod(argv[4], NULL) : 0.12;
    wudi_opts wo = {argc > 4 ? atoi(argv[4]) : 300, 1e-5};
    const void *user = fn == wudi_layer ? (const void *)&wo : fn == cart_layer ? (const void *)&ratio : &fraction;
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
    size_t mn = (size_t)m * n;
    float *avg = NULL, *centred = NULL;
    if (fn == cart_layer) { /* θ_avg = 0 + (1/K) Σ_t τ_t, c_t = (τ_t + 0) − θ_avg, as cart.c */
        avg = calloc(mn, sizeof *avg);
        centred = calloc((size_t)K * mn, sizeof *centred);
        if (!avg || !centred) rc = 1;
        for (int t = 0; t < K && !rc; t++)
            for (size_t i = 0; i < mn; i++) avg[i] += views[t][i];
        const float coeff = (float)(1.0 / K);
        for (size_t i = 0; i < mn && !rc; i++) avg[i] = 0.0f + coeff * avg[i];
        for (int t = 0; t < K && !rc; t++) {
            for (size_t i = 0; i < mn; i++) centred[(size_t)t * mn + i] = (views[t][i] + 0.0f) - avg[i];
            views[t] = centred + (size_t)t * mn;
        }
    }
    if (rc || !out) {
        rc = 1;
    }
    else if (pcb)
        rc = pcb_flat(tau, K, mn, &(pcb_opts){1.2, 0.01, 0.05}, out, &e) ? 1 : 0;
    else if (fn(views, K, m, n, out, user, &e)) rc = 1;
    if (!rc && avg)
        for (size_t i = 0; i < mn; i++) out[i] = avg[i] + 2.0f * out[i];
    free(avg);
    free(centred);
    if (!rc && npy_write_f32(argv[3], 2, (int64_t[]){m, n}, out, &e)) rc = 1;
    if (rc) fprintf(stderr, "svd_layer_run: %s\n", out ? e.msg : "out of memory");
    free(tau);
    free(out);
    return rc ? (out ? tt_exit_status(&e) : 3) : 0;
}
