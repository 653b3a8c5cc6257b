/* test_cli.c — the ttmerge binary on bad usage and malformed checkpoints: exit status 2, exactly
 * one line on stderr naming the file, never a crash, never an output file. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/testutil.h"

static int run(const char *args, char *err, size_t cap) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s %s >/dev/null", tu_ttmerge_bin(), args);
    return tu_run(cmd, err, cap);
}

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

static void expect_one_line_error(const char *args, int want_status, const char *must_contain) {
    char err[4096];
    int st = run(args, err, sizeof err);
    cr_expect_eq(st, want_status, "`ttmerge %s` exited %d, want %d; stderr: %s", args, st, want_status, err);
    cr_expect_eq(count_lines(err), 1, "`ttmerge %s` printed %d lines on stderr: %s", args, count_lines(err), err);
    if (must_contain) cr_expect(strstr(err, must_contain) != NULL, "`ttmerge %s`: '%s' not in: %s", args, must_contain, err);
}

Test(cli, usage_errors) {
    expect_one_line_error("frobnicate", 2, "unknown verb");
    expect_one_line_error("eval --bogus", 2, "unknown option '--bogus'");
    expect_one_line_error("eval --model", 2, "needs a value");
    expect_one_line_error("merge --suite /nonexistent --method nope --out x", 2, "unknown method");
    expect_one_line_error("eval --model x.safetensors", 2, "exactly one of --suite");
    expect_one_line_error("init --arch '{\"image_size\":8}' --out /tmp/x.safetensors", 2, "channels");
    char err[256];
    cr_expect_eq(run("", err, sizeof err), 2);
}

Test(cli, every_verb_has_help) {
    const char *verbs[] = {"init", "eval", "merge", "bench", "report", "check", "suite build"};
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
        char args[64], err[1024];
        snprintf(args, sizeof args, "%s --help", verbs[i]);
        cr_expect_eq(run(args, err, sizeof err), 0, "`ttmerge %s` failed: %s", args, err);
    }
    char err[64];
    cr_expect_eq(run("--help", err, sizeof err), 0);
}

/* Write bytes to dir/name; returns the path (static buffer per call slot). */
static const char *put(const char *dir, const char *name, const void *data, size_t n) {
    static char paths[16][512];
    static int slot;
    char *p = paths[slot++ % 16];
    snprintf(p, 512, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f);
    fwrite(data, 1, n, f);
    fclose(f);
    return p;
}

static const char *put_header(const char *dir, const char *name, const char *json, size_t data_bytes) {
    size_t hn = strlen(json);
    size_t total = 8 + hn + data_bytes;
    unsigned char *buf = calloc(total, 1);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hn >> (8 * i));
    memcpy(buf + 8, json, hn);
    const char *p = put(dir, name, buf, total);
    free(buf);
    return p;
}

Test(cli, malformed_checkpoints_give_one_line_and_exit_2) {
    const char *dir = tu_tmpdir("cli");
    cr_assert_not_null(dir);
    char d[512];
    snprintf(d, sizeof d, "%s", dir);
    /* a valid model + head to corrupt */
    char args[2048], model[600], head[600], out[600];
    snprintf(model, sizeof model, "%s/m.safetensors", d);
    snprintf(head, sizeof head, "%s/h.safetensors", d);
    snprintf(args, sizeof args,
             "init --arch '{\"image_size\":8,\"channels\":1,\"patch_size\":4,\"width\":8,\"layers\":1,\"heads\":2,"
             "\"output_dim\":4}' --out %s --head-out %s --classes 3",
             model, head);
    char err[4096];
    cr_assert_eq(run(args, err, sizeof err), 0, "%s", err);
    FILE *f = fopen(model, "rb");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *bytes = malloc((size_t)n);
    cr_assert_eq(fread(bytes, 1, (size_t)n, f), (size_t)n);
    fclose(f);

    const char *cases[][2] = {
        {put(d, "empty.safetensors", "", 0), "too small"},
        {put(d, "truncated.safetensors", bytes, (size_t)n / 2), NULL},
        {put_header(d, "badjson.safetensors", "{\"a\": [1,2", 0), NULL},
        {put_header(d, "dtype.safetensors", "{\"x\":{\"dtype\":\"F99\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4), "F99"},
        {put_header(d, "range.safetensors", "{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8), NULL},
        {put_header(d, "overlap.safetensors",
                    "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                    "\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12), "overlap"},
        {put_header(d, "size.safetensors", "{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8), NULL},
        {head, "ttmerge.arch"}, /* a valid safetensors file that is not a model */
    };
    /* header length past the end of the file */
    unsigned char past[16] = {0xff, 0xff, 0, 0, 0, 0, 0, 0, '{', '}'};
    const char *past_path = put(d, "past.safetensors", past, 10);
    snprintf(out, sizeof out, "%s/logits.npy", d);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0] + 1; i++) {
        const char *path = i < sizeof cases / sizeof cases[0] ? cases[i][0] : past_path;
        const char *phrase = i < sizeof cases / sizeof cases[0] ? cases[i][1] : NULL;
        snprintf(args, sizeof args,
                 "eval --model %s --head %s --input /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz "
                 "--logits-out %s",
                 path, head, out);
        expect_one_line_error(args, 2, phrase);
        snprintf(args, sizeof args, "%s", path);
        char err2[4096];
        run(args, err2, sizeof err2); /* also not a verb: exit 2 */
        struct stat st;
        cr_expect_neq(stat(out, &st), 0, "an output file was written for %s", path);
        /* the error names the file */
        char cmd[2048];
        snprintf(cmd, sizeof cmd, "eval --model %s --head %s --input /etc/hostname", path, head);
        char e3[4096];
        run(cmd, e3, sizeof e3);
        cr_expect(strstr(e3, path) != NULL || strstr(e3, "/etc/hostname") != NULL, "error does not name a file: %s", e3);
    }
    free(bytes);
}

/* A golden for one suite checked against the results of another: one line naming both, exit 2
 * (not 48 "missing" rows). A golden that shares a suite with the results is compared as usual. */
Test(cli, check_names_a_golden_for_another_suite) {
    const char *dir = tu_tmpdir("cli-check");
    cr_assert_not_null(dir);
    char d[512];
    snprintf(d, sizeof d, "%s", dir);
    const char *header = "suite,method,params,task,accuracy,normalized_accuracy,seconds,peak_rss_mb,git_revision,threads,"
                         "seed,status,error\n";
    char golden[1024], results[1024];
    snprintf(golden, sizeof golden, "%sgtiny,ta,{},mnist,50.0000,0.6000,1.0,10.0,x,2,0,ok,\n", header);
    snprintf(results, sizeof results, "%svision8,ta,{},mnist,70.0000,0.8000,1.0,10.0,x,2,0,ok,\n", header);
    const char *g = put(d, "golden.csv", golden, strlen(golden));
    const char *r = put(d, "results.csv", results, strlen(results));
    char args[2048];
    snprintf(args, sizeof args, "check --golden %s --results %s", g, r);
    expect_one_line_error(args, 2, "gtiny");
    char err[4096];
    run(args, err, sizeof err);
    cr_expect(strstr(err, "vision8") != NULL, "the results' suite is not named: %s", err);
    snprintf(args, sizeof args, "check --golden %s --results %s --tol 100", g, g);
    cr_expect_eq(run(args, err, sizeof err), 0, "a golden checked against itself: %s", err);
}
