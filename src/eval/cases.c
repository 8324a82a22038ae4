/*
 * cases.c: the canonical multilingual case set in memory, and its JSONL form (one case per
 * line, docs/case-format.md). Loading is strict: every line is checked field by field and a
 * malformed one fails with "FILE:LINE: field: what". Writing is atomic (temp file + rename).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <utf8proc.h>

#include "core/outpath.h"
#include "eval/cases.h"

/* ---------------------------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------------------------- */

int xle_lang_code_valid(const char *s) {
    size_t n = 0;
    if (!s) return 0;
    for (; s[n]; n++) {
        char c = s[n];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '-' || c == '_';
        if (!ok || n + 1 >= XLE_LANG_MAX) return 0;
    }
    return n > 0;
}

int xle_str_blank(const char *s) {
    if (!s) return 1;
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
    utf8proc_ssize_t len = (utf8proc_ssize_t)strlen(s), i = 0;
    while (i < len) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(p + i, len - i, &cp);
        if (k <= 0) return 0; /* invalid bytes are content, not blank */
        utf8proc_category_t cat = utf8proc_category(cp);
        int space = (cp >= 0x09 && cp <= 0x0D) || cp == 0x85 || cat == UTF8PROC_CATEGORY_ZS ||
                    cat == UTF8PROC_CATEGORY_ZL || cat == UTF8PROC_CATEGORY_ZP;
        if (!space) return 0;
        i += k;
    }
    return 1;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

/* Grows *arr (elements of size elem) so that it holds at least need; *cap is updated. */
static int grow(void **arr, int *cap, int need, size_t elem) {
    if (need <= *cap) return 1;
    int nc = *cap ? *cap : 4;
    while (nc < need) {
        if (nc > (1 << 28)) return 0;
        nc *= 2;
    }
    void *p = realloc(*arr, (size_t)nc * elem);
    if (!p) return 0;
    *arr = p;
    *cap = nc;
    return 1;
}

/* ---------------------------------------------------------------------------------------------
 * Building and freeing
 * ------------------------------------------------------------------------------------------- */

static void lang_free(xle_case_lang *l) {
    free(l->prompt);
    free(l->subject);
    free(l->target_new);
    free(l->target_true);
    for (int i = 0; i < l->n_rephrases; i++) free(l->rephrases[i]);
    free(l->rephrases);
    for (int i = 0; i < l->n_locality; i++) {
        free(l->locality[i].prompt);
        free(l->locality[i].answer);
    }
    free(l->locality);
    for (int i = 0; i < l->n_portability; i++) {
        free(l->portability[i].prompt);
        free(l->portability[i].answer);
    }
    free(l->portability);
    memset(l, 0, sizeof *l);
}

static void case_free(xle_case *c) {
    for (int i = 0; i < c->n_langs; i++) lang_free(&c->langs[i]);
    free(c->langs);
    free(c->id);
    free(c->source);
    free(c->relation);
    memset(c, 0, sizeof *c);
}

xle_status xle_cases_new(xle_cases **out, xle_error *err) {
    *out = calloc(1, sizeof **out);
    if (!*out) return xle_fail(err, XLE_ERR_NOMEM, "cases: out of memory");
    return XLE_OK;
}

void xle_cases_free(xle_cases *cs) {
    if (!cs) return;
    for (int i = 0; i < cs->n; i++) case_free(&cs->cases[i]);
    free(cs->cases);
    free(cs);
}

xle_status xle_cases_add(xle_cases *cs, const char *id, const char *source, const char *relation,
                         xle_case **out, xle_error *err) {
    if (!cs || !id || !source) return xle_fail(err, XLE_ERR_ARG, "cases: add: id and source are required");
    if (cs->n == cs->cap && !grow((void **)&cs->cases, &cs->cap, cs->n + 1, sizeof(xle_case)))
        return xle_fail(err, XLE_ERR_NOMEM, "cases: out of memory");
    xle_case *c = &cs->cases[cs->n];
    memset(c, 0, sizeof *c);
    c->id = dup_str(id);
    c->source = dup_str(source);
    c->relation = relation ? dup_str(relation) : NULL;
    if (!c->id || !c->source || (relation && !c->relation)) {
        case_free(c);
        return xle_fail(err, XLE_ERR_NOMEM, "cases: out of memory");
    }
    cs->n++;
    if (out) *out = c;
    return XLE_OK;
}

xle_status xle_case_add_lang(xle_case *c, const char *lang, const char *prompt,
                             const char *subject, const char *target_new,
                             const char *target_true, xle_case_lang **out, xle_error *err) {
    if (!c || !prompt || !subject || !target_new)
        return xle_fail(err, XLE_ERR_ARG, "cases: %s: add_lang: prompt, subject and target_new are required",
                        c && c->id ? c->id : "?");
    if (!xle_lang_code_valid(lang))
        return xle_fail(err, XLE_ERR_ARG, "cases: %s: langs: invalid language code", c->id);
    if (xle_case_lang_find(c, lang))
        return xle_fail(err, XLE_ERR_ARG, "cases: %s: langs.%s: language given twice", c->id, lang);
    int cap = c->n_langs; /* langs is sized exactly: cases rarely have more than 8 */
    xle_case_lang *nl = realloc(c->langs, (size_t)(cap + 1) * sizeof *nl);
    if (!nl) return xle_fail(err, XLE_ERR_NOMEM, "cases: out of memory");
    c->langs = nl;
    xle_case_lang *l = &c->langs[c->n_langs];
    memset(l, 0, sizeof *l);
    snprintf(l->lang, sizeof l->lang, "%s", lang);
    l->prompt = dup_str(prompt);
    l->subject = dup_str(subject);
    l->target_new = dup_str(target_new);
    l->target_true = target_true ? dup_str(target_true) : NULL;
    if (!l->prompt || !l->subject || !l->target_new || (target_true && !l->target_true)) {
        lang_free(l);
        return xle_fail(err, XLE_ERR_NOMEM, "cases: out of memory");
    }
    c->n_langs++;
    if (out) *out = l;
    return XLE_OK;
}

xle_status xle_case_lang_add_rephrase(xle_case_lang *l, const char *prompt, xle_error *err) {
    if (!prompt) return xle_fail(err, XLE_ERR_ARG, "cases: rephrase: NULL prompt");
    char **p = realloc(l->rephrases, (size_t)(l->n_rephrases + 1) * sizeof *p);
    if (!p) return xle_fail(err, XLE_ERR_NOMEM, "cases: out of memory");
    l->rephrases = p;
    if (!(p[l->n_rephrases] = dup_str(prompt))) return xle_fail(err, XLE_ERR_NOMEM, "cases: out of memory");
    l->n_rephrases++;
    return XLE_OK;
}

static xle_status add_qa(xle_qa **arr, int *n, const char *prompt, const char *answer,
                         xle_error *err) {
    if (!prompt || !answer) return xle_fail(err, XLE_ERR_ARG, "cases: pair: NULL prompt or answer");
    xle_qa *p = realloc(*arr, (size_t)(*n + 1) * sizeof *p);
    if (!p) return xle_fail(err, XLE_ERR_NOMEM, "cases: out of memory");
    *arr = p;
    p[*n].prompt = dup_str(prompt);
    p[*n].answer = dup_str(answer);
    if (!p[*n].prompt || !p[*n].answer) {
        free(p[*n].prompt);
        free(p[*n].answer);
        return xle_fail(err, XLE_ERR_NOMEM, "cases: out of memory");
    }
    (*n)++;
    return XLE_OK;
}

xle_status xle_case_lang_add_locality(xle_case_lang *l, const char *prompt, const char *answer,
                                      xle_error *err) {
    return add_qa(&l->locality, &l->n_locality, prompt, answer, err);
}

xle_status xle_case_lang_add_portability(xle_case_lang *l, const char *prompt,
                                         const char *answer, xle_error *err) {
    return add_qa(&l->portability, &l->n_portability, prompt, answer, err);
}

const xle_case_lang *xle_case_lang_find(const xle_case *c, const char *lang) {
    if (!c || !lang) return NULL;
    for (int i = 0; i < c->n_langs; i++)
        if (strcmp(c->langs[i].lang, lang) == 0) return &c->langs[i];
    return NULL;
}

xle_status xle_cases_keep_langs(xle_cases *cs, const char *const *langs, int n_langs,
                                xle_error *err) {
    if (!cs || (n_langs > 0 && !langs) || n_langs < 0)
        return xle_fail(err, XLE_ERR_ARG, "cases: keep_langs: bad arguments");
    int kept_cases = 0;
    for (int i = 0; i < cs->n; i++) {
        xle_case *c = &cs->cases[i];
        int kept = 0;
        for (int j = 0; j < c->n_langs; j++) {
            int want = 0;
            for (int k = 0; k < n_langs && !want; k++) want = strcmp(c->langs[j].lang, langs[k]) == 0;
            if (want) c->langs[kept++] = c->langs[j];
            else lang_free(&c->langs[j]);
        }
        c->n_langs = kept;
        if (kept) cs->cases[kept_cases++] = *c;
        else case_free(c);
    }
    cs->n = kept_cases;
    return XLE_OK;
}

int xle_cases_lang_list(const xle_cases *cs, char (*langs)[XLE_LANG_MAX], int max) {
    /* Small sets of languages: a linear list is enough. */
    char seen[64][XLE_LANG_MAX];
    int n = 0;
    for (int i = 0; cs && i < cs->n; i++) {
        for (int j = 0; j < cs->cases[i].n_langs; j++) {
            const char *code = cs->cases[i].langs[j].lang;
            int found = 0;
            for (int k = 0; k < n && k < 64 && !found; k++) found = strcmp(seen[k], code) == 0;
            if (found) continue;
            if (n < 64) memcpy(seen[n], code, XLE_LANG_MAX);
            if (langs && n < max) memcpy(langs[n], code, XLE_LANG_MAX);
            n++;
        }
    }
    return n;
}

/* ---------------------------------------------------------------------------------------------
 * Whole-set checks (unique ids)
 * ------------------------------------------------------------------------------------------- */

typedef struct id_ref {
    const char *id;
    int index;
} id_ref;

static int id_ref_cmp(const void *a, const void *b) {
    const id_ref *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c ? c : (x->index > y->index) - (x->index < y->index);
}

/* Finds a duplicate id: on return *first < *second are indices of two equal ids, or -1. */
static xle_status find_duplicate(const xle_cases *cs, int *first, int *second, xle_error *err) {
    *first = *second = -1;
    if (cs->n < 2) return XLE_OK;
    id_ref *refs = malloc((size_t)cs->n * sizeof *refs);
    if (!refs) return xle_fail(err, XLE_ERR_NOMEM, "cases: out of memory");
    for (int i = 0; i < cs->n; i++) refs[i] = (id_ref){cs->cases[i].id, i};
    qsort(refs, (size_t)cs->n, sizeof *refs, id_ref_cmp);
    for (int i = 1; i < cs->n; i++) {
        if (strcmp(refs[i - 1].id, refs[i].id) == 0 &&
            (*second < 0 || refs[i].index < *second)) {
            *first = refs[i - 1].index;
            *second = refs[i].index;
        }
    }
    free(refs);
    return XLE_OK;
}

xle_status xle_cases_check(const xle_cases *cs, const char *what, xle_error *err) {
    for (int i = 0; i < cs->n; i++) {
        const xle_case *c = &cs->cases[i];
        if (!c->id || !c->id[0]) return xle_fail(err, XLE_ERR_FORMAT, "%s: case %d: id: empty", what, i);
        if (!c->source || !c->source[0])
            return xle_fail(err, XLE_ERR_FORMAT, "%s: case %s: source: empty", what, c->id);
        if (c->n_langs < 1)
            return xle_fail(err, XLE_ERR_FORMAT, "%s: case %s: langs: no language", what, c->id);
        for (int j = 0; j < c->n_langs; j++) {
            if (!xle_lang_code_valid(c->langs[j].lang))
                return xle_fail(err, XLE_ERR_FORMAT, "%s: case %s: langs: invalid language code", what, c->id);
            for (int k = 0; k < j; k++)
                if (strcmp(c->langs[j].lang, c->langs[k].lang) == 0)
                    return xle_fail(err, XLE_ERR_FORMAT, "%s: case %s: langs.%s: language given twice",
                                    what, c->id, c->langs[j].lang);
        }
    }
    int a, b;
    xle_status st = find_duplicate(cs, &a, &b, err);
    if (st) return st;
    if (a >= 0)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: case %d: id: \"%.100s\" duplicates case %d", what,
                        b + 1, cs->cases[b].id, a + 1);
    return XLE_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Reading JSONL
 * ------------------------------------------------------------------------------------------- */

typedef struct line_ctx {
    const char *path;
    size_t line;
} line_ctx;

static xle_status line_fail(xle_error *err, const line_ctx *lc, const char *field,
                            const char *what) {
    return xle_fail(err, XLE_ERR_FORMAT, "%s:%zu: %s: %s", lc->path, lc->line, field, what);
}

static const char *json_kind(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

/* obj[key] as a required string (may be empty). */
static xle_status need_str(const json_t *obj, const char *key, const char *prefix,
                           const line_ctx *lc, const char **out, xle_error *err) {
    char field[96];
    snprintf(field, sizeof field, "%s%s", prefix, key);
    json_t *v = json_object_get(obj, key);
    if (!v) return line_fail(err, lc, field, "missing");
    if (!json_is_string(v)) {
        char what[64];
        snprintf(what, sizeof what, "expected a string, got %s", json_kind(v));
        return line_fail(err, lc, field, what);
    }
    *out = json_string_value(v);
    return XLE_OK;
}

static xle_status check_keys(const json_t *obj, const char *const *allowed, const char *prefix,
                             const line_ctx *lc, xle_error *err) {
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        int ok = 0;
        for (int i = 0; allowed[i] && !ok; i++) ok = strcmp(key, allowed[i]) == 0;
        if (!ok) {
            char field[128];
            snprintf(field, sizeof field, "%s%.60s", prefix, key);
            return line_fail(err, lc, field, "unknown field");
        }
    }
    return XLE_OK;
}

static xle_status parse_pairs(const json_t *arr, const char *prefix, const char *key,
                              xle_case_lang *l, int portability, const line_ctx *lc,
                              xle_error *err) {
    char field[128];
    snprintf(field, sizeof field, "%s%s", prefix, key);
    if (!arr) return XLE_OK;
    if (!json_is_array(arr)) return line_fail(err, lc, field, "expected an array");
    static const char *const pair_keys[] = {"prompt", "answer", NULL};
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *p = json_array_get(arr, i);
        char pf[160];
        snprintf(pf, sizeof pf, "%s[%zu].", field, i);
        if (!json_is_object(p)) {
            pf[strlen(pf) - 1] = 0;
            return line_fail(err, lc, pf, "expected an object {\"prompt\", \"answer\"}");
        }
        xle_status st = check_keys(p, pair_keys, pf, lc, err);
        const char *q = NULL, *a = NULL;
        if (!st) st = need_str(p, "prompt", pf, lc, &q, err);
        if (!st) st = need_str(p, "answer", pf, lc, &a, err);
        if (!st) st = portability ? xle_case_lang_add_portability(l, q, a, err)
                                  : xle_case_lang_add_locality(l, q, a, err);
        if (st) return st;
    }
    return XLE_OK;
}

static xle_status parse_lang(xle_case *c, const char *code, const json_t *half,
                             const line_ctx *lc, xle_error *err) {
    char prefix[64];
    snprintf(prefix, sizeof prefix, "langs.%.20s.", code);
    if (!xle_lang_code_valid(code)) return line_fail(err, lc, "langs", "invalid language code");
    if (!json_is_object(half)) {
        prefix[strlen(prefix) - 1] = 0;
        return line_fail(err, lc, prefix, "expected an object");
    }
    static const char *const keys[] = {"prompt", "subject", "target_new", "target_true",
                                       "rephrases", "locality", "portability", NULL};
    xle_status st = check_keys(half, keys, prefix, lc, err);
    const char *prompt = NULL, *subject = NULL, *target_new = NULL, *target_true = NULL;
    if (!st) st = need_str(half, "prompt", prefix, lc, &prompt, err);
    if (!st) st = need_str(half, "subject", prefix, lc, &subject, err);
    if (!st) st = need_str(half, "target_new", prefix, lc, &target_new, err);
    if (st) return st;
    json_t *tt = json_object_get(half, "target_true");
    if (tt && !json_is_null(tt)) {
        if (!json_is_string(tt)) {
            char f[96];
            snprintf(f, sizeof f, "%starget_true", prefix);
            return line_fail(err, lc, f, "expected a string or null");
        }
        target_true = json_string_value(tt);
    }
    xle_case_lang *l;
    if ((st = xle_case_add_lang(c, code, prompt, subject, target_new, target_true, &l, err)))
        return st;
    json_t *reph = json_object_get(half, "rephrases");
    if (reph) {
        char f[96];
        snprintf(f, sizeof f, "%srephrases", prefix);
        if (!json_is_array(reph)) return line_fail(err, lc, f, "expected an array of strings");
        for (size_t i = 0; i < json_array_size(reph); i++) {
            json_t *r = json_array_get(reph, i);
            if (!json_is_string(r)) {
                char fi[128];
                snprintf(fi, sizeof fi, "%s[%zu]", f, i);
                return line_fail(err, lc, fi, "expected a string");
            }
            if ((st = xle_case_lang_add_rephrase(l, json_string_value(r), err))) return st;
        }
    }
    if ((st = parse_pairs(json_object_get(half, "locality"), prefix, "locality", l, 0, lc, err)))
        return st;
    return parse_pairs(json_object_get(half, "portability"), prefix, "portability", l, 1, lc, err);
}

/* Parses one line (a JSON object) and appends the case to cs. */
static xle_status parse_line(xle_cases *cs, const char *text, size_t len, const line_ctx *lc,
                             xle_error *err) {
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        char what[200];
        snprintf(what, sizeof what, "column %d: %s", jerr.column, jerr.text);
        return line_fail(err, lc, "json", what);
    }
    xle_status st = XLE_OK;
    static const char *const keys[] = {"id", "source", "relation", "langs", NULL};
    const char *id = NULL, *source = NULL, *relation = NULL;
    json_t *langs, *rel;
    if (!json_is_object(root)) {
        st = line_fail(err, lc, "case", "expected a JSON object");
        goto done;
    }
    if ((st = check_keys(root, keys, "", lc, err))) goto done;
    if ((st = need_str(root, "id", "", lc, &id, err))) goto done;
    if (!id[0]) {
        st = line_fail(err, lc, "id", "empty");
        goto done;
    }
    if ((st = need_str(root, "source", "", lc, &source, err))) goto done;
    rel = json_object_get(root, "relation");
    if (rel && !json_is_null(rel)) {
        if (!json_is_string(rel)) {
            st = line_fail(err, lc, "relation", "expected a string or null");
            goto done;
        }
        relation = json_string_value(rel);
    }
    langs = json_object_get(root, "langs");
    if (!langs) {
        st = line_fail(err, lc, "langs", "missing");
        goto done;
    }
    if (!json_is_object(langs) || json_object_size(langs) == 0) {
        st = line_fail(err, lc, "langs", "expected a non-empty object keyed by language code");
        goto done;
    }
    xle_case *c;
    if ((st = xle_cases_add(cs, id, source, relation, &c, err))) goto done;
    const char *code;
    json_t *half;
    json_object_foreach(langs, code, half) {
        if ((st = parse_lang(c, code, half, lc, err))) break;
    }
    if (st) { /* drop the half-built case */
        cs->n--;
        case_free(&cs->cases[cs->n]);
    }
done:
    json_decref(root);
    return st;
}

xle_status xle_cases_load(const char *path, xle_cases **out, xle_error *err) {
    *out = NULL;
    xle_status in = xle_in_check_file(path, err);
    if (in != XLE_OK) return in;
    FILE *f = fopen(path, "rb");
    if (!f) return xle_fail(err, XLE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    xle_cases *cs;
    xle_status st = xle_cases_new(&cs, err);
    if (st) {
        fclose(f);
        return st;
    }
    size_t *lines = NULL; /* line number of each case, for duplicate-id messages */
    int lines_cap = 0;
    char *buf = NULL;
    size_t cap = 0;
    ssize_t got;
    line_ctx lc = {path, 0};
    while ((got = getline(&buf, &cap, f)) >= 0) {
        lc.line++;
        size_t len = (size_t)got;
        if (memchr(buf, 0, len)) {
            st = line_fail(err, &lc, "json", "NUL byte in line");
            break;
        }
        int blank = 1;
        for (size_t i = 0; i < len && blank; i++)
            blank = buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r' || buf[i] == '\n';
        if (blank) continue;
        if ((st = parse_line(cs, buf, len, &lc, err))) break;
        if (!grow((void **)&lines, &lines_cap, cs->n, sizeof *lines)) {
            st = xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", path);
            break;
        }
        lines[cs->n - 1] = lc.line;
    }
    if (!st && ferror(f)) st = xle_fail(err, XLE_ERR_IO, "%s: read error", path);
    free(buf);
    fclose(f);
    if (!st) {
        int a, b;
        st = find_duplicate(cs, &a, &b, err);
        if (!st && a >= 0)
            st = xle_fail(err, XLE_ERR_FORMAT, "%s:%zu: id: \"%.100s\" duplicates line %zu", path,
                          lines[b], cs->cases[b].id, lines[a]);
    }
    free(lines);
    if (st) {
        xle_cases_free(cs);
        return st;
    }
    *out = cs;
    return XLE_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Writing JSONL
 * ------------------------------------------------------------------------------------------- */

/* Sets obj[key] = v, taking v; returns 0 on failure (v is released either way). */
static int put(json_t *obj, const char *key, json_t *v) {
    return v && json_object_set_new(obj, key, v) == 0;
}

static json_t *pairs_json(const xle_qa *qa, int n) {
    json_t *arr = json_array();
    for (int i = 0; arr && i < n; i++) {
        json_t *p = json_object();
        if (!p || !put(p, "prompt", json_string(qa[i].prompt)) ||
            !put(p, "answer", json_string(qa[i].answer)) || json_array_append_new(arr, p)) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

static json_t *case_json(const xle_case *c) {
    json_t *o = json_object(), *langs = json_object();
    if (!o || !langs) goto fail;
    if (!put(o, "id", json_string(c->id)) || !put(o, "source", json_string(c->source))) goto fail;
    if (c->relation && !put(o, "relation", json_string(c->relation))) goto fail;
    for (int i = 0; i < c->n_langs; i++) {
        const xle_case_lang *l = &c->langs[i];
        json_t *h = json_object();
        if (!h || json_object_set_new(langs, l->lang, h)) goto fail;
        if (!put(h, "prompt", json_string(l->prompt)) || !put(h, "subject", json_string(l->subject)) ||
            !put(h, "target_new", json_string(l->target_new)) ||
            !put(h, "target_true", l->target_true ? json_string(l->target_true) : json_null()))
            goto fail;
        json_t *reph = json_array();
        if (!put(h, "rephrases", reph)) goto fail; /* h now owns reph */
        for (int j = 0; j < l->n_rephrases; j++)
            if (json_array_append_new(reph, json_string(l->rephrases[j]))) goto fail;
        if (!put(h, "locality", pairs_json(l->locality, l->n_locality)) ||
            !put(h, "portability", pairs_json(l->portability, l->n_portability)))
            goto fail;
    }
    if (!put(o, "langs", langs)) {
        langs = NULL;
        goto fail;
    }
    return o;
fail:
    json_decref(langs);
    json_decref(o);
    return NULL;
}

xle_status xle_cases_write_jsonl(const xle_cases *cs, const char *path, xle_error *err) {
    xle_status st = xle_cases_check(cs, path, err);
    if (!st) st = xle_out_check(path, XLE_OUT_FILE, err);
    if (st) return st;
    xle_atomic_file out;
    xle_status open_st = xle_atomic_open(&out, path, err);
    if (open_st != XLE_OK) return open_st;
    FILE *f = out.f;
    for (int i = 0; i < cs->n && !st; i++) {
        json_t *o = case_json(&cs->cases[i]);
        if (!o) {
            st = xle_fail(err, XLE_ERR_NOMEM, "%s: case %s: cannot build JSON (bad UTF-8 or out of memory)",
                          path, cs->cases[i].id);
            break;
        }
        char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(o);
        if (!s) {
            st = xle_fail(err, XLE_ERR_NOMEM, "%s: case %s: cannot serialize", path, cs->cases[i].id);
            break;
        }
        if (fputs(s, f) == EOF || fputc('\n', f) == EOF)
            st = xle_fail(err, XLE_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        free(s);
    }
    xle_status close_st = xle_atomic_close(&out, !st, err);
    return st ? st : close_st;
}
