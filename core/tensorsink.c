/* tensorsink.c — see tensorsink.h. */
#define _GNU_SOURCE /* sync_file_range (Linux); mkdtemp, pwrite, fsync, strdup */
#include "core/tensorsink.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TSK_SLICE 65536 /* elements converted per pwrite */
/* Bytes written to a shard between starts of its writeback. The kernel leaves a file's dirty
 * pages alone until the background dirty limit (GBs on a large machine) or 30 s: the final fsync
 * then wrote the whole output after the merge (0.5 s of a 1 GB output on a virtio disk), where
 * writing back while the merge runs overlaps it. */
#define TSK_WRITEBACK ((uint64_t)64 << 20)

typedef struct tsk_entry {
    char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t numel, nbytes;
    int shard;
    uint64_t offset;  /* in the shard file: header + data offset */
    uint64_t written; /* bytes written so far (each byte once) */
} tsk_entry;

typedef struct tsk_shard {
    char name[64];
    int fd;
    uint64_t written; /* bytes, counted for TSK_WRITEBACK */
} tsk_shard;

struct tsk_sink {
    char *out, *tmp;
    tsk_entry *e; /* [n] in the caller's order */
    int n;
    tsk_shard *shard;
    int n_shard;
    char **extra; /* names of the non-tensor files added */
    int n_extra;
    uint64_t total; /* tensor bytes */
    unsigned char *conv; /* TSK_SLICE converted elements */
};

static int by_name_cmp(const void *a, const void *b, void *ctx) {
    const tsk_entry *e = ctx;
    return strcmp(e[*(const int *)a].name, e[*(const int *)b].name);
}

/* indices by name (qsort has no context argument in C11): a shell sort */
static void sort_by_name(int *idx, int n, const tsk_entry *e) {
    for (int gap = n / 2; gap > 0; gap /= 2)
        for (int i = gap; i < n; i++)
            for (int j = i; j >= gap && by_name_cmp(&idx[j - gap], &idx[j], (void *)e) > 0; j -= gap) {
                int t = idx[j];
                idx[j] = idx[j - gap];
                idx[j - gap] = t;
            }
}

static void fsync_path(const char *p) {
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

static void sink_free(tsk_sink *s) {
    if (!s) return;
    for (int i = 0; i < s->n; i++) free(s->e[i].name);
    for (int i = 0; i < s->n_extra; i++) free(s->extra[i]);
    for (int i = 0; i < s->n_shard; i++)
        if (s->shard[i].fd >= 0) close(s->shard[i].fd);
    free(s->extra);
    free(s->conv);
    free(s->e);
    free(s->shard);
    free(s->out);
    free(s->tmp);
    free(s);
}

void tsk_abort(tsk_sink *s) {
    if (!s) return;
    char path[4096];
    for (int i = 0; i < s->n_shard; i++) {
        snprintf(path, sizeof path, "%s/%s", s->tmp, s->shard[i].name);
        unlink(path);
    }
    for (int i = 0; i < s->n_extra; i++) {
        snprintf(path, sizeof path, "%s/%s", s->tmp, s->extra[i]);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", s->tmp);
    unlink(path);
    rmdir(s->tmp);
    sink_free(s);
}

/* The header of shard k: {name: {dtype, shape, data_offsets}} of its tensors, __metadata__. */
static char *shard_header(const tsk_sink *s, int k, const int *order, const tsk_kv *meta, int n_meta) {
    json_t *root = json_object(), *md = n_meta ? json_object() : NULL;
    int bad = !root || (n_meta && !md);
    uint64_t off = 0;
    for (int j = 0; j < s->n && !bad; j++) {
        const tsk_entry *e = &s->e[order[j]];
        if (e->shard != k) continue;
        json_t *shape = json_array();
        bad = !shape;
        for (int d = 0; !bad && d < e->ndim; d++) bad = json_array_append_new(shape, json_integer(e->shape[d]));
        if (bad) {
            json_decref(shape);
            break;
        }
        json_t *ent = json_pack("{s:s, s:o, s:[I,I]}", "dtype", st_dtype_name(e->dtype), "shape", shape, "data_offsets",
                                (json_int_t)off, (json_int_t)(off + e->nbytes));
        bad = !ent || json_object_set_new(root, e->name, ent);
        off += e->nbytes;
    }
    for (int i = 0; i < n_meta && !bad; i++) bad = json_object_set_new(md, meta[i].key, json_string(meta[i].value));
    if (!bad && md) bad = json_object_set(root, "__metadata__", md);
    char *text = bad ? NULL : json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(md);
    json_decref(root);
    return text;
}

/* Write the shard's header and assign its tensors' file offsets. */
static int start_shard(tsk_sink *s, int k, const int *order, const tsk_kv *meta, int n_meta, tt_err *err) {
    tsk_shard *sh = &s->shard[k];
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", s->tmp, sh->name);
    char *hdr = shard_header(s, k, order, meta, n_meta);
    if (!hdr) return tt_fail(err, TT_ENOMEM, "%s: out of memory building the header of %s", s->out, sh->name);
    size_t hlen = strlen(hdr), pad = (8 - hlen % 8) % 8;
    if (hlen + pad > ST_MAX_HEADER) {
        free(hdr);
        return tt_fail(err, TT_EINPUT, "%s: %s: header would be %zu bytes, over the limit of %llu", s->out, sh->name,
                       hlen + pad, ST_MAX_HEADER);
    }
    sh->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (sh->fd < 0) {
        free(hdr);
        return tt_fail(err, TT_EIO, "%s: cannot create %s: %s", s->out, sh->name, strerror(errno));
    }
    uint64_t total = hlen + pad;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)(total >> (8 * i));
    char *buf = malloc(8 + hlen + pad);
    if (!buf) {
        free(hdr);
        return tt_fail(err, TT_ENOMEM, "%s: out of memory", s->out);
    }
    memcpy(buf, len8, 8);
    memcpy(buf + 8, hdr, hlen);
    memset(buf + 8 + hlen, ' ', pad);
    free(hdr);
    size_t done = 0, want = 8 + hlen + pad;
    while (done < want) {
        ssize_t w = pwrite(sh->fd, buf + done, want - done, (off_t)done);
        if (w <= 0) {
            free(buf);
            return tt_fail(err, TT_EIO, "%s: %s: write failed: %s", s->out, sh->name, w < 0 ? strerror(errno) : "no progress");
        }
        done += (size_t)w;
    }
    free(buf);
    uint64_t off = want;
    for (int j = 0; j < s->n; j++) {
        tsk_entry *e = &s->e[order[j]];
        if (e->shard != k) continue;
        e->offset = off;
        off += e->nbytes;
    }
    return 0;
}

int tsk_open(tsk_sink **out, const char *dir, const tsk_spec *spec, int n, size_t shard_size, const tsk_kv *meta,
             int n_meta, tt_err *err) {
    *out = NULL;
    struct stat sb;
    if (stat(dir, &sb) == 0) return tt_fail(err, TT_EINPUT, "%s: already exists (the output is a new directory)", dir);
    tsk_sink *s = calloc(1, sizeof *s);
    int *order = malloc((size_t)(n > 0 ? n : 1) * sizeof *order);
    if (!s || !order || !(s->out = strdup(dir)) || !(s->e = calloc((size_t)(n > 0 ? n : 1), sizeof *s->e))) {
        free(order);
        sink_free(s);
        return tt_fail(err, TT_ENOMEM, "%s: out of memory", dir);
    }
    size_t ol = strlen(dir);
    while (ol > 1 && dir[ol - 1] == '/') ol--;
    if (!(s->tmp = malloc(ol + 16))) {
        free(order);
        sink_free(s);
        return tt_fail(err, TT_ENOMEM, "%s: out of memory", dir);
    }
    snprintf(s->tmp, ol + 16, "%.*s.tmp.XXXXXX", (int)ol, dir);
    for (int i = 0; i < n; i++) {
        tsk_entry *e = &s->e[i];
        s->n = i + 1;
        if (!(e->name = strdup(spec[i].name))) {
            free(order);
            sink_free(s);
            return tt_fail(err, TT_ENOMEM, "%s: out of memory", dir);
        }
        e->dtype = spec[i].dtype;
        e->ndim = spec[i].ndim;
        e->numel = 1;
        for (int d = 0; d < spec[i].ndim; d++) e->shape[d] = spec[i].shape[d], e->numel *= (size_t)spec[i].shape[d];
        e->nbytes = e->numel * st_dtype_size(e->dtype);
        order[i] = i;
    }
    sort_by_name(order, n, s->e);
    for (int j = 1; j < n; j++)
        if (!strcmp(s->e[order[j - 1]].name, s->e[order[j]].name)) {
            tt_fail(err, TT_EINPUT, "%s: tensor %s given twice", dir, s->e[order[j]].name);
            free(order);
            sink_free(s);
            return -1;
        }
    /* shards: greedy in the order given, a tensor larger than shard_size alone in its shard */
    uint64_t cur = 0;
    int shards = 0;
    for (int j = 0; j < n; j++) {
        tsk_entry *e = &s->e[j];
        if (j && shard_size && cur + e->nbytes > shard_size && cur > 0) shards++, cur = 0;
        e->shard = shards;
        cur += e->nbytes;
        s->total += e->nbytes;
    }
    shards++;
    if (!(s->shard = calloc((size_t)shards, sizeof *s->shard))) {
        free(order);
        sink_free(s);
        return tt_fail(err, TT_ENOMEM, "%s: out of memory", dir);
    }
    for (int k = 0; k < shards; k++) {
        s->shard[k].fd = -1;
        if (shards == 1) snprintf(s->shard[k].name, sizeof s->shard[k].name, "model.safetensors");
        else snprintf(s->shard[k].name, sizeof s->shard[k].name, "model-%05d-of-%05d.safetensors", k + 1, shards);
    }
    if (!mkdtemp(s->tmp)) {
        int e = errno;
        free(order);
        sink_free(s);
        return tt_fail(err, TT_EIO, "%s: cannot create a temporary directory: %s", dir, strerror(e));
    }
    for (int k = 0; k < shards; k++) {
        s->n_shard = k + 1;
        if (start_shard(s, k, order, meta, n_meta, err)) {
            free(order);
            tsk_abort(s);
            return -1;
        }
    }
    free(order);
    *out = s;
    return 0;
}

int tsk_shard_count(const tsk_sink *s) { return s->n_shard; }

/* Start writing back the shard's dirty pages (not waiting for it) each TSK_WRITEBACK bytes. */
static void writeback_progress(tsk_shard *sh, size_t w) {
    uint64_t before = __atomic_fetch_add(&sh->written, (uint64_t)w, __ATOMIC_RELAXED);
    if (before / TSK_WRITEBACK == (before + w) / TSK_WRITEBACK) return;
#ifdef __linux__
    (void)sync_file_range(sh->fd, 0, 0, SYNC_FILE_RANGE_WRITE); /* an error shows at the fsync */
#endif
}

static int write_at(tsk_sink *s, tsk_entry *e, uint64_t at, const void *buf, size_t len, bool count, tt_err *err) {
    tsk_shard *sh = &s->shard[e->shard];
    const char *p = buf;
    while (len) {
        ssize_t w = pwrite(sh->fd, p, len, (off_t)(e->offset + at));
        if (w <= 0)
            return tt_fail(err, TT_EIO, "%s: %s: write failed: %s", s->out, sh->name, w < 0 ? strerror(errno) : "no progress");
        p += w, at += (uint64_t)w, len -= (size_t)w;
        writeback_progress(sh, (size_t)w);
        if (count) __atomic_fetch_add(&e->written, (uint64_t)w, __ATOMIC_RELAXED); /* threads write disjoint ranges */
    }
    return 0;
}

int tsk_write_raw(tsk_sink *s, int i, size_t offset, const void *bytes, size_t nbytes, tt_err *err) {
    tsk_entry *e = &s->e[i];
    if (offset > e->nbytes || nbytes > e->nbytes - offset)
        return tt_fail(err, TT_EINPUT, "%s: tensor %s: bytes [%zu, %zu) are past its %zu", s->out, e->name, offset,
                       offset + nbytes, e->nbytes);
    return write_at(s, e, offset, bytes, nbytes, true, err);
}

static int put_f32(tsk_sink *s, int i, size_t first, const float *src, size_t n, bool count, tt_err *err) {
    tsk_entry *e = &s->e[i];
    if (first > e->numel || n > e->numel - first)
        return tt_fail(err, TT_EINPUT, "%s: tensor %s: elements [%zu, %zu) are past its %zu", s->out, e->name, first,
                       first + n, e->numel);
    size_t es = st_dtype_size(e->dtype);
    if (e->dtype == ST_F32) return write_at(s, e, first * es, src, n * es, count, err);
    if (e->dtype != ST_BF16 && e->dtype != ST_F16 && e->dtype != ST_F64)
        return tt_fail(err, TT_EINPUT, "%s: tensor %s has dtype %s, which is not written from f32", s->out, e->name,
                       st_dtype_name(e->dtype));
    if (!s->conv && !(s->conv = malloc(TSK_SLICE * 8))) return tt_fail(err, TT_ENOMEM, "%s: out of memory", s->out);
    unsigned char *buf = s->conv;
    for (size_t done = 0; done < n;) {
        size_t m = n - done < TSK_SLICE ? n - done : TSK_SLICE;
        const float *x = src + done;
        /* in blocks on the threads: the same bits whatever the thread count */
#pragma omp parallel for schedule(static) if (m > 65536)
        for (size_t j = 0; j < m; j += 16384)
            st_f32_to_dtype(e->dtype, x + j, buf + j * es, m - j < 16384 ? m - j : 16384);
        if (write_at(s, e, (first + done) * es, buf, m * es, count, err)) return -1;
        done += m;
    }
    return 0;
}

int tsk_write_f32(tsk_sink *s, int i, size_t first, const float *src, size_t n, tt_err *err) {
    return put_f32(s, i, first, src, n, true, err);
}

int tsk_rewrite_f32(tsk_sink *s, int i, size_t first, const float *src, size_t n, tt_err *err) {
    return put_f32(s, i, first, src, n, false, err);
}

static int plain_name(const char *name) {
    return name[0] && !strchr(name, '/') && strcmp(name, ".") && strcmp(name, "..");
}

int tsk_add_file(tsk_sink *s, const char *name, const void *bytes, size_t n, tt_err *err) {
    if (!plain_name(name)) return tt_fail(err, TT_EINPUT, "%s: '%s' is not a plain file name", s->out, name);
    char **grown = realloc(s->extra, (size_t)(s->n_extra + 1) * sizeof *grown);
    if (!grown) return tt_fail(err, TT_ENOMEM, "%s: out of memory", s->out);
    s->extra = grown;
    if (!(s->extra[s->n_extra] = strdup(name))) return tt_fail(err, TT_ENOMEM, "%s: out of memory", s->out);
    s->n_extra++;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", s->tmp, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return tt_fail(err, TT_EIO, "%s: cannot create %s: %s", s->out, name, strerror(errno));
    const char *p = bytes;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w <= 0) {
            int e = errno;
            close(fd);
            return tt_fail(err, TT_EIO, "%s: %s: write failed: %s", s->out, name, w < 0 ? strerror(e) : "no progress");
        }
        p += w, n -= (size_t)w;
    }
    int rc = fsync(fd) || close(fd) ? tt_fail(err, TT_EIO, "%s: %s: %s", s->out, name, strerror(errno)) : 0;
    return rc;
}

int tsk_copy_file(tsk_sink *s, const char *name, const char *src, tt_err *err) {
    FILE *f = fopen(src, "rb");
    if (!f) return tt_fail(err, TT_EIO, "%s: cannot open: %s", src, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (size_t r; buf && (r = fread(buf + n, 1, cap - n, f)) > 0;) {
        n += r;
        if (n == cap) {
            char *g = realloc(buf, cap * 2);
            if (!g) free(buf);
            buf = g, cap *= 2;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf) return tt_fail(err, TT_ENOMEM, "%s: out of memory", src);
    int rc = bad ? tt_fail(err, TT_EIO, "%s: read failed", src) : tsk_add_file(s, name, buf, n, err);
    free(buf);
    return rc;
}

static int write_index(tsk_sink *s, tt_err *err) {
    json_t *wm = json_object();
    for (int i = 0; wm && i < s->n; i++)
        if (json_object_set_new(wm, s->e[i].name, json_string(s->shard[s->e[i].shard].name))) json_decref(wm), wm = NULL;
    json_t *ix = wm ? json_pack("{s:{s:I},s:o}", "metadata", "total_size", (json_int_t)s->total, "weight_map", wm) : NULL;
    char *text = ix ? json_dumps(ix, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    json_decref(ix);
    if (!text) return tt_fail(err, TT_ENOMEM, "%s: out of memory", s->out);
    int rc = tsk_add_file(s, "model.safetensors.index.json", text, strlen(text), err);
    free(text);
    return rc;
}

int tsk_commit(tsk_sink *s, tt_err *err) {
    for (int i = 0; i < s->n; i++)
        if (s->e[i].written != s->e[i].nbytes) {
            tt_fail(err, TT_EINPUT, "%s: tensor %s: %llu of its %zu bytes written", s->out, s->e[i].name,
                    (unsigned long long)s->e[i].written, s->e[i].nbytes);
            tsk_abort(s);
            return -1;
        }
    for (int k = 0; k < s->n_shard; k++) {
        tsk_shard *sh = &s->shard[k];
        int rc = fsync(sh->fd), e = errno;
        if (!rc) rc = close(sh->fd), e = errno;
        else close(sh->fd);
        sh->fd = -1;
        if (rc) {
            tt_fail(err, TT_EIO, "%s: %s: %s", s->out, sh->name, strerror(e));
            tsk_abort(s);
            return -1;
        }
    }
    if (s->n_shard > 1 && write_index(s, err)) {
        tsk_abort(s);
        return -1;
    }
    fsync_path(s->tmp);
    if (rename(s->tmp, s->out) != 0) {
        tt_fail(err, TT_EIO, "%s: rename from %s failed: %s", s->out, s->tmp, strerror(errno));
        tsk_abort(s);
        return -1;
    }
    /* the parent, for a durable rename (best effort) */
    char parent[4096];
    snprintf(parent, sizeof parent, "%s", s->out);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) *slash = 0;
    else snprintf(parent, sizeof parent, "%s", slash ? "/" : ".");
    fsync_path(parent);
    sink_free(s);
    return 0;
}
