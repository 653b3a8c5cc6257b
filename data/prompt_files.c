/* prompt_files.c — see prompt_files.h. */
#define _GNU_SOURCE /* memmem, strndup */
#include "data/prompt_files.h"

#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"

void pf_lines_free(pf_lines *l) {
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

int pf_lines_parse(pf_lines *out, const char *text, size_t len, const char *path, bool templates, tt_err *err) {
    memset(out, 0, sizeof *out);
    size_t lines = 1;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    if (lines > PF_MAX_ENTRIES) return tt_fail(err, TT_EINPUT, "%s: more than %d lines", path, PF_MAX_ENTRIES);
    out->v = calloc(lines, sizeof *out->v);
    if (!out->v) return tt_fail(err, TT_ENOMEM, "%s: out of memory", path);
    size_t start = 0;
    for (int line = 1; start < len; line++) {
        const char *nl = memchr(text + start, '\n', len - start);
        size_t end = nl ? (size_t)(nl - text) : len, n = end - start;
        while (n && text[start + n - 1] == '\r') n--; /* CRLF, and any stray CRs before the line end */
        const char *s = text + start;
        if (!n) {
            pf_lines_free(out);
            return tt_fail(err, TT_EINPUT, "%s:%d: empty line (one %s per line)", path, line,
                           templates ? "template" : "class name");
        }
        if (memchr(s, '\0', n)) {
            pf_lines_free(out);
            return tt_fail(err, TT_EINPUT, "%s:%d: holds a NUL byte", path, line);
        }
        if (templates) {
            const char *a = memmem(s, n, "{}", 2);
            const char *b = a ? memmem(a + 2, n - (size_t)(a + 2 - s), "{}", 2) : NULL;
            if (!a || b) {
                pf_lines_free(out);
                return tt_fail(err, TT_EINPUT, "%s:%d: a template needs exactly one \"{}\" (%s)", path, line,
                               a ? "found two" : "found none");
            }
        }
        if (!(out->v[out->n] = strndup(s, n))) {
            pf_lines_free(out);
            return tt_fail(err, TT_ENOMEM, "%s: out of memory", path);
        }
        out->n++;
        start = end + 1;
    }
    if (!out->n) {
        pf_lines_free(out);
        return tt_fail(err, TT_EINPUT, "%s: no %s", path, templates ? "templates" : "class names");
    }
    return 0;
}

int pf_lines_read(pf_lines *out, const char *path, bool templates, tt_err *err) {
    char *text;
    size_t len;
    memset(out, 0, sizeof *out);
    if (fio_read_all(path, &text, &len, PF_MAX_FILE, err)) return -1;
    int rc = pf_lines_parse(out, text, len, path, templates, err);
    free(text);
    return rc;
}

char *pf_fill(const char *t, const char *name) {
    const char *mark = strstr(t, "{}");
    size_t tl = strlen(t), nl = strlen(name);
    if (!mark) return strdup(t);
    char *s = malloc(tl - 2 + nl + 1);
    if (!s) return NULL;
    size_t pre = (size_t)(mark - t);
    memcpy(s, t, pre);
    memcpy(s + pre, name, nl);
    memcpy(s + pre + nl, mark + 2, tl - pre - 2 + 1);
    return s;
}
