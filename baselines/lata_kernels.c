/* lata_kernels.c — LATA's kernel of kernels.h (the method: lata.c): the layer weights from the
 * alignment scores, shared by the suite's lata and the any-model engine (anymerge.c). */
#include <math.h>

#include "baselines/kernels.h"

int lata_weights(const double *score, int L, double topk, double gamma, float *w) {
    int n_top = (int)ceil((double)L * topk / 100.0 - 1e-9);
    n_top = n_top < 0 ? 0 : n_top > L ? L : n_top;
    /* layer l is amplified when fewer than n_top layers rank above it (higher score, or equal
     * score and lower index): O(L²) on at most a few hundred layers, no sort state */
    for (int l = 0; l < L; l++) {
        int above = 0;
        for (int j = 0; j < L; j++) above += score[j] > score[l] || (score[j] == score[l] && j < l);
        w[l] = above < n_top ? 1.0f : (float)gamma;
    }
    double mean = ((double)n_top + gamma * (L - n_top)) / (L > 0 ? L : 1);
    for (int l = 0; l < L; l++) w[l] = mean > 0 ? (float)(w[l] / mean) : 0.0f;
    return n_top;
}
