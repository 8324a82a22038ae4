/*
 * matmul.c: products with stored weights, forward beside backward. Weights stay in their
 * stored dtype (memory-mapped). For many rows (prompt processing) the blocked product of gemm.c
 * converts bf16/f16 weights panel by panel while packing (f32 weights go to OpenBLAS sgemm);
 * for few rows (generation) threaded dot products convert on the fly, streaming each weight
 * byte once, which is memory-bound as it should be.
 */
/* ISO C mode (-std=c11) keeps GCC from fusing a * b + c; the dot products want fused
 * multiply-adds (fewer instructions per weight byte streamed). Clang fuses by default. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=fast")
#endif

#include <cblas.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "tensor/gemm.h"
#include "tensor/ops.h"

/* Below this many activation rows the on-the-fly dot product beats packing for the product. */
enum { SMALL_T = 4 };

/* One vector register of floats for the build's target (GCC/Clang vector extensions): 16 with
 * AVX-512, 8 with AVX, 4 otherwise (SSE2, NEON). */
#if defined(__AVX512F__)
#define DOT_VEC 16
#elif defined(__AVX__)
#define DOT_VEC 8
#else
#define DOT_VEC 4
#endif
typedef float vecf __attribute__((vector_size(DOT_VEC * 4)));
typedef uint32_t vecu __attribute__((vector_size(DOT_VEC * 4)));
typedef uint16_t vech __attribute__((vector_size(DOT_VEC * 2)));

static inline vecf loadf(const float *p) {
    vecf v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* bf16 is the high half of an f32: widen and shift. */
static inline vecf load_bf16(const uint16_t *p) {
    vech h;
    memcpy(&h, p, sizeof h);
    const vecu u = __builtin_convertvector(h, vecu) << 16;
    vecf f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Pairwise: log2(DOT_VEC) dependent additions instead of DOT_VEC (a row is only ~500 cycles). */
static inline float hsum(vecf v) {
    float t[DOT_VEC];
    memcpy(t, &v, sizeof t);
    for (int half = DOT_VEC / 2; half >= 1; half /= 2)
        for (int i = 0; i < half; i++) t[i] += t[i + half];
    return t[0];
}

static float dot_f32(const float *x, const float *w, int64_t n) {
    vecf a0 = {0}, a1 = {0};
    int64_t i = 0;
    for (; i + 2 * DOT_VEC <= n; i += 2 * DOT_VEC) {
        a0 += loadf(x + i) * loadf(w + i);
        a1 += loadf(x + i + DOT_VEC) * loadf(w + i + DOT_VEC);
    }
    float s = hsum(a0 + a1);
    for (; i < n; i++) s += x[i] * w[i];
    return s;
}

static float dot_bf16(const float *x, const uint16_t *w, int64_t n) {
    vecf a0 = {0}, a1 = {0};
    int64_t i = 0;
    for (; i + 2 * DOT_VEC <= n; i += 2 * DOT_VEC) {
        a0 += loadf(x + i) * load_bf16(w + i);
        a1 += loadf(x + i + DOT_VEC) * load_bf16(w + i + DOT_VEC);
    }
    float s = hsum(a0 + a1);
    for (; i < n; i++) s += x[i] * xle_bf16_to_f32(w[i]);
    return s;
}

/* Four consecutive rows (ld apart) against one x: each load of x serves four rows. Pays off
 * when x no longer fits in L1 beside the weight stream (long rows: the MLP down projection). */
static void dot4_bf16(const float *x, const uint16_t *w, int64_t ld, int64_t n, float out[4]) {
    vecf a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    int64_t i = 0;
    for (; i + DOT_VEC <= n; i += DOT_VEC) {
        const vecf xv = loadf(x + i);
        a0 += xv * load_bf16(w + i);
        a1 += xv * load_bf16(w + ld + i);
        a2 += xv * load_bf16(w + 2 * ld + i);
        a3 += xv * load_bf16(w + 3 * ld + i);
    }
    out[0] = hsum(a0), out[1] = hsum(a1), out[2] = hsum(a2), out[3] = hsum(a3);
    for (; i < n; i++)
        for (int r = 0; r < 4; r++) out[r] += x[i] * xle_bf16_to_f32(w[r * ld + i]);
}

static float dot_f16(const float *x, const uint16_t *w, int64_t n) {
    float acc[16] = {0};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) acc[j] += x[i + j] * xle_f16_to_f32(w[i + j]);
    float s = 0;
    for (int j = 0; j < 16; j++) s += acc[j];
    for (; i < n; i++) s += x[i] * xle_f16_to_f32(w[i]);
    return s;
}

float xle_dot_row(const float *x, const xle_tensor *w, int64_t row, int64_t n) {
    switch (w->dtype) {
    case XLE_F32: return dot_f32(x, (const float *)w->data + row * n, n);
    case XLE_BF16: return dot_bf16(x, (const uint16_t *)w->data + row * n, n);
    case XLE_F16: return dot_f16(x, (const uint16_t *)w->data + row * n, n);
    default: {
        float s = 0;
        for (int64_t i = 0; i < n; i++) s += x[i] * xle_tensor_get_f32(w, row * n + i);
        return s;
    }
    }
}

/* out[o] = x · w[o] for rows [o0, o1). */
static void dot_rows(float *out, const float *x, const xle_tensor *w, int64_t o0, int64_t o1,
                     int64_t n) {
    int64_t o = o0;
    if (w->dtype == XLE_BF16 && n * (int64_t)sizeof(float) > 16384) {
        const uint16_t *wd = w->data;
        for (; o + 4 <= o1; o += 4) dot4_bf16(x, wd + o * n, n, n, out + o);
    }
    for (; o < o1; o++) out[o] = xle_dot_row(x, w, o, n);
}

/* Converts rows [r0, r0 + nr) of w into scratch (f32, nr x n_in), in parallel. */
static void rows_to_f32(float *scratch, const xle_tensor *w, int64_t r0, int64_t nr, int64_t n_in) {
#pragma omp parallel for schedule(static) if(nr * n_in > XLE_PAR_MIN_WORK)
    for (int64_t r = 0; r < nr; r++)
        xle_tensor_row_to_f32(w, (r0 + r) * n_in, n_in, scratch + r * n_in);
}

static int64_t block_rows(int64_t n_in) {
    int64_t rows = (int64_t)XLE_MATMUL_SCRATCH / n_in;
    return rows < 1 ? 1 : rows;
}

/* Rows of weight w per chunk of the few-rows path: contiguous chunks of up to 1 MiB of weights
 * (long streams for the hardware prefetcher; 64 KiB chunks were 15% slower), about eight per
 * thread, a multiple of four rows (dot4_bf16). */
static int64_t rows_per_chunk(const xle_tensor *w, int threads) {
    const int64_t row_bytes = w->shape[1] * (int64_t)xle_dtype_size(w->dtype);
    int64_t chunk_bytes = w->shape[0] * row_bytes / (8 * (int64_t)threads);
    chunk_bytes = chunk_bytes < (1 << 14) ? (1 << 14) : chunk_bytes > (1 << 20) ? (1 << 20) : chunk_bytes;
    const int64_t chunk = chunk_bytes / (row_bytes > 0 ? row_bytes : 1);
    return chunk < 4 ? 4 : chunk / 4 * 4;
}

static void add_bias(float *out, const xle_tensor *bias, int64_t n_out, int T) {
    if (!bias || !bias->data) return;
    for (int t = 0; t < T; t++)
        for (int64_t o = 0; o < n_out; o++) out[(int64_t)t * n_out + o] += xle_tensor_get_f32(bias, o);
}

void xle_matmul_forward_many(float *const *outs, const float *in, const xle_tensor *const *ws,
                             const xle_tensor *const *biases, int n, int T, float *scratch) {
    if (T >= SMALL_T) {
        for (int i = 0; i < n; i++) xle_matmul_forward(outs[i], in, ws[i], biases ? biases[i] : NULL, T, scratch);
        return;
    }
    /* Few rows: memory-bound dot products. The chunks of all n weights form one work list,
     * handed out dynamically, so that a thread slowed by the rest of the machine does not hold
     * the others at a barrier, and there is one barrier for all n products. */
    enum { MAX_MANY = 8 };
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    int64_t chunk[MAX_MANY], first[MAX_MANY + 1], work = 0;
    first[0] = 0;
    for (int i = 0; i < n && i < MAX_MANY; i++) {
        chunk[i] = rows_per_chunk(ws[i], threads);
        first[i + 1] = first[i] + (ws[i]->shape[0] + chunk[i] - 1) / chunk[i];
        work += ws[i]->shape[0] * ws[i]->shape[1] * T;
    }
    const int n_here = n < MAX_MANY ? n : MAX_MANY;
#pragma omp parallel for schedule(dynamic, 1) if(work > XLE_PAR_MIN_WORK)
    for (int64_t c = 0; c < first[n_here]; c++) {
        int i = 0;
        while (c >= first[i + 1]) i++;
        const xle_tensor *w = ws[i];
        const int64_t n_out = w->shape[0], n_in = w->shape[1], o0 = (c - first[i]) * chunk[i];
        const int64_t o1 = o0 + chunk[i] < n_out ? o0 + chunk[i] : n_out;
        for (int t = 0; t < T; t++)
            dot_rows(outs[i] + (int64_t)t * n_out, in + (int64_t)t * n_in, w, o0, o1, n_in);
    }
    for (int i = 0; i < n_here; i++) add_bias(outs[i], biases ? biases[i] : NULL, ws[i]->shape[0], T);
    if (n > MAX_MANY)
        xle_matmul_forward_many(outs + MAX_MANY, in, ws + MAX_MANY, biases ? biases + MAX_MANY : NULL,
                                n - MAX_MANY, T, scratch);
}

void xle_matmul_forward(float *out, const float *in, const xle_tensor *w, const xle_tensor *bias,
                        int T, float *scratch) {
    const int64_t n_out = w->shape[0], n_in = w->shape[1];
    if (T < SMALL_T) {
        xle_matmul_forward_many(&out, in, &w, &bias, 1, T, scratch);
        return;
    }
    if (w->dtype == XLE_F32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, (int)n_out, (int)n_in, 1.0f, in,
                    (int)n_in, (const float *)w->data, (int)n_in, 0.0f, out, (int)n_out);
    } else {
        /* bf16/f16 weights: converted panel by panel inside the product, read once. */
        const xle_gemm_rhs rhs = {w->data, w->dtype, n_in, 1};
        xle_gemm_parallel(T, n_out, n_in, in, n_in, &rhs, out, n_out, 0, scratch, XLE_MATMUL_SCRATCH);
    }
    add_bias(out, bias, n_out, T);
}

void xle_matmul_backward(float *din, float *dw, float *dbias, const float *dout, const float *in,
                         const xle_tensor *w, int T, float *scratch) {
    const int64_t n_out = w->shape[0], n_in = w->shape[1];
    if (din) {
        if (w->dtype == XLE_F32) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, (int)n_in, (int)n_out, 1.0f,
                        dout, (int)n_out, (const float *)w->data, (int)n_in, 1.0f, din, (int)n_in);
        } else {
            const int64_t step = block_rows(n_in);
            for (int64_t r0 = 0; r0 < n_out; r0 += step) {
                int64_t nr = n_out - r0 < step ? n_out - r0 : step;
                rows_to_f32(scratch, w, r0, nr, n_in);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, (int)n_in, (int)nr, 1.0f,
                            dout + r0, (int)n_out, scratch, (int)n_in, 1.0f, din, (int)n_in);
            }
        }
    }
    if (dw)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n_out, (int)n_in, T, 1.0f, dout,
                    (int)n_out, in, (int)n_in, 1.0f, dw, (int)n_in);
    if (dbias)
        for (int t = 0; t < T; t++)
            for (int64_t o = 0; o < n_out; o++) dbias[o] += dout[(int64_t)t * n_out + o];
}
