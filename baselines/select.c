/* select.c — see select.h. */
#include "baselines/select.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpu.h"

/* Order-preserving 32-bit keys: for magnitudes the IEEE bits of |x| already sort as unsigned
 * integers; for signed values flip every bit of negatives and the sign bit of the others. */
static inline uint32_t key_of(float x, bool absval) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if (absval) return u & 0x7FFFFFFFu;
    /* branch-free: negatives x ^ 0xFFFFFFFF = ~x, others x ^ 0x80000000 = x | 0x80000000 */
    return u ^ ((uint32_t)((int32_t)u >> 31) | 0x80000000u);
}

static float value_of(uint32_t key, bool absval) {
    uint32_t u = absval ? key : (key & 0x80000000u) ? key & 0x7FFFFFFFu : ~key;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* The context in the radix mode, without its histograms yet. */
static void init_fields(select_ctx *s, uint64_t rank, bool absval) {
    memset(s, 0, sizeof *s);
    s->pass = SELECT_HI;
    s->rank = rank;
    s->want = rank;
    s->absval = absval;
    s->wide = cpu_isa_level() == CPU_ISA_AVX512;
    int t = omp_get_max_threads();
    s->parts = t < 1 ? 1 : t > SELECT_MAX_PARTS ? SELECT_MAX_PARTS : t;
}

int select_init(select_ctx *s, uint64_t rank, bool absval, tt_err *err) {
    init_fields(s, rank, absval);
    s->hist = calloc((size_t)s->parts * SELECT_BINS, sizeof(uint64_t));
    if (!s->hist) return tt_fail(err, TT_ENOMEM, "out of memory (selection histograms)");
    s->hist_owned = true;
    return 0;
}

/* The sample's stripe t (SELECT_SAMPLE_STRIDE values of the stream) holds its run of
 * SELECT_SAMPLE_RUN sampled values at this offset: a hash of t (splitmix64's finaliser), so that
 * the sample does not alias with a tensor's row length. */
static uint64_t sample_offset(uint64_t t) {
    uint64_t z = t + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (z ^ (z >> 31)) % (SELECT_SAMPLE_STRIDE - SELECT_SAMPLE_RUN + 1);
}

uint64_t select_sample_start(uint64_t stripe) { return stripe * SELECT_SAMPLE_STRIDE + sample_offset(stripe); }

bool select_in_sample(uint64_t i) {
    uint64_t start = select_sample_start(i / SELECT_SAMPLE_STRIDE);
    return i >= start && i < start + SELECT_SAMPLE_RUN;
}

/* Values of stripe t's sampled run that lie in a stream of n values (RUN, fewer or none at its end). */
static size_t run_length(uint64_t t, uint64_t n) {
    uint64_t start = select_sample_start(t);
    return start >= n ? 0 : n - start < SELECT_SAMPLE_RUN ? (size_t)(n - start) : SELECT_SAMPLE_RUN;
}

/* Sampled values among the first n of the stream. */
static size_t sample_count(uint64_t n) {
    uint64_t t = n / SELECT_SAMPLE_STRIDE, rest = n % SELECT_SAMPLE_STRIDE, off = sample_offset(t);
    uint64_t last = rest > off ? rest - off : 0;
    return (size_t)(t * SELECT_SAMPLE_RUN + (last < SELECT_SAMPLE_RUN ? last : SELECT_SAMPLE_RUN));
}

/* The bracket's half-width in sample ranks for a wanted quantile q: SELECT_MARGIN_SIGMAS standard
 * deviations of the sample quantile, a sample of nsample values whose runs have design effect
 * `deff` (select_ctx.deff: neighbours in a run are not independent — rows of a weight matrix share
 * a scale — so the sample counts as nsample / deff independent values), plus a few ranks for the
 * discreteness of small samples. 6 sigmas: a miss rate near one in a billion for a normal sample
 * quantile, about 0.4% of a stream of n = 250 M independent values inside. A miss costs two
 * passes, never a wrong value. */
#define SELECT_MARGIN_SIGMAS 6.0
#define SELECT_MARGIN_SLACK 32.0
static double bracket_margin(size_t nsample, double q, double deff) {
    return SELECT_MARGIN_SIGMAS * sqrt(deff * (double)nsample * q * (1 - q)) + SELECT_MARGIN_SLACK;
}

/* The design effect the workspace is sized for (select_bracket_work): a bracket that needs more
 * room is narrowed to the room, down to half its margin (3 sigmas), and past that the radix passes
 * follow. */
#define SELECT_ROOM_DEFF 4.0

/* A large sample (a histogram) keeps the values of one run in pilot_every(n) as well, from which
 * its design effect is estimated (a small sample keeps them all): 512 to 1024 runs, 0.5 to 1 MiB
 * whatever the stream's length. */
#define SELECT_PILOT_RUNS 1024
static uint64_t pilot_every(uint64_t n) {
    uint64_t stripes = (n + SELECT_SAMPLE_STRIDE - 1) / SELECT_SAMPLE_STRIDE;
    return stripes / SELECT_PILOT_RUNS + 1;
}

/* A sample of more values than sample_hist_min is kept as a histogram (select.h): its
 * SELECT_SAMPLE_BINS 64-bit words take less room than the values from there on. */
#define SAMPLE_HIST_WORDS (2 * SELECT_SAMPLE_BINS)
static size_t sample_hist_min = SAMPLE_HIST_WORDS;

void select_set_sample_hist_min(size_t nsample) { sample_hist_min = nsample == SIZE_MAX ? SAMPLE_HIST_WORDS : nsample; }

static bool sample_as_hist(size_t nsample) { return nsample > sample_hist_min; }

/* A bin of the sample's histogram in one 64-bit word, so that counting a value is one load and one
 * store: the count in the low 32 bits (a sample has < 2^30 values: n < 2^36), then 0xFFF minus the
 * smallest key's low 12 bits (so that an all-zero word is an empty bin), then the largest key's
 * low 12 bits. */
static inline uint64_t sample_bin_add(uint64_t w, uint32_t low) {
    uint64_t nlo = (w >> 32) & 0xFFFFu, hi = w >> 48, c = (w & 0xFFFFFFFFu) + 1;
    nlo = nlo > 0xFFFu - low ? nlo : 0xFFFu - low;
    hi = hi > low ? hi : low;
    return c | nlo << 32 | hi << 48;
}
static inline uint64_t sample_bin_count(uint64_t w) { return w & 0xFFFFFFFFu; }
static inline uint32_t sample_bin_min(uint64_t w, size_t b) {
    return (uint32_t)(b << SELECT_SAMPLE_SHIFT) | (0xFFFu - (uint32_t)((w >> 32) & 0xFFFFu));
}
static inline uint32_t sample_bin_max(uint64_t w, size_t b) {
    return (uint32_t)(b << SELECT_SAMPLE_SHIFT) | (uint32_t)(w >> 48);
}

/* Floats (32-bit words) the sample of nsample values takes in the workspace. */
static size_t sample_words(size_t nsample) { return sample_as_hist(nsample) ? SAMPLE_HIST_WORDS : nsample; }

/* Floats the pilot runs of a stream of n values take (none when the sample keeps its values). */
static size_t pilot_words(uint64_t n) {
    if (!sample_as_hist(sample_count(n))) return 0;
    uint64_t stripes = (n + SELECT_SAMPLE_STRIDE - 1) / SELECT_SAMPLE_STRIDE, every = pilot_every(n);
    return (size_t)((stripes + every - 1) / every) * SELECT_SAMPLE_RUN;
}

size_t select_bracket_work(uint64_t n) {
    size_t ns = sample_count(n);
    if (ns < SELECT_SAMPLE_MIN) return SIZE_MAX;
    /* room for three times the copies expected at the widest margin (q = 1/2): sample_next wants
     * twice the expected copies, and the parts split the room */
    double copies = 2 * bracket_margin(ns, 0.5, SELECT_ROOM_DEFF) / (double)ns * (double)n;
    /* + 1: a workspace that starts off an 8-byte boundary loses a float to the histogram's alignment */
    return sample_words(ns) + pilot_words(n) + (size_t)(3 * copies) + SELECT_MAX_PARTS * SELECT_CAND_SPARE + 1;
}

int select_init_bracket(select_ctx *s, uint64_t rank, bool absval, uint64_t n, float *work, size_t work_len,
                        tt_err *err) {
    if (!work || work_len < select_bracket_work(n) || n >> 36) /* radix mode (lane counts: select.h) */
        return select_init(s, rank, absval, err);
    if ((uintptr_t)work % sizeof(uint64_t) && sample_as_hist(sample_count(n)))
        work++, work_len--; /* sample_bin's 64-bit words (select_bracket_work counted this float) */
    init_fields(s, rank, absval);
    s->pass = SELECT_SAMPLE;
    s->n = n;
    s->nsample = sample_count(n);
    if (sample_as_hist(s->nsample)) {
        TT_ASSERT((uintptr_t)work % sizeof(uint64_t) == 0);
        s->sbin = (uint64_t *)work; /* 64-bit words in the caller's float workspace */
        memset(s->sbin, 0, SELECT_SAMPLE_BINS * sizeof(uint64_t));
    } else {
        s->sample = work;
    }
    /* The histograms go at the end of the workspace when it has room for them beyond twice what the
     * bracket needs: memory the caller has touched already, where fresh calloc'd histograms would
     * page-fault their ~1 MiB on first use in every selection (measured: ~4 ms a selection on a
     * 2-vCPU VM, where a page fault costs ~15 us). */
    size_t hist_bytes = (size_t)s->parts * SELECT_BINS * sizeof(uint64_t);
    size_t hist_floats = hist_bytes / sizeof(float) + 64 / sizeof(float); /* + alignment */
    if (work_len >= hist_floats + 2 * select_bracket_work(n)) {
        work_len -= hist_floats;
        uintptr_t at = ((uintptr_t)(work + work_len) + 63) & ~(uintptr_t)63;
        s->hist = (uint64_t *)at;
        memset(s->hist, 0, hist_bytes);
    } else {
        s->hist = calloc((size_t)s->parts * SELECT_BINS, sizeof(uint64_t));
        if (!s->hist) return tt_fail(err, TT_ENOMEM, "out of memory (selection histograms)");
        s->hist_owned = true;
    }
    if (s->sbin) s->pilot = work + sample_words(s->nsample), s->pilot_every = pilot_every(n);
    size_t front = sample_words(s->nsample) + pilot_words(n);
    s->cand = work + front;
    s->cand_stride = (work_len - front) / (size_t)s->parts;
    s->cand_cap = s->cand_stride - SELECT_CAND_SPARE;
    return 0;
}

void select_free(select_ctx *s) {
    if (s->hist_owned) free(s->hist);
    memset(s, 0, sizeof *s);
}

/* Histogram of v[lo, hi) into h, v = x − sub (or x): pass 0 by the key's high half, pass 1 by the
 * low half of the keys whose high half is the chosen bin. Inlined with constant `diff` and `absval`
 * so that each variant is a plain loop. Pass 0 computes the keys of a chunk first (a vectorised
 * loop) and then counts them; pass 1 first tests a chunk for any key in the chosen bin (vectorised,
 * and almost always false) and counts only such chunks: 1.5x and ~6x faster than one scalar loop. */
#define COUNT_CHUNK0 256
#define COUNT_CHUNK1 64
static inline void count_range_v(const select_ctx *s, uint64_t *restrict h, const float *restrict x,
                                 const float *restrict sub, size_t lo, size_t hi, bool diff, bool absval) {
    if (s->pass == SELECT_HI) {
        uint16_t key[COUNT_CHUNK0];
        for (size_t i0 = lo; i0 < hi; i0 += COUNT_CHUNK0) {
            size_t m = hi - i0 < COUNT_CHUNK0 ? hi - i0 : COUNT_CHUNK0;
            for (size_t j = 0; j < m; j++)
                key[j] = (uint16_t)(key_of(diff ? x[i0 + j] - sub[i0 + j] : x[i0 + j], absval) >> 16);
            for (size_t j = 0; j < m; j++) h[key[j]]++;
        }
    } else {
        uint32_t want = s->hi;
        for (size_t i0 = lo; i0 < hi; i0 += COUNT_CHUNK1) {
            size_t m = hi - i0 < COUNT_CHUNK1 ? hi - i0 : COUNT_CHUNK1;
            uint32_t any = 0;
            for (size_t j = 0; j < m; j++)
                any |= (key_of(diff ? x[i0 + j] - sub[i0 + j] : x[i0 + j], absval) >> 16) == want;
            if (!any) continue;
            for (size_t j = 0; j < m; j++) { /* branch-free: in such a chunk, in or out is a coin flip */
                uint32_t k = key_of(diff ? x[i0 + j] - sub[i0 + j] : x[i0 + j], absval);
                h[k & 0xFFFFu] += (k >> 16) == want;
            }
        }
    }
}

/* One value of a chunk that holds a key in [blo, bhi]: count it at either end, or copy it when it is
 * strictly inside. Branch-free (which value is inside is a coin flip): every value is stored at the
 * next free slot, or in the sink past `cap` once the part is full, and kept by advancing. */
typedef struct bracket_walk {
    uint64_t eq_lo, eq_hi, inside;
    size_t nc; /* copies stored so far in this part */
} bracket_walk;

static inline void bracket_take(bracket_walk *w, float v, uint32_t blo, uint32_t bhi, bool absval,
                                float *restrict cand, size_t cap) {
    uint32_t k = key_of(v, absval), in = (k > blo) & (k < bhi);
    w->eq_lo += k == blo;
    w->eq_hi += (k == bhi) & (bhi != blo);
    w->inside += in;
    cand[w->nc < cap ? w->nc : cap + SELECT_CAND_SINK] = v;
    w->nc += in & (w->nc < cap);
}

/* The bracket pass over v[lo, hi) for part p: keys < blo and <= bhi counted by a vectorised loop
 * over chunks of BRACKET_CHUNK (the compares on keys ^ 0x80000000 as int32, which SSE has); only a
 * chunk with some key in [blo, bhi] (the two counts differ) is walked again, one value at a time,
 * to count the ties at blo and bhi and copy the values strictly between. Copies past the part's
 * capacity are counted, not stored (select_next_pass then falls back to the radix passes). */
#define BRACKET_CHUNK 16
static inline void bracket_range_v(select_ctx *s, int p, const float *restrict x, const float *restrict sub, size_t lo,
                                   size_t hi, bool diff, bool absval) {
    const uint32_t blo = s->blo, bhi = s->bhi;
    const int32_t slo = (int32_t)(blo ^ 0x80000000u), shi = (int32_t)(bhi ^ 0x80000000u);
    uint64_t *c = s->cnt[p];
    float *restrict cand = s->cand + (size_t)p * s->cand_stride;
    size_t cap = s->cand_cap;
    bracket_walk w = {.nc = (size_t)c[5]};
    uint64_t below = 0, le_hi = 0;
    for (size_t i0 = lo; i0 < hi; i0 += BRACKET_CHUNK) {
        size_t m = hi - i0 < BRACKET_CHUNK ? hi - i0 : BRACKET_CHUNK;
        uint32_t a = 0, d = 0;
        for (size_t j = 0; j < m; j++) {
            int32_t k = (int32_t)(key_of(diff ? x[i0 + j] - sub[i0 + j] : x[i0 + j], absval) ^ 0x80000000u);
            a += (uint32_t)(k < slo);
            d += (uint32_t)(k <= shi);
        }
        below += a;
        le_hi += d;
        if (a == d) continue;
        for (size_t j = 0; j < m; j++)
            bracket_take(&w, diff ? x[i0 + j] - sub[i0 + j] : x[i0 + j], blo, bhi, absval, cand, cap);
    }
    c[0] += below, c[1] += le_hi, c[2] += w.eq_lo, c[3] += w.eq_hi, c[4] += w.inside, c[5] = w.nc;
}

/* The same pass 8 values at a time (GCC vector extensions: AVX2 at x86-64-v3, two SSE halves at
 * v2): the counts stay in vector registers over the whole range, and only the values with a key in
 * [blo, bhi] (in about 6% of the 8-value groups for a ~1% bracket) are taken one at a time, where the
 * 16-value chunks above walk ~12% of 16 values and reduce two counts per chunk (walking the whole
 * group, where a value outside counts nowhere and its copy is not kept, made the walks most of the
 * pass on a Zen 3 VM). The same counts and the same copies in the same order; the values past the
 * last multiple of 8 go through bracket_range_v. */
/* The values x[l] (− sub[l]) of the lanes l set in `in` taken in lane order: only those in
 * [blo, bhi] (mostly one lane of eight), since a value outside counts nowhere and its copy is not
 * kept. Out of line: with the walk's state in the loop, GCC kept the loop's index and vector on
 * the stack, and the store-to-load chain made the bracket pass ~3x slower on a Zen 3 VM. */
static __attribute__((noinline)) void bracket_take_lanes(bracket_walk *w, const float *x, const float *sub, unsigned in,
                                                         uint32_t blo, uint32_t bhi, bool absval, float *cand,
                                                         size_t cap) {
    for (; in; in &= in - 1) {
        int l = __builtin_ctz(in);
        bracket_take(w, sub ? x[l] - sub[l] : x[l], blo, bhi, absval, cand, cap);
    }
}

typedef int32_t sel_v8i __attribute__((vector_size(32)));
typedef float sel_v8f __attribute__((vector_size(32)));
#define SEL_V8 8
#define SEL_FLUSH ((size_t)1 << 24) /* values between flushes of the int32 lane counts */

/* Bit l set where lane l of the compare mask m is set. */
static inline unsigned sel_v8_bits(sel_v8i m) {
#if defined(__AVX__)
    return (unsigned)_mm256_movemask_ps((__m256)m);
#else
    unsigned a = 0;
    for (int l = 0; l < SEL_V8; l++) a |= (unsigned)(m[l] & 1) << l;
    return a;
#endif
}

static inline __attribute__((always_inline)) void bracket_range_v8(select_ctx *s, int p, const float *restrict x,
                                                                   const float *restrict sub,
                                    size_t lo, size_t hi, bool diff, bool absval) {
    const uint32_t blo = s->blo, bhi = s->bhi;
    const int32_t slo = (int32_t)(blo ^ 0x80000000u), shi = (int32_t)(bhi ^ 0x80000000u);
    const sel_v8i zero = {0}, flip = zero + (int32_t)0x80000000u, absmask = zero + 0x7FFFFFFF;
    uint64_t *c = s->cnt[p];
    float *restrict cand = s->cand + (size_t)p * s->cand_stride;
    size_t cap = s->cand_cap;
    bracket_walk w = {.nc = (size_t)c[5]};
    uint64_t below = 0, le_hi = 0;
    size_t hi8 = lo + (hi - lo) / SEL_V8 * SEL_V8;
    for (size_t f0 = lo; f0 < hi8; f0 += SEL_FLUSH) {
        size_t f1 = hi8 - f0 < SEL_FLUSH ? hi8 : f0 + SEL_FLUSH;
        sel_v8i vbelow = zero, vle = zero;
        for (size_t i = f0; i < f1; i += SEL_V8) {
            sel_v8f v;
            memcpy(&v, x + i, sizeof v);
            if (diff) {
                sel_v8f vs;
                memcpy(&vs, sub + i, sizeof vs);
                v = v - vs;
            }
            sel_v8i u = (sel_v8i)v;
            /* key_of, then ^ 0x80000000 so that signed compares order the keys as unsigned */
            sel_v8i key = absval ? (u & absmask) : (u ^ ((u >> 31) | flip));
            sel_v8i k = key ^ flip;
            sel_v8i lt = k < slo, le = k <= shi;
            vbelow -= lt;
            vle -= le;
            unsigned in = sel_v8_bits(le & ~lt);
            if (__builtin_expect(in != 0, 0))
                bracket_take_lanes(&w, x + i, diff ? sub + i : NULL, in, blo, bhi, absval, cand, cap);
        }
        for (int l = 0; l < SEL_V8; l++) below += (uint32_t)vbelow[l], le_hi += (uint32_t)vle[l];
    }
    c[0] += below, c[1] += le_hi, c[2] += w.eq_lo, c[3] += w.eq_hi, c[4] += w.inside, c[5] = w.nc;
    if (hi8 < hi) bracket_range_v(s, p, x, sub, hi8, hi, diff, absval);
}

#ifdef CPU_V16
/* The bracket pass 16 values at a time in AVX-512 (chosen at run time, core/cpu.h), without a
 * branch on the data: four unsigned compares a value (keys < blo, <= blo, < bhi, <= bhi) counted in
 * the part's 16 lane counters (kept in the context between calls, summed once at the end of the
 * pass: bracket_next), from which below, the ties at either end and the values inside follow; the
 * values strictly inside are compressed to the front of a register and stored at the next free
 * slot every time (SELECT_CAND_SPARE leaves room for the 16 floats), the slot advancing by how many
 * there were. When the part has room for every value of the range, the slot is not checked against
 * the capacity (`roomy`). The same counts as bracket_range_v8, and the same copies in the same order
 * (up to 15 more of them kept when a part fills up: select_next_pass then uses them or falls back,
 * and the result is exact either way). */
CPU_V16_TARGET
static inline __attribute__((always_inline)) void bracket_body_v16(select_ctx *s, int p, const float *restrict x,
                                                                   const float *restrict sub, size_t lo, size_t hi16,
                                                                   bool diff, bool absval, bool roomy) {
    const __m512i vlo = _mm512_set1_epi32((int32_t)s->blo), vhi = _mm512_set1_epi32((int32_t)s->bhi);
    const __m512i absmask = _mm512_set1_epi32(0x7FFFFFFF), flip = _mm512_set1_epi32(INT32_MIN);
    const __m512i one = _mm512_set1_epi32(1);
    uint32_t(*lane)[16] = s->lane[p];
    __m512i n0 = _mm512_loadu_si512(lane[0]), n1 = _mm512_loadu_si512(lane[1]);
    __m512i n2 = _mm512_loadu_si512(lane[2]), n3 = _mm512_loadu_si512(lane[3]);
    float *restrict cand = s->cand + (size_t)p * s->cand_stride;
    const size_t cap = s->cand_cap;
    size_t nc = (size_t)s->cnt[p][5];
    for (size_t i = lo; i < hi16; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        if (diff) v = _mm512_sub_ps(v, _mm512_loadu_ps(sub + i));
        __m512i u = _mm512_castps_si512(v);
        __m512i key = absval ? _mm512_and_si512(u, absmask)
                             : _mm512_xor_si512(u, _mm512_or_si512(_mm512_srai_epi32(u, 31), flip)); /* key_of */
        __mmask16 a = _mm512_cmplt_epu32_mask(key, vlo), b = _mm512_cmple_epu32_mask(key, vlo);
        __mmask16 d = _mm512_cmplt_epu32_mask(key, vhi), e = _mm512_cmple_epu32_mask(key, vhi);
        n0 = _mm512_mask_add_epi32(n0, a, n0, one);
        n1 = _mm512_mask_add_epi32(n1, b, n1, one);
        n2 = _mm512_mask_add_epi32(n2, d, n2, one);
        n3 = _mm512_mask_add_epi32(n3, e, n3, one);
        __mmask16 in = _kandn_mask16(b, d); /* blo < key < bhi */
        __m512 packed = _mm512_maskz_compress_ps(in, v);
        size_t took = (size_t)__builtin_popcount((unsigned)in);
        if (roomy) {
            _mm512_storeu_ps(cand + nc, packed);
            nc += took;
        } else {
            _mm512_storeu_ps(cand + (nc < cap ? nc : cap + SELECT_CAND_SINK), packed);
            nc += nc < cap ? took : 0;
        }
    }
    _mm512_storeu_si512(lane[0], n0), _mm512_storeu_si512(lane[1], n1);
    _mm512_storeu_si512(lane[2], n2), _mm512_storeu_si512(lane[3], n3);
    s->cnt[p][5] = nc;
}

CPU_V16_TARGET
static void bracket_range_v16(select_ctx *s, int p, const float *restrict x, const float *restrict sub, size_t lo,
                              size_t hi, bool diff, bool absval) {
    size_t hi16 = lo + (hi - lo) / 16 * 16;
    if (s->cnt[p][5] + (hi16 - lo) <= s->cand_cap) bracket_body_v16(s, p, x, sub, lo, hi16, diff, absval, true);
    else bracket_body_v16(s, p, x, sub, lo, hi16, diff, absval, false);
    if (hi16 < hi) bracket_range_v(s, p, x, sub, hi16, hi, diff, absval);
}
#endif

/* Part p's lane counters (bracket_range_v16) into its counts, as bracket_range_v8 counts them. */
static void lanes_into_counts(select_ctx *s, int p) {
    uint64_t t[4] = {0};
    for (int i = 0; i < 4; i++)
        for (int l = 0; l < 16; l++) t[i] += s->lane[p][i][l];
    uint64_t lt_lo = t[0], le_lo = t[1], lt_hi = t[2], le_hi = t[3], *c = s->cnt[p];
    bool two = s->bhi != s->blo; /* one key: its ties count at blo, and nothing is inside */
    c[0] += lt_lo, c[1] += le_hi, c[2] += le_lo - lt_lo;
    c[3] += two ? le_hi - lt_hi : 0, c[4] += two ? lt_hi - le_lo : 0;
    memset(s->lane[p], 0, sizeof s->lane[p]);
}

/* v[lo, hi) into part p of the current pass (histogram p, or the bracket counts of part p). */
static void count_range(select_ctx *s, int p, const float *x, const float *sub, size_t lo, size_t hi) {
    if (s->pass == SELECT_BRACKET) {
#ifdef CPU_V16
        if (s->wide) {
            if (sub) {
                if (s->absval) bracket_range_v16(s, p, x, sub, lo, hi, true, true);
                else bracket_range_v16(s, p, x, sub, lo, hi, true, false);
            } else {
                if (s->absval) bracket_range_v16(s, p, x, NULL, lo, hi, false, true);
                else bracket_range_v16(s, p, x, NULL, lo, hi, false, false);
            }
            return;
        }
#endif
        if (sub) {
            if (s->absval) bracket_range_v8(s, p, x, sub, lo, hi, true, true);
            else bracket_range_v8(s, p, x, sub, lo, hi, true, false);
        } else {
            if (s->absval) bracket_range_v8(s, p, x, NULL, lo, hi, false, true);
            else bracket_range_v8(s, p, x, NULL, lo, hi, false, false);
        }
        return;
    }
    uint64_t *h = s->hist + (size_t)p * SELECT_BINS;
    if (sub) {
        if (s->absval) count_range_v(s, h, x, sub, lo, hi, true, true);
        else count_range_v(s, h, x, sub, lo, hi, true, false);
    } else {
        if (s->absval) count_range_v(s, h, x, NULL, lo, hi, false, true);
        else count_range_v(s, h, x, NULL, lo, hi, false, false);
    }
}

/* The sample pass: the values of stream indices [g0, g0 + n) that the sample holds, x − sub formed
 * as in every other pass, stored at their slot (stripe · RUN + position in the run) — so each slot
 * is written once whatever the chunking, and no counter is shared between threads — or counted in
 * the sample's histogram with its bin's smallest and largest key (one thread per selection). */
static void sample_values(select_ctx *s, const float *x, const float *sub, size_t n, uint64_t g0, uint64_t t) {
    uint64_t start = select_sample_start(t);
    uint64_t lo = start > g0 ? start : g0, hi = start + SELECT_SAMPLE_RUN < g0 + n ? start + SELECT_SAMPLE_RUN : g0 + n;
    for (uint64_t g = lo; g < hi; g++) {
        size_t i = (size_t)(g - g0);
        float v = sub ? x[i] - sub[i] : x[i];
        if (s->sbin) {
            uint32_t k = key_of(v, s->absval), b = k >> SELECT_SAMPLE_SHIFT;
            s->sbin[b] = sample_bin_add(s->sbin[b], k & 0xFFFu);
            if (t % s->pilot_every == 0) s->pilot[t / s->pilot_every * SELECT_SAMPLE_RUN + (g - start)] = v;
        } else {
            s->sample[t * SELECT_SAMPLE_RUN + (g - start)] = v;
        }
    }
}

static void sample_feed(select_ctx *s, int ns, const float *const *x, const float *sub, size_t n) {
    uint64_t g0 = s[0].fed - n; /* every selection fed the same values so far */
    TT_ASSERT(s[0].fed <= s[0].n); /* more values than select_init_bracket was told */
    if (!n) return;
    uint64_t t0 = g0 / SELECT_SAMPLE_STRIDE, t1 = (g0 + n - 1) / SELECT_SAMPLE_STRIDE + 1;
    if (s[0].sbin) {
        /* a histogram per selection: thread p counts selections p, p + T, ...; stripe by stripe, so
         * that the runs of its selections at one stripe are read together (their cache misses
         * overlap), with the runs a few stripes ahead prefetched (the hashed offsets defeat the
         * hardware's) */
        for (int j = 0; j < ns; j++) TT_ASSERT(s[j].sbin); /* the same n: the same kind of sample */
        const uint64_t ahead = 4;
#pragma omp parallel num_threads(s[0].parts) if (ns > 1 && (t1 - t0) * (uint64_t)ns >= 256)
        {
            int T = omp_get_num_threads(), p = omp_get_thread_num();
            for (uint64_t t = t0; t < t1; t++) {
                uint64_t pre = t + ahead < t1 ? select_sample_start(t + ahead) : g0;
                for (int j = p; j < ns; j += T) {
                    if (pre > g0 && pre < g0 + n) __builtin_prefetch(x[j] + (pre - g0));
                    sample_values(&s[j], x[j], sub, n, g0, t);
                }
            }
        }
        return;
    }
    /* one cache line (or two) per stripe and selection: latency-bound, so both threads help */
#pragma omp parallel for schedule(static) num_threads(s[0].parts) if ((t1 - t0) * (uint64_t)ns >= 256)
    for (uint64_t t = t0; t < t1; t++)
        for (int j = 0; j < ns; j++) sample_values(&s[j], x[j], sub, n, g0, t);
}

void select_feed(select_ctx *s, const float *x, size_t n) { select_feed_diff(s, x, NULL, n); }

void select_feed_diff(select_ctx *s, const float *x, const float *sub, size_t n) {
    TT_ASSERT(s->pass < SELECT_DONE);
    s->fed += n;
    if (s->pass == SELECT_SAMPLE) {
        sample_feed(s, 1, &x, sub, n);
        return;
    }
    if (n < ((size_t)1 << 16) || s->parts == 1) {
        count_range(s, 0, x, sub, 0, n);
        return;
    }
    /* fixed chunking into `parts` private histograms (or counts); integer counts make the sum exact */
    int parts = s->parts;
#pragma omp parallel for schedule(static, 1) num_threads(parts)
    for (int p = 0; p < parts; p++)
        count_range(s, p, x, sub, n * (size_t)p / (size_t)parts, n * (size_t)(p + 1) / (size_t)parts);
}

#define MULTI_RUN 524288

void select_feed_diff_multi(select_ctx *s, int ns, const float *const *x, const float *sub, size_t n) {
    /* the selections of one call may be in different passes: finished ones are skipped, and one
     * that fell back to the radix passes counts while the others still sample or are done */
    bool all_sample = true, any_count = false;
    for (int j = 0; j < ns; j++) {
        if (s[j].pass == SELECT_DONE) continue;
        TT_ASSERT(s[j].parts == s[0].parts);
        s[j].fed += n;
        all_sample &= s[j].pass == SELECT_SAMPLE;
        any_count |= s[j].pass != SELECT_SAMPLE;
    }
    if (all_sample) {
        if (ns && s[0].pass == SELECT_SAMPLE) sample_feed(s, ns, x, sub, n);
        else
            for (int j = 0; j < ns; j++)
                if (s[j].pass == SELECT_SAMPLE) sample_feed(&s[j], 1, &x[j], sub, n);
        return;
    }
    for (int j = 0; j < ns; j++)
        if (s[j].pass == SELECT_SAMPLE) sample_feed(&s[j], 1, &x[j], sub, n);
    if (!any_count) return;
    int parts = s[0].parts;
    if (n * (size_t)ns < ((size_t)1 << 16) || parts == 1) {
        for (int j = 0; j < ns; j++)
            if (s[j].pass != SELECT_SAMPLE && s[j].pass != SELECT_DONE) count_range(&s[j], 0, x[j], sub, 0, n);
        return;
    }
    /* Each thread takes one contiguous share of the n values and walks it in runs of MULTI_RUN,
     * each run through every selection in turn: long runs of one stream at a time stream fastest
     * (measured on the ViT-B/32-sized bench, 2 threads, one run against another in the same
     * process: 4096-value runs 2.2x the time of 524288-value ones, 16384 1.7x, 131072 1.15x),
     * while a run of sub (2 MiB) mostly stays in L2 for the ns streams. Shares and runs depend only
     * on n and parts, so the counts and copies of part p are fixed for a thread count. */
    const size_t run_len = MULTI_RUN;
#pragma omp parallel for schedule(static, 1) num_threads(parts)
    for (int p = 0; p < parts; p++) { /* part p: its own histograms or counts */
        size_t lo = n * (size_t)p / (size_t)parts, hi = n * (size_t)(p + 1) / (size_t)parts;
        for (size_t r0 = lo; r0 < hi; r0 += run_len) {
            size_t r1 = r0 + run_len < hi ? r0 + run_len : hi;
            for (int j = 0; j < ns; j++)
                if (s[j].pass != SELECT_SAMPLE && s[j].pass != SELECT_DONE) count_range(&s[j], p, x[j], sub, r0, r1);
        }
    }
}

void select_count_begin(select_ctx *s, int ns, size_t n) {
    for (int j = 0; j < ns; j++) {
        if (s[j].pass == SELECT_DONE) continue;
        TT_ASSERT(s[j].pass != SELECT_SAMPLE && s[j].parts == s[0].parts);
        s[j].fed += n;
    }
}

void select_count_part(select_ctx *s, int ns, int part, const float *const *x, size_t m) {
    TT_ASSERT(part >= 0 && part < s[0].parts);
    for (int j = 0; j < ns; j++)
        if (s[j].pass != SELECT_DONE) count_range(&s[j], part, x[j], NULL, 0, m);
}

/* Part 0 of the histograms = the sum of all parts; the other parts are zeroed. */
static void hist_merge(select_ctx *s) {
    uint64_t *h = s->hist;
    for (int p = 1; p < s->parts; p++) {
        uint64_t *hp = h + (size_t)p * SELECT_BINS;
        for (size_t b = 0; b < SELECT_BINS; b++) h[b] += hp[b];
        memset(hp, 0, SELECT_BINS * sizeof(uint64_t));
    }
}

/* The bin of part 0 that holds the rank-th smallest counted key; *below = the keys in lower bins. */
static uint32_t hist_find(const select_ctx *s, uint64_t rank, uint64_t *below) {
    const uint64_t *h = s->hist;
    uint64_t sum = 0;
    size_t b = 0;
    while (b < SELECT_BINS && sum + h[b] <= rank) sum += h[b++];
    TT_ASSERT(b < SELECT_BINS); /* a later pass fed fewer values than the first */
    *below = sum;
    return (uint32_t)b;
}

/* End of a radix pass (SELECT_HI or SELECT_LO). */
static void radix_next(select_ctx *s) {
    hist_merge(s);
    uint64_t below;
    uint32_t b = hist_find(s, s->rank, &below);
    s->rank -= below;
    if (s->pass == SELECT_HI) s->hi = b;
    else s->key = (s->hi << 16) | b;
    memset(s->hist, 0, SELECT_BINS * sizeof(uint64_t));
    s->pass++;
}

/* The second radix pass over values held in memory (nv arrays) whose keys' high half `hi` and the
 * rank within that bin are known: the key. Leaves the context at SELECT_DONE with clean histograms. */
static uint32_t low_pass_in_memory(select_ctx *s, const float *const *v, const size_t *len, int nv, uint32_t hi,
                                   uint64_t rank) {
    s->pass = SELECT_LO;
    s->hi = hi;
    s->rank = rank;
    s->fed = 0;
    for (int i = 0; i < nv; i++) select_feed(s, v[i], len[i]);
    radix_next(s);
    s->fed = 0; /* the stream's next pass counts from 0 */
    return s->key;
}

/* The rank-th smallest key of values held in memory (nv arrays), by the two radix passes on the
 * context's own histograms; leaves the context at SELECT_DONE. */
static uint32_t kth_in_memory(select_ctx *s, const float *const *v, const size_t *len, int nv, uint64_t rank) {
    s->pass = SELECT_HI;
    s->rank = rank;
    s->fed = 0;
    for (int i = 0; i < nv; i++) select_feed(s, v[i], len[i]);
    TT_ASSERT(s->rank < s->fed);
    radix_next(s);
    return low_pass_in_memory(s, v, len, nv, s->hi, s->rank);
}

/* Back to the radix passes over the stream (the bracket missed, or could not be afforded). */
static bool fall_back(select_ctx *s) {
    s->pass = SELECT_HI;
    s->rank = s->want;
    return true;
}

/* The design effect of the sample's runs at key x (bracket_margin): the variance of a run's count
 * of keys <= x over that of SELECT_SAMPLE_RUN independent values, from the runs the sample keeps
 * (all, or a histogram's pilot runs; a ratio estimate over runs of unequal length), raised to the
 * upper 99.9% bound of a variance with R − 1 degrees of freedom (Wilson–Hilferty's chi-square
 * quantile), and kept within [1, SELECT_SAMPLE_RUN]: 1 for independent values, RUN when a run's
 * values are all alike. Too few runs to tell: RUN. */
static double design_effect(const select_ctx *s, uint32_t x) {
    const float *v = s->sbin ? s->pilot : s->sample;
    const uint64_t every = s->sbin ? s->pilot_every : 1;
    const uint64_t stripes = (s->n + SELECT_SAMPLE_STRIDE - 1) / SELECT_SAMPLE_STRIDE;
    double sc = 0, sl = 0, scc = 0, scl = 0, sll = 0, runs = 0;
    for (uint64_t t = 0; t < stripes; t += every) {
        size_t len = run_length(t, s->n), c = 0;
        if (!len) continue; /* the last stripe's run may start past the stream's end */
        const float *r = v + t / every * SELECT_SAMPLE_RUN;
        for (size_t i = 0; i < len; i++) c += key_of(r[i], s->absval) <= x;
        double cd = (double)c, ld = (double)len;
        sc += cd, sl += ld, scc += cd * cd, scl += cd * ld, sll += ld * ld, runs++;
    }
    const double most = SELECT_SAMPLE_RUN, z = -3.0902; /* the normal's 0.1% quantile */
    if (runs < 2) return most;
    double p = sc / sl, mean_len = sl / runs, spread = p * (1 - p) * mean_len;
    if (spread <= 0) return 1; /* every kept key on one side of x: nothing to widen for */
    double resid = scc - 2 * p * scl + p * p * sll, deff = resid / (runs - 1) / spread;
    double dof = runs - 1, a = 2 / (9 * dof), root = 1 - a + z * sqrt(a);
    if (root <= 0.1) return most;
    double ub = deff / (root * root * root);
    return ub < 1 ? 1 : ub > most ? most : ub;
}

/* The bin of the sample's histogram that holds sample rank `rank`, walking on from bin b with
 * *below keys under it (updated). */
static size_t sample_bin_walk(const select_ctx *s, uint64_t rank, size_t b, uint64_t *below) {
    while (b < SELECT_SAMPLE_BINS && *below + sample_bin_count(s->sbin[b]) <= rank)
        *below += sample_bin_count(s->sbin[b++]);
    TT_ASSERT(b < SELECT_SAMPLE_BINS);
    return b;
}

/* End of the sample pass: bracket the wanted quantile between two order statistics of the sample,
 * the margin widened by the runs' design effect measured near it; a margin whose copies would
 * overflow the room is narrowed to the room down to half of it, past that the radix passes follow. */
static bool sample_next(select_ctx *s) {
    size_t ns = s->nsample;
    const float *v = s->sample;
    double q = (double)s->want / (double)s->n, mid = q * (double)ns;
    uint64_t r_mid = (uint64_t)mid < ns ? (uint64_t)mid : ns - 1;
    /* the sample's key near rank mid (a bin's largest): where the design effect is measured */
    uint32_t at;
    if (s->sbin) {
        uint64_t below = 0;
        size_t b = sample_bin_walk(s, r_mid, 0, &below);
        at = sample_bin_max(s->sbin[b], b);
    } else { /* one high pass over the sample: for rank mid here, for both ends below */
        s->pass = SELECT_HI;
        s->fed = 0;
        select_feed(s, v, ns);
        hist_merge(s);
        uint64_t below;
        at = hist_find(s, r_mid, &below) << 16 | 0xFFFFu;
    }
    s->deff = design_effect(s, at);
    double m = bracket_margin(ns, q, s->deff);
    /* the copies this bracket lets through, against the room for them */
    double room = 0.5 * (double)s->cand_cap * (double)s->parts, per_rank = (double)s->n / (double)ns;
    double copies = ((mid + m < (double)ns ? mid + m : (double)ns) - (mid - m > 0 ? mid - m : 0)) * per_rank;
    if (copies > room) {
        double fits = room / per_rank / 2;
        if (fits < 0.5 * m) {
            if (!s->sbin) memset(s->hist, 0, SELECT_BINS * sizeof(uint64_t)), s->fed = 0;
            return fall_back(s);
        }
        m = fits;
    }
    bool has_lo = mid - m >= 0, has_hi = mid + m < (double)ns - 1;
    uint64_t r_lo = has_lo ? (uint64_t)(mid - m) : 0, r_hi = has_hi ? (uint64_t)(mid + m) + 1 : 0;
    s->blo = 0;
    s->bhi = UINT32_MAX; /* open ends: the rank cannot fall outside there */
    if (s->sbin) {
        /* the bins that hold ranks r_lo and r_hi, and their smallest and largest keys: a bracket
         * around the two order statistics (ties with a bin's end are counted, not copied) */
        uint64_t below = 0;
        size_t b = sample_bin_walk(s, r_lo, 0, &below);
        if (has_lo) s->blo = sample_bin_min(s->sbin[b], b);
        b = sample_bin_walk(s, r_hi, b, &below);
        if (has_hi) s->bhi = sample_bin_max(s->sbin[b], b);
    } else { /* then one low pass per end */
        uint64_t below_lo, below_hi;
        uint32_t bin_lo = hist_find(s, r_lo, &below_lo), bin_hi = hist_find(s, r_hi, &below_hi);
        memset(s->hist, 0, SELECT_BINS * sizeof(uint64_t));
        if (has_lo) s->blo = low_pass_in_memory(s, &v, &ns, 1, bin_lo, r_lo - below_lo);
        if (has_hi) s->bhi = low_pass_in_memory(s, &v, &ns, 1, bin_hi, r_hi - below_hi);
        s->fed = 0; /* the stream's next pass counts from 0 */
    }
    memset(s->cnt, 0, sizeof s->cnt);
    memset(s->lane, 0, sizeof s->lane);
    s->pass = SELECT_BRACKET;
    return true;
}

/* Copies (keys in the part arrays v) below `bound`: a compare-and-add loop that gcc vectorises. */
static uint64_t copies_below(const select_ctx *s, const float *const *v, const size_t *len, uint32_t bound) {
    uint64_t c = 0;
    for (int p = 0; p < s->parts; p++)
        for (size_t i = 0; i < len[p]; i++) c += key_of(v[p][i], s->absval) < bound;
    return c;
}

/* The rank-th smallest of the copies. They lie strictly inside (blo, bhi), so their keys' high
 * halves run over the few bins from blo >> 16 to bhi >> 16 (1 to 4 for a TIES bracket): rather
 * than a histogram pass, whose increments would all land on those few counters one after another,
 * count the copies below each bin boundary until the rank is passed, then one low pass. */
static uint32_t kth_of_copies(select_ctx *s, const float *const *v, const size_t *len, uint64_t rank) {
    uint32_t bin = s->blo >> 16, last = s->bhi >> 16;
    if (last - bin > 8) return kth_in_memory(s, v, len, s->parts, rank);
    uint64_t under = 0;
    for (; bin < last; bin++) {
        uint64_t c = copies_below(s, v, len, (bin + 1) << 16);
        if (c > rank) break;
        under = c;
    }
    return low_pass_in_memory(s, v, len, s->parts, bin, rank - under);
}

/* End of the bracket pass: the rank falls on blo, strictly inside (an exact select of the copies),
 * on bhi — or outside / past the copies' room, and the radix passes follow. */
static bool bracket_next(select_ctx *s) {
    for (int p = 0; p < s->parts; p++) lanes_into_counts(s, p);
    uint64_t t[6] = {0};
    for (int p = 0; p < s->parts; p++)
        for (int i = 0; i < 6; i++) t[i] += s->cnt[p][i];
    uint64_t below = t[0], le_hi = t[1], eq_lo = t[2], eq_hi = t[3], inside = t[4], r = s->want;
    TT_ASSERT(below + eq_lo + inside + eq_hi == le_hi);
    if (r < below || r >= le_hi) return fall_back(s);
    if (r < below + eq_lo) s->key = s->blo;
    else if (r >= below + eq_lo + inside) s->key = s->bhi;
    else {
        if (t[5] < inside) return fall_back(s); /* some copies did not fit */
        const float *v[SELECT_MAX_PARTS];
        size_t len[SELECT_MAX_PARTS];
        for (int p = 0; p < s->parts; p++) v[p] = s->cand + (size_t)p * s->cand_stride, len[p] = (size_t)s->cnt[p][5];
        s->key = kth_of_copies(s, v, len, r - below - eq_lo);
    }
    s->pass = SELECT_DONE;
    return false;
}

bool select_next_pass(select_ctx *s) {
    TT_ASSERT(s->pass < SELECT_DONE);
    uint64_t fed = s->fed;
    s->fed = 0;
    if (s->n) TT_ASSERT(fed == s->n); /* bracketed mode: every pass feeds the n values announced */
    TT_ASSERT(s->want < fed);        /* the caller asked for a rank past the values it fed */
    if (s->pass == SELECT_SAMPLE) return sample_next(s);
    if (s->pass == SELECT_BRACKET) return bracket_next(s);
    TT_ASSERT(s->pass != SELECT_LO || s->rank < fed);
    radix_next(s);
    return s->pass != SELECT_DONE;
}

bool select_done(const select_ctx *s) { return s->pass == SELECT_DONE; }

float select_value(const select_ctx *s) {
    TT_ASSERT(s->pass == SELECT_DONE);
    return value_of(s->key, s->absval);
}

float select_kth(const float *x, size_t n, uint64_t rank, bool absval) {
    select_ctx s;
    tt_err e;
    if (select_init(&s, rank, absval, &e)) return NAN;
    do select_feed(&s, x, n);
    while (select_next_pass(&s));
    float v = select_value(&s);
    select_free(&s);
    return v;
}
