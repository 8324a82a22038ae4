/*
 * load.c: the entry point xle_model_load (dispatch by what the path is: a folder is Hugging
 * Face, a file starting with "GGUF" is GGUF, anything else a llama2.c checkpoint), the
 * configuration validator, the table of weight kinds with their names in each format, and the
 * shape check every loader runs before handing a model out.
 */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/formats_internal.h"

xle_status xle_model_load(const char *path, xle_model **out, xle_error *err) {
    *out = NULL;
    if (!path || !*path) return xle_fail(err, XLE_ERR_ARG, "model path: empty");
    struct stat st;
    if (stat(path, &st) != 0) return xle_fail(err, XLE_ERR_IO, "%s: no such file or folder", path);
    if (S_ISDIR(st.st_mode)) return xle_load_hf(path, out, err);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return xle_fail(err, XLE_ERR_IO, "%s: cannot open", path);
    char magic[4] = {0};
    ssize_t got = read(fd, magic, 4);
    close(fd);
    if (got == 4 && memcmp(magic, "GGUF", 4) == 0) return xle_load_gguf(path, out, err);
    return xle_load_llama2c(path, out, err);
}

/* ---- weight kinds ------------------------------------------------------------------------ */

xle_tensor *xle_weight_slot(xle_weights *w, xle_wkind kind, int layer) {
    switch (kind) {
    case XLE_W_TOK_EMBD: return &w->tok_embd;
    case XLE_W_OUT_NORM: return &w->out_norm;
    case XLE_W_LM_HEAD: return &w->lm_head;
    case XLE_W_ROPE_FREQS: return &w->rope_freqs;
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
    default: return NULL;
    }
}

static const char *const HF_NAMES[XLE_W_KIND_COUNT] = {
    "model.embed_tokens.weight", "model.norm.weight", "lm_head.weight", "rope_freqs",
    "input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight",
    "self_attn.v_proj.weight", "self_attn.o_proj.weight", "self_attn.q_proj.bias",
    "self_attn.k_proj.bias", "self_attn.v_proj.bias", "self_attn.o_proj.bias",
    "post_attention_layernorm.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
    "mlp.down_proj.weight"};
static const char *const GGUF_NAMES[XLE_W_KIND_COUNT] = {
    "token_embd.weight", "output_norm.weight", "output.weight", "rope_freqs.weight",
    "attn_norm.weight", "attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight",
    "attn_q.bias", "attn_k.bias", "attn_v.bias", "attn_output.bias", "ffn_norm.weight",
    "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight"};
static const char *const L2C_NAMES[XLE_W_KIND_COUNT] = {
    "token_embedding_table", "rms_final_weight", "wcls", "rope_freqs", "rms_att_weight", "wq",
    "wk", "wv", "wo", "bq", "bk", "bv", "bo", "rms_ffn_weight", "w1", "w3", "w2"};

const char *xle_weight_name(xle_format fmt, xle_wkind kind, int layer, char *buf, size_t cap) {
    const char *base = fmt == XLE_FORMAT_HF ? HF_NAMES[kind]
                       : fmt == XLE_FORMAT_GGUF ? GGUF_NAMES[kind] : L2C_NAMES[kind];
    if (!xle_wkind_per_layer(kind)) snprintf(buf, cap, "%s", base);
    else if (fmt == XLE_FORMAT_HF) snprintf(buf, cap, "model.layers.%d.%s", layer, base);
    else if (fmt == XLE_FORMAT_GGUF) snprintf(buf, cap, "blk.%d.%s", layer, base);
    else snprintf(buf, cap, "%s[%d]", base, layer);
    return buf;
}

void xle_weight_expected_shape(const xle_config *c, xle_wkind kind, int *ndim, int64_t s[2]) {
    int64_t d = c->dim, q = (int64_t)c->n_heads * c->head_dim,
            kv = (int64_t)c->n_kv_heads * c->head_dim;
    *ndim = 2;
    switch (kind) {
    case XLE_W_TOK_EMBD: case XLE_W_LM_HEAD: s[0] = c->vocab_size; s[1] = d; return;
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
    default: s[0] = d; return; /* norms, bo */
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
    for (int k = 0; k < XLE_W_KIND_COUNT; k++) {
        int nl = xle_wkind_per_layer((xle_wkind)k) ? m->cfg.n_layers : 1;
        for (int l = 0; l < nl; l++) {
            const xle_tensor *t = xle_weight_slot(w, (xle_wkind)k, l);
            char name[128];
            xle_weight_name(m->format, (xle_wkind)k, l, name, sizeof name);
            int optional = k == XLE_W_ROPE_FREQS || (k >= XLE_W_BQ && k <= XLE_W_BO);
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

/* ---- configuration validation --------------------------------------------------------------- */

const xle_config_names XLE_NAMES_HF = {
    "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "head_dim", "vocab_size", "max_position_embeddings", "rms_norm_eps",
    "rope_theta", "rope_scaling.factor", "sliding_window"};
const xle_config_names XLE_NAMES_GGUF = {
    "embedding_length", "feed_forward_length", "block_count", "attention.head_count",
    "attention.head_count_kv", "attention.key_length", "vocab_size (token_embd.weight rows)",
    "context_length", "attention.layer_norm_rms_epsilon", "rope.freq_base",
    "rope.scaling.factor", "attention.sliding_window"};
const xle_config_names XLE_NAMES_LLAMA2C = {
    "dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "head_size", "vocab_size",
    "seq_len", "norm_eps", "rope_theta", "rope_factor", "sliding_window"};

static xle_status pos_int(int v, int max, const char *src, const char *field, xle_error *err) {
    if (v <= 0) return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: %d is not a positive integer", src, field, v);
    if (v > max) return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: %d is absurdly large (limit %d)", src, field, v, max);
    return XLE_OK;
}

xle_status xle_config_validate_names(const xle_config *c, const char *src,
                                     const xle_config_names *nm, xle_error *err) {
    xle_status st;
    if ((st = pos_int(c->dim, 1 << 17, src, nm->dim, err)) != XLE_OK) return st;
    if ((st = pos_int(c->ffn_dim, 1 << 20, src, nm->ffn_dim, err)) != XLE_OK) return st;
    if ((st = pos_int(c->n_layers, 4096, src, nm->n_layers, err)) != XLE_OK) return st;
    if ((st = pos_int(c->n_heads, 4096, src, nm->n_heads, err)) != XLE_OK) return st;
    if ((st = pos_int(c->n_kv_heads, 4096, src, nm->n_kv_heads, err)) != XLE_OK) return st;
    if ((st = pos_int(c->head_dim, 1 << 14, src, nm->head_dim, err)) != XLE_OK) return st;
    if ((st = pos_int(c->vocab_size, 1 << 24, src, nm->vocab_size, err)) != XLE_OK) return st;
    if ((st = pos_int(c->max_seq_len, 1 << 26, src, nm->max_seq_len, err)) != XLE_OK) return st;
    if (c->n_heads % c->n_kv_heads != 0)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: %d does not divide %s %d", src,
                        nm->n_kv_heads, c->n_kv_heads, nm->n_heads, c->n_heads);
    if (c->head_dim % 2 != 0)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: %d is odd (RoPE needs pairs)", src,
                        nm->head_dim, c->head_dim);
    if ((int64_t)c->n_heads * c->head_dim > (1 << 20))
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: %d heads of %d is absurdly large", src,
                        nm->n_heads, c->n_heads, c->head_dim);
    if (!(c->norm_eps > 0 && c->norm_eps < 1))
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: %g is not in (0, 1)", src, nm->norm_eps,
                        (double)c->norm_eps);
    if (!(c->rope_theta > 0 && isfinite(c->rope_theta)))
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: %g is not a positive number", src,
                        nm->rope_theta, (double)c->rope_theta);
    if (c->rope_scaling != XLE_ROPE_NONE && !(c->rope_factor > 0 && isfinite(c->rope_factor)))
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: %g is not a positive number", src,
                        nm->rope_factor, (double)c->rope_factor);
    if (c->rope_scaling == XLE_ROPE_LLAMA3 &&
        !(c->rope_low_freq_factor > 0 && c->rope_high_freq_factor > c->rope_low_freq_factor &&
          c->rope_original_max_pos > 0))
        return xle_fail(err, XLE_ERR_FORMAT, "%s: rope_scaling: llama3 needs low_freq_factor > 0, "
                        "high_freq_factor > low_freq_factor and original_max_position_embeddings > 0", src);
    if (c->sliding_window < 0)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: %d is negative", src, nm->sliding_window,
                        c->sliding_window);
    if (c->bos_id < -1 || c->eos_id < -1)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: bos/eos token id: negative", src);
    return XLE_OK;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

xle_status xle_config_validate(const xle_config *cfg, const char *source, xle_error *err) {
    const char *src = source ? source : "config";
    const xle_config_names *nm = ends_with(src, ".json") ? &XLE_NAMES_HF
                                 : ends_with(src, ".gguf") ? &XLE_NAMES_GGUF : &XLE_NAMES_LLAMA2C;
    return xle_config_validate_names(cfg, src, nm, err);
}
