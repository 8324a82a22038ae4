/*
 * hparams.c: the editing methods' hyper-parameters: names, defaults scaled to the model's depth
 * and width, the layers that need key statistics (overrides from EasyEdit's files: hparams_file.c).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model/family.h"
#include "xledit.h"

/* Layer `layer` of a reference model `depth` layers deep, at the same relative depth of a model
 * of n_layers. */
static int scale_layer(int layer, int depth, int n_layers) {
    int l = (int)lround((double)layer * n_layers / depth);
    return l < 0 ? 0 : l >= n_layers ? n_layers - 1 : l;
}

/* The method's default layers from a family's published ones. */
static void default_layers(xle_edit_hparams *hp, const xle_edit_defaults *e, int n_layers) {
    hp->n_layers = 0;
    switch (hp->method) {
    case XLE_EDIT_ROME: hp->layers[hp->n_layers++] = scale_layer(e->rome, e->depth, n_layers); break;
    case XLE_EDIT_MEMIT:
    case XLE_EDIT_ALPHAEDIT: {
        int lo = scale_layer(e->memit_lo, e->depth, n_layers), hi = scale_layer(e->memit_hi, e->depth, n_layers);
        for (int l = lo; l <= hi && hp->n_layers < XLE_EDIT_MAX_LAYERS; l++) hp->layers[hp->n_layers++] = l;
        break;
    }
    case XLE_EDIT_FT_L:
    case XLE_EDIT_FT_M: hp->layers[hp->n_layers++] = scale_layer(e->ft, e->depth, n_layers); break;
    case XLE_EDIT_IKE: break;
    }
}

const char *xle_edit_method_name(xle_edit_method method) {
    switch (method) {
    case XLE_EDIT_ROME: return "rome";
    case XLE_EDIT_MEMIT: return "memit";
    case XLE_EDIT_FT_L: return "ft-l";
    case XLE_EDIT_FT_M: return "ft-m";
    case XLE_EDIT_IKE: return "ike";
    case XLE_EDIT_ALPHAEDIT: return "alphaedit";
    }
    return "?";
}

int xle_edit_method_parse(const char *name, size_t len, xle_edit_method *out) {
    for (int m = XLE_EDIT_ROME; m <= XLE_EDIT_ALPHAEDIT; m++) {
        const char *known = xle_edit_method_name((xle_edit_method)m);
        if (strlen(known) == len && !strncmp(name, known, len)) {
            *out = (xle_edit_method)m;
            return 0;
        }
    }
    return -1;
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
    hp->ike_k = 32; /* EasyEdit hparams/IKE/llama-7b.yaml and the others */
    hp->nullspace_threshold = 2e-2; /* AlphaEdit */
    hp->alphaedit_l2 = 10;
    switch (method) {
    case XLE_EDIT_ROME:
        /* EasyEdit ROME: seeds x 2 samples x lengths 5 and 10 -> 20 prefixes + the bare prompt */
        hp->n_ctx_lengths = 2;
        hp->ctx_lengths[0] = 5, hp->ctx_counts[0] = 2;
        hp->ctx_lengths[1] = 10, hp->ctx_counts[1] = 2;
        break;
    case XLE_EDIT_MEMIT: {
        hp->mom2_adjustment = 1;
        /* MEMIT: seeds x 1 sample of length 10 -> 5 prefixes + the bare prompt */
        hp->n_ctx_lengths = 1;
        hp->ctx_lengths[0] = 10, hp->ctx_counts[0] = 1;
        break;
    }
    case XLE_EDIT_ALPHAEDIT: {
        /* the reference's Llama3-8B.json: MEMIT's layers (default_layers) and templates, its
         * own z settings */
        hp->v_lr = 0.1f;
        hp->v_weight_decay = 0.5f;
        hp->clamp_norm_factor = 0.75f;
        hp->mom2_adjustment = 1;
        hp->n_ctx_lengths = 1;
        hp->ctx_lengths[0] = 10, hp->ctx_counts[0] = 1;
        break;
    }
    case XLE_EDIT_FT_L:
    case XLE_EDIT_FT_M:
        hp->n_ctx_lengths = 0;
        break;
    case XLE_EDIT_IKE: /* no layers, no templates: the fact goes in the prompt */
        break;
    }
    default_layers(hp, &xle_family_of(XLE_ARCH_LLAMA)->edit, n_layers);
}

void xle_edit_hparams_for_model(xle_edit_hparams *hp, xle_edit_method method,
                                const xle_config *cfg) {
    const xle_edit_defaults *e = &xle_family_of(cfg->arch)->edit;
    xle_edit_hparams_default(hp, method, cfg->n_layers);
    default_layers(hp, e, cfg->n_layers);
    hp->mom2_update_weight = e->mom2_update_weight * cfg->ffn_dim / e->mom2_ffn;
}

int xle_edit_hparams_need_stats(const xle_edit_hparams *hp) {
    return hp->method == XLE_EDIT_MEMIT || hp->method == XLE_EDIT_ALPHAEDIT ||
           (hp->method == XLE_EDIT_ROME && hp->mom2_adjustment);
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

