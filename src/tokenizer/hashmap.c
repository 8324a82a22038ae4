/*
 * hashmap.c: the hash maps behind every lookup of the tokenizers: byte string -> id (pieces,
 * decoded tokens, the per-call word cache) and (left id, right id) -> (rank, merged id) (merge
 * rules). Open addressing with linear probing, kept at most half full.
 */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

/* ---- hashing ---------------------------------------------------------------------------- */

uint64_t xle_tok_hash(const char *s, size_t n) {
    /* FNV-1a over 8-byte words then bytes, finished with a 64-bit mixer: keys are short. */
    uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    for (; i < n; i++) h = (h ^ (uint8_t)s[i]) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

static uint32_t pow2_at_least(uint32_t n) {
    uint32_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

int xle_strmap_init(xle_strmap *m, uint32_t expected) {
    memset(m, 0, sizeof *m);
    m->cap = pow2_at_least(expected * 2 + 1);
    m->ecap = expected > 0 ? expected : 1;
    m->slots = calloc(m->cap, sizeof *m->slots);
    m->entries = malloc(m->ecap * sizeof *m->entries);
    if (!m->slots || !m->entries) {
        xle_strmap_free(m);
        return -1;
    }
    return 0;
}

void xle_strmap_free(xle_strmap *m) {
    free(m->slots);
    free(m->entries);
    memset(m, 0, sizeof *m);
}

static int strmap_grow(xle_strmap *m) {
    uint32_t ncap = m->cap * 2;
    xle_strmap_slot *slots = calloc(ncap, sizeof *slots);
    if (!slots) return -1;
    for (uint32_t i = 0; i < m->cap; i++) {
        if (!m->slots[i].index) continue;
        const xle_strmap_entry *e = &m->entries[m->slots[i].index - 1];
        uint32_t s = (uint32_t)xle_tok_hash(e->key, e->len) & (ncap - 1);
        while (slots[s].index) s = (s + 1) & (ncap - 1);
        slots[s] = m->slots[i];
    }
    free(m->slots);
    m->slots = slots;
    m->cap = ncap;
    return 0;
}

int xle_strmap_put(xle_strmap *m, const char *key, uint32_t len, int32_t val, int32_t *old) {
    uint64_t h = xle_tok_hash(key, len);
    uint32_t hi = (uint32_t)(h >> 32), s = (uint32_t)h & (m->cap - 1);
    for (; m->slots[s].index; s = (s + 1) & (m->cap - 1)) {
        if (m->slots[s].hash != hi) continue;
        const xle_strmap_entry *e = &m->entries[m->slots[s].index - 1];
        if (e->len == len && memcmp(e->key, key, len) == 0) {
            if (old) *old = e->val;
            return 0;
        }
    }
    if (m->n == m->ecap) {
        uint32_t ne = m->ecap * 2;
        xle_strmap_entry *e = realloc(m->entries, ne * sizeof *e);
        if (!e) return -1;
        m->entries = e;
        m->ecap = ne;
    }
    m->entries[m->n] = (xle_strmap_entry){key, len, val};
    m->slots[s] = (xle_strmap_slot){hi, ++m->n};
    if (m->n * 2 > m->cap && strmap_grow(m) != 0) return -1;
    return 1;
}

int32_t xle_strmap_get(const xle_strmap *m, const char *key, uint32_t len) {
    if (!m->cap) return -1;
    uint64_t h = xle_tok_hash(key, len);
    uint32_t hi = (uint32_t)(h >> 32), s = (uint32_t)h & (m->cap - 1);
    for (; m->slots[s].index; s = (s + 1) & (m->cap - 1)) {
        if (m->slots[s].hash != hi) continue;
        const xle_strmap_entry *e = &m->entries[m->slots[s].index - 1];
        if (e->len == len && memcmp(e->key, key, len) == 0) return e->val;
    }
    return -1;
}

static uint64_t mix64(uint64_t x) {
    x ^= x >> 31;
    x *= 0x7fb5d329728ea185ull;
    x ^= x >> 27;
    x *= 0x81dadef4bc2dd44dull;
    x ^= x >> 33;
    return x;
}

int xle_pairmap_init(xle_pairmap *m, uint32_t expected) {
    memset(m, 0, sizeof *m);
    m->cap = pow2_at_least(expected * 2 + 1);
    m->slots = calloc(m->cap, sizeof *m->slots);
    return m->slots ? 0 : -1;
}

void xle_pairmap_free(xle_pairmap *m) {
    free(m->slots);
    memset(m, 0, sizeof *m);
}

static int pairmap_grow(xle_pairmap *m) {
    uint32_t ncap = m->cap * 2;
    xle_pair_slot *slots = calloc(ncap, sizeof *slots);
    if (!slots) return -1;
    for (uint32_t i = 0; i < m->cap; i++) {
        if (!m->slots[i].key) continue;
        uint32_t s = (uint32_t)mix64(m->slots[i].key) & (ncap - 1);
        while (slots[s].key) s = (s + 1) & (ncap - 1);
        slots[s] = m->slots[i];
    }
    free(m->slots);
    m->slots = slots;
    m->cap = ncap;
    return 0;
}

int xle_pairmap_put(xle_pairmap *m, int32_t left, int32_t right, int32_t rank, int32_t merged) {
    uint64_t key = (((uint64_t)(uint32_t)left << 32) | (uint32_t)right) + 1;
    uint32_t s = (uint32_t)mix64(key) & (m->cap - 1);
    for (; m->slots[s].key; s = (s + 1) & (m->cap - 1))
        if (m->slots[s].key == key) return 0;
    m->slots[s] = (xle_pair_slot){key, rank, merged};
    m->n++;
    if (m->n * 2 > m->cap && pairmap_grow(m) != 0) return -1;
    return 1;
}

int xle_pairmap_get(const xle_pairmap *m, int32_t left, int32_t right, int32_t *rank,
                    int32_t *merged) {
    if (!m->cap) return 0;
    uint64_t key = (((uint64_t)(uint32_t)left << 32) | (uint32_t)right) + 1;
    uint32_t s = (uint32_t)mix64(key) & (m->cap - 1);
    for (; m->slots[s].key; s = (s + 1) & (m->cap - 1))
        if (m->slots[s].key == key) {
            *rank = m->slots[s].rank;
            *merged = m->slots[s].merged;
            return 1;
        }
    return 0;
}
