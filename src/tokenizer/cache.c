/*
 * cache.c: the per-call word cache of the encoders. Natural text repeats its words, so a word
 * (SentencePiece) or pre-token (byte-level) seen before in the same call reuses its tokens and
 * their lengths instead of running the merges again. Keys point into the text being encoded,
 * so a cache lives for one xle_tokenize call (the tokenizer itself stays immutable and can be
 * shared between threads).
 */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

int xle_tok_cache_init(xle_tok_cache *c) {
    memset(c, 0, sizeof *c);
    return xle_strmap_init(&c->map, 16);
}

void xle_tok_cache_free(xle_tok_cache *c) {
    xle_strmap_free(&c->map);
    free(c->ids);
    free(c->lens);
    free(c->runs);
    memset(c, 0, sizeof *c);
}

int xle_tok_cache_get(const xle_tok_cache *c, const char *key, size_t len, const int32_t **ids,
                      const int32_t **lens) {
    int32_t r = xle_strmap_get(&c->map, key, (uint32_t)len);
    if (r < 0) return -1;
    size_t first = c->runs[2 * r];
    *ids = c->ids + first;
    *lens = c->lens + first;
    return (int)c->runs[2 * r + 1];
}

int xle_tok_cache_put(xle_tok_cache *c, const char *key, size_t len, const int32_t *ids,
                      const int32_t *lens, int count) {
    if (count <= 0 || len > UINT32_MAX || c->map.n >= (1u << 20)) return 0; /* not worth keeping */
    if (c->n + (size_t)count > c->cap) {
        size_t cap = c->cap ? c->cap : 4096;
        while (cap < c->n + (size_t)count) cap *= 2;
        int32_t *i2 = realloc(c->ids, cap * sizeof *i2);
        if (!i2) return -1;
        c->ids = i2;
        int32_t *l2 = realloc(c->lens, cap * sizeof *l2);
        if (!l2) return -1;
        c->lens = l2;
        c->cap = cap;
    }
    if (c->n_runs == c->runs_cap) {
        size_t cap = c->runs_cap ? c->runs_cap * 2 : 1024;
        size_t *r2 = realloc(c->runs, 2 * cap * sizeof *r2);
        if (!r2) return -1;
        c->runs = r2;
        c->runs_cap = cap;
    }
    int put = xle_strmap_put(&c->map, key, (uint32_t)len, (int32_t)c->n_runs, NULL);
    if (put <= 0) return put;
    c->runs[2 * c->n_runs] = c->n;
    c->runs[2 * c->n_runs + 1] = (size_t)count;
    c->n_runs++;
    memcpy(c->ids + c->n, ids, (size_t)count * sizeof *ids);
    memcpy(c->lens + c->n, lens, (size_t)count * sizeof *lens);
    c->n += (size_t)count;
    return 0;
}
