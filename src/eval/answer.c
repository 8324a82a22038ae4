/*
 * answer.c: a greedy answer as people should see it. The metrics compare as many tokens as the
 * expected answer has, and decoded at that length an answer is often cut inside a word ("Par",
 * "l'A") or inside a character cluster (a Tamil consonant without its vowel sign). For showing,
 * decoding goes on until the word ends: the next token starts with white space, punctuation or
 * a symbol, or is the end of the text, and the cut falls between two grapheme clusters.
 */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "eval/eval_internal.h"

/* Whether all of s is valid UTF-8; *last gets its last code point (-1 when empty). */
static int valid_utf8(const char *s, size_t n, utf8proc_int32_t *last) {
    *last = -1;
    for (size_t i = 0; i < n;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0) return 0;
        *last = cp;
        i += (size_t)k;
    }
    return 1;
}

/* Whether a word may end before the code point cp (-1: invalid): cp is not a letter, a mark or a
 * digit (the rule xle_fact_recalled uses for where an object ends). */
static int starts_new_word(utf8proc_int32_t cp) {
    if (cp < 0) return 0;
    utf8proc_category_t c = utf8proc_category(cp);
    return !(c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_ND) && c != UTF8PROC_CATEGORY_NL &&
           c != UTF8PROC_CATEGORY_NO;
}

/* Whether the first k of the n generated ids end a word of the whole decoded text `full`. Tokens
 * after k that add no text end the word only when `final` (nothing more will be generated). */
static int word_ends_after(const xle_tokenizer *tok, const int32_t *ids, int k, const char *full,
                           int final, int *nomem) {
    char *pre = xle_detokenize(tok, ids, k, 1);
    if (!pre) {
        *nomem = 1;
        return 0;
    }
    size_t n = strlen(pre);
    utf8proc_int32_t last, next = -1;
    int ok = strncmp(pre, full, n) == 0 && valid_utf8(pre, n, &last);
    free(pre);
    if (!ok) return 0;  /* inside a character made of byte tokens, or decoding is not a prefix */
    if (!full[n]) return final; /* the tokens after k add no text */
    if (utf8proc_iterate((const utf8proc_uint8_t *)full + n, -1, &next) <= 0) return 0;
    if (!starts_new_word(next)) return 0;
    utf8proc_int32_t state = 0;
    return last < 0 || utf8proc_grapheme_break_stateful(last, next, &state);
}

int xle_answer_cut(const xle_tokenizer *tok, const int32_t *ids, int n, int n_min, int final, int *nomem) {
    *nomem = 0;
    if (n_min < 0) n_min = 0;
    if (n_min >= n) return -1;
    char *full = xle_detokenize(tok, ids, n, 1);
    if (!full) {
        *nomem = 1;
        return -1;
    }
    int cut = -1;
    for (int k = n_min; k < n && !*nomem; k++)
        if (word_ends_after(tok, ids, k, full, final, nomem)) {
            cut = k;
            break;
        }
    free(full);
    return *nomem ? -1 : cut;
}

/* Text without a trailing incomplete UTF-8 sequence (an answer stopped by the cap may end in
 * the middle of a character made of byte tokens). */
void xle_answer_drop_incomplete_tail(char *s) {
    size_t n = strlen(s), i = 0, good = 0;
    while (i < n) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0) {
            if (n - i < 4) break; /* a sequence cut by the end */
            k = 1;                /* a bad byte inside: kept, the caller shows what it got */
        }
        i += (size_t)k;
        good = i;
    }
    s[good] = 0;
}

xle_status xle_answer_whole(xle_model *model, const struct xle_tokenizer *tok, const int32_t *prompt,
                            int n_prompt, int n_min, int n_max, int32_t *ids, int *n_ids,
                            char **text, xle_error *err) {
    *text = NULL;
    *n_ids = 0;
    if (!tok) return xle_fail(err, XLE_ERR_ARG, "answer: the model has no tokenizer");
    if (n_min < 1 || n_max < n_min)
        return xle_fail(err, XLE_ERR_ARG, "answer: want 1 <= n_min <= n_max, got %d and %d", n_min, n_max);
    xle_sampler greedy = {.stop_at_eos = 1};
    int n_gen = 0;
    xle_status st = xle_generate(model, prompt, n_prompt, n_max, &greedy, ids, &n_gen, err);
    if (st != XLE_OK) return st;
    int nomem = 0, cut = xle_answer_cut(tok, ids, n_gen, n_min, 1, &nomem);
    if (nomem) return xle_fail(err, XLE_ERR_NOMEM, "answer: out of memory");
    if (cut < 0) cut = n_gen;
    *text = xle_detokenize(tok, ids, cut, 1);
    if (!*text) return xle_fail(err, XLE_ERR_NOMEM, "answer: out of memory");
    xle_answer_drop_incomplete_tail(*text);
    *n_ids = cut;
    return XLE_OK;
}
