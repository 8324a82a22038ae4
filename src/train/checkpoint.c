/*
 * checkpoint.c: training checkpoints, everything needed to continue a run bit for bit.
 *
 * Layout (little-endian): "XLECKPT1", u32 version, u32 n_params; u64 length + the
 * hyperparameters' canonical JSON; u64 data hash (corpus + tokenizer bytes); i64 step,
 * i64 epoch, i64 next item; u64 rng[4]; f64 tokens seen; then per parameter u32 name length +
 * name, i64 count, and count f32 each of weights, AdamW m, AdamW v; then "XLEEND!!". Written to
 * a temporary file beside the target, fsynced and renamed, so a crash never leaves a torn
 * checkpoint. Every length is checked against the file size when reading.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/outpath.h"
#include "train/train_internal.h"

#define MAGIC "XLECKPT1"
#define END_MARK "XLEEND!!"
#define VERSION 1u

static int put(FILE *f, const void *p, size_t n) { return fwrite(p, 1, n, f) == n; }

xle_status xle_checkpoint_save(const char *path, const xle_param *ps, int n, const xle_train_state *s,
                               const char *hparams_json, uint64_t data_hash, xle_error *err) {
    xle_atomic_file out;
    xle_status st = xle_atomic_open(&out, path, err);
    if (st != XLE_OK) return st;
    FILE *f = out.f;
    uint32_t version = VERSION, n_params = (uint32_t)n;
    uint64_t json_len = strlen(hparams_json);
    int64_t ints[3] = {s->step, s->cursor.epoch, s->cursor.next};
    int ok = put(f, MAGIC, 8) && put(f, &version, 4) && put(f, &n_params, 4) && put(f, &json_len, 8) &&
             put(f, hparams_json, json_len) && put(f, &data_hash, 8) && put(f, ints, sizeof ints) &&
             put(f, s->rng.s, sizeof s->rng.s) && put(f, &s->tokens_seen, 8);
    for (int i = 0; ok && i < n; i++) {
        uint32_t name_len = (uint32_t)strlen(ps[i].name);
        size_t bytes = (size_t)ps[i].n * sizeof(float);
        ok = put(f, &name_len, 4) && put(f, ps[i].name, name_len) && put(f, &ps[i].n, 8) &&
             put(f, ps[i].w, bytes) && put(f, ps[i].m, bytes) && put(f, ps[i].v, bytes);
    }
    ok = ok && put(f, END_MARK, 8);
    int e = errno;
    st = xle_atomic_close(&out, ok, err);
    if (!ok) st = xle_fail(err, XLE_ERR_IO, "%s: cannot write the checkpoint: %s", path, strerror(e));
    return st;
}

typedef struct reader {
    const uint8_t *p;
    size_t left;
} reader;

static int take(reader *r, void *dst, size_t n) {
    if (n > r->left) return 0;
    memcpy(dst, r->p, n);
    r->p += n;
    r->left -= n;
    return 1;
}

/* The first key whose value differs between two JSON objects (or NULL). */
static const char *first_difference(json_t *a, json_t *b) {
    const char *key;
    json_t *v;
    json_object_foreach(a, key, v) {
        json_t *w = json_object_get(b, key);
        if (!w || !json_equal(v, w)) return key;
    }
    json_object_foreach(b, key, v) if (!json_object_get(a, key)) return key;
    return NULL;
}

static xle_status compare_hparams(const char *path, const char *stored, const char *current,
                                  xle_error *err) {
    if (!strcmp(stored, current)) return XLE_OK;
    json_t *a = json_loads(stored, 0, NULL), *b = json_loads(current, 0, NULL);
    const char *key = (a && b) ? first_difference(a, b) : NULL;
    xle_status st;
    if (key) {
        char *va = json_dumps(json_object_get(a, key), JSON_ENCODE_ANY),
             *vb = json_dumps(json_object_get(b, key), JSON_ENCODE_ANY);
        st = xle_fail(err, XLE_ERR_ARG, "%s: %s: the checkpoint was made with %s, the config now says %s "
                      "(a resumed run must use the same settings)", path, key, va ? va : "(none)", vb ? vb : "(none)");
        free(va);
        free(vb);
    } else {
        st = xle_fail(err, XLE_ERR_ARG, "%s: hyperparameters differ from the checkpoint's", path);
    }
    json_decref(a);
    json_decref(b);
    return st;
}

xle_status xle_checkpoint_load(const char *path, xle_param *ps, int n, xle_train_state *s,
                               const char *hparams_json, uint64_t data_hash, xle_error *err) {
    char *data;
    size_t len;
    xle_status st = xle_read_whole_file(path, &data, &len, err);
    if (st != XLE_OK) return st;
    reader r = {(const uint8_t *)data, len};
    char magic[8];
    uint32_t version = 0, n_params = 0;
    uint64_t json_len = 0, stored_hash = 0;
    char *json = NULL;
    int64_t ints[3] = {0, 0, 0};
    xle_train_state got;
    memset(&got, 0, sizeof got);
    if (!take(&r, magic, 8) || memcmp(magic, MAGIC, 8) != 0) {
        st = xle_fail(err, XLE_ERR_FORMAT, "%s: not an xledit training checkpoint", path);
        goto done;
    }
    if (!take(&r, &version, 4) || version != VERSION) {
        st = xle_fail(err, XLE_ERR_FORMAT, "%s: version: %u is not supported (expected %u)", path, version, VERSION);
        goto done;
    }
    if (!take(&r, &n_params, 4) || !take(&r, &json_len, 8) || json_len > r.left) {
        st = xle_fail(err, XLE_ERR_FORMAT, "%s: truncated header", path);
        goto done;
    }
    json = malloc(json_len + 1);
    if (!json) {
        st = xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    take(&r, json, json_len);
    json[json_len] = 0;
    if (!take(&r, &stored_hash, 8) || !take(&r, ints, sizeof ints) || !take(&r, got.rng.s, sizeof got.rng.s) ||
        !take(&r, &got.tokens_seen, 8)) {
        st = xle_fail(err, XLE_ERR_FORMAT, "%s: truncated header", path);
        goto done;
    }
    st = compare_hparams(path, json, hparams_json, err);
    if (st != XLE_OK) goto done;
    if (stored_hash != data_hash) {
        st = xle_fail(err, XLE_ERR_ARG, "%s: corpus, tokenizer or --init model: the files differ from the "
                      "ones the checkpoint was trained on", path);
        goto done;
    }
    if ((int)n_params != n) {
        st = xle_fail(err, XLE_ERR_FORMAT, "%s: n_params: %u tensors, the model has %d", path, n_params, n);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        uint32_t name_len;
        char name[96];
        int64_t count;
        if (!take(&r, &name_len, 4) || name_len >= sizeof name || !take(&r, name, name_len)) {
            st = xle_fail(err, XLE_ERR_FORMAT, "%s: tensor %d: truncated or bad name", path, i);
            goto done;
        }
        name[name_len] = 0;
        if (strcmp(name, ps[i].name) != 0 || !take(&r, &count, 8) || count != ps[i].n) {
            st = xle_fail(err, XLE_ERR_FORMAT, "%s: tensor %d: '%s' does not match the model's '%s' (%lld values)",
                          path, i, name, ps[i].name, (long long)ps[i].n);
            goto done;
        }
        size_t bytes = (size_t)count * sizeof(float);
        if (!take(&r, ps[i].w, bytes) || !take(&r, ps[i].m, bytes) || !take(&r, ps[i].v, bytes)) {
            st = xle_fail(err, XLE_ERR_FORMAT, "%s: %s: truncated data", path, name);
            goto done;
        }
    }
    char end[8];
    if (!take(&r, end, 8) || memcmp(end, END_MARK, 8) != 0 || r.left != 0) {
        st = xle_fail(err, XLE_ERR_FORMAT, "%s: missing or misplaced end marker (truncated file?)", path);
        goto done;
    }
    got.step = ints[0];
    got.cursor.epoch = ints[1];
    got.cursor.next = ints[2];
    *s = got;
done:
    free(json);
    free(data);
    return st;
}
