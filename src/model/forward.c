/*
 * forward.c: the forward pass of every family over a packed batch of sequences, reading the
 * family's description (model/family.h: RMSNorm or LayerNorm, RoPE or learned positions,
 * SwiGLU or GELU MLP; grouped-query attention with an optional sliding window), with hooks at
 * the named read/write points, an optional KV cache, and optional saving of the activations the
 * backward pass needs. One allocation per call for the workspace; weights are never copied.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/hugepages.h"
#include "model/engine_internal.h"
#include "model/family.h"
#include "tensor/ops.h"

int xle_rotary_dim(const xle_config *c) {
    return c->rotary_dim > 0 && c->rotary_dim < c->head_dim ? c->rotary_dim : c->head_dim;
}

float xle_attn_scale(const xle_config *c) {
    return c->attn_scale > 0 ? c->attn_scale : 1.0f / sqrtf((float)c->head_dim);
}

int xle_layer_window(const xle_model *m, int layer) {
    return xle_family_of(m->cfg.arch)->window_even_layers && layer % 2 ? 0 : m->cfg.sliding_window;
}

float xle_embed_scale(const xle_model *m) {
    if (!xle_family_of(m->cfg.arch)->embed_scale_sqrt_dim) return 1.0f;
    /* transformers multiplies by sqrt(hidden_size) as a tensor of the model's dtype */
    const float s = (float)sqrt((double)m->cfg.dim);
    switch (m->w.tok_embd.dtype) {
    case XLE_BF16: return xle_bf16_to_f32(xle_f32_to_bf16(s));
    case XLE_F16: return xle_f16_to_f32(xle_f32_to_f16(s));
    default: return s;
    }
}

void xle_rope_inv_freq(const xle_model *m, double *inv_freq) {
    const xle_config *c = &m->cfg;
    const int rot = xle_rotary_dim(c), half = rot / 2;
    for (int j = 0; j < half; j++) {
        double f = pow((double)c->rope_theta, -2.0 * j / rot);
        if (m->w.rope_freqs.data) {
            f /= xle_tensor_get_f32(&m->w.rope_freqs, j);
        } else if (c->rope_scaling == XLE_ROPE_LINEAR) {
            f /= c->rope_factor;
        } else if (c->rope_scaling == XLE_ROPE_LLAMA3) {
            /* Llama-3.1 "llama3" scaling: keep high frequencies, divide low ones by factor,
             * interpolate smoothly in between (by wavelength). */
            double orig = c->rope_original_max_pos, low = c->rope_low_freq_factor,
                   high = c->rope_high_freq_factor, factor = c->rope_factor;
            double wavelen = 2.0 * M_PI / f;
            double low_wavelen = orig / low, high_wavelen = orig / high;
            if (wavelen < high_wavelen) {
                /* unchanged */
            } else if (wavelen > low_wavelen) {
                f /= factor;
            } else {
                double smooth = (orig / wavelen - low) / (high - low);
                f = (1.0 - smooth) * f / factor + smooth * f;
            }
        }
        inv_freq[j] = f;
    }
}

/* ---- activations kept for the backward pass ---------------------------------------------- */

xle_acts *xle_acts_new(void) { return calloc(1, sizeof(xle_acts)); }

void xle_acts_free(xle_acts *a) {
    if (!a) return;
    free(a->mem);
    free(a->int_mem);
    free(a->layers);
    free(a);
}

/* Lays out a's buffers for this batch; reuses memory when large enough. */
static xle_status acts_prepare(xle_acts *a, const xle_model *m, const xle_batch *b, int keep_from,
                               const int *pos, const int *rows, int n_rows, xle_error *err) {
    const xle_config *c = &m->cfg;
    const int T = b->seq_start[b->n_seqs];
    const int64_t d = c->dim, f = c->ffn_dim, qd = (int64_t)c->n_heads * c->head_dim,
                  kvd = (int64_t)c->n_kv_heads * c->head_dim;
    int64_t probs = 0;
    for (int s = 0; s < b->n_seqs; s++) {
        int64_t n = b->seq_start[s + 1] - b->seq_start[s];
        probs += n * n * c->n_heads;
    }
    const int kept = c->n_layers - keep_from;
    const int sandwich = xle_family_of(c->arch)->sandwich_norms;
    const int64_t per_layer = T * (4 * d + 2 + 2 * qd + 2 * kvd + 3 * f) + probs +
                              (sandwich ? T * (2 * d + 2) : 0);
    const int embd_norm = xle_family_of(c->arch)->embed_norm;
    const size_t need = (size_t)(kept * per_layer + T * (2 * d + 1) + (embd_norm ? T * (d + 1) : 0));
    if (need > a->cap_floats) {
        free(a->mem);
        a->mem = malloc(need * sizeof(float));
        if (!a->mem) {
            a->cap_floats = 0;
            return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory for %zu activations", m->path, need);
        }
        a->cap_floats = need;
    }
    const size_t need_ints = (size_t)(3 * T + 2 * (b->n_seqs + 1) + n_rows + 4);
    if (need_ints > a->cap_ints) {
        free(a->int_mem);
        a->int_mem = malloc(need_ints * sizeof(int64_t));
        if (!a->int_mem) {
            a->cap_ints = 0;
            return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", m->path);
        }
        a->cap_ints = need_ints;
    }
    if (a->n_layers != c->n_layers) {
        free(a->layers);
        a->layers = calloc((size_t)c->n_layers, sizeof *a->layers);
        if (!a->layers) return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", m->path);
        a->n_layers = c->n_layers;
    }
    memset(a->layers, 0, (size_t)c->n_layers * sizeof *a->layers);
    float *p = a->mem;
    for (int l = keep_from; l < c->n_layers; l++) {
        xle_layer_acts *la = &a->layers[l];
        la->x_in = p, p += T * d;
        la->rstd1 = p, p += T;
        la->xn1 = p, p += T * d;
        la->q = p, p += T * qd;
        la->k = p, p += T * kvd;
        la->v = p, p += T * kvd;
        la->att = p, p += T * qd;
        la->probs = p, p += probs;
        la->h_mid = p, p += T * d;
        la->rstd2 = p, p += T;
        la->xn2 = p, p += T * d;
        la->gate = p, p += T * f;
        la->up = p, p += T * f;
        la->key = p, p += T * f;
        if (sandwich) {
            la->att_o = p, p += T * d;
            la->rstd_pa = p, p += T;
            la->mlp_o = p, p += T * d;
            la->rstd_pf = p, p += T;
        }
    }
    a->x_final = p, p += T * d;
    a->rstd_f = p, p += T;
    a->xnf = p, p += T * d;
    a->x_embd = embd_norm ? p : NULL, p += embd_norm ? T * d : 0;
    a->rstd_e = embd_norm ? p : NULL;
    int64_t *ip64 = a->int_mem;
    a->probs_offset = ip64, ip64 += b->n_seqs + 1;
    int *ip = (int *)ip64;
    a->seq_start = ip, ip += b->n_seqs + 1;
    a->pos = ip, ip += T;
    a->tokens = (int32_t *)ip, ip += T;
    a->logit_rows = ip;
    int64_t off = 0;
    for (int s = 0; s < b->n_seqs; s++) {
        a->probs_offset[s] = off;
        int64_t n = b->seq_start[s + 1] - b->seq_start[s];
        off += n * n * c->n_heads;
    }
    memcpy(a->seq_start, b->seq_start, (size_t)(b->n_seqs + 1) * sizeof(int));
    memcpy(a->pos, pos, (size_t)T * sizeof(int));
    memcpy(a->tokens, b->tokens, (size_t)T * sizeof(int32_t));
    memcpy(a->logit_rows, rows, (size_t)n_rows * sizeof(int));
    a->n_logit_rows = n_rows;
    a->T = T;
    a->n_seqs = b->n_seqs;
    a->keep_from = keep_from;
    a->valid = 0;
    return XLE_OK;
}

/* ---- KV cache ----------------------------------------------------------------------------- */

xle_status xle_kv_cache_new(const xle_model *m, int max_tokens, xle_kv_cache **out, xle_error *err) {
    const xle_config *c = &m->cfg;
    if (max_tokens <= 0) return xle_fail(err, XLE_ERR_ARG, "kv cache: max_tokens must be positive");
    xle_kv_cache *kc = calloc(1, sizeof *kc);
    if (!kc) return xle_fail(err, XLE_ERR_NOMEM, "kv cache: out of memory");
    kc->max_tokens = max_tokens;
    kc->n_layers = c->n_layers;
    kc->kv_dim = c->n_kv_heads * c->head_dim;
    size_t n = (size_t)c->n_layers * (size_t)max_tokens * (size_t)kc->kv_dim;
    kc->k = malloc(n * sizeof(float));
    kc->v = malloc(n * sizeof(float));
    if (!kc->k || !kc->v) {
        xle_kv_cache_free(kc);
        return xle_fail(err, XLE_ERR_NOMEM, "kv cache: out of memory for %d tokens", max_tokens);
    }
    *out = kc;
    return XLE_OK;
}

void xle_kv_cache_free(xle_kv_cache *kc) {
    if (!kc) return;
    free(kc->k);
    free(kc->v);
    free(kc);
}

int xle_kv_cache_len(const xle_kv_cache *kc) { return kc->len; }
void xle_kv_cache_clear(xle_kv_cache *kc) { kc->len = 0; }

/* ---- the pass ----------------------------------------------------------------------------- */

static int run_hooks(const xle_forward_opts *o, xle_point point, int layer, float *act, int T,
                     int width) {
    int stop = 0;
    for (int i = 0; o && i < o->n_hooks; i++) {
        const xle_hook *h = &o->hooks[i];
        if (h->point == point && h->layer == layer && h->fn)
            stop |= h->fn(h->user, point, layer, act, T, width);
    }
    return stop;
}

static xle_status check_batch(const xle_model *m, const xle_batch *b, const xle_forward_opts *o,
                              xle_error *err) {
    if (!b || b->n_seqs <= 0 || !b->seq_start || !b->tokens || b->seq_start[0] != 0)
        return xle_fail(err, XLE_ERR_ARG, "forward: empty or malformed batch");
    for (int s = 0; s < b->n_seqs; s++)
        if (b->seq_start[s + 1] <= b->seq_start[s])
            return xle_fail(err, XLE_ERR_ARG, "forward: sequence %d is empty", s);
    const int T = b->seq_start[b->n_seqs];
    for (int t = 0; t < T; t++)
        if (b->tokens[t] < 0 || b->tokens[t] >= m->cfg.vocab_size)
            return xle_fail(err, XLE_ERR_ARG, "forward: token id %d at %d is outside [0, %d)",
                            b->tokens[t], t, m->cfg.vocab_size);
    if (o && o->cache) {
        if (b->n_seqs != 1) return xle_fail(err, XLE_ERR_ARG, "forward: a KV cache takes one sequence");
        if (o->acts) return xle_fail(err, XLE_ERR_ARG, "forward: a KV cache cannot keep activations");
        if (o->cache->len + T > o->cache->max_tokens)
            return xle_fail(err, XLE_ERR_ARG, "forward: KV cache full (%d + %d > %d tokens)",
                            o->cache->len, T, o->cache->max_tokens);
    }
    if (o && o->logit_rows)
        for (int i = 0; i < o->n_logit_rows; i++)
            if (o->logit_rows[i] < 0 || o->logit_rows[i] >= T)
                return xle_fail(err, XLE_ERR_ARG, "forward: logit row %d outside the batch", o->logit_rows[i]);
    return XLE_OK;
}

xle_status xle_forward(xle_model *m, const xle_batch *b, const xle_forward_opts *o, float *logits,
                       xle_error *err) {
    xle_status st = check_batch(m, b, o, err);
    if (st != XLE_OK) return st;
    const xle_config *c = &m->cfg;
    const xle_family *fam = xle_family_of(c->arch);
    const int T = b->seq_start[b->n_seqs], hd = c->head_dim;
    const int64_t d = c->dim, f = c->ffn_dim, qd = (int64_t)c->n_heads * hd,
                  kvd = (int64_t)c->n_kv_heads * hd, V = c->vocab_size;
    xle_kv_cache *cache = o ? o->cache : NULL;
    xle_acts *acts = o ? o->acts : NULL;
    const int n_past = cache ? cache->len : 0;

    /* Rows that produce logits. */
    int n_rows = (o && o->logit_rows) ? o->n_logit_rows : T;

    /* Workspace: one allocation for this call. */
    const int64_t ws_floats = T * (4 * d + 2 * qd + 2 * kvd + 3 * f + 2) + (int64_t)n_rows * d +
                              XLE_MATMUL_SCRATCH + hd;
    float *ws = malloc((size_t)ws_floats * sizeof(float));
    xle_advise_huge_pages(ws, (size_t)ws_floats * sizeof(float)); /* fresh each call: fewer faults */
    int *pos = malloc((size_t)(T + n_rows) * sizeof(int));
    double *inv_freq = malloc((size_t)(hd / 2 + 1) * sizeof(double));
    float *slopes = fam->pos == XLE_POS_ALIBI ? malloc((size_t)c->n_heads * sizeof(float)) : NULL;
    if (!ws || !pos || !inv_freq || (fam->pos == XLE_POS_ALIBI && !slopes)) {
        free(ws), free(pos), free(inv_freq), free(slopes);
        return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory for a batch of %d tokens", m->path, T);
    }
    int *rows = pos + T;
    for (int i = 0; i < n_rows; i++) rows[i] = (o && o->logit_rows) ? o->logit_rows[i] : i;
    float *x = ws, *xn = x + T * d, *q = xn + T * d, *k = q + T * qd, *v = k + T * kvd,
          *att = v + T * kvd, *gate = att + T * qd, *up = gate + T * f, *key = up + T * f,
          *rstd = key + T * f, *rstd2 = rstd + T, *gathered = rstd2 + T,
          *aux = gathered + (int64_t)n_rows * d, *aux2 = aux + T * d, *scratch = aux2 + T * d;
    /* Attention and MLP outputs (width d) go to xn, which is free again once q/k/v (or
     * gate/up) have been computed from it. */
    float *tmp = xn;
    const float att_scale = xle_attn_scale(c);

    for (int s = 0; s < b->n_seqs; s++)
        for (int t = b->seq_start[s]; t < b->seq_start[s + 1]; t++) pos[t] = n_past + t - b->seq_start[s];
    xle_rope_inv_freq(m, inv_freq);
    if (slopes) xle_alibi_slopes(c->n_heads, slopes);

    if (acts) {
        int keep_from = o->keep_from_layer;
        if (keep_from < 0 || keep_from >= c->n_layers) {
            st = xle_fail(err, XLE_ERR_ARG, "forward: keep_from_layer %d outside [0, %d)", keep_from, c->n_layers);
            goto done;
        }
        st = acts_prepare(acts, m, b, keep_from, pos, rows, n_rows, err);
        if (st != XLE_OK) goto done;
    }

    /* Embedding lookup (plus the learned position's row). */
    for (int t = 0; t < T; t++) xle_tensor_row_to_f32(&m->w.tok_embd, (int64_t)b->tokens[t] * d, d, x + t * d);
    if (fam->pos == XLE_POS_LEARNED) {
        const int64_t n_pos = m->w.pos_embd.shape[0];
        for (int t = 0; t < T; t++) {
            if (pos[t] >= n_pos) {
                st = xle_fail(err, XLE_ERR_ARG, "%s: position %d is beyond the model's %lld learned "
                              "positions", m->path, pos[t], (long long)n_pos);
                goto done;
            }
            float *xt = x + t * d;
            for (int64_t i = 0; i < d; i++) xt[i] += xle_tensor_get_f32(&m->w.pos_embd, pos[t] * d + i);
        }
    }
    if (fam->embed_scale_sqrt_dim) {
        /* in the embedding's dtype, as transformers computes it */
        const float es = xle_embed_scale(m);
        const xle_dtype et = m->w.tok_embd.dtype;
        for (int64_t i = 0; i < T * d; i++) {
            float v = x[i] * es;
            x[i] = et == XLE_BF16 ? xle_bf16_to_f32(xle_f32_to_bf16(v))
                   : et == XLE_F16 ? xle_f16_to_f32(xle_f32_to_f16(v)) : v;
        }
    }
    if (run_hooks(o, XLE_POINT_EMBED, 0, x, T, (int)d)) goto stopped;
    if (fam->embed_norm) {
        /* BLOOM's word_embeddings_layernorm (the EMBED hook saw word_embeddings' output) */
        if (acts) memcpy(acts->x_embd, x, (size_t)(T * d) * sizeof(float));
        xle_block_norm_forward(fam, xn, acts ? acts->rstd_e : rstd, x, &m->w.embd_norm, &m->w.embd_norm_b,
                               T, (int)d, c->norm_eps);
        memcpy(x, xn, (size_t)(T * d) * sizeof(float));
    }

    for (int l = 0; l < c->n_layers; l++) {
        const xle_layer_weights *L = &m->w.layers[l];
        xle_layer_acts *la = (acts && l >= acts->keep_from) ? &acts->layers[l] : NULL;
        float *lq = la ? la->q : q, *lk = la ? la->k : k, *lv = la ? la->v : v,
              *latt = la ? la->att : att, *lxn1 = la ? la->xn1 : xn, *lr1 = la ? la->rstd1 : rstd;
        if (la) memcpy(la->x_in, x, (size_t)(T * d) * sizeof(float));

        /* Attention block. */
        xle_block_norm_forward(fam, lxn1, lr1, x, &L->attn_norm, &L->attn_norm_b, T, (int)d, c->norm_eps);
        {
            float *const outs[3] = {lq, lk, lv};
            const xle_tensor *const ws[3] = {&L->wq, &L->wk, &L->wv}, *const bs[3] = {&L->bq, &L->bk, &L->bv};
            xle_matmul_forward_many(outs, lxn1, ws, bs, 3, T, scratch, m->precision);
        }
        xle_block_positions_forward(fam, c, lq, lk, pos, inv_freq, T);
        const int window = xle_layer_window(m, l);
        if (cache) {
            float *ck = cache->k + (int64_t)l * cache->max_tokens * kvd;
            float *cv = cache->v + (int64_t)l * cache->max_tokens * kvd;
            memcpy(ck + n_past * kvd, lk, (size_t)(T * kvd) * sizeof(float));
            memcpy(cv + n_past * kvd, lv, (size_t)(T * kvd) * sizeof(float));
            xle_attention_forward_alibi(latt, NULL, lq, ck, cv, T, n_past, (int)kvd, c->n_heads,
                                        c->n_kv_heads, hd, window, att_scale, c->attn_softcap, slopes);
        } else {
            for (int s = 0; s < b->n_seqs; s++) {
                int s0 = b->seq_start[s], n = b->seq_start[s + 1] - s0;
                float *probs = la ? la->probs + acts->probs_offset[s] : NULL;
                xle_attention_forward_alibi(latt + s0 * qd, probs, lq + s0 * qd, lk + s0 * kvd,
                                            lv + s0 * kvd, n, 0, (int)kvd, c->n_heads, c->n_kv_heads,
                                            hd, window, att_scale, c->attn_softcap, slopes);
            }
        }
        /* a parallel block keeps the attention output (its MLP reads xn1) until the MLP's */
        float *attn_out = fam->parallel_block ? aux : tmp;
        xle_matmul_forward(attn_out, latt, &L->wo, &L->bo, T, scratch, m->precision);
        if (run_hooks(o, XLE_POINT_ATTN_OUT, l, attn_out, T, (int)d)) goto stopped;
        if (fam->sandwich_norms) {
            if (la) memcpy(la->att_o, attn_out, (size_t)(T * d) * sizeof(float));
            xle_block_norm_forward(fam, aux2, la ? la->rstd_pa : rstd2, attn_out, &L->post_attn_norm, NULL,
                                   T, (int)d, c->norm_eps);
            for (int64_t i = 0; i < T * d; i++) x[i] += aux2[i];
        } else if (!fam->parallel_block) {
            for (int64_t i = 0; i < T * d; i++) x[i] += attn_out[i];
        }
        if (la) memcpy(la->h_mid, x, (size_t)(T * d) * sizeof(float));

        /* MLP block (from the attention's norm in a parallel block). */
        float *lxn2 = la ? la->xn2 : xn, *lr2 = la ? la->rstd2 : rstd2, *lg = la ? la->gate : gate,
              *lu = la ? la->up : up, *lkey = la ? la->key : key;
        if (fam->parallel_block) lxn2 = lxn1;
        else xle_block_norm_forward(fam, lxn2, lr2, x, &L->ffn_norm, &L->ffn_norm_b, T, (int)d, c->norm_eps);
        xle_block_mlp_key_forward(fam, L, lkey, lg, lu, lxn2, T, f, scratch, m->precision);
        if (run_hooks(o, XLE_POINT_MLP_KEY, l, lkey, T, (int)f)) goto stopped;
        float *mlp_out = tmp;
        xle_matmul_forward(mlp_out, lkey, &L->w_down, &L->b_down, T, scratch, m->precision);
        if (run_hooks(o, XLE_POINT_MLP_OUT, l, mlp_out, T, (int)d)) goto stopped;
        if (fam->sandwich_norms) {
            if (la) memcpy(la->mlp_o, mlp_out, (size_t)(T * d) * sizeof(float));
            xle_block_norm_forward(fam, aux2, la ? la->rstd_pf : rstd2, mlp_out, &L->post_ffn_norm, NULL,
                                   T, (int)d, c->norm_eps);
            mlp_out = aux2;
        }
        for (int64_t i = 0; i < T * d; i++) x[i] += mlp_out[i];
        if (fam->parallel_block)
            for (int64_t i = 0; i < T * d; i++) x[i] += attn_out[i];
        if (run_hooks(o, XLE_POINT_BLOCK_OUT, l, x, T, (int)d)) goto stopped;
    }
    if (cache) cache->len += T;

    /* Final norm and the logits of the requested rows. */
    {
        float *xnf = acts ? acts->xnf : xn, *rf = acts ? acts->rstd_f : rstd;
        if (acts) memcpy(acts->x_final, x, (size_t)(T * d) * sizeof(float));
        xle_block_norm_forward(fam, xnf, rf, x, &m->w.out_norm, &m->w.out_norm_b, T, (int)d, c->norm_eps);
        if (logits) {
            for (int i = 0; i < n_rows; i++) memcpy(gathered + i * d, xnf + (int64_t)rows[i] * d, (size_t)d * sizeof(float));
            /* lm_head matmul in chunks of rows so the workspace stays small. */
            xle_matmul_forward(logits, gathered, &m->w.lm_head, &m->w.lm_head_b, n_rows, scratch,
                               m->precision);
            if (c->final_softcap > 0) xle_softcap_forward(logits, c->final_softcap, n_rows * V);
            for (int64_t i = 0; i < n_rows * V; i++)
                if (!isfinite(logits[i])) {
                    st = xle_fail(err, XLE_ERR_NUMERIC, "%s: non-finite logit (NaN or Inf in the weights?)", m->path);
                    goto done;
                }
        }
        if (acts) acts->valid = 1;
    }
    goto done;
stopped:
    if (cache) cache->len += T;
done:
    free(ws);
    free(pos);
    free(inv_freq);
    free(slopes);
    return st;
}
