/*
 * partial.h: the forward and backward pass of only the part of a packed batch that an edit
 * changes. ROME's v* and MEMIT's z optimisations add a vector to the residual stream after one
 * layer at a few rows (the subject's last token of each prompt) and run dozens of Adam steps;
 * everything below that layer, and every row before the first changed row of its sequence, is
 * the same in every step. xle_upper computes those once (the residual stream entering the
 * layers above, and those layers' keys and values of the unchanged rows, kept like a KV cache)
 * and then runs each step over the changing rows of the layers above only, forward and
 * backward (activation gradients, no weight gradients), with logits only at the scored rows.
 */
#ifndef XLE_PARTIAL_H
#define XLE_PARTIAL_H

#include "xledit.h"

typedef struct xle_upper xle_upper;

/* Prepares the partial runs of batch b, edited after layer `layer`. first_var[s] is the first
 * row (counted within sequence s) that the edit may change: rows before it are fixed. The
 * logits are computed at logit_rows (batch rows, each at or after its sequence's first_var).
 * hooks (may be NULL) run during the one pass over the layers up to `layer`, on all rows (the
 * pass stops after `layer`'s block output). The model must not change while *out lives;
 * free it with xle_upper_free. */
xle_status xle_upper_new(xle_model *m, const xle_batch *b, int layer, const int *first_var,
                         const int *logit_rows, int n_logit_rows, const xle_hook *hooks,
                         int n_hooks, xle_upper **out, xle_error *err);
void xle_upper_free(xle_upper *u);

/* Number of changing rows, and the index among them of batch row `row` (-1: a fixed row). */
int xle_upper_n_var(const xle_upper *u);
int xle_upper_var_index(const xle_upper *u, int row);

/* One forward pass: the unedited residual stream after `layer` plus add[i] (d floats each,
 * add is [n_rows x d]) at rows[i] (batch rows that change), through the layers above; logits
 * [n_logit_rows x vocab] of the rows given to xle_upper_new, in their order. Keeps what the
 * backward pass needs. */
xle_status xle_upper_forward(xle_upper *u, const int *rows, int n_rows, const float *add,
                             float *logits, xle_error *err);

/* The backward pass of the last forward: from d_logits [n_logit_rows x vocab] to the gradient
 * of the residual stream after `layer` at the changing rows, d_resid [n_var x dim]. */
xle_status xle_upper_backward(xle_upper *u, const float *d_logits, float *d_resid, xle_error *err);

#endif
