/*
 * delta_opt.c: the optimisation at the heart of ROME (v*) and MEMIT (z): a vector delta added
 * to one layer's activation at the subject's last token, trained with Adam so the model
 * predicts the new target, with a KL term that keeps "<subject> is a" stable and a weight
 * decay relative to the original activation. Follows editing.md §2.2 and §3.1 exactly:
 * early stop at loss < 5e-2, no step on the last iteration, clamp after each step.
 * Only what changes between steps is computed in each step: the layers above the edited one, at
 * the rows from each prompt's fact token on, with logits at the scored rows (model/partial.h).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "edit/edit_internal.h"
#include "model/partial.h"

typedef struct read_ctx {
    const int *rows;   /* batch row of each prompt's fact token */
    int n;
    float *out;
} read_ctx;

static int read_rows_hook(void *user, xle_point point, int layer, float *act, int n_tokens, int width) {
    (void)point, (void)layer, (void)n_tokens;
    read_ctx *c = user;
    for (int i = 0; i < c->n; i++)
        memcpy(c->out + (int64_t)i * width, act + (int64_t)c->rows[i] * width, (size_t)width * sizeof(float));
    return 1; /* nothing after this point is needed */
}

/* Packs prompts (optionally each followed by extra ids) into one batch. */
typedef struct packed {
    int32_t *ids;
    int *start;
    int n_seqs, n_tokens;
} packed;

static void packed_free(packed *p) {
    free(p->ids);
    free(p->start);
}

static xle_status pack_prompts(packed *p, const xle_edit_prompt *prompts, int n, const int32_t *extra,
                               int n_extra, const xle_edit_prompt *last, xle_error *err) {
    int total = 0, n_seqs = n + (last ? 1 : 0);
    for (int i = 0; i < n; i++) total += prompts[i].n + n_extra;
    if (last) total += last->n;
    p->ids = malloc((size_t)total * sizeof(int32_t));
    p->start = malloc((size_t)(n_seqs + 1) * sizeof(int));
    if (!p->ids || !p->start) {
        packed_free(p);
        return xle_fail(err, XLE_ERR_NOMEM, "edit: out of memory");
    }
    int at = 0;
    for (int i = 0; i < n_seqs; i++) {
        const xle_edit_prompt *pr = i < n ? &prompts[i] : last;
        if (pr->n <= 0 || pr->fact_idx < 0 || pr->fact_idx >= pr->n) {
            packed_free(p);
            return xle_fail(err, XLE_ERR_ARG, "edit: prompt %d: fact token %d outside its %d tokens", i, pr->fact_idx, pr->n);
        }
        p->start[i] = at;
        memcpy(p->ids + at, pr->ids, (size_t)pr->n * sizeof(int32_t));
        at += pr->n;
        if (i < n && n_extra > 0) {
            memcpy(p->ids + at, extra, (size_t)n_extra * sizeof(int32_t));
            at += n_extra;
        }
    }
    p->start[n_seqs] = at;
    p->n_seqs = n_seqs;
    p->n_tokens = at;
    return XLE_OK;
}

xle_status xle_edit_read_point(xle_model *m, xle_point point, int layer,
                               const xle_edit_prompt *prompts, int n, float *out, xle_error *err) {
    packed p = {0};
    xle_status st = pack_prompts(&p, prompts, n, NULL, 0, NULL, err);
    if (st != XLE_OK) return st;
    int *rows = malloc((size_t)n * sizeof(int));
    if (!rows) {
        packed_free(&p);
        return xle_fail(err, XLE_ERR_NOMEM, "edit: out of memory");
    }
    for (int i = 0; i < n; i++) rows[i] = p.start[i] + prompts[i].fact_idx;
    read_ctx ctx = {rows, n, out};
    xle_hook hook = {point, layer, read_rows_hook, &ctx};
    xle_batch b = {p.n_seqs, p.ids, p.start};
    xle_forward_opts o = {.hooks = &hook, .n_hooks = 1};
    st = xle_forward(m, &b, &o, NULL, err);
    free(rows);
    packed_free(&p);
    return st;
}

/* Adds delta at the fact rows; on the first call records the unedited activation. */
typedef struct add_ctx {
    const int *rows;
    int n;
    const float *delta;
    float *init;
    int record_init;
} add_ctx;

static int add_delta_hook(void *user, xle_point point, int layer, float *act, int n_tokens, int width) {
    (void)point, (void)layer, (void)n_tokens;
    add_ctx *c = user;
    if (c->record_init) {
        memcpy(c->init, act + (int64_t)c->rows[0] * width, (size_t)width * sizeof(float));
        c->record_init = 0;
    }
    for (int i = 0; i < c->n; i++) {
        float *row = act + (int64_t)c->rows[i] * width;
        for (int j = 0; j < width; j++) row[j] += c->delta[j];
    }
    return 0;
}

static double norm2(const float *v, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)v[i] * v[i];
    return sqrt(s);
}

/* log_softmax of one row into out (double). */
static void log_softmax(const float *z, int V, double *out) {
    double mx = -INFINITY;
    for (int i = 0; i < V; i++) mx = fmax(mx, z[i]);
    double s = 0;
    for (int i = 0; i < V; i++) s += exp((double)z[i] - mx);
    double lse = mx + log(s);
    for (int i = 0; i < V; i++) out[i] = (double)z[i] - lse;
}

/* The rows of the delta problem in the packed batch: fact rows (np + 1, KL last) and the
 * logit rows (nt per prompt, then the KL row). */
static xle_status delta_rows(const packed *p, const xle_edit_request_tok *req, int **fact_rows,
                             int **logit_rows, xle_error *err) {
    const int np = req->n_prompts, nt = req->n_target;
    *fact_rows = malloc((size_t)(np + 1) * sizeof(int));
    *logit_rows = malloc((size_t)(np * nt + 1) * sizeof(int));
    if (!*fact_rows || !*logit_rows) return xle_fail(err, XLE_ERR_NOMEM, "edit: out of memory");
    for (int i = 0; i < np; i++) {
        (*fact_rows)[i] = p->start[i] + req->prompts[i].fact_idx;
        /* logits at position (prompt length - 1 + t) predict target[t] */
        for (int t = 0; t < nt; t++) (*logit_rows)[i * nt + t] = p->start[i] + req->prompts[i].n - 1 + t;
    }
    (*fact_rows)[np] = p->start[np] + req->kl.fact_idx;
    (*logit_rows)[np * nt] = (*fact_rows)[np];
    return XLE_OK;
}

/* Records the activation at one row (the unedited value v_init / h_init). */
typedef struct record_ctx {
    int row;
    float *out;
} record_ctx;

static int record_row_hook(void *user, xle_point point, int layer, float *act, int n_tokens, int width) {
    (void)point, (void)layer, (void)n_tokens;
    record_ctx *c = user;
    memcpy(c->out, act + (int64_t)c->row * width, (size_t)width * sizeof(float));
    return 0;
}

/* The two ways of running the model in the optimisation. Fast (the default): the layers up to
 * the edited one and every row before a fact token are computed once (model/partial.h); each
 * step runs the changing rows of the layers above. Full: every step runs the whole batch
 * through every layer with the delta added by a hook, and the backward pass goes down to the
 * edited layer; kept as the plain form the fast one is tested against. */
typedef struct delta_pass {
    int full;
    /* fast */
    xle_upper *upper;
    float *d_var;
    /* full */
    add_ctx actx;
    xle_hook hook;
    xle_batch batch;
    xle_forward_opts opts;
    xle_acts *acts;
    float *dblock;
} delta_pass;

static void delta_pass_free(delta_pass *dp) {
    xle_upper_free(dp->upper);
    free(dp->d_var);
    xle_acts_free(dp->acts);
    free(dp->dblock);
}

static xle_status delta_pass_init(delta_pass *dp, int full, xle_model *m, const packed *p,
                                  const xle_edit_request_tok *req, xle_point point, int layer,
                                  const int *fact_rows, const int *logit_rows, int n_rows,
                                  float *init, const float *delta, xle_error *err) {
    const int d = xle_model_config(m)->dim, np = req->n_prompts;
    memset(dp, 0, sizeof *dp);
    dp->full = full;
    dp->batch = (xle_batch){p->n_seqs, p->ids, p->start};
    if (full) {
        dp->actx = (add_ctx){fact_rows, np + 1, delta, init, 1};
        dp->hook = (xle_hook){point, layer, add_delta_hook, &dp->actx};
        dp->acts = xle_acts_new();
        dp->dblock = malloc((size_t)p->n_tokens * (size_t)d * sizeof(float));
        if (!dp->acts || !dp->dblock) return xle_fail(err, XLE_ERR_NOMEM, "edit: out of memory");
        dp->opts = (xle_forward_opts){.hooks = &dp->hook, .n_hooks = 1, .acts = dp->acts,
                                      .logit_rows = logit_rows, .n_logit_rows = n_rows,
                                      .keep_from_layer = layer};
        return XLE_OK;
    }
    /* Rows before each sequence's fact token never see the delta (causal attention). */
    int *first_var = malloc((size_t)(np + 1) * sizeof(int));
    if (!first_var) return xle_fail(err, XLE_ERR_NOMEM, "edit: out of memory");
    for (int i = 0; i <= np; i++) first_var[i] = fact_rows[i] - p->start[i];
    record_ctx rec = {fact_rows[0], init};
    xle_hook h = {point, layer, record_row_hook, &rec};
    xle_status st = xle_upper_new(m, &dp->batch, layer, first_var, logit_rows, n_rows, &h, 1,
                                  &dp->upper, err);
    free(first_var);
    if (st != XLE_OK) return st;
    dp->d_var = malloc((size_t)xle_upper_n_var(dp->upper) * (size_t)d * sizeof(float));
    if (!dp->d_var) return xle_fail(err, XLE_ERR_NOMEM, "edit: out of memory");
    return XLE_OK;
}

static xle_status delta_pass_forward(delta_pass *dp, xle_model *m, const int *fact_rows, int n_fact,
                                     const float *delta, float *logits, xle_error *err) {
    if (dp->full) return xle_forward(m, &dp->batch, &dp->opts, logits, err);
    return xle_upper_forward(dp->upper, fact_rows, n_fact, delta, logits, err);
}

/* grad[d] = Σ over the fact rows of dL/d(activation) there. */
static xle_status delta_pass_backward(delta_pass *dp, xle_model *m, const float *dlogits, int layer,
                                      const int *fact_rows, int n_fact, double *grad, xle_error *err) {
    const int d = xle_model_config(m)->dim;
    const float *src;
    if (dp->full) {
        xle_status st = xle_backward(m, dp->acts, dlogits, layer, dp->dblock, NULL, err);
        if (st != XLE_OK) return st;
        src = dp->dblock;
    } else {
        xle_status st = xle_upper_backward(dp->upper, dlogits, dp->d_var, err);
        if (st != XLE_OK) return st;
        src = dp->d_var;
    }
    for (int j = 0; j < d; j++) grad[j] = 0;
    for (int i = 0; i < n_fact; i++) {
        const int r = dp->full ? fact_rows[i] : xle_upper_var_index(dp->upper, fact_rows[i]);
        for (int j = 0; j < d; j++) grad[j] += src[(int64_t)r * d + j];
    }
    return XLE_OK;
}

static xle_status optimize_delta(xle_model *m, const xle_edit_hparams *hp,
                                 const xle_edit_request_tok *req, xle_point point, int layer,
                                 int full, float *init, float *delta, double *final_loss,
                                 int *steps, xle_error *err) {
    const xle_config *c = xle_model_config(m);
    const int d = c->dim, V = c->vocab_size, nt = req->n_target, np = req->n_prompts;
    if (nt <= 0 || np <= 0) return xle_fail(err, XLE_ERR_ARG, "edit: empty target or no prompts");
    if (point != XLE_POINT_MLP_OUT && point != XLE_POINT_BLOCK_OUT)
        return xle_fail(err, XLE_ERR_ARG, "edit: the delta goes to an MLP or block output");
    packed p = {0};
    /* Each rewriting row is prompt + target[:-1]; the KL row is last. */
    xle_status st = pack_prompts(&p, req->prompts, np, req->target, nt - 1, &req->kl, err);
    if (st != XLE_OK) return st;
    const int n_rows = np * nt + 1; /* logits: nt target positions per prompt + the KL row */
    int *logit_rows = NULL, *fact_rows = NULL;
    delta_pass dp = {0};
    float *logits = malloc((size_t)n_rows * (size_t)V * sizeof(float));
    float *dlogits = malloc((size_t)n_rows * (size_t)V * sizeof(float));
    double *lp = malloc((size_t)V * sizeof(double)), *kl0 = malloc((size_t)V * sizeof(double));
    double *adam_m = calloc((size_t)d, sizeof(double)), *adam_v = calloc((size_t)d, sizeof(double));
    double *gsum = malloc((size_t)d * sizeof(double));
    float *grad = malloc((size_t)d * sizeof(float));
    if (!logits || !dlogits || !lp || !kl0 || !adam_m || !adam_v || !gsum || !grad) {
        st = xle_fail(err, XLE_ERR_NOMEM, "edit: out of memory");
        goto done;
    }
    st = delta_rows(&p, req, &fact_rows, &logit_rows, err);
    if (st != XLE_OK) goto done;
    memset(delta, 0, (size_t)d * sizeof(float));
    st = delta_pass_init(&dp, full, m, &p, req, point, layer, fact_rows, logit_rows, n_rows, init,
                         delta, err);
    if (st != XLE_OK) goto done;

    double init_norm = 0, loss = 0;
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    int it;
    for (it = 0; it < hp->v_num_grad_steps; it++) {
        st = delta_pass_forward(&dp, m, fact_rows, np + 1, delta, logits, err);
        if (st != XLE_OK) goto done;
        if (it == 0) {
            init_norm = norm2(init, d);
            log_softmax(logits + (size_t)np * nt * V, V, kl0);
        }
        /* NLL: mean over prompts of the mean over target tokens. */
        double nll = 0;
        for (int i = 0; i < np; i++)
            for (int t = 0; t < nt; t++) {
                const float *z = logits + (size_t)(i * nt + t) * V;
                float *dz = dlogits + (size_t)(i * nt + t) * V;
                log_softmax(z, V, lp);
                int32_t y = req->target[t];
                nll -= lp[y] / (nt * np);
                for (int v = 0; v < V; v++) dz[v] = (float)(exp(lp[v]) / (nt * np));
                dz[y] -= (float)(1.0 / (nt * np));
            }
        /* KL(current || initial) at the KL row: d/dz = p (a - KL), a = log p - log p0. */
        double kl = 0;
        {
            const float *z = logits + (size_t)np * nt * V;
            float *dz = dlogits + (size_t)np * nt * V;
            log_softmax(z, V, lp);
            for (int v = 0; v < V; v++) kl += exp(lp[v]) * (lp[v] - kl0[v]);
            for (int v = 0; v < V; v++)
                dz[v] = (float)(hp->kl_factor * exp(lp[v]) * ((lp[v] - kl0[v]) - kl));
        }
        double dn = norm2(delta, d);
        double wd = hp->v_weight_decay * dn / (init_norm * init_norm);
        loss = nll + hp->kl_factor * kl + wd;
        if (!isfinite(loss)) {
            st = xle_fail(err, XLE_ERR_NUMERIC, "edit: the loss became %g at step %d", loss, it);
            goto done;
        }
        if (loss < 5e-2) break;
        if (it == hp->v_num_grad_steps - 1) break;
        st = delta_pass_backward(&dp, m, dlogits, layer, fact_rows, np + 1, gsum, err);
        if (st != XLE_OK) goto done;
        for (int j = 0; j < d; j++) {
            double g = gsum[j];
            if (dn > 0) g += hp->v_weight_decay * delta[j] / (dn * init_norm * init_norm);
            grad[j] = (float)g;
        }
        /* Adam (PyTorch's defaults), then project delta into the norm ball. */
        int step = it + 1;
        double bc1 = 1 - pow(b1, step), bc2 = 1 - pow(b2, step);
        for (int j = 0; j < d; j++) {
            adam_m[j] = b1 * adam_m[j] + (1 - b1) * grad[j];
            adam_v[j] = b2 * adam_v[j] + (1 - b2) * (double)grad[j] * grad[j];
            double denom = sqrt(adam_v[j]) / sqrt(bc2) + eps;
            delta[j] -= (float)(hp->v_lr / bc1 * adam_m[j] / denom);
        }
        double max_norm = hp->clamp_norm_factor * init_norm, nn = norm2(delta, d);
        if (nn > max_norm)
            for (int j = 0; j < d; j++) delta[j] = (float)(delta[j] * (max_norm / nn));
    }
    *final_loss = loss;
    *steps = it;
done:
    delta_pass_free(&dp);
    free(logit_rows), free(fact_rows), free(logits), free(dlogits);
    free(lp), free(kl0), free(adam_m), free(adam_v), free(gsum), free(grad);
    packed_free(&p);
    return st;
}

xle_status xle_edit_optimize_delta(xle_model *m, const xle_edit_hparams *hp,
                                   const xle_edit_request_tok *req, xle_point point, int layer,
                                   float *init, float *delta, double *final_loss, int *steps,
                                   xle_error *err) {
    return optimize_delta(m, hp, req, point, layer, 0, init, delta, final_loss, steps, err);
}

xle_status xle_edit_optimize_delta_full(xle_model *m, const xle_edit_hparams *hp,
                                        const xle_edit_request_tok *req, xle_point point, int layer,
                                        float *init, float *delta, double *final_loss, int *steps,
                                        xle_error *err) {
    return optimize_delta(m, hp, req, point, layer, 1, init, delta, final_loss, steps, err);
}
