/*
 * cmd_merge.c: `xledit merge`, model merging (linear, task arithmetic, TIES, DARE-TIES,
 * DARE-linear; from flags or a mergekit recipe with --config, per-model and per-layer weights and
 * densities) into an HF folder or a GGUF file. Option parsing and progress only; the work is
 * xle_merge (src/merge/). Ctrl-C stops at the next chunk and leaves no output.
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
    "dare_ties, dare_linear; base_model; models[].model with parameters weight, density, each a\n"
    "number or a per-layer list;\n"
    "parameters normalize, lambda) with mergekit's defaults (density 1).\n"
    "\n"
    "Inputs may be HF folders, .gguf files or llama2.c checkpoints, mixed. Models with a larger\n"
    "(extended) vocabulary than BASE are merged on the shared rows; the extra rows and the\n"
    "tokenizer come from the first model with the largest vocabulary. The output has BASE's\n"
    "dtype; --out-format gguf needs a GGUF base. Details: docs/merging.md.\n"
    "\n"
    "options:\n"
    "  --weights LIST   one weight per model (default 1 each)\n"
    "  --density D      TIES / DARE fraction kept, in (0, 1] (default 0.2); one for all models or a\n"
    "                   comma-separated list, one per model (mergekit's per-model density)\n"
    "                   In --weights and --density an entry may be a per-layer list a:b:c (mergekit's\n"
    "                   gradient: interpolated over the layers; embeddings and head take a)\n"
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

static int parse_float(const char *s, float *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(v)) return 0;
    *out = (float)v;
    return 1;
}

/* A --weights or --density argument: comma-separated entries, one per model (or, for
 * --density, one for all), each a number or a ':'-separated per-layer list ("0.2:0.5:1", as a
 * mergekit gradient). All numbers live in store; grads[i].n is 0 for a plain number. */
typedef struct value_arg {
    int n;                     /* entries */
    double *scalars;           /* n: the number, or the list's first value */
    xle_merge_gradient *grads; /* n */
    double *store;
    int any_list;
} value_arg;

static void value_arg_free(value_arg *a) {
    free(a->scalars);
    free(a->grads);
    free(a->store);
    memset(a, 0, sizeof *a);
}

/* Parses s; density: every number must lie in (0, 1]. Returns 0 on a malformed argument. */
static int parse_values(const char *s, int density, value_arg *a) {
    memset(a, 0, sizeof *a);
    int entries = 1, numbers = 1;
    for (const char *p = s; *p; p++) {
        entries += *p == ',';
        numbers += *p == ',' || *p == ':';
    }
    a->scalars = calloc((size_t)entries, sizeof *a->scalars);
    a->grads = calloc((size_t)entries, sizeof *a->grads);
    a->store = calloc((size_t)numbers, sizeof *a->store);
    char *copy = strdup(s);
    int ok = a->scalars && a->grads && a->store && copy, used = 0;
    char *save = NULL;
    for (char *tok = ok ? strtok_r(copy, ",", &save) : NULL; tok && ok; tok = strtok_r(NULL, ",", &save)) {
        int first = used, k = 0;
        const char *q = tok;
        for (;;) { /* one number up to the next ':' */
            char *end;
            errno = 0;
            double v = strtod(q, &end);
            ok = end != q && (*end == ':' || *end == 0) && !errno && isfinite(v) && (!density || (v > 0 && v <= 1));
            if (!ok) break;
            a->store[used++] = v;
            k++;
            if (*end == 0) break;
            q = end + 1;
        }
        if (!ok) break;
        a->scalars[a->n] = a->store[first];
        if (k > 1) {
            a->grads[a->n] = (xle_merge_gradient){a->store + first, k};
            a->any_list = 1;
        }
        a->n++;
    }
    free(copy);
    if (ok && a->n != entries) ok = 0; /* an empty entry ("1,,2") */
    if (!ok) value_arg_free(a);
    return ok;
}

/* One --density entry for every model: copies the single entry n_models times. */
static int spread_values(value_arg *a, int n_models) {
    if (a->n != 1 || n_models == 1) return 1;
    double *scalars = calloc((size_t)n_models, sizeof *scalars);
    xle_merge_gradient *grads = calloc((size_t)n_models, sizeof *grads);
    if (!scalars || !grads) {
        free(scalars);
        free(grads);
        return 0;
    }
    for (int i = 0; i < n_models; i++) {
        scalars[i] = a->scalars[0];
        grads[i] = a->grads[0];
    }
    free(a->scalars);
    free(a->grads);
    a->scalars = scalars;
    a->grads = grads;
    a->n = n_models;
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
    const char *out = NULL, *weights_arg = NULL, *density_arg = NULL, *config = NULL, *recipe_flag = NULL;
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
        case 'd': density_arg = optarg; break;
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
    value_arg wa = {0}, da = {0};
    if (rc == 0 && weights_arg) {
        if (!parse_values(weights_arg, 0, &wa))
            rc = cli_usage_error("merge", "--weights: '%s' is not a comma-separated list of numbers (or "
                                 "':'-separated per-layer lists)", weights_arg);
        else if (wa.n != n_models)
            rc = cli_usage_error("merge", "--weights: %d weights for %d models", wa.n, n_models);
        else if (!(weights = malloc((size_t)n_models * sizeof *weights)))
            rc = cli_usage_error("merge", "out of memory");
        for (int i = 0; rc == 0 && i < n_models; i++) weights[i] = (float)wa.scalars[i];
    }
    if (rc == 0 && density_arg) {
        if (!parse_values(density_arg, 1, &da))
            rc = cli_usage_error("merge", "--density: '%s' is not a number in (0, 1], one per model, or "
                                 "':'-separated per-layer lists", density_arg);
        else if (da.n != 1 && da.n != n_models)
            rc = cli_usage_error("merge", "--density: %d values for %d models", da.n, n_models);
        else if (!spread_values(&da, n_models))
            rc = cli_usage_error("merge", "out of memory");
    }
    if (rc == 0) {
        mo.models = models;
        mo.n_models = n_models;
        mo.weights = weights;
        mo.weight_gradients = wa.any_list ? wa.grads : NULL;
        if (density_arg) {
            mo.density = da.scalars[0];
            mo.densities = da.scalars;
            mo.density_gradients = da.any_list ? da.grads : NULL;
        }
        rc = run_merge(&mo, out);
    }
    free(models);
    free(weights);
    value_arg_free(&wa);
    value_arg_free(&da);
    return rc;
}
