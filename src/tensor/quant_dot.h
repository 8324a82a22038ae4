/*
 * quant_dot.h: the engine's products of block-quantized weights (core/quant.h) with activations
 * quantized per block to int8: the portable form for every type, with vector kernels for the
 * types most files use where the build's target has AVX2 / AVX-512 (VNNI).
 */
#ifndef XLE_QUANT_DOT_H
#define XLE_QUANT_DOT_H

#include "xledit.h"

/* out[o] = w[o] · x for rows [o0, o1) of the quantized weight w ([n_out, n_in]); act holds x
 * quantized by xle_quant_act for w's type. */
void xle_quant_dot_rows(const xle_tensor *w, int64_t o0, int64_t o1, const void *act, float *out);

#endif
