/*
 * vocab.c: the vocabulary: GPT-2's byte-to-unicode alphabet, the builder every loader fills
 * (pieces, decoded bytes, types, merges -> lookup tables, added tokens), and the public
 * accessors.
 */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

/* ---- GPT-2 byte <-> unicode ------------------------------------------------------------ */

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the other 68 bytes
 * are shifted to U+0100.. in byte order, so every byte has a visible character. */
static int gpt2_byte_is_self(unsigned b) {
    return (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae);
}

static unsigned gpt2_byte_to_cp(unsigned b) {
    if (gpt2_byte_is_self(b)) return b;
    unsigned n = 0;
    for (unsigned c = 0; c < b; c++)
        if (!gpt2_byte_is_self(c)) n++;
    return 256 + n;
}

static int gpt2_cp_to_byte(unsigned cp) {
    if (cp < 256) return gpt2_byte_is_self(cp) ? (int)cp : -1;
    if (cp >= 256 + 68) return -1;
    unsigned n = cp - 256;
    for (unsigned c = 0; c < 256; c++)
        if (!gpt2_byte_is_self(c) && n-- == 0) return (int)c;
    return -1;
}

long xle_gpt2_decode(const char *piece, size_t len, char *dst) {
    const uint8_t *p = (const uint8_t *)piece;
    long n = 0;
    for (size_t i = 0; i < len;) {
        unsigned cp;
        if (p[i] < 0x80) cp = p[i++];
        else if ((p[i] & 0xe0) == 0xc0 && i + 1 < len && (p[i + 1] & 0xc0) == 0x80) {
            cp = ((unsigned)(p[i] & 0x1f) << 6) | (p[i + 1] & 0x3f);
            i += 2;
        } else return -1; /* the alphabet lies below U+0800 */
        int b = gpt2_cp_to_byte(cp);
        if (b < 0) return -1;
        dst[n++] = (char)b;
    }
    return n;
}

size_t xle_gpt2_encode(const char *bytes, size_t len, char *dst) {
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned cp = gpt2_byte_to_cp((uint8_t)bytes[i]);
        if (cp < 0x80) dst[n++] = (char)cp;
        else {
            dst[n++] = (char)(0xc0 | (cp >> 6));
            dst[n++] = (char)(0x80 | (cp & 0x3f));
        }
    }
    return n;
}

/* ---- builder ---------------------------------------------------------------------------- */

xle_status xle_tok_builder_new(xle_tok_kind kind, const char *source, xle_tok_builder **out,
                               xle_error *err) {
    *out = NULL;
    xle_tok_builder *b = calloc(1, sizeof *b);
    if (!b || !(b->source = strdup(source ? source : "tokenizer"))) {
        free(b);
        return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", source ? source : "tokenizer");
    }
    b->kind = kind;
    b->bos_id = b->eos_id = b->unk_id = b->eot_id = b->pad_id = -1;
    b->spm_prefix = kind == XLE_TOK_SPM ? XLE_SPM_PREFIX_EVERY_SEGMENT : XLE_SPM_PREFIX_NONE;
    b->spm_escape_spaces = kind == XLE_TOK_SPM;
    *out = b;
    return XLE_OK;
}

void xle_tok_builder_free(xle_tok_builder *b) {
    if (!b) return;
    free(b->source);
    free(b->entries);
    free(b->strings);
    free(b->merge_l);
    free(b->merge_r);
    free(b->merge_llen);
    free(b->merge_rlen);
    xle_pretok_free(b->pretok);
    free(b);
}

/* Appends len bytes plus a NUL to the string arena; returns the offset or -1. */
static long arena_add(xle_tok_builder *b, const char *s, size_t len) {
    if (len > UINT32_MAX / 4 || b->strings_len + len + 1 > UINT32_MAX) return -1;
    if (b->strings_len + len + 1 > b->strings_cap) {
        size_t cap = b->strings_cap ? b->strings_cap : 4096;
        while (cap < b->strings_len + len + 1) cap *= 2;
        char *p = realloc(b->strings, cap);
        if (!p) return -1;
        b->strings = p;
        b->strings_cap = cap;
    }
    long off = (long)b->strings_len;
    if (len) memcpy(b->strings + off, s, len);
    b->strings[off + len] = 0;
    b->strings_len += len + 1;
    return off;
}

static int parse_byte_piece(const char *p, size_t len) {
    if (len != 6 || memcmp(p, "<0x", 3) != 0 || p[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10
              : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

static int has_meta_space(const char *s, size_t len) {
    for (size_t i = 0; i + 3 <= len; i++)
        if (memcmp(s + i, "\xe2\x96\x81", 3) == 0) return 1;
    return 0;
}

static xle_status add_entry(xle_tok_builder *b, const char *piece, size_t plen, const char *bytes,
                            size_t blen, float score, int type, xle_error *err) {
    if (type < XLE_TOKTYPE_NORMAL || type > XLE_TOKTYPE_BYTE)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: token_type: token %d has type %d (expected 1..6)",
                        b->source, b->n, type);
    if (b->n == INT32_MAX - 1)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: tokens: too many tokens", b->source);
    if (b->n == b->cap) {
        int cap = b->cap ? b->cap * 2 : 1024;
        xle_tok_entry *e = realloc(b->entries, (size_t)cap * sizeof *e);
        if (!e) return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", b->source);
        b->entries = e;
        b->cap = cap;
    }
    long po = arena_add(b, piece, plen);
    long bo = po < 0 ? -1 : (bytes == piece && blen == plen) ? po : arena_add(b, bytes, blen);
    if (po < 0 || bo < 0) return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", b->source);
    xle_tok_entry *e = &b->entries[b->n++];
    memset(e, 0, sizeof *e);
    e->piece = (uint32_t)po;
    e->piece_len = (uint32_t)plen;
    e->bytes = (uint32_t)bo;
    e->bytes_len = (uint32_t)blen;
    e->score = score;
    e->type = (uint8_t)type;
    return XLE_OK;
}

xle_status xle_tok_builder_add(xle_tok_builder *b, const char *piece, size_t len, float score,
                               int type, xle_error *err) {
    if (b->kind == XLE_TOK_SPM) {
        int byte = type == XLE_TOKTYPE_BYTE ? parse_byte_piece(piece, len) : -1;
        if (byte >= 0) {
            char c = (char)byte;
            return add_entry(b, piece, len, &c, 1, score, type, err);
        }
        if ((type == XLE_TOKTYPE_NORMAL || type == XLE_TOKTYPE_USER_DEFINED ||
             type == XLE_TOKTYPE_UNUSED) && b->spm_escape_spaces && has_meta_space(piece, len)) {
            /* "▁" decodes to a space */
            char *tmp = malloc(len ? len : 1);
            if (!tmp) return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", b->source);
            size_t n = 0;
            for (size_t i = 0; i < len;) {
                if (i + 3 <= len && memcmp(piece + i, "\xe2\x96\x81", 3) == 0) {
                    tmp[n++] = ' ';
                    i += 3;
                } else tmp[n++] = piece[i++];
            }
            xle_status st = add_entry(b, piece, len, tmp, n, score, type, err);
            free(tmp);
            return st;
        }
        return add_entry(b, piece, len, piece, len, score, type, err);
    }
    /* byte-level: normal tokens are spelled in GPT-2's alphabet; added ones are literal text */
    if (type == XLE_TOKTYPE_NORMAL || type == XLE_TOKTYPE_BYTE || type == XLE_TOKTYPE_UNUSED) {
        char *tmp = malloc(len ? len : 1);
        if (!tmp) return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", b->source);
        long n = xle_gpt2_decode(piece, len, tmp);
        xle_status st = n >= 0 ? add_entry(b, piece, len, tmp, (size_t)n, score, type, err)
                               : add_entry(b, piece, len, piece, len, score, type, err);
        free(tmp);
        return st;
    }
    return add_entry(b, piece, len, piece, len, score, type, err);
}

xle_status xle_tok_builder_add_raw(xle_tok_builder *b, const char *bytes, size_t len, int type,
                                   xle_error *err) {
    if (b->kind != XLE_TOK_BPE || type != XLE_TOKTYPE_NORMAL) return add_entry(b, bytes, len, bytes, len, 0.0f, type, err);
    char *tmp = malloc(2 * len + 1);
    if (!tmp) return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", b->source);
    size_t n = xle_gpt2_encode(bytes, len, tmp);
    xle_status st = add_entry(b, tmp, n, bytes, len, 0.0f, type, err);
    free(tmp);
    return st;
}

xle_status xle_tok_builder_set_added(xle_tok_builder *b, int32_t id, int special, int lstrip,
                                     int rstrip, xle_error *err) {
    if (id < 0 || id >= b->n)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: added_tokens: id %d is outside the vocabulary [0, %d)",
                        b->source, id, b->n);
    xle_tok_entry *e = &b->entries[id];
    e->added = 1;
    e->special = special != 0;
    e->lstrip = lstrip != 0;
    e->rstrip = rstrip != 0;
    if (e->type == XLE_TOKTYPE_NORMAL) e->type = special ? XLE_TOKTYPE_CONTROL : XLE_TOKTYPE_USER_DEFINED;
    return XLE_OK;
}

xle_status xle_tok_builder_add_merge(xle_tok_builder *b, const char *left, size_t llen,
                                     const char *right, size_t rlen, xle_error *err) {
    if (b->n_merges == b->merges_cap) {
        int cap = b->merges_cap ? b->merges_cap * 2 : 1024;
        uint32_t *l = realloc(b->merge_l, (size_t)cap * sizeof *l);
        if (l) b->merge_l = l;
        uint32_t *r = l ? realloc(b->merge_r, (size_t)cap * sizeof *r) : NULL;
        if (r) b->merge_r = r;
        uint32_t *ll = r ? realloc(b->merge_llen, (size_t)cap * sizeof *ll) : NULL;
        if (ll) b->merge_llen = ll;
        uint32_t *rl = ll ? realloc(b->merge_rlen, (size_t)cap * sizeof *rl) : NULL;
        if (!rl) return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", b->source);
        b->merge_rlen = rl;
        b->merges_cap = cap;
    }
    long lo = arena_add(b, left, llen), ro = lo < 0 ? -1 : arena_add(b, right, rlen);
    if (lo < 0 || ro < 0) return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", b->source);
    b->merge_l[b->n_merges] = (uint32_t)lo;
    b->merge_r[b->n_merges] = (uint32_t)ro;
    b->merge_llen[b->n_merges] = (uint32_t)llen;
    b->merge_rlen[b->n_merges] = (uint32_t)rlen;
    b->n_merges++;
    return XLE_OK;
}

/* Added tokens sorted by first byte, then longest first (the longest match wins). */
static int added_cmp(const void *a, const void *b) {
    const xle_added_token *x = a, *y = b;
    if (x->first != y->first) return x->first < y->first ? -1 : 1;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static xle_status build_added(xle_tokenizer *t, xle_error *err) {
    int n = 0;
    for (int i = 0; i < t->n_vocab; i++) {
        xle_tok_entry *e = &t->entries[i];
        /* GGUF / SentencePiece semantics when the file did not list added tokens itself */
        if (!e->added && (e->type == XLE_TOKTYPE_CONTROL || e->type == XLE_TOKTYPE_UNKNOWN)) e->added = 1, e->special = 1;
        if (!e->added && e->type == XLE_TOKTYPE_USER_DEFINED) e->added = 1;
        if (e->added && e->bytes_len > 0) n++;
    }
    t->added = malloc((size_t)(n ? n : 1) * sizeof *t->added);
    if (!t->added) return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", t->source);
    n = 0;
    for (int i = 0; i < t->n_vocab; i++) {
        const xle_tok_entry *e = &t->entries[i];
        if (!e->added || e->bytes_len == 0) continue;
        t->added[n++] = (xle_added_token){i, e->bytes_len, (uint8_t)t->strings[e->bytes],
                                          e->special, e->lstrip, e->rstrip};
    }
    t->n_added = n;
    qsort(t->added, (size_t)n, sizeof *t->added, added_cmp);
    int j = 0;
    for (int b = 0; b <= 256; b++) {
        while (j < n && t->added[j].first < b) j++;
        t->added_first[b] = j;
    }
    t->added_first[256] = n;
    return XLE_OK;
}

/* Resolves the builder's merge rules into (left id, right id) -> (rank, merged id) through map
 * (SPM pieces, or decoded bytes for byte-level BPE whose rules are in GPT-2's alphabet). */
static xle_status build_merges(xle_tokenizer *t, const xle_tok_builder *b, const xle_strmap *map,
                               int gpt2_alphabet, xle_error *err) {
    if (xle_pairmap_init(&t->merges, (uint32_t)b->n_merges) != 0)
        return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", t->source);
    char *lb = NULL, *rb = NULL, *cat = NULL;
    size_t cap = 0;
    xle_status st = XLE_OK;
    for (int m = 0; m < b->n_merges && st == XLE_OK; m++) {
        size_t ll = b->merge_llen[m], rl = b->merge_rlen[m];
        if (ll + rl > cap) {
            cap = 2 * (ll + rl) + 64;
            free(lb), free(rb), free(cat);
            lb = malloc(cap), rb = malloc(cap), cat = malloc(cap);
            if (!lb || !rb || !cat) {
                st = xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", t->source);
                break;
            }
        }
        const char *ls = t->strings + b->merge_l[m], *rs = t->strings + b->merge_r[m];
        long ln = (long)ll, rn = (long)rl;
        if (gpt2_alphabet) {
            ln = xle_gpt2_decode(ls, ll, lb);
            rn = xle_gpt2_decode(rs, rl, rb);
            ls = lb, rs = rb;
        }
        if (ln <= 0 || rn <= 0) {
            st = xle_fail(err, XLE_ERR_FORMAT, "%s: merges: rule %d ('%.30s %.30s') has an empty side or is not in the byte-level alphabet",
                          t->source, m, t->strings + b->merge_l[m], t->strings + b->merge_r[m]);
            break;
        }
        memcpy(cat, ls, (size_t)ln);
        memcpy(cat + ln, rs, (size_t)rn);
        int32_t li = xle_strmap_get(map, ls, (uint32_t)ln);
        int32_t ri = xle_strmap_get(map, rs, (uint32_t)rn);
        int32_t ci = xle_strmap_get(map, cat, (uint32_t)(ln + rn));
        /* a rule whose parts or result are not tokens can never apply to token symbols */
        if (li < 0 || ri < 0 || ci < 0) continue;
        if (xle_pairmap_put(&t->merges, li, ri, m, ci) < 0)
            st = xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", t->source);
    }
    free(lb), free(rb), free(cat);
    return st;
}

static xle_status build_spm_maps(xle_tokenizer *t, const xle_tok_builder *b, xle_error *err) {
    if (xle_strmap_init(&t->piece_to_id, (uint32_t)t->n_vocab) != 0)
        return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", t->source);
    for (int i = 0; i < t->n_vocab; i++) {
        const xle_tok_entry *e = &t->entries[i];
        if (e->type == XLE_TOKTYPE_BYTE && e->bytes_len == 1) {
            uint8_t v = (uint8_t)t->strings[e->bytes];
            if (t->byte_token[v] < 0) t->byte_token[v] = i;
        }
        /* only pieces SentencePiece merges into: not control, unknown, byte or unused ones */
        if (e->type != XLE_TOKTYPE_NORMAL && e->type != XLE_TOKTYPE_USER_DEFINED) continue;
        int32_t old;
        int r = xle_strmap_put(&t->piece_to_id, t->strings + e->piece, e->piece_len, i, &old);
        if (r < 0) return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", t->source);
        if (r == 0)
            return xle_fail(err, XLE_ERR_FORMAT, "%s: tokens: duplicate token '%.40s' (ids %d and %d)",
                            t->source, t->strings + e->piece, old, i);
    }
    /* word-by-word encoding is exact when no piece continues past a character into a "▁" */
    t->spm_word_split = 1;
    for (int i = 0; i < t->n_vocab && t->spm_word_split; i++) {
        const xle_tok_entry *e = &t->entries[i];
        if (e->type != XLE_TOKTYPE_NORMAL && e->type != XLE_TOKTYPE_USER_DEFINED) continue;
        const char *p = t->strings + e->piece;
        for (uint32_t k = 1; k + 3 <= e->piece_len; k++)
            if (!memcmp(p + k, "\xe2\x96\x81", 3) && (k < 3 || memcmp(p + k - 3, "\xe2\x96\x81", 3))) {
                t->spm_word_split = 0;
                break;
            }
    }
    return b->n_merges > 0 || b->spm_rank_merges ? build_merges(t, b, &t->piece_to_id, 0, err) : XLE_OK;
}

static xle_status build_bpe_maps(xle_tokenizer *t, const xle_tok_builder *b, xle_error *err) {
    if (xle_strmap_init(&t->bytes_to_id, (uint32_t)t->n_vocab) != 0)
        return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", t->source);
    /* normal tokens first: they are what merges produce; added tokens only fill gaps */
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < t->n_vocab; i++) {
            const xle_tok_entry *e = &t->entries[i];
            int normal = e->type == XLE_TOKTYPE_NORMAL || e->type == XLE_TOKTYPE_BYTE;
            if ((pass == 0) != normal || e->bytes_len == 0 || e->type == XLE_TOKTYPE_CONTROL) continue;
            int32_t old;
            int r = xle_strmap_put(&t->bytes_to_id, t->strings + e->bytes, e->bytes_len, i, &old);
            if (r < 0) return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", t->source);
            if (r == 0 && pass == 0)
                return xle_fail(err, XLE_ERR_FORMAT, "%s: tokens: duplicate token '%.40s' (ids %d and %d)",
                                t->source, t->strings + e->piece, old, i);
        }
    for (int v = 0; v < 256; v++) {
        char c = (char)v;
        t->byte_token[v] = xle_strmap_get(&t->bytes_to_id, &c, 1);
    }
    if (!b->rank_by_token) return build_merges(t, b, &t->bytes_to_id, !b->merges_are_bytes, err);
    /* tiktoken: any two adjacent tokens whose concatenation is a token merge, rank = that
     * token's id; listing every such pair up front makes a merge step an integer lookup */
    if (xle_pairmap_init(&t->merges, (uint32_t)t->n_vocab * 4) != 0)
        return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", t->source);
    for (int i = 0; i < t->n_vocab; i++) {
        const xle_tok_entry *e = &t->entries[i];
        if (e->type != XLE_TOKTYPE_NORMAL) continue;
        const char *p = t->strings + e->bytes;
        for (uint32_t k = 1; k < e->bytes_len; k++) {
            int32_t l = xle_strmap_get(&t->bytes_to_id, p, k);
            int32_t r = l < 0 ? -1 : xle_strmap_get(&t->bytes_to_id, p + k, e->bytes_len - k);
            if (r >= 0 && xle_pairmap_put(&t->merges, l, r, i, i) < 0)
                return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", t->source);
        }
    }
    return XLE_OK;
}

static xle_status build_maps(xle_tokenizer *t, const xle_tok_builder *b, xle_error *err) {
    for (int i = 0; i < 256; i++) t->byte_token[i] = -1;
    return t->kind == XLE_TOK_SPM ? build_spm_maps(t, b, err) : build_bpe_maps(t, b, err);
}

static xle_status check_id(const xle_tokenizer *t, int32_t id, const char *field, xle_error *err) {
    if (id < -1 || id >= t->n_vocab)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: id %d is outside the vocabulary [0, %d)",
                        t->source, field, id, t->n_vocab);
    return XLE_OK;
}

xle_status xle_tok_builder_finish(xle_tok_builder *b, xle_tokenizer **out, xle_error *err) {
    *out = NULL;
    xle_status st = XLE_OK;
    if (b->n == 0) {
        st = xle_fail(err, XLE_ERR_FORMAT, "%s: tokens: the vocabulary is empty", b->source);
        xle_tok_builder_free(b);
        return st;
    }
    xle_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        xle_tok_builder_free(b);
        return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    }
    t->kind = b->kind;
    t->source = b->source, b->source = NULL;
    t->n_vocab = b->n;
    t->entries = b->entries, b->entries = NULL;
    t->strings = b->strings, b->strings = NULL;
    t->strings_len = b->strings_len;
    t->rank_by_token = b->rank_by_token;
    t->ignore_merges = b->ignore_merges;
    t->pretok = b->pretok, b->pretok = NULL;
    t->norm = b->norm;
    t->spm_prefix = b->spm_prefix;
    t->spm_escape_spaces = b->spm_escape_spaces;
    t->spm_remove_extra_ws = b->spm_remove_extra_ws;
    t->spm_rank_merges = b->spm_rank_merges;
    t->bos_id = b->bos_id, t->eos_id = b->eos_id, t->unk_id = b->unk_id;
    t->eot_id = b->eot_id, t->pad_id = b->pad_id;
    t->add_bos = b->add_bos, t->add_eos = b->add_eos;
    /* build_maps reads the merge texts from the (moved) arena */
    b->strings = t->strings;
    st = check_id(t, t->bos_id, "bos_token_id", err);
    if (st == XLE_OK) st = check_id(t, t->eos_id, "eos_token_id", err);
    if (st == XLE_OK) st = check_id(t, t->unk_id, "unknown_token_id", err);
    if (st == XLE_OK) st = check_id(t, t->eot_id, "eot_token_id", err);
    if (st == XLE_OK) st = check_id(t, t->pad_id, "padding_token_id", err);
    if (st == XLE_OK) st = build_maps(t, b, err);
    if (st == XLE_OK) st = build_added(t, err);
    b->strings = NULL;
    xle_tok_builder_free(b);
    if (st != XLE_OK) {
        xle_tokenizer_free(t);
        return st;
    }
    if (t->bos_id < 0) t->add_bos = 0;
    if (t->eos_id < 0) t->add_eos = 0;
    *out = t;
    return XLE_OK;
}

/* ---- public accessors ---------------------------------------------------------------- */

void xle_tokenizer_free(xle_tokenizer *tok) {
    if (!tok) return;
    free(tok->source);
    free(tok->entries);
    free(tok->strings);
    xle_strmap_free(&tok->piece_to_id);
    xle_strmap_free(&tok->bytes_to_id);
    xle_pairmap_free(&tok->merges);
    xle_pretok_free(tok->pretok);
    free(tok->added);
    free(tok);
}

int xle_tokenizer_vocab_size(const xle_tokenizer *tok) { return tok ? tok->n_vocab : 0; }
int xle_tokenizer_bos_id(const xle_tokenizer *tok) { return tok ? tok->bos_id : -1; }
int xle_tokenizer_eos_id(const xle_tokenizer *tok) { return tok ? tok->eos_id : -1; }
int xle_tokenizer_adds_bos(const xle_tokenizer *tok) { return tok ? tok->add_bos : 0; }

const char *xle_tokenizer_piece(const xle_tokenizer *tok, int32_t id) {
    if (!tok || id < 0 || id >= tok->n_vocab) return NULL;
    return tok->strings + tok->entries[id].piece;
}
