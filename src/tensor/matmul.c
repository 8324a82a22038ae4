/*
 * matmul.c: products with stored weights, forward beside backward. Weights stay in their
 * stored dtype (memory-mapped); for many rows (prompt processing) blocks of weight rows are
 * converted to f32 into a scratch buffer and multiplied with OpenBLAS sgemm; for few rows
 * (generation) a threaded dot product converts on the fly, which is memory-bound as it should be.
 */
#include <cblas.h>
#include <string.h>

#include "tensor/gemm.h"
#include "tensor/ops.h"

/* Below this many activation rows the on-the-fly dot product beats conversion + sgemm. */
enum { SMALL_T = 4 };

static float dot_f32(const float *x, const float *w, int64_t n) {
    float acc[16] = {0};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) acc[j] += x[i + j] * w[i + j];
    float s = 0;
    for (int j = 0; j < 16; j++) s += acc[j];
    for (; i < n; i++) s += x[i] * w[i];
    return s;
}

static float dot_bf16(const float *x, const uint16_t *w, int64_t n) {
    float acc[16] = {0};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) {
            uint32_t bits = (uint32_t)w[i + j] << 16;
            float f;
            memcpy(&f, &bits, 4);
            acc[j] += x[i + j] * f;
        }
    float s = 0;
    for (int j = 0; j < 16; j++) s += acc[j];
    for (; i < n; i++) s += x[i] * xle_bf16_to_f32(w[i]);
    return s;
}

static float dot_f16(const float *x, const uint16_t *w, int64_t n) {
    float acc[16] = {0};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) acc[j] += x[i + j] * xle_f16_to_f32(w[i + j]);
    float s = 0;
    for (int j = 0; j < 16; j++) s += acc[j];
    for (; i < n; i++) s += x[i] * xle_f16_to_f32(w[i]);
    return s;
}

float xle_dot_row(const float *x, const xle_tensor *w, int64_t row, int64_t n) {
    switch (w->dtype) {
    case XLE_F32: return dot_f32(x, (const float *)w->data + row * n, n);
    case XLE_BF16: return dot_bf16(x, (const uint16_t *)w->data + row * n, n);
    case XLE_F16: return dot_f16(x, (const uint16_t *)w->data + row * n, n);
    default: {
        float s = 0;
        for (int64_t i = 0; i < n; i++) s += x[i] * xle_tensor_get_f32(w, row * n + i);
        return s;
    }
    }
}

/* Converts rows [r0, r0 + nr) of w into scratch (f32, nr x n_in), in parallel. */
static void rows_to_f32(float *scratch, const xle_tensor *w, int64_t r0, int64_t nr, int64_t n_in) {
#pragma omp parallel for schedule(static) if(nr * n_in > XLE_PAR_MIN_WORK)
    for (int64_t r = 0; r < nr; r++)
        xle_tensor_row_to_f32(w, (r0 + r) * n_in, n_in, scratch + r * n_in);
}

static int64_t block_rows(int64_t n_in) {
    int64_t rows = (int64_t)XLE_MATMUL_SCRATCH / n_in;
    return rows < 1 ? 1 : rows;
}

void xle_matmul_forward(float *out, const float *in, const xle_tensor *w, const xle_tensor *bias,
                        int T, float *scratch) {
    const int64_t n_out = w->shape[0], n_in = w->shape[1];
    if (T < SMALL_T) {
#pragma omp parallel for schedule(static) if(n_out * n_in * T > XLE_PAR_MIN_WORK)
        for (int64_t o = 0; o < n_out; o++)
            for (int t = 0; t < T; t++) out[(int64_t)t * n_out + o] = xle_dot_row(in + (int64_t)t * n_in, w, o, n_in);
    } else if (w->dtype == XLE_F32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, (int)n_out, (int)n_in, 1.0f, in,
                    (int)n_in, (const float *)w->data, (int)n_in, 0.0f, out, (int)n_out);
    } else {
        /* bf16/f16 weights: converted panel by panel inside the product, read once. */
        const xle_gemm_rhs rhs = {w->data, w->dtype, n_in, 1};
        xle_gemm_parallel(T, n_out, n_in, in, n_in, &rhs, out, n_out, 0, scratch, XLE_MATMUL_SCRATCH);
    }
    if (bias && bias->data) {
        for (int t = 0; t < T; t++)
            for (int64_t o = 0; o < n_out; o++)
                out[(int64_t)t * n_out + o] += xle_tensor_get_f32(bias, o);
    }
}

void xle_matmul_backward(float *din, float *dw, float *dbias, const float *dout, const float *in,
                         const xle_tensor *w, int T, float *scratch) {
    const int64_t n_out = w->shape[0], n_in = w->shape[1];
    if (din) {
        if (w->dtype == XLE_F32) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, (int)n_in, (int)n_out, 1.0f,
                        dout, (int)n_out, (const float *)w->data, (int)n_in, 1.0f, din, (int)n_in);
        } else {
            const int64_t step = block_rows(n_in);
            for (int64_t r0 = 0; r0 < n_out; r0 += step) {
                int64_t nr = n_out - r0 < step ? n_out - r0 : step;
                rows_to_f32(scratch, w, r0, nr, n_in);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, (int)n_in, (int)nr, 1.0f,
                            dout + r0, (int)n_out, scratch, (int)n_in, 1.0f, din, (int)n_in);
            }
        }
    }
    if (dw)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n_out, (int)n_in, T, 1.0f, dout,
                    (int)n_out, in, (int)n_in, 1.0f, dw, (int)n_in);
    if (dbias)
        for (int t = 0; t < T; t++)
            for (int64_t o = 0; o < n_out; o++) dbias[o] += dout[(int64_t)t * n_out + o];
}
