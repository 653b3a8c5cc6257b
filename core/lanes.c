/* lanes.c — see lanes.h. */
#include "core/lanes.h"

#include <omp.h>
#include <string.h>

#include "core/arena.h"

int vit_lanes_auto(const vit_config *cfg, int batch) {
    int t = omp_get_max_threads();
    if (cfg->width > VIT_LANES_MAX_WIDTH) return 1;
    /* inside a parallel region, or with nested parallelism on, the lanes would not get a thread
     * each (or would oversubscribe the cores) */
    if (t <= 1 || t > VIT_LANES_MAX || omp_in_parallel() || omp_get_max_active_levels() > 1) return 1;
    if (batch % t || batch / t < VIT_LANES_MIN_BATCH) return 1;
    return t;
}

int vit_lanes_planning_begin(int lanes) {
    int threads = omp_get_max_threads();
    if (lanes > 1) omp_set_num_threads(1);
    return threads;
}

void vit_lanes_planning_end(int threads) { omp_set_num_threads(threads); }

int vit_lanes_init(vit_lanes *vl, dnn *d, const vit_config *cfg, const vit_layout *lay, int batch, int lanes,
                   const bool *trainable, tt_err *err) {
    memset(vl, 0, sizeof *vl);
    if (lanes <= 0) lanes = vit_lanes_auto(cfg, batch);
    if (lanes > VIT_LANES_MAX || batch % lanes)
        return tt_fail(err, TT_EINPUT, "%d lanes for a batch of %d: at most %d lanes that divide the batch", lanes,
                       batch, VIT_LANES_MAX);
    vl->lanes = lanes;
    vl->batch = batch;
    vl->lane_batch = batch / lanes;
    vl->lay = lay;
    vl->image_floats = (size_t)cfg->channels * cfg->image_size * cfg->image_size;
    vl->output_dim = cfg->output_dim;
    vl->trainable = calloc((size_t)lay->count, sizeof(bool));
    vl->grad_offset = calloc((size_t)lay->count, sizeof(size_t));
    if (!vl->trainable || !vl->grad_offset) {
        tt_fail(err, TT_ENOMEM, "out of memory (lanes)");
        goto fail;
    }
    size_t packed = 0; /* the trainable tensors only, each 64-byte aligned as in the layout */
    for (int i = 0; i < lay->count; i++) {
        vl->trainable[i] = !trainable || trainable[i];
        vl->grad_offset[i] = packed;
        if (vl->trainable[i]) packed += (lay->t[i].numel + 15) / 16 * 16;
    }
    for (int l = 0; l < lanes; l++) {
        /* a stream per lane: oneDNN streams are not to be shared between threads */
        if (l == 0) vl->d[0] = d;
        else if (dnn_create_like(&vl->d[l], d, err)) goto fail;
        int threads = vit_lanes_planning_begin(lanes);
        vl->plan[l] = vit_plan_create(vl->d[l], cfg, vl->lane_batch, err);
        vit_lanes_planning_end(threads);
        if (!vl->plan[l]) goto fail;
        if (l == 0) continue;
        if (!(vl->grad[l] = tt_calloc_aligned(packed ? packed : 1, sizeof(float), err)) ||
            vit_weights_bind(&vl->g[l], lay, vl->grad[l], vl->trainable, err))
            goto fail;
    }
    return 0;
fail:
    vit_lanes_free(vl);
    return -1;
}

void vit_lanes_free(vit_lanes *vl) {
    for (int l = 0; l < vl->lanes; l++) {
        vit_plan_free(vl->plan[l]);
        if (l == 0) continue;
        vit_weights_free(&vl->g[l]);
        free(vl->grad[l]);
        dnn_free(vl->d[l]);
    }
    free(vl->trainable);
    free(vl->grad_offset);
    memset(vl, 0, sizeof *vl);
}

void vit_lanes_reuse_weights(vit_lanes *vl, bool reuse) {
    for (int l = 0; l < vl->lanes; l++) vit_plan_reuse_weights(vl->plan[l], reuse);
}

void vit_lanes_forward(vit_lanes *vl, const vit_weights *w, const float *images, float *features) {
    if (vl->lanes == 1) {
        vit_forward(vl->plan[0], w, images, features);
        return;
    }
    size_t img = vl->image_floats * (size_t)vl->lane_batch, feat = (size_t)vl->output_dim * vl->lane_batch;
#pragma omp parallel for schedule(static, 1) num_threads(vl->lanes)
    for (int l = 0; l < vl->lanes; l++) vit_forward(vl->plan[l], w, images + l * img, features + l * feat);
}

/* Lane l's gradient struct asks for what the caller's g asks for, in the lane's own buffer. */
static void point_lane_grads(vit_lanes *vl, int l, const vit_weights *g) {
    vit_weights asked = *g; /* a copy to read g's members by layout index */
    for (int i = 0; i < vl->lay->count; i++) {
        bool want = *vit_weights_slot(&asked, i) != NULL;
        TT_ASSERT(!want || vl->trainable[i]);
        *vit_weights_slot(&vl->g[l], i) = want ? vl->grad[l] + vl->grad_offset[i] : NULL;
    }
}

/* g += lane l's gradients, and the lane's buffer back to zero, in one pass per tensor. */
static void add_lane_grads(vit_lanes *vl, int l, const vit_weights *g) {
    vit_weights dst = *g;
    for (int i = 0; i < vl->lay->count; i++) {
        float *out = *vit_weights_slot(&dst, i);
        if (!out) continue;
        float *in = vl->grad[l] + vl->grad_offset[i];
        size_t n = vl->lay->t[i].numel;
#pragma omp parallel for schedule(static) if (n > 65536)
        for (size_t j = 0; j < n; j++) {
            out[j] += in[j];
            in[j] = 0;
        }
    }
}

void vit_lanes_backward(vit_lanes *vl, const vit_weights *w, const vit_weights *g, const float *dfeatures) {
    if (vl->lanes == 1) {
        vit_backward(vl->plan[0], w, g, dfeatures);
        return;
    }
    for (int l = 1; l < vl->lanes; l++) point_lane_grads(vl, l, g);
    size_t feat = (size_t)vl->output_dim * vl->lane_batch;
    /* lane 0 adds into the caller's gradients directly, the others into their own */
#pragma omp parallel for schedule(static, 1) num_threads(vl->lanes)
    for (int l = 0; l < vl->lanes; l++) vit_backward(vl->plan[l], w, l == 0 ? g : &vl->g[l], dfeatures + l * feat);
    for (int l = 1; l < vl->lanes; l++) add_lane_grads(vl, l, g); /* in lane order: the same bits every run */
}
