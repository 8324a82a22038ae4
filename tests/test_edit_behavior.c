/*
 * test_edit_behavior.c: what an edit does to a real trained model (stories260K, 5 layers): after
 * ROME or MEMIT the whole target becomes the greedy continuation of the edit prompt, and the
 * model's next-token distribution on unrelated prompts moves little. Stated bounds, over 20
 * prompts that do not mention the subject (this model has 260K parameters and 5 layers, so one
 * edited layer is a fifth of the network; on the built-in fact model the bar is 90% of facts):
 *   - ROME: the greedy next token is unchanged on at least 80% of them and the mean
 *     KL(before || after) of the next-token distribution is below 0.05 nats;
 *   - MEMIT, two requests over two layers: at least 50% unchanged, mean KL below 0.15 nats.
 * Also: the same edit of the same model read from a HF folder and from a GGUF file (different
 * RoPE conventions, q/k stored permuted) gives the same deltas; a patch applied to the model
 * equals the in-memory edit and reverting it restores the original bytes.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "model/model_internal.h"

#define STORIES_DIR XLE_SHARED_DIR "/data/external/stories260k/"

static const char *const LOCALITY_PROMPTS[] = {
    "Once upon a time, there was a little girl named", "The sun was very", "She saw a big",
    "Mom said they could have a", "One day, a little boy named Timmy went to the",
    "The cat jumped on the", "They played in the park all", "The bird sang a happy",
    "The girl wanted to play with her", "He was very happy and said", "The little girl was",
    "The big dog ran to the", "She smiled and gave him a", "Once upon a time, there was a big",
    "The toy was red and", "Sue liked to draw", "The flower was pretty and", "The boy was sad because",
    "At night, the moon was", "Ben and Anna found a"};
#define N_LOCALITY ((int)(sizeof LOCALITY_PROMPTS / sizeof LOCALITY_PROMPTS[0]))

static void next_token_probs(xle_model *m, const char *text, double *probs) {
    xle_tokens t = {0};
    xle_error err = {0};
    CHECK_OK(xle_tokenize(xle_model_tokenizer(m), text, strlen(text), -1, 0, &t, &err), &err);
    const int V = m->cfg.vocab_size;
    float *logits = malloc((size_t)V * sizeof *logits);
    int start[2] = {0, t.n}, row = t.n - 1;
    xle_batch b = {1, t.ids, start};
    xle_forward_opts o = {.logit_rows = &row, .n_logit_rows = 1};
    CHECK_OK(xle_forward(m, &b, &o, logits, &err), &err);
    double mx = -INFINITY, z = 0;
    for (int v = 0; v < V; v++) mx = fmax(mx, logits[v]);
    for (int v = 0; v < V; v++) z += exp(logits[v] - mx);
    for (int v = 0; v < V; v++) probs[v] = exp(logits[v] - mx) / z;
    free(logits);
    xle_tokens_free(&t);
}

static int argmax(const double *p, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (p[i] > p[best]) best = i;
    return best;
}

/* 1 if greedy decoding of prompt continues with exactly the target's tokens. */
static int greedy_is_target(xle_model *m, const char *prompt, const char *target) {
    xle_tokenizer *tok = xle_model_tokenizer(m);
    int32_t *p = NULL, *a = NULL, out[16];
    int np = 0, na = 0, n_out = 0;
    xle_error err = {0};
    CHECK_OK(xle_tokenize_continuation(tok, prompt, target, &p, &np, &a, &na, &err), &err);
    xle_sampler greedy = {.stop_at_eos = 0};
    int ok = na <= 16 && xle_generate(m, p, np, na, &greedy, out, &n_out, &err) == XLE_OK &&
             n_out == na && memcmp(out, a, (size_t)na * sizeof *a) == 0;
    free(p), free(a);
    return ok;
}

typedef struct edit_case {
    const char *prompt, *subject, *target;
} edit_case;

static const edit_case CASES[] = {
    {"Tom went to the", "Tom", "moon"},
    {"Lily liked to eat", "Lily", "cake"},
    {"The dog of Lily was", "Lily", "happy"},
};
/* MEMIT's batch: distinct subjects (two requests on one subject compete for one key) */
static const edit_case BATCH[] = {
    {"Tom went to the", "Tom", "moon"},
    {"Lily liked to eat", "Lily", "cake"},
};

static xle_layer_stats *stats_for(xle_model *m, int layer);

static void check_edit(xle_edit_method method, const edit_case *cs, int n_cases) {
    xle_model *m = NULL;
    xle_error err = {0};
    CHECK_OK(xle_model_load(STORIES_DIR "stories260K.bin", &m, &err), &err);
    if (!m) return;
    xle_tokenizer *tok = xle_model_tokenizer(m);
    const int V = m->cfg.vocab_size;
    double *before = malloc((size_t)N_LOCALITY * V * sizeof *before);
    double *after = malloc((size_t)V * sizeof *after);
    for (int i = 0; i < N_LOCALITY; i++) next_token_probs(m, LOCALITY_PROMPTS[i], before + (size_t)i * V);
    for (int c = 0; c < n_cases; c++) CHECK(!greedy_is_target(m, cs[c].prompt, cs[c].target));

    xle_edit_hparams hp;
    xle_edit_hparams_for_model(&hp, method, &m->cfg);
    if (method == XLE_EDIT_MEMIT) /* the default range is one layer (1) on 5 layers: use two */
        hp.n_layers = 2, hp.layers[0] = 1, hp.layers[1] = 2;
    xle_context_templates *ct = NULL;
    CHECK_OK(xle_context_templates_sample(m, tok, &hp, &ct, &err), &err);
    xle_edit_request_tok toks[4];
    for (int c = 0; c < n_cases; c++) {
        xle_edit_request r = {cs[c].prompt, cs[c].subject, cs[c].target};
        CHECK_OK(xle_edit_request_tokenize(tok, &r, ct, &toks[c], &err), &err);
    }
    xle_layer_stats *stats[XLE_EDIT_MAX_LAYERS] = {0};
    if (method == XLE_EDIT_MEMIT)
        for (int i = 0; i < hp.n_layers; i++) stats[i] = stats_for(m, hp.layers[i]);
    xle_edit_result res = {0};
    CHECK_OK(xle_edit_run(m, &hp, toks, n_cases, stats, &res, &err), &err);
    CHECK_OK(xle_edit_apply(m, &res, +1, &err), &err);
    for (int c = 0; c < n_cases; c++)
        CHECK_MSG(greedy_is_target(m, cs[c].prompt, cs[c].target), "method %d: '%s' does not continue with '%s'",
                  method, cs[c].prompt, cs[c].target);
    int kept = 0;
    double kl_sum = 0;
    for (int i = 0; i < N_LOCALITY; i++) {
        const double *b = before + (size_t)i * V;
        next_token_probs(m, LOCALITY_PROMPTS[i], after);
        kept += argmax(b, V) == argmax(after, V);
        for (int v = 0; v < V; v++)
            if (b[v] > 0) kl_sum += b[v] * (log(b[v]) - log(fmax(after[v], 1e-300)));
    }
    double kl = kl_sum / N_LOCALITY;
    fprintf(stderr, "method %d, %d request(s): unrelated greedy kept %d/%d, mean KL %.4f nats\n",
            method, n_cases, kept, N_LOCALITY, kl);
    const double min_kept = method == XLE_EDIT_ROME ? 0.8 : 0.5;
    const double max_kl = method == XLE_EDIT_ROME ? 0.05 : 0.15;
    CHECK_MSG(kept >= min_kept * N_LOCALITY, "only %d of %d unrelated predictions kept", kept, N_LOCALITY);
    CHECK_MSG(kl < max_kl, "mean KL on unrelated prompts %.4f >= %.2f", kl, max_kl);
    for (int c = 0; c < n_cases; c++) xle_edit_request_tok_free(&toks[c]);
    for (int i = 0; i < XLE_EDIT_MAX_LAYERS; i++) xle_layer_stats_free(stats[i]);
    xle_edit_result_free(&res);
    xle_context_templates_free(ct);
    free(before), free(after);
    xle_model_free(m);
}

/* Key statistics over the model's own sampled stories (the corpus a 260K story model knows). */
static xle_layer_stats *stats_for(xle_model *m, int layer) {
    enum { N_SEQ = 40, LEN = 256 };
    int32_t *data = malloc((size_t)N_SEQ * LEN * sizeof *data);
    const int32_t *seqs[N_SEQ];
    int lens[N_SEQ];
    xle_error err = {0};
    for (int s = 0; s < N_SEQ; s++) {
        int32_t bos = 1;
        int n_out = 0;
        xle_sampler sm = {.temperature = 1.0f, .seed = (uint64_t)s + 1};
        data[(size_t)s * LEN] = bos;
        CHECK_OK(xle_generate(m, &bos, 1, LEN - 1, &sm, data + (size_t)s * LEN + 1, &n_out, &err), &err);
        seqs[s] = data + (size_t)s * LEN;
        lens[s] = 1 + n_out;
    }
    xle_layer_stats *st = calloc(1, sizeof *st);
    st->layer = layer, st->dim = m->cfg.ffn_dim;
    st->sum = calloc((size_t)st->dim * st->dim, sizeof(double));
    CHECK_OK(xle_stats_accumulate(m, &layer, 1, seqs, lens, N_SEQ, st, &err), &err);
    /* the accumulator holds the upper triangle; the methods read the full matrix */
    for (int i = 0; i < st->dim; i++)
        for (int j = 0; j < i; j++) st->sum[(size_t)i * st->dim + j] = st->sum[(size_t)j * st->dim + i];
    free(data);
    return st;
}

static void test_rome_single(void) { check_edit(XLE_EDIT_ROME, &CASES[0], 1); }
static void test_rome_other(void) { check_edit(XLE_EDIT_ROME, &CASES[2], 1); }
static void test_memit_batch(void) { check_edit(XLE_EDIT_MEMIT, BATCH, 2); }

/* The same model as a HF folder (written by xle_model_save from the llama2.c checkpoint, q/k
 * unpermuted to rotate_half) and as llama.cpp's GGUF (interleaved): ROME gives the same delta. */
static void test_formats_same_delta(void) {
    char dir[256];
    snprintf(dir, sizeof dir, "/tmp/xle_edit_behavior_%ld", (long)getpid());
    xle_model *bin = NULL, *hf = NULL, *gguf = NULL;
    xle_error err = {0};
    CHECK_OK(xle_model_load(STORIES_DIR "stories260K.bin", &bin, &err), &err);
    if (!bin) return;
    CHECK_OK(xle_model_save(bin, dir, &err), &err);
    CHECK_OK(xle_model_load(dir, &hf, &err), &err);
    CHECK_OK(xle_model_load(STORIES_DIR "stories260K.gguf", &gguf, &err), &err);
    if (!hf || !gguf) return;
    CHECK(xle_model_format(hf) == XLE_FORMAT_HF && xle_model_format(gguf) == XLE_FORMAT_GGUF);
    char fa[65], fb[65];
    xle_model_fingerprint(hf, fa);
    xle_model_fingerprint(gguf, fb);
    CHECK(strcmp(fa, fb) == 0);
    xle_model *models[2] = {hf, gguf};
    xle_edit_result res[2] = {{0}};
    for (int k = 0; k < 2; k++) {
        xle_edit_hparams hp;
        xle_edit_hparams_default(&hp, XLE_EDIT_ROME, 5);
        xle_context_templates *ct = NULL;
        CHECK_OK(xle_context_templates_none(&ct, &err), &err);
        xle_edit_request r = {CASES[0].prompt, CASES[0].subject, CASES[0].target};
        xle_edit_request_tok rt;
        CHECK_OK(xle_edit_request_tokenize(xle_model_tokenizer(models[k]), &r, ct, &rt, &err), &err);
        CHECK_OK(xle_edit_run(models[k], &hp, &rt, 1, NULL, &res[k], &err), &err);
        xle_edit_request_tok_free(&rt);
        xle_context_templates_free(ct);
    }
    const xle_layer_delta *a = &res[0].deltas[0], *b = &res[1].deltas[0];
    CHECK(a->layer == b->layer && a->rank == 1 && b->rank == 1);
    double worst = 0, scale = 0;
    for (int i = 0; i < a->rows; i++)
        for (int j = 0; j < a->cols; j++) {
            double x = (double)a->left[i] * a->right[j], y = (double)b->left[i] * b->right[j];
            worst = fmax(worst, fabs(x - y));
            scale = fmax(scale, fabs(x));
        }
    fprintf(stderr, "HF vs GGUF ROME delta: max diff %.3g of max %.3g\n", worst, scale);
    CHECK_MSG(worst <= 1e-3 * scale, "HF and GGUF deltas differ: %g of %g", worst, scale);

    /* patch: apply on a fresh model equals the edit; revert gives the original bytes back */
    char patch[300];
    snprintf(patch, sizeof patch, "%s.xlpatch", dir);
    CHECK_OK(xle_patch_write(gguf, &res[1], "{\"test\": true}", patch, &err), &err);
    xle_patch *p = NULL;
    CHECK_OK(xle_patch_load(patch, &p, &err), &err);
    if (p) {
        const xle_tensor *w = &gguf->w.layers[b->layer].w_down;
        size_t nbytes = xle_tensor_nbytes(w);
        void *orig = malloc(nbytes);
        memcpy(orig, w->data, nbytes);
        xle_dtype orig_dtype = w->dtype;
        CHECK(strstr(xle_patch_info(p), "\"test\"") != NULL);
        CHECK(xle_patch_revert(gguf, p, &err) == XLE_ERR_ARG); /* not edited yet */
        CHECK_OK(xle_patch_apply(gguf, p, &err), &err);
        CHECK(xle_patch_apply(gguf, p, &err) == XLE_ERR_ARG); /* already edited */
        CHECK(greedy_is_target(gguf, CASES[0].prompt, CASES[0].target));
        CHECK_OK(xle_patch_revert(gguf, p, &err), &err);
        CHECK(w->dtype == orig_dtype && memcmp(w->data, orig, nbytes) == 0);
        free(orig);
        xle_patch_free(p);
    }
    /* a truncated patch file is a clear error */
    FILE *f = fopen(patch, "r+b");
    if (f) {
        CHECK(ftruncate(fileno(f), 64) == 0);
        fclose(f);
    }
    CHECK(xle_patch_load(patch, &p, &err) == XLE_ERR_FORMAT);
    CHECK(strstr(err.msg, ".xlpatch") != NULL);
    remove(patch);
    xle_edit_result_free(&res[0]), xle_edit_result_free(&res[1]);
    xle_model_free(bin), xle_model_free(hf), xle_model_free(gguf);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

int main(void) {
    RUN(test_rome_single);
    RUN(test_rome_other);
    RUN(test_memit_batch);
    RUN(test_formats_same_delta);
    return check_summary();
}
