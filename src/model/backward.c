/*
 * backward.c: the backward pass of forward.c for every choice a family description makes
 * (RMSNorm or LayerNorm, SwiGLU or GELU MLP, RoPE or learned positions), from gradients of the
 * logits down to any layer's block output (what the v* and z optimisation of ROME and MEMIT needs)
 * and, optionally, into the weights (fine-tuning and training). Each op's backward lives beside
 * its forward in src/tensor/; this file only strings them together in reverse order.
 */
#include <stdlib.h>
#include <string.h>

#include "model/engine_internal.h"
#include "model/family.h"
#include "tensor/ops.h"

/* ---- weight gradients: one f32 allocation laid out like the model ----------------------- */

static int64_t tensor_floats(const xle_tensor *t) { return t->data ? xle_tensor_numel(t) : 0; }

/* Points g at mem (or only counts when mem == NULL); returns floats used. */
static int64_t grad_carve(xle_tensor *g, const xle_tensor *w, float *mem) {
    int64_t n = tensor_floats(w);
    *g = *w;
    g->dtype = XLE_F32;
    g->data = (n && mem) ? mem : NULL;
    return n;
}

static int64_t grads_layout(xle_grads *g, const xle_model *m, float *mem) {
    int64_t off = 0;
#define CARVE(dst, src) off += grad_carve(&(dst), &(src), mem ? mem + off : NULL)
    CARVE(g->w.tok_embd, m->w.tok_embd);
    CARVE(g->w.out_norm, m->w.out_norm);
    if (!m->cfg.tied_embeddings) CARVE(g->w.lm_head, m->w.lm_head);
    CARVE(g->w.pos_embd, m->w.pos_embd);       /* empty (no floats) in a Llama model */
    CARVE(g->w.out_norm_b, m->w.out_norm_b);
    CARVE(g->w.lm_head_b, m->w.lm_head_b);     /* GPT-J */
    CARVE(g->w.embd_norm, m->w.embd_norm);     /* BLOOM */
    CARVE(g->w.embd_norm_b, m->w.embd_norm_b);
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const xle_layer_weights *L = &m->w.layers[l];
        xle_layer_weights *G = &g->w.layers[l];
        CARVE(G->attn_norm, L->attn_norm);
        CARVE(G->wq, L->wq);
        CARVE(G->wk, L->wk);
        CARVE(G->wv, L->wv);
        CARVE(G->wo, L->wo);
        CARVE(G->bq, L->bq);
        CARVE(G->bk, L->bk);
        CARVE(G->bv, L->bv);
        CARVE(G->bo, L->bo);
        CARVE(G->ffn_norm, L->ffn_norm);
        CARVE(G->w_gate, L->w_gate);
        CARVE(G->w_up, L->w_up);
        CARVE(G->w_down, L->w_down);
        CARVE(G->attn_norm_b, L->attn_norm_b);
        CARVE(G->ffn_norm_b, L->ffn_norm_b);
        CARVE(G->b_up, L->b_up);
        CARVE(G->b_down, L->b_down);
        CARVE(G->post_attn_norm, L->post_attn_norm);   /* Gemma-2 */
        CARVE(G->post_ffn_norm, L->post_ffn_norm);
    }
#undef CARVE
    if (m->cfg.tied_embeddings) g->w.lm_head = g->w.tok_embd;
    return off;
}

xle_status xle_grads_new(const xle_model *m, xle_grads **out, xle_error *err) {
    xle_grads *g = calloc(1, sizeof *g);
    if (!g) return xle_fail(err, XLE_ERR_NOMEM, "grads: out of memory");
    g->n_layers = m->cfg.n_layers;
    g->w.layers = calloc((size_t)m->cfg.n_layers, sizeof *g->w.layers);
    if (!g->w.layers) {
        free(g);
        return xle_fail(err, XLE_ERR_NOMEM, "grads: out of memory");
    }
    int64_t n = grads_layout(g, m, NULL);
    g->mem = calloc((size_t)n, sizeof(float));
    if (!g->mem) {
        xle_grads_free(g);
        return xle_fail(err, XLE_ERR_NOMEM, "grads: out of memory for %lld floats", (long long)n);
    }
    g->n_floats = (size_t)n;
    grads_layout(g, m, g->mem);
    *out = g;
    return XLE_OK;
}

void xle_grads_free(xle_grads *g) {
    if (!g) return;
    free(g->mem);
    free(g->w.layers);
    free(g);
}

void xle_grads_zero(xle_grads *g) { memset(g->mem, 0, g->n_floats * sizeof(float)); }
xle_weights *xle_grads_weights(xle_grads *g) { return &g->w; }
float *xle_grads_data(xle_grads *g, size_t *n_floats) {
    if (n_floats) *n_floats = g->n_floats;
    return g->mem;
}

static float *gptr(xle_tensor *t) { return t ? (float *)t->data : NULL; }

/* ---- the pass ----------------------------------------------------------------------------- */

xle_status xle_backward(xle_model *m, xle_acts *a, const float *d_logits, int stop_layer,
                        float *d_block_out, xle_grads *grads, xle_error *err) {
    const xle_config *c = &m->cfg;
    const xle_family *fam = xle_family_of(c->arch);
    if (!a || !a->valid)
        return xle_fail(err, XLE_ERR_ARG, "backward: no activations kept by a complete forward pass");
    if (stop_layer < 0 || stop_layer >= c->n_layers)
        return xle_fail(err, XLE_ERR_ARG, "backward: stop layer %d outside [0, %d)", stop_layer, c->n_layers);
    if (stop_layer < a->keep_from)
        return xle_fail(err, XLE_ERR_ARG, "backward: layer %d's activations were not kept", stop_layer);
    const int T = a->T, hd = c->head_dim, R = a->n_logit_rows;
    const int64_t d = c->dim, f = c->ffn_dim, qd = (int64_t)c->n_heads * hd,
                  kvd = (int64_t)c->n_kv_heads * hd;

    const int64_t ws_floats = T * (4 * d + 2 * qd + 2 * kvd + 3 * f) + (int64_t)R * d +
                              XLE_MATMUL_SCRATCH;
    float *ws = calloc((size_t)ws_floats, sizeof(float));
    double *inv_freq = malloc((size_t)(hd / 2 + 1) * sizeof(double));
    /* soft-capped logits: the gradient of the uncapped ones needs the capped values again */
    float *capped = c->final_softcap > 0 ? malloc((size_t)R * (size_t)c->vocab_size * 2 * sizeof(float)) : NULL;
    if (!ws || !inv_freq || (c->final_softcap > 0 && !capped)) {
        free(ws), free(inv_freq), free(capped);
        return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory for the backward pass", m->path);
    }
    xle_rope_inv_freq(m, inv_freq);
    float *dx = ws, *dxn = dx + T * d, *dh = dxn + T * d, *dq = dh + T * d, *dk = dq + T * qd,
          *dv = dk + T * kvd, *datt = dv + T * kvd, *dgate = datt + T * qd, *dup = dgate + T * f,
          *dkey = dup + T * f, *drows = dkey + T * f, *dtmp = drows + (int64_t)R * d,
          *scratch = dtmp + T * d;
    const float att_scale = xle_attn_scale(c);
    xle_weights *G = grads ? &grads->w : NULL;

    /* Logits -> final norm input. */
    {
        float *gathered = dxn; /* rows of xnf that produced logits */
        for (int i = 0; i < R; i++)
            memcpy(gathered + (int64_t)i * d, a->xnf + (int64_t)a->logit_rows[i] * d, (size_t)d * sizeof(float));
        if (capped) {
            /* logits = cap·tanh(z/cap): dz = d_logits (1 - (logits/cap)²) */
            const int64_t RV = (int64_t)R * c->vocab_size;
            float *dz = capped + RV;
            xle_matmul_forward(capped, gathered, &m->w.lm_head, &m->w.lm_head_b, R, scratch, m->precision);
            xle_softcap_forward(capped, c->final_softcap, RV);
            memcpy(dz, d_logits, (size_t)RV * sizeof(float));
            xle_softcap_backward(dz, capped, c->final_softcap, RV);
            d_logits = dz;
        }
        /* d_rows = d_logits · lm_head; d_lm_head += d_logitsᵀ · rows (and the head's bias) */
        xle_matmul_backward(drows, G ? gptr(&G->lm_head) : NULL, G ? gptr(&G->lm_head_b) : NULL,
                            d_logits, gathered, &m->w.lm_head, R, scratch);
        memset(dxn, 0, (size_t)(T * d) * sizeof(float));
        for (int i = 0; i < R; i++) {
            float *dst = dxn + (int64_t)a->logit_rows[i] * d;
            for (int64_t j = 0; j < d; j++) dst[j] += drows[(int64_t)i * d + j];
        }
        xle_block_norm_backward(fam, dx, G ? gptr(&G->out_norm) : NULL, G ? gptr(&G->out_norm_b) : NULL, dxn,
                      a->x_final, &m->w.out_norm, a->rstd_f, T, (int)d);
    }

    for (int l = c->n_layers - 1; l >= stop_layer; l--) {
        if (l == stop_layer) {
            if (d_block_out) memcpy(d_block_out, dx, (size_t)(T * d) * sizeof(float));
            if (!grads) break;
        }
        const xle_layer_weights *L = &m->w.layers[l];
        xle_layer_weights *GL = G ? &G->layers[l] : NULL;
        const xle_layer_acts *la = &a->layers[l];

        /* MLP: x_out = h_mid + W_down · swiglu(W_gate xn2, W_up xn2) (+ b_down), or
         * W_down · gelu(W_up xn2 + b_up) + b_down. */
        /* Sandwich norms (Gemma-2): x_out = h_mid + norm_pf(mlp_o). */
        const float *dmlp_out = dx;
        if (fam->sandwich_norms) {
            memset(dtmp, 0, (size_t)(T * d) * sizeof(float));
            xle_block_norm_backward(fam, dtmp, GL ? gptr(&GL->post_ffn_norm) : NULL, NULL, dx, la->mlp_o,
                                    &L->post_ffn_norm, la->rstd_pf, T, (int)d);
            dmlp_out = dtmp;
        }
        memset(dkey, 0, (size_t)(T * f) * sizeof(float));
        xle_matmul_backward(dkey, GL ? gptr(&GL->w_down) : NULL, GL ? gptr(&GL->b_down) : NULL,
                            dmlp_out, la->key, &L->w_down, T, scratch);
        memset(dxn, 0, (size_t)(T * d) * sizeof(float));
        /* a parallel block's MLP reads the attention's norm output */
        const float *mlp_in = fam->parallel_block ? la->xn1 : la->xn2;
        xle_block_mlp_key_backward(fam, L, GL, dxn, dgate, dup, dkey, mlp_in, la->gate, la->up, T, f, scratch);
        memcpy(dh, dx, (size_t)(T * d) * sizeof(float));
        /* parallel: x_out = x_in + attn + mlp, and dxn carries the MLP's part to the shared norm */
        if (!fam->parallel_block)
            xle_block_norm_backward(fam, dh, GL ? gptr(&GL->ffn_norm) : NULL, GL ? gptr(&GL->ffn_norm_b) : NULL,
                                    dxn, la->h_mid, &L->ffn_norm, la->rstd2, T, (int)d);

        /* Attention: h_mid = x_in + [norm_pa](W_o · attn(rope(W_q xn1), rope(W_k xn1), W_v xn1)). */
        const float *datt_out = dh;
        if (fam->sandwich_norms) {
            memset(dtmp, 0, (size_t)(T * d) * sizeof(float));
            xle_block_norm_backward(fam, dtmp, GL ? gptr(&GL->post_attn_norm) : NULL, NULL, dh, la->att_o,
                                    &L->post_attn_norm, la->rstd_pa, T, (int)d);
            datt_out = dtmp;
        }
        memset(datt, 0, (size_t)(T * qd) * sizeof(float));
        xle_matmul_backward(datt, GL ? gptr(&GL->wo) : NULL, GL ? gptr(&GL->bo) : NULL, datt_out, la->att,
                            &L->wo, T, scratch);
        memset(dq, 0, (size_t)(T * (qd + 2 * kvd)) * sizeof(float));
        for (int s = 0; s < a->n_seqs; s++) {
            int s0 = a->seq_start[s], n = a->seq_start[s + 1] - s0;
            xle_attention_backward_scaled(dq + s0 * qd, dk + s0 * kvd, dv + s0 * kvd, datt + s0 * qd,
                                          la->probs + a->probs_offset[s], la->q + s0 * qd,
                                          la->k + s0 * kvd, la->v + s0 * kvd, n, 0, c->n_heads,
                                          c->n_kv_heads, hd, att_scale, c->attn_softcap);
        }
        xle_block_positions_backward(fam, c, dq, dk, a->pos, inv_freq, T);
        if (!fam->parallel_block) memset(dxn, 0, (size_t)(T * d) * sizeof(float));
        xle_matmul_backward(dxn, GL ? gptr(&GL->wq) : NULL, GL ? gptr(&GL->bq) : NULL, dq, la->xn1, &L->wq, T, scratch);
        xle_matmul_backward(dxn, GL ? gptr(&GL->wk) : NULL, GL ? gptr(&GL->bk) : NULL, dk, la->xn1, &L->wk, T, scratch);
        xle_matmul_backward(dxn, GL ? gptr(&GL->wv) : NULL, GL ? gptr(&GL->bv) : NULL, dv, la->xn1, &L->wv, T, scratch);
        memcpy(dx, dh, (size_t)(T * d) * sizeof(float));
        xle_block_norm_backward(fam, dx, GL ? gptr(&GL->attn_norm) : NULL, GL ? gptr(&GL->attn_norm_b) : NULL, dxn,
                      la->x_in, &L->attn_norm, la->rstd1, T, (int)d);
    }

    /* Embedding rows receive the gradient of the first layer's input. */
    if (grads && stop_layer == 0) {
        if (fam->embed_norm) {
            /* through BLOOM's embedding LayerNorm: dx becomes the gradient of its input */
            memcpy(dh, dx, (size_t)(T * d) * sizeof(float));
            memset(dx, 0, (size_t)(T * d) * sizeof(float));
            xle_block_norm_backward(fam, dx, gptr(&G->embd_norm), gptr(&G->embd_norm_b), dh, a->x_embd,
                                    &m->w.embd_norm, a->rstd_e, T, (int)d);
        }
        float *de = gptr(&G->tok_embd);
        const float es = xle_embed_scale(m); /* 1 but for Gemma's √d */
        for (int t = 0; t < T; t++) {
            float *row = de + (int64_t)a->tokens[t] * d;
            for (int64_t j = 0; j < d; j++) row[j] += es * dx[(int64_t)t * d + j];
        }
        float *dp = gptr(&G->pos_embd); /* learned positions (NULL without) */
        for (int t = 0; dp && t < T; t++) {
            float *row = dp + (int64_t)a->pos[t] * d;
            for (int64_t j = 0; j < d; j++) row[j] += dx[(int64_t)t * d + j];
        }
    }
    free(ws);
    free(inv_freq);
    free(capped);
    return XLE_OK;
}
