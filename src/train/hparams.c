/*
 * hparams.c: training hyperparameters: defaults, the train config JSON (keys = field names,
 * strictly typed, unknown keys refused), validation, the canonical JSON stored in checkpoints,
 * and the learning-rate schedule (linear warmup, cosine decay).
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/train_internal.h"

void xle_train_hparams_default(xle_train_hparams *hp) {
    memset(hp, 0, sizeof *hp);
    hp->dim = 256;
    hp->n_layers = 4;
    hp->n_heads = 8;
    hp->n_kv_heads = 2;
    hp->ffn_dim = 688;
    hp->max_seq_len = 256;
    hp->tied_embeddings = 1;
    hp->norm_eps = 1e-5f;
    hp->rope_theta = 10000.0f;
    hp->init_std = 0.02f;
    hp->steps = 2000;
    hp->batch_tokens = 4096;
    hp->lr = 3e-3f;
    hp->min_lr = 3e-4f;
    hp->warmup_steps = 100;
    hp->weight_decay = 0.1f;
    hp->beta1 = 0.9f;
    hp->beta2 = 0.95f;
    hp->adam_eps = 1e-8f;
    hp->grad_clip = 1.0f;
    hp->checkpoint_every = 200;
    hp->seed = 1;
    hp->save_bf16 = 0;
}

/* One table drives loading, canonical JSON and checkpoint comparison. */
typedef enum field_kind { F_INT, F_I64, F_U64, F_FLOAT, F_BOOL } field_kind;
typedef struct field {
    const char *name;
    field_kind kind;
    size_t offset;
} field;

#define FIELD(name, kind) {#name, kind, offsetof(xle_train_hparams, name)}
static const field FIELDS[] = {
    FIELD(dim, F_INT),          FIELD(n_layers, F_INT),         FIELD(n_heads, F_INT),
    FIELD(n_kv_heads, F_INT),   FIELD(ffn_dim, F_INT),          FIELD(max_seq_len, F_INT),
    FIELD(tied_embeddings, F_BOOL), FIELD(norm_eps, F_FLOAT),   FIELD(rope_theta, F_FLOAT),
    FIELD(init_std, F_FLOAT),   FIELD(steps, F_I64),            FIELD(batch_tokens, F_INT),
    FIELD(lr, F_FLOAT),         FIELD(min_lr, F_FLOAT),         FIELD(warmup_steps, F_INT),
    FIELD(weight_decay, F_FLOAT), FIELD(beta1, F_FLOAT),        FIELD(beta2, F_FLOAT),
    FIELD(adam_eps, F_FLOAT),   FIELD(grad_clip, F_FLOAT),      FIELD(checkpoint_every, F_INT),
    FIELD(seed, F_U64),         FIELD(save_bf16, F_BOOL),
};
#undef FIELD
enum { N_FIELDS = sizeof FIELDS / sizeof FIELDS[0] };

static const field *find_field(const char *name) {
    for (int i = 0; i < N_FIELDS; i++)
        if (!strcmp(FIELDS[i].name, name)) return &FIELDS[i];
    return NULL;
}

xle_status xle_train_hparams_load_json(xle_train_hparams *hp, const char *path, xle_error *err) {
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) {
        if (jerr.line < 0 || !strncmp(jerr.text, "unable to open", 14))
            return xle_fail(err, XLE_ERR_IO, "%s: %s", path, jerr.text);
        return xle_fail(err, XLE_ERR_FORMAT, "%s:%d: invalid JSON: %s", path, jerr.line, jerr.text);
    }
    xle_status st = XLE_OK;
    if (!json_is_object(root)) st = xle_fail(err, XLE_ERR_FORMAT, "%s: not a JSON object", path);
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (st != XLE_OK) break;
        const field *f = find_field(key);
        if (!f) {
            st = xle_fail(err, XLE_ERR_FORMAT, "%s: %s: unknown key", path, key);
            break;
        }
        char *dst = (char *)hp + f->offset;
        switch (f->kind) {
        case F_BOOL:
            if (!json_is_boolean(v)) st = xle_fail(err, XLE_ERR_FORMAT, "%s: %s: not true or false", path, key);
            else *(int *)dst = json_is_true(v);
            break;
        case F_FLOAT:
            if (!json_is_number(v) || !isfinite(json_number_value(v)))
                st = xle_fail(err, XLE_ERR_FORMAT, "%s: %s: not a number", path, key);
            else *(float *)dst = (float)json_number_value(v);
            break;
        case F_INT:
            if (!json_is_integer(v) || json_integer_value(v) < -2147483647 || json_integer_value(v) > 2147483647)
                st = xle_fail(err, XLE_ERR_FORMAT, "%s: %s: not an integer in range", path, key);
            else *(int *)dst = (int)json_integer_value(v);
            break;
        case F_I64:
            if (!json_is_integer(v)) st = xle_fail(err, XLE_ERR_FORMAT, "%s: %s: not an integer", path, key);
            else *(int64_t *)dst = json_integer_value(v);
            break;
        case F_U64:
            if (!json_is_integer(v) || json_integer_value(v) < 0)
                st = xle_fail(err, XLE_ERR_FORMAT, "%s: %s: not a non-negative integer", path, key);
            else *(uint64_t *)dst = (uint64_t)json_integer_value(v);
            break;
        }
    }
    json_decref(root);
    return st;
}

xle_status xle_train_hparams_validate(const xle_train_hparams *hp, const char *src, xle_error *err) {
#define REQUIRE(cond, field, ...) \
    if (!(cond)) return xle_fail(err, XLE_ERR_ARG, "%s: " field ": " __VA_ARGS__)
    REQUIRE(hp->dim >= 2 && hp->dim <= 65536, "dim", "%d is outside [2, 65536]", src, hp->dim);
    REQUIRE(hp->n_layers >= 1 && hp->n_layers <= 256, "n_layers", "%d is outside [1, 256]", src, hp->n_layers);
    REQUIRE(hp->n_heads >= 1 && hp->dim % hp->n_heads == 0, "n_heads",
            "%d must be positive and divide dim %d", src, hp->n_heads, hp->dim);
    REQUIRE((hp->dim / hp->n_heads) % 2 == 0, "n_heads", "head size dim/n_heads = %d must be even (RoPE)",
            src, hp->dim / hp->n_heads);
    REQUIRE(hp->n_kv_heads >= 1 && hp->n_heads % hp->n_kv_heads == 0, "n_kv_heads",
            "%d must be positive and divide n_heads %d", src, hp->n_kv_heads, hp->n_heads);
    REQUIRE(hp->ffn_dim >= 1 && hp->ffn_dim <= 1 << 20, "ffn_dim", "%d is outside [1, %d]", src, hp->ffn_dim, 1 << 20);
    REQUIRE(hp->max_seq_len >= 2 && hp->max_seq_len <= 4096, "max_seq_len", "%d is outside [2, 4096]",
            src, hp->max_seq_len);
    REQUIRE(hp->norm_eps > 0 && hp->norm_eps < 1, "norm_eps", "%g is outside (0, 1)", src, (double)hp->norm_eps);
    REQUIRE(hp->rope_theta > 1, "rope_theta", "%g must be greater than 1", src, (double)hp->rope_theta);
    REQUIRE(hp->init_std > 0 && hp->init_std < 10, "init_std", "%g is outside (0, 10)", src, (double)hp->init_std);
    REQUIRE(hp->steps >= 1 && hp->steps <= (int64_t)1 << 40, "steps", "%lld must be positive", src,
            (long long)hp->steps);
    REQUIRE(hp->batch_tokens >= 1 && hp->batch_tokens <= 1 << 20, "batch_tokens", "%d is outside [1, %d]",
            src, hp->batch_tokens, 1 << 20);
    REQUIRE(hp->lr > 0 && hp->lr < 10, "lr", "%g is outside (0, 10)", src, (double)hp->lr);
    REQUIRE(hp->min_lr >= 0 && hp->min_lr <= hp->lr, "min_lr", "%g is outside [0, lr = %g]", src,
            (double)hp->min_lr, (double)hp->lr);
    REQUIRE(hp->warmup_steps >= 0, "warmup_steps", "%d must not be negative", src, hp->warmup_steps);
    REQUIRE(hp->weight_decay >= 0 && hp->weight_decay < 1, "weight_decay", "%g is outside [0, 1)", src,
            (double)hp->weight_decay);
    REQUIRE(hp->beta1 >= 0 && hp->beta1 < 1, "beta1", "%g is outside [0, 1)", src, (double)hp->beta1);
    REQUIRE(hp->beta2 >= 0 && hp->beta2 < 1, "beta2", "%g is outside [0, 1)", src, (double)hp->beta2);
    REQUIRE(hp->adam_eps > 0, "adam_eps", "%g must be positive", src, (double)hp->adam_eps);
    REQUIRE(hp->grad_clip >= 0, "grad_clip", "%g must not be negative (0: no clipping)", src,
            (double)hp->grad_clip);
    REQUIRE(hp->checkpoint_every >= 0, "checkpoint_every", "%d must not be negative", src, hp->checkpoint_every);
#undef REQUIRE
    return XLE_OK;
}

/* A float as the shortest decimal that reads back to the same float (1e-05, not 9.99e-06). */
static json_t *json_float(float f) {
    char buf[32];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
        if ((float)strtod(buf, NULL) == f) break;
    }
    return json_real(strtod(buf, NULL));
}

json_t *xle_train_hparams_to_json(const xle_train_hparams *hp) {
    json_t *o = json_object();
    if (!o) return NULL;
    for (int i = 0; i < N_FIELDS; i++) {
        const field *f = &FIELDS[i];
        const char *src = (const char *)hp + f->offset;
        json_t *v = NULL;
        switch (f->kind) {
        case F_BOOL: v = json_boolean(*(const int *)src); break;
        case F_FLOAT: v = json_float(*(const float *)src); break;
        case F_INT: v = json_integer(*(const int *)src); break;
        case F_I64: v = json_integer(*(const int64_t *)src); break;
        case F_U64: v = json_integer((json_int_t) * (const uint64_t *)src); break;
        }
        json_object_set_new(o, f->name, v);
    }
    return o;
}

char *xle_train_hparams_json(const xle_train_hparams *hp) {
    json_t *o = xle_train_hparams_to_json(hp);
    if (!o) return NULL;
    char *s = json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(o);
    return s;
}

float xle_train_lr(const xle_train_hparams *hp, int64_t step) {
    if (step < hp->warmup_steps) return hp->lr * (float)(step + 1) / (float)hp->warmup_steps;
    int64_t decay_steps = hp->steps - hp->warmup_steps;
    if (decay_steps <= 0) return hp->lr;
    double progress = (double)(step - hp->warmup_steps) / (double)decay_steps;
    if (progress > 1) progress = 1;
    return (float)(hp->min_lr + 0.5 * (hp->lr - hp->min_lr) * (1.0 + cos(M_PI * progress)));
}

void xle_train_model_config(const xle_train_hparams *hp, int vocab_size, int bos_id, int eos_id,
                            xle_config *c) {
    memset(c, 0, sizeof *c);
    c->arch = XLE_ARCH_LLAMA;
    c->dim = hp->dim;
    c->ffn_dim = hp->ffn_dim;
    c->n_layers = hp->n_layers;
    c->n_heads = hp->n_heads;
    c->n_kv_heads = hp->n_kv_heads;
    c->head_dim = hp->dim / hp->n_heads;
    c->vocab_size = vocab_size;
    c->max_seq_len = hp->max_seq_len;
    c->norm_eps = hp->norm_eps;
    c->rope_theta = hp->rope_theta;
    c->rope_interleaved = 0; /* Hugging Face's rotate-half layout, so weights export as they are */
    c->rope_scaling = XLE_ROPE_NONE;
    c->tied_embeddings = hp->tied_embeddings;
    c->bos_id = bos_id;
    c->eos_id = eos_id;
}
