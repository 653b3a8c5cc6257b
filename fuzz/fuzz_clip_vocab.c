/* fuzz_clip_vocab.c — libFuzzer target for CLIP's tokenizer (data/clip_tokenizer.c): both
 * vocabulary parsers and the text encoder.
 *
 * The first byte picks what the rest is:
 *   'o'  an open_clip merges file, written to a private temporary file and read with
 *        tok_load_openclip (gzip when it starts 1f 8b, as the real .txt.gz) and from memory;
 *   'h'  an HF pair: vocab.json, a NUL byte, merges.txt (tok_parse_hf);
 *   else a text, tokenised with a fixed small vocabulary.
 * A rejected file must give one line naming the file and nothing allocated; an accepted one
 * tokenises a few fixed strings and the input itself (when it is UTF-8) with every id in
 * [0, vocab size), and a 77-id row ending its content with eot.
 *
 * libFuzzer build and timed runs: fuzz/CMakeLists.txt, fuzz/README.md.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/clip_tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char g_path[256];

static const char k_vocab[] = "\"header\no f</w>\np h\not o</w>\nph oto</w>\na n\nan d</w>\nt h\nth e</w>\n"
                              "\xce\xb1 \xcf\x82</w>\n\xc4\xa0 \xc4\xa0\n& a\n";

static void write_input(const uint8_t *d, size_t n) {
    if (!g_path[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(g_path, sizeof g_path, "%s/fuzz_clip_vocab.%ld.txt", tmp ? tmp : "/tmp", (long)getpid());
    }
    FILE *f = fopen(g_path, "wb");
    if (!f) abort();
    if (n && fwrite(d, 1, n, f) != n) abort();
    if (fclose(f) != 0) abort();
}

static void check_rejection(int rc, const tok_bpe *t, const tt_err *e, const char *name) {
    if (rc == 0) return;
    if (t || !e->msg[0] || strchr(e->msg, '\n') || strncmp(e->msg, name, strlen(name)) != 0) abort();
}

static void use(tok_bpe *t, const uint8_t *text, size_t n) {
    static const char *fixed[] = {"a photo of the cat.", "&amp;amp; \xce\x91\xce\xa3 <start_of_text> it's 123",
                                  "<|endoftext|>", ""};
    tt_err e = {0};
    int32_t row[TOK_CONTEXT_LENGTH];
    for (size_t i = 0; i <= sizeof fixed / sizeof fixed[0]; i++) {
        const char *s = i < sizeof fixed / sizeof fixed[0] ? fixed[i] : (const char *)text;
        size_t len = i < sizeof fixed / sizeof fixed[0] ? strlen(s) : n;
        int used = 0;
        if (tok_tokenize(t, s, len, TOK_CONTEXT_LENGTH, 0, row, &used, &e) != 0) {
            if (i < sizeof fixed / sizeof fixed[0] || !e.msg[0]) abort(); /* only bad UTF-8 may fail */
            continue;
        }
        if (used < 2 || used > TOK_CONTEXT_LENGTH || row[0] != tok_sot(t) || row[used - 1] != tok_eot(t)) abort();
        for (int k = 0; k < used; k++)
            if (row[k] < 0 || row[k] >= tok_vocab_size(t)) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const uint8_t *rest = data + 1;
    size_t n = size - 1;
    tok_bpe *t = NULL;
    tt_err e = {0};
    if (data[0] == 'o') {
        write_input(rest, n);
        int rc = tok_load_openclip(g_path, &t, &e);
        check_rejection(rc, t, &e, g_path);
        if (!rc) use(t, rest, n);
        tok_free(t);
        t = NULL;
        if (n < 2 || rest[0] != 0x1f || rest[1] != 0x8b) {
            rc = tok_parse_openclip("mem.txt", (const char *)rest, n, &t, &e);
            check_rejection(rc, t, &e, "mem.txt");
            if (!rc) use(t, rest, n);
        }
    } else if (data[0] == 'h') {
        const uint8_t *nul = memchr(rest, 0, n);
        size_t vn = nul ? (size_t)(nul - rest) : n;
        const char *merges = nul ? (const char *)nul + 1 : "";
        size_t mn = nul ? n - vn - 1 : 0;
        int rc = tok_parse_hf("vocab.json", (const char *)rest, vn, "merges.txt", merges, mn, &t, &e);
        if (rc && (t || !e.msg[0] || strchr(e.msg, '\n') ||
                   (strncmp(e.msg, "vocab.json", 10) != 0 && strncmp(e.msg, "merges.txt", 10) != 0)))
            abort();
        if (!rc) use(t, (const uint8_t *)merges, mn);
    } else {
        if (tok_parse_openclip("fixed", k_vocab, sizeof k_vocab - 1, &t, &e) != 0) abort();
        use(t, rest, n);
    }
    tok_free(t);
    return 0;
}
