/*
 * quant_gemm.c: the int8 prompt product with block-quantized weights (see quant_gemm.h).
 *
 * Compiled into the library (no XLE_ISA): activation quantization and panel packing in portable
 * C, and the driver that splits the product over threads. Compiled once more per kernel variant
 * (CMakeLists.txt, as quant_dot.c and kernels_isa.c): the register tile and the vector
 * activation quantization, present in variants with AVX-512 VNNI only (vpdpbusd); elsewhere
 * the driver declines and the exact f32 product runs.
 */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=fast")
#endif

#include "tensor/quant_gemm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/quant.h"

#ifndef XLE_ISA
#ifdef _OPENMP
#include <omp.h>
#endif
#include "tensor/kernels.h"
#include "tensor/ops.h"

int xle_quant_gemm_group(xle_dtype dt) {
    switch (dt) {
    case XLE_Q4_0: case XLE_Q4_1: case XLE_Q5_0: case XLE_Q5_1: case XLE_Q8_0: case XLE_Q4_K: case XLE_Q5_K:
        return 32; /* one scale (and min) per 32 elements */
    case XLE_Q2_K: case XLE_Q3_K: case XLE_Q6_K:
        return 16;
    default:
        return 0;
    }
}

void xle_qact_quantize_row(const xle_qact *act, int64_t m, const float *x, int has_min) {
    const int64_t K = act->K, G = act->group;
    uint8_t *q = act->q + m * K;
    for (int64_t c = 0; c < K / XLE_QACT_CHUNK; c++) {
        const float *xc = x + c * XLE_QACT_CHUNK;
        float amax = 0.0f;
        for (int e = 0; e < XLE_QACT_CHUNK; e++) amax = fabsf(xc[e]) > amax ? fabsf(xc[e]) : amax;
        const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        act->d[m * (K / XLE_QACT_CHUNK) + c] = d;
        for (int64_t g = 0; g < XLE_QACT_CHUNK / G; g++) {
            int sum = 0;
            for (int64_t e = g * G; e < g * G + G; e++) {
                const int v = (int)lrintf(xc[e] * id);
                q[c * XLE_QACT_CHUNK + e] = (uint8_t)(v + 128);
                sum += v;
            }
            if (has_min) act->gsum[m * (K / G) + c * (XLE_QACT_CHUNK / G) + g] = d * (float)sum;
        }
    }
}

void xle_qpanel_pack(xle_qpanel *p, xle_dtype dt, const void *w, size_t row_bytes, int64_t n0, int nr) {
    const int64_t K = p->K, G = p->group, B = xle_dtype_block_elems(dt), groups = K / G;
    const size_t block_bytes = xle_dtype_block_bytes(dt);
    if (nr < XLE_QPANEL_COLS) { /* the missing rows stay zero */
        memset(p->q, 0, (size_t)K * XLE_QPANEL_COLS);
        memset(p->s, 0, sizeof(float) * (size_t)groups * XLE_QPANEL_COLS);
        memset(p->o, 0, sizeof(float) * (size_t)groups * XLE_QPANEL_COLS);
    }
    memset(p->corr, 0, sizeof(float) * (size_t)(K / XLE_QACT_CHUNK) * XLE_QPANEL_COLS);
    if (dt == XLE_Q8_0) { /* {f16 d; i8 q[32]} read directly: the values are the stored bytes */
        for (int j = 0; j < nr; j++) {
            const uint8_t *row = (const uint8_t *)w + (n0 + j) * (int64_t)row_bytes;
            for (int64_t b = 0; b < K / 32; b++, row += 34) {
                int8_t *dst = p->q + b * 32 * XLE_QPANEL_COLS + 4 * j;
                int qsum = 0;
                for (int e = 0; e < 32; e += 4) memcpy(dst + e * XLE_QPANEL_COLS, row + 2 + e, 4);
                for (int e = 0; e < 32; e++) qsum += (int8_t)row[2 + e];
                const float d = xle_f16_to_f32((uint16_t)(row[0] | row[1] << 8));
                p->s[b * XLE_QPANEL_COLS + j] = d;
                p->o[b * XLE_QPANEL_COLS + j] = 0.0f;
                p->corr[(b * 32 / XLE_QACT_CHUNK) * XLE_QPANEL_COLS + j] += -128.0f * d * (float)qsum;
            }
        }
        return;
    }
    xle_qblock u;
    for (int j = 0; j < nr; j++) {
        const uint8_t *row = (const uint8_t *)w + (n0 + j) * (int64_t)row_bytes;
        for (int64_t b = 0; b < K / B; b++) {
            xle_quant_unpack(dt, row + b * (int64_t)block_bytes, &u);
            /* four consecutive inputs of row j are one 32-bit word of the panel */
            int8_t *dst = p->q + b * B * XLE_QPANEL_COLS + 4 * j;
            for (int64_t e = 0; e < B; e += 4) memcpy(dst + e * XLE_QPANEL_COLS, u.q + e, 4);
            for (int64_t g = 0; g < B / G; g++) {
                const int64_t gi = (b * B) / G + g, g16 = g * G / 16; /* groups of 32: sc[2i] = sc[2i+1] */
                const float s = u.d * (float)u.sc[g16];
                p->s[gi * XLE_QPANEL_COLS + j] = s;
                p->o[gi * XLE_QPANEL_COLS + j] = -u.dmin * (float)u.mn[g16];
                int qsum = 0;
                for (int64_t e = g * G; e < g * G + G; e++) qsum += u.q[e];
                p->corr[(gi * G / XLE_QACT_CHUNK) * XLE_QPANEL_COLS + j] += -128.0f * s * (float)qsum;
            }
        }
    }
}

/* Types whose unpacked blocks have mins (d·sc·q − dmin·mn with mn ≠ 0). */
static int type_has_min(xle_dtype dt) {
    return dt == XLE_Q4_1 || dt == XLE_Q5_1 || dt == XLE_Q2_K || dt == XLE_Q4_K || dt == XLE_Q5_K;
}

int xle_quant_gemm_parallel(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                            xle_dtype dt, const void *W, float *C, int64_t ldc) {
    const xle_kernels *kern = xle_kernels_select();
    const int G = xle_quant_gemm_group(dt);
    if (!kern->quant_gemm || !G || M <= 0 || N <= 0 || K <= 0 || K % XLE_QACT_CHUNK) return 0;
    const int has_min = type_has_min(dt);
    const size_t row_bytes = xle_dtype_row_bytes(dt, K);
    xle_qact act = {K, G, NULL, NULL, NULL};
    act.q = malloc((size_t)(M * K));
    act.d = malloc(sizeof(float) * (size_t)(M * (K / XLE_QACT_CHUNK)));
    act.gsum = malloc(sizeof(float) * (size_t)(M * (K / G)));
    if (!act.q || !act.d || !act.gsum) {
        free(act.q), free(act.d), free(act.gsum);
        return 0;
    }
    const int64_t panels = (N + XLE_QPANEL_COLS - 1) / XLE_QPANEL_COLS;
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    if (M * N * K <= XLE_PAR_MIN_PRODUCT) threads = 1;
    int failed = 0;
#pragma omp parallel num_threads(threads) reduction(| : failed)
    {
#pragma omp for schedule(dynamic, 8)
        for (int64_t m = 0; m < M; m++) kern->quant_act_row(&act, m, A + m * lda, has_min);
        /* this thread's panel: K bytes of values per column, scales and offsets per group */
        const size_t gfloats = (size_t)(K / G) * XLE_QPANEL_COLS;
        const size_t cfloats = (size_t)(K / XLE_QACT_CHUNK) * XLE_QPANEL_COLS;
        float *f = malloc(sizeof(float) * (2 * gfloats + cfloats) + (size_t)K * XLE_QPANEL_COLS + 64);
        xle_qpanel p = {K, G, has_min, NULL, NULL, NULL, NULL};
        if (f) p.s = f, p.o = f + gfloats, p.corr = f + 2 * gfloats, p.q = (int8_t *)(f + 2 * gfloats + cfloats);
        else failed = 1;
#pragma omp barrier
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < panels; t++) {
            if (!f) continue;
            const int64_t n0 = t * XLE_QPANEL_COLS;
            const int nr = N - n0 < XLE_QPANEL_COLS ? (int)(N - n0) : XLE_QPANEL_COLS;
            xle_qpanel_pack(&p, dt, W, row_bytes, n0, nr);
            /* The weight rows of the panel this thread probably packs next (dynamic schedule:
             * about `threads` panels on) are fetched while the kernel works on this one: 32
             * short rows are too many streams for the hardware prefetcher. */
            const int64_t next = (t + threads) * XLE_QPANEL_COLS, next_rows = N - next < XLE_QPANEL_COLS ? N - next : XLE_QPANEL_COLS;
            const int64_t lines = next_rows > 0 ? next_rows * (int64_t)row_bytes / 64 : 0;
            const char *next_w = (const char *)W + next * (int64_t)row_bytes;
            enum { STEP = 16 };
            /* (over the last quarter of the rows: earlier, the walk over the activations
             * evicts them from L2 again) */
            const int64_t from = M / STEP * 3 / 4 * STEP, steps = (M - from + STEP - 1) / STEP;
            const int64_t per_step = (lines + steps - 1) / steps;
            for (int64_t m = 0, l = 0; m < M; m += STEP) {
                for (int64_t e = 0; m >= from && e < per_step && l < lines; e++, l++) __builtin_prefetch(next_w + 64 * l, 0, 2);
                kern->quant_gemm(m, M - m < STEP ? M : m + STEP, nr, &act, &p, C + n0, ldc);
            }
        }
        free(f);
    }
    free(act.q), free(act.d), free(act.gsum);
    /* a thread without a panel buffer skipped its panels: the caller redoes the product */
    return !failed;
}

#else /* one kernel variant */
#define XLE_QG_PASTE2(a, b) a##b
#define XLE_QG_PASTE(a, b) XLE_QG_PASTE2(a, b)

#if defined(__AVX512VNNI__) && defined(__AVX512BW__) && defined(__AVX512F__)
#include <immintrin.h>

/* The register tile: QMR activation rows × 32 weight rows (two zmm of 16 lanes), per group of G
 * inputs G/4 vpdpbusd per accumulator (one broadcast of four activation bytes serves 32 weight
 * rows), then the group's int32 sums scaled into the f32 accumulators. */
enum { QMR = 4 };

__attribute__((always_inline)) static inline void tile(int G, int has_min, int64_t m0, int mr, int nr,
                                                       const xle_qact *act, const xle_qpanel *p,
                                                       float *C, int64_t ldc) {
    const int64_t K = act->K, chunks = K / XLE_QACT_CHUNK, gpc = XLE_QACT_CHUNK / G;
    const uint8_t *aq[QMR];
    const float *ad[QMR], *gs[QMR];
    for (int r = 0; r < QMR; r++) { /* rows beyond mr repeat the last (computed, not stored) */
        const int64_t m = m0 + (r < mr ? r : mr - 1);
        aq[r] = act->q + m * K;
        ad[r] = act->d + m * chunks;
        gs[r] = act->gsum + m * (K / G);
    }
    __m512 acc[QMR][2];
    for (int r = 0; r < QMR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int64_t c = 0; c < chunks; c++) {
        __m512 da[QMR];
        for (int r = 0; r < QMR; r++) da[r] = _mm512_set1_ps(ad[r][c]);
        for (int64_t g = c * gpc; g < (c + 1) * gpc; g++) {
            __m512i D[QMR][2];
            for (int r = 0; r < QMR; r++) D[r][0] = D[r][1] = _mm512_setzero_si512();
            const int8_t *wq = p->q + g * G * XLE_QPANEL_COLS;
            for (int k = 0; k < G; k += 4, wq += 4 * XLE_QPANEL_COLS) {
                const __m512i w0 = _mm512_loadu_si512((const void *)wq), w1 = _mm512_loadu_si512((const void *)(wq + 64));
                for (int r = 0; r < QMR; r++) {
                    int32_t four;
                    memcpy(&four, aq[r] + g * G + k, 4);
                    const __m512i a = _mm512_set1_epi32(four);
                    D[r][0] = _mm512_dpbusd_epi32(D[r][0], a, w0);
                    D[r][1] = _mm512_dpbusd_epi32(D[r][1], a, w1);
                }
            }
            const __m512 s0 = _mm512_loadu_ps(p->s + g * XLE_QPANEL_COLS), s1 = _mm512_loadu_ps(p->s + g * XLE_QPANEL_COLS + 16);
            for (int r = 0; r < QMR; r++) {
                acc[r][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(D[r][0]), _mm512_mul_ps(s0, da[r]), acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(D[r][1]), _mm512_mul_ps(s1, da[r]), acc[r][1]);
            }
            if (has_min) {
                const __m512 o0 = _mm512_loadu_ps(p->o + g * XLE_QPANEL_COLS), o1 = _mm512_loadu_ps(p->o + g * XLE_QPANEL_COLS + 16);
                for (int r = 0; r < QMR; r++) {
                    const __m512 sum = _mm512_set1_ps(gs[r][g]);
                    acc[r][0] = _mm512_fmadd_ps(o0, sum, acc[r][0]);
                    acc[r][1] = _mm512_fmadd_ps(o1, sum, acc[r][1]);
                }
            }
        }
        const __m512 c0 = _mm512_loadu_ps(p->corr + c * XLE_QPANEL_COLS), c1 = _mm512_loadu_ps(p->corr + c * XLE_QPANEL_COLS + 16);
        for (int r = 0; r < QMR; r++) {
            acc[r][0] = _mm512_fmadd_ps(c0, da[r], acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(c1, da[r], acc[r][1]);
        }
    }
    const __mmask16 k0 = nr >= 16 ? 0xffff : (__mmask16)((1u << nr) - 1);
    const __mmask16 k1 = nr >= 32 ? 0xffff : nr <= 16 ? 0 : (__mmask16)((1u << (nr - 16)) - 1);
    for (int r = 0; r < mr; r++) {
        _mm512_mask_storeu_ps(C + (m0 + r) * ldc, k0, acc[r][0]);
        _mm512_mask_storeu_ps(C + (m0 + r) * ldc + 16, k1, acc[r][1]);
    }
}

/* C[m][j] for rows m in [m0, m1) and weight rows j < nr of the panel (C at column n0 of the
 * product: C + m · ldc is row m). */
void XLE_QG_PASTE(xle_quant_gemm_, XLE_ISA)(int64_t m0, int64_t m1, int nr, const xle_qact *act,
                                            const xle_qpanel *p, float *C, int64_t ldc);
void XLE_QG_PASTE(xle_quant_gemm_, XLE_ISA)(int64_t m0, int64_t m1, int nr, const xle_qact *act,
                                            const xle_qpanel *p, float *C, int64_t ldc) {
    for (int64_t m = m0; m < m1; m += QMR) {
        const int mr = m1 - m < QMR ? (int)(m1 - m) : QMR;
        if (p->group == 32 && !p->has_min) tile(32, 0, m, mr, nr, act, p, C, ldc);
        else if (p->group == 32) tile(32, 1, m, mr, nr, act, p, C, ldc);
        else if (!p->has_min) tile(16, 0, m, mr, nr, act, p, C, ldc);
        else tile(16, 1, m, mr, nr, act, p, C, ldc);
    }
}

/* xle_qact_quantize_row with 16 lanes: _mm512_cvtps_epi32 rounds to nearest even as lrintf
 * does in the default rounding mode, so both forms give the same bytes. */
void XLE_QG_PASTE(xle_quant_act_row_, XLE_ISA)(const xle_qact *act, int64_t m, const float *x, int has_min);
void XLE_QG_PASTE(xle_quant_act_row_, XLE_ISA)(const xle_qact *act, int64_t m, const float *x, int has_min) {
    const int64_t K = act->K, G = act->group;
    uint8_t *q = act->q + m * K;
    const __m512 sign = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    for (int64_t c = 0; c < K / XLE_QACT_CHUNK; c++) {
        const float *xc = x + c * XLE_QACT_CHUNK;
        __m512 mx = _mm512_setzero_ps();
        for (int e = 0; e < XLE_QACT_CHUNK; e += 16) mx = _mm512_max_ps(mx, _mm512_and_ps(_mm512_loadu_ps(xc + e), sign));
        const float amax = _mm512_reduce_max_ps(mx);
        const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        act->d[m * (K / XLE_QACT_CHUNK) + c] = d;
        const __m512 vid = _mm512_set1_ps(id);
        for (int64_t g = 0; g < XLE_QACT_CHUNK / G; g++) {
            __m512i sum = _mm512_setzero_si512();
            for (int64_t e = g * G; e < g * G + G; e += 16) {
                const __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xc + e), vid));
                sum = _mm512_add_epi32(sum, v);
                _mm_storeu_si128((__m128i *)(q + c * XLE_QACT_CHUNK + e),
                                 _mm512_cvtepi32_epi8(_mm512_add_epi32(v, _mm512_set1_epi32(128))));
            }
            if (has_min) act->gsum[m * (K / G) + c * (XLE_QACT_CHUNK / G) + g] = d * (float)_mm512_reduce_add_epi32(sum);
        }
    }
}
#endif

#endif /* XLE_ISA */
