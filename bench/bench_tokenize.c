/*
 * bench_tokenize.c: encode throughput (MB/s of UTF-8 input) on a deterministic multilingual
 * text of at least 5 MB, made from the project's sentences in en, de, fr, it, es, hi, ta, kn
 * (tests/fixtures/tokenizer/sentences_*.txt) in a seeded random order, for SentencePiece BPE
 * (Llama-2 tokenizer.model) and byte-level BPE (Llama-3 tiktoken, Qwen2 tiktoken with NFC,
 * GPT-2 GGUF). Each tokenizer encodes the whole text as one call and, separately, line by line
 * (one call per sentence, as prompts are encoded); best of 3 runs, timed in process CPU time.
 *
 *   bench_tokenize [REPO_DIR [FILTER]]   (REPO_DIR default "."; shared data in REPO_DIR/../shared;
 *                                         FILTER: run only tokenizers whose label contains it)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xledit.h"

/* CPU time of this (single-threaded) process: the figure stays meaningful on a shared,
 * loaded machine, where wall time mostly measures the other processes. */
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[n] = 0;
    *size = (size_t)n;
    return buf;
}

/* The sentences in a seeded random order, each line ending in '\n', until min_bytes. */
static char *make_text(const char *repo, size_t min_bytes, size_t *len) {
    static const char *const langs[] = {"en", "de", "fr", "it", "es", "hi", "ta", "kn"};
    char *lines[1024];
    int n = 0;
    char *bufs[8];
    for (int l = 0; l < 8; l++) {
        char path[2048];
        size_t size;
        snprintf(path, sizeof path, "%s/tests/fixtures/tokenizer/sentences_%s.txt", repo, langs[l]);
        bufs[l] = read_file(path, &size);
        if (!bufs[l]) {
            fprintf(stderr, "bench_tokenize: cannot read %s\n", path);
            exit(1);
        }
        for (char *p = bufs[l], *nl; *p && n < 1024; p = nl + 1) {
            if (!(nl = strchr(p, '\n'))) break;
            *nl = 0;
            lines[n++] = p;
        }
    }
    char *text = malloc(min_bytes + 4096);
    size_t w = 0;
    xle_rng rng;
    xle_rng_seed(&rng, 20240611);
    while (w < min_bytes) {
        const char *s = lines[xle_rng_next(&rng) % (uint64_t)n];
        size_t k = strlen(s);
        memcpy(text + w, s, k);
        w += k;
        text[w++] = '\n';
    }
    text[w] = 0;
    for (int l = 0; l < 8; l++) free(bufs[l]);
    *len = w;
    return text;
}

static const char *filter;

static void bench(const char *label, const char *path, const char *text, size_t len) {
    if (filter && !strstr(label, filter)) return;
    xle_tokenizer *tok = NULL;
    xle_error err = {0};
    double t0 = now();
    if (xle_tokenizer_load(path, &tok, &err) != XLE_OK) {
        fprintf(stderr, "bench_tokenize: %s\n", err.msg);
        return;
    }
    double load_s = now() - t0, whole = 1e30, by_line = 1e30;
    long n_tokens = 0, n_lines = 0;
    for (int rep = 0; rep < 3; rep++) {
        xle_tokens t;
        t0 = now();
        if (xle_tokenize(tok, text, len, 0, 0, &t, &err) != XLE_OK) {
            fprintf(stderr, "bench_tokenize: %s\n", err.msg);
            break;
        }
        double dt = now() - t0;
        if (dt < whole) whole = dt;
        n_tokens = t.n;
        xle_tokens_free(&t);
        t0 = now();
        n_lines = 0;
        for (const char *p = text, *nl; p < text + len; p = nl + 1) {
            nl = memchr(p, '\n', (size_t)(text + len - p));
            if (xle_tokenize(tok, p, (size_t)(nl - p), 1, 0, &t, &err) != XLE_OK) break;
            xle_tokens_free(&t);
            n_lines++;
        }
        dt = now() - t0;
        if (dt < by_line) by_line = dt;
    }
    double mb = (double)len / 1e6;
    printf("| %-28s | %10.1f | %10.1f | %7ld | %11.2f | %6.2f |\n", label, mb / whole, mb / by_line, n_tokens,
           (double)len / (double)n_tokens, load_s);
    (void)n_lines;
    xle_tokenizer_free(tok);
}

int main(int argc, char **argv) {
    const char *repo = argc > 1 ? argv[1] : ".";
    filter = argc > 2 ? argv[2] : NULL;
    char shared[2048], path[2400];
    snprintf(shared, sizeof shared, "%s/../shared/data/external", repo);
    size_t len;
    char *text = make_text(repo, 5u << 20, &len);
    printf("text: %.2f MB (%zu bytes), %s\n\n", (double)len / 1e6, len, "8 languages, seeded order");
    printf("| tokenizer                    | whole MB/s | lines MB/s |  tokens | bytes/token | load s |\n");
    printf("|------------------------------|-----------:|-----------:|--------:|------------:|-------:|\n");
    snprintf(path, sizeof path, "%s/llama2-tokenizer/tokenizer.model", shared);
    bench("SPM: Llama-2 tokenizer.model", path, text, len);
    snprintf(path, sizeof path, "%s/llama3-tokenizer/tokenizer.model", shared);
    bench("byte-level: Llama-3 tiktoken", path, text, len);
    snprintf(path, sizeof path, "%s/qwen-tiktoken/qwen.tiktoken", shared);
    bench("byte-level: Qwen2 (NFC)", path, text, len);
    snprintf(path, sizeof path, "%s/llamacpp-vocab/ggml-vocab-gpt-2.gguf", shared);
    bench("byte-level: GPT-2 GGUF", path, text, len);
    free(text);
    return 0;
}
