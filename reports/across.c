/* across.c — see across.h. */
#include "reports/across.h"

#include <csv.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"

#define ACROSS_MAX_DIRS 64

typedef struct run {
    results_table t;
    leaderboard lb;
    predictions *p;
    int np;
    stats_board sb;
} run;

typedef struct agg {
    const char *method;
    int runs, above, below, n_diff;
    double mean, sd, diff_mean, diff_sd;
    double *task_mean; /* [n_tasks] */
} agg;

static void mean_sd(const double *v, int n, double *mean, double *sd) {
    double s = 0, s2 = 0;
    for (int i = 0; i < n; i++) s += v[i];
    *mean = n ? s / n : NAN;
    for (int i = 0; i < n; i++) s2 += (v[i] - *mean) * (v[i] - *mean);
    *sd = n > 1 ? sqrt(s2 / (n - 1)) : NAN;
}

static int cmp_agg(const void *a, const void *b) {
    const agg *x = a, *y = b;
    if (isnan(x->mean) != isnan(y->mean)) return isnan(x->mean) ? 1 : -1;
    if (x->mean != y->mean) return x->mean > y->mean ? -1 : 1;
    return strcmp(x->method, y->method);
}

static void num(FILE *fp, double v, int dec) {
    if (!isnan(v)) fprintf(fp, "%.*f", dec, v);
}

int across_write(const char *const *dirs, int n_dirs, const char *out_dir, const stats_opts *o, tt_err *err) {
    if (n_dirs < 1 || n_dirs > ACROSS_MAX_DIRS) return tt_fail(err, TT_EINPUT, "report: 1 to %d results directories", ACROSS_MAX_DIRS);
    run *runs = calloc((size_t)n_dirs, sizeof *runs);
    agg *ag = NULL;
    int n_ag = 0, rc = -1;
    double *v = malloc((size_t)n_dirs * sizeof *v), *dv = malloc((size_t)n_dirs * sizeof *dv);
    if (!runs || !v || !dv) goto oom;
    char path[4200];
    for (int d = 0; d < n_dirs; d++) {
        run *r = &runs[d];
        snprintf(path, sizeof path, "%s/results.csv", dirs[d]);
        if (results_read(path, &r->t, err) || results_leaderboard(&r->t, &r->lb, err) ||
            stats_dir_load(dirs[d], &r->lb, &r->p, &r->np, err) || stats_compute(r->p, r->np, o, &r->sb, err))
            goto done;
        if (r->lb.n_tasks != runs[0].lb.n_tasks || strcmp(r->lb.suite, runs[0].lb.suite)) {
            tt_fail(err, TT_EINPUT, "%s: suite '%s' with %d tasks, %s/results.csv has '%s' with %d: not the same benchmark", path,
                    r->lb.suite, r->lb.n_tasks, dirs[0], runs[0].lb.suite, runs[0].lb.n_tasks);
            goto done;
        }
        for (int t = 0; t < r->lb.n_tasks; t++)
            if (strcmp(r->lb.tasks[t], runs[0].lb.tasks[t])) {
                tt_fail(err, TT_EINPUT, "%s: task %d is '%s', %s has '%s'", path, t + 1, r->lb.tasks[t], dirs[0], runs[0].lb.tasks[t]);
                goto done;
            }
    }
    const int K = runs[0].lb.n_tasks;
    /* methods: the union, in the first directory's order, then new ones */
    int cap = 0;
    for (int d = 0; d < n_dirs; d++) cap += runs[d].lb.n_rows;
    if (!(ag = calloc((size_t)(cap ? cap : 1), sizeof *ag))) goto oom;
    for (int d = 0; d < n_dirs; d++)
        for (int i = 0; i < runs[d].lb.n_rows; i++) {
            const char *m = runs[d].lb.rows[i].method;
            bool seen = false;
            for (int a = 0; a < n_ag && !seen; a++) seen = !strcmp(ag[a].method, m);
            if (!seen) {
                ag[n_ag].method = m;
                if (!(ag[n_ag++].task_mean = calloc((size_t)(K ? K : 1), sizeof(double)))) goto oom;
            }
        }
    for (int a = 0; a < n_ag; a++) {
        agg *g = &ag[a];
        int nv = 0, nd = 0;
        for (int t = 0; t < K; t++) g->task_mean[t] = 0;
        for (int d = 0; d < n_dirs; d++) {
            const run *r = &runs[d];
            for (int i = 0; i < r->lb.n_rows; i++) {
                const leaderboard_row *row = &r->lb.rows[i];
                if (strcmp(row->method, g->method) || row->status != LEADERBOARD_OK) continue;
                v[nv++] = row->avg_accuracy;
                for (int t = 0; t < K; t++) g->task_mean[t] += row->task_accuracy[t];
            }
            for (int i = 0; i < r->sb.n_methods; i++) {
                const stats_method *sm = &r->sb.m[i];
                if (strcmp(sm->method, g->method) || r->sb.ref < 0 || isnan(sm->avg.diff)) continue;
                dv[nd++] = sm->avg.diff;
                g->above += i != r->sb.ref && sm->avg.diff_low > 0;
                g->below += i != r->sb.ref && sm->avg.diff_high < 0;
            }
        }
        g->runs = nv;
        g->n_diff = nd;
        mean_sd(v, nv, &g->mean, &g->sd);
        mean_sd(dv, nd, &g->diff_mean, &g->diff_sd);
        for (int t = 0; t < K; t++) g->task_mean[t] = nv ? g->task_mean[t] / nv : NAN;
    }
    qsort(ag, (size_t)n_ag, sizeof *ag, cmp_agg);
    const char *ref = o->ref && *o->ref ? o->ref : "";
    fio_file f;
    snprintf(path, sizeof path, "%s/across.csv", out_dir);
    if (fio_open_atomic(&f, path, err)) goto done;
    fputs("method,runs,avg_accuracy_mean,avg_accuracy_sd", f.fp);
    for (int t = 0; t < K; t++) {
        char col[600];
        snprintf(col, sizeof col, "%s_mean", runs[0].lb.tasks[t]);
        fputc(',', f.fp);
        if (strpbrk(col, ",\"\r\n")) csv_fwrite(f.fp, col, strlen(col));
        else fputs(col, f.fp);
    }
    fputs(",ref,diff_vs_ref_mean,diff_vs_ref_sd,runs_above_ref,runs_below_ref\n", f.fp);
    for (int a = 0; a < n_ag; a++) {
        const agg *g = &ag[a];
        csv_fwrite(f.fp, g->method, strlen(g->method));
        fprintf(f.fp, ",%d,", g->runs);
        num(f.fp, g->mean, 4), fputc(',', f.fp), num(f.fp, g->sd, 4);
        for (int t = 0; t < K; t++) fputc(',', f.fp), num(f.fp, g->task_mean[t], 4);
        fputc(',', f.fp), csv_fwrite(f.fp, ref, strlen(ref)), fputc(',', f.fp);
        num(f.fp, g->diff_mean, 4), fputc(',', f.fp), num(f.fp, g->diff_sd, 4);
        if (g->n_diff) fprintf(f.fp, ",%d,%d\n", g->above, g->below);
        else fputs(",,\n", f.fp);
    }
    if (fio_commit(&f, err)) goto done;
    snprintf(path, sizeof path, "%s/report.md", out_dir);
    if (fio_open_atomic(&f, path, err)) goto done;
    fprintf(f.fp, "# ttmerge report: %s over %d runs\n\nRuns:", runs[0].lb.suite, n_dirs);
    for (int d = 0; d < n_dirs; d++) fprintf(f.fp, " `%s`%s", dirs[d], d + 1 < n_dirs ? "," : ".\n\n");
    fprintf(f.fp, "| method | runs | avg accuracy (%%), mean ± sd | Δ vs %s, mean ± sd | runs above / below %s |\n|---|---:|---:|---:|---:|\n",
            *ref ? ref : "(no reference)", *ref ? ref : "-");
    for (int a = 0; a < n_ag; a++) {
        const agg *g = &ag[a];
        char sd[32] = "n/a", dsd[32] = "n/a";
        if (!isnan(g->sd)) snprintf(sd, sizeof sd, "%.2f", g->sd);
        if (!isnan(g->diff_sd)) snprintf(dsd, sizeof dsd, "%.2f", g->diff_sd);
        fprintf(f.fp, "| %s | %d | %.2f ± %s | ", g->method, g->runs, g->mean, sd);
        if (g->n_diff) fprintf(f.fp, "%+.2f ± %s | %d / %d of %d |\n", g->diff_mean, dsd, g->above, g->below, g->n_diff);
        else fputs("– | – |\n", f.fp);
    }
    fprintf(f.fp, "\nsd is the sample standard deviation over runs (n − 1; n/a for one run). A run counts as above/below when its paired %.0f%% "
                  "bootstrap interval of the difference (%d resamples, seed %llu) excludes 0; runs without `predictions/` "
                  "give no difference.\n", 100 * o->level, o->resamples, (unsigned long long)o->seed);
    if (fio_commit(&f, err)) goto done;
    rc = 0;
    goto done;
oom:
    tt_fail(err, TT_ENOMEM, "report: out of memory");
done:
    for (int a = 0; ag && a < n_ag; a++) free(ag[a].task_mean);
    free(ag);
    for (int d = 0; runs && d < n_dirs; d++) {
        stats_free(&runs[d].sb);
        for (int i = 0; i < runs[d].np; i++) predictions_free(&runs[d].p[i]);
        free(runs[d].p);
        results_leaderboard_free(&runs[d].lb);
        results_free(&runs[d].t);
    }
    free(runs);
    free(v);
    free(dv);
    return rc;
}
