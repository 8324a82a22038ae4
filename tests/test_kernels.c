/*
 * test_kernels.c: the engine's compute kernels against plain double-precision references on
 * random data of awkward sizes: the blocked product xle_gemm (every dtype of the right operand,
 * stored transposed or not, partial tiles, inner sizes across the KC blocks, accumulation,
 * row strides wider than the rows), its threaded form above the threshold that splits it
 * (identical to the serial one, tile for tile), weight products with few rows (dot products, four rows at a time for long rows) and
 * many rows (blocked product), several products of one input in one pass, and blocked
 * attention (causal, sliding window, grouped heads, past keys, kept probabilities).
 * Every kernel variant built into the library that this CPU runs (tensor/kernels.h: AVX-512 with
 * BF16, AVX-512, AVX2, generic) is tested, each forced in turn through XLE_KERNELS; also the
 * in-register dtype conversions against the scalar ones (all 65,536 f16 values) and the
 * bf16-activation products (vdpbf16ps) against a reference with the activations rounded.
 */
#include "check.h"
#include "tensor/gemm.h"
#include "tensor/kernels.h"
#include "tensor/ops.h"

/* Stores v in dtype dt at element i of buf and returns the value actually stored. */
static float store_as(void *buf, xle_dtype dt, int64_t i, float v) {
    switch (dt) {
    case XLE_F32: ((float *)buf)[i] = v; return v;
    case XLE_BF16: ((uint16_t *)buf)[i] = xle_f32_to_bf16(v); return xle_bf16_to_f32(((uint16_t *)buf)[i]);
    case XLE_F16: ((uint16_t *)buf)[i] = xle_f32_to_f16(v); return xle_f16_to_f32(((uint16_t *)buf)[i]);
    default: ((double *)buf)[i] = v; return (float)((double *)buf)[i];
    }
}

/* One product of shape (M, N, K) with B of dtype dt, stored transposed or not, against a
 * double reference; also the threaded product, which must give the same bits. */
static void check_gemm(int64_t M, int64_t N, int64_t K, xle_dtype dt, int transposed,
                       int accumulate, xle_rng *rng) {
    const int64_t lda = K + 3, ldc = N + 5;
    const int64_t ldb = transposed ? K + 2 : N + 1, b_rows = transposed ? N : K;
    float *A = malloc((size_t)(M * lda + 1) * sizeof(float));
    void *B = malloc((size_t)(b_rows * ldb + 1) * xle_dtype_size(dt));
    double *Bval = malloc((size_t)(K * N + 1) * sizeof(double)); /* (k, n) at k * N + n */
    float *C = malloc((size_t)(M * ldc + 1) * sizeof(float));
    float *C2 = malloc((size_t)(M * ldc + 1) * sizeof(float));
    float *pack = malloc(XLE_GEMM_PACK_FLOATS * 4 * sizeof(float));
    CHECK(A && B && Bval && C && C2 && pack);
    for (int64_t i = 0; i < M * lda; i++) A[i] = xle_rng_normal(rng);
    for (int64_t r = 0; r < b_rows; r++)
        for (int64_t c = 0; c < ldb; c++) {
            float v = store_as(B, dt, r * ldb + c, xle_rng_normal(rng));
            if (transposed && c < K) Bval[c * N + r] = v;
            if (!transposed && c < N) Bval[r * N + c] = v;
        }
    for (int64_t i = 0; i < M * ldc; i++) C[i] = C2[i] = xle_rng_normal(rng);
    float *C0 = malloc((size_t)(M * ldc + 1) * sizeof(float));
    memcpy(C0, C, (size_t)(M * ldc) * sizeof(float));
    const xle_gemm_rhs rhs = {B, dt, ldb, transposed};
    xle_gemm(M, N, K, A, lda, &rhs, C, ldc, accumulate, pack);
    xle_gemm_parallel(M, N, K, A, lda, &rhs, C2, ldc, accumulate, pack, XLE_GEMM_PACK_FLOATS * 4);
    int bad = 0, differs = 0;
    for (int64_t i = 0; i < M && bad < 3; i++)
        for (int64_t j = 0; j < ldc; j++) {
            const float got = C[i * ldc + j];
            if (j >= N) { /* columns beyond N are never written */
                if (got != C0[i * ldc + j] && bad++ < 3) CHECK_MSG(0, "column %lld written", (long long)j);
                continue;
            }
            double ref = accumulate ? C0[i * ldc + j] : 0, mag = fabs(ref);
            for (int64_t k = 0; k < K; k++) {
                ref += (double)A[i * lda + k] * Bval[k * N + j];
                mag += fabs((double)A[i * lda + k] * Bval[k * N + j]);
            }
            if (!(fabs(got - ref) <= 1e-5 * mag + 1e-6) && bad++ < 3)
                CHECK_MSG(0, "M%lld N%lld K%lld %s t%d acc%d: C[%lld,%lld] = %.8g, reference %.8g",
                          (long long)M, (long long)N, (long long)K, xle_dtype_name(dt), transposed,
                          accumulate, (long long)i, (long long)j, got, ref);
            if (C2[i * ldc + j] != got) differs++;
        }
    CHECK_MSG(differs == 0, "threaded product differs from the serial one in %d elements", differs);
    free(A), free(B), free(Bval), free(C), free(C2), free(C0), free(pack);
}

static void test_gemm_sizes_and_dtypes(void) {
    xle_rng rng;
    xle_rng_seed(&rng, 11);
    /* Sizes around the tile edges (MR is 4..8, NR 8..32), inner sizes across KC = 256. */
    const int64_t sizes[][3] = {{1, 1, 1},   {3, 5, 7},     {8, 32, 16},   {9, 33, 17},
                                {17, 70, 300}, {64, 31, 513}, {13, 96, 256}, {40, 7, 1000},
                                {5, 200, 64}};
    const xle_dtype dts[] = {XLE_F32, XLE_BF16, XLE_F16, XLE_F64};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
        for (size_t d = 0; d < 4; d++)
            for (int tr = 0; tr < 2; tr++)
                check_gemm(sizes[s][0], sizes[s][1], sizes[s][2], dts[d], tr, (int)(s + d) % 2, &rng);
}

/* Products above XLE_PAR_MIN_PRODUCT, the only ones split across threads: the threaded form
 * gives the serial one's bits (f32/bf16/f16 weights, and the bf16 x bf16 product where the CPU
 * has it; one thread's scratch makes a product serial). */
static void test_gemm_threaded(void) {
    enum { M = 72, N = 600, K = 1000 }; /* 43 M multiply-adds */
    _Static_assert((int64_t)M * N * K > XLE_PAR_MIN_PRODUCT, "must be above the threshold");
    xle_rng rng;
    xle_rng_seed(&rng, 12);
    float *A = malloc((size_t)M * K * sizeof(float)), *C1 = malloc((size_t)M * N * sizeof(float));
    float *C2 = malloc((size_t)M * N * sizeof(float));
    uint16_t *W = malloc((size_t)N * K * sizeof(uint16_t));
    float *Wf = malloc((size_t)N * K * sizeof(float));
    float *scratch = malloc(XLE_MATMUL_SCRATCH * sizeof(float));
    CHECK(A && C1 && C2 && W && Wf && scratch);
    for (int64_t i = 0; i < (int64_t)M * K; i++) A[i] = xle_rng_normal(&rng);
    for (int64_t i = 0; i < (int64_t)N * K; i++) Wf[i] = xle_rng_normal(&rng);
    const xle_dtype dts[] = {XLE_F32, XLE_BF16, XLE_F16};
    for (int d = 0; d < 3; d++) {
        const void *data = Wf;
        if (dts[d] != XLE_F32) {
            for (int64_t i = 0; i < (int64_t)N * K; i++) store_as(W, dts[d], i, Wf[i]);
            data = W;
        }
        const xle_gemm_rhs rhs = {data, dts[d], K, 1};
        xle_gemm_parallel(M, N, K, A, K, &rhs, C1, N, 0, scratch, XLE_GEMM_PACK_FLOATS);
        xle_gemm_parallel(M, N, K, A, K, &rhs, C2, N, 0, scratch, XLE_MATMUL_SCRATCH);
        CHECK_MSG(memcmp(C1, C2, (size_t)M * N * sizeof(float)) == 0, "%s: threaded product differs",
                  xle_dtype_name(dts[d]));
    }
    for (int64_t i = 0; i < (int64_t)N * K; i++) store_as(W, XLE_BF16, i, Wf[i]);
    if (xle_gemm_bf16_parallel(M, N, K, A, K, W, K, C1, N, scratch, XLE_GEMM_PACK_FLOATS)) {
        CHECK(xle_gemm_bf16_parallel(M, N, K, A, K, W, K, C2, N, scratch, XLE_MATMUL_SCRATCH));
        CHECK_MSG(memcmp(C1, C2, (size_t)M * N * sizeof(float)) == 0, "bf16 x bf16: threaded product differs");
    }
    free(A), free(C1), free(C2), free(W), free(Wf), free(scratch);
}

static void test_gemm_empty(void) {
    /* K = 0: C becomes 0 (or stays, accumulating); M or N = 0 touches nothing. */
    float C[6] = {1, 2, 3, 4, 5, 6}, pack[XLE_GEMM_PACK_FLOATS];
    const float one = 1;
    const xle_gemm_rhs rhs = {&one, XLE_F32, 1, 1};
    xle_gemm(2, 3, 0, &one, 1, &rhs, C, 3, 1, pack);
    CHECK(C[0] == 1 && C[5] == 6);
    xle_gemm(0, 3, 4, &one, 4, &rhs, C, 3, 0, pack);
    CHECK(C[0] == 1);
    xle_gemm(2, 3, 0, &one, 1, &rhs, C, 3, 0, pack);
    for (int i = 0; i < 6; i++) CHECK(C[i] == 0);
}

/* xle_matmul_forward with many rows (blocked product) and one row at a time (dot products)
 * against a double dot of the stored values, for weights of every dtype. */
static void check_matmul(xle_dtype dt, int64_t n_out, int64_t n_in, int T) {
    xle_rng rng;
    xle_rng_seed(&rng, (uint64_t)(n_out * 31 + n_in + dt));
    void *wbuf = malloc((size_t)(n_out * n_in) * xle_dtype_size(dt));
    xle_tensor w = {.dtype = dt, .ndim = 2, .shape = {n_out, n_in}, .data = wbuf};
    for (int64_t i = 0; i < n_out * n_in; i++) store_as(wbuf, dt, i, xle_rng_normal(&rng) * 0.1f);
    float *in = malloc((size_t)(T * n_in) * sizeof(float));
    float *many = malloc((size_t)(T * n_out) * sizeof(float)), *one = malloc((size_t)n_out * sizeof(float));
    float *scratch = malloc(XLE_MATMUL_SCRATCH * sizeof(float));
    for (int64_t i = 0; i < T * n_in; i++) in[i] = xle_rng_normal(&rng);
    xle_matmul_forward(many, in, &w, NULL, T, scratch, XLE_PRECISION_EXACT);
    int bad = 0;
    for (int t = 0; t < T; t++) {
        xle_matmul_forward(one, in + t * n_in, &w, NULL, 1, scratch, XLE_PRECISION_EXACT);
        for (int64_t o = 0; o < n_out && bad < 3; o++) {
            double ref = 0, mag = 0;
            for (int64_t i = 0; i < n_in; i++) {
                double p = (double)in[t * n_in + i] * xle_tensor_get_f32(&w, o * n_in + i);
                ref += p, mag += fabs(p);
            }
            const double tol = 1e-5 * mag + 1e-6;
            if (!(fabs(many[t * n_out + o] - ref) <= tol) || !(fabs(one[o] - ref) <= tol)) {
                bad++;
                CHECK_MSG(0, "%s %lldx%lld T%d row %d out %lld: many %.8g one %.8g ref %.8g",
                          xle_dtype_name(dt), (long long)n_out, (long long)n_in, T, t,
                          (long long)o, many[t * n_out + o], one[o], ref);
            }
        }
    }
    free(wbuf), free(in), free(many), free(one), free(scratch);
}

static void test_matmul_paths(void) {
    const xle_dtype dts[] = {XLE_F32, XLE_BF16, XLE_F16};
    for (int d = 0; d < 3; d++) {
        check_matmul(dts[d], 37, 70, 9);
        check_matmul(dts[d], 101, 300, 13);
        check_matmul(dts[d], 200, 517, 4);
        check_matmul(dts[d], 65, 33, 70);
        check_matmul(dts[d], 9, 4103, 3); /* long rows: four rows share x (bf16), tails */
        check_matmul(dts[d], 50, 4096, 2);
    }
}

/* Several products of one input in one pass equal the products one at a time (same kernels,
 * so the same bits), biases included; also with more weights than one pass takes. */
static void test_matmul_many(void) {
    enum { N = 10, IN = 300 };
    xle_rng rng;
    xle_rng_seed(&rng, 5);
    const xle_dtype dts[] = {XLE_BF16, XLE_F32, XLE_F16};
    xle_tensor ws[N], bs[N];
    const xle_tensor *wp[N], *bp[N];
    float *outs[N], *ref[N];
    void *bufs[2 * N];
    float *in = malloc(5 * IN * sizeof(float)), *scratch = malloc(XLE_MATMUL_SCRATCH * sizeof(float));
    for (int i = 0; i < 5 * IN; i++) in[i] = xle_rng_normal(&rng);
    for (int i = 0; i < N; i++) {
        const int64_t rows = 7 + 13 * i;
        const xle_dtype dt = dts[i % 3];
        bufs[i] = malloc((size_t)(rows * IN) * xle_dtype_size(dt));
        bufs[N + i] = malloc((size_t)rows * sizeof(float));
        ws[i] = (xle_tensor){.dtype = dt, .ndim = 2, .shape = {rows, IN}, .data = bufs[i]};
        bs[i] = (xle_tensor){.dtype = XLE_F32, .ndim = 1, .shape = {rows}, .data = i % 2 ? bufs[N + i] : NULL};
        for (int64_t k = 0; k < rows * IN; k++) store_as(bufs[i], dt, k, xle_rng_normal(&rng));
        for (int64_t k = 0; k < rows; k++) ((float *)bufs[N + i])[k] = xle_rng_normal(&rng);
        wp[i] = &ws[i], bp[i] = &bs[i];
        outs[i] = malloc((size_t)(5 * rows) * sizeof(float));
        ref[i] = malloc((size_t)(5 * rows) * sizeof(float));
    }
    for (int T = 1; T <= 5; T += 2) {
        xle_matmul_forward_many(outs, in, wp, bp, N, T, scratch, XLE_PRECISION_EXACT);
        for (int i = 0; i < N; i++) {
            xle_matmul_forward(ref[i], in, wp[i], bp[i], T, scratch, XLE_PRECISION_EXACT);
            CHECK_MSG(memcmp(outs[i], ref[i], (size_t)(T * ws[i].shape[0]) * sizeof(float)) == 0,
                      "T %d weight %d differs", T, i);
        }
    }
    xle_matmul_forward_many(outs, in, wp, NULL, 2, 1, scratch, XLE_PRECISION_EXACT); /* biases NULL */
    xle_tensor nobias = {0};
    const xle_tensor *nb = &nobias;
    xle_matmul_forward(ref[1], in, wp[1], nb, 1, scratch, XLE_PRECISION_EXACT);
    CHECK(memcmp(outs[1], ref[1], (size_t)ws[1].shape[0] * sizeof(float)) == 0);
    for (int i = 0; i < N; i++) free(outs[i]), free(ref[i]), free(bufs[i]), free(bufs[N + i]);
    free(in), free(scratch);
}

/* Attention in double precision, one query and head at a time. */
static void attention_reference(double *out, double *probs, const float *q, const float *k,
                                const float *v, int n, int n_past, int kv_stride, int H, int KV,
                                int hd, int window) {
    const int n_keys = n_past + n, group = H / KV;
    for (int h = 0; h < H; h++)
        for (int i = 0; i < n; i++) {
            const int qpos = n_past + i, g = h / group;
            const int lo = (window > 0 && qpos - window + 1 > 0) ? qpos - window + 1 : 0;
            double *pr = probs + ((int64_t)h * n + i) * n_keys, mx = -INFINITY, sum = 0;
            for (int p = 0; p < n_keys; p++) pr[p] = 0;
            for (int p = lo; p <= qpos; p++) {
                double s = 0;
                for (int c = 0; c < hd; c++)
                    s += (double)q[(int64_t)i * H * hd + h * hd + c] * k[(int64_t)p * kv_stride + g * hd + c];
                pr[p] = s / sqrt((double)hd);
                if (pr[p] > mx) mx = pr[p];
            }
            for (int p = lo; p <= qpos; p++) sum += (pr[p] = exp(pr[p] - mx));
            for (int p = lo; p <= qpos; p++) pr[p] /= sum;
            for (int c = 0; c < hd; c++) {
                double o = 0;
                for (int p = lo; p <= qpos; p++) o += pr[p] * v[(int64_t)p * kv_stride + g * hd + c];
                out[(int64_t)i * H * hd + h * hd + c] = o;
            }
        }
}

static void check_attention(int n, int n_past, int H, int KV, int hd, int window) {
    xle_rng rng;
    xle_rng_seed(&rng, (uint64_t)(n * 1000 + n_past * 10 + window));
    const int n_keys = n_past + n, kv_stride = KV * hd + 3; /* padded rows, as in a KV cache */
    float *q = malloc((size_t)n * H * hd * sizeof(float));
    float *k = malloc((size_t)n_keys * kv_stride * sizeof(float));
    float *v = malloc((size_t)n_keys * kv_stride * sizeof(float));
    float *out = malloc((size_t)n * H * hd * sizeof(float));
    float *probs = malloc((size_t)H * n * n_keys * sizeof(float));
    double *ref = malloc((size_t)n * H * hd * sizeof(double));
    double *ref_probs = malloc((size_t)H * n * n_keys * sizeof(double));
    for (int64_t i = 0; i < (int64_t)n * H * hd; i++) q[i] = 2 * xle_rng_normal(&rng);
    for (int64_t i = 0; i < (int64_t)n_keys * kv_stride; i++) {
        k[i] = 2 * xle_rng_normal(&rng);
        v[i] = xle_rng_normal(&rng);
    }
    xle_attention_forward(out, probs, q, k, v, n, n_past, kv_stride, H, KV, hd, window);
    attention_reference(ref, ref_probs, q, k, v, n, n_past, kv_stride, H, KV, hd, window);
    double max_out = 0, max_p = 0;
    for (int64_t i = 0; i < (int64_t)n * H * hd; i++) max_out = fmax(max_out, fabs(out[i] - ref[i]));
    for (int64_t i = 0; i < (int64_t)H * n * n_keys; i++) max_p = fmax(max_p, fabs(probs[i] - ref_probs[i]));
    CHECK_MSG(max_out < 2e-5 && max_p < 2e-6, "n %d past %d H %d KV %d hd %d window %d: out %g probs %g",
              n, n_past, H, KV, hd, window, max_out, max_p);
    /* Without probs the output is the same. */
    float *out2 = malloc((size_t)n * H * hd * sizeof(float));
    xle_attention_forward(out2, NULL, q, k, v, n, n_past, kv_stride, H, KV, hd, window);
    CHECK(memcmp(out, out2, (size_t)n * H * hd * sizeof(float)) == 0);
    free(q), free(k), free(v), free(out), free(out2), free(probs), free(ref), free(ref_probs);
}

static void test_attention(void) {
    /* Few queries (one at a time) and many (blocked), across block edges of 64 queries. */
    const int ns[] = {1, 3, 16, 17, 64, 65, 150};
    for (size_t i = 0; i < sizeof ns / sizeof *ns; i++) {
        check_attention(ns[i], 0, 4, 2, 12, 0);
        check_attention(ns[i], 0, 4, 1, 8, 7);
        check_attention(ns[i], 37, 6, 3, 10, 0);
        check_attention(ns[i], 100, 4, 4, 16, 50);
    }
}

/* Each variant's to_f32 against the scalar conversions: every f16 value, bf16 values of every
 * exponent, starting at odd offsets so that the vector loop and its tail both run. */
static void test_conversions(void) {
    const xle_kernels *k = xle_kernels_select();
    enum { N = 65536 };
    uint16_t *h = malloc((N + 8) * sizeof(uint16_t));
    float *got = malloc((N + 8) * sizeof(float));
    for (int i = 0; i < N; i++) h[i] = (uint16_t)i;
    for (int dt = 0; dt < 2; dt++) {
        const xle_dtype d = dt ? XLE_BF16 : XLE_F16;
        for (int off = 0; off < 3; off++) {
            k->to_f32(got, h + off, d, N - off);
            int bad = 0;
            for (int i = 0; i < N - off && bad < 3; i++) {
                const float want = d == XLE_F16 ? xle_f16_to_f32(h[i + off]) : xle_bf16_to_f32(h[i + off]);
                const int same = isnan(want) ? isnan(got[i]) : memcmp(&want, &got[i], 4) == 0;
                if (!same && bad++ < 3)
                    CHECK_MSG(0, "%s %s 0x%04x: %.9g, scalar %.9g", k->name, xle_dtype_name(d),
                              h[i + off], got[i], want);
            }
        }
    }
    /* f32 -> bf16 rounding: nearest even like xle_f32_to_bf16, NaN stays NaN; with AVX512-BF16
     * f32 subnormals become zero (as llama.cpp's rounding does on such CPUs). */
    xle_rng rng;
    xle_rng_seed(&rng, 3);
    float *x = malloc(1000 * sizeof(float));
    uint16_t *b = malloc(1000 * sizeof(uint16_t));
    for (int i = 0; i < 1000; i++) {
        uint32_t bits = (uint32_t)xle_rng_next(&rng);
        if (i % 7 == 0) bits = (bits & 0xffff0000u) | 0x8000u; /* ties */
        memcpy(&x[i], &bits, 4);
    }
    x[0] = INFINITY, x[1] = -INFINITY, x[2] = NAN, x[3] = 0.0f, x[4] = -0.0f, x[5] = 1e-40f;
    k->to_bf16(b, x + 1, 999);
    int bad = 0;
    for (int i = 1; i < 1000 && bad < 3; i++) {
        const uint16_t want = xle_f32_to_bf16(x[i]), have = b[i - 1];
        const int ok = isnan(x[i]) ? isnan(xle_bf16_to_f32(have))
                       : (fpclassify(x[i]) == FP_SUBNORMAL && k->gemm_bf16) ? (have & 0x7fff) == 0 || have == want
                                                                            : have == want;
        if (!ok && bad++ < 3) CHECK_MSG(0, "%s to_bf16(%.9g) = 0x%04x, want 0x%04x", k->name, x[i], have, want);
    }
    free(h), free(got), free(x), free(b);
}

/* XLE_PRECISION_BF16 with bf16 weights: with a bf16 dot-product instruction the products are those
 * of the activations rounded to bf16 (compared with a double reference of the rounded values);
 * without it they are the exact ones, bit for bit. Other dtypes are never rounded. */
static void check_bf16_precision(xle_dtype dt, int64_t n_out, int64_t n_in, int T) {
    const xle_kernels *k = xle_kernels_select();
    xle_rng rng;
    xle_rng_seed(&rng, (uint64_t)(n_out * 7 + n_in + T));
    void *wbuf = malloc((size_t)(n_out * n_in) * xle_dtype_size(dt));
    xle_tensor w = {.dtype = dt, .ndim = 2, .shape = {n_out, n_in}, .data = wbuf};
    for (int64_t i = 0; i < n_out * n_in; i++) store_as(wbuf, dt, i, xle_rng_normal(&rng) * 0.1f);
    float *in = malloc((size_t)(T * n_in) * sizeof(float));
    float *got = malloc((size_t)(T * n_out) * sizeof(float)), *exact = malloc((size_t)(T * n_out) * sizeof(float));
    float *scratch = malloc(XLE_MATMUL_SCRATCH * sizeof(float));
    for (int64_t i = 0; i < T * n_in; i++) in[i] = xle_rng_normal(&rng);
    xle_matmul_forward(got, in, &w, NULL, T, scratch, XLE_PRECISION_BF16);
    xle_matmul_forward(exact, in, &w, NULL, T, scratch, XLE_PRECISION_EXACT);
    const int rounded = dt == XLE_BF16 && k->gemm_bf16;
    if (!rounded) {
        CHECK_MSG(memcmp(got, exact, (size_t)(T * n_out) * sizeof(float)) == 0,
                  "%s %s T%d: bf16 precision differs from exact", k->name, xle_dtype_name(dt), T);
    } else {
        int bad = 0, differs = 0;
        for (int t = 0; t < T; t++)
            for (int64_t o = 0; o < n_out && bad < 3; o++) {
                double ref = 0, mag = 0;
                for (int64_t i = 0; i < n_in; i++) {
                    const double p = (double)xle_bf16_to_f32(xle_f32_to_bf16(in[t * n_in + i])) *
                                     xle_tensor_get_f32(&w, o * n_in + i);
                    ref += p, mag += fabs(p);
                }
                const float g = got[t * n_out + o];
                differs += g != exact[t * n_out + o];
                if (!(fabs(g - ref) <= 1e-5 * mag + 1e-6) && bad++ < 3)
                    CHECK_MSG(0, "%s bf16 %lldx%lld T%d row %d out %lld: %.8g, reference %.8g", k->name,
                              (long long)n_out, (long long)n_in, T, t, (long long)o, g, ref);
            }
        /* The rounding must show: a product that equals the exact one everywhere was not rounded. */
        CHECK_MSG(differs > 0, "%s bf16 %lldx%lld T%d: no difference from exact", k->name,
                  (long long)n_out, (long long)n_in, T);
    }
    free(wbuf), free(in), free(got), free(exact), free(scratch);
}

static void test_bf16_precision(void) {
    const int64_t shapes[][2] = {{37, 70}, {65, 33}, {101, 517}, {9, 4103}, {40, 64}};
    const int Ts[] = {1, 3, 4, 13, 70};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (size_t t = 0; t < sizeof Ts / sizeof *Ts; t++)
            check_bf16_precision(XLE_BF16, shapes[s][0], shapes[s][1], Ts[t]);
    check_bf16_precision(XLE_F16, 37, 70, 9);
    check_bf16_precision(XLE_F32, 37, 70, 2);
}

/* The variant table: names resolve to themselves, the forced variant is the selected one, an
 * unknown name falls back to the CPU's best. */
static void test_dispatch(void) {
    int n = 0;
    const char *const *names = xle_kernels_built(&n);
    CHECK(n >= 1 && strcmp(names[n - 1], "generic") == 0);
    CHECK(xle_kernels_named("generic") != NULL);
    CHECK(xle_kernels_named("no-such-isa") == NULL);
    for (int i = 0; i < n; i++) {
        const xle_kernels *k = xle_kernels_named(names[i]);
        if (!k) continue; /* built but not run by this CPU */
        CHECK(strcmp(k->name, names[i]) == 0);
        setenv("XLE_KERNELS", names[i], 1);
        CHECK(xle_kernels_select() == k);
    }
    setenv("XLE_KERNELS", "no-such-isa", 1);
    const xle_kernels *fallback = xle_kernels_select();
    unsetenv("XLE_KERNELS");
    CHECK(fallback == xle_kernels_select());
}

int main(void) {
    RUN(test_dispatch);
    RUN(test_gemm_empty);
    int n = 0;
    const char *const *names = xle_kernels_built(&n);
    const xle_kernels *best = xle_kernels_select();
    for (int i = 0; i < n; i++) {
        if (!xle_kernels_named(names[i])) {
            fprintf(stderr, "skip kernels %s (not supported by this CPU)\n", names[i]);
            continue;
        }
        setenv("XLE_KERNELS", names[i], 1);
        fprintf(stderr, "kernels %s\n", names[i]);
        RUN(test_conversions);
        RUN(test_matmul_paths);
        RUN(test_bf16_precision);
#ifdef XLE_SANITIZED
        if (xle_kernels_select() != best) continue; /* the rest once, under the sanitizers */
#else
        (void)best;
#endif
        RUN(test_gemm_sizes_and_dtypes);
        RUN(test_gemm_threaded);
        RUN(test_matmul_many);
        RUN(test_attention);
    }
    unsetenv("XLE_KERNELS");
    return check_summary();
}
