/*
 * gguf_model.c: xle_load_gguf, a model from a GGUF file as llama.cpp defines its architectures:
 * "llama" (which Mistral GGUFs also use), "qwen2", "gpt2", "gemma", "gemma2" and "bloom"
 * (docs/families.md §9; "gptj", for which llama.cpp defines no tensors, is refused by name).
 * Every tensor, the block-quantized ones (Q4_0 .. Q6_K) included, is a view into the private
 * mapping in its stored type: GPT-2's and BLOOM's fused blk.N.attn_qkv as three row views;
 * Gemma's norms, which the converter stores as 1 + w, are the one exception (f32 copies of w).
 * GGUF `llama` Q/K rows are in the interleaved RoPE order (llama.cpp's converter permutes them),
 * so such models compute with interleaved RoPE; the other archs are not permuted and use
 * rotate-half. The parsed file stays in model->format_state so that xle_model_save can write the
 * same KVs and tensor order back.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/formats_internal.h"

void xle_gguf_state_free(void *p) {
    xle_gguf_state *s = p;
    if (!s) return;
    xle_gguf_close(s->gguf);
    free(s->binds);
    free(s);
}

/* Reads an integer hyperparameter "{arch}.{key}". */
static xle_status get_hp(const xle_gguf *g, const char *arch, const char *key, int required,
                         int64_t dflt, int *out, xle_error *err) {
    char full[160];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    const xle_gguf_kv *kv = xle_gguf_find(g, full);
    if (!kv) {
        if (required) return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: missing", g->path, full);
        *out = (int)dflt;
        return XLE_OK;
    }
    int ok;
    int64_t v = xle_gguf_get_int(g, full, dflt, &ok);
    if (!ok) return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: not an integer scalar", g->path, full);
    if (v < -1 || v > INT32_MAX)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: %lld is out of range", g->path, full, (long long)v);
    *out = (int)v;
    return XLE_OK;
}

static xle_status get_fp(const xle_gguf *g, const char *arch, const char *key, double dflt,
                         float *out, xle_error *err) {
    char full[160];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    int ok;
    double v = xle_gguf_get_float(g, full, dflt, &ok);
    if (!ok) return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: not a number", g->path, full);
    *out = (float)v;
    return XLE_OK;
}

/* The GGUF architectures xledit reads (llama.cpp's names; Mistral GGUFs say "llama"). */
static const struct {
    const char *name;
    xle_arch arch;
} ARCHES[] = {{"llama", XLE_ARCH_LLAMA}, {"qwen2", XLE_ARCH_QWEN2}, {"gpt2", XLE_ARCH_GPT2},
              {"gemma", XLE_ARCH_GEMMA}, {"gemma2", XLE_ARCH_GEMMA2}, {"bloom", XLE_ARCH_BLOOM}};

/* general.architecture as an xle_arch, with the arch string for the "{arch}." keys. */
static xle_status read_arch(const xle_gguf *g, xle_config *c, char *arch, size_t arch_cap, xle_error *err) {
    const xle_gguf_kv *a = xle_gguf_find(g, "general.architecture");
    if (!a || a->type != XLE_GGUF_STRING)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: general.architecture: missing or not a string", g->path);
    for (size_t i = 0; i < sizeof ARCHES / sizeof ARCHES[0]; i++)
        if (xle_gguf_str_eq(a->str, ARCHES[i].name)) {
            c->arch = ARCHES[i].arch;
            snprintf(arch, arch_cap, "%s", ARCHES[i].name);
            return XLE_OK;
        }
    const int len = (int)(a->str.len > 40 ? 40 : a->str.len);
    /* GPT-J: llama.cpp's llama-arch.cpp lists only token_embd for "gptj" and its converter has
     * no GPT-J class, so no file defines where the other tensors are. */
    if (xle_gguf_str_eq(a->str, "gptj"))
        return xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: general.architecture: 'gptj': llama.cpp "
                        "defines no GPT-J tensor layout (load the Hugging Face folder instead)", g->path);
    return xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: general.architecture: '%.*s' is not supported "
                    "(llama, qwen2, gpt2, gemma, gemma2, bloom)", g->path, len, a->str.ptr);
}

/* A float key that must be present (llama.cpp's get_key without a default). */
static xle_status get_fp_required(const xle_gguf *g, const char *arch, const char *key, float *out,
                                  xle_error *err) {
    char full[160];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    if (!xle_gguf_find(g, full)) return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: missing", g->path, full);
    return get_fp(g, arch, key, 0.0, out, err);
}

/* Gemma-2's extras: soft-capping (llama.cpp's defaults 50 and 30 when absent), the window of the
 * even layers (4096 when absent) and the score scale. The file carries no
 * query_pre_attn_scalar: llama.cpp scales queries by head_dim^-1/2, by (n_embd / n_head)^-1/2 for
 * the 46-layer 27B (whose query_pre_attn_scalar that is), and so does this loader. */
static xle_status read_gemma2(const xle_gguf *g, const char *arch, xle_config *c, xle_error *err) {
    xle_status st;
    if ((st = get_fp(g, arch, "attn_logit_softcapping", 50.0, &c->attn_softcap, err)) ||
        (st = get_fp(g, arch, "final_logit_softcapping", 30.0, &c->final_softcap, err)) ||
        (st = get_hp(g, arch, "attention.sliding_window", 0, 4096, &c->sliding_window, err)))
        return st;
    if (!(c->attn_softcap >= 0) || !(c->final_softcap >= 0))
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s.%s: negative", g->path, arch,
                        c->attn_softcap < 0 ? "attn_logit_softcapping" : "final_logit_softcapping");
    if (c->sliding_window < 0)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s.attention.sliding_window: negative", g->path, arch);
    c->attn_scale = 0.0f; /* 1/sqrt(head_dim) */
    if (c->n_layers == 46 && c->n_heads > 0) c->attn_scale = (float)(1.0 / sqrt((double)c->dim / c->n_heads));
    return XLE_OK;
}

static xle_status read_config(const xle_gguf *g, xle_config *c, char *arch, size_t arch_cap,
                              xle_error *err) {
    xle_status st = read_arch(g, c, arch, arch_cap, err);
    if (st != XLE_OK) return st;
    const int gpt2 = c->arch == XLE_ARCH_GPT2;
    /* GPT-2 and BLOOM: LayerNorm, one kv head per head, no RoPE (learned positions; ALiBi) */
    const int layer_norm = gpt2 || c->arch == XLE_ARCH_BLOOM;
    const int gemma = c->arch == XLE_ARCH_GEMMA || c->arch == XLE_ARCH_GEMMA2;
    if ((st = get_hp(g, arch, "embedding_length", 1, 0, &c->dim, err)) ||
        (st = get_hp(g, arch, "feed_forward_length", 1, 0, &c->ffn_dim, err)) ||
        (st = get_hp(g, arch, "block_count", 1, 0, &c->n_layers, err)) ||
        (st = get_hp(g, arch, "attention.head_count", 1, 0, &c->n_heads, err)) ||
        (st = get_hp(g, arch, "attention.head_count_kv", 0, c->n_heads, &c->n_kv_heads, err)) ||
        /* GPT-2's learned positions have context_length rows */
        (st = get_hp(g, arch, "context_length", gpt2, 2048, &c->max_seq_len, err)) ||
        (!layer_norm && (st = get_hp(g, arch, "attention.sliding_window", 0, 0, &c->sliding_window, err))))
        return st;
    int dflt_hd = c->n_heads > 0 ? c->dim / c->n_heads : 0;
    if ((st = get_hp(g, arch, "attention.key_length", 0, dflt_hd, &c->head_dim, err))) return st;
    int vlen = c->head_dim;
    if ((st = get_hp(g, arch, "attention.value_length", 0, c->head_dim, &vlen, err))) return st;
    if (vlen != c->head_dim)
        return xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: %s.attention.value_length: %d differs from "
                        "key_length %d", g->path, arch, vlen, c->head_dim);
    if (layer_norm) {
        if ((st = get_fp_required(g, arch, "attention.layer_norm_epsilon", &c->norm_eps, err))) return st;
        if (c->n_heads > 0 && c->dim % c->n_heads != 0)
            return xle_fail(err, XLE_ERR_FORMAT, "%s: %s.embedding_length: %d is not a multiple of "
                            "attention.head_count %d", g->path, arch, c->dim, c->n_heads);
        if (c->n_kv_heads != c->n_heads)
            return xle_fail(err, XLE_ERR_FORMAT, "%s: %s.attention.head_count_kv: %d, %s has one "
                            "per head (%d)", g->path, arch, c->n_kv_heads, gpt2 ? "GPT-2" : "BLOOM",
                            c->n_heads);
        c->rope_theta = 10000.0f; /* no RoPE: a valid number for the validator */
    } else if (gemma) {
        if ((st = get_fp_required(g, arch, "attention.layer_norm_rms_epsilon", &c->norm_eps, err)) ||
            (st = get_fp(g, arch, "rope.freq_base", 10000.0, &c->rope_theta, err)))
            return st;
        if (c->arch == XLE_ARCH_GEMMA2 && (st = read_gemma2(g, arch, c, err))) return st;
    } else if ((st = get_fp(g, arch, "attention.layer_norm_rms_epsilon",
                            c->arch == XLE_ARCH_QWEN2 ? 1e-6 : 1e-5, &c->norm_eps, err)) ||
               (st = get_fp(g, arch, "rope.freq_base", 10000.0, &c->rope_theta, err))) {
        return st;
    }
    char key[160];
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    const xle_gguf_kv *sc = xle_gguf_find(g, key);
    if (sc && sc->type == XLE_GGUF_STRING && xle_gguf_str_eq(sc->str, "linear")) {
        c->rope_scaling = XLE_ROPE_LINEAR;
        if ((st = get_fp(g, arch, "rope.scaling.factor", 1.0, &c->rope_factor, err))) return st;
    } else if (sc && !(sc->type == XLE_GGUF_STRING && xle_gguf_str_eq(sc->str, "none"))) {
        return xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: %s: only 'linear' and 'none' are supported",
                        g->path, key);
    }
    /* llama.cpp permutes Q/K rows for "llama" only; Gemma and Qwen2 rotate halves (NEOX). */
    c->rope_interleaved = c->arch == XLE_ARCH_LLAMA;
    static const char *const id_keys[2] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"};
    int *ids[2] = {&c->bos_id, &c->eos_id};
    for (int i = 0; i < 2; i++) {
        int ok;
        int64_t v = xle_gguf_get_int(g, id_keys[i], -1, &ok);
        if (!ok || v < -1 || v > INT32_MAX)
            return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: not a token id", g->path, id_keys[i]);
        *ids[i] = (int)v;
    }
    return XLE_OK;
}

/* Views rows [row0, row0 + nrows) of a stored tensor as t (nrows < 0: all of it), in its stored
 * type. A vector's rows are its elements. */
static xle_status view_rows(xle_model *m, const xle_gguf_tensor_info *ti, const char *name,
                            int64_t row0, int64_t nrows, xle_tensor *t, xle_error *err) {
    int nd = (int)ti->n_dims;
    if (nd < 1) return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: n_dims: 0", m->path, name);
    int64_t shape[4];
    for (int i = 0; i < nd; i++) shape[i] = ti->ne[nd - 1 - i];
    xle_dtype dt;
    switch (ti->ggml_type) {
    case XLE_GGML_F32: dt = XLE_F32; break;
    case XLE_GGML_F16: dt = XLE_F16; break;
    case XLE_GGML_BF16: dt = XLE_BF16; break;
    default:
        dt = xle_dtype_of_ggml(ti->ggml_type);
        if (!xle_dtype_is_quantized(dt))
            return xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: %s: type %s is not supported (F32, F16, "
                            "BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K)",
                            m->path, name, xle_ggml_type_name(ti->ggml_type));
        /* Kept as stored: the products work on the blocks (tensor/quant_dot.c). */
        break;
    }
    const unsigned char *data = ti->data;
    if (nrows >= 0) {
        if (nd == 1 && xle_dtype_is_quantized(dt))
            return xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: %s: a block-quantized vector cannot be "
                            "split", m->path, name);
        const size_t row_bytes = nd == 1 ? xle_dtype_size(dt) : xle_dtype_row_bytes(dt, shape[1]);
        data += (size_t)row0 * row_bytes;
        shape[0] = nrows;
    }
    return xle_tensor_view(m, t, dt, nd, shape, data, err);
}

static int is_norm_weight(xle_wkind k) {
    return k == XLE_W_OUT_NORM || k == XLE_W_ATTN_NORM || k == XLE_W_FFN_NORM ||
           k == XLE_W_POST_ATTN_NORM || k == XLE_W_POST_FFN_NORM;
}

/* A Gemma norm the file stores as 1 + w (convert_hf_to_gguf.py adds 1): the slot becomes an f32
 * copy of w, which the family's (1 + w) RMSNorm reads; save adds the 1 back. */
static xle_status norm_minus_one(xle_model *m, xle_tensor *t, const char *name, xle_error *err) {
    if (xle_dtype_is_quantized(t->dtype))
        return xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: %s: a block-quantized norm is not supported",
                        m->path, name);
    const int64_t n = xle_tensor_numel(t);
    float *w = malloc((size_t)(n ? n : 1) * sizeof *w);
    if (!w) return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", m->path);
    for (int64_t i = 0; i < n; i++) w[i] = xle_tensor_get_f32(t, i) - 1.0f;
    xle_status st = xle_model_own_buffer(m, w, err); /* frees w on failure */
    if (st != XLE_OK) return st;
    t->data = w;
    t->dtype = XLE_F32;
    return XLE_OK;
}

/* Binds the model slot (kind, layer) to the tensor of that name, if present. */
static xle_status bind_tensor(xle_model *m, xle_gguf_state *s, xle_wkind kind, int layer,
                              xle_error *err) {
    const xle_family *fam = xle_family_of(m->cfg.arch);
    char name[96];
    xle_family_weight_name(fam, XLE_FORMAT_GGUF, kind, layer, name, sizeof name);
    const xle_gguf_tensor_info *ti = xle_gguf_find_tensor(s->gguf, name);
    if (!ti) return XLE_OK; /* missing tensors are reported by the shape check */
    xle_tensor *t = xle_weight_slot(&m->w, kind, layer);
    xle_fmt_bind *b = &s->binds[ti - s->gguf->tensors];
    xle_status st = view_rows(m, ti, name, 0, -1, t, err);
    if (st != XLE_OK) return st;
    if (fam->gguf_norm_plus_one && is_norm_weight(kind)) {
        if ((st = norm_minus_one(m, t, name, err)) != XLE_OK) return st;
        b->layout = XLE_LAYOUT_PLUS_ONE;
    }
    b->slot = t;
    b->loaded_data = t->data;
    b->loaded_dtype = t->dtype;
    return XLE_OK;
}

/* GPT-2's blk.N.attn_qkv.{weight,bias}: rows q | k | v, bound as three views. */
static xle_status bind_fused_qkv(xle_model *m, xle_gguf_state *s, int layer, int bias, xle_error *err) {
    char name[96];
    snprintf(name, sizeof name, "blk.%d.attn_qkv.%s", layer, bias ? "bias" : "weight");
    const xle_gguf_tensor_info *ti = xle_gguf_find_tensor(s->gguf, name);
    if (!ti)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: missing (the GGUF metadata says %d layers)",
                        m->path, name, m->cfg.n_layers);
    const xle_config *c = &m->cfg;
    const int64_t q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
    const int want_nd = bias ? 1 : 2;
    const int ok = (int)ti->n_dims == want_nd && ti->ne[want_nd - 1] == q + 2 * kv &&
                   (bias || ti->ne[0] == c->dim);
    if (!ok) {
        if (bias)
            return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: shape does not match the GGUF metadata "
                            "(expected [%lld])", m->path, name, (long long)(q + 2 * kv));
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: shape does not match the GGUF metadata "
                        "(expected [%lld, %d])", m->path, name, (long long)(q + 2 * kv), c->dim);
    }
    xle_layer_weights *L = &m->w.layers[layer];
    xle_tensor *parts[3] = {bias ? &L->bq : &L->wq, bias ? &L->bk : &L->wk, bias ? &L->bv : &L->wv};
    const int64_t row0[3] = {0, q, q + kv}, rows[3] = {q, kv, kv};
    xle_fmt_bind *b = &s->binds[ti - s->gguf->tensors];
    for (int p = 0; p < 3; p++) {
        xle_status st = view_rows(m, ti, name, row0[p], rows[p], parts[p], err);
        if (st != XLE_OK) return st;
        b->parts[p] = parts[p];
        b->parts_loaded[p] = parts[p]->data;
    }
    b->layout = XLE_LAYOUT_FUSED_QKV_ROWS;
    b->slot = parts[0];
    b->loaded_data = parts[0]->data;
    b->loaded_dtype = parts[0]->dtype;
    return XLE_OK;
}

static int is_qkv(xle_wkind k) {
    return k == XLE_W_Q || k == XLE_W_K || k == XLE_W_V || k == XLE_W_BQ || k == XLE_W_BK || k == XLE_W_BV;
}

static xle_status bind_all(xle_model *m, xle_gguf_state *s, xle_error *err) {
    const xle_family *fam = xle_family_of(m->cfg.arch);
    for (int k = 0; k < XLE_W_KIND_COUNT; k++) {
        if (fam->has[k] == XLE_ABSENT) continue;
        if (fam->gguf_fused_qkv && is_qkv((xle_wkind)k)) continue;
        int nl = xle_wkind_per_layer((xle_wkind)k) ? m->cfg.n_layers : 1;
        for (int l = 0; l < nl; l++) {
            xle_status st = bind_tensor(m, s, (xle_wkind)k, l, err);
            if (st != XLE_OK) return st;
        }
    }
    if (fam->gguf_fused_qkv)
        for (int l = 0; l < m->cfg.n_layers; l++)
            for (int bias = 0; bias < 2; bias++) {
                xle_status st = bind_fused_qkv(m, s, l, bias, err);
                if (st != XLE_OK) return st;
            }
    return XLE_OK;
}

/* Most common stored dtype among the bound matrices, by bytes. */
static xle_dtype dominant_dtype(const xle_gguf_state *s) {
    int64_t count[XLE_DTYPE_COUNT] = {0};
    for (uint64_t i = 0; i < s->gguf->n_tensors; i++) {
        if (!s->binds[i].slot) continue;
        count[s->binds[i].slot->dtype] += (int64_t)s->gguf->tensors[i].nbytes;
    }
    xle_dtype best = XLE_F32;
    for (int d = 0; d < XLE_DTYPE_COUNT; d++)
        if (count[d] > count[best]) best = (xle_dtype)d;
    return best;
}

static xle_status attach_tokenizer(xle_model *m, const xle_gguf *g, xle_error *err) {
    if (!xle_gguf_find(g, "tokenizer.ggml.tokens")) return XLE_OK;
    xle_error terr = {0};
    xle_status st = xle_tokenizer_from_gguf(g, &m->tokenizer, &terr);
    if (st == XLE_ERR_UNSUPPORTED) {
        m->tokenizer = NULL; /* the weights are still usable with token ids */
        return XLE_OK;
    }
    if (st != XLE_OK) {
        if (err) *err = terr;
        return st;
    }
    return XLE_OK;
}

static xle_status load_into(xle_model *m, xle_gguf_state *s, xle_error *err) {
    xle_gguf *g = s->gguf;
    char arch[16];
    xle_status st = read_config(g, &m->cfg, arch, sizeof arch, err);
    if (st != XLE_OK) return st;
    /* vocab size: rows of token_embd.weight */
    const xle_gguf_tensor_info *te = xle_gguf_find_tensor(g, "token_embd.weight");
    if (!te) return xle_fail(err, XLE_ERR_FORMAT, "%s: token_embd.weight: missing", g->path);
    if (te->n_dims != 2)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: token_embd.weight: n_dims: %u, expected 2", g->path,
                        te->n_dims);
    if (te->ne[1] > INT32_MAX)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: token_embd.weight: ne[1]: %lld rows is absurdly "
                        "large", g->path, (long long)te->ne[1]);
    m->cfg.vocab_size = (int)te->ne[1];
    int kv_vocab = m->cfg.vocab_size;
    if ((st = get_hp(g, arch, "vocab_size", 0, m->cfg.vocab_size, &kv_vocab, err)) != XLE_OK) return st;
    if (kv_vocab != m->cfg.vocab_size)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s.vocab_size: %d, but token_embd.weight has %d "
                        "rows", g->path, arch, kv_vocab, m->cfg.vocab_size);
    if ((st = xle_config_validate_names(&m->cfg, g->path, &XLE_NAMES_GGUF, err)) != XLE_OK) return st;
    if ((st = xle_model_alloc_layers(m, err)) != XLE_OK) return st;
    if ((st = bind_all(m, s, err)) != XLE_OK) return st;
    m->cfg.tied_embeddings = m->w.lm_head.data == NULL;
    if (m->cfg.tied_embeddings) m->w.lm_head = m->w.tok_embd;
    if (m->cfg.arch == XLE_ARCH_QWEN2)
        for (int l = 0; l < m->cfg.n_layers; l++) {
            xle_layer_weights *L = &m->w.layers[l];
            if (!L->bq.data || !L->bk.data || !L->bv.data) {
                char name[96];
                xle_weight_name(XLE_FORMAT_GGUF, !L->bq.data ? XLE_W_BQ : !L->bk.data ? XLE_W_BK : XLE_W_BV,
                                l, name, sizeof name);
                return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: missing", g->path, name);
            }
        }
    if ((st = xle_model_check_shapes(m, g->path, err)) != XLE_OK) return st;
    /* RoPE over fewer dimensions than the head (partial rotary) is not what the engine does
     * (checked after the shapes, which name the cause when the sizes themselves are off). */
    int rope_dims = m->cfg.head_dim;
    if ((st = get_hp(g, arch, "rope.dimension_count", 0, m->cfg.head_dim, &rope_dims, err))) return st;
    if (rope_dims != m->cfg.head_dim)
        return xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: %s.rope.dimension_count: %d differs from "
                        "the head dimension %d (partial RoPE is not supported)", g->path, arch,
                        rope_dims, m->cfg.head_dim);
    m->weight_dtype = dominant_dtype(s);
    return attach_tokenizer(m, g, err);
}

xle_status xle_load_gguf(const char *path, xle_model **out, xle_error *err) {
    *out = NULL;
    xle_gguf *g;
    xle_status st = xle_gguf_open(path, &g, err);
    if (st != XLE_OK) return st;
    xle_model *m = xle_model_alloc(path);
    xle_gguf_state *s = calloc(1, sizeof *s);
    if (s) s->binds = calloc((size_t)(g->n_tensors ? g->n_tensors : 1), sizeof *s->binds);
    if (!m || !s || !s->binds) {
        xle_gguf_close(g);
        if (s) free(s->binds);
        free(s);
        xle_model_free(m);
        return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", path);
    }
    /* The model owns the mapping from here; the parsed header points into it. */
    void *base;
    size_t size;
    xle_gguf_detach_mapping(g, &base, &size);
    s->gguf = g;
    m->format = XLE_FORMAT_GGUF;
    m->format_state = s;
    m->format_state_free = xle_gguf_state_free;
    st = xle_model_own_mapping(m, base, size, err);
    if (st != XLE_OK) {
        xle_unmap(base, size);
        xle_model_free(m);
        return st;
    }
    st = load_into(m, s, err);
    if (st != XLE_OK) {
        xle_model_free(m);
        return st;
    }
    *out = m;
    return XLE_OK;
}
