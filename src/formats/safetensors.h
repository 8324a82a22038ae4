/*
 * safetensors.h: strict parser of safetensors headers (shared/docs/formats-detail.md 1.2) and a
 * streaming writer (header first, then each tensor's bytes in order). Used by the Hugging Face
 * loader and by every module that writes model files (save, merging, training).
 */
#ifndef XLE_SAFETENSORS_H
#define XLE_SAFETENSORS_H

#include "xledit.h"

#define XLE_ST_MAX_DIMS 8

typedef struct xle_st_entry {
    char *name;
    char dtype[12];                 /* "F32", "BF16", ... as in the file */
    int ndim;
    int64_t shape[XLE_ST_MAX_DIMS];
    uint64_t begin, end;            /* relative to the data buffer, end exclusive */
    const uint8_t *data;            /* into the caller's mapping */
} xle_st_entry;

typedef struct xle_safetensors {
    char *path;
    uint64_t header_len;            /* N */
    xle_st_entry *entries;          /* n entries in header order */
    int n;
    char *metadata_json;            /* the "__metadata__" object as JSON text, or NULL */
} xle_safetensors;

/* Parses the header of a safetensors image of `size` bytes at base (the caller keeps the
 * memory alive; entries point into it). Checks: header length, JSON object, duplicate keys,
 * dtypes, shapes, offsets (each size equals numel x dtype size, buffer covered exactly with
 * no holes or overlaps). The caller owns *out (xle_safetensors_free). */
xle_status xle_safetensors_parse(const char *path, const uint8_t *base, size_t size,
                                 xle_safetensors **out, xle_error *err);
void xle_safetensors_free(xle_safetensors *st);
const xle_st_entry *xle_safetensors_find(const xle_safetensors *st, const char *name);

/* Element size of a safetensors dtype name (0 if unknown). */
size_t xle_st_dtype_size(const char *dtype);
/* Maps F32/F16/BF16/F64 to xle_dtype; returns 0 for the others. */
int xle_st_dtype_to_xle(const char *dtype, xle_dtype *out);
const char *xle_st_dtype_name(xle_dtype dtype);

/* A tensor to write: data holds numel x dtype size bytes, read during the write only. */
typedef struct xle_st_tensor {
    const char *name;
    const char *dtype;
    int ndim;
    int64_t shape[XLE_ST_MAX_DIMS];
    const void *data;
} xle_st_tensor;

/* Writes a safetensors file (created or truncated, then fsynced): the header with the tensors
 * in the given order at consecutive offsets, padded with spaces to a multiple of 8 as the
 * Python writer does, then the data streamed tensor by tensor. metadata_json is a JSON object
 * of strings for "__metadata__" (NULL: {"format":"pt"}). *data_bytes (optional) receives the
 * size of the data buffer (for an index's total_size). Not atomic by itself. */
xle_status xle_safetensors_write(const char *path, const xle_st_tensor *ts, size_t n,
                                 const char *metadata_json, uint64_t *data_bytes, xle_error *err);

/* Streaming writer, for data produced piece by piece (merging): _open writes the header for ts
 * (their data pointers are ignored and may be NULL), _write appends bytes of the data buffer in
 * tensor order (any split), _finish checks that exactly the announced bytes came, fsyncs,
 * closes and frees the stream (also on failure). _abort closes and frees without finishing;
 * the partial file stays for the caller (writing under a temporary name) to remove.
 * Not atomic by itself. */
typedef struct xle_st_stream xle_st_stream;
xle_status xle_st_stream_open(const char *path, const xle_st_tensor *ts, size_t n,
                              const char *metadata_json, xle_st_stream **out, xle_error *err);
xle_status xle_st_stream_write(xle_st_stream *s, const void *data, size_t nbytes, xle_error *err);
xle_status xle_st_stream_finish(xle_st_stream *s, uint64_t *data_bytes, xle_error *err);
void xle_st_stream_abort(xle_st_stream *s);

#endif
