/* transform.h — task transforms: turn a source split into a task's images and labels.
 *
 *   ds_images sub = {0}, task_train = {0};
 *   uint64_t s = tf_seed(spec.seed, task->name, "train");
 *   if (tf_subsample(&split.train, task->train ? task->train : split.train.n, s, &sub, &e) ||
 *       tf_apply_task(task, src->classes, &sub, s, &task_train, &e)) ...;
 *   ds_images_free(&sub); ... ds_images_free(&task_train);
 *
 * tf_apply_task copies `in`, applies task->tf[0..n_tf-1] in order to every image, then the
 * label map. Pixel conventions (uint8, every channel alike; rows top to bottom, columns left
 * to right; "clockwise" as seen on screen):
 *   invert   x -> 255 - x
 *   rot90    90° clockwise, out[i][j] = in[n-1-j][i]  == numpy.rot90(x, k=-1)   (square only)
 *   rot180   out[i][j] = in[h-1-i][w-1-j]             == numpy.rot90(x, k=2)
 *   rot270   270° clockwise, out[i][j] = in[j][n-1-i] == numpy.rot90(x, k=1)    (square only)
 *   hflip    out[i][j] = in[i][w-1-j] (mirror left-right)
 *   vflip    out[i][j] = in[h-1-i][j] (mirror top-bottom)
 *   noise    x + param·255·N(0,1), clipped to [0, 255], rounded half up
 *   rotate   by param degrees clockwise about the image centre ((h-1)/2, (w-1)/2): each output
 *            pixel samples the input bilinearly at the inversely rotated position, pixels
 *            outside the input count as 0, result rounded half up. Multiples of 90° use exact
 *            sin/cos, so rotate 90 equals rot90 pixel for pixel on square images.
 *   rotpred  draw r in {0,1,2,3} uniformly, rotate r·90° clockwise (as rot90 r times),
 *            label := r (the task then has 4 classes)                             (square only)
 * Label maps (after the transforms; input labels must lie in [0, source_classes)):
 *   identity y;  parity y % 2;  coarse y / (source_classes / task->classes).
 *
 * Randomness (noise, rotpred) comes from one rng per image seeded from (seed, image index),
 * so results do not depend on the thread count; images are processed in parallel (OpenMP).
 *
 * Ownership: out is filled by these functions (zeroed first, left zeroed on failure); the
 * caller frees it with ds_images_free. */
#ifndef TT_TRANSFORM_H
#define TT_TRANSFORM_H

#include <stdint.h>

#include "core/err.h"
#include "data/dataset.h"
#include "data/suite_spec.h"

/* Apply the task's transforms and label map to a labeled image set. Errors (-1, TT_EINPUT):
 * unlabeled input, labels outside [0, source_classes), a 90°/270°/rotpred rotation of a
 * non-square image, a transform or label map the task cannot have (see suite_spec_validate). */
int tf_apply_task(const suite_task *task, int source_classes, const ds_images *in, uint64_t seed, ds_images *out,
                  tt_err *err);

/* out = k distinct images of in (with labels), the first k of a seeded permutation, in that
 * order. 0 <= k <= in->n. */
int tf_subsample(const ds_images *in, int k, uint64_t seed, ds_images *out, tt_err *err);

/* A seed for one task and split ("train", "val", "test") derived from the suite seed (hash of
 * both names), so that each task/split gets its own fixed noise and rotations. */
uint64_t tf_seed(uint64_t seed, const char *task, const char *split);

#endif
