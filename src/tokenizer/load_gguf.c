/*
 * load_gguf.c: a tokenizer from a GGUF file's tokenizer.ggml.* keys (formats-detail.md 1.1):
 * model "llama" (SentencePiece BPE: tokens, scores, token_type) or "gpt2" (byte-level BPE:
 * tokens in GPT-2's alphabet, merges "left right", pre naming the regex set); special ids,
 * add_bos_token / add_eos_token, add_space_prefix. Defaults as llama.cpp's where it is sane:
 * SPM bos 1, eos 2, unk 0, add_bos true, dummy prefix true; byte-level: no BOS unless the file
 * names one, add_bos only for the Llama-3 pre-tokenizer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "tokenizer/tokenizer_internal.h"

static const xle_gguf_kv *find_array(const xle_gguf *g, const char *key, uint32_t elem_type,
                                     int required, xle_status *st, xle_error *err) {
    const xle_gguf_kv *kv = xle_gguf_find(g, key);
    if (!kv) {
        if (required) *st = xle_fail(err, XLE_ERR_FORMAT, "%s: %s: missing", g->path, key);
        return NULL;
    }
    if (kv->type != XLE_GGUF_ARRAY || kv->arr_type != elem_type) {
        *st = xle_fail(err, XLE_ERR_FORMAT, "%s: %s: wrong type (expected an array of %s)", g->path, key,
                       elem_type == XLE_GGUF_STRING ? "strings" : elem_type == XLE_GGUF_F32 ? "f32" : "i32");
        return NULL;
    }
    return kv;
}

/* An integer id key: -1 when absent; *st set on a wrong type. */
static int32_t get_id(const xle_gguf *g, const char *key, int32_t dflt, xle_status *st, xle_error *err) {
    int ok = 1;
    int64_t v = xle_gguf_get_int(g, key, dflt, &ok);
    if (v == (int64_t)UINT32_MAX) v = -1; /* llama.cpp writes "none" as u32 -1 */
    if (!ok) *st = xle_fail(err, XLE_ERR_FORMAT, "%s: %s: wrong type (expected an integer)", g->path, key);
    if (v < -1 || v > INT32_MAX) *st = xle_fail(err, XLE_ERR_FORMAT, "%s: %s: %lld is not a token id", g->path, key, (long long)v);
    return (int32_t)v;
}

static int get_bool(const xle_gguf *g, const char *key, int dflt, xle_status *st, xle_error *err) {
    const xle_gguf_kv *kv = xle_gguf_find(g, key);
    if (!kv) return dflt;
    if (kv->type != XLE_GGUF_BOOL) {
        *st = xle_fail(err, XLE_ERR_FORMAT, "%s: %s: wrong type (expected a bool)", g->path, key);
        return dflt;
    }
    return kv->u64 != 0;
}

static xle_status add_merges(const xle_gguf *g, xle_tok_builder *b, xle_error *err) {
    xle_status st = XLE_OK;
    const xle_gguf_kv *kv = find_array(g, "tokenizer.ggml.merges", XLE_GGUF_STRING, 1, &st, err);
    if (!kv) return st;
    for (uint64_t i = 0; i < kv->arr_count && st == XLE_OK; i++) {
        xle_gguf_str m = kv->arr_strs[i];
        /* split at the first space after position 0 (a side may itself start with a space) */
        const char *sp = m.len > 1 ? memchr(m.ptr + 1, ' ', m.len - 1) : NULL;
        if (!sp || sp + 1 == m.ptr + m.len)
            return xle_fail(err, XLE_ERR_FORMAT, "%s: tokenizer.ggml.merges: rule %llu '%.*s' is not 'left right'",
                            g->path, (unsigned long long)i, (int)(m.len < 60 ? m.len : 60), m.ptr);
        st = xle_tok_builder_add_merge(b, m.ptr, (size_t)(sp - m.ptr), sp + 1, (size_t)(m.ptr + m.len - sp - 1), err);
    }
    return st;
}

xle_status xle_tokenizer_from_gguf(const struct xle_gguf *g, xle_tokenizer **out, xle_error *err) {
    *out = NULL;
    char *model = xle_gguf_get_string(g, "tokenizer.ggml.model");
    if (!model) {
        const xle_gguf_kv *kv = xle_gguf_find(g, "tokenizer.ggml.model");
        return xle_fail(err, XLE_ERR_FORMAT, "%s: tokenizer.ggml.model: %s", g->path,
                        kv ? "wrong type (expected a string)" : "missing");
    }
    xle_tok_kind kind;
    if (!strcmp(model, "llama")) kind = XLE_TOK_SPM;
    else if (!strcmp(model, "gpt2")) kind = XLE_TOK_BPE;
    else {
        xle_status st = xle_fail(err, XLE_ERR_UNSUPPORTED,
                                 "%s: tokenizer.ggml.model: '%s' is not supported (only \"llama\" and \"gpt2\")",
                                 g->path, model);
        free(model);
        return st;
    }
    free(model);
    xle_status st = XLE_OK;
    const xle_gguf_kv *tokens = find_array(g, "tokenizer.ggml.tokens", XLE_GGUF_STRING, 1, &st, err);
    const xle_gguf_kv *scores = st == XLE_OK ? find_array(g, "tokenizer.ggml.scores", XLE_GGUF_F32, 0, &st, err) : NULL;
    const xle_gguf_kv *types = st == XLE_OK ? find_array(g, "tokenizer.ggml.token_type", XLE_GGUF_I32, 0, &st, err) : NULL;
    if (st != XLE_OK) return st;
    uint64_t n = tokens->arr_count;
    if (n == 0 || n >= INT32_MAX / 2)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: tokenizer.ggml.tokens: %llu tokens", g->path, (unsigned long long)n);
    if (scores && scores->arr_count != n)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: tokenizer.ggml.scores: %llu entries for %llu tokens", g->path,
                        (unsigned long long)scores->arr_count, (unsigned long long)n);
    if (types && types->arr_count != n)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: tokenizer.ggml.token_type: %llu entries for %llu tokens", g->path,
                        (unsigned long long)types->arr_count, (unsigned long long)n);
    xle_tok_builder *b;
    if ((st = xle_tok_builder_new(kind, g->path, &b, err)) != XLE_OK) return st;
    for (uint64_t i = 0; i < n && st == XLE_OK; i++) {
        float score = 0.0f;
        int32_t type = XLE_TOKTYPE_NORMAL;
        if (scores) memcpy(&score, scores->arr_data + 4 * i, 4);
        if (types) memcpy(&type, types->arr_data + 4 * i, 4);
        st = xle_tok_builder_add(b, tokens->arr_strs[i].ptr, tokens->arr_strs[i].len, score, type, err);
    }
    char *pre = NULL;
    if (st == XLE_OK && kind == XLE_TOK_BPE) {
        st = add_merges(g, b, err);
        pre = xle_gguf_get_string(g, "tokenizer.ggml.pre");
        if (st == XLE_OK && !pre && xle_gguf_find(g, "tokenizer.ggml.pre"))
            st = xle_fail(err, XLE_ERR_FORMAT, "%s: tokenizer.ggml.pre: wrong type (expected a string)", g->path);
        if (st == XLE_OK) {
            char where[600];
            snprintf(where, sizeof where, "%s: tokenizer.ggml.pre", g->path);
            st = xle_pretok_from_name(pre ? pre : "default", &b->pretok, where, err);
        }
        if (st == XLE_OK && pre) {
            int llama3 = !strcmp(pre, "llama3") || !strcmp(pre, "llama-v3") || !strcmp(pre, "llama-bpe") ||
                         !strcmp(pre, "falcon3");
            b->ignore_merges = llama3;
            b->add_bos = llama3;
            if (!strcmp(pre, "qwen2") || !strcmp(pre, "deepseek-r1-qwen")) b->norm = XLE_NORM_NFC;
        }
    }
    free(pre);
    if (st == XLE_OK) {
        int spm = kind == XLE_TOK_SPM;
        b->bos_id = get_id(g, "tokenizer.ggml.bos_token_id", spm ? 1 : -1, &st, err);
        b->eos_id = get_id(g, "tokenizer.ggml.eos_token_id", spm ? 2 : -1, &st, err);
        b->unk_id = get_id(g, "tokenizer.ggml.unknown_token_id", spm ? 0 : -1, &st, err);
        b->eot_id = get_id(g, "tokenizer.ggml.eot_token_id", -1, &st, err);
        b->pad_id = get_id(g, "tokenizer.ggml.padding_token_id", -1, &st, err);
        b->add_bos = get_bool(g, "tokenizer.ggml.add_bos_token", spm ? 1 : b->add_bos, &st, err);
        b->add_eos = get_bool(g, "tokenizer.ggml.add_eos_token", 0, &st, err);
        if (spm && !get_bool(g, "tokenizer.ggml.add_space_prefix", 1, &st, err)) b->spm_prefix = XLE_SPM_PREFIX_NONE;
        if (spm && get_bool(g, "tokenizer.ggml.remove_extra_whitespaces", 0, &st, err)) b->spm_remove_extra_ws = 1;
        /* an SPM vocabulary without the default ids (tiny test vocabularies) */
        if (!xle_gguf_find(g, "tokenizer.ggml.bos_token_id") && b->bos_id >= b->n) b->bos_id = -1;
        if (!xle_gguf_find(g, "tokenizer.ggml.eos_token_id") && b->eos_id >= b->n) b->eos_id = -1;
        if (!xle_gguf_find(g, "tokenizer.ggml.unknown_token_id") && b->unk_id >= b->n) b->unk_id = -1;
    }
    if (st != XLE_OK) {
        xle_tok_builder_free(b);
        return st;
    }
    return xle_tok_builder_finish(b, out, err);
}
