/*
 * ft.c: the fine-tuning baselines of editing.md §5 on one layer's down projection, with Adam
 * and an optional elementwise L∞ box around the original weights (norm_constraint).
 *  FT-L: every target token scored at the last prompt token (ROME's "prompt_last" objective).
 *  FT-M: teacher-forced cross-entropy on the target positions of prompt + target.
 * Stops when the loss is below 1e-2. Returns the dense change W − W0.
 */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "edit/edit_internal.h"
#include "tensor/ops.h"
#include "model/engine_internal.h"

static double log_softmax_at(const float *z, int V, int y, float *dz, double scale) {
    double mx = -INFINITY;
    for (int i = 0; i < V; i++) mx = fmax(mx, z[i]);
    double s = 0;
    for (int i = 0; i < V; i++) s += exp((double)z[i] - mx);
    double lse = mx + log(s);
    for (int i = 0; i < V; i++) dz[i] += (float)(scale * exp((double)z[i] - lse));
    dz[y] -= (float)scale;
    return (double)z[y] - lse;
}

xle_status xle_ft_run(xle_model *m, const xle_edit_hparams *hp, const xle_edit_request_tok *reqs,
                      int n_reqs, xle_edit_result *out, xle_error *err) {
    const xle_config *c = xle_model_config(m);
    const int d = c->dim, f = c->ffn_dim, V = c->vocab_size, layer = hp->layers[0];
    const int prompt_last = hp->method == XLE_EDIT_FT_L;
    if (hp->n_layers != 1) return xle_fail(err, XLE_ERR_ARG, "ft: fine-tuning edits exactly one layer");
    /* Batch: each request's bare prompt followed by its target (FT-M) or alone (FT-L). */
    int total = 0, n_rows = 0;
    for (int r = 0; r < n_reqs; r++) {
        total += reqs[r].prompts[0].n + (prompt_last ? 0 : reqs[r].n_target);
        n_rows += prompt_last ? 1 : reqs[r].n_target;
    }
    xle_status st = XLE_OK;
    int32_t *ids = malloc((size_t)total * sizeof(int32_t));
    int *start = malloc((size_t)(n_reqs + 1) * sizeof(int)), *rows = malloc((size_t)n_rows * sizeof(int));
    float *logits = malloc((size_t)n_rows * V * sizeof(float)), *dlogits = malloc((size_t)n_rows * V * sizeof(float));
    float *dblock = malloc((size_t)total * d * sizeof(float)), *w0 = malloc((size_t)d * f * sizeof(float));
    float *grad = malloc((size_t)d * f * sizeof(float));
    double *am = calloc((size_t)d * f, sizeof(double)), *av = calloc((size_t)d * f, sizeof(double));
    xle_acts *acts = xle_acts_new();
    xle_weight_swap swap = {0};
    xle_layer_delta zero = {layer, 0, d, f, NULL, NULL, NULL};
    if (!ids || !start || !rows || !logits || !dlogits || !dblock || !w0 || !grad || !am || !av || !acts) {
        st = xle_fail(err, XLE_ERR_NOMEM, "ft: out of memory");
        goto done;
    }
    int at = 0, row = 0;
    for (int r = 0; r < n_reqs; r++) {
        const xle_edit_prompt *p = &reqs[r].prompts[0];
        start[r] = at;
        memcpy(ids + at, p->ids, (size_t)p->n * sizeof(int32_t));
        if (prompt_last) {
            rows[row++] = at + p->n - 1;
        } else {
            memcpy(ids + at + p->n, reqs[r].target, (size_t)reqs[r].n_target * sizeof(int32_t));
            for (int t = 0; t < reqs[r].n_target; t++) rows[row++] = at + p->n - 1 + t;
        }
        at += p->n + (prompt_last ? 0 : reqs[r].n_target);
    }
    start[n_reqs] = at;
    zero.dense = calloc((size_t)d * f, sizeof(float));
    if (!zero.dense) {
        st = xle_fail(err, XLE_ERR_NOMEM, "ft: out of memory");
        goto done;
    }
    st = xle_weight_swap_apply(m, &zero, &swap, err); /* the working copy W = W0 in f32 */
    if (st != XLE_OK) goto done;
    float *W = swap.temp;
    memcpy(w0, W, (size_t)d * f * sizeof(float));
    xle_batch b = {n_reqs, ids, start};
    xle_forward_opts o = {.acts = acts, .logit_rows = rows, .n_logit_rows = n_rows, .keep_from_layer = layer};
    double loss = 0;
    int step;
    for (step = 0; step < hp->ft_steps; step++) {
        st = xle_forward(m, &b, &o, logits, err);
        if (st != XLE_OK) goto done;
        memset(dlogits, 0, (size_t)n_rows * V * sizeof(float));
        loss = 0;
        row = 0;
        for (int r = 0; r < n_reqs; r++) {
            const int nt = reqs[r].n_target;
            const double scale = 1.0 / ((double)nt * n_reqs);
            for (int t = 0; t < nt; t++) {
                int lr = prompt_last ? row : row + t;
                loss -= scale * log_softmax_at(logits + (size_t)lr * V, V, reqs[r].target[t],
                                               dlogits + (size_t)lr * V, scale);
            }
            row += prompt_last ? 1 : nt;
        }
        if (!isfinite(loss)) {
            st = xle_fail(err, XLE_ERR_NUMERIC, "ft: the loss became %g at step %d", loss, step);
            goto done;
        }
        if (loss < 1e-2) break;
        st = xle_backward(m, acts, dlogits, layer, dblock, NULL, err);
        if (st != XLE_OK) goto done;
        /* dW[d, f] = Σ_t d(mlp_out)[t]ᵀ key[t]; d(mlp_out) = d(block_out) of the layer. */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d, f, at, 1.0f, dblock, d,
                    acts->layers[layer].key, f, 0.0f, grad, f);
        const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
        const double bc1 = 1 - pow(b1, step + 1), bc2 = 1 - pow(b2, step + 1);
        const float box = hp->ft_norm_constraint;
#pragma omp parallel for schedule(static) if((int64_t)d * f > XLE_PAR_MIN_WORK)
        for (int64_t i = 0; i < (int64_t)d * f; i++) {
            am[i] = b1 * am[i] + (1 - b1) * grad[i];
            av[i] = b2 * av[i] + (1 - b2) * (double)grad[i] * grad[i];
            W[i] -= (float)(hp->ft_lr / bc1 * am[i] / (sqrt(av[i]) / sqrt(bc2) + eps));
            if (box > 0) W[i] = fminf(fmaxf(W[i], w0[i] - box), w0[i] + box);
        }
        /* the last step is reported below, with an early stop's */
        if (step + 1 < hp->ft_steps && hp->progress && hp->progress(hp->progress_user, step + 1, hp->ft_steps)) {
            st = xle_fail(err, XLE_ERR_INTERRUPTED, "ft: interrupted at step %d", step + 1);
            goto done;
        }
    }
    if (hp->progress && hp->progress(hp->progress_user, hp->ft_steps, hp->ft_steps)) {
        st = xle_fail(err, XLE_ERR_INTERRUPTED, "ft: interrupted");
        goto done;
    }
    out->deltas = calloc(1, sizeof *out->deltas);
    if (!out->deltas) {
        st = xle_fail(err, XLE_ERR_NOMEM, "ft: out of memory");
        goto done;
    }
    out->n_deltas = 1;
    out->deltas[0] = zero;
    for (int64_t i = 0; i < (int64_t)d * f; i++) zero.dense[i] = W[i] - w0[i];
    zero.dense = NULL; /* now owned by out */
    out->final_loss = loss;
    out->steps = step;
done:
    xle_weight_swap_restore(&swap);
    free(zero.dense);
    xle_acts_free(acts);
    free(ids), free(start), free(rows), free(logits), free(dlogits), free(dblock), free(w0), free(grad), free(am), free(av);
    return st;
}
