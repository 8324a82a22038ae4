/*
 * formats_internal.h: what the format loaders (gguf_model.c, hf.c, llama2c.c), save.c and the
 * writers elsewhere share, defined in model_layout.c (the table of weight kinds with their
 * names in each format and their expected shapes, the shape check, tensor views),
 * config_check.c (configuration validation) and paths.c (file-system helpers of atomic
 * saving); and the per-format state kept in model->format_state so that xle_model_save can
 * copy untouched tensors byte for byte. load.c only dispatches to the loaders.
 */
#ifndef XLE_FORMATS_INTERNAL_H
#define XLE_FORMATS_INTERNAL_H

#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "model/family.h"
#include "model/model_internal.h"

/* ---- weight kinds ------------------------------------------------------------------------ */

/* (xle_wkind, the kinds of every family, is in model/family.h.) */

/* The model's slot for (kind, layer) (layer ignored for global kinds). */
xle_tensor *xle_weight_slot(xle_weights *w, xle_wkind kind, int layer);
/* The tensor's name in a format for a Llama-family model ("model.layers.3.mlp.down_proj.weight",
 * "blk.3.ffn_down.weight", "w2[3]"), written into buf. */
const char *xle_weight_name(xle_format fmt, xle_wkind kind, int layer, char *buf, size_t cap);
/* The same for a model of family fam (Hugging Face names differ per family; GGUF and llama2.c
 * names are the Llama ones). "" when the family has no such tensor in that format. */
const char *xle_family_weight_name(const xle_family *fam, xle_format fmt, xle_wkind kind, int layer,
                                   char *buf, size_t cap);
/* The PyTorch shape cfg implies for a kind. */
void xle_weight_expected_shape(const xle_config *cfg, xle_wkind kind, int *ndim, int64_t shape[2]);

/* ---- what save needs to know ------------------------------------------------------------- */

/* One source tensor and the model slot loaded from it. */
typedef struct xle_fmt_bind {
    xle_tensor *slot;          /* NULL: not used by the model (copied as is on save) */
    const void *loaded_data;   /* slot->data right after loading */
    xle_dtype loaded_dtype;
    xle_hf_layout layout;      /* how the file stores it; not SAME: the slot holds a converted
                                * copy (an owned f32 copy is edited in place, so the pointer test
                                * above cannot see a change): save always converts back */
    xle_tensor *parts[3];      /* XLE_LAYOUT_FUSED_QKV_T, _ROWS, _HEADS: the q, k, v slots (weights
                                * or biases) */
    const void *parts_loaded[3]; /* XLE_LAYOUT_FUSED_QKV_ROWS: each part's data right after loading */
    int head_rows;             /* XLE_LAYOUT_FUSED_QKV_HEADS: rows per head and part (head_dim) */
} xle_fmt_bind;

/* A slot still holds exactly what was loaded (same buffer, same dtype). */
int xle_fmt_bind_untouched(const xle_fmt_bind *b);

typedef struct xle_gguf_state {
    xle_gguf *gguf;            /* parsed file; its mapping belongs to the model */
    xle_fmt_bind *binds;       /* gguf->n_tensors entries, in info order */
} xle_gguf_state;

typedef struct xle_hf_shard {
    char *name;                /* file name inside the folder */
    xle_safetensors *st;       /* parsed header; data in a mapping owned by the model */
    xle_fmt_bind *binds;       /* st->n entries */
} xle_hf_shard;

typedef struct xle_hf_state {
    char *dir;
    char *source;              /* the weights file or index that was read */
    int sharded;               /* loaded through an index (*.index.json) */
    int torch_bin;             /* the shards are torch.save archives (pytorch_model*.bin) */
    xle_hf_shard *shards;
    int n_shards;
} xle_hf_state;

typedef struct xle_llama2c_state {
    char *tokenizer_path;      /* tokenizer file that was attached, or NULL */
    int shared_classifier;
} xle_llama2c_state;

void xle_gguf_state_free(void *p);
void xle_hf_state_free(void *p);
void xle_llama2c_state_free(void *p);

/* Attaches a tokenizer the model's loader found: a failure other than XLE_ERR_UNSUPPORTED is
 * an error of the load. */

/* ---- file system ----------------------------------------------------------------------- */

/* "dir/name" in a new string (caller frees), or NULL. */
char *xle_path_join(const char *dir, const char *name);
int xle_path_is_dir(const char *path);
int xle_path_exists(const char *path);
/* Copies a file byte for byte and fsyncs the copy. */
xle_status xle_file_copy(const char *src, const char *dst, xle_error *err);
/* fsyncs a directory (after creating or renaming entries in it). */
void xle_dir_sync(const char *dir);
/* Removes a file or a folder with its (flat) contents; ignores errors. */
void xle_path_remove(const char *path);

/* Whether a file of a HF folder holds weights (not carried over as a side file). */
int xle_hf_is_weight_file(const char *name);
/* Writes a Llama-style config.json for cfg with torch_dtype named after dtype. */
xle_status xle_hf_write_config(const xle_config *cfg, xle_dtype dtype, const char *path, xle_error *err);

/* Validates a configuration with a table of field names for messages. */
typedef struct xle_config_names {
    const char *dim, *ffn_dim, *n_layers, *n_heads, *n_kv_heads, *head_dim, *vocab_size,
        *max_seq_len, *norm_eps, *rope_theta, *rope_factor, *sliding_window;
} xle_config_names;
extern const xle_config_names XLE_NAMES_HF, XLE_NAMES_HF_GPT2, XLE_NAMES_GGUF, XLE_NAMES_LLAMA2C;
xle_status xle_config_validate_names(const xle_config *cfg, const char *source,
                                     const xle_config_names *names, xle_error *err);

/* Views data as a tensor; if data is not aligned for the dtype, copies it into a buffer the
 * model owns first (so that f32/f16 reads are aligned). */
xle_status xle_tensor_view(xle_model *m, xle_tensor *t, xle_dtype dtype, int ndim,
                           const int64_t *shape, const void *data, xle_error *err);

#endif
