/* suite.h — open a built suite directory (suite.json + data + heads + checkpoints).
 *
 *   suite s;
 *   if (suite_open(&s, "out/vision8", NULL, &e)) ...;      // NULL: the first fine-tuning mode
 *   for (int t = 0; t < s.n_tasks; t++) use(s.tasks[t].test, s.tasks[t].head, s.tasks[t].finetuned);
 *   suite_close(&s);
 * Validation and test splits and every head are loaded; train splits load on demand
 * (suite_load_train). Ownership: the suite owns everything it holds (suite_close).
 */
#ifndef TT_SUITE_H
#define TT_SUITE_H

#include "core/checkpoint.h"
#include "core/infer.h"
#include "data/dataset.h"

typedef struct suite_task_info {
    char name[64];
    int classes;
    ds_images val, test;
    ckpt_head head;
    char finetuned[1024];  /* path of this task's fine-tuned checkpoint (selected mode): in the suite, or
                            * the user's own file that an imported suite references */
    double zeroshot_val, zeroshot_test, finetuned_val, finetuned_test; /* from the manifest (%) */
} suite_task_info;

typedef struct suite {
    char dir[1024];
    char name[64];
    char mode[16];         /* fine-tuning mode of the `finetuned` paths: "full" or "attn-linear" */
    vit_config cfg;
    infer_norm norm;       /* input normalisation per channel (suite.json: numbers or per-channel lists) */
    char pretrained[1024]; /* suite.json "pretrained": relative to dir, or an absolute path */
    int n_tasks;
    suite_task_info *tasks;
} suite;

int suite_open(suite *s, const char *dir, const char *mode, tt_err *err);
void suite_close(suite *s);
int suite_find_task(const suite *s, const char *name); /* index or -1 */
/* The task's train split (caller frees with ds_images_free). */
int suite_load_train(const suite *s, int task, ds_images *out, tt_err *err);

#endif
