/* predictions.h — per-example correctness of one method (predictions/<method>.bits).
 *
 * `ttmerge bench` keeps, next to results.csv, one file per method recording which test examples
 * the method got right: one bit per example per task. Every statistic of reports/stats.h
 * (intervals, paired differences, p-values) is computed afterwards from these files, without
 * re-running anything. The format (reports/README.md, "predictions/<method>.bits"):
 *
 *   ttmerge-predictions 1\n          magic and version
 *   suite tiny\n
 *   method ta\n
 *   seed 0\n
 *   tasks 2\n
 *   task 300 mnist\n                  count of test examples, then the task name (rest of line)
 *   task 300 mnist-inv\n
 *   \n                                a blank line ends the header
 *   <payload>                         per task in header order, ceil(n/8) bytes; example i is bit
 *                                     (i & 7) of byte i >> 3 (least significant bit first,
 *                                     numpy: unpackbits(..., bitorder="little")); 1 = correct;
 *                                     the pad bits of a task's last byte are 0
 *
 * The file size is exactly header + payload; names are non-empty and free of control
 * characters. Reading is strict and errors are one line naming the file.
 *
 *   predictions p = {0};
 *   if (predictions_read("out/predictions/ta.bits", &p, &e)) ...;
 *   long right = predictions_correct(&p.tasks[0]);
 *   predictions_free(&p);
 *
 * Ownership: a predictions value owns its strings and bit arrays (predictions_free; a zeroed or
 * freed value is accepted).
 */
#ifndef TT_PREDICTIONS_H
#define TT_PREDICTIONS_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define PREDICTIONS_MAGIC "ttmerge-predictions 1"
#define PREDICTIONS_MAX_TASKS 1024
#define PREDICTIONS_MAX_EXAMPLES (1u << 26) /* per task */
#define PREDICTIONS_MAX_HEADER 65536        /* bytes */
#define PREDICTIONS_MAX_NAME 255            /* bytes per name */

typedef struct predictions_task {
    char *name;
    uint32_t n;     /* test examples */
    uint8_t *bits;  /* [(n + 7) / 8], see the format above */
} predictions_task;

typedef struct predictions {
    char *suite, *method;
    uint64_t seed;
    int n_tasks;
    predictions_task *tasks; /* [n_tasks] */
} predictions;

/* Example i of task t: 1 when the method got it right. */
static inline int predictions_bit(const predictions_task *t, uint32_t i) { return (t->bits[i >> 3] >> (i & 7)) & 1; }

/* Examples the method got right. */
long predictions_correct(const predictions_task *t);

/* Fill a task from a byte-per-example array (0 = wrong, anything else = right); name copied. */
int predictions_task_set(predictions_task *t, const char *name, const uint8_t *correct, uint32_t n, tt_err *err);

/* Atomically write p to PATH. Refuses names that the format cannot hold. */
int predictions_write(const char *path, const predictions *p, tt_err *err);

/* Read PATH into *p (zeroed first; left empty on failure). */
int predictions_read(const char *path, predictions *p, tt_err *err);

/* Parse n bytes (what predictions_read does after reading; the fuzz target's entry). what
 * names the input in error messages. */
int predictions_parse(const char *what, const uint8_t *buf, size_t n, predictions *p, tt_err *err);

void predictions_free(predictions *p);

#endif
