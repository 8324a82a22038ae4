/*
 * spread.c: the multi-layer write that MEMIT and AlphaEdit share (editing.md §3): targets z at
 * the last layer of the range from the delta optimisation, then for each layer in ascending
 * order the residual R = z − h(current weights), split over the remaining layers, is written
 * into the down projection as Δ_l = (R / (L − i)) Aᵀ, where the method supplies A (f × n) from
 * the layer's keys K. Each layer's delta is in place while the next layers are computed; the
 * model is restored at the end.
 */
#include <stdlib.h>
#include <string.h>

#include "edit/spread.h"
#include "edit/delta_opt.h"
#include "edit/weights.h"

/* Keys of each request at one layer: 0.5·k(bare prompt) + 0.5·mean k(prefixed prompts)
 * (the mean over template groups of the group means), as float64 columns K[f, n]. All
 * requests' prompts run as one packed batch. */
xle_status xle_edit_request_keys(xle_model *m, int layer, const xle_edit_request_tok *reqs, int n,
                             double *K, xle_error *err) {
    const int f = xle_model_config(m)->ffn_dim;
    int total = 0;
    for (int r = 0; r < n; r++) total += reqs[r].n_prompts;
    xle_edit_prompt *all = malloc((size_t)total * sizeof *all);
    float *keys = malloc((size_t)total * f * sizeof(float));
    if (!all || !keys) {
        free(all), free(keys);
        return xle_fail(err, XLE_ERR_NOMEM, "edit: out of memory");
    }
    for (int r = 0, at = 0; r < n; r++)
        for (int i = 0; i < reqs[r].n_prompts; i++) all[at++] = reqs[r].prompts[i];
    xle_status st = xle_edit_read_point(m, XLE_POINT_MLP_KEY, layer, all, total, keys, err);
    for (int r = 0, at = 0; r < n && st == XLE_OK; at += reqs[r].n_prompts, r++) {
        const xle_edit_request_tok *q = &reqs[r];
        const float *qk = keys + (int64_t)at * f;
        int counts[2] = {0, 0};
        for (int i = 0; i < q->n_prompts; i++) counts[q->prompts[i].group ? 1 : 0]++;
        const int n_groups = (counts[0] > 0) + (counts[1] > 0);
        for (int j = 0; j < f; j++) {
            double g[2] = {0, 0};
            for (int i = 0; i < q->n_prompts; i++) g[q->prompts[i].group ? 1 : 0] += qk[(int64_t)i * f + j];
            double k = 0;
            for (int gi = 0; gi < 2; gi++)
                if (counts[gi]) k += g[gi] / counts[gi];
            K[(int64_t)j * n + r] = k / n_groups;
        }
    }
    free(all), free(keys);
    return st;
}

xle_status xle_edit_spread(xle_model *m, const xle_edit_hparams *hp, const xle_edit_request_tok *reqs,
                           int n_reqs, xle_edit_spread_fn solve, void *ctx, xle_edit_result *out,
                           xle_error *err) {
    const xle_config *c = xle_model_config(m);
    const int d = c->dim, f = c->ffn_dim, L = hp->n_layers, last = hp->layers[L - 1], n = n_reqs;
    xle_status st = XLE_OK;
    xle_weight_swap swaps[XLE_EDIT_MAX_LAYERS] = {{0}};
    float *Z = malloc((size_t)n * d * sizeof(float));       /* targets z_r, row per request */
    float *init = malloc((size_t)n * d * sizeof(float)), *delta = malloc((size_t)n * d * sizeof(float));
    double *losses = malloc((size_t)n * sizeof(double));
    int *steps = malloc((size_t)n * sizeof(int));
    float *cur = malloc((size_t)n * d * sizeof(float));
    double *K = malloc((size_t)f * n * sizeof(double));
    double *KK = malloc((size_t)f * n * sizeof(double));
    xle_edit_prompt *bare = malloc((size_t)n * sizeof *bare);
    out->deltas = calloc((size_t)L, sizeof *out->deltas);
    if (!Z || !init || !delta || !losses || !steps || !cur || !K || !KK || !bare || !out->deltas) {
        st = xle_fail(err, XLE_ERR_NOMEM, "edit: out of memory");
        goto done;
    }
    /* z_r = h_init + delta at the last layer's block output, per request, original weights;
     * the requests are optimised side by side in one batch (each as if alone). */
    st = xle_edit_optimize_deltas(m, hp, reqs, n, XLE_POINT_BLOCK_OUT, last, init, delta, losses,
                                  steps, err);
    if (st != XLE_OK) goto done;
    out->final_loss = losses[n - 1], out->steps = steps[n - 1];
    for (int r = 0; r < n; r++) {
        for (int j = 0; j < d; j++) Z[(int64_t)r * d + j] = init[(int64_t)r * d + j] + delta[(int64_t)r * d + j];
        bare[r] = reqs[r].prompts[0];
    }
    for (int li = 0; li < L; li++) {
        const int layer = hp->layers[li];
        st = xle_edit_request_keys(m, layer, reqs, n, K, err);
        if (st != XLE_OK) goto done;
        /* Current block output at the last layer (with the layers edited so far). */
        st = xle_edit_read_point(m, XLE_POINT_BLOCK_OUT, last, bare, n, cur, err);
        if (st != XLE_OK) goto done;
        st = solve(ctx, li, K, n, KK, err);
        if (st != XLE_OK) goto done;
        /* Δ = (R / (L − li)) · Aᵀ: left[d, n] = residuals / (L − li), right[f, n] = A. */
        xle_layer_delta *ld = &out->deltas[out->n_deltas];
        ld->layer = layer, ld->rank = n, ld->rows = d, ld->cols = f;
        ld->left = malloc((size_t)d * n * sizeof(float));
        ld->right = malloc((size_t)f * n * sizeof(float));
        if (!ld->left || !ld->right) {
            free(ld->left), free(ld->right);
            ld->left = ld->right = NULL;
            st = xle_fail(err, XLE_ERR_NOMEM, "edit: out of memory");
            goto done;
        }
        out->n_deltas++;
        for (int j = 0; j < d; j++)
            for (int r = 0; r < n; r++)
                ld->left[(int64_t)j * n + r] =
                    (float)(((double)Z[(int64_t)r * d + j] - cur[(int64_t)r * d + j]) / (L - li));
        for (int64_t i = 0; i < (int64_t)f * n; i++) ld->right[i] = (float)KK[i];
        /* W_l ← W_l⁰ + Δ_l for the layers that follow; everything is restored at the end. */
        if (li + 1 < L) {
            st = xle_weight_swap_apply(m, ld, &swaps[li], err);
            if (st != XLE_OK) goto done;
        }
    }
done:
    for (int li = L - 1; li >= 0; li--) xle_weight_swap_restore(&swaps[li]);
    free(Z), free(init), free(delta), free(losses), free(steps), free(cur), free(K), free(KK), free(bare);
    return st;
}
