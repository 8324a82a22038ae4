/*
 * patch.c: an edit as a file. A patch holds the low-rank deltas of an edit and, for every
 * tensor they change, the tensor's original bytes and two hashes (of its values before and
 * after the edit), so that `patch apply` refuses a model it was not made for and `patch
 * revert` gives back the original bytes exactly, whatever rounding the edit went through.
 *
 * The file is a safetensors file (readable by any safetensors tool):
 *   delta.<i>.left [d, r] / delta.<i>.right [f, r]  (F32)   or  delta.<i>.dense [d, f]
 *   original.<layer> [d, f] in the stored dtype of the edited model's down projection
 *   __metadata__: format, n_deltas, delta.<i>.layer, original.<layer>.hash / .patched_hash,
 *                 and "info" (the caller's JSON: method, requests, hparams, ...)
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/outpath.h"
#include "edit/edit_internal.h"
#include "formats/safetensors.h"
#include "model/model_internal.h"

#define PATCH_FORMAT "xledit-patch-1"

struct xle_patch {
    char *path;
    void *map;
    size_t map_size;
    xle_safetensors *st;
    json_t *meta;            /* __metadata__ */
    xle_edit_result deltas;  /* views into the mapping (not owned) */
    int *layers;             /* distinct edited layers */
    int n_layers;
};

/* A 128-bit hash of the tensor's values as f32 (so it does not depend on the stored dtype). */
static void values_hash(const xle_tensor *t, char out[33]) {
    uint64_t h1 = 0x9e3779b97f4a7c15ull, h2 = 0xc2b2ae3d27d4eb4full;
    int64_t n = xle_tensor_numel(t);
    float buf[1024];
    for (int64_t at = 0; at < n; at += 1024) {
        int64_t m = n - at < 1024 ? n - at : 1024;
        xle_tensor_row_to_f32(t, at, m, buf);
        for (int64_t i = 0; i < m; i++) {
            uint32_t v;
            memcpy(&v, &buf[i], 4);
            h1 = (h1 ^ v) * 0x100000001b3ull;
            h1 ^= h1 >> 29;
            h2 = (h2 + v) * 0xff51afd7ed558ccdull;
            h2 ^= h2 >> 31;
        }
    }
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)h1, (unsigned long long)h2);
}

/* The distinct layers of r, in order of first appearance; returns the count. */
static int distinct_layers(const xle_edit_result *r, int *layers) {
    int n = 0;
    for (int i = 0; i < r->n_deltas; i++) {
        int seen = 0;
        for (int j = 0; j < n; j++) seen |= layers[j] == r->deltas[i].layer;
        if (!seen) layers[n++] = r->deltas[i].layer;
    }
    return n;
}

xle_status xle_patch_write(xle_model *model, const xle_edit_result *r, const char *info_json,
                           const char *path, xle_error *err) {
    const xle_config *c = &model->cfg;
    if (r->n_deltas < 1) return xle_fail(err, XLE_ERR_ARG, "%s: the edit has no deltas", path);
    int *layers = malloc((size_t)r->n_deltas * sizeof *layers);
    int n_tensors = 2 * r->n_deltas + r->n_deltas;
    xle_st_tensor *ts = calloc((size_t)n_tensors, sizeof *ts);
    char (*names)[48] = calloc((size_t)n_tensors, sizeof *names);
    float *work = malloc((size_t)c->dim * c->ffn_dim * sizeof *work);
    json_t *meta = json_object();
    xle_status st = XLE_OK;
    if (!layers || !ts || !names || !work || !meta) {
        st = xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    json_error_t je;
    json_t *info = info_json ? json_loads(info_json, 0, &je) : json_object();
    if (!info) {
        st = xle_fail(err, XLE_ERR_ARG, "%s: info: not JSON: %s", path, je.text);
        goto done;
    }
    char *info_text = json_dumps(info, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(info);
    json_object_set_new(meta, "format", json_string(PATCH_FORMAT));
    json_object_set_new(meta, "info", json_string(info_text ? info_text : "{}"));
    free(info_text);
    char key[64], val[40];
    snprintf(val, sizeof val, "%d", r->n_deltas);
    json_object_set_new(meta, "n_deltas", json_string(val));
    int n = 0;
    for (int i = 0; i < r->n_deltas; i++) {
        const xle_layer_delta *dl = &r->deltas[i];
        if (dl->layer < 0 || dl->layer >= c->n_layers || dl->rows != c->dim || dl->cols != c->ffn_dim) {
            st = xle_fail(err, XLE_ERR_ARG, "%s: delta %d does not fit the model", path, i);
            goto done;
        }
        snprintf(key, sizeof key, "delta.%d.layer", i);
        snprintf(val, sizeof val, "%d", dl->layer);
        json_object_set_new(meta, key, json_string(val));
        if (dl->rank > 0) {
            snprintf(names[n], 48, "delta.%d.left", i);
            ts[n] = (xle_st_tensor){names[n], "F32", 2, {dl->rows, dl->rank}, dl->left};
            n++;
            snprintf(names[n], 48, "delta.%d.right", i);
            ts[n] = (xle_st_tensor){names[n], "F32", 2, {dl->cols, dl->rank}, dl->right};
            n++;
        } else {
            snprintf(names[n], 48, "delta.%d.dense", i);
            ts[n] = (xle_st_tensor){names[n], "F32", 2, {dl->rows, dl->cols}, dl->dense};
            n++;
        }
    }
    int n_layers = distinct_layers(r, layers);
    for (int k = 0; k < n_layers; k++) {
        const xle_tensor *w = &model->w.layers[layers[k]].w_down;
        const char *dt = xle_st_dtype_name(w->dtype);
        if (!dt) {
            st = xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: layer %d: the down projection's dtype %s "
                          "cannot be stored in a patch", path, layers[k], xle_dtype_name(w->dtype));
            goto done;
        }
        snprintf(names[n], 48, "original.%d", layers[k]);
        ts[n] = (xle_st_tensor){names[n], dt, 2, {w->shape[0], w->shape[1]}, w->data};
            n++;
        char h[33];
        values_hash(w, h);
        snprintf(key, sizeof key, "original.%d.hash", layers[k]);
        json_object_set_new(meta, key, json_string(h));
        /* the values patch apply will produce: original as f32 plus every delta of the layer */
        xle_tensor_row_to_f32(w, 0, xle_tensor_numel(w), work);
        for (int i = 0; i < r->n_deltas; i++)
            if (r->deltas[i].layer == layers[k]) xle_delta_add(work, &r->deltas[i], 1.0f);
        xle_tensor patched = {XLE_F32, 2, {w->shape[0], w->shape[1]}, work};
        values_hash(&patched, h);
        snprintf(key, sizeof key, "original.%d.patched_hash", layers[k]);
        json_object_set_new(meta, key, json_string(h));
    }
    char *meta_text = json_dumps(meta, JSON_COMPACT | JSON_SORT_KEYS);
    if ((st = xle_out_check(path, XLE_OUT_FILE, err)) != XLE_OK) {
        free(meta_text);
        goto done;
    }
    if (!meta_text) {
        st = xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    xle_atomic_file out;
    if ((st = xle_atomic_name(&out, path, err)) == XLE_OK)
        st = xle_atomic_commit(&out, xle_safetensors_write(out.tmp, ts, (size_t)n, meta_text, NULL, err), err);
    free(meta_text);
done:
    json_decref(meta);
    free(layers), free(ts), free(names), free(work);
    return st;
}

void xle_patch_free(xle_patch *p) {
    if (!p) return;
    free(p->deltas.deltas);
    free(p->layers);
    json_decref(p->meta);
    xle_safetensors_free(p->st);
    if (p->map) xle_unmap(p->map, p->map_size);
    free(p->path);
    free(p);
}

static const char *meta_str(const xle_patch *p, const char *key) {
    json_t *v = json_object_get(p->meta, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* A float tensor of the patch, checked for dtype and shape. */
static xle_status patch_f32(const xle_patch *p, const char *name, int64_t rows, int64_t cols,
                            float **out, xle_error *err) {
    const xle_st_entry *e = xle_safetensors_find(p->st, name);
    if (!e) return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: missing", p->path, name);
    if (strcmp(e->dtype, "F32") != 0 || e->ndim != 2 || (rows >= 0 && e->shape[0] != rows) ||
        (cols >= 0 && e->shape[1] != cols))
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: expected F32 [%lld, %lld]", p->path, name,
                        (long long)rows, (long long)cols);
    if (((uintptr_t)e->data) % 4 != 0)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: misaligned data", p->path, name);
    *out = (float *)e->data;
    return XLE_OK;
}

xle_status xle_patch_load(const char *path, xle_patch **out, xle_error *err) {
    *out = NULL;
    xle_patch *p = calloc(1, sizeof *p);
    if (!p || !(p->path = strdup(path))) {
        free(p);
        return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    }
    xle_status st = xle_map_file(path, &p->map, &p->map_size, err);
    if (st == XLE_OK) st = xle_safetensors_parse(path, p->map, p->map_size, &p->st, err);
    if (st == XLE_OK) {
        json_error_t je;
        p->meta = p->st->metadata_json ? json_loads(p->st->metadata_json, 0, &je) : NULL;
        const char *fmt = p->meta ? meta_str(p, "format") : NULL;
        if (!fmt || strcmp(fmt, PATCH_FORMAT) != 0)
            st = xle_fail(err, XLE_ERR_FORMAT, "%s: __metadata__.format: not an %s file", path,
                          PATCH_FORMAT);
    }
    int n_deltas = 0;
    if (st == XLE_OK) {
        const char *s = meta_str(p, "n_deltas");
        n_deltas = s ? atoi(s) : 0;
        if (n_deltas < 1 || n_deltas > 100000)
            st = xle_fail(err, XLE_ERR_FORMAT, "%s: __metadata__.n_deltas: missing or invalid", path);
    }
    if (st == XLE_OK) {
        p->deltas.deltas = calloc((size_t)n_deltas, sizeof *p->deltas.deltas);
        p->layers = malloc((size_t)n_deltas * sizeof *p->layers);
        if (!p->deltas.deltas || !p->layers) st = xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; st == XLE_OK && i < n_deltas; i++) {
        char key[64];
        snprintf(key, sizeof key, "delta.%d.layer", i);
        const char *s = meta_str(p, key);
        xle_layer_delta *dl = &p->deltas.deltas[i];
        if (!s || (dl->layer = atoi(s)) < 0) {
            st = xle_fail(err, XLE_ERR_FORMAT, "%s: __metadata__.%s: missing or invalid", path, key);
            break;
        }
        snprintf(key, sizeof key, "delta.%d.dense", i);
        const xle_st_entry *dense = xle_safetensors_find(p->st, key);
        if (dense) {
            st = patch_f32(p, key, -1, -1, &dl->dense, err);
            dl->rows = (int)dense->shape[0], dl->cols = (int)dense->shape[1];
        } else {
            snprintf(key, sizeof key, "delta.%d.left", i);
            const xle_st_entry *left = xle_safetensors_find(p->st, key);
            if (!left || left->ndim != 2) {
                st = xle_fail(err, XLE_ERR_FORMAT, "%s: %s: missing", path, key);
                break;
            }
            dl->rows = (int)left->shape[0], dl->rank = (int)left->shape[1];
            st = patch_f32(p, key, dl->rows, dl->rank, &dl->left, err);
            snprintf(key, sizeof key, "delta.%d.right", i);
            const xle_st_entry *right = xle_safetensors_find(p->st, key);
            if (st == XLE_OK && !right) st = xle_fail(err, XLE_ERR_FORMAT, "%s: %s: missing", path, key);
            if (st == XLE_OK) {
                dl->cols = (int)right->shape[0];
                st = patch_f32(p, key, dl->cols, dl->rank, &dl->right, err);
            }
            if (st == XLE_OK && dl->rank < 1)
                st = xle_fail(err, XLE_ERR_FORMAT, "%s: delta.%d: rank 0", path, i);
        }
        p->deltas.n_deltas = i + 1;
    }
    if (st == XLE_OK) {
        p->n_layers = distinct_layers(&p->deltas, p->layers);
        for (int k = 0; st == XLE_OK && k < p->n_layers; k++) {
            char key[64];
            snprintf(key, sizeof key, "original.%d", p->layers[k]);
            const xle_st_entry *e = xle_safetensors_find(p->st, key);
            xle_dtype dt;
            if (!e || e->ndim != 2 || !xle_st_dtype_to_xle(e->dtype, &dt))
                st = xle_fail(err, XLE_ERR_FORMAT, "%s: %s: missing or not a float matrix", path, key);
            snprintf(key, sizeof key, "original.%d.hash", p->layers[k]);
            if (st == XLE_OK && !meta_str(p, key))
                st = xle_fail(err, XLE_ERR_FORMAT, "%s: __metadata__.%s: missing", path, key);
            snprintf(key, sizeof key, "original.%d.patched_hash", p->layers[k]);
            if (st == XLE_OK && !meta_str(p, key))
                st = xle_fail(err, XLE_ERR_FORMAT, "%s: __metadata__.%s: missing", path, key);
        }
    }
    if (st != XLE_OK) {
        xle_patch_free(p);
        return st;
    }
    *out = p;
    return XLE_OK;
}

const char *xle_patch_info(const xle_patch *p) { return meta_str(p, "info"); }

const xle_edit_result *xle_patch_deltas(const xle_patch *p) { return &p->deltas; }

/* Checks every edited layer of the model against the patch's hash `which` ("hash" or
 * "patched_hash"). */
static xle_status check_hashes(xle_model *m, const xle_patch *p, const char *which,
                               const char *what, xle_error *err) {
    for (int k = 0; k < p->n_layers; k++) {
        int l = p->layers[k];
        if (l >= m->cfg.n_layers)
            return xle_fail(err, XLE_ERR_ARG, "%s: layer %d: the model %s has %d layers", p->path,
                            l, m->path, m->cfg.n_layers);
        const xle_tensor *w = &m->w.layers[l].w_down;
        const xle_st_entry *e = NULL;
        char key[64], h[33];
        snprintf(key, sizeof key, "original.%d", l);
        e = xle_safetensors_find(p->st, key);
        if (e->shape[0] != w->shape[0] || e->shape[1] != w->shape[1])
            return xle_fail(err, XLE_ERR_ARG, "%s: %s: shape [%lld, %lld] does not match the "
                            "model's [%lld, %lld]", p->path, key, (long long)e->shape[0],
                            (long long)e->shape[1], (long long)w->shape[0], (long long)w->shape[1]);
        snprintf(key, sizeof key, "original.%d.%s", l, which);
        values_hash(w, h);
        if (strcmp(h, meta_str(p, key)) != 0)
            return xle_fail(err, XLE_ERR_ARG, "%s: layer %d: the down projection of %s is not the "
                            "%s this patch was made for", p->path, l, m->path, what);
    }
    return XLE_OK;
}

xle_status xle_patch_apply(xle_model *m, const xle_patch *p, xle_error *err) {
    xle_status st = check_hashes(m, p, "hash", "unedited weight", err);
    if (st != XLE_OK) return st;
    return xle_edit_apply(m, &p->deltas, +1, err);
}

xle_status xle_patch_revert(xle_model *m, const xle_patch *p, xle_error *err) {
    xle_status st = check_hashes(m, p, "patched_hash", "edited weight", err);
    if (st != XLE_OK) return st;
    for (int k = 0; k < p->n_layers; k++) {
        char key[64];
        snprintf(key, sizeof key, "original.%d", p->layers[k]);
        const xle_st_entry *e = xle_safetensors_find(p->st, key);
        xle_dtype dt;
        xle_st_dtype_to_xle(e->dtype, &dt);
        size_t n = (size_t)(e->end - e->begin);
        void *copy = malloc(n ? n : 1);
        if (!copy) return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
        memcpy(copy, e->data, n);
        if ((st = xle_model_own_buffer(m, copy, err)) != XLE_OK) return st;
        xle_tensor *w = &m->w.layers[p->layers[k]].w_down;
        w->data = copy;
        w->dtype = dt;
    }
    return XLE_OK;
}
