/*
 * cases.h: internal helpers shared by the case set (cases.c), the importers (import_*.c) and
 * the validator (validate.c). The public API is the "Evaluation cases" section of xledit.h.
 */
#ifndef XLE_EVAL_CASES_H
#define XLE_EVAL_CASES_H

#include <jansson.h>
#include <stddef.h>

#include "xledit.h"

/* 1 if s is a valid language code: 1..XLE_LANG_MAX-1 bytes of [A-Za-z0-9_-]. */
int xle_lang_code_valid(const char *s);
/* 1 if s is NULL or holds only ASCII/Unicode whitespace. */
int xle_str_blank(const char *s);

/* Checks the whole set against the format (non-empty unique ids, valid language codes, no
 * language twice in a case); `what` names the set in messages. */
xle_status xle_cases_check(const xle_cases *cs, const char *what, xle_error *err);

/* ---- importer plumbing (import_common.c) ---- */

/* Where a value came from, for one-line messages "FILE: record N: FIELD: what". */
typedef struct xle_imp_where {
    const char *path;
    size_t record;
    const char *lang; /* NULL: the record itself */
} xle_imp_where;

/* Loads path as JSON and requires a top-level array. The caller owns *out (json_decref). */
xle_status xle_imp_load_array(const char *path, json_t **out, xle_error *err);

/* Maps one top-level array record into the set (an importer's record mapper). */
typedef xle_status (*xle_imp_record_fn)(xle_cases *cs, const json_t *rec, const xle_imp_where *w,
                                        xle_error *err);
/* Loads each file as a top-level array and maps its records in order; stops at the first error. */
xle_status xle_imp_each_record(const char *const *paths, int n_paths, xle_imp_record_fn map,
                               xle_cases *cs, xle_error *err);

/* Reads obj[key] as a string. Absent or null gives "" (never invent); any other non-string
 * type is an error. *out is borrowed from obj. */
xle_status xle_imp_str(const json_t *obj, const char *key, const xle_imp_where *w,
                       const char **out, xle_error *err);
/* Like xle_imp_str but absent/null gives NULL (for optional fields such as target_true). */
xle_status xle_imp_str_opt(const json_t *obj, const char *key, const xle_imp_where *w,
                           const char **out, xle_error *err);
/* KnowEdit-style answers: a string, a list whose first element is (recursively) a string, or
 * absent/null/empty list (gives NULL). Other types are errors. */
xle_status xle_imp_first_str(const json_t *v, const char *field, const xle_imp_where *w,
                             const char **out, xle_error *err);
/* Adds each string of obj[key] (a string or a list of strings; absent/null adds none; empty
 * strings are skipped) as a rephrase of l. */
xle_status xle_imp_add_rephrases(xle_case_lang *l, const json_t *obj, const char *key,
                                 const xle_imp_where *w, xle_error *err);
/* Adds obj["portability"] = {"New Question", "New Answer"} (or a list of them; absent adds
 * none) as portability pairs of l (MzsRE, Bi-ZsRE, EasyEdit's *_portability_gpt4.json). */
xle_status xle_imp_add_new_questions(xle_case_lang *l, const json_t *obj, const xle_imp_where *w,
                                     xle_error *err);
/* Fails with "FILE: record N[: LANG]: FIELD: what". */
xle_status xle_imp_fail(xle_error *err, xle_status st, const xle_imp_where *w, const char *field,
                        const char *what);
/* The zsRE locality question without its "nq question: " prefix (a pointer into s). */
const char *xle_imp_strip_nq(const char *s);

/* One importer: reads n_paths files and appends their cases to cs. */
typedef xle_status (*xle_import_fn)(const char *const *paths, int n_paths, xle_cases *cs,
                                    xle_error *err);

xle_status xle_import_bmike53(const char *const *paths, int n_paths, xle_cases *cs,
                              xle_error *err);
xle_status xle_import_mzsre(const char *const *paths, int n_paths, xle_cases *cs,
                            xle_error *err);
xle_status xle_import_bizsre(const char *const *paths, int n_paths, xle_cases *cs,
                             xle_error *err);
xle_status xle_import_zsre(const char *const *paths, int n_paths, xle_cases *cs, xle_error *err);
xle_status xle_import_counterfact(const char *const *paths, int n_paths, xle_cases *cs,
                                  xle_error *err);
xle_status xle_import_counterfact_edit(const char *const *paths, int n_paths, xle_cases *cs,
                                       xle_error *err);
xle_status xle_import_knowedit(const char *const *paths, int n_paths, xle_cases *cs,
                               xle_error *err);

#endif
