/*
 * delta_opt.h: reading activations at the fact token, and the v* / z optimisation (delta_opt.c)
 * that ROME, MEMIT and AlphaEdit share.
 */
#ifndef XLE_EDIT_DELTA_OPT_H
#define XLE_EDIT_DELTA_OPT_H

#include "xledit.h"

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

#endif
