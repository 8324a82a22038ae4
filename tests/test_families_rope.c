/*
 * test_families_rope.c: the families beyond Llama and GPT-2 (docs/families.md) — GPT-J, Gemma,
 * Gemma-2 (RoPE) and BLOOM (ALiBi) — from the fixtures tests/reference/make_family_fixtures.py writes (tiny random models
 * saved the Hugging Face way, with golden logits from the script's float64 PyTorch
 * re-implementation of the Hugging Face modeling code).
 *
 * Per family: the folder loads with the family's configuration; the logits at every position of
 * four sequences (5, 12, 32 and 64 = max positions tokens) are within TOL_ABS = 1e-4 of the golden
 * ones, one sequence at a time, packed in one batch and through a KV cache (Gemma-2's
 * sliding window of 6 on the even layers is crossed by three of the four sequences); the
 * tokenizer.json (GPT-J: GPT-2's byte-level BPE; Gemma: SentencePiece-converted with byte
 * fallback) encodes the script's test text to the script's ids; the backward pass agrees with
 * central finite differences on 4 sampled elements of every weight tensor (GPT-J's parallel block,
 * partial interleaved rotary and head bias; Gemma's (1 + w) RMSNorm, √d embedding scale and
 * GeGLU; Gemma-2's sandwich norms, soft-capped scores and logits and score scale; BLOOM's
 * embedding LayerNorm, ALiBi with six heads and the per-head fused query_key_value); an unedited
 * save has every tensor byte for byte and an edited one (the MLP output projection, as ROME
 * writes it) reloads to the same logits bit for bit. EasyEdit's gpt-j-6B files (ROME, MEMIT, FT)
 * select transformer.h.{}.mlp.fc_out and their layers for the GPT-J model. A bad value in a
 * field each family reads (rotary_dim, the activation, query_pre_attn_scalar, …) is one error
 * line naming config.json and the field.
 */
#include <jansson.h>
#include <sys/stat.h>
#include <unistd.h>

#include "family_fixture.h"
#include "formats/formats_internal.h"
#include "model/partial.h"
#include "tensor/ops.h"
#include "xledit.h"

#define FIX FAMILY_FIX_DIR
#define EASYEDIT XLE_SOURCE_DIR "/tests/fixtures/easyedit/hparams"
#define TOL_ABS 1e-4

static family_fix g_fix;

static const char *model_dir(char *buf, size_t cap) {
    snprintf(buf, cap, FIX "%s/hf_f32", g_fix.name);
    return buf;
}

static xle_model *load_model(void) {
    xle_model *m = NULL;
    xle_error err = {0};
    char dir[256];
    CHECK_OK(xle_model_load(model_dir(dir, sizeof dir), &m, &err), &err);
    return m;
}

/* ---- configuration per family -------------------------------------------------------------- */

static void test_gptj_config(void) {
    xle_model *m = load_model();
    if (!m) return;
    const xle_config *c = xle_model_config(m);
    CHECK(c->arch == XLE_ARCH_GPTJ);
    CHECK(c->dim == 32 && c->n_heads == 4 && c->n_kv_heads == 4 && c->head_dim == 8);
    CHECK(c->n_layers == 2 && c->ffn_dim == 128 && c->max_seq_len == 64);
    CHECK(c->rotary_dim == 4 && c->rope_interleaved == 1 && !c->tied_embeddings);
    const xle_weights *w = xle_model_weights(m);
    CHECK(w->lm_head_b.data && w->lm_head_b.shape[0] == c->vocab_size);
    CHECK(w->lm_head.data && w->lm_head.data != w->tok_embd.data);
    CHECK(w->layers[1].b_up.data && w->layers[1].b_down.data && w->layers[0].attn_norm_b.data);
    CHECK(!w->layers[0].ffn_norm.data && !w->layers[0].w_gate.data && !w->layers[0].bq.data);
    CHECK(w->layers[0].w_up.shape[0] == 128 && w->layers[0].w_up.shape[1] == 32);
    xle_model_free(m);
}

static void test_gemma_config(void) {
    xle_model *m = load_model();
    if (!m) return;
    const xle_config *c = xle_model_config(m);
    const int v2 = !strcmp(g_fix.name, "gemma2");
    CHECK(c->arch == (v2 ? XLE_ARCH_GEMMA2 : XLE_ARCH_GEMMA));
    CHECK(c->dim == 32 && c->n_heads == 4 && c->n_kv_heads == 2 && c->head_dim == 16);
    CHECK(c->n_layers == 2 && c->ffn_dim == 64 && c->tied_embeddings && c->rope_interleaved == 0);
    CHECK(c->bos_id == 2 && c->eos_id == 1);
    const xle_weights *w = xle_model_weights(m);
    CHECK(w->lm_head.data == w->tok_embd.data && w->layers[1].w_gate.data);
    if (v2) {
        CHECK(c->sliding_window == 6 && c->attn_softcap == 2.0f && c->final_softcap == 15.0f);
        CHECK(fabsf(c->attn_scale - 1.0f / sqrtf(24.0f)) < 1e-7f);
        CHECK(w->layers[1].post_attn_norm.data && w->layers[1].post_ffn_norm.data);
    } else {
        CHECK(c->sliding_window == 0 && c->attn_softcap == 0 && c->final_softcap == 0);
        CHECK(!w->layers[1].post_attn_norm.data);
    }
    xle_model_free(m);
}

static void test_bloom_config(void) {
    xle_model *m = load_model();
    if (!m) return;
    const xle_config *c = xle_model_config(m);
    CHECK(c->arch == XLE_ARCH_BLOOM);
    CHECK(c->dim == 48 && c->n_heads == 6 && c->n_kv_heads == 6 && c->head_dim == 8);
    CHECK(c->n_layers == 2 && c->ffn_dim == 192 && c->tied_embeddings && c->vocab_size == 280);
    CHECK(c->bos_id == 1 && c->eos_id == 2);
    const xle_weights *w = xle_model_weights(m);
    CHECK(w->lm_head.data == w->tok_embd.data && w->embd_norm.data && w->embd_norm_b.data);
    CHECK(w->layers[1].bq.data && w->layers[1].bv.data && w->layers[1].bo.data && !w->layers[0].w_gate.data);
    CHECK(w->layers[0].wk.shape[0] == 48 && w->layers[0].wk.shape[1] == 48 && w->layers[0].bk.shape[0] == 48);
    /* query_key_value's rows are [n_head, 3, head_dim]: k's row of head 2, element 5 is file row
     * (3·2 + 1)·8 + 5 */
    char dir[256], path[320];
    snprintf(path, sizeof path, "%s/model.safetensors", model_dir(dir, sizeof dir));
    size_t size = 0;
    uint8_t *bytes = test_read_file(path, &size);
    xle_safetensors *st = NULL;
    xle_error err = {0};
    CHECK(bytes && xle_safetensors_parse(path, bytes, size, &st, &err) == XLE_OK);
    const xle_st_entry *e = st ? xle_safetensors_find(st, "transformer.h.1.self_attention.query_key_value.weight") : NULL;
    CHECK(e != NULL);
    if (e) {
        const float *fused = (const float *)e->data, *wk = w->layers[1].wk.data;
        CHECK(memcmp(wk + (2 * 8 + 5) * 48, fused + ((3 * 2 + 1) * 8 + 5) * 48, 48 * sizeof(float)) == 0);
    }
    xle_safetensors_free(st);
    free(bytes);
    /* ALiBi's slopes for head counts with and without a power of two, as transformers builds them */
    json_t *slopes = json_object_get(g_fix.manifest, "alibi_slopes");
    const char *key;
    json_t *want;
    int counts = 0;
    json_object_foreach(slopes, key, want) {
        const int h = atoi(key);
        float got[128];
        CHECK(h > 0 && h <= 128 && (int)json_array_size(want) == h);
        if (h <= 0 || h > 128) continue;
        xle_alibi_slopes(h, got);
        /* within an ulp: transformers raises the float base with torch.pow */
        for (int i = 0; i < h; i++) {
            const double w = json_number_value(json_array_get(want, (size_t)i));
            CHECK_MSG(fabs(got[i] - w) <= 1.2e-7 * w, "%d heads: slope %d: %.9g, want %.9g", h, i, (double)got[i], w);
        }
        counts++;
    }
    CHECK(counts >= 8);
    xle_model_free(m);
}

/* ---- logits ------------------------------------------------------------------------------- */

static void test_logits(void) {
    xle_model *m = load_model();
    if (!m) return;
    const int V = xle_model_config(m)->vocab_size, S = fix_n_seqs(&g_fix);
    xle_error err = {0};
    double worst = 0;
    for (int s = 0; s < S; s++) {
        int n;
        int32_t *ids = fix_seq_ids(&g_fix, s, &n);
        int starts[2] = {0, n};
        xle_batch b = {.n_seqs = 1, .tokens = ids, .seq_start = starts};
        float *got = malloc((size_t)n * (size_t)V * sizeof *got);
        CHECK_OK(xle_forward(m, &b, NULL, got, &err), &err);
        double d = max_abs_diff(got, fix_golden_of(&g_fix, s, V), (size_t)n * (size_t)V);
        CHECK_MSG(d <= TOL_ABS, "%s sequence %d: max |logit - golden| = %g", g_fix.name, s, d);
        if (d > worst) worst = d;
        free(got);
        free(ids);
    }
    fprintf(stderr, "     %s: max |logit - golden| = %.3g over %d sequences\n", g_fix.name, worst, S);

    /* All sequences packed in one batch: positions restart in each. */
    int total = 0, *starts = malloc((size_t)(S + 1) * sizeof *starts);
    starts[0] = 0;
    for (int s = 0; s < S; s++) {
        int n;
        free(fix_seq_ids(&g_fix, s, &n));
        total += n;
        starts[s + 1] = total;
    }
    int32_t *all = malloc((size_t)total * sizeof *all);
    for (int s = 0; s < S; s++) {
        int n;
        int32_t *ids = fix_seq_ids(&g_fix, s, &n);
        memcpy(all + starts[s], ids, (size_t)n * sizeof *ids);
        free(ids);
    }
    xle_batch b = {.n_seqs = S, .tokens = all, .seq_start = starts};
    float *got = malloc((size_t)total * (size_t)V * sizeof *got);
    CHECK_OK(xle_forward(m, &b, NULL, got, &err), &err);
    double d = max_abs_diff(got, fix_golden_of(&g_fix, 0, V), (size_t)total * (size_t)V);
    CHECK_MSG(d <= TOL_ABS, "%s packed batch: max |logit - golden| = %g", g_fix.name, d);
    free(got);
    free(all);
    free(starts);
    xle_model_free(m);
}

/* The last sequence in two chunks through a KV cache: the second chunk's logits are the golden
 * rows (positions, and Gemma-2's window, continue after the cached keys). */
static void test_kv_cache(void) {
    xle_model *m = load_model();
    if (!m) return;
    const int V = xle_model_config(m)->vocab_size, s = fix_n_seqs(&g_fix) - 1;
    int n;
    int32_t *ids = fix_seq_ids(&g_fix, s, &n);
    xle_error err = {0};
    xle_kv_cache *kc = NULL;
    CHECK_OK(xle_kv_cache_new(m, n, &kc, &err), &err);
    const int first = n / 3;
    float *got = malloc((size_t)n * (size_t)V * sizeof *got);
    int st1[2] = {0, first}, st2[2] = {0, n - first};
    xle_batch b1 = {.n_seqs = 1, .tokens = ids, .seq_start = st1};
    xle_batch b2 = {.n_seqs = 1, .tokens = ids + first, .seq_start = st2};
    xle_forward_opts o = {.cache = kc};
    CHECK_OK(xle_forward(m, &b1, &o, got, &err), &err);
    CHECK_OK(xle_forward(m, &b2, &o, got + (size_t)first * V, &err), &err);
    double d = max_abs_diff(got, fix_golden_of(&g_fix, s, V), (size_t)n * (size_t)V);
    CHECK_MSG(d <= TOL_ABS, "%s with a KV cache: max |logit - golden| = %g", g_fix.name, d);
    free(got);
    free(ids);
    xle_kv_cache_free(kc);
    xle_model_free(m);
}

static void test_tokenizer(void) {
    xle_model *m = load_model();
    if (!m) return;
    xle_tokenizer *tok = xle_model_tokenizer(m);
    CHECK(tok != NULL);
    json_t *tv = json_object_get(g_fix.manifest, "tokenizer");
    const char *text = json_string_value(json_object_get(tv, "text"));
    json_t *want = json_object_get(tv, "ids");
    if (tok && text) {
        xle_tokens t = {0};
        xle_error err = {0};
        CHECK_OK(xle_tokenize(tok, text, strlen(text), 0, 0, &t, &err), &err);
        CHECK_MSG(t.n == (int)json_array_size(want), "%s: %d ids, want %zu", g_fix.name, t.n,
                  json_array_size(want));
        for (int i = 0; i < t.n && i < (int)json_array_size(want); i++)
            CHECK_MSG(t.ids[i] == json_integer_value(json_array_get(want, (size_t)i)), "%s: id %d: %d",
                      g_fix.name, i, t.ids[i]);
        xle_tokens_free(&t);
    }
    xle_model_free(m);
}

/* ---- the backward pass, by central finite differences (as test_families.c) ---------------- */

static void test_backward(void) {
    xle_model *m = load_model();
    if (!m) return;
    const xle_config *c = xle_model_config(m);
    const int V = c->vocab_size, d = c->dim;
    int n;
    int32_t *ids = fix_seq_ids(&g_fix, 1, &n);
    CHECK(n == 12);
    float *C = malloc((size_t)N_ROWS * (size_t)V * sizeof *C);
    xle_rng rng;
    xle_rng_seed(&rng, 7);
    for (int i = 0; i < N_ROWS * V; i++) C[i] = xle_rng_normal(&rng);

    xle_acts *acts = xle_acts_new();
    xle_grads *grads = NULL;
    xle_error err = {0};
    CHECK_OK(xle_grads_new(m, &grads, &err), &err);
    int starts[2] = {0, n};
    xle_batch b = {.n_seqs = 1, .tokens = ids, .seq_start = starts};
    xle_forward_opts o = {.acts = acts, .logit_rows = k_logit_rows, .n_logit_rows = N_ROWS};
    float *logits = malloc((size_t)N_ROWS * (size_t)V * sizeof *logits);
    CHECK_OK(xle_forward(m, &b, &o, logits, &err), &err);
    CHECK_OK(xle_backward(m, acts, C, 0, NULL, grads, &err), &err);

    xle_weights *w = xle_model_weights(m), *G = xle_grads_weights(grads);
    int bad = 0, checked = 0, sizable = 0, tensors = 0;
    /* every tensor the model has (the tied head is the embedding) */
    for (int k = 0; k < XLE_W_KIND_COUNT; k++) {
        if (k == XLE_W_LM_HEAD && c->tied_embeddings) continue;
        const int nl = xle_wkind_per_layer((xle_wkind)k) ? c->n_layers : 1;
        for (int l = 0; l < nl; l++) {
            xle_tensor *wt = xle_weight_slot(w, (xle_wkind)k, l), *gt = xle_weight_slot(G, (xle_wkind)k, l);
            if (!wt->data) continue;
            tensors++;
            CHECK(wt->dtype == XLE_F32 && gt->data);
            if (wt->dtype != XLE_F32 || !gt->data) continue;
            const int64_t numel = xle_tensor_numel(wt);
            for (int s = 0; s < 4; s++) {
                int64_t idx = (int64_t)(xle_rng_uniform(&rng) * (double)numel);
                if (k == XLE_W_TOK_EMBD) idx = (int64_t)ids[s] * d + s % d; /* rows in use */
                float *p = wt->data, old = p[idx];
                const float eps = 3e-2f;
                p[idx] = old + eps;
                double lp = fd_loss(m, ids, n, C);
                p[idx] = old - eps;
                double lm = fd_loss(m, ids, n, C);
                p[idx] = old;
                double num = (lp - lm) / (2 * eps), ana = ((const float *)gt->data)[idx];
                checked++;
                sizable += fabs(ana) > 5e-2;
                if (!close_enough(num, ana) && bad++ < 5)
                    fprintf(stderr, "%s: kind %d layer %d elem %lld: numeric %.6g analytic %.6g\n",
                            g_fix.name, k, l, (long long)idx, num, ana);
            }
        }
    }
    CHECK_MSG(bad == 0, "%s: %d of %d weight gradient mismatches", g_fix.name, bad, checked);
    CHECK(checked == 4 * tensors && tensors > 10);
    CHECK_MSG(sizable * 2 > checked, "%s: only %d of %d sampled gradients exceed 0.05", g_fix.name,
              sizable, checked);
    fprintf(stderr, "     %s: %d gradients of %d tensors checked\n", g_fix.name, checked, tensors);
    free(logits);
    free(C);
    free(ids);
    xle_grads_free(grads);
    xle_acts_free(acts);
    xle_model_free(m);
}

/* ---- the partial passes of ROME and MEMIT (as test_edit_partial.c) ------------------------- */

/* Sequences 1 (12 tokens) and 0 (5) packed; rows before first_var are fixed; a vector is added
 * to the residual after `layer` at each sequence's first changing row. */
static const int p_first_var[2] = {3, 1};
static const int p_add_rows[2] = {3, 13};
static const int p_logit_rows[4] = {5, 9, 11, 15};
#define P_ROWS 17

static const float *g_add;

static int add_hook(void *user, xle_point point, int layer, float *act, int n_tokens, int width) {
    (void)user, (void)point, (void)layer, (void)n_tokens;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < width; j++) act[(int64_t)p_add_rows[i] * width + j] += g_add[j];
    return 0;
}

static double partial_loss(xle_upper *u, const float *add, int d, const float *C, int V) {
    float *rows = malloc((size_t)(2 * d) * sizeof *rows), *logits = malloc((size_t)(4 * V) * sizeof *logits);
    memcpy(rows, add, (size_t)d * sizeof(float));
    memcpy(rows + d, add, (size_t)d * sizeof(float));
    xle_error err;
    double s = NAN;
    if (xle_upper_forward(u, p_add_rows, 2, rows, logits, &err) == XLE_OK) {
        s = 0;
        for (int i = 0; i < 4 * V; i++) s += (double)C[i] * logits[i];
    }
    free(rows), free(logits);
    return s;
}

/* The partial passes after each layer equal the full passes with the vector added by a hook
 * (logits and the residual gradient), and their gradient agrees with finite differences. */
static void test_partial(void) {
    xle_model *m = load_model();
    if (!m) return;
    const xle_config *c = xle_model_config(m);
    const int V = c->vocab_size, d = c->dim;
    int n1, n0;
    int32_t *s1 = fix_seq_ids(&g_fix, 1, &n1), *s0 = fix_seq_ids(&g_fix, 0, &n0);
    int32_t tokens[P_ROWS];
    memcpy(tokens, s1, 12 * sizeof *tokens);
    memcpy(tokens + 12, s0, 5 * sizeof *tokens);
    int starts[3] = {0, 12, 17};
    xle_batch b = {.n_seqs = 2, .tokens = tokens, .seq_start = starts};
    xle_rng rng;
    xle_rng_seed(&rng, 11);
    float *add = malloc((size_t)d * sizeof *add), *C = malloc((size_t)(4 * V) * sizeof *C);
    for (int j = 0; j < d; j++) add[j] = 0.5f * xle_rng_normal(&rng);
    for (int i = 0; i < 4 * V; i++) C[i] = xle_rng_normal(&rng);
    g_add = add;
    float *full = malloc((size_t)(4 * V) * sizeof *full), *part = malloc((size_t)(4 * V) * sizeof *part);
    float *dblock = malloc((size_t)(P_ROWS * d) * sizeof *dblock), *dvar = malloc((size_t)(P_ROWS * d) * sizeof *dvar);
    float *rows = malloc((size_t)(2 * d) * sizeof *rows);
    memcpy(rows, add, (size_t)d * sizeof(float));
    memcpy(rows + d, add, (size_t)d * sizeof(float));
    for (int layer = 0; layer < c->n_layers; layer++) {
        xle_error err = {0};
        xle_hook h = {XLE_POINT_BLOCK_OUT, layer, add_hook, NULL};
        xle_acts *acts = xle_acts_new();
        xle_forward_opts o = {.hooks = &h, .n_hooks = 1, .acts = acts, .logit_rows = p_logit_rows,
                              .n_logit_rows = 4, .keep_from_layer = layer};
        CHECK_OK(xle_forward(m, &b, &o, full, &err), &err);
        CHECK_OK(xle_backward(m, acts, C, layer, dblock, NULL, &err), &err);
        xle_acts_free(acts);
        xle_upper *u = NULL;
        CHECK_OK(xle_upper_new(m, &b, layer, p_first_var, p_logit_rows, 4, NULL, 0, &u, &err), &err);
        if (!u) continue;
        CHECK_OK(xle_upper_forward(u, p_add_rows, 2, rows, part, &err), &err);
        double e_logits = max_abs_diff(part, full, (size_t)(4 * V));
        CHECK_MSG(e_logits <= 1e-5, "%s layer %d: partial logits differ by %.3g", g_fix.name, layer, e_logits);
        const int nv = xle_upper_n_var(u);
        CHECK(nv == P_ROWS - 4);
        CHECK_OK(xle_upper_backward(u, C, dvar, &err), &err);
        double e_grad = 0, g_max = 0;
        for (int r = 0; r < P_ROWS; r++) {
            const int vi = xle_upper_var_index(u, r);
            if (vi < 0) continue;
            for (int j = 0; j < d; j++) {
                double g = dblock[(int64_t)r * d + j], e = fabs(dvar[(int64_t)vi * d + j] - g);
                e_grad = e > e_grad ? e : e_grad;
                g_max = fabs(g) > g_max ? fabs(g) : g_max;
            }
        }
        CHECK_MSG(e_grad <= 1e-4 * g_max, "%s layer %d: partial gradient differs by %.3g (max %.3g)", g_fix.name,
                  layer, e_grad, g_max);
        int bad = 0;
        for (int j = 0; j < d; j++) {
            const float eps = 2e-2f, keep = add[j];
            add[j] = keep + eps;
            double lp = partial_loss(u, add, d, C, V);
            add[j] = keep - eps;
            double lm = partial_loss(u, add, d, C, V);
            add[j] = keep;
            double num = (lp - lm) / (2 * eps), ana = 0;
            for (int i = 0; i < 2; i++) ana += dvar[(int64_t)xle_upper_var_index(u, p_add_rows[i]) * d + j];
            if (!(fabs(num - ana) <= 2e-3 + 2e-2 * fabs(ana)) && bad++ < 5)
                fprintf(stderr, "%s layer %d: d add[%d]: numeric %.6g analytic %.6g\n", g_fix.name, layer, j, num, ana);
        }
        CHECK_MSG(bad == 0, "%s layer %d: %d finite-difference mismatches", g_fix.name, layer, bad);
        fprintf(stderr, "     %s partial, layer %d: logits %.1e, gradient %.1e of %.2g\n", g_fix.name, layer,
                e_logits, e_grad, g_max);
        xle_upper_free(u);
    }
    free(s1), free(s0), free(add), free(C), free(full), free(part), free(dblock), free(dvar), free(rows);
    xle_model_free(m);
}

/* ---- saving ------------------------------------------------------------------------------- */

/* Every tensor of safetensors file a is in b with the same name, dtype, shape and bytes (and b
 * has no others). */
static void test_save(void) {
    xle_model *m = load_model();
    if (!m) return;
    const xle_config *c = xle_model_config(m);
    const int V = c->vocab_size, f = c->ffn_dim;
    char out[256], path[320], src[320], dir[256];
    snprintf(out, sizeof out, "/tmp/xle_test_families_rope_%s_%d", g_fix.name, (int)getpid());
    snprintf(src, sizeof src, "%s/model.safetensors", model_dir(dir, sizeof dir));
    xle_error err = {0};
    CHECK_OK(xle_model_save(m, out, &err), &err);
    snprintf(path, sizeof path, "%s/model.safetensors", out);
    CHECK_MSG(same_tensors(src, path), "%s: an unedited save changed a tensor", g_fix.name);
    snprintf(path, sizeof path, "%s/config.json", out);
    struct stat st;
    CHECK(stat(path, &st) == 0);
    test_rm_dir(out);

    xle_weights *w = xle_model_weights(m);
    CHECK_OK(xle_model_make_writable_f32(m, &w->layers[1].w_down, &err), &err);
    ((float *)w->layers[1].w_down.data)[3 * f + 5] += 0.25f;
    /* k inside BLOOM's fused query_key_value (its own tensor elsewhere), and k's bias */
    CHECK_OK(xle_model_make_writable_f32(m, &w->layers[0].wk, &err), &err);
    ((float *)w->layers[0].wk.data)[(c->head_dim + 2) * c->dim + 7] -= 0.5f;
    if (w->layers[0].bk.data) {
        CHECK_OK(xle_model_make_writable_f32(m, &w->layers[0].bk, &err), &err);
        ((float *)w->layers[0].bk.data)[c->head_dim + 1] += 0.5f;
    }
    float *want = fix_seq1_logits(&g_fix, m);
    CHECK_OK(xle_model_save(m, out, &err), &err);
    xle_model *r = NULL;
    CHECK_OK(xle_model_load(out, &r, &err), &err);
    if (r) {
        CHECK(xle_model_config(r)->arch == c->arch);
        float *got = fix_seq1_logits(&g_fix, r);
        int n;
        free(fix_seq_ids(&g_fix, 1, &n));
        CHECK_MSG(memcmp(got, want, (size_t)n * (size_t)V * sizeof *got) == 0,
                  "%s: the saved edit reloads to other logits (max diff %g)", g_fix.name,
                  max_abs_diff(got, want, (size_t)n * (size_t)V));
        free(got);
        xle_model_free(r);
    }
    free(want);
    test_rm_dir(out);
    CHECK(stat(src, &st) == 0);
    xle_model_free(m);
}

/* EasyEdit's published gpt-j-6B files select fc_out and their layers for GPT-J; a Llama file is
 * refused for it, naming both families' modules. */
static void test_gptj_easyedit_hparams(void) {
    xle_model *m = load_model();
    if (!m) return;
    /* the defaults: gpt-j-6B's layers scaled from 28 to 2, λ from d_ff 16384 to 128 */
    xle_edit_hparams d;
    xle_edit_hparams_for_model(&d, XLE_EDIT_ROME, xle_model_config(m));
    CHECK(d.n_layers == 1 && d.layers[0] == 0);
    xle_edit_hparams_for_model(&d, XLE_EDIT_MEMIT, xle_model_config(m));
    CHECK_MSG(d.n_layers == 2 && d.layers[0] == 0 && d.layers[1] == 1 &&
              fabs(d.mom2_update_weight - 15000.0 * 128 / 16384) < 1e-9, "MEMIT: %d layers, λ %g",
              d.n_layers, d.mom2_update_weight);
    xle_edit_hparams_for_model(&d, XLE_EDIT_FT_L, xle_model_config(m));
    CHECK(d.n_layers == 1 && d.layers[0] == 1);
    static const char *const dirs[] = {"ROME", "MEMIT", "FT"};
    static const xle_edit_method ms[] = {XLE_EDIT_ROME, XLE_EDIT_MEMIT, XLE_EDIT_FT_L};
    static const int first_layer[] = {5, 3, 21}, n_layers[] = {1, 6, 1};
    char path[512], note[512];
    xle_error err = {0};
    for (int i = 0; i < 3; i++) {
        xle_edit_hparams hp;
        xle_edit_hparams_default(&hp, ms[i], 28);
        snprintf(path, sizeof path, EASYEDIT "/%s/gpt-j-6B.yaml", dirs[i]);
        CHECK_OK(xle_edit_hparams_load_file(&hp, path, m, note, sizeof note, &err), &err);
        CHECK_MSG(hp.n_layers == n_layers[i] && hp.layers[0] == first_layer[i], "%s: %d layers from %d",
                  path, hp.n_layers, hp.layers[0]);
        snprintf(path, sizeof path, EASYEDIT "/%s/llama-7b.yaml", dirs[i]);
        CHECK(xle_edit_hparams_load_file(&hp, path, m, NULL, 0, &err) != XLE_OK);
        CHECK_MSG(strstr(err.msg, "transformer.h.{}") && strstr(err.msg, "GPT-J"), "%s", err.msg);
    }
    xle_model_free(m);
}

/* BLOOM: EasyEdit publishes no files, so the defaults are gpt2-xl's scaled to the model; a file
 * in EasyEdit's shape naming BLOOM's modules loads, gpt2-xl's (c_proj) is refused naming both. */
static void test_bloom_edit_hparams(void) {
    xle_model *m = load_model();
    if (!m) return;
    xle_edit_hparams d;
    xle_edit_hparams_for_model(&d, XLE_EDIT_ROME, xle_model_config(m));
    CHECK(d.n_layers == 1 && d.layers[0] == 1); /* 17 of 48 -> round(0.71) = 1 of 2 */
    xle_edit_hparams_for_model(&d, XLE_EDIT_MEMIT, xle_model_config(m));
    CHECK_MSG(fabs(d.mom2_update_weight - 20000.0 * 192 / 6400) < 1e-9, "MEMIT λ %g", d.mom2_update_weight);
    char path[512], note[512];
    snprintf(path, sizeof path, "/tmp/xle_test_bloom_rome_%d.yaml", (int)getpid());
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs("alg_name: \"ROME\"\nlayers: [1]\nv_num_grad_steps: 20\nv_lr: 5e-1\nv_loss_layer: 1\n"
              "rewrite_module_tmp: \"transformer.h.{}.mlp.dense_4h_to_h\"\n"
              "layer_module_tmp: \"transformer.h.{}\"\nmlp_module_tmp: \"transformer.h.{}.mlp\"\n"
              "attn_module_tmp: \"transformer.h.{}.self_attention\"\nln_f_module: \"transformer.ln_f\"\n"
              "lm_head_module: \"transformer.word_embeddings\"\n", f);
        fclose(f);
    }
    xle_edit_hparams hp;
    xle_error err = {0};
    xle_edit_hparams_default(&hp, XLE_EDIT_ROME, 2);
    CHECK_OK(xle_edit_hparams_load_file(&hp, path, m, note, sizeof note, &err), &err);
    CHECK(hp.n_layers == 1 && hp.layers[0] == 1);
    unlink(path);
    CHECK(xle_edit_hparams_load_file(&hp, EASYEDIT "/ROME/gpt2-xl.yaml", m, NULL, 0, &err) != XLE_OK);
    CHECK_MSG(strstr(err.msg, "dense_4h_to_h") && strstr(err.msg, "BLOOM"), "%s", err.msg);
    xle_model_free(m);
}

/* A config.json field set to a bad value (JSON text) is one error naming config.json and the
 * field. */
static void bad_config(const char *family, const char *field, const char *value, const char *want) {
    char dir[256], src[320], dst[320];
    snprintf(dir, sizeof dir, "/tmp/xle_test_families_rope_cfg_%d", (int)getpid());
    mkdir(dir, 0700);
    snprintf(src, sizeof src, FIX "%s/hf_f32/model.safetensors", family);
    snprintf(dst, sizeof dst, "%s/model.safetensors", dir);
    CHECK(symlink(src, dst) == 0);
    snprintf(src, sizeof src, FIX "%s/hf_f32/config.json", family);
    json_error_t jerr;
    json_t *cfg = json_load_file(src, 0, &jerr), *v = json_loads(value, JSON_DECODE_ANY, &jerr);
    CHECK(cfg && v);
    if (cfg && v) json_object_set_new(cfg, field, v);
    snprintf(dst, sizeof dst, "%s/config.json", dir);
    CHECK(cfg && json_dump_file(cfg, dst, 0) == 0);
    json_decref(cfg);
    xle_model *m = NULL;
    xle_error err = {0};
    CHECK_MSG(xle_model_load(dir, &m, &err) != XLE_OK, "%s: %s = %s loaded", family, field, value);
    CHECK_MSG(strstr(err.msg, "config.json") && strstr(err.msg, want) && !strchr(err.msg, '\n'),
              "%s: %s = %s: %s", family, field, value, err.msg);
    xle_model_free(m);
    test_rm_dir(dir);
}

static void test_bad_configs(void) {
    bad_config("gptj", "rotary_dim", "3", "rotary_dim");
    bad_config("gptj", "rotary_dim", "16", "rotary_dim");
    bad_config("gptj", "rotary_dim", "null", "rotary_dim");
    bad_config("gptj", "tie_word_embeddings", "true", "tie_word_embeddings");
    bad_config("gptj", "activation_function", "\"relu\"", "activation_function");
    bad_config("gemma", "hidden_activation", "\"silu\"", "hidden_activation");
    bad_config("gemma", "attention_bias", "true", "attention_bias");
    bad_config("gemma2", "query_pre_attn_scalar", "0", "query_pre_attn_scalar");
    bad_config("gemma2", "attn_logit_softcapping", "-1.0", "attn_logit_softcapping");
    bad_config("gemma2", "sliding_window", "-4", "sliding_window");
    bad_config("bloom", "apply_residual_connection_post_layernorm", "true",
               "apply_residual_connection_post_layernorm");
    bad_config("bloom", "n_head", "5", "n_head");
    bad_config("bloom", "hidden_size", "null", "hidden_size");
    bad_config("bloom", "layer_norm_epsilon", "0", "layer_norm_epsilon");
}

int main(void) {
    static const char *const families[] = {"gptj", "gemma", "gemma2", "bloom"};
    for (int i = 0; i < 4; i++) {
        if (!family_fix_load(&g_fix, families[i], "test_families_rope")) return 1;
        if (i == 0) RUN(test_gptj_config);
        else if (i == 3) {
            RUN(test_bloom_config);
            RUN(test_bloom_edit_hparams);
        }
        else RUN(test_gemma_config);
        RUN(test_logits);
        RUN(test_kv_cache);
        RUN(test_tokenizer);
        RUN(test_backward);
        RUN(test_save);
        RUN(test_partial);
        if (i == 0) RUN(test_gptj_easyedit_hparams);
        family_fix_free(&g_fix);
    }
    RUN(test_bad_configs);
    return check_summary();
}
