/*
 * report.c: reads an evaluation run directory (run.json, results.jsonl, pre.jsonl; written by
 * src/eval/run.c) and aggregates it for the renderers: per method and metric, the mean of
 * every (edit language, test language) cell over the units that have a value there, the
 * unedited model's baseline per test language, ELFI / ELFO / all-languages pools, unit counts,
 * skip reasons, and the units that failed somewhere (for the HTML per-case view).
 * Reading never changes the run directory; a torn last line is ignored.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "report/report_internal.h"

/* ---- string buffer ------------------------------------------------------------------------- */

void xle_sb_putn(xle_sb *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p, b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

void xle_sb_puts(xle_sb *b, const char *s) { xle_sb_putn(b, s, strlen(s)); }

void xle_sb_printf(xle_sb *b, const char *fmt, ...) {
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = 1;
        return;
    }
    if ((size_t)n < sizeof small) {
        xle_sb_putn(b, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        b->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    xle_sb_putn(b, big, (size_t)n);
    free(big);
}

void xle_sb_html(xle_sb *b, const char *s) {
    if (!s) return;
    const char *run = s;
    for (; *s; s++) {
        const char *rep = *s == '&' ? "&amp;" : *s == '<' ? "&lt;" : *s == '>' ? "&gt;"
                          : *s == '"' ? "&quot;" : *s == '\'' ? "&#39;" : NULL;
        if (!rep) continue;
        xle_sb_putn(b, run, (size_t)(s - run));
        xle_sb_puts(b, rep);
        run = s + 1;
    }
    xle_sb_putn(b, run, (size_t)(s - run));
}

double xle_cell_mean(const xle_cell *c) { return c->n ? c->sum / c->n : NAN; }

int xle_metric_is_signed(xle_metric m) {
    return m == XLE_METRIC_EFF_MAG || m == XLE_METRIC_PARA_MAG || m == XLE_METRIC_NBHD_MAG;
}

/* ---- loading ------------------------------------------------------------------------------- */

static char *dup_str(const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

static char *path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

typedef xle_status (*line_fn)(xle_report *r, const json_t *line, const char *path, size_t line_no,
                              xle_error *err);

/* Calls fn on every complete line of a JSONL file (missing file: no lines). A last line
 * without its newline is a unit the run was writing when it stopped: ignored. */
static xle_status each_line(xle_report *r, const char *name, line_fn fn, xle_error *err) {
    char *path = path_join(r->run_dir, name);
    if (!path) return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    FILE *f = fopen(path, "rb");
    if (!f) {
        xle_status st = errno == ENOENT ? XLE_OK : xle_fail(err, XLE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        free(path);
        return st;
    }
    char *buf = NULL;
    size_t cap = 0, line_no = 0;
    ssize_t got;
    xle_status st = XLE_OK;
    while (st == XLE_OK && (got = getline(&buf, &cap, f)) > 0) {
        line_no++;
        if (buf[got - 1] != '\n') break; /* torn */
        if (got == 1) continue;
        json_error_t je;
        json_t *v = json_loadb(buf, (size_t)got - 1, 0, &je);
        if (!json_is_object(v))
            st = xle_fail(err, XLE_ERR_FORMAT, "%s:%zu: json: %s", path, line_no, v ? "expected an object" : je.text);
        else
            st = fn(r, v, path, line_no, err);
        json_decref(v);
    }
    free(buf);
    fclose(f);
    free(path);
    return st;
}

static int find_method(const xle_report *r, const char *m) {
    for (int i = 0; m && i < r->n_methods; i++)
        if (!strcmp(r->methods[i], m)) return i;
    return -1;
}

static int find_lang(char (*langs)[XLE_LANG_MAX], int n, const char *l) {
    for (int i = 0; l && i < n; i++)
        if (!strcmp(langs[i], l)) return i;
    return -1;
}

static xle_status add_skip(xle_report *r, int mi, int ei, const char *reason, xle_error *err) {
    if (!reason) reason = "?";
    for (int i = 0; i < r->n_skips; i++)
        if (r->skips[i].method == mi && r->skips[i].edit == ei && !strcmp(r->skips[i].reason, reason)) {
            r->skips[i].count++;
            return XLE_OK;
        }
    xle_skip_reason *s = realloc(r->skips, (size_t)(r->n_skips + 1) * sizeof *s);
    if (!s) return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    r->skips = s;
    s[r->n_skips] = (xle_skip_reason){mi, ei, dup_str(reason), 1};
    if (!s[r->n_skips].reason) return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    r->n_skips++;
    return XLE_OK;
}

static void failure_free(xle_report_failure *f) {
    for (int k = 0; k < f->n_langs; k++) {
        for (int p = 0; f->probes && p < f->n_probes[k]; p++) {
            xle_report_probe *q = &f->probes[k][p];
            free(q->kind), free(q->prompt), free(q->expected), free(q->before), free(q->after);
            free(q->before_whole), free(q->after_whole);
        }
        if (f->probes) free(f->probes[k]);
        if (f->langs) free(f->langs[k]);
    }
    free(f->probes), free(f->n_probes), free(f->langs);
    free(f->case_id), free(f->method), free(f->edit_lang);
}

static int is_zero(const json_t *v) { return json_is_number(v) && json_number_value(v) == 0; }

/* Records unit `line` for the per-case view when it failed in some test language. */
static xle_status note_failure(xle_report *r, const json_t *line, const json_t *tests, xle_error *err) {
    const char *lang;
    json_t *t;
    int n_fail = 0;
    json_object_foreach((json_t *)tests, lang, t) {
        const json_t *m = json_object_get(t, "metrics");
        n_fail += is_zero(json_object_get(m, "rel_em")) || is_zero(json_object_get(m, "loc_em"));
    }
    if (!n_fail) return XLE_OK;
    r->total_failures++;
    if (r->n_failures >= XLE_REPORT_MAX_FAILURES) return XLE_OK;
    if (!r->failures) {
        r->failures = calloc(XLE_REPORT_MAX_FAILURES, sizeof *r->failures);
        if (!r->failures) return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    }
    xle_report_failure *f = &r->failures[r->n_failures++];
    f->case_id = dup_str(json_string_value(json_object_get(line, "case")));
    f->method = dup_str(json_string_value(json_object_get(line, "method")));
    f->edit_lang = dup_str(json_string_value(json_object_get(line, "edit_lang")));
    f->langs = calloc((size_t)n_fail, sizeof *f->langs);
    f->probes = calloc((size_t)n_fail, sizeof *f->probes);
    f->n_probes = calloc((size_t)n_fail, sizeof *f->n_probes);
    if (!f->case_id || !f->method || !f->edit_lang || !f->langs || !f->probes || !f->n_probes)
        return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    json_object_foreach((json_t *)tests, lang, t) {
        const json_t *m = json_object_get(t, "metrics"), *probes = json_object_get(t, "probes");
        if (!(is_zero(json_object_get(m, "rel_em")) || is_zero(json_object_get(m, "loc_em")))) continue;
        int k = f->n_langs++;
        f->langs[k] = dup_str(lang);
        size_t np = json_is_array(probes) ? json_array_size(probes) : 0;
        f->probes[k] = calloc(np + 1, sizeof **f->probes);
        if (!f->langs[k] || !f->probes[k]) return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
        for (size_t p = 0; p < np; p++) {
            const json_t *e = json_array_get(probes, p);
            xle_report_probe *q = &f->probes[k][f->n_probes[k]++];
            q->kind = dup_str(json_string_value(json_object_get(e, "kind")));
            q->prompt = dup_str(json_string_value(json_object_get(e, "prompt")));
            q->expected = dup_str(json_string_value(json_object_get(e, "expected")));
            q->before = dup_str(json_string_value(json_object_get(e, "before")));
            q->after = dup_str(json_string_value(json_object_get(e, "after")));
            q->before_whole = dup_str(json_string_value(json_object_get(e, "before_whole")));
            q->after_whole = dup_str(json_string_value(json_object_get(e, "after_whole")));
        }
    }
    return XLE_OK;
}

static xle_status add_result(xle_report *r, const json_t *line, const char *path, size_t line_no,
                             xle_error *err) {
    const char *status = json_string_value(json_object_get(line, "status"));
    int mi = find_method(r, json_string_value(json_object_get(line, "method")));
    int ei = find_lang(r->edit_langs, r->n_edit, json_string_value(json_object_get(line, "edit_lang")));
    if (mi < 0 || ei < 0 || !status)
        return xle_fail(err, XLE_ERR_FORMAT, "%s:%zu: method/edit_lang/status: not a unit of this run", path, line_no);
    r->n_units_read++;
    size_t me = (size_t)mi * (size_t)r->n_edit + (size_t)ei;
    if (!strcmp(status, "skipped")) {
        r->n_skipped[me]++;
        return add_skip(r, mi, ei, json_string_value(json_object_get(line, "reason")), err);
    }
    if (!strcmp(status, "failed")) {
        r->n_failed[me]++;
        char why[600];
        snprintf(why, sizeof why, "edit failed: %.560s", json_string_value(json_object_get(line, "error")) ?
                 json_string_value(json_object_get(line, "error")) : "?");
        return add_skip(r, mi, ei, why, err);
    }
    if (strcmp(status, "ok"))
        return xle_fail(err, XLE_ERR_FORMAT, "%s:%zu: status: unknown value '%.40s'", path, line_no, status);
    r->n_ok[me]++;
    const json_t *tests = json_object_get(line, "tests");
    if (!json_is_object(tests)) return xle_fail(err, XLE_ERR_FORMAT, "%s:%zu: tests: expected an object", path, line_no);
    int all = !strcmp(r->edit_langs[ei], "all");
    const char *lang;
    json_t *t;
    json_object_foreach((json_t *)tests, lang, t) {
        int ti = find_lang(r->test_langs, r->n_test, lang);
        const json_t *m = json_object_get(t, "metrics");
        if (ti < 0 || !json_is_object(m))
            return xle_fail(err, XLE_ERR_FORMAT, "%s:%zu: tests.%.20s: not a test language of this run", path, line_no, lang);
        for (int k = 0; k < XLE_METRIC_COUNT; k++) {
            const json_t *v = json_object_get(m, xle_metric_name((xle_metric)k));
            if (!json_is_number(v)) continue;
            double x = json_number_value(v);
            xle_cell *c = xle_report_cell(r, mi, k, ei, ti);
            c->sum += x, c->n++;
            size_t mk = (size_t)mi * XLE_METRIC_COUNT + (size_t)k;
            xle_cell *pool = all ? &r->all[mk] : !strcmp(lang, r->edit_langs[ei]) ? &r->elfi[mk] : &r->elfo[mk];
            pool->sum += x, pool->n++;
        }
    }
    return note_failure(r, line, tests, err);
}

static xle_status add_pre(xle_report *r, const json_t *line, const char *path, size_t line_no,
                          xle_error *err) {
    const json_t *langs = json_object_get(line, "langs");
    if (!json_is_object(langs)) return xle_fail(err, XLE_ERR_FORMAT, "%s:%zu: langs: expected an object", path, line_no);
    const char *lang;
    json_t *t;
    json_object_foreach((json_t *)langs, lang, t) {
        int ti = find_lang(r->test_langs, r->n_test, lang);
        if (ti < 0) continue;
        const json_t *m = json_object_get(t, "metrics");
        for (int k = 0; k < XLE_METRIC_COUNT; k++) {
            const json_t *v = json_object_get(m, xle_metric_name((xle_metric)k));
            if (!json_is_number(v)) continue;
            xle_cell *c = &r->pre[(size_t)k * (size_t)r->n_test + (size_t)ti];
            c->sum += json_number_value(v), c->n++;
        }
    }
    return XLE_OK;
}

static xle_status read_langs(const json_t *arr, const char *path, const char *key,
                             char (**out)[XLE_LANG_MAX], int *n, xle_error *err) {
    if (!json_is_array(arr) || !json_array_size(arr))
        return xle_fail(err, XLE_ERR_FORMAT, "%s: config.%s: expected a list of languages", path, key);
    *out = calloc(json_array_size(arr), sizeof **out);
    if (!*out) return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const char *l = json_string_value(json_array_get(arr, i));
        if (!l || strlen(l) >= XLE_LANG_MAX)
            return xle_fail(err, XLE_ERR_FORMAT, "%s: config.%s[%zu]: not a language code", path, key, i);
        snprintf((*out)[(*n)++], XLE_LANG_MAX, "%s", l);
    }
    return XLE_OK;
}

static xle_status read_run_json(xle_report *r, xle_error *err) {
    char *path = path_join(r->run_dir, "run.json");
    if (!path) return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    json_error_t je;
    json_t *doc = json_load_file(path, 0, &je);
    xle_status st = XLE_OK;
    const json_t *config = json_object_get(doc, "config"), *info = json_object_get(doc, "info");
    const json_t *methods = json_object_get(config, "methods");
    if (!doc) {
        st = xle_fail(err, je.line < 0 ? XLE_ERR_IO : XLE_ERR_FORMAT, "%s: %s", path, je.text);
    } else if (!json_is_object(config) || !json_is_array(methods) || !json_array_size(methods)) {
        st = xle_fail(err, XLE_ERR_FORMAT, "%s: config.methods: expected a non-empty list (not an xledit run directory?)", path);
    } else {
        r->n_cases = (int)json_integer_value(json_object_get(config, "cases"));
        r->model = dup_str(json_string_value(json_object_get(info, "model")));
        r->data = dup_str(json_string_value(json_object_get(info, "data")));
        r->methods = calloc(json_array_size(methods), sizeof *r->methods);
        if (!r->methods) st = xle_fail(err, XLE_ERR_NOMEM, "out of memory");
        for (size_t i = 0; st == XLE_OK && i < json_array_size(methods); i++) {
            const char *m = json_string_value(json_object_get(json_array_get(methods, i), "method"));
            if (!m) st = xle_fail(err, XLE_ERR_FORMAT, "%s: config.methods[%zu].method: expected a string", path, i);
            else if (!(r->methods[r->n_methods++] = dup_str(m))) st = xle_fail(err, XLE_ERR_NOMEM, "out of memory");
        }
        if (st == XLE_OK)
            st = read_langs(json_object_get(config, "edit_langs"), path, "edit_langs", &r->edit_langs, &r->n_edit, err);
        if (st == XLE_OK)
            st = read_langs(json_object_get(config, "test_langs"), path, "test_langs", &r->test_langs, &r->n_test, err);
    }
    json_decref(doc);
    free(path);
    return st;
}

void xle_report_free(xle_report *r) {
    if (!r) return;
    for (int i = 0; i < r->n_methods; i++) free(r->methods[i]);
    for (int i = 0; i < r->n_skips; i++) free(r->skips[i].reason);
    for (int i = 0; i < r->n_failures; i++) failure_free(&r->failures[i]);
    free(r->failures), free(r->skips), free(r->methods);
    free(r->edit_langs), free(r->test_langs);
    free(r->cells), free(r->pre), free(r->elfi), free(r->elfo), free(r->all);
    free(r->n_ok), free(r->n_skipped), free(r->n_failed);
    free(r->run_dir), free(r->model), free(r->data);
    json_decref(r->sequential);
    free(r);
}

/* sequential.jsonl beside (or instead of) an ordinary run; with no run.json but a
 * sequential.json, the directory is a sequential run only. */
static xle_status read_sequential(xle_report *r, xle_error *err) {
    char *lines = path_join(r->run_dir, "sequential.jsonl"), *config = path_join(r->run_dir, "sequential.json"),
         *run = path_join(r->run_dir, "run.json");
    xle_status st = lines && config && run ? XLE_OK : xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    if (st == XLE_OK && access(lines, R_OK) == 0) {
        r->sequential = json_array();
        FILE *f = fopen(lines, "r");
        char *line = NULL;
        size_t cap = 0, no = 0;
        ssize_t len;
        while (f && st == XLE_OK && (len = getline(&line, &cap, f)) > 0) {
            no++;
            if (line[len - 1] != '\n') break; /* a torn last line: the run is resumed from before it */
            json_t *v = json_loads(line, 0, NULL);
            if (!json_is_object(v)) st = xle_fail(err, XLE_ERR_FORMAT, "%s:%zu: not a JSON object", lines, no);
            else json_array_append(r->sequential, v);
            json_decref(v);
        }
        free(line);
        if (f) fclose(f);
        if (st == XLE_OK && access(run, F_OK) != 0) {
            r->sequential_only = 1;
            json_t *doc = json_load_file(config, 0, NULL);
            json_t *info = json_object_get(doc, "info");
            r->model = dup_str(json_string_value(json_object_get(info, "model")));
            r->data = dup_str(json_string_value(json_object_get(info, "data")));
            json_decref(doc);
        }
    }
    free(lines), free(config), free(run);
    return st;
}

xle_status xle_report_load(const char *run_dir, xle_report **out, xle_error *err) {
    *out = NULL;
    xle_report *r = calloc(1, sizeof *r);
    if (!r || !(r->run_dir = dup_str(run_dir))) {
        free(r);
        return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    }
    xle_status st = read_sequential(r, err);
    if (st == XLE_OK && r->sequential_only) {
        *out = r;
        return XLE_OK;
    }
    if (st == XLE_OK) st = read_run_json(r, err);
    if (st == XLE_OK) {
        size_t nm = (size_t)r->n_methods, ne = (size_t)r->n_edit, nt = (size_t)r->n_test;
        r->cells = calloc(nm * XLE_METRIC_COUNT * ne * nt, sizeof *r->cells);
        r->pre = calloc(XLE_METRIC_COUNT * nt, sizeof *r->pre);
        r->elfi = calloc(nm * XLE_METRIC_COUNT, sizeof *r->elfi);
        r->elfo = calloc(nm * XLE_METRIC_COUNT, sizeof *r->elfo);
        r->all = calloc(nm * XLE_METRIC_COUNT, sizeof *r->all);
        r->n_ok = calloc(nm * ne, sizeof *r->n_ok);
        r->n_skipped = calloc(nm * ne, sizeof *r->n_skipped);
        r->n_failed = calloc(nm * ne, sizeof *r->n_failed);
        if (!r->cells || !r->pre || !r->elfi || !r->elfo || !r->all || !r->n_ok || !r->n_skipped || !r->n_failed)
            st = xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    }
    if (st == XLE_OK) st = each_line(r, "results.jsonl", add_result, err);
    if (st == XLE_OK) st = each_line(r, "pre.jsonl", add_pre, err);
    if (st != XLE_OK) {
        xle_report_free(r);
        return st;
    }
    *out = r;
    return XLE_OK;
}

const char *xle_report_format_ext(xle_report_format f) {
    static const char *const ext[XLE_REPORT_FORMAT_COUNT] = {"txt", "md", "csv", "json", "html"};
    return f >= 0 && f < XLE_REPORT_FORMAT_COUNT ? ext[f] : "?";
}

xle_status xle_report_render(const xle_report *r, xle_report_format f, char **out, size_t *len,
                             xle_error *err) {
    *out = NULL;
    *len = 0;
    const xle_report_format format_asked = f;
    xle_sb b = {0};
    xle_status st;
    if (r->sequential_only) f = XLE_REPORT_FORMAT_COUNT; /* its own renderer, below */
    switch (f) {
    case XLE_REPORT_TEXT: st = xle_render_text(r, 0, &b, err); break;
    case XLE_REPORT_MD: st = xle_render_text(r, 1, &b, err); break;
    case XLE_REPORT_CSV: st = xle_render_csv(r, &b, err); break;
    case XLE_REPORT_JSON: st = xle_render_json(r, &b, err); break;
    case XLE_REPORT_HTML: st = xle_render_html(r, &b, err); break;
    default:
        st = r->sequential_only ? xle_render_sequential_only(r, (int)format_asked, &b, err)
                                : xle_fail(err, XLE_ERR_ARG, "report: unknown format %d", (int)f);
    }
    if (st == XLE_OK && (b.oom || !b.p)) st = xle_fail(err, XLE_ERR_NOMEM, "report: out of memory");
    if (st != XLE_OK) {
        free(b.p);
        return st;
    }
    *out = b.p;
    *len = b.n;
    return XLE_OK;
}
