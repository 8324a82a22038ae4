/*
 * tok_util.h: helpers shared by the tokenizer tests: whole-file reads and the offset check
 * every encoding must pass (tokens tile the input: monotone, no gap, no overlap).
 */
#ifndef XLE_TOK_UTIL_H
#define XLE_TOK_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xledit.h"

/* The whole file as a NUL-terminated buffer (caller frees), or NULL. */
static inline char *tok_read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[n] = 0;
    if (size) *size = buf ? (size_t)n : 0;
    return buf;
}

static inline int tok_write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fwrite(data, 1, n, f) == n;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

/* 1 if the tokens' byte ranges tile text[0, len) exactly in order (zero-length tokens such as
 * BOS allowed anywhere), so that concatenating the covered bytes reproduces the input. */
static inline int tok_offsets_tile(const xle_tokens *t, size_t len) {
    size_t at = 0;
    for (int i = 0; i < t->n; i++) {
        if (t->offsets[i] < 0 || t->lengths[i] < 0 || (size_t)t->offsets[i] != at) return 0;
        at += (size_t)t->lengths[i];
    }
    return at == len;
}

#endif
