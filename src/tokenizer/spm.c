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

#include "tokenizer/tokenizer_internal.h"

typedef struct spm_symbol {
    int32_t id;           /* piece id, -1 for a character that is not a piece */
    int32_t start, len;   /* bytes of the normalized text; len 0 once merged away */
    int32_t prev, next;   /* -1 at the ends */
} spm_symbol;

typedef struct spm_pair {
    float score;
    int32_t left;         /* symbol index */
    int32_t len;          /* combined length when queued: stale if the symbols changed */
    int32_t merged;       /* the piece the pair becomes */
} spm_pair;

typedef struct spm_heap {
    spm_pair *a;
    size_t n, cap;
} spm_heap;

/* Higher score first; equal scores: leftmost first. */
static int pair_before(const spm_pair *x, const spm_pair *y) {
    return x->score > y->score || (x->score == y->score && x->left < y->left);
}

static int heap_push(spm_heap *h, spm_pair p) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 256;
        spm_pair *a = realloc(h->a, cap * sizeof *a);
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

static spm_pair heap_pop(spm_heap *h) {
    spm_pair top = h->a[0], last = h->a[--h->n];
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

/* UTF-8 length from the lead byte, clamped to what is left (invalid bytes count as one). */
static int32_t char_len(const char *s, size_t left) {
    uint8_t c = (uint8_t)s[0];
    size_t n = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 1;
    return (int32_t)(n < left ? n : left);
}

static int try_pair(const xle_tokenizer *tok, const char *text, const spm_symbol *sym, int32_t left,
                    spm_heap *h) {
    if (left < 0 || sym[left].next < 0) return 0;
    const spm_symbol *l = &sym[left], *r = &sym[l->next];
    int32_t len = l->len + r->len, id, rank;
    if (tok->spm_rank_merges) { /* merge list: rank order, only listed pairs */
        if (l->id < 0 || r->id < 0 || !xle_pairmap_get(&tok->merges, l->id, r->id, &rank, &id)) return 0;
        return heap_push(h, (spm_pair){-(float)rank, left, len, id});
    }
    id = xle_strmap_get(&tok->piece_to_id, text + l->start, (uint32_t)len);
    if (id < 0) return 0;
    return heap_push(h, (spm_pair){tok->entries[id].score, left, len, id});
}

static int emit_symbol(const xle_tokenizer *tok, const char *text, const int32_t *orig,
                       const spm_symbol *s, xle_tok_out *out) {
    if (s->id >= 0) return xle_tok_out_push(out, s->id, (size_t)orig[s->start], (size_t)orig[s->start + s->len]);
    int have_bytes = 1;
    for (int32_t i = 0; i < s->len; i++)
        if (tok->byte_token[(uint8_t)text[s->start + i]] < 0) have_bytes = 0;
    if (!have_bytes) /* no byte fallback: the whole character is unknown */
        return tok->unk_id < 0 ? 0
             : xle_tok_out_push(out, tok->unk_id, (size_t)orig[s->start], (size_t)orig[s->start + s->len]);
    for (int32_t i = 0; i < s->len; i++) {
        int32_t p = s->start + i;
        if (xle_tok_out_push(out, tok->byte_token[(uint8_t)text[p]], (size_t)orig[p], (size_t)orig[p + 1]) != 0)
            return -1;
    }
    return 0;
}

int xle_spm_encode(const xle_tokenizer *tok, const char *text, size_t len, const int32_t *orig,
                   xle_tok_out *out) {
    if (len == 0) return 0;
    spm_symbol *sym = malloc(len * sizeof *sym);
    spm_heap h = {0};
    if (!sym) return -1;
    int32_t n = 0;
    for (size_t off = 0; off < len;) {
        int32_t cl = char_len(text + off, len - off);
        int32_t id = xle_strmap_get(&tok->piece_to_id, text + off, (uint32_t)cl);
        sym[n] = (spm_symbol){id, (int32_t)off, cl, n - 1, -1};
        if (n > 0) sym[n - 1].next = n;
        n++;
        off += (size_t)cl;
    }
    int rc = 0;
    for (int32_t i = 0; i + 1 < n && rc == 0; i++) rc = try_pair(tok, text, sym, i, &h);
    while (h.n > 0 && rc == 0) {
        spm_pair p = heap_pop(&h);
        spm_symbol *l = &sym[p.left];
        if (l->len == 0 || l->next < 0) continue;
        spm_symbol *r = &sym[l->next];
        if (l->len + r->len != p.len) continue; /* one side changed since it was queued */
        l->id = p.merged;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = p.left;
        rc = try_pair(tok, text, sym, l->prev, &h);
        if (rc == 0) rc = try_pair(tok, text, sym, p.left, &h);
    }
    for (int32_t i = 0; i >= 0 && i < n && rc == 0; i = sym[i].next) rc = emit_symbol(tok, text, orig, &sym[i], out);
    free(h.a);
    free(sym);
    return rc;
}
