/*
 * bench_eval.c: evaluation throughput (docs/performance.md, "Evaluation"): cases per minute of
 * `xledit eval` for each method on a given model and case file, through the real pipeline
 * (xle_eval_run: pre-edit evaluation, edit, post-edit evaluation in every test language,
 * restore, weight check, fsynced results line), plus the split of one unit into its edit and
 * its evaluation in the test languages (xle_halves_eval, with the edit in place).
 *
 *   bench_eval --model PATH --data CASES.jsonl [--tokenizer FILE] [--cases N]
 *              [--methods rome,memit] [--edit-langs en] [--test-langs en]
 *              [--context-templates none|sampled] [--stats DIR]
 *              [--corpus FILE --corpus-tokens N] [--no-sharing] [--json]
 *
 * --tokenizer attaches a tokenizer to a model folder that has none (the random 1B-shaped model
 * that bench_engine writes takes the Llama-3 tokenizer). Methods that need key statistics use
 * --stats DIR, or statistics built here from --corpus (the build time is reported apart).
 * --no-sharing makes every unit edit from scratch (xle_eval_opts.no_sharing), as before units of
 * a case shared ROME's first request with the "all" unit.
 */
#include <jansson.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "edit/edit_internal.h"
#include "eval/eval_internal.h"
#include "model/model_internal.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int usage(void) {
    fprintf(stderr, "usage: bench_eval --model PATH --data CASES.jsonl [--tokenizer FILE] [--cases N]\n"
                    "                  [--methods rome,memit] [--edit-langs en] [--test-langs en]\n"
                    "                  [--context-templates none|sampled] [--stats DIR]\n"
                    "                  [--corpus FILE --corpus-tokens N] [--no-sharing] [--json]\n");
    return 2;
}

static int split(char *s, const char **out, int max) {
    int n = 0;
    for (char *t = strtok(s, ","); t && n < max; t = strtok(NULL, ",")) out[n++] = t;
    return n;
}

/* The methods this bench measures by parts (an IKE unit edits nothing; AlphaEdit carries a
 * state from unit to unit): 0, or 1 for another name. */
static int parse_method(const char *s, xle_edit_method *m) {
    if (xle_edit_method_parse(s, strlen(s), m) != 0) return 1;
    return *m == XLE_EDIT_IKE || *m == XLE_EDIT_ALPHAEDIT;
}

typedef struct method_result {
    const char *name;
    double run_s, edit_s, eval_s;
    int64_t units;
    int cases;
} method_result;

/* One unit measured by parts: the first case's half in edit_lang edited, then its halves in
 * the test languages evaluated with the edit in place (as xle_eval_run does). */
static xle_status split_unit(xle_model *m, const xle_edit_hparams *hp, const xle_context_templates *ct,
                             xle_layer_stats *const *stats, const xle_case *c, const char *edit_lang,
                             const char *const *test_langs, int n_test, method_result *r, xle_error *err) {
    const xle_case_lang *l = xle_case_lang_find(c, edit_lang);
    if (!l) return xle_fail(err, XLE_ERR_ARG, "case %s has no %s half", c->id, edit_lang);
    xle_edit_request req = {l->prompt, l->subject, l->target_new};
    xle_edit_request_tok rt;
    xle_edit_result res = {0};
    double t0 = now_s();
    xle_status st = xle_edit_request_tokenize(xle_model_tokenizer(m), &req, ct, &rt, err);
    if (st != XLE_OK) return st;
    st = xle_edit_run(m, hp, &rt, 1, stats, &res, err);
    xle_edit_request_tok_free(&rt);
    r->edit_s = now_s() - t0;
    if (st != XLE_OK) return st;
    /* the edit in place as the run does it: weight swaps, restored afterwards */
    xle_weight_swap swaps[XLE_EDIT_MAX_LAYERS] = {{0}};
    int n_swaps = 0;
    for (; st == XLE_OK && n_swaps < res.n_deltas && n_swaps < XLE_EDIT_MAX_LAYERS; n_swaps++)
        st = xle_weight_swap_apply(m, &res.deltas[n_swaps], &swaps[n_swaps], err);
    if (st == XLE_OK) {
        const xle_case_lang *halves[64];
        int n = 0;
        for (int i = 0; i < n_test && n < 64; i++)
            if ((halves[n] = xle_case_lang_find(c, test_langs[i]))) n++;
        t0 = now_s();
        xle_half_eval *post = calloc((size_t)n + 1, sizeof *post);
        st = post ? xle_halves_eval(m, xle_model_tokenizer(m), NULL, halves, n, post, err)
                  : xle_fail(err, XLE_ERR_NOMEM, "out of memory");
        r->eval_s = now_s() - t0;
        for (int h = 0; post && st == XLE_OK && h < n; h++) xle_half_eval_free(&post[h]);
        free(post);
    }
    while (n_swaps > 0) xle_weight_swap_restore(&swaps[--n_swaps]);
    xle_edit_result_free(&res);
    return st;
}

int main(int argc, char **argv) {
    const char *model_path = NULL, *data = NULL, *tok_path = NULL, *stats_dir = NULL, *corpus = NULL;
    char methods_buf[128] = "rome,memit", edit_buf[256] = "en", test_buf[256] = "en";
    int max_cases = 2, json = 0, sampled = 0, no_sharing = 0;
    int64_t corpus_tokens = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--no-sharing")) no_sharing = 1;
        else if (i + 1 >= argc) return usage();
        else if (!strcmp(a, "--model")) model_path = argv[++i];
        else if (!strcmp(a, "--data")) data = argv[++i];
        else if (!strcmp(a, "--tokenizer")) tok_path = argv[++i];
        else if (!strcmp(a, "--stats")) stats_dir = argv[++i];
        else if (!strcmp(a, "--corpus")) corpus = argv[++i];
        else if (!strcmp(a, "--corpus-tokens")) corpus_tokens = atoll(argv[++i]);
        else if (!strcmp(a, "--cases")) max_cases = atoi(argv[++i]);
        else if (!strcmp(a, "--methods")) snprintf(methods_buf, sizeof methods_buf, "%s", argv[++i]);
        else if (!strcmp(a, "--edit-langs")) snprintf(edit_buf, sizeof edit_buf, "%s", argv[++i]);
        else if (!strcmp(a, "--test-langs")) snprintf(test_buf, sizeof test_buf, "%s", argv[++i]);
        else if (!strcmp(a, "--context-templates")) sampled = !strcmp(argv[++i], "sampled");
        else return usage();
    }
    if (!model_path || !data || max_cases < 1) return usage();
    char edit_arg[256], test_arg[256]; /* for printing: split() cuts the buffers */
    snprintf(edit_arg, sizeof edit_arg, "%s", edit_buf);
    snprintf(test_arg, sizeof test_arg, "%s", test_buf);
    const char *mnames[4], *edit_langs[64], *test_langs[64];
    int n_methods = split(methods_buf, mnames, 4), n_edit = split(edit_buf, edit_langs, 64),
        n_test = split(test_buf, test_langs, 64);
    xle_error err = {0};
    xle_model *m = NULL;
    double t0 = now_s();
    if (xle_model_load(model_path, &m, &err) != XLE_OK) {
        fprintf(stderr, "bench_eval: %s\n", err.msg);
        return 1;
    }
    double load_s = now_s() - t0;
    if (tok_path && !m->tokenizer && xle_tokenizer_load(tok_path, &m->tokenizer, &err) != XLE_OK) {
        fprintf(stderr, "bench_eval: %s\n", err.msg);
        return 1;
    }
    if (!m->tokenizer) {
        fprintf(stderr, "bench_eval: %s has no tokenizer (give --tokenizer FILE)\n", model_path);
        return 1;
    }
    xle_edit_hparams hps[4];
    int stat_layers[XLE_EDIT_MAX_LAYERS * 4];
    for (int i = 0; i < n_methods; i++) {
        xle_edit_method em;
        if (parse_method(mnames[i], &em)) return usage();
        /* what `xledit eval` uses: the defaults for this model, then its folder's edit-hparams/ */
        if (xle_edit_hparams_for_model_path(&hps[i], em, m, model_path, NULL, &err) != XLE_OK) {
            fprintf(stderr, "bench_eval: %s\n", err.msg);
            return 1;
        }
    }
    int n_stat_layers = xle_edit_stats_layers(hps, n_methods, stat_layers); /* ascending */
    char tmp[] = "/tmp/xle_bench_eval_XXXXXX";
    if (!mkdtemp(tmp)) return 1;
    char own_stats[300];
    double stats_s = 0;
    if (n_stat_layers > 0 && !stats_dir) {
        if (!corpus) {
            fprintf(stderr, "bench_eval: %s need key statistics: give --stats DIR or --corpus FILE\n", methods_buf);
            return 2;
        }
        snprintf(own_stats, sizeof own_stats, "%s/stats", tmp);
        const char *files[1] = {corpus};
        xle_stats_opts so = {stat_layers, n_stat_layers, files, 1, corpus_tokens, 0, own_stats, NULL, NULL};
        t0 = now_s();
        if (xle_stats_build(m, m->tokenizer, &so, &err) != XLE_OK) {
            fprintf(stderr, "bench_eval: stats: %s\n", err.msg);
            return 1;
        }
        stats_s = now_s() - t0;
        stats_dir = own_stats;
    }
    xle_cases *cs = NULL;
    if (xle_cases_load(data, &cs, &err) != XLE_OK) {
        fprintf(stderr, "bench_eval: %s\n", err.msg);
        return 1;
    }
    method_result res[4];
    memset(res, 0, sizeof res);
    int rc = 0;
    for (int i = 0; i < n_methods && !rc; i++) {
        char run_dir[400];
        snprintf(run_dir, sizeof run_dir, "%s/run-%s", tmp, mnames[i]);
        xle_eval_opts o = {0};
        o.data_path = data;
        o.run_dir = run_dir;
        o.hparams = &hps[i];
        o.n_methods = 1;
        o.edit_langs = edit_langs;
        o.n_edit_langs = n_edit;
        o.test_langs = test_langs;
        o.n_test_langs = n_test;
        o.max_cases = max_cases;
        o.stats_dir = stats_dir;
        o.context_templates = sampled ? NULL : "none";
        o.no_sharing = no_sharing;
        xle_eval_summary sum;
        t0 = now_s();
        if (xle_eval_run(m, &o, &sum, &err) != XLE_OK) {
            fprintf(stderr, "bench_eval: %s: %s\n", mnames[i], err.msg);
            rc = 1;
            break;
        }
        res[i] = (method_result){mnames[i], now_s() - t0, 0, 0, sum.n_units, sum.n_cases};
        if (sum.n_skipped || sum.n_failed)
            fprintf(stderr, "bench_eval: %s: %lld skipped, %lld failed units\n", mnames[i],
                    (long long)sum.n_skipped, (long long)sum.n_failed);
    }
    for (int i = 0; i < n_methods && !rc; i++) {
        xle_context_templates *ct = NULL;
        xle_layer_stats *stats[XLE_EDIT_MAX_LAYERS] = {0};
        xle_status st = sampled && hps[i].method != XLE_EDIT_FT_L && hps[i].method != XLE_EDIT_FT_M
                            ? xle_context_templates_sample(m, m->tokenizer, &hps[i], &ct, &err)
                            : xle_context_templates_none(&ct, &err);
        for (int k = 0; st == XLE_OK && xle_edit_hparams_need_stats(&hps[i]) && k < hps[i].n_layers; k++)
            st = xle_stats_load(m, stats_dir, hps[i].layers[k], &stats[k], &err);
        if (st == XLE_OK)
            st = split_unit(m, &hps[i], ct, stats, &cs->cases[0], edit_langs[0], test_langs, n_test, &res[i], &err);
        if (st != XLE_OK) {
            fprintf(stderr, "bench_eval: %s split: %s\n", mnames[i], err.msg);
            rc = 1;
        }
        for (int k = 0; k < XLE_EDIT_MAX_LAYERS; k++) xle_layer_stats_free(stats[k]);
        xle_context_templates_free(ct);
    }
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) fprintf(stderr, "bench_eval: could not remove %s\n", tmp);
    if (rc) return rc;
    const xle_config *c = &m->cfg;
    if (json) {
        json_t *arr = json_array();
        for (int i = 0; i < n_methods; i++)
            json_array_append_new(arr, json_pack("{s:s, s:i, s:I, s:f, s:f, s:f, s:f, s:f}", "method", res[i].name,
                                                 "cases", res[i].cases, "units", (json_int_t)res[i].units, "run_s",
                                                 res[i].run_s, "cases_per_min", 60.0 * res[i].cases / res[i].run_s,
                                                 "units_per_min", 60.0 * (double)res[i].units / res[i].run_s,
                                                 "edit_s", res[i].edit_s, "eval_s", res[i].eval_s));
        json_t *o = json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:f, s:f, s:s, s:b, s:o}", "model", model_path, "dim",
                              c->dim, "ffn_dim", c->ffn_dim, "layers", c->n_layers, "vocab", c->vocab_size, "threads",
                              omp_get_max_threads(), "load_s", load_s, "stats_s", stats_s, "templates",
                              sampled ? "sampled" : "none", "sharing", !no_sharing, "methods", arr);
        char *text = json_dumps(o, JSON_INDENT(2));
        if (text) printf("%s\n", text);
        free(text);
        json_decref(o);
    } else {
        printf("xledit evaluation benchmark: %s\n", model_path);
        printf("model d=%d ffn=%d layers=%d vocab=%d; %d threads; load %.2f s; context templates %s; %s\n", c->dim,
               c->ffn_dim, c->n_layers, c->vocab_size, omp_get_max_threads(), load_s, sampled ? "sampled" : "none",
               no_sharing ? "no sharing between units" : "units of a case share");
        if (stats_s > 0) printf("key statistics built here: %.1f s (not counted below)\n", stats_s);
        printf("edit languages %s; test languages %s\n", edit_arg, test_arg);
        printf("%-8s %6s %6s %9s %11s %11s %12s %12s\n", "method", "cases", "units", "run s", "cases/min",
               "units/min", "edit s/unit", "eval s/lang");
        for (int i = 0; i < n_methods; i++)
            printf("%-8s %6d %6lld %9.1f %11.2f %11.2f %12.2f %12.2f\n", res[i].name, res[i].cases,
                   (long long)res[i].units, res[i].run_s, 60.0 * res[i].cases / res[i].run_s,
                   60.0 * (double)res[i].units / res[i].run_s, res[i].edit_s, res[i].eval_s / (n_test ? n_test : 1));
    }
    xle_cases_free(cs);
    xle_model_free(m);
    return 0;
}
