/* test_clip_tokenizer.c — data/clip_tokenizer: known answers on hand-made vocabularies (byte
 * order, merge ranks, framing), the cleaning rules one by one, and malformed vocabulary files.
 * The large comparison with the Python reference is tests/clip_tokenizer_ref.sh. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/clip_tokenizer.h"
#include "testutil.h"

#define HEADER "\"bpe_simple_vocab_16e6.txt#version: 0.2\n"

static tok_bpe *openclip_from(const char *text) {
    tok_bpe *t = NULL;
    tt_err e = {0};
    int rc = tok_parse_openclip("test.txt", text, strlen(text), &t, &e);
    cr_assert_eq(rc, 0, "%s", e.msg);
    return t;
}

/* The ids of text (no sot/eot) as "a b c". */
static const char *ids_of(tok_bpe *t, const char *text) {
    static char out[4096];
    tok_ids ids = {0};
    tt_err e = {0};
    cr_assert_eq(tok_encode(t, text, strlen(text), &ids, &e), 0, "%s", e.msg);
    size_t n = 0;
    out[0] = 0;
    for (size_t i = 0; i < ids.n; i++) n += (size_t)snprintf(out + n, sizeof out - n, i ? " %d" : "%d", ids.v[i]);
    tok_ids_free(&ids);
    return out;
}

static const char *clean_of(const char *text) {
    static char out[1024];
    char *s;
    size_t n;
    tt_err e = {0};
    cr_assert_eq(tok_clean(text, strlen(text), &s, &n, &e), 0, "%s", e.msg);
    cr_assert_lt(n, sizeof out);
    memcpy(out, s, n + 1);
    free(s);
    return out;
}

Test(clip_tokenizer, byte_ids_follow_bytes_to_unicode_order) {
    tok_bpe *t = openclip_from(HEADER);
    /* '!' = 0, '~' = 93, U+00FF = C3 BF (195 -> 127, 191 -> 123), byte 1 -> 'ā' = 189, ' ' is 220 */
    cr_expect_str_eq(ids_of(t, "!"), "256");
    cr_expect_str_eq(ids_of(t, "~"), "349");
    cr_expect_str_eq(ids_of(t, "\xc3\xbf"), "127 379");
    cr_expect_str_eq(ids_of(t, "\x01"), "445");
    cr_expect_str_eq(ids_of(t, "a"), "320");
    cr_expect_eq(tok_sot(t), 512);
    cr_expect_eq(tok_eot(t), 513);
    cr_expect_eq(tok_vocab_size(t), 514);
    tok_free(t);
}

Test(clip_tokenizer, lowest_rank_merges_first_every_occurrence_left_to_right) {
    tok_bpe *t = openclip_from(HEADER "b c</w>\na b\na a");
    /* abc -> a bc</w> (rank 0 beats rank 1) */
    cr_expect_str_eq(ids_of(t, "abc"), "64 512");
    tok_free(t);
    t = openclip_from(HEADER "a b\nb c</w>\na a");
    cr_expect_str_eq(ids_of(t, "abc"), "512 322"); /* ab c</w> */
    /* aaa -> (a a) a</w>: the pair merges at the first position, not the second */
    cr_expect_str_eq(ids_of(t, "aaa"), "514 320");
    cr_expect_str_eq(ids_of(t, "aaaa"), "514 64 320"); /* aa a a</w>: (a, a</w>) has no rank */
    tok_free(t);
}

Test(clip_tokenizer, repeated_merge_takes_its_last_rank_and_id) {
    /* (a,b) has rank 2, after (b,c): abcd -> a bc d</w>; with rank 0 it would be ab c d</w> */
    tok_bpe *t = openclip_from(HEADER "a b\nb c\na b");
    cr_expect_str_eq(ids_of(t, "abcd"), "64 513 323");
    cr_expect_str_eq(ids_of(t, "abx"), "514 343"); /* "ab" is the third vocabulary entry too */
    cr_expect_eq(tok_sot(t), 515);
    tok_free(t);
}

Test(clip_tokenizer, tokenize_frames_truncates_and_pads) {
    tok_bpe *t = openclip_from(HEADER);
    int32_t row[77];
    int used;
    tt_err e = {0};
    cr_assert_eq(tok_tokenize(t, "a a", 3, 77, 0, row, &used, &e), 0);
    cr_expect_eq(used, 4);
    cr_expect(row[0] == 512 && row[1] == 320 && row[2] == 320 && row[3] == 513 && row[4] == 0 && row[76] == 0);
    char text[400];
    for (int n = 74; n <= 77; n++) {
        size_t k = 0;
        for (int i = 0; i < n; i++) k += (size_t)snprintf(text + k, sizeof text - k, "a ");
        cr_assert_eq(tok_tokenize(t, text, k, 77, 7, row, &used, &e), 0);
        cr_expect_eq(row[0], 512);
        cr_expect_eq(used, n < 75 ? n + 2 : 77, "n=%d used=%d", n, used);
        cr_expect_eq(row[used - 1], 513, "n=%d: eot last", n);
        cr_expect_eq(row[used - 2], 320, "n=%d", n);
        if (used < 77) cr_expect_eq(row[76], 7);
    }
    tok_free(t);
}

Test(clip_tokenizer, special_tokens_in_text) {
    tok_bpe *t = openclip_from(HEADER);
    cr_expect_str_eq(ids_of(t, "<start_of_text>"), "512");
    cr_expect_str_eq(ids_of(t, "X<END_OF_TEXT>"), "343 513");
    /* matched by the IGNORECASE regex through LONG S, but not the special token itself */
    cr_expect_str_neq(ids_of(t, "<\xc5\xbftart_of_text>"), "512");
    tok_free(t);
}

Test(clip_tokenizer, cleaning_is_pythons) {
    cr_expect_str_eq(clean_of("  A\tPhoto\n\nOF  a\xc2\xa0" "CAT  "), "a photo of a cat");
    cr_expect_str_eq(clean_of("&amp;amp;"), "&");           /* unescaped twice */
    cr_expect_str_eq(clean_of("&amp;amp;amp;"), "&amp;");   /* ... not three times */
    cr_expect_str_eq(clean_of("&notit;"), "\xc2\xacit;");    /* longest entity prefix */
    cr_expect_str_eq(clean_of("&ampxyz"), "&xyz");
    cr_expect_str_eq(clean_of("&#128;&#x110000;&#1;x"), "\xe2\x82\xac\xef\xbf\xbdx");
    cr_expect_str_eq(clean_of("&#;&#x;&unknown;"), "&#;&#x;&unknown;");
    cr_expect_str_eq(clean_of("\xc4\xb0"), "i\xcc\x87");     /* U+0130 -> i + U+0307 */
    cr_expect_str_eq(clean_of("\xce\x91\xce\xa3"), "\xce\xb1\xcf\x82");           /* ΑΣ -> ας */
    cr_expect_str_eq(clean_of("\xce\x91\xce\xa3'\xce\x92"), "\xce\xb1\xcf\x83'\xce\xb2"); /* ' is case-ignorable */
    cr_expect_str_eq(clean_of("\xe1\xba\x9e"), "\xc3\x9f");  /* ẞ -> ß */
    cr_expect_str_eq(clean_of("a\x1c" "b\xe3\x80\x80" "c"), "a b c");
}

Test(clip_tokenizer, invalid_utf8_text_is_an_error) {
    tok_bpe *t = openclip_from(HEADER);
    tok_ids ids = {0};
    tt_err e = {0};
    cr_expect_eq(tok_encode(t, "ok\xff", 3, &ids, &e), -1);
    cr_expect(strstr(e.msg, "not valid UTF-8 at byte 2"), "%s", e.msg);
    cr_expect_eq(tok_encode(t, "\xed\xa0\x80", 3, &ids, &e), -1); /* a surrogate */
    tok_ids_free(&ids);
    tok_free(t);
}

static void expect_openclip_error(const char *text, size_t len, const char *want) {
    tok_bpe *t = NULL;
    tt_err e = {0};
    cr_expect_eq(tok_parse_openclip("v.txt", text, len, &t, &e), -1, "accepted: %s", want);
    cr_expect_null(t);
    cr_expect(strstr(e.msg, want), "'%s' lacks '%s'", e.msg, want);
    cr_expect_null(strchr(e.msg, '\n'));
}

Test(clip_tokenizer, malformed_openclip_files) {
    expect_openclip_error("", 0, "v.txt: empty file");
    expect_openclip_error(HEADER "a b\na b c\n", strlen(HEADER) + 10, "v.txt:3: a merge line has 3 fields");
    expect_openclip_error(HEADER "a b\n\nc d", strlen(HEADER) + 8, "v.txt:3: a merge line has 0 fields");
    expect_openclip_error(HEADER "ab\n", strlen(HEADER) + 3, "v.txt:2: a merge line has 1 field");
    expect_openclip_error(HEADER "a \xff\n", strlen(HEADER) + 4, "v.txt:2: not valid UTF-8");
}

static void expect_hf_error(const char *vocab, const char *merges, const char *want) {
    tok_bpe *t = NULL;
    tt_err e = {0};
    cr_expect_eq(tok_parse_hf("vocab.json", vocab, strlen(vocab), "merges.txt", merges, strlen(merges), &t, &e), -1,
                 "accepted: %s", want);
    cr_expect_null(t);
    cr_expect(strstr(e.msg, want), "'%s' lacks '%s'", e.msg, want);
}

Test(clip_tokenizer, hf_files) {
    const char *v = "{\"a\": 64, \"a</w>\": 320, \"ab</w>\": 512, \"<|startoftext|>\": 49406, \"<|endoftext|>\": 49407}";
    tok_bpe *t = NULL;
    tt_err e = {0};
    const char *m = "#version: 0.2\na b</w>\n";
    cr_assert_eq(tok_parse_hf("vocab.json", v, strlen(v), "merges.txt", m, strlen(m), &t, &e), 0, "%s", e.msg);
    cr_expect_eq(tok_sot(t), 49406);
    cr_expect_eq(tok_eot(t), 49407);
    cr_expect_eq(tok_vocab_size(t), 49408);
    cr_expect_str_eq(ids_of(t, "ab a"), "512 320");
    cr_expect_str_eq(ids_of(t, "b <|endoftext|>"), "49407 49407"); /* b</w> is missing: unk = eot */
    tok_free(t);
    expect_hf_error(v, "", "merges.txt: empty file");
    expect_hf_error(v, "#version: 0.2\na b c\n", "merges.txt:2: a merge line has 3 fields");
    expect_hf_error(v, "\n\n#version: 0.2\na\n", "merges.txt:4: a merge line has 1 field");
    expect_hf_error("[1, 2]", m, "vocab.json: expected a JSON object");
    expect_hf_error("{\"a\": 1,", m, "vocab.json:1: not valid JSON");
    expect_hf_error("{\"a\": -1}", m, "the id of 'a' is not an integer");
    expect_hf_error("{\"a\": \"1\"}", m, "the id of 'a' is not an integer");
    expect_hf_error("{\"<|startoftext|>\": 0}", m, "vocab.json: no id for <|endoftext|>");
}

Test(clip_tokenizer, load_by_path) {
    const char *dir = tu_tmpdir("clip_tok");
    char path[512], cmd[1024], err[512];
    tok_bpe *t = NULL;
    tt_err e = {0};
    cr_expect_eq(tok_load(dir, &t, &e), -1);
    cr_expect(strstr(e.msg, "holds neither vocab.json + merges.txt nor bpe_simple_vocab_16e6.txt.gz"), "%s", e.msg);
    snprintf(path, sizeof path, "%s/nope.txt.gz", dir);
    cr_expect_eq(tok_load(path, &t, &e), -1);
    cr_expect(strstr(e.msg, "nope.txt.gz"), "%s", e.msg);
    /* a gzip file cut short */
    snprintf(cmd, sizeof cmd, "printf '%%s\\na b' 'head' | gzip -c | head -c 20 > '%s/cut.txt.gz'", dir);
    cr_assert_eq(tu_run(cmd, NULL, 0), 0);
    snprintf(path, sizeof path, "%s/cut.txt.gz", dir);
    cr_expect_eq(tok_load(path, &t, &e), -1);
    cr_expect(strstr(e.msg, "cut.txt.gz: truncated gzip stream"), "%s", e.msg);
    /* the CLI: one line, exit 2 */
    snprintf(cmd, sizeof cmd, "'%s' tokenize --vocab '%s' --text hi >/dev/null", tu_ttmerge_bin(), path);
    cr_expect_eq(tu_run(cmd, err, sizeof err), 2);
    const char *nl = strchr(err, '\n');
    cr_expect(strstr(err, "ttmerge tokenize: ") && strstr(err, "cut.txt.gz") && (!nl || !nl[1]), "%s", err);
    /* a gzip'd valid vocabulary and the CLI's framing */
    snprintf(cmd, sizeof cmd, "printf '%%s\\na b</w>' 'header' | gzip -c > '%s/ok.txt.gz'", dir);
    cr_assert_eq(tu_run(cmd, NULL, 0), 0);
    snprintf(cmd, sizeof cmd,
             "test \"$('%s' tokenize --vocab '%s/ok.txt.gz' --context-length 0 --text 'AB a')\" = '513 512 320 514'",
             tu_ttmerge_bin(), dir);
    cr_expect_eq(tu_run(cmd, err, sizeof err), 0, "%s", err);
    snprintf(cmd, sizeof cmd, "printf 'ok\\n\\377\\n' | '%s' tokenize --vocab '%s/ok.txt.gz' --input - >/dev/null",
             tu_ttmerge_bin(), dir);
    cr_expect_eq(tu_run(cmd, err, sizeof err), 2);
    cr_expect(strstr(err, "-:2: text is not valid UTF-8 at byte 0"), "%s", err);
    tu_rm_tree(dir);
}
