/* awd_kernels.c — AWD's kernels of kernels.h (the method and the reduction to K coefficients:
 * awd.c): the Gram matrix of the task vectors and the iteration on δ's coefficients, shared by the
 * suite's awd and awd-adamerging and the any-model engine (anymerge.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "baselines/kernels.h"

size_t awd_gram_scratch(int K) { return (size_t)KERN_STAT_CHUNKS * (size_t)K * (size_t)(K + 1) / 2; }

void awd_gram_block(double *acc, const float *const *tv, int K, size_t n) {
    size_t p = 0;
    for (int i = 0; i < K; i++)
        for (int j = i; j < K; j++, p++) {
            double sum = 0;
            for (size_t x = 0; x < n; x++) sum += (double)tv[i][x] * tv[j][x];
            acc[p] += sum;
        }
}

void awd_gram_finish(double *G, const double *scratch, int K) {
    size_t pairs = (size_t)K * (size_t)(K + 1) / 2;
    for (int c = 0; c < KERN_STAT_CHUNKS; c++) {
        const double *acc = scratch + (size_t)c * pairs;
        size_t p = 0;
        for (int i = 0; i < K; i++)
            for (int j = i; j < K; j++) G[i * K + j] += acc[p++];
    }
    for (int i = 0; i < K; i++)
        for (int j = 0; j < i; j++) G[i * K + j] = G[j * K + i];
}

void awd_gram_add(double *G, const float *const *tv, int K, size_t n, double *scratch) {
    size_t pairs = (size_t)K * (size_t)(K + 1) / 2;
#pragma omp parallel for schedule(static) if (n * (size_t)K > KERN_PAR_MIN)
    for (int c = 0; c < KERN_STAT_CHUNKS; c++) {
        double *acc = scratch + (size_t)c * pairs;
        memset(acc, 0, pairs * sizeof(double));
        size_t end = kern_stat_chunk_start(n, c + 1);
        for (size_t s = kern_stat_chunk_start(n, c); s < end; s += KERN_STAT_BLOCK) {
            const float *x[KERN_MAX_K];
            for (int k = 0; k < K; k++) x[k] = tv[k] + s;
            awd_gram_block(acc, x, K, s + KERN_STAT_BLOCK < end ? KERN_STAT_BLOCK : end - s);
        }
    }
    awd_gram_finish(G, scratch, K);
}

static bool group_active(const double *G, int K) {
    int nonzero = 0;
    for (int i = 0; i < K; i++) nonzero += G[i * K + i] > 0;
    return nonzero >= 2;
}

static double delta_norm(const double *G, int groups, int K, const double *b) {
    double sq = 0;
    for (int g = 0; g < groups; g++)
        for (int i = 0; i < K; i++)
            for (int j = 0; j < K; j++) sq += b[g * K + i] * G[(size_t)g * K * K + i * K + j] * b[g * K + j];
    return sq > 0 ? sqrt(sq) : 0;
}

double awd_objective(const double *G, int groups, int K, const double *b, double alpha, bool with_norm, double *l_o,
                     double *norm, double *coef) {
    int active = 0;
    for (int g = 0; g < groups; g++) active += group_active(G + (size_t)g * K * K, K);
    double nd = delta_norm(G, groups, K, b), lo = 0;
    /* d/dδ of 1/(K(K−1)) Σ_{i≠j} |c_ij| = 2/(K(K−1)) Σ_i w_i τ̂_i, with
     * w_i = Σ_{j≠i} s_ij (c_ij/n_i² − 1/(n_i n_j)); τ̂_i = Σ_m (e_i − b)_m τ_m */
    double scale = active ? 2.0 / ((double)K * (K - 1) * active) : 0;
    for (int g = 0; g < groups; g++) {
        const double *Gg = G + (size_t)g * K * K, *bg = b + (size_t)g * K;
        double *cg = coef ? coef + (size_t)g * K : NULL;
        double w[KERN_MAX_K] = {0}, h[KERN_MAX_K], n[KERN_MAX_K], bh = 0;
        if (group_active(Gg, K)) {
            for (int i = 0; i < K; i++) { /* h = G b */
                h[i] = 0;
                for (int j = 0; j < K; j++) h[i] += Gg[i * K + j] * bg[j];
                bh += bg[i] * h[i];
            }
            /* <τ̂_i, τ̂_j> = G_ij − h_i − h_j + bᵀGb */
            for (int i = 0; i < K; i++) {
                double p = Gg[i * K + i] - 2 * h[i] + bh;
                n[i] = p > 0 ? sqrt(p) : 0;
            }
            double sum = 0;
            for (int i = 0; i < K; i++)
                for (int j = i + 1; j < K; j++) {
                    /* a task vector that is zero in this group has nothing to disentangle there
                     * (and cos(−δ, ·) would pull δ with a 1/‖δ‖ gradient): its pairs count 0 */
                    if (Gg[i * K + i] <= 0 || Gg[j * K + j] <= 0 || n[i] == 0 || n[j] == 0) continue;
                    double p = Gg[i * K + j] - h[i] - h[j] + bh, nn = n[i] * n[j], c = p / nn;
                    double s = (p > 0) - (p < 0);
                    sum += 2 * fabs(c);
                    w[i] += s * (c / (n[i] * n[i]) - 1 / nn);
                    w[j] += s * (c / (n[j] * n[j]) - 1 / nn);
                }
            lo += sum / ((double)K * (K - 1) * active);
        }
        if (!cg) continue;
        double W = 0;
        for (int i = 0; i < K; i++) W += w[i];
        for (int m = 0; m < K; m++) {
            cg[m] = scale * (w[m] - W * bg[m]);
            if (with_norm && nd > 0) cg[m] += alpha * bg[m] / nd;
        }
    }
    if (l_o) *l_o = lo;
    if (norm) *norm = nd;
    return lo + (with_norm ? alpha * nd : 0);
}

int awd_descend(const double *G, int groups, int K, const awd_opts *o, double *b, double *l_o_trace) {
    size_t n = (size_t)groups * K;
    double *c = malloc(n * sizeof(double));
    if (!c) return -1;
    int rc = 0;
    for (int t = 0; t <= o->iters && !rc; t++) {
        double lo, L = awd_objective(G, groups, K, b, o->alpha, !o->prox, &lo, NULL, c);
        if (!isfinite(L)) rc = t + 1;
        else if (l_o_trace) l_o_trace[t] = lo;
        if (rc || t == o->iters) break;
        for (size_t i = 0; i < n; i++) b[i] -= o->beta * c[i];
        if (o->prox) {
            double r = delta_norm(G, groups, K, b), step = o->beta * o->alpha;
            double f = r > step ? 1 - step / r : 0;
            for (size_t i = 0; i < n; i++) b[i] *= f;
        }
    }
    free(c);
    return rc;
}
