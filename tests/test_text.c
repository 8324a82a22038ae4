/*
 * test_text.c: text for people. Display widths as terminals draw them (a spacing vowel sign
 * takes a cell, a virama none, a CJK character two; glibc's wcswidth is the reference); cuts that never split a consonant from its vowel sign;
 * table cells that line up across scripts (the demo's before/after table is made of these);
 * and greedy answers shown whole on the built-in model: from one token on, the answer runs to
 * the end of its word ("Parigi", not "Par"; a Tamil word with its last vowel sign and virama)
 * while its first tokens stay those of a plain greedy run (the metrics' definition).
 */
#define _XOPEN_SOURCE 700 /* wcswidth */
#include <jansson.h>
#include <locale.h>
#include <utf8proc.h>
#include <wchar.h>

#include "check.h"
#include "xledit.h"

#define TA_PARIS "\xE0\xAE\xAA\xE0\xAE\xBE\xE0\xAE\xB0\xE0\xAE\xBF\xE0\xAE\xB8\xE0\xAF\x8D" /* பாரிஸ் */
#define HI_PARIS "\xE0\xA4\xAA\xE0\xA5\x87\xE0\xA4\xB0\xE0\xA4\xBF\xE0\xA4\xB8"             /* पेरिस */
#define KN_DESHA "\xE0\xB2\xA6\xE0\xB3\x87\xE0\xB2\xB6"                                     /* ದೇಶ */

static void test_width(void) {
    CHECK(xle_text_width("") == 0);
    CHECK(xle_text_width("Paris") == 5);
    /* as terminals draw them: a spacing vowel sign (ா ி ि ೇ) takes a cell, a non-spacing one
     * (் े) none */
    CHECK(xle_text_width(TA_PARIS) == 5);  /* ப ா ர ி ஸ் */
    CHECK(xle_text_width(HI_PARIS) == 4);  /* पे र ि स */
    CHECK(xle_text_width(KN_DESHA) == 3);  /* ದ ೇ ಶ */
    CHECK(xle_text_width("\xE4\xB8\xAD\xE6\x96\x87") == 4); /* 中文: wide */
    CHECK(xle_text_width("a\xCC\x81") == 1);                /* a + combining acute */
    CHECK(xle_text_width("\xFF" "x") == 2);                 /* an invalid byte: one column */
    CHECK(xle_text_width("a\tb") == 2);                     /* control characters: none */
}

/* Whether a grapheme cluster boundary lies at byte pos of s. */
static int cluster_boundary(const char *s, size_t pos) {
    if (pos == 0 || !s[pos]) return 1;
    utf8proc_int32_t prev = -1, cp, state = 0;
    int brk = 1;
    for (size_t i = 0; i <= pos;) {
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i, -1, &cp);
        if (k <= 0) return 0;
        if (prev >= 0) brk = utf8proc_grapheme_break_stateful(prev, cp, &state);
        if (i == pos) return brk;
        prev = cp;
        i += (size_t)k;
    }
    return 0;
}

/* The C library's wcswidth (what tmux, less and readline use) is the reference: the same width
 * for every prompt, subject and target of the built-in world's cases, in eight languages. */
static void test_width_matches_wcswidth(void) {
    CHECK(setlocale(LC_CTYPE, "C.UTF-8") != NULL);
    FILE *f = fopen(XLE_SOURCE_DIR "/data/world/cases.jsonl", "r");
    CHECK(f != NULL);
    if (!f) return;
    static const char *const fields[] = {"prompt", "subject", "target_new", "target_true"};
    char *line = NULL;
    size_t cap = 0;
    int n = 0, differ = 0;
    wchar_t *wide = malloc(4096 * sizeof *wide);
    while (wide && getline(&line, &cap, f) > 0) {
        json_t *c = json_loads(line, 0, NULL), *langs = json_object_get(c, "langs"), *l;
        const char *code;
        json_object_foreach(langs, code, l) {
            for (int k = 0; k < 4; k++) {
                const char *s = json_string_value(json_object_get(l, fields[k]));
                size_t nw = s ? mbstowcs(wide, s, 4096) : (size_t)-1;
                if (nw == (size_t)-1 || nw >= 4096) continue;
                int want = wcswidth(wide, nw);
                n++;
                if (xle_text_width(s) != want && differ++ < 5)
                    fprintf(stderr, "  %s: width %d, wcswidth %d\n", s, xle_text_width(s), want);
            }
        }
        json_decref(c);
    }
    free(wide), free(line);
    fclose(f);
    CHECK_MSG(n > 10000 && differ == 0, "%d of %d strings differ", differ, n);
}

static void test_fit(void) {
    /* பாரிஸ்: 18 bytes, clusters பா (6 bytes, 2 columns) ரி (6, 2) ஸ் (6, 1) */
    CHECK(xle_text_fit(TA_PARIS, 5) == 18);
    CHECK(xle_text_fit(TA_PARIS, 4) == 12);
    CHECK(xle_text_fit(TA_PARIS, 3) == 6);
    CHECK(xle_text_fit(TA_PARIS, 2) == 6);
    CHECK(xle_text_fit(TA_PARIS, 1) == 0); /* never ப without its ா */
    CHECK(xle_text_fit(TA_PARIS, 0) == 0);
    CHECK(xle_text_fit("Paris", 3) == 3);
    for (int c = 0; c <= 5; c++) {
        CHECK(cluster_boundary(TA_PARIS, xle_text_fit(TA_PARIS, c)));
        CHECK(cluster_boundary(HI_PARIS, xle_text_fit(HI_PARIS, c)));
    }
    CHECK(!cluster_boundary(TA_PARIS, 3)); /* the harness itself: inside பா */
}

/* Rows as the demo prints them: lang, prompt in 30 columns, answer in 12, a marker. Every
 * marker must start at the same column whatever the script. */
static void test_cells_align(void) {
    const char *rows[][3] = {
        {"en", "The capital city of France is", "Paris"},
        {"hi", "\xE0\xA4\xAB\xE0\xA4\xBC\xE0\xA5\x8D\xE0\xA4\xB0\xE0\xA4\xBE\xE0\xA4\x82\xE0\xA4\xB8 "
               "\xE0\xA4\x95\xE0\xA5\x80 \xE0\xA4\xB0\xE0\xA4\xBE\xE0\xA4\x9C\xE0\xA4\xA7\xE0\xA4\xBE\xE0\xA4\xA8\xE0\xA5\x80",
         HI_PARIS},
        {"ta", TA_PARIS " " TA_PARIS " " TA_PARIS " " TA_PARIS " " TA_PARIS " " TA_PARIS " " TA_PARIS " " TA_PARIS,
         TA_PARIS},
        {"kn", KN_DESHA, KN_DESHA " " KN_DESHA " " KN_DESHA " " KN_DESHA " " KN_DESHA},
    };
    int marker_col = -1;
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        char line[600], prompt[256], answer[256];
        xle_text_cell(prompt, sizeof prompt, rows[r][1], 30, 0);
        xle_text_cell(answer, sizeof answer, rows[r][2], 12, 0);
        CHECK_MSG(xle_text_width(prompt) == 30, "row %zu: prompt cell is %d columns", r, xle_text_width(prompt));
        CHECK_MSG(xle_text_width(answer) == 12, "row %zu: answer cell is %d columns", r, xle_text_width(answer));
        snprintf(line, sizeof line, "%-4s %s %s|", rows[r][0], prompt, answer);
        int col = xle_text_width(line) - 1;
        if (marker_col < 0) marker_col = col;
        CHECK_MSG(col == marker_col, "row %zu (%s): marker at column %d, want %d", r, rows[r][0], col, marker_col);
    }
    /* the Tamil prompt (8 words, 47 columns) is cut with an ellipsis, between clusters */
    char cell[256];
    xle_text_cell(cell, sizeof cell, rows[2][1], 30, 0);
    size_t n = strlen(cell);
    CHECK(n >= 3 && !strcmp(cell + n - 3, "\xE2\x80\xA6"));
    CHECK(!strncmp(cell, rows[2][1], n - 3));
    CHECK(cluster_boundary(rows[2][1], n - 3));
    /* right alignment pads on the left */
    xle_text_cell(cell, sizeof cell, TA_PARIS, 7, 1);
    CHECK(!strcmp(cell, "  " TA_PARIS));
}

/* The first case of data/world/cases.jsonl is the demo's fact (France, capital Paris); the
 * built-in model knows it in all eight languages. */
static void test_answer_whole(void) {
    xle_error err = {0};
    xle_model *m = NULL;
    xle_cases *cs = NULL;
    CHECK_OK(xle_model_load(XLE_SOURCE_DIR "/models/xledit-mini", &m, &err), &err);
    CHECK_OK(xle_cases_load(XLE_SOURCE_DIR "/data/world/cases.jsonl", &cs, &err), &err);
    if (!m || !cs) goto done;
    xle_tokenizer *tok = xle_model_tokenizer(m);
#ifdef XLE_SANITIZED
    static const char *const langs[] = {"it", "hi", "ta", "kn"}; /* the sanitizers are slow */
#else
    static const char *const langs[] = {"en", "de", "fr", "it", "es", "hi", "ta", "kn"};
#endif
    const int n_langs = (int)(sizeof langs / sizeof langs[0]);
    int n_extended = 0;
    for (int i = 0; i < n_langs; i++) {
        const xle_case_lang *l = xle_case_lang_find(&cs->cases[0], langs[i]);
        CHECK(l && l->target_true);
        if (!l || !l->target_true) continue;
        int32_t *p = NULL, *a = NULL, ids[32], plain[32];
        int np = 0, na = 0, n_ids = 0, n_plain = 0;
        char *text = NULL;
        CHECK_OK(xle_tokenize_continuation(tok, l->prompt, l->target_true, &p, &np, &a, &na, &err), &err);
        /* one token at least: the answer must still be the whole word */
        CHECK_OK(xle_answer_whole(m, tok, p, np, 1, 16, ids, &n_ids, &text, &err), &err);
        CHECK_MSG(text && !strcmp(text, l->target_true), "%s: answer '%s', want '%s'", langs[i],
                  text ? text : "(null)", l->target_true);
        if (n_ids > 1) n_extended++;
        /* its tokens are a plain greedy run's: the metrics see the same ids */
        xle_sampler greedy = {.stop_at_eos = 1};
        CHECK_OK(xle_generate(m, p, np, n_ids, &greedy, plain, &n_plain, &err), &err);
        CHECK(n_plain == n_ids && !memcmp(plain, ids, (size_t)n_ids * sizeof *ids));
        /* with the target's length as the minimum (the demo's call), the same word */
        char *text2 = NULL;
        int n2 = 0;
        CHECK_OK(xle_answer_whole(m, tok, p, np, na, na + 12, ids, &n2, &text2, &err), &err);
        CHECK_MSG(text2 && !strcmp(text2, l->target_true), "%s: answer '%s'", langs[i], text2 ? text2 : "");
        free(text), free(text2), free(p), free(a);
    }
    /* several of these words take more than one token: the test does exercise the extension */
    CHECK_MSG(n_extended >= n_langs / 2, "only %d answers needed more than one token", n_extended);
    /* bad bounds are an error, not a crash */
    int32_t ids[4], one = 1;
    int n = 0;
    char *t = NULL;
    CHECK(xle_answer_whole(m, tok, &one, 1, 0, 4, ids, &n, &t, &err) == XLE_ERR_ARG && !t);
    CHECK(xle_answer_whole(m, tok, &one, 1, 5, 4, ids, &n, &t, &err) == XLE_ERR_ARG && !t);
done:
    xle_cases_free(cs);
    xle_model_free(m);
}

int main(void) {
    RUN(test_width);
    RUN(test_width_matches_wcswidth);
    RUN(test_fit);
    RUN(test_cells_align);
    RUN(test_answer_whole);
    return check_summary();
}
