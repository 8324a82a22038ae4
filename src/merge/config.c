/*
 * config.c: mergekit's YAML merge recipes (merge_method, base_model, models[].parameters,
 * global parameters, dtype, tokenizer_source) read into xle_merge_opts, with mergekit's
 * defaults (mergekit/merge_methods/registry.py, generalized_task_arithmetic.py): weight is
 * required, density defaults to 1, normalize to the method's own default; weight and density
 * per model (each model's own, as mergekit's sparsify takes them) and as per-layer value lists
 * (mergekit's gradients, config.py). What xledit cannot do the way mergekit would (slices,
 * filtered values, lists for other parameters, other methods) is an error naming the file and
 * the key; keys that do not change the tensors xledit writes are named back for one note.
 * docs/merging.md, "mergekit recipes".
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/yaml_json.h"
#include "merge/merge_internal.h"

struct xle_merge_config {
    json_t *root;          /* owns the strings opts points at */
    const char **models;
    float *weights;
    double *densities;
    xle_merge_gradient *weight_gradients, *density_gradients;
    double **lists;        /* the per-layer value lists they point at */
    int n_lists;
};

void xle_merge_config_free(xle_merge_config *cfg) {
    if (!cfg) return;
    json_decref(cfg->root);
    free(cfg->models);
    free(cfg->weights);
    free(cfg->densities);
    free(cfg->weight_gradients);
    free(cfg->density_gradients);
    for (int i = 0; i < cfg->n_lists; i++) free(cfg->lists[i]);
    free(cfg->lists);
    free(cfg);
}

static void note_key(char *note, size_t note_size, const char *what) {
    if (!note || !note_size) return;
    size_t n = strlen(note);
    snprintf(note + n, note_size - n, "%s%s", n ? "; " : "", what);
}

/* A weight or density: one number, or a per-layer list of numbers (mergekit's gradient). */
typedef struct param_value {
    int have;
    double v;              /* the number, or the list's first value */
    const double *list;    /* NULL: a number */
    int n;
} param_value;

static xle_status read_number(json_t *v, const char *path, const char *where, double *out, xle_error *err) {
    if (json_is_array(v))
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: per-layer value lists (gradients) are supported for weight "
                        "and density only; give one number", path, where);
    if (json_is_object(v))
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: filtered values (filter/value) are not supported; give one "
                        "number", path, where);
    if (!json_is_number(v) || !isfinite(json_number_value(v)))
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: expected a number", path, where);
    *out = json_number_value(v);
    return XLE_OK;
}

/* A number or a list of numbers (kept in cfg); densities must lie in (0, 1]. */
static xle_status read_value(xle_merge_config *cfg, json_t *v, const char *path, const char *where, int is_density,
                             param_value *out, xle_error *err) {
    memset(out, 0, sizeof *out);
    out->have = 1;
    if (json_is_array(v)) {
        size_t n = json_array_size(v);
        if (n == 0 || n > 65536)
            return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: expected a number or a non-empty list of numbers", path, where);
        double **grown = realloc(cfg->lists, (size_t)(cfg->n_lists + 1) * sizeof *grown);
        double *list = malloc(n * sizeof *list);
        if (grown) cfg->lists = grown;
        if (!grown || !list) {
            free(list);
            return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
        }
        cfg->lists[cfg->n_lists++] = list;
        for (size_t k = 0; k < n; k++) {
            json_t *e = json_array_get(v, k);
            if (json_is_object(e))
                return xle_fail(err, XLE_ERR_FORMAT, "%s: %s[%zu]: filtered values (filter/value) are not supported",
                                path, where, k);
            if (!json_is_number(e) || !isfinite(json_number_value(e)))
                return xle_fail(err, XLE_ERR_FORMAT, "%s: %s[%zu]: expected a number", path, where, k);
            list[k] = json_number_value(e);
            if (is_density && !(list[k] > 0 && list[k] <= 1))
                return xle_fail(err, XLE_ERR_FORMAT, "%s: %s[%zu]: %g is not in (0, 1]", path, where, k, list[k]);
        }
        out->list = list;
        out->n = (int)n;
        out->v = list[0];
        return XLE_OK;
    }
    xle_status st = read_number(v, path, where, &out->v, err);
    if (st == XLE_OK && is_density && !(out->v > 0 && out->v <= 1))
        st = xle_fail(err, XLE_ERR_FORMAT, "%s: %s: %g is not in (0, 1]", path, where, out->v);
    return st;
}

/* A parameters mapping: weight and density (per model or global); with global, also
 * normalize, lambda, int8_mask and rescale. */
static xle_status read_parameters(xle_merge_config *cfg, json_t *params, const char *path, const char *where,
                                  int global, xle_merge_opts *o, param_value *weight, param_value *density,
                                  int *rescale, char *note, size_t note_size, xle_error *err) {
    if (!json_is_object(params)) return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: expected a mapping", path, where);
    const char *key;
    json_t *v;
    char at[160];
    json_object_foreach(params, key, v) {
        snprintf(at, sizeof at, "%s.%s", where, key);
        xle_status st = XLE_OK;
        if (!strcmp(key, "weight")) {
            st = read_value(cfg, v, path, at, 0, weight, err);
        } else if (!strcmp(key, "density")) {
            st = read_value(cfg, v, path, at, 1, density, err);
        } else if (global && !strcmp(key, "lambda")) {
            double lambda = 1;
            st = read_number(v, path, at, &lambda, err);
            o->lambda = (float)lambda;
        } else if (global && (!strcmp(key, "normalize") || !strcmp(key, "int8_mask") || !strcmp(key, "rescale"))) {
            if (!json_is_boolean(v)) return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: expected true or false", path, at);
            if (!strcmp(key, "normalize")) o->normalize = json_is_true(v);
            else if (!strcmp(key, "rescale")) *rescale = json_is_true(v);
            else note_key(note, note_size, "int8_mask (the mask's storage type; same values)");
        } else {
            return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: not a parameter xledit merges with (weight, density%s)", path,
                            at, global ? ", normalize, lambda, int8_mask, rescale" : "");
        }
        if (st != XLE_OK) return st;
    }
    return XLE_OK;
}

static xle_status model_name(json_t *entry, const char *path, int i, const char **out, xle_error *err) {
    json_t *m = json_is_object(entry) ? json_object_get(entry, "model") : NULL;
    const char *name = json_string_value(m);
    *out = name;
    if (!name || !*name) return xle_fail(err, XLE_ERR_FORMAT, "%s: models[%d].model: expected a model path", path, i);
    if (strchr(name, '+'))
        return xle_fail(err, XLE_ERR_FORMAT, "%s: models[%d].model: '%s': LoRA adapters (model+lora) are not supported",
                        path, i, name);
    return XLE_OK;
}

/* Whether any density a model may use is below 1 (DARE then rescales). */
static int drops_something(const param_value *d) {
    if (!d->list) return d->v < 1;
    for (int k = 0; k < d->n; k++)
        if (d->list[k] < 1) return 1;
    return 0;
}

/* The models with their weights and densities (per model, else the global ones; mergekit's
 * density default 1). *any_drop: some density is below 1. */
static xle_status read_models(xle_merge_config *cfg, const char *path, xle_merge_opts *o, const param_value *gw,
                              const param_value *gd, int *any_drop, xle_error *err) {
    json_t *models = json_object_get(cfg->root, "models");
    if (!json_is_array(models) || json_array_size(models) == 0)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: models: expected a list of {model: PATH, parameters: {...}}", path);
    size_t n = json_array_size(models);
    cfg->models = calloc(n, sizeof *cfg->models);
    cfg->weights = calloc(n, sizeof *cfg->weights);
    cfg->densities = calloc(n, sizeof *cfg->densities);
    cfg->weight_gradients = calloc(n, sizeof *cfg->weight_gradients);
    cfg->density_gradients = calloc(n, sizeof *cfg->density_gradients);
    if (!cfg->models || !cfg->weights || !cfg->densities || !cfg->weight_gradients || !cfg->density_gradients)
        return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    int count = 0, weight_lists = 0, density_lists = 0;
    *any_drop = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *entry = json_array_get(models, i);
        const char *name;
        xle_status st = model_name(entry, path, (int)i, &name, err);
        if (st != XLE_OK) return st;
        const char *key;
        json_t *v;
        json_object_foreach(entry, key, v) if (strcmp(key, "model") && strcmp(key, "parameters"))
            return xle_fail(err, XLE_ERR_FORMAT, "%s: models[%zu].%s: not supported (model, parameters)", path, i, key);
        /* the base listed among the models has no task vector (mergekit skips it) */
        if (o->method != XLE_MERGE_LINEAR && o->base && !strcmp(name, o->base)) continue;
        param_value weight = *gw, density = *gd;
        int unused_rescale = 1;
        json_t *params = json_object_get(entry, "parameters");
        char where[64];
        snprintf(where, sizeof where, "models[%zu].parameters", i);
        if (params && (st = read_parameters(cfg, params, path, where, 0, o, &weight, &density, &unused_rescale, NULL,
                                            0, err)) != XLE_OK)
            return st;
        if (!weight.have)
            return xle_fail(err, XLE_ERR_FORMAT, "%s: %s.weight: required (as mergekit requires it)", path, where);
        if (!density.have) density.v = 1.0; /* mergekit's default */
        cfg->models[count] = name;
        cfg->weights[count] = (float)weight.v;
        cfg->densities[count] = density.v; /* a double, as the flags' --density */
        if (weight.list) {
            cfg->weight_gradients[count] = (xle_merge_gradient){weight.list, weight.n};
            weight_lists = 1;
        }
        if (density.list) {
            cfg->density_gradients[count] = (xle_merge_gradient){density.list, density.n};
            density_lists = 1;
        }
        *any_drop |= drops_something(&density);
        count++;
    }
    if (count == 0) return xle_fail(err, XLE_ERR_FORMAT, "%s: models: only the base is listed; nothing to merge", path);
    o->models = cfg->models;
    o->weights = cfg->weights;
    o->n_models = count;
    o->density = cfg->densities[0];
    o->densities = cfg->densities;
    o->weight_gradients = weight_lists ? cfg->weight_gradients : NULL;
    o->density_gradients = density_lists ? cfg->density_gradients : NULL;
    return XLE_OK;
}

static xle_status read_recipe(xle_merge_config *cfg, const char *path, xle_merge_opts *o, char *note, size_t note_size,
                              xle_error *err) {
    json_t *root = cfg->root;
    if (!json_is_object(root)) return xle_fail(err, XLE_ERR_FORMAT, "%s: expected a mergekit recipe (a mapping)", path);
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (!strcmp(key, "merge_method") || !strcmp(key, "base_model") || !strcmp(key, "models") ||
            !strcmp(key, "parameters"))
            continue;
        if (!strcmp(key, "dtype") || !strcmp(key, "out_dtype")) {
            if (!json_is_string(v)) return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: expected a dtype name", path, key);
            char what[128];
            snprintf(what, sizeof what, "%s %s (xledit computes in float32 and writes the base's dtype)", key,
                     json_string_value(v));
            note_key(note, note_size, what);
        } else if (!strcmp(key, "tokenizer_source")) {
            if (!json_is_string(v) || strcmp(json_string_value(v), "base"))
                return xle_fail(err, XLE_ERR_FORMAT, "%s: tokenizer_source: only 'base' is supported (xledit keeps the "
                                "base's tokenizer, or the largest extension's: docs/merging.md)", path);
        } else if (!strcmp(key, "slices")) {
            return xle_fail(err, XLE_ERR_FORMAT, "%s: slices: layer slicing is not supported; list whole models", path);
        } else {
            return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: not a mergekit key xledit supports (merge_method, base_model, "
                            "models, parameters, dtype, out_dtype, tokenizer_source)", path, key);
        }
    }
    const char *method = json_string_value(json_object_get(root, "merge_method"));
    if (!method) return xle_fail(err, XLE_ERR_FORMAT, "%s: merge_method: required", path);
    if (!xle_merge_method_parse(method, &o->method) || strchr(method, '-'))
        return xle_fail(err, XLE_ERR_FORMAT, "%s: merge_method: '%s' is not supported (linear, task_arithmetic, ties, "
                        "dare_ties, dare_linear)", path, method);
    json_t *base = json_object_get(root, "base_model");
    if (base && !json_is_string(base)) return xle_fail(err, XLE_ERR_FORMAT, "%s: base_model: expected a model path", path);
    o->base = json_string_value(base);
    if (o->base && strchr(o->base, '+'))
        return xle_fail(err, XLE_ERR_FORMAT, "%s: base_model: LoRA adapters (model+lora) are not supported", path);
    if (!o->base && o->method != XLE_MERGE_LINEAR)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: base_model: required for %s", path, method);
    param_value gw = {0}, gd = {0};
    int rescale = 1;
    o->normalize = -1;
    o->lambda = 1.0f;
    json_t *params = json_object_get(root, "parameters");
    xle_status st = XLE_OK;
    if (params && (st = read_parameters(cfg, params, path, "parameters", 1, o, &gw, &gd, &rescale, note, note_size,
                                        err)) != XLE_OK)
        return st;
    int any_drop = 0;
    st = read_models(cfg, path, o, &gw, &gd, &any_drop, err);
    if (st != XLE_OK) return st;
    int dare = o->method == XLE_MERGE_DARE_TIES || o->method == XLE_MERGE_DARE_LINEAR;
    if (!rescale && dare && any_drop)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: parameters.rescale: false is not supported (DARE divides by density)", path);
    return XLE_OK;
}

xle_status xle_merge_config_load(const char *path, xle_merge_opts *opts, xle_merge_config **out, char *note,
                                 size_t note_size, xle_error *err) {
    *out = NULL;
    if (note && note_size) note[0] = '\0';
    xle_merge_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg) return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    cfg->root = xle_yaml_or_json_load(path, err);
    if (!cfg->root) {
        xle_merge_config_free(cfg);
        return err ? err->status : XLE_ERR_FORMAT;
    }
    xle_merge_opts o = *opts;
    xle_status st = read_recipe(cfg, path, &o, note, note_size, err);
    if (st != XLE_OK) {
        xle_merge_config_free(cfg);
        return st;
    }
    *opts = o;
    *out = cfg;
    return XLE_OK;
}
