/*
 * gemm.c: C = A · B in single precision (see gemm.h), spread over threads. The serial product is
 * BLIS-style and lives in the kernel variants (tensor/isa/kernels_isa.c, chosen at run time):
 * B is packed NR columns at a time for KC steps of the inner dimension (converted to f32 while
 * packing), and a kernel keeps an MR x NR tile of C in vector registers while it walks A's rows
 * in place. Here: the packing of dtypes the variants leave to common code, the split over
 * threads, and the bf16-activation product (vdpbf16ps).
 */

#include "tensor/gemm.h"

#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/quant.h"
#include "tensor/kernels.h"
#include "tensor/ops.h"

/* Byte offset of stored element (row, k) of B; rows hold ld elements (whole blocks). */
static int64_t rhs_byte_offset(const xle_gemm_rhs *B, int64_t row, int64_t k) {
    return row * (int64_t)xle_dtype_row_bytes(B->dtype, B->ld) + (int64_t)xle_dtype_row_bytes(B->dtype, k);
}

/* Panel packing of a block-quantized weight (stored [N x K], transposed; k0 and kc are whole
 * blocks since the kernels' KC is a multiple of 256 and K of the block size): the nr rows'
 * blocks are dequantized into a small buffer (in L1/L2) and transposed into the panel. */
static void pack_quant(const xle_gemm_rhs *B, int64_t n0, int nr, int64_t k0, int64_t kc, float *Bp,
                       int ldp) {
    enum { KC_MAX = 512, NR_MAX = 32 };
    float rows[NR_MAX][KC_MAX];
    const int64_t stride = (int64_t)xle_dtype_row_bytes(B->dtype, B->ld);
    const int64_t elems = xle_dtype_block_elems(B->dtype);
    const uint8_t *src = (const uint8_t *)B->data + rhs_byte_offset(B, n0, k0);
    for (int64_t c0 = 0; c0 < kc; c0 += KC_MAX) {
        const int64_t cn = kc - c0 < KC_MAX ? kc - c0 : KC_MAX;
        for (int j0 = 0; j0 < nr; j0 += NR_MAX) {
            const int jn = nr - j0 < NR_MAX ? nr - j0 : NR_MAX;
            for (int j = 0; j < jn; j++)
                xle_quant_dequantize(B->dtype, src + (j0 + j) * stride + (int64_t)xle_dtype_row_bytes(B->dtype, c0),
                                     cn / elems, rows[j]);
            for (int64_t k = 0; k < cn; k++)
                for (int j = 0; j < jn; j++) Bp[(c0 + k) * ldp + j0 + j] = rows[j][k];
        }
    }
}

void xle_gemm_pack_other(const xle_gemm_rhs *B, int64_t n0, int nr, int64_t k0, int64_t kc,
                         float *Bp, int ldp) {
    if (xle_dtype_is_quantized(B->dtype) && B->transposed) {
        pack_quant(B, n0, nr, k0, kc, Bp, ldp);
        return;
    }
    if (xle_dtype_is_quantized(B->dtype)) { /* [K x N]: row k's elements n0.. (any alignment) */
        const xle_tensor t = {B->dtype, 1, {(k0 + kc) * B->ld}, (void *)B->data};
        for (int64_t k = 0; k < kc; k++) xle_tensor_row_to_f32(&t, (k0 + k) * B->ld + n0, nr, Bp + k * ldp);
        return;
    }
    const double *d = B->data; /* F64 */
    for (int64_t k = 0; k < kc; k++)
        for (int j = 0; j < nr; j++) {
            const int64_t at = B->transposed ? (n0 + j) * B->ld + k0 + k : (k0 + k) * B->ld + n0 + j;
            Bp[k * ldp + j] = (float)d[at];
        }
}

void xle_gemm(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const xle_gemm_rhs *B,
              float *C, int64_t ldc, int accumulate, float *pack) {
    xle_kernels_select()->gemm(M, N, K, A, lda, B, C, ldc, accumulate, pack);
}

/* B restricted to its columns from n0 on. */
static xle_gemm_rhs rhs_from_column(const xle_gemm_rhs *B, int64_t n0) {
    xle_gemm_rhs s = *B;
    s.data = (const char *)B->data + (B->transposed ? rhs_byte_offset(B, n0, 0) : rhs_byte_offset(B, 0, n0));
    return s;
}

/* How a product of M x N is cut into tasks over threads: tasks of whole panels, about four per
 * thread so that a thread held up by the rest of the machine leaves its share to the others
 * (dynamic schedule); rows are split too when there are too few columns for that. */
typedef struct task_split {
    int64_t per_task, row_tasks, rows_per_task, tasks;
} task_split;

static task_split split_tasks(int64_t M, int64_t N, int threads, int mr, int nr) {
    task_split s;
    const int64_t panels = (N + nr - 1) / nr;
    s.per_task = panels / (4 * (int64_t)threads);
    s.per_task = s.per_task < 1 ? 1 : s.per_task > 8 ? 8 : s.per_task;
    const int64_t col_tasks = (panels + s.per_task - 1) / s.per_task;
    s.row_tasks = 1;
    if (col_tasks < 4 * (int64_t)threads) {
        const int64_t row_tiles = (M + mr - 1) / mr;
        s.row_tasks = (4 * (int64_t)threads + col_tasks - 1) / col_tasks;
        if (s.row_tasks > row_tiles) s.row_tasks = row_tiles;
    }
    s.rows_per_task = ((M + s.row_tasks - 1) / s.row_tasks + mr - 1) / mr * mr;
    s.tasks = col_tasks * s.row_tasks;
    return s;
}

/* Task t's first column *n0 and row *m0 and its extent *nn x *mm (0 when empty). */
static void task_extent(const task_split *s, int64_t t, int64_t M, int64_t N, int nr, int64_t *m0,
                        int64_t *n0, int64_t *mm, int64_t *nn) {
    *n0 = (t / s->row_tasks) * s->per_task * nr, *m0 = (t % s->row_tasks) * s->rows_per_task;
    *nn = N - *n0 < s->per_task * nr ? N - *n0 : s->per_task * nr;
    *mm = M - *m0 < s->rows_per_task ? M - *m0 : s->rows_per_task;
}

static int usable_threads(size_t scratch_floats) {
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    const size_t fit = scratch_floats / XLE_GEMM_PACK_FLOATS;
    if ((size_t)threads > fit) threads = fit > 0 ? (int)fit : 1;
    return threads;
}

void xle_gemm_parallel(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                       const xle_gemm_rhs *B, float *C, int64_t ldc, int accumulate,
                       float *scratch, size_t scratch_floats) {
    const xle_kernels *kern = xle_kernels_select();
    const int threads = usable_threads(scratch_floats);
    /* (a quantized B stored [K x N] cannot be cut at any column: its blocks run along N) */
    if (threads <= 1 || M * N * K <= XLE_PAR_MIN_PRODUCT || (xle_dtype_is_quantized(B->dtype) && !B->transposed)) {
        kern->gemm(M, N, K, A, lda, B, C, ldc, accumulate, scratch);
        return;
    }
    const task_split split = split_tasks(M, N, threads, kern->mr, kern->nr);
#pragma omp parallel num_threads(threads)
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        float *pack = scratch + (size_t)tid * XLE_GEMM_PACK_FLOATS;
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < split.tasks; t++) {
            int64_t m0, n0, mm, nn;
            task_extent(&split, t, M, N, kern->nr, &m0, &n0, &mm, &nn);
            if (nn <= 0 || mm <= 0) continue;
            const xle_gemm_rhs sub = rhs_from_column(B, n0);
            kern->gemm(mm, nn, K, A + m0 * lda, lda, &sub, C + m0 * ldc + n0, ldc, accumulate, pack);
        }
    }
}

/* Rows of A rounded to bf16 per pass of the bf16 product: 512 rows of 8192 are 8 MiB. */
enum { BF16_ROWS = 512 };

int xle_gemm_bf16_parallel(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                           const uint16_t *W, int64_t ldw, float *C, int64_t ldc,
                           float *scratch, size_t scratch_floats) {
    const xle_kernels *kern = xle_kernels_select();
    if (!kern->gemm_bf16 || M <= 0 || N <= 0 || K <= 0) return 0;
    const int64_t ldab = (K + 1) / 2 * 2, rows = M < BF16_ROWS ? M : BF16_ROWS;
    uint16_t *Ab = malloc((size_t)(rows * ldab) * sizeof(uint16_t));
    if (!Ab) return 0;
    int threads = usable_threads(scratch_floats);
    if (M * N * K <= XLE_PAR_MIN_PRODUCT) threads = 1;
    for (int64_t r0 = 0; r0 < M; r0 += rows) {
        const int64_t mb = M - r0 < rows ? M - r0 : rows;
        const task_split split = split_tasks(mb, N, threads, kern->mr, kern->nr);
#pragma omp parallel num_threads(threads)
        {
            int tid = 0;
#ifdef _OPENMP
            tid = omp_get_thread_num();
#endif
            float *pack = scratch + (size_t)tid * XLE_GEMM_PACK_FLOATS;
#pragma omp for schedule(dynamic, 8)
            for (int64_t i = 0; i < mb; i++) {
                kern->to_bf16(Ab + i * ldab, A + (r0 + i) * lda, K);
                if (ldab > K) Ab[i * ldab + K] = 0;
            }
#pragma omp for schedule(dynamic, 1)
            for (int64_t t = 0; t < split.tasks; t++) {
                int64_t m0, n0, mm, nn;
                task_extent(&split, t, mb, N, kern->nr, &m0, &n0, &mm, &nn);
                if (nn <= 0 || mm <= 0) continue;
                kern->gemm_bf16(mm, nn, K, Ab + m0 * ldab, ldab, W + n0 * ldw, ldw,
                                C + (r0 + m0) * ldc + n0, ldc, 0, pack);
            }
        }
    }
    free(Ab);
    return 1;
}
