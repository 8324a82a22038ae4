/*
 * rome.c: ROME (Meng et al. 2022) as EasyEdit runs it, editing.md §2: a rank-one change of
 * one layer's down projection, ΔW = r uᵀ with u the (optionally C⁻¹-whitened, normalised)
 * mean key over the context templates and r = (v* − v_cur) / (kᵀu). With hp->rrome the key
 * and value in r are the prefix averages (r-ROME, §4.3) instead of the bare prompt's.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "edit/edit_internal.h"

xle_status xle_rome_run(xle_model *m, const xle_edit_hparams *hp, const xle_edit_request_tok *req,
                        xle_layer_stats *const *stats, xle_edit_result *out, xle_error *err) {
    const xle_config *c = xle_model_config(m);
    const int d = c->dim, f = c->ffn_dim, np = req->n_prompts;
    if (hp->n_layers < 1) return xle_fail(err, XLE_ERR_ARG, "rome: no layer to edit");
    out->deltas = calloc((size_t)hp->n_layers, sizeof *out->deltas);
    if (!out->deltas) return xle_fail(err, XLE_ERR_NOMEM, "rome: out of memory");
    out->n_deltas = 0;
    xle_status st = XLE_OK;
    xle_weight_swap swaps[XLE_EDIT_MAX_LAYERS] = {{0}};
    float *keys = malloc((size_t)np * f * sizeof(float));
    float *vals = malloc((size_t)np * d * sizeof(float));
    float *init = malloc((size_t)d * sizeof(float)), *delta = malloc((size_t)d * sizeof(float));
    double *u = malloc((size_t)f * sizeof(double));
    if (!keys || !vals || !init || !delta || !u) {
        st = xle_fail(err, XLE_ERR_NOMEM, "rome: out of memory");
        goto done;
    }
    /* Layers are edited in ascending order; each sees the earlier ones' deltas (§2.3). */
    for (int li = 0; li < hp->n_layers; li++) {
        const int layer = hp->layers[li];
        st = xle_edit_read_point(m, XLE_POINT_MLP_KEY, layer, req->prompts, np, keys, err);
        if (st != XLE_OK) goto done;
        /* u: mean key over all templates (the bare prompt is template 0). */
        for (int j = 0; j < f; j++) {
            double s = 0;
            for (int i = 0; i < np; i++) s += keys[(int64_t)i * f + j];
            u[j] = s / np;
        }
        double *kbar = malloc((size_t)f * sizeof(double));
        if (!kbar) {
            st = xle_fail(err, XLE_ERR_NOMEM, "rome: out of memory");
            goto done;
        }
        memcpy(kbar, u, (size_t)f * sizeof(double));
        if (hp->mom2_adjustment) {
            const xle_layer_stats *s = stats ? stats[li] : NULL;
            if (!s || s->dim != f || s->count <= 0) {
                free(kbar);
                st = xle_fail(err, XLE_ERR_ARG, "rome: layer %d: mom2_adjustment needs key statistics (xledit stats)", layer);
                goto done;
            }
            double *cm = malloc((size_t)f * f * sizeof(double));
            if (!cm) {
                free(kbar);
                st = xle_fail(err, XLE_ERR_NOMEM, "rome: out of memory");
                goto done;
            }
            for (int64_t i = 0; i < (int64_t)f * f; i++) cm[i] = s->sum[i] / (double)s->count;
            st = xle_solve_spd(cm, u, f, 1, "rome: key covariance", err);
            free(cm);
            if (st != XLE_OK) {
                free(kbar);
                goto done;
            }
        }
        double un = 0;
        for (int j = 0; j < f; j++) un += u[j] * u[j];
        un = sqrt(un);
        if (!(un > 0)) {
            free(kbar);
            st = xle_fail(err, XLE_ERR_NUMERIC, "rome: layer %d: the key is zero", layer);
            goto done;
        }
        for (int j = 0; j < f; j++) u[j] /= un;

        st = xle_edit_optimize_delta(m, hp, req, XLE_POINT_MLP_OUT, layer, init, delta,
                                     &out->final_loss, &out->steps, err);
        if (st != XLE_OK) {
            free(kbar);
            goto done;
        }
        /* k and v_cur: the bare prompt's (ROME) or the template averages (r-ROME). */
        double *k = malloc((size_t)f * sizeof(double)), *vcur = malloc((size_t)d * sizeof(double));
        if (!k || !vcur) {
            free(kbar), free(k), free(vcur);
            st = xle_fail(err, XLE_ERR_NOMEM, "rome: out of memory");
            goto done;
        }
        st = xle_edit_read_point(m, XLE_POINT_MLP_OUT, layer, req->prompts, hp->rrome ? np : 1, vals, err);
        if (st != XLE_OK) {
            free(kbar), free(k), free(vcur);
            goto done;
        }
        if (hp->rrome) {
            memcpy(k, kbar, (size_t)f * sizeof(double));
            for (int j = 0; j < d; j++) {
                double s = 0;
                for (int i = 0; i < np; i++) s += vals[(int64_t)i * d + j];
                vcur[j] = s / np;
            }
        } else {
            for (int j = 0; j < f; j++) k[j] = keys[j];
            for (int j = 0; j < d; j++) vcur[j] = vals[j];
        }
        double ku = 0;
        for (int j = 0; j < f; j++) ku += k[j] * u[j];
        xle_layer_delta *ld = &out->deltas[out->n_deltas];
        ld->layer = layer, ld->rank = 1, ld->rows = d, ld->cols = f;
        ld->left = malloc((size_t)d * sizeof(float));
        ld->right = malloc((size_t)f * sizeof(float));
        if (!ld->left || !ld->right) {
            free(ld->left), free(ld->right), free(kbar), free(k), free(vcur);
            st = xle_fail(err, XLE_ERR_NOMEM, "rome: out of memory");
            goto done;
        }
        out->n_deltas++;
        for (int j = 0; j < d; j++) ld->left[j] = (float)(((double)init[j] + delta[j] - vcur[j]) / ku);
        for (int j = 0; j < f; j++) ld->right[j] = (float)u[j];
        free(kbar), free(k), free(vcur);
        if (!isfinite(ku) || ku == 0) {
            st = xle_fail(err, XLE_ERR_NUMERIC, "rome: layer %d: kᵀu is %g", layer, ku);
            goto done;
        }
        /* Later layers are computed with this one applied; the model is restored at the end. */
        if (li + 1 < hp->n_layers) {
            st = xle_weight_swap_apply(m, ld, &swaps[li], err);
            if (st != XLE_OK) goto done;
        }
    }
done:
    for (int li = hp->n_layers - 1; li >= 0; li--) xle_weight_swap_restore(&swaps[li]);
    free(keys), free(vals), free(init), free(delta), free(u);
    return st;
}

xle_status xle_rome_run_sequence(xle_model *m, const xle_edit_hparams *hp, const xle_edit_request_tok *reqs,
                                 int n_reqs, xle_layer_stats *const *stats, xle_edit_memo *memo,
                                 xle_edit_result *out, xle_error *err) {
    /* Several requests: edited one after another, each on top of the previous ones. */
    xle_status st = XLE_OK;
    xle_weight_swap swaps[XLE_EDIT_MAX_LAYERS] = {{0}};
    xle_edit_result acc = {0};
    for (int r = 0; r < n_reqs && st == XLE_OK; r++) {
        xle_edit_result one = {0};
        /* the first request is edited on the unedited model: the memo may have it */
        st = r == 0 ? xle_edit_memo_rome(m, hp, &reqs[r], stats, memo, &one, err)
                    : xle_rome_run(m, hp, &reqs[r], stats, &one, err);
        if (st != XLE_OK) {
            xle_edit_result_free(&one);
            break;
        }
        /* accumulate rank-one deltas per layer: concatenate factors */
        if (!acc.deltas) {
            acc = one;
        } else {
            for (int i = 0; i < one.n_deltas && st == XLE_OK; i++) {
                xle_layer_delta *a = &acc.deltas[i], *b = &one.deltas[i];
                int rank = a->rank + 1;
                float *left = malloc((size_t)a->rows * rank * sizeof(float));
                float *right = malloc((size_t)a->cols * rank * sizeof(float));
                if (!left || !right) {
                    free(left), free(right);
                    st = xle_fail(err, XLE_ERR_NOMEM, "edit: out of memory");
                    break;
                }
                for (int x = 0; x < a->rows; x++) {
                    memcpy(left + (int64_t)x * rank, a->left + (int64_t)x * a->rank, (size_t)a->rank * sizeof(float));
                    left[(int64_t)x * rank + a->rank] = b->left[x];
                }
                for (int x = 0; x < a->cols; x++) {
                    memcpy(right + (int64_t)x * rank, a->right + (int64_t)x * a->rank, (size_t)a->rank * sizeof(float));
                    right[(int64_t)x * rank + a->rank] = b->right[x];
                }
                free(a->left), free(a->right);
                a->left = left, a->right = right, a->rank = rank;
            }
            acc.final_loss = one.final_loss, acc.steps = one.steps;
            xle_edit_result_free(&one);
        }
        if (r + 1 < n_reqs && st == XLE_OK) {
            for (int i = acc.n_deltas - 1; i >= 0; i--) xle_weight_swap_restore(&swaps[i]);
            for (int i = 0; i < acc.n_deltas && st == XLE_OK; i++)
                st = xle_weight_swap_apply(m, &acc.deltas[i], &swaps[i], err);
        }
    }
    for (int i = XLE_EDIT_MAX_LAYERS - 1; i >= 0; i--) xle_weight_swap_restore(&swaps[i]);
    if (st != XLE_OK) xle_edit_result_free(&acc);
    else *out = acc;
    return st;
}
