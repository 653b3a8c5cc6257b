/* ckpt_open.c — cost of opening a checkpoint (any layout) and of loading its image tower:
 *   ckpt_open PATH [ROUNDS]
 * prints, per round, the seconds of ts_open (headers only: nothing of the tensors is read), the
 * process's peak RSS after it, the seconds of ckpt_load_vit (the ViT read into one flat buffer,
 * tensor by tensor, pages given back as it goes) and the peak RSS after that. Peak RSS is VmHWM of
 * /proc/self/status (getrusage's ru_maxrss would carry the parent's peak across fork + exec). Used
 * by bench/clip_vitb32.py on a ViT-B/32-sized Hugging Face CLIPModel (605 MB with its text tower). */
#include <stdio.h>
#include <stdlib.h>

#include "core/checkpoint.h"
#include "core/progress.h"
#include "core/tensorset.h"

static double peak_rss_mb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %lf kB", &kb) == 1) break;
    if (f) fclose(f);
    return kb / 1024.0;
}

int main(int argc, char **argv) {
    if (argc < 2) return fprintf(stderr, "usage: ckpt_open PATH [ROUNDS]\n"), 2;
    int rounds = argc > 2 ? atoi(argv[2]) : 1;
    tt_err e = {0};
    printf("round,open_s,open_peak_rss_mb,tensors,load_s,load_peak_rss_mb,params\n");
    for (int r = 0; r < rounds; r++) {
        double t0 = progress_now();
        ts_set *s;
        if (ts_open(&s, argv[1], &e)) return fprintf(stderr, "ckpt_open: %s\n", e.msg), 2;
        double t1 = progress_now(), rss_open = peak_rss_mb();
        int n = ts_count(s);
        ts_close(s);
        ckpt_vit m;
        double t2 = progress_now();
        if (ckpt_load_vit(&m, argv[1], &e)) return fprintf(stderr, "ckpt_open: %s\n", e.msg), 2;
        double t3 = progress_now();
        size_t params = 0;
        for (int l = 0; l < m.lay.count; l++) params += m.lay.t[l].numel;
        printf("%d,%.4f,%.1f,%d,%.3f,%.1f,%zu\n", r, t1 - t0, rss_open, n, t3 - t2, peak_rss_mb(), params);
        ckpt_vit_free(&m);
    }
    return 0;
}
