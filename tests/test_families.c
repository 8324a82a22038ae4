/*
 * test_families.c: models of the families beyond Llama (docs/families.md), from the fixtures
 * tests/reference/make_family_fixtures.py writes (tiny random models saved the Hugging Face
 * way, with golden logits from the script's float64 PyTorch re-implementation of the Hugging
 * Face modeling code).
 *
 * GPT-2: the folder loads (Conv1D matrices transposed, c_attn split, tied head); the logits at
 * every position of four sequences (the longest uses every learned position) are within
 * TOL_ABS = 1e-4 of the golden ones, one sequence at a time and packed in one batch; a KV cache
 * gives the same logits as the full pass; a position beyond n_positions is an error; the
 * byte-level BPE tokenizer.json encodes the script's test text to the script's ids; the backward
 * pass (LayerNorm, gelu_new, learned positions, every bias) agrees with central finite differences
 * on sampled elements of every weight tensor; saving converts the tensors back (an unedited
 * save has every tensor byte for byte; an edited one reloads to the same logits bit for bit);
 * EasyEdit's gpt2-xl hyper-parameter files select GPT-2's modules and layers.
 */
#include <jansson.h>
#include <sys/stat.h>
#include <unistd.h>

#include "family_fixture.h"
#include "xledit.h"

#define FIX FAMILY_FIX_DIR
#define EASYEDIT XLE_SOURCE_DIR "/tests/fixtures/easyedit/hparams"
#define TOL_ABS 1e-4

static family_fix g_fix;

static xle_model *load_gpt2(void) {
    xle_model *m = NULL;
    xle_error err = {0};
    CHECK_OK(xle_model_load(FIX "gpt2/hf_f32", &m, &err), &err);
    return m;
}

static void test_gpt2_config(void) {
    xle_model *m = load_gpt2();
    if (!m) return;
    const xle_config *c = xle_model_config(m);
    CHECK(c->arch == XLE_ARCH_GPT2);
    CHECK(c->dim == 32 && c->n_heads == 4 && c->n_kv_heads == 4 && c->head_dim == 8);
    CHECK(c->n_layers == 2 && c->ffn_dim == 128 && c->max_seq_len == 64);
    CHECK(c->vocab_size == (int)json_integer_value(json_object_get(g_fix.manifest, "vocab_size")));
    CHECK(c->tied_embeddings);
    const xle_weights *w = xle_model_weights(m);
    CHECK(w->pos_embd.data && w->pos_embd.shape[0] == 64 && w->pos_embd.shape[1] == 32);
    CHECK(w->out_norm_b.data && w->layers[1].b_down.data && w->layers[0].attn_norm_b.data);
    CHECK(!w->layers[0].w_gate.data);
    /* transposed to [out, in]: c_fc [32, 128] becomes w_up [128, 32] */
    CHECK(w->layers[0].w_up.shape[0] == 128 && w->layers[0].w_up.shape[1] == 32);
    CHECK(w->layers[0].w_down.shape[0] == 32 && w->layers[0].w_down.shape[1] == 128);
    CHECK(w->lm_head.data == w->tok_embd.data);
    xle_model_free(m);
}

static void test_gpt2_logits(void) {
    xle_model *m = load_gpt2();
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
        CHECK_MSG(d <= TOL_ABS, "sequence %d: max |logit - golden| = %g", s, d);
        if (d > worst) worst = d;
        free(got);
        free(ids);
    }
    fprintf(stderr, "     gpt2: max |logit - golden| = %.3g over %d sequences\n", worst, S);

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
    CHECK_MSG(d <= TOL_ABS, "packed batch: max |logit - golden| = %g", d);
    free(got);
    free(all);
    free(starts);
    xle_model_free(m);
}

/* The last sequence in two chunks through a KV cache: the second chunk's logits are the
 * golden rows (the learned positions continue after the cached ones). */
static void test_gpt2_kv_cache(void) {
    xle_model *m = load_gpt2();
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
    CHECK_MSG(d <= TOL_ABS, "with a KV cache: max |logit - golden| = %g", d);
    free(got);
    free(ids);
    xle_kv_cache_free(kc);
    xle_model_free(m);
}

static void test_gpt2_position_limit(void) {
    xle_model *m = load_gpt2();
    if (!m) return;
    const int n = xle_model_config(m)->max_seq_len + 1;
    int32_t *ids = calloc((size_t)n, sizeof *ids);
    int starts[2] = {0, n};
    xle_batch b = {.n_seqs = 1, .tokens = ids, .seq_start = starts};
    xle_error err = {0};
    CHECK(xle_forward(m, &b, NULL, NULL, &err) == XLE_ERR_ARG);
    CHECK_MSG(strstr(err.msg, "learned positions") != NULL, "message: %s", err.msg);
    free(ids);
    xle_model_free(m);
}

static void test_gpt2_tokenizer(void) {
    xle_model *m = load_gpt2();
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
        CHECK_MSG(t.n == (int)json_array_size(want), "%d ids, want %zu", t.n, json_array_size(want));
        for (int i = 0; i < t.n && i < (int)json_array_size(want); i++)
            CHECK_MSG(t.ids[i] == json_integer_value(json_array_get(want, (size_t)i)), "id %d: %d", i, t.ids[i]);
        xle_tokens_free(&t);
    }
    xle_model_free(m);
}

/* ---- the backward pass, by central finite differences (as test_backward.c) ---------------- */

/* The loss sums 3 x 269 float32 logits, each within ~5e-6 of exact: its rounding noise (~6e-5)
 * over 2 eps = 0.06 is ~1e-3 in a numeric derivative, under the 5e-3 allowed. */
static void test_gpt2_backward(void) {
    xle_model *m = load_gpt2();
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
    int bad = 0, checked = 0, sizable = 0;
    for (int l = -1; l < c->n_layers; l++) {
        xle_tensor *ws[16], *gs[16];
        int nt = 0;
        if (l < 0) {
            xle_tensor *a[] = {&w->tok_embd, &w->pos_embd, &w->out_norm, &w->out_norm_b};
            xle_tensor *g[] = {&G->tok_embd, &G->pos_embd, &G->out_norm, &G->out_norm_b};
            for (int i = 0; i < 4; i++) ws[nt] = a[i], gs[nt++] = g[i];
        } else {
            xle_layer_weights *L = &w->layers[l], *GL = &G->layers[l];
            xle_tensor *a[] = {&L->attn_norm, &L->attn_norm_b, &L->wq, &L->wk, &L->wv, &L->wo, &L->bq,
                               &L->bk, &L->bv, &L->bo, &L->ffn_norm, &L->ffn_norm_b, &L->w_up,
                               &L->b_up, &L->w_down, &L->b_down};
            xle_tensor *g[] = {&GL->attn_norm, &GL->attn_norm_b, &GL->wq, &GL->wk, &GL->wv, &GL->wo,
                               &GL->bq, &GL->bk, &GL->bv, &GL->bo, &GL->ffn_norm, &GL->ffn_norm_b,
                               &GL->w_up, &GL->b_up, &GL->w_down, &GL->b_down};
            for (int i = 0; i < 16; i++) ws[nt] = a[i], gs[nt++] = g[i];
        }
        for (int i = 0; i < nt; i++) {
            CHECK(ws[i]->data && ws[i]->dtype == XLE_F32 && gs[i]->data);
            if (!ws[i]->data || ws[i]->dtype != XLE_F32 || !gs[i]->data) continue;
            const int64_t numel = xle_tensor_numel(ws[i]);
            for (int s = 0; s < 4; s++) {
                int64_t idx = (int64_t)(xle_rng_uniform(&rng) * (double)numel);
                if (ws[i] == &w->tok_embd) idx = (int64_t)ids[s] * d + s % d;  /* rows in use */
                if (ws[i] == &w->pos_embd) idx = (int64_t)(2 * s + 1) * d + s % d;
                float *p = ws[i]->data, old = p[idx];
                const float eps = 3e-2f;
                p[idx] = old + eps;
                double lp = fd_loss(m, ids, n, C);
                p[idx] = old - eps;
                double lm = fd_loss(m, ids, n, C);
                p[idx] = old;
                double num = (lp - lm) / (2 * eps), ana = ((const float *)gs[i]->data)[idx];
                checked++;
                sizable += fabs(ana) > 5e-2;
                if (!close_enough(num, ana) && bad++ < 5)
                    fprintf(stderr, "gpt2: layer %d tensor %d elem %lld: numeric %.6g analytic %.6g\n", l, i,
                            (long long)idx, num, ana);
            }
        }
    }
    CHECK_MSG(bad == 0, "gpt2: %d of %d weight gradient mismatches", bad, checked);
    CHECK(checked == 4 * (4 + 16 * c->n_layers));
    /* most sampled gradients are well above the tolerance, so the comparison means something */
    CHECK_MSG(sizable * 2 > checked, "only %d of %d sampled gradients exceed 0.05", sizable, checked);
    free(logits);
    free(C);
    free(ids);
    xle_grads_free(grads);
    xle_acts_free(acts);
    xle_model_free(m);
}

/* Every tensor of safetensors file a is in b with the same name, dtype, shape and bytes (and b
 * has no others). */
/* Saving converts GPT-2's tensors back (Conv1D transposes, the fused c_attn): unedited, the
 * weights file comes back byte for byte; edited (c_proj of the MLP, as ROME writes it, and k of
 * c_attn, as fine-tuning may), the saved folder reloads to the same logits, bit for bit. */
static void test_gpt2_save(void) {
    xle_model *m = load_gpt2();
    if (!m) return;
    const int V = xle_model_config(m)->vocab_size;
    char out[256], path[320];
    snprintf(out, sizeof out, "/tmp/xle_test_families_%d", (int)getpid());
    xle_error err = {0};
    CHECK_OK(xle_model_save(m, out, &err), &err);
    snprintf(path, sizeof path, "%s/model.safetensors", out);
    CHECK_MSG(same_tensors(FIX "gpt2/hf_f32/model.safetensors", path), "an unedited save changed a tensor");
    test_rm_dir(out);

    xle_weights *w = xle_model_weights(m);
    CHECK_OK(xle_model_make_writable_f32(m, &w->layers[1].w_down, &err), &err);
    CHECK_OK(xle_model_make_writable_f32(m, &w->layers[0].wk, &err), &err);
    ((float *)w->layers[1].w_down.data)[3 * 128 + 5] += 0.25f;
    ((float *)w->layers[0].wk.data)[7 * 32 + 2] -= 0.125f;
    float *want = fix_seq1_logits(&g_fix, m);
    CHECK_OK(xle_model_save(m, out, &err), &err);
    xle_model *r = NULL;
    CHECK_OK(xle_model_load(out, &r, &err), &err);
    if (r) {
        float *got = fix_seq1_logits(&g_fix, r);
        int n;
        free(fix_seq_ids(&g_fix, 1, &n));
        CHECK_MSG(memcmp(got, want, (size_t)n * (size_t)V * sizeof *got) == 0,
                  "the saved edit reloads to other logits (max diff %g)", max_abs_diff(got, want, (size_t)n * (size_t)V));
        CHECK(xle_tensor_get_f32(&xle_model_weights(r)->layers[1].w_down, 3 * 128 + 5) ==
              ((float *)w->layers[1].w_down.data)[3 * 128 + 5]);
        free(got);
        xle_model_free(r);
    }
    free(want);
    test_rm_dir(out);
    struct stat st;
    CHECK(stat(FIX "gpt2/hf_f32/model.safetensors", &st) == 0);
    xle_model_free(m);
}

/* EasyEdit's published gpt2-xl files (ROME, MEMIT, FT) name this GPT-2 model's modules and
 * give their layers; a Llama file's module names are refused for GPT-2, and the GPT-2 files for
 * a Llama model. */
static void test_gpt2_easyedit_hparams(void) {
    xle_model *m = load_gpt2(), *llama = NULL;
    xle_error err = {0};
    CHECK_OK(xle_model_load(XLE_SOURCE_DIR "/tests/fixtures/models/llama_gqa/hf_f32", &llama, &err), &err);
    if (!m || !llama) {
        xle_model_free(m);
        xle_model_free(llama);
        return;
    }
    static const char *const dirs[] = {"ROME", "MEMIT", "FT"};
    static const xle_edit_method ms[] = {XLE_EDIT_ROME, XLE_EDIT_MEMIT, XLE_EDIT_FT_L};
    static const int first_layer[] = {17, 13, 0}, n_layers[] = {1, 5, 1};
    char path[512], note[512];
    for (int i = 0; i < 3; i++) {
        xle_edit_hparams hp;
        xle_edit_hparams_default(&hp, ms[i], 48);
        snprintf(path, sizeof path, EASYEDIT "/%s/gpt2-xl.yaml", dirs[i]);
        CHECK_OK(xle_edit_hparams_load_file(&hp, path, m, note, sizeof note, &err), &err);
        CHECK_MSG(hp.n_layers == n_layers[i] && hp.layers[0] == first_layer[i], "%s: %d layers from %d",
                  path, hp.n_layers, hp.layers[0]);
        CHECK(xle_edit_hparams_load_file(&hp, path, llama, NULL, 0, &err) != XLE_OK);
        CHECK_MSG(strstr(err.msg, "GPT-2") && strstr(err.msg, "model.layers.{}"), "%s", err.msg);
        snprintf(path, sizeof path, EASYEDIT "/%s/llama-7b.yaml", dirs[i]);
        CHECK(xle_edit_hparams_load_file(&hp, path, m, NULL, 0, &err) != XLE_OK);
        CHECK_MSG(strstr(err.msg, "transformer.h.{}") && strstr(err.msg, "GPT-2"), "%s", err.msg);
    }
    xle_model_free(llama);
    xle_model_free(m);
}

int main(void) {
    if (!family_fix_load(&g_fix, "gpt2", "test_families")) return 1;
    RUN(test_gpt2_config);
    RUN(test_gpt2_logits);
    RUN(test_gpt2_kv_cache);
    RUN(test_gpt2_position_limit);
    RUN(test_gpt2_tokenizer);
    RUN(test_gpt2_backward);
    RUN(test_gpt2_save);
    RUN(test_gpt2_easyedit_hparams);
    family_fix_free(&g_fix);
    return check_summary();
}
