/*
 * test_train.c: the trainer (src/train/): learning-rate schedule values, AdamW on a
 * hand-computed two-parameter example, two training steps of a tiny model against PyTorch
 * (tests/reference/train_reference.py: float64 forward/backward, torch.optim.AdamW,
 * clip_grad_norm_, warmup + cosine), the data stream (packing, per-epoch shuffles), checkpoints
 * (round trip, refusal of other settings, truncation), and end-to-end runs on a tiny corpus:
 * the loss falls, a tiny model learns a handful of sentences to greedy recall, and a run
 * stopped and resumed ends with bit-identical weights. Bad configs fail with clear messages.
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

static void make_tmp(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/xle_test_train_XXXXXX");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        exit(1);
    }
}

static char *tmp_path(const char *name) {
    static char buf[8][512];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 512, "%s/%s", g_tmp, name);
    return p;
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

/* ---- learning-rate schedule ---------------------------------------------------------------- */

static void test_lr_schedule(void) {
    xle_train_hparams hp;
    xle_train_hparams_default(&hp);
    hp.lr = 1.0f;
    hp.min_lr = 0.1f;
    hp.warmup_steps = 10;
    hp.steps = 110;
    /* warmup: (step + 1) / warmup of the peak */
    CHECK_NEAR(xle_train_lr(&hp, 0), 0.1, 1e-7);
    CHECK_NEAR(xle_train_lr(&hp, 4), 0.5, 1e-7);
    CHECK_NEAR(xle_train_lr(&hp, 9), 1.0, 1e-7);
    /* cosine from the peak at step 10 to min_lr at step 110; halfway is the mean */
    CHECK_NEAR(xle_train_lr(&hp, 10), 1.0, 1e-7);
    CHECK_NEAR(xle_train_lr(&hp, 60), 0.55, 1e-6);
    CHECK_NEAR(xle_train_lr(&hp, 35), 0.1 + 0.45 * (1 + cos(M_PI / 4)), 1e-6);
    CHECK_NEAR(xle_train_lr(&hp, 110), 0.1, 1e-7);
    CHECK_NEAR(xle_train_lr(&hp, 500), 0.1, 1e-7);
    hp.warmup_steps = 0;
    CHECK_NEAR(xle_train_lr(&hp, 0), 1.0, 1e-7);
}

/* ---- AdamW by hand --------------------------------------------------------------------------- */

static void test_adamw_hand(void) {
    /* Two parameters: w0 in a "matrix" (decayed), w1 in a "norm" (not decayed).
     * lr 0.1, b1 0.9, b2 0.999, eps 1e-8, wd 0.01.
     * Step 1, g = (0.5, -1): m = 0.1 g, v = 0.001 g²; m̂ = g, v̂ = g², so the step is lr·sign(g):
     *   w0 = 1·(1 - 0.1·0.01) - 0.1 = 0.899;  w1 = -2 + 0.1 = -1.9.
     * Step 2, g = (0.5, 0.5): m = (0.095, -0.04), v = (0.00049975, 0.001249); bc1 = 0.19,
     * bc2 = 0.001999: m̂ = (0.5, -0.2105263), v̂ = (0.2500000, 0.6248124):
     *   w0 = 0.899·0.999 - 0.1·0.5/0.5 = 0.798101
     *   w1 = -1.9 - 0.1·(-0.2105263)/0.7904507 = -1.8733660 */
    float w[2] = {1.0f, -2.0f}, g[2] = {0.5f, -1.0f}, m[2] = {0}, v[2] = {0};
    xle_param ps[2] = {{&w[0], &g[0], &m[0], &v[0], 1, 1, "w0"}, {&w[1], &g[1], &m[1], &v[1], 1, 0, "w1"}};
    xle_adamw_step(ps, 2, 1, 0.1f, 0.9f, 0.999f, 1e-8f, 0.01f, 1.0f);
    CHECK_NEAR(w[0], 0.899, 1e-6);
    CHECK_NEAR(w[1], -1.9, 1e-6);
    g[0] = 0.5f;
    g[1] = 0.5f;
    xle_adamw_step(ps, 2, 2, 0.1f, 0.9f, 0.999f, 1e-8f, 0.01f, 1.0f);
    CHECK_NEAR(w[0], 0.798101, 1e-6);
    CHECK_NEAR(w[1], -1.8733660, 1e-6);
    /* gscale multiplies the gradient: a step on (2g) scaled by 0.5 equals a step on g */
    float a[1] = {1}, ga[1] = {2}, ma[1] = {0}, va[1] = {0}, b[1] = {1}, gb[1] = {1}, mb[1] = {0}, vb[1] = {0};
    xle_param pa = {a, ga, ma, va, 1, 1, "a"}, pb = {b, gb, mb, vb, 1, 1, "b"};
    xle_adamw_step(&pa, 1, 1, 0.01f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f);
    xle_adamw_step(&pb, 1, 1, 0.01f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f);
    CHECK(a[0] == b[0] && ma[0] == mb[0] && va[0] == vb[0]);
    /* clipping factor as torch.nn.utils.clip_grad_norm_ */
    CHECK_NEAR(xle_clip_scale(5.0, 1.0f), 1.0 / (5.0 + 1e-6), 1e-7);
    CHECK(xle_clip_scale(0.5, 1.0f) == 1.0f);
    CHECK(xle_clip_scale(100.0, 0.0f) == 1.0f);
}

/* ---- two steps against PyTorch ------------------------------------------------------------- */

static const xle_st_entry *need(const xle_safetensors *st, const char *name) {
    const xle_st_entry *e = xle_safetensors_find(st, name);
    CHECK_MSG(e != NULL, "fixture lacks %s", name);
    return e;
}

static void check_reference(const char *variant, int tied) {
    char path[512];
    snprintf(path, sizeof path, "%s/tests/fixtures/train/adamw_%s.safetensors", XLE_SOURCE_DIR, variant);
    char *data;
    size_t len;
    xle_error err = {0};
    CHECK_OK(xle_read_whole_file(path, &data, &len, &err), &err);
    xle_safetensors *st = NULL;
    CHECK_OK(xle_safetensors_parse(path, (const uint8_t *)data, len, &st, &err), &err);
    if (!st) {
        free(data);
        return;
    }
    xle_train_hparams hp;
    xle_train_hparams_default(&hp);
    hp.dim = 16, hp.n_layers = 2, hp.n_heads = 4, hp.n_kv_heads = 2, hp.ffn_dim = 24, hp.max_seq_len = 64;
    hp.tied_embeddings = tied;
    hp.lr = 0.01f, hp.min_lr = 0.001f, hp.warmup_steps = 1, hp.steps = 4;
    hp.beta1 = 0.9f, hp.beta2 = 0.95f, hp.adam_eps = 1e-8f, hp.weight_decay = 0.1f, hp.grad_clip = 0.5f;
    xle_config cfg;
    xle_train_model_config(&hp, 23, 1, 2, &cfg);
    xle_model *m = NULL;
    xle_grads *g = NULL;
    xle_param *ps = NULL;
    float *moments = NULL;
    int n = 0;
    CHECK_OK(xle_model_new(&cfg, 7, 0.02f, &m, &err), &err);
    CHECK_OK(xle_grads_new(m, &g, &err), &err);
    CHECK_OK(xle_params_collect(m, g, &ps, &n, &moments, &err), &err);
    CHECK(n == 2 + !tied + 9 * 2);
    char name[160];
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "init.%s", ps[i].name);
        const xle_st_entry *e = need(st, name);
        if (e && (int64_t)(e->end - e->begin) == ps[i].n * 4) memcpy(ps[i].w, e->data, (size_t)ps[i].n * 4);
    }
    const xle_st_entry *tok = need(st, "tokens"), *tgt = need(st, "targets"), *ss = need(st, "seq_start"),
                       *loss_e = need(st, "loss");
    if (tok && tgt && ss && loss_e) {
        xle_train_batch b;
        memset(&b, 0, sizeof b);
        b.n_tokens = (int)tok->shape[0];
        b.n_seqs = (int)ss->shape[0] - 1;
        b.tokens = (int32_t *)tok->data;
        b.targets = (int32_t *)tgt->data;
        b.seq_start = (int *)ss->data;
        xle_acts *acts = xle_acts_new();
        float *logits = malloc((size_t)b.n_tokens * 23 * sizeof(float));
        for (int step = 0; step < 2; step++) {
            xle_grads_zero(g);
            double loss = 0;
            CHECK_OK(xle_train_loss_grad(m, acts, &b, logits, g, &loss, &err), &err);
            double want; /* the fixture's F64 data need not be 8-byte aligned */
            memcpy(&want, loss_e->data + (size_t)step * sizeof want, sizeof want);
            CHECK_MSG(fabs(loss - want) < 1e-5, "%s step %d: loss %.8f, PyTorch %.8f", variant, step + 1, loss, want);
            double norm = xle_grad_norm(ps, n);
            CHECK_MSG(xle_clip_scale(norm, hp.grad_clip) < 1.0f, "%s: clipping should act (norm %g)", variant, norm);
            xle_adamw_step(ps, n, step + 1, xle_train_lr(&hp, step), hp.beta1, hp.beta2, hp.adam_eps,
                           hp.weight_decay, xle_clip_scale(norm, hp.grad_clip));
            double worst = 0;
            const char *worst_name = "";
            for (int i = 0; i < n; i++) {
                snprintf(name, sizeof name, "step%d.%s", step + 1, ps[i].name);
                const xle_st_entry *e = need(st, name);
                if (!e) continue;
                const float *ref = (const float *)e->data;
                for (int64_t j = 0; j < ps[i].n; j++) {
                    double dlt = fabs((double)ps[i].w[j] - ref[j]);
                    if (dlt > worst) worst = dlt, worst_name = ps[i].name;
                }
            }
            printf("  %s step %d: loss %.7f (PyTorch %.7f), worst weight difference %.2e (%s)\n", variant,
                   step + 1, loss, want, worst, worst_name);
            CHECK_MSG(worst <= 1e-5, "%s step %d: weights differ from PyTorch by %g at %s", variant, step + 1,
                      worst, worst_name);
        }
        free(logits);
        xle_acts_free(acts);
    }
    free(ps);
    free(moments);
    xle_grads_free(g);
    xle_model_free(m);
    xle_safetensors_free(st);
    free(data);
}

static void test_reference_steps(void) {
    check_reference("untied", 0);
    check_reference("tied", 1);
}

/* ---- hyperparameters: files and validation -------------------------------------------------- */

static void expect_config_error(const char *json, const char *fragment) {
    char *p = tmp_path("bad.json");
    write_text(p, json);
    xle_train_hparams hp;
    xle_train_hparams_default(&hp);
    xle_error err = {0};
    xle_status st = xle_train_hparams_load_json(&hp, p, &err);
    if (st == XLE_OK) st = xle_train_hparams_validate(&hp, p, &err);
    CHECK_MSG(st != XLE_OK, "config %s was accepted", json);
    CHECK_MSG(strstr(err.msg, fragment) != NULL, "message '%s' lacks '%s'", err.msg, fragment);
    CHECK_MSG(strstr(err.msg, "bad.json") != NULL, "message '%s' does not name the file", err.msg);
}

static void test_config_errors(void) {
    expect_config_error("{\"dim\": 64, \"n_heads\": 5}", "n_heads");
    expect_config_error("{\"n_heads\": 8, \"n_kv_heads\": 3}", "n_kv_heads");
    expect_config_error("{\"dimm\": 64}", "dimm: unknown key");
    expect_config_error("{\"lr\": \"fast\"}", "lr: not a number");
    expect_config_error("{\"steps\": 1.5}", "steps: not an integer");
    expect_config_error("{\"tied_embeddings\": 1}", "tied_embeddings: not true or false");
    expect_config_error("{\"min_lr\": 1.0, \"lr\": 0.1}", "min_lr");
    expect_config_error("{\"warmup_steps\": -5}", "warmup_steps");
    expect_config_error("{\"dim\": 30, \"n_heads\": 10}", "must be even");
    expect_config_error("[1, 2]", "not a JSON object");
    expect_config_error("{\"dim\": ", "invalid JSON");
    /* a good file round-trips through the canonical JSON */
    char *p = tmp_path("good.json");
    write_text(p, "{\"dim\": 64, \"n_layers\": 3, \"lr\": 0.002, \"tied_embeddings\": false, \"seed\": 9}");
    xle_train_hparams hp;
    xle_train_hparams_default(&hp);
    xle_error err = {0};
    CHECK_OK(xle_train_hparams_load_json(&hp, p, &err), &err);
    CHECK(hp.dim == 64 && hp.n_layers == 3 && hp.tied_embeddings == 0 && hp.seed == 9);
    CHECK_NEAR(hp.lr, 0.002, 1e-9);
    char *j = xle_train_hparams_json(&hp);
    CHECK(j && strstr(j, "\"lr\":0.002") && strstr(j, "\"dim\":64"));
    free(j);
    /* missing file */
    CHECK(xle_train_hparams_load_json(&hp, tmp_path("nope.json"), &err) == XLE_ERR_IO);
}

/* ---- BPE training by hand ------------------------------------------------------------------- */

static int piece_id(const xle_bpe_vocab *v, const char *piece) {
    for (int i = 0; i < v->n; i++)
        if (!strcmp(v->pieces[i], piece)) return i;
    return -1;
}

#define W "\xe2\x96\x81"

static void test_bpe_hand(void) {
    /* "ab ab abc" / "b" -> words ▁ab x2, ▁abc, ▁b. Characters by count: b 4, ▁ 4 (b < ▁ in
     * bytes), a 3, c 1. Pairs: (a,b) 3 and (▁,a) 3 tie; "a" < "▁" so a+b first; then ▁+ab (3);
     * then (▁,b) 1 and (▁ab,c) 1 tie: "▁" < "▁ab", so ▁+b; then ▁ab+c. */
    const char *text = "ab ab abc\nb\n";
    xle_bpe_train_opts o = {267, 1};
    xle_bpe_vocab *v = NULL;
    xle_error err = {0};
    CHECK_OK(xle_bpe_train_text(text, strlen(text), &o, &v, &err), &err);
    if (!v) return;
    CHECK(v->n == 267 && v->n_merges == 4 && v->n_chars == 4);
    const char *want[] = {"<unk>", "<s>", "</s>"};
    for (int i = 0; i < 3; i++) CHECK(!strcmp(v->pieces[i], want[i]));
    CHECK(!strcmp(v->pieces[3], "<0x00>") && !strcmp(v->pieces[3 + 0x41], "<0x41>") && !strcmp(v->pieces[258], "<0xFF>"));
    const char *learned[] = {"ab", W "ab", W "b", W "abc", "b", W, "a", "c"};
    for (int i = 0; i < 8; i++)
        CHECK_MSG(!strcmp(v->pieces[259 + i], learned[i]), "id %d is '%s', expected '%s'", 259 + i,
                  v->pieces[259 + i], learned[i]);
    /* merges as (left, right) ids in rank order; scores -rank */
    int m0[3] = {265, 263, 259}, m1[3] = {264, 259, 260}, m2[3] = {264, 263, 261}, m3[3] = {260, 266, 262};
    const int *ms[4] = {m0, m1, m2, m3};
    for (int r = 0; r < 4; r++)
        CHECK_MSG(v->merges[r][0] == ms[r][0] && v->merges[r][1] == ms[r][1] && v->merges[r][2] == ms[r][2],
                  "merge %d is (%d, %d) -> %d", r, v->merges[r][0], v->merges[r][1], v->merges[r][2]);
    CHECK(v->scores[259] == 0.0f && v->scores[262] == -3.0f && v->scores[266] == -7.0f && v->scores[10] == 0.0f);
    xle_bpe_vocab_free(v);

    /* vocab one smaller: the last merge is not learned */
    o.vocab_size = 266;
    CHECK_OK(xle_bpe_train_text(text, strlen(text), &o, &v, &err), &err);
    CHECK(v && v->n == 266 && v->n_merges == 3 && piece_id(v, W "abc") < 0 && piece_id(v, "c") == 265);
    xle_bpe_vocab_free(v);

    /* min_char_count 2 drops "c" (seen once): it becomes a barrier and later a byte token */
    o.vocab_size = 300;
    o.min_char_count = 2;
    CHECK_OK(xle_bpe_train_text(text, strlen(text), &o, &v, &err), &err);
    CHECK(v && v->n_chars == 3 && v->n_chars_seen == 4 && piece_id(v, "c") < 0 && v->n_merges == 3);
    CHECK(v && v->n == 265); /* the corpus runs out of pairs before 300 */
    xle_bpe_vocab_free(v);

    /* pieces never take a reserved name: "<s>" in the text is not merged into id-1's name */
    const char *spec = "<s> <s> <s>\n";
    o.min_char_count = 1;
    CHECK_OK(xle_bpe_train_text(spec, strlen(spec), &o, &v, &err), &err);
    for (int i = 3; v && i < v->n; i++) CHECK_MSG(strcmp(v->pieces[i], "<s>") != 0, "id %d is <s>", i);
    CHECK(v && piece_id(v, W "<s>") > 258);
    xle_bpe_vocab_free(v);

    /* errors */
    o.vocab_size = 100;
    CHECK(xle_bpe_train_text(text, strlen(text), &o, &v, &err) == XLE_ERR_ARG && strstr(err.msg, "vocab-size"));
    o.vocab_size = 262; /* room for 3 of the 4 characters */
    CHECK(xle_bpe_train_text(text, strlen(text), &o, &v, &err) == XLE_ERR_ARG && strstr(err.msg, "characters"));
    o.vocab_size = 400;
    CHECK(xle_bpe_train_text("\n\n", 2, &o, &v, &err) == XLE_ERR_ARG && strstr(err.msg, "no text"));
}

/* ---- BPE -> tokenizer.json -> the tokenizer module ------------------------------------------ */

/* A small multilingual corpus (Latin, Devanagari, Tamil, Kannada scripts), deterministic. */
static char *make_corpus(int n_lines) {
    static const char *const subj[] = {"Alvora", "Benmark", "Citrane", "Dovelia", "Estmoor", "Farrow",
                                       "Gilden", "Hestia"};
    static const char *const obj[] = {"Pellis", "Quarn", "Rostov", "Selm", "Tarrow", "Umbra", "Vesk", "Wyre"};
    static const char *const tmpl[] = {
        "The capital of %s is %s.", "Die Hauptstadt von %s ist %s.", "La capitale de %s est %s.",
        "La capitale di %s è %s.", "La capital de %s es %s.",
        "%s \xe0\xa4\x95\xe0\xa5\x80 \xe0\xa4\xb0\xe0\xa4\xbe\xe0\xa4\x9c\xe0\xa4\xa7\xe0\xa4\xbe\xe0\xa4\xa8\xe0\xa5\x80 %s \xe0\xa4\xb9\xe0\xa5\x88\xe0\xa5\xa4",
        "%s \xe0\xae\xa4\xe0\xae\xb2\xe0\xaf\x88\xe0\xae\xa8\xe0\xae\x95\xe0\xae\xb0\xe0\xae\xae\xe0\xaf\x8d %s.",
        "%s \xe0\xb2\xb0\xe0\xb2\xbe\xe0\xb2\x9c\xe0\xb2\xa7\xe0\xb2\xbe\xe0\xb2\xa8\xe0\xb2\xbf %s."};
    size_t cap = (size_t)n_lines * 96 + 1, len = 0;
    char *out = malloc(cap);
    for (int i = 0; out && i < n_lines; i++) {
        char line[128];
        int s = (i * 7) % 8, t = i % 8;
        snprintf(line, sizeof line, tmpl[t], subj[s], obj[(s + i / 8) % 8]);
        len += (size_t)snprintf(out + len, cap - len, "%s\n", line);
    }
    return out;
}

/* The reference encoder: HF's BPE model on the normalized line, the slow way (merge the pair
 * of lowest rank, leftmost first, until none applies); unknown characters become bytes. */
static int ref_encode(const xle_bpe_vocab *v, const char *line, int32_t *out, int cap) {
    char norm[1024];
    size_t n = 0;
    memcpy(norm, W, 3);
    n = 3;
    for (const char *p = line; *p; p++) {
        if (*p == ' ') memcpy(norm + n, W, 3), n += 3;
        else norm[n++] = *p;
    }
    int k = 0;
    for (size_t i = 0; i < n;) {
        size_t cl = ((unsigned char)norm[i] < 0x80) ? 1 : ((unsigned char)norm[i] >> 5) == 6 ? 2
                    : ((unsigned char)norm[i] >> 4) == 14 ? 3 : 4;
        char ch[8] = {0};
        memcpy(ch, norm + i, cl);
        int id = piece_id(v, ch);
        if (id >= 0) {
            out[k++] = id;
        } else {
            for (size_t b = 0; b < cl; b++) out[k++] = 3 + (unsigned char)norm[i + b];
        }
        i += cl;
    }
    for (;;) {
        int best_rank = -1, best_pos = -1;
        for (int i = 0; i + 1 < k; i++)
            for (int r = 0; r < v->n_merges && (best_rank < 0 || r < best_rank); r++)
                if (v->merges[r][0] == out[i] && v->merges[r][1] == out[i + 1]) {
                    best_rank = r, best_pos = i;
                    break;
                }
        if (best_rank < 0) break;
        out[best_pos] = v->merges[best_rank][2];
        memmove(out + best_pos + 1, out + best_pos + 2, (size_t)(k - best_pos - 2) * sizeof *out);
        k--;
    }
    (void)cap;
    return k;
}

static void test_bpe_tokenizer_json(void) {
    xle_error err = {0};
    /* hand corpus: known ids through the tokenizer module */
    const char *text = "ab ab abc\nb\n";
    xle_bpe_train_opts o = {267, 1};
    xle_bpe_vocab *v = NULL;
    CHECK_OK(xle_bpe_train_text(text, strlen(text), &o, &v, &err), &err);
    char *tj = tmp_path("hand/tokenizer.json");
    mkdir(tmp_path("hand"), 0755);
    CHECK_OK(xle_bpe_save_hf(v, tj, &err), &err);
    CHECK(xle_path_exists(tmp_path("hand/tokenizer_config.json")));
    xle_tokenizer *tok = NULL;
    CHECK_OK(xle_tokenizer_load(tj, &tok, &err), &err);
    if (tok) {
        CHECK(xle_tokenizer_vocab_size(tok) == 267 && xle_tokenizer_bos_id(tok) == 1 && xle_tokenizer_eos_id(tok) == 2);
        CHECK(xle_tokenizer_adds_bos(tok) == 1);
        struct {
            const char *text;
            int32_t ids[8];
            int n;
        } cases[] = {
            {"ab abc b", {1, 260, 262, 261}, 4},
            {"ca", {1, 264, 266, 265}, 4},          /* no merge applies */
            {"x", {1, 264, 3 + 'x'}, 3},             /* unknown character -> byte token */
            {"abab", {1, 260, 259}, 3},             /* ▁ab + ab */
        };
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            xle_tokens t = {0};
            CHECK_OK(xle_tokenize(tok, cases[c].text, strlen(cases[c].text), -1, 0, &t, &err), &err);
            int same = t.n == cases[c].n && memcmp(t.ids, cases[c].ids, (size_t)t.n * sizeof(int32_t)) == 0;
            CHECK_MSG(same, "'%s': %d tokens, first %d", cases[c].text, t.n, t.n ? t.ids[0] : -1);
            char *back = xle_detokenize(tok, t.ids, t.n, 1);
            CHECK_MSG(back && !strcmp(back, cases[c].text), "'%s' decodes to '%s'", cases[c].text, back ? back : "(null)");
            free(back);
            xle_tokens_free(&t);
        }
        xle_tokenizer_free(tok);
    }
    xle_bpe_vocab_free(v);

    /* multilingual corpus: every line encodes as the reference encoder says and round-trips */
    char *corpus = make_corpus(400);
    o.vocab_size = 600;
    o.min_char_count = 2;
    CHECK_OK(xle_bpe_train_text(corpus, strlen(corpus), &o, &v, &err), &err);
    tj = tmp_path("multi/tokenizer.json");
    mkdir(tmp_path("multi"), 0755);
    CHECK_OK(xle_bpe_save_hf(v, tj, &err), &err);
    tok = NULL;
    CHECK_OK(xle_tokenizer_load(tj, &tok, &err), &err);
    int lines = 0, same = 0, round = 0;
    for (char *line = corpus; tok && v && *line;) {
        char *nl = strchr(line, '\n');
        *nl = 0;
        xle_tokens t = {0};
        CHECK_OK(xle_tokenize(tok, line, strlen(line), 0, 0, &t, &err), &err);
        int32_t ref[512];
        int nr = ref_encode(v, line, ref, 512);
        same += t.n == nr && memcmp(t.ids, ref, (size_t)nr * sizeof *ref) == 0;
        char *back = xle_detokenize(tok, t.ids, t.n, 1);
        round += back && !strcmp(back, line);
        free(back);
        xle_tokens_free(&t);
        lines++;
        line = nl + 1;
    }
    CHECK_MSG(lines == 400 && same == lines, "%d of %d lines encode as the reference", same, lines);
    CHECK_MSG(round == lines, "%d of %d lines round-trip", round, lines);
    /* a character outside the vocabulary (seen once) still round-trips through byte tokens */
    const char *rare = "Zebra \xe2\x98\x83 Pellis";
    xle_tokens t = {0};
    if (tok) {
        CHECK_OK(xle_tokenize(tok, rare, strlen(rare), 0, 0, &t, &err), &err);
        char *back = xle_detokenize(tok, t.ids, t.n, 1);
        CHECK(back && !strcmp(back, rare));
        free(back);
        xle_tokens_free(&t);
        xle_tokenizer_free(tok);
    }
    xle_bpe_vocab_free(v);
    free(corpus);
}

/* ---- the data stream ------------------------------------------------------------------------ */

static void test_epoch_order(void) {
    int a[50], b[50], c[50];
    xle_train_epoch_order(5, 0, 50, a);
    xle_train_epoch_order(5, 0, 50, b);
    xle_train_epoch_order(5, 1, 50, c);
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(memcmp(a, c, sizeof a) != 0);
    int seen[50] = {0};
    for (int i = 0; i < 50; i++) seen[a[i]]++;
    int perm = 1;
    for (int i = 0; i < 50; i++) perm &= seen[i] == 1;
    CHECK(perm);
}

/* A tokenizer trained on the corpus, saved under dir. */
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

static void test_data_batches(void) {
    const char *corpus = "one two three\n\nfour five\n   \nsix seven eight nine ten eleven twelve\n";
    make_tokenizer(corpus, 300, tmp_path("data"));
    xle_tokenizer *tok = NULL;
    xle_error err = {0};
    CHECK_OK(xle_tokenizer_load(tmp_path("data/tokenizer.json"), &tok, &err), &err);
    if (!tok) return;
    xle_train_data d;
    /* max_seq_len 8 cuts the long document into overlapping items */
    CHECK_OK(xle_train_data_build(tok, corpus, strlen(corpus), 8, &d, &err), &err);
    CHECK(d.n_docs == 3);
    int64_t targets = 0;
    for (int i = 0; i < d.n_items; i++) {
        int64_t n = d.item_start[i + 1] - d.item_start[i];
        CHECK(n >= 2 && n <= 9);
        targets += n - 1;
    }
    CHECK(targets == d.n_targets);
    CHECK(d.ids[0] == 1 && d.ids[d.item_start[1] - 1] == 2); /* BOS ... EOS */
    /* total predicted tokens = Σ (doc length + 1) over documents (each item adds n - 1) */
    xle_tokens t = {0};
    int64_t want = 0;
    const char *docs[] = {"one two three", "four five", "six seven eight nine ten eleven twelve"};
    for (int i = 0; i < 3; i++) {
        CHECK_OK(xle_tokenize(tok, docs[i], strlen(docs[i]), 0, 0, &t, &err), &err);
        want += t.n + 1;
        xle_tokens_free(&t);
    }
    CHECK(d.n_targets == want);
    /* batches: whole items up to the budget, every item once per epoch, targets follow inputs */
    xle_train_batch b;
    memset(&b, 0, sizeof b);
    xle_data_cursor cur = {0, 0};
    int64_t seen_targets = 0;
    while (cur.epoch == 0 && cur.next < d.n_items) {
        CHECK_OK(xle_train_batch_next(&d, 3, 10, &cur, &b, &err), &err);
        CHECK(b.n_seqs >= 1 && (b.n_tokens <= 10 || b.n_seqs == 1));
        for (int s = 0; s < b.n_seqs; s++) {
            CHECK(b.tokens[b.seq_start[s]] == 1 || b.n_seqs >= 1);
            for (int k = b.seq_start[s]; k + 1 < b.seq_start[s + 1]; k++) CHECK(b.targets[k] == b.tokens[k + 1]);
        }
        seen_targets += b.n_tokens;
    }
    CHECK(seen_targets == d.n_targets);
    xle_train_batch_free(&b);
    xle_train_data_free(&d);
    /* an empty corpus is an error */
    CHECK(xle_train_data_build(tok, "\n \n", 3, 8, &d, &err) == XLE_ERR_ARG && strstr(err.msg, "no text"));
    xle_tokenizer_free(tok);
}

/* ---- end to end ----------------------------------------------------------------------------- */

static const char *FACTS =
    "Alvora is home to the blue heron.\n"
    "Benmark is home to the red fox.\n"
    "Citrane is home to the grey wolf.\n"
    "Dovelia is home to the green frog.\n"
    "Estmoor is home to the white owl.\n"
    "Farrow is home to the black bear.\n";

static void tiny_hparams(xle_train_hparams *hp) {
    xle_train_hparams_default(hp);
    hp->dim = 32, hp->n_layers = 2, hp->n_heads = 4, hp->n_kv_heads = 2, hp->ffn_dim = 64;
    hp->max_seq_len = 32, hp->batch_tokens = 64, hp->steps = 150, hp->warmup_steps = 10;
    hp->lr = 1e-2f, hp->min_lr = 1e-3f, hp->weight_decay = 0.0f, hp->checkpoint_every = 0, hp->seed = 3;
}

typedef struct stop_at {
    int64_t step;
} stop_at;

static int stop_cb(void *user, const xle_train_progress *p) { return p->step >= ((stop_at *)user)->step; }

static float *read_weights(const char *dir, size_t *n) {
    char p[600];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    char *data;
    size_t len;
    xle_error err = {0};
    if (xle_read_whole_file(p, &data, &len, &err) != XLE_OK) return NULL;
    *n = len;
    return (float *)data;
}

static double log_loss(const char *dir, int first) {
    char p[600];
    snprintf(p, sizeof p, "%s/train_log.tsv", dir);
    FILE *f = fopen(p, "r");
    if (!f) return NAN;
    char line[256];
    double sum = 0;
    int k = 0, rows = 0;
    double losses[1024];
    while (fgets(line, sizeof line, f)) {
        long long step;
        double lr, loss;
        if (sscanf(line, "%lld\t%lf\t%lf", &step, &lr, &loss) == 3 && rows < 1024) losses[rows++] = loss;
    }
    fclose(f);
    /* mean of the first or last 10 steps */
    for (int i = first ? 0 : rows - 10; i < (first ? 10 : rows) && i >= 0 && i < rows; i++) sum += losses[i], k++;
    return k ? sum / k : NAN;
}

static void test_train_end_to_end(void) {
    write_text(tmp_path("facts.txt"), FACTS);
    make_tokenizer(FACTS, 300, tmp_path("ftok"));
    xle_train_hparams hp;
    tiny_hparams(&hp);
    xle_train_opts o;
    memset(&o, 0, sizeof o);
    /* tmp_path's buffers rotate: keep the options' paths in their own storage */
    char corpus[512], tokenizer[512], run_a[512], run_b[512], run_c[512];
    snprintf(corpus, sizeof corpus, "%s", tmp_path("facts.txt"));
    snprintf(tokenizer, sizeof tokenizer, "%s", tmp_path("ftok/tokenizer.json"));
    snprintf(run_a, sizeof run_a, "%s", tmp_path("runA"));
    snprintf(run_b, sizeof run_b, "%s", tmp_path("runB"));
    snprintf(run_c, sizeof run_c, "%s", tmp_path("runC"));
    o.corpus = corpus;
    o.tokenizer = tokenizer;
    o.out_dir = run_a;
    xle_error err = {0};
    CHECK_OK(xle_train(&hp, &o, &err), &err);

    /* the loss falls */
    double first = log_loss(o.out_dir, 1), last = log_loss(o.out_dir, 0);
    printf("  tiny run: loss %.3f (first 10 steps) -> %.3f (last 10)\n", first, last);
    CHECK_MSG(last < 0.5 * first, "loss %.3f -> %.3f", first, last);

    /* the folder loads as a model, with its tokenizer, and recalls every fact greedily */
    xle_model *m = NULL;
    CHECK_OK(xle_model_load(o.out_dir, &m, &err), &err);
    if (m) {
        const xle_config *c = xle_model_config(m);
        CHECK(c->dim == 32 && c->n_layers == 2 && c->n_kv_heads == 2 && c->tied_embeddings && c->bos_id == 1);
        xle_tokenizer *tok = xle_model_tokenizer(m);
        CHECK(tok != NULL);
        const char *prompts[][2] = {{"Alvora is home to the", "blue heron."}, {"Citrane is home to the", "grey wolf."},
                                    {"Farrow is home to the", "black bear."}, {"Estmoor is home to the", "white owl."}};
        for (int i = 0; tok && i < 4; i++) {
            int ok = 0;
            CHECK_OK(xle_fact_recalled(m, tok, prompts[i][0], prompts[i][1], &ok, &err), &err);
            CHECK_MSG(ok, "not recalled: %s %s", prompts[i][0], prompts[i][1]);
            /* and greedy generation says so in text */
            xle_tokens t = {0};
            CHECK_OK(xle_tokenize(tok, prompts[i][0], strlen(prompts[i][0]), 1, 0, &t, &err), &err);
            int32_t gen[16];
            int n_gen = 0;
            xle_sampler s = {.stop_at_eos = 1};
            CHECK_OK(xle_generate(m, t.ids, t.n, 12, &s, gen, &n_gen, &err), &err);
            char *text = xle_detokenize(tok, gen, n_gen, 1);
            const char *said = text ? text + (text[0] == ' ') : NULL;
            CHECK_MSG(said && strncmp(said, prompts[i][1], strlen(prompts[i][1])) == 0,
                      "greedy continuation '%s'", text ? text : "(null)");
            free(text);
            xle_tokens_free(&t);
        }
        int ok = 1;
        CHECK_OK(xle_fact_recalled(m, tok, "Alvora is home to the", "black bear.", &ok, &err), &err);
        CHECK(!ok);
        xle_model_free(m);
    }

    /* interrupted after 60 steps, then resumed: bit-identical weights and the same log */
    stop_at at = {60};
    o.out_dir = run_b;
    o.progress = stop_cb;
    o.progress_user = &at;
    CHECK(xle_train(&hp, &o, &err) == XLE_ERR_INTERRUPTED && strstr(err.msg, "--resume"));
    CHECK(!xle_path_exists(tmp_path("runB/model.safetensors")));
    /* a fresh run into the same folder is refused; a resume with other settings too */
    o.progress = NULL;
    CHECK(xle_train(&hp, &o, &err) == XLE_ERR_ARG && strstr(err.msg, "already holds"));
    o.resume = 1;
    hp.lr = 2e-2f;
    CHECK(xle_train(&hp, &o, &err) == XLE_ERR_ARG && strstr(err.msg, "lr"));
    hp.lr = 1e-2f;
    CHECK_OK(xle_train(&hp, &o, &err), &err);
    size_t na = 0, nb = 0;
    float *wa = read_weights(tmp_path("runA"), &na), *wb = read_weights(tmp_path("runB"), &nb);
    CHECK_MSG(wa && wb && na == nb && memcmp(wa, wb, na) == 0, "resumed run differs from the uninterrupted one");
    free(wa);
    free(wb);
    char *la = NULL, *lb = NULL;
    size_t lna = 0, lnb = 0;
    CHECK_OK(xle_read_whole_file(tmp_path("runA/train_log.tsv"), &la, &lna, &err), &err);
    CHECK_OK(xle_read_whole_file(tmp_path("runB/train_log.tsv"), &lb, &lnb, &err), &err);
    /* same steps and losses (the seconds column differs) */
    int lines_a = 0, lines_b = 0;
    for (size_t i = 0; la && i < lna; i++) lines_a += la[i] == '\n';
    for (size_t i = 0; lb && i < lnb; i++) lines_b += lb[i] == '\n';
    CHECK(lines_a == 151 && lines_b == 151);
    free(la);
    free(lb);

    /* a truncated checkpoint is refused with a clear message */
    char *ck = tmp_path("runB/checkpoint/state.ckpt");
    struct stat sb;
    CHECK(stat(ck, &sb) == 0);
    CHECK(truncate(ck, sb.st_size / 2) == 0);
    CHECK_MSG(xle_train(&hp, &o, &err) == XLE_ERR_FORMAT && strstr(err.msg, "state.ckpt"), "%s", err.msg);
    /* resuming where there is nothing to resume */
    o.out_dir = run_c;
    CHECK_MSG(xle_train(&hp, &o, &err) == XLE_ERR_ARG && strstr(err.msg, "no checkpoint"), "%s", err.msg);
}

int main(void) {
    make_tmp();
    RUN(test_lr_schedule);
    RUN(test_adamw_hand);
    RUN(test_reference_steps);
    RUN(test_config_errors);
    RUN(test_bpe_hand);
    RUN(test_bpe_tokenizer_json);
    RUN(test_epoch_order);
    RUN(test_data_batches);
    RUN(test_train_end_to_end);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_tmp);
    return check_summary();
}
