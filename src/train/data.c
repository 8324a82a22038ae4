/*
 * data.c: the training data stream. Every non-empty line of the corpus is a document, read as
 * BOS + tokens + EOS (so the model learns where a sentence ends); documents longer than the
 * context are cut into items of max_seq_len + 1 ids that overlap by one id. Each epoch visits
 * the items in a fresh order (Fisher-Yates, seeded by the run's seed and the epoch number), and
 * a step's batch packs whole items, each its own sequence of an xle_batch (attention never
 * crosses items), up to batch_tokens input tokens. The stream position is an (epoch, index)
 * cursor, so a checkpoint resumes it exactly.
 */
#include <stdlib.h>
#include <string.h>

#include "train/train_internal.h"

static int grow_i32(int32_t **a, int64_t *cap, int64_t need) {
    if (need <= *cap) return 1;
    int64_t c = *cap ? *cap : 1 << 16;
    while (c < need) c *= 2;
    int32_t *p = realloc(*a, (size_t)c * sizeof *p);
    if (!p) return 0;
    *a = p;
    *cap = c;
    return 1;
}

static int grow_i64(int64_t **a, int64_t *cap, int64_t need) {
    if (need <= *cap) return 1;
    int64_t c = *cap ? *cap : 1 << 12;
    while (c < need) c *= 2;
    int64_t *p = realloc(*a, (size_t)c * sizeof *p);
    if (!p) return 0;
    *a = p;
    *cap = c;
    return 1;
}

static int is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
    return 1;
}

xle_status xle_train_data_build(const xle_tokenizer *tok, const char *text, size_t len,
                                int max_seq_len, xle_train_data *out, xle_error *err) {
    memset(out, 0, sizeof *out);
    const int bos = xle_tokenizer_bos_id(tok), eos = xle_tokenizer_eos_id(tok);
    if (bos < 0 || eos < 0)
        return xle_fail(err, XLE_ERR_ARG, "the tokenizer needs BOS and EOS tokens (has bos %d, eos %d)", bos, eos);
    int64_t cap_ids = 0, cap_items = 0;
    int32_t *doc = NULL;
    int64_t cap_doc = 0;
    xle_status st = XLE_OK;
    size_t pos = 0;
    int64_t line_no = 0;
    while (pos < len && st == XLE_OK) {
        size_t end = pos;
        while (end < len && text[end] != '\n') end++;
        line_no++;
        size_t n = end - pos;
        if (n && text[pos + n - 1] == '\r') n--;
        if (n && !is_blank(text + pos, n)) {
            xle_tokens t = {0};
            st = xle_tokenize(tok, text + pos, n, 0, 0, &t, err);
            if (st != XLE_OK) break;
            int64_t dn = t.n + 2;
            if (!grow_i32(&doc, &cap_doc, dn)) {
                xle_tokens_free(&t);
                st = xle_fail(err, XLE_ERR_NOMEM, "train: out of memory");
                break;
            }
            doc[0] = bos;
            memcpy(doc + 1, t.ids, (size_t)t.n * sizeof(int32_t));
            doc[dn - 1] = eos;
            xle_tokens_free(&t);
            out->n_docs++;
            /* items of at most max_seq_len + 1 ids starting every max_seq_len ids */
            for (int64_t s = 0; s + 1 < dn; s += max_seq_len) {
                int64_t k = dn - s < max_seq_len + 1 ? dn - s : max_seq_len + 1;
                if (!grow_i32(&out->ids, &cap_ids, out->n_ids + k) ||
                    !grow_i64(&out->item_start, &cap_items, (int64_t)out->n_items + 2)) {
                    st = xle_fail(err, XLE_ERR_NOMEM, "train: out of memory");
                    break;
                }
                if (out->n_items >= (1 << 30)) {
                    st = xle_fail(err, XLE_ERR_ARG, "too many documents");
                    break;
                }
                out->item_start[out->n_items++] = out->n_ids;
                memcpy(out->ids + out->n_ids, doc + s, (size_t)k * sizeof(int32_t));
                out->n_ids += k;
                out->n_targets += k - 1;
            }
        }
        pos = end + 1;
    }
    free(doc);
    if (st == XLE_OK && out->n_items == 0) st = xle_fail(err, XLE_ERR_ARG, "no text (every line is empty)");
    if (st != XLE_OK) {
        xle_train_data_free(out);
        return st;
    }
    out->item_start[out->n_items] = out->n_ids;
    return XLE_OK;
}

void xle_train_data_free(xle_train_data *d) {
    free(d->ids);
    free(d->item_start);
    memset(d, 0, sizeof *d);
}

void xle_train_epoch_order(uint64_t seed, int64_t epoch, int n_items, int *order) {
    xle_rng rng;
    xle_rng_seed(&rng, seed ^ ((uint64_t)(epoch + 1) * 0x9e3779b97f4a7c15ull));
    for (int i = 0; i < n_items; i++) order[i] = i;
    for (int i = n_items - 1; i > 0; i--) {
        int j = (int)(xle_rng_next(&rng) % (uint64_t)(i + 1));
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

static xle_status batch_reserve(xle_train_batch *b, int tokens, int seqs, xle_error *err) {
    if (tokens > b->cap_tokens) {
        int32_t *t = realloc(b->tokens, (size_t)tokens * sizeof *t);
        if (!t) return xle_fail(err, XLE_ERR_NOMEM, "train: out of memory");
        b->tokens = t;
        int32_t *g = realloc(b->targets, (size_t)tokens * sizeof *g);
        if (!g) return xle_fail(err, XLE_ERR_NOMEM, "train: out of memory");
        b->targets = g;
        b->cap_tokens = tokens;
    }
    if (seqs + 1 > b->cap_seqs) {
        int *s = realloc(b->seq_start, (size_t)(seqs + 1) * sizeof *s);
        if (!s) return xle_fail(err, XLE_ERR_NOMEM, "train: out of memory");
        b->seq_start = s;
        b->cap_seqs = seqs + 1;
    }
    return XLE_OK;
}

xle_status xle_train_batch_next(const xle_train_data *d, uint64_t seed, int batch_tokens,
                                xle_data_cursor *cur, xle_train_batch *b, xle_error *err) {
    if (!b->order) {
        b->order = malloc((size_t)d->n_items * sizeof *b->order);
        if (!b->order) return xle_fail(err, XLE_ERR_NOMEM, "train: out of memory");
        b->order_epoch = -1;
    }
    b->n_seqs = 0;
    b->n_tokens = 0;
    for (;;) {
        if (cur->next >= d->n_items) {
            cur->epoch++;
            cur->next = 0;
        }
        if (b->order_epoch != cur->epoch) {
            xle_train_epoch_order(seed, cur->epoch, d->n_items, b->order);
            b->order_epoch = cur->epoch;
        }
        int item = b->order[cur->next];
        int64_t s0 = d->item_start[item];
        int n_in = (int)(d->item_start[item + 1] - s0 - 1);
        if (b->n_seqs > 0 && b->n_tokens + n_in > batch_tokens) break;
        xle_status st = batch_reserve(b, b->n_tokens + n_in, b->n_seqs + 1, err);
        if (st != XLE_OK) return st;
        b->seq_start[b->n_seqs] = b->n_tokens;
        memcpy(b->tokens + b->n_tokens, d->ids + s0, (size_t)n_in * sizeof(int32_t));
        memcpy(b->targets + b->n_tokens, d->ids + s0 + 1, (size_t)n_in * sizeof(int32_t));
        b->n_tokens += n_in;
        b->n_seqs++;
        b->seq_start[b->n_seqs] = b->n_tokens;
        cur->next++;
        if (b->n_tokens >= batch_tokens) break;
    }
    return XLE_OK;
}

void xle_train_batch_free(xle_train_batch *b) {
    free(b->tokens);
    free(b->targets);
    free(b->seq_start);
    free(b->order);
    memset(b, 0, sizeof *b);
}
