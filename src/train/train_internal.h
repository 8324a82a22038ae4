/*
 * train_internal.h: the pieces of the trainer (src/train/) that its tests check one by one:
 * the data pipeline (documents, epochs, packed batches), the loss and its gradient, AdamW,
 * gradient clipping and checkpoints. The public entry points are in xledit.h.
 */
#ifndef XLE_TRAIN_INTERNAL_H
#define XLE_TRAIN_INTERNAL_H

#include <jansson.h>

#include "xledit.h"

/* Reads a whole file into a new NUL-terminated buffer (caller frees). */
xle_status xle_read_whole_file(const char *path, char **data, size_t *len, xle_error *err);
/* Writes JSON to path via a temporary file beside it (fsync, rename). */
xle_status xle_json_write_atomic(json_t *root, const char *path, xle_error *err);

/* ---- data ----------------------------------------------------------------------------------- */

/* The tokenized corpus as training items: each item is a run of ids (BOS + document + EOS, or a
 * piece of it of at most max_seq_len + 1 ids); the model reads ids[0..n-1) and predicts
 * ids[1..n). */
typedef struct xle_train_data {
    int32_t *ids;
    int64_t n_ids;
    int64_t *item_start;    /* n_items + 1 offsets into ids */
    int n_items;
    int64_t n_docs;
    int64_t n_targets;      /* predicted tokens per epoch: Σ (item length - 1) */
} xle_train_data;

/* Tokenizes every non-empty line of text (BOS + ids + EOS) and cuts long documents into
 * overlapping items of max_seq_len + 1 ids. */
xle_status xle_train_data_build(const xle_tokenizer *tok, const char *text, size_t len,
                                int max_seq_len, xle_train_data *out, xle_error *err);
void xle_train_data_free(xle_train_data *d);

/* Where the data stream stands: epoch and position in that epoch's item order. */
typedef struct xle_data_cursor {
    int64_t epoch;
    int64_t next;           /* index into the epoch's permutation */
} xle_data_cursor;

/* The item order of an epoch: a Fisher-Yates shuffle seeded by (seed, epoch). */
void xle_train_epoch_order(uint64_t seed, int64_t epoch, int n_items, int *order);

/* A packed batch: whole items in order until batch_tokens input tokens would be exceeded (at
 * least one item). The batch's sequences are the items' inputs; targets[t] is the id that
 * follows input token t. Buffers are owned and reused. */
typedef struct xle_train_batch {
    int32_t *tokens, *targets;
    int *seq_start;
    int n_seqs, n_tokens;
    int cap_tokens, cap_seqs;
    int *order;             /* the current epoch's permutation (n_items) */
    int64_t order_epoch;    /* which epoch `order` holds; -1 none */
} xle_train_batch;

xle_status xle_train_batch_next(const xle_train_data *d, uint64_t seed, int batch_tokens,
                                xle_data_cursor *cur, xle_train_batch *b, xle_error *err);
void xle_train_batch_free(xle_train_batch *b);

/* ---- loss and gradient ---------------------------------------------------------------------- */

/* Mean next-token cross-entropy of the batch; when grads is non-NULL its gradient is added to
 * grads (the caller zeroes them). logits: n_tokens x vocab floats of workspace. */
xle_status xle_train_loss_grad(xle_model *model, xle_acts *acts, const xle_train_batch *b,
                               float *logits, xle_grads *grads, double *loss, xle_error *err);

/* ---- optimiser ------------------------------------------------------------------------------ */

/* One parameter tensor with its gradient and AdamW moments. */
typedef struct xle_param {
    float *w, *g, *m, *v;
    int64_t n;
    int decay;              /* weight decay applies (matrices) */
    char name[80];
} xle_param;

/* The model's trainable tensors paired with their gradients, in a fixed order; m and v are
 * carved out of one zeroed allocation (*moments, caller frees). Returns the count in *n. */
xle_status xle_params_collect(xle_model *model, xle_grads *grads, xle_param **out, int *n,
                              float **moments, xle_error *err);

/* Global L2 norm of all gradients (double accumulation in a fixed order). */
double xle_grad_norm(const xle_param *ps, int n);

/* One AdamW step (PyTorch's torch.optim.AdamW): m = b1 m + (1-b1) g; v = b2 v + (1-b2) g²;
 * w -= lr wd w (decayed tensors); w -= lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps).
 * t is the 1-based step; gscale multiplies every gradient first (clipping). */
void xle_adamw_step(xle_param *ps, int n, int64_t t, float lr, float beta1, float beta2, float eps,
                    float weight_decay, float gscale);

/* The clipping factor for a gradient norm: min(1, clip / (norm + 1e-6)) (PyTorch's
 * clip_grad_norm_), 1 when clip <= 0. */
float xle_clip_scale(double norm, float clip);

/* ---- checkpoints ---------------------------------------------------------------------------- */

typedef struct xle_train_state {
    int64_t step;           /* steps done */
    xle_data_cursor cursor;
    xle_rng rng;
    double tokens_seen;
} xle_train_state;

/* Writes weights, AdamW moments, state and the hyperparameters' JSON to path atomically. */
xle_status xle_checkpoint_save(const char *path, const xle_param *ps, int n,
                               const xle_train_state *s, const char *hparams_json,
                               uint64_t data_hash, xle_error *err);
/* Reads a checkpoint into ps (shapes must match) and s; the stored hyperparameters and data
 * hash must equal the given ones (a mismatch names the first differing key). */
xle_status xle_checkpoint_load(const char *path, xle_param *ps, int n, xle_train_state *s,
                               const char *hparams_json, uint64_t data_hash, xle_error *err);

/* The hyperparameters as canonical JSON (sorted keys; caller frees), and as a JSON object in
 * field order (caller owns the reference). */
char *xle_train_hparams_json(const xle_train_hparams *hp);
json_t *xle_train_hparams_to_json(const xle_train_hparams *hp);

/* The model configuration a set of hyperparameters describes (vocab from the tokenizer). */
void xle_train_model_config(const xle_train_hparams *hp, int vocab_size, int bos_id, int eos_id,
                            xle_config *cfg);

/* ---- starting from a model (init_from.c) ----------------------------------------------------- */

/* A new owned f32 model (as xle_model_new makes) holding the weights of the model at path,
 * converted to f32. The model's architecture must be cfg's (fails naming the first differing
 * field). fingerprint (may be NULL) receives the source's xle_model_fingerprint, so a resumed
 * run can check it starts from the same model. The caller owns *out. */
xle_status xle_train_model_from(const char *path, const xle_config *cfg, xle_model **out,
                                char fingerprint[65], xle_error *err);

#endif
