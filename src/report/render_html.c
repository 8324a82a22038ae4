/*
 * render_html.c: an evaluation run as one self-contained HTML page: inline CSS, no script and
 * nothing fetched from the network, SVG heatmaps of every edit-language x test-language matrix
 * (colour scale with a legend, the value written in each cell), and a per-case view of the
 * units whose edit did not take or that changed a locality answer (prompt, expected answer,
 * the model's answer before and after, in each failing language).
 *
 * The page is also well-formed XML (XHTML syntax: quoted attributes, closed empty elements,
 * every text escaped), so XML tools can check it. Text is UTF-8 as stored in the run.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "eval/eval_internal.h"
#include "report/report_internal.h"

/* ---- colours ------------------------------------------------------------------------------- */

typedef struct rgb {
    double r, g, b;
} rgb;

/* viridis at five points (0, .25, .5, .75, 1) for rates; red-white-blue for signed values */
static const rgb seq_stops[5] = {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
static const rgb div_stops[3] = {{178, 24, 43}, {247, 247, 247}, {33, 102, 172}};

static rgb ramp(const rgb *stops, int n, double x) {
    if (x < 0) x = 0;
    if (x > 1) x = 1;
    double pos = x * (n - 1);
    int i = (int)pos;
    if (i >= n - 1) i = n - 2;
    double f = pos - i;
    rgb a = stops[i], b = stops[i + 1];
    return (rgb){a.r + f * (b.r - a.r), a.g + f * (b.g - a.g), a.b + f * (b.b - a.b)};
}

/* Colour of a value: rates 0..1 on viridis, signed -1..1 on red-white-blue. */
static rgb value_colour(double v, int is_signed) {
    return is_signed ? ramp(div_stops, 3, (v + 1) / 2) : ramp(seq_stops, 5, v);
}

static void put_rgb(xle_sb *b, rgb c) {
    xle_sb_printf(b, "#%02x%02x%02x", (int)lround(c.r), (int)lround(c.g), (int)lround(c.b));
}

static int dark(rgb c) { return 0.299 * c.r + 0.587 * c.g + 0.114 * c.b < 140; }

/* ---- language names ------------------------------------------------------------------------ */

/* English names of the ISO 639-1 codes the datasets and the built-in world use, for the axes
 * (a reader should not need to know that kn is Kannada). Unknown codes are shown as they are. */
static const char *language_name(const char *code) {
    static const char *const names[][2] = {
        {"ar", "Arabic"}, {"bn", "Bengali"}, {"ca", "Catalan"}, {"cs", "Czech"}, {"de", "German"},
        {"el", "Greek"}, {"en", "English"}, {"es", "Spanish"}, {"et", "Estonian"}, {"fa", "Persian"},
        {"fi", "Finnish"}, {"fr", "French"}, {"gu", "Gujarati"}, {"he", "Hebrew"}, {"hi", "Hindi"},
        {"hu", "Hungarian"}, {"id", "Indonesian"}, {"it", "Italian"}, {"ja", "Japanese"},
        {"kn", "Kannada"}, {"ko", "Korean"}, {"ml", "Malayalam"}, {"mr", "Marathi"}, {"nl", "Dutch"},
        {"pl", "Polish"}, {"pt", "Portuguese"}, {"ro", "Romanian"}, {"ru", "Russian"},
        {"sv", "Swedish"}, {"sw", "Swahili"}, {"ta", "Tamil"}, {"te", "Telugu"}, {"th", "Thai"},
        {"tr", "Turkish"}, {"uk", "Ukrainian"}, {"ur", "Urdu"}, {"vi", "Vietnamese"}, {"zh", "Chinese"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(code, names[i][0])) return names[i][1];
    return NULL;
}

/* ---- page pieces --------------------------------------------------------------------------- */

const char xle_report_css[] =
    "body{font-family:'Noto Sans','Noto Sans Devanagari','Noto Sans Tamil','Noto Sans Kannada',"
    "'DejaVu Sans',system-ui,sans-serif;margin:24px;color:#222;max-width:1500px}"
    "h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}"
    "h3{font-size:15px;margin-top:18px}"
    "table{border-collapse:collapse;margin:6px 0 14px;font-size:13px}"
    "th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}"
    "th{background:#f3f3f3}.l{text-align:left}"
    ".grid{display:flex;flex-wrap:wrap;gap:12px}"
    ".hm{border:1px solid #ddd;padding:6px 8px;background:#fff}"
    ".hm h4{margin:0 0 4px;font-size:12px;font-weight:600}"
    ".note{color:#555;font-size:13px}"
    "details{margin:3px 0;font-size:13px}summary{cursor:pointer}"
    "table.fail td{text-align:left;vertical-align:top}"
    ".miss{color:#b00020}.hit{color:#006400}.mark{font-weight:bold;margin-right:4px}"
    ".legend{display:inline-flex;align-items:center;gap:8px;margin-right:28px;font-size:13px}";

static void fmt_value(char *buf, size_t cap, double v) {
    if (isnan(v)) snprintf(buf, cap, "-");
    else snprintf(buf, cap, "%.1f", fabs(100.0 * v) < 0.05 ? 0.0 : 100.0 * v); /* no "-0.0" */
}

#define CELL_W 58
#define CELL_H 24
#define LABEL_W 96  /* "Portuguese pt" at 11px */
#define HEAD_H 32   /* two lines: the language's name, then its code */

/* One matrix (rows: edit languages, then the pre-edit row; columns: test languages). */
static void heatmap(const xle_report *r, int m, int k, xle_sb *b) {
    const int is_signed = xle_metric_is_signed((xle_metric)k);
    const int rows = r->n_edit + 1, cols = r->n_test;
    const int w = LABEL_W + cols * CELL_W + 2, h = HEAD_H + rows * CELL_H + 6;
    xle_sb_printf(b, "<div class=\"hm\"><h4>");
    xle_sb_html(b, xle_metric_title((xle_metric)k));
    xle_sb_printf(b, "</h4><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                     "viewBox=\"0 0 %d %d\" font-size=\"11\" role=\"img\"><title>",
                  w, h, w, h);
    xle_sb_html(b, r->methods[m]);
    xle_sb_printf(b, " %s: rows edit language, columns test language</title>", xle_metric_name((xle_metric)k));
    for (int t = 0; t < cols; t++) {
        const char *name = language_name(r->test_langs[t]);
        int x = LABEL_W + t * CELL_W + CELL_W / 2;
        if (name) {
            xle_sb_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"10\"%s>", x,
                          HEAD_H - 18, strlen(name) > 9 ? " textLength=\"54\" lengthAdjust=\"spacingAndGlyphs\"" : "");
            xle_sb_html(b, name);
            xle_sb_puts(b, "</text>");
        }
        xle_sb_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-weight=\"bold\">", x, HEAD_H - 6);
        xle_sb_html(b, r->test_langs[t]);
        xle_sb_puts(b, "</text>");
    }
    for (int e = 0; e < rows; e++) {
        int pre = e == r->n_edit;
        int y = HEAD_H + e * CELL_H + (pre ? 4 : 0);
        const char *name = pre ? "unedited" : language_name(r->edit_langs[e]);
        xle_sb_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\"%s>", LABEL_W - 6, y + CELL_H / 2 + 4,
                      pre ? " font-style=\"italic\"" : "");
        if (name) {
            xle_sb_puts(b, "<tspan font-size=\"10\">");
            xle_sb_html(b, name);
            xle_sb_puts(b, "</tspan> ");
        }
        xle_sb_puts(b, "<tspan font-weight=\"bold\">");
        xle_sb_html(b, pre ? "pre" : r->edit_langs[e]);
        xle_sb_puts(b, "</tspan></text>");
        for (int t = 0; t < cols; t++) {
            const xle_cell *c = pre ? &r->pre[(size_t)k * (size_t)r->n_test + (size_t)t] : xle_report_cell(r, m, k, e, t);
            double v = xle_cell_mean(c);
            int x = LABEL_W + t * CELL_W;
            char val[32];
            fmt_value(val, sizeof val, v);
            rgb col = isnan(v) ? (rgb){238, 238, 238} : value_colour(v, is_signed);
            xle_sb_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"", x, y, CELL_W - 1, CELL_H - 1);
            put_rgb(b, col);
            int elfi = !pre && !strcmp(r->edit_langs[e], r->test_langs[t]);
            xle_sb_printf(b, "\"%s><title>", elfi ? " stroke=\"#000\" stroke-width=\"2\"" : "");
            xle_sb_html(b, pre ? "pre-edit" : r->edit_langs[e]);
            xle_sb_printf(b, " -> ");
            xle_sb_html(b, r->test_langs[t]);
            xle_sb_printf(b, ": %s (n=%d)</title></rect>", val, c->n);
            /* ELFI: a black outline and a white one inside it, so the frame shows on dark
             * cells as on light ones */
            if (elfi)
                xle_sb_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" "
                                 "stroke=\"#fff\" stroke-width=\"1.5\"/>", x + 2, y + 2, CELL_W - 5, CELL_H - 5);
            xle_sb_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" fill=\"%s\">%s</text>", x + CELL_W / 2,
                          y + CELL_H / 2 + 4, !isnan(v) && dark(col) ? "#fff" : "#000", val);
        }
    }
    xle_sb_puts(b, "</svg></div>");
}

static void legend(xle_sb *b, int is_signed) {
    const char *id = is_signed ? "div" : "seq";
    xle_sb_printf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"350\" height=\"42\" font-size=\"11\" "
                     "role=\"img\"><title>colour scale</title><defs><linearGradient id=\"grad-%s\">", id);
    const int n = is_signed ? 3 : 5;
    for (int i = 0; i < n; i++) {
        xle_sb_printf(b, "<stop offset=\"%d%%\" stop-color=\"", 100 * i / (n - 1));
        put_rgb(b, is_signed ? div_stops[i] : seq_stops[i]);
        xle_sb_puts(b, "\"/>");
    }
    xle_sb_printf(b, "</linearGradient></defs><rect x=\"20\" y=\"4\" width=\"300\" height=\"14\" fill=\"url(#grad-%s)\" "
                     "stroke=\"#999\"/>", id);
    for (int i = 0; i <= 4; i++) {
        int x = 20 + 75 * i;
        double v = is_signed ? -100 + 50 * i : 25 * i;
        xle_sb_printf(b, "<line x1=\"%d\" y1=\"18\" x2=\"%d\" y2=\"22\" stroke=\"#555\"/><text x=\"%d\" y=\"34\" "
                         "text-anchor=\"middle\">%.0f</text>", x, x, x, v);
    }
    xle_sb_puts(b, "</svg>");
}

static void th(xle_sb *b, const char *s, int left) {
    xle_sb_puts(b, left ? "<th class=\"l\">" : "<th>");
    xle_sb_html(b, s);
    xle_sb_puts(b, "</th>");
}

static void td_text(xle_sb *b, const char *s, const char *cls) {
    if (cls) xle_sb_printf(b, "<td class=\"%s\">", cls);
    else xle_sb_puts(b, "<td>");
    xle_sb_html(b, s ? s : "");
    xle_sb_puts(b, "</td>");
}

static void td_value(xle_sb *b, double v) {
    char val[32];
    fmt_value(val, sizeof val, v);
    xle_sb_printf(b, "<td>%s</td>", val);
}

static void counts(const xle_report *r, xle_sb *b) {
    xle_sb_puts(b, "<h2>Units</h2><p class=\"note\">One unit = one case edited with one method in one edit "
                   "language; ok / not edited (unusable half) / edit failed.</p><table><tr>");
    th(b, "method", 1);
    for (int e = 0; e < r->n_edit; e++) th(b, r->edit_langs[e], 0);
    xle_sb_puts(b, "</tr>");
    for (int m = 0; m < r->n_methods; m++) {
        xle_sb_puts(b, "<tr>");
        td_text(b, r->methods[m], "l");
        for (int e = 0; e < r->n_edit; e++) {
            size_t k = (size_t)m * (size_t)r->n_edit + (size_t)e;
            xle_sb_printf(b, "<td>%d / %d / %d</td>", r->n_ok[k], r->n_skipped[k], r->n_failed[k]);
        }
        xle_sb_puts(b, "</tr>");
    }
    xle_sb_puts(b, "</table>");
    if (r->n_skips) {
        xle_sb_puts(b, "<table><tr>");
        th(b, "method", 1), th(b, "edit language", 1), th(b, "why not edited", 1), th(b, "units", 0);
        xle_sb_puts(b, "</tr>");
        for (int i = 0; i < r->n_skips; i++) {
            xle_sb_puts(b, "<tr>");
            td_text(b, r->methods[r->skips[i].method], "l");
            td_text(b, r->edit_langs[r->skips[i].edit], "l");
            td_text(b, r->skips[i].reason, "l");
            xle_sb_printf(b, "<td>%d</td></tr>", r->skips[i].count);
        }
        xle_sb_puts(b, "</table>");
    }
}

static void summary(const xle_report *r, xle_sb *b) {
    xle_sb_puts(b, "<h2>Summary</h2><p class=\"note\">Means over units x100. ELFI: edited and tested in the "
                   "same language; ELFO: edited in one language, tested in another; all: the fact edited in "
                   "every language at once; pre: the unedited model.</p><table><tr>");
    th(b, "metric", 1);
    for (int m = 0; m < r->n_methods; m++) {
        static const char *const pools[3] = {"ELFI", "ELFO", "all"};
        for (int p = 0; p < 3; p++) {
            char h[96];
            snprintf(h, sizeof h, "%.40s %s", r->methods[m], pools[p]);
            th(b, h, 0);
        }
    }
    th(b, "pre", 0);
    xle_sb_puts(b, "</tr>");
    for (int k = 0; k < XLE_METRIC_COUNT; k++) {
        xle_sb_puts(b, "<tr>");
        td_text(b, xle_metric_title((xle_metric)k), "l");
        for (int m = 0; m < r->n_methods; m++) {
            size_t mk = (size_t)m * XLE_METRIC_COUNT + (size_t)k;
            td_value(b, xle_cell_mean(&r->elfi[mk]));
            td_value(b, xle_cell_mean(&r->elfo[mk]));
            td_value(b, xle_cell_mean(&r->all[mk]));
        }
        xle_cell pre = {0, 0};
        for (int t = 0; t < r->n_test; t++) {
            pre.sum += r->pre[(size_t)k * (size_t)r->n_test + (size_t)t].sum;
            pre.n += r->pre[(size_t)k * (size_t)r->n_test + (size_t)t].n;
        }
        td_value(b, xle_cell_mean(&pre));
        xle_sb_puts(b, "</tr>");
    }
    xle_sb_puts(b, "</table>");
}

/* The headline per test language of each method, as the text report writes it. */
static void headlines(const xle_report *r, xle_sb *b) {
    xle_sb_puts(b, "<h2>Headline per test language</h2>");
    for (int m = 0; m < r->n_methods; m++) {
        xle_sb t = {0};
        xle_render_headline(r, m, 0, &t);
        xle_sb_puts(b, "<h3>");
        xle_sb_html(b, r->methods[m]);
        xle_sb_puts(b, "</h3><pre>");
        if (t.p) xle_sb_html(b, t.p);
        if (t.oom) b->oom = 1;
        xle_sb_puts(b, "</pre>");
        free(t.p);
    }
}

static int metric_has_values(const xle_report *r, int m, int k) {
    for (int e = 0; e < r->n_edit; e++)
        for (int t = 0; t < r->n_test; t++)
            if (xle_report_cell(r, m, k, e, t)->n) return 1;
    return 0;
}

static void failures(const xle_report *r, xle_sb *b) {
    xle_sb_printf(b, "<h2>Per-case failures</h2><p class=\"note\">Units whose greedy answer to the edit prompt "
                     "is not the new target, or whose answer to a locality prompt changed, in at least one "
                     "language: %d in all", r->total_failures);
    if (r->total_failures > r->n_failures) xle_sb_printf(b, ", the first %d shown", r->n_failures);
    xle_sb_printf(b, ". Answers are greedy, shown whole: decoded past the expected answer's length in tokens "
                     "to the end of the word (at most %d tokens more); the mark compares the first tokens, "
                     "as exact match does.", XLE_ANSWER_EXTRA_TOKENS);
    xle_sb_puts(b, " After: "
                   "<span class=\"hit\"><span class=\"mark\">\xE2\x9C\x93</span>as it should be</span> "
                   "(the new target; for a locality probe, the answer before the edit), "
                   "<span class=\"miss\"><span class=\"mark\">\xE2\x9C\x97</span>not</span>.</p>");
    for (int i = 0; i < r->n_failures; i++) {
        const xle_report_failure *f = &r->failures[i];
        xle_sb_puts(b, "<details><summary>case ");
        xle_sb_html(b, f->case_id);
        xle_sb_puts(b, " &#183; ");
        xle_sb_html(b, f->method);
        xle_sb_puts(b, " &#183; edited in ");
        xle_sb_html(b, f->edit_lang);
        xle_sb_puts(b, " &#183; failing in");
        for (int k = 0; k < f->n_langs; k++) {
            xle_sb_puts(b, " ");
            xle_sb_html(b, f->langs[k]);
        }
        xle_sb_puts(b, "</summary><table class=\"fail\"><tr>");
        th(b, "lang", 1), th(b, "probe", 1), th(b, "prompt", 1), th(b, "expected", 1), th(b, "before", 1),
            th(b, "after", 1);
        xle_sb_puts(b, "</tr>");
        for (int k = 0; k < f->n_langs; k++)
            for (int p = 0; p < f->n_probes[k]; p++) {
                const xle_report_probe *q = &f->probes[k][p];
                /* locality should keep the old answer; the others should give the expected one */
                int loc = q->kind && !strcmp(q->kind, "loc");
                const char *want = loc ? q->before : q->expected;
                int hit = want && q->after && xle_exact_match(q->after, want);
                xle_sb_puts(b, "<tr>");
                td_text(b, f->langs[k], NULL);
                td_text(b, q->kind, NULL);
                td_text(b, q->prompt, NULL);
                td_text(b, q->expected, NULL);
                /* shown whole where the run has it (older runs: as long as expected) */
                td_text(b, q->before_whole ? q->before_whole : q->before, NULL);
                xle_sb_printf(b, "<td class=\"%s\"><span class=\"mark\">%s</span>", hit ? "hit" : "miss",
                              hit ? "\xE2\x9C\x93" : "\xE2\x9C\x97"); /* ✓ ✗ */
                xle_sb_html(b, q->after_whole ? q->after_whole : q->after ? q->after : "");
                xle_sb_puts(b, "</td>");
                xle_sb_puts(b, "</tr>");
            }
        xle_sb_puts(b, "</table></details>");
    }
}

xle_status xle_render_html(const xle_report *r, xle_sb *b, xle_error *err) {
    (void)err;
    xle_sb_puts(b, "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\"><head>"
                   "<meta charset=\"utf-8\"/><title>xledit evaluation report</title><style>");
    xle_sb_puts(b, xle_report_css);
    xle_sb_puts(b, "</style></head><body><h1>xledit evaluation report</h1><table>");
    const char *info[4][2] = {{"run", r->run_dir}, {"model", r->model}, {"data", r->data}, {NULL, NULL}};
    for (int i = 0; info[i][0]; i++) {
        xle_sb_puts(b, "<tr>");
        th(b, info[i][0], 1);
        td_text(b, info[i][1] ? info[i][1] : "?", "l");
        xle_sb_puts(b, "</tr>");
    }
    xle_sb_printf(b, "<tr><th class=\"l\">cases</th><td class=\"l\">%d</td></tr></table>", r->n_cases);
    counts(r, b);
    summary(r, b);
    headlines(r, b);
    xle_sb_puts(b, "<h2>Matrices</h2><p class=\"note\">Rows: edit language (then the unedited model, "
                   "<i>pre</i>); columns: test language; cells framed in black and white are ELFI (edit and "
                   "test language the same). Values x100; hover a cell for the number of units behind it.</p><div><span class=\"legend\">Rates x100 ");
    legend(b, 0);
    xle_sb_puts(b, "</span><span class=\"legend\">Magnitudes (percentage points) ");
    legend(b, 1);
    xle_sb_puts(b, "</span></div>");
    for (int m = 0; m < r->n_methods; m++) {
        xle_sb_puts(b, "<h3>");
        xle_sb_html(b, r->methods[m]);
        xle_sb_puts(b, "</h3><div class=\"grid\">");
        int skipped = 0;
        for (int k = 0; k < XLE_METRIC_COUNT; k++) {
            if (metric_has_values(r, m, k)) heatmap(r, m, k, b);
            else skipped++;
        }
        xle_sb_puts(b, "</div>");
        if (skipped)
            xle_sb_printf(b, "<p class=\"note\">%d metric(s) without any value (e.g. no target_true in the "
                             "data for the CounterFact metrics) are not drawn.</p>", skipped);
    }
    if (r->sequential) xle_render_sequential_html(r, b);
    failures(r, b);
    xle_sb_puts(b, "</body></html>\n");
    return XLE_OK;
}
