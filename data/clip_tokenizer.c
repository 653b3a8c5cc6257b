#include "data/clip_tokenizer.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unicase.h>
#include <unictype.h>

#include "data/idx.h"

#include "data/clip_html_entities.inc"

#define TOK_MAX_FILE ((size_t)256 << 20) /* vocab.json / merges files larger than this are refused */
#define TOK_MAX_CACHE 65536              /* words remembered; the cache is emptied when full */
#define TOK_FIRST_CACHE 256              /* first cache size (slots = 2x): it doubles as it fills */
#define TOK_NO_ID (-1)

/* ---------------------------------------------------------------- code point buffers ---- */

typedef struct u32buf {
    uint32_t *v;
    size_t n, cap;
} u32buf;

static int u32_reserve(u32buf *b, size_t more) {
    if (b->n + more <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + more) cap *= 2;
    uint32_t *v = realloc(b->v, cap * sizeof *v);
    if (!v) return -1;
    b->v = v;
    b->cap = cap;
    return 0;
}

static int u32_push(u32buf *b, uint32_t c) {
    if (u32_reserve(b, 1)) return -1;
    b->v[b->n++] = c;
    return 0;
}

/* Strict UTF-8 (as Python's decode: no overlong forms, no surrogates, at most U+10FFFF).
 * Returns the byte offset of the first bad sequence, or len when all is valid. */
static size_t utf8_decode(const uint8_t *s, size_t len, u32buf *out, bool *oom) {
    size_t i = 0;
    *oom = false;
    while (i < len) {
        uint32_t c = s[i];
        int k;
        uint32_t min;
        if (c < 0x80) { k = 0; min = 0; }
        else if (c >= 0xC2 && c < 0xE0) { k = 1; c &= 0x1F; min = 0x80; }
        else if (c >= 0xE0 && c < 0xF0) { k = 2; c &= 0x0F; min = 0x800; }
        else if (c >= 0xF0 && c < 0xF5) { k = 3; c &= 0x07; min = 0x10000; }
        else return i;
        if (len - i <= (size_t)k) return i;
        for (int j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80) return i;
            c = c << 6 | (s[i + j] & 0x3F);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return i;
        if (out && u32_push(out, c)) {
            *oom = true;
            return i;
        }
        i += (size_t)k + 1;
    }
    return len;
}

static size_t utf8_put(uint32_t c, uint8_t *o) {
    if (c < 0x80) { o[0] = (uint8_t)c; return 1; }
    if (c < 0x800) { o[0] = (uint8_t)(0xC0 | c >> 6); o[1] = (uint8_t)(0x80 | (c & 0x3F)); return 2; }
    if (c < 0x10000) {
        o[0] = (uint8_t)(0xE0 | c >> 12); o[1] = (uint8_t)(0x80 | (c >> 6 & 0x3F));
        o[2] = (uint8_t)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | c >> 18); o[1] = (uint8_t)(0x80 | (c >> 12 & 0x3F));
    o[2] = (uint8_t)(0x80 | (c >> 6 & 0x3F)); o[3] = (uint8_t)(0x80 | (c & 0x3F));
    return 4;
}

/* ---------------------------------------------------------------- text cleaning ---- */

/* Python's str.isspace() (Unicode 14: bidirectional class WS, B or S, or category Zs). */
static bool py_isspace(uint32_t c) {
    if (c < 0x80) return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20);
    switch (c) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
        return true;
    default:
        return c >= 0x2000 && c <= 0x200A;
    }
}

static int entity_cmp(const char *name, const char *s, size_t n) {
    int r = strncmp(name, s, n);
    if (r) return r;
    return name[n] ? 1 : 0;
}

/* The replacement of HTML5 entity name s[0..n) (ASCII, ';' included when present), or NULL. */
static const char *html5_lookup(const char *s, size_t n) {
    size_t lo = 0, hi = sizeof tok_html5 / sizeof tok_html5[0];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = entity_cmp(tok_html5[mid].name, s, n);
        if (r == 0) return tok_html5[mid].utf8;
        if (r < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

static int push_utf8_str(u32buf *out, const char *s) {
    bool oom;
    size_t n = strlen(s);
    size_t ok = utf8_decode((const uint8_t *)s, n, out, &oom);
    return (ok != n || oom) ? -1 : 0;
}

/* Python's html._replace_charref for a numeric reference (num saturated above 0x10FFFF). */
static int push_charref(u32buf *out, uint32_t num) {
    for (size_t i = 0; i < sizeof tok_invalid_charrefs / sizeof tok_invalid_charrefs[0]; i++)
        if (tok_invalid_charrefs[i].num == num) return u32_push(out, tok_invalid_charrefs[i].cp);
    if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) return u32_push(out, 0xFFFD);
    for (size_t i = 0; i < sizeof tok_invalid_codepoints / sizeof tok_invalid_codepoints[0]; i++)
        if (tok_invalid_codepoints[i] == num) return 0;
    return u32_push(out, num);
}

static int hex_value(uint32_t c) {
    if (c >= '0' && c <= '9') return (int)(c - '0');
    if (c >= 'a' && c <= 'f') return (int)(c - 'a' + 10);
    if (c >= 'A' && c <= 'F') return (int)(c - 'A' + 10);
    return -1;
}

/* A numeric reference at in[i] == '&', in[i+1] == '#': "&#[0-9]+;?" or "&#[xX][0-9a-fA-F]+;?".
 * Returns the index after it, or 0 when neither form matches. */
static size_t numeric_ref(const uint32_t *in, size_t n, size_t i, u32buf *out, int *rc) {
    size_t k = i + 2;
    int base = 10;
    if (k < n && (in[k] == 'x' || in[k] == 'X')) {
        base = 16;
        k++;
    }
    uint32_t num = 0;
    size_t start = k;
    for (; k < n; k++) {
        int d = base == 16 ? hex_value(in[k]) : (in[k] >= '0' && in[k] <= '9' ? (int)(in[k] - '0') : -1);
        if (d < 0) break;
        num = num > 0x110000 ? 0x110000 : num * (uint32_t)base + (uint32_t)d;
    }
    if (k == start) return 0; /* "&#" or "&#x" without digits: the '&' stays as it is */
    if (k < n && in[k] == ';') k++;
    *rc = push_charref(out, num);
    return k;
}

static bool in_entity_name(uint32_t c) {
    return !(c == '\t' || c == '\n' || c == '\f' || c == ' ' || c == '<' || c == '&' || c == '#' || c == ';');
}

/* A named reference at in[i] == '&': "&[^\t\n\f <&#;]{1,32};?", replaced by the entity, by
 * the longest entity prefix (length >= 2) plus the rest, or kept. Returns the index after it,
 * or 0 when nothing matches the pattern. */
static size_t named_ref(const uint32_t *in, size_t n, size_t i, u32buf *out, int *rc) {
    size_t j = i + 1, k = j;
    while (k < n && k - j < 32 && in_entity_name(in[k])) k++;
    if (k == j) return 0;
    if (k < n && in[k] == ';') k++;
    size_t len = k - j;
    char name[40];
    size_t ascii = 0; /* the longest ASCII prefix without NUL: no entity name has other characters */
    while (ascii < len && in[j + ascii] < 0x80 && in[j + ascii] != 0) {
        name[ascii] = (char)in[j + ascii];
        ascii++;
    }
    const char *rep = ascii == len ? html5_lookup(name, len) : NULL;
    size_t used = len;
    for (size_t x = len - 1; !rep && x >= 2; x--) {
        if (x <= ascii) rep = html5_lookup(name, x);
        if (rep) used = x;
    }
    if (!rep) {
        *rc = u32_push(out, '&');
        for (size_t q = j; q < k && !*rc; q++) *rc = u32_push(out, in[q]);
        return k;
    }
    *rc = push_utf8_str(out, rep);
    for (size_t q = j + used; q < k && !*rc; q++) *rc = u32_push(out, in[q]);
    return k;
}

/* Python's html.unescape. */
static int html_unescape(const uint32_t *in, size_t n, u32buf *out) {
    out->n = 0;
    if (u32_reserve(out, n)) return -1;
    for (size_t i = 0; i < n;) {
        if (in[i] != '&') {
            out->v[out->n++] = in[i++];
            continue;
        }
        int rc = 0;
        size_t next = (i + 1 < n && in[i + 1] == '#') ? numeric_ref(in, n, i, out, &rc) : named_ref(in, n, i, out, &rc);
        if (rc) return -1;
        if (next) {
            i = next;
        } else {
            if (u32_push(out, '&')) return -1;
            i++;
        }
        if (u32_reserve(out, n - i)) return -1;
    }
    return 0;
}

/* " ".join(text.split()): whitespace runs become one space, none at the ends. */
static void whitespace_clean(u32buf *b) {
    size_t o = 0;
    bool pending = false;
    for (size_t i = 0; i < b->n; i++) {
        if (py_isspace(b->v[i])) {
            pending = o > 0;
            continue;
        }
        if (pending) b->v[o++] = ' ';
        pending = false;
        b->v[o++] = b->v[i];
    }
    b->n = o;
}

/* Python's handle_capital_sigma: U+03A3 at s[i] lowers to final sigma when a cased letter
 * precedes it and none follows, skipping case-ignorable characters both ways (Unicode's
 * Final_Sigma; libunistring's own context rule disagrees with Python's around U+0027). */
static uint32_t lower_capital_sigma(const uint32_t *s, size_t n, size_t i) {
    size_t j = i;
    while (j > 0 && uc_is_property_case_ignorable(s[j - 1])) j--;
    if (j == 0 || !uc_is_property_cased(s[j - 1])) return 0x3C3;
    j = i + 1;
    while (j < n && uc_is_property_case_ignorable(s[j])) j++;
    return (j == n || !uc_is_property_cased(s[j])) ? 0x3C2 : 0x3C3;
}

/* Python's str.lower(): each character's full lower-case mapping (SpecialCasing without a
 * language: U+0130 becomes "i\u0307"), and the final-sigma rule for U+03A3. */
static int py_lower(const uint32_t *s, size_t n, u32buf *out) {
    out->n = 0;
    if (u32_reserve(out, n)) return -1;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = s[i];
        if (c < 0x80) {
            out->v[out->n++] = c >= 'A' && c <= 'Z' ? c + 32 : c;
            continue;
        }
        if (c == 0x3A3) {
            out->v[out->n++] = lower_capital_sigma(s, n, i);
            continue;
        }
        uint32_t buf[8];
        size_t len = sizeof buf / sizeof buf[0];
        uint32_t *m = u32_tolower(&c, 1, NULL, NULL, buf, &len);
        if (!m) return -1;
        if (m != buf) { /* never for one character; kept correct anyway */
            free(m);
            return -1;
        }
        if (u32_reserve(out, len + (n - i))) return -1;
        memcpy(out->v + out->n, buf, len * sizeof *buf);
        out->n += len;
    }
    return 0;
}

/* open_clip's 'lower' cleaning (without ftfy) of UTF-8 text into out (code points). */
static int clean_text(const char *text, size_t len, u32buf *out, tt_err *err) {
    u32buf a = {0}, b = {0};
    bool oom;
    int rc = -1;
    size_t bad = utf8_decode((const uint8_t *)text, len, &a, &oom);
    if (oom) goto nomem;
    if (bad != len) {
        tt_fail(err, TT_EINPUT, "text is not valid UTF-8 at byte %zu", bad);
        goto done;
    }
    if (html_unescape(a.v, a.n, &b) || html_unescape(b.v, b.n, &a)) goto nomem;
    whitespace_clean(&a);
    if (py_lower(a.v, a.n, &b)) goto nomem;
    free(out->v);
    *out = b;
    b = (u32buf){0};
    rc = 0;
    goto done;
nomem:
    tt_fail(err, TT_ENOMEM, "out of memory while cleaning a text of %zu bytes", len);
done:
    free(a.v);
    free(b.v);
    return rc;
}

int tok_clean(const char *text, size_t len, char **out, size_t *out_len, tt_err *err) {
    *out = NULL;
    *out_len = 0;
    u32buf c = {0};
    if (clean_text(text, len, &c, err)) return -1;
    char *s = malloc(c.n * 4 + 1);
    if (!s) {
        free(c.v);
        return tt_fail(err, TT_ENOMEM, "out of memory for a cleaned text");
    }
    size_t n = 0;
    for (size_t i = 0; i < c.n; i++) n += utf8_put(c.v[i], (uint8_t *)s + n);
    s[n] = 0;
    free(c.v);
    *out = s;
    *out_len = n;
    return 0;
}

/* ---------------------------------------------------------------- the vocabulary ---- */

/* Symbols (strings of byte characters, possibly ending in </w>) are interned: symbol b (0..255)
 * is byte b's character, 256 + b the same with </w>, then merge parts and results. (Their
 * vocabulary ids follow bytes_to_unicode's order instead: byte_order.) */
typedef struct pair_slot {
    uint64_t key; /* (a + 1) << 32 | (b + 1); 0 = empty */
    uint32_t rank, merged;
} pair_slot;

typedef struct cache_slot {
    uint32_t key_off, key_len; /* into cache_keys; key_len 0 = empty */
    uint32_t ids_off, ids_len; /* into cache_ids */
    uint64_t hash;
} cache_slot;

struct tok_bpe {
    tok_format format;
    int32_t sot, eot, unk, vocab_size, n_merges;
    uint32_t special[2][24]; /* sot and eot strings as code points, 0-terminated */
    size_t special_len[2];

    char *pool; /* symbol strings */
    size_t pool_n, pool_cap;
    uint32_t *sym_off, *sym_len;
    int32_t *sym_id; /* vocabulary id, TOK_NO_ID when absent */
    uint32_t n_syms, syms_cap;
    uint32_t *sym_slots; /* hash of symbol strings: index + 1, 0 = empty */
    uint32_t sym_slots_cap;

    pair_slot *pairs;
    uint32_t pairs_cap, n_pairs;

    int cache_off;
    cache_slot *cache;
    uint32_t cache_n, cache_slots; /* entries; slots (a power of two, >= 2 * entries) */
    uint8_t *cache_keys;
    size_t cache_keys_n, cache_keys_cap;
    int32_t *cache_ids;
    size_t cache_ids_n, cache_ids_cap;

    uint32_t *word, *word2; /* BPE scratch */
    size_t word_cap;
};

static uint64_t fnv1a(const void *p, size_t n) {
    const uint8_t *s = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ull;
    return h;
}

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ x >> 33;
}

/* The byte -> character map of bytes_to_unicode(): printable Latin-1 bytes map to themselves,
 * the other 68 (0-32, 127-160, 173) to U+0100 + n in ascending order. */
static bool byte_is_printable(int b) { return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255); }

/* How many bytes of the same kind (printable or not) come before b. */
static int byte_rank_in_kind(int b) {
    int n = 0;
    for (int x = 0; x < b; x++) n += byte_is_printable(x) == byte_is_printable(b);
    return n;
}

static uint32_t byte_char(int b) {
    return byte_is_printable(b) ? (uint32_t)b : 256u + (uint32_t)byte_rank_in_kind(b);
}

/* b's position in bytes_to_unicode()'s dict order: the 188 printable bytes ascending, then
 * the 68 others ascending ('!' = 0, '~' = 93, byte 0 = 188, ' ' = 220). */
static int byte_order(int b) { return byte_is_printable(b) ? byte_rank_in_kind(b) : 188 + byte_rank_in_kind(b); }

static long sym_find(const tok_bpe *t, const char *s, size_t n) {
    if (!t->sym_slots_cap) return -1;
    uint32_t mask = t->sym_slots_cap - 1;
    for (uint32_t h = (uint32_t)fnv1a(s, n) & mask;; h = (h + 1) & mask) {
        uint32_t v = t->sym_slots[h];
        if (!v) return -1;
        v--;
        if (t->sym_len[v] == n && !memcmp(t->pool + t->sym_off[v], s, n)) return v;
    }
}

static int sym_rehash(tok_bpe *t, uint32_t cap) {
    uint32_t *slots = calloc(cap, sizeof *slots);
    if (!slots) return -1;
    for (uint32_t v = 0; v < t->n_syms; v++) {
        uint32_t h = (uint32_t)fnv1a(t->pool + t->sym_off[v], t->sym_len[v]) & (cap - 1);
        while (slots[h]) h = (h + 1) & (cap - 1);
        slots[h] = v + 1;
    }
    free(t->sym_slots);
    t->sym_slots = slots;
    t->sym_slots_cap = cap;
    return 0;
}

/* The id of symbol s[0..n), added when new; -1 when out of memory. */
static long sym_intern(tok_bpe *t, const char *s, size_t n) {
    long found = sym_find(t, s, n);
    if (found >= 0) return found;
    if (t->n_syms == t->syms_cap) {
        uint32_t cap = t->syms_cap ? t->syms_cap * 2 : 1024;
        uint32_t *off = realloc(t->sym_off, cap * sizeof *off);
        if (!off) return -1;
        t->sym_off = off;
        uint32_t *len = realloc(t->sym_len, cap * sizeof *len);
        if (!len) return -1;
        t->sym_len = len;
        int32_t *id = realloc(t->sym_id, cap * sizeof *id);
        if (!id) return -1;
        t->sym_id = id;
        t->syms_cap = cap;
    }
    if (t->pool_n + n > t->pool_cap) {
        size_t cap = t->pool_cap ? t->pool_cap : 4096;
        while (cap < t->pool_n + n) cap *= 2;
        char *p = realloc(t->pool, cap);
        if (!p) return -1;
        t->pool = p;
        t->pool_cap = cap;
    }
    if (t->pool_n + n > UINT32_MAX) return -1;
    memcpy(t->pool + t->pool_n, s, n);
    uint32_t v = t->n_syms++;
    t->sym_off[v] = (uint32_t)t->pool_n;
    t->sym_len[v] = (uint32_t)n;
    t->sym_id[v] = TOK_NO_ID;
    t->pool_n += n;
    if ((uint64_t)t->n_syms * 2 > t->sym_slots_cap) {
        if (sym_rehash(t, t->sym_slots_cap ? t->sym_slots_cap * 2 : 4096)) return -1;
    } else {
        uint32_t mask = t->sym_slots_cap - 1;
        uint32_t h = (uint32_t)fnv1a(s, n) & mask;
        while (t->sym_slots[h]) h = (h + 1) & mask;
        t->sym_slots[h] = v + 1;
    }
    return v;
}

static pair_slot *pair_slot_of(const tok_bpe *t, uint32_t a, uint32_t b) {
    uint64_t key = (uint64_t)(a + 1) << 32 | (b + 1);
    uint32_t mask = t->pairs_cap - 1;
    for (uint32_t h = (uint32_t)mix64(key) & mask;; h = (h + 1) & mask)
        if (t->pairs[h].key == key || !t->pairs[h].key) return &t->pairs[h];
}

static const pair_slot *pair_find(const tok_bpe *t, uint32_t a, uint32_t b) {
    const pair_slot *p = pair_slot_of(t, a, b);
    return p->key ? p : NULL;
}

/* The 512 initial symbols: the byte characters alone and with </w>. */
static int intern_byte_symbols(tok_bpe *t) {
    for (int w = 0; w < 2; w++)
        for (int b = 0; b < 256; b++) {
            uint8_t s[8];
            size_t n = utf8_put(byte_char(b), s);
            if (w) {
                memcpy(s + n, "</w>", 4);
                n += 4;
            }
            if (sym_intern(t, (const char *)s, n) != w * 256 + b) return -1;
        }
    return 0;
}

/* A text split into lines: the offsets of each line (without '\n'). */
typedef struct lines {
    size_t *start, *len;
    size_t n;
} lines;

static int split_lines(const char *s, size_t n, lines *out) {
    size_t count = 1;
    for (size_t i = 0; i < n; i++) count += s[i] == '\n';
    out->start = malloc(count * sizeof *out->start);
    out->len = malloc(count * sizeof *out->len);
    if (!out->start || !out->len) return -1;
    out->n = 0;
    size_t b = 0;
    for (size_t i = 0; i <= n; i++)
        if (i == n || s[i] == '\n') {
            out->start[out->n] = b;
            out->len[out->n++] = i - b;
            b = i + 1;
        }
    return 0;
}

static void lines_free(lines *l) {
    free(l->start);
    free(l->len);
}

/* Parse merge lines first..first+count-1 (0-based) of text: each "a b" (Python's str.split()
 * gives exactly two fields) becomes rank r: pair (a, b) -> a+b, whose symbol goes to
 * joined_sym[r] when joined_sym is not NULL. Later duplicates take the later rank, as
 * dict(zip(merges, range(...))) does. Messages number lines from line_base + 1. */
static int parse_merges(tok_bpe *t, const char *name, const char *text, const lines *ls, size_t first,
                        size_t count, size_t line_base, uint32_t *joined_sym, tt_err *err) {
    char buf[64];
    for (size_t r = 0; r < count; r++) {
        size_t li = first + r;
        const char *line = text + ls->start[li];
        size_t n = ls->len[li];
        u32buf cps = {0};
        bool oom;
        size_t bad = utf8_decode((const uint8_t *)line, n, &cps, &oom);
        if (oom) {
            free(cps.v);
            return tt_fail(err, TT_ENOMEM, "%s: out of memory", name);
        }
        if (bad != n) {
            free(cps.v);
            return tt_fail(err, TT_EINPUT, "%s:%zu: not valid UTF-8 (byte %zu of the line)", name, line_base + li + 1, bad);
        }
        /* Fields by Python whitespace, as byte ranges of the line. */
        size_t fs[3], fe[3], nf = 0, pos = 0;
        bool in_field = false;
        for (size_t i = 0; i < cps.n; i++) {
            uint8_t tmp[4];
            size_t w = utf8_put(cps.v[i], tmp);
            if (py_isspace(cps.v[i])) {
                if (in_field && nf <= 3) fe[nf - 1] = pos;
                in_field = false;
            } else if (!in_field) {
                in_field = true;
                if (++nf <= 3) fs[nf - 1] = pos;
            }
            pos += w;
        }
        if (in_field && nf <= 3) fe[nf - 1] = pos;
        free(cps.v);
        if (nf != 2)
            return tt_fail(err, TT_EINPUT, "%s:%zu: a merge line has %zu field%s ('%s'), expected two symbols", name,
                           line_base + li + 1, nf, nf == 1 ? "" : "s", tt_printable(line, n, buf, sizeof buf));
        char *joined = malloc(n + 1);
        if (!joined) return tt_fail(err, TT_ENOMEM, "%s: out of memory", name);
        size_t la = fe[0] - fs[0], lb = fe[1] - fs[1];
        memcpy(joined, line + fs[0], la);
        memcpy(joined + la, line + fs[1], lb);
        long a = sym_intern(t, line + fs[0], la);
        long b = a < 0 ? -1 : sym_intern(t, line + fs[1], lb);
        long ab = b < 0 ? -1 : sym_intern(t, joined, la + lb);
        free(joined);
        if (ab < 0) return tt_fail(err, TT_ENOMEM, "%s: out of memory for the merges", name);
        pair_slot *p = pair_slot_of(t, (uint32_t)a, (uint32_t)b);
        if (!p->key) t->n_pairs++;
        p->key = (uint64_t)(a + 1) << 32 | (uint64_t)(b + 1);
        p->rank = (uint32_t)r;
        p->merged = (uint32_t)ab;
        if (joined_sym) joined_sym[r] = (uint32_t)ab;
    }
    t->n_merges = (int32_t)count;
    return 0;
}

static tok_bpe *tok_new(tok_format format, size_t merges_hint) {
    tok_bpe *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->format = format;
    uint32_t cap = 1024;
    while (cap < merges_hint * 2 + 16) cap *= 2;
    t->pairs = calloc(cap, sizeof *t->pairs);
    t->pairs_cap = cap;
    if (!t->pairs || intern_byte_symbols(t)) {
        tok_free(t);
        return NULL;
    }
    return t;
}

static void set_special(tok_bpe *t, int which, const char *s) {
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++) t->special[which][i] = (uint8_t)s[i];
    t->special[which][n] = 0;
    t->special_len[which] = n;
}

void tok_free(tok_bpe *t) {
    if (!t) return;
    free(t->pool);
    free(t->sym_off);
    free(t->sym_len);
    free(t->sym_id);
    free(t->sym_slots);
    free(t->pairs);
    free(t->cache);
    free(t->cache_keys);
    free(t->cache_ids);
    free(t->word);
    free(t->word2);
    free(t);
}

/* The merge lines a file's split('\n')[1:1+TOK_OPENCLIP_MERGES] holds, less a final empty
 * line (the newline ending a short file; open_clip would add an empty symbol for it). */
static size_t merge_line_count(const lines *ls) {
    size_t count = ls->n > 1 ? ls->n - 1 : 0;
    if (count > TOK_OPENCLIP_MERGES) count = TOK_OPENCLIP_MERGES;
    else if (count > 0 && ls->len[ls->n - 1] == 0) count--;
    return count;
}

int tok_parse_openclip(const char *name, const char *text, size_t len, tok_bpe **out, tt_err *err) {
    *out = NULL;
    lines ls = {0};
    if (split_lines(text, len, &ls)) {
        lines_free(&ls);
        return tt_fail(err, TT_ENOMEM, "%s: out of memory", name);
    }
    size_t count = merge_line_count(&ls);
    tok_bpe *t = tok_new(TOK_OPENCLIP, count);
    uint32_t *joined = malloc((count + 1) * sizeof *joined);
    int rc = -1;
    if (!t || !joined) {
        tt_fail(err, TT_ENOMEM, "%s: out of memory", name);
        goto done;
    }
    if (len == 0) {
        tt_fail(err, TT_EINPUT, "%s: empty file (expected a header line, then merges)", name);
        goto done;
    }
    if (parse_merges(t, name, text, &ls, 1, count, 0, joined, err)) goto done;
    /* open_clip's vocabulary list: bytes, bytes + </w>, the merges joined, the two special
     * tokens; dict(zip(vocab, range)) keeps the last id of a repeated string. */
    for (int b = 0; b < 256; b++) {
        t->sym_id[b] = byte_order(b);
        t->sym_id[256 + b] = 256 + byte_order(b);
    }
    for (size_t r = 0; r < count; r++) t->sym_id[joined[r]] = (int32_t)(512 + r);
    t->sot = (int32_t)(512 + count);
    t->eot = t->sot + 1;
    t->unk = t->eot; /* never used: every symbol BPE can produce is in this vocabulary */
    t->vocab_size = t->eot + 1;
    set_special(t, 0, "<start_of_text>");
    set_special(t, 1, "<end_of_text>");
    /* The special strings come last in open_clip's list: they win over an equal merge result. */
    long sv = sym_find(t, "<start_of_text>", 15);
    if (sv >= 0) t->sym_id[sv] = t->sot;
    sv = sym_find(t, "<end_of_text>", 13);
    if (sv >= 0) t->sym_id[sv] = t->eot;
    *out = t;
    t = NULL;
    rc = 0;
done:
    free(joined);
    tok_free(t);
    lines_free(&ls);
    return rc;
}

int tok_parse_hf(const char *vocab_name, const char *vocab, size_t vocab_len, const char *merges_name,
                 const char *merges, size_t merges_len, tok_bpe **out, tt_err *err) {
    *out = NULL;
    /* merges.txt: read().strip().split('\n')[1:48895] */
    size_t b = 0, e = merges_len, first_line = 0;
    while (b < e && (merges[b] == ' ' || (merges[b] >= 9 && merges[b] <= 13))) {
        if (merges[b] == '\n') first_line++;
        b++;
    }
    while (e > b && (merges[e - 1] == ' ' || (merges[e - 1] >= 9 && merges[e - 1] <= 13))) e--;
    lines ls = {0};
    tok_bpe *t = NULL;
    json_t *root = NULL;
    int rc = -1;
    char buf[64];
    if (split_lines(merges + b, e - b, &ls)) {
        tt_fail(err, TT_ENOMEM, "%s: out of memory", merges_name);
        goto done;
    }
    if (b == e) {
        tt_fail(err, TT_EINPUT, "%s: empty file (expected a '#version' line, then merges)", merges_name);
        goto done;
    }
    size_t count = ls.n - 1 > TOK_OPENCLIP_MERGES ? TOK_OPENCLIP_MERGES : ls.n - 1;
    t = tok_new(TOK_HF, count);
    if (!t) {
        tt_fail(err, TT_ENOMEM, "%s: out of memory", merges_name);
        goto done;
    }
    if (parse_merges(t, merges_name, merges + b, &ls, 1, count, first_line, NULL, err)) goto done;
    json_error_t je;
    root = json_loadb(vocab, vocab_len, 0, &je);
    if (!root) {
        tt_fail(err, TT_EINPUT, "%s:%d: not valid JSON: %s", vocab_name, je.line, je.text);
        goto done;
    }
    if (!json_is_object(root)) {
        tt_fail(err, TT_EINPUT, "%s: expected a JSON object (symbol -> id)", vocab_name);
        goto done;
    }
    const char *key;
    json_t *val;
    int32_t max_id = -1;
    t->sot = t->eot = TOK_NO_ID;
    json_object_foreach(root, key, val) {
        json_int_t id = json_is_integer(val) ? json_integer_value(val) : -1;
        if (!json_is_integer(val) || id < 0 || id >= INT32_MAX) {
            tt_fail(err, TT_EINPUT, "%s: the id of '%s' is not an integer in [0, %d)", vocab_name,
                    tt_printable(key, strlen(key), buf, sizeof buf), INT32_MAX);
            goto done;
        }
        if (id > max_id) max_id = (int32_t)id;
        if (!strcmp(key, "<|startoftext|>")) t->sot = (int32_t)id;
        if (!strcmp(key, "<|endoftext|>")) t->eot = (int32_t)id;
        long v = sym_find(t, key, strlen(key));
        if (v >= 0) t->sym_id[v] = (int32_t)id;
    }
    if (t->sot == TOK_NO_ID || t->eot == TOK_NO_ID) {
        tt_fail(err, TT_EINPUT, "%s: no id for %s", vocab_name, t->sot == TOK_NO_ID ? "<|startoftext|>" : "<|endoftext|>");
        goto done;
    }
    t->unk = t->eot;
    t->vocab_size = max_id + 1;
    set_special(t, 0, "<|startoftext|>");
    set_special(t, 1, "<|endoftext|>");
    *out = t;
    t = NULL;
    rc = 0;
done:
    json_decref(root);
    tok_free(t);
    lines_free(&ls);
    return rc;
}

static int slurp(const char *path, char **data, size_t *n, tt_err *err) {
    uint8_t *d = NULL;
    if (idx_slurp(path, TOK_MAX_FILE, &d, n, err)) return -1;
    *data = (char *)d;
    return 0;
}

int tok_load_openclip(const char *path, tok_bpe **out, tt_err *err) {
    char *text;
    size_t n;
    *out = NULL;
    if (slurp(path, &text, &n, err)) return -1;
    int rc = tok_parse_openclip(path, text, n, out, err);
    free(text);
    return rc;
}

int tok_load_hf(const char *vocab_json, const char *merges_txt, tok_bpe **out, tt_err *err) {
    char *v = NULL, *m = NULL;
    size_t vn, mn;
    *out = NULL;
    int rc = -1;
    if (!slurp(vocab_json, &v, &vn, err) && !slurp(merges_txt, &m, &mn, err))
        rc = tok_parse_hf(vocab_json, v, vn, merges_txt, m, mn, out, err);
    free(v);
    free(m);
    return rc;
}

static bool is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static char *path_join(const char *dir, size_t dir_len, const char *name) {
    size_t n = dir_len + 1 + strlen(name) + 1;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%.*s/%s", (int)dir_len, dir, name);
    return p;
}

int tok_load(const char *path, tok_bpe **out, tt_err *err) {
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0) return tt_fail(err, TT_EIO, "%s: no such file or directory", path);
    size_t n = strlen(path);
    char *vocab = NULL, *merges = NULL;
    int rc;
    if (S_ISDIR(st.st_mode)) {
        vocab = path_join(path, n, "vocab.json");
        merges = path_join(path, n, "merges.txt");
        if (!vocab || !merges) rc = tt_fail(err, TT_ENOMEM, "out of memory");
        else if (is_file(vocab) && is_file(merges)) rc = tok_load_hf(vocab, merges, out, err);
        else {
            free(vocab);
            vocab = path_join(path, n, "bpe_simple_vocab_16e6.txt.gz");
            if (!vocab) rc = tt_fail(err, TT_ENOMEM, "out of memory");
            else if (is_file(vocab)) rc = tok_load_openclip(vocab, out, err);
            else
                rc = tt_fail(err, TT_EINPUT, "%s: holds neither vocab.json + merges.txt nor bpe_simple_vocab_16e6.txt.gz",
                             path);
        }
    } else if (n >= 5 && !strcmp(path + n - 5, ".json")) {
        const char *slash = strrchr(path, '/');
        merges = slash ? path_join(path, (size_t)(slash - path), "merges.txt") : strdup("merges.txt");
        if (!merges) rc = tt_fail(err, TT_ENOMEM, "out of memory");
        else rc = tok_load_hf(path, merges, out, err);
    } else {
        rc = tok_load_openclip(path, out, err);
    }
    free(vocab);
    free(merges);
    return rc;
}

tok_format tok_get_format(const tok_bpe *t) { return t->format; }
int32_t tok_sot(const tok_bpe *t) { return t->sot; }
int32_t tok_eot(const tok_bpe *t) { return t->eot; }
int32_t tok_vocab_size(const tok_bpe *t) { return t->vocab_size; }
int32_t tok_merge_count(const tok_bpe *t) { return t->n_merges; }

/* ---------------------------------------------------------------- encoding ---- */

void tok_ids_free(tok_ids *ids) {
    free(ids->v);
    memset(ids, 0, sizeof *ids);
}

static int ids_push(tok_ids *ids, int32_t id) {
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? ids->cap * 2 : 32;
        int32_t *v = realloc(ids->v, cap * sizeof *v);
        if (!v) return -1;
        ids->v = v;
        ids->cap = cap;
    }
    ids->v[ids->n++] = id;
    return 0;
}

static bool is_letter(uint32_t c) {
    if (c < 0x80) return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
    return uc_is_general_category(c, UC_CATEGORY_L);
}

static bool is_number(uint32_t c) {
    if (c < 0x80) return c >= '0' && c <= '9';
    return uc_is_general_category(c, UC_CATEGORY_N);
}

/* [^\s\p{L}\p{N}] under the regex module's IGNORECASE. After cleaning, ' ' is the only \s
 * left. U+0345 (COMBINING GREEK YPOGEGRAMMENI, Mn) is the one character the flag changes:
 * its case variants are letters, so the negated class refuses it, while [\p{L}] does not take
 * it either — open_clip's regex drops it like a space. */
static bool is_other(uint32_t c) {
    return c != ' ' && c != 0x345 && !is_letter(c) && !is_number(c);
}

/* The regex's literal c under IGNORECASE: after lower-casing, 's' also matches U+017F LONG S. */
static bool literal_eq(uint32_t want, uint32_t c) { return c == want || (want == 's' && c == 0x17F); }

/* Length of the special token or contraction at s[i..n) (0 if none); *exact is set when the
 * text is the special token itself (a LONG S variant is matched but encoded as text). */
static size_t match_special(const tok_bpe *t, const uint32_t *s, size_t n, size_t i, int *which) {
    for (int w = 0; w < 2; w++) {
        size_t len = t->special_len[w];
        if (n - i < len) continue;
        bool ok = true, exact = true;
        for (size_t k = 0; k < len && ok; k++) {
            ok = literal_eq(t->special[w][k], s[i + k]);
            exact = exact && s[i + k] == t->special[w][k];
        }
        if (ok) {
            *which = exact ? w : -1;
            return len;
        }
    }
    return 0;
}

static size_t match_contraction(const uint32_t *s, size_t n, size_t i) {
    if (s[i] != '\'' || i + 1 >= n) return 0;
    uint32_t a = s[i + 1], b = i + 2 < n ? s[i + 2] : 0;
    if (literal_eq('s', a) || a == 't' || a == 'm' || a == 'd') return 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
}

static int scratch_reserve(tok_bpe *t, size_t n) {
    if (n <= t->word_cap) return 0;
    size_t cap = t->word_cap ? t->word_cap : 64;
    while (cap < n) cap *= 2;
    uint32_t *a = realloc(t->word, cap * sizeof *a);
    if (!a) return -1;
    t->word = a;
    uint32_t *b = realloc(t->word2, cap * sizeof *b);
    if (!b) return -1;
    t->word2 = b;
    t->word_cap = cap;
    return 0;
}

/* BPE of one byte-encoded word: symbols in t->word[0..*n) on return. */
static void bpe_word(tok_bpe *t, size_t *n_io) {
    size_t n = *n_io;
    uint32_t *w = t->word, *o = t->word2;
    while (n > 1) {
        uint32_t best_rank = UINT32_MAX, first = 0, second = 0, merged = 0;
        for (size_t i = 0; i + 1 < n; i++) {
            const pair_slot *p = pair_find(t, w[i], w[i + 1]);
            if (p && p->rank < best_rank) {
                best_rank = p->rank;
                first = w[i];
                second = w[i + 1];
                merged = p->merged;
            }
        }
        if (best_rank == UINT32_MAX) break;
        size_t m = 0;
        for (size_t i = 0; i < n;) {
            if (i + 1 < n && w[i] == first && w[i + 1] == second) {
                o[m++] = merged;
                i += 2;
            } else {
                o[m++] = w[i++];
            }
        }
        uint32_t *tmp = w;
        w = o;
        o = tmp;
        n = m;
    }
    if (w != t->word) memcpy(t->word, w, n * sizeof *w);
    *n_io = n;
}

static cache_slot *cache_slot_of(tok_bpe *t, const uint8_t *key, size_t n, uint64_t h) {
    uint32_t mask = t->cache_slots - 1;
    for (uint32_t i = (uint32_t)h & mask;; i = (i + 1) & mask) {
        cache_slot *s = &t->cache[i];
        if (!s->key_len) return s;
        if (s->hash == h && s->key_len == n && !memcmp(t->cache_keys + s->key_off, key, n)) return s;
    }
}

static void cache_clear(tok_bpe *t) {
    memset(t->cache, 0, t->cache_slots * sizeof *t->cache);
    t->cache_n = 0;
    t->cache_keys_n = 0;
    t->cache_ids_n = 0;
}

/* Make room for one more entry: double the slots (rehash) below TOK_MAX_CACHE entries, else
 * start over empty. -1 when out of memory (the word is then not cached). */
static int cache_make_room(tok_bpe *t) {
    if (t->cache && (t->cache_n + 1) * 2 <= t->cache_slots) return 0;
    if (t->cache && t->cache_n >= TOK_MAX_CACHE) {
        cache_clear(t);
        return 0;
    }
    uint32_t slots = t->cache ? t->cache_slots * 2 : 2 * TOK_FIRST_CACHE;
    cache_slot *old = t->cache, *fresh = calloc(slots, sizeof *fresh);
    if (!fresh) return -1;
    uint32_t old_slots = t->cache_slots;
    t->cache = fresh;
    t->cache_slots = slots;
    for (uint32_t i = 0; i < old_slots; i++) {
        if (!old[i].key_len) continue;
        uint32_t j = (uint32_t)old[i].hash & (slots - 1);
        while (fresh[j].key_len) j = (j + 1) & (slots - 1);
        fresh[j] = old[i];
    }
    free(old);
    return 0;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 4096;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

/* Remember the ids of word key[0..n) (a miss of the cache is never an error). */
static void cache_put(tok_bpe *t, cache_slot *s, const uint8_t *key, size_t n, uint64_t h, const int32_t *ids,
                      size_t k) {
    if (n > UINT32_MAX / 2 || k > UINT32_MAX / 2) return;
    if (grow((void **)&t->cache_keys, &t->cache_keys_cap, t->cache_keys_n + n, 1) ||
        grow((void **)&t->cache_ids, &t->cache_ids_cap, t->cache_ids_n + k, sizeof *ids) ||
        t->cache_keys_n + n > UINT32_MAX || t->cache_ids_n + k > UINT32_MAX)
        return;
    memcpy(t->cache_keys + t->cache_keys_n, key, n);
    memcpy(t->cache_ids + t->cache_ids_n, ids, k * sizeof *ids);
    s->key_off = (uint32_t)t->cache_keys_n;
    s->key_len = (uint32_t)n;
    s->ids_off = (uint32_t)t->cache_ids_n;
    s->ids_len = (uint32_t)k;
    s->hash = h;
    t->cache_keys_n += n;
    t->cache_ids_n += k;
    t->cache_n++;
}

/* The ids of one pre-token s[0..n) (code points). */
static int encode_word(tok_bpe *t, const uint32_t *s, size_t n, tok_ids *ids) {
    uint8_t stack[256];
    uint8_t *bytes = n * 4 <= sizeof stack ? stack : malloc(n * 4);
    if (!bytes) return -1;
    size_t nb = 0;
    for (size_t i = 0; i < n; i++) nb += utf8_put(s[i], bytes + nb);
    int rc = -1;
    uint64_t h = fnv1a(bytes, nb);
    cache_slot *slot = NULL;
    if (t->cache && !t->cache_off) {
        slot = cache_slot_of(t, bytes, nb, h);
        if (slot->key_len) {
            for (uint32_t i = 0; i < slot->ids_len; i++)
                if (ids_push(ids, t->cache_ids[slot->ids_off + i])) goto done;
            rc = 0;
            goto done;
        }
    }
    if (scratch_reserve(t, nb)) goto done;
    for (size_t i = 0; i < nb; i++) t->word[i] = bytes[i] + (i + 1 == nb ? 256u : 0u);
    size_t m = nb;
    bpe_word(t, &m);
    size_t first = ids->n;
    for (size_t i = 0; i < m; i++) {
        int32_t id = t->sym_id[t->word[i]];
        if (ids_push(ids, id == TOK_NO_ID ? t->unk : id)) goto done;
    }
    if (!t->cache_off && !cache_make_room(t)) cache_put(t, cache_slot_of(t, bytes, nb, h), bytes, nb, h, ids->v + first, m);
    rc = 0;
done:
    if (bytes != stack) free(bytes);
    return rc;
}

void tok_set_cache(tok_bpe *t, int on) { t->cache_off = !on; }

int tok_encode(tok_bpe *t, const char *text, size_t len, tok_ids *ids, tt_err *err) {
    u32buf c = {0};
    if (clean_text(text, len, &c, err)) return -1;
    const uint32_t *s = c.v;
    size_t n = c.n;
    int rc = 0;
    for (size_t i = 0; i < n && !rc;) {
        int which;
        size_t k = match_special(t, s, n, i, &which);
        if (k && which >= 0) {
            rc = ids_push(ids, which == 0 ? t->sot : t->eot);
            i += k;
            continue;
        }
        if (!k) k = match_contraction(s, n, i);
        if (!k && is_letter(s[i]))
            while (i + k < n && is_letter(s[i + k])) k++;
        if (!k && is_number(s[i])) k = 1;
        if (!k && is_other(s[i]))
            while (i + k < n && is_other(s[i + k])) k++;
        if (!k) { /* a space, or U+0345 */
            i++;
            continue;
        }
        rc = encode_word(t, s + i, k, ids);
        i += k;
    }
    free(c.v);
    if (rc) return tt_fail(err, TT_ENOMEM, "out of memory while tokenising a text of %zu bytes", len);
    return 0;
}

int tok_tokenize(tok_bpe *t, const char *text, size_t len, int context_length, int32_t pad_id, int32_t *row,
                 int *n_used, tt_err *err) {
    TT_ASSERT(context_length >= 2);
    tok_ids ids = {0};
    if (tok_encode(t, text, len, &ids, err)) {
        tok_ids_free(&ids);
        return -1;
    }
    size_t keep = ids.n < (size_t)context_length - 2 ? ids.n : (size_t)context_length - 2;
    row[0] = t->sot;
    if (keep) memcpy(row + 1, ids.v, keep * sizeof *row);
    row[keep + 1] = t->eot;
    for (size_t i = keep + 2; i < (size_t)context_length; i++) row[i] = pad_id;
    if (n_used) *n_used = (int)keep + 2;
    tok_ids_free(&ids);
    return 0;
}
