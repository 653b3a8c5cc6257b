/* lanes.h — batch-parallel forward+backward of a ViT: one lane per OpenMP thread.
 *
 * A narrow model's ops are too small to split between threads: a vision8 AdaMerging step spent
 * ~16% of its time in OpenMP barriers, and 2 lanes made it 15-20% faster on 2 threads (45 -> 37-40
 * ms). A lane runs its slice of the batch through the whole network on its own
 * thread, with its own vit_plan, oneDNN stream and gradient buffer; nested OpenMP regions in
 * the ops and oneDNN's kernels then run single-threaded. After the backward the lanes'
 * gradients are added into the caller's, lane by lane in a fixed order.
 *
 *   vit_lanes vl; vit_lanes_init(&vl, d, &cfg, &lay, 128, 0, NULL, &e);   // 0: vit_lanes_auto
 *   vit_lanes_forward(&vl, &w, images, features);       // images [128,C,S,S] -> features [128,D]
 *   vit_lanes_backward(&vl, &w, &g, dfeatures);         // g's non-NULL members += dL/dθ
 *   vit_lanes_free(&vl);
 * With one lane this is exactly vit_forward/vit_backward on one plan of the whole batch.
 *
 * Numerics: every image's forward is computed as with one plan (each lane plans its own batch,
 * so oneDNN may block a matmul differently: last-bit differences), and a weight gradient is the
 * sum of per-lane sums over the batch instead of one sum: results differ from one lane by
 * rounding, and are deterministic for a fixed lane count.
 * Ownership: the caller owns d, the weights, the images and every array passed in; vit_lanes
 * owns the lane plans, the other lanes' engines and their gradient buffers.
 */
#ifndef TT_LANES_H
#define TT_LANES_H

#include <stdbool.h>

#include "core/vit.h"

#define VIT_LANES_MAX 8
/* Wider models keep one lane whose ops are parallel inside: on ViT-B/32's width, 2 lanes were
 * neutral for an AdaMerging step (64 images per lane: 4.46-4.66 s vs 4.49-4.72 s) and 7% slower
 * for a forward+backward of 16 images per lane (583 vs 543 ms), on a 2-core AVX-512 VM. */
#define VIT_LANES_MAX_WIDTH 128
/* a lane's slice at least: below this oneDNN's kernels are short of rows to block */
#define VIT_LANES_MIN_BATCH 16

typedef struct vit_lanes {
    int lanes;      /* 1..VIT_LANES_MAX */
    int batch;      /* images per call, lanes * lane_batch */
    int lane_batch;
    size_t image_floats; /* C*S*S */
    int output_dim;
    const vit_layout *lay;
    bool *trainable;                   /* [lay->count] the tensors a lane's gradient buffer holds */
    size_t *grad_offset;               /* [lay->count] where tensor i sits in that buffer */
    dnn *d[VIT_LANES_MAX];             /* lane 0: the caller's engine */
    vit_plan *plan[VIT_LANES_MAX];
    float *grad[VIT_LANES_MAX];        /* lanes >= 1: packed gradients, zero between calls */
    vit_weights g[VIT_LANES_MAX];      /* lanes >= 1: members re-pointed per backward */
} vit_lanes;

/* The lane count for this model and batch with the current OpenMP threads: one lane per thread
 * when the model is at most VIT_LANES_MAX_WIDTH wide, there are at most VIT_LANES_MAX threads,
 * each gets VIT_LANES_MIN_BATCH images or more, and the batch divides evenly; else 1 (a many-core
 * machine keeps its threads inside the ops). */
int vit_lanes_auto(const vit_config *cfg, int batch);

/* Plan what a lane runs (vit_plan, vit_head) between these two: with more than one lane, oneDNN
 * then plans for the one thread that runs it. A plan made for 2 threads and run inside a lane
 * (where oneDNN runs single-threaded) gave NaN gradients now and then with oneDNN 2.6: a backward
 * primitive planned for per-thread partial sums read the partials of a thread that never ran.
 *   int t = vit_lanes_planning_begin(lanes); plan = vit_plan_create(...); vit_lanes_planning_end(t); */
int vit_lanes_planning_begin(int lanes); /* returns the OpenMP thread count to restore */
void vit_lanes_planning_end(int threads);

/* lanes = 0: vit_lanes_auto(batch); otherwise lanes must divide batch. trainable (optional,
 * [lay->count]) names the tensors that backward may be asked for (NULL: all); lay must outlive vl. */
int vit_lanes_init(vit_lanes *vl, dnn *d, const vit_config *cfg, const vit_layout *lay, int batch, int lanes,
                   const bool *trainable, tt_err *err);
void vit_lanes_free(vit_lanes *vl);

/* images [batch,C,S,S] (normalised) -> features [batch,D]; saves activations for backward. */
void vit_lanes_forward(vit_lanes *vl, const vit_weights *w, const float *images, float *features);
/* vit_plan_reuse_weights on every lane's plan: the next forward's weights are unchanged (bf16 plans). */
void vit_lanes_reuse_weights(vit_lanes *vl, bool reuse);
/* g's non-NULL members (each must be trainable at init) += dL/dθ for the batch of the last
 * forward, given dfeatures [batch,D]. */
void vit_lanes_backward(vit_lanes *vl, const vit_weights *w, const vit_weights *g, const float *dfeatures);

#endif
