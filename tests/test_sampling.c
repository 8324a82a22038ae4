/*
 * test_sampling.c: the llama.cpp-style sampler options of xle_generate (--repeat-penalty,
 * --repeat-last-n, --top-p) on a tiny random model. Greedy generation with a repeat penalty
 * equals a step-by-step re-computation here (full forward pass, llama.cpp's rule applied by
 * this test: logits of ids among the last N tokens, prompt included, divided by the penalty
 * when positive, multiplied when not) and differs from plain greedy; a top-p that keeps one
 * token makes sampling greedy at any temperature; with top-p 0.6 every sampled id lies in the
 * nucleus of the re-computed distribution; top-p 1 samples exactly as without it.
 * xle_generate_many (sequences side by side, no KV cache) gives each sequence the ids
 * xle_generate gives it alone (prompts and lengths differ, sampled, greedy, penalised).
 */
#include "check.h"
#include "tiny_model.h"

#define N_PROMPT 4
#define N_NEW 24

static void last_logits(xle_model *m, const int32_t *ids, int n, float *out) {
    int start[2] = {0, n}, row = n - 1;
    xle_batch b = {1, ids, start};
    xle_forward_opts o = {.logit_rows = &row, .n_logit_rows = 1};
    xle_error err;
    CHECK_OK(xle_forward(m, &b, &o, out, &err), &err);
}

static xle_model *model(void) {
    xle_config cfg = tiny_config(XLE_ARCH_LLAMA);
    return tiny_model_new(&cfg, 0, XLE_F32, 11);
}

static void test_repeat_penalty_greedy(void) {
    xle_model *m = model();
    const int V = xle_model_config(m)->vocab_size;
    const float penalty = 1.8f;
    const int last_n = 6;
    int32_t got[N_PROMPT + N_NEW] = {1, 5, 9, 5}, plain[N_PROMPT + N_NEW] = {1, 5, 9, 5};
    int n_out = 0, n_plain = 0;
    xle_error err;
    xle_sampler s = {.repeat_penalty = penalty, .repeat_last_n = last_n};
    CHECK_OK(xle_generate(m, got, N_PROMPT, N_NEW, &s, got + N_PROMPT, &n_out, &err), &err);
    xle_sampler g = {0};
    CHECK_OK(xle_generate(m, plain, N_PROMPT, N_NEW, &g, plain + N_PROMPT, &n_plain, &err), &err);
    CHECK(n_out == N_NEW && n_plain == N_NEW);
    CHECK_MSG(memcmp(got, plain, sizeof got) != 0, "the penalty changed nothing");
    float logits[64];
    for (int t = N_PROMPT; t < N_PROMPT + n_out; t++) {
        last_logits(m, got, t, logits);
        int seen[64] = {0};
        for (int i = t > last_n ? t - last_n : 0; i < t; i++) {
            int id = got[i];
            if (seen[id]++) continue;
            logits[id] = logits[id] <= 0 ? logits[id] * penalty : logits[id] / penalty;
        }
        int best = 0;
        for (int v = 1; v < V; v++)
            if (logits[v] > logits[best]) best = v;
        CHECK_MSG(best == got[t], "step %d: generate %d, re-computed %d", t, got[t], best);
    }
    xle_model_free(m);
}

static void test_top_p(void) {
    xle_model *m = model();
    const int V = xle_model_config(m)->vocab_size;
    xle_error err;
    int32_t greedy[N_PROMPT + N_NEW] = {2, 7, 3, 11};
    int n = 0;
    xle_sampler g = {0};
    CHECK_OK(xle_generate(m, greedy, N_PROMPT, N_NEW, &g, greedy + N_PROMPT, &n, &err), &err);
#ifdef XLE_SANITIZED
    const uint64_t n_seeds = 1; /* fewer draws under the sanitizers */
#else
    const uint64_t n_seeds = 3;
#endif
    for (uint64_t seed = 1; seed <= n_seeds; seed++) {
        /* a nucleus of one token: greedy at any temperature */
        int32_t ids[N_PROMPT + N_NEW] = {2, 7, 3, 11};
        xle_sampler s = {.temperature = 1.5f, .seed = seed, .top_p = 1e-6f};
        CHECK_OK(xle_generate(m, ids, N_PROMPT, N_NEW, &s, ids + N_PROMPT, &n, &err), &err);
        CHECK(memcmp(ids, greedy, sizeof ids) == 0);
        /* top-p 1 is off: the same draws as plain sampling */
        int32_t a[N_PROMPT + N_NEW] = {2, 7, 3, 11}, b[N_PROMPT + N_NEW] = {2, 7, 3, 11};
        xle_sampler plain = {.temperature = 1.0f, .seed = seed}, one = plain;
        one.top_p = 1.0f;
        CHECK_OK(xle_generate(m, a, N_PROMPT, N_NEW, &plain, a + N_PROMPT, &n, &err), &err);
        CHECK_OK(xle_generate(m, b, N_PROMPT, N_NEW, &one, b + N_PROMPT, &n, &err), &err);
        CHECK(memcmp(a, b, sizeof a) == 0);
        /* top-p 0.6 at a high temperature: each id is in the nucleus (temperature 1) */
        int32_t c[N_PROMPT + N_NEW] = {2, 7, 3, 11};
        xle_sampler nuc = {.temperature = 3.0f, .seed = seed, .top_p = 0.6f};
        CHECK_OK(xle_generate(m, c, N_PROMPT, N_NEW, &nuc, c + N_PROMPT, &n, &err), &err);
        float logits[64];
        for (int t = N_PROMPT; t < N_PROMPT + n; t++) {
            last_logits(m, c, t, logits);
            double mx = logits[0], z = 0;
            for (int v = 1; v < V; v++) mx = logits[v] > mx ? logits[v] : mx;
            for (int v = 0; v < V; v++) z += exp(logits[v] - mx);
            /* probability mass strictly above the chosen id's logit must be < 0.6 */
            double above = 0;
            for (int v = 0; v < V; v++)
                if (logits[v] > logits[c[t]] || (logits[v] == logits[c[t]] && v < c[t]))
                    above += exp(logits[v] - mx) / z;
            CHECK_MSG(above < 0.6 + 1e-6, "seed %llu step %d: id %d has %.3f above it",
                      (unsigned long long)seed, t, c[t], above);
        }
    }
    xle_model_free(m);
}

static void test_generate_many(void) {
    xle_model *m = model();
    xle_error err;
    enum { N = 4 };
    const int32_t p0[] = {2, 7, 3, 11}, p1[] = {5}, p2[] = {9, 1, 4}, p3[] = {2, 7};
    const int32_t *prompts[N] = {p0, p1, p2, p3};
    const int n_prompts[N] = {4, 1, 3, 2}, n_new[N] = {N_NEW, 5, 17, 0};
    const xle_sampler samplers[N] = {{.temperature = 1.0f, .top_k = 5, .seed = 3},
                                     {.temperature = 1.2f, .seed = 4},
                                     {.repeat_penalty = 1.3f},
                                     {.temperature = 1.0f, .seed = 5}};
    int32_t out[N][N_NEW], alone[N_NEW];
    int32_t *outs[N] = {out[0], out[1], out[2], out[3]};
    int n_out[N];
    CHECK_OK(xle_generate_many(m, N, prompts, n_prompts, n_new, samplers, outs, n_out, &err), &err);
    for (int s = 0; s < N; s++) {
        int n = 0;
        CHECK_OK(xle_generate(m, prompts[s], n_prompts[s], n_new[s], &samplers[s], alone, &n, &err), &err);
        CHECK_MSG(n == n_out[s] && memcmp(alone, out[s], (size_t)n * sizeof *alone) == 0,
                  "sequence %d: %d ids side by side, %d alone", s, n_out[s], n);
    }
    /* eos stops one sequence early and not the others */
    xle_sampler stop[N];
    for (int s = 0; s < N; s++) stop[s] = samplers[s], stop[s].stop_at_eos = 1;
    CHECK_OK(xle_generate_many(m, N, prompts, n_prompts, n_new, stop, outs, n_out, &err), &err);
    for (int s = 0; s < N; s++) {
        int n = 0;
        CHECK_OK(xle_generate(m, prompts[s], n_prompts[s], n_new[s], &stop[s], alone, &n, &err), &err);
        CHECK(n == n_out[s] && memcmp(alone, out[s], (size_t)n * sizeof *alone) == 0);
    }
    xle_model_free(m);
}

int main(void) {
    RUN(test_repeat_penalty_greedy);
    RUN(test_top_p);
    RUN(test_generate_many);
    return check_summary();
}
