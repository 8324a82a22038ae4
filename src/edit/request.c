/*
 * request.c: from a text edit request (prompt, subject, target) to the token-level request the
 * methods work on (editing.md §1.1-1.2): one prompt per context template with the position of
 * the subject's last token, the KL prompt "<subject> is a", and the target's tokens as they
 * follow the prompt.
 */
#include <stdlib.h>
#include <string.h>

#include "xledit.h"

/* Encodes text[0..len) with BOS as the tokenizer's files say (add_bos < 0) or not (0). */
static xle_status encode(const xle_tokenizer *tok, const char *text, size_t len, int add_bos,
                         xle_tokens *out, xle_error *err) {
    return xle_tokenize(tok, text, len, add_bos, 0, out, err);
}

static int32_t *copy_ids(const int32_t *ids, int n) {
    int32_t *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    if (p && n > 0) memcpy(p, ids, (size_t)n * sizeof *p);
    return p;
}

static size_t trimmed_len(const char *s) {
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n')) n--;
    return n;
}

xle_status xle_tokenize_continuation(const xle_tokenizer *tok, const char *prompt,
                                     const char *answer, int32_t **prompt_ids, int *n_prompt,
                                     int32_t **answer_ids, int *n_answer, xle_error *err) {
    *prompt_ids = *answer_ids = NULL;
    *n_prompt = *n_answer = 0;
    while (*answer == ' ') answer++;
    if (!*answer) return xle_fail(err, XLE_ERR_ARG, "answer: empty (prompt '%.60s')", prompt);
    /* The prompt's trailing blanks belong to the join: "is " + "Paris" reads as "is Paris". */
    size_t np = trimmed_len(prompt), na = strlen(answer);
    char *joint = malloc(np + 1 + na + 1);
    if (!joint) return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    memcpy(joint, prompt, np);
    joint[np] = ' ';
    memcpy(joint + np + 1, answer, na + 1);

    xle_tokens p = {0}, j = {0}, a = {0};
    xle_status st = encode(tok, prompt, np, -1, &p, err);
    if (st == XLE_OK) st = encode(tok, joint, np + 1 + na, -1, &j, err);
    if (st != XLE_OK) goto done;
    int prefix_ok = j.n > p.n && memcmp(j.ids, p.ids, (size_t)p.n * sizeof *p.ids) == 0;
    const int32_t *ans = j.ids + p.n;
    int n_ans = j.n - p.n;
    if (!prefix_ok) {
        /* The answer merged with the prompt's last token: encode it on its own, as the
         * reference does, without the lone "▁" SentencePiece makes of the leading space. */
        if ((st = encode(tok, joint + np, 1 + na, 0, &a, err)) != XLE_OK) goto done;
        ans = a.ids;
        n_ans = a.n;
        const char *piece = n_ans > 1 ? xle_tokenizer_piece(tok, ans[0]) : NULL;
        if (piece && strcmp(piece, "\xe2\x96\x81") == 0) ans++, n_ans--;
    }
    if (n_ans <= 0) {
        st = xle_fail(err, XLE_ERR_ARG, "answer '%.60s': no tokens after prompt '%.60s'", answer,
                      prompt);
        goto done;
    }
    *prompt_ids = copy_ids(p.ids, p.n);
    *answer_ids = copy_ids(ans, n_ans);
    if (!*prompt_ids || !*answer_ids) {
        free(*prompt_ids), free(*answer_ids);
        *prompt_ids = *answer_ids = NULL;
        st = xle_fail(err, XLE_ERR_NOMEM, "out of memory");
        goto done;
    }
    *n_prompt = p.n;
    *n_answer = n_ans;
done:
    xle_tokens_free(&p), xle_tokens_free(&j), xle_tokens_free(&a);
    free(joint);
    return st;
}

/* Text split around the edited subject: prompt = pre + subject + post. */
typedef struct subject_split {
    const char *pre, *post;
    size_t n_pre;
} subject_split;

static xle_status split_prompt(const xle_edit_request *req, subject_split *sp, xle_error *err) {
    if (!req->prompt || !req->subject || !req->target)
        return xle_fail(err, XLE_ERR_ARG, "edit request: prompt, subject and target are required");
    if (!*req->subject) return xle_fail(err, XLE_ERR_ARG, "edit request: subject: empty");
    const char *at = strstr(req->prompt, "{}");
    size_t skip = 2;
    if (!at) {
        at = strstr(req->prompt, req->subject);
        skip = strlen(req->subject);
    }
    if (!at)
        return xle_fail(err, XLE_ERR_NOT_FOUND, "edit request: subject '%.80s' not found in prompt "
                        "'%.120s'", req->subject, req->prompt);
    sp->pre = req->prompt;
    sp->n_pre = (size_t)(at - req->prompt);
    sp->post = at + skip;
    return XLE_OK;
}

/* Appends n bytes to a growing string buffer. */
typedef struct strbuf {
    char *p;
    size_t n, cap;
} strbuf;

static int sb_add(strbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = (b->n + n + 1) * 2;
        char *p = realloc(b->p, cap);
        if (!p) return 0;
        b->p = p, b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 1;
}

/* One prompt: template tpl ("...{}...") around pre + subject + post. The fact token is the
 * last of encode(tpl_pre + pre + subject) (editing.md §1.2, EasyEdit's rule). */
static xle_status make_prompt(const xle_tokenizer *tok, const char *tpl, const subject_split *sp,
                              const char *subject, int group, xle_edit_prompt *out,
                              xle_error *err) {
    const char *hole = strstr(tpl, "{}");
    if (!hole) return xle_fail(err, XLE_ERR_ARG, "context template '%.60s': no {}", tpl);
    strbuf b = {0};
    int ok = sb_add(&b, tpl, (size_t)(hole - tpl)) && sb_add(&b, sp->pre, sp->n_pre) &&
             sb_add(&b, subject, strlen(subject));
    size_t n_upto_subject = b.n;
    ok = ok && sb_add(&b, sp->post, trimmed_len(sp->post)) && sb_add(&b, hole + 2, strlen(hole + 2));
    if (!ok) {
        free(b.p);
        return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    }
    /* the prompt as the model reads it, without trailing blanks (the target follows a space) */
    size_t n_full = trimmed_len(b.p);
    xle_tokens head = {0}, full = {0};
    xle_status st = encode(tok, b.p, n_upto_subject, -1, &head, err);
    if (st == XLE_OK) st = encode(tok, b.p, n_full, -1, &full, err);
    if (st == XLE_OK && (head.n < 1 || head.n > full.n))
        st = xle_fail(err, XLE_ERR_ARG, "prompt '%.100s': the subject's tokens do not fit the "
                      "prompt's", b.p);
    if (st == XLE_OK) {
        out->ids = copy_ids(full.ids, full.n);
        out->n = full.n;
        out->fact_idx = head.n - 1;
        out->group = group;
        if (!out->ids) st = xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    }
    xle_tokens_free(&head), xle_tokens_free(&full);
    free(b.p);
    return st;
}

void xle_edit_request_tok_free(xle_edit_request_tok *r) {
    if (!r) return;
    for (int i = 0; i < r->n_prompts; i++) free(r->prompts[i].ids);
    free(r->prompts);
    free(r->kl.ids);
    free(r->target);
    memset(r, 0, sizeof *r);
}

xle_status xle_edit_request_tokenize(const xle_tokenizer *tok, const xle_edit_request *req,
                                     const xle_context_templates *ct, xle_edit_request_tok *out,
                                     xle_error *err) {
    memset(out, 0, sizeof *out);
    if (!tok) return xle_fail(err, XLE_ERR_ARG, "edit request: the model has no tokenizer");
    subject_split sp;
    xle_status st = split_prompt(req, &sp, err);
    if (st != XLE_OK) return st;
    static const char *const bare[] = {"{}"};
    const char *const *tpls = ct && ct->n > 0 ? (const char *const *)ct->texts : bare;
    int n_tpl = ct && ct->n > 0 ? ct->n : 1;
    out->prompts = calloc((size_t)n_tpl, sizeof *out->prompts);
    if (!out->prompts) return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n_tpl; i++) {
        int group = strcmp(tpls[i], "{}") == 0 ? 0 : 1;
        if ((st = make_prompt(tok, tpls[i], &sp, req->subject, group, &out->prompts[i], err)))
            goto fail;
        out->n_prompts = i + 1;
    }
    /* KL prompt: "<subject> is a", distribution read at the subject's last token */
    subject_split kl = {"", " is a", 0};
    if ((st = make_prompt(tok, "{}", &kl, req->subject, 0, &out->kl, err)) != XLE_OK) goto fail;

    /* the target as it follows the bare prompt */
    strbuf bare_prompt = {0};
    if (!sb_add(&bare_prompt, sp.pre, sp.n_pre) || !sb_add(&bare_prompt, req->subject, strlen(req->subject)) ||
        !sb_add(&bare_prompt, sp.post, strlen(sp.post))) {
        free(bare_prompt.p);
        st = xle_fail(err, XLE_ERR_NOMEM, "out of memory");
        goto fail;
    }
    int32_t *pids = NULL;
    int np = 0;
    st = xle_tokenize_continuation(tok, bare_prompt.p, req->target, &pids, &np, &out->target,
                                   &out->n_target, err);
    free(pids);
    free(bare_prompt.p);
    if (st != XLE_OK) goto fail;
    return XLE_OK;
fail:
    xle_edit_request_tok_free(out);
    return st;
}
