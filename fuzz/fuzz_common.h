/*
 * fuzz_common.h: what every libFuzzer target in fuzz/ shares (docs/fuzzing.md). The parsers
 * take paths, so an input is written to a file in a private temporary folder and the real
 * loader is called on it. Inputs that stand for several files (a model folder, a run folder, a
 * statistics cache) are split on FUZZ_SEP, a line "--8<--", into the parts named by the target.
 * A target is a small program of its own: its static state (the temporary folder, a model
 * loaded once) is the fuzzer's, never the library's.
 */
#ifndef XLE_FUZZ_COMMON_H
#define XLE_FUZZ_COMMON_H

#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "xledit.h"

#define FUZZ_SEP "\n--8<--\n"
#define FUZZ_MAX_PARTS 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fuzz_dir_[256];

/* Removes every file and folder under path (the temporary folder's contents). */
static inline void fuzz_remove_tree(const char *path, int keep_top) {
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char sub[1024];
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            struct stat st;
            if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode)) fuzz_remove_tree(sub, 0);
            else unlink(sub);
        }
        closedir(d);
    }
    if (!keep_top) rmdir(path);
}

static inline void fuzz_cleanup_(void) {
    if (fuzz_dir_[0]) fuzz_remove_tree(fuzz_dir_, 0);
}

/* The private temporary folder, emptied: made on the first call, removed at exit. */
static inline const char *fuzz_dir(void) {
    if (!fuzz_dir_[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(fuzz_dir_, sizeof fuzz_dir_, "%s/xle_fuzz.XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(fuzz_dir_)) abort();
        atexit(fuzz_cleanup_);
    } else {
        fuzz_remove_tree(fuzz_dir_, 1);
    }
    return fuzz_dir_;
}

/* Writes n bytes to dir/name and returns the path (static storage, one per name slot). */
static inline const char *fuzz_write(const char *dir, const char *name, const void *data, size_t n) {
    static char paths[FUZZ_MAX_PARTS][512];
    static int next;
    char *path = paths[next++ % FUZZ_MAX_PARTS];
    snprintf(path, 512, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (n && fwrite(data, 1, n, f) != n) abort();
    if (fclose(f) != 0) abort();
    return path;
}

/* Splits data on FUZZ_SEP into at most max parts; returns their count (parts past the last
 * separator found are empty). */
static inline int fuzz_split(const uint8_t *data, size_t size, const uint8_t **part, size_t *len, int max) {
    const size_t sep_len = strlen(FUZZ_SEP);
    int n = 0;
    size_t start = 0;
    for (size_t i = 0; n < max - 1 && i + sep_len <= size; i++)
        if (!memcmp(data + i, FUZZ_SEP, sep_len)) {
            part[n] = data + start, len[n++] = i - start;
            start = i + sep_len;
            i = start - 1;
        }
    part[n] = data + start, len[n++] = size - start;
    for (int k = n; k < max; k++) part[k] = data + size, len[k] = 0;
    return n;
}

/* Writes the parts of a multi-file input as dir/names[i]; a NULL name skips its part, and a
 * part that is absent from the input (fewer separators) is not written at all, so a loader
 * also meets missing files. */
static inline void fuzz_write_parts(const char *dir, const uint8_t *data, size_t size, const char *const *names,
                             int n_names) {
    const uint8_t *part[FUZZ_MAX_PARTS];
    size_t len[FUZZ_MAX_PARTS];
    int n = fuzz_split(data, size, part, len, n_names);
    for (int i = 0; i < n && i < n_names; i++)
        if (names[i]) fuzz_write(dir, names[i], part[i], len[i]);
}

/* The small model (with a tokenizer) that the patch and statistics targets read: the folder in
 * XLE_FUZZ_MODEL, which scripts/fuzz.sh trains (2 layers, dim 32, FFN 64) along with the seeds
 * made from it. */
static inline const char *fuzz_model_path(void) {
    const char *p = getenv("XLE_FUZZ_MODEL");
    if (!p || !*p) {
        fprintf(stderr, "set XLE_FUZZ_MODEL to the model scripts/fuzz.sh makes\n");
        abort();
    }
    return p;
}

/* A loaded model must also run: one short scoring pass (its ids inside the vocabulary). */
static inline void fuzz_forward(xle_model *m) {
    const xle_config *c = xle_model_config(m);
    /* a fuzzed header may promise a big model: only small ones are run (the loader has
     * checked the tensors against the files, so these sizes are backed by data) */
    if (c->vocab_size <= 0 || c->dim > 4096 || c->n_layers > 64 || c->vocab_size > 1 << 18) return;
    int32_t prompt[2] = {0, c->vocab_size - 1}, target[1] = {c->vocab_size / 2};
    double logprob;
    xle_error err = {0};
    xle_score(m, prompt, 2, target, 1, &logprob, NULL, &err);
}

/* A loaded tokenizer must also work: encode a multilingual sentence (and the input's first
 * bytes as text), decode every id it has and the ids back. */
static inline void fuzz_tokenize(const xle_tokenizer *tok, const uint8_t *data, size_t size) {
    static const char text[] = "The capital of France is Paris. Die Hauptstadt ist Paris. "
                               "\xE0\xA4\xAA\xE0\xA5\x87\xE0\xA4\xB0\xE0\xA4\xBF\xE0\xA4\xB8 "
                               "\xE0\xAE\xAA\xE0\xAE\xBE\xE0\xAE\xB0\xE0\xAE\xBF\xE0\xAE\xB8\xE0\xAF\x8D <s></s>\n\t  x";
    xle_error err = {0};
    for (int round = 0; round < 2; round++) {
        xle_tokens t = {0};
        const char *s = round ? (const char *)data : text;
        size_t n = round ? (size < 256 ? size : 256) : strlen(text);
        if (xle_tokenize(tok, s, n, -1, round, &t, &err) == XLE_OK) {
            char *back = xle_detokenize(tok, t.ids, t.n, round);
            free(back);
            xle_tokens_free(&t);
        }
    }
    int V = xle_tokenizer_vocab_size(tok);
    for (int32_t id = 0; id < V && id < 4096; id++) {
        char *one = xle_detokenize(tok, &id, 1, 0);
        free(one);
        (void)xle_tokenizer_piece(tok, id);
    }
}

#endif
