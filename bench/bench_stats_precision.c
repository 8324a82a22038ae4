/*
 * bench_stats_precision.c: what the statistics' bf16 mode (the model's XLE_PRECISION_BF16:
 * bf16 arithmetic in the forward pass, each batch's Kᵀ K summed in float32; src/edit/stats.c)
 * changes, measured on a real model and corpus: the relative (Frobenius) difference of Σ k kᵀ
 * from the exact float64 statistics at every layer ROME and MEMIT use, and the relative
 * difference of the edits computed with each (ROME with C⁻¹ on each request alone, MEMIT on
 * all requests together), plus the CPU time of each pass. docs/editing.md reports it.
 *
 *   bench_stats_precision [--model DIR] --corpus FILE [--tokens N] [--cases FILE] [--lang L]
 *                         [--requests N]
 * Defaults: models/xledit-mini, 50,000 tokens (the demo's), data/world/cases.jsonl, en, 4.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xledit.h"

static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double rel_diff_f64(const double *a, const double *b, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) num += (a[i] - b[i]) * (a[i] - b[i]), den += b[i] * b[i];
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* The dense ΔW of a delta (rows x cols). */
static double *dense_delta(const xle_layer_delta *d) {
    double *w = calloc((size_t)d->rows * d->cols, sizeof *w);
    if (!w) return NULL;
    for (int i = 0; i < d->rows; i++)
        for (int j = 0; j < d->cols; j++) {
            double s = 0;
            if (d->rank == 0) s = d->dense[(int64_t)i * d->cols + j];
            for (int r = 0; r < d->rank; r++) s += (double)d->left[i * d->rank + r] * d->right[(int64_t)j * d->rank + r];
            w[(int64_t)i * d->cols + j] = s;
        }
    return w;
}

/* Largest relative difference over the layers of two results of the same edit. */
static double result_diff(const xle_edit_result *a, const xle_edit_result *b) {
    double worst = 0;
    for (int k = 0; k < a->n_deltas && k < b->n_deltas; k++) {
        double *x = dense_delta(&a->deltas[k]), *y = dense_delta(&b->deltas[k]);
        if (x && y) {
            double e = rel_diff_f64(y, x, (int64_t)a->deltas[k].rows * a->deltas[k].cols);
            worst = e > worst ? e : worst;
        }
        free(x), free(y);
    }
    return worst;
}

int main(int argc, char **argv) {
    const char *model_path = "models/xledit-mini", *corpus = NULL, *cases_path = "data/world/cases.jsonl";
    const char *lang = "en";
    long want_tokens = 50000;
    int n_requests = 4;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && !strcmp(argv[i], "--model")) model_path = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--corpus")) corpus = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--tokens")) want_tokens = atol(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--cases")) cases_path = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--lang")) lang = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--requests")) n_requests = atoi(argv[++i]);
        else corpus = NULL, i = argc;
    }
    if (!corpus || n_requests < 1) {
        fprintf(stderr, "usage: bench_stats_precision [--model DIR] --corpus FILE [--tokens N] [--cases FILE]\n"
                        "                             [--lang L] [--requests N]\n");
        return 2;
    }
    xle_error err = {0};
    xle_model *m = NULL;
    if (xle_model_load(model_path, &m, &err) != XLE_OK) {
        fprintf(stderr, "bench_stats_precision: %s\n", err.msg);
        return 1;
    }
    const xle_config *c = xle_model_config(m);
    const struct xle_tokenizer *tok = xle_model_tokenizer(m);
    const int f = c->ffn_dim;

    /* The corpus: one document per line, BOS first, cut at the context length. */
    FILE *fp = fopen(corpus, "r");
    if (!fp) {
        fprintf(stderr, "bench_stats_precision: %s: cannot open\n", corpus);
        return 1;
    }
    int cap = 1024, n_seqs = 0;
    int32_t **seqs = malloc(cap * sizeof *seqs);
    int *lens = malloc(cap * sizeof *lens);
    long tokens = 0;
    char *line = NULL;
    size_t line_cap = 0;
    ssize_t got;
    while (tokens < want_tokens && (got = getline(&line, &line_cap, fp)) > 0) {
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = 0;
        if (got == 0) continue;
        xle_tokens t;
        if (xle_tokenize(tok, line, (size_t)got, -1, 0, &t, &err) != XLE_OK) break;
        int n = t.n < c->max_seq_len ? t.n : c->max_seq_len;
        if (tokens + n > want_tokens) n = (int)(want_tokens - tokens);
        if (n_seqs == cap) {
            cap *= 2;
            seqs = realloc(seqs, cap * sizeof *seqs);
            lens = realloc(lens, cap * sizeof *lens);
        }
        seqs[n_seqs] = malloc((size_t)n * sizeof(int32_t));
        memcpy(seqs[n_seqs], t.ids, (size_t)n * sizeof(int32_t));
        lens[n_seqs++] = n;
        tokens += n;
        xle_tokens_free(&t);
    }
    free(line);
    fclose(fp);

    xle_edit_hparams hps[2];
    int used;
    if (xle_edit_hparams_for_model_path(&hps[0], XLE_EDIT_ROME, m, model_path, &used, &err) != XLE_OK ||
        xle_edit_hparams_for_model_path(&hps[1], XLE_EDIT_MEMIT, m, model_path, &used, &err) != XLE_OK) {
        fprintf(stderr, "bench_stats_precision: %s\n", err.msg);
        return 1;
    }
    hps[0].mom2_adjustment = 1;
    int layers[2 * XLE_EDIT_MAX_LAYERS];
    const int n_layers = xle_edit_stats_layers(hps, 2, layers);

    /* Statistics: [0] exact, [1] bf16. */
    xle_layer_stats st[2][2 * XLE_EDIT_MAX_LAYERS];
    double cpu[2];
    for (int p = 0; p < 2; p++) {
        for (int i = 0; i < n_layers; i++)
            st[p][i] = (xle_layer_stats){layers[i], f, 0, calloc((size_t)f * f, sizeof(double))};
        xle_model_set_precision(m, p ? XLE_PRECISION_BF16 : XLE_PRECISION_EXACT);
        double t = cpu_s();
        if (xle_stats_accumulate(m, layers, n_layers, (const int32_t *const *)seqs, lens, n_seqs, st[p], &err) != XLE_OK) {
            fprintf(stderr, "bench_stats_precision: %s\n", err.msg);
            return 1;
        }
        cpu[p] = cpu_s() - t;
    }
    xle_model_set_precision(m, XLE_PRECISION_EXACT);
    printf("model %s, %ld tokens in %d documents, ffn %d\n", model_path, tokens, n_seqs, f);
    printf("statistics CPU s: exact %.2f, bf16 %.2f\n", cpu[0], cpu[1]);
    for (int i = 0; i < n_layers; i++)
        printf("layer %d: |Σ_bf16 - Σ_exact| / |Σ_exact| = %.2e\n", layers[i],
               rel_diff_f64(st[1][i].sum, st[0][i].sum, (int64_t)f * f));

    /* Edits with each statistics. */
    xle_cases *cs = NULL;
    if (xle_cases_load(cases_path, &cs, &err) != XLE_OK) {
        fprintf(stderr, "bench_stats_precision: %s\n", err.msg);
        return 1;
    }
    xle_context_templates *ct = NULL;
    xle_context_templates_none(&ct, &err);
    xle_edit_request_tok *reqs = calloc((size_t)n_requests, sizeof *reqs);
    int n_req = 0;
    for (int k = 0; k < cs->n && n_req < n_requests; k++)
        for (int l = 0; l < cs->cases[k].n_langs; l++) {
            const xle_case_lang *cl = &cs->cases[k].langs[l];
            if (strcmp(cl->lang, lang)) continue;
            xle_edit_request r = {cl->prompt, cl->subject, cl->target_new};
            if (xle_edit_request_tokenize(tok, &r, ct, &reqs[n_req], &err) == XLE_OK) n_req++;
        }
    for (int h = 0; h < 2; h++) {
        xle_layer_stats *sp[2][XLE_EDIT_MAX_LAYERS];
        for (int p = 0; p < 2; p++)
            for (int k = 0; k < hps[h].n_layers; k++)
                for (int i = 0; i < n_layers; i++)
                    if (layers[i] == hps[h].layers[k]) sp[p][k] = &st[p][i];
        double worst = 0;
        const int runs = h == 0 ? n_req : 1, per_run = h == 0 ? 1 : n_req;
        for (int r = 0; r < runs; r++) {
            xle_edit_result res[2] = {{0}, {0}};
            for (int p = 0; p < 2; p++)
                if (xle_edit_run(m, &hps[h], &reqs[r], per_run, sp[p], &res[p], &err) != XLE_OK) {
                    fprintf(stderr, "bench_stats_precision: %s\n", err.msg);
                    return 1;
                }
            double e = result_diff(&res[0], &res[1]);
            worst = e > worst ? e : worst;
            xle_edit_result_free(&res[0]), xle_edit_result_free(&res[1]);
        }
        printf("%s (layers", h == 0 ? "ROME with C^-1, each request alone" : "MEMIT, all requests together");
        for (int k = 0; k < hps[h].n_layers; k++) printf(" %d", hps[h].layers[k]);
        printf("): %d request(s), largest |ΔW_bf16 - ΔW_exact| / |ΔW_exact| = %.2e\n", n_req, worst);
    }
    for (int i = 0; i < n_req; i++) xle_edit_request_tok_free(&reqs[i]);
    free(reqs);
    xle_context_templates_free(ct);
    xle_cases_free(cs);
    for (int p = 0; p < 2; p++)
        for (int i = 0; i < n_layers; i++) free(st[p][i].sum);
    for (int i = 0; i < n_seqs; i++) free(seqs[i]);
    free(seqs), free(lens);
    xle_model_free(m);
    return 0;
}
