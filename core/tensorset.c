/* tensorset.c — see tensorset.h. */
#define _POSIX_C_SOURCE 200809L /* strdup, madvise's neighbours, also under -std=c11 */
#define _DEFAULT_SOURCE         /* madvise */
#include "core/tensorset.h"

#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fileio.h"

#define TS_MAX_INDEX_BYTES (64u << 20) /* an index of 100k tensors is ~10 MB */
#define TS_MAX_SHARDS 4096

struct ts_set {
    char *path;      /* as given */
    char *dir;       /* the directory given, or NULL */
    st_file **shard; /* [n_shard], in file name order */
    int n_shard;
    ts_tensor *t;    /* [n], sorted by name */
    int n;
};

static const char *show(const char *s, char *buf) { return tt_printable(s, strlen(s), buf, 96); }

/* ---- index ---- */

void ts_index_free(ts_index *idx) {
    for (int i = 0; i < idx->n; i++) {
        free(idx->tensor[i]);
        free(idx->shard[i]);
    }
    free(idx->tensor);
    free(idx->shard);
    memset(idx, 0, sizeof *idx);
}

static bool plain_shard_name(const char *s) {
    size_t n = strlen(s);
    const char *ext = ".safetensors";
    size_t e = strlen(ext);
    return n > e && !strchr(s, '/') && s[0] != '.' && strcmp(s + n - e, ext) == 0;
}

int ts_index_parse(ts_index *idx, const char *text, size_t len, const char *path, tt_err *err) {
    memset(idx, 0, sizeof *idx);
    char b1[100], b2[100];
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return tt_fail(err, TT_EINPUT, "%s: index is not valid JSON: %s (line %d)", path, show(je.text, b1), je.line);
    int rc = -1;
    const json_t *wm = json_object_get(root, "weight_map"), *meta = json_object_get(root, "metadata");
    if (!json_is_object(root) || !json_is_object(wm) || json_object_size(wm) == 0) {
        tt_fail(err, TT_EINPUT, "%s: index has no \"weight_map\" object of tensor -> shard file", path);
        goto done;
    }
    if (meta && !json_is_object(meta)) {
        tt_fail(err, TT_EINPUT, "%s: index \"metadata\" is not an object", path);
        goto done;
    }
    const json_t *ts = meta ? json_object_get(meta, "total_size") : NULL;
    if (ts && !(json_is_integer(ts) && json_integer_value(ts) >= 0)) {
        tt_fail(err, TT_EINPUT, "%s: index metadata.total_size is not a non-negative integer", path);
        goto done;
    }
    size_t n = json_object_size(wm);
    if (n > 10000000) {
        tt_fail(err, TT_EINPUT, "%s: index names %zu tensors (too many)", path, n);
        goto done;
    }
    idx->tensor = calloc(n, sizeof *idx->tensor);
    idx->shard = calloc(n, sizeof *idx->shard);
    if (!idx->tensor || !idx->shard) {
        tt_fail(err, TT_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)wm, k, v) {
        const char *file = json_string_value(v);
        if (!*k || strlen(k) > ST_MAX_NAME) {
            tt_fail(err, TT_EINPUT, "%s: index weight_map has an empty or over-long tensor name", path);
            goto done;
        }
        if (!file || !plain_shard_name(file)) {
            tt_fail(err, TT_EINPUT, "%s: index maps tensor %s to %s, not a plain *.safetensors file name", path,
                    show(k, b1), file ? show(file, b2) : "a non-string");
            goto done;
        }
        if (!(idx->tensor[idx->n] = strdup(k)) || !(idx->shard[idx->n] = strdup(file))) {
            free(idx->tensor[idx->n]);
            tt_fail(err, TT_ENOMEM, "%s: out of memory", path);
            goto done;
        }
        idx->n++;
    }
    rc = 0;
done:
    json_decref(root);
    if (rc) ts_index_free(idx);
    return rc;
}

/* ---- opening ---- */

static int cmp_ts_name(const void *a, const void *b) {
    return strcmp(((const ts_tensor *)a)->t->name, ((const ts_tensor *)b)->t->name);
}
static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static bool is_file(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s%s%s", dir, dir[0] && dir[strlen(dir) - 1] == '/' ? "" : "/", name);
    return s;
}

static int add_shard(ts_set *s, const char *file, tt_err *err) {
    st_file **ns = realloc(s->shard, (size_t)(s->n_shard + 1) * sizeof *ns);
    if (!ns) return tt_fail(err, TT_ENOMEM, "%s: out of memory", file);
    s->shard = ns;
    if (st_open(&s->shard[s->n_shard], file, err)) return -1;
    s->n_shard++;
    return 0;
}

/* All tensors of all shards into s->t, sorted; a name in two shards is an error. */
static int collect(ts_set *s, const char *index_path, tt_err *err) {
    size_t n = 0;
    for (int i = 0; i < s->n_shard; i++) n += (size_t)st_count(s->shard[i]);
    if (n > INT32_MAX) return tt_fail(err, TT_EINPUT, "%s: too many tensors", s->path);
    s->t = calloc(n ? n : 1, sizeof *s->t);
    if (!s->t) return tt_fail(err, TT_ENOMEM, "%s: out of memory", s->path);
    for (int i = 0; i < s->n_shard; i++)
        for (int j = 0; j < st_count(s->shard[i]); j++) s->t[s->n++] = (ts_tensor){st_at(s->shard[i], j), s->shard[i]};
    qsort(s->t, n, sizeof *s->t, cmp_ts_name);
    char b[100];
    for (size_t i = 1; i < n; i++)
        if (!strcmp(s->t[i - 1].t->name, s->t[i].t->name))
            return tt_fail(err, TT_EINPUT, "%s: tensor %s is in two shards, %s and %s", index_path,
                           show(s->t[i].t->name, b), st_path(s->t[i - 1].file), st_path(s->t[i].file));
    return 0;
}

static int open_index(ts_set *s, const char *index_path, tt_err *err) {
    char *text = NULL, b1[100], b2[100];
    size_t len = 0;
    ts_index idx = {0};
    char **names = NULL;
    int rc = -1;
    if (fio_read_all(index_path, &text, &len, TS_MAX_INDEX_BYTES, err) ||
        ts_index_parse(&idx, text, len, index_path, err))
        goto done;
    /* the shard files, each once, in name order */
    names = malloc((size_t)idx.n * sizeof *names);
    if (!names) {
        tt_fail(err, TT_ENOMEM, "%s: out of memory", index_path);
        goto done;
    }
    memcpy(names, idx.shard, (size_t)idx.n * sizeof *names);
    qsort(names, (size_t)idx.n, sizeof *names, cmp_str);
    const char *slash = strrchr(index_path, '/');
    char *dir = slash ? strndup(index_path, (size_t)(slash - index_path + 1)) : strdup("");
    if (!dir) {
        tt_fail(err, TT_ENOMEM, "%s: out of memory", index_path);
        goto done;
    }
    int bad = 0;
    for (int i = 0; i < idx.n && !bad; i++) {
        if (i && !strcmp(names[i], names[i - 1])) continue;
        if (s->n_shard >= TS_MAX_SHARDS) {
            bad = tt_fail(err, TT_EINPUT, "%s: more than %d shards", index_path, TS_MAX_SHARDS);
            break;
        }
        char *file = dir[0] ? join(dir, names[i]) : strdup(names[i]);
        bad = !file ? tt_fail(err, TT_ENOMEM, "%s: out of memory", index_path)
              : !is_file(file) ? tt_fail(err, TT_EINPUT, "%s: shard %s is missing", index_path, show(names[i], b1))
                               : add_shard(s, file, err);
        free(file);
    }
    free(dir);
    if (bad) goto done;
    if (collect(s, index_path, err)) goto done;
    /* the index and the shards must agree, name by name */
    for (int i = 0; i < idx.n; i++) {
        const ts_tensor *t = ts_find(s, idx.tensor[i]);
        const char *base = t ? strrchr(st_path(t->file), '/') : NULL;
        base = base ? base + 1 : t ? st_path(t->file) : NULL;
        if (!t) {
            tt_fail(err, TT_EINPUT, "%s: index names tensor %s in %s, which does not hold it", index_path,
                    show(idx.tensor[i], b1), show(idx.shard[i], b2));
            goto done;
        }
        if (strcmp(base, idx.shard[i])) {
            tt_fail(err, TT_EINPUT, "%s: index names tensor %s in %s, but it is in %s", index_path,
                    show(idx.tensor[i], b1), show(idx.shard[i], b2), st_path(t->file));
            goto done;
        }
    }
    if (s->n != idx.n) { /* a shard tensor the index does not list */
        for (int i = 0; i < s->n; i++) {
            bool listed = false;
            for (int j = 0; j < idx.n && !listed; j++) listed = !strcmp(idx.tensor[j], s->t[i].t->name);
            if (!listed) {
                tt_fail(err, TT_EINPUT, "%s: tensor %s of %s is not in the index", index_path,
                        show(s->t[i].t->name, b1), st_path(s->t[i].file));
                goto done;
            }
        }
    }
    rc = 0;
done:
    free(names);
    ts_index_free(&idx);
    free(text);
    return rc;
}

int ts_open(ts_set **out, const char *path, tt_err *err) {
    *out = NULL;
    ts_set *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        free(s);
        return tt_fail(err, TT_ENOMEM, "%s: out of memory", path);
    }
    struct stat sb;
    int rc = -1;
    size_t pl = strlen(path);
    const char *idx_suffix = ".index.json";
    if (stat(path, &sb) != 0) {
        tt_fail(err, TT_EIO, "%s: cannot open: %s", path, strerror(errno));
    } else if (S_ISDIR(sb.st_mode)) {
        if (!(s->dir = strdup(path))) {
            tt_fail(err, TT_ENOMEM, "%s: out of memory", path);
            goto done;
        }
        static const char *const single[] = {"model.safetensors", "open_clip_model.safetensors"};
        char *m = join(path, single[0]), *ix = join(path, "model.safetensors.index.json"), *oc = join(path, single[1]);
        if (!m || !ix || !oc) tt_fail(err, TT_ENOMEM, "%s: out of memory", path);
        else if (is_file(m)) rc = add_shard(s, m, err) || collect(s, m, err) ? -1 : 0;
        else if (is_file(ix)) rc = open_index(s, ix, err);
        else if (is_file(oc)) rc = add_shard(s, oc, err) || collect(s, oc, err) ? -1 : 0;
        else
            tt_fail(err, TT_EINPUT, "%s: directory holds no model.safetensors, model.safetensors.index.json or "
                    "open_clip_model.safetensors", path);
        free(m);
        free(ix);
        free(oc);
    } else if (pl > strlen(idx_suffix) && !strcmp(path + pl - strlen(idx_suffix), idx_suffix)) {
        /* the index stands for its directory (config.json beside it) */
        const char *slash = strrchr(path, '/');
        s->dir = slash ? strndup(path, (size_t)(slash - path > 0 ? slash - path : 1)) : strdup(".");
        rc = s->dir ? open_index(s, path, err) : tt_fail(err, TT_ENOMEM, "%s: out of memory", path);
    } else {
        rc = add_shard(s, path, err) || collect(s, path, err) ? -1 : 0;
    }
done:
    if (rc) {
        ts_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

void ts_close(ts_set *s) {
    if (!s) return;
    for (int i = 0; i < s->n_shard; i++) st_close(s->shard[i]);
    free(s->shard);
    free(s->t);
    free(s->dir);
    free(s->path);
    free(s);
}

const char *ts_path(const ts_set *s) { return s->path; }
const char *ts_dir(const ts_set *s) { return s->dir; }
int ts_count(const ts_set *s) { return s->n; }
int ts_shard_count(const ts_set *s) { return s->n_shard; }
const st_file *ts_shard(const ts_set *s, int i) {
    TT_ASSERT(i >= 0 && i < s->n_shard);
    return s->shard[i];
}

const ts_tensor *ts_at(const ts_set *s, int i) {
    TT_ASSERT(i >= 0 && i < s->n);
    return &s->t[i];
}

static int cmp_key(const void *key, const void *t) { return strcmp((const char *)key, ((const ts_tensor *)t)->t->name); }

const ts_tensor *ts_find(const ts_set *s, const char *name) {
    return s->n ? bsearch(name, s->t, (size_t)s->n, sizeof *s->t, cmp_key) : NULL;
}

const char *ts_meta(const ts_set *s, const char *key) {
    for (int i = 0; i < s->n_shard; i++) {
        const char *v = st_meta(s->shard[i], key);
        if (v) return v;
    }
    return NULL;
}

int ts_read_f32(const ts_tensor *t, float *out, tt_err *err) { return st_read_f32(t->file, t->t, out, err); }

int ts_read_f32_range(const ts_tensor *t, size_t first, size_t n, float *out, tt_err *err) {
    return st_read_f32_range(t->file, t->t, first, n, out, err);
}

void ts_release(const ts_tensor *t) { ts_release_range(t, 0, t->t->nbytes); }

void ts_release_range(const ts_tensor *t, size_t offset, size_t nbytes) {
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0 || !nbytes || offset >= t->t->nbytes) return;
    if (nbytes > t->t->nbytes - offset) nbytes = t->t->nbytes - offset;
    uintptr_t b = (uintptr_t)t->t->data + offset, e = b + nbytes;
    uintptr_t pb = (b + (uintptr_t)page - 1) & ~((uintptr_t)page - 1), pe = e & ~((uintptr_t)page - 1);
    if (pe > pb) madvise((void *)pb, pe - pb, MADV_DONTNEED); /* read-only private map: refetched on demand */
}
