/*
 * render_tables.c: an aggregated evaluation run as plain-text or Markdown tables, CSV (one row
 * per cell) and JSON. Tables show means x100 (percent; magnitudes in percentage points); CSV
 * and JSON keep the raw means and the number of values behind each.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "report/report_internal.h"

/* Units pooled over all test languages of the pre-edit baseline. */
static xle_cell pre_pooled(const xle_report *r, int metric) {
    xle_cell c = {0, 0};
    for (int t = 0; t < r->n_test; t++) {
        const xle_cell *p = &r->pre[(size_t)metric * (size_t)r->n_test + (size_t)t];
        c.sum += p->sum, c.n += p->n;
    }
    return c;
}

static void fmt_pct(char *buf, size_t cap, double v) {
    if (isnan(v)) snprintf(buf, cap, "-");
    else snprintf(buf, cap, "%.1f", fabs(100.0 * v) < 0.05 ? 0.0 : 100.0 * v); /* no "-0.0" */
}

/* s padded to cols terminal columns (never cut): columns, not bytes, so labels in any script
 * line up. */
static void padded(xle_sb *b, const char *s, int cols, int align_right) {
    int pad = cols - xle_text_width(s);
    if (align_right && pad > 0) xle_sb_printf(b, "%*s", pad, "");
    xle_sb_puts(b, s);
    if (!align_right && pad > 0) xle_sb_printf(b, "%*s", pad, "");
}

/* One table row: label then cells, aligned (text) or piped (Markdown). */
static void row(xle_sb *b, int md, const char *label, char cells[][32], int n) {
    if (md) {
        xle_sb_printf(b, "| %s |", label);
        for (int i = 0; i < n; i++) xle_sb_printf(b, " %s |", cells[i]);
    } else {
        xle_sb_puts(b, "  ");
        padded(b, label, 12, 0);
        for (int i = 0; i < n; i++) {
            xle_sb_puts(b, " ");
            padded(b, cells[i], 7, 1);
        }
    }
    xle_sb_puts(b, "\n");
}

static void header(xle_sb *b, int md, const char *corner, char cols[][32], int n) {
    row(b, md, corner, cols, n);
    if (md) {
        xle_sb_puts(b, "|---|");
        for (int i = 0; i < n; i++) xle_sb_puts(b, "---:|");
        xle_sb_puts(b, "\n");
    }
}

static void counts_table(const xle_report *r, int md, xle_sb *b) {
    char cols[64][32];
    int n = r->n_edit < 64 ? r->n_edit : 64;
    for (int e = 0; e < n; e++) snprintf(cols[e], sizeof cols[e], "%s", r->edit_langs[e]);
    xle_sb_puts(b, md ? "Units per method and edit language (ok / skipped / failed):\n\n"
                      : "Units per method and edit language (ok/skipped/failed):\n");
    header(b, md, "method", cols, n);
    for (int m = 0; m < r->n_methods; m++) {
        char cells[64][32];
        for (int e = 0; e < n; e++) {
            size_t k = (size_t)m * (size_t)r->n_edit + (size_t)e;
            snprintf(cells[e], sizeof cells[e], "%d/%d/%d", r->n_ok[k], r->n_skipped[k],
                     r->n_failed[k]);
        }
        row(b, md, r->methods[m], cells, n);
    }
    if (r->n_skips) {
        xle_sb_puts(b, md ? "\nNot edited:\n\n" : "Not edited:\n");
        for (int i = 0; i < r->n_skips; i++)
            xle_sb_printf(b, md ? "- %s, edit language %s: %s (%d)\n" : "  %s, edit language %s: %s (%d)\n",
                          r->methods[r->skips[i].method], r->edit_langs[r->skips[i].edit], r->skips[i].reason,
                          r->skips[i].count);
    }
    xle_sb_puts(b, "\n");
}

/* Pooled cell of method m, metric k, test language t over edit languages: same (the test
 * language itself) or other (every other single edit language). */
static xle_cell pooled_for_test(const xle_report *r, int m, int k, int t, int same) {
    xle_cell c = {0, 0};
    for (int e = 0; e < r->n_edit; e++) {
        if (!strcmp(r->edit_langs[e], "all")) continue;
        if (same != !strcmp(r->edit_langs[e], r->test_langs[t])) continue;
        const xle_cell *x = xle_report_cell(r, m, k, e, t);
        c.sum += x->sum, c.n += x->n;
    }
    return c;
}

/* The headline per test language that compares across scripts: exact match of the greedy
 * answer, edited in that language and in the others, against the unedited model. */
void xle_render_headline(const xle_report *r, int m, int md, xle_sb *b) {
    xle_sb_puts(b, md ? "### Headline per test language (exact match)\n\n" : "Headline per test language (exact match)\n");
    xle_sb_puts(b, "Reliability exact match of the greedy answer with the target, x100: edited in the test\n"
                   "language (ELFI), edited in another language (ELFO), the unedited model (pre), the change\n"
                   "(d ELFO = ELFO - pre); generalization exact match edited in another language and unedited;\n"
                   "the unedited model's reliability token accuracy (acc-pre). Token accuracy is\n"
                   "not comparable across scripts: a target of several pieces is teacher-forced after its first\n"
                   "piece, so the later pieces of a long Hindi/Tamil/Kannada name are easy to predict and the\n"
                   "unedited model already scores high (the last column); exact match needs every piece from\n"
                   "the model itself and starts near 0 in every script.\n");
    if (md) xle_sb_puts(b, "\n");
    char cols[7][32] = {"ELFI", "ELFO", "pre", "d ELFO", "gen-out", "gen-pre", "acc-pre"};
    header(b, md, "test", cols, 7);
    for (int t = 0; t < r->n_test; t++) {
        xle_cell ri = pooled_for_test(r, m, XLE_METRIC_REL_EM, t, 1), ro = pooled_for_test(r, m, XLE_METRIC_REL_EM, t, 0),
                 go = pooled_for_test(r, m, XLE_METRIC_GEN_EM, t, 0);
        const xle_cell *rp = &r->pre[(size_t)XLE_METRIC_REL_EM * (size_t)r->n_test + (size_t)t],
                       *gp = &r->pre[(size_t)XLE_METRIC_GEN_EM * (size_t)r->n_test + (size_t)t],
                       *ap = &r->pre[(size_t)XLE_METRIC_REL_ACC * (size_t)r->n_test + (size_t)t];
        char cells[7][32];
        fmt_pct(cells[0], 32, xle_cell_mean(&ri));
        fmt_pct(cells[1], 32, xle_cell_mean(&ro));
        fmt_pct(cells[2], 32, xle_cell_mean(rp));
        fmt_pct(cells[3], 32, xle_cell_mean(&ro) - xle_cell_mean(rp));
        fmt_pct(cells[4], 32, xle_cell_mean(&go));
        fmt_pct(cells[5], 32, xle_cell_mean(gp));
        fmt_pct(cells[6], 32, xle_cell_mean(ap));
        row(b, md, r->test_langs[t], cells, 7);
    }
    xle_sb_puts(b, "\n");
}

xle_status xle_render_text(const xle_report *r, int md, xle_sb *b, xle_error *err) {
    (void)err;
    xle_sb_printf(b, md ? "# xledit evaluation report\n\n" : "xledit evaluation report\n\n");
    xle_sb_printf(b, md ? "- run: `%s`\n- model: `%s`\n- data: `%s`\n- cases: %d\n\n"
                        : "run:   %s\nmodel: %s\ndata:  %s\ncases: %d\n\n",
                  r->run_dir, r->model ? r->model : "?", r->data ? r->data : "?", r->n_cases);
    counts_table(r, md, b);
    xle_sb_puts(b, "Values: means over units x100 (percent; magnitudes in percentage points); '-' = no value.\n"
                   "ELFI: edit and test in the same language; ELFO: edit in one language, test in another;\n"
                   "all: the fact edited in every language at once; pre: the unedited model.\n\n");
    int nt = r->n_test < 60 ? r->n_test : 60;
    for (int m = 0; m < r->n_methods; m++) {
        xle_sb_printf(b, md ? "## %s\n\n" : "==== %s ====\n\n", r->methods[m]);
        char cols[4][32] = {"ELFI", "ELFO", "all", "pre"};
        if (md) xle_sb_printf(b, "### Summary\n\n");
        else xle_sb_printf(b, "%s summary\n", r->methods[m]);
        header(b, md, "metric", cols, 4);
        for (int k = 0; k < XLE_METRIC_COUNT; k++) {
            size_t mk = (size_t)m * XLE_METRIC_COUNT + (size_t)k;
            xle_cell pre = pre_pooled(r, k);
            char cells[4][32];
            fmt_pct(cells[0], 32, xle_cell_mean(&r->elfi[mk]));
            fmt_pct(cells[1], 32, xle_cell_mean(&r->elfo[mk]));
            fmt_pct(cells[2], 32, xle_cell_mean(&r->all[mk]));
            fmt_pct(cells[3], 32, xle_cell_mean(&pre));
            row(b, md, xle_metric_name((xle_metric)k), cells, 4);
        }
        xle_sb_puts(b, "\n");
        xle_render_headline(r, m, md, b);
        for (int k = 0; k < XLE_METRIC_COUNT; k++) {
            if (md) xle_sb_printf(b, "### %s: %s\n\n", r->methods[m], xle_metric_title((xle_metric)k));
            else xle_sb_printf(b, "%s %s: %s\n", r->methods[m], xle_metric_name((xle_metric)k),
                               xle_metric_title((xle_metric)k));
            char tcols[60][32];
            for (int t = 0; t < nt; t++) snprintf(tcols[t], 32, "%s", r->test_langs[t]);
            header(b, md, "edit \\ test", tcols, nt);
            for (int e = 0; e < r->n_edit; e++) {
                char cells[60][32];
                for (int t = 0; t < nt; t++) fmt_pct(cells[t], 32, xle_cell_mean(xle_report_cell(r, m, k, e, t)));
                row(b, md, r->edit_langs[e], cells, nt);
            }
            char cells[60][32];
            for (int t = 0; t < nt; t++)
                fmt_pct(cells[t], 32, xle_cell_mean(&r->pre[(size_t)k * (size_t)r->n_test + (size_t)t]));
            row(b, md, "pre", cells, nt);
            xle_sb_puts(b, "\n");
        }
    }
    return XLE_OK;
}

/* CSV fields here are method names, metric names and language codes: no quoting needed. */
xle_status xle_render_csv(const xle_report *r, xle_sb *b, xle_error *err) {
    (void)err;
    xle_sb_puts(b, "method,metric,edit_lang,test_lang,mean,n\n");
    for (int m = 0; m < r->n_methods; m++)
        for (int k = 0; k < XLE_METRIC_COUNT; k++)
            for (int e = 0; e < r->n_edit; e++)
                for (int t = 0; t < r->n_test; t++) {
                    const xle_cell *c = xle_report_cell(r, m, k, e, t);
                    xle_sb_printf(b, "%s,%s,%s,%s,", r->methods[m], xle_metric_name((xle_metric)k),
                                  r->edit_langs[e], r->test_langs[t]);
                    if (c->n) xle_sb_printf(b, "%.10g", xle_cell_mean(c));
                    xle_sb_printf(b, ",%d\n", c->n);
                }
    for (int k = 0; k < XLE_METRIC_COUNT; k++)
        for (int t = 0; t < r->n_test; t++) {
            const xle_cell *c = &r->pre[(size_t)k * (size_t)r->n_test + (size_t)t];
            xle_sb_printf(b, "pre-edit,%s,pre,%s,", xle_metric_name((xle_metric)k), r->test_langs[t]);
            if (c->n) xle_sb_printf(b, "%.10g", xle_cell_mean(c));
            xle_sb_printf(b, ",%d\n", c->n);
        }
    return XLE_OK;
}

static json_t *mean_json(const xle_cell *c) { return c->n ? json_real(xle_cell_mean(c)) : json_null(); }

static json_t *langs_json(char (*langs)[XLE_LANG_MAX], int n) {
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_string(langs[i]));
    return a;
}

xle_status xle_render_json(const xle_report *r, xle_sb *b, xle_error *err) {
    json_t *methods = json_array();
    for (int m = 0; m < r->n_methods; m++) {
        json_t *metrics = json_object(), *ok = json_object(), *skipped = json_object(), *failed = json_object();
        for (int e = 0; e < r->n_edit; e++) {
            size_t k = (size_t)m * (size_t)r->n_edit + (size_t)e;
            json_object_set_new(ok, r->edit_langs[e], json_integer(r->n_ok[k]));
            json_object_set_new(skipped, r->edit_langs[e], json_integer(r->n_skipped[k]));
            json_object_set_new(failed, r->edit_langs[e], json_integer(r->n_failed[k]));
        }
        for (int k = 0; k < XLE_METRIC_COUNT; k++) {
            json_t *mean = json_array(), *n = json_array(), *pre = json_array();
            for (int e = 0; e < r->n_edit; e++) {
                json_t *mr = json_array(), *nr = json_array();
                for (int t = 0; t < r->n_test; t++) {
                    const xle_cell *c = xle_report_cell(r, m, k, e, t);
                    json_array_append_new(mr, mean_json(c));
                    json_array_append_new(nr, json_integer(c->n));
                }
                json_array_append_new(mean, mr);
                json_array_append_new(n, nr);
            }
            for (int t = 0; t < r->n_test; t++)
                json_array_append_new(pre, mean_json(&r->pre[(size_t)k * (size_t)r->n_test + (size_t)t]));
            size_t mk = (size_t)m * XLE_METRIC_COUNT + (size_t)k;
            json_object_set_new(metrics, xle_metric_name((xle_metric)k),
                                json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:o}", "title",
                                          xle_metric_title((xle_metric)k), "mean", mean, "n", n, "pre", pre,
                                          "elfi", mean_json(&r->elfi[mk]), "elfo", mean_json(&r->elfo[mk]),
                                          "all", mean_json(&r->all[mk])));
        }
        json_array_append_new(methods, json_pack("{s:s, s:{s:o, s:o, s:o}, s:o}", "method", r->methods[m],
                                                 "units", "ok", ok, "skipped", skipped, "failed", failed,
                                                 "metrics", metrics));
    }
    json_t *skips = json_array();
    for (int i = 0; i < r->n_skips; i++)
        json_array_append_new(skips, json_pack("{s:s, s:s, s:s, s:i}", "method", r->methods[r->skips[i].method],
                                               "edit_lang", r->edit_langs[r->skips[i].edit], "reason",
                                               r->skips[i].reason, "count", r->skips[i].count));
    json_t *doc = json_pack("{s:s, s:s?, s:s?, s:i, s:o, s:o, s:o, s:o, s:i}", "run_dir", r->run_dir, "model",
                            r->model, "data", r->data, "cases", r->n_cases, "edit_langs",
                            langs_json(r->edit_langs, r->n_edit), "test_langs", langs_json(r->test_langs, r->n_test),
                            "methods", methods, "not_edited", skips, "failures", r->total_failures);
    char *text = doc ? json_dumps(doc, JSON_INDENT(1) | JSON_REAL_PRECISION(10)) : NULL;
    json_decref(doc);
    if (!text) return xle_fail(err, XLE_ERR_NOMEM, "report: cannot encode JSON");
    xle_sb_puts(b, text);
    xle_sb_puts(b, "\n");
    free(text);
    return XLE_OK;
}
