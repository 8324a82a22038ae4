/*
 * test_edit_partial.c: the partial passes that ROME's v* and MEMIT's z optimisations run
 * (model/partial.h: the layers below the edit and the rows before each fact token computed
 * once, each step over the changing rows of the layers above) against the full passes, for
 * every model variant the engine supports:
 *  - logits with a vector added after the edited layer at some rows = the full forward with the
 *    same vector added by a hook (1e-5 relative);
 *  - the gradient of Σ C ⊙ logits w.r.t. the residual stream at the changing rows = the full
 *    backward's (1e-4 relative), and = central finite differences of the partial forward;
 *  - v* (ROME, MLP output) and z (MEMIT, block output) from xle_edit_optimize_delta = from the
 *    full-pass optimisation (same steps, delta and initial activation within 1e-4).
 */
#include "check.h"
#include "edit/edit_internal.h"
#include "model/partial.h"
#include "tiny_model.h"

#define N_SEQS 3
static const int32_t tokens[] = {1, 5, 9, 3, 17, 4, 8, 1, 12, 6, 11, 2, 7, 1, 3, 14, 15, 16, 9, 10};
static const int seq_start[N_SEQS + 1] = {0, 7, 12, 20};
static const int first_var[N_SEQS] = {3, 0, 5};     /* within each sequence */
static const int logit_rows[] = {5, 6, 9, 11, 17, 19};
#define N_LOGIT 6
static const int add_rows[] = {3, 7, 17};            /* each sequence's first changing row */
#define N_ADD 3

typedef struct add_hook_ctx {
    const float *add;
} add_hook_ctx;

static int add_hook(void *user, xle_point point, int layer, float *act, int n_tokens, int width) {
    (void)point, (void)layer, (void)n_tokens;
    const add_hook_ctx *c = user;
    for (int i = 0; i < N_ADD; i++)
        for (int j = 0; j < width; j++) act[(int64_t)add_rows[i] * width + j] += c->add[j];
    return 0;
}

static double rel_diff(const float *a, const float *b, int64_t n) {
    double md = 0, mb = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        md = d > md ? d : md;
        mb = fabs((double)b[i]) > mb ? fabs((double)b[i]) : mb;
    }
    return mb > 0 ? md / mb : md;
}

/* The same vector at every row of add_rows, as the edits use it. */
static xle_status forward_same(xle_upper *u, const float *add, int d, float *logits, xle_error *err) {
    float rows[N_ADD * 64];
    for (int i = 0; i < N_ADD; i++) memcpy(rows + i * d, add, (size_t)d * sizeof(float));
    return xle_upper_forward(u, add_rows, N_ADD, rows, logits, err);
}

static double partial_loss(xle_upper *u, const float *add, int d, const float *C, int V) {
    float logits[N_LOGIT * 64];
    xle_error err;
    if (forward_same(u, add, d, logits, &err) != XLE_OK) return NAN;
    double s = 0;
    for (int i = 0; i < N_LOGIT * V; i++) s += (double)C[i] * logits[i];
    return s;
}

static void check_passes(const char *name, xle_config cfg, int with_bias, int layer) {
    xle_model *m = tiny_model_new(&cfg, with_bias, XLE_F32, 42);
    CHECK(m != NULL);
    if (!m) return;
    const int V = cfg.vocab_size, d = cfg.dim, T = seq_start[N_SEQS];
    xle_rng rng;
    xle_rng_seed(&rng, 11);
    float add[64], C[N_LOGIT * 64];
    for (int j = 0; j < d; j++) add[j] = 0.5f * xle_rng_normal(&rng);
    for (int i = 0; i < N_LOGIT * V; i++) C[i] = xle_rng_normal(&rng);
    xle_error err;
    xle_batch b = {N_SEQS, tokens, seq_start};

    /* Full passes with the vector added by a hook. */
    add_hook_ctx hc = {add};
    xle_hook h = {XLE_POINT_BLOCK_OUT, layer, add_hook, &hc};
    xle_acts *acts = xle_acts_new();
    xle_forward_opts o = {.hooks = &h, .n_hooks = 1, .acts = acts, .logit_rows = logit_rows,
                          .n_logit_rows = N_LOGIT, .keep_from_layer = layer};
    float full_logits[N_LOGIT * 64], part_logits[N_LOGIT * 64];
    CHECK_OK(xle_forward(m, &b, &o, full_logits, &err), &err);
    float *dblock = calloc((size_t)T * d, sizeof(float));
    CHECK_OK(xle_backward(m, acts, C, layer, dblock, NULL, &err), &err);

    /* Partial passes. */
    xle_upper *u = NULL;
    CHECK_OK(xle_upper_new(m, &b, layer, first_var, logit_rows, N_LOGIT, NULL, 0, &u, &err), &err);
    if (!u) goto done;
    const int nv = xle_upper_n_var(u);
    CHECK(nv == T - 3 - 0 - 5);
    CHECK(xle_upper_var_index(u, 2) == -1 && xle_upper_var_index(u, 3) == 0 && xle_upper_var_index(u, 17) == nv - 3);
    CHECK_OK(forward_same(u, add, d, part_logits, &err), &err);
    double e_logits = rel_diff(part_logits, full_logits, N_LOGIT * V);
    CHECK_MSG(e_logits <= 1e-5, "%s, layer %d: partial logits differ by %.3g", name, layer, e_logits);
    float *dvar = calloc((size_t)nv * d, sizeof(float)), *dfull = calloc((size_t)nv * d, sizeof(float));
    CHECK_OK(xle_upper_backward(u, C, dvar, &err), &err);
    for (int r = 0; r < T; r++) {
        int vi = xle_upper_var_index(u, r);
        if (vi >= 0) memcpy(dfull + (int64_t)vi * d, dblock + (int64_t)r * d, (size_t)d * sizeof(float));
    }
    double e_grad = rel_diff(dvar, dfull, (int64_t)nv * d);
    CHECK_MSG(e_grad <= 1e-4, "%s, layer %d: partial gradient differs from the full one by %.3g", name, layer, e_grad);

    /* Finite differences of the partial forward, through the shared vector: dL/d add_j is the
     * sum of the residual gradients at the rows it is added to. */
    int bad = 0;
    for (int j = 0; j < d; j++) {
        const float eps = 1e-2f, keep = add[j];
        add[j] = keep + eps;
        double lp = partial_loss(u, add, d, C, V);
        add[j] = keep - eps;
        double lm = partial_loss(u, add, d, C, V);
        add[j] = keep;
        double num = (lp - lm) / (2 * eps), ana = 0;
        for (int i = 0; i < N_ADD; i++) ana += dvar[(int64_t)xle_upper_var_index(u, add_rows[i]) * d + j];
        if (!(fabs(num - ana) <= 2e-3 + 2e-2 * fabs(ana))) {
            if (bad++ < 5) fprintf(stderr, "%s, layer %d: d add[%d]: numeric %.6g analytic %.6g\n", name, layer, j, num, ana);
        }
    }
    CHECK_MSG(bad == 0, "%s, layer %d: %d finite-difference mismatches", name, layer, bad);
    printf("partial: %-18s layer %d: logits %.1e, gradient %.1e\n", name, layer, e_logits, e_grad);
    free(dvar), free(dfull);
done:
    xle_upper_free(u);
    free(dblock);
    xle_acts_free(acts);
    xle_model_free(m);
}

static void check_variant(const char *name, xle_config cfg, int with_bias) {
    for (int layer = 0; layer < cfg.n_layers; layer++) check_passes(name, cfg, with_bias, layer);
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

/* Bad arguments are errors, not crashes. */
static void test_bad_arguments(void) {
    xle_config cfg = tiny_config(XLE_ARCH_LLAMA);
    xle_model *m = tiny_model_new(&cfg, 0, XLE_F32, 42);
    xle_batch b = {N_SEQS, tokens, seq_start};
    xle_upper *u = NULL;
    xle_error err;
    const int before_fact[] = {1, 9, 17};  /* row 1 is before sequence 0's first changing row */
    CHECK(xle_upper_new(m, &b, 1, first_var, before_fact, 3, NULL, 0, &u, &err) == XLE_ERR_ARG && !u);
    const int too_far[N_SEQS] = {3, 0, 9};
    CHECK(xle_upper_new(m, &b, 1, too_far, logit_rows, N_LOGIT, NULL, 0, &u, &err) == XLE_ERR_ARG && !u);
    CHECK(xle_upper_new(m, &b, 3, first_var, logit_rows, N_LOGIT, NULL, 0, &u, &err) == XLE_ERR_ARG && !u);
    CHECK_OK(xle_upper_new(m, &b, 1, first_var, logit_rows, N_LOGIT, NULL, 0, &u, &err), &err);
    float add[16] = {0}, logits[N_LOGIT * 19], dvar[20 * 16];
    CHECK(xle_upper_backward(u, logits, dvar, &err) == XLE_ERR_ARG); /* no forward yet */
    const int fixed_row[1] = {2};
    CHECK(xle_upper_forward(u, fixed_row, 1, add, logits, &err) == XLE_ERR_ARG);
    xle_upper_free(u);
    xle_model_free(m);
}

/* v* and z: the optimisation with partial passes against the one with full passes. */
static void check_optimize(xle_point point, int layer, int steps, int subject_ends_prompt) {
    xle_config cfg = tiny_config(XLE_ARCH_LLAMA);
    cfg.n_layers = 4;
    xle_model *m = tiny_model_new(&cfg, 0, XLE_F32, 7);
    const int d = cfg.dim;
    /* bare prompt, two prefixed ones (the subject "9 3" ends at different places), KL prompt */
    static int32_t p0[] = {1, 4, 9, 3, 6, 8}, p1[] = {1, 12, 13, 4, 9, 3, 6, 8},
                         p2[] = {1, 15, 16, 17, 18, 4, 9, 3, 6, 8}, kl[] = {1, 9, 3, 5, 7};
    xle_edit_prompt prompts[3] = {{p0, 6, 3, 0}, {p1, 8, 5, 1}, {p2, 10, 7, 1}};
    /* At the last layer only rows that are scored pass the delta on: end the prompts with
     * the subject there. */
    if (subject_ends_prompt)
        for (int i = 0; i < 3; i++) prompts[i].n = prompts[i].fact_idx + 1;
    static int32_t target[] = {11, 14, 10};
    xle_edit_request_tok req = {prompts, 3, {kl, 5, 2, 0}, target, 3};
    xle_edit_hparams hp;
    xle_edit_hparams_default(&hp, point == XLE_POINT_MLP_OUT ? XLE_EDIT_ROME : XLE_EDIT_MEMIT, cfg.n_layers);
    hp.v_num_grad_steps = steps;
    hp.v_weight_decay = 0.5;
    float init_f[16], delta_f[16], init_p[16], delta_p[16];
    double loss_f = 0, loss_p = 0;
    int steps_f = -1, steps_p = -2;
    xle_error err;
    CHECK_OK(xle_edit_optimize_delta_full(m, &hp, &req, point, layer, init_f, delta_f, &loss_f, &steps_f, &err), &err);
    CHECK_OK(xle_edit_optimize_delta(m, &hp, &req, point, layer, init_p, delta_p, &loss_p, &steps_p, &err), &err);
    double e_init = rel_diff(init_p, init_f, d), e_delta = rel_diff(delta_p, delta_f, d);
    double nd = 0;
    for (int j = 0; j < d; j++) nd += (double)delta_f[j] * delta_f[j];
    printf("partial: %s layer %d: v*/z after %d steps: init %.1e, delta %.1e (|delta| %.3g), loss %.6f vs %.6f\n",
           point == XLE_POINT_MLP_OUT ? "rome " : "memit", layer, steps_p, e_init, e_delta, sqrt(nd), loss_p, loss_f);
    CHECK(steps_p == steps_f);
    CHECK(nd > 0); /* the optimisation moved */
    CHECK_MSG(e_init <= 1e-5, "init differs by %.3g", e_init);
    CHECK_MSG(e_delta <= 1e-4, "delta differs by %.3g", e_delta);
    CHECK(fabs(loss_p - loss_f) <= 1e-5 * (1 + fabs(loss_f)));
    xle_model_free(m);
}

static void test_optimize_rome(void) {
    check_optimize(XLE_POINT_MLP_OUT, 1, 8, 0);
    check_optimize(XLE_POINT_MLP_OUT, 3, 5, 1); /* the last layer: nothing above it */
}

static void test_optimize_memit(void) {
    check_optimize(XLE_POINT_BLOCK_OUT, 2, 8, 0);
    check_optimize(XLE_POINT_BLOCK_OUT, 0, 5, 1);
}

/* Several requests optimised side by side = each optimised alone (MEMIT's z), the early stop
 * per request: b asks for what the model already predicts and stops at once, a runs on. */
static void test_optimize_joint(void) {
    xle_config cfg = tiny_config(XLE_ARCH_LLAMA);
    cfg.n_layers = 4;
    xle_model *m = tiny_model_new(&cfg, 0, XLE_F32, 9);
    const int d = cfg.dim;
    /* Sharp logits, so that b's loss starts below the early-stop threshold. */
    float *lm = m->w.lm_head.data;
    for (int64_t i = 0; i < xle_tensor_numel(&m->w.lm_head); i++) lm[i] *= 30;
    static int32_t a0[] = {1, 4, 9, 3, 6, 8}, a1[] = {1, 12, 13, 4, 9, 3, 6, 8}, akl[] = {1, 9, 3, 5, 7};
    static int32_t b0[] = {1, 7, 2, 5}, bkl[] = {1, 2, 5};
    static int32_t ta[] = {11, 14}, tb[1];
    {
        float logits[19];
        const int ss[2] = {0, 4}, row = 3;
        xle_batch b = {1, b0, ss};
        xle_forward_opts o = {.logit_rows = &row, .n_logit_rows = 1};
        xle_error e;
        CHECK_OK(xle_forward(m, &b, &o, logits, &e), &e);
        tb[0] = 0;
        for (int v = 1; v < cfg.vocab_size; v++)
            if (logits[v] > logits[tb[0]]) tb[0] = v;
    }
    xle_edit_prompt pa[2] = {{a0, 6, 3, 0}, {a1, 8, 5, 1}}, pb[1] = {{b0, 4, 3, 0}};
    xle_edit_request_tok reqs[2] = {{pa, 2, {akl, 5, 2, 0}, ta, 2}, {pb, 1, {bkl, 3, 2, 0}, tb, 1}};
    xle_edit_hparams hp;
    xle_edit_hparams_default(&hp, XLE_EDIT_MEMIT, cfg.n_layers);
    hp.v_num_grad_steps = 8;
    float init[32], delta[32], init1[16], delta1[16];
    double loss[2], loss1;
    int steps[2], steps1;
    xle_error err;
    CHECK_OK(xle_edit_optimize_deltas(m, &hp, reqs, 2, XLE_POINT_BLOCK_OUT, 1, init, delta, loss, steps, &err), &err);
    printf("partial: joint: steps %d / %d, loss %.4f / %.4f\n", steps[0], steps[1], loss[0], loss[1]);
    CHECK(steps[0] == 7 && steps[1] == 0);
    for (int r = 0; r < 2; r++) {
        CHECK_OK(xle_edit_optimize_delta(m, &hp, &reqs[r], XLE_POINT_BLOCK_OUT, 1, init1, delta1, &loss1, &steps1, &err), &err);
        CHECK(steps1 == steps[r]);
        CHECK(fabs(loss1 - loss[r]) <= 1e-5 * (1 + fabs(loss1)));
        CHECK_MSG(rel_diff(delta + r * d, delta1, d) <= 1e-4, "request %d: delta differs by %.3g", r, rel_diff(delta + r * d, delta1, d));
        CHECK(rel_diff(init + r * d, init1, d) <= 1e-6);
    }
    xle_model_free(m);
}

int main(void) {
    RUN(test_llama_gqa);
    RUN(test_llama_interleaved);
    RUN(test_mistral_window);
    RUN(test_qwen2_bias_tied);
    RUN(test_llama3_rope);
    RUN(test_bad_arguments);
    RUN(test_optimize_rome);
    RUN(test_optimize_memit);
    RUN(test_optimize_joint);
    return check_summary();
}
