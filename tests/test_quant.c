/*
 * test_quant.c: the block-quantized GGUF types (Q4_0 .. Q6_K) against llama.cpp's own tools:
 * blocks made by llama-quantize and their dequantization by llama.cpp's gguf-py
 * (tests/fixtures/quant, made by tests/reference/make_quant_fixtures.py). Checks each type's
 * dequantization, its dot products (exact f32 and with int8 activations, portable and fast
 * kernels), quantizing again, a Q4_K_M model's logits against the same model dequantized, its
 * save (F16 by default, re-quantized on request), and truncated files.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "core/quant.h"
#include "formats/gguf.h"
#include "tensor/ops.h"
#include "tensor/quant_dot.h"
#include "xledit.h"

static const xle_dtype TYPES[] = {XLE_Q4_0, XLE_Q4_1, XLE_Q5_0, XLE_Q5_1, XLE_Q8_0,
                                  XLE_Q2_K, XLE_Q3_K, XLE_Q4_K, XLE_Q5_K, XLE_Q6_K};
#define N_TYPES (int)(sizeof TYPES / sizeof TYPES[0])

static xle_gguf *g_blocks;
static char g_tmp[256];

static void fixture(const char *rel, char *out, size_t cap) {
    snprintf(out, cap, "%s/tests/fixtures/quant/%s", XLE_SOURCE_DIR, rel);
}

/* A fixture tensor as an engine tensor view: [ne1, ne0] in its own type. */
static int view(const char *name, xle_tensor *t) {
    const xle_gguf_tensor_info *ti = xle_gguf_find_tensor(g_blocks, name);
    CHECK_MSG(ti != NULL, "quant_blocks.gguf: %s missing", name);
    if (!ti) return 0;
    memset(t, 0, sizeof *t);
    t->dtype = xle_dtype_of_ggml(ti->ggml_type);
    t->ndim = ti->n_dims == 1 ? 1 : 2;
    if (t->ndim == 1) t->shape[0] = ti->ne[0];
    else t->shape[0] = ti->ne[1], t->shape[1] = ti->ne[0];
    t->data = (void *)ti->data;
    return 1;
}

static void test_block_sizes(void) {
    for (int i = 0; i < N_TYPES; i++) {
        const xle_dtype dt = TYPES[i];
        CHECK(xle_dtype_is_quantized(dt));
        const xle_gguf_tensor_info *ti = xle_gguf_find_tensor(g_blocks, xle_dtype_name(dt));
        if (!ti) continue;
        CHECK_MSG(xle_dtype_of_ggml(ti->ggml_type) == dt, "%s", xle_dtype_name(dt));
        CHECK_MSG(xle_dtype_row_bytes(dt, ti->ne[0]) * (size_t)ti->ne[1] == ti->nbytes, "%s bytes",
                  xle_dtype_name(dt));
    }
    CHECK(!xle_dtype_is_quantized(XLE_F32) && xle_dtype_block_elems(XLE_BF16) == 1);
}

/* Dequantization equals gguf-py's (the same float operations: exact up to rounding order). */
static void test_dequantize(void) {
    for (int i = 0; i < N_TYPES; i++) {
        char name[32];
        xle_tensor w, ref;
        snprintf(name, sizeof name, "%s.deq", xle_dtype_name(TYPES[i]));
        if (!view(xle_dtype_name(TYPES[i]), &w) || !view(name, &ref)) continue;
        const int64_t n = xle_tensor_numel(&w);
        CHECK(n == xle_tensor_numel(&ref) && n == 8 * 256);
        float *got = malloc((size_t)n * sizeof(float));
        xle_tensor_row_to_f32(&w, 0, n, got);
        double max_abs, max_rel, scale = 0;
        check_max_diff(got, ref.data, (size_t)n, &max_abs, &max_rel);
        for (int64_t e = 0; e < n; e++) scale = fmax(scale, fabs(((float *)ref.data)[e]));
        CHECK_MSG(max_abs <= 1e-6 * scale, "%s: max |diff| %.3g (values up to %.3g)", name, max_abs, scale);
        /* element access and ranges that start or end inside a block */
        CHECK(xle_tensor_get_f32(&w, 300) == got[300]);
        float part[40];
        xle_tensor_row_to_f32(&w, 250, 40, part);
        CHECK(memcmp(part, got + 250, sizeof part) == 0);
        free(got);
    }
}

/* Dot products of 8 rows with x: exact f32 products against float64 references; int8
 * activations (llama.cpp's scheme) within a bound relative to Σ|w||x|; the fast kernels equal
 * the portable ones. */
static void test_dot(void) {
    xle_tensor x;
    if (!view("x", &x)) return;
    const float *xv = x.data;
    for (int i = 0; i < N_TYPES; i++) {
        const xle_dtype dt = TYPES[i];
        char dn[32], dd[32];
        snprintf(dn, sizeof dn, "%s.dot", xle_dtype_name(dt));
        snprintf(dd, sizeof dd, "%s.deq", xle_dtype_name(dt));
        xle_tensor w, ref, deq;
        if (!view(xle_dtype_name(dt), &w) || !view(dn, &ref) || !view(dd, &deq)) continue;
        const int64_t n = w.shape[1];
        void *act = malloc(xle_quant_act_bytes(dt, n));
        xle_quant_act(dt, xv, n, act);
        float fast[8];
        xle_quant_dot_rows(&w, 0, 8, act, fast);
        double worst_exact = 0, worst_q8 = 0;
        for (int r = 0; r < 8; r++) {
            double mag = 0;
            for (int64_t e = 0; e < n; e++) mag += fabs(((float *)deq.data)[r * n + e] * xv[e]);
            const double want = ((float *)ref.data)[r];
            const double exact = xle_dot_row(xv, &w, r, n);
            const double q8 = xle_quant_dot(dt, (const char *)w.data + r * xle_dtype_row_bytes(dt, n), act, n);
            worst_exact = fmax(worst_exact, fabs(exact - want) / mag);
            worst_q8 = fmax(worst_q8, fabs(q8 - want) / mag);
            CHECK_MSG(fabs(fast[r] - q8) <= 1e-5 * mag, "%s row %d: fast %.7g, portable %.7g",
                      xle_dtype_name(dt), r, fast[r], q8);
        }
        CHECK_MSG(worst_exact < 1e-6, "%s: exact dot rel err %.3g", xle_dtype_name(dt), worst_exact);
        /* int8 activations: each |x| error is at most max|x|/254 per block */
        CHECK_MSG(worst_q8 < 1e-2, "%s: int8-activation dot rel err %.3g", xle_dtype_name(dt), worst_q8);
        free(act);
    }
}

/* Offsets of the f16 scale fields (d, and dmin or m where the type has one; −1 if not) in a
 * block: random bytes are a valid block everywhere else. */
static void half_fields(xle_dtype dt, int *d, int *dmin) {
    *dmin = -1;
    switch (dt) {
    case XLE_Q4_1: case XLE_Q5_1: case XLE_Q4_K: case XLE_Q5_K: *d = 0, *dmin = 2; break;
    case XLE_Q2_K: *d = 80, *dmin = 82; break;
    case XLE_Q3_K: *d = 108; break;
    case XLE_Q6_K: *d = 208; break;
    default: *d = 0; break;
    }
}

/* Every bit pattern a block can hold (random bytes, so the largest values, scales and mins
 * occur, beyond what llama-quantize makes from smooth weights): the vector kernels (selected
 * by cpuid for every type) equal the portable product, for rows starting and ending anywhere,
 * with activations whose quantized values reach ±127. */
static void test_dot_random_blocks(void) {
    enum { ROWS = 12, N = 1024 };
    xle_rng rng;
    xle_rng_seed(&rng, 11);
    float x[N];
    for (int e = 0; e < N; e++) x[e] = xle_rng_normal(&rng) * (e % 97 == 0 ? 8.0f : 1.0f);
    for (int i = 0; i < N_TYPES; i++) {
        const xle_dtype dt = TYPES[i];
        const size_t row_bytes = xle_dtype_row_bytes(dt, N), bb = xle_dtype_block_bytes(dt);
        uint8_t *blocks = malloc(row_bytes * ROWS);
        for (size_t b = 0; b < row_bytes * ROWS; b++) blocks[b] = (uint8_t)xle_rng_next(&rng);
        int fd, fdmin;
        half_fields(dt, &fd, &fdmin);
        for (size_t b = 0; b < row_bytes * ROWS; b += bb) {
            const uint16_t d = xle_f32_to_f16((float)(xle_rng_uniform(&rng) - 0.5) * 0.02f);
            const uint16_t m = xle_f32_to_f16((float)(xle_rng_uniform(&rng) - 0.5) * 0.02f);
            memcpy(blocks + b + fd, &d, 2);
            if (fdmin >= 0) memcpy(blocks + b + fdmin, &m, 2);
        }
        xle_tensor w = {0};
        w.dtype = dt, w.ndim = 2, w.shape[0] = ROWS, w.shape[1] = N, w.data = blocks;
        void *act = malloc(xle_quant_act_bytes(dt, N));
        xle_quant_act(dt, x, N, act);
        float fast[ROWS], deq[N];
        for (int r = 0; r < ROWS; r++) fast[r] = -1e30f;
        xle_quant_dot_rows(&w, 3, 11, act, fast);
        for (int r = 0; r < ROWS; r++) {
            if (r < 3 || r >= 11) {
                CHECK_MSG(fast[r] == -1e30f, "%s: row %d outside [3, 11) written", xle_dtype_name(dt), r);
                continue;
            }
            xle_quant_dequantize(dt, blocks + r * row_bytes, N / xle_dtype_block_elems(dt), deq);
            double mag = 0;
            for (int e = 0; e < N; e++) mag += fabs(deq[e] * x[e]);
            const double q8 = xle_quant_dot(dt, blocks + r * row_bytes, act, N);
            CHECK_MSG(fabs(fast[r] - q8) <= 1e-5 * mag, "%s random row %d: fast %.7g, portable %.7g (Σ|wx| %.3g)",
                      xle_dtype_name(dt), r, fast[r], q8, mag);
        }
        free(act);
        free(blocks);
    }
}

/* Quantizing the dequantized values again: Q8_0 and the 32-blocks with their exact levels come
 * back nearly as they were; every type's re-quantization error stays within its step size. */
static void test_quantize(void) {
    /* rms error / rms value of quantizing the dequantized fixture rows again */
    static const double bound[] = {0.08, 0.08, 0.04, 0.04, 0.005, 0.35, 0.2, 0.08, 0.04, 0.02};
    for (int i = 0; i < N_TYPES; i++) {
        const xle_dtype dt = TYPES[i];
        char dd[32];
        snprintf(dd, sizeof dd, "%s.deq", xle_dtype_name(dt));
        xle_tensor deq;
        if (!view(dd, &deq)) continue;
        const int64_t n = xle_tensor_numel(&deq);
        uint8_t *blocks = malloc(xle_dtype_row_bytes(dt, n));
        float *back = malloc((size_t)n * sizeof(float));
        xle_quant_quantize(dt, deq.data, n, blocks);
        xle_quant_dequantize(dt, blocks, n / xle_dtype_block_elems(dt), back);
        double se = 0, sv = 0;
        for (int64_t e = 0; e < n; e++) {
            const double v = ((float *)deq.data)[e];
            se += (back[e] - v) * (back[e] - v);
            sv += v * v;
        }
        const double rel = sqrt(se / sv);
        CHECK_MSG(rel < bound[i], "%s: re-quantization rms error %.4f (bound %.3f)", xle_dtype_name(dt),
                  rel, bound[i]);
        free(blocks);
        free(back);
    }
}

static xle_model *load_q4km(void) {
    char path[512];
    fixture("tiny_q4_k_m.gguf", path, sizeof path);
    xle_model *m = NULL;
    xle_error err = {0};
    CHECK_OK(xle_model_load(path, &m, &err), &err);
    return m;
}

/* Makes every weight matrix of m an owned f32 copy (the same model dequantized). */
static void dequantize_all(xle_model *m) {
    xle_weights *w = xle_model_weights(m);
    const xle_config *c = xle_model_config(m);
    xle_error err = {0};
    xle_tensor *top[] = {&w->tok_embd, &w->lm_head};
    for (int i = 0; i < 2; i++) CHECK_OK(xle_model_make_writable_f32(m, top[i], &err), &err);
    for (int l = 0; l < c->n_layers; l++) {
        xle_layer_weights *L = &w->layers[l];
        xle_tensor *ts[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (int i = 0; i < 7; i++) CHECK_OK(xle_model_make_writable_f32(m, ts[i], &err), &err);
    }
}

enum { SEQ = 12 };
static const int32_t TOKENS[SEQ] = {1, 20, 7, 33, 41, 5, 59, 12, 3, 28, 47, 9};

/* Logits of every position: one batch (the gemm path) or token by token (the dot path). */
static float *logits_of(xle_model *m, int incremental) {
    const int V = xle_model_config(m)->vocab_size;
    float *out = malloc((size_t)SEQ * V * sizeof(float));
    xle_error err = {0};
    if (!incremental) {
        const int starts[2] = {0, SEQ};
        const xle_batch b = {1, TOKENS, starts};
        CHECK_OK(xle_forward(m, &b, NULL, out, &err), &err);
        return out;
    }
    xle_kv_cache *cache = NULL;
    CHECK_OK(xle_kv_cache_new(m, SEQ, &cache, &err), &err);
    for (int t = 0; t < SEQ && cache; t++) {
        const int starts[2] = {0, 1};
        const xle_batch b = {1, TOKENS + t, starts};
        xle_forward_opts o = {0};
        o.cache = cache;
        CHECK_OK(xle_forward(m, &b, &o, out + (size_t)t * V, &err), &err);
    }
    xle_kv_cache_free(cache);
    return out;
}

/* The Q4_K_M model (Q4_K and Q6_K weights) against itself dequantized to f32: the batch path
 * dequantizes panels exactly, so only f32 summation order differs; the token-by-token path
 * quantizes activations to int8 per block, bounded relative to the largest logit. */
static void test_model_logits(void) {
    xle_model *q = load_q4km(), *f = load_q4km();
    if (!q || !f) {
        xle_model_free(q);
        xle_model_free(f);
        return;
    }
    CHECK(xle_model_weight_dtype(q) == XLE_Q4_K);
    CHECK(xle_model_weights(q)->lm_head.dtype == XLE_Q6_K);
    dequantize_all(f);
    const int V = xle_model_config(q)->vocab_size;
    const size_t n = (size_t)SEQ * V;
    float *qb = logits_of(q, 0), *fb = logits_of(f, 0), *qi = logits_of(q, 1), *fi = logits_of(f, 1);
    double scale = 0, batch_abs, inc_abs, ref_abs, rel;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(fb[i]));
    check_max_diff(qb, fb, n, &batch_abs, &rel);
    check_max_diff(qi, fi, n, &inc_abs, &rel);
    check_max_diff(fi, fb, n, &ref_abs, &rel);
    printf("  Q4_K_M tiny model, max |logit| %.3f: batch %.2e, token by token %.2e (f32 model: %.2e)\n",
           scale, batch_abs / scale, inc_abs / scale, ref_abs / scale);
    CHECK_MSG(batch_abs <= 1e-5 * scale, "batch path: %.3g", batch_abs / scale);
    CHECK_MSG(inc_abs <= 2e-2 * scale, "token-by-token path: %.3g", inc_abs / scale);
    /* greedy choices agree where the f32 model's top two are not nearly tied */
    for (int t = 0; t < SEQ; t++) {
        int a = 0, b = 0;
        for (int v = 1; v < V; v++) {
            if (qi[t * V + v] > qi[t * V + a]) a = v;
            if (fi[t * V + v] > fi[t * V + b]) b = v;
        }
        CHECK_MSG(a == b || fabs(fi[t * V + a] - fi[t * V + b]) < 3 * inc_abs, "position %d: %d vs %d", t, a, b);
    }
    /* precision bf16: the prompt in int8 (tensor/quant_gemm.h, where the CPU has VNNI), as
     * close to the f32 model as the token-by-token path's int8 activations */
    xle_model_set_precision(q, XLE_PRECISION_BF16);
    float *q8 = logits_of(q, 0);
    double int8_abs;
    check_max_diff(q8, fb, n, &int8_abs, &rel);
    printf("  precision bf16 (int8 prompt): %.2e\n", int8_abs / scale);
    CHECK_MSG(int8_abs <= 2e-2 * scale, "int8 prompt path: %.3g", int8_abs / scale);
    free(q8);
    free(qb), free(fb), free(qi), free(fi);
    xle_model_free(q);
    xle_model_free(f);
}

/* An edited quantized matrix is written as F16 by default and as its own type with
 * XLE_QSAVE_REQUANTIZE; untouched tensors keep their blocks byte for byte. */
static void test_save(void) {
    static const xle_quant_save modes[] = {XLE_QSAVE_F16, XLE_QSAVE_BF16, XLE_QSAVE_REQUANTIZE};
    static const uint32_t want_type[] = {1, 30, 12}; /* F16, BF16, Q4_K */
    for (int k = 0; k < 3; k++) {
        xle_model *m = load_q4km();
        if (!m) return;
        xle_error err = {0};
        xle_tensor *w = &xle_model_weights(m)->layers[0].w_up; /* Q4_K */
        CHECK(w->dtype == XLE_Q4_K);
        CHECK_OK(xle_model_make_writable_f32(m, w, &err), &err);
        float *v = w->data;
        for (int i = 0; i < 256; i++) v[i] += 0.01f * (float)(i % 7);
        xle_model_set_quant_save(m, modes[k]);
        char out[300];
        snprintf(out, sizeof out, "%s/saved_%d.gguf", g_tmp, k);
        CHECK_OK(xle_model_save(m, out, &err), &err);
        xle_gguf *g = NULL;
        CHECK_OK(xle_gguf_open(out, &g, &err), &err);
        const xle_gguf_tensor_info *ti = g ? xle_gguf_find_tensor(g, "blk.0.ffn_up.weight") : NULL;
        const xle_gguf_tensor_info *td = g ? xle_gguf_find_tensor(g, "blk.0.ffn_down.weight") : NULL;
        CHECK_MSG(ti && ti->ggml_type == want_type[k], "mode %d: type %u", k, ti ? ti->ggml_type : 0);
        CHECK(td && td->ggml_type == 14); /* untouched Q6_K */
        xle_gguf_close(g);
        xle_model *r = NULL;
        CHECK_OK(xle_model_load(out, &r, &err), &err);
        if (r) {
            /* the saved values are the edited ones up to the storage's rounding */
            const xle_tensor *s = &xle_model_weights(r)->layers[0].w_up;
            const int64_t n = xle_tensor_numel(s);
            float *back = malloc((size_t)n * sizeof(float));
            xle_tensor_row_to_f32(s, 0, n, back);
            double se = 0, sv = 0;
            for (int64_t i = 0; i < n; i++) se += (back[i] - v[i]) * (back[i] - v[i]), sv += v[i] * v[i];
            const double bound = modes[k] == XLE_QSAVE_REQUANTIZE ? 0.15 : modes[k] == XLE_QSAVE_BF16 ? 4e-3 : 5e-4;
            CHECK_MSG(sqrt(se / sv) < bound, "mode %d: rms error %.3g", k, sqrt(se / sv));
            free(back);
        }
        xle_model_free(r);
        xle_model_free(m);
        unlink(out);
    }
}

/* A file cut inside a tensor's blocks is one clear error naming the tensor, not a crash. */
static void test_truncated(void) {
    char src[512], out[300];
    fixture("tiny_q4_k_m.gguf", src, sizeof src);
    snprintf(out, sizeof out, "%s/cut.gguf", g_tmp);
    FILE *f = fopen(src, "rb");
    CHECK(f != NULL);
    if (!f) return;
    fseek(f, 0, SEEK_END);
    const long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)size);
    CHECK(fread(buf, 1, (size_t)size, f) == (size_t)size);
    fclose(f);
    FILE *o = fopen(out, "wb");
    fwrite(buf, 1, (size_t)size - 1000, o);
    fclose(o);
    xle_model *m = NULL;
    xle_error err = {0};
    const xle_status st = xle_model_load(out, &m, &err);
    CHECK(st == XLE_ERR_FORMAT && m == NULL);
    CHECK_MSG(strstr(err.msg, "cut.gguf") && strstr(err.msg, ".weight") && strstr(err.msg, "past the end"),
              "%s", err.msg);
    free(buf);
    unlink(out);
}

int main(void) {
    char path[512];
    fixture("quant_blocks.gguf", path, sizeof path);
    xle_error err = {0};
    if (xle_gguf_open(path, &g_blocks, &err) != XLE_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    snprintf(g_tmp, sizeof g_tmp, "/tmp/xle_test_quant_XXXXXX");
    if (!mkdtemp(g_tmp)) return 1;
    RUN(test_block_sizes);
    RUN(test_dequantize);
    RUN(test_dot);
    RUN(test_dot_random_blocks);
    RUN(test_quantize);
    RUN(test_model_logits);
    RUN(test_save);
    RUN(test_truncated);
    xle_gguf_close(g_blocks);
    rmdir(g_tmp);
    return check_summary();
}
