/* clip_text.h — CLIP's text tower, forward only, on the image tower's oneDNN ops (core/ops.h).
 *
 * features = text_projection(ln_final(x[eot])) where x = blocks(token_embedding[ids] + pos):
 * the same pre-LN blocks as the image tower (x += out(attn(ln_1 x)); x += c_proj(act(c_fc(ln_2 x))))
 * with a causal mask (token t sees tokens <= t), and the pooled token of each row is the position of
 * its largest id (open_clip's and OpenAI's `text.argmax(-1)`: the end-of-text token is the largest id,
 * the first one when padding repeats it). Hugging Face's CLIPTextTransformer picks the same token for
 * CLIP's ids: with eos_token_id 2 (the openai configs) it takes the argmax; otherwise the first id equal
 * to eos_token_id (49407), which is that argmax whenever the end-of-text token is the largest id.
 *
 * Checkpoints (read through core/tensorset.h, block names through core/clipmap.h's rows):
 *   - Hugging Face CLIPModel: text_model.embeddings.{token_embedding,position_embedding}.weight,
 *     text_model.encoder.layers.{i}.* (q/k/v_proj fused here into in_proj), text_model.final_layer_norm.*,
 *     text_projection.weight [D, w], logit_scale; config.json's text_config gives hidden_act,
 *     layer_norm_eps and num_attention_heads when the directory has one.
 *   - open_clip / OpenAI state dicts (unprefixed, or under "model."): token_embedding.weight,
 *     positional_embedding, transformer.resblocks.{i}.*, ln_final.*, text_projection [w, D] (x @ W),
 *     logit_scale; open_clip_config.json's model_cfg.quick_gelu and text_cfg.heads when present.
 * Otherwise heads = width / 64 (CLIP's text towers), act quick_gelu (OpenAI's weights), eps 1e-5;
 * ct_opts.act overrides. Every tensor is read to f32 at open (ViT-B/32's text tower: 63 M floats).
 *
 *   ct_model m; ct_open(&m, "clip-vit-base-patch32/", NULL, &e);
 *   ct_plan *p = ct_plan_create(d, &m.cfg, 64, 16, &e);   // 64 prompts of up to 16 tokens
 *   ct_forward(p, &m, ids, features);                      // ids [64, 16] -> features [64, D]
 *   ct_plan_free(p); ct_close(&m);
 *
 * Ownership: ct_model owns its weights (ct_close); the plan owns its ops and buffers. Deterministic
 * for a fixed thread count.
 */
#ifndef TT_CLIP_TEXT_H
#define TT_CLIP_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/clipmap.h"
#include "core/vit.h"

typedef struct ct_config {
    int vocab;        /* rows of the token embedding (49408) */
    int context;      /* positions (77) */
    int width;        /* 512 */
    int layers;       /* 12 */
    int heads;        /* 8 */
    int mlp;          /* 2048 */
    int output_dim;   /* 512 */
    op_act_kind act;
    float ln_eps;
} ct_config;

typedef struct ct_opts {
    int act; /* CM_ACT_AUTO or an op_act_kind that overrides the files */
} ct_opts;

typedef struct ct_model {
    cm_format format;  /* CM_HF or CM_OPEN_CLIP */
    ct_config cfg;
    float *tok;        /* [vocab, w] */
    float *pos;        /* [context, w] */
    vit_block_weights *blocks; /* [layers], pointing into the weights buffer */
    float *ln_final_g, *ln_final_b;
    float *proj;       /* [D, w]: nn.Linear's layout (open_clip's [w, D] transposed at read) */
    bool has_logit_scale;
    float logit_scale; /* the checkpoint's logit_scale (a log: the logits use exp of it) */
    float *buf;        /* every tensor above, owned */
} ct_model;

int ct_open(ct_model *m, const char *path, const ct_opts *o, tt_err *err);
void ct_close(ct_model *m);

/* ---- configuration files, parsed on their own (fuzz/fuzz_clip_json.c drives these) ----
 * Each sets only what its file says: Hugging Face config.json's text_config (or legacy
 * text_config_dict): num_attention_heads -> heads, hidden_act (quick_gelu|gelu) -> act,
 * layer_norm_eps -> ln_eps; open_clip_config.json: model_cfg.quick_gelu (absent: gelu) -> act,
 * model_cfg.text_cfg.heads -> heads. Errors start with "PATH: ". */
int ct_hf_text_config_parse(ct_config *c, const char *text, size_t len, const char *path, tt_err *err);
int ct_open_clip_text_config_parse(ct_config *c, const char *text, size_t len, const char *path, tt_err *err);

/* The pooled position of one row of ids [n]: the first position of the largest id. */
int ct_eot_position(const int32_t *ids, int n);

typedef struct ct_plan ct_plan;
/* A forward for `batch` rows of `tokens` ids each (1 <= tokens <= cfg->context). Because of the causal
 * mask a row's features depend only on its ids up to its end-of-text token: rows cut after the last
 * end-of-text token of the batch give the features of the full context. */
ct_plan *ct_plan_create(dnn *d, const ct_config *cfg, int batch, int tokens, tt_err *err);
void ct_plan_free(ct_plan *p);
int ct_plan_batch(const ct_plan *p);
int ct_plan_tokens(const ct_plan *p);
/* ids [batch, tokens], each in [0, cfg.vocab) (the caller checks) -> features [batch, D]. */
void ct_forward(ct_plan *p, const ct_model *m, const int32_t *ids, float *features);
/* Floating-point operations of one forward (multiply-add = 2). */
double ct_forward_flops(const ct_config *cfg, int batch, int tokens);

#endif
