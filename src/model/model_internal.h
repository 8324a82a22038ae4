/*
 * model_internal.h: what the format loaders and the engine know about xle_model that callers
 * of the public header do not. A model owns its file mappings and every buffer it allocated.
 */
#ifndef XLE_MODEL_INTERNAL_H
#define XLE_MODEL_INTERNAL_H

#include "xledit.h"

typedef struct xle_mapping {
    void *base;
    size_t size;
} xle_mapping;

struct xle_model {
    xle_config cfg;
    xle_weights w;
    xle_format format;
    xle_dtype weight_dtype;      /* dtype of most stored weights */
    char *path;                  /* as given to xle_model_load */
    xle_mapping *maps;           /* memory-mapped files, unmapped by xle_model_free */
    int n_maps, cap_maps;
    void **buffers;              /* owned allocations (dequantized or made-writable tensors) */
    int n_buffers, cap_buffers;
    struct xle_tokenizer *tokenizer;   /* optional, owned */
    void *format_state;          /* loader-specific (e.g. the parsed GGUF for writing back) */
    void (*format_state_free)(void *);
    xle_precision precision;     /* of products with bf16 weights (xle_model_set_precision) */
    xle_quant_save quant_save;   /* how a save stores changed block-quantized tensors */
};

/* An empty model with path copied; layers allocated for cfg->n_layers when cfg != NULL. */
xle_model *xle_model_alloc(const char *path);
xle_status xle_model_alloc_layers(xle_model *m, xle_error *err);
/* The model takes ownership of a mapping / a malloc'd buffer. */
xle_status xle_model_own_mapping(xle_model *m, void *base, size_t size, xle_error *err);
xle_status xle_model_own_buffer(xle_model *m, void *buf, xle_error *err);

/* Maps a whole file privately (PROT_READ|PROT_WRITE, MAP_PRIVATE: writes never reach the file).
 * An empty file is an error. */
xle_status xle_map_file(const char *path, void **base, size_t *size, xle_error *err);
void xle_unmap(void *base, size_t size);

/* Format loaders (src/formats/). Each fills cfg and w and validates shapes. */
xle_status xle_load_hf(const char *dir, xle_model **out, xle_error *err);
xle_status xle_load_gguf(const char *path, xle_model **out, xle_error *err);
xle_status xle_load_llama2c(const char *path, xle_model **out, xle_error *err);

/* Checks that every tensor of m has the shape cfg implies (source names the file). */
xle_status xle_model_check_shapes(const xle_model *m, const char *source, xle_error *err);

#endif
