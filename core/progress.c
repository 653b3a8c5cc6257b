#include "core/progress.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

double progress_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void progress_start(progress *p, const char *label, long total, bool enabled) {
    snprintf(p->label, sizeof p->label, "%s", label);
    p->total = total;
    p->enabled = enabled;
    p->t0 = progress_now();
    p->last_draw = 0;
}

void progress_update(progress *p, long done, const char *fmt, ...) {
    if (!p->enabled) return;
    double now = progress_now();
    if (done < p->total && now - p->last_draw < 0.2) return; /* ~5 redraws per second */
    p->last_draw = now;
    double el = now - p->t0, rate = el > 0 ? (double)done / el : 0;
    double eta = rate > 0 ? (double)(p->total - done) / rate : 0;
    char extra[128] = "";
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(extra, sizeof extra, fmt, ap);
        va_end(ap);
    }
    fprintf(stderr, "\r\033[K%s: %ld/%ld  %.1f/s  ETA %.0fs  %s", p->label, done, p->total, rate, eta, extra);
    fflush(stderr);
}

double progress_end(progress *p) {
    if (p->enabled) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
    return progress_now() - p->t0;
}
