/*
 * bench_edit.c: wall time, peak RSS and FLOP utilization of the editing work on the
 * Llama-3.2-1B-shaped bf16 model that bench_engine writes (run bench_engine first; it leaves
 * the model in DIR). The workloads are the ones bench/bench_edit_ref.py times in PyTorch on
 * the same machine, so the two can be set side by side (docs/performance.md, "Editing"):
 *
 *   rome   one request at layer 3: 25 steps of v*, 21 prompts (bare + 10 with 5-token and 10
 *          with 10-token prefixes), 2 target tokens, mom2_adjustment false;
 *   memit  10 requests, layers 2-4, z at layer 4 with 25 steps, 6 prompts each, λ = 15000,
 *          C = I, one matrix for the three layers as the reference shares one torch.eye (the
 *          solve costs the same for any positive definite matrix);
 *   stats  Σ k kᵀ at layer 3 over 100,000 tokens: random documents of 512 tokens (BOS + 511),
 *          8 per forward pass, the pass stopped after the layer, float64 accumulation;
 *          --precision bf16: the model's bf16 precision, under which the statistics' forward
 *          pass uses bf16 arithmetic and each batch's Kᵀ K float32 (src/edit/stats.c; editing
 *          is exact whatever the setting).
 *
 *   bench_edit --workload rome|memit|stats [--dir DIR] [--steps N] [--stats-tokens N]
 *              [--precision exact|bf16] [--json]
 * Each workload runs in its own process so that its peak RSS is its own.
 */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "xledit.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* CPU seconds of the process, all threads (comparable when the machine is shared). */
static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + 1e-6 * (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static double peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

/* Random ids away from the ends of the vocabulary (as the PyTorch bench draws them). */
static int32_t rand_tok(xle_rng *rng, int vocab) {
    return 1000 + (int32_t)(xle_rng_uniform(rng) * (vocab - 2000));
}

typedef struct bench_request {
    int32_t ids[24][24];
    xle_edit_prompt prompts[24];
    int32_t kl_ids[8], target[2];
    xle_edit_request_tok req;
} bench_request;

/* BOS, 2 relation tokens, a 2-token subject, 4 relation tokens; prefixed variants are BOS +
 * prefix + "." + body; the fact token is the subject's last. */
static void make_request(bench_request *r, xle_rng *rng, int vocab, const int *prefix_lens,
                         int n_prefixes) {
    int32_t body[8];
    for (int i = 0; i < 8; i++) body[i] = rand_tok(rng, vocab);
    const int fact_in_body = 3;
    for (int p = 0; p <= n_prefixes; p++) {
        int n = 0;
        r->ids[p][n++] = 1;
        if (p > 0) {
            for (int i = 0; i < prefix_lens[p - 1] - 1; i++) r->ids[p][n++] = rand_tok(rng, vocab);
            r->ids[p][n++] = 13;
        }
        int fact = n + fact_in_body;
        for (int i = 0; i < 8; i++) r->ids[p][n++] = body[i];
        r->prompts[p] = (xle_edit_prompt){r->ids[p], n, fact, p ? 1 : 0};
    }
    r->kl_ids[0] = 1, r->kl_ids[1] = body[2], r->kl_ids[2] = body[3];
    r->kl_ids[3] = rand_tok(rng, vocab), r->kl_ids[4] = rand_tok(rng, vocab);
    r->target[0] = rand_tok(rng, vocab), r->target[1] = rand_tok(rng, vocab);
    r->req = (xle_edit_request_tok){r->prompts, n_prefixes + 1, {r->kl_ids, 5, 2, 0}, r->target, 2};
}

/* Forward + backward FLOPs of a pass over n tokens (matmuls only: 2 per multiply-add forward,
 * 4 backward through activations), to report utilization. */
static double pass_flops(const xle_config *c, double n_tokens, int backward) {
    double per_layer = 2.0 * c->dim * (c->n_heads + 2.0 * c->n_kv_heads) * c->head_dim +
                       2.0 * c->n_heads * c->head_dim * c->dim + 6.0 * c->dim * c->ffn_dim;
    double head = 2.0 * c->dim * c->vocab_size;
    return n_tokens * (c->n_layers * per_layer + head) * (backward ? 3.0 : 1.0);
}

static double measure_sgemm_gflops(void) {
    const int m = 512, n = 2048, k = 8192;
    float *a = calloc((size_t)m * k, 4), *b = calloc((size_t)n * k, 4), *c = calloc((size_t)m * n, 4);
    for (size_t i = 0; i < (size_t)m * k; i++) a[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < (size_t)n * k; i++) b[i] = (float)(i % 5) * 0.1f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1, a, k, b, k, 0, c, n);
    double best = 0;
    for (int r = 0; r < 3; r++) {
        double t = now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1, a, k, b, k, 0, c, n);
        double g = 2.0 * m * n * k / (now_s() - t) / 1e9;
        if (g > best) best = g;
    }
    free(a), free(b), free(c);
    return best;
}

int main(int argc, char **argv) {
    const char *dir = "/tmp/xledit-bench-llama3.2-1b-bf16", *workload = NULL;
    int steps = 25, json = 0, bf16 = 0;
    long stats_tokens = 100000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (i + 1 < argc && !strcmp(argv[i], "--dir")) dir = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--workload")) workload = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--steps")) steps = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--stats-tokens")) stats_tokens = atol(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--precision") &&
                 (!strcmp(argv[i + 1], "exact") || !strcmp(argv[i + 1], "bf16")))
            bf16 = !strcmp(argv[++i], "bf16");
        else workload = NULL, i = argc;
    }
    if (!workload || (strcmp(workload, "rome") && strcmp(workload, "memit") && strcmp(workload, "stats"))) {
        fprintf(stderr, "usage: bench_edit --workload rome|memit|stats [--dir DIR] [--steps N] [--stats-tokens N]\n"
                        "                  [--precision exact|bf16] [--json]\n"
                        "(DIR holds the 1B-shaped model bench_engine writes)\n");
        return 2;
    }
    xle_model *m = NULL;
    xle_error err = {0};
    double t0 = now_s();
    if (xle_model_load(dir, &m, &err) != XLE_OK) {
        fprintf(stderr, "bench_edit: %s (run bench_engine --dir %s first)\n", err.msg, dir);
        return 1;
    }
    xle_model_set_precision(m, bf16 ? XLE_PRECISION_BF16 : XLE_PRECISION_EXACT);
    const xle_config *c = xle_model_config(m);
    double load_s = now_s() - t0, secs = 0, flops = 0, loss = 0, cpu0 = cpu_s();
    int done_steps = 0;
    xle_rng rng;
    xle_status st = XLE_OK;
    if (!strcmp(workload, "rome")) {
        xle_edit_hparams hp;
        xle_edit_hparams_default(&hp, XLE_EDIT_ROME, c->n_layers);
        hp.v_num_grad_steps = steps;
        int lens[20];
        for (int i = 0; i < 20; i++) lens[i] = i < 10 ? 5 : 10;
        bench_request *r = calloc(1, sizeof *r);
        xle_rng_seed(&rng, 1);
        make_request(r, &rng, c->vocab_size, lens, 20);
        xle_edit_result res = {0};
        double t = now_s();
        st = xle_edit_run(m, &hp, &r->req, 1, NULL, &res, &err);
        secs = now_s() - t;
        double tokens = 0;
        for (int p = 0; p < r->req.n_prompts; p++) tokens += r->req.prompts[p].n + 1;
        tokens += r->req.kl.n;
        flops = pass_flops(c, tokens, 1) * res.steps;
        loss = res.final_loss, done_steps = res.steps;
        xle_edit_result_free(&res);
        free(r);
    } else if (!strcmp(workload, "memit")) {
        xle_edit_hparams hp;
        xle_edit_hparams_default(&hp, XLE_EDIT_MEMIT, c->n_layers);
        hp.v_num_grad_steps = steps;
        hp.mom2_update_weight = 15000;
        enum { N_REQ = 10 };
        bench_request *rs = calloc(N_REQ, sizeof *rs);
        xle_edit_request_tok reqs[N_REQ];
        int lens[5] = {10, 10, 10, 10, 10};
        xle_rng_seed(&rng, 2);
        for (int i = 0; i < N_REQ; i++) {
            make_request(&rs[i], &rng, c->vocab_size, lens, 5);
            reqs[i] = rs[i].req;
        }
        /* C = I for every layer, one matrix shared as the reference shares its one torch.eye
         * (memit only reads the statistics) */
        xle_layer_stats stats[XLE_EDIT_MAX_LAYERS];
        xle_layer_stats *sp[XLE_EDIT_MAX_LAYERS];
        double *identity = calloc((size_t)c->ffn_dim * c->ffn_dim, sizeof(double));
        for (int j = 0; identity && j < c->ffn_dim; j++) identity[(size_t)j * c->ffn_dim + j] = 1;
        for (int i = 0; i < hp.n_layers; i++) {
            stats[i] = (xle_layer_stats){hp.layers[i], c->ffn_dim, 1, identity};
            sp[i] = &stats[i];
        }
        xle_edit_result res = {0};
        double t = now_s();
        st = xle_edit_run(m, &hp, reqs, N_REQ, sp, &res, &err);
        secs = now_s() - t;
        double tokens = 0;
        for (int i = 0; i < N_REQ; i++) {
            for (int p = 0; p < reqs[i].n_prompts; p++) tokens += reqs[i].prompts[p].n + 1;
            tokens += reqs[i].kl.n;
        }
        /* z optimisation per request + the per-layer solves (f³/3 Cholesky + key passes) */
        flops = pass_flops(c, tokens, 1) * res.steps +
                hp.n_layers * ((double)c->ffn_dim * c->ffn_dim * c->ffn_dim / 3.0);
        loss = res.final_loss, done_steps = res.steps;
        free(identity);
        xle_edit_result_free(&res);
        free(rs);
    } else {
        enum { DOC = 512, PER_PASS = 8 };
        int layer = 3, n_docs = (int)((stats_tokens + DOC - 1) / DOC);
        int32_t *ids = malloc((size_t)PER_PASS * DOC * sizeof *ids);
        const int32_t *seqs[PER_PASS];
        int lens[PER_PASS];
        xle_layer_stats s = {layer, c->ffn_dim, 0, calloc((size_t)c->ffn_dim * c->ffn_dim, sizeof(double))};
        xle_rng_seed(&rng, 3);
        double t = now_s();
        for (int b = 0; b < n_docs && st == XLE_OK; b += PER_PASS) {
            int nb = n_docs - b < PER_PASS ? n_docs - b : PER_PASS;
            for (int d = 0; d < nb; d++) {
                int32_t *doc = ids + (size_t)d * DOC;
                doc[0] = 1;
                for (int i = 1; i < DOC; i++) doc[i] = rand_tok(&rng, c->vocab_size);
                seqs[d] = doc, lens[d] = DOC;
            }
            st = xle_stats_accumulate(m, &layer, 1, seqs, lens, nb, &s, &err);
        }
        secs = now_s() - t;
        double per_layer = 2.0 * c->dim * (c->n_heads + 2.0 * c->n_kv_heads) * c->head_dim +
                           2.0 * c->n_heads * c->head_dim * c->dim + 6.0 * c->dim * c->ffn_dim;
        flops = (double)s.count * ((layer + 1) * per_layer + (double)c->ffn_dim * c->ffn_dim);
        done_steps = (int)(s.count / 1000);
        free(s.sum);
        free(ids);
    }
    if (st != XLE_OK) {
        fprintf(stderr, "bench_edit: %s\n", err.msg);
        xle_model_free(m);
        return 1;
    }
    double cpu = cpu_s() - cpu0; /* includes building the requests: microseconds */
    double sgemm = measure_sgemm_gflops();
    double gflops = flops / secs / 1e9, rss = peak_rss_mb();
    if (json)
        printf("{\"workload\": \"%s\", \"seconds\": %.3f, \"cpu_seconds\": %.3f, \"load_seconds\": %.3f, "
               "\"gflops\": %.2f, \"sgemm_gflops\": %.2f, \"peak_rss_mb\": %.1f, \"steps\": %d, "
               "\"loss\": %.4f, \"threads\": %d, \"precision\": \"%s\"}\n", workload, secs, cpu, load_s, gflops,
               sgemm, rss, done_steps, loss, omp_get_max_threads(), bf16 ? "bf16" : "exact");
    else
        printf("%-6s %8.2f s (cpu %.2f s)  %7.1f GFLOP/s (%4.1f%% of sgemm %.1f)  peak RSS %7.1f MB  "
               "steps %d  loss %.4f  threads %d\n", workload, secs, cpu, gflops, 100 * gflops / sgemm,
               sgemm, rss, done_steps, loss, omp_get_max_threads());
    xle_model_free(m);
    return 0;
}
