/* awd_adamerging.c — `awd-adamerging`: layer-wise AdaMerging (adamerge/adapt.c, AdaMerging's
 * defaults) on AWD's disentangled task vectors τ̂_k = τ_k − δ, δ = Σ_m b_m τ_m fitted by
 * baselines/awd.c exactly as the `awd` merge fits it (same parameters, same δ). */
#include "adamerge/adamerge.h"

#include <jansson.h>

#include "baselines/awd.h"
#include "baselines/merge_util.h"

static int awd_ada_run(merge_ctx *ctx, tt_err *err) {
    const vit_layout *lay = &ctx->pre.lay;
    int K = ctx->K;
    adapt_opts o;
    adapt_result r = {0};
    awd_fit f = {0};
    float *tv = NULL;
    int rc = -1;
    /* every parameter is checked before the Gram pass */
    if (adamerge_opts(ctx, &o, err) || awd_fit_run(ctx, &f, err) || !(tv = adapt_task_vectors(ctx, err))) goto done;
    o.layerwise = true;
    size_t total = lay->total;
    for (int l = 0; l < lay->count; l++) { /* τ̂_k = τ_k − Σ_m b_m τ_m, in place */
        const double *b = f.b + (size_t)(f.cosine ? l : 0) * K;
        size_t off = lay->t[l].offset, n = lay->t[l].numel;
#pragma omp parallel for schedule(static) if (n > KERN_PAR_MIN)
        for (size_t i = off; i < off + n; i++) {
            double d = 0;
            for (int m = 0; m < K; m++) d += b[m] * tv[(size_t)m * total + i];
            for (int k = 0; k < K; k++) tv[(size_t)k * total + i] -= (float)d;
        }
    }
    if (adamerge_finish(ctx, tv, &o, &r, err) || awd_fit_save_coef(ctx, &f, err)) goto done;
    json_error_t je;
    json_t *rec = json_loads(ctx->record_json, 0, &je);
    if (!rec) {
        tt_fail(err, TT_EINTERNAL, "adamerging record is not JSON: %s", je.text);
        goto done;
    }
    awd_fit_record(ctx, &f, rec);
    rc = mu_record_finish(ctx, rec, NULL, err);
done:
    adapt_result_free(&r);
    awd_fit_free(&f);
    free(tv);
    return rc;
}

static const merge_param awd_ada_params[] = {AWD_PARAMS, ADA_PARAMS, {0}};

const merge_method method_awd_adamerging = {
    .name = "awd-adamerging",
    .summary = "AWD + layer-wise AdaMerging: entropy-learned coefficients on the disentangled task vectors",
    .needs = MERGE_NEEDS_UNLABELED,
    .params = awd_ada_params,
    .run = awd_ada_run,
};
