/*
 * gemm.h: the engine's own single-precision matrix product, C = A · B, with register-blocked
 * kernels written with GCC/Clang vector extensions (AVX-512, AVX or SSE2 widths), compiled per
 * instruction set and chosen at run time (tensor/kernels.h).
 *
 * Why not OpenBLAS here: the right operand is usually a bf16/f16 weight, which this product
 * converts panel by panel while packing (each weight byte is read once, no f32 copy of the
 * weight exists), and all its threads are OpenMP's, so it never competes with OpenBLAS's own
 * thread pool (on two cores the two pools spinning against each other cost a third of the
 * time). Attention calls the single-threaded form inside its own parallel loop over heads.
 */
#ifndef XLE_GEMM_H
#define XLE_GEMM_H

#include "xledit.h"

/* The right operand B (K x N): either stored [N x K] (a weight, C = A · Wᵀ) or [K x N]. */
typedef struct xle_gemm_rhs {
    const void *data;
    xle_dtype dtype;     /* F32, BF16, F16, F64, or block-quantized */
    int64_t ld;          /* elements between consecutive stored rows */
    int transposed;      /* 1: stored [N x K], element (k, n) at n * ld + k; 0: at k * ld + n */
} xle_gemm_rhs;

/* Floats of packing buffer one single-threaded product needs. */
#define XLE_GEMM_PACK_FLOATS (32u * 256u)

/* C[M x N] (row stride ldc) = A[M x K] (row stride lda) · B, plus the old C when accumulate.
 * Runs on the calling thread; pack holds XLE_GEMM_PACK_FLOATS floats. Any sizes (0 included). */
void xle_gemm(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const xle_gemm_rhs *B,
              float *C, int64_t ldc, int accumulate, float *pack);

/* The same with the work split over OpenMP threads (blocks of C's columns, and of its rows when
 * there are few columns). scratch holds scratch_floats floats: XLE_GEMM_PACK_FLOATS per thread
 * (fewer threads are used when it is smaller; at least one thread's worth is required). */
void xle_gemm_parallel(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                       const xle_gemm_rhs *B, float *C, int64_t ldc, int accumulate,
                       float *scratch, size_t scratch_floats);

/* C[M x N] (row stride ldc) = bf16(A) · Wᵀ for a bf16 weight W stored [N x K] (rows ldw apart):
 * A's rows are rounded to bf16 (nearest even, as llama.cpp rounds activations) and the
 * products summed in f32 with vdpbf16ps, over OpenMP threads (scratch as for
 * xle_gemm_parallel). Returns 1 when done, 0 when this CPU has no such instruction (or memory
 * for the rounded rows is short) and C is untouched: the caller computes the exact product. */
int xle_gemm_bf16_parallel(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                           const uint16_t *W, int64_t ldw, float *C, int64_t ldc,
                           float *scratch, size_t scratch_floats);

#endif
