/*
 * cmd_train.c: `xledit train-tokenizer` (learn a byte-fallback BPE vocabulary from a corpus)
 * and `xledit train` (train a small Llama-family model from scratch, with checkpoints and
 * --resume). The work is done by src/train/; this file parses options and shows progress.
 */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/outpath.h"
#include "cli/progress.h"

static int parse_int_opt(const char *cmd, const char *opt, const char *s, long long lo, long long hi,
                         long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || errno || v < lo || v > hi)
        return cli_usage_error(cmd, "%s: expected an integer in [%lld, %lld], got '%s'", opt, lo, hi, s);
    *out = v;
    return 0;
}

/* ---- train-tokenizer ------------------------------------------------------------------------ */

static void train_tokenizer_usage(FILE *out) {
    fprintf(out,
            "usage: xledit train-tokenizer --corpus FILE [FILE...] --out tokenizer.json\n"
            "                              [--vocab-size N] [--min-char-count K]\n\n"
            "Learns a SentencePiece-style BPE vocabulary with byte fallback (Llama-2 style) from\n"
            "text files (one sentence or document per line) and writes a Hugging Face\n"
            "tokenizer.json plus tokenizer_config.json beside it (the folder is created when\n"
            "missing).\n\n"
            "  --vocab-size N       tokens in all, with <unk> <s> </s> and 256 byte tokens (4000)\n"
            "  --min-char-count K   characters seen fewer than K times become bytes (2)\n");
}

int cmd_train_tokenizer(int argc, char **argv) {
    const char *cmd = "train-tokenizer", *out = NULL;
    const char **corpus = calloc((size_t)argc + 1, sizeof *corpus);
    int n_corpus = 0, rc = 0;
    if (!corpus) {
        fprintf(stderr, "xledit %s: out of memory\n", cmd);
        return 1;
    }
    xle_bpe_train_opts opts;
    xle_bpe_train_opts_default(&opts);
    for (int i = 1; i < argc && !rc; i++) {
        const char *a = argv[i];
        long long v = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            train_tokenizer_usage(stdout);
            free(corpus);
            return 0;
        } else if (!strcmp(a, "--corpus")) {
            while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) corpus[n_corpus++] = argv[++i];
            if (n_corpus == 0) rc = cli_usage_error(cmd, "--corpus needs at least one file");
        } else if (!strcmp(a, "--out") && i + 1 < argc) {
            out = argv[++i];
        } else if (!strcmp(a, "--vocab-size") && i + 1 < argc) {
            if (!(rc = parse_int_opt(cmd, a, argv[++i], 260, 1 << 24, &v))) opts.vocab_size = (int)v;
        } else if (!strcmp(a, "--min-char-count") && i + 1 < argc) {
            if (!(rc = parse_int_opt(cmd, a, argv[++i], 1, INT_MAX, &v))) opts.min_char_count = (int)v;
        } else {
            rc = cli_usage_error(cmd, "unknown or incomplete option '%s'", a);
        }
    }
    if (!rc && n_corpus == 0) rc = cli_usage_error(cmd, "--corpus is required");
    if (!rc && !out) rc = cli_usage_error(cmd, "--out is required");
    if (rc) {
        free(corpus);
        return rc;
    }
    xle_error err = {0};
    /* the output is checked before the work; its folder (tok/ of tok/tokenizer.json, which
     * also receives tokenizer_config.json) is made after it, when missing */
    int folder_missing = 0;
    if (xle_out_check(out, XLE_OUT_FILE, &err) != XLE_OK) {
        folder_missing = strstr(err.msg, "does not exist") != NULL;
        if (!folder_missing) {
            free(corpus);
            return cli_report(cmd, &err);
        }
    }
    xle_bpe_vocab *v = NULL;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    xle_status st = xle_bpe_train_files(corpus, n_corpus, &opts, &v, &err);
    free(corpus);
    if (st == XLE_OK && folder_missing && cli_make_parent_dirs(out) != 0)
        st = xle_fail(&err, XLE_ERR_IO, "%s: cannot create its folder: %s", out, strerror(errno));
    if (st == XLE_OK) st = xle_bpe_save_hf(v, out, &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (st != XLE_OK) {
        xle_bpe_vocab_free(v);
        return cli_report(cmd, &err);
    }
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    fprintf(stderr,
            "xledit %s: %d tokens (%d merges, %d characters of %d seen) from %lld bytes, %lld words "
            "(%d distinct) in %.2f s -> %s\n",
            cmd, v->n, v->n_merges, v->n_chars, v->n_chars_seen, (long long)v->n_bytes,
            (long long)v->n_words, v->n_word_types, secs, out);
    xle_bpe_vocab_free(v);
    return 0;
}

/* ---- train ---------------------------------------------------------------------------------- */

static volatile sig_atomic_t g_interrupted; /* set by SIGINT: stop after the step, checkpoint */

static void on_sigint(int sig) {
    (void)sig;
    g_interrupted = 1;
}

typedef struct train_view {
    cli_progress progress; /* steps */
    int told_corpus;
} train_view;

static int train_progress(void *user, const xle_train_progress *p) {
    train_view *v = user;
    if (!v->told_corpus) {
        fprintf(stderr, "xledit train: corpus: %lld documents, %lld tokens per epoch; %.0f tokens/s\n",
                (long long)p->n_docs, (long long)p->epoch_tokens, p->tokens_per_s);
        v->told_corpus = 1;
    }
    cli_progress_note(&v->progress, "epoch %.1f  loss %.4f  lr %.2e  %.0f tok/s", p->epoch, p->loss,
                      p->lr, p->tokens_per_s);
    cli_progress_update(&v->progress, p->step, p->steps);
    return g_interrupted != 0;
}

static void train_usage(FILE *out) {
    fprintf(out,
            "usage: xledit train --corpus FILE --tokenizer tokenizer.json --out DIR\n"
            "                    [--config cfg.json] [--steps N] [--seed S] [--resume]\n"
            "       xledit train --init MODEL --corpus FILE --out DIR [--config ...] ...\n"
            "                    [-t N]\n\n"
            "Trains a Llama-family model (GQA, SwiGLU, RoPE) from scratch on a text corpus, one\n"
            "document per line, and writes DIR as a Hugging Face folder (config.json,\n"
            "model.safetensors, tokenizer files) with train_log.tsv, train_config.json and\n"
            "checkpoint/state.ckpt. Ctrl-C stops after the current step with a checkpoint;\n"
            "--resume continues it and ends with the same weights as an uninterrupted run.\n\n"
            "  --config FILE   hyperparameters (JSON; keys in docs/training.md); defaults otherwise\n"
            "  --steps N       override the config's steps\n"
            "  --seed S        override the config's seed\n"
            "  --resume        continue from DIR/checkpoint/state.ckpt (same config and data)\n"
            "  --init MODEL    fine-tune: start from MODEL's weights (an HF folder) with a fresh\n"
            "                  optimizer; the shape comes from MODEL's config.json and the\n"
            "                  tokenizer from MODEL/tokenizer.json unless --tokenizer is given\n");
    cli_threads_help(out);
}

int cmd_train(int argc, char **argv) {
    const char *cmd = "train";
    xle_train_opts o;
    memset(&o, 0, sizeof o);
    const char *config = NULL;
    char init_tokenizer[4096];
    long long steps = -1, seed = -1;
    int rc = 0;
    for (int i = 1; i < argc && !rc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            train_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--corpus") && i + 1 < argc) {
            o.corpus = argv[++i];
        } else if (!strcmp(a, "--tokenizer") && i + 1 < argc) {
            o.tokenizer = argv[++i];
        } else if (!strcmp(a, "--out") && i + 1 < argc) {
            o.out_dir = argv[++i];
        } else if (!strcmp(a, "--config") && i + 1 < argc) {
            config = argv[++i];
        } else if (!strcmp(a, "--steps") && i + 1 < argc) {
            rc = parse_int_opt(cmd, a, argv[++i], 1, (long long)1 << 40, &steps);
        } else if (!strcmp(a, "--seed") && i + 1 < argc) {
            rc = parse_int_opt(cmd, a, argv[++i], 0, LLONG_MAX, &seed);
        } else if (!strcmp(a, "--resume")) {
            o.resume = 1;
        } else if (!strcmp(a, "--init") && i + 1 < argc) {
            o.init = argv[++i];
        } else if ((!strcmp(a, "-t") || !strcmp(a, "--threads")) && i + 1 < argc) {
            rc = cli_threads_option(cmd, argv[++i]);
        } else {
            rc = cli_usage_error(cmd, "unknown or incomplete option '%s'", a);
        }
    }
    if (rc) return rc;
    if (!o.corpus) return cli_usage_error(cmd, "--corpus is required");
    if (!o.tokenizer && o.init) {
        snprintf(init_tokenizer, sizeof init_tokenizer, "%s/tokenizer.json", o.init);
        o.tokenizer = init_tokenizer;
    }
    if (!o.tokenizer) return cli_usage_error(cmd, "--tokenizer is required");
    if (!o.out_dir) return cli_usage_error(cmd, "--out is required");
    xle_error err = {0};
    xle_train_hparams hp;
    xle_train_hparams_default(&hp);
    if (o.init) {
        /* the shape comes from the model; a config may still set it, and a mismatch then
         * fails in xle_train naming the field */
        xle_model *init = NULL;
        if (xle_model_load(o.init, &init, &err) != XLE_OK) return cli_report(cmd, &err);
        xle_train_hparams_from_config(&hp, xle_model_config(init));
        xle_model_free(init);
    }
    if (config && xle_train_hparams_load_json(&hp, config, &err) != XLE_OK) return cli_report(cmd, &err);
    if (steps > 0) hp.steps = steps;
    if (seed >= 0) hp.seed = (uint64_t)seed;
    if (xle_train_hparams_validate(&hp, config ? config : "default config", &err) != XLE_OK)
        return cli_report(cmd, &err);

    train_view view = {.told_corpus = 0};
    cli_progress_begin(&view.progress, "train", "steps");
    o.progress = train_progress;
    o.progress_user = &view;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, &old);
    xle_status st = xle_train(&hp, &o, &err);
    sigaction(SIGINT, &old, NULL);
    cli_progress_end(&view.progress);
    if (st != XLE_OK) return cli_report(cmd, &err);
    fprintf(stderr, "xledit %s: wrote %s\n", cmd, o.out_dir);
    return 0;
}

/* ---- facts-check ---------------------------------------------------------------------------- */

static void facts_check_usage(FILE *out) {
    fprintf(out,
            "usage: xledit facts-check MODEL --facts FILE [--json] [--min-recall P] [-t N]\n\n"
            "Greedy recall of facts per language: a fact counts when greedy decoding after its\n"
            "prompt produces its object. FILE is JSONL with \"lang\", \"prompt\" and \"object\" (or\n"
            "\"answer\" / \"target\") on each line. Prints one line per language (or JSON with\n"
            "--json). With --min-recall P (0..1) exits 1 when some language is below P.\n");
    cli_threads_help(out);
}

typedef struct lang_tally {
    char lang[XLE_LANG_MAX];
    int n, ok;
} lang_tally;

static const char *fact_field(json_t *o, const char *const *names) {
    for (int i = 0; names[i]; i++) {
        json_t *v = json_object_get(o, names[i]);
        if (json_is_string(v)) return json_string_value(v);
    }
    return NULL;
}

int cmd_facts_check(int argc, char **argv) {
    const char *cmd = "facts-check", *model_path = NULL, *facts = NULL;
    int as_json = 0;
    double min_recall = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            facts_check_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--facts") && i + 1 < argc) {
            facts = argv[++i];
        } else if (!strcmp(a, "--json")) {
            as_json = 1;
        } else if ((!strcmp(a, "-t") || !strcmp(a, "--threads")) && i + 1 < argc) {
            int rc = cli_threads_option(cmd, argv[++i]);
            if (rc) return rc;
        } else if (!strcmp(a, "--min-recall") && i + 1 < argc) {
            char *end;
            min_recall = strtod(argv[++i], &end);
            if (*end || end == argv[i] || !(min_recall >= 0 && min_recall <= 1))
                return cli_usage_error(cmd, "--min-recall: expected a number in [0, 1], got '%s'", argv[i]);
        } else if (a[0] != '-' && !model_path) {
            model_path = a;
        } else {
            return cli_usage_error(cmd, "unknown or incomplete option '%s'", a);
        }
    }
    if (!model_path) return cli_usage_error(cmd, "MODEL is required");
    if (!facts) return cli_usage_error(cmd, "--facts is required");
    xle_error err = {0};
    xle_model *m = NULL;
    if (xle_model_load(model_path, &m, &err) != XLE_OK) return cli_report(cmd, &err);
    xle_tokenizer *tok = xle_model_tokenizer(m);
    if (!tok) {
        xle_model_free(m);
        fprintf(stderr, "xledit %s: %s: the model has no tokenizer\n", cmd, model_path);
        return 1;
    }
    xle_error in_err = {0};
    FILE *f = xle_in_check_file(facts, &in_err) == XLE_OK ? fopen(facts, "r") : NULL;
    if (!f && in_err.msg[0]) {
        xle_model_free(m);
        return cli_report(cmd, &in_err);
    }
    if (!f) {
        xle_model_free(m);
        fprintf(stderr, "xledit %s: %s: cannot open: %s\n", cmd, facts, strerror(errno));
        return 1;
    }
    /* the facts are counted first so that the progress line can give an ETA */
    int64_t n_facts = 0, n_checked = 0;
    {
        char *l = NULL;
        size_t c = 0;
        while (getline(&l, &c, f) > 0) n_facts += strspn(l, " \t\r\n") != strlen(l);
        free(l);
        rewind(f);
    }
    cli_progress progress;
    cli_progress_begin(&progress, cmd, "facts");
    cli_progress_update(&progress, 0, n_facts);
    static const char *const prompt_names[] = {"prompt", NULL};
    static const char *const object_names[] = {"object", "answer", "target", NULL};
    static const char *const lang_names[] = {"lang", "language", NULL};
    lang_tally *tally = NULL;
    int n_langs = 0, rc = 0;
    char *line = NULL;
    size_t cap = 0;
    long line_no = 0;
    while (!rc && getline(&line, &cap, f) > 0) {
        line_no++;
        json_error_t jerr;
        json_t *o = json_loads(line, 0, &jerr);
        if (!o && strspn(line, " \t\r\n") == strlen(line)) continue;
        const char *lang = o ? fact_field(o, lang_names) : NULL, *prompt = o ? fact_field(o, prompt_names) : NULL,
                   *object = o ? fact_field(o, object_names) : NULL;
        if (!o || !lang || !prompt || !object || strlen(lang) >= XLE_LANG_MAX) {
            cli_progress_end(&progress);
            fprintf(stderr, "xledit %s: %s:%ld: %s\n", cmd, facts, line_no,
                    !o ? "invalid JSON" : !lang ? "lang: missing or not a short string"
                                        : !prompt ? "prompt: missing" : "object: missing");
            json_decref(o);
            rc = 1;
            break;
        }
        int k = 0;
        while (k < n_langs && strcmp(tally[k].lang, lang)) k++;
        if (k == n_langs) {
            lang_tally *t = realloc(tally, (size_t)(n_langs + 1) * sizeof *t);
            if (!t) {
                json_decref(o);
                rc = 1;
                break;
            }
            tally = t;
            memset(&tally[k], 0, sizeof tally[k]);
            snprintf(tally[k].lang, sizeof tally[k].lang, "%s", lang);
            n_langs++;
        }
        int ok = 0;
        if (xle_fact_recalled(m, tok, prompt, object, &ok, &err) != XLE_OK) {
            cli_progress_end(&progress);
            fprintf(stderr, "xledit %s: %s:%ld: %s\n", cmd, facts, line_no, err.msg);
            json_decref(o);
            rc = 1;
            break;
        }
        tally[k].n++;
        tally[k].ok += ok;
        json_decref(o);
        cli_progress_update(&progress, ++n_checked, n_facts);
    }
    cli_progress_end(&progress);
    free(line);
    fclose(f);
    xle_model_free(m);
    if (!rc) {
        int all_n = 0, all_ok = 0, below = 0;
        json_t *report = json_object(), *langs = json_object();
        for (int k = 0; k < n_langs; k++) {
            double r = tally[k].n ? (double)tally[k].ok / tally[k].n : 0;
            json_object_set_new(langs, tally[k].lang, json_pack("{s:i, s:i, s:f}", "n", tally[k].n,
                                                                "recalled", tally[k].ok, "recall", r));
            if (!as_json) printf("%-6s %6d / %-6d %6.2f%%\n", tally[k].lang, tally[k].ok, tally[k].n, 100 * r);
            all_n += tally[k].n;
            all_ok += tally[k].ok;
            if (min_recall >= 0 && r < min_recall) below = 1;
        }
        double r = all_n ? (double)all_ok / all_n : 0;
        json_object_set_new(report, "model", json_string(model_path));
        json_object_set_new(report, "langs", langs);
        json_object_set_new(report, "n", json_integer(all_n));
        json_object_set_new(report, "recalled", json_integer(all_ok));
        json_object_set_new(report, "recall", json_real(r));
        if (as_json) {
            char *text = json_dumps(report, JSON_PRESERVE_ORDER);
            if (text) printf("%s\n", text);
            free(text);
        } else {
            printf("%-6s %6d / %-6d %6.2f%%\n", "all", all_ok, all_n, 100 * r);
        }
        json_decref(report);
        if (below) rc = 1;
    }
    free(tally);
    return rc;
}
