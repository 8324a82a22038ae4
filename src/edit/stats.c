/*
 * stats.c: the key statistics ROME (mom2_adjustment) and MEMIT need: the uncentred second
 * moment E[k kᵀ] of the down-projection input at chosen layers over a text corpus,
 * accumulated in float64 with BLAS dsyrk (editing.md §1.4). Every non-padding position counts,
 * the BOS position included. The file cache and resumption live in stats_file.c.
 */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "xledit.h"

typedef struct stats_ctx {
    const int *layers;
    int n_layers, max_layer;
    xle_layer_stats *stats;
    double *kd;      /* keys of the batch as float64 */
} stats_ctx;

static int accumulate_hook(void *user, xle_point point, int layer, float *act, int n_tokens, int width) {
    (void)point;
    stats_ctx *c = user;
    for (int i = 0; i < c->n_layers; i++) {
        if (c->layers[i] != layer) continue;
        xle_layer_stats *s = &c->stats[i];
        for (int64_t j = 0; j < (int64_t)n_tokens * width; j++) c->kd[j] = act[j];
        /* upper triangle of Σ k kᵀ += Kᵀ K */
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, width, n_tokens, 1.0, c->kd, width, 1.0,
                    s->sum, width);
        s->count += n_tokens;
    }
    return layer == c->max_layer;
}

xle_status xle_stats_accumulate(xle_model *m, const int *layers, int n_layers,
                                const int32_t *const *seqs, const int *lens, int n_seqs,
                                xle_layer_stats *stats, xle_error *err) {
    const xle_config *c = xle_model_config(m);
    const int f = c->ffn_dim;
    int max_layer = -1;
    for (int i = 0; i < n_layers; i++) {
        if (layers[i] < 0 || layers[i] >= c->n_layers)
            return xle_fail(err, XLE_ERR_ARG, "stats: layer %d outside the model's %d layers", layers[i], c->n_layers);
        if (stats[i].dim != f || !stats[i].sum)
            return xle_fail(err, XLE_ERR_ARG, "stats: layer %d: accumulator is not %dx%d", layers[i], f, f);
        if (layers[i] > max_layer) max_layer = layers[i];
    }
    enum { BATCH_TOKENS = 2048 };
    int max_len = 0;
    for (int s = 0; s < n_seqs; s++) max_len = lens[s] > max_len ? lens[s] : max_len;
    const int cap = max_len > BATCH_TOKENS ? max_len : BATCH_TOKENS;
    int32_t *ids = malloc((size_t)cap * sizeof(int32_t));
    int *start = malloc((size_t)(n_seqs + 1) * sizeof(int));
    double *kd = malloc((size_t)cap * f * sizeof(double));
    if (!ids || !start || !kd) {
        free(ids), free(start), free(kd);
        return xle_fail(err, XLE_ERR_NOMEM, "stats: out of memory");
    }
    stats_ctx ctx = {layers, n_layers, max_layer, stats, kd};
    xle_hook hooks[XLE_EDIT_MAX_LAYERS];
    int n_hooks = 0;
    for (int i = 0; i < n_layers && n_hooks < XLE_EDIT_MAX_LAYERS; i++) {
        int dup = 0;
        for (int j = 0; j < i; j++) dup |= layers[j] == layers[i];
        if (!dup) hooks[n_hooks++] = (xle_hook){XLE_POINT_MLP_KEY, layers[i], accumulate_hook, &ctx};
    }
    xle_status st = XLE_OK;
    for (int s = 0; s < n_seqs && st == XLE_OK;) {
        int n = 0, at = 0;
        while (s < n_seqs && (n == 0 || at + lens[s] <= cap)) {
            if (lens[s] > 0) {
                start[n++] = at;
                memcpy(ids + at, seqs[s], (size_t)lens[s] * sizeof(int32_t));
                at += lens[s];
            }
            s++;
        }
        if (n == 0) break;
        start[n] = at;
        xle_batch b = {n, ids, start};
        xle_forward_opts o = {.hooks = hooks, .n_hooks = n_hooks};
        st = xle_forward(m, &b, &o, NULL, err);
    }
    /* Mirror the upper triangle so the sums are full symmetric matrices. */
    for (int i = 0; i < n_layers; i++)
        for (int r = 0; r < f; r++)
            for (int col = 0; col < r; col++) stats[i].sum[(int64_t)r * f + col] = stats[i].sum[(int64_t)col * f + r];
    free(ids), free(start), free(kd);
    return st;
}
