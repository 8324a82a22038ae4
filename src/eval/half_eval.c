/*
 * half_eval.c: a language half's questions evaluated on the current model, and the metrics of
 * an edit computed from the evaluations after and before it (docs/evaluation.md).
 *
 * Every (prompt, answer) pair is tokenized with xle_tokenize_continuation, the function editing
 * uses for its target, so editing and evaluation see the same answer tokens (with a chat
 * template, with xle_chat_tokenize: the answer as the assistant's reply, as `score --chat`). All questions of
 * all halves given together run as one set of packed batches (xle_probes_eval).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "eval/eval_internal.h"

const char *xle_qa_kind_name(xle_qa_kind k) {
    static const char *const names[XLE_QA_KIND_COUNT] = {"rel", "gen", "loc", "port"};
    return k >= 0 && k < XLE_QA_KIND_COUNT ? names[k] : "?";
}

static char *dup_str(const char *s) {
    size_t n = strlen(s ? s : "");
    char *d = malloc(n + 1);
    if (d) memcpy(d, s ? s : "", n + 1);
    return d;
}

void xle_half_eval_free(xle_half_eval *h) {
    if (!h) return;
    for (int i = 0; i < h->n_qa; i++) {
        xle_qa_eval *q = &h->qa[i];
        free(q->prompt), free(q->answer), free(q->argmax), free(q->gold), free(q->greedy);
        free(q->greedy_whole);
    }
    free(h->qa);
    memset(h, 0, sizeof *h);
}

/* What a probe is for. */
typedef enum probe_role { ROLE_MAIN = 0, ROLE_NEW, ROLE_TRUE } probe_role;

typedef struct probe_list {
    xle_probe *p;
    int32_t **owned;     /* prompt and answer arrays, two per probe */
    xle_qa_eval **qa;    /* which question each probe serves */
    probe_role *role;
    int n, cap;
    const xle_chat_template *chat; /* NULL: plain prompts */
} probe_list;

static void probe_list_free(probe_list *pl) {
    for (int i = 0; i < 2 * pl->n; i++) free(pl->owned[i]);
    free(pl->p), free(pl->owned), free(pl->qa), free(pl->role);
    memset(pl, 0, sizeof *pl);
}

/* Tokenizes (prompt, answer) and adds it as a probe. An answer without tokens adds nothing and
 * sets *added = 0 (the value stays absent); other failures are errors. */
static xle_status add_probe(probe_list *pl, const xle_tokenizer *tok, const char *prompt,
                            const char *answer, xle_qa_eval *qa, probe_role role, int greedy,
                            int *added, xle_error *err) {
    *added = 0;
    if (!answer) return XLE_OK;
    int32_t *pids = NULL, *aids = NULL;
    int np = 0, na = 0;
    xle_error e2 = {0};
    xle_status st = pl->chat ? xle_chat_tokenize(tok, pl->chat, prompt, answer, &pids, &np, &aids, &na, &e2)
                             : xle_tokenize_continuation(tok, prompt, answer, &pids, &np, &aids, &na, &e2);
    if (st == XLE_ERR_ARG) return XLE_OK; /* empty answer: absent, not an error */
    if (st != XLE_OK) {
        *err = e2;
        return st;
    }
    if (np < 1) { /* an empty prompt without BOS: nothing to condition on */
        free(pids), free(aids);
        return XLE_OK;
    }
    if (pl->n == pl->cap) {
        int cap = pl->cap ? 2 * pl->cap : 16;
        xle_probe *p = realloc(pl->p, (size_t)cap * sizeof *p);
        if (p) pl->p = p;
        int32_t **o = realloc(pl->owned, (size_t)cap * 2 * sizeof *o);
        if (o) pl->owned = o;
        xle_qa_eval **q = realloc(pl->qa, (size_t)cap * sizeof *q);
        if (q) pl->qa = q;
        probe_role *r = realloc(pl->role, (size_t)cap * sizeof *r);
        if (r) pl->role = r;
        if (!p || !o || !q || !r) {
            free(pids), free(aids);
            return xle_fail(err, XLE_ERR_NOMEM, "evaluation: out of memory");
        }
        pl->cap = cap;
    }
    pl->p[pl->n] = (xle_probe){pids, np, aids, na, greedy};
    pl->owned[2 * pl->n] = pids;
    pl->owned[2 * pl->n + 1] = aids;
    pl->qa[pl->n] = qa;
    pl->role[pl->n] = role;
    pl->n++;
    *added = 1;
    return XLE_OK;
}

static xle_status init_qa(xle_qa_eval *q, xle_qa_kind kind, const char *prompt, const char *answer,
                          xle_error *err) {
    memset(q, 0, sizeof *q);
    q->kind = kind;
    q->prompt = dup_str(prompt);
    q->answer = dup_str(answer);
    q->acc = q->nll_new = q->nll_true = NAN;
    if (!q->prompt || !q->answer) return xle_fail(err, XLE_ERR_NOMEM, "evaluation: out of memory");
    return XLE_OK;
}

/* Adds one question's probes: the main pair (teacher forced + greedy), and for the CounterFact
 * metrics target_new / target_true after the same prompt. */
static xle_status add_question(probe_list *pl, const xle_tokenizer *tok, xle_qa_eval *q,
                               const xle_case_lang *l, xle_error *err) {
    int added;
    xle_status st = add_probe(pl, tok, q->prompt, q->answer, q, ROLE_MAIN, 1, &added, err);
    if (st != XLE_OK) return st;
    q->ok = added;
    if (q->kind == XLE_QA_PORT || !l->target_true) return XLE_OK;
    if (q->kind == XLE_QA_LOC && (st = add_probe(pl, tok, q->prompt, l->target_new, q, ROLE_NEW, 0,
                                                 &added, err)) != XLE_OK)
        return st;
    return add_probe(pl, tok, q->prompt, l->target_true, q, ROLE_TRUE, 0, &added, err);
}

static xle_status build_half(probe_list *pl, const xle_tokenizer *tok, const xle_case_lang *l,
                             xle_half_eval *h, xle_error *err) {
    memset(h, 0, sizeof *h);
    memcpy(h->lang, l->lang, sizeof h->lang);
    int n = 1 + l->n_rephrases + l->n_locality + l->n_portability;
    h->qa = calloc((size_t)n, sizeof *h->qa);
    if (!h->qa) return xle_fail(err, XLE_ERR_NOMEM, "evaluation: out of memory");
    xle_status st = init_qa(&h->qa[h->n_qa++], XLE_QA_REL, l->prompt, l->target_new, err);
    for (int i = 0; st == XLE_OK && i < l->n_rephrases; i++)
        st = init_qa(&h->qa[h->n_qa++], XLE_QA_GEN, l->rephrases[i], l->target_new, err);
    for (int i = 0; st == XLE_OK && i < l->n_locality; i++)
        st = init_qa(&h->qa[h->n_qa++], XLE_QA_LOC, l->locality[i].prompt, l->locality[i].answer, err);
    for (int i = 0; st == XLE_OK && i < l->n_portability; i++)
        st = init_qa(&h->qa[h->n_qa++], XLE_QA_PORT, l->portability[i].prompt,
                     l->portability[i].answer, err);
    for (int i = 0; st == XLE_OK && i < h->n_qa; i++) st = add_question(pl, tok, &h->qa[i], l, err);
    return st;
}

/* s with every byte that is not part of valid UTF-8 replaced by U+FFFD (a greedy answer may
 * stop inside a character made of byte tokens; results files and reports need valid UTF-8). */
static char *valid_utf8(char *s) {
    if (!s) return NULL;
    size_t n = strlen(s), bad = 0;
    for (size_t i = 0; i < n;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0) bad++, k = 1;
        i += (size_t)k;
    }
    if (!bad) return s;
    char *out = malloc(n + 2 * bad + 1);
    size_t w = 0;
    for (size_t i = 0; out && i < n;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0) {
            memcpy(out + w, "\xEF\xBF\xBD", 3);
            w += 3, i++;
        } else {
            memcpy(out + w, s + i, (size_t)k);
            w += (size_t)k, i += (size_t)k;
        }
    }
    if (out) out[w] = 0;
    free(s);
    return out;
}

/* Decoded text with special tokens skipped, as valid UTF-8; NULL only when out of memory. */
static char *decode(const xle_tokenizer *tok, const int32_t *ids, int n) {
    if (n <= 0) return dup_str("");
    return valid_utf8(xle_detokenize(tok, ids, n, 1));
}

/* xle_greedy_more's cut: a word end in the greedy ids decoded so far (not final). */
static int cut_word(void *tok, const int32_t *ids, int n, int n_min) {
    int nomem = 0, cut = xle_answer_cut(tok, ids, n, n_min, 0, &nomem);
    return nomem ? n_min : cut; /* out of memory: stop decoding (the text is made below) */
}

/* The greedy answer shown whole from every greedy id decoded (n_min: the expected answer's
 * length), as valid UTF-8; NULL only when out of memory. */
static char *whole_answer(const xle_tokenizer *tok, const int32_t *ids, int n, int n_min, int final) {
    int nomem = 0, cut = xle_answer_cut(tok, ids, n, n_min, final, &nomem);
    if (nomem) return NULL;
    if (cut < 0) cut = n; /* stopped at EOS or at the limit without a word end */
    if (cut <= 0) return dup_str("");
    char *s = xle_detokenize(tok, ids, cut, 1);
    if (!s) return NULL;
    xle_answer_drop_incomplete_tail(s);
    return valid_utf8(s);
}

xle_status xle_halves_eval(xle_model *m, const xle_tokenizer *tok, const xle_chat_template *chat,
                           const xle_case_lang *const *halves, int n, xle_half_eval *out,
                           xle_error *err) {
    return xle_halves_eval_whole(m, tok, chat, halves, n, 0, out, err);
}

xle_status xle_halves_eval_whole(xle_model *m, const xle_tokenizer *tok, const xle_chat_template *chat,
                                 const xle_case_lang *const *halves, int n, int answer_extra,
                                 xle_half_eval *out, xle_error *err) {
    memset(out, 0, (size_t)(n > 0 ? n : 0) * sizeof *out);
    if (!tok) return xle_fail(err, XLE_ERR_ARG, "evaluation: the model has no tokenizer");
    probe_list pl = {.chat = chat};
    xle_probe_result *res = NULL;
    xle_greedy_more more = {answer_extra > 0 ? answer_extra : 0, cut_word, (void *)tok, NULL, NULL, NULL};
    xle_status st = XLE_OK;
    for (int h = 0; h < n && st == XLE_OK; h++) st = build_half(&pl, tok, halves[h], &out[h], err);
    if (st == XLE_OK && pl.n) {
        res = calloc((size_t)pl.n, sizeof *res);
        if (more.max_extra) {
            more.ids = calloc((size_t)pl.n, sizeof *more.ids);
            more.n_ids = calloc((size_t)pl.n, sizeof *more.n_ids);
            more.final = calloc((size_t)pl.n, sizeof *more.final);
        }
        if (!res || (more.max_extra && (!more.ids || !more.n_ids || !more.final)))
            st = xle_fail(err, XLE_ERR_NOMEM, "evaluation: out of memory");
        else st = xle_probes_eval_more(m, pl.p, pl.n, xle_tokenizer_eos_id(tok), &more, res, err);
    }
    for (int i = 0; st == XLE_OK && i < pl.n; i++) {
        xle_qa_eval *q = pl.qa[i];
        const xle_probe_result *r = &res[i];
        switch (pl.role[i]) {
        case ROLE_MAIN:
            q->acc = (double)r->n_correct / r->n_answer;
            q->n_answer = r->n_answer;
            q->argmax = malloc((size_t)r->n_answer * sizeof *q->argmax);
            q->gold = decode(tok, pl.p[i].answer, pl.p[i].n_answer);
            q->greedy = decode(tok, r->greedy, r->n_greedy);
            if (!q->argmax || !q->gold || !q->greedy) {
                st = xle_fail(err, XLE_ERR_NOMEM, "evaluation: out of memory");
                break;
            }
            memcpy(q->argmax, r->argmax, (size_t)r->n_answer * sizeof *q->argmax);
            if (more.max_extra &&
                !(q->greedy_whole = whole_answer(tok, more.ids[i], more.n_ids[i], r->n_answer, more.final[i]))) {
                st = xle_fail(err, XLE_ERR_NOMEM, "evaluation: out of memory");
                break;
            }
            /* rel/gen ask for target_new itself: the main pair is its NLL */
            if (q->kind == XLE_QA_REL || q->kind == XLE_QA_GEN) q->nll_new = r->mean_nll;
            break;
        case ROLE_NEW: q->nll_new = r->mean_nll; break;
        case ROLE_TRUE: q->nll_true = r->mean_nll; break;
        }
    }
    if (res) xle_probe_results_free(res, pl.n);
    free(res);
    for (int i = 0; more.ids && i < pl.n; i++) free(more.ids[i]);
    free(more.ids), free(more.n_ids), free(more.final);
    probe_list_free(&pl);
    if (st != XLE_OK)
        for (int h = 0; h < n; h++) xle_half_eval_free(&out[h]);
    return st;
}

/* ---- metrics ------------------------------------------------------------------------------ */

/* Running means, one per metric. */
typedef struct mean_acc {
    double sum[XLE_METRIC_COUNT];
    int n[XLE_METRIC_COUNT];
} mean_acc;

static void add(mean_acc *a, xle_metric m, double v) {
    if (isnan(v)) return;
    a->sum[m] += v;
    a->n[m]++;
}

/* Token ids of text without BOS, after trimming (Bi-ZsRE re-encodes the decoded strings). */
static xle_status encode_trimmed(const xle_tokenizer *tok, const char *s, xle_tokens *out,
                                 xle_error *err) {
    memset(out, 0, sizeof *out);
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r')) n--;
    if (!n) return XLE_OK;
    return xle_tokenize(tok, s, n, 0, 0, out, err);
}

static xle_status compare_answers(const xle_tokenizer *tok, const char *pred, const char *gold,
                                  double *em, double *f1, xle_error *err) {
    xle_tokens a, b;
    xle_status st = encode_trimmed(tok, pred, &a, err);
    if (st != XLE_OK) return st;
    if ((st = encode_trimmed(tok, gold, &b, err)) != XLE_OK) {
        xle_tokens_free(&a);
        return st;
    }
    *em = xle_exact_match(pred, gold);
    *f1 = xle_token_f1(a.ids, a.n, b.ids, b.n);
    xle_tokens_free(&a), xle_tokens_free(&b);
    return isnan(*f1) ? xle_fail(err, XLE_ERR_NOMEM, "evaluation: out of memory") : XLE_OK;
}

xle_status xle_half_metrics(const xle_tokenizer *tok, const xle_half_eval *post,
                            const xle_half_eval *pre, double *metrics, xle_error *err) {
    if (pre && pre->n_qa != post->n_qa)
        return xle_fail(err, XLE_ERR_ARG, "evaluation: %s: pre-edit evaluation has %d questions, "
                        "post-edit %d", post->lang, pre->n_qa, post->n_qa);
    mean_acc a;
    memset(&a, 0, sizeof a);
    static const xle_metric acc_of[XLE_QA_KIND_COUNT] = {XLE_METRIC_REL_ACC, XLE_METRIC_GEN_ACC,
                                                         XLE_METRIC_LOC_ACC, XLE_METRIC_PORT_ACC};
    static const xle_metric em_of[XLE_QA_KIND_COUNT] = {XLE_METRIC_REL_EM, XLE_METRIC_GEN_EM,
                                                        XLE_METRIC_LOC_EM, XLE_METRIC_PORT_EM};
    for (int i = 0; i < post->n_qa; i++) {
        const xle_qa_eval *q = &post->qa[i], *p = pre ? &pre->qa[i] : NULL;
        if (!q->ok) continue;
        if (p && (p->kind != q->kind || !p->ok || p->n_answer != q->n_answer))
            return xle_fail(err, XLE_ERR_ARG, "evaluation: %s: question %d differs between the "
                            "pre-edit and post-edit evaluations", post->lang, i);
        double em, f1;
        xle_status st;
        if (q->kind == XLE_QA_LOC) {
            if (p) {
                int same = 0;
                for (int j = 0; j < q->n_answer; j++) same += q->argmax[j] == p->argmax[j];
                add(&a, XLE_METRIC_LOC_ACC, (double)same / q->n_answer);
                if ((st = compare_answers(tok, q->greedy, p->greedy, &em, &f1, err)) != XLE_OK) return st;
                add(&a, XLE_METRIC_LOC_EM, em);
                add(&a, XLE_METRIC_LOC_F1, f1);
            }
            if (!isnan(q->nll_new) && !isnan(q->nll_true)) {
                add(&a, XLE_METRIC_NBHD_SUCC, q->nll_true < q->nll_new);
                add(&a, XLE_METRIC_NBHD_MAG, exp(-q->nll_true) - exp(-q->nll_new));
            }
            continue;
        }
        add(&a, acc_of[q->kind], q->acc);
        if ((st = compare_answers(tok, q->greedy, q->gold, &em, &f1, err)) != XLE_OK) return st;
        add(&a, em_of[q->kind], em);
        add(&a, (xle_metric)(em_of[q->kind] + 1), f1);
        if (q->kind != XLE_QA_PORT && !isnan(q->nll_new) && !isnan(q->nll_true)) {
            int rel = q->kind == XLE_QA_REL;
            add(&a, rel ? XLE_METRIC_EFF_SUCC : XLE_METRIC_PARA_SUCC, q->nll_true > q->nll_new);
            add(&a, rel ? XLE_METRIC_EFF_MAG : XLE_METRIC_PARA_MAG, exp(-q->nll_new) - exp(-q->nll_true));
        }
    }
    for (int m = 0; m < XLE_METRIC_COUNT; m++) metrics[m] = a.n[m] ? a.sum[m] / a.n[m] : NAN;
    return XLE_OK;
}
