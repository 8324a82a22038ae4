/*
 * test_engine.c: properties of the forward pass that need no reference file: generation with
 * the KV cache equals full recomputation; packed batches equal sequences run alone; the
 * sliding window really limits attention; hooks see and change the named points; the
 * sgemm path (many rows) equals the dot-product path (few rows) for f32, bf16 and f16
 * weights; matmul backward with stored bf16/f16 weights matches finite differences.
 */
#include "check.h"
#include "tensor/ops.h"
#include "tiny_model.h"

static void full_logits_last(xle_model *m, const int32_t *ids, int n, float *out) {
    int start[2] = {0, n}, row = n - 1;
    xle_batch b = {1, ids, start};
    xle_forward_opts o = {.logit_rows = &row, .n_logit_rows = 1};
    xle_error err;
    CHECK_OK(xle_forward(m, &b, &o, out, &err), &err);
}

static void check_cache_equals_full(xle_config cfg, int bias) {
    xle_model *m = tiny_model_new(&cfg, bias, XLE_F32, 3);
    CHECK(m != NULL);
    const int V = cfg.vocab_size;
    int32_t ids[40] = {1, 4, 7, 2, 9};
    int n_prompt = 5, n_out = 0;
    xle_sampler greedy = {0};
    xle_error err;
    CHECK_OK(xle_generate(m, ids, n_prompt, 20, &greedy, ids + n_prompt, &n_out, &err), &err);
    CHECK(n_out == 20);
    /* Every generated id is the argmax of a full recomputation over the sequence so far. */
    float logits[64];
    for (int i = 0; i < n_out; i++) {
        full_logits_last(m, ids, n_prompt + i, logits);
        int best = 0;
        for (int v = 1; v < V; v++)
            if (logits[v] > logits[best]) best = v;
        CHECK_MSG(best == ids[n_prompt + i], "step %d: cache %d full %d", i, ids[n_prompt + i], best);
    }
    /* And the cached logits themselves match within float rounding. */
    xle_kv_cache *kc;
    CHECK_OK(xle_kv_cache_new(m, 64, &kc, &err), &err);
    float cached[64];
    for (int t = 0; t < n_prompt + n_out; t++) {
        int one[2] = {0, 1}, row = 0;
        xle_batch b = {1, ids + t, one};
        xle_forward_opts o = {.cache = kc, .logit_rows = &row, .n_logit_rows = 1};
        CHECK_OK(xle_forward(m, &b, &o, cached, &err), &err);
        full_logits_last(m, ids, t + 1, logits);
        double ma, mr;
        check_max_diff(cached, logits, (size_t)V, &ma, &mr);
        CHECK_MSG(ma < 1e-5, "position %d: max diff %g", t, ma);
    }
    CHECK(xle_kv_cache_len(kc) == n_prompt + n_out);
    xle_kv_cache_free(kc);
    xle_model_free(m);
}

static void test_cache_llama(void) { check_cache_equals_full(tiny_config(XLE_ARCH_LLAMA), 0); }
static void test_cache_mistral_window(void) {
    xle_config c = tiny_config(XLE_ARCH_MISTRAL);
    c.sliding_window = 4;
    check_cache_equals_full(c, 0);
}
static void test_cache_qwen2(void) {
    xle_config c = tiny_config(XLE_ARCH_QWEN2);
    c.tied_embeddings = 1;
    check_cache_equals_full(c, 1);
}

static void test_packed_batch_equals_single(void) {
    xle_config cfg = tiny_config(XLE_ARCH_LLAMA);
    xle_model *m = tiny_model_new(&cfg, 0, XLE_F32, 5);
    const int V = cfg.vocab_size;
    const int32_t ids[] = {1, 3, 5, 7, 9, 11, 1, 2, 4, 6};
    int start[3] = {0, 6, 10};
    float packed[10 * 64], alone[6 * 64];
    xle_batch b = {2, ids, start};
    xle_error err;
    CHECK_OK(xle_forward(m, &b, NULL, packed, &err), &err);
    for (int s = 0; s < 2; s++) {
        int n = start[s + 1] - start[s], st1[2] = {0, n};
        xle_batch one = {1, ids + start[s], st1};
        CHECK_OK(xle_forward(m, &one, NULL, alone, &err), &err);
        double ma, mr;
        check_max_diff(packed + (size_t)start[s] * V, alone, (size_t)n * V, &ma, &mr);
        CHECK_MSG(ma < 1e-5, "sequence %d differs by %g", s, ma);
    }
    xle_model_free(m);
}

static void test_sliding_window_limits_attention(void) {
    /* With window W, the logits at position p must not depend on tokens before p-W+1 in the
     * first layer... but deeper layers widen the receptive field to L*(W-1)+1. Use 1 layer. */
    xle_config cfg = tiny_config(XLE_ARCH_MISTRAL);
    cfg.n_layers = 1;
    cfg.sliding_window = 3;
    xle_model *m = tiny_model_new(&cfg, 0, XLE_F32, 9);
    int32_t a[8] = {1, 4, 6, 8, 10, 12, 14, 16}, b[8];
    memcpy(b, a, sizeof a);
    b[1] = 5; /* position 1 is outside the window of position 7 (sees 5, 6, 7) */
    float la[64], lb[64];
    full_logits_last(m, a, 8, la);
    full_logits_last(m, b, 8, lb);
    double ma, mr;
    check_max_diff(la, lb, (size_t)cfg.vocab_size, &ma, &mr);
    CHECK(ma == 0.0);
    b[5] = 3; /* position 5 is inside the window */
    full_logits_last(m, b, 8, lb);
    check_max_diff(la, lb, (size_t)cfg.vocab_size, &ma, &mr);
    CHECK(ma > 1e-4);
    xle_model_free(m);
}

typedef struct capture {
    int calls, stop;
    float first;
} capture;

static int capture_hook(void *user, xle_point point, int layer, float *act, int n_tokens, int width) {
    (void)point, (void)layer, (void)n_tokens, (void)width;
    capture *c = user;
    c->calls++;
    c->first = act[0];
    return c->stop;
}

static void test_hooks(void) {
    xle_config cfg = tiny_config(XLE_ARCH_LLAMA);
    xle_model *m = tiny_model_new(&cfg, 0, XLE_F32, 11);
    const int32_t ids[] = {1, 2, 3, 4};
    int start[2] = {0, 4};
    xle_batch b = {1, ids, start};
    capture key = {0}, out = {0}, blk = {0, 1, 0};
    xle_hook hooks[] = {{XLE_POINT_MLP_KEY, 1, capture_hook, &key},
                        {XLE_POINT_MLP_OUT, 1, capture_hook, &out},
                        {XLE_POINT_BLOCK_OUT, 1, capture_hook, &blk},
                        {XLE_POINT_MLP_KEY, 2, capture_hook, &key}};
    xle_forward_opts o = {.hooks = hooks, .n_hooks = 4};
    xle_error err;
    CHECK_OK(xle_forward(m, &b, &o, NULL, &err), &err);
    /* The block-output hook of layer 1 stops the pass: layer 2's hook never runs. */
    CHECK(key.calls == 1 && out.calls == 1 && blk.calls == 1);
    xle_model_free(m);
}

static void check_paths_agree(xle_dtype dt) {
    /* 9 rows use sgemm on converted blocks; 1 row uses the dot product on stored values. */
    xle_model *m = xle_model_alloc("t");
    xle_rng rng;
    xle_rng_seed(&rng, 1);
    xle_tensor w;
    CHECK(tiny_tensor(m, &w, 37, 70, dt, &rng, 1.0f, 0));
    float in[9 * 70], out_many[9 * 37], out_one[37];
    for (int i = 0; i < 9 * 70; i++) in[i] = xle_rng_normal(&rng);
    float *scratch = malloc(XLE_MATMUL_SCRATCH * sizeof(float));
    xle_matmul_forward(out_many, in, &w, NULL, 9, scratch, XLE_PRECISION_EXACT);
    for (int t = 0; t < 9; t++) {
        xle_matmul_forward(out_one, in + t * 70, &w, NULL, 1, scratch, XLE_PRECISION_EXACT);
        double ma, mr;
        check_max_diff(out_one, out_many + t * 37, 37, &ma, &mr);
        CHECK_MSG(ma < 1e-4, "%s row %d: %g", xle_dtype_name(dt), t, ma);
        /* And both equal a double-precision dot of the stored values. */
        for (int o = 0; o < 37; o++) {
            double s = 0;
            for (int i = 0; i < 70; i++) s += (double)in[t * 70 + i] * xle_tensor_get_f32(&w, (int64_t)o * 70 + i);
            CHECK_NEAR(out_one[o], s, 1e-4 * (1 + fabs(s)));
        }
    }
    /* Backward: din = dout · W by finite differences of <dout, in·Wᵀ>. */
    float dout[9 * 37], din[9 * 70] = {0};
    for (int i = 0; i < 9 * 37; i++) dout[i] = xle_rng_normal(&rng);
    xle_matmul_backward(din, NULL, NULL, dout, in, &w, 9, scratch);
    for (int probe = 0; probe < 20; probe++) {
        int idx = (probe * 97) % (9 * 70);
        float old = in[idx];
        double lp = 0, lm = 0;
        in[idx] = old + 1e-2f;
        xle_matmul_forward(out_many, in, &w, NULL, 9, scratch, XLE_PRECISION_EXACT);
        for (int i = 0; i < 9 * 37; i++) lp += (double)dout[i] * out_many[i];
        in[idx] = old - 1e-2f;
        xle_matmul_forward(out_many, in, &w, NULL, 9, scratch, XLE_PRECISION_EXACT);
        for (int i = 0; i < 9 * 37; i++) lm += (double)dout[i] * out_many[i];
        in[idx] = old;
        CHECK_NEAR((lp - lm) / 2e-2, din[idx], 1e-3 * (1 + fabs(din[idx])));
    }
    free(scratch);
    xle_model_free(m);
}

static void test_matmul_f32(void) { check_paths_agree(XLE_F32); }
static void test_matmul_bf16(void) { check_paths_agree(XLE_BF16); }
static void test_matmul_f16(void) { check_paths_agree(XLE_F16); }

static void test_dtype_rounding(void) {
    /* Round-to-nearest-even against known bit patterns. */
    CHECK(xle_f32_to_bf16(1.0f) == 0x3f80);
    CHECK(xle_f32_to_bf16(1.00390625f) == 0x3f80);   /* halfway: rounds to even */
    CHECK(xle_f32_to_bf16(1.01171875f) == 0x3f82);   /* halfway: rounds up to even */
    CHECK(xle_f32_to_f16(1.0f) == 0x3c00);
    CHECK(xle_f32_to_f16(65504.0f) == 0x7bff);
    CHECK(xle_f32_to_f16(1e6f) == 0x7c00);
    CHECK(xle_f32_to_f16(5.960464477539063e-08f) == 0x0001); /* smallest subnormal */
    CHECK(xle_f16_to_f32(0x0001) == 5.960464477539063e-08f);
    CHECK(xle_f16_to_f32(0xc000) == -2.0f);
    for (uint32_t h = 0; h < 0x7c00; h++) /* every finite positive f16 round-trips */
        if (xle_f32_to_f16(xle_f16_to_f32((uint16_t)h)) != h) {
            CHECK_MSG(0, "f16 0x%04x does not round-trip", h);
            break;
        }
}

static void test_bad_batch(void) {
    xle_config cfg = tiny_config(XLE_ARCH_LLAMA);
    xle_model *m = tiny_model_new(&cfg, 0, XLE_F32, 2);
    const int32_t ids[] = {1, 99};
    int start[2] = {0, 2};
    xle_batch b = {1, ids, start};
    xle_error err = {0};
    CHECK(xle_forward(m, &b, NULL, NULL, &err) == XLE_ERR_ARG);
    CHECK(strstr(err.msg, "99") != NULL);
    xle_model_free(m);
}

int main(void) {
    RUN(test_cache_llama);
    RUN(test_cache_mistral_window);
    RUN(test_cache_qwen2);
    RUN(test_packed_batch_equals_single);
    RUN(test_sliding_window_limits_attention);
    RUN(test_hooks);
    RUN(test_matmul_f32);
    RUN(test_matmul_bf16);
    RUN(test_matmul_f16);
    RUN(test_dtype_rounding);
    RUN(test_bad_batch);
    return check_summary();
}
