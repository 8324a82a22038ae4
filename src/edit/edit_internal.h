/*
 * edit_internal.h: the editing methods (rome.c, memit.c, ft.c) and the memo, as the
 * dispatcher (edit.c) calls them; it includes the shared parts the methods build on, so that
 * the evaluation and the tests see the whole room through one header.
 */
#ifndef XLE_EDIT_INTERNAL_H
#define XLE_EDIT_INTERNAL_H

#include "xledit.h"
#include "edit/delta_opt.h"
#include "edit/solve.h"
#include "edit/weights.h"

typedef struct xle_edit_memo xle_edit_memo; /* see "What edits compute on the unedited model" */

/* The methods. Each fills out->deltas (allocating them) and leaves the model unchanged. */
xle_status xle_rome_run(xle_model *m, const xle_edit_hparams *hp, const xle_edit_request_tok *req,
                        xle_layer_stats *const *stats, xle_edit_result *out, xle_error *err);
xle_status xle_memit_run(xle_model *m, const xle_edit_hparams *hp, const xle_edit_request_tok *reqs,
                         int n_reqs, xle_layer_stats *const *stats, xle_edit_result *out,
                         xle_error *err);
/* ROME over several requests, edited one after another, each on top of the previous ones; the
 * first through the memo. The rank-one deltas of each layer are concatenated. */
xle_status xle_rome_run_sequence(xle_model *m, const xle_edit_hparams *hp, const xle_edit_request_tok *reqs,
                                 int n_reqs, xle_layer_stats *const *stats, xle_edit_memo *memo,
                                 xle_edit_result *out, xle_error *err);
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

#endif
