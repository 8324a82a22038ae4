/*
 * describe.c: what `xledit info` says about a model's files beyond its configuration: the
 * tensor types as stored (a Q8_0 GGUF is f32 in memory, so the in-memory dtype alone would hide
 * it) and what the tokenizer is and which file it came from.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/formats_internal.h"
#include "tokenizer/tokenizer_internal.h"

typedef struct type_count {
    const char *name;
    int n;
} type_count;

static void count_type(type_count *counts, int *n_types, int cap, const char *name) {
    for (int i = 0; i < *n_types; i++)
        if (strcmp(counts[i].name, name) == 0) {
            counts[i].n++;
            return;
        }
    if (*n_types < cap) counts[(*n_types)++] = (type_count){name, 1};
}

const char *xle_model_file_layout(const xle_model *m) {
    if (m->format == XLE_FORMAT_GGUF) return "gguf";
    if (m->format == XLE_FORMAT_LLAMA2C) return "llama2c";
    /* A model built in memory (xle_model_init_random) has no files and no state. */
    const xle_hf_state *s = m->format_state;
    return s && s->torch_bin ? "hf-pytorch-bin" : "hf-safetensors";
}

const char *xle_model_stored_dtypes(const xle_model *m, char *buf, size_t cap) {
    enum { CAP = 16 };
    type_count counts[CAP];
    int n_types = 0;
    if (m->format == XLE_FORMAT_GGUF) {
        const xle_gguf_state *s = m->format_state;
        for (uint64_t i = 0; i < s->gguf->n_tensors; i++)
            count_type(counts, &n_types, CAP, xle_ggml_type_name(s->gguf->tensors[i].ggml_type));
    } else if (m->format == XLE_FORMAT_HF) {
        const xle_hf_state *s = m->format_state;
        for (int k = 0; k < s->n_shards; k++)
            for (int i = 0; i < s->shards[k].st->n; i++)
                count_type(counts, &n_types, CAP, s->shards[k].st->entries[i].dtype);
    } else {
        int n = 2 + 9 * m->cfg.n_layers + (m->cfg.tied_embeddings ? 0 : 1);
        for (int i = 0; i < n; i++) count_type(counts, &n_types, CAP, "F32");
    }
    /* most frequent first */
    for (int i = 1; i < n_types; i++)
        for (int j = i; j > 0 && counts[j].n > counts[j - 1].n; j--) {
            type_count t = counts[j];
            counts[j] = counts[j - 1];
            counts[j - 1] = t;
        }
    size_t k = 0;
    if (cap) buf[0] = 0;
    for (int i = 0; i < n_types && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%s x%d", i ? ", " : "", counts[i].name, counts[i].n);
    return buf;
}

const char *xle_model_tokenizer_desc(const xle_model *m, char *buf, size_t cap) {
    const struct xle_tokenizer *tok = m->tokenizer;
    if (!tok) {
        snprintf(buf, cap, "none");
        return buf;
    }
    const char *kind = tok->kind == XLE_TOK_SPM ? "SentencePiece BPE" : "byte-level BPE";
    char from[160] = "";
    if (m->format == XLE_FORMAT_GGUF) {
        const xle_gguf_state *s = m->format_state;
        const xle_gguf_kv *kv = xle_gguf_find(s->gguf, "tokenizer.ggml.model");
        if (kv && kv->type == XLE_GGUF_STRING)
            snprintf(from, sizeof from, "tokenizer.ggml.* of the GGUF file (model \"%.*s\")",
                     (int)(kv->str.len > 20 ? 20 : kv->str.len), kv->str.ptr);
        else
            snprintf(from, sizeof from, "tokenizer.ggml.* of the GGUF file");
    } else if (m->format == XLE_FORMAT_HF) {
        const xle_hf_state *s = m->format_state;
        /* the same order as the HF loader's attach_tokenizer */
        char *tj = xle_path_join(s->dir, "tokenizer.json"), *tm = xle_path_join(s->dir, "tokenizer.model");
        snprintf(from, sizeof from, "%s", tj && xle_path_exists(tj)   ? "tokenizer.json"
                                          : tm && xle_path_exists(tm) ? "tokenizer.model (SentencePiece)"
                                                                      : "tokenizer.bin (llama2.c)");
        free(tj);
        free(tm);
    } else {
        const xle_llama2c_state *s = m->format_state;
        const char *p = s->tokenizer_path ? s->tokenizer_path : "?";
        const char *slash = strrchr(p, '/');
        snprintf(from, sizeof from, "%s (llama2.c)", slash ? slash + 1 : p);
    }
    snprintf(buf, cap, "%s, %d tokens, from %s", kind, tok->n_vocab, from);
    return buf;
}
