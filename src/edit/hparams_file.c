/*
 * hparams_file.c: hyper-parameter files under EasyEdit's key names, YAML or JSON, as EasyEdit
 * publishes them (hparams/ROME/llama-7b.yaml ...). Three kinds of key: those xledit applies
 * (layers, v_lr, ...), those it accepts without use (where EasyEdit keeps its model, device,
 * statistics set-up: named back to the caller for one note), and module-name templates, which
 * must name this model's modules. Anything else is an error naming file and key.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "edit/edit_internal.h"
#include "model/family.h"
#include "formats/yaml_json.h"

/* Keys EasyEdit's files carry that do not change what xledit computes: where EasyEdit finds its
 * model and statistics, how it places and batches work, and the statistics' set-up (xledit's
 * come from `xledit stats`, accumulated in float64: docs/editing.md). v_loss_layer is the last
 * layer of the model in every published file, which is where xledit scores. AlphaEdit's P_loc
 * is where EasyEdit caches its projection; xledit keeps it in --alphaedit-state DIR. */
static const char *const unused_keys[] = {
    "model_name", "device", "stats_dir", "model_parallel", "fp16", "max_length", "batch_size",
    "v_loss_layer", "mom2_dataset", "mom2_n_samples", "mom2_dtype", "P_loc", NULL};

/* The module-name keys of EasyEdit's files; the names this model must have come from its
 * family's description (model/family.h). */
typedef enum module_field { MOD_REWRITE, MOD_LAYER, MOD_MLP, MOD_ATTN, MOD_LN_F, MOD_LM_HEAD } module_field;

typedef struct module_key {
    const char *key;
    module_field field;
} module_key;

static const module_key module_keys[] = {
    {"rewrite_module_tmp", MOD_REWRITE}, {"layer_module_tmp", MOD_LAYER}, {"mlp_module_tmp", MOD_MLP},
    {"attn_module_tmp", MOD_ATTN},       {"ln_f_module", MOD_LN_F},       {"lm_head_module", MOD_LM_HEAD},
};

/* The family's name for a key, and the other name also accepted (FT's parameter name; the tied
 * embedding for the head), or NULL. */
static void module_names(const xle_family *fam, module_field f, const char **name, const char **alt) {
    const xle_module_names *n = &fam->modules;
    *alt = NULL;
    switch (f) {
    case MOD_REWRITE: *name = n->rewrite, *alt = n->rewrite_param; return;
    case MOD_LAYER: *name = n->layer; return;
    case MOD_MLP: *name = n->mlp; return;
    case MOD_ATTN: *name = n->attn; return;
    case MOD_LN_F: *name = n->ln_f; return;
    case MOD_LM_HEAD: *name = n->lm_head, *alt = n->lm_head_tied; return;
    }
    *name = "";
}

static const char *arch_name(const xle_model *model) {
    if (!model) return "Llama-family";
    switch (xle_model_config((xle_model *)model)->arch) {
    case XLE_ARCH_LLAMA: return "Llama";
    case XLE_ARCH_MISTRAL: return "Mistral";
    case XLE_ARCH_QWEN2: return "Qwen2";
    case XLE_ARCH_GPT2: return "GPT-2";
    case XLE_ARCH_GPTJ: return "GPT-J";
    case XLE_ARCH_GEMMA: return "Gemma";
    case XLE_ARCH_GEMMA2: return "Gemma-2";
    case XLE_ARCH_BLOOM: return "BLOOM";
    }
    return "Llama-family";
}

/* Which family writes module names this way, for the message when a file is for another. */
static const char *family_of(const char *name) {
    if (strstr(name, "fc_out") || strstr(name, "fc_in")) return "GPT-J's";
    if (strstr(name, "dense_4h_to_h") || strstr(name, "self_attention") || strstr(name, "word_embeddings"))
        return "BLOOM's";
    if (!strncmp(name, "transformer.", 12)) return "a GPT-2, GPT-J or Qwen-1 name";
    if (!strncmp(name, "gpt_neox.", 9)) return "GPT-NeoX's";
    if (!strncmp(name, "model.layers.", 13)) return "a Llama, Mistral or Qwen2 name";
    return NULL;
}

static xle_status check_module(const module_key *mk, json_t *v, const xle_model *model, const char *path,
                               xle_error *err) {
    if (!json_is_string(v)) return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: expected a module name", path, mk->key);
    const char *name = json_string_value(v);
    const xle_config *cfg = model ? xle_model_config((xle_model *)model) : NULL;
    int tied = cfg && cfg->tied_embeddings;
    int lm_head = mk->field == MOD_LM_HEAD;
    const char *want, *alt;
    module_names(xle_family_of(cfg ? cfg->arch : XLE_ARCH_LLAMA), mk->field, &want, &alt);
    if (!strcmp(name, want) || (alt && !strcmp(name, alt) && (!lm_head || tied)))
        return XLE_OK;
    const char *family = family_of(name);
    return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: '%s' is %s%s; this %s model's is '%s' (the file is for another model family)",
                    path, mk->key, name, family ? family : "not a module of this model",
                    family && strstr(family, "'s") ? " module" : "", arch_name(model), want);
}

/* A number, or a string that reads whole as one (EasyEdit turns such strings into floats). */
static xle_status number(json_t *v, const char *path, const char *key, double *out, xle_error *err) {
    if (json_is_string(v)) {
        char *end;
        const char *s = json_string_value(v);
        *out = strtod(s, &end);
        if (!*s || *end) return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: expected a number, got '%s'", path, key, s);
    } else if (json_is_number(v)) {
        *out = json_number_value(v);
    } else {
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: expected a number", path, key);
    }
    if (!isfinite(*out)) return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: not finite", path, key);
    return XLE_OK;
}

static xle_status count(json_t *v, const char *path, const char *key, int *out, xle_error *err) {
    double x = 0;
    xle_status st = number(v, path, key, &x, err);
    if (st != XLE_OK) return st;
    if (x < 0 || x != floor(x) || x > 1e6) return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: expected a count", path, key);
    *out = (int)x;
    return XLE_OK;
}

static xle_status read_layers(json_t *v, const char *path, xle_edit_hparams *hp, xle_error *err) {
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > XLE_EDIT_MAX_LAYERS)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: layers: expected a non-empty array of layer indices", path);
    int n = (int)json_array_size(v);
    for (int i = 0; i < n; i++) {
        json_t *e = json_array_get(v, (size_t)i);
        if (!json_is_integer(e) || json_integer_value(e) < 0 || json_integer_value(e) > 100000)
            return xle_fail(err, XLE_ERR_FORMAT, "%s: layers[%d]: expected a non-negative integer", path, i);
        hp->layers[i] = (int)json_integer_value(e);
    }
    hp->n_layers = n;
    return XLE_OK;
}

/* EasyEdit's [[length, n_gen], ...]: n_gen samples of `length` tokens spread over its 5 seed
 * words, n_gen // 5 from each (EasyEdit divides the same way), which is xledit's per-seed count. */
static xle_status read_ctx_params(json_t *v, const char *path, xle_edit_hparams *hp, xle_error *err) {
    const char *key = "context_template_length_params";
    int cap = (int)(sizeof hp->ctx_lengths / sizeof hp->ctx_lengths[0]);
    if (!json_is_array(v) || (int)json_array_size(v) > cap)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: expected at most %d [length, count] pairs", path, key, cap);
    int n = (int)json_array_size(v);
    for (int i = 0; i < n; i++) {
        json_t *pair = json_array_get(v, (size_t)i);
        int len, n_gen;
        if (!json_is_array(pair) || json_array_size(pair) != 2 ||
            count(json_array_get(pair, 0), path, key, &len, err) != XLE_OK ||
            count(json_array_get(pair, 1), path, key, &n_gen, err) != XLE_OK || len < 1 || len > 256)
            return xle_fail(err, XLE_ERR_FORMAT, "%s: %s[%d]: expected [length 1..256, count]", path, key, i);
        hp->ctx_lengths[i] = len;
        hp->ctx_counts[i] = n_gen / 5;
    }
    hp->n_ctx_lengths = n;
    return XLE_OK;
}

static xle_status read_bool(json_t *v, const char *path, const char *key, int *out, xle_error *err) {
    if (!json_is_boolean(v)) return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: expected true or false", path, key);
    *out = json_is_true(v);
    return XLE_OK;
}

/* The file's alg_name (and FT's objective_optimization) must be the method being run. */
static xle_status check_method(json_t *root, const char *path, xle_edit_method method, xle_error *err) {
    json_t *alg = json_object_get(root, "alg_name");
    json_t *obj = json_object_get(root, "objective_optimization");
    const char *name = xle_edit_method_name(method);
    int ft = method == XLE_EDIT_FT_L || method == XLE_EDIT_FT_M;
    if (alg) {
        if (!json_is_string(alg)) return xle_fail(err, XLE_ERR_FORMAT, "%s: alg_name: expected a string", path);
        const char *a = json_string_value(alg);
        if (!(ft && !strcasecmp(a, "FT")) && strcasecmp(a, name))
            return xle_fail(err, XLE_ERR_FORMAT, "%s: alg_name: the file is for %s, not for %s", path, a, name);
    }
    if (obj) {
        const char *o = json_is_string(obj) ? json_string_value(obj) : "";
        xle_edit_method want = !strcmp(o, "prompt_last") ? XLE_EDIT_FT_L : XLE_EDIT_FT_M;
        if (strcmp(o, "prompt_last") && strcmp(o, "target_new"))
            return xle_fail(err, XLE_ERR_FORMAT, "%s: objective_optimization: expected prompt_last (FT-L) or target_new (FT-M)", path);
        if (!ft || method != want)
            return xle_fail(err, XLE_ERR_FORMAT, "%s: objective_optimization: %s is EasyEdit's %s, not %s", path, o,
                            want == XLE_EDIT_FT_L ? "FT-L" : "FT-M", name);
    }
    return XLE_OK;
}

static void note_key(char *note, size_t note_size, const char *key) {
    if (!note || !note_size) return;
    size_t n = strlen(note);
    snprintf(note + n, note_size - n, "%s%s", n ? ", " : "", key);
}

static int in_list(const char *key, const char *const *list) {
    for (; *list; list++)
        if (!strcmp(key, *list)) return 1;
    return 0;
}

/* One key of the file: applied, checked, noted, or refused. */
static xle_status apply_key(xle_edit_hparams *hp, const char *key, json_t *v, const xle_model *model,
                            const char *path, char *note, size_t note_size, xle_error *err) {
    if (!strcmp(key, "alg_name") || !strcmp(key, "objective_optimization")) return XLE_OK; /* check_method */
    if (!strcmp(key, "layers")) return read_layers(v, path, hp, err);
    if (!strcmp(key, "context_template_length_params")) return read_ctx_params(v, path, hp, err);
    if (!strcmp(key, "mom2_adjustment")) return read_bool(v, path, key, &hp->mom2_adjustment, err);
    if (!strcmp(key, "rrome")) return read_bool(v, path, key, &hp->rrome, err);
    for (size_t i = 0; i < sizeof module_keys / sizeof module_keys[0]; i++)
        if (!strcmp(key, module_keys[i].key)) return check_module(&module_keys[i], v, model, path, err);
    if (in_list(key, unused_keys)) {
        note_key(note, note_size, key);
        return XLE_OK;
    }
    if (!strcmp(key, "fact_token")) {
        if (json_is_string(v) && !strcmp(json_string_value(v), "subject_last")) return XLE_OK;
        return xle_fail(err, XLE_ERR_FORMAT, "%s: fact_token: xledit reads keys at subject_last only", path);
    }
    if (!strcmp(key, "layer_selection")) {
        if (json_is_string(v) && !strcmp(json_string_value(v), "all")) return XLE_OK;
        return xle_fail(err, XLE_ERR_FORMAT, "%s: layer_selection: xledit spreads MEMIT over all its layers (\"all\")", path);
    }
    if (!strcmp(key, "weight_decay")) { /* FT's Adam: xledit's has none */
        double x = 0;
        xle_status st = number(v, path, key, &x, err);
        if (st == XLE_OK && x != 0)
            st = xle_fail(err, XLE_ERR_FORMAT, "%s: weight_decay: xledit's FT has no weight decay (0 only)", path);
        return st;
    }
    if (!strcmp(key, "norm_constraint") && json_is_false(v)) {
        hp->ft_norm_constraint = 0; /* unconstrained */
        return XLE_OK;
    }
    if (!strcmp(key, "seed")) {
        double x = 0;
        xle_status st = number(v, path, key, &x, err);
        if (st == XLE_OK && (x < 0 || x != floor(x) || x >= 18446744073709551616.0))
            st = xle_fail(err, XLE_ERR_FORMAT, "%s: seed: expected a non-negative integer", path);
        if (st == XLE_OK) hp->seed = (uint64_t)x;
        return st;
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
        {"k", NULL, &hp->ike_k, NULL},
        {"nullspace_threshold", NULL, NULL, &hp->nullspace_threshold},
        {"L2", NULL, NULL, &hp->alphaedit_l2},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (strcmp(key, fields[i].name)) continue;
        if (fields[i].i) return count(v, path, key, fields[i].i, err);
        double x = 0;
        xle_status st = number(v, path, key, &x, err);
        if (st != XLE_OK) return st;
        if (fields[i].f) *fields[i].f = (float)x;
        else *fields[i].d = x;
        return XLE_OK;
    }
    return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: unknown hyper-parameter", path, key);
}

xle_status xle_edit_hparams_load_file(xle_edit_hparams *hp, const char *path, const xle_model *model,
                                      char *note, size_t note_size, xle_error *err) {
    if (note && note_size) note[0] = '\0';
    json_t *root = xle_yaml_or_json_load(path, err);
    if (!root) return err ? err->status : XLE_ERR_FORMAT;
    xle_status st = XLE_OK;
    if (!json_is_object(root)) {
        st = xle_fail(err, XLE_ERR_FORMAT, "%s: expected a mapping of hyper-parameters", path);
    } else if ((st = check_method(root, path, hp->method, err)) == XLE_OK) {
        /* applied to a copy, so that a refused file leaves hp as it was */
        xle_edit_hparams next = *hp;
        const char *key;
        json_t *v;
        json_object_foreach(root, key, v) {
            if ((st = apply_key(&next, key, v, model, path, note, note_size, err)) != XLE_OK) break;
        }
        if (st == XLE_OK) *hp = next;
    }
    json_decref(root);
    return st;
}

xle_status xle_edit_hparams_load_json(xle_edit_hparams *hp, const char *path, xle_error *err) {
    return xle_edit_hparams_load_file(hp, path, NULL, NULL, 0, err);
}
