/* ties_kernels.c — the TIES kernels of kernels.h (the method: ties.c): the threshold's rank, the
 * one-task and K-way trim / sum / elect / disjoint passes and the fused pass, shared by the suite's
 * merges and the any-model engine (anymerge.c). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "baselines/kernels.h"
#include "baselines/select.h"
#include "core/cpu.h"
#ifdef __AVX2__
#include <immintrin.h>
#endif

bool ties_threshold_rank(uint64_t d, double topk, uint64_t *rank) {
    uint64_t keep = (uint64_t)((double)d * (topk / 100.0));
    if (keep > d) keep = d;
    if (keep == d) return false;
    *rank = d - keep - 1; /* kthvalue's k = d − keep is 1-based */
    return true;
}

float ties_threshold_array(const float *tv, size_t n, double topk) {
    uint64_t rank;
    return ties_threshold_rank(n, topk, &rank) ? select_kth(tv, n, rank, true) : 0.0f;
}

size_t ties_trim_add(float *acc, const float *tv, size_t n, float thr) {
    size_t kept = 0;
#pragma omp parallel for schedule(static) reduction(+ : kept) if (n > KERN_PAR_MIN)
    for (size_t i = 0; i < n; i++)
        if (fabsf(tv[i]) >= thr && tv[i] != 0) {
            acc[i] += tv[i];
            kept++;
        }
    return kept;
}

int64_t ties_sign_balance(const float *sum, size_t n) {
    int64_t b = 0;
#pragma omp parallel for schedule(static) reduction(+ : b) if (n > KERN_PAR_MIN)
    for (size_t i = 0; i < n; i++) b += (sum[i] > 0) - (sum[i] < 0);
    return b;
}

void ties_elect(int8_t *sign, const float *sum, size_t n, int8_t majority) {
#pragma omp parallel for schedule(static) if (n > KERN_PAR_MIN)
    for (size_t i = 0; i < n; i++) sign[i] = sum[i] > 0 ? 1 : sum[i] < 0 ? -1 : majority;
}

void ties_disjoint_add(float *out, uint8_t *cnt, const int8_t *sign, const float *tv, size_t n, float thr) {
#pragma omp parallel for schedule(static) if (n > KERN_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float x = tv[i];
        /* official: sign > 0 keeps positive trimmed entries, otherwise negative ones */
        if (fabsf(x) >= thr && (sign[i] > 0 ? x > 0 : x < 0)) {
            out[i] += x;
            cnt[i]++;
        }
    }
}

void ties_disjoint_finish(float *out, const uint8_t *cnt, size_t n, bool mean) {
    if (!mean) return;
#pragma omp parallel for schedule(static) if (n > KERN_PAR_MIN)
    for (size_t i = 0; i < n; i++)
        if (cnt[i] > 1) out[i] /= (float)cnt[i];
}

/* The K-way passes (kernels.h). The keep decisions are data-dependent coin flips that a branch
 * predictor loses, so the bodies are branch-free and vectorise: the tests are integer compares
 * on the float bits (|x| >= t ⇔ (bits(x) & 0x7fffffff) >= bits(t) for finite x and t >= 0; gcc
 * does not vectorise float compares under -ftrapping-math), and a rejected x is added as +0.0f
 * (bits(x) & 0): exact, since an accumulator that starts at +0 and adds non-zero values is never
 * −0. Inlined with a constant `diff` so that x_k = a_k − b and x_k = a_k are each a plain loop. */
static inline uint32_t f2u(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}
static inline float u2f(uint32_t u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* task k's trim added into sum[0..m); returns the entries kept (restrict parameters: gcc honours
 * them here, and vectorises without runtime alias checks) */
static inline uint32_t trim_add_task(float *restrict sum, const float *restrict ak, const float *restrict bk, size_t m,
                                     uint32_t tb, bool diff) {
    uint32_t c = 0;
    for (size_t j = 0; j < m; j++) {
        uint32_t u = f2u(diff ? ak[j] - bk[j] : ak[j]), mag = u & 0x7FFFFFFFu;
        uint32_t keep = (mag >= tb) & (mag != 0);
        sum[j] += u2f(u & (0u - keep));
        c += keep;
    }
    return c;
}

static inline int64_t trim_sum_block(float *restrict sum, const float *const *a, const float *b, int K, size_t m,
                                     const float *thr, uint64_t *kept, bool diff) {
    for (size_t j = 0; j < m; j++) sum[j] = 0;
    for (int k = 0; k < K; k++) kept[k] += trim_add_task(sum, a[k], b, m, f2u(thr[k]), diff);
    int32_t balance = 0; /* Σ sign(sum): non-zero entries count +1, or −1 with the sign bit */
    for (size_t j = 0; j < m; j++) {
        uint32_t u = f2u(sum[j]);
        balance += (int32_t)((u & 0x7FFFFFFFu) != 0) * (1 - 2 * (int32_t)(u >> 31));
    }
    return balance;
}

int64_t ties_trim_sum_k(float *sum, const float *const *a, const float *b, int K, size_t n, const float *thr,
                        uint64_t *kept) {
    TT_ASSERT(K >= 1 && K <= KERN_MAX_K);
    size_t nb = (n + KERN_BLOCK - 1) / KERN_BLOCK;
    int64_t balance = 0;
#pragma omp parallel for schedule(static) reduction(+ : balance) reduction(+ : kept[:K]) if (n * (size_t)K > KERN_PAR_MIN)
    for (size_t blk = 0; blk < nb; blk++) {
        size_t lo = blk * KERN_BLOCK, m = lo + KERN_BLOCK < n ? KERN_BLOCK : n - lo;
        const float *ab[KERN_MAX_K];
        for (int k = 0; k < K; k++) ab[k] = a[k] + lo;
        balance += b ? trim_sum_block(sum + lo, ab, b + lo, K, m, thr, kept, true)
                     : trim_sum_block(sum + lo, ab, NULL, K, m, thr, kept, false);
    }
    return balance;
}

/* One block of the disjoint merge. The elected sign is kept as a sign bit: x agrees when it is
 * non-zero with that sign bit; a zero sum with majority 0 acts as −1 (the official rule keeps only
 * negative entries there). */
/* task k's agreeing trimmed entries added into out and counted (restrict: see trim_add_task) */
static inline void disjoint_add_task(float *restrict out, int32_t *restrict cnt, const uint32_t *restrict sgn,
                                     const float *restrict ak, const float *restrict bk, size_t m, uint32_t tb,
                                     bool diff) {
    for (size_t j = 0; j < m; j++) {
        uint32_t u = f2u(diff ? ak[j] - bk[j] : ak[j]), mag = u & 0x7FFFFFFFu;
        uint32_t ok = (mag >= tb) & (mag != 0) & ((u & 0x80000000u) == sgn[j]);
        out[j] += u2f(u & (0u - ok));
        cnt[j] += (int32_t)ok;
    }
}

/* out /= count where count > 1 — as out / (count + (count == 0)): dividing by 1 is exact, and
 * without a select gcc vectorises the division */
static inline void disjoint_mean(float *restrict out, const int32_t *restrict cnt, size_t m) {
    for (size_t j = 0; j < m; j++) out[j] = out[j] / (float)(cnt[j] + (cnt[j] == 0));
}

static inline void disjoint_block(float *restrict out, const float *const *a, const float *b, int K, size_t m,
                                  const float *thr, uint32_t zero_sign, bool mean, bool diff) {
    uint32_t sgn[KERN_BLOCK];
    int32_t cnt[KERN_BLOCK];
    for (size_t j = 0; j < m; j++) {
        uint32_t u = f2u(out[j]);
        sgn[j] = (u & 0x7FFFFFFFu) ? u & 0x80000000u : zero_sign;
        cnt[j] = 0;
        out[j] = 0;
    }
    for (int k = 0; k < K; k++) disjoint_add_task(out, cnt, sgn, a[k], b, m, f2u(thr[k]), diff);
    if (mean) disjoint_mean(out, cnt, m);
}

void ties_disjoint_k(float *out, const float *const *a, const float *b, int K, size_t n, const float *thr,
                     int8_t majority, bool mean) {
    TT_ASSERT(K >= 1 && K <= KERN_MAX_K);
    size_t nb = (n + KERN_BLOCK - 1) / KERN_BLOCK;
    uint32_t zero_sign = majority > 0 ? 0 : 0x80000000u;
#pragma omp parallel for schedule(static) if (n * (size_t)K > KERN_PAR_MIN)
    for (size_t blk = 0; blk < nb; blk++) {
        size_t lo = blk * KERN_BLOCK, m = lo + KERN_BLOCK < n ? KERN_BLOCK : n - lo;
        const float *ab[KERN_MAX_K];
        for (int k = 0; k < K; k++) ab[k] = a[k] + lo;
        if (b) disjoint_block(out + lo, ab, b + lo, K, m, thr, zero_sign, mean, true);
        else disjoint_block(out + lo, ab, NULL, K, m, thr, zero_sign, mean, false);
    }
}

/* Append entry i to the list of entries awaiting the majority (exact cancellations): from any
 * thread, in any order; the count goes on past cap so that the caller sees the overflow. */
void ties_list_undecided(uint64_t *und, size_t cap, size_t *n_und, uint64_t i) {
    size_t slot;
#pragma omp atomic capture
    slot = (*n_und)++;
    if (slot < cap) und[slot] = i;
}

/* The fused pass (kernels.h): trim + sum into out, then the disjoint merge in place with a zero
 * sum's sign taken as negative — trim_sum_block then disjoint_block with zero_sign for majority
 * <= 0, the same floats in the same order. An entry whose sum is 0 but which keeps values must hold
 * kept values of both signs (a sum of same-signed non-zero floats is never 0), so with a negative
 * elected sign its count is > 0: exactly those entries depend on the majority, and are listed. */
static inline int64_t fused_block(float *restrict out, const float *const *a, const float *b, int K, size_t m,
                                  const float *thr, uint64_t *kept, bool mean, bool diff, uint64_t base,
                                  uint64_t *und, size_t cap, size_t *n_und) {
    int64_t balance = trim_sum_block(out, a, b, K, m, thr, kept, diff);
    uint32_t sgn[KERN_BLOCK];
    int32_t cnt[KERN_BLOCK];
    uint8_t zero[KERN_BLOCK];
    for (size_t j = 0; j < m; j++) {
        uint32_t u = f2u(out[j]), z = (u & 0x7FFFFFFFu) == 0;
        zero[j] = (uint8_t)z;
        sgn[j] = z ? 0x80000000u : u & 0x80000000u;
        cnt[j] = 0;
        out[j] = 0;
    }
    for (int k = 0; k < K; k++) disjoint_add_task(out, cnt, sgn, a[k], b, m, f2u(thr[k]), diff);
    for (size_t j = 0; j < m; j++)
        if (zero[j] & (cnt[j] != 0)) ties_list_undecided(und, cap, n_und, base + j); /* rare */
    if (mean) disjoint_mean(out, cnt, m);
    return balance;
}

/* Where the fused vector kernels read τ_k: float rows (x_k = a_k, or a_k − b: the K-way
 * convention), or the raw BF16 rows of the models against θ0 as floats in b (x_k = h_k − b, times
 * w_k unless every weight is 1: the any-model engine's task vectors, task_vector_from's floats). */
typedef enum { TAU_F32, TAU_F32_DIFF, TAU_BF16 } tau_kind;
typedef struct tau_rows {
    const float *const *a;
    const uint16_t *const *h;
    const float *b, *w; /* w: NULL for unit weights */
} tau_rows;

/* A float of BF16 bits h (their exponent all ones: not finite, or-ed into *bad). */
static inline float bf16_value(uint16_t h, uint32_t *bad) {
    uint32_t u = (uint32_t)h << 16;
    *bad |= (u & 0x7f800000u) == 0x7f800000u;
    return u2f(u);
}

/* x_k[j] for j in [from, m) into rows[k][0, m − from) (at most 16), then fused_block on them: the
 * vector kernels' last entries, the same floats. kept: NULL when the caller does not count. */
static inline int64_t fused_tail(float *out, const tau_rows *r, tau_kind kind, int K, size_t from, size_t m,
                                 const float *thr, uint64_t *kept, bool mean, uint64_t base, uint64_t *und,
                                 size_t cap, size_t *n_und, uint32_t *bad) {
    if (from == m) return 0;
    float rows[KERN_MAX_K][16];
    const float *x[KERN_MAX_K];
    for (int k = 0; k < K; k++) {
        for (size_t j = from; j < m; j++) {
            float v = kind == TAU_BF16 ? bf16_value(r->h[k][j], bad) : r->a[k][j];
            v = kind == TAU_F32 ? v : v - r->b[j];
            rows[k][j - from] = kind == TAU_BF16 && r->w ? r->w[k] * v : v;
        }
        x[k] = rows[k];
    }
    uint64_t uncounted[KERN_MAX_K];
    return fused_block(out + from, x, NULL, K, m - from, thr, kept ? kept : uncounted, mean, false, base + from, und,
                       cap, n_und);
}

/* The fused pass per entry with all K tasks in registers: 8 entries at a time (GCC vector
 * extensions: AVX2 at x86-64-v3, two SSE halves at v2), the K values of an entry loaded and formed
 * once — each kept τ_k is held (in registers or L1) for the disjoint step, which forming it again
 * cost ~10% of the pass — and no sum / sign / count arrays between the task loops (the per-task
 * loops above stream them through L1 K times). Every float operation is the one the per-task loops
 * do, in the same order, so the results are the same bits; entries past the last multiple of 8 go
 * through fused_tail. Inlined with a constant kind: one loop each. */
typedef int32_t v8i __attribute__((vector_size(32)));
typedef uint32_t v8u __attribute__((vector_size(32)));
typedef float v8f __attribute__((vector_size(32)));
#define V8 8

/* x_k of the 8 entries at j into *x (bj: θ0 there, for the kinds with a base; the 32-byte vectors
 * go by pointer: by value they are an ABI question at x86-64-v2). */
static inline __attribute__((always_inline)) void tau_v8(const tau_rows *r, tau_kind kind, int k, size_t j,
                                                          const v8f *bj, v8u *bad, v8f *out) {
    v8f x;
    if (kind != TAU_BF16) {
        memcpy(&x, r->a[k] + j, sizeof x);
        *out = kind == TAU_F32_DIFF ? x - *bj : x;
        return;
    }
    v8u u;
#ifdef __AVX2__ /* one widening load; GCC builds the generic form from two 128-bit halves */
    __m256i wide = _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(r->h[k] + j))), 16);
    memcpy(&u, &wide, sizeof u);
#else
    typedef uint16_t v8h __attribute__((vector_size(16)));
    v8h h;
    memcpy(&h, r->h[k] + j, sizeof h);
    u = __builtin_convertvector(h, v8u) << 16;
#endif
    *bad |= (v8u)((u & 0x7f800000u) == 0x7f800000u);
    memcpy(&x, &u, sizeof x);
    x = x - *bj;
    *out = r->w ? r->w[k] * x : x;
}

static inline __attribute__((always_inline)) int64_t
fused_block_v8(float *restrict out, const tau_rows *r, tau_kind kind, int K, size_t m, const float *thr,
               uint64_t *kept, bool mean, uint64_t base, uint64_t *und, size_t cap, size_t *n_und, uint32_t *bad) {
    const v8i absmask = {0x7FFFFFFF, 0x7FFFFFFF, 0x7FFFFFFF, 0x7FFFFFFF, 0x7FFFFFFF, 0x7FFFFFFF, 0x7FFFFFFF, 0x7FFFFFFF};
    const v8i signbit = ~absmask, zero = absmask ^ absmask;
    v8i tb[KERN_MAX_K], kc[KERN_MAX_K];
    for (int k = 0; k < K; k++) {
        int32_t t;
        memcpy(&t, &thr[k], sizeof t);
        tb[k] = zero + t; /* thresholds are >= 0: their bits compare as signed ints like magnitudes */
        kc[k] = zero;
    }
    v8i bal = zero;
    v8u vbad = {0};
    size_t m8 = m - m % V8;
    for (size_t j = 0; j < m8; j += V8) {
        v8f bj = {0};
        if (kind != TAU_F32) memcpy(&bj, r->b + j, sizeof bj);
        v8f sum = {0};
        v8i kx[KERN_MAX_K]; /* τ_k's kept bits (u & keep), for the second loop */
        for (int k = 0; k < K; k++) {
            v8f x;
            tau_v8(r, kind, k, j, &bj, &vbad, &x);
            v8i u = (v8i)x, mag = u & absmask;
            v8i keep = (mag >= tb[k]) & (mag != zero); /* -1 / 0 */
            kx[k] = u & keep;
            sum = sum + (v8f)kx[k];
            if (kept) kc[k] -= keep;
        }
        v8i su = (v8i)sum, nz = (su & absmask) != zero;
        bal += nz & ((su < zero) | 1); /* +1, or -1 with the sign bit */
        v8i sgn = (su & signbit & nz) | (signbit & ~nz); /* a zero sum elects − (majority <= 0) */
        v8f acc = {0};
        v8i cnt = zero;
        for (int k = 0; k < K; k++) { /* a kept τ_k (nonzero) with the elected sign */
            v8i u = kx[k];
            v8i ok = (u != zero) & ((u & signbit) == sgn);
            acc = acc + (v8f)(u & ok);
            cnt -= ok;
        }
        v8i wait = ~nz & (cnt != zero);
        for (int l = 0; l < V8; l++)
            if (wait[l]) ties_list_undecided(und, cap, n_und, base + j + (size_t)l); /* rare */
        if (mean) acc = acc / __builtin_convertvector(cnt + ((cnt == zero) & 1), v8f); /* cnt or 1 */
        memcpy(out + j, &acc, sizeof acc);
    }
    int64_t balance = 0;
    for (int l = 0; l < V8; l++) balance += bal[l], *bad |= vbad[l];
    for (int k = 0; k < K && kept; k++)
        for (int l = 0; l < V8; l++) kept[k] += (uint64_t)kc[k][l];
    return balance + fused_tail(out, r, kind, K, m8, m, thr, kept, mean, base, und, cap, n_und, bad);
}

#ifdef CPU_V16
/* The fused block 16 entries at a time in AVX-512 (chosen at run time, core/cpu.h): the same
 * per-entry floats as fused_block_v8 with masks instead of and-ed bits — a rejected value is not
 * added rather than added as +0, the same bits since neither accumulator is ever −0 — and one
 * unsigned compare for "kept" (mag >= max(thr bits, 1) is mag >= thr and mag != 0). Inlined with
 * constant K = 8 (the common case: thresholds and counts stay in registers) and with the caller's K,
 * for each kind. */

/* x_k of the 16 entries at j (bj: θ0 there, for the kinds with a base). */
CPU_V16_TARGET
static inline __attribute__((always_inline)) __m512 tau_v16(const tau_rows *r, tau_kind kind, int k, size_t j,
                                                             __m512 bj, __mmask16 *bad) {
    if (kind != TAU_BF16) {
        __m512 x = _mm512_loadu_ps(r->a[k] + j);
        return kind == TAU_F32_DIFF ? _mm512_sub_ps(x, bj) : x;
    }
    const __m512i exp = _mm512_set1_epi32(0x7f800000);
    __m512i u = _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(r->h[k] + j))), 16);
    *bad |= _mm512_cmpeq_epi32_mask(_mm512_and_si512(u, exp), exp);
    __m512 x = _mm512_sub_ps(_mm512_castsi512_ps(u), bj);
    return r->w ? _mm512_mul_ps(_mm512_set1_ps(r->w[k]), x) : x;
}

CPU_V16_TARGET
static inline __attribute__((always_inline)) int64_t
fused_block_v16_body(float *restrict out, const tau_rows *r, tau_kind kind, int K, size_t m, const float *thr,
                     uint64_t *kept, bool mean, uint64_t base, uint64_t *und, size_t cap, size_t *n_und,
                     uint32_t *bad) {
    const __m512i absmask = _mm512_set1_epi32(0x7FFFFFFF), one = _mm512_set1_epi32(1);
    __m512i tb[KERN_MAX_K], kc[KERN_MAX_K];
    for (int k = 0; k < K; k++) {
        uint32_t t = f2u(thr[k]);
        tb[k] = _mm512_set1_epi32((int32_t)(t ? t : 1)); /* thresholds are >= 0 */
        kc[k] = _mm512_setzero_si512();
    }
    __m512i bal = _mm512_setzero_si512();
    __mmask16 vbad = 0;
    size_t m16 = m - m % 16;
    for (size_t j = 0; j < m16; j += 16) {
        __m512 bj = kind != TAU_F32 ? _mm512_loadu_ps(r->b + j) : _mm512_setzero_ps();
        __m512 sum = _mm512_setzero_ps(), xs[KERN_MAX_K];
        __mmask16 ks[KERN_MAX_K];
        for (int k = 0; k < K; k++) {
            __m512 x = xs[k] = tau_v16(r, kind, k, j, bj, &vbad);
            __mmask16 keep = ks[k] = _mm512_cmpge_epu32_mask(_mm512_and_si512(_mm512_castps_si512(x), absmask), tb[k]);
            sum = _mm512_mask_add_ps(sum, keep, sum, x);
            if (kept) kc[k] = _mm512_mask_add_epi32(kc[k], keep, kc[k], one);
        }
        __m512i su = _mm512_castps_si512(sum);
        __mmask16 nz = _mm512_test_epi32_mask(su, absmask), neg = _mm512_movepi32_mask(su);
        bal = _mm512_mask_add_epi32(bal, nz & ~neg, bal, one);
        bal = _mm512_mask_sub_epi32(bal, nz & neg, bal, one);
        __mmask16 elect_neg = neg | ~nz; /* a zero sum elects − (majority <= 0) */
        __m512 acc = _mm512_setzero_ps();
        __m512i cnt = _mm512_setzero_si512();
        for (int k = 0; k < K; k++) { /* τ_k and its keep mask as the first loop formed them */
            __m512 x = xs[k];
            __m512i u = _mm512_castps_si512(x);
            __mmask16 ok = ks[k] & ~(_mm512_movepi32_mask(u) ^ elect_neg); /* kept, with the elected sign */
            acc = _mm512_mask_add_ps(acc, ok, acc, x);
            cnt = _mm512_mask_add_epi32(cnt, ok, cnt, one);
        }
        __mmask16 wait = (__mmask16)(~nz & _mm512_test_epi32_mask(cnt, cnt));
        if (wait) /* rare */
            for (int l = 0; l < 16; l++)
                if (wait >> l & 1) ties_list_undecided(und, cap, n_und, base + j + (size_t)l);
        if (mean) acc = _mm512_div_ps(acc, _mm512_cvtepi32_ps(_mm512_max_epi32(cnt, one))); /* cnt or 1 */
        _mm512_storeu_ps(out + j, acc);
    }
    *bad |= vbad != 0;
    int64_t balance = _mm512_reduce_add_epi32(bal);
    for (int k = 0; k < K && kept; k++) kept[k] += (uint32_t)_mm512_reduce_add_epi32(kc[k]);
    return balance + fused_tail(out, r, kind, K, m16, m, thr, kept, mean, base, und, cap, n_und, bad);
}

#define FUSED_V16(kind)                                                                                                \
    (K == 8 ? fused_block_v16_body(out, r, kind, 8, m, thr, kept, mean, base, und, cap, n_und, bad)                  \
            : fused_block_v16_body(out, r, kind, K, m, thr, kept, mean, base, und, cap, n_und, bad))

CPU_V16_TARGET
static int64_t fused_block_v16(float *restrict out, const tau_rows *r, tau_kind kind, int K, size_t m,
                               const float *thr, uint64_t *kept, bool mean, uint64_t base, uint64_t *und, size_t cap,
                               size_t *n_und, uint32_t *bad) {
    switch (kind) {
    case TAU_F32: return FUSED_V16(TAU_F32);
    case TAU_F32_DIFF: return FUSED_V16(TAU_F32_DIFF);
    default: return FUSED_V16(TAU_BF16);
    }
}
#undef FUSED_V16
#endif

/* One block of the fused pass on this thread, at the widest ISA the CPU has. */
static int64_t fused_block_any(float *out, const tau_rows *r, tau_kind kind, int K, size_t m, const float *thr,
                               uint64_t *kept, bool mean, uint64_t base, uint64_t *und, size_t cap, size_t *n_und,
                               uint32_t *bad) {
#ifdef CPU_V16
    if (cpu_isa_level() == CPU_ISA_AVX512)
        return fused_block_v16(out, r, kind, K, m, thr, kept, mean, base, und, cap, n_und, bad);
#endif
    switch (kind) {
    case TAU_F32: return fused_block_v8(out, r, TAU_F32, K, m, thr, kept, mean, base, und, cap, n_und, bad);
    case TAU_F32_DIFF: return fused_block_v8(out, r, TAU_F32_DIFF, K, m, thr, kept, mean, base, und, cap, n_und, bad);
    default: return fused_block_v8(out, r, TAU_BF16, K, m, thr, kept, mean, base, und, cap, n_und, bad);
    }
}

bool ties_fused_bf16_seq(float *out, const uint16_t *const *h, const float *b, const float *w, int K, size_t n,
                         const float *thr, bool mean, uint64_t *kept, uint64_t base, uint64_t *und, size_t cap,
                         size_t *n_und, int64_t *balance) {
    TT_ASSERT(K >= 1 && K <= KERN_MAX_K);
    tau_rows r = {.h = h, .b = b, .w = w};
    uint32_t bad = 0;
    for (size_t lo = 0; lo < n; lo += KERN_BLOCK) {
        size_t m = lo + KERN_BLOCK < n ? KERN_BLOCK : n - lo;
        const uint16_t *hb[KERN_MAX_K];
        for (int k = 0; k < K; k++) hb[k] = h[k] + lo;
        r.h = hb, r.b = b + lo;
        *balance += fused_block_any(out + lo, &r, TAU_BF16, K, m, thr, kept, mean, base + lo, und, cap, n_und, &bad);
    }
    return !bad;
}

int64_t ties_fused_k(float *out, const float *const *a, const float *b, int K, size_t n, const float *thr, bool mean,
                     uint64_t *kept, uint64_t base, uint64_t *und, size_t cap, size_t *n_und) {
    TT_ASSERT(K >= 1 && K <= KERN_MAX_K);
    size_t nb = (n + KERN_BLOCK - 1) / KERN_BLOCK;
    int64_t balance = 0;
#pragma omp parallel for schedule(static) reduction(+ : balance) reduction(+ : kept[:K]) if (n * (size_t)K > KERN_PAR_MIN)
    for (size_t blk = 0; blk < nb; blk++) {
        size_t lo = blk * KERN_BLOCK, m = lo + KERN_BLOCK < n ? KERN_BLOCK : n - lo;
        const float *ab[KERN_MAX_K];
        for (int k = 0; k < K; k++) ab[k] = a[k] + lo;
        tau_rows r = {.a = ab, .b = b ? b + lo : NULL};
        uint32_t bad = 0; /* float rows are not checked here */
        balance += fused_block_any(out + lo, &r, b ? TAU_F32_DIFF : TAU_F32, K, m, thr, kept, mean, base + lo, und,
                                   cap, n_und, &bad);
    }
    return balance;
}

static int8_t majority_of(int64_t balance) { return balance > 0 ? 1 : balance < 0 ? -1 : 0; }

int ties_merge_arrays(const float *const *tv, int K, size_t n, const float *thr, bool mean, float *out) {
    int8_t *sign = malloc(n ? n : 1);
    uint8_t *cnt = calloc(n ? n : 1, 1);
    if (!sign || !cnt) {
        free(sign);
        free(cnt);
        return -1;
    }
    memset(out, 0, n * sizeof(float));
    for (int k = 0; k < K; k++) ties_trim_add(out, tv[k], n, thr[k]);
    ties_elect(sign, out, n, majority_of(ties_sign_balance(out, n)));
    memset(out, 0, n * sizeof(float));
    for (int k = 0; k < K; k++) ties_disjoint_add(out, cnt, sign, tv[k], n, thr[k]);
    ties_disjoint_finish(out, cnt, n, mean);
    free(sign);
    free(cnt);
    return 0;
}

