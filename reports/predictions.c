/* predictions.c — see predictions.h. */
#include "reports/predictions.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"

static size_t task_bytes(uint32_t n) { return ((size_t)n + 7) / 8; }

long predictions_correct(const predictions_task *t) {
    long c = 0;
    size_t nb = task_bytes(t->n);
    for (size_t i = 0; i < nb; i++) c += __builtin_popcount(t->bits[i]);
    return c;
}

static bool name_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > PREDICTIONS_MAX_NAME) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return false;
    return true;
}

void predictions_free(predictions *p) {
    if (!p) return;
    for (int t = 0; t < p->n_tasks && p->tasks; t++) {
        free(p->tasks[t].name);
        free(p->tasks[t].bits);
    }
    free(p->tasks);
    free(p->suite);
    free(p->method);
    memset(p, 0, sizeof *p);
}

int predictions_task_set(predictions_task *t, const char *name, const uint8_t *correct, uint32_t n, tt_err *err) {
    memset(t, 0, sizeof *t);
    if (n > PREDICTIONS_MAX_EXAMPLES) return tt_fail(err, TT_EINPUT, "predictions: %u examples, more than %u", n, PREDICTIONS_MAX_EXAMPLES);
    t->name = strdup(name);
    t->bits = calloc(task_bytes(n) ? task_bytes(n) : 1, 1);
    if (!t->name || !t->bits) {
        free(t->name), free(t->bits);
        memset(t, 0, sizeof *t);
        return tt_fail(err, TT_ENOMEM, "out of memory");
    }
    t->n = n;
    for (uint32_t i = 0; i < n; i++)
        if (correct[i]) t->bits[i >> 3] |= (uint8_t)(1u << (i & 7));
    return 0;
}

int predictions_write(const char *path, const predictions *p, tt_err *err) {
    if (!p->suite || !name_ok(p->suite) || !p->method || !name_ok(p->method))
        return tt_fail(err, TT_EINPUT, "%s: suite and method names must be 1-%d bytes without control characters", path,
                       PREDICTIONS_MAX_NAME);
    if (p->n_tasks < 1 || p->n_tasks > PREDICTIONS_MAX_TASKS)
        return tt_fail(err, TT_EINPUT, "%s: %d tasks (1-%d allowed)", path, p->n_tasks, PREDICTIONS_MAX_TASKS);
    for (int t = 0; t < p->n_tasks; t++)
        if (!name_ok(p->tasks[t].name) || p->tasks[t].n > PREDICTIONS_MAX_EXAMPLES)
            return tt_fail(err, TT_EINPUT, "%s: task %d: bad name or more than %u examples", path, t + 1, PREDICTIONS_MAX_EXAMPLES);
    fio_file f;
    if (fio_open_atomic(&f, path, err)) return -1;
    fprintf(f.fp, "%s\nsuite %s\nmethod %s\nseed %" PRIu64 "\ntasks %d\n", PREDICTIONS_MAGIC, p->suite, p->method, p->seed,
            p->n_tasks);
    for (int t = 0; t < p->n_tasks; t++) fprintf(f.fp, "task %u %s\n", p->tasks[t].n, p->tasks[t].name);
    fputc('\n', f.fp);
    for (int t = 0; t < p->n_tasks; t++)
        if (fio_write(&f, p->tasks[t].bits, task_bytes(p->tasks[t].n), err)) {
            fio_abort(&f);
            return -1;
        }
    return fio_commit(&f, err);
}

/* ---- reading ---------------------------------------------------------------------------- */

typedef struct rd {
    const char *what;
    const uint8_t *buf;
    size_t n, off;
    int line;
    tt_err *err;
} rd;

/* The next header line (without '\n') into line[cap]; -1 with an error when there is none. */
static int next_line(rd *r, char *line, size_t cap) {
    r->line++;
    size_t lim = r->n < PREDICTIONS_MAX_HEADER ? r->n : PREDICTIONS_MAX_HEADER;
    const uint8_t *nl = r->off < lim ? memchr(r->buf + r->off, '\n', lim - r->off) : NULL;
    if (!nl) return tt_fail(r->err, TT_EINPUT, "%s: line %d: header ends early (not a predictions file?)", r->what, r->line);
    size_t len = (size_t)(nl - (r->buf + r->off));
    if (len >= cap) return tt_fail(r->err, TT_EINPUT, "%s: line %d: longer than %zu bytes", r->what, r->line, cap - 1);
    memcpy(line, r->buf + r->off, len);
    line[len] = 0;
    if (memchr(line, 0, len)) return tt_fail(r->err, TT_EINPUT, "%s: line %d: NUL byte in the header", r->what, r->line);
    r->off += len + 1;
    return 0;
}

/* "key value": the value after "key " (a non-empty name without control characters). */
static int keyed(rd *r, char *line, const char *key, char **value) {
    size_t k = strlen(key);
    if (strncmp(line, key, k) || line[k] != ' ')
        return tt_fail(r->err, TT_EINPUT, "%s: line %d: expected '%s ...'", r->what, r->line, key);
    *value = line + k + 1;
    if (!name_ok(*value)) return tt_fail(r->err, TT_EINPUT, "%s: line %d: %s: empty, too long or control characters", r->what, r->line, key);
    return 0;
}

/* A decimal integer in [0, max], the whole string. */
static int parse_uint(const char *s, uint64_t max, uint64_t *out) {
    if (!*s || strlen(s) > 20) return -1;
    uint64_t v = 0;
    for (const char *c = s; *c; c++) {
        if (*c < '0' || *c > '9') return -1;
        unsigned d = (unsigned)(*c - '0');
        if (v > (UINT64_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    if (v > max || (s[0] == '0' && s[1])) return -1;
    *out = v;
    return 0;
}

int predictions_parse(const char *what, const uint8_t *buf, size_t n, predictions *p, tt_err *err) {
    memset(p, 0, sizeof *p);
    rd r = {.what = what, .buf = buf, .n = n, .err = err};
    char line[PREDICTIONS_MAX_NAME + 64], *v;
    uint64_t u;
    if (next_line(&r, line, sizeof line)) goto fail;
    if (strcmp(line, PREDICTIONS_MAGIC)) {
        tt_fail(err, TT_EINPUT, "%s: not a predictions file (the first line is not '%s')", what, PREDICTIONS_MAGIC);
        goto fail;
    }
    if (next_line(&r, line, sizeof line) || keyed(&r, line, "suite", &v)) goto fail;
    if (!(p->suite = strdup(v))) goto oom;
    if (next_line(&r, line, sizeof line) || keyed(&r, line, "method", &v)) goto fail;
    if (!(p->method = strdup(v))) goto oom;
    if (next_line(&r, line, sizeof line) || keyed(&r, line, "seed", &v)) goto fail;
    if (parse_uint(v, UINT64_MAX, &p->seed)) {
        tt_fail(err, TT_EINPUT, "%s: line %d: seed: not an integer in [0, 2^64-1]", what, r.line);
        goto fail;
    }
    if (next_line(&r, line, sizeof line) || keyed(&r, line, "tasks", &v)) goto fail;
    if (parse_uint(v, PREDICTIONS_MAX_TASKS, &u) || u == 0) {
        tt_fail(err, TT_EINPUT, "%s: line %d: tasks: not an integer in [1, %d]", what, r.line, PREDICTIONS_MAX_TASKS);
        goto fail;
    }
    if (!(p->tasks = calloc((size_t)u, sizeof *p->tasks))) goto oom;
    p->n_tasks = (int)u;
    size_t payload = 0;
    for (int t = 0; t < p->n_tasks; t++) {
        if (next_line(&r, line, sizeof line) || keyed(&r, line, "task", &v)) goto fail;
        char *sp = strchr(v, ' ');
        if (sp) *sp = 0;
        if (!sp || parse_uint(v, PREDICTIONS_MAX_EXAMPLES, &u) || !name_ok(sp + 1)) {
            tt_fail(err, TT_EINPUT, "%s: line %d: expected 'task COUNT NAME' with COUNT in [0, %u]", what, r.line,
                    PREDICTIONS_MAX_EXAMPLES);
            goto fail;
        }
        for (int s = 0; s < t; s++)
            if (!strcmp(p->tasks[s].name, sp + 1)) {
                tt_fail(err, TT_EINPUT, "%s: line %d: task '%s' appears twice", what, r.line, sp + 1);
                goto fail;
            }
        p->tasks[t].n = (uint32_t)u;
        if (!(p->tasks[t].name = strdup(sp + 1))) goto oom;
        payload += task_bytes(p->tasks[t].n);
    }
    if (next_line(&r, line, sizeof line)) goto fail;
    if (line[0]) {
        tt_fail(err, TT_EINPUT, "%s: line %d: expected the blank line that ends the header", what, r.line);
        goto fail;
    }
    if (n - r.off != payload) {
        tt_fail(err, TT_EINPUT, "%s: %zu bytes after the header, the tasks need %zu (truncated or padded file)", what,
                n - r.off, payload);
        goto fail;
    }
    for (int t = 0; t < p->n_tasks; t++) {
        predictions_task *pt = &p->tasks[t];
        size_t nb = task_bytes(pt->n);
        if (!(pt->bits = malloc(nb ? nb : 1))) goto oom;
        memcpy(pt->bits, buf + r.off, nb);
        r.off += nb;
        if ((pt->n & 7) && (pt->bits[nb - 1] >> (pt->n & 7))) {
            tt_fail(err, TT_EINPUT, "%s: task '%s': pad bits after example %u are set", what, pt->name, pt->n);
            goto fail;
        }
    }
    return 0;
oom:
    tt_fail(err, TT_ENOMEM, "%s: out of memory", what);
fail:
    predictions_free(p);
    return -1;
}

int predictions_read(const char *path, predictions *p, tt_err *err) {
    memset(p, 0, sizeof *p);
    char *buf = NULL;
    size_t n = 0;
    size_t max = (size_t)512 << 20; /* 4 billion examples in all */
    if (fio_read_all(path, &buf, &n, max, err)) return -1;
    int rc = predictions_parse(path, (const uint8_t *)buf, n, p, err);
    free(buf);
    return rc;
}
