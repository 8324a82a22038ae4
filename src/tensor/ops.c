/*
 * ops.c: the transformer's elementwise and attention operations, each forward followed by its
 * backward. Shapes are in the comments; T is the number of token rows.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "tensor/ops.h"

#include "tensor/gemm.h"

/* ---- RMSNorm: y = w * x / sqrt(mean(x²) + eps) --------------------------------------- */

void xle_rmsnorm_forward(float *out, float *rstd, const float *x, const xle_tensor *weight, int T,
                         int d, float eps) {
    xle_rmsnorm_offset_forward(out, rstd, x, weight, 0.0f, T, d, eps);
}

void xle_rmsnorm_backward(float *dx, float *dweight, const float *dout, const float *x,
                          const xle_tensor *weight, const float *rstd, int T, int d) {
    xle_rmsnorm_offset_backward(dx, dweight, dout, x, weight, 0.0f, rstd, T, d);
}

void xle_rmsnorm_offset_forward(float *out, float *rstd, const float *x, const xle_tensor *weight,
                                float w_offset, int T, int d, float eps) {
#pragma omp parallel for schedule(dynamic, 4) if((int64_t)T * d > XLE_PAR_MIN_WORK)
    for (int t = 0; t < T; t++) {
        const float *xt = x + (int64_t)t * d;
        double ss = 0;
        for (int i = 0; i < d; i++) ss += (double)xt[i] * xt[i];
        float r = (float)(1.0 / sqrt(ss / d + eps));
        rstd[t] = r;
        float *ot = out + (int64_t)t * d;
        for (int i = 0; i < d; i++) ot[i] = xt[i] * r * (w_offset + xle_tensor_get_f32(weight, i));
    }
}

void xle_rmsnorm_offset_backward(float *dx, float *dweight, const float *dout, const float *x,
                                 const xle_tensor *weight, float w_offset, const float *rstd, int T,
                                 int d) {
    /* with w' = w_offset + w: dx_i = r w'_i g_i - r³/d x_i Σ_j w'_j g_j x_j ;  dw_i = Σ_t g_i x_i r */
#pragma omp parallel for schedule(dynamic, 4) if((int64_t)T * d > XLE_PAR_MIN_WORK)
    for (int t = 0; t < T; t++) {
        const float *xt = x + (int64_t)t * d, *gt = dout + (int64_t)t * d;
        float r = rstd[t];
        double dot = 0;
        for (int i = 0; i < d; i++)
            dot += (double)(w_offset + xle_tensor_get_f32(weight, i)) * gt[i] * xt[i];
        float c = (float)(dot * r * r * r / d);
        float *dxt = dx + (int64_t)t * d;
        for (int i = 0; i < d; i++)
            dxt[i] += r * (w_offset + xle_tensor_get_f32(weight, i)) * gt[i] - c * xt[i];
    }
    if (dweight)
        for (int t = 0; t < T; t++) {
            const float *xt = x + (int64_t)t * d, *gt = dout + (int64_t)t * d;
            for (int i = 0; i < d; i++) dweight[i] += gt[i] * xt[i] * rstd[t];
        }
}

/* ---- LayerNorm with bias ------------------------------------------------------------------ */

void xle_layernorm_forward(float *out, float *rstd, const float *x, const xle_tensor *weight,
                           const xle_tensor *bias, int T, int d, float eps) {
#pragma omp parallel for schedule(dynamic, 4) if((int64_t)T * d > XLE_PAR_MIN_WORK)
    for (int t = 0; t < T; t++) {
        const float *xt = x + (int64_t)t * d;
        double sum = 0, ss = 0;
        for (int i = 0; i < d; i++) sum += xt[i];
        const double mean = sum / d;
        for (int i = 0; i < d; i++) ss += ((double)xt[i] - mean) * ((double)xt[i] - mean);
        float r = (float)(1.0 / sqrt(ss / d + eps));
        rstd[t] = r;
        float *ot = out + (int64_t)t * d;
        const float m = (float)mean;
        for (int i = 0; i < d; i++) {
            float v = (xt[i] - m) * r * xle_tensor_get_f32(weight, i);
            ot[i] = bias && bias->data ? v + xle_tensor_get_f32(bias, i) : v;
        }
    }
}

void xle_layernorm_backward(float *dx, float *dweight, float *dbias, const float *dout,
                            const float *x, const xle_tensor *weight, const float *rstd, int T,
                            int d) {
    /* With xhat = (x - mean) r and gw_i = g_i w_i:
     * dx_i = r (gw_i - mean_j gw_j - xhat_i mean_j (gw_j xhat_j));
     * dw_i = Σ_t g_i xhat_i; db_i = Σ_t g_i. */
#pragma omp parallel for schedule(dynamic, 4) if((int64_t)T * d > XLE_PAR_MIN_WORK)
    for (int t = 0; t < T; t++) {
        const float *xt = x + (int64_t)t * d, *gt = dout + (int64_t)t * d;
        const float r = rstd[t];
        double sum = 0;
        for (int i = 0; i < d; i++) sum += xt[i];
        const float mean = (float)(sum / d);
        double s_gw = 0, s_gwx = 0;
        for (int i = 0; i < d; i++) {
            double gw = (double)gt[i] * xle_tensor_get_f32(weight, i);
            s_gw += gw;
            s_gwx += gw * (xt[i] - mean) * r;
        }
        const float a = (float)(s_gw / d), b = (float)(s_gwx / d);
        float *dxt = dx + (int64_t)t * d;
        for (int i = 0; i < d; i++) {
            float xhat = (xt[i] - mean) * r;
            dxt[i] += r * (gt[i] * xle_tensor_get_f32(weight, i) - a - xhat * b);
        }
    }
    if (dweight || dbias)
        for (int t = 0; t < T; t++) {
            const float *xt = x + (int64_t)t * d, *gt = dout + (int64_t)t * d;
            double sum = 0;
            for (int i = 0; i < d; i++) sum += xt[i];
            const float mean = (float)(sum / d);
            for (int i = 0; i < d; i++) {
                if (dweight) dweight[i] += gt[i] * (xt[i] - mean) * rstd[t];
                if (dbias) dbias[i] += gt[i];
            }
        }
}

/* ---- RoPE: rotate pairs by pos * inv_freq ------------------------------------------------ */

static void rope_apply(float *x, const int *pos, const double *inv_freq, int T, int n_heads, int hd,
                       int rot_dim, int interleaved, double direction) {
    const int half = rot_dim / 2;
#pragma omp parallel for schedule(dynamic, 4) if((int64_t)T * n_heads * hd > XLE_PAR_MIN_WORK)
    for (int t = 0; t < T; t++) {
        for (int j = 0; j < half; j++) {
            double angle = (double)pos[t] * inv_freq[j];
            float c = (float)cos(angle), s = (float)(direction * sin(angle));
            for (int h = 0; h < n_heads; h++) {
                float *xh = x + (int64_t)t * n_heads * hd + (int64_t)h * hd;
                int a = interleaved ? 2 * j : j, b = interleaved ? 2 * j + 1 : j + half;
                float x1 = xh[a], x2 = xh[b];
                xh[a] = x1 * c - x2 * s;
                xh[b] = x2 * c + x1 * s;
            }
        }
    }
}

void xle_rope_forward(float *x, const int *pos, const double *inv_freq, int T, int n_heads, int hd,
                      int interleaved) {
    rope_apply(x, pos, inv_freq, T, n_heads, hd, hd, interleaved, 1.0);
}

void xle_rope_backward(float *dx, const int *pos, const double *inv_freq, int T, int n_heads,
                       int hd, int interleaved) {
    /* A rotation's transpose is the rotation by the opposite angle. */
    rope_apply(dx, pos, inv_freq, T, n_heads, hd, hd, interleaved, -1.0);
}

void xle_rope_partial_forward(float *x, const int *pos, const double *inv_freq, int T, int n_heads,
                              int hd, int rot_dim, int interleaved) {
    rope_apply(x, pos, inv_freq, T, n_heads, hd, rot_dim, interleaved, 1.0);
}

void xle_rope_partial_backward(float *dx, const int *pos, const double *inv_freq, int T,
                               int n_heads, int hd, int rot_dim, int interleaved) {
    rope_apply(dx, pos, inv_freq, T, n_heads, hd, rot_dim, interleaved, -1.0);
}

/* ---- SwiGLU: key = silu(gate) * up ------------------------------------------------------- */

void xle_swiglu_forward(float *key, const float *gate, const float *up, int64_t n) {
#pragma omp parallel for schedule(dynamic, 16384) if(n > XLE_PAR_MIN_WORK)
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i];
        key[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

void xle_swiglu_backward(float *dgate, float *dup, const float *dkey, const float *gate,
                         const float *up, int64_t n) {
#pragma omp parallel for schedule(dynamic, 16384) if(n > XLE_PAR_MIN_WORK)
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i], sig = 1.0f / (1.0f + expf(-g));
        float silu = g * sig;
        dgate[i] += dkey[i] * up[i] * sig * (1.0f + g * (1.0f - sig));
        dup[i] += dkey[i] * silu;
    }
}

/* ---- GELU, tanh approximation ------------------------------------------------------------- */

#define XLE_GELU_C 0.7978845608028654f /* sqrt(2/pi) */

void xle_gelu_tanh_forward(float *key, const float *pre, int64_t n) {
#pragma omp parallel for schedule(dynamic, 16384) if(n > XLE_PAR_MIN_WORK)
    for (int64_t i = 0; i < n; i++) {
        float x = pre[i];
        key[i] = 0.5f * x * (1.0f + tanhf(XLE_GELU_C * (x + 0.044715f * x * x * x)));
    }
}

void xle_gelu_tanh_backward(float *dpre, const float *dkey, const float *pre, int64_t n) {
#pragma omp parallel for schedule(dynamic, 16384) if(n > XLE_PAR_MIN_WORK)
    for (int64_t i = 0; i < n; i++) {
        float x = pre[i], th = tanhf(XLE_GELU_C * (x + 0.044715f * x * x * x));
        float dth = (1.0f - th * th) * XLE_GELU_C * (1.0f + 3.0f * 0.044715f * x * x);
        dpre[i] += dkey[i] * (0.5f * (1.0f + th) + 0.5f * x * dth);
    }
}

/* ---- GeGLU: key = gelu_tanh(gate) * up --------------------------------------------------- */

void xle_geglu_forward(float *key, const float *gate, const float *up, int64_t n) {
#pragma omp parallel for schedule(dynamic, 16384) if(n > XLE_PAR_MIN_WORK)
    for (int64_t i = 0; i < n; i++) {
        float x = gate[i];
        key[i] = 0.5f * x * (1.0f + tanhf(XLE_GELU_C * (x + 0.044715f * x * x * x))) * up[i];
    }
}

void xle_geglu_backward(float *dgate, float *dup, const float *dkey, const float *gate,
                        const float *up, int64_t n) {
#pragma omp parallel for schedule(dynamic, 16384) if(n > XLE_PAR_MIN_WORK)
    for (int64_t i = 0; i < n; i++) {
        float x = gate[i], th = tanhf(XLE_GELU_C * (x + 0.044715f * x * x * x));
        float dth = (1.0f - th * th) * XLE_GELU_C * (1.0f + 3.0f * 0.044715f * x * x);
        dgate[i] += dkey[i] * up[i] * (0.5f * (1.0f + th) + 0.5f * x * dth);
        dup[i] += dkey[i] * 0.5f * x * (1.0f + th);
    }
}

/* ---- Soft-capping: y = c tanh(x / c) ------------------------------------------------------ */

void xle_softcap_forward(float *x, float cap, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = cap * tanhf(x[i] / cap);
}

void xle_softcap_backward(float *dx, const float *y, float cap, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float t = y[i] / cap;
        dx[i] *= 1.0f - t * t;
    }
}

/* ---- Attention ---------------------------------------------------------------------------- */

/* Queries per block of the blocked attention, and the fewest queries worth blocking: below
 * that attention is under 1% of a layer's work (it grows with n², the projections with n) and
 * the query-at-a-time loop is kept. */
enum { ATT_QBLOCK = 64, ATT_MIN_QUERIES = 64 };

/* The first key position query position qpos sees. */
static int first_key(int qpos, int window) {
    return (window > 0 && qpos - window + 1 > 0) ? qpos - window + 1 : 0;
}

/* Block of queries [i0, i0 + bq) of head h as two matrix products: scores S = Q Kᵀ over the keys
 * the block can see, a masked softmax per row, then out = P V. buf holds
 * ATT_QBLOCK * n_keys + XLE_GEMM_PACK_FLOATS floats. */
static void attention_block(float *out, float *probs, const float *q, const float *k,
                            const float *v, int n, int n_past, int kv_stride, int n_heads,
                            int group, int hd, int window, float scale, float cap,
                            const float *slopes, int h, int i0, int bq, float *buf) {
    const int q_stride = n_heads * hd, g = h / group, n_keys = n_past + n;
    const int k_lo = first_key(n_past + i0, window), nk = n_past + i0 + bq - k_lo;
    float *S = buf, *pack = buf + (int64_t)ATT_QBLOCK * n_keys;
    const xle_gemm_rhs keys = {k + (int64_t)k_lo * kv_stride + (int64_t)g * hd, XLE_F32, kv_stride, 1};
    xle_gemm(bq, nk, hd, q + (int64_t)i0 * q_stride + (int64_t)h * hd, q_stride, &keys, S, nk, 0, pack);
    for (int r = 0; r < bq; r++) {
        const int qpos = n_past + i0 + r, lo = first_key(qpos, window) - k_lo, hi = qpos - k_lo;
        float *row = S + (int64_t)r * nk, mx = -INFINITY;
        for (int p = lo; p <= hi; p++) {
            row[p] *= scale;
            if (cap > 0) row[p] = cap * tanhf(row[p] / cap);
            if (slopes) row[p] += slopes[h] * (float)(k_lo + p - qpos); /* ALiBi */
            if (row[p] > mx) mx = row[p];
        }
        double sum = 0;
        for (int p = lo; p <= hi; p++) {
            row[p] = expf(row[p] - mx);
            sum += row[p];
        }
        const float inv = (float)(1.0 / sum);
        for (int p = 0; p < lo; p++) row[p] = 0;
        for (int p = lo; p <= hi; p++) row[p] *= inv;
        for (int p = hi + 1; p < nk; p++) row[p] = 0;
        if (probs) {
            float *dst = probs + ((int64_t)h * n + i0 + r) * n_keys;
            memset(dst, 0, (size_t)n_keys * sizeof(float));
            memcpy(dst + k_lo, row, (size_t)nk * sizeof(float));
        }
    }
    const xle_gemm_rhs values = {v + (int64_t)k_lo * kv_stride + (int64_t)g * hd, XLE_F32, kv_stride, 0};
    xle_gemm(bq, hd, nk, S, nk, &values, out + (int64_t)i0 * q_stride + (int64_t)h * hd, q_stride, 0, pack);
}

/* Many queries: blocks of queries per head as matrix products, heads and blocks spread over
 * the threads (largest blocks first). Returns 0 (nothing done) when the buffers cannot be had. */
static int attention_blocked(float *out, float *probs, const float *q, const float *k,
                             const float *v, int n, int n_past, int kv_stride, int n_heads,
                             int n_kv_heads, int hd, int window, float scale, float cap,
                             const float *slopes) {
    const int n_keys = n_past + n, n_blocks = (n + ATT_QBLOCK - 1) / ATT_QBLOCK;
    const int64_t per_thread = (int64_t)ATT_QBLOCK * n_keys + XLE_GEMM_PACK_FLOATS;
    const int64_t tasks = (int64_t)n_heads * n_blocks;
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    if (threads > tasks) threads = (int)tasks;
    float *bufs = malloc((size_t)(threads * per_thread) * sizeof(float));
    if (!bufs) return 0;
#pragma omp parallel num_threads(threads) if((int64_t)n_heads * n * n_keys * hd > XLE_PAR_MIN_WORK)
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < tasks; t++) {
            const int b = n_blocks - 1 - (int)(t / n_heads), h = (int)(t % n_heads);
            const int i0 = b * ATT_QBLOCK, bq = n - i0 < ATT_QBLOCK ? n - i0 : ATT_QBLOCK;
            attention_block(out, probs, q, k, v, n, n_past, kv_stride, n_heads, n_heads / n_kv_heads,
                            hd, window, scale, cap, slopes, h, i0, bq, bufs + tid * per_thread);
        }
    }
    free(bufs);
    return 1;
}

void xle_attention_forward(float *out, float *probs, const float *q, const float *k,
                           const float *v, int n, int n_past, int kv_stride, int n_heads,
                           int n_kv_heads, int hd, int window) {
    xle_attention_forward_scaled(out, probs, q, k, v, n, n_past, kv_stride, n_heads, n_kv_heads, hd,
                                 window, 1.0f / sqrtf((float)hd), 0.0f);
}

void xle_attention_forward_scaled(float *out, float *probs, const float *q, const float *k,
                                  const float *v, int n, int n_past, int kv_stride, int n_heads,
                                  int n_kv_heads, int hd, int window, float scale, float cap) {
    xle_attention_forward_alibi(out, probs, q, k, v, n, n_past, kv_stride, n_heads, n_kv_heads, hd,
                                window, scale, cap, NULL);
}

void xle_alibi_slopes(int n_heads, float *slopes) {
    /* with p the largest power of two <= n_heads, heads h < p get base^(h+1), base = 2^(-8/p);
     * the heads beyond it the odd powers 1, 3, 5 ... of 2^(-4/p) (every other slope of 2p heads).
     * The bases are rounded to float first, as transformers holds them. */
    int p = 1;
    while (p * 2 <= n_heads) p *= 2;
    const float base = (float)pow(2.0, -8.0 / p), extra = (float)pow(2.0, -4.0 / p);
    for (int h = 0; h < n_heads; h++)
        slopes[h] = h < p ? (float)pow((double)base, h + 1) : (float)pow((double)extra, 2 * (h - p) + 1);
}

void xle_attention_forward_alibi(float *out, float *probs, const float *q, const float *k,
                                 const float *v, int n, int n_past, int kv_stride, int n_heads,
                                 int n_kv_heads, int hd, int window, float scale, float cap,
                                 const float *slopes) {
    if (n >= ATT_MIN_QUERIES &&
        attention_blocked(out, probs, q, k, v, n, n_past, kv_stride, n_heads, n_kv_heads, hd, window,
                          scale, cap, slopes))
        return;
    /* Few queries (generation): one query and head at a time. */
    const int n_keys = n_past + n, group = n_heads / n_kv_heads, q_stride = n_heads * hd;
#pragma omp parallel if((int64_t)n_heads * n * n_keys * hd > XLE_PAR_MIN_WORK)
    {
        float *scores = NULL;
        /* One row of scores per thread, on the stack when small. */
        float stack_scores[4096];
        float *heap_scores = NULL;
        if (n_keys <= 4096) {
            scores = stack_scores;
        } else {
            heap_scores = malloc((size_t)n_keys * sizeof(float));
            scores = heap_scores;
        }
#pragma omp for collapse(2) schedule(dynamic, 1)
        for (int h = 0; h < n_heads; h++) {
            for (int i = 0; i < n; i++) {
                const int g = h / group, qpos = n_past + i;
                const int lo = (window > 0 && qpos - window + 1 > 0) ? qpos - window + 1 : 0;
                const float *qi = q + (int64_t)i * q_stride + (int64_t)h * hd;
                float mx = -INFINITY;
                for (int p = lo; p <= qpos; p++) {
                    const float *kp = k + (int64_t)p * kv_stride + (int64_t)g * hd;
                    float s = 0;
                    for (int c = 0; c < hd; c++) s += qi[c] * kp[c];
                    s *= scale;
                    if (cap > 0) s = cap * tanhf(s / cap);
                    if (slopes) s += slopes[h] * (float)(p - qpos); /* ALiBi */
                    scores[p] = s;
                    if (s > mx) mx = s;
                }
                double sum = 0;
                for (int p = lo; p <= qpos; p++) {
                    scores[p] = expf(scores[p] - mx);
                    sum += scores[p];
                }
                float inv = (float)(1.0 / sum);
                float *oi = out + (int64_t)i * q_stride + (int64_t)h * hd;
                memset(oi, 0, (size_t)hd * sizeof(float));
                for (int p = lo; p <= qpos; p++) {
                    float pr = scores[p] * inv;
                    const float *vp = v + (int64_t)p * kv_stride + (int64_t)g * hd;
                    for (int c = 0; c < hd; c++) oi[c] += pr * vp[c];
                    scores[p] = pr;
                }
                if (probs) {
                    float *row = probs + ((int64_t)h * n + i) * n_keys;
                    memset(row, 0, (size_t)n_keys * sizeof(float));
                    for (int p = lo; p <= qpos; p++) row[p] = scores[p];
                }
            }
        }
        free(heap_scores);
    }
}

void xle_attention_backward(float *dq, float *dk, float *dv, const float *dout,
                            const float *probs, const float *q, const float *k, const float *v,
                            int n, int n_heads, int n_kv_heads, int hd) {
    xle_attention_backward_past(dq, dk, dv, dout, probs, q, k, v, n, 0, n_heads, n_kv_heads, hd);
}

void xle_attention_backward_past(float *dq, float *dk, float *dv, const float *dout,
                                 const float *probs, const float *q, const float *k, const float *v,
                                 int n, int n_past, int n_heads, int n_kv_heads, int hd) {
    xle_attention_backward_scaled(dq, dk, dv, dout, probs, q, k, v, n, n_past, n_heads, n_kv_heads,
                                  hd, 1.0f / sqrtf((float)hd), 0.0f);
}

void xle_attention_backward_scaled(float *dq, float *dk, float *dv, const float *dout,
                                   const float *probs, const float *q, const float *k,
                                   const float *v, int n, int n_past, int n_heads, int n_kv_heads,
                                   int hd, float scale, float cap) {
    const int group = n_heads / n_kv_heads, q_stride = n_heads * hd, kv_stride = n_kv_heads * hd;
    const int n_keys = n_past + n;
    /* Threads own whole kv heads so dk/dv accumulate without races. */
#pragma omp parallel if((int64_t)n_heads * n * n_keys * hd > XLE_PAR_MIN_WORK)
    {
        float *dp = malloc((size_t)(n_keys > 0 ? n_keys : 1) * sizeof(float));
#pragma omp for schedule(static)
        for (int g = 0; g < n_kv_heads; g++) {
            for (int h = g * group; h < (g + 1) * group; h++) {
                for (int i = 0; i < n; i++) {
                    const float *row = probs + ((int64_t)h * n + i) * n_keys;
                    const float *doi = dout + (int64_t)i * q_stride + (int64_t)h * hd;
                    const int last = n_past + i;
                    double pdp = 0;
                    for (int j = 0; j <= last; j++) {
                        if (row[j] == 0.0f) {
                            dp[j] = 0;
                            continue;
                        }
                        const float *vj = v + (int64_t)j * kv_stride + (int64_t)g * hd;
                        float s = 0;
                        for (int c = 0; c < hd; c++) s += doi[c] * vj[c];
                        dp[j] = s;
                        pdp += (double)row[j] * s;
                        float *dvj = dv + (int64_t)j * kv_stride + (int64_t)g * hd;
                        for (int c = 0; c < hd; c++) dvj[c] += row[j] * doi[c];
                    }
                    const float *qi = q + (int64_t)i * q_stride + (int64_t)h * hd;
                    float *dqi = dq + (int64_t)i * q_stride + (int64_t)h * hd;
                    for (int j = 0; j <= last; j++) {
                        if (row[j] == 0.0f) continue;
                        float ds = row[j] * (dp[j] - (float)pdp) * scale;
                        const float *kj = k + (int64_t)j * kv_stride + (int64_t)g * hd;
                        if (cap > 0) {
                            /* through cap·tanh(s/cap): the raw score again, from q and k */
                            float raw = 0;
                            for (int c = 0; c < hd; c++) raw += qi[c] * kj[c];
                            float th = tanhf(raw * scale / cap);
                            ds *= 1.0f - th * th;
                        }
                        float *dkj = dk + (int64_t)j * kv_stride + (int64_t)g * hd;
                        for (int c = 0; c < hd; c++) {
                            dqi[c] += ds * kj[c];
                            dkj[c] += ds * qi[c];
                        }
                    }
                }
            }
        }
        free(dp);
    }
}
