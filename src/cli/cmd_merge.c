/*
 * cmd_merge.c: `xledit merge`, model merging (linear, task arithmetic, TIES, DARE-TIES) into an
 * HF folder or a GGUF file. Option parsing and progress only; the work is xle_merge
 * (src/merge/). Ctrl-C stops at the next chunk and leaves no output.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/progress.h"

static const char MERGE_USAGE[] =
    "usage: xledit merge --method ties|task-arithmetic|dare-ties|dare-linear|linear --base BASE\n"
    "                    --models A B ... [--weights w1,w2,...] [--density 0.2] [--lambda 1.0]\n"
    "                    [--seed S] [--normalize|--no-normalize] [--out-format hf|gguf] [-t N]\n"
    "                    --out OUT\n"
    "       xledit merge --config RECIPE.yml [--seed S] [--out-format hf|gguf] [-t N] --out OUT\n"
    "\n"
    "Merges fine-tuned models of one architecture. Task vectors are tau_i = M_i - BASE.\n"
    "  linear           sum_i w_i M_i (divided by sum_i w_i unless --no-normalize); --base is\n"
    "                   optional and, when given, only sets the output's config, dtype and vocabulary\n"
    "  task-arithmetic  BASE + lambda * sum_i w_i tau_i\n"
    "  ties             keep each tau_i's top --density fraction by magnitude (per tensor), elect\n"
    "                   the sign of sum_i w_i tau_i per entry, average the agreeing entries\n"
    "                   (disjoint mean), BASE + lambda * that\n"
    "  dare-ties        drop each entry with probability 1 - density (seeded, deterministic),\n"
    "                   rescale the kept ones by 1/density, then the TIES election; summed, not\n"
    "                   averaged, unless --normalize (mergekit's default)\n"
    "  dare-linear      the same drop and rescale, then BASE + lambda * sum_i w_i tau~_i (no\n"
    "                   election; divided by sum_i w_i only with --normalize)\n"
    "--config reads a mergekit YAML recipe (merge_method linear, task_arithmetic, ties,\n"
    "dare_ties, dare_linear; base_model; models[].model with parameters weight, density;\n"
    "parameters normalize, lambda) with mergekit's defaults (density 1).\n"
    "\n"
    "Inputs may be HF folders, .gguf files or llama2.c checkpoints, mixed. Models with a larger\n"
    "(extended) vocabulary than BASE are merged on the shared rows; the extra rows and the\n"
    "tokenizer come from the first model with the largest vocabulary. The output has BASE's\n"
    "dtype; --out-format gguf needs a GGUF base. Details: docs/merging.md.\n"
    "\n"
    "options:\n"
    "  --weights LIST   one weight per model (default 1 each)\n"
    "  --density D      TIES / DARE-TIES fraction kept, in (0, 1] (default 0.2)\n"
    "  --lambda L       scale of the merged task vector (default 1)\n"
    "  --seed S         DARE drop mask seed (default 0)\n"
    "  --out OUT        output folder (hf) or file (gguf); must not exist\n";

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

static int show_progress(void *user, int64_t done, int64_t total) {
    cli_progress_update(user, done, total);
    return interrupted;
}

static int parse_double(const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(v)) return 0;
    *out = v;
    return 1;
}

static int parse_float(const char *s, float *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(v)) return 0;
    *out = (float)v;
    return 1;
}

/* "0.5,1,2" -> n floats (malloc'd). */
static int parse_weights(const char *s, float **out, int *n) {
    int cap = 1;
    for (const char *p = s; *p; p++) cap += *p == ',';
    float *w = malloc((size_t)cap * sizeof *w);
    char *copy = strdup(s);
    if (!w || !copy) {
        free(w);
        free(copy);
        return 0;
    }
    int k = 0, ok = 1;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok && ok; tok = strtok_r(NULL, ",", &save))
        ok = parse_float(tok, &w[k++]);
    free(copy);
    if (!ok || k != cap) {
        free(w);
        return 0;
    }
    *out = w;
    *n = k;
    return 1;
}

/* Runs opts and prints the summary line; returns the exit code. */
static int run_merge(xle_merge_opts *mo, const char *out) {
    cli_progress progress; /* input bytes read, shown in MB */
    cli_progress_begin(&progress, "merge", "MB");
    progress.scale = 1e6;
    mo->progress = show_progress;
    mo->progress_user = &progress;
    xle_merge_stats stats;
    xle_error err = {0};
    signal(SIGINT, on_sigint);
    xle_status st = xle_merge(mo, out, &stats, &err);
    signal(SIGINT, SIG_DFL);
    cli_progress_end(&progress);
    if (st != XLE_OK) return cli_report("merge", &err);
    fprintf(stderr, "merged %d tensors (%s, %d models) into %s: %.1f MB read, %.1f MB written, vocab %d%s\n",
           stats.n_tensors, xle_merge_method_name(mo->method), mo->n_models, out,
           (double)stats.input_bytes / 1e6, (double)stats.output_bytes / 1e6, stats.out_vocab,
           stats.vocab_donor >= 0 ? " (extended)" : "");
    return 0;
}

/* --config: the recipe's options over mo's seed, output format and threads. */
static int merge_from_config(const char *path, xle_merge_opts *mo, const char *out) {
    xle_merge_config *cfg = NULL;
    xle_error err = {0};
    char note[512];
    if (xle_merge_config_load(path, mo, &cfg, note, sizeof note, &err) != XLE_OK) return cli_report("merge", &err);
    if (note[0]) fprintf(stderr, "merge: note: %s: %s\n", path, note);
    int rc = run_merge(mo, out);
    xle_merge_config_free(cfg);
    return rc;
}

int cmd_merge(int argc, char **argv) {
    static const struct option opts[] = {
        {"method", required_argument, 0, 'm'},  {"base", required_argument, 0, 'b'},
        {"models", required_argument, 0, 'M'},  {"weights", required_argument, 0, 'w'},
        {"density", required_argument, 0, 'd'}, {"lambda", required_argument, 0, 'l'},
        {"seed", required_argument, 0, 's'},    {"out-format", required_argument, 0, 'f'},
        {"out", required_argument, 0, 'o'},     {"normalize", no_argument, 0, 'n'},
        {"no-normalize", no_argument, 0, 'N'},  {"threads", required_argument, 0, 't'},
        {"config", required_argument, 0, 'C'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    xle_merge_opts mo;
    xle_merge_opts_default(&mo);
    const char *out = NULL, *weights_arg = NULL, *config = NULL, *recipe_flag = NULL;
    int have_method = 0, c;
    const char **models = calloc((size_t)argc + 1, sizeof *models);
    if (!models) return cli_usage_error("merge", "out of memory");
    int n_models = 0, rc = 0;
    optind = 1;
    opterr = 0;
    while (rc == 0 && (c = getopt_long(argc, argv, "t:", opts, NULL)) != -1) {
        if (strchr("mbMwdlnN", c)) recipe_flag = argv[optind - 1]; /* what a recipe also says */
        switch (c) {
        case 'C': config = optarg; break;
        case 'm':
            if (!xle_merge_method_parse(optarg, &mo.method))
                rc = cli_usage_error("merge", "--method: '%s' is not one of ties, task-arithmetic, "
                                     "dare-ties, dare-linear, linear", optarg);
            have_method = 1;
            break;
        case 'b': mo.base = optarg; break;
        case 'M':
            /* --models takes every following argument up to the next option */
            models[n_models++] = optarg;
            while (optind < argc && argv[optind][0] != '-') models[n_models++] = argv[optind++];
            break;
        case 'w': weights_arg = optarg; break;
        case 'd':
            if (!parse_double(optarg, &mo.density) || !(mo.density > 0 && mo.density <= 1))
                rc = cli_usage_error("merge", "--density: '%s' is not a number in (0, 1]", optarg);
            break;
        case 'l':
            if (!parse_float(optarg, &mo.lambda)) rc = cli_usage_error("merge", "--lambda: '%s' is not a number", optarg);
            break;
        case 's': {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(optarg, &end, 10);
            if (end == optarg || *end || errno || optarg[0] == '-')
                rc = cli_usage_error("merge", "--seed: '%s' is not a non-negative integer", optarg);
            mo.seed = v;
            break;
        }
        case 'f':
            if (!strcmp(optarg, "hf")) mo.out_format = XLE_FORMAT_HF;
            else if (!strcmp(optarg, "gguf")) mo.out_format = XLE_FORMAT_GGUF;
            else rc = cli_usage_error("merge", "--out-format: '%s' is not hf or gguf", optarg);
            break;
        case 'o': out = optarg; break;
        case 't': rc = cli_threads_option("merge", optarg); break;
        case 'n': mo.normalize = 1; break;
        case 'N': mo.normalize = 0; break;
        case 'h':
            fputs(MERGE_USAGE, stdout);
            cli_threads_help(stdout);
            free(models);
            return 0;
        default: rc = cli_usage_error("merge", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (rc == 0 && optind < argc) rc = cli_usage_error("merge", "unexpected argument '%s'", argv[optind]);
    if (rc == 0 && config) {
        if (recipe_flag) rc = cli_usage_error("merge", "%s cannot be combined with --config (the recipe says it)", recipe_flag);
        else if (!out) rc = cli_usage_error("merge", "--out is required");
        if (rc == 0) rc = merge_from_config(config, &mo, out);
        free(models);
        return rc;
    }
    if (rc == 0 && !have_method) rc = cli_usage_error("merge", "--method is required");
    if (rc == 0 && n_models == 0) rc = cli_usage_error("merge", "--models is required");
    if (rc == 0 && !out) rc = cli_usage_error("merge", "--out is required");
    if (rc == 0 && !mo.base && mo.method != XLE_MERGE_LINEAR)
        rc = cli_usage_error("merge", "--base is required for %s", xle_merge_method_name(mo.method));
    float *weights = NULL;
    int n_weights = 0;
    if (rc == 0 && weights_arg) {
        if (!parse_weights(weights_arg, &weights, &n_weights))
            rc = cli_usage_error("merge", "--weights: '%s' is not a comma-separated list of numbers", weights_arg);
        else if (n_weights != n_models)
            rc = cli_usage_error("merge", "--weights: %d weights for %d models", n_weights, n_models);
    }
    if (rc != 0) {
        free(models);
        free(weights);
        return rc;
    }
    mo.models = models;
    mo.n_models = n_models;
    mo.weights = weights;
    rc = run_merge(&mo, out);
    free(models);
    free(weights);
    return rc;
}
