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

/* Σ over pairs of adjacent bytes u·s (unsigned × signed) as int16 (|sum| ≤ 2·63·127 for the
 * 2- to 6-bit values here), then pairs of those times int16 scales, as int32. */
QT static inline __m256i dot_scaled(__m256i u, __m256i s, __m256i scale16) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), scale16);
}

/* Scale broadcasts by byte shuffles (one instruction each) instead of scalar loads: with the
 * eight int16 scales s0..s7 in both 128-bit lanes of v, every int16 lane gets s_k ... */
QT static inline __m256i bcast16(__m256i v, int k) {
    return _mm256_shuffle_epi8(v, _mm256_set1_epi16((short)((2 * k) | (2 * k + 1) << 8)));
}
/* ... or lanes 0–7 get s_2k and lanes 8–15 s_2k+1: the scales of the two groups of 16 elements
 * that one 32-byte vector spans. */
QT static inline __m256i pair16(__m256i v, int k) {
    return _mm256_shuffle_epi8(v, _mm256_set_m128i(_mm_set1_epi16((short)((4 * k + 2) | (4 * k + 3) << 8)),
                                                   _mm_set1_epi16((short)((4 * k) | (4 * k + 1) << 8))));
}

/* The eight 6-bit scales and mins of a Q4_K/Q5_K block as bytes 0–7 and 8–15 of *out (the layout
 * of core/quant.c's qk_scale_min, four at a time in 32-bit words). */
QT static inline __m128i k4_scales_mins(const uint8_t *s) {
    uint32_t w[3], r[4];
    memcpy(w, s, 12);
    r[0] = w[0] & 0x3f3f3f3fu;                                                   /* scales 0–3 */
    r[1] = (w[2] & 0x0f0f0f0fu) | ((w[0] >> 6) & 0x03030303u) << 4;              /* scales 4–7 */
    r[2] = w[1] & 0x3f3f3f3fu;                                                   /* mins 0–3 */
    r[3] = ((w[2] >> 4) & 0x0f0f0f0fu) | ((w[1] >> 6) & 0x03030303u) << 4;       /* mins 4–7 */
    return _mm_loadu_si128((const __m128i *)r);
}

/* The part of a Q4_K/Q5_K block's product common to both: d·da·Σ_s sc_s·(q·a over sub-block s)
 * from the eight 32-byte vectors of unsigned values v[], and dmin·da·Σ_j mn_j·Σa over
 * sub-block j through the activations' sums per 16 (one madd). */
QT static inline void k45_accumulate(__m256i sumi, __m128i sm, const uint8_t *w, const uint8_t *a,
                                     __m256 *acc, __m256 *acc_min) {
    const __m128i mins8 = _mm_unpackhi_epi64(sm, sm);
    const __m256i mins16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mins8, mins8)); /* m0 m0 m1 m1 … */
    const __m256i msum = _mm256_madd_epi16(load256(a + 4), mins16);
    const float da = float_at(a);
    *acc = _mm256_fmadd_ps(_mm256_set1_ps(half_at(w) * da), _mm256_cvtepi32_ps(sumi), *acc);
    *acc_min = _mm256_fmadd_ps(_mm256_set1_ps(half_at(w + 2) * da), _mm256_cvtepi32_ps(msum), *acc_min);
}

/* Q4_K {f16 d; f16 dmin; u8 scales[12]; u8 qs[128]}: 32 bytes of qs hold sub-blocks 2p (low
 * nibbles) and 2p + 1 (high nibbles); one integer scale per sub-block. */
QT static float dot_q4_K(const uint8_t *w, const uint8_t *a, int64_t nb) {
    const __m256i low4 = _mm256_set1_epi8(15);
    __m256 acc = _mm256_setzero_ps(), acc_min = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++, w += 144, a += ACT256) {
        const __m128i sm = k4_scales_mins(w + 4);
        const __m128i sc = _mm_cvtepu8_epi16(sm);
        const __m256i scales = _mm256_set_m128i(sc, sc);
        const uint8_t *qs = w + 16, *aq = a + 36;
        __m256i sumi = _mm256_setzero_si256();
        for (int p = 0; p < 4; p++) {
            const __m256i bytes = load256(qs + 32 * p);
            const __m256i lo = _mm256_and_si256(bytes, low4);
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), low4);
            sumi = _mm256_add_epi32(sumi, dot_scaled(lo, load256(aq + 64 * p), bcast16(scales, 2 * p)));
            sumi = _mm256_add_epi32(sumi, dot_scaled(hi, load256(aq + 64 * p + 32), bcast16(scales, 2 * p + 1)));
        }
        k45_accumulate(sumi, sm, w, a, &acc, &acc_min);
    }
    return hsum8(_mm256_sub_ps(acc, acc_min));
}

/* Q5_K {f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]}: Q4_K's nibbles with a fifth
 * bit, bit s of qh[l] for element l of sub-block s (values 0..31). */
QT static float dot_q5_K(const uint8_t *w, const uint8_t *a, int64_t nb) {
    const __m256i low4 = _mm256_set1_epi8(15), sixteen = _mm256_set1_epi8(16);
    __m256 acc = _mm256_setzero_ps(), acc_min = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++, w += 176, a += ACT256) {
        const __m128i sm = k4_scales_mins(w + 4);
        const __m128i sc = _mm_cvtepu8_epi16(sm);
        const __m256i scales = _mm256_set_m128i(sc, sc);
        const uint8_t *qs = w + 48, *aq = a + 36;
        const __m256i qh = load256(w + 16);
        __m256i sumi = _mm256_setzero_si256();
        for (int p = 0; p < 4; p++) {
            const __m256i bytes = load256(qs + 32 * p);
            const __m256i bit_lo = _mm256_set1_epi8((char)(1 << (2 * p))), bit_hi = _mm256_set1_epi8((char)(2 << (2 * p)));
            const __m256i h_lo = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bit_lo), bit_lo), sixteen);
            const __m256i h_hi = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bit_hi), bit_hi), sixteen);
            const __m256i lo = _mm256_or_si256(_mm256_and_si256(bytes, low4), h_lo);
            const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bytes, 4), low4), h_hi);
            sumi = _mm256_add_epi32(sumi, dot_scaled(lo, load256(aq + 64 * p), bcast16(scales, 2 * p)));
            sumi = _mm256_add_epi32(sumi, dot_scaled(hi, load256(aq + 64 * p + 32), bcast16(scales, 2 * p + 1)));
        }
        k45_accumulate(sumi, sm, w, a, &acc, &acc_min);
    }
    return hsum8(_mm256_sub_ps(acc, acc_min));
}

/* Products of the super-blocks with sixteen int16 scales per group of 16 (Q6_K, Q3_K, Q2_K):
 * vector (h, k) holds groups 8h + 2k (bytes 0–15) and 8h + 2k + 1 (bytes 16–31); sc16 has the
 * sixteen scales as int16 (lanes 0–7 groups 0–7). Returns Σ over the eight vectors. */
QT static inline __m256i k16_sum(const __m256i v[8], __m256i sc16, const uint8_t *aq) {
    const __m256i lo_b = _mm256_permute2x128_si256(sc16, sc16, 0x00), hi_b = _mm256_permute2x128_si256(sc16, sc16, 0x11);
    __m256i sumi = _mm256_setzero_si256();
    for (int k = 0; k < 4; k++) {
        sumi = _mm256_add_epi32(sumi, dot_scaled(v[k], load256(aq + 32 * k), pair16(lo_b, k)));
        sumi = _mm256_add_epi32(sumi, dot_scaled(v[4 + k], load256(aq + 128 + 32 * k), pair16(hi_b, k)));
    }
    return sumi;
}

/* Q6_K {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}: the 6-bit values 0..63 as unsigned
 * bytes, the −32 offset through the activations' sums (Σ_g sc_g·bsum_g as one madd). */
QT static float dot_q6_K(const uint8_t *w, const uint8_t *a, int64_t nb) {
    const __m256i low4 = _mm256_set1_epi8(15), two = _mm256_set1_epi8(3);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++, w += 210, a += ACT256) {
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w + 192)));
        const __m256i offset = _mm256_slli_epi32(_mm256_madd_epi16(load256(a + 4), sc16), 5); /* 32·Σ sc·bsum */
        __m256i v[8];
        for (int h = 0; h < 2; h++) {
            const __m256i l0 = load256(w + 64 * h), l1 = load256(w + 64 * h + 32);
            const __m256i hb = load256(w + 128 + 32 * h);
            v[4 * h + 0] = _mm256_or_si256(_mm256_and_si256(l0, low4), _mm256_slli_epi16(_mm256_and_si256(hb, two), 4));
            v[4 * h + 1] = _mm256_or_si256(_mm256_and_si256(l1, low4),
                                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), two), 4));
            v[4 * h + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low4),
                                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 4), two), 4));
            v[4 * h + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low4),
                                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 6), two), 4));
        }
        const __m256i sumi = _mm256_sub_epi32(k16_sum(v, sc16, a + 36), offset);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(half_at(w + 208) * float_at(a)), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum8(acc);
}

/* The eight vectors of 2-bit values of Q2_K/Q3_K: element 128h + 32j + l has bits 2j..2j+1 of
 * qs[32h + l]. */
QT static inline void k2_values(const uint8_t *qs, __m256i v[8]) {
    const __m256i three = _mm256_set1_epi8(3);
    for (int h = 0; h < 2; h++) {
        const __m256i q = load256(qs + 32 * h);
        v[4 * h + 0] = _mm256_and_si256(q, three);
        v[4 * h + 1] = _mm256_and_si256(_mm256_srli_epi16(q, 2), three);
        v[4 * h + 2] = _mm256_and_si256(_mm256_srli_epi16(q, 4), three);
        v[4 * h + 3] = _mm256_and_si256(_mm256_srli_epi16(q, 6), three);
    }
}

/* Q3_K {u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d}: 2-bit values plus a third bit, bit
 * 4h + j of hmask[l]; q = low + 4·high − 4 taken as unsigned 0..7 with the −4 through the
 * activations' sums; sixteen signed 6-bit scales (offset 32) unpacked in 32-bit words. */
QT static float dot_q3_K(const uint8_t *w, const uint8_t *a, int64_t nb) {
    const __m256i four = _mm256_set1_epi8(4);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++, w += 110, a += ACT256) {
        uint32_t s[3], r[4];
        memcpy(s, w + 96, 12);
        r[0] = (s[0] & 0x0f0f0f0fu) | (s[2] & 0x03030303u) << 4;               /* scales 0–3 */
        r[1] = (s[1] & 0x0f0f0f0fu) | ((s[2] >> 2) & 0x03030303u) << 4;        /* 4–7 */
        r[2] = ((s[0] >> 4) & 0x0f0f0f0fu) | ((s[2] >> 4) & 0x03030303u) << 4; /* 8–11 */
        r[3] = ((s[1] >> 4) & 0x0f0f0f0fu) | ((s[2] >> 6) & 0x03030303u) << 4; /* 12–15 */
        const __m256i sc16 = _mm256_sub_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)r)),
                                              _mm256_set1_epi16(32));
        const __m256i offset = _mm256_slli_epi32(_mm256_madd_epi16(load256(a + 4), sc16), 2); /* 4·Σ sc·bsum */
        __m256i v[8];
        k2_values(w + 32, v);
        const __m256i hm = load256(w);
        for (int h = 0; h < 2; h++)
            for (int j = 0; j < 4; j++) {
                const __m256i bit = _mm256_set1_epi8((char)(1 << (4 * h + j)));
                const __m256i high = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hm, bit), bit), four);
                v[4 * h + j] = _mm256_or_si256(v[4 * h + j], high);
            }
        const __m256i sumi = _mm256_sub_epi32(k16_sum(v, sc16, a + 36), offset);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(half_at(w + 108) * float_at(a)), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum8(acc);
}

/* Q2_K {u8 scales[16]; u8 qs[64]; f16 d; f16 dmin}: 2-bit values 0..3; group g's scale is
 * scales[g] & 15, its min scales[g] >> 4 (through the activations' sums). */
QT static float dot_q2_K(const uint8_t *w, const uint8_t *a, int64_t nb) {
    const __m128i low4 = _mm_set1_epi8(15);
    __m256 acc = _mm256_setzero_ps(), acc_min = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++, w += 84, a += ACT256) {
        const __m128i packed = _mm_loadu_si128((const __m128i *)w);
        const __m256i sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(packed, low4));
        const __m256i mn16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(packed, 4), low4));
        const __m256i msum = _mm256_madd_epi16(load256(a + 4), mn16);
        __m256i v[8];
        k2_values(w + 16, v);
        const __m256i sumi = k16_sum(v, sc16, a + 36);
        const float da = float_at(a);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(half_at(w + 80) * da), _mm256_cvtepi32_ps(sumi), acc);
        acc_min = _mm256_fmadd_ps(_mm256_set1_ps(half_at(w + 82) * da), _mm256_cvtepi32_ps(msum), acc_min);
    }
    return hsum8(_mm256_sub_ps(acc, acc_min));
}

/* The 32 fifth bits of a Q5_0/Q5_1 block (bit j of the little-endian u32 for element j) as
 * bytes 16 (set) or 0, element j in byte j. */
QT static inline __m256i q5_high_bits(const uint8_t *qh_bytes) {
    uint32_t qh;
    memcpy(&qh, qh_bytes, 4);
    const __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh),
                                               _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
                                                                 0x0101010101010101, 0x0000000000000000));
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit), _mm256_set1_epi8(16));
}

/* Q4_0, Q4_1, Q5_0, Q5_1: 32 values 0..15 (0..31 with the fifth bit) as unsigned bytes, element
 * j in byte j; x = d·(v − offset) (Q4_0: 8, Q5_0: 16) or d·v + m (Q4_1, Q5_1). The offset
 * and m go through the activations' block sum: Σ (v − o)·a = Σ v·a − o·Σ a. */
QT static inline float dot_q32(const uint8_t *w, const uint8_t *a, int64_t nb, int has_min, int five) {
    const __m256i low4 = _mm256_set1_epi8(15);
    const int block = 2 + 2 * has_min + 4 * five + 16, offset = has_min ? 0 : five ? 16 : 8;
    __m256 acc = _mm256_setzero_ps();
    float acc_min = 0.0f;
    for (int64_t i = 0; i < nb; i++, w += block, a += ACT32) {
        const uint8_t *qs = w + 2 + 2 * has_min + 4 * five;
        const __m128i packed = _mm_loadu_si128((const __m128i *)qs);
        __m256i v = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(packed, 4), packed), low4);
        if (five) v = _mm256_or_si256(v, q5_high_bits(w + 2 + 2 * has_min));
        __m256i s = dot_u8s8(_mm256_setzero_si256(), v, load256(a + 8));
        int16_t bsum[2];
        memcpy(bsum, a + 4, 4);
        const float da = float_at(a);
        if (has_min) acc_min += half_at(w + 2) * da * (float)(bsum[0] + bsum[1]);
        else s = _mm256_sub_epi32(s, _mm256_set1_epi32(offset / 8 * (bsum[0] + bsum[1]))); /* 8 lanes */
        acc = _mm256_fmadd_ps(_mm256_set1_ps(half_at(w) * da), _mm256_cvtepi32_ps(s), acc);
    }
    return hsum8(acc) + acc_min;
}

QT static float dot_q4_0(const uint8_t *w, const uint8_t *a, int64_t nb) { return dot_q32(w, a, nb, 0, 0); }
QT static float dot_q4_1(const uint8_t *w, const uint8_t *a, int64_t nb) { return dot_q32(w, a, nb, 1, 0); }
QT static float dot_q5_0(const uint8_t *w, const uint8_t *a, int64_t nb) { return dot_q32(w, a, nb, 0, 1); }
QT static float dot_q5_1(const uint8_t *w, const uint8_t *a, int64_t nb) { return dot_q32(w, a, nb, 1, 1); }

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
    case XLE_Q4_1: kernel = dot_q4_1; break;
    case XLE_Q5_0: kernel = dot_q5_0; break;
    case XLE_Q5_1: kernel = dot_q5_1; break;
    case XLE_Q2_K: kernel = dot_q2_K; break;
    case XLE_Q3_K: kernel = dot_q3_K; break;
    case XLE_Q4_K: kernel = dot_q4_K; break;
    case XLE_Q5_K: kernel = dot_q5_K; break;
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
