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
    xle_atomic_file out;
    xle_status st = xle_atomic_open(&out, path, err);
    if (st != XLE_OK) return st;
    int ok = 1;
    for (int i = 0; i < ct->n; i++) ok = ok && fprintf(out.f, "%s\n", ct->texts[i]) >= 0;
    st = xle_atomic_close(&out, ok, err);
    if (!ok) st = xle_fail(err, XLE_ERR_IO, "%s: write failed", path);
    return st;
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

/* One sample: the seed's ids and the n_out ids the model added (`length` tokens in all, BOS
 * and the seed's tokens included, top-5 sampling); adds the decoded text with "{" and "}"
 * replaced by spaces, plus ". {}" -- unless the model added no text after the seed or the
 * template is in ct already. */
static xle_status add_sample(const xle_tokenizer *tok, const int32_t *ids, int n_seed, int n_out,
                             xle_context_templates *ct, xle_error *err) {
    xle_status st = XLE_OK;
    char *added = n_out > 0 ? xle_detokenize(tok, ids + n_seed, n_out, 1) : NULL;
    int empty = !has_content(added);
    if (n_out > 0 && !added) st = xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    free(added);
    char *text = st == XLE_OK && !empty ? xle_detokenize(tok, ids, n_seed + n_out, 1) : NULL;
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
    return st;
}

enum { N_SEEDS = 5 };

/* The samples of one length: every seed word count times, generated side by side (one forward
 * pass per token for all of them, as the reference's generate_fast samples a batch), then added
 * in seed order. sample_seed(i) of the i-th sample is base + i. */
static xle_status sample_length(xle_model *model, const xle_tokenizer *tok, const char *const *seeds,
                                int length, int count, uint64_t base, xle_context_templates *ct,
                                xle_error *err) {
    const int n = N_SEEDS * count;
    if (n <= 0) return XLE_OK;
    xle_tokens seed_tokens[N_SEEDS] = {{0}};
    int32_t **ids = calloc((size_t)n, sizeof *ids);
    int32_t **outs = calloc((size_t)n, sizeof *outs);
    const int32_t **prompts = calloc((size_t)n, sizeof *prompts);
    int *n_prompts = calloc((size_t)n, sizeof *n_prompts), *n_new = calloc((size_t)n, sizeof *n_new);
    int *n_out = calloc((size_t)n, sizeof *n_out);
    xle_sampler *samplers = calloc((size_t)n, sizeof *samplers);
    xle_status st = XLE_OK;
    if (!ids || !outs || !prompts || !n_prompts || !n_new || !n_out || !samplers)
        st = xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    for (int s = 0; st == XLE_OK && s < N_SEEDS; s++)
        st = xle_tokenize(tok, seeds[s], strlen(seeds[s]), -1, 0, &seed_tokens[s], err);
    for (int i = 0; st == XLE_OK && i < n; i++) {
        const xle_tokens *t = &seed_tokens[i / count];
        ids[i] = malloc((size_t)(length > t->n ? length : t->n) * sizeof **ids);
        if (!ids[i]) {
            st = xle_fail(err, XLE_ERR_NOMEM, "out of memory");
            break;
        }
        memcpy(ids[i], t->ids, (size_t)t->n * sizeof **ids);
        prompts[i] = t->ids, n_prompts[i] = t->n, outs[i] = ids[i] + t->n;
        n_new[i] = length - t->n > 0 ? length - t->n : 0;
        samplers[i] = (xle_sampler){.temperature = 1.0f, .top_k = 5, .seed = base + (uint64_t)i,
                                    .stop_at_eos = 1};
    }
    if (st == XLE_OK)
        st = xle_generate_many(model, n, prompts, n_prompts, n_new, samplers, outs, n_out, err);
    for (int i = 0; st == XLE_OK && i < n; i++)
        st = add_sample(tok, ids[i], n_prompts[i], n_out[i], ct, err);
    for (int i = 0; ids && i < n; i++) free(ids[i]);
    for (int s = 0; s < N_SEEDS; s++) xle_tokens_free(&seed_tokens[s]);
    free(ids);
    free(outs);
    free(prompts);
    free(n_prompts);
    free(n_new);
    free(n_out);
    free(samplers);
    return st;
}

xle_status xle_context_templates_sample(xle_model *model, const xle_tokenizer *tok,
                                        const xle_edit_hparams *hp, xle_context_templates **out,
                                        xle_error *err) {
    static const char *const seeds[N_SEEDS] = {"The", "Therefore", "Because", "I", "You"};
    *out = NULL;
    if (!tok) return xle_fail(err, XLE_ERR_ARG, "context templates: the model has no tokenizer");
    xle_context_templates *ct;
    xle_status st = new_with_bare(&ct, err);
    /* each sample gets its own seed, derived from hp->seed and its index, so one sample does
     * not depend on how many tokens the others drew */
    uint64_t index = 0;
    for (int l = 0; st == XLE_OK && l < hp->n_ctx_lengths; l++) {
        st = sample_length(model, tok, seeds, hp->ctx_lengths[l], hp->ctx_counts[l],
                           hp->seed * 0x9E3779B97F4A7C15ull + index, ct, err);
        index += (uint64_t)N_SEEDS * (uint64_t)(hp->ctx_counts[l] > 0 ? hp->ctx_counts[l] : 0);
    }
    if (st != XLE_OK) {
        xle_context_templates_free(ct);
        return st;
    }
    *out = ct;
    return XLE_OK;
}
