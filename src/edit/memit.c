/*
 * memit.c: MEMIT (Meng et al. 2023) for a batch of requests, editing.md §3: the shared
 * multi-layer write (spread.c) with the covariance-weighted least-squares update solved in
 * float64:   A = (λ C + K Kᵀ)⁻¹ K,   Δ_l = (R / (L − i)) Aᵀ.
 */
#include <stdlib.h>
#include <string.h>

#include "edit/edit_internal.h"
#include "edit/spread.h"
#include "tensor/ops.h"

typedef struct memit_ctx {
    const xle_edit_hparams *hp;
    xle_layer_stats *const *stats;
    int f;
    double *A;    /* λC + KKᵀ, lower triangle in rectangular full packed form (f (f + 1) / 2) */
} memit_ctx;

/* A = (λ C + K Kᵀ)⁻¹ K in float64; the symmetric system is kept as its lower triangle in
 * packed form (half the memory of the full f x f matrix: MEMIT's peak). */
static xle_status memit_solve(void *user, int li, const double *K, int n, double *KK, xle_error *err) {
    memit_ctx *mc = user;
    const int f = mc->f;
    const xle_layer_stats *s = mc->stats[li];
    const double lambda = mc->hp->mom2_update_weight;
    double *A = mc->A;
#pragma omp parallel for schedule(dynamic, 64) if((int64_t)f * f * n > XLE_PAR_MIN_WORK)
    for (int i = 0; i < f; i++)
        for (int j = 0; j <= i; j++) {
            double kk = 0;
            for (int r = 0; r < n; r++) kk += K[(int64_t)i * n + r] * K[(int64_t)j * n + r];
            A[xle_rfp_index(f, i, j)] = lambda * s->sum[(int64_t)i * f + j] / (double)s->count + kk;
        }
    memcpy(KK, K, (size_t)f * n * sizeof(double));
    return xle_solve_spd_rfp(A, KK, f, n, "memit: λC + KKᵀ", err);
}

xle_status xle_memit_run(xle_model *m, const xle_edit_hparams *hp, const xle_edit_request_tok *reqs,
                         int n_reqs, xle_layer_stats *const *stats, xle_edit_result *out,
                         xle_error *err) {
    const int f = xle_model_config(m)->ffn_dim;
    memit_ctx mc = {hp, stats, f, malloc((size_t)f * (f + 1) / 2 * sizeof(double))};
    if (!mc.A) return xle_fail(err, XLE_ERR_NOMEM, "memit: out of memory (%d x %d covariance)", f, f);
    xle_status st = XLE_OK;
    for (int li = 0; li < hp->n_layers && st == XLE_OK; li++) {
        const xle_layer_stats *s = stats ? stats[li] : NULL;
        if (!s || s->dim != f || s->count <= 0)
            st = xle_fail(err, XLE_ERR_ARG, "memit: layer %d: needs key statistics (xledit stats)", hp->layers[li]);
    }
    if (st == XLE_OK) st = xle_edit_spread(m, hp, reqs, n_reqs, memit_solve, &mc, out, err);
    free(mc.A);
    return st;
}
