/*
 * optim.c: the optimiser side of training: the model's trainable tensors paired with their
 * gradients, the global gradient norm (double accumulation in a fixed order, so it does not
 * depend on the thread count), PyTorch's clip_grad_norm_ factor, and AdamW exactly as
 * torch.optim.AdamW's single-tensor path computes it (decoupled weight decay first, then the
 * bias-corrected Adam step).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/formats_internal.h"
#include "train/train_internal.h"

xle_status xle_params_collect(xle_model *m, xle_grads *grads, xle_param **out, int *n_out,
                              float **moments, xle_error *err) {
    const xle_config *c = xle_model_config(m);
    xle_weights *w = xle_model_weights(m), *g = xle_grads_weights(grads);
    int cap = XLE_W_KIND_COUNT * (c->n_layers + 1);
    xle_param *ps = calloc((size_t)cap, sizeof *ps);
    if (!ps) return xle_fail(err, XLE_ERR_NOMEM, "train: out of memory");
    int n = 0;
    int64_t total = 0;
    for (int k = 0; k < XLE_W_KIND_COUNT; k++) {
        if (k == XLE_W_LM_HEAD && c->tied_embeddings) continue; /* same tensor as the embedding */
        int nl = xle_wkind_per_layer((xle_wkind)k) ? c->n_layers : 1;
        for (int l = 0; l < nl; l++) {
            xle_tensor *wt = xle_weight_slot(w, (xle_wkind)k, l), *gt = xle_weight_slot(g, (xle_wkind)k, l);
            if (!wt->data) continue;
            if (wt->dtype != XLE_F32 || !gt->data) {
                free(ps);
                return xle_fail(err, XLE_ERR_ARG, "train: weights must be f32 with gradients");
            }
            xle_param *p = &ps[n++];
            p->w = wt->data;
            p->g = gt->data;
            p->n = xle_tensor_numel(wt);
            p->decay = wt->ndim == 2;
            xle_weight_name(XLE_FORMAT_HF, (xle_wkind)k, l, p->name, sizeof p->name);
            total += p->n;
        }
    }
    float *mem = calloc((size_t)(2 * total), sizeof(float));
    if (!mem) {
        free(ps);
        return xle_fail(err, XLE_ERR_NOMEM, "train: out of memory for the optimiser state");
    }
    int64_t off = 0;
    for (int i = 0; i < n; i++) {
        ps[i].m = mem + off;
        ps[i].v = mem + total + off;
        off += ps[i].n;
    }
    *out = ps;
    *n_out = n;
    *moments = mem;
    return XLE_OK;
}

double xle_grad_norm(const xle_param *ps, int n) {
    double ss = 0;
    for (int i = 0; i < n; i++) {
        const float *g = ps[i].g;
        double s = 0;
        for (int64_t j = 0; j < ps[i].n; j++) s += (double)g[j] * g[j];
        ss += s;
    }
    return sqrt(ss);
}

float xle_clip_scale(double norm, float clip) {
    if (clip <= 0) return 1.0f;
    double s = clip / (norm + 1e-6);
    return s < 1.0 ? (float)s : 1.0f;
}

void xle_adamw_step(xle_param *ps, int n, int64_t t, float lr, float beta1, float beta2, float eps,
                    float weight_decay, float gscale) {
    const double bc1 = 1.0 - pow(beta1, (double)t), bc2 = 1.0 - pow(beta2, (double)t);
    const float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    const float one_b1 = 1.0f - beta1, one_b2 = 1.0f - beta2;
    for (int i = 0; i < n; i++) {
        xle_param *p = &ps[i];
        const float decay = p->decay ? 1.0f - lr * weight_decay : 1.0f;
        float *w = p->w, *m = p->m, *v = p->v;
        const float *g = p->g;
#pragma omp parallel for schedule(static)
        for (int64_t j = 0; j < p->n; j++) {
            float gj = g[j] * gscale;
            w[j] *= decay;
            m[j] = m[j] * beta1 + gj * one_b1;
            v[j] = v[j] * beta2 + gj * gj * one_b2;
            float denom = sqrtf(v[j]) / bc2_sqrt + eps;
            w[j] -= step_size * (m[j] / denom);
        }
    }
}
