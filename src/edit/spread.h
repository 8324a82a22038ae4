/*
 * spread.h: the multi-layer write MEMIT and AlphaEdit share (spread.c), and the request keys.
 */
#ifndef XLE_EDIT_SPREAD_H
#define XLE_EDIT_SPREAD_H

#include "xledit.h"

/* Keys of each request at one layer: 0.5·k(bare prompt) + 0.5·mean k(prefixed prompts)
 * (the mean over template groups of the group means), as float64 columns K[f, n]. All
 * requests' prompts run as one packed batch. */
xle_status xle_edit_request_keys(xle_model *m, int layer, const xle_edit_request_tok *reqs, int n,
                                 double *K, xle_error *err);

/* The method's part of layer li (index into hp->layers): from the keys K [f, n] (float64,
 * column per request) the right factor A [f, n] of Δ = (R / (L − li)) Aᵀ. */
typedef xle_status (*xle_edit_spread_fn)(void *ctx, int li, const double *K, int n, double *A,
                                         xle_error *err);

/* z at the last layer of hp->layers, then each layer's Δ with `solve` (see spread.c); fills
 * out->deltas (allocated) and leaves the model unchanged. */
xle_status xle_edit_spread(xle_model *m, const xle_edit_hparams *hp, const xle_edit_request_tok *reqs,
                           int n_reqs, xle_edit_spread_fn solve, void *ctx, xle_edit_result *out,
                           xle_error *err);

#endif
