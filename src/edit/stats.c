/*
 * stats.c: the key statistics ROME (mom2_adjustment) and MEMIT need: the uncentred second
 * moment E[k kᵀ] of the down-projection input at chosen layers over a text corpus (editing.md
 * §1.4). Every non-padding position counts, the BOS position included. One forward pass serves
 * all requested layers and stops after the highest one. Each batch's Kᵀ K is a symmetric
 * rank-k update of the lower triangle only (half the multiply-adds of the full product),
 * computed in float32 by BLAS and added to float64 sums: the products of one batch (at most
 * BATCH_TOKENS keys) are summed in float32, the batches in float64 (EasyEdit sums everything in
 * float32, its mom2_dtype; docs/editing.md gives the error).
 *   exact precision (the default): the forward pass's products in float32;
 *   XLE_PRECISION_BF16 (the model's setting): the products with bf16 weights in bf16
 *     arithmetic (tensor/matmul.c), except each requested layer's gate and up products, which
 *     make the keys and stay exact (docs/editing.md gives what this changes in the sums and in
 *     the edits).
 * The file cache and resumption live in stats_cache.c.
 */
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/hugepages.h"
#include "tensor/gemm.h"
#include "xledit.h"

enum {
    BATCH_TOKENS = 2048,  /* keys per forward pass (whole sequences; longer ones alone) */
    ROW_BLOCK = 512,      /* rows of Σ k kᵀ computed per product (a 512 x f float32 block) */
    TILE = 64             /* mirror tiles */
};

typedef struct stats_ctx {
    xle_model *model;
    const int *layers;
    int n_layers, max_layer;
    xle_layer_stats *stats;
    float *block;        /* ROW_BLOCK x width: one block row of the batch's Kᵀ K, float32 */
    float *keys_t;       /* the batch's keys transposed, width x n_tokens */
    float *scratch;      /* packing buffers of the product */
    size_t scratch_floats;
    xle_precision below; /* of the products below each requested layer's MLP key (bf16 mode) */
} stats_ctx;

/* dst[c][r] = src[r][c] for src n x w (row-major), in tiles. */
static void transpose(float *dst, const float *src, int n, int w) {
#pragma omp parallel for schedule(static)
    for (int c0 = 0; c0 < w; c0 += TILE)
        for (int r0 = 0; r0 < n; r0 += TILE) {
            const int c1 = c0 + TILE < w ? c0 + TILE : w, r1 = r0 + TILE < n ? r0 + TILE : n;
            for (int col = c0; col < c1; col++)
                for (int r = r0; r < r1; r++) dst[(int64_t)col * n + r] = src[(int64_t)r * w + col];
        }
}

/* Lower triangle of sum (w x w, float64) += Kᵀ K for the keys K (n x w, float32): block row by
 * block row, rows r0..r1 of the batch's Kᵀ K and columns 0..r1 (the lower triangle and the
 * diagonal block: ≈ half the multiply-adds of the full product) with the engine's float32
 * product, each block added to the float64 sums. So the products of one batch (at most
 * BATCH_TOKENS keys, or one longer sequence) are summed in float32 and the batches in float64
 * (docs/editing.md gives the error). The engine's product rather than BLAS ssyrk: it uses
 * AVX-512 where OpenBLAS 0.3.21 picks its AVX2 kernels on this machine's CPU (≈ 1.6x the time
 * measured), and it runs on the OpenMP threads of the forward pass instead of waking
 * OpenBLAS's own. */
static void accumulate_lower(stats_ctx *c, double *sum, const float *keys, int n, int w) {
    transpose(c->keys_t, keys, n, w);
    const xle_gemm_rhs rhs = {keys, XLE_F32, w, 0}; /* K as the right operand, [n x w] */
    for (int r0 = 0; r0 < w; r0 += ROW_BLOCK) {
        const int r1 = r0 + ROW_BLOCK < w ? r0 + ROW_BLOCK : w;
        xle_gemm_parallel(r1 - r0, r1, n, c->keys_t + (int64_t)r0 * n, n, &rhs, c->block, r1, 0,
                          c->scratch, c->scratch_floats);
#pragma omp parallel for schedule(static)
        for (int r = r0; r < r1; r++) {
            double *dst = sum + (int64_t)r * w;
            const float *src = c->block + (int64_t)(r - r0) * r1;
            for (int col = 0; col <= r; col++) dst[col] += src[col];
        }
    }
}

/* The upper triangle of a w x w matrix copied from its lower triangle, in tiles. */
static void mirror_lower(double *sum, int w) {
#pragma omp parallel for schedule(dynamic, 1)
    for (int c0 = 0; c0 < w; c0 += TILE)
        for (int r0 = 0; r0 <= c0; r0 += TILE) /* tile of the upper triangle: rows r0.., cols c0.. */
            for (int r = r0; r < r0 + TILE && r < w; r++)
                for (int col = c0 > r + 1 ? c0 : r + 1; col < c0 + TILE && col < w; col++)
                    sum[(int64_t)r * w + col] = sum[(int64_t)col * w + r];
}

/* bf16 mode: each requested layer's gate and up products run exact, so the keys are not made
 * from bf16-rounded inputs; every other product runs in the model's bf16 arithmetic. The hook
 * after a requested layer's attention output switches the model to exact, its key hook back. */
static int exact_key_hook(void *user, xle_point point, int layer, float *act, int n_tokens, int width) {
    (void)point, (void)layer, (void)act, (void)n_tokens, (void)width;
    stats_ctx *c = user;
    xle_model_set_precision(c->model, XLE_PRECISION_EXACT);
    return 0;
}

static int accumulate_hook(void *user, xle_point point, int layer, float *act, int n_tokens, int width) {
    (void)point;
    stats_ctx *c = user;
    for (int i = 0; i < c->n_layers; i++) {
        if (c->layers[i] != layer) continue;
        accumulate_lower(c, c->stats[i].sum, act, n_tokens, width);
        c->stats[i].count += n_tokens;
    }
    xle_model_set_precision(c->model, c->below);
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
    int max_len = 0;
    for (int s = 0; s < n_seqs; s++) max_len = lens[s] > max_len ? lens[s] : max_len;
    const int cap = max_len > BATCH_TOKENS ? max_len : BATCH_TOKENS;
    const xle_precision keep = xle_model_precision(m);
    int32_t *ids = malloc((size_t)cap * sizeof(int32_t));
    int *start = malloc((size_t)(n_seqs + 1) * sizeof(int));
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    const size_t scratch_floats = (size_t)XLE_GEMM_PACK_FLOATS * (size_t)threads;
    float *block = malloc((size_t)ROW_BLOCK * f * sizeof(float));
    float *keys_t = malloc((size_t)cap * f * sizeof(float));
    float *scratch = malloc(scratch_floats * sizeof(float));
    if (!ids || !start || !block || !keys_t || !scratch) {
        free(ids), free(start), free(block), free(keys_t), free(scratch);
        return xle_fail(err, XLE_ERR_NOMEM, "stats: out of memory");
    }
    xle_advise_huge_pages(keys_t, (size_t)cap * f * sizeof(float));
    for (int i = 0; i < n_layers; i++) xle_advise_huge_pages(stats[i].sum, (size_t)f * f * sizeof(double));
    stats_ctx ctx = {m, layers, n_layers, max_layer, stats, block, keys_t, scratch, scratch_floats, keep};
    xle_hook hooks[2 * XLE_EDIT_MAX_LAYERS];
    int n_hooks = 0;
    for (int i = 0; i < n_layers && n_hooks < 2 * XLE_EDIT_MAX_LAYERS; i++) {
        int dup = 0;
        for (int j = 0; j < i; j++) dup |= layers[j] == layers[i];
        if (dup) continue;
        if (keep != XLE_PRECISION_EXACT)
            hooks[n_hooks++] = (xle_hook){XLE_POINT_ATTN_OUT, layers[i], exact_key_hook, &ctx};
        hooks[n_hooks++] = (xle_hook){XLE_POINT_MLP_KEY, layers[i], accumulate_hook, &ctx};
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
        xle_model_set_precision(m, keep);
    }
    /* The sums as full symmetric matrices again. */
    for (int i = 0; i < n_layers; i++) mirror_lower(stats[i].sum, f);
    free(ids), free(start), free(block), free(keys_t), free(scratch);
    return st;
}
