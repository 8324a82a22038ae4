/*
 * xledit.h: the one public header of libxledit, a C11 library for cross-lingual knowledge
 * editing of Llama-family language models on a CPU.
 *
 * Conventions (after sqlite/ggml):
 *  - Every fallible function returns xle_status and fills an xle_error the caller owns;
 *    the library never prints and never exits.
 *  - Names are xle_<module>_<verb>. Every _load/_new has a matching _free.
 *  - Matrices are row-major in PyTorch order: a Linear weight is [out, in] and y = W x.
 *  - Ownership is stated beside each function.
 */
#ifndef XLEDIT_H
#define XLEDIT_H

#include <stddef.h>
#include <stdint.h>

/* The library's version (CMakeLists.txt, xledit.pc and the CMake package read it from here). */
#define XLE_VERSION_MAJOR 0
#define XLE_VERSION_MINOR 1
#define XLE_VERSION_PATCH 0
#define XLE_VERSION_STRING "0.1.0"

#ifdef __cplusplus
extern "C" {
#endif

/* The shared library is built with hidden visibility: what this header declares is its ABI,
 * internal functions (src/) are not exported. */
#if defined(__GNUC__) && !defined(_WIN32)
#pragma GCC visibility push(default)
#endif

/* The version of the library linked at run time ("0.1.0"); compare with XLE_VERSION_STRING,
 * the version of the header compiled against. */
const char *xle_version(void);

/* ---------------------------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------------------------- */

typedef enum xle_status {
    XLE_OK = 0,
    XLE_ERR_IO,          /* a file could not be opened, read, mapped or written */
    XLE_ERR_FORMAT,      /* a file is malformed: bad magic, truncated, bad offsets, bad JSON */
    XLE_ERR_ARG,         /* a caller-supplied argument is invalid */
    XLE_ERR_NOMEM,       /* an allocation failed */
    XLE_ERR_UNSUPPORTED, /* well-formed but not something xledit handles (dtype, architecture) */
    XLE_ERR_NUMERIC,     /* NaN/Inf or a singular system */
    XLE_ERR_NOT_FOUND,   /* a named item (tensor, token, subject) is absent */
    XLE_ERR_INTERRUPTED  /* the caller asked to stop (SIGINT); finished work is kept */
} xle_status;

/* One error message: "file: field: what is wrong". Filled by the failing function. */
typedef struct xle_error {
    xle_status status;
    char msg[512];
} xle_error;

/* Sets err (if non-NULL) and returns status, so a failure reads `return xle_fail(err, ...)`. */
xle_status xle_fail(xle_error *err, xle_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
const char *xle_status_name(xle_status status);

/* ---------------------------------------------------------------------------------------------
 * Threads. xledit computes with OpenMP; every parallel loop takes its size from the calling
 * thread's OpenMP setting (omp_get_max_threads()), which starts at OMP_NUM_THREADS when that is
 * set and at the CPUs the process may run on otherwise. OpenBLAS follows the same count.
 * ------------------------------------------------------------------------------------------- */

/* The CPUs this process may run on (its affinity mask: taskset, cpusets), at least 1. */
int xle_threads_available(void);
/* Computes with n threads from now on, in calls made from the calling thread (n <= 0: as many
 * as xle_threads_available()). Sets OpenMP's count for the calling thread (omp_set_num_threads)
 * and OpenBLAS's process-wide count. */
void xle_threads_set(int n);
/* The thread count calls from the calling thread use now. */
int xle_threads_get(void);

/* ---------------------------------------------------------------------------------------------
 * Tensors: typed views of memory (usually a memory-mapped file). A view never owns its data.
 * ------------------------------------------------------------------------------------------- */

typedef enum xle_dtype {
    XLE_F32 = 0,
    XLE_F16,
    XLE_BF16,
    XLE_F64,
    /* Block-quantized types of GGUF files (ggml's layouts): weights stay as stored, in blocks
     * of 32 (Q4_0 .. Q8_0) or 256 (the K-quants) elements; see docs/formats.md. */
    XLE_Q4_0,
    XLE_Q4_1,
    XLE_Q5_0,
    XLE_Q5_1,
    XLE_Q8_0,
    XLE_Q2_K,
    XLE_Q3_K,
    XLE_Q4_K,
    XLE_Q5_K,
    XLE_Q6_K,
    XLE_DTYPE_COUNT
} xle_dtype;

#define XLE_MAX_DIMS 4

typedef struct xle_tensor {
    xle_dtype dtype;
    int ndim;
    int64_t shape[XLE_MAX_DIMS]; /* PyTorch order: shape[ndim-1] is contiguous */
    void *data;                  /* NULL for an absent optional tensor */
} xle_tensor;

/* Bytes per element; 0 for the block-quantized types (use the block sizes below). */
size_t xle_dtype_size(xle_dtype dtype);
const char *xle_dtype_name(xle_dtype dtype);
/* Elements per block (1 for F32/F16/BF16/F64) and bytes per block. */
int64_t xle_dtype_block_elems(xle_dtype dtype);
size_t xle_dtype_block_bytes(xle_dtype dtype);
int xle_dtype_is_quantized(xle_dtype dtype);
/* Bytes of n consecutive elements (n a multiple of the block size). */
size_t xle_dtype_row_bytes(xle_dtype dtype, int64_t n);
int64_t xle_tensor_numel(const xle_tensor *t);
size_t xle_tensor_nbytes(const xle_tensor *t);
/* Element i of t converted to float (any dtype). */
float xle_tensor_get_f32(const xle_tensor *t, int64_t i);
/* Converts n elements starting at element `first` of t into dst (f32). */
void xle_tensor_row_to_f32(const xle_tensor *t, int64_t first, int64_t n, float *dst);

float xle_f16_to_f32(uint16_t h);
uint16_t xle_f32_to_f16(float f);       /* round to nearest even */
float xle_bf16_to_f32(uint16_t h);
uint16_t xle_f32_to_bf16(float f);      /* round to nearest even, NaN kept */

/* ---------------------------------------------------------------------------------------------
 * Models: the Llama family (Llama-2, Llama-3.x, Mistral, Qwen2) and GPT-2 (docs/families.md).
 * ------------------------------------------------------------------------------------------- */

typedef enum xle_arch {
    XLE_ARCH_LLAMA = 0, XLE_ARCH_MISTRAL, XLE_ARCH_QWEN2, XLE_ARCH_GPT2,
    XLE_ARCH_GPTJ, XLE_ARCH_GEMMA, XLE_ARCH_GEMMA2, XLE_ARCH_BLOOM
} xle_arch;
typedef enum xle_format { XLE_FORMAT_HF = 0, XLE_FORMAT_GGUF, XLE_FORMAT_LLAMA2C } xle_format;
typedef enum xle_rope_scaling { XLE_ROPE_NONE = 0, XLE_ROPE_LLAMA3, XLE_ROPE_LINEAR } xle_rope_scaling;

typedef struct xle_config {
    xle_arch arch;
    int dim;            /* hidden size d */
    int ffn_dim;        /* intermediate size f */
    int n_layers;
    int n_heads;
    int n_kv_heads;
    int head_dim;
    int vocab_size;     /* rows of the embedding (may exceed the tokenizer's size) */
    int max_seq_len;
    float norm_eps;
    float rope_theta;
    int rope_interleaved;        /* 1: pairs (2i, 2i+1) (GGUF llama, llama2.c); 0: (i, i+hd/2) */
    xle_rope_scaling rope_scaling;
    float rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int rope_original_max_pos;
    int sliding_window;          /* 0: none; else query i sees keys j with 0 <= i-j < window */
    int tied_embeddings;         /* lm_head is the embedding */
    int bos_id, eos_id;          /* -1 when unknown */
    int rotary_dim;              /* RoPE on the first rotary_dim dims of a head (GPT-J); 0: all */
    float attn_softcap;          /* scores c·tanh(s/c) before the mask (Gemma-2); 0: none */
    float final_softcap;         /* logits c·tanh(z/c) (Gemma-2); 0: none */
    float attn_scale;            /* score scale (Gemma-2: query_pre_attn_scalar^-½); 0: 1/√head_dim */
} xle_config;

/* Weights of one transformer block. Optional tensors have data == NULL. */
typedef struct xle_layer_weights {
    xle_tensor attn_norm;                /* [d] */
    xle_tensor wq, wk, wv, wo;           /* [H*hd, d], [KV*hd, d], [KV*hd, d], [d, H*hd] */
    xle_tensor bq, bk, bv, bo;           /* optional biases */
    xle_tensor ffn_norm;                 /* [d] */
    xle_tensor w_gate, w_up, w_down;     /* [f, d], [f, d], [d, f] */
    xle_tensor attn_norm_b, ffn_norm_b;  /* LayerNorm biases [d] (GPT-2) */
    xle_tensor b_up, b_down;             /* MLP biases [f], [d] (GPT-2) */
    xle_tensor post_attn_norm, post_ffn_norm; /* norms of the attention and MLP outputs [d]
                                               * (Gemma-2) */
} xle_layer_weights;

typedef struct xle_weights {
    xle_tensor tok_embd;                 /* [V, d] */
    xle_tensor out_norm;                 /* [d] */
    xle_tensor lm_head;                  /* [V, d]; same data as tok_embd when tied */
    xle_tensor rope_freqs;               /* optional [hd/2] divisors (GGUF Llama-3.x) */
    xle_layer_weights *layers;           /* n_layers entries */
    xle_tensor pos_embd;                 /* learned positions [max_seq_len, d] (GPT-2) */
    xle_tensor out_norm_b;               /* final LayerNorm bias [d] (GPT-2) */
    xle_tensor lm_head_b;                /* head bias [V] (GPT-J) */
    xle_tensor embd_norm, embd_norm_b;   /* LayerNorm on the embedding rows [d] (BLOOM) */
} xle_weights;

typedef struct xle_model xle_model;       /* opaque owner of mappings and buffers */
struct xle_tokenizer;

/* Loads a model: a Hugging Face folder (config.json + *.safetensors), a .gguf file or a
 * llama2.c .bin checkpoint (its tokenizer.bin / tok*.bin beside it is optional).
 * Weights are memory-mapped privately (copy-on-write): nothing written to them reaches the file.
 * The caller owns *out and frees it with xle_model_free. */
xle_status xle_model_load(const char *path, xle_model **out, xle_error *err);
void xle_model_free(xle_model *model);

const xle_config *xle_model_config(const xle_model *model);
xle_weights *xle_model_weights(xle_model *model);
xle_format xle_model_format(const xle_model *model);
const char *xle_model_path(const xle_model *model);
/* The tokenizer that came with the model files, or NULL (owned by the model). */
struct xle_tokenizer *xle_model_tokenizer(xle_model *model);
/* The stored dtype of most weights (what `info` reports). */
xle_dtype xle_model_weight_dtype(const xle_model *model);
/* The tensor types as the files store them, with counts, e.g. "BF16 x19" or "Q8_0 x15, F32 x5"
 * (quantized types stay in their blocks in memory). Written into buf (cap bytes); returns buf. */
const char *xle_model_stored_dtypes(const xle_model *model, char *buf, size_t cap);
/* How the weights are stored: "hf-safetensors", "hf-pytorch-bin" (a folder of torch.save
 * archives), "gguf" or "llama2c". A static string. */
const char *xle_model_file_layout(const xle_model *model);
/* What the model's tokenizer is and where it came from, e.g. "SentencePiece BPE, 512 tokens,
 * from tokenizer.ggml.* (GGUF)"; "none" without one. Written into buf; returns buf. */
const char *xle_model_tokenizer_desc(const xle_model *model, char *buf, size_t cap);

/* Replaces one weight tensor's contents with an owned f32 copy so it may be modified; returns
 * the new view (owned by the model). Used by editing: the file mapping is never written. */
xle_status xle_model_make_writable_f32(xle_model *model, xle_tensor *t, xle_error *err);

/* Writes the model with its current weights in its own format (HF folder or GGUF file; a
 * llama2.c model is written as an HF folder) to out_path, atomically: everything is written
 * under a temporary name beside out_path and renamed at the end, so a failure leaves no partial
 * output. Tensors never made writable are copied byte for byte from the source files; tensors
 * made writable (f32) are stored as F32. Never writes to the source files. */
xle_status xle_model_save(const xle_model *model, const char *out_path, xle_error *err);
/* Whether xle_model_save could write out_path (not the model's source; a folder output new or
 * empty, a GGUF file output not a folder; the parent folder exists and is writable), checked
 * before long work so that it fails at once. Writes nothing. */
xle_status xle_model_save_check(const xle_model *model, const char *out_path, xle_error *err);

/* How xle_model_save stores a changed tensor whose source was block-quantized (GGUF Q4_0 ..
 * Q6_K): as F16 (the default), BF16, F32 (exact), or quantized again to its source type
 * (smallest; adds quantization error on top of the edit: docs/formats.md has the figures). */
typedef enum xle_quant_save {
    XLE_QSAVE_F16 = 0,
    XLE_QSAVE_BF16,
    XLE_QSAVE_F32,
    XLE_QSAVE_REQUANTIZE
} xle_quant_save;
void xle_model_set_quant_save(xle_model *model, xle_quant_save mode);

/* Checks a configuration for sane, consistent values; `source` names the file for messages. */
xle_status xle_config_validate(const xle_config *cfg, const char *source, xle_error *err);

/* ---------------------------------------------------------------------------------------------
 * The forward pass, with named read/write points.
 *
 * A batch packs several sequences end to end: tokens[seq_start[s] .. seq_start[s+1]) is
 * sequence s, and attention never crosses sequences. Positions start at 0 in each sequence
 * (plus the KV cache length when a cache is used, single sequence only).
 * ------------------------------------------------------------------------------------------- */

typedef struct xle_batch {
    int n_seqs;
    const int32_t *tokens;     /* seq_start[n_seqs] tokens */
    const int *seq_start;      /* n_seqs + 1 offsets, seq_start[0] == 0 */
} xle_batch;

typedef enum xle_point {
    XLE_POINT_MLP_KEY = 0,   /* input of the down projection: silu(gate x) * up x, width f */
    XLE_POINT_MLP_OUT,       /* output of the MLP (down projection), width d */
    XLE_POINT_BLOCK_OUT,     /* the residual stream after the block, width d */
    XLE_POINT_EMBED,         /* the token embeddings entering layer 0 (hooked as layer 0), width d */
    XLE_POINT_ATTN_OUT,      /* output of attention (after the output projection), width d */
    XLE_POINT_COUNT
} xle_point;

/* A hook sees the activation at (point, layer) for all n_tokens rows of the batch (row-major,
 * n_tokens x width) and may read or change it in place. Returning non-zero stops the forward
 * pass right after this point (no logits are produced). */
typedef int (*xle_hook_fn)(void *user, xle_point point, int layer, float *act, int n_tokens,
                           int width);

typedef struct xle_hook {
    xle_point point;
    int layer;
    xle_hook_fn fn;
    void *user;
} xle_hook;

/* Activations kept by a forward pass for the backward pass (opaque, reusable). */
typedef struct xle_acts xle_acts;
xle_acts *xle_acts_new(void);
void xle_acts_free(xle_acts *acts);

/* KV cache for incremental generation of one sequence. */
typedef struct xle_kv_cache xle_kv_cache;
xle_status xle_kv_cache_new(const xle_model *model, int max_tokens, xle_kv_cache **out,
                            xle_error *err);
void xle_kv_cache_free(xle_kv_cache *cache);
int xle_kv_cache_len(const xle_kv_cache *cache);
void xle_kv_cache_clear(xle_kv_cache *cache);

typedef struct xle_forward_opts {
    const xle_hook *hooks;     /* may be NULL */
    int n_hooks;
    xle_kv_cache *cache;       /* NULL: no cache; else batch must be one sequence */
    xle_acts *acts;            /* non-NULL: keep what the backward pass needs */
    /* Which rows get logits: NULL = all rows; else logit_rows[i] is a row index of the batch.
     * Logits are written row after row, vocab_size floats each. */
    const int *logit_rows;
    int n_logit_rows;
    /* With acts: keep only layers >= keep_from_layer (the backward pass may stop there). */
    int keep_from_layer;
} xle_forward_opts;

/* How the forward pass multiplies activations with bf16 weights. EXACT (the default of a loaded
 * model): weights widened to f32, products and sums in f32. BF16: on CPUs with AVX512-BF16 the
 * activations are rounded to bf16 (nearest even, as llama.cpp does) and multiplied with
 * vdpbf16ps, sums in f32 (faster prompts; logits differ slightly, see docs/performance.md);
 * elsewhere, and for f32/f16 weights, it computes as EXACT. With block-quantized weights, BF16
 * also runs prompts (4 or more rows) in int8 on CPUs with AVX-512 VNNI (activations quantized
 * per 256 inputs, as llama.cpp's q8_K), where EXACT multiplies dequantized weights in f32;
 * generation (fewer rows) uses int8 activations in both. The backward pass is always exact. */
typedef enum xle_precision { XLE_PRECISION_EXACT = 0, XLE_PRECISION_BF16 = 1 } xle_precision;
void xle_model_set_precision(xle_model *model, xle_precision precision);
xle_precision xle_model_precision(const xle_model *model);

/* Runs the model over the batch. logits (may be NULL when a hook stops the pass) receives
 * n_logit_rows (or all tokens) x vocab_size floats. Uses OpenMP threads. */
xle_status xle_forward(xle_model *model, const xle_batch *batch, const xle_forward_opts *opts,
                       float *logits, xle_error *err);

/* Gradients of the weights, laid out like xle_weights (f32, one owned allocation; optional
 * tensors the model lacks have data == NULL; when embeddings are tied lm_head aliases tok_embd). */
typedef struct xle_grads xle_grads;
xle_status xle_grads_new(const xle_model *model, xle_grads **out, xle_error *err);
void xle_grads_free(xle_grads *grads);
void xle_grads_zero(xle_grads *grads);
xle_weights *xle_grads_weights(xle_grads *grads);
/* All gradient floats in one array (for optimizers and norms). */
float *xle_grads_data(xle_grads *grads, size_t *n_floats);

/* Backward pass from d_logits (same rows as the forward's logits) through the kept
 * activations. Stops below layer `stop_layer` (0 = go all the way to the embedding).
 * d_block_out (optional, n_tokens x d) receives the gradient w.r.t. the block output of
 * stop_layer (which is also the gradient w.r.t. that layer's MLP output). grads (optional)
 * accumulates weight gradients for layers >= stop_layer. */
xle_status xle_backward(xle_model *model, xle_acts *acts, const float *d_logits, int stop_layer,
                        float *d_block_out, xle_grads *grads, xle_error *err);

/* ---------------------------------------------------------------------------------------------
 * Convenience on top of the forward pass
 * ------------------------------------------------------------------------------------------- */

/* Greedy (temperature 0) or sampled generation with the KV cache. Writes up to n_new ids into
 * out_ids and returns the count in *n_out; stops early at eos when stop_at_eos. */
typedef struct xle_sampler {
    float temperature;   /* 0 = greedy */
    int top_k;           /* 0 = whole vocabulary */
    uint64_t seed;
    int stop_at_eos;
    /* llama.cpp's sampler chain, in its order: repeat penalty, top-k, top-p, temperature.
     * repeat_penalty (0 or 1 = off): a logit of a token among the last repeat_last_n tokens
     * (prompt included; 0 = 64) is divided by it when positive, multiplied when not (greedy
     * too). top_p (0 or >= 1 = off): keeps the most probable tokens until their probability,
     * at temperature 1, reaches top_p; sampling only. */
    float top_p;
    float repeat_penalty;
    int repeat_last_n;
} xle_sampler;

xle_status xle_generate(xle_model *model, const int32_t *prompt, int n_prompt, int n_new,
                        const xle_sampler *sampler, int32_t *out_ids, int *n_out,
                        xle_error *err);

/* n sequences generated side by side, each as xle_generate would with samplers[s] (its own
 * seed): prompt s is prompts[s] (n_prompts[s] ids), up to n_new[s] ids go to out_ids[s] and
 * their count to n_out[s]. Each step is one forward pass over all unfinished sequences with
 * their whole text (no KV cache; logits only at each sequence's last row), so a step reads the
 * weights once for all sequences instead of once per sequence. The logits come from packed
 * products and may differ from xle_generate's in the last bits (a sampled id only where two
 * candidates' probabilities touch). */
xle_status xle_generate_many(xle_model *model, int n, const int32_t *const *prompts,
                             const int *n_prompts, const int *n_new, const xle_sampler *samplers,
                             int32_t *const *out_ids, int *n_out, xle_error *err);

/* Sum of log-probabilities of target given prompt (teacher forcing), and per-token values
 * in per_token (optional, n_target entries). */
xle_status xle_score(xle_model *model, const int32_t *prompt, int n_prompt, const int32_t *target,
                     int n_target, double *logprob, float *per_token, xle_error *err);

/* Deterministic random numbers (splitmix64 + xoshiro256**), no global state. */
typedef struct xle_rng { uint64_t s[4]; } xle_rng;
void xle_rng_seed(xle_rng *rng, uint64_t seed);
uint64_t xle_rng_next(xle_rng *rng);
double xle_rng_uniform(xle_rng *rng);   /* [0, 1) */
float xle_rng_normal(xle_rng *rng);

/* ---------------------------------------------------------------------------------------------
 * Tokenizers (src/tokenizer/): SentencePiece-style BPE with byte fallback and byte-level BPE.
 * ------------------------------------------------------------------------------------------- */

typedef struct xle_tokenizer xle_tokenizer;
struct xle_gguf;

/* Loads a tokenizer from tokenizer.json, a llama2.c tokenizer.bin, a tiktoken rank file
 * (tokenizer.model of Llama-3 / qwen.tiktoken) or the metadata of a .gguf file, chosen by
 * content. The caller owns *out (xle_tokenizer_free). */
xle_status xle_tokenizer_load(const char *path, xle_tokenizer **out, xle_error *err);
/* From an already parsed GGUF file's tokenizer.ggml.* keys. */
xle_status xle_tokenizer_from_gguf(const struct xle_gguf *gguf, xle_tokenizer **out,
                                   xle_error *err);
/* llama2.c tokenizer.bin needs the vocabulary size from the checkpoint. */
xle_status xle_tokenizer_load_llama2c(const char *path, int vocab_size, xle_tokenizer **out,
                                      xle_error *err);
void xle_tokenizer_free(xle_tokenizer *tok);

int xle_tokenizer_vocab_size(const xle_tokenizer *tok);
int xle_tokenizer_bos_id(const xle_tokenizer *tok);      /* -1 if none */
int xle_tokenizer_eos_id(const xle_tokenizer *tok);      /* -1 if none */
int xle_tokenizer_adds_bos(const xle_tokenizer *tok);    /* what the model's files say */

/* Encoded text: ids[i] covers bytes [offsets[i], offsets[i] + lengths[i]) of the input (a BOS
 * or other added-without-text token has length 0). */
typedef struct xle_tokens {
    int32_t *ids;
    int32_t *offsets;
    int32_t *lengths;
    int n;
} xle_tokens;

/* Encodes len bytes of UTF-8 text. add_bos: 1 prepend BOS, 0 never, -1 as the tokenizer's files
 * say. parse_special: match special added tokens in the text. The caller frees *out with
 * xle_tokens_free. */
xle_status xle_tokenize(const xle_tokenizer *tok, const char *text, size_t len, int add_bos,
                        int parse_special, xle_tokens *out, xle_error *err);
void xle_tokens_free(xle_tokens *t);
/* Decodes ids to a new NUL-terminated string (caller frees); skip_special drops BOS/EOS etc. */
char *xle_detokenize(const xle_tokenizer *tok, const int32_t *ids, int n, int skip_special);
/* The raw bytes of one token's piece as the model sees it (e.g. "▁the", "<0x0A>"). */
const char *xle_tokenizer_piece(const xle_tokenizer *tok, int32_t id);

/* Streaming decode: feed ids one at a time; complete UTF-8 text is appended to out (a buffer
 * of cap bytes, NUL-terminated), incomplete trailing bytes are held back. Text that does not
 * fit in cap - 1 bytes stays queued and comes out of the next push or flush: at the end, call
 * xle_detok_stream_flush until it returns 0. Special tokens (BOS, EOS, ...) are skipped; an id
 * outside the vocabulary adds nothing (a push with id -1 only hands out queued text). */
typedef struct xle_detok_stream xle_detok_stream;
xle_detok_stream *xle_detok_stream_new(const xle_tokenizer *tok);
/* Returns the number of bytes written to out (excluding the NUL). */
size_t xle_detok_stream_push(xle_detok_stream *s, int32_t id, char *out, size_t cap);
size_t xle_detok_stream_flush(xle_detok_stream *s, char *out, size_t cap);
void xle_detok_stream_free(xle_detok_stream *s);

/* Chat templates (tokenizer_config.json "chat_template"; docs/tokenizers.md). The common
 * families' published templates (ChatML, Llama-2, Mistral [INST], Llama-3, Gemma) are
 * recognised by their exact text and rendered as Jinja renders them; any other template is
 * refused naming the file. The caller owns *out (xle_chat_template_free). */
typedef struct xle_chat_template xle_chat_template;
typedef struct xle_chat_message {
    const char *role;          /* "system", "user", "assistant" */
    const char *content;
} xle_chat_message;
xle_status xle_chat_template_load(const char *tokenizer_config_path, xle_chat_template **out,
                                  xle_error *err);
const char *xle_chat_template_family(const xle_chat_template *t);   /* "chatml", "llama2", ... */
/* The conversation as the template renders it (with the assistant's header when
 * add_generation_prompt); the template's own errors (roles must alternate, no system role)
 * come back as XLE_ERR_ARG. *out is malloc'd (caller frees). Tokenize it without adding BOS
 * and with special tokens parsed, as transformers' apply_chat_template does. */
xle_status xle_chat_render(const xle_chat_template *t, const xle_chat_message *msgs, int n,
                           int add_generation_prompt, char **out, xle_error *err);
void xle_chat_template_free(xle_chat_template *t);
/* What `score --chat` and `eval --chat` score: *prompt_ids is the prompt rendered as the user's
 * message with the assistant's header, tokenized with no BOS added and special tokens parsed;
 * *answer_ids (when answer is not NULL) the answer tokenized on its own as the assistant's reply
 * (no BOS, special tokens not parsed). An answer with no tokens is XLE_ERR_ARG, as in
 * xle_tokenize_continuation. The caller frees both. */
xle_status xle_chat_tokenize(const struct xle_tokenizer *tok, const xle_chat_template *t,
                             const char *prompt, const char *answer, int32_t **prompt_ids,
                             int *n_prompt, int32_t **answer_ids, int *n_answer, xle_error *err);

/* Text for people (src/core/text_width.c): terminal columns of NUL-terminated UTF-8 text as
 * terminals draw it, so that tables line up in every script: 1 per character (2 for East Asian
 * wide ones), 1 per spacing vowel sign (Mc: ि ா), 0 for non-spacing marks (virama, nukta) and
 * control characters, 1 for an invalid byte: the C library's wcswidth, locale-independent. */
int xle_text_width(const char *s);
/* The byte length of the longest prefix of s that takes at most cols columns and ends between
 * two grapheme clusters (never inside a character or between a consonant and its vowel sign). */
size_t xle_text_fit(const char *s, int cols);
/* s as a table cell of exactly cols columns into out (cap bytes, NUL-terminated): padded with
 * spaces on the right (align_right: on the left), or cut between grapheme clusters and ended
 * with "…" when wider. Returns the bytes written (a cell needs at most strlen(s) + cols + 4). */
size_t xle_text_cell(char *out, size_t cap, const char *s, int cols, int align_right);

/* ---------------------------------------------------------------------------------------------
 * Evaluation cases (src/eval/cases.c, import_*.c, validate.c): the canonical multilingual case
 * format (JSONL, one case per line; docs/case-format.md), importers from published datasets
 * (docs/datasets.md) and the validator that says which cases an editor can use.
 * ------------------------------------------------------------------------------------------- */

#define XLE_LANG_MAX 16 /* a language code is 1..15 bytes of [A-Za-z0-9_-] */

/* A (prompt, answer) pair: a locality or portability probe. Both strings are owned. */
typedef struct xle_qa {
    char *prompt;
    char *answer;
} xle_qa;

/* One language's half of a case. All strings are owned by the case set. */
typedef struct xle_case_lang {
    char lang[XLE_LANG_MAX];
    char *prompt;        /* the edit prompt; never NULL, "" when the source has none */
    char *subject;       /* never NULL; "" when the source has none */
    char *target_new;    /* the new object, no leading space; never NULL */
    char *target_true;   /* the old object; NULL when unknown */
    char **rephrases;    /* n_rephrases generalization prompts */
    int n_rephrases;
    xle_qa *locality;    /* n_locality unrelated facts */
    int n_locality;
    xle_qa *portability; /* n_portability facts that should follow from the edit */
    int n_portability;
} xle_case_lang;

typedef struct xle_case {
    char *id;            /* unique within a set */
    char *source;        /* which importer/dataset made it */
    char *relation;      /* NULL when absent */
    xle_case_lang *langs;
    int n_langs;
} xle_case;

/* A set of cases, in file order. Pointers into cases[] and langs[] stay valid until the next
 * call that adds to or filters the set. */
typedef struct xle_cases {
    xle_case *cases;
    int n;
    int cap;
} xle_cases;

/* An empty set; the caller owns *out (xle_cases_free). */
xle_status xle_cases_new(xle_cases **out, xle_error *err);
void xle_cases_free(xle_cases *cs);
/* Reads a canonical JSONL file with strict checking: a malformed line fails with
 * "FILE:LINE: field: what" (blank lines are skipped). The caller owns *out. */
xle_status xle_cases_load(const char *path, xle_cases **out, xle_error *err);
/* Writes the set as canonical JSONL, atomically (temporary file beside path, then rename).
 * Fails without writing if the set breaks the format (e.g. duplicate ids). */
xle_status xle_cases_write_jsonl(const xle_cases *cs, const char *path, xle_error *err);

/* Builders (used by importers and the data generator). Strings are copied. *out (optional)
 * points into the set and is valid until the next add. relation and target_true may be NULL;
 * prompt, subject and target_new may be "" but not NULL. */
xle_status xle_cases_add(xle_cases *cs, const char *id, const char *source, const char *relation,
                         xle_case **out, xle_error *err);
xle_status xle_case_add_lang(xle_case *c, const char *lang, const char *prompt,
                             const char *subject, const char *target_new,
                             const char *target_true, xle_case_lang **out, xle_error *err);
xle_status xle_case_lang_add_rephrase(xle_case_lang *l, const char *prompt, xle_error *err);
xle_status xle_case_lang_add_locality(xle_case_lang *l, const char *prompt, const char *answer,
                                      xle_error *err);
xle_status xle_case_lang_add_portability(xle_case_lang *l, const char *prompt,
                                         const char *answer, xle_error *err);

/* The half of c in language lang, or NULL. */
const xle_case_lang *xle_case_lang_find(const xle_case *c, const char *lang);
/* Drops every language half not in langs[0..n_langs), then every case left with none. */
xle_status xle_cases_keep_langs(xle_cases *cs, const char *const *langs, int n_langs,
                                xle_error *err);
/* The languages present in the set, in order of first appearance. Writes up to max codes to
 * langs (may be NULL when max is 0) and returns how many there are in all. */
int xle_cases_lang_list(const xle_cases *cs, char (*langs)[XLE_LANG_MAX], int max);

/* Importers. Formats: "bmike53", "mzsre", "bizsre", "zsre", "counterfact", "counterfact-edit",
 * "knowedit" (docs/datasets.md). Files of language-keyed formats are merged into
 * multilingual cases by record index. The caller owns *out. */
xle_status xle_cases_import(const char *format, const char *const *paths, int n_paths,
                            xle_cases **out, xle_error *err);
/* The format names, NULL-terminated (static storage). */
const char *const *xle_import_formats(void);

/* How a subject was found in a prompt; each level accepts everything the previous does. */
typedef enum xle_match {
    XLE_MATCH_NONE = -1,
    XLE_MATCH_EXACT = 0,    /* a literal byte substring */
    XLE_MATCH_CASELESS = 1, /* equal after NFKD + case folding + lumping + whitespace folding */
    XLE_MATCH_STEM = 2      /* word by word, each subject word a near-prefix of a prompt word */
} xle_match;

/* Finds subject in prompt, trying levels up to `loosest`. On success *how is the level that
 * matched and [*start, *end) the matching bytes of prompt (character-aligned); otherwise *how
 * is XLE_MATCH_NONE. Fails only on allocation failure. docs/case-format.md gives the rules. */
xle_status xle_subject_locate(const char *prompt, const char *subject, xle_match loosest,
                              xle_match *how, size_t *start, size_t *end, xle_error *err);

/* Why a language half cannot be edited with a subject-locating method (ROME, MEMIT, ...). The
 * first one that applies, in this order. */
typedef enum xle_case_problem {
    XLE_CASE_USABLE = 0,
    XLE_CASE_NO_PROMPT,              /* prompt empty or only whitespace */
    XLE_CASE_NO_SUBJECT,             /* subject empty or only whitespace */
    XLE_CASE_NO_TARGET,              /* target_new empty or only whitespace */
    XLE_CASE_SUBJECT_NOT_IN_PROMPT,  /* not found at the allowed match level */
    XLE_CASE_PROBLEM_COUNT
} xle_case_problem;

const char *xle_case_problem_name(xle_case_problem p);
/* Checks one half, allowing subject matches up to `loosest`; *how (optional) gets the level. */
xle_status xle_case_lang_check(const xle_case_lang *l, xle_match loosest, xle_case_problem *out,
                               xle_match *how, xle_error *err);

/* Per-language counts. n_problem[XLE_CASE_USABLE] is the number usable with an exact match;
 * the other entries count cases by their first problem under exact matching. Of the
 * subject-not-in-prompt cases, n_caseless are recovered by XLE_MATCH_CASELESS and n_stem more
 * (not recovered by CASELESS) by XLE_MATCH_STEM. */
typedef struct xle_lang_counts {
    char lang[XLE_LANG_MAX];
    int n_cases;
    int n_problem[XLE_CASE_PROBLEM_COUNT];
    int n_caseless;
    int n_stem;
} xle_lang_counts;

typedef struct xle_validation {
    int n_cases;
    xle_lang_counts *langs; /* n_langs entries, in order of first appearance */
    int n_langs;
} xle_validation;

/* Counts usable and unusable cases per language. The caller owns *out (xle_validation_free). */
xle_status xle_cases_validate(const xle_cases *cs, xle_validation **out, xle_error *err);
void xle_validation_free(xle_validation *v);

/* ---------------------------------------------------------------------------------------------
 * Knowledge editing (src/edit/): key statistics, ROME, MEMIT, FT-L, FT-M.
 * Formulas and defaults: docs/editing.md (after EasyEdit's Llama/Mistral settings).
 * ------------------------------------------------------------------------------------------- */

typedef enum xle_edit_method {
    XLE_EDIT_ROME = 0,
    XLE_EDIT_MEMIT,
    XLE_EDIT_FT_L,
    XLE_EDIT_FT_M,
    XLE_EDIT_IKE,         /* in-context editing: evaluation only, no weight change (xledit eval) */
    XLE_EDIT_ALPHAEDIT    /* MEMIT's update projected onto the null space of preserved keys */
} xle_edit_method;

#define XLE_EDIT_MAX_LAYERS 64

/* Callback for progress (done out of total units); return non-zero to interrupt. */
typedef int (*xle_progress_fn)(void *user, int64_t done, int64_t total);

typedef struct xle_edit_hparams {
    xle_edit_method method;
    int layers[XLE_EDIT_MAX_LAYERS];
    int n_layers;
    /* v* / z optimisation (ROME, MEMIT) */
    int v_num_grad_steps;
    float v_lr, v_weight_decay, clamp_norm_factor, kl_factor;
    /* ROME: u = C^-1 k (else u = k); r-ROME: prefix-averaged key and value in the update */
    int mom2_adjustment, rrome;
    /* MEMIT: lambda in (lambda C + K K^T) */
    double mom2_update_weight;
    /* FT-L / FT-M */
    int ft_steps;
    float ft_lr, ft_norm_constraint; /* <= 0: unconstrained */
    /* context templates sampled from the model: per seed text, how many of each length */
    int ctx_lengths[4], ctx_counts[4], n_ctx_lengths;
    uint64_t seed;
    /* IKE: demonstrations before the new fact (EasyEdit's "k") */
    int ike_k;
    /* AlphaEdit: the null space keeps the eigenvectors of the key covariance whose eigenvalue is
     * below nullspace_threshold; L2 is the ridge term of its solve (the reference's names) */
    double nullspace_threshold, alphaedit_l2;
    /* Not hyper-parameters (never read from or written to files): the optional progress of
     * xle_edit_run over its optimisation steps, (steps done, steps in all): ROME
     * v_num_grad_steps per request and layer, MEMIT (and xle_alphaedit_run) v_num_grad_steps for
     * all requests' z together, FT ft_steps; an early stop jumps to the optimisation's end. A non-zero return
     * stops the edit with XLE_ERR_INTERRUPTED. NULL (the defaults): no reports. */
    xle_progress_fn progress;
    void *progress_user;
} xle_edit_hparams;

/* The method's CLI and file name: "rome", "memit", "ft-l", "ft-m", "ike", "alphaedit". */
const char *xle_edit_method_name(xle_edit_method method);
/* The method named by the len bytes at name (one of the names above); 0, or -1 if none. */
int xle_edit_method_parse(const char *name, size_t len, xle_edit_method *out);
/* Defaults for a method on a model of n_layers layers: EasyEdit's Llama-2/Mistral-7B values
 * (ROME layer 5, MEMIT 4..8, FT 21 of 32) with layers scaled as round(l * n_layers / 32). */
void xle_edit_hparams_default(xle_edit_hparams *hp, xle_edit_method method, int n_layers);
/* Defaults for a method on this model: xle_edit_hparams_default for its depth, and MEMIT's λ
 * scaled to its MLP width as λ = 15000 · ffn_dim / 11008 (Llama-2-7B's width), which keeps the
 * balance between λC and K Kᵀ when keys are spread over a narrower or wider space. */
void xle_edit_hparams_for_model(xle_edit_hparams *hp, xle_edit_method method,
                                const xle_config *cfg);
/* Overrides fields from a JSON object (EasyEdit key names); errors name file and key.
 * Same as xle_edit_hparams_load_file(hp, path, NULL, NULL, 0, err). */
xle_status xle_edit_hparams_load_json(xle_edit_hparams *hp, const char *path, xle_error *err);
/* Overrides fields from an EasyEdit hyper-parameter file as EasyEdit publishes it: YAML, or JSON
 * when PATH ends in ".json" (docs/editing.md, "EasyEdit hyper-parameter files"). Its alg_name
 * (and FT's objective_optimization) must be hp->method; module-name templates (rewrite_module_tmp,
 * layer_module_tmp, ...) must name MODEL's modules (Llama-family names when MODEL is NULL); keys
 * that do not change xledit's computation (model_name, device, stats_dir, mom2_n_samples, ...)
 * are accepted and listed, comma-separated, in NOTE (optional, NOTE_SIZE bytes; "" when none);
 * any other key is an error naming file and key. On error hp is unchanged. */
xle_status xle_edit_hparams_load_file(xle_edit_hparams *hp, const char *path, const xle_model *model,
                                      char *note, size_t note_size, xle_error *err);
/* Whether the method needs key statistics E[k kᵀ] of its layers: MEMIT always, ROME when it
 * whitens its key with C⁻¹ (mom2_adjustment). */
int xle_edit_hparams_need_stats(const xle_edit_hparams *hp);
/* The layers whose statistics the n methods of hps need, ascending and without repeats, into
 * out (room for n * XLE_EDIT_MAX_LAYERS); returns their count. */
int xle_edit_stats_layers(const xle_edit_hparams *hps, int n, int *out);
/* The hyperparameters a model asks for: xle_edit_hparams_for_model, then the overrides its
 * folder carries in MODEL_PATH/edit-hparams/<method>.json when MODEL_PATH is a directory holding
 * that file (the built-in model does: docs/editing.md, "Per-model hyperparameters"). *used_file
 * (optional) is set to 1 when such a file was applied. A GGUF or llama2.c file has no folder:
 * the defaults alone. */
xle_status xle_edit_hparams_for_model_path(xle_edit_hparams *hp, xle_edit_method method,
                                           xle_model *model, const char *model_path,
                                           int *used_file, xle_error *err);

/* A prompt as token ids with the position of the subject's last token ("fact token"). */
typedef struct xle_edit_prompt {
    int32_t *ids;
    int n;
    int fact_idx;
    int group;            /* MEMIT key averaging: 0 = the bare prompt, 1 = with a sampled prefix */
} xle_edit_prompt;

/* One edit request in tokens: prompts[0] is the bare prompt, the others carry context
 * prefixes; kl is "<subject> is a" for the KL term; target are the new object's ids. */
typedef struct xle_edit_request_tok {
    xle_edit_prompt *prompts;
    int n_prompts;
    xle_edit_prompt kl;
    int32_t *target;
    int n_target;
} xle_edit_request_tok;

/* A weight change of one layer's down projection: W[d, f] += left[d, rank] · right[f, rank]ᵀ,
 * or W += dense[d, f] when rank == 0. */
typedef struct xle_layer_delta {
    int layer, rank, rows, cols;
    float *left, *right, *dense;
} xle_layer_delta;

typedef struct xle_edit_result {
    xle_layer_delta *deltas;
    int n_deltas;
    double final_loss;    /* of the v* or z or fine-tuning objective, last request */
    int steps;            /* optimisation steps taken, last request */
} xle_edit_result;

void xle_edit_result_free(xle_edit_result *r);

/* Second-moment statistics E[k kᵀ] of one layer's down-projection input. */
typedef struct xle_layer_stats {
    int layer, dim;
    int64_t count;        /* keys accumulated */
    double *sum;          /* dim x dim, Σ k kᵀ (divide by count for the moment) */
} xle_layer_stats;

void xle_layer_stats_free(xle_layer_stats *s);

/* The processes of one job that share a statistics pass or an evaluation run (docs/scale.md).
 * The library never starts processes or links a message library: the caller supplies this
 * transport (the xledit tool builds it on MPI, src/cli/mpi.c). Process 0 leads: it alone writes
 * files; the others read the same folders. Every function returns 0 on success. Only one
 * thread of a process uses the transport at a time, but on process 0 of an evaluation that is a
 * helper thread (the main thread runs units), so the transport must allow it (MPI: at least
 * MPI_THREAD_SERIALIZED). */
typedef struct xle_comm {
    int rank, size;
    void *user;
    /* n bytes to process dest (blocking until they are handed over). */
    int (*send)(void *user, int dest, const void *data, size_t n);
    /* The next message from any process: *source, and *data (malloc'd, caller frees) of *n
     * bytes. Waits without spinning a core. */
    int (*recv)(void *user, int *source, char **data, size_t *n);
    /* n bytes of process 0's data to every process (collective). */
    int (*bcast)(void *user, void *data, size_t n);
    /* Element-wise sum of every process's n doubles into process 0's data; the others' data
     * is left as it was (collective). */
    int (*sum_f64)(void *user, double *data, size_t n);
} xle_comm;

/* Accumulates Σ k kᵀ (float64) at the given layers over token sequences (each already
 * truncated), adding to stats[i] for layers[i]. One forward pass serves all layers and stops
 * after the highest. With the model's precision XLE_PRECISION_BF16 the pass uses bf16
 * arithmetic and each batch's Kᵀ K is summed in float32 (faster; the sums move by ~2e-3 and
 * the edits by ~1e-3: docs/editing.md); the default, exact, is float64 throughout. */
xle_status xle_stats_accumulate(xle_model *model, const int *layers, int n_layers,
                                const int32_t *const *seqs, const int *lens, int n_seqs,
                                xle_layer_stats *stats, xle_error *err);

/* Runs one method on token-level requests with the given statistics (one per edited layer,
 * in the order of hp->layers; NULL entries when the method needs none). The model is left
 * unchanged; the deltas are returned in *out (caller frees with xle_edit_result_free). */
xle_status xle_edit_run(xle_model *model, const xle_edit_hparams *hp,
                        const xle_edit_request_tok *reqs, int n_reqs,
                        xle_layer_stats *const *stats, xle_edit_result *out, xle_error *err);

/* Adds (sign = +1) or subtracts (-1) the deltas to the model's weights (made writable f32). */
xle_status xle_edit_apply(xle_model *model, const xle_edit_result *r, int sign, xle_error *err);

/* AlphaEdit (Fang et al. 2025, docs/editing.md): MEMIT's targets z, each layer's update
 * projected onto the null space of the preserved keys, with the keys of earlier edits added to
 * the solve. The state holds, per edited layer (hp->layers), the projection P (from the
 * eigendecomposition of the unedited model's key covariance) and the accumulated Σ k kᵀ of the
 * edits so far. xle_edit_run with XLE_EDIT_ALPHAEDIT builds a fresh state from the statistics
 * for the one call; a sequence of edits keeps one state and calls xle_alphaedit_run. */
typedef struct xle_alphaedit_state xle_alphaedit_state;
/* A new state from the statistics (one per layer of hp->layers), no accumulated keys. */
xle_status xle_alphaedit_state_new(const xle_edit_hparams *hp, xle_layer_stats *const *stats,
                                   xle_alphaedit_state **out, xle_error *err);
/* Reads DIR/alphaedit-state.safetensors, checking its layers and width against hp and model,
 * and its fingerprint against the model's (the state belongs to the model its edits made). */
xle_status xle_alphaedit_state_load(xle_model *model, const xle_edit_hparams *hp, const char *dir,
                                    xle_alphaedit_state **out, xle_error *err);
/* Writes the state to DIR (created if missing) atomically, with model's fingerprint (the model
 * after the edits, which the next call must be given). */
xle_status xle_alphaedit_state_save(xle_model *model, const xle_alphaedit_state *s, const char *dir,
                                    xle_error *err);
/* Layer i of hp->layers: the null space's dimension and the covariance's extreme eigenvalues. */
void xle_alphaedit_state_layer(const xle_alphaedit_state *s, int i, int *null_dim, double *eig_min,
                               double *eig_max);
int xle_alphaedit_state_edits(const xle_alphaedit_state *s); /* requests accumulated so far */
void xle_alphaedit_state_forget_keys(xle_alphaedit_state *s); /* back to no earlier edits */
void xle_alphaedit_state_free(xle_alphaedit_state *s);
/* One batch: the deltas in *out as xle_edit_run; the batch's keys are added to the state. */
xle_status xle_alphaedit_run(xle_model *model, const xle_edit_hparams *hp,
                             const xle_edit_request_tok *reqs, int n_reqs, xle_alphaedit_state *s,
                             xle_edit_result *out, xle_error *err);

/* ---- Text-level editing (src/edit/request.c, context.c, stats_cache.c) ---------------------- */

/* Tokenizes `prompt` followed by " " + `answer` as the model reads them together: *prompt_ids
 * gets encode(prompt) (with BOS as the tokenizer's files say) and *answer_ids the tokens that
 * follow it in encode(prompt + " " + answer). When the joint encoding does not start with the
 * prompt's own tokens (a merge across the boundary), the answer is encoded on its own with a
 * leading space, no BOS, and a lone SentencePiece "▁" token dropped. Used by editing (the
 * target) and by every teacher-forced metric, so both see the same tokens. Caller frees both. */
xle_status xle_tokenize_continuation(const struct xle_tokenizer *tok, const char *prompt,
                                     const char *answer, int32_t **prompt_ids, int *n_prompt,
                                     int32_t **answer_ids, int *n_answer, xle_error *err);

/* One edit request in text. The prompt contains the subject (its first exact occurrence is the
 * one edited) or "{}" in its place; the target is the new object, without a leading space. */
typedef struct xle_edit_request {
    const char *prompt;
    const char *subject;
    const char *target;
} xle_edit_request;

/* Context templates: texts[i] contains "{}" exactly once, where the request prompt goes;
 * texts[0] is always the bare "{}" (editing.md §1.3). */
typedef struct xle_context_templates {
    char **texts;
    int n;
} xle_context_templates;

/* Samples templates from the unedited model as the reference does: seeds "The", "Therefore",
 * "Because", "I", "You"; for each (length, count) of hp->ctx_lengths/ctx_counts, `count`
 * samples per seed of `length` tokens in total (BOS and seed included), top-5 sampling seeded
 * from hp->seed; each sample becomes sample + ". {}" ("{" and "}" in it replaced by spaces).
 * Unlike the reference, a sample equal to an earlier one, or one where the model added nothing
 * but white space after the seed, is dropped: n is at most 1 + the samples asked for. */
xle_status xle_context_templates_sample(xle_model *model, const struct xle_tokenizer *tok,
                                        const xle_edit_hparams *hp, xle_context_templates **out,
                                        xle_error *err);
/* Only the bare "{}" (`--context-templates none`). */
xle_status xle_context_templates_none(xle_context_templates **out, xle_error *err);
/* Reads a file with one template per line (each holding "{}" once; blank lines skipped); the
 * bare "{}" is put first if the file does not start with it. */
xle_status xle_context_templates_load(const char *path, xle_context_templates **out,
                                      xle_error *err);
/* Writes the templates one per line, atomically. */
xle_status xle_context_templates_save(const xle_context_templates *ct, const char *path,
                                      xle_error *err);
void xle_context_templates_free(xle_context_templates *ct);

/* Turns a text request into tokens: one prompt per context template (fact token =
 * len(encode(prefix + subject)) - 1, editing.md §1.2; group 0 for the bare template, 1 for the
 * others), the KL prompt "<subject> is a", and the target (xle_tokenize_continuation).
 * A subject not found in its prompt is XLE_ERR_NOT_FOUND naming the subject and prompt.
 * The caller frees *out with xle_edit_request_tok_free. */
xle_status xle_edit_request_tokenize(const struct xle_tokenizer *tok, const xle_edit_request *req,
                                     const xle_context_templates *ct, xle_edit_request_tok *out,
                                     xle_error *err);
void xle_edit_request_tok_free(xle_edit_request_tok *r);

/* A fingerprint of a model's configuration and weights (64 hex digits + NUL): a hash of the
 * config, every tensor's name, shape and dtype, and samples of every tensor's bytes. Key
 * statistics record it so that a cache made from another model is refused. */
void xle_model_fingerprint(xle_model *model, char out[65]);

/* Key statistics cache: DIR/stats.json (fingerprint, layers, counts, corpus, progress) and one
 * DIR/layer-<L>.f64 per layer (Σ k kᵀ, float64, row-major). */
typedef struct xle_stats_opts {
    const int *layers;
    int n_layers;
    const char *const *corpus;   /* plain text (one document per non-empty line) or JSONL with
                                  * a "text" field, chosen per file by extension */
    int n_corpus;
    int64_t max_tokens;          /* stop after this many tokens (0: whole corpus) */
    int max_len;                 /* truncate each document (0: the model's context length) */
    const char *dir;
    xle_progress_fn progress;    /* optional; return non-zero to interrupt (resumable) */
    void *progress_user;
} xle_stats_opts;

/* Computes (or resumes, or finds complete) the statistics of opts->layers in opts->dir.
 * Interrupted work is checkpointed and resumed; a dir holding another model's statistics is
 * XLE_ERR_ARG. */
xle_status xle_stats_build(xle_model *model, const struct xle_tokenizer *tok,
                           const xle_stats_opts *opts, xle_error *err);
/* The same pass shared by several processes (comm; NULL or size 1: xle_stats_build). Every
 * process calls it with the same options: each reads and tokenizes the whole corpus but runs
 * the model on every size-th batch only; the sums are added on process 0, which alone writes
 * DIR (the same files as one process; the sums equal up to the order of summation). progress
 * is called on process 0; a stop it asks for takes effect at the next checkpoint. */
xle_status xle_stats_build_shared(xle_model *model, const struct xle_tokenizer *tok,
                                  const xle_stats_opts *opts, const xle_comm *comm,
                                  xle_error *err);
/* Loads one layer's complete statistics from dir, checking the model's fingerprint. When dir
 * itself does not serve the layer (no stats.json, other model, incomplete, other layers), its
 * subfolders are searched as a cache of option sets: among those of this model, complete and
 * listing the layer, the one with the most tokens (ties: the first name in byte order). */
xle_status xle_stats_load(xle_model *model, const char *dir, int layer, xle_layer_stats **out,
                          xle_error *err);
/* The subfolder name of opts's option set in a per-model cache, e.g.
 * "layers-0_tokens-100000_3f9a0c12d4e5" (the hash covers layers, corpus paths and sizes, limits),
 * so that statistics made with other options sit beside each other. */
void xle_stats_set_name(const xle_model *model, const xle_stats_opts *opts, char *out, size_t cap);

/* ---- Patches (src/edit/patch.c): an edit as a file ----------------------------------------- */

/* Writes the deltas of r, with the original bytes and value hashes of every down projection
 * they change, to path (a safetensors file, atomically). model must be the unedited model;
 * info_json (may be NULL) is stored as the patch's description (method, requests, ...). */
xle_status xle_patch_write(xle_model *model, const xle_edit_result *r, const char *info_json,
                           const char *path, xle_error *err);

typedef struct xle_patch xle_patch;
xle_status xle_patch_load(const char *path, xle_patch **out, xle_error *err);
void xle_patch_free(xle_patch *p);
const char *xle_patch_info(const xle_patch *p);               /* the info JSON */
const xle_edit_result *xle_patch_deltas(const xle_patch *p);  /* owned by the patch */
/* Adds the deltas; refuses a model whose edited tensors are not the ones the patch was made
 * from (value hash). */
xle_status xle_patch_apply(xle_model *model, const xle_patch *p, xle_error *err);
/* Puts the original bytes (and dtype) back; refuses a model that does not hold exactly the
 * patched values. */
xle_status xle_patch_revert(xle_model *model, const xle_patch *p, xle_error *err);

/* ---------------------------------------------------------------------------------------------
 * Merging (src/merge/): linear, task arithmetic, TIES, DARE-TIES and DARE-linear over models of one
 * architecture (mergekit's definitions), streamed tensor by tensor from the memory-mapped
 * inputs in f32 arithmetic. Formulas, conventions and the vocabulary-extension rule:
 * docs/merging.md.
 * ------------------------------------------------------------------------------------------- */

typedef enum xle_merge_method {
    XLE_MERGE_LINEAR = 0,        /* Σ wᵢ Mᵢ (/ Σ wᵢ when normalized) */
    XLE_MERGE_TASK_ARITHMETIC,   /* B + λ Σ wᵢ (Mᵢ − B) */
    XLE_MERGE_TIES,              /* top-density trim, sign election, disjoint mean */
    XLE_MERGE_DARE_TIES,         /* seeded random drop + 1/density rescale, then TIES election */
    XLE_MERGE_DARE_LINEAR,       /* the same drop and rescale, then task arithmetic (no election) */
    XLE_MERGE_METHOD_COUNT
} xle_merge_method;

/* A per-model parameter that varies over the layers (mergekit's "gradient"): n >= 1 anchor
 * values. Layer l of L takes them interpolated at t = l / (L - 1) (t = 1 when L == 1): with
 * s = t (n - 1), i = floor(s), f = s - i, the value is (1 - f) v[i] + f v[min(i + 1, n - 1)], in
 * double; tensors outside the layers (embeddings, positions, final norm, head) take t = 0, i.e.
 * v[0], as mergekit does (docs/merging.md). n == 0 means "not given". */
typedef struct xle_merge_gradient {
    const double *values;
    int n;
} xle_merge_gradient;

typedef struct xle_merge_opts {
    xle_merge_method method;
    const char *base;              /* the base model; required except for linear */
    const char *const *models;     /* n_models >= 1 model paths (HF folder, .gguf, llama2.c) */
    int n_models;
    const float *weights;          /* n_models weights; NULL: all 1 */
    double density;                /* TIES / DARE-TIES: fraction kept, in (0, 1]; TIES keeps
                                    * max(1, floor(density * N)) of N entries, with density
                                    * read as its shortest decimal (0.7 is 7/10 exactly) */
    const double *densities;       /* optional: one density per model (n_models, mergekit's
                                    * per-model density), in place of density */
    const xle_merge_gradient *weight_gradients;  /* optional, n_models: model i's per-layer
                                    * weights when weight_gradients[i].n > 0 (else weights[i]) */
    const xle_merge_gradient *density_gradients; /* optional, n_models: the same for densities */
    float lambda;                  /* scale of the merged task vector (not used by linear) */
    int normalize;                 /* -1: the method's mergekit default; 0 or 1 */
    uint64_t seed;                 /* DARE-TIES drop mask */
    xle_format out_format;         /* XLE_FORMAT_HF (folder) or XLE_FORMAT_GGUF (file) */
    size_t chunk_elems;            /* elements streamed per step; 0: 4Mi (tests use tiny ones) */
    xle_progress_fn progress;      /* optional: (bytes of input done, total); non-zero stops */
    void *progress_user;
} xle_merge_opts;

/* Defaults: TIES, density 0.2, lambda 1, normalize -1, seed 0, HF output, no weights. */
void xle_merge_opts_default(xle_merge_opts *opts);
/* "linear", "task-arithmetic", "ties", "dare-ties", "dare-linear" (static storage). */
const char *xle_merge_method_name(xle_merge_method method);
/* Parses a method name (also with '_' for '-'); returns 0 if unknown. */
int xle_merge_method_parse(const char *name, xle_merge_method *out);
/* Whether a method normalizes by default (mergekit): linear and TIES yes, the others no. */
int xle_merge_method_normalizes(xle_merge_method method);

/* What a merge did (all counts of tensor data, side files excluded). */
typedef struct xle_merge_stats {
    int n_tensors;                 /* tensors written */
    int out_vocab;                 /* rows of the output embedding */
    int vocab_donor;               /* index into models of the model whose extra rows and
                                    * tokenizer were used; -1 when the vocabulary is not extended */
    uint64_t input_bytes;          /* bytes of input tensors (each input tensor counted once) */
    uint64_t output_bytes;         /* bytes of output tensor data */
    int passes;                    /* most read passes over one tensor (TIES: up to 4) */
} xle_merge_stats;

/* Merges opts->models (onto opts->base) into out_path: an HF folder (config.json,
 * model.safetensors, the tokenizer and other side files) or a GGUF file. Every input is checked
 * first (architecture, sizes, tensors, tokenizer), so a mismatch fails naming the file and the
 * field before anything is written; the output is written under a temporary name beside
 * out_path and renamed at the end (no partial output on failure). Inputs are memory-mapped and
 * released chunk by chunk; memory use is a few chunks, not a model. Results do not depend on
 * the number of OpenMP threads. stats (optional) is filled on success. */
xle_status xle_merge(const xle_merge_opts *opts, const char *out_path, xle_merge_stats *stats,
                     xle_error *err);

/* A mergekit recipe (YAML, or JSON when PATH ends in ".json"; docs/merging.md, "mergekit
 * recipes") read into opts: merge_method, base_model, models[].model and their weight and density
 * (numbers or per-layer value lists: weights, densities, weight_gradients, density_gradients),
 * the global parameters (normalize, lambda, int8_mask, rescale, default weight and density),
 * with mergekit's defaults
 * (weight required, density 1). opts' other fields (seed, out_format, chunk, progress) are kept.
 * Keys accepted without changing the tensors (dtype, int8_mask) are listed in NOTE (optional, ""
 * when none). What xledit cannot merge as mergekit would (slices, filtered values, lists for
 * other parameters, other methods, LoRA, tokenizer_source other than base) is an error naming
 * the file and key; opts is then unchanged. The strings and arrays opts
 * points at are owned by *cfg: free it with xle_merge_config_free after the merge. */
typedef struct xle_merge_config xle_merge_config;
xle_status xle_merge_config_load(const char *path, xle_merge_opts *opts, xle_merge_config **cfg, char *note,
                                 size_t note_size, xle_error *err);
void xle_merge_config_free(xle_merge_config *cfg);

/* ---------------------------------------------------------------------------------------------
 * Evaluation (src/eval/metrics.c, half_eval.c, run.c): what an edit does in every language,
 * ELFI/ELFO runs over a case file with resume, and reports (src/report/). Formulas, run
 * directory layout and resume semantics: docs/evaluation.md.
 * ------------------------------------------------------------------------------------------- */

/* The metrics of one (edit, test language) pair. */
typedef enum xle_metric {
    XLE_METRIC_REL_ACC = 0, /* reliability: teacher-forced token accuracy, prompt -> target_new */
    XLE_METRIC_GEN_ACC,     /* generalization: the same on the rephrases */
    XLE_METRIC_LOC_ACC,     /* locality: post-edit argmax == pre-edit argmax on locality answers */
    XLE_METRIC_PORT_ACC,    /* portability: token accuracy, portability prompt -> its answer */
    XLE_METRIC_EFF_SUCC,    /* efficacy success 1[P(new) > P(true)] on the prompt (needs target_true) */
    XLE_METRIC_EFF_MAG,     /* efficacy magnitude P(new) - P(true) */
    XLE_METRIC_PARA_SUCC,   /* the same two on the rephrases */
    XLE_METRIC_PARA_MAG,
    XLE_METRIC_NBHD_SUCC,   /* neighbourhood success 1[P(true) > P(new)] on the locality prompts */
    XLE_METRIC_NBHD_MAG,    /* P(true) - P(new) there */
    XLE_METRIC_REL_EM,      /* greedy answer to the prompt vs target_new: exact match */
    XLE_METRIC_REL_F1,      /* ... token F1 */
    XLE_METRIC_GEN_EM,      /* the same on the rephrases */
    XLE_METRIC_GEN_F1,
    XLE_METRIC_LOC_EM,      /* post-edit vs pre-edit greedy answer to the locality prompts */
    XLE_METRIC_LOC_F1,
    XLE_METRIC_PORT_EM,     /* greedy answer to the portability prompts vs their answers */
    XLE_METRIC_PORT_F1,
    XLE_METRIC_COUNT
} xle_metric;

/* "rel_acc", "gen_acc", ... (the keys in results files and reports). */
const char *xle_metric_name(xle_metric m);
/* "Reliability (token accuracy)", ... */
const char *xle_metric_title(xle_metric m);
/* The metric called name, or XLE_METRIC_COUNT. */
xle_metric xle_metric_from_name(const char *name);

/* A teacher-forced probe: the model reads prompt then answer, and each answer token is scored
 * at the position before it. With greedy set, n_answer tokens are also decoded greedily from
 * the prompt alone. The arrays are borrowed. */
typedef struct xle_probe {
    const int32_t *prompt;
    int n_prompt;              /* >= 1 */
    const int32_t *answer;
    int n_answer;              /* >= 1 */
    int greedy;
} xle_probe;

typedef struct xle_probe_result {
    int32_t *argmax;           /* n_answer ids: the most likely token at each answer position
                                * given the prompt and the gold answer before it (lowest id on
                                * ties) */
    int n_answer;
    int n_correct;             /* positions where argmax equals the answer token */
    double mean_nll;           /* -(1/n_answer) sum_j log p(answer[j] | prompt, answer[<j]) */
    int32_t *greedy;           /* with greedy: the greedy continuation of the prompt, at most
                                * n_answer ids, cut before an EOS; else NULL */
    int n_greedy;
} xle_probe_result;

/* Runs n probes in packed batches; the batches depend only on the probes, so the numbers are
 * reproducible. eos_id < 0: no EOS. out[0..n) is filled; free with xle_probe_results_free. */
xle_status xle_probes_eval(xle_model *model, const xle_probe *probes, int n, int eos_id,
                           xle_probe_result *out, xle_error *err);
void xle_probe_results_free(xle_probe_result *r, int n);

/* Answer comparison as Bi-ZsRE's evaluate.py does it: exact match of two strings after
 * trimming leading and trailing whitespace; token F1 = harmonic mean of precision and recall of
 * the multiset overlap of two token id sequences (1 when both are empty, 0 when one is). */
int xle_exact_match(const char *pred, const char *gold);
double xle_token_f1(const int32_t *pred, int n_pred, const int32_t *gold, int n_gold);

/* One evaluation run: every case x method x edit language ("unit") is edited, evaluated in
 * every test language, and appended to RUN_DIR/results.jsonl. */
typedef struct xle_eval_opts {
    const char *data_path;              /* canonical cases (JSONL) */
    const char *run_dir;                /* created when missing */
    const xle_edit_hparams *hparams;    /* one per method, fully resolved (method, layers,
                                         * seed, ...); the methods run in this order */
    int n_methods;
    /* Edit languages in order; "all" edits every listed language's half at once (one MEMIT
     * batch; ROME sequentially). NULL: the data's languages, then "all". */
    const char *const *edit_langs;
    int n_edit_langs;
    const char *const *test_langs;      /* NULL: the data's languages */
    int n_test_langs;
    int max_cases;                      /* the first N cases; 0: all */
    int resume;                         /* continue a run in run_dir (same arguments only) */
    const char *stats_dir;              /* key statistics for MEMIT / ROME with mom2_adjustment */
    const char *context_templates;      /* NULL: sampled per method from the model; "none"; or a
                                         * file with one template per line */
    xle_match subject_match;            /* loosest subject match accepted in an edit half */
    /* Called before the first unit and after each one with (finished, total) units; non-zero
     * stops the run cleanly (XLE_ERR_INTERRUPTED; finished units are kept). May be NULL. */
    xle_progress_fn progress;
    void *progress_user;
    /* Several processes (NULL or size 1: this one runs every unit). Every process calls
     * xle_eval_run with the same options; units are handed out one at a time by process 0,
     * which writes every line (docs/scale.md). progress is called on process 0 only. */
    const xle_comm *comm;
    /* Non-zero: every unit edits from scratch, even what an earlier unit of the same case computed
     * on the unedited model (ROME's first request of the "all" unit); the numbers are the
     * same either way (tests and benchmarks compare the two). */
    int no_sharing;
    /* Non-NULL: every test prompt is the user's message in this chat template and every answer
     * the assistant's reply (xle_chat_tokenize); the edits themselves use the plain prompts. */
    const xle_chat_template *chat;
} xle_eval_opts;

typedef struct xle_eval_summary {
    int n_cases;                        /* cases evaluated (after max_cases) */
    int64_t n_units;                    /* cases x methods x edit languages */
    int64_t n_resumed;                  /* units found finished in run_dir */
    int64_t n_done;                     /* units run now */
    int64_t n_skipped;                  /* of all units, those skipped (unusable edit half) */
    int64_t n_failed;                   /* of all units, those whose edit failed numerically */
} xle_eval_summary;

/* Sequential (lifelong) evaluation, docs/evaluation.md: per method and edit language, the
 * cases' edits are made one after another in case order and KEPT; after checkpoints[i] edits,
 * every edit so far is evaluated in every test language (the metrics averaged over the edited
 * cases), with the held-out cases' answers compared with the unedited model's and the
 * perplexity of a fixed text. RUN_DIR/sequential.jsonl gets one line per checkpoint;
 * RUN_DIR/sequential/ keeps the edited weights at the last checkpoint of each (method, edit
 * language), so --resume continues from there and writes the same lines. */
typedef struct xle_sequential_opts {
    const int *checkpoints;             /* ascending numbers of edits, >= 1 */
    int n_checkpoints;
    int held_out;                       /* the last N of the cases are never edited */
    const char *fluency_text;           /* perplexity over its lines; NULL: none */
} xle_sequential_opts;

/* Runs it with o's data, run directory, methods, languages (no "all"), statistics, templates,
 * resume and progress (counted in edits; comm must be NULL or of size 1). */
xle_status xle_eval_sequential(xle_model *model, const xle_eval_opts *o, const xle_sequential_opts *so,
                               xle_eval_summary *sum, xle_error *err);

/* Runs (or resumes) an evaluation on model, whose tokenizer must be present. The model is
 * edited with temporary weight swaps and checked to be bitwise unchanged after every unit.
 * sum (optional) gets the counts. */
xle_status xle_eval_run(xle_model *model, const xle_eval_opts *opts, xle_eval_summary *sum,
                        xle_error *err);

/* ---- Reports (src/report/) ------------------------------------------------------------------ */

typedef struct xle_report xle_report;

typedef enum xle_report_format {
    XLE_REPORT_TEXT = 0,
    XLE_REPORT_MD,
    XLE_REPORT_CSV,
    XLE_REPORT_JSON,
    XLE_REPORT_HTML,
    XLE_REPORT_FORMAT_COUNT
} xle_report_format;

/* Reads RUN_DIR (run.json, results.jsonl, pre.jsonl) and aggregates it: for every method and
 * metric, the mean over units of each (edit language, test language) cell. A torn last line
 * is ignored. The caller owns *out (xle_report_free). */
xle_status xle_report_load(const char *run_dir, xle_report **out, xle_error *err);
void xle_report_free(xle_report *r);
/* "txt", "md", "csv", "json", "html". */
const char *xle_report_format_ext(xle_report_format f);
/* Renders the report; *out is a NUL-terminated malloc'd buffer of *len bytes (caller frees). */
xle_status xle_report_render(const xle_report *r, xle_report_format f, char **out, size_t *len,
                             xle_error *err);
/* RUN_DIR in EasyEdit's metrics shape (docs/evaluation.md, "EasyEdit format"): one JSON object
 * whose key "METHOD/EDIT_LANG/TEST_LANG" holds the list EasyEdit's summary_metrics reads, one
 * record per edited case: {case_id, requested_rewrite, pre, post} with rewrite_acc,
 * rephrase_acc, locality and portability. *out as for xle_report_render. */
xle_status xle_report_render_easyedit(const char *run_dir, char **out, size_t *len, xle_error *err);

/* ---------------------------------------------------------------------------------------------
 * Training (src/train/): a byte-fallback BPE tokenizer and a small Llama-family model learned
 * from a plain-text corpus (one document per line). Recipe and formats: docs/training.md.
 * ------------------------------------------------------------------------------------------- */

typedef struct xle_bpe_train_opts {
    int vocab_size;      /* total tokens, special and byte tokens included */
    int min_char_count;  /* characters seen fewer times fall back to byte tokens */
} xle_bpe_train_opts;

/* vocab_size 4000, min_char_count 2. */
void xle_bpe_train_opts_default(xle_bpe_train_opts *opts);

/* A learned vocabulary: pieces[id] ("▁the", "<0x0A>"), scores[id]; merges[r] = {left, right,
 * result} ids of the merge of rank r. */
typedef struct xle_bpe_vocab {
    char **pieces;
    float *scores;
    int n;
    int32_t (*merges)[3];
    int n_merges, cap_merges;
    int n_chars;          /* single characters in the vocabulary */
    int n_chars_seen;     /* distinct characters in the corpus */
    int n_word_types;     /* distinct words */
    int64_t n_words;      /* words in all */
    int64_t n_bytes;      /* bytes of text read */
} xle_bpe_vocab;

/* Learns a vocabulary from text (lines are documents). The caller owns *out (free with
 * xle_bpe_vocab_free). The vocabulary is smaller than asked when the corpus runs out of pairs. */
xle_status xle_bpe_train_text(const char *text, size_t len, const xle_bpe_train_opts *opts,
                              xle_bpe_vocab **out, xle_error *err);
/* The same over the concatenation of files (each file's lines). */
xle_status xle_bpe_train_files(const char *const *paths, int n_paths, const xle_bpe_train_opts *opts,
                               xle_bpe_vocab **out, xle_error *err);
void xle_bpe_vocab_free(xle_bpe_vocab *vocab);
/* Writes path (a Hugging Face tokenizer.json, Llama-2 layout) and tokenizer_config.json beside
 * it, each atomically. */
xle_status xle_bpe_save_hf(const xle_bpe_vocab *vocab, const char *path, xle_error *err);

/* A new model with owned f32 weights initialised from seed (N(0, init_std), residual output
 * projections scaled by 1/sqrt(2 n_layers), norms 1). format is XLE_FORMAT_HF with no source
 * files: xle_model_save cannot write it; training writes it with xle_train_export_hf. The
 * caller owns *out. */
xle_status xle_model_new(const xle_config *cfg, uint64_t seed, float init_std, xle_model **out,
                         xle_error *err);

/* Training hyperparameters: the model's shape and the optimisation (train config JSON keys
 * are the field names; docs/training.md). */
typedef struct xle_train_hparams {
    /* model */
    int dim, n_layers, n_heads, n_kv_heads, ffn_dim, max_seq_len, tied_embeddings;
    float norm_eps, rope_theta, init_std;
    /* optimisation */
    int64_t steps;
    int batch_tokens;     /* tokens per step (whole documents packed up to this many) */
    float lr, min_lr;     /* peak and final learning rate */
    int warmup_steps;     /* linear warmup from 0, then cosine decay to min_lr at `steps` */
    float weight_decay, beta1, beta2, adam_eps, grad_clip; /* grad_clip <= 0: none */
    int checkpoint_every; /* steps between checkpoints (0: only at the end) */
    uint64_t seed;
    int save_bf16;        /* write model.safetensors as BF16 (else F32) */
} xle_train_hparams;

void xle_train_hparams_default(xle_train_hparams *hp);
/* Overrides fields from a JSON object; unknown keys and bad values fail naming file and key. */
xle_status xle_train_hparams_load_json(xle_train_hparams *hp, const char *path, xle_error *err);
/* Sets the shape fields (dim, n_layers, n_heads, n_kv_heads, ffn_dim, max_seq_len,
 * tied_embeddings, norm_eps, rope_theta) from a model's configuration, for training --init. */
void xle_train_hparams_from_config(xle_train_hparams *hp, const xle_config *cfg);
/* Checks ranges and consistency (heads divide, head_dim even, ...). */
xle_status xle_train_hparams_validate(const xle_train_hparams *hp, const char *source,
                                      xle_error *err);
/* The learning rate at a step (0-based): linear warmup to lr over warmup_steps, then cosine
 * decay to min_lr at steps. */
float xle_train_lr(const xle_train_hparams *hp, int64_t step);

typedef struct xle_train_progress {
    int64_t step, steps;   /* steps done, steps in all */
    double loss, lr, grad_norm;
    double tokens_per_s;   /* of this run (since start or resume) */
    double elapsed_s, eta_s;
    double epoch;          /* epochs done (fractional) */
    int64_t epoch_tokens;  /* predicted tokens in one pass over the corpus */
    int64_t n_docs;        /* documents (non-empty lines) in the corpus */
} xle_train_progress;

/* Called after every step; return non-zero to stop (a checkpoint is written first). */
typedef int (*xle_train_progress_fn)(void *user, const xle_train_progress *p);

typedef struct xle_train_opts {
    const char *corpus;          /* text, one document per line */
    const char *tokenizer;       /* tokenizer.json (tokenizer_config.json beside it is copied) */
    const char *out_dir;         /* created if needed */
    int resume;                  /* continue from out_dir/checkpoint/state.ckpt */
    xle_train_progress_fn progress;
    void *progress_user;
    /* NULL: random init. Else a model (HF folder) whose weights start the run (fine-tuning;
     * the optimizer starts fresh): its architecture must be the hyperparameters' shape (see
     * xle_train_hparams_from_config) and its vocabulary the tokenizer's. */
    const char *init;
} xle_train_opts;

/* Trains a model from scratch (or resumes) and writes out_dir: config.json, model.safetensors,
 * tokenizer.json, tokenizer_config.json, generation_config.json (a Hugging Face folder),
 * train_config.json, train_log.tsv (step, lr, loss, grad_norm, tokens, seconds) and
 * checkpoint/state.ckpt. Deterministic for given inputs, seed and thread count; a resumed run
 * ends with the same weights as an uninterrupted one. Interrupted by the progress callback:
 * XLE_ERR_INTERRUPTED after the checkpoint is written. */
xle_status xle_train(const xle_train_hparams *hp, const xle_train_opts *opts, xle_error *err);

/* Writes model as a Hugging Face folder dir (config.json with every standard Llama key,
 * model.safetensors as F32 or BF16, generation_config.json, and tokenizer.json +
 * tokenizer_config.json copied from beside tokenizer_json when given), each file atomically. */
xle_status xle_train_export_hf(const xle_model *model, const char *tokenizer_json, int bf16,
                               const char *dir, xle_error *err);

/* Whether model knows a fact: the text of its greedy continuation of prompt starts with object
 * followed by a word boundary (end, whitespace, punctuation, symbol). *recalled is 1 or 0. */
xle_status xle_fact_recalled(xle_model *model, const struct xle_tokenizer *tok, const char *prompt,
                             const char *object, int *recalled, xle_error *err);

/* A greedy answer shown whole (src/eval/answer.c): the greedy continuation of prompt, n_min
 * tokens at least (a target's length: what the metrics compare, which stay token-level), then
 * on until the word ends: the text that follows starts with white space, punctuation or a
 * symbol, or generation stopped at EOS; never inside a character or a grapheme cluster. At
 * most n_max tokens. ids (room for n_max) gets the tokens generated (EOS included), *n_ids
 * those kept; *text (malloc'd, caller frees) is their decoded text, special tokens skipped. */
xle_status xle_answer_whole(xle_model *model, const struct xle_tokenizer *tok, const int32_t *prompt,
                            int n_prompt, int n_min, int n_max, int32_t *ids, int *n_ids,
                            char **text, xle_error *err);

/* ---------------------------------------------------------------------------------------------
 * Built-in fact world (src/world/): the multilingual facts xledit's own small model is trained
 * on (the JSON files in data/world: real countries and cities, fictional people and organisations, 8
 * languages; docs/world.md), rendered into a training corpus, the list of facts the model should
 * know, and counterfactual evaluation cases in the canonical case format.
 * ------------------------------------------------------------------------------------------- */

typedef struct xle_world xle_world;

/* Loads dir/world.json and the files it names, checking everything (every entity named in
 * every language, template rules, fact types, two-hop chains, no prompt with two answers). A
 * problem fails with one line "FILE: where: what". The caller owns *out (xle_world_free). */
xle_status xle_world_load(const char *dir, xle_world **out, xle_error *err);
void xle_world_free(xle_world *w);

#define XLE_WORLD_MAX_LANGS 16

typedef struct xle_world_counts {
    int n_langs, n_entities, n_subjects, n_relations, n_facts, n_two_hop;
    int n_train_templates, n_heldout_templates; /* summed over relations and languages */
    char langs[XLE_WORLD_MAX_LANGS][XLE_LANG_MAX];
} xle_world_counts;
void xle_world_get_counts(const xle_world *w, xle_world_counts *out);

typedef struct xle_world_corpus_stats {
    long n_lines;                           /* lines written (all copies) */
    long n_sentences;                       /* fact sentences in one copy */
    long n_name_lines;                      /* entity name lines in one copy */
    long n_sentences_lang[XLE_WORLD_MAX_LANGS]; /* fact sentences in one copy, per language */
} xle_world_corpus_stats;

/* Writes the training corpus to path atomically, one sentence per line: every fact in every
 * language with every training template, plus one line per entity listing its names in all
 * languages. The lines are shuffled (seeded); copies > 1 appends that many differently
 * shuffled copies. stats (optional) gets the counts. */
xle_status xle_world_write_corpus(const xle_world *w, const char *path, uint64_t seed, int copies,
                                  xle_world_corpus_stats *stats, xle_error *err);

/* One fact in one language with one training template, as the world renders it. The strings
 * are valid only during the callback. */
typedef struct xle_world_fact_text {
    const char *lang, *relation, *subject_id;
    int template_index;
    const char *subject, *prompt, *object;   /* prompt ends where " " + object would follow */
} xle_world_fact_text;

/* Calls fn for every (fact, language, training template) in order (facts, then languages,
 * then templates); a non-zero return from fn stops the walk (XLE_OK). */
typedef int (*xle_world_fact_fn)(void *user, const xle_world_fact_text *fact);
xle_status xle_world_facts(const xle_world *w, xle_world_fact_fn fn, void *user, xle_error *err);

/* Writes every (fact, language, training template) as one JSONL line {"lang", "relation",
 * "subject_id", "template", "subject", "prompt", "object"} to path atomically. *n_written
 * (optional) gets the number of lines. */
xle_status xle_world_write_facts(const xle_world *w, const char *path, long *n_written,
                                 xle_error *err);

/* Makes n counterfactual cases (seeded): each edits one fact whose relation starts a two-hop
 * chain to another object of the same relation, in every language, with a training-template
 * prompt, held-out rephrases, 3 locality facts of other subjects and the two-hop portability
 * questions answered from the new object. Fails with XLE_ERR_ARG when fewer than n facts can be
 * edited. The caller owns *out (xle_cases_free). */
xle_status xle_world_make_cases(const xle_world *w, int n, uint64_t seed, xle_cases **out,
                                xle_error *err);

/* ---- Causal tracing (src/trace/trace.c; docs/tracing.md) ------------------------------------
 * ROME's corrupted-subject restoration (Meng et al. 2022): the subject's token embeddings get
 * Gaussian noise, and the probability of the target at the last position is measured with one
 * state of the clean run restored at a (token, layer): the residual stream after the layer
 * (hidden), or the output of the MLP or of attention over a window of layers centred on it.
 * ------------------------------------------------------------------------------------------- */

typedef enum xle_trace_kind { XLE_TRACE_HIDDEN = 0, XLE_TRACE_MLP, XLE_TRACE_ATTN, XLE_TRACE_KINDS } xle_trace_kind;
const char *xle_trace_kind_name(xle_trace_kind kind); /* "hidden", "mlp", "attn" */

typedef struct xle_trace_opts {
    int samples;          /* corrupted copies averaged (ROME: 10) */
    double noise_level;   /* standard deviation of the noise (ROME: 3 x the subject embeddings') */
    uint64_t seed;        /* draws the noise when noise is NULL */
    const float *noise;   /* NULL, or [samples][subject tokens][dim] unit-variance draws, scaled by
                           * noise_level (the same noise for every restoration, as ROME) */
    int window;           /* MLP / attention: layers [l - window/2, l + ceil(window/2)) restored
                           * together (ROME: 10) */
    int32_t target;       /* the token scored; < 0: the clean run's top token */
} xle_trace_opts;
void xle_trace_opts_default(xle_trace_opts *o); /* samples 10, window 10, seed 1, target -1 */

typedef struct xle_trace_result {
    int n_tokens, n_layers;
    int32_t target;
    double p_clean, p_corrupt;           /* p(target): clean run; corrupted, nothing restored */
    double *scores[XLE_TRACE_KINDS];     /* [n_tokens x n_layers] p(target) with the state restored */
} xle_trace_result;
void xle_trace_result_free(xle_trace_result *r);

/* Traces tokens[0..n) (BOS included as the model reads them) with the subject at tokens
 * [subject_begin, subject_end). The model is not changed; it runs in exact precision. */
xle_status xle_trace(xle_model *model, const int32_t *tokens, int n, int subject_begin, int subject_end,
                     const xle_trace_opts *opts, xle_trace_result *out, xle_error *err);

/* The standard deviation of all elements of the embedding rows of ids[0..n) (ROME's noise is
 * 3 x this over the subjects traced). */
xle_status xle_embedding_std(xle_model *model, const int32_t *ids, int n, double *std, xle_error *err);

/* The tokens of prompt (with BOS as the tokenizer's files say) and the token range
 * [*begin, *end) of the tokens that overlap the subject (ROME's find_token_range; the subject
 * found as xle_subject_locate does, up to XLE_MATCH_STEM). XLE_ERR_NOT_FOUND when it is not. */
xle_status xle_trace_tokens(const xle_tokenizer *tok, const char *prompt, const char *subject, xle_tokens *out,
                            int *begin, int *end, xle_error *err);

/* One fact to trace: the subject must be in the prompt; target NULL: the model's top token. */
typedef struct xle_trace_fact {
    const char *lang, *prompt, *subject, *target;
} xle_trace_fact;

/* Traces facts[0..n) (e.g. one fact in every language) and writes OUT_DIR/trace.json and
 * OUT_DIR/trace.svg (heatmaps: a column per fact, a row per kind), each atomically. The noise
 * level is opts->noise_level when positive, else noise_scale x the standard deviation of all
 * the facts' subject-token embeddings (one level for all, so languages compare). A fact whose
 * subject is not found is listed as skipped. progress (may be NULL) is called after each fact. */
xle_status xle_trace_facts(xle_model *model, const xle_trace_fact *facts, int n, const xle_trace_opts *opts,
                           double noise_scale, const char *out_dir, xle_progress_fn progress, void *user,
                           xle_error *err);

/* Over the first max_cases (0: all) cases of a case file, in each of langs[0..n_langs) (NULL:
 * every language of the file): the mean indirect effect (score - p_corrupt) per kind and layer
 * at the subject's last token and at the last token, per language, of the model's own answer.
 * Writes OUT_DIR/summary.json and OUT_DIR/summary.svg (one line per language), atomically. */
xle_status xle_trace_cases(xle_model *model, const char *cases_path, const char *const *langs, int n_langs,
                           int max_cases, const xle_trace_opts *opts, double noise_scale, const char *out_dir,
                           xle_progress_fn progress, void *user, xle_error *err);

#if defined(__GNUC__) && !defined(_WIN32)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif
#endif /* XLEDIT_H */
