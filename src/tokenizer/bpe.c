/*
 * bpe.c: byte-level BPE (GPT-2, Llama-3, Qwen2 and llama.cpp's other BPE families). The text is
 * split by the pre-tokenizer regexes; each piece starts as one symbol per byte and the adjacent
 * pair with the lowest merge rank is merged first (ties: leftmost), until no pair has a rank.
 * Ranks come from the merge list, or for tiktoken files from the rank of the concatenation
 * itself. With ignore_merges (Llama-3, tiktoken) a piece that is a token is emitted whole.
 * O(n log n) per piece: a linked list of symbols and a heap of candidate pairs. Pieces seen
 * before in the same call are served from a small per-call cache.
 */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

typedef struct bpe_symbol {
    int32_t id;            /* token id, -1 for a byte the vocabulary lacks */
    int32_t start, len;    /* bytes of the piece; len 0 once merged away */
    int32_t prev, next;
} bpe_symbol;

typedef struct bpe_pair {
    int32_t rank, left, right;
    int32_t left_id, right_id, merged;
} bpe_pair;

typedef struct bpe_heap {
    bpe_pair *a;
    size_t n, cap;
} bpe_heap;

static int pair_before(const bpe_pair *x, const bpe_pair *y) {
    return x->rank < y->rank || (x->rank == y->rank && x->left < y->left);
}

static int heap_push(bpe_heap *h, bpe_pair p) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        bpe_pair *a = realloc(h->a, cap * sizeof *a);
        if (!a) return -1;
        h->a = a;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!pair_before(&p, &h->a[parent])) break;
        h->a[i] = h->a[parent];
        i = parent;
    }
    h->a[i] = p;
    return 0;
}

static bpe_pair heap_pop(bpe_heap *h) {
    bpe_pair top = h->a[0], last = h->a[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && pair_before(&h->a[c + 1], &h->a[c])) c++;
        if (!pair_before(&h->a[c], &last)) break;
        h->a[i] = h->a[c];
        i = c;
    }
    if (h->n) h->a[i] = last;
    return top;
}

/* Scratch space reused across the pieces of one call. */
typedef struct bpe_work {
    const xle_tokenizer *tok;
    const char *text;
    const int32_t *orig;
    xle_tok_out *out;
    bpe_symbol *sym;
    size_t sym_cap;
    bpe_heap heap;
    /* cache: piece bytes -> run of ids (cache_ids[first .. first + count)) */
    xle_strmap cache;
    int32_t *cache_ids;
    size_t cache_n, cache_cap;
    uint32_t *cache_runs; /* per cached key: first << 8 | count (count < 256) */
    size_t runs_n, runs_cap;
} bpe_work;

static int try_pair(bpe_work *w, const char *piece, int32_t left) {
    if (left < 0) return 0;
    const bpe_symbol *l = &w->sym[left];
    if (l->next < 0) return 0;
    const bpe_symbol *r = &w->sym[l->next];
    if (l->id < 0 || r->id < 0) return 0;
    int32_t rank, merged;
    if (w->tok->rank_by_token) {
        merged = xle_strmap_get(&w->tok->bytes_to_id, piece + l->start, (uint32_t)(l->len + r->len));
        if (merged < 0) return 0;
        rank = merged;
    } else if (!xle_pairmap_get(&w->tok->merges, l->id, r->id, &rank, &merged)) {
        return 0;
    }
    return heap_push(&w->heap, (bpe_pair){rank, left, l->next, l->id, r->id, merged});
}

/* Merges piece[0, len) into w->sym; returns the first live symbol or -2 on OOM. */
static int32_t merge_piece(bpe_work *w, const char *piece, int32_t len) {
    if ((size_t)len > w->sym_cap) {
        size_t cap = (size_t)len * 2;
        bpe_symbol *s = realloc(w->sym, cap * sizeof *s);
        if (!s) return -2;
        w->sym = s;
        w->sym_cap = cap;
    }
    bpe_symbol *sym = w->sym;
    for (int32_t i = 0; i < len; i++)
        sym[i] = (bpe_symbol){w->tok->byte_token[(uint8_t)piece[i]], i, 1, i - 1, i + 1 < len ? i + 1 : -1};
    w->heap.n = 0;
    for (int32_t i = 0; i + 1 < len; i++)
        if (try_pair(w, piece, i)) return -2;
    while (w->heap.n > 0) {
        bpe_pair p = heap_pop(&w->heap);
        bpe_symbol *l = &sym[p.left], *r = &sym[p.right];
        if (l->len == 0 || r->len == 0 || l->next != p.right || l->id != p.left_id || r->id != p.right_id)
            continue; /* stale: one side changed since the pair was queued */
        l->id = p.merged;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = p.left;
        if (try_pair(w, piece, l->prev) || try_pair(w, piece, p.left)) return -2;
    }
    return 0;
}

static int emit_ids(bpe_work *w, size_t start, size_t end) {
    const char *piece = w->text + start;
    int32_t len = (int32_t)(end - start);
    const xle_tokenizer *tok = w->tok;
    if (tok->ignore_merges || tok->rank_by_token) {
        int32_t id = xle_strmap_get(&tok->bytes_to_id, piece, (uint32_t)len);
        if (id >= 0) return xle_tok_out_push(w->out, id, (size_t)w->orig[start], (size_t)w->orig[end]);
    }
    /* a piece seen before in this call: same tokens, shifted offsets */
    int32_t cached = xle_strmap_get(&w->cache, piece, (uint32_t)len);
    if (cached >= 0) {
        uint32_t run = w->cache_runs[cached], first = run >> 8, count = run & 0xff;
        size_t at = start;
        for (uint32_t k = 0; k < count; k++) {
            int32_t id = w->cache_ids[first + k];
            size_t n = tok->entries[id].bytes_len;
            if (xle_tok_out_push(w->out, id, (size_t)w->orig[at], (size_t)w->orig[at + n])) return -1;
            at += n;
        }
        return 0;
    }
    if (merge_piece(w, piece, len) != 0) return -1;
    int n_before = w->out->n;
    for (int32_t i = 0; i >= 0 && i < len; i = w->sym[i].next) {
        const bpe_symbol *s = &w->sym[i];
        int32_t id = s->id >= 0 ? s->id : tok->unk_id;
        if (id < 0) continue; /* a byte with no token and no UNK: nothing to emit */
        if (xle_tok_out_push(w->out, id, (size_t)w->orig[start + (size_t)s->start],
                             (size_t)w->orig[start + (size_t)(s->start + s->len)]))
            return -1;
    }
    /* cache pieces whose tokens tile them exactly (no UNK), up to 255 tokens */
    int count = w->out->n - n_before;
    size_t covered = 0;
    for (int k = n_before; k < w->out->n; k++) covered += tok->entries[w->out->ids[k]].bytes_len;
    if (count > 0 && count < 256 && covered == (size_t)len && w->cache_n + (size_t)count < (1u << 24)) {
        if (w->cache_n + (size_t)count > w->cache_cap) {
            size_t cap = (w->cache_cap ? w->cache_cap * 2 : 4096) + (size_t)count;
            int32_t *ids = realloc(w->cache_ids, cap * sizeof *ids);
            if (!ids) return -1;
            w->cache_ids = ids;
            w->cache_cap = cap;
        }
        if (w->runs_n == w->runs_cap) {
            size_t cap = w->runs_cap ? w->runs_cap * 2 : 1024;
            uint32_t *runs = realloc(w->cache_runs, cap * sizeof *runs);
            if (!runs) return -1;
            w->cache_runs = runs;
            w->runs_cap = cap;
        }
        if (xle_strmap_put(&w->cache, piece, (uint32_t)len, (int32_t)w->runs_n, NULL) < 0) return -1;
        w->cache_runs[w->runs_n++] = (uint32_t)(w->cache_n << 8) | (uint32_t)count;
        memcpy(w->cache_ids + w->cache_n, w->out->ids + n_before, (size_t)count * sizeof(int32_t));
        w->cache_n += (size_t)count;
    }
    return 0;
}

static int on_piece(void *user, size_t start, size_t end) { return emit_ids(user, start, end); }

int xle_bpe_encode(const xle_tokenizer *tok, const char *text, size_t len, const int32_t *orig,
                   xle_tok_out *out) {
    if (len == 0) return 0;
    bpe_work w = {.tok = tok, .text = text, .orig = orig, .out = out};
    if (xle_strmap_init(&w.cache, 256) != 0) return -1;
    int rc = xle_pretok_split(tok->pretok, text, len, on_piece, &w);
    xle_strmap_free(&w.cache);
    free(w.cache_ids);
    free(w.cache_runs);
    free(w.sym);
    free(w.heap.a);
    return rc;
}
