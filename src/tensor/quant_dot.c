/*
 * quant_dot.c: products of block-quantized weight rows with int8-quantized activations (see
 * quant_dot.h). The portable path unpacks each block (core/quant.c) and multiplies in
 * integers. Where the build targets AVX2 (with AVX-512 VNNI's vpdpbusd when present), the
 * types of the usual presets (Q8_0, Q4_0; Q4_K and Q6_K, which make up Q4_K_M) have kernels
 * that multiply the stored bytes directly: unsigned weight bytes times signed activation
 * bytes, four products summed per 32-bit lane, scaled per block (or per 16/32-element group)
 * in integers, then once per block in float.
 *
 * Like tensor/isa/kernels_isa.c this file is compiled once per kernel variant (CMakeLists.txt,
 * XLE_KERNEL_ISAS, with XLE_ISA set) into that variant's quant_dot_rows, so a portable build runs
 * the AVX2 / VNNI kernels where the CPU has them; compiled into the library itself (no XLE_ISA)
 * it is only the entry point that hands each call to the variant chosen at run time.
 */
/* Fused multiply-adds for the per-block float accumulation (see matmul.c). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=fast")
#endif

#include "tensor/quant_dot.h"

#ifndef XLE_ISA
#include "tensor/kernels.h"

void xle_quant_dot_rows(const xle_tensor *w, int64_t o0, int64_t o1, const void *act, float *out) {
    xle_kernels_select()->quant_dot_rows(w, o0, o1, act, out);
}

#else /* one kernel variant */
#define XLE_QD_PASTE2(a, b) a##b
#define XLE_QD_PASTE(a, b) XLE_QD_PASTE2(a, b)

#include <string.h>

#include "core/quant.h"

/* The vector kernels are compiled for AVX2 + FMA + F16C whatever the build targets (function
 * target attributes) and used when the CPU has them (checked at run time), so that a portable
 * build (XLE_NATIVE=OFF) runs them too; a native build with AVX-512 VNNI uses vpdpbusd. */
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define XLE_QUANT_SIMD 1
#include <immintrin.h>
#define QT __attribute__((target("avx2,fma,f16c")))
#endif

#ifdef XLE_QUANT_SIMD

QT static inline float half_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

QT static inline float float_at(const uint8_t *p) {
    float f;
    memcpy(&f, p, 4);
    return f;
}

QT static inline __m256i load256(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }

/* acc + per 32-bit lane the sum of four products of unsigned bytes u and signed bytes s. */
QT static inline __m256i dot_u8s8(__m256i acc, __m256i u, __m256i s) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
    return _mm256_dpbusd_epi32(acc, u, s);
#elif defined(__AVXVNNI__)
    return _mm256_dpbusd_avx_epi32(acc, u, s);
#else
    /* pairs to int16 (|u·s| ≤ 127·127·2 fits), then pairs to int32 */
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}

QT static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Activation blocks (core/quant.c): float d, int16 sums per 16, int8 q. */
enum { ACT32 = 4 + 4 + 32, ACT256 = 4 + 32 + 256 };

/* Q8_0 {f16 d; i8 q[32]}: signed × signed, made unsigned × signed with the signs moved over
 * to the activations (|w| · sign(w)·a). */
QT static float dot_q8_0(const uint8_t *w, const uint8_t *a, int64_t nb) {
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++, w += 34, a += ACT32) {
        const __m256i wq = load256(w + 2), aq = load256(a + 8);
        const __m256i s = dot_u8s8(_mm256_setzero_si256(), _mm256_sign_epi8(wq, wq), _mm256_sign_epi8(aq, wq));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(half_at(w) * float_at(a)), _mm256_cvtepi32_ps(s), acc);
    }
    return hsum8(acc);
}

/* Q4_0 {f16 d; u8 qs[16]}: nibbles 0..15 as unsigned bytes; the −8 offset comes off with the
 * activations' block sum: Σ (n − 8)·a = Σ n·a − 8·Σ a. */
QT static float dot_q4_0(const uint8_t *w, const uint8_t *a, int64_t nb) {
    const __m256i low4 = _mm256_set1_epi8(15);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++, w += 18, a += ACT32) {
        const __m128i packed = _mm_loadu_si128((const __m128i *)(w + 2));
        const __m256i both = _mm256_set_m128i(_mm_srli_epi16(packed, 4), packed);
        const __m256i n = _mm256_and_si256(both, low4);
        __m256i s = dot_u8s8(_mm256_setzero_si256(), n, load256(a + 8));
        int16_t bsum[2];
        memcpy(bsum, a + 4, 4);
        s = _mm256_sub_epi32(s, _mm256_set1_epi32(bsum[0] + bsum[1])); /* 8 lanes × −8·Σa/8 */
        acc = _mm256_fmadd_ps(_mm256_set1_ps(half_at(w) * float_at(a)), _mm256_cvtepi32_ps(s), acc);
    }
    return hsum8(acc);
}

/* Σ over pairs of adjacent bytes u·s (unsigned × signed) as int16 (|sum| ≤ 2·63·127 for the
 * 4- and 6-bit values here), then pairs of those times int16 scales, as int32. */
QT static inline __m256i dot_scaled(__m256i u, __m256i s, __m256i scale16) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), scale16);
}

/* The eight 6-bit scales and mins of a Q4_K block as bytes 0–7 and 8–15 of *out (the layout
 * of core/quant.c's qk_scale_min, four at a time in 32-bit words). */
QT static inline void k4_scales_mins(const uint8_t *s, uint8_t out[16]) {
    uint32_t w[3], r[4];
    memcpy(w, s, 12);
    r[0] = w[0] & 0x3f3f3f3fu;                                                   /* scales 0–3 */
    r[1] = (w[2] & 0x0f0f0f0fu) | ((w[0] >> 6) & 0x03030303u) << 4;              /* scales 4–7 */
    r[2] = w[1] & 0x3f3f3f3fu;                                                   /* mins 0–3 */
    r[3] = ((w[2] >> 4) & 0x0f0f0f0fu) | ((w[1] >> 6) & 0x03030303u) << 4;       /* mins 4–7 */
    memcpy(out, r, 16);
}

/* Q4_K {f16 d; f16 dmin; u8 scales[12]; u8 qs[128]}: 32 bytes of qs hold sub-blocks 2p (low
 * nibbles) and 2p + 1 (high nibbles); one integer scale per sub-block, the mins through the
 * activations' sums per 16 (Σ_j mn_j·(bsum_2j + bsum_2j+1) as one madd). */
QT static float dot_q4_K(const uint8_t *w, const uint8_t *a, int64_t nb) {
    const __m256i low4 = _mm256_set1_epi8(15);
    __m256 acc = _mm256_setzero_ps(), acc_min = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++, w += 144, a += ACT256) {
        uint8_t sm[16];
        k4_scales_mins(w + 4, sm);
        /* mins per group of 16: m0 m0 m1 m1 … m7 m7 as int16 */
        const __m128i mins8 = _mm_loadl_epi64((const __m128i *)(sm + 8));
        const __m256i mins16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mins8, mins8));
        const __m256i msum = _mm256_madd_epi16(load256(a + 4), mins16);
        const uint8_t *qs = w + 16, *aq = a + 36;
        __m256i sumi = _mm256_setzero_si256();
        for (int p = 0; p < 4; p++) {
            const __m256i bytes = load256(qs + 32 * p);
            const __m256i lo = _mm256_and_si256(bytes, low4);
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), low4);
            sumi = _mm256_add_epi32(sumi, dot_scaled(lo, load256(aq + 64 * p), _mm256_set1_epi16(sm[2 * p])));
            sumi = _mm256_add_epi32(sumi, dot_scaled(hi, load256(aq + 64 * p + 32), _mm256_set1_epi16(sm[2 * p + 1])));
        }
        const float da = float_at(a);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(half_at(w) * da), _mm256_cvtepi32_ps(sumi), acc);
        acc_min = _mm256_fmadd_ps(_mm256_set1_ps(half_at(w + 2) * da), _mm256_cvtepi32_ps(msum), acc_min);
    }
    return hsum8(_mm256_sub_ps(acc, acc_min));
}

/* Q6_K {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}: the 6-bit values 0..63 as unsigned
 * bytes, the −32 offset through the activations' sums (Σ_g sc_g·bsum_g as one madd); a 32-byte
 * vector spans two groups of 16 with their own scales (int16 lanes 0–7 and 8–15). */
QT static float dot_q6_K(const uint8_t *w, const uint8_t *a, int64_t nb) {
    const __m256i low4 = _mm256_set1_epi8(15), two = _mm256_set1_epi8(3);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++, w += 210, a += ACT256) {
        const int8_t *sc = (const int8_t *)(w + 192);
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)sc));
        __m256i sumi = _mm256_slli_epi32(_mm256_madd_epi16(load256(a + 4), sc16), 5); /* 32·Σ sc·bsum */
        sumi = _mm256_sub_epi32(_mm256_setzero_si256(), sumi);
        const uint8_t *aq = a + 36;
        for (int h = 0; h < 2; h++) {
            const __m256i l0 = load256(w + 64 * h), l1 = load256(w + 64 * h + 32);
            const __m256i hb = load256(w + 128 + 32 * h);
            const __m256i v[4] = {
                _mm256_or_si256(_mm256_and_si256(l0, low4), _mm256_slli_epi16(_mm256_and_si256(hb, two), 4)),
                _mm256_or_si256(_mm256_and_si256(l1, low4),
                                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), two), 4)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low4),
                                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 4), two), 4)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low4),
                                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 6), two), 4)),
            };
            for (int k = 0; k < 4; k++) {
                const int g = 8 * h + 2 * k;
                const __m256i scale = _mm256_set_m128i(_mm_set1_epi16(sc[g + 1]), _mm_set1_epi16(sc[g]));
                sumi = _mm256_add_epi32(sumi, dot_scaled(v[k], load256(aq + 128 * h + 32 * k), scale));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(half_at(w + 208) * float_at(a)), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum8(acc);
}

#endif /* XLE_QUANT_SIMD */

void XLE_QD_PASTE(xle_quant_dot_rows_, XLE_ISA)(const xle_tensor *w, int64_t o0, int64_t o1,
                                                const void *act, float *out);
void XLE_QD_PASTE(xle_quant_dot_rows_, XLE_ISA)(const xle_tensor *w, int64_t o0, int64_t o1,
                                                const void *act, float *out) {
    const int64_t n_in = w->shape[1];
    const size_t row_bytes = xle_dtype_row_bytes(w->dtype, n_in);
    const uint8_t *base = w->data;
#ifdef XLE_QUANT_SIMD
    float (*kernel)(const uint8_t *, const uint8_t *, int64_t) = NULL;
#if defined(__clang__)
    /* clang 14's __builtin_cpu_supports knows no "f16c"; every CPU with AVX2 and FMA has it */
    const int simd = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    const int simd = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
#endif
    if (simd) switch (w->dtype) {
    case XLE_Q8_0: kernel = dot_q8_0; break;
    case XLE_Q4_0: kernel = dot_q4_0; break;
    case XLE_Q4_K: kernel = dot_q4_K; break;
    case XLE_Q6_K: kernel = dot_q6_K; break;
    default: break;
    }
    if (kernel) {
        const int64_t nb = n_in / xle_dtype_block_elems(w->dtype);
        for (int64_t o = o0; o < o1; o++) out[o] = kernel(base + o * (int64_t)row_bytes, act, nb);
        return;
    }
#endif
    for (int64_t o = o0; o < o1; o++) out[o] = xle_quant_dot(w->dtype, base + o * (int64_t)row_bytes, act, n_in);
}
#endif /* XLE_ISA */
