/*
 * metrics.c: the token-level machinery of evaluation (docs/evaluation.md): teacher-forced
 * probes run in packed batches, exact greedy decoding verified in batches, and Bi-ZsRE's
 * answer comparison (exact match, token F1).
 *
 * Greedy decoding uses the gold answer as a draft and verifies it the way speculative decoding
 * does: one forward pass over prompt + draft gives the argmax at every answer position; the
 * argmax at position j is the greedy token whenever the draft before j equals the greedy tokens
 * before j. So the first mismatch fixes one more greedy token and the rest of the argmax row
 * becomes the next draft. Every pass confirms at least one token; when the model already says
 * the answer (the usual case after a successful edit) the teacher-forced pass is the only one.
 *
 * For showing an answer whole (xle_probes_eval_more), greedy decoding goes on past the expected
 * answer's length until the word ends. Every pass of such a probe reads one token more (the
 * whole draft) and gives the argmax after it, so the token after the expected length comes with
 * the pass that verifies the last one; each further token takes one more (batched) pass. The
 * rows of the expected answer's positions are computed as without it.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/eval_internal.h"

/* Packed-batch limits: tokens per forward pass, and bytes of logits per pass. */
#define PROBE_BATCH_TOKENS 2048
#define PROBE_LOGIT_BYTES ((size_t)128 << 20)

static const struct {
    const char *name, *title;
} metric_info[XLE_METRIC_COUNT] = {
    [XLE_METRIC_REL_ACC] = {"rel_acc", "Reliability (token accuracy)"},
    [XLE_METRIC_GEN_ACC] = {"gen_acc", "Generalization (token accuracy)"},
    [XLE_METRIC_LOC_ACC] = {"loc_acc", "Locality (agreement with pre-edit)"},
    [XLE_METRIC_PORT_ACC] = {"port_acc", "Portability (token accuracy)"},
    [XLE_METRIC_EFF_SUCC] = {"eff_succ", "Efficacy success P(new) > P(true)"},
    [XLE_METRIC_EFF_MAG] = {"eff_mag", "Efficacy magnitude P(new) - P(true)"},
    [XLE_METRIC_PARA_SUCC] = {"para_succ", "Paraphrase success P(new) > P(true)"},
    [XLE_METRIC_PARA_MAG] = {"para_mag", "Paraphrase magnitude P(new) - P(true)"},
    [XLE_METRIC_NBHD_SUCC] = {"nbhd_succ", "Neighbourhood success P(true) > P(new)"},
    [XLE_METRIC_NBHD_MAG] = {"nbhd_mag", "Neighbourhood magnitude P(true) - P(new)"},
    [XLE_METRIC_REL_EM] = {"rel_em", "Reliability exact match (greedy)"},
    [XLE_METRIC_REL_F1] = {"rel_f1", "Reliability token F1 (greedy)"},
    [XLE_METRIC_GEN_EM] = {"gen_em", "Generalization exact match (greedy)"},
    [XLE_METRIC_GEN_F1] = {"gen_f1", "Generalization token F1 (greedy)"},
    [XLE_METRIC_LOC_EM] = {"loc_em", "Locality exact match with pre-edit (greedy)"},
    [XLE_METRIC_LOC_F1] = {"loc_f1", "Locality token F1 with pre-edit (greedy)"},
    [XLE_METRIC_PORT_EM] = {"port_em", "Portability exact match (greedy)"},
    [XLE_METRIC_PORT_F1] = {"port_f1", "Portability token F1 (greedy)"},
};

const char *xle_metric_name(xle_metric m) {
    return m >= 0 && m < XLE_METRIC_COUNT ? metric_info[m].name : "?";
}

const char *xle_metric_title(xle_metric m) {
    return m >= 0 && m < XLE_METRIC_COUNT ? metric_info[m].title : "?";
}

xle_metric xle_metric_from_name(const char *name) {
    for (int m = 0; m < XLE_METRIC_COUNT; m++)
        if (name && !strcmp(name, metric_info[m].name)) return (xle_metric)m;
    return XLE_METRIC_COUNT;
}

/* ---- answer comparison ------------------------------------------------------------------- */

static int is_blank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

int xle_exact_match(const char *pred, const char *gold) {
    if (!pred || !gold) return 0;
    while (is_blank(*pred)) pred++;
    while (is_blank(*gold)) gold++;
    size_t np = strlen(pred), ng = strlen(gold);
    while (np && is_blank(pred[np - 1])) np--;
    while (ng && is_blank(gold[ng - 1])) ng--;
    return np == ng && memcmp(pred, gold, np) == 0;
}

static int cmp_id(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

double xle_token_f1(const int32_t *pred, int n_pred, const int32_t *gold, int n_gold) {
    if (n_pred <= 0 && n_gold <= 0) return 1.0;
    if (n_pred <= 0 || n_gold <= 0) return 0.0;
    int32_t *p = malloc((size_t)(n_pred + n_gold) * sizeof *p);
    if (!p) return NAN;
    int32_t *g = p + n_pred;
    memcpy(p, pred, (size_t)n_pred * sizeof *p);
    memcpy(g, gold, (size_t)n_gold * sizeof *g);
    qsort(p, (size_t)n_pred, sizeof *p, cmp_id);
    qsort(g, (size_t)n_gold, sizeof *g, cmp_id);
    int common = 0;
    for (int i = 0, j = 0; i < n_pred && j < n_gold;) {
        if (p[i] == g[j]) common++, i++, j++;
        else if (p[i] < g[j]) i++;
        else j++;
    }
    free(p);
    if (!common) return 0.0;
    double precision = (double)common / n_pred, recall = (double)common / n_gold;
    return 2 * precision * recall / (precision + recall);
}

/* ---- probes ------------------------------------------------------------------------------ */

void xle_probe_results_free(xle_probe_result *r, int n) {
    for (int i = 0; r && i < n; i++) {
        free(r[i].argmax);
        free(r[i].greedy);
        memset(&r[i], 0, sizeof r[i]);
    }
}

/* One sequence of a pass: prompt + the first to - 1 draft tokens; logits are wanted at answer
 * positions [from, to) (to is n_answer, or more for an answer decoded past it). */
typedef struct pass_item {
    int probe;
    const int32_t *draft;
    int from, to;
} pass_item;

/* Row r of logits: index of the largest (lowest id on ties) and log p(gold) (gold < 0: past
 * the expected answer, no log p). */
static void read_row(const float *row, int V, int32_t gold, int32_t *argmax, double *logp) {
    int best = 0;
    float mx = row[0];
    for (int v = 1; v < V; v++)
        if (row[v] > mx) mx = row[v], best = v;
    *argmax = best;
    if (gold < 0) {
        *logp = 0;
        return;
    }
    double sum = 0;
    for (int v = 0; v < V; v++) sum += exp((double)row[v] - mx);
    *logp = (double)row[gold] - mx - log(sum);
}

/* Runs items[0..n) as packed batches within the limits; for each item, argmax_out[item][j] and
 * logp_out[item][j] for j in [from, to) (arrays indexed from 0 = answer position 0). */
static xle_status run_items(xle_model *m, const xle_probe *probes, const pass_item *items, int n,
                            int32_t **argmax_out, double **logp_out, xle_error *err) {
    const int V = xle_model_config(m)->vocab_size;
    size_t max_rows = PROBE_LOGIT_BYTES / ((size_t)V * sizeof(float));
    if (max_rows < 1) max_rows = 1;
    xle_status st = XLE_OK;
    int32_t *tokens = NULL;
    int *seq_start = NULL, *rows = NULL;
    float *logits = NULL;
    for (int first = 0; first < n && st == XLE_OK;) {
        /* Greedy packing in index order: the batches depend only on the items. */
        int last = first, n_tok = 0, n_rows = 0;
        while (last < n) {
            const xle_probe *p = &probes[items[last].probe];
            int len = p->n_prompt + items[last].to - 1, nr = items[last].to - items[last].from;
            if (last > first && (n_tok + len > PROBE_BATCH_TOKENS || (size_t)(n_rows + nr) > max_rows))
                break;
            n_tok += len, n_rows += nr, last++;
        }
        int n_seqs = last - first;
        int32_t *t2 = realloc(tokens, (size_t)n_tok * sizeof *tokens);
        if (t2) tokens = t2;
        int *s2 = realloc(seq_start, (size_t)(n_seqs + 1) * sizeof *seq_start);
        if (s2) seq_start = s2;
        int *r2 = realloc(rows, (size_t)n_rows * sizeof *rows);
        if (r2) rows = r2;
        float *l2 = realloc(logits, (size_t)n_rows * (size_t)V * sizeof *logits);
        if (l2) logits = l2;
        if (!t2 || !s2 || !r2 || !l2) {
            st = xle_fail(err, XLE_ERR_NOMEM, "evaluation: out of memory for a batch of %d tokens", n_tok);
            break;
        }
        int at = 0, r = 0;
        for (int i = first; i < last; i++) {
            const xle_probe *p = &probes[items[i].probe];
            seq_start[i - first] = at;
            memcpy(tokens + at, p->prompt, (size_t)p->n_prompt * sizeof *tokens);
            memcpy(tokens + at + p->n_prompt, items[i].draft, (size_t)(items[i].to - 1) * sizeof *tokens);
            for (int j = items[i].from; j < items[i].to; j++) rows[r++] = at + p->n_prompt - 1 + j;
            at += p->n_prompt + items[i].to - 1;
        }
        seq_start[n_seqs] = at;
        xle_batch b = {n_seqs, tokens, seq_start};
        xle_forward_opts fo = {0};
        fo.logit_rows = rows;
        fo.n_logit_rows = n_rows;
        if ((st = xle_forward(m, &b, &fo, logits, err)) != XLE_OK) break;
        /* rows in the same order as they were listed */
        int *row_item = malloc((size_t)n_rows * 2 * sizeof *row_item);
        if (!row_item) {
            st = xle_fail(err, XLE_ERR_NOMEM, "evaluation: out of memory");
            break;
        }
        r = 0;
        for (int i = first; i < last; i++)
            for (int j = items[i].from; j < items[i].to; j++)
                row_item[2 * r] = i, row_item[2 * r + 1] = j, r++;
        /* threads only when the rows are worth it (a small vocabulary is faster alone) */
#pragma omp parallel for schedule(static) if ((size_t)n_rows * (size_t)V > ((size_t)1 << 18))
        for (int k = 0; k < n_rows; k++) {
            int i = row_item[2 * k], j = row_item[2 * k + 1];
            const xle_probe *p = &probes[items[i].probe];
            read_row(logits + (size_t)k * V, V, j < p->n_answer ? p->answer[j] : -1, &argmax_out[i][j],
                     &logp_out[i][j]);
        }
        free(row_item);
        first = last;
    }
    free(tokens);
    free(seq_start);
    free(rows);
    free(logits);
    return st;
}

static xle_status check_probe(xle_model *m, const xle_probe *p, int i, xle_error *err) {
    const int V = xle_model_config(m)->vocab_size;
    if (!p->prompt || !p->answer || p->n_prompt < 1 || p->n_answer < 1)
        return xle_fail(err, XLE_ERR_ARG, "probe %d: empty prompt or answer", i);
    for (int k = 0; k < p->n_prompt; k++)
        if (p->prompt[k] < 0 || p->prompt[k] >= V)
            return xle_fail(err, XLE_ERR_ARG, "probe %d: prompt token %d outside the vocabulary", i, p->prompt[k]);
    for (int k = 0; k < p->n_answer; k++)
        if (p->answer[k] < 0 || p->answer[k] >= V)
            return xle_fail(err, XLE_ERR_ARG, "probe %d: answer token %d outside the vocabulary", i, p->answer[k]);
    if (p->n_prompt + p->n_answer - 1 > PROBE_BATCH_TOKENS)
        return xle_fail(err, XLE_ERR_ARG, "probe %d: %d tokens, more than %d", i,
                        p->n_prompt + p->n_answer - 1, PROBE_BATCH_TOKENS);
    return XLE_OK;
}

/* Per probe scratch for the passes. */
typedef struct probe_work {
    int32_t *argmax;   /* cap: argmax of the latest pass */
    double *logp;      /* cap */
    int32_t *draft;    /* cap: verified greedy prefix + guesses */
    int cap;           /* greedy ids decoded at most: n_answer, plus the extra ones */
    int want;          /* greedy ids wanted now: n_answer, then one past the latest verified */
    int verified;      /* draft[0..verified) are greedy tokens */
    int done;
    int final;         /* stopped at EOS or at cap */
} probe_work;

/* Whether probe i's greedy decoding is complete once draft[0..want) are verified: at n_answer
 * without extra tokens, at the cap, or when the ids so far hold a word end. */
static int greedy_complete(probe_work *w, const xle_probe *p, const xle_greedy_more *more) {
    if (w->verified == w->cap) {
        w->final = 1;
        return 1;
    }
    if (w->verified > p->n_answer && more->cut(more->ctx, w->draft, w->verified, p->n_answer) >= 0) return 1;
    w->want = w->verified + 1; /* one more token: the next pass reads the whole draft */
    return 0;
}

static xle_status probes_eval(xle_model *m, const xle_probe *probes, int n, int eos_id,
                              const xle_greedy_more *more, xle_probe_result *out, xle_error *err) {
    memset(out, 0, (size_t)(n > 0 ? n : 0) * sizeof *out);
    if (n <= 0) return XLE_OK;
    for (int i = 0; i < n; i++) {
        xle_status st = check_probe(m, &probes[i], i, err);
        if (st != XLE_OK) return st;
    }
    probe_work *w = calloc((size_t)n, sizeof *w);
    pass_item *items = malloc((size_t)n * sizeof *items);
    int32_t **am = malloc((size_t)n * sizeof *am);
    double **lp = malloc((size_t)n * sizeof *lp);
    xle_status st = XLE_OK;
    if (!w || !items || !am || !lp) {
        st = xle_fail(err, XLE_ERR_NOMEM, "evaluation: out of memory");
        goto done;
    }
    for (int i = 0; i < n && st == XLE_OK; i++) {
        const xle_probe *p = &probes[i];
        int na = p->n_answer, extra = more && more->max_extra > 0 && p->greedy ? more->max_extra : 0;
        if (extra > PROBE_BATCH_TOKENS - (p->n_prompt + na - 1)) extra = PROBE_BATCH_TOKENS - (p->n_prompt + na - 1);
        w[i].cap = na + extra;
        /* the token after the expected answer comes with the pass that verifies its last one */
        w[i].want = na + (extra > 0);
        w[i].argmax = calloc((size_t)w[i].cap, sizeof(int32_t));
        w[i].logp = calloc((size_t)w[i].cap, sizeof(double));
        w[i].draft = calloc((size_t)w[i].cap, sizeof(int32_t));
        if (!w[i].argmax || !w[i].logp || !w[i].draft)
            st = xle_fail(err, XLE_ERR_NOMEM, "evaluation: out of memory");
        else memcpy(w[i].draft, p->answer, (size_t)na * sizeof(int32_t));
    }
    if (st != XLE_OK) goto done;

    /* Teacher-forced pass: the draft is the gold answer (read whole when a token after it is
     * wanted). */
    for (int i = 0; i < n; i++) {
        items[i] = (pass_item){i, probes[i].answer, 0, w[i].want};
        am[i] = w[i].argmax;
        lp[i] = w[i].logp;
    }
    if ((st = run_items(m, probes, items, n, am, lp, err)) != XLE_OK) goto done;
    for (int i = 0; i < n; i++) {
        xle_probe_result *r = &out[i];
        const xle_probe *p = &probes[i];
        r->n_answer = p->n_answer;
        r->argmax = malloc((size_t)p->n_answer * sizeof(int32_t));
        if (!r->argmax) {
            st = xle_fail(err, XLE_ERR_NOMEM, "evaluation: out of memory");
            goto done;
        }
        memcpy(r->argmax, w[i].argmax, (size_t)p->n_answer * sizeof(int32_t));
        double nll = 0;
        for (int j = 0; j < p->n_answer; j++) {
            r->n_correct += w[i].argmax[j] == p->answer[j];
            nll -= w[i].logp[j];
        }
        r->mean_nll = nll / p->n_answer;
        w[i].done = !p->greedy;
    }

    /* Greedy decoding: verify drafts until every greedy probe is complete. */
    for (;;) {
        int n_items = 0;
        for (int i = 0; i < n; i++) {
            if (w[i].done) continue;
            int j = w[i].verified;
            /* argmax[j] is greedy at j: the draft before j is greedy. Accept while it agrees. */
            while (j < w[i].want) {
                int32_t g = w[i].argmax[j];
                if (g == eos_id) { /* the greedy answer ends here */
                    w[i].done = w[i].final = 1;
                    break;
                }
                int agrees = w[i].draft[j] == g;
                w[i].draft[j] = g;
                j++;
                if (!agrees) break;
            }
            w[i].verified = j;
            if (!w[i].done && j == w[i].want)
                w[i].done = w[i].want == probes[i].n_answer ? 1 : greedy_complete(&w[i], &probes[i], more);
            if (w[i].done) continue;
            /* the rest of the argmax row is the next draft's guess */
            memcpy(w[i].draft + j, w[i].argmax + j, (size_t)(w[i].want - j) * sizeof(int32_t));
            items[n_items] = (pass_item){i, w[i].draft, j, w[i].want};
            am[n_items] = w[i].argmax;
            lp[n_items] = w[i].logp;
            n_items++;
        }
        if (!n_items) break;
        if ((st = run_items(m, probes, items, n_items, am, lp, err)) != XLE_OK) goto done;
    }
    for (int i = 0; i < n; i++) {
        if (!probes[i].greedy) continue;
        int nv = w[i].verified, ng = nv < probes[i].n_answer ? nv : probes[i].n_answer;
        out[i].greedy = malloc((size_t)(ng > 0 ? ng : 1) * sizeof(int32_t));
        if (!out[i].greedy) {
            st = xle_fail(err, XLE_ERR_NOMEM, "evaluation: out of memory");
            goto done;
        }
        if (ng) memcpy(out[i].greedy, w[i].draft, (size_t)ng * sizeof(int32_t));
        out[i].n_greedy = ng;
        if (!more || more->max_extra <= 0) continue;
        more->ids[i] = malloc((size_t)(nv > 0 ? nv : 1) * sizeof(int32_t));
        if (!more->ids[i]) {
            st = xle_fail(err, XLE_ERR_NOMEM, "evaluation: out of memory");
            goto done;
        }
        if (nv) memcpy(more->ids[i], w[i].draft, (size_t)nv * sizeof(int32_t));
        more->n_ids[i] = nv;
        more->final[i] = w[i].final || w[i].cap == probes[i].n_answer;
    }
done:
    for (int i = 0; w && i < n; i++) {
        free(w[i].argmax);
        free(w[i].logp);
        free(w[i].draft);
    }
    free(w);
    free(items);
    free(am);
    free(lp);
    if (st != XLE_OK) {
        xle_probe_results_free(out, n);
        for (int i = 0; more && more->max_extra > 0 && i < n; i++) {
            free(more->ids[i]);
            more->ids[i] = NULL;
            more->n_ids[i] = 0;
        }
    }
    return st;
}

xle_status xle_probes_eval(xle_model *m, const xle_probe *probes, int n, int eos_id,
                           xle_probe_result *out, xle_error *err) {
    return probes_eval(m, probes, n, eos_id, NULL, out, err);
}

xle_status xle_probes_eval_more(xle_model *m, const xle_probe *probes, int n, int eos_id,
                                const xle_greedy_more *more, xle_probe_result *out, xle_error *err) {
    if (more && more->max_extra > 0) {
        if (!more->cut || !more->ids || !more->n_ids || !more->final)
            return xle_fail(err, XLE_ERR_ARG, "evaluation: greedy decoding past the answer needs cut, ids, "
                            "n_ids and final");
        for (int i = 0; i < n; i++) more->ids[i] = NULL, more->n_ids[i] = 0, more->final[i] = 0;
    }
    return probes_eval(m, probes, n, eos_id, more, out, err);
}
