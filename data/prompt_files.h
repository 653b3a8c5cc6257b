/* prompt_files.h — the class-name and template files of CLIP zero-shot heads (suites/clip/<dataset>/).
 *
 * One entry per line, UTF-8 (checked by the tokenizer); a final newline and any '\r' before each line end
 * are ignored; an empty line, a NUL byte, an empty file, and a template without exactly one "{}" are
 * errors "FILE:LINE: problem". A template is filled by replacing its "{}" with the class name (a plain
 * substring replace, as suites/clip/README.md says: no other brace is special).
 *
 *   pf_lines t;
 *   if (pf_lines_read(&t, "suites/clip/sun397/templates.txt", true, &e)) ...;
 *   char *prompt = pf_fill(t.v[0], "abbey");   // "a photo of a abbey."
 *   free(prompt); pf_lines_free(&t);
 *
 * Ownership: pf_lines owns its strings (pf_lines_free); pf_fill's string is the caller's.
 */
#ifndef TT_PROMPT_FILES_H
#define TT_PROMPT_FILES_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

#define PF_MAX_FILE (64u << 20)
#define PF_MAX_ENTRIES 1000000

typedef struct pf_lines {
    int n;
    char **v; /* [n] NUL-terminated, non-empty */
} pf_lines;

/* templates = true checks for exactly one "{}" per line. */
int pf_lines_read(pf_lines *out, const char *path, bool templates, tt_err *err);
/* The same from memory (path labels the messages): what the fuzz target drives. */
int pf_lines_parse(pf_lines *out, const char *text, size_t len, const char *path, bool templates, tt_err *err);
void pf_lines_free(pf_lines *l);
/* template_ with its first "{}" replaced by name (malloc'd), or NULL when out of memory. */
char *pf_fill(const char *template_, const char *name);

#endif
