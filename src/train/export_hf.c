/*
 * export_hf.c: writes a trained model as a Hugging Face folder that transformers loads
 * unchanged (LlamaForCausalLM): config.json with every standard Llama key, model.safetensors
 * (F32 or BF16, HF tensor names; weights are already in HF's rotate-half RoPE layout),
 * generation_config.json, and the tokenizer files. Each file is written under a temporary name
 * beside its target and renamed into place.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/outpath.h"
#include "formats/formats_internal.h"
#include "train/train_internal.h"

/* A float as the shortest decimal that reads back to it. */
static json_t *json_float(float f) {
    char buf[32];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
        if ((float)strtod(buf, NULL) == f) break;
    }
    return json_real(strtod(buf, NULL));
}

static json_t *config_json(const xle_config *c, int bf16, float init_std) {
    json_t *o = json_object();
    json_object_set_new(o, "architectures", json_pack("[s]", "LlamaForCausalLM"));
    json_object_set_new(o, "model_type", json_string("llama"));
    json_object_set_new(o, "attention_bias", json_false());
    json_object_set_new(o, "attention_dropout", json_real(0.0));
    json_object_set_new(o, "bos_token_id", json_integer(c->bos_id));
    json_object_set_new(o, "eos_token_id", json_integer(c->eos_id));
    json_object_set_new(o, "head_dim", json_integer(c->head_dim));
    json_object_set_new(o, "hidden_act", json_string("silu"));
    json_object_set_new(o, "hidden_size", json_integer(c->dim));
    json_object_set_new(o, "initializer_range", json_float(init_std));
    json_object_set_new(o, "intermediate_size", json_integer(c->ffn_dim));
    json_object_set_new(o, "max_position_embeddings", json_integer(c->max_seq_len));
    json_object_set_new(o, "mlp_bias", json_false());
    json_object_set_new(o, "num_attention_heads", json_integer(c->n_heads));
    json_object_set_new(o, "num_hidden_layers", json_integer(c->n_layers));
    json_object_set_new(o, "num_key_value_heads", json_integer(c->n_kv_heads));
    json_object_set_new(o, "pretraining_tp", json_integer(1));
    json_object_set_new(o, "rms_norm_eps", json_float(c->norm_eps));
    json_object_set_new(o, "rope_scaling", json_null());
    json_object_set_new(o, "rope_theta", json_float(c->rope_theta));
    json_object_set_new(o, "tie_word_embeddings", json_boolean(c->tied_embeddings));
    json_object_set_new(o, "torch_dtype", json_string(bf16 ? "bfloat16" : "float32"));
    json_object_set_new(o, "transformers_version", json_string("4.44.0"));
    json_object_set_new(o, "use_cache", json_true());
    json_object_set_new(o, "vocab_size", json_integer(c->vocab_size));
    return o;
}

static json_t *generation_config_json(const xle_config *c) {
    return json_pack("{s:i, s:i, s:b, s:i, s:s}", "bos_token_id", c->bos_id, "eos_token_id", c->eos_id,
                     "do_sample", 0, "max_length", c->max_seq_len, "transformers_version", "4.44.0");
}

static xle_status write_weights(const xle_model *m, int bf16, const char *path, xle_error *err) {
    const xle_config *c = xle_model_config(m);
    xle_weights *w = xle_model_weights((xle_model *)m);
    int cap = XLE_W_KIND_COUNT * (c->n_layers + 1);
    xle_st_tensor *ts = calloc((size_t)cap, sizeof *ts);
    char (*names)[96] = calloc((size_t)cap, sizeof *names);
    uint16_t **half = calloc((size_t)cap, sizeof *half);
    xle_status st = XLE_OK;
    int n = 0;
    if (!ts || !names || !half) st = xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", path);
    for (int k = 0; k < XLE_W_KIND_COUNT && st == XLE_OK; k++) {
        if (k == XLE_W_LM_HEAD && c->tied_embeddings) continue;
        int nl = xle_wkind_per_layer((xle_wkind)k) ? c->n_layers : 1;
        for (int l = 0; l < nl && st == XLE_OK; l++) {
            const xle_tensor *t = xle_weight_slot(w, (xle_wkind)k, l);
            if (!t->data) continue;
            xle_st_tensor *o = &ts[n];
            o->name = xle_weight_name(XLE_FORMAT_HF, (xle_wkind)k, l, names[n], sizeof names[n]);
            o->ndim = t->ndim;
            for (int i = 0; i < t->ndim; i++) o->shape[i] = t->shape[i];
            if (bf16) {
                int64_t numel = xle_tensor_numel(t);
                half[n] = malloc((size_t)numel * sizeof(uint16_t));
                if (!half[n]) {
                    st = xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", path);
                    break;
                }
                for (int64_t i = 0; i < numel; i++) half[n][i] = xle_f32_to_bf16(xle_tensor_get_f32(t, i));
                o->dtype = "BF16";
                o->data = half[n];
            } else {
                if (t->dtype != XLE_F32) {
                    st = xle_fail(err, XLE_ERR_ARG, "%s: %s: expected f32 weights", path, o->name);
                    break;
                }
                o->dtype = "F32";
                o->data = t->data;
            }
            n++;
        }
    }
    if (st == XLE_OK) st = xle_safetensors_write(path, ts, (size_t)n, NULL, NULL, err);
    for (int i = 0; half && i < cap; i++) free(half[i]);
    free(half);
    free(names);
    free(ts);
    return st;
}

/* Writes json to dir/name atomically. */
static xle_status put_json(json_t *j, const char *dir, const char *name, xle_error *err) {
    if (!j) return xle_fail(err, XLE_ERR_NOMEM, "%s/%s: out of memory", dir, name);
    char *p = xle_path_join(dir, name);
    xle_status st = p ? xle_json_write_atomic(j, p, err) : xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    free(p);
    json_decref(j);
    return st;
}

/* Copies src to dir/name atomically (temporary + rename). */
static xle_status put_copy(const char *src, const char *dir, const char *name, xle_error *err) {
    char *dst = xle_path_join(dir, name);
    if (!dst) return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    xle_atomic_file out;
    xle_status st = xle_atomic_name(&out, dst, err);
    if (st == XLE_OK) st = xle_atomic_commit(&out, xle_file_copy(src, out.tmp, err), err);
    free(dst);
    return st;
}

xle_status xle_train_export_hf(const xle_model *m, const char *tokenizer_json, int bf16, const char *dir,
                               xle_error *err) {
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return xle_fail(err, XLE_ERR_IO, "%s: cannot create: %s", dir, strerror(errno));
    const xle_config *c = xle_model_config(m);
    xle_status st = XLE_OK;
    /* the weights first: a folder is only loadable once config.json appears */
    char *st_path = xle_path_join(dir, "model.safetensors");
    if (!st_path) return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    xle_atomic_file weights;
    st = xle_atomic_name(&weights, st_path, err);
    if (st == XLE_OK) st = xle_atomic_commit(&weights, write_weights(m, bf16, weights.tmp, err), err);
    free(st_path);
    if (st == XLE_OK && tokenizer_json) {
        st = put_copy(tokenizer_json, dir, "tokenizer.json", err);
        /* tokenizer_config.json beside the tokenizer, when there is one */
        const char *slash = strrchr(tokenizer_json, '/');
        size_t dn = slash ? (size_t)(slash - tokenizer_json) : 0;
        char *cfg = malloc(dn + sizeof "/tokenizer_config.json" + 2);
        if (!cfg) st = xle_fail(err, XLE_ERR_NOMEM, "out of memory");
        if (st == XLE_OK) {
            if (slash) {
                memcpy(cfg, tokenizer_json, dn);
                strcpy(cfg + dn, "/tokenizer_config.json");
            } else {
                strcpy(cfg, "tokenizer_config.json");
            }
            if (xle_path_exists(cfg)) st = put_copy(cfg, dir, "tokenizer_config.json", err);
        }
        free(cfg);
    }
    if (st == XLE_OK) st = put_json(generation_config_json(c), dir, "generation_config.json", err);
    if (st == XLE_OK) st = put_json(config_json(c, bf16, 0.02f), dir, "config.json", err);
    if (st == XLE_OK) xle_dir_sync(dir);
    return st;
}
