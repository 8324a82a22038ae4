/*
 * memo.c: what an edit computes on the unedited model for one request, kept so that another
 * edit of the same request reuses it instead of computing it again. An evaluation run edits each
 * half of a case alone and then all of them at once (the "all" edit language): ROME edits the
 * requests of "all" one after another, the first on the unedited model, exactly as the unit of
 * its language did, so that edit is reused. Reuse gives the very numbers a new computation would
 * (same inputs, same deterministic code), so results do not depend on whether or in which order
 * the memo was filled. MEMIT's targets z are not kept: its requests are optimised side by side
 * in one batch, and a z from a batch differs in its last bits from the z of the request alone.
 */
#include <stdlib.h>
#include <string.h>

#include "edit/edit_internal.h"

typedef enum memo_kind { MEMO_ROME_RESULT } memo_kind;

typedef struct memo_entry {
    memo_kind kind;
    const xle_edit_hparams *hp;
    xle_edit_request_tok req;   /* an owned copy: the key */
    xle_edit_result result;     /* MEMO_ROME_RESULT */
} memo_entry;

struct xle_edit_memo {
    memo_entry *e;
    int n, cap;
};

xle_edit_memo *xle_edit_memo_new(void) { return calloc(1, sizeof(xle_edit_memo)); }

void xle_edit_memo_clear(xle_edit_memo *memo) {
    if (!memo) return;
    for (int i = 0; i < memo->n; i++) {
        xle_edit_request_tok_free(&memo->e[i].req);
        xle_edit_result_free(&memo->e[i].result);
    }
    memo->n = 0;
}

void xle_edit_memo_free(xle_edit_memo *memo) {
    if (!memo) return;
    xle_edit_memo_clear(memo);
    free(memo->e);
    free(memo);
}

static int same_prompt(const xle_edit_prompt *a, const xle_edit_prompt *b) {
    return a->n == b->n && a->fact_idx == b->fact_idx && a->group == b->group &&
           (a->n == 0 || memcmp(a->ids, b->ids, (size_t)a->n * sizeof *a->ids) == 0);
}

static int same_request(const xle_edit_request_tok *a, const xle_edit_request_tok *b) {
    if (a->n_prompts != b->n_prompts || a->n_target != b->n_target || !same_prompt(&a->kl, &b->kl) ||
        (a->n_target && memcmp(a->target, b->target, (size_t)a->n_target * sizeof *a->target)))
        return 0;
    for (int i = 0; i < a->n_prompts; i++)
        if (!same_prompt(&a->prompts[i], &b->prompts[i])) return 0;
    return 1;
}

static memo_entry *find(xle_edit_memo *memo, memo_kind kind, const xle_edit_hparams *hp,
                        const xle_edit_request_tok *req) {
    for (int i = 0; memo && i < memo->n; i++)
        if (memo->e[i].kind == kind && memo->e[i].hp == hp && same_request(&memo->e[i].req, req))
            return &memo->e[i];
    return NULL;
}

static int copy_prompt(xle_edit_prompt *dst, const xle_edit_prompt *src) {
    *dst = *src;
    dst->ids = malloc((size_t)(src->n > 0 ? src->n : 1) * sizeof *dst->ids);
    if (!dst->ids) return -1;
    if (src->n) memcpy(dst->ids, src->ids, (size_t)src->n * sizeof *dst->ids);
    return 0;
}

/* A new entry holding a copy of req, or NULL when out of memory. */
static memo_entry *add(xle_edit_memo *memo, memo_kind kind, const xle_edit_hparams *hp,
                       const xle_edit_request_tok *req) {
    if (memo->n == memo->cap) {
        int cap = memo->cap ? 2 * memo->cap : 8;
        memo_entry *e = realloc(memo->e, (size_t)cap * sizeof *e);
        if (!e) return NULL;
        memo->e = e, memo->cap = cap;
    }
    memo_entry *e = &memo->e[memo->n];
    memset(e, 0, sizeof *e);
    e->kind = kind, e->hp = hp;
    xle_edit_request_tok *r = &e->req;
    r->prompts = calloc((size_t)(req->n_prompts > 0 ? req->n_prompts : 1), sizeof *r->prompts);
    r->target = malloc((size_t)(req->n_target > 0 ? req->n_target : 1) * sizeof *r->target);
    int ok = r->prompts && r->target && copy_prompt(&r->kl, &req->kl) == 0;
    for (int i = 0; ok && i < req->n_prompts; i++, r->n_prompts++)
        ok = copy_prompt(&r->prompts[i], &req->prompts[i]) == 0;
    if (ok) {
        r->n_target = req->n_target;
        if (req->n_target) memcpy(r->target, req->target, (size_t)req->n_target * sizeof *r->target);
    } else {
        xle_edit_request_tok_free(r);
        return NULL;
    }
    memo->n++;
    return e;
}

static xle_status copy_result(xle_edit_result *dst, const xle_edit_result *src, xle_error *err) {
    memset(dst, 0, sizeof *dst);
    dst->final_loss = src->final_loss, dst->steps = src->steps;
    dst->deltas = calloc((size_t)(src->n_deltas > 0 ? src->n_deltas : 1), sizeof *dst->deltas);
    if (!dst->deltas) return xle_fail(err, XLE_ERR_NOMEM, "edit: out of memory");
    for (int i = 0; i < src->n_deltas; i++, dst->n_deltas++) {
        const xle_layer_delta *s = &src->deltas[i];
        xle_layer_delta *d = &dst->deltas[i];
        *d = *s;
        d->left = d->right = d->dense = NULL;
        size_t nl = (size_t)s->rows * s->rank, nr = (size_t)s->cols * s->rank,
               nd = s->rank == 0 ? (size_t)s->rows * s->cols : 0;
        if ((s->left && !(d->left = malloc(nl * sizeof(float)))) ||
            (s->right && !(d->right = malloc(nr * sizeof(float)))) ||
            (s->dense && !(d->dense = malloc(nd * sizeof(float))))) {
            dst->n_deltas++;
            xle_edit_result_free(dst);
            return xle_fail(err, XLE_ERR_NOMEM, "edit: out of memory");
        }
        if (s->left) memcpy(d->left, s->left, nl * sizeof(float));
        if (s->right) memcpy(d->right, s->right, nr * sizeof(float));
        if (s->dense) memcpy(d->dense, s->dense, nd * sizeof(float));
    }
    return XLE_OK;
}

xle_status xle_edit_memo_rome(xle_model *m, const xle_edit_hparams *hp, const xle_edit_request_tok *req,
                              xle_layer_stats *const *stats, xle_edit_memo *memo, xle_edit_result *out,
                              xle_error *err) {
    const memo_entry *e = find(memo, MEMO_ROME_RESULT, hp, req);
    if (e) return copy_result(out, &e->result, err);
    xle_status st = xle_rome_run(m, hp, req, stats, out, err);
    if (st != XLE_OK || !memo) return st;
    memo_entry *ne = add(memo, MEMO_ROME_RESULT, hp, req);
    if (!ne) return xle_fail(err, XLE_ERR_NOMEM, "edit: out of memory");
    if ((st = copy_result(&ne->result, out, err)) != XLE_OK) {
        memo->n--;
        xle_edit_request_tok_free(&ne->req);
    }
    return st;
}
