/*
 * trace_out.c: causal traces as files (docs/tracing.md): one fact in several languages
 * (trace.json + trace.svg heatmaps side by side) and the mean indirect effect per layer and
 * language over a case file (summary.json + summary.svg). Files are written atomically.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <utf8proc.h>

#include "core/outpath.h"
#include "eval/run_files.h"
#include "xledit.h"

/* ---- text helpers ---------------------------------------------------------------------------- */

typedef struct sbuf {
    char *s;
    size_t n, cap;
    int failed;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    if (b->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->failed = 1;
            return;
        }
        if (b->s && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        size_t cap = (b->n + (size_t)k + 1) * 2 + 256;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->s = p, b->cap = cap;
    }
}

/* Valid UTF-8 (bad bytes as '?'), XML-escaped, into b. */
static void sb_xml(sbuf *b, const char *s) {
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0) {
            sb_printf(b, "?");
            i++;
            continue;
        }
        if (cp == '&') sb_printf(b, "&amp;");
        else if (cp == '<') sb_printf(b, "&lt;");
        else if (cp == '>') sb_printf(b, "&gt;");
        else if (cp == '"') sb_printf(b, "&quot;");
        else if (cp < 0x20) sb_printf(b, " ");
        else sb_printf(b, "%.*s", (int)k, s + i);
        i += (size_t)k;
    }
}

/* One token as text, valid UTF-8 (a byte piece of a longer character shows as '?'). */
static char *token_text(const xle_tokenizer *tok, int32_t id) {
    char *s = xle_detokenize(tok, &id, 1, 0);
    if (!s) return NULL;
    size_t n = strlen(s), w = 0;
    for (size_t i = 0; i < n;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0) {
            s[w++] = '?';
            i++;
        } else {
            memmove(s + w, s + i, (size_t)k);
            w += (size_t)k, i += (size_t)k;
        }
    }
    s[w] = 0;
    return s;
}

static xle_status make_dir(const char *dir, xle_error *err) {
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return xle_fail(err, XLE_ERR_IO, "%s: cannot create the directory: %s", dir, strerror(errno));
    return XLE_OK;
}

static xle_status write_file(const char *dir, const char *name, const char *text, xle_error *err) {
    char *path = xle_path_join_dir(dir, name);
    if (!path) return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    xle_status st = xle_atomic_write(path, text, strlen(text), err);
    free(path);
    return st;
}

static xle_status write_json(const char *dir, const char *name, json_t *doc, xle_error *err) {
    char *text = doc ? json_dumps(doc, JSON_INDENT(1) | JSON_REAL_PRECISION(8)) : NULL;
    if (!text) return xle_fail(err, XLE_ERR_NOMEM, "%s/%s: cannot encode", dir, name);
    size_t n = strlen(text);
    char *t2 = realloc(text, n + 2);
    if (t2) text = t2, text[n] = '\n', text[n + 1] = 0;
    xle_status st = write_file(dir, name, text, err);
    free(text);
    return st;
}

/* ROME's colour maps: Purples (hidden), Greens (MLP), Reds (attention); v in [0, 1]. */
static void colour(int kind, double v, char out[8]) {
    static const int dark[XLE_TRACE_KINDS][3] = {{63, 0, 125}, {0, 109, 44}, {165, 15, 21}};
    if (!(v > 0)) v = 0;
    if (v > 1) v = 1;
    int r = (int)lround(255 + (dark[kind][0] - 255) * v), g = (int)lround(255 + (dark[kind][1] - 255) * v),
        b = (int)lround(255 + (dark[kind][2] - 255) * v);
    snprintf(out, 8, "#%02x%02x%02x", r, g, b);
}

/* ---- one fact in several languages ------------------------------------------------------------ */

typedef struct traced {
    const xle_trace_fact *fact;
    xle_tokens toks;
    int sb, se, ok;
    char *skip;                 /* why not traced */
    xle_trace_result res;
    char **texts;               /* per token */
    char *target_text;
} traced;

static void traced_free(traced *t) {
    for (int i = 0; t->texts && i < t->toks.n; i++) free(t->texts[i]);
    free(t->texts), free(t->skip), free(t->target_text);
    xle_tokens_free(&t->toks);
    xle_trace_result_free(&t->res);
}

static json_t *matrix_json(const double *m, int rows, int cols) {
    json_t *a = json_array();
    for (int r = 0; r < rows; r++) {
        json_t *row = json_array();
        for (int c = 0; c < cols; c++) json_array_append_new(row, json_real(m[r * cols + c]));
        json_array_append_new(a, row);
    }
    return a;
}

static json_t *traced_json(const traced *t) {
    const xle_trace_fact *f = t->fact;
    json_t *o = json_pack("{s:s, s:s, s:s}", "lang", f->lang ? f->lang : "", "prompt", f->prompt, "subject",
                          f->subject);
    if (!t->ok) {
        json_object_set_new(o, "skipped", json_string(t->skip ? t->skip : "?"));
        return o;
    }
    json_t *tokens = json_array(), *ids = json_array();
    for (int i = 0; i < t->toks.n; i++) {
        json_array_append_new(tokens, json_string(t->texts[i]));
        json_array_append_new(ids, json_integer(t->toks.ids[i]));
    }
    json_object_set_new(o, "tokens", tokens);
    json_object_set_new(o, "ids", ids);
    json_object_set_new(o, "subject_tokens", json_pack("[i,i]", t->sb, t->se));
    json_object_set_new(o, "target", json_pack("{s:i, s:s}", "id", (int)t->res.target, "text", t->target_text));
    json_object_set_new(o, "p_clean", json_real(t->res.p_clean));
    json_object_set_new(o, "p_corrupt", json_real(t->res.p_corrupt));
    for (int k = 0; k < XLE_TRACE_KINDS; k++)
        json_object_set_new(o, xle_trace_kind_name((xle_trace_kind)k),
                            matrix_json(t->res.scores[k], t->res.n_tokens, t->res.n_layers));
    return o;
}

#define CELL_W 16
#define CELL_H 15
#define LABEL_W 120
#define PANEL_PAD 24
#define TITLE_H 34

static void svg_heatmaps(sbuf *b, const traced *ts, int n, int n_layers) {
    int max_tok = 1, cols = 0;
    for (int i = 0; i < n; i++)
        if (ts[i].ok) {
            cols++;
            if (ts[i].toks.n > max_tok) max_tok = ts[i].toks.n;
        }
    const int pw = LABEL_W + n_layers * CELL_W + PANEL_PAD, ph = TITLE_H + max_tok * CELL_H + 40;
    sb_printf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" "
              "font-size=\"10\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
              (cols ? cols : 1) * pw + 10, XLE_TRACE_KINDS * ph + 10);
    int col = 0;
    for (int i = 0; i < n; i++) {
        const traced *t = &ts[i];
        if (!t->ok) continue;
        for (int k = 0; k < XLE_TRACE_KINDS; k++) {
            const int x0 = 5 + col * pw, y0 = 5 + k * ph;
            const double *s = t->res.scores[k];
            double lo = t->res.p_corrupt, hi = lo;
            for (int j = 0; j < t->res.n_tokens * n_layers; j++) hi = s[j] > hi ? s[j] : hi;
            sb_printf(b, "<text x=\"%d\" y=\"%d\" font-size=\"11\">", x0, y0 + 12);
            sb_xml(b, t->fact->lang ? t->fact->lang : "");
            sb_printf(b, " %s: p(", k == XLE_TRACE_HIDDEN ? "hidden" : k == XLE_TRACE_MLP ? "MLP" : "attn");
            sb_xml(b, t->target_text);
            sb_printf(b, ") %.3f -> %.3f</text>\n", t->res.p_clean, t->res.p_corrupt);
            sb_printf(b, "<text x=\"%d\" y=\"%d\" fill=\"#555\">colour: %.3f (white) .. %.3f</text>\n", x0, y0 + 25,
                      lo, hi);
            for (int tk = 0; tk < t->res.n_tokens; tk++) {
                const int y = y0 + TITLE_H + tk * CELL_H;
                int subj = tk >= t->sb && tk < t->se;
                sb_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\"%s>", x0 + LABEL_W - 4, y + CELL_H - 4,
                          subj ? " font-weight=\"bold\"" : "");
                sb_xml(b, t->texts[tk]);
                sb_printf(b, "%s</text>\n", subj ? "*" : "");
                for (int l = 0; l < n_layers; l++) {
                    char c[8];
                    colour(k, hi > lo ? (s[tk * n_layers + l] - lo) / (hi - lo) : 0, c);
                    sb_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\"><title>%.4f</title></rect>\n",
                              x0 + LABEL_W + l * CELL_W, y, CELL_W, CELL_H, c, s[tk * n_layers + l]);
                }
            }
            const int yb = y0 + TITLE_H + t->res.n_tokens * CELL_H;
            for (int l = 0; l < n_layers; l += (n_layers > 16 ? 4 : 1))
                sb_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%d</text>\n",
                          x0 + LABEL_W + l * CELL_W + CELL_W / 2, yb + 12, l);
            sb_printf(b, "<text x=\"%d\" y=\"%d\" fill=\"#555\">layer</text>\n", x0 + LABEL_W, yb + 24);
        }
        col++;
    }
    sb_printf(b, "</svg>\n");
}

/* Tokens, subject range and target of one fact. */
static xle_status prepare(xle_model *m, const xle_tokenizer *tok, const xle_trace_fact *f, traced *t, int32_t *target,
                          xle_error *err) {
    memset(t, 0, sizeof *t);
    t->fact = f;
    *target = -1;
    xle_error e2 = {0};
    xle_status st = xle_trace_tokens(tok, f->prompt, f->subject, &t->toks, &t->sb, &t->se, &e2);
    if (st == XLE_ERR_NOT_FOUND) {
        t->skip = strdup(e2.msg);
        return t->skip ? XLE_OK : xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    }
    if (st != XLE_OK) {
        *err = e2;
        return st;
    }
    if (t->toks.n > xle_model_config(m)->max_seq_len && xle_model_config(m)->max_seq_len > 0) {
        t->skip = strdup("prompt longer than the model's context");
        return XLE_OK;
    }
    if (f->target && *f->target) {
        int32_t *p = NULL, *a = NULL;
        int np = 0, na = 0;
        if ((st = xle_tokenize_continuation(tok, f->prompt, f->target, &p, &np, &a, &na, err)) != XLE_OK) return st;
        *target = na > 0 ? a[0] : -1;
        free(p), free(a);
        if (*target < 0) return xle_fail(err, XLE_ERR_ARG, "trace: target '%.80s' has no tokens", f->target);
    }
    t->ok = 1;
    return XLE_OK;
}

static xle_status finish(const xle_tokenizer *tok, traced *t, xle_error *err) {
    t->texts = calloc((size_t)t->toks.n + 1, sizeof *t->texts);
    t->target_text = token_text(tok, t->res.target);
    if (!t->texts || !t->target_text) return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    for (int i = 0; i < t->toks.n; i++)
        if (!(t->texts[i] = token_text(tok, t->toks.ids[i]))) return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    return XLE_OK;
}

/* noise_scale x the std of every subject token of ts[0..n). */
static xle_status noise_for(xle_model *m, const traced *ts, int n, const xle_trace_opts *o, double noise_scale,
                            double *level, double *emb_std, xle_error *err) {
    int total = 0;
    for (int i = 0; i < n; i++) total += ts[i].ok ? ts[i].se - ts[i].sb : 0;
    int32_t *ids = malloc((size_t)(total + 1) * sizeof *ids);
    if (!ids) return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    int k = 0;
    for (int i = 0; i < n; i++)
        for (int j = ts[i].sb; ts[i].ok && j < ts[i].se; j++) ids[k++] = ts[i].toks.ids[j];
    *emb_std = 0;
    xle_status st = k ? xle_embedding_std(m, ids, k, emb_std, err) : XLE_OK;
    free(ids);
    *level = o->noise_level > 0 ? o->noise_level : noise_scale * *emb_std;
    return st;
}

static json_t *opts_json(const xle_trace_opts *o, double level, double emb_std, double noise_scale) {
    return json_pack("{s:i, s:i, s:I, s:f, s:f, s:f}", "samples", o->samples, "window", o->window, "seed",
                     (json_int_t)o->seed, "noise_level", level, "subject_embedding_std", emb_std, "noise_scale",
                     noise_scale);
}

xle_status xle_trace_facts(xle_model *m, const xle_trace_fact *facts, int n, const xle_trace_opts *opts,
                           double noise_scale, const char *out_dir, xle_progress_fn progress, void *user,
                           xle_error *err) {
    const xle_tokenizer *tok = xle_model_tokenizer(m);
    if (!tok) return xle_fail(err, XLE_ERR_ARG, "trace: the model has no tokenizer");
    if (n < 1) return xle_fail(err, XLE_ERR_ARG, "trace: nothing to trace");
    traced *ts = calloc((size_t)n, sizeof *ts);
    int32_t *targets = calloc((size_t)n, sizeof *targets);
    xle_status st = ts && targets ? XLE_OK : xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    int n_ok = 0;
    for (int i = 0; i < n && st == XLE_OK; i++) {
        st = prepare(m, tok, &facts[i], &ts[i], &targets[i], err);
        n_ok += ts[i].ok;
    }
    if (st == XLE_OK && !n_ok) st = xle_fail(err, XLE_ERR_NOT_FOUND, "%s", ts[0].skip ? ts[0].skip : "trace: nothing to trace");
    double level = 0, emb_std = 0;
    if (st == XLE_OK) st = noise_for(m, ts, n, opts, noise_scale, &level, &emb_std, err);
    if (st == XLE_OK && progress && progress(user, 0, n)) st = xle_fail(err, XLE_ERR_INTERRUPTED, "trace: interrupted");
    for (int i = 0; i < n && st == XLE_OK; i++) {
        if (ts[i].ok) {
            xle_trace_opts o = *opts;
            o.noise_level = level;
            o.target = targets[i];
            o.noise = NULL;
            if ((st = xle_trace(m, ts[i].toks.ids, ts[i].toks.n, ts[i].sb, ts[i].se, &o, &ts[i].res, err)) == XLE_OK)
                st = finish(tok, &ts[i], err);
        }
        if (st == XLE_OK && progress && progress(user, i + 1, n))
            st = xle_fail(err, XLE_ERR_INTERRUPTED, "trace: interrupted");
    }
    json_t *doc = NULL;
    sbuf svg = {0};
    if (st == XLE_OK) st = make_dir(out_dir, err);
    if (st == XLE_OK) {
        json_t *arr = json_array();
        for (int i = 0; i < n; i++) json_array_append_new(arr, traced_json(&ts[i]));
        doc = json_pack("{s:s, s:s, s:i, s:o, s:o}", "format", "xledit-trace-1", "model", xle_model_path(m),
                        "layers", xle_model_config(m)->n_layers, "options",
                        opts_json(opts, level, emb_std, noise_scale), "facts", arr);
        svg_heatmaps(&svg, ts, n, xle_model_config(m)->n_layers);
        if (svg.failed) st = xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    }
    if (st == XLE_OK) st = write_json(out_dir, "trace.json", doc, err);
    if (st == XLE_OK) st = write_file(out_dir, "trace.svg", svg.s, err);
    json_decref(doc);
    free(svg.s);
    for (int i = 0; ts && i < n; i++) traced_free(&ts[i]);
    free(ts), free(targets);
    return st;
}

/* ---- the mean over a case file ------------------------------------------------------------- */

#define N_POS 2 /* at the subject's last token; at the last token */

static const char *const lang_colours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                           "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};

static void svg_lines(sbuf *b, char (*langs)[XLE_LANG_MAX], int nl, const double *mean, int L) {
    const int pw = 260, ph = 200, left = 44, top = 26, w = 190, h = 130;
    sb_printf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" "
              "font-size=\"10\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
              XLE_TRACE_KINDS * pw + 90, N_POS * ph + 10);
    for (int p = 0; p < N_POS; p++)
        for (int k = 0; k < XLE_TRACE_KINDS; k++) {
            const int x0 = 5 + k * pw, y0 = 5 + p * ph;
            double hi = 1e-6, lo = 0;
            for (int li = 0; li < nl; li++)
                for (int l = 0; l < L; l++) {
                    double v = mean[((li * XLE_TRACE_KINDS + k) * N_POS + p) * L + l];
                    if (isfinite(v)) hi = v > hi ? v : hi, lo = v < lo ? v : lo;
                }
            sb_printf(b, "<text x=\"%d\" y=\"%d\" font-size=\"11\">%s, %s: mean indirect effect</text>\n", x0,
                      y0 + 12, k == XLE_TRACE_HIDDEN ? "hidden" : k == XLE_TRACE_MLP ? "MLP" : "attn",
                      p == 0 ? "last subject token" : "last token");
            sb_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#999\"/>\n",
                      x0 + left, y0 + top, w, h);
            sb_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%.3f</text>\n", x0 + left - 3, y0 + top + 8, hi);
            sb_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%.3f</text>\n", x0 + left - 3, y0 + top + h, lo);
            for (int l = 0; l < L; l += (L > 16 ? 4 : 1))
                sb_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%d</text>\n",
                          x0 + left + (L > 1 ? l * w / (L - 1) : w / 2), y0 + top + h + 12, l);
            sb_printf(b, "<text x=\"%d\" y=\"%d\" fill=\"#555\">layer</text>\n", x0 + left + w / 2 - 10,
                      y0 + top + h + 24);
            for (int li = 0; li < nl; li++) {
                sb_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"",
                          lang_colours[li % 8]);
                for (int l = 0; l < L; l++) {
                    double v = mean[((li * XLE_TRACE_KINDS + k) * N_POS + p) * L + l];
                    if (!isfinite(v)) continue;
                    sb_printf(b, "%.1f,%.1f ", x0 + left + (L > 1 ? (double)l * w / (L - 1) : w / 2.0),
                              y0 + top + h - (v - lo) / (hi - lo) * h);
                }
                sb_printf(b, "\"/>\n");
            }
        }
    for (int li = 0; li < nl; li++) {
        sb_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"3\" fill=\"%s\"/><text x=\"%d\" y=\"%d\">",
                  XLE_TRACE_KINDS * pw + 10, 30 + li * 14, lang_colours[li % 8], XLE_TRACE_KINDS * pw + 26,
                  34 + li * 14);
        sb_xml(b, langs[li]);
        sb_printf(b, "</text>\n");
    }
    sb_printf(b, "</svg>\n");
}

xle_status xle_trace_cases(xle_model *m, const char *cases_path, const char *const *langs_arg, int n_langs_arg,
                           int max_cases, const xle_trace_opts *opts, double noise_scale, const char *out_dir,
                           xle_progress_fn progress, void *user, xle_error *err) {
    const xle_tokenizer *tok = xle_model_tokenizer(m);
    if (!tok) return xle_fail(err, XLE_ERR_ARG, "trace: the model has no tokenizer");
    xle_cases *cs = NULL;
    xle_status st = xle_cases_load(cases_path, &cs, err);
    if (st != XLE_OK) return st;
    char langs[256][XLE_LANG_MAX];
    int nl = 0;
    if (langs_arg) {
        for (int i = 0; i < n_langs_arg && i < 256; i++) snprintf(langs[nl++], XLE_LANG_MAX, "%s", langs_arg[i]);
    } else {
        nl = xle_cases_lang_list(cs, langs, 256);
        if (nl > 256) nl = 256;
    }
    const int L = xle_model_config(m)->n_layers, nc = max_cases > 0 && max_cases < cs->n ? max_cases : cs->n;
    const size_t n_mean = (size_t)nl * XLE_TRACE_KINDS * N_POS * L;
    double *sum = calloc(n_mean + 1, sizeof *sum), *mean = calloc(n_mean + 1, sizeof *mean);
    int *count = calloc((size_t)nl + 1, sizeof *count), *skipped = calloc((size_t)nl + 1, sizeof *skipped);
    traced *ts = calloc((size_t)nc * nl + 1, sizeof *ts);
    xle_trace_fact *facts = calloc((size_t)nc * nl + 1, sizeof *facts);
    double *p_clean = calloc((size_t)nl + 1, sizeof *p_clean), *p_corrupt = calloc((size_t)nl + 1, sizeof *p_corrupt);
    if (!sum || !mean || !count || !skipped || !ts || !facts || !p_clean || !p_corrupt)
        st = xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    /* every fact first: one noise level over all subjects */
    for (int c = 0; c < nc && st == XLE_OK; c++)
        for (int li = 0; li < nl && st == XLE_OK; li++) {
            const xle_case_lang *l = xle_case_lang_find(&cs->cases[c], langs[li]);
            xle_trace_fact *f = &facts[c * nl + li];
            *f = (xle_trace_fact){langs[li], l ? l->prompt : "", l ? l->subject : "", NULL};
            int32_t target;
            if (l && l->prompt[0] && l->subject[0]) st = prepare(m, tok, f, &ts[c * nl + li], &target, err);
            else ts[c * nl + li].fact = f;
        }
    double level = 0, emb_std = 0;
    if (st == XLE_OK) st = noise_for(m, ts, nc * nl, opts, noise_scale, &level, &emb_std, err);
    const int64_t total = (int64_t)nc * nl;
    if (st == XLE_OK && progress && progress(user, 0, total)) st = xle_fail(err, XLE_ERR_INTERRUPTED, "trace: interrupted");
    for (int c = 0; c < nc && st == XLE_OK; c++)
        for (int li = 0; li < nl && st == XLE_OK; li++) {
            traced *t = &ts[c * nl + li];
            if (t->ok) {
                xle_trace_opts o = *opts;
                o.noise_level = level, o.target = -1, o.noise = NULL;
                st = xle_trace(m, t->toks.ids, t->toks.n, t->sb, t->se, &o, &t->res, err);
                if (st != XLE_OK) break;
                const int at[N_POS] = {t->se - 1, t->toks.n - 1};
                for (int k = 0; k < XLE_TRACE_KINDS; k++)
                    for (int p = 0; p < N_POS; p++)
                        for (int l = 0; l < L; l++)
                            sum[((li * XLE_TRACE_KINDS + k) * N_POS + p) * L + l] +=
                                t->res.scores[k][at[p] * L + l] - t->res.p_corrupt;
                p_clean[li] += t->res.p_clean, p_corrupt[li] += t->res.p_corrupt;
                count[li]++;
                xle_trace_result_free(&t->res);
            } else {
                skipped[li]++;
            }
            if (progress && progress(user, (int64_t)c * nl + li + 1, total))
                st = xle_fail(err, XLE_ERR_INTERRUPTED, "trace: interrupted");
        }
    json_t *doc = NULL;
    sbuf svg = {0};
    if (st == XLE_OK) st = make_dir(out_dir, err);
    if (st == XLE_OK) {
        json_t *per = json_object();
        for (int li = 0; li < nl; li++) {
            json_t *o = json_pack("{s:i, s:i}", "traced", count[li], "skipped", skipped[li]);
            json_object_set_new(o, "mean_p_clean", count[li] ? json_real(p_clean[li] / count[li]) : json_null());
            json_object_set_new(o, "mean_p_corrupt", count[li] ? json_real(p_corrupt[li] / count[li]) : json_null());
            for (int k = 0; k < XLE_TRACE_KINDS; k++) {
                json_t *kj = json_object();
                for (int p = 0; p < N_POS; p++) {
                    json_t *row = json_array();
                    for (int l = 0; l < L; l++) {
                        size_t i = ((size_t)(li * XLE_TRACE_KINDS + k) * N_POS + p) * L + l;
                        mean[i] = count[li] ? sum[i] / count[li] : NAN;
                        json_array_append_new(row, count[li] ? json_real(mean[i]) : json_null());
                    }
                    json_object_set_new(kj, p == 0 ? "last_subject_token" : "last_token", row);
                }
                json_object_set_new(o, xle_trace_kind_name((xle_trace_kind)k), kj);
            }
            json_object_set_new(per, langs[li], o);
        }
        doc = json_pack("{s:s, s:s, s:s, s:i, s:i, s:o, s:o}", "format", "xledit-trace-summary-1", "model",
                        xle_model_path(m), "cases", cases_path, "n_cases", nc, "layers", L, "options",
                        opts_json(opts, level, emb_std, noise_scale), "mean_indirect_effect", per);
        svg_lines(&svg, langs, nl, mean, L);
        if (svg.failed) st = xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    }
    if (st == XLE_OK) st = write_json(out_dir, "summary.json", doc, err);
    if (st == XLE_OK) st = write_file(out_dir, "summary.svg", svg.s, err);
    json_decref(doc);
    free(svg.s);
    for (int i = 0; ts && i < nc * nl; i++) traced_free(&ts[i]);
    free(sum), free(mean), free(count), free(skipped), free(ts), free(facts), free(p_clean), free(p_corrupt);
    xle_cases_free(cs);
    return st;
}
