/*
 * import_common.c: the importer registry (format name -> importer) and the small JSON helpers
 * every importer shares: load a top-level array, read a field as a string without inventing
 * values, flatten KnowEdit's nested answer lists, and one-line messages naming file, record
 * and field.
 */
#include <stdio.h>
#include <string.h>

#include "core/outpath.h"
#include "eval/cases.h"

typedef struct importer {
    const char *name;
    xle_import_fn fn;
} importer;

static const importer importers[] = {
    {"bmike53", xle_import_bmike53},
    {"mzsre", xle_import_mzsre},
    {"bizsre", xle_import_bizsre},
    {"zsre", xle_import_zsre},
    {"counterfact", xle_import_counterfact},
    {"counterfact-edit", xle_import_counterfact_edit},
    {"knowedit", xle_import_knowedit},
};

#define N_IMPORTERS (sizeof importers / sizeof importers[0])

const char *const *xle_import_formats(void) {
    static const char *const names[] = {"bmike53", "mzsre", "bizsre", "zsre", "counterfact",
                                        "counterfact-edit", "knowedit", NULL};
    return names;
}

xle_status xle_cases_import(const char *format, const char *const *paths, int n_paths,
                            xle_cases **out, xle_error *err) {
    *out = NULL;
    if (!format || n_paths < 1 || !paths)
        return xle_fail(err, XLE_ERR_ARG, "a format and at least one file are required");
    const importer *imp = NULL;
    for (size_t i = 0; i < N_IMPORTERS && !imp; i++)
        if (strcmp(importers[i].name, format) == 0) imp = &importers[i];
    if (!imp) return xle_fail(err, XLE_ERR_ARG, "--format: unknown format \"%.60s\"", format);
    xle_cases *cs;
    xle_status st = xle_cases_new(&cs, err);
    if (st) return st;
    if (!(st = imp->fn(paths, n_paths, cs, err))) st = xle_cases_check(cs, format, err);
    if (st) {
        xle_cases_free(cs);
        return st;
    }
    *out = cs;
    return XLE_OK;
}

xle_status xle_imp_load_array(const char *path, json_t **out, xle_error *err) {
    json_error_t jerr;
    *out = NULL;
    xle_status in = xle_in_check_file(path, err);
    if (in != XLE_OK) return in;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) {
        if (jerr.line < 0)
            return xle_fail(err, XLE_ERR_IO, "%s: %s", path, jerr.text);
        return xle_fail(err, XLE_ERR_FORMAT, "%s:%d:%d: json: %s", path, jerr.line, jerr.column,
                        jerr.text);
    }
    if (!json_is_array(root)) {
        json_decref(root);
        return xle_fail(err, XLE_ERR_FORMAT, "%s: top level: expected a JSON array of records", path);
    }
    *out = root;
    return XLE_OK;
}

xle_status xle_imp_each_record(const char *const *paths, int n_paths, xle_imp_record_fn map,
                               xle_cases *cs, xle_error *err) {
    xle_status st = XLE_OK;
    for (int f = 0; f < n_paths && !st; f++) {
        json_t *root;
        if ((st = xle_imp_load_array(paths[f], &root, err))) break;
        for (size_t i = 0; i < json_array_size(root) && !st; i++) {
            xle_imp_where w = {paths[f], i, NULL};
            st = map(cs, json_array_get(root, i), &w, err);
        }
        json_decref(root);
    }
    return st;
}

xle_status xle_imp_fail(xle_error *err, xle_status st, const xle_imp_where *w, const char *field,
                        const char *what) {
    if (w->lang)
        return xle_fail(err, st, "%s: record %zu: %s.%s: %s", w->path, w->record, w->lang, field, what);
    return xle_fail(err, st, "%s: record %zu: %s: %s", w->path, w->record, field, what);
}

static xle_status type_fail(const json_t *v, const char *field, const char *want,
                            const xle_imp_where *w, xle_error *err) {
    const char *got = json_is_object(v) ? "an object" : json_is_array(v) ? "an array"
                      : json_is_string(v) ? "a string" : json_is_number(v) ? "a number"
                      : json_is_boolean(v) ? "a boolean" : "null";
    char what[96];
    snprintf(what, sizeof what, "expected %s, got %s", want, got);
    return xle_imp_fail(err, XLE_ERR_FORMAT, w, field, what);
}

xle_status xle_imp_str_opt(const json_t *obj, const char *key, const xle_imp_where *w,
                           const char **out, xle_error *err) {
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v || json_is_null(v)) return XLE_OK;
    if (!json_is_string(v)) return type_fail(v, key, "a string", w, err);
    *out = json_string_value(v);
    return XLE_OK;
}

xle_status xle_imp_str(const json_t *obj, const char *key, const xle_imp_where *w,
                       const char **out, xle_error *err) {
    xle_status st = xle_imp_str_opt(obj, key, w, out, err);
    if (!st && !*out) *out = "";
    return st;
}

xle_status xle_imp_first_str(const json_t *v, const char *field, const xle_imp_where *w,
                             const char **out, xle_error *err) {
    *out = NULL;
    /* EasyEdit's runner: `while isinstance(an, list): an = an[0]`; depth is bounded here. */
    for (int depth = 0; v && json_is_array(v); depth++) {
        if (depth >= 8) return xle_imp_fail(err, XLE_ERR_FORMAT, w, field, "lists nested too deep");
        v = json_array_size(v) ? json_array_get(v, 0) : NULL;
    }
    if (!v || json_is_null(v)) return XLE_OK;
    if (!json_is_string(v)) return type_fail(v, field, "a string or a list of strings", w, err);
    *out = json_string_value(v);
    return XLE_OK;
}

xle_status xle_imp_add_rephrases(xle_case_lang *l, const json_t *obj, const char *key,
                                 const xle_imp_where *w, xle_error *err) {
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return XLE_OK;
    if (json_is_string(v))
        return json_string_length(v) ? xle_case_lang_add_rephrase(l, json_string_value(v), err) : XLE_OK;
    if (!json_is_array(v)) return type_fail(v, key, "a string or a list of strings", w, err);
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *s = json_array_get(v, i);
        char field[64];
        snprintf(field, sizeof field, "%s[%zu]", key, i);
        if (!json_is_string(s)) return type_fail(s, field, "a string", w, err);
        if (!json_string_length(s)) continue;
        xle_status st = xle_case_lang_add_rephrase(l, json_string_value(s), err);
        if (st) return st;
    }
    return XLE_OK;
}

/* Adds "portability": {"New Question", "New Answer"} (or a list of them) to l. */
xle_status xle_imp_add_new_questions(xle_case_lang *l, const json_t *rec, const xle_imp_where *w,
                                   xle_error *err) {
    const json_t *pv = json_object_get(rec, "portability");
    if (!pv || json_is_null(pv)) return XLE_OK;
    size_t n = json_is_array(pv) ? json_array_size(pv) : 1;
    for (size_t i = 0; i < n; i++) {
        const json_t *p = json_is_array(pv) ? json_array_get(pv, i) : pv;
        if (!json_is_object(p))
            return xle_imp_fail(err, XLE_ERR_FORMAT, w, "portability",
                                "expected an object {\"New Question\", \"New Answer\"} or a list of them");
        const char *q, *a;
        xle_status st;
        if ((st = xle_imp_str(p, "New Question", w, &q, err)) ||
            (st = xle_imp_str(p, "New Answer", w, &a, err)))
            return st;
        if (q[0] && (st = xle_case_lang_add_portability(l, q, a, err))) return st;
    }
    return XLE_OK;
}

const char *xle_imp_strip_nq(const char *s) {
    static const char prefix[] = "nq question: ";
    return strncmp(s, prefix, sizeof prefix - 1) == 0 ? s + sizeof prefix - 1 : s;
}
