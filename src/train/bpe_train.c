/*
 * bpe_train.c: learns a SentencePiece-style byte-fallback BPE vocabulary from plain text (one
 * sentence or document per line), the kind Llama-2 uses, and writes it as a Hugging Face
 * tokenizer.json in the Llama-2 layout (docs/training.md §1).
 *
 * Text is normalized as the tokenizer.json's normalizer will do it at encoding time: "▁" is
 * prepended to each line and every " " becomes "▁". The normalized line is cut before each "▁"
 * into words (SentencePiece's whitespace split), so no merge ever crosses a word start and
 * encoding a whole line with the merges (HF's BPE model, pre_tokenizer null) gives the same
 * pieces as encoding word by word. Characters seen fewer than min_char_count times are left out
 * of the vocabulary: they act as barriers here and become <0xXX> byte tokens at encoding time.
 *
 * Merges: the most frequent adjacent pair of symbols (counted over word types times their
 * frequency) is merged next; ties go to the pair whose left piece, then right piece, is smaller
 * in byte order. Pair counts are kept up to date incrementally (only words that contain the
 * merged pair are revisited, found through a per-pair word list), with a max-heap of pair counts
 * whose stale entries are skipped when popped, so a few MB train in seconds.
 *
 * Ids: <unk> 0, <s> 1, </s> 2, <0x00>..<0xFF> 3..258, then merged pieces in merge order, then
 * the single characters by falling frequency (the order of Llama-2's vocabulary). Scores are
 * -rank for merged pieces, -(n_merged + i) for the i-th character, 0 for special and byte tokens.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/outpath.h"
#include "train/train_internal.h"

#define WORD_START "\xe2\x96\x81" /* U+2581 LOWER ONE EIGHTH BLOCK, SentencePiece's space */
#define WORD_START_LEN 3
#define N_SPECIAL 3
#define N_BYTES 256
#define FIRST_LEARNED (N_SPECIAL + N_BYTES)
#define BARRIER (-1) /* a character outside the vocabulary: never part of a pair */

/* ---- a string -> int hash map (open addressing, keys owned elsewhere) -------------------- */

typedef struct str_map {
    const char **keys;
    size_t *lens;
    int *vals;
    size_t cap, n;
} str_map;

static uint64_t fnv1a(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

static int str_map_init(str_map *m, size_t cap) {
    m->cap = cap;
    m->n = 0;
    m->keys = calloc(cap, sizeof *m->keys);
    m->lens = calloc(cap, sizeof *m->lens);
    m->vals = calloc(cap, sizeof *m->vals);
    return m->keys && m->lens && m->vals;
}

static void str_map_free(str_map *m) {
    free(m->keys);
    free(m->lens);
    free(m->vals);
}

/* The slot of key (found or empty). */
static size_t str_map_slot(const str_map *m, const char *k, size_t n) {
    size_t i = fnv1a(k, n) & (m->cap - 1);
    while (m->keys[i] && !(m->lens[i] == n && memcmp(m->keys[i], k, n) == 0)) i = (i + 1) & (m->cap - 1);
    return i;
}

static int str_map_get(const str_map *m, const char *k, size_t n, int *val) {
    size_t i = str_map_slot(m, k, n);
    if (!m->keys[i]) return 0;
    *val = m->vals[i];
    return 1;
}

/* Inserts (key must not be present); grows at half load. Returns 0 on allocation failure. */
static int str_map_put(str_map *m, const char *k, size_t n, int val) {
    if (2 * (m->n + 1) > m->cap) {
        str_map big;
        if (!str_map_init(&big, 2 * m->cap)) {
            str_map_free(&big);
            return 0;
        }
        for (size_t i = 0; i < m->cap; i++)
            if (m->keys[i]) {
                size_t j = str_map_slot(&big, m->keys[i], m->lens[i]);
                big.keys[j] = m->keys[i], big.lens[j] = m->lens[i], big.vals[j] = m->vals[i];
            }
        big.n = m->n;
        str_map_free(m);
        *m = big;
    }
    size_t i = str_map_slot(m, k, n);
    m->keys[i] = k, m->lens[i] = n, m->vals[i] = val;
    m->n++;
    return 1;
}

/* ---- the trainer's state ---------------------------------------------------------------- */

typedef struct pair_info {
    int32_t left, right;
    int64_t count;
    int forbidden;       /* the merge would spell a special or byte token's name */
    int *words;          /* word indices that may contain the pair (duplicates possible) */
    int n_words, cap_words;
} pair_info;

typedef struct heap_entry {
    int64_t count;
    int pair;
} heap_entry;

typedef struct trainer {
    /* symbols (pieces) */
    char **pieces;
    size_t *piece_lens;
    int n_pieces, cap_pieces;
    str_map piece_ids;           /* piece string -> symbol id (also holds reserved names) */
    /* words */
    int32_t *syms;               /* all words' symbols, word w at syms[word_start[w]] */
    int64_t *word_start;
    int *word_len;
    int64_t *word_count;
    int *word_stamp;             /* last merge that visited the word */
    int n_words;
    /* pairs */
    pair_info *pairs;
    int n_pairs, cap_pairs;
    int64_t *pair_keys;          /* open addressing: (left << 32 | right) + 1, 0 = empty */
    int *pair_slots;
    size_t pair_cap;
    heap_entry *heap;
    size_t heap_n, heap_cap;
} trainer;

static int add_piece(trainer *t, const char *s, size_t n) {
    if (t->n_pieces == t->cap_pieces) {
        int cap = t->cap_pieces ? 2 * t->cap_pieces : 1024;
        char **p = realloc(t->pieces, (size_t)cap * sizeof *p);
        if (!p) return -1;
        t->pieces = p;
        size_t *l = realloc(t->piece_lens, (size_t)cap * sizeof *l);
        if (!l) return -1;
        t->piece_lens = l;
        t->cap_pieces = cap;
    }
    char *copy = malloc(n + 1);
    if (!copy) return -1;
    memcpy(copy, s, n);
    copy[n] = 0;
    int id = t->n_pieces;
    t->pieces[id] = copy;
    t->piece_lens[id] = n;
    t->n_pieces++;
    if (!str_map_put(&t->piece_ids, copy, n, id)) return -1;
    return id;
}

/* Pair table: find or create the pair (left, right); -1 on allocation failure. */
static int pair_index(trainer *t, int32_t left, int32_t right, int create) {
    if (2 * (size_t)(t->n_pairs + 1) > t->pair_cap) {
        size_t cap = t->pair_cap ? 2 * t->pair_cap : 1 << 16;
        int64_t *keys = calloc(cap, sizeof *keys);
        int *slots = malloc(cap * sizeof *slots);
        if (!keys || !slots) {
            free(keys), free(slots);
            return -1;
        }
        for (size_t i = 0; i < t->pair_cap; i++)
            if (t->pair_keys[i]) {
                size_t j = (size_t)(t->pair_keys[i] * 0x9e3779b97f4a7c15ull >> 20) & (cap - 1);
                while (keys[j]) j = (j + 1) & (cap - 1);
                keys[j] = t->pair_keys[i];
                slots[j] = t->pair_slots[i];
            }
        free(t->pair_keys);
        free(t->pair_slots);
        t->pair_keys = keys;
        t->pair_slots = slots;
        t->pair_cap = cap;
    }
    int64_t key = ((int64_t)left << 32 | (uint32_t)right) + 1;
    size_t j = (size_t)((uint64_t)key * 0x9e3779b97f4a7c15ull >> 20) & (t->pair_cap - 1);
    while (t->pair_keys[j] && t->pair_keys[j] != key) j = (j + 1) & (t->pair_cap - 1);
    if (t->pair_keys[j]) return t->pair_slots[j];
    if (!create) return -2;
    if (t->n_pairs == t->cap_pairs) {
        int cap = t->cap_pairs ? 2 * t->cap_pairs : 1 << 15;
        pair_info *p = realloc(t->pairs, (size_t)cap * sizeof *p);
        if (!p) return -1;
        t->pairs = p;
        t->cap_pairs = cap;
    }
    int id = t->n_pairs++;
    memset(&t->pairs[id], 0, sizeof t->pairs[id]);
    t->pairs[id].left = left;
    t->pairs[id].right = right;
    /* A merge that would spell "<s>" or "<0x41>" would collide with a reserved token. */
    char buf[16];
    size_t a = t->piece_lens[left], b = t->piece_lens[right];
    if (a + b < sizeof buf) {
        memcpy(buf, t->pieces[left], a);
        memcpy(buf + a, t->pieces[right], b);
        int existing;
        if (str_map_get(&t->piece_ids, buf, a + b, &existing) && existing < 0) t->pairs[id].forbidden = 1;
    }
    t->pair_keys[j] = key;
    t->pair_slots[j] = id;
    return id;
}

static int pair_add_word(pair_info *p, int word) {
    if (p->n_words && p->words[p->n_words - 1] == word) return 1;
    if (p->n_words == p->cap_words) {
        int cap = p->cap_words ? 2 * p->cap_words : 4;
        int *w = realloc(p->words, (size_t)cap * sizeof *w);
        if (!w) return 0;
        p->words = w;
        p->cap_words = cap;
    }
    p->words[p->n_words++] = word;
    return 1;
}

/* Heap order: larger count first, then smaller left piece, then smaller right piece. */
static int piece_cmp(const trainer *t, int32_t a, int32_t b) {
    size_t la = t->piece_lens[a], lb = t->piece_lens[b];
    int c = memcmp(t->pieces[a], t->pieces[b], la < lb ? la : lb);
    if (c) return c;
    return la < lb ? -1 : la > lb;
}

static int heap_before(const trainer *t, const heap_entry *x, const heap_entry *y) {
    if (x->count != y->count) return x->count > y->count;
    const pair_info *p = &t->pairs[x->pair], *q = &t->pairs[y->pair];
    int c = piece_cmp(t, p->left, q->left);
    if (c) return c < 0;
    return piece_cmp(t, p->right, q->right) < 0;
}

static int heap_push(trainer *t, int pair) {
    if (t->heap_n == t->heap_cap) {
        size_t cap = t->heap_cap ? 2 * t->heap_cap : 1 << 15;
        heap_entry *h = realloc(t->heap, cap * sizeof *h);
        if (!h) return 0;
        t->heap = h;
        t->heap_cap = cap;
    }
    size_t i = t->heap_n++;
    t->heap[i] = (heap_entry){t->pairs[pair].count, pair};
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!heap_before(t, &t->heap[i], &t->heap[parent])) break;
        heap_entry tmp = t->heap[i];
        t->heap[i] = t->heap[parent];
        t->heap[parent] = tmp;
        i = parent;
    }
    return 1;
}

static heap_entry heap_pop(trainer *t) {
    heap_entry top = t->heap[0];
    t->heap[0] = t->heap[--t->heap_n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, best = i;
        if (l < t->heap_n && heap_before(t, &t->heap[l], &t->heap[best])) best = l;
        if (r < t->heap_n && heap_before(t, &t->heap[r], &t->heap[best])) best = r;
        if (best == i) break;
        heap_entry tmp = t->heap[i];
        t->heap[i] = t->heap[best];
        t->heap[best] = tmp;
        i = best;
    }
    return top;
}

static void trainer_free(trainer *t) {
    for (int i = 0; i < t->n_pieces; i++) free(t->pieces[i]);
    free(t->pieces);
    free(t->piece_lens);
    str_map_free(&t->piece_ids);
    free(t->syms);
    free(t->word_start);
    free(t->word_len);
    free(t->word_count);
    free(t->word_stamp);
    for (int i = 0; i < t->n_pairs; i++) free(t->pairs[i].words);
    free(t->pairs);
    free(t->pair_keys);
    free(t->pair_slots);
    free(t->heap);
}

/* ---- reading the text ------------------------------------------------------------------- */

/* Length of the UTF-8 sequence starting at s (1 for an invalid lead or truncated sequence, so
 * that bad bytes become single-byte "characters" that fall back to byte tokens). */
static size_t utf8_len(const unsigned char *s, size_t avail) {
    size_t n = s[0] < 0x80 ? 1 : (s[0] >> 5) == 6 ? 2 : (s[0] >> 4) == 14 ? 3 : (s[0] >> 3) == 30 ? 4 : 1;
    if (n > avail) return 1;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80) return 1;
    return n;
}

typedef struct word_table {
    str_map index;               /* normalized word -> word id */
    char **text;                 /* owned normalized words */
    size_t *len;
    int64_t *count;
    int n, cap;
} word_table;

static void word_table_free(word_table *wt) {
    for (int i = 0; i < wt->n; i++) free(wt->text[i]);
    free(wt->text);
    free(wt->len);
    free(wt->count);
    str_map_free(&wt->index);
}

static int word_table_add(word_table *wt, const char *w, size_t n) {
    int id;
    if (str_map_get(&wt->index, w, n, &id)) {
        wt->count[id]++;
        return 1;
    }
    if (wt->n == wt->cap) {
        int cap = wt->cap ? 2 * wt->cap : 4096;
        char **t = realloc(wt->text, (size_t)cap * sizeof *t);
        if (!t) return 0;
        wt->text = t;
        size_t *l = realloc(wt->len, (size_t)cap * sizeof *l);
        if (!l) return 0;
        wt->len = l;
        int64_t *c = realloc(wt->count, (size_t)cap * sizeof *c);
        if (!c) return 0;
        wt->count = c;
        wt->cap = cap;
    }
    char *copy = malloc(n + 1);
    if (!copy) return 0;
    memcpy(copy, w, n);
    copy[n] = 0;
    wt->text[wt->n] = copy;
    wt->len[wt->n] = n;
    wt->count[wt->n] = 1;
    if (!str_map_put(&wt->index, copy, n, wt->n)) return 0;
    wt->n++;
    return 1;
}

/* Splits every line of text into normalized words and counts them. */
static int collect_words(const char *text, size_t len, word_table *wt) {
    size_t cap = 256;
    char *norm = malloc(cap);
    if (!norm) return 0;
    size_t pos = 0;
    while (pos < len) {
        size_t end = pos;
        while (end < len && text[end] != '\n') end++;
        size_t line_end = end;
        if (line_end > pos && text[line_end - 1] == '\r') line_end--;
        if (line_end > pos) {
            /* normalize: "▁" + line with ' ' -> "▁" */
            size_t need = WORD_START_LEN * (line_end - pos + 1);
            if (need > cap) {
                char *p = realloc(norm, need);
                if (!p) {
                    free(norm);
                    return 0;
                }
                norm = p;
                cap = need;
            }
            size_t n = 0;
            memcpy(norm, WORD_START, WORD_START_LEN);
            n = WORD_START_LEN;
            for (size_t i = pos; i < line_end; i++) {
                if (text[i] == ' ') {
                    memcpy(norm + n, WORD_START, WORD_START_LEN);
                    n += WORD_START_LEN;
                } else {
                    norm[n++] = text[i];
                }
            }
            /* words start at each "▁" */
            size_t w0 = 0;
            for (size_t i = WORD_START_LEN; i <= n; i++) {
                if (i == n || (i + WORD_START_LEN <= n && memcmp(norm + i, WORD_START, WORD_START_LEN) == 0)) {
                    if (!word_table_add(wt, norm + w0, i - w0)) {
                        free(norm);
                        return 0;
                    }
                    w0 = i;
                }
            }
        }
        pos = end + 1;
    }
    free(norm);
    return 1;
}

/* ---- training ---------------------------------------------------------------------------- */

typedef struct char_count {
    const char *s;
    size_t len;
    int64_t count;
} char_count;

static int cmp_char_count(const void *a, const void *b) {
    const char_count *x = a, *y = b;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->s, y->s, n);
    if (c) return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

/* Subtracts (sign -1) or adds (+1) the word's pairs to the counts; when adding, the word is
 * registered with the pairs that contain `fresh` (a new symbol), and changed pairs are pushed
 * to the heap. Returns 0 on allocation failure. */
static int word_pairs_update(trainer *t, int w, int sign, int32_t fresh) {
    const int32_t *s = t->syms + t->word_start[w];
    for (int i = 0; i + 1 < t->word_len[w]; i++) {
        if (s[i] == BARRIER || s[i + 1] == BARRIER) continue;
        int p = pair_index(t, s[i], s[i + 1], 1);
        if (p < 0) return 0;
        t->pairs[p].count += sign * t->word_count[w];
        if (sign > 0 && (s[i] == fresh || s[i + 1] == fresh)) {
            if (!pair_add_word(&t->pairs[p], w)) return 0;
            if (!heap_push(t, p)) return 0;
        }
    }
    return 1;
}

/* Replaces each leftmost non-overlapping (left, right) in word w by merged. */
static void word_merge(trainer *t, int w, int32_t left, int32_t right, int32_t merged) {
    int32_t *s = t->syms + t->word_start[w];
    int n = t->word_len[w], out = 0;
    for (int i = 0; i < n; i++) {
        if (i + 1 < n && s[i] == left && s[i + 1] == right) {
            s[out++] = merged;
            i++;
        } else {
            s[out++] = s[i];
        }
    }
    t->word_len[w] = out;
}

static xle_status build_words(trainer *t, const word_table *wt, int min_char_count, int max_chars,
                              xle_bpe_vocab *v, xle_error *err) {
    /* Count characters (weighted by word frequency). */
    str_map chars;
    char_count *cc = NULL;
    int n_chars = 0, cap_chars = 0;
    xle_status st = XLE_OK;
    if (!str_map_init(&chars, 1024)) {
        str_map_free(&chars);
        return xle_fail(err, XLE_ERR_NOMEM, "train-tokenizer: out of memory");
    }
    int64_t total_syms = 0;
    for (int w = 0; w < wt->n && st == XLE_OK; w++) {
        const unsigned char *s = (const unsigned char *)wt->text[w];
        for (size_t i = 0; i < wt->len[w];) {
            size_t n = utf8_len(s + i, wt->len[w] - i);
            int id;
            if (str_map_get(&chars, (const char *)s + i, n, &id)) {
                cc[id].count += wt->count[w];
            } else {
                if (n_chars == cap_chars) {
                    cap_chars = cap_chars ? 2 * cap_chars : 1024;
                    char_count *p = realloc(cc, (size_t)cap_chars * sizeof *cc);
                    if (!p) {
                        st = xle_fail(err, XLE_ERR_NOMEM, "train-tokenizer: out of memory");
                        break;
                    }
                    cc = p;
                }
                cc[n_chars] = (char_count){(const char *)s + i, n, wt->count[w]};
                if (!str_map_put(&chars, (const char *)s + i, n, n_chars)) {
                    st = xle_fail(err, XLE_ERR_NOMEM, "train-tokenizer: out of memory");
                    break;
                }
                n_chars++;
            }
            i += n;
            total_syms++;
        }
    }
    str_map_free(&chars);
    if (st != XLE_OK) {
        free(cc);
        return st;
    }
    qsort(cc, (size_t)n_chars, sizeof *cc, cmp_char_count);
    int kept = 0;
    while (kept < n_chars && cc[kept].count >= min_char_count) kept++;
    v->n_chars_seen = n_chars;
    if (kept > max_chars) {
        free(cc);
        return xle_fail(err, XLE_ERR_ARG, "train-tokenizer: --vocab-size: %d characters occur at least %d "
                        "times, more than the %d places left after the %d special and byte tokens; "
                        "raise --vocab-size or --min-char-count", kept, min_char_count, max_chars, FIRST_LEARNED);
    }
    /* Single characters become the first symbols, most frequent first. */
    for (int i = 0; i < kept; i++)
        if (add_piece(t, cc[i].s, cc[i].len) < 0) {
            free(cc);
            return xle_fail(err, XLE_ERR_NOMEM, "train-tokenizer: out of memory");
        }
    v->n_chars = kept;
    free(cc);

    /* Words as symbol sequences. */
    t->n_words = wt->n;
    t->syms = malloc((size_t)(total_syms ? total_syms : 1) * sizeof *t->syms);
    t->word_start = malloc((size_t)(wt->n + 1) * sizeof *t->word_start);
    t->word_len = malloc((size_t)(wt->n + 1) * sizeof *t->word_len);
    t->word_count = malloc((size_t)(wt->n + 1) * sizeof *t->word_count);
    t->word_stamp = calloc((size_t)(wt->n + 1), sizeof *t->word_stamp);
    if (!t->syms || !t->word_start || !t->word_len || !t->word_count || !t->word_stamp)
        return xle_fail(err, XLE_ERR_NOMEM, "train-tokenizer: out of memory");
    int64_t off = 0;
    for (int w = 0; w < wt->n; w++) {
        const char *s = wt->text[w];
        t->word_start[w] = off;
        t->word_count[w] = wt->count[w];
        int n = 0;
        for (size_t i = 0; i < wt->len[w];) {
            size_t k = utf8_len((const unsigned char *)s + i, wt->len[w] - i);
            int id;
            t->syms[off + n++] = str_map_get(&t->piece_ids, s + i, k, &id) && id >= 0 ? id : BARRIER;
            i += k;
        }
        t->word_len[w] = n;
        off += n;
    }
    return XLE_OK;
}

static xle_status train_merges(trainer *t, int target_pieces, xle_bpe_vocab *v, xle_error *err) {
    for (int w = 0; w < t->n_words; w++)
        if (!word_pairs_update(t, w, +1, BARRIER - 1)) goto nomem;
    /* Every pair once on the heap (word_pairs_update pushes only pairs with a fresh symbol). */
    for (int p = 0; p < t->n_pairs; p++)
        if (!heap_push(t, p)) goto nomem;
    /* word lists for the initial pairs */
    for (int w = 0; w < t->n_words; w++) {
        const int32_t *s = t->syms + t->word_start[w];
        for (int i = 0; i + 1 < t->word_len[w]; i++) {
            if (s[i] == BARRIER || s[i + 1] == BARRIER) continue;
            int p = pair_index(t, s[i], s[i + 1], 0);
            if (!pair_add_word(&t->pairs[p], w)) goto nomem;
        }
    }
    int stamp = 0;
    while (t->n_pieces < target_pieces && t->heap_n > 0) {
        heap_entry e = heap_pop(t);
        pair_info *p = &t->pairs[e.pair];
        if (e.count != p->count) {
            /* Stale: a decrease pushes nothing, so re-queue the current count; an increase
             * already pushed a fresh entry. */
            if (p->count > 0 && e.count > p->count && !heap_push(t, e.pair)) goto nomem;
            continue;
        }
        if (p->count <= 0 || p->forbidden) continue;
        int32_t left = p->left, right = p->right;
        size_t la = t->piece_lens[left], lb = t->piece_lens[right];
        char *joined = malloc(la + lb + 1);
        if (!joined) goto nomem;
        memcpy(joined, t->pieces[left], la);
        memcpy(joined + la, t->pieces[right], lb);
        int merged;
        if (!str_map_get(&t->piece_ids, joined, la + lb, &merged)) merged = add_piece(t, joined, la + lb);
        free(joined);
        if (merged < 0) goto nomem;
        /* Record the merge. */
        if (v->n_merges == v->cap_merges) {
            int cap = v->cap_merges ? 2 * v->cap_merges : 1024;
            int32_t(*m)[3] = realloc(v->merges, (size_t)cap * sizeof *m);
            if (!m) goto nomem;
            v->merges = m;
            v->cap_merges = cap;
        }
        v->merges[v->n_merges][0] = left;
        v->merges[v->n_merges][1] = right;
        v->merges[v->n_merges][2] = merged;
        v->n_merges++;
        stamp++;
        /* Revisit the words that contain the pair. The list may grow while we walk it (a word
         * can hold the pair again, e.g. "a a" -> "aa" when merged == left), so index it. */
        int pair_id = e.pair;
        for (int i = 0; i < t->pairs[pair_id].n_words; i++) {
            int w = t->pairs[pair_id].words[i];
            if (t->word_stamp[w] == stamp) continue;
            t->word_stamp[w] = stamp;
            if (!word_pairs_update(t, w, -1, 0)) goto nomem;
            word_merge(t, w, left, right, merged);
            if (!word_pairs_update(t, w, +1, merged)) goto nomem;
        }
        /* Every occurrence is merged; the list is no longer needed. */
        free(t->pairs[pair_id].words);
        t->pairs[pair_id].words = NULL;
        t->pairs[pair_id].n_words = t->pairs[pair_id].cap_words = 0;
    }
    return XLE_OK;
nomem:
    return xle_fail(err, XLE_ERR_NOMEM, "train-tokenizer: out of memory");
}

static int reserve_name(trainer *t, const char *name) {
    /* Reserved names map to negative ids so that no learned piece may take them. */
    char *copy = strdup(name);
    if (!copy) return 0;
    int id = -2 - (int)t->piece_ids.n;
    if (!str_map_put(&t->piece_ids, copy, strlen(copy), id)) {
        free(copy);
        return 0;
    }
    return 1;
}

/* Assembles the vocabulary in id order from the trainer's symbols. */
static xle_status assemble(trainer *t, xle_bpe_vocab *v, xle_error *err) {
    const int n_learned = t->n_pieces - v->n_chars;
    v->n = FIRST_LEARNED + t->n_pieces;
    v->pieces = calloc((size_t)v->n, sizeof *v->pieces);
    v->scores = calloc((size_t)v->n, sizeof *v->scores);
    int *id_of_sym = malloc((size_t)(t->n_pieces ? t->n_pieces : 1) * sizeof *id_of_sym);
    if (!v->pieces || !v->scores || !id_of_sym) {
        free(id_of_sym);
        return xle_fail(err, XLE_ERR_NOMEM, "train-tokenizer: out of memory");
    }
    const char *special[N_SPECIAL] = {"<unk>", "<s>", "</s>"};
    for (int i = 0; i < N_SPECIAL; i++) v->pieces[i] = strdup(special[i]);
    for (int b = 0; b < N_BYTES; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        v->pieces[N_SPECIAL + b] = strdup(name);
    }
    /* learned pieces (symbols n_chars..) first, in merge order; then the characters */
    for (int s = v->n_chars; s < t->n_pieces; s++) id_of_sym[s] = FIRST_LEARNED + (s - v->n_chars);
    for (int s = 0; s < v->n_chars; s++) id_of_sym[s] = FIRST_LEARNED + n_learned + s;
    for (int s = 0; s < t->n_pieces; s++) {
        int id = id_of_sym[s];
        v->pieces[id] = strdup(t->pieces[s]);
        v->scores[id] = -(float)(id - FIRST_LEARNED);
    }
    for (int i = 0; i < v->n; i++)
        if (!v->pieces[i]) {
            free(id_of_sym);
            return xle_fail(err, XLE_ERR_NOMEM, "train-tokenizer: out of memory");
        }
    for (int m = 0; m < v->n_merges; m++)
        for (int k = 0; k < 3; k++) v->merges[m][k] = id_of_sym[v->merges[m][k]];
    free(id_of_sym);
    return XLE_OK;
}

void xle_bpe_train_opts_default(xle_bpe_train_opts *o) {
    memset(o, 0, sizeof *o);
    o->vocab_size = 4000;
    o->min_char_count = 2;
}

xle_status xle_bpe_train_text(const char *text, size_t len, const xle_bpe_train_opts *opts,
                              xle_bpe_vocab **out, xle_error *err) {
    *out = NULL;
    if (opts->vocab_size <= FIRST_LEARNED || opts->vocab_size > (1 << 24))
        return xle_fail(err, XLE_ERR_ARG, "train-tokenizer: --vocab-size: %d is outside [%d, %d]",
                        opts->vocab_size, FIRST_LEARNED + 1, 1 << 24);
    if (opts->min_char_count < 1)
        return xle_fail(err, XLE_ERR_ARG, "train-tokenizer: --min-char-count: %d must be at least 1",
                        opts->min_char_count);
    xle_bpe_vocab *v = calloc(1, sizeof *v);
    trainer t;
    memset(&t, 0, sizeof t);
    word_table wt;
    memset(&wt, 0, sizeof wt);
    xle_status st = XLE_OK;
    if (!v || !str_map_init(&t.piece_ids, 1024) || !str_map_init(&wt.index, 1 << 14)) {
        st = xle_fail(err, XLE_ERR_NOMEM, "train-tokenizer: out of memory");
        goto done;
    }
    {
        /* Names the learned pieces must never take. */
        int ok = reserve_name(&t, "<unk>") && reserve_name(&t, "<s>") && reserve_name(&t, "</s>");
        for (int b = 0; ok && b < N_BYTES; b++) {
            char name[8];
            snprintf(name, sizeof name, "<0x%02X>", b);
            ok = reserve_name(&t, name);
        }
        if (!ok) {
            st = xle_fail(err, XLE_ERR_NOMEM, "train-tokenizer: out of memory");
            goto done;
        }
    }
    if (!collect_words(text, len, &wt)) {
        st = xle_fail(err, XLE_ERR_NOMEM, "train-tokenizer: out of memory");
        goto done;
    }
    if (wt.n == 0) {
        st = xle_fail(err, XLE_ERR_ARG, "train-tokenizer: the corpus has no text");
        goto done;
    }
    st = build_words(&t, &wt, opts->min_char_count, opts->vocab_size - FIRST_LEARNED, v, err);
    if (st == XLE_OK) st = train_merges(&t, opts->vocab_size - FIRST_LEARNED, v, err);
    if (st == XLE_OK) st = assemble(&t, v, err);
    if (st == XLE_OK) {
        v->n_word_types = wt.n;
        for (int w = 0; w < wt.n; w++) v->n_words += wt.count[w];
        v->n_bytes = (int64_t)len;
    }
done:
    /* reserved names were strdup'd keys with negative ids; free them with the map */
    for (size_t i = 0; i < t.piece_ids.cap && t.piece_ids.keys; i++)
        if (t.piece_ids.keys[i] && t.piece_ids.vals[i] < 0) free((char *)t.piece_ids.keys[i]);
    trainer_free(&t);
    word_table_free(&wt);
    if (st != XLE_OK) {
        xle_bpe_vocab_free(v);
        return st;
    }
    *out = v;
    return XLE_OK;
}

void xle_bpe_vocab_free(xle_bpe_vocab *v) {
    if (!v) return;
    for (int i = 0; v->pieces && i < v->n; i++) free(v->pieces[i]);
    free(v->pieces);
    free(v->scores);
    free(v->merges);
    free(v);
}

xle_status xle_read_whole_file(const char *path, char **data, size_t *len, xle_error *err) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return xle_fail(err, XLE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return xle_fail(err, XLE_ERR_IO, "%s: not a regular file", path);
    }
    char *buf = malloc((size_t)sb.st_size + 1);
    if (!buf) {
        close(fd);
        return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory for %lld bytes", path, (long long)sb.st_size);
    }
    size_t got = 0;
    while (got < (size_t)sb.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)sb.st_size - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            free(buf);
            close(fd);
            return xle_fail(err, XLE_ERR_IO, "%s: read failed: %s", path, n ? strerror(errno) : "file shrank");
        }
        got += (size_t)n;
    }
    close(fd);
    buf[got] = 0;
    *data = buf;
    *len = got;
    return XLE_OK;
}

xle_status xle_bpe_train_files(const char *const *paths, int n_paths, const xle_bpe_train_opts *opts,
                               xle_bpe_vocab **out, xle_error *err) {
    *out = NULL;
    if (n_paths <= 0) return xle_fail(err, XLE_ERR_ARG, "train-tokenizer: no corpus file given");
    char *all = NULL;
    size_t total = 0;
    for (int i = 0; i < n_paths; i++) {
        char *data;
        size_t len;
        xle_status st = xle_read_whole_file(paths[i], &data, &len, err);
        if (st != XLE_OK) {
            free(all);
            return st;
        }
        /* files are joined with a newline so a last line without one stays its own line */
        char *p = realloc(all, total + len + 2);
        if (!p) {
            free(data);
            free(all);
            return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", paths[i]);
        }
        all = p;
        memcpy(all + total, data, len);
        total += len;
        all[total++] = '\n';
        all[total] = 0;
        free(data);
    }
    xle_status st = xle_bpe_train_text(all, total, opts, out, err);
    free(all);
    return st;
}

/* ---- writing tokenizer.json --------------------------------------------------------------- */

static json_t *added_token(int id, const char *content) {
    return json_pack("{s:i, s:s, s:b, s:b, s:b, s:b, s:b}", "id", id, "content", content,
                     "single_word", 0, "lstrip", 0, "rstrip", 0, "normalized", 0, "special", 1);
}

static json_t *replace_step(const char *from, const char *to) {
    return json_pack("{s:s, s:{s:s}, s:s}", "type", "Replace", "pattern", "String", from, "content", to);
}

static json_t *tokenizer_json(const xle_bpe_vocab *v) {
    json_t *vocab = json_object(), *merges = json_array();
    for (int i = 0; i < v->n; i++) json_object_set_new(vocab, v->pieces[i], json_integer(i));
    for (int m = 0; m < v->n_merges; m++) {
        const char *a = v->pieces[v->merges[m][0]], *b = v->pieces[v->merges[m][1]];
        size_t la = strlen(a), lb = strlen(b);
        char *s = malloc(la + lb + 2);
        if (!s) {
            json_decref(vocab);
            json_decref(merges);
            return NULL;
        }
        memcpy(s, a, la);
        s[la] = ' ';
        memcpy(s + la + 1, b, lb + 1);
        json_array_append_new(merges, json_string(s));
        free(s);
    }
    json_t *added = json_array();
    json_array_append_new(added, added_token(0, "<unk>"));
    json_array_append_new(added, added_token(1, "<s>"));
    json_array_append_new(added, added_token(2, "</s>"));
    json_t *normalizer = json_pack("{s:s, s:[{s:s, s:s}, o]}", "type", "Sequence", "normalizers",
                                   "type", "Prepend", "prepend", WORD_START, replace_step(" ", WORD_START));
    json_t *decoder = json_pack("{s:s, s:[o, {s:s}, {s:s}, {s:s, s:s, s:i, s:i}]}", "type", "Sequence",
                                "decoders", replace_step(WORD_START, " "), "type", "ByteFallback",
                                "type", "Fuse", "type", "Strip", "content", " ", "start", 1, "stop", 0);
    json_t *post = json_pack(
        "{s:s, s:[{s:{s:s, s:i}}, {s:{s:s, s:i}}], s:[{s:{s:s, s:i}}, {s:{s:s, s:i}}, {s:{s:s, s:i}}, "
        "{s:{s:s, s:i}}], s:{s:{s:s, s:[i], s:[s]}}}",
        "type", "TemplateProcessing",
        "single", "SpecialToken", "id", "<s>", "type_id", 0, "Sequence", "id", "A", "type_id", 0,
        "pair", "SpecialToken", "id", "<s>", "type_id", 0, "Sequence", "id", "A", "type_id", 0,
        "SpecialToken", "id", "<s>", "type_id", 1, "Sequence", "id", "B", "type_id", 1,
        "special_tokens", "<s>", "id", "<s>", "ids", 1, "tokens", "<s>");
    json_t *model = json_pack("{s:s, s:n, s:s, s:n, s:n, s:b, s:b, s:b, s:o, s:o}", "type", "BPE",
                              "dropout", "unk_token", "<unk>", "continuing_subword_prefix",
                              "end_of_word_suffix", "fuse_unk", 1, "byte_fallback", 1,
                              "ignore_merges", 0, "vocab", vocab, "merges", merges);
    return json_pack("{s:s, s:n, s:n, s:o, s:o, s:n, s:o, s:o, s:o}", "version", "1.0",
                     "truncation", "padding", "added_tokens", added, "normalizer", normalizer,
                     "pre_tokenizer", "post_processor", post, "decoder", decoder, "model", model);
}

static json_t *tokenizer_config_json(void) {
    json_t *decoder = json_object();
    const char *names[N_SPECIAL] = {"<unk>", "<s>", "</s>"};
    for (int i = 0; i < N_SPECIAL; i++) {
        char key[8];
        snprintf(key, sizeof key, "%d", i);
        json_object_set_new(decoder, key, json_pack("{s:s, s:b, s:b, s:b, s:b, s:b}", "content", names[i],
                                                    "lstrip", 0, "normalized", 0, "rstrip", 0,
                                                    "single_word", 0, "special", 1));
    }
    return json_pack("{s:b, s:b, s:o, s:s, s:b, s:s, s:b, s:i, s:n, s:s, s:s, s:s, s:b}",
                     "add_bos_token", 1, "add_eos_token", 0, "added_tokens_decoder", decoder,
                     "bos_token", "<s>", "clean_up_tokenization_spaces", 0, "eos_token", "</s>",
                     "legacy", 0, "model_max_length", 1 << 20, "pad_token", "tokenizer_class",
                     "LlamaTokenizerFast", "unk_token", "<unk>", "padding_side", "right",
                     "use_default_system_prompt", 0);
}

xle_status xle_json_write_atomic(json_t *root, const char *path, xle_error *err) {
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (!text) return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", path);
    size_t len = strlen(text);
    xle_status st = xle_atomic_write(path, text, len, err);
    free(text);
    return st;
}

/* The folder part of path ("." when none); caller frees. */
static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    size_t n = (size_t)(slash - path);
    char *d = malloc(n + 2);
    if (!d) return NULL;
    if (n == 0) n = 1; /* "/x" -> "/" */
    memcpy(d, path, n);
    d[n] = 0;
    return d;
}

xle_status xle_bpe_save_hf(const xle_bpe_vocab *v, const char *path, xle_error *err) {
    json_t *tj = tokenizer_json(v), *tc = tokenizer_config_json();
    char *dir = dir_of(path), *cfg_path = NULL;
    xle_status st = XLE_OK;
    if (!tj || !tc || !dir) st = xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", path);
    if (st == XLE_OK) {
        cfg_path = malloc(strlen(dir) + sizeof "/tokenizer_config.json");
        if (!cfg_path) st = xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", path);
        else sprintf(cfg_path, "%s/tokenizer_config.json", dir);
    }
    if (st == XLE_OK) st = xle_json_write_atomic(tj, path, err);
    if (st == XLE_OK) st = xle_json_write_atomic(tc, cfg_path, err);
    json_decref(tj);
    json_decref(tc);
    free(dir);
    free(cfg_path);
    return st;
}
