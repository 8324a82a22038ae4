/*
 * eval_internal.h: the text level of evaluation, shared by half_eval.c, run.c and the tests:
 * a language half's questions evaluated on the current model, and the metrics of an edit
 * computed from the post-edit and pre-edit evaluations (docs/evaluation.md).
 */
#ifndef XLE_EVAL_INTERNAL_H
#define XLE_EVAL_INTERNAL_H

#include <jansson.h>

#include "xledit.h"

/* Which question of a half: the edit prompt, a rephrase, a locality or a portability pair. */
typedef enum xle_qa_kind { XLE_QA_REL = 0, XLE_QA_GEN, XLE_QA_LOC, XLE_QA_PORT, XLE_QA_KIND_COUNT } xle_qa_kind;

const char *xle_qa_kind_name(xle_qa_kind k); /* "rel", "gen", "loc", "port" */

/* One (prompt, answer) question evaluated on a model. All strings and arrays are owned. */
typedef struct xle_qa_eval {
    xle_qa_kind kind;
    char *prompt;          /* the question's prompt */
    char *answer;          /* the expected answer as written in the case */
    int ok;                /* 0: the pair gives no tokens (empty answer): every value is absent */
    double acc;            /* teacher-forced token accuracy of answer after prompt */
    int32_t *argmax;       /* n_answer teacher-forced argmax ids (locality compares these) */
    int n_answer;
    char *gold;            /* the answer's tokens decoded (what exact match compares with) */
    char *greedy;          /* the greedy answer (n_answer tokens at most, decoded): what the
                            * metrics compare */
    char *greedy_whole;    /* the greedy answer shown whole: decoded on to the end of the word
                            * (answer.c), at most XLE_ANSWER_EXTRA_TOKENS more; NULL when not
                            * asked for (xle_halves_eval) */
    double nll_new;        /* mean NLL of target_new after prompt (rel, gen, loc); NaN if absent */
    double nll_true;       /* mean NLL of target_true after prompt (rel, gen, loc); NaN if absent */
} xle_qa_eval;

typedef struct xle_half_eval {
    char lang[XLE_LANG_MAX];
    xle_qa_eval *qa;       /* the edit prompt first, then rephrases, locality, portability */
    int n_qa;
} xle_half_eval;

void xle_half_eval_free(xle_half_eval *h);

/* Evaluates n halves on the model in one set of packed batches; out[0..n) is filled (free each
 * with xle_half_eval_free). A half's prompt and target_new must not be blank. chat: NULL, or
 * the template every prompt is wrapped in (xle_eval_opts.chat). */
xle_status xle_halves_eval(xle_model *model, const xle_tokenizer *tok, const xle_chat_template *chat,
                           const xle_case_lang *const *halves, int n, xle_half_eval *out,
                           xle_error *err);

/* As xle_halves_eval, and with answer_extra > 0 each greedy answer is also decoded on until its
 * word ends, at most answer_extra tokens past the expected answer's length (greedy_whole); the
 * metrics are computed as without it. */
xle_status xle_halves_eval_whole(xle_model *model, const xle_tokenizer *tok, const xle_chat_template *chat,
                                 const xle_case_lang *const *halves, int n, int answer_extra,
                                 xle_half_eval *out, xle_error *err);

/* The most tokens a greedy answer is decoded past the expected answer's length to end its word
 * (results.jsonl's before_whole / after_whole). */
#define XLE_ANSWER_EXTRA_TOKENS 8

/* Greedy decoding past the expected answer (metrics.c): with max_extra > 0, each greedy probe
 * goes on for at most max_extra tokens past n_answer, until EOS or until cut(ctx, ids, n, n_answer)
 * finds a word end in the n greedy ids decoded so far (n > n_answer; >= 0: found). ids[i] and
 * n_ids[i] (arrays of n probes, given by the caller) receive every greedy id decoded, EOS not
 * included (malloc'd; the caller frees them; NULL for probes without greedy); final[i] is 1 when
 * the decoding stopped at EOS or at the limit rather than at a word end. The first
 * min(n_ids, n_answer) ids are the result's greedy answer, as xle_probes_eval gives it. */
typedef struct xle_greedy_more {
    int max_extra;
    int (*cut)(void *ctx, const int32_t *ids, int n, int n_min);
    void *ctx;
    int32_t **ids;
    int *n_ids;
    int *final;
} xle_greedy_more;

xle_status xle_probes_eval_more(xle_model *model, const xle_probe *probes, int n, int eos_id,
                                const xle_greedy_more *more, xle_probe_result *out, xle_error *err);

/* Where a greedy answer shown whole ends (answer.c): the first k in [n_min, n) such that the text
 * of ids[0..k) ends a word of the text of ids[0..n) (the text after it starts with white space,
 * punctuation or a symbol, between grapheme clusters, never inside a character); with final,
 * tokens after k that add no text end it too. -1: none (or out of memory: *nomem = 1). */
int xle_answer_cut(const xle_tokenizer *tok, const int32_t *ids, int n, int n_min, int final, int *nomem);
/* Cuts a trailing incomplete UTF-8 sequence off s (a cap can stop inside a character). */
void xle_answer_drop_incomplete_tail(char *s);

/* metrics[XLE_METRIC_COUNT] of an evaluation: post is the model after the edit, pre the same
 * half before it (locality compares them; pre == NULL gives the pre-edit values of post, with
 * the locality metrics absent). Absent values are NaN. pre must come from the same half. */
xle_status xle_half_metrics(const xle_tokenizer *tok, const xle_half_eval *post,
                            const xle_half_eval *pre, double *metrics, xle_error *err);

/* In-context editing (ike.c). The context before every test prompt of case ci edited in
 * edit_lang: k demonstrations drawn from the other cases by (seed, ci), then the new fact, ending
 * in "Prompt: "; demonstrations are dropped from the end until it takes at most max_tokens
 * tokens (with BOS). *out is owned by the caller; *n_demos: how many remain. */
xle_status xle_ike_context(const xle_tokenizer *tok, const xle_cases *cs, int ci, const char *edit_lang,
                           int k, uint64_t seed, int max_tokens, char **out, int *n_demos,
                           xle_error *err);
/* The most tokens (prompt + answer) any question of the n halves takes. */
xle_status xle_ike_longest_question(const xle_tokenizer *tok, const xle_case_lang *const *halves, int n,
                                    int *longest, xle_error *err);
/* A copy of half l whose every prompt (edit prompt, rephrases, locality, portability) has ctx
 * before it; answers and targets are borrowed from l. Free with xle_ike_half_free. */
xle_status xle_ike_half(const char *ctx, const xle_case_lang *l, xle_case_lang *out, xle_error *err);
void xle_ike_half_free(xle_case_lang *l);

/* The edit request of a half (run.c): its prompt and target, and the subject as the prompt writes
 * it (the case's, or the text a match no looser than `loosest` found, in *subject_buf, owned by
 * the caller). *problem says why a half cannot be edited (XLE_CASE_USABLE: it can). */
xle_status xle_case_edit_request(const xle_case_lang *l, xle_match loosest, xle_edit_request *req,
                                 char **subject_buf, xle_case_problem *problem, xle_error *err);

/* A method's hyper-parameters as run.json records them (run.c). */
json_t *xle_eval_hparams_json(const xle_edit_hparams *hp);

#endif
