/*
 * cmd_eval.c: `xledit eval`, a cross-lingual evaluation run (ELFI/ELFO matrix) over a case file,
 * resumable. The work is done by xle_eval_run (src/eval/run.c); this file parses options,
 * resolves hyper-parameters, shows progress with an ETA on a terminal, and turns SIGINT into a
 * clean stop after the unit in progress.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/progress.h"

static const char eval_usage[] =
    "usage: xledit eval MODEL --data CASES.jsonl --out RUN_DIR\n"
    "                   [--methods rome,memit,ft-l,ft-m,ike,alphaedit] [--edit-langs en,hi,...,all]\n"
    "                   [--test-langs en,hi,...] [--cases N] [--resume] [--stats DIR]\n"
    "                   [--hparams [METHOD=]FILE.yaml|.json]... [--context-templates FILE|none]\n"
    "                   [--seed S] [--subject-match exact|caseless|stem]\n"
    "                   [--no-model-hparams] [--chat] [--quiet] [-t N]\n"
    "                   [--sequential [--checkpoints 1,10,50,100] [--held-out N] [--fluency-text FILE]]\n\n"
    "Edits every case of CASES.jsonl (docs/case-format.md) with each method in each edit\n"
    "language, evaluates the edited model in every test language (reliability, generalization,\n"
    "locality, portability; CounterFact success/magnitude; exact match and token F1 of greedy\n"
    "answers), restores the weights exactly, and appends one line per (case, method, edit\n"
    "language) to RUN_DIR/results.jsonl. Edit language `all` edits the fact in every listed\n"
    "language at once (one MEMIT batch; ROME one after another). Method ike changes no weight:\n"
    "the new fact and k demonstrations (\"k\" in --hparams ike=FILE, default 32) in the edit\n"
    "language go before every test prompt (in-context editing).\n"
    "--chat asks every test question as the user's message in the model's chat template\n"
    "(tokenizer_config.json) and scores the answer as the assistant's reply, as score --chat;\n"
    "the edits use the plain prompts.\n"
    "Defaults: methods rome,memit; edit languages: every language of the data, then all; test\n"
    "languages: every language of the data. Hyperparameters: the defaults scaled to the model,\n"
    "then the model folder's edit-hparams/<method>.json if it has one (--no-model-hparams\n"
    "skips it), then --hparams FILE (every method), then METHOD=FILE (one); EasyEdit's\n"
    "hparams YAML as published (an alg_name must be the method's). Key statistics\n"
    "(MEMIT, ROME with mom2_adjustment) come from --stats DIR or the cache `xledit stats` fills.\n"
    "--resume continues a run in RUN_DIR (refused if it was made with other arguments, model or\n"
    "data); results are identical to an uninterrupted run. Ctrl-C stops after the unit in\n"
    "progress (exit code 130). Then: xledit report RUN_DIR. (docs/evaluation.md)\n"
    "Under mpirun (mpirun -np N xledit eval ...) the units are shared by the N processes and\n"
    "rank 0 writes RUN_DIR; resume works with any number of processes. (docs/scale.md)\n"
    "--sequential: per method and edit language, edits the cases one after another in case order\n"
    "and keeps them; after each checkpoint's number of edits, evaluates every edit so far in every\n"
    "test language, the last N cases (--held-out, never edited) against the unedited model, and\n"
    "the perplexity of FILE's lines; RUN_DIR/sequential.jsonl, resumable (docs/evaluation.md).\n";

static volatile sig_atomic_t g_interrupted;

static void on_sigint(int sig) {
    (void)sig;
    g_interrupted = 1;
    signal(SIGINT, SIG_DFL); /* a second Ctrl-C ends the process at once (resume still works) */
}

static int on_progress(void *user, int64_t done, int64_t total) {
    cli_progress_update(user, done, total);
    return g_interrupted;
}

/* Splits a comma list into a malloc'd array of pointers into the malloc'd copy *buf. */
static int split_list(const char *s, char **buf, const char ***items, int *n) {
    *buf = strdup(s);
    *items = calloc(strlen(s) / 2 + 2, sizeof **items);
    *n = 0;
    if (!*buf || !*items) return 1;
    for (char *tok = *buf, *next; tok; tok = next) {
        next = strchr(tok, ',');
        if (next) *next++ = 0;
        if (!*tok) return 1;
        (*items)[(*n)++] = tok;
    }
    return *n == 0;
}

#define MAX_HPARAM_FILES 16

int cmd_eval(int argc, char **argv) {
    static const struct option opts[] = {
        {"data", required_argument, 0, 'd'}, {"out", required_argument, 0, 'o'},
        {"methods", required_argument, 0, 'm'}, {"edit-langs", required_argument, 0, 'e'},
        {"test-langs", required_argument, 0, 'L'}, {"cases", required_argument, 0, 'n'},
        {"resume", no_argument, 0, 'r'}, {"stats", required_argument, 0, 'S'},
        {"hparams", required_argument, 0, 'H'}, {"context-templates", required_argument, 0, 'C'},
        {"seed", required_argument, 0, 'x'}, {"subject-match", required_argument, 0, 'M'},
        {"no-model-hparams", no_argument, 0, 'N'}, {"quiet", no_argument, 0, 'q'},
        {"threads", required_argument, 0, 't'}, {"help", no_argument, 0, 'h'},
        {"sequential", no_argument, 0, 'Q'}, {"checkpoints", required_argument, 0, 'K'},
        {"held-out", required_argument, 0, 'O'}, {"fluency-text", required_argument, 0, 'F'},
        {"chat", no_argument, 0, 'c'}, {0, 0, 0, 0}};
    const char *checkpoints_arg = "1,10,50,100", *fluency_arg = NULL;
    int sequential = 0, held_out = 0, chat = 0;
    xle_chat_template *chat_template = NULL;
    const char *data = NULL, *out = NULL, *methods_arg = "rome,memit", *edit_arg = NULL, *test_arg = NULL,
               *stats_arg = NULL, *ctx_arg = NULL, *seed_arg = NULL, *match_arg = NULL;
    const char *hparam_files[MAX_HPARAM_FILES];
    int n_hparam_files = 0, resume = 0, quiet = 0, max_cases = 0, model_hparams = 1, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "t:", opts, NULL)) != -1) {
        switch (c) {
        case 'd': data = optarg; break;
        case 't': {
            int threads_rc = cli_threads_option("eval", optarg);
            if (threads_rc) return threads_rc;
            break;
        }
        case 'o': out = optarg; break;
        case 'm': methods_arg = optarg; break;
        case 'e': edit_arg = optarg; break;
        case 'L': test_arg = optarg; break;
        case 'n': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || !*optarg || v < 1 || v > 100000000)
                return cli_usage_error("eval", "--cases: expected a positive count, got '%s'", optarg);
            max_cases = (int)v;
            break;
        }
        case 'r': resume = 1; break;
        case 'S': stats_arg = optarg; break;
        case 'H':
            if (n_hparam_files == MAX_HPARAM_FILES) return cli_usage_error("eval", "--hparams: at most %d", MAX_HPARAM_FILES);
            hparam_files[n_hparam_files++] = optarg;
            break;
        case 'C': ctx_arg = optarg; break;
        case 'x': seed_arg = optarg; break;
        case 'M': match_arg = optarg; break;
        case 'N': model_hparams = 0; break;
        case 'Q': sequential = 1; break;
        case 'c': chat = 1; break;
        case 'K': checkpoints_arg = optarg; break;
        case 'F': fluency_arg = optarg; break;
        case 'O': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || !*optarg || v < 0 || v > 100000000)
                return cli_usage_error("eval", "--held-out: expected a count, got '%s'", optarg);
            held_out = (int)v;
            break;
        }
        case 'q': quiet = 1; break;
        case 'h':
            fputs(eval_usage, stdout);
            cli_threads_help(stdout);
            return 0;
        default:
            if (optopt) return cli_usage_error("eval", "option '%s' needs a value", argv[optind - 1]);
            return cli_usage_error("eval", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc - 1) return cli_usage_error("eval", "expected one MODEL argument");
    if (!data) return cli_usage_error("eval", "--data is required");
    if (!out) return cli_usage_error("eval", "--out RUN_DIR is required");
    xle_match match = XLE_MATCH_EXACT;
    if (match_arg) {
        if (!strcmp(match_arg, "exact")) match = XLE_MATCH_EXACT;
        else if (!strcmp(match_arg, "caseless")) match = XLE_MATCH_CASELESS;
        else if (!strcmp(match_arg, "stem")) match = XLE_MATCH_STEM;
        else return cli_usage_error("eval", "--subject-match: expected exact, caseless or stem");
    }
    unsigned long long seed = 0;
    if (seed_arg) {
        char *end;
        seed = strtoull(seed_arg, &end, 10);
        if (*end || !*seed_arg) return cli_usage_error("eval", "--seed: expected a number, got '%s'", seed_arg);
    }
    int rc = 2;
    xle_comm comm = {.size = 1};
    char *mbuf = NULL, *ebuf = NULL, *tbuf = NULL;
    const char **mitems = NULL, **eitems = NULL, **titems = NULL;
    int n_methods = 0, n_edit = 0, n_test = 0, checkpoints[64], n_checkpoints = 0;
    xle_edit_hparams hps[6];
    xle_edit_method methods[6];
    xle_model *model = NULL;
    for (const char *p = checkpoints_arg; sequential && *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 100000000 || (*end && *end != ',') || n_checkpoints == 64 ||
            (n_checkpoints && v <= checkpoints[n_checkpoints - 1])) {
            cli_usage_error("eval", "--checkpoints: expected ascending numbers of edits, e.g. 1,10,50,100");
            goto done;
        }
        checkpoints[n_checkpoints++] = (int)v;
        p = *end ? end + 1 : end;
    }
    if (!sequential && (fluency_arg || held_out)) {
        cli_usage_error("eval", "--held-out and --fluency-text go with --sequential");
        goto done;
    }
    if (split_list(methods_arg, &mbuf, &mitems, &n_methods) || n_methods > 6) {
        cli_usage_error("eval", "--methods: expected a list of rome, memit, ft-l, ft-m, ike, alphaedit");
        goto done;
    }
    for (int i = 0; i < n_methods; i++)
        if (xle_edit_method_parse(mitems[i], strlen(mitems[i]), &methods[i])) {
            cli_usage_error("eval", "--methods: unknown method '%s' (rome, memit, ft-l, ft-m, ike, alphaedit)", mitems[i]);
            goto done;
        }
    if ((edit_arg && split_list(edit_arg, &ebuf, &eitems, &n_edit)) ||
        (test_arg && split_list(test_arg, &tbuf, &titems, &n_test))) {
        cli_usage_error("eval", "--edit-langs/--test-langs: expected comma-separated language codes");
        goto done;
    }
    for (int i = 0; i < n_hparam_files; i++) {
        const char *eq = strchr(hparam_files[i], '=');
        xle_edit_method m;
        if (eq && xle_edit_method_parse(hparam_files[i], (size_t)(eq - hparam_files[i]), &m)) {
            cli_usage_error("eval", "--hparams: '%s': expected FILE or METHOD=FILE", hparam_files[i]);
            goto done;
        }
    }

    int shared = cli_mpi_start("eval", &comm);
    if (shared < 0) goto done;
    if (comm.rank > 0) quiet = 1; /* rank 0 speaks for the job */
    rc = 1;
    xle_error err = {0};
    if (xle_model_load(argv[optind], &model, &err) != XLE_OK) {
        rc = cli_report("eval", &err);
        goto done;
    }
    /* hyper-parameters: defaults scaled to the model, the model folder's own, then files (all
     * methods, then per method) */
    for (int i = 0; i < n_methods; i++) {
        int from_folder = 0;
        if (xle_edit_hparams_for_model_path(&hps[i], methods[i], model, model_hparams ? argv[optind] : NULL,
                                            &from_folder, &err) != XLE_OK) {
            rc = cli_report("eval", &err);
            goto done;
        }
        if (from_folder && !quiet)
            fprintf(stderr, "eval: using %s/edit-hparams/%s.json (--no-model-hparams to skip)\n", argv[optind],
                    xle_edit_method_name(methods[i]));
        for (int pass = 0; pass < 2; pass++)
            for (int k = 0; k < n_hparam_files; k++) {
                const char *f = hparam_files[k], *eq = strchr(f, '=');
                xle_edit_method m;
                if (pass == 0 ? eq != NULL : (!eq || xle_edit_method_parse(f, (size_t)(eq - f), &m) || m != methods[i]))
                    continue;
                char note[512];
                if (xle_edit_hparams_load_file(&hps[i], eq ? eq + 1 : f, model, note, sizeof note, &err) != XLE_OK) {
                    rc = cli_report("eval", &err);
                    goto done;
                }
                if (note[0] && !quiet)
                    fprintf(stderr, "eval: note: %s: keys xledit does not use: %s\n", eq ? eq + 1 : f, note);
            }
        if (seed_arg) hps[i].seed = seed;
    }
    char stats_dir[4096];
    cli_stats_dir(model, stats_arg, stats_dir, sizeof stats_dir);
    xle_eval_opts o = {0};
    o.data_path = data;
    o.run_dir = out;
    o.hparams = hps;
    o.n_methods = n_methods;
    o.edit_langs = eitems;
    o.n_edit_langs = n_edit;
    o.test_langs = titems;
    o.n_test_langs = n_test;
    o.max_cases = max_cases;
    o.resume = resume;
    o.stats_dir = stats_dir;
    o.context_templates = ctx_arg;
    o.subject_match = match;
    if (chat && (rc = cli_chat_template_load("eval", argv[optind], &chat_template))) goto done;
    o.chat = chat_template;
    cli_progress ps;
    cli_progress_begin(&ps, "eval", sequential ? "edits" : "units");
    if (quiet) cli_progress_quiet(&ps);
    o.progress = on_progress;
    o.progress_user = &ps;
    o.comm = shared ? &comm : NULL;
    g_interrupted = 0;
    struct sigaction sa, old_sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_sa);
    xle_eval_summary sum;
    xle_sequential_opts so = {checkpoints, n_checkpoints, held_out, fluency_arg};
    if (sequential && shared) {
        xle_fail(&err, XLE_ERR_ARG, "--sequential runs in one process (one chain of edits)");
        sigaction(SIGINT, &old_sa, NULL);
        cli_progress_end(&ps);
        rc = cli_report("eval", &err);
        goto done;
    }
    xle_status st = sequential ? xle_eval_sequential(model, &o, &so, &sum, &err) : xle_eval_run(model, &o, &sum, &err);
    sigaction(SIGINT, &old_sa, NULL);
    cli_progress_end(&ps);
    if (st == XLE_ERR_INTERRUPTED) {
        fprintf(stderr, "xledit eval: %s\n", err.msg);
        rc = 130;
        goto done;
    }
    if (st != XLE_OK) {
        if (strstr(err.msg, "stats.json") || strstr(err.msg, "statistics"))
            fprintf(stderr, "xledit eval: %s (build them: xledit stats %s --layers ... --corpus FILE%s%s)\n",
                    err.msg, argv[optind], stats_arg ? " --out " : "", stats_arg ? stats_arg : "");
        else
            cli_report("eval", &err);
        rc = 1;
        goto done;
    }
    if (!quiet && sequential)
        printf("%s: %d cases, %lld edits: %lld resumed, %lld made now; %lld skipped (unusable edit half), "
               "%lld failed\nreport: xledit report %s\n", out, sum.n_cases, (long long)sum.n_units,
               (long long)sum.n_resumed, (long long)sum.n_done, (long long)sum.n_skipped, (long long)sum.n_failed, out);
    else if (!quiet)
        printf("%s: %d cases, %lld units: %lld resumed, %lld run now; %lld skipped (unusable edit "
               "half), %lld failed\nreport: xledit report %s\n",
               out, sum.n_cases, (long long)sum.n_units, (long long)sum.n_resumed, (long long)sum.n_done,
               (long long)sum.n_skipped, (long long)sum.n_failed, out);
    rc = 0;
done:
    if (rc != 2) cli_mpi_finish(&comm, rc == 1);
    xle_model_free(model);
    xle_chat_template_free(chat_template);
    free(mbuf), free(ebuf), free(tbuf);
    free(mitems), free(eitems), free(titems);
    return rc;
}
