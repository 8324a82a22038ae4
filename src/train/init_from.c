/*
 * init_from.c: training that starts from an existing model's weights instead of a random
 * init (`xledit train --init MODEL`, used to fine-tune a model on new text). The model's
 * configuration sets the hyperparameters' shape; the trainer then makes its usual owned f32
 * model and copies the weights into it (converted from BF16/F16/quantized storage), so the
 * rest of the training loop is unchanged and the optimizer starts fresh.
 */
#include <string.h>

#include "train/train_internal.h"

void xle_train_hparams_from_config(xle_train_hparams *hp, const xle_config *cfg) {
    hp->dim = cfg->dim;
    hp->n_layers = cfg->n_layers;
    hp->n_heads = cfg->n_heads;
    hp->n_kv_heads = cfg->n_kv_heads;
    hp->ffn_dim = cfg->ffn_dim;
    hp->max_seq_len = cfg->max_seq_len;
    hp->tied_embeddings = cfg->tied_embeddings;
    hp->norm_eps = cfg->norm_eps;
    hp->rope_theta = cfg->rope_theta;
}

/* The first architecture field where the source model differs from what training builds (the
 * trainer's models are plain Llama: rotate-half RoPE, no scaling, no biases, no window). */
static xle_status check_same_architecture(const char *path, const xle_config *have, const xle_weights *w,
                                          const xle_config *want, xle_error *err) {
#define SAME_INT(field)                                                                                      \
    if (have->field != want->field)                                                                          \
        return xle_fail(err, XLE_ERR_ARG, "%s: %s: %d, the training config says %d", path, #field,          \
                        (int)have->field, (int)want->field);
#define SAME_FLOAT(field)                                                                                    \
    if (have->field != want->field)                                                                          \
        return xle_fail(err, XLE_ERR_ARG, "%s: %s: %g, the training config says %g", path, #field,          \
                        (double)have->field, (double)want->field);
    SAME_INT(arch)
    SAME_INT(dim)
    SAME_INT(ffn_dim)
    SAME_INT(n_layers)
    SAME_INT(n_heads)
    SAME_INT(n_kv_heads)
    SAME_INT(head_dim)
    SAME_INT(tied_embeddings)
    SAME_FLOAT(norm_eps)
    SAME_FLOAT(rope_theta)
#undef SAME_INT
#undef SAME_FLOAT
    if (have->vocab_size != want->vocab_size)
        return xle_fail(err, XLE_ERR_ARG, "%s: vocab_size: %d rows, the tokenizer has %d tokens", path,
                        have->vocab_size, want->vocab_size);
    if (have->rope_interleaved)
        return xle_fail(err, XLE_ERR_ARG, "%s: rope: interleaved (GGUF / llama2.c layout); training starts "
                        "from Hugging Face folders", path);
    if (have->rope_scaling != XLE_ROPE_NONE || w->rope_freqs.data)
        return xle_fail(err, XLE_ERR_ARG, "%s: rope_scaling: set; the trainer has no RoPE scaling", path);
    if (have->sliding_window)
        return xle_fail(err, XLE_ERR_ARG, "%s: sliding_window: %d; the trainer has none", path, have->sliding_window);
    for (int l = 0; l < have->n_layers; l++) {
        const xle_layer_weights *L = &w->layers[l];
        if (L->bq.data || L->bk.data || L->bv.data || L->bo.data)
            return xle_fail(err, XLE_ERR_ARG, "%s: layer %d: attention biases; the trainer's models have none",
                            path, l);
    }
    return XLE_OK;
}

static void copy_f32(xle_tensor *dst, const xle_tensor *src) {
    xle_tensor_row_to_f32(src, 0, xle_tensor_numel(src), dst->data);
}

xle_status xle_train_model_from(const char *path, const xle_config *cfg, xle_model **out, char fingerprint[65],
                                xle_error *err) {
    *out = NULL;
    xle_model *src = NULL, *m = NULL;
    xle_status st = xle_model_load(path, &src, err);
    if (st != XLE_OK) return st;
    xle_weights *w = xle_model_weights(src);
    st = check_same_architecture(path, xle_model_config(src), w, cfg, err);
    /* The init values are overwritten below; xle_model_new only lays the tensors out. */
    if (st == XLE_OK) st = xle_model_new(cfg, 0, 1.0f, &m, err);
    if (st == XLE_OK) {
        xle_weights *d = xle_model_weights(m);
        copy_f32(&d->tok_embd, &w->tok_embd);
        copy_f32(&d->out_norm, &w->out_norm);
        if (!cfg->tied_embeddings) copy_f32(&d->lm_head, &w->lm_head);
        for (int l = 0; l < cfg->n_layers; l++) {
            xle_layer_weights *D = &d->layers[l];
            const xle_layer_weights *S = &w->layers[l];
            copy_f32(&D->attn_norm, &S->attn_norm);
            copy_f32(&D->wq, &S->wq);
            copy_f32(&D->wk, &S->wk);
            copy_f32(&D->wv, &S->wv);
            copy_f32(&D->wo, &S->wo);
            copy_f32(&D->ffn_norm, &S->ffn_norm);
            copy_f32(&D->w_gate, &S->w_gate);
            copy_f32(&D->w_up, &S->w_up);
            copy_f32(&D->w_down, &S->w_down);
        }
        if (fingerprint) xle_model_fingerprint(src, fingerprint);
        *out = m;
    }
    xle_model_free(src);
    return st;
}
