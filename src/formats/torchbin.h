/*
 * torchbin.h: PyTorch checkpoints (torch.save's zip format, `pytorch_model.bin`) read without
 * running any code: a reader of zip central directories for archives whose members are stored
 * uncompressed (what torch.save writes), and a restricted unpickler of the state dict in
 * data.pkl that accepts only tensors, storages and ordered dicts. Tensors come out as
 * xle_safetensors entries pointing into the caller's mapping, so the Hugging Face loader and
 * xle_model_save treat a .bin shard like a .safetensors one.
 */
#ifndef XLE_TORCHBIN_H
#define XLE_TORCHBIN_H

#include "formats/safetensors.h"

/* ---- zip archives --------------------------------------------------------------------------- */

typedef struct xle_zip_member {
    char *name;
    int method;                /* 0: stored; anything else cannot be mapped */
    uint64_t size;             /* uncompressed size */
    const uint8_t *data;       /* into the caller's mapping (stored members), else NULL */
} xle_zip_member;

typedef struct xle_zip {
    xle_zip_member *members;   /* sorted by name, names unique */
    int n;
} xle_zip;

/* Reads the central directory (zip64 too) of a zip image of `size` bytes at base and checks
 * each member's local header and data range. The caller keeps base alive and owns *out. */
xle_status xle_zip_parse(const char *path, const uint8_t *base, size_t size, xle_zip **out,
                         xle_error *err);
const xle_zip_member *xle_zip_find(const xle_zip *z, const char *name);
void xle_zip_free(xle_zip *z);

/* ---- torch.save checkpoints ------------------------------------------------------------------- */

/* Parses a torch.save zip image (a state dict: a dict or OrderedDict of name -> tensor) into
 * entries with dtype names "F32", "F16", "BF16" or "F64", shapes, and data pointing into base
 * (begin/end are file offsets). Refuses any pickle global other than the tensor and parameter
 * rebuild functions, torch.*Storage and collections.OrderedDict, any opcode that could build
 * other objects, non-contiguous tensors and other dtypes, each with one line naming the file.
 * The caller keeps base alive and owns *out (xle_safetensors_free). */
xle_status xle_torchbin_parse(const char *path, const uint8_t *base, size_t size,
                              xle_safetensors **out, xle_error *err);

#endif
