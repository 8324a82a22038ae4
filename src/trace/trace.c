/*
 * trace.c: causal tracing (docs/tracing.md), ROME's corrupted-subject restoration (Meng et al.
 * 2022, experiments/causal_trace.py of kmeng01/rome):
 *
 *   1. the clean run: keep every layer's attention output, MLP output and residual stream
 *      after the block; p_clean = p(target) at the last position;
 *   2. corrupted runs: noise_level x noise added to the subject's token embeddings, averaged
 *      over the samples (p_corrupt: the mean of the samples' probabilities);
 *   3. for every (token, layer) and kind, the corrupted runs again with the clean state put
 *      back at that token: the residual stream after that layer (hidden), or the MLP / attention
 *      output at every layer of the window around it; the score is the mean probability.
 *
 * Every restoration is one group of `samples` sequences with the same noise; groups are packed
 * into batches of about BATCH_TOKENS tokens, and the hooks of one forward pass look up which
 * group each sequence belongs to.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "xledit.h"

#define BATCH_TOKENS 4096

const char *xle_trace_kind_name(xle_trace_kind kind) {
    static const char *const names[XLE_TRACE_KINDS] = {"hidden", "mlp", "attn"};
    return kind >= 0 && kind < XLE_TRACE_KINDS ? names[kind] : "?";
}

void xle_trace_opts_default(xle_trace_opts *o) {
    memset(o, 0, sizeof *o);
    o->samples = 10;
    o->window = 10;
    o->seed = 1;
    o->target = -1;
}

void xle_trace_result_free(xle_trace_result *r) {
    if (!r) return;
    for (int k = 0; k < XLE_TRACE_KINDS; k++) free(r->scores[k]);
    memset(r, 0, sizeof *r);
}

/* One restoration: kind < 0 for none (the corrupted baseline). */
typedef struct group {
    int kind, token, layer;
} group;

typedef struct trace_ctx {
    int n, d, n_layers, samples, window, sb, se;
    double noise_level;
    const float *noise;                 /* [samples][se - sb][d] */
    float *clean[XLE_TRACE_KINDS];      /* [n_layers][n][d] */
    const group *groups;                /* of the batch: sequence s is groups[s / samples] */
    int n_seqs;
    int capture;                        /* 1: the clean run (one sequence), copy states out */
} trace_ctx;

static int window_has(const trace_ctx *c, int centre, int layer) {
    int lo = centre - c->window / 2, hi = centre + (c->window + 1) / 2;
    return layer >= (lo < 0 ? 0 : lo) && layer < (hi > c->n_layers ? c->n_layers : hi);
}

static int on_hook(void *user, xle_point point, int layer, float *act, int n_tokens, int width) {
    trace_ctx *c = user;
    (void)n_tokens;
    const int n = c->n, d = c->d;
    if (point == XLE_POINT_EMBED) {
        if (c->capture) return 0;
        const int ns = c->se - c->sb;
        for (int s = 0; s < c->n_seqs; s++) {
            const float *z = c->noise + (size_t)(s % c->samples) * ns * d;
            for (int t = c->sb; t < c->se; t++)
                for (int k = 0; k < d; k++)
                    act[((size_t)s * n + t) * width + k] += (float)(c->noise_level * z[(size_t)(t - c->sb) * d + k]);
        }
        return 0;
    }
    int kind = point == XLE_POINT_BLOCK_OUT ? XLE_TRACE_HIDDEN : point == XLE_POINT_MLP_OUT ? XLE_TRACE_MLP
                                                                                         : XLE_TRACE_ATTN;
    float *clean = c->clean[kind] + (size_t)layer * n * d;
    if (c->capture) {
        memcpy(clean, act, (size_t)n * d * sizeof *clean);
        return 0;
    }
    for (int s = 0; s < c->n_seqs; s++) {
        const group *g = &c->groups[s / c->samples];
        if (g->kind != kind) continue;
        if (kind == XLE_TRACE_HIDDEN ? g->layer != layer : !window_has(c, g->layer, layer)) continue;
        memcpy(act + ((size_t)s * n + g->token) * width, clean + (size_t)g->token * d, (size_t)d * sizeof *act);
    }
    return 0;
}

/* p(target) of each logit row, the rows' mean per group. */
static void group_probs(const float *logits, int n_seqs, int samples, int V, int32_t target, double *out) {
    for (int g = 0; g < n_seqs / samples; g++) {
        double sum = 0;
        for (int s = g * samples; s < (g + 1) * samples; s++) {
            const float *row = logits + (size_t)s * V;
            float mx = row[0];
            for (int v = 1; v < V; v++) mx = row[v] > mx ? row[v] : mx;
            double z = 0;
            for (int v = 0; v < V; v++) z += exp((double)row[v] - mx);
            sum += exp((double)row[target] - mx) / z;
        }
        out[g] = sum / samples;
    }
}

static xle_status run_trace(xle_model *m, const int32_t *tokens, const xle_trace_opts *o, trace_ctx *c,
                            xle_trace_result *out, xle_error *err) {
    const int n = c->n, L = c->n_layers, V = xle_model_config(m)->vocab_size;
    xle_hook *hooks = malloc((size_t)(1 + 3 * L) * sizeof *hooks);
    int nh = 0;
    if (!hooks) return xle_fail(err, XLE_ERR_NOMEM, "trace: out of memory");
    hooks[nh++] = (xle_hook){XLE_POINT_EMBED, 0, on_hook, c};
    for (int l = 0; l < L; l++) {
        hooks[nh++] = (xle_hook){XLE_POINT_ATTN_OUT, l, on_hook, c};
        hooks[nh++] = (xle_hook){XLE_POINT_MLP_OUT, l, on_hook, c};
        hooks[nh++] = (xle_hook){XLE_POINT_BLOCK_OUT, l, on_hook, c};
    }
    xle_forward_opts fo = {0};
    fo.hooks = hooks;
    fo.n_hooks = nh;
    /* the clean run */
    float *logits = malloc((size_t)V * sizeof *logits);
    int seq1[2] = {0, n}, last = n - 1;
    if (!logits) {
        free(hooks);
        return xle_fail(err, XLE_ERR_NOMEM, "trace: out of memory");
    }
    xle_batch b1 = {1, tokens, seq1};
    fo.logit_rows = &last;
    fo.n_logit_rows = 1;
    c->capture = 1;
    xle_status st = xle_forward(m, &b1, &fo, logits, err);
    c->capture = 0;
    if (st != XLE_OK) {
        free(logits), free(hooks);
        return st;
    }
    out->target = o->target;
    if (out->target < 0) {
        out->target = 0;
        for (int v = 1; v < V; v++)
            if (logits[v] > logits[out->target]) out->target = v;
    } else if (out->target >= V) {
        free(logits), free(hooks);
        return xle_fail(err, XLE_ERR_ARG, "trace: target token %d outside the vocabulary", (int)out->target);
    }
    c->samples = 1;
    group_probs(logits, 1, 1, V, out->target, &out->p_clean);
    c->samples = o->samples;
    free(logits);

    /* the groups: the baseline, then (kind, token, layer) in row-major order */
    const int n_groups = 1 + XLE_TRACE_KINDS * n * L;
    group *groups = malloc((size_t)n_groups * sizeof *groups);
    double *probs = malloc((size_t)n_groups * sizeof *probs);
    int per_batch = BATCH_TOKENS / (n * c->samples);
    if (per_batch < 1) per_batch = 1;
    const int max_seqs = per_batch * c->samples;
    int32_t *toks = malloc((size_t)max_seqs * n * sizeof *toks);
    int *starts = malloc((size_t)(max_seqs + 1) * sizeof *starts), *rows = malloc((size_t)max_seqs * sizeof *rows);
    logits = malloc((size_t)max_seqs * V * sizeof *logits);
    if (!groups || !probs || !toks || !starts || !rows || !logits) {
        st = xle_fail(err, XLE_ERR_NOMEM, "trace: out of memory");
        goto done;
    }
    groups[0] = (group){-1, 0, 0};
    for (int k = 0, g = 1; k < XLE_TRACE_KINDS; k++)
        for (int t = 0; t < n; t++)
            for (int l = 0; l < L; l++) groups[g++] = (group){k, t, l};
    for (int s = 0; s < max_seqs; s++) {
        memcpy(toks + (size_t)s * n, tokens, (size_t)n * sizeof *toks);
        starts[s] = s * n;
        rows[s] = s * n + n - 1;
    }
    for (int g0 = 0; g0 < n_groups && st == XLE_OK; g0 += per_batch) {
        int ng = n_groups - g0 < per_batch ? n_groups - g0 : per_batch;
        c->groups = groups + g0;
        c->n_seqs = ng * c->samples;
        starts[c->n_seqs] = c->n_seqs * n;
        xle_batch b = {c->n_seqs, toks, starts};
        fo.logit_rows = rows;
        fo.n_logit_rows = c->n_seqs;
        if ((st = xle_forward(m, &b, &fo, logits, err)) == XLE_OK)
            group_probs(logits, c->n_seqs, c->samples, V, out->target, probs + g0);
    }
    if (st != XLE_OK) goto done;
    out->p_corrupt = probs[0];
    for (int k = 0; k < XLE_TRACE_KINDS; k++) {
        out->scores[k] = malloc((size_t)n * L * sizeof(double));
        if (!out->scores[k]) {
            st = xle_fail(err, XLE_ERR_NOMEM, "trace: out of memory");
            goto done;
        }
        memcpy(out->scores[k], probs + 1 + (size_t)k * n * L, (size_t)n * L * sizeof(double));
    }
done:
    free(groups), free(probs), free(toks), free(starts), free(rows), free(logits), free(hooks);
    return st;
}

xle_status xle_trace(xle_model *m, const int32_t *tokens, int n, int sb, int se, const xle_trace_opts *o,
                     xle_trace_result *out, xle_error *err) {
    memset(out, 0, sizeof *out);
    const xle_config *cfg = xle_model_config(m);
    if (n < 1 || !tokens) return xle_fail(err, XLE_ERR_ARG, "trace: empty prompt");
    if (sb < 0 || se > n || sb >= se)
        return xle_fail(err, XLE_ERR_ARG, "trace: subject tokens [%d, %d) outside the prompt's %d", sb, se, n);
    if (o->samples < 1 || o->window < 1 || !(o->noise_level >= 0) || !isfinite(o->noise_level))
        return xle_fail(err, XLE_ERR_ARG, "trace: samples and window must be positive, the noise finite");
    trace_ctx c = {0};
    c.n = n, c.d = cfg->dim, c.n_layers = cfg->n_layers, c.samples = o->samples, c.window = o->window;
    c.sb = sb, c.se = se, c.noise_level = o->noise_level;
    out->n_tokens = n, out->n_layers = cfg->n_layers;
    const size_t n_noise = (size_t)o->samples * (se - sb) * c.d;
    float *drawn = NULL;
    if (o->noise) {
        c.noise = o->noise;
    } else {
        drawn = malloc(n_noise * sizeof *drawn);
        if (!drawn) return xle_fail(err, XLE_ERR_NOMEM, "trace: out of memory");
        xle_rng rng;
        xle_rng_seed(&rng, o->seed);
        for (size_t i = 0; i < n_noise; i++) drawn[i] = xle_rng_normal(&rng);
        c.noise = drawn;
    }
    xle_status st = XLE_OK;
    for (int k = 0; k < XLE_TRACE_KINDS && st == XLE_OK; k++) {
        c.clean[k] = malloc((size_t)c.n_layers * n * c.d * sizeof(float));
        if (!c.clean[k]) st = xle_fail(err, XLE_ERR_NOMEM, "trace: out of memory");
    }
    /* exact arithmetic whatever the model's inference precision, as for editing */
    const xle_precision keep = xle_model_precision(m);
    xle_model_set_precision(m, XLE_PRECISION_EXACT);
    if (st == XLE_OK) st = run_trace(m, tokens, o, &c, out, err);
    xle_model_set_precision(m, keep);
    for (int k = 0; k < XLE_TRACE_KINDS; k++) free(c.clean[k]);
    free(drawn);
    if (st != XLE_OK) xle_trace_result_free(out);
    return st;
}

xle_status xle_embedding_std(xle_model *m, const int32_t *ids, int n, double *std, xle_error *err) {
    const xle_config *cfg = xle_model_config(m);
    const int d = cfg->dim;
    float *row = malloc((size_t)d * sizeof *row);
    if (!row) return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    double sum = 0, sq = 0;
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= cfg->vocab_size) {
            free(row);
            return xle_fail(err, XLE_ERR_ARG, "embedding std: token %d outside the vocabulary", ids[i]);
        }
        xle_tensor_row_to_f32(&xle_model_weights(m)->tok_embd, (int64_t)ids[i] * d, d, row);
        for (int k = 0; k < d; k++) sum += row[k], sq += (double)row[k] * row[k];
    }
    free(row);
    double cnt = (double)n * d;
    /* torch.std: the unbiased estimate */
    *std = cnt > 1 ? sqrt((sq - sum * sum / cnt) / (cnt - 1)) : 0;
    return XLE_OK;
}

xle_status xle_trace_tokens(const xle_tokenizer *tok, const char *prompt, const char *subject, xle_tokens *out,
                            int *begin, int *end, xle_error *err) {
    memset(out, 0, sizeof *out);
    xle_match how = XLE_MATCH_NONE;
    size_t sa = 0, sz = 0;
    xle_status st = subject && *subject ? xle_subject_locate(prompt, subject, XLE_MATCH_STEM, &how, &sa, &sz, err)
                                        : XLE_OK;
    if (st != XLE_OK) return st;
    if (how == XLE_MATCH_NONE)
        return xle_fail(err, XLE_ERR_NOT_FOUND, "trace: subject '%.80s' not found in prompt '%.120s'",
                        subject ? subject : "", prompt);
    if ((st = xle_tokenize(tok, prompt, strlen(prompt), -1, 0, out, err)) != XLE_OK) return st;
    const int32_t a = (int32_t)sa, b = (int32_t)sz;
    *begin = *end = -1;
    for (int i = 0; i < out->n; i++) {
        if (out->lengths[i] <= 0) continue;
        int32_t lo = out->offsets[i], hi = lo + out->lengths[i];
        if (hi > a && lo < b) {
            if (*begin < 0) *begin = i;
            *end = i + 1;
        }
    }
    if (*begin < 0) {
        xle_tokens_free(out);
        return xle_fail(err, XLE_ERR_NOT_FOUND, "trace: no token of prompt '%.120s' covers subject '%.80s'",
                        prompt, subject);
    }
    return XLE_OK;
}
