/*
 * family.h: a model family as a description the engine, the loaders and the writers read
 * (docs/families.md): which norm, which MLP, which positions, which weight kinds a model of the
 * family has, and what the tensors are called in a Hugging Face folder. Per-model numbers
 * (sizes, eps, RoPE details, biases a config switches on) stay in xle_config. Also EasyEdit's
 * module names for the family. The forward pass
 * has one branch per choice, never one copy per family.
 */
#ifndef XLE_FAMILY_H
#define XLE_FAMILY_H

#include "xledit.h"

/* ---- weight kinds: every tensor a model of any family may have --------------------------- */

typedef enum xle_wkind {
    XLE_W_TOK_EMBD = 0, XLE_W_OUT_NORM, XLE_W_LM_HEAD, XLE_W_ROPE_FREQS,
    XLE_W_POS_EMBD,        /* learned positions [max_seq_len, d] (GPT-2) */
    XLE_W_OUT_NORM_B,      /* final LayerNorm bias [d] */
    XLE_W_LM_HEAD_B,       /* head bias [V] (GPT-J) */
    XLE_W_EMBD_NORM, XLE_W_EMBD_NORM_B, /* LayerNorm on the embedding [d] (BLOOM) */
    /* per layer: */
    XLE_W_ATTN_NORM, XLE_W_Q, XLE_W_K, XLE_W_V, XLE_W_O, XLE_W_BQ, XLE_W_BK, XLE_W_BV, XLE_W_BO,
    XLE_W_FFN_NORM, XLE_W_GATE, XLE_W_UP, XLE_W_DOWN,
    XLE_W_ATTN_NORM_B, XLE_W_FFN_NORM_B,   /* LayerNorm biases [d] */
    XLE_W_B_UP, XLE_W_B_DOWN,              /* MLP biases [f], [d] */
    XLE_W_POST_ATTN_NORM, XLE_W_POST_FFN_NORM, /* norms of the sublayer outputs [d] (Gemma-2) */
    XLE_W_KIND_COUNT
} xle_wkind;

#define XLE_W_FIRST_LAYER_KIND XLE_W_ATTN_NORM

static inline int xle_wkind_per_layer(xle_wkind k) { return k >= XLE_W_FIRST_LAYER_KIND; }

/* ---- the choices ------------------------------------------------------------------------- */

typedef enum xle_norm_kind {
    XLE_NORM_RMS = 0,      /* w * x / rms(x) (Llama) */
    XLE_NORM_LAYER,        /* (x - mean) / std * w + b (GPT-2, GPT-J, BLOOM) */
    XLE_NORM_RMS_ONE_PLUS, /* (1 + w) * x / rms(x) (Gemma, Gemma-2) */
} xle_norm_kind;

typedef enum xle_mlp_kind {
    XLE_MLP_SWIGLU = 0,    /* down(silu(gate x) * up x) (Llama) */
    XLE_MLP_GELU,          /* down(gelu_tanh(up x + b_up)) + b_down (GPT-2 c_fc/c_proj) */
    XLE_MLP_GEGLU,         /* down(gelu_tanh(gate x) * up x) (Gemma) */
} xle_mlp_kind;

typedef enum xle_pos_kind {
    XLE_POS_ROPE = 0,      /* rotary on q and k (xle_config says interleaved or rotate-half) */
    XLE_POS_LEARNED,       /* pos_embd[p] added to the embedding (GPT-2) */
    XLE_POS_ALIBI,         /* slope_h × (key − query position) added to head h's scores (BLOOM) */
} xle_pos_kind;

/* Whether a model of the family has a weight kind. */
typedef enum xle_presence {
    XLE_ABSENT = 0,        /* never: the slot stays empty */
    XLE_OPTIONAL,          /* the loader decides from the config (biases, rope_freqs) */
    XLE_REQUIRED,
} xle_presence;

/* How a Hugging Face file stores a tensor the engine keeps as [out, in]. */
typedef enum xle_hf_layout {
    XLE_LAYOUT_SAME = 0,
    XLE_LAYOUT_TRANSPOSED,     /* Conv1D weight [in, out] (GPT-2) */
    XLE_LAYOUT_FUSED_QKV_T,    /* GPT-2 c_attn: one Conv1D [d, 3d], columns q | k | v; its bias
                                * [3d] is the q, k, v biases end to end */
    XLE_LAYOUT_FUSED_QKV_ROWS, /* GGUF blk.N.attn_qkv [q + 2 kv, d]: rows q | k | v (the parts are
                                * views of it); its bias the same end to end */
    XLE_LAYOUT_PLUS_ONE,       /* GGUF Gemma norms: the file stores 1 + w, the slot a copy of w */
    XLE_LAYOUT_FUSED_QKV_HEADS, /* BLOOM query_key_value: one [3d, d] weight whose rows are
                                * [n_head, 3, head_dim] (head 0's q, k, v rows, then head 1's);
                                * its bias [3d] likewise */
} xle_hf_layout;

/* EasyEdit's module-name templates for the family: what its hyper-parameter files must say
 * ("{}" is the layer). */
typedef struct xle_module_names {
    const char *rewrite, *rewrite_param;  /* the MLP output projection; FT's parameter name */
    const char *layer, *mlp, *attn, *ln_f;
    const char *lm_head, *lm_head_tied;   /* the head; the embedding, also right when tied */
} xle_module_names;

/* The editing defaults EasyEdit publishes for the family's reference model (its depth and MLP
 * width); hparams.c scales the layers to another depth and λ to another width. */
typedef struct xle_edit_defaults {
    int depth;                  /* layers of the reference model (Llama-2-7B 32, GPT-2 XL 48) */
    int rome, memit_lo, memit_hi, ft;
    double mom2_update_weight;  /* MEMIT's λ ... */
    int mom2_ffn;               /* ... for this MLP width */
} xle_edit_defaults;

typedef struct xle_family {
    xle_arch arch;
    const char *name;              /* for messages: "Llama", "GPT-2" */
    xle_norm_kind norm;
    xle_mlp_kind mlp;
    xle_pos_kind pos;
    int parallel_block;            /* x + attn(norm(x)) + mlp(norm(x)), one norm (GPT-J) */
    int embed_scale_sqrt_dim;      /* embedding rows × √d rounded to the embedding's dtype (Gemma) */
    int sandwich_norms;            /* norms on the attention and MLP outputs too (Gemma-2) */
    int window_even_layers;        /* sliding_window on even layers only (Gemma-2) */
    /* How llama.cpp's converter (convert_hf_to_gguf.py) lays the family out in GGUF: */
    int gguf_fused_qkv;            /* q, k, v (and biases) fused in blk.N.attn_qkv (GPT-2) */
    int gguf_norm_plus_one;        /* RMSNorm weights stored as 1 + w (Gemma, Gemma-2) */
    int embed_norm;                /* LayerNorm on the embedding rows (BLOOM) */
    xle_presence has[XLE_W_KIND_COUNT];
    /* Hugging Face names: global kinds in full, per-layer kinds after hf_layer_prefix (with %d
     * for the layer); NULL for kinds the family never has. */
    const char *hf_layer_prefix;
    const char *hf_name[XLE_W_KIND_COUNT];
    xle_hf_layout hf_layout[XLE_W_KIND_COUNT];
    xle_module_names modules;
    xle_edit_defaults edit;
} xle_family;

/* The description of a model's family (never NULL: an unknown arch reads as Llama's). */
const xle_family *xle_family_of(xle_arch arch);

#endif
