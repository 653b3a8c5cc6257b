/* fuzz_safetensors.c — libFuzzer target for the safetensors reader (core/safetensors.c).
 *
 * Each input is written to an in-memory file (memfd) and opened by path through
 * /proc/self/fd/N, so st_open runs its real mmap path. A file that opens must be fully
 * usable: every tensor is found by name and converted (or cleanly refused) by st_read_f32.
 * A file that does not open must leave a one-line "PATH: problem" message.
 *
 * libFuzzer build and timed runs: fuzz/CMakeLists.txt, fuzz/README.md.
 *
 * Without libFuzzer, fuzz/replay_main.c runs the target once per file named on the command
 * line: ctest replays the committed seed corpus that way (fuzz_safetensors_corpus).
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int g_fd = -1;
static char g_path[64];

static void put_bytes(const uint8_t *data, size_t size) {
    if (g_fd < 0) {
        g_fd = memfd_create("fuzz_safetensors", MFD_CLOEXEC);
        if (g_fd < 0) abort();
        snprintf(g_path, sizeof g_path, "/proc/self/fd/%d", g_fd);
    }
    if (ftruncate(g_fd, 0) != 0) abort();
    size_t done = 0;
    while (done < size) {
        ssize_t w = pwrite(g_fd, data + done, size - done, (off_t)done);
        if (w <= 0) abort();
        done += (size_t)w;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    put_bytes(data, size);
    st_file *f = NULL;
    tt_err e = {0};
    if (st_open(&f, g_path, &e) != 0) {
        /* contract: NULL handle, a non-empty one-line message that starts with the path */
        if (f != NULL || e.msg[0] == 0 || strchr(e.msg, '\n') || strncmp(e.msg, g_path, strlen(g_path)) != 0)
            abort();
        return 0;
    }
    int n = st_count(f);
    for (int i = 0; i < n; i++) {
        const st_tensor *t = st_at(f, i);
        if (st_find(f, t->name) != t) abort();
        if (t->nbytes != (size_t)t->numel * st_dtype_size(t->dtype)) abort();
        if (st_expect(f, t->name, t->ndim, t->shape, NULL, &e) != 0) abort();
        float *buf = malloc(t->numel ? (size_t)t->numel * sizeof(float) : 1);
        if (!buf) abort();
        int rc = st_read_f32(f, t, buf, &e);
        int convertible = t->dtype == ST_F32 || t->dtype == ST_F16 || t->dtype == ST_BF16 || t->dtype == ST_F64;
        if ((rc == 0) != convertible) abort();
        const float *v = st_f32_view(t);
        if (v && t->numel && memcmp(v, buf, t->nbytes) != 0) abort();
        free(buf);
    }
    (void)st_meta(f, "format");
    (void)st_find(f, "");
    st_close(f);
    return 0;
}

