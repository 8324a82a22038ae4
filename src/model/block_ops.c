/*
 * block_ops.c: each choice a family description makes inside a block (norm: LayerNorm, RMSNorm or
 * Gemma's (1 + w); positions: rotary, whole or partial; MLP: SwiGLU, GELU or GeGLU),
 * forward and backward, written once. forward.c and backward.c (the whole batch) and partial.c
 * (the rows an edit changes) string these together, so a family's branch exists in one place
 * whatever pass runs it (docs/families.md §3).
 */
#include <string.h>

#include "model/engine_internal.h"
#include "tensor/ops.h"

void xle_block_norm_forward(const xle_family *fam, float *out, float *rstd, const float *x,
                            const xle_tensor *weight, const xle_tensor *bias, int T, int d, float eps) {
    if (fam->norm == XLE_NORM_LAYER) xle_layernorm_forward(out, rstd, x, weight, bias, T, d, eps);
    else if (fam->norm == XLE_NORM_RMS_ONE_PLUS) xle_rmsnorm_offset_forward(out, rstd, x, weight, 1.0f, T, d, eps);
    else xle_rmsnorm_forward(out, rstd, x, weight, T, d, eps);
}

void xle_block_norm_backward(const xle_family *fam, float *dx, float *dweight, float *dbias,
                             const float *dout, const float *x, const xle_tensor *weight,
                             const float *rstd, int T, int d) {
    if (fam->norm == XLE_NORM_LAYER) xle_layernorm_backward(dx, dweight, dbias, dout, x, weight, rstd, T, d);
    else if (fam->norm == XLE_NORM_RMS_ONE_PLUS)
        xle_rmsnorm_offset_backward(dx, dweight, dout, x, weight, 1.0f, rstd, T, d);
    else xle_rmsnorm_backward(dx, dweight, dout, x, weight, rstd, T, d);
}

void xle_block_positions_forward(const xle_family *fam, const xle_config *c, float *q, float *k,
                                 const int *pos, const double *inv_freq, int T) {
    if (fam->pos != XLE_POS_ROPE) return; /* learned positions were added to the embedding */
    const int rot = xle_rotary_dim(c);  /* GPT-J: the first rotary_dim dims of each head */
    xle_rope_partial_forward(q, pos, inv_freq, T, c->n_heads, c->head_dim, rot, c->rope_interleaved);
    xle_rope_partial_forward(k, pos, inv_freq, T, c->n_kv_heads, c->head_dim, rot, c->rope_interleaved);
}

void xle_block_positions_backward(const xle_family *fam, const xle_config *c, float *dq, float *dk,
                                  const int *pos, const double *inv_freq, int T) {
    if (fam->pos != XLE_POS_ROPE) return;
    const int rot = xle_rotary_dim(c);
    xle_rope_partial_backward(dq, pos, inv_freq, T, c->n_heads, c->head_dim, rot, c->rope_interleaved);
    xle_rope_partial_backward(dk, pos, inv_freq, T, c->n_kv_heads, c->head_dim, rot, c->rope_interleaved);
}

void xle_block_mlp_key_forward(const xle_family *fam, const xle_layer_weights *L, float *key,
                               float *gate, float *up, const float *xn, int T, int64_t f,
                               float *scratch, xle_precision prec) {
    if (fam->mlp == XLE_MLP_SWIGLU || fam->mlp == XLE_MLP_GEGLU) {
        float *const outs[2] = {gate, up};
        const xle_tensor *const ws[2] = {&L->w_gate, &L->w_up};
        xle_matmul_forward_many(outs, xn, ws, NULL, 2, T, scratch, prec);
        if (fam->mlp == XLE_MLP_SWIGLU) xle_swiglu_forward(key, gate, up, T * f);
        else xle_geglu_forward(key, gate, up, T * f); /* Gemma */
    } else {
        /* up keeps the pre-activation for the backward */
        xle_matmul_forward(up, xn, &L->w_up, &L->b_up, T, scratch, prec);
        xle_gelu_tanh_forward(key, up, T * f);
    }
}

void xle_block_mlp_key_backward(const xle_family *fam, const xle_layer_weights *L,
                                xle_layer_weights *GL, float *dxn, float *dgate, float *dup,
                                const float *dkey, const float *xn, const float *gate,
                                const float *up, int T, int64_t f, float *scratch) {
    float *dw_gate = GL ? (float *)GL->w_gate.data : NULL, *dw_up = GL ? (float *)GL->w_up.data : NULL,
          *db_up = GL ? (float *)GL->b_up.data : NULL;
    memset(dgate, 0, (size_t)(T * f) * sizeof(float));
    memset(dup, 0, (size_t)(T * f) * sizeof(float));
    if (fam->mlp == XLE_MLP_SWIGLU || fam->mlp == XLE_MLP_GEGLU) {
        if (fam->mlp == XLE_MLP_SWIGLU) xle_swiglu_backward(dgate, dup, dkey, gate, up, T * f);
        else xle_geglu_backward(dgate, dup, dkey, gate, up, T * f);
        xle_matmul_backward(dxn, dw_gate, NULL, dgate, xn, &L->w_gate, T, scratch);
        xle_matmul_backward(dxn, dw_up, NULL, dup, xn, &L->w_up, T, scratch);
    } else {
        xle_gelu_tanh_backward(dup, dkey, up, T * f);
        xle_matmul_backward(dxn, dw_up, db_up, dup, xn, &L->w_up, T, scratch);
    }
}
