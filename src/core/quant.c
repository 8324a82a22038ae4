/*
 * quant.c: the block layouts of ggml's quantized types (see quant.h for the common form every
 * block is unpacked into, docs/formats.md for the byte layouts), their dequantization and
 * quantization, and the portable dot product on blocks with int8-quantized activations.
 * The engine's fast kernels for the common types live in tensor/quant_dot.c.
 */
#include "core/quant.h"

#include <math.h>
#include <string.h>

#if defined(__F16C__)
#include <immintrin.h>
static inline float half_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}
#else
static inline float half_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return xle_f16_to_f32(h);
}
#endif

static inline void put_half(uint8_t *p, float f) {
    uint16_t h = xle_f32_to_f16(f);
    memcpy(p, &h, 2);
}

/* ---- unpacking: bytes -> (q, sc, mn, d, dmin) ----------------------------------------------- */

static void unit_scales(xle_qblock *o, int groups, int mn) {
    for (int g = 0; g < groups; g++) o->sc[g] = 1, o->mn[g] = (int16_t)mn;
}

/* Q4_0 {f16 d; u8 qs[16]}: element j < 16 is the low nibble of qs[j], j >= 16 the high nibble
 * of qs[j-16]; x = d·(nibble − 8). Q4_1 {f16 d; f16 m; u8 qs[16]}: x = d·nibble + m. */
static void unpack_q4_01(const uint8_t *b, xle_qblock *o, int has_min) {
    const uint8_t *qs = b + (has_min ? 4 : 2);
    const int off = has_min ? 0 : 8;
    for (int j = 0; j < 16; j++) {
        o->q[j] = (int8_t)((qs[j] & 15) - off);
        o->q[j + 16] = (int8_t)((qs[j] >> 4) - off);
    }
    o->d = half_at(b);
    o->dmin = has_min ? half_at(b + 2) : 0.0f;
    unit_scales(o, 2, -1); /* − dmin·(−1) = + m */
}

/* Q5_0 {f16 d; u8 qh[4]; u8 qs[16]}, Q5_1 {f16 d; f16 m; u8 qh[4]; u8 qs[16]}: as Q4 with a
 * fifth bit, bit j of the little-endian u32 qh for element j; Q5_0 subtracts 16. */
static void unpack_q5_01(const uint8_t *b, xle_qblock *o, int has_min) {
    const uint8_t *p = b + (has_min ? 4 : 2);
    uint32_t qh;
    memcpy(&qh, p, 4);
    const uint8_t *qs = p + 4;
    const int off = has_min ? 0 : 16;
    for (int j = 0; j < 16; j++) {
        o->q[j] = (int8_t)(((qs[j] & 15) | (((qh >> j) & 1) << 4)) - off);
        o->q[j + 16] = (int8_t)(((qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - off);
    }
    o->d = half_at(b);
    o->dmin = has_min ? half_at(b + 2) : 0.0f;
    unit_scales(o, 2, -1);
}

/* Q8_0 {f16 d; i8 qs[32]}: x = d·q. */
static void unpack_q8_0(const uint8_t *b, xle_qblock *o) {
    memcpy(o->q, b + 2, 32);
    o->d = half_at(b);
    o->dmin = 0.0f;
    unit_scales(o, 2, 0);
}

/* Q2_K {u8 scales[16]; u8 qs[64]; f16 d; f16 dmin}: element e = 128h + 32j + 16k + l holds
 * bits 2j..2j+1 of qs[32h + 16k + l]; group e/16 has scale scales[g] & 15 and min
 * scales[g] >> 4: x = d·sc·q − dmin·mn. */
static void unpack_q2_K(const uint8_t *b, xle_qblock *o) {
    const uint8_t *sc = b, *qs = b + 16;
    for (int e = 0; e < 256; e++) {
        const int h = e / 128, j = (e / 32) % 4, kl = e % 32;
        o->q[e] = (int8_t)((qs[32 * h + kl] >> (2 * j)) & 3);
    }
    for (int g = 0; g < 16; g++) o->sc[g] = sc[g] & 15, o->mn[g] = sc[g] >> 4;
    o->d = half_at(b + 80);
    o->dmin = half_at(b + 82);
}

/* The sixteen 6-bit signed scales of Q3_K, packed in 12 bytes: scale i has its low four bits
 * in byte i (i < 8, low nibble) or byte i − 8 (high nibble), its top two bits in byte
 * 8 + i % 4 at bit 2·(i/4); stored with an offset of 32. */
static int q3k_scale(const uint8_t *s, int i) {
    const int low = i < 8 ? s[i] & 15 : s[i - 8] >> 4;
    const int high = (s[8 + i % 4] >> (2 * (i / 4))) & 3;
    return (low | high << 4) - 32;
}

/* Q3_K {u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d}: element e = 128h + 32j + 16k + l has
 * its low two bits as in Q2_K and its high bit in hmask[16k + l] bit 4h + j; a clear high bit
 * means −4: q = low − (high ? 0 : 4); x = d·scale·q. */
static void unpack_q3_K(const uint8_t *b, xle_qblock *o) {
    const uint8_t *hm = b, *qs = b + 32, *sc = b + 96;
    for (int e = 0; e < 256; e++) {
        const int h = e / 128, j = (e / 32) % 4, kl = e % 32;
        const int low = (qs[32 * h + kl] >> (2 * j)) & 3;
        const int high = (hm[kl] >> (4 * h + j)) & 1;
        o->q[e] = (int8_t)(low - (high ? 0 : 4));
    }
    for (int g = 0; g < 16; g++) o->sc[g] = (int16_t)q3k_scale(sc, g), o->mn[g] = 0;
    o->d = half_at(b + 108);
    o->dmin = 0.0f;
}

/* Scale and min of sub-block j (0..7) of Q4_K/Q5_K, six bits each in 12 bytes: j < 4 in the
 * low six bits of bytes j and j + 4; j >= 4 in the nibbles of byte j + 4 plus the top two bits
 * of bytes j − 4 and j. */
static void qk_scale_min(const uint8_t *s, int j, int *sc, int *mn) {
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
        *mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

/* Q4_K {f16 d; f16 dmin; u8 scales[12]; u8 qs[128]} and Q5_K {…; u8 qh[32]; u8 qs[128]}: eight
 * sub-blocks of 32; sub-block 2p takes the low nibbles of qs[32p .. 32p+31], 2p + 1 the high
 * ones; Q5_K's fifth bit of element l of sub-block s is bit s of qh[l]. x = d·sc·q − dmin·mn. */
static void unpack_q45_K(const uint8_t *b, xle_qblock *o, int five) {
    const uint8_t *sc = b + 4, *qh = b + 16, *qs = b + (five ? 48 : 16);
    for (int p = 0; p < 4; p++)
        for (int l = 0; l < 32; l++) {
            int lo = qs[32 * p + l] & 15, hi = qs[32 * p + l] >> 4;
            if (five) {
                lo |= ((qh[l] >> (2 * p)) & 1) << 4;
                hi |= ((qh[l] >> (2 * p + 1)) & 1) << 4;
            }
            o->q[64 * p + l] = (int8_t)lo;
            o->q[64 * p + 32 + l] = (int8_t)hi;
        }
    for (int s = 0; s < 8; s++) {
        int scale, min;
        qk_scale_min(sc, s, &scale, &min);
        o->sc[2 * s] = o->sc[2 * s + 1] = (int16_t)scale;
        o->mn[2 * s] = o->mn[2 * s + 1] = (int16_t)min;
    }
    o->d = half_at(b);
    o->dmin = half_at(b + 2);
}

/* Q6_K {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}: in half h (128 elements), element
 * 32i + l (i = 0..3, l < 32) has low nibble of ql[64h + l + 32·(i & 1)] (low nibble for
 * i < 2, high for i >= 2) and two high bits 2i..2i+1 of qh[32h + l]; q = value − 32;
 * x = d·scales[e/16]·q. */
static void unpack_q6_K(const uint8_t *b, xle_qblock *o) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    for (int h = 0; h < 2; h++)
        for (int i = 0; i < 4; i++)
            for (int l = 0; l < 32; l++) {
                const uint8_t lq = ql[64 * h + l + 32 * (i & 1)];
                const int low = i < 2 ? lq & 15 : lq >> 4;
                const int high = (qh[32 * h + l] >> (2 * i)) & 3;
                o->q[128 * h + 32 * i + l] = (int8_t)((low | high << 4) - 32);
            }
    for (int g = 0; g < 16; g++) o->sc[g] = sc[g], o->mn[g] = 0;
    o->d = half_at(b + 208);
    o->dmin = 0.0f;
}

void xle_quant_unpack(xle_dtype dt, const uint8_t *b, xle_qblock *o) {
    switch (dt) {
    case XLE_Q4_0: unpack_q4_01(b, o, 0); break;
    case XLE_Q4_1: unpack_q4_01(b, o, 1); break;
    case XLE_Q5_0: unpack_q5_01(b, o, 0); break;
    case XLE_Q5_1: unpack_q5_01(b, o, 1); break;
    case XLE_Q8_0: unpack_q8_0(b, o); break;
    case XLE_Q2_K: unpack_q2_K(b, o); break;
    case XLE_Q3_K: unpack_q3_K(b, o); break;
    case XLE_Q4_K: unpack_q45_K(b, o, 0); break;
    case XLE_Q5_K: unpack_q45_K(b, o, 1); break;
    case XLE_Q6_K: unpack_q6_K(b, o); break;
    default: memset(o, 0, sizeof *o); break;
    }
}

/* Direct dequantization of the most used types (the gemm's panel packing calls this for every
 * weight byte of a prompt): the same values as through xle_quant_unpack, in loops the compiler
 * vectorizes. */
static void dequant_q8_0(const uint8_t *b, float *y) {
    const float d = half_at(b);
    const int8_t *q = (const int8_t *)(b + 2);
    for (int j = 0; j < 32; j++) y[j] = d * (float)q[j];
}

static void dequant_q4_K(const uint8_t *b, float *y) {
    const float d = half_at(b), dmin = half_at(b + 2);
    const uint8_t *qs = b + 16;
    for (int p = 0; p < 4; p++) {
        int sc0, mn0, sc1, mn1;
        qk_scale_min(b + 4, 2 * p, &sc0, &mn0);
        qk_scale_min(b + 4, 2 * p + 1, &sc1, &mn1);
        const float s0 = d * (float)sc0, m0 = dmin * (float)mn0, s1 = d * (float)sc1, m1 = dmin * (float)mn1;
        for (int l = 0; l < 32; l++) y[64 * p + l] = s0 * (float)(qs[32 * p + l] & 15) - m0;
        for (int l = 0; l < 32; l++) y[64 * p + 32 + l] = s1 * (float)(qs[32 * p + l] >> 4) - m1;
    }
}

static void dequant_q5_K(const uint8_t *b, float *y) {
    const float d = half_at(b), dmin = half_at(b + 2);
    const uint8_t *qh = b + 16, *qs = b + 48;
    for (int p = 0; p < 4; p++) {
        int sc0, mn0, sc1, mn1;
        qk_scale_min(b + 4, 2 * p, &sc0, &mn0);
        qk_scale_min(b + 4, 2 * p + 1, &sc1, &mn1);
        const float s0 = d * (float)sc0, m0 = dmin * (float)mn0, s1 = d * (float)sc1, m1 = dmin * (float)mn1;
        for (int l = 0; l < 32; l++)
            y[64 * p + l] = s0 * (float)((qs[32 * p + l] & 15) | ((qh[l] >> (2 * p)) & 1) << 4) - m0;
        for (int l = 0; l < 32; l++)
            y[64 * p + 32 + l] = s1 * (float)((qs[32 * p + l] >> 4) | ((qh[l] >> (2 * p + 1)) & 1) << 4) - m1;
    }
}

static void dequant_q6_K(const uint8_t *b, float *y) {
    const float d = half_at(b + 208);
    const int8_t *sc = (const int8_t *)(b + 192);
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = b + 64 * h, *qh = b + 128 + 32 * h;
        float *o = y + 128 * h;
        for (int i = 0; i < 4; i++) {
            const float s0 = d * (float)sc[8 * h + 2 * i], s1 = d * (float)sc[8 * h + 2 * i + 1];
            const uint8_t *lq = ql + 32 * (i & 1);
            for (int l = 0; l < 32; l++) {
                const int low = i < 2 ? lq[l] & 15 : lq[l] >> 4;
                const int v = (low | ((qh[l] >> (2 * i)) & 3) << 4) - 32;
                o[32 * i + l] = (l < 16 ? s0 : s1) * (float)v;
            }
        }
    }
}

void xle_quant_dequantize(xle_dtype dt, const void *blocks, int64_t nblocks, float *dst) {
    const int64_t B = xle_dtype_block_elems(dt);
    const size_t bb = xle_dtype_block_bytes(dt);
    const uint8_t *p = blocks;
    xle_qblock u;
    for (int64_t i = 0; i < nblocks; i++, p += bb, dst += B) {
        switch (dt) {
        case XLE_Q8_0: dequant_q8_0(p, dst); continue;
        case XLE_Q4_K: dequant_q4_K(p, dst); continue;
        case XLE_Q5_K: dequant_q5_K(p, dst); continue;
        case XLE_Q6_K: dequant_q6_K(p, dst); continue;
        default: break;
        }
        xle_quant_unpack(dt, p, &u);
        for (int g = 0; g < B / 16; g++) {
            const float s = u.d * (float)u.sc[g], m = u.dmin * (float)u.mn[g];
            for (int e = 16 * g; e < 16 * g + 16; e++) dst[e] = s * (float)u.q[e] - m;
        }
    }
}

/* ---- quantization: the inverse of unpacking ------------------------------------------------- */

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }
static int round_to(float v) { return (int)lrintf(v); }

/* Q4_0 / Q5_0: the element of largest magnitude maps to −2^(bits−1) (one more level on the
 * negative side, as ggml does). Q4_1 / Q5_1: [min, max] over the levels. */
static void quant_q45_01(const float *x, uint8_t *b, int bits, int has_min) {
    const int levels = (1 << bits) - 1;
    int q[32];
    if (has_min) {
        float lo = x[0], hi = x[0];
        for (int j = 1; j < 32; j++) lo = x[j] < lo ? x[j] : lo, hi = x[j] > hi ? x[j] : hi;
        const float d = (hi - lo) / (float)levels, id = d != 0.0f ? 1.0f / d : 0.0f;
        for (int j = 0; j < 32; j++) q[j] = clampi(round_to((x[j] - lo) * id), 0, levels);
        put_half(b, d);
        put_half(b + 2, lo);
    } else {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < 32; j++)
            if (fabsf(x[j]) > amax) amax = fabsf(x[j]), max = x[j];
        const int half = 1 << (bits - 1);
        const float d = max / (float)-half, id = d != 0.0f ? 1.0f / d : 0.0f;
        for (int j = 0; j < 32; j++) q[j] = clampi(round_to(x[j] * id) + half, 0, levels);
        put_half(b, d);
    }
    uint8_t *p = b + (has_min ? 4 : 2);
    if (bits == 5) {
        uint32_t qh = 0;
        for (int j = 0; j < 32; j++) qh |= (uint32_t)((q[j] >> 4) & 1) << j;
        memcpy(p, &qh, 4);
        p += 4;
    }
    for (int j = 0; j < 16; j++) p[j] = (uint8_t)((q[j] & 15) | (q[j + 16] & 15) << 4);
}

static void quant_q8_0(const float *x, uint8_t *b) {
    float amax = 0.0f;
    for (int j = 0; j < 32; j++) amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
    const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    put_half(b, d);
    for (int j = 0; j < 32; j++) b[2 + j] = (uint8_t)(int8_t)clampi(round_to(x[j] * id), -127, 127);
}

/* Scales per group (of `gs` elements) of an asymmetric K-quant: min_g = min(0, min x),
 * scale_g = (max x − min_g) / levels; then the super-block scales d = max scale / smax and
 * dmin = max(−min) / smax, and the integer scales/mins rounded. */
static void kquant_asym(const float *x, int groups, int gs, int levels, int smax, int *sc, int *mn,
                        float *d_out, float *dmin_out) {
    float scale[16], min[16], max_scale = 0.0f, max_min = 0.0f;
    for (int g = 0; g < groups; g++) {
        float lo = 0.0f, hi = x[g * gs];
        for (int e = 0; e < gs; e++) {
            const float v = x[g * gs + e];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        min[g] = -lo;
        scale[g] = (hi - lo) / (float)levels;
        max_scale = scale[g] > max_scale ? scale[g] : max_scale;
        max_min = min[g] > max_min ? min[g] : max_min;
    }
    const float d = max_scale / (float)smax, dmin = max_min / (float)smax;
    for (int g = 0; g < groups; g++) {
        sc[g] = d > 0.0f ? clampi(round_to(scale[g] / d), 0, smax) : 0;
        mn[g] = dmin > 0.0f ? clampi(round_to(min[g] / dmin), 0, smax) : 0;
    }
    *d_out = xle_f16_to_f32(xle_f32_to_f16(d));
    *dmin_out = xle_f16_to_f32(xle_f32_to_f16(dmin));
}

/* q_e = round((x_e + dmin·mn) / (d·sc)) in [0, levels] with the rounded scales. */
static void kquant_values(const float *x, int groups, int gs, int levels, const int *sc,
                          const int *mn, float d, float dmin, int *q) {
    for (int g = 0; g < groups; g++) {
        const float s = d * (float)sc[g], m = dmin * (float)mn[g];
        for (int e = g * gs; e < (g + 1) * gs; e++)
            q[e] = s > 0.0f ? clampi(round_to((x[e] + m) / s), 0, levels) : 0;
    }
}

static void quant_q2_K(const float *x, uint8_t *b) {
    int sc[16], mn[16], q[256];
    float d, dmin;
    kquant_asym(x, 16, 16, 3, 15, sc, mn, &d, &dmin);
    kquant_values(x, 16, 16, 3, sc, mn, d, dmin, q);
    for (int g = 0; g < 16; g++) b[g] = (uint8_t)(sc[g] | mn[g] << 4);
    uint8_t *qs = b + 16;
    memset(qs, 0, 64);
    for (int e = 0; e < 256; e++) {
        const int h = e / 128, j = (e / 32) % 4, kl = e % 32;
        qs[32 * h + kl] |= (uint8_t)(q[e] << (2 * j));
    }
    put_half(b + 80, d);
    put_half(b + 82, dmin);
}

/* Symmetric K-quants (Q3_K, Q6_K): per group the element of largest magnitude maps to
 * −qhalf; signed integer scales under one super-block d (sc in [−smax−1, smax]). */
static void kquant_sym(const float *x, int qhalf, int smax, int *sc, float *d_out, int *q) {
    float scale[16], amax_all = 0.0f, d_max = 0.0f;
    for (int g = 0; g < 16; g++) {
        float amax = 0.0f, max = 0.0f;
        for (int e = 16 * g; e < 16 * g + 16; e++)
            if (fabsf(x[e]) > amax) amax = fabsf(x[e]), max = x[e];
        scale[g] = max / (float)-qhalf;
        if (fabsf(scale[g]) > amax_all) amax_all = fabsf(scale[g]), d_max = scale[g];
    }
    float d = d_max / (float)(-(smax + 1));
    d = xle_f16_to_f32(xle_f32_to_f16(d));
    for (int g = 0; g < 16; g++) {
        sc[g] = d != 0.0f ? clampi(round_to(scale[g] / d), -(smax + 1), smax) : 0;
        const float s = d * (float)sc[g];
        for (int e = 16 * g; e < 16 * g + 16; e++)
            q[e] = s != 0.0f ? clampi(round_to(x[e] / s), -qhalf, qhalf - 1) : 0;
    }
    *d_out = d;
}

static void quant_q3_K(const float *x, uint8_t *b) {
    int sc[16], q[256];
    float d;
    kquant_sym(x, 4, 31, sc, &d, q);
    uint8_t *hm = b, *qs = b + 32, *scales = b + 96;
    memset(b, 0, 108);
    for (int e = 0; e < 256; e++) {
        const int h = e / 128, j = (e / 32) % 4, kl = e % 32, v = q[e] + 4; /* 0..7 */
        qs[32 * h + kl] |= (uint8_t)((v & 3) << (2 * j));
        if (v & 4) hm[kl] |= (uint8_t)(1 << (4 * h + j));
    }
    for (int i = 0; i < 16; i++) {
        const int s = sc[i] + 32; /* 0..63 */
        if (i < 8) scales[i] |= (uint8_t)(s & 15);
        else scales[i - 8] |= (uint8_t)((s & 15) << 4);
        scales[8 + i % 4] |= (uint8_t)(((s >> 4) & 3) << (2 * (i / 4)));
    }
    put_half(b + 108, d);
}

static void put_scale_min_k4(uint8_t *s, const int *sc, const int *mn) {
    memset(s, 0, 12);
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            s[j] |= (uint8_t)(sc[j] & 63);
            s[j + 4] |= (uint8_t)(mn[j] & 63);
        } else {
            s[j + 4] = (uint8_t)((sc[j] & 15) | (mn[j] & 15) << 4);
            s[j - 4] |= (uint8_t)((sc[j] >> 4) << 6);
            s[j] |= (uint8_t)((mn[j] >> 4) << 6);
        }
    }
}

static void quant_q45_K(const float *x, uint8_t *b, int five) {
    int sc[8], mn[8], q[256];
    float d, dmin;
    const int levels = five ? 31 : 15;
    kquant_asym(x, 8, 32, levels, 63, sc, mn, &d, &dmin);
    kquant_values(x, 8, 32, levels, sc, mn, d, dmin, q);
    put_half(b, d);
    put_half(b + 2, dmin);
    put_scale_min_k4(b + 4, sc, mn);
    uint8_t *qh = b + 16, *qs = b + (five ? 48 : 16);
    if (five) memset(qh, 0, 32);
    for (int p = 0; p < 4; p++)
        for (int l = 0; l < 32; l++) {
            const int lo = q[64 * p + l], hi = q[64 * p + 32 + l];
            qs[32 * p + l] = (uint8_t)((lo & 15) | (hi & 15) << 4);
            if (five) qh[l] |= (uint8_t)(((lo >> 4) & 1) << (2 * p) | ((hi >> 4) & 1) << (2 * p + 1));
        }
}

static void quant_q6_K(const float *x, uint8_t *b) {
    int sc[16], q[256];
    float d;
    kquant_sym(x, 32, 127, sc, &d, q);
    uint8_t *ql = b, *qh = b + 128;
    memset(b, 0, 192);
    for (int h = 0; h < 2; h++)
        for (int i = 0; i < 4; i++)
            for (int l = 0; l < 32; l++) {
                const int v = q[128 * h + 32 * i + l] + 32; /* 0..63 */
                uint8_t *lq = &ql[64 * h + l + 32 * (i & 1)];
                *lq |= (uint8_t)(i < 2 ? (v & 15) : (v & 15) << 4);
                qh[32 * h + l] |= (uint8_t)((v >> 4) << (2 * i));
            }
    for (int g = 0; g < 16; g++) b[192 + g] = (uint8_t)(int8_t)sc[g];
    put_half(b + 208, d);
}

void xle_quant_quantize(xle_dtype dt, const float *src, int64_t n, void *dst) {
    const int64_t B = xle_dtype_block_elems(dt);
    const size_t bb = xle_dtype_block_bytes(dt);
    uint8_t *p = dst;
    for (int64_t i = 0; i + B <= n; i += B, p += bb) {
        const float *x = src + i;
        switch (dt) {
        case XLE_Q4_0: quant_q45_01(x, p, 4, 0); break;
        case XLE_Q4_1: quant_q45_01(x, p, 4, 1); break;
        case XLE_Q5_0: quant_q45_01(x, p, 5, 0); break;
        case XLE_Q5_1: quant_q45_01(x, p, 5, 1); break;
        case XLE_Q8_0: quant_q8_0(x, p); break;
        case XLE_Q2_K: quant_q2_K(x, p); break;
        case XLE_Q3_K: quant_q3_K(x, p); break;
        case XLE_Q4_K: quant_q45_K(x, p, 0); break;
        case XLE_Q5_K: quant_q45_K(x, p, 1); break;
        case XLE_Q6_K: quant_q6_K(x, p); break;
        default: break;
        }
    }
}

/* ---- activations and the portable dot product ------------------------------------------------ */

static size_t act_block_bytes(int64_t B) { return (size_t)(4 + B / 8 + B); }

size_t xle_quant_act_bytes(xle_dtype dt, int64_t n) {
    const int64_t B = xle_dtype_block_elems(dt);
    return (size_t)(n / B) * act_block_bytes(B);
}

void xle_quant_act(xle_dtype dt, const float *x, int64_t n, void *act) {
    const int64_t B = xle_dtype_block_elems(dt);
    uint8_t *p = act;
    for (int64_t i = 0; i + B <= n; i += B, p += act_block_bytes(B)) {
        float amax = 0.0f;
        for (int64_t e = 0; e < B; e++) amax = fabsf(x[i + e]) > amax ? fabsf(x[i + e]) : amax;
        const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        int16_t *bsum = (int16_t *)(void *)(p + 4);
        int8_t *q = (int8_t *)(p + 4 + B / 8);
        memcpy(p, &d, 4);
        for (int64_t g = 0; g < B / 16; g++) {
            int s = 0;
            for (int64_t e = 16 * g; e < 16 * g + 16; e++) {
                q[e] = (int8_t)lrintf(x[i + e] * id);
                s += q[e];
            }
            bsum[g] = (int16_t)s;
        }
    }
}

float xle_quant_dot(xle_dtype dt, const void *w_row, const void *act, int64_t n) {
    const int64_t B = xle_dtype_block_elems(dt);
    const size_t bb = xle_dtype_block_bytes(dt), ab = act_block_bytes(B);
    const uint8_t *w = w_row, *a = act;
    xle_qblock u;
    float sum = 0.0f;
    for (int64_t i = 0; i + B <= n; i += B, w += bb, a += ab) {
        xle_quant_unpack(dt, w, &u);
        float da;
        memcpy(&da, a, 4);
        const int16_t *bsum = (const int16_t *)(const void *)(a + 4);
        const int8_t *qa = (const int8_t *)(a + 4 + B / 8);
        int32_t isum = 0, msum = 0;
        for (int g = 0; g < B / 16; g++) {
            int32_t s = 0;
            for (int e = 16 * g; e < 16 * g + 16; e++) s += (int32_t)u.q[e] * qa[e];
            isum += u.sc[g] * s;
            msum += u.mn[g] * bsum[g];
        }
        sum += da * (u.d * (float)isum - u.dmin * (float)msum);
    }
    return sum;
}
