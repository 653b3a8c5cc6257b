/* progress.h — one self-overwriting status line on a terminal (steps, rate, ETA); silent
 * when disabled (pipes, CI, --quiet). The caller decides `enabled` (see cli_progress_enabled).
 *
 *   progress p; progress_start(&p, "finetune mnist", 600, enabled);
 *   for (...) progress_update(&p, step + 1, "loss %.3f", loss);
 *   progress_end(&p);
 */
#ifndef TT_PROGRESS_H
#define TT_PROGRESS_H

#include <stdbool.h>

typedef struct progress {
    char label[96];
    long total;
    bool enabled;
    double t0, last_draw;
} progress;

double progress_now(void); /* monotonic seconds */
void progress_start(progress *p, const char *label, long total, bool enabled);
void progress_update(progress *p, long done, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Clears the line; returns elapsed seconds. */
double progress_end(progress *p);

#endif
