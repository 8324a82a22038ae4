/*
 * render_easyedit.c: an evaluation run written the way EasyEdit writes its metrics
 * (easyeditor/editors/editor.py, edit_requests -> summary_metrics -> logs/results.json): per
 * unit and test language one record {case_id, requested_rewrite, pre, post}, the records of
 * one (method, edit language, test language) together as EasyEdit's list over requests, so
 * that EasyEdit's summarizers read a run. Field mapping: docs/evaluation.md, "EasyEdit format".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report/report_internal.h"

/* EasyEdit's names for the sections of one request (its README's examples). */
#define LOC_KEY "neighborhood"
#define PORT_KEY "one_hop"

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* The complete lines of RUN_DIR/NAME as JSON objects, in order (a torn last line ignored;
 * a missing file: none). */
static xle_status read_lines(const char *run_dir, const char *name, json_t **out, xle_error *err) {
    *out = NULL;
    char *path = join(run_dir, name);
    if (!path) return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    json_t *arr = json_array();
    FILE *f = fopen(path, "rb");
    xle_status st = XLE_OK;
    if (!f && errno != ENOENT) st = xle_fail(err, XLE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *buf = NULL;
    size_t cap = 0, line_no = 0;
    ssize_t got;
    while (f && st == XLE_OK && (got = getline(&buf, &cap, f)) > 0) {
        line_no++;
        if (buf[got - 1] != '\n') break;
        if (got == 1) continue;
        json_error_t je;
        json_t *v = json_loadb(buf, (size_t)got - 1, 0, &je);
        if (!json_is_object(v)) {
            st = xle_fail(err, XLE_ERR_FORMAT, "%s:%zu: json: %s", path, line_no, v ? "expected an object" : je.text);
            json_decref(v);
        } else {
            json_array_append_new(arr, v);
        }
    }
    free(buf);
    if (f) fclose(f);
    free(path);
    if (st != XLE_OK || !arr) {
        json_decref(arr);
        return st != XLE_OK ? st : xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    }
    *out = arr;
    return XLE_OK;
}

/* The run's case file (run.json info.data), for the subject and old object of each request;
 * NULL when it is no longer readable (those fields are then null). */
static xle_cases *load_run_cases(const char *run_dir) {
    char *path = join(run_dir, "run.json");
    json_t *run = path ? json_load_file(path, 0, NULL) : NULL;
    free(path);
    const char *data = json_string_value(json_object_get(json_object_get(run, "info"), "data"));
    xle_cases *cs = NULL;
    xle_error ignored = {0};
    if (data && xle_cases_load(data, &cs, &ignored) != XLE_OK) cs = NULL;
    json_decref(run);
    return cs;
}

static const xle_case_lang *find_case_lang(const xle_cases *cs, const char *id, const char *lang) {
    for (int i = 0; cs && id && i < cs->n; i++) {
        if (strcmp(cs->cases[i].id, id)) continue;
        for (int l = 0; l < cs->cases[i].n_langs; l++)
            if (!strcmp(cs->cases[i].langs[l].lang, lang)) return &cs->cases[i].langs[l];
    }
    return NULL;
}

/* [value] when the metric has a value (EasyEdit keeps per-request lists), else NULL. */
static json_t *one(const json_t *metrics, const char *key) {
    json_t *v = json_object_get(metrics, key);
    return json_is_number(v) ? json_pack("[O]", v) : NULL;
}

static void set_if(json_t *obj, const char *key, json_t *v) {
    if (v) json_object_set_new(obj, key, v);
}

/* requested_rewrite: the test language's request as the probes asked it. */
static json_t *requested_rewrite(const json_t *probes, const xle_case_lang *cl) {
    json_t *rr = json_object(), *reph = json_array(), *lp = json_array(), *lg = json_array(),
           *pp = json_array(), *pg = json_array();
    size_t i;
    json_t *p;
    json_array_foreach(probes, i, p) {
        const char *kind = json_string_value(json_object_get(p, "kind"));
        json_t *prompt = json_object_get(p, "prompt"), *expected = json_object_get(p, "expected");
        if (!kind) continue;
        if (!strcmp(kind, "rel") && !json_object_get(rr, "prompt")) {
            json_object_set(rr, "prompt", prompt);
            json_object_set(rr, "target_new", expected);
        } else if (!strcmp(kind, "gen")) {
            json_array_append(reph, prompt);
        } else if (!strcmp(kind, "loc")) {
            json_array_append(lp, prompt), json_array_append(lg, expected);
        } else if (!strcmp(kind, "port")) {
            json_array_append(pp, prompt), json_array_append(pg, expected);
        }
    }
    json_object_set_new(rr, "ground_truth", cl && cl->target_true ? json_string(cl->target_true) : json_null());
    json_object_set_new(rr, "subject", cl ? json_string(cl->subject) : json_null());
    if (json_array_size(reph) == 1) json_object_set(rr, "rephrase_prompt", json_array_get(reph, 0));
    else if (json_array_size(reph) > 1) json_object_set(rr, "rephrase_prompt", reph);
    json_t *loc = json_object(), *port = json_object();
    if (json_array_size(lp)) json_object_set_new(loc, LOC_KEY, json_pack("{s:O, s:O}", "prompt", lp, "ground_truth", lg));
    if (json_array_size(pp)) json_object_set_new(port, PORT_KEY, json_pack("{s:O, s:O}", "prompt", pp, "ground_truth", pg));
    json_object_set_new(rr, "portability", port);
    json_object_set_new(rr, "locality", loc);
    json_decref(reph), json_decref(lp), json_decref(lg), json_decref(pp), json_decref(pg);
    return rr;
}

/* pre or post: EasyEdit's compute_edit_quality keys from xledit's metrics of one half. Pre
 * locality holds the unedited model's argmax tokens per locality prompt ("<key>_output", as
 * EasyEdit keeps them); post locality their agreement ("<key>_acc", finalize_locality_metrics). */
static json_t *phase(const json_t *metrics, const json_t *pre_qa, int post) {
    json_t *ph = json_object(), *loc = json_object(), *port = json_object();
    set_if(ph, "rewrite_acc", one(metrics, "rel_acc"));
    set_if(ph, "rephrase_acc", one(metrics, "gen_acc"));
    if (post) {
        set_if(loc, LOC_KEY "_acc", one(metrics, "loc_acc"));
    } else {
        json_t *outs = json_array();
        size_t i;
        json_t *q;
        json_array_foreach(pre_qa, i, q) {
            const char *kind = json_string_value(json_object_get(q, "kind"));
            json_t *argmax = json_object_get(q, "argmax");
            if (kind && !strcmp(kind, "loc") && json_is_array(argmax)) json_array_append(outs, argmax);
        }
        if (json_array_size(outs)) json_object_set_new(loc, LOC_KEY "_output", outs);
        else json_decref(outs);
    }
    set_if(port, PORT_KEY "_acc", one(metrics, "port_acc"));
    json_object_set_new(ph, "locality", loc);
    json_object_set_new(ph, "portability", port);
    return ph;
}

/* The pre.jsonl line of a case, by its index. */
static const json_t *pre_line(const json_t *pre, json_int_t case_index) {
    size_t i;
    json_t *l;
    json_array_foreach(pre, i, l) if (json_integer_value(json_object_get(l, "case_index")) == case_index) return l;
    return NULL;
}

static xle_status add_unit(json_t *out, const json_t *line, const json_t *pre, const xle_cases *cs) {
    const char *status = json_string_value(json_object_get(line, "status"));
    const char *method = json_string_value(json_object_get(line, "method"));
    const char *edit = json_string_value(json_object_get(line, "edit_lang"));
    const char *case_id = json_string_value(json_object_get(line, "case"));
    json_t *index = json_object_get(line, "case_index");
    if (!status || strcmp(status, "ok") || !method || !edit || !json_is_integer(index)) return XLE_OK;
    const json_t *pl = pre_line(pre, json_integer_value(index));
    const char *tl;
    json_t *half;
    json_object_foreach(json_object_get(line, "tests"), tl, half) {
        const json_t *pre_half = json_object_get(json_object_get(pl, "langs"), tl);
        json_t *rec = json_object();
        json_object_set(rec, "case_id", index);
        json_object_set_new(rec, "requested_rewrite",
                            requested_rewrite(json_object_get(half, "probes"), find_case_lang(cs, case_id, tl)));
        json_object_set_new(rec, "pre", phase(json_object_get(pre_half, "metrics"), json_object_get(pre_half, "qa"), 0));
        json_object_set_new(rec, "post", phase(json_object_get(half, "metrics"), NULL, 1));
        json_object_set_new(rec, "xledit", json_pack("{s:s, s:s, s:s, s:s}", "case", case_id ? case_id : "",
                                                     "method", method, "edit_lang", edit, "test_lang", tl));
        char key[256];
        snprintf(key, sizeof key, "%s/%s/%s", method, edit, tl);
        json_t *list = json_object_get(out, key);
        if (!list) json_object_set_new(out, key, list = json_array());
        if (!list || json_array_append_new(list, rec)) return XLE_ERR_NOMEM;
    }
    return XLE_OK;
}

xle_status xle_report_render_easyedit(const char *run_dir, char **out, size_t *len, xle_error *err) {
    *out = NULL;
    *len = 0;
    json_t *results = NULL, *pre = NULL;
    xle_status st = read_lines(run_dir, "results.jsonl", &results, err);
    if (st == XLE_OK) st = read_lines(run_dir, "pre.jsonl", &pre, err);
    if (st == XLE_OK && json_array_size(results) == 0)
        st = xle_fail(err, XLE_ERR_FORMAT, "%s: no results.jsonl lines (is it a run directory of xledit eval?)", run_dir);
    xle_cases *cs = st == XLE_OK ? load_run_cases(run_dir) : NULL;
    json_t *doc = json_object();
    size_t i;
    json_t *line;
    if (st == XLE_OK) json_array_foreach(results, i, line) {
        if (add_unit(doc, line, pre, cs) != XLE_OK) {
            st = xle_fail(err, XLE_ERR_NOMEM, "report: out of memory");
            break;
        }
    }
    if (st == XLE_OK) {
        char *text = json_dumps(doc, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
        if (!text) st = xle_fail(err, XLE_ERR_NOMEM, "report: out of memory");
        else {
            size_t n = strlen(text);
            char *t = realloc(text, n + 2);
            if (!t) {
                free(text);
                st = xle_fail(err, XLE_ERR_NOMEM, "report: out of memory");
            } else {
                t[n] = '\n', t[n + 1] = '\0';
                *out = t;
                *len = n + 1;
            }
        }
    }
    json_decref(doc);
    json_decref(results);
    json_decref(pre);
    xle_cases_free(cs);
    return st;
}
