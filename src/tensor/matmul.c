/*
 * matmul.c: products with stored weights, forward beside backward. Weights stay in their
 * stored dtype (memory-mapped). For many rows (prompt processing) the blocked product of gemm.c
 * converts bf16/f16 weights panel by panel while packing (f32 weights are packed as they are);
 * for few rows (generation) threaded dot products convert on the fly, streaming each weight
 * byte once, which is memory-bound as it should be. The kernels are chosen at run time
 * (tensor/kernels.h). With XLE_PRECISION_BF16 and a CPU with AVX512-BF16, products with bf16
 * weights round the activations to bf16 and use vdpbf16ps (as llama.cpp does), and prompts with
 * block-quantized weights run in int8 (tensor/quant_gemm.h) where the CPU has AVX-512 VNNI.
 */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/quant.h"
#include "tensor/gemm.h"
#include "tensor/kernels.h"
#include "tensor/ops.h"
#include "tensor/quant_dot.h"
#include "tensor/quant_gemm.h"

/* Below this many activation rows the on-the-fly dot product beats packing for the product. */
enum { SMALL_T = 4 };

static int kernel_dtype(xle_dtype dt) { return dt == XLE_F32 || dt == XLE_BF16 || dt == XLE_F16; }

float xle_dot_row(const float *x, const xle_tensor *w, int64_t row, int64_t n) {
    if (kernel_dtype(w->dtype)) {
        float out;
        xle_kernels_select()->dot_rows(&out, x, (const char *)w->data + row * n * (int64_t)xle_dtype_size(w->dtype),
                                       w->dtype, n, 1, n);
        return out;
    }
    float s = 0;
    if (xle_dtype_is_quantized(w->dtype)) { /* block by block, exact f32 products */
        float buf[XLE_QK_MAX];
        const int64_t B = xle_dtype_block_elems(w->dtype);
        for (int64_t i = 0; i < n; i += B) {
            xle_tensor_row_to_f32(w, row * n + i, B, buf);
            for (int64_t e = 0; e < B; e++) s += x[i + e] * buf[e];
        }
        return s;
    }
    for (int64_t i = 0; i < n; i++) s += x[i] * xle_tensor_get_f32(w, row * n + i);
    return s;
}

/* out[o] = x · w[o] for rows [o0, o1); xb: x rounded to bf16 (bf16 weights, bf16 precision). */
static void dot_rows(const xle_kernels *kern, float *out, const float *x, const uint16_t *xb,
                     const xle_tensor *w, int64_t o0, int64_t o1, int64_t n) {
    if (xb) {
        kern->dot_rows_bf16(out + o0, xb, (const uint16_t *)w->data + o0 * n, n, o1 - o0, n);
        return;
    }
    if (kernel_dtype(w->dtype)) {
        const char *rows = (const char *)w->data + o0 * n * (int64_t)xle_dtype_size(w->dtype);
        kern->dot_rows(out + o0, x, rows, w->dtype, n, o1 - o0, n);
        return;
    }
    for (int64_t o = o0; o < o1; o++) out[o] = xle_dot_row(x, w, o, n);
}

/* Rows of weight w per chunk of the few-rows path: contiguous chunks of up to 1 MiB of weights
 * (long streams for the hardware prefetcher; 64 KiB chunks were 15% slower), about eight per
 * thread, a multiple of four rows (the kernels' four-row dot products). */
static int64_t rows_per_chunk(const xle_tensor *w, int threads) {
    const int64_t row_bytes = (int64_t)xle_dtype_row_bytes(w->dtype, w->shape[1]);
    int64_t chunk_bytes = w->shape[0] * row_bytes / (8 * (int64_t)threads);
    chunk_bytes = chunk_bytes < (1 << 14) ? (1 << 14) : chunk_bytes > (1 << 20) ? (1 << 20) : chunk_bytes;
    const int64_t chunk = chunk_bytes / (row_bytes > 0 ? row_bytes : 1);
    return chunk < 4 ? 4 : chunk / 4 * 4;
}

static void add_bias(float *out, const xle_tensor *bias, int64_t n_out, int T) {
    if (!bias || !bias->data) return;
    for (int t = 0; t < T; t++)
        for (int64_t o = 0; o < n_out; o++) out[(int64_t)t * n_out + o] += xle_tensor_get_f32(bias, o);
}

/* The weights whose products round activations to bf16 (vdpbf16ps) under precision prec. */
static int bf16_path(const xle_kernels *kern, const xle_tensor *w, xle_precision prec) {
    return prec == XLE_PRECISION_BF16 && w->dtype == XLE_BF16 && kern->gemm_bf16;
}

void xle_matmul_forward_many(float *const *outs, const float *in, const xle_tensor *const *ws,
                             const xle_tensor *const *biases, int n, int T, float *scratch,
                             xle_precision prec) {
    if (T >= SMALL_T) {
        for (int i = 0; i < n; i++)
            xle_matmul_forward(outs[i], in, ws[i], biases ? biases[i] : NULL, T, scratch, prec);
        return;
    }
    /* Few rows: memory-bound dot products. The chunks of all n weights form one work list,
     * handed out dynamically, so that a thread slowed by the rest of the machine does not hold
     * the others at a barrier, and there is one barrier for all n products. */
    enum { MAX_MANY = 8 };
    const xle_kernels *kern = xle_kernels_select();
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    int64_t chunk[MAX_MANY], first[MAX_MANY + 1], work = 0;
    int use_bf16[MAX_MANY], any_bf16 = 0;
    first[0] = 0;
    for (int i = 0; i < n && i < MAX_MANY; i++) {
        chunk[i] = rows_per_chunk(ws[i], threads);
        first[i + 1] = first[i] + (ws[i]->shape[0] + chunk[i] - 1) / chunk[i];
        work += ws[i]->shape[0] * ws[i]->shape[1] * T;
        use_bf16[i] = bf16_path(kern, ws[i], prec);
        any_bf16 |= use_bf16[i];
    }
    /* The input rows rounded to bf16 once for all bf16 products (in scratch, T x n_in). */
    const int64_t n_in_all = ws[0]->shape[1];
    uint16_t *xb = any_bf16 ? (uint16_t *)scratch : NULL;
    for (int t = 0; any_bf16 && t < T; t++)
        kern->to_bf16(xb + (int64_t)t * n_in_all, in + (int64_t)t * n_in_all, n_in_all);
    const int n_here = n < MAX_MANY ? n : MAX_MANY;
    /* Block-quantized weights multiply int8-quantized activations (one quantization of the T
     * input rows per weight type, shared by the weights of that type). */
    void *acts[MAX_MANY] = {0};
    for (int i = 0; i < n_here; i++) {
        if (!xle_dtype_is_quantized(ws[i]->dtype)) continue;
        for (int j = 0; j < i && !acts[i]; j++)
            if (ws[j]->dtype == ws[i]->dtype && acts[j]) acts[i] = acts[j];
        if (acts[i]) continue;
        const int64_t n_in = ws[i]->shape[1];
        const size_t row = xle_quant_act_bytes(ws[i]->dtype, n_in);
        acts[i] = malloc(row * (size_t)T + 64);
        if (!acts[i]) continue; /* out of memory: the exact (slow) path below */
        for (int t = 0; t < T; t++)
            xle_quant_act(ws[i]->dtype, in + (int64_t)t * n_in, n_in, (char *)acts[i] + row * (size_t)t);
    }
#pragma omp parallel for schedule(dynamic, 1) if(work > XLE_PAR_MIN_WORK)
    for (int64_t c = 0; c < first[n_here]; c++) {
        int i = 0;
        while (c >= first[i + 1]) i++;
        const xle_tensor *w = ws[i];
        const int64_t n_out = w->shape[0], n_in = w->shape[1], o0 = (c - first[i]) * chunk[i];
        const int64_t o1 = o0 + chunk[i] < n_out ? o0 + chunk[i] : n_out;
        if (acts[i]) {
            const size_t row = xle_quant_act_bytes(w->dtype, n_in);
            for (int t = 0; t < T; t++)
                xle_quant_dot_rows(w, o0, o1, (const char *)acts[i] + row * (size_t)t,
                                   outs[i] + (int64_t)t * n_out);
            continue;
        }
        for (int t = 0; t < T; t++)
            dot_rows(kern, outs[i] + (int64_t)t * n_out, in + (int64_t)t * n_in,
                     use_bf16[i] ? xb + (int64_t)t * n_in : NULL, w, o0, o1, n_in);
    }
    for (int i = 0; i < n_here; i++) {
        int shared = 0;
        for (int j = 0; j < i; j++) shared |= acts[j] == acts[i];
        if (!shared) free(acts[i]);
    }
    for (int i = 0; i < n_here; i++) add_bias(outs[i], biases ? biases[i] : NULL, ws[i]->shape[0], T);
    if (n > MAX_MANY)
        xle_matmul_forward_many(outs + MAX_MANY, in, ws + MAX_MANY, biases ? biases + MAX_MANY : NULL,
                                n - MAX_MANY, T, scratch, prec);
}

void xle_matmul_forward(float *out, const float *in, const xle_tensor *w, const xle_tensor *bias,
                        int T, float *scratch, xle_precision prec) {
    const int64_t n_out = w->shape[0], n_in = w->shape[1];
    if (T < SMALL_T) {
        xle_matmul_forward_many(&out, in, &w, &bias, 1, T, scratch, prec);
        return;
    }
    /* precision bf16 (llama.cpp's arithmetic): int8 products for block-quantized weights */
    const int int8_done = prec == XLE_PRECISION_BF16 && xle_dtype_is_quantized(w->dtype) &&
                          xle_quant_gemm_parallel(T, n_out, n_in, in, n_in, w->dtype, w->data, out, n_out);
    if (!int8_done && !(bf16_path(xle_kernels_select(), w, prec) &&
                        xle_gemm_bf16_parallel(T, n_out, n_in, in, n_in, w->data, n_in, out, n_out, scratch,
                                               XLE_MATMUL_SCRATCH))) {
        /* bf16/f16 and block-quantized weights: converted panel by panel inside the product,
         * read once. f32 weights too: the engine's product ran 1.2-2x OpenBLAS's sgemm at the
         * prompt's shapes, on OpenMP's threads only, so that the forward pass never wakes a
         * second thread pool (docs/performance.md, "Threads on busy cores"). */
        const xle_gemm_rhs rhs = {w->data, w->dtype, n_in, 1};
        xle_gemm_parallel(T, n_out, n_in, in, n_in, &rhs, out, n_out, 0, scratch, XLE_MATMUL_SCRATCH);
    }
    add_bias(out, bias, n_out, T);
}

void xle_matmul_backward(float *din, float *dw, float *dbias, const float *dout, const float *in,
                         const xle_tensor *w, int T, float *scratch) {
    const int64_t n_out = w->shape[0], n_in = w->shape[1];
    if (din) {
        if (xle_dtype_is_quantized(w->dtype)) {
            /* W's rows dequantized into the scratch a slice at a time (panels of columns of
             * B = W would cut through the blocks), then OpenBLAS. */
            int64_t step = (int64_t)XLE_MATMUL_SCRATCH / n_in;
            step = step < 1 ? 1 : step;
            for (int64_t r0 = 0; r0 < n_out; r0 += step) {
                const int64_t nr = n_out - r0 < step ? n_out - r0 : step;
                xle_tensor_row_to_f32(w, r0 * n_in, nr * n_in, scratch);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, (int)n_in, (int)nr, 1.0f,
                            dout + r0, (int)n_out, scratch, (int)n_in, 1.0f, din, (int)n_in);
            }
        } else {
            /* W read as B = W [n_out x n_in], converted row by row while packing (exact); f32
             * too, on OpenMP's threads (not OpenBLAS's pool between two OpenMP passes). */
            const xle_gemm_rhs rhs = {w->data, w->dtype, n_in, 0};
            xle_gemm_parallel(T, n_in, n_out, dout, n_out, &rhs, din, n_in, 1, scratch, XLE_MATMUL_SCRATCH);
        }
    }
    if (dw)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n_out, (int)n_in, T, 1.0f, dout,
                    (int)n_out, in, (int)n_in, 1.0f, dw, (int)n_in);
    if (dbias)
        for (int t = 0; t < T; t++)
            for (int64_t o = 0; o < n_out; o++) dbias[o] += dout[(int64_t)t * n_out + o];
}
