/*
 * merge_internal.h: what the parts of the merging module share: the plan (the loaded inputs
 * and one entry per output tensor, all checked before any output exists), the row geometry
 * (RoPE row orders, vocabulary rows), the TIES trim thresholds, the per-row kernels and the
 * output sink. docs/merging.md describes the arithmetic; this header only the plumbing.
 */
#ifndef XLE_MERGE_INTERNAL_H
#define XLE_MERGE_INTERNAL_H

#include "formats/formats_internal.h"

/* Columns converted to f32 at a time by the kernels (per thread scratch). */
#define XLE_MERGE_BLOCK 1024

/* One output tensor and where its values come from. Rows are in the output's order; the
 * "canonical" order of a row is its Hugging Face (rotate-half RoPE) order, which fixes the
 * DARE mask and the TIES tie-break independently of the input and output formats. */
typedef struct xle_merge_tensor {
    xle_wkind kind;
    int layer;
    char name[96];           /* in the output format */
    char canon_name[96];     /* Hugging Face name (hashed into the DARE mask) */
    int ndim;
    int64_t shape[XLE_MAX_DIMS]; /* output PyTorch shape */
    int64_t rows, cols;      /* processing geometry: rows of cols elements */
    int64_t shared_rows;     /* canonical rows < shared_rows are merged, the rest copied */
    xle_dtype out_dtype;
    int rope_rows;           /* rows of q/k (or their biases) follow a RoPE layout */
    int copy_only;           /* copied from the reference (rope_freqs) */
    const xle_tensor *ref;   /* the base (or the first model for linear without a base) */
    const xle_tensor *base;  /* NULL for linear */
    const xle_tensor **src;  /* n_models inputs */
    const xle_tensor *donor; /* rows >= shared_rows come from here (NULL if none) */
    float *weights;          /* n_models: each model's weight for this tensor (per-layer values
                              * interpolated), owned */
    double *densities;       /* n_models: each model's density for this tensor, owned */
    uint64_t input_bytes;    /* bytes of all inputs of this tensor */
} xle_merge_tensor;

typedef struct xle_merge_plan {
    xle_merge_opts opts;     /* with normalize resolved to 0/1, lambda/density checked */
    xle_model *base;         /* NULL for linear without --base */
    xle_model **models;      /* n_models */
    int n_models;
    xle_model *ref;          /* base, or models[0] */
    int *interleaved;        /* per model: q/k rows in interleaved RoPE order */
    int base_interleaved;
    int out_interleaved;     /* the output's q/k row order */
    int donor;               /* model index of the vocabulary donor, -1: none */
    int out_vocab;
    int stored;              /* tensors merged by name as the HF files store them (families
                              * other than Llama: no RoPE reordering, any layout) */
    xle_tensor *views;       /* stored: the tensor views the plan's tensors point at, owned */
    xle_merge_tensor *tensors;
    int n_tensors;
} xle_merge_plan;

/* Loads and checks every input and builds the tensor plan; out_path is only checked (exists?
 * same as an input?). On failure nothing is left allocated. */
xle_status xle_merge_plan_build(const xle_merge_opts *opts, const char *out_path,
                                xle_merge_plan **out, xle_error *err);
void xle_merge_plan_free(xle_merge_plan *p);

/* ---- geometry -------------------------------------------------------------------------- */

/* Row of an interleaved-RoPE tensor holding canonical (rotate-half) row c, and the inverse;
 * both act within blocks of head_dim rows. */
static inline int64_t xle_merge_interleaved_row(int64_t c, int hd) {
    int64_t h = c / hd, w = c % hd, half = hd / 2;
    return h * hd + 2 * (w % half) + w / half;
}
static inline int64_t xle_merge_canonical_row(int64_t r, int hd) {
    int64_t h = r / hd, w = r % hd, half = hd / 2;
    return h * hd + (w % 2) * half + w / 2;
}

/* ---- DARE ------------------------------------------------------------------------------ */

/* FNV-1a 64 of a tensor name. */
uint64_t xle_merge_name_hash(const char *name);
/* The per (seed, model, tensor) stream key of the DARE mask. */
uint64_t xle_merge_dare_stream(uint64_t seed, int model, uint64_t name_hash);
/* Whether entry `index` (canonical flat index) is kept with probability density. */
int xle_merge_dare_keep(uint64_t stream, int64_t index, double density);
/* TIES: the entries a trim keeps of n, max(1, floor(density · n)), exact for the decimal
 * density (docs/merging.md). */
int64_t xle_merge_keep_count(double density, int64_t n);

/* ---- TIES trim thresholds ---------------------------------------------------------------- */

/* The trim of one model's task vector in one tensor: entries whose magnitude (as f32 bits)
 * exceeds `bits` are kept; of those equal to it, the first `need` in canonical order. */
typedef struct xle_merge_trim {
    int active;              /* 0: keep everything (density 1) */
    uint32_t bits;
    int64_t need;            /* entries equal to bits that are kept */
    int64_t n_equal;         /* entries equal to bits in the tensor */
    int64_t *equal_before;   /* per canonical row: equal entries in earlier rows (NULL when
                              * need == n_equal: all equal entries are kept) */
} xle_merge_trim;

/* ---- kernels (one output row at a time, any thread) --------------------------------------- */

typedef struct xle_merge_kernel {
    const xle_merge_plan *plan;
    const xle_merge_tensor *t;
    const xle_merge_trim *trims;   /* n_models, TIES only */
    const uint64_t *streams;       /* n_models, DARE only */
} xle_merge_kernel;

/* Scratch floats one thread needs for the kernels. */
size_t xle_merge_scratch_floats(int n_models);
/* The n_models int64 counters at the end of a thread's scratch. */
int64_t *xle_merge_scratch_counters(float *scratch, int n_models);

/* Writes output row `out_row` (cols values in t->out_dtype) to dst. Returns the index + 1 of a
 * model whose task vector holds a non-finite value (TIES, DARE-TIES), else 0. */
int xle_merge_row(const xle_merge_kernel *k, int64_t out_row, void *dst, float *scratch);

/* Magnitude histograms of the task vectors over canonical row c, for the trim selection:
 * pass 0 counts the high 16 bits of |τ| into hist[m * 65536 + (bits >> 16)]; pass 1 counts the
 * low 16 bits of entries whose high bits equal hi[m]; pass 2 returns, per model, how many
 * entries equal trims[m].bits (into counts[m]). Returns like xle_merge_row. */
int xle_merge_scan_row(const xle_merge_kernel *k, int pass, int64_t c, const uint32_t *hi,
                       uint64_t *hist, int64_t *counts, float *scratch);

/* From a histogram of 65536 buckets counting n values, the bucket holding the k-th largest
 * (k >= 1) and how many values lie in higher buckets. */
void xle_merge_hist_select(const uint64_t *hist, uint64_t k, uint32_t *bucket, uint64_t *above);

/* ---- output --------------------------------------------------------------------------- */

typedef struct xle_merge_sink xle_merge_sink;
/* Creates the temporary output (folder or file) with every side file, and opens the tensor
 * stream for the plan's tensors in order. */
xle_status xle_merge_sink_open(const xle_merge_plan *p, const char *out_path, xle_merge_sink **out,
                               xle_error *err);
xle_status xle_merge_sink_write(xle_merge_sink *s, const void *data, size_t n, xle_error *err);
/* Finishes the stream, fsyncs, renames into place and frees the sink. */
xle_status xle_merge_sink_commit(xle_merge_sink *s, xle_error *err);
/* Removes the temporary output and frees the sink. */
void xle_merge_sink_abort(xle_merge_sink *s);

#endif
