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
/* The engine dtype of a ggml type id (XLE_DTYPE_COUNT when xledit does not compute with it),
 * and back (-1 for none). */
xle_dtype xle_dtype_of_ggml(uint32_t ggml_type);
int xle_ggml_of_dtype(xle_dtype dtype);

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

/* ---------------------------------------------------------------------------------------------
 * Additions by the formats module: type table, in-memory parsing, and the GGUF v3 writer.
 * ------------------------------------------------------------------------------------------- */

/* ggml type facts: name ("Q8_0", "unknown"), whether xledit knows its block layout, and the
 * byte size of a tensor with dims ne (0 when the type is unknown, ne[0] is not a multiple of
 * its block size, or the size overflows). */
const char *xle_ggml_type_name(uint32_t type);
int xle_ggml_type_known(uint32_t type);
int xle_ggml_nbytes(uint32_t type, const int64_t ne[4], uint64_t *nbytes);

/* Parses a GGUF image already in memory (base is NOT taken over: g->base is set, but the
 * caller keeps ownership and must detach it before xle_gguf_close). Used by tests. */
xle_status xle_gguf_parse_memory(const char *path, uint8_t *base, size_t size, xle_gguf **out,
                                 xle_error *err);

/* Dequantizes n Q8_0 values (n a multiple of 32) from blocks into dst. */
void xle_q8_0_dequantize(const uint8_t *blocks, int64_t n, float *dst);
/* Quantizes n f32 values (n a multiple of 32) into Q8_0 blocks as ggml does (d = max|x|/127,
 * q = round(x/d)). */
void xle_q8_0_quantize(const float *src, int64_t n, uint8_t *blocks);

/* The GGUF v3 writer. KVs are written in the order they were added (a set_* of an existing key
 * replaces its value in place); tensors in the order added, each at the next offset aligned to
 * general.alignment (32 unless a u32 general.alignment KV says otherwise), zero-padded.
 * Tensor data is read from the caller's pointers only while xle_gguf_writer_write runs. */
typedef struct xle_gguf_writer xle_gguf_writer;

xle_status xle_gguf_writer_new(xle_gguf_writer **out, xle_error *err);
void xle_gguf_writer_free(xle_gguf_writer *w);
/* Adds every KV of src, in file order. References src's memory: src must outlive w. */
xle_status xle_gguf_writer_copy_kvs(xle_gguf_writer *w, const xle_gguf *src, xle_error *err);
/* Adds or replaces one KV; the key and any strings are copied, fixed-size array data is
 * referenced (must outlive w). */
xle_status xle_gguf_writer_set_kv(xle_gguf_writer *w, const xle_gguf_kv *kv, xle_error *err);
xle_status xle_gguf_writer_set_u32(xle_gguf_writer *w, const char *key, uint32_t v, xle_error *err);
xle_status xle_gguf_writer_set_i32(xle_gguf_writer *w, const char *key, int32_t v, xle_error *err);
xle_status xle_gguf_writer_set_f32(xle_gguf_writer *w, const char *key, float v, xle_error *err);
xle_status xle_gguf_writer_set_string(xle_gguf_writer *w, const char *key, const char *v,
                                      xle_error *err);
/* Removes a KV if present. */
void xle_gguf_writer_remove_kv(xle_gguf_writer *w, const char *key);
/* Adds a tensor: name (len bytes, copied), dims in ggml order (ne[0] contiguous), a ggml type
 * among F32, F16, BF16, Q8_0 (others are accepted as opaque bytes if their size is known) and
 * its data (xle_ggml_nbytes bytes, referenced until the write). */
xle_status xle_gguf_writer_add_tensor(xle_gguf_writer *w, const char *name, size_t name_len,
                                      uint32_t n_dims, const int64_t ne[4], uint32_t ggml_type,
                                      const void *data, xle_error *err);
/* Writes the file (created or truncated) and fsyncs it. Not atomic by itself: callers that need
 * atomicity write to a temporary name and rename (xle_model_save does). */
xle_status xle_gguf_writer_write(const xle_gguf_writer *w, const char *path, xle_error *err);

/* Streaming form of xle_gguf_writer_write, for tensor data produced piece by piece (merging):
 * _open writes the header, KVs and tensor infos of w (whose tensor data pointers are ignored
 * and may be NULL) and the padding before the data section; _write appends the tensors' bytes
 * in w's order, split anyhow (the padding after each tensor is inserted when it is complete);
 * _finish checks that every tensor was completed, fsyncs, closes and frees the stream (also on
 * failure); _abort closes and frees, leaving the partial file to the caller. w may be freed
 * after _open. */
typedef struct xle_gguf_stream xle_gguf_stream;
xle_status xle_gguf_stream_open(const xle_gguf_writer *w, const char *path, xle_gguf_stream **out,
                                xle_error *err);
xle_status xle_gguf_stream_write(xle_gguf_stream *st, const void *data, size_t n, xle_error *err);
xle_status xle_gguf_stream_finish(xle_gguf_stream *st, xle_error *err);
void xle_gguf_stream_abort(xle_gguf_stream *st);

#endif
