/*
 * test_ike.c: in-context editing (src/eval/ike.c) on a real trained model (Karpathy's
 * stories260K, ../shared/data/external/stories260k).
 *
 *  - The context built for a given seed is the expected string (demonstrations drawn from the
 *    other cases, copy / update / retain in turn, then the new fact); the same seed gives the
 *    same context, another seed other demonstrations; a token budget drops demonstrations from
 *    the end, down to none.
 *  - An evaluation run with --method ike: the weights are bitwise unchanged, the "all" unit is
 *    skipped with its reason, and one unit's reliability and locality are recomputed here from
 *    the model evaluated directly on the prompts with the context before them, against the
 *    unedited model without it.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "eval/eval_internal.h"

#define STORIES XLE_SHARED_DIR "/data/external/stories260k/stories260K.bin"

static char tmpdir[256];
static char data_path[300];

/* Five small facts in two "languages" (the tokenizer knows English only; the codes are labels). */
static const char cases_jsonl[] =
    "{\"id\":\"c0\",\"source\":\"t\",\"langs\":{"
    "\"en\":{\"prompt\":\"Lily has a\",\"subject\":\"Lily\",\"target_new\":\"cat\",\"target_true\":\"dog\","
    "\"rephrases\":[\"The pet of Lily is a\"],\"locality\":[{\"prompt\":\"Tom has a\",\"answer\":\"ball\"}]},"
    "\"de\":{\"prompt\":\"Lily owns a\",\"subject\":\"Lily\",\"target_new\":\"cat\",\"target_true\":\"dog\","
    "\"locality\":[{\"prompt\":\"Tom owns a\",\"answer\":\"ball\"}]}}}\n"
    "{\"id\":\"c1\",\"source\":\"t\",\"langs\":{"
    "\"en\":{\"prompt\":\"Tom likes the\",\"subject\":\"Tom\",\"target_new\":\"park\","
    "\"rephrases\":[\"Tom loves the\"],\"locality\":[{\"prompt\":\"Sue likes the\",\"answer\":\"sun\"}]},"
    "\"de\":{\"prompt\":\"Tom enjoys the\",\"subject\":\"Tom\",\"target_new\":\"park\"}}}\n"
    "{\"id\":\"c2\",\"source\":\"t\",\"langs\":{"
    "\"en\":{\"prompt\":\"Sue went to the\",\"subject\":\"Sue\",\"target_new\":\"shop\","
    "\"rephrases\":[\"Sue walked to the\"],\"locality\":[{\"prompt\":\"Ben went to the\",\"answer\":\"sea\"}]}}}\n"
    "{\"id\":\"c3\",\"source\":\"t\",\"langs\":{"
    "\"en\":{\"prompt\":\"Ben saw a big\",\"subject\":\"Ben\",\"target_new\":\"bird\","
    "\"rephrases\":[\"Ben spotted a big\"],\"locality\":[{\"prompt\":\"Max saw a big\",\"answer\":\"tree\"}]}}}\n"
    "{\"id\":\"c4\",\"source\":\"t\",\"langs\":{"
    "\"en\":{\"prompt\":\"Max ate a red\",\"subject\":\"Max\",\"target_new\":\"apple\","
    "\"rephrases\":[\"Max had a red\"],\"locality\":[{\"prompt\":\"Sue ate a red\",\"answer\":\"pear\"}]}}}\n";

static xle_model *load_stories(void) {
    xle_model *m = NULL;
    xle_error err = {0};
    CHECK_OK(xle_model_load(STORIES, &m, &err), &err);
    return m;
}

static xle_cases *load_cases(void) {
    xle_cases *cs = NULL;
    xle_error err = {0};
    CHECK_OK(xle_cases_load(data_path, &cs, &err), &err);
    return cs;
}

static void test_context(void) {
    xle_model *m = load_stories();
    xle_cases *cs = load_cases();
    if (!m || !cs) goto done;
    const xle_tokenizer *tok = xle_model_tokenizer(m);
    xle_error err = {0};
    char *ctx = NULL, *again = NULL, *other = NULL, *cut = NULL, *none = NULL;
    int n = -1, n2 = -1;
    CHECK_OK(xle_ike_context(tok, cs, 0, "en", 3, 7, 100000, &ctx, &n, &err), &err);
    /* pinned: the demonstrations seed 7 draws for case 0 (c2, c3, c4), copy, update, retain */
    const char *want =
        "New Fact: Sue went to the shop\nPrompt: Sue went to the shop\n\n"
        "New Fact: Ben saw a big bird\nPrompt: Ben spotted a big bird\n\n"
        "New Fact: Max ate a red apple\nPrompt: Sue ate a red pear\n\n"
        "New Fact: Lily has a cat\nPrompt: ";
    CHECK(n == 3);
    CHECK_MSG(ctx && !strcmp(ctx, want), "got [%s]", ctx ? ctx : "(null)");
    /* deterministic; another seed draws another order */
    CHECK_OK(xle_ike_context(tok, cs, 0, "en", 3, 7, 100000, &again, &n2, &err), &err);
    CHECK(again && ctx && !strcmp(again, ctx) && n2 == 3);
    int differs = 0;
    for (uint64_t seed = 8; seed < 12 && !differs; seed++) {
        free(other);
        other = NULL;
        CHECK_OK(xle_ike_context(tok, cs, 0, "en", 3, seed, 100000, &other, &n2, &err), &err);
        differs = other && ctx && strcmp(other, ctx) != 0;
    }
    CHECK(differs);
    /* k above the pool: every other case with an en half, once */
    free(other);
    other = NULL;
    CHECK_OK(xle_ike_context(tok, cs, 0, "en", 32, 7, 100000, &other, &n2, &err), &err);
    CHECK(n2 == 4);
    /* the de pool has one other case */
    free(again);
    again = NULL;
    CHECK_OK(xle_ike_context(tok, cs, 0, "de", 32, 7, 100000, &again, &n2, &err), &err);
    CHECK(n2 == 1);
    CHECK(again && !strcmp(again, "New Fact: Tom enjoys the park\nPrompt: Tom enjoys the park\n\n"
                                  "New Fact: Lily owns a cat\nPrompt: "));
    /* a budget: the demonstrations that fit, the first ones kept */
    xle_tokens t;
    CHECK_OK(xle_tokenize(tok, want, strlen(want), 1, 0, &t, &err), &err);
    CHECK_OK(xle_ike_context(tok, cs, 0, "en", 3, 7, (int)t.n - 1, &cut, &n2, &err), &err);
    CHECK(n2 == 2 && cut && !strncmp(cut, want, strlen(cut) - strlen("New Fact: Lily has a cat\nPrompt: ")));
    xle_tokens_free(&t);
    CHECK_OK(xle_ike_context(tok, cs, 0, "en", 3, 7, 1, &none, &n2, &err), &err);
    CHECK(n2 == 0 && none && !strcmp(none, "New Fact: Lily has a cat\nPrompt: "));
    /* a case without a half in the edit language */
    char *bad = NULL;
    CHECK(xle_ike_context(tok, cs, 2, "de", 3, 7, 100000, &bad, &n2, &err) == XLE_ERR_ARG && !bad);
    free(ctx), free(again), free(other), free(cut), free(none);
done:
    xle_cases_free(cs);
    xle_model_free(m);
}

static uint64_t weights_hash(xle_model *m) {
    xle_weights *w = xle_model_weights(m);
    uint64_t h = 1469598103934665603ull;
    const xle_tensor *ts[] = {&w->tok_embd, &w->out_norm};
    for (int i = 0; i < 2; i++) {
        const unsigned char *p = ts[i]->data;
        for (size_t k = 0; k < xle_tensor_nbytes(ts[i]); k++) h = (h ^ p[k]) * 1099511628211ull;
    }
    for (int l = 0; l < xle_model_config(m)->n_layers; l++) {
        const xle_tensor *ls[] = {&w->layers[l].wq, &w->layers[l].wo, &w->layers[l].w_up, &w->layers[l].w_down};
        for (int i = 0; i < 4; i++) {
            const unsigned char *p = ls[i]->data;
            for (size_t k = 0; k < xle_tensor_nbytes(ls[i]); k++) h = (h ^ p[k]) * 1099511628211ull;
        }
    }
    return h;
}

static void test_run(void) {
    xle_model *m = load_stories();
    xle_cases *cs = load_cases();
    if (!m || !cs) goto done;
    const xle_tokenizer *tok = xle_model_tokenizer(m);
    xle_error err = {0};
    uint64_t before = weights_hash(m);
    char run_dir[320];
    snprintf(run_dir, sizeof run_dir, "%s/run", tmpdir);
    xle_edit_hparams hp;
    xle_edit_hparams_for_model(&hp, XLE_EDIT_IKE, xle_model_config(m));
    CHECK(hp.ike_k == 32 && hp.n_layers == 0);
    hp.ike_k = 2;
    hp.seed = 5;
    const char *edit[] = {"en", "all"}, *test[] = {"en", "de"};
    xle_eval_opts o = {0};
    o.data_path = data_path;
    o.run_dir = run_dir;
    o.hparams = &hp;
    o.n_methods = 1;
    o.edit_langs = edit;
    o.n_edit_langs = 2;
    o.test_langs = test;
    o.n_test_langs = 2;
    o.max_cases = 2;
    xle_eval_summary sum;
    CHECK_OK(xle_eval_run(m, &o, &sum, &err), &err);
    CHECK(weights_hash(m) == before);
    CHECK(sum.n_units == 4 && sum.n_skipped == 2);
    char path[400];
    snprintf(path, sizeof path, "%s/results.jsonl", run_dir);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    char line[1 << 16];
    int lines = 0;
    while (f && fgets(line, sizeof line, f)) {
        json_t *j = json_loads(line, 0, NULL);
        CHECK(j != NULL);
        const char *status = json_string_value(json_object_get(j, "status"));
        const char *el = json_string_value(json_object_get(j, "edit_lang"));
        CHECK(!strcmp(json_string_value(json_object_get(j, "method")), "ike"));
        if (el && !strcmp(el, "all")) CHECK(status && !strcmp(status, "skipped"));
        if (lines == 0 && j) {
            /* case c0 edited in en: recompute its en reliability and locality directly */
            CHECK(status && !strcmp(status, "ok"));
            const char *ctx = json_string_value(json_object_get(j, "context"));
            char *want_ctx = NULL;
            int nd = 0;
            CHECK_OK(xle_ike_context(tok, cs, 0, "en", 2, 5, xle_model_config(m)->max_seq_len, &want_ctx, &nd,
                                     &err), &err);
            CHECK(ctx && want_ctx && !strcmp(ctx, want_ctx));
            CHECK(json_integer_value(json_object_get(j, "demos")) == nd && nd == 2);
            const xle_case_lang *l = xle_case_lang_find(&cs->cases[0], "en");
            xle_case_lang with;
            xle_half_eval post, pre;
            const xle_case_lang *pw = &with, *pl = l;
            double mpost[XLE_METRIC_COUNT];
            CHECK_OK(xle_ike_half(want_ctx, l, &with, &err), &err);
            CHECK_OK(xle_halves_eval(m, tok, NULL, &pw, 1, &post, &err), &err);
            CHECK_OK(xle_halves_eval(m, tok, NULL, &pl, 1, &pre, &err), &err);
            CHECK_OK(xle_half_metrics(tok, &post, &pre, mpost, &err), &err);
            const json_t *jm = json_object_get(json_object_get(json_object_get(j, "tests"), "en"), "metrics");
            CHECK_NEAR(json_number_value(json_object_get(jm, "rel_acc")), mpost[XLE_METRIC_REL_ACC], 1e-12);
            CHECK_NEAR(json_number_value(json_object_get(jm, "loc_acc")), mpost[XLE_METRIC_LOC_ACC], 1e-12);
            CHECK_NEAR(json_number_value(json_object_get(jm, "gen_acc")), mpost[XLE_METRIC_GEN_ACC], 1e-12);
            /* the probes list the bare prompts */
            const json_t *p0 = json_array_get(json_object_get(json_object_get(json_object_get(j, "tests"), "en"),
                                                              "probes"), 0);
            CHECK(!strcmp(json_string_value(json_object_get(p0, "prompt")), "Lily has a"));
            xle_half_eval_free(&post), xle_half_eval_free(&pre);
            xle_ike_half_free(&with);
            free(want_ctx);
        }
        json_decref(j);
        lines++;
    }
    if (f) fclose(f);
    CHECK(lines == 4);
done:
    xle_cases_free(cs);
    xle_model_free(m);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/xle_ike_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    snprintf(data_path, sizeof data_path, "%s/cases.jsonl", tmpdir);
    FILE *f = fopen(data_path, "w");
    if (!f) return 1;
    fputs(cases_jsonl, f);
    fclose(f);
    RUN(test_context);
    RUN(test_run);
    int rc = check_summary();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) rc = 1;
    return rc;
}
