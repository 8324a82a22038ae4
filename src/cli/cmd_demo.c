/*
 * cmd_demo.c: `xledit demo`, the main job on the built-in model (models/xledit-mini) and its
 * counterfactual cases (data/world/cases.jsonl): one fact before and after a ROME edit in all
 * eight languages, then ELFI/ELFO with ROME and MEMIT on a sample of cases, the language x
 * language tables, and the HTML report. Finished units are kept in OUT/run, so a demo that is
 * interrupted and run again continues where it stopped.
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/outpath.h"
#include "cli/progress.h"

static const char *const DEMO_LANGS[] = {"en", "de", "fr", "it", "es", "hi", "ta", "kn"};
#define N_DEMO_LANGS 8
/* Enough for the d_ff x d_ff second moment of a small model (688 x 688 for the built-in one)
 * and a few seconds to collect; `xledit stats` makes bigger caches. */
#define DEMO_STATS_TOKENS 50000

static volatile sig_atomic_t demo_interrupted;

static void demo_on_sigint(int sig) {
    (void)sig;
    demo_interrupted = 1;
    signal(SIGINT, SIG_DFL);
}

static int demo_progress(void *user, int64_t done, int64_t total) {
    cli_progress_update(user, done, total);
    return demo_interrupted;
}

/* The repository folder holding `rel` (models/..., data/...): beside the executable's parent
 * (build/xledit -> repo), else the current directory. */
static int find_resource(const char *rel, char *out, size_t cap) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *dir = dirname(exe);
        snprintf(out, cap, "%s/../%s", dir, rel);
        if (access(out, F_OK) == 0) return 0;
        snprintf(out, cap, "%s/%s", dir, rel);
        if (access(out, F_OK) == 0) return 0;
    }
    snprintf(out, cap, "%s", rel);
    return access(out, F_OK) == 0 ? 0 : -1;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Longest answer shown: the target's tokens and this many more to finish the word. */
#define ANSWER_EXTRA_TOKENS 12

/* The greedy answer to prompt, shown whole: as many tokens as target has, then on to the end
 * of the word (xle_answer_whole). *matches: its first tokens are target's (the token-level
 * exact match the metrics use). */
static char *greedy_answer(xle_model *m, const char *prompt, const char *target, int *matches,
                           xle_error *err) {
    xle_tokenizer *tok = xle_model_tokenizer(m);
    int32_t *p = NULL, *a = NULL;
    int np = 0, na = 0, n_kept = 0;
    *matches = 0;
    if (xle_tokenize_continuation(tok, prompt, target, &p, &np, &a, &na, err) != XLE_OK) return NULL;
    int n_max = na + ANSWER_EXTRA_TOKENS;
    int32_t *out = malloc((size_t)n_max * sizeof *out);
    char *s = NULL;
    if (!out) xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    else if (xle_answer_whole(m, tok, p, np, na, n_max, out, &n_kept, &s, err) == XLE_OK)
        *matches = n_kept >= na && memcmp(out, a, (size_t)na * sizeof *a) == 0;
    free(out), free(p), free(a);
    return s;
}

/* One cell of the before/after table: s in cols terminal columns (display width, not bytes,
 * so that Devanagari, Tamil and Kannada line up), cut between grapheme clusters when wider;
 * the last column unpadded unless pad. */
static void print_cell(const char *s, int cols, int pad) {
    size_t cap = strlen(s) + (size_t)cols + 8;
    char *cell = malloc(cap);
    if (!cell) return;
    size_t n = xle_text_cell(cell, cap, s, cols, 0);
    while (!pad && n > 0 && cell[n - 1] == ' ') cell[--n] = 0;
    fputs(cell, stdout);
    free(cell);
}

#define PROMPT_COLS 44 /* columns of the before/after table, in terminal columns */
#define ANSWER_COLS 22

/* Part 2: one case, ROME in English, the answer in every language before and after. */
static int show_one_fact(const char *model_path, const char *stats_dir, const xle_case *c,
                         xle_error *err) {
    xle_model *m = NULL;
    if (xle_model_load(model_path, &m, err) != XLE_OK) return 1;
    const xle_case_lang *en = xle_case_lang_find(c, "en");
    xle_edit_hparams hp;
    xle_context_templates *ct = NULL;
    xle_edit_request_tok rt = {0};
    xle_edit_result res = {0};
    xle_layer_stats *stats[XLE_EDIT_MAX_LAYERS] = {0};
    char *before[N_DEMO_LANGS] = {0};
    int ok_before[N_DEMO_LANGS] = {0}, rc = 1;
    if (xle_edit_hparams_for_model_path(&hp, XLE_EDIT_ROME, m, model_path, NULL, err) != XLE_OK) goto done;
    if (xle_edit_hparams_need_stats(&hp))
        for (int k = 0; k < hp.n_layers; k++)
            if (xle_stats_load(m, stats_dir, hp.layers[k], &stats[k], err) != XLE_OK) goto done;
    printf("2. One fact, edited in English with ROME (layer %d), asked in eight languages\n\n",
           hp.layers[0]);
    printf("   %s  ->  %s (was %s)\n\n", en->prompt, en->target_new,
           en->target_true ? en->target_true : "?");
    for (int i = 0; i < N_DEMO_LANGS; i++) {
        const xle_case_lang *l = xle_case_lang_find(c, DEMO_LANGS[i]);
        if (!l) continue;
        before[i] = greedy_answer(m, l->prompt, l->target_true ? l->target_true : l->target_new,
                                  &ok_before[i], err);
        if (!before[i]) goto done;
    }
    xle_edit_request req = {en->prompt, en->subject, en->target_new};
    if (xle_context_templates_sample(m, xle_model_tokenizer(m), &hp, &ct, err) != XLE_OK ||
        xle_edit_request_tokenize(xle_model_tokenizer(m), &req, ct, &rt, err) != XLE_OK)
        goto done;
    double t0 = now_s();
    if (xle_edit_run(m, &hp, &rt, 1, stats, &res, err) != XLE_OK) goto done;
    if (xle_edit_apply(m, &res, +1, err) != XLE_OK) goto done;
    printf("   %-4s %-*s %-*s %s\n", "lang", PROMPT_COLS, "prompt", ANSWER_COLS, "before", "after");
    int n_new = 0;
    for (int i = 0; i < N_DEMO_LANGS; i++) {
        const xle_case_lang *l = xle_case_lang_find(c, DEMO_LANGS[i]);
        if (!l) continue;
        int ok_after = 0;
        char *after = greedy_answer(m, l->prompt, l->target_new, &ok_after, err);
        if (!after) goto done;
        n_new += ok_after;
        printf("   %-4s ", DEMO_LANGS[i]);
        print_cell(l->prompt, PROMPT_COLS, 1);
        fputs(" ", stdout);
        print_cell(before[i], ANSWER_COLS, 1);
        fputs(" ", stdout);
        print_cell(after, ANSWER_COLS, ok_after);
        printf("%s\n", ok_after ? " [new fact]" : "");
        free(after);
    }
    printf("\n   The edit (%.1f s) carries the new fact in %d of %d languages.\n\n",
           now_s() - t0, n_new, c->n_langs);
    rc = 0;
done:
    for (int i = 0; i < N_DEMO_LANGS; i++) free(before[i]);
    xle_edit_request_tok_free(&rt);
    xle_edit_result_free(&res);
    xle_context_templates_free(ct);
    for (int k = 0; k < XLE_EDIT_MAX_LAYERS; k++) xle_layer_stats_free(stats[k]);
    xle_model_free(m);
    return rc;
}

/* The first case usable (exact subject match) in every language, or NULL. */
static const xle_case *pick_case(const xle_cases *cs, xle_error *err) {
    for (int i = 0; i < cs->n; i++) {
        int usable = cs->cases[i].n_langs == N_DEMO_LANGS;
        for (int j = 0; usable && j < cs->cases[i].n_langs; j++) {
            xle_case_problem p;
            if (xle_case_lang_check(&cs->cases[i].langs[j], XLE_MATCH_EXACT, &p, NULL, err) != XLE_OK)
                return NULL;
            usable = p == XLE_CASE_USABLE;
        }
        if (usable) return &cs->cases[i];
    }
    return NULL;
}

static const char demo_usage[] =
    "usage: xledit demo [--model DIR] [--data CASES.jsonl] [--cases N] [--out DIR] [-t N]\n\n"
    "The main job on the built-in model (models/xledit-mini, trained by xledit on its own\n"
    "fact world in en de fr it es hi ta kn): the key statistics of the edited layer; one fact\n"
    "before and after a ROME edit in all eight languages; ELFI/ELFO evaluation with ROME and\n"
    "MEMIT on the first N cases (default 2) of data/world/cases.jsonl, edited in each language,\n"
    "tested in every language; the language x language tables; and a self-contained HTML\n"
    "report in OUT (default xledit-demo/). Finished units are kept in OUT/run: run again to\n"
    "continue. The key statistics (MEMIT; ROME with mom2_adjustment) come from the world's\n"
    "corpus (OUT/corpus.txt, 50,000 tokens) and are cached per model (~/.cache/xledit/stats/).\n"
    "A model folder may carry editing overrides in edit-hparams/rome.json and memit.json (the\n"
    "built-in model does; docs/demo.md).\n";

int cmd_demo(int argc, char **argv) {
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"data", required_argument, 0, 'd'},
        {"cases", required_argument, 0, 'n'}, {"out", required_argument, 0, 'o'},
        {"threads", required_argument, 0, 't'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    char model_path[PATH_MAX], data_path[PATH_MAX], corpus_path[PATH_MAX + 32];
    const char *model_arg = NULL, *data_arg = NULL, *out = "xledit-demo";
    int n_cases = 2, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "t:", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model_arg = optarg; break;
        case 't': {
            int rc = cli_threads_option("demo", optarg);
            if (rc) return rc;
            break;
        }
        case 'd': data_arg = optarg; break;
        case 'n': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || v < 1 || v > 100000) return cli_usage_error("demo", "--cases: expected a count, got '%s'", optarg);
            n_cases = (int)v;
            break;
        }
        case 'o': out = optarg; break;
        case 'h':
            fputs(demo_usage, stdout);
            cli_threads_help(stdout);
            return 0;
        default: return cli_usage_error("demo", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc) return cli_usage_error("demo", "unexpected argument '%s'", argv[optind]);
    if (model_arg) snprintf(model_path, sizeof model_path, "%s", model_arg);
    else if (find_resource("models/xledit-mini", model_path, sizeof model_path) != 0) {
        fprintf(stderr, "xledit demo: models/xledit-mini: not found (run from the repository, or give --model)\n");
        return 1;
    }
    if (data_arg) snprintf(data_path, sizeof data_path, "%s", data_arg);
    else if (find_resource("data/world/cases.jsonl", data_path, sizeof data_path) != 0) {
        fprintf(stderr, "xledit demo: data/world/cases.jsonl: not found (run from the repository, or give --data)\n");
        return 1;
    }
    char world_dir[PATH_MAX];
    if (find_resource("data/world/world.json", world_dir, sizeof world_dir) != 0) {
        fprintf(stderr, "xledit demo: data/world/world.json: not found (run from the repository)\n");
        return 1;
    }
    world_dir[strlen(world_dir) - strlen("/world.json")] = 0;

    double t_start = now_s();
    xle_error err = {0};
    xle_cases *cases = NULL;
    xle_model *model = NULL;
    xle_report *report = NULL;
    char *text = NULL;
    int rc = 1;
    cli_progress progress;
    if (xle_cases_load(data_path, &cases, &err) != XLE_OK) goto fail;
    const xle_case *one = pick_case(cases, &err);
    if (!one) {
        if (!err.msg[0]) xle_fail(&err, XLE_ERR_ARG, "%s: no case is usable in all eight languages", data_path);
        goto fail;
    }
    printf("xledit demo: built-in model %s, cases %s\n\n", model_path, data_path);

    /* Part 1: key statistics (MEMIT, and ROME's C⁻¹), computed once from the world's corpus
     * (the text the model was trained on) and kept in the per-model cache. */
    if (xle_model_load(model_path, &model, &err) != XLE_OK) goto fail;
    if (mkdir(out, 0777) != 0 && errno != EEXIST) {
        xle_fail(&err, XLE_ERR_IO, "%s: cannot create: %s", out, strerror(errno));
        goto fail;
    }
    snprintf(corpus_path, sizeof corpus_path, "%s/corpus.txt", out);
    if (access(corpus_path, F_OK) != 0) {
        xle_world *world = NULL;
        xle_status wst = xle_world_load(world_dir, &world, &err);
        if (wst == XLE_OK) wst = xle_world_write_corpus(world, corpus_path, 1, 1, NULL, &err);
        xle_world_free(world);
        if (wst != XLE_OK) goto fail;
    }
    xle_edit_hparams hps[2];
    if (xle_edit_hparams_for_model_path(&hps[0], XLE_EDIT_ROME, model, model_path, NULL, &err) != XLE_OK ||
        xle_edit_hparams_for_model_path(&hps[1], XLE_EDIT_MEMIT, model, model_path, NULL, &err) != XLE_OK)
        goto fail;
    char stats_dir[PATH_MAX];
    cli_stats_dir(model, NULL, stats_dir, sizeof stats_dir);
    {
        char cmd[PATH_MAX + 32];
        snprintf(cmd, sizeof cmd, "%s", stats_dir);
        for (char *p = cmd + 1; *p; p++)
            if (*p == '/') {
                *p = 0;
                mkdir(cmd, 0777);
                *p = '/';
            }
        mkdir(cmd, 0777);
    }
    int layers[2 * XLE_EDIT_MAX_LAYERS];
    int n_stats_layers = xle_edit_stats_layers(hps, 2, layers);
    const char *corpus[1] = {corpus_path};
    cli_progress_begin(&progress, "demo: statistics", "tokens");
    /* built into the cache folder of its option set; loaded from the model's cache, which
     * serves each layer from whichever set has it (xle_stats_load) */
    char build_dir[PATH_MAX + 128];
    xle_stats_opts so = {layers, n_stats_layers, corpus, 1, DEMO_STATS_TOKENS, 0, build_dir,
                         demo_progress, &progress};
    int bk = snprintf(build_dir, sizeof build_dir, "%s/", stats_dir);
    xle_stats_set_name(model, &so, build_dir + bk, sizeof build_dir - (size_t)bk);
    double t_stats = now_s();
    /* A cache made earlier for this model (by another demo or `xledit stats`) is reused as it
     * is; only a missing or unfinished one is built here. */
    int have_stats = 1;
    for (int k = 0; k < n_stats_layers && have_stats; k++) {
        xle_layer_stats *ls = NULL;
        xle_error ignored = {0};
        have_stats = xle_stats_load(model, stats_dir, layers[k], &ls, &ignored) == XLE_OK;
        xle_layer_stats_free(ls);
    }
    if (!have_stats) {
        signal(SIGINT, demo_on_sigint);
        xle_status sst = xle_stats_build(model, xle_model_tokenizer(model), &so, &err);
        signal(SIGINT, SIG_DFL);
        cli_progress_end(&progress);
        if (sst != XLE_OK) goto fail;
    }
    printf("1. Key statistics E[k k^T] (layers %d-%d, %d tokens of the world corpus): %s (%.1f s)\n\n",
           layers[0], layers[n_stats_layers - 1], DEMO_STATS_TOKENS, stats_dir, now_s() - t_stats);

    if (show_one_fact(model_path, stats_dir, one, &err)) goto fail;

    char run_dir[PATH_MAX + 8];
    snprintf(run_dir, sizeof run_dir, "%s/run", out);
    /* The eight languages only: the extra "all at once" row (8 sequential ROME edits, one
     * 8-request MEMIT batch) would cost as much again; `xledit eval --edit-langs ...,all`. */
    xle_eval_opts eo = {.data_path = data_path, .run_dir = run_dir, .hparams = hps, .n_methods = 2,
                        .edit_langs = DEMO_LANGS, .n_edit_langs = N_DEMO_LANGS,
                        .test_langs = DEMO_LANGS, .n_test_langs = N_DEMO_LANGS,
                        .max_cases = n_cases, .resume = 1, .stats_dir = stats_dir,
                        .subject_match = XLE_MATCH_EXACT, .progress = demo_progress,
                        .progress_user = &progress};
    printf("3. ELFI/ELFO: %d cases x {ROME, MEMIT} x edit in each of {%s}, tested in all eight\n",
           n_cases, "en de fr it es hi ta kn");
    double t_eval = now_s();
    xle_eval_summary sum = {0};
    cli_progress_begin(&progress, "demo: ELFI/ELFO", "units");
    signal(SIGINT, demo_on_sigint);
    xle_status st = xle_eval_run(model, &eo, &sum, &err);
    signal(SIGINT, SIG_DFL);
    cli_progress_end(&progress);
    if (st != XLE_OK) goto fail;
    printf("   %lld units (%lld resumed from an earlier run) in %.1f s\n\n", (long long)sum.n_units,
           (long long)sum.n_resumed, now_s() - t_eval);

    if (xle_report_load(run_dir, &report, &err) != XLE_OK) goto fail;
    size_t len;
    if (xle_report_render(report, XLE_REPORT_TEXT, &text, &len, &err) != XLE_OK) goto fail;
    printf("4. Tables (rows: edit language, columns: test language; x100)\n\n%s\n", text);
    free(text);
    text = NULL;
    const xle_report_format formats[] = {XLE_REPORT_HTML, XLE_REPORT_MD, XLE_REPORT_CSV, XLE_REPORT_JSON};
    char html_path[PATH_MAX + 32] = "";
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
        if (xle_report_render(report, formats[i], &text, &len, &err) != XLE_OK) goto fail;
        char path[PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/report.%s", out, xle_report_format_ext(formats[i]));
        if (xle_atomic_write(path, text, len, &err) != XLE_OK) goto fail;
        if (formats[i] == XLE_REPORT_HTML) snprintf(html_path, sizeof html_path, "%s", path);
        free(text);
        text = NULL;
    }
    char abs_html[PATH_MAX];
    printf("5. Report: %s (open it in a browser; also report.md, .csv, .json)\n",
           realpath(html_path, abs_html) ? abs_html : html_path);
    printf("\nDone in %.1f s. docs/demo.md reads these tables against the study's findings.\n",
           now_s() - t_start);
    rc = 0;
fail:
    if (rc) rc = cli_report("demo", &err);
    free(text);
    xle_report_free(report);
    xle_model_free(model);
    xle_cases_free(cases);
    return rc;
}
