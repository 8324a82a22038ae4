/*
 * ops.h: the engine's tensor operations, each forward beside its backward (llm.c style:
 * outputs first, then inputs, then sizes). Activations are f32 row-major [T, width];
 * weights are xle_tensor views in their stored dtype. Backward functions ACCUMULATE (+=) into
 * their gradient outputs; a NULL gradient output is skipped.
 */
#ifndef XLE_OPS_H
#define XLE_OPS_H

#include "xledit.h"

/* Below this many multiply-adds (or elements) a loop runs on one thread. A parallel region
 * costs a few microseconds on idle cores but 10-100 us when the cores are shared with other
 * processes (the second thread has to be woken and scheduled), so a region must hold about
 * 20-100 us of one thread's work to pay: 2^20 multiply-adds. Measured (docs/performance.md,
 * "Threads on busy cores"): at 32768 the built-in model generated at 0.6-0.9x with two threads
 * beside two busy processes; at 2^20 its generation runs on one thread, and the 1B model's
 * products (2-50 M multiply-adds each) still split. */
#define XLE_PAR_MIN_WORK (1 << 20)

/* Below this many multiply-adds a blocked product (prompts, backward, statistics: gemm.h,
 * quant_gemm.h) runs on one thread. Such a product is one parallel region that ends when the
 * second thread has arrived; beside other CPU-bound processes that thread is often waiting for
 * its core, ~170 us per region here. Measured with a busy process pinned on each core
 * (docs/performance.md, "Threads on busy cores"): products of 2.8-22 M multiply-adds ran at
 * 0.5-0.87x with two threads, 45 M at 0.96-1.13x, the 1B model's 67-268 M at 0.98-1.66x. On
 * idle cores the smaller ones would split with profit; the built-in model's prompt products
 * (4-22 M) stay on one thread for it. */
#define XLE_PAR_MIN_PRODUCT (1 << 25)

/* Floats of scratch a weight matmul may use to convert a block of bf16/f16 rows to f32. */
#define XLE_MATMUL_SCRATCH (1u << 21)

/* out[T, n_out] = in[T, n_in] · Wᵀ (+ bias), W is [n_out, n_in] of any dtype. With
 * XLE_PRECISION_BF16, products with bf16 weights round `in` to bf16 (on CPUs with AVX512-BF16;
 * elsewhere they stay exact). */
void xle_matmul_forward(float *out, const float *in, const xle_tensor *w, const xle_tensor *bias,
                        int T, float *scratch, xle_precision prec);
/* Several products of the same input: outs[i][T, n_out_i] = in · ws[i]ᵀ (+ biases[i]; biases
 * may be NULL). For few rows the n products share one parallel pass (one barrier). */
void xle_matmul_forward_many(float *const *outs, const float *in, const xle_tensor *const *ws,
                             const xle_tensor *const *biases, int n, int T, float *scratch,
                             xle_precision prec);
/* din[T, n_in] += dout · W;  dw[n_out, n_in] += doutᵀ · in;  dbias[n_out] += Σ_t dout. */
void xle_matmul_backward(float *din, float *dw, float *dbias, const float *dout, const float *in,
                         const xle_tensor *w, int T, float *scratch);

/* out = x / rms(x) * weight per row; rstd[T] keeps 1/rms for the backward. */
void xle_rmsnorm_forward(float *out, float *rstd, const float *x, const xle_tensor *weight, int T,
                         int d, float eps);
void xle_rmsnorm_backward(float *dx, float *dweight, const float *dout, const float *x,
                          const xle_tensor *weight, const float *rstd, int T, int d);
/* The same scaling by (w_offset + weight) (Gemma's RMSNorm: w_offset 1). */
void xle_rmsnorm_offset_forward(float *out, float *rstd, const float *x, const xle_tensor *weight,
                                float w_offset, int T, int d, float eps);
void xle_rmsnorm_offset_backward(float *dx, float *dweight, const float *dout, const float *x,
                                 const xle_tensor *weight, float w_offset, const float *rstd, int T,
                                 int d);

/* LayerNorm with bias (GPT-2, GPT-J, BLOOM): out = (x - mean) * rstd * weight + bias per row,
 * with the biased variance; rstd[T] keeps 1/sqrt(var + eps) for the backward (which recomputes
 * the mean from x). bias may have data == NULL. */
void xle_layernorm_forward(float *out, float *rstd, const float *x, const xle_tensor *weight,
                           const xle_tensor *bias, int T, int d, float eps);
void xle_layernorm_backward(float *dx, float *dweight, float *dbias, const float *dout,
                            const float *x, const xle_tensor *weight, const float *rstd, int T,
                            int d);

/* Rotary embedding of x [T, n_heads * hd] in place; pos[T] are positions, inv_freq[hd/2]. */
void xle_rope_forward(float *x, const int *pos, const double *inv_freq, int T, int n_heads,
                      int hd, int interleaved);
/* The inverse rotation applied to the gradient in place. */
void xle_rope_backward(float *dx, const int *pos, const double *inv_freq, int T, int n_heads,
                       int hd, int interleaved);
/* The same on the first rot_dim dims of each head only (GPT-J's rotary_dim); inv_freq[rot_dim/2];
 * the rest of the head passes through. */
void xle_rope_partial_forward(float *x, const int *pos, const double *inv_freq, int T, int n_heads,
                              int hd, int rot_dim, int interleaved);
void xle_rope_partial_backward(float *dx, const int *pos, const double *inv_freq, int T,
                               int n_heads, int hd, int rot_dim, int interleaved);

/* key = silu(gate) * up, all [T, f]. */
void xle_swiglu_forward(float *key, const float *gate, const float *up, int64_t n);
void xle_swiglu_backward(float *dgate, float *dup, const float *dkey, const float *gate,
                         const float *up, int64_t n);

/* key = gelu_tanh(pre) = 0.5 pre (1 + tanh(sqrt(2/pi) (pre + 0.044715 pre^3))), all [T, f]:
 * GPT-2's gelu_new, GPT-J's, BLOOM's bloom_gelu and Gemma's gelu_pytorch_tanh. */
void xle_gelu_tanh_forward(float *key, const float *pre, int64_t n);
void xle_gelu_tanh_backward(float *dpre, const float *dkey, const float *pre, int64_t n);

/* key = gelu_tanh(gate) * up, all [T, f] (Gemma's GeGLU). */
void xle_geglu_forward(float *key, const float *gate, const float *up, int64_t n);
void xle_geglu_backward(float *dgate, float *dup, const float *dkey, const float *gate,
                        const float *up, int64_t n);

/* Soft-capping in place: x = cap · tanh(x / cap) (Gemma-2's final logits). The backward scales
 * dx in place by 1 - (y / cap)², y the capped values. */
void xle_softcap_forward(float *x, float cap, int64_t n);
void xle_softcap_backward(float *dx, const float *y, float cap, int64_t n);

/* Causal grouped-query attention of one sequence of n new queries whose keys are
 * k/v[0 .. n_past + n) (row stride kv_stride floats): query i sits at position n_past + i and
 * sees key positions p with p <= n_past + i and (window == 0 || n_past + i - p < window).
 * q, out: [n, H*hd]; probs (optional, n x (n_past+n) per head, head-major) keeps the softmax. */
void xle_attention_forward(float *out, float *probs, const float *q, const float *k,
                           const float *v, int n, int n_past, int kv_stride, int n_heads,
                           int n_kv_heads, int hd, int window);
/* Backward of one sequence without past keys (n_past == 0); dq/dk/dv accumulate. */
void xle_attention_backward(float *dq, float *dk, float *dv, const float *dout,
                            const float *probs, const float *q, const float *k, const float *v,
                            int n, int n_heads, int n_kv_heads, int hd);
/* The attention above with the scores scaled by `scale` (the others use 1/√hd) and, when cap > 0,
 * soft-capped cap · tanh(s / cap) before the mask (Gemma-2); the backward recomputes the raw
 * scores from q and k for the cap's derivative. */
void xle_attention_forward_scaled(float *out, float *probs, const float *q, const float *k,
                                  const float *v, int n, int n_past, int kv_stride, int n_heads,
                                  int n_kv_heads, int hd, int window, float scale, float cap);
/* The same with ALiBi (BLOOM) when slopes != NULL: head h's score of key position p for query
 * position t gains slopes[h]·(p − t) after scaling (the softmax cannot tell it from
 * transformers' slopes[h]·p); the backward is the one above (the bias is constant). */
void xle_attention_forward_alibi(float *out, float *probs, const float *q, const float *k,
                                 const float *v, int n, int n_past, int kv_stride, int n_heads,
                                 int n_kv_heads, int hd, int window, float scale, float cap,
                                 const float *slopes);
/* ALiBi's slope of each of n_heads heads (transformers' build_alibi_tensor), into slopes[n_heads]. */
void xle_alibi_slopes(int n_heads, float *slopes);
void xle_attention_backward_scaled(float *dq, float *dk, float *dv, const float *dout,
                                   const float *probs, const float *q, const float *k,
                                   const float *v, int n, int n_past, int n_heads, int n_kv_heads,
                                   int hd, float scale, float cap);
/* The same for n queries after n_past earlier keys (the forward's probs layout, n x
 * (n_past + n) per head): k/v/dk/dv hold all n_past + n rows; dq holds the n queries'. */
void xle_attention_backward_past(float *dq, float *dk, float *dv, const float *dout,
                                 const float *probs, const float *q, const float *k, const float *v,
                                 int n, int n_past, int n_heads, int n_kv_heads, int hd);

/* Dot product of an f32 vector with a stored row of any dtype. */
float xle_dot_row(const float *x, const xle_tensor *w, int64_t row, int64_t n);

#endif
