/*
 * test_eval_run.c: evaluation on a real trained model (Karpathy's stories260K with its
 * SentencePiece tokenizer, ../shared/data/external/stories260k).
 *
 *  - The text-level metrics of a language half, before and after a change of the weights:
 *    every value recomputed here from the joint token sequence with xle_forward (argmax),
 *    xle_score (log-probabilities), xle_generate (greedy answers, KV cache) and a separate F1.
 *  - Whole answers (decoded on to the end of the word): the metrics and every value they use are
 *    bitwise those of the evaluation without them; each is the demo's xle_answer_whole text.
 *  - A run in process: the weights are bitwise the original afterwards; results.jsonl has one
 *    line per unit in unit order, skipped units name their reason; one unit's reliability is
 *    recomputed by editing a fresh copy of the model directly.
 *  - Resume: finished units are not redone, a torn last line is cut and redone and the file
 *    comes out byte-identical, other arguments are refused, an existing run is not overwritten.
 *  - Sharing: what a case's units share (ROME's first request, with the "all" unit)
 *    leaves results.jsonl and pre.jsonl byte-identical to a run that shares nothing.
 *  - Reports: the JSON matrices have the run's shape and every cell is the mean of the
 *    results.jsonl values (aggregated again here); CSV rows; the HTML is well-formed XML (a
 *    small checker here, itself tested on broken input) and holds UTF-8 text escaped.
 * (Killing a run with SIGKILL and resuming it is tested through the CLI: tests/cli_eval.sh.)
 */
#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "edit/edit_internal.h"
#include "eval/eval_internal.h"
#include "model/model_internal.h"

#define STORIES XLE_SHARED_DIR "/data/external/stories260k/stories260K.bin"

static char tmpdir[256];

static xle_model *load_stories(void) {
    xle_model *m = NULL;
    xle_error err = {0};
    CHECK_OK(xle_model_load(STORIES, &m, &err), &err);
    if (m) CHECK(xle_model_tokenizer(m) != NULL);
    return m;
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

static char *read_text(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) n = 0;
    if (p) p[n] = 0;
    fclose(f);
    if (len) *len = (size_t)n;
    return p;
}

/* ---- independent reference for one (prompt, answer) pair ---------------------------------- */

typedef struct ref_pair {
    int32_t ids[128];
    int n_prompt, n_answer;
    int32_t argmax[64];
    double acc, nll;
    char *greedy, *gold;
} ref_pair;

static int trim_eq(const char *a, const char *b) {
    while (*a == ' ') a++;
    while (*b == ' ') b++;
    size_t na = strlen(a), nb = strlen(b);
    while (na && a[na - 1] == ' ') na--;
    while (nb && b[nb - 1] == ' ') nb--;
    return na == nb && !strncmp(a, b, na);
}

/* joint = encode(prompt + " " + answer) with BOS; the answer is what follows encode(prompt). */
static void reference(xle_model *m, const char *prompt, const char *answer, ref_pair *r) {
    xle_tokenizer *tok = xle_model_tokenizer(m);
    xle_error err = {0};
    char joint[512];
    snprintf(joint, sizeof joint, "%s %s", prompt, answer);
    xle_tokens p, j;
    CHECK_OK(xle_tokenize(tok, prompt, strlen(prompt), -1, 0, &p, &err), &err);
    CHECK_OK(xle_tokenize(tok, joint, strlen(joint), -1, 0, &j, &err), &err);
    CHECK_MSG(j.n > p.n && !memcmp(j.ids, p.ids, (size_t)p.n * sizeof *p.ids),
              "fixture: '%s' does not tokenize as a continuation", joint);
    r->n_prompt = p.n;
    r->n_answer = j.n - p.n;
    memcpy(r->ids, j.ids, (size_t)j.n * sizeof *j.ids);
    xle_tokens_free(&p), xle_tokens_free(&j);
    /* teacher-forced argmax, one sequence, every row */
    int T = r->n_prompt + r->n_answer - 1, start[2] = {0, T}, V = m->cfg.vocab_size;
    float *logits = malloc((size_t)T * V * sizeof *logits);
    xle_batch b = {1, r->ids, start};
    CHECK_OK(xle_forward(m, &b, NULL, logits, &err), &err);
    int correct = 0;
    for (int a = 0; a < r->n_answer; a++) {
        const float *row = logits + (size_t)(r->n_prompt - 1 + a) * V;
        int best = 0;
        for (int v = 1; v < V; v++)
            if (row[v] > row[best]) best = v;
        r->argmax[a] = best;
        correct += best == r->ids[r->n_prompt + a];
    }
    free(logits);
    r->acc = (double)correct / r->n_answer;
    double lp;
    CHECK_OK(xle_score(m, r->ids, r->n_prompt, r->ids + r->n_prompt, r->n_answer, &lp, NULL, &err), &err);
    r->nll = -lp / r->n_answer;
    int32_t gen[64];
    int n_gen = 0;
    xle_sampler greedy = {.stop_at_eos = 1};
    CHECK_OK(xle_generate(m, r->ids, r->n_prompt, r->n_answer, &greedy, gen, &n_gen, &err), &err);
    if (n_gen && gen[n_gen - 1] == xle_tokenizer_eos_id(tok)) n_gen--;
    r->greedy = n_gen ? xle_detokenize(tok, gen, n_gen, 1) : strdup("");
    r->gold = xle_detokenize(tok, r->ids + r->n_prompt, r->n_answer, 1);
}

static void ref_free(ref_pair *r) {
    free(r->greedy);
    free(r->gold);
}

/* F1 of the multisets of token ids of two trimmed strings, by marking matches (O(n^2)). */
static double ref_f1(xle_model *m, const char *a, const char *b) {
    xle_tokenizer *tok = xle_model_tokenizer(m);
    while (*a == ' ') a++;
    while (*b == ' ') b++;
    xle_tokens x = {0}, y = {0};
    xle_error err;
    size_t na = strlen(a), nb = strlen(b);
    while (na && a[na - 1] == ' ') na--;
    while (nb && b[nb - 1] == ' ') nb--;
    if (na) xle_tokenize(tok, a, na, 0, 0, &x, &err);
    if (nb) xle_tokenize(tok, b, nb, 0, 0, &y, &err);
    double f1;
    if (!x.n && !y.n) f1 = 1;
    else if (!x.n || !y.n) f1 = 0;
    else {
        int used[256] = {0}, common = 0;
        for (int i = 0; i < x.n; i++)
            for (int k = 0; k < y.n && k < 256; k++)
                if (!used[k] && y.ids[k] == x.ids[i]) {
                    used[k] = 1, common++;
                    break;
                }
        double p = (double)common / x.n, r = (double)common / y.n;
        f1 = common ? 2 * p * r / (p + r) : 0;
    }
    xle_tokens_free(&x), xle_tokens_free(&y);
    return f1;
}

static const xle_case_lang *make_half(xle_cases **cs) {
    xle_error err = {0};
    xle_case *c;
    xle_case_lang *l;
    CHECK_OK(xle_cases_new(cs, &err), &err);
    CHECK_OK(xle_cases_add(*cs, "c", "test", NULL, &c, &err), &err);
    CHECK_OK(xle_case_add_lang(c, "en", "Lily went to the park with her", "Lily", "dog", "mom", &l, &err), &err);
    CHECK_OK(xle_case_lang_add_rephrase(l, "Lily and her", &err), &err);
    CHECK_OK(xle_case_lang_add_locality(l, "Tom liked to play with his", "toys", &err), &err);
    CHECK_OK(xle_case_lang_add_locality(l, "Once upon a time, there was a little girl named", "Lily", &err), &err);
    CHECK_OK(xle_case_lang_add_portability(l, "The dog of Lily was", "very happy", &err), &err);
    CHECK_OK(xle_case_lang_add_locality(l, "An empty answer is skipped", "", &err), &err);
    return xle_case_lang_find(&(*cs)->cases[0], "en");
}

static void check_half(xle_model *m, const xle_half_eval *h, const xle_case_lang *l, ref_pair refs[6]) {
    /* questions: rel, gen, loc x3 (the last with an empty answer), port */
    CHECK(h->n_qa == 6);
    if (h->n_qa != 6) return;
    const char *answers[6] = {"dog", "dog", "toys", "Lily", "", "very happy"};
    const char *prompts[6] = {l->prompt, l->rephrases[0], l->locality[0].prompt, l->locality[1].prompt,
                              l->locality[2].prompt, l->portability[0].prompt};
    static const xle_qa_kind kinds[6] = {XLE_QA_REL, XLE_QA_GEN, XLE_QA_LOC, XLE_QA_LOC, XLE_QA_LOC, XLE_QA_PORT};
    for (int i = 0; i < 6; i++) {
        const xle_qa_eval *q = &h->qa[i];
        CHECK(q->kind == kinds[i] && !strcmp(q->prompt, prompts[i]) && !strcmp(q->answer, answers[i]));
        if (i == 4) {
            CHECK(!q->ok && isnan(q->acc));
            continue;
        }
        ref_pair *r = &refs[i];
        reference(m, prompts[i], answers[i], r);
        CHECK(q->ok && q->n_answer == r->n_answer);
        CHECK_NEAR(q->acc, r->acc, 0);
        CHECK(q->n_answer == r->n_answer && !memcmp(q->argmax, r->argmax, (size_t)r->n_answer * sizeof(int32_t)));
        CHECK_MSG(!strcmp(q->greedy, r->greedy), "greedy '%s' vs '%s'", q->greedy, r->greedy);
        CHECK(!strcmp(q->gold, r->gold));
        if (kinds[i] != XLE_QA_LOC && kinds[i] != XLE_QA_PORT) CHECK_NEAR(q->nll_new, r->nll, 1e-4);
        if (kinds[i] == XLE_QA_PORT) CHECK(isnan(q->nll_new) && isnan(q->nll_true));
    }
    /* CounterFact pairs: target_new / target_true after rel, gen and locality prompts */
    const int with_pairs[4] = {0, 1, 2, 3};
    for (int k = 0; k < 4; k++) {
        int i = with_pairs[k];
        ref_pair rn = {0}, rt = {0};
        reference(m, prompts[i], "dog", &rn);
        reference(m, prompts[i], "mom", &rt);
        CHECK_NEAR(h->qa[i].nll_new, rn.nll, 1e-4);
        CHECK_NEAR(h->qa[i].nll_true, rt.nll, 1e-4);
        ref_free(&rn), ref_free(&rt);
    }
}

/* The same half evaluated with whole answers (xle_halves_eval_whole): every value the metrics
 * use is bitwise what xle_halves_eval gave (plain), and the metrics too; each whole answer
 * starts with the greedy one and is what xle_answer_whole (KV-cache generation, the demo's
 * path) shows for the prompt. *n_longer counts answers that grew. */
static void check_whole_answers(xle_model *m, const xle_case_lang *l, const xle_half_eval *plain,
                                const xle_half_eval *pre_plain, int *n_longer) {
    xle_tokenizer *tok = xle_model_tokenizer(m);
    xle_error err = {0};
    xle_half_eval whole;
    CHECK_OK(xle_halves_eval_whole(m, tok, NULL, &l, 1, XLE_ANSWER_EXTRA_TOKENS, &whole, &err), &err);
    CHECK(whole.n_qa == plain->n_qa);
    for (int i = 0; i < whole.n_qa && i < plain->n_qa; i++) {
        const xle_qa_eval *a = &whole.qa[i], *b = &plain->qa[i];
        CHECK(a->ok == b->ok && a->n_answer == b->n_answer && !b->greedy_whole);
        CHECK(!memcmp(&a->acc, &b->acc, sizeof a->acc) && !memcmp(&a->nll_new, &b->nll_new, sizeof a->nll_new) &&
              !memcmp(&a->nll_true, &b->nll_true, sizeof a->nll_true));
        if (!a->ok) continue;
        CHECK(!memcmp(a->argmax, b->argmax, (size_t)a->n_answer * sizeof *a->argmax));
        CHECK(!strcmp(a->gold, b->gold) && !strcmp(a->greedy, b->greedy));
        CHECK_MSG(a->greedy_whole && !strncmp(a->greedy_whole, a->greedy, strlen(a->greedy)),
                  "whole answer '%s' does not start with '%s'", a->greedy_whole ? a->greedy_whole : "(null)", a->greedy);
        int32_t *p = NULL, *ans = NULL, ids[64];
        int np = 0, na = 0, kept = 0;
        char *text = NULL;
        CHECK_OK(xle_tokenize_continuation(tok, a->prompt, a->answer, &p, &np, &ans, &na, &err), &err);
        CHECK_OK(xle_answer_whole(m, tok, p, np, na, na + XLE_ANSWER_EXTRA_TOKENS, ids, &kept, &text, &err), &err);
        CHECK_MSG(text && a->greedy_whole && !strcmp(text, a->greedy_whole), "question %d: generation shows '%s', "
                  "the evaluation '%s'", i, text ? text : "", a->greedy_whole ? a->greedy_whole : "");
        *n_longer += a->greedy_whole && strlen(a->greedy_whole) > strlen(a->greedy);
        free(p), free(ans), free(text);
    }
    double mp[XLE_METRIC_COUNT], mw[XLE_METRIC_COUNT];
    CHECK_OK(xle_half_metrics(tok, plain, pre_plain, mp, &err), &err);
    CHECK_OK(xle_half_metrics(tok, &whole, pre_plain, mw, &err), &err);
    CHECK_MSG(!memcmp(mp, mw, sizeof mp), "metrics with whole answers differ from the metrics without");
    xle_half_eval_free(&whole);
}

static void test_half_metrics(void) {
    xle_model *m = load_stories();
    if (!m) return;
    xle_tokenizer *tok = xle_model_tokenizer(m);
    xle_error err = {0};
    xle_cases *cs = NULL;
    const xle_case_lang *l = make_half(&cs);
    xle_half_eval pre;
    CHECK_OK(xle_halves_eval(m, tok, NULL, &l, 1, &pre, &err), &err);
    ref_pair refs[6];
    memset(refs, 0, sizeof refs);
    check_half(m, &pre, l, refs);
    int n_longer = 0;
    check_whole_answers(m, l, &pre, NULL, &n_longer);

    double mt[XLE_METRIC_COUNT];
    CHECK_OK(xle_half_metrics(tok, &pre, NULL, mt, &err), &err);
    CHECK_NEAR(mt[XLE_METRIC_REL_ACC], refs[0].acc, 0);
    CHECK_NEAR(mt[XLE_METRIC_GEN_ACC], refs[1].acc, 0);
    CHECK_NEAR(mt[XLE_METRIC_PORT_ACC], refs[5].acc, 0);
    CHECK(isnan(mt[XLE_METRIC_LOC_ACC]) && isnan(mt[XLE_METRIC_LOC_EM]) && isnan(mt[XLE_METRIC_LOC_F1]));
    /* efficacy / paraphrase on the rel and gen prompts; neighbourhood: mean over 2 locality prompts */
    double nn[4], nt[4];
    const char *prompts[4] = {l->prompt, l->rephrases[0], l->locality[0].prompt, l->locality[1].prompt};
    for (int k = 0; k < 4; k++) {
        ref_pair a = {0}, b = {0};
        reference(m, prompts[k], "dog", &a);
        reference(m, prompts[k], "mom", &b);
        nn[k] = a.nll, nt[k] = b.nll;
        ref_free(&a), ref_free(&b);
    }
    CHECK_NEAR(mt[XLE_METRIC_EFF_SUCC], nt[0] > nn[0], 0);
    CHECK_NEAR(mt[XLE_METRIC_EFF_MAG], exp(-nn[0]) - exp(-nt[0]), 1e-5);
    CHECK_NEAR(mt[XLE_METRIC_PARA_SUCC], nt[1] > nn[1], 0);
    CHECK_NEAR(mt[XLE_METRIC_PARA_MAG], exp(-nn[1]) - exp(-nt[1]), 1e-5);
    CHECK_NEAR(mt[XLE_METRIC_NBHD_SUCC], ((nt[2] < nn[2]) + (nt[3] < nn[3])) / 2.0, 0);
    CHECK_NEAR(mt[XLE_METRIC_NBHD_MAG], ((exp(-nt[2]) - exp(-nn[2])) + (exp(-nt[3]) - exp(-nn[3]))) / 2, 1e-5);
    CHECK_NEAR(mt[XLE_METRIC_REL_EM], trim_eq(refs[0].greedy, refs[0].gold), 0);
    CHECK_NEAR(mt[XLE_METRIC_REL_F1], ref_f1(m, refs[0].greedy, refs[0].gold), 1e-12);
    CHECK_NEAR(mt[XLE_METRIC_GEN_EM], trim_eq(refs[1].greedy, refs[1].gold), 0);
    CHECK_NEAR(mt[XLE_METRIC_PORT_F1], ref_f1(m, refs[5].greedy, refs[5].gold), 1e-12);
    /* the fixture exercises both outcomes of exact match somewhere */
    int em_sum = 0;
    for (int i = 0; i < 6; i++)
        if (i != 4) em_sum += trim_eq(refs[i].greedy, refs[i].gold);
    CHECK(em_sum > 0 && em_sum < 5);

    /* a change of the weights: a random dense delta on layer 2's down projection */
    const int d = m->cfg.dim, f = m->cfg.ffn_dim;
    float *dense = malloc((size_t)d * f * sizeof *dense);
    xle_rng rng;
    xle_rng_seed(&rng, 5);
    for (int i = 0; i < d * f; i++) dense[i] = 0.4f * xle_rng_normal(&rng);
    xle_layer_delta delta = {2, 0, d, f, NULL, NULL, dense};
    xle_weight_swap swap = {0};
    CHECK_OK(xle_weight_swap_apply(m, &delta, &swap, &err), &err);
    xle_half_eval post;
    CHECK_OK(xle_halves_eval(m, tok, NULL, &l, 1, &post, &err), &err);
    ref_pair prefs[6];
    memset(prefs, 0, sizeof prefs);
    check_half(m, &post, l, prefs);
    check_whole_answers(m, l, &post, &pre, &n_longer);
    CHECK_MSG(n_longer > 0, "no greedy answer was cut inside a word (fixture)");
    CHECK_OK(xle_half_metrics(tok, &post, &pre, mt, &err), &err);
    double agree = 0, em = 0, f1 = 0;
    int changed = 0;
    for (int i = 2; i <= 3; i++) {
        int same = 0;
        for (int j = 0; j < refs[i].n_answer; j++) same += refs[i].argmax[j] == prefs[i].argmax[j];
        changed += same < refs[i].n_answer;
        agree += (double)same / refs[i].n_answer / 2;
        em += trim_eq(prefs[i].greedy, refs[i].greedy) / 2.0;
        f1 += ref_f1(m, prefs[i].greedy, refs[i].greedy) / 2;
    }
    CHECK_NEAR(mt[XLE_METRIC_LOC_ACC], agree, 1e-12);
    CHECK_NEAR(mt[XLE_METRIC_LOC_EM], em, 1e-12);
    CHECK_NEAR(mt[XLE_METRIC_LOC_F1], f1, 1e-12);
    CHECK_MSG(changed > 0, "the perturbation should change a locality prediction (fixture)");
    CHECK_NEAR(mt[XLE_METRIC_REL_ACC], prefs[0].acc, 0);
    /* a pre-edit evaluation of another half is refused */
    pre.n_qa--;
    CHECK(xle_half_metrics(tok, &post, &pre, mt, &err) == XLE_ERR_ARG);
    pre.n_qa++;
    xle_weight_swap_restore(&swap);
    free(dense);
    for (int i = 0; i < 6; i++) ref_free(&refs[i]), ref_free(&prefs[i]);
    xle_half_eval_free(&pre);
    xle_half_eval_free(&post);
    xle_cases_free(cs);
    xle_model_free(m);
}

/* ---- runs ------------------------------------------------------------------------------------ */

/* Two cases in en/de/hi; c2's de half does not contain its subject (not edited). */
static const char cases_jsonl[] =
    "{\"id\":\"c1\",\"source\":\"test\",\"langs\":{"
    "\"en\":{\"prompt\":\"Lily went to the park with her\",\"subject\":\"Lily\",\"target_new\":\"dog\",\"target_true\":\"mom\","
    "\"rephrases\":[\"Lily and her\"],\"locality\":[{\"prompt\":\"Tom liked to play with his\",\"answer\":\"toys\"}],"
    "\"portability\":[{\"prompt\":\"The dog of Lily was\",\"answer\":\"happy\"}]},"
    "\"de\":{\"prompt\":\"Lily ging mit ihrer\",\"subject\":\"Lily\",\"target_new\":\"Hund\",\"target_true\":\"Mama\","
    "\"rephrases\":[],\"locality\":[{\"prompt\":\"Tom spielte mit seinen\",\"answer\":\"Sachen\"}],\"portability\":[]},"
    "\"hi\":{\"prompt\":\"\\u0932\\u093f\\u0932\\u0940 <b>&amp; \\u092e\\u093e\\u0901\",\"subject\":\"\\u0932\\u093f\\u0932\\u0940\","
    "\"target_new\":\"\\u0915\\u0941\\u0924\\u094d\\u0924\\u093e\",\"target_true\":null,\"rephrases\":[],\"locality\":[],\"portability\":[]}}}\n"
    "{\"id\":\"c2\",\"source\":\"test\",\"langs\":{"
    "\"en\":{\"prompt\":\"Tom liked to play with his\",\"subject\":\"Tom\",\"target_new\":\"cat\",\"target_true\":\"toys\","
    "\"rephrases\":[\"Tom played with his\"],\"locality\":[{\"prompt\":\"Lily went to the park with her\",\"answer\":\"mom\"}],\"portability\":[]},"
    "\"de\":{\"prompt\":\"Er spielte gern mit seinen\",\"subject\":\"Tom\",\"target_new\":\"Katze\",\"target_true\":\"Sachen\","
    "\"rephrases\":[],\"locality\":[],\"portability\":[]}}}\n";

typedef struct weight_copy {
    void *bytes[64];
    const void *ptr[64];
    size_t n[64];
    int count;
} weight_copy;

static void copy_tensor(weight_copy *w, const xle_tensor *t) {
    if (!t->data || w->count == 64) return;
    size_t n = xle_tensor_nbytes(t);
    w->bytes[w->count] = malloc(n);
    memcpy(w->bytes[w->count], t->data, n);
    w->ptr[w->count] = t->data;
    w->n[w->count++] = n;
}

static void copy_weights(xle_model *m, weight_copy *w) {
    memset(w, 0, sizeof *w);
    copy_tensor(w, &m->w.tok_embd);
    copy_tensor(w, &m->w.lm_head);
    for (int l = 0; l < m->cfg.n_layers; l++) {
        copy_tensor(w, &m->w.layers[l].w_down);
        copy_tensor(w, &m->w.layers[l].w_up);
        copy_tensor(w, &m->w.layers[l].wo);
    }
}

/* 1 when every copied tensor is at the same address with the same bytes. */
static int weights_equal(xle_model *m, weight_copy *w) {
    weight_copy now;
    copy_weights(m, &now);
    int same = now.count == w->count;
    for (int i = 0; same && i < w->count; i++)
        same = now.ptr[i] == w->ptr[i] && now.n[i] == w->n[i] && !memcmp(now.bytes[i], w->bytes[i], w->n[i]);
    for (int i = 0; i < now.count; i++) free(now.bytes[i]);
    return same;
}

static void fast_hparams(xle_edit_hparams *hp, xle_edit_method method) {
    xle_edit_hparams_default(hp, method, 5);
    hp->v_num_grad_steps = 8;
    hp->ft_steps = 8;
}

static json_t *read_lines(const char *path) {
    json_t *a = json_array();
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    while (f && getline(&line, &cap, f) > 0) json_array_append_new(a, json_loads(line, 0, NULL));
    free(line);
    if (f) fclose(f);
    return a;
}

static char data_path[400], run_dir[400];
static xle_edit_hparams run_hp[2];
static const char *edit_langs[] = {"en", "de", "all"};
static const char *test_langs[] = {"en", "de", "hi"};

static xle_eval_opts run_opts(void) {
    xle_eval_opts o = {0};
    o.data_path = data_path;
    o.run_dir = run_dir;
    o.hparams = run_hp;
    o.n_methods = 2;
    o.edit_langs = edit_langs;
    o.n_edit_langs = 3;
    o.test_langs = test_langs;
    o.n_test_langs = 3;
    o.context_templates = "none";
    return o;
}

static void test_run(void) {
    xle_model *m = load_stories();
    if (!m) return;
    xle_error err = {0};
    snprintf(data_path, sizeof data_path, "%s/cases.jsonl", tmpdir);
    snprintf(run_dir, sizeof run_dir, "%s/run", tmpdir);
    write_text(data_path, cases_jsonl);
    fast_hparams(&run_hp[0], XLE_EDIT_ROME);
    fast_hparams(&run_hp[1], XLE_EDIT_FT_M);
    weight_copy before;
    copy_weights(m, &before);
    xle_eval_opts o = run_opts();
    xle_eval_summary sum;
    CHECK_OK(xle_eval_run(m, &o, &sum, &err), &err);
    CHECK(weights_equal(m, &before));
    CHECK(sum.n_cases == 2 && sum.n_units == 12 && sum.n_done == 12 && sum.n_resumed == 0);
    CHECK(sum.n_skipped == 2 && sum.n_failed == 0); /* c2/de for both methods */

    char path[500];
    snprintf(path, sizeof path, "%s/results.jsonl", run_dir);
    json_t *lines = read_lines(path);
    CHECK(json_array_size(lines) == 12);
    const char *methods[2] = {"rome", "ft-m"};
    for (size_t i = 0; i < json_array_size(lines); i++) {
        json_t *l = json_array_get(lines, i);
        int ci = (int)i / 6, mi = (int)(i / 3) % 2, ei = (int)i % 3;
        CHECK(json_integer_value(json_object_get(l, "case_index")) == ci);
        CHECK(!strcmp(json_string_value(json_object_get(l, "case")), ci ? "c2" : "c1"));
        CHECK(!strcmp(json_string_value(json_object_get(l, "method")), methods[mi]));
        CHECK(!strcmp(json_string_value(json_object_get(l, "edit_lang")), edit_langs[ei]));
        const char *status = json_string_value(json_object_get(l, "status"));
        if (ci == 1 && ei == 1) {
            CHECK(!strcmp(status, "skipped"));
            CHECK(!strcmp(json_string_value(json_object_get(l, "reason")), "subject not in prompt"));
            continue;
        }
        CHECK(!strcmp(status, "ok"));
        const json_t *tests = json_object_get(l, "tests");
        CHECK(json_object_size(tests) == (size_t)(ci ? 2 : 3)); /* c2 has no hi half */
        json_t *edited = json_object_get(l, "edited");
        CHECK(json_array_size(edited) == (size_t)(ei == 2 ? (ci ? 1 : 2) : 1));
        const json_t *metrics = json_object_get(json_object_get(tests, "en"), "metrics");
        CHECK(json_object_size(metrics) == XLE_METRIC_COUNT);
        CHECK(json_is_number(json_object_get(metrics, "rel_acc")) && json_is_number(json_object_get(metrics, "loc_acc")));
        const json_t *hi = json_object_get(tests, "hi");
        if (hi) CHECK(json_is_null(json_object_get(json_object_get(hi, "metrics"), "eff_succ"))); /* no target_true */
    }

    /* One unit recomputed by editing a fresh copy directly: c1, rome, en; tested in en. */
    xle_model *m2 = load_stories();
    xle_context_templates *ct = NULL;
    CHECK_OK(xle_context_templates_none(&ct, &err), &err);
    xle_edit_request req = {"Lily went to the park with her", "Lily", "dog"};
    xle_edit_request_tok rt;
    CHECK_OK(xle_edit_request_tokenize(xle_model_tokenizer(m2), &req, ct, &rt, &err), &err);
    xle_edit_result res;
    CHECK_OK(xle_edit_run(m2, &run_hp[0], &rt, 1, NULL, &res, &err), &err);
    CHECK_OK(xle_edit_apply(m2, &res, +1, &err), &err);
    ref_pair r = {0};
    reference(m2, "Lily went to the park with her", "dog", &r);
    const json_t *unit = json_array_get(lines, 0);
    const json_t *em = json_object_get(json_object_get(json_object_get(unit, "tests"), "en"), "metrics");
    CHECK_NEAR(json_number_value(json_object_get(em, "rel_acc")), r.acc, 0);
    CHECK_NEAR(json_number_value(json_object_get(unit, "loss")), res.final_loss, 1e-9);
    ref_free(&r);
    xle_edit_result_free(&res);
    xle_edit_request_tok_free(&rt);
    xle_context_templates_free(ct);
    xle_model_free(m2);
    json_decref(lines);

    /* Resume: nothing to do; a torn last line is cut and that unit redone, identically. */
    size_t len_full;
    char *full = read_text(path, &len_full);
    o.resume = 1;
    CHECK_OK(xle_eval_run(m, &o, &sum, &err), &err);
    CHECK(sum.n_done == 0 && sum.n_resumed == 12 && sum.n_skipped == 2);
    size_t cut = len_full - 1;
    while (cut > 0 && full[cut - 1] != '\n') cut--; /* start of the last line */
    cut -= 1;
    while (cut > 0 && full[cut - 1] != '\n') cut--; /* start of the line before it */
    cut += 25;                                    /* ... torn 25 bytes in */
    CHECK(truncate(path, (off_t)cut) == 0);
    CHECK_OK(xle_eval_run(m, &o, &sum, &err), &err);
    CHECK(sum.n_done == 2 && sum.n_resumed == 10);
    size_t len_again;
    char *again = read_text(path, &len_again);
    CHECK(again && len_again == len_full && !memcmp(again, full, len_full));
    free(again);
    free(full);
    CHECK(weights_equal(m, &before));

    /* Refusals: not resuming over an existing run; resuming with other arguments. */
    o.resume = 0;
    CHECK(xle_eval_run(m, &o, &sum, &err) == XLE_ERR_ARG && strstr(err.msg, "--resume"));
    o.resume = 1;
    o.max_cases = 1;
    CHECK(xle_eval_run(m, &o, &sum, &err) == XLE_ERR_ARG && strstr(err.msg, "cases"));
    o.max_cases = 0;
    run_hp[0].v_num_grad_steps = 9;
    CHECK(xle_eval_run(m, &o, &sum, &err) == XLE_ERR_ARG && strstr(err.msg, "methods"));
    run_hp[0].v_num_grad_steps = 8;
    const char *bad_langs[] = {"en", "fr"};
    o.test_langs = bad_langs;
    o.n_test_langs = 2;
    CHECK(xle_eval_run(m, &o, &sum, &err) == XLE_ERR_ARG && strstr(err.msg, "fr"));
    for (int i = 0; i < before.count; i++) free(before.bytes[i]);
    xle_model_free(m);
}

/* Units of one case share what they computed on the unedited model (ROME's first request
 * of the "all" unit; MEMIT runs beside it, sharing nothing) with the "all" unit and back: results.jsonl and pre.jsonl must be the
 * bytes a run that shares nothing writes, whether "all" comes first or last. */
static void test_sharing(void) {
    xle_model *m = load_stories();
    if (!m) return;
    xle_error err = {0};
    char corpus[500], stats[500], path_a[600], path_b[600];
    snprintf(corpus, sizeof corpus, "%s/corpus.txt", tmpdir);
    snprintf(stats, sizeof stats, "%s/stats", tmpdir);
    /* Sixty different stories: one sentence repeated with only a number changed spans too few
     * key directions for stories260K's 172-wide MLP, so λC + K Kᵀ was singular up to rounding
     * and MEMIT's Cholesky passed or failed by the last bits of the sums. */
    static const char *const who[] = {"Lily", "Tom", "Sue", "Ben", "Mia"}, *const what[] = {"ball", "cat", "tree", "cake", "boat", "dog", "bird"},
                             *const how[] = {"big", "red", "little", "happy", "old", "shiny"}, *const act[] = {"play", "run", "jump", "sing"};
    FILE *f = fopen(corpus, "w");
    for (int i = 0; f && i < 60; i++)
        fprintf(f, "Once upon a time, %s saw a %s %s. %s wanted to %s with the %s, so %s went to the %s %s. "
                   "They were %s and ate a %s.\n\n",
                who[i % 5], how[i % 6], what[i % 7], who[(i + 2) % 5], act[i % 4], what[(i + 3) % 7], who[(i / 5) % 5],
                how[(i / 6) % 6], what[(i / 7) % 7], how[(i + 1) % 6], what[(i + 5) % 7]);
    if (f) fclose(f);
    const int layers[2] = {1, 2};
    const char *files[1] = {corpus};
    xle_stats_opts so = {layers, 2, files, 1, 0, 0, stats, NULL, NULL};
    CHECK_OK(xle_stats_build(m, xle_model_tokenizer(m), &so, &err), &err);
    xle_edit_hparams hp[2];
    fast_hparams(&hp[0], XLE_EDIT_ROME);
    fast_hparams(&hp[1], XLE_EDIT_MEMIT);
    hp[1].layers[0] = 1, hp[1].layers[1] = 2, hp[1].n_layers = 2;
    const char *orders[2][3] = {{"en", "de", "all"}, {"all", "de", "en"}};
    for (int k = 0; k < 2; k++) {
        char dir[2][500];
        for (int share = 0; share < 2; share++) {
            snprintf(dir[share], sizeof dir[share], "%s/share%d-%d", tmpdir, k, share);
            xle_eval_opts o = run_opts();
            o.run_dir = dir[share];
            o.hparams = hp;
            o.edit_langs = orders[k];
            o.stats_dir = stats;
            o.no_sharing = !share;
            xle_eval_summary sum;
            CHECK_OK(xle_eval_run(m, &o, &sum, &err), &err);
            CHECK(sum.n_units == 12 && sum.n_done == 12 && sum.n_failed == 0 && sum.n_skipped == 2);
        }
        for (int file = 0; file < 2; file++) {
            const char *name = file ? "pre.jsonl" : "results.jsonl";
            snprintf(path_a, sizeof path_a, "%s/%s", dir[0], name);
            snprintf(path_b, sizeof path_b, "%s/%s", dir[1], name);
            size_t na = 0, nb = 0;
            char *a = read_text(path_a, &na), *b = read_text(path_b, &nb);
            CHECK(a && b && na > 0 && na == nb && !memcmp(a, b, na));
            free(a), free(b);
        }
    }
    xle_model_free(m);
}

/* ---- reports --------------------------------------------------------------------------------- */

/* Minimal XML well-formedness: one root element, tags nest, attributes quoted, entity and
 * character references valid, no bare '<' or '&'. Comments, <!DOCTYPE> and <?...?> skipped. */
static int xml_ok(const char *s, char *why, size_t cap) {
    const char *stack[512];
    size_t lens[512];
    int depth = 0, roots = 0;
#define XML_FAIL(...) do { snprintf(why, cap, __VA_ARGS__); return 0; } while (0)
    while (*s) {
        if (*s == '&') {
            const char *e = strchr(s, ';');
            if (!e || e - s > 10) XML_FAIL("bare &");
            size_t n = (size_t)(e - s - 1);
            const char *ent = s + 1;
            int ok = (n == 3 && !strncmp(ent, "amp", 3)) || (n == 2 && !strncmp(ent, "lt", 2)) ||
                     (n == 2 && !strncmp(ent, "gt", 2)) || (n == 4 && !strncmp(ent, "quot", 4)) ||
                     (n == 4 && !strncmp(ent, "apos", 4)) || (n >= 2 && ent[0] == '#');
            if (!ok) XML_FAIL("bad entity near %.20s", s);
            s = e + 1;
            continue;
        }
        if (*s != '<') {
            s++;
            continue;
        }
        if (!strncmp(s, "<!--", 4)) {
            const char *e = strstr(s, "-->");
            if (!e) XML_FAIL("open comment");
            s = e + 3;
            continue;
        }
        if (s[1] == '!' || s[1] == '?') {
            const char *e = strchr(s, '>');
            if (!e) XML_FAIL("open declaration");
            s = e + 1;
            continue;
        }
        int closing = s[1] == '/';
        const char *name = s + 1 + closing, *p = name;
        while (*p && (isalnum((unsigned char)*p) || *p == ':' || *p == '-' || *p == '_' || *p == '.')) p++;
        size_t nlen = (size_t)(p - name);
        if (!nlen) XML_FAIL("bad tag near %.20s", s);
        if (closing) {
            while (*p == ' ') p++;
            if (*p != '>') XML_FAIL("bad closing tag");
            if (!depth || lens[depth - 1] != nlen || strncmp(stack[depth - 1], name, nlen))
                XML_FAIL("</%.*s> does not close <%.*s>", (int)nlen, name, depth ? (int)lens[depth - 1] : 0,
                         depth ? stack[depth - 1] : "");
            depth--;
            s = p + 1;
            continue;
        }
        for (;;) { /* attributes */
            while (*p == ' ' || *p == '\n' || *p == '\t') p++;
            if (*p == '>' || (*p == '/' && p[1] == '>')) break;
            const char *an = p;
            while (*p && (isalnum((unsigned char)*p) || *p == ':' || *p == '-' || *p == '_')) p++;
            if (p == an || *p != '=' || (p[1] != '"' && p[1] != '\'')) XML_FAIL("bad attribute near %.30s", an);
            char q = p[1];
            const char *e = strchr(p + 2, q);
            if (!e) XML_FAIL("open attribute value");
            for (const char *c = p + 2; c < e; c++)
                if (*c == '<') XML_FAIL("< in attribute value");
            p = e + 1;
        }
        if (*p == '/') {
            if (!depth) roots++;
            s = p + 2;
        } else {
            if (depth == 512) XML_FAIL("too deep");
            if (!depth) roots++;
            stack[depth] = name, lens[depth] = nlen, depth++;
            s = p + 1;
        }
    }
    if (depth) XML_FAIL("<%.*s> not closed", (int)lens[depth - 1], stack[depth - 1]);
    if (roots != 1) XML_FAIL("%d root elements", roots);
    return 1;
#undef XML_FAIL
}

static void test_xml_checker(void) {
    char why[128];
    CHECK(xml_ok("<!DOCTYPE html>\n<html><b a=\"1\">x &amp; &#183;</b><br/></html>", why, sizeof why));
    CHECK(!xml_ok("<html><b></html>", why, sizeof why));
    CHECK(!xml_ok("<html>a & b</html>", why, sizeof why));
    CHECK(!xml_ok("<html><b a=1></b></html>", why, sizeof why));
    CHECK(!xml_ok("<html></html><p></p>", why, sizeof why));
    CHECK(!xml_ok("<html><p>", why, sizeof why));
    CHECK(!xml_ok("<html>1 < 2</html>", why, sizeof why));
}

static void test_report(void) {
    xle_error err = {0};
    xle_report *r = NULL;
    CHECK_OK(xle_report_load(run_dir, &r, &err), &err);
    if (!r) return;
    char path[500];
    snprintf(path, sizeof path, "%s/results.jsonl", run_dir);
    json_t *lines = read_lines(path);

    /* JSON: matrices of 3 edit x 3 test languages; each cell = mean of the results' values */
    char *text = NULL;
    size_t len = 0;
    CHECK_OK(xle_report_render(r, XLE_REPORT_JSON, &text, &len, &err), &err);
    json_t *doc = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    CHECK(doc != NULL);
    json_t *methods = json_object_get(doc, "methods");
    CHECK(json_array_size(methods) == 2);
    int bad = 0, cells = 0;
    for (size_t mi = 0; mi < json_array_size(methods); mi++) {
        json_t *mj = json_array_get(methods, mi);
        const char *mname = json_string_value(json_object_get(mj, "method"));
        CHECK(json_integer_value(json_object_get(json_object_get(json_object_get(mj, "units"), "skipped"), "de")) == 1);
        CHECK(json_integer_value(json_object_get(json_object_get(json_object_get(mj, "units"), "ok"), "de")) == 1);
        for (int k = 0; k < XLE_METRIC_COUNT; k++) {
            const char *metric = xle_metric_name((xle_metric)k);
            json_t *mt = json_object_get(json_object_get(mj, "metrics"), metric);
            json_t *mean = json_object_get(mt, "mean");
            CHECK(json_array_size(mean) == 3 && json_array_size(json_array_get(mean, 0)) == 3);
            double elfi_sum = 0;
            int elfi_n = 0;
            for (int e = 0; e < 3; e++)
                for (int t = 0; t < 3; t++) {
                    double sum = 0;
                    int n = 0;
                    for (size_t i = 0; i < json_array_size(lines); i++) {
                        json_t *l = json_array_get(lines, i);
                        if (strcmp(json_string_value(json_object_get(l, "method")), mname) ||
                            strcmp(json_string_value(json_object_get(l, "edit_lang")), edit_langs[e]))
                            continue;
                        json_t *v = json_object_get(json_object_get(json_object_get(json_object_get(l, "tests"),
                                                                                    test_langs[t]), "metrics"), metric);
                        if (json_is_number(v)) sum += json_number_value(v), n++;
                    }
                    json_t *got = json_array_get(json_array_get(mean, (size_t)e), (size_t)t);
                    cells++;
                    if (n ? !json_is_number(got) || fabs(json_number_value(got) - sum / n) > 1e-9 : !json_is_null(got))
                        bad++;
                    if (!strcmp(edit_langs[e], test_langs[t])) elfi_sum += sum, elfi_n += n;
                }
            json_t *elfi = json_object_get(mt, "elfi");
            if (elfi_n ? fabs(json_number_value(elfi) - elfi_sum / elfi_n) > 1e-9 : !json_is_null(elfi)) bad++;
        }
    }
    CHECK_MSG(bad == 0, "%d of %d cells differ from the results", bad, cells);
    json_decref(doc);

    /* CSV: a header, one row per cell, one per pre-edit cell */
    CHECK_OK(xle_report_render(r, XLE_REPORT_CSV, &text, &len, &err), &err);
    int rows = 0;
    for (size_t i = 0; text && i < len; i++) rows += text[i] == '\n';
    CHECK(rows == 1 + 2 * XLE_METRIC_COUNT * 3 * 3 + XLE_METRIC_COUNT * 3);
    CHECK(text && !strncmp(text, "method,metric,edit_lang,test_lang,mean,n\n", 41));
    free(text);

    /* text and Markdown name every metric */
    for (int f = XLE_REPORT_TEXT; f <= XLE_REPORT_MD; f++) {
        CHECK_OK(xle_report_render(r, (xle_report_format)f, &text, &len, &err), &err);
        for (int k = 0; text && k < XLE_METRIC_COUNT; k++) CHECK(strstr(text, xle_metric_title((xle_metric)k)));
        CHECK(text && strstr(text, "subject not in prompt"));
        free(text);
    }

    /* HTML: well-formed, no script, no external reference, escaped prompt, UTF-8 kept */
    CHECK_OK(xle_report_render(r, XLE_REPORT_HTML, &text, &len, &err), &err);
    char why[160] = "";
    CHECK_MSG(text && xml_ok(text, why, sizeof why), "HTML not well-formed: %s", why);
    CHECK(text && !strstr(text, "<script") && !strstr(text, "src=") && !strstr(text, "href="));
    CHECK(text && !strstr(text, "url(http") && !strstr(text, "@import"));
    CHECK(text && strstr(text, "<svg") && strstr(text, "linearGradient"));
    /* the hi prompt "लिली <b>&amp; माँ" appears escaped, in UTF-8, in the failures view */
    CHECK(text && strstr(text, "\xe0\xa4\xb2\xe0\xa4\xbf\xe0\xa4\xb2\xe0\xa5\x80 &lt;b&gt;&amp;amp; "));
    free(text);
    json_decref(lines);
    xle_report_free(r);

    /* a directory without a run */
    CHECK(xle_report_load(tmpdir, &r, &err) != XLE_OK && strstr(err.msg, "run.json"));
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/xle_eval_run_%ld", (long)getpid());
    mkdir(tmpdir, 0777);
    RUN(test_half_metrics);
    RUN(test_run);
    RUN(test_sharing);
    RUN(test_xml_checker);
    RUN(test_report);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_summary();
}
