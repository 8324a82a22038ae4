/*
 * ike.c: in-context knowledge editing (IKE, Zheng et al. 2023; the baseline BMIKE-53 evaluates
 * across languages): no weight changes; the new fact and k demonstrations are put before every
 * test prompt (docs/evaluation.md, "In-context editing").
 *
 * The context, in the edit language, is k demonstrations then the new fact:
 *
 *   New Fact: <prompt_j> <target_j>\nPrompt: <question_j> <answer_j>\n\n     (k times)
 *   New Fact: <edit prompt> <target_new>\nPrompt: <the test prompt, any test language>
 *
 * Demonstrations come from the case file's other cases that have a half in the edit language,
 * drawn by a generator seeded with (seed, case index), so a unit's context depends only on the
 * unit. As in the IKE paper they cycle through the three kinds: copy (the demo's own prompt),
 * update (one of its rephrases) and retain (one of its locality facts, the answer unchanged);
 * a demo without rephrases or locality facts falls back to copy. EasyEdit writes the same
 * "New Fact: ... Prompt: ..." lines (retrieving its demonstrations by sentence similarity; here
 * they are drawn at random, which needs no second model).
 *
 * A small model has a short context: demonstrations are dropped from the end until the context
 * plus the longest question of the unit fits in the model's max_seq_len (n_demos says how many
 * remain).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/eval_internal.h"

/* A growable string. */
typedef struct sbuf {
    char *s;
    size_t n, cap;
    int failed;
} sbuf;

static void sb_add(sbuf *b, const char *s) {
    size_t k = strlen(s);
    if (b->failed) return;
    if (b->n + k + 1 > b->cap) {
        size_t cap = (b->n + k + 1) * 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->s = p, b->cap = cap;
    }
    memcpy(b->s + b->n, s, k + 1);
    b->n += k;
}

/* "New Fact: P T\nPrompt: Q A\n\n" */
static void add_demo(sbuf *b, const char *p, const char *t, const char *q, const char *a) {
    sb_add(b, "New Fact: ");
    sb_add(b, p);
    sb_add(b, " ");
    sb_add(b, t);
    sb_add(b, "\nPrompt: ");
    sb_add(b, q);
    sb_add(b, " ");
    sb_add(b, a);
    sb_add(b, "\n\n");
}

static int usable(const xle_case_lang *l) {
    return l && l->prompt[0] && l->target_new[0];
}

/* The context with the first n of the drawn demos. */
static char *build(const xle_cases *cs, const int *demo, int n, const xle_case_lang *edit) {
    sbuf b = {0};
    sb_add(&b, "");
    for (int j = 0; j < n; j++) {
        const xle_case_lang *d = xle_case_lang_find(&cs->cases[demo[j]], edit->lang);
        int kind = j % 3;
        if (kind == 1 && d->n_rephrases > 0)
            add_demo(&b, d->prompt, d->target_new, d->rephrases[0], d->target_new);
        else if (kind == 2 && d->n_locality > 0 && d->locality[0].prompt[0] && d->locality[0].answer[0])
            add_demo(&b, d->prompt, d->target_new, d->locality[0].prompt, d->locality[0].answer);
        else
            add_demo(&b, d->prompt, d->target_new, d->prompt, d->target_new);
    }
    sb_add(&b, "New Fact: ");
    sb_add(&b, edit->prompt);
    sb_add(&b, " ");
    sb_add(&b, edit->target_new);
    sb_add(&b, "\nPrompt: ");
    if (b.failed) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

static xle_status count_tokens(const xle_tokenizer *tok, const char *s, int *n, xle_error *err) {
    xle_tokens t;
    xle_status st = xle_tokenize(tok, s, strlen(s), 1, 0, &t, err);
    if (st != XLE_OK) return st;
    *n = (int)t.n;
    xle_tokens_free(&t);
    return XLE_OK;
}

xle_status xle_ike_context(const xle_tokenizer *tok, const xle_cases *cs, int ci, const char *edit_lang,
                           int k, uint64_t seed, int max_tokens, char **out, int *n_demos,
                           xle_error *err) {
    *out = NULL;
    *n_demos = 0;
    const xle_case_lang *edit = xle_case_lang_find(&cs->cases[ci], edit_lang);
    if (!usable(edit))
        return xle_fail(err, XLE_ERR_ARG, "ike: case %s has no usable %s half", cs->cases[ci].id, edit_lang);
    int *pool = malloc((size_t)(cs->n > 0 ? cs->n : 1) * sizeof *pool), n_pool = 0;
    if (!pool) return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    for (int i = 0; i < cs->n; i++)
        if (i != ci && usable(xle_case_lang_find(&cs->cases[i], edit_lang))) pool[n_pool++] = i;
    /* the first k of a seeded shuffle (partial Fisher-Yates) */
    xle_rng rng;
    xle_rng_seed(&rng, seed ^ ((uint64_t)(ci + 1) * 0x9e3779b97f4a7c15ull));
    int n = k < n_pool ? k : n_pool;
    for (int j = 0; j < n; j++) {
        int r = j + (int)(xle_rng_next(&rng) % (uint64_t)(n_pool - j));
        int t = pool[j];
        pool[j] = pool[r], pool[r] = t;
    }
    xle_status st = XLE_OK;
    for (;; n--) {
        char *ctx = build(cs, pool, n, edit);
        if (!ctx) {
            st = xle_fail(err, XLE_ERR_NOMEM, "out of memory");
            break;
        }
        int len = 0;
        if ((st = count_tokens(tok, ctx, &len, err)) != XLE_OK) {
            free(ctx);
            break;
        }
        if (len <= max_tokens || n == 0) {
            *out = ctx;
            *n_demos = n;
            break;
        }
        free(ctx);
    }
    free(pool);
    return st;
}

/* Tokens of (prompt, answer) as a question is scored. */
static xle_status question_tokens(const xle_tokenizer *tok, const char *prompt, const char *answer,
                                  int *n, xle_error *err) {
    *n = 0;
    if (!answer || !answer[0]) return XLE_OK;
    int32_t *p = NULL, *a = NULL;
    int np = 0, na = 0;
    xle_error e2 = {0};
    xle_status st = xle_tokenize_continuation(tok, prompt, answer, &p, &np, &a, &na, &e2);
    free(p), free(a);
    if (st == XLE_ERR_ARG) return XLE_OK; /* an empty answer is not asked */
    if (st != XLE_OK) {
        *err = e2;
        return st;
    }
    *n = np + na;
    return XLE_OK;
}

xle_status xle_ike_longest_question(const xle_tokenizer *tok, const xle_case_lang *const *halves, int n,
                                    int *longest, xle_error *err) {
    *longest = 0;
    xle_status st = XLE_OK;
    for (int h = 0; h < n && st == XLE_OK; h++) {
        const xle_case_lang *l = halves[h];
        int len;
        if ((st = question_tokens(tok, l->prompt, l->target_new, &len, err)) == XLE_OK && len > *longest) *longest = len;
        for (int i = 0; st == XLE_OK && i < l->n_rephrases; i++)
            if ((st = question_tokens(tok, l->rephrases[i], l->target_new, &len, err)) == XLE_OK && len > *longest)
                *longest = len;
        for (int i = 0; st == XLE_OK && i < l->n_locality; i++)
            if ((st = question_tokens(tok, l->locality[i].prompt, l->locality[i].answer, &len, err)) == XLE_OK &&
                len > *longest)
                *longest = len;
        for (int i = 0; st == XLE_OK && i < l->n_portability; i++)
            if ((st = question_tokens(tok, l->portability[i].prompt, l->portability[i].answer, &len, err)) ==
                    XLE_OK &&
                len > *longest)
                *longest = len;
    }
    return st;
}

static char *cat(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    char *s = malloc(na + nb + 1);
    if (!s) return NULL;
    memcpy(s, a, na);
    memcpy(s + na, b, nb + 1);
    return s;
}

void xle_ike_half_free(xle_case_lang *l) {
    if (!l) return;
    free(l->prompt);
    for (int i = 0; i < l->n_rephrases; i++) free(l->rephrases[i]);
    for (int i = 0; i < l->n_locality; i++) free(l->locality[i].prompt);
    for (int i = 0; i < l->n_portability; i++) free(l->portability[i].prompt);
    free(l->rephrases), free(l->locality), free(l->portability);
    memset(l, 0, sizeof *l);
}

xle_status xle_ike_half(const char *ctx, const xle_case_lang *l, xle_case_lang *out, xle_error *err) {
    memset(out, 0, sizeof *out);
    memcpy(out->lang, l->lang, sizeof out->lang);
    out->subject = l->subject;
    out->target_new = l->target_new;
    out->target_true = l->target_true;
    out->prompt = cat(ctx, l->prompt);
    out->rephrases = calloc((size_t)l->n_rephrases + 1, sizeof *out->rephrases);
    out->locality = calloc((size_t)l->n_locality + 1, sizeof *out->locality);
    out->portability = calloc((size_t)l->n_portability + 1, sizeof *out->portability);
    int ok = out->prompt && out->rephrases && out->locality && out->portability;
    for (int i = 0; ok && i < l->n_rephrases; i++, out->n_rephrases++)
        ok = (out->rephrases[i] = cat(ctx, l->rephrases[i])) != NULL;
    for (int i = 0; ok && i < l->n_locality; i++, out->n_locality++) {
        out->locality[i].answer = l->locality[i].answer;
        ok = (out->locality[i].prompt = cat(ctx, l->locality[i].prompt)) != NULL;
    }
    for (int i = 0; ok && i < l->n_portability; i++, out->n_portability++) {
        out->portability[i].answer = l->portability[i].answer;
        ok = (out->portability[i].prompt = cat(ctx, l->portability[i].prompt)) != NULL;
    }
    if (ok) return XLE_OK;
    xle_ike_half_free(out);
    return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
}
