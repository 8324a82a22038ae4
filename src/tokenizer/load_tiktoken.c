/*
 * load_tiktoken.c: tiktoken rank files (Llama-3's original tokenizer.model, Qwen's
 * qwen.tiktoken): one "BASE64(token bytes) RANK" line per token, rank = id = merge priority.
 * The file does not name its pre-tokenizer or special tokens; they come from the family, which
 * is recognised by the number of ranks (128000: Llama-3, 151643: Qwen/Qwen2) or given by the
 * caller (xle_tokenizer_load_tiktoken_family).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

static int b64_value(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Strict base64 with padding; returns the decoded length or -1. dst holds 3 * len / 4 bytes. */
static long b64_decode(const char *s, size_t len, char *dst) {
    if (len == 0 || len % 4 != 0) return -1;
    long n = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4], pad = 0;
        for (int k = 0; k < 4; k++) {
            if (s[i + k] == '=' && i + 4 == len && k >= 2) {
                v[k] = 0;
                pad++;
            } else if (pad || (v[k] = b64_value(s[i + k])) < 0) {
                return -1;
            }
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        dst[n++] = (char)(w >> 16);
        if (pad < 2) dst[n++] = (char)(w >> 8);
        if (pad < 1) dst[n++] = (char)w;
    }
    return n;
}

typedef struct tiktoken_family {
    const char *name;
    int n_ranks;          /* how the family is recognised */
    const char *pretok;
    xle_tok_norm norm;
    int32_t bos, eos, eot;
    int add_bos;
} tiktoken_family;

static const tiktoken_family families[] = {
    {"llama3", 128000, "llama3", XLE_NORM_NONE, 128000, 128001, 128009, 1},
    {"qwen2", 151643, "qwen2", XLE_NORM_NFC, -1, 151643, 151645, 0},
};

/* The special tokens that follow the ranks. */
static xle_status add_specials(xle_tok_builder *b, const tiktoken_family *f, xle_error *err) {
    char name[64];
    xle_status st = XLE_OK;
    if (!strcmp(f->name, "llama3")) {
        /* meta-llama/llama3 llama/tokenizer.py */
        static const char *const fixed[] = {"<|begin_of_text|>", "<|end_of_text|>",
                                            "<|reserved_special_token_0|>", "<|reserved_special_token_1|>",
                                            "<|reserved_special_token_2|>", "<|reserved_special_token_3|>",
                                            "<|start_header_id|>", "<|end_header_id|>",
                                            "<|reserved_special_token_4|>", "<|eot_id|>"};
        for (int i = 0; i < 256 && st == XLE_OK; i++) {
            const char *s = name;
            if (i < 10) s = fixed[i];
            else snprintf(name, sizeof name, "<|reserved_special_token_%d|>", i - 5);
            st = xle_tok_builder_add(b, s, strlen(s), 0.0f, XLE_TOKTYPE_CONTROL, err);
        }
        return st;
    }
    static const char *const qwen[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
    for (int i = 0; i < 3 && st == XLE_OK; i++)
        st = xle_tok_builder_add(b, qwen[i], strlen(qwen[i]), 0.0f, XLE_TOKTYPE_CONTROL, err);
    return st;
}

static xle_status parse_ranks(const char *path, const char *data, size_t size, xle_tok_builder *b,
                              xle_error *err) {
    char *buf = malloc(size + 4);
    if (!buf) return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", path);
    xle_status st = XLE_OK;
    size_t pos = 0;
    for (int line = 1; pos < size && st == XLE_OK; line++) {
        const char *ls = data + pos, *nl = memchr(ls, '\n', size - pos);
        size_t ll = nl ? (size_t)(nl - ls) : size - pos;
        pos += ll + (nl ? 1 : 0);
        if (ll > 0 && ls[ll - 1] == '\r') ll--;
        const char *sp = memchr(ls, ' ', ll);
        if (!sp) {
            st = xle_fail(err, XLE_ERR_FORMAT, "%s: line %d: expected 'BASE64 RANK'", path, line);
            break;
        }
        long n = b64_decode(ls, (size_t)(sp - ls), buf);
        if (n <= 0) {
            st = xle_fail(err, XLE_ERR_FORMAT, "%s: line %d: token: bad base64 '%.*s'", path, line,
                          (int)((sp - ls) < 40 ? (sp - ls) : 40), ls);
            break;
        }
        long long rank = 0;
        const char *p = sp + 1, *e = ls + ll;
        if (p == e) rank = -1;
        for (; p < e && rank >= 0; p++)
            rank = (*p >= '0' && *p <= '9' && rank < INT32_MAX) ? rank * 10 + (*p - '0') : -1;
        if (rank != line - 1) {
            st = xle_fail(err, XLE_ERR_FORMAT, "%s: line %d: rank: '%.*s' (ranks must be 0, 1, 2, ... in order)",
                          path, line, (int)(e - sp - 1 < 20 ? e - sp - 1 : 20), sp + 1);
            break;
        }
        st = xle_tok_builder_add_raw(b, buf, (size_t)n, XLE_TOKTYPE_NORMAL, err);
    }
    free(buf);
    return st;
}

static xle_status load(const char *path, const char *data, size_t size, const char *family,
                       xle_tokenizer **out, xle_error *err) {
    *out = NULL;
    xle_tok_builder *b;
    xle_status st = xle_tok_builder_new(XLE_TOK_BPE, path, &b, err);
    if (st == XLE_OK) st = parse_ranks(path, data, size, b, err);
    if (st != XLE_OK) {
        xle_tok_builder_free(b);
        return st;
    }
    const tiktoken_family *f = NULL;
    for (size_t k = 0; k < sizeof families / sizeof families[0]; k++)
        if (family ? !strcmp(family, families[k].name) : b->n == families[k].n_ranks) f = &families[k];
    if (!f) {
        st = family ? xle_fail(err, XLE_ERR_ARG, "%s: tiktoken family '%s' is not known (llama3, qwen2)", path, family)
                    : xle_fail(err, XLE_ERR_UNSUPPORTED,
                               "%s: %d tiktoken ranks match no known family (128000: Llama-3, 151643: Qwen2)",
                               path, b->n);
        xle_tok_builder_free(b);
        return st;
    }
    /* the specials follow the ranks; their ids keep the family's offsets from the first one */
    int32_t n_ranks = b->n;
    st = add_specials(b, f, err);
    if (st == XLE_OK) {
        char where[600];
        snprintf(where, sizeof where, "%s: pre-tokenizer", path);
        st = xle_pretok_from_name(f->pretok, &b->pretok, where, err);
    }
    if (st != XLE_OK) {
        xle_tok_builder_free(b);
        return st;
    }
    b->rank_by_token = 1;
    b->ignore_merges = 1; /* tiktoken looks a piece up whole before merging */
    b->norm = f->norm;
    b->bos_id = f->bos >= 0 ? n_ranks + (f->bos - f->n_ranks) : -1;
    b->eos_id = f->eos >= 0 ? n_ranks + (f->eos - f->n_ranks) : -1;
    b->eot_id = f->eot >= 0 ? n_ranks + (f->eot - f->n_ranks) : -1;
    b->add_bos = f->add_bos;
    return xle_tok_builder_finish(b, out, err);
}

xle_status xle_tokenizer_load_tiktoken(const char *path, const char *data, size_t size,
                                       xle_tokenizer **out, xle_error *err) {
    return load(path, data, size, NULL, out, err);
}

xle_status xle_tokenizer_load_tiktoken_family(const char *path, const char *family,
                                              xle_tokenizer **out, xle_error *err) {
    *out = NULL;
    char *data;
    size_t size;
    xle_status st = xle_tok_read_file(path, &data, &size, err);
    if (st != XLE_OK) return st;
    st = load(path, data, size, family, out, err);
    free(data);
    return st;
}
