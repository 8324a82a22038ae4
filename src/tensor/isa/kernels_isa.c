/*
 * kernels_isa.c: the engine's inner loops for one instruction set (see tensor/kernels.h). This
 * file is compiled once per variant with -DXLE_ISA=<name> and that variant's -m flags; the
 * vector width follows the flags (16 floats with AVX-512, 8 with AVX, 4 otherwise: SSE2, NEON
 * or scalar code the compiler generates from GCC/Clang vector extensions).
 *
 * Weights are widened in registers: bf16 is the high half of an f32 (widen and shift), f16 goes
 * through vcvtph2ps (F16C / AVX-512) or, without it, an exact bit-level conversion. With
 * AVX512-BF16 the variant also has bf16 x bf16 products (vdpbf16ps) for activations rounded
 * to bf16, two multiply-adds per lane and instruction.
 */
/* ISO C mode (-std=c11) keeps GCC from fusing a * b + c; the products want fused multiply-adds
 * (fewer instructions per weight byte streamed). Clang fuses by default. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=fast")
#endif

#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "tensor/kernels.h"

#ifndef XLE_ISA
#error "compile with -DXLE_ISA=<variant name>"
#endif
#define XLE_PASTE2(a, b) a##b
#define XLE_PASTE(a, b) XLE_PASTE2(a, b)
#define XLE_STR2(a) #a
#define XLE_STR(a) XLE_STR2(a)

/* Register tile: MR x 2 accumulators plus two B vectors fit the register file: 16 of 32 zmm,
 * 12 of 16 ymm, 8 of 16 xmm. */
#if defined(__AVX512F__)
#define VEC 16
#define MR 8
#elif defined(__AVX__)
#define VEC 8
#define MR 6
#else
#define VEC 4
#define MR 4
#endif
#define NR (2 * VEC)
#define KC 256
#define MC 512

#if defined(__AVX512BF16__) && defined(__AVX512BW__)
#define HAVE_DPBF16 1
#else
#define HAVE_DPBF16 0
#endif

typedef float vf __attribute__((vector_size(VEC * 4)));
typedef uint32_t vu __attribute__((vector_size(VEC * 4)));
typedef int32_t vi __attribute__((vector_size(VEC * 4)));
typedef uint16_t vh __attribute__((vector_size(VEC * 2)));

_Static_assert(NR * KC <= XLE_GEMM_PACK_FLOATS, "pack buffer too small");

static inline vf loadf(const float *p) {
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void storef(float *p, vf v) { memcpy(p, &v, sizeof v); }

static inline vf bits_to_f(vu u) {
    vf f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* bf16 is the high half of an f32: widen and shift. */
static inline vf load_bf16(const uint16_t *p) {
    vh h;
    memcpy(&h, p, sizeof h);
    return bits_to_f(__builtin_convertvector(h, vu) << 16);
}

/* f16 -> f32, exact for every value (subnormals, Inf, NaN). */
static inline vf load_f16(const uint16_t *p) {
#if defined(__AVX512F__)
    return (vf)_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
#elif defined(__AVX__) && defined(__F16C__)
    return (vf)_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
#else
    /* Exponent and mantissa moved into f32 position read as a number 2^-112 times too small
     * (f16 subnormals become f32 subnormals); the multiply rebiases, exactly. Inf/NaN (f16
     * exponent 31) get the all-ones f32 exponent. */
    vh h;
    memcpy(&h, p, sizeof h);
    const vu u = __builtin_convertvector(h, vu);
    const vu sign = (u & 0x8000u) << 16, em = (u & 0x7fffu) << 13;
    vf f = bits_to_f(em) * 0x1p112f;
    vu bits;
    memcpy(&bits, &f, sizeof bits);
    const vu special = (vu)((u & 0x7c00u) == 0x7c00u);
    bits |= (special & 0x7f800000u) | sign;
    return bits_to_f(bits);
#endif
}

static inline vf load_as(const void *w, xle_dtype dt, int64_t i) {
    switch (dt) {
    case XLE_BF16: return load_bf16((const uint16_t *)w + i);
    case XLE_F16: return load_f16((const uint16_t *)w + i);
    default: return loadf((const float *)w + i);
    }
}

/* Elements [i, n) of w converted one by one (tails). */
static inline float scalar_as(const void *w, xle_dtype dt, int64_t i) {
    switch (dt) {
    case XLE_BF16: return xle_bf16_to_f32(((const uint16_t *)w)[i]);
    case XLE_F16: return xle_f16_to_f32(((const uint16_t *)w)[i]);
    default: return ((const float *)w)[i];
    }
}

/* Pairwise: log2(VEC) dependent additions instead of VEC (a row is only ~500 cycles). */
static inline float hsum(vf v) {
    float t[VEC];
    memcpy(t, &v, sizeof t);
    for (int half = VEC / 2; half >= 1; half /= 2)
        for (int i = 0; i < half; i++) t[i] += t[i + half];
    return t[0];
}

/* One row; dt is a compile-time constant after inlining into the per-dtype loops below. */
static inline __attribute__((always_inline)) float dot1(const float *x, const void *w,
                                                        xle_dtype dt, int64_t n) {
    vf a0 = {0}, a1 = {0};
    int64_t i = 0;
    for (; i + 2 * VEC <= n; i += 2 * VEC) {
        a0 += loadf(x + i) * load_as(w, dt, i);
        a1 += loadf(x + i + VEC) * load_as(w, dt, i + VEC);
    }
    float s = hsum(a0 + a1);
    for (; i < n; i++) s += x[i] * scalar_as(w, dt, i);
    return s;
}

/* Four rows (ld apart) against one x: each load of x serves four rows. Pays off when x no
 * longer fits in L1 beside the weight stream (long rows: the MLP down projection). */
static inline __attribute__((always_inline)) void dot4(const float *x, const void *w,
                                                       xle_dtype dt, int64_t ld, int64_t n,
                                                       float out[4]) {
    const size_t es = dt == XLE_F32 ? 4 : 2;
    const char *w0 = w, *w1 = w0 + ld * es, *w2 = w1 + ld * es, *w3 = w2 + ld * es;
    vf a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    int64_t i = 0;
    for (; i + VEC <= n; i += VEC) {
        const vf xv = loadf(x + i);
        a0 += xv * load_as(w0, dt, i);
        a1 += xv * load_as(w1, dt, i);
        a2 += xv * load_as(w2, dt, i);
        a3 += xv * load_as(w3, dt, i);
    }
    out[0] = hsum(a0), out[1] = hsum(a1), out[2] = hsum(a2), out[3] = hsum(a3);
    for (; i < n; i++) {
        out[0] += x[i] * scalar_as(w0, dt, i);
        out[1] += x[i] * scalar_as(w1, dt, i);
        out[2] += x[i] * scalar_as(w2, dt, i);
        out[3] += x[i] * scalar_as(w3, dt, i);
    }
}

static inline __attribute__((always_inline)) void dot_rows_typed(float *out, const float *x,
                                                                 const void *w, xle_dtype dt,
                                                                 int64_t ld, int64_t nr,
                                                                 int64_t n) {
    const size_t es = dt == XLE_F32 ? 4 : 2;
    int64_t r = 0;
    if (dt != XLE_F32 && n * (int64_t)sizeof(float) > 16384)
        for (; r + 4 <= nr; r += 4) dot4(x, (const char *)w + r * ld * es, dt, ld, n, out + r);
    for (; r < nr; r++) out[r] = dot1(x, (const char *)w + r * ld * es, dt, n);
}

static void dot_rows(float *out, const float *x, const void *w, xle_dtype dt, int64_t ld,
                     int64_t nr, int64_t n) {
    switch (dt) {
    case XLE_BF16: dot_rows_typed(out, x, w, XLE_BF16, ld, nr, n); break;
    case XLE_F16: dot_rows_typed(out, x, w, XLE_F16, ld, nr, n); break;
    default: dot_rows_typed(out, x, w, XLE_F32, ld, nr, n); break;
    }
}

static inline __attribute__((always_inline)) void to_f32_typed(float *dst, const void *src,
                                                               xle_dtype dt, int64_t n) {
    int64_t i = 0;
    for (; i + VEC <= n; i += VEC) storef(dst + i, load_as(src, dt, i));
    for (; i < n; i++) dst[i] = scalar_as(src, dt, i);
}

static void to_f32(float *dst, const void *src, xle_dtype dt, int64_t n) {
    switch (dt) {
    case XLE_BF16: to_f32_typed(dst, src, XLE_BF16, n); break;
    case XLE_F16: to_f32_typed(dst, src, XLE_F16, n); break;
    default: memcpy(dst, src, (size_t)n * sizeof(float)); break;
    }
}

static void to_bf16(uint16_t *dst, const float *src, int64_t n) {
    int64_t i = 0;
#if HAVE_DPBF16
    for (; i + 32 <= n; i += 32) {
        const __m512bh h = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + i + 16), _mm512_loadu_ps(src + i));
        _mm512_storeu_si512((void *)(dst + i), (__m512i)h);
    }
#endif
    for (; i < n; i++) dst[i] = xle_f32_to_bf16(src[i]);
}

/* ----- the blocked product (gemm.h), BLIS-style ----- */

/* C[MR x NR] (=|+=) A[MR x kc] · Bp[kc x NR]; A rows lda apart, Bp packed row after row. */
static void kernel_full(int64_t kc, const float *A, int64_t lda, const float *Bp, float *C,
                        int64_t ldc, int accumulate) {
    vf acc[MR][2];
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = (vf){0};
    for (int64_t k = 0; k < kc; k++) {
        const vf b0 = loadf(Bp + k * NR), b1 = loadf(Bp + k * NR + VEC);
        for (int i = 0; i < MR; i++) {
            const float a = A[i * lda + k];
            acc[i][0] += a * b0;
            acc[i][1] += a * b1;
        }
    }
    for (int i = 0; i < MR; i++) {
        float *c = C + i * ldc;
        if (accumulate) {
            acc[i][0] += loadf(c);
            acc[i][1] += loadf(c + VEC);
        }
        storef(c, acc[i][0]);
        storef(c + VEC, acc[i][1]);
    }
}

/* The same for a partial tile: mr <= MR rows, nr <= NR columns of C are touched. */
static void kernel_edge(int64_t kc, int mr, int nr, const float *A, int64_t lda, const float *Bp,
                        float *C, int64_t ldc, int accumulate) {
    vf acc[MR][2];
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = (vf){0};
    for (int64_t k = 0; k < kc; k++) {
        const vf b0 = loadf(Bp + k * NR), b1 = loadf(Bp + k * NR + VEC);
        for (int i = 0; i < mr; i++) {
            const float a = A[i * lda + k];
            acc[i][0] += a * b0;
            acc[i][1] += a * b1;
        }
    }
    float tile[NR];
    for (int i = 0; i < mr; i++) {
        storef(tile, acc[i][0]);
        storef(tile + VEC, acc[i][1]);
        float *c = C + i * ldc;
        for (int j = 0; j < nr; j++) c[j] = accumulate ? c[j] + tile[j] : tile[j];
    }
}

/* One stored row of a transposed B (a weight row), kc elements, into column j of the panel. */
static inline __attribute__((always_inline)) void pack_column(const void *s, xle_dtype dt,
                                                              int64_t kc, float *dst) {
    int64_t k = 0;
    for (; k + VEC <= kc; k += VEC) {
        float t[VEC];
        storef(t, load_as(s, dt, k));
        for (int i = 0; i < VEC; i++) dst[(k + i) * NR] = t[i];
    }
    for (; k < kc; k++) dst[k * NR] = scalar_as(s, dt, k);
}

#if defined(__AVX512F__)
/* Sixteen weight rows of 16 elements each (converted in registers) transposed in registers
 * and stored as 16 panel rows of 16 columns: 64 shuffles where element-wise stores into the
 * panel took 256 scalar stores (the F16 prompt spent 16% of its time packing). */
static inline __attribute__((always_inline)) void pack_16x16(const char *const *rows, xle_dtype dt, int64_t k,
                                                             float *dst) {
    __m512 r[16], t[16];
    for (int j = 0; j < 16; j++) r[j] = (__m512)load_as(rows[j], dt, k);
    for (int j = 0; j < 16; j += 2) {
        t[j] = _mm512_unpacklo_ps(r[j], r[j + 1]);
        t[j + 1] = _mm512_unpackhi_ps(r[j], r[j + 1]);
    }
    /* then per 128-bit lane L, r[4i + q] holds rows 4q..4q+3 at element 4L + i */
    for (int q = 0; q < 4; q++) {
        const __m512 a = t[4 * q], b = t[4 * q + 1], c = t[4 * q + 2], d = t[4 * q + 3];
        r[q] = _mm512_shuffle_ps(a, c, 0x44);
        r[4 + q] = _mm512_shuffle_ps(a, c, 0xEE);
        r[8 + q] = _mm512_shuffle_ps(b, d, 0x44);
        r[12 + q] = _mm512_shuffle_ps(b, d, 0xEE);
    }
    for (int i = 0; i < 4; i++) {
        const __m512 A = r[4 * i], B = r[4 * i + 1], C = r[4 * i + 2], D = r[4 * i + 3];
        const __m512 x0 = _mm512_shuffle_f32x4(A, B, 0x44), x1 = _mm512_shuffle_f32x4(A, B, 0xEE);
        const __m512 y0 = _mm512_shuffle_f32x4(C, D, 0x44), y1 = _mm512_shuffle_f32x4(C, D, 0xEE);
        _mm512_storeu_ps(dst + (0 + i) * NR, _mm512_shuffle_f32x4(x0, y0, 0x88));
        _mm512_storeu_ps(dst + (4 + i) * NR, _mm512_shuffle_f32x4(x0, y0, 0xDD));
        _mm512_storeu_ps(dst + (8 + i) * NR, _mm512_shuffle_f32x4(x1, y1, 0x88));
        _mm512_storeu_ps(dst + (12 + i) * NR, _mm512_shuffle_f32x4(x1, y1, 0xDD));
    }
}
#endif

/* Packs B's columns [n0, n0 + nr) x rows [k0, k0 + kc) as f32, row k at Bp + k * NR; columns
 * nr..NR are zero. */
static void pack_panel(const xle_gemm_rhs *B, int64_t n0, int nr, int64_t k0, int64_t kc,
                       float *Bp) {
    if (nr < NR) memset(Bp, 0, (size_t)(kc * NR) * sizeof(float));
    const xle_dtype dt = B->dtype;
    if (dt != XLE_F32 && dt != XLE_BF16 && dt != XLE_F16) {
        xle_gemm_pack_other(B, n0, nr, k0, kc, Bp, NR);
        return;
    }
    const int64_t es = dt == XLE_F32 ? 4 : 2;
    const char *data = B->data;
    if (B->transposed) {
#if defined(__AVX512F__)
        if (nr == NR && kc % 16 == 0) {
            for (int j0 = 0; j0 < NR; j0 += 16) {
                const char *rows[16];
                for (int j = 0; j < 16; j++) rows[j] = data + ((n0 + j0 + j) * B->ld + k0) * es;
                for (int64_t k = 0; k < kc; k += 16) {
                    switch (dt) {
                    case XLE_BF16: pack_16x16(rows, XLE_BF16, k, Bp + k * NR + j0); break;
                    case XLE_F16: pack_16x16(rows, XLE_F16, k, Bp + k * NR + j0); break;
                    default: pack_16x16(rows, XLE_F32, k, Bp + k * NR + j0); break;
                    }
                }
            }
            return;
        }
#endif
        for (int j = 0; j < nr; j++) {
            const char *s = data + ((n0 + j) * B->ld + k0) * es;
            switch (dt) {
            case XLE_BF16: pack_column(s, XLE_BF16, kc, Bp + j); break;
            case XLE_F16: pack_column(s, XLE_F16, kc, Bp + j); break;
            default: pack_column(s, XLE_F32, kc, Bp + j); break;
            }
        }
        return;
    }
    for (int64_t k = 0; k < kc; k++) to_f32(Bp + k * NR, data + ((k0 + k) * B->ld + n0) * es, dt, nr);
}

/* Issues prefetches for part `part` of `parts` of the source lines of B's panel (n0, k0):
 * packing reads NR weight rows a few hundred bytes each, too short for the hardware
 * prefetcher, so the next panel is fetched while the kernels work on the current one. */
static void prefetch_panel(const void *data, int64_t ld, int64_t es, int64_t n0, int nr,
                           int64_t k0, int64_t kc, int64_t part, int64_t parts) {
    const int64_t row_bytes = kc * es;
    const int64_t lines_per_row = (row_bytes + 63) / 64 + 1, lines = nr * lines_per_row;
    const int64_t per_part = (lines + parts - 1) / parts;
    for (int64_t l = part * per_part; l < (part + 1) * per_part && l < lines; l++) {
        const int64_t j = l / lines_per_row, off = (l % lines_per_row) * 64;
        if (off >= row_bytes + 63) continue;
        const char *row = (const char *)data + ((n0 + j) * ld + k0) * es;
        __builtin_prefetch(row + (off < row_bytes ? off : row_bytes - 1), 0, 3);
    }
}

static void gemm(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                 const xle_gemm_rhs *B, float *C, int64_t ldc, int accumulate, float *pack) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        if (!accumulate)
            for (int64_t i = 0; i < M; i++) memset(C + i * ldc, 0, (size_t)N * sizeof(float));
        return;
    }
    const int64_t es = (int64_t)xle_dtype_size(B->dtype);
    /* Rows in blocks of MC keep A's KC-wide slice in L2; for each KC step every B panel is
     * packed once per row block and then serves all of the block's rows from L1. */
    for (int64_t m_blk = 0; m_blk < M; m_blk += MC) {
        const int64_t m_end = M - m_blk < MC ? M : m_blk + MC;
        for (int64_t k0 = 0; k0 < K; k0 += KC) {
            const int64_t kc = K - k0 < KC ? K - k0 : KC;
            const int acc = accumulate || k0 > 0;
            for (int64_t n0 = 0; n0 < N; n0 += NR) {
                const int nr = N - n0 < NR ? (int)(N - n0) : NR;
                pack_panel(B, n0, nr, k0, kc, pack);
                /* The panel packed next: the following columns, or the first ones of the next
                 * KC step. */
                int64_t next_n = n0 + NR, next_k = k0;
                if (next_n >= N) next_n = 0, next_k = k0 + KC;
                const int next_nr = N - next_n < NR ? (int)(N - next_n) : NR;
                const int64_t next_kc = K - next_k < KC ? K - next_k : KC;
                const int64_t steps = (m_end - m_blk + MR - 1) / MR;
                const int prefetch = B->transposed && es > 0 && next_k < K;
                int64_t m = m_blk, step = 0;
                if (nr == NR)
                    for (; m + MR <= m_end; m += MR, step++) {
                        if (prefetch)
                            prefetch_panel(B->data, B->ld, es, next_n, next_nr, next_k, next_kc, step, steps);
                        kernel_full(kc, A + m * lda + k0, lda, pack, C + m * ldc + n0, ldc, acc);
                    }
                for (; m < m_end; m += MR) {
                    const int mr = m_end - m < MR ? (int)(m_end - m) : MR;
                    kernel_edge(kc, mr, nr, A + m * lda + k0, lda, pack, C + m * ldc + n0, ldc, acc);
                }
            }
        }
    }
}

/* ----- bf16 x bf16 products with vdpbf16ps (AVX512-BF16) ----- */
#if HAVE_DPBF16

/* Each 32-bit lane holds a pair (k, k + 1) of bf16; a dot-product step covers two k. */
#define KC2 (XLE_GEMM_PACK_FLOATS / 32) /* pairs per packed panel: 256 pairs = 512 k */
#define NR16 32

static inline __m512 dp(__m512 acc, __m512i a, __m512i b) {
    return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b);
}

/* Loads bf16 elements [i, i + 32) of p, zeros beyond n. */
static inline __m512i load_bf16_tail(const uint16_t *p, int64_t i, int64_t n) {
    if (i + 32 <= n) return _mm512_loadu_si512((const void *)(p + i));
    const __mmask32 m = (__mmask32)((1ull << (n - i)) - 1);
    return _mm512_maskz_loadu_epi16(m, p + i);
}

/* Rows longer than 1,024 (a model too large for the caches: each weight byte comes from
 * memory) one at a time, one stream per thread as llama.cpp's ggml_vec_dot_bf16 reads them:
 * four rows per pass left the 1B-shaped model's generation at 0.75-0.80x of one-row passes and
 * 0.89x llama.cpp. Short rows (small models, read from cache) four at a time, one load of x for
 * four rows: one row at a time generated the built-in model's tokens 11% slower
 * (docs/performance.md, "BF16 generation, one row at a time"). */
static void dot_rows_bf16(float *out, const uint16_t *xb, const uint16_t *w, int64_t ld,
                          int64_t nr, int64_t n) {
    int64_t r = 0;
    if (n <= 1024)
        for (; r + 4 <= nr; r += 4) {
            const uint16_t *w0 = w + r * ld, *w1 = w0 + ld, *w2 = w1 + ld, *w3 = w2 + ld;
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int64_t i = 0; i < n; i += 32) {
                const __m512i xv = load_bf16_tail(xb, i, n);
                a0 = dp(a0, xv, load_bf16_tail(w0, i, n));
                a1 = dp(a1, xv, load_bf16_tail(w1, i, n));
                a2 = dp(a2, xv, load_bf16_tail(w2, i, n));
                a3 = dp(a3, xv, load_bf16_tail(w3, i, n));
            }
            out[r] = _mm512_reduce_add_ps(a0), out[r + 1] = _mm512_reduce_add_ps(a1);
            out[r + 2] = _mm512_reduce_add_ps(a2), out[r + 3] = _mm512_reduce_add_ps(a3);
        }
    for (; r < nr; r++) {
        const uint16_t *w0 = w + r * ld;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0;
        int64_t i = 0;
        for (; i + 64 <= n; i += 64) {
            a0 = dp(a0, _mm512_loadu_si512((const void *)(xb + i)), _mm512_loadu_si512((const void *)(w0 + i)));
            a1 = dp(a1, _mm512_loadu_si512((const void *)(xb + i + 32)), _mm512_loadu_si512((const void *)(w0 + i + 32)));
        }
        for (; i < n; i += 32) a0 = dp(a0, load_bf16_tail(xb, i, n), load_bf16_tail(w0, i, n));
        out[r] = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
    }
}

/* Packs weight rows [n0, n0 + nr) (columns of B), pairs [p0, p0 + kp) of k: pair p of row j
 * at Bp[p * 32 + j] (32-bit words); a missing second element of the last pair (odd K) and the
 * rows beyond nr are zero. */
static void pack_bf16(const uint16_t *W, int64_t ldw, int64_t K, int64_t n0, int nr, int64_t p0,
                      int64_t kp, uint32_t *Bp) {
    if (nr < NR16) memset(Bp, 0, (size_t)(kp * NR16) * sizeof(uint32_t));
    for (int j = 0; j < nr; j++) {
        const uint16_t *row = W + (n0 + j) * ldw + 2 * p0;
        int64_t p = 0;
        const int64_t whole = (K - 2 * p0) / 2 < kp ? (K - 2 * p0) / 2 : kp;
        for (; p < whole; p++) {
            uint32_t v;
            memcpy(&v, row + 2 * p, sizeof v);
            Bp[p * NR16 + j] = v;
        }
        for (; p < kp; p++) /* the odd K's last pair */
            Bp[p * NR16 + j] = row[2 * p];
    }
}

static inline __attribute__((always_inline)) void kernel_bf16(int64_t kp, int mr, int nr,
                                                              const uint16_t *A, int64_t lda,
                                                              const uint32_t *Bp, float *C,
                                                              int64_t ldc, int accumulate) {
    __m512 acc[MR][2];
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int64_t p = 0; p < kp; p++) {
        const __m512i b0 = _mm512_loadu_si512((const void *)(Bp + p * NR16));
        const __m512i b1 = _mm512_loadu_si512((const void *)(Bp + p * NR16 + 16));
        for (int i = 0; i < mr; i++) {
            uint32_t pair;
            memcpy(&pair, A + i * lda + 2 * p, sizeof pair);
            const __m512i a = _mm512_set1_epi32((int)pair);
            acc[i][0] = dp(acc[i][0], a, b0);
            acc[i][1] = dp(acc[i][1], a, b1);
        }
    }
    for (int i = 0; i < mr; i++) {
        float *c = C + i * ldc;
        if (nr == NR16) {
            if (accumulate) {
                acc[i][0] = _mm512_add_ps(acc[i][0], _mm512_loadu_ps(c));
                acc[i][1] = _mm512_add_ps(acc[i][1], _mm512_loadu_ps(c + 16));
            }
            _mm512_storeu_ps(c, acc[i][0]);
            _mm512_storeu_ps(c + 16, acc[i][1]);
        } else {
            float tile[NR16];
            _mm512_storeu_ps(tile, acc[i][0]);
            _mm512_storeu_ps(tile + 16, acc[i][1]);
            for (int j = 0; j < nr; j++) c[j] = accumulate ? c[j] + tile[j] : tile[j];
        }
    }
}

static void gemm_bf16(int64_t M, int64_t N, int64_t K, const uint16_t *Ab, int64_t lda,
                      const uint16_t *W, int64_t ldw, float *C, int64_t ldc, int accumulate,
                      float *pack) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        if (!accumulate)
            for (int64_t i = 0; i < M; i++) memset(C + i * ldc, 0, (size_t)N * sizeof(float));
        return;
    }
    uint32_t *Bp = (uint32_t *)pack;
    const int64_t pairs = (K + 1) / 2;
    for (int64_t m_blk = 0; m_blk < M; m_blk += MC) {
        const int64_t m_end = M - m_blk < MC ? M : m_blk + MC;
        for (int64_t p0 = 0; p0 < pairs; p0 += KC2) {
            const int64_t kp = pairs - p0 < KC2 ? pairs - p0 : KC2;
            const int acc = accumulate || p0 > 0;
            for (int64_t n0 = 0; n0 < N; n0 += NR16) {
                const int nr = N - n0 < NR16 ? (int)(N - n0) : NR16;
                pack_bf16(W, ldw, K, n0, nr, p0, kp, Bp);
                int64_t next_n = n0 + NR16, next_p = p0;
                if (next_n >= N) next_n = 0, next_p = p0 + KC2;
                const int next_nr = N - next_n < NR16 ? (int)(N - next_n) : NR16;
                const int64_t next_kp = pairs - next_p < KC2 ? pairs - next_p : KC2;
                const int64_t steps = (m_end - m_blk + MR - 1) / MR;
                int64_t m = m_blk, step = 0;
                for (; m + MR <= m_end; m += MR, step++) {
                    if (next_p < pairs)
                        prefetch_panel(W, ldw, 2, next_n, next_nr, 2 * next_p,
                                       2 * next_kp < K - 2 * next_p ? 2 * next_kp : K - 2 * next_p,
                                       step, steps);
                    kernel_bf16(kp, MR, nr, Ab + m * lda + 2 * p0, lda, Bp, C + m * ldc + n0, ldc, acc);
                }
                for (; m < m_end; m += MR) {
                    const int mr = m_end - m < MR ? (int)(m_end - m) : MR;
                    kernel_bf16(kp, mr, nr, Ab + m * lda + 2 * p0, lda, Bp, C + m * ldc + n0, ldc, acc);
                }
            }
        }
    }
}
#endif /* HAVE_DPBF16 */

/* tensor/quant_dot.c, compiled with the same flags. */
void XLE_PASTE(xle_quant_dot_rows_, XLE_ISA)(const xle_tensor *w, int64_t o0, int64_t o1,
                                             const void *act, float *out);

/* tensor/quant_gemm.c, compiled with the same flags: the int8 prompt product (AVX-512 VNNI). */
#if defined(__AVX512VNNI__) && defined(__AVX512BW__) && defined(__AVX512F__)
#define HAVE_QUANT_GEMM 1
void XLE_PASTE(xle_quant_gemm_, XLE_ISA)(int64_t m0, int64_t m1, int nr, const xle_qact *act,
                                         const xle_qpanel *p, float *C, int64_t ldc);
void XLE_PASTE(xle_quant_act_row_, XLE_ISA)(const xle_qact *act, int64_t m, const float *x, int has_min);
#endif

const xle_kernels XLE_PASTE(xle_kernels_, XLE_ISA) = {
    .name = XLE_STR(XLE_ISA),
    .mr = MR,
    .nr = NR,
    .dot_rows = dot_rows,
    .gemm = gemm,
    .to_f32 = to_f32,
    .to_bf16 = to_bf16,
    .quant_dot_rows = XLE_PASTE(xle_quant_dot_rows_, XLE_ISA),
#ifdef HAVE_QUANT_GEMM
    .quant_gemm = XLE_PASTE(xle_quant_gemm_, XLE_ISA),
    .quant_act_row = XLE_PASTE(xle_quant_act_row_, XLE_ISA),
#endif
#if HAVE_DPBF16
    .dot_rows_bf16 = dot_rows_bf16,
    .gemm_bf16 = gemm_bf16,
#endif
};
