/*
 * decode.c: ids back to text. Each token contributes its decoded bytes (SentencePiece "▁" ->
 * " ", <0xNN> -> the byte, byte-level pieces -> their raw bytes). With SentencePiece's dummy
 * prefix the space that starts the first text token (at the start or right after BOS/other
 * control tokens) is dropped, so decode(encode(x)) == x. The streaming decoder holds back a
 * trailing incomplete UTF-8 sequence until the bytes that complete it arrive.
 */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

static int skipped(const xle_tokenizer *tok, int32_t id, int skip_special) {
    const xle_tok_entry *e = &tok->entries[id];
    return skip_special && (e->special || e->type == XLE_TOKTYPE_CONTROL);
}

/* The bytes token id adds after `at_start` (no text token yet); updates at_start. */
static const char *token_text(const xle_tokenizer *tok, int32_t id, int *at_start, size_t *len) {
    const xle_tok_entry *e = &tok->entries[id];
    const char *s = tok->strings + e->bytes;
    size_t n = e->bytes_len;
    if (e->type == XLE_TOKTYPE_CONTROL) {
        *len = n;
        return s; /* BOS-like: the next text token still counts as the first */
    }
    if (*at_start && tok->kind == XLE_TOK_SPM && tok->spm_prefix != XLE_SPM_PREFIX_NONE &&
        e->type != XLE_TOKTYPE_BYTE && n > 0 && s[0] == ' ') {
        s++;
        n--;
    }
    *at_start = 0;
    *len = n;
    return s;
}

char *xle_detokenize(const xle_tokenizer *tok, const int32_t *ids, int n, int skip_special) {
    if (!tok || (n > 0 && !ids)) return NULL;
    size_t total = 1;
    for (int i = 0; i < n; i++)
        if (ids[i] >= 0 && ids[i] < tok->n_vocab) total += tok->entries[ids[i]].bytes_len;
    char *out = malloc(total);
    if (!out) return NULL;
    size_t w = 0;
    int at_start = 1;
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= tok->n_vocab || skipped(tok, ids[i], skip_special)) continue;
        size_t len;
        const char *s = token_text(tok, ids[i], &at_start, &len);
        memcpy(out + w, s, len);
        w += len;
    }
    out[w] = 0;
    return out;
}

struct xle_detok_stream {
    const xle_tokenizer *tok;
    int at_start;
    int skip_special;
    char held[4];   /* an incomplete UTF-8 sequence waiting for its continuation bytes */
    int n_held;
    char *queue;    /* complete text not yet handed out (the caller's buffer was full) */
    size_t q_start, q_len, q_cap;
};

xle_detok_stream *xle_detok_stream_new(const xle_tokenizer *tok) {
    if (!tok) return NULL;
    xle_detok_stream *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->tok = tok;
    s->at_start = 1;
    s->skip_special = 1;
    return s;
}

void xle_detok_stream_free(xle_detok_stream *s) {
    if (!s) return;
    free(s->queue);
    free(s);
}

/* Bytes a UTF-8 sequence with this lead byte needs (1 for ASCII and stray bytes). */
static int seq_len(uint8_t c) {
    return c >= 0xf0 && c <= 0xf7 ? 4 : c >= 0xe0 && c < 0xf0 ? 3 : c >= 0xc0 && c < 0xe0 ? 2 : 1;
}

static int enqueue(xle_detok_stream *s, const char *p, size_t n) {
    if (s->q_start > 0 && s->q_start == s->q_len) s->q_start = s->q_len = 0;
    if (s->q_len + n > s->q_cap) {
        size_t cap = s->q_cap ? s->q_cap : 64;
        while (cap < s->q_len + n) cap *= 2;
        char *q = realloc(s->queue, cap);
        if (!q) return -1;
        s->queue = q;
        s->q_cap = cap;
    }
    memcpy(s->queue + s->q_len, p, n);
    s->q_len += n;
    return 0;
}

/* Moves queued text into out (at most cap - 1 bytes, whole characters when they fit). */
static size_t drain(xle_detok_stream *s, char *out, size_t cap) {
    if (!out || cap == 0) return 0;
    size_t avail = s->q_len - s->q_start, n = avail < cap - 1 ? avail : cap - 1;
    if (n < avail) { /* do not cut a character unless not even one fits */
        size_t k = n;
        while (k > 0 && ((uint8_t)s->queue[s->q_start + k] & 0xc0) == 0x80) k--;
        if (k > 0) n = k;
    }
    if (n > 0) memcpy(out, s->queue + s->q_start, n);
    out[n] = 0;
    s->q_start += n;
    return n;
}

size_t xle_detok_stream_push(xle_detok_stream *s, int32_t id, char *out, size_t cap) {
    if (out && cap) out[0] = 0;
    if (!s) return 0;
    if (id >= 0 && id < s->tok->n_vocab && !skipped(s->tok, id, s->skip_special)) {
        size_t len;
        const char *text = token_text(s->tok, id, &s->at_start, &len);
        for (size_t i = 0; i < len; i++) {
            uint8_t c = (uint8_t)text[i];
            if (s->n_held > 0 && (c & 0xc0) == 0x80) {
                s->held[s->n_held++] = (char)c;
                if (s->n_held == seq_len((uint8_t)s->held[0])) {
                    if (enqueue(s, s->held, (size_t)s->n_held)) return 0;
                    s->n_held = 0;
                }
                continue;
            }
            if (s->n_held > 0) { /* a broken sequence: pass its bytes on as they are */
                if (enqueue(s, s->held, (size_t)s->n_held)) return 0;
                s->n_held = 0;
            }
            if (seq_len(c) == 1) {
                if (enqueue(s, (const char *)&text[i], 1)) return 0;
            } else {
                s->held[0] = (char)c;
                s->n_held = 1;
            }
        }
    }
    return drain(s, out, cap);
}

size_t xle_detok_stream_flush(xle_detok_stream *s, char *out, size_t cap) {
    if (out && cap) out[0] = 0;
    if (!s) return 0;
    if (s->n_held > 0 && enqueue(s, s->held, (size_t)s->n_held) == 0) s->n_held = 0;
    return drain(s, out, cap);
}
