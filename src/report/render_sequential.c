/*
 * render_sequential.c: a sequential run (RUN_DIR/sequential.jsonl, written by
 * `xledit eval --sequential`) in every report format: per method and edit language, the metrics
 * of all edits so far against the number of edits, one line (HTML: an SVG polyline; text: a
 * column) per test language, with the held-out cases' agreement with the unedited model and
 * the perplexity of the fixed text.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report/report_internal.h"

/* What is drawn: per test language, these metrics and the held-out agreement. */
static const char *const shown[] = {"rel_acc", "gen_acc", "loc_acc", "port_acc", "rel_em", "held_out_agreement"};
#define N_SHOWN 6

static const char *const shown_title[N_SHOWN] = {
    "Reliability (token accuracy)", "Generalization (token accuracy)", "Locality (token accuracy)",
    "Portability (token accuracy)", "Reliability (exact match)", "Held-out facts unchanged (token agreement)"};

/* eight distinguishable colours (Okabe-Ito, then grey) */
static const char *const palette[] = {"#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#555555"};

/* The lines of one stream, in file order (ascending edits). */
typedef struct stream_lines {
    const char *method, *edit_lang;
    const json_t **lines;
    int n;
} stream_lines;

static int streams_of(const xle_report *r, stream_lines **out) {
    size_t n_lines = json_array_size(r->sequential);
    stream_lines *s = calloc(n_lines + 1, sizeof *s);
    int n = 0;
    for (size_t i = 0; s && i < n_lines; i++) {
        const json_t *l = json_array_get(r->sequential, i);
        const char *m = json_string_value(json_object_get(l, "method")), *e = json_string_value(json_object_get(l, "edit_lang"));
        if (!m || !e) continue;
        int k = 0;
        while (k < n && (strcmp(s[k].method, m) || strcmp(s[k].edit_lang, e))) k++;
        if (k == n) {
            s[n].method = m, s[n].edit_lang = e;
            s[n++].lines = calloc(n_lines, sizeof *s[0].lines);
        }
        if (s[k].lines) s[k].lines[s[k].n++] = l;
    }
    *out = s;
    return s ? n : -1;
}

static void streams_free(stream_lines *s, int n) {
    for (int i = 0; s && i < n; i++) free(s[i].lines);
    free(s);
}

/* The value of `what` in test language lang at line l (NaN when absent). */
static double value_at(const json_t *l, const char *what, const char *lang) {
    const json_t *v = !strcmp(what, "held_out_agreement") ? json_object_get(json_object_get(l, what), lang)
                                                         : json_object_get(json_object_get(json_object_get(l, "tests"), lang), what);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static double edits_at(const json_t *l) { return (double)json_integer_value(json_object_get(l, "edits")); }

static double perplexity_at(const json_t *l) {
    const json_t *v = json_object_get(l, "perplexity");
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* ---- HTML: SVG line charts ------------------------------------------------------------------- */

#define CW 300   /* plot area */
#define CH 160
#define ML 40    /* margins for the axes' labels */
#define MB 30
#define MT 8
#define MR 10

/* One chart: x = edits (linear, 0..max), y = lo..hi; series[i] over the stream's lines. */
static void chart(xle_sb *b, const stream_lines *s, const char *title, double lo, double hi, int percent,
                  double (*get)(const json_t *, int, void *), void *user, int n_series,
                  const char *const *series_names) {
    const double xmax = s->n ? edits_at(s->lines[s->n - 1]) : 1;
    xle_sb_puts(b, "<div class=\"hm\"><h4>");
    xle_sb_html(b, title);
    xle_sb_printf(b, "</h4><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-size=\"10\">",
                  ML + CW + MR, MT + CH + MB);
    /* axes, grid and ticks */
    for (int i = 0; i <= 4; i++) {
        const double v = lo + (hi - lo) * i / 4.0;
        const int y = MT + CH - (int)lround(CH * i / 4.0);
        xle_sb_printf(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#e5e5e5\"/>", ML, y, ML + CW, y);
        xle_sb_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%.*f</text>", ML - 4, y + 3,
                      percent ? 0 : 2, percent ? 100 * v : v);
    }
    for (int i = 0; i < s->n; i++) {
        const double e = edits_at(s->lines[i]);
        const int x = ML + (int)lround(CW * e / (xmax > 0 ? xmax : 1));
        xle_sb_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%.0f</text>", x, MT + CH + 12, e);
    }
    xle_sb_printf(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#888\"/>", ML, MT + CH, ML + CW, MT + CH);
    xle_sb_printf(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#888\"/>", ML, MT, ML, MT + CH);
    xle_sb_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">number of edits</text>", ML + CW / 2, MT + CH + 26);
    for (int k = 0; k < n_series; k++) {
        const char *colour = palette[k % 8];
        xle_sb_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.6\" points=\"", colour);
        for (int i = 0; i < s->n; i++) {
            const double v = get(s->lines[i], k, user);
            if (isnan(v)) continue;
            const double t = (v - lo) / (hi - lo > 0 ? hi - lo : 1);
            xle_sb_printf(b, "%.1f,%.1f ", ML + CW * edits_at(s->lines[i]) / (xmax > 0 ? xmax : 1),
                          MT + CH - CH * (t < 0 ? 0 : t > 1 ? 1 : t));
        }
        xle_sb_puts(b, "\"><title>");
        xle_sb_html(b, series_names[k]);
        xle_sb_puts(b, "</title></polyline>");
        for (int i = 0; i < s->n; i++) {
            const double v = get(s->lines[i], k, user);
            if (isnan(v)) continue;
            const double t = (v - lo) / (hi - lo > 0 ? hi - lo : 1);
            xle_sb_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2\" fill=\"%s\"><title>", ML + CW * edits_at(s->lines[i]) / (xmax > 0 ? xmax : 1),
                          MT + CH - CH * (t < 0 ? 0 : t > 1 ? 1 : t), colour);
            xle_sb_html(b, series_names[k]);
            xle_sb_printf(b, ", %.0f edits: %.4g</title></circle>", edits_at(s->lines[i]), percent ? 100 * v : v);
        }
    }
    xle_sb_puts(b, "</svg></div>");
}

typedef struct metric_get {
    const char *what;
    char (*langs)[XLE_LANG_MAX];
} metric_get;

static double get_metric(const json_t *l, int k, void *user) {
    const metric_get *g = user;
    return value_at(l, g->what, g->langs[k]);
}

static double get_perplexity(const json_t *l, int k, void *user) {
    (void)k, (void)user;
    return perplexity_at(l);
}

/* The test languages of a stream, in its first line's order (at most 64). */
static int stream_langs(const stream_lines *s, char (*langs)[XLE_LANG_MAX]) {
    int n = 0;
    const char *key;
    json_t *v;
    json_object_foreach(json_object_get(s->n ? s->lines[0] : NULL, "tests"), key, v) {
        (void)v;
        if (n < 64 && strlen(key) < XLE_LANG_MAX) snprintf(langs[n++], XLE_LANG_MAX, "%s", key);
    }
    return n;
}

void xle_render_sequential_html(const xle_report *r, xle_sb *b) {
    stream_lines *s = NULL;
    int n = streams_of(r, &s);
    xle_sb_puts(b, "<h2>Sequential editing</h2><p class=\"note\">Each method edits the cases one after "
                   "another in case order and keeps every edit; at each checkpoint all edits so far are "
                   "evaluated (the metrics are means over the edited cases, x100), the held-out cases' "
                   "teacher-forced answers are compared with the unedited model's, and the perplexity of a "
                   "fixed multilingual text is measured. One line per test language.</p>");
    for (int i = 0; i < n; i++) {
        char langs[64][XLE_LANG_MAX];
        const int nl = stream_langs(&s[i], langs);
        const char *names[64];
        for (int k = 0; k < nl; k++) names[k] = langs[k];
        xle_sb_puts(b, "<h3>");
        xle_sb_html(b, s[i].method);
        xle_sb_puts(b, ", edits in ");
        xle_sb_html(b, s[i].edit_lang);
        xle_sb_puts(b, "</h3><div>");
        for (int k = 0; k < nl; k++) {
            xle_sb_printf(b, "<span class=\"legend\"><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"18\" height=\"4\"><rect width=\"18\" height=\"4\" fill=\"%s\"/></svg>",
                          palette[k % 8]);
            xle_sb_html(b, langs[k]);
            xle_sb_puts(b, "</span>");
        }
        xle_sb_puts(b, "</div><div class=\"grid\">");
        for (int m = 0; m < N_SHOWN; m++) {
            metric_get g = {shown[m], langs};
            chart(b, &s[i], shown_title[m], 0, 1, 1, get_metric, &g, nl, names);
        }
        double lo = INFINITY, hi = -INFINITY;
        for (int j = 0; j < s[i].n; j++) {
            const double p = perplexity_at(s[i].lines[j]);
            if (!isnan(p)) lo = fmin(lo, p), hi = fmax(hi, p);
        }
        if (lo <= hi) {
            const char *pname[1] = {"perplexity"};
            const double pad = (hi - lo) * 0.1 + 1e-3;
            chart(b, &s[i], "Perplexity of the fixed text", lo - pad, hi + pad, 0, get_perplexity, NULL, 1, pname);
        }
        xle_sb_puts(b, "</div>");
    }
    streams_free(s, n);
}

/* ---- text, Markdown, CSV, JSON ---------------------------------------------------------------- */

void xle_render_sequential_text(const xle_report *r, int md, xle_sb *b) {
    stream_lines *s = NULL;
    int n = streams_of(r, &s);
    xle_sb_puts(b, md ? "## Sequential editing\n\n" : "Sequential editing (means over the edits so far, x100)\n\n");
    for (int i = 0; i < n; i++) {
        char langs[64][XLE_LANG_MAX];
        const int nl = stream_langs(&s[i], langs);
        for (int m = 0; m < N_SHOWN; m++) {
            xle_sb_printf(b, md ? "### %s, edits in %s: %s\n\n" : "%s, edits in %s: %s\n", s[i].method, s[i].edit_lang,
                          shown_title[m]);
            xle_sb_puts(b, md ? "| edits |" : "  edits");
            for (int k = 0; k < nl; k++) xle_sb_printf(b, md ? " %s |" : " %6s", langs[k]);
            if (m == 0) xle_sb_puts(b, md ? " perplexity |" : " perplexity");
            xle_sb_puts(b, "\n");
            if (md) {
                xle_sb_puts(b, "|---:|");
                for (int k = 0; k < nl + (m == 0); k++) xle_sb_puts(b, "---:|");
                xle_sb_puts(b, "\n");
            }
            for (int j = 0; j < s[i].n; j++) {
                xle_sb_printf(b, md ? "| %.0f |" : "  %5.0f", edits_at(s[i].lines[j]));
                for (int k = 0; k < nl; k++) {
                    const double v = value_at(s[i].lines[j], shown[m], langs[k]);
                    if (isnan(v)) xle_sb_puts(b, md ? " - |" : "      -");
                    else xle_sb_printf(b, md ? " %.1f |" : " %6.1f", 100 * v);
                }
                if (m == 0) xle_sb_printf(b, md ? " %.3f |" : " %10.3f", perplexity_at(s[i].lines[j]));
                xle_sb_puts(b, "\n");
            }
            xle_sb_puts(b, "\n");
        }
    }
    streams_free(s, n);
}

void xle_render_sequential_csv(const xle_report *r, xle_sb *b) {
    xle_sb_puts(b, "method,edit_lang,edits,test_lang,metric,value\n");
    for (size_t i = 0; i < json_array_size(r->sequential); i++) {
        const json_t *l = json_array_get(r->sequential, i);
        const char *m = json_string_value(json_object_get(l, "method")), *e = json_string_value(json_object_get(l, "edit_lang"));
        const double edits = edits_at(l);
        const char *lang, *key;
        json_t *metrics, *v;
        json_object_foreach(json_object_get(l, "tests"), lang, metrics) {
            json_object_foreach(metrics, key, v) {
                if (json_is_number(v)) xle_sb_printf(b, "%s,%s,%.0f,%s,%s,%.17g\n", m, e, edits, lang, key, json_number_value(v));
            }
            v = json_object_get(json_object_get(l, "held_out_agreement"), lang);
            if (json_is_number(v)) xle_sb_printf(b, "%s,%s,%.0f,%s,held_out_agreement,%.17g\n", m, e, edits, lang, json_number_value(v));
        }
        if (!isnan(perplexity_at(l))) xle_sb_printf(b, "%s,%s,%.0f,,perplexity,%.17g\n", m, e, edits, perplexity_at(l));
    }
}

xle_status xle_render_sequential_only(const xle_report *r, int format, xle_sb *b, xle_error *err) {
    switch (format) {
    case XLE_REPORT_TEXT:
    case XLE_REPORT_MD:
        xle_sb_printf(b, format == XLE_REPORT_MD ? "# xledit sequential editing report\n\n- run: `%s`\n- model: `%s`\n- data: `%s`\n\n"
                                                 : "xledit sequential editing report\n\nrun:   %s\nmodel: %s\ndata:  %s\n\n",
                      r->run_dir, r->model ? r->model : "?", r->data ? r->data : "?");
        xle_render_sequential_text(r, format == XLE_REPORT_MD, b);
        return XLE_OK;
    case XLE_REPORT_CSV: xle_render_sequential_csv(r, b); return XLE_OK;
    case XLE_REPORT_JSON: {
        char *text = json_dumps(r->sequential, JSON_INDENT(1) | JSON_REAL_PRECISION(17));
        if (!text) return xle_fail(err, XLE_ERR_NOMEM, "report: out of memory");
        xle_sb_puts(b, "{\"sequential\": ");
        xle_sb_puts(b, text);
        xle_sb_puts(b, "}\n");
        free(text);
        return XLE_OK;
    }
    case XLE_REPORT_HTML:
        xle_sb_puts(b, "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\"><head>"
                       "<meta charset=\"utf-8\"/><title>xledit sequential editing report</title><style>");
        xle_sb_puts(b, xle_report_css);
        xle_sb_puts(b, "</style></head><body><h1>xledit sequential editing report</h1><p class=\"note\">run ");
        xle_sb_html(b, r->run_dir);
        xle_sb_puts(b, ", model ");
        xle_sb_html(b, r->model ? r->model : "?");
        xle_sb_puts(b, ", data ");
        xle_sb_html(b, r->data ? r->data : "?");
        xle_sb_puts(b, "</p>");
        xle_render_sequential_html(r, b);
        xle_sb_puts(b, "</body></html>\n");
        return XLE_OK;
    default: return xle_fail(err, XLE_ERR_ARG, "report: unknown format %d", format);
    }
}
