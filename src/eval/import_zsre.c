/*
 * import_zsre.c: the zsRE importer for the MEND evaluation layout (zsre_mend_eval.json and its
 * train splits; also EasyEdit's zsre_mend_eval_portability_gpt4.json, which adds a
 * "portability" object). English only. Field mapping: docs/datasets.md.
 */
#include <stdio.h>

#include "eval/cases.h"

static xle_status map_record(xle_cases *cs, const json_t *rec, const xle_imp_where *w,
                             xle_error *err) {
    if (!json_is_object(rec)) return xle_imp_fail(err, XLE_ERR_FORMAT, w, "record", "expected an object");
    const char *subject, *src, *alt, *truth, *loc, *loc_ans;
    xle_status st;
    if ((st = xle_imp_str(rec, "subject", w, &subject, err)) ||
        (st = xle_imp_str(rec, "src", w, &src, err)) ||
        (st = xle_imp_str(rec, "alt", w, &alt, err)) ||
        (st = xle_imp_first_str(json_object_get(rec, "answers"), "answers", w, &truth, err)) ||
        (st = xle_imp_str(rec, "loc", w, &loc, err)) ||
        (st = xle_imp_str(rec, "loc_ans", w, &loc_ans, err)))
        return st;
    char id[48];
    snprintf(id, sizeof id, "zsre-%06d", cs->n);
    xle_case *c;
    xle_case_lang *l;
    if ((st = xle_cases_add(cs, id, "zsre", NULL, &c, err)) ||
        (st = xle_case_add_lang(c, "en", src, subject, alt, truth, &l, err)) ||
        (st = xle_imp_add_rephrases(l, rec, "rephrase", w, err)))
        return st;
    loc = xle_imp_strip_nq(loc);
    if (loc[0] && (st = xle_case_lang_add_locality(l, loc, loc_ans, err))) return st;
    return xle_imp_add_new_questions(l, rec, w, err);
}

xle_status xle_import_zsre(const char *const *paths, int n_paths, xle_cases *cs, xle_error *err) {
    return xle_imp_each_record(paths, n_paths, map_record, cs, err);
}
