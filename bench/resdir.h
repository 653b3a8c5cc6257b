/* resdir.h — the results directory of `ttmerge bench`, shared by every bench writing into it.
 *
 * Several benches may write into one RESULTS_DIR at the same time. Each keeps its rows in
 * memory and, for every read-modify-write of results.csv / leaderboard.csv / timings.csv,
 * takes RESULTS_DIR/.lock (flock, exclusive), re-reads the current files, upserts its own rows
 * and rewrites the files atomically before unlocking — so no bench's rows overwrite another's.
 * The resume decision (is a method already done?) is read under the lock too. A directory
 * holds the results of one suite: the name in its results.csv rows and in its copy of
 * suite.json (with the suite's build seed) must match the suite being benched.
 *
 *   int fd;
 *   if (resdir_lock(out, &fd, err)) return -1;      // one line naming out when flock fails
 *   ... re-read, upsert, write ...
 *   resdir_unlock(fd);
 *
 * Each bench keeps its method processes' hand-over files in RESULTS_DIR/rows/<pid>/, so two
 * benches running the same method do not read each other's rows.
 */
#ifndef TT_RESDIR_H
#define TT_RESDIR_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

/* Open (creating) DIR/.lock and flock it exclusively, waiting for other benches; EINTR
 * (Ctrl-C) is retried. *fd receives the descriptor to pass to resdir_unlock. Fails with one
 * line naming DIR (TT_EIO) when the lock file cannot be opened or the filesystem refuses
 * locks (ENOLCK, EOPNOTSUPP, ...): writing without the lock could lose another bench's rows. */
int resdir_lock(const char *dir, int *fd, tt_err *err);

/* Release and close. Safe with fd < 0. */
void resdir_unlock(int fd);

/* 0 when DIR holds no results or results of this suite; -1 (TT_EINPUT) when DIR's results.csv
 * rows or DIR/suite.json name another suite, or DIR/suite.json records the same name with
 * another build seed than SUITE_DIR/suite.json: "DIR holds results of suite 'a'; SUITE_DIR is
 * suite 'b' ...". A malformed DIR/results.csv is an error too (the reader's one line), unless
 * fresh (a bench that starts the tables over; DIR/suite.json still decides). Only reads: call
 * it before writing anything, and again under the lock. */
int resdir_check_suite(const char *dir, const char *suite_dir, const char *suite_name, bool fresh, tt_err *err);

/* Under the lock: create DIR/rows/<pid>/ for this process (its path into work[cap]) and
 * remove the rows/<pid>/ of benches that no longer run (killed ones). */
int resdir_open_work(const char *dir, char *work, size_t cap, tt_err *err);

/* Under the lock: remove this process's work directory, and rows/ when it is empty. */
void resdir_close_work(const char *dir, const char *work);

#endif
