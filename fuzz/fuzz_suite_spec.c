/* fuzz_suite_spec.c — libFuzzer target for suite files (data/suite_spec.c).
 *
 * Each input is written to a temporary file $TMPDIR/fuzz_suite_spec.PID.yaml and loaded by
 * path with suite_spec_load, so the real read + libyaml + walk + validate path runs (both
 * temporaries are removed at exit).
 * Contract checked:
 *   - a rejected file leaves a non-empty one-line message that starts with "PATH: " and a
 *     zeroed struct;
 *   - an accepted file validates again, converts to JSON, and that JSON (written to a .json
 *     file) loads back to a byte-identical struct.
 *
 * libFuzzer build and timed runs: fuzz/CMakeLists.txt, fuzz/README.md.
 *
 * Without libFuzzer, fuzz/replay_main.c runs the target once per file named on the command
 * line: ctest replays the committed seed corpus that way (fuzz_<name>_corpus).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/suite_spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char g_yaml[512], g_json[512];

static void remove_temps(void) {
    unlink(g_yaml);
    unlink(g_json);
}

static void put_file(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    if (fclose(f) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_yaml[0]) {
        const char *tmp = getenv("TMPDIR");
        if (!tmp || !tmp[0]) tmp = "/tmp";
        snprintf(g_yaml, sizeof g_yaml, "%s/fuzz_suite_spec.%d.yaml", tmp, (int)getpid());
        snprintf(g_json, sizeof g_json, "%s/fuzz_suite_spec.%d.json", tmp, (int)getpid());
        atexit(remove_temps);
    }
    put_file(g_yaml, data, size);
    static suite_spec s, back;
    static const suite_spec zero;
    tt_err e = {0};
    if (suite_spec_load(g_yaml, NULL, &s, &e) != 0) {
        size_t n = strlen(g_yaml);
        if (e.msg[0] == 0 || strchr(e.msg, '\n') || strncmp(e.msg, g_yaml, n) != 0 || strncmp(e.msg + n, ": ", 2) != 0)
            abort();
        if (memcmp(&s, &zero, sizeof s) != 0) abort();
        return 0;
    }
    if (suite_spec_validate(&s, &e) != 0) abort();
    char *json = suite_spec_to_json(&s);
    if (!json) abort();
    put_file(g_json, json, strlen(json));
    free(json);
    if (suite_spec_load(g_json, NULL, &back, &e) != 0) {
        fprintf(stderr, "JSON of an accepted spec does not load: %s\n", e.msg);
        abort();
    }
    /* the name defaults to the file name; the JSON always carries it, so they agree */
    if (memcmp(&s, &back, sizeof s) != 0) abort();
    return 0;
}

