/* err.h — recoverable errors: a status code plus one human line ("FILE: problem").
 *
 * Library code never exits. A function that can fail on outside input returns int
 * (0 on success, -1 on failure) and fills the caller's tt_err. Only main() maps the
 * code to an exit status (bad input / usage -> 2, failed check -> 1, internal -> 3).
 * Programmer errors (broken invariants) use TT_ASSERT, which prints and aborts.
 *
 *   tt_err e = {0};
 *   if (st_open(&f, path, &e) != 0) { fprintf(stderr, "ttmerge: %s\n", e.msg); return 2; }
 */
#ifndef TT_ERR_H
#define TT_ERR_H

#include <stdio.h>
#include <stdlib.h>

typedef enum tt_code {
    TT_OK = 0,
    TT_EINPUT,    /* malformed or inconsistent input file / argument */
    TT_EIO,       /* open/read/write/rename failed */
    TT_ENOMEM,    /* allocation failed */
    TT_EDNN,      /* oneDNN returned an error */
    TT_ENUMERIC,  /* NaN/Inf or divergence */
    TT_EINTERNAL, /* should not happen; a bug */
} tt_code;

typedef struct tt_err {
    tt_code code;
    char msg[512];
} tt_err;

/* Set err (if non-NULL) to code and a printf-formatted message; returns -1 so that
 * callers can write `return tt_fail(e, TT_EINPUT, "%s: bad magic", path);`. The message is one
 * line: control bytes in it (a quoted name read from a file, say) become '?'. */
int tt_fail(tt_err *err, tt_code code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Prefix an existing message with more context ("suite.json: " + msg). Returns -1. */
int tt_prefix(tt_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

const char *tt_code_str(tt_code code);

/* A printable, single-line copy of untrusted text s[0..len) for messages: bytes outside
 * 0x20..0x7e become '?', and what does not fit in buf[cap] is cut with "...". Returns buf. */
const char *tt_printable(const char *s, size_t len, char *buf, size_t cap);

/* Exit status for main(): 2 for input/io problems, 3 for internal/oom/numeric. */
int tt_exit_status(const tt_err *err);

#define TT_ASSERT(cond)                                                                  \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "ttmerge: internal error: %s at %s:%d\n", #cond, __FILE__,   \
                    __LINE__);                                                           \
            abort();                                                                     \
        }                                                                                \
    } while (0)

#endif
