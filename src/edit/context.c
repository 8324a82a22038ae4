/*
 * context.c: the context templates that ROME and MEMIT put in front of an edit prompt so the
 * new value holds after varied text (editing.md §1.3): sampled from the unedited model as the
 * reference does, read from a file (so an edit can be reproduced exactly), or none. Sampling
 * drops what the reference keeps but cannot use: a sample that repeats an earlier one (the same
 * prompt optimised twice only weighs it double) and one whose model added nothing after the
 * seed word (it stopped at once: "Because. {}").
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/outpath.h"
#include "xledit.h"

void xle_context_templates_free(xle_context_templates *ct) {
    if (!ct) return;
    for (int i = 0; i < ct->n; i++) free(ct->texts[i]);
    free(ct->texts);
    free(ct);
}

static xle_status push(xle_context_templates *ct, const char *text, size_t len, xle_error *err) {
    char **texts = realloc(ct->texts, (size_t)(ct->n + 1) * sizeof *texts);
    if (!texts) return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    ct->texts = texts;
    char *copy = malloc(len + 1);
    if (!copy) return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    memcpy(copy, text, len);
    copy[len] = 0;
    ct->texts[ct->n++] = copy;
    return XLE_OK;
}

static xle_status new_with_bare(xle_context_templates **out, xle_error *err) {
    *out = calloc(1, sizeof **out);
    if (!*out) return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    xle_status st = push(*out, "{}", 2, err);
    if (st != XLE_OK) {
        xle_context_templates_free(*out);
        *out = NULL;
    }
    return st;
}

xle_status xle_context_templates_none(xle_context_templates **out, xle_error *err) {
    return new_with_bare(out, err);
}

/* Number of non-overlapping "{}" in s. */
static int count_holes(const char *s) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, "{}")); p += 2) n++;
    return n;
}

xle_status xle_context_templates_load(const char *path, xle_context_templates **out,
                                      xle_error *err) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return xle_fail(err, XLE_ERR_IO, "%s: cannot open", path);
    xle_context_templates *ct;
    xle_status st = new_with_bare(&ct, err);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0;
    while (st == XLE_OK && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (len == 0) continue;
        if ((size_t)len != strlen(line)) {
            st = xle_fail(err, XLE_ERR_FORMAT, "%s:%d: template: contains a NUL byte", path, lineno);
            break;
        }
        if (count_holes(line) != 1) {
            st = xle_fail(err, XLE_ERR_FORMAT, "%s:%d: template: needs exactly one {} (got %d)",
                          path, lineno, count_holes(line));
            break;
        }
        if (strcmp(line, "{}") == 0 && ct->n == 1) continue; /* the bare one is already first */
        st = push(ct, line, (size_t)len, err);
    }
    if (st == XLE_OK && ferror(f)) st = xle_fail(err, XLE_ERR_IO, "%s: read error", path);
    free(line);
    fclose(f);
    if (st != XLE_OK) {
        xle_context_templates_free(ct);
        return st;
    }
    *out = ct;
    return XLE_OK;
}

xle_status xle_context_templates_save(const xle_context_templates *ct, const char *path,
                                      xle_error *err) {
    xle_status checked = xle_out_check(path, XLE_OUT_FILE, err);
    if (checked != XLE_OK) return checked;
    size_t n = strlen(path);
    char *tmp = malloc(n + 16);
    if (!tmp) return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    snprintf(tmp, n + 16, "%s.tmp%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(tmp);
        return xle_fail(err, XLE_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    }
    int ok = 1;
    for (int i = 0; i < ct->n; i++) ok = ok && fprintf(f, "%s\n", ct->texts[i]) >= 0;
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        free(tmp);
        return xle_fail(err, XLE_ERR_IO, "%s: write failed", path);
    }
    free(tmp);
    return XLE_OK;
}

static int has_text(const xle_context_templates *ct, const char *text) {
    for (int i = 0; i < ct->n; i++)
        if (!strcmp(ct->texts[i], text)) return 1;
    return 0;
}

/* Whether the decoded text holds anything but white space. */
static int has_content(const char *s) {
    for (; s && *s; s++)
        if (!isspace((unsigned char)*s)) return 1;
    return 0;
}

/* One sample: seed text, `length` tokens in all (BOS and the seed's tokens included), top-5
 * sampling; adds the decoded text with "{" and "}" replaced by spaces, plus ". {}" -- unless the
 * model added no text after the seed or the template is in ct already. */
static xle_status sample_one(xle_model *model, const xle_tokenizer *tok, const char *seed_text,
                             int length, uint64_t seed, xle_context_templates *ct, xle_error *err) {
    xle_tokens t = {0};
    xle_status st = xle_tokenize(tok, seed_text, strlen(seed_text), -1, 0, &t, err);
    if (st != XLE_OK) return st;
    int n_new = length - t.n;
    int32_t *ids = malloc((size_t)(length > t.n ? length : t.n) * sizeof *ids);
    if (!ids) {
        xle_tokens_free(&t);
        return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    }
    memcpy(ids, t.ids, (size_t)t.n * sizeof *ids);
    int n_out = 0;
    if (n_new > 0) {
        xle_sampler s = {.temperature = 1.0f, .top_k = 5, .seed = seed, .stop_at_eos = 1};
        st = xle_generate(model, t.ids, t.n, n_new, &s, ids + t.n, &n_out, err);
    }
    char *added = st == XLE_OK && n_out > 0 ? xle_detokenize(tok, ids + t.n, n_out, 1) : NULL;
    int empty = !has_content(added);
    if (st == XLE_OK && n_out > 0 && !added) st = xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    free(added);
    char *text = st == XLE_OK && !empty ? xle_detokenize(tok, ids, t.n + n_out, 1) : NULL;
    if (st == XLE_OK && !empty && !text) st = xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    if (st == XLE_OK && !empty) {
        for (char *p = text; *p; p++)
            if (*p == '{' || *p == '}') *p = ' ';
        size_t n = strlen(text);
        char *tpl = malloc(n + 5);
        if (!tpl) {
            st = xle_fail(err, XLE_ERR_NOMEM, "out of memory");
        } else {
            memcpy(tpl, text, n);
            memcpy(tpl + n, ". {}", 5);
            if (!has_text(ct, tpl)) st = push(ct, tpl, n + 4, err);
            free(tpl);
        }
    }
    free(text);
    free(ids);
    xle_tokens_free(&t);
    return st;
}

xle_status xle_context_templates_sample(xle_model *model, const xle_tokenizer *tok,
                                        const xle_edit_hparams *hp, xle_context_templates **out,
                                        xle_error *err) {
    static const char *const seeds[] = {"The", "Therefore", "Because", "I", "You"};
    *out = NULL;
    if (!tok) return xle_fail(err, XLE_ERR_ARG, "context templates: the model has no tokenizer");
    xle_context_templates *ct;
    xle_status st = new_with_bare(&ct, err);
    /* each sample gets its own seed, derived from hp->seed and its index, so one sample does
     * not depend on how many tokens the others drew */
    uint64_t index = 0;
    for (int l = 0; st == XLE_OK && l < hp->n_ctx_lengths; l++)
        for (int s = 0; st == XLE_OK && s < 5; s++)
            for (int k = 0; st == XLE_OK && k < hp->ctx_counts[l]; k++, index++)
                st = sample_one(model, tok, seeds[s], hp->ctx_lengths[l],
                                hp->seed * 0x9E3779B97F4A7C15ull + index, ct, err);
    if (st != XLE_OK) {
        xle_context_templates_free(ct);
        return st;
    }
    *out = ct;
    return XLE_OK;
}
