/* dare_kernels.c — the DARE masks of kernels.h (the method and the masks' definition: dare.c):
 * m_k[i] = 1{ u(seed, k, key, i) < ρ } by a splitmix64 hash, kept entries rescaled by 1/ρ, shared
 * by the suite's merges and the any-model engine (anymerge.c). */
#include <math.h>
#include <string.h>
#ifdef __AVX2__
#include <immintrin.h>
#endif

#include "baselines/kernels.h"
#include "core/cpu.h"

size_t dare_apply(float *tv, size_t n, double density, uint64_t seed, int task, uint64_t tensor_key) {
    return dare_apply_at(tv, n, density, seed, task, tensor_key, 0);
}

/* The keep test kern_hash_u01_at(prefix, c) < density in integers: u = (z >> 11) 2^-53 is exact,
 * so u < density <=> (z >> 11) < density 2^53 <=> (z >> 11) < ceil(density 2^53), the scaling by a
 * power of two exact too. The same decisions, without a 64-bit integer to double conversion. */
static uint64_t keep_below(double density) {
    double t = ceil(density * 0x1p53);
    return t >= 0x1p53 ? (uint64_t)1 << 53 : (uint64_t)t;
}

/* 1 / ρ when x / ρ equals x · (1 / ρ) for every x (ρ a power of two whose reciprocal is finite),
 * else 0: the vector paths multiply then instead of dividing, the same floats. */
static float exact_reciprocal(float rho) {
    int e;
    return frexpf(rho, &e) == 0.5f && isfinite(1.0f / rho) ? 1.0f / rho : 0.0f;
}

/* Elements [lo, hi) of tv, one at a time: the kept divided by ρ, the others zeroed. */
static size_t dare_scalar(float *tv, size_t lo, size_t hi, uint64_t prefix, size_t first, uint64_t below, float rho) {
    size_t kept = 0;
    for (size_t i = lo; i < hi; i++) {
        if ((kern_mix64(prefix ^ (first + i)) >> 11) < below) {
            tv[i] /= rho;
            kept++;
        } else {
            tv[i] = 0;
        }
    }
    return kept;
}

#ifdef CPU_V16
/* The keep decisions of the eight counters in c as a mask: splitmix64 in 64-bit lanes (AVX-512DQ
 * multiplies), then z < lim with lim = below · 2^11, which is (z >> 11) < below for below < 2^53
 * (below = 2^53 keeps everything: the callers' `all` mask). */
CPU_V16_TARGET
static inline __mmask8 dare_keep8_v16(__m512i c, __m512i p, __m512i lim) {
    const __m512i gamma = _mm512_set1_epi64((long long)0x9E3779B97F4A7C15ull);
    const __m512i m1 = _mm512_set1_epi64((long long)0xBF58476D1CE4E5B9ull);
    const __m512i m2 = _mm512_set1_epi64((long long)0x94D049BB133111EBull);
    __m512i z = _mm512_add_epi64(_mm512_xor_si512(p, c), gamma);
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 30)), m1);
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 27)), m2);
    z = _mm512_xor_si512(z, _mm512_srli_epi64(z, 31));
    return _mm512_cmplt_epu64_mask(z, lim);
}

/* The limit of dare_keep8_v16 for `below`, and its mask of lanes kept whatever the hash. */
static uint64_t v16_limit(uint64_t below, uint8_t *all) {
    *all = below >> 53 ? 0xFF : 0;
    return below >> 53 ? 0 : below << 11;
}

/* Eight elements per step: the kept entries divided by ρ (multiplied by 1 / ρ when that is exact),
 * the others zeroed; the scalar tail. The floats of the scalar loop. */
CPU_V16_TARGET
static size_t dare_block_v8(float *tv, size_t n, uint64_t prefix, size_t first, uint64_t below, float rho) {
    size_t kept = 0, n8 = n - n % 8;
    uint8_t all;
    const __m512i p = _mm512_set1_epi64((long long)prefix), lim = _mm512_set1_epi64((long long)v16_limit(below, &all));
    const __m512i step = _mm512_set1_epi64(8);
    __m512i c = _mm512_add_epi64(_mm512_set1_epi64((long long)first), _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0));
    const float rcp = exact_reciprocal(rho);
    const __m256 r = _mm256_set1_ps(rho), inv = _mm256_set1_ps(rcp);
    for (size_t i = 0; i < n8; i += 8, c = _mm512_add_epi64(c, step)) {
        __mmask8 keep = dare_keep8_v16(c, p, lim) | all;
        __m256 x = _mm256_loadu_ps(tv + i);
        _mm256_storeu_ps(tv + i, rcp != 0 ? _mm256_maskz_mul_ps(keep, x, inv) : _mm256_maskz_div_ps(keep, x, r));
        kept += (size_t)__builtin_popcount(keep);
    }
    return kept + dare_scalar(tv, n8, n, prefix, first, below, rho);
}
#endif

/* The same with GCC vector extensions (AVX2 at x86-64-v3: 64-bit lanes, the multiplies from
 * 32-bit ones): the scalar loop's branch, a coin toss per entry, was mispredicted half the time
 * and made DARE several times slower than ta. Dropped entries are +0, the kept divided by ρ. */
typedef uint64_t dare_v4u __attribute__((vector_size(32)));
typedef int32_t dare_v4i __attribute__((vector_size(16)));
typedef int32_t dare_v8i __attribute__((vector_size(32)));
typedef float dare_v8f __attribute__((vector_size(32)));

/* -1 in the lanes of elements c, c + 1, c + 2, c + 3 that are kept, else 0. */
static inline dare_v4i dare_keep4(uint64_t prefix, uint64_t c, uint64_t below) {
    const dare_v4u one = {1, 1, 1, 1};
    dare_v4u z = (dare_v4u){0, 1, 2, 3} + c * one;
    z = (z ^ prefix * one) + 0x9E3779B97F4A7C15ull * one;
    z = (z ^ (z >> 30)) * (0xBF58476D1CE4E5B9ull * one);
    z = (z ^ (z >> 27)) * (0x94D049BB133111EBull * one);
    z = z ^ (z >> 31);
    return __builtin_convertvector((z >> 11) < below * one, dare_v4i);
}

#ifndef __AVX2__
static size_t dare_block_vec(float *tv, size_t n, uint64_t prefix, size_t first, uint64_t below, float rho) {
    size_t kept = 0, n8 = n - n % 8;
    const dare_v8f r = {rho, rho, rho, rho, rho, rho, rho, rho};
    for (size_t i = 0; i < n8; i += 8) {
        dare_v4i lo = dare_keep4(prefix, first + i, below), hi = dare_keep4(prefix, first + i + 4, below);
        dare_v8i keep = __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7), q;
        dare_v8f x;
        memcpy(&x, tv + i, sizeof x);
        x = x / r;
        memcpy(&q, &x, sizeof q);
        q &= keep;
        memcpy(tv + i, &q, sizeof q);
        for (int l = 0; l < 8; l++) kept += (size_t)(keep[l] & 1);
    }
    return kept + dare_scalar(tv, n8, n, prefix, first, below, rho);
}

#endif

#ifdef __AVX2__
/* splitmix64's 64-bit multiply by a constant from AVX2's 32 x 32 -> 64-bit ones: the low product
 * plus the two cross products shifted up (the high x high product falls off the 64 bits). */
static inline __m256i dare_mul64(__m256i z, __m256i m_lo, __m256i m_hi) {
    __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(z, 32), m_lo), _mm256_mul_epu32(z, m_hi));
    return _mm256_add_epi64(_mm256_mul_epu32(z, m_lo), _mm256_slli_epi64(cross, 32));
}

/* All-ones in the 64-bit lanes of counters c whose element is kept (splitmix64 of prefix ^ c,
 * >> 11, below `below`: a signed compare is right, both sides are < 2^53). */
static inline __m256i dare_keep_avx2(__m256i c, __m256i p, __m256i lim) {
    const __m256i gamma = _mm256_set1_epi64x((long long)0x9E3779B97F4A7C15ull);
    const __m256i m1lo = _mm256_set1_epi64x(0x1CE4E5B9), m1hi = _mm256_set1_epi64x(0xBF58476D);
    const __m256i m2lo = _mm256_set1_epi64x(0x133111EB), m2hi = _mm256_set1_epi64x(0x94D049BB);
    __m256i z = _mm256_add_epi64(_mm256_xor_si256(c, p), gamma);
    z = dare_mul64(_mm256_xor_si256(z, _mm256_srli_epi64(z, 30)), m1lo, m1hi);
    z = dare_mul64(_mm256_xor_si256(z, _mm256_srli_epi64(z, 27)), m2lo, m2hi);
    z = _mm256_xor_si256(z, _mm256_srli_epi64(z, 31));
    return _mm256_cmpgt_epi64(lim, _mm256_srli_epi64(z, 11));
}

/* The keep decisions of elements c .. c + 7 as all-ones float lanes: the 64-bit lanes hash elements
 * {0, 1, 4, 5} and {2, 3, 6, 7}, so that one shuffle of their masks' low halves lines the eight
 * decisions up with the floats. */
static inline __m256 dare_keep8_avx2(uint64_t c, __m256i p, __m256i lim) {
    const __m256i off_a = _mm256_set_epi64x(5, 4, 1, 0), off_b = _mm256_set_epi64x(7, 6, 3, 2);
    const __m256i cc = _mm256_set1_epi64x((long long)c);
    __m256i ka = dare_keep_avx2(_mm256_add_epi64(cc, off_a), p, lim);
    __m256i kb = dare_keep_avx2(_mm256_add_epi64(cc, off_b), p, lim);
    return _mm256_shuffle_ps(_mm256_castsi256_ps(ka), _mm256_castsi256_ps(kb), _MM_SHUFFLE(2, 0, 2, 0));
}

/* Eight elements per step in AVX2 (the scalar loop's decisions and floats); the kept count stays in
 * a vector (the generic form's narrowing and per-lane count were most of DARE's time). When ρ is a
 * power of two, x / ρ is the exact x · (1 / ρ) and is computed so. */
static size_t dare_block_avx2(float *tv, size_t n, uint64_t prefix, size_t first, uint64_t below, float rho) {
    size_t n8 = n - n % 8;
    const __m256i p = _mm256_set1_epi64x((long long)prefix), lim = _mm256_set1_epi64x((long long)below);
    const float rcp = exact_reciprocal(rho);
    const __m256 r = _mm256_set1_ps(rho), inv = _mm256_set1_ps(rcp);
    __m256i count = _mm256_setzero_si256();
    for (size_t i = 0; i < n8; i += 8) {
        __m256 keep = dare_keep8_avx2(first + i, p, lim);
        __m256 x = _mm256_loadu_ps(tv + i);
        x = rcp != 0 ? _mm256_mul_ps(x, inv) : _mm256_div_ps(x, r);
        _mm256_storeu_ps(tv + i, _mm256_and_ps(x, keep));
        count = _mm256_sub_epi32(count, _mm256_castps_si256(keep));
    }
    uint32_t lanes[8];
    _mm256_storeu_si256((__m256i *)lanes, count);
    size_t kept = 0;
    for (int l = 0; l < 8; l++) kept += lanes[l];
    return kept + dare_scalar(tv, n8, n, prefix, first, below, rho);
}
#endif

/* ---- DARE added into a sum, τ formed from raw BF16 values (the any-model engine's dare) ---- */

/* Entries [lo, hi), one at a time; nonzero when a value of h is not finite. */
static uint32_t dare_add_bf16_scalar(float *acc, const uint16_t *h, const float *b, float w, size_t lo, size_t hi,
                                     uint64_t prefix, size_t first, uint64_t below, float rho) {
    uint32_t bad = 0;
    for (size_t j = lo; j < hi; j++) {
        uint32_t u = (uint32_t)h[j] << 16;
        float v;
        memcpy(&v, &u, sizeof v);
        bad |= (u & 0x7f800000u) == 0x7f800000u;
        float x = w == 1.0f ? v - b[j] : w * (v - b[j]);
        float kept = (kern_mix64(prefix ^ (first + j)) >> 11) < below ? x / rho : 0.0f;
        acc[j] = acc[j] + kept;
    }
    return bad;
}

#ifdef CPU_V16
/* Sixteen entries per step: two hashes of eight lanes make one 16-bit mask for the floats. */
CPU_V16_TARGET
static bool dare_add_bf16_v16(float *acc, const uint16_t *h, const float *b, float w, size_t n, uint64_t prefix,
                              size_t first, uint64_t below, float rho) {
    size_t n16 = n - n % 16;
    uint8_t all;
    const __m512i p = _mm512_set1_epi64((long long)prefix), lim = _mm512_set1_epi64((long long)v16_limit(below, &all));
    const __m512i step = _mm512_set1_epi64(16), exp = _mm512_set1_epi32(0x7f800000);
    __m512i c0 = _mm512_add_epi64(_mm512_set1_epi64((long long)first), _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0));
    __m512i c1 = _mm512_add_epi64(c0, _mm512_set1_epi64(8));
    const float rcp = exact_reciprocal(rho);
    const __m512 r = _mm512_set1_ps(rho), inv = _mm512_set1_ps(rcp), wv = _mm512_set1_ps(w);
    __mmask16 bad = 0;
    for (size_t i = 0; i < n16; i += 16, c0 = _mm512_add_epi64(c0, step), c1 = _mm512_add_epi64(c1, step)) {
        __mmask16 keep = _mm512_kunpackb(dare_keep8_v16(c1, p, lim) | all, dare_keep8_v16(c0, p, lim) | all);
        __m512i u = _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(h + i))), 16);
        bad |= _mm512_cmpeq_epi32_mask(_mm512_and_si512(u, exp), exp);
        __m512 x = _mm512_sub_ps(_mm512_castsi512_ps(u), _mm512_loadu_ps(b + i));
        if (w != 1.0f) x = _mm512_mul_ps(wv, x);
        x = rcp != 0 ? _mm512_maskz_mul_ps(keep, x, inv) : _mm512_maskz_div_ps(keep, x, r);
        _mm512_storeu_ps(acc + i, _mm512_add_ps(_mm512_loadu_ps(acc + i), x));
    }
    return !bad && !dare_add_bf16_scalar(acc, h, b, w, n16, n, prefix, first, below, rho);
}
#endif

#ifdef __AVX2__
static bool dare_add_bf16_avx2(float *acc, const uint16_t *h, const float *b, float w, size_t n, uint64_t prefix,
                               size_t first, uint64_t below, float rho) {
    size_t n8 = n - n % 8;
    const __m256i p = _mm256_set1_epi64x((long long)prefix), lim = _mm256_set1_epi64x((long long)below);
    const __m256i exp = _mm256_set1_epi32(0x7f800000);
    const float rcp = exact_reciprocal(rho);
    const __m256 r = _mm256_set1_ps(rho), inv = _mm256_set1_ps(rcp), wv = _mm256_set1_ps(w);
    __m256i bad = _mm256_setzero_si256();
    for (size_t i = 0; i < n8; i += 8) {
        __m256 keep = dare_keep8_avx2(first + i, p, lim);
        __m256i u = _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(h + i))), 16);
        bad = _mm256_or_si256(bad, _mm256_cmpeq_epi32(_mm256_and_si256(u, exp), exp));
        __m256 x = _mm256_sub_ps(_mm256_castsi256_ps(u), _mm256_loadu_ps(b + i));
        if (w != 1.0f) x = _mm256_mul_ps(wv, x);
        x = rcp != 0 ? _mm256_mul_ps(x, inv) : _mm256_div_ps(x, r);
        _mm256_storeu_ps(acc + i, _mm256_add_ps(_mm256_loadu_ps(acc + i), _mm256_and_ps(x, keep)));
    }
    return _mm256_testz_si256(bad, bad) && !dare_add_bf16_scalar(acc, h, b, w, n8, n, prefix, first, below, rho);
}
#endif

bool dare_add_bf16_seq(float *acc, const uint16_t *h, const float *b, float w, size_t n, double density, uint64_t seed,
                       int task, uint64_t tensor_key, size_t first) {
    /* density 0 keeps nothing: +0 added everywhere, as to the zeroed row of dare_apply_at_seq */
    float rho = density > 0 ? (float)density : 1.0f;
    uint64_t prefix = kern_hash_prefix(seed, (uint64_t)task, tensor_key), below = density > 0 ? keep_below(density) : 0;
#ifdef CPU_V16
    if (cpu_isa_level() == CPU_ISA_AVX512) return dare_add_bf16_v16(acc, h, b, w, n, prefix, first, below, rho);
#endif
#ifdef __AVX2__
    return dare_add_bf16_avx2(acc, h, b, w, n, prefix, first, below, rho);
#else
    return !dare_add_bf16_scalar(acc, h, b, w, 0, n, prefix, first, below, rho);
#endif
}

size_t dare_apply_at_seq(float *tv, size_t n, double density, uint64_t seed, int task, uint64_t tensor_key,
                         size_t first) {
    if (density <= 0) {
        memset(tv, 0, n * sizeof(float));
        return 0;
    }
    float rho = (float)density;
    uint64_t prefix = kern_hash_prefix(seed, (uint64_t)task, tensor_key), below = keep_below(density);
#ifdef CPU_V16
    if (cpu_isa_level() == CPU_ISA_AVX512) return dare_block_v8(tv, n, prefix, first, below, rho);
#endif
#ifdef __AVX2__
    return dare_block_avx2(tv, n, prefix, first, below, rho);
#else
    return dare_block_vec(tv, n, prefix, first, below, rho);
#endif
}

size_t dare_apply_at(float *tv, size_t n, double density, uint64_t seed, int task, uint64_t tensor_key, size_t first) {
    size_t kept = 0;
#pragma omp parallel for schedule(static) reduction(+ : kept) if (n > KERN_PAR_MIN)
    for (size_t lo = 0; lo < n; lo += KERN_BLOCK)
        kept += dare_apply_at_seq(tv + lo, n - lo < KERN_BLOCK ? n - lo : KERN_BLOCK, density, seed, task, tensor_key,
                                  first + lo);
    return kept;
}

