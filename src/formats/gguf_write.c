/*
 * gguf_write.c: the GGUF v3 writer (KVs copied from a parsed file or set one by one, tensors in
 * the order added at sequential aligned offsets, as ggml's reader requires) and the Q8_0 block
 * codec shared by the loader (dequantize) and the writer (quantize).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/gguf.h"

void xle_q8_0_dequantize(const uint8_t *blocks, int64_t n, float *dst) {
    for (int64_t b = 0; b < n / 32; b++) {
        const uint8_t *p = blocks + b * 34;
        uint16_t dh;
        memcpy(&dh, p, 2);
        float d = xle_f16_to_f32(dh);
        const int8_t *q = (const int8_t *)(p + 2);
        for (int j = 0; j < 32; j++) dst[b * 32 + j] = d * (float)q[j];
    }
}

void xle_q8_0_quantize(const float *src, int64_t n, uint8_t *blocks) {
    for (int64_t b = 0; b < n / 32; b++) {
        const float *x = src + b * 32;
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
        uint8_t *p = blocks + b * 34;
        uint16_t dh = xle_f32_to_f16(d);
        memcpy(p, &dh, 2);
        for (int j = 0; j < 32; j++) ((int8_t *)(p + 2))[j] = (int8_t)roundf(x[j] * id);
    }
}

typedef struct out_tensor {
    char *name;
    size_t name_len;
    uint32_t n_dims;
    int64_t ne[4];
    uint32_t type;
    const void *data;
    uint64_t nbytes;
} out_tensor;

struct xle_gguf_writer {
    xle_gguf_kv *kvs;
    size_t n_kv, cap_kv;
    out_tensor *tensors;
    size_t n_tensors, cap_tensors;
    void **owned;             /* copies of keys and strings made by set_* */
    size_t n_owned, cap_owned;
};

xle_status xle_gguf_writer_new(xle_gguf_writer **out, xle_error *err) {
    *out = calloc(1, sizeof **out);
    if (!*out) return xle_fail(err, XLE_ERR_NOMEM, "gguf writer: out of memory");
    return XLE_OK;
}

void xle_gguf_writer_free(xle_gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_owned; i++) free(w->owned[i]);
    for (size_t i = 0; i < w->n_tensors; i++) free(w->tensors[i].name);
    free(w->owned);
    free(w->kvs);
    free(w->tensors);
    free(w);
}

static int grow(void **arr, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 1;
    size_t c = *cap ? *cap * 2 : 16;
    while (c < need) c *= 2;
    void *p = realloc(*arr, c * elem);
    if (!p) return 0;
    *arr = p;
    *cap = c;
    return 1;
}

/* Copies len bytes into an allocation the writer owns. */
static const char *own_bytes(xle_gguf_writer *w, const char *s, size_t len) {
    if (!grow((void **)&w->owned, &w->cap_owned, w->n_owned + 1, sizeof(void *))) return NULL;
    char *c = malloc(len + 1);
    if (!c) return NULL;
    if (len) memcpy(c, s, len);
    c[len] = 0;
    w->owned[w->n_owned++] = c;
    return c;
}

static xle_gguf_kv *find_kv(xle_gguf_writer *w, xle_gguf_str key) {
    for (size_t i = 0; i < w->n_kv; i++)
        if (w->kvs[i].key.len == key.len && memcmp(w->kvs[i].key.ptr, key.ptr, (size_t)key.len) == 0)
            return &w->kvs[i];
    return NULL;
}

static xle_status put_kv(xle_gguf_writer *w, const xle_gguf_kv *kv, xle_error *err) {
    xle_gguf_kv *slot = find_kv(w, kv->key);
    if (slot) {
        *slot = *kv;
        return XLE_OK;
    }
    if (!grow((void **)&w->kvs, &w->cap_kv, w->n_kv + 1, sizeof *w->kvs))
        return xle_fail(err, XLE_ERR_NOMEM, "gguf writer: out of memory");
    w->kvs[w->n_kv++] = *kv;
    return XLE_OK;
}

xle_status xle_gguf_writer_copy_kvs(xle_gguf_writer *w, const xle_gguf *src, xle_error *err) {
    for (uint64_t i = 0; i < src->n_kv; i++) {
        xle_status st = put_kv(w, &src->kvs[i], err);
        if (st != XLE_OK) return st;
    }
    return XLE_OK;
}

xle_status xle_gguf_writer_set_kv(xle_gguf_writer *w, const xle_gguf_kv *kv, xle_error *err) {
    xle_gguf_kv c = *kv;
    c.key.ptr = own_bytes(w, kv->key.ptr, (size_t)kv->key.len);
    if (!c.key.ptr) return xle_fail(err, XLE_ERR_NOMEM, "gguf writer: out of memory");
    if (kv->type == XLE_GGUF_STRING) {
        c.str.ptr = own_bytes(w, kv->str.ptr, (size_t)kv->str.len);
        if (!c.str.ptr) return xle_fail(err, XLE_ERR_NOMEM, "gguf writer: out of memory");
    }
    if (kv->type == XLE_GGUF_ARRAY && kv->arr_type == XLE_GGUF_STRING) {
        xle_gguf_str *strs = (xle_gguf_str *)own_bytes(
            w, (const char *)kv->arr_strs, (size_t)kv->arr_count * sizeof(xle_gguf_str));
        if (!strs) return xle_fail(err, XLE_ERR_NOMEM, "gguf writer: out of memory");
        for (uint64_t i = 0; i < kv->arr_count; i++) {
            strs[i].ptr = own_bytes(w, kv->arr_strs[i].ptr, (size_t)kv->arr_strs[i].len);
            if (!strs[i].ptr) return xle_fail(err, XLE_ERR_NOMEM, "gguf writer: out of memory");
        }
        c.arr_strs = strs;
    }
    return put_kv(w, &c, err);
}

static xle_gguf_kv scalar_kv(const char *key, uint32_t type) {
    xle_gguf_kv kv;
    memset(&kv, 0, sizeof kv);
    kv.key.ptr = key;
    kv.key.len = strlen(key);
    kv.type = type;
    return kv;
}

xle_status xle_gguf_writer_set_u32(xle_gguf_writer *w, const char *key, uint32_t v, xle_error *err) {
    xle_gguf_kv kv = scalar_kv(key, XLE_GGUF_U32);
    kv.u64 = v;
    kv.i64 = v;
    return xle_gguf_writer_set_kv(w, &kv, err);
}

xle_status xle_gguf_writer_set_i32(xle_gguf_writer *w, const char *key, int32_t v, xle_error *err) {
    xle_gguf_kv kv = scalar_kv(key, XLE_GGUF_I32);
    kv.i64 = v;
    kv.u64 = (uint64_t)(int64_t)v;
    return xle_gguf_writer_set_kv(w, &kv, err);
}

xle_status xle_gguf_writer_set_f32(xle_gguf_writer *w, const char *key, float v, xle_error *err) {
    xle_gguf_kv kv = scalar_kv(key, XLE_GGUF_F32);
    kv.f64 = v;
    return xle_gguf_writer_set_kv(w, &kv, err);
}

xle_status xle_gguf_writer_set_string(xle_gguf_writer *w, const char *key, const char *v,
                                      xle_error *err) {
    xle_gguf_kv kv = scalar_kv(key, XLE_GGUF_STRING);
    kv.str.ptr = v;
    kv.str.len = strlen(v);
    return xle_gguf_writer_set_kv(w, &kv, err);
}

void xle_gguf_writer_remove_kv(xle_gguf_writer *w, const char *key) {
    xle_gguf_str k = {key, strlen(key)};
    xle_gguf_kv *kv = find_kv(w, k);
    if (!kv) return;
    size_t i = (size_t)(kv - w->kvs);
    memmove(&w->kvs[i], &w->kvs[i + 1], (w->n_kv - i - 1) * sizeof *w->kvs);
    w->n_kv--;
}

xle_status xle_gguf_writer_add_tensor(xle_gguf_writer *w, const char *name, size_t name_len,
                                      uint32_t n_dims, const int64_t ne[4], uint32_t ggml_type,
                                      const void *data, xle_error *err) {
    out_tensor t;
    memset(&t, 0, sizeof t);
    if (n_dims > 4) return xle_fail(err, XLE_ERR_ARG, "gguf writer: %.*s: n_dims %u > 4", (int)name_len, name, n_dims);
    for (int i = 0; i < 4; i++) t.ne[i] = i < (int)n_dims ? ne[i] : 1;
    for (int i = 0; i < 4; i++)
        if (t.ne[i] < 0) return xle_fail(err, XLE_ERR_ARG, "gguf writer: %.*s: negative dimension", (int)name_len, name);
    if (!xle_ggml_nbytes(ggml_type, t.ne, &t.nbytes))
        return xle_fail(err, XLE_ERR_ARG, "gguf writer: %.*s: type %s does not fit the dims",
                        (int)name_len, name, xle_ggml_type_name(ggml_type));
    for (size_t i = 0; i < w->n_tensors; i++)
        if (w->tensors[i].name_len == name_len && memcmp(w->tensors[i].name, name, name_len) == 0)
            return xle_fail(err, XLE_ERR_ARG, "gguf writer: %.*s: duplicate tensor name", (int)name_len, name);
    if (!grow((void **)&w->tensors, &w->cap_tensors, w->n_tensors + 1, sizeof *w->tensors))
        return xle_fail(err, XLE_ERR_NOMEM, "gguf writer: out of memory");
    t.name = malloc(name_len + 1);
    if (!t.name) return xle_fail(err, XLE_ERR_NOMEM, "gguf writer: out of memory");
    memcpy(t.name, name, name_len);
    t.name[name_len] = 0;
    t.name_len = name_len;
    t.n_dims = n_dims;
    t.type = ggml_type;
    t.data = data;
    w->tensors[w->n_tensors++] = t;
    return XLE_OK;
}

/* ------------------------------------------------------------------------------------------ */

typedef struct sink {
    FILE *f;
    uint64_t pos;
    int failed;
} sink;

static void put(sink *s, const void *p, size_t n) {
    if (s->failed || n == 0) return;
    if (fwrite(p, 1, n, s->f) != n) s->failed = 1;
    s->pos += n;
}

static void put_u32(sink *s, uint32_t v) { put(s, &v, 4); }
static void put_u64(sink *s, uint64_t v) { put(s, &v, 8); }
static void put_str(sink *s, xle_gguf_str str) {
    put_u64(s, str.len);
    put(s, str.ptr, (size_t)str.len);
}

static size_t elem_size(uint32_t type) {
    switch (type) {
    case XLE_GGUF_U8: case XLE_GGUF_I8: case XLE_GGUF_BOOL: return 1;
    case XLE_GGUF_U16: case XLE_GGUF_I16: return 2;
    case XLE_GGUF_U32: case XLE_GGUF_I32: case XLE_GGUF_F32: return 4;
    case XLE_GGUF_U64: case XLE_GGUF_I64: case XLE_GGUF_F64: return 8;
    default: return 0;
    }
}

static void put_scalar(sink *s, const xle_gguf_kv *kv) {
    uint8_t b[8];
    switch (kv->type) {
    case XLE_GGUF_U8: case XLE_GGUF_I8: case XLE_GGUF_BOOL: b[0] = (uint8_t)kv->u64; put(s, b, 1); break;
    case XLE_GGUF_U16: case XLE_GGUF_I16: { uint16_t v = (uint16_t)kv->u64; put(s, &v, 2); break; }
    case XLE_GGUF_U32: case XLE_GGUF_I32: { uint32_t v = (uint32_t)kv->u64; put(s, &v, 4); break; }
    case XLE_GGUF_F32: { float v = (float)kv->f64; put(s, &v, 4); break; }
    case XLE_GGUF_U64: case XLE_GGUF_I64: put_u64(s, kv->u64); break;
    case XLE_GGUF_F64: put(s, &kv->f64, 8); break;
    default: s->failed = 1;
    }
}

static void put_kv_bytes(sink *s, const xle_gguf_kv *kv) {
    put_str(s, kv->key);
    put_u32(s, kv->type);
    if (kv->type == XLE_GGUF_STRING) {
        put_str(s, kv->str);
    } else if (kv->type == XLE_GGUF_ARRAY) {
        put_u32(s, kv->arr_type);
        put_u64(s, kv->arr_count);
        if (kv->arr_type == XLE_GGUF_STRING)
            for (uint64_t i = 0; i < kv->arr_count; i++) put_str(s, kv->arr_strs[i]);
        else
            put(s, kv->arr_data, (size_t)kv->arr_count * elem_size(kv->arr_type));
    } else {
        put_scalar(s, kv);
    }
}

static void put_zeros(sink *s, uint64_t n) {
    static const uint8_t zeros[64];
    while (n > 0) {
        size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
        put(s, zeros, k);
        n -= k;
    }
}

/* The stream: everything before the data section is written by _open; tensor bytes follow in
 * the writer's tensor order, each padded to the alignment when it is complete. */
struct xle_gguf_stream {
    char *path;
    sink s;
    uint64_t alignment;
    uint64_t *sizes;          /* nbytes of each tensor, in order */
    size_t n_tensors;
    size_t cur;               /* tensor being written */
    uint64_t cur_done;        /* its bytes written so far */
};

void xle_gguf_stream_abort(xle_gguf_stream *st) {
    if (!st) return;
    if (st->s.f) fclose(st->s.f);
    free(st->sizes);
    free(st->path);
    free(st);
}

/* Steps past finished tensors (zero-sized ones included), writing their padding. */
static void finish_complete_tensors(xle_gguf_stream *st) {
    while (st->cur < st->n_tensors && st->cur_done == st->sizes[st->cur]) {
        put_zeros(&st->s, (st->alignment - st->sizes[st->cur] % st->alignment) % st->alignment);
        st->cur++;
        st->cur_done = 0;
    }
}

xle_status xle_gguf_stream_open(const xle_gguf_writer *w, const char *path, xle_gguf_stream **out,
                                xle_error *err) {
    *out = NULL;
    uint64_t alignment = 32;
    for (size_t i = 0; i < w->n_kv; i++) {
        const xle_gguf_kv *kv = &w->kvs[i];
        if (xle_gguf_str_eq(kv->key, "general.alignment")) {
            if (kv->type != XLE_GGUF_U32 || kv->u64 == 0 || (kv->u64 & (kv->u64 - 1)))
                return xle_fail(err, XLE_ERR_ARG, "%s: general.alignment: must be a u32 power of two", path);
            alignment = kv->u64;
        }
        if (kv->type == XLE_GGUF_ARRAY && kv->arr_type != XLE_GGUF_STRING && elem_size(kv->arr_type) == 0)
            return xle_fail(err, XLE_ERR_ARG, "%s: %.*s: invalid array element type", path,
                            (int)kv->key.len, kv->key.ptr);
    }
    xle_gguf_stream *st = calloc(1, sizeof *st);
    if (st) {
        st->path = strdup(path);
        st->sizes = calloc(w->n_tensors ? w->n_tensors : 1, sizeof *st->sizes);
    }
    if (!st || !st->path || !st->sizes) {
        xle_gguf_stream_abort(st);
        return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", path);
    }
    st->alignment = alignment;
    st->n_tensors = w->n_tensors;
    FILE *f = fopen(path, "wb");
    if (!f) {
        xle_gguf_stream_abort(st);
        return xle_fail(err, XLE_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    }
    st->s = (sink){f, 0, 0};
    sink *s = &st->s;
    put(s, "GGUF", 4);
    put_u32(s, 3);
    put_u64(s, (uint64_t)w->n_tensors);
    put_u64(s, (uint64_t)w->n_kv);
    for (size_t i = 0; i < w->n_kv; i++) put_kv_bytes(s, &w->kvs[i]);
    uint64_t offset = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        const out_tensor *t = &w->tensors[i];
        xle_gguf_str name = {t->name, t->name_len};
        put_str(s, name);
        put_u32(s, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++) put_u64(s, (uint64_t)t->ne[d]);
        put_u32(s, t->type);
        put_u64(s, offset);
        offset += (t->nbytes + alignment - 1) / alignment * alignment;
        st->sizes[i] = t->nbytes;
    }
    if (w->n_tensors) put_zeros(s, (alignment - s->pos % alignment) % alignment);
    finish_complete_tensors(st);
    if (s->failed) {
        int saved = errno;
        xle_gguf_stream_abort(st);
        return xle_fail(err, XLE_ERR_IO, "%s: write failed: %s", path, strerror(saved ? saved : EIO));
    }
    *out = st;
    return XLE_OK;
}

xle_status xle_gguf_stream_write(xle_gguf_stream *st, const void *data, size_t n, xle_error *err) {
    const uint8_t *p = data;
    while (n > 0) {
        if (st->cur >= st->n_tensors)
            return xle_fail(err, XLE_ERR_ARG, "%s: more tensor data than the tensor infos announced", st->path);
        uint64_t room = st->sizes[st->cur] - st->cur_done;
        size_t k = n < room ? n : (size_t)room;
        put(&st->s, p, k);
        p += k;
        n -= k;
        st->cur_done += k;
        finish_complete_tensors(st);
    }
    if (st->s.failed) return xle_fail(err, XLE_ERR_IO, "%s: write failed: %s", st->path, strerror(errno ? errno : EIO));
    return XLE_OK;
}

xle_status xle_gguf_stream_finish(xle_gguf_stream *st, xle_error *err) {
    xle_status res = XLE_OK;
    if (st->cur != st->n_tensors) {
        res = xle_fail(err, XLE_ERR_ARG, "%s: tensor data ended early (tensor %zu of %zu)", st->path,
                       st->cur, st->n_tensors);
    } else {
        int bad = st->s.failed || fflush(st->s.f) != 0 || fsync(fileno(st->s.f)) != 0;
        int saved = errno;
        if (fclose(st->s.f) != 0) bad = 1;
        st->s.f = NULL;
        if (bad) res = xle_fail(err, XLE_ERR_IO, "%s: write failed: %s", st->path, strerror(saved ? saved : EIO));
    }
    xle_gguf_stream_abort(st);
    return res;
}

xle_status xle_gguf_writer_write(const xle_gguf_writer *w, const char *path, xle_error *err) {
    xle_gguf_stream *st;
    xle_status res = xle_gguf_stream_open(w, path, &st, err);
    if (res != XLE_OK) return res;
    for (size_t i = 0; i < w->n_tensors && res == XLE_OK; i++)
        res = xle_gguf_stream_write(st, w->tensors[i].data, (size_t)w->tensors[i].nbytes, err);
    if (res != XLE_OK) {
        xle_gguf_stream_abort(st);
        return res;
    }
    return xle_gguf_stream_finish(st, err);
}
