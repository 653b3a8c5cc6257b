/* surgery_run.c — Representation Surgery's objective and optimiser on arrays from .npy files, for the
 * PyTorch check in tests/frontier_ref.py (which writes the inputs and checks the outputs).
 *
 *   surgery_run Z.npy F.npy DOWN.npy UP.npy LR STEPS OUT_PREFIX
 * Z, F: float32 [B, D] merged and expert features; DOWN [r, D], UP [D, r]. Writes OUT_PREFIX.gdown.npy
 * and .gup.npy (the gradient at the given maps), .down.npy and .up.npy after STEPS Adam steps on the
 * same batch (surgery's optimiser: Adam, betas 0.9/0.999, eps 1e-8, no weight decay); stdout: the
 * loss at the given maps (%.17g). Errors: one line, exit 2. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/npy.h"
#include "core/train.h"
#include "tint/surgery.h"

static float *load(const char *path, int64_t *rows, int64_t *cols, tt_err *e) {
    int nd;
    int64_t sh[NPY_MAX_DIMS];
    float *x;
    if (npy_read_f32(path, &nd, sh, &x, e)) return NULL;
    if (nd != 2) {
        free(x);
        tt_fail(e, TT_EINPUT, "%s: expected a 2-D array", path);
        return NULL;
    }
    *rows = sh[0];
    *cols = sh[1];
    return x;
}

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr, "usage: surgery_run Z.npy F.npy DOWN.npy UP.npy LR STEPS OUT_PREFIX\n");
        return 2;
    }
    tt_err e = {0};
    int64_t B, D, B2, D2, r, D3, D4, r2;
    float *z = load(argv[1], &B, &D, &e), *f = z ? load(argv[2], &B2, &D2, &e) : NULL;
    float *down = f ? load(argv[3], &r, &D3, &e) : NULL, *up = down ? load(argv[4], &D4, &r2, &e) : NULL;
    if (!up) {
        fprintf(stderr, "surgery_run: %s\n", e.msg);
        return 2;
    }
    if (B2 != B || D2 != D || D3 != D || D4 != D || r2 != r || r > 1024) {
        fprintf(stderr, "surgery_run: shapes disagree\n");
        return 2;
    }
    size_t nd = (size_t)r * D;
    float *p = malloc(2 * nd * sizeof(float)), *g = malloc(2 * nd * sizeof(float));
    adamw opt;
    if (!p || !g || adamw_init(&opt, 2 * nd, &e)) {
        fprintf(stderr, "surgery_run: out of memory\n");
        return 3;
    }
    memcpy(p, down, nd * sizeof(float));
    memcpy(p + nd, up, nd * sizeof(float));
    double loss = surgery_loss_grad(p, p + nd, (int)r, (int)D, z, f, (int)B, g, g + nd);
    printf("%.17g\n", loss);
    char path[4096];
    int rc = 0;
    snprintf(path, sizeof path, "%s.gdown.npy", argv[7]);
    rc |= npy_write_f32(path, 2, (int64_t[]){r, D}, g, &e);
    snprintf(path, sizeof path, "%s.gup.npy", argv[7]);
    rc |= npy_write_f32(path, 2, (int64_t[]){D, r}, g + nd, &e);
    float lr = strtof(argv[5], NULL);
    int steps = atoi(argv[6]);
    for (int s = 0; s < steps; s++) {
        if (s) surgery_loss_grad(p, p + nd, (int)r, (int)D, z, f, (int)B, g, g + nd);
        adamw_tick(&opt);
        adamw_update(&opt, p, g, 0, 2 * nd, lr, 0.0f);
    }
    snprintf(path, sizeof path, "%s.down.npy", argv[7]);
    rc |= npy_write_f32(path, 2, (int64_t[]){r, D}, p, &e);
    snprintf(path, sizeof path, "%s.up.npy", argv[7]);
    rc |= npy_write_f32(path, 2, (int64_t[]){D, r}, p + nd, &e);
    if (rc) fprintf(stderr, "surgery_run: %s\n", e.msg);
    adamw_free(&opt);
    free(z), free(f), free(down), free(up), free(p), free(g);
    return rc ? 2 : 0;
}
