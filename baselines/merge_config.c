/* merge_config.c — see merge_config.h. */
#include "baselines/merge_config.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "core/fileio.h"
#include "core/safetensors.h"

#define MC_MAX_BYTES (1 << 20)

typedef struct mc_ctx {
    const char *file;
    yaml_document_t *doc;
    tt_err *err;
    am_config *c;
} mc_ctx;

static int mfail(mc_ctx *m, const yaml_node_t *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int mfail(mc_ctx *m, const yaml_node_t *n, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n) return tt_fail(m->err, TT_EINPUT, "%s: line %zu: %s", m->file, n->start_mark.line + 1, msg);
    return tt_fail(m->err, TT_EINPUT, "%s: %s", m->file, msg);
}

static yaml_node_t *node_at(mc_ctx *m, int i) { return yaml_document_get_node(m->doc, i); }
static const char *scalar(const yaml_node_t *n) { return (const char *)n->data.scalar.value; }

static int get_str(mc_ctx *m, const yaml_node_t *n, const char *what, char *dst, size_t cap) {
    if (n->type != YAML_SCALAR_NODE) return mfail(m, n, "%s must be a value", what);
    if (strlen(scalar(n)) != n->data.scalar.length) return mfail(m, n, "%s contains a NUL character", what);
    if (n->data.scalar.length == 0) return mfail(m, n, "%s is empty", what);
    if (n->data.scalar.length >= cap) return mfail(m, n, "%s is longer than %zu characters", what, cap - 1);
    memcpy(dst, scalar(n), n->data.scalar.length + 1);
    return 0;
}

static int get_num(mc_ctx *m, const yaml_node_t *n, const char *what, double lo, double hi, double *out) {
    char b[64];
    if (get_str(m, n, what, b, sizeof b)) return -1;
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return mfail(m, n, "%s must be a number, not a quoted string", what);
    char *end;
    double v = strtod(b, &end);
    if (end == b || *end || !isfinite(v) || v < lo || v > hi)
        return mfail(m, n, "%s must be a number in [%g, %g], not '%s'", what, lo, hi, b);
    *out = v;
    return 0;
}

/* Pairs of a mapping: 1 per pair, 0 at the end, -1 on error (non-scalar or repeated key). */
typedef struct map_iter {
    const yaml_node_t *map;
    yaml_node_pair_t *pr;
} map_iter;

static int map_begin(mc_ctx *m, const yaml_node_t *n, const char *where, map_iter *it) {
    if (n->type != YAML_MAPPING_NODE) return mfail(m, n, "%s must be a mapping", where);
    it->map = n;
    it->pr = n->data.mapping.pairs.start;
    return 0;
}

static int map_next(mc_ctx *m, map_iter *it, const char **key, yaml_node_t **kn, yaml_node_t **vn) {
    if (it->pr >= it->map->data.mapping.pairs.top) return 0;
    yaml_node_pair_t *pr = it->pr++;
    *kn = node_at(m, pr->key);
    *vn = node_at(m, pr->value);
    if (!*kn || !*vn) return mfail(m, it->map, "malformed mapping");
    if ((*kn)->type != YAML_SCALAR_NODE || strlen(scalar(*kn)) != (*kn)->data.scalar.length)
        return mfail(m, *kn, "keys must be plain names");
    *key = scalar(*kn);
    for (yaml_node_pair_t *q = it->map->data.mapping.pairs.start; q < pr; q++) {
        yaml_node_t *qk = node_at(m, q->key);
        if (qk && qk->type == YAML_SCALAR_NODE && !strcmp(scalar(qk), *key))
            return mfail(m, *kn, "duplicate key '%.60s'", *key);
    }
    return 1;
}

static int unknown(mc_ctx *m, const yaml_node_t *kn, const char *key, const char *where) {
    return mfail(m, kn, "unknown key '%.60s' in %s", key, where);
}

static const struct {
    const char *name;
    am_method method;
    int dare_ties; /* -1 = leave */
} method_table[] = {
    {"task_arithmetic", AM_TA, -1}, {"ta", AM_TA, -1},           {"ties", AM_TIES, -1},
    {"dare_ties", AM_DARE, 1},      {"dare_linear", AM_DARE, 0}, {"dare", AM_DARE, -1},
    {"consensus-ta", AM_CONSENSUS_TA, -1}, {"consensus-ties", AM_CONSENSUS_TIES, -1},
    {"linear", AM_AVERAGE, -1},     {"average", AM_AVERAGE, -1},
    {"tsv-m", AM_TSV_M, -1},        {"iso-c", AM_ISO_C, -1},     {"iso-cts", AM_ISO_CTS, -1},
    {"awd", AM_AWD, -1},            {"lata", AM_LATA, -1},       {"tatr", AM_TATR, -1},
    {"cart", AM_CART, -1},           {"pcb", AM_PCB, -1},
};

/* weight: a number, or a list of {filter, value} rules (the last may omit filter: the default) */
static int parse_weight(mc_ctx *m, const yaml_node_t *n, am_model *md) {
    if (n->type != YAML_SEQUENCE_NODE) return get_num(m, n, "weight", -1e6, 1e6, &md->weight);
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
        yaml_node_t *e = node_at(m, *it);
        if (!e) return mfail(m, n, "malformed list");
        if (e->type != YAML_MAPPING_NODE)
            return mfail(m, e, "weight lists are {filter: NAME-PART, value: W} rules (gradients are not supported)");
        map_iter mi;
        const char *k;
        yaml_node_t *kn, *v;
        int r;
        bool have_filter = false, have_value = false;
        am_rule rule = {{0}, 0};
        map_begin(m, e, "a weight rule", &mi);
        while ((r = map_next(m, &mi, &k, &kn, &v)) > 0) {
            if (!strcmp(k, "filter")) {
                if (get_str(m, v, "filter", rule.pattern, sizeof rule.pattern)) return -1;
                have_filter = true;
            } else if (!strcmp(k, "value")) {
                if (get_num(m, v, "value", -1e6, 1e6, &rule.value)) return -1;
                have_value = true;
            } else {
                return unknown(m, kn, k, "a weight rule");
            }
        }
        if (r < 0) return -1;
        if (!have_value) return mfail(m, e, "a weight rule needs a value");
        if (!have_filter) {
            md->weight = rule.value;
            continue;
        }
        if (md->n_weight_rule == AM_MAX_RULES) return mfail(m, e, "more than %d weight rules", AM_MAX_RULES);
        md->weight_rule[md->n_weight_rule++] = rule;
    }
    return 0;
}

/* parameters of a model (weight, density), or the method-wide ones (also the models' defaults) */
static int parse_params(mc_ctx *m, const yaml_node_t *n, am_model *md, bool top) {
    map_iter it;
    if (map_begin(m, n, "parameters", &it)) return -1;
    const char *k;
    yaml_node_t *kn, *v;
    int r;
    am_config *c = m->c;
    char word[16] = "";
    while ((r = map_next(m, &it, &k, &kn, &v)) > 0) {
        int rc;
        if (!strcmp(k, "weight")) rc = parse_weight(m, v, md);
        else if (!strcmp(k, "density")) rc = get_num(m, v, "density", 0, 1, &md->density);
        else if (top && !strcmp(k, "lambda")) rc = get_num(m, v, "lambda", -1e6, 1e6, &c->lambda);
        else if (top && !strcmp(k, "tall_lambda")) rc = get_num(m, v, "tall_lambda", 0, 1e6, &c->tall_lambda);
        else if (top && !strcmp(k, "k")) {
            double x = 0;
            rc = get_num(m, v, "k", 0, AM_MAX_MODELS + 1, &x);
            if (!rc && x != floor(x)) rc = mfail(m, v, "k must be an integer");
            c->k = (int)x;
        } else if (top && !strcmp(k, "merge")) {
            rc = get_str(m, v, "merge", word, sizeof word);
            if (!rc && strcmp(word, "mean") && strcmp(word, "sum")) rc = mfail(m, v, "merge must be mean or sum");
            c->mean = !strcmp(word, "mean");
        } else if (top) { /* the method's other parameters, as --set takes them (am_config_set) */
            char val[64], kv[128];
            tt_err e = {0};
            if (!(rc = get_str(m, v, k, val, sizeof val))) {
                snprintf(kv, sizeof kv, "%.60s=%s", k, val);
                if (am_config_set(c, kv, &e)) rc = mfail(m, kn, "%s", e.msg);
            }
        } else {
            rc = unknown(m, kn, k, "a model's parameters (weight, density)");
        }
        if (rc) return -1;
    }
    return r;
}

static int parse_models(mc_ctx *m, const yaml_node_t *n, const am_model *dflt, const yaml_node_t **model_param_nodes) {
    if (n->type != YAML_SEQUENCE_NODE) return mfail(m, n, "models must be a list");
    am_config *c = m->c;
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
        yaml_node_t *e = node_at(m, *it);
        if (!e) return mfail(m, n, "malformed list");
        if (c->K == AM_MAX_MODELS) return mfail(m, e, "more than %d models", AM_MAX_MODELS);
        am_model *md = &c->model[c->K];
        *md = *dflt;
        md->path[0] = 0;
        map_iter mi;
        const char *k;
        yaml_node_t *kn, *v;
        int r;
        if (map_begin(m, e, "a models entry", &mi)) return -1;
        const yaml_node_t *params = NULL;
        while ((r = map_next(m, &mi, &k, &kn, &v)) > 0) {
            if (!strcmp(k, "model")) {
                if (get_str(m, v, "model", md->path, sizeof md->path)) return -1;
            } else if (!strcmp(k, "parameters")) {
                params = v;
            } else {
                return unknown(m, kn, k, "a models entry (model, parameters)");
            }
        }
        if (r < 0) return -1;
        if (!md->path[0]) return mfail(m, e, "a models entry needs model: PATH");
        model_param_nodes[c->K++] = params;
    }
    return 0;
}

static int parse_top(mc_ctx *m, const yaml_node_t *root) {
    map_iter it;
    if (map_begin(m, root, "the configuration", &it)) return -1;
    am_config *c = m->c;
    const char *k;
    yaml_node_t *kn, *v;
    int r;
    const yaml_node_t *models = NULL, *params = NULL, *method = NULL;
    char word[32], dtype[32] = "", out_dtype[32] = "";
    while ((r = map_next(m, &it, &k, &kn, &v)) > 0) {
        int rc = 0;
        if (!strcmp(k, "merge_method")) method = v;
        else if (!strcmp(k, "base_model")) rc = get_str(m, v, "base_model", c->base, sizeof c->base);
        else if (!strcmp(k, "models")) models = v;
        else if (!strcmp(k, "parameters")) params = v;
        else if (!strcmp(k, "dtype")) rc = get_str(m, v, "dtype", dtype, sizeof dtype);
        else if (!strcmp(k, "out_dtype")) rc = get_str(m, v, "out_dtype", out_dtype, sizeof out_dtype);
        else if (!strcmp(k, "out_shard_size")) {
            rc = get_str(m, v, "out_shard_size", word, sizeof word);
            if (!rc && mc_parse_size(word, &c->shard_size)) rc = mfail(m, v, "out_shard_size '%s' is not a size like 5GB", word);
        } else if (!strcmp(k, "max_memory")) {
            rc = get_str(m, v, "max_memory", word, sizeof word);
            if (!rc && (mc_parse_size(word, &c->max_memory) || c->max_memory == 0))
                rc = mfail(m, v, "max_memory '%s' is not a size like 16GB", word);
        } else if (!strcmp(k, "seed")) {
            double s = 0;
            rc = get_num(m, v, "seed", 0, 9e15, &s);
            if (!rc && s != floor(s)) rc = mfail(m, v, "seed must be an integer");
            c->seed = (uint64_t)s;
        } else if (!strcmp(k, "slices") || !strcmp(k, "tokenizer_source") || !strcmp(k, "tokenizer") ||
                   !strcmp(k, "chat_template") || !strcmp(k, "layer_range"))
            rc = mfail(m, kn, "MergeKit's '%s' is not supported (whole models only)", k);
        else
            rc = unknown(m, kn, k, "the configuration");
        if (rc) return -1;
    }
    if (r < 0) return -1;
    if (!method) return mfail(m, root, "merge_method is required");
    if (get_str(m, method, "merge_method", word, sizeof word)) return -1;
    size_t i = 0, nm = sizeof method_table / sizeof *method_table;
    while (i < nm && strcmp(word, method_table[i].name)) i++;
    if (i == nm) return mfail(m, method, "unknown merge_method '%s'", word);
    c->method = method_table[i].method;
    if (method_table[i].dare_ties >= 0) c->dare_ties = method_table[i].dare_ties;
    if (!c->base[0]) return mfail(m, root, "base_model is required");
    if (!models) return mfail(m, root, "models is required");
    /* MergeKit's default; the SVD merges and PCB, which MergeKit lacks, keep their own (am_default_lambda) */
    c->lambda = c->method == AM_TSV_M || c->method == AM_ISO_C || c->method == AM_ISO_CTS || c->method == AM_CART ||
                        c->method == AM_PCB
                    ? -1
                    : 1.0;
    am_model dflt = c->model[0];
    dflt.n_weight_rule = 0;
    dflt.weight = 1, dflt.density = -1;
    if (params && parse_params(m, params, &dflt, true)) return -1;
    const yaml_node_t *mp[AM_MAX_MODELS] = {0};
    c->K = 0;
    if (parse_models(m, models, &dflt, mp)) return -1;
    int kept = 0;
    for (int k2 = 0; k2 < c->K; k2++) { /* MergeKit lists the base among the models: skip it */
        if (!strcmp(c->model[k2].path, c->base)) continue;
        if (mp[k2] && parse_params(m, mp[k2], &c->model[k2], false)) return -1;
        if (kept != k2) c->model[kept] = c->model[k2];
        kept++;
    }
    c->K = kept;
    if (!c->K) return mfail(m, models, "no model besides the base");
    const char *dt = out_dtype[0] ? out_dtype : dtype;
    if (dt[0]) {
        if (!strcmp(dt, "float32")) c->out_dtype = ST_F32;
        else if (!strcmp(dt, "float16")) c->out_dtype = ST_F16;
        else if (!strcmp(dt, "bfloat16")) c->out_dtype = ST_BF16;
        else return mfail(m, root, "dtype '%s': expected float32, float16 or bfloat16", dt);
    }
    return 0;
}

static int yaml_problem(const char *file, const yaml_parser_t *p, tt_err *err) {
    if (p->error == YAML_MEMORY_ERROR) return tt_fail(err, TT_ENOMEM, "%s: out of memory parsing YAML", file);
    const char *prob = p->problem ? p->problem : "malformed YAML";
    return tt_fail(err, TT_EINPUT, "%s: line %zu: not YAML: %s", file, p->problem_mark.line + 1, prob);
}

int mc_parse(am_config *c, const char *text, size_t len, const char *file_label, tt_err *err) {
    const char *file = file_label ? file_label : "config";
    if (len > MC_MAX_BYTES) return tt_fail(err, TT_EINPUT, "%s: larger than %d bytes", file, MC_MAX_BYTES);
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) return tt_fail(err, TT_ENOMEM, "%s: out of memory", file);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    yaml_document_t doc;
    if (!yaml_parser_load(&p, &doc)) {
        yaml_problem(file, &p, err);
        yaml_parser_delete(&p);
        return -1;
    }
    mc_ctx m = {file, &doc, err, c};
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    int rc = root ? parse_top(&m, root) : tt_fail(err, TT_EINPUT, "%s: empty (no YAML document)", file);
    if (!rc) {
        yaml_document_t more;
        if (!yaml_parser_load(&p, &more)) {
            rc = yaml_problem(file, &p, err);
        } else {
            if (yaml_document_get_root_node(&more)) rc = tt_fail(err, TT_EINPUT, "%s: more than one YAML document", file);
            yaml_document_delete(&more);
        }
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&p);
    return rc;
}

int mc_load(am_config *c, const char *path, tt_err *err) {
    char *text;
    size_t n;
    if (fio_read_all(path, &text, &n, MC_MAX_BYTES, err)) return -1;
    int rc = mc_parse(c, text, n, path, err);
    free(text);
    return rc;
}

int mc_parse_size(const char *s, size_t *out) {
    char *end;
    double x = strtod(s, &end);
    static const struct {
        const char *unit;
        double mult;
    } units[] = {{"", 1},         {"B", 1},           {"KB", 1e3},           {"MB", 1e6}, {"GB", 1e9},
                 {"TB", 1e12},    {"KiB", 1024.0},    {"MiB", 1048576.0},    {"GiB", 1073741824.0}};
    if (end == s || !(x >= 0)) return -1;
    for (size_t i = 0; i < sizeof units / sizeof *units; i++)
        if (!strcmp(end, units[i].unit)) {
            double b = x * units[i].mult;
            if (b > 1e18) return -1;
            *out = (size_t)b;
            return 0;
        }
    return -1;
}
