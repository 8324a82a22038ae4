/*
 * kernel.c: the arithmetic of merging, one output row at a time (so any thread may take any
 * row and the result never depends on how rows were shared out): reading rows of any stored
 * dtype into f32 blocks (with the RoPE row order of each input), linear / task arithmetic /
 * TIES / DARE-TIES on a block, rounding to the output dtype; the magnitude histograms from
 * which the TIES trim threshold is selected exactly; and the counter-based DARE mask.
 * Summation order over models is fixed (model 0 first), in f32 (docs/merging.md).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
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

static inline uint64_t dare_hash(uint64_t stream, uint64_t index) {
    return mix64(stream + (index + 1) * 0x9E3779B97F4A7C15ull);
}

/* With u = (h >> 11) / 2^53 uniform in [0, 1), an entry is kept when u < density. For the
 * integer x = h >> 11 that is x < density * 2^53 (exact in double), i.e. x < ceil(density * 2^53):
 * an integer comparison, which the loops below can vectorize. */
static inline uint64_t dare_threshold(double density) {
    return (uint64_t)ceil(density * 9007199254740992.0);
}

int xle_merge_dare_keep(uint64_t stream, int64_t index, double density) {
    return (dare_hash(stream, (uint64_t)index) >> 11) < dare_threshold(density);
}

/* ---- TIES: how many entries a trim keeps -------------------------------------------------- */

/* max(1, floor(density · n)) computed exactly for the decimal the user wrote: the shortest
 * decimal that reads back as this double (0.7, not 0.6999999999999999555910790149937...) as
 * mantissa · 10^exp, then an integer product and division. In plain double arithmetic the
 * rounding of density can put density · n just below an integer it equals (0.7 · 27200 is
 * 19040; the f32 0.7 gives 19039.9996...). */
int64_t xle_merge_keep_count(double density, int64_t n) {
    if (n <= 0) return 0;
    if (!(density > 0)) return 1;
    if (density >= 1) return n;
    char buf[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*e", prec - 1, density);
        if (strtod(buf, NULL) == density) break;
    }
    /* buf is "d.ddddde-XX": digits into an integer mantissa, exponent adjusted for them */
    unsigned __int128 mant = 0;
    int digits_after_point = 0, seen_point = 0;
    const char *p = buf;
    for (; *p && *p != 'e'; p++) {
        if (*p == '.') {
            seen_point = 1;
            continue;
        }
        mant = mant * 10 + (unsigned)(*p - '0');
        digits_after_point += seen_point;
    }
    int exp10 = (*p == 'e' ? atoi(p + 1) : 0) - digits_after_point; /* density = mant · 10^exp10 */
    unsigned __int128 prod = mant * (unsigned __int128)n, keep;
    if (exp10 >= 0) {
        keep = (unsigned __int128)n; /* density >= 1: handled above */
    } else if (exp10 < -38) {
        keep = 0;
    } else {
        unsigned __int128 div = 1;
        for (int i = 0; i < -exp10; i++) div *= 10;
        keep = prod / div;
    }
    if (keep < 1) keep = 1;
    if (keep > (unsigned __int128)n) keep = (unsigned __int128)n;
    return (int64_t)keep;
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

/* Scratch layout, in blocks of XLE_MERGE_BLOCK floats: the base, one per model, the output,
 * two temporaries; then n_models int64 counters. */
size_t xle_merge_scratch_floats(int n_models) {
    return (size_t)(n_models + 4) * XLE_MERGE_BLOCK + 2 * (size_t)n_models;
}

int64_t *xle_merge_scratch_counters(float *scratch, int n_models) {
    return (int64_t *)(void *)(scratch + (size_t)(n_models + 4) * XLE_MERGE_BLOCK);
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

/* Model i's weight for this tensor (per-model and per-layer values are resolved by the plan). */
static float weight_of(const xle_merge_kernel *k, int i) { return k->t->weights[i]; }

/* Σ wᵢ in f32, model 0 first (the divisor of normalized linear and task arithmetic). */
static float weight_sum(const xle_merge_kernel *k) {
    float s = 0;
    for (int i = 0; i < k->plan->n_models; i++) s = s + weight_of(k, i);
    return s;
}

static void block_linear(const xle_merge_kernel *k, const float *in, int64_t nb, float *out) {
    const xle_merge_plan *p = k->plan;
    float wsum = weight_sum(k);
    for (int64_t j = 0; j < nb; j++) out[j] = 0.0f;
    for (int i = 0; i < p->n_models; i++) {
        const float *m = in + (size_t)(i + 1) * XLE_MERGE_BLOCK;
        float w = weight_of(k, i);
        for (int64_t j = 0; j < nb; j++) out[j] = out[j] + w * m[j];
    }
    if (p->opts.normalize)
        for (int64_t j = 0; j < nb; j++) out[j] = out[j] / wsum;
}

static void block_task_arithmetic(const xle_merge_kernel *k, const float *in, int64_t nb, float *out) {
    const xle_merge_plan *p = k->plan;
    const float *b = in;
    float div = weight_sum(k);
    if (fabsf(div) < 1e-8f) div = 1.0f; /* mergekit's guard */
    for (int64_t j = 0; j < nb; j++) out[j] = 0.0f;
    for (int i = 0; i < p->n_models; i++) {
        const float *m = in + (size_t)(i + 1) * XLE_MERGE_BLOCK;
        float w = weight_of(k, i);
        for (int64_t j = 0; j < nb; j++) out[j] = out[j] + w * (m[j] - b[j]);
    }
    float lambda = p->opts.lambda;
    for (int64_t j = 0; j < nb; j++) {
        float mixed = p->opts.normalize ? out[j] / div : out[j];
        out[j] = b[j] + lambda * mixed;
    }
}

/* Turns model blocks into task vectors in place; returns the index + 1 of a model with a
 * non-finite entry, else 0. Branch-free so that it vectorizes. */
static int block_task_vectors(const xle_merge_plan *p, float *in, int64_t nb) {
    const float *b = in;
    int bad = 0;
    for (int i = 0; i < p->n_models; i++) {
        float *m = in + (size_t)(i + 1) * XLE_MERGE_BLOCK;
        uint32_t nonfinite = 0;
        for (int64_t j = 0; j < nb; j++) {
            m[j] = m[j] - b[j];
            nonfinite |= abs_bits(m[j]) >= 0x7f800000u;
        }
        if (nonfinite && !bad) bad = i + 1;
    }
    return bad;
}

/* DARE: weighted, randomly dropped and rescaled task vectors (in place), each model with its
 * own density. */
static void block_dare(const xle_merge_kernel *k, int64_t c, int64_t col0, int64_t nb, float *in) {
    const xle_merge_plan *p = k->plan;
    uint64_t first = (uint64_t)(c * k->t->cols + col0);
    for (int i = 0; i < p->n_models; i++) {
        float *m = in + (size_t)(i + 1) * XLE_MERGE_BLOCK;
        float w = weight_of(k, i);
        double rho = k->t->densities[i];
        /* the rescale divides in f32 like mergekit's f32 tensor by a Python float */
        float density = (float)rho;
        uint64_t thr = dare_threshold(rho);
        if (rho >= 1.0) { /* nothing dropped, nothing rescaled (mergekit: density >= 1) */
            for (int64_t j = 0; j < nb; j++) m[j] = w * m[j];
            continue;
        }
        uint64_t stream = k->streams[i];
        for (int64_t j = 0; j < nb; j++) {
            int keep = (dare_hash(stream, first + (uint64_t)j) >> 11) < thr;
            float rescaled = m[j] / density;
            m[j] = w * (keep ? rescaled : 0.0f);
        }
    }
}

/* DARE-linear: the weighted sparse task vectors summed (no sign election), divided by Σ wᵢ when
 * normalized (mergekit's guard for |Σ wᵢ| < 1e-8), scaled by λ and added to the base. */
static void block_sum(const xle_merge_kernel *k, const float *in, int64_t nb, float *out) {
    const xle_merge_plan *p = k->plan;
    const float *b = in;
    float div = weight_sum(k);
    if (fabsf(div) < 1e-8f) div = 1.0f;
    for (int64_t j = 0; j < nb; j++) out[j] = 0.0f;
    for (int i = 0; i < p->n_models; i++) {
        const float *wd = in + (size_t)(i + 1) * XLE_MERGE_BLOCK;
        for (int64_t j = 0; j < nb; j++) out[j] = out[j] + wd[j];
    }
    float lambda = p->opts.lambda;
    for (int64_t j = 0; j < nb; j++) {
        float mixed = p->opts.normalize ? out[j] / div : out[j];
        out[j] = b[j] + lambda * mixed;
    }
}

/* TIES trim: weighted kept task-vector entries (in place). Entries equal to the threshold are
 * counted in canonical order (eq_seen[i]) only when not all of them are kept. */
static void block_trim(const xle_merge_kernel *k, int64_t nb, float *in, int64_t *eq_seen) {
    const xle_merge_plan *p = k->plan;
    for (int i = 0; i < p->n_models; i++) {
        float *m = in + (size_t)(i + 1) * XLE_MERGE_BLOCK;
        float w = weight_of(k, i);
        const xle_merge_trim *tr = &k->trims[i];
        if (!tr->active) {
            for (int64_t j = 0; j < nb; j++) m[j] = w * m[j];
            continue;
        }
        uint32_t bits = tr->bits;
        /* Entries equal to the threshold in this block: when all of them are kept (or none),
         * the block needs no counting; only the block where the quota runs out does. */
        int64_t n_equal = 0;
        if (tr->equal_before)
            for (int64_t j = 0; j < nb; j++) n_equal += abs_bits(m[j]) == bits;
        if (!tr->equal_before || eq_seen[i] + n_equal <= tr->need) {
            for (int64_t j = 0; j < nb; j++) m[j] = w * (abs_bits(m[j]) >= bits ? m[j] : 0.0f);
            eq_seen[i] += n_equal;
            continue;
        }
        if (eq_seen[i] >= tr->need) {
            for (int64_t j = 0; j < nb; j++) m[j] = w * (abs_bits(m[j]) > bits ? m[j] : 0.0f);
            eq_seen[i] += n_equal;
            continue;
        }
        for (int64_t j = 0; j < nb; j++) {
            uint32_t ab = abs_bits(m[j]);
            int keep = ab > bits;
            if (ab == bits) keep = eq_seen[i]++ < tr->need;
            m[j] = w * (keep ? m[j] : 0.0f);
        }
    }
}

/* TIES election and disjoint merge over the weighted sparse task vectors in the model blocks:
 * the elected sign is + where the sum is >= 0; a value agrees when its sign is the elected one
 * (0 agrees with neither). Written model by model over the block so that it vectorizes; every
 * entry's sums still run over the models in order. */
static void block_elect(const xle_merge_kernel *k, const float *in, int64_t nb, float *restrict out,
                        float *restrict mixed, float *restrict div) {
    const xle_merge_plan *p = k->plan;
    const float *b = in;
    float *restrict sum = out;
    for (int64_t j = 0; j < nb; j++) sum[j] = mixed[j] = div[j] = 0.0f;
    for (int i = 0; i < p->n_models; i++) {
        const float *wd = in + (size_t)(i + 1) * XLE_MERGE_BLOCK;
        for (int64_t j = 0; j < nb; j++) sum[j] = sum[j] + wd[j];
    }
    for (int i = 0; i < p->n_models; i++) {
        const float *restrict wd = in + (size_t)(i + 1) * XLE_MERGE_BLOCK;
        float w = weight_of(k, i);
        for (int64_t j = 0; j < nb; j++) {
            int plus = sum[j] >= 0.0f; /* a NaN sum elects minus */
            int agree = (plus & (wd[j] > 0.0f)) | (!plus & (wd[j] < 0.0f));
            mixed[j] = agree ? mixed[j] + wd[j] : mixed[j];
            div[j] = agree ? div[j] + w : div[j];
        }
    }
    float lambda = p->opts.lambda;
    int normalize = p->opts.normalize;
    for (int64_t j = 0; j < nb; j++) {
        float d = div[j] == 0.0f ? 1.0f : div[j];
        float mx = normalize ? mixed[j] / d : mixed[j];
        out[j] = b[j] + lambda * mx;
    }
}

int xle_merge_row(const xle_merge_kernel *k, int64_t o, void *dst, float *scratch) {
    const xle_merge_plan *p = k->plan;
    const xle_merge_tensor *t = k->t;
    int n = p->n_models, hd = p->ref->cfg.head_dim;
    int64_t c = t->rope_rows && p->out_interleaved ? xle_merge_canonical_row(o, hd) : o;
    float *out = scratch + (size_t)(n + 1) * XLE_MERGE_BLOCK;
    float *tmp1 = out + XLE_MERGE_BLOCK, *tmp2 = tmp1 + XLE_MERGE_BLOCK;
    int64_t *eq_seen = xle_merge_scratch_counters(scratch, n);
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
            case XLE_MERGE_LINEAR: block_linear(k, scratch, nb, out); break;
            case XLE_MERGE_TASK_ARITHMETIC: block_task_arithmetic(k, scratch, nb, out); break;
            default: {
                int b = block_task_vectors(p, scratch, nb);
                if (b && !bad) bad = b;
                if (p->opts.method == XLE_MERGE_DARE_LINEAR) {
                    block_dare(k, c, col0, nb, scratch);
                    block_sum(k, scratch, nb, out);
                    break;
                }
                if (p->opts.method == XLE_MERGE_DARE_TIES) block_dare(k, c, col0, nb, scratch);
                else block_trim(k, nb, scratch, eq_seen);
                block_elect(k, scratch, nb, out, tmp1, tmp2);
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
        int b = block_task_vectors(p, scratch, nb);
        if (b && !bad) bad = b;
        for (int i = 0; i < p->n_models; i++) {
            if (!k->trims[i].active) continue;
            const float *m = scratch + (size_t)(i + 1) * XLE_MERGE_BLOCK;
            uint64_t *h = hist ? hist + (size_t)i * 65536 : NULL;
            if (pass == 0) {
                for (int64_t j = 0; j < nb; j++) h[abs_bits(m[j]) >> 16]++;
            } else if (pass == 1) {
                for (int64_t j = 0; j < nb; j++) {
                    uint32_t ab = abs_bits(m[j]);
                    if ((ab >> 16) == hi[i]) h[ab & 0xffffu]++;
                }
            } else {
                int64_t eq = 0;
                uint32_t bits = k->trims[i].bits;
                for (int64_t j = 0; j < nb; j++) eq += abs_bits(m[j]) == bits;
                counts[i] += eq;
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
