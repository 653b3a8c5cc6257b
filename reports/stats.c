/* stats.c — see stats.h. */
#include "reports/stats.h"

#include <csv.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/rng.h"

stats_opts stats_defaults(void) {
    return (stats_opts){.ref = "ta", .resamples = STATS_DEFAULT_RESAMPLES, .seed = 0, .level = 0.95};
}

double stats_binomial_se(double acc_pct, double n) {
    if (!(n > 0)) return NAN;
    double p = acc_pct / 100.0;
    return 100.0 * sqrt(p * (1 - p) / n);
}

double stats_mcnemar_p(long b, long c) {
    long m = b + c, k = b < c ? b : c;
    if (m <= 0) return 1.0;
    /* P(X <= k), X ~ Binomial(m, 1/2), term by term in logs (m may be in the millions) */
    double lm = lgamma((double)m + 1), sum = 0;
    for (long i = 0; i <= k; i++) sum += exp(lm - lgamma((double)i + 1) - lgamma((double)(m - i) + 1) - (double)m * M_LN2);
    double p = 2 * sum;
    return p < 1 ? p : 1.0;
}

double stats_quantile(const double *v, int n, double q) {
    if (n <= 0) return NAN;
    double pos = q * (n - 1);
    int i = (int)floor(pos);
    if (i >= n - 1) return v[n - 1];
    if (i < 0) return v[0];
    return v[i] + (pos - i) * (v[i + 1] - v[i]);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* A resampled difference that is zero up to rounding is zero: the same count of right examples
 * must count as a tie (on the far side of 0 for the p-value, at 0 for the interval). */
static double snap(double d) { return fabs(d) < 1e-9 ? 0.0 : d; }

/* Percentile interval of v[n] (sorted in place). */
static void interval(double *v, int n, double level, double *lo, double *hi) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    *lo = stats_quantile(v, n, (1 - level) / 2);
    *hi = stats_quantile(v, n, 1 - (1 - level) / 2);
}

/* Two-sided bootstrap p-value of "the difference is 0" from the resampled differences d[n]. */
static double bootstrap_p(const double *d, int n) {
    long le = 0, ge = 0;
    for (int i = 0; i < n; i++) le += d[i] <= 0, ge += d[i] >= 0;
    double p = (2.0 * (double)(le < ge ? le : ge) + 1) / (n + 1);
    return p < 1 ? p : 1.0;
}

void stats_free(stats_board *b) {
    if (!b) return;
    for (int i = 0; i < b->n_methods && b->m; i++) free(b->m[i].task);
    free(b->m);
    free(b->tasks);
    memset(b, 0, sizeof *b);
}

static int same_tasks(const predictions *a, const predictions *b, tt_err *err) {
    if (a->n_tasks != b->n_tasks)
        return tt_fail(err, TT_EINPUT, "predictions of %s have %d tasks, those of %s %d", b->method, b->n_tasks, a->method,
                       a->n_tasks);
    for (int t = 0; t < a->n_tasks; t++)
        if (strcmp(a->tasks[t].name, b->tasks[t].name) || a->tasks[t].n != b->tasks[t].n)
            return tt_fail(err, TT_EINPUT, "predictions of %s: task %d is '%s' with %u examples, %s has '%s' with %u",
                           b->method, t + 1, b->tasks[t].name, b->tasks[t].n, a->method, a->tasks[t].name, a->tasks[t].n);
    return 0;
}

int stats_compute(const predictions *p, int n, const stats_opts *o, stats_board *out, tt_err *err) {
    memset(out, 0, sizeof *out);
    out->ref = -1;
    if (n < 1) return 0;
    if (o->resamples < 1 || o->resamples > STATS_MAX_RESAMPLES || !(o->level > 0 && o->level < 1))
        return tt_fail(err, TT_EINPUT, "stats: resamples must be in [1, %d] and the level in (0, 1)", STATS_MAX_RESAMPLES);
    for (int i = 1; i < n; i++)
        if (same_tasks(&p[0], &p[i], err)) return -1;
    const int K = p[0].n_tasks, M = n, B = o->resamples;
    for (int t = 0; t < K; t++)
        if (p[0].tasks[t].n == 0) return tt_fail(err, TT_EINPUT, "predictions: task '%s' has no examples", p[0].tasks[t].name);
    out->opts = *o;
    out->n_tasks = K;
    out->n_methods = M;
    for (int i = 0; o->ref && i < M; i++)
        if (!strcmp(p[i].method, o->ref)) out->ref = i;
    out->tasks = calloc((size_t)(unsigned)K, sizeof *out->tasks);
    out->m = calloc((size_t)(unsigned)M, sizeof *out->m);
    uint32_t max_n = 0;
    for (int t = 0; t < K; t++) max_n = p[0].tasks[t].n > max_n ? p[0].tasks[t].n : max_n;
    const size_t uM = (size_t)(unsigned)M, uK = (size_t)(unsigned)K, uB = (size_t)(unsigned)B;
    uint8_t *unpacked = malloc(uM * max_n);   /* one task of every method, a byte per example */
    uint32_t *idx = malloc((size_t)max_n * sizeof *idx); /* draws per example of one resample */
    double *acc = malloc(uB * uK * uM * sizeof *acc); /* resampled accuracy [b][t][m] */
    double *v = malloc(uB * sizeof *v), *d = malloc(uB * sizeof *d);
    if (!out->tasks || !out->m || !unpacked || !idx || !acc || !v || !d) goto oom;
    for (int i = 0; i < M; i++) {
        out->m[i].method = p[i].method;
        if (!(out->m[i].task = calloc((size_t)K, sizeof *out->m[i].task))) goto oom;
    }
    for (int t = 0; t < K; t++) {
        out->tasks[t] = p[0].tasks[t].name;
        const uint32_t nt = p[0].tasks[t].n;
        for (int i = 0; i < M; i++)
            for (uint32_t j = 0; j < nt; j++) unpacked[(size_t)i * max_n + j] = (uint8_t)predictions_bit(&p[i].tasks[t], j);
        /* one stream per task: adding a task or a method leaves the other tasks' draws alone */
        rng r;
        rng_init(&r, o->seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(t + 1)));
        for (int b = 0; b < B; b++) {
            /* how often each example was drawn, then one sequential dot product per method */
            memset(idx, 0, (size_t)nt * sizeof *idx);
            for (uint32_t j = 0; j < nt; j++) idx[rng_below(&r, nt)]++;
            for (int i = 0; i < M; i++) {
                const uint8_t *u = unpacked + (size_t)i * max_n;
                uint32_t c = 0;
                for (uint32_t j = 0; j < nt; j++) c += idx[j] * u[j];
                acc[((size_t)b * K + t) * M + i] = 100.0 * (double)c / nt;
            }
        }
    }
    const int R = out->ref;
    for (int i = 0; i < M; i++) {
        stats_method *sm = &out->m[i];
        double se2 = 0, sum_acc = 0;
        for (int t = 0; t < K; t++) {
            stats_cell *c = &sm->task[t];
            const predictions_task *pt = &p[i].tasks[t];
            c->n = pt->n;
            c->acc = 100.0 * (double)predictions_correct(pt) / pt->n;
            c->se = stats_binomial_se(c->acc, pt->n);
            se2 += c->se * c->se;
            sum_acc += c->acc;
            for (int b = 0; b < B; b++) v[b] = acc[((size_t)b * K + t) * M + i];
            interval(v, B, o->level, &c->ci_low, &c->ci_high);
            c->diff = c->diff_low = c->diff_high = c->p = NAN;
            if (R >= 0) {
                const predictions_task *rt = &p[R].tasks[t];
                long only_m = 0, only_r = 0;
                for (uint32_t j = 0; j < pt->n; j++) {
                    int a = predictions_bit(pt, j), z = predictions_bit(rt, j);
                    only_m += a && !z, only_r += z && !a;
                }
                c->diff = 100.0 * (double)(only_m - only_r) / pt->n;
                for (int b = 0; b < B; b++) d[b] = snap(acc[((size_t)b * K + t) * M + i] - acc[((size_t)b * K + t) * M + R]);
                interval(d, B, o->level, &c->diff_low, &c->diff_high);
                c->p = stats_mcnemar_p(only_m, only_r);
            }
            sm->avg.n += pt->n;
        }
        sm->avg.acc = sum_acc / K;
        sm->avg.se = sqrt(se2) / K;
        for (int b = 0; b < B; b++) {
            double s = 0;
            for (int t = 0; t < K; t++) s += acc[((size_t)b * K + t) * M + i];
            v[b] = s / K;
        }
        interval(v, B, o->level, &sm->avg.ci_low, &sm->avg.ci_high);
        sm->avg.diff = sm->avg.diff_low = sm->avg.diff_high = sm->avg.p = NAN;
        if (R >= 0) {
            double s = 0;
            for (int t = 0; t < K; t++) s += sm->task[t].diff;
            sm->avg.diff = s / K;
            for (int b = 0; b < B; b++) {
                double sd = 0;
                for (int t = 0; t < K; t++) sd += acc[((size_t)b * K + t) * M + i] - acc[((size_t)b * K + t) * M + R];
                d[b] = snap(sd / K);
            }
            sm->avg.p = i == R ? 1.0 : bootstrap_p(d, B);
            interval(d, B, o->level, &sm->avg.diff_low, &sm->avg.diff_high);
        }
    }
    free(unpacked), free(idx), free(acc), free(v), free(d);
    return 0;
oom:
    free(unpacked), free(idx), free(acc), free(v), free(d);
    stats_free(out);
    return tt_fail(err, TT_ENOMEM, "stats: out of memory");
}

/* ---- a results directory ------------------------------------------------------------------ */

const char *const stats_leaderboard_columns[] = {"avg_se", "avg_ci_low", "avg_ci_high", "ref", "diff_vs_ref",
                                                 "diff_ci_low", "diff_ci_high", "p_value", NULL};
static const char *const seed_columns[] = {"seeds", "avg_accuracy_seed_mean", "avg_accuracy_seed_sd", NULL};

/* A method name that can be a file name (as for curves/<method>.csv). */
static bool plain_name(const char *s) {
    if (!*s || *s == '.' || strlen(s) > 200) return false;
    for (const char *c = s; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || strchr("._+-", *c)))
            return false;
    return true;
}

int stats_dir_load(const char *dir, const leaderboard *lb, predictions **out, int *n, tt_err *err) {
    *out = NULL;
    *n = 0;
    predictions *p = calloc((size_t)(lb->n_rows ? lb->n_rows : 1), sizeof *p);
    if (!p) return tt_fail(err, TT_ENOMEM, "out of memory");
    char path[4200];
    for (int r = 0; r < lb->n_rows; r++) {
        const leaderboard_row *row = &lb->rows[r];
        if (row->status != LEADERBOARD_OK || !plain_name(row->method)) continue;
        snprintf(path, sizeof path, "%s/predictions/%s.bits", dir, row->method);
        if (access(path, F_OK) != 0) continue;
        predictions *q = &p[*n];
        if (predictions_read(path, q, err)) goto fail;
        (*n)++;
        if (strcmp(q->suite, lb->suite) || strcmp(q->method, row->method)) {
            tt_fail(err, TT_EINPUT, "%s: holds suite '%s' method '%s', the results %s / %s", path, q->suite, q->method,
                    lb->suite, row->method);
            goto fail;
        }
        if (q->n_tasks != lb->n_tasks) {
            tt_fail(err, TT_EINPUT, "%s: %d tasks, results.csv has %d (a stale file?)", path, q->n_tasks, lb->n_tasks);
            goto fail;
        }
        for (int t = 0; t < lb->n_tasks; t++) {
            const predictions_task *pt = &q->tasks[t];
            double a = pt->n ? 100.0 * (double)predictions_correct(pt) / pt->n : NAN;
            if (strcmp(pt->name, lb->tasks[t]) || !(fabs(a - row->task_accuracy[t]) <= 6e-5)) {
                tt_fail(err, TT_EINPUT, "%s: task %d ('%s', %.4f%%) disagrees with results.csv ('%s', %.4f%%): a stale file?",
                        path, t + 1, pt->name, a, lb->tasks[t], row->task_accuracy[t]);
                goto fail;
            }
        }
    }
    *out = p;
    return 0;
fail:
    for (int i = 0; i <= *n && i < lb->n_rows; i++) predictions_free(&p[i]);
    free(p);
    *n = 0;
    return -1;
}

static void free_preds(predictions *p, int n) {
    for (int i = 0; i < n; i++) predictions_free(&p[i]);
    free(p);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Average accuracy of every leaderboard method in each DIR/seeds/<S>/results.csv: seed_avg
 * [n_rows * max_seeds] (NaN where the method is not ok there), *n_seeds the directories read. */
static int seed_averages(const char *dir, const leaderboard *lb, double **seed_avg, int *n_seeds, tt_err *err) {
    *seed_avg = NULL;
    *n_seeds = 0;
    char path[4200];
    snprintf(path, sizeof path, "%s/seeds", dir);
    DIR *dp = opendir(path);
    if (!dp) return 0;
    char *names[256];
    int nn = 0;
    for (struct dirent *e; (e = readdir(dp)) && nn < 256;) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/seeds/%s/results.csv", dir, e->d_name);
        if (access(path, F_OK) == 0 && !(names[nn++] = strdup(e->d_name))) break;
    }
    closedir(dp);
    qsort(names, (size_t)nn, sizeof *names, cmp_str);
    int rc = 0;
    double *sa = malloc((size_t)(lb->n_rows ? lb->n_rows : 1) * (nn ? nn : 1) * sizeof *sa);
    if (!sa) rc = tt_fail(err, TT_ENOMEM, "out of memory");
    for (int s = 0; !rc && s < nn; s++) {
        results_table t = {0};
        leaderboard sl = {0};
        snprintf(path, sizeof path, "%s/seeds/%s/results.csv", dir, names[s]);
        if (results_read(path, &t, err) || results_leaderboard_for(&t, lb->suite, &sl, err)) rc = -1;
        for (int r = 0; !rc && r < lb->n_rows; r++) {
            sa[(size_t)r * nn + s] = NAN;
            for (int q = 0; q < sl.n_rows; q++)
                if (!strcmp(sl.rows[q].method, lb->rows[r].method) && sl.rows[q].status == LEADERBOARD_OK)
                    sa[(size_t)r * nn + s] = sl.rows[q].avg_accuracy;
        }
        results_leaderboard_free(&sl);
        results_free(&t);
    }
    for (int s = 0; s < nn; s++) free(names[s]);
    if (rc) {
        free(sa);
        return -1;
    }
    *seed_avg = sa;
    *n_seeds = nn;
    return 0;
}

static void put_cell_text(FILE *fp, const char *s) { csv_fwrite(fp, s, strlen(s)); }
static void put_cell_num(FILE *fp, double v, int decimals) {
    if (!isnan(v)) fprintf(fp, "%.*f", decimals, v == 0 ? 0.0 : v);
}

static int write_stats_csv(const char *path, const stats_board *b, tt_err *err) {
    fio_file f;
    if (fio_open_atomic(&f, path, err)) return -1;
    FILE *fp = f.fp;
    fputs("method,task,n,accuracy,se,ci_low,ci_high,ref,diff_vs_ref,diff_ci_low,diff_ci_high,p_value,test,resamples,seed\n", fp);
    const char *ref = b->ref >= 0 ? b->m[b->ref].method : "";
    for (int i = 0; i < b->n_methods; i++)
        for (int t = 0; t <= b->n_tasks; t++) {
            const stats_cell *c = t < b->n_tasks ? &b->m[i].task[t] : &b->m[i].avg;
            put_cell_text(fp, b->m[i].method), fputc(',', fp);
            put_cell_text(fp, t < b->n_tasks ? b->tasks[t] : "average"), fputc(',', fp);
            fprintf(fp, "%u,", c->n);
            put_cell_num(fp, c->acc, 4), fputc(',', fp);
            put_cell_num(fp, c->se, 4), fputc(',', fp);
            put_cell_num(fp, c->ci_low, 4), fputc(',', fp);
            put_cell_num(fp, c->ci_high, 4), fputc(',', fp);
            put_cell_text(fp, ref), fputc(',', fp);
            put_cell_num(fp, c->diff, 4), fputc(',', fp);
            put_cell_num(fp, c->diff_low, 4), fputc(',', fp);
            put_cell_num(fp, c->diff_high, 4), fputc(',', fp);
            put_cell_num(fp, c->p, 6), fputc(',', fp);
            put_cell_text(fp, b->ref < 0 ? "" : t < b->n_tasks ? "mcnemar-exact" : "paired-bootstrap");
            fprintf(fp, ",%d,%llu\n", b->opts.resamples, (unsigned long long)b->opts.seed);
        }
    return fio_commit(&f, err);
}

int stats_dir_write(const char *dir, const results_table *t, const char *suite, const stats_opts *o, tt_err *err) {
    leaderboard lb = {0};
    predictions *p = NULL;
    stats_board b = {0};
    double *seed_avg = NULL, *values = NULL;
    const char **text = NULL;
    int np = 0, n_seeds = 0, rc = -1;
    if (results_leaderboard_for(t, suite, &lb, err) || stats_dir_load(dir, &lb, &p, &np, err) ||
        stats_compute(p, np, o, &b, err) || seed_averages(dir, &lb, &seed_avg, &n_seeds, err))
        goto done;
    const char *names[16];
    int decimals[16], nc = 0;
    for (int c = 0; stats_leaderboard_columns[c]; c++) names[nc] = stats_leaderboard_columns[c], decimals[nc++] = 4;
    decimals[7] = 6; /* p_value */
    if (n_seeds)
        for (int c = 0; seed_columns[c]; c++) names[nc] = seed_columns[c], decimals[nc++] = c == 0 ? 0 : 4;
    size_t cells = (size_t)(lb.n_rows ? lb.n_rows : 1) * nc;
    values = malloc(cells * sizeof *values);
    text = calloc(cells, sizeof *text);
    if (!values || !text) {
        tt_fail(err, TT_ENOMEM, "out of memory");
        goto done;
    }
    const char *ref = b.ref >= 0 ? b.m[b.ref].method : "";
    for (int r = 0; r < lb.n_rows; r++) {
        double *v = values + (size_t)r * nc;
        for (int c = 0; c < nc; c++) v[c] = NAN;
        for (int i = 0; i < b.n_methods; i++)
            if (!strcmp(b.m[i].method, lb.rows[r].method)) {
                const stats_cell *c = &b.m[i].avg;
                v[0] = c->se, v[1] = c->ci_low, v[2] = c->ci_high;
                v[4] = c->diff, v[5] = c->diff_low, v[6] = c->diff_high, v[7] = c->p;
                if (b.ref >= 0) text[(size_t)r * nc + 3] = ref;
            }
        if (!text[(size_t)r * nc + 3]) text[(size_t)r * nc + 3] = "";
        if (n_seeds && lb.rows[r].status == LEADERBOARD_OK) {
            double s = lb.rows[r].avg_accuracy, s2 = 0;
            int k = 1;
            for (int q = 0; q < n_seeds; q++)
                if (!isnan(seed_avg[(size_t)r * n_seeds + q])) s += seed_avg[(size_t)r * n_seeds + q], k++;
            double mean = s / k;
            s2 = (lb.rows[r].avg_accuracy - mean) * (lb.rows[r].avg_accuracy - mean);
            for (int q = 0; q < n_seeds; q++) {
                double a = seed_avg[(size_t)r * n_seeds + q];
                if (!isnan(a)) s2 += (a - mean) * (a - mean);
            }
            v[8] = k, v[9] = mean, v[10] = k > 1 ? sqrt(s2 / (k - 1)) : NAN;
        }
    }
    leaderboard_extra x = {.n_cols = nc, .names = names, .decimals = decimals, .values = values, .text = text};
    char path[4200];
    snprintf(path, sizeof path, "%s/leaderboard.csv", dir);
    if (results_write_leaderboard_ext(path, &lb, &x, err)) goto done;
    snprintf(path, sizeof path, "%s/stats.csv", dir);
    if (np) {
        if (write_stats_csv(path, &b, err)) goto done;
    } else if (remove(path) != 0 && errno != ENOENT) {
        tt_fail(err, TT_EIO, "%s: cannot remove a stale file: %s", path, strerror(errno));
        goto done;
    }
    rc = 0;
done:
    free(values);
    free(text);
    free(seed_avg);
    stats_free(&b);
    free_preds(p, np);
    results_leaderboard_free(&lb);
    return rc;
}

/* ---- ttmerge check --order ----------------------------------------------------------------- */

int stats_check_order(const char *dir, const char *claims, const stats_opts *o, FILE *fp, bool *held, tt_err *err) {
    *held = true;
    char path[4200];
    snprintf(path, sizeof path, "%s/results.csv", dir);
    results_table t = {0};
    leaderboard lb = {0};
    predictions *p = NULL;
    int np = 0, rc = -1;
    char *buf = strdup(claims), *save = NULL;
    if (!buf) return tt_fail(err, TT_ENOMEM, "out of memory");
    if (results_read(path, &t, err) || results_leaderboard(&t, &lb, err) || stats_dir_load(dir, &lb, &p, &np, err)) goto done;
    for (char *claim = strtok_r(buf, ",", &save); claim; claim = strtok_r(NULL, ",", &save)) {
        char *gt = strchr(claim, '>');
        if (!gt || gt == claim || !gt[1] || strchr(gt + 1, '>')) {
            tt_fail(err, TT_EINPUT, "--order: '%s' is not A>B", claim);
            goto done;
        }
        *gt = 0;
        const char *a = claim, *bname = gt + 1;
        const predictions *pa = NULL, *pb = NULL;
        for (int i = 0; i < np; i++) {
            if (!strcmp(p[i].method, a)) pa = &p[i];
            if (!strcmp(p[i].method, bname)) pb = &p[i];
        }
        if (!pa || !pb) {
            tt_fail(err, TT_EINPUT, "%s/predictions/%s.bits: missing (or the method is not ok in results.csv)", dir, pa ? bname : a);
            goto done;
        }
        predictions pair[2] = {*pa, *pb};
        stats_opts so = *o;
        so.ref = bname;
        stats_board sb = {0};
        if (stats_compute(pair, 2, &so, &sb, err)) goto done;
        const stats_cell *c = &sb.m[0].avg;
        bool ok = c->diff_low > 0;
        fprintf(fp, "order %s > %s: %+.2f points, %.0f%% paired bootstrap interval [%+.2f, %+.2f] (%d resamples), p = %.4f: %s\n",
                a, bname, c->diff, 100 * o->level, c->diff_low, c->diff_high, o->resamples, c->p,
                ok ? "holds" : c->diff_high < 0 ? "REVERSED (the interval is below 0)" : "NOT SHOWN (the interval includes 0)");
        *held = *held && ok;
        stats_free(&sb);
    }
    rc = 0;
done:
    free(buf);
    free_preds(p, np);
    results_leaderboard_free(&lb);
    results_free(&t);
    return rc;
}

/* ---- test counts ------------------------------------------------------------------------- */

void stats_counts_free(stats_counts *c) {
    if (!c) return;
    for (int i = 0; i < c->n; i++) free(c->suite[i]), free(c->task[i]);
    free(c->suite), free(c->task), free(c->count);
    memset(c, 0, sizeof *c);
}

uint32_t stats_counts_get(void *counts, const char *suite, const char *task) {
    const stats_counts *c = counts;
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->suite[i], suite) && !strcmp(c->task[i], task)) return c->count[i];
    return 0;
}

static int counts_add(stats_counts *c, const char *suite, const char *task, uint32_t n) {
    if (stats_counts_get(c, suite, task)) return 0;
    char **s = realloc(c->suite, (size_t)(c->n + 1) * sizeof *s);
    if (s) c->suite = s;
    char **t = realloc(c->task, (size_t)(c->n + 1) * sizeof *t);
    if (t) c->task = t;
    uint32_t *k = realloc(c->count, (size_t)(c->n + 1) * sizeof *k);
    if (k) c->count = k;
    if (!s || !t || !k) return -1;
    c->suite[c->n] = strdup(suite);
    c->task[c->n] = strdup(task);
    c->count[c->n] = n;
    if (!c->suite[c->n] || !c->task[c->n]) {
        free(c->suite[c->n]), free(c->task[c->n]);
        return -1;
    }
    c->n++;
    return 0;
}

/* Every DIR/<name>.bits (sorted by name). A malformed file is an error. */
static int counts_from_predictions(const char *dir, stats_counts *c, tt_err *err) {
    struct dirent **list = NULL;
    int n = scandir(dir, &list, NULL, alphasort), rc = 0;
    for (int i = 0; i < n; i++) {
        size_t len = strlen(list[i]->d_name);
        if (!rc && len > 5 && !strcmp(list[i]->d_name + len - 5, ".bits") && list[i]->d_name[0] != '.') {
            char path[4400];
            snprintf(path, sizeof path, "%s/%s", dir, list[i]->d_name);
            predictions p;
            if (predictions_read(path, &p, err)) rc = -1;
            for (int t = 0; !rc && t < p.n_tasks; t++)
                if (counts_add(c, p.suite, p.tasks[t].name, p.tasks[t].n)) rc = tt_fail(err, TT_ENOMEM, "out of memory");
            predictions_free(&p);
        }
        free(list[i]);
    }
    free(list);
    return rc;
}

static int counts_from_suite_json(const char *path, stats_counts *c, tt_err *err) {
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    const char *name = json_string_value(json_object_get(root, "name"));
    json_t *tasks = json_object_get(root, "tasks");
    int rc = 0;
    if (!name || !json_is_array(tasks)) rc = tt_fail(err, TT_EINPUT, "%s: not a suite manifest (no name or tasks)", path);
    for (size_t i = 0; !rc && i < json_array_size(tasks); i++) {
        json_t *t = json_array_get(tasks, i);
        const char *tn = json_string_value(json_object_get(t, "name"));
        json_int_t n = json_integer_value(json_object_get(json_object_get(t, "splits"), "test"));
        if (!tn || n < 1 || n > PREDICTIONS_MAX_EXAMPLES) rc = tt_fail(err, TT_EINPUT, "%s: task %zu: no name or splits.test", path, i + 1);
        else if (counts_add(c, name, tn, (uint32_t)n)) rc = tt_fail(err, TT_ENOMEM, "out of memory");
    }
    json_decref(root);
    return rc;
}

static void dir_of(const char *path, char *dir, size_t cap) {
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(dir, cap, ".");
    else snprintf(dir, cap, "%.*s", (int)(slash - path) ? (int)(slash - path) : 1, path);
}

int stats_counts_load(const char *results_path, const char *golden_path, stats_counts *c, tt_err *err) {
    memset(c, 0, sizeof *c);
    char dir[4096], path[4200];
    dir_of(results_path, dir, sizeof dir);
    snprintf(path, sizeof path, "%s/predictions", dir);
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        if (counts_from_predictions(path, c, err)) goto fail;
        if (c->n) return snprintf(c->source, sizeof c->source, "%s/*.bits", path), 0;
    }
    snprintf(path, sizeof path, "%s/suite.json", dir);
    if (access(path, F_OK) == 0) {
        if (counts_from_suite_json(path, c, err)) goto fail;
        if (c->n) return snprintf(c->source, sizeof c->source, "%s", path), 0;
    }
    size_t gl = strlen(golden_path);
    snprintf(path, sizeof path, "%.*s.predictions", (int)(gl > 4 && !strcmp(golden_path + gl - 4, ".csv") ? gl - 4 : gl), golden_path);
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        if (counts_from_predictions(path, c, err)) goto fail;
        if (c->n) return snprintf(c->source, sizeof c->source, "%s/*.bits", path), 0;
    }
    tt_fail(err, TT_EINPUT,
            "--tol auto needs each task's test count: no %s/predictions/*.bits, no %s/suite.json and no %s (bench writes the first two)",
            dir, dir, path);
fail:
    stats_counts_free(c);
    return -1;
}
