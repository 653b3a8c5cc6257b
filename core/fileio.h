/* fileio.h — atomic output files and bounded whole-file reads.
 *
 * Every file ttmerge writes (checkpoints, CSVs, reports, .npy) goes through fio_open_atomic:
 * the bytes go to PATH.tmp.PID, and fio_commit flushes, fsyncs, checks fclose and renames the
 * temp over PATH (then fsyncs the directory, best effort). A crash or error therefore leaves
 * either the old PATH or the complete new one, never a torn file; fio_abort unlinks the temp.
 * Errors name the final path and the problem: "out/m.safetensors: rename failed: No space
 * left on device". This module does not create directories.
 *
 *   fio_file f;
 *   if (fio_open_atomic(&f, "out/results.csv", err)) return -1;
 *   fprintf(f.fp, "suite,method\n");                  // or fio_write(&f, buf, n, err)
 *   if (bad) { fio_abort(&f); return -1; }            // temp unlinked, PATH untouched
 *   return fio_commit(&f, err);                        // fflush+fsync+fclose+rename
 *
 * Ownership: fio_file owns fp and both path strings from fio_open_atomic until fio_commit or
 * fio_abort, which always release everything (also when commit fails) — call exactly one of
 * them. fio_read_all returns a malloc'd buffer the caller frees with free().
 */
#ifndef TT_FILEIO_H
#define TT_FILEIO_H

#include <stddef.h>
#include <stdio.h>

#include "core/err.h"

typedef struct fio_file {
    FILE *fp;   /* write here (stdio); NULL once committed or aborted */
    char *path; /* final path, e.g. "out/m.safetensors" (owned) */
    char *tmp;  /* temp path, e.g. "out/m.safetensors.tmp.4242" (owned) */
} fio_file;

/* Create PATH.tmp.PID for writing (a stale temp of the same name is replaced). On failure
 * *f is zeroed and nothing is left on disk. */
int fio_open_atomic(fio_file *f, const char *path, tt_err *err);

/* fwrite n bytes, reporting "PATH: write failed: <strerror>". On failure the file stays
 * open: the caller still calls fio_abort. */
int fio_write(fio_file *f, const void *buf, size_t n, tt_err *err);

/* fflush + fsync + checked fclose + rename(tmp, path) + best-effort fsync of the directory.
 * On any failure the temp is unlinked and PATH is left as it was. Releases f either way. */
int fio_commit(fio_file *f, tt_err *err);

/* Close and unlink the temp; releases f. Safe on a zeroed, committed or aborted fio_file. */
void fio_abort(fio_file *f);

/* Atomically replace PATH with the n bytes of buf. */
int fio_write_all(const char *path, const void *buf, size_t n, tt_err *err);

/* Read the whole regular file PATH into *buf (malloc'd, with an extra NUL byte after the
 * n bytes so text can be parsed in place; caller frees). Fails with "PATH: file is N bytes,
 * larger than the limit of M" when it holds more than max_bytes. */
int fio_read_all(const char *path, char **buf, size_t *n, size_t max_bytes, tt_err *err);

#endif
