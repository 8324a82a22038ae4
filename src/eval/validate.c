/*
 * validate.c: which cases a subject-locating editor (ROME, MEMIT, ...) can use, and why not.
 * A language half is unusable when its prompt, subject or target is missing, or when the
 * subject cannot be found in the prompt. Finding the subject has three levels:
 *
 *  EXACT    a literal byte substring (what ROME's code does).
 *  CASELESS both strings mapped code point by code point to their compatibility decomposition
 *           with case folding and lumping (utf8proc_decompose_char with UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT |
 *           UTF8PROC_CASEFOLD | UTF8PROC_LUMP: NFKD + full case folding + typographic quotes,
 *           dashes and spaces mapped to ASCII), whitespace runs folded to one space and trimmed;
 *           then a substring search that starts and ends on whole source characters.
 *  STEM     on the CASELESS forms, split into words at spaces: the subject's words match
 *           consecutive prompt words, each subject word w (L code points) sharing a common
 *           prefix of at least L code points if L <= 3, else max(L - 2, ceil(3L/4)) with its
 *           prompt word. This admits inflectional endings (Tamil "சவால்" -> "சவாலை", Russian
 *           "многоборье" -> "многоборью") but not different words.
 *
 * The span returned is in bytes of the original prompt, so an editor can find the subject's
 * last token there.
 */
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "eval/cases.h"

/* A string mapped for loose matching: cp[i] came from source character ch[i], which spans
 * bytes [cb[ch], ce[ch]) of the original. */
typedef struct norm {
    int32_t *cp;
    int *ch;
    int n, cap;
    size_t *cb, *ce;
    int nch, chcap;
} norm;

static void norm_free(norm *s) {
    free(s->cp);
    free(s->ch);
    free(s->cb);
    free(s->ce);
    memset(s, 0, sizeof *s);
}

static int is_space_cp(int32_t c) {
    return c == 0x20 || (c >= 0x09 && c <= 0x0D) || c == 0x85 || c == 0x2028 || c == 0x2029;
}

static int norm_push(norm *s, int32_t c, int ch) {
    if (s->n == s->cap) {
        int nc = s->cap ? s->cap * 2 : 64;
        int32_t *cp = realloc(s->cp, (size_t)nc * sizeof *cp);
        if (!cp) return 0;
        s->cp = cp;
        int *chs = realloc(s->ch, (size_t)nc * sizeof *chs);
        if (!chs) return 0;
        s->ch = chs;
        s->cap = nc;
    }
    s->cp[s->n] = c;
    s->ch[s->n] = ch;
    s->n++;
    return 1;
}

static int norm_build(const char *text, norm *s) {
    memset(s, 0, sizeof *s);
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)text;
    utf8proc_ssize_t len = (utf8proc_ssize_t)strlen(text), i = 0;
    while (i < len) {
        utf8proc_int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate(p + i, len - i, &c);
        if (k <= 0) { /* an invalid byte stands for itself as U+FFFD */
            c = 0xFFFD;
            k = 1;
        }
        if (s->nch == s->chcap) {
            int nc = s->chcap ? s->chcap * 2 : 64;
            size_t *cb = realloc(s->cb, (size_t)nc * sizeof *cb);
            if (!cb) return 0;
            s->cb = cb;
            size_t *ce = realloc(s->ce, (size_t)nc * sizeof *ce);
            if (!ce) return 0;
            s->ce = ce;
            s->chcap = nc;
        }
        int ch = s->nch++;
        s->cb[ch] = (size_t)i;
        s->ce[ch] = (size_t)(i + k);
        i += k;
        utf8proc_int32_t buf[32];
        int bound = 0;
        utf8proc_ssize_t m = utf8proc_decompose_char(
            c, buf, 32, UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT | UTF8PROC_CASEFOLD | UTF8PROC_LUMP, &bound);
        if (m < 0 || m > 32) { /* unassigned or oversized: keep the code point as it is */
            buf[0] = c;
            m = 1;
        }
        for (utf8proc_ssize_t j = 0; j < m; j++) {
            int32_t d = buf[j];
            if (is_space_cp(d)) {
                if (s->n == 0 || s->cp[s->n - 1] == 0x20) continue;
                d = 0x20;
            }
            if (!norm_push(s, d, ch)) return 0;
        }
    }
    if (s->n > 0 && s->cp[s->n - 1] == 0x20) s->n--;
    return 1;
}

/* Level CASELESS: substring on whole characters. */
static int match_caseless(const norm *P, const norm *S, size_t *start, size_t *end) {
    int m = S->n;
    if (m == 0 || m > P->n) return 0;
    for (int k = 0; k + m <= P->n; k++) {
        if (memcmp(P->cp + k, S->cp, (size_t)m * sizeof(int32_t)) != 0) continue;
        if (k > 0 && P->ch[k - 1] == P->ch[k]) continue;
        if (k + m < P->n && P->ch[k + m] == P->ch[k + m - 1]) continue;
        *start = P->cb[P->ch[k]];
        *end = P->ce[P->ch[k + m - 1]];
        return 1;
    }
    return 0;
}

typedef struct word {
    int b, e; /* [b, e) in norm.cp */
} word;

static int split_words(const norm *s, word **out) {
    int n = 0;
    word *w = malloc(((size_t)s->n / 2 + 1) * sizeof *w);
    if (!w) return -1;
    for (int i = 0; i < s->n;) {
        while (i < s->n && s->cp[i] == 0x20) i++;
        if (i >= s->n) break;
        int b = i;
        while (i < s->n && s->cp[i] != 0x20) i++;
        w[n++] = (word){b, i};
    }
    *out = w;
    return n;
}

static int stem_need(int len) {
    if (len <= 3) return len;
    int a = len - 2, b = (3 * len + 3) / 4;
    return a > b ? a : b;
}

/* Level STEM: consecutive words, each a near-prefix match. Returns 1 on a match, 0 on none,
 * -1 on allocation failure. */
static int match_stem(const norm *P, const norm *S, size_t *start, size_t *end) {
    word *pw = NULL, *sw = NULL;
    int np = split_words(P, &pw), ns = split_words(S, &sw), found = 0;
    if (np < 0 || ns < 0) {
        free(pw);
        free(sw);
        return -1;
    }
    for (int j = 0; ns > 0 && j + ns <= np && !found; j++) {
        int ok = 1, last_end = 0;
        for (int t = 0; t < ns && ok; t++) {
            const word *a = &sw[t], *b = &pw[j + t];
            int la = a->e - a->b, lb = b->e - b->b, cpl = 0;
            while (cpl < la && cpl < lb && S->cp[a->b + cpl] == P->cp[b->b + cpl]) cpl++;
            ok = cpl >= stem_need(la);
            last_end = b->b + cpl;
        }
        if (ok) {
            *start = P->cb[P->ch[pw[j].b]];
            *end = P->ce[P->ch[last_end - 1]];
            found = 1;
        }
    }
    free(pw);
    free(sw);
    return found;
}

xle_status xle_subject_locate(const char *prompt, const char *subject, xle_match loosest,
                              xle_match *how, size_t *start, size_t *end, xle_error *err) {
    *how = XLE_MATCH_NONE;
    if (!prompt || !subject || !subject[0]) return XLE_OK;
    const char *at = strstr(prompt, subject);
    if (at) {
        *how = XLE_MATCH_EXACT;
        *start = (size_t)(at - prompt);
        *end = *start + strlen(subject);
        return XLE_OK;
    }
    if (loosest < XLE_MATCH_CASELESS) return XLE_OK;
    norm P, S;
    int ok = norm_build(prompt, &P);
    ok = norm_build(subject, &S) && ok;
    xle_status st = XLE_OK;
    if (!ok) st = xle_fail(err, XLE_ERR_NOMEM, "subject match: out of memory");
    else if (match_caseless(&P, &S, start, end)) *how = XLE_MATCH_CASELESS;
    else if (loosest >= XLE_MATCH_STEM) {
        int r = match_stem(&P, &S, start, end);
        if (r < 0) st = xle_fail(err, XLE_ERR_NOMEM, "subject match: out of memory");
        else if (r > 0) *how = XLE_MATCH_STEM;
    }
    norm_free(&P);
    norm_free(&S);
    return st;
}

const char *xle_case_problem_name(xle_case_problem p) {
    switch (p) {
    case XLE_CASE_USABLE: return "usable";
    case XLE_CASE_NO_PROMPT: return "prompt missing";
    case XLE_CASE_NO_SUBJECT: return "subject empty";
    case XLE_CASE_NO_TARGET: return "target empty";
    case XLE_CASE_SUBJECT_NOT_IN_PROMPT: return "subject not in prompt";
    default: return "?";
    }
}

xle_status xle_case_lang_check(const xle_case_lang *l, xle_match loosest, xle_case_problem *out,
                               xle_match *how, xle_error *err) {
    xle_match m = XLE_MATCH_NONE;
    *out = XLE_CASE_USABLE;
    if (how) *how = XLE_MATCH_NONE;
    if (xle_str_blank(l->prompt)) *out = XLE_CASE_NO_PROMPT;
    else if (xle_str_blank(l->subject)) *out = XLE_CASE_NO_SUBJECT;
    else if (xle_str_blank(l->target_new)) *out = XLE_CASE_NO_TARGET;
    if (*out != XLE_CASE_USABLE) return XLE_OK;
    size_t b, e;
    xle_status st = xle_subject_locate(l->prompt, l->subject, loosest, &m, &b, &e, err);
    if (st) return st;
    if (m == XLE_MATCH_NONE) *out = XLE_CASE_SUBJECT_NOT_IN_PROMPT;
    if (how) *how = m;
    return XLE_OK;
}

static xle_lang_counts *counts_for(xle_validation *v, int *cap, const char *lang) {
    for (int i = 0; i < v->n_langs; i++)
        if (strcmp(v->langs[i].lang, lang) == 0) return &v->langs[i];
    if (v->n_langs == *cap) {
        int nc = *cap ? *cap * 2 : 8;
        xle_lang_counts *p = realloc(v->langs, (size_t)nc * sizeof *p);
        if (!p) return NULL;
        v->langs = p;
        *cap = nc;
    }
    xle_lang_counts *c = &v->langs[v->n_langs++];
    memset(c, 0, sizeof *c);
    memcpy(c->lang, lang, XLE_LANG_MAX);
    return c;
}

xle_status xle_cases_validate(const xle_cases *cs, xle_validation **out, xle_error *err) {
    *out = NULL;
    xle_validation *v = calloc(1, sizeof *v);
    if (!v) return xle_fail(err, XLE_ERR_NOMEM, "validate: out of memory");
    int cap = 0;
    xle_status st = XLE_OK;
    v->n_cases = cs->n;
    for (int i = 0; i < cs->n && !st; i++) {
        const xle_case *c = &cs->cases[i];
        for (int j = 0; j < c->n_langs && !st; j++) {
            const xle_case_lang *l = &c->langs[j];
            xle_lang_counts *lc = counts_for(v, &cap, l->lang);
            if (!lc) {
                st = xle_fail(err, XLE_ERR_NOMEM, "validate: out of memory");
                break;
            }
            xle_case_problem p;
            if ((st = xle_case_lang_check(l, XLE_MATCH_EXACT, &p, NULL, err))) break;
            lc->n_cases++;
            lc->n_problem[p]++;
            if (p != XLE_CASE_SUBJECT_NOT_IN_PROMPT) continue;
            xle_match how;
            size_t b, e;
            if ((st = xle_subject_locate(l->prompt, l->subject, XLE_MATCH_STEM, &how, &b, &e, err)))
                break;
            if (how == XLE_MATCH_CASELESS) lc->n_caseless++;
            else if (how == XLE_MATCH_STEM) lc->n_stem++;
        }
    }
    if (st) {
        xle_validation_free(v);
        return st;
    }
    *out = v;
    return XLE_OK;
}

void xle_validation_free(xle_validation *v) {
    if (!v) return;
    free(v->langs);
    free(v);
}
