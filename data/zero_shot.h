/* zero_shot.h — CLIP zero-shot classification heads from class names and prompt templates.
 *
 * As task_vectors' build_classification_head and FusionBench's set_classification_task do it: for
 * each class, every template is filled with the class name ("{}" replaced, suites/clip/README.md),
 * tokenised (data/clip_tokenizer.h), encoded by the text tower (core/clip_text.h), L2-normalised;
 * the template vectors are averaged and the mean normalised again. The head is the stack of these
 * rows [classes, D]; the logit scale is exp(logit_scale) of the checkpoint, kept apart (not folded
 * into the rows, as FusionBench), so that logits = exp(logit_scale) · (f/‖f‖) · Wᵀ with f the image
 * features: CLIP's logits_per_image.
 *
 * The two files are read by data/prompt_files.h (one entry per line; errors name FILE:LINE).
 *
 *   zs_head h;
 *   if (zs_head_build("clip-vit-base-patch32/", "suites/clip/sun397/classnames.txt",
 *                     "suites/clip/sun397/templates.txt", 2, &h, &e)) ...;
 *   zs_head_save(&h, "sun397_head.safetensors", &e);   // head.weight, head.bias = 0, ttmerge.head
 *   zs_head_free(&h);
 *
 * Ownership: zs_head owns weight and prompt_features (zs_head_free).
 */
#ifndef TT_ZERO_SHOT_H
#define TT_ZERO_SHOT_H

#include <stdbool.h>

#include "core/err.h"

#define ZS_BATCH 64 /* prompts per text forward by default */

typedef struct zs_head {
    int n_classes, dim;
    float *weight;     /* [n_classes, dim], unit rows */
    float logit_scale; /* exp(the checkpoint's logit_scale) */
    int n_prompts;            /* n_classes x templates */
    float *prompt_features;   /* [n_prompts, dim] text features (class-major), when zs_opts.keep_features */
    double encode_seconds;    /* wall time of the text tower's forwards (plans included) */
} zs_head;

typedef struct zs_opts {
    const char *vocab; /* tokenizer (tok_load's PATH); NULL: the model's directory */
    int threads;       /* OpenMP threads while building; 0: as set */
    int batch;         /* prompts per forward; 0: ZS_BATCH */
    int act;           /* CM_ACT_AUTO (-1) or an op_act_kind overriding the checkpoint's files */
    bool progress;     /* a progress line on stderr */
    bool keep_features; /* keep every prompt's text features in zs_head.prompt_features */
} zs_opts;

/* The head of CLIP model clip_model (a Hugging Face CLIPModel directory or file, or an open_clip
 * state dict: core/clip_text.h) for the classes and templates files; the tokenizer is looked up in
 * the model's directory (vocab.json + merges.txt, or bpe_simple_vocab_16e6.txt.gz). */
int zs_head_build(const char *clip_model, const char *classes_file, const char *templates_file, int threads,
                  zs_head *out, tt_err *err);
/* The same with options (o may be NULL). */
int zs_head_build_opts(const char *clip_model, const char *classes_file, const char *templates_file,
                       const zs_opts *o, zs_head *out, tt_err *err);
void zs_head_free(zs_head *h);

/* The head file `ttmerge eval --head` reads: head.weight, head.bias = 0, and ttmerge.head =
 * {"normalize_features": true, "logit_scale": s} (core/checkpoint.h). Atomic. */
int zs_head_save(const zs_head *h, const char *path, tt_err *err);

#endif
