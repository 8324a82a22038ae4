/*
 * import_knowedit.c: the importer for EasyEdit's KnowEdit layouts (ZsRE-test-all,
 * recent_test, test_cf; WikiBio's text/labels/concept variant) and the same record shape in
 * other EasyEdit portability files. Answers may be a string, a list or a list of alias lists;
 * like EasyEdit's runner we take the first string. locality/portability are objects mapping a
 * category ("Reasoning", "Relation_Specificity", ...) to a list of {prompt, ground_truth}; the
 * pairs of all categories are kept in file order (the category name is not kept).
 */
#include <stdio.h>

#include "eval/cases.h"

/* One {prompt, ground_truth} entry; prompt may be a list, paired with a ground_truth list. */
static xle_status add_probe(xle_case_lang *l, int portability, const json_t *e,
                            const char *field, const xle_imp_where *w, xle_error *err) {
    if (!json_is_object(e))
        return xle_imp_fail(err, XLE_ERR_FORMAT, w, field, "expected {\"prompt\", \"ground_truth\"}");
    const json_t *p = json_object_get(e, "prompt"), *g = json_object_get(e, "ground_truth");
    size_t n = json_is_array(p) ? json_array_size(p) : 1;
    if (json_is_array(p) && (!json_is_array(g) || json_array_size(g) != n))
        return xle_imp_fail(err, XLE_ERR_FORMAT, w, field,
                            "a list of prompts needs a ground_truth list of the same length");
    for (size_t i = 0; i < n; i++) {
        const json_t *pi = json_is_array(p) ? json_array_get(p, i) : p;
        const json_t *gi = json_is_array(p) ? json_array_get(g, i) : g;
        if (!pi || json_is_null(pi)) continue;
        if (!json_is_string(pi))
            return xle_imp_fail(err, XLE_ERR_FORMAT, w, field, "prompt: expected a string");
        const char *ans;
        xle_status st = xle_imp_first_str(gi, field, w, &ans, err);
        if (st) return st;
        if (!json_string_length(pi)) continue;
        st = portability ? xle_case_lang_add_portability(l, json_string_value(pi), ans ? ans : "", err)
                         : xle_case_lang_add_locality(l, json_string_value(pi), ans ? ans : "", err);
        if (st) return st;
    }
    return XLE_OK;
}

/* rec[key]: {category: [entries] or entry}. */
static xle_status add_probes(xle_case_lang *l, int portability, const json_t *rec,
                             const char *key, const xle_imp_where *w, xle_error *err) {
    const json_t *d = json_object_get(rec, key);
    if (!d || json_is_null(d)) return XLE_OK;
    if (!json_is_object(d))
        return xle_imp_fail(err, XLE_ERR_FORMAT, w, key, "expected an object of category -> list");
    const char *cat;
    json_t *v;
    json_object_foreach((json_t *)d, cat, v) {
        char field[128];
        snprintf(field, sizeof field, "%s.%.80s", key, cat);
        size_t n = json_is_array(v) ? json_array_size(v) : 1;
        for (size_t i = 0; i < n; i++) {
            xle_status st = add_probe(l, portability, json_is_array(v) ? json_array_get(v, i) : v,
                                      field, w, err);
            if (st) return st;
        }
    }
    return XLE_OK;
}

static xle_status map_record(xle_cases *cs, const json_t *rec, const xle_imp_where *w,
                             xle_error *err) {
    if (!json_is_object(rec)) return xle_imp_fail(err, XLE_ERR_FORMAT, w, "record", "expected an object");
    /* WikiBio: text/labels/concept play prompt/target_new/subject (as EasyEdit's runner does). */
    int wikibio = !json_object_get(rec, "prompt") && json_object_get(rec, "text");
    const char *prompt, *subject, *tnew, *truth;
    xle_status st;
    if ((st = xle_imp_str(rec, wikibio ? "text" : "prompt", w, &prompt, err)) ||
        (st = xle_imp_str(rec, wikibio ? "concept" : "subject", w, &subject, err)) ||
        (st = xle_imp_first_str(json_object_get(rec, wikibio ? "labels" : "target_new"),
                                wikibio ? "labels" : "target_new", w, &tnew, err)) ||
        (st = xle_imp_first_str(json_object_get(rec, "ground_truth"), "ground_truth", w, &truth, err)))
        return st;
    char id[48];
    snprintf(id, sizeof id, "knowedit-%06d", cs->n);
    xle_case *c;
    xle_case_lang *l;
    if ((st = xle_cases_add(cs, id, "knowedit", NULL, &c, err)) ||
        (st = xle_case_add_lang(c, "en", prompt, subject, tnew ? tnew : "", truth, &l, err)) ||
        (st = xle_imp_add_rephrases(l, rec, "rephrase_prompt", w, err)) ||
        (st = xle_imp_add_rephrases(l, rec, "rephrase", w, err)) ||
        (st = add_probes(l, 0, rec, "locality", w, err)))
        return st;
    return add_probes(l, 1, rec, "portability", w, err);
}

xle_status xle_import_knowedit(const char *const *paths, int n_paths, xle_cases *cs,
                               xle_error *err) {
    return xle_imp_each_record(paths, n_paths, map_record, cs, err);
}
