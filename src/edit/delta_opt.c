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

#include "edit/delta_opt.h"
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

/* Adds each fact row's vector (add [n x d]); on the first call records the unedited activation
 * at the rows listed in init_rows. */
typedef struct add_ctx {
    const int *rows;
    int n;
    const float *add;
    const int *init_rows;
    int n_init;
    float *init;
    int record_init;
} add_ctx;

static int add_delta_hook(void *user, xle_point point, int layer, float *act, int n_tokens, int width) {
    (void)point, (void)layer, (void)n_tokens;
    add_ctx *c = user;
    if (c->record_init) {
        for (int r = 0; r < c->n_init; r++)
            memcpy(c->init + (int64_t)r * width, act + (int64_t)c->init_rows[r] * width, (size_t)width * sizeof(float));
        c->record_init = 0;
    }
    for (int i = 0; i < c->n; i++) {
        float *row = act + (int64_t)c->rows[i] * width;
        const float *a = c->add + (int64_t)i * width;
        for (int j = 0; j < width; j++) row[j] += a[j];
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

/* All requests in one packed batch: for request r, its prompts (each + target[:-1]) then its
 * KL prompt. Fact rows: np_r + 1 per request (KL last) from fact_off[r]; logit rows: nt_r per
 * prompt then the KL row, from logit_off[r]. */
typedef struct delta_layout {
    packed p;
    int *fact_rows, *fact_off, *logit_rows, *logit_off, *fact_req;
    int n_fact, n_logit;
} delta_layout;

static void layout_free(delta_layout *L) {
    packed_free(&L->p);
    free(L->fact_rows), free(L->fact_off), free(L->logit_rows), free(L->logit_off), free(L->fact_req);
}

static xle_status layout_build(delta_layout *L, const xle_edit_request_tok *reqs, int n, xle_error *err) {
    memset(L, 0, sizeof *L);
    int n_seqs = 0, total = 0, n_logit = 0;
    for (int r = 0; r < n; r++) {
        const xle_edit_request_tok *q = &reqs[r];
        if (q->n_target <= 0 || q->n_prompts <= 0) return xle_fail(err, XLE_ERR_ARG, "edit: empty target or no prompts");
        n_seqs += q->n_prompts + 1;
        for (int i = 0; i < q->n_prompts; i++) total += q->prompts[i].n + q->n_target - 1;
        total += q->kl.n;
        n_logit += q->n_prompts * q->n_target + 1;
    }
    packed *p = &L->p;
    p->ids = malloc((size_t)total * sizeof(int32_t));
    p->start = malloc((size_t)(n_seqs + 1) * sizeof(int));
    L->fact_rows = malloc((size_t)n_seqs * sizeof(int));
    L->fact_req = malloc((size_t)n_seqs * sizeof(int));
    L->fact_off = malloc((size_t)(n + 1) * sizeof(int));
    L->logit_rows = malloc((size_t)n_logit * sizeof(int));
    L->logit_off = malloc((size_t)(n + 1) * sizeof(int));
    if (!p->ids || !p->start || !L->fact_rows || !L->fact_req || !L->fact_off || !L->logit_rows || !L->logit_off) {
        layout_free(L);
        return xle_fail(err, XLE_ERR_NOMEM, "edit: out of memory");
    }
    int at = 0, s = 0, lr = 0;
    for (int r = 0; r < n; r++) {
        const xle_edit_request_tok *q = &reqs[r];
        L->fact_off[r] = s, L->logit_off[r] = lr;
        for (int i = 0; i <= q->n_prompts; i++, s++) {
            const xle_edit_prompt *pr = i < q->n_prompts ? &q->prompts[i] : &q->kl;
            if (pr->n <= 0 || pr->fact_idx < 0 || pr->fact_idx >= pr->n) {
                layout_free(L);
                return xle_fail(err, XLE_ERR_ARG, "edit: prompt %d: fact token %d outside its %d tokens", i, pr->fact_idx, pr->n);
            }
            p->start[s] = at;
            L->fact_rows[s] = at + pr->fact_idx;
            L->fact_req[s] = r;
            memcpy(p->ids + at, pr->ids, (size_t)pr->n * sizeof(int32_t));
            at += pr->n;
            if (i < q->n_prompts) {
                /* logits at position (prompt length - 1 + t) predict target[t] */
                for (int t = 0; t < q->n_target; t++) L->logit_rows[lr++] = at - 1 + t;
                memcpy(p->ids + at, q->target, (size_t)(q->n_target - 1) * sizeof(int32_t));
                at += q->n_target - 1;
            }
        }
        L->logit_rows[lr++] = L->fact_rows[s - 1]; /* the KL row */
    }
    L->fact_off[n] = s, L->logit_off[n] = lr;
    p->start[n_seqs] = at;
    p->n_seqs = n_seqs, p->n_tokens = at;
    L->n_fact = s, L->n_logit = lr;
    return XLE_OK;
}

/* Records the activation at some rows (the unedited value v_init / h_init of each request). */
typedef struct record_ctx {
    const int *rows;
    int n;
    float *out;
} record_ctx;

static int record_rows_hook(void *user, xle_point point, int layer, float *act, int n_tokens, int width) {
    (void)point, (void)layer, (void)n_tokens;
    record_ctx *c = user;
    for (int i = 0; i < c->n; i++)
        memcpy(c->out + (int64_t)i * width, act + (int64_t)c->rows[i] * width, (size_t)width * sizeof(float));
    return 0;
}

/* The two ways of running the model in the optimisation. Fast (the default): the layers up to
 * the edited one and every row before a fact token are computed once (model/partial.h); each
 * step runs the changing rows of the layers above. Full: every step runs the whole batch
 * through every layer with the deltas added by a hook, and the backward pass goes down to the
 * edited layer; kept as the plain form the fast one is tested against. */
typedef struct delta_pass {
    int full;
    const delta_layout *L;
    float *add;        /* [n_fact x d]: each fact row's request's delta */
    int *init_rows;    /* the bare prompt's fact row of each request */
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
    free(dp->add), free(dp->init_rows);
    xle_upper_free(dp->upper);
    free(dp->d_var);
    xle_acts_free(dp->acts);
    free(dp->dblock);
}

static xle_status delta_pass_init(delta_pass *dp, int full, xle_model *m, const delta_layout *L,
                                  int n_reqs, xle_point point, int layer, float *init, xle_error *err) {
    const int d = xle_model_config(m)->dim;
    const packed *p = &L->p;
    memset(dp, 0, sizeof *dp);
    dp->full = full;
    dp->L = L;
    dp->batch = (xle_batch){p->n_seqs, p->ids, p->start};
    dp->add = calloc((size_t)L->n_fact * (size_t)d, sizeof(float));
    dp->init_rows = malloc((size_t)n_reqs * sizeof(int));
    if (!dp->add || !dp->init_rows) return xle_fail(err, XLE_ERR_NOMEM, "edit: out of memory");
    for (int r = 0; r < n_reqs; r++) dp->init_rows[r] = L->fact_rows[L->fact_off[r]];
    if (full) {
        dp->actx = (add_ctx){L->fact_rows, L->n_fact, dp->add, dp->init_rows, n_reqs, init, 1};
        dp->hook = (xle_hook){point, layer, add_delta_hook, &dp->actx};
        dp->acts = xle_acts_new();
        dp->dblock = malloc((size_t)p->n_tokens * (size_t)d * sizeof(float));
        if (!dp->acts || !dp->dblock) return xle_fail(err, XLE_ERR_NOMEM, "edit: out of memory");
        dp->opts = (xle_forward_opts){.hooks = &dp->hook, .n_hooks = 1, .acts = dp->acts,
                                      .logit_rows = L->logit_rows, .n_logit_rows = L->n_logit,
                                      .keep_from_layer = layer};
        return XLE_OK;
    }
    /* Rows before each sequence's fact token never see the delta (causal attention). */
    int *first_var = malloc((size_t)p->n_seqs * sizeof(int));
    if (!first_var) return xle_fail(err, XLE_ERR_NOMEM, "edit: out of memory");
    for (int s = 0; s < p->n_seqs; s++) first_var[s] = L->fact_rows[s] - p->start[s];
    record_ctx rec = {dp->init_rows, n_reqs, init};
    xle_hook h = {point, layer, record_rows_hook, &rec};
    xle_status st = xle_upper_new(m, &dp->batch, layer, first_var, L->logit_rows, L->n_logit, &h, 1,
                                  &dp->upper, err);
    free(first_var);
    if (st != XLE_OK) return st;
    dp->d_var = malloc((size_t)xle_upper_n_var(dp->upper) * (size_t)d * sizeof(float));
    if (!dp->d_var) return xle_fail(err, XLE_ERR_NOMEM, "edit: out of memory");
    return XLE_OK;
}

static xle_status delta_pass_forward(delta_pass *dp, xle_model *m, const float *delta, float *logits,
                                     xle_error *err) {
    const int d = xle_model_config(m)->dim;
    for (int i = 0; i < dp->L->n_fact; i++)
        memcpy(dp->add + (int64_t)i * d, delta + (int64_t)dp->L->fact_req[i] * d, (size_t)d * sizeof(float));
    if (dp->full) return xle_forward(m, &dp->batch, &dp->opts, logits, err);
    return xle_upper_forward(dp->upper, dp->L->fact_rows, dp->L->n_fact, dp->add, logits, err);
}

/* grad[n_reqs x d]: for each request, Σ over its fact rows of dL/d(activation) there. */
static xle_status delta_pass_backward(delta_pass *dp, xle_model *m, const float *dlogits, int layer,
                                      int n_reqs, double *grad, xle_error *err) {
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
    memset(grad, 0, (size_t)n_reqs * (size_t)d * sizeof(double));
    for (int i = 0; i < dp->L->n_fact; i++) {
        const int row = dp->L->fact_rows[i];
        const int r = dp->full ? row : xle_upper_var_index(dp->upper, row);
        double *g = grad + (int64_t)dp->L->fact_req[i] * d;
        for (int j = 0; j < d; j++) g[j] += src[(int64_t)r * d + j];
    }
    return XLE_OK;
}

/* NLL + KL of request q from its logits (nt per prompt, then the KL row); writes dlogits.
 * kl0 is the KL row's initial log-distribution (filled when first). */
static double request_loss(const xle_edit_request_tok *q, const xle_edit_hparams *hp, int V,
                           const float *logits, float *dlogits, double *kl0, int first,
                           double *lp, double *kl_out) {
    const int np = q->n_prompts, nt = q->n_target;
    if (first) log_softmax(logits + (size_t)np * nt * V, V, kl0);
    /* NLL: mean over prompts of the mean over target tokens. */
    double nll = 0;
    for (int i = 0; i < np; i++)
        for (int t = 0; t < nt; t++) {
            const float *z = logits + (size_t)(i * nt + t) * V;
            float *dz = dlogits + (size_t)(i * nt + t) * V;
            log_softmax(z, V, lp);
            int32_t y = q->target[t];
            nll -= lp[y] / (nt * np);
            for (int v = 0; v < V; v++) dz[v] = (float)(exp(lp[v]) / (nt * np));
            dz[y] -= (float)(1.0 / (nt * np));
        }
    /* KL(current || initial) at the KL row: d/dz = p (a - KL), a = log p - log p0. */
    double kl = 0;
    const float *z = logits + (size_t)np * nt * V;
    float *dz = dlogits + (size_t)np * nt * V;
    log_softmax(z, V, lp);
    for (int v = 0; v < V; v++) kl += exp(lp[v]) * (lp[v] - kl0[v]);
    for (int v = 0; v < V; v++) dz[v] = (float)(hp->kl_factor * exp(lp[v]) * ((lp[v] - kl0[v]) - kl));
    *kl_out = kl;
    return nll;
}

/* The optimisation of n independent requests at once: their prompts share one packed batch
 * (sequences never interact), each request has its own delta, Adam state and early stop, so
 * each result is what optimising it alone gives. */
static xle_status optimize_deltas(xle_model *m, const xle_edit_hparams *hp,
                                  const xle_edit_request_tok *reqs, int n, xle_point point,
                                  int layer, int full, float *init, float *delta,
                                  double *final_loss, int *steps, xle_error *err) {
    const xle_config *c = xle_model_config(m);
    const int d = c->dim, V = c->vocab_size;
    if (n <= 0) return xle_fail(err, XLE_ERR_ARG, "edit: no requests");
    if (point != XLE_POINT_MLP_OUT && point != XLE_POINT_BLOCK_OUT)
        return xle_fail(err, XLE_ERR_ARG, "edit: the delta goes to an MLP or block output");
    delta_layout L;
    xle_status st = layout_build(&L, reqs, n, err);
    if (st != XLE_OK) return st;
    delta_pass dp = {0};
    float *logits = malloc((size_t)L.n_logit * (size_t)V * sizeof(float));
    float *dlogits = calloc((size_t)L.n_logit * (size_t)V, sizeof(float));
    double *lp = malloc((size_t)V * sizeof(double)), *kl0 = malloc((size_t)n * V * sizeof(double));
    double *adam_m = calloc((size_t)n * d, sizeof(double)), *adam_v = calloc((size_t)n * d, sizeof(double));
    double *gsum = malloc((size_t)n * d * sizeof(double)), *init_norm = calloc((size_t)n, sizeof(double));
    int *active = malloc((size_t)n * sizeof(int));
    if (!logits || !dlogits || !lp || !kl0 || !adam_m || !adam_v || !gsum || !init_norm || !active) {
        st = xle_fail(err, XLE_ERR_NOMEM, "edit: out of memory");
        goto done;
    }
    memset(delta, 0, (size_t)n * d * sizeof(float));
    for (int r = 0; r < n; r++) active[r] = 1, final_loss[r] = 0, steps[r] = 0;
    st = delta_pass_init(&dp, full, m, &L, n, point, layer, init, err);
    if (st != XLE_OK) goto done;

    const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    int n_active = n;
    for (int it = 0; it < hp->v_num_grad_steps && n_active > 0; it++) {
        st = delta_pass_forward(&dp, m, delta, logits, err);
        if (st != XLE_OK) goto done;
        for (int r = 0; r < n; r++) {
            if (!active[r]) continue;
            float *dr = delta + (int64_t)r * d;
            const size_t lo = (size_t)L.logit_off[r] * V;
            if (it == 0) init_norm[r] = norm2(init + (int64_t)r * d, d);
            double kl;
            double nll = request_loss(&reqs[r], hp, V, logits + lo, dlogits + lo, kl0 + (size_t)r * V, it == 0, lp, &kl);
            double dn = norm2(dr, d);
            double wd = hp->v_weight_decay * dn / (init_norm[r] * init_norm[r]);
            double loss = nll + hp->kl_factor * kl + wd;
            if (!isfinite(loss)) {
                st = xle_fail(err, XLE_ERR_NUMERIC, "edit: the loss became %g at step %d", loss, it);
                goto done;
            }
            final_loss[r] = loss, steps[r] = it;
            /* Early stop; the last iteration takes no step. */
            if (loss < 5e-2 || it == hp->v_num_grad_steps - 1) {
                active[r] = 0, n_active--;
                memset(dlogits + lo, 0, (size_t)(L.logit_off[r + 1] - L.logit_off[r]) * V * sizeof(float));
            }
        }
        if (n_active == 0) break;
        st = delta_pass_backward(&dp, m, dlogits, layer, n, gsum, err);
        if (st != XLE_OK) goto done;
        for (int r = 0; r < n; r++) {
            if (!active[r]) continue;
            float *dr = delta + (int64_t)r * d;
            const double *gs = gsum + (int64_t)r * d, in2 = init_norm[r] * init_norm[r];
            double *am = adam_m + (int64_t)r * d, *av = adam_v + (int64_t)r * d;
            const double dn = norm2(dr, d);
            /* Adam (PyTorch's defaults), then project delta into the norm ball. */
            const int step = it + 1;
            const double bc1 = 1 - pow(b1, step), bc2 = 1 - pow(b2, step);
            for (int j = 0; j < d; j++) {
                double g = gs[j];
                if (dn > 0) g += hp->v_weight_decay * dr[j] / (dn * in2);
                const float gf = (float)g;
                am[j] = b1 * am[j] + (1 - b1) * gf;
                av[j] = b2 * av[j] + (1 - b2) * (double)gf * gf;
                double denom = sqrt(av[j]) / sqrt(bc2) + eps;
                dr[j] -= (float)(hp->v_lr / bc1 * am[j] / denom);
            }
            double max_norm = hp->clamp_norm_factor * init_norm[r], nn = norm2(dr, d);
            if (nn > max_norm)
                for (int j = 0; j < d; j++) dr[j] = (float)(dr[j] * (max_norm / nn));
        }
        /* it + 1 < v_num_grad_steps here: the last iteration stops every request above */
        if (hp->progress && hp->progress(hp->progress_user, it + 1, hp->v_num_grad_steps)) {
            st = xle_fail(err, XLE_ERR_INTERRUPTED, "edit: interrupted at step %d", it + 1);
            goto done;
        }
    }
    /* an early stop ends the optimisation: its remaining steps are done */
    if (hp->progress && hp->progress(hp->progress_user, hp->v_num_grad_steps, hp->v_num_grad_steps))
        st = xle_fail(err, XLE_ERR_INTERRUPTED, "edit: interrupted");
done:
    delta_pass_free(&dp);
    layout_free(&L);
    free(logits), free(dlogits), free(lp), free(kl0), free(adam_m), free(adam_v), free(gsum);
    free(init_norm), free(active);
    return st;
}

xle_status xle_edit_optimize_deltas(xle_model *m, const xle_edit_hparams *hp,
                                    const xle_edit_request_tok *reqs, int n_reqs, xle_point point,
                                    int layer, float *init, float *delta, double *final_loss,
                                    int *steps, xle_error *err) {
    return optimize_deltas(m, hp, reqs, n_reqs, point, layer, 0, init, delta, final_loss, steps, err);
}

xle_status xle_edit_optimize_delta(xle_model *m, const xle_edit_hparams *hp,
                                   const xle_edit_request_tok *req, xle_point point, int layer,
                                   float *init, float *delta, double *final_loss, int *steps,
                                   xle_error *err) {
    return optimize_deltas(m, hp, req, 1, point, layer, 0, init, delta, final_loss, steps, err);
}

xle_status xle_edit_optimize_delta_full(xle_model *m, const xle_edit_hparams *hp,
                                        const xle_edit_request_tok *req, xle_point point, int layer,
                                        float *init, float *delta, double *final_loss, int *steps,
                                        xle_error *err) {
    return optimize_deltas(m, hp, req, 1, point, layer, 1, init, delta, final_loss, steps, err);
}
