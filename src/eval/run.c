/*
 * run.c: an evaluation run (docs/evaluation.md): for every case, method and edit language (a
 * "unit"), edit the model, evaluate the edit in every test language, put the weights back, and
 * append the unit's result to RUN_DIR/results.jsonl (flushed and fsynced).
 *
 *   RUN_DIR/run.json               what was asked (compared on --resume), model and data hashes
 *   RUN_DIR/results.jsonl          one line per finished unit, in unit order
 *   RUN_DIR/pre.jsonl              one line per case: the unedited model's answers (cached)
 *   RUN_DIR/templates-METHOD.txt   the context templates each method used
 *
 * Units run in a fixed order (case, then method, then edit language) and every number depends
 * only on the unit, so a run killed at any point and resumed writes the same lines as one that
 * never stopped: a torn last line is cut off and that unit redone.
 *
 * Edits are applied as weight swaps (edit/edit_internal.h): the edited layers point at f32
 * copies holding original + delta, and restoring puts the original views back. After every
 * unit the edited tensors are checked against a hash taken at the start.
 *
 * Several processes (opts->comm, docs/scale.md): process 0 sets the folder up, keeps the queue
 * of units (unit_queue.c) and writes every line; a helper thread of it answers the others, who
 * send the lines of each unit they finish and get the next unit (with the case's pre-edit line
 * when someone else computed it). A finished run's files are put in unit order, so they are
 * the files one process writes.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/outpath.h"
#include "edit/edit_internal.h"
#include "eval/eval_internal.h"
#include "eval/run_files.h"
#include "eval/unit_queue.h"

#define RUN_FORMAT "xledit-eval-1"
#define ALL_LANGS "all"

/* ---- JSON of numbers and evaluations ------------------------------------------------------- */

static json_t *num(double v) { return isnan(v) ? json_null() : json_real(v); }

static double num_of(const json_t *v) { return json_is_number(v) ? json_number_value(v) : NAN; }

static json_t *metrics_json(const double *m) {
    json_t *o = json_object();
    for (int k = 0; o && k < XLE_METRIC_COUNT; k++) json_object_set_new(o, xle_metric_name((xle_metric)k), num(m[k]));
    return o;
}

static json_t *half_json(const xle_half_eval *h, const double *metrics) {
    json_t *qa = json_array();
    for (int i = 0; i < h->n_qa; i++) {
        const xle_qa_eval *q = &h->qa[i];
        json_t *ids = json_array();
        for (int j = 0; j < q->n_answer; j++) json_array_append_new(ids, json_integer(q->argmax[j]));
        json_t *e = json_pack("{s:s, s:s, s:s, s:b, s:o, s:o, s:s?, s:s?, s:s?, s:o, s:o}", "kind",
                              xle_qa_kind_name(q->kind), "prompt", q->prompt, "answer", q->answer, "ok",
                              q->ok, "acc", num(q->acc), "argmax", ids, "gold", q->gold, "greedy",
                              q->greedy, "greedy_whole", q->greedy_whole, "nll_new", num(q->nll_new),
                              "nll_true", num(q->nll_true));
        if (json_array_append_new(qa, e) != 0) { /* NULL e: out of memory or not UTF-8 */
            json_decref(qa);
            return NULL;
        }
    }
    return json_pack("{s:o, s:o}", "metrics", metrics_json(metrics), "qa", qa);
}

static char *dup_json_str(const json_t *v) {
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    if (!s) return NULL;
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

/* Rebuilds a pre-edit evaluation from pre.jsonl. */
static xle_status half_from_json(const json_t *j, const char *lang, xle_half_eval *h, const char *where,
                                 xle_error *err) {
    memset(h, 0, sizeof *h);
    snprintf(h->lang, sizeof h->lang, "%s", lang);
    const json_t *qa = json_object_get(j, "qa");
    if (!json_is_array(qa)) return xle_fail(err, XLE_ERR_FORMAT, "%s: %s.qa: expected an array", where, lang);
    h->qa = calloc(json_array_size(qa) + 1, sizeof *h->qa);
    if (!h->qa) return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < json_array_size(qa); i++) {
        const json_t *e = json_array_get(qa, i), *ids = json_object_get(e, "argmax");
        xle_qa_eval *q = &h->qa[h->n_qa++];
        const char *kind = json_string_value(json_object_get(e, "kind"));
        q->kind = XLE_QA_KIND_COUNT;
        for (int k = 0; kind && k < XLE_QA_KIND_COUNT; k++)
            if (!strcmp(kind, xle_qa_kind_name((xle_qa_kind)k))) q->kind = (xle_qa_kind)k;
        q->prompt = dup_json_str(json_object_get(e, "prompt"));
        q->answer = dup_json_str(json_object_get(e, "answer"));
        q->gold = dup_json_str(json_object_get(e, "gold"));
        q->greedy = dup_json_str(json_object_get(e, "greedy"));
        q->greedy_whole = dup_json_str(json_object_get(e, "greedy_whole")); /* absent before it existed */
        q->ok = json_is_true(json_object_get(e, "ok"));
        q->acc = num_of(json_object_get(e, "acc"));
        q->nll_new = num_of(json_object_get(e, "nll_new"));
        q->nll_true = num_of(json_object_get(e, "nll_true"));
        q->n_answer = json_is_array(ids) ? (int)json_array_size(ids) : 0;
        q->argmax = malloc((size_t)(q->n_answer + 1) * sizeof *q->argmax);
        if (q->kind == XLE_QA_KIND_COUNT || !q->prompt || !q->answer || !q->argmax ||
            (q->ok && (!q->gold || !q->greedy)))
            return xle_fail(err, XLE_ERR_FORMAT, "%s: %s.qa[%zu]: malformed", where, lang, i);
        for (int k = 0; k < q->n_answer; k++) q->argmax[k] = (int32_t)json_integer_value(json_array_get(ids, (size_t)k));
    }
    return XLE_OK;
}

json_t *xle_eval_hparams_json(const xle_edit_hparams *hp) {
    json_t *layers = json_array(), *ctx = json_array();
    for (int i = 0; i < hp->n_layers; i++) json_array_append_new(layers, json_integer(hp->layers[i]));
    for (int i = 0; i < hp->n_ctx_lengths; i++)
        json_array_append_new(ctx, json_pack("[i,i]", hp->ctx_lengths[i], hp->ctx_counts[i]));
    json_t *o = json_pack("{s:s, s:o, s:i, s:f, s:f, s:f, s:f, s:b, s:b, s:f, s:i, s:f, s:f, s:o, s:I}",
                     "method", xle_edit_method_name(hp->method), "layers", layers, "v_num_grad_steps",
                     hp->v_num_grad_steps, "v_lr", (double)hp->v_lr, "v_weight_decay",
                     (double)hp->v_weight_decay, "clamp_norm_factor", (double)hp->clamp_norm_factor,
                     "kl_factor", (double)hp->kl_factor, "mom2_adjustment", hp->mom2_adjustment,
                     "rrome", hp->rrome, "mom2_update_weight", hp->mom2_update_weight, "num_steps",
                     hp->ft_steps, "lr", (double)hp->ft_lr, "norm_constraint",
                     (double)hp->ft_norm_constraint, "context_lengths", ctx, "seed",
                     (json_int_t)hp->seed);
    if (o && hp->method == XLE_EDIT_ALPHAEDIT) { /* only AlphaEdit's: other runs' run.json stay as they were */
        json_object_set_new(o, "nullspace_threshold", json_real(hp->nullspace_threshold));
        json_object_set_new(o, "L2", json_real(hp->alphaedit_l2));
    }
    if (o && hp->method == XLE_EDIT_IKE) json_object_set_new(o, "k", json_integer(hp->ike_k));
    return o;
}

/* ---- the run ------------------------------------------------------------------------------- */

typedef struct method_state {
    const xle_edit_hparams *hp;
    xle_context_templates *ct;
    xle_layer_stats *stats[XLE_EDIT_MAX_LAYERS];
} method_state;

/* A hash of every down projection an edit may change, to check it is restored exactly. */
typedef struct weight_check {
    int layers[XLE_EDIT_MAX_LAYERS * 4];
    int n;
    xle_tensor views[XLE_EDIT_MAX_LAYERS * 4];
    uint64_t hashes[XLE_EDIT_MAX_LAYERS * 4];
} weight_check;

static uint64_t tensor_hash(const xle_tensor *t) {
    const unsigned char *p = t->data;
    size_t n = xle_tensor_nbytes(t), words = n / 8;
    uint64_t h = 0x84222325cbf29ce4ull ^ n;
#pragma omp parallel for reduction(^ : h) schedule(static) if (words > ((size_t)1 << 20))
    for (size_t i = 0; i < words; i++) {
        uint64_t w;
        memcpy(&w, p + 8 * i, 8);
        w ^= (uint64_t)i * 0x9e3779b97f4a7c15ull;
        w *= 0xff51afd7ed558ccdull;
        w ^= w >> 33;
        h ^= w;
    }
    for (size_t i = words * 8; i < n; i++) h ^= (uint64_t)p[i] << (8 * (i % 8));
    return h;
}

typedef struct run_ctx {
    xle_model *model;
    const xle_tokenizer *tok;
    const xle_eval_opts *o;
    xle_cases *cases;
    int n_cases;
    char (*edit_langs)[XLE_LANG_MAX];
    int n_edit_langs;
    char (*test_langs)[XLE_LANG_MAX];
    int n_test_langs;
    method_state *methods;
    weight_check wc;
    xle_edit_memo *memo;     /* what the current case's units computed on the unedited model */
    json_t *pre_lines;       /* per case index: its pre.jsonl object, or NULL */
    unsigned char *done;     /* per unit: finished in an earlier session */
    jsonl_out results, pre;
    xle_eval_summary sum;
    /* several processes (o->comm of size > 1) */
    int shared, lead;            /* lead: process 0, the only writer */
    int64_t n_units, finished;   /* finished: by any process, resumed ones included */
    pthread_mutex_t lock;        /* process 0: files, queue, pre_text, finished, stopping */
    xle_unit_queue queue;        /* process 0 */
    char **pre_text;             /* process 0: per case, its pre.jsonl line once written */
    int *pre_case;               /* process 0: per process, the case whose pre line it holds */
    int stopping, interrupted;   /* process 0: hand out no more units (an error; or asked) */
    xle_status helper_st;        /* process 0: the helper thread's first error */
    xle_error helper_err;
    int64_t others_done, others_skipped, others_failed; /* process 0: units the others ran */
    char *outbox;                /* the others: lines of the last unit, for process 0 */
    size_t outbox_n, outbox_cap;
    int held_pre;                /* the others: the case whose pre line they were sent */
} run_ctx;

static int64_t unit_index(const run_ctx *r, int ci, int mi, int ei) {
    return ((int64_t)ci * r->o->n_methods + mi) * r->n_edit_langs + ei;
}

static xle_status check_weights(run_ctx *r, xle_error *err) {
    xle_weights *w = xle_model_weights(r->model);
    for (int i = 0; i < r->wc.n; i++) {
        const xle_tensor *t = &w->layers[r->wc.layers[i]].w_down;
        if (t->data != r->wc.views[i].data || t->dtype != r->wc.views[i].dtype ||
            tensor_hash(t) != r->wc.hashes[i])
            return xle_fail(err, XLE_ERR_NUMERIC, "evaluation: layer %d: the down projection was not "
                            "restored exactly after an edit", r->wc.layers[i]);
    }
    return XLE_OK;
}

static void weight_check_init(run_ctx *r) {
    xle_weights *w = xle_model_weights(r->model);
    for (int mi = 0; mi < r->o->n_methods; mi++) {
        const xle_edit_hparams *hp = &r->o->hparams[mi];
        for (int k = 0; k < hp->n_layers; k++) {
            int l = hp->layers[k], seen = 0;
            for (int i = 0; i < r->wc.n; i++) seen |= r->wc.layers[i] == l;
            if (seen || r->wc.n == (int)(sizeof r->wc.layers / sizeof r->wc.layers[0])) continue;
            r->wc.layers[r->wc.n] = l;
            r->wc.views[r->wc.n] = w->layers[l].w_down;
            r->wc.hashes[r->wc.n] = tensor_hash(&w->layers[l].w_down);
            r->wc.n++;
        }
    }
}

/* The halves of case c that are tested: every test language it has with a prompt and a
 * target. */
static int test_halves(const run_ctx *r, const xle_case *c, const xle_case_lang **out) {
    int n = 0;
    for (int t = 0; t < r->n_test_langs; t++) {
        const xle_case_lang *l = xle_case_lang_find(c, r->test_langs[t]);
        if (!l) continue;
        xle_case_problem p;
        if (xle_case_lang_check(l, XLE_MATCH_EXACT, &p, NULL, NULL) != XLE_OK) continue;
        if (p == XLE_CASE_NO_PROMPT || p == XLE_CASE_NO_TARGET) continue;
        out[n++] = l;
    }
    return n;
}

/* ---- where lines go ------------------------------------------------------------------------ */

/* Process 0, lock held: appends text (owned) to results.jsonl, or to pre.jsonl unless the
 * case's pre line is there already (two processes may compute the same case's). */
static xle_status write_line_locked(run_ctx *r, int is_pre, int ci, char *text, xle_error *err) {
    if (!is_pre) {
        xle_status st = xle_jsonl_append_text(&r->results, text, strlen(text), err);
        free(text);
        return st;
    }
    if (r->pre_text[ci]) {
        free(text);
        return XLE_OK;
    }
    xle_status st = xle_jsonl_append_text(&r->pre, text, strlen(text), err);
    if (st == XLE_OK) r->pre_text[ci] = text;
    else free(text);
    return st;
}

/* A line of results.jsonl (is_pre 0) or pre.jsonl (1) about case ci: appended to the file (one
 * process; process 0 under its lock) or kept for the next message to process 0. */
static xle_status emit_line(run_ctx *r, int is_pre, int ci, json_t *line, xle_error *err) {
    if (!r->shared) return xle_jsonl_append(is_pre ? &r->pre : &r->results, line, err);
    char *text = xle_jsonl_text(line);
    if (!text) return xle_fail(err, XLE_ERR_NOMEM, "case %d: cannot encode a line", ci);
    if (r->lead) {
        pthread_mutex_lock(&r->lock);
        xle_status st = write_line_locked(r, is_pre, ci, text, err);
        pthread_mutex_unlock(&r->lock);
        return st;
    }
    size_t n = strlen(text);
    if (r->outbox_n + n + 2 > r->outbox_cap) {
        size_t cap = (r->outbox_n + n + 2) * 2;
        char *p = realloc(r->outbox, cap);
        if (!p) {
            free(text);
            return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
        }
        r->outbox = p, r->outbox_cap = cap;
    }
    r->outbox[r->outbox_n++] = is_pre ? 'P' : 'R';
    memcpy(r->outbox + r->outbox_n, text, n);
    r->outbox_n += n;
    r->outbox[r->outbox_n++] = '\n';
    free(text);
    return XLE_OK;
}

/* Case ci's pre.jsonl line if this process has it: read from the file, sent by process 0, or
 * (on process 0) written for another process. Borrowed; NULL or JSON null when unknown. */
static json_t *known_pre(run_ctx *r, int ci) {
    json_t *line = json_array_get(r->pre_lines, (size_t)ci);
    if ((line && !json_is_null(line)) || !r->shared || !r->lead) return line;
    pthread_mutex_lock(&r->lock);
    json_t *v = r->pre_text[ci] ? json_loads(r->pre_text[ci], 0, NULL) : NULL;
    pthread_mutex_unlock(&r->lock);
    if (v && json_array_set_new(r->pre_lines, (size_t)ci, v) == 0) return v;
    return NULL;
}

/* The unedited model's evaluation of case ci (from pre.jsonl or computed and appended). */
static xle_status get_pre(run_ctx *r, int ci, const xle_case_lang **halves, int n, xle_half_eval *pre,
                          xle_error *err) {
    const xle_case *c = &r->cases->cases[ci];
    json_t *line = known_pre(r, ci);
    if (line && !json_is_null(line)) {
        const json_t *langs = json_object_get(line, "langs");
        xle_status st = XLE_OK;
        for (int k = 0; k < n && st == XLE_OK; k++) {
            const json_t *h = json_object_get(langs, halves[k]->lang);
            if (!h) st = xle_fail(err, XLE_ERR_FORMAT, "%s: case %s: no %s evaluation", r->pre.path, c->id, halves[k]->lang);
            else st = half_from_json(h, halves[k]->lang, &pre[k], r->pre.path, err);
        }
        return st;
    }
    xle_status st = xle_halves_eval_whole(r->model, r->tok, r->o->chat, halves, n, XLE_ANSWER_EXTRA_TOKENS, pre, err);
    if (st != XLE_OK) return st;
    json_t *langs = json_object();
    for (int k = 0; k < n && st == XLE_OK; k++) {
        double m[XLE_METRIC_COUNT];
        if ((st = xle_half_metrics(r->tok, &pre[k], NULL, m, err)) == XLE_OK &&
            json_object_set_new(langs, halves[k]->lang, half_json(&pre[k], m)) != 0)
            st = xle_fail(err, XLE_ERR_NOMEM, "%s: case %s: cannot encode the evaluation", r->pre.path, c->id);
    }
    json_t *obj = json_pack("{s:s, s:i, s:o}", "case", c->id, "case_index", ci, "langs", langs);
    if (st == XLE_OK) st = obj ? emit_line(r, 1, ci, obj, err) : xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    json_decref(obj);
    return st;
}

xle_status xle_case_edit_request(const xle_case_lang *l, xle_match loosest, xle_edit_request *req,
                               char **subject_buf, xle_case_problem *problem, xle_error *err) {
    *subject_buf = NULL;
    xle_match how;
    xle_status st = xle_case_lang_check(l, loosest, problem, &how, err);
    if (st != XLE_OK || *problem != XLE_CASE_USABLE) return st;
    req->prompt = l->prompt;
    req->subject = l->subject;
    req->target = l->target_new;
    if (how != XLE_MATCH_EXACT) {
        size_t a, b;
        xle_match m2;
        if ((st = xle_subject_locate(l->prompt, l->subject, loosest, &m2, &a, &b, err)) != XLE_OK) return st;
        *subject_buf = malloc(b - a + 1);
        if (!*subject_buf) return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
        memcpy(*subject_buf, l->prompt + a, b - a);
        (*subject_buf)[b - a] = 0;
        req->subject = *subject_buf;
    }
    return XLE_OK;
}

static json_t *unit_head(const xle_case *c, int ci, const xle_edit_hparams *hp, const char *edit_lang,
                         const char *status) {
    return json_pack("{s:s, s:i, s:s, s:s, s:s}", "case", c->id, "case_index", ci, "method",
                     xle_edit_method_name(hp->method), "edit_lang", edit_lang, "status", status);
}

/* The metrics and answers of every test half: post against pre (shared by edited and
 * in-context units). */
static xle_status tests_json(run_ctx *r, const xle_case *c, const xle_case_lang **tests, int n_tests,
                             const xle_half_eval *post, const xle_half_eval *pre, json_t **out,
                             xle_error *err) {
    xle_status st = XLE_OK;
    json_t *tj = json_object();
    for (int k = 0; k < n_tests && st == XLE_OK; k++) {
        double m[XLE_METRIC_COUNT];
        if ((st = xle_half_metrics(r->tok, &post[k], &pre[k], m, err)) != XLE_OK) break;
        json_t *probes = json_array();
        for (int q = 0; q < post[k].n_qa; q++) {
            const xle_qa_eval *a = &post[k].qa[q], *b = &pre[k].qa[q];
            /* before/after: as long as the expected answer (what the metrics compare); *_whole:
             * the same answers decoded on to the end of the word, for people to read */
            if (json_array_append_new(probes, json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:s?, s:s?, s:o}", "kind",
                                                        xle_qa_kind_name(a->kind), "prompt", b->prompt,
                                                        "expected", a->answer, "before", b->greedy,
                                                        "after", a->greedy, "before_whole", b->greedy_whole,
                                                        "after_whole", a->greedy_whole, "acc", num(a->acc))) != 0)
                st = xle_fail(err, XLE_ERR_NOMEM, "case %s: cannot encode the answers", c->id);
        }
        json_object_set_new(tj, tests[k]->lang, json_pack("{s:o, s:o}", "metrics", metrics_json(m), "probes", probes));
    }
    if (st != XLE_OK) json_decref(tj);
    else *out = tj;
    return st;
}

/* An in-context (IKE) unit: no weight changes; the context (new fact in the edit language and
 * demonstrations from other cases) goes before every test prompt. */
static xle_status run_ike_unit(run_ctx *r, int ci, int mi, int ei, const xle_case_lang **tests, int n_tests,
                               const xle_half_eval *pre, xle_error *err) {
    const xle_case *c = &r->cases->cases[ci];
    const method_state *ms = &r->methods[mi];
    const char *edit_lang = r->edit_langs[ei];
    const xle_case_lang *l = xle_case_lang_find(c, edit_lang);
    const char *skip = !strcmp(edit_lang, ALL_LANGS) ? "ike: one edit language at a time"
                       : !l ? "no half in the edit language"
                       : (!l->prompt[0] || !l->target_new[0]) ? "no prompt or target in the edit language" : NULL;
    json_t *line = NULL;
    if (skip) {
        line = unit_head(c, ci, ms->hp, edit_lang, "skipped");
        json_object_set_new(line, "reason", json_string(skip));
        r->sum.n_skipped++;
        xle_status st = emit_line(r, 0, ci, line, err);
        json_decref(line);
        return st;
    }
    int n = n_tests > 0 ? n_tests : 1, longest = 0, n_demos = 0;
    xle_case_lang *halves = calloc((size_t)n, sizeof *halves);
    const xle_case_lang **hp = calloc((size_t)n, sizeof *hp);
    xle_half_eval *post = calloc((size_t)n, sizeof *post);
    char *ctx = NULL;
    xle_status st = halves && hp && post ? XLE_OK : xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    if (st == XLE_OK) st = xle_ike_longest_question(r->tok, tests, n_tests, &longest, err);
    if (st == XLE_OK)
        st = xle_ike_context(r->tok, r->cases, ci, edit_lang, ms->hp->ike_k, ms->hp->seed,
                             xle_model_config(r->model)->max_seq_len - longest, &ctx, &n_demos, err);
    int n_made = 0;
    for (; st == XLE_OK && n_made < n_tests; n_made++) {
        st = xle_ike_half(ctx, tests[n_made], &halves[n_made], err);
        hp[n_made] = &halves[n_made];
    }
    if (st == XLE_OK)
        st = xle_halves_eval_whole(r->model, r->tok, r->o->chat, hp, n_tests, XLE_ANSWER_EXTRA_TOKENS, post, err);
    json_t *tj = NULL;
    if (st == XLE_OK) st = tests_json(r, c, tests, n_tests, post, pre, &tj, err);
    if (st == XLE_OK) {
        line = unit_head(c, ci, ms->hp, edit_lang, "ok");
        json_object_set_new(line, "edited", json_pack("[s]", edit_lang));
        json_object_set_new(line, "context", json_string(ctx));
        json_object_set_new(line, "demos", json_integer(n_demos));
        json_object_set_new(line, "tests", tj);
        st = emit_line(r, 0, ci, line, err);
    }
    for (int k = 0; k < n_made; k++) xle_ike_half_free(&halves[k]);
    for (int k = 0; post && k < n_tests; k++) xle_half_eval_free(&post[k]);
    free(halves), free(hp), free(post), free(ctx);
    json_decref(line);
    return st;
}

/* Runs one unit and appends its line. */
static xle_status run_unit(run_ctx *r, int ci, int mi, int ei, const xle_case_lang **tests, int n_tests,
                           const xle_half_eval *pre, xle_error *err) {
    if (r->methods[mi].hp->method == XLE_EDIT_IKE) return run_ike_unit(r, ci, mi, ei, tests, n_tests, pre, err);
    const xle_case *c = &r->cases->cases[ci];
    const method_state *ms = &r->methods[mi];
    const char *edit_lang = r->edit_langs[ei];
    int all = !strcmp(edit_lang, ALL_LANGS);
    xle_edit_request_tok *toks = calloc((size_t)r->n_edit_langs, sizeof *toks);
    char **subjects = calloc((size_t)r->n_edit_langs, sizeof *subjects);
    json_t *edited = json_array(), *line = NULL;
    xle_half_eval *post = calloc((size_t)(n_tests > 0 ? n_tests : 1), sizeof *post);
    xle_weight_swap swaps[XLE_EDIT_MAX_LAYERS * 4];
    memset(swaps, 0, sizeof swaps);
    xle_edit_result res = {0};
    int n_req = 0, n_swaps = 0;
    const char *skip = NULL;
    char skip_buf[600];
    xle_status st = XLE_OK;
    if (!toks || !subjects || !edited || !post) {
        st = xle_fail(err, XLE_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* the requests: the edit language's half, or every edit language's usable half */
    for (int k = 0; k < r->n_edit_langs && st == XLE_OK; k++) {
        if (all ? !strcmp(r->edit_langs[k], ALL_LANGS) : k != ei) continue;
        const xle_case_lang *l = xle_case_lang_find(c, r->edit_langs[k]);
        if (!l) {
            if (!all) skip = "no half in the edit language";
            continue;
        }
        xle_edit_request req;
        xle_case_problem problem;
        if ((st = xle_case_edit_request(l, r->o->subject_match, &req, &subjects[k], &problem, err)) != XLE_OK) break;
        if (problem != XLE_CASE_USABLE) {
            if (!all) skip = xle_case_problem_name(problem);
            continue;
        }
        xle_error e2 = {0};
        xle_status ts = xle_edit_request_tokenize(r->tok, &req, ms->ct, &toks[n_req], &e2);
        if (ts == XLE_ERR_NOT_FOUND || ts == XLE_ERR_ARG) {
            if (!all) {
                snprintf(skip_buf, sizeof skip_buf, "request: %s", e2.msg);
                skip = skip_buf;
            }
            continue;
        }
        if (ts != XLE_OK) {
            *err = e2;
            st = ts;
            break;
        }
        n_req++;
        json_array_append_new(edited, json_string(l->lang));
    }
    if (st != XLE_OK) goto done;
    if (!skip && n_req == 0) skip = "no usable half in the edit languages";
    if (skip) {
        line = unit_head(c, ci, ms->hp, edit_lang, "skipped");
        json_object_set_new(line, "reason", json_string(skip));
        r->sum.n_skipped++;
        st = emit_line(r, 0, ci, line, err);
        goto done;
    }
    xle_error e2 = {0};
    xle_status es = xle_edit_run_memo(r->model, ms->hp, toks, n_req, ms->stats, r->memo, &res, &e2);
    if (es == XLE_ERR_NUMERIC) {
        line = unit_head(c, ci, ms->hp, edit_lang, "failed");
        json_object_set_new(line, "error", json_string(e2.msg));
        r->sum.n_failed++;
        st = emit_line(r, 0, ci, line, err);
        goto done;
    }
    if (es != XLE_OK) {
        *err = e2;
        st = es;
        goto done;
    }
    for (int i = 0; i < res.n_deltas && st == XLE_OK; i++, n_swaps++)
        st = xle_weight_swap_apply(r->model, &res.deltas[i], &swaps[i], err);
    if (st == XLE_OK)
        st = xle_halves_eval_whole(r->model, r->tok, r->o->chat, tests, n_tests, XLE_ANSWER_EXTRA_TOKENS, post, err);
    for (int i = n_swaps - 1; i >= 0; i--) xle_weight_swap_restore(&swaps[i]);
    n_swaps = 0;
    if (st == XLE_OK) st = check_weights(r, err);
    if (st != XLE_OK) goto done;

    json_t *tj = NULL;
    if ((st = tests_json(r, c, tests, n_tests, post, pre, &tj, err)) != XLE_OK) goto done;
    line = unit_head(c, ci, ms->hp, edit_lang, "ok");
    json_object_set_new(line, "edited", json_incref(edited));
    json_object_set_new(line, "loss", num(res.final_loss));
    json_object_set_new(line, "steps", json_integer(res.steps));
    json_object_set_new(line, "tests", tj);
    if (st == XLE_OK) st = emit_line(r, 0, ci, line, err);
done:
    for (int i = n_swaps - 1; i >= 0; i--) xle_weight_swap_restore(&swaps[i]);
    for (int k = 0; k < n_tests && post; k++) xle_half_eval_free(&post[k]);
    for (int k = 0; k < n_req; k++) xle_edit_request_tok_free(&toks[k]);
    for (int k = 0; subjects && k < r->n_edit_langs; k++) free(subjects[k]);
    free(post), free(toks), free(subjects);
    json_decref(edited);
    json_decref(line);
    xle_edit_result_free(&res);
    return st;
}

/* ---- setup --------------------------------------------------------------------------------- */

static int lang_in(char (*langs)[XLE_LANG_MAX], int n, const char *l) {
    for (int i = 0; i < n; i++)
        if (!strcmp(langs[i], l)) return 1;
    return 0;
}

/* Resolves a language list against the data: NULL gives the data's languages (plus "all" for
 * edit languages); every listed language must be in the data. */
static xle_status resolve_langs(run_ctx *r, const char *const *given, int n_given, int edit,
                                char (**out)[XLE_LANG_MAX], int *n_out, xle_error *err) {
    char data_langs[256][XLE_LANG_MAX];
    int nd = xle_cases_lang_list(r->cases, data_langs, 256);
    if (nd > 256) nd = 256;
    int cap = (given ? n_given : nd) + 1;
    *out = calloc((size_t)cap, sizeof **out);
    if (!*out) return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    *n_out = 0;
    const char *what = edit ? "edit language" : "test language";
    if (!given) {
        for (int i = 0; i < nd; i++) memcpy((*out)[(*n_out)++], data_langs[i], XLE_LANG_MAX);
        if (edit && nd > 1) snprintf((*out)[(*n_out)++], XLE_LANG_MAX, "%s", ALL_LANGS);
        return *n_out ? XLE_OK : xle_fail(err, XLE_ERR_ARG, "%s: no cases", r->o->data_path);
    }
    for (int i = 0; i < n_given; i++) {
        const char *l = given[i];
        if (strlen(l) >= XLE_LANG_MAX || !*l)
            return xle_fail(err, XLE_ERR_ARG, "%s '%s': not a language code", what, l);
        if (lang_in(*out, *n_out, l)) return xle_fail(err, XLE_ERR_ARG, "%s '%s' given twice", what, l);
        if (!(edit && !strcmp(l, ALL_LANGS)) && !lang_in(data_langs, nd, l))
            return xle_fail(err, XLE_ERR_ARG, "%s '%s': no case in %s has it", what, l, r->o->data_path);
        snprintf((*out)[(*n_out)++], XLE_LANG_MAX, "%s", l);
    }
    return *n_out ? XLE_OK : xle_fail(err, XLE_ERR_ARG, "no %ss", what);
}

static json_t *langs_json(char (*langs)[XLE_LANG_MAX], int n) {
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_string(langs[i]));
    return a;
}

static const char *match_name(xle_match m) {
    return m == XLE_MATCH_STEM ? "stem" : m == XLE_MATCH_CASELESS ? "caseless" : "exact";
}

/* Templates: RUN_DIR/templates-METHOD.txt when a previous session saved them, else sampled /
 * loaded / bare (saved by save_templates once run.json is settled). FT methods use none. */
static xle_status method_templates(run_ctx *r, int mi, xle_error *err) {
    const xle_edit_hparams *hp = &r->o->hparams[mi];
    char name[64];
    snprintf(name, sizeof name, "templates-%s.txt", xle_edit_method_name(hp->method));
    char *path = xle_path_join_dir(r->o->run_dir, name);
    if (!path) return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    method_state *ms = &r->methods[mi];
    const char *spec = r->o->context_templates;
    xle_status st;
    if (hp->method == XLE_EDIT_FT_L || hp->method == XLE_EDIT_FT_M || hp->method == XLE_EDIT_IKE ||
        (spec && !strcmp(spec, "none")))
        st = xle_context_templates_none(&ms->ct, err);
    else if (spec)
        st = xle_context_templates_load(spec, &ms->ct, err);
    else if (access(path, R_OK) == 0)
        st = xle_context_templates_load(path, &ms->ct, err);
    else
        st = xle_context_templates_sample(r->model, r->tok, hp, &ms->ct, err);
    free(path);
    return st;
}

static xle_status save_templates(run_ctx *r, int mi, xle_error *err) {
    char name[64];
    snprintf(name, sizeof name, "templates-%s.txt", xle_edit_method_name(r->o->hparams[mi].method));
    char *path = xle_path_join_dir(r->o->run_dir, name);
    if (!path) return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    xle_status st = xle_context_templates_save(r->methods[mi].ct, path, err);
    free(path);
    return st;
}

/* run.json: "config" must match on --resume; "info" is for people. */
static xle_status check_run_json(run_ctx *r, const char *data_hash, const char *fingerprint, xle_error *err) {
    const xle_eval_opts *o = r->o;
    json_t *methods = json_array();
    for (int mi = 0; mi < o->n_methods; mi++) {
        json_t *tpl = json_array();
        for (int i = 0; r->methods[mi].ct && i < r->methods[mi].ct->n; i++)
            json_array_append_new(tpl, json_string(r->methods[mi].ct->texts[i]));
        json_t *m = xle_eval_hparams_json(&o->hparams[mi]);
        json_object_set_new(m, "context_templates", tpl);
        json_array_append_new(methods, m);
    }
    json_t *config = json_pack("{s:s, s:s, s:s, s:i, s:o, s:o, s:o, s:s}", "format", RUN_FORMAT,
                               "model_fingerprint", fingerprint, "data_hash", data_hash, "cases",
                               r->n_cases, "methods", methods, "edit_langs",
                               langs_json(r->edit_langs, r->n_edit_langs), "test_langs",
                               langs_json(r->test_langs, r->n_test_langs), "subject_match",
                               match_name(o->subject_match));
    /* only when set, so that runs made before --chat existed still resume */
    if (config && o->chat) json_object_set_new(config, "chat_template", json_string(xle_chat_template_family(o->chat)));
    json_t *info = json_pack("{s:s, s:s, s:s?, s:s?}", "tool", "xledit " XLE_VERSION_STRING, "data", o->data_path,
                             "model", xle_model_path(r->model), "stats", o->stats_dir);
    json_t *doc = json_pack("{s:o, s:o}", "config", config, "info", info);
    xle_status st = doc ? xle_run_description_check(o->run_dir, "run.json", "a run", doc, o->resume, err)
                        : xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    json_decref(doc);
    return st;
}

/* One line of results.jsonl from an earlier session: marks its unit finished. */
static xle_status note_done(void *user, json_t *l, size_t line_no, xle_error *err) {
    run_ctx *r = user;
    json_int_t ci = json_integer_value(json_object_get(l, "case_index"));
    const char *id = json_string_value(json_object_get(l, "case")),
               *m = json_string_value(json_object_get(l, "method")),
               *el = json_string_value(json_object_get(l, "edit_lang")),
               *status = json_string_value(json_object_get(l, "status"));
    int mi = -1, ei = -1;
    for (int k = 0; m && k < r->o->n_methods; k++)
        if (!strcmp(m, xle_edit_method_name(r->o->hparams[k].method))) mi = k;
    for (int k = 0; el && k < r->n_edit_langs; k++)
        if (!strcmp(el, r->edit_langs[k])) ei = k;
    if (ci < 0 || ci >= r->n_cases || !id || strcmp(id, r->cases->cases[ci].id) || mi < 0 || ei < 0 || !status)
        return xle_fail(err, XLE_ERR_FORMAT, "%s/results.jsonl:%zu: not a unit of this run", r->o->run_dir, line_no);
    int64_t u = unit_index(r, (int)ci, mi, ei);
    if (r->done[u]) return XLE_OK;
    r->done[u] = 1;
    r->sum.n_resumed++;
    if (!strcmp(status, "skipped")) r->sum.n_skipped++;
    if (!strcmp(status, "failed")) r->sum.n_failed++;
    return XLE_OK;
}

/* One line of pre.jsonl: kept for its case. */
static xle_status note_pre(void *user, json_t *l, size_t line_no, xle_error *err) {
    run_ctx *r = user;
    json_int_t ci = json_integer_value(json_object_get(l, "case_index"));
    const char *id = json_string_value(json_object_get(l, "case"));
    if (ci < 0 || ci >= r->n_cases || !id || strcmp(id, r->cases->cases[ci].id))
        return xle_fail(err, XLE_ERR_FORMAT, "%s/pre.jsonl:%zu: not a case of this run", r->o->run_dir, line_no);
    json_array_set(r->pre_lines, (size_t)ci, l);
    return XLE_OK;
}

/* Reads what earlier sessions finished (cutting a torn last line off either file). */
static xle_status load_done(run_ctx *r, xle_error *err) {
    char *results = xle_path_join_dir(r->o->run_dir, "results.jsonl"),
         *pre = xle_path_join_dir(r->o->run_dir, "pre.jsonl");
    xle_status st = results && pre ? xle_jsonl_each(results, note_done, r, err)
                                   : xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    if (st == XLE_OK) st = xle_jsonl_each(pre, note_pre, r, err);
    free(results);
    free(pre);
    return st;
}

/* ---- several processes ---------------------------------------------------------------------- */

/* The case a process is on: its test halves and unedited evaluation, kept across its units. */
typedef struct case_cache {
    int ci, n_tests;
    const xle_case_lang **tests;
    xle_half_eval *pre;
} case_cache;

static xle_status run_unit_at(run_ctx *r, case_cache *cc, int64_t u, xle_error *err) {
    int per_case = r->o->n_methods * r->n_edit_langs;
    int ci = (int)(u / per_case), mi = (int)(u % per_case) / r->n_edit_langs, ei = (int)(u % r->n_edit_langs);
    if (cc->ci != ci) {
        for (int k = 0; k < cc->n_tests; k++) xle_half_eval_free(&cc->pre[k]);
        cc->ci = -1;
        xle_edit_memo_clear(r->memo); /* units of one case share their requests, no others */
        cc->n_tests = test_halves(r, &r->cases->cases[ci], cc->tests);
        xle_status st = get_pre(r, ci, cc->tests, cc->n_tests, cc->pre, err);
        if (st != XLE_OK) return st;
        cc->ci = ci;
    }
    return run_unit(r, ci, mi, ei, cc->tests, cc->n_tests, cc->pre, err);
}

/* Process 0, lock held: one more unit finished somewhere. */
static void count_finished_locked(run_ctx *r) {
    r->finished++;
    if (r->o->progress && r->o->progress(r->o->progress_user, r->finished, r->n_units))
        r->stopping = r->interrupted = 1;
}

/* Process 0: the lines another process sent with its request ('R' results line, 'P' pre line,
 * each ending in a newline), written as process 0 writes its own. */
static xle_status take_lines(run_ctx *r, int from, const char *msg, size_t n, xle_error *err) {
    xle_status st = XLE_OK;
    for (size_t at = 0; at < n && st == XLE_OK;) {
        const char *nl = memchr(msg + at, '\n', n - at);
        if (!nl || nl == msg + at) return xle_fail(err, XLE_ERR_FORMAT, "process %d: a malformed message", from);
        size_t len = (size_t)(nl - (msg + at));
        char tag = msg[at];
        json_t *v = json_loadb(msg + at + 1, len - 1, 0, NULL);
        json_int_t ci = json_integer_value(json_object_get(v, "case_index"));
        const char *status = json_string_value(json_object_get(v, "status"));
        char *text = malloc(len);
        if (!v || (tag != 'R' && tag != 'P') || ci < 0 || ci >= r->n_cases || (tag == 'R' && !status)) {
            st = xle_fail(err, XLE_ERR_FORMAT, "process %d: a malformed line", from);
        } else if (!text) {
            st = xle_fail(err, XLE_ERR_NOMEM, "out of memory");
        } else {
            memcpy(text, msg + at + 1, len - 1);
            text[len - 1] = 0;
            pthread_mutex_lock(&r->lock);
            st = write_line_locked(r, tag == 'P', (int)ci, text, err);
            text = NULL;
            if (st == XLE_OK && tag == 'P') r->pre_case[from] = (int)ci;
            if (st == XLE_OK && tag == 'R') {
                r->others_done++;
                r->others_skipped += !strcmp(status, "skipped");
                r->others_failed += !strcmp(status, "failed");
                count_finished_locked(r);
            }
            pthread_mutex_unlock(&r->lock);
        }
        free(text);
        json_decref(v);
        at += len + 1;
    }
    return st;
}

/* Process 0's helper thread: answers every other process until each was told to stop. A
 * request carries the lines of the unit the process finished; the answer is "U<unit>\n"
 * followed by the case's pre line when the process lacks it and one is known, or "S" (stop). */
static void *serve_others(void *arg) {
    run_ctx *r = arg;
    const xle_comm *comm = r->o->comm;
    int per_case = r->o->n_methods * r->n_edit_langs;
    char *reply = NULL;
    size_t reply_cap = 0;
    for (int active = comm->size - 1; active > 0;) {
        int from = -1;
        char *msg = NULL;
        size_t n = 0;
        xle_error e = {0};
        xle_status st = XLE_OK;
        if (comm->recv(comm->user, &from, &msg, &n) != 0 || from <= 0 || from >= comm->size)
            st = xle_fail(&e, XLE_ERR_IO, "evaluation: receiving from the other processes failed");
        else
            st = take_lines(r, from, msg, n, &e);
        free(msg);
        pthread_mutex_lock(&r->lock);
        if (st != XLE_OK && r->helper_st == XLE_OK) r->helper_st = st, r->helper_err = e;
        if (st != XLE_OK) r->stopping = 1;
        int64_t u = r->stopping ? -1 : xle_unit_queue_next(&r->queue, from);
        int ci = u >= 0 ? (int)(u / per_case) : -1;
        const char *pre = ci >= 0 && r->pre_case[from] != ci ? r->pre_text[ci] : NULL;
        size_t need = 32 + (pre ? strlen(pre) : 0);
        if (need > reply_cap) {
            free(reply);
            reply = malloc(need);
            reply_cap = reply ? need : 0;
        }
        size_t len = 0;
        if (reply && u >= 0) {
            len = (size_t)snprintf(reply, 32, "U%lld\n", (long long)u);
            if (pre) memcpy(reply + len, pre, strlen(pre)), len += strlen(pre), r->pre_case[from] = ci;
        } else if (reply) {
            reply[len++] = 'S';
        }
        if (!reply && r->helper_st == XLE_OK)
            r->helper_st = xle_fail(&r->helper_err, XLE_ERR_NOMEM, "out of memory");
        pthread_mutex_unlock(&r->lock);
        if (!reply || from <= 0) break; /* cannot answer: process 0 fails, the job is ended */
        if (comm->send(comm->user, from, reply, len) != 0) {
            pthread_mutex_lock(&r->lock);
            if (r->helper_st == XLE_OK)
                r->helper_st = xle_fail(&r->helper_err, XLE_ERR_IO, "evaluation: sending to process %d failed", from);
            r->stopping = 1;
            pthread_mutex_unlock(&r->lock);
            break;
        }
        if (u < 0) active--;
    }
    free(reply);
    return NULL;
}

/* Process 0's own units, taken from the queue it shares with its helper thread. */
static xle_status lead_units(run_ctx *r, case_cache *cc, xle_error *err) {
    xle_status st = XLE_OK;
    for (;;) {
        pthread_mutex_lock(&r->lock);
        int64_t u = r->stopping ? -1 : xle_unit_queue_next(&r->queue, 0);
        pthread_mutex_unlock(&r->lock);
        if (u < 0) break;
        if ((st = run_unit_at(r, cc, u, err)) != XLE_OK) break;
        r->sum.n_done++;
        pthread_mutex_lock(&r->lock);
        count_finished_locked(r);
        pthread_mutex_unlock(&r->lock);
    }
    if (st != XLE_OK) {
        pthread_mutex_lock(&r->lock);
        r->stopping = 1;
        pthread_mutex_unlock(&r->lock);
    }
    return st;
}

/* Another process: asks process 0 for units (sending the lines of the last one) until told to
 * stop. */
static xle_status work_units(run_ctx *r, case_cache *cc, xle_error *err) {
    const xle_comm *comm = r->o->comm;
    int per_case = r->o->n_methods * r->n_edit_langs;
    for (;;) {
        int rc = comm->send(comm->user, 0, r->outbox, r->outbox_n);
        r->outbox_n = 0;
        int from = -1;
        char *msg = NULL;
        size_t n = 0;
        if (rc != 0 || comm->recv(comm->user, &from, &msg, &n) != 0)
            return xle_fail(err, XLE_ERR_IO, "evaluation: process %d: talking to process 0 failed", comm->rank);
        if (n == 0 || msg[0] != 'U') { /* "S": no more units */
            free(msg);
            return XLE_OK;
        }
        char *end = NULL;
        long long u = strtoll(msg + 1, &end, 10);
        int ci = (int)(u / per_case);
        if (u < 0 || u >= r->n_units || *end != '\n') {
            free(msg);
            return xle_fail(err, XLE_ERR_FORMAT, "evaluation: process 0 sent a malformed unit");
        }
        size_t pre_len = n - (size_t)(end + 1 - msg);
        if (pre_len > 0) { /* the case's pre line: the only one this process keeps */
            json_t *v = json_loadb(end + 1, pre_len, 0, NULL);
            if (r->held_pre >= 0) json_array_set_new(r->pre_lines, (size_t)r->held_pre, json_null());
            if (v) json_array_set_new(r->pre_lines, (size_t)ci, v), r->held_pre = ci;
        }
        free(msg);
        xle_status st = run_unit_at(r, cc, u, err);
        if (st != XLE_OK) return st;
        r->sum.n_done++;
    }
}

static xle_status run_shared(run_ctx *r, xle_error *err) {
    case_cache cc = {-1, 0, calloc((size_t)r->n_test_langs + 1, sizeof *cc.tests),
                     calloc((size_t)r->n_test_langs + 1, sizeof *cc.pre)};
    xle_status st = cc.tests && cc.pre ? XLE_OK : xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    if (st == XLE_OK && !r->lead) st = work_units(r, &cc, err);
    if (st == XLE_OK && r->lead) {
        const xle_comm *comm = r->o->comm;
        int per_case = r->o->n_methods * r->n_edit_langs;
        r->pre_text = calloc((size_t)r->n_cases + 1, sizeof *r->pre_text);
        r->pre_case = malloc((size_t)comm->size * sizeof *r->pre_case);
        if (!r->pre_text || !r->pre_case ||
            xle_unit_queue_init(&r->queue, r->n_cases, per_case, comm->size, r->done) != 0)
            st = xle_fail(err, XLE_ERR_NOMEM, "out of memory");
        for (int p = 0; st == XLE_OK && p < comm->size; p++) r->pre_case[p] = -1;
        for (int ci = 0; st == XLE_OK && ci < r->n_cases; ci++) { /* pre lines of earlier sessions */
            json_t *l = json_array_get(r->pre_lines, (size_t)ci);
            if (l && !json_is_null(l) && !(r->pre_text[ci] = xle_jsonl_text(l)))
                st = xle_fail(err, XLE_ERR_NOMEM, "out of memory");
        }
        pthread_t helper;
        int have_helper = 0;
        if (st == XLE_OK && pthread_mutex_init(&r->lock, NULL) != 0)
            st = xle_fail(err, XLE_ERR_NOMEM, "evaluation: cannot create a lock");
        if (st == XLE_OK) {
            if (pthread_create(&helper, NULL, serve_others, r) != 0)
                st = xle_fail(err, XLE_ERR_NOMEM, "evaluation: cannot start the thread serving the other processes");
            else
                have_helper = 1;
            xle_status own = st == XLE_OK ? lead_units(r, &cc, err) : st;
            if (have_helper) pthread_join(helper, NULL);
            pthread_mutex_destroy(&r->lock);
            st = own;
        }
        if (st == XLE_OK && r->helper_st != XLE_OK) {
            st = r->helper_st;
            *err = r->helper_err;
        }
        r->sum.n_done += r->others_done;
        r->sum.n_skipped += r->others_skipped;
        r->sum.n_failed += r->others_failed;
        if (st == XLE_OK && r->interrupted)
            st = xle_fail(err, XLE_ERR_INTERRUPTED, "interrupted after %lld of %lld units (finished units "
                          "are kept; continue with --resume)", (long long)r->finished, (long long)r->n_units);
        for (int ci = 0; r->pre_text && ci < r->n_cases; ci++) free(r->pre_text[ci]);
        free(r->pre_text), free(r->pre_case);
        xle_unit_queue_free(&r->queue);
    }
    for (int k = 0; k < cc.n_tests; k++) xle_half_eval_free(&cc.pre[k]);
    free(cc.tests), free(cc.pre);
    return st;
}

/* Keys that put a finished run's files in unit order (xle_jsonl_sort). */
static int64_t unit_key(void *user, const json_t *l) {
    run_ctx *r = user;
    const char *m = json_string_value(json_object_get(l, "method")), *el = json_string_value(json_object_get(l, "edit_lang"));
    json_int_t ci = json_integer_value(json_object_get(l, "case_index"));
    int mi = -1, ei = -1;
    for (int k = 0; m && k < r->o->n_methods; k++)
        if (!strcmp(m, xle_edit_method_name(r->o->hparams[k].method))) mi = k;
    for (int k = 0; el && k < r->n_edit_langs; k++)
        if (!strcmp(el, r->edit_langs[k])) ei = k;
    return ci < 0 || ci >= r->n_cases || mi < 0 || ei < 0 ? -1 : unit_index(r, (int)ci, mi, ei);
}

static int64_t case_key(void *user, const json_t *l) {
    json_int_t ci = json_integer_value(json_object_get(l, "case_index"));
    return ci >= 0 && ci < ((run_ctx *)user)->n_cases ? ci : -1;
}

/* A finished run's files in unit (and case) order: several processes append lines as they
 * finish, so this gives the files one process writes; those already in order are untouched. */
static xle_status put_in_order(run_ctx *r, xle_error *err) {
    char *results = xle_path_join_dir(r->o->run_dir, "results.jsonl"),
         *pre = xle_path_join_dir(r->o->run_dir, "pre.jsonl");
    xle_status st = results && pre ? xle_jsonl_sort(results, unit_key, r, err)
                                   : xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    if (st == XLE_OK) st = xle_jsonl_sort(pre, case_key, r, err);
    free(results);
    free(pre);
    return st;
}

xle_status xle_eval_run(xle_model *model, const xle_eval_opts *o, xle_eval_summary *sum_out,
                        xle_error *err) {
    run_ctx r;
    memset(&r, 0, sizeof r);
    r.results.fd = r.pre.fd = -1;
    r.model = model;
    r.o = o;
    r.tok = xle_model_tokenizer(model);
    r.shared = o->comm && o->comm->size > 1;
    r.lead = !r.shared || o->comm->rank == 0;
    r.held_pre = -1;
    xle_status st = XLE_OK;
    char *data = NULL;
    if (!o->data_path || !o->run_dir || !o->hparams || o->n_methods <= 0)
        return xle_fail(err, XLE_ERR_ARG, "evaluation: data, run directory and methods are required");
    if (!r.tok) return xle_fail(err, XLE_ERR_ARG, "%s: no tokenizer found beside the model", xle_model_path(model));
    for (int i = 0; i < o->n_methods; i++)
        for (int k = 0; k < i; k++)
            if (o->hparams[i].method == o->hparams[k].method)
                return xle_fail(err, XLE_ERR_ARG, "evaluation: method %s given twice", xle_edit_method_name(o->hparams[i].method));
    for (int i = 0; o->chat && i < o->n_methods; i++)
        if (o->hparams[i].method == XLE_EDIT_IKE) /* its context budget counts plain prompts */
            return xle_fail(err, XLE_ERR_ARG, "evaluation: ike with a chat template is not supported");

    size_t data_len = 0;
    xle_status in = xle_in_check_file(o->data_path, err);
    if (in != XLE_OK) return in;
    if (!(data = xle_read_all(o->data_path, &data_len)))
        return xle_fail(err, XLE_ERR_IO, "%s: cannot read: %s", o->data_path, strerror(errno));
    char data_hash[33], fingerprint[65];
    xle_hash_hex((const unsigned char *)data, data_len, data_hash);
    free(data);
    xle_model_fingerprint(model, fingerprint);
    if ((st = xle_cases_load(o->data_path, &r.cases, err)) != XLE_OK) goto done;
    r.n_cases = o->max_cases > 0 && o->max_cases < r.cases->n ? o->max_cases : r.cases->n;
    if ((st = resolve_langs(&r, o->edit_langs, o->edit_langs ? o->n_edit_langs : 0, 1, &r.edit_langs,
                            &r.n_edit_langs, err)) != XLE_OK ||
        (st = resolve_langs(&r, o->test_langs, o->test_langs ? o->n_test_langs : 0, 0, &r.test_langs,
                            &r.n_test_langs, err)) != XLE_OK)
        goto done;
    if (r.lead && mkdir(o->run_dir, 0755) != 0 && errno != EEXIST) {
        st = xle_fail(err, XLE_ERR_IO, "%s: cannot create: %s", o->run_dir, strerror(errno));
        goto done;
    }
    r.methods = calloc((size_t)o->n_methods, sizeof *r.methods);
    r.pre_lines = json_array();
    int64_t n_units = (int64_t)r.n_cases * o->n_methods * r.n_edit_langs;
    r.done = calloc((size_t)(n_units > 0 ? n_units : 1), 1);
    if (!o->no_sharing) r.memo = xle_edit_memo_new();
    if (!r.methods || !r.pre_lines || !r.done || (!o->no_sharing && !r.memo)) {
        st = xle_fail(err, XLE_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int ci = 0; ci < r.n_cases; ci++) json_array_append_new(r.pre_lines, json_null());
    /* The others wait until process 0 has set the folder up (run.json checked, templates
     * saved, a torn line cut), then read the templates it saved. */
    int go = XLE_OK;
    if (r.shared && !r.lead && o->comm->bcast(o->comm->user, &go, sizeof go) != 0)
        go = xle_fail(err, XLE_ERR_IO, "evaluation: waiting for process 0 failed");
    else if (go != XLE_OK)
        go = xle_fail(err, (xle_status)go, "evaluation: process 0 could not set the run up (its message says why)");
    if ((st = (xle_status)go) != XLE_OK) goto done;
    for (int mi = 0; mi < o->n_methods && st == XLE_OK; mi++) {
        r.methods[mi].hp = &o->hparams[mi];
        st = method_templates(&r, mi, err);
    }
    for (int mi = 0; mi < o->n_methods && st == XLE_OK; mi++) {
        const xle_edit_hparams *hp = &o->hparams[mi];
        if (!xle_edit_hparams_need_stats(hp)) continue;
        if (!o->stats_dir) {
            st = xle_fail(err, XLE_ERR_ARG, "%s needs key statistics: give their directory", xle_edit_method_name(hp->method));
            break;
        }
        for (int k = 0; k < hp->n_layers && st == XLE_OK; k++)
            st = xle_stats_load(model, o->stats_dir, hp->layers[k], &r.methods[mi].stats[k], err);
    }
    if (st != XLE_OK) goto done;
    if (r.lead) { /* only process 0 writes the folder */
        if ((st = check_run_json(&r, data_hash, fingerprint, err)) != XLE_OK) goto done;
        for (int mi = 0; mi < o->n_methods && st == XLE_OK; mi++) st = save_templates(&r, mi, err);
        if (st != XLE_OK || (st = load_done(&r, err)) != XLE_OK) goto done;
        if ((st = xle_jsonl_open(&r.results, o->run_dir, "results.jsonl", err)) != XLE_OK ||
            (st = xle_jsonl_open(&r.pre, o->run_dir, "pre.jsonl", err)) != XLE_OK)
            goto done;
    }
    weight_check_init(&r);
    r.sum.n_cases = r.n_cases;
    r.sum.n_units = r.n_units = n_units;
    int64_t finished = r.finished = r.sum.n_resumed;
    if (r.shared && r.lead && o->comm->bcast(o->comm->user, &go, sizeof go) != 0) {
        st = xle_fail(err, XLE_ERR_IO, "evaluation: starting the other processes failed");
        goto done;
    }
    if (r.lead && o->progress && o->progress(o->progress_user, finished, n_units)) {
        st = xle_fail(err, XLE_ERR_INTERRUPTED, "interrupted before the first unit");
        goto done;
    }
    if (r.shared) {
        st = run_shared(&r, err);
        if (st == XLE_OK && r.lead) st = put_in_order(&r, err);
        goto done;
    }
    const xle_case_lang **tests = calloc((size_t)r.n_test_langs + 1, sizeof *tests);
    xle_half_eval *pre = calloc((size_t)r.n_test_langs + 1, sizeof *pre);
    if (!tests || !pre) st = xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    for (int ci = 0; ci < r.n_cases && st == XLE_OK; ci++) {
        int todo = 0;
        for (int64_t u = unit_index(&r, ci, 0, 0); u < unit_index(&r, ci + 1, 0, 0); u++) todo += !r.done[u];
        if (!todo) continue;
        int n_tests = test_halves(&r, &r.cases->cases[ci], tests);
        xle_edit_memo_clear(r.memo); /* units of one case share their requests, no others */
        st = get_pre(&r, ci, tests, n_tests, pre, err);
        for (int mi = 0; mi < o->n_methods && st == XLE_OK; mi++)
            for (int ei = 0; ei < r.n_edit_langs && st == XLE_OK; ei++) {
                if (r.done[unit_index(&r, ci, mi, ei)]) continue;
                if ((st = run_unit(&r, ci, mi, ei, tests, n_tests, pre, err)) != XLE_OK) break;
                r.sum.n_done++;
                finished++;
                if (o->progress && o->progress(o->progress_user, finished, n_units))
                    st = xle_fail(err, XLE_ERR_INTERRUPTED, "interrupted after %lld of %lld units "
                                  "(finished units are kept; continue with --resume)",
                                  (long long)finished, (long long)n_units);
            }
        for (int k = 0; k < n_tests; k++) xle_half_eval_free(&pre[k]);
    }
    free(tests);
    free(pre);
    if (st == XLE_OK) st = put_in_order(&r, err); /* lines an earlier shared session appended */
done:
    if (sum_out) *sum_out = r.sum;
    xle_jsonl_close(&r.results);
    xle_jsonl_close(&r.pre);
    for (int mi = 0; r.methods && mi < o->n_methods; mi++) {
        xle_context_templates_free(r.methods[mi].ct);
        for (int k = 0; k < XLE_EDIT_MAX_LAYERS; k++) xle_layer_stats_free(r.methods[mi].stats[k]);
    }
    free(r.methods);
    xle_edit_memo_free(r.memo);
    free(r.edit_langs);
    free(r.test_langs);
    free(r.done);
    json_decref(r.pre_lines);
    free(r.outbox);
    xle_cases_free(r.cases);
    return st;
}
