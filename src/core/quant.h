/*
 * quant.h: ggml's block-quantized weight types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 in blocks of 32;
 * Q2_K, Q3_K, Q4_K, Q5_K, Q6_K in super-blocks of 256), implemented from the layouts described
 * in docs/formats.md: dequantization, quantization (for writing an edited matrix back in its
 * type), and the products the engine computes on the blocks as they are stored.
 *
 * Every type reads the same way after unpacking: element e of a block is
 *     d · sc[e/16] · q[e]  −  dmin · mn[e/16]
 * with small integers q (int8), sc and mn (per group of 16 elements). The dot product with an
 * activation vector quantizes the activations per block to int8 (d_a, q_a, and the sums of
 * q_a per 16 elements), so that a block's contribution is
 *     d_a · (d · Σ_g sc_g · Σ_{e∈g} q_e·q_a,e  −  dmin · Σ_g mn_g · Σ_{e∈g} q_a,e)
 * in integer arithmetic, as llama.cpp does with its q8_0 / q8_K activations.
 */
#ifndef XLE_QUANT_H
#define XLE_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "xledit.h"

#define XLE_QK_MAX 256 /* the largest block */

/* A block unpacked: the integer values and per-16 integer scales/mins of the formula above. */
typedef struct xle_qblock {
    int8_t q[XLE_QK_MAX];
    int16_t sc[XLE_QK_MAX / 16];
    int16_t mn[XLE_QK_MAX / 16];
    float d, dmin;
} xle_qblock;

/* Unpacks one stored block of type dt (a quantized dtype). */
void xle_quant_unpack(xle_dtype dt, const uint8_t *block, xle_qblock *out);

/* Dequantizes nblocks consecutive blocks into dst (nblocks · block_elems floats). */
void xle_quant_dequantize(xle_dtype dt, const void *blocks, int64_t nblocks, float *dst);

/* Quantizes n floats (a multiple of the block size) into blocks of type dt: each block's
 * scales from its own range (round to nearest; for the K-quants without llama.cpp's search
 * over scales — docs/formats.md gives the error this costs). */
void xle_quant_quantize(xle_dtype dt, const float *src, int64_t n, void *dst);

/* Activations quantized for products with weights of type dt. Per block of dt's block size B:
 * float d, int16 sums of q per 16 elements, int8 q[B] (4 + B/8 + B bytes). */
size_t xle_quant_act_bytes(xle_dtype dt, int64_t n);
/* Quantizes n activations x (n a multiple of dt's block size) into act (4-byte aligned). */
void xle_quant_act(xle_dtype dt, const float *x, int64_t n, void *act);
/* Σ w·x over one stored weight row of n elements and the quantized activations. */
float xle_quant_dot(xle_dtype dt, const void *w_row, const void *act, int64_t n);

#endif
