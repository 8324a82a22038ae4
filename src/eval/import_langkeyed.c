/*
 * import_langkeyed.c: importers for datasets whose records are objects keyed by language code,
 * each language holding zsRE-style fields: BMIKE-53 (zsRE and CounterFact), MzsRE and Bi-ZsRE.
 * Several files of one dataset (e.g. en+de, en+fr, ...) are merged into multilingual cases by
 * record index; a language present in more than one file (always "en") must be identical in
 * all of them. Field mapping: docs/datasets.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/cases.h"

typedef enum lk_kind { LK_BMIKE53, LK_MZSRE, LK_BIZSRE } lk_kind;

#define LK_MAX_LANGS 64

typedef struct lk_half {
    const char *lang;
    const json_t *half;
    int file;
} lk_half;

/* Adds one language half (zsRE-style fields) to c. */
static xle_status map_half(xle_case *c, const lk_half *h, const xle_imp_where *w,
                           xle_error *err) {
    const char *subject, *src, *alt, *old, *loc, *loc_ans, *port, *port_ans;
    xle_status st;
    if ((st = xle_imp_str(h->half, "subject", w, &subject, err)) ||
        (st = xle_imp_str(h->half, "src", w, &src, err)) ||
        (st = xle_imp_str(h->half, "alt", w, &alt, err)) ||
        (st = xle_imp_str_opt(h->half, "old", w, &old, err)) ||
        (st = xle_imp_str(h->half, "loc", w, &loc, err)) ||
        (st = xle_imp_str(h->half, "loc_ans", w, &loc_ans, err)) ||
        (st = xle_imp_str(h->half, "port", w, &port, err)) ||
        (st = xle_imp_str(h->half, "port_ans", w, &port_ans, err)))
        return st;
    xle_case_lang *l;
    if ((st = xle_case_add_lang(c, h->lang, src, subject, alt, old, &l, err))) return st;
    if ((st = xle_imp_add_rephrases(l, h->half, "rephrase", w, err))) return st;
    loc = xle_imp_strip_nq(loc);
    if (loc[0] && (st = xle_case_lang_add_locality(l, loc, loc_ans, err))) return st;
    if (port[0] && (st = xle_case_lang_add_portability(l, port, port_ans, err))) return st;
    /* MzsRE / Bi-ZsRE: "portability": {"New Question", "New Answer"}. */
    return xle_imp_add_new_questions(l, h->half, w, err);
}

/* Collects the language halves of record i from every file into halves (en first). */
static xle_status collect_halves(json_t *const *roots, const char *const *paths, int n_files,
                                 size_t i, lk_half *halves, int *n_halves, xle_error *err) {
    int n = 0;
    for (int f = 0; f < n_files; f++) {
        const json_t *rec = json_array_get(roots[f], i);
        xle_imp_where w = {paths[f], i, NULL};
        if (!json_is_object(rec))
            return xle_imp_fail(err, XLE_ERR_FORMAT, &w, "record", "expected an object keyed by language code");
        const char *code;
        json_t *half;
        json_object_foreach((json_t *)rec, code, half) {
            if (!xle_lang_code_valid(code))
                return xle_imp_fail(err, XLE_ERR_FORMAT, &w, "record", "key is not a language code");
            if (!json_is_object(half))
                return xle_imp_fail(err, XLE_ERR_FORMAT, &w, code, "expected an object");
            int found = -1;
            for (int k = 0; k < n && found < 0; k++)
                if (strcmp(halves[k].lang, code) == 0) found = k;
            if (found >= 0) {
                if (!json_equal((json_t *)halves[found].half, half)) {
                    char what[300];
                    snprintf(what, sizeof what, "differs from the same record in %.200s",
                             paths[halves[found].file]);
                    return xle_imp_fail(err, XLE_ERR_FORMAT, &w, code, what);
                }
                continue;
            }
            if (n == LK_MAX_LANGS)
                return xle_imp_fail(err, XLE_ERR_FORMAT, &w, "record", "too many languages");
            halves[n++] = (lk_half){code, half, f};
        }
    }
    /* Put "en" first: the source language of every one of these datasets. */
    for (int k = 1; k < n; k++)
        if (strcmp(halves[k].lang, "en") == 0) {
            lk_half en = halves[k];
            memmove(&halves[1], &halves[0], (size_t)k * sizeof *halves);
            halves[0] = en;
        }
    *n_halves = n;
    return XLE_OK;
}

/* The case id and source of record i. */
static xle_status record_id(lk_kind kind, const lk_half *halves, int n, size_t i,
                            const char *path, int *is_cf, char *id, size_t id_cap,
                            const char **source, xle_error *err) {
    xle_imp_where w = {path, i, "en"};
    if (kind == LK_MZSRE || kind == LK_BIZSRE) {
        snprintf(id, id_cap, "%s-%06zu", kind == LK_MZSRE ? "mzsre" : "bizsre", i);
        *source = kind == LK_MZSRE ? "mzsre" : "bizsre";
        return XLE_OK;
    }
    if (n < 1 || strcmp(halves[0].lang, "en") != 0)
        return xle_imp_fail(err, XLE_ERR_FORMAT, &w, "record", "BMIKE-53 record without an \"en\" half");
    int cf = json_object_get(halves[0].half, "old") != NULL;
    if (*is_cf < 0) *is_cf = cf;
    if (cf != *is_cf)
        return xle_imp_fail(err, XLE_ERR_FORMAT, &w, "old",
                            "zsRE and CounterFact records mixed (only CounterFact has \"old\")");
    if (!cf) {
        snprintf(id, id_cap, "bmike53-zsre-%06zu", i);
        *source = "bmike53-zsre";
        return XLE_OK;
    }
    const json_t *cid = json_object_get(halves[0].half, "case_id");
    if (!json_is_integer(cid) || json_integer_value(cid) < 0)
        return xle_imp_fail(err, XLE_ERR_FORMAT, &w, "case_id", "expected a non-negative integer");
    snprintf(id, id_cap, "bmike53-cf-%06lld", (long long)json_integer_value(cid));
    *source = "bmike53-counterfact";
    return XLE_OK;
}

static xle_status import_langkeyed(lk_kind kind, const char *const *paths, int n_paths,
                                   xle_cases *cs, xle_error *err) {
    json_t **roots = calloc((size_t)n_paths, sizeof *roots);
    lk_half *halves = malloc(LK_MAX_LANGS * sizeof *halves);
    xle_status st = XLE_OK;
    if (!roots || !halves) {
        st = xle_fail(err, XLE_ERR_NOMEM, "import: out of memory");
        goto done;
    }
    for (int f = 0; f < n_paths && !st; f++) {
        st = xle_imp_load_array(paths[f], &roots[f], err);
        if (!st && json_array_size(roots[f]) != json_array_size(roots[0]))
            st = xle_fail(err, XLE_ERR_FORMAT,
                          "%s: records: %zu, but %s has %zu (files are merged by record index)",
                          paths[f], json_array_size(roots[f]), paths[0], json_array_size(roots[0]));
    }
    int is_cf = -1;
    size_t n_rec = st ? 0 : json_array_size(roots[0]);
    for (size_t i = 0; i < n_rec && !st; i++) {
        int n = 0;
        if ((st = collect_halves(roots, paths, n_paths, i, halves, &n, err))) break;
        char id[64];
        const char *source = NULL;
        if ((st = record_id(kind, halves, n, i, paths[0], &is_cf, id, sizeof id, &source, err))) break;
        xle_case *c;
        if ((st = xle_cases_add(cs, id, source, NULL, &c, err))) break;
        for (int k = 0; k < n && !st; k++) {
            xle_imp_where w = {paths[halves[k].file], i, halves[k].lang};
            st = map_half(c, &halves[k], &w, err);
        }
    }
done:
    for (int f = 0; roots && f < n_paths; f++) json_decref(roots[f]);
    free(roots);
    free(halves);
    return st;
}

xle_status xle_import_bmike53(const char *const *paths, int n_paths, xle_cases *cs,
                              xle_error *err) {
    return import_langkeyed(LK_BMIKE53, paths, n_paths, cs, err);
}

xle_status xle_import_mzsre(const char *const *paths, int n_paths, xle_cases *cs,
                            xle_error *err) {
    return import_langkeyed(LK_MZSRE, paths, n_paths, cs, err);
}

xle_status xle_import_bizsre(const char *const *paths, int n_paths, xle_cases *cs,
                             xle_error *err) {
    return import_langkeyed(LK_BIZSRE, paths, n_paths, cs, err);
}
