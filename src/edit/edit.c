/*
 * edit.c: what the editing methods share: hyper-parameters (defaults and JSON overrides),
 * dispatch, applying deltas to a model, temporary weight swaps, and the float64 SPD solve.
 */
#include <jansson.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "edit/edit_internal.h"
#include "tensor/ops.h"
#include "model/model_internal.h"

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

void xle_edit_result_free(xle_edit_result *r) {
    if (!r) return;
    for (int i = 0; i < r->n_deltas; i++) {
        free(r->deltas[i].left);
        free(r->deltas[i].right);
        free(r->deltas[i].dense);
    }
    free(r->deltas);
    r->deltas = NULL;
    r->n_deltas = 0;
}

void xle_layer_stats_free(xle_layer_stats *s) {
    if (!s) return;
    free(s->sum);
    free(s);
}

void xle_delta_add(float *w, const xle_layer_delta *dl, float sign) {
    const int rows = dl->rows, cols = dl->cols, rank = dl->rank;
#pragma omp parallel for schedule(static) if((int64_t)rows * cols > XLE_PAR_MIN_WORK)
    for (int i = 0; i < rows; i++) {
        float *wr = w + (int64_t)i * cols;
        if (rank == 0) {
            const float *dr = dl->dense + (int64_t)i * cols;
            for (int j = 0; j < cols; j++) wr[j] += sign * dr[j];
        } else {
            for (int r = 0; r < rank; r++) {
                float a = sign * dl->left[(int64_t)i * rank + r];
                for (int j = 0; j < cols; j++) wr[j] += a * dl->right[(int64_t)j * rank + r];
            }
        }
    }
}

static xle_status check_delta(const xle_model *m, const xle_layer_delta *dl, xle_error *err) {
    const xle_config *c = &m->cfg;
    if (dl->layer < 0 || dl->layer >= c->n_layers)
        return xle_fail(err, XLE_ERR_ARG, "edit: layer %d outside [0, %d)", dl->layer, c->n_layers);
    if (dl->rows != c->dim || dl->cols != c->ffn_dim)
        return xle_fail(err, XLE_ERR_ARG, "edit: layer %d: delta is %dx%d, the weight %dx%d", dl->layer,
                        dl->rows, dl->cols, c->dim, c->ffn_dim);
    return XLE_OK;
}

xle_status xle_weight_swap_apply(xle_model *m, const xle_layer_delta *dl, xle_weight_swap *swap,
                                 xle_error *err) {
    xle_status st = check_delta(m, dl, err);
    if (st != XLE_OK) return st;
    xle_tensor *slot = &m->w.layers[dl->layer].w_down;
    int64_t n = xle_tensor_numel(slot);
    float *temp = malloc((size_t)n * sizeof(float));
    if (!temp) return xle_fail(err, XLE_ERR_NOMEM, "edit: out of memory");
    xle_tensor_row_to_f32(slot, 0, n, temp);
    xle_delta_add(temp, dl, 1.0f);
    swap->slot = slot;
    swap->orig = *slot;
    swap->temp = temp;
    slot->data = temp;
    slot->dtype = XLE_F32;
    return XLE_OK;
}

void xle_weight_swap_restore(xle_weight_swap *swap) {
    if (!swap->slot) return;
    *swap->slot = swap->orig;
    free(swap->temp);
    memset(swap, 0, sizeof *swap);
}

xle_status xle_edit_apply(xle_model *m, const xle_edit_result *r, int sign, xle_error *err) {
    for (int i = 0; i < r->n_deltas; i++) {
        xle_status st = check_delta(m, &r->deltas[i], err);
        if (st != XLE_OK) return st;
    }
    for (int i = 0; i < r->n_deltas; i++) {
        xle_tensor *w = &m->w.layers[r->deltas[i].layer].w_down;
        xle_status st = xle_model_make_writable_f32(m, w, err);
        if (st != XLE_OK) return st;
        xle_delta_add(w->data, &r->deltas[i], (float)sign);
    }
    return XLE_OK;
}

xle_status xle_solve_spd(double *a, double *b, int n, int nrhs, const char *what, xle_error *err) {
    lapack_int info = LAPACKE_dposv(LAPACK_ROW_MAJOR, 'U', n, nrhs, a, n, b, nrhs);
    if (info > 0)
        return xle_fail(err, XLE_ERR_NUMERIC, "%s: the %dx%d matrix is not positive definite (collect statistics over more tokens)", what, n, n);
    if (info < 0) return xle_fail(err, XLE_ERR_ARG, "%s: LAPACK dposv argument %d is invalid", what, (int)-info);
    return XLE_OK;
}

static xle_status edit_run(xle_model *m, const xle_edit_hparams *hp, const xle_edit_request_tok *reqs,
                           int n_reqs, xle_layer_stats *const *stats, xle_edit_memo *memo,
                           xle_edit_result *out, xle_error *err) {
    memset(out, 0, sizeof *out);
    if (n_reqs <= 0) return xle_fail(err, XLE_ERR_ARG, "edit: no requests");
    if (hp->n_layers <= 0) return xle_fail(err, XLE_ERR_ARG, "edit: no layers");
    for (int i = 0; i < hp->n_layers; i++) {
        if (hp->layers[i] < 0 || hp->layers[i] >= m->cfg.n_layers)
            return xle_fail(err, XLE_ERR_ARG, "edit: layer %d outside the model's %d layers", hp->layers[i], m->cfg.n_layers);
        if (i && hp->layers[i] <= hp->layers[i - 1])
            return xle_fail(err, XLE_ERR_ARG, "edit: layers must be strictly ascending");
    }
    for (int r = 0; r < n_reqs; r++)
        for (int t = 0; t < reqs[r].n_target; t++)
            if (reqs[r].target[t] < 0 || reqs[r].target[t] >= m->cfg.vocab_size)
                return xle_fail(err, XLE_ERR_ARG, "edit: request %d: target id %d outside the vocabulary", r, reqs[r].target[t]);
    xle_status st;
    switch (hp->method) {
    case XLE_EDIT_ROME: {
        /* Several requests: edited one after another, each on top of the previous ones. */
        xle_weight_swap swaps[XLE_EDIT_MAX_LAYERS] = {{0}};
        xle_edit_result acc = {0};
        st = XLE_OK;
        for (int r = 0; r < n_reqs && st == XLE_OK; r++) {
            xle_edit_result one = {0};
            /* the first request is edited on the unedited model: the memo may have it */
            st = r == 0 ? xle_edit_memo_rome(m, hp, &reqs[r], stats, memo, &one, err)
                        : xle_rome_run(m, hp, &reqs[r], stats, &one, err);
            if (st != XLE_OK) {
                xle_edit_result_free(&one);
                break;
            }
            /* accumulate rank-one deltas per layer: concatenate factors */
            if (!acc.deltas) {
                acc = one;
            } else {
                for (int i = 0; i < one.n_deltas && st == XLE_OK; i++) {
                    xle_layer_delta *a = &acc.deltas[i], *b = &one.deltas[i];
                    int rank = a->rank + 1;
                    float *left = malloc((size_t)a->rows * rank * sizeof(float));
                    float *right = malloc((size_t)a->cols * rank * sizeof(float));
                    if (!left || !right) {
                        free(left), free(right);
                        st = xle_fail(err, XLE_ERR_NOMEM, "edit: out of memory");
                        break;
                    }
                    for (int x = 0; x < a->rows; x++) {
                        memcpy(left + (int64_t)x * rank, a->left + (int64_t)x * a->rank, (size_t)a->rank * sizeof(float));
                        left[(int64_t)x * rank + a->rank] = b->left[x];
                    }
                    for (int x = 0; x < a->cols; x++) {
                        memcpy(right + (int64_t)x * rank, a->right + (int64_t)x * a->rank, (size_t)a->rank * sizeof(float));
                        right[(int64_t)x * rank + a->rank] = b->right[x];
                    }
                    free(a->left), free(a->right);
                    a->left = left, a->right = right, a->rank = rank;
                }
                acc.final_loss = one.final_loss, acc.steps = one.steps;
                xle_edit_result_free(&one);
            }
            if (r + 1 < n_reqs && st == XLE_OK) {
                for (int i = acc.n_deltas - 1; i >= 0; i--) xle_weight_swap_restore(&swaps[i]);
                for (int i = 0; i < acc.n_deltas && st == XLE_OK; i++)
                    st = xle_weight_swap_apply(m, &acc.deltas[i], &swaps[i], err);
            }
        }
        for (int i = XLE_EDIT_MAX_LAYERS - 1; i >= 0; i--) xle_weight_swap_restore(&swaps[i]);
        if (st != XLE_OK) xle_edit_result_free(&acc);
        else *out = acc;
        return st;
    }
    case XLE_EDIT_MEMIT: st = xle_memit_run(m, hp, reqs, n_reqs, stats, out, err); break;
    case XLE_EDIT_FT_L:
    case XLE_EDIT_FT_M: st = xle_ft_run(m, hp, reqs, n_reqs, out, err); break;
    default: return xle_fail(err, XLE_ERR_ARG, "edit: unknown method");
    }
    if (st != XLE_OK) xle_edit_result_free(out);
    return st;
}

xle_status xle_edit_run(xle_model *m, const xle_edit_hparams *hp, const xle_edit_request_tok *reqs,
                        int n_reqs, xle_layer_stats *const *stats, xle_edit_result *out, xle_error *err) {
    return xle_edit_run_memo(m, hp, reqs, n_reqs, stats, NULL, out, err);
}

xle_status xle_edit_run_memo(xle_model *m, const xle_edit_hparams *hp, const xle_edit_request_tok *reqs,
                             int n_reqs, xle_layer_stats *const *stats, xle_edit_memo *memo,
                             xle_edit_result *out, xle_error *err) {
    /* Edits are computed in exact arithmetic whatever precision the model runs inference in:
     * the goldens (docs/editing.md) were not measured with bf16-rounded activations. */
    const xle_precision keep = xle_model_precision(m);
    xle_model_set_precision(m, XLE_PRECISION_EXACT);
    xle_status st = edit_run(m, hp, reqs, n_reqs, stats, memo, out, err);
    xle_model_set_precision(m, keep);
    return st;
}
