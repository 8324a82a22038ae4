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
    char *greedy;          /* the greedy answer (n_answer tokens at most, decoded) */
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
