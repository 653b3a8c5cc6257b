/* fileio.c — see fileio.h. The write path follows redis rdbSave: temp file, fflush, fsync,
 * checked fclose, rename, and one cleanup path that unlinks the temp on any failure. */
#define _POSIX_C_SOURCE 200809L /* mmap, fsync, strdup, O_CLOEXEC, also under -std=c11 */
#include "core/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void release_(fio_file *f) {
    free(f->path); /* f->tmp lives in the same allocation */
    f->fp = NULL;
    f->path = f->tmp = NULL;
}

int fio_open_atomic(fio_file *f, const char *path, tt_err *err) {
    memset(f, 0, sizeof *f);
    if (!path || !*path) return tt_fail(err, TT_EINPUT, "(empty path): cannot write a file without a name");
    size_t len = strlen(path);
    size_t cap = 2 * len + 48; /* path NUL, path ".tmp." pid NUL */
    char *mem = malloc(cap);
    if (!mem) return tt_fail(err, TT_ENOMEM, "%s: out of memory", path);
    memcpy(mem, path, len + 1);
    char *tmp = mem + len + 1;
    snprintf(tmp, cap - (len + 1), "%s.tmp.%ld", path, (long)getpid());

    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && errno == EEXIST) { /* left behind by a crashed run that had our pid */
        unlink(tmp);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    }
    if (fd < 0) {
        tt_fail(err, TT_EIO, "%s: cannot create temp file %s: %s", path, tmp, strerror(errno));
        free(mem);
        return -1;
    }
    FILE *fp = fdopen(fd, "wb");
    if (!fp) {
        int e = errno;
        close(fd);
        unlink(tmp);
        free(mem);
        return tt_fail(err, TT_EIO, "%s: fdopen failed: %s", path, strerror(e));
    }
    f->fp = fp;
    f->path = mem;
    f->tmp = tmp;
    return 0;
}

int fio_write(fio_file *f, const void *buf, size_t n, tt_err *err) {
    TT_ASSERT(f && f->fp);
    if (n == 0) return 0;
    errno = 0;
    if (fwrite(buf, 1, n, f->fp) != n) {
        int e = errno;
        return tt_fail(err, TT_EIO, "%s: write failed: %s", f->path, e ? strerror(e) : "short write");
    }
    return 0;
}

/* fsync the directory holding path so that the rename itself is durable. Best effort: some
 * file systems refuse fsync on directories, and the data is already safe in the file. */
static void fsync_dir_(const char *path) {
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash) {
        strcpy(dir, ".");
    } else if (slash == path) {
        strcpy(dir, "/");
    } else {
        size_t n = (size_t)(slash - path);
        if (n >= sizeof dir) return;
        memcpy(dir, path, n);
        dir[n] = 0;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    (void)fsync(fd);
    close(fd);
}

int fio_commit(fio_file *f, tt_err *err) {
    TT_ASSERT(f && f->fp);
    const char *what = NULL;
    int e = 0;
    FILE *fp = f->fp;
    f->fp = NULL;
    errno = 0;
    if (fflush(fp) != 0 || ferror(fp)) {
        e = errno;
        what = "write failed";
    } else if (fsync(fileno(fp)) != 0) {
        e = errno;
        what = "fsync failed";
    }
    errno = 0;
    if (fclose(fp) != 0 && !what) { /* fclose can report a deferred write error (NFS, quota) */
        e = errno;
        what = "close failed";
    }
    if (!what && rename(f->tmp, f->path) != 0) {
        e = errno;
        what = "rename failed";
    }
    if (what) {
        unlink(f->tmp);
        tt_fail(err, TT_EIO, "%s: %s: %s", f->path, what, e ? strerror(e) : "unknown error");
        release_(f);
        return -1;
    }
    fsync_dir_(f->path);
    release_(f);
    return 0;
}

void fio_abort(fio_file *f) {
    if (!f) return;
    if (f->fp) fclose(f->fp);
    if (f->tmp) unlink(f->tmp);
    release_(f);
}

int fio_write_all(const char *path, const void *buf, size_t n, tt_err *err) {
    fio_file f;
    if (fio_open_atomic(&f, path, err)) return -1;
    if (fio_write(&f, buf, n, err)) {
        fio_abort(&f);
        return -1;
    }
    return fio_commit(&f, err);
}

int fio_read_all(const char *path, char **buf, size_t *n, size_t max_bytes, tt_err *err) {
    *buf = NULL;
    *n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not hang us */
    if (fd < 0) return tt_fail(err, TT_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return tt_fail(err, TT_EIO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return tt_fail(err, TT_EINPUT, "%s: not a regular file", path);
    }
    if (st.st_size < 0 || (uint64_t)st.st_size > (uint64_t)max_bytes || (uint64_t)st.st_size >= SIZE_MAX) {
        close(fd);
        return tt_fail(err, TT_EINPUT, "%s: file is %lld bytes, larger than the limit of %zu", path,
                       (long long)st.st_size, max_bytes);
    }
    size_t size = (size_t)st.st_size;
    char *p = malloc(size + 1);
    if (!p) {
        close(fd);
        return tt_fail(err, TT_ENOMEM, "%s: out of memory reading %zu bytes", path, size);
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, p + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            free(p);
            close(fd);
            return tt_fail(err, TT_EIO, "%s: read failed: %s", path, strerror(e));
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (got != size) {
        free(p);
        return tt_fail(err, TT_EIO, "%s: file shrank while reading (%zu of %zu bytes)", path, got, size);
    }
    p[size] = 0;
    *buf = p;
    *n = size;
    return 0;
}
