/* disentangle.c — weight disentanglement error of a suite's task vectors (Ortiz-Jiménez et al.
 * 2023, "Task Arithmetic in the Tangent Space"; methods.md §10):
 *   ξ(α1, α2) = Σ_{t∈{1,2}} E_{x~task t} 1{ argmax f(x; θ0 + α_t τ_t) ≠ argmax f(x; θ0 + α1 τ1 + α2 τ2) }
 * (each task with its own head), averaged over every task pair and the grid α ∈ {0.25, 0.5,
 * 0.75, 1}². 0 means adding the other task's vector never changes a task's predictions.
 *
 *   disentangle SUITE_DIR [MODE] [N_PER_TASK]     MODE: full | attn-linear (default: the first built)
 * Prints one CSV row per pair and grid point, then the mean (stdout).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/infer.h"
#include "data/suite.h"

static const float alphas[] = {0.25f, 0.5f, 0.75f, 1.0f};
enum { N_ALPHA = sizeof alphas / sizeof alphas[0] };

typedef struct ctx {
    suite s;
    ckpt_vit pre, work;
    float *tv;     /* [K][total] */
    vit_weights w; /* bound to work.params */
    infer_ctx ic;
    float *logits;
    int n;         /* images per task */
} ctx;

static void predict(ctx *c, int task, int *pred) {
    const suite_task_info *ti = &c->s.tasks[task];
    tt_err e;
    TT_ASSERT(infer_logits(&c->ic, &c->w, ti->head.W, ti->head.b, ti->classes, ti->test.pixels, c->n, &c->s.norm, c->logits, &e) == 0);
    for (int i = 0; i < c->n; i++) {
        const float *z = c->logits + (size_t)i * ti->classes;
        int best = 0;
        for (int k = 1; k < ti->classes; k++)
            if (z[k] > z[best]) best = k;
        pred[i] = best;
    }
}

/* work = θ0 + a1 τ_i (+ a2 τ_j when j >= 0) */
static void compose(ctx *c, int i, float a1, int j, float a2) {
    size_t total = c->pre.lay.total;
    const float *ti = c->tv + (size_t)i * total, *tj = j >= 0 ? c->tv + (size_t)j * total : NULL;
    for (size_t p = 0; p < total; p++) c->work.params[p] = c->pre.params[p] + a1 * ti[p] + (tj ? a2 * tj[p] : 0.f);
}

static double disagreement(const int *a, const int *b, int n) {
    int d = 0;
    for (int i = 0; i < n; i++) d += a[i] != b[i];
    return (double)d / n;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: disentangle SUITE_DIR [MODE] [N_PER_TASK]\n");
        return 2;
    }
    ctx c = {0};
    tt_err e = {0};
    dnn *d;
    if (suite_open(&c.s, argv[1], argc > 2 ? argv[2] : NULL, &e) || ckpt_load_vit(&c.pre, c.s.pretrained, &e) ||
        ckpt_vit_alloc(&c.work, &c.s.cfg, &e) || dnn_create(&d, &e))
        return fprintf(stderr, "disentangle: %s\n", e.msg), 2;
    int K = c.s.n_tasks, maxc = 0;
    c.n = argc > 3 ? atoi(argv[3]) : 500;
    for (int k = 0; k < K; k++) {
        if (c.s.tasks[k].test.n < c.n) c.n = c.s.tasks[k].test.n;
        maxc = c.s.tasks[k].classes > maxc ? c.s.tasks[k].classes : maxc;
    }
    size_t total = c.pre.lay.total;
    c.tv = tt_calloc_aligned((size_t)K * total, sizeof(float), &e);
    c.logits = tt_calloc_aligned((size_t)c.n * maxc, sizeof(float), &e);
    if (!c.tv || !c.logits || infer_init(&c.ic, d, &c.s.cfg, 250, &e) ||
        vit_weights_bind(&c.w, &c.work.lay, c.work.params, NULL, &e))
        return fprintf(stderr, "disentangle: %s\n", e.msg), 3;
    for (int k = 0; k < K; k++) {
        ckpt_vit ft;
        if (ckpt_load_vit(&ft, c.s.tasks[k].finetuned, &e)) return fprintf(stderr, "disentangle: %s\n", e.msg), 2;
        for (size_t p = 0; p < total; p++) c.tv[(size_t)k * total + p] = ft.params[p] - c.pre.params[p];
        ckpt_vit_free(&ft);
    }
    /* single-task predictions: solo[k][a] on task k's inputs */
    int *solo = malloc((size_t)K * N_ALPHA * c.n * sizeof(int)), *joint = malloc((size_t)c.n * sizeof(int));
    for (int k = 0; k < K; k++)
        for (int a = 0; a < N_ALPHA; a++) {
            compose(&c, k, alphas[a], -1, 0);
            predict(&c, k, solo + ((size_t)k * N_ALPHA + a) * c.n);
        }
    printf("mode,task1,task2,alpha1,alpha2,xi\n");
    double sum = 0;
    int count = 0;
    for (int i = 0; i < K; i++)
        for (int j = i + 1; j < K; j++)
            for (int a1 = 0; a1 < N_ALPHA; a1++)
                for (int a2 = 0; a2 < N_ALPHA; a2++) {
                    compose(&c, i, alphas[a1], j, alphas[a2]);
                    predict(&c, i, joint);
                    double xi = disagreement(joint, solo + ((size_t)i * N_ALPHA + a1) * c.n, c.n);
                    predict(&c, j, joint);
                    xi += disagreement(joint, solo + ((size_t)j * N_ALPHA + a2) * c.n, c.n);
                    printf("%s,%s,%s,%.2f,%.2f,%.4f\n", c.s.mode, c.s.tasks[i].name, c.s.tasks[j].name, (double)alphas[a1],
                           (double)alphas[a2], xi);
                    sum += xi;
                    count++;
                }
    fprintf(stderr, "disentangle: %s mode %s: mean xi %.4f over %d task pairs x %d grid points, %d images per task\n",
            c.s.name, c.s.mode, sum / count, K * (K - 1) / 2, N_ALPHA * N_ALPHA, c.n);
    free(solo);
    free(joint);
    free(c.tv);
    free(c.logits);
    infer_free(&c.ic);
    vit_weights_free(&c.w);
    ckpt_vit_free(&c.pre);
    ckpt_vit_free(&c.work);
    suite_close(&c.s);
    dnn_free(d);
    return 0;
}
