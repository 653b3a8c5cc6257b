/* test_tiny_resdir.c — the results directory lock (bench/resdir.h) and its failure path.
 *
 * A filesystem without locks cannot be mounted in a test, so this binary interposes flock():
 * its own definition below takes the place of libc's for the library code linked into it, and
 * fails with a chosen errno on a chosen call (the real one runs otherwise). Checked: the lock
 * is exclusive across processes; ENOLCK / EOPNOTSUPP give one line naming the directory; a
 * bench (grid_run on the tiny suite) whose lock fails stops with that line and writes no
 * results, whether the lock fails when the bench starts or when it saves its first method.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/grid.h"
#include "bench/resdir.h"
#include "tests/testutil.h"

static int flock_calls, flock_fail_at, flock_errno; /* fail the flock_fail_at-th call (1-based) */

int flock(int fd, int op) {
    if (flock_fail_at && ++flock_calls == flock_fail_at) {
        errno = flock_errno;
        return -1;
    }
    return (int)syscall(SYS_flock, fd, op);
}

static void inject(int at, int e) {
    flock_calls = 0;
    flock_fail_at = at;
    flock_errno = e;
}

static void assert_one_line_naming(const tt_err *e, const char *dir, const char *phrase) {
    cr_assert(strchr(e->msg, '\n') == NULL, "not one line: %s", e->msg);
    cr_assert(strstr(e->msg, dir) != NULL, "does not name %s: %s", dir, e->msg);
    cr_assert(strstr(e->msg, phrase) != NULL, "does not say '%s': %s", phrase, e->msg);
}

static char *dup_tmpdir(const char *tag) {
    char *d = strdup(tu_tmpdir(tag));
    cr_assert(d != NULL);
    return d;
}

Test(resdir, lock_is_exclusive_across_processes) {
    char *dir = dup_tmpdir("resdir-excl");
    inject(0, 0);
    int fd;
    tt_err e = {0};
    cr_assert_eq(resdir_lock(dir, &fd, &e), 0, "%s", e.msg);
    pid_t pid = fork();
    if (pid == 0) { /* another process: the lock is held */
        char p[1200];
        snprintf(p, sizeof p, "%s/.lock", dir);
        int f = open(p, O_RDWR);
        _exit(f >= 0 && syscall(SYS_flock, f, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK ? 0 : 1);
    }
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "another process could take the lock while it was held");
    resdir_unlock(fd);
    cr_assert_eq(resdir_lock(dir, &fd, &e), 0, "the lock cannot be taken again after unlock: %s", e.msg);
    resdir_unlock(fd);
    tu_rm_tree(dir);
    free(dir);
}

Test(resdir, filesystem_without_locks_is_one_line_naming_the_directory) {
    char *dir = dup_tmpdir("resdir-nolock");
    const int errs[] = {ENOLCK, EOPNOTSUPP, EINVAL};
    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++) {
        inject(1, errs[i]);
        int fd = 123;
        tt_err e = {0};
        cr_assert_eq(resdir_lock(dir, &fd, &e), -1, "flock failing with %s was not an error", strerror(errs[i]));
        cr_assert_eq(fd, -1);
        cr_assert_eq(e.code, TT_EIO);
        cr_assert_eq(tt_exit_status(&e), 2);
        assert_one_line_naming(&e, dir, strerror(errs[i]));
        assert_one_line_naming(&e, dir, "cannot lock the results directory");
    }
    inject(0, 0);
    tu_rm_tree(dir);
    free(dir);
}

Test(resdir, interrupted_wait_is_retried) {
    char *dir = dup_tmpdir("resdir-eintr");
    inject(1, EINTR); /* the first call is interrupted (Ctrl-C while waiting), the retry succeeds */
    int fd;
    tt_err e = {0};
    cr_assert_eq(resdir_lock(dir, &fd, &e), 0, "%s", e.msg);
    cr_assert_eq(flock_calls, 2);
    resdir_unlock(fd);
    inject(0, 0);
    tu_rm_tree(dir);
    free(dir);
}

/* A bench whose lock fails on the at-th flock call: -1, the one line, no results.csv. */
static void bench_with_lock_failing_at(int at, const char *tag) {
    const char *suite = getenv("TTMERGE_TINY_SUITE");
    cr_assert(suite != NULL, "TTMERGE_TINY_SUITE is not set (run under ctest)");
    char *dir = dup_tmpdir(tag);
    char out[1200], path[1300];
    snprintf(out, sizeof out, "%s/results", dir);
    grid_opts o = {.suite_dir = suite, .out_dir = out, .methods = "zeroshot", .seed = 0, .threads = 1,
                   .keep_models = false, .quiet = true};
    tt_err e = {0};
    int failed = 0;
    inject(at, ENOLCK);
    int rc = grid_run(&o, &failed, &e);
    inject(0, 0);
    cr_assert_eq(rc, -1, "the bench went on without its lock (flock call %d failed)", at);
    assert_one_line_naming(&e, out, "No locks available");
    snprintf(path, sizeof path, "%s/results.csv", out);
    cr_assert_neq(access(path, F_OK), 0, "results.csv was written without the lock");
    snprintf(path, sizeof path, "%s/rows", out);
    cr_assert_neq(access(path, F_OK), 0, "rows/ left behind");
    tu_rm_tree(dir);
    free(dir);
}

Test(resdir, bench_stops_when_the_lock_fails_at_start) { bench_with_lock_failing_at(1, "resdir-bench-start"); }

/* flock calls of a one-method bench: 1 open the directory, 2 resume check, 3 save the method */
Test(resdir, bench_stops_when_the_lock_fails_at_save) { bench_with_lock_failing_at(3, "resdir-bench-save"); }
