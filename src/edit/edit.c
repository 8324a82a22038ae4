/*
 * edit.c: the dispatcher: checks a batch of requests against the model and hands it to the
 * method (rome.c, memit.c, alphaedit.c, ft.c), in exact arithmetic whatever precision the model runs in.
 */
#include <string.h>

#include "edit/edit_internal.h"
#include "model/model_internal.h"

/* The progress of a whole run: each optimisation reports its own steps and ends with
 * (total, total) once (delta_opt.c, ft.c); this adds the steps of the optimisations before it
 * (ROME: one per request and layer). */
typedef struct run_progress {
    xle_progress_fn fn;
    void *user;
    int64_t before, total;
} run_progress;

static int run_progress_step(void *user, int64_t done, int64_t total) {
    run_progress *p = user;
    int64_t at = p->before + done;
    if (done >= total) p->before += total; /* the next optimisation starts after this one */
    if (at > p->total) at = p->total;
    return p->fn(p->user, at, p->total);
}

static int64_t run_steps(const xle_edit_hparams *hp, int n_reqs) {
    switch (hp->method) {
    case XLE_EDIT_ROME: return (int64_t)n_reqs * hp->n_layers * hp->v_num_grad_steps;
    case XLE_EDIT_MEMIT:
    case XLE_EDIT_ALPHAEDIT: return hp->v_num_grad_steps;
    default: return hp->ft_steps;
    }
}

static xle_status edit_run(xle_model *m, const xle_edit_hparams *hp, const xle_edit_request_tok *reqs,
                           int n_reqs, xle_layer_stats *const *stats, xle_edit_memo *memo,
                           xle_edit_result *out, xle_error *err) {
    memset(out, 0, sizeof *out);
    if (n_reqs <= 0) return xle_fail(err, XLE_ERR_ARG, "edit: no requests");
    if (hp->n_layers <= 0) return xle_fail(err, XLE_ERR_ARG, "edit: no layers");
    for (int i = 0; i < hp->n_layers; i++) {
        if (hp->layers[i] < 0 || hp->layers[i] >= m->cfg.n_layers)
            return xle_fail(err, XLE_ERR_ARG, "edit: layer %d outside the model's %d layers", hp->layers[i], m->cfg.n_layers);
        if (i && hp->layers[i] <= hp->layers[i - 1])
            return xle_fail(err, XLE_ERR_ARG, "edit: layers must be strictly ascending");
    }
    for (int r = 0; r < n_reqs; r++)
        for (int t = 0; t < reqs[r].n_target; t++)
            if (reqs[r].target[t] < 0 || reqs[r].target[t] >= m->cfg.vocab_size)
                return xle_fail(err, XLE_ERR_ARG, "edit: request %d: target id %d outside the vocabulary", r, reqs[r].target[t]);
    /* With progress, the methods see a copy that reports through run_progress (a memo keys on
     * the hparams' address, and its users report no progress). */
    xle_edit_hparams with_progress;
    run_progress rp = {hp->progress, hp->progress_user, 0, run_steps(hp, n_reqs)};
    if (hp->progress) {
        with_progress = *hp;
        with_progress.progress = run_progress_step;
        with_progress.progress_user = &rp;
        hp = &with_progress;
    }
    xle_status st;
    switch (hp->method) {
    case XLE_EDIT_ROME: st = xle_rome_run_sequence(m, hp, reqs, n_reqs, stats, memo, out, err); break;
    case XLE_EDIT_MEMIT: st = xle_memit_run(m, hp, reqs, n_reqs, stats, out, err); break;
    case XLE_EDIT_FT_L:
    case XLE_EDIT_FT_M: st = xle_ft_run(m, hp, reqs, n_reqs, out, err); break;
    case XLE_EDIT_ALPHAEDIT: {
        /* one batch on its own: P from the statistics, no earlier edits */
        xle_alphaedit_state *state = NULL;
        st = xle_alphaedit_state_new(hp, stats, &state, err);
        if (st == XLE_OK) st = xle_alphaedit_run(m, hp, reqs, n_reqs, state, out, err);
        xle_alphaedit_state_free(state);
        break;
    }
    default: return xle_fail(err, XLE_ERR_ARG, "edit: unknown method");
    }
    /* the end (a ROME request served by the memo ran no steps) */
    if (st == XLE_OK && rp.fn && rp.before < rp.total && rp.fn(rp.user, rp.total, rp.total))
        st = xle_fail(err, XLE_ERR_INTERRUPTED, "edit: interrupted");
    if (st != XLE_OK) xle_edit_result_free(out);
    return st;
}

xle_status xle_edit_run(xle_model *m, const xle_edit_hparams *hp, const xle_edit_request_tok *reqs,
                        int n_reqs, xle_layer_stats *const *stats, xle_edit_result *out, xle_error *err) {
    return xle_edit_run_memo(m, hp, reqs, n_reqs, stats, NULL, out, err);
}

xle_status xle_edit_run_memo(xle_model *m, const xle_edit_hparams *hp, const xle_edit_request_tok *reqs,
                             int n_reqs, xle_layer_stats *const *stats, xle_edit_memo *memo,
                             xle_edit_result *out, xle_error *err) {
    /* Edits are computed in exact arithmetic whatever precision the model runs inference in:
     * the goldens (docs/editing.md) were not measured with bf16-rounded activations. */
    const xle_precision keep = xle_model_precision(m);
    xle_model_set_precision(m, XLE_PRECISION_EXACT);
    xle_status st = edit_run(m, hp, reqs, n_reqs, stats, memo, out, err);
    xle_model_set_precision(m, keep);
    return st;
}
