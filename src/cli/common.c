/*
 * common.c: helpers shared by the subcommands: error reporting, id lists, and turning the
 * --ids / --text options into token ids with the model's own tokenizer, and the -t/--threads
 * option.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "cli/cli.h"

int cli_report(const char *cmd, const xle_error *err) {
    const char *msg = err->msg[0] ? err->msg : xle_status_name(err->status);
    /* library messages of a subsystem named like the command start with its name: say it once */
    size_t n = strlen(cmd);
    if (!strncmp(msg, cmd, n) && msg[n] == ':' && msg[n + 1] == ' ') msg += n + 2;
    fprintf(stderr, "xledit %s: %s\n", cmd, msg);
    return 1;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "xledit %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (try xledit %s --help)\n", cmd);
    va_end(ap);
    return 2;
}

int cli_parse_ids(const char *s, int32_t **ids, int *n) {
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        if (*p == ',') cap++;
    int32_t *out = malloc(cap * sizeof(int32_t));
    if (!out) return 0;
    int count = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT32_MAX || (*end && *end != ',')) {
            free(out);
            return 0;
        }
        out[count++] = (int32_t)v;
        p = *end ? end + 1 : end;
        if (*end == ',' && !*p) { /* trailing comma */
            free(out);
            return 0;
        }
    }
    if (count == 0) {
        free(out);
        return 0;
    }
    *ids = out;
    *n = count;
    return 1;
}

int cli_prompt_ids(const char *cmd, xle_model *model, const char *ids_arg, const char *text,
                   int add_bos, int32_t **ids, int *n) {
    if ((ids_arg != NULL) == (text != NULL))
        return cli_usage_error(cmd, "give exactly one of --ids and --text");
    if (ids_arg) {
        if (!cli_parse_ids(ids_arg, ids, n))
            return cli_usage_error(cmd, "--ids: expected comma-separated token ids, got '%s'", ids_arg);
        return 0;
    }
    xle_tokenizer *tok = xle_model_tokenizer(model);
    if (!tok) {
        fprintf(stderr, "xledit %s: %s: the model has no tokenizer file; use --ids\n", cmd,
                xle_model_path(model));
        return 1;
    }
    xle_tokens t = {0};
    xle_error err = {0};
    if (xle_tokenize(tok, text, strlen(text), add_bos, 0, &t, &err) != XLE_OK) return cli_report(cmd, &err);
    *ids = malloc((size_t)(t.n > 0 ? t.n : 1) * sizeof(int32_t));
    if (!*ids) {
        xle_tokens_free(&t);
        fprintf(stderr, "xledit %s: out of memory\n", cmd);
        return 1;
    }
    memcpy(*ids, t.ids, (size_t)t.n * sizeof(int32_t));
    *n = t.n;
    xle_tokens_free(&t);
    if (*n == 0) {
        free(*ids);
        return cli_usage_error(cmd, "--text gives no tokens");
    }
    return 0;
}

int cli_chat_template_load(const char *cmd, const char *model_path, xle_chat_template **out) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer_config.json", model_path);
    xle_error err = {0};
    return xle_chat_template_load(path, out, &err) == XLE_OK ? 0 : cli_report(cmd, &err);
}

int cli_check_ids(const char *cmd, const xle_model *model, const int32_t *ids, int n, const char *opt) {
    const int V = xle_model_config(model)->vocab_size;
    for (int i = 0; i < n; i++)
        if (ids[i] >= V) {
            fprintf(stderr, "xledit %s: %s: token id %d is outside the vocabulary [0, %d)\n", cmd, opt, ids[i], V);
            return 1;
        }
    return 0;
}

int cli_threads_option(const char *cmd, const char *arg) {
    char *end;
    errno = 0;
    long n = strtol(arg, &end, 10);
    if (end == arg || *end || errno || n < 1 || n > CLI_MAX_THREADS)
        return cli_usage_error(cmd, "-t/--threads: expected a thread count from 1 to %d, got '%s'",
                               CLI_MAX_THREADS, arg);
    xle_threads_set((int)n);
    return 0;
}

void cli_threads_default(void) {
    const char *env = getenv("OMP_NUM_THREADS");
    /* OpenMP took its count from OMP_NUM_THREADS; OpenBLAS is made to follow it */
    xle_threads_set(env && *env ? xle_threads_get() : xle_threads_available());
}

int cli_precision_option(const char *cmd, const char *arg, xle_precision *out) {
    if (!strcmp(arg, "exact")) *out = XLE_PRECISION_EXACT;
    else if (!strcmp(arg, "bf16")) *out = XLE_PRECISION_BF16;
    else return cli_usage_error(cmd, "--precision: expected exact or bf16, got '%s'", arg);
    return 0;
}

void cli_precision_help(FILE *out, xle_precision dflt) {
    fprintf(out,
            "\n  --precision exact|bf16  products with bf16 weights: exact f32 (weights widened), or\n"
            "                   activations rounded to bf16 and multiplied with AVX512-BF16\n"
            "                   (vdpbf16ps), as llama.cpp does: prompts ~1.6x faster, logits off by\n"
            "                   ~0.5%% of their range (docs/performance.md). Block-quantized weights:\n"
            "                   bf16 also runs prompts in int8 (activations quantized per 256, as\n"
            "                   llama.cpp; AVX-512 VNNI), exact dequantizes them to f32. Without\n"
            "                   these instructions, and for f32/f16 weights, both are exact.\n"
            "                   Default here: %s.\n",
            dflt == XLE_PRECISION_BF16 ? "bf16" : "exact");
}

void cli_threads_help(FILE *out) {
    fprintf(out,
            "\n  -t, --threads N  compute with N threads. Default: the CPUs this process may run on\n"
            "                   (%d here), or OMP_NUM_THREADS when that is set; -t wins over\n"
            "                   OMP_NUM_THREADS. Idle threads spin briefly, then sleep\n"
            "                   (GOMP_SPINCOUNT=" CLI_GOMP_SPINCOUNT " unless GOMP_SPINCOUNT or OMP_WAIT_POLICY\n"
            "                   is set; OPENBLAS_THREAD_TIMEOUT=" CLI_OPENBLAS_THREAD_TIMEOUT " unless set).\n",
            xle_threads_available());
}

void cli_threads_wait_policy(char **argv) {
    int again = 0;
    if (!getenv("GOMP_SPINCOUNT") && !getenv("OMP_WAIT_POLICY"))
        again |= setenv("GOMP_SPINCOUNT", CLI_GOMP_SPINCOUNT, 0) == 0;
    if (!getenv("OPENBLAS_THREAD_TIMEOUT") && !getenv("GOTO_THREAD_TIMEOUT"))
        again |= setenv("OPENBLAS_THREAD_TIMEOUT", CLI_OPENBLAS_THREAD_TIMEOUT, 0) == 0;
    /* libgomp and OpenBLAS read their environment once, when they are loaded, before main: the
     * settings take effect in a fresh image of this program, which finds them set and goes on.
     * When the exec fails, this process goes on with the libraries' own waiting. */
    if (again) execv("/proc/self/exe", argv);
}

int cli_make_parent_dirs(const char *path) {
    char buf[4096];
    size_t n = strlen(path);
    while (n > 0 && path[n - 1] != '/') n--; /* keep the folder part, with its slash */
    if (n == 0) return 0;
    if (n >= sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, path, n);
    buf[n] = 0;
    for (size_t i = 1; i < n; i++)
        if (buf[i] == '/') {
            buf[i] = 0;
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
            buf[i] = '/';
        }
    return 0;
}
