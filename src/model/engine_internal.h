/*
 * engine_internal.h: state shared by the forward pass, the backward pass and the KV cache.
 */
#ifndef XLE_ENGINE_INTERNAL_H
#define XLE_ENGINE_INTERNAL_H

#include "model/family.h"
#include "model/model_internal.h"

/* Per-layer activations kept for the backward pass (all f32, [T, width]). */
typedef struct xle_layer_acts {
    float *x_in, *rstd1, *xn1, *q, *k, *v, *att, *probs, *h_mid, *rstd2, *xn2, *gate, *up, *key;
    /* a family with sandwich norms (Gemma-2): the attention and MLP outputs before their
     * norms, and those norms' 1/rms; NULL otherwise */
    float *att_o, *rstd_pa, *mlp_o, *rstd_pf;
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
    float *x_embd, *rstd_e;   /* the embedding rows before their LayerNorm and its 1/std (BLOOM) */
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
/* The dims of a head RoPE rotates (xle_config.rotary_dim, else all). */
int xle_rotary_dim(const xle_config *c);
/* The attention scores' scale (xle_config.attn_scale, else 1/√head_dim). */
float xle_attn_scale(const xle_config *c);
/* Layer l's sliding window (0: none): the family says on which layers the config's applies. */
int xle_layer_window(const xle_model *m, int layer);
/* The factor on the embedding rows (√d in the embedding's dtype for Gemma; else 1). */
float xle_embed_scale(const xle_model *m);

/* ---- a family's choices inside a block, each written once (block_ops.c) ------------------ */

/* The family's norm of x [T, d] into out (LayerNorm with bias, or RMSNorm); rstd[T] kept. */
void xle_block_norm_forward(const xle_family *fam, float *out, float *rstd, const float *x,
                            const xle_tensor *weight, const xle_tensor *bias, int T, int d, float eps);
/* dx += the norm's input gradient; dweight, dbias (may be NULL) += the parameter gradients. */
void xle_block_norm_backward(const xle_family *fam, float *dx, float *dweight, float *dbias,
                             const float *dout, const float *x, const xle_tensor *weight,
                             const float *rstd, int T, int d);
/* Rotary positions on q [T, heads·hd] and k (nothing for learned positions). */
void xle_block_positions_forward(const xle_family *fam, const xle_config *c, float *q, float *k,
                                 const int *pos, const double *inv_freq, int T);
void xle_block_positions_backward(const xle_family *fam, const xle_config *c, float *dq, float *dk,
                                  const int *pos, const double *inv_freq, int T);
/* The MLP up to its key (the input of w_down) [T, f] from the normed input xn: SwiGLU (gate and
 * up kept) or GELU (up keeps the pre-activation, gate unused). */
void xle_block_mlp_key_forward(const xle_family *fam, const xle_layer_weights *L, float *key,
                               float *gate, float *up, const float *xn, int T, int64_t f,
                               float *scratch, xle_precision prec);
/* Its backward from dkey: dxn += the input gradient (dgate, dup [T, f] are workspace); with GL,
 * the weight gradients too (then xn is needed; otherwise it may be NULL). */
void xle_block_mlp_key_backward(const xle_family *fam, const xle_layer_weights *L,
                                xle_layer_weights *GL, float *dxn, float *dgate, float *dup,
                                const float *dkey, const float *xn, const float *gate,
                                const float *up, int T, int64_t f, float *scratch);

#endif
