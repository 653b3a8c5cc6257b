/* svd_layers.c — the per-matrix merges of the SVD methods (svd.h's svd_layer_fn): TSV-M, Iso-C,
 * Iso-CTS and CART on the K task vectors of one 2-D tensor (CART's centred), as their method files
 * describe (tsv_m.c, iso_c.c, iso_cts.c, cart.c). Apart from the methods, which need the suite's context, because the any-model engine
 * (anymerge.c) runs them on any model's matrices too. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "baselines/methods.h"
#include "baselines/svd.h"
#include "core/arena.h"

int tsvm_layer(const float *const *tau, int K, int m, int n, float *out, const void *user, tt_err *err) {
    (void)user;
    const int k = m < n ? m : n, r = svd_rank_fraction(k, K);
    const size_t mn = (size_t)m * n;
    memset(out, 0, mn * sizeof *out);
    if (r == 0) return 0; /* every slot empty: P_U · 0 · P_V */
    double *a = svd_alloc(mn, err);
    double *u = a ? svd_alloc((size_t)m * k, err) : NULL;
    double *s = u ? svd_alloc((size_t)k, err) : NULL;
    double *vt = s ? svd_alloc((size_t)k * n, err) : NULL;
    double *ucat = vt ? svd_alloc((size_t)m * k, err) : NULL;
    double *scat = ucat ? svd_alloc((size_t)k, err) : NULL;
    double *vcat = scat ? svd_alloc((size_t)k * n, err) : NULL;
    int rc = -1;
    if (!vcat) goto done;
    bool any = false;
    for (int t = 0; t < K; t++) {
        svd_widen(tau[t], mn, a);
        if (svd_top(a, m, n, r, u, s, vt, err)) goto done; /* only the top r are kept */
        for (int i = 0; i < m; i++) memcpy(ucat + (size_t)i * k + (size_t)t * r, u + (size_t)i * r, r * sizeof *u);
        memcpy(scat + (size_t)t * r, s, r * sizeof *s);
        memcpy(vcat + (size_t)t * r * n, vt, (size_t)r * n * sizeof *vt);
        for (int j = 0; j < r; j++) any |= s[j] != 0;
    }
    if (any) {
        /* u and vt are free: they have the shapes of the two polar factors */
        if (svd_polar(ucat, m, k, u, err) || svd_polar(vcat, k, n, vt, err) ||
            svd_reconstruct(u, scat, vt, m, k, n, out, err))
            goto done;
    }
    rc = 0;
done:
    free(a);
    free(u);
    free(s);
    free(vt);
    free(ucat);
    free(scat);
    free(vcat);
    return rc;
}

int isoc_layer(const float *const *tau, int K, int m, int n, float *out, const void *user, tt_err *err) {
    (void)user;
    const int k = m < n ? m : n;
    const size_t mn = (size_t)m * n;
    double *a = svd_alloc(mn, err);
    double *u = a ? svd_alloc((size_t)m * k, err) : NULL;
    double *s = u ? svd_alloc((size_t)k, err) : NULL;
    double *vt = s ? svd_alloc((size_t)k * n, err) : NULL;
    int rc = -1;
    if (!vt) goto done;
    for (int t = 0; t < K; t++)
        for (size_t i = 0; i < mn; i++) a[i] += tau[t][i];
    if (svd_thin(a, m, n, u, s, vt, err)) goto done;
    double sum = 0;
    for (int j = 0; j < k; j++) sum += s[j];
    for (int j = 0; j < k; j++) s[j] = sum / k;
    rc = svd_reconstruct(u, s, vt, m, k, n, out, err);
done:
    free(a);
    free(u);
    free(s);
    free(vt);
    return rc;
}

int isocts_dims(int k, int K, double fraction, int *common, int *per_task) {
    int c0 = (int)((double)k * fraction);
    int tot = (int)rint((double)(k - c0) / (double)K) * K;
    int c = k - tot;
    if (c < 0) return -1;
    *common = c;
    *per_task = (int)((double)(k - c) / (double)K);
    return 0;
}

int isocts_layer(const float *const *tau, int K, int m, int n, float *out, const void *user, tt_err *err) {
    const double fraction = *(const double *)user;
    const int k = m < n ? m : n;
    const size_t mn = (size_t)m * n;
    int c, s_t;
    if (isocts_dims(k, K, fraction, &c, &s_t))
        return tt_fail(err, TT_EINPUT, "common_space_fraction=%g leaves a negative common subspace for k=%d, K=%d",
                       fraction, k, K);
    double *a = svd_alloc(mn, err);
    double *w = a ? svd_alloc(mn, err) : NULL;
    double *u = w ? svd_alloc((size_t)m * k, err) : NULL;
    double *s = u ? svd_alloc((size_t)k, err) : NULL;
    double *vt = s ? svd_alloc((size_t)k * n, err) : NULL;
    double *ucat = vt ? svd_alloc((size_t)m * k, err) : NULL;
    double *scat = ucat ? svd_alloc((size_t)k, err) : NULL;
    double *vcat = scat ? svd_alloc((size_t)k * n, err) : NULL;
    double *uc = vcat ? svd_alloc((size_t)m * c, err) : NULL;
    double *proj = uc ? svd_alloc((size_t)c * n, err) : NULL;
    int rc = -1;
    if (!proj) goto done;
    /* the common subspace, from the SVD of the sum */
    for (int t = 0; t < K; t++)
        for (size_t i = 0; i < mn; i++) a[i] += tau[t][i];
    if (svd_thin(a, m, n, u, s, vt, err)) goto done;
    const size_t cb = (size_t)K * s_t; /* the common block's first slot */
    for (int i = 0; i < m; i++) {
        memcpy(uc + (size_t)i * c, u + (size_t)i * k, c * sizeof *u);
        memcpy(ucat + (size_t)i * k + cb, u + (size_t)i * k, c * sizeof *u);
    }
    memcpy(scat + cb, s, c * sizeof *s);
    memcpy(vcat + cb * n, vt, (size_t)c * n * sizeof *vt);
    /* each task's own directions, outside the common left subspace */
    for (int t = 0; t < K; t++) {
        svd_widen(tau[t], mn, w);
        memcpy(a, w, mn * sizeof *a);
        if (c > 0) {
            svd_gemm(true, false, c, n, m, 1.0, uc, w, 0.0, proj); /* U_cᵀ τ_t */
            svd_gemm(false, false, m, n, c, -1.0, uc, proj, 1.0, a); /* τ_t − U_c (U_cᵀ τ_t) */
        }
        if (s_t == 0) continue;
        if (svd_top(a, m, n, s_t, u, s, vt, err)) goto done; /* only the top s_t are kept */
        for (int i = 0; i < m; i++)
            memcpy(ucat + (size_t)i * k + (size_t)t * s_t, u + (size_t)i * s_t, s_t * sizeof *u);
        memcpy(scat + (size_t)t * s_t, s, s_t * sizeof *s);
        memcpy(vcat + (size_t)t * s_t * n, vt, (size_t)s_t * n * sizeof *vt);
    }
    double sum = 0;
    for (int j = 0; j < k; j++) sum += scat[j];
    if (svd_polar(ucat, m, k, u, err) || svd_polar(vcat, k, n, vt, err)) goto done;
    for (int j = 0; j < k; j++) s[j] = sum / k;
    rc = svd_reconstruct(u, s, vt, m, k, n, out, err);
done:
    free(a);
    free(w);
    free(u);
    free(s);
    free(vt);
    free(ucat);
    free(scat);
    free(vcat);
    free(uc);
    free(proj);
    return rc;
}

bool cart_name_selected(const char *name) {
    return (strstr(name, "attn") || strstr(name, "mlp")) && !strstr(name, "ln") && !strstr(name, "bias");
}

int cart_rank(int k, double ratio) {
    int r = (int)(ratio * (double)k);
    return r < 1 ? 1 : r > k ? k : r;
}

int cart_layer(const float *const *centred, int K, int m, int n, float *out, const void *user, tt_err *err) {
    const double ratio = *(const double *)user;
    const int k = m < n ? m : n, r = cart_rank(k, ratio);
    const size_t mn = (size_t)m * n;
    double *a = svd_alloc(mn, err);
    double *u = a ? svd_alloc((size_t)m * k, err) : NULL;
    double *s = u ? svd_alloc((size_t)k, err) : NULL;
    double *vt = s ? svd_alloc((size_t)k * n, err) : NULL;
    float *low = vt ? tt_calloc_aligned(mn, sizeof(float), err) : NULL;
    int rc = -1;
    if (!low) goto done;
    memset(out, 0, mn * sizeof *out);
    for (int t = 0; t < K; t++) {
        svd_widen(centred[t], mn, a);
        int bad = r == k ? svd_thin(a, m, n, u, s, vt, err) : svd_top(a, m, n, r, u, s, vt, err);
        if (bad || svd_reconstruct(u, s, vt, m, r, n, low, err)) goto done;
        for (size_t i = 0; i < mn; i++) out[i] += low[i];
    }
    rc = 0;
done:
    free(a);
    free(u);
    free(s);
    free(vt);
    free(low);
    return rc;
}
