/*
 * alphaedit.c: AlphaEdit (Fang et al., ICLR 2025) as its reference code runs it: MEMIT's
 * targets z and multi-layer write (spread.c), with each layer's right factor projected onto the
 * null space of the preserved keys and the keys of earlier edits in the solve:
 *   A = (P (K Kᵀ + C_prev) + L2 I)⁻¹ P K,   Δ_l = (R / (L − i)) Aᵀ,
 * P = U Uᵀ over the eigenvectors of the unedited model's key covariance with eigenvalue below
 * nullspace_threshold (solve.c), C_prev = Σ k kᵀ over the keys of the edits made so far
 * (the reference's cache_c), added after each batch. The state (P and C_prev per layer) lives
 * in memory and, between CLI calls, in DIR/alphaedit-state.safetensors.
 */
#include <cblas.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/outpath.h"
#include "edit/edit_internal.h"
#include "edit/spread.h"
#include "formats/safetensors.h"

#define STATE_FORMAT "xledit-alphaedit-1"
#define STATE_FILE "alphaedit-state.safetensors"

struct xle_alphaedit_state {
    int n_layers, f;
    int layers[XLE_EDIT_MAX_LAYERS];
    double threshold;
    float *proj;   /* n_layers × f × f: P per layer */
    float *keys;   /* n_layers × f × f: Σ k kᵀ over the edits so far */
    int null_dim[XLE_EDIT_MAX_LAYERS];
    double eig_min[XLE_EDIT_MAX_LAYERS], eig_max[XLE_EDIT_MAX_LAYERS];
    int n_edits;
};

static xle_alphaedit_state *state_alloc(const xle_edit_hparams *hp, int f, xle_error *err) {
    xle_alphaedit_state *s = calloc(1, sizeof *s);
    const size_t per = (size_t)f * f;
    if (s) {
        s->proj = malloc((size_t)hp->n_layers * per * sizeof(float));
        s->keys = calloc((size_t)hp->n_layers * per, sizeof(float));
    }
    if (!s || !s->proj || !s->keys) {
        xle_alphaedit_state_free(s);
        xle_fail(err, XLE_ERR_NOMEM, "alphaedit: out of memory (%d layers of %d x %d)", hp->n_layers, f, f);
        return NULL;
    }
    s->n_layers = hp->n_layers, s->f = f, s->threshold = hp->nullspace_threshold;
    memcpy(s->layers, hp->layers, (size_t)hp->n_layers * sizeof(int));
    return s;
}

void xle_alphaedit_state_free(xle_alphaedit_state *s) {
    if (!s) return;
    free(s->proj), free(s->keys), free(s);
}

xle_status xle_alphaedit_state_new(const xle_edit_hparams *hp, xle_layer_stats *const *stats,
                                   xle_alphaedit_state **out, xle_error *err) {
    *out = NULL;
    if (hp->n_layers <= 0) return xle_fail(err, XLE_ERR_ARG, "alphaedit: no layers");
    const xle_layer_stats *s0 = stats ? stats[0] : NULL;
    if (!s0 || s0->dim <= 0) return xle_fail(err, XLE_ERR_ARG, "alphaedit: layer %d: needs key statistics (xledit stats)", hp->layers[0]);
    const int f = s0->dim;
    xle_alphaedit_state *s = state_alloc(hp, f, err);
    if (!s) return XLE_ERR_NOMEM;
    double *c = malloc((size_t)f * f * sizeof(double));
    xle_status st = c ? XLE_OK : xle_fail(err, XLE_ERR_NOMEM, "alphaedit: out of memory");
    for (int li = 0; li < hp->n_layers && st == XLE_OK; li++) {
        const xle_layer_stats *ls = stats[li];
        if (!ls || ls->dim != f || ls->count <= 0) {
            st = xle_fail(err, XLE_ERR_ARG, "alphaedit: layer %d: needs key statistics (xledit stats)", hp->layers[li]);
            break;
        }
        /* the reference's covariance: the uncentred second moment Σ k kᵀ / count */
        for (int64_t i = 0; i < (int64_t)f * f; i++) c[i] = ls->sum[i] / (double)ls->count;
        st = xle_nullspace_projection(c, f, hp->nullspace_threshold, s->proj + (size_t)li * f * f,
                                      &s->null_dim[li], &s->eig_min[li], &s->eig_max[li], err);
    }
    free(c);
    if (st != XLE_OK) xle_alphaedit_state_free(s);
    else *out = s;
    return st;
}

void xle_alphaedit_state_layer(const xle_alphaedit_state *s, int i, int *null_dim, double *eig_min,
                               double *eig_max) {
    *null_dim = s->null_dim[i], *eig_min = s->eig_min[i], *eig_max = s->eig_max[i];
}

int xle_alphaedit_state_edits(const xle_alphaedit_state *s) { return s->n_edits; }

void xle_alphaedit_state_forget_keys(xle_alphaedit_state *s) {
    memset(s->keys, 0, (size_t)s->n_layers * s->f * s->f * sizeof(float));
    s->n_edits = 0;
}

/* ---- the edit ------------------------------------------------------------------------------ */

typedef struct alpha_ctx {
    const xle_edit_hparams *hp;
    const xle_alphaedit_state *s;
    int f;
    double *S, *P, *M;     /* f × f workspaces: K Kᵀ + C_prev, P, P S + L2 I */
    double *batch_keys;    /* n_layers × f × n: this batch's keys, added to the state at the end */
} alpha_ctx;

static xle_status alpha_solve(void *user, int li, const double *K, int n, double *A, xle_error *err) {
    alpha_ctx *ac = user;
    const int f = ac->f;
    const float *P = ac->s->proj + (size_t)li * f * f, *C = ac->s->keys + (size_t)li * f * f;
    memcpy(ac->batch_keys + (size_t)li * f * n, K, (size_t)f * n * sizeof(double));
    for (int64_t i = 0; i < (int64_t)f * f; i++) ac->S[i] = C[i], ac->P[i] = P[i];
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, f, f, n, 1.0, K, n, K, n, 1.0, ac->S, f);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, f, f, f, 1.0, ac->P, f, ac->S, f, 0.0, ac->M, f);
    for (int i = 0; i < f; i++) ac->M[(int64_t)i * f + i] += ac->hp->alphaedit_l2;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, f, n, f, 1.0, ac->P, f, K, n, 0.0, A, n);
    return xle_solve_general(ac->M, A, f, n, "alphaedit: P (K Kᵀ + C) + L2 I", err);
}

static xle_status check_state(const xle_alphaedit_state *s, const xle_edit_hparams *hp, int f,
                              const char *where, xle_error *err) {
    char have[512] = "", want[512] = "";
    for (int i = 0, at = 0; i < s->n_layers && at < 400; i++) at += snprintf(have + at, sizeof have - at, "%s%d", i ? "," : "", s->layers[i]);
    for (int i = 0, at = 0; i < hp->n_layers && at < 400; i++) at += snprintf(want + at, sizeof want - at, "%s%d", i ? "," : "", hp->layers[i]);
    if (strcmp(have, want))
        return xle_fail(err, XLE_ERR_ARG, "%s: layers %s, but the hyper-parameters edit layers %s", where, have, want);
    if (s->f != f)
        return xle_fail(err, XLE_ERR_ARG, "%s: keys of width %d, the model's MLP has %d", where, s->f, f);
    if (s->threshold != hp->nullspace_threshold)
        return xle_fail(err, XLE_ERR_ARG, "%s: nullspace_threshold %g, the hyper-parameters say %g (P is computed once, on the unedited model)",
                        where, s->threshold, hp->nullspace_threshold);
    return XLE_OK;
}

static xle_status alphaedit_run(xle_model *m, const xle_edit_hparams *hp, const xle_edit_request_tok *reqs,
                                int n_reqs, xle_alphaedit_state *s, xle_edit_result *out, xle_error *err) {
    const int f = xle_model_config(m)->ffn_dim, L = hp->n_layers, n = n_reqs;
    memset(out, 0, sizeof *out);
    if (n <= 0) return xle_fail(err, XLE_ERR_ARG, "alphaedit: no requests");
    xle_status st = check_state(s, hp, f, "alphaedit", err);
    if (st != XLE_OK) return st;
    alpha_ctx ac = {hp, s, f, malloc((size_t)f * f * sizeof(double)), malloc((size_t)f * f * sizeof(double)),
                    malloc((size_t)f * f * sizeof(double)), malloc((size_t)L * f * n * sizeof(double))};
    if (!ac.S || !ac.P || !ac.M || !ac.batch_keys) st = xle_fail(err, XLE_ERR_NOMEM, "alphaedit: out of memory (%d x %d)", f, f);
    if (st == XLE_OK) st = xle_edit_spread(m, hp, reqs, n, alpha_solve, &ac, out, err);
    if (st == XLE_OK) {
        /* C_prev += K Kᵀ per layer: the reference computes these keys again on the edited model,
         * but a layer's keys depend only on the layers below it, which spread.c had edited
         * already when it read them, so they are the same keys. */
        for (int li = 0; li < L; li++) {
            const double *K = ac.batch_keys + (size_t)li * f * n;
            float *C = s->keys + (size_t)li * f * f;
            for (int i = 0; i < f; i++)
                for (int j = 0; j < f; j++) {
                    double kk = 0;
                    for (int r = 0; r < n; r++) kk += K[(int64_t)i * n + r] * K[(int64_t)j * n + r];
                    C[(int64_t)i * f + j] += (float)kk;
                }
        }
        s->n_edits += n;
    }
    free(ac.S), free(ac.P), free(ac.M), free(ac.batch_keys);
    if (st != XLE_OK) xle_edit_result_free(out);
    return st;
}

xle_status xle_alphaedit_run(xle_model *m, const xle_edit_hparams *hp, const xle_edit_request_tok *reqs,
                             int n_reqs, xle_alphaedit_state *s, xle_edit_result *out, xle_error *err) {
    /* in exact arithmetic whatever precision the model runs inference in, as xle_edit_run */
    const xle_precision keep = xle_model_precision(m);
    xle_model_set_precision(m, XLE_PRECISION_EXACT);
    xle_status st = alphaedit_run(m, hp, reqs, n_reqs, s, out, err);
    xle_model_set_precision(m, keep);
    return st;
}

/* ---- DIR/alphaedit-state.safetensors ------------------------------------------------------- */

static void join_ints(char *buf, size_t size, const int *v, int n) {
    size_t at = 0;
    buf[0] = 0;
    for (int i = 0; i < n && at < size; i++) at += (size_t)snprintf(buf + at, size - at, "%s%d", i ? "," : "", v[i]);
}

xle_status xle_alphaedit_state_save(xle_model *m, const xle_alphaedit_state *s, const char *dir,
                                    xle_error *err) {
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return xle_fail(err, XLE_ERR_IO, "%s: cannot create the directory: %s", dir, strerror(errno));
    char fp[65], layers[600], nulls[600], num[64];
    xle_model_fingerprint(m, fp);
    join_ints(layers, sizeof layers, s->layers, s->n_layers);
    join_ints(nulls, sizeof nulls, s->null_dim, s->n_layers);
    json_t *meta = json_object(), *emin = json_array(), *emax = json_array();
    for (int i = 0; i < s->n_layers; i++) {
        json_array_append_new(emin, json_real(s->eig_min[i]));
        json_array_append_new(emax, json_real(s->eig_max[i]));
    }
    char *emin_s = json_dumps(emin, JSON_COMPACT), *emax_s = json_dumps(emax, JSON_COMPACT);
    json_decref(emin), json_decref(emax);
    json_object_set_new(meta, "format", json_string(STATE_FORMAT));
    json_object_set_new(meta, "model_fingerprint", json_string(fp));
    json_object_set_new(meta, "layers", json_string(layers));
    json_object_set_new(meta, "null_dims", json_string(nulls));
    snprintf(num, sizeof num, "%.17g", s->threshold);
    json_object_set_new(meta, "nullspace_threshold", json_string(num));
    snprintf(num, sizeof num, "%d", s->n_edits);
    json_object_set_new(meta, "edits", json_string(num));
    json_object_set_new(meta, "eig_min", json_string(emin_s ? emin_s : "[]"));
    json_object_set_new(meta, "eig_max", json_string(emax_s ? emax_s : "[]"));
    free(emin_s), free(emax_s);
    char *meta_s = json_dumps(meta, JSON_COMPACT);
    json_decref(meta);
    if (!meta_s) return xle_fail(err, XLE_ERR_NOMEM, "alphaedit: out of memory");
    xle_st_tensor ts[2] = {
        {"projection", "F32", 3, {s->n_layers, s->f, s->f}, s->proj},
        {"edit_keys", "F32", 3, {s->n_layers, s->f, s->f}, s->keys},
    };
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, STATE_FILE);
    xle_atomic_file out;
    xle_status st = xle_atomic_name(&out, path, err);
    if (st == XLE_OK) st = xle_atomic_commit(&out, xle_safetensors_write(out.tmp, ts, 2, meta_s, NULL, err), err);
    free(meta_s);
    return st;
}

static const char *meta_string(json_t *meta, const char *key) {
    json_t *v = json_object_get(meta, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int parse_ints(const char *s, int *out, int max) {
    int n = 0;
    while (s && *s && n < max) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 0 || v > 1000000) return -1;
        out[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return -1;
    }
    return n;
}

static xle_status parse_doubles(json_t *meta, const char *key, const char *path, double *out, int n,
                                xle_error *err) {
    const char *s = meta_string(meta, key);
    json_t *a = s ? json_loads(s, 0, NULL) : NULL;
    xle_status st = XLE_OK;
    if (!json_is_array(a) || (int)json_array_size(a) != n) {
        st = xle_fail(err, XLE_ERR_FORMAT, "%s: %s: expected %d numbers", path, key, n);
    } else {
        for (int i = 0; i < n; i++) out[i] = json_number_value(json_array_get(a, (size_t)i));
    }
    json_decref(a);
    return st;
}

xle_status xle_alphaedit_state_load(xle_model *m, const xle_edit_hparams *hp, const char *dir,
                                    xle_alphaedit_state **out, xle_error *err) {
    *out = NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, STATE_FILE);
    FILE *fh = fopen(path, "rb");
    if (!fh) return xle_fail(err, XLE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    uint8_t *buf = NULL;
    long size = -1;
    if (fseek(fh, 0, SEEK_END) == 0) size = ftell(fh);
    if (size > 0 && fseek(fh, 0, SEEK_SET) == 0 && (buf = malloc((size_t)size)) &&
        fread(buf, 1, (size_t)size, fh) != (size_t)size) {
        free(buf);
        buf = NULL;
    }
    fclose(fh);
    if (!buf) return xle_fail(err, XLE_ERR_IO, "%s: cannot read", path);
    xle_safetensors *sf = NULL;
    json_t *meta = NULL;
    xle_alphaedit_state *s = NULL;
    xle_status st = xle_safetensors_parse(path, buf, (size_t)size, &sf, err);
    if (st != XLE_OK) goto done;
    meta = sf->metadata_json ? json_loads(sf->metadata_json, 0, NULL) : NULL;
    const char *format = meta ? meta_string(meta, "format") : NULL;
    if (!format || strcmp(format, STATE_FORMAT)) {
        st = xle_fail(err, XLE_ERR_FORMAT, "%s: __metadata__.format: expected \"%s\"", path, STATE_FORMAT);
        goto done;
    }
    const int f = xle_model_config(m)->ffn_dim;
    xle_alphaedit_state probe = {0};
    probe.n_layers = parse_ints(meta_string(meta, "layers"), probe.layers, XLE_EDIT_MAX_LAYERS);
    const char *thr = meta_string(meta, "nullspace_threshold"), *edits = meta_string(meta, "edits");
    const char *fp = meta_string(meta, "model_fingerprint");
    if (probe.n_layers <= 0 || !thr || !edits || !fp) {
        st = xle_fail(err, XLE_ERR_FORMAT, "%s: __metadata__: layers, nullspace_threshold, edits and model_fingerprint are required", path);
        goto done;
    }
    probe.threshold = strtod(thr, NULL);
    const xle_st_entry *pe = xle_safetensors_find(sf, "projection"), *ke = xle_safetensors_find(sf, "edit_keys");
    for (int t = 0; t < 2; t++) {
        const xle_st_entry *e = t ? ke : pe;
        if (!e || strcmp(e->dtype, "F32") || e->ndim != 3 || e->shape[0] != probe.n_layers ||
            e->shape[1] != e->shape[2]) {
            st = xle_fail(err, XLE_ERR_FORMAT, "%s: %s: expected F32 [%d, f, f]", path, t ? "edit_keys" : "projection", probe.n_layers);
            goto done;
        }
    }
    probe.f = (int)pe->shape[1];
    if (ke->shape[1] != probe.f) {
        st = xle_fail(err, XLE_ERR_FORMAT, "%s: edit_keys: width %d, projection %d", path, (int)ke->shape[1], probe.f);
        goto done;
    }
    if ((st = check_state(&probe, hp, f, path, err)) != XLE_OK) goto done;
    char mine[65];
    xle_model_fingerprint(m, mine);
    if (strcmp(mine, fp)) {
        st = xle_fail(err, XLE_ERR_ARG, "%s: written for the model its %s edit(s) made (fingerprint %.12s…), not this one (%.12s…): give the model saved by the last edit",
                      path, edits, fp, mine);
        goto done;
    }
    if (!(s = state_alloc(hp, f, err))) {
        st = XLE_ERR_NOMEM;
        goto done;
    }
    memcpy(s->proj, pe->data, (size_t)s->n_layers * f * f * sizeof(float));
    memcpy(s->keys, ke->data, (size_t)s->n_layers * f * f * sizeof(float));
    s->n_edits = atoi(edits);
    if (parse_ints(meta_string(meta, "null_dims"), s->null_dim, XLE_EDIT_MAX_LAYERS) != s->n_layers) {
        st = xle_fail(err, XLE_ERR_FORMAT, "%s: __metadata__.null_dims: expected %d counts", path, s->n_layers);
        goto done;
    }
    if ((st = parse_doubles(meta, "eig_min", path, s->eig_min, s->n_layers, err)) != XLE_OK) goto done;
    st = parse_doubles(meta, "eig_max", path, s->eig_max, s->n_layers, err);
done:
    if (st == XLE_OK) *out = s;
    else xle_alphaedit_state_free(s);
    json_decref(meta);
    xle_safetensors_free(sf);
    free(buf);
    return st;
}
