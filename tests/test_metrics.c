/*
 * test_metrics.c: the evaluation metrics against values computed independently.
 *
 *  - Answer comparison (exact match, token F1) on hand-made cases.
 *  - Teacher-forced probes and greedy decoding on a "bigram" model built in memory: every block
 *    weight is zero, so the residual stream is the current token's embedding and the logits
 *    after token k are a table row we choose. Expected argmax, NLL and greedy answers are
 *    computed from the table here, by hand-written formulas.
 *  - Packed batches (several forward passes, many sequences) give the same answers as one
 *    sequence at a time through xle_forward and xle_generate's KV cache on a random model.
 *  - The text-level metrics of a language half on stories260K (with its tokenizer): every value
 *    recomputed here from xle_forward / xle_score / xle_generate on the joint token sequence.
 */
#include "check.h"
#include "eval/eval_internal.h"
#include "tiny_model.h"

/* ---- answer comparison ------------------------------------------------------------------- */

static void test_exact_match_and_f1(void) {
    CHECK(xle_exact_match(" Paris", "Paris"));
    CHECK(xle_exact_match("Paris \n", "\tParis"));
    CHECK(!xle_exact_match("paris", "Paris"));
    CHECK(!xle_exact_match("Paris France", "Paris"));
    CHECK(xle_exact_match("", "  "));
    CHECK(xle_exact_match("बर्लिन", "बर्लिन "));
    int32_t a[] = {1, 2, 3}, b[] = {2, 3, 4};
    CHECK_NEAR(xle_token_f1(a, 3, b, 3), 2.0 / 3.0, 1e-12); /* p = r = 2/3 */
    int32_t c[] = {5, 5, 6}, d[] = {5, 6, 6};
    CHECK_NEAR(xle_token_f1(c, 3, d, 3), 2.0 / 3.0, 1e-12); /* multiset: one 5, one 6 shared */
    int32_t e[] = {7}, f[] = {7, 8, 9, 10};
    /* p = 1, r = 1/4: F1 = 2 * 1 * 0.25 / 1.25 = 0.4 */
    CHECK_NEAR(xle_token_f1(e, 1, f, 4), 0.4, 1e-12);
    CHECK_NEAR(xle_token_f1(f, 4, e, 1), 0.4, 1e-12);
    CHECK_NEAR(xle_token_f1(a, 3, a, 3), 1.0, 1e-12);
    CHECK_NEAR(xle_token_f1(a, 0, b, 0), 1.0, 0);
    CHECK_NEAR(xle_token_f1(a, 3, b, 0), 0.0, 0);
    CHECK_NEAR(xle_token_f1(a, 0, b, 3), 0.0, 0);
    int32_t g[] = {11, 12};
    CHECK_NEAR(xle_token_f1(a, 3, g, 2), 0.0, 0);
    CHECK(xle_metric_from_name("rel_acc") == XLE_METRIC_REL_ACC);
    CHECK(xle_metric_from_name("port_f1") == XLE_METRIC_PORT_F1);
    CHECK(xle_metric_from_name("nope") == XLE_METRIC_COUNT);
    for (int m = 0; m < XLE_METRIC_COUNT; m++)
        CHECK((int)xle_metric_from_name(xle_metric_name((xle_metric)m)) == m);
}

/* ---- the bigram model -------------------------------------------------------------------- */

#define BV 12        /* vocabulary */
#define BD 16        /* width (>= BV: one-hot embeddings) */
#define EMB_SCALE 3.0

/* table[k][v]: the logit of v after token k */
static float bigram_table[BV][BV];

/* The multiplier the final RMSNorm gives a one-hot embedding of height EMB_SCALE: logits after
 * token k are lm_head[:, k] * s, with s = c / sqrt(c^2/d + eps). */
static double bigram_scale(void) {
    double c = EMB_SCALE, eps = 1e-5;
    return c / sqrt(c * c / BD + eps);
}

static void set_f32(xle_model *m, xle_tensor *t, int64_t rows, int64_t cols, const float *vals) {
    t->dtype = XLE_F32;
    t->ndim = cols ? 2 : 1;
    t->shape[0] = rows;
    t->shape[1] = cols;
    int64_t n = rows * (cols ? cols : 1);
    float *buf = calloc((size_t)n, sizeof *buf);
    if (vals) memcpy(buf, vals, (size_t)n * sizeof *buf);
    xle_model_own_buffer(m, buf, NULL);
    t->data = buf;
}

/* Next-token preferences: "chains" 3 -> 4 -> 7 -> 8 -> 2 (EOS), 5 -> 6 -> 9 -> 10, others
 * point at 11; every row has a clear winner (margin 2) and varied losers. */
static xle_model *bigram_model(void) {
    static const int next[BV] = {11, 11, 11, 4, 7, 6, 9, 8, 2, 10, 11, 3};
    for (int k = 0; k < BV; k++)
        for (int v = 0; v < BV; v++)
            bigram_table[k][v] = (v == next[k]) ? 4.0f : (float)((k * 7 + v * 5) % 9) * 0.2f;
    xle_config c = tiny_config(XLE_ARCH_LLAMA);
    c.dim = BD, c.ffn_dim = 8, c.n_layers = 1, c.n_heads = 4, c.n_kv_heads = 2, c.head_dim = 4;
    c.vocab_size = BV;
    xle_model *m = xle_model_alloc("bigram");
    m->cfg = c;
    m->weight_dtype = XLE_F32;
    xle_model_alloc_layers(m, NULL);
    float emb[BV * BD] = {0}, head[BV * BD] = {0}, ones[BD];
    double s = bigram_scale();
    for (int k = 0; k < BV; k++) emb[k * BD + k] = (float)EMB_SCALE;
    for (int v = 0; v < BV; v++)
        for (int k = 0; k < BV; k++) head[v * BD + k] = (float)(bigram_table[k][v] / s);
    for (int i = 0; i < BD; i++) ones[i] = 1.0f;
    set_f32(m, &m->w.tok_embd, BV, BD, emb);
    set_f32(m, &m->w.out_norm, BD, 0, ones);
    set_f32(m, &m->w.lm_head, BV, BD, head);
    xle_layer_weights *L = &m->w.layers[0];
    set_f32(m, &L->attn_norm, BD, 0, ones);
    set_f32(m, &L->ffn_norm, BD, 0, ones);
    set_f32(m, &L->wq, 16, BD, NULL);
    set_f32(m, &L->wk, 8, BD, NULL);
    set_f32(m, &L->wv, 8, BD, NULL);
    set_f32(m, &L->wo, BD, 16, NULL);
    set_f32(m, &L->w_gate, 8, BD, NULL);
    set_f32(m, &L->w_up, 8, BD, NULL);
    set_f32(m, &L->w_down, BD, 8, NULL);
    return m;
}

/* log softmax(table[k])[v], in double, straight from the table. */
static double table_logp(int k, int v) {
    double mx = -1e30, sum = 0;
    for (int u = 0; u < BV; u++) mx = fmax(mx, bigram_table[k][u]);
    for (int u = 0; u < BV; u++) sum += exp(bigram_table[k][u] - mx);
    return bigram_table[k][v] - mx - log(sum);
}

static int table_argmax(int k) {
    int best = 0;
    for (int v = 1; v < BV; v++)
        if (bigram_table[k][v] > bigram_table[k][best]) best = v;
    return best;
}

static void test_bigram_probes(void) {
    xle_model *m = bigram_model();
    xle_error err = {0};
    /* prompt [1, 3], answer [4, 5, 6]: after 3 -> 4 (right), after 4 -> 7 (wrong: 5), after
     * 5 -> 6 (right). Greedy from 3: 4, 7, 8 (then EOS would follow). */
    int32_t p0[] = {1, 3}, a0[] = {4, 5, 6};
    /* prompt [0, 5], answer [6, 9, 10, 11]: all right; greedy is the answer. */
    int32_t p1[] = {0, 5}, a1[] = {6, 9, 10, 11};
    /* prompt [3], answer [4, 7, 8, 1, 1]: greedy stops at EOS after 8. */
    int32_t p2[] = {3}, a2[] = {4, 7, 8, 1, 1};
    /* prompt [11], answer [0]: wrong at once; greedy [3]. */
    int32_t p3[] = {11}, a3[] = {0};
    xle_probe probes[] = {{p0, 2, a0, 3, 1}, {p1, 2, a1, 4, 1}, {p2, 1, a2, 5, 1}, {p3, 1, a3, 1, 0}};
    xle_probe_result r[4];
    CHECK_OK(xle_probes_eval(m, probes, 4, 2, r, &err), &err);
    int32_t want_am0[] = {4, 7, 6};
    CHECK(r[0].n_answer == 3 && !memcmp(r[0].argmax, want_am0, sizeof want_am0));
    CHECK(r[0].n_correct == 2);
    double nll0 = -(table_logp(3, 4) + table_logp(4, 5) + table_logp(5, 6)) / 3;
    CHECK_NEAR(r[0].mean_nll, nll0, 1e-5);
    int32_t want_g0[] = {4, 7, 8};
    CHECK(r[0].n_greedy == 3 && !memcmp(r[0].greedy, want_g0, sizeof want_g0));

    CHECK(r[1].n_correct == 4 && r[1].n_greedy == 4 && !memcmp(r[1].greedy, a1, sizeof a1));
    double nll1 = -(table_logp(5, 6) + table_logp(6, 9) + table_logp(9, 10) + table_logp(10, 11)) / 4;
    CHECK_NEAR(r[1].mean_nll, nll1, 1e-5);

    /* answer [4,7,8,1,1] after 3: argmax 4,7,8,2(EOS),11 -> 3 right; greedy cut at EOS */
    int32_t want_am2[] = {4, 7, 8, 2, 11};
    CHECK(!memcmp(r[2].argmax, want_am2, sizeof want_am2) && r[2].n_correct == 3);
    CHECK(r[2].n_greedy == 3 && !memcmp(r[2].greedy, want_g0, sizeof want_g0));

    CHECK(r[3].n_correct == 0 && r[3].argmax[0] == 3 && r[3].greedy == NULL && r[3].n_greedy == 0);
    CHECK_NEAR(r[3].mean_nll, -table_logp(11, 0), 1e-5);
    xle_probe_results_free(r, 4);

    /* Without EOS the greedy run continues through 2 (2 -> 11). */
    xle_probe one = {p2, 1, a2, 5, 1};
    CHECK_OK(xle_probes_eval(m, &one, 1, -1, r, &err), &err);
    int32_t want_noeos[] = {4, 7, 8, 2, 11};
    CHECK(r[0].n_greedy == 5 && !memcmp(r[0].greedy, want_noeos, sizeof want_noeos));
    xle_probe_results_free(r, 1);

    /* Bad probes are refused with a message, nothing allocated. */
    int32_t bad[] = {1, 99};
    xle_probe pb = {bad, 2, a0, 3, 0};
    CHECK(xle_probes_eval(m, &pb, 1, -1, r, &err) == XLE_ERR_ARG && strstr(err.msg, "probe 0"));
    xle_probe pe = {p0, 2, a0, 0, 0};
    CHECK(xle_probes_eval(m, &pe, 1, -1, r, &err) == XLE_ERR_ARG);
    xle_model_free(m);
}

/* Many random probes on the bigram model: more tokens than one pass holds, so several packed
 * passes; every value predicted from the table. */
static void test_bigram_many(void) {
    xle_model *m = bigram_model();
    xle_error err = {0};
    enum { N = 400 };
    static int32_t ids[N][24];
    xle_probe probes[N];
    xle_rng rng;
    xle_rng_seed(&rng, 7);
    for (int i = 0; i < N; i++) {
        int np = 1 + (int)(xle_rng_next(&rng) % 12), na = 1 + (int)(xle_rng_next(&rng) % 8);
        for (int k = 0; k < np + na; k++) ids[i][k] = (int32_t)(xle_rng_next(&rng) % BV);
        /* half the answers follow the table for a while, so greedy passes are exercised */
        if (i % 2)
            for (int k = np; k < np + na; k++)
                ids[i][k] = (k - np < na / 2) ? table_argmax(ids[i][k - 1]) : ids[i][k];
        probes[i] = (xle_probe){ids[i], np, ids[i] + np, na, 1};
    }
    static xle_probe_result r[N];
    CHECK_OK(xle_probes_eval(m, probes, N, -1, r, &err), &err);
    int bad_am = 0, bad_nll = 0, bad_greedy = 0;
    for (int i = 0; i < N; i++) {
        const xle_probe *p = &probes[i];
        double nll = 0;
        int correct = 0;
        for (int j = 0; j < p->n_answer; j++) {
            int prev = j ? p->answer[j - 1] : p->prompt[p->n_prompt - 1];
            bad_am += r[i].argmax[j] != table_argmax(prev);
            correct += table_argmax(prev) == p->answer[j];
            nll -= table_logp(prev, p->answer[j]);
        }
        bad_nll += fabs(r[i].mean_nll - nll / p->n_answer) > 1e-5 || r[i].n_correct != correct;
        int prev = p->prompt[p->n_prompt - 1];
        bad_greedy += r[i].n_greedy != p->n_answer;
        for (int j = 0; j < p->n_answer && j < r[i].n_greedy; j++) {
            int g = table_argmax(prev);
            bad_greedy += r[i].greedy[j] != g;
            prev = g;
        }
    }
    CHECK_MSG(!bad_am && !bad_nll && !bad_greedy, "argmax %d, nll %d, greedy %d wrong", bad_am,
              bad_nll, bad_greedy);
    xle_probe_results_free(r, N);
    xle_model_free(m);
}

/* ---- packed batches vs one sequence at a time (random model) ------------------------------ */

static void test_packed_matches_single(void) {
    xle_config c = tiny_config(XLE_ARCH_LLAMA);
    c.vocab_size = 50;
    xle_model *m = tiny_model_new(&c, 0, XLE_F32, 11);
    xle_error err = {0};
    enum { N = 40 };
    int32_t ids[N][20];
    xle_probe probes[N];
    xle_rng rng;
    xle_rng_seed(&rng, 3);
    for (int i = 0; i < N; i++) {
        int np = 1 + (int)(xle_rng_next(&rng) % 10), na = 1 + (int)(xle_rng_next(&rng) % 6);
        for (int k = 0; k < np + na; k++) ids[i][k] = (int32_t)(xle_rng_next(&rng) % c.vocab_size);
        probes[i] = (xle_probe){ids[i], np, ids[i] + np, na, 1};
    }
    xle_probe_result r[N];
    CHECK_OK(xle_probes_eval(m, probes, N, c.eos_id, r, &err), &err);
    int mismatches = 0;
    float logits[20 * 50];
    for (int i = 0; i < N; i++) {
        const xle_probe *p = &probes[i];
        int T = p->n_prompt + p->n_answer - 1, start[2] = {0, T};
        xle_batch b = {1, ids[i], start};
        CHECK_OK(xle_forward(m, &b, NULL, logits, &err), &err);
        double nll = 0;
        for (int j = 0; j < p->n_answer; j++) {
            const float *row = logits + (size_t)(p->n_prompt - 1 + j) * c.vocab_size;
            int best = 0;
            double mx = row[0], sum = 0;
            for (int v = 1; v < c.vocab_size; v++)
                if (row[v] > row[best]) best = v;
            for (int v = 1; v < c.vocab_size; v++) mx = fmax(mx, row[v]);
            for (int v = 0; v < c.vocab_size; v++) sum += exp(row[v] - mx);
            nll -= row[p->answer[j]] - mx - log(sum);
            mismatches += r[i].argmax[j] != best;
        }
        CHECK_NEAR(r[i].mean_nll, nll / p->n_answer, 1e-4);
        /* greedy via the KV-cache generator, stopping at EOS */
        int32_t gen[8];
        int n_gen = 0;
        xle_sampler greedy = {.stop_at_eos = 1};
        CHECK_OK(xle_generate(m, p->prompt, p->n_prompt, p->n_answer, &greedy, gen, &n_gen, &err), &err);
        if (n_gen && gen[n_gen - 1] == c.eos_id) n_gen--;
        mismatches += r[i].n_greedy != n_gen || memcmp(r[i].greedy, gen, (size_t)n_gen * sizeof *gen);
    }
    CHECK_MSG(mismatches == 0, "%d mismatches", mismatches);
    xle_probe_results_free(r, N);
    xle_model_free(m);
}

int main(void) {
    RUN(test_exact_match_and_f1);
    RUN(test_bigram_probes);
    RUN(test_bigram_many);
    RUN(test_packed_matches_single);
    return check_summary();
}
