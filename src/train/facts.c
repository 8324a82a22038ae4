/*
 * facts.c: whether a model knows a fact: its greedy continuation of the prompt starts with the
 * object. Computed teacher-forced in one forward pass over prompt + " " + object (tokenized as
 * xle_tokenize_continuation does, the way the corpus sentence reads): the fact is recalled when
 * the argmax at every object position is the object's next token, which is exactly when greedy
 * decoding would produce the object's tokens.
 */
#include <stdlib.h>
#include <string.h>

#include "xledit.h"

xle_status xle_fact_recalled(xle_model *m, const xle_tokenizer *tok, const char *prompt,
                             const char *object, int *recalled, xle_error *err) {
    int32_t *p = NULL, *a = NULL;
    int np = 0, na = 0;
    *recalled = 0;
    xle_status st = xle_tokenize_continuation(tok, prompt, object, &p, &np, &a, &na, err);
    if (st != XLE_OK) return st;
    const int V = xle_model_config(m)->vocab_size, n = np + na;
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    int *rows = malloc((size_t)na * sizeof *rows);
    float *logits = malloc((size_t)na * (size_t)V * sizeof *logits);
    if (!ids || !rows || !logits) {
        st = xle_fail(err, XLE_ERR_NOMEM, "facts: out of memory");
        goto done;
    }
    if (np == 0) {
        st = xle_fail(err, XLE_ERR_ARG, "facts: prompt '%.60s' gives no tokens", prompt);
        goto done;
    }
    memcpy(ids, p, (size_t)np * sizeof *ids);
    memcpy(ids + np, a, (size_t)na * sizeof *ids);
    for (int i = 0; i < na; i++) rows[i] = np - 1 + i; /* the row that predicts object token i */
    int seq_start[2] = {0, n};
    xle_batch b = {1, ids, seq_start};
    xle_forward_opts fo;
    memset(&fo, 0, sizeof fo);
    fo.logit_rows = rows;
    fo.n_logit_rows = na;
    if ((st = xle_forward(m, &b, &fo, logits, err)) != XLE_OK) goto done;
    int all = 1;
    for (int i = 0; i < na && all; i++) {
        const float *z = logits + (int64_t)i * V;
        int best = 0;
        for (int j = 1; j < V; j++)
            if (z[j] > z[best]) best = j;
        all = best == a[i];
    }
    *recalled = all;
done:
    free(p);
    free(a);
    free(ids);
    free(rows);
    free(logits);
    return st;
}
