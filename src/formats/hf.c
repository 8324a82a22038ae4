/*
 * hf.c: xle_load_hf, a model from a Hugging Face folder: config.json (llama, mistral, qwen2:
 * every field of formats-detail.md 1.3 that changes the math; gpt2: docs/families.md 6), one
 * model.safetensors or the shards named by model.safetensors.index.json (else, as transformers
 * does, pytorch_model.bin or the shards of pytorch_model.bin.index.json, read by torchbin.c
 * without running code), and tokenizer.json
 * (or a llama2.c tokenizer.bin, which xle_model_save writes for llama2.c models) when present.
 * F32/F16/BF16 tensors are views into private mappings; HF computes RoPE rotate-half. GPT-2's
 * Conv1D matrices, stored [in, out], are transposed into copies the model owns (in their stored
 * dtype), and its fused c_attn is split into q, k and v, so that every matrix the engine sees is
 * [out, in] (docs/families.md 2).
 */
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/formats_internal.h"
#include "formats/torchbin.h"

void xle_hf_state_free(void *p) {
    xle_hf_state *s = p;
    if (!s) return;
    for (int i = 0; i < s->n_shards; i++) {
        free(s->shards[i].name);
        free(s->shards[i].binds);
        xle_safetensors_free(s->shards[i].st);
    }
    free(s->shards);
    free(s->source);
    free(s->dir);
    free(s);
}

/* ---- config.json --------------------------------------------------------------------------- */

typedef struct cfg_reader {
    json_t *root;
    const char *path;
    xle_error *err;
} cfg_reader;

/* An integer field; absent or null gives dflt, or an error when required. */
static xle_status cfg_int(cfg_reader *r, const char *key, int required, int dflt, int *out) {
    json_t *v = json_object_get(r->root, key);
    if (!v || json_is_null(v)) {
        if (required) return xle_fail(r->err, XLE_ERR_FORMAT, "%s: %s: missing", r->path, key);
        *out = dflt;
        return XLE_OK;
    }
    if (!json_is_integer(v))
        return xle_fail(r->err, XLE_ERR_FORMAT, "%s: %s: not an integer", r->path, key);
    json_int_t x = json_integer_value(v);
    if (x < INT_MIN || x > INT_MAX)
        return xle_fail(r->err, XLE_ERR_FORMAT, "%s: %s: %lld is out of range", r->path, key, (long long)x);
    *out = (int)x;
    return XLE_OK;
}

static xle_status obj_num(json_t *obj, const char *path, const char *prefix, const char *key,
                          int required, double dflt, float *out, xle_error *err) {
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (required) return xle_fail(err, XLE_ERR_FORMAT, "%s: %s%s: missing", path, prefix, key);
        *out = (float)dflt;
        return XLE_OK;
    }
    if (!json_is_number(v))
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s%s: not a number", path, prefix, key);
    *out = (float)json_number_value(v);
    return XLE_OK;
}

static xle_status cfg_bool(cfg_reader *r, const char *key, int dflt, int *out) {
    json_t *v = json_object_get(r->root, key);
    if (!v || json_is_null(v)) {
        *out = dflt;
        return XLE_OK;
    }
    if (!json_is_boolean(v))
        return xle_fail(r->err, XLE_ERR_FORMAT, "%s: %s: not true or false", r->path, key);
    *out = json_is_true(v);
    return XLE_OK;
}

/* bos/eos: an integer, a list of integers (the first is used) or null. */
static xle_status cfg_token_id(cfg_reader *r, const char *key, int *out) {
    json_t *v = json_object_get(r->root, key);
    *out = -1;
    if (!v || json_is_null(v)) return XLE_OK;
    if (json_is_array(v)) v = json_array_size(v) ? json_array_get(v, 0) : NULL;
    if (!v) return XLE_OK;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT_MAX)
        return xle_fail(r->err, XLE_ERR_FORMAT, "%s: %s: not a token id", r->path, key);
    *out = (int)json_integer_value(v);
    return XLE_OK;
}

static xle_status read_rope_scaling(cfg_reader *r, xle_config *c) {
    const char *field = "rope_scaling";
    json_t *rs = json_object_get(r->root, field);
    if (!rs || json_is_null(rs)) {
        /* transformers v5 writes rope_parameters (with rope_theta inside) instead */
        field = "rope_parameters";
        rs = json_object_get(r->root, field);
        if (!rs || json_is_null(rs)) return XLE_OK;
    }
    if (!json_is_object(rs))
        return xle_fail(r->err, XLE_ERR_FORMAT, "%s: %s: not an object", r->path, field);
    char prefix[32];
    snprintf(prefix, sizeof prefix, "%s.", field);
    json_t *th = json_object_get(rs, "rope_theta");
    if (th && json_is_number(th)) c->rope_theta = (float)json_number_value(th);
    json_t *t = json_object_get(rs, "rope_type");
    if (!t) t = json_object_get(rs, "type");
    if (!t || json_is_null(t)) return XLE_OK;
    if (!json_is_string(t))
        return xle_fail(r->err, XLE_ERR_FORMAT, "%s: %srope_type: not a string", r->path, prefix);
    const char *type = json_string_value(t);
    xle_status st;
    if (strcmp(type, "default") == 0) return XLE_OK;
    if (strcmp(type, "linear") == 0) {
        c->rope_scaling = XLE_ROPE_LINEAR;
        return obj_num(rs, r->path, prefix, "factor", 1, 0, &c->rope_factor, r->err);
    }
    if (strcmp(type, "llama3") == 0) {
        c->rope_scaling = XLE_ROPE_LLAMA3;
        float orig = 0;
        if ((st = obj_num(rs, r->path, prefix, "factor", 1, 0, &c->rope_factor, r->err)) ||
            (st = obj_num(rs, r->path, prefix, "low_freq_factor", 1, 0, &c->rope_low_freq_factor, r->err)) ||
            (st = obj_num(rs, r->path, prefix, "high_freq_factor", 1, 0, &c->rope_high_freq_factor, r->err)) ||
            (st = obj_num(rs, r->path, prefix, "original_max_position_embeddings", 1, 0, &orig, r->err)))
            return st;
        if (!(orig >= 1 && orig <= (float)INT_MAX))
            return xle_fail(r->err, XLE_ERR_FORMAT, "%s: %soriginal_max_position_embeddings: %g is "
                            "not a positive integer", r->path, prefix, (double)orig);
        c->rope_original_max_pos = (int)orig;
        return XLE_OK;
    }
    return xle_fail(r->err, XLE_ERR_UNSUPPORTED, "%s: %srope_type: '%.40s' is not supported "
                    "(default, linear, llama3)", r->path, prefix, type);
}

static xle_status read_sliding_window(cfg_reader *r, xle_config *c) {
    xle_status st;
    if (c->arch == XLE_ARCH_MISTRAL) {
        /* MistralConfig's default is 4096 when the key is absent; null means no window */
        json_t *v = json_object_get(r->root, "sliding_window");
        return cfg_int(r, "sliding_window", 0, v ? 0 : 4096, &c->sliding_window);
    }
    if (c->arch != XLE_ARCH_QWEN2) return XLE_OK;
    int use = 0, window = 0, mwl = 0;
    if ((st = cfg_bool(r, "use_sliding_window", 0, &use))) return st;
    if (!use) return XLE_OK;
    if ((st = cfg_int(r, "sliding_window", 0, 0, &window)) ||
        (st = cfg_int(r, "max_window_layers", 0, 0, &mwl)))
        return st;
    /* transformers: layers with index >= max_window_layers use the window */
    if (mwl >= c->n_layers) return XLE_OK;
    if (mwl > 0)
        return xle_fail(r->err, XLE_ERR_UNSUPPORTED, "%s: max_window_layers: %d (a window on only "
                        "some layers) is not supported", r->path, mwl);
    c->sliding_window = window;
    return XLE_OK;
}

/* GPT-2 and GPT-J: activation_function must be the tanh GELU under one of its three names
 * ("gelu", the erf form, is another function). */
static xle_status check_tanh_gelu(cfg_reader *r) {
    json_t *act = json_object_get(r->root, "activation_function");
    if (!act || json_is_null(act)) return XLE_OK;
    const char *a = json_is_string(act) ? json_string_value(act) : "";
    if (strcmp(a, "gelu_new") && strcmp(a, "gelu_pytorch_tanh") && strcmp(a, "gelu_fast"))
        return xle_fail(r->err, XLE_ERR_UNSUPPORTED, "%s: activation_function: '%.40s' is not "
                        "supported (gelu_new, gelu_pytorch_tanh, gelu_fast)", r->path, a);
    return XLE_OK;
}

/* GPT-2 and GPT-J: the sizes under GPT-2's names (n_inner null: 4 x n_embd; one KV head per
 * head); n_positions defaults to the family's own context. */
static xle_status read_gpt2_sizes(cfg_reader *r, xle_config *c, int default_positions) {
    xle_status st;
    int n_inner = -1;
    if ((st = cfg_int(r, "n_embd", 1, 0, &c->dim)) || (st = cfg_int(r, "n_layer", 1, 0, &c->n_layers)) ||
        (st = cfg_int(r, "n_head", 1, 0, &c->n_heads)) ||
        (st = cfg_int(r, "vocab_size", 1, 0, &c->vocab_size)) ||
        (st = cfg_int(r, "n_positions", 0, default_positions, &c->max_seq_len)) ||
        (st = cfg_int(r, "n_inner", 0, -1, &n_inner)))
        return st;
    c->ffn_dim = n_inner == -1 ? 4 * c->dim : n_inner;
    c->n_kv_heads = c->n_heads;
    if (c->n_heads > 0 && c->dim % c->n_heads != 0)
        return xle_fail(r->err, XLE_ERR_FORMAT, "%s: n_embd: %d is not a multiple of n_head %d",
                        r->path, c->dim, c->n_heads);
    c->head_dim = c->n_heads > 0 ? c->dim / c->n_heads : 0;
    return XLE_OK;
}

/* GPT2Config (transformers): every field that changes the math is read or refused. */
static xle_status read_gpt2_config(cfg_reader *r, xle_config *c) {
    xle_status st;
    c->arch = XLE_ARCH_GPT2;
    if ((st = check_tanh_gelu(r))) return st;
    int scale = 1, by_layer = 0, cross = 0;
    if ((st = cfg_bool(r, "scale_attn_weights", 1, &scale)) ||
        (st = cfg_bool(r, "scale_attn_by_inverse_layer_idx", 0, &by_layer)) ||
        (st = cfg_bool(r, "add_cross_attention", 0, &cross)))
        return st;
    if (!scale)
        return xle_fail(r->err, XLE_ERR_UNSUPPORTED, "%s: scale_attn_weights: false is not supported", r->path);
    if (by_layer)
        return xle_fail(r->err, XLE_ERR_UNSUPPORTED, "%s: scale_attn_by_inverse_layer_idx: true is "
                        "not supported", r->path);
    if (cross)
        return xle_fail(r->err, XLE_ERR_UNSUPPORTED, "%s: add_cross_attention: true is not supported", r->path);
    if ((st = read_gpt2_sizes(r, c, 1024))) return st;
    if ((st = obj_num(r->root, r->path, "", "layer_norm_epsilon", 0, 1e-5, &c->norm_eps, r->err)))
        return st;
    c->rope_theta = 10000.0f; /* no RoPE: a valid number for the validator */
    c->rope_interleaved = 0;
    if ((st = cfg_bool(r, "tie_word_embeddings", 1, &c->tied_embeddings)) ||
        (st = cfg_token_id(r, "bos_token_id", &c->bos_id)) ||
        (st = cfg_token_id(r, "eos_token_id", &c->eos_id)))
        return st;
    return xle_config_validate_names(c, r->path, &XLE_NAMES_HF_GPT2, r->err);
}

/* GPTJConfig (transformers): every field that changes the math is read or refused. */
static xle_status read_gptj_config(cfg_reader *r, xle_config *c) {
    xle_status st;
    c->arch = XLE_ARCH_GPTJ;
    if ((st = check_tanh_gelu(r))) return st;
    if ((st = read_gpt2_sizes(r, c, 2048)) || (st = cfg_int(r, "rotary_dim", 1, 0, &c->rotary_dim))) return st;
    if (c->rotary_dim <= 0 || c->rotary_dim % 2 || c->rotary_dim > c->head_dim)
        return xle_fail(r->err, XLE_ERR_FORMAT, "%s: rotary_dim: %d is not an even number in [2, %d] "
                        "(n_embd / n_head)", r->path, c->rotary_dim, c->head_dim);
    if ((st = obj_num(r->root, r->path, "", "layer_norm_epsilon", 0, 1e-5, &c->norm_eps, r->err)))
        return st;
    c->rope_theta = 10000.0f;
    c->rope_interleaved = 1; /* rotate_every_two: pairs (2i, 2i+1) */
    if ((st = cfg_bool(r, "tie_word_embeddings", 0, &c->tied_embeddings)) ||
        (st = cfg_token_id(r, "bos_token_id", &c->bos_id)) ||
        (st = cfg_token_id(r, "eos_token_id", &c->eos_id)))
        return st;
    if (c->tied_embeddings)
        return xle_fail(r->err, XLE_ERR_UNSUPPORTED, "%s: tie_word_embeddings: true is not supported "
                        "for gptj (its lm_head has a bias)", r->path);
    return xle_config_validate_names(c, r->path, &XLE_NAMES_HF_GPT2, r->err);
}

/* BloomConfig (transformers): every field that changes the math is read or refused. The MLP is
 * 4 x hidden_size; ALiBi has no position limit, seq_length (when present) is the context. */
static xle_status read_bloom_config(cfg_reader *r, xle_config *c) {
    xle_status st;
    c->arch = XLE_ARCH_BLOOM;
    const char *dim_key = json_object_get(r->root, "n_embed") && !json_is_null(json_object_get(r->root, "n_embed"))
                              ? "n_embed" : "hidden_size";
    int post_ln = 0;
    if ((st = cfg_int(r, dim_key, 1, 0, &c->dim)) || (st = cfg_int(r, "n_layer", 1, 0, &c->n_layers)) ||
        (st = cfg_int(r, "n_head", 1, 0, &c->n_heads)) ||
        (st = cfg_int(r, "vocab_size", 1, 0, &c->vocab_size)) ||
        (st = cfg_int(r, "seq_length", 0, 2048, &c->max_seq_len)) ||
        (st = cfg_bool(r, "apply_residual_connection_post_layernorm", 0, &post_ln)))
        return st;
    if (post_ln)
        return xle_fail(r->err, XLE_ERR_UNSUPPORTED, "%s: apply_residual_connection_post_layernorm: "
                        "true is not supported (no released BLOOM uses it)", r->path);
    if (c->n_heads > 0 && c->dim % c->n_heads != 0)
        return xle_fail(r->err, XLE_ERR_FORMAT, "%s: %s: %d is not a multiple of n_head %d", r->path,
                        dim_key, c->dim, c->n_heads);
    c->ffn_dim = 4 * c->dim;
    c->n_kv_heads = c->n_heads;
    c->head_dim = c->n_heads > 0 ? c->dim / c->n_heads : 0;
    if ((st = obj_num(r->root, r->path, "", "layer_norm_epsilon", 0, 1e-5, &c->norm_eps, r->err)))
        return st;
    c->rope_theta = 10000.0f; /* no RoPE: a valid number for the validator */
    if ((st = cfg_bool(r, "tie_word_embeddings", 1, &c->tied_embeddings)) ||
        (st = cfg_token_id(r, "bos_token_id", &c->bos_id)) ||
        (st = cfg_token_id(r, "eos_token_id", &c->eos_id)))
        return st;
    const xle_config_names names = {dim_key, "4 x hidden_size", "n_layer", "n_head", "n_head",
                                    "hidden_size / n_head", "vocab_size", "seq_length",
                                    "layer_norm_epsilon", "rope_theta", "rope_scaling.factor",
                                    "sliding_window"};
    return xle_config_validate_names(c, r->path, &names, r->err);
}

/* Gemma's MLP activation: the tanh GELU under any of its names (old Gemma configs say "gelu" in
 * hidden_act, which transformers ran as the tanh form). */
static xle_status read_gemma_activation(cfg_reader *r) {
    const char *key = "hidden_activation";
    json_t *act = json_object_get(r->root, key);
    int old = 0;
    if (!act || json_is_null(act)) {
        key = "hidden_act";
        act = json_object_get(r->root, key);
        old = 1;
    }
    if (!act || json_is_null(act)) return XLE_OK;
    const char *a = json_is_string(act) ? json_string_value(act) : "";
    if (!strcmp(a, "gelu_pytorch_tanh") || !strcmp(a, "gelu_new") || !strcmp(a, "gelu_fast") ||
        (old && !strcmp(a, "gelu")))
        return XLE_OK;
    return xle_fail(r->err, XLE_ERR_UNSUPPORTED, "%s: %s: '%.40s' is not supported "
                    "(gelu_pytorch_tanh)", r->path, key, a);
}

/* Gemma-2's extras: soft-capping, the score scale, the window of the even layers. */
static xle_status read_gemma2_config(cfg_reader *r, xle_config *c) {
    xle_status st;
    float qpas = 0;
    /* Gemma2Config's defaults where a key is absent; null turns a soft-capping off */
    json_t *v = json_object_get(r->root, "attn_logit_softcapping");
    if ((st = obj_num(r->root, r->path, "", "attn_logit_softcapping", 0, v ? 0.0 : 50.0,
                      &c->attn_softcap, r->err)))
        return st;
    v = json_object_get(r->root, "final_logit_softcapping");
    if ((st = obj_num(r->root, r->path, "", "final_logit_softcapping", 0, v ? 0.0 : 30.0,
                      &c->final_softcap, r->err)) ||
        (st = obj_num(r->root, r->path, "", "query_pre_attn_scalar", 0, 224.0, &qpas, r->err)))
        return st;
    if (!(c->attn_softcap >= 0) || !(c->final_softcap >= 0))
        return xle_fail(r->err, XLE_ERR_FORMAT, "%s: %s: negative", r->path, c->attn_softcap < 0 ?
                        "attn_logit_softcapping" : "final_logit_softcapping");
    if (!(qpas > 0))
        return xle_fail(r->err, XLE_ERR_FORMAT, "%s: query_pre_attn_scalar: %g is not positive",
                        r->path, (double)qpas);
    c->attn_scale = (float)(1.0 / sqrt((double)qpas));
    v = json_object_get(r->root, "sliding_window");
    return cfg_int(r, "sliding_window", 0, v ? 0 : 4096, &c->sliding_window);
}

/* Fills c from config.json; *attn_bias tells which bias tensors the model must have. */
static xle_status read_config(const char *path, xle_config *c, int *attn_bias, xle_error *err) {
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        if (jerr.line < 1 && jerr.position == 0 && strstr(jerr.text, "unable to open"))
            return xle_fail(err, XLE_ERR_IO, "%s: cannot open", path);
        return xle_fail(err, XLE_ERR_FORMAT, "%s: line %d column %d: invalid JSON: %s", path,
                        jerr.line, jerr.column, jerr.text);
    }
    cfg_reader r = {root, path, err};
    xle_status st = XLE_OK;
    if (!json_is_object(root)) {
        st = xle_fail(err, XLE_ERR_FORMAT, "%s: top level: not a JSON object", path);
        goto done;
    }
    json_t *mt = json_object_get(root, "model_type");
    if (!json_is_string(mt)) {
        st = xle_fail(err, XLE_ERR_FORMAT, "%s: model_type: missing or not a string", path);
        goto done;
    }
    const char *type = json_string_value(mt);
    if (strcmp(type, "gpt2") == 0) {
        *attn_bias = 0;
        st = read_gpt2_config(&r, c);
        goto done;
    }
    if (strcmp(type, "gptj") == 0) {
        *attn_bias = 0;
        st = read_gptj_config(&r, c);
        goto done;
    }
    if (strcmp(type, "bloom") == 0) {
        *attn_bias = 0;
        st = read_bloom_config(&r, c);
        goto done;
    }
    if (strcmp(type, "llama") == 0) c->arch = XLE_ARCH_LLAMA;
    else if (strcmp(type, "mistral") == 0) c->arch = XLE_ARCH_MISTRAL;
    else if (strcmp(type, "qwen2") == 0) c->arch = XLE_ARCH_QWEN2;
    else if (strcmp(type, "gemma") == 0) c->arch = XLE_ARCH_GEMMA;
    else if (strcmp(type, "gemma2") == 0) c->arch = XLE_ARCH_GEMMA2;
    else {
        st = xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: model_type: '%.40s' is not supported "
                      "(llama, mistral, qwen2, gpt2, gptj, gemma, gemma2, bloom)", path, type);
        goto done;
    }
    /* Gemma and Gemma-2 read as Llama with their own activation, defaults and extras */
    const int gemma = c->arch == XLE_ARCH_GEMMA || c->arch == XLE_ARCH_GEMMA2;
    json_t *act = json_object_get(root, "hidden_act");
    if (gemma) {
        if ((st = read_gemma_activation(&r))) goto done;
    } else if (act && !(json_is_string(act) && strcmp(json_string_value(act), "silu") == 0)) {
        st = xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: hidden_act: only \"silu\" is supported", path);
        goto done;
    }
    int mlp_bias = 0;
    if ((st = cfg_bool(&r, "mlp_bias", 0, &mlp_bias))) goto done;
    if (mlp_bias) {
        st = xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: mlp_bias: true is not supported", path);
        goto done;
    }
    if ((st = cfg_int(&r, "hidden_size", 1, 0, &c->dim)) ||
        (st = cfg_int(&r, "intermediate_size", 1, 0, &c->ffn_dim)) ||
        (st = cfg_int(&r, "num_hidden_layers", 1, 0, &c->n_layers)) ||
        (st = cfg_int(&r, "num_attention_heads", 1, 0, &c->n_heads)) ||
        (st = cfg_int(&r, "num_key_value_heads", 0, c->n_heads, &c->n_kv_heads)) ||
        (st = cfg_int(&r, "vocab_size", 1, 0, &c->vocab_size)) ||
        (st = cfg_int(&r, "max_position_embeddings", 0, 2048, &c->max_seq_len)))
        goto done;
    if ((st = cfg_int(&r, "head_dim", 0, c->n_heads > 0 ? c->dim / c->n_heads : 0, &c->head_dim)))
        goto done;
    if ((st = obj_num(root, path, "", "rms_norm_eps", 0, 1e-6, &c->norm_eps, err)) ||
        (st = obj_num(root, path, "", "rope_theta", 0, 10000.0, &c->rope_theta, err)))
        goto done;
    if ((st = read_rope_scaling(&r, c)) || (st = read_sliding_window(&r, c)) ||
        (c->arch == XLE_ARCH_GEMMA2 && (st = read_gemma2_config(&r, c))) ||
        (st = cfg_bool(&r, "tie_word_embeddings", gemma, &c->tied_embeddings)) ||
        (st = cfg_token_id(&r, "bos_token_id", &c->bos_id)) ||
        (st = cfg_token_id(&r, "eos_token_id", &c->eos_id)))
        goto done;
    if (c->bos_id >= c->vocab_size || c->eos_id >= c->vocab_size) {
        int bos_bad = c->bos_id >= c->vocab_size;
        st = xle_fail(err, XLE_ERR_FORMAT, "%s: %s: %d is outside the vocabulary (vocab_size %d)", path,
                      bos_bad ? "bos_token_id" : "eos_token_id", bos_bad ? c->bos_id : c->eos_id,
                      c->vocab_size);
        goto done;
    }
    *attn_bias = 0;
    if (c->arch == XLE_ARCH_QWEN2) *attn_bias = 1; /* q, k, v */
    if (c->arch == XLE_ARCH_LLAMA || gemma) {
        int ab = 0;
        if ((st = cfg_bool(&r, "attention_bias", 0, &ab))) goto done;
        if (ab && gemma) {
            st = xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: attention_bias: true is not supported for %s",
                          path, type);
            goto done;
        }
        if (ab) *attn_bias = 2; /* q, k, v, o */
    }
    c->rope_interleaved = 0;
    st = xle_config_validate_names(c, path, &XLE_NAMES_HF, err);
done:
    json_decref(root);
    return st;
}

/* ---- shards ------------------------------------------------------------------------------- */

static int safe_file_name(const char *s) {
    return *s && !strchr(s, '/') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

/* Maps and parses one shard (once). index/tensor (NULL for an unsharded model) say which
 * weight_map entry named it, for the message when the file is missing. */
static xle_status add_shard(xle_model *m, xle_hf_state *s, const char *name, const char *index,
                            const char *tensor, xle_error *err) {
    for (int i = 0; i < s->n_shards; i++)
        if (strcmp(s->shards[i].name, name) == 0) return XLE_OK;
    xle_hf_shard *sh = realloc(s->shards, (size_t)(s->n_shards + 1) * sizeof *sh);
    if (!sh) return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", s->dir);
    s->shards = sh;
    xle_hf_shard *x = &s->shards[s->n_shards];
    memset(x, 0, sizeof *x);
    if (!(x->name = strdup(name))) return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", s->dir);
    s->n_shards++;
    char *path = xle_path_join(s->dir, name);
    if (!path) return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", s->dir);
    if (index && !xle_path_exists(path)) {
        free(path);
        return xle_fail(err, XLE_ERR_IO, "%s: weight_map: %s: shard %s is missing from the folder",
                        index, tensor, name);
    }
    void *base;
    size_t size;
    xle_status st = xle_map_file(path, &base, &size, err);
    if (st == XLE_OK && (st = xle_model_own_mapping(m, base, size, err)) != XLE_OK) xle_unmap(base, size);
    size_t len = strlen(name);
    int torch_bin = len > 4 && strcmp(name + len - 4, ".bin") == 0;
    if (st == XLE_OK && torch_bin) st = xle_torchbin_parse(path, base, size, &x->st, err);
    else if (st == XLE_OK) st = xle_safetensors_parse(path, base, size, &x->st, err);
    free(path);
    if (st != XLE_OK) return st;
    x->binds = calloc((size_t)(x->st->n ? x->st->n : 1), sizeof *x->binds);
    if (!x->binds) return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", s->dir);
    return XLE_OK;
}

/* Reads model.safetensors.index.json (or pytorch_model.bin.index.json): maps every shard and checks that each tensor of the
 * weight_map is in the shard it names. */
static xle_status read_index(xle_model *m, xle_hf_state *s, const char *path, xle_error *err) {
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: line %d column %d: invalid JSON: %s", path,
                        jerr.line, jerr.column, jerr.text);
    xle_status st = XLE_OK;
    json_t *wm = json_object_get(root, "weight_map");
    if (!json_is_object(wm)) {
        st = xle_fail(err, XLE_ERR_FORMAT, "%s: weight_map: missing or not an object", path);
        goto done;
    }
    const char *key;
    json_t *v;
    json_object_foreach(wm, key, v) {
        if (!json_is_string(v) || !safe_file_name(json_string_value(v))) {
            st = xle_fail(err, XLE_ERR_FORMAT, "%s: weight_map: %s: not a file name in the folder", path, key);
            goto done;
        }
        if ((st = add_shard(m, s, json_string_value(v), path, key, err))) goto done;
    }
    json_object_foreach(wm, key, v) {
        for (int i = 0; i < s->n_shards; i++)
            if (strcmp(s->shards[i].name, json_string_value(v)) == 0 &&
                !xle_safetensors_find(s->shards[i].st, key)) {
                st = xle_fail(err, XLE_ERR_FORMAT, "%s: weight_map: %s: not in %s", path, key,
                              s->shards[i].name);
                goto done;
            }
    }
    if (s->n_shards == 0) st = xle_fail(err, XLE_ERR_FORMAT, "%s: weight_map: empty", path);
done:
    json_decref(root);
    return st;
}

typedef struct name_at {
    const char *name;
    int shard;
} name_at;

static int cmp_name_at(const void *a, const void *b) {
    return strcmp(((const name_at *)a)->name, ((const name_at *)b)->name);
}

static xle_status check_no_duplicates(const xle_hf_state *s, xle_error *err) {
    size_t n = 0;
    for (int i = 0; i < s->n_shards; i++) n += (size_t)s->shards[i].st->n;
    if (s->n_shards < 2 || n < 2) return XLE_OK;
    name_at *all = malloc(n * sizeof *all);
    if (!all) return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", s->dir);
    size_t k = 0;
    for (int i = 0; i < s->n_shards; i++)
        for (int j = 0; j < s->shards[i].st->n; j++) all[k++] = (name_at){s->shards[i].st->entries[j].name, i};
    qsort(all, n, sizeof *all, cmp_name_at);
    xle_status st = XLE_OK;
    for (size_t i = 1; i < n && st == XLE_OK; i++)
        if (strcmp(all[i - 1].name, all[i].name) == 0)
            st = xle_fail(err, XLE_ERR_FORMAT, "%s/%s: %s: also in %s", s->dir,
                          s->shards[all[i].shard].name, all[i].name, s->shards[all[i - 1].shard].name);
    free(all);
    return st;
}

/* The entry named `name` in the first shard that has it, or NULL; *shard says which. A GPT-2
 * checkpoint saved from GPT2Model (the original gpt2 repositories) names its tensors without
 * "transformer.": that name is tried second. */
static const xle_st_entry *find_entry(const xle_hf_state *s, const char *name, int *shard) {
    for (int pass = 0; pass < 2; pass++) {
        const char *n = name;
        if (pass == 1) {
            if (strncmp(name, "transformer.", 12) != 0) break;
            n = name + 12;
        }
        for (int i = 0; i < s->n_shards; i++) {
            const xle_st_entry *e = xle_safetensors_find(s->shards[i].st, n);
            if (e) {
                *shard = i;
                return e;
            }
        }
    }
    return NULL;
}

/* The entry's dtype, checked (name for the message). */
static xle_status entry_dtype(const xle_hf_state *s, int shard, const xle_st_entry *e,
                              const char *name, xle_dtype *dt, xle_error *err) {
    if (!xle_st_dtype_to_xle(e->dtype, dt))
        return xle_fail(err, XLE_ERR_UNSUPPORTED, "%s/%s: %s: dtype %s is not supported (F32, "
                        "F16, BF16, F64)", s->dir, s->shards[shard].name, name, e->dtype);
    if (e->ndim < 1 || e->ndim > XLE_MAX_DIMS)
        return xle_fail(err, XLE_ERR_FORMAT, "%s/%s: %s: shape: %d dimensions", s->dir,
                        s->shards[shard].name, name, e->ndim);
    return XLE_OK;
}

static void bind_record(xle_hf_state *s, int shard, const xle_st_entry *e, xle_tensor *t,
                        xle_hf_layout layout) {
    xle_fmt_bind *b = &s->shards[shard].binds[e - s->shards[shard].st->entries];
    b->slot = t;
    b->loaded_data = t->data;
    b->loaded_dtype = t->dtype;
    b->layout = layout;
}

static xle_status bind_tensor(xle_model *m, xle_hf_state *s, xle_wkind kind, int layer, xle_error *err) {
    char name[128];
    xle_family_weight_name(xle_family_of(m->cfg.arch), XLE_FORMAT_HF, kind, layer, name, sizeof name);
    int sh;
    const xle_st_entry *e = find_entry(s, name, &sh);
    if (!e) return XLE_OK; /* missing tensors are reported by the caller or the shape check */
    xle_dtype dt;
    xle_status st = entry_dtype(s, sh, e, name, &dt, err);
    if (st != XLE_OK) return st;
    xle_tensor *t = xle_weight_slot(&m->w, kind, layer);
    if ((st = xle_tensor_view(m, t, dt, e->ndim, e->shape, e->data, err)) != XLE_OK) return st;
    bind_record(s, sh, e, t, XLE_LAYOUT_SAME);
    return XLE_OK;
}

/* ---- GPT-2's Conv1D layouts ---------------------------------------------------------------- */

/* Columns [c0, c0 + n) of the [rows, cols] matrix at src, transposed into a new [n, rows] tensor
 * the model owns, in t. */
static xle_status view_columns_transposed(xle_model *m, xle_tensor *t, xle_dtype dt, const void *src,
                                          int64_t rows, int64_t cols, int64_t c0, int64_t n,
                                          xle_error *err) {
    const size_t es = xle_dtype_size(dt);
    unsigned char *copy = malloc((size_t)(n * rows) * es);
    if (!copy) return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", m->path);
    const unsigned char *p = src;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < n; c++)
            memcpy(copy + (size_t)(c * rows + r) * es, p + (size_t)(r * cols + c0 + c) * es, es);
    xle_status st = xle_model_own_buffer(m, copy, err); /* frees copy on failure */
    if (st != XLE_OK) return st;
    t->dtype = dt;
    t->ndim = 2;
    for (int i = 0; i < XLE_MAX_DIMS; i++) t->shape[i] = 0;
    t->shape[0] = n;
    t->shape[1] = rows;
    t->data = copy;
    return XLE_OK;
}

/* A Conv1D weight [in, out] into the slot as [out, in]. */
static xle_status bind_transposed(xle_model *m, xle_hf_state *s, xle_wkind kind, int layer, xle_error *err) {
    char name[128];
    xle_family_weight_name(xle_family_of(m->cfg.arch), XLE_FORMAT_HF, kind, layer, name, sizeof name);
    int sh;
    const xle_st_entry *e = find_entry(s, name, &sh);
    if (!e) return XLE_OK;
    xle_dtype dt;
    xle_status st = entry_dtype(s, sh, e, name, &dt, err);
    if (st != XLE_OK) return st;
    if (e->ndim != 2)
        return xle_fail(err, XLE_ERR_FORMAT, "%s/%s: %s: shape: %d dimensions, expected 2 (a Conv1D "
                        "weight [in, out])", s->dir, s->shards[sh].name, name, e->ndim);
    xle_tensor *t = xle_weight_slot(&m->w, kind, layer);
    st = view_columns_transposed(m, t, dt, e->data, e->shape[0], e->shape[1], 0, e->shape[1], err);
    if (st != XLE_OK) return st;
    bind_record(s, sh, e, t, XLE_LAYOUT_TRANSPOSED);
    return XLE_OK;
}

/* GPT-2's c_attn: weight [d, 3d] (columns q | k | v) into wq, wk, wv [d, d]; bias [3d] into
 * views bq, bk, bv. */
static xle_status bind_fused_qkv(xle_model *m, xle_hf_state *s, int layer, const char *source,
                                 xle_error *err) {
    const xle_family *fam = xle_family_of(m->cfg.arch);
    const int64_t d = m->cfg.dim;
    char name[128];
    xle_family_weight_name(fam, XLE_FORMAT_HF, XLE_W_Q, layer, name, sizeof name);
    int sh;
    const xle_st_entry *e = find_entry(s, name, &sh);
    if (!e) return XLE_OK; /* the shape check names it */
    xle_dtype dt;
    xle_status st = entry_dtype(s, sh, e, name, &dt, err);
    if (st != XLE_OK) return st;
    if (e->ndim != 2 || e->shape[0] != d || e->shape[1] != 3 * d)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: shape does not match config.json (expected "
                        "[%lld, %lld]: n_embd, 3 x n_embd)", source, name, (long long)d, (long long)(3 * d));
    xle_layer_weights *L = &m->w.layers[layer];
    xle_tensor *parts[3] = {&L->wq, &L->wk, &L->wv};
    for (int p = 0; p < 3; p++)
        if ((st = view_columns_transposed(m, parts[p], dt, e->data, d, 3 * d, p * d, d, err)) != XLE_OK)
            return st;
    bind_record(s, sh, e, &L->wq, XLE_LAYOUT_FUSED_QKV_T);
    for (int p = 0; p < 3; p++) s->shards[sh].binds[e - s->shards[sh].st->entries].parts[p] = parts[p];

    xle_family_weight_name(fam, XLE_FORMAT_HF, XLE_W_BQ, layer, name, sizeof name);
    e = find_entry(s, name, &sh);
    if (!e) return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: missing", source, name);
    if ((st = entry_dtype(s, sh, e, name, &dt, err)) != XLE_OK) return st;
    if (e->ndim != 1 || e->shape[0] != 3 * d)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: shape does not match config.json (expected "
                        "[%lld]: 3 x n_embd)", source, name, (long long)(3 * d));
    xle_tensor *biases[3] = {&L->bq, &L->bk, &L->bv};
    const size_t es = xle_dtype_size(dt);
    for (int p = 0; p < 3; p++)
        if ((st = xle_tensor_view(m, biases[p], dt, 1, &d, (const unsigned char *)e->data + (size_t)(p * d) * es,
                                  err)) != XLE_OK)
            return st;
    bind_record(s, sh, e, &L->bq, XLE_LAYOUT_FUSED_QKV_T);
    for (int p = 0; p < 3; p++) s->shards[sh].binds[e - s->shards[sh].st->entries].parts[p] = biases[p];
    return XLE_OK;
}

/* Rows of a [3d, ...] tensor laid out [n_head, 3, hd, ...] (BLOOM's query_key_value) gathered
 * into three new [d, ...] tensors the model owns: part p's row h·hd + j is the file's row
 * (3h + p)·hd + j. row_elems is 1 for the bias. */
static xle_status gather_head_rows(xle_model *m, xle_tensor *parts[3], xle_dtype dt, const void *src,
                                   int64_t d, int64_t hd, int64_t row_elems, xle_error *err) {
    const size_t es = xle_dtype_size(dt), row_bytes = (size_t)row_elems * es;
    for (int p = 0; p < 3; p++) {
        unsigned char *copy = malloc((size_t)d * row_bytes);
        if (!copy) return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", m->path);
        for (int64_t r = 0; r < d; r++) {
            const int64_t h = r / hd, j = r % hd;
            memcpy(copy + (size_t)r * row_bytes,
                   (const unsigned char *)src + (size_t)((3 * h + p) * hd + j) * row_bytes, row_bytes);
        }
        xle_status st = xle_model_own_buffer(m, copy, err); /* frees copy on failure */
        if (st != XLE_OK) return st;
        xle_tensor *t = parts[p];
        t->dtype = dt;
        for (int i = 0; i < XLE_MAX_DIMS; i++) t->shape[i] = 0;
        t->ndim = row_elems > 1 ? 2 : 1;
        t->shape[0] = d;
        if (row_elems > 1) t->shape[1] = row_elems;
        t->data = copy;
    }
    return XLE_OK;
}

/* BLOOM's query_key_value: weight [3d, d] and bias [3d], rows per head (head 0's q, k, v, then
 * head 1's ...), into wq, wk, wv [d, d] and bq, bk, bv [d]. */
static xle_status bind_fused_qkv_heads(xle_model *m, xle_hf_state *s, int layer, const char *source,
                                       xle_error *err) {
    const xle_family *fam = xle_family_of(m->cfg.arch);
    const int64_t d = m->cfg.dim, hd = m->cfg.head_dim;
    xle_layer_weights *L = &m->w.layers[layer];
    const xle_wkind kinds[2] = {XLE_W_Q, XLE_W_BQ};
    xle_tensor *weights[3] = {&L->wq, &L->wk, &L->wv}, *biases[3] = {&L->bq, &L->bk, &L->bv};
    for (int i = 0; i < 2; i++) {
        char name[128];
        xle_family_weight_name(fam, XLE_FORMAT_HF, kinds[i], layer, name, sizeof name);
        int sh;
        const xle_st_entry *e = find_entry(s, name, &sh);
        if (!e) return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: missing", source, name);
        xle_dtype dt;
        xle_status st = entry_dtype(s, sh, e, name, &dt, err);
        if (st != XLE_OK) return st;
        const int want_nd = i == 0 ? 2 : 1;
        if (e->ndim != want_nd || e->shape[0] != 3 * d || (i == 0 && e->shape[1] != d)) {
            if (i == 0)
                return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: shape does not match config.json "
                                "(expected [%lld, %lld]: 3 x hidden_size, hidden_size)", source, name,
                                (long long)(3 * d), (long long)d);
            return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: shape does not match config.json (expected "
                            "[%lld]: 3 x hidden_size)", source, name, (long long)(3 * d));
        }
        xle_tensor **parts = i == 0 ? weights : biases;
        if ((st = gather_head_rows(m, parts, dt, e->data, d, hd, i == 0 ? d : 1, err)) != XLE_OK) return st;
        bind_record(s, sh, e, parts[0], XLE_LAYOUT_FUSED_QKV_HEADS);
        xle_fmt_bind *b = &s->shards[sh].binds[e - s->shards[sh].st->entries];
        for (int p = 0; p < 3; p++) b->parts[p] = parts[p];
        b->head_rows = (int)hd;
    }
    return XLE_OK;
}

/* Every tensor of a GPT-2 model, through the family's names and layouts. */
static xle_status bind_gpt2(xle_model *m, xle_hf_state *s, const char *source, xle_error *err) {
    const xle_family *fam = xle_family_of(m->cfg.arch);
    for (int k = 0; k < XLE_W_KIND_COUNT; k++) {
        if (fam->has[k] == XLE_ABSENT) continue;
        if (k == XLE_W_LM_HEAD && m->cfg.tied_embeddings) continue;
        int nl = xle_wkind_per_layer((xle_wkind)k) ? m->cfg.n_layers : 1;
        for (int l = 0; l < nl; l++) {
            xle_status st = XLE_OK;
            switch (fam->hf_layout[k]) {
            case XLE_LAYOUT_SAME: st = bind_tensor(m, s, (xle_wkind)k, l, err); break;
            case XLE_LAYOUT_TRANSPOSED: st = bind_transposed(m, s, (xle_wkind)k, l, err); break;
            case XLE_LAYOUT_FUSED_QKV_T:
                if (k == XLE_W_Q) st = bind_fused_qkv(m, s, l, source, err);
                break;
            case XLE_LAYOUT_FUSED_QKV_HEADS:
                if (k == XLE_W_Q) st = bind_fused_qkv_heads(m, s, l, source, err);
                break;
            case XLE_LAYOUT_FUSED_QKV_ROWS: /* GGUF layouts: never in a family's hf_layout */
            case XLE_LAYOUT_PLUS_ONE: break;
            }
            if (st != XLE_OK) return st;
        }
    }
    if (m->cfg.tied_embeddings) m->w.lm_head = m->w.tok_embd;
    return XLE_OK;
}

static xle_status bind_all(xle_model *m, xle_hf_state *s, int attn_bias, const char *source,
                           xle_error *err) {
    if (xle_family_of(m->cfg.arch)->arch != XLE_ARCH_LLAMA) return bind_gpt2(m, s, source, err);
    const xle_family *fam = xle_family_of(m->cfg.arch);
    for (int k = 0; k < XLE_W_KIND_COUNT; k++) {
        if (fam->has[k] == XLE_ABSENT) continue;
        if (k == XLE_W_ROPE_FREQS) continue;
        if (k == XLE_W_LM_HEAD && m->cfg.tied_embeddings) continue;
        int is_bias = k >= XLE_W_BQ && k <= XLE_W_BO;
        if (is_bias && (attn_bias == 0 || (attn_bias == 1 && k == XLE_W_BO))) continue;
        int nl = xle_wkind_per_layer((xle_wkind)k) ? m->cfg.n_layers : 1;
        for (int l = 0; l < nl; l++) {
            xle_status st = bind_tensor(m, s, (xle_wkind)k, l, err);
            if (st != XLE_OK) return st;
            xle_tensor *t = xle_weight_slot(&m->w, (xle_wkind)k, l);
            if (is_bias && !t->data) {
                char name[128];
                return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: missing (config.json: %s)", source,
                                xle_weight_name(XLE_FORMAT_HF, (xle_wkind)k, l, name, sizeof name),
                                attn_bias == 1 ? "qwen2 has q/k/v biases" : "attention_bias is true");
            }
        }
    }
    if (m->cfg.tied_embeddings) m->w.lm_head = m->w.tok_embd;
    return XLE_OK;
}

static xle_dtype dominant_dtype(const xle_hf_state *s) {
    int64_t count[XLE_DTYPE_COUNT] = {0};
    for (int i = 0; i < s->n_shards; i++)
        for (int j = 0; j < s->shards[i].st->n; j++)
            if (s->shards[i].binds[j].slot) {
                const xle_st_entry *e = &s->shards[i].st->entries[j];
                count[s->shards[i].binds[j].loaded_dtype] += (int64_t)(e->end - e->begin);
            }
    xle_dtype best = XLE_F32;
    for (int d = 0; d < XLE_DTYPE_COUNT; d++)
        if (count[d] > count[best]) best = (xle_dtype)d;
    return best;
}

/* Whether a tokenizer.json the loader calls unsupported is at least a JSON object with a
 * "model" object (a tokenizer of another kind, e.g. Unigram: the model loads without one);
 * else fills err with what is wrong with the file. */
static int tokenizer_json_plausible(const char *path, xle_error *err) {
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    int ok = j && json_is_object(j) && json_is_object(json_object_get(j, "model"));
    if (!j)
        xle_fail(err, XLE_ERR_FORMAT, "%s: %s: %s", path,
                 je.position == 0 ? "empty file" : "not valid JSON", je.text);
    else if (!ok)
        xle_fail(err, XLE_ERR_FORMAT, "%s: model: missing or not an object (not a tokenizer.json)", path);
    json_decref(j);
    return ok;
}

/* tokenizer.json first (what transformers reads), then SentencePiece's tokenizer.model (some
 * Llama-2-derived folders ship only that), then llama2.c's tokenizer.bin (written by save). */
static xle_status attach_tokenizer(xle_model *m, const char *dir, xle_error *err) {
    char *tj = xle_path_join(dir, "tokenizer.json"), *tb = xle_path_join(dir, "tokenizer.bin");
    char *tm = xle_path_join(dir, "tokenizer.model");
    xle_status st = XLE_OK;
    xle_error terr = {0};
    if (!tj || !tb || !tm) st = xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", dir);
    else if (xle_path_exists(tj)) st = xle_tokenizer_load(tj, &m->tokenizer, &terr);
    else if (xle_path_exists(tm)) st = xle_tokenizer_load(tm, &m->tokenizer, &terr);
    else if (xle_path_exists(tb)) st = xle_tokenizer_load_llama2c(tb, m->cfg.vocab_size, &m->tokenizer, &terr);
    if (st == XLE_ERR_UNSUPPORTED && tj && xle_path_exists(tj) && !tokenizer_json_plausible(tj, &terr)) {
        st = XLE_ERR_FORMAT; /* an empty or broken tokenizer.json is an error, not "no tokenizer" */
        if (err) *err = terr;
    } else if (st == XLE_ERR_UNSUPPORTED) {
        m->tokenizer = NULL;
        st = XLE_OK;
    } else if (st != XLE_OK && st != XLE_ERR_NOMEM && err) {
        *err = terr;
    }
    free(tj);
    free(tb);
    free(tm);
    return st;
}

/* Which weight files the folder has, in transformers' order: safetensors first (index, then
 * the single file, as before), then pytorch_model.bin, then its index. */
static xle_status read_weights(xle_model *m, xle_hf_state *s, const char **source, xle_error *err) {
    static const struct { const char *name; int index, torch_bin; } FILES[] = {
        {"model.safetensors.index.json", 1, 0}, {"model.safetensors", 0, 0},
        {"pytorch_model.bin", 0, 1}, {"pytorch_model.bin.index.json", 1, 1},
    };
    for (size_t i = 0; i < sizeof FILES / sizeof FILES[0]; i++) {
        char *path = xle_path_join(s->dir, FILES[i].name);
        if (!path) return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", s->dir);
        if (!xle_path_exists(path)) {
            free(path);
            continue;
        }
        s->sharded = FILES[i].index;
        s->torch_bin = FILES[i].torch_bin;
        s->source = path;
        *source = path;
        return FILES[i].index ? read_index(m, s, path, err) : add_shard(m, s, FILES[i].name, NULL, NULL, err);
    }
    return xle_fail(err, XLE_ERR_IO, "%s: model.safetensors: missing (and no model.safetensors.index.json, "
                    "pytorch_model.bin or pytorch_model.bin.index.json)", s->dir);
}

static xle_status load_into(xle_model *m, xle_hf_state *s, xle_error *err) {
    char *cfg_path = xle_path_join(s->dir, "config.json");
    xle_status st = XLE_OK;
    int attn_bias = 0;
    const char *source = NULL;
    if (!cfg_path) {
        st = xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", s->dir);
        goto done;
    }
    if ((st = read_config(cfg_path, &m->cfg, &attn_bias, err))) goto done;
    if ((st = xle_model_alloc_layers(m, err))) goto done;
    st = read_weights(m, s, &source, err);
    if (st != XLE_OK || (st = check_no_duplicates(s, err)) ||
        (st = bind_all(m, s, attn_bias, source, err)) ||
        (st = xle_model_check_shapes(m, source, err)))
        goto done;
    m->weight_dtype = dominant_dtype(s);
    st = attach_tokenizer(m, s->dir, err);
done:
    free(cfg_path);
    return st;
}

xle_status xle_load_hf(const char *dir, xle_model **out, xle_error *err) {
    *out = NULL;
    xle_model *m = xle_model_alloc(dir);
    xle_hf_state *s = calloc(1, sizeof *s);
    if (s) s->dir = strdup(dir);
    if (!m || !s || !s->dir) {
        if (s) free(s->dir);
        free(s);
        xle_model_free(m);
        return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", dir);
    }
    m->format = XLE_FORMAT_HF;
    m->format_state = s;
    m->format_state_free = xle_hf_state_free;
    xle_status st = load_into(m, s, err);
    if (st != XLE_OK) {
        xle_model_free(m);
        return st;
    }
    *out = m;
    return XLE_OK;
}
