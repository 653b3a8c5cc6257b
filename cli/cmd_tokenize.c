/* cmd_tokenize.c — `ttmerge tokenize --vocab PATH (--text S | --input FILE|-)`: CLIP token ids
 * of strings (data/clip_tokenizer.h), one output line per string, to check against another
 * implementation. Exit 2 on a bad vocabulary, bad usage or a text that is not UTF-8. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "data/clip_tokenizer.h"

typedef struct tokenize_opts {
    int context_length; /* 0: [sot] ids [eot], neither cut nor padded */
    int32_t pad;
    int clean_only;
} tokenize_opts;

/* One string: its ids (or its cleaned text) as one line on stdout. */
static int tokenize_one(tok_bpe *t, const tokenize_opts *o, const char *text, size_t len, int32_t *row,
                        tok_ids *ids, tt_err *e) {
    if (o->clean_only) {
        char *s;
        size_t n;
        if (tok_clean(text, len, &s, &n, e)) return -1;
        fwrite(s, 1, n, stdout);
        putchar('\n');
        free(s);
        return 0;
    }
    int n = 0;
    const int32_t *v = row;
    if (o->context_length) {
        if (tok_tokenize(t, text, len, o->context_length, o->pad, row, &n, e)) return -1;
        n = o->context_length;
    } else {
        ids->n = 0;
        if (tok_encode(t, text, len, ids, e)) return -1;
        printf("%d ", (int)tok_sot(t));
        v = ids->v;
        n = (int)ids->n;
    }
    for (int i = 0; i < n; i++) printf(i ? " %d" : "%d", (int)v[i]);
    if (!o->context_length) printf("%s%d", n ? " " : "", (int)tok_eot(t));
    putchar('\n');
    return 0;
}

int cmd_tokenize(int argc, char **argv) {
    const char *vocab = NULL, *text = NULL, *input = NULL, *ctx_s = "77", *pad_s = "0";
    int null_sep = 0, clean_only = 0, info = 0;
    cli_common common = {0};
    cli_opt opts[] = {
        {"vocab", "PATH", "bpe_simple_vocab_16e6.txt[.gz] (open_clip), vocab.json (HF, merges.txt beside it) or a "
                          "directory holding either",
         .str = &vocab, .required = 1},
        {"text", "STRING", "the string to tokenise", .str = &text},
        {"input", "FILE", "tokenise every line of FILE ('-': stdin)", .str = &input},
        {"null", NULL, "--input holds NUL-terminated strings instead of lines", .flag = &null_sep},
        {"context-length", "N", "row length (default 77; 0: [sot] ids [eot], not cut, not padded)", .str = &ctx_s},
        {"pad", "ID|eot", "padding id (default 0 as open_clip; HF's CLIPTokenizer pads with eot)", .str = &pad_s},
        {"clean", NULL, "print the cleaned text instead of ids", .flag = &clean_only},
        {"info", NULL, "print the vocabulary's format, merges, size, sot and eot first", .flag = &info},
        CLI_COMMON(&common),
        {0}};
    int rc = cli_parse("tokenize",
                       "CLIP's BPE tokenizer (open_clip's SimpleTokenizer): one line of token ids per string,\n"
                       "as open_clip.tokenize gives them ([sot] ids [eot], cut to the context with eot kept\n"
                       "last, padded). Cleaning is open_clip's without ftfy: docs/clip_tokenizer.md.",
                       opts, argc, argv);
    if (rc) return rc > 0 ? 0 : 2;
    if (!!text + !!input != 1 && !(info && !text && !input))
        return cli_error("tokenize", "give exactly one of --text and --input (see --help)");
    long ctx, pad = 0;
    if (cli_int("tokenize", "context-length", ctx_s, 0, 1 << 20, &ctx)) return 2;
    if (ctx == 1) return cli_error("tokenize", "--context-length: 1 leaves no room for sot and eot (use 0 or >= 2)");
    bool pad_eot = !strcmp(pad_s, "eot");
    if (!pad_eot && cli_int("tokenize", "pad", pad_s, 0, INT32_MAX, &pad)) return 2;

    tt_err e = {0};
    tok_bpe *t = NULL;
    if (tok_load(vocab, &t, &e)) {
        fprintf(stderr, "ttmerge tokenize: %s\n", e.msg);
        return tt_exit_status(&e);
    }
    tokenize_opts o = {(int)ctx, pad_eot ? tok_eot(t) : (int32_t)pad, clean_only};
    if (info)
        printf("# %s vocabulary: %d merges, %d ids, sot %d, eot %d\n",
               tok_get_format(t) == TOK_HF ? "hf" : "open_clip", (int)tok_merge_count(t), (int)tok_vocab_size(t),
               (int)tok_sot(t), (int)tok_eot(t));
    int32_t *row = malloc((ctx ? (size_t)ctx : 1) * sizeof *row);
    tok_ids ids = {0};
    int status = 0;
    if (!row) {
        status = cli_error("tokenize", "out of memory");
        status = 3;
    } else if (text) {
        if (tokenize_one(t, &o, text, strlen(text), row, &ids, &e)) {
            fprintf(stderr, "ttmerge tokenize: --text: %s\n", e.msg);
            status = tt_exit_status(&e);
        }
    } else if (input) {
        FILE *f = strcmp(input, "-") ? fopen(input, "rb") : stdin;
        if (!f) {
            status = cli_error("tokenize", "%s: cannot open: %s", input, strerror(errno));
        } else {
            char *line = NULL;
            size_t cap = 0;
            ssize_t n;
            long lineno = 0;
            while ((n = getdelim(&line, &cap, null_sep ? '\0' : '\n', f)) >= 0) {
                lineno++;
                if (n > 0 && line[n - 1] == (null_sep ? '\0' : '\n')) n--;
                if (tokenize_one(t, &o, line, (size_t)n, row, &ids, &e)) {
                    fprintf(stderr, "ttmerge tokenize: %s:%ld: %s\n", input, lineno, e.msg);
                    status = tt_exit_status(&e);
                    break;
                }
            }
            if (!status && ferror(f)) status = cli_error("tokenize", "%s: read error: %s", input, strerror(errno));
            free(line);
            if (f != stdin) fclose(f);
        }
    }
    if (fflush(stdout) != 0 && !status) status = cli_error("tokenize", "cannot write the output: %s", strerror(errno));
    tok_ids_free(&ids);
    free(row);
    tok_free(t);
    return status;
}
