/*
 * weights.h: adding deltas to weights, and the temporary weight swaps a method uses between
 * its layers (weights.c).
 */
#ifndef XLE_EDIT_WEIGHTS_H
#define XLE_EDIT_WEIGHTS_H

#include "xledit.h"

/* A temporary edit of one layer's down projection: the model's tensor view points at an
 * f32 buffer holding original + delta until xle_weight_swap_restore puts the original view
 * back exactly (no rounding: the original bytes were never touched). */
typedef struct xle_weight_swap {
    xle_tensor *slot;
    xle_tensor orig;
    float *temp;
} xle_weight_swap;

xle_status xle_weight_swap_apply(xle_model *m, const xle_layer_delta *delta, xle_weight_swap *swap,
                                 xle_error *err);
void xle_weight_swap_restore(xle_weight_swap *swap);
/* A swap of layer's down projection with an f32 copy of it and no delta yet: edits that are to
 * stay (sequential editing) are added to swap->temp with xle_delta_add, and restoring still puts
 * the original view back exactly. */
xle_status xle_weight_swap_begin(xle_model *m, int layer, xle_weight_swap *swap, xle_error *err);

/* Adds delta (scaled by sign) to an f32 matrix [rows, cols]. */
void xle_delta_add(float *w, const xle_layer_delta *delta, float sign);

#endif
