/*
 * generate.c: what users do with a forward pass directly: generate text with the KV cache
 * (greedy, or sampled with llama.cpp's repeat penalty, top-k, top-p and temperature; seeded)
 * and score a continuation by teacher forcing.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/engine_internal.h"

/* llama.cpp's repeat penalty on logits, over the last tokens of history (each id once). */
static void apply_repeat_penalty(float *logits, int V, const xle_sampler *s, const int32_t *prompt,
                                 int n_prompt, const int32_t *out, int n_out, uint8_t *seen) {
    if (!s || s->repeat_penalty <= 0.0f || s->repeat_penalty == 1.0f) return;
    int last_n = s->repeat_last_n > 0 ? s->repeat_last_n : 64;
    int total = n_prompt + n_out;
    int from = total > last_n ? total - last_n : 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = from; i < total; i++) {
            int32_t id = i < n_prompt ? prompt[i] : out[i - n_prompt];
            if (id < 0 || id >= V) continue;
            if (pass == 1) {
                seen[id] = 0;
                continue;
            }
            if (seen[id]) continue;
            seen[id] = 1;
            if (logits[id] <= 0) logits[id] *= s->repeat_penalty;
            else logits[id] /= s->repeat_penalty;
        }
}

/* Candidates by logit, highest first; merge sort (stable: equal logits keep the lower id
 * first), tmp has n entries. */
static void sort_by_logit(int *idx, int *tmp, int n, const float *logits) {
    if (n < 2) return;
    int h = n / 2;
    sort_by_logit(idx, tmp, h, logits);
    sort_by_logit(idx + h, tmp, n - h, logits);
    int a = 0, b = h, k = 0;
    while (a < h && b < n) tmp[k++] = logits[idx[b]] > logits[idx[a]] ? idx[b++] : idx[a++];
    while (a < h) tmp[k++] = idx[a++];
    while (b < n) tmp[k++] = idx[b++];
    memcpy(idx, tmp, (size_t)n * sizeof *tmp);
}

/* Picks the next id from one row of logits. Greedy ties go to the lowest id. */
static int32_t sample_next(const float *logits, int V, const xle_sampler *s, xle_rng *rng,
                           int *idx_buf, int *sort_buf, float *prob_buf) {
    if (!s || s->temperature <= 0.0f) {
        int best = 0;
        for (int i = 1; i < V; i++)
            if (logits[i] > logits[best]) best = i;
        return best;
    }
    int k = (s->top_k > 0 && s->top_k < V) ? s->top_k : V;
    int top_p = s->top_p > 0.0f && s->top_p < 1.0f;
    /* Select the top k ids by partial selection sort (k is small in practice); top-p needs
     * them in order, so a full sort when k is the whole vocabulary. */
    for (int i = 0; i < V; i++) idx_buf[i] = i;
    if (k < V) {
        for (int i = 0; i < k; i++) {
            int best = i;
            for (int j = i + 1; j < V; j++)
                if (logits[idx_buf[j]] > logits[idx_buf[best]]) best = j;
            int tmp = idx_buf[i];
            idx_buf[i] = idx_buf[best];
            idx_buf[best] = tmp;
        }
    } else if (top_p) {
        sort_by_logit(idx_buf, sort_buf, V, logits);
    }
    float mx = -INFINITY;
    for (int i = 0; i < k; i++) mx = fmaxf(mx, logits[idx_buf[i]]);
    if (top_p) {
        /* as llama.cpp: probabilities at temperature 1 over the top-k, cut where they reach p */
        double z = 0, cum = 0;
        for (int i = 0; i < k; i++) z += exp((double)logits[idx_buf[i]] - mx);
        for (int i = 0; i < k; i++) {
            cum += exp((double)logits[idx_buf[i]] - mx) / z;
            if (cum >= s->top_p) {
                k = i + 1;
                break;
            }
        }
    }
    double sum = 0;
    for (int i = 0; i < k; i++) {
        prob_buf[i] = expf((logits[idx_buf[i]] - mx) / s->temperature);
        sum += prob_buf[i];
    }
    double u = xle_rng_uniform(rng) * sum, acc = 0;
    for (int i = 0; i < k; i++) {
        acc += prob_buf[i];
        if (u < acc) return idx_buf[i];
    }
    return idx_buf[k - 1];
}

xle_status xle_generate(xle_model *m, const int32_t *prompt, int n_prompt, int n_new,
                        const xle_sampler *sampler, int32_t *out_ids, int *n_out, xle_error *err) {
    *n_out = 0;
    if (n_prompt <= 0) return xle_fail(err, XLE_ERR_ARG, "generate: the prompt is empty");
    if (n_new <= 0) return XLE_OK;
    const int V = m->cfg.vocab_size;
    xle_kv_cache *cache = NULL;
    xle_status st = xle_kv_cache_new(m, n_prompt + n_new, &cache, err);
    if (st != XLE_OK) return st;
    float *logits = malloc((size_t)V * sizeof(float));
    float *probs = malloc((size_t)V * sizeof(float));
    int *idx = malloc((size_t)V * sizeof(int)), *sort_buf = malloc((size_t)V * sizeof(int));
    uint8_t *seen = calloc((size_t)V, 1);
    if (!logits || !probs || !idx || !sort_buf || !seen) {
        st = xle_fail(err, XLE_ERR_NOMEM, "generate: out of memory");
        goto done;
    }
    xle_rng rng;
    xle_rng_seed(&rng, sampler ? sampler->seed : 0);
    int start[2] = {0, n_prompt};
    int last_row = n_prompt - 1;
    xle_batch batch = {1, prompt, start};
    xle_forward_opts opts = {.cache = cache, .logit_rows = &last_row, .n_logit_rows = 1};
    st = xle_forward(m, &batch, &opts, logits, err);
    for (int i = 0; st == XLE_OK && i < n_new; i++) {
        apply_repeat_penalty(logits, V, sampler, prompt, n_prompt, out_ids, *n_out, seen);
        int32_t next = sample_next(logits, V, sampler, &rng, idx, sort_buf, probs);
        out_ids[(*n_out)++] = next;
        if (sampler && sampler->stop_at_eos && next == m->cfg.eos_id) break;
        if (i + 1 == n_new) break;
        int one[2] = {0, 1}, row = 0;
        xle_batch step = {1, &next, one};
        xle_forward_opts step_opts = {.cache = cache, .logit_rows = &row, .n_logit_rows = 1};
        st = xle_forward(m, &step, &step_opts, logits, err);
    }
done:
    free(logits);
    free(probs);
    free(idx);
    free(sort_buf);
    free(seen);
    xle_kv_cache_free(cache);
    return st;
}

xle_status xle_generate_many(xle_model *m, int n, const int32_t *const *prompts,
                             const int *n_prompts, const int *n_new, const xle_sampler *samplers,
                             int32_t *const *out_ids, int *n_out, xle_error *err) {
    const int V = m->cfg.vocab_size;
    int max_len = 0;
    for (int s = 0; s < n; s++) {
        n_out[s] = 0;
        if (n_prompts[s] <= 0) return xle_fail(err, XLE_ERR_ARG, "generate: prompt %d is empty", s);
        if (n_prompts[s] + n_new[s] > max_len) max_len = n_prompts[s] + n_new[s];
    }
    if (n <= 0) return XLE_OK;
    xle_status st = XLE_OK;
    int32_t *tokens = malloc((size_t)n * (size_t)max_len * sizeof *tokens);
    int *start = malloc((size_t)(n + 1) * sizeof *start), *rows = malloc((size_t)n * sizeof *rows);
    int *active = malloc((size_t)n * sizeof *active), *done = calloc((size_t)n, sizeof *done);
    xle_rng *rngs = malloc((size_t)n * sizeof *rngs);
    float *logits = malloc((size_t)n * (size_t)V * sizeof(float));
    float *probs = malloc((size_t)V * sizeof(float));
    int *idx = malloc((size_t)V * sizeof(int)), *sort_buf = malloc((size_t)V * sizeof(int));
    uint8_t *seen = calloc((size_t)V, 1);
    if (!tokens || !start || !rows || !active || !done || !rngs || !logits || !probs || !idx ||
        !sort_buf || !seen) {
        st = xle_fail(err, XLE_ERR_NOMEM, "generate: out of memory");
        goto done;
    }
    for (int s = 0; s < n; s++) {
        xle_rng_seed(&rngs[s], samplers[s].seed);
        done[s] = n_new[s] <= 0;
    }
    for (;;) {
        /* the unfinished sequences, each with its prompt and what it generated so far */
        int n_active = 0, at = 0;
        for (int s = 0; s < n; s++) {
            if (done[s]) continue;
            start[n_active] = at;
            memcpy(tokens + at, prompts[s], (size_t)n_prompts[s] * sizeof *tokens);
            memcpy(tokens + at + n_prompts[s], out_ids[s], (size_t)n_out[s] * sizeof *tokens);
            at += n_prompts[s] + n_out[s];
            rows[n_active] = at - 1;
            active[n_active++] = s;
        }
        if (n_active == 0) break;
        start[n_active] = at;
        xle_batch batch = {n_active, tokens, start};
        xle_forward_opts opts = {.logit_rows = rows, .n_logit_rows = n_active};
        if ((st = xle_forward(m, &batch, &opts, logits, err)) != XLE_OK) break;
        for (int a = 0; a < n_active; a++) {
            const int s = active[a];
            const xle_sampler *sp = &samplers[s];
            float *row = logits + (size_t)a * V;
            apply_repeat_penalty(row, V, sp, prompts[s], n_prompts[s], out_ids[s], n_out[s], seen);
            const int32_t next = sample_next(row, V, sp, &rngs[s], idx, sort_buf, probs);
            out_ids[s][n_out[s]++] = next;
            if ((sp->stop_at_eos && next == m->cfg.eos_id) || n_out[s] == n_new[s]) done[s] = 1;
        }
    }
done:
    free(tokens);
    free(start);
    free(rows);
    free(active);
    free(done);
    free(rngs);
    free(logits);
    free(probs);
    free(idx);
    free(sort_buf);
    free(seen);
    return st;
}

xle_status xle_score(xle_model *m, const int32_t *prompt, int n_prompt, const int32_t *target,
                     int n_target, double *logprob, float *per_token, xle_error *err) {
    if (n_prompt <= 0 || n_target <= 0)
        return xle_fail(err, XLE_ERR_ARG, "score: prompt and target must be non-empty");
    const int T = n_prompt + n_target, V = m->cfg.vocab_size;
    int32_t *ids = malloc((size_t)T * sizeof(int32_t));
    int *rows = malloc((size_t)n_target * sizeof(int));
    float *logits = malloc((size_t)n_target * (size_t)V * sizeof(float));
    if (!ids || !rows || !logits) {
        free(ids), free(rows), free(logits);
        return xle_fail(err, XLE_ERR_NOMEM, "score: out of memory");
    }
    memcpy(ids, prompt, (size_t)n_prompt * sizeof(int32_t));
    memcpy(ids + n_prompt, target, (size_t)n_target * sizeof(int32_t));
    /* The logits at position p predict token p + 1. */
    for (int i = 0; i < n_target; i++) rows[i] = n_prompt - 1 + i;
    int start[2] = {0, T};
    xle_batch batch = {1, ids, start};
    xle_forward_opts opts = {.logit_rows = rows, .n_logit_rows = n_target};
    xle_status st = xle_forward(m, &batch, &opts, logits, err);
    if (st == XLE_OK) {
        double total = 0;
        for (int i = 0; i < n_target; i++) {
            const float *row = logits + (size_t)i * V;
            float mx = -INFINITY;
            for (int j = 0; j < V; j++) mx = fmaxf(mx, row[j]);
            double sum = 0;
            for (int j = 0; j < V; j++) sum += exp((double)row[j] - mx);
            double lp = (double)row[target[i]] - mx - log(sum);
            if (per_token) per_token[i] = (float)lp;
            total += lp;
        }
        *logprob = total;
    }
    free(ids);
    free(rows);
    free(logits);
    return st;
}
