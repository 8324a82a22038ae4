/*
 * config_check.c: validation of a model configuration (xle_config_validate and the loaders'
 * xle_config_validate_names), with each format's field names so that a message names the
 * field of the file the user has.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "formats/formats_internal.h"

/* ---- configuration validation --------------------------------------------------------------- */

const xle_config_names XLE_NAMES_HF = {
    "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "head_dim", "vocab_size", "max_position_embeddings", "rms_norm_eps",
    "rope_theta", "rope_scaling.factor", "sliding_window"};
const xle_config_names XLE_NAMES_HF_GPT2 = {
    "n_embd", "n_inner", "n_layer", "n_head", "n_head", "n_embd / n_head", "vocab_size",
    "n_positions", "layer_norm_epsilon", "rope_theta", "rope_scaling.factor", "sliding_window"};
const xle_config_names XLE_NAMES_GGUF = {
    "embedding_length", "feed_forward_length", "block_count", "attention.head_count",
    "attention.head_count_kv", "attention.key_length", "vocab_size (token_embd.weight rows)",
    "context_length", "attention.layer_norm_rms_epsilon", "rope.freq_base",
    "rope.scaling.factor", "attention.sliding_window"};
const xle_config_names XLE_NAMES_LLAMA2C = {
    "dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "head_size", "vocab_size",
    "seq_len", "norm_eps", "rope_theta", "rope_factor", "sliding_window"};

static xle_status pos_int(int v, int max, const char *src, const char *field, xle_error *err) {
    if (v <= 0) return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: %d is not a positive integer", src, field, v);
    if (v > max) return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: %d is absurdly large (limit %d)", src, field, v, max);
    return XLE_OK;
}

xle_status xle_config_validate_names(const xle_config *c, const char *src,
                                     const xle_config_names *nm, xle_error *err) {
    xle_status st;
    if ((st = pos_int(c->dim, 1 << 17, src, nm->dim, err)) != XLE_OK) return st;
    if ((st = pos_int(c->ffn_dim, 1 << 20, src, nm->ffn_dim, err)) != XLE_OK) return st;
    if ((st = pos_int(c->n_layers, 4096, src, nm->n_layers, err)) != XLE_OK) return st;
    if ((st = pos_int(c->n_heads, 4096, src, nm->n_heads, err)) != XLE_OK) return st;
    if ((st = pos_int(c->n_kv_heads, 4096, src, nm->n_kv_heads, err)) != XLE_OK) return st;
    if ((st = pos_int(c->head_dim, 1 << 14, src, nm->head_dim, err)) != XLE_OK) return st;
    if ((st = pos_int(c->vocab_size, 1 << 24, src, nm->vocab_size, err)) != XLE_OK) return st;
    if ((st = pos_int(c->max_seq_len, 1 << 26, src, nm->max_seq_len, err)) != XLE_OK) return st;
    if (c->n_heads % c->n_kv_heads != 0)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: %d does not divide %s %d", src,
                        nm->n_kv_heads, c->n_kv_heads, nm->n_heads, c->n_heads);
    if (c->head_dim % 2 != 0)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: %d is odd (RoPE needs pairs)", src,
                        nm->head_dim, c->head_dim);
    if ((int64_t)c->n_heads * c->head_dim > (1 << 20))
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: %d heads of %d is absurdly large", src,
                        nm->n_heads, c->n_heads, c->head_dim);
    if (!(c->norm_eps > 0 && c->norm_eps < 1))
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: %g is not in (0, 1)", src, nm->norm_eps,
                        (double)c->norm_eps);
    if (!(c->rope_theta > 0 && isfinite(c->rope_theta)))
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: %g is not a positive number", src,
                        nm->rope_theta, (double)c->rope_theta);
    if (c->rope_scaling != XLE_ROPE_NONE && !(c->rope_factor > 0 && isfinite(c->rope_factor)))
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: %g is not a positive number", src,
                        nm->rope_factor, (double)c->rope_factor);
    if (c->rope_scaling == XLE_ROPE_LLAMA3 &&
        !(c->rope_low_freq_factor > 0 && c->rope_high_freq_factor > c->rope_low_freq_factor &&
          c->rope_original_max_pos > 0))
        return xle_fail(err, XLE_ERR_FORMAT, "%s: rope_scaling: llama3 needs low_freq_factor > 0, "
                        "high_freq_factor > low_freq_factor and original_max_position_embeddings > 0", src);
    if (c->sliding_window < 0)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: %d is negative", src, nm->sliding_window,
                        c->sliding_window);
    if (c->bos_id < -1 || c->eos_id < -1)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: bos/eos token id: negative", src);
    return XLE_OK;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

xle_status xle_config_validate(const xle_config *cfg, const char *source, xle_error *err) {
    const char *src = source ? source : "config";
    const xle_config_names *nm = ends_with(src, ".json") ? &XLE_NAMES_HF
                                 : ends_with(src, ".gguf") ? &XLE_NAMES_GGUF : &XLE_NAMES_LLAMA2C;
    return xle_config_validate_names(cfg, src, nm, err);
}
