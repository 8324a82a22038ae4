/*
 * kernels.h: the engine's inner loops, compiled once per instruction set and chosen at run time.
 *
 * src/tensor/isa/kernels_isa.c is compiled several times (CMakeLists.txt, XLE_KERNEL_ISAS: on
 * x86-64 "avx512bf16", "avx512", "avx2" and "generic"; elsewhere "generic" only), each time
 * with its own -m flags, and each compilation defines one table of this type. A portable build
 * (XLE_NATIVE=OFF) thus still runs AVX-512 code on a CPU that has it; a native build compiles
 * the same variants on top of -march=native. xle_kernels_select() picks the best table the CPU
 * supports; the environment variable XLE_KERNELS=<name> forces a variant (tests, benchmarks).
 */
#ifndef XLE_KERNELS_H
#define XLE_KERNELS_H

#include "tensor/gemm.h"
#include "tensor/quant_gemm.h"

typedef struct xle_kernels {
    const char *name;
    int mr, nr;   /* register tile of gemm: rows of A and columns of B per kernel call */

    /* out[r] = x · row r of w for r in [0, nr_rows): w of dtype dt (F32, BF16 or F16), rows ld
     * elements apart, n elements each; exact f32 products (weights widened in registers). */
    void (*dot_rows)(float *out, const float *x, const void *w, xle_dtype dt, int64_t ld,
                     int64_t nr_rows, int64_t n);

    /* The serial blocked product of gemm.h (xle_gemm). B dtypes other than F32/BF16/F16 are
     * packed by xle_gemm_pack_other (gemm.c). */
    void (*gemm)(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                 const xle_gemm_rhs *B, float *C, int64_t ldc, int accumulate, float *pack);

    /* dst[i] = src[i] for n elements of dtype dt (F32, BF16, F16) converted to f32. */
    void (*to_f32)(float *dst, const void *src, xle_dtype dt, int64_t n);

    /* Rounds n floats to bf16, nearest even, NaN kept quiet (llama.cpp's activation rounding;
     * with AVX512-BF16 subnormals become zero, as in llama.cpp on such CPUs). */
    void (*to_bf16)(uint16_t *dst, const float *src, int64_t n);

    /* The bf16-activation products; NULL where the variant has no bf16 dot-product instruction.
     * dot_rows_bf16: out[r] = xb · row r of the bf16 weight w (rows ld apart), xb already
     * rounded to bf16, products summed in f32 (vdpbf16ps).
     * gemm_bf16: C[M x N] (=|+=) Ab[M x K] · Wᵀ with Ab bf16 (rows lda apart, lda even, zero
     * beyond K when K is odd) and W bf16 stored [N x K] (rows ldw apart); pack holds
     * XLE_GEMM_PACK_FLOATS floats. */
    void (*dot_rows_bf16)(float *out, const uint16_t *xb, const uint16_t *w, int64_t ld,
                          int64_t nr_rows, int64_t n);
    void (*gemm_bf16)(int64_t M, int64_t N, int64_t K, const uint16_t *Ab, int64_t lda,
                      const uint16_t *W, int64_t ldw, float *C, int64_t ldc, int accumulate,
                      float *pack);

    /* Block-quantized weights (tensor/quant_dot.h, compiled per variant too): out[o] = w[o] · x
     * for rows [o0, o1), act = x quantized per block by xle_quant_act. */
    void (*quant_dot_rows)(const xle_tensor *w, int64_t o0, int64_t o1, const void *act,
                           float *out);

    /* The int8 prompt product (tensor/quant_gemm.h, compiled per variant too); NULL where the
     * variant has no AVX-512 VNNI. quant_gemm: C[m][j] for activation rows m in [m0, m1) and
     * the panel's weight rows j < nr (row m of the result at C + m * ldc).
     * quant_act_row: xle_qact_quantize_row with the same bytes. */
    void (*quant_gemm)(int64_t m0, int64_t m1, int nr, const xle_qact *act, const xle_qpanel *p,
                       float *C, int64_t ldc);
    void (*quant_act_row)(const xle_qact *act, int64_t m, const float *x, int has_min);
} xle_kernels;

/* The best variant this CPU runs, or the one XLE_KERNELS names when the CPU supports it (an
 * unknown or unsupported name is ignored). Cheap enough to call per product. */
const xle_kernels *xle_kernels_select(void);

/* The variant of that name if it was built and this CPU runs it, else NULL. */
const xle_kernels *xle_kernels_named(const char *name);

/* The names of all variants built into this library, best first; *n receives the count. */
const char *const *xle_kernels_built(int *n);

/* Packs columns [n0, n0 + nr) x rows [k0, k0 + kc) of B as f32, row k at Bp + k * ldp, for
 * dtypes the ISA kernels do not convert themselves (F64). Columns beyond nr are not touched. */
void xle_gemm_pack_other(const xle_gemm_rhs *B, int64_t n0, int nr, int64_t k0, int64_t kc,
                         float *Bp, int ldp);

#endif
