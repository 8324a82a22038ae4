/*
 * quant_dot.c: products of block-quantized weight rows with int8-quantized activations (see
 * quant_dot.h). The portable path unpacks each block (core/quant.c) and multiplies in integers.
 */
#include "tensor/quant_dot.h"

#include "core/quant.h"

void xle_quant_dot_rows(const xle_tensor *w, int64_t o0, int64_t o1, const void *act, float *out) {
    const int64_t n_in = w->shape[1];
    const size_t row_bytes = xle_dtype_row_bytes(w->dtype, n_in);
    const char *base = w->data;
    for (int64_t o = o0; o < o1; o++) out[o] = xle_quant_dot(w->dtype, base + o * (int64_t)row_bytes, act, n_in);
}
