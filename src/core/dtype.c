/*
 * dtype.c: element types of stored tensors and their conversion to the f32 the engine computes
 * in. f16/bf16 conversions round to nearest even, as PyTorch does. The block-quantized types'
 * layouts are in core/quant.c.
 */
#include <math.h>
#include <string.h>

#include "core/quant.h"
#include "xledit.h"
#include "tensor/kernels.h"

/* Elements and bytes per block of the quantized types (ggml's block_* structs). */
static const struct {
    const char *name;
    int elems;
    int bytes;
} QTYPES[XLE_DTYPE_COUNT] = {
    [XLE_Q4_0] = {"Q4_0", 32, 18},  [XLE_Q4_1] = {"Q4_1", 32, 20},  [XLE_Q5_0] = {"Q5_0", 32, 22},
    [XLE_Q5_1] = {"Q5_1", 32, 24},  [XLE_Q8_0] = {"Q8_0", 32, 34},  [XLE_Q2_K] = {"Q2_K", 256, 84},
    [XLE_Q3_K] = {"Q3_K", 256, 110}, [XLE_Q4_K] = {"Q4_K", 256, 144}, [XLE_Q5_K] = {"Q5_K", 256, 176},
    [XLE_Q6_K] = {"Q6_K", 256, 210},
};

int xle_dtype_is_quantized(xle_dtype dtype) {
    return (unsigned)dtype < XLE_DTYPE_COUNT && QTYPES[dtype].elems > 0;
}

int64_t xle_dtype_block_elems(xle_dtype dtype) {
    return xle_dtype_is_quantized(dtype) ? QTYPES[dtype].elems : 1;
}

size_t xle_dtype_block_bytes(xle_dtype dtype) {
    return xle_dtype_is_quantized(dtype) ? (size_t)QTYPES[dtype].bytes : xle_dtype_size(dtype);
}

size_t xle_dtype_row_bytes(xle_dtype dtype, int64_t n) {
    return (size_t)(n / xle_dtype_block_elems(dtype)) * xle_dtype_block_bytes(dtype);
}

size_t xle_dtype_size(xle_dtype dtype) {
    switch (dtype) {
    case XLE_F32: return 4;
    case XLE_F16: return 2;
    case XLE_BF16: return 2;
    case XLE_F64: return 8;
    default: return 0;
    }
}

const char *xle_dtype_name(xle_dtype dtype) {
    switch (dtype) {
    case XLE_F32: return "F32";
    case XLE_F16: return "F16";
    case XLE_BF16: return "BF16";
    case XLE_F64: return "F64";
    default: return xle_dtype_is_quantized(dtype) ? QTYPES[dtype].name : "?";
    }
}

int64_t xle_tensor_numel(const xle_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

size_t xle_tensor_nbytes(const xle_tensor *t) {
    return xle_dtype_row_bytes(t->dtype, xle_tensor_numel(t));
}

float xle_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else { /* subnormal: renormalize */
            int e = -1;
            do {
                e++;
                mant <<= 1;
            } while (!(mant & 0x400));
            mant &= 0x3ff;
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | (mant << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t xle_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) /* Inf or NaN */
        return (uint16_t)(sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 : 0));
    if (absx >= 0x477ff000u) /* rounds to >= 65520: overflow to Inf */
        return (uint16_t)(sign | 0x7c00);
    if (absx < 0x38800000u) { /* below the smallest normal f16: subnormal or zero */
        float a;
        memcpy(&a, &absx, 4);
        /* Scale so that the f16 subnormal unit (2^-24) becomes 1, round to nearest even. */
        float scaled = a * 16777216.0f;
        uint32_t m = (uint32_t)nearbyintf(scaled);
        return (uint16_t)(sign | m);
    }
    uint32_t exp = ((absx >> 23) - 127 + 15);
    uint32_t mant = absx & 0x7fffff;
    uint32_t half = (exp << 10) | (mant >> 13);
    uint32_t rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (half & 1))) half++;
    return (uint16_t)(sign | half);
}

float xle_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t xle_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
    uint32_t rounding = 0x7fff + ((x >> 16) & 1);
    return (uint16_t)((x + rounding) >> 16);
}

float xle_tensor_get_f32(const xle_tensor *t, int64_t i) {
    switch (t->dtype) {
    case XLE_F32: return ((const float *)t->data)[i];
    case XLE_F16: return xle_f16_to_f32(((const uint16_t *)t->data)[i]);
    case XLE_BF16: return xle_bf16_to_f32(((const uint16_t *)t->data)[i]);
    case XLE_F64: return (float)((const double *)t->data)[i];
    default: {
        if (!xle_dtype_is_quantized(t->dtype)) return NAN;
        float v;
        xle_tensor_row_to_f32(t, i, 1, &v);
        return v;
    }
    }
}

/* Elements [first, first + n) of a block-quantized tensor: whole blocks go straight to dst,
 * a partial block at either end through a one-block buffer. */
static void quant_range_to_f32(const xle_tensor *t, int64_t first, int64_t n, float *dst) {
    const int64_t B = xle_dtype_block_elems(t->dtype);
    const size_t bb = xle_dtype_block_bytes(t->dtype);
    const uint8_t *base = t->data;
    float tmp[XLE_QK_MAX];
    while (n > 0) {
        const int64_t blk = first / B, at = first % B;
        if (at == 0 && n >= B) {
            const int64_t whole = n / B;
            xle_quant_dequantize(t->dtype, base + blk * (int64_t)bb, whole, dst);
            first += whole * B, dst += whole * B, n -= whole * B;
            continue;
        }
        xle_quant_dequantize(t->dtype, base + blk * (int64_t)bb, 1, tmp);
        const int64_t take = B - at < n ? B - at : n;
        memcpy(dst, tmp + at, (size_t)take * sizeof(float));
        first += take, dst += take, n -= take;
    }
}

void xle_tensor_row_to_f32(const xle_tensor *t, int64_t first, int64_t n, float *dst) {
    switch (t->dtype) {
    case XLE_F32:
    case XLE_F16:
    case XLE_BF16:
        xle_kernels_select()->to_f32(dst, (const char *)t->data + first * (int64_t)xle_dtype_size(t->dtype),
                                     t->dtype, n);
        break;
    case XLE_F64: {
        const double *src = (const double *)t->data + first;
        for (int64_t i = 0; i < n; i++) dst[i] = (float)src[i];
        break;
    }
    default:
        if (xle_dtype_is_quantized(t->dtype)) {
            quant_range_to_f32(t, first, n, dst);
            break;
        }
        for (int64_t i = 0; i < n; i++) dst[i] = NAN;
    }
}
