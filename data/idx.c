#include "data/idx.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define IDX_TYPE_U8 0x08
/* First buffer for the data; it doubles while bytes keep arriving, up to the header's size. */
#define IDX_FIRST_CHUNK ((size_t)16 << 20)
#define IDX_IN_BUFFER ((size_t)256 << 10)

static const char *idx_type_name(int t) {
    switch (t) {
    case 0x08: return "u8";
    case 0x09: return "i8";
    case 0x0B: return "i16";
    case 0x0C: return "i32";
    case 0x0D: return "float32";
    case 0x0E: return "float64";
    default: return "unknown type";
    }
}

/* ---- byte source: a raw file, or gzip member(s) inflated with zlib ----
 * gzread is not used because it accepts some truncated streams silently (a file cut inside
 * the 8-byte trailer, or exactly where its input buffer runs dry, reads as a clean EOF).
 * Here a gzip stream must reach Z_STREAM_END (trailer, CRC-32 and length checked by zlib);
 * concatenated members are accepted; anything else after the last member is an error. */
typedef struct zin {
    FILE *f;
    const char *path;
    tt_err *err;
    bool gz;          /* gzip (else raw passthrough) */
    bool inflating;   /* inside a member (inflateInit2 done and not at its end) */
    bool z_ready;     /* inflateInit2 succeeded: inflateEnd owed */
    z_stream zs;
    uint8_t *in;      /* input buffer; zs.next_in / zs.avail_in index into it */
    size_t in_cap;
} zin;

/* Move the unread input to the front and top the buffer up from the file. Returns the
 * number of bytes now available, or -1 on a read error. */
static long zin_fill(zin *z) {
    size_t have = z->zs.avail_in;
    if (have && z->zs.next_in != z->in) memmove(z->in, z->zs.next_in, have);
    z->zs.next_in = z->in;
    size_t r = fread(z->in + have, 1, z->in_cap - have, z->f);
    if (r < z->in_cap - have && ferror(z->f)) {
        tt_fail(z->err, TT_EIO, "%s: read error: %s", z->path, strerror(errno));
        return -1;
    }
    z->zs.avail_in = (uInt)(have + r);
    return (long)z->zs.avail_in;
}

static int zin_open(zin *z, const char *path, tt_err *err) {
    memset(z, 0, sizeof *z);
    z->path = path;
    z->err = err;
    errno = 0;
    z->f = fopen(path, "rb");
    if (!z->f) return tt_fail(err, TT_EIO, "%s: cannot open: %s", path, strerror(errno));
    z->in_cap = IDX_IN_BUFFER;
    z->in = malloc(z->in_cap);
    if (!z->in) return tt_fail(err, TT_ENOMEM, "%s: out of memory for the input buffer", path);
    z->zs.next_in = z->in;
    if (zin_fill(z) < 0) return -1;
    z->gz = z->zs.avail_in >= 2 && z->in[0] == 0x1f && z->in[1] == 0x8b;
    if (z->gz) {
        if (inflateInit2(&z->zs, 15 + 16) != Z_OK)
            return tt_fail(err, TT_ENOMEM, "%s: cannot initialise zlib", path);
        z->z_ready = true;
        z->inflating = true;
    }
    return 0;
}

static void zin_close(zin *z) {
    if (z->z_ready) inflateEnd(&z->zs);
    if (z->f) fclose(z->f);
    free(z->in);
    memset(z, 0, sizeof *z);
}

static int zin_gz_error(zin *z, int ret) {
    if (ret == Z_MEM_ERROR) return tt_fail(z->err, TT_ENOMEM, "%s: zlib out of memory", z->path);
    return tt_fail(z->err, TT_EINPUT, "%s: corrupt gzip stream (zlib: %s)", z->path,
                   z->zs.msg ? z->zs.msg : zError(ret));
}

/* Read up to want bytes. Returns the count (< want only at the end of the data), or -1 with
 * err filled on a read, gzip or memory error. */
static long long zin_read(zin *z, uint8_t *buf, size_t want) {
    size_t got = 0;
    if (!z->gz) {
        size_t take = z->zs.avail_in < want ? z->zs.avail_in : want;
        memcpy(buf, z->zs.next_in, take);
        z->zs.next_in += take;
        z->zs.avail_in -= (uInt)take;
        got = take;
        if (got < want) {
            size_t r = fread(buf + got, 1, want - got, z->f);
            if (r < want - got && ferror(z->f))
                return tt_fail(z->err, TT_EIO, "%s: read error: %s", z->path, strerror(errno));
            got += r;
        }
        return (long long)got;
    }
    while (got < want) {
        if (!z->inflating) {
            /* Between members: the end of the file, or another gzip member. */
            if (z->zs.avail_in < 2 && zin_fill(z) < 0) return -1;
            if (z->zs.avail_in == 0) break;
            if (z->zs.avail_in < 2 || z->zs.next_in[0] != 0x1f || z->zs.next_in[1] != 0x8b)
                return tt_fail(z->err, TT_EINPUT, "%s: trailing bytes after the gzip stream",
                               z->path);
            if (inflateReset(&z->zs) != Z_OK) return zin_gz_error(z, Z_STREAM_ERROR);
            z->inflating = true;
        }
        if (z->zs.avail_in == 0) {
            long r = zin_fill(z);
            if (r < 0) return -1;
            if (r == 0)
                return tt_fail(z->err, TT_EINPUT,
                               "%s: truncated gzip stream (unexpected end of file)", z->path);
        }
        size_t room = want - got;
        if (room > (size_t)1 << 30) room = (size_t)1 << 30;
        z->zs.next_out = buf + got;
        z->zs.avail_out = (uInt)room;
        int ret = inflate(&z->zs, Z_NO_FLUSH);
        got += room - z->zs.avail_out;
        if (ret == Z_STREAM_END) z->inflating = false;
        else if (ret == Z_BUF_ERROR && z->zs.avail_in == 0) continue; /* needs input */
        else if (ret != Z_OK) return zin_gz_error(z, ret);
    }
    return (long long)got;
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Header checks, then the data. ndims_mask has bit k set when k dimensions are acceptable;
 * kind describes the expectation for the message; what names the data ("pixels"). */
static int idx_read_impl(const char *path, unsigned ndims_mask, const char *kind,
                         const char *what, idx_u8 *out, tt_err *err) {
    memset(out, 0, sizeof *out);
    zin z;
    int rc = -1;
    uint8_t *buf = NULL;
    uint8_t hdr[4 + 4 * IDX_MAX_DIMS];
    if (zin_open(&z, path, err) != 0) goto done;

    long long got = zin_read(&z, hdr, 4);
    if (got < 0) goto done;
    if (got < 4) {
        if (got == 0) tt_fail(err, TT_EINPUT, "%s: empty file", path);
        else tt_fail(err, TT_EINPUT, "%s: truncated IDX header (%lld of 4 magic bytes)", path, got);
        goto done;
    }
    uint32_t magic = be32(hdr);
    if (hdr[0] != 0 || hdr[1] != 0) {
        tt_fail(err, TT_EINPUT, "%s: not an IDX file (magic 0x%08x does not start with two zero bytes)",
                path, magic);
        goto done;
    }
    if (hdr[2] != IDX_TYPE_U8) {
        tt_fail(err, TT_EINPUT, "%s: IDX element type 0x%02X (%s) is not supported, only 0x08 (u8)",
                path, hdr[2], idx_type_name(hdr[2]));
        goto done;
    }
    int nd = hdr[3];
    if (nd == 0) {
        tt_fail(err, TT_EINPUT, "%s: IDX header has 0 dimensions", path);
        goto done;
    }
    if (nd > IDX_MAX_DIMS) {
        tt_fail(err, TT_EINPUT, "%s: IDX header has %d dimensions (at most %d supported)", path, nd,
                IDX_MAX_DIMS);
        goto done;
    }
    if (!(ndims_mask & (1u << nd))) {
        tt_fail(err, TT_EINPUT, "%s: expected %s, but magic 0x%08x has %d dimension%s", path, kind,
                magic, nd, nd == 1 ? "" : "s");
        goto done;
    }
    got = zin_read(&z, hdr + 4, 4 * (size_t)nd);
    if (got < 0) goto done;
    if (got < 4 * nd) {
        tt_fail(err, TT_EINPUT, "%s: truncated IDX header (%lld of %d dimension bytes)", path, got,
                4 * nd);
        goto done;
    }
    size_t total = 1;
    for (int d = 0; d < nd; d++) {
        uint32_t v = be32(hdr + 4 + 4 * d);
        uint32_t lim = d == 0 ? (uint32_t)DS_MAX_N : (uint32_t)DS_MAX_DIM;
        if (v == 0) {
            tt_fail(err, TT_EINPUT, "%s: IDX dimension %d is 0", path, d);
            goto done;
        }
        if (v > lim) {
            tt_fail(err, TT_EINPUT, "%s: IDX dimension %d is %u, exceeds the limit %u", path, d, v,
                    lim);
            goto done;
        }
        if (__builtin_mul_overflow(total, (size_t)v, &total)) {
            tt_fail(err, TT_EINPUT, "%s: IDX dimensions overflow the size type (product too large)",
                    path);
            goto done;
        }
        out->dims[d] = v;
    }

    /* Grow the buffer with the bytes that actually arrive. */
    size_t cap = total < IDX_FIRST_CHUNK ? total : IDX_FIRST_CHUNK, have = 0;
    buf = malloc(cap);
    if (!buf) {
        tt_fail(err, TT_ENOMEM, "%s: out of memory allocating %zu bytes", path, cap);
        goto done;
    }
    for (;;) {
        long long r = zin_read(&z, buf + have, cap - have);
        if (r < 0) goto done;
        have += (size_t)r;
        if (have < cap || have == total) break;
        size_t ncap = cap > total / 2 ? total : cap * 2;
        uint8_t *nb = realloc(buf, ncap);
        if (!nb) {
            tt_fail(err, TT_ENOMEM, "%s: out of memory allocating %zu bytes", path, ncap);
            goto done;
        }
        buf = nb;
        cap = ncap;
    }
    if (have < total) {
        tt_fail(err, TT_EINPUT, "%s: expected %zu bytes of %s, got %zu", path, total, what, have);
        goto done;
    }
    /* The data must end here (and a gzip stream must end cleanly). */
    uint8_t extra[64];
    long long more = zin_read(&z, extra, sizeof extra);
    if (more < 0) goto done;
    if (more > 0) {
        tt_fail(err, TT_EINPUT, "%s: trailing bytes after the %zu bytes of %s", path, total, what);
        goto done;
    }

    out->ndims = nd;
    out->size = total;
    out->data = buf;
    buf = NULL;
    rc = 0;
done:
    free(buf);
    zin_close(&z);
    if (rc != 0) memset(out, 0, sizeof *out);
    return rc;
}

int idx_slurp(const char *path, size_t max_bytes, uint8_t **data, size_t *n, tt_err *err) {
    *data = NULL;
    *n = 0;
    zin z;
    uint8_t *buf = NULL;
    size_t cap = 0, have = 0;
    int rc = -1;
    if (max_bytes > SIZE_MAX / 4) max_bytes = SIZE_MAX / 4;
    if (zin_open(&z, path, err) != 0) goto done;
    for (;;) {
        if (have == cap) {
            if (cap > max_bytes) {
                tt_fail(err, TT_EINPUT, "%s: larger than the limit of %zu bytes", path, max_bytes);
                goto done;
            }
            size_t ncap = cap ? cap * 2 : (size_t)64 << 10;
            if (ncap > max_bytes + 1) ncap = max_bytes + 1; /* one extra byte detects "too big" */
            uint8_t *nb = realloc(buf, ncap);
            if (!nb) {
                tt_fail(err, TT_ENOMEM, "%s: out of memory allocating %zu bytes", path, ncap);
                goto done;
            }
            buf = nb;
            cap = ncap;
        }
        long long r = zin_read(&z, buf + have, cap - have);
        if (r < 0) goto done;
        have += (size_t)r;
        if (have < cap) break;
    }
    if (have > max_bytes) {
        tt_fail(err, TT_EINPUT, "%s: larger than the limit of %zu bytes", path, max_bytes);
        goto done;
    }
    *data = buf;
    *n = have;
    buf = NULL;
    rc = 0;
done:
    free(buf);
    zin_close(&z);
    return rc;
}

int idx_read_u8(const char *path, idx_u8 *out, tt_err *err) {
    return idx_read_impl(path, 0x1Eu, "1 to 4 dimensions", "data", out, err);
}

void idx_u8_free(idx_u8 *t) {
    if (!t) return;
    free(t->data);
    memset(t, 0, sizeof *t);
}

int idx_read_images(const char *path, ds_images *out, tt_err *err) {
    memset(out, 0, sizeof *out);
    idx_u8 t;
    if (idx_read_impl(path, 1u << 3 | 1u << 4,
                      "an image file (magic 0x00000803 [n,h,w] or 0x00000804 [n,c,h,w])", "pixels",
                      &t, err) != 0)
        return -1;
    out->n = (int)t.dims[0];
    if (t.ndims == 3) {
        out->channels = 1;
        out->height = (int)t.dims[1];
        out->width = (int)t.dims[2];
    } else {
        out->channels = (int)t.dims[1];
        out->height = (int)t.dims[2];
        out->width = (int)t.dims[3];
    }
    out->pixels = t.data;  /* ownership moves to out */
    out->labels = NULL;
    return 0;
}

int idx_read_labels(const char *path, int32_t **labels, int *n, tt_err *err) {
    *labels = NULL;
    *n = 0;
    idx_u8 t;
    if (idx_read_impl(path, 1u << 1, "a label file (magic 0x00000801 [n])", "labels", &t, err) !=
        0)
        return -1;
    int32_t *lb = malloc(t.size * sizeof *lb);
    if (!lb) {
        idx_u8_free(&t);
        return tt_fail(err, TT_ENOMEM, "%s: out of memory for %zu labels", path, t.size);
    }
    for (size_t i = 0; i < t.size; i++) lb[i] = t.data[i];
    *labels = lb;
    *n = (int)t.size;
    idx_u8_free(&t);
    return 0;
}

int idx_read_pair(const char *images_path, const char *labels_path, ds_images *out, tt_err *err) {
    if (idx_read_images(images_path, out, err) != 0) return -1;
    int32_t *lb = NULL;
    int n = 0;
    if (idx_read_labels(labels_path, &lb, &n, err) != 0) {
        ds_images_free(out);
        return -1;
    }
    if (n != out->n) {
        tt_fail(err, TT_EINPUT, "%s: %d labels for the %d images of %s", labels_path, n, out->n,
                images_path);
        free(lb);
        ds_images_free(out);
        return -1;
    }
    out->labels = lb;
    return 0;
}

/* Write header + body to PATH.tmp.PID, flush, fsync, close, rename over path. On failure
 * the temporary is removed and path is left as it was. */
static int write_atomic(const char *path, const uint8_t *head, size_t head_n, const uint8_t *body,
                        size_t body_n, tt_err *err) {
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 32);
    if (!tmp) return tt_fail(err, TT_ENOMEM, "%s: out of memory", path);
    snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        int e = errno;
        tt_fail(err, TT_EIO, "%s: cannot create temporary file %s: %s", path, tmp, strerror(e));
        free(tmp);
        return -1;
    }
    const char *step = NULL;
    if (fwrite(head, 1, head_n, f) != head_n || (body_n && fwrite(body, 1, body_n, f) != body_n))
        step = "write";
    else if (fflush(f) != 0)
        step = "flush";
    else if (fsync(fileno(f)) != 0)
        step = "fsync";
    int e = errno;
    if (fclose(f) != 0 && !step) {
        step = "close";
        e = errno;
    }
    if (!step && rename(tmp, path) != 0) {
        step = "rename";
        e = errno;
    }
    if (step) {
        unlink(tmp);
        tt_fail(err, TT_EIO, "%s: %s failed: %s", path, step, strerror(e));
        free(tmp);
        return -1;
    }
    free(tmp);
    return 0;
}

int idx_write_images(const char *path, const ds_images *im, tt_err *err) {
    if (im->n < 1 || im->n > DS_MAX_N)
        return tt_fail(err, TT_EINPUT, "%s: cannot write %d images (IDX needs 1 to %d)", path,
                       im->n, DS_MAX_N);
    if (im->channels < 1 || im->channels > DS_MAX_DIM || im->height < 1 ||
        im->height > DS_MAX_DIM || im->width < 1 || im->width > DS_MAX_DIM)
        return tt_fail(err, TT_EINPUT, "%s: image shape %dx%dx%d outside [1, %d]", path,
                       im->channels, im->height, im->width, DS_MAX_DIM);
    uint8_t head[4 + 4 * 4];
    size_t hn;
    put_be32(head + 4, (uint32_t)im->n);
    if (im->channels == 1) {
        put_be32(head, 0x00000803u);
        put_be32(head + 8, (uint32_t)im->height);
        put_be32(head + 12, (uint32_t)im->width);
        hn = 16;
    } else {
        put_be32(head, 0x00000804u);
        put_be32(head + 8, (uint32_t)im->channels);
        put_be32(head + 12, (uint32_t)im->height);
        put_be32(head + 16, (uint32_t)im->width);
        hn = 20;
    }
    return write_atomic(path, head, hn, im->pixels, (size_t)im->n * ds_image_size(im), err);
}

int idx_write_labels(const char *path, const int32_t *labels, int n, tt_err *err) {
    if (n < 1 || n > DS_MAX_N)
        return tt_fail(err, TT_EINPUT, "%s: cannot write %d labels (IDX needs 1 to %d)", path, n,
                       DS_MAX_N);
    uint8_t *body = malloc((size_t)n);
    if (!body) return tt_fail(err, TT_ENOMEM, "%s: out of memory", path);
    for (int i = 0; i < n; i++) {
        if (labels[i] < 0 || labels[i] > 255) {
            free(body);
            return tt_fail(err, TT_EINPUT, "%s: label %d at index %d does not fit u8 [0, 255]",
                           path, (int)labels[i], i);
        }
        body[i] = (uint8_t)labels[i];
    }
    uint8_t head[8];
    put_be32(head, 0x00000801u);
    put_be32(head + 4, (uint32_t)n);
    int rc = write_atomic(path, head, 8, body, (size_t)n, err);
    free(body);
    return rc;
}
