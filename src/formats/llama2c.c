/*
 * llama2c.c: xle_load_llama2c, a legacy llama2.c checkpoint (what run.c reads: 7 int32 header,
 * then float32 weights kind by kind, layer after layer; formats-detail.md 1.5). The file size
 * must equal what the header implies exactly. Interleaved RoPE, theta 10000, RMSNorm eps 1e-5;
 * a negative vocab_size means an unshared classifier follows the legacy RoPE tables.
 * tokenizer.bin or tok<vocab>.bin beside the checkpoint is attached when present.
 */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/formats_internal.h"

void xle_llama2c_state_free(void *p) {
    xle_llama2c_state *s = p;
    if (!s) return;
    free(s->tokenizer_path);
    free(s);
}

typedef struct l2c_cursor {
    xle_model *m;
    const float *p;  /* next float in the file */
} l2c_cursor;

/* Views `count` consecutive [rows, cols] (or [rows] when cols == 0) tensors, one per layer. */
static xle_status take(l2c_cursor *c, xle_wkind kind, int count, int64_t rows, int64_t cols,
                       xle_error *err) {
    int64_t shape[2] = {rows, cols};
    int nd = cols ? 2 : 1;
    int64_t per = rows * (cols ? cols : 1);
    for (int l = 0; l < count; l++) {
        xle_tensor *t = xle_weight_slot(&c->m->w, kind, l);
        xle_status st = xle_tensor_view(c->m, t, XLE_F32, nd, shape, c->p, err);
        if (st != XLE_OK) return st;
        c->p += per;
    }
    return XLE_OK;
}

static xle_status read_header(xle_model *m, const uint8_t *base, size_t size, int *shared,
                              xle_error *err) {
    if (size < 28)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: header: %zu bytes, need 28 (is this a llama2.c "
                        "checkpoint?)", m->path, size);
    int32_t h[7];
    memcpy(h, base, sizeof h);
    xle_config *c = &m->cfg;
    c->arch = XLE_ARCH_LLAMA;
    c->dim = h[0];
    c->ffn_dim = h[1];
    c->n_layers = h[2];
    c->n_heads = h[3];
    c->n_kv_heads = h[4];
    *shared = h[5] > 0;
    c->vocab_size = h[5] == INT32_MIN ? 0 : abs(h[5]);
    c->max_seq_len = h[6];
    c->head_dim = c->n_heads > 0 ? c->dim / c->n_heads : 0;
    c->norm_eps = 1e-5f;
    c->rope_theta = 10000.0f;
    c->rope_interleaved = 1;
    c->tied_embeddings = *shared;
    c->bos_id = 1;
    c->eos_id = 2;
    /* head_size is dim / n_heads: say so before the validator complains about head_size */
    if (c->n_heads > 0 && c->dim > 0 && c->dim % c->n_heads != 0)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: n_heads: %d does not divide dim %d", m->path,
                        c->n_heads, c->dim);
    xle_status st = xle_config_validate_names(c, m->path, &XLE_NAMES_LLAMA2C, err);
    if (st != XLE_OK) return st;
    /* the exact size the header implies */
    int64_t d = c->dim, f = c->ffn_dim, L = c->n_layers, V = c->vocab_size,
            kvd = (int64_t)c->n_kv_heads * c->head_dim, hs = c->head_dim;
    int64_t floats = V * d + L * d + L * d * d + 2 * L * d * kvd + L * d * d + L * d +
                     3 * L * f * d + d + (int64_t)c->max_seq_len * hs + (*shared ? 0 : V * d);
    int64_t want = 28 + 4 * floats;
    if ((int64_t)size != want)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: size: %zu bytes, but the header's dimensions "
                        "need exactly %lld", m->path, size, (long long)want);
    return XLE_OK;
}

static xle_status map_weights(xle_model *m, const uint8_t *base, int shared, xle_error *err) {
    const xle_config *c = &m->cfg;
    int64_t d = c->dim, f = c->ffn_dim, V = c->vocab_size, q = (int64_t)c->n_heads * c->head_dim,
            kv = (int64_t)c->n_kv_heads * c->head_dim;
    int L = c->n_layers;
    l2c_cursor cur = {m, (const float *)(base + 28)};
    xle_status st;
    if ((st = take(&cur, XLE_W_TOK_EMBD, 1, V, d, err)) ||
        (st = take(&cur, XLE_W_ATTN_NORM, L, d, 0, err)) ||
        (st = take(&cur, XLE_W_Q, L, q, d, err)) || (st = take(&cur, XLE_W_K, L, kv, d, err)) ||
        (st = take(&cur, XLE_W_V, L, kv, d, err)) || (st = take(&cur, XLE_W_O, L, d, q, err)) ||
        (st = take(&cur, XLE_W_FFN_NORM, L, d, 0, err)) ||
        (st = take(&cur, XLE_W_GATE, L, f, d, err)) || (st = take(&cur, XLE_W_DOWN, L, d, f, err)) ||
        (st = take(&cur, XLE_W_UP, L, f, d, err)) || (st = take(&cur, XLE_W_OUT_NORM, 1, d, 0, err)))
        return st;
    cur.p += (int64_t)c->max_seq_len * c->head_dim; /* legacy freq_cis_real + imag */
    if (shared) {
        m->w.lm_head = m->w.tok_embd;
        return XLE_OK;
    }
    return take(&cur, XLE_W_LM_HEAD, 1, V, d, err);
}

/* tokenizer.bin, else tok<vocab>.bin, in the checkpoint's folder. */
static xle_status attach_tokenizer(xle_model *m, xle_llama2c_state *s, xle_error *err) {
    char *copy = strdup(m->path);
    if (!copy) return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", m->path);
    const char *dir = dirname(copy);
    char name[32];
    snprintf(name, sizeof name, "tok%d.bin", m->cfg.vocab_size);
    char *cands[2] = {xle_path_join(dir, "tokenizer.bin"), xle_path_join(dir, name)};
    free(copy);
    xle_status st = XLE_OK;
    for (int i = 0; i < 2 && st == XLE_OK; i++) {
        if (!cands[i]) {
            st = xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", m->path);
            break;
        }
        if (s->tokenizer_path || !xle_path_exists(cands[i])) continue;
        xle_error terr = {0};
        st = xle_tokenizer_load_llama2c(cands[i], m->cfg.vocab_size, &m->tokenizer, &terr);
        if (st == XLE_OK) {
            s->tokenizer_path = cands[i];
            cands[i] = NULL;
        } else if (st == XLE_ERR_UNSUPPORTED) {
            m->tokenizer = NULL;
            st = XLE_OK;
        } else if (err) {
            *err = terr;
        }
    }
    free(cands[0]);
    free(cands[1]);
    return st;
}

xle_status xle_load_llama2c(const char *path, xle_model **out, xle_error *err) {
    *out = NULL;
    xle_model *m = xle_model_alloc(path);
    xle_llama2c_state *s = calloc(1, sizeof *s);
    if (!m || !s) {
        free(s);
        xle_model_free(m);
        return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", path);
    }
    m->format = XLE_FORMAT_LLAMA2C;
    m->format_state = s;
    m->format_state_free = xle_llama2c_state_free;
    m->weight_dtype = XLE_F32;
    void *base;
    size_t size;
    xle_status st = xle_map_file(path, &base, &size, err);
    if (st == XLE_OK && (st = xle_model_own_mapping(m, base, size, err)) != XLE_OK) xle_unmap(base, size);
    if (st == XLE_OK) st = read_header(m, base, size, &s->shared_classifier, err);
    if (st == XLE_OK) st = xle_model_alloc_layers(m, err);
    if (st == XLE_OK) st = map_weights(m, base, s->shared_classifier, err);
    if (st == XLE_OK) st = xle_model_check_shapes(m, path, err);
    if (st == XLE_OK) st = attach_tokenizer(m, s, err);
    if (st != XLE_OK) {
        xle_model_free(m);
        return st;
    }
    *out = m;
    return XLE_OK;
}
