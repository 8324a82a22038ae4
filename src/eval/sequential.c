/*
 * sequential.c: sequential (lifelong) evaluation (docs/evaluation.md, "Sequential editing"):
 * for each method and edit language (a "stream"), the cases' edits are made one after another
 * in case order and kept, each computed on the model the earlier ones edited (AlphaEdit with its
 * accumulated keys). After checkpoints[i] edits every edit so far is evaluated in every test
 * language, the held-out cases (the last so->held_out, never edited) are compared with the
 * unedited model, and the perplexity of a fixed text is measured.
 *
 *   RUN_DIR/sequential.json                  what was asked (compared on --resume)
 *   RUN_DIR/sequential.jsonl                 one line per (method, edit language, checkpoint)
 *   RUN_DIR/sequential/METHOD-LANG.safetensors   the stream's edited down projections (f32)
 *                                            at its last checkpoint, and where it stood
 *   RUN_DIR/sequential/alphaedit-LANG/       AlphaEdit's state at that checkpoint
 *
 * Resume: a stream restarts from its saved weights (the exact f32 matrices, so every later
 * number is what an uninterrupted run computes) rather than replaying its edits, which would
 * cost as much as the run so far. The weights are saved at checkpoints only: edits after the
 * last one are made again. A stream's weights are written before its checkpoint's line, so a
 * line never describes weights that were not kept; a checkpoint whose weights were saved but
 * whose line is missing is evaluated on resume.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/outpath.h"
#include "edit/edit_internal.h"
#include "eval/eval_internal.h"
#include "eval/run_files.h"
#include "formats/safetensors.h"

#define SEQ_FORMAT "xledit-sequential-1"

typedef struct case_pre {
    int ready, n;
    const xle_case_lang **halves;   /* the case's test halves */
    xle_half_eval *pre;             /* their evaluation on the unedited model */
} case_pre;

typedef struct seq_ctx {
    xle_model *model;
    const xle_tokenizer *tok;
    const xle_eval_opts *o;
    const xle_sequential_opts *so;
    xle_cases *cases;
    int n_cases, n_edit_cases;      /* cases used; of them, those that may be edited */
    char (*edit_langs)[XLE_LANG_MAX];
    int n_edit_langs;
    char (*test_langs)[XLE_LANG_MAX];
    int n_test_langs;
    case_pre *pre;                  /* per case */
    xle_probe *fluency;             /* the fixed text's lines as probes */
    xle_tokens fluency_tokens;
    int n_fluency;
    json_t *done;                   /* "method/lang/edits" -> true for lines already written */
    jsonl_out out;
    int64_t finished, total;
    xle_eval_summary *sum;
} seq_ctx;

/* ---- setup ---------------------------------------------------------------------------------- */

static int lang_listed(char (*langs)[XLE_LANG_MAX], int n, const char *l) {
    for (int i = 0; i < n; i++)
        if (!strcmp(langs[i], l)) return 1;
    return 0;
}

/* The given languages (each in the data), or the data's languages. */
static xle_status pick_langs(seq_ctx *s, const char *const *given, int n_given, const char *what,
                             char (**out)[XLE_LANG_MAX], int *n_out, xle_error *err) {
    char data_langs[256][XLE_LANG_MAX];
    int nd = xle_cases_lang_list(s->cases, data_langs, 256);
    if (nd > 256) nd = 256;
    int n = given ? n_given : nd;
    *out = calloc((size_t)n + 1, sizeof **out);
    if (!*out) return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    *n_out = 0;
    for (int i = 0; i < n; i++) {
        const char *l = given ? given[i] : data_langs[i];
        if (!strcmp(l, "all"))
            return xle_fail(err, XLE_ERR_ARG, "%s 'all': a sequential run edits one language at a time", what);
        if (strlen(l) >= XLE_LANG_MAX || !lang_listed(data_langs, nd, l))
            return xle_fail(err, XLE_ERR_ARG, "%s '%s': no case in %s has it", what, l, s->o->data_path);
        if (lang_listed(*out, *n_out, l)) return xle_fail(err, XLE_ERR_ARG, "%s '%s' given twice", what, l);
        snprintf((*out)[(*n_out)++], XLE_LANG_MAX, "%s", l);
    }
    return *n_out ? XLE_OK : xle_fail(err, XLE_ERR_ARG, "%s: no cases", s->o->data_path);
}

/* The lines of the fluency text, each a probe: its first token given, the rest scored. */
static xle_status load_fluency(seq_ctx *s, xle_error *err) {
    if (!s->so->fluency_text) return XLE_OK;
    size_t len = 0;
    char *text = xle_read_all(s->so->fluency_text, &len);
    if (!text) return xle_fail(err, XLE_ERR_IO, "%s: cannot read: %s", s->so->fluency_text, strerror(errno));
    xle_status st = XLE_OK;
    int cap = 0;
    for (size_t i = 0; i < len; i++) cap += text[i] == '\n';
    cap++;
    int32_t *ids = NULL;
    size_t n_ids = 0, ids_cap = 0;
    int *start = calloc((size_t)cap + 1, sizeof *start), *count = calloc((size_t)cap + 1, sizeof *count);
    if (!start || !count) st = xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    for (size_t at = 0; st == XLE_OK && at < len;) {
        const char *nl = memchr(text + at, '\n', len - at);
        size_t n = nl ? (size_t)(nl - (text + at)) : len - at;
        if (n > 0) {
            xle_tokens t = {0};
            st = xle_tokenize(s->tok, text + at, n, 1, 0, &t, err);
            if (st == XLE_OK && t.n >= 2) {
                if (n_ids + (size_t)t.n > ids_cap) {
                    ids_cap = (n_ids + (size_t)t.n) * 2;
                    int32_t *p = realloc(ids, ids_cap * sizeof *ids);
                    if (!p) st = xle_fail(err, XLE_ERR_NOMEM, "out of memory");
                    else ids = p;
                }
                if (st == XLE_OK) {
                    memcpy(ids + n_ids, t.ids, (size_t)t.n * sizeof *ids);
                    start[s->n_fluency] = (int)n_ids, count[s->n_fluency] = t.n;
                    n_ids += (size_t)t.n;
                    s->n_fluency++;
                }
            }
            xle_tokens_free(&t);
        }
        at += n + 1;
    }
    free(text);
    if (st == XLE_OK && s->n_fluency == 0)
        st = xle_fail(err, XLE_ERR_ARG, "%s: no line of two or more tokens", s->so->fluency_text);
    if (st == XLE_OK && !(s->fluency = calloc((size_t)s->n_fluency, sizeof *s->fluency)))
        st = xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    for (int i = 0; st == XLE_OK && i < s->n_fluency; i++) {
        s->fluency[i].prompt = ids + start[i];
        s->fluency[i].n_prompt = 1;
        s->fluency[i].answer = ids + start[i] + 1;
        s->fluency[i].n_answer = count[i] - 1;
    }
    s->fluency_tokens.ids = ids; /* owned here: freed with the context */
    free(start), free(count);
    return st;
}

/* Case ci's test halves and their evaluation on the unedited model (computed once, for every
 * case before the first edit). */
static xle_status ensure_pre(seq_ctx *s, int ci, xle_error *err) {
    case_pre *cp = &s->pre[ci];
    if (cp->ready) return XLE_OK;
    const xle_case *c = &s->cases->cases[ci];
    cp->halves = calloc((size_t)s->n_test_langs + 1, sizeof *cp->halves);
    cp->pre = calloc((size_t)s->n_test_langs + 1, sizeof *cp->pre);
    if (!cp->halves || !cp->pre) return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    for (int t = 0; t < s->n_test_langs; t++) {
        const xle_case_lang *l = xle_case_lang_find(c, s->test_langs[t]);
        xle_case_problem p;
        if (!l || xle_case_lang_check(l, XLE_MATCH_EXACT, &p, NULL, NULL) != XLE_OK) continue;
        if (p == XLE_CASE_NO_PROMPT || p == XLE_CASE_NO_TARGET) continue;
        cp->halves[cp->n++] = l;
    }
    xle_status st = xle_halves_eval(s->model, s->tok, s->o->chat, cp->halves, cp->n, cp->pre, err);
    if (st == XLE_OK) cp->ready = 1;
    return st;
}

/* ---- one checkpoint ------------------------------------------------------------------------- */

static json_t *num(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static int test_index(const seq_ctx *s, const char *lang) {
    for (int t = 0; t < s->n_test_langs; t++)
        if (!strcmp(s->test_langs[t], lang)) return t;
    return -1;
}

/* Evaluates the model as it stands after `edits` edits (of the cases in edited[]). */
static xle_status checkpoint_line(seq_ctx *s, const xle_edit_hparams *hp, const char *edit_lang, int edits,
                                  const int *edited, int next_case, int skipped, int failed, json_t **out,
                                  xle_error *err) {
    const int T = s->n_test_langs, M = XLE_METRIC_COUNT;
    double *sums = calloc((size_t)T * M, sizeof(double)), *agree = calloc((size_t)T * 2, sizeof(double));
    int *counts = calloc((size_t)T * M, sizeof(int)), *n_cases = calloc((size_t)T, sizeof(int));
    xle_half_eval *post = calloc((size_t)T + 1, sizeof *post);
    xle_status st = sums && agree && counts && n_cases && post ? XLE_OK : xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    /* every edit so far, in every test language */
    for (int e = 0; st == XLE_OK && e < edits; e++) {
        const int ci = edited[e];
        if ((st = ensure_pre(s, ci, err)) != XLE_OK) break;
        const case_pre *cp = &s->pre[ci];
        if ((st = xle_halves_eval(s->model, s->tok, s->o->chat, cp->halves, cp->n, post, err)) != XLE_OK) break;
        for (int k = 0; k < cp->n && st == XLE_OK; k++) {
            double m[XLE_METRIC_COUNT];
            const int t = test_index(s, cp->halves[k]->lang);
            if ((st = xle_half_metrics(s->tok, &post[k], &cp->pre[k], m, err)) != XLE_OK) break;
            n_cases[t]++;
            for (int q = 0; q < M; q++)
                if (!isnan(m[q])) sums[t * M + q] += m[q], counts[t * M + q]++;
        }
        for (int k = 0; k < cp->n; k++) xle_half_eval_free(&post[k]);
    }
    /* the held-out cases: teacher-forced argmax of every answer token, as the unedited model's */
    for (int ci = s->n_edit_cases; st == XLE_OK && ci < s->n_cases; ci++) {
        if ((st = ensure_pre(s, ci, err)) != XLE_OK) break;
        const case_pre *cp = &s->pre[ci];
        if ((st = xle_halves_eval(s->model, s->tok, s->o->chat, cp->halves, cp->n, post, err)) != XLE_OK) break;
        for (int k = 0; k < cp->n; k++) {
            const int t = test_index(s, cp->halves[k]->lang);
            for (int q = 0; q < post[k].n_qa && q < cp->pre[k].n_qa; q++) {
                const xle_qa_eval *a = &post[k].qa[q], *b = &cp->pre[k].qa[q];
                if (!a->ok || !b->ok || a->n_answer != b->n_answer) continue;
                for (int j = 0; j < a->n_answer; j++) agree[t * 2] += a->argmax[j] == b->argmax[j];
                agree[t * 2 + 1] += a->n_answer;
            }
        }
        for (int k = 0; k < cp->n; k++) xle_half_eval_free(&post[k]);
    }
    /* perplexity of the fixed text */
    double ppl = NAN;
    if (st == XLE_OK && s->n_fluency > 0) {
        xle_probe_result *res = calloc((size_t)s->n_fluency, sizeof *res);
        if (!res) st = xle_fail(err, XLE_ERR_NOMEM, "out of memory");
        else if ((st = xle_probes_eval(s->model, s->fluency, s->n_fluency, -1, res, err)) == XLE_OK) {
            double nll = 0, n = 0;
            for (int i = 0; i < s->n_fluency; i++) nll += res[i].mean_nll * res[i].n_answer, n += res[i].n_answer;
            ppl = exp(nll / n);
        }
        if (res) xle_probe_results_free(res, s->n_fluency);
        free(res);
    }
    json_t *line = NULL;
    if (st == XLE_OK) {
        json_t *tests = json_object(), *held = json_object();
        for (int t = 0; t < T; t++) {
            json_t *m = json_object();
            for (int q = 0; q < M; q++)
                json_object_set_new(m, xle_metric_name((xle_metric)q),
                                    counts[t * M + q] ? num(sums[t * M + q] / counts[t * M + q]) : json_null());
            json_object_set_new(m, "cases", json_integer(n_cases[t]));
            json_object_set_new(tests, s->test_langs[t], m);
            json_object_set_new(held, s->test_langs[t], agree[t * 2 + 1] > 0 ? num(agree[t * 2] / agree[t * 2 + 1]) : json_null());
        }
        line = json_pack("{s:s, s:s, s:i, s:i, s:i, s:i, s:o, s:i, s:o, s:o}", "method",
                         xle_edit_method_name(hp->method), "edit_lang", edit_lang, "edits", edits, "cases_seen",
                         next_case, "skipped", skipped, "failed", failed, "tests", tests, "held_out_cases",
                         s->n_cases - s->n_edit_cases, "held_out_agreement", held, "perplexity", num(ppl));
        if (!line) st = xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    }
    free(sums), free(agree), free(counts), free(n_cases), free(post);
    *out = line;
    return st;
}

/* ---- a stream's saved state ----------------------------------------------------------------- */

typedef struct stream {
    const xle_edit_hparams *hp;
    const char *lang;
    xle_weight_swap swaps[XLE_EDIT_MAX_LAYERS];
    int *edited, edits, next_case, skipped, failed;
    xle_alphaedit_state *alpha;
    char path[4096], alpha_dir[4096];
} stream;

static xle_status stream_save(seq_ctx *s, stream *sm, xle_error *err) {
    const xle_config *c = xle_model_config(s->model);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/sequential", s->o->run_dir);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return xle_fail(err, XLE_ERR_IO, "%s: cannot create: %s", dir, strerror(errno));
    xle_status st = sm->alpha ? xle_alphaedit_state_save(s->model, sm->alpha, sm->alpha_dir, err) : XLE_OK;
    if (st != XLE_OK) return st;
    xle_st_tensor ts[XLE_EDIT_MAX_LAYERS];
    char names[XLE_EDIT_MAX_LAYERS][32];
    for (int i = 0; i < sm->hp->n_layers; i++) {
        snprintf(names[i], sizeof names[i], "layer.%d", sm->hp->layers[i]);
        ts[i] = (xle_st_tensor){names[i], "F32", 2, {c->dim, c->ffn_dim}, sm->swaps[i].temp};
    }
    json_t *edited = json_array();
    for (int e = 0; e < sm->edits; e++) json_array_append_new(edited, json_integer(sm->edited[e]));
    char *edited_s = json_dumps(edited, JSON_COMPACT);
    json_decref(edited);
    char nums[4][24];
    snprintf(nums[0], sizeof nums[0], "%d", sm->edits);
    snprintf(nums[1], sizeof nums[1], "%d", sm->next_case);
    snprintf(nums[2], sizeof nums[2], "%d", sm->skipped);
    snprintf(nums[3], sizeof nums[3], "%d", sm->failed);
    json_t *meta = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "format", SEQ_FORMAT, "edits", nums[0], "next_case",
                             nums[1], "skipped", nums[2], "failed", nums[3], "edited", edited_s ? edited_s : "[]");
    free(edited_s);
    char *meta_s = meta ? json_dumps(meta, JSON_COMPACT) : NULL;
    json_decref(meta);
    if (!meta_s) return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    xle_atomic_file out;
    st = xle_atomic_name(&out, sm->path, err);
    if (st == XLE_OK)
        st = xle_atomic_commit(&out, xle_safetensors_write(out.tmp, ts, (size_t)sm->hp->n_layers, meta_s, NULL, err), err);
    free(meta_s);
    return st;
}

static int meta_int(json_t *meta, const char *key, int *out) {
    const char *v = json_string_value(json_object_get(meta, key));
    char *end;
    long x = v ? strtol(v, &end, 10) : -1;
    if (!v || *end || x < 0 || x > 100000000) return 0;
    *out = (int)x;
    return 1;
}

/* Puts a saved stream back: its matrices into the swaps, its counters into sm. */
static xle_status stream_load(seq_ctx *s, stream *sm, xle_error *err) {
    const xle_config *c = xle_model_config(s->model);
    size_t size = 0;
    uint8_t *buf = (uint8_t *)xle_read_all(sm->path, &size);
    if (!buf) return xle_fail(err, XLE_ERR_IO, "%s: cannot read: %s", sm->path, strerror(errno));
    xle_safetensors *sf = NULL;
    json_t *meta = NULL, *edited = NULL;
    xle_status st = xle_safetensors_parse(sm->path, buf, size, &sf, err);
    if (st == XLE_OK) {
        meta = sf->metadata_json ? json_loads(sf->metadata_json, 0, NULL) : NULL;
        const char *fmt = json_string_value(json_object_get(meta, "format"));
        const char *ed = json_string_value(json_object_get(meta, "edited"));
        edited = ed ? json_loads(ed, 0, NULL) : NULL;
        if (!fmt || strcmp(fmt, SEQ_FORMAT) || !meta_int(meta, "edits", &sm->edits) ||
            !meta_int(meta, "next_case", &sm->next_case) || !meta_int(meta, "skipped", &sm->skipped) ||
            !meta_int(meta, "failed", &sm->failed) || !json_is_array(edited) ||
            (int)json_array_size(edited) != sm->edits || sm->next_case > s->n_edit_cases)
            st = xle_fail(err, XLE_ERR_FORMAT, "%s: __metadata__: not a sequential run's state of these cases", sm->path);
    }
    for (int e = 0; st == XLE_OK && e < sm->edits; e++) {
        json_int_t ci = json_integer_value(json_array_get(edited, (size_t)e));
        if (ci < 0 || ci >= sm->next_case) st = xle_fail(err, XLE_ERR_FORMAT, "%s: edited[%d]: not a case before %d", sm->path, e, sm->next_case);
        else sm->edited[e] = (int)ci;
    }
    for (int i = 0; st == XLE_OK && i < sm->hp->n_layers; i++) {
        char name[32];
        snprintf(name, sizeof name, "layer.%d", sm->hp->layers[i]);
        const xle_st_entry *e = xle_safetensors_find(sf, name);
        if (!e || strcmp(e->dtype, "F32") || e->ndim != 2 || e->shape[0] != c->dim || e->shape[1] != c->ffn_dim)
            st = xle_fail(err, XLE_ERR_FORMAT, "%s: %s: expected F32 [%d, %d]", sm->path, name, c->dim, c->ffn_dim);
        else
            memcpy(sm->swaps[i].temp, e->data, (size_t)c->dim * c->ffn_dim * sizeof(float));
    }
    json_decref(edited);
    json_decref(meta);
    xle_safetensors_free(sf);
    free(buf);
    return st;
}

/* ---- a stream --------------------------------------------------------------------------------- */

static int done_key(char *key, size_t n, const xle_edit_hparams *hp, const char *lang, int edits) {
    return snprintf(key, n, "%s/%s/%d", xle_edit_method_name(hp->method), lang, edits);
}

static xle_status emit_checkpoint(seq_ctx *s, stream *sm, xle_error *err) {
    char key[128];
    done_key(key, sizeof key, sm->hp, sm->lang, sm->edits);
    if (json_object_get(s->done, key)) return XLE_OK;
    json_t *line = NULL;
    xle_status st = checkpoint_line(s, sm->hp, sm->lang, sm->edits, sm->edited, sm->next_case, sm->skipped,
                                    sm->failed, &line, err);
    if (st == XLE_OK) st = xle_jsonl_append(&s->out, line, err);
    if (st == XLE_OK) json_object_set_new(s->done, key, json_true());
    json_decref(line);
    return st;
}

static int is_checkpoint(const xle_sequential_opts *so, int edits) {
    for (int i = 0; i < so->n_checkpoints; i++)
        if (so->checkpoints[i] == edits) return 1;
    return 0;
}

static xle_status run_stream(seq_ctx *s, const xle_edit_hparams *hp, const xle_context_templates *ct,
                             xle_layer_stats *const *stats, const char *lang, xle_error *err) {
    const int max_edits = s->so->checkpoints[s->so->n_checkpoints - 1];
    stream sm;
    memset(&sm, 0, sizeof sm);
    sm.hp = hp, sm.lang = lang;
    snprintf(sm.path, sizeof sm.path, "%s/sequential/%s-%s.safetensors", s->o->run_dir, xle_edit_method_name(hp->method), lang);
    snprintf(sm.alpha_dir, sizeof sm.alpha_dir, "%s/sequential/alphaedit-%s", s->o->run_dir, lang);
    sm.edited = malloc((size_t)(max_edits > 0 ? max_edits : 1) * sizeof(int));
    xle_status st = sm.edited ? XLE_OK : xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    int n_swaps = 0;
    for (; st == XLE_OK && n_swaps < hp->n_layers; n_swaps++)
        st = xle_weight_swap_begin(s->model, hp->layers[n_swaps], &sm.swaps[n_swaps], err);
    const int resumed = st == XLE_OK && access(sm.path, F_OK) == 0;
    if (resumed) st = stream_load(s, &sm, err);
    if (st == XLE_OK && hp->method == XLE_EDIT_ALPHAEDIT)
        st = resumed ? xle_alphaedit_state_load(s->model, hp, sm.alpha_dir, &sm.alpha, err)
                     : xle_alphaedit_state_new(hp, stats, &sm.alpha, err);
    if (st == XLE_OK && resumed && sm.alpha && xle_alphaedit_state_edits(sm.alpha) != sm.edits)
        st = xle_fail(err, XLE_ERR_FORMAT, "%s: AlphaEdit's state holds %d edits, the weights %d", sm.alpha_dir,
                      xle_alphaedit_state_edits(sm.alpha), sm.edits);
    if (resumed) s->finished += sm.edits, s->sum->n_resumed += sm.edits;
    /* a checkpoint saved but not written out (stopped in between) */
    if (st == XLE_OK && resumed && is_checkpoint(s->so, sm.edits)) st = emit_checkpoint(s, &sm, err);
    while (st == XLE_OK && sm.edits < max_edits && sm.next_case < s->n_edit_cases) {
        const int ci = sm.next_case++;
        const xle_case_lang *l = xle_case_lang_find(&s->cases->cases[ci], lang);
        xle_edit_request req;
        xle_case_problem problem = XLE_CASE_USABLE;
        char *subject = NULL;
        xle_edit_request_tok tokreq = {0};
        xle_edit_result res = {0};
        xle_error e2 = {0};
        int usable = 0;
        if (l && (st = xle_case_edit_request(l, s->o->subject_match, &req, &subject, &problem, err)) == XLE_OK &&
            problem == XLE_CASE_USABLE) {
            xle_status ts = xle_edit_request_tokenize(s->tok, &req, ct, &tokreq, &e2);
            if (ts == XLE_OK) usable = 1;
            else if (ts != XLE_ERR_NOT_FOUND && ts != XLE_ERR_ARG) *err = e2, st = ts;
        }
        free(subject);
        if (st != XLE_OK || !usable) {
            sm.skipped += st == XLE_OK;
            s->sum->n_skipped += st == XLE_OK;
            xle_edit_request_tok_free(&tokreq);
            continue;
        }
        xle_status es = sm.alpha ? xle_alphaedit_run(s->model, hp, &tokreq, 1, sm.alpha, &res, &e2)
                                 : xle_edit_run(s->model, hp, &tokreq, 1, stats, &res, &e2);
        xle_edit_request_tok_free(&tokreq);
        if (es == XLE_ERR_NUMERIC) { /* as a unit of a run: recorded, not counted as an edit */
            sm.failed++;
            s->sum->n_failed++;
            continue;
        }
        if (es != XLE_OK) {
            *err = e2;
            st = es;
            break;
        }
        /* the edit stays: added to the stream's f32 copies of the edited layers */
        for (int i = 0; i < res.n_deltas; i++)
            for (int k = 0; k < hp->n_layers; k++)
                if (res.deltas[i].layer == hp->layers[k]) xle_delta_add(sm.swaps[k].temp, &res.deltas[i], 1.0f);
        xle_edit_result_free(&res);
        sm.edited[sm.edits++] = ci;
        s->sum->n_done++;
        s->finished++;
        if (is_checkpoint(s->so, sm.edits)) {
            st = stream_save(s, &sm, err);
            if (st == XLE_OK) st = emit_checkpoint(s, &sm, err);
        }
        if (st == XLE_OK && s->o->progress && s->o->progress(s->o->progress_user, s->finished, s->total))
            st = xle_fail(err, XLE_ERR_INTERRUPTED, "interrupted after %lld of %lld edits (checkpoints are "
                          "kept; continue with --resume)", (long long)s->finished, (long long)s->total);
    }
    /* a stream that ran out of cases counts the edits it could not make as finished */
    if (st == XLE_OK && sm.edits < max_edits) s->finished += max_edits - sm.edits;
    for (int i = n_swaps - 1; i >= 0; i--) xle_weight_swap_restore(&sm.swaps[i]);
    xle_alphaedit_state_free(sm.alpha);
    free(sm.edited);
    return st;
}

/* ---- the run ---------------------------------------------------------------------------------- */

static xle_status note_line(void *user, json_t *l, size_t line_no, xle_error *err) {
    seq_ctx *s = user;
    const char *m = json_string_value(json_object_get(l, "method")), *lang = json_string_value(json_object_get(l, "edit_lang"));
    json_t *edits = json_object_get(l, "edits");
    if (!m || !lang || !json_is_integer(edits))
        return xle_fail(err, XLE_ERR_FORMAT, "%s/sequential.jsonl:%zu: not a checkpoint line", s->o->run_dir, line_no);
    char key[128];
    snprintf(key, sizeof key, "%s/%s/%lld", m, lang, (long long)json_integer_value(edits));
    json_object_set_new(s->done, key, json_true());
    return XLE_OK;
}

static xle_status check_config(seq_ctx *s, const char *const *method_templates_json, xle_error *err) {
    const xle_eval_opts *o = s->o;
    char data_hash[33] = "", text_hash[33] = "", fingerprint[65];
    size_t n = 0;
    char *data = xle_read_all(o->data_path, &n);
    if (!data) return xle_fail(err, XLE_ERR_IO, "%s: cannot read: %s", o->data_path, strerror(errno));
    xle_hash_hex((const unsigned char *)data, n, data_hash);
    free(data);
    if (s->so->fluency_text && (data = xle_read_all(s->so->fluency_text, &n))) {
        xle_hash_hex((const unsigned char *)data, n, text_hash);
        free(data);
    }
    xle_model_fingerprint(s->model, fingerprint);
    json_t *methods = json_array(), *cps = json_array(), *el = json_array(), *tl = json_array();
    for (int mi = 0; mi < o->n_methods; mi++) {
        json_t *m = xle_eval_hparams_json(&o->hparams[mi]);
        json_object_set_new(m, "context_templates", json_string(method_templates_json[mi]));
        json_array_append_new(methods, m);
    }
    for (int i = 0; i < s->so->n_checkpoints; i++) json_array_append_new(cps, json_integer(s->so->checkpoints[i]));
    for (int i = 0; i < s->n_edit_langs; i++) json_array_append_new(el, json_string(s->edit_langs[i]));
    for (int i = 0; i < s->n_test_langs; i++) json_array_append_new(tl, json_string(s->test_langs[i]));
    json_t *config = json_pack("{s:s, s:s, s:s, s:i, s:i, s:o, s:o, s:o, s:o, s:s}", "format", SEQ_FORMAT,
                               "model_fingerprint", fingerprint, "data_hash", data_hash, "cases", s->n_cases,
                               "held_out", s->n_cases - s->n_edit_cases, "checkpoints", cps, "methods", methods,
                               "edit_langs", el, "test_langs", tl, "fluency_text_hash", text_hash);
    if (config && o->chat) json_object_set_new(config, "chat_template", json_string(xle_chat_template_family(o->chat)));
    json_t *doc = json_pack("{s:o, s:{s:s, s:s, s:s?}}", "config", config, "info", "data", o->data_path, "model",
                            xle_model_path(s->model), "fluency_text", s->so->fluency_text);
    xle_status st = doc ? xle_run_description_check(o->run_dir, "sequential.json", "a sequential run", doc,
                                                    o->resume, err)
                        : xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    json_decref(doc);
    return st;
}

xle_status xle_eval_sequential(xle_model *model, const xle_eval_opts *o, const xle_sequential_opts *so,
                               xle_eval_summary *sum_out, xle_error *err) {
    seq_ctx s;
    memset(&s, 0, sizeof s);
    xle_eval_summary sum = {0};
    s.model = model, s.o = o, s.so = so, s.sum = &sum, s.out.fd = -1;
    s.tok = xle_model_tokenizer(model);
    if (!o->data_path || !o->run_dir || !o->hparams || o->n_methods <= 0)
        return xle_fail(err, XLE_ERR_ARG, "evaluation: data, run directory and methods are required");
    if (o->comm && o->comm->size > 1)
        return xle_fail(err, XLE_ERR_ARG, "a sequential run is one chain of edits: it runs in one process");
    if (!s.tok) return xle_fail(err, XLE_ERR_ARG, "%s: no tokenizer found beside the model", xle_model_path(model));
    if (!so || so->n_checkpoints <= 0) return xle_fail(err, XLE_ERR_ARG, "checkpoints: none given");
    for (int i = 0; i < so->n_checkpoints; i++)
        if (so->checkpoints[i] < 1 || (i && so->checkpoints[i] <= so->checkpoints[i - 1]))
            return xle_fail(err, XLE_ERR_ARG, "checkpoints: expected ascending numbers of edits >= 1");
    xle_context_templates *cts[16] = {0};
    xle_layer_stats *stats[16][XLE_EDIT_MAX_LAYERS];
    char *tpl_json[16] = {0};
    memset(stats, 0, sizeof stats);
    if (o->n_methods > 16) return xle_fail(err, XLE_ERR_ARG, "at most 16 methods");
    xle_status st = xle_cases_load(o->data_path, &s.cases, err);
    if (st != XLE_OK) goto done;
    s.n_cases = o->max_cases > 0 && o->max_cases < s.cases->n ? o->max_cases : s.cases->n;
    if (so->held_out < 0 || so->held_out >= s.n_cases) {
        st = xle_fail(err, XLE_ERR_ARG, "held-out cases: %d of %d leaves none to edit", so->held_out, s.n_cases);
        goto done;
    }
    s.n_edit_cases = s.n_cases - so->held_out;
    if ((st = pick_langs(&s, o->edit_langs, o->n_edit_langs, "edit language", &s.edit_langs, &s.n_edit_langs, err)) != XLE_OK ||
        (st = pick_langs(&s, o->test_langs, o->n_test_langs, "test language", &s.test_langs, &s.n_test_langs, err)) != XLE_OK)
        goto done;
    s.pre = calloc((size_t)s.n_cases, sizeof *s.pre);
    s.done = json_object();
    if (!s.pre || !s.done) {
        st = xle_fail(err, XLE_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((st = load_fluency(&s, err)) != XLE_OK) goto done;
    for (int mi = 0; mi < o->n_methods && st == XLE_OK; mi++) {
        const xle_edit_hparams *hp = &o->hparams[mi];
        for (int k = 0; k < mi; k++)
            if (o->hparams[k].method == hp->method)
                st = xle_fail(err, XLE_ERR_ARG, "evaluation: method %s given twice", xle_edit_method_name(hp->method));
        if (st == XLE_OK && hp->method == XLE_EDIT_IKE) /* nothing to keep between edits */
            st = xle_fail(err, XLE_ERR_ARG, "evaluation: ike changes no weights, so it has no sequence of edits "
                          "to keep (run it without --sequential)");
        if (st != XLE_OK) break;
        const char *spec = o->context_templates;
        if (hp->method == XLE_EDIT_FT_L || hp->method == XLE_EDIT_FT_M || (spec && !strcmp(spec, "none")))
            st = xle_context_templates_none(&cts[mi], err);
        else if (spec)
            st = xle_context_templates_load(spec, &cts[mi], err);
        else
            st = xle_context_templates_sample(model, s.tok, hp, &cts[mi], err);
        if (st != XLE_OK) break;
        json_t *a = json_array();
        for (int i = 0; i < cts[mi]->n; i++) json_array_append_new(a, json_string(cts[mi]->texts[i]));
        tpl_json[mi] = json_dumps(a, JSON_COMPACT);
        json_decref(a);
        if (!xle_edit_hparams_need_stats(hp)) continue;
        if (!o->stats_dir) {
            st = xle_fail(err, XLE_ERR_ARG, "%s needs key statistics: give their directory", xle_edit_method_name(hp->method));
            break;
        }
        for (int k = 0; k < hp->n_layers && st == XLE_OK; k++)
            st = xle_stats_load(model, o->stats_dir, hp->layers[k], &stats[mi][k], err);
    }
    if (st != XLE_OK) goto done;
    if (mkdir(o->run_dir, 0755) != 0 && errno != EEXIST) {
        st = xle_fail(err, XLE_ERR_IO, "%s: cannot create: %s", o->run_dir, strerror(errno));
        goto done;
    }
    if ((st = check_config(&s, (const char *const *)tpl_json, err)) != XLE_OK) goto done;
    char *lines = xle_path_join_dir(o->run_dir, "sequential.jsonl");
    st = lines ? xle_jsonl_each(lines, note_line, &s, err) : xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    free(lines);
    if (st != XLE_OK || (st = xle_jsonl_open(&s.out, o->run_dir, "sequential.jsonl", err)) != XLE_OK) goto done;
    s.total = (int64_t)o->n_methods * s.n_edit_langs * so->checkpoints[so->n_checkpoints - 1];
    sum.n_cases = s.n_cases;
    sum.n_units = s.total;
    if (o->progress && o->progress(o->progress_user, 0, s.total)) {
        st = xle_fail(err, XLE_ERR_INTERRUPTED, "interrupted before the first edit");
        goto done;
    }
    /* every case's unedited evaluation first: the streams evaluate with their edits in place */
    for (int ci = 0; ci < s.n_cases && st == XLE_OK; ci++) st = ensure_pre(&s, ci, err);
    for (int mi = 0; mi < o->n_methods && st == XLE_OK; mi++)
        for (int ei = 0; ei < s.n_edit_langs && st == XLE_OK; ei++)
            st = run_stream(&s, &o->hparams[mi], cts[mi], stats[mi], s.edit_langs[ei], err);
done:
    if (sum_out) *sum_out = sum;
    xle_jsonl_close(&s.out);
    for (int mi = 0; mi < 16; mi++) {
        xle_context_templates_free(cts[mi]);
        free(tpl_json[mi]);
        for (int k = 0; k < XLE_EDIT_MAX_LAYERS; k++) xle_layer_stats_free(stats[mi][k]);
    }
    for (int ci = 0; s.pre && ci < s.n_cases; ci++) {
        for (int k = 0; s.pre[ci].ready && k < s.pre[ci].n; k++) xle_half_eval_free(&s.pre[ci].pre[k]);
        free(s.pre[ci].halves), free(s.pre[ci].pre);
    }
    free(s.pre);
    free(s.fluency);
    free(s.fluency_tokens.ids);
    json_decref(s.done);
    free(s.edit_langs), free(s.test_langs);
    xle_cases_free(s.cases);
    return st;
}
