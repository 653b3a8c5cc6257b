/* test_tiny_hostile.c — hostile sizes: 64 tasks (the limit) and 65, a suite of one task, a task
 * with one class, a checkpoint whose header claims a huge tensor or a huge model, and a
 * checkpoint larger than this machine's memory (a sparse file: memory-mapped, never read
 * whole). Suites are synthesised from the tiny suite by symbolic links: task k of a synthetic
 * suite is tiny's task k % 3 under the name tNN. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "baselines/methods.h"
#include "core/checkpoint.h"
#include "core/fileio.h"
#include "tests/testutil.h"

static const char *tiny_dir(void) {
    static char dir[512];
    char full[PATH_MAX];
    const char *d = getenv("TTMERGE_TINY_SUITE");
    cr_assert_not_null(d, "TTMERGE_TINY_SUITE is not set (run under ctest)");
    cr_assert_not_null(realpath(d, full), "%s", d);
    cr_assert_lt(strlen(full), sizeof dir);
    memcpy(dir, full, strlen(full) + 1);
    return dir;
}

/* A fresh empty directory for one test, copied out of tu_tmpdir's static buffer. */
static void fresh_dir(char *dir, size_t cap, const char *tag) {
    const char *d = tu_tmpdir(tag);
    cr_assert_not_null(d);
    snprintf(dir, cap, "%s", d);
}

/* dir/sub/name -> target */
static void link_to(const char *target, const char *dir, const char *sub, const char *name) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s%s%s", dir, sub, *sub ? "/" : "", name);
    cr_assert_eq(symlink(target, path), 0, "symlink %s -> %s", path, target);
}

/* A suite directory of K tasks t00.. where task k reuses tiny's task (only >= 0 ? only : k % 3):
 * its data, head and fine-tuned checkpoint are symbolic links, its manifest entry a copy. */
static void make_suite(const char *dir, int K, int only) {
    const char *tiny = tiny_dir();
    char path[PATH_MAX], target[PATH_MAX];
    snprintf(path, sizeof path, "%s/suite.json", tiny);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    cr_assert_not_null(root, "%s: %s", path, je.text);
    json_t *src = json_object_get(root, "tasks"), *tasks = json_array();
    const char *subdirs[] = {"data", "heads", "finetuned"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, subdirs[i]);
        cr_assert_eq(mkdir(path, 0755), 0, "%s", path);
    }
    snprintf(target, sizeof target, "%s/pretrained.safetensors", tiny);
    link_to(target, dir, "", "pretrained.safetensors");
    for (int k = 0; k < K; k++) {
        json_t *from = json_array_get(src, (size_t)(only >= 0 ? only : k % (int)json_array_size(src)));
        json_t *t = json_deep_copy(from);
        char name[16], rel[64];
        snprintf(name, sizeof name, "t%02d", k);
        json_object_set_new(t, "name", json_string(name));
        snprintf(rel, sizeof rel, "heads/%s.safetensors", name);
        json_object_set_new(t, "head", json_string(rel));
        snprintf(rel, sizeof rel, "finetuned/%s.safetensors", name);
        json_object_set_new(t, "finetuned", json_pack("{s:s}", "full", rel));
        const char *orig = json_string_value(json_object_get(from, "name"));
        snprintf(target, sizeof target, "%s/data/%s", tiny, orig);
        link_to(target, dir, "data", name);
        snprintf(target, sizeof target, "%s/%s", tiny, json_string_value(json_object_get(from, "head")));
        snprintf(rel, sizeof rel, "%s.safetensors", name);
        link_to(target, dir, "heads", rel);
        snprintf(target, sizeof target, "%s/%s", tiny,
                 json_string_value(json_object_get(json_object_get(from, "finetuned"), "full")));
        link_to(target, dir, "finetuned", rel);
        json_array_append_new(tasks, t);
    }
    json_object_set_new(root, "tasks", tasks);
    snprintf(path, sizeof path, "%s/suite.json", dir);
    cr_assert_eq(json_dump_file(root, path, JSON_INDENT(1)), 0);
    json_decref(root);
}

static int run_cli(const char *args, const char *out_file, char *err, size_t cap) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s %s >%s", tu_ttmerge_bin(), args, out_file ? out_file : "/dev/null");
    return tu_run(cmd, err, cap);
}

static int count_lines(const char *path) {
    FILE *f = fopen(path, "r");
    int n = 0, c;
    while (f && (c = fgetc(f)) != EOF) n += c == '\n';
    if (f) fclose(f);
    return n;
}

/* ---- K = 64 tasks, the most a suite may have ---- */

/* TA over 64 tasks equals θ0 + λ Σ_k τ_k built from tiny's three checkpoints (task j appears
 * n_j times); layer-wise AdaMerging adapts 64 × tensors coefficients in one joint batch of
 * 64 tasks; eval prints 64 rows and the average. */
Test(hostile, sixty_four_tasks, .timeout = 600) {
    char dir[512];
    fresh_dir(dir, sizeof dir, "k64");
    make_suite(dir, 64, -1);

    suite s;
    tt_err e = {0};
    cr_assert_eq(suite_open(&s, dir, NULL, &e), 0, "%s", e.msg);
    cr_assert_eq(s.n_tasks, 64);
    merge_ctx ctx;
    const char *sets[] = {"lambda=0.3"};
    cr_assert_eq(merge_ctx_open(&ctx, &s, &method_ta, sets, 1, 0, &e), 0, "%s", e.msg);
    cr_assert_eq(ctx.K, 64);
    cr_assert_eq(method_ta.run(&ctx, &e), 0, "%s", e.msg);
    suite t;
    cr_assert_eq(suite_open(&t, tiny_dir(), NULL, &e), 0, "%s", e.msg);
    size_t total = ctx.pre.lay.total;
    float *want = malloc(total * sizeof(float));
    memcpy(want, ctx.pre.params, total * sizeof(float));
    for (int j = 0; j < t.n_tasks; j++) {
        ckpt_vit ft;
        cr_assert_eq(ckpt_load_vit(&ft, t.tasks[j].finetuned, &e), 0, "%s", e.msg);
        int n_j = 64 / t.n_tasks + (j < 64 % t.n_tasks);
        for (int l = 0; l < ctx.pre.lay.count; l++)
            for (size_t i = ctx.pre.lay.t[l].offset; i < ctx.pre.lay.t[l].offset + ctx.pre.lay.t[l].numel; i++)
                want[i] += (float)(0.3 * n_j * ((double)ft.params[i] - ctx.pre.params[i]));
        ckpt_vit_free(&ft);
    }
    /* 64 float additions against 3 scaled ones: a few ulp of |θ| ~ 1 */
    cr_expect(tu_allclose("TA over 64 tasks", ctx.out.params, want, total, 2e-5, 1e-4));
    free(want);
    const int L = ctx.pre.lay.count;
    suite_close(&t);
    merge_ctx_close(&ctx);
    suite_close(&s);

    char args[2048], err[4096], out[600];
    snprintf(out, sizeof out, "%s/ada.safetensors", dir);
    snprintf(args, sizeof args, "merge --suite %s --method adamerging --set steps=2 --set batch=2 --set accum=1 --out %s --quiet",
             dir, out);
    cr_assert_eq(run_cli(args, NULL, err, sizeof err), 0, "%s", err);
    st_file *f;
    cr_assert_eq(st_open(&f, out, &e), 0, "%s", e.msg);
    const st_tensor *lam = st_find(f, "ttmerge.lambda");
    cr_assert_not_null(lam);
    cr_expect(lam->ndim == 2 && lam->shape[0] == 64 && lam->shape[1] == L, "ttmerge.lambda has shape [%ld, %ld], want [64, %d]",
              (long)lam->shape[0], (long)lam->shape[1], L);
    st_close(f);
    char table[600];
    snprintf(table, sizeof table, "%s/eval.csv", dir);
    snprintf(args, sizeof args, "eval --suite %s --model %s", dir, out);
    cr_assert_eq(run_cli(args, table, err, sizeof err), 0, "%s", err);
    cr_expect_eq(count_lines(table), 1 + 64 + 1, "header, 64 tasks, average");
    tu_rm_tree(dir);
}

/* 65 tasks: refused when the suite is opened, naming the limit. */
Test(hostile, sixty_five_tasks_refused) {
    char dir[512], err[4096], args[1200];
    fresh_dir(dir, sizeof dir, "k65");
    make_suite(dir, 65, -1);
    suite s;
    tt_err e = {0};
    cr_assert_neq(suite_open(&s, dir, NULL, &e), 0);
    cr_expect(strstr(e.msg, "suite.json: 65 tasks, at most 64") != NULL, "%s", e.msg);
    snprintf(args, sizeof args, "merge --suite %s --method ta --out %s/x.safetensors", dir, dir);
    cr_expect_eq(run_cli(args, NULL, err, sizeof err), 2, "%s", err);
    cr_expect(strstr(err, "65 tasks, at most 64") != NULL, "%s", err);
    tu_rm_tree(dir);
}

/* ---- a suite of one task ---- */

/* Every method runs on K = 1. Documented degenerate cases: the consensus merges keep the weights
 * that at least k = 2 tasks use (none), and TATR's conflict Ω is identically 0 with one task,
 * so its rule "keep Ω < threshold" (FusionBench's) keeps nothing: all three give θ0, i.e. the
 * zero-shot accuracy. */
Test(hostile, one_task_suite_runs_every_method, .timeout = 600) {
    char dir[512], args[2048], err[8192], lb[600];
    fresh_dir(dir, sizeof dir, "k1");
    make_suite(dir, 1, 0);
    snprintf(args, sizeof args, "bench --suite %s --methods all --out %s/res --quiet", dir, dir);
    cr_assert_eq(run_cli(args, NULL, err, sizeof err), 0, "%s", err);
    snprintf(lb, sizeof lb, "%s/res/leaderboard.csv", dir);
    FILE *f = fopen(lb, "r");
    cr_assert_not_null(f);
    char line[1024];
    int methods = 0;
    double zs = -1, same[3] = {-2, -3, -4};
    const char *theta0[3] = {"consensus-ta", "consensus-ties", "tatr"};
    cr_assert_not_null(fgets(line, sizeof line, f)); /* header */
    while (fgets(line, sizeof line, f)) {
        char method[64];
        double avg;
        cr_assert_eq(sscanf(line, "%*d,\"%63[^\"]\",%lf", method, &avg), 2, "%s", line);
        cr_expect(strstr(line, ",\"ok\"") != NULL, "%s did not finish ok on one task: %s", method, line);
        if (!strcmp(method, "zeroshot")) zs = avg;
        for (int i = 0; i < 3; i++)
            if (!strcmp(method, theta0[i])) same[i] = avg;
        methods++;
    }
    fclose(f);
    cr_expect_geq(methods, 13);
    for (int i = 0; i < 3; i++) cr_expect_eq(same[i], zs, "%s %.4f, zero-shot %.4f", theta0[i], same[i], zs);
    tu_rm_tree(dir);
}

/* ---- a task with one class ---- */

/* A suite file cannot express one (coarse labels need >= 2 classes: test_suite_spec); a built
 * suite whose head has one class is refused when it is opened, naming the head. */
Test(hostile, single_class_task_refused) {
    char dir[512], head[600], err[4096], args[1400];
    fresh_dir(dir, sizeof dir, "oneclass");
    make_suite(dir, 2, -1);
    snprintf(head, sizeof head, "%s/heads/t01.safetensors", dir);
    cr_assert_eq(unlink(head), 0);
    suite s;
    tt_err e = {0};
    float w[64] = {0}, b[1] = {0};
    ckpt_head h = {.classes = 1, .dim = 32, .W = w, .b = b};
    cr_assert_eq(ckpt_save_head(&h, head, &e), 0, "%s", e.msg);
    cr_assert_neq(suite_open(&s, dir, NULL, &e), 0);
    cr_expect(strstr(e.msg, "t01.safetensors: task t01 has 1 class; a task needs at least 2") != NULL, "%s", e.msg);
    snprintf(args, sizeof args, "eval --suite %s --model %s/pretrained.safetensors", dir, dir);
    cr_expect_eq(run_cli(args, NULL, err, sizeof err), 2, "%s", err);
    cr_expect(strstr(err, "needs at least 2") != NULL && strchr(err, '\n') == err + strlen(err) - 1, "%s", err);
    tu_rm_tree(dir);
}

/* ---- checkpoints that claim more than they hold ---- */

static void put_safetensors(const char *path, const char *header, size_t data_bytes) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    uint64_t n = strlen(header);
    unsigned char len[8];
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)(n >> (8 * i));
    fwrite(len, 1, 8, f);
    fwrite(header, 1, n, f);
    for (size_t i = 0; i < data_bytes; i++) fputc(0, f);
    fclose(f);
}

/* 16 of tiny's test images as IDX (the CLI needs an input). */
static void put_images(const char *dir, char *path, size_t cap) {
    char src[PATH_MAX];
    snprintf(src, sizeof src, "%s/data/mnist/test-images.idx", tiny_dir());
    FILE *in = fopen(src, "rb");
    cr_assert_not_null(in);
    unsigned char hdr[16], px[16 * 784];
    cr_assert_eq(fread(hdr, 1, 16, in), 16);
    cr_assert_eq(fread(px, 1, sizeof px, in), sizeof px);
    fclose(in);
    hdr[4] = hdr[5] = hdr[6] = 0, hdr[7] = 16;
    snprintf(path, cap, "%s/images.idx", dir);
    FILE *out = fopen(path, "wb");
    cr_assert_not_null(out);
    fwrite(hdr, 1, 16, out);
    fwrite(px, 1, sizeof px, out);
    fclose(out);
}

/* Run the CLI on a hostile checkpoint under an address-space limit (not under ASan, whose
 * shadow memory cannot be mapped then): it must be exit 2 (bad input), never an allocation. */
static void expect_cheap_refusal(const char *dir, const char *model, const char *needle) {
    char args[2048], err[4096], images[600];
    put_images(dir, images, sizeof images);
#if defined(__SANITIZE_ADDRESS__)
    const char *limit = "";
#else
    const char *limit = "ulimit -v 1000000; exec ";
#endif
    snprintf(args, sizeof args, "bash -c '%s%s eval --model %s --input %s --head %s/heads/mnist.safetensors' >/dev/null",
             limit, tu_ttmerge_bin(), model, images, tiny_dir());
    struct rusage before, after;
    getrusage(RUSAGE_CHILDREN, &before);
    int st = tu_run(args, err, sizeof err);
    getrusage(RUSAGE_CHILDREN, &after);
    cr_expect_eq(st, 2, "exit %d: %s", st, err);
    cr_expect(strstr(err, needle) != NULL, "want '%s' in: %s", needle, err);
    cr_expect_eq(strchr(err, '\n'), err + strlen(err) - 1, "one line: %s", err);
    cr_expect_lt(after.ru_maxrss, 600 * 1024, "a child peaked at %ld MB", after.ru_maxrss / 1024);
}

/* A 100-byte file whose header claims one 256 GiB tensor: the offsets are checked against the
 * file size before anything is mapped or allocated. */
Test(hostile, header_claiming_a_huge_tensor) {
    char dir[512], path[600];
    fresh_dir(dir, sizeof dir, "hugeclaim");
    snprintf(path, sizeof path, "%s/huge.safetensors", dir);
    put_safetensors(path, "{\"t\":{\"dtype\":\"F32\",\"shape\":[68719476736],\"data_offsets\":[0,274877906944]}}", 16);
    st_file *f;
    tt_err e = {0};
    cr_assert_neq(st_open(&f, path, &e), 0);
    cr_expect(strstr(e.msg, "end 274877906944 is past the end of the data section (16 bytes)") != NULL, "%s", e.msg);
    expect_cheap_refusal(dir, path, "past the end of the data section");
    tu_rm_tree(dir);
}

/* Regression (found by this test): a 400-byte file whose ttmerge.arch claims a 19 GB ViT
 * (width 4096, 24 layers) used to get its 19 GB flat buffer allocated and zeroed before any
 * tensor was looked up — exit 3 "out of memory" under a limit, 19 GB of RSS without one. The
 * tensors are now checked against the file first: exit 2, "tensor conv1.weight missing". */
Test(hostile, architecture_claiming_a_huge_model) {
    char dir[512], path[600];
    fresh_dir(dir, sizeof dir, "hugearch");
    snprintf(path, sizeof path, "%s/arch.safetensors", dir);
    put_safetensors(path,
                    "{\"__metadata__\":{\"ttmerge.arch\":\"{\\\"image_size\\\":28,\\\"channels\\\":1,\\\"patch_size\\\":7,"
                    "\\\"width\\\":4096,\\\"layers\\\":24,\\\"heads\\\":16,\\\"output_dim\\\":64}\"},"
                    "\"class_embedding\":{\"dtype\":\"F32\",\"shape\":[4096],\"data_offsets\":[0,16384]}}",
                    16384);
    expect_cheap_refusal(dir, path, "tensor conv1.weight missing");
    tu_rm_tree(dir);
}

/* ---- a checkpoint larger than memory ---- */

/* tiny's pretrained checkpoint plus one "ballast" tensor of twice this machine's RAM (at least
 * 32 GiB), as a sparse file: the reader maps it and validates the header only, so loading the
 * ViT touches the ViT's pages and nothing else; eval gives the original's logits bit for bit. */
static char sparse_dir[512]; /* removed by .fini even when an assertion stops the test */
static void remove_sparse_dir(void) {
    if (sparse_dir[0]) tu_rm_tree(sparse_dir);
}

Test(hostile, checkpoint_larger_than_memory_is_mapped_not_read, .timeout = 300, .fini = remove_sparse_dir) {
    char src[600], path[600], *dir = sparse_dir;
    fresh_dir(sparse_dir, sizeof sparse_dir, "sparse");
    snprintf(src, sizeof src, "%s/pretrained.safetensors", tiny_dir());
    FILE *in = fopen(src, "rb");
    cr_assert_not_null(in);
    unsigned char len[8];
    cr_assert_eq(fread(len, 1, 8, in), 8);
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)len[i] << (8 * i);
    char *htext = malloc(hlen + 1);
    cr_assert_eq(fread(htext, 1, hlen, in), hlen);
    htext[hlen] = 0;
    struct stat sb;
    cr_assert_eq(stat(src, &sb), 0);
    size_t data_len = (size_t)sb.st_size - 8 - hlen;
    char *data = malloc(data_len);
    cr_assert_eq(fread(data, 1, data_len, in), data_len);
    fclose(in);
    json_error_t je;
    json_t *h = json_loadb(htext, hlen, 0, &je);
    cr_assert_not_null(h, "%s", je.text);
    uint64_t ram = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
    uint64_t ballast = 2 * ram > ((uint64_t)32 << 30) ? 2 * ram : ((uint64_t)32 << 30);
    ballast &= ~(uint64_t)3;
    json_object_set_new(h, "ballast", json_pack("{s:s,s:[I],s:[I,I]}", "dtype", "F32", "shape", (json_int_t)(ballast / 4),
                                                "data_offsets", (json_int_t)data_len, (json_int_t)(data_len + ballast)));
    char *nh = json_dumps(h, JSON_COMPACT);
    snprintf(path, sizeof path, "%s/sparse.safetensors", dir);
    put_safetensors(path, nh, 0);
    FILE *out = fopen(path, "ab");
    cr_assert_not_null(out);
    cr_assert_eq(fwrite(data, 1, data_len, out), data_len);
    cr_assert_eq(fclose(out), 0);
    off_t size = (off_t)(8 + strlen(nh) + data_len + ballast);
    if (truncate(path, size) != 0) {
        cr_skip_test("this file system cannot hold a sparse file of %llu GiB", (unsigned long long)(ballast >> 30));
    }
    cr_assert_eq(stat(path, &sb), 0);
    cr_assert_geq((uint64_t)sb.st_size, ram, "the file must be larger than RAM");
    cr_assert_lt((uint64_t)sb.st_blocks * 512, (uint64_t)64 << 20, "not sparse: %lld blocks", (long long)sb.st_blocks);
    free(nh);
    free(htext);
    json_decref(h);

    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    st_file *f;
    tt_err e = {0};
    cr_assert_eq(st_open(&f, path, &e), 0, "%s", e.msg);
    const st_tensor *t = st_find(f, "ballast");
    cr_assert_not_null(t);
    cr_expect_eq(t->nbytes, ballast);
    const unsigned char *v = t->data; /* in the mapping: touching a page of it reads a hole */
    cr_assert_not_null(v);
    for (uint64_t i = 0; i < ballast; i += ballast / 64) cr_assert_eq(v[i], 0);
    ckpt_vit m, ref;
    cr_assert_eq(ckpt_read_vit(&m, f, &e), 0, "%s", e.msg);
    cr_assert_eq(ckpt_load_vit(&ref, src, &e), 0, "%s", e.msg);
    cr_expect_eq(memcmp(m.params, ref.params, m.lay.total * sizeof(float)), 0);
    ckpt_vit_free(&m);
    ckpt_vit_free(&ref);
    st_close(f);
    getrusage(RUSAGE_SELF, &r1);
    cr_expect_lt(r1.ru_maxrss - r0.ru_maxrss, 64 * 1024, "peak RSS grew by %ld MB", (r1.ru_maxrss - r0.ru_maxrss) / 1024);
    free(data);

    char images[600], args[2048], err[4096], o1[600], o2[600];
    put_images(dir, images, sizeof images);
    snprintf(o1, sizeof o1, "%s/sparse.npy", dir);
    snprintf(o2, sizeof o2, "%s/orig.npy", dir);
    snprintf(args, sizeof args, "eval --model %s --input %s --head %s/heads/mnist.safetensors --logits-out %s", path,
             images, tiny_dir(), o1);
    cr_assert_eq(run_cli(args, NULL, err, sizeof err), 0, "%s", err);
    snprintf(args, sizeof args, "eval --model %s --input %s --head %s/heads/mnist.safetensors --logits-out %s", src,
             images, tiny_dir(), o2);
    cr_assert_eq(run_cli(args, NULL, err, sizeof err), 0, "%s", err);
    char *a = NULL, *b = NULL;
    size_t na, nb;
    cr_assert_eq(fio_read_all(o1, &a, &na, 1 << 20, &e), 0, "%s", e.msg);
    cr_assert_eq(fio_read_all(o2, &b, &nb, 1 << 20, &e), 0, "%s", e.msg);
    cr_expect(na == nb && na > 16 * 10 * 4 && memcmp(a, b, na) == 0, "the logits differ (%zu and %zu bytes)", na, nb);
    free(a);
    free(b);
}
