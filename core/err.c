#include "core/err.h"

#include <stdarg.h>
#include <string.h>

/* A message is one line whatever it quotes: a name read from a file may hold a newline (the
 * suite-file fuzzer found a YAML double-quoted source name spanning lines), so control bytes in
 * the formatted text become '?'. */
static void one_line(char *msg) {
    for (unsigned char *p = (unsigned char *)msg; *p; p++)
        if (*p < 0x20 || *p == 0x7f) *p = '?';
}

int tt_fail(tt_err *err, tt_code code, const char *fmt, ...) {
    if (!err) return -1;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    one_line(err->msg);
    return -1;
}

int tt_prefix(tt_err *err, const char *fmt, ...) {
    if (!err) return -1;
    char head[256], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    size_t hn = strlen(head);
    if (hn >= sizeof err->msg) hn = sizeof err->msg - 1;
    memcpy(err->msg, head, hn);
    size_t room = sizeof err->msg - 1 - hn, on = strnlen(old, sizeof old - 1);
    if (on > room) on = room;
    memcpy(err->msg + hn, old, on);
    err->msg[hn + on] = 0;
    one_line(err->msg);
    return -1;
}

const char *tt_printable(const char *s, size_t len, char *buf, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < len && o + 4 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        buf[o++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    if (len > o) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = 0;
    return buf;
}

const char *tt_code_str(tt_code code) {
    switch (code) {
    case TT_OK: return "ok";
    case TT_EINPUT: return "bad input";
    case TT_EIO: return "i/o error";
    case TT_ENOMEM: return "out of memory";
    case TT_EDNN: return "oneDNN error";
    case TT_ENUMERIC: return "numerical fault";
    case TT_EINTERNAL: return "internal error";
    }
    return "unknown";
}

int tt_exit_status(const tt_err *err) {
    switch (err->code) {
    case TT_OK: return 0;
    case TT_EINPUT:
    case TT_EIO: return 2;
    default: return 3;
    }
}
