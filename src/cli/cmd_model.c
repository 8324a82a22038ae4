/*
 * cmd_model.c: the subcommands that run a model directly: info, logits, generate, score.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const char *arch_name(xle_arch a) {
    switch (a) {
    case XLE_ARCH_LLAMA: return "llama";
    case XLE_ARCH_MISTRAL: return "mistral";
    case XLE_ARCH_QWEN2: return "qwen2";
    case XLE_ARCH_GPT2: return "gpt2";
    case XLE_ARCH_GPTJ: return "gptj";
    case XLE_ARCH_GEMMA: return "gemma";
    case XLE_ARCH_GEMMA2: return "gemma2";
    case XLE_ARCH_BLOOM: return "bloom";
    }
    return "?";
}

static int64_t count_params(xle_model *model) {
    const xle_config *c = xle_model_config(model);
    const xle_weights *w = xle_model_weights(model);
    int64_t n = xle_tensor_numel(&w->tok_embd) + xle_tensor_numel(&w->out_norm);
    if (!c->tied_embeddings) n += xle_tensor_numel(&w->lm_head);
    const xle_tensor *gs[] = {&w->pos_embd, &w->out_norm_b, &w->lm_head_b,
                              &w->embd_norm, &w->embd_norm_b}; /* other families' */
    for (size_t i = 0; i < sizeof gs / sizeof gs[0]; i++)
        if (gs[i]->data) n += xle_tensor_numel(gs[i]);
    for (int l = 0; l < c->n_layers; l++) {
        const xle_layer_weights *L = &w->layers[l];
        const xle_tensor *ts[] = {&L->attn_norm, &L->wq, &L->wk, &L->wv, &L->wo, &L->bq, &L->bk,
                                  &L->bv, &L->bo, &L->ffn_norm, &L->w_gate, &L->w_up, &L->w_down,
                                  &L->attn_norm_b, &L->ffn_norm_b, &L->b_up, &L->b_down,
                                  &L->post_attn_norm, &L->post_ffn_norm};
        for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
            if (ts[i]->data) n += xle_tensor_numel(ts[i]);
    }
    return n;
}

static int load_model(const char *cmd, const char *path, xle_model **model) {
    xle_error err = {0};
    if (xle_model_load(path, model, &err) != XLE_OK) return cli_report(cmd, &err);
    return 0;
}

static const char *rope_convention(const xle_config *c) {
    return c->rope_interleaved ? "interleaved pairs (2i, 2i+1): GGUF llama, llama2.c"
                               : "rotate-half pairs (i, i+hd/2): Hugging Face, GGUF qwen2";
}

static const char *rope_scaling_name(const xle_config *c) {
    return c->rope_scaling == XLE_ROPE_LLAMA3 ? "llama3" : c->rope_scaling == XLE_ROPE_LINEAR ? "linear" : "none";
}

/* A float as the shortest decimal that reads back to it (1e-06, not 9.99999997e-07). */
static json_t *json_float(float f) {
    char buf[32];
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, (double)f);
        if (strtof(buf, NULL) == f) break;
    }
    return json_real(strtod(buf, NULL));
}

static int print_info_json(xle_model *model, int64_t params, const char *dtypes, const char *tok_desc) {
    const xle_config *cf = xle_model_config(model);
    xle_tokenizer *tok = xle_model_tokenizer(model);
    const xle_weights *w = xle_model_weights(model);
    json_t *o = json_object();
    json_object_set_new(o, "path", json_string(xle_model_path(model)));
    json_object_set_new(o, "format", json_string(xle_model_file_layout(model)));
    json_object_set_new(o, "architecture", json_string(arch_name(cf->arch)));
    json_object_set_new(o, "parameters", json_integer(params));
    json_object_set_new(o, "weight_dtype", json_string(xle_dtype_name(xle_model_weight_dtype(model))));
    json_object_set_new(o, "stored_dtypes", json_string(dtypes));
    json_object_set_new(o, "dim", json_integer(cf->dim));
    json_object_set_new(o, "ffn_dim", json_integer(cf->ffn_dim));
    json_object_set_new(o, "n_layers", json_integer(cf->n_layers));
    json_object_set_new(o, "n_heads", json_integer(cf->n_heads));
    json_object_set_new(o, "n_kv_heads", json_integer(cf->n_kv_heads));
    json_object_set_new(o, "head_dim", json_integer(cf->head_dim));
    json_object_set_new(o, "vocab_size", json_integer(cf->vocab_size));
    json_object_set_new(o, "max_seq_len", json_integer(cf->max_seq_len));
    json_object_set_new(o, "norm_eps", json_float(cf->norm_eps));
    json_object_set_new(o, "rope_theta", json_float(cf->rope_theta));
    json_object_set_new(o, "rope_interleaved", json_boolean(cf->rope_interleaved));
    json_object_set_new(o, "rope_scaling", json_string(rope_scaling_name(cf)));
    json_object_set_new(o, "rope_freqs_tensor", json_boolean(w->rope_freqs.data != NULL));
    json_object_set_new(o, "sliding_window", json_integer(cf->sliding_window));
    json_object_set_new(o, "tied_embeddings", json_boolean(cf->tied_embeddings));
    json_object_set_new(o, "bos_id", json_integer(cf->bos_id));
    json_object_set_new(o, "eos_id", json_integer(cf->eos_id));
    json_object_set_new(o, "tokenizer", json_string(tok_desc));
    json_object_set_new(o, "tokenizer_vocab_size", json_integer(tok ? xle_tokenizer_vocab_size(tok) : 0));
    char *text = json_dumps(o, JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    json_decref(o);
    if (!text) return cli_report("info", &(xle_error){XLE_ERR_NOMEM, "out of memory"});
    printf("%s\n", text);
    free(text);
    return 0;
}

int cmd_info(int argc, char **argv) {
    static const struct option opts[] = {{"json", no_argument, 0, 'j'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int json = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'j') json = 1;
        else if (c == 'h') {
            printf("usage: xledit info MODEL [--json]\n\n"
                   "Prints the format, architecture, sizes, stored tensor types, RoPE convention and\n"
                   "scaling, sliding window, embedding tying and tokenizer of MODEL (a Hugging Face\n"
                   "folder, a .gguf file or a llama2.c checkpoint). --json prints one JSON object.\n");
            return 0;
        } else return cli_usage_error("info", "unknown option '%s'", argv[optind - 1]);
    }
    if (optind != argc - 1) return cli_usage_error("info", "expected one MODEL argument");
    xle_model *model;
    int rc = load_model("info", argv[optind], &model);
    if (rc) return rc;
    const xle_config *cf = xle_model_config(model);
    int64_t params = count_params(model);
    char dtypes[256], tok_desc[256];
    xle_model_stored_dtypes(model, dtypes, sizeof dtypes);
    xle_model_tokenizer_desc(model, tok_desc, sizeof tok_desc);
    if (json) {
        rc = print_info_json(model, params, dtypes, tok_desc);
    } else {
        printf("model          %s\n", xle_model_path(model));
        printf("format         %s\n", xle_model_file_layout(model));
        printf("architecture   %s\n", arch_name(cf->arch));
        printf("parameters     %lld (%.2f M)\n", (long long)params, params / 1e6);
        printf("weights        %s in memory; stored as %s\n",
               xle_dtype_name(xle_model_weight_dtype(model)), dtypes);
        printf("dim            %d\n", cf->dim);
        printf("ffn_dim        %d\n", cf->ffn_dim);
        printf("layers         %d\n", cf->n_layers);
        printf("heads          %d (kv heads %d, head dim %d)\n", cf->n_heads, cf->n_kv_heads, cf->head_dim);
        printf("vocab          %d\n", cf->vocab_size);
        printf("context        %d\n", cf->max_seq_len);
        printf("norm eps       %g\n", cf->norm_eps);
        printf("rope           %s\n", rope_convention(cf));
        printf("rope theta     %g, scaling %s%s\n", cf->rope_theta, rope_scaling_name(cf),
               xle_model_weights(model)->rope_freqs.data ? " (rope_freqs.weight)" : "");
        printf("sliding window %s", cf->sliding_window ? "" : "none\n");
        if (cf->sliding_window) printf("%d\n", cf->sliding_window);
        printf("embeddings     %s\n", cf->tied_embeddings ? "tied" : "separate lm_head");
        printf("bos / eos      %d / %d\n", cf->bos_id, cf->eos_id);
        printf("tokenizer      %s\n", tok_desc);
    }
    xle_model_free(model);
    return rc;
}

/* Options shared by logits/generate/score. */
typedef struct run_args {
    const char *model, *ids, *text, *target_ids, *target_text;
    const char *prompt_file;   /* -f FILE ("-": stdin) */
    char *file_text;           /* what -f read (owned; a->text points to it) */
    int all_positions, json, n_new, print_ids, no_bos, top_k, repeat_last_n, chat;
    xle_precision precision;
    float temp, top_p, repeat_penalty;
    unsigned long long seed;
} run_args;

/* Reads the whole prompt file (or stdin for "-") as llama.cpp's -f does: one trailing newline
 * dropped. Returns 0, or an exit code after printing one line. */
static int read_prompt_file(const char *cmd, const char *path, char **out) {
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    const char *name = f == stdin ? "stdin" : path;
    if (!f) {
        fprintf(stderr, "xledit %s: %s: cannot open: %s\n", cmd, path, strerror(errno));
        return 1;
    }
    size_t cap = 4096, n = 0, k;
    char *buf = malloc(cap);
    while (buf && (k = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += k;
        if (n + 1 < cap) continue;
        char *grown = cap < ((size_t)1 << 30) ? realloc(buf, cap * 2) : NULL;
        if (!grown) free(buf);
        buf = grown;
        cap *= 2;
    }
    int failed = ferror(f);
    if (f != stdin) fclose(f);
    if (!buf) {
        fprintf(stderr, "xledit %s: %s: too large or out of memory\n", cmd, name);
        return 1;
    }
    if (failed || memchr(buf, 0, n)) {
        fprintf(stderr, "xledit %s: %s: %s\n", cmd, name, failed ? "read error" : "contains a NUL byte");
        free(buf);
        return 1;
    }
    if (n > 0 && buf[n - 1] == '\n') n--;
    buf[n] = 0;
    *out = buf;
    return 0;
}

static int parse_run_args(const char *cmd, int argc, char **argv, run_args *a, const char *usage) {
    static const struct option opts[] = {
        {"ids", required_argument, 0, 'i'},        {"text", required_argument, 0, 'X'},
        {"target-ids", required_argument, 0, 'I'}, {"target", required_argument, 0, 'T'},
        {"all-positions", no_argument, 0, 'a'},    {"json", no_argument, 0, 'j'},
        {"temp", required_argument, 0, 'e'},       {"top-k", required_argument, 0, 'k'},
        {"prompt", required_argument, 0, 'p'},     {"file", required_argument, 0, 'f'},
        {"top-p", required_argument, 0, 'o'},      {"repeat-penalty", required_argument, 0, 'r'},
        {"repeat-last-n", required_argument, 0, 'L'}, {"chat", no_argument, 0, 'C'},
        {"seed", required_argument, 0, 's'},       {"print-ids", no_argument, 0, 'P'},
        {"no-bos", no_argument, 0, 'B'},           {"threads", required_argument, 0, 't'},
        {"precision", required_argument, 0, 'R'},  {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    memset(a, 0, sizeof *a);
    a->n_new = 32;
    a->repeat_penalty = 1.0f;
    a->repeat_last_n = 64;
    a->top_p = 1.0f;
    /* generate does what llama.cpp does; logits and score report numbers, exact by default */
    a->precision = strcmp(cmd, "generate") == 0 ? XLE_PRECISION_BF16 : XLE_PRECISION_EXACT;
    int c;
    optind = 1;
    opterr = 0;
    int n_prompts = 0;
    while ((c = getopt_long(argc, argv, "n:t:p:f:", opts, NULL)) != -1) {
        char *end;
        int rc;
        switch (c) {
        case 'i': a->ids = optarg; break;
        case 'X': case 'p': a->text = optarg; n_prompts++; break;
        case 'f': a->prompt_file = optarg; n_prompts++; break;
        case 'C': a->chat = 1; break;
        case 'o':
            a->top_p = strtof(optarg, &end);
            if (*end || !(a->top_p > 0 && a->top_p <= 1))
                return cli_usage_error(cmd, "--top-p: expected a number in (0, 1], got '%s'", optarg);
            break;
        case 'r':
            a->repeat_penalty = strtof(optarg, &end);
            if (*end || !(a->repeat_penalty > 0 && a->repeat_penalty < 1e6f))
                return cli_usage_error(cmd, "--repeat-penalty: expected a number > 0, got '%s'", optarg);
            break;
        case 'L':
            a->repeat_last_n = (int)strtol(optarg, &end, 10);
            if (*end || a->repeat_last_n < 1)
                return cli_usage_error(cmd, "--repeat-last-n: expected a count >= 1, got '%s'", optarg);
            break;
        case 't':
            if ((rc = cli_threads_option(cmd, optarg))) return rc;
            break;
        case 'R':
            if ((rc = cli_precision_option(cmd, optarg, &a->precision))) return rc;
            break;
        case 'I': a->target_ids = optarg; break;
        case 'T': a->target_text = optarg; break;
        case 'a': a->all_positions = 1; break;
        case 'j': a->json = 1; break;
        case 'P': a->print_ids = 1; break;
        case 'B': a->no_bos = 1; break;
        case 'n':
            a->n_new = (int)strtol(optarg, &end, 10);
            if (*end || a->n_new < 0) return cli_usage_error(cmd, "-n: expected a count, got '%s'", optarg);
            break;
        case 'e':
            a->temp = strtof(optarg, &end);
            if (*end || !(a->temp >= 0)) return cli_usage_error(cmd, "--temp: expected a number >= 0, got '%s'", optarg);
            break;
        case 'k':
            a->top_k = (int)strtol(optarg, &end, 10);
            if (*end || a->top_k < 0) return cli_usage_error(cmd, "--top-k: expected a count, got '%s'", optarg);
            break;
        case 's':
            a->seed = strtoull(optarg, &end, 10);
            if (*end) return cli_usage_error(cmd, "--seed: expected an integer, got '%s'", optarg);
            break;
        case 'h':
            printf("%s", usage);
            cli_threads_help(stdout);
            cli_precision_help(stdout, a->precision);
            return -1;
        default: return cli_usage_error(cmd, "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc - 1) return cli_usage_error(cmd, "expected one MODEL argument");
    a->model = argv[optind];
    if (n_prompts > 1) return cli_usage_error(cmd, "give the prompt once (--text, -p/--prompt or -f FILE)");
    if (a->prompt_file) {
        int rc = read_prompt_file(cmd, a->prompt_file, &a->file_text);
        if (rc) return rc;
        a->text = a->file_text;
    }
    return 0;
}

/* --chat: the prompt as the user's message in the model's chat template (tokenizer_config.json
 * of its folder), with the assistant's header, and the target (when given) as the assistant's
 * reply: xle_chat_tokenize, as eval --chat. Returns 0 or an exit code after one line. */
static int chat_ids(const char *cmd, const run_args *a, xle_model *model, int32_t **ids, int *n,
                    int32_t **target, int *nt) {
    xle_tokenizer *tok = xle_model_tokenizer(model);
    if (!a->text) return cli_usage_error(cmd, "--chat needs the prompt as text (--text, -p or -f)");
    if (!tok) return cli_report(cmd, &(xle_error){XLE_ERR_ARG, "--chat: the model has no tokenizer"});
    xle_chat_template *t = NULL;
    int rc = cli_chat_template_load(cmd, a->model, &t);
    xle_error err = {0};
    if (!rc && xle_chat_tokenize(tok, t, a->text, target ? a->target_text : NULL, ids, n, target, nt, &err) != XLE_OK)
        rc = cli_report(cmd, &err);
    xle_chat_template_free(t);
    return rc;
}

static void print_floats(const float *v, int n) {
    putchar('[');
    for (int i = 0; i < n; i++) printf(i ? ", %.9g" : "%.9g", v[i]);
    putchar(']');
}

int cmd_logits(int argc, char **argv) {
    static const char usage[] =
        "usage: xledit logits MODEL (--ids 1,2,3 | --text \"...\" | -p \"...\" | -f FILE) [--all-positions]\n"
        "                     [--json] [--no-bos]\n"
        "                     [-t N] [--precision exact|bf16]\n\n"
        "Prints the logits after the last token (or at every position) as JSON:\n"
        "{\"ids\": [...], \"positions\": [...], \"vocab_size\": V, \"logits\": [[V floats], ...]}\n";
    run_args a;
    int rc = parse_run_args("logits", argc, argv, &a, usage);
    if (rc) return rc < 0 ? 0 : rc;
    xle_model *model;
    if ((rc = load_model("logits", a.model, &model))) {
        free(a.file_text);
        return rc;
    }
    xle_model_set_precision(model, a.precision);
    int32_t *ids = NULL;
    int n = 0;
    if ((rc = cli_prompt_ids("logits", model, a.ids, a.text, a.no_bos ? 0 : -1, &ids, &n)) ||
        (rc = cli_check_ids("logits", model, ids, n, "--ids"))) {
        free(ids);
        free(a.file_text);
        xle_model_free(model);
        return rc;
    }
    const int V = xle_model_config(model)->vocab_size;
    int n_rows = a.all_positions ? n : 1;
    int *rows = malloc((size_t)n_rows * sizeof(int));
    float *logits = malloc((size_t)n_rows * (size_t)V * sizeof(float));
    xle_error err = {0};
    if (!rows || !logits) {
        rc = cli_report("logits", &(xle_error){XLE_ERR_NOMEM, "out of memory"});
        goto done;
    }
    for (int i = 0; i < n_rows; i++) rows[i] = a.all_positions ? i : n - 1;
    int start[2] = {0, n};
    xle_batch batch = {1, ids, start};
    xle_forward_opts fo = {.logit_rows = rows, .n_logit_rows = n_rows};
    if (xle_forward(model, &batch, &fo, logits, &err) != XLE_OK) {
        rc = cli_report("logits", &err);
        goto done;
    }
    printf("{\"ids\": [");
    for (int i = 0; i < n; i++) printf(i ? ", %d" : "%d", ids[i]);
    printf("], \"positions\": [");
    for (int i = 0; i < n_rows; i++) printf(i ? ", %d" : "%d", rows[i]);
    printf("], \"vocab_size\": %d, \"logits\": [", V);
    for (int i = 0; i < n_rows; i++) {
        if (i) printf(",\n");
        print_floats(logits + (size_t)i * V, V);
    }
    printf("]}\n");
done:
    free(rows);
    free(logits);
    free(ids);
    free(a.file_text);
    xle_model_free(model);
    return rc;
}

int cmd_generate(int argc, char **argv) {
    static const char usage[] =
        "usage: xledit generate MODEL (--ids 1,2,3 | --text \"...\" | -p \"...\" | -f FILE) [-n N]\n"
        "                       [--temp T] [--top-k K] [--top-p P] [--repeat-penalty R]\n"
        "                       [--repeat-last-n N] [--seed S] [--print-ids] [--no-bos] [--chat]\n"
        "                       [-t N]\n"
        "                       [--precision exact|bf16]\n\n"
        "Continues the prompt by N tokens (default 32) with the KV cache. --temp 0 (default) is\n"
        "greedy; otherwise samples from the top K (0 = all) with the given seed. Stops at EOS.\n"
        "As in llama.cpp: -p/--prompt is --text; -f FILE reads the prompt from a file (- is stdin,\n"
        "one trailing newline dropped); --repeat-penalty R (default 1 = off) divides positive and\n"
        "multiplies other logits of the last N tokens (--repeat-last-n, default 64, prompt\n"
        "included; greedy too); --top-p P (default 1 = off) keeps the most probable tokens up to P\n"
        "(probabilities before the temperature), after top-k.\n"
        "--chat wraps the prompt as the user's message in the model's chat template\n"
        "(tokenizer_config.json: ChatML, Llama-2, Mistral [INST], Llama-3, Gemma) with the\n"
        "assistant's header after it.\n"
        "Prints the text (with a tokenizer) or the ids (--print-ids, or when there is no tokenizer).\n";
    run_args a;
    int rc = parse_run_args("generate", argc, argv, &a, usage);
    if (rc) return rc < 0 ? 0 : rc;
    xle_model *model;
    if ((rc = load_model("generate", a.model, &model))) {
        free(a.file_text);
        return rc;
    }
    xle_model_set_precision(model, a.precision);
    int32_t *ids = NULL, *out = NULL;
    int n = 0, n_out = 0;
    if ((rc = a.chat ? chat_ids("generate", &a, model, &ids, &n, NULL, NULL)
                     : cli_prompt_ids("generate", model, a.ids, a.text, a.no_bos ? 0 : -1, &ids, &n)) ||
        (rc = cli_check_ids("generate", model, ids, n, "--ids"))) {
        free(ids);
        free(a.file_text);
        xle_model_free(model);
        return rc;
    }
    out = malloc((size_t)(a.n_new + 1) * sizeof(int32_t));
    xle_error err = {0};
    xle_sampler s = {.temperature = a.temp, .top_k = a.top_k, .seed = a.seed, .stop_at_eos = 1,
                     .top_p = a.top_p, .repeat_penalty = a.repeat_penalty, .repeat_last_n = a.repeat_last_n};
    if (!out) {
        rc = cli_report("generate", &(xle_error){XLE_ERR_NOMEM, "out of memory"});
    } else if (xle_generate(model, ids, n, a.n_new, &s, out, &n_out, &err) != XLE_OK) {
        rc = cli_report("generate", &err);
    } else {
        xle_tokenizer *tok = xle_model_tokenizer(model);
        if (a.print_ids || !tok) {
            for (int i = 0; i < n_out; i++) printf(i ? " %d" : "%d", out[i]);
            printf("\n");
        } else {
            /* streaming decode: the prompt only sets the context (so a continuation keeps its
             * leading space); the new tokens print as whole UTF-8 characters */
            xle_detok_stream *ds = xle_detok_stream_new(tok);
            char buf[256];
            for (int i = 0; ds && i < n; i++)
                for (int32_t id = ids[i]; xle_detok_stream_push(ds, id, buf, sizeof buf) > 0; id = -1) {}
            for (int i = 0; ds && i < n_out; i++) {
                size_t k;
                for (int32_t id = out[i]; (k = xle_detok_stream_push(ds, id, buf, sizeof buf)) > 0; id = -1)
                    fwrite(buf, 1, k, stdout);
                fflush(stdout);
            }
            for (size_t k; ds && (k = xle_detok_stream_flush(ds, buf, sizeof buf)) > 0;) fwrite(buf, 1, k, stdout);
            printf("\n");
            xle_detok_stream_free(ds);
        }
    }
    free(out);
    free(ids);
    free(a.file_text);
    xle_model_free(model);
    return rc;
}

int cmd_score(int argc, char **argv) {
    static const char usage[] =
        "usage: xledit score MODEL (--ids 1,2 | --text \"...\" | -p \"...\" | -f FILE)\n"
        "                    (--target-ids 3,4 | --target \"...\") [--json] [--no-bos] [--chat] [-t N]\n"
        "                    [--precision exact|bf16]\n\n"
        "-p/--prompt is --text; -f FILE reads the prompt from a file (- is stdin, one trailing\n"
        "newline dropped), as llama.cpp does. --chat wraps the prompt as the user's message in the\n"
        "model's chat template (tokenizer_config.json) and scores the target as the assistant's answer.\n"
        "Prints the log-probability (natural log) of the target continuation given the prompt,\n"
        "summed over its tokens, and per token with --json. With --text and --target the target is\n"
        "tokenized as it follows the prompt (\"Paris\" after \"The capital of France is\" reads \" Paris\");\n"
        "otherwise a text target is tokenized on its own, without BOS.\n";
    run_args a;
    int rc = parse_run_args("score", argc, argv, &a, usage);
    if (rc) return rc < 0 ? 0 : rc;
    xle_model *model;
    if ((rc = load_model("score", a.model, &model))) {
        free(a.file_text);
        return rc;
    }
    xle_model_set_precision(model, a.precision);
    int32_t *ids = NULL, *target = NULL;
    int n = 0, nt = 0;
    float *per = NULL;
    xle_tokenizer *tok = xle_model_tokenizer(model);
    if (a.chat) {
        /* the answer follows the assistant's header: tokenized on its own, without BOS */
        if (a.target_text && a.target_ids)
            rc = cli_usage_error("score", "give exactly one of --target-ids and --target");
        else if (a.target_text)
            rc = chat_ids("score", &a, model, &ids, &n, &target, &nt);
        else if (!(rc = chat_ids("score", &a, model, &ids, &n, NULL, NULL)))
            rc = cli_prompt_ids("score", model, a.target_ids, NULL, 0, &target, &nt);
        if (rc) goto done;
    } else if (a.text && a.target_text && !a.ids && !a.target_ids && !a.no_bos && tok) {
        /* both texts: the target's tokens as they follow the prompt (" Paris" after "... is") */
        xle_error terr = {0};
        if (xle_tokenize_continuation(tok, a.text, a.target_text, &ids, &n, &target, &nt, &terr) != XLE_OK) {
            rc = cli_report("score", &terr);
            goto done;
        }
    } else if ((rc = cli_prompt_ids("score", model, a.ids, a.text, a.no_bos ? 0 : -1, &ids, &n)) ||
               (rc = cli_prompt_ids("score", model, a.target_ids, a.target_text, 0, &target, &nt))) {
        goto done;
    }
    if ((rc = cli_check_ids("score", model, ids, n, "--ids")) ||
        (rc = cli_check_ids("score", model, target, nt, "--target-ids")))
        goto done;
    per = malloc((size_t)nt * sizeof(float));
    double lp = 0;
    xle_error err = {0};
    if (!per) {
        rc = cli_report("score", &(xle_error){XLE_ERR_NOMEM, "out of memory"});
    } else if (xle_score(model, ids, n, target, nt, &lp, per, &err) != XLE_OK) {
        rc = cli_report("score", &err);
    } else if (a.json) {
        printf("{\"logprob\": %.9g, \"per_token\": ", lp);
        print_floats(per, nt);
        printf(", \"target_ids\": [");
        for (int i = 0; i < nt; i++) printf(i ? ", %d" : "%d", target[i]);
        printf("]}\n");
    } else {
        printf("%.9g\n", lp);
    }
done:
    free(per);
    free(ids);
    free(a.file_text);
    free(target);
    xle_model_free(model);
    return rc;
}
