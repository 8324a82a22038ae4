/*
 * spm.c: SentencePiece-style BPE (Llama-2, Mistral v0.1 and their extended-vocabulary
 * derivatives). The normalized text starts as one symbol per UTF-8 character; the adjacent pair
 * whose concatenation is a vocabulary piece with the highest score is merged first (ties: the
 * leftmost pair), until no pair is a piece. Symbols that are not pieces fall back to their
 * bytes as <0xNN> tokens (or UNK without byte tokens). A tokenizer.json BPE model with
 * byte_fallback (Hugging Face's Llama-2 layout) lists merges instead of scores: then only listed
 * pairs merge, lowest rank first. O(n log n): a doubly linked list of symbols and a binary heap
 * of candidate pairs, stale pairs skipped when popped.
 */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/merge_queue.h"
#include "tokenizer/tokenizer_internal.h"

typedef struct spm_symbol {
    int32_t id;           /* piece id, -1 for a character that is not a piece */
    int32_t start, len;   /* bytes of the normalized text; len 0 once merged away */
    int32_t prev, next;   /* -1 at the ends */
} spm_symbol;

/* UTF-8 length from the lead byte, clamped to what is left (invalid bytes count as one). */
static int32_t char_len(const char *s, size_t left) {
    uint8_t c = (uint8_t)s[0];
    size_t n = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 1;
    return (int32_t)(n < left ? n : left);
}

static int try_pair(const xle_tokenizer *tok, const char *text, const spm_symbol *sym, int32_t left,
                    xle_merge_queue *h) {
    if (left < 0 || sym[left].next < 0) return 0;
    const spm_symbol *l = &sym[left], *r = &sym[l->next];
    int32_t len = l->len + r->len, id, rank;
    if (tok->spm_rank_merges) { /* merge list: rank order, only listed pairs */
        if (l->id < 0 || r->id < 0 || !xle_pairmap_get(&tok->merges, l->id, r->id, &rank, &id)) return 0;
        return xle_merge_queue_push(h, (xle_merge_pair){.order = rank, .left = left, .len = len, .merged = id});
    }
    id = xle_strmap_get(&tok->piece_to_id, text + l->start, (uint32_t)len);
    if (id < 0) return 0;
    return xle_merge_queue_push(h, (xle_merge_pair){.order = -(double)tok->entries[id].score, .left = left,
                                                  .len = len, .merged = id});
}

/* Scratch space reused across the words of one call; tokens of the word being encoded are
 * collected as (id, start, length) in normalized coordinates. */
typedef struct spm_work {
    spm_symbol *sym;
    size_t sym_cap;
    xle_merge_queue heap;
    int32_t *ids, *starts, *lens;
    size_t n, cap;
} spm_work;

static int collect(spm_work *w, int32_t id, int32_t start, int32_t len) {
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 64;
        int32_t *a = realloc(w->ids, cap * sizeof *a);
        if (!a) return -1;
        w->ids = a;
        if (!(a = realloc(w->starts, cap * sizeof *a))) return -1;
        w->starts = a;
        if (!(a = realloc(w->lens, cap * sizeof *a))) return -1;
        w->lens = a;
        w->cap = cap;
    }
    w->ids[w->n] = id;
    w->starts[w->n] = start;
    w->lens[w->n++] = len;
    return 0;
}

/* A final symbol as tokens: its piece, else its bytes as <0xNN>, else UNK. */
static int collect_symbol(const xle_tokenizer *tok, const char *text, const spm_symbol *s, spm_work *w) {
    if (s->id >= 0) return collect(w, s->id, s->start, s->len);
    int have_bytes = 1;
    for (int32_t i = 0; i < s->len; i++)
        if (tok->byte_token[(uint8_t)text[s->start + i]] < 0) have_bytes = 0;
    if (!have_bytes) /* no byte fallback: the whole character is unknown */
        return tok->unk_id < 0 ? 0 : collect(w, tok->unk_id, s->start, s->len);
    for (int32_t i = 0; i < s->len; i++)
        if (collect(w, tok->byte_token[(uint8_t)text[s->start + i]], s->start + i, 1)) return -1;
    return 0;
}

/* Runs the merges over text[start, end) and collects its tokens. */
static int encode_range(const xle_tokenizer *tok, const char *text, size_t start, size_t end, spm_work *w) {
    size_t len = end - start;
    if (len > w->sym_cap) {
        spm_symbol *s = realloc(w->sym, len * sizeof *s);
        if (!s) return -1;
        w->sym = s;
        w->sym_cap = len;
    }
    spm_symbol *sym = w->sym;
    int32_t n = 0;
    for (size_t off = start; off < end;) {
        int32_t cl = char_len(text + off, end - off);
        int32_t id = xle_strmap_get(&tok->piece_to_id, text + off, (uint32_t)cl);
        sym[n] = (spm_symbol){id, (int32_t)off, cl, n - 1, -1};
        if (n > 0) sym[n - 1].next = n;
        n++;
        off += (size_t)cl;
    }
    xle_merge_queue *h = &w->heap;
    h->n = 0;
    for (int32_t i = 0; i + 1 < n; i++)
        if (try_pair(tok, text, sym, i, h)) return -1;
    while (h->n > 0) {
        xle_merge_pair p = xle_merge_queue_pop(h);
        spm_symbol *l = &sym[p.left];
        if (l->len == 0 || l->next < 0) continue;
        spm_symbol *r = &sym[l->next];
        if (l->len + r->len != p.len) continue; /* one side changed since it was queued */
        l->id = p.merged;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = p.left;
        if (try_pair(tok, text, sym, l->prev, h) || try_pair(tok, text, sym, p.left, h)) return -1;
    }
    for (int32_t i = 0; i >= 0 && i < n; i = sym[i].next)
        if (collect_symbol(tok, text, &sym[i], w)) return -1;
    return 0;
}

static int emit_collected(const spm_work *w, const int32_t *orig, xle_tok_out *out) {
    for (size_t k = 0; k < w->n; k++)
        if (xle_tok_out_push(out, w->ids[k], (size_t)orig[w->starts[k]], (size_t)orig[w->starts[k] + w->lens[k]]))
            return -1;
    return 0;
}

static int is_meta_space(const char *s, size_t left) {
    return left >= 3 && (uint8_t)s[0] == 0xe2 && (uint8_t)s[1] == 0x96 && (uint8_t)s[2] == 0x81;
}

/* The end of the word starting at start: the next "▁" that follows a character other than "▁". */
static size_t word_end(const char *text, size_t start, size_t len) {
    size_t i = start;
    while (i < len && is_meta_space(text + i, len - i)) i += 3; /* the word's own "▁" run */
    while (i < len && !is_meta_space(text + i, len - i)) i++;
    return i;
}

int xle_spm_encode(const xle_tokenizer *tok, const char *text, size_t len, const int32_t *orig,
                   xle_tok_out *out) {
    if (len == 0) return 0;
    spm_work w = {0};
    int rc = 0;
    if (!tok->spm_word_split) {
        rc = encode_range(tok, text, 0, len, &w);
        if (rc == 0) rc = emit_collected(&w, orig, out);
    } else {
        xle_tok_cache cache;
        rc = xle_tok_cache_init(&cache);
        for (size_t ws = 0, we; rc == 0 && ws < len; ws = we) {
            we = word_end(text, ws, len);
            const int32_t *ids, *lens;
            int count = xle_tok_cache_get(&cache, text + ws, we - ws, &ids, &lens);
            if (count >= 0) {
                size_t p = ws;
                for (int k = 0; k < count && rc == 0; p += (size_t)lens[k], k++)
                    rc = xle_tok_out_push(out, ids[k], (size_t)orig[p], (size_t)orig[p + (size_t)lens[k]]);
                continue;
            }
            w.n = 0;
            rc = encode_range(tok, text, ws, we, &w);
            if (rc == 0) rc = emit_collected(&w, orig, out);
            if (rc == 0) rc = xle_tok_cache_put(&cache, text + ws, we - ws, w.ids, w.lens, (int)w.n);
        }
        xle_tok_cache_free(&cache);
    }
    free(w.sym);
    xle_merge_queue_free(&w.heap);
    free(w.ids);
    free(w.starts);
    free(w.lens);
    return rc;
}
