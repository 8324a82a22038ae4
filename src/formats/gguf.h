/*
 * gguf.h: strict reader (and writer) of GGUF v2/v3 files, shared by the model loader and the
 * tokenizer loader. Every length and offset is checked against the file size before use.
 * Layout facts: shared/docs/formats-detail.md section 1.1.
 */
#ifndef XLE_GGUF_H
#define XLE_GGUF_H

#include "xledit.h"

enum xle_gguf_type {
    XLE_GGUF_U8 = 0, XLE_GGUF_I8 = 1, XLE_GGUF_U16 = 2, XLE_GGUF_I16 = 3, XLE_GGUF_U32 = 4,
    XLE_GGUF_I32 = 5, XLE_GGUF_F32 = 6, XLE_GGUF_BOOL = 7, XLE_GGUF_STRING = 8,
    XLE_GGUF_ARRAY = 9, XLE_GGUF_U64 = 10, XLE_GGUF_I64 = 11, XLE_GGUF_F64 = 12
};

/* ggml tensor types that xledit reads. */
enum xle_ggml_type { XLE_GGML_F32 = 0, XLE_GGML_F16 = 1, XLE_GGML_Q8_0 = 8, XLE_GGML_BF16 = 30 };

typedef struct xle_gguf_str {
    const char *ptr;   /* points into the mapped file: NOT NUL-terminated */
    uint64_t len;
} xle_gguf_str;

typedef struct xle_gguf_kv {
    xle_gguf_str key;
    uint32_t type;            /* enum xle_gguf_type */
    /* scalars (converted): */
    uint64_t u64; int64_t i64; double f64;
    xle_gguf_str str;         /* type STRING */
    /* arrays: */
    uint32_t arr_type;
    uint64_t arr_count;
    const uint8_t *arr_data;  /* first element in the file (fixed-size element types) */
    xle_gguf_str *arr_strs;   /* arr_count entries when arr_type is STRING (owned by xle_gguf) */
} xle_gguf_kv;

typedef struct xle_gguf_tensor_info {
    xle_gguf_str name;
    uint32_t n_dims;
    int64_t ne[4];            /* ne[0] is the contiguous dimension (columns) */
    uint32_t ggml_type;
    uint64_t offset;          /* relative to the data section */
    uint64_t nbytes;
    const uint8_t *data;      /* into the mapping (MAP_PRIVATE, writable copy-on-write) */
} xle_gguf_tensor_info;

typedef struct xle_gguf {
    char *path;
    uint8_t *base;            /* the mapping */
    size_t size;
    uint32_t version;
    uint64_t n_kv, n_tensors;
    xle_gguf_kv *kvs;
    xle_gguf_tensor_info *tensors;
    uint64_t alignment;
    uint64_t data_offset;     /* start of the data section in the file */
} xle_gguf;

/* Maps and parses a GGUF file. The caller owns *out (xle_gguf_close). */
xle_status xle_gguf_open(const char *path, xle_gguf **out, xle_error *err);
void xle_gguf_close(xle_gguf *g);
/* Detaches the mapping so it outlives g (the model keeps it); caller munmaps base/size. */
void xle_gguf_detach_mapping(xle_gguf *g, void **base, size_t *size);

const xle_gguf_kv *xle_gguf_find(const xle_gguf *g, const char *key);
const xle_gguf_tensor_info *xle_gguf_find_tensor(const xle_gguf *g, const char *name);
/* Integer/float/bool scalar KVs with a default when absent; *ok (optional) = 0 on wrong type. */
int64_t xle_gguf_get_int(const xle_gguf *g, const char *key, int64_t dflt, int *ok);
double xle_gguf_get_float(const xle_gguf *g, const char *key, double dflt, int *ok);
/* Copies a string KV into a new NUL-terminated malloc'd string (caller frees), or NULL. */
char *xle_gguf_get_string(const xle_gguf *g, const char *key);
int xle_gguf_str_eq(xle_gguf_str s, const char *cstr);

#endif
