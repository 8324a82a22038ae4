/*
 * cmd_trace.c: `xledit trace`, causal tracing (docs/tracing.md): one prompt, one case in every
 * language, or the mean indirect effect over a case file. The work is done by src/trace/; this
 * file parses options, shows progress and prints a short reading of the result.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/progress.h"

static const char trace_usage[] =
    "usage: xledit trace MODEL --prompt P --subject S [--target T] --out DIR\n"
    "       xledit trace MODEL --data CASES.jsonl --case ID [--langs en,hi,...] --out DIR\n"
    "       xledit trace MODEL --data CASES.jsonl [--cases N] [--langs en,hi,...] --out DIR\n"
    "                   [--samples 10] [--noise 3] [--window 10] [--seed 1] [-t N]\n\n"
    "Causal tracing (ROME, Meng et al. 2022): Gaussian noise of --noise x the standard deviation\n"
    "of the subjects' token embeddings is added to the subject's embeddings (--samples draws,\n"
    "seeded), and the probability of the target (default: the model's own top answer) is measured\n"
    "with the clean run's state restored at each (token, layer): the hidden state after the layer,\n"
    "or the MLP / attention output over a window of --window layers around it.\n"
    "One prompt, or one case (--case ID: the same fact in every language of the case, one noise\n"
    "level for all): DIR/trace.json and DIR/trace.svg (heatmaps side by side per language).\n"
    "A case file without --case: the mean indirect effect per layer and language at the subject's\n"
    "last token and at the last token, DIR/summary.json and DIR/summary.svg. (docs/tracing.md)\n";

static int parse_int(const char *s, int lo, int hi, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || !*s || v < lo || v > hi) return 1;
    *out = (int)v;
    return 0;
}

/* Splits "a,b" into a malloc'd copy and pointers into it. */
static int split_langs(const char *s, char **buf, const char ***items, int *n) {
    *buf = strdup(s);
    *items = calloc(strlen(s) / 2 + 2, sizeof **items);
    *n = 0;
    if (!*buf || !*items) return 1;
    for (char *tok = *buf, *next; tok; tok = next) {
        next = strchr(tok, ',');
        if (next) *next++ = 0;
        if (!*tok || strlen(tok) >= XLE_LANG_MAX) return 1;
        (*items)[(*n)++] = tok;
    }
    return *n == 0;
}

int cmd_trace(int argc, char **argv) {
    static const struct option opts[] = {
        {"prompt", required_argument, 0, 'p'}, {"subject", required_argument, 0, 's'},
        {"target", required_argument, 0, 'T'}, {"data", required_argument, 0, 'd'},
        {"case", required_argument, 0, 'c'}, {"cases", required_argument, 0, 'n'},
        {"langs", required_argument, 0, 'L'}, {"out", required_argument, 0, 'o'},
        {"samples", required_argument, 0, 'S'}, {"noise", required_argument, 0, 'N'},
        {"window", required_argument, 0, 'w'}, {"seed", required_argument, 0, 'x'},
        {"quiet", no_argument, 0, 'q'}, {"threads", required_argument, 0, 't'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *prompt = NULL, *subject = NULL, *target = NULL, *data = NULL, *case_id = NULL, *langs_arg = NULL,
               *out = NULL;
    int max_cases = 0, quiet = 0, c;
    double noise_scale = 3.0;
    xle_trace_opts to;
    xle_trace_opts_default(&to);
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "t:", opts, NULL)) != -1) {
        switch (c) {
        case 'p': prompt = optarg; break;
        case 's': subject = optarg; break;
        case 'T': target = optarg; break;
        case 'd': data = optarg; break;
        case 'c': case_id = optarg; break;
        case 'L': langs_arg = optarg; break;
        case 'o': out = optarg; break;
        case 'q': quiet = 1; break;
        case 'n':
            if (parse_int(optarg, 1, 100000000, &max_cases))
                return cli_usage_error("trace", "--cases: expected a positive count, got '%s'", optarg);
            break;
        case 'S':
            if (parse_int(optarg, 1, 10000, &to.samples))
                return cli_usage_error("trace", "--samples: expected 1..10000, got '%s'", optarg);
            break;
        case 'w':
            if (parse_int(optarg, 1, 10000, &to.window))
                return cli_usage_error("trace", "--window: expected a positive count, got '%s'", optarg);
            break;
        case 'N': {
            char *end;
            noise_scale = strtod(optarg, &end);
            if (*end || !*optarg || !(noise_scale >= 0) || noise_scale > 1e6)
                return cli_usage_error("trace", "--noise: expected a non-negative multiple, got '%s'", optarg);
            break;
        }
        case 'x': {
            char *end;
            to.seed = strtoull(optarg, &end, 10);
            if (*end || !*optarg) return cli_usage_error("trace", "--seed: expected a number, got '%s'", optarg);
            break;
        }
        case 't': {
            int rc = cli_threads_option("trace", optarg);
            if (rc) return rc;
            break;
        }
        case 'h':
            fputs(trace_usage, stdout);
            cli_threads_help(stdout);
            return 0;
        default:
            if (optopt) return cli_usage_error("trace", "option '%s' needs a value", argv[optind - 1]);
            return cli_usage_error("trace", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc - 1) return cli_usage_error("trace", "expected one MODEL argument");
    if (!out) return cli_usage_error("trace", "--out DIR is required");
    if (!data == !prompt) return cli_usage_error("trace", "give either --prompt and --subject, or --data");
    if (prompt && !subject) return cli_usage_error("trace", "--prompt needs --subject");
    if (data && (subject || target)) return cli_usage_error("trace", "--subject and --target go with --prompt");
    if (prompt && (case_id || max_cases || langs_arg))
        return cli_usage_error("trace", "--case, --cases and --langs go with --data");
    if (case_id && max_cases) return cli_usage_error("trace", "--case and --cases exclude each other");
    char *lbuf = NULL;
    const char **litems = NULL;
    int n_langs = 0;
    if (langs_arg && split_langs(langs_arg, &lbuf, &litems, &n_langs)) {
        free(lbuf), free(litems);
        return cli_usage_error("trace", "--langs: expected comma-separated language codes");
    }
    int rc = 1;
    xle_error err = {0};
    xle_model *model = NULL;
    xle_cases *cs = NULL;
    xle_trace_fact *facts = NULL;
    cli_progress ps;
    cli_progress_begin(&ps, "trace", data && !case_id ? "facts" : "prompts");
    if (quiet) cli_progress_quiet(&ps);
    if (xle_model_load(argv[optind], &model, &err) != XLE_OK) {
        rc = cli_report("trace", &err);
        goto done;
    }
    xle_status st;
    if (prompt) {
        xle_trace_fact f = {"", prompt, subject, target};
        st = xle_trace_facts(model, &f, 1, &to, noise_scale, out, cli_progress_callback, &ps, &err);
    } else if (case_id) {
        if ((st = xle_cases_load(data, &cs, &err)) != XLE_OK) {
            rc = cli_report("trace", &err);
            goto done;
        }
        const xle_case *cc = NULL;
        for (int i = 0; i < cs->n; i++)
            if (!strcmp(cs->cases[i].id, case_id)) cc = &cs->cases[i];
        if (!cc) {
            fprintf(stderr, "xledit trace: %s: no case with id '%s'\n", data, case_id);
            goto done;
        }
        facts = calloc((size_t)cc->n_langs + 1, sizeof *facts);
        int nf = 0;
        if (!facts) {
            fprintf(stderr, "xledit trace: out of memory\n");
            goto done;
        }
        for (int i = 0; i < (langs_arg ? n_langs : cc->n_langs); i++) {
            const xle_case_lang *l = langs_arg ? xle_case_lang_find(cc, litems[i]) : &cc->langs[i];
            if (!l) {
                fprintf(stderr, "xledit trace: %s: case %s has no '%s' half\n", data, case_id, litems[i]);
                goto done;
            }
            facts[nf++] = (xle_trace_fact){l->lang, l->prompt, l->subject, NULL};
        }
        st = xle_trace_facts(model, facts, nf, &to, noise_scale, out, cli_progress_callback, &ps, &err);
    } else {
        st = xle_trace_cases(model, data, langs_arg ? litems : NULL, n_langs, max_cases, &to, noise_scale, out,
                             cli_progress_callback, &ps, &err);
    }
    if (st != XLE_OK) {
        rc = cli_report("trace", &err);
        goto done;
    }
    cli_progress_end(&ps);
    if (!quiet) {
        if (data && !case_id) printf("wrote %s/summary.json and %s/summary.svg\n", out, out);
        else printf("wrote %s/trace.json and %s/trace.svg\n", out, out);
    }
    rc = 0;
done:
    cli_progress_end(&ps);
    xle_cases_free(cs);
    free(facts);
    xle_model_free(model);
    free(lbuf), free(litems);
    return rc;
}
