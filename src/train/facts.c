/*
 * facts.c: whether a model knows a fact: its greedy continuation of the prompt, as text, starts
 * with the object followed by a word boundary (end of text, whitespace, punctuation or a
 * symbol). Judged on text rather than on token ids because the corpus sentence may go on after
 * the object ("... is Paris." encodes "Paris." differently from "Paris"), and what matters is
 * what the model says.
 */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "xledit.h"

/* Whether text at s starts a new word: end, or a character that is whitespace, punctuation, a
 * symbol or a control character (not a letter, mark or digit). */
static int at_boundary(const char *s) {
    if (!*s) return 1;
    utf8proc_int32_t cp;
    if (utf8proc_iterate((const utf8proc_uint8_t *)s, -1, &cp) < 0) return 0;
    utf8proc_category_t c = utf8proc_category(cp);
    return !(c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_ND) && c != UTF8PROC_CATEGORY_NL &&
           c != UTF8PROC_CATEGORY_NO;
}

xle_status xle_fact_recalled(xle_model *m, const xle_tokenizer *tok, const char *prompt,
                             const char *object, int *recalled, xle_error *err) {
    int32_t *p = NULL, *a = NULL, *gen = NULL;
    int np = 0, na = 0, n_gen = 0;
    char *text = NULL;
    *recalled = 0;
    while (*object == ' ') object++;
    xle_status st = xle_tokenize_continuation(tok, prompt, object, &p, &np, &a, &na, err);
    if (st != XLE_OK) return st;
    if (np == 0) {
        st = xle_fail(err, XLE_ERR_ARG, "facts: prompt '%.60s' gives no tokens", prompt);
        goto done;
    }
    /* the object's own tokens, and a few more to see where its word ends */
    const int n_new = na + 4;
    gen = malloc((size_t)n_new * sizeof *gen);
    if (!gen) {
        st = xle_fail(err, XLE_ERR_NOMEM, "facts: out of memory");
        goto done;
    }
    xle_sampler greedy = {.stop_at_eos = 1};
    if ((st = xle_generate(m, p, np, n_new, &greedy, gen, &n_gen, err)) != XLE_OK) goto done;
    text = xle_detokenize(tok, gen, n_gen, 1);
    if (!text) {
        st = xle_fail(err, XLE_ERR_NOMEM, "facts: out of memory");
        goto done;
    }
    const char *said = text;
    while (*said == ' ') said++;
    size_t k = strlen(object);
    *recalled = strncmp(said, object, k) == 0 && at_boundary(said + k);
done:
    free(p);
    free(a);
    free(gen);
    free(text);
    return st;
}
