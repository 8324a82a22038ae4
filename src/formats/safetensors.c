/*
 * safetensors.c: the safetensors header parser (every check of formats-detail.md 1.2) and the
 * streaming writer. JSON goes through jansson; tensor bytes are never copied by the parser.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/safetensors.h"

#define ST_MAX_HEADER (100u * 1024u * 1024u)

static const struct { const char *name; size_t size; } ST_DTYPES[] = {
    {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"I16", 2},
    {"U16", 2},  {"F16", 2}, {"BF16", 2}, {"I32", 4},    {"U32", 4},     {"F32", 4},
    {"F64", 8},  {"I64", 8}, {"U64", 8},
};

size_t xle_st_dtype_size(const char *dtype) {
    for (size_t i = 0; i < sizeof ST_DTYPES / sizeof ST_DTYPES[0]; i++)
        if (strcmp(ST_DTYPES[i].name, dtype) == 0) return ST_DTYPES[i].size;
    return 0;
}

int xle_st_dtype_to_xle(const char *dtype, xle_dtype *out) {
    if (strcmp(dtype, "F32") == 0) *out = XLE_F32;
    else if (strcmp(dtype, "F16") == 0) *out = XLE_F16;
    else if (strcmp(dtype, "BF16") == 0) *out = XLE_BF16;
    else if (strcmp(dtype, "F64") == 0) *out = XLE_F64;
    else return 0;
    return 1;
}

const char *xle_st_dtype_name(xle_dtype dtype) {
    switch (dtype) {
    case XLE_F32: return "F32";
    case XLE_F16: return "F16";
    case XLE_BF16: return "BF16";
    case XLE_F64: return "F64";
    default: return NULL;
    }
}

void xle_safetensors_free(xle_safetensors *st) {
    if (!st) return;
    for (int i = 0; i < st->n; i++) free(st->entries[i].name);
    free(st->entries);
    free(st->metadata_json);
    free(st->path);
    free(st);
}

const xle_st_entry *xle_safetensors_find(const xle_safetensors *st, const char *name) {
    for (int i = 0; i < st->n; i++)
        if (strcmp(st->entries[i].name, name) == 0) return &st->entries[i];
    return NULL;
}

/* Parses one "name": {dtype, shape, data_offsets} entry. */
static xle_status parse_entry(const char *path, const char *name, json_t *v, xle_st_entry *e,
                              xle_error *err) {
    if (!json_is_object(v))
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: entry is not an object", path, name);
    json_t *dt = json_object_get(v, "dtype"), *sh = json_object_get(v, "shape"),
           *off = json_object_get(v, "data_offsets");
    if (!json_is_string(dt))
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: dtype: missing or not a string", path, name);
    const char *d = json_string_value(dt);
    size_t es = xle_st_dtype_size(d);
    if (es == 0 || strlen(d) >= sizeof e->dtype)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: dtype: '%.32s' is not a known safetensors dtype",
                        path, name, d);
    strcpy(e->dtype, d);
    if (!json_is_array(sh))
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: shape: missing or not an array", path, name);
    size_t nd = json_array_size(sh);
    if (nd > XLE_ST_MAX_DIMS)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: shape: %zu dimensions (at most %d)", path,
                        name, nd, XLE_ST_MAX_DIMS);
    e->ndim = (int)nd;
    uint64_t numel = 1;
    int overflow = 0;
    for (size_t i = 0; i < nd; i++) {
        json_t *x = json_array_get(sh, i);
        if (!json_is_integer(x) || json_integer_value(x) < 0)
            return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: shape: dimension %zu is not a "
                            "non-negative integer", path, name, i);
        e->shape[i] = (int64_t)json_integer_value(x);
        if (e->shape[i] && numel > UINT64_MAX / (uint64_t)e->shape[i]) overflow = 1;
        numel *= (uint64_t)e->shape[i];
    }
    if (overflow || numel > (uint64_t)INT64_MAX / es)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: shape: element count overflows", path, name);
    if (!json_is_array(off) || json_array_size(off) != 2 ||
        !json_is_integer(json_array_get(off, 0)) || !json_is_integer(json_array_get(off, 1)))
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: data_offsets: not a pair of integers", path, name);
    json_int_t b = json_integer_value(json_array_get(off, 0)),
               en = json_integer_value(json_array_get(off, 1));
    if (b < 0 || en < b)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: data_offsets: [%lld, %lld] is not a valid "
                        "range", path, name, (long long)b, (long long)en);
    e->begin = (uint64_t)b;
    e->end = (uint64_t)en;
    if (e->end - e->begin != numel * es)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: data_offsets: %llu bytes but the shape and "
                        "dtype need %llu", path, name, (unsigned long long)(e->end - e->begin),
                        (unsigned long long)(numel * es));
    return XLE_OK;
}

static int cmp_begin(const void *a, const void *b) {
    const xle_st_entry *x = *(const xle_st_entry *const *)a, *y = *(const xle_st_entry *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* The buffer must be covered exactly: sorted by begin, each starts where the previous ends. */
static xle_status check_coverage(xle_safetensors *st, uint64_t buf_size, xle_error *err) {
    if (st->n == 0) {
        if (buf_size != 0)
            return xle_fail(err, XLE_ERR_FORMAT, "%s: data: %llu bytes not covered by any tensor",
                            st->path, (unsigned long long)buf_size);
        return XLE_OK;
    }
    xle_st_entry **order = malloc((size_t)st->n * sizeof *order);
    if (!order) return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", st->path);
    for (int i = 0; i < st->n; i++) order[i] = &st->entries[i];
    qsort(order, (size_t)st->n, sizeof *order, cmp_begin);
    uint64_t pos = 0;
    xle_status status = XLE_OK;
    for (int i = 0; i < st->n && status == XLE_OK; i++) {
        if (order[i]->begin != pos)
            status = xle_fail(err, XLE_ERR_FORMAT, "%s: %s: data_offsets: begins at %llu, expected "
                              "%llu (%s)", st->path, order[i]->name, (unsigned long long)order[i]->begin,
                              (unsigned long long)pos, order[i]->begin > pos ? "hole" : "overlap");
        else if (order[i]->end > buf_size)
            status = xle_fail(err, XLE_ERR_FORMAT, "%s: %s: data_offsets: ends at %llu, past the "
                              "end of the data (%llu bytes)", st->path, order[i]->name,
                              (unsigned long long)order[i]->end, (unsigned long long)buf_size);
        pos = order[i]->end;
    }
    if (status == XLE_OK && pos != buf_size)
        status = xle_fail(err, XLE_ERR_FORMAT, "%s: data: %llu trailing bytes not covered by any "
                          "tensor", st->path, (unsigned long long)(buf_size - pos));
    free(order);
    return status;
}

static xle_status parse_root(xle_safetensors *st, json_t *root, const uint8_t *data,
                             uint64_t buf_size, xle_error *err) {
    if (!json_is_object(root))
        return xle_fail(err, XLE_ERR_FORMAT, "%s: header: not a JSON object", st->path);
    size_t n = json_object_size(root);
    st->entries = calloc(n ? n : 1, sizeof *st->entries);
    if (!st->entries) return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", st->path);
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "__metadata__") == 0) {
            const char *mk;
            json_t *mv;
            if (!json_is_object(v))
                return xle_fail(err, XLE_ERR_FORMAT, "%s: __metadata__: not an object", st->path);
            json_object_foreach(v, mk, mv) if (!json_is_string(mv))
                return xle_fail(err, XLE_ERR_FORMAT, "%s: __metadata__: %s: not a string",
                                st->path, mk);
            st->metadata_json = json_dumps(v, JSON_COMPACT);
            if (!st->metadata_json) return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", st->path);
            continue;
        }
        xle_st_entry *e = &st->entries[st->n];
        e->name = strdup(key);
        if (!e->name) return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", st->path);
        st->n++;
        xle_status s = parse_entry(st->path, key, v, e, err);
        if (s != XLE_OK) return s;
    }
    xle_status s = check_coverage(st, buf_size, err);
    if (s != XLE_OK) return s;
    for (int i = 0; i < st->n; i++) st->entries[i].data = data + st->entries[i].begin;
    return XLE_OK;
}

xle_status xle_safetensors_parse(const char *path, const uint8_t *base, size_t size,
                                 xle_safetensors **out, xle_error *err) {
    *out = NULL;
    if (size < 8)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: header length: file of %zu bytes is too short",
                        path, size);
    uint64_t hl;
    memcpy(&hl, base, 8);
    if (hl > ST_MAX_HEADER)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: header length: %llu bytes is more than 100 MB",
                        path, (unsigned long long)hl);
    if (hl > size - 8)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: header length: %llu runs past the end of the "
                        "file (%zu bytes)", path, (unsigned long long)hl, size);
    if (hl < 2 || base[8] != '{')
        return xle_fail(err, XLE_ERR_FORMAT, "%s: header: does not start with '{'", path);
    xle_safetensors *st = calloc(1, sizeof *st);
    if (!st || !(st->path = strdup(path))) {
        free(st);
        return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", path);
    }
    st->header_len = hl;
    json_error_t jerr;
    json_t *root = json_loadb((const char *)base + 8, (size_t)hl, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        xle_safetensors_free(st);
        return xle_fail(err, XLE_ERR_FORMAT, "%s: header: invalid JSON at line %d column %d: %s",
                        path, jerr.line, jerr.column, jerr.text);
    }
    xle_status s = parse_root(st, root, base + 8 + hl, size - 8 - hl, err);
    json_decref(root);
    if (s != XLE_OK) {
        xle_safetensors_free(st);
        return s;
    }
    *out = st;
    return XLE_OK;
}

/* ---- writer -------------------------------------------------------------------------------- */

static uint64_t tensor_bytes(const xle_st_tensor *t) {
    uint64_t n = xle_st_dtype_size(t->dtype);
    for (int i = 0; i < t->ndim; i++) n *= (uint64_t)t->shape[i];
    return n;
}

/* Builds the header JSON (tensor order preserved). Returns a malloc'd string or NULL. */
static char *build_header(const xle_st_tensor *ts, size_t n, const char *metadata_json,
                          const char *path, xle_error *err) {
    json_t *root = json_object();
    json_t *meta = metadata_json ? json_loads(metadata_json, 0, NULL)
                                 : json_pack("{s:s}", "format", "pt");
    if (!root || !meta || !json_is_object(meta)) {
        json_decref(root);
        json_decref(meta);
        xle_fail(err, XLE_ERR_ARG, "%s: __metadata__: not a JSON object", path);
        return NULL;
    }
    json_object_set_new(root, "__metadata__", meta);
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        const xle_st_tensor *t = &ts[i];
        if (xle_st_dtype_size(t->dtype) == 0 || t->ndim < 0 || t->ndim > XLE_ST_MAX_DIMS ||
            json_object_get(root, t->name)) {
            json_decref(root);
            xle_fail(err, XLE_ERR_ARG, "%s: %s: bad dtype, rank or duplicate name", path, t->name);
            return NULL;
        }
        json_t *shape = json_array();
        for (int d = 0; d < t->ndim; d++) json_array_append_new(shape, json_integer(t->shape[d]));
        uint64_t nb = tensor_bytes(t);
        json_t *e = json_pack("{s:s, s:o, s:[I,I]}", "dtype", t->dtype, "shape", shape,
                              "data_offsets", (json_int_t)off, (json_int_t)(off + nb));
        if (!e || json_object_set_new(root, t->name, e) != 0) {
            json_decref(root);
            xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", path);
            return NULL;
        }
        off += nb;
    }
    char *s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!s) xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", path);
    return s;
}

/* The stream: header already written, data appended in order, total checked at the end. */
struct xle_st_stream {
    char *path;
    int fd;
    uint64_t expected;   /* bytes of the data buffer the header announced */
    uint64_t written;
};

static xle_status write_all(int fd, const void *p, size_t n, const char *path, xle_error *err) {
    const uint8_t *b = p;
    while (n > 0) {
        size_t step = n < ((size_t)1 << 30) ? n : ((size_t)1 << 30);
        ssize_t w = write(fd, b, step);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return xle_fail(err, XLE_ERR_IO, "%s: write failed: %s", path, w < 0 ? strerror(errno) : "no progress");
        b += w;
        n -= (size_t)w;
    }
    return XLE_OK;
}

void xle_st_stream_abort(xle_st_stream *s) {
    if (!s) return;
    if (s->fd >= 0) close(s->fd);
    free(s->path);
    free(s);
}

xle_status xle_st_stream_open(const char *path, const xle_st_tensor *ts, size_t n,
                              const char *metadata_json, xle_st_stream **out, xle_error *err) {
    *out = NULL;
    char *hdr = build_header(ts, n, metadata_json, path, err);
    if (!hdr) return err ? err->status : XLE_ERR_ARG;
    xle_st_stream *s = calloc(1, sizeof *s);
    if (s) s->path = strdup(path);
    if (!s || !s->path) {
        free(hdr);
        if (s) free(s->path);
        free(s);
        return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", path);
    }
    for (size_t i = 0; i < n; i++) s->expected += tensor_bytes(&ts[i]);
    s->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (s->fd < 0) {
        free(hdr);
        xle_st_stream_abort(s);
        return xle_fail(err, XLE_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    }
    /* header length N, the JSON, then spaces up to a multiple of 8 (as the Python writer) */
    size_t hl = strlen(hdr);
    uint64_t padded = (hl + 7) / 8 * 8;
    char *block = malloc(8 + (size_t)padded);
    xle_status st = XLE_OK;
    if (!block) {
        st = xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", path);
    } else {
        memcpy(block, &padded, 8);
        memcpy(block + 8, hdr, hl);
        memset(block + 8 + hl, ' ', (size_t)(padded - hl));
        st = write_all(s->fd, block, 8 + (size_t)padded, path, err);
    }
    free(block);
    free(hdr);
    if (st != XLE_OK) {
        xle_st_stream_abort(s);
        return st;
    }
    *out = s;
    return XLE_OK;
}

xle_status xle_st_stream_write(xle_st_stream *s, const void *data, size_t nbytes, xle_error *err) {
    if (nbytes > s->expected - s->written)
        return xle_fail(err, XLE_ERR_ARG, "%s: more tensor data than the header announced (%llu bytes)",
                        s->path, (unsigned long long)s->expected);
    xle_status st = write_all(s->fd, data, nbytes, s->path, err);
    if (st == XLE_OK) s->written += nbytes;
    return st;
}

xle_status xle_st_stream_finish(xle_st_stream *s, uint64_t *data_bytes, xle_error *err) {
    xle_status st = XLE_OK;
    if (s->written != s->expected)
        st = xle_fail(err, XLE_ERR_ARG, "%s: %llu bytes of tensor data written, the header announced %llu",
                      s->path, (unsigned long long)s->written, (unsigned long long)s->expected);
    else if (fsync(s->fd) != 0)
        st = xle_fail(err, XLE_ERR_IO, "%s: fsync failed: %s", s->path, strerror(errno));
    if (close(s->fd) != 0 && st == XLE_OK)
        st = xle_fail(err, XLE_ERR_IO, "%s: close failed: %s", s->path, strerror(errno));
    s->fd = -1;
    if (st == XLE_OK && data_bytes) *data_bytes = s->written;
    xle_st_stream_abort(s);
    return st;
}

xle_status xle_safetensors_write(const char *path, const xle_st_tensor *ts, size_t n,
                                 const char *metadata_json, uint64_t *data_bytes, xle_error *err) {
    xle_st_stream *s;
    xle_status st = xle_st_stream_open(path, ts, n, metadata_json, &s, err);
    for (size_t i = 0; i < n && st == XLE_OK; i++)
        st = xle_st_stream_write(s, ts[i].data, (size_t)tensor_bytes(&ts[i]), err);
    if (st != XLE_OK) {
        xle_st_stream_abort(s);
        return st;
    }
    return xle_st_stream_finish(s, data_bytes, err);
}
