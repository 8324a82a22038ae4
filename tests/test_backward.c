/*
 * test_backward.c: the backward pass checked by central finite differences, for every model
 * variant the engine supports (GQA, interleaved and half-split RoPE, sliding window, q/k/v
 * biases with tied embeddings, llama3 RoPE scaling): gradients w.r.t. a block output (what
 * ROME/MEMIT optimise) and w.r.t. sampled elements of every weight tensor.
 */
#include "check.h"
#include "tiny_model.h"

#define N_SEQS 2
static const int32_t tokens[] = {1, 5, 9, 3, 17, 4, 8, 1, 12, 6, 11, 2};
static const int seq_start[N_SEQS + 1] = {0, 7, 12};
static const int logit_rows[] = {2, 6, 9, 11};
#define N_ROWS 4

typedef struct perturb {
    int layer, row, col;
    float delta;
} perturb;

static int add_delta(void *user, xle_point point, int layer, float *act, int n_tokens, int width) {
    (void)point, (void)layer, (void)n_tokens;
    const perturb *p = user;
    act[(int64_t)p->row * width + p->col] += p->delta;
    return 0;
}

/* L = Σ C ⊙ logits(rows); optional perturbation of the block output of one layer. */
static double loss(xle_model *m, const float *C, const perturb *p) {
    const int V = m->cfg.vocab_size;
    float logits[N_ROWS * 64];
    xle_batch b = {N_SEQS, tokens, seq_start};
    xle_hook h = {XLE_POINT_BLOCK_OUT, p ? p->layer : 0, add_delta, (void *)p};
    xle_forward_opts o = {.hooks = p ? &h : NULL, .n_hooks = p ? 1 : 0, .logit_rows = logit_rows,
                          .n_logit_rows = N_ROWS};
    xle_error err;
    if (xle_forward(m, &b, &o, logits, &err) != XLE_OK) return NAN;
    double s = 0;
    for (int i = 0; i < N_ROWS * V; i++) s += (double)C[i] * logits[i];
    return s;
}

static int close_enough(double num, double ana) { return fabs(num - ana) <= 2e-3 + 2e-2 * fabs(ana); }

static void check_variant(const char *name, xle_config cfg, int with_bias) {
    xle_model *m = tiny_model_new(&cfg, with_bias, XLE_F32, 42);
    CHECK(m != NULL);
    if (!m) return;
    const int V = cfg.vocab_size, T = seq_start[N_SEQS], d = cfg.dim;
    float C[N_ROWS * 64];
    xle_rng rng;
    xle_rng_seed(&rng, 7);
    for (int i = 0; i < N_ROWS * V; i++) C[i] = xle_rng_normal(&rng);

    /* Analytic gradients. */
    xle_acts *acts = xle_acts_new();
    xle_grads *grads = NULL;
    xle_error err;
    CHECK_OK(xle_grads_new(m, &grads, &err), &err);
    float logits[N_ROWS * 64];
    xle_batch b = {N_SEQS, tokens, seq_start};
    xle_forward_opts o = {.acts = acts, .logit_rows = logit_rows, .n_logit_rows = N_ROWS};
    CHECK_OK(xle_forward(m, &b, &o, logits, &err), &err);
    const int stop = 1;
    float *dblock = calloc((size_t)T * d, sizeof(float));
    CHECK_OK(xle_backward(m, acts, C, stop, dblock, grads, &err), &err);

    /* Block output of layer `stop`: every element of a few rows in both sequences. */
    int bad = 0;
    const int check_rows[] = {0, 3, 6, 8, 11};
    for (size_t r = 0; r < sizeof check_rows / sizeof check_rows[0]; r++)
        for (int j = 0; j < d; j++) {
            const float eps = 1e-2f;
            perturb p = {stop, check_rows[r], j, eps}, q = {stop, check_rows[r], j, -eps};
            double num = (loss(m, C, &p) - loss(m, C, &q)) / (2 * eps);
            double ana = dblock[check_rows[r] * d + j];
            if (!close_enough(num, ana)) {
                if (bad++ < 5)
                    fprintf(stderr, "%s: d_block_out[%d,%d]: numeric %.6g analytic %.6g\n", name, check_rows[r], j, num, ana);
            }
        }
    CHECK_MSG(bad == 0, "%s: %d block-output gradient mismatches", name, bad);

    /* The gradient of a block output below `stop` needs the full pass: compare at layer 0. */
    xle_grads_zero(grads);
    float *dblock0 = calloc((size_t)T * d, sizeof(float));
    CHECK_OK(xle_backward(m, acts, C, 0, dblock0, grads, &err), &err);
    bad = 0;
    for (int j = 0; j < d; j++) {
        const float eps = 1e-2f;
        perturb p = {0, 4, j, eps}, q = {0, 4, j, -eps};
        double num = (loss(m, C, &p) - loss(m, C, &q)) / (2 * eps);
        if (!close_enough(num, dblock0[4 * d + j])) bad++;
    }
    CHECK_MSG(bad == 0, "%s: %d layer-0 block-output gradient mismatches", name, bad);

    /* Weights: sampled elements of every tensor of every layer (grads from stop_layer 0). */
    xle_weights *G = xle_grads_weights(grads);
    bad = 0;
    int checked = 0;
    for (int l = -1; l < cfg.n_layers; l++) {
        xle_tensor *ws[13], *gs[13];
        int n = 0;
        if (l < 0) {
            ws[n] = &m->w.tok_embd, gs[n++] = &G->tok_embd;
            ws[n] = &m->w.out_norm, gs[n++] = &G->out_norm;
            if (!cfg.tied_embeddings) ws[n] = &m->w.lm_head, gs[n++] = &G->lm_head;
        } else {
            xle_layer_weights *L = &m->w.layers[l], *GL = &G->layers[l];
            xle_tensor *a[] = {&L->attn_norm, &L->wq, &L->wk, &L->wv, &L->wo, &L->bq, &L->bk,
                               &L->bv, &L->ffn_norm, &L->w_gate, &L->w_up, &L->w_down};
            xle_tensor *g[] = {&GL->attn_norm, &GL->wq, &GL->wk, &GL->wv, &GL->wo, &GL->bq, &GL->bk,
                               &GL->bv, &GL->ffn_norm, &GL->w_gate, &GL->w_up, &GL->w_down};
            for (int i = 0; i < 12; i++)
                if (a[i]->data) ws[n] = a[i], gs[n++] = g[i];
        }
        for (int i = 0; i < n; i++) {
            int64_t numel = xle_tensor_numel(ws[i]);
            for (int s = 0; s < 6; s++) {
                int64_t idx = (int64_t)(xle_rng_uniform(&rng) * numel);
                if (ws[i] == &m->w.tok_embd) idx = (int64_t)tokens[s] * d + s % d; /* rows in use */
                float *w = ws[i]->data, old = w[idx];
                const float eps = 1e-2f;
                w[idx] = old + eps;
                double lp = loss(m, C, NULL);
                w[idx] = old - eps;
                double lm = loss(m, C, NULL);
                w[idx] = old;
                double num = (lp - lm) / (2 * eps), ana = ((float *)gs[i]->data)[idx];
                checked++;
                if (!close_enough(num, ana)) {
                    if (bad++ < 5)
                        fprintf(stderr, "%s: layer %d tensor %d elem %lld: numeric %.6g analytic %.6g\n",
                                name, l, i, (long long)idx, num, ana);
                }
            }
        }
    }
    CHECK_MSG(bad == 0, "%s: %d of %d weight gradient mismatches", name, bad, checked);
    CHECK(checked >= 6 * (2 + 9 * cfg.n_layers));
    free(dblock);
    free(dblock0);
    xle_grads_free(grads);
    xle_acts_free(acts);
    xle_model_free(m);
}

static void test_llama_gqa(void) { check_variant("llama-gqa", tiny_config(XLE_ARCH_LLAMA), 0); }

static void test_llama_interleaved(void) {
    xle_config c = tiny_config(XLE_ARCH_LLAMA);
    c.rope_interleaved = 1;
    check_variant("llama-interleaved", c, 0);
}

static void test_mistral_window(void) {
    xle_config c = tiny_config(XLE_ARCH_MISTRAL);
    c.sliding_window = 3;
    check_variant("mistral-window", c, 0);
}

static void test_qwen2_bias_tied(void) {
    xle_config c = tiny_config(XLE_ARCH_QWEN2);
    c.tied_embeddings = 1;
    check_variant("qwen2-bias-tied", c, 1);
}

static void test_llama3_rope(void) {
    xle_config c = tiny_config(XLE_ARCH_LLAMA);
    c.rope_scaling = XLE_ROPE_LLAMA3;
    c.rope_factor = 8;
    c.rope_low_freq_factor = 1;
    c.rope_high_freq_factor = 4;
    c.rope_original_max_pos = 16;
    c.rope_theta = 500000;
    check_variant("llama3-rope", c, 0);
}

int main(void) {
    RUN(test_llama_gqa);
    RUN(test_llama_interleaved);
    RUN(test_mistral_window);
    RUN(test_qwen2_bias_tied);
    RUN(test_llama3_rope);
    return check_summary();
}
