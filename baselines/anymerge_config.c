/* anymerge_config.c — the configuration of the any-model merges (anymerge.h): method names, the
 * defaults, --set KEY=VALUE, weight rules. Apart from the engine, so that the configuration file's
 * parser (merge_config.c) and its fuzzer need nothing of the engine. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "baselines/anymerge.h"

static const char *const method_names[] = {"ta",      "ties",  "dare",  "consensus-ta", "consensus-ties",
                                           "average", "tsv-m", "iso-c", "iso-cts",      "awd",
                                           "lata",    "tatr",  "cart",  "pcb"};

int am_method_parse(const char *name, am_method *out) {
    for (int i = 0; i < (int)(sizeof method_names / sizeof *method_names); i++)
        if (!strcmp(name, method_names[i])) return *out = (am_method)i, 0;
    return -1;
}

const char *am_method_name(am_method m) { return method_names[m]; }

int am_method_count(void) { return (int)(sizeof method_names / sizeof *method_names); }

void am_config_init(am_config *c) {
    memset(c, 0, sizeof *c);
    c->lambda = -1;
    c->topk = 20;
    c->density = 0.5;
    c->mean = true;
    c->k = 2;
    c->tall_lambda = 0.6;
    c->common_space_fraction = 0.8;
    c->awd = (awd_opts){.alpha = 0.1, .beta = 0.01, .iters = 300};
    c->lata_topk = 50;
    c->lata_gamma = 0.5;
    c->tatr_q = 1;
    c->cart_rank_ratio = 0.12;
    c->pcb_clamp = 0.01;
    c->pcb_keep = 0.05;
    c->out_dtype = -1;
    c->copy_files = true;
    c->undecided_cap = (size_t)1 << 20;
    for (int k = 0; k < AM_MAX_MODELS; k++) c->model[k].weight = 1, c->model[k].density = -1;
}

double am_default_lambda(const am_config *c) {
    if (c->method == AM_TSV_M) return 1.0;
    if (c->method == AM_CART) return 2.0;
    if (c->method == AM_PCB) return 1.2;
    if (c->method == AM_ISO_C || c->method == AM_ISO_CTS) return 1.5;
    bool ties_mean = (c->method == AM_TIES || (c->method == AM_DARE && c->dare_ties)) && c->mean;
    return ties_mean ? 1.0 : 0.3;
}

static int parse_number(const char *key, const char *v, double lo, double hi, double *out, tt_err *err) {
    char *end;
    double x = strtod(v, &end);
    if (end == v || *end || !isfinite(x) || x < lo || x > hi)
        return tt_fail(err, TT_EINPUT, "parameter %s=%s: expected a number in [%g, %g]", key, v, lo, hi);
    *out = x;
    return 0;
}

int am_config_set(am_config *c, const char *kv, tt_err *err) {
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv) return tt_fail(err, TT_EINPUT, "parameter '%s': expected KEY=VALUE", kv);
    char key[32];
    snprintf(key, sizeof key, "%.*s", (int)(eq - kv < 31 ? eq - kv : 31), kv);
    const char *v = eq + 1;
    double x = 0;
    if (!strcmp(key, "alpha") && c->method == AM_AWD) return parse_number(key, v, 0, 1e12, &c->awd.alpha, err);
    if (!strcmp(key, "lambda") || !strcmp(key, "alpha")) return parse_number(key, v, -1e6, 1e6, &c->lambda, err);
    if (!strcmp(key, "common_space_fraction")) return parse_number(key, v, 0, 1, &c->common_space_fraction, err);
    if (!strcmp(key, "topk") && c->method == AM_LATA) return parse_number(key, v, 0, 100, &c->lata_topk, err);
    if (!strcmp(key, "topk")) return parse_number(key, v, 0, 100, &c->topk, err);
    if (!strcmp(key, "gamma")) return parse_number(key, v, 0, 1, &c->lata_gamma, err);
    if (!strcmp(key, "q")) return parse_number(key, v, 0, 100, &c->tatr_q, err);
    if (!strcmp(key, "clamp")) return parse_number(key, v, 0, 0.5, &c->pcb_clamp, err);
    if (!strcmp(key, "keep")) {
        if (parse_number(key, v, 0, 1, &c->pcb_keep, err)) return -1;
        if (c->pcb_keep <= 0) return tt_fail(err, TT_EINPUT, "parameter keep=%s: expected a number in (0, 1]", v);
        return 0;
    }
    if (!strcmp(key, "rank_ratio")) {
        if (parse_number(key, v, 0, 1, &c->cart_rank_ratio, err)) return -1;
        if (c->cart_rank_ratio <= 0) /* the official 0 zeroes every task vector, the average included */
            return tt_fail(err, TT_EINPUT, "parameter rank_ratio=%s: expected a number in (0, 1]", v);
        return 0;
    }
    if (!strcmp(key, "beta")) return parse_number(key, v, 0, 1e12, &c->awd.beta, err);
    if (!strcmp(key, "iters")) {
        if (parse_number(key, v, 0, 1000000, &x, err)) return -1;
        if (x != floor(x)) return tt_fail(err, TT_EINPUT, "parameter iters=%s: expected an integer", v);
        c->awd.iters = (int)x;
        return 0;
    }
    if (!strcmp(key, "init") || !strcmp(key, "cosine") || !strcmp(key, "update")) {
        const char *w0 = key[0] == 'i' ? "zero" : key[0] == 'c' ? "global" : "gd";
        const char *w1 = key[0] == 'i' ? "mean" : key[0] == 'c' ? "layer" : "prox";
        if (strcmp(v, w0) && strcmp(v, w1))
            return tt_fail(err, TT_EINPUT, "parameter %s=%s: expected %s or %s", key, v, w0, w1);
        bool second = !strcmp(v, w1);
        if (key[0] == 'i') c->awd_init_mean = second;
        else if (key[0] == 'c') c->awd_layer = second;
        else c->awd.prox = second;
        return 0;
    }
    if (!strcmp(key, "density")) return parse_number(key, v, 0, 1, &c->density, err);
    if (!strcmp(key, "tall_lambda")) return parse_number(key, v, 0, 1e6, &c->tall_lambda, err);
    if (!strcmp(key, "k")) {
        if (parse_number(key, v, 0, AM_MAX_MODELS + 1, &x, err)) return -1;
        if (x != floor(x)) return tt_fail(err, TT_EINPUT, "parameter k=%s: expected an integer", v);
        c->k = (int)x;
        return 0;
    }
    if (!strcmp(key, "base")) {
        if (strcmp(v, "ta") && strcmp(v, "ties")) return tt_fail(err, TT_EINPUT, "parameter base=%s: expected ta or ties", v);
        if (c->method == AM_TATR && strcmp(v, "ta"))
            return tt_fail(err, TT_EINPUT, "parameter base=%s: tatr merges over ta here (base=ties is the suite's)", v);
        c->dare_ties = !strcmp(v, "ties");
        return 0;
    }
    if (!strcmp(key, "merge")) {
        if (strcmp(v, "mean") && strcmp(v, "sum")) return tt_fail(err, TT_EINPUT, "parameter merge=%s: expected mean or sum", v);
        c->mean = !strcmp(v, "mean");
        return 0;
    }
    return tt_fail(err, TT_EINPUT,
                   "unknown parameter '%s' (lambda or alpha, topk, density, base, merge, k, tall_lambda, "
                   "common_space_fraction, beta, iters, init, cosine, update, gamma, q, rank_ratio, clamp, keep)",
                   key);
}

double am_weight(const am_model *m, const char *tensor) {
    for (int r = 0; r < m->n_weight_rule; r++)
        if (strstr(tensor, m->weight_rule[r].pattern)) return m->weight_rule[r].value;
    return m->weight;
}
