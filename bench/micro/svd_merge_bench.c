/* svd_merge_bench.c — seconds per TSV-M, Iso-CTS or WUDI merge of the 2-D tensors of ViT-B/32-sized
 * layers, the quantity bench/svd_merge_bench.py also measures for the same computation in PyTorch.
 *
 *   svd_merge_bench --data DIR --method tsv-m|iso-cts|wudi [--blocks B] [--iters N] [--check-out F.npy]
 *
 * DIR holds tau_<m>x<n>.npy (float32 [K, m, n]) for ViT-B/32's matrix shapes, written by
 * bench/svd_merge_bench.py: 2304x768 (attn.in_proj_weight), 768x768 (attn.out_proj.weight),
 * 3072x768 (mlp.c_fc.weight), 768x3072 (mlp.c_proj.weight), 50x768 (positional_embedding),
 * 768x512 (proj). One merge = B blocks of 4 matrices (every block reuses the same task vectors)
 * plus positional_embedding and proj, through svd_run_jobs (one matrix per OpenMP thread, the path
 * of `ttmerge merge`); WUDI optimises only the 4 block matrices (N Adam steps each, default 300).
 * Prints one JSON line: method, blocks, K, threads, seconds. --check-out writes
 * the merged first block's attn.out_proj.weight, which the PyTorch peer compares with its own. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "baselines/methods.h"
#include "baselines/svd.h"
#include "bench/micro/bench_util.h"
#include "core/npy.h"

enum { SHAPES = 6, PER_BLOCK = 4 };
static const int shape_m[SHAPES] = {2304, 768, 3072, 768, 50, 768};
static const int shape_n[SHAPES] = {768, 768, 768, 3072, 768, 512};
static const char *const shape_name[SHAPES] = {"attn.in_proj_weight", "attn.out_proj.weight", "mlp.c_fc.weight",
                                               "mlp.c_proj.weight", "positional_embedding", "proj"};

typedef struct data {
    float *tau[SHAPES]; /* [K, m, n] */
    int K;
    const int *shape_of; /* job -> shape */
} data;

static void get_tau(const void *src, int job, int t, float *out) {
    const data *d = src;
    int sh = d->shape_of[job];
    size_t mn = (size_t)shape_m[sh] * shape_n[sh];
    memcpy(out, d->tau[sh] + (size_t)t * mn, mn * sizeof *out);
}

int main(int argc, char **argv) {
    const char *dir = NULL, *method = NULL, *check = NULL;
    int blocks = 1, iters = 300;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--data") && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(argv[i], "--method") && i + 1 < argc) method = argv[++i];
        else if (!strcmp(argv[i], "--blocks") && i + 1 < argc) blocks = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--check-out") && i + 1 < argc) check = argv[++i];
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: svd_merge_bench --data DIR --method tsv-m|iso-cts|wudi [--blocks B] [--iters N] "
                            "[--check-out F.npy]\n");
            return 2;
        }
    }
    svd_layer_fn fn = method && !strcmp(method, "tsv-m") ? tsvm_layer
                      : method && !strcmp(method, "iso-cts") ? isocts_layer
                      : method && !strcmp(method, "wudi")    ? wudi_layer
                                                             : NULL;
    if (!dir || !fn || blocks < 1 || blocks > 48 || iters < 0) {
        fprintf(stderr, "svd_merge_bench: need --data DIR, --method tsv-m|iso-cts|wudi, 1 <= --blocks <= 48, --iters >= 0\n");
        return 2;
    }
    data d = {0};
    tt_err e = {0};
    for (int s = 0; s < SHAPES; s++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/tau_%dx%d.npy", dir, shape_m[s], shape_n[s]);
        int nd;
        int64_t sh[NPY_MAX_DIMS];
        if (npy_read_f32(path, &nd, sh, &d.tau[s], &e)) {
            fprintf(stderr, "svd_merge_bench: %s\n", e.msg);
            return 2;
        }
        if (nd != 3 || sh[1] != shape_m[s] || sh[2] != shape_n[s] || sh[0] < 1 || sh[0] > MERGE_MAX_TASKS ||
            (s && sh[0] != d.K)) {
            fprintf(stderr, "svd_merge_bench: %s: expected [K, %d, %d] with the same K in every file\n", path,
                    shape_m[s], shape_n[s]);
            return 2;
        }
        d.K = (int)sh[0];
    }
    int n_jobs = blocks * PER_BLOCK + (fn == wudi_layer ? 0 : 2); /* WUDI leaves pos and proj at θ0 */
    svd_job *jobs = calloc((size_t)n_jobs, sizeof *jobs);
    int *shape_of = calloc((size_t)n_jobs, sizeof *shape_of);
    float **outs = calloc((size_t)n_jobs, sizeof *outs);
    if (!jobs || !shape_of || !outs) return 3;
    for (int j = 0; j < n_jobs; j++) {
        int s = j < blocks * PER_BLOCK ? j % PER_BLOCK : PER_BLOCK + (j - blocks * PER_BLOCK);
        shape_of[j] = s;
        outs[j] = malloc((size_t)shape_m[s] * shape_n[s] * sizeof(float));
        if (!outs[j]) return 3;
        jobs[j] = (svd_job){shape_m[s], shape_n[s], outs[j], shape_name[s]};
    }
    d.shape_of = shape_of;
    double fraction = 0.8;
    wudi_opts wo = {iters, 1e-5};
    const void *user = fn == wudi_layer ? (const void *)&wo : &fraction;
    double t0 = bu_now();
    if (svd_run_jobs(n_jobs, jobs, d.K, get_tau, &d, fn, user, false, &e)) {
        fprintf(stderr, "svd_merge_bench: %s\n", e.msg);
        return tt_exit_status(&e);
    }
    double sec = bu_now() - t0;
    printf("{\"peer\":\"ttmerge\",\"method\":\"%s\",\"blocks\":%d,\"K\":%d,\"threads\":%d,\"seconds\":%.3f}\n", method,
           blocks, d.K, omp_get_max_threads(), sec);
    if (check && npy_write_f32(check, 2, (int64_t[]){768, 768}, outs[1], &e)) {
        fprintf(stderr, "svd_merge_bench: %s\n", e.msg);
        return 2;
    }
    for (int j = 0; j < n_jobs; j++) free(outs[j]);
    for (int s = 0; s < SHAPES; s++) free(d.tau[s]);
    free(outs);
    free(jobs);
    free(shape_of);
    return 0;
}
