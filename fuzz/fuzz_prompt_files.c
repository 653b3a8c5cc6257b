/* fuzz_prompt_files.c — libFuzzer target for the class-name and template files of zero-shot heads
 * (pf_lines_parse, data/prompt_files.c). Every input is parsed both as class names and as templates.
 *
 * Contract beyond "no crash, no sanitizer report, no leak": a rejection is one non-empty line that
 * starts with the path, and leaves nothing allocated; an accepted file has n > 0 entries, each
 * non-empty, without '\n' or a trailing '\r', whose lengths with their line ends add up to at most the
 * input's size; every template holds exactly one "{}", and filling it with a name gives a string of
 * the template's length - 2 + the name's length.
 *
 * libFuzzer build and timed runs: fuzz/CMakeLists.txt, fuzz/README.md; ctest replays the seed
 * corpus fuzz/corpus/prompt_files/ with fuzz/replay_main.c (fuzz_prompt_files_corpus).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data/prompt_files.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void rejected(const tt_err *e, const pf_lines *l, const char *path) {
    if (e->msg[0] == 0 || strchr(e->msg, '\n') || strncmp(e->msg, path, strlen(path)) != 0) abort();
    if (l->n != 0 || l->v) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    for (int templates = 0; templates < 2; templates++) {
        const char *path = templates ? "templates.txt" : "classnames.txt";
        tt_err e = {0};
        pf_lines l;
        if (pf_lines_parse(&l, (const char *)data, size, path, templates, &e)) {
            rejected(&e, &l, path);
            continue;
        }
        if (l.n <= 0) abort();
        size_t total = 0;
        for (int i = 0; i < l.n; i++) {
            size_t n = strlen(l.v[i]);
            if (!n || strchr(l.v[i], '\n') || l.v[i][n - 1] == '\r') abort();
            total += n + 1;
            if (!templates) continue;
            const char *a = strstr(l.v[i], "{}");
            if (!a || strstr(a + 2, "{}")) abort();
            char *filled = pf_fill(l.v[i], "cat");
            if (!filled || strlen(filled) != n - 2 + 3) abort();
            free(filled);
        }
        if (total > size + 1) abort();
        pf_lines_free(&l);
    }
    return 0;
}
