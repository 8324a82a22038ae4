/*
 * encode.c: xle_tokenize: BOS, added tokens split out of the raw text (longest match at the
 * leftmost position; special ones only with parse_special), then per text segment the
 * normalization (NFC, SentencePiece's "▁" escaping and dummy prefix) with a map from
 * normalized bytes back to input offsets, and the model (spm.c or bpe.c). Every token gets the
 * input byte range it covers: the ranges are monotone and tile the input exactly.
 */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

int xle_tok_out_push(xle_tok_out *o, int32_t id, size_t start, size_t end) {
    if (o->n == o->cap) {
        int cap = o->cap ? o->cap * 2 : 64;
        int32_t *ids = realloc(o->ids, (size_t)cap * sizeof *ids);
        if (!ids) return -1;
        o->ids = ids;
        int32_t *off = realloc(o->offsets, (size_t)cap * sizeof *off);
        if (!off) return -1;
        o->offsets = off;
        int32_t *len = realloc(o->lengths, (size_t)cap * sizeof *len);
        if (!len) return -1;
        o->lengths = len;
        o->cap = cap;
    }
    o->ids[o->n] = id;
    o->offsets[o->n] = (int32_t)start;
    o->lengths[o->n] = (int32_t)(end - start);
    o->n++;
    return 0;
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* SentencePiece normalization of text (already mapped by tmap into input offsets): optional
 * removal of extra whitespace, the dummy prefix, and ' ' -> "▁". */
static int spm_normalize(const xle_tokenizer *tok, const char *text, size_t len, const int32_t *tmap,
                         int prefix, char **out, size_t *out_len, int32_t **omap) {
    size_t cap = 3 * len + 3;
    char *s = malloc(cap + 1);
    int32_t *m = malloc((cap + 1) * sizeof *m);
    if (!s || !m) {
        free(s), free(m);
        return -1;
    }
    size_t b = 0, e = len, n = 0;
    if (tok->spm_remove_extra_ws) {
        while (b < e && text[b] == ' ') b++;
        while (e > b && text[e - 1] == ' ') e--;
    }
    if (prefix && b < e) {
        memcpy(s, "\xe2\x96\x81", 3);
        m[0] = m[1] = m[2] = tmap[b];
        n = 3;
    }
    for (size_t i = b; i < e; i++) {
        if (text[i] == ' ' && tok->spm_remove_extra_ws && i > b && text[i - 1] == ' ') continue;
        if (text[i] == ' ' && tok->spm_escape_spaces) {
            memcpy(s + n, "\xe2\x96\x81", 3);
            m[n] = m[n + 1] = m[n + 2] = tmap[i];
            n += 3;
        } else {
            s[n] = text[i];
            m[n++] = tmap[i];
        }
    }
    m[n] = tmap[len];
    /* dropped leading blanks belong to the first token: start the map at the segment start */
    if (n > 0) {
        for (size_t i = 0; i < n && m[i] == tmap[b]; i++) m[i] = tmap[0];
    }
    *out = s;
    *out_len = n;
    *omap = m;
    return 0;
}

/* Encodes input[start, end) (no added tokens inside). first: the segment starts the text. */
static int encode_segment(const xle_tokenizer *tok, const char *input, size_t start, size_t end,
                          int after_added, xle_tok_out *out) {
    if (end == start) return 0;
    const char *text = input + start;
    size_t len = end - start;
    char *nfc = NULL;
    int32_t *map = NULL;
    int rc = 0;
    if (tok->norm == XLE_NORM_NFC) {
        if (xle_tok_nfc(text, len, (int32_t)start, &nfc, &len, &map) != 0) return -1;
        text = nfc;
    } else {
        map = malloc((len + 1) * sizeof *map);
        if (!map) return -1;
        for (size_t i = 0; i <= len; i++) map[i] = (int32_t)(start + i);
    }
    if (tok->kind == XLE_TOK_SPM) {
        int prefix = tok->spm_prefix == XLE_SPM_PREFIX_EVERY_SEGMENT ||
                     (tok->spm_prefix == XLE_SPM_PREFIX_FIRST && start == 0 && !after_added);
        char *norm = NULL;
        size_t nlen = 0;
        int32_t *nmap = NULL;
        rc = spm_normalize(tok, text, len, map, prefix, &norm, &nlen, &nmap);
        if (rc == 0) rc = xle_spm_encode(tok, norm, nlen, nmap, out);
        free(norm);
        free(nmap);
    } else {
        rc = xle_bpe_encode(tok, text, len, map, out);
    }
    free(nfc);
    free(map);
    return rc;
}

/* The longest allowed added token starting at text[pos], or NULL. */
static const xle_added_token *match_added(const xle_tokenizer *tok, const char *text, size_t len,
                                          size_t pos, int parse_special) {
    uint8_t c = (uint8_t)text[pos];
    for (int32_t k = tok->added_first[c]; k < tok->added_first[c + 1]; k++) {
        const xle_added_token *a = &tok->added[k];
        if (a->special && !parse_special) continue;
        if (a->len <= len - pos &&
            memcmp(text + pos, tok->strings + tok->entries[a->id].bytes, a->len) == 0)
            return a;
    }
    return NULL;
}

xle_status xle_tokenize(const xle_tokenizer *tok, const char *text, size_t len, int add_bos,
                        int parse_special, xle_tokens *out, xle_error *err) {
    memset(out, 0, sizeof *out);
    if (!tok || (!text && len)) return xle_fail(err, XLE_ERR_ARG, "tokenize: no tokenizer or text");
    if (len >= INT32_MAX / 4)
        return xle_fail(err, XLE_ERR_ARG, "tokenize: text of %zu bytes is too long (limit %d)", len,
                        INT32_MAX / 4);
    xle_tok_out o = {0};
    int rc = 0;
    int use_files = add_bos < 0;
    if ((add_bos > 0 || (use_files && tok->add_bos)) && tok->bos_id >= 0)
        rc = xle_tok_out_push(&o, tok->bos_id, 0, 0);
    size_t seg = 0;
    int after_added = 0;
    for (size_t pos = 0; pos < len && rc == 0;) {
        const xle_added_token *a = tok->n_added ? match_added(tok, text, len, pos, parse_special) : NULL;
        if (!a) {
            pos++;
            continue;
        }
        size_t b = pos, e = pos + a->len;
        if (a->lstrip)
            while (b > seg && is_space(text[b - 1])) b--;
        if (a->rstrip)
            while (e < len && is_space(text[e])) e++;
        rc = encode_segment(tok, text, seg, b, after_added, &o);
        if (rc == 0) rc = xle_tok_out_push(&o, a->id, b, e);
        seg = pos = e;
        after_added = 1;
    }
    if (rc == 0) rc = encode_segment(tok, text, seg, len, after_added, &o);
    if (rc == 0 && use_files && tok->add_eos && tok->eos_id >= 0) rc = xle_tok_out_push(&o, tok->eos_id, len, len);
    if (rc != 0) {
        free(o.ids), free(o.offsets), free(o.lengths);
        return rc == -2 ? xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: tokenize: the pre-tokenizer regex failed on this text", tok->source)
                        : xle_fail(err, XLE_ERR_NOMEM, "tokenize: out of memory");
    }
    out->ids = o.ids;
    out->offsets = o.offsets;
    out->lengths = o.lengths;
    out->n = o.n;
    return XLE_OK;
}

void xle_tokens_free(xle_tokens *t) {
    if (!t) return;
    free(t->ids);
    free(t->offsets);
    free(t->lengths);
    memset(t, 0, sizeof *t);
}
