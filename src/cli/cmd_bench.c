/*
 * cmd_bench.c: `xledit bench`, the engine's speed on a model file, measured the way llama.cpp's
 * llama-bench measures it so that the two can be run side by side on the same file
 * (bench/compare_llamacpp.sh):
 *  - a pp test (n_prompt > 0) is one forward pass over n_prompt tokens (BOS, when the model
 *    has one, then random ids) into an empty KV cache, with the logits of the last row only;
 *  - a tg test (n_gen > 0) is n_gen forward passes of one token each through the KV cache,
 *    the first token BOS and the others random ids, each with its logits;
 *  - each test runs once untimed (the whole prompt; one generation step), then -r times, the
 *    KV cache emptied before each; a sample is the wall time of one repetition, and tokens per
 *    second of a sample are (n_prompt + n_gen) / time. avg_ts and stddev_ts are the mean and
 *    the sample standard deviation (n - 1) of those rates, avg_ns and stddev_ns of the times.
 * Output: a markdown table (-o text / md, llama-bench's default), one JSON object per test
 * (-o jsonl) or one JSON array (-o json), with llama-bench's field names.
 */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "xle_build_info.h"

#define MAX_LIST 64
#define MAX_REPS 1024

typedef enum out_format { OUT_MD = 0, OUT_JSONL, OUT_JSON } out_format;

typedef struct bench_args {
    const char *models[MAX_LIST];
    int n_models;
    int n_prompt[MAX_LIST], n_n_prompt;
    int n_gen[MAX_LIST], n_n_gen;
    int threads[MAX_LIST], n_threads;
    int reps;
    out_format format;
    int progress;
    xle_precision precision;
} bench_args;

/* What llama-bench reports about a model. */
typedef struct model_facts {
    const char *filename;
    char type[128];
    uint64_t size_bytes;   /* the weights as xledit holds them in memory */
    uint64_t n_params;
} model_facts;

/* One test and its samples. */
typedef struct bench_test {
    int n_prompt, n_gen, n_threads;
    char time[32];         /* RFC 3339, UTC, when the test started */
    uint64_t samples_ns[MAX_REPS];
    int n_samples;
} bench_test;

static const char bench_usage[] =
    "usage: xledit bench MODEL... [-m MODEL]... [-p N[,N...]] [-n N[,N...]] [-t N[,N...]]\n"
    "                    [-r N] [-o text|md|jsonl|json] [--progress] [--precision exact|bf16]\n\n"
    "Measures prompt processing and generation speed on MODEL (any model xledit loads) with\n"
    "llama.cpp's llama-bench semantics, so that both can run on the same GGUF file:\n"
    "  pp N  one forward pass over an N-token prompt (BOS, then random ids) into an empty KV\n"
    "        cache, logits of the last row only\n"
    "  tg N  N single-token forward passes through the KV cache (BOS first), logits each\n"
    "Each test runs once to warm up, then R times; t/s is the mean (± sample standard\n"
    "deviation) over the repetitions of tokens / seconds. Every value of -p, -n and -t is a\n"
    "test of its own (0 skips it). Output: a markdown table (text, md), or one JSON object per\n"
    "test (jsonl) or a JSON array (json) with llama-bench's fields (n_prompt, n_gen, n_threads,\n"
    "avg_ts, stddev_ts, avg_ns, stddev_ns, samples_ns, samples_ts, model_filename, model_type,\n"
    "model_size, model_n_params, test_time, build_commit, ...). docs/performance.md.\n\n"
    "  -p, --n-prompt LIST   prompt lengths (default 512)\n"
    "  -n, --n-gen LIST      generation lengths (default 128)\n"
    "  -r, --repetitions N   timed repetitions of each test (default 5)\n"
    "  -o, --output FORMAT   text (= md, default), jsonl or json\n"
    "  --progress            a line on stderr before each run\n"
    "  -t, --threads LIST    thread counts, one test each (default below)\n";

static int parse_list(const char *cmd, const char *opt, const char *s, int lo, int hi, int *out,
                      int *n) {
    const char *p = s;
    for (;;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < lo || v > hi || (*end && *end != ',') || *n >= MAX_LIST)
            return cli_usage_error(cmd, "%s: expected a comma list of numbers from %d to %d, got '%s'",
                                   opt, lo, hi, s);
        out[(*n)++] = (int)v;
        if (!*end) return 0;
        p = end + 1;
    }
}

static int parse_bench_args(int argc, char **argv, bench_args *a) {
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},       {"n-prompt", required_argument, 0, 'p'},
        {"n-gen", required_argument, 0, 'n'},       {"threads", required_argument, 0, 't'},
        {"repetitions", required_argument, 0, 'r'}, {"output", required_argument, 0, 'o'},
        {"progress", no_argument, 0, 'P'},          {"help", no_argument, 0, 'h'},
        {"precision", required_argument, 0, 'R'},   {0, 0, 0, 0}};
    memset(a, 0, sizeof *a);
    a->reps = 5;
    a->precision = XLE_PRECISION_BF16; /* what llama-bench measures: activations rounded to bf16 */
    int c, rc;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "m:p:n:t:r:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            if (a->n_models == MAX_LIST) return cli_usage_error("bench", "at most %d models", MAX_LIST);
            a->models[a->n_models++] = optarg;
            break;
        case 'p':
            if ((rc = parse_list("bench", "-p/--n-prompt", optarg, 0, 1 << 20, a->n_prompt, &a->n_n_prompt))) return rc;
            break;
        case 'n':
            if ((rc = parse_list("bench", "-n/--n-gen", optarg, 0, 1 << 20, a->n_gen, &a->n_n_gen))) return rc;
            break;
        case 't':
            if ((rc = parse_list("bench", "-t/--threads", optarg, 1, CLI_MAX_THREADS, a->threads, &a->n_threads)))
                return rc;
            break;
        case 'r': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (end == optarg || *end || v < 1 || v > MAX_REPS)
                return cli_usage_error("bench", "-r/--repetitions: expected a count from 1 to %d, got '%s'",
                                       MAX_REPS, optarg);
            a->reps = (int)v;
            break;
        }
        case 'o':
            if (!strcmp(optarg, "text") || !strcmp(optarg, "md")) a->format = OUT_MD;
            else if (!strcmp(optarg, "jsonl")) a->format = OUT_JSONL;
            else if (!strcmp(optarg, "json")) a->format = OUT_JSON;
            else return cli_usage_error("bench", "-o/--output: expected text, md, jsonl or json, got '%s'", optarg);
            break;
        case 'P': a->progress = 1; break;
        case 'R':
            if ((rc = cli_precision_option("bench", optarg, &a->precision))) return rc;
            break;
        case 'h':
            fputs(bench_usage, stdout);
            cli_threads_help(stdout);
            cli_precision_help(stdout, a->precision);
            return -1;
        default:
            if (optopt && strchr("mpntro", optopt))
                return cli_usage_error("bench", "option '%s' needs a value", argv[optind - 1]);
            return cli_usage_error("bench", "unknown option '%s'", argv[optind - 1]);
        }
    }
    for (; optind < argc; optind++) {
        if (a->n_models == MAX_LIST) return cli_usage_error("bench", "at most %d models", MAX_LIST);
        a->models[a->n_models++] = argv[optind];
    }
    if (!a->n_models) return cli_usage_error("bench", "expected a MODEL");
    if (!a->n_n_prompt) a->n_prompt[a->n_n_prompt++] = 512;
    if (!a->n_n_gen) a->n_gen[a->n_n_gen++] = 128;
    if (!a->n_threads) a->threads[a->n_threads++] = xle_threads_get();
    int any = 0;
    for (int i = 0; i < a->n_n_prompt; i++) any |= a->n_prompt[i] > 0;
    for (int i = 0; i < a->n_n_gen; i++) any |= a->n_gen[i] > 0;
    if (!any) return cli_usage_error("bench", "nothing to measure: every -p and -n value is 0");
    return 0;
}

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* Parameters and bytes of every weight tensor once (a tied lm_head is the embedding). */
static void count_weights(xle_model *model, uint64_t *n_params, uint64_t *n_bytes) {
    const xle_config *c = xle_model_config(model);
    const xle_weights *w = xle_model_weights(model);
    *n_params = *n_bytes = 0;
    const xle_tensor *top[] = {&w->tok_embd, &w->out_norm, c->tied_embeddings ? NULL : &w->lm_head,
                               &w->rope_freqs};
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++)
        if (top[i] && top[i]->data) {
            *n_params += (uint64_t)xle_tensor_numel(top[i]);
            *n_bytes += xle_tensor_nbytes(top[i]);
        }
    for (int l = 0; l < c->n_layers; l++) {
        const xle_layer_weights *L = &w->layers[l];
        const xle_tensor *ts[] = {&L->attn_norm, &L->wq, &L->wk, &L->wv, &L->wo, &L->bq, &L->bk,
                                  &L->bv, &L->bo, &L->ffn_norm, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
            if (ts[i]->data) {
                *n_params += (uint64_t)xle_tensor_numel(ts[i]);
                *n_bytes += xle_tensor_nbytes(ts[i]);
            }
    }
}

static void describe_model(xle_model *model, const char *path, model_facts *f) {
    static const char *const arch[] = {"llama", "mistral", "qwen2"};
    const xle_config *c = xle_model_config(model);
    f->filename = path;
    count_weights(model, &f->n_params, &f->size_bytes);
    char size[32];
    const double p = (double)f->n_params;
    if (p >= 1e9) snprintf(size, sizeof size, "%.1fB", p / 1e9);
    else if (p >= 1e6) snprintf(size, sizeof size, "%.0fM", p / 1e6);
    else snprintf(size, sizeof size, "%.0fK", p / 1e3);
    snprintf(f->type, sizeof f->type, "%s %s %s", c->arch <= XLE_ARCH_QWEN2 ? arch[c->arch] : "?",
             size, xle_dtype_name(xle_model_weight_dtype(model)));
}

/* The CPU's name from /proc/cpuinfo ("" when unknown), as llama-bench's cpu_info. */
static void cpu_name(char *out, size_t cap) {
    out[0] = 0;
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        const char *colon = strchr(line, ':');
        if (!strncmp(line, "model name", 10) && colon) {
            snprintf(out, cap, "%s", colon + 2);
            out[strcspn(out, "\n")] = 0;
            break;
        }
    }
    fclose(f);
}

/* ids[0..n): BOS (when the model has one) then random ids, as llama-bench feeds. */
static void fill_tokens(int32_t *ids, int n, const xle_config *c, xle_rng *rng) {
    for (int i = 0; i < n; i++) ids[i] = (int32_t)(xle_rng_next(rng) % (uint64_t)c->vocab_size);
    if (n > 0 && c->bos_id >= 0 && c->bos_id < c->vocab_size) ids[0] = c->bos_id;
}

/* One forward pass over n tokens appended to the cache, logits of the last row. */
static xle_status run_forward(xle_model *model, xle_kv_cache *cache, const int32_t *ids, int n,
                              float *logits, xle_error *err) {
    int start[2] = {0, n}, last = n - 1;
    xle_batch batch = {1, ids, start};
    xle_forward_opts fo = {.cache = cache, .logit_rows = &last, .n_logit_rows = 1};
    return xle_forward(model, &batch, &fo, logits, err);
}

/* pp: the whole prompt in one pass; tg: n_gen passes of one token (the first is ids[0]). */
static xle_status run_once(xle_model *model, xle_kv_cache *cache, const bench_test *t,
                           const int32_t *prompt, const int32_t *gen, float *logits, xle_error *err) {
    xle_status st = XLE_OK;
    if (t->n_prompt > 0) st = run_forward(model, cache, prompt, t->n_prompt, logits, err);
    for (int i = 0; st == XLE_OK && i < t->n_gen; i++) st = run_forward(model, cache, gen + i, 1, logits, err);
    return st;
}

static double mean(const double *v, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += v[i];
    return n ? s / n : 0;
}

/* Sample standard deviation (n - 1), 0 for fewer than two values (as llama-bench). */
static double stdev(const double *v, int n) {
    if (n <= 1) return 0;
    const double m = mean(v, n);
    double s = 0;
    for (int i = 0; i < n; i++) s += (v[i] - m) * (v[i] - m);
    return sqrt(s / (n - 1));
}

static void test_stats(const bench_test *t, double *ns, double *ts) {
    for (int i = 0; i < t->n_samples; i++) {
        ns[i] = (double)t->samples_ns[i];
        ts[i] = 1e9 * (double)(t->n_prompt + t->n_gen) / ns[i];
    }
}

static json_t *test_json(const bench_test *t, const model_facts *f, const char *cpu) {
    double ns[MAX_REPS], ts[MAX_REPS];
    test_stats(t, ns, ts);
    json_t *o = json_object(), *samples_ns = json_array(), *samples_ts = json_array();
    for (int i = 0; i < t->n_samples; i++) {
        json_array_append_new(samples_ns, json_integer((json_int_t)t->samples_ns[i]));
        json_array_append_new(samples_ts, json_real(ts[i]));
    }
    json_object_set_new(o, "build_commit", json_string(XLE_BUILD_COMMIT));
    json_object_set_new(o, "build_number", json_integer(XLE_BUILD_NUMBER));
    json_object_set_new(o, "cpu_info", json_string(cpu));
    json_object_set_new(o, "gpu_info", json_string(""));
    json_object_set_new(o, "backends", json_string("CPU"));
    json_object_set_new(o, "model_filename", json_string(f->filename));
    json_object_set_new(o, "model_type", json_string(f->type));
    json_object_set_new(o, "model_size", json_integer((json_int_t)f->size_bytes));
    json_object_set_new(o, "model_n_params", json_integer((json_int_t)f->n_params));
    json_object_set_new(o, "n_threads", json_integer(t->n_threads));
    json_object_set_new(o, "type_k", json_string("f32"));
    json_object_set_new(o, "type_v", json_string("f32"));
    json_object_set_new(o, "n_gpu_layers", json_integer(0));
    json_object_set_new(o, "use_mmap", json_true());
    json_object_set_new(o, "n_prompt", json_integer(t->n_prompt));
    json_object_set_new(o, "n_gen", json_integer(t->n_gen));
    json_object_set_new(o, "test_time", json_string(t->time));
    json_object_set_new(o, "avg_ns", json_integer((json_int_t)llround(mean(ns, t->n_samples))));
    json_object_set_new(o, "stddev_ns", json_integer((json_int_t)llround(stdev(ns, t->n_samples))));
    json_object_set_new(o, "avg_ts", json_real(mean(ts, t->n_samples)));
    json_object_set_new(o, "stddev_ts", json_real(stdev(ts, t->n_samples)));
    json_object_set_new(o, "samples_ns", samples_ns);
    json_object_set_new(o, "samples_ts", samples_ts);
    return o;
}

static void print_md_header(void) {
    printf("| %-30s | %10s | %10s | %-10s | %7s | %13s | %20s |\n", "model", "size", "params", "backend",
           "threads", "test", "t/s");
    printf("| %.30s | %.9s: | %.9s: | %.10s | %.6s: | %.12s: | %.19s: |\n",
           "------------------------------", "----------", "----------", "----------", "-------",
           "-------------", "--------------------");
}

static void print_md_row(const bench_test *t, const model_facts *f) {
    double ns[MAX_REPS], ts[MAX_REPS];
    test_stats(t, ns, ts);
    char size[32], params[32], test[48], rate[64];
    const double b = (double)f->size_bytes, p = (double)f->n_params;
    if (b < 1024.0 * 1024 * 1024) snprintf(size, sizeof size, "%.2f MiB", b / 1024 / 1024);
    else snprintf(size, sizeof size, "%.2f GiB", b / 1024 / 1024 / 1024);
    if (p < 1e9) snprintf(params, sizeof params, "%.2f M", p / 1e6);
    else snprintf(params, sizeof params, "%.2f B", p / 1e9);
    if (t->n_gen == 0) snprintf(test, sizeof test, "pp%d", t->n_prompt);
    else if (t->n_prompt == 0) snprintf(test, sizeof test, "tg%d", t->n_gen);
    else snprintf(test, sizeof test, "pp%d+tg%d", t->n_prompt, t->n_gen);
    snprintf(rate, sizeof rate, "%.2f ± %.2f", mean(ts, t->n_samples), stdev(ts, t->n_samples));
    printf("| %-30s | %10s | %10s | %-10s | %7d | %13s | %21s |\n", f->type, size, params, "CPU",
           t->n_threads, test, rate);
}

/* Runs one test: warm-up, then reps timed repetitions. progress: 0 none, 1 one line rewritten
 * (a terminal), 2 a line per run (--progress). */
static xle_status run_test(xle_model *model, bench_test *t, int reps, int progress, int index,
                           int count, xle_error *err) {
    const xle_config *c = xle_model_config(model);
    xle_rng rng;
    xle_rng_seed(&rng, 1234);
    const int n_ids = t->n_prompt + t->n_gen;
    int32_t *ids = malloc((size_t)n_ids * sizeof(int32_t));
    float *logits = malloc((size_t)c->vocab_size * sizeof(float));
    xle_kv_cache *cache = NULL;
    xle_status st = XLE_OK;
    if (!ids || !logits) {
        st = xle_fail(err, XLE_ERR_NOMEM, "bench: out of memory");
        goto done;
    }
    fill_tokens(ids, t->n_prompt, c, &rng);
    fill_tokens(ids + t->n_prompt, t->n_gen, c, &rng);
    if ((st = xle_kv_cache_new(model, n_ids, &cache, err)) != XLE_OK) goto done;
    xle_threads_set(t->n_threads);
    time_t now = time(NULL);
    strftime(t->time, sizeof t->time, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    if (progress) fprintf(stderr, "xledit bench: test %d/%d: warm-up%s", index, count, progress > 1 ? "\n" : "   \r");
    /* warm-up as llama-bench: the whole prompt, one generation step */
    const bench_test warm = {.n_prompt = t->n_prompt, .n_gen = t->n_gen > 0 ? 1 : 0};
    if ((st = run_once(model, cache, &warm, ids, ids + t->n_prompt, logits, err)) != XLE_OK) goto done;
    for (int r = 0; r < reps; r++) {
        if (progress)
            fprintf(stderr, "xledit bench: test %d/%d: run %d/%d%s", index, count, r + 1, reps,
                    progress > 1 ? "\n" : "   \r");
        xle_kv_cache_clear(cache);
        const uint64_t t0 = now_ns();
        if ((st = run_once(model, cache, t, ids, ids + t->n_prompt, logits, err)) != XLE_OK) goto done;
        t->samples_ns[t->n_samples++] = now_ns() - t0;
    }
done:
    if (progress == 1) fprintf(stderr, "%60s\r", "");
    xle_kv_cache_free(cache);
    free(ids);
    free(logits);
    return st;
}

int cmd_bench(int argc, char **argv) {
    bench_args a;
    int rc = parse_bench_args(argc, argv, &a);
    if (rc) return rc < 0 ? 0 : rc;
    char cpu[256];
    cpu_name(cpu, sizeof cpu);
    int n_tests = 0;
    for (int i = 0; i < a.n_n_prompt; i++) n_tests += a.n_prompt[i] > 0;
    for (int i = 0; i < a.n_n_gen; i++) n_tests += a.n_gen[i] > 0;
    n_tests *= a.n_threads * a.n_models;
    int index = 0, first_row = 1, progress = a.progress ? 2 : isatty(STDERR_FILENO) ? 1 : 0;
    json_t *all = a.format == OUT_JSON ? json_array() : NULL;
    for (int mi = 0; mi < a.n_models && rc == 0; mi++) {
        xle_model *model = NULL;
        xle_error err = {0};
        if (xle_model_load(a.models[mi], &model, &err) != XLE_OK) {
            rc = cli_report("bench", &err);
            break;
        }
        xle_model_set_precision(model, a.precision);
        model_facts facts;
        describe_model(model, a.models[mi], &facts);
        /* llama-bench's order: every prompt test, then every generation test */
        for (int k = 0; k < a.n_n_prompt + a.n_n_gen && rc == 0; k++) {
            for (int ti = 0; ti < a.n_threads && rc == 0; ti++) {
                bench_test t = {0};
                t.n_prompt = k < a.n_n_prompt ? a.n_prompt[k] : 0;
                t.n_gen = k < a.n_n_prompt ? 0 : a.n_gen[k - a.n_n_prompt];
                t.n_threads = a.threads[ti];
                if (t.n_prompt + t.n_gen == 0) continue;
                if (run_test(model, &t, a.reps, progress, ++index, n_tests, &err) != XLE_OK) {
                    rc = cli_report("bench", &err);
                    break;
                }
                if (a.format == OUT_MD) {
                    if (first_row) print_md_header();
                    print_md_row(&t, &facts);
                } else {
                    json_t *o = test_json(&t, &facts, cpu);
                    if (all) {
                        json_array_append_new(all, o);
                    } else {
                        char *line = json_dumps(o, JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
                        json_decref(o);
                        if (!line) {
                            rc = cli_report("bench", &(xle_error){XLE_ERR_NOMEM, "out of memory"});
                            break;
                        }
                        printf("%s\n", line);
                        free(line);
                    }
                }
                first_row = 0;
                fflush(stdout);
            }
        }
        xle_model_free(model);
    }
    if (all && rc == 0) {
        char *text = json_dumps(all, JSON_PRESERVE_ORDER | JSON_INDENT(2) | JSON_REAL_PRECISION(10));
        if (text) printf("%s\n", text);
        else rc = cli_report("bench", &(xle_error){XLE_ERR_NOMEM, "out of memory"});
        free(text);
    }
    json_decref(all);
    return rc;
}
