/* test_ops.c — every op of core/ops.h against its naive reference (core/ops_ref.h), every
 * backward against central finite differences, gradient (=/+=/NULL) semantics, and plan reuse.
 *
 * Cases are data: one row of cases[] per (op, shape); the op's `iface` says how to lay out its
 * tensors and call it (fast op or reference). Every check runs every row of its op, and a failure
 * prints the row ("linear M=17 in=13 out=7 bias=1: ...") and the worst index.
 *
 * Tolerances:
 *   op vs reference      |got - ref| <= 1e-5 + 1e-5 |ref|     (f32 kernels vs a double reference),
 *     times a per-row `tol` only where a row documents why: an f32 dot product of 768 terms of
 *     size ~1 rounds by up to 5e-5 even when summed naively (measured on the ViT-B linear row).
 *   finite differences   |analytic - fd| <= 1e-4 + 1e-3 |fd|  central, eps = 1e-3 on up to 64
 *     coordinates per input tensor; objective L = sum(y * r) for a fixed random r (the loss value
 *     for the losses), summed in double from the *reference* forward so that FD noise stays small.
 *     The only noise left is the f32 rounding of the outputs y that the perturbation changed, so
 *     the tolerance also allows sum_{j: y+_j != y-_j} |r_j| ulp(y_j) / (x+ - x-) (typically 1e-5..5e-4).
 *     None of the ops has a kink (GELU is smooth, the l2norm clamp at 1e-12 is never reached), so
 *     no coordinate is skipped. Rows marked `big` (ViT-B sizes) skip FD: 2 x 64 reference forwards
 *     per tensor are slow there, and hundreds of changed outputs per coordinate bury the difference
 *     in rounding; the small rows exercise the same code.
 * Set TTM_TEST_VERBOSE=1 to print the worst error ratio (err / tolerance) of every check.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ops.h"
#include "core/ops_ref.h"
#include "core/rng.h"
#include "tests/testutil.h"

#define CMP_ATOL 1e-5
#define CMP_RTOL 1e-5
#define FD_EPS 1e-3f
#define FD_ATOL 1e-4
#define FD_RTOL 1e-3
#define FD_MAX_COORDS 64
#define LOSS_WEIGHT 0.7f
#define LN_EPS 1e-5f

enum { MAX_T = 4 };

typedef struct op_iface op_iface;

/* One row of the case table: an op and its shape (each op reads only its own fields). */
typedef struct op_case {
    const op_iface *op;
    int M, in, out;     /* linear: x [M,in] -> y [M,out] */
    int C;              /* layernorm width (rows M); patchify channels; losses: classes */
    int rows, cols;     /* softmax, log_softmax, l2norm, bias_grad */
    size_t n;           /* act, add, add_inplace */
    op_act_kind kind;   /* act */
    bool bias;          /* linear */
    int B, T, W, H;     /* attention; B is also the batch of patchify and of the losses */
    int S, p;           /* patchify: image side, patch side */
    dnn_matmul_desc mm; /* matmul (a row is expanded over every flag combination) */
    bool big;           /* skip finite differences */
    double tol;         /* multiplies the op-vs-reference tolerance (0 means 1); say why in the row */
} op_case;

/* A tensor of an instance: inputs are filled uniform in [lo, hi); gradients know whether the
 * op overwrites (=) or accumulates (+=) them and whether NULL is allowed. */
typedef struct tensor {
    const char *name;
    size_t n;
    float lo, hi;
    bool acc, nullable;
    float *p;
} tensor;

typedef union op_plan {
    op_linear linear;
    op_layernorm ln;
    op_act act;
    op_softmax sm;
    op_attention att;
    dnn_matmul *mm;
} op_plan;

/* One op instance: a plan (shared by instances of the same case) and one set of buffers. */
typedef struct inst {
    const op_case *c;
    char label[160];      /* the case, printed on failure */
    op_plan *plan;
    int nin, nout;
    tensor in[MAX_T];     /* inputs; for ops with a backward every input is differentiated */
    tensor grad[MAX_T];   /* grad[i] of in[i]; .p set to NULL to skip it */
    char grad_name[MAX_T][16]; /* "dx", "dw", ... */
    tensor out[MAX_T];    /* out[0] = y, the rest is saved for backward (mean, probs, ...) */
    float *save_out[MAX_T], *save_grad[MAX_T]; /* snapshots for comparisons */
    bool has_dy;          /* false for losses (scalar output: the returned value) */
    float *dy;            /* [out[0].n] upstream gradient r */
    int *labels;          /* [B] cross-entropy labels */
} inst;

struct op_iface {
    const char *name;
    void (*describe)(const op_case *c, char *buf, size_t cap);
    void (*declare)(inst *I);                                         /* in/out tensors */
    int (*plan)(op_plan *pl, const op_case *c, dnn *d, tt_err *err); /* NULL: plain C op */
    void (*unplan)(op_plan *pl);
    double (*forward)(inst *I, bool ref);  /* writes out[]; returns the loss (losses) or 0 */
    double (*backward)(inst *I, bool ref); /* NULL: no backward. grad[] from dy; returns loss or 0 */
    int (*expand)(const op_case *row, op_case *out, int cap); /* optional: one row -> many cases */
};

#define IN(i) (I->in[i].p)
#define OUT(i) (I->out[i].p)
#define GRAD(i) (I->grad[i].p)

static void add_in(inst *I, const char *name, size_t n, float lo, float hi, bool acc, bool nullable) {
    I->in[I->nin++] = (tensor){.name = name, .n = n, .lo = lo, .hi = hi, .acc = acc, .nullable = nullable};
}

static void add_out(inst *I, const char *name, size_t n) {
    I->out[I->nout++] = (tensor){.name = name, .n = n};
}

/* ------------------------------------------------------------------ the ops under test */

static void matmul_describe(const op_case *c, char *buf, size_t cap) {
    const dnn_matmul_desc *m = &c->mm;
    snprintf(buf, cap, "matmul batch=%d M=%d K=%d N=%d trans_a=%d trans_b=%d b_broadcast=%d bias=%d accumulate=%d",
             m->batch, m->M, m->K, m->N, m->trans_a, m->trans_b, m->b_broadcast, m->bias, m->accumulate);
}
static void matmul_declare(inst *I) {
    const dnn_matmul_desc *m = &I->c->mm;
    add_in(I, "A", (size_t)m->batch * m->M * m->K, -1, 1, false, false);
    add_in(I, "B", (size_t)(m->b_broadcast ? 1 : m->batch) * m->K * m->N, -1, 1, false, false);
    add_in(I, "bias", m->bias ? (size_t)m->N : 0, -1, 1, false, false);
    add_in(I, "C0", m->accumulate ? (size_t)m->batch * m->M * m->N : 0, -1, 1, false, false);
    add_out(I, "C", (size_t)m->batch * m->M * m->N);
}
static int matmul_plan(op_plan *pl, const op_case *c, dnn *d, tt_err *err) {
    pl->mm = dnn_matmul_create(d, &c->mm, err);
    return pl->mm ? 0 : -1;
}
static void matmul_unplan(op_plan *pl) { dnn_matmul_free(pl->mm); }
static double matmul_forward(inst *I, bool ref) {
    const dnn_matmul_desc *m = &I->c->mm;
    const float *bias = m->bias ? IN(2) : NULL;
    if (m->accumulate) memcpy(OUT(0), IN(3), I->out[0].n * sizeof(float));
    if (ref) ref_matmul(m->batch, m->M, m->K, m->N, m->trans_a, m->trans_b, m->b_broadcast, IN(0), IN(1), bias, OUT(0), m->accumulate);
    else dnn_matmul_run(I->plan->mm, IN(0), IN(1), bias, OUT(0));
    return 0;
}
/* One shape row -> batch 1, batch 3, batch 3 with a broadcast B; each with all 16 flag sets. */
static int matmul_expand(const op_case *row, op_case *out, int cap) {
    static const struct { int batch; bool bcast; } batching[] = {{1, false}, {3, false}, {3, true}};
    int n = 0;
    for (size_t b = 0; b < sizeof batching / sizeof batching[0]; b++)
        for (int flags = 0; flags < 16 && n < cap; flags++) {
            out[n] = *row;
            out[n].mm.batch = batching[b].batch;
            out[n].mm.b_broadcast = batching[b].bcast;
            out[n].mm.trans_a = flags & 1;
            out[n].mm.trans_b = flags & 2;
            out[n].mm.bias = flags & 4;
            out[n].mm.accumulate = flags & 8;
            n++;
        }
    return n;
}
static const op_iface OP_matmul = {"matmul", matmul_describe, matmul_declare, matmul_plan, matmul_unplan,
                                   matmul_forward, NULL, matmul_expand};

static void linear_describe(const op_case *c, char *buf, size_t cap) {
    snprintf(buf, cap, "linear M=%d in=%d out=%d bias=%d", c->M, c->in, c->out, c->bias);
}
static void linear_declare(inst *I) {
    const op_case *c = I->c;
    add_in(I, "x", (size_t)c->M * c->in, -1, 1, false, true);
    add_in(I, "w", (size_t)c->out * c->in, -1, 1, true, true);
    if (c->bias) add_in(I, "b", (size_t)c->out, -1, 1, true, true);
    add_out(I, "y", (size_t)c->M * c->out);
}
static int linear_plan(op_plan *pl, const op_case *c, dnn *d, tt_err *err) {
    return op_linear_init(&pl->linear, d, c->M, c->in, c->out, c->bias, err);
}
static void linear_unplan(op_plan *pl) { op_linear_free(&pl->linear); }
static double linear_forward(inst *I, bool ref) {
    const op_case *c = I->c;
    const float *b = c->bias ? IN(2) : NULL;
    if (ref) ref_linear_forward(c->M, c->in, c->out, OUT(0), IN(0), IN(1), b);
    else op_linear_forward(&I->plan->linear, OUT(0), IN(0), IN(1), b);
    return 0;
}
static double linear_backward(inst *I, bool ref) {
    const op_case *c = I->c;
    float *db = c->bias ? GRAD(2) : NULL;
    if (ref) ref_linear_backward(c->M, c->in, c->out, GRAD(0), GRAD(1), db, I->dy, IN(0), IN(1));
    else op_linear_backward(&I->plan->linear, GRAD(0), GRAD(1), db, I->dy, IN(0), IN(1));
    return 0;
}
static const op_iface OP_linear = {"linear", linear_describe, linear_declare, linear_plan, linear_unplan,
                                   linear_forward, linear_backward, NULL};

static void layernorm_describe(const op_case *c, char *buf, size_t cap) {
    snprintf(buf, cap, "layernorm M=%d C=%d eps=%g", c->M, c->C, (double)LN_EPS);
}
static void layernorm_declare(inst *I) {
    const op_case *c = I->c;
    add_in(I, "x", (size_t)c->M * c->C, -1, 2, false, true); /* nonzero mean */
    add_in(I, "g", (size_t)c->C, 0.5f, 1.5f, true, true);
    add_in(I, "b", (size_t)c->C, -0.5f, 0.5f, true, true);
    add_out(I, "y", (size_t)c->M * c->C);
    add_out(I, "mean", (size_t)c->M);
    add_out(I, "var", (size_t)c->M);
}
static int layernorm_plan(op_plan *pl, const op_case *c, dnn *d, tt_err *err) {
    return op_layernorm_init(&pl->ln, d, c->M, c->C, LN_EPS, err);
}
static void layernorm_unplan(op_plan *pl) { op_layernorm_free(&pl->ln); }
static double layernorm_forward(inst *I, bool ref) {
    const op_case *c = I->c;
    if (ref) ref_layernorm_forward(c->M, c->C, LN_EPS, OUT(0), OUT(1), OUT(2), IN(0), IN(1), IN(2));
    else op_layernorm_forward(&I->plan->ln, OUT(0), OUT(1), OUT(2), IN(0), IN(1), IN(2));
    return 0;
}
static double layernorm_backward(inst *I, bool ref) {
    const op_case *c = I->c;
    if (ref) ref_layernorm_backward(c->M, c->C, LN_EPS, GRAD(0), GRAD(1), GRAD(2), I->dy, IN(0), OUT(1), OUT(2), IN(1));
    else op_layernorm_backward(&I->plan->ln, GRAD(0), GRAD(1), GRAD(2), I->dy, IN(0), OUT(1), OUT(2), IN(1));
    return 0;
}
static const op_iface OP_layernorm = {"layernorm", layernorm_describe, layernorm_declare, layernorm_plan,
                                      layernorm_unplan, layernorm_forward, layernorm_backward, NULL};

static void act_describe(const op_case *c, char *buf, size_t cap) {
    snprintf(buf, cap, "act %s n=%zu", c->kind == OP_ACT_GELU ? "gelu" : "quick_gelu", c->n);
}
static void act_declare(inst *I) {
    add_in(I, "x", I->c->n, -4, 4, false, false);
    add_out(I, "y", I->c->n);
}
static int act_plan(op_plan *pl, const op_case *c, dnn *d, tt_err *err) {
    return op_act_init(&pl->act, d, c->n, c->kind, err);
}
static void act_unplan(op_plan *pl) { op_act_free(&pl->act); }
static double act_forward(inst *I, bool ref) {
    if (ref) ref_act_forward(I->c->n, I->c->kind, OUT(0), IN(0));
    else op_act_forward(&I->plan->act, OUT(0), IN(0));
    return 0;
}
static double act_backward(inst *I, bool ref) {
    if (ref) ref_act_backward(I->c->n, I->c->kind, GRAD(0), I->dy, IN(0));
    else op_act_backward(&I->plan->act, GRAD(0), I->dy, IN(0));
    return 0;
}
static const op_iface OP_act = {"act", act_describe, act_declare, act_plan, act_unplan,
                                act_forward, act_backward, NULL};

static void rows_cols_describe(const op_case *c, char *buf, size_t cap) {
    snprintf(buf, cap, "%s rows=%d cols=%d", c->op->name, c->rows, c->cols);
}
static void softmax_declare(inst *I) {
    size_t n = (size_t)I->c->rows * I->c->cols;
    add_in(I, "x", n, -3, 3, false, false);
    add_out(I, "y", n);
}
static int softmax_plan(op_plan *pl, const op_case *c, dnn *d, tt_err *err) {
    return op_softmax_init(&pl->sm, d, c->rows, c->cols, err);
}
static void softmax_unplan(op_plan *pl) { op_softmax_free(&pl->sm); }
static double softmax_forward(inst *I, bool ref) {
    if (ref) ref_softmax_forward(I->c->rows, I->c->cols, OUT(0), IN(0));
    else op_softmax_forward(&I->plan->sm, OUT(0), IN(0));
    return 0;
}
static double softmax_backward(inst *I, bool ref) {
    (ref ? ref_softmax_backward : op_softmax_backward)(I->c->rows, I->c->cols, GRAD(0), I->dy, OUT(0));
    return 0;
}
static const op_iface OP_softmax = {"softmax", rows_cols_describe, softmax_declare, softmax_plan,
                                    softmax_unplan, softmax_forward, softmax_backward, NULL};

static double log_softmax_forward(inst *I, bool ref) {
    (ref ? ref_log_softmax : op_log_softmax)(I->c->rows, I->c->cols, OUT(0), IN(0));
    return 0;
}
static const op_iface OP_log_softmax = {"log_softmax", rows_cols_describe, softmax_declare, NULL, NULL,
                                        log_softmax_forward, NULL, NULL};

static void attention_describe(const op_case *c, char *buf, size_t cap) {
    snprintf(buf, cap, "attention B=%d T=%d W=%d H=%d", c->B, c->T, c->W, c->H);
}
static void attention_declare(inst *I) {
    const op_case *c = I->c;
    add_in(I, "qkv", (size_t)c->B * c->T * 3 * c->W, -1.5f, 1.5f, false, false);
    add_out(I, "out", (size_t)c->B * c->T * c->W);
    add_out(I, "probs", (size_t)c->B * c->H * c->T * c->T);
}
static int attention_plan(op_plan *pl, const op_case *c, dnn *d, tt_err *err) {
    return op_attention_init(&pl->att, d, c->B, c->T, c->W, c->H, err);
}
static void attention_unplan(op_plan *pl) { op_attention_free(&pl->att); }
static double attention_forward(inst *I, bool ref) {
    const op_case *c = I->c;
    if (ref) ref_attention_forward(c->B, c->T, c->W, c->H, OUT(0), OUT(1), IN(0));
    else op_attention_forward(&I->plan->att, OUT(0), OUT(1), IN(0));
    return 0;
}
static double attention_backward(inst *I, bool ref) {
    const op_case *c = I->c;
    if (ref) ref_attention_backward(c->B, c->T, c->W, c->H, GRAD(0), I->dy, IN(0), OUT(1));
    else op_attention_backward(&I->plan->att, GRAD(0), I->dy, IN(0), OUT(1));
    return 0;
}
static const op_iface OP_attention = {"attention", attention_describe, attention_declare, attention_plan,
                                      attention_unplan, attention_forward, attention_backward, NULL};

static void l2norm_declare(inst *I) {
    add_in(I, "x", (size_t)I->c->rows * I->c->cols, -1, 1, false, false);
    add_out(I, "y", (size_t)I->c->rows * I->c->cols);
    add_out(I, "norm", (size_t)I->c->rows);
}
static double l2norm_forward(inst *I, bool ref) {
    (ref ? ref_l2norm_forward : op_l2norm_forward)(I->c->rows, I->c->cols, OUT(0), OUT(1), IN(0));
    return 0;
}
static double l2norm_backward(inst *I, bool ref) {
    (ref ? ref_l2norm_backward : op_l2norm_backward)(I->c->rows, I->c->cols, GRAD(0), I->dy, OUT(0), OUT(1));
    return 0;
}
static const op_iface OP_l2norm = {"l2norm", rows_cols_describe, l2norm_declare, NULL, NULL,
                                   l2norm_forward, l2norm_backward, NULL};

static void loss_describe(const op_case *c, char *buf, size_t cap) {
    snprintf(buf, cap, "%s B=%d C=%d weight=%g", c->op->name, c->B, c->C, (double)LOSS_WEIGHT);
}
static void loss_declare(inst *I) {
    add_in(I, "logits", (size_t)I->c->B * I->c->C, -3, 3, false, true);
    add_out(I, "loss", 1);
    I->has_dy = false;
}
/* Both losses write dlogits along with the loss: backward is the same call with a gradient. */
static double cross_entropy_eval(inst *I, bool ref, float *dlogits) {
    const op_case *c = I->c;
    double loss = (ref ? ref_cross_entropy : op_cross_entropy)(c->B, c->C, dlogits, IN(0), I->labels, LOSS_WEIGHT);
    OUT(0)[0] = (float)loss;
    return loss;
}
static double cross_entropy_forward(inst *I, bool ref) { return cross_entropy_eval(I, ref, NULL); }
static double cross_entropy_backward(inst *I, bool ref) { return cross_entropy_eval(I, ref, GRAD(0)); }
static const op_iface OP_cross_entropy = {"cross_entropy", loss_describe, loss_declare, NULL, NULL,
                                          cross_entropy_forward, cross_entropy_backward, NULL};

static double entropy_eval(inst *I, bool ref, float *dlogits) {
    double loss = (ref ? ref_entropy : op_entropy)(I->c->B, I->c->C, dlogits, IN(0), LOSS_WEIGHT);
    OUT(0)[0] = (float)loss;
    return loss;
}
static double entropy_forward(inst *I, bool ref) { return entropy_eval(I, ref, NULL); }
static double entropy_backward(inst *I, bool ref) { return entropy_eval(I, ref, GRAD(0)); }
static const op_iface OP_entropy = {"entropy", loss_describe, loss_declare, NULL, NULL,
                                    entropy_forward, entropy_backward, NULL};

static void patchify_describe(const op_case *c, char *buf, size_t cap) {
    snprintf(buf, cap, "patchify B=%d C=%d S=%d p=%d", c->B, c->C, c->S, c->p);
}
static void patchify_declare(inst *I) {
    size_t n = (size_t)I->c->B * I->c->C * I->c->S * I->c->S;
    add_in(I, "images", n, -1, 1, false, false);
    add_out(I, "patches", n);
}
static double patchify_forward(inst *I, bool ref) {
    const op_case *c = I->c;
    (ref ? ref_patchify : op_patchify)(OUT(0), IN(0), c->B, c->C, c->S, c->p);
    return 0;
}
static const op_iface OP_patchify = {"patchify", patchify_describe, patchify_declare, NULL, NULL,
                                     patchify_forward, NULL, NULL};

static void n_describe(const op_case *c, char *buf, size_t cap) {
    snprintf(buf, cap, "%s n=%zu", c->op->name, c->n);
}
static void add_declare(inst *I) {
    add_in(I, "a", I->c->n, -1, 1, false, false);
    add_in(I, "b", I->c->n, -1, 1, false, false);
    add_out(I, "y", I->c->n);
}
static double add_forward(inst *I, bool ref) {
    (ref ? ref_add : op_add)(OUT(0), IN(0), IN(1), I->c->n);
    return 0;
}
static const op_iface OP_add = {"add", n_describe, add_declare, NULL, NULL, add_forward, NULL, NULL};

/* y = a; y += b */
static double add_inplace_forward(inst *I, bool ref) {
    if (ref) {
        ref_add(OUT(0), IN(0), IN(1), I->c->n);
    } else {
        memcpy(OUT(0), IN(0), I->c->n * sizeof(float));
        op_add_inplace(OUT(0), IN(1), I->c->n);
    }
    return 0;
}
static const op_iface OP_add_inplace = {"add_inplace", n_describe, add_declare, NULL, NULL,
                                        add_inplace_forward, NULL, NULL};

static void bias_grad_declare(inst *I) {
    add_in(I, "dy", (size_t)I->c->rows * I->c->cols, -1, 1, false, false);
    add_in(I, "db0", (size_t)I->c->cols, -1, 1, false, false);
    add_out(I, "db", (size_t)I->c->cols);
}
/* db = db0; db += column sums of dy */
static double bias_grad_forward(inst *I, bool ref) {
    memcpy(OUT(0), IN(1), I->out[0].n * sizeof(float));
    (ref ? ref_bias_grad : op_bias_grad)(OUT(0), IN(0), I->c->rows, I->c->cols);
    return 0;
}
static const op_iface OP_bias_grad = {"bias_grad", rows_cols_describe, bias_grad_declare, NULL, NULL,
                                      bias_grad_forward, NULL, NULL};

/* ------------------------------------------------------------------ the cases */

#define MM(m, k, n) .mm = {.batch = 1, .M = m, .K = k, .N = n}

static const op_case cases[] = {
    {&OP_matmul, MM(1, 1, 1)},
    {&OP_matmul, MM(17, 13, 7)},
    {&OP_matmul, MM(5, 64, 3)},
    {&OP_matmul, MM(33, 8, 65)},

    {&OP_linear, .M = 17, .in = 13, .out = 7, .bias = true},
    {&OP_linear, .M = 17, .in = 13, .out = 7, .bias = false},
    {&OP_linear, .M = 1, .in = 1, .out = 1, .bias = true},
    {&OP_linear, .M = 3, .in = 64, .out = 5, .bias = true},
    /* ViT-B/32 at batch 4; 768-term f32 dot products: oneDNN errs 3.1e-5, a naive f32 loop 5.0e-5 */
    {&OP_linear, .M = 50 * 4, .in = 768, .out = 768, .bias = true, .big = true, .tol = 6},
    /* in a multiple of 1024 and > out: the transposed backward (op_linear.wide_in), with FD; and
     * ViT-B/32's c_proj at batch 4 (3072-term forward dot products: twice the 768-term rounding) */
    {&OP_linear, .M = 5, .in = 1024, .out = 16, .bias = true},
    {&OP_linear, .M = 50 * 4, .in = 3072, .out = 768, .bias = true, .big = true, .tol = 12},
    /* packed weights (op_linear: in x out >= 65536 and M >= out): forward and dx read w through a
     * reorder into oneDNN's blocked layout; the second row is also wide_in (dx direct, dw transposed) */
    {&OP_linear, .M = 300, .in = 256, .out = 256, .bias = true, .big = true, .tol = 2},
    {&OP_linear, .M = 96, .in = 1024, .out = 64, .bias = true, .big = true, .tol = 4},

    {&OP_layernorm, .M = 17, .C = 13},
    {&OP_layernorm, .M = 1, .C = 2},
    {&OP_layernorm, .M = 5, .C = 64},
    {&OP_layernorm, .M = 50 * 4, .C = 768, .big = true},

    {&OP_act, .n = 1, .kind = OP_ACT_GELU},
    {&OP_act, .n = 17 * 13, .kind = OP_ACT_GELU},
    {&OP_act, .n = 4097, .kind = OP_ACT_GELU},
    {&OP_act, .n = 1, .kind = OP_ACT_QUICK_GELU},
    {&OP_act, .n = 17 * 13, .kind = OP_ACT_QUICK_GELU},
    {&OP_act, .n = 4097, .kind = OP_ACT_QUICK_GELU},
    {&OP_act, .n = 50 * 4 * 3072, .kind = OP_ACT_GELU, .big = true},

    {&OP_softmax, .rows = 17, .cols = 13},
    {&OP_softmax, .rows = 1, .cols = 1},
    {&OP_softmax, .rows = 3, .cols = 50},
    {&OP_softmax, .rows = 4 * 12 * 50, .cols = 50, .big = true},

    {&OP_log_softmax, .rows = 17, .cols = 13},
    {&OP_log_softmax, .rows = 1, .cols = 1},
    {&OP_log_softmax, .rows = 3, .cols = 1000},

    {&OP_attention, .B = 2, .T = 5, .W = 12, .H = 3},
    {&OP_attention, .B = 1, .T = 1, .W = 4, .H = 1},
    {&OP_attention, .B = 3, .T = 7, .W = 8, .H = 2},
    {&OP_attention, .B = 4, .T = 50, .W = 768, .H = 12, .big = true},

    {&OP_l2norm, .rows = 17, .cols = 13},
    {&OP_l2norm, .rows = 1, .cols = 1},
    {&OP_l2norm, .rows = 4, .cols = 512},

    {&OP_cross_entropy, .B = 17, .C = 13},
    {&OP_cross_entropy, .B = 1, .C = 1},
    {&OP_cross_entropy, .B = 4, .C = 1000},
    {&OP_entropy, .B = 17, .C = 13},
    {&OP_entropy, .B = 1, .C = 1},
    {&OP_entropy, .B = 4, .C = 1000},

    {&OP_patchify, .B = 2, .C = 3, .S = 8, .p = 4},
    {&OP_patchify, .B = 1, .C = 1, .S = 5, .p = 5},
    {&OP_patchify, .B = 2, .C = 3, .S = 12, .p = 3},
    {&OP_patchify, .B = 4, .C = 3, .S = 224, .p = 32},

    {&OP_add, .n = 1},
    {&OP_add, .n = 17},
    {&OP_add, .n = 65537}, /* above the OpenMP threshold */
    {&OP_add_inplace, .n = 1},
    {&OP_add_inplace, .n = 17},
    {&OP_add_inplace, .n = 65537},

    {&OP_bias_grad, .rows = 17, .cols = 13},
    {&OP_bias_grad, .rows = 1, .cols = 1},
    /* above the OpenMP threshold, ragged 16-column block; 1000-term f32 column sums */
    {&OP_bias_grad, .rows = 1000, .cols = 67, .tol = 4},
    /* 128-column blocks (cols >= 2 x 128 x threads on up to 4 threads), ragged last block of 76 */
    {&OP_bias_grad, .rows = 300, .cols = 1100, .tol = 2},
};

/* ------------------------------------------------------------------ instances */

static float *alloc_floats(size_t n) {
    float *p = calloc(n ? n : 1, sizeof(float));
    cr_assert_not_null(p);
    return p;
}

static void inst_init(inst *I, const op_case *c, op_plan *plan, uint64_t seed) {
    memset(I, 0, sizeof *I);
    I->c = c;
    I->plan = plan;
    I->has_dy = true;
    c->op->describe(c, I->label, sizeof I->label);
    c->op->declare(I);
    for (int i = 0; i < I->nin; i++) {
        tensor *t = &I->in[i];
        t->p = alloc_floats(t->n);
        tu_fill_uniform(t->p, t->n, seed + 101 * (uint64_t)i, t->lo, t->hi);
        snprintf(I->grad_name[i], sizeof I->grad_name[i], "d%s", t->name);
        I->grad[i] = (tensor){.name = I->grad_name[i], .n = t->n, .acc = t->acc, .nullable = t->nullable};
        I->grad[i].p = alloc_floats(t->n);
        I->save_grad[i] = alloc_floats(t->n);
    }
    for (int i = 0; i < I->nout; i++) {
        I->out[i].p = alloc_floats(I->out[i].n);
        I->save_out[i] = alloc_floats(I->out[i].n);
    }
    if (I->has_dy) {
        I->dy = alloc_floats(I->out[0].n);
        tu_fill_uniform(I->dy, I->out[0].n, seed + 977, -1, 1);
    }
    if (c->B > 0 && c->C > 0) {
        I->labels = calloc((size_t)c->B, sizeof(int));
        for (int b = 0; b < c->B; b++) I->labels[b] = (b * 7 + 3) % c->C;
    }
}

static void inst_free(inst *I) {
    for (int i = 0; i < I->nin; i++) {
        free(I->in[i].p);
        free(I->grad[i].p);
        free(I->save_grad[i]);
    }
    for (int i = 0; i < I->nout; i++) {
        free(I->out[i].p);
        free(I->save_out[i]);
    }
    free(I->dy);
    free(I->labels);
}

/* "+=" gradients start at a random P (zero when seed is 0), "=" gradients at NaN: an op
 * that reads an overwritten gradient, or drops an accumulated one, shows. */
static void grads_prefill(inst *I, uint64_t seed) {
    for (int i = 0; i < I->nin; i++) {
        tensor *g = &I->grad[i];
        if (!g->acc) for (size_t j = 0; j < g->n; j++) g->p[j] = NAN;
        else if (seed) tu_fill_uniform(g->p, g->n, seed + (uint64_t)i, -1, 1);
        else memset(g->p, 0, g->n * sizeof(float));
    }
}

static void save_outs(inst *I) {
    for (int i = 0; i < I->nout; i++) memcpy(I->save_out[i], I->out[i].p, I->out[i].n * sizeof(float));
}
static void save_grads(inst *I) {
    for (int i = 0; i < I->nin; i++) memcpy(I->save_grad[i], I->grad[i].p, I->grad[i].n * sizeof(float));
}

/* ------------------------------------------------------------------ comparisons */

static struct { double worst; char where[320]; } stats; /* worst err/tol of this test, for TTM_TEST_VERBOSE */

static void note(double ratio, const char *where) {
    if (!(ratio <= stats.worst)) {
        stats.worst = ratio;
        snprintf(stats.where, sizeof stats.where, "%s", where);
    }
}

/* got vs want within tol (CMP_ATOL + CMP_RTOL |want|); prints the case, what and the worst index. */
static bool expect_close(const inst *I, const char *what, const char *tname, const float *got,
                         const float *want, size_t n) {
    char label[320];
    double k = I->c->tol > 0 ? I->c->tol : 1;
    snprintf(label, sizeof label, "%s: %s %s", I->label, what, tname);
    note(tu_max_rel_err(got, want, n, k * CMP_ATOL, k * CMP_RTOL), label);
    bool ok = tu_allclose(label, got, want, n, k * CMP_ATOL, k * CMP_RTOL);
    cr_expect(ok, "%s: outside |got-want| <= %g + %g|want|", label, k * CMP_ATOL, k * CMP_RTOL);
    return ok;
}

static void expect_outs_saved(const inst *I, const char *what) {
    for (int i = 0; i < I->nout; i++) expect_close(I, what, I->out[i].name, I->out[i].p, I->save_out[i], I->out[i].n);
}
static void expect_grads_saved(const inst *I, const char *what, int skip) {
    for (int i = 0; i < I->nin; i++)
        if (i != skip) expect_close(I, what, I->grad[i].name, I->grad[i].p, I->save_grad[i], I->grad[i].n);
}

static void expect_loss(const inst *I, const char *what, double got, double want) {
    double k = I->c->tol > 0 ? I->c->tol : 1;
    double ratio = fabs(got - want) / (k * (CMP_ATOL + CMP_RTOL * fabs(want)));
    note(ratio, I->label);
    cr_expect(ratio <= 1, "%s: %s: returned %.9g want %.9g", I->label, what, got, want);
}

/* ------------------------------------------------------------------ checks */

typedef void check_fn(inst *I, inst *other); /* other: a second instance on the same plan */

/* 1. op forward == reference forward (every output, including saved statistics). */
static void check_forward(inst *I, inst *other) {
    const op_iface *op = I->c->op;
    double want = op->forward(I, true);
    save_outs(I);
    double got = op->forward(I, false);
    expect_outs_saved(I, "forward");
    expect_loss(I, "forward", got, want);
}

/* 2. op backward == reference backward, from the same prefilled gradients (so += and = are
 * checked), then: two calls from zero give 2x the += gradients; each nullable gradient may be
 * NULL without changing the others. */
static void check_backward(inst *I, inst *other) {
    const op_iface *op = I->c->op;
    grads_prefill(I, 4242);
    op->forward(I, true);
    double want = op->backward(I, true);
    save_grads(I);

    grads_prefill(I, 4242);
    op->forward(I, false);
    expect_loss(I, "backward", op->backward(I, false), want);
    expect_grads_saved(I, "backward (prefilled) vs reference", -1);

    for (int i = 0; i < I->nin; i++) {
        if (!I->grad[i].nullable) continue;
        char what[96];
        snprintf(what, sizeof what, "backward with %s = NULL", I->grad[i].name);
        grads_prefill(I, 4242);
        float *keep = I->grad[i].p;
        I->grad[i].p = NULL;
        expect_loss(I, what, op->backward(I, false), want);
        I->grad[i].p = keep;
        expect_grads_saved(I, what, i);
    }

    grads_prefill(I, 0);
    op->backward(I, false);
    save_grads(I);
    op->backward(I, false);
    for (int i = 0; i < I->nin; i++)
        if (I->grad[i].acc)
            for (size_t j = 0; j < I->grad[i].n; j++) I->save_grad[i][j] *= 2;
    expect_grads_saved(I, "backward twice (+= doubles, = stays)", -1);
}

/* L = loss + sum(y * r), in double, from the reference forward. */
static double objective(inst *I) {
    double L = I->c->op->forward(I, true);
    if (I->has_dy)
        for (size_t j = 0; j < I->out[0].n; j++) L += (double)I->out[0].p[j] * I->dy[j];
    return L;
}

/* Bound on |sum_j r_j (y+_j - y-_j)| due to rounding y+ and y- to f32: sum over changed outputs
 * of |r_j| (ulp(y+_j) + ulp(y-_j)) / 2. */
static double rounding_noise(const float *yp, const float *ym, const float *r, size_t n) {
    double s = 0;
    for (size_t j = 0; j < n; j++)
        if (yp[j] != ym[j]) {
            double ulp_p = nextafterf(fabsf(yp[j]), INFINITY) - fabsf(yp[j]);
            double ulp_m = nextafterf(fabsf(ym[j]), INFINITY) - fabsf(ym[j]);
            s += fabs((double)r[j]) * (ulp_p + ulp_m) / 2;
        }
    return s;
}

/* 3. analytic backward (op or reference) vs central differences of the reference forward. */
static void check_fd_impl(inst *I, bool ref) {
    const op_iface *op = I->c->op;
    if (I->c->big) return;
    grads_prefill(I, 0);
    op->forward(I, ref);
    op->backward(I, ref);
    for (int i = 0; i < I->nin; i++) {
        tensor *x = &I->in[i];
        size_t stride = x->n > FD_MAX_COORDS ? x->n / FD_MAX_COORDS : 1;
        struct { double ratio, an, fd, rounding; size_t j; } worst = {0};
        int checked = 0, failed = 0;
        for (size_t k = 0; k < x->n && k < FD_MAX_COORDS; k++, checked++) {
            size_t j = k * stride + (k * 13) % stride; /* spread over the tensor, not aligned */
            float keep = x->p[j], xp = keep + FD_EPS, xm = keep - FD_EPS;
            x->p[j] = xp;
            double lp = objective(I);
            if (I->has_dy) memcpy(I->save_out[0], I->out[0].p, I->out[0].n * sizeof(float));
            x->p[j] = xm;
            double lm = objective(I);
            x->p[j] = keep;
            double h = (double)xp - (double)xm, fd = (lp - lm) / h, an = I->grad[i].p[j];
            double rounding = I->has_dy ? rounding_noise(I->save_out[0], I->out[0].p, I->dy, I->out[0].n) / h : 0;
            double ratio = fabs(an - fd) / (FD_ATOL + FD_RTOL * fabs(fd) + rounding);
            failed += !(ratio <= 1);
            if (!(ratio <= worst.ratio)) {
                worst.ratio = ratio;
                worst.an = an;
                worst.fd = fd;
                worst.rounding = rounding;
                worst.j = j;
            }
        }
        char where[256];
        snprintf(where, sizeof where, "%s: %s backward %s[%zu]", I->label, ref ? "reference" : "op",
                 I->grad[i].name, worst.j);
        note(worst.ratio, where);
        cr_expect(checked > 0 && failed == 0,
                  "%s: %d of %d coordinates off; worst: analytic %.8g finite difference %.8g "
                  "(tol %g + %g|fd| + rounding %.2g)",
                  where, failed, checked, worst.an, worst.fd, FD_ATOL, FD_RTOL, worst.rounding);
    }
}
static void check_fd(inst *I, inst *other) { check_fd_impl(I, false); }
static void check_fd_ref(inst *I, inst *other) { check_fd_impl(I, true); }

/* 4. one plan, two buffer sets: forward A, forward B, backward A, backward B with the same
 * primitives; each result must match the reference on its own buffers. */
static void check_reuse(inst *I, inst *other) {
    inst *X[2] = {I, other};
    const op_iface *op = I->c->op;
    for (int s = 0; s < 2; s++) op->forward(X[s], false);
    for (int s = 0; s < 2; s++) save_outs(X[s]);
    if (op->backward) {
        for (int s = 0; s < 2; s++) grads_prefill(X[s], 0);
        for (int s = 0; s < 2; s++) op->backward(X[s], false);
        for (int s = 0; s < 2; s++) save_grads(X[s]);
    }
    for (int s = 0; s < 2; s++) {
        op->forward(X[s], true);
        expect_outs_saved(X[s], s ? "reuse forward (second buffers)" : "reuse forward (first buffers)");
        if (!op->backward) continue;
        grads_prefill(X[s], 0);
        op->backward(X[s], true);
        /* compare the reference (now in grad) with the op's result (saved) */
        for (int i = 0; i < X[s]->nin; i++)
            expect_close(X[s], s ? "reuse backward (second buffers)" : "reuse backward (first buffers)",
                         X[s]->grad[i].name, X[s]->save_grad[i], X[s]->grad[i].p, X[s]->grad[i].n);
    }
}

/* ------------------------------------------------------------------ driver */

static void run_case(dnn *d, const op_case *c, check_fn *check) {
    op_plan plan;
    memset(&plan, 0, sizeof plan);
    tt_err e = {0};
    inst I, other;
    inst_init(&I, c, &plan, 1000);
    inst_init(&other, c, &plan, 2000);
    if (c->op->plan) cr_assert_eq(c->op->plan(&plan, c, d, &e), 0, "%s: plan: %s", I.label, e.msg);
    check(&I, &other);
    if (c->op->unplan) c->op->unplan(&plan);
    inst_free(&I);
    inst_free(&other);
}

/* Run one check on every case of one op (expanding rows where the op generates variants). */
static void run_cases(const op_iface *op, check_fn *check, const char *check_name) {
    dnn *d = NULL;
    tt_err e = {0};
    cr_assert_eq(dnn_create(&d, &e), 0, "%s", e.msg);
    stats.worst = 0;
    stats.where[0] = 0;
    int ran = 0;
    for (size_t r = 0; r < sizeof cases / sizeof cases[0]; r++) {
        if (cases[r].op != op) continue;
        op_case expanded[64];
        int n = op->expand ? op->expand(&cases[r], expanded, 64) : 1;
        if (!op->expand) expanded[0] = cases[r];
        for (int k = 0; k < n; k++, ran++) run_case(d, &expanded[k], check);
    }
    cr_assert_gt(ran, 0, "no case for %s", op->name);
    if (getenv("TTM_TEST_VERBOSE"))
        fprintf(stderr, "%-8s %-14s %3d cases, worst err/tol %.3g at %s\n", check_name, op->name, ran,
                stats.worst, stats.where);
    dnn_free(d);
}

#define OP_TEST(check, op) \
    Test(check, op) { run_cases(&OP_##op, check_##check, #check); }
#define FORWARD_TESTS(op) OP_TEST(forward, op)
#define GRAD_TESTS(op) OP_TEST(forward, op) OP_TEST(backward, op) OP_TEST(fd, op) OP_TEST(fd_ref, op)

GRAD_TESTS(linear)
GRAD_TESTS(layernorm)
GRAD_TESTS(act)
GRAD_TESTS(softmax)
GRAD_TESTS(attention)
GRAD_TESTS(l2norm)
GRAD_TESTS(cross_entropy)
GRAD_TESTS(entropy)
FORWARD_TESTS(matmul)
FORWARD_TESTS(log_softmax)
FORWARD_TESTS(patchify)
FORWARD_TESTS(add)
FORWARD_TESTS(add_inplace)
FORWARD_TESTS(bias_grad)
OP_TEST(reuse, matmul)
OP_TEST(reuse, linear)
OP_TEST(reuse, layernorm)
OP_TEST(reuse, act)
OP_TEST(reuse, softmax)
OP_TEST(reuse, attention)

/* ------------------------------------------------------------------ the references themselves */

/* Forward references against values computed independently (Python math, to 1e-7). */
Test(reference, known_values) {
    float y[4], s[2];
    const float x4[4] = {1, 2, 3, 4}, ones[4] = {1, 1, 1, 1}, zeros[4] = {0};
    const float gx[2] = {1.0f, -0.5f}, qx[2] = {1.0f, -2.0f}, z3[3] = {1, 2, 3};
    const float gelu_want[2] = {0.8413447460685429f, -0.15426876936299344f};
    const float quick_want[2] = {0.8457957659328212f, -0.06434137685579186f};
    const float softmax_want[3] = {0.09003057317038046f, 0.24472847105479767f, 0.6652409557748219f};
    const float logsm_want[3] = {1 - 3.40760596444438f, 2 - 3.40760596444438f, 3 - 3.40760596444438f};
    const float ln_want[4] = {-1.3416407864998738f, -0.4472135954999579f, 0.4472135954999579f, 1.3416407864998738f};
    const float l2_want[2] = {0.6f, 0.8f};
    const float v34[2] = {3, 4};

    ref_act_forward(2, OP_ACT_GELU, y, gx);
    cr_expect(tu_allclose("ref gelu", y, gelu_want, 2, 1e-7, 1e-7));
    ref_act_forward(2, OP_ACT_QUICK_GELU, y, qx);
    cr_expect(tu_allclose("ref quick_gelu", y, quick_want, 2, 1e-7, 1e-7));
    ref_softmax_forward(1, 3, y, z3);
    cr_expect(tu_allclose("ref softmax", y, softmax_want, 3, 1e-7, 1e-7));
    ref_log_softmax(1, 3, y, z3);
    cr_expect(tu_allclose("ref log_softmax", y, logsm_want, 3, 1e-7, 1e-7));
    ref_layernorm_forward(1, 4, 0.0f, y, s, s + 1, x4, ones, zeros);
    cr_expect(tu_allclose("ref layernorm", y, ln_want, 4, 1e-7, 1e-7));
    cr_expect_float_eq(s[0], 2.5f, 1e-7);
    cr_expect_float_eq(s[1], 1.25f, 1e-7); /* biased variance */
    ref_l2norm_forward(1, 2, y, s, v34);
    cr_expect(tu_allclose("ref l2norm", y, l2_want, 2, 1e-7, 1e-7));
    cr_expect_float_eq(s[0], 5.0f, 1e-6);
    int label = 2;
    cr_expect_float_eq(ref_cross_entropy(1, 3, NULL, z3, &label, 1.0f), 3.40760596444438 - 3, 1e-12);
    cr_expect_float_eq(ref_entropy(1, 3, NULL, z3, 2.0f), 2 * 0.8323955818399389, 1e-12);
    cr_expect_float_eq(ref_entropy(1, 2, NULL, zeros, 1.0f), log(2.0), 1e-12);

    /* matmul: [[1,2],[3,4]] . [[1,1],[1,1]] + [1,0] = [[4,3],[8,7]]; transposed A: [[1,3],[2,4]]^T = A */
    const float A[4] = {1, 2, 3, 4}, At[4] = {1, 3, 2, 4}, bias[2] = {1, 0}, mm_want[4] = {4, 3, 8, 7};
    ref_matmul(1, 2, 2, 2, false, false, false, A, ones, bias, y, false);
    cr_expect(tu_allclose("ref matmul", y, mm_want, 4, 1e-7, 0));
    ref_matmul(1, 2, 2, 2, true, true, false, At, ones, bias, y, false);
    cr_expect(tu_allclose("ref matmul trans", y, mm_want, 4, 1e-7, 0));

    /* attention with T = 1 returns v and probability 1 */
    const float qkv[6] = {0.3f, -1, 2, 0.5f, 7, -8};
    float out[2], p[2];
    ref_attention_forward(1, 1, 2, 2, out, p, qkv);
    cr_expect(tu_allclose("ref attention T=1", out, qkv + 4, 2, 1e-7, 0));
    cr_expect(tu_allclose("ref attention probs T=1", p, ones, 2, 1e-7, 0));
}

/* The packing policy: a linear whose w has 65536 floats or more, on at least `out` rows, reads w
 * packed (forward and dx; checked against the reference by the rows above); small ones read w in
 * place. Unless TTMERGE_PACK=0, which turns packing off everywhere. */
Test(linear, packs_large_weights) {
    tt_err e = {0};
    dnn *d;
    cr_assert_eq(dnn_create(&d, &e), 0, "%s", e.msg);
    const char *off = getenv("TTMERGE_PACK");
    bool enabled = !(off && !strcmp(off, "0"));
    struct { int M, in, out; bool packed; } rows[] = {
        {300, 256, 256, true}, {96, 1024, 64, true}, {17, 13, 7, false}, {200, 768, 768, false}, {255, 256, 256, false}};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        op_linear op;
        cr_assert_eq(op_linear_init(&op, d, rows[i].M, rows[i].in, rows[i].out, true, &e), 0, "%s", e.msg);
        bool want = enabled && rows[i].packed;
        cr_expect_eq(op.pack_w, want, "M=%d in=%d out=%d: pack_w %d", rows[i].M, rows[i].in, rows[i].out, op.pack_w);
        /* oneDNN may keep a plain layout on some CPU (then nothing is reordered); never the reverse */
        cr_expect(want || !dnn_matmul_packed(op.fwd), "forward packed without asking");
        cr_expect(want || !dnn_matmul_packed(op.bwd_x), "dx packed without asking");
        cr_expect(!dnn_matmul_packed(op.bwd_w), "dw never packs its B (the activations)");
        if (want && !dnn_matmul_packed(op.fwd)) cr_log_warn("oneDNN kept w plain for M=%d in=%d out=%d", rows[i].M, rows[i].in, rows[i].out);
        op_linear_free(&op);
    }
    dnn_free(d);
}

/* op_bias_grad's column blocks are as wide as the layer and the threads allow, but every db[j] is
 * the same row-by-row f32 sum: the bits do not depend on the thread count (1, 2 and 3 threads give
 * 128-, 16- and 16-column blocks for 300 columns; 1 and 2 threads both 128 for 1100). */
Test(bias_grad, same_bits_for_any_thread_count) {
    int shapes[][2] = {{500, 300}, {200, 1100}};
    for (int s = 0; s < 2; s++) {
        int M = shapes[s][0], N = shapes[s][1];
        float *dy = alloc_floats((size_t)M * N), *want = alloc_floats((size_t)N), *got = alloc_floats((size_t)N);
        rng r;
        rng_init(&r, 7);
        for (size_t i = 0; i < (size_t)M * N; i++) dy[i] = (float)rng_uniform(&r) - 0.5f;
        int saved = omp_get_max_threads();
        omp_set_num_threads(1);
        op_bias_grad(want, dy, M, N);
        for (int t = 2; t <= 3; t++) {
            memset(got, 0, (size_t)N * sizeof(float));
            omp_set_num_threads(t);
            op_bias_grad(got, dy, M, N);
            cr_expect(!memcmp(got, want, (size_t)N * sizeof(float)), "%dx%d: %d threads differ from 1", M, N, t);
        }
        omp_set_num_threads(saved);
        free(dy);
        free(want);
        free(got);
    }
}
