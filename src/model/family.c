/*
 * family.c: the family descriptions (family.h): Llama (with Mistral and Qwen2, which differ
 * only in numbers and optional biases the config names), GPT-2, GPT-J, Gemma, Gemma-2 and BLOOM. A
 * description is data; the engine reads it (docs/families.md says where).
 */
#include "model/family.h"

static const xle_family LLAMA = {
    .arch = XLE_ARCH_LLAMA,
    .name = "Llama",
    .norm = XLE_NORM_RMS,
    .mlp = XLE_MLP_SWIGLU,
    .pos = XLE_POS_ROPE,
    .has = {
        [XLE_W_TOK_EMBD] = XLE_REQUIRED, [XLE_W_OUT_NORM] = XLE_REQUIRED,
        [XLE_W_LM_HEAD] = XLE_REQUIRED, [XLE_W_ROPE_FREQS] = XLE_OPTIONAL,
        [XLE_W_ATTN_NORM] = XLE_REQUIRED, [XLE_W_Q] = XLE_REQUIRED, [XLE_W_K] = XLE_REQUIRED,
        [XLE_W_V] = XLE_REQUIRED, [XLE_W_O] = XLE_REQUIRED, [XLE_W_BQ] = XLE_OPTIONAL,
        [XLE_W_BK] = XLE_OPTIONAL, [XLE_W_BV] = XLE_OPTIONAL, [XLE_W_BO] = XLE_OPTIONAL,
        [XLE_W_FFN_NORM] = XLE_REQUIRED, [XLE_W_GATE] = XLE_REQUIRED, [XLE_W_UP] = XLE_REQUIRED,
        [XLE_W_DOWN] = XLE_REQUIRED,
    },
    .hf_layer_prefix = "model.layers.%d.",
    .hf_name = {
        [XLE_W_TOK_EMBD] = "model.embed_tokens.weight", [XLE_W_OUT_NORM] = "model.norm.weight",
        [XLE_W_LM_HEAD] = "lm_head.weight", [XLE_W_ROPE_FREQS] = "rope_freqs",
        [XLE_W_ATTN_NORM] = "input_layernorm.weight", [XLE_W_Q] = "self_attn.q_proj.weight",
        [XLE_W_K] = "self_attn.k_proj.weight", [XLE_W_V] = "self_attn.v_proj.weight",
        [XLE_W_O] = "self_attn.o_proj.weight", [XLE_W_BQ] = "self_attn.q_proj.bias",
        [XLE_W_BK] = "self_attn.k_proj.bias", [XLE_W_BV] = "self_attn.v_proj.bias",
        [XLE_W_BO] = "self_attn.o_proj.bias", [XLE_W_FFN_NORM] = "post_attention_layernorm.weight",
        [XLE_W_GATE] = "mlp.gate_proj.weight", [XLE_W_UP] = "mlp.up_proj.weight",
        [XLE_W_DOWN] = "mlp.down_proj.weight",
    },
    .modules = {"model.layers.{}.mlp.down_proj", "model.layers.{}.mlp.down_proj.weight",
                "model.layers.{}", "model.layers.{}.mlp", "model.layers.{}.self_attn", "model.norm",
                "lm_head", "model.embed_tokens"},
    /* EasyEdit's llama-7b files: ROME [5], MEMIT [4..8], FT [21]; MEMIT λ 15000 at 11008 */
    .edit = {32, 5, 4, 8, 21, 15000, 11008},
};

/* GPT-2 (transformers' GPT2LMHeadModel): LayerNorm with bias, learned positions, a gelu_new MLP
 * with biases, every projection a Conv1D stored [in, out], q/k/v fused in c_attn. */
static const xle_family GPT2 = {
    .arch = XLE_ARCH_GPT2,
    .name = "GPT-2",
    .norm = XLE_NORM_LAYER,
    .mlp = XLE_MLP_GELU,
    .pos = XLE_POS_LEARNED,
    .gguf_fused_qkv = 1,
    .has = {
        [XLE_W_TOK_EMBD] = XLE_REQUIRED, [XLE_W_OUT_NORM] = XLE_REQUIRED,
        [XLE_W_LM_HEAD] = XLE_REQUIRED, [XLE_W_POS_EMBD] = XLE_REQUIRED,
        [XLE_W_OUT_NORM_B] = XLE_REQUIRED,
        [XLE_W_ATTN_NORM] = XLE_REQUIRED, [XLE_W_Q] = XLE_REQUIRED, [XLE_W_K] = XLE_REQUIRED,
        [XLE_W_V] = XLE_REQUIRED, [XLE_W_O] = XLE_REQUIRED, [XLE_W_BQ] = XLE_REQUIRED,
        [XLE_W_BK] = XLE_REQUIRED, [XLE_W_BV] = XLE_REQUIRED, [XLE_W_BO] = XLE_REQUIRED,
        [XLE_W_FFN_NORM] = XLE_REQUIRED, [XLE_W_UP] = XLE_REQUIRED, [XLE_W_DOWN] = XLE_REQUIRED,
        [XLE_W_ATTN_NORM_B] = XLE_REQUIRED, [XLE_W_FFN_NORM_B] = XLE_REQUIRED,
        [XLE_W_B_UP] = XLE_REQUIRED, [XLE_W_B_DOWN] = XLE_REQUIRED,
    },
    .hf_layer_prefix = "transformer.h.%d.",
    .hf_name = {
        [XLE_W_TOK_EMBD] = "transformer.wte.weight", [XLE_W_OUT_NORM] = "transformer.ln_f.weight",
        [XLE_W_LM_HEAD] = "lm_head.weight", [XLE_W_POS_EMBD] = "transformer.wpe.weight",
        [XLE_W_OUT_NORM_B] = "transformer.ln_f.bias",
        [XLE_W_ATTN_NORM] = "ln_1.weight", [XLE_W_Q] = "attn.c_attn.weight",
        [XLE_W_K] = "attn.c_attn.weight", [XLE_W_V] = "attn.c_attn.weight",
        [XLE_W_O] = "attn.c_proj.weight", [XLE_W_BQ] = "attn.c_attn.bias",
        [XLE_W_BK] = "attn.c_attn.bias", [XLE_W_BV] = "attn.c_attn.bias",
        [XLE_W_BO] = "attn.c_proj.bias", [XLE_W_FFN_NORM] = "ln_2.weight",
        [XLE_W_UP] = "mlp.c_fc.weight", [XLE_W_DOWN] = "mlp.c_proj.weight",
        [XLE_W_ATTN_NORM_B] = "ln_1.bias", [XLE_W_FFN_NORM_B] = "ln_2.bias",
        [XLE_W_B_UP] = "mlp.c_fc.bias", [XLE_W_B_DOWN] = "mlp.c_proj.bias",
    },
    .hf_layout = {
        [XLE_W_Q] = XLE_LAYOUT_FUSED_QKV_T, [XLE_W_K] = XLE_LAYOUT_FUSED_QKV_T,
        [XLE_W_V] = XLE_LAYOUT_FUSED_QKV_T, [XLE_W_BQ] = XLE_LAYOUT_FUSED_QKV_T,
        [XLE_W_BK] = XLE_LAYOUT_FUSED_QKV_T, [XLE_W_BV] = XLE_LAYOUT_FUSED_QKV_T,
        [XLE_W_O] = XLE_LAYOUT_TRANSPOSED, [XLE_W_UP] = XLE_LAYOUT_TRANSPOSED,
        [XLE_W_DOWN] = XLE_LAYOUT_TRANSPOSED,
    },
    /* as EasyEdit's hparams/{ROME,MEMIT,FT}/gpt2-xl.yaml name them */
    .modules = {"transformer.h.{}.mlp.c_proj", "transformer.h.{}.mlp.c_proj.weight",
                "transformer.h.{}", "transformer.h.{}.mlp", "transformer.h.{}.attn",
                "transformer.ln_f", "lm_head", "transformer.wte"},
    /* EasyEdit's gpt2-xl files (48 layers, d_ff 6400): ROME [17], MEMIT [13..17] with λ 20000,
     * FT [0] */
    .edit = {48, 17, 13, 17, 0, 20000, 6400},
};

/* GPT-J (transformers' GPTJForCausalLM): one LayerNorm feeds attention and the MLP in parallel,
 * RoPE on the first rotary_dim dims of each head in interleaved pairs (rotate_every_two), q/k/v/out
 * without biases, a gelu_new MLP with biases, its own lm_head with a bias. */
static const xle_family GPTJ = {
    .arch = XLE_ARCH_GPTJ,
    .name = "GPT-J",
    .norm = XLE_NORM_LAYER,
    .mlp = XLE_MLP_GELU,
    .pos = XLE_POS_ROPE,
    .parallel_block = 1,
    .has = {
        [XLE_W_TOK_EMBD] = XLE_REQUIRED, [XLE_W_OUT_NORM] = XLE_REQUIRED,
        [XLE_W_LM_HEAD] = XLE_REQUIRED, [XLE_W_OUT_NORM_B] = XLE_REQUIRED,
        [XLE_W_LM_HEAD_B] = XLE_REQUIRED,
        [XLE_W_ATTN_NORM] = XLE_REQUIRED, [XLE_W_ATTN_NORM_B] = XLE_REQUIRED,
        [XLE_W_Q] = XLE_REQUIRED, [XLE_W_K] = XLE_REQUIRED, [XLE_W_V] = XLE_REQUIRED,
        [XLE_W_O] = XLE_REQUIRED, [XLE_W_UP] = XLE_REQUIRED, [XLE_W_B_UP] = XLE_REQUIRED,
        [XLE_W_DOWN] = XLE_REQUIRED, [XLE_W_B_DOWN] = XLE_REQUIRED,
    },
    .hf_layer_prefix = "transformer.h.%d.",
    .hf_name = {
        [XLE_W_TOK_EMBD] = "transformer.wte.weight", [XLE_W_OUT_NORM] = "transformer.ln_f.weight",
        [XLE_W_OUT_NORM_B] = "transformer.ln_f.bias", [XLE_W_LM_HEAD] = "lm_head.weight",
        [XLE_W_LM_HEAD_B] = "lm_head.bias",
        [XLE_W_ATTN_NORM] = "ln_1.weight", [XLE_W_ATTN_NORM_B] = "ln_1.bias",
        [XLE_W_Q] = "attn.q_proj.weight", [XLE_W_K] = "attn.k_proj.weight",
        [XLE_W_V] = "attn.v_proj.weight", [XLE_W_O] = "attn.out_proj.weight",
        [XLE_W_UP] = "mlp.fc_in.weight", [XLE_W_B_UP] = "mlp.fc_in.bias",
        [XLE_W_DOWN] = "mlp.fc_out.weight", [XLE_W_B_DOWN] = "mlp.fc_out.bias",
    },
    /* as EasyEdit's hparams/{ROME,MEMIT,FT}/gpt-j-6B.yaml name them */
    .modules = {"transformer.h.{}.mlp.fc_out", "transformer.h.{}.mlp.fc_out.weight",
                "transformer.h.{}", "transformer.h.{}.mlp", "transformer.h.{}.attn",
                "transformer.ln_f", "lm_head", "transformer.wte"},
    /* EasyEdit's gpt-j-6B files (28 layers, d_ff 16384): ROME [5], MEMIT [3..8] with λ 15000,
     * FT [21] */
    .edit = {28, 5, 3, 8, 21, 15000, 16384},
};

/* Gemma's tensors are Llama's, without biases. */
#define GEMMA_HAS                                                                                \
    [XLE_W_TOK_EMBD] = XLE_REQUIRED, [XLE_W_OUT_NORM] = XLE_REQUIRED,                          \
    [XLE_W_LM_HEAD] = XLE_REQUIRED, [XLE_W_ATTN_NORM] = XLE_REQUIRED, [XLE_W_Q] = XLE_REQUIRED, \
    [XLE_W_K] = XLE_REQUIRED, [XLE_W_V] = XLE_REQUIRED, [XLE_W_O] = XLE_REQUIRED,               \
    [XLE_W_FFN_NORM] = XLE_REQUIRED, [XLE_W_GATE] = XLE_REQUIRED, [XLE_W_UP] = XLE_REQUIRED,    \
    [XLE_W_DOWN] = XLE_REQUIRED
#define GEMMA_NAMES                                                                              \
    [XLE_W_TOK_EMBD] = "model.embed_tokens.weight", [XLE_W_OUT_NORM] = "model.norm.weight",      \
    [XLE_W_LM_HEAD] = "lm_head.weight", [XLE_W_ATTN_NORM] = "input_layernorm.weight",            \
    [XLE_W_Q] = "self_attn.q_proj.weight", [XLE_W_K] = "self_attn.k_proj.weight",                \
    [XLE_W_V] = "self_attn.v_proj.weight", [XLE_W_O] = "self_attn.o_proj.weight",                \
    [XLE_W_GATE] = "mlp.gate_proj.weight", [XLE_W_UP] = "mlp.up_proj.weight",                    \
    [XLE_W_DOWN] = "mlp.down_proj.weight"
#define GEMMA_MODULES                                                                            \
    {"model.layers.{}.mlp.down_proj", "model.layers.{}.mlp.down_proj.weight", "model.layers.{}", \
     "model.layers.{}.mlp", "model.layers.{}.self_attn", "model.norm", "lm_head",                \
     "model.embed_tokens"}
/* EasyEdit publishes no Gemma files: Llama-2-7B's (32 layers, d_ff 11008), scaled */
#define GEMMA_EDIT {32, 5, 4, 8, 21, 15000, 11008}

/* Gemma (GemmaForCausalLM): RMSNorm scaling by (1 + w), embeddings × √d, GeGLU, tied head. */
static const xle_family GEMMA = {
    .arch = XLE_ARCH_GEMMA,
    .name = "Gemma",
    .norm = XLE_NORM_RMS_ONE_PLUS,
    .mlp = XLE_MLP_GEGLU,
    .pos = XLE_POS_ROPE,
    .embed_scale_sqrt_dim = 1,
    .gguf_norm_plus_one = 1,
    .has = {GEMMA_HAS},
    .hf_layer_prefix = "model.layers.%d.",
    .hf_name = {GEMMA_NAMES, [XLE_W_FFN_NORM] = "post_attention_layernorm.weight"},
    .modules = GEMMA_MODULES,
    .edit = GEMMA_EDIT,
};

/* Gemma-2 (Gemma2ForCausalLM): Gemma with a norm after attention and after the MLP too (HF's
 * post_attention_layernorm is the one on the attention output, pre_feedforward_layernorm the
 * MLP's input norm), soft-capped scores and logits (xle_config), and the sliding window on the
 * even layers. */
static const xle_family GEMMA2 = {
    .arch = XLE_ARCH_GEMMA2,
    .name = "Gemma-2",
    .norm = XLE_NORM_RMS_ONE_PLUS,
    .mlp = XLE_MLP_GEGLU,
    .pos = XLE_POS_ROPE,
    .embed_scale_sqrt_dim = 1,
    .gguf_norm_plus_one = 1,
    .sandwich_norms = 1,
    .window_even_layers = 1,
    .has = {GEMMA_HAS, [XLE_W_POST_ATTN_NORM] = XLE_REQUIRED, [XLE_W_POST_FFN_NORM] = XLE_REQUIRED},
    .hf_layer_prefix = "model.layers.%d.",
    .hf_name = {GEMMA_NAMES, [XLE_W_FFN_NORM] = "pre_feedforward_layernorm.weight",
                [XLE_W_POST_ATTN_NORM] = "post_attention_layernorm.weight",
                [XLE_W_POST_FFN_NORM] = "post_feedforward_layernorm.weight"},
    .modules = GEMMA_MODULES,
    .edit = GEMMA_EDIT,
};

/* BLOOM (transformers' BloomForCausalLM): a LayerNorm on the embedding rows, ALiBi instead of
 * positions, q/k/v fused in query_key_value with rows per head, LayerNorm and every linear layer
 * with a bias, a tanh-GELU MLP, the head tied to word_embeddings. */
static const xle_family BLOOM = {
    .arch = XLE_ARCH_BLOOM,
    .name = "BLOOM",
    .norm = XLE_NORM_LAYER,
    .mlp = XLE_MLP_GELU,
    .pos = XLE_POS_ALIBI,
    .embed_norm = 1,
    .gguf_fused_qkv = 1, /* the converter reorders query_key_value's heads into q | k | v rows */
    .has = {
        [XLE_W_TOK_EMBD] = XLE_REQUIRED, [XLE_W_OUT_NORM] = XLE_REQUIRED,
        [XLE_W_LM_HEAD] = XLE_REQUIRED, [XLE_W_OUT_NORM_B] = XLE_REQUIRED,
        [XLE_W_EMBD_NORM] = XLE_REQUIRED, [XLE_W_EMBD_NORM_B] = XLE_REQUIRED,
        [XLE_W_ATTN_NORM] = XLE_REQUIRED, [XLE_W_Q] = XLE_REQUIRED, [XLE_W_K] = XLE_REQUIRED,
        [XLE_W_V] = XLE_REQUIRED, [XLE_W_O] = XLE_REQUIRED, [XLE_W_BQ] = XLE_REQUIRED,
        [XLE_W_BK] = XLE_REQUIRED, [XLE_W_BV] = XLE_REQUIRED, [XLE_W_BO] = XLE_REQUIRED,
        [XLE_W_FFN_NORM] = XLE_REQUIRED, [XLE_W_UP] = XLE_REQUIRED, [XLE_W_DOWN] = XLE_REQUIRED,
        [XLE_W_ATTN_NORM_B] = XLE_REQUIRED, [XLE_W_FFN_NORM_B] = XLE_REQUIRED,
        [XLE_W_B_UP] = XLE_REQUIRED, [XLE_W_B_DOWN] = XLE_REQUIRED,
    },
    .hf_layer_prefix = "transformer.h.%d.",
    .hf_name = {
        [XLE_W_TOK_EMBD] = "transformer.word_embeddings.weight",
        [XLE_W_EMBD_NORM] = "transformer.word_embeddings_layernorm.weight",
        [XLE_W_EMBD_NORM_B] = "transformer.word_embeddings_layernorm.bias",
        [XLE_W_OUT_NORM] = "transformer.ln_f.weight", [XLE_W_OUT_NORM_B] = "transformer.ln_f.bias",
        [XLE_W_LM_HEAD] = "lm_head.weight",
        [XLE_W_ATTN_NORM] = "input_layernorm.weight", [XLE_W_ATTN_NORM_B] = "input_layernorm.bias",
        [XLE_W_Q] = "self_attention.query_key_value.weight",
        [XLE_W_K] = "self_attention.query_key_value.weight",
        [XLE_W_V] = "self_attention.query_key_value.weight",
        [XLE_W_BQ] = "self_attention.query_key_value.bias",
        [XLE_W_BK] = "self_attention.query_key_value.bias",
        [XLE_W_BV] = "self_attention.query_key_value.bias",
        [XLE_W_O] = "self_attention.dense.weight", [XLE_W_BO] = "self_attention.dense.bias",
        [XLE_W_FFN_NORM] = "post_attention_layernorm.weight",
        [XLE_W_FFN_NORM_B] = "post_attention_layernorm.bias",
        [XLE_W_UP] = "mlp.dense_h_to_4h.weight", [XLE_W_B_UP] = "mlp.dense_h_to_4h.bias",
        [XLE_W_DOWN] = "mlp.dense_4h_to_h.weight", [XLE_W_B_DOWN] = "mlp.dense_4h_to_h.bias",
    },
    .hf_layout = {
        [XLE_W_Q] = XLE_LAYOUT_FUSED_QKV_HEADS, [XLE_W_K] = XLE_LAYOUT_FUSED_QKV_HEADS,
        [XLE_W_V] = XLE_LAYOUT_FUSED_QKV_HEADS, [XLE_W_BQ] = XLE_LAYOUT_FUSED_QKV_HEADS,
        [XLE_W_BK] = XLE_LAYOUT_FUSED_QKV_HEADS, [XLE_W_BV] = XLE_LAYOUT_FUSED_QKV_HEADS,
    },
    .modules = {"transformer.h.{}.mlp.dense_4h_to_h", "transformer.h.{}.mlp.dense_4h_to_h.weight",
                "transformer.h.{}", "transformer.h.{}.mlp", "transformer.h.{}.self_attention",
                "transformer.ln_f", "lm_head", "transformer.word_embeddings"},
    /* EasyEdit publishes no BLOOM files: gpt2-xl's (the same sequential LayerNorm/GELU block;
     * 48 layers, d_ff 6400), scaled */
    .edit = {48, 17, 13, 17, 0, 20000, 6400},
};

const xle_family *xle_family_of(xle_arch arch) {
    switch (arch) {
    case XLE_ARCH_GPT2: return &GPT2;
    case XLE_ARCH_GPTJ: return &GPTJ;
    case XLE_ARCH_GEMMA: return &GEMMA;
    case XLE_ARCH_GEMMA2: return &GEMMA2;
    case XLE_ARCH_BLOOM: return &BLOOM;
    case XLE_ARCH_LLAMA:
    case XLE_ARCH_MISTRAL:
    case XLE_ARCH_QWEN2: break;
    }
    return &LLAMA;
}
