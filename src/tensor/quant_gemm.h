/*
 * quant_gemm.h: the prompt's product with a block-quantized weight done in int8, as llama.cpp
 * does it, instead of dequantizing weight panels to f32 (the exact path of gemm.c).
 *
 * The activations are quantized per row and per 256 inputs (llama.cpp's q8_K: d_a = max|x|/127,
 * q_a = round(x/d_a)); the weight's blocks are unpacked panel by panel into int8 values with a
 * float scale and offset per group of 32 (or 16) inputs (every type reads
 * d·sc_g·q − dmin·mn_g, core/quant.h), and a register tile multiplies them with vpdpbusd
 * (AVX-512 VNNI): four byte products summed per 32-bit lane, 64 per instruction where the f32
 * product does 16 per FMA. Weight panels are packed once per product and reused for all rows.
 */
#ifndef XLE_QUANT_GEMM_H
#define XLE_QUANT_GEMM_H

#include <stdint.h>

#include "xledit.h"

/* Inputs per activation scale; K must be a multiple of it. */
#define XLE_QACT_CHUNK 256
/* Weight rows per packed panel (the kernel's tile width). */
#define XLE_QPANEL_COLS 32

/* M rows of activations quantized for the int8 product with a weight of group size `group`. */
typedef struct xle_qact {
    int64_t K;
    int group;       /* 32 or 16: the weight type's scale group */
    uint8_t *q;      /* [M][K]: q_a + 128 (1..255), unsigned for vpdpbusd */
    float *d;        /* [M][K / 256]: d_a */
    float *gsum;     /* [M][K / group]: d_a · Σ q_a over the group (weights with mins) */
} xle_qact;

/* XLE_QPANEL_COLS weight rows × K inputs packed for the kernel. Element k of weight row j is
 * s[k/group][j] · q + o[k/group][j], with q at q[(k/4)·128 + 4j + k%4] (int8). corr[c][j] =
 * −128 · Σ_{groups g of chunk c} s[g][j] · Σ_{k∈g} q: the +128 of the activation bytes taken
 * back once per chunk. Rows beyond the weight's are zero. */
typedef struct xle_qpanel {
    int64_t K;
    int group, has_min;
    int8_t *q;
    float *s, *o, *corr;
} xle_qpanel;

/* The group size (32 or 16) of a quantized type's scales, or 0 if the int8 product does not
 * take that type. */
int xle_quant_gemm_group(xle_dtype dt);

/* Quantizes row x (K inputs) into row m of act (the portable form; the kernels have vector ones). */
void xle_qact_quantize_row(const xle_qact *act, int64_t m, const float *x, int has_min);

/* Packs weight rows [n0, n0 + nr) (nr ≤ XLE_QPANEL_COLS) of w (dtype dt, [N x K] stored row-major,
 * row_bytes apart) into p, whose arrays hold the sizes xle_qpanel_floats/bytes give. */
void xle_qpanel_pack(xle_qpanel *p, xle_dtype dt, const void *w, size_t row_bytes, int64_t n0, int nr);

/* C[M x N] (row stride ldc) = x[M x K] (row stride lda) · Wᵀ for a block-quantized weight W
 * ([N x K], dtype dt) in int8 as above, over OpenMP threads. Returns 1 when done, 0 when the
 * product does not apply (no VNNI kernel on this CPU, a type it does not take, K not a multiple
 * of 256, out of memory) and C is untouched: the caller computes the exact product. */
int xle_quant_gemm_parallel(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                            xle_dtype dt, const void *W, float *C, int64_t ldc);

#endif
