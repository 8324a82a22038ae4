/*
 * report_internal.h: an evaluation run aggregated for reports (report.c), and the renderers
 * (render_tables.c: text, Markdown, CSV, JSON; render_html.c: HTML with SVG heatmaps).
 */
#ifndef XLE_REPORT_INTERNAL_H
#define XLE_REPORT_INTERNAL_H

#include <jansson.h>

#include "xledit.h"

/* A growing NUL-terminated string; `oom` is set (and further output dropped) when an
 * allocation fails. */
typedef struct xle_sb {
    char *p;
    size_t n, cap;
    int oom;
} xle_sb;

void xle_sb_puts(xle_sb *b, const char *s);
void xle_sb_putn(xle_sb *b, const char *s, size_t n);
void xle_sb_printf(xle_sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s with & < > " ' escaped for HTML text and attribute values. */
void xle_sb_html(xle_sb *b, const char *s);

/* A mean: sum of n values. */
typedef struct xle_cell {
    double sum;
    int n;
} xle_cell;

double xle_cell_mean(const xle_cell *c); /* NaN when n == 0 */

/* One probe of a unit in one test language, for the per-case view. */
typedef struct xle_report_probe {
    char *kind, *prompt, *expected, *before, *after; /* before/after: as long as expected (tokens) */
    char *before_whole, *after_whole; /* the same answers to the end of the word; NULL in runs
                                       * made before results.jsonl had them */
} xle_report_probe;

/* A unit whose edit did not take (greedy answer != target) or that changed a locality answer,
 * in at least one test language. */
typedef struct xle_report_failure {
    char *case_id, *method, *edit_lang;
    char **langs;                   /* the failing test languages */
    xle_report_probe **probes;      /* per failing language: its probes */
    int *n_probes;
    int n_langs;
} xle_report_failure;

typedef struct xle_skip_reason {
    int method, edit;               /* indices */
    char *reason;
    int count;
} xle_skip_reason;

#define XLE_REPORT_MAX_FAILURES 200

struct xle_report {
    char *run_dir;
    char *model, *data;             /* from run.json info (may be NULL) */
    int n_cases;
    char **methods;
    int n_methods;
    char (*edit_langs)[XLE_LANG_MAX];
    int n_edit;
    char (*test_langs)[XLE_LANG_MAX];
    int n_test;
    xle_cell *cells;                /* [method][metric][edit][test] */
    xle_cell *pre;                  /* [metric][test]: the unedited model, over cases */
    xle_cell *elfi, *elfo, *all;    /* [method][metric]: units pooled over the diagonal, the
                                     * off-diagonal (single edit language), and edit lang "all" */
    int *n_ok, *n_skipped, *n_failed; /* [method][edit] */
    xle_skip_reason *skips;
    int n_skips;
    xle_report_failure *failures;   /* the first XLE_REPORT_MAX_FAILURES, in run order */
    int n_failures, total_failures;
    int n_units_read;               /* lines of results.jsonl */
    json_t *sequential;             /* lines of sequential.jsonl (xledit eval --sequential), or NULL */
    int sequential_only;            /* the directory holds a sequential run only */
};

static inline xle_cell *xle_report_cell(const xle_report *r, int method, int metric, int edit, int test) {
    return &r->cells[(((size_t)method * XLE_METRIC_COUNT + (size_t)metric) * (size_t)r->n_edit + (size_t)edit) *
                         (size_t)r->n_test + (size_t)test];
}

/* 1 if the metric is a difference of probabilities (range -1..1) rather than a rate. */
int xle_metric_is_signed(xle_metric m);

xle_status xle_render_text(const xle_report *r, int markdown, xle_sb *b, xle_error *err);
/* The headline per test language of method m (exact match edited in / out of the language,
 * unedited, change), with the reason it is there (render_tables.c; HTML: md = 1 inside <pre>). */
void xle_render_headline(const xle_report *r, int m, int md, xle_sb *b);
xle_status xle_render_csv(const xle_report *r, xle_sb *b, xle_error *err);
xle_status xle_render_json(const xle_report *r, xle_sb *b, xle_error *err);
xle_status xle_render_html(const xle_report *r, xle_sb *b, xle_error *err);

/* The page's style sheet (render_html.c). */
extern const char xle_report_css[];

/* A sequential run (render_sequential.c): its section of an HTML page or a text report, its CSV,
 * and a whole report in `format` (xle_report_format) for a directory holding only that. */
void xle_render_sequential_html(const xle_report *r, xle_sb *b);
void xle_render_sequential_text(const xle_report *r, int md, xle_sb *b);
void xle_render_sequential_csv(const xle_report *r, xle_sb *b);
xle_status xle_render_sequential_only(const xle_report *r, int format, xle_sb *b, xle_error *err);

#endif
