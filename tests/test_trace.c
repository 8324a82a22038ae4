/*
 * test_trace.c: causal tracing (src/trace/trace.c).
 *
 *  - Golden: on the tiny random Llama of tests/fixtures/edit/model, with the noise of
 *    tests/fixtures/trace/trace.json given as input, p_clean, p_corrupt, the target and every
 *    score of the three kinds (windows 10 and 2) match tests/reference/trace_reference.py
 *    (PyTorch, float64) within 1e-4; the noise level's embedding std matches too.
 *  - The model is unchanged by a trace; seeded noise gives the same scores twice, another
 *    seed others; a given target is scored instead of the top token.
 *  - The subject's token range on a real tokenizer (stories260K) covers exactly the tokens
 *    overlapping the subject; a missing subject and bad ranges are errors.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "xledit.h"

#define FIXTURES XLE_SOURCE_DIR "/tests/fixtures"
#define STORIES XLE_SHARED_DIR "/data/external/stories260k/stories260K.bin"

static xle_model *load(const char *path) {
    xle_model *m = NULL;
    xle_error err = {0};
    CHECK_OK(xle_model_load(path, &m, &err), &err);
    return m;
}

static void test_golden(void) {
    json_error_t je;
    json_t *doc = json_load_file(FIXTURES "/trace/trace.json", 0, &je);
    CHECK_MSG(doc != NULL, "%s", je.text);
    xle_model *m = load(FIXTURES "/edit/model");
    if (!doc || !m) goto done;
    const json_t *jt = json_object_get(doc, "tokens"), *jn = json_object_get(doc, "noise");
    int n = (int)json_array_size(jt);
    int32_t ids[64];
    for (int i = 0; i < n && i < 64; i++) ids[i] = (int32_t)json_integer_value(json_array_get(jt, (size_t)i));
    int sb = (int)json_integer_value(json_array_get(json_object_get(doc, "subject"), 0));
    int se = (int)json_integer_value(json_array_get(json_object_get(doc, "subject"), 1));
    float *noise = malloc(json_array_size(jn) * sizeof *noise);
    for (size_t i = 0; noise && i < json_array_size(jn); i++) noise[i] = (float)json_number_value(json_array_get(jn, i));
    xle_error err = {0};
    double std = 0;
    CHECK_OK(xle_embedding_std(m, ids + sb, se - sb, &std, &err), &err);
    CHECK_NEAR(std, json_number_value(json_object_get(doc, "embedding_std")), 1e-6);
    const json_t *runs = json_object_get(doc, "runs");
    CHECK(json_array_size(runs) == 2);
    for (size_t r = 0; r < json_array_size(runs); r++) {
        const json_t *run = json_array_get(runs, r);
        xle_trace_opts o;
        xle_trace_opts_default(&o);
        o.samples = (int)json_integer_value(json_object_get(doc, "samples"));
        o.noise_level = json_number_value(json_object_get(doc, "noise_level"));
        o.noise = noise;
        o.window = (int)json_integer_value(json_object_get(run, "window"));
        xle_trace_result res;
        CHECK_OK(xle_trace(m, ids, n, sb, se, &o, &res, &err), &err);
        CHECK(res.n_tokens == n && res.n_layers == 4);
        CHECK(res.target == json_integer_value(json_object_get(run, "target")));
        CHECK_NEAR(res.p_clean, json_number_value(json_object_get(run, "p_clean")), 1e-4);
        CHECK_NEAR(res.p_corrupt, json_number_value(json_object_get(run, "p_corrupt")), 1e-4);
        double worst = 0, spread = 0;
        for (int k = 0; k < XLE_TRACE_KINDS && res.scores[k]; k++) {
            const json_t *rows = json_object_get(run, xle_trace_kind_name((xle_trace_kind)k));
            CHECK((int)json_array_size(rows) == n);
            for (int t = 0; t < n; t++)
                for (int l = 0; l < 4; l++) {
                    double want = json_number_value(json_array_get(json_array_get(rows, (size_t)t), (size_t)l));
                    double got = res.scores[k][t * 4 + l], dd = fabs(got - want);
                    CHECK_MSG(dd <= 1e-4, "window %d %s token %d layer %d: %.8f vs %.8f", o.window,
                              xle_trace_kind_name((xle_trace_kind)k), t, l, got, want);
                    worst = dd > worst ? dd : worst;
                    double e = fabs(want - res.p_corrupt);
                    spread = e > spread ? e : spread;
                }
        }
        fprintf(stderr, "  window %d: worst |C - PyTorch| %.2e (largest effect %.3f)\n", o.window, worst, spread);
        CHECK(spread > 1e-3); /* the restorations do change the score: the test can fail */
        xle_trace_result_free(&res);
    }
    /* restoring the subject's last token's residual stream after the last layer... is not the
     * clean run (other tokens stay corrupted), but restoring the last token after the last layer
     * is: its logits are the clean ones */
    {
        xle_trace_opts o;
        xle_trace_opts_default(&o);
        o.samples = 3, o.noise = noise;
        o.noise_level = json_number_value(json_object_get(doc, "noise_level"));
        xle_trace_result res;
        CHECK_OK(xle_trace(m, ids, n, sb, se, &o, &res, &err), &err);
        if (res.scores[0]) CHECK_NEAR(res.scores[XLE_TRACE_HIDDEN][(n - 1) * 4 + 3], res.p_clean, 1e-6);
        xle_trace_result_free(&res);
    }
    free(noise);
done:
    json_decref(doc);
    xle_model_free(m);
}

static void test_seeded(void) {
    xle_model *m = load(FIXTURES "/edit/model");
    if (!m) return;
    xle_weights *w = xle_model_weights(m);
    size_t nb = xle_tensor_nbytes(&w->layers[1].w_down);
    unsigned char *copy = malloc(nb);
    if (copy) memcpy(copy, w->layers[1].w_down.data, nb);
    int32_t ids[] = {1, 7, 8, 9, 10, 11};
    xle_trace_opts o;
    xle_trace_opts_default(&o);
    o.samples = 2, o.noise_level = 0.5, o.seed = 3;
    xle_trace_result a, b, c, t;
    xle_error err = {0};
    CHECK_OK(xle_trace(m, ids, 6, 1, 3, &o, &a, &err), &err);
    CHECK_OK(xle_trace(m, ids, 6, 1, 3, &o, &b, &err), &err);
    o.seed = 4;
    CHECK_OK(xle_trace(m, ids, 6, 1, 3, &o, &c, &err), &err);
    o.seed = 3, o.target = 11;
    CHECK_OK(xle_trace(m, ids, 6, 1, 3, &o, &t, &err), &err);
    if (a.scores[0] && b.scores[0] && c.scores[0] && t.scores[0]) {
        CHECK(!memcmp(a.scores[XLE_TRACE_MLP], b.scores[XLE_TRACE_MLP], 6 * 4 * sizeof(double)));
        CHECK(a.p_corrupt == b.p_corrupt && a.p_corrupt != c.p_corrupt);
        CHECK(t.target == 11 && (a.target != 11 ? t.p_clean != a.p_clean : 1));
    }
    CHECK(copy && !memcmp(copy, w->layers[1].w_down.data, nb));
    xle_trace_result_free(&a), xle_trace_result_free(&b), xle_trace_result_free(&c), xle_trace_result_free(&t);
    /* bad input */
    CHECK(xle_trace(m, ids, 6, 3, 3, &o, &a, &err) == XLE_ERR_ARG);
    CHECK(xle_trace(m, ids, 6, 2, 7, &o, &a, &err) == XLE_ERR_ARG);
    o.target = 50;
    CHECK(xle_trace(m, ids, 6, 1, 3, &o, &a, &err) == XLE_ERR_ARG);
    free(copy);
    xle_model_free(m);
}

static void test_subject_tokens(void) {
    xle_model *m = load(STORIES);
    if (!m) return;
    const xle_tokenizer *tok = xle_model_tokenizer(m);
    xle_tokens t;
    int b = -1, e = -1;
    xle_error err = {0};
    const char *prompt = "Lily saw a big red ball in the park";
    CHECK_OK(xle_trace_tokens(tok, prompt, "big red ball", &t, &b, &e, &err), &err);
    CHECK(b > 0 && e > b && e < t.n);
    /* exactly the tokens overlapping bytes [11, 23) */
    for (int i = 0; i < t.n; i++) {
        int overlaps = t.lengths[i] > 0 && t.offsets[i] < 23 && t.offsets[i] + t.lengths[i] > 11;
        CHECK(overlaps == (i >= b && i < e));
    }
    char *text = xle_detokenize(tok, t.ids + b, e - b, 1);
    CHECK(text && strstr(text, "big red ball"));
    free(text);
    xle_tokens_free(&t);
    CHECK(xle_trace_tokens(tok, prompt, "dog", &t, &b, &e, &err) == XLE_ERR_NOT_FOUND);
    CHECK(strstr(err.msg, "dog") != NULL);
    xle_model_free(m);
}

int main(void) {
    RUN(test_golden);
    RUN(test_seeded);
    RUN(test_subject_tokens);
    return check_summary();
}
