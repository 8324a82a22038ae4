/*
 * model_init.c: xle_model_new, a model with freshly initialised, owned f32 weights for training
 * from scratch. All weights live in one allocation owned by the model (llm.c style). Init as in
 * GPT-2 / Hugging Face Llama: N(0, init_std) for matrices and embeddings, 1 for norm weights,
 * and the two projections that write into the residual stream (wo, w_down) scaled by
 * 1/sqrt(2 n_layers) so the residual stream's variance does not grow with depth.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_internal.h"
#include "train/train_internal.h"

/* Points t at mem (2-D when cols > 0) and returns the floats it takes. */
static int64_t carve(xle_tensor *t, float *mem, int64_t rows, int64_t cols) {
    memset(t, 0, sizeof *t);
    t->dtype = XLE_F32;
    t->ndim = cols ? 2 : 1;
    t->shape[0] = rows;
    t->shape[1] = cols;
    t->data = mem;
    return rows * (cols ? cols : 1);
}

static void fill_normal(xle_tensor *t, xle_rng *rng, float std) {
    float *x = t->data;
    int64_t n = xle_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) x[i] = std * xle_rng_normal(rng);
}

static void fill_ones(xle_tensor *t) {
    float *x = t->data;
    int64_t n = xle_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) x[i] = 1.0f;
}

/* Lays out every tensor over mem (NULL: only counts); returns the floats needed. */
static int64_t layout(xle_model *m, float *mem) {
    const xle_config *c = &m->cfg;
    const int64_t d = c->dim, f = c->ffn_dim, qd = (int64_t)c->n_heads * c->head_dim,
                  kvd = (int64_t)c->n_kv_heads * c->head_dim, V = c->vocab_size;
    int64_t off = 0;
#define CARVE(t, r, k) off += carve(&(t), mem ? mem + off : NULL, r, k)
    CARVE(m->w.tok_embd, V, d);
    CARVE(m->w.out_norm, d, 0);
    if (!c->tied_embeddings) CARVE(m->w.lm_head, V, d);
    for (int l = 0; l < c->n_layers; l++) {
        xle_layer_weights *L = &m->w.layers[l];
        memset(L, 0, sizeof *L);
        CARVE(L->attn_norm, d, 0);
        CARVE(L->wq, qd, d);
        CARVE(L->wk, kvd, d);
        CARVE(L->wv, kvd, d);
        CARVE(L->wo, d, qd);
        CARVE(L->ffn_norm, d, 0);
        CARVE(L->w_gate, f, d);
        CARVE(L->w_up, f, d);
        CARVE(L->w_down, d, f);
    }
#undef CARVE
    if (c->tied_embeddings) m->w.lm_head = m->w.tok_embd;
    return off;
}

xle_status xle_model_new(const xle_config *cfg, uint64_t seed, float init_std, xle_model **out,
                         xle_error *err) {
    *out = NULL;
    xle_status st = xle_config_validate(cfg, "model config", err);
    if (st != XLE_OK) return st;
    if (!(init_std > 0 && isfinite(init_std)))
        return xle_fail(err, XLE_ERR_ARG, "model config: init_std: %g must be positive", (double)init_std);
    xle_model *m = xle_model_alloc("(new model)");
    if (!m) return xle_fail(err, XLE_ERR_NOMEM, "model: out of memory");
    m->cfg = *cfg;
    m->format = XLE_FORMAT_HF;
    m->weight_dtype = XLE_F32;
    st = xle_model_alloc_layers(m, err);
    if (st != XLE_OK) {
        xle_model_free(m);
        return st;
    }
    int64_t n = layout(m, NULL);
    float *mem = malloc((size_t)n * sizeof(float));
    if (!mem) {
        xle_model_free(m);
        return xle_fail(err, XLE_ERR_NOMEM, "model: out of memory for %lld weights", (long long)n);
    }
    st = xle_model_own_buffer(m, mem, err);
    if (st != XLE_OK) {
        xle_model_free(m);
        return st;
    }
    layout(m, mem);

    xle_rng rng;
    xle_rng_seed(&rng, seed);
    const float resid_std = init_std / sqrtf(2.0f * (float)cfg->n_layers);
    fill_normal(&m->w.tok_embd, &rng, init_std);
    fill_ones(&m->w.out_norm);
    if (!cfg->tied_embeddings) fill_normal(&m->w.lm_head, &rng, init_std);
    for (int l = 0; l < cfg->n_layers; l++) {
        xle_layer_weights *L = &m->w.layers[l];
        fill_ones(&L->attn_norm);
        fill_normal(&L->wq, &rng, init_std);
        fill_normal(&L->wk, &rng, init_std);
        fill_normal(&L->wv, &rng, init_std);
        fill_normal(&L->wo, &rng, resid_std);
        fill_ones(&L->ffn_norm);
        fill_normal(&L->w_gate, &rng, init_std);
        fill_normal(&L->w_up, &rng, init_std);
        fill_normal(&L->w_down, &rng, resid_std);
    }
    *out = m;
    return XLE_OK;
}
