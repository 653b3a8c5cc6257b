/* commands.h — one function per CLI verb; each returns the process exit status
 * (0 ok, 1 failed check, 2 bad usage or input, 3 internal/resource error). */
#ifndef TT_COMMANDS_H
#define TT_COMMANDS_H

int cmd_init(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_suite(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_heads(int argc, char **argv);
int cmd_data(int argc, char **argv);

#endif
