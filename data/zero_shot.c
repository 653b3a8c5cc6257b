/* zero_shot.c — see zero_shot.h. */
#define _POSIX_C_SOURCE 200809L
#include "data/zero_shot.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/arena.h"
#include "core/checkpoint.h"
#include "core/clip_text.h"
#include "core/fileio.h"
#include "core/progress.h"
#include "data/clip_tokenizer.h"
#include "data/prompt_files.h"

#define ZS_MAX_FILE (64u << 20)
#define PF_MAX_ENTRIES 1000000

/* ---- tokens --------------------------------------------------------------------------------- */

/* The tokenizer: o->vocab, else the model's directory. */
static int load_tokenizer(const char *model, const zs_opts *o, tok_bpe **t, tt_err *err) {
    struct stat sb;
    if (o->vocab) return tok_load(o->vocab, t, err);
    if (stat(model, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return tt_fail(err, TT_EINPUT, "%s: a single file holds no tokenizer: give its vocabulary (vocab.json + "
                       "merges.txt, or bpe_simple_vocab_16e6.txt.gz)", model);
    return tok_load(model, t, err);
}

/* rows [n, context] of every prompt (class-major: prompt c*K + k is template k of class c), and the
 * longest row in use (its end-of-text token included). */
static int tokenize_prompts(tok_bpe *t, const pf_lines *cls, const pf_lines *tpl, const ct_config *cfg,
                            const char *model, int32_t *rows, int *longest, tt_err *err) {
    int K = tpl->n, ctx = cfg->context;
    *longest = 1;
    if (tok_eot(t) != tok_vocab_size(t) - 1 || tok_vocab_size(t) > cfg->vocab)
        return tt_fail(err, TT_EINPUT, "%s: the tokenizer's %d ids (end-of-text %d) do not fit the text tower: it "
                       "needs at most %d ids with end-of-text the largest (CLIP pools at the largest id)", model,
                       (int)tok_vocab_size(t), (int)tok_eot(t), cfg->vocab);
    for (int c = 0; c < cls->n; c++)
        for (int k = 0; k < K; k++) {
            char *prompt = pf_fill(tpl->v[k], cls->v[c]);
            if (!prompt) return tt_fail(err, TT_ENOMEM, "out of memory (prompts)");
            int used = 0;
            int rc = tok_tokenize(t, prompt, strlen(prompt), ctx, 0, rows + ((size_t)c * K + k) * ctx, &used, err);
            if (rc) tt_prefix(err, "class %d (\"%.40s\"), template %d: ", c + 1, cls->v[c], k + 1);
            free(prompt);
            if (rc) return -1;
            if (used > *longest) *longest = used;
        }
    return 0;
}

/* ---- the head ------------------------------------------------------------------------------- */

/* features [n, D] of every prompt row, in batches of B rows cut to T tokens. */
static int encode_prompts(const ct_model *m, const int32_t *rows, int n, int T, int B, bool show, float *features,
                          tt_err *err) {
    const ct_config *c = &m->cfg;
    int D = c->output_dim;
    dnn *d = NULL;
    ct_plan *p = NULL;
    int32_t *ids = NULL;
    float *f = NULL;
    int rc = -1;
    if (B > n) B = n;
    if (dnn_create(&d, err) || !(p = ct_plan_create(d, c, B, T, err))) goto done;
    ids = calloc((size_t)B * T, sizeof *ids);
    f = tt_calloc_aligned((size_t)B * D, sizeof *f, err);
    if (!ids || !f) {
        if (!ids) tt_fail(err, TT_ENOMEM, "out of memory (prompt batch)");
        goto done;
    }
    progress pr;
    progress_start(&pr, "text tower", n, show);
    for (int i0 = 0; i0 < n; i0 += B) {
        int nb = n - i0 < B ? n - i0 : B;
        memset(ids, 0, (size_t)B * T * sizeof *ids); /* a last partial batch: rows of 0 */
        for (int r = 0; r < nb; r++)
            memcpy(ids + (size_t)r * T, rows + (size_t)(i0 + r) * c->context, (size_t)T * sizeof *ids);
        ct_forward(p, m, ids, f);
        memcpy(features + (size_t)i0 * D, f, (size_t)nb * D * sizeof *f);
        progress_update(&pr, i0 + nb, "prompts");
    }
    progress_end(&pr);
    rc = 0;
done:
    free(ids);
    free(f);
    ct_plan_free(p);
    dnn_free(d);
    return rc;
}

/* weight[c] = n(mean_k n(features[c*K + k])), n = L2 normalisation (in double) */
static int average_classes(const float *features, int C, int K, int D, float *weight, const char *model, tt_err *err) {
    double *acc = calloc((size_t)D, sizeof *acc);
    if (!acc) return tt_fail(err, TT_ENOMEM, "out of memory");
    for (int c = 0; c < C; c++) {
        memset(acc, 0, (size_t)D * sizeof *acc);
        for (int k = 0; k < K; k++) {
            const float *f = features + ((size_t)c * K + k) * D;
            double ss = 0;
            for (int j = 0; j < D; j++) ss += (double)f[j] * f[j];
            double inv = ss > 0 ? 1.0 / sqrt(ss) : 0;
            for (int j = 0; j < D; j++) acc[j] += f[j] * inv;
        }
        double ss = 0;
        for (int j = 0; j < D; j++) ss += (acc[j] / K) * (acc[j] / K);
        if (!(ss > 0) || !isfinite(ss)) {
            free(acc);
            return tt_fail(err, TT_ENUMERIC, "%s: the text features of class %d are %s", model, c + 1,
                           ss > 0 ? "not finite" : "zero");
        }
        double inv = 1.0 / sqrt(ss);
        for (int j = 0; j < D; j++) weight[(size_t)c * D + j] = (float)(acc[j] / K * inv);
    }
    free(acc);
    return 0;
}

int zs_head_build_opts(const char *model, const char *classes_file, const char *templates_file, const zs_opts *o,
                       zs_head *out, tt_err *err) {
    zs_opts dflt = {.act = CM_ACT_AUTO};
    if (!o) o = &dflt;
    memset(out, 0, sizeof *out);
    pf_lines cls = {0}, tpl = {0};
    tok_bpe *t = NULL;
    ct_model m = {0};
    int32_t *rows = NULL;
    float *features = NULL;
    int rc = -1, saved_threads = omp_get_max_threads();
    if (o->threads > 0) omp_set_num_threads(o->threads);
    ct_opts co = {.act = o->act};
    if (pf_lines_read(&cls, classes_file, false, err) || pf_lines_read(&tpl, templates_file, true, err) ||
        load_tokenizer(model, o, &t, err) || ct_open(&m, model, &co, err))
        goto done;
    if (!m.has_logit_scale || !isfinite(m.logit_scale) || !(expf(m.logit_scale) > 0) ||
        !(expf(m.logit_scale) < 1e6f)) {
        tt_fail(err, TT_EINPUT, "%s: %s", model, m.has_logit_scale ? "logit_scale is not a usable log-scale (exp in (0, 1e6))"
                                                              : "tensor logit_scale missing");
        goto done;
    }
    int C = cls.n, K = tpl.n, n = C * K, D = m.cfg.output_dim, longest;
    if ((long)C * K > PF_MAX_ENTRIES) {
        tt_fail(err, TT_EINPUT, "%s x %s: %d x %d prompts is too many", classes_file, templates_file, C, K);
        goto done;
    }
    rows = calloc((size_t)n * m.cfg.context, sizeof *rows);
    features = tt_calloc_aligned((size_t)n * D, sizeof *features, err);
    out->weight = tt_calloc_aligned((size_t)C * D, sizeof *out->weight, err);
    if (!rows || !features || !out->weight) {
        if (!rows) tt_fail(err, TT_ENOMEM, "out of memory (prompts)");
        goto done;
    }
    if (tokenize_prompts(t, &cls, &tpl, &m.cfg, model, rows, &longest, err)) goto done;
    double t0 = progress_now();
    if (encode_prompts(&m, rows, n, longest, o->batch > 0 ? o->batch : ZS_BATCH, o->progress, features, err))
        goto done;
    out->encode_seconds = progress_now() - t0;
    if (average_classes(features, C, K, D, out->weight, model, err)) goto done;
    out->n_classes = C;
    out->dim = D;
    out->logit_scale = expf(m.logit_scale);
    out->n_prompts = n;
    if (o->keep_features) {
        out->prompt_features = features;
        features = NULL;
    }
    rc = 0;
done:
    if (o->threads > 0) omp_set_num_threads(saved_threads);
    if (rc) zs_head_free(out);
    free(rows);
    free(features);
    ct_close(&m);
    tok_free(t);
    pf_lines_free(&cls);
    pf_lines_free(&tpl);
    return rc;
}

int zs_head_build(const char *model, const char *classes_file, const char *templates_file, int threads, zs_head *out,
                  tt_err *err) {
    zs_opts o = {.threads = threads, .act = CM_ACT_AUTO};
    return zs_head_build_opts(model, classes_file, templates_file, &o, out, err);
}

void zs_head_free(zs_head *h) {
    free(h->weight);
    free(h->prompt_features);
    memset(h, 0, sizeof *h);
}

int zs_head_save(const zs_head *h, const char *path, tt_err *err) {
    float *bias = calloc((size_t)h->n_classes, sizeof *bias);
    if (!bias) return tt_fail(err, TT_ENOMEM, "out of memory");
    ckpt_head ch = {.classes = h->n_classes, .dim = h->dim, .W = h->weight, .b = bias, .has_settings = true,
                    .normalize_features = true, .logit_scale = h->logit_scale};
    int rc = ckpt_save_head(&ch, path, err);
    free(bias);
    return rc;
}
