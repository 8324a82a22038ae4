/*
 * gguf.c: strict reader of GGUF v2/v3 files (layout: shared/docs/formats-detail.md 1.1).
 * The whole file is memory-mapped privately; every length, count and offset is checked against
 * the bytes that remain before it is used, so a truncated or hostile file fails with one line
 * naming the file and the field instead of reading past the mapping.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "model/model_internal.h"

/* ------------------------------------------------------------------------------------------ */
/* ggml type table                                                                             */

typedef struct ggml_type_info {
    const char *name;
    uint32_t block;   /* elements per block; 0 = id not in use */
    uint32_t bytes;   /* bytes per block */
} ggml_type_info;

static const ggml_type_info GGML_TYPES[] = {
    [0] = {"F32", 1, 4},        [1] = {"F16", 1, 2},        [2] = {"Q4_0", 32, 18},
    [3] = {"Q4_1", 32, 20},     [6] = {"Q5_0", 32, 22},     [7] = {"Q5_1", 32, 24},
    [8] = {"Q8_0", 32, 34},     [9] = {"Q8_1", 32, 36},     [10] = {"Q2_K", 256, 84},
    [11] = {"Q3_K", 256, 110},  [12] = {"Q4_K", 256, 144},  [13] = {"Q5_K", 256, 176},
    [14] = {"Q6_K", 256, 210},  [15] = {"Q8_K", 256, 292},  [16] = {"IQ2_XXS", 256, 66},
    [17] = {"IQ2_XS", 256, 74}, [18] = {"IQ3_XXS", 256, 98}, [19] = {"IQ1_S", 256, 50},
    [20] = {"IQ4_NL", 32, 18},  [21] = {"IQ3_S", 256, 110}, [22] = {"IQ2_S", 256, 82},
    [23] = {"IQ4_XS", 256, 136}, [24] = {"I8", 1, 1},       [25] = {"I16", 1, 2},
    [26] = {"I32", 1, 4},       [27] = {"I64", 1, 8},       [28] = {"F64", 1, 8},
    [29] = {"IQ1_M", 256, 56},  [30] = {"BF16", 1, 2},      [34] = {"TQ1_0", 256, 54},
    [35] = {"TQ2_0", 256, 66},
};
#define N_GGML_TYPES (sizeof GGML_TYPES / sizeof GGML_TYPES[0])

const char *xle_ggml_type_name(uint32_t type) {
    if (type < N_GGML_TYPES && GGML_TYPES[type].block) return GGML_TYPES[type].name;
    return "unknown";
}

/* ggml type ids of the engine's dtypes (ggml.h's enum ggml_type). */
static const int GGML_OF_DTYPE[XLE_DTYPE_COUNT] = {
    [XLE_F32] = 0,   [XLE_F16] = 1,   [XLE_BF16] = 30, [XLE_F64] = 28,  [XLE_Q4_0] = 2,
    [XLE_Q4_1] = 3,  [XLE_Q5_0] = 6,  [XLE_Q5_1] = 7,  [XLE_Q8_0] = 8,  [XLE_Q2_K] = 10,
    [XLE_Q3_K] = 11, [XLE_Q4_K] = 12, [XLE_Q5_K] = 13, [XLE_Q6_K] = 14,
};

int xle_ggml_of_dtype(xle_dtype dtype) {
    return (unsigned)dtype < XLE_DTYPE_COUNT ? GGML_OF_DTYPE[dtype] : -1;
}

xle_dtype xle_dtype_of_ggml(uint32_t ggml_type) {
    for (int d = 0; d < XLE_DTYPE_COUNT; d++)
        if ((uint32_t)GGML_OF_DTYPE[d] == ggml_type) return (xle_dtype)d;
    return XLE_DTYPE_COUNT;
}

int xle_ggml_type_known(uint32_t type) { return type < N_GGML_TYPES && GGML_TYPES[type].block; }

int xle_ggml_nbytes(uint32_t type, const int64_t ne[4], uint64_t *nbytes) {
    if (!xle_ggml_type_known(type)) return 0;
    const ggml_type_info *ti = &GGML_TYPES[type];
    if (ne[0] < 0 || ne[0] % ti->block) return 0;
    uint64_t blocks = (uint64_t)(ne[0] / ti->block);
    if (blocks > UINT64_MAX / ti->bytes) return 0;
    uint64_t n = blocks * ti->bytes;
    for (int i = 1; i < 4; i++) {
        if (ne[i] < 0) return 0;
        if (ne[i] != 0 && n > UINT64_MAX / (uint64_t)ne[i]) return 0;
        n *= (uint64_t)ne[i];
    }
    *nbytes = n;
    return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* A cursor over the mapping                                                                   */

typedef struct cursor {
    const uint8_t *base;
    size_t size, pos;
    const char *path;
    xle_error *err;
} cursor;

static xle_status truncated(cursor *c, const char *field) {
    xle_fail(c->err, XLE_ERR_FORMAT, "%s: %s: truncated at byte %zu (file has %zu bytes)",
             c->path, field, c->pos, c->size);
    return XLE_ERR_FORMAT; /* a constant, so callers' outputs are provably set on XLE_OK */
}

static xle_status rd(cursor *c, void *dst, size_t n, const char *field) {
    if (n > c->size - c->pos) return truncated(c, field);
    memcpy(dst, c->base + c->pos, n);
    c->pos += n;
    return XLE_OK;
}

static xle_status rd_str(cursor *c, xle_gguf_str *s, const char *field) {
    uint64_t len;
    if (rd(c, &len, 8, field) != XLE_OK) return c->err ? c->err->status : XLE_ERR_FORMAT;
    if (len > c->size - c->pos)
        return xle_fail(c->err, XLE_ERR_FORMAT,
                        "%s: %s: string length %llu at byte %zu runs past the end of the file",
                        c->path, field, (unsigned long long)len, c->pos - 8);
    s->ptr = (const char *)c->base + c->pos;
    s->len = len;
    c->pos += (size_t)len;
    return XLE_OK;
}

static size_t scalar_size(uint32_t type) {
    switch (type) {
    case XLE_GGUF_U8: case XLE_GGUF_I8: case XLE_GGUF_BOOL: return 1;
    case XLE_GGUF_U16: case XLE_GGUF_I16: return 2;
    case XLE_GGUF_U32: case XLE_GGUF_I32: case XLE_GGUF_F32: return 4;
    case XLE_GGUF_U64: case XLE_GGUF_I64: case XLE_GGUF_F64: return 8;
    default: return 0;
    }
}

/* Converts one fixed-size scalar at p into the kv's u64/i64/f64 views. */
static void scalar_decode(xle_gguf_kv *kv, const uint8_t *p) {
    uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32; float f32;
    uint64_t u64; int64_t i64; double f64;
    switch (kv->type) {
    case XLE_GGUF_U8: case XLE_GGUF_BOOL: memcpy(&u8, p, 1); kv->u64 = u8; kv->i64 = u8; kv->f64 = u8; break;
    case XLE_GGUF_I8: memcpy(&i8, p, 1); kv->i64 = i8; kv->u64 = (uint64_t)i8; kv->f64 = i8; break;
    case XLE_GGUF_U16: memcpy(&u16, p, 2); kv->u64 = u16; kv->i64 = u16; kv->f64 = u16; break;
    case XLE_GGUF_I16: memcpy(&i16, p, 2); kv->i64 = i16; kv->u64 = (uint64_t)i16; kv->f64 = i16; break;
    case XLE_GGUF_U32: memcpy(&u32, p, 4); kv->u64 = u32; kv->i64 = u32; kv->f64 = u32; break;
    case XLE_GGUF_I32: memcpy(&i32, p, 4); kv->i64 = i32; kv->u64 = (uint64_t)i32; kv->f64 = i32; break;
    case XLE_GGUF_F32: memcpy(&f32, p, 4); kv->f64 = f32; kv->i64 = (int64_t)0; kv->u64 = 0; break;
    case XLE_GGUF_U64: memcpy(&u64, p, 8); kv->u64 = u64; kv->i64 = (int64_t)u64; kv->f64 = (double)u64; break;
    case XLE_GGUF_I64: memcpy(&i64, p, 8); kv->i64 = i64; kv->u64 = (uint64_t)i64; kv->f64 = (double)i64; break;
    case XLE_GGUF_F64: memcpy(&f64, p, 8); kv->f64 = f64; kv->i64 = 0; kv->u64 = 0; break;
    default: break;
    }
}

/* A key or name for messages: at most 80 bytes, non-printable bytes shown as '?'. */
static void str_for_msg(xle_gguf_str s, char *out, size_t cap) {
    size_t n = s.len < cap - 1 ? (size_t)s.len : cap - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s.ptr[i];
        out[i] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    out[n] = 0;
}

static xle_status parse_kv(cursor *c, xle_gguf_kv *kv, uint64_t index) {
    char field[64], key[96];
    snprintf(field, sizeof field, "kv %llu key", (unsigned long long)index);
    xle_status st = rd_str(c, &kv->key, field);
    if (st != XLE_OK) return st;
    str_for_msg(kv->key, key, sizeof key);
    if (kv->key.len == 0)
        return xle_fail(c->err, XLE_ERR_FORMAT, "%s: %s: empty key", c->path, field);
    int32_t type;
    if (rd(c, &type, 4, key) != XLE_OK) return XLE_ERR_FORMAT;
    kv->type = (uint32_t)type;
    if (kv->type == XLE_GGUF_STRING) return rd_str(c, &kv->str, key);
    if (kv->type == XLE_GGUF_ARRAY) {
        int32_t at;
        if (rd(c, &at, 4, key) != XLE_OK) return XLE_ERR_FORMAT;
        if (rd(c, &kv->arr_count, 8, key) != XLE_OK) return XLE_ERR_FORMAT;
        kv->arr_type = (uint32_t)at;
        if (kv->arr_type == XLE_GGUF_STRING) {
            /* each string takes at least its 8-byte length */
            if (kv->arr_count > (c->size - c->pos) / 8)
                return xle_fail(c->err, XLE_ERR_FORMAT,
                                "%s: %s: array of %llu strings runs past the end of the file",
                                c->path, key, (unsigned long long)kv->arr_count);
            kv->arr_data = c->base + c->pos;
            kv->arr_strs = malloc((size_t)(kv->arr_count ? kv->arr_count : 1) * sizeof(xle_gguf_str));
            if (!kv->arr_strs) return xle_fail(c->err, XLE_ERR_NOMEM, "%s: %s: out of memory", c->path, key);
            for (uint64_t i = 0; i < kv->arr_count; i++)
                if ((st = rd_str(c, &kv->arr_strs[i], key)) != XLE_OK) return st;
            return XLE_OK;
        }
        size_t es = scalar_size(kv->arr_type);
        if (es == 0)
            return xle_fail(c->err, XLE_ERR_FORMAT, "%s: %s: invalid array element type %d%s",
                            c->path, key, at, at == XLE_GGUF_ARRAY ? " (nested arrays are not allowed)" : "");
        if (kv->arr_count > (c->size - c->pos) / es)
            return xle_fail(c->err, XLE_ERR_FORMAT,
                            "%s: %s: array of %llu elements runs past the end of the file", c->path,
                            key, (unsigned long long)kv->arr_count);
        kv->arr_data = c->base + c->pos;
        c->pos += (size_t)kv->arr_count * es;
        return XLE_OK;
    }
    size_t es = scalar_size(kv->type);
    if (es == 0)
        return xle_fail(c->err, XLE_ERR_FORMAT, "%s: %s: invalid value type %d", c->path, key, type);
    if (es > c->size - c->pos) return truncated(c, key);
    scalar_decode(kv, c->base + c->pos);
    c->pos += es;
    if (kv->type == XLE_GGUF_BOOL && kv->u64 > 1)
        return xle_fail(c->err, XLE_ERR_FORMAT, "%s: %s: bool value %llu is not 0 or 1", c->path,
                        key, (unsigned long long)kv->u64);
    return XLE_OK;
}

static xle_status parse_tensor_info(cursor *c, xle_gguf_tensor_info *t, uint64_t index) {
    char field[64], name[96];
    snprintf(field, sizeof field, "tensor %llu name", (unsigned long long)index);
    xle_status st = rd_str(c, &t->name, field);
    if (st != XLE_OK) return st;
    str_for_msg(t->name, name, sizeof name);
    if (rd(c, &t->n_dims, 4, name) != XLE_OK) return XLE_ERR_FORMAT;
    if (t->n_dims > 4)
        return xle_fail(c->err, XLE_ERR_FORMAT, "%s: %s: n_dims: %u is more than 4", c->path, name,
                        t->n_dims);
    for (int i = 0; i < 4; i++) t->ne[i] = 1;
    for (uint32_t i = 0; i < t->n_dims; i++) {
        if (rd(c, &t->ne[i], 8, name) != XLE_OK) return XLE_ERR_FORMAT;
        if (t->ne[i] < 0)
            return xle_fail(c->err, XLE_ERR_FORMAT, "%s: %s: ne[%u]: %lld is negative", c->path,
                            name, i, (long long)t->ne[i]);
    }
    /* the element count must fit in int64 */
    int64_t n = 1;
    for (int i = 0; i < 4; i++) {
        if (t->ne[i] != 0 && n > INT64_MAX / t->ne[i])
            return xle_fail(c->err, XLE_ERR_FORMAT, "%s: %s: ne: element count overflows",
                            c->path, name);
        n *= t->ne[i];
    }
    int32_t type;
    if (rd(c, &type, 4, name) != XLE_OK) return XLE_ERR_FORMAT;
    t->ggml_type = (uint32_t)type;
    if (!xle_ggml_type_known(t->ggml_type))
        return xle_fail(c->err, XLE_ERR_FORMAT, "%s: %s: type: unknown ggml type %d", c->path,
                        name, type);
    if (t->ne[0] % GGML_TYPES[t->ggml_type].block)
        return xle_fail(c->err, XLE_ERR_FORMAT,
                        "%s: %s: ne[0]: %lld is not a multiple of the %s block size", c->path,
                        name, (long long)t->ne[0], xle_ggml_type_name(t->ggml_type));
    if (!xle_ggml_nbytes(t->ggml_type, t->ne, &t->nbytes))
        return xle_fail(c->err, XLE_ERR_FORMAT, "%s: %s: ne: the byte size overflows", c->path, name);
    if (rd(c, &t->offset, 8, name) != XLE_OK) return XLE_ERR_FORMAT;
    return XLE_OK;
}

/* Duplicate detection by sorting (n may be large in a hostile file). */
typedef struct name_ref { xle_gguf_str s; } name_ref;

static int cmp_str(const void *a, const void *b) {
    const xle_gguf_str *x = a, *y = b;
    uint64_t n = x->len < y->len ? x->len : y->len;
    int r = n ? memcmp(x->ptr, y->ptr, (size_t)n) : 0;
    if (r) return r;
    return x->len < y->len ? -1 : x->len > y->len;
}

static xle_status check_unique(const xle_gguf *g, const xle_gguf_str *names, uint64_t n,
                               const char *what, xle_error *err) {
    if (n < 2) return XLE_OK;
    xle_gguf_str *tmp = malloc((size_t)n * sizeof *tmp);
    if (!tmp) return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", g->path);
    memcpy(tmp, names, (size_t)n * sizeof *tmp);
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_str);
    for (uint64_t i = 1; i < n; i++)
        if (cmp_str(&tmp[i - 1], &tmp[i]) == 0) {
            char nm[96];
            str_for_msg(tmp[i], nm, sizeof nm);
            free(tmp);
            return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: duplicate %s", g->path, nm, what);
        }
    free(tmp);
    return XLE_OK;
}

static xle_status parse_header(xle_gguf *g, xle_error *err) {
    cursor c = {g->base, g->size, 0, g->path, err};
    uint8_t magic[4];
    if (rd(&c, magic, 4, "magic") != XLE_OK) return XLE_ERR_FORMAT;
    if (memcmp(magic, "GGUF", 4) != 0)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: magic: not a GGUF file", g->path);
    if (rd(&c, &g->version, 4, "version") != XLE_OK) return XLE_ERR_FORMAT;
    if (g->version != 2 && g->version != 3)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: version: %u is not supported (2 or 3)", g->path,
                        g->version);
    int64_t nt, nkv;
    if (rd(&c, &nt, 8, "n_tensors") != XLE_OK) return XLE_ERR_FORMAT;
    if (rd(&c, &nkv, 8, "n_kv") != XLE_OK) return XLE_ERR_FORMAT;
    /* A KV takes at least 8 + 4 + 1 bytes, a tensor info at least 8 + 4 + 4 + 8. */
    if (nkv < 0 || (uint64_t)nkv > (g->size - c.pos) / 13)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: n_kv: %lld does not fit in the file", g->path,
                        (long long)nkv);
    if (nt < 0 || (uint64_t)nt > (g->size - c.pos) / 24)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: n_tensors: %lld does not fit in the file",
                        g->path, (long long)nt);
    g->n_kv = (uint64_t)nkv;
    g->n_tensors = (uint64_t)nt;
    g->kvs = calloc((size_t)(g->n_kv ? g->n_kv : 1), sizeof *g->kvs);
    g->tensors = calloc((size_t)(g->n_tensors ? g->n_tensors : 1), sizeof *g->tensors);
    if (!g->kvs || !g->tensors) return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", g->path);
    xle_status st;
    for (uint64_t i = 0; i < g->n_kv; i++)
        if ((st = parse_kv(&c, &g->kvs[i], i)) != XLE_OK) return st;
    /* duplicate keys */
    xle_gguf_str *names = malloc((size_t)((g->n_kv > g->n_tensors ? g->n_kv : g->n_tensors) + 1) * sizeof *names);
    if (!names) return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", g->path);
    for (uint64_t i = 0; i < g->n_kv; i++) names[i] = g->kvs[i].key;
    st = check_unique(g, names, g->n_kv, "key", err);
    if (st != XLE_OK) {
        free(names);
        return st;
    }
    g->alignment = 32;
    const xle_gguf_kv *al = xle_gguf_find(g, "general.alignment");
    if (al) {
        if (al->type != XLE_GGUF_U32 || al->u64 == 0 || (al->u64 & (al->u64 - 1))) {
            free(names);
            return xle_fail(err, XLE_ERR_FORMAT,
                            "%s: general.alignment: must be a non-zero power of two of type u32",
                            g->path);
        }
        g->alignment = al->u64;
    }
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if ((st = parse_tensor_info(&c, &g->tensors[i], i)) != XLE_OK) {
            free(names);
            return st;
        }
    for (uint64_t i = 0; i < g->n_tensors; i++) names[i] = g->tensors[i].name;
    st = check_unique(g, names, g->n_tensors, "tensor name", err);
    free(names);
    if (st != XLE_OK) return st;

    /* Data section: header end padded to the alignment; a file without tensors may stop at the
     * end of its KVs (vocab-only files do). */
    uint64_t end = c.pos;
    uint64_t data = (end + g->alignment - 1) / g->alignment * g->alignment;
    g->data_offset = data;
    if (g->n_tensors == 0) return XLE_OK;
    if (data > g->size)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: data section: starts at %llu, past the end (%zu)",
                        g->path, (unsigned long long)data, g->size);
    uint64_t avail = g->size - data, expect = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        xle_gguf_tensor_info *t = &g->tensors[i];
        char nm[96];
        str_for_msg(t->name, nm, sizeof nm);
        if (t->offset != expect)
            return xle_fail(err, XLE_ERR_FORMAT,
                            "%s: %s: offset: %llu is not the expected %llu (offsets must be "
                            "sequential and aligned to %llu)",
                            g->path, nm, (unsigned long long)t->offset,
                            (unsigned long long)expect, (unsigned long long)g->alignment);
        if (t->nbytes > avail || t->offset > avail - t->nbytes)
            return xle_fail(err, XLE_ERR_FORMAT,
                            "%s: %s: offset: data [%llu, %llu) runs past the end of the file",
                            g->path, nm, (unsigned long long)t->offset,
                            (unsigned long long)(t->offset + t->nbytes));
        t->data = g->base + data + t->offset;
        uint64_t padded = (t->nbytes + g->alignment - 1) / g->alignment * g->alignment;
        if (padded < t->nbytes || expect > UINT64_MAX - padded)
            return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: size overflows", g->path, nm);
        expect += padded;
    }
    return XLE_OK;
}

xle_status xle_gguf_parse_memory(const char *path, uint8_t *base, size_t size, xle_gguf **out,
                                 xle_error *err) {
    *out = NULL;
    xle_gguf *g = calloc(1, sizeof *g);
    if (!g) return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", path);
    g->path = strdup(path);
    if (!g->path) {
        free(g);
        return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", path);
    }
    g->base = base;
    g->size = size;
    xle_status st = parse_header(g, err);
    if (st != XLE_OK) {
        g->base = NULL; /* not ours */
        xle_gguf_close(g);
        return st;
    }
    *out = g;
    return XLE_OK;
}

xle_status xle_gguf_open(const char *path, xle_gguf **out, xle_error *err) {
    *out = NULL;
    void *base;
    size_t size;
    xle_status st = xle_map_file(path, &base, &size, err);
    if (st != XLE_OK) return st;
    xle_gguf *g;
    st = xle_gguf_parse_memory(path, base, size, &g, err);
    if (st != XLE_OK) {
        xle_unmap(base, size);
        return st;
    }
    *out = g;
    return XLE_OK;
}

void xle_gguf_close(xle_gguf *g) {
    if (!g) return;
    if (g->kvs)
        for (uint64_t i = 0; i < g->n_kv; i++) free(g->kvs[i].arr_strs);
    free(g->kvs);
    free(g->tensors);
    if (g->base) xle_unmap(g->base, g->size);
    free(g->path);
    free(g);
}

void xle_gguf_detach_mapping(xle_gguf *g, void **base, size_t *size) {
    *base = g->base;
    *size = g->size;
    g->base = NULL; /* the pointers into it stay valid while the new owner keeps it mapped */
}

int xle_gguf_str_eq(xle_gguf_str s, const char *cstr) {
    size_t n = strlen(cstr);
    return s.len == n && memcmp(s.ptr, cstr, n) == 0;
}

const xle_gguf_kv *xle_gguf_find(const xle_gguf *g, const char *key) {
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (xle_gguf_str_eq(g->kvs[i].key, key)) return &g->kvs[i];
    return NULL;
}

const xle_gguf_tensor_info *xle_gguf_find_tensor(const xle_gguf *g, const char *name) {
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (xle_gguf_str_eq(g->tensors[i].name, name)) return &g->tensors[i];
    return NULL;
}

static int is_int_type(uint32_t t) {
    return t == XLE_GGUF_U8 || t == XLE_GGUF_I8 || t == XLE_GGUF_U16 || t == XLE_GGUF_I16 ||
           t == XLE_GGUF_U32 || t == XLE_GGUF_I32 || t == XLE_GGUF_U64 || t == XLE_GGUF_I64 ||
           t == XLE_GGUF_BOOL;
}

int64_t xle_gguf_get_int(const xle_gguf *g, const char *key, int64_t dflt, int *ok) {
    if (ok) *ok = 1;
    const xle_gguf_kv *kv = xle_gguf_find(g, key);
    if (!kv) return dflt;
    if (!is_int_type(kv->type) || (kv->type == XLE_GGUF_U64 && kv->u64 > (uint64_t)INT64_MAX)) {
        if (ok) *ok = 0;
        return dflt;
    }
    return kv->i64;
}

double xle_gguf_get_float(const xle_gguf *g, const char *key, double dflt, int *ok) {
    if (ok) *ok = 1;
    const xle_gguf_kv *kv = xle_gguf_find(g, key);
    if (!kv) return dflt;
    if (kv->type == XLE_GGUF_F32 || kv->type == XLE_GGUF_F64) return kv->f64;
    if (is_int_type(kv->type)) return (double)kv->i64;
    if (ok) *ok = 0;
    return dflt;
}

char *xle_gguf_get_string(const xle_gguf *g, const char *key) {
    const xle_gguf_kv *kv = xle_gguf_find(g, key);
    if (!kv || kv->type != XLE_GGUF_STRING) return NULL;
    char *s = malloc((size_t)kv->str.len + 1);
    if (!s) return NULL;
    memcpy(s, kv->str.ptr, (size_t)kv->str.len);
    s[kv->str.len] = 0;
    return s;
}
