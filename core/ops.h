/* ops.h — neural-network ops with forward and backward, on oneDNN primitives.
 *
 * Conventions (llm.c style; the argument list is the whole contract):
 *   - all buffers are f32, row-major, shapes given in comments as [rows, cols];
 *   - forward writes its outputs (=) and whatever backward needs (mean/rstd, probs);
 *   - backward writes input gradients (dx =, overwritten) and ACCUMULATES parameter
 *     gradients (dw +=, db +=), so gradients of several batches can be summed;
 *     parameter-gradient pointers may be NULL to skip that work (frozen weights cost
 *     nothing); dx may be NULL only for linear and layer norm (elsewhere it is the output);
 *     op_linear_backward ignores db when the op has no bias;
 *   - ops that use oneDNN are planned once for their shape (op_*_init, may allocate)
 *     and run any number of times (never allocate); op_*_free releases the plan.
 * Every op has a naive reference in core/ops_ref.h used by the tests.
 */
#ifndef TT_OPS_H
#define TT_OPS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/dnn.h"

/* ---- linear: y[M,out] = x[M,in] . w[out,in]^T + b[out]  (PyTorch nn.Linear layout) ---- */
/* The MLP activations (op_act below, or fused into a forward linear). */
typedef enum op_act_kind { OP_ACT_GELU = 0, OP_ACT_QUICK_GELU = 1 } op_act_kind;

typedef struct op_linear {
    int M, in, out;
    bool has_bias;
    dnn_matmul *fwd;     /* y = x . w^T (+ b) */
    dnn_matmul *bwd_x;   /* dx = dy . w          (dx_transposed: dx^T = w^T . dy^T into t, transposed back) */
    dnn_matmul *bwd_w;   /* dw += dy^T . x       (wide_in: dw^T = x^T . dy into t, added transposed) */
    bool wide_in;        /* in is a large multiple of 1024 and > out (ViT MLP c_proj, ViT-B/32 conv1) */
    bool pack_w;         /* forward and dx ask for w packed (dnn_matmul_desc.pack_b) */
    bool dx_transposed;  /* wide_in with plain (unpacked) weights */
    float *t;            /* wide_in: [in, out] scratch ([in, max(M, out)] when dx_transposed) */
    size_t t_floats;     /* t's size (0 without t) */
    bool w_bf16;         /* planned on a bf16 engine: w is passed as bf16 (uint16_t, dnn_to_bf16), converted
                          * once by the caller; x, dy are f32 and converted by the matmuls */
} op_linear;
int op_linear_init(op_linear *op, dnn *d, int M, int in, int out, bool has_bias, tt_err *err);
/* Forward only (inference): the same forward primitive, nothing for backward; op_linear_backward
 * must not be called. */
int op_linear_init_forward(op_linear *op, dnn *d, int M, int in, int out, bool has_bias, tt_err *err);
/* What a forward-only linear fuses into its matmul as oneDNN post-ops (the inference plan):
 * add_to_y: y += x . w^T + b, the residual sum, with y holding the residual stream (each element
 * the same sum as op_add(y, y, x . w^T + b)); act: y = act(x . w^T + b) (op_act's function, the
 * same oneDNN eltwise code run inside the matmul instead of as a pass of its own over y). */
typedef struct op_linear_fusion {
    bool add_to_y;
    bool act;
    op_act_kind act_kind;
    /* On a bf16 engine (ignored in f32): x is passed in bf16 (x_bf16: another fused linear wrote it
     * with y_bf16), y is written in bf16 (y_bf16: not with add_to_y). Saves the f32 round trip and
     * the conversion of a product whose only reader is the next matmul (the MLP hidden). */
    bool x_bf16, y_bf16;
} op_linear_fusion;
int op_linear_init_forward_fused(op_linear *op, dnn *d, int M, int in, int out, bool has_bias, op_linear_fusion fuse,
                                 tt_err *err);
/* w: float [out,in], or its bf16 copy when op->w_bf16; x and y float, or bf16 where the fusion
 * said x_bf16 / y_bf16 on a bf16 engine. */
void op_linear_forward(op_linear *op, void *y, const void *x, const void *w, const float *b);
/* dx [M,in] (=, may be NULL), dw [out,in] (+=, may be NULL, always f32), db [out] (+=, may be NULL). */
void op_linear_backward(op_linear *op, float *dx, float *dw, float *db, const float *dy,
                        const float *x, const void *w);
void op_linear_free(op_linear *op);

/* ---- layer norm over the last dim: y = (x - mean) * rstd * g + b, biased variance ---- */
typedef struct op_layernorm {
    int M, C;
    float eps;
    dnnl_primitive_t fwd, bwd;
    dnnl_memory_t m_x, m_y, m_mean, m_var, m_g, m_b, m_dy, m_dx, m_dg, m_db;
    float *dg_tmp, *db_tmp; /* [C] oneDNN overwrites; we accumulate */
    dnn *d;
} op_layernorm;
int op_layernorm_init(op_layernorm *op, dnn *d, int M, int C, float eps, tt_err *err);
/* y [M,C]; mean, var [M] saved for backward. */
void op_layernorm_forward(op_layernorm *op, float *y, float *mean, float *var, const float *x,
                          const float *g, const float *b);
/* dx [M,C] (=, may be NULL only if dg/db are wanted alone), dg, db [C] (+=, may be NULL). */
void op_layernorm_backward(op_layernorm *op, float *dx, float *dg, float *db, const float *dy,
                           const float *x, const float *mean, const float *var, const float *g);
void op_layernorm_free(op_layernorm *op);

/* ---- activations: GELU (erf form) or QuickGELU x*sigmoid(1.702x), elementwise ---- */
typedef struct op_act {
    size_t n;
    op_act_kind kind;
    dnnl_primitive_t fwd, bwd;
    dnnl_memory_t m_x, m_y, m_dy, m_dx;
    dnn *d;
} op_act;
int op_act_init(op_act *op, dnn *d, size_t n, op_act_kind kind, tt_err *err);
void op_act_forward(op_act *op, float *y, const float *x);
void op_act_backward(op_act *op, float *dx, const float *dy, const float *x); /* dx = */
void op_act_free(op_act *op);

/* ---- softmax over the last dim of [rows, cols] ---- */
typedef struct op_softmax {
    int rows, cols;
    dnnl_primitive_t fwd;
    dnnl_memory_t m_x, m_y;
    dnn *d;
} op_softmax;
int op_softmax_init(op_softmax *op, dnn *d, int rows, int cols, tt_err *err);
void op_softmax_forward(op_softmax *op, float *y, const float *x);
/* dx = y * (dy - sum(dy*y)) — plain C + OpenMP (oneDNN 2.6 runs this on a ref kernel). */
void op_softmax_backward(int rows, int cols, float *dx, const float *dy, const float *y);
void op_softmax_free(op_softmax *op);

/* log-softmax over the last dim (plain C; used by the losses). */
void op_log_softmax(int rows, int cols, float *y, const float *x);

/* ---- multi-head scaled dot-product self-attention core (no projections) ----
 * qkv [B*T, 3*W]: per token q | k | v, each W = H*hd, head h at columns h*hd.. (nn.MultiheadAttention
 * in_proj order). out [B*T, W] = concat_h softmax(q_h k_h^T / sqrt(hd)) v_h. */
typedef struct op_attention {
    int B, T, W, H, hd;
    dnn_matmul *qk, *pv;          /* scores = q.k^T ; out_h = p.v */
    dnn_matmul *d_p, *d_v;        /* dp = dout_h . v^T ; dv = p^T . dout_h */
    dnn_matmul *d_q, *d_k;        /* dq = ds . k ; dk = ds^T . q */
    op_softmax softmax;
    float *q, *k, *v;             /* [B*H, T, hd] head-major copies (scratch; uint16_t when bf16) */
    float *o, *dq, *dk, *dv;      /* [B*H, T, hd] scratch */
    float *scores, *dscores;      /* [B*H, T, T] scratch */
    size_t scratch_floats;        /* the scratch above, in one allocation */
    bool causal;                  /* token t attends to tokens <= t only (CLIP's text tower) */
    bool strided;                 /* forward only: k, v read in place, q [B*T, W] scaled rows */
    bool bf16;                    /* with backward on a bf16 engine: q, k, v and d(out)'s copies hold bf16 */
} op_attention;
int op_attention_init(op_attention *op, dnn *d, int B, int T, int W, int H, tt_err *err);
/* Forward only (inference): the same products, no backward matmuls (op_attention_backward must not
 * be called). k and v are read in place from qkv and the heads' outputs written straight into out's
 * columns (strided matmuls, f32 or bf16), scratch only the scaled q and the scores. */
int op_attention_init_forward(op_attention *op, dnn *d, int B, int T, int W, int H, tt_err *err);
/* Causal masking (op_attention_set_causal): scores above the diagonal are -inf before the softmax,
 * as open_clip's build_causal_mask adds them, so their probabilities are exactly 0. */
void op_attention_set_causal(op_attention *op, bool causal);
/* probs [B*H, T, T] is saved for backward (softmax output). */
void op_attention_forward(op_attention *op, float *out, float *probs, const float *qkv);
/* dqkv [B*T, 3W] (=). Needs the same qkv and probs as forward. */
void op_attention_backward(op_attention *op, float *dqkv, const float *dout, const float *qkv,
                           const float *probs);
void op_attention_free(op_attention *op);

/* ---- plain C elementwise / data-movement ops (OpenMP) ---- */
void op_add(float *y, const float *a, const float *b, size_t n);          /* y = a + b */
void op_add_inplace(float *y, const float *a, size_t n);                  /* y += a */
/* im2col for a non-overlapping patch conv (stride = patch): images [B, C, S, S] ->
 * patches [B*P, C*p*p] with P = (S/p)^2, patch (gy,gx) row-major, column c*p*p + ky*p + kx. */
void op_patchify(float *patches, const float *images, int B, int C, int S, int p);
/* bias gradient: db[N] += sum over rows of dy[M,N]. */
void op_bias_grad(float *db, const float *dy, int M, int N);

/* L2 normalisation of rows: y = x / ||x|| (norm [rows] saved). */
void op_l2norm_forward(int rows, int cols, float *y, float *norm, const float *x);
void op_l2norm_backward(int rows, int cols, float *dx, const float *dy, const float *y,
                        const float *norm);

/* ---- losses over logits [B, C]; return the mean over the batch, write dlogits (=) of that mean
 * (dlogits may be NULL). weight scales the loss and its gradient. ---- */
/* cross-entropy with integer labels in [0, C). */
double op_cross_entropy(int B, int C, float *dlogits, const float *logits, const int *labels,
                        float weight);
/* Shannon entropy of softmax(logits): H = -sum p log p (the AdaMerging objective). */
double op_entropy(int B, int C, float *dlogits, const float *logits, float weight);

#endif
