/* cli.c — see cli.h. */
#include "cli/cli.h"

#include <errno.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/dnn.h"
#include "core/threads.h"

int cli_error(const char *verb, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ttmerge %s: ", verb);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 2;
}

static void usage(const char *verb, const char *summary, const cli_opt *opts) {
    printf("usage: ttmerge %s [options]\n%s\n\noptions:\n", verb, summary);
    for (const cli_opt *o = opts; o->name; o++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        printf("  %-26s %s%s%s\n", left, o->help, o->required ? " (required)" : "", o->list ? " (repeatable)" : "");
    }
    printf("  %-26s %s\n", "--help", "show this help");
}

int cli_parse(const char *verb, const char *summary, const cli_opt *opts, int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(verb, summary, opts);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0) {
            cli_error(verb, "unexpected argument '%s' (see --help)", a);
            return -1;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const cli_opt *o = opts;
        for (; o->name; o++)
            if (strlen(o->name) == len && !strncmp(o->name, name, len)) break;
        if (!o->name) {
            cli_error(verb, "unknown option '--%.*s' (see --help)", (int)len, name);
            return -1;
        }
        if (!o->arg) {
            if (eq) {
                cli_error(verb, "--%s takes no value", o->name);
                return -1;
            }
            *o->flag = 1;
            continue;
        }
        const char *val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!val) {
            cli_error(verb, "--%s needs a value (%s)", o->name, o->arg);
            return -1;
        }
        if (o->list) {
            if (o->list->n >= CLI_MAX_LIST) {
                cli_error(verb, "too many --%s options (max %d)", o->name, CLI_MAX_LIST);
                return -1;
            }
            o->list->v[o->list->n++] = val;
        } else {
            *o->str = val;
        }
    }
    for (const cli_opt *o = opts; o->name; o++)
        if (o->required && ((o->str && !*o->str) || (o->list && !o->list->n))) {
            cli_error(verb, "--%s is required (see --help)", o->name);
            return -1;
        }
    return 0;
}

int cli_int(const char *verb, const char *name, const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        cli_error(verb, "--%s: '%s' is not an integer in [%ld, %ld]", name, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_float(const char *verb, const char *name, const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v != v) {
        cli_error(verb, "--%s: '%s' is not a number", name, s);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_apply_common(const cli_common *c) {
    if (c->threads) {
        long n;
        if (cli_int("", "threads", c->threads, 1, 4096, &n)) return -1;
        omp_set_num_threads((int)n);
    }
    return 0;
}

int cli_apply_precision(const char *verb, const char *precision) {
    dnn_precision want = DNN_F32;
    if (precision && dnn_precision_parse(precision, &want)) {
        cli_error(verb, "--precision: '%s' is not f32 or bf16", precision);
        return -1;
    }
    if (dnn_set_default_precision(want) != want)
        fprintf(stderr, "ttmerge %s: --precision bf16: no native bf16 on this CPU (oneDNN ISA %s%s); computing in f32\n",
                verb, dnn_isa_name(), dnn_bf16_native() ? "" : getenv("TTMERGE_NO_BF16") ? ", TTMERGE_NO_BF16 set" : "");
    return 0;
}

int cli_start_threads(const char *verb) {
    tt_err e = {0};
    if (tt_threads_start(&e)) {
        fprintf(stderr, "ttmerge %s: %s (try --threads 1)\n", verb, e.msg);
        return 3;
    }
    return 0;
}

bool cli_progress_enabled(const cli_common *c) {
    if (c->quiet) return false;
    const char *ci = getenv("CI");
    if (ci && *ci && strcmp(ci, "0") != 0) return false;
    return isatty(STDERR_FILENO);
}
