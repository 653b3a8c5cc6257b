/* infer.c — see infer.h. */
#include "core/infer.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/par.h"

int infer_auto_lanes(const vit_config *cfg, int batch) {
    int t = omp_get_max_threads();
    /* inside a parallel region, or with nested parallelism on, the lanes would not get a thread each
     * (or would oversubscribe the cores): one lane */
    if (t <= 1 || omp_in_parallel() || omp_get_max_active_levels() > 1 || cfg->width > INFER_LANE_MAX_WIDTH)
        return 1;
    int by_batch = batch / INFER_LANE_MIN_BATCH;
    int lanes = t < by_batch ? t : by_batch;
    if (lanes > INFER_MAX_LANES) lanes = INFER_MAX_LANES;
    return lanes < 1 ? 1 : lanes;
}

bool infer_tail_plans(const vit_config *cfg) { return cfg->width > INFER_LANE_MAX_WIDTH; }

int infer_init_lanes(infer_ctx *ic, dnn *d, const vit_config *cfg, int batch, int lanes, tt_err *err) {
    memset(ic, 0, sizeof *ic);
    ic->d = d;
    ic->cfg = *cfg;
    ic->batch = batch;
    if (lanes <= 0) lanes = infer_auto_lanes(cfg, batch);
    if (lanes > INFER_MAX_LANES) lanes = INFER_MAX_LANES;
    if (lanes > batch) lanes = batch;
    ic->lanes = lanes < 1 ? 1 : lanes;
    ic->lane_batch = (batch + ic->lanes - 1) / ic->lanes;
    size_t img = (size_t)cfg->channels * cfg->image_size * cfg->image_size;
    for (int l = 0; l < ic->lanes; l++) {
        infer_lane *ln = &ic->lane[l];
        /* a stream per lane: oneDNN streams are not to be shared between threads */
        if (l == 0) ln->d = d;
        else if (dnn_create_like(&ln->d, d, err)) goto fail;
        int threads = vit_lanes_planning_begin(ic->lanes);
        ln->plan = vit_plan_create_inference(ln->d, cfg, ic->lane_batch, err);
        vit_lanes_planning_end(threads);
        if (!ln->plan) goto fail;
        ln->images = tt_calloc_aligned((size_t)ic->lane_batch * img, sizeof(float), err);
        ln->features = ln->images ? tt_calloc_aligned((size_t)ic->lane_batch * cfg->output_dim, sizeof(float), err)
                                  : NULL;
        if (!ln->features) goto fail;
    }
    return 0;
fail:
    infer_free(ic);
    return -1;
}

int infer_init(infer_ctx *ic, dnn *d, const vit_config *cfg, int batch, tt_err *err) {
    return infer_init_lanes(ic, d, cfg, batch, 0, err);
}

void infer_free(infer_ctx *ic) {
    vit_plan_free(ic->tail);
    for (int l = 0; l < ic->lanes; l++) {
        infer_lane *ln = &ic->lane[l];
        vit_plan_free(ln->plan);
        for (int i = 0; i < ic->n_heads; i++) vit_head_free(&ln->heads[i]);
        free(ln->images);
        free(ln->features);
        free(ln->logits);
        if (l > 0) dnn_free(ln->d);
    }
    memset(ic, 0, sizeof *ic);
}

infer_norm infer_norm_scalar(float mean, float std, int channels) {
    infer_norm nm = {.channels = channels};
    for (int c = 0; c < INFER_MAX_CHANNELS; c++) nm.mean[c] = mean, nm.std[c] = std;
    return nm;
}

void infer_normalize(float *dst, const uint8_t *pixels, int n_img, int batch, size_t img_size, const infer_norm *nm) {
    int C = nm->channels;
    TT_ASSERT(C >= 1 && C <= INFER_MAX_CHANNELS && img_size % (size_t)C == 0);
    float a[INFER_MAX_CHANNELS], b[INFER_MAX_CHANNELS];
    for (int c = 0; c < C; c++) a[c] = 1.0f / (255.0f * nm->std[c]), b[c] = -nm->mean[c] / nm->std[c];
    size_t plane = img_size / (size_t)C, planes = (size_t)n_img * C, n = (size_t)n_img * img_size;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t q = 0; q < planes; q++) {
        float ac = a[q % C], bc = b[q % C];
        const uint8_t *src = pixels + q * plane;
        float *out = dst + q * plane;
        for (size_t i = 0; i < plane; i++) out[i] = (float)src[i] * ac + bc;
    }
    memset(dst + n, 0, ((size_t)batch * img_size - n) * sizeof(float));
}

/* Images [i0, i0 + k) of one pass, split between the lanes: lane l takes lane_batch of them from
 * i0 + l·lane_batch (the last lanes may get fewer, or none). */
static int lane_count(const infer_ctx *ic, int l, int k) {
    int lo = l * ic->lane_batch, hi = lo + ic->lane_batch < k ? lo + ic->lane_batch : k;
    return hi > lo ? hi - lo : 0;
}

/* The plan that runs m images on lane l: its own, or for a wide model (one lane) and a partial pass,
 * the tail plan of m rounded up to INFER_TAIL_QUANTUM (planned now if that size is new). Planning the
 * tail can fail (out of memory): the lane's own plan then runs the pass zero-padded, as correct. */
static vit_plan *pass_plan(infer_ctx *ic, int l, int m) {
    infer_lane *ln = &ic->lane[l];
    int want = (m + INFER_TAIL_QUANTUM - 1) / INFER_TAIL_QUANTUM * INFER_TAIL_QUANTUM;
    if (!infer_tail_plans(&ic->cfg) || ic->lanes > 1 || want >= ic->lane_batch) return ln->plan;
    if (ic->tail_batch != want) {
        vit_plan_free(ic->tail);
        tt_err err = {0};
        ic->tail = vit_plan_create_inference(ln->d, &ic->cfg, want, &err);
        ic->tail_batch = ic->tail ? want : 0;
    }
    if (!ic->tail) return ln->plan;
    vit_plan_reuse_weights(ic->tail, false); /* its weights were not converted by this call's passes */
    return ic->tail;
}

/* Normalise and run the backbone (and head h >= 0) for lane l's share of a pass. The head runs on the
 * lane's lane_batch feature rows whatever the backbone's plan: rows past the plan's are stale, and no
 * logit of a real image depends on them. */
static void lane_run(infer_ctx *ic, int l, const vit_weights *w, const uint8_t *pixels, int k, const infer_norm *nm,
                     int h, const float *head_W, const float *head_b) {
    infer_lane *ln = &ic->lane[l];
    size_t img = (size_t)ic->cfg.channels * ic->cfg.image_size * ic->cfg.image_size;
    int m = lane_count(ic, l, k);
    if (m == 0) return;
    vit_plan *plan = pass_plan(ic, l, m);
    infer_normalize(ln->images, pixels + (size_t)l * ic->lane_batch * img, m, vit_plan_batch(plan), img, nm);
    vit_forward(plan, w, ln->images, ln->features);
    if (h >= 0 && ic->feature_hook) ic->feature_hook(ln->features, m, ic->cfg.output_dim, ic->feature_user);
    if (h >= 0) vit_head_forward(&ln->heads[h], ln->logits, ln->features, head_W, head_b);
}

/* One pass over images [0, k) of pixels: every lane on its own thread (nested OpenMP regions in the
 * ops and oneDNN then run single-threaded), or the one lane with parallel ops. */
static void run_pass(infer_ctx *ic, const vit_weights *w, const uint8_t *pixels, int k, const infer_norm *nm,
                     int h, const float *head_W, const float *head_b) {
    if (ic->lanes == 1) {
        lane_run(ic, 0, w, pixels, k, nm, h, head_W, head_b);
        return;
    }
#pragma omp parallel for schedule(static, 1) num_threads(ic->lanes)
    for (int l = 0; l < ic->lanes; l++) lane_run(ic, l, w, pixels, k, nm, h, head_W, head_b);
}

static void reuse_weights(infer_ctx *ic, bool reuse) {
    for (int l = 0; l < ic->lanes; l++) vit_plan_reuse_weights(ic->lane[l].plan, reuse);
}

void infer_features(infer_ctx *ic, const vit_weights *w, const uint8_t *pixels, int n, const infer_norm *nm,
                    float *features) {
    size_t img = (size_t)ic->cfg.channels * ic->cfg.image_size * ic->cfg.image_size;
    int D = ic->cfg.output_dim;
    for (int i0 = 0; i0 < n; i0 += ic->batch) {
        int k = n - i0 < ic->batch ? n - i0 : ic->batch;
        reuse_weights(ic, i0 > 0); /* one model for the whole call: a bf16 plan converts it once */
        run_pass(ic, w, pixels + (size_t)i0 * img, k, nm, -1, NULL, NULL);
        for (int l = 0; l < ic->lanes; l++)
            memcpy(features + ((size_t)i0 + (size_t)l * ic->lane_batch) * D, ic->lane[l].features,
                   (size_t)lane_count(ic, l, k) * D * sizeof(float));
    }
}

/* The index of the head planned for this class count (planned now in every lane if new), or -1
 * with err set. */
static int ensure_head(infer_ctx *ic, int classes, tt_err *err) {
    for (int i = 0; i < ic->n_heads; i++)
        if (ic->head_classes[i] == classes) return i;
    if (ic->n_heads == INFER_MAX_HEADS)
        return tt_fail(err, TT_EINTERNAL, "more than %d distinct class counts", INFER_MAX_HEADS);
    int h = ic->n_heads;
    for (int l = 0; l < ic->lanes; l++) {
        infer_lane *ln = &ic->lane[l];
        if (classes > ic->logits_classes) {
            float *z = tt_calloc_aligned((size_t)ic->lane_batch * classes, sizeof(float), err);
            if (!z) goto fail;
            free(ln->logits);
            ln->logits = z;
        }
        int threads = vit_lanes_planning_begin(ic->lanes);
        int rc = vit_head_init(&ln->heads[h], ln->d, &ic->cfg, ic->lane_batch, classes, err);
        vit_lanes_planning_end(threads);
        if (rc) goto fail;
    }
    if (classes > ic->logits_classes) ic->logits_classes = classes;
    ic->head_classes[ic->n_heads++] = classes;
    return h;
fail:
    /* undo heads[h] in every lane (n_heads stays); a lane's enlarged logits buffer is harmless, and
     * logits_classes keeps the size that every lane has */
    for (int l = 0; l < ic->lanes; l++) vit_head_free(&ic->lane[l].heads[h]);
    return -1;
}

int infer_plan_heads(infer_ctx *ic, const int *classes, int n, tt_err *err) {
    for (int i = 0; i < n; i++)
        if (ensure_head(ic, classes[i], err) < 0) return -1;
    return 0;
}

int infer_logits(infer_ctx *ic, const vit_weights *w, const float *head_W, const float *head_b, int classes,
                 const uint8_t *pixels, int n, const infer_norm *nm, float *logits, tt_err *err) {
    int h = ensure_head(ic, classes, err);
    if (h < 0) return -1;
    size_t img = (size_t)ic->cfg.channels * ic->cfg.image_size * ic->cfg.image_size;
    for (int i0 = 0; i0 < n; i0 += ic->batch) {
        int k = n - i0 < ic->batch ? n - i0 : ic->batch;
        reuse_weights(ic, i0 > 0); /* one model for the whole call: a bf16 plan converts it once */
        run_pass(ic, w, pixels + (size_t)i0 * img, k, nm, h, head_W, head_b);
        for (int l = 0; l < ic->lanes; l++)
            memcpy(logits + ((size_t)i0 + (size_t)l * ic->lane_batch) * classes, ic->lane[l].logits,
                   (size_t)lane_count(ic, l, k) * classes * sizeof(float));
    }
    return 0;
}

double infer_accuracy(const float *logits, const int32_t *labels, int n, int classes) {
    if (n <= 0) return 0;
    int correct = 0;
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * classes;
        int best = 0;
        for (int c = 1; c < classes; c++)
            if (z[c] > z[best]) best = c;
        correct += best == labels[i];
    }
    return 100.0 * correct / n;
}

int infer_accuracy_sharded(infer_ctx *ic, const vit_weights *w, const float *head_W, const float *head_b, int classes,
                           const uint8_t *pixels, const int32_t *labels, int n, const infer_norm *nm,
                           float *logits, double *acc, tt_err *err) {
    int R = par_size(), me = par_rank();
    if (R == 1) {
        if (infer_logits(ic, w, head_W, head_b, classes, pixels, n, nm, logits, err)) return -1;
        *acc = infer_accuracy(logits, labels, n, classes);
        return 0;
    }
    size_t lo, hi, img = (size_t)ic->cfg.channels * ic->cfg.image_size * ic->cfg.image_size;
    par_share((size_t)n, me, R, &lo, &hi);
    float *mine = logits + lo * (size_t)classes;
    int64_t tally[2] = {0, 0}; /* correct, ranks that failed */
    bool failed = infer_logits(ic, w, head_W, head_b, classes, pixels + lo * img, (int)(hi - lo), nm, mine, err);
    if (failed)
        tally[1] = 1;
    else
        for (size_t i = lo; i < hi; i++) {
            const float *z = logits + i * (size_t)classes;
            int best = 0; /* the argmax rule of infer_accuracy: the first of equal maxima */
            for (int c = 1; c < classes; c++)
                if (z[c] > z[best]) best = c;
            tally[0] += best == labels[i];
        }
    par_sum_i64(tally, 2);
    if (tally[1]) return failed ? -1 : tt_fail(err, TT_EINTERNAL, "evaluation failed on another rank");
    size_t counts[64], *cnt = R <= 64 ? counts : malloc((size_t)R * sizeof(size_t));
    if (!cnt) par_fatal("out of memory");
    for (int r = 0; r < R; r++) {
        size_t a, b;
        par_share((size_t)n, r, R, &a, &b);
        cnt[r] = (b - a) * (size_t)classes;
    }
    par_gatherv_f32(logits, cnt);
    if (cnt != counts) free(cnt);
    *acc = n > 0 ? 100.0 * (double)tally[0] / n : 0;
    return 0;
}
