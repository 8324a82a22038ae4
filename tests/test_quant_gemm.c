/*
 * test_quant_gemm.c: the int8 prompt product with block-quantized weights (tensor/quant_gemm.h)
 * for every quantized type, on random blocks (every bit pattern, so the largest values, scales
 * and mins occur) and sizes whose rows and columns end inside the kernel's 4 x 32 tile:
 *   - the vector activation quantization gives the portable one's bytes;
 *   - the product equals the same quantized arithmetic computed in double from the portable
 *     pieces (dequantized weights, quantized activations) to float rounding;
 *   - against the exact product (f32 activations) it errs by at most the activation rounding:
 *     |C − Σ w·x| ≤ ½ Σ_k |w_k| · d_a(k) (plus float rounding), the bound docs/performance.md
 *     states;
 *   - K not a multiple of 256 is declined with C untouched.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/quant.h"
#include "tensor/kernels.h"
#include "tensor/ops.h"
#include "tensor/quant_gemm.h"
#include "xledit.h"

static const xle_dtype TYPES[] = {XLE_Q4_0, XLE_Q4_1, XLE_Q5_0, XLE_Q5_1, XLE_Q8_0,
                                  XLE_Q2_K, XLE_Q3_K, XLE_Q4_K, XLE_Q5_K, XLE_Q6_K};
#define N_TYPES (int)(sizeof TYPES / sizeof TYPES[0])

/* Offsets of a block's f16 scale fields (d; dmin or m, −1 if none): random bytes elsewhere. */
static void half_fields(xle_dtype dt, int *d, int *dmin) {
    *dmin = -1;
    switch (dt) {
    case XLE_Q4_1: case XLE_Q5_1: case XLE_Q4_K: case XLE_Q5_K: *d = 0, *dmin = 2; break;
    case XLE_Q2_K: *d = 80, *dmin = 82; break;
    case XLE_Q3_K: *d = 108; break;
    case XLE_Q6_K: *d = 208; break;
    default: *d = 0; break;
    }
}

static uint8_t *random_blocks(xle_rng *rng, xle_dtype dt, int64_t rows, int64_t K) {
    const size_t bytes = xle_dtype_row_bytes(dt, K) * (size_t)rows, bb = xle_dtype_block_bytes(dt);
    uint8_t *blocks = malloc(bytes);
    for (size_t b = 0; b < bytes; b++) blocks[b] = (uint8_t)xle_rng_next(rng);
    int fd, fdmin;
    half_fields(dt, &fd, &fdmin);
    for (size_t b = 0; b < bytes; b += bb) {
        const uint16_t d = xle_f32_to_f16((float)(xle_rng_uniform(rng) - 0.5) * 0.02f);
        const uint16_t m = xle_f32_to_f16((float)(xle_rng_uniform(rng) - 0.5) * 0.02f);
        memcpy(blocks + b + fd, &d, 2);
        if (fdmin >= 0) memcpy(blocks + b + fdmin, &m, 2);
    }
    return blocks;
}

/* Activations with outliers (quantized values reach ±127 and small ones round to 0) and one
 * all-zero chunk (d_a = 0). */
static float *random_acts(xle_rng *rng, int64_t M, int64_t K) {
    float *x = malloc(sizeof(float) * (size_t)(M * K));
    for (int64_t i = 0; i < M * K; i++) x[i] = xle_rng_normal(rng) * (i % 97 == 0 ? 8.0f : 1.0f);
    if (M > 1) memset(x + K, 0, sizeof(float) * XLE_QACT_CHUNK);
    return x;
}

static void test_act_quantization(void) {
    const xle_kernels *kern = xle_kernels_select();
    if (!kern->quant_act_row) {
        printf("  (no int8 prompt kernel in variant %s: nothing to compare)\n", kern->name);
        return;
    }
    enum { M = 3, K = 768 };
    xle_rng rng;
    xle_rng_seed(&rng, 5);
    float *x = random_acts(&rng, M, K);
    for (int G = 16; G <= 32; G += 16) {
        uint8_t q1[M * K], q2[M * K];
        float d1[M * K / XLE_QACT_CHUNK], d2[M * K / XLE_QACT_CHUNK], s1[M * K / 16], s2[M * K / 16];
        const xle_qact a1 = {K, G, q1, d1, s1}, a2 = {K, G, q2, d2, s2};
        for (int m = 0; m < M; m++) {
            xle_qact_quantize_row(&a1, m, x + m * K, 1);
            kern->quant_act_row(&a2, m, x + m * K, 1);
        }
        CHECK_MSG(memcmp(q1, q2, sizeof q1) == 0, "group %d: vector int8 activations differ", G);
        CHECK(memcmp(d1, d2, sizeof d1) == 0);
        for (int i = 0; i < M * K / G; i++) CHECK_MSG(s1[i] == s2[i], "group %d sum %d: %g vs %g", G, i, s1[i], s2[i]);
    }
    free(x);
}

static void test_product(void) {
    const xle_kernels *kern = xle_kernels_select();
    if (!kern->quant_gemm) { /* the product declines and leaves C as it was */
        printf("  (no int8 prompt kernel in variant %s: the product declines)\n", kern->name);
        float x[2 * 256] = {0}, c[2 * 2] = {5, 5, 5, 5};
        uint8_t blocks[2 * 272] = {0};
        CHECK(xle_quant_gemm_parallel(2, 2, 256, x, 256, XLE_Q8_0, blocks, c, 2) == 0);
        for (int e = 0; e < 4; e++) CHECK(c[e] == 5.0f);
        return;
    }
#ifdef XLE_SANITIZED
    enum { M = 7, N = 37, K = 512 };
#else
    enum { M = 13, N = 77, K = 768 };
#endif
    xle_rng rng;
    xle_rng_seed(&rng, 17);
    float *x = random_acts(&rng, M, K);
    float *C = malloc(sizeof(float) * M * (N + 3)), *w = malloc(sizeof(float) * K);
    for (int i = 0; i < N_TYPES; i++) {
        const xle_dtype dt = TYPES[i];
        const int G = xle_quant_gemm_group(dt);
        CHECK(G == 16 || G == 32);
        uint8_t *blocks = random_blocks(&rng, dt, N, K);
        const size_t row_bytes = xle_dtype_row_bytes(dt, K);
        /* C with a row stride beyond N: the columns past N must stay untouched */
        for (int e = 0; e < M * (N + 3); e++) C[e] = -1e30f;
        CHECK(xle_quant_gemm_parallel(M, N, K, x, K, dt, blocks, C, N + 3) == 1);
        uint8_t *aq = malloc(M * K);
        float *ad = malloc(sizeof(float) * M * K / XLE_QACT_CHUNK), *gs = malloc(sizeof(float) * M * K / 16);
        const xle_qact act = {K, G, aq, ad, gs};
        for (int m = 0; m < M; m++) xle_qact_quantize_row(&act, m, x + m * K, 1);
        double worst_q = 0, worst_exact = 0;
        for (int n = 0; n < N; n++) {
            xle_quant_dequantize(dt, blocks + n * row_bytes, K / xle_dtype_block_elems(dt), w);
            for (int m = 0; m < M; m++) {
                double quant = 0, exact = 0, mag = 0, bound = 0;
                for (int k = 0; k < K; k++) {
                    const double da = ad[m * (K / XLE_QACT_CHUNK) + k / XLE_QACT_CHUNK];
                    quant += (double)w[k] * da * ((int)aq[m * K + k] - 128);
                    exact += (double)w[k] * x[m * K + k];
                    mag += fabs((double)w[k] * x[m * K + k]) + fabs((double)w[k]) * da;
                    bound += 0.5 * fabs((double)w[k]) * da;
                }
                const double c = C[m * (N + 3) + n], tol = 1e-5 * mag + 1e-30;
                CHECK_MSG(fabs(c - quant) <= tol, "%s C[%d][%d] = %.7g, quantized arithmetic %.7g",
                          xle_dtype_name(dt), m, n, c, quant);
                CHECK_MSG(fabs(c - exact) <= bound * (1 + 1e-4) + tol, "%s C[%d][%d] = %.7g, exact %.7g, bound %.3g",
                          xle_dtype_name(dt), m, n, c, exact, bound);
                if (fabs(c - quant) / (mag + 1e-30) > worst_q) worst_q = fabs(c - quant) / (mag + 1e-30);
                if (bound > 0 && fabs(c - exact) / bound > worst_exact) worst_exact = fabs(c - exact) / bound;
            }
        }
        for (int m = 0; m < M; m++)
            for (int n = N; n < N + 3; n++) CHECK_MSG(C[m * (N + 3) + n] == -1e30f, "%s: C[%d][%d] written", xle_dtype_name(dt), m, n);
        printf("  %-5s group %d: vs quantized arithmetic %.2g of Σ|terms|, vs exact %.2f of the bound\n",
               xle_dtype_name(dt), G, worst_q, worst_exact);
        free(aq), free(ad), free(gs), free(blocks);
    }
    /* declined: K not a multiple of 256, or a type it does not take */
    uint8_t *blocks = random_blocks(&rng, XLE_Q8_0, 4, 288);
    float c1[4 * 4];
    for (int e = 0; e < 16; e++) c1[e] = 7.0f;
    CHECK(xle_quant_gemm_parallel(4, 4, 288, x, 288, XLE_Q8_0, blocks, c1, 4) == 0);
    CHECK(xle_quant_gemm_parallel(4, 4, 256, x, 256, XLE_BF16, blocks, c1, 4) == 0);
    for (int e = 0; e < 16; e++) CHECK(c1[e] == 7.0f);
    free(blocks), free(x), free(C), free(w);
}

int main(void) {
    RUN(test_act_quantization);
    RUN(test_product);
    return check_summary();
}
