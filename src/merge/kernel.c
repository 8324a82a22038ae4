/*
 * kernel.c: the arithmetic of merging, one output row at a time (so any thread may take any
 * row and the result never depends on how rows were shared out): reading rows of any stored
 * dtype into f32 blocks (with the RoPE row order of each input), linear / task arithmetic /
 * TIES / DARE-TIES on a block, rounding to the output dtype; the magnitude histograms from
 * which the TIES trim threshold is selected exactly; and the counter-based DARE mask.
 * Summation order over models is fixed (model 0 first), in f32 (docs/merging.md).
 */
#include <math.h>
#include <string.h>

#include "merge/merge_internal.h"

/* ---- DARE mask: a hash of (seed, model, tensor name, index), no RNG state ------------------ */

/* splitmix64's finalizer: a bijection of 64-bit words that mixes every bit. */
static inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t xle_merge_name_hash(const char *name) {
    uint64_t h = 0xCBF29CE484222325ull;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) h = (h ^ *p) * 0x100000001B3ull;
    return h;
}

uint64_t xle_merge_dare_stream(uint64_t seed, int model, uint64_t name_hash) {
    return mix64(seed ^ mix64(name_hash ^ mix64((uint64_t)model + 1)));
}

int xle_merge_dare_keep(uint64_t stream, int64_t index, float density) {
    uint64_t h = mix64(stream + ((uint64_t)index + 1) * 0x9E3779B97F4A7C15ull);
    /* uniform u = (h >> 11) / 2^53 in [0, 1); keep when u < density (exact in double) */
    return (double)(h >> 11) < (double)density * 9007199254740992.0;
}

/* ---- reading and writing rows ------------------------------------------------------------- */

/* Converts n elements from element `first` of t to f32. f32 and bf16 (the common cases) are
 * inlined here because a call per element would dominate the merge; the rest go through the
 * core converter. */
static void load_f32(const xle_tensor *t, int64_t first, int64_t n, float *dst) {
    if (t->dtype == XLE_BF16) {
        const uint16_t *s = (const uint16_t *)t->data + first;
        for (int64_t i = 0; i < n; i++) {
            uint32_t bits = (uint32_t)s[i] << 16;
            memcpy(&dst[i], &bits, 4);
        }
    } else if (t->dtype == XLE_F32) {
        memcpy(dst, (const float *)t->data + first, (size_t)n * sizeof(float));
    } else {
        xle_tensor_row_to_f32(t, first, n, dst);
    }
}

/* Same rounding as xle_f32_to_bf16 (nearest even, NaN kept quiet), inlined for speed. */
static inline uint16_t to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40);
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

static void store(xle_dtype dt, const float *src, int64_t n, void *dst, int64_t first) {
    switch (dt) {
    case XLE_BF16:
        for (int64_t i = 0; i < n; i++) ((uint16_t *)dst)[first + i] = to_bf16(src[i]);
        break;
    case XLE_F16:
        for (int64_t i = 0; i < n; i++) ((uint16_t *)dst)[first + i] = xle_f32_to_f16(src[i]);
        break;
    case XLE_F64:
        for (int64_t i = 0; i < n; i++) ((double *)dst)[first + i] = (double)src[i];
        break;
    default:
        memcpy((float *)dst + first, src, (size_t)n * sizeof(float));
    }
}

/* The stored row of an input holding canonical row c. */
static inline int64_t source_row(const xle_merge_tensor *t, int interleaved, int64_t c, int hd) {
    return t->rope_rows && interleaved ? xle_merge_interleaved_row(c, hd) : c;
}

static inline uint32_t abs_bits(float x) {
    uint32_t b;
    memcpy(&b, &x, 4);
    return b & 0x7fffffffu;
}

size_t xle_merge_scratch_floats(int n_models) {
    /* base block, one block per model, the output block, and n_models int64 counters */
    return (size_t)(n_models + 2) * XLE_MERGE_BLOCK + 2 * (size_t)n_models;
}

/* Loads the base (when there is one) and every model for canonical row c, columns
 * [col0, col0 + nb), into scratch: base at 0, model i at (i + 1) * BLOCK. */
static void load_inputs(const xle_merge_kernel *k, int64_t c, int64_t col0, int64_t nb, float *scratch) {
    const xle_merge_plan *p = k->plan;
    const xle_merge_tensor *t = k->t;
    int hd = p->ref->cfg.head_dim;
    if (t->base)
        load_f32(t->base, source_row(t, p->base_interleaved, c, hd) * t->cols + col0, nb, scratch);
    for (int i = 0; i < p->n_models; i++)
        load_f32(t->src[i], source_row(t, p->interleaved[i], c, hd) * t->cols + col0, nb,
                 scratch + (size_t)(i + 1) * XLE_MERGE_BLOCK);
}

/* ---- the methods on one block --------------------------------------------------------------- */

static float weight_of(const xle_merge_plan *p, int i) { return p->opts.weights ? p->opts.weights[i] : 1.0f; }

/* Σ wᵢ in f32, model 0 first (the divisor of normalized linear and task arithmetic). */
static float weight_sum(const xle_merge_plan *p) {
    float s = 0;
    for (int i = 0; i < p->n_models; i++) s = s + weight_of(p, i);
    return s;
}

static void block_linear(const xle_merge_plan *p, const float *in, int64_t nb, float *out) {
    float wsum = weight_sum(p);
    for (int64_t j = 0; j < nb; j++) out[j] = 0.0f;
    for (int i = 0; i < p->n_models; i++) {
        const float *m = in + (size_t)(i + 1) * XLE_MERGE_BLOCK;
        float w = weight_of(p, i);
        for (int64_t j = 0; j < nb; j++) out[j] = out[j] + w * m[j];
    }
    if (p->opts.normalize)
        for (int64_t j = 0; j < nb; j++) out[j] = out[j] / wsum;
}

static void block_task_arithmetic(const xle_merge_plan *p, const float *in, int64_t nb, float *out) {
    const float *b = in;
    float div = weight_sum(p);
    if (fabsf(div) < 1e-8f) div = 1.0f; /* mergekit's guard */
    for (int64_t j = 0; j < nb; j++) out[j] = 0.0f;
    for (int i = 0; i < p->n_models; i++) {
        const float *m = in + (size_t)(i + 1) * XLE_MERGE_BLOCK;
        float w = weight_of(p, i);
        for (int64_t j = 0; j < nb; j++) out[j] = out[j] + w * (m[j] - b[j]);
    }
    float lambda = p->opts.lambda;
    for (int64_t j = 0; j < nb; j++) {
        float mixed = p->opts.normalize ? out[j] / div : out[j];
        out[j] = b[j] + lambda * mixed;
    }
}

/* Turns model blocks into weighted trimmed (TIES) or dropped-and-rescaled (DARE) task vectors
 * in place. Returns the index + 1 of a model with a non-finite task-vector entry, else 0. */
static int block_sparsify(const xle_merge_kernel *k, int64_t c, int64_t col0, int64_t nb, float *in,
                          int64_t *eq_seen) {
    const xle_merge_plan *p = k->plan;
    const xle_merge_tensor *t = k->t;
    const float *b = in;
    int dare = p->opts.method == XLE_MERGE_DARE_TIES;
    float density = p->opts.density;
    int bad = 0;
    for (int i = 0; i < p->n_models; i++) {
        float *m = in + (size_t)(i + 1) * XLE_MERGE_BLOCK;
        float w = weight_of(p, i);
        const xle_merge_trim *tr = dare ? NULL : &k->trims[i];
        for (int64_t j = 0; j < nb; j++) {
            float d = m[j] - b[j];
            uint32_t ab = abs_bits(d);
            if (ab >= 0x7f800000u && !bad) bad = i + 1;
            int keep;
            if (dare) {
                keep = density >= 1.0f || xle_merge_dare_keep(k->streams[i], c * t->cols + col0 + j, density);
                if (keep && density < 1.0f) d = d / density;
            } else if (!tr->active || ab > tr->bits) {
                keep = 1;
            } else if (ab == tr->bits) {
                keep = !tr->equal_before || eq_seen[i] < tr->need;
                eq_seen[i]++;
            } else {
                keep = 0;
            }
            m[j] = w * (keep ? d : 0.0f);
        }
    }
    return bad;
}

static inline int sign_of(float x) { return (x > 0) - (x < 0); }

/* TIES election and disjoint merge over weighted sparse task vectors (in the model blocks). */
static void block_elect(const xle_merge_plan *p, const float *in, int64_t nb, float *out) {
    const float *b = in;
    float lambda = p->opts.lambda;
    for (int64_t j = 0; j < nb; j++) {
        float sum = 0.0f;
        for (int i = 0; i < p->n_models; i++) sum = sum + in[(size_t)(i + 1) * XLE_MERGE_BLOCK + j];
        int elected = sum >= 0.0f ? 1 : -1;
        float mixed = 0.0f, div = 0.0f;
        for (int i = 0; i < p->n_models; i++) {
            float wd = in[(size_t)(i + 1) * XLE_MERGE_BLOCK + j];
            if (sign_of(wd) == elected) {
                mixed = mixed + wd;
                div = div + weight_of(p, i);
            }
        }
        if (div == 0.0f) div = 1.0f;
        if (p->opts.normalize) mixed = mixed / div;
        out[j] = b[j] + lambda * mixed;
    }
}

int xle_merge_row(const xle_merge_kernel *k, int64_t o, void *dst, float *scratch) {
    const xle_merge_plan *p = k->plan;
    const xle_merge_tensor *t = k->t;
    int n = p->n_models, hd = p->ref->cfg.head_dim;
    int64_t c = t->rope_rows && p->out_interleaved ? xle_merge_canonical_row(o, hd) : o;
    float *out = scratch + (size_t)(n + 1) * XLE_MERGE_BLOCK;
    int64_t *eq_seen = (int64_t *)(void *)(scratch + (size_t)(n + 2) * XLE_MERGE_BLOCK);
    if (k->trims && c < t->shared_rows) /* equal_before covers the merged rows only */
        for (int i = 0; i < n; i++) eq_seen[i] = k->trims[i].equal_before ? k->trims[i].equal_before[c] : 0;
    int bad = 0;
    for (int64_t col0 = 0; col0 < t->cols; col0 += XLE_MERGE_BLOCK) {
        int64_t nb = t->cols - col0 < XLE_MERGE_BLOCK ? t->cols - col0 : XLE_MERGE_BLOCK;
        if (t->copy_only) {
            load_f32(t->ref, c * t->cols + col0, nb, out);
        } else if (c >= t->shared_rows) {
            load_f32(t->donor, c * t->cols + col0, nb, out); /* an extended-vocabulary row */
        } else {
            load_inputs(k, c, col0, nb, scratch);
            switch (p->opts.method) {
            case XLE_MERGE_LINEAR: block_linear(p, scratch, nb, out); break;
            case XLE_MERGE_TASK_ARITHMETIC: block_task_arithmetic(p, scratch, nb, out); break;
            default: {
                int b = block_sparsify(k, c, col0, nb, scratch, eq_seen);
                if (b && !bad) bad = b;
                block_elect(p, scratch, nb, out);
            }
            }
        }
        store(t->out_dtype, out, nb, dst, col0);
    }
    return bad;
}

/* ---- TIES threshold selection ---------------------------------------------------------------- */

int xle_merge_scan_row(const xle_merge_kernel *k, int pass, int64_t c, const uint32_t *hi,
                       uint64_t *hist, int64_t *counts, float *scratch) {
    const xle_merge_plan *p = k->plan;
    const xle_merge_tensor *t = k->t;
    int bad = 0;
    for (int64_t col0 = 0; col0 < t->cols; col0 += XLE_MERGE_BLOCK) {
        int64_t nb = t->cols - col0 < XLE_MERGE_BLOCK ? t->cols - col0 : XLE_MERGE_BLOCK;
        load_inputs(k, c, col0, nb, scratch);
        const float *b = scratch;
        for (int i = 0; i < p->n_models; i++) {
            if (!k->trims[i].active) continue;
            const float *m = scratch + (size_t)(i + 1) * XLE_MERGE_BLOCK;
            uint64_t *h = hist ? hist + (size_t)i * 65536 : NULL;
            for (int64_t j = 0; j < nb; j++) {
                uint32_t ab = abs_bits(m[j] - b[j]);
                if (ab >= 0x7f800000u && !bad) bad = i + 1;
                if (pass == 0) h[ab >> 16]++;
                else if (pass == 1) { if ((ab >> 16) == hi[i]) h[ab & 0xffffu]++; }
                else if (ab == k->trims[i].bits) counts[i]++;
            }
        }
    }
    return bad;
}

void xle_merge_hist_select(const uint64_t *hist, uint64_t k, uint32_t *bucket, uint64_t *above) {
    uint64_t cum = 0;
    for (int b = 65535; b >= 0; b--) {
        if (cum + hist[b] >= k) {
            *bucket = (uint32_t)b;
            *above = cum;
            return;
        }
        cum += hist[b];
    }
    *bucket = 0; /* k exceeds the count: cannot happen for 1 <= k <= n */
    *above = cum;
}
