/* data_merge_dump.c — test helper for tests/data_merge_ref.py: the statistics of the data-based
 * merges (Fisher, RegMean) and RegMean's closed form, dumped as raw little-endian arrays.
 *
 *   data_merge_dump stats SUITE OUT SAMPLES BATCH
 *       OUT/layout.txt   one "name offset numel" per layout tensor
 *       OUT/layers.txt   one "name d_in d_out gram_off" per RegMean layer
 *       per task t: OUT/idx_t.bin (int32 [used]: the train images drawn, in order),
 *       OUT/fisher_t.bin (float32 [total]: fisher_diag), OUT/gram_t.bin (float64: regmean_grams)
 *   data_merge_dump solve DIR
 *       DIR/spec.txt "K d_in d_out alpha", DIR/g<k>.bin (float64 [d_in×d_in]), DIR/w<k>.bin (float32
 *       [d_out×d_in]) -> DIR/out.bin (float32 [d_out×d_in]), or exit 1 with the error on stderr
 * Exit 0, 1 when the library fails, 2 on a usage or I/O problem. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "baselines/merge_util.h"
#include "baselines/methods.h"
#include "baselines/svd.h"

static int write_raw(const char *dir, const char *name, int t, const void *data, size_t bytes) {
    char path[2048];
    if (t >= 0) snprintf(path, sizeof path, "%s/%s_%d.bin", dir, name, t);
    else snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, bytes, f) != bytes || fclose(f)) {
        fprintf(stderr, "data_merge_dump: cannot write %s\n", path);
        return -1;
    }
    return 0;
}

static void *read_raw(const char *dir, const char *name, int k, size_t bytes) {
    char path[2048];
    snprintf(path, sizeof path, "%s/%s%d.bin", dir, name, k);
    FILE *f = fopen(path, "rb");
    void *p = malloc(bytes ? bytes : 1);
    if (!f || !p || fread(p, 1, bytes, f) != bytes) {
        fprintf(stderr, "data_merge_dump: cannot read %s\n", path);
        free(p);
        p = NULL;
    }
    if (f) fclose(f);
    return p;
}

static int stats(const char *dir, const char *out, const char *samples, const char *batch) {
    tt_err e = {0};
    suite s;
    if (suite_open(&s, dir, NULL, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 2;
    }
    char set_s[64], set_b[64];
    snprintf(set_s, sizeof set_s, "samples=%s", samples);
    snprintf(set_b, sizeof set_b, "batch=%s", batch);
    const char *sets[] = {set_s, set_b};
    merge_ctx ctx;
    int rc = 1;
    regmean_layer ls[256];
    float *F = NULL;
    double *G = NULL;
    if (merge_ctx_open(&ctx, &s, &method_fisher, sets, 2, 0, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        suite_close(&s);
        return 1;
    }
    const vit_layout *lay = &ctx.pre.lay;
    char path[2048];
    snprintf(path, sizeof path, "%s/layout.txt", out);
    FILE *f = fopen(path, "w");
    if (!f) goto io;
    for (int l = 0; l < lay->count; l++) fprintf(f, "%s %zu %zu\n", lay->t[l].name, lay->t[l].offset, lay->t[l].numel);
    fclose(f);
    int n_layers = regmean_layers(&ctx, ls, 256, &e);
    if (n_layers < 0 || svd_init(&e)) goto fail;
    snprintf(path, sizeof path, "%s/layers.txt", out);
    if (!(f = fopen(path, "w"))) goto io;
    for (int j = 0; j < n_layers; j++)
        fprintf(f, "%s %d %d %zu\n", lay->t[ls[j].tensor].name, ls[j].d_in, ls[j].d_out, ls[j].gram_off);
    fclose(f);
    F = malloc(lay->total * sizeof(float));
    G = malloc(regmean_gram_floats(ls, n_layers) * sizeof(double));
    if (!F || !G) goto io;
    for (int t = 0; t < ctx.K; t++) {
        float *images;
        int *idx, used, used2;
        long n;
        if (merge_param_int(&ctx, "samples", &n, &e) ||
            mu_train_sample(&ctx, t, (int)n, 1, &images, &idx, &used, &e))
            goto fail;
        free(images);
        int rc_w = write_raw(out, "idx", t, idx, (size_t)used * sizeof(int));
        free(idx);
        if (rc_w) goto io;
        if (fisher_diag(&ctx, t, F, &used2, &e) || regmean_grams(&ctx, t, ls, n_layers, G, &used2, &e)) goto fail;
        if (write_raw(out, "fisher", t, F, lay->total * sizeof(float)) ||
            write_raw(out, "gram", t, G, regmean_gram_floats(ls, n_layers) * sizeof(double)))
            goto io;
    }
    rc = 0;
    goto done;
io:
    rc = 2;
    goto done;
fail:
    fprintf(stderr, "%s\n", e.msg);
    rc = 1;
done:
    free(F);
    free(G);
    merge_ctx_close(&ctx);
    suite_close(&s);
    return rc;
}

static int solve(const char *dir) {
    char path[2048];
    snprintf(path, sizeof path, "%s/spec.txt", dir);
    FILE *f = fopen(path, "r");
    int K, d_in, d_out;
    double alpha;
    if (!f || fscanf(f, "%d %d %d %lf", &K, &d_in, &d_out, &alpha) != 4 || K < 1 || d_in < 1 || d_out < 1) {
        fprintf(stderr, "data_merge_dump: cannot read %s\n", path);
        if (f) fclose(f);
        return 2;
    }
    fclose(f);
    tt_err e = {0};
    if (svd_init(&e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    size_t nG = (size_t)d_in * d_in, nW = (size_t)d_out * d_in;
    double *S = calloc(nG, sizeof(double)), *R = calloc((size_t)d_in * d_out, sizeof(double));
    float *out = calloc(nW, sizeof(float));
    int rc = 2;
    if (!S || !R || !out) goto done;
    for (int k = 0; k < K; k++) {
        double *g = read_raw(dir, "g", k, nG * sizeof(double));
        float *w = read_raw(dir, "w", k, nW * sizeof(float));
        int bad = !g || !w;
        if (!bad) {
            regmean_reduce_offdiag(g, d_in, alpha);
            bad = regmean_accumulate(S, R, g, w, d_in, d_out, &e) ? 3 : 0;
        }
        free(g);
        free(w);
        if (bad == 1) goto done;
        if (bad) goto fail;
    }
    if (regmean_solve(S, R, d_in, d_out, out, &e)) goto fail;
    rc = write_raw(dir, "out.bin", -1, out, nW * sizeof(float)) ? 2 : 0;
    goto done;
fail:
    fprintf(stderr, "%s\n", e.msg);
    rc = 1;
done:
    free(S);
    free(R);
    free(out);
    return rc;
}

int main(int argc, char **argv) {
    if (argc == 6 && !strcmp(argv[1], "stats")) return stats(argv[2], argv[3], argv[4], argv[5]);
    if (argc == 3 && !strcmp(argv[1], "solve")) return solve(argv[2]);
    fprintf(stderr, "usage: data_merge_dump stats SUITE OUT SAMPLES BATCH | solve DIR\n");
    return 2;
}
