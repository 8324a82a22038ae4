/*
 * weights.c: edit results on model weights: freeing them, adding a delta to a matrix, applying
 * a result to the model for good, and temporary swaps that a method uses between its layers.
 */
#include <stdlib.h>
#include <string.h>

#include "edit/weights.h"
#include "tensor/ops.h"
#include "model/model_internal.h"

void xle_edit_result_free(xle_edit_result *r) {
    if (!r) return;
    for (int i = 0; i < r->n_deltas; i++) {
        free(r->deltas[i].left);
        free(r->deltas[i].right);
        free(r->deltas[i].dense);
    }
    free(r->deltas);
    r->deltas = NULL;
    r->n_deltas = 0;
}

void xle_layer_stats_free(xle_layer_stats *s) {
    if (!s) return;
    free(s->sum);
    free(s);
}

void xle_delta_add(float *w, const xle_layer_delta *dl, float sign) {
    const int rows = dl->rows, cols = dl->cols, rank = dl->rank;
#pragma omp parallel for schedule(static) if((int64_t)rows * cols > XLE_PAR_MIN_WORK)
    for (int i = 0; i < rows; i++) {
        float *wr = w + (int64_t)i * cols;
        if (rank == 0) {
            const float *dr = dl->dense + (int64_t)i * cols;
            for (int j = 0; j < cols; j++) wr[j] += sign * dr[j];
        } else {
            for (int r = 0; r < rank; r++) {
                float a = sign * dl->left[(int64_t)i * rank + r];
                for (int j = 0; j < cols; j++) wr[j] += a * dl->right[(int64_t)j * rank + r];
            }
        }
    }
}

static xle_status check_delta(const xle_model *m, const xle_layer_delta *dl, xle_error *err) {
    const xle_config *c = &m->cfg;
    if (dl->layer < 0 || dl->layer >= c->n_layers)
        return xle_fail(err, XLE_ERR_ARG, "edit: layer %d outside [0, %d)", dl->layer, c->n_layers);
    if (dl->rows != c->dim || dl->cols != c->ffn_dim)
        return xle_fail(err, XLE_ERR_ARG, "edit: layer %d: delta is %dx%d, the weight %dx%d", dl->layer,
                        dl->rows, dl->cols, c->dim, c->ffn_dim);
    return XLE_OK;
}

xle_status xle_weight_swap_apply(xle_model *m, const xle_layer_delta *dl, xle_weight_swap *swap,
                                 xle_error *err) {
    xle_status st = check_delta(m, dl, err);
    if (st != XLE_OK) return st;
    xle_tensor *slot = &m->w.layers[dl->layer].w_down;
    int64_t n = xle_tensor_numel(slot);
    float *temp = malloc((size_t)n * sizeof(float));
    if (!temp) return xle_fail(err, XLE_ERR_NOMEM, "edit: out of memory");
    xle_tensor_row_to_f32(slot, 0, n, temp);
    xle_delta_add(temp, dl, 1.0f);
    swap->slot = slot;
    swap->orig = *slot;
    swap->temp = temp;
    slot->data = temp;
    slot->dtype = XLE_F32;
    return XLE_OK;
}

xle_status xle_weight_swap_begin(xle_model *m, int layer, xle_weight_swap *swap, xle_error *err) {
    if (layer < 0 || layer >= m->cfg.n_layers)
        return xle_fail(err, XLE_ERR_ARG, "edit: layer %d outside [0, %d)", layer, m->cfg.n_layers);
    xle_tensor *slot = &m->w.layers[layer].w_down;
    int64_t n = xle_tensor_numel(slot);
    float *temp = malloc((size_t)n * sizeof(float));
    if (!temp) return xle_fail(err, XLE_ERR_NOMEM, "edit: out of memory");
    xle_tensor_row_to_f32(slot, 0, n, temp);
    swap->slot = slot;
    swap->orig = *slot;
    swap->temp = temp;
    slot->data = temp;
    slot->dtype = XLE_F32;
    return XLE_OK;
}

void xle_weight_swap_restore(xle_weight_swap *swap) {
    if (!swap->slot) return;
    *swap->slot = swap->orig;
    free(swap->temp);
    memset(swap, 0, sizeof *swap);
}

xle_status xle_edit_apply(xle_model *m, const xle_edit_result *r, int sign, xle_error *err) {
    for (int i = 0; i < r->n_deltas; i++) {
        xle_status st = check_delta(m, &r->deltas[i], err);
        if (st != XLE_OK) return st;
    }
    for (int i = 0; i < r->n_deltas; i++) {
        xle_tensor *w = &m->w.layers[r->deltas[i].layer].w_down;
        xle_status st = xle_model_make_writable_f32(m, w, err);
        if (st != XLE_OK) return st;
        xle_delta_add(w->data, &r->deltas[i], (float)sign);
    }
    return XLE_OK;
}

