/* resdir.c — see resdir.h. */
#include "bench/resdir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "reports/results.h"

int resdir_lock(const char *dir, int *fd, tt_err *err) {
    char path[1200];
    snprintf(path, sizeof path, "%s/.lock", dir);
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (*fd < 0)
        return tt_fail(err, TT_EIO, "%s: cannot open the results directory's lock file .lock: %s", dir, strerror(errno));
    int rc;
    while ((rc = flock(*fd, LOCK_EX)) != 0 && errno == EINTR) {}
    if (rc) {
        int e = errno;
        close(*fd);
        *fd = -1;
        return tt_fail(err, TT_EIO,
                       "%s: cannot lock the results directory (flock on .lock: %s); without the lock concurrent "
                       "benches could lose rows: use a directory on a filesystem with locks",
                       dir, strerror(e));
    }
    return 0;
}

void resdir_unlock(int fd) {
    if (fd < 0) return;
    flock(fd, LOCK_UN);
    close(fd);
}

/* The "name" and "seed" of a suite.json; *seed = -1 when absent. 0, or -1 when the file is
 * missing or unreadable (not an error here: the caller decides). */
static int manifest_identity(const char *path, char *name, size_t cap, long long *seed) {
    json_t *root = json_load_file(path, 0, NULL);
    if (!root) return -1;
    const char *n = json_string_value(json_object_get(root, "name"));
    json_t *s = json_object_get(root, "seed");
    *seed = json_is_integer(s) ? (long long)json_integer_value(s) : -1;
    int rc = n ? 0 : -1;
    if (n) snprintf(name, cap, "%s", n);
    json_decref(root);
    return rc;
}

int resdir_check_suite(const char *dir, const char *suite_dir, const char *suite_name, bool fresh, tt_err *err) {
    char path[1200], theirs[256] = "", ours[256];
    long long their_seed = -1, our_seed = -1;
    const char *where = NULL;
    snprintf(path, sizeof path, "%s/results.csv", dir);
    if (access(path, F_OK) == 0) {
        results_table t = {0};
        tt_err ignored = {0};
        if (results_read(path, &t, fresh ? &ignored : err) && !fresh) return -1;
        for (size_t i = 0; i < t.n && !where; i++)
            if (strcmp(t.rows[i].suite, suite_name)) {
                results_printable(theirs, sizeof theirs, t.rows[i].suite);
                where = "results.csv";
            }
        results_free(&t);
    }
    snprintf(path, sizeof path, "%s/suite.json", dir);
    char dir_name[256];
    long long dir_seed;
    if (!where && manifest_identity(path, dir_name, sizeof dir_name, &dir_seed) == 0) {
        snprintf(path, sizeof path, "%s/suite.json", suite_dir);
        if (manifest_identity(path, ours, sizeof ours, &our_seed)) our_seed = -1;
        if (strcmp(dir_name, suite_name) ||
            (dir_seed >= 0 && our_seed >= 0 && dir_seed != our_seed)) { /* same name, another build */
            results_printable(theirs, sizeof theirs, dir_name);
            their_seed = dir_seed;
            where = "suite.json";
        }
    }
    if (!where) return 0;
    if (!strcmp(theirs, suite_name))
        return tt_fail(err, TT_EINPUT,
                       "%s holds results of suite '%s' built with seed %lld (%s); %s is suite '%s' built with seed %lld: "
                       "one results directory holds one suite (use another --out)",
                       dir, theirs, their_seed, where, suite_dir, suite_name, our_seed);
    return tt_fail(err, TT_EINPUT,
                   "%s holds results of suite '%s' (%s); %s is suite '%s': one results directory holds one suite "
                   "(use another --out)",
                   dir, theirs, where, suite_dir, suite_name);
}

/* Remove the files in PATH (a work directory: flat), then PATH. */
static void remove_flat_dir(const char *path) {
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        char f[1600];
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                snprintf(f, sizeof f, "%s/%s", path, e->d_name);
                remove(f);
            }
        closedir(d);
    }
    rmdir(path);
}

int resdir_open_work(const char *dir, char *work, size_t cap, tt_err *err) {
    char rows[1200];
    snprintf(rows, sizeof rows, "%s/rows", dir);
    if (mkdir(rows, 0755) && errno != EEXIST) return tt_fail(err, TT_EIO, "%s: cannot create: %s", rows, strerror(errno));
    DIR *d = opendir(rows);
    if (d) { /* rows/<pid>/ of a bench that was killed: its method processes died with it */
        struct dirent *e;
        while ((e = readdir(d))) {
            char *end;
            long pid = strtol(e->d_name, &end, 10);
            if (*end || pid <= 0 || pid == (long)getpid()) continue;
            if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
            char p[1600];
            snprintf(p, sizeof p, "%s/%s", rows, e->d_name);
            remove_flat_dir(p);
        }
        closedir(d);
    }
    snprintf(work, cap, "%s/%ld", rows, (long)getpid());
    if (mkdir(work, 0755) && errno != EEXIST) return tt_fail(err, TT_EIO, "%s: cannot create: %s", work, strerror(errno));
    return 0;
}

void resdir_close_work(const char *dir, const char *work) {
    char rows[1200];
    remove_flat_dir(work);
    snprintf(rows, sizeof rows, "%s/rows", dir);
    rmdir(rows); /* fails, as it should, while another bench has its work directory there */
}
