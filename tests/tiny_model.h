/*
 * tiny_model.h: random Llama-family models built in memory for tests of the engine itself
 * (no file format involved). Weights ~ N(0, 1/in) so activations stay O(1).
 */
#ifndef XLE_TINY_MODEL_H
#define XLE_TINY_MODEL_H

#include <stdlib.h>
#include <string.h>

#include "model/model_internal.h"

static xle_config tiny_config(xle_arch arch) {
    xle_config c;
    memset(&c, 0, sizeof c);
    c.arch = arch;
    c.dim = 16;
    c.ffn_dim = 24;
    c.n_layers = 3;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.head_dim = 4;
    c.vocab_size = 19;
    c.max_seq_len = 64;
    c.norm_eps = 1e-5f;
    c.rope_theta = 10000.0f;
    c.bos_id = 1;
    c.eos_id = 2;
    return c;
}

static int tiny_tensor(xle_model *m, xle_tensor *t, int64_t rows, int64_t cols, xle_dtype dt,
                       xle_rng *rng, float scale, float offset) {
    t->dtype = dt;
    t->ndim = cols ? 2 : 1;
    t->shape[0] = rows;
    t->shape[1] = cols;
    int64_t n = rows * (cols ? cols : 1);
    void *buf = malloc((size_t)n * xle_dtype_size(dt));
    if (!buf || xle_model_own_buffer(m, buf, NULL) != XLE_OK) return 0;
    for (int64_t i = 0; i < n; i++) {
        float v = offset + scale * xle_rng_normal(rng);
        if (dt == XLE_F32) ((float *)buf)[i] = v;
        else if (dt == XLE_BF16) ((uint16_t *)buf)[i] = xle_f32_to_bf16(v);
        else ((uint16_t *)buf)[i] = xle_f32_to_f16(v);
    }
    t->data = buf;
    return 1;
}

/* A random model for cfg (biases when with_bias); the caller frees it with xle_model_free. */
static xle_model *tiny_model_new(const xle_config *cfg, int with_bias, xle_dtype dt, uint64_t seed) {
    xle_model *m = xle_model_alloc("tiny");
    if (!m) return NULL;
    m->cfg = *cfg;
    m->weight_dtype = dt;
    if (xle_model_alloc_layers(m, NULL) != XLE_OK) {
        xle_model_free(m);
        return NULL;
    }
    xle_rng rng;
    xle_rng_seed(&rng, seed);
    const int d = cfg->dim, f = cfg->ffn_dim, qd = cfg->n_heads * cfg->head_dim,
              kvd = cfg->n_kv_heads * cfg->head_dim, V = cfg->vocab_size;
    int ok = tiny_tensor(m, &m->w.tok_embd, V, d, dt, &rng, 1.0f, 0) &&
             tiny_tensor(m, &m->w.out_norm, d, 0, dt, &rng, 0.1f, 1.0f);
    if (cfg->tied_embeddings) m->w.lm_head = m->w.tok_embd;
    else ok = ok && tiny_tensor(m, &m->w.lm_head, V, d, dt, &rng, 1.0f / sqrtf((float)d), 0);
    for (int l = 0; ok && l < cfg->n_layers; l++) {
        xle_layer_weights *L = &m->w.layers[l];
        ok = tiny_tensor(m, &L->attn_norm, d, 0, dt, &rng, 0.1f, 1.0f) &&
             tiny_tensor(m, &L->wq, qd, d, dt, &rng, 1.0f / sqrtf((float)d), 0) &&
             tiny_tensor(m, &L->wk, kvd, d, dt, &rng, 1.0f / sqrtf((float)d), 0) &&
             tiny_tensor(m, &L->wv, kvd, d, dt, &rng, 1.0f / sqrtf((float)d), 0) &&
             tiny_tensor(m, &L->wo, d, qd, dt, &rng, 1.0f / sqrtf((float)qd), 0) &&
             tiny_tensor(m, &L->ffn_norm, d, 0, dt, &rng, 0.1f, 1.0f) &&
             tiny_tensor(m, &L->w_gate, f, d, dt, &rng, 1.0f / sqrtf((float)d), 0) &&
             tiny_tensor(m, &L->w_up, f, d, dt, &rng, 1.0f / sqrtf((float)d), 0) &&
             tiny_tensor(m, &L->w_down, d, f, dt, &rng, 1.0f / sqrtf((float)f), 0);
        if (ok && with_bias)
            ok = tiny_tensor(m, &L->bq, qd, 0, dt, &rng, 0.3f, 0) &&
                 tiny_tensor(m, &L->bk, kvd, 0, dt, &rng, 0.3f, 0) &&
                 tiny_tensor(m, &L->bv, kvd, 0, dt, &rng, 0.3f, 0);
    }
    if (!ok) {
        xle_model_free(m);
        return NULL;
    }
    return m;
}

#endif
