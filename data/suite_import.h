/* suite_import.h — `ttmerge suite build` of an imported suite (suite_spec.import.on): the
 * user's pretrained and fine-tuned checkpoints, heads and image folders become a suite
 * directory that every other verb reads (data/suite.h), with nothing trained.
 *
 * Steps:
 *   1. validate everything before writing anything: every checkpoint opens (memory-mapped,
 *      header only) and has the pretrained one's architecture; every head reads, with the
 *      model's output_dim; heads given as text (class names + templates) stop here: they need
 *      the text tower; every image list opens, its class count equals the head's, every file
 *      is readable; the preprocessing size is the model's;
 *   2. per task: carve or subsample the splits (seeded), decode each image once (CLIP's
 *      Resize + CenterCrop, data/image_set.h) into data/<task>/{train,val,test}-*.idx, copy the
 *      head to heads/<task>.safetensors;
 *   3. evaluate zero-shot (pretrained + head) and fine-tuned accuracies on val and test;
 *   4. write suite.json last (atomically). Checkpoints are not copied: suite.json holds their
 *      absolute paths ("pretrained", tasks[].finetuned.full), resolved when the suite opens.
 * The input normalisation is per channel: import.normalize given, or the checkpoint's own
 * config (HF preprocessor_config.json image_mean/image_std; open_clip_config.json
 * preprocess_cfg.mean/std), else CLIP's constants.
 * Deterministic for a fixed seed and thread count.
 */
#ifndef TT_SUITE_IMPORT_H
#define TT_SUITE_IMPORT_H

#include "data/suite_build.h"

int suite_import_build(const suite_spec *spec, const suite_build_opts *o, tt_err *err);

/* The normalisation of import.normalize for the checkpoint at `pretrained` (3 channels);
 * *source names where it came from ("given", "clip", or the config file's path). */
int suite_import_norm(const suite_import *im, const char *pretrained, float mean[3], float std[3], char *source,
                      size_t source_cap, tt_err *err);

#endif
