/* clip_tokenize_bench.c — CLIP tokenizer throughput (strings per second) on the prompts a
 * zero-shot head tokenises: every template of a dataset filled with every class name.
 *
 *   clip_tokenize_bench VOCAB CLASSNAMES.txt TEMPLATES.txt [ROUNDS]
 *
 * VOCAB is anything tok_load reads (tests/clip_tokenizer_ref.py make DIR writes one). Each
 * round tokenises all strings to 77-id rows three ways, interleaved: a fresh tokenizer (load
 * not timed, cold word cache), the same tokenizer again (warm cache), and with the cache off.
 * Prints the median strings/s of each over ROUNDS (default 7) and a checksum of the ids.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "data/clip_tokenizer.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static char **read_lines(const char *path, int *n) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "clip_tokenize_bench: %s: cannot open\n", path);
        exit(2);
    }
    char **v = NULL, *line = NULL;
    size_t cap = 0;
    ssize_t len;
    *n = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        if (len && line[len - 1] == '\n') line[--len] = 0;
        v = realloc(v, (size_t)(*n + 1) * sizeof *v);
        if (!v) exit(3);
        v[(*n)++] = strdup(line);
    }
    free(line);
    fclose(f);
    return v;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Seconds to tokenise all strings; adds the ids to *sum. */
static double run(tok_bpe *t, char **s, int n, unsigned long long *sum) {
    int32_t row[TOK_CONTEXT_LENGTH];
    tt_err e = {0};
    double t0 = now();
    for (int i = 0; i < n; i++) {
        if (tok_tokenize(t, s[i], strlen(s[i]), TOK_CONTEXT_LENGTH, 0, row, NULL, &e)) {
            fprintf(stderr, "clip_tokenize_bench: %s\n", e.msg);
            exit(2);
        }
        for (int k = 0; k < TOK_CONTEXT_LENGTH; k++) *sum += (unsigned long long)row[k] * (unsigned)(k + 1);
    }
    return now() - t0;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: clip_tokenize_bench VOCAB CLASSNAMES.txt TEMPLATES.txt [ROUNDS]\n");
        return 2;
    }
    int rounds = argc > 4 ? atoi(argv[4]) : 7;
    if (rounds < 1) rounds = 1;
    int nc, nt;
    char **classes = read_lines(argv[2], &nc), **templates = read_lines(argv[3], &nt);
    int n = nc * nt;
    char **s = malloc((size_t)n * sizeof *s);
    for (int c = 0; c < nc; c++)
        for (int k = 0; k < nt; k++) {
            const char *tp = templates[k], *at = strstr(tp, "{}");
            size_t len = strlen(tp) + strlen(classes[c]);
            char *str = malloc(len + 1);
            if (at) snprintf(str, len + 1, "%.*s%s%s", (int)(at - tp), tp, classes[c], at + 2);
            else snprintf(str, len + 1, "%s", tp);
            s[c * nt + k] = str;
        }
    tt_err e = {0};
    double *cold = malloc((size_t)rounds * sizeof(double)), *warm = malloc((size_t)rounds * sizeof(double)),
           *off = malloc((size_t)rounds * sizeof(double));
    unsigned long long sum[3] = {0, 0, 0};
    for (int r = 0; r < rounds; r++) {
        tok_bpe *t = NULL;
        if (tok_load(argv[1], &t, &e)) {
            fprintf(stderr, "clip_tokenize_bench: %s\n", e.msg);
            return 2;
        }
        cold[r] = run(t, s, n, &sum[0]);
        warm[r] = run(t, s, n, &sum[1]);
        tok_set_cache(t, 0);
        off[r] = run(t, s, n, &sum[2]);
        tok_free(t);
    }
    qsort(cold, (size_t)rounds, sizeof *cold, cmp_double);
    qsort(warm, (size_t)rounds, sizeof *warm, cmp_double);
    qsort(off, (size_t)rounds, sizeof *off, cmp_double);
    printf("%d strings (%d classes x %d templates), %d rounds, median strings/s: cold cache %.0f, warm cache %.0f, "
           "no cache %.0f; ids checksum %llu (%s)\n",
           n, nc, nt, rounds, n / cold[rounds / 2], n / warm[rounds / 2], n / off[rounds / 2], sum[0],
           sum[0] == sum[1] && sum[1] == sum[2] ? "same in all three" : "DIFFERENT");
    return sum[0] == sum[1] && sum[1] == sum[2] ? 0 : 1;
}
