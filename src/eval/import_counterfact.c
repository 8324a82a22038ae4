/*
 * import_counterfact.c: CounterFact importers, English only. "counterfact" reads ROME's layout
 * (counterfact.json / multi_counterfact.json: requested_rewrite with a "{}" prompt template);
 * "counterfact-edit" reads EasyEdit's MEND-style completion layout (counterfact-edit.json).
 * Both give ids "counterfact-<case_id>", so the same fact has the same id in either layout.
 * Field mapping: docs/datasets.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/cases.h"

static xle_status case_id_str(const json_t *rec, const xle_imp_where *w, char *id, size_t cap,
                              xle_error *err) {
    const json_t *cid = json_object_get(rec, "case_id");
    if (!json_is_integer(cid) || json_integer_value(cid) < 0)
        return xle_imp_fail(err, XLE_ERR_FORMAT, w, "case_id", "expected a non-negative integer");
    snprintf(id, cap, "counterfact-%06lld", (long long)json_integer_value(cid));
    return XLE_OK;
}

/* {"str": ..., "id": ...} or a plain string; absent/null gives NULL. */
static xle_status target_str(const json_t *rr, const char *key, const xle_imp_where *w,
                             const char **out, xle_error *err) {
    const json_t *v = json_object_get(rr, key);
    char field[64];
    snprintf(field, sizeof field, "requested_rewrite.%s", key);
    if (json_is_object(v)) v = json_object_get(v, "str");
    *out = NULL;
    if (!v || json_is_null(v)) return XLE_OK;
    if (!json_is_string(v))
        return xle_imp_fail(err, XLE_ERR_FORMAT, w, field, "expected {\"str\": string} or a string");
    *out = json_string_value(v);
    return XLE_OK;
}

/* Each string of rec[key] (a list of strings) as a locality prompt whose answer is `answer`. */
static xle_status add_neighbours(xle_case_lang *l, const json_t *rec, const char *key,
                                 const char *answer, const xle_imp_where *w, xle_error *err) {
    const json_t *v = json_object_get(rec, key);
    if (!v || json_is_null(v)) return XLE_OK;
    if (!json_is_array(v)) return xle_imp_fail(err, XLE_ERR_FORMAT, w, key, "expected a list of strings");
    for (size_t i = 0; i < json_array_size(v); i++) {
        const json_t *s = json_array_get(v, i);
        if (!json_is_string(s)) return xle_imp_fail(err, XLE_ERR_FORMAT, w, key, "expected a list of strings");
        if (!json_string_length(s)) continue;
        xle_status st = xle_case_lang_add_locality(l, json_string_value(s), answer, err);
        if (st) return st;
    }
    return XLE_OK;
}

/* requested_rewrite.prompt with its first "{}" replaced by the subject (caller frees). */
static xle_status fill_template(const char *tmpl, const char *subject, const xle_imp_where *w,
                                char **out, xle_error *err) {
    const char *at = strstr(tmpl, "{}");
    if (!at)
        return xle_imp_fail(err, XLE_ERR_FORMAT, w, "requested_rewrite.prompt",
                            "no \"{}\" placeholder for the subject");
    size_t pre = (size_t)(at - tmpl), ns = strlen(subject), post = strlen(at + 2);
    char *s = malloc(pre + ns + post + 1);
    if (!s) return xle_fail(err, XLE_ERR_NOMEM, "import: out of memory");
    memcpy(s, tmpl, pre);
    memcpy(s + pre, subject, ns);
    memcpy(s + pre + ns, at + 2, post + 1);
    *out = s;
    return XLE_OK;
}

static xle_status map_rome(xle_cases *cs, const json_t *rec, const xle_imp_where *w,
                           xle_error *err) {
    if (!json_is_object(rec)) return xle_imp_fail(err, XLE_ERR_FORMAT, w, "record", "expected an object");
    char id[48];
    xle_status st = case_id_str(rec, w, id, sizeof id, err);
    if (st) return st;
    const json_t *rr = json_object_get(rec, "requested_rewrite");
    if (!json_is_object(rr))
        return xle_imp_fail(err, XLE_ERR_FORMAT, w, "requested_rewrite", "expected an object");
    const char *tmpl, *subject, *relation, *tnew, *ttrue;
    if ((st = xle_imp_str(rr, "prompt", w, &tmpl, err)) ||
        (st = xle_imp_str(rr, "subject", w, &subject, err)) ||
        (st = xle_imp_str_opt(rr, "relation_id", w, &relation, err)) ||
        (st = target_str(rr, "target_new", w, &tnew, err)) ||
        (st = target_str(rr, "target_true", w, &ttrue, err)))
        return st;
    char *prompt = NULL;
    if ((st = fill_template(tmpl, subject, w, &prompt, err))) return st;
    xle_case *c;
    xle_case_lang *l;
    if (!(st = xle_cases_add(cs, id, "counterfact", relation, &c, err)) &&
        !(st = xle_case_add_lang(c, "en", prompt, subject, tnew ? tnew : "", ttrue, &l, err)) &&
        !(st = xle_imp_add_rephrases(l, rec, "paraphrase_prompts", w, err)))
        /* ROME: neighbourhood subjects share the relation and the true object. */
        st = add_neighbours(l, rec, "neighborhood_prompts", ttrue ? ttrue : "", w, err);
    free(prompt);
    return st;
}

static xle_status map_edit(xle_cases *cs, const json_t *rec, const xle_imp_where *w,
                           xle_error *err) {
    if (!json_is_object(rec)) return xle_imp_fail(err, XLE_ERR_FORMAT, w, "record", "expected an object");
    char id[48];
    const char *prompt, *subject, *tnew, *truth, *loc, *loc_ans;
    xle_status st;
    if ((st = case_id_str(rec, w, id, sizeof id, err)) ||
        (st = xle_imp_str(rec, "prompt", w, &prompt, err)) ||
        (st = xle_imp_str(rec, "subject", w, &subject, err)) ||
        (st = xle_imp_str(rec, "target_new", w, &tnew, err)) ||
        (st = xle_imp_first_str(json_object_get(rec, "ground_truth"), "ground_truth", w, &truth, err)) ||
        (st = xle_imp_str(rec, "locality_prompt", w, &loc, err)) ||
        (st = xle_imp_first_str(json_object_get(rec, "locality_ground_truth"),
                                "locality_ground_truth", w, &loc_ans, err)))
        return st;
    xle_case *c;
    xle_case_lang *l;
    if ((st = xle_cases_add(cs, id, "counterfact-edit", NULL, &c, err)) ||
        (st = xle_case_add_lang(c, "en", prompt, subject, tnew, truth, &l, err)) ||
        (st = xle_imp_add_rephrases(l, rec, "rephrase_prompt", w, err)))
        return st;
    if (loc[0] && (st = xle_case_lang_add_locality(l, loc, loc_ans ? loc_ans : "", err))) return st;
    return xle_imp_add_new_questions(l, rec, w, err);
}

xle_status xle_import_counterfact(const char *const *paths, int n_paths, xle_cases *cs,
                                  xle_error *err) {
    return xle_imp_each_record(paths, n_paths, map_rome, cs, err);
}

xle_status xle_import_counterfact_edit(const char *const *paths, int n_paths, xle_cases *cs,
                                       xle_error *err) {
    return xle_imp_each_record(paths, n_paths, map_edit, cs, err);
}
