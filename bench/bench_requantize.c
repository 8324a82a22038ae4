/*
 * bench_requantize.c: what storing an edited matrix of a quantized model costs the edit, per
 * quantized type and storage choice (F16, BF16, re-quantized to the source type).
 *
 *   build/bench_requantize ORIGINAL EDITED LAYER PROMPT TARGET
 *
 * ORIGINAL and EDITED are the same model before and after an edit (`xledit edit ... --out`) of
 * the down projection of LAYER. For each type T the edited model is taken to have been
 * quantized: W_T = dequant(quant_T(W)) is the matrix the edit started from, E = W_T + Δ (Δ the
 * edit's change) the matrix the edit produced in memory, and S(E) what the file holds after
 * the save: E rounded to F16 or BF16, or quantized to T again. Printed per row: ‖Δ‖/‖W‖; the
 * storage error ‖S(E) − E‖/‖Δ‖; how much of the edit the stored matrix keeps,
 * ⟨S(E) − W_T, Δ⟩/‖Δ‖²; and the target's log-probability given the prompt with W_T (before),
 * E (the edit as computed) and each S(E). Rows whose length is not a multiple of T's block
 * are quantized on their longest whole-block prefix (the rest stays exact), as noted.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/quant.h"
#include "xledit.h"

static const xle_dtype TYPES[] = {XLE_Q8_0, XLE_Q6_K, XLE_Q5_K, XLE_Q5_1, XLE_Q5_0, XLE_Q4_K,
                                  XLE_Q4_1, XLE_Q4_0, XLE_Q3_K, XLE_Q2_K};

/* dst = src with each row's whole-block prefix stored as T (quantized and dequantized), or
 * rounded to F16/BF16 (T = XLE_F16 / XLE_BF16) over the whole row. */
static void store_as(xle_dtype t, const float *src, int64_t rows, int64_t cols, float *dst) {
    memcpy(dst, src, (size_t)(rows * cols) * sizeof(float));
    if (t == XLE_F16 || t == XLE_BF16) {
        for (int64_t i = 0; i < rows * cols; i++)
            dst[i] = t == XLE_F16 ? xle_f16_to_f32(xle_f32_to_f16(src[i])) : xle_bf16_to_f32(xle_f32_to_bf16(src[i]));
        return;
    }
    const int64_t B = xle_dtype_block_elems(t), prefix = cols / B * B;
    uint8_t *blocks = malloc(xle_dtype_row_bytes(t, prefix) + 1);
    for (int64_t r = 0; r < rows; r++) {
        xle_quant_quantize(t, src + r * cols, prefix, blocks);
        xle_quant_dequantize(t, blocks, prefix / B, dst + r * cols);
    }
    free(blocks);
}

static double logprob(xle_model *m, xle_tensor *w, const float *values, const int32_t *p, int np,
                      const int32_t *t, int nt) {
    memcpy(w->data, values, (size_t)xle_tensor_numel(w) * sizeof(float));
    double lp = NAN;
    xle_error err = {0};
    if (xle_score(m, p, np, t, nt, &lp, NULL, &err) != XLE_OK) fprintf(stderr, "%s\n", err.msg);
    return lp;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s ORIGINAL EDITED LAYER PROMPT TARGET\n", argv[0]);
        return 2;
    }
    xle_model *orig = NULL, *edited = NULL;
    xle_error err = {0};
    if (xle_model_load(argv[1], &orig, &err) != XLE_OK || xle_model_load(argv[2], &edited, &err) != XLE_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    const int layer = atoi(argv[3]);
    xle_tensor *w = &xle_model_weights(orig)->layers[layer].w_down;
    const xle_tensor *we = &xle_model_weights(edited)->layers[layer].w_down;
    const int64_t rows = w->shape[0], cols = w->shape[1], n = rows * cols;
    float *w0 = malloc((size_t)n * sizeof(float)), *w1 = malloc((size_t)n * sizeof(float));
    float *wt = malloc((size_t)n * sizeof(float)), *e = malloc((size_t)n * sizeof(float));
    float *s = malloc((size_t)n * sizeof(float));
    xle_tensor_row_to_f32(w, 0, n, w0);
    xle_tensor_row_to_f32(we, 0, n, w1);
    if (xle_model_make_writable_f32(orig, w, &err) != XLE_OK) return 1;
    int32_t *p_ids, *t_ids;
    int np, nt;
    if (xle_tokenize_continuation(xle_model_tokenizer(orig), argv[4], argv[5], &p_ids, &np, &t_ids, &nt,
                                  &err) != XLE_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    double dd = 0, ww = 0;
    for (int64_t i = 0; i < n; i++) dd += (double)(w1[i] - w0[i]) * (w1[i] - w0[i]), ww += (double)w0[i] * w0[i];
    printf("model %s, layer %d down projection [%lld x %lld], |delta|/|W| = %.4f\n", argv[1], layer,
           (long long)rows, (long long)cols, sqrt(dd / ww));
    printf("target log-prob: unedited %.4f, edited %.4f\n\n", logprob(orig, w, w0, p_ids, np, t_ids, nt),
           logprob(orig, w, w1, p_ids, np, t_ids, nt));
    printf("| source type | quantized columns | stored as | storage error / |delta| | edit kept | "
           "log p(target): source | edited | stored |\n|---|---:|---|---:|---:|---:|---:|---:|\n");
    for (size_t k = 0; k < sizeof TYPES / sizeof TYPES[0]; k++) {
        const xle_dtype t = TYPES[k];
        store_as(t, w0, rows, cols, wt);
        for (int64_t i = 0; i < n; i++) e[i] = wt[i] + (w1[i] - w0[i]);
        const double lp_src = logprob(orig, w, wt, p_ids, np, t_ids, nt);
        const double lp_edit = logprob(orig, w, e, p_ids, np, t_ids, nt);
        const xle_dtype stores[3] = {XLE_F16, XLE_BF16, t};
        for (int j = 0; j < 3; j++) {
            store_as(stores[j], e, rows, cols, s);
            double err2 = 0, kept = 0, d2 = 0;
            for (int64_t i = 0; i < n; i++) {
                const double d = (double)w1[i] - w0[i];
                err2 += ((double)s[i] - e[i]) * ((double)s[i] - e[i]);
                kept += ((double)s[i] - wt[i]) * d;
                d2 += d * d;
            }
            printf("| %s | %lld of %lld | %s | %.3f | %.3f | %.4f | %.4f | %.4f |\n", xle_dtype_name(t),
                   (long long)(cols / xle_dtype_block_elems(t) * xle_dtype_block_elems(t)), (long long)cols,
                   j == 2 ? "re-quantized" : xle_dtype_name(stores[j]), sqrt(err2 / d2), kept / d2, lp_src,
                   lp_edit, logprob(orig, w, s, p_ids, np, t_ids, nt));
        }
    }
    free(p_ids), free(t_ids), free(w0), free(w1), free(wt), free(e), free(s);
    xle_model_free(orig);
    xle_model_free(edited);
    return 0;
}
