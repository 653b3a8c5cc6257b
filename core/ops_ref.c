/* ops_ref.c — naive references for core/ops.h: plain loops in double, no OpenMP. See ops_ref.h. */
#include "core/ops_ref.h"

#include <math.h>
#include <stdlib.h>

/* ------------------------------------------------------------------ matmul, linear */

void ref_matmul(int batch, int M, int K, int N, bool trans_a, bool trans_b, bool b_broadcast,
                const float *A, const float *B, const float *bias, float *C, bool accumulate) {
    for (int bt = 0; bt < batch; bt++) {
        const float *a = A + (size_t)bt * M * K;
        const float *bm = B + (b_broadcast ? 0 : (size_t)bt * K * N);
        float *c = C + (size_t)bt * M * N;
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                double s = bias ? bias[j] : 0.0;
                for (int k = 0; k < K; k++) {
                    double aik = trans_a ? a[(size_t)k * M + i] : a[(size_t)i * K + k];
                    double bkj = trans_b ? bm[(size_t)j * K + k] : bm[(size_t)k * N + j];
                    s += aik * bkj;
                }
                float *cij = &c[(size_t)i * N + j];
                *cij = (float)(accumulate ? *cij + s : s);
            }
    }
}

void ref_linear_forward(int M, int in, int out, float *y, const float *x, const float *w,
                        const float *b) {
    for (int m = 0; m < M; m++)
        for (int o = 0; o < out; o++) {
            double s = b ? b[o] : 0.0;
            for (int i = 0; i < in; i++) s += (double)x[(size_t)m * in + i] * w[(size_t)o * in + i];
            y[(size_t)m * out + o] = (float)s;
        }
}

void ref_linear_backward(int M, int in, int out, float *dx, float *dw, float *db, const float *dy,
                         const float *x, const float *w) {
    if (dx)
        for (int m = 0; m < M; m++)
            for (int i = 0; i < in; i++) {
                double s = 0;
                for (int o = 0; o < out; o++) s += (double)dy[(size_t)m * out + o] * w[(size_t)o * in + i];
                dx[(size_t)m * in + i] = (float)s;
            }
    if (dw)
        for (int o = 0; o < out; o++)
            for (int i = 0; i < in; i++) {
                double s = 0;
                for (int m = 0; m < M; m++) s += (double)dy[(size_t)m * out + o] * x[(size_t)m * in + i];
                dw[(size_t)o * in + i] += (float)s;
            }
    if (db) ref_bias_grad(db, dy, M, out);
}

/* ------------------------------------------------------------------ layer norm */

void ref_layernorm_forward(int M, int C, float eps, float *y, float *mean, float *var,
                           const float *x, const float *g, const float *b) {
    for (int m = 0; m < M; m++) {
        const float *xr = x + (size_t)m * C;
        double mu = 0, v = 0;
        for (int c = 0; c < C; c++) mu += xr[c];
        mu /= C;
        for (int c = 0; c < C; c++) v += (xr[c] - mu) * (xr[c] - mu);
        v /= C;
        double rstd = 1.0 / sqrt(v + eps);
        for (int c = 0; c < C; c++) y[(size_t)m * C + c] = (float)((xr[c] - mu) * rstd * g[c] + b[c]);
        mean[m] = (float)mu;
        var[m] = (float)v;
    }
}

void ref_layernorm_backward(int M, int C, float eps, float *dx, float *dg, float *db,
                            const float *dy, const float *x, const float *mean, const float *var,
                            const float *g) {
    for (int m = 0; m < M; m++) {
        const float *xr = x + (size_t)m * C, *dyr = dy + (size_t)m * C;
        double rstd = 1.0 / sqrt((double)var[m] + eps);
        /* xhat = (x - mean) rstd; dxhat = dy g; dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)) */
        double sum_dxhat = 0, sum_dxhat_xhat = 0;
        for (int c = 0; c < C; c++) {
            double xhat = (xr[c] - (double)mean[m]) * rstd, dxhat = (double)dyr[c] * g[c];
            sum_dxhat += dxhat;
            sum_dxhat_xhat += dxhat * xhat;
            if (dg) dg[c] += (float)(dyr[c] * xhat);
            if (db) db[c] += dyr[c];
        }
        if (dx)
            for (int c = 0; c < C; c++) {
                double xhat = (xr[c] - (double)mean[m]) * rstd, dxhat = (double)dyr[c] * g[c];
                dx[(size_t)m * C + c] = (float)(rstd * (dxhat - sum_dxhat / C - xhat * sum_dxhat_xhat / C));
            }
    }
}

/* ------------------------------------------------------------------ activations */

#define QUICK_GELU_ALPHA 1.702

static double sigmoid(double z) { return 1.0 / (1.0 + exp(-z)); }

void ref_act_forward(size_t n, op_act_kind kind, float *y, const float *x) {
    for (size_t i = 0; i < n; i++) {
        double v = x[i];
        y[i] = (float)(kind == OP_ACT_GELU ? 0.5 * v * (1.0 + erf(v / sqrt(2.0)))
                                           : v * sigmoid(QUICK_GELU_ALPHA * v));
    }
}

void ref_act_backward(size_t n, op_act_kind kind, float *dx, const float *dy, const float *x) {
    for (size_t i = 0; i < n; i++) {
        double v = x[i], d;
        if (kind == OP_ACT_GELU) { /* Phi(v) + v phi(v) */
            d = 0.5 * (1.0 + erf(v / sqrt(2.0))) + v * exp(-0.5 * v * v) / sqrt(2.0 * M_PI);
        } else { /* s + a v s (1 - s), s = sigmoid(a v) */
            double s = sigmoid(QUICK_GELU_ALPHA * v);
            d = s + QUICK_GELU_ALPHA * v * s * (1.0 - s);
        }
        dx[i] = (float)(dy[i] * d);
    }
}

/* ------------------------------------------------------------------ softmax */

/* log sum_c exp(x[c]), shifted by the max for range */
static double logsumexp(const float *x, int n) {
    double mx = x[0], s = 0;
    for (int c = 1; c < n; c++) mx = x[c] > mx ? x[c] : mx;
    for (int c = 0; c < n; c++) s += exp(x[c] - mx);
    return mx + log(s);
}

void ref_softmax_forward(int rows, int cols, float *y, const float *x) {
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * cols;
        double lse = logsumexp(xr, cols);
        for (int c = 0; c < cols; c++) y[(size_t)r * cols + c] = (float)exp(xr[c] - lse);
    }
}

void ref_softmax_backward(int rows, int cols, float *dx, const float *dy, const float *y) {
    for (int r = 0; r < rows; r++) {
        const float *yr = y + (size_t)r * cols, *dyr = dy + (size_t)r * cols;
        double dot = 0;
        for (int c = 0; c < cols; c++) dot += (double)dyr[c] * yr[c];
        for (int c = 0; c < cols; c++) dx[(size_t)r * cols + c] = (float)(yr[c] * (dyr[c] - dot));
    }
}

void ref_log_softmax(int rows, int cols, float *y, const float *x) {
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * cols;
        double lse = logsumexp(xr, cols);
        for (int c = 0; c < cols; c++) y[(size_t)r * cols + c] = (float)(xr[c] - lse);
    }
}

/* ------------------------------------------------------------------ attention */

/* Element j of the q (part 0), k (1) or v (2) vector of head h, token t of batch b. */
static size_t qkv_at(int T, int W, int H, int b, int t, int part, int h, int j) {
    return ((size_t)b * T + t) * 3 * W + (size_t)part * W + (size_t)h * (W / H) + j;
}

void ref_attention_forward(int B, int T, int W, int H, float *out, float *probs, const float *qkv) {
    int hd = W / H;
    double scale = 1.0 / sqrt((double)hd);
    double *s = malloc((size_t)T * sizeof(double));
    TT_ASSERT(s != NULL);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < T; i++) {
                /* s_j = q_i . k_j * scale; p = softmax(s) */
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j < T; j++) {
                    double dot = 0;
                    for (int e = 0; e < hd; e++)
                        dot += (double)qkv[qkv_at(T, W, H, b, i, 0, h, e)] * qkv[qkv_at(T, W, H, b, j, 1, h, e)];
                    s[j] = dot * scale;
                    mx = s[j] > mx ? s[j] : mx;
                }
                for (int j = 0; j < T; j++) sum += (s[j] = exp(s[j] - mx));
                float *p = probs + (((size_t)b * H + h) * T + i) * T;
                for (int j = 0; j < T; j++) p[j] = (float)(s[j] / sum);
                /* out_i = sum_j p_j v_j */
                for (int e = 0; e < hd; e++) {
                    double o = 0;
                    for (int j = 0; j < T; j++) o += s[j] / sum * qkv[qkv_at(T, W, H, b, j, 2, h, e)];
                    out[((size_t)b * T + i) * W + (size_t)h * hd + e] = (float)o;
                }
            }
    free(s);
}

void ref_attention_backward(int B, int T, int W, int H, float *dqkv, const float *dout,
                            const float *qkv, const float *probs) {
    int hd = W / H;
    double scale = 1.0 / sqrt((double)hd);
    double *ds = malloc((size_t)T * T * sizeof(double)); /* d scores [T,T] of one head */
    TT_ASSERT(ds != NULL);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const float *p = probs + ((size_t)b * H + h) * T * T;
            const float *dO = dout + (size_t)b * T * W + (size_t)h * hd; /* row i at dO[i*W] */
            /* dp_ij = dout_i . v_j; ds_ij = p_ij (dp_ij - sum_j' p_ij' dp_ij') */
            for (int i = 0; i < T; i++) {
                double dot = 0;
                for (int j = 0; j < T; j++) {
                    double dp = 0;
                    for (int e = 0; e < hd; e++)
                        dp += (double)dO[(size_t)i * W + e] * qkv[qkv_at(T, W, H, b, j, 2, h, e)];
                    ds[(size_t)i * T + j] = dp;
                    dot += p[(size_t)i * T + j] * dp;
                }
                for (int j = 0; j < T; j++) ds[(size_t)i * T + j] = p[(size_t)i * T + j] * (ds[(size_t)i * T + j] - dot);
            }
            for (int t = 0; t < T; t++)
                for (int e = 0; e < hd; e++) {
                    /* dq_t = scale sum_j ds_tj k_j; dk_t = scale sum_i ds_it q_i; dv_t = sum_i p_it dout_i */
                    double dq = 0, dk = 0, dv = 0;
                    for (int u = 0; u < T; u++) {
                        dq += ds[(size_t)t * T + u] * qkv[qkv_at(T, W, H, b, u, 1, h, e)];
                        dk += ds[(size_t)u * T + t] * qkv[qkv_at(T, W, H, b, u, 0, h, e)];
                        dv += (double)p[(size_t)u * T + t] * dO[(size_t)u * W + e];
                    }
                    dqkv[qkv_at(T, W, H, b, t, 0, h, e)] = (float)(scale * dq);
                    dqkv[qkv_at(T, W, H, b, t, 1, h, e)] = (float)(scale * dk);
                    dqkv[qkv_at(T, W, H, b, t, 2, h, e)] = (float)dv;
                }
        }
    free(ds);
}

/* ------------------------------------------------------------------ l2 norm */

#define L2NORM_EPS 1e-12

void ref_l2norm_forward(int rows, int cols, float *y, float *norm, const float *x) {
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * cols;
        double s = 0;
        for (int c = 0; c < cols; c++) s += (double)xr[c] * xr[c];
        double n = fmax(sqrt(s), L2NORM_EPS);
        for (int c = 0; c < cols; c++) y[(size_t)r * cols + c] = (float)(xr[c] / n);
        norm[r] = (float)n;
    }
}

void ref_l2norm_backward(int rows, int cols, float *dx, const float *dy, const float *y,
                         const float *norm) {
    for (int r = 0; r < rows; r++) {
        const float *yr = y + (size_t)r * cols, *dyr = dy + (size_t)r * cols;
        double dot = 0;
        for (int c = 0; c < cols; c++) dot += (double)yr[c] * dyr[c];
        for (int c = 0; c < cols; c++) dx[(size_t)r * cols + c] = (float)((dyr[c] - yr[c] * dot) / norm[r]);
    }
}

/* ------------------------------------------------------------------ losses */

double ref_cross_entropy(int B, int C, float *dlogits, const float *logits, const int *labels,
                         float weight) {
    double total = 0;
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * C;
        double lse = logsumexp(z, C);
        total += lse - z[labels[b]];
        if (dlogits)
            for (int c = 0; c < C; c++)
                dlogits[(size_t)b * C + c] = (float)(weight * (exp(z[c] - lse) - (c == labels[b])) / B);
    }
    return weight * total / B;
}

double ref_entropy(int B, int C, float *dlogits, const float *logits, float weight) {
    double total = 0;
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * C;
        double lse = logsumexp(z, C), h = 0;
        for (int c = 0; c < C; c++) h -= exp(z[c] - lse) * (z[c] - lse);
        total += h;
        if (dlogits)
            for (int c = 0; c < C; c++) {
                double logp = z[c] - lse;
                dlogits[(size_t)b * C + c] = (float)(-weight * exp(logp) * (logp + h) / B);
            }
    }
    return weight * total / B;
}

/* ------------------------------------------------------------------ data movement */

void ref_patchify(float *patches, const float *images, int B, int C, int S, int p) {
    int g = S / p, cols = C * p * p;
    for (int b = 0; b < B; b++)
        for (int gy = 0; gy < g; gy++)
            for (int gx = 0; gx < g; gx++)
                for (int c = 0; c < C; c++)
                    for (int ky = 0; ky < p; ky++)
                        for (int kx = 0; kx < p; kx++) {
                            size_t row = (size_t)b * g * g + (size_t)gy * g + gx;
                            size_t src = (((size_t)b * C + c) * S + (size_t)gy * p + ky) * S + (size_t)gx * p + kx;
                            patches[row * cols + (size_t)c * p * p + (size_t)ky * p + kx] = images[src];
                        }
}

void ref_add(float *y, const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

void ref_bias_grad(float *db, const float *dy, int M, int N) {
    for (int j = 0; j < N; j++) {
        double s = 0;
        for (int i = 0; i < M; i++) s += dy[(size_t)i * N + j];
        db[j] += (float)s;
    }
}
