/*
 * test_train_init.c: training that starts from a model's weights (xle_train_opts.init,
 * `xledit train --init`). Checked: the trainer's model holds exactly the folder's weights (F32
 * bit for bit; BF16 as the rounded originals), the first step's logged loss is the loss of the
 * folder's model on that step's batch (computed here with the loaded model), the optimizer and
 * schedule start fresh, training from a model that knows one text goes on to lower the loss on
 * another and learns it, a stopped fine-tune resumes bit-identically, and a model of another
 * shape or vocabulary, a missing model or a resume from another model is refused.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "formats/formats_internal.h"
#include "train/train_internal.h"

static char g_tmp[256];

static const char *tmp_path(const char *name) {
    static char buf[8][512];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 512, "%s/%s", g_tmp, name);
    return p;
}

/* Two texts with the same sentence frame and different facts: a model that learned A has a
 * head start on B (the frame), but must still learn B's facts. */
static const char *TEXT_A =
    "Alvora is home to the blue heron.\n"
    "Benmark is home to the red fox.\n"
    "Citrane is home to the grey wolf.\n"
    "Dovelia is home to the green frog.\n";
static const char *TEXT_B =
    "Estmoor is home to the white owl.\n"
    "Farrow is home to the black bear.\n"
    "Galden is home to the brown hare.\n"
    "Hollin is home to the silver eel.\n";

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

static void make_tokenizer(const char *corpus, int vocab, const char *dir) {
    xle_bpe_train_opts o = {vocab, 1};
    xle_bpe_vocab *v = NULL;
    xle_error err = {0};
    mkdir(dir, 0755);
    CHECK_OK(xle_bpe_train_text(corpus, strlen(corpus), &o, &v, &err), &err);
    char p[600];
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    if (v) CHECK_OK(xle_bpe_save_hf(v, p, &err), &err);
    xle_bpe_vocab_free(v);
}

static void tiny_hparams(xle_train_hparams *hp) {
    xle_train_hparams_default(hp);
    hp->dim = 32, hp->n_layers = 2, hp->n_heads = 4, hp->n_kv_heads = 2, hp->ffn_dim = 64;
    hp->max_seq_len = 32, hp->batch_tokens = 48, hp->steps = 120, hp->warmup_steps = 10;
    hp->lr = 1e-2f, hp->min_lr = 1e-3f, hp->weight_decay = 0.0f, hp->checkpoint_every = 0, hp->seed = 3;
}

/* Every weight tensor of a model in a fixed order (lm_head only when untied); returns the count. */
static int list_tensors(xle_model *m, const xle_tensor **out) {
    xle_weights *w = xle_model_weights(m);
    const xle_config *c = xle_model_config(m);
    int n = 0;
    out[n++] = &w->tok_embd;
    out[n++] = &w->out_norm;
    if (!c->tied_embeddings) out[n++] = &w->lm_head;
    for (int l = 0; l < c->n_layers; l++) {
        const xle_layer_weights *L = &w->layers[l];
        const xle_tensor *t[] = {&L->attn_norm, &L->wq, &L->wk, &L->wv, &L->wo,
                                 &L->ffn_norm,  &L->w_gate, &L->w_up, &L->w_down};
        for (int i = 0; i < 9; i++) out[n++] = t[i];
    }
    return n;
}

/* The steps' losses of a run's train_log.tsv (at most cap); returns the count. */
static int read_log(const char *dir, double *loss, double *lr, int cap) {
    char p[600];
    snprintf(p, sizeof p, "%s/train_log.tsv", dir);
    FILE *f = fopen(p, "r");
    if (!f) return 0;
    char line[256];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        long long step;
        double r, l;
        if (sscanf(line, "%lld\t%lf\t%lf", &step, &r, &l) == 3 && n < cap) {
            CHECK(step == n + 1);
            lr[n] = r;
            loss[n++] = l;
        }
    }
    fclose(f);
    return n;
}

/* Progress callback: stop once *user steps are done. */
static int stop_cb(void *user, const xle_train_progress *p) { return p->step >= *(int *)user; }

static double mean(const double *x, int from, int to) {
    double s = 0;
    for (int i = from; i < to; i++) s += x[i];
    return to > from ? s / (to - from) : NAN;
}

/* The model a set of hyperparameters makes with the tokenizer at tok_path. */
static void model_config(const xle_train_hparams *hp, const char *tok_path, xle_config *cfg) {
    xle_tokenizer *tok = NULL;
    xle_error err = {0};
    memset(cfg, 0, sizeof *cfg);
    CHECK_OK(xle_tokenizer_load(tok_path, &tok, &err), &err);
    if (!tok) return;
    xle_train_model_config(hp, xle_tokenizer_vocab_size(tok), xle_tokenizer_bos_id(tok), xle_tokenizer_eos_id(tok),
                           cfg);
    xle_tokenizer_free(tok);
}

static char g_tok[512], g_corpus_a[512], g_corpus_b[512];

static void setup(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/xle_test_train_init_XXXXXX");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        exit(1);
    }
    char both[1024];
    snprintf(both, sizeof both, "%s%s", TEXT_A, TEXT_B);
    make_tokenizer(both, 300, tmp_path("tok"));
    snprintf(g_tok, sizeof g_tok, "%s", tmp_path("tok/tokenizer.json"));
    snprintf(g_corpus_a, sizeof g_corpus_a, "%s", tmp_path("a.txt"));
    snprintf(g_corpus_b, sizeof g_corpus_b, "%s", tmp_path("b.txt"));
    write_text(g_corpus_a, TEXT_A);
    write_text(g_corpus_b, TEXT_B);
}

/* A random model written as F32 and as BF16 folders; the trainer's copy of each holds exactly
 * the stored values, and the first logged loss is the stored model's loss on the first batch. */
static void test_init_weights_exact(void) {
    xle_train_hparams hp;
    tiny_hparams(&hp);
    xle_config cfg;
    model_config(&hp, g_tok, &cfg);
    xle_error err = {0};
    xle_model *orig = NULL;
    /* another seed than the run's (3): a trainer that ignored init would start elsewhere */
    CHECK_OK(xle_model_new(&cfg, 77, 0.05f, &orig, &err), &err);
    if (!orig) return;
    char dir32[512], dir16[512];
    snprintf(dir32, sizeof dir32, "%s", tmp_path("init32"));
    snprintf(dir16, sizeof dir16, "%s", tmp_path("init16"));
    CHECK_OK(xle_train_export_hf(orig, g_tok, 0, dir32, &err), &err);
    CHECK_OK(xle_train_export_hf(orig, g_tok, 1, dir16, &err), &err);

    const xle_tensor *want[64], *got[64];
    int n_want = list_tensors(orig, want);
    for (int bf16 = 0; bf16 <= 1; bf16++) {
        xle_model *m = NULL;
        char fp[65] = "";
        CHECK_OK(xle_train_model_from(bf16 ? dir16 : dir32, &cfg, &m, fp, &err), &err);
        if (!m) continue;
        CHECK(strlen(fp) == 64);
        int n_got = list_tensors(m, got), bad = 0;
        CHECK(n_got == n_want);
        for (int i = 0; i < n_got && i < n_want; i++) {
            CHECK(got[i]->dtype == XLE_F32 && xle_tensor_numel(got[i]) == xle_tensor_numel(want[i]));
            const float *g = got[i]->data, *o = want[i]->data;
            for (int64_t j = 0; j < xle_tensor_numel(want[i]); j++) {
                /* BF16: the original rounded to nearest even, then widened */
                float expect = bf16 ? xle_bf16_to_f32(xle_f32_to_bf16(o[j])) : o[j];
                if (memcmp(&g[j], &expect, sizeof expect) != 0) bad++;
            }
        }
        CHECK_MSG(bad == 0, "%s: %d weights differ from the folder's", bf16 ? "bf16" : "f32", bad);
        /* the weights are the trainer's own, writable copy (not the file mapping) */
        CHECK(xle_model_weight_dtype(m) == XLE_F32);
        xle_model_free(m);
    }

    /* step 1's logged loss is computed before the first update: the init model's loss on the
     * run's first batch, computed independently here with the loaded folder */
    char run[512];
    snprintf(run, sizeof run, "%s", tmp_path("run_exact"));
    hp.steps = 3;
    xle_train_opts o;
    memset(&o, 0, sizeof o);
    o.corpus = g_corpus_a;
    o.tokenizer = g_tok;
    o.out_dir = run;
    o.init = dir32;
    CHECK_OK(xle_train(&hp, &o, &err), &err);
    double loss[8], lr[8];
    int n = read_log(run, loss, lr, 8);
    CHECK(n == 3);

    xle_model *loaded = NULL;
    CHECK_OK(xle_model_load(dir32, &loaded, &err), &err);
    char *text = NULL;
    size_t len = 0;
    CHECK_OK(xle_read_whole_file(g_corpus_a, &text, &len, &err), &err);
    if (loaded && text && n >= 1) {
        xle_train_data d;
        CHECK_OK(xle_train_data_build(xle_model_tokenizer(loaded), text, len, hp.max_seq_len, &d, &err), &err);
        xle_train_batch b;
        memset(&b, 0, sizeof b);
        b.order_epoch = -1;
        xle_data_cursor cur = {0, 0};
        CHECK_OK(xle_train_batch_next(&d, hp.seed, hp.batch_tokens, &cur, &b, &err), &err);
        float *logits = malloc((size_t)b.n_tokens * (size_t)cfg.vocab_size * sizeof(float));
        double want_loss = NAN;
        CHECK_OK(xle_train_loss_grad(loaded, NULL, &b, logits, NULL, &want_loss, &err), &err);
        printf("  first logged loss %.6f, the init model's loss on that batch %.6f\n", loss[0], want_loss);
        /* the log prints 6 decimals */
        CHECK_NEAR(loss[0], want_loss, 1e-6);
        /* fresh schedule and optimizer: step 1 runs at the first warmup learning rate */
        CHECK_NEAR(lr[0], xle_train_lr(&hp, 0), 1e-6 * hp.lr);
        free(logits);
        xle_train_batch_free(&b);
        xle_train_data_free(&d);
    }
    free(text);
    xle_model_free(loaded);
    xle_model_free(orig);
}

/* A model trained on A, fine-tuned on B: B's loss starts below a random init's and falls,
 * the result recalls B's facts, and a stopped fine-tune resumes bit-identically. */
static void test_init_continues_training(void) {
    xle_train_hparams hp;
    tiny_hparams(&hp);
    xle_error err = {0};
    char run_a[512], run_ab[512], run_b0[512], run_stop[512];
    snprintf(run_a, sizeof run_a, "%s", tmp_path("run_a"));
    snprintf(run_ab, sizeof run_ab, "%s", tmp_path("run_ab"));
    snprintf(run_b0, sizeof run_b0, "%s", tmp_path("run_b_scratch"));
    snprintf(run_stop, sizeof run_stop, "%s", tmp_path("run_ab_stopped"));
    xle_train_opts o;
    memset(&o, 0, sizeof o);
    o.corpus = g_corpus_a;
    o.tokenizer = g_tok;
    o.out_dir = run_a;
    CHECK_OK(xle_train(&hp, &o, &err), &err);

    /* fine-tune on B from A, and (for comparison) B from scratch, same settings */
    hp.steps = 80;
    o.corpus = g_corpus_b;
    o.out_dir = run_ab;
    o.init = run_a;
    CHECK_OK(xle_train(&hp, &o, &err), &err);
    o.out_dir = run_b0;
    o.init = NULL;
    CHECK_OK(xle_train(&hp, &o, &err), &err);

    double ab[128], b0[128], lr[128];
    int n_ab = read_log(run_ab, ab, lr, 128), n_b0 = read_log(run_b0, b0, lr, 128);
    CHECK(n_ab == 80 && n_b0 == 80);
    double ab_first = mean(ab, 0, 5), ab_last = mean(ab, n_ab - 5, n_ab), b0_first = mean(b0, 0, 5);
    printf("  fine-tune on B from A: loss %.3f (first 5 steps) -> %.3f (last 5); from scratch: %.3f first\n",
           ab_first, ab_last, b0_first);
    CHECK_MSG(ab_first < 0.8 * b0_first, "A's model starts no better on B (%.3f) than a random one (%.3f)",
              ab_first, b0_first);
    CHECK_MSG(ab_last < 0.5 * ab_first, "loss on B %.3f -> %.3f", ab_first, ab_last);

    xle_model *m = NULL;
    CHECK_OK(xle_model_load(run_ab, &m, &err), &err);
    if (m) {
        const char *facts[][2] = {{"Estmoor is home to the", "white owl."}, {"Farrow is home to the", "black bear."},
                                  {"Galden is home to the", "brown hare."}, {"Hollin is home to the", "silver eel."}};
        for (int i = 0; i < 4; i++) {
            int ok = 0;
            CHECK_OK(xle_fact_recalled(m, xle_model_tokenizer(m), facts[i][0], facts[i][1], &ok, &err), &err);
            CHECK_MSG(ok, "fine-tuned model does not recall: %s %s", facts[i][0], facts[i][1]);
        }
        xle_model_free(m);
    }

    /* stopped after 30 steps and resumed from the same model: the same weights as the
     * uninterrupted fine-tune */
    int stop_after = 30;
    o.out_dir = run_stop;
    o.init = run_a;
    o.progress = stop_cb;
    o.progress_user = &stop_after;
    CHECK(xle_train(&hp, &o, &err) == XLE_ERR_INTERRUPTED);
    o.progress = NULL;
    o.resume = 1;
    /* resuming from another starting model is refused */
    o.init = run_b0;
    CHECK_MSG(xle_train(&hp, &o, &err) == XLE_ERR_ARG && strstr(err.msg, "--init model"), "%s", err.msg);
    o.init = run_a;
    CHECK_OK(xle_train(&hp, &o, &err), &err);
    char *wa = NULL, *wb = NULL, pa[600], pb[600];
    size_t na = 0, nb = 0;
    snprintf(pa, sizeof pa, "%s/model.safetensors", run_ab);
    snprintf(pb, sizeof pb, "%s/model.safetensors", run_stop);
    CHECK_OK(xle_read_whole_file(pa, &wa, &na, &err), &err);
    CHECK_OK(xle_read_whole_file(pb, &wb, &nb, &err), &err);
    CHECK_MSG(wa && wb && na == nb && memcmp(wa, wb, na) == 0, "resumed fine-tune differs from the uninterrupted one");
    free(wa);
    free(wb);
}

/* Models that cannot start a run with these settings are refused before anything is written. */
static void test_init_refusals(void) {
    xle_train_hparams hp;
    tiny_hparams(&hp);
    hp.steps = 2;
    xle_error err = {0};
    xle_config cfg;
    model_config(&hp, g_tok, &cfg);
    xle_model *m = NULL;
    CHECK_OK(xle_model_new(&cfg, 5, 0.02f, &m, &err), &err);
    if (!m) return;
    char init[512], out[512], tok2[512], corpus2[512];
    snprintf(init, sizeof init, "%s", tmp_path("init_refuse"));
    snprintf(out, sizeof out, "%s", tmp_path("run_refused"));
    CHECK_OK(xle_train_export_hf(m, g_tok, 0, init, &err), &err);
    xle_model_free(m);

    /* the shape comes from the model: xle_train_hparams_from_config reads it back */
    xle_model *loaded = NULL;
    CHECK_OK(xle_model_load(init, &loaded, &err), &err);
    if (loaded) {
        xle_train_hparams h2;
        xle_train_hparams_default(&h2);
        xle_train_hparams_from_config(&h2, xle_model_config(loaded));
        CHECK(h2.dim == hp.dim && h2.n_layers == hp.n_layers && h2.n_heads == hp.n_heads &&
              h2.n_kv_heads == hp.n_kv_heads && h2.ffn_dim == hp.ffn_dim && h2.max_seq_len == hp.max_seq_len &&
              h2.tied_embeddings == hp.tied_embeddings && h2.norm_eps == hp.norm_eps &&
              h2.rope_theta == hp.rope_theta);
        xle_model_free(loaded);
    }

    xle_train_opts o;
    memset(&o, 0, sizeof o);
    o.corpus = g_corpus_a;
    o.tokenizer = g_tok;
    o.out_dir = out;
    o.init = init;
    /* another shape */
    hp.ffn_dim = 96;
    CHECK_MSG(xle_train(&hp, &o, &err) == XLE_ERR_ARG && strstr(err.msg, "ffn_dim: 64") && strstr(err.msg, init),
              "%s", err.msg);
    hp.ffn_dim = 64;
    hp.tied_embeddings = 0;
    CHECK_MSG(xle_train(&hp, &o, &err) == XLE_ERR_ARG && strstr(err.msg, "tied_embeddings"), "%s", err.msg);
    hp.tied_embeddings = 1;
    /* a tokenizer of another size */
    snprintf(tok2, sizeof tok2, "%s", tmp_path("tok2"));
    make_tokenizer(TEXT_A, 290, tok2);
    snprintf(tok2, sizeof tok2, "%s", tmp_path("tok2/tokenizer.json"));
    o.tokenizer = tok2;
    CHECK_MSG(xle_train(&hp, &o, &err) == XLE_ERR_ARG && strstr(err.msg, "vocab_size"), "%s", err.msg);
    o.tokenizer = g_tok;
    /* no model there */
    snprintf(corpus2, sizeof corpus2, "%s", tmp_path("no_such_model"));
    o.init = corpus2;
    CHECK_MSG(xle_train(&hp, &o, &err) != XLE_OK && strstr(err.msg, "no_such_model"), "%s", err.msg);
    /* nothing was written */
    CHECK(!xle_path_exists(out));
}

int main(void) {
    setup();
    RUN(test_init_weights_exact);
    RUN(test_init_continues_training);
    RUN(test_init_refusals);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0) fprintf(stderr, "note: could not remove %s\n", g_tmp);
    return check_summary();
}
