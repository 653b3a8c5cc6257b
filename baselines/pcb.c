/* pcb.c — PCB-Merging, Parameter Competition Balancing (Du et al., NeurIPS 2024), as the official vision
 * script (duguodong7/pcb-merging, vision_source_code/pcb.py, __main__), on the whole model flattened
 * into one vector per task (X: K × d, the order of the entries does not matter: every step is either
 * element-wise or a per-task order statistic):
 *
 *   clamp(x, a, b)  clip each row to [sort(x)[int(d·a)], sort(x)[int(d·(1 − b) − 1)]]
 *   minmax(x)       (x − min) / (max − min) per row
 *   A   = clamp(|X|, 0.01, 0.01); X̂ = sign(X) · A; Ñ = sign(X) · minmax(A)
 *   intra = exp(K · minmax(A)²); inter = tanh(X ⊙ Σ_j Ñ_j)  (the raw X, as pcb.py)
 *   S   = minmax(clamp(intra ⊙ inter, 1 − r, 0)), r = 0.05: below each row's 95% order statistic 0,
 *         the rest linearly onto [0, 1]
 *   τ_m = Σ_i λ X̂_i S_i / max(Σ_i S_i, 1e-12), λ = 1.2 for every task (pcb.py; pcb_ES.py searches it
 *         with nevergrad on validation); θ = θ0 + τ_m.
 * (pcb_ES.py and the root pcb-merging.py score inter differently; pcb.py's is the vision one.)
 *
 * d counts ttmerge's tensors (the vision tower; the official open_clip state dict also holds the unused,
 * all-zero text tower, ~25.6M of its 113M entries, which moves every quantile). Order statistics are
 * exact (select.h's streaming select, no sort, no K × d copy); scores are float64 rounded to float32 (the
 * official precision) so that the selection and the weighting see the same numbers. A row whose min
 * equals its max (an all-zero task vector) has minmax 0 where the official code divides 0 by 0 (NaN in
 * every merged entry): such a task takes no part. */
#include "baselines/methods.h"

#include <jansson.h>
#include <math.h>
#include <string.h>

#include "baselines/kernels.h"
#include "baselines/merge_util.h"
#include "baselines/search.h"
#include "baselines/select.h"
#include "core/arena.h"

/* Where the K rows come from: segments of a buffer layout (the model's tensors, or one flat array). */
typedef struct pcb_src {
    int K, nseg;
    const size_t *off, *len; /* segment s: buffer positions [off[s], off[s] + len[s]) */
    void (*get)(const struct pcb_src *src, int t, int seg, float *out);
    const void *user;
} pcb_src;

static uint64_t src_count(const pcb_src *src) {
    uint64_t d = 0;
    for (int s = 0; s < src->nseg; s++) d += src->len[s];
    return d;
}

/* rank-th smallest of row t's values f(x) over the whole stream (absval: of |x|), exactly */
static int row_select(const pcb_src *src, int t, uint64_t rank, bool absval, const float *sum_n, const pcb_row *r,
                      float *buf, float *value, float *max, tt_err *err) {
    select_ctx sel;
    if (select_init(&sel, rank, absval, err)) return -1;
    float top = -INFINITY;
    do {
        for (int s = 0; s < src->nseg; s++) {
            src->get(src, t, s, buf);
            if (sum_n) {
                float m = pcb_balance(buf, buf, sum_n + src->off[s], r, src->K, src->len[s]);
                top = m > top ? m : top;
            }
            select_feed(&sel, buf, src->len[s]);
        }
    } while (select_next_pass(&sel));
    *value = select_value(&sel);
    if (max) *max = top;
    select_free(&sel);
    return 0;
}

static int pcb_run_src(const pcb_src *src, const pcb_opts *o, float *out, size_t buf_len, size_t most,
                       pcb_row *rows, tt_err *err) {
    const uint64_t d = src_count(src);
    const int K = src->K;
    float *sum_n = tt_calloc_aligned(buf_len ? buf_len : 1, sizeof(float), err);
    float *buf = sum_n ? tt_calloc_aligned(most ? most : 1, sizeof(float), err) : NULL;
    double *num = buf ? tt_calloc_aligned(most ? most : 1, sizeof(double), err) : NULL;
    double *den = num ? tt_calloc_aligned(most ? most : 1, sizeof(double), err) : NULL;
    int rc = -1;
    if (!den) goto done;
    uint64_t r_lo, r_hi, r_b;
    bool ranked = pcb_ranks(d, o->clamp_ratio, o->keep_ratio, &r_lo, &r_hi, &r_b);
    TT_ASSERT(ranked); /* check_opts said so */
    for (int t = 0; t < K; t++) {
        if (row_select(src, t, r_lo, true, NULL, NULL, buf, &rows[t].lo, NULL, err) ||
            row_select(src, t, r_hi, true, NULL, NULL, buf, &rows[t].hi, NULL, err))
            goto done;
    }
    /* Σ_j Ñ_j, in task order as torch.sum over dim 0 of a float32 tensor would add them */
    for (int s = 0; s < src->nseg; s++) {
        float *dst = sum_n + src->off[s];
        for (int t = 0; t < K; t++) {
            src->get(src, t, s, buf);
            pcb_sum_n_add(dst, buf, &rows[t], src->len[s]);
        }
    }
    for (int t = 0; t < K; t++)
        if (row_select(src, t, r_b, false, sum_n, &rows[t], buf, &rows[t].blo, &rows[t].bhi, err)) goto done;
    /* τ_m, segment by segment */
    const float lam = (float)o->lambda;
    for (int s = 0; s < src->nseg; s++) {
        const size_t n = src->len[s];
        memset(num, 0, n * sizeof *num);
        memset(den, 0, n * sizeof *den);
        for (int t = 0; t < K; t++) {
            src->get(src, t, s, buf);
            pcb_accumulate(num, den, buf, sum_n + src->off[s], &rows[t], K, lam, n);
        }
        pcb_finish(out + src->off[s], num, den, n);
    }
    rc = 0;
done:
    free(sum_n);
    free(buf);
    free(num);
    free(den);
    return rc;
}

static int check_opts(const pcb_opts *o, uint64_t d, tt_err *err) {
    if (d < 2) return tt_fail(err, TT_EINPUT, "PCB needs at least 2 parameters, got %llu", (unsigned long long)d);
    if (!(o->keep_ratio > 0 && o->keep_ratio <= 1))
        return tt_fail(err, TT_EINPUT, "parameter keep=%g is out of range (0, 1]", o->keep_ratio);
    uint64_t r_lo, r_hi, r_b;
    if (!pcb_ranks(d, o->clamp_ratio, o->keep_ratio, &r_lo, &r_hi, &r_b))
        return tt_fail(err, TT_EINPUT, "parameter clamp=%g leaves no values between the two clamp bounds", o->clamp_ratio);
    return 0;
}

/* ---- one flat [K × d] array ---- */
static void flat_get(const pcb_src *src, int t, int seg, float *out) {
    (void)seg;
    memcpy(out, (const float *)src->user + (size_t)t * src->len[0], src->len[0] * sizeof *out);
}

int pcb_flat(const float *x, int K, size_t d, const pcb_opts *o, float *out, tt_err *err) {
    if (check_opts(o, d, err)) return -1;
    size_t off = 0;
    pcb_src src = {K, 1, &off, &d, flat_get, x};
    pcb_row rows[MERGE_MAX_TASKS];
    memset(out, 0, d * sizeof *out);
    return pcb_run_src(&src, o, out, d, d, rows, err);
}

/* ---- the model: one segment per tensor ---- */
static void ctx_get(const pcb_src *src, int t, int seg, float *out) {
    merge_task_vector(src->user, t, seg, out);
}

static int pcb_run(merge_ctx *ctx, tt_err *err) {
    pcb_opts o;
    if (mu_param_range(ctx, "lambda", -100, 100, &o.lambda, err) ||
        mu_param_range(ctx, "clamp", 0, 0.5, &o.clamp_ratio, err) || mu_param_range(ctx, "keep", 0, 1, &o.keep_ratio, err))
        return -1;
    const vit_layout *lay = &ctx->pre.lay;
    size_t *off = calloc((size_t)lay->count, sizeof *off), *len = calloc((size_t)lay->count, sizeof *len);
    float *delta = tt_calloc_aligned(lay->total, sizeof(float), err);
    int rc = -1;
    if (!off || !len) tt_fail(err, TT_ENOMEM, "out of memory");
    if (!off || !len || !delta) goto done;
    for (int l = 0; l < lay->count; l++) {
        off[l] = lay->t[l].offset;
        len[l] = lay->t[l].numel;
    }
    pcb_src src = {ctx->K, lay->count, off, len, ctx_get, ctx};
    pcb_row rows[MERGE_MAX_TASKS];
    if (check_opts(&o, src_count(&src), err) || pcb_run_src(&src, &o, delta, lay->total, mu_max_numel(ctx), rows, err))
        goto done;
    search_apply(ctx, delta, 1.0);
    json_t *bounds = json_array();
    for (int t = 0; t < ctx->K; t++)
        json_array_append_new(bounds, json_pack("{s:f,s:f,s:f}", "clamp_lo", rows[t].lo, "clamp_hi", rows[t].hi,
                                                "score_threshold", rows[t].blo));
    rc = mu_record_finish(ctx, json_pack("{s:f,s:f,s:f,s:o}", "lambda", o.lambda, "clamp", o.clamp_ratio, "keep",
                                         o.keep_ratio, "rows", bounds),
                          NULL, err);
done:
    free(off);
    free(len);
    free(delta);
    return rc;
}

static const merge_param pcb_params[] = {
    {"lambda", "1.2", "scaling of every task's balanced vector (official pcb.py; pcb_ES.py searches 0.8..1.3)"},
    {"clamp", "0.01", "fraction of each task vector's smallest and largest magnitudes clipped (official)"},
    {"keep", "0.05", "fraction of each task's entries with a non-zero balancing weight (official att_ratio)"},
    {0}};

const merge_method method_pcb = {
    .name = "pcb",
    .summary = "PCB: intra- and inter-task balancing scores over the whole model, top 5% kept, weighted average",
    .needs = MERGE_NEEDS_NOTHING,
    .params = pcb_params,
    .run = pcb_run,
};
