/*
 * partial.c: forward and backward passes over the part of a packed batch that an edit changes
 * (partial.h). The layer arithmetic is forward.c's and backward.c's, applied to a subset of
 * rows: per sequence, rows [lo, hi) attend to the keys and values of rows [0, hi) of the same
 * sequence, those of the rows before lo coming from the cache filled once by xle_upper_new.
 * Each family choice (norm, positions, MLP) is block_ops.c's, shared with forward.c and
 * backward.c; the block's shape (parallel, sandwich norms), the attention's scale, cap and
 * window and the head's bias and cap are read here as forward.c reads them.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/engine_internal.h"
#include "model/family.h"
#include "model/partial.h"
#include "tensor/ops.h"

/* A set of rows, per sequence the contiguous rows [lo[s], hi[s]) (counted in the sequence),
 * stored compactly in sequence order. */
typedef struct row_set {
    int *lo, *hi;
    int *off;          /* n_seqs + 1: first compact row of each sequence */
    int64_t *probs_off; /* n_seqs + 1: offset of each sequence's attention probabilities */
    int *pos;          /* position (= row in its sequence) of each compact row */
    int n;
} row_set;

/* What the backward pass needs of one layer over a row set (no weight gradients: the normed
 * inputs and the attention output are not needed); NULL members are not kept. */
typedef struct layer_io {
    float *x_in, *rstd1, *q, *probs, *h_mid, *rstd2, *gate, *up;
    float *att_o, *rstd_pa, *mlp_o, *rstd_pf; /* sandwich norms' inputs and 1/rms (Gemma-2) */
} layer_io;

struct xle_upper {
    xle_model *m;
    int layer, n_seqs, T;
    int *seq_start;
    row_set var;
    int *var_of_row;   /* T: compact index among the changing rows, or -1 */
    float *x0;         /* [n_var x d] residual stream after `layer`, unedited */
    float *kc, *vc;    /* per upper layer [T x kvd]: keys (after RoPE) and values of all rows */
    int *logit_var;    /* compact indices of the logit rows */
    int n_logit;
    layer_io *io;      /* per upper layer (index l - layer - 1), saved by the last forward */
    float *io_mem;
    float *x_final, *rstd_f, *xnf; /* [n_logit x d] */
    double *inv_freq;
    float *slopes;     /* ALiBi's per head (BLOOM); NULL otherwise */
    float *capped;     /* soft-capped logits [n_logit x vocab] and their gradient (Gemma-2) */
    float *ws;         /* per-step workspace (see ws_floats) */
    float *scratch;    /* XLE_MATMUL_SCRATCH floats */
    int valid;
};

static xle_status row_set_init(row_set *rs, const xle_upper *u, const int *lo, const int *hi,
                               xle_error *err) {
    const int S = u->n_seqs, H = u->m->cfg.n_heads;
    rs->lo = malloc((size_t)S * sizeof(int));
    rs->hi = malloc((size_t)S * sizeof(int));
    rs->off = malloc((size_t)(S + 1) * sizeof(int));
    rs->probs_off = malloc((size_t)(S + 1) * sizeof(int64_t));
    int n = 0;
    for (int s = 0; s < S; s++) n += hi[s] - lo[s];
    rs->pos = malloc((size_t)(n > 0 ? n : 1) * sizeof(int));
    if (!rs->lo || !rs->hi || !rs->off || !rs->probs_off || !rs->pos)
        return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", u->m->path);
    rs->n = n;
    int at = 0;
    int64_t probs = 0;
    for (int s = 0; s < S; s++) {
        rs->lo[s] = lo[s], rs->hi[s] = hi[s];
        rs->off[s] = at;
        rs->probs_off[s] = probs;
        for (int p = lo[s]; p < hi[s]; p++) rs->pos[at++] = p;
        probs += (int64_t)H * (hi[s] - lo[s]) * hi[s];
    }
    rs->off[S] = at;
    rs->probs_off[S] = probs;
    return XLE_OK;
}

static void row_set_free(row_set *rs) {
    free(rs->lo), free(rs->hi), free(rs->off), free(rs->probs_off), free(rs->pos);
}

/* Floats of layer_forward's workspace for n rows: k, v, two width-d temporaries, key, the
 * normed input, the attention output. */
static int64_t ws_floats(const xle_config *c, int n) {
    const int64_t kvd = (int64_t)c->n_kv_heads * c->head_dim, qd = (int64_t)c->n_heads * c->head_dim;
    return (int64_t)n * (2 * kvd + 3 * c->dim + c->ffn_dim + qd);
}

/* Floats of the step workspace: a forward pass needs layer_forward's and the residual stream
 * [nv x d] after it; a backward pass (xle_upper_backward) lays out its own gradients. */
static int64_t step_ws_floats(const xle_config *c, int nv, int T, int R) {
    const int64_t d = c->dim, f = c->ffn_dim, qd = (int64_t)c->n_heads * c->head_dim,
                  kvd = (int64_t)c->n_kv_heads * c->head_dim;
    const int64_t fwd = ws_floats(c, nv) + (int64_t)nv * d;
    const int64_t bwd = (int64_t)nv * (2 * d + 2 * qd + 3 * f + 2 * kvd) + 2 * (int64_t)T * kvd + 2 * (int64_t)R * d;
    return fwd > bwd ? fwd : bwd;
}

/* Layer l over the rows of rs: x [rs->n x d] in, the block output out (in place). Keys and
 * values of these rows go into the cache; io says what to keep; ws holds ws_floats(rs->n). */
static void layer_forward(xle_upper *u, int l, const row_set *rs, float *x, const layer_io *io,
                          float *ws) {
    const xle_config *c = &u->m->cfg;
    const xle_family *fam = xle_family_of(c->arch);
    const xle_layer_weights *L = &u->m->w.layers[l];
    const int n = rs->n, hd = c->head_dim, window = xle_layer_window(u->m, l);
    const float scale = xle_attn_scale(c);
    const int64_t d = c->dim, f = c->ffn_dim, qd = (int64_t)c->n_heads * hd,
                  kvd = (int64_t)c->n_kv_heads * hd;
    float *k = ws, *v = k + n * kvd, *tmp = v + n * kvd, *key = tmp + n * d, *xn = key + n * f,
          *att = xn + n * d, *tmp2 = att + n * qd;
    float *kc = u->kc + (int64_t)(l - u->layer - 1) * u->T * kvd,
          *vc = u->vc + (int64_t)(l - u->layer - 1) * u->T * kvd;

    if (io->x_in) memcpy(io->x_in, x, (size_t)(n * d) * sizeof(float));
    xle_block_norm_forward(fam, xn, io->rstd1, x, &L->attn_norm, &L->attn_norm_b, n, (int)d, c->norm_eps);
    {
        float *const outs[3] = {io->q, k, v};
        const xle_tensor *const w[3] = {&L->wq, &L->wk, &L->wv}, *const b[3] = {&L->bq, &L->bk, &L->bv};
        xle_matmul_forward_many(outs, xn, w, b, 3, n, u->scratch, u->m->precision);
    }
    xle_block_positions_forward(fam, c, io->q, k, rs->pos, u->inv_freq, n);
    for (int s = 0; s < u->n_seqs; s++) {
        const int nr = rs->hi[s] - rs->lo[s];
        if (nr <= 0) continue;
        const int64_t at = (int64_t)(u->seq_start[s] + rs->lo[s]) * kvd, r0 = rs->off[s];
        memcpy(kc + at, k + r0 * kvd, (size_t)(nr * kvd) * sizeof(float));
        memcpy(vc + at, v + r0 * kvd, (size_t)(nr * kvd) * sizeof(float));
        const int64_t s0 = (int64_t)u->seq_start[s] * kvd;
        xle_attention_forward_alibi(att + r0 * qd, io->probs ? io->probs + rs->probs_off[s] : NULL,
                                    io->q + r0 * qd, kc + s0, vc + s0, nr, rs->lo[s], (int)kvd,
                                    c->n_heads, c->n_kv_heads, hd, window, scale, c->attn_softcap,
                                    u->slopes);
    }
    /* tmp: the attention output, kept beside the MLP's in a parallel block (GPT-J) */
    xle_matmul_forward(tmp, att, &L->wo, &L->bo, n, u->scratch, u->m->precision);
    if (fam->sandwich_norms) {
        if (io->att_o) memcpy(io->att_o, tmp, (size_t)(n * d) * sizeof(float));
        xle_block_norm_forward(fam, tmp2, io->rstd_pa, tmp, &L->post_attn_norm, NULL, n, (int)d, c->norm_eps);
        for (int64_t i = 0; i < n * d; i++) x[i] += tmp2[i];
    } else if (!fam->parallel_block) {
        for (int64_t i = 0; i < n * d; i++) x[i] += tmp[i];
    }
    if (io->h_mid) memcpy(io->h_mid, x, (size_t)(n * d) * sizeof(float));

    /* the MLP reads the attention's normed input in a parallel block */
    if (!fam->parallel_block) xle_block_norm_forward(fam, xn, io->rstd2, x, &L->ffn_norm, &L->ffn_norm_b, n, (int)d, c->norm_eps);
    xle_block_mlp_key_forward(fam, L, key, io->gate, io->up, xn, n, f, u->scratch, u->m->precision);
    xle_matmul_forward(tmp2, key, &L->w_down, &L->b_down, n, u->scratch, u->m->precision);
    if (fam->sandwich_norms) {
        if (io->mlp_o) memcpy(io->mlp_o, tmp2, (size_t)(n * d) * sizeof(float));
        xle_block_norm_forward(fam, xn, io->rstd_pf, tmp2, &L->post_ffn_norm, NULL, n, (int)d, c->norm_eps);
        memcpy(tmp2, xn, (size_t)(n * d) * sizeof(float));
    }
    for (int64_t i = 0; i < n * d; i++) x[i] += tmp2[i];
    if (fam->parallel_block)
        for (int64_t i = 0; i < n * d; i++) x[i] += tmp[i];
}

typedef struct capture_ctx {
    float *x;
} capture_ctx;

static int capture_block_out(void *user, xle_point point, int layer, float *act, int n_tokens, int width) {
    (void)point, (void)layer;
    capture_ctx *c = user;
    memcpy(c->x, act, (size_t)n_tokens * (size_t)width * sizeof(float));
    return 1; /* the layers above are run by the partial passes */
}

void xle_upper_free(xle_upper *u) {
    if (!u) return;
    free(u->seq_start);
    row_set_free(&u->var);
    free(u->var_of_row);
    free(u->x0);
    free(u->kc), free(u->vc);
    free(u->logit_var);
    free(u->io), free(u->io_mem);
    free(u->x_final);
    free(u->inv_freq);
    free(u->slopes);
    free(u->capped);
    free(u->ws);
    free(u->scratch);
    free(u);
}

int xle_upper_n_var(const xle_upper *u) { return u->var.n; }

int xle_upper_var_index(const xle_upper *u, int row) {
    return row >= 0 && row < u->T ? u->var_of_row[row] : -1;
}

xle_status xle_upper_new(xle_model *m, const xle_batch *b, int layer, const int *first_var,
                         const int *logit_rows, int n_logit_rows, const xle_hook *hooks,
                         int n_hooks, xle_upper **out, xle_error *err) {
    const xle_config *c = &m->cfg;
    *out = NULL;
    const xle_family *fam = xle_family_of(c->arch);
    if (layer < 0 || layer >= c->n_layers)
        return xle_fail(err, XLE_ERR_ARG, "partial pass: layer %d outside [0, %d)", layer, c->n_layers);
    if (!b || b->n_seqs <= 0 || !b->seq_start || n_logit_rows <= 0 || !logit_rows)
        return xle_fail(err, XLE_ERR_ARG, "partial pass: empty batch or no logit rows");
    xle_upper *u = calloc(1, sizeof *u);
    if (!u) return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", m->path);
    u->m = m, u->layer = layer, u->n_seqs = b->n_seqs, u->T = b->seq_start[b->n_seqs];
    const int S = b->n_seqs, T = u->T, hd = c->head_dim, U = c->n_layers - layer - 1;
    const int64_t d = c->dim, f = c->ffn_dim, qd = (int64_t)c->n_heads * hd,
                  kvd = (int64_t)c->n_kv_heads * hd;
    xle_status st = XLE_OK;
    float *x_all = NULL, *xp = NULL, *pws = NULL, *pbuf = NULL;
    int *zeros = calloc((size_t)S, sizeof(int)), *lens = malloc((size_t)S * sizeof(int));
    u->seq_start = malloc((size_t)(S + 1) * sizeof(int));
    u->var_of_row = malloc((size_t)(T > 0 ? T : 1) * sizeof(int));
    u->inv_freq = malloc((size_t)(hd / 2 + 1) * sizeof(double));
    u->scratch = malloc((size_t)XLE_MATMUL_SCRATCH * sizeof(float));
    const int alibi = xle_family_of(m->cfg.arch)->pos == XLE_POS_ALIBI;
    u->slopes = alibi ? malloc((size_t)m->cfg.n_heads * sizeof(float)) : NULL;
    if (!zeros || !lens || !u->seq_start || !u->var_of_row || !u->inv_freq || !u->scratch ||
        (alibi && !u->slopes)) {
        st = xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", m->path);
        goto done;
    }
    memcpy(u->seq_start, b->seq_start, (size_t)(S + 1) * sizeof(int));
    for (int s = 0; s < S; s++) {
        lens[s] = b->seq_start[s + 1] - b->seq_start[s];
        if (lens[s] <= 0 || first_var[s] < 0 || first_var[s] > lens[s]) {
            st = xle_fail(err, XLE_ERR_ARG, "partial pass: sequence %d: first changing row %d outside its %d rows",
                          s, first_var[s], lens[s]);
            goto done;
        }
    }
    xle_rope_inv_freq(m, u->inv_freq);
    if (u->slopes) xle_alibi_slopes(m->cfg.n_heads, u->slopes);
    st = row_set_init(&u->var, u, first_var, lens, err);
    if (st != XLE_OK) goto done;
    for (int t = 0; t < T; t++) u->var_of_row[t] = -1;
    for (int s = 0; s < S; s++)
        for (int p = first_var[s]; p < lens[s]; p++)
            u->var_of_row[b->seq_start[s] + p] = u->var.off[s] + p - first_var[s];
    u->n_logit = n_logit_rows;
    u->logit_var = malloc((size_t)n_logit_rows * sizeof(int));
    if (!u->logit_var) {
        st = xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", m->path);
        goto done;
    }
    for (int i = 0; i < n_logit_rows; i++) {
        int r = logit_rows[i];
        u->logit_var[i] = (r >= 0 && r < T) ? u->var_of_row[r] : -1;
        if (u->logit_var[i] < 0) {
            st = xle_fail(err, XLE_ERR_ARG, "partial pass: logit row %d is not a changing row", r);
            goto done;
        }
    }

    /* The layers up to `layer`, all rows, once. */
    x_all = malloc((size_t)(T * d) * sizeof(float));
    xle_hook *all_hooks = malloc((size_t)(n_hooks + 1) * sizeof *all_hooks);
    if (!x_all || !all_hooks) {
        free(all_hooks);
        st = xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory for a batch of %d tokens", m->path, T);
        goto done;
    }
    for (int i = 0; i < n_hooks; i++) all_hooks[i] = hooks[i];
    capture_ctx cap = {x_all};
    all_hooks[n_hooks] = (xle_hook){XLE_POINT_BLOCK_OUT, layer, capture_block_out, &cap};
    xle_forward_opts o = {.hooks = all_hooks, .n_hooks = n_hooks + 1};
    st = xle_forward(m, b, &o, NULL, err);
    free(all_hooks);
    if (st != XLE_OK) goto done;

    /* Keys and values of the fixed rows in every layer above: a pass over those rows alone
     * (causal attention: they never see a changing row). */
    u->kc = malloc((size_t)((int64_t)(U > 0 ? U : 1) * T * kvd) * sizeof(float));
    u->vc = malloc((size_t)((int64_t)(U > 0 ? U : 1) * T * kvd) * sizeof(float));
    u->x0 = malloc((size_t)((u->var.n > 0 ? u->var.n : 1) * d) * sizeof(float));
    if (!u->kc || !u->vc || !u->x0) {
        st = xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", m->path);
        goto done;
    }
    for (int s = 0; s < S; s++)
        if (lens[s] > first_var[s])
            memcpy(u->x0 + (int64_t)u->var.off[s] * d, x_all + (int64_t)(b->seq_start[s] + first_var[s]) * d,
                   (size_t)((lens[s] - first_var[s]) * d) * sizeof(float));
    if (U > 0) {
        row_set fixed = {0};
        st = row_set_init(&fixed, u, zeros, first_var, err);
        const int nf = fixed.n;
        if (st == XLE_OK && nf > 0) {
            xp = malloc((size_t)(nf * d) * sizeof(float));
            pws = malloc((size_t)ws_floats(c, nf) * sizeof(float));
            pbuf = malloc((size_t)(nf * (4 + qd + 2 * f)) * sizeof(float));
            if (!xp || !pws || !pbuf) {
                st = xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", m->path);
            } else {
                for (int s = 0; s < S; s++)
                    memcpy(xp + (int64_t)fixed.off[s] * d, x_all + (int64_t)b->seq_start[s] * d,
                           (size_t)(first_var[s] * d) * sizeof(float));
                float *p = pbuf;
                layer_io io = {0};
                io.rstd1 = p, p += nf;
                io.q = p, p += nf * qd;
                io.rstd2 = p, p += nf;
                io.gate = p, p += nf * f;
                io.up = p, p += nf * f;
                io.rstd_pa = p, p += nf;
                io.rstd_pf = p;
                for (int l = layer + 1; l < c->n_layers; l++) layer_forward(u, l, &fixed, xp, &io, pws);
            }
        }
        row_set_free(&fixed);
        if (st != XLE_OK) goto done;
    }

    /* Saved activations of the changing rows, per upper layer, and the step workspace. */
    {
        const int nv = u->var.n;
        const int sandwich = fam->sandwich_norms;
        const int64_t per_layer = (int64_t)nv * (2 * d + 2 + qd + 2 * f) + u->var.probs_off[S] +
                                  (sandwich ? (int64_t)nv * (2 * d + 2) : 0);
        u->io = calloc((size_t)(U > 0 ? U : 1), sizeof *u->io);
        u->io_mem = malloc((size_t)((U > 0 ? U : 1) * per_layer + 1) * sizeof(float));
        u->x_final = malloc((size_t)(n_logit_rows * (2 * d + 1)) * sizeof(float));
        u->ws = malloc((size_t)(step_ws_floats(c, nv, T, n_logit_rows) + 1) * sizeof(float));
        if (c->final_softcap > 0)
            u->capped = malloc((size_t)n_logit_rows * (size_t)c->vocab_size * 2 * sizeof(float));
        if (!u->io || !u->io_mem || !u->x_final || !u->ws || (c->final_softcap > 0 && !u->capped)) {
            st = xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory for the activations of %d rows", m->path, nv);
            goto done;
        }
        float *p = u->io_mem;
        for (int i = 0; i < U; i++) {
            layer_io *io = &u->io[i];
            io->x_in = p, p += nv * d;
            io->rstd1 = p, p += nv;
            io->q = p, p += nv * qd;
            io->probs = p, p += u->var.probs_off[S];
            io->h_mid = p, p += nv * d;
            io->rstd2 = p, p += nv;
            io->gate = p, p += nv * f;
            io->up = p, p += nv * f;
            if (sandwich) {
                io->att_o = p, p += nv * d;
                io->rstd_pa = p, p += nv;
                io->mlp_o = p, p += nv * d;
                io->rstd_pf = p, p += nv;
            }
        }
        u->rstd_f = u->x_final + n_logit_rows * d;
        u->xnf = u->rstd_f + n_logit_rows;
    }
    *out = u;
    u = NULL;
done:
    free(zeros), free(lens), free(x_all), free(xp), free(pws), free(pbuf);
    xle_upper_free(u);
    return st;
}

xle_status xle_upper_forward(xle_upper *u, const int *rows, int n_rows, const float *add,
                             float *logits, xle_error *err) {
    const xle_config *c = &u->m->cfg;
    const int nv = u->var.n, R = u->n_logit;
    const int64_t d = c->dim, V = c->vocab_size;
    u->valid = 0;
    float *x = u->ws + ws_floats(c, nv); /* the residual stream, after layer_forward's space */
    memcpy(x, u->x0, (size_t)(nv * d) * sizeof(float));
    for (int i = 0; i < n_rows; i++) {
        const int vi = xle_upper_var_index(u, rows[i]);
        if (vi < 0) return xle_fail(err, XLE_ERR_ARG, "partial pass: row %d is not a changing row", rows[i]);
        float *r = x + (int64_t)vi * d;
        const float *a = add + (int64_t)i * d;
        for (int64_t j = 0; j < d; j++) r[j] += a[j];
    }
    for (int l = u->layer + 1; l < c->n_layers; l++) layer_forward(u, l, &u->var, x, &u->io[l - u->layer - 1], u->ws);
    for (int i = 0; i < R; i++)
        memcpy(u->x_final + (int64_t)i * d, x + (int64_t)u->logit_var[i] * d, (size_t)d * sizeof(float));
    xle_block_norm_forward(xle_family_of(c->arch), u->xnf, u->rstd_f, u->x_final, &u->m->w.out_norm, &u->m->w.out_norm_b,
             R, (int)d, c->norm_eps);
    xle_matmul_forward(logits, u->xnf, &u->m->w.lm_head, &u->m->w.lm_head_b, R, u->scratch, u->m->precision);
    if (u->capped) {
        xle_softcap_forward(logits, c->final_softcap, R * V);
        memcpy(u->capped, logits, (size_t)(R * V) * sizeof(float)); /* for the backward */
    }
    for (int64_t i = 0; i < R * V; i++)
        if (!isfinite(logits[i]))
            return xle_fail(err, XLE_ERR_NUMERIC, "%s: non-finite logit (NaN or Inf in the weights?)", u->m->path);
    u->valid = 1;
    return XLE_OK;
}

xle_status xle_upper_backward(xle_upper *u, const float *d_logits, float *d_resid, xle_error *err) {
    if (!u->valid) return xle_fail(err, XLE_ERR_ARG, "partial pass: backward without a complete forward pass");
    const xle_config *c = &u->m->cfg;
    const xle_family *fam = xle_family_of(c->arch);
    const int nv = u->var.n, R = u->n_logit, hd = c->head_dim, T = u->T;
    const float scale = xle_attn_scale(c);
    const int64_t d = c->dim, f = c->ffn_dim, qd = (int64_t)c->n_heads * hd,
                  kvd = (int64_t)c->n_kv_heads * hd;
    /* The layout step_ws_floats counts. */
    float *dx = d_resid, *dxn = u->ws, *dh = dxn + nv * d, *dq = dh + nv * d, *datt = dq + nv * qd,
          *dkey = datt + nv * qd, *dgate = dkey + nv * f, *dup = dgate + nv * f,
          *dk = dup + nv * f, *dv = dk + nv * kvd, *dk_all = dv + nv * kvd,
          *dv_all = dk_all + (int64_t)T * kvd, *drows = dv_all + (int64_t)T * kvd,
          *dxf = drows + (int64_t)R * d;

    /* Logits -> final norm input at the logit rows -> the residual stream. */
    if (u->capped) {
        /* logits = cap·tanh(z/cap): dz = d_logits (1 - (logits/cap)²) */
        const int64_t RV = (int64_t)R * c->vocab_size;
        float *dz = u->capped + RV;
        memcpy(dz, d_logits, (size_t)RV * sizeof(float));
        xle_softcap_backward(dz, u->capped, c->final_softcap, RV);
        d_logits = dz;
    }
    memset(drows, 0, (size_t)(R * d) * sizeof(float));
    xle_matmul_backward(drows, NULL, NULL, d_logits, u->xnf, &u->m->w.lm_head, R, u->scratch);
    memset(dxf, 0, (size_t)(R * d) * sizeof(float));
    xle_block_norm_backward(fam, dxf, NULL, NULL, drows, u->x_final, &u->m->w.out_norm, u->rstd_f, R, (int)d);
    memset(dx, 0, (size_t)(nv * d) * sizeof(float));
    for (int i = 0; i < R; i++) {
        float *dst = dx + (int64_t)u->logit_var[i] * d;
        for (int64_t j = 0; j < d; j++) dst[j] += dxf[(int64_t)i * d + j];
    }

    for (int l = c->n_layers - 1; l > u->layer; l--) {
        const xle_layer_weights *L = &u->m->w.layers[l];
        const layer_io *io = &u->io[l - u->layer - 1];
        const float *kc = u->kc + (int64_t)(l - u->layer - 1) * T * kvd,
                    *vc = u->vc + (int64_t)(l - u->layer - 1) * T * kvd;
        /* MLP (through Gemma-2's post-MLP norm; dh is free until the MLP's part is done). */
        const float *dmlp = dx;
        if (fam->sandwich_norms) {
            memset(dh, 0, (size_t)(nv * d) * sizeof(float));
            xle_block_norm_backward(fam, dh, NULL, NULL, dx, io->mlp_o, &L->post_ffn_norm, io->rstd_pf, nv, (int)d);
            dmlp = dh;
        }
        memset(dkey, 0, (size_t)(nv * f) * sizeof(float));
        xle_matmul_backward(dkey, NULL, NULL, dmlp, NULL, &L->w_down, nv, u->scratch);
        memset(dxn, 0, (size_t)(nv * d) * sizeof(float));
        xle_block_mlp_key_backward(fam, L, NULL, dxn, dgate, dup, dkey, NULL, io->gate, io->up, nv, f, u->scratch);
        memcpy(dh, dx, (size_t)(nv * d) * sizeof(float));
        /* a parallel block's MLP part stays in dxn for the shared norm */
        if (!fam->parallel_block) xle_block_norm_backward(fam, dh, NULL, NULL, dxn, io->h_mid, &L->ffn_norm, io->rstd2, nv, (int)d);
        const float *datt_out = dh;
        if (fam->sandwich_norms) {
            /* dkey is free again: nv x f >= nv x d floats */
            memset(dkey, 0, (size_t)(nv * d) * sizeof(float));
            xle_block_norm_backward(fam, dkey, NULL, NULL, dh, io->att_o, &L->post_attn_norm, io->rstd_pa, nv, (int)d);
            datt_out = dkey;
        }

        /* Attention: gradients reach the changing rows' queries, keys and values; those of
         * the fixed rows' keys and values are computed and dropped (they are constants). */
        memset(datt, 0, (size_t)(nv * qd) * sizeof(float));
        xle_matmul_backward(datt, NULL, NULL, datt_out, NULL, &L->wo, nv, u->scratch);
        memset(dq, 0, (size_t)(nv * qd) * sizeof(float));
        memset(dk_all, 0, (size_t)(2 * T * kvd) * sizeof(float));
        for (int s = 0; s < u->n_seqs; s++) {
            const int nr = u->var.hi[s] - u->var.lo[s];
            if (nr <= 0) continue;
            const int64_t r0 = u->var.off[s], s0 = (int64_t)u->seq_start[s] * kvd;
            xle_attention_backward_scaled(dq + r0 * qd, dk_all + s0, dv_all + s0, datt + r0 * qd,
                                          io->probs + u->var.probs_off[s], io->q + r0 * qd, kc + s0,
                                          vc + s0, nr, u->var.lo[s], c->n_heads, c->n_kv_heads, hd,
                                          scale, c->attn_softcap);
            const int64_t at = (int64_t)(u->seq_start[s] + u->var.lo[s]) * kvd;
            memcpy(dk + r0 * kvd, dk_all + at, (size_t)(nr * kvd) * sizeof(float));
            memcpy(dv + r0 * kvd, dv_all + at, (size_t)(nr * kvd) * sizeof(float));
        }
        xle_block_positions_backward(fam, c, dq, dk, u->var.pos, u->inv_freq, nv);
        if (!fam->parallel_block) memset(dxn, 0, (size_t)(nv * d) * sizeof(float));
        xle_matmul_backward(dxn, NULL, NULL, dq, NULL, &L->wq, nv, u->scratch);
        xle_matmul_backward(dxn, NULL, NULL, dk, NULL, &L->wk, nv, u->scratch);
        xle_matmul_backward(dxn, NULL, NULL, dv, NULL, &L->wv, nv, u->scratch);
        memcpy(dx, dh, (size_t)(nv * d) * sizeof(float));
        xle_block_norm_backward(fam, dx, NULL, NULL, dxn, io->x_in, &L->attn_norm, io->rstd1, nv, (int)d);
    }
    return XLE_OK;
}
