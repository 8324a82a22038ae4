/*
 * hparams.c: the editing methods' hyper-parameters: names, defaults scaled to the model's depth
 * and width, the layers that need key statistics, and overrides from EasyEdit-named JSON.
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "xledit.h"

static int scale_layer(int layer_of_32, int n_layers) {
    int l = (int)lround((double)layer_of_32 * n_layers / 32.0);
    return l < 0 ? 0 : l >= n_layers ? n_layers - 1 : l;
}

const char *xle_edit_method_name(xle_edit_method method) {
    switch (method) {
    case XLE_EDIT_ROME: return "rome";
    case XLE_EDIT_MEMIT: return "memit";
    case XLE_EDIT_FT_L: return "ft-l";
    case XLE_EDIT_FT_M: return "ft-m";
    }
    return "?";
}

void xle_edit_hparams_default(xle_edit_hparams *hp, xle_edit_method method, int n_layers) {
    memset(hp, 0, sizeof *hp);
    hp->method = method;
    hp->v_num_grad_steps = 25;
    hp->v_lr = 0.5f;
    hp->v_weight_decay = 1e-3f;
    hp->clamp_norm_factor = 4.0f;
    hp->kl_factor = 0.0625f;
    hp->mom2_update_weight = 15000;
    hp->ft_steps = 25;
    hp->ft_lr = 5e-4f;
    hp->ft_norm_constraint = 5e-5f; /* EasyEdit mistral-7b.yaml; "norm_constraint": false lifts it */
    hp->seed = 42;
    switch (method) {
    case XLE_EDIT_ROME:
        hp->layers[0] = scale_layer(5, n_layers);
        hp->n_layers = 1;
        /* EasyEdit ROME: seeds x 2 samples x lengths 5 and 10 -> 20 prefixes + the bare prompt */
        hp->n_ctx_lengths = 2;
        hp->ctx_lengths[0] = 5, hp->ctx_counts[0] = 2;
        hp->ctx_lengths[1] = 10, hp->ctx_counts[1] = 2;
        break;
    case XLE_EDIT_MEMIT: {
        int lo = scale_layer(4, n_layers), hi = scale_layer(8, n_layers);
        for (int l = lo; l <= hi && hp->n_layers < XLE_EDIT_MAX_LAYERS; l++) hp->layers[hp->n_layers++] = l;
        hp->mom2_adjustment = 1;
        /* MEMIT: seeds x 1 sample of length 10 -> 5 prefixes + the bare prompt */
        hp->n_ctx_lengths = 1;
        hp->ctx_lengths[0] = 10, hp->ctx_counts[0] = 1;
        break;
    }
    case XLE_EDIT_FT_L:
    case XLE_EDIT_FT_M:
        hp->layers[0] = scale_layer(21, n_layers);
        hp->n_layers = 1;
        hp->n_ctx_lengths = 0;
        break;
    }
}

void xle_edit_hparams_for_model(xle_edit_hparams *hp, xle_edit_method method,
                                const xle_config *cfg) {
    xle_edit_hparams_default(hp, method, cfg->n_layers);
    hp->mom2_update_weight = 15000.0 * cfg->ffn_dim / 11008.0;
}

int xle_edit_hparams_need_stats(const xle_edit_hparams *hp) {
    return hp->method == XLE_EDIT_MEMIT || (hp->method == XLE_EDIT_ROME && hp->mom2_adjustment);
}

int xle_edit_stats_layers(const xle_edit_hparams *hps, int n, int *out) {
    int count = 0;
    for (int h = 0; h < n; h++)
        for (int k = 0; xle_edit_hparams_need_stats(&hps[h]) && k < hps[h].n_layers; k++) {
            int l = hps[h].layers[k], at = 0;
            while (at < count && out[at] < l) at++;
            if (at < count && out[at] == l) continue;
            memmove(out + at + 1, out + at, (size_t)(count - at) * sizeof *out);
            out[at] = l;
            count++;
        }
    return count;
}

xle_status xle_edit_hparams_for_model_path(xle_edit_hparams *hp, xle_edit_method method,
                                           xle_model *model, const char *model_path,
                                           int *used_file, xle_error *err) {
    xle_edit_hparams_for_model(hp, method, xle_model_config(model));
    if (used_file) *used_file = 0;
    struct stat st;
    if (!model_path || stat(model_path, &st) != 0 || !S_ISDIR(st.st_mode)) return XLE_OK;
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/edit-hparams/%s.json", model_path, xle_edit_method_name(method));
    if (n < 0 || (size_t)n >= sizeof path) return xle_fail(err, XLE_ERR_ARG, "%s: path too long", model_path);
    if (stat(path, &st) != 0) return XLE_OK; /* the model asks for nothing special */
    xle_status s = xle_edit_hparams_load_json(hp, path, err);
    if (s == XLE_OK && used_file) *used_file = 1;
    return s;
}

static xle_status json_number(json_t *v, const char *path, const char *key, double *out, xle_error *err) {
    if (!json_is_number(v)) return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: expected a number", path, key);
    *out = json_number_value(v);
    if (!isfinite(*out)) return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: not finite", path, key);
    return XLE_OK;
}

xle_status xle_edit_hparams_load_json(xle_edit_hparams *hp, const char *path, xle_error *err) {
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) return xle_fail(err, XLE_ERR_FORMAT, "%s: line %d: %s", path, je.line, je.text);
    xle_status st = XLE_OK;
    if (!json_is_object(root)) {
        st = xle_fail(err, XLE_ERR_FORMAT, "%s: expected a JSON object", path);
        goto done;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        double x = 0;
        if (!strcmp(key, "layers")) {
            if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > XLE_EDIT_MAX_LAYERS) {
                st = xle_fail(err, XLE_ERR_FORMAT, "%s: layers: expected a non-empty array of layer indices", path);
                goto done;
            }
            hp->n_layers = (int)json_array_size(v);
            for (int i = 0; i < hp->n_layers; i++) {
                json_t *e = json_array_get(v, (size_t)i);
                if (!json_is_integer(e) || json_integer_value(e) < 0) {
                    st = xle_fail(err, XLE_ERR_FORMAT, "%s: layers[%d]: expected a non-negative integer", path, i);
                    goto done;
                }
                hp->layers[i] = (int)json_integer_value(e);
            }
            continue;
        }
        if (!strcmp(key, "mom2_adjustment") || !strcmp(key, "rrome")) {
            if (!json_is_boolean(v)) {
                st = xle_fail(err, XLE_ERR_FORMAT, "%s: %s: expected true or false", path, key);
                goto done;
            }
            *(!strcmp(key, "rrome") ? &hp->rrome : &hp->mom2_adjustment) = json_is_true(v);
            continue;
        }
        if (!strcmp(key, "norm_constraint") && json_is_false(v)) {
            hp->ft_norm_constraint = 0; /* unconstrained */
            continue;
        }
        struct { const char *name; float *f; int *i; double *d; } fields[] = {
            {"v_num_grad_steps", NULL, &hp->v_num_grad_steps, NULL},
            {"v_lr", &hp->v_lr, NULL, NULL},
            {"v_weight_decay", &hp->v_weight_decay, NULL, NULL},
            {"clamp_norm_factor", &hp->clamp_norm_factor, NULL, NULL},
            {"kl_factor", &hp->kl_factor, NULL, NULL},
            {"mom2_update_weight", NULL, NULL, &hp->mom2_update_weight},
            {"num_steps", NULL, &hp->ft_steps, NULL},
            {"lr", &hp->ft_lr, NULL, NULL},
            {"norm_constraint", &hp->ft_norm_constraint, NULL, NULL},
        };
        size_t i;
        for (i = 0; i < sizeof fields / sizeof fields[0]; i++)
            if (!strcmp(key, fields[i].name)) break;
        if (i == sizeof fields / sizeof fields[0]) {
            st = xle_fail(err, XLE_ERR_FORMAT, "%s: %s: unknown hyper-parameter", path, key);
            goto done;
        }
        if ((st = json_number(v, path, key, &x, err)) != XLE_OK) goto done;
        if (fields[i].i) {
            if (x < 0 || x != floor(x) || x > 1e6) {
                st = xle_fail(err, XLE_ERR_FORMAT, "%s: %s: expected a count", path, key);
                goto done;
            }
            *fields[i].i = (int)x;
        } else if (fields[i].f) {
            *fields[i].f = (float)x;
        } else {
            *fields[i].d = x;
        }
    }
done:
    json_decref(root);
    return st;
}

