/*
 * model_layout.c: the layout of a model's weights that every format loader and the writers
 * share: the table of weight kinds with the model slot of each, its tensor name in each format
 * and the shape the configuration implies; the shape check every loader runs before handing a
 * model out; tensor views into mappings; and the test save uses to tell an untouched tensor.
 * Loaders (hf.c, gguf_model.c, llama2c.c), save.c and the other modules call this file; it
 * calls none of them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/formats_internal.h"

/* ---- weight kinds ------------------------------------------------------------------------ */

xle_tensor *xle_weight_slot(xle_weights *w, xle_wkind kind, int layer) {
    switch (kind) {
    case XLE_W_TOK_EMBD: return &w->tok_embd;
    case XLE_W_OUT_NORM: return &w->out_norm;
    case XLE_W_LM_HEAD: return &w->lm_head;
    case XLE_W_ROPE_FREQS: return &w->rope_freqs;
    case XLE_W_POS_EMBD: return &w->pos_embd;
    case XLE_W_OUT_NORM_B: return &w->out_norm_b;
    case XLE_W_LM_HEAD_B: return &w->lm_head_b;
    case XLE_W_EMBD_NORM: return &w->embd_norm;
    case XLE_W_EMBD_NORM_B: return &w->embd_norm_b;
    default: break;
    }
    xle_layer_weights *l = &w->layers[layer];
    switch (kind) {
    case XLE_W_ATTN_NORM: return &l->attn_norm;
    case XLE_W_Q: return &l->wq;
    case XLE_W_K: return &l->wk;
    case XLE_W_V: return &l->wv;
    case XLE_W_O: return &l->wo;
    case XLE_W_BQ: return &l->bq;
    case XLE_W_BK: return &l->bk;
    case XLE_W_BV: return &l->bv;
    case XLE_W_BO: return &l->bo;
    case XLE_W_FFN_NORM: return &l->ffn_norm;
    case XLE_W_GATE: return &l->w_gate;
    case XLE_W_UP: return &l->w_up;
    case XLE_W_DOWN: return &l->w_down;
    case XLE_W_ATTN_NORM_B: return &l->attn_norm_b;
    case XLE_W_FFN_NORM_B: return &l->ffn_norm_b;
    case XLE_W_B_UP: return &l->b_up;
    case XLE_W_B_DOWN: return &l->b_down;
    case XLE_W_POST_ATTN_NORM: return &l->post_attn_norm;
    case XLE_W_POST_FFN_NORM: return &l->post_ffn_norm;
    default: return NULL;
    }
}

/* GGUF names (llama.cpp's, for every architecture it shares them with) and llama2.c's. The
 * Hugging Face names are the family's (family.c). */
static const char *const GGUF_NAMES[XLE_W_KIND_COUNT] = {
    [XLE_W_TOK_EMBD] = "token_embd.weight", [XLE_W_OUT_NORM] = "output_norm.weight",
    [XLE_W_LM_HEAD] = "output.weight", [XLE_W_ROPE_FREQS] = "rope_freqs.weight",
    [XLE_W_POS_EMBD] = "position_embd.weight", [XLE_W_OUT_NORM_B] = "output_norm.bias",
    [XLE_W_ATTN_NORM] = "attn_norm.weight", [XLE_W_Q] = "attn_q.weight", [XLE_W_K] = "attn_k.weight",
    [XLE_W_V] = "attn_v.weight", [XLE_W_O] = "attn_output.weight", [XLE_W_BQ] = "attn_q.bias",
    [XLE_W_BK] = "attn_k.bias", [XLE_W_BV] = "attn_v.bias", [XLE_W_BO] = "attn_output.bias",
    [XLE_W_FFN_NORM] = "ffn_norm.weight", [XLE_W_GATE] = "ffn_gate.weight",
    [XLE_W_UP] = "ffn_up.weight", [XLE_W_DOWN] = "ffn_down.weight",
    [XLE_W_ATTN_NORM_B] = "attn_norm.bias", [XLE_W_FFN_NORM_B] = "ffn_norm.bias",
    [XLE_W_B_UP] = "ffn_up.bias", [XLE_W_B_DOWN] = "ffn_down.bias",
    [XLE_W_LM_HEAD_B] = "output.bias", [XLE_W_POST_ATTN_NORM] = "post_attention_norm.weight",
    [XLE_W_POST_FFN_NORM] = "post_ffw_norm.weight", [XLE_W_EMBD_NORM] = "token_embd_norm.weight",
    [XLE_W_EMBD_NORM_B] = "token_embd_norm.bias"};
static const char *const L2C_NAMES[XLE_W_KIND_COUNT] = {
    [XLE_W_TOK_EMBD] = "token_embedding_table", [XLE_W_OUT_NORM] = "rms_final_weight",
    [XLE_W_LM_HEAD] = "wcls", [XLE_W_ROPE_FREQS] = "rope_freqs", [XLE_W_POS_EMBD] = "pos_embd",
    [XLE_W_OUT_NORM_B] = "final_norm_bias", [XLE_W_ATTN_NORM] = "rms_att_weight", [XLE_W_Q] = "wq",
    [XLE_W_K] = "wk", [XLE_W_V] = "wv", [XLE_W_O] = "wo", [XLE_W_BQ] = "bq", [XLE_W_BK] = "bk",
    [XLE_W_BV] = "bv", [XLE_W_BO] = "bo", [XLE_W_FFN_NORM] = "rms_ffn_weight", [XLE_W_GATE] = "w1",
    [XLE_W_UP] = "w3", [XLE_W_DOWN] = "w2", [XLE_W_ATTN_NORM_B] = "att_norm_bias",
    [XLE_W_FFN_NORM_B] = "ffn_norm_bias", [XLE_W_B_UP] = "b3", [XLE_W_B_DOWN] = "b2",
    [XLE_W_LM_HEAD_B] = "wcls_bias", [XLE_W_POST_ATTN_NORM] = "post_att_norm",
    [XLE_W_POST_FFN_NORM] = "post_ffn_norm", [XLE_W_EMBD_NORM] = "embd_norm",
    [XLE_W_EMBD_NORM_B] = "embd_norm_bias"};

const char *xle_family_weight_name(const xle_family *fam, xle_format fmt, xle_wkind kind, int layer,
                                   char *buf, size_t cap) {
    const char *base = fmt == XLE_FORMAT_HF ? fam->hf_name[kind]
                       : fmt == XLE_FORMAT_GGUF ? GGUF_NAMES[kind] : L2C_NAMES[kind];
    if (!base) {
        snprintf(buf, cap, "%s", "");
        return buf;
    }
    if (!xle_wkind_per_layer(kind)) {
        snprintf(buf, cap, "%s", base);
    } else if (fmt == XLE_FORMAT_HF) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, fam->hf_layer_prefix, layer);
        snprintf(buf, cap, "%s%s", prefix, base);
    } else if (fmt == XLE_FORMAT_GGUF) {
        snprintf(buf, cap, "blk.%d.%s", layer, base);
    } else {
        snprintf(buf, cap, "%s[%d]", base, layer);
    }
    return buf;
}

const char *xle_weight_name(xle_format fmt, xle_wkind kind, int layer, char *buf, size_t cap) {
    return xle_family_weight_name(xle_family_of(XLE_ARCH_LLAMA), fmt, kind, layer, buf, cap);
}

void xle_weight_expected_shape(const xle_config *c, xle_wkind kind, int *ndim, int64_t s[2]) {
    int64_t d = c->dim, q = (int64_t)c->n_heads * c->head_dim,
            kv = (int64_t)c->n_kv_heads * c->head_dim;
    *ndim = 2;
    switch (kind) {
    case XLE_W_TOK_EMBD: case XLE_W_LM_HEAD: s[0] = c->vocab_size; s[1] = d; return;
    case XLE_W_POS_EMBD: s[0] = c->max_seq_len; s[1] = d; return;
    case XLE_W_Q: s[0] = q; s[1] = d; return;
    case XLE_W_K: case XLE_W_V: s[0] = kv; s[1] = d; return;
    case XLE_W_O: s[0] = d; s[1] = q; return;
    case XLE_W_GATE: case XLE_W_UP: s[0] = c->ffn_dim; s[1] = d; return;
    case XLE_W_DOWN: s[0] = d; s[1] = c->ffn_dim; return;
    default: break;
    }
    *ndim = 1;
    switch (kind) {
    case XLE_W_ROPE_FREQS: s[0] = c->head_dim / 2; return;
    case XLE_W_BQ: s[0] = q; return;
    case XLE_W_BK: case XLE_W_BV: s[0] = kv; return;
    case XLE_W_B_UP: s[0] = c->ffn_dim; return;
    case XLE_W_LM_HEAD_B: s[0] = c->vocab_size; return;
    default: s[0] = d; return; /* norms and their biases, bo, b_down */
    }
}

static void shape_str(const int64_t *s, int nd, char *buf, size_t cap) {
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < nd && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? ", " : "", (long long)s[i]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

/* Where a format's sizes come from, for messages about tensors that contradict them. */
static const char *config_source(xle_format f) {
    return f == XLE_FORMAT_HF ? "config.json" : f == XLE_FORMAT_GGUF ? "the GGUF metadata"
                                                                     : "the checkpoint header";
}

xle_status xle_model_check_shapes(const xle_model *m, const char *source, xle_error *err) {
    xle_weights *w = (xle_weights *)&m->w;
    const xle_family *fam = xle_family_of(m->cfg.arch);
    for (int k = 0; k < XLE_W_KIND_COUNT; k++) {
        if (fam->has[k] == XLE_ABSENT) continue;
        int nl = xle_wkind_per_layer((xle_wkind)k) ? m->cfg.n_layers : 1;
        for (int l = 0; l < nl; l++) {
            const xle_tensor *t = xle_weight_slot(w, (xle_wkind)k, l);
            char name[128];
            xle_family_weight_name(fam, m->format, (xle_wkind)k, l, name, sizeof name);
            int optional = fam->has[k] == XLE_OPTIONAL;
            if (!t->data) {
                if (optional) continue;
                if (xle_wkind_per_layer((xle_wkind)k))
                    return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: missing (%s says %d layers)",
                                    source, name, config_source(m->format), m->cfg.n_layers);
                return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: missing", source, name);
            }
            int nd;
            int64_t s[2];
            xle_weight_expected_shape(&m->cfg, (xle_wkind)k, &nd, s);
            int ok = t->ndim == nd;
            for (int i = 0; ok && i < nd; i++) ok = t->shape[i] == s[i];
            if (!ok) {
                char got[96], want[96];
                shape_str(t->shape, t->ndim, got, sizeof got);
                shape_str(s, nd, want, sizeof want);
                return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: shape %s does not match %s "
                                "(expected %s)", source, name, got, config_source(m->format), want);
            }
        }
    }
    return XLE_OK;
}

xle_status xle_tensor_view(xle_model *m, xle_tensor *t, xle_dtype dtype, int ndim,
                           const int64_t *shape, const void *data, xle_error *err) {
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < XLE_MAX_DIMS; i++) t->shape[i] = i < ndim ? shape[i] : 0;
    t->data = (void *)data;
    /* Blocks are read with memcpy-sized loads: any address will do for them. */
    size_t es = xle_dtype_is_quantized(dtype) ? 1 : xle_dtype_size(dtype);
    if ((uintptr_t)data % es != 0) {
        size_t nb = xle_tensor_nbytes(t);
        void *copy = malloc(nb ? nb : 1);
        if (!copy) return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", m->path);
        memcpy(copy, data, nb);
        xle_status st = xle_model_own_buffer(m, copy, err);
        if (st != XLE_OK) return st;
        t->data = copy;
    }
    return XLE_OK;
}

int xle_fmt_bind_untouched(const xle_fmt_bind *b) {
    return !b->slot || (b->slot->data == b->loaded_data && b->slot->dtype == b->loaded_dtype);
}
