/*
 * cmd_edit.c: the editing subcommands: `stats` (key statistics cache), `edit` (ROME, MEMIT,
 * FT-L, FT-M on text requests, writing the edited model and/or a patch) and `patch`
 * (apply or revert a patch file).
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/outpath.h"
#include "cli/progress.h"

/* Set by SIGINT so that long work stops at its next checkpoint (signal handlers may only
 * touch a volatile sig_atomic_t: this is the one piece of process state the CLI keeps). */
static volatile sig_atomic_t interrupted;

static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

static int print_progress(void *user, int64_t done, int64_t total) {
    cli_progress_update(user, done, total);
    return interrupted;
}

/* Parses "5", "4,5,6" or "4-8" (and mixtures) into layers; returns 0 on success. */
static int parse_layers(const char *s, int *layers, int *n) {
    *n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        long a = strtol(p, &end, 10), b = a;
        if (end == p || a < 0 || a > 100000) return 1;
        p = end;
        if (*p == '-') {
            b = strtol(p + 1, &end, 10);
            if (end == p + 1 || b < a || b > 100000) return 1;
            p = end;
        }
        for (long l = a; l <= b; l++) {
            if (*n >= XLE_EDIT_MAX_LAYERS) return 1;
            layers[(*n)++] = (int)l;
        }
        if (*p == ',') p++;
        else if (*p) return 1;
    }
    return *n == 0;
}

int cli_stats_dir(xle_model *model, const char *given, char *out, size_t cap) {
    if (given) {
        snprintf(out, cap, "%s", given);
        return 0;
    }
    char fp[65];
    xle_model_fingerprint(model, fp);
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (xdg && *xdg) snprintf(out, cap, "%s/xledit/stats/%.16s", xdg, fp);
    else snprintf(out, cap, "%s/.cache/xledit/stats/%.16s", home && *home ? home : ".", fp);
    return 0;
}

/* ---- xledit stats ------------------------------------------------------------------------ */

static const char stats_usage[] =
    "usage: xledit stats MODEL --layers L[,L|-L...] --corpus FILE [--corpus FILE...]\n"
    "                    [--max-tokens N] [--max-len N] [--out DIR] [-t N]\n\n"
    "Computes the second moment E[k k^T] of the down-projection input at each layer over a\n"
    "corpus (plain text: one document per line; .jsonl: a \"text\" field per line),\n"
    "in float64, and stores it with the model's fingerprint in DIR. Default: the model's\n"
    "cache ~/.cache/xledit/stats/<fingerprint>/, one folder per set of options (layers,\n"
    "corpus, limits), where edit, eval and demo look for the layers they need (the set with\n"
    "the most tokens). With --out DIR, give the same DIR to them as --stats DIR.\n"
    "Interrupted (Ctrl-C or killed), it resumes from its last checkpoint when run again\n"
    "with the same arguments. Prints the folder on stdout.\n"
    "Under mpirun (mpirun -np N xledit stats ...) the N processes share the corpus and rank 0\n"
    "writes DIR. (docs/scale.md)\n";

int cmd_stats(int argc, char **argv) {
    static const struct option opts[] = {
        {"layers", required_argument, 0, 'l'}, {"corpus", required_argument, 0, 'c'},
        {"max-tokens", required_argument, 0, 'm'}, {"max-len", required_argument, 0, 'L'},
        {"out", required_argument, 0, 'o'}, {"threads", required_argument, 0, 't'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int layers[XLE_EDIT_MAX_LAYERS], n_layers = 0, c, n_corpus = 0, rc;
    const char *corpus[64], *out = NULL;
    long long max_tokens = 0, max_len = 0;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "t:", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 't':
            if ((rc = cli_threads_option("stats", optarg))) return rc;
            break;
        case 'l':
            if (parse_layers(optarg, layers, &n_layers))
                return cli_usage_error("stats", "--layers: expected e.g. 5 or 4,5,6 or 4-8, got '%s'", optarg);
            break;
        case 'c':
            if (n_corpus >= 64) return cli_usage_error("stats", "--corpus: at most 64 files");
            corpus[n_corpus++] = optarg;
            break;
        case 'm':
            max_tokens = strtoll(optarg, &end, 10);
            if (*end || max_tokens < 0) return cli_usage_error("stats", "--max-tokens: expected a count, got '%s'", optarg);
            break;
        case 'L':
            max_len = strtoll(optarg, &end, 10);
            if (*end || max_len < 1 || max_len > 1 << 20) return cli_usage_error("stats", "--max-len: expected a length, got '%s'", optarg);
            break;
        case 'o': out = optarg; break;
        case 'h':
            fputs(stats_usage, stdout);
            cli_threads_help(stdout);
            return 0;
        default: return cli_usage_error("stats", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc - 1) return cli_usage_error("stats", "expected one MODEL argument");
    if (!n_layers) return cli_usage_error("stats", "--layers is required");
    if (!n_corpus) return cli_usage_error("stats", "--corpus is required");
    xle_comm comm;
    int shared = cli_mpi_start("stats", &comm);
    if (shared < 0) return 1;
    xle_error err = {0};
    xle_model *model;
    if (xle_model_load(argv[optind], &model, &err) != XLE_OK) {
        cli_mpi_finish(&comm, 1);
        return cli_report("stats", &err);
    }
    char dir[4096];
    cli_stats_dir(model, out, dir, sizeof dir);
    xle_stats_opts so = {layers, n_layers, corpus, n_corpus, max_tokens, (int)max_len, dir, NULL, NULL};
    if (out) { /* --out stats/ is the folder stats */
        size_t k = strlen(dir);
        while (k > 1 && dir[k - 1] == '/') dir[--k] = 0;
    } else { /* the cache: one folder per option set, beside those of other options */
        size_t k = strlen(dir);
        dir[k++] = '/';
        xle_stats_set_name(model, &so, dir + k, sizeof dir - k);
    }
    if (cli_make_parent_dirs(dir) != 0) {
        xle_model_free(model);
        fprintf(stderr, "xledit stats: %s: cannot create: %s\n", dir, strerror(errno));
        cli_mpi_finish(&comm, 1);
        return 1;
    }
    cli_progress ps;
    cli_progress_begin(&ps, "stats", "tokens");
    if (comm.rank > 0) cli_progress_quiet(&ps); /* rank 0 speaks for the job */
    so.progress = print_progress;
    so.progress_user = &ps;
    signal(SIGINT, on_sigint);
    xle_status st = xle_stats_build_shared(model, xle_model_tokenizer(model), &so, shared ? &comm : NULL, &err);
    signal(SIGINT, SIG_DFL);
    cli_progress_end(&ps);
    xle_model_free(model);
    rc = 0;
    if (st != XLE_OK && (comm.rank == 0 || st != XLE_ERR_INTERRUPTED)) rc = cli_report("stats", &err);
    else if (st != XLE_OK) rc = 1;
    else if (comm.rank == 0) printf("%s\n", dir);
    cli_mpi_finish(&comm, rc && st != XLE_ERR_INTERRUPTED);
    return rc;
}

/* ---- xledit edit ------------------------------------------------------------------------- */

typedef struct request_list {
    xle_edit_request *reqs;
    int n;
    json_t *json;     /* keeps the strings of a --requests file alive */
} request_list;

/* Reads FILE.jsonl: one {"prompt", "subject", "target_new" (or "target")} per line. */
static int load_requests(const char *path, request_list *rl) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "xledit edit: %s: cannot open: %s\n", path, strerror(errno));
        return 1;
    }
    rl->json = json_array();
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0, rc = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (len == 0) continue;
        json_error_t je;
        json_t *o = json_loadb(line, (size_t)len, 0, &je);
        if (!o || !json_is_object(o)) {
            fprintf(stderr, "xledit edit: %s:%d: %s\n", path, lineno, o ? "not a JSON object" : je.text);
            json_decref(o);
            rc = 1;
            break;
        }
        const char *fields[] = {"prompt", "subject", "target_new"};
        for (int i = 0; i < 3 && !rc; i++) {
            json_t *v = json_object_get(o, fields[i]);
            if (!v && i == 2) v = json_object_get(o, "target");
            if (!json_is_string(v) || !*json_string_value(v)) {
                fprintf(stderr, "xledit edit: %s:%d: %s: missing or not a non-empty string\n", path,
                        lineno, fields[i]);
                rc = 1;
            }
        }
        json_array_append_new(rl->json, o);
        if (rc) break;
    }
    free(line);
    fclose(f);
    if (rc) return rc;
    rl->n = (int)json_array_size(rl->json);
    if (rl->n == 0) {
        fprintf(stderr, "xledit edit: %s: no requests\n", path);
        return 1;
    }
    rl->reqs = calloc((size_t)rl->n, sizeof *rl->reqs);
    if (!rl->reqs) return 1;
    for (int i = 0; i < rl->n; i++) {
        json_t *o = json_array_get(rl->json, (size_t)i);
        json_t *t = json_object_get(o, "target_new");
        if (!t) t = json_object_get(o, "target");
        rl->reqs[i] = (xle_edit_request){json_string_value(json_object_get(o, "prompt")),
                                         json_string_value(json_object_get(o, "subject")),
                                         json_string_value(t)};
    }
    return 0;
}

/* The request's prompt with the subject in place of "{}". */
static char *filled_prompt(const xle_edit_request *r) {
    const char *hole = strstr(r->prompt, "{}");
    size_t n = strlen(r->prompt) + strlen(r->subject) + 1;
    char *s = malloc(n);
    if (!s) return NULL;
    if (!hole) snprintf(s, n, "%s", r->prompt);
    else snprintf(s, n, "%.*s%s%s", (int)(hole - r->prompt), r->prompt, r->subject, hole + 2);
    return s;
}

/* text followed by its greedy continuation (n_new tokens), decoded together so that spacing
 * is the tokenizer's; caller frees. */
static char *continuation(xle_model *model, const xle_tokenizer *tok, const char *text, int n_new,
                          xle_error *err) {
    xle_tokens t = {0};
    if (xle_tokenize(tok, text, strlen(text), -1, 0, &t, err) != XLE_OK) return NULL;
    int32_t *all = malloc((size_t)(t.n + n_new) * sizeof *all);
    int n_out = 0;
    xle_sampler greedy = {.stop_at_eos = 1};
    char *s = NULL;
    if (all) {
        memcpy(all, t.ids, (size_t)t.n * sizeof *all);
        if (xle_generate(model, t.ids, t.n, n_new, &greedy, all + t.n, &n_out, err) == XLE_OK)
            s = xle_detokenize(tok, all, t.n + n_out, 1);
        else
            free(all), all = NULL;
    }
    if (all && !s) xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    free(all);
    xle_tokens_free(&t);
    if (s)
        for (char *p = s; *p; p++)
            if (*p == '\n') *p = ' ';
    return s;
}

static json_t *info_json(const char *model_path, xle_model *model, const xle_edit_hparams *hp,
                         const request_list *rl, const xle_context_templates *ct) {
    (void)model_path;
    char fp[65];
    xle_model_fingerprint(model, fp);
    json_t *layers = json_array(), *reqs = json_array(), *tpls = json_array();
    for (int i = 0; i < hp->n_layers; i++) json_array_append_new(layers, json_integer(hp->layers[i]));
    for (int i = 0; i < rl->n; i++)
        json_array_append_new(reqs, json_pack("{s:s, s:s, s:s}", "prompt", rl->reqs[i].prompt,
                                              "subject", rl->reqs[i].subject, "target_new",
                                              rl->reqs[i].target));
    for (int i = 0; ct && i < ct->n; i++) json_array_append_new(tpls, json_string(ct->texts[i]));
    return json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:I}", "tool", "xledit " XLE_VERSION_STRING, "method",
                     xle_edit_method_name(hp->method), "model_fingerprint", fp, "layers", layers,
                     "requests", reqs, "context_templates", tpls, "seed",
                     (json_int_t)hp->seed);
}

static const char edit_usage[] =
    "usage: xledit edit MODEL --method rome|memit|ft-l|ft-m|alphaedit\n"
    "                   (--prompt P --subject S --target T | --requests FILE.jsonl)\n"
    "                   [--layers L[,L|-L]] [--hparams FILE.yaml|.json] [--context-templates FILE|none]\n"
    "                   [--stats DIR] [--out OUT] [--patch FILE] [--seed S]\n"
    "                   [--no-model-hparams] [--quiet] [-t N]\n"
    "                   [--requantize | --edited-dtype f16|bf16|f32] [--alphaedit-state DIR]\n\n"
    "Edits one fact (or a batch: one JSON object per line with prompt, subject, target_new).\n"
    "The prompt must contain the subject (or \"{}\" in its place) and ends where the target\n"
    "begins. OUT is written in MODEL's format (HF folder or GGUF), atomically; untouched tensors\n"
    "are copied byte for byte, edited ones are stored as F32. In a quantized GGUF (Q4_0 .. Q6_K)\n"
    "an edited matrix is stored as F16 (--edited-dtype bf16 or f32 to change that), or quantized\n"
    "again to its own type with --requantize (smaller, less exact: docs/formats.md).\n"
    "--patch writes the low-rank deltas\n"
    "with the original bytes so that `xledit patch revert` restores them exactly.\n"
    "Defaults: EasyEdit's Llama/Mistral-7B hyperparameters with the layers scaled to the model's\n"
    "depth (docs/editing.md), then the model folder's own edit-hparams/<method>.json if it has\n"
    "one (the built-in model does; --no-model-hparams skips it), then --hparams (EasyEdit's\n"
    "hparams/<METHOD>/<model>.yaml as published, or JSON), then --layers.\n"
    "ROME with mom2_adjustment and MEMIT need key statistics (`xledit stats`; found in\n"
    "--stats DIR or the cache).\n"
    "AlphaEdit with --alphaedit-state DIR edits in sequence: the first call computes the null-space\n"
    "projection from the statistics and keeps it in DIR with the keys of the edits and the context\n"
    "templates; each later call, given the model the previous call wrote, reads them from DIR (no\n"
    "statistics needed) and adds its keys.\n";

int cmd_edit(int argc, char **argv) {
    static const struct option opts[] = {
        {"method", required_argument, 0, 'M'}, {"prompt", required_argument, 0, 'p'},
        {"subject", required_argument, 0, 's'}, {"target", required_argument, 0, 'T'},
        {"requests", required_argument, 0, 'r'}, {"layers", required_argument, 0, 'l'},
        {"hparams", required_argument, 0, 'H'}, {"context-templates", required_argument, 0, 'C'},
        {"stats", required_argument, 0, 'S'}, {"out", required_argument, 0, 'o'},
        {"patch", required_argument, 0, 'P'}, {"seed", required_argument, 0, 'x'},
        {"no-model-hparams", no_argument, 0, 'N'}, {"quiet", no_argument, 0, 'q'},
        {"requantize", no_argument, 0, 'Q'}, {"edited-dtype", required_argument, 0, 'E'},
        {"threads", required_argument, 0, 't'}, {"help", no_argument, 0, 'h'},
        {"alphaedit-state", required_argument, 0, 'A'}, {0, 0, 0, 0}};
    const char *alpha_dir = NULL;
    const char *method = NULL, *prompt = NULL, *subject = NULL, *target = NULL, *reqs_path = NULL,
               *layers_arg = NULL, *hparams = NULL, *ctx_arg = NULL, *stats_arg = NULL,
               *out = NULL, *patch = NULL, *seed_arg = NULL;
    int c, quiet = 0, model_hparams = 1, threads_rc, quant_save = -1;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "t:", opts, NULL)) != -1) {
        switch (c) {
        case 'M': method = optarg; break;
        case 'p': prompt = optarg; break;
        case 's': subject = optarg; break;
        case 'T': target = optarg; break;
        case 't':
            if ((threads_rc = cli_threads_option("edit", optarg))) return threads_rc;
            break;
        case 'r': reqs_path = optarg; break;
        case 'l': layers_arg = optarg; break;
        case 'H': hparams = optarg; break;
        case 'C': ctx_arg = optarg; break;
        case 'S': stats_arg = optarg; break;
        case 'o': out = optarg; break;
        case 'P': patch = optarg; break;
        case 'x': seed_arg = optarg; break;
        case 'N': model_hparams = 0; break;
        case 'A': alpha_dir = optarg; break;
        case 'q': quiet = 1; break;
        case 'Q': quant_save = XLE_QSAVE_REQUANTIZE; break;
        case 'E':
            if (!strcmp(optarg, "f16")) quant_save = XLE_QSAVE_F16;
            else if (!strcmp(optarg, "bf16")) quant_save = XLE_QSAVE_BF16;
            else if (!strcmp(optarg, "f32")) quant_save = XLE_QSAVE_F32;
            else return cli_usage_error("edit", "--edited-dtype: expected f16, bf16 or f32, got '%s'", optarg);
            break;
        case 'h':
            fputs(edit_usage, stdout);
            cli_threads_help(stdout);
            return 0;
        default: return cli_usage_error("edit", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc - 1) return cli_usage_error("edit", "expected one MODEL argument");
    xle_edit_method m;
    if (!method || xle_edit_method_parse(method, strlen(method), &m) || m == XLE_EDIT_IKE)
        return cli_usage_error("edit", "--method: expected rome, memit, ft-l, ft-m or alphaedit");
    if (alpha_dir && m != XLE_EDIT_ALPHAEDIT) return cli_usage_error("edit", "--alphaedit-state goes with --method alphaedit");
    if (!reqs_path && !(prompt && subject && target))
        return cli_usage_error("edit", "give --prompt, --subject and --target, or --requests FILE");
    if (reqs_path && (prompt || subject || target))
        return cli_usage_error("edit", "--requests cannot be combined with --prompt/--subject/--target");
    int layers[XLE_EDIT_MAX_LAYERS], n_layers = 0;
    if (layers_arg && parse_layers(layers_arg, layers, &n_layers))
        return cli_usage_error("edit", "--layers: expected e.g. 5 or 4,5,6 or 4-8, got '%s'", layers_arg);
    unsigned long long seed = 0;
    if (seed_arg) {
        char *end;
        seed = strtoull(seed_arg, &end, 10);
        if (*end || !*seed_arg) return cli_usage_error("edit", "--seed: expected a number, got '%s'", seed_arg);
    }
    if (!out && !patch) return cli_usage_error("edit", "give --out OUT and/or --patch FILE");

    request_list rl = {0};
    xle_edit_request single = {prompt, subject, target};
    if (reqs_path) {
        if (load_requests(reqs_path, &rl)) {
            json_decref(rl.json);
            free(rl.reqs);
            return 1;
        }
    } else {
        rl.reqs = &single;
        rl.n = 1;
    }

    xle_error err = {0};
    int rc = 1;
    xle_model *model = NULL;
    xle_context_templates *ct = NULL;
    xle_edit_request_tok *toks = NULL;
    xle_layer_stats *stats[XLE_EDIT_MAX_LAYERS] = {0};
    xle_edit_result result = {0};
    xle_alphaedit_state *alpha = NULL;
    int alpha_saved = 0; /* DIR already holds a state: taken from there */
    char alpha_ct[4200] = "";
    char **before = NULL;
    char patch_tmp[4096] = "";
    if (xle_model_load(argv[optind], &model, &err) != XLE_OK) goto report;
    xle_tokenizer *tok = xle_model_tokenizer(model);
    if (!tok) {
        xle_fail(&err, XLE_ERR_ARG, "%s: no tokenizer found beside the model (text requests need one)",
                 argv[optind]);
        goto report;
    }
    /* both outputs are checked before the work, so that a bad path fails at once */
    if (out && xle_model_save_check(model, out, &err) != XLE_OK) goto report;
    if (patch && xle_out_check(patch, XLE_OUT_FILE, &err) != XLE_OK) goto report;
    xle_edit_hparams hp;
    int from_folder = 0;
    if (xle_edit_hparams_for_model_path(&hp, m, model, model_hparams ? argv[optind] : NULL, &from_folder,
                                        &err) != XLE_OK)
        goto report;
    if (from_folder && !quiet)
        fprintf(stderr, "edit: using %s/edit-hparams/%s.json (--no-model-hparams to skip)\n", argv[optind],
                xle_edit_method_name(m));
    if (hparams) {
        char note[512];
        if (xle_edit_hparams_load_file(&hp, hparams, model, note, sizeof note, &err) != XLE_OK) goto report;
        if (note[0] && !quiet) fprintf(stderr, "edit: note: %s: keys xledit does not use: %s\n", hparams, note);
    }
    if (n_layers) {
        memcpy(hp.layers, layers, sizeof(int) * (size_t)n_layers);
        hp.n_layers = n_layers;
    }
    if (seed_arg) hp.seed = seed;
    for (int i = 0; i < hp.n_layers; i++)
        if (hp.layers[i] >= xle_model_config(model)->n_layers) {
            xle_fail(&err, XLE_ERR_ARG, "--layers: layer %d: the model has layers 0..%d", hp.layers[i],
                     xle_model_config(model)->n_layers - 1);
            goto report;
        }
    if (alpha_dir) {
        char path[4200];
        struct stat st_dir;
        snprintf(path, sizeof path, "%s/alphaedit-state.safetensors", alpha_dir);
        snprintf(alpha_ct, sizeof alpha_ct, "%s/context-templates.txt", alpha_dir);
        alpha_saved = stat(path, &st_dir) == 0;
        if (alpha_saved && xle_alphaedit_state_load(model, &hp, alpha_dir, &alpha, &err) != XLE_OK) goto report;
        /* the sequence keeps the templates of its first call (the reference samples them once) */
        if (alpha_saved && !ctx_arg && stat(alpha_ct, &st_dir) == 0) ctx_arg = alpha_ct;
    }
    if (m == XLE_EDIT_FT_L || m == XLE_EDIT_FT_M || (ctx_arg && !strcmp(ctx_arg, "none"))) {
        if (xle_context_templates_none(&ct, &err) != XLE_OK) goto report;
    } else if (ctx_arg) {
        if (xle_context_templates_load(ctx_arg, &ct, &err) != XLE_OK) goto report;
    } else if (xle_context_templates_sample(model, tok, &hp, &ct, &err) != XLE_OK) {
        goto report;
    }
    toks = calloc((size_t)rl.n, sizeof *toks);
    before = calloc((size_t)rl.n, sizeof *before);
    if (!toks || !before) {
        xle_fail(&err, XLE_ERR_NOMEM, "out of memory");
        goto report;
    }
    for (int i = 0; i < rl.n; i++) {
        if (xle_edit_request_tokenize(tok, &rl.reqs[i], ct, &toks[i], &err) != XLE_OK) {
            if (reqs_path) {
                xle_error e2 = err;
                xle_fail(&err, e2.status, "%s: request %d: %s", reqs_path, i + 1, e2.msg);
            }
            goto report;
        }
    }
    if (xle_edit_hparams_need_stats(&hp) && !alpha) {
        char dir[4096];
        cli_stats_dir(model, stats_arg, dir, sizeof dir);
        for (int i = 0; i < hp.n_layers; i++)
            if (xle_stats_load(model, dir, hp.layers[i], &stats[i], &err) != XLE_OK) {
                xle_error e2 = err;
                xle_fail(&err, e2.status, "%s (run: xledit stats %s --layers ... --corpus FILE%s%s)",
                         e2.msg, argv[optind], stats_arg ? " --out " : "", stats_arg ? stats_arg : "");
                goto report;
            }
    }
    if (!quiet)
        for (int i = 0; i < rl.n; i++) {
            char *p = filled_prompt(&rl.reqs[i]);
            before[i] = p ? continuation(model, tok, p, 16, &err) : NULL;
            free(p);
            if (!before[i]) goto report;
        }
    if (m == XLE_EDIT_ALPHAEDIT) {
        if (!alpha && xle_alphaedit_state_new(&hp, stats, &alpha, &err) != XLE_OK) goto report;
        for (int i = 0; i < hp.n_layers; i++) {
            int null_dim;
            double lo, hi;
            xle_alphaedit_state_layer(alpha, i, &null_dim, &lo, &hi);
            if (null_dim == 0)
                fprintf(stderr, "warning: edit: alphaedit: layer %d: no eigenvalue of the key covariance is below "
                        "nullspace_threshold %g (they span %.3g..%.3g): P = 0 and the edit changes nothing; "
                        "raise nullspace_threshold (--hparams)\n", hp.layers[i], hp.nullspace_threshold, lo, hi);
            else if (!quiet)
                fprintf(stderr, "edit: alphaedit: layer %d: null space of %d of %d key directions (eigenvalues %.3g..%.3g, threshold %g)\n",
                        hp.layers[i], null_dim, xle_model_config(model)->ffn_dim, lo, hi, hp.nullspace_threshold);
        }
    }
    cli_progress pe; /* the optimisation's steps: ROME 25 per request and layer */
    cli_progress_begin(&pe, "edit", "steps");
    if (quiet) cli_progress_quiet(&pe);
    hp.progress = cli_progress_callback;
    hp.progress_user = &pe;
    /* AlphaEdit's z optimisation reports its own steps (MEMIT's count) */
    xle_status run = m == XLE_EDIT_ALPHAEDIT ? xle_alphaedit_run(model, &hp, toks, rl.n, alpha, &result, &err)
                                             : xle_edit_run(model, &hp, toks, rl.n, stats, &result, &err);
    cli_progress_end(&pe);
    hp.progress = NULL;
    if (run != XLE_OK) goto report;
    json_t *info = info_json(argv[optind], model, &hp, &rl, ct);
    char *info_text = json_dumps(info, JSON_COMPACT);
    json_decref(info);
    if (!info_text) {
        xle_fail(&err, XLE_ERR_NOMEM, "out of memory");
        goto report;
    }
    /* the patch is made from the unedited model (it records the original bytes) into a
     * temporary name, and renamed into place only once the edited model is saved: one
     * failing output leaves neither */
    if (patch && (!xle_out_tmp_name(patch, patch_tmp, sizeof patch_tmp) ||
                  xle_patch_write(model, &result, info_text, patch_tmp, &err) != XLE_OK)) {
        xle_out_error_rename(&err, patch_tmp, patch);
        free(info_text);
        goto report;
    }
    free(info_text);
    if (xle_edit_apply(model, &result, +1, &err) != XLE_OK) goto report;
    if (!quiet)
        for (int i = 0; i < rl.n; i++) {
            char *p = filled_prompt(&rl.reqs[i]);
            char *after = p ? continuation(model, tok, p, 16, &err) : NULL;
            if (!after) {
                free(p);
                goto report;
            }
            printf("request %d: %s -> %s\n  before: %s\n  after:  %s\n", i + 1, p,
                   rl.reqs[i].target, before[i], after);
            free(p);
            free(after);
        }
    if (!quiet)
        printf("%s: %d layer update(s), final loss %.4g after %d steps\n", xle_edit_method_name(m),
               result.n_deltas, result.final_loss, result.steps);
    if (quant_save >= 0) xle_model_set_quant_save(model, (xle_quant_save)quant_save);
    if (out && xle_model_save(model, out, &err) != XLE_OK) goto report;
    /* the state after the model: it names the model just written as the one the next call must
     * edit; a state that cannot be written leaves no model either */
    if (alpha_dir && !alpha_saved) {
        if (mkdir(alpha_dir, 0777) != 0 && errno != EEXIST) {
            xle_fail(&err, XLE_ERR_IO, "%s: cannot create the directory: %s", alpha_dir, strerror(errno));
            if (out) xle_out_remove_tree(out);
            goto report;
        }
        if (xle_context_templates_save(ct, alpha_ct, &err) != XLE_OK) {
            if (out) xle_out_remove_tree(out);
            goto report;
        }
    }
    if (alpha_dir && xle_alphaedit_state_save(model, alpha, alpha_dir, &err) != XLE_OK) {
        if (out) xle_out_remove_tree(out);
        goto report;
    }
    if (patch && rename(patch_tmp, patch) != 0) {
        xle_fail(&err, XLE_ERR_IO, "%s: cannot rename the finished patch into place: %s", patch,
                 strerror(errno));
        if (out) xle_out_remove_tree(out);
        goto report;
    }
    patch_tmp[0] = 0;
    if (!quiet && alpha_dir)
        fprintf(stderr, "wrote %s (%d edit(s) so far)\n", alpha_dir, xle_alphaedit_state_edits(alpha));
    if (!quiet) {
        if (out) fprintf(stderr, "wrote %s\n", out);
        if (patch) fprintf(stderr, "wrote %s\n", patch);
    }
    rc = 0;
report:
    if (rc) rc = cli_report("edit", &err);
    if (patch_tmp[0]) unlink(patch_tmp);
    for (int i = 0; toks && i < rl.n; i++) xle_edit_request_tok_free(&toks[i]);
    for (int i = 0; before && i < rl.n; i++) free(before[i]);
    free(before);
    free(toks);
    for (int i = 0; i < XLE_EDIT_MAX_LAYERS; i++) xle_layer_stats_free(stats[i]);
    xle_edit_result_free(&result);
    xle_alphaedit_state_free(alpha);
    xle_context_templates_free(ct);
    xle_model_free(model);
    if (reqs_path) {
        json_decref(rl.json);
        free(rl.reqs);
    }
    return rc;
}

/* ---- xledit patch ------------------------------------------------------------------------ */

static const char patch_usage[] =
    "usage: xledit patch apply  MODEL PATCH --out OUT [-t N]\n"
    "       xledit patch revert MODEL PATCH --out OUT [-t N]\n"
    "       xledit patch info   PATCH\n\n"
    "apply adds a patch's deltas to MODEL (refusing a model whose edited tensors differ from the\n"
    "ones the patch was made from); revert puts the original bytes back into an edited model\n"
    "(refusing one that does not hold exactly the patched values). OUT is written atomically\n"
    "in MODEL's format; MODEL itself is never modified.\n";

/* Options of the commands whose only option is --out (patch, convert), and -t/--threads where
 * the command computes (threads): returns -1 to go on, else the exit code (after --help or a
 * usage error). */
static int parse_out_option(const char *cmd, int argc, char **argv, const char *usage,
                            int threads, const char **out) {
    static const struct option opts[] = {
        {"out", required_argument, 0, 'o'}, {"threads", required_argument, 0, 't'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c, rc;
    *out = NULL;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, threads ? "t:" : "", opts, NULL)) != -1) {
        if (c == 'o') *out = optarg;
        else if (c == 't' && threads) {
            if ((rc = cli_threads_option(cmd, optarg))) return rc;
        } else if (c == 'h') {
            fputs(usage, stdout);
            if (threads) cli_threads_help(stdout);
            return 0;
        } else return cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
    }
    return -1;
}

int cmd_patch(int argc, char **argv) {
    const char *out;
    int rc = parse_out_option("patch", argc, argv, patch_usage, 1, &out);
    if (rc >= 0) return rc;
    int n_pos = argc - optind;
    if (n_pos < 1) return cli_usage_error("patch", "expected apply, revert or info");
    const char *action = argv[optind];
    xle_error err = {0};
    if (!strcmp(action, "info")) {
        if (n_pos != 2) return cli_usage_error("patch", "usage: xledit patch info PATCH");
        xle_patch *p;
        if (xle_patch_load(argv[optind + 1], &p, &err) != XLE_OK) return cli_report("patch", &err);
        const xle_edit_result *r = xle_patch_deltas(p);
        printf("%s\n", xle_patch_info(p));
        for (int i = 0; i < r->n_deltas; i++)
            printf("delta %d: layer %d, %s %dx%d\n", i, r->deltas[i].layer,
                   r->deltas[i].rank ? "low rank" : "dense", r->deltas[i].rows, r->deltas[i].cols);
        xle_patch_free(p);
        return 0;
    }
    int apply = !strcmp(action, "apply");
    if (!apply && strcmp(action, "revert"))
        return cli_usage_error("patch", "unknown action '%s' (apply, revert, info)", action);
    if (n_pos != 3) return cli_usage_error("patch", "expected MODEL PATCH");
    if (!out) return cli_usage_error("patch", "--out OUT is required (MODEL is never modified)");
    xle_model *model = NULL;
    xle_patch *p = NULL;
    xle_status st = xle_model_load(argv[optind + 1], &model, &err);
    if (st == XLE_OK) st = xle_patch_load(argv[optind + 2], &p, &err);
    if (st == XLE_OK) st = apply ? xle_patch_apply(model, p, &err) : xle_patch_revert(model, p, &err);
    if (st == XLE_OK) st = xle_model_save(model, out, &err);
    xle_patch_free(p);
    xle_model_free(model);
    if (st != XLE_OK) return cli_report("patch", &err);
    fprintf(stderr, "wrote %s\n", out);
    return 0;
}

/* ---- xledit convert ---------------------------------------------------------------------- */

static const char convert_usage[] =
    "usage: xledit convert MODEL --out OUT\n\nWrites MODEL again, atomically: a HF folder or GGUF "
    "file in its own format, a llama2.c checkpoint as a HF folder.\nTensors are copied byte for "
    "byte.\n";

int cmd_convert(int argc, char **argv) {
    const char *out;
    int rc = parse_out_option("convert", argc, argv, convert_usage, 0, &out);
    if (rc >= 0) return rc;
    if (optind != argc - 1) return cli_usage_error("convert", "expected one MODEL argument");
    if (!out) return cli_usage_error("convert", "--out OUT is required");
    xle_error err = {0};
    xle_model *model = NULL;
    xle_status st = xle_model_load(argv[optind], &model, &err);
    if (st == XLE_OK) st = xle_model_save(model, out, &err);
    xle_model_free(model);
    if (st != XLE_OK) return cli_report("convert", &err);
    fprintf(stderr, "wrote %s\n", out);
    return 0;
}
