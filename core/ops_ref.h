/* ops_ref.h — naive reference implementations of every op in core/ops.h.
 *
 * The obvious loops, accumulating in double, written to be read: they are the algorithmic
 * spec of the fast oneDNN/OpenMP ops and the oracle of tests/test_ops.c (which also checks
 * every reference backward against central finite differences of its reference forward).
 * Same argument order and semantics as ops.h: all buffers f32 row-major; backward overwrites
 * input gradients (dx =) and accumulates parameter gradients (dw +=, db +=); a NULL gradient
 * pointer skips that gradient. They allocate only small per-call scratch and are slow.
 *
 *   ref_linear_forward(M, in, out, y, x, w, b);           // y = x . w^T + b
 *   ref_linear_backward(M, in, out, dx, dw, db, dy, x, w);
 */
#ifndef TT_OPS_REF_H
#define TT_OPS_REF_H

#include <stdbool.h>
#include <stddef.h>

#include "core/ops.h"

/* reference: dnn.h dnn_matmul_desc; C[b] = op(A[b]) . op(B[b]) (+ bias) (+ C[b] if accumulate).
 * A [batch,M,K] (stored [batch,K,M] if trans_a); B [batch,K,N] (stored [batch,N,K] if trans_b;
 * one matrix for all b if b_broadcast); bias [N] or NULL; C [batch,M,N]. */
void ref_matmul(int batch, int M, int K, int N, bool trans_a, bool trans_b, bool b_broadcast,
                const float *A, const float *B, const float *bias, float *C, bool accumulate);

/* reference: torch.nn.Linear: y = x W^T + b. y [M,out], x [M,in], w [out,in], b [out] or NULL. */
void ref_linear_forward(int M, int in, int out, float *y, const float *x, const float *w,
                        const float *b);
/* dx [M,in] = dy . w; dw [out,in] += dy^T . x; db [out] += sum_m dy. Any of dx, dw, db may be NULL. */
void ref_linear_backward(int M, int in, int out, float *dx, float *dw, float *db, const float *dy,
                         const float *x, const float *w);

/* reference: torch.nn.LayerNorm: y = (x - E[x]) / sqrt(Var[x] + eps) * g + b, biased Var.
 * y, x [M,C]; mean, var [M] saved (var biased); g, b [C]. */
void ref_layernorm_forward(int M, int C, float eps, float *y, float *mean, float *var,
                           const float *x, const float *g, const float *b);
/* dx [M,C] =, dg, db [C] += (each may be NULL), from the saved mean/var. */
void ref_layernorm_backward(int M, int C, float eps, float *dx, float *dg, float *db,
                            const float *dy, const float *x, const float *mean, const float *var,
                            const float *g);

/* reference: torch.nn.GELU (approximate='none'): 0.5 x (1 + erf(x/sqrt 2));
 * open_clip QuickGELU: x * sigmoid(1.702 x). y, x [n]. */
void ref_act_forward(size_t n, op_act_kind kind, float *y, const float *x);
/* dx [n] = dy * act'(x). */
void ref_act_backward(size_t n, op_act_kind kind, float *dx, const float *dy, const float *x);

/* reference: torch.softmax(x, dim=-1). y, x [rows, cols]. */
void ref_softmax_forward(int rows, int cols, float *y, const float *x);
/* dx = y * (dy - sum_c dy*y), per row. */
void ref_softmax_backward(int rows, int cols, float *dx, const float *dy, const float *y);
/* reference: torch.log_softmax(x, dim=-1): y = x - logsumexp(x). */
void ref_log_softmax(int rows, int cols, float *y, const float *x);

/* reference: torch.nn.functional.scaled_dot_product_attention per head, scale 1/sqrt(hd), no mask.
 * qkv [B*T, 3W] (q | k | v per token, head h at column h*hd, hd = W/H); out [B*T, W];
 * probs [B*H, T, T] saved softmax(q k^T / sqrt(hd)). */
void ref_attention_forward(int B, int T, int W, int H, float *out, float *probs, const float *qkv);
/* dqkv [B*T, 3W] = gradient wrt qkv, from dout [B*T, W] and the saved probs. */
void ref_attention_backward(int B, int T, int W, int H, float *dqkv, const float *dout,
                            const float *qkv, const float *probs);

/* reference: torch.nn.functional.normalize(x, dim=-1, eps=1e-12): y = x / max(||x||, 1e-12).
 * y, x [rows, cols]; norm [rows] saved. */
void ref_l2norm_forward(int rows, int cols, float *y, float *norm, const float *x);
/* dx = (dy - y (y . dy)) / norm, per row. */
void ref_l2norm_backward(int rows, int cols, float *dx, const float *dy, const float *y,
                         const float *norm);

/* reference: weight * torch.nn.functional.cross_entropy(logits, labels) (mean over B).
 * logits, dlogits [B,C] (dlogits = d loss / d logits, may be NULL); labels [B] in [0,C). */
double ref_cross_entropy(int B, int C, float *dlogits, const float *logits, const int *labels,
                         float weight);
/* reference: the AdaMerging entropy objective (Yang et al., ICLR 2024):
 * weight * mean_b H(softmax(logits_b)), H(p) = -sum_c p_c log p_c; dH/dz_j = -p_j (log p_j + H). */
double ref_entropy(int B, int C, float *dlogits, const float *logits, float weight);

/* reference: torch.nn.Unfold(kernel_size=p, stride=p)(images).transpose(1, 2):
 * images [B,C,S,S] -> patches [B*(S/p)^2, C*p*p], column c*p*p + ky*p + kx. */
void ref_patchify(float *patches, const float *images, int B, int C, int S, int p);

/* reference: torch.add: y[n] = a + b. */
void ref_add(float *y, const float *a, const float *b, size_t n);
/* reference: the bias gradient of torch.nn.Linear: db[N] += dy[M,N].sum(0). */
void ref_bias_grad(float *db, const float *dy, int M, int N);

#endif
