/* grid.c — see grid.h. */
#include "bench/grid.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "baselines/merge.h"
#include "bench/registry.h"
#include "bench/resdir.h"
#include "core/fileio.h"
#include "core/par.h"
#include "core/progress.h"
#include "core/threads.h"
#include "core/version.h"
#include "data/suite_build.h"
#include "reports/predictions.h"
#include "reports/results.h"
#include "reports/stats.h"

const char *const grid_all_methods[] = {"zeroshot", "individual", "ta", "ties", "consensus-ta", "consensus-ties",
                                        "tatr", "dare", "lata", "awd", "graft", "adamerging-task", "adamerging",
                                        "adamerging++", "awd-adamerging", "tinting", "tsv-m", "iso-c", "iso-cts", "fisher",
                                        "regmean", "wudi", "cart", "pcb", "emr", "surgery", NULL};

/* The methods whose result depends on the seed (ctx->seed): DARE's drop masks, graft's initial
 * shots, the training images Fisher and RegMean draw, the test-time learners' batch and task order
 * (adamerge/adapt.c), surgery's initial maps and batches. `bench --seeds` repeats
 * only these; the others give the same bits for every seed. */
const char *const grid_seeded_methods[] = {"dare", "graft", "fisher", "regmean", "adamerging-task", "adamerging",
                                           "adamerging++", "awd-adamerging", "tinting", "surgery", NULL};

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

/* ---- the child: run one method, evaluate, write rows/<pid>/<method>.csv ---- */

typedef struct child_out {
    double seconds;
    double acc[MERGE_MAX_TASKS];
    char params[4096];
    double load_s, eval_s, save_s; /* phases besides the method run (seconds) */
    predictions pred;              /* which test examples each task got right */
} child_out;

/* Keep task t's per-example correctness from its test logits (the argmax rule of infer_accuracy:
 * the first of equal maxima), so that predictions/<method>.bits reproduces the accuracy exactly. */
static int keep_predictions(child_out *co, const suite_task_info *ti, int t, const float *logits, tt_err *err) {
    uint8_t *correct = malloc((size_t)(ti->test.n ? ti->test.n : 1));
    if (!correct) return tt_fail(err, TT_ENOMEM, "out of memory");
    for (int i = 0; i < ti->test.n; i++) {
        const float *z = logits + (size_t)i * ti->classes;
        int best = 0;
        for (int c = 1; c < ti->classes; c++)
            if (z[c] > z[best]) best = c;
        correct[i] = best == ti->test.labels[i];
    }
    int rc = predictions_task_set(&co->pred.tasks[t], ti->name, correct, (uint32_t)ti->test.n, err);
    free(correct);
    return rc;
}

static int eval_individual(const suite *s, child_out *co, tt_err *err) {
    dnn *d;
    infer_ctx ic = {0};
    int rc = -1;
    if (dnn_create(&d, err)) return -1;
    if (infer_init(&ic, d, &s->cfg, INFER_BATCH, err)) goto done;
    double t0 = progress_now();
    for (int t = 0; t < s->n_tasks; t++) {
        const suite_task_info *ti = &s->tasks[t];
        ckpt_vit m;
        vit_weights w;
        float *logits = malloc((size_t)ti->test.n * ti->classes * sizeof(float));
        double tl = progress_now();
        if (!logits || ckpt_load_vit(&m, ti->finetuned, err)) {
            free(logits);
            if (!logits) tt_fail(err, TT_ENOMEM, "out of memory");
            goto done;
        }
        double te = progress_now();
        co->load_s += te - tl;
        int lrc = vit_weights_bind(&w, &m.lay, m.params, NULL, err) ||
                  infer_logits(&ic, &w, ti->head.W, ti->head.b, ti->classes, ti->test.pixels, ti->test.n, &s->norm, logits, err);
        co->eval_s += progress_now() - te;
        if (!lrc) co->acc[t] = infer_accuracy(logits, ti->test.labels, ti->test.n, ti->classes);
        if (!lrc) lrc = keep_predictions(co, ti, t, logits, err);
        vit_weights_free(&w);
        ckpt_vit_free(&m);
        free(logits);
        if (lrc) goto done;
    }
    co->seconds = progress_now() - t0; /* the reference row's "method" is loading + evaluating the experts */
    snprintf(co->params, sizeof co->params, "{}");
    rc = 0;
done:
    infer_free(&ic);
    dnn_free(d);
    return rc;
}

static int run_method(const grid_opts *o, const suite *s, const char *name, child_out *co, tt_err *err) {
    if (!strcmp(name, "individual")) return eval_individual(s, co, err);
    const merge_method *m = merge_find(name);
    if (!m) return tt_fail(err, TT_EINPUT, "unknown method '%s'", name);
    /* this method's overrides: "name.key=value" -> "key=value" */
    const char *sets[64];
    int n = 0;
    size_t len = strlen(name);
    for (int i = 0; i < o->n_sets && n < 64; i++)
        if (!strncmp(o->sets[i], name, len) && o->sets[i][len] == '.') sets[n++] = o->sets[i] + len + 1;
    merge_ctx ctx;
    double t0 = progress_now();
    if (merge_ctx_open(&ctx, s, m, sets, n, o->seed, err)) return -1;
    ctx.find_method = merge_find;
    co->load_s = progress_now() - t0;
    /* models/<method>.safetensors: one ttmerge file whatever θ0's format (an imported suite's may be
     * Hugging Face or open_clip), which also holds the task-specific tensors of the learners */
    ctx.out_format = CM_TTMERGE;
    ctx.progress = o->progress;
    ctx.quiet = true;
    snprintf(ctx.curve_csv, sizeof ctx.curve_csv, "%s/curves/%s.csv", o->out_dir, name);
    t0 = progress_now();
    int rc = m->run(&ctx, err);
    co->seconds = progress_now() - t0;
    char path[1200];
    snprintf(path, sizeof path, "%s/models/%s.safetensors", o->out_dir, name);
    t0 = progress_now();
    if (!rc && o->keep_models) rc = merge_ctx_save(&ctx, m, path, err);
    co->save_s = progress_now() - t0;
    merge_eval ev;
    t0 = progress_now();
    if (!rc && !(rc = merge_eval_init(&ev, &ctx, err))) { /* with the tints the method stored */
        for (int t = 0; t < s->n_tasks && !rc; t++) {
            co->acc[t] = merge_eval_task(&ev, &ctx, t, true); /* leaves the test logits in ev.logits */
            rc = keep_predictions(co, &s->tasks[t], t, ev.logits, err);
        }
        merge_eval_free(&ev);
    }
    co->eval_s = progress_now() - t0;
    char *pj = merge_params_json(&ctx);
    snprintf(co->params, sizeof co->params, "%s", pj ? pj : "{}");
    free(pj);
    merge_ctx_close(&ctx);
    return rc;
}

static void fill_rows(const grid_opts *o, const suite *s, const char *method, const child_out *co, bool ok,
                      const char *error, double rss_mb, results_row *rows) {
    for (int t = 0; t < s->n_tasks; t++) {
        const suite_task_info *ti = &s->tasks[t];
        rows[t] = (results_row){
            .suite = (char *)s->name, .method = (char *)method, .params = (char *)(co ? co->params : "{}"),
            .task = (char *)ti->name, .accuracy = ok ? co->acc[t] : NAN, /* failed: empty, never a zero */
            .normalized_accuracy = ok && ti->finetuned_test > 0 ? 100.0 * co->acc[t] / ti->finetuned_test : NAN,
            .seconds = co ? co->seconds : NAN, .peak_rss_mb = rss_mb, .git_revision = (char *)ttmerge_git_rev(),
            .threads = o->threads, .seed = o->seed, .status = ok ? RESULTS_OK : RESULTS_FAILED,
            .error = (char *)(error ? error : "")};
    }
}

/* The child process: exit 0 after writing WORK/<method>.csv (rows with unknown RSS) and
 * WORK/<method>.tim, else write the error to WORK/<method>.err and exit 2. WORK is the bench's
 * own rows/<pid>/ (resdir.h). */
static void child_main(const grid_opts *o, const suite *s, const char *method, pid_t parent, const char *work) {
    signal(SIGINT, SIG_IGN); /* Ctrl-C: the parent lets the running method finish */
    par_detach();            /* the method runs alone: its parent's MPI state is not the child's */
    /* A bench killed outright (SIGKILL, the OOM killer) takes its running method with it: an
     * orphan would go on writing rows/, curves/ and models/ while a rerun resumes there. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) _exit(3);
    child_out co;
    memset(&co, 0, sizeof co);
    tt_err e = {0};
    char path[1200];
    co.pred = (predictions){.suite = (char *)s->name, .method = (char *)method, .seed = o->seed, .n_tasks = s->n_tasks,
                            .tasks = calloc((size_t)s->n_tasks, sizeof(predictions_task))};
    int rc = co.pred.tasks ? tt_threads_start(&e) : tt_fail(&e, TT_ENOMEM, "out of memory");
    /* tt_threads_start here, not in the parent: libgomp's pool does not survive fork */
    if (!rc) rc = run_method(o, s, method, &co, &e);
    if (rc) {
        snprintf(path, sizeof path, "%s/%s.err", work, method);
        fio_write_all(path, e.msg, strlen(e.msg), NULL);
        _exit(2);
    }
    char tim[160];
    /* the reference row `individual` merges nothing: its seconds are loading + evaluating the experts */
    int tn = snprintf(tim, sizeof tim, "%.6f,%.6f,%.6f,%.6f\n", co.load_s, strcmp(method, "individual") ? co.seconds : 0.0,
                      co.eval_s, co.save_s);
    snprintf(path, sizeof path, "%s/%s.tim", work, method);
    if (fio_write_all(path, tim, (size_t)tn, &e)) _exit(3);
    snprintf(path, sizeof path, "%s/%s.bits", work, method);
    if (predictions_write(path, &co.pred, &e)) _exit(3);
    results_table t = {0};
    results_row rows[MERGE_MAX_TASKS];
    fill_rows(o, s, method, &co, true, NULL, NAN, rows);
    for (int i = 0; i < s->n_tasks; i++)
        if (results_append_row(&t, &rows[i], &e)) _exit(3);
    snprintf(path, sizeof path, "%s/%s.csv", work, method);
    _exit(results_write(path, &t, &e) ? 3 : 0);
}

/* ---- the parent ---- */

/* timings.csv: one row per method (and one "(suite)" row for opening the suite), see grid.h */
typedef struct timing_row {
    char method[64];
    bool ok;
    double load_s, merge_s, eval_s, save_s, total_s, rss_mb; /* NAN = unknown */
} timing_row;

typedef struct timing_table {
    timing_row rows[72];
    int n;
} timing_table;

static void timing_upsert(timing_table *tt, const timing_row *r) {
    for (int i = 0; i < tt->n; i++)
        if (!strcmp(tt->rows[i].method, r->method)) {
            tt->rows[i] = *r;
            return;
        }
    if (tt->n < (int)(sizeof tt->rows / sizeof tt->rows[0])) tt->rows[tt->n++] = *r;
}

static void fmt_s(char *buf, size_t n, double v) {
    if (isnan(v)) buf[0] = 0;
    else snprintf(buf, n, "%.3f", v);
}

static int timing_write(const char *path, const char *suite_name, const timing_table *tt, tt_err *err) {
    fio_file f;
    if (fio_open_atomic(&f, path, err)) return -1;
    fprintf(f.fp, "suite,method,status,load_s,merge_s,eval_s,save_s,total_s,peak_rss_mb\n");
    for (int i = 0; i < tt->n; i++) {
        const timing_row *r = &tt->rows[i];
        char v[6][32];
        fmt_s(v[0], 32, r->load_s), fmt_s(v[1], 32, r->merge_s), fmt_s(v[2], 32, r->eval_s);
        fmt_s(v[3], 32, r->save_s), fmt_s(v[4], 32, r->total_s);
        if (isnan(r->rss_mb)) v[5][0] = 0;
        else snprintf(v[5], 32, "%.1f", r->rss_mb);
        fprintf(f.fp, "%s,%s,%s,%s,%s,%s,%s,%s,%s\n", suite_name, r->method, r->ok ? "ok" : "failed", v[0], v[1], v[2],
                v[3], v[4], v[5]);
    }
    return fio_commit(&f, err);
}

/* The rows of an earlier timings.csv (resume). Timings are informational: a file that does not
 * parse is dropped with a warning, not an error. */
static void timing_read(const char *path, timing_table *tt, bool quiet) {
    FILE *f = fopen(path, "r");
    if (!f) return;
    char line[512];
    int ln = 0;
    bool bad = false;
    while (fgets(line, sizeof line, f)) {
        if (ln++ == 0) continue; /* header */
        line[strcspn(line, "\r\n")] = 0;
        char *field[9];
        int nf = 0;
        for (char *p = line, *q; nf < 9; p = q + 1) {
            field[nf++] = p;
            if (!(q = strchr(p, ','))) break;
            *q = 0;
        }
        if (nf != 9 || strlen(field[1]) >= sizeof tt->rows[0].method) {
            bad = true;
            break;
        }
        timing_row r = {.ok = !strcmp(field[2], "ok")};
        snprintf(r.method, sizeof r.method, "%s", field[1]);
        double *vals[6] = {&r.load_s, &r.merge_s, &r.eval_s, &r.save_s, &r.total_s, &r.rss_mb};
        for (int k = 0; k < 6; k++) *vals[k] = field[3 + k][0] ? strtod(field[3 + k], NULL) : NAN;
        timing_upsert(tt, &r);
    }
    fclose(f);
    if (bad) {
        tt->n = 0;
        if (!quiet) fprintf(stderr, "bench: %s: not a timings file; starting it over\n", path);
    }
}

static bool finished(const results_table *t, const char *suite_name, const char *method, int n_tasks) {
    int ok = 0;
    for (size_t i = 0; i < t->n; i++)
        if (!strcmp(t->rows[i].suite, suite_name) && !strcmp(t->rows[i].method, method) && t->rows[i].status == RESULTS_OK)
            ok++;
    return ok >= n_tasks;
}

/* Resume: is the method done in results.csv as it is now (read under the lock: another bench
 * may have finished it since this one started)? */
static int already_done(const grid_opts *o, const suite *s, const char *method, bool *done, tt_err *err) {
    char path[1200];
    int fd;
    *done = false;
    if (resdir_lock(o->out_dir, &fd, err)) return -1;
    snprintf(path, sizeof path, "%s/results.csv", o->out_dir);
    results_table t = {0};
    int rc = access(path, F_OK) == 0 ? results_read(path, &t, err) : 0;
    if (!rc) *done = finished(&t, s->name, method, s->n_tasks);
    results_free(&t);
    resdir_unlock(fd);
    return rc;
}

/* Under the lock, with the method's rows: its predictions (the child's WORK/<method>.bits) move to
 * predictions/<method>.bits, so that the rows and the predictions another bench reads always come
 * from the same run; a failed method leaves no predictions of an earlier run. */
static int hand_over_predictions(const grid_opts *o, const char *work, const char *method, bool ok, tt_err *err) {
    char bits[1400], kept[1200];
    snprintf(bits, sizeof bits, "%s/%s.bits", work, method);
    snprintf(kept, sizeof kept, "%s/predictions/%s.bits", o->out_dir, method);
    if (!ok) {
        remove(bits);
        remove(kept);
        return 0;
    }
    if (rename(bits, kept) != 0) return tt_fail(err, TT_EIO, "%s: rename failed: %s", kept, strerror(errno));
    return 0;
}

/* This bench's news — one method's rows (n may be 0) and timing rows — merged into the files
 * under the lock: re-read results.csv and timings.csv as other benches left them, upsert, rewrite
 * all three atomically. *start_over (--fresh, until the first save) starts from empty tables
 * instead. Two benches saving the same method: the later save's rows replace the earlier ones,
 * all tasks together (results_upsert), so a method's rows always come from one run. */
static int save_merged(const grid_opts *o, const char *suite_name, const char *work, const char *method, bool ok,
                       const results_row *rows, size_t n, const timing_row *timing, int n_timing, bool *start_over,
                       tt_err *err) {
    char path[1200];
    int fd;
    if (resdir_lock(o->out_dir, &fd, err)) return -1;
    if (method && hand_over_predictions(o, work, method, ok, err)) {
        resdir_unlock(fd);
        return -1;
    }
    results_table t = {0};
    timing_table *tt = calloc(1, sizeof *tt);
    int rc = -1;
    if (!tt) {
        tt_fail(err, TT_ENOMEM, "out of memory");
        goto done;
    }
    snprintf(path, sizeof path, "%s/results.csv", o->out_dir);
    if (!*start_over && access(path, F_OK) == 0 && results_read(path, &t, err)) goto done;
    if (n && results_upsert(&t, rows, n, err)) goto done;
    /* leaderboard.csv with intervals and stats.csv (reports/stats.h) first: results.csv, the record
     * a resume reads, is written last */
    stats_opts so = stats_defaults();
    if (stats_dir_write(o->out_dir, &t, suite_name, &so, err)) goto done;
    snprintf(path, sizeof path, "%s/results.csv", o->out_dir);
    if (results_write(path, &t, err)) goto done;
    snprintf(path, sizeof path, "%s/timings.csv", o->out_dir);
    if (!*start_over) timing_read(path, tt, o->quiet);
    for (int i = 0; i < n_timing; i++) timing_upsert(tt, &timing[i]);
    if (timing_write(path, suite_name, tt, err)) goto done;
    *start_over = false;
    rc = 0;
done:
    free(tt);
    results_free(&t);
    resdir_unlock(fd);
    return rc;
}

static void collect_timing(const grid_opts *o, const char *work, const char *method, bool ok, double rss, double total,
                           timing_row *r) {
    char path[1200], *text = NULL;
    size_t n;
    *r = (timing_row){.ok = ok, .load_s = NAN, .merge_s = NAN, .eval_s = NAN, .save_s = NAN, .total_s = total, .rss_mb = rss};
    snprintf(r->method, sizeof r->method, "%s", method);
    snprintf(path, sizeof path, "%s/%s.tim", work, method);
    if (ok && fio_read_all(path, &text, &n, 1000, NULL) == 0 &&
        sscanf(text, "%lf,%lf,%lf,%lf", &r->load_s, &r->merge_s, &r->eval_s, &r->save_s) != 4)
        r->load_s = r->merge_s = r->eval_s = r->save_s = NAN;
    free(text);
    remove(path);
    if (!o->keep_models) r->save_s = NAN;
}

/* The method's rows into *part (the child's, with the peak RSS; or failed rows carrying the
 * child's error). *avg = mean accuracy, or -1 when the method failed. */
static int collect(const grid_opts *o, const suite *s, const char *work, const char *method, int status,
                   const struct rusage *ru, results_table *part, double *avg, tt_err *err) {
    char path[1200], msg[600] = "";
    double rss = (double)ru->ru_maxrss / 1024.0;
    snprintf(path, sizeof path, "%s/%s.csv", work, method);
    bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && results_read(path, part, err) == 0;
    remove(path);
    if (ok) {
        *avg = 0;
        for (size_t i = 0; i < part->n; i++) {
            part->rows[i].peak_rss_mb = rss;
            *avg += part->rows[i].accuracy / (double)part->n;
        }
        return 0;
    }
    results_free(part);
    snprintf(path, sizeof path, "%s/%s.err", work, method);
    char *text = NULL;
    size_t n;
    if (fio_read_all(path, &text, &n, 500, NULL) == 0) snprintf(msg, sizeof msg, "%s", text);
    else if (WIFSIGNALED(status)) snprintf(msg, sizeof msg, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else snprintf(msg, sizeof msg, "exited with status %d", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    free(text);
    remove(path);
    for (char *c = msg; *c; c++)
        if (*c == '\n' || *c == '\r') *c = ' ';
    results_row rows[MERGE_MAX_TASKS];
    fill_rows(o, s, method, NULL, false, msg, rss, rows);
    *avg = -1;
    for (int t = 0; t < s->n_tasks; t++)
        if (results_append_row(part, &rows[t], err)) return -1;
    return 0;
}

static int parse_methods(const char *spec, const char **list, int cap, char *buf, size_t bufsz, tt_err *err) {
    int n = 0;
    if (!strcmp(spec, "all")) {
        for (int i = 0; grid_all_methods[i] && n < cap; i++)
            if (!strcmp(grid_all_methods[i], "individual") || merge_find(grid_all_methods[i])) list[n++] = grid_all_methods[i];
        return n;
    }
    snprintf(buf, bufsz, "%s", spec);
    for (char *tok = strtok(buf, ","); tok && n < cap; tok = strtok(NULL, ",")) {
        if (strcmp(tok, "individual") && !merge_find(tok))
            return tt_fail(err, TT_EINPUT, "--methods: unknown method '%s' (see ttmerge merge --list)", tok);
        list[n++] = tok;
    }
    if (!n) return tt_fail(err, TT_EINPUT, "--methods: empty list");
    return n;
}

/* Under the lock: claim the directory for this suite (or refuse it), create curves/, models/ and
 * this bench's rows/<pid>/, and copy the suite's manifest (the report reads it from here). */
static int open_results_dir(const grid_opts *o, const suite *s, char *work, size_t cap, tt_err *err) {
    char path[1200];
    int fd;
    if (suite_mkdirs(o->out_dir, err) || resdir_lock(o->out_dir, &fd, err)) return -1;
    int rc = -1;
    if (resdir_check_suite(o->out_dir, o->suite_dir, s->name, o->fresh, err)) goto done;
    const char *subdirs[] = {"/curves", "/models", "/predictions"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s%s", o->out_dir, subdirs[i]);
        if (suite_mkdirs(path, err)) goto done;
    }
    if (resdir_open_work(o->out_dir, work, cap, err)) goto done;
    char src[1200], *text = NULL;
    size_t len;
    snprintf(src, sizeof src, "%s/suite.json", o->suite_dir);
    snprintf(path, sizeof path, "%s/suite.json", o->out_dir);
    rc = fio_read_all(src, &text, &len, 64 << 20, err) || fio_write_all(path, text, len, err) ? -1 : 0;
    free(text);
done:
    resdir_unlock(fd);
    return rc;
}

static void close_results_dir(const grid_opts *o, const char *work) {
    int fd;
    tt_err e = {0};
    if (resdir_lock(o->out_dir, &fd, &e)) return; /* rows/<pid>/ stays; the next bench removes it */
    resdir_close_work(o->out_dir, work);
    resdir_unlock(fd);
}

/* Start method `name` in a forked child writing into work/ (child_main); -1 when fork fails. */
static pid_t start_child(const grid_opts *o, const suite *s, const char *name, const char *work, tt_err *err) {
    fflush(NULL);
    pid_t parent = getpid(), pid = fork();
    if (pid < 0) {
        tt_fail(err, TT_EIO, "fork failed: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) child_main(o, s, name, parent, work);
    return pid;
}

typedef struct grid_tally {
    int n, ran, failed;
    double t_start;
} grid_tally;

/* A finished child's outcome (exit status, peak RSS in KiB, wall seconds; its files in work/)
 * into the results directory, and one progress line. */
static int record_method(const grid_opts *o, const suite *s, const char *work, const char *method, int i, int status,
                         long maxrss_kb, double total_s, const timing_row *suite_timing, bool *start_over,
                         grid_tally *g, tt_err *err) {
    struct rusage ru = {.ru_maxrss = maxrss_kb};
    double avg;
    results_table part = {0};
    timing_row tims[2] = {*suite_timing};
    if (collect(o, s, work, method, status, &ru, &part, &avg, err)) {
        results_free(&part);
        return -1;
    }
    collect_timing(o, work, method, avg >= 0, (double)maxrss_kb / 1024.0, total_s, &tims[1]);
    int src = save_merged(o, s->name, work, method, avg >= 0, part.rows, part.n, tims, 2, start_over, err);
    results_free(&part);
    if (src) return -1;
    g->ran++;
    double el = progress_now() - g->t_start, eta = el / g->ran * (g->n - g->ran);
    if (avg < 0) g->failed++;
    if (!o->quiet) {
        if (avg >= 0)
            fprintf(stderr, "bench: [%d/%d] %-16s avg %6.2f%%  %7.1fs  (elapsed %.0fs, ETA %.0fs)\n", i + 1, g->n, method,
                    avg, total_s, el, eta);
        else
            fprintf(stderr, "bench: [%d/%d] %-16s FAILED (see results.csv)\n", i + 1, g->n, method);
    }
    return 0;
}

/* ---- the grid over MPI ranks (core/par.h) ----
 * Rank 0 keeps the queue of methods, runs methods itself too (a forked child, as alone), and is
 * the only rank that touches the results files. A worker rank asks for a method, runs it in a
 * forked child in a private work directory (mkdtemp under TMPDIR), and sends back the child's
 * exit status, peak RSS, wall time and its files (rows, timings, predictions, error); rank 0 puts
 * them in its own work directory and records them exactly as its own child's. Models and curves
 * are written by the children straight into RESULTS/ (a directory every rank can reach). */
enum { TAG_REPORT = 7101, TAG_JOB = 7102 };
static const char *const report_ext[] = {"csv", "tim", "bits", "err"};
#define N_REPORT_FILES 4

typedef struct job_report { /* the head of a worker's message; file bodies follow */
    int32_t method;         /* index into the method list; -1: ready, no result yet */
    int32_t status;
    int64_t maxrss_kb;
    double total_s;
    uint64_t len[N_REPORT_FILES];
} job_report;

/* A worker: ask, run, report, until rank 0 sends -1. */
static int work_for_lead(const grid_opts *o, const suite *s, tt_err *err) {
    const char *methods[64];
    char mbuf[2048], work[512];
    int n = parse_methods(o->methods, methods, 64, mbuf, sizeof mbuf, err);
    if (n < 0) return -1;
    const char *tmp = getenv("TMPDIR");
    snprintf(work, sizeof work, "%s/ttmerge-rank%d-XXXXXX", tmp && *tmp ? tmp : "/tmp", par_rank());
    if (!mkdtemp(work)) return tt_fail(err, TT_EIO, "%s: cannot create a work directory: %s", work, strerror(errno));
    par_barrier(); /* rank 0 has created RESULTS/ and its subdirectories */
    job_report rep = {.method = -1};
    char *msg = malloc(sizeof rep);
    size_t msg_len = sizeof rep;
    int rc = -1;
    if (!msg) {
        tt_fail(err, TT_ENOMEM, "out of memory");
        goto done;
    }
    memcpy(msg, &rep, sizeof rep);
    for (;;) {
        par_send(msg, msg_len, 0, TAG_REPORT);
        int32_t job;
        par_recv(&job, sizeof job, 0, TAG_JOB);
        if (job < 0 || job >= n) break;
        double t0 = progress_now();
        pid_t pid = start_child(o, s, methods[job], work, err);
        if (pid < 0) goto done;
        int status;
        struct rusage ru;
        while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR) {}
        rep = (job_report){.method = job, .status = status, .maxrss_kb = ru.ru_maxrss, .total_s = progress_now() - t0};
        char *body[N_REPORT_FILES] = {0};
        size_t total = sizeof rep;
        for (int f = 0; f < N_REPORT_FILES; f++) {
            char path[1200];
            size_t len = 0;
            snprintf(path, sizeof path, "%s/%s.%s", work, methods[job], report_ext[f]);
            if (fio_read_all(path, &body[f], &len, (size_t)64 << 20, NULL) == 0) rep.len[f] = len;
            remove(path);
            total += rep.len[f];
        }
        char *grown = realloc(msg, total);
        if (grown) {
            msg = grown;
            memcpy(msg, &rep, sizeof rep);
            size_t at = sizeof rep;
            for (int f = 0; f < N_REPORT_FILES; f++) {
                if (rep.len[f]) memcpy(msg + at, body[f], rep.len[f]);
                at += rep.len[f];
            }
            msg_len = total;
        }
        for (int f = 0; f < N_REPORT_FILES; f++) free(body[f]);
        if (!grown) {
            tt_fail(err, TT_ENOMEM, "out of memory");
            goto done;
        }
    }
    rc = 0;
done:
    free(msg);
    rmdir(work);
    return rc;
}

/* Rank 0: the next method of the queue that is not done yet (resume), or -1. */
static int next_method(const grid_opts *o, const suite *s, const char **methods, int n, int *next, tt_err *err) {
    while (*next < n && !interrupted) {
        int i = (*next)++;
        bool done_before = false;
        if (!o->fresh && already_done(o, s, methods[i], &done_before, err)) return -2;
        if (!done_before) return i;
        if (!o->quiet) fprintf(stderr, "bench: [%d/%d] %-16s already done (resume)\n", i + 1, n, methods[i]);
    }
    return -1;
}

/* Rank 0: a worker's report into work/ and the results directory. */
static int take_report(const grid_opts *o, const suite *s, const char **methods, int n, const char *work,
                       const char *msg, size_t len, const timing_row *suite_timing, bool *start_over, grid_tally *g,
                       tt_err *err) {
    job_report rep;
    if (len < sizeof rep) return tt_fail(err, TT_EINTERNAL, "a worker's report is too short");
    memcpy(&rep, msg, sizeof rep);
    if (rep.method < 0) return 0; /* ready: nothing ran yet */
    if (rep.method >= n) return tt_fail(err, TT_EINTERNAL, "a worker reported method %d of %d", rep.method, n);
    size_t at = sizeof rep;
    for (int f = 0; f < N_REPORT_FILES; f++) {
        if (rep.len[f] > len - at) return tt_fail(err, TT_EINTERNAL, "a worker's report is truncated");
        char path[1400];
        snprintf(path, sizeof path, "%s/%s.%s", work, methods[rep.method], report_ext[f]);
        if (rep.len[f] && fio_write_all(path, msg + at, rep.len[f], err)) return -1;
        at += rep.len[f];
    }
    return record_method(o, s, work, methods[rep.method], rep.method, rep.status, (long)rep.maxrss_kb, rep.total_s,
                         suite_timing, start_over, g, err);
}

/* Rank 0 with workers: hand out methods in list order to whichever rank is free (itself included),
 * record each as it finishes. */
static int lead_queue(const grid_opts *o, const suite *s, const char **methods, int n, const char *work,
                      const timing_row *suite_timing, bool *start_over, grid_tally *g, tt_err *err) {
    par_barrier(); /* the workers may start: RESULTS/ is ready */
    int next = 0, workers = par_size() - 1, mine = -1;
    pid_t child = -1;
    double t_mine = 0;
    while (workers > 0 || child > 0) {
        bool busy = false;
        if (child < 0) { /* rank 0's own share */
            int i = next_method(o, s, methods, n, &next, err);
            if (i == -2) return -1;
            if (i >= 0) {
                t_mine = progress_now();
                if ((child = start_child(o, s, methods[i], work, err)) < 0) return -1;
                mine = i;
                busy = true;
            }
        }
        int src;
        size_t len;
        if (workers > 0 && par_poll(TAG_REPORT, &src, &len)) {
            char *msg = malloc(len ? len : 1);
            if (!msg) return tt_fail(err, TT_ENOMEM, "out of memory");
            par_recv(msg, len, src, TAG_REPORT);
            int trc = take_report(o, s, methods, n, work, msg, len, suite_timing, start_over, g, err);
            free(msg);
            if (trc) return -1;
            int32_t job = next_method(o, s, methods, n, &next, err);
            if (job == -2) return -1;
            par_send(&job, sizeof job, src, TAG_JOB);
            if (job < 0) workers--;
            busy = true;
        }
        if (child > 0) {
            int status;
            struct rusage ru;
            pid_t w = wait4(child, &status, WNOHANG, &ru);
            if (w == child) {
                child = -1;
                if (record_method(o, s, work, methods[mine], mine, status, ru.ru_maxrss, progress_now() - t_mine,
                                  suite_timing, start_over, g, err))
                    return -1;
                busy = true;
            }
        }
        if (!busy) usleep(2000); /* 2 ms: polling costs nothing measurable next to a method */
    }
    return 0;
}

int grid_run(const grid_opts *o, int *n_failed, tt_err *err) {
    *n_failed = 0;
    const char *methods[64];
    char mbuf[2048], work[1300] = "";
    int n = parse_methods(o->methods, methods, 64, mbuf, sizeof mbuf, err);
    if (n < 0) return -1;
    suite s;
    double t_open = progress_now();
    if (suite_open(&s, o->suite_dir, o->mode, err)) return -1;
    t_open = progress_now() - t_open;
    timing_row suite_timing = {.method = "(suite)", .ok = true, .load_s = t_open, .merge_s = NAN, .eval_s = NAN,
                               .save_s = NAN, .total_s = t_open, .rss_mb = NAN};
    bool start_over = o->fresh;
    int rc = -1;
    /* refused before anything is written; checked again under the lock (a race with another suite) */
    if (par_rank() > 0) { /* a worker rank: methods from rank 0's queue, until it says stop */
        rc = work_for_lead(o, &s, err);
        goto done;
    }
    if (resdir_check_suite(o->out_dir, o->suite_dir, s.name, o->fresh, err) || open_results_dir(o, &s, work, sizeof work, err))
        goto done;
    interrupted = 0;
    struct sigaction sa = {.sa_handler = on_sigint}, old;
    sigaction(SIGINT, &sa, &old);
    grid_tally tally = {.n = n, .t_start = progress_now()};
    if (par_size() > 1) {
        if (lead_queue(o, &s, methods, n, work, &suite_timing, &start_over, &tally, err)) goto restore;
    } else {
        for (int i = 0; i < n && !interrupted; i++) {
            bool done_before = false;
            if (!o->fresh && already_done(o, &s, methods[i], &done_before, err)) goto restore;
            if (done_before) {
                if (!o->quiet) fprintf(stderr, "bench: [%d/%d] %-16s already done (resume)\n", i + 1, n, methods[i]);
                continue;
            }
            double t0 = progress_now();
            pid_t pid = start_child(o, &s, methods[i], work, err);
            if (pid < 0) goto restore;
            int status;
            struct rusage ru;
            while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR) {}
            if (record_method(o, &s, work, methods[i], i, status, ru.ru_maxrss, progress_now() - t0, &suite_timing,
                              &start_over, &tally, err))
                goto restore;
        }
    }
    *n_failed = tally.failed;
    if (interrupted && !o->quiet) fprintf(stderr, "bench: interrupted; finished methods are saved, rerun to resume\n");
    rc = save_merged(o, s.name, work, NULL, false, NULL, 0, &suite_timing, 1, &start_over, err);
restore:
    sigaction(SIGINT, &old, NULL);
done:
    if (work[0]) close_results_dir(o, work);
    suite_close(&s);
    if (par_size() > 1) { /* every rank returns rank 0's outcome (a failing rank ends the job: par.h) */
        if (rc) return rc; /* cli/main.c ends the job */
        int64_t outcome[2] = {rc, *n_failed};
        par_bcast(outcome, sizeof outcome, 0);
        *n_failed = (int)outcome[1];
        rc = (int)outcome[0];
    }
    return rc;
}
