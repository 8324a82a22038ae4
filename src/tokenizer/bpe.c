/*
 * bpe.c: byte-level BPE (GPT-2, Llama-3, Qwen2 and llama.cpp's other BPE families). The text is
 * split by the pre-tokenizer regexes; each piece starts as one symbol per byte and the adjacent
 * pair with the lowest merge rank is merged first (ties: leftmost), until no pair has a rank.
 * Ranks come from the merge list, or for tiktoken files from the rank of the concatenation
 * itself (every such pair is listed at load). With ignore_merges (Llama-3, tiktoken) a piece
 * that is a token is emitted whole.
 * O(n log n) per piece: a linked list of symbols and a heap of candidate pairs. Pieces seen
 * before in the same call are served from a small per-call cache.
 */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/merge_queue.h"
#include "tokenizer/tokenizer_internal.h"

typedef struct bpe_symbol {
    int32_t id;            /* token id, -1 for a byte the vocabulary lacks */
    int32_t start, len;    /* bytes of the piece; len 0 once merged away */
    int32_t prev, next;
} bpe_symbol;

/* Scratch space reused across the pieces of one call. */
typedef struct bpe_work {
    const xle_tokenizer *tok;
    const char *text;
    const int32_t *orig;
    xle_tok_out *out;
    bpe_symbol *sym;
    size_t sym_cap;
    xle_merge_queue heap;
    int32_t *ids, *lens;      /* the tokens of the piece being encoded */
    size_t ids_cap;
    int have_orphan;          /* input bytes before the first token that no token covers */
    size_t orphan_start;
    xle_tok_cache cache;
} bpe_work;

static int try_pair(bpe_work *w, int32_t left) {
    if (left < 0) return 0;
    const bpe_symbol *l = &w->sym[left];
    if (l->next < 0) return 0;
    const bpe_symbol *r = &w->sym[l->next];
    if (l->id < 0 || r->id < 0) return 0;
    int32_t rank, merged;
    if (!xle_pairmap_get(&w->tok->merges, l->id, r->id, &rank, &merged)) return 0;
    xle_merge_pair p = {.order = rank, .left = left, .right = l->next, .left_id = l->id, .right_id = r->id,
                         .merged = merged};
    return xle_merge_queue_push(&w->heap, p);
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
        if (try_pair(w, i)) return -2;
    while (w->heap.n > 0) {
        xle_merge_pair p = xle_merge_queue_pop(&w->heap);
        bpe_symbol *l = &sym[p.left], *r = &sym[p.right];
        if (l->len == 0 || r->len == 0 || l->next != p.right || l->id != p.left_id || r->id != p.right_id)
            continue; /* stale: one side changed since the pair was queued */
        l->id = p.merged;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = p.left;
        if (try_pair(w, l->prev) || try_pair(w, p.left)) return -2;
    }
    return 0;
}

static int emit_ids(bpe_work *w, size_t start, size_t end) {
    const char *piece = w->text + start;
    int32_t len = (int32_t)(end - start);
    const xle_tokenizer *tok = w->tok;
    if (tok->ignore_merges) {
        int32_t id = xle_strmap_get(&tok->bytes_to_id, piece, (uint32_t)len);
        if (id >= 0) return xle_tok_out_push(w->out, id, (size_t)w->orig[start], (size_t)w->orig[end]);
    }
    const int32_t *ids, *lens;
    int count = xle_tok_cache_get(&w->cache, piece, (size_t)len, &ids, &lens);
    if (count < 0) {
        if (merge_piece(w, piece, len) != 0) return -1;
        if ((size_t)len > w->ids_cap) {
            int32_t *a = realloc(w->ids, (size_t)len * sizeof *a);
            if (!a) return -1;
            w->ids = a;
            if (!(a = realloc(w->lens, (size_t)len * sizeof *a))) return -1;
            w->lens = a;
            w->ids_cap = (size_t)len;
        }
        count = 0;
        int32_t pending = 0; /* bytes with no token and no UNK join the neighbouring token's span */
        for (int32_t i = 0; i >= 0 && i < len; i = w->sym[i].next) {
            const bpe_symbol *s = &w->sym[i];
            int32_t id = s->id >= 0 ? s->id : tok->unk_id;
            if (id < 0) {
                if (count > 0) w->lens[count - 1] += s->len;
                else pending += s->len;
                continue;
            }
            w->ids[count] = id;
            w->lens[count++] = s->len + pending;
            pending = 0;
        }
        if (xle_tok_cache_put(&w->cache, piece, (size_t)len, w->ids, w->lens, count)) return -1;
        ids = w->ids, lens = w->lens;
    }
    if (count == 0) { /* only bytes with no token: the previous token's span takes them in */
        xle_tok_out *o = w->out;
        if (o->n > 0 && o->offsets[o->n - 1] + o->lengths[o->n - 1] == w->orig[start])
            o->lengths[o->n - 1] += w->orig[end] - w->orig[start];
        else if (!w->have_orphan) w->have_orphan = 1, w->orphan_start = (size_t)w->orig[start];
        return 0;
    }
    size_t at = start;
    for (int k = 0; k < count; k++) {
        size_t from = (size_t)w->orig[at];
        if (w->have_orphan) from = w->orphan_start, w->have_orphan = 0; /* leading orphans */
        if (xle_tok_out_push(w->out, ids[k], from, (size_t)w->orig[at + (size_t)lens[k]])) return -1;
        at += (size_t)lens[k];
    }
    return 0;
}

static int on_piece(void *user, size_t start, size_t end) { return emit_ids(user, start, end); }

int xle_bpe_encode(const xle_tokenizer *tok, const char *text, size_t len, const int32_t *orig,
                   xle_tok_out *out) {
    if (len == 0) return 0;
    bpe_work w = {.tok = tok, .text = text, .orig = orig, .out = out};
    if (xle_tok_cache_init(&w.cache) != 0) return -1;
    int rc = xle_pretok_split(tok->pretok, text, len, on_piece, &w);
    xle_tok_cache_free(&w.cache);
    free(w.ids);
    free(w.lens);
    free(w.sym);
    xle_merge_queue_free(&w.heap);
    return rc;
}
