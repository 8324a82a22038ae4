/*
 * engine_internal.h: state shared by the forward pass, the backward pass and the KV cache.
 */
#ifndef XLE_ENGINE_INTERNAL_H
#define XLE_ENGINE_INTERNAL_H

#include "model/model_internal.h"

/* Per-layer activations kept for the backward pass (all f32, [T, width]). */
typedef struct xle_layer_acts {
    float *x_in, *rstd1, *xn1, *q, *k, *v, *att, *probs, *h_mid, *rstd2, *xn2, *gate, *up, *key;
    int64_t probs_per_seq_offset; /* unused when probs are laid out via seq_probs_offset */
} xle_layer_acts;

struct xle_acts {
    float *mem;
    size_t cap_floats;
    int T, n_layers, keep_from;
    int n_seqs;
    int *seq_start;           /* copy of the batch layout, n_seqs + 1 */
    int64_t *probs_offset;    /* per sequence, offset into a layer's probs (floats) */
    int *pos;                 /* per token position */
    int32_t *tokens;
    int *logit_rows;          /* rows that produced logits */
    int n_logit_rows;
    xle_layer_acts *layers;   /* n_layers entries; only layers >= keep_from are filled */
    float *x_final, *rstd_f, *xnf;
    size_t cap_ints;
    void *int_mem;
    int valid;
};

struct xle_kv_cache {
    int max_tokens, len, n_layers, kv_dim;
    float *k, *v; /* [n_layers][max_tokens][kv_dim] */
};

struct xle_grads {
    xle_weights w;     /* f32 tensors shaped like the model's, owned */
    float *mem;
    size_t n_floats;
    int n_layers;
};

/* inv_freq[hd/2] for the model's RoPE (theta, llama3/linear scaling, GGUF rope_freqs). */
void xle_rope_inv_freq(const xle_model *m, double *inv_freq);

#endif
