/*
 * edit_internal.h: pieces shared by the editing methods (rome.c, memit.c, ft.c).
 */
#ifndef XLE_EDIT_INTERNAL_H
#define XLE_EDIT_INTERNAL_H

#include "xledit.h"

typedef struct xle_edit_memo xle_edit_memo; /* see "What edits compute on the unedited model" */

/* Reads the activation at (point, layer) at each prompt's fact token into out (n x width),
 * running the prompts as one packed batch and stopping the pass right there. */
xle_status xle_edit_read_point(xle_model *m, xle_point point, int layer,
                               const xle_edit_prompt *prompts, int n, float *out, xle_error *err);

/* The v* (ROME: point MLP_OUT) or z (MEMIT: point BLOCK_OUT) optimisation of editing.md
 * §2.2 / §3.1: finds delta (d) added at the fact token of every prompt so that the model
 * predicts the target, with the KL and weight-decay terms, Adam, clamping and early stop.
 * init receives the unedited activation at prompts[0]'s fact token. */
xle_status xle_edit_optimize_delta(xle_model *m, const xle_edit_hparams *hp,
                                   const xle_edit_request_tok *req, xle_point point, int layer,
                                   float *init, float *delta, double *final_loss, int *steps,
                                   xle_error *err);
/* The same for n independent requests at once (one packed batch, larger products): init,
 * delta [n x d], final_loss and steps [n]; each result is what the request alone gives. */
xle_status xle_edit_optimize_deltas(xle_model *m, const xle_edit_hparams *hp,
                                    const xle_edit_request_tok *reqs, int n_reqs, xle_point point,
                                    int layer, float *init, float *delta, double *final_loss,
                                    int *steps, xle_error *err);
/* The same computed the plain way: every step runs the whole batch through every layer and
 * back down to `layer`. Gives the same result up to float32 rounding; kept so that the tests
 * can check the default (which computes the unchanging part once) against it. */
xle_status xle_edit_optimize_delta_full(xle_model *m, const xle_edit_hparams *hp,
                                        const xle_edit_request_tok *req, xle_point point, int layer,
                                        float *init, float *delta, double *final_loss, int *steps,
                                        xle_error *err);

/* The methods. Each fills out->deltas (allocating them) and leaves the model unchanged. */
xle_status xle_rome_run(xle_model *m, const xle_edit_hparams *hp, const xle_edit_request_tok *req,
                        xle_layer_stats *const *stats, xle_edit_result *out, xle_error *err);
xle_status xle_memit_run(xle_model *m, const xle_edit_hparams *hp, const xle_edit_request_tok *reqs,
                         int n_reqs, xle_layer_stats *const *stats, xle_edit_result *out,
                         xle_error *err);
xle_status xle_ft_run(xle_model *m, const xle_edit_hparams *hp, const xle_edit_request_tok *reqs,
                      int n_reqs, xle_edit_result *out, xle_error *err);

/* What edits compute on the unedited model per request (memo.c), reused by later edits of the
 * same request: ROME's result for the first request of a sequence. (Not MEMIT's z: requests are
 * optimised side by side in one batch, and a request's z in a batch differs in its last bits
 * from its z alone, so a shared z would change the "all" unit's numbers.) Entries are
 * keyed by the hyper-parameters' address and the request's tokens. The owner clears the memo
 * whenever the model's weights (unedited, as the edits start) or the hyper-parameters at those
 * addresses change; an evaluation run clears it at every case. NULL memo: nothing is kept. */
xle_edit_memo *xle_edit_memo_new(void);
void xle_edit_memo_clear(xle_edit_memo *memo);
void xle_edit_memo_free(xle_edit_memo *memo);

/* xle_edit_run, with requests that were edited before on the unedited model taken from memo. */
xle_status xle_edit_run_memo(xle_model *m, const xle_edit_hparams *hp, const xle_edit_request_tok *reqs,
                             int n_reqs, xle_layer_stats *const *stats, xle_edit_memo *memo,
                             xle_edit_result *out, xle_error *err);

/* xle_rome_run through the memo (the model must be unedited). */
xle_status xle_edit_memo_rome(xle_model *m, const xle_edit_hparams *hp, const xle_edit_request_tok *req,
                              xle_layer_stats *const *stats, xle_edit_memo *memo, xle_edit_result *out,
                              xle_error *err);


/* Solves (sym. positive definite A, n x n, row-major, overwritten) X = A^-1 B for B n x nrhs
 * (overwritten by X) in float64 with LAPACK; XLE_ERR_NUMERIC when A is not positive definite. */
xle_status xle_solve_spd(double *a, double *b, int n, int nrhs, const char *what, xle_error *err);

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

/* Adds delta (scaled by sign) to an f32 matrix [rows, cols]. */
void xle_delta_add(float *w, const xle_layer_delta *delta, float sign);

#endif
