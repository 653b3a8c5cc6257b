/* clip_tokenizer.h — CLIP's byte-level BPE tokenizer (open_clip's SimpleTokenizer, the same
 * algorithm as OpenAI CLIP's and Hugging Face's CLIPTokenizer), for building zero-shot heads.
 *
 * One string becomes ids in five steps, each as open_clip does it (docs/clip_tokenizer.md has
 * the details and the known differences):
 *   1. clean: Python's html.unescape twice (HTML5 named and numeric references, Python's
 *      tables), split on Python's str.split() whitespace and join with one space (which also
 *      strips), then Python's str.lower() (full Unicode lower case with the final-sigma rule,
 *      via libunistring's u32_tolower). ftfy.fix_text, open_clip's first step, is not done.
 *   2. pre-tokenise with open_clip's regex (IGNORECASE)
 *        <start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
 *      (HF's special strings <|startoftext|> and <|endoftext|> for an HF vocabulary), with the
 *      Unicode general categories of libunistring;
 *   3. map each token's UTF-8 bytes through bytes_to_unicode and mark the last one with </w>;
 *   4. BPE: merge the adjacent pair of lowest merge rank, every occurrence left to right, until
 *      no pair has a rank;
 *   5. look each symbol up in the vocabulary. A special token written literally in the text
 *      becomes its id, as in open_clip.
 * tok_tokenize then frames the ids as open_clip's tokenize does: [sot] ids [eot], cut to the
 * context length with eot kept last, padded (open_clip pads with 0, HF with eot).
 *
 * Vocabularies (tok_load picks by path):
 *   - open_clip's bpe_simple_vocab_16e6.txt.gz (gzip or plain): a header line, then one merge
 *     "a b" per line; lines 2..48895 are used (open_clip's split('\n')[1:49152-256-2+1]) and
 *     the vocabulary is built as open_clip builds it: the 256 byte symbols, the same with
 *     </w>, the merges joined, then <start_of_text> and <end_of_text> (49406 and 49407 for
 *     the real file). A shorter file uses all its merge lines (a final empty line is ignored).
 *   - Hugging Face: vocab.json (symbol -> id) + merges.txt (header line, then merges; the same
 *     slice). PATH is the directory holding both, or the vocab.json (merges.txt beside it).
 *     sot/eot are the ids of <|startoftext|> / <|endoftext|>; a symbol missing from
 *     vocab.json becomes <|endoftext|> (HF's unk_token).
 * Malformed files: -1 and "FILE:LINE: problem" (TT_EINPUT), nothing allocated.
 *
 *   tok_bpe *t = NULL;
 *   tt_err e = {0};
 *   int32_t row[77];
 *   if (tok_load("bpe_simple_vocab_16e6.txt.gz", &t, &e) ||
 *       tok_tokenize(t, "a photo of a cat.", 17, 77, 0, row, &e)) fprintf(stderr, "%s\n", e.msg);
 *   tok_free(t);
 *
 * Ownership and threads: tok_free releases everything tok_load made; tok_ids belong to the
 * caller (tok_ids_free). A tok_bpe keeps a cache of tokenised words, so one tok_bpe must not
 * be used by two threads at once (load one per thread).
 */
#ifndef TT_CLIP_TOKENIZER_H
#define TT_CLIP_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define TOK_CONTEXT_LENGTH 77   /* CLIP's text context */
#define TOK_OPENCLIP_MERGES 48894 /* merge lines open_clip reads: 49152 - 256 - 2 */

typedef struct tok_bpe tok_bpe;

typedef enum tok_format { TOK_OPENCLIP, TOK_HF } tok_format;

/* A growable id list (the caller owns v). */
typedef struct tok_ids {
    int32_t *v;
    size_t n, cap;
} tok_ids;

/* By path: a directory (vocab.json + merges.txt, else bpe_simple_vocab_16e6.txt.gz in it),
 * a *.json file (HF, merges.txt beside it), or anything else as an open_clip merges file. */
int tok_load(const char *path, tok_bpe **out, tt_err *err);
int tok_load_openclip(const char *path, tok_bpe **out, tt_err *err);
int tok_load_hf(const char *vocab_json, const char *merges_txt, tok_bpe **out, tt_err *err);

/* The same from memory (decompressed); name/vocab_name/merges_name label the messages. */
int tok_parse_openclip(const char *name, const char *text, size_t len, tok_bpe **out, tt_err *err);
int tok_parse_hf(const char *vocab_name, const char *vocab, size_t vocab_len, const char *merges_name,
                 const char *merges, size_t merges_len, tok_bpe **out, tt_err *err);

void tok_free(tok_bpe *t);

tok_format tok_get_format(const tok_bpe *t);
int32_t tok_sot(const tok_bpe *t);
int32_t tok_eot(const tok_bpe *t);
/* Rows a token embedding needs: the largest id + 1 (49408 for CLIP). */
int32_t tok_vocab_size(const tok_bpe *t);
/* Merges in use (ranks 0..n-1). */
int32_t tok_merge_count(const tok_bpe *t);

/* Step 1 alone: the cleaned text as UTF-8 in *out (malloc'ed, NUL-terminated). text must be
 * valid UTF-8 (TT_EINPUT "text is not valid UTF-8 at byte N" otherwise). */
int tok_clean(const char *text, size_t len, char **out, size_t *out_len, tt_err *err);

/* Steps 1-5: append the ids of text (no sot/eot) to ids. */
int tok_encode(tok_bpe *t, const char *text, size_t len, tok_ids *ids, tt_err *err);

/* open_clip's tokenize for one string: row[context_length] = [sot] ids [eot], cut to
 * context_length with row[context_length-1] = eot when longer, then pad_id. context_length >= 2.
 * *n_used (may be NULL) receives the number of non-padding entries. */
int tok_tokenize(tok_bpe *t, const char *text, size_t len, int context_length, int32_t pad_id, int32_t *row,
                 int *n_used, tt_err *err);

void tok_ids_free(tok_ids *ids);

/* The word cache is on by default; off, every word goes through BPE again (same ids). */
void tok_set_cache(tok_bpe *t, int on);

#endif
