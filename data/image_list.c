/* image_list.c — see image_list.h. */
#include "data/image_list.h"

#include <csv.h>
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/fileio.h"

#define IMLS_MAX_DEPTH 64
#define IMLS_MAX_MANIFEST_BYTES (1L << 30)

/* A growable array of owned strings. */
typedef struct strvec {
    char **v;
    int n, cap;
} strvec;

static void sv_free_(strvec *s) {
    for (int i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static int sv_push_(strvec *s, char *owned) { /* takes owned (also on failure) */
    if (!owned) return -1;
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 64;
        char **nv = cap > 0 && cap < (1 << 28) ? realloc(s->v, sizeof *nv * (size_t)cap) : NULL;
        if (!nv) {
            free(owned);
            return -1;
        }
        s->v = nv, s->cap = cap;
    }
    s->v[s->n++] = owned;
    return 0;
}

static int cmp_str_(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static char *join_(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

static bool is_dir_(const char *path) { /* follows symlinks, as DirEntry.is_dir() */
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool has_image_ext_(const char *name) {
    static const char *ext[] = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++) {
        size_t m = strlen(ext[i]);
        if (n < m) continue;
        bool eq = true;
        for (size_t j = 0; j < m && eq; j++) {
            char c = name[n - m + j];
            if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
            eq = c == ext[i][j];
        }
        if (eq) return true;
    }
    return false;
}

/* Entries of dir (no . and ..), split into sub-directories and the rest, both full paths. */
static int read_dir_(const char *dir, strvec *dirs, strvec *files, tt_err *err) {
    DIR *d = opendir(dir);
    if (!d) return tt_fail(err, TT_EIO, "%s: cannot open directory: %s", dir, strerror(errno));
    struct dirent *e;
    int rc = 0;
    errno = 0;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *p = join_(dir, e->d_name);
        if (!p) {
            rc = tt_fail(err, TT_ENOMEM, "out of memory listing %s", dir);
            break;
        }
        if (sv_push_(is_dir_(p) ? dirs : files, p)) {
            rc = tt_fail(err, TT_ENOMEM, "out of memory listing %s", dir);
            break;
        }
    }
    closedir(d);
    return rc;
}

/* Every directory under top (top included), os.walk(followlinks=True) style. */
static int walk_dirs_(const char *top, int depth, strvec *all, tt_err *err) {
    if (depth > IMLS_MAX_DEPTH)
        return tt_fail(err, TT_EINPUT, "%s: directories nested deeper than %d (a symlink loop?)", top, IMLS_MAX_DEPTH);
    if (sv_push_(all, strdup(top))) return tt_fail(err, TT_ENOMEM, "out of memory");
    strvec dirs = {0}, files = {0};
    int rc = read_dir_(top, &dirs, &files, err);
    for (int i = 0; !rc && i < dirs.n; i++) rc = walk_dirs_(dirs.v[i], depth + 1, all, err);
    sv_free_(&dirs);
    sv_free_(&files);
    return rc;
}

void imls_free(imls_list *l) {
    for (int i = 0; l->paths && i < l->n; i++) free(l->paths[i]);
    for (int i = 0; l->classes && i < l->n_classes; i++) free(l->classes[i]);
    free(l->paths);
    free(l->labels);
    free(l->classes);
    memset(l, 0, sizeof *l);
}

/* Move the strings of paths (and parallel labels) into out. */
static int finish_(strvec *paths, int32_t *labels, strvec *classes, imls_list *out) {
    out->n = paths->n;
    out->paths = paths->v;
    out->labels = labels;
    out->n_classes = classes ? classes->n : 0;
    out->classes = classes ? classes->v : NULL;
    memset(paths, 0, sizeof *paths);
    if (classes) memset(classes, 0, sizeof *classes);
    return 0;
}

int imls_folder(const char *root, imls_list *out, tt_err *err) {
    memset(out, 0, sizeof *out);
    strvec classes = {0}, paths = {0}, junk = {0};
    int32_t *labels = NULL;
    int cap = 0, rc = -1;
    if (read_dir_(root, &classes, &junk, err)) goto done;
    if (!classes.n) {
        tt_fail(err, TT_EINPUT, "%s: no class directories (an image folder is ROOT/<class>/<image>)", root);
        goto done;
    }
    qsort(classes.v, (size_t)classes.n, sizeof *classes.v, cmp_str_);
    for (int c = 0; c < classes.n; c++) {
        strvec dirs = {0};
        int before = paths.n, bad = walk_dirs_(classes.v[c], 0, &dirs, err);
        if (!bad && dirs.n > 1) qsort(dirs.v, (size_t)dirs.n, sizeof *dirs.v, cmp_str_); /* qsort(NULL, 0) is UB */
        for (int d = 0; !bad && d < dirs.n; d++) {
            strvec sub = {0}, files = {0};
            bad = read_dir_(dirs.v[d], &sub, &files, err);
            if (!bad && files.n > 1) qsort(files.v, (size_t)files.n, sizeof *files.v, cmp_str_);
            for (int f = 0; !bad && f < files.n; f++) {
                const char *slash = strrchr(files.v[f], '/');
                if (!has_image_ext_(slash ? slash + 1 : files.v[f])) continue;
                if (paths.n >= (1 << 24)) {
                    bad = tt_fail(err, TT_EINPUT, "%s: more than 2^24 images", root);
                    break;
                }
                if (paths.n == cap) {
                    cap = cap ? 2 * cap : 256;
                    int32_t *nl = realloc(labels, sizeof *nl * (size_t)cap);
                    if (!nl) {
                        bad = tt_fail(err, TT_ENOMEM, "out of memory");
                        break;
                    }
                    labels = nl;
                }
                labels[paths.n] = c;
                if (sv_push_(&paths, files.v[f])) bad = tt_fail(err, TT_ENOMEM, "out of memory");
                files.v[f] = NULL; /* moved */
            }
            for (int f = 0; f < files.n; f++) free(files.v[f]);
            free(files.v);
            sv_free_(&sub);
        }
        sv_free_(&dirs);
        if (bad) goto done;
        if (paths.n == before) {
            tt_fail(err, TT_EINPUT, "%s: class directory without any image file (.jpg .jpeg .png ...)", classes.v[c]);
            goto done;
        }
    }
    /* class names without the root prefix */
    size_t skip = strlen(root) + 1;
    for (int c = 0; c < classes.n; c++) memmove(classes.v[c], classes.v[c] + skip, strlen(classes.v[c] + skip) + 1);
    rc = finish_(&paths, labels, &classes, out);
    labels = NULL;
done:
    sv_free_(&classes);
    sv_free_(&paths);
    sv_free_(&junk);
    free(labels);
    return rc;
}

/* ---- manifest ---------------------------------------------------------------------------- */

typedef struct man_state {
    const char *path, *split;
    char *dir;               /* the manifest's directory, for relative paths */
    size_t line;             /* 1-based line of the current row */
    int field;
    char *f[3];              /* fields of the current row (owned) */
    int rows;
    bool has_split, failed;
    strvec paths, labels;    /* labels as text until every row is read */
    strvec all_labels;       /* the labels of every row, selected or not: they number the classes */
    tt_err *err;
} man_state;

static void man_field_(void *s, size_t len, void *user) {
    man_state *st = user;
    if (st->failed) return;
    int k = st->field++;
    if (k >= 3) return;
    st->f[k] = malloc(len + 1);
    if (!st->f[k]) {
        st->failed = true;
        tt_fail(st->err, TT_ENOMEM, "out of memory");
        return;
    }
    if (len) memcpy(st->f[k], s, len);
    st->f[k][len] = 0;
}

static void man_row_(int c, void *user) {
    man_state *st = user;
    int nf = st->field;
    st->field = 0;
    char *f0 = st->f[0], *f1 = st->f[1], *f2 = st->f[2];
    st->f[0] = st->f[1] = st->f[2] = NULL;
    int row = st->rows++;
    if (st->failed) goto out;
    if (row == 0 && f0 && !strcmp(f0, "path")) { /* header */
        st->has_split = nf >= 3;
        goto out;
    }
    if (nf < 2 || nf > 3) {
        st->failed = true;
        tt_fail(st->err, TT_EINPUT, "%s: line %zu: %d fields, expected path,label[,split]", st->path, st->line, nf);
        goto out;
    }
    if (nf == 3) st->has_split = true;
    if (!f0[0]) {
        st->failed = true;
        tt_fail(st->err, TT_EINPUT, "%s: line %zu: empty path", st->path, st->line);
        goto out;
    }
    if (sv_push_(&st->all_labels, strdup(f1))) {
        st->failed = true;
        tt_fail(st->err, TT_ENOMEM, "out of memory");
        goto out;
    }
    if (st->split && (nf < 3 || strcmp(f2, st->split))) goto out;
    char *full = f0[0] == '/' ? strdup(f0) : join_(st->dir, f0);
    bool ok = !sv_push_(&st->paths, full);
    if (ok) {
        ok = !sv_push_(&st->labels, f1);
        f1 = NULL; /* moved (or freed by sv_push_) */
    }
    if (!ok) {
        st->failed = true;
        tt_fail(st->err, TT_ENOMEM, "out of memory");
    }
out:
    free(f0), free(f1), free(f2);
    (void)c;
}

static bool label_int_(const char *s, int32_t *v) {
    if (!s[0] || strlen(s) > 10) return false;
    long long x = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return false;
        x = x * 10 + (*p - '0');
    }
    if (x > 0x7fffffff) return false;
    *v = (int32_t)x;
    return true;
}

static int find_sorted_(char **v, int n, const char *key) {
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(v[mid], key);
        if (!c) return mid;
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

int imls_manifest(const char *csv_path, const char *split, imls_list *out, tt_err *err) {
    memset(out, 0, sizeof *out);
    char *text = NULL;
    size_t n = 0;
    if (fio_read_all(csv_path, &text, &n, IMLS_MAX_MANIFEST_BYTES, err)) return -1;
    man_state st = {.path = csv_path, .split = split, .line = 1, .err = err};
    const char *slash = strrchr(csv_path, '/');
    st.dir = slash ? strndup(csv_path, (size_t)(slash - csv_path == 0 ? 1 : slash - csv_path)) : strdup(".");
    struct csv_parser p;
    int32_t *labels = NULL;
    strvec classes = {0};
    int rc = -1;
    if (!st.dir || csv_init(&p, CSV_STRICT | CSV_STRICT_FINI) != 0) {
        free(st.dir);
        free(text);
        return tt_fail(err, TT_ENOMEM, "out of memory");
    }
    /* parse line by line so that messages can name the line */
    size_t off = 0;
    while (off < n && !st.failed) {
        const char *nl = memchr(text + off, '\n', n - off);
        size_t len = nl ? (size_t)(nl - (text + off)) + 1 : n - off;
        if (csv_parse(&p, text + off, len, man_field_, man_row_, &st) != len && !st.failed) {
            st.failed = true;
            tt_fail(err, TT_EINPUT, "%s: line %zu: %s", csv_path, st.line, csv_strerror(csv_error(&p)));
        }
        off += len;
        st.line++;
    }
    if (!st.failed && csv_fini(&p, man_field_, man_row_, &st) != 0 && !st.failed) {
        st.failed = true;
        tt_fail(err, TT_EINPUT, "%s: line %zu: %s", csv_path, st.line, csv_strerror(csv_error(&p)));
    }
    csv_free(&p);
    for (int i = 0; i < 3; i++) free(st.f[i]);
    if (st.failed) goto done;
    if (split && !st.has_split) {
        tt_fail(err, TT_EINPUT, "%s: --split %s, but the manifest has no split column", csv_path, split);
        goto done;
    }
    if (!st.paths.n) {
        tt_fail(err, TT_EINPUT, split ? "%s: no row of split '%s'" : "%s: no image rows", csv_path, split);
        goto done;
    }
    labels = malloc(sizeof *labels * (size_t)st.paths.n);
    if (!labels) {
        tt_fail(err, TT_ENOMEM, "out of memory");
        goto done;
    }
    /* Integer or named, over every row of the manifest (so that the splits of one manifest
     * number the classes alike). */
    bool all_int = true;
    int32_t maxl = -1, v;
    for (int i = 0; i < st.all_labels.n && all_int; i++) {
        all_int = label_int_(st.all_labels.v[i], &v);
        if (all_int && v > maxl) maxl = v;
    }
    if (all_int) {
        for (int i = 0; i < st.labels.n; i++) label_int_(st.labels.v[i], &labels[i]);
        out->n_classes = maxl + 1;
    } else { /* class names, numbered in sorted order */
        for (int i = 0; i < st.all_labels.n; i++)
            if (sv_push_(&classes, strdup(st.all_labels.v[i]))) {
                tt_fail(err, TT_ENOMEM, "out of memory");
                goto done;
            }
        if (classes.n > 1) qsort(classes.v, (size_t)classes.n, sizeof *classes.v, cmp_str_);
        int u = 0;
        for (int i = 0; i < classes.n; i++) {
            if (u && !strcmp(classes.v[u - 1], classes.v[i])) free(classes.v[i]);
            else classes.v[u++] = classes.v[i];
        }
        classes.n = u;
        for (int i = 0; i < st.labels.n; i++) labels[i] = find_sorted_(classes.v, classes.n, st.labels.v[i]);
    }
    int nc = out->n_classes;
    rc = finish_(&st.paths, labels, all_int ? NULL : &classes, out);
    if (all_int) out->n_classes = nc;
    labels = NULL;
done:
    free(labels);
    sv_free_(&classes);
    sv_free_(&st.paths);
    sv_free_(&st.labels);
    sv_free_(&st.all_labels);
    free(st.dir);
    free(text);
    return rc;
}

int imls_open(const char *path, const char *split, imls_list *out, tt_err *err) {
    if (is_dir_(path)) {
        if (split) {
            memset(out, 0, sizeof *out);
            return tt_fail(err, TT_EINPUT, "%s: --split applies to a manifest, not to an image folder", path);
        }
        return imls_folder(path, out, err);
    }
    return imls_manifest(path, split, out, err);
}
