#!/usr/bin/python3
"""Golden model fixtures for tests/test_golden.c: tiny random Llama-family models written as
Hugging Face folders and as GGUF files by this script alone (no transformers, safetensors or
gguf package), with the logits an independent PyTorch re-implementation of transformers'
forward pass computes for them.

Run by hand (CI never needs Python):
    /usr/bin/python3 tests/reference/make_model_fixtures.py [OUT_DIR]
OUT_DIR defaults to tests/fixtures/models in this repository.

Families (one weight set each, drawn in float32 from a fixed seed):
  llama_gqa       LlamaForCausalLM: 4 query heads, 2 KV heads (GQA), theta 1e4, untied lm_head
  mistral_window  MistralForCausalLM: 4 query heads, 1 KV head, sliding_window 4 (shorter than
                  the test sequences), theta 1e4, untied
  qwen2_bias      Qwen2ForCausalLM: q/k/v biases, tied embeddings, theta 1e6, eps 1e-6;
                  config says sliding_window 4 but use_sliding_window false (must be ignored)
  llama3_scaled   LlamaForCausalLM with rope_scaling "llama3" (factor 8, low 1, high 4,
                  original_max_position_embeddings 256), theta 5e5, head_dim 16 given explicitly
                  (4 heads x 16 = 64 != hidden 32), tied embeddings
  llama_bias_linear  LlamaForCausalLM with attention_bias true (q/k/v/o biases) and
                  rope_scaling {"type": "linear", "factor": 2}, 4 heads, 4 KV heads (MHA)
All: hidden 32, intermediate 64, 2 layers, vocabulary 300. Norm weights are drawn on a grid
of 1/64 so they are exact in bf16 and f16 (one golden serves HF bf16 and GGUF BF16 files).

Files per family (HF folders: config.json as transformers 4.46 writes it for the architecture,
sorted keys, indent 2; model.safetensors with "__metadata__": {"format": "pt"}, tensors sorted
by name, header padded with spaces to a multiple of 8, as the safetensors package does):
  <fam>/hf_f32/                   every family
  <fam>/<fam>_f32.gguf            every family (GGUF v3, alignment 32)
  llama_gqa/hf_bf16, hf_f16, hf_bf16_sharded (two shards + model.safetensors.index.json)
  llama_gqa/llama_gqa_{f16,bf16,q8_0}.gguf, qwen2_bias/qwen2_bias_q8_0.gguf
  llama_bias_linear/hf_f64 (F64 safetensors) instead of hf_f32
GGUF files follow llama.cpp's convert_hf_to_gguf.py: llama-architecture files (Llama, Mistral)
get q_proj/k_proj rows (and q/k biases) permuted for interleaved RoPE (permute() of the
converter; k with n_head_kv); linear RoPE scaling is written as rope.scaling.type/factor; qwen2
files are not permuted (NeoX RoPE); 1-D tensors (norms, biases) stay F32 in
F16/BF16/Q8_0 files; Q8_0 blocks are made as gguf-py's quants.py does (d = max|x|/127 in f32,
q = round-half-away(x/d), d stored as f16). A tied model has no output.weight. The llama3 file
carries rope_freqs.weight (the converter's divisors) computed with the original context length
of rope_scaling (llama.cpp's converter reads it from the top level of config.json, default
8192, which would be wrong for this small model; see formats-detail.md 1.6). The Mistral file
carries llama.attention.sliding_window (llama.cpp's key for it) so the window survives.

Reference computation: float64 throughout (embedding, RMSNorm, RoPE tables, attention softmax,
SwiGLU, logits) from exactly the values stored in each file (bf16/f16 rounded, Q8_0
dequantized as f16(d) * q), so the only difference left to the C library is its float32
arithmetic. It follows transformers 4.46: LlamaRMSNorm (w * x / sqrt(mean x^2 + eps)),
rotate_half RoPE with inv_freq = theta^(-2j/hd) and _compute_llama3_parameters for "llama3",
repeat_kv for GQA, the causal mask plus, for Mistral, the sliding window mask (query i sees key
j iff 0 <= i - j < window), Qwen2's q/k/v biases, SwiGLU MLP, final norm, lm_head (or the
embedding when tied). As a self-check the script also runs each llama-architecture GGUF's
permuted weights with interleaved RoPE and asserts the same logits.

Outputs besides the models: manifest.json (sequences, models, goldens, greedy continuations,
tolerance) and golden_<variant>.bin files: little-endian float32 logits, for each sequence in
order, every position, vocab_size values each; golden_<variant>_long.bin: the logits of the
96-token long_sequence at the long_positions only (every 8th and the last four), same layout.
"""
import hashlib
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import safetensors_io  # noqa: E402  (tests/reference/, beside this script)

DT = torch.float64
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

V = 300
SEQ_SEED = 7
SEQ_LENS = (5, 12, 32)
LONG_LEN = 96     # one longer sequence (the engine has other code paths from 64 queries on);
LONG_POSITIONS = [p for p in range(LONG_LEN) if p % 8 == 7 or p >= LONG_LEN - 4]  # rows kept
GREEDY_NEW = 12
TOL_REL = 1e-5   # max |logit diff| / max |golden logit| per sequence, stated in test_golden.c


# ---- configurations, as transformers 4.46 writes config.json -----------------------------------

def base_cfg(arch, model_type):
    return {
        "architectures": [arch], "attention_dropout": 0.0, "bos_token_id": 1, "eos_token_id": 2,
        "hidden_act": "silu", "hidden_size": 32, "initializer_range": 0.02,
        "intermediate_size": 64, "max_position_embeddings": 2048, "model_type": model_type,
        "num_attention_heads": 4, "num_hidden_layers": 2, "rms_norm_eps": 1e-05,
        "rope_theta": 10000.0, "tie_word_embeddings": False, "torch_dtype": "float32",
        "transformers_version": "4.46.0", "use_cache": True, "vocab_size": V,
    }


def family_configs():
    llama = base_cfg("LlamaForCausalLM", "llama")
    llama.update({"attention_bias": False, "head_dim": 8, "mlp_bias": False,
                  "num_key_value_heads": 2, "pretraining_tp": 1, "rope_scaling": None})
    mistral = base_cfg("MistralForCausalLM", "mistral")
    mistral.update({"head_dim": 8, "num_key_value_heads": 1, "sliding_window": 4,
                    "max_position_embeddings": 32768})
    qwen2 = base_cfg("Qwen2ForCausalLM", "qwen2")
    qwen2.update({"max_window_layers": 2, "num_key_value_heads": 2, "rms_norm_eps": 1e-06,
                  "rope_scaling": None, "rope_theta": 1000000.0, "sliding_window": 4,
                  "tie_word_embeddings": True, "use_sliding_window": False,
                  "max_position_embeddings": 32768})
    llama3 = base_cfg("LlamaForCausalLM", "llama")
    llama3.update({"attention_bias": False, "head_dim": 16, "mlp_bias": False,
                   "num_key_value_heads": 2, "pretraining_tp": 1,
                   "rope_scaling": {"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                                    "original_max_position_embeddings": 256, "rope_type": "llama3"},
                   "rope_theta": 500000.0, "tie_word_embeddings": True,
                   "max_position_embeddings": 131072, "bos_token_id": 1, "eos_token_id": 2})
    lbl = base_cfg("LlamaForCausalLM", "llama")
    lbl.update({"attention_bias": True, "head_dim": 8, "mlp_bias": False,
                "num_key_value_heads": 4, "pretraining_tp": 1,
                "rope_scaling": {"factor": 2.0, "type": "linear"}})
    return {"llama_gqa": (llama, 11), "mistral_window": (mistral, 12), "qwen2_bias": (qwen2, 13),
            "llama3_scaled": (llama3, 14), "llama_bias_linear": (lbl, 15)}


def dims(cfg):
    d, H = cfg["hidden_size"], cfg["num_attention_heads"]
    KV = cfg.get("num_key_value_heads", H)
    hd = cfg.get("head_dim") or d // H
    return d, cfg["intermediate_size"], cfg["num_hidden_layers"], H, KV, hd


# ---- weights (float32, HF names and shapes) ------------------------------------------------------

def make_weights(cfg, seed):
    g = torch.Generator().manual_seed(seed)
    d, f, L, H, KV, hd = dims(cfg)

    def randn(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=torch.float32) * scale).contiguous()

    def norm_w(n):
        # 1 + N(0, 0.1) on a grid of 1/64: exact in bf16 and f16
        return (torch.round((1.0 + 0.1 * torch.randn(n, generator=g, dtype=torch.float32)) * 64) / 64).contiguous()

    w = {"model.embed_tokens.weight": randn(V, d)}
    for l in range(L):
        p = f"model.layers.{l}."
        w[p + "input_layernorm.weight"] = norm_w(d)
        w[p + "self_attn.q_proj.weight"] = randn(H * hd, d, scale=d ** -0.5)
        w[p + "self_attn.k_proj.weight"] = randn(KV * hd, d, scale=d ** -0.5)
        w[p + "self_attn.v_proj.weight"] = randn(KV * hd, d, scale=d ** -0.5)
        w[p + "self_attn.o_proj.weight"] = randn(d, H * hd, scale=(H * hd) ** -0.5)
        if cfg["model_type"] == "qwen2" or cfg.get("attention_bias"):
            w[p + "self_attn.q_proj.bias"] = randn(H * hd, scale=0.3)
            w[p + "self_attn.k_proj.bias"] = randn(KV * hd, scale=0.3)
            w[p + "self_attn.v_proj.bias"] = randn(KV * hd, scale=0.3)
        if cfg.get("attention_bias"):
            w[p + "self_attn.o_proj.bias"] = randn(d, scale=0.3)
        w[p + "post_attention_layernorm.weight"] = norm_w(d)
        w[p + "mlp.gate_proj.weight"] = randn(f, d, scale=d ** -0.5)
        w[p + "mlp.up_proj.weight"] = randn(f, d, scale=d ** -0.5)
        w[p + "mlp.down_proj.weight"] = randn(d, f, scale=f ** -0.5)
    w["model.norm.weight"] = norm_w(d)
    if not cfg["tie_word_embeddings"]:
        w["lm_head.weight"] = randn(V, d, scale=d ** -0.5)
    return w


# ---- rounding as stored ------------------------------------------------------------------------

def to_bf16_bits(x):
    """float32 -> bf16 bits, round to nearest even (finite inputs)."""
    b = np.ascontiguousarray(x.numpy(), dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)


def bf16_bits_to_f32(bits):
    return torch.from_numpy((bits.astype(np.uint32) << 16).view(np.float32).copy())


def round_bf16(x):
    return bf16_bits_to_f32(to_bf16_bits(x)).reshape(x.shape)


def round_f16(x):
    return torch.from_numpy(x.numpy().astype(np.float16).astype(np.float32)).reshape(x.shape)


def q8_0_blocks(x):
    """Rows of x (last dim a multiple of 32) -> (Q8_0 bytes, dequantized float32 values)."""
    a = x.numpy().astype(np.float32).reshape(-1, 32)
    d = np.abs(a).max(axis=1, keepdims=True) / np.float32(127)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = a / d
    q = np.where(d == 0, 0, np.sign(r) * np.floor(np.abs(r) + np.float32(0.5))).astype(np.int8)
    dh = d.astype(np.float16)
    blocks = bytearray()
    for i in range(a.shape[0]):
        blocks += dh[i].tobytes() + q[i].tobytes()
    deq = (dh.astype(np.float32) * q.astype(np.float32)).reshape(x.shape)
    return bytes(blocks), torch.from_numpy(deq)


# ---- reference forward (transformers' Llama/Mistral/Qwen2, float64) ------------------------------

def llama3_inv_freq(inv_freq, rs):
    """transformers' _compute_llama3_parameters."""
    factor, low, high = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
    old = rs["original_max_position_embeddings"]
    low_wl, high_wl = old / low, old / high
    wavelen = 2 * math.pi / inv_freq
    inv_llama = torch.where(wavelen > low_wl, inv_freq / factor, inv_freq)
    smooth = (old / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * inv_llama / factor + smooth * inv_llama
    medium = ~(wavelen < high_wl) * ~(wavelen > low_wl)
    return torch.where(medium, smoothed, inv_llama)


def inv_freqs(cfg):
    hd = dims(cfg)[5]
    inv = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, hd, 2, dtype=DT) / hd))
    rs = cfg.get("rope_scaling")
    rope_type = rs and (rs.get("rope_type") or rs.get("type"))
    if rope_type == "llama3":
        inv = llama3_inv_freq(inv, rs)
    elif rope_type == "linear":          # _compute_linear_scaling_rope_parameters
        inv = inv / rs["factor"]
    return inv


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rope_half(x, cos, sin):   # x [heads, T, hd]
    return x * cos + rotate_half(x) * sin


def rope_interleaved(x, pos_freqs):
    """Meta/llama.cpp NORM rope: pairs (2i, 2i+1) rotated by pos * inv_freq[i]."""
    c, s = torch.cos(pos_freqs), torch.sin(pos_freqs)        # [T, hd/2]
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = x1 * c - x2 * s
    out[..., 1::2] = x2 * c + x1 * s
    return out


def rms(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def forward(cfg, w, ids, interleaved=False):
    """Logits [T, V] for one sequence. w: name -> float64 tensor in HF names and row order
    (or, with interleaved=True, q/k rows in the GGUF llama order)."""
    d, f, L, H, KV, hd = dims(cfg)
    eps = cfg["rms_norm_eps"]
    T = len(ids)
    window = cfg.get("sliding_window") if cfg["model_type"] == "mistral" else None
    if cfg["model_type"] == "qwen2" and cfg.get("use_sliding_window"):
        raise SystemExit("not modelled: Qwen2 use_sliding_window")
    pos = torch.arange(T, dtype=DT)
    freqs = pos[:, None] * inv_freqs(cfg)[None, :]              # [T, hd/2]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    allowed = j <= i
    if window:
        allowed = allowed & (i - j < window)
    mask = torch.zeros(T, T, dtype=DT).masked_fill(~allowed, float("-inf"))

    x = w["model.embed_tokens.weight"][torch.tensor(ids)]
    for l in range(L):
        p = f"model.layers.{l}."
        h = rms(x, w[p + "input_layernorm.weight"], eps)
        q = h @ w[p + "self_attn.q_proj.weight"].T
        k = h @ w[p + "self_attn.k_proj.weight"].T
        v = h @ w[p + "self_attn.v_proj.weight"].T
        if p + "self_attn.q_proj.bias" in w:
            q = q + w[p + "self_attn.q_proj.bias"]
            k = k + w[p + "self_attn.k_proj.bias"]
            v = v + w[p + "self_attn.v_proj.bias"]
        q = q.view(T, H, hd).transpose(0, 1)
        k = k.view(T, KV, hd).transpose(0, 1)
        v = v.view(T, KV, hd).transpose(0, 1)
        if interleaved:
            q, k = rope_interleaved(q, freqs), rope_interleaved(k, freqs)
        else:
            q, k = rope_half(q, cos, sin), rope_half(k, cos, sin)
        rep = H // KV                                            # repeat_kv
        k = k.repeat_interleave(rep, dim=0)
        v = v.repeat_interleave(rep, dim=0)
        att = (q @ k.transpose(1, 2)) / math.sqrt(hd) + mask
        att = torch.softmax(att, dim=-1)
        o = (att @ v).transpose(0, 1).reshape(T, H * hd)
        x = x + o @ w[p + "self_attn.o_proj.weight"].T
        if p + "self_attn.o_proj.bias" in w:
            x = x + w[p + "self_attn.o_proj.bias"]
        h = rms(x, w[p + "post_attention_layernorm.weight"], eps)
        gate = h @ w[p + "mlp.gate_proj.weight"].T
        up = h @ w[p + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(gate) * up) @ w[p + "mlp.down_proj.weight"].T
    x = rms(x, w["model.norm.weight"], eps)
    head = w["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else w["lm_head.weight"]
    return x @ head.T


def greedy(cfg, w, prompt, n_new):
    """Greedy continuation by full recomputation; also the smallest top-1/top-2 logit gap."""
    ids = list(prompt)
    margin = float("inf")
    for _ in range(n_new):
        row = forward(cfg, w, ids)[-1]
        top = torch.topk(row, 2).values
        margin = min(margin, float(top[0] - top[1]))
        ids.append(int(torch.argmax(row)))
    return ids[len(prompt):], margin


# ---- GGUF conversion facts (convert_hf_to_gguf.py) -----------------------------------------------

def permute(weights, n_head, n_head_kv):
    """convert_hf_to_gguf.py LlamaModel.permute."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


GGUF_NAMES = {
    "input_layernorm.weight": "attn_norm.weight", "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight", "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight", "self_attn.o_proj.bias": "attn_output.bias",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.bias": "attn_k.bias", "self_attn.v_proj.bias": "attn_v.bias",
    "post_attention_layernorm.weight": "ffn_norm.weight", "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight", "mlp.down_proj.weight": "ffn_down.weight",
}


def gguf_name(hf):
    if hf == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf == "model.norm.weight":
        return "output_norm.weight"
    if hf == "lm_head.weight":
        return "output.weight"
    parts = hf.split(".")
    return f"blk.{parts[2]}." + GGUF_NAMES[".".join(parts[3:])]


def llama3_rope_factors(cfg):
    """The divisors convert_hf_to_gguf.py writes as rope_freqs.weight (with the original context
    length taken from rope_scaling)."""
    rs = cfg["rope_scaling"]
    d, f, L, H, KV, hd = dims(cfg)
    base = cfg["rope_theta"]
    freqs = 1.0 / (base ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
    factor, low, high = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
    old = rs["original_max_position_embeddings"]
    low_wl, high_wl = old / low, old / high
    out = []
    for fr in freqs.tolist():
        wl = 2 * math.pi / fr
        if wl < high_wl:
            out.append(1.0)
        elif wl > low_wl:
            out.append(factor)
        else:
            smooth = (old / wl - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return torch.tensor(out, dtype=torch.float32)


# ---- writers --------------------------------------------------------------------------------------

def tensor_bytes(t, dtype):
    if dtype == "F64":
        return np.ascontiguousarray(t.numpy(), dtype="<f8").tobytes()
    if dtype == "F32":
        return np.ascontiguousarray(t.numpy(), dtype="<f4").tobytes()
    if dtype == "F16":
        return np.ascontiguousarray(t.numpy()).astype("<f2").tobytes()
    if dtype == "BF16":
        return to_bf16_bits(t).astype("<u2").tobytes()
    raise ValueError(dtype)


def write_safetensors(path, tensors, dtype):
    """tensors: name -> float32 tensor; all stored as dtype. Returns the data size."""
    return safetensors_io.write_safetensors(
        path, [(n, dtype, safetensors_io.encode(tensors[n], dtype)) for n in sorted(tensors)])


def write_config(folder, cfg, torch_dtype):
    c = dict(cfg)
    c["torch_dtype"] = torch_dtype
    with open(os.path.join(folder, "config.json"), "w") as fh:
        fh.write(json.dumps(c, indent=2, sort_keys=True) + "\n")


def write_hf(folder, cfg, w, dtype, shards=None):
    os.makedirs(folder, exist_ok=True)
    write_config(folder, cfg, {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16"}[dtype])
    if not shards:
        write_safetensors(os.path.join(folder, "model.safetensors"), w, dtype)
        return
    weight_map, total = {}, 0
    for k, names in enumerate(shards):
        fn = f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors"
        total += write_safetensors(os.path.join(folder, fn), {n: w[n] for n in names}, dtype)
        for n in names:
            weight_map[n] = fn
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as fh:
        fh.write(json.dumps(index, indent=2) + "\n")


GGUF_U32, GGUF_F32, GGUF_STRING = 4, 6, 8
GGML_TYPE = {"F32": 0, "F16": 1, "Q8_0": 8, "BF16": 30}
FILE_TYPE = {"F32": 0, "F16": 1, "Q8_0": 7, "BF16": 32}


def gguf_str(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf_kv(key, typ, val):
    out = gguf_str(key) + struct.pack("<i", typ)
    if typ == GGUF_U32:
        return out + struct.pack("<I", val)
    if typ == GGUF_F32:
        return out + struct.pack("<f", val)
    if typ == GGUF_STRING:
        return out + gguf_str(val)
    raise ValueError(typ)


def write_gguf(path, cfg, w, ftype, name):
    """Returns the effective weights (HF names, HF row order, float32 values as stored)."""
    d, f, L, H, KV, hd = dims(cfg)
    arch = "qwen2" if cfg["model_type"] == "qwen2" else "llama"
    kvs = [("general.architecture", GGUF_STRING, arch), ("general.name", GGUF_STRING, name),
           (f"{arch}.block_count", GGUF_U32, L),
           (f"{arch}.context_length", GGUF_U32, cfg["max_position_embeddings"]),
           (f"{arch}.embedding_length", GGUF_U32, d), (f"{arch}.feed_forward_length", GGUF_U32, f),
           (f"{arch}.attention.head_count", GGUF_U32, H),
           (f"{arch}.attention.head_count_kv", GGUF_U32, KV),
           (f"{arch}.rope.freq_base", GGUF_F32, cfg["rope_theta"]),
           (f"{arch}.attention.layer_norm_rms_epsilon", GGUF_F32, cfg["rms_norm_eps"])]
    if "head_dim" in cfg and cfg["head_dim"] != d // H:
        kvs += [(f"{arch}.attention.key_length", GGUF_U32, hd),
                (f"{arch}.attention.value_length", GGUF_U32, hd)]
    kvs += [("general.file_type", GGUF_U32, FILE_TYPE[ftype]), (f"{arch}.vocab_size", GGUF_U32, V)]
    if arch == "llama":
        kvs.append((f"{arch}.rope.dimension_count", GGUF_U32, hd))
    rs = cfg.get("rope_scaling")
    if rs and (rs.get("rope_type") or rs.get("type")) == "linear":
        kvs += [(f"{arch}.rope.scaling.type", GGUF_STRING, "linear"),
                (f"{arch}.rope.scaling.factor", GGUF_F32, rs["factor"])]
    if cfg["model_type"] == "mistral" and cfg.get("sliding_window"):
        kvs.append((f"{arch}.attention.sliding_window", GGUF_U32, cfg["sliding_window"]))
    if ftype == "Q8_0":
        kvs.append(("general.quantization_version", GGUF_U32, 2))

    order = []   # (gguf name, tensor in file row order, ggml type name)
    rs = cfg.get("rope_scaling")
    if rs and rs.get("rope_type") == "llama3":
        order.append(("rope_freqs.weight", llama3_rope_factors(cfg), "F32"))
    hf_order = ["model.embed_tokens.weight"]
    for l in range(L):
        hf_order += [n for n in w if n.startswith(f"model.layers.{l}.")]
    hf_order += ["model.norm.weight"] + (["lm_head.weight"] if "lm_head.weight" in w else [])
    effective = {}
    for n in hf_order:
        t = w[n]
        if arch == "llama" and n.endswith(("q_proj.weight", "q_proj.bias")):
            t = permute(t, H, H)
        elif arch == "llama" and n.endswith(("k_proj.weight", "k_proj.bias")):
            t = permute(t, H, KV)
        typ = ftype if t.dim() == 2 else "F32"
        order.append((gguf_name(n), t.contiguous(), typ))

    infos, blobs, off = b"", [], 0
    for gname, t, typ in order:
        if typ == "Q8_0":
            b, stored = q8_0_blocks(t)
        else:
            b = tensor_bytes(t, typ)
            stored = {"F32": lambda x: x, "F16": round_f16, "BF16": round_bf16}[typ](t)
        if gname != "rope_freqs.weight":
            effective[gname] = stored
        ne = list(reversed(t.shape))
        infos += gguf_str(gname) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<q", x) for x in ne)
        infos += struct.pack("<i", GGML_TYPE[typ]) + struct.pack("<Q", off)
        pad = (32 - len(b) % 32) % 32
        blobs.append(b + b"\0" * pad)
        off += len(b) + pad
    head = b"GGUF" + struct.pack("<I", 3) + struct.pack("<q", len(order)) + struct.pack("<q", len(kvs))
    head += b"".join(gguf_kv(*kv) for kv in kvs) + infos
    head += b"\0" * ((32 - len(head) % 32) % 32)
    with open(path, "wb") as fh:
        fh.write(head)
        for b in blobs:
            fh.write(b)
    # back to HF names and row order (un-permute q/k) for the reference
    hf = {}
    for n in hf_order:
        t = effective[gguf_name(n)]
        if arch == "llama" and n.endswith(("q_proj.weight", "k_proj.weight", "q_proj.bias", "k_proj.bias")):
            heads = H if ".q_proj." in n else KV
            t = t.reshape(heads, t.shape[0] // heads // 2, 2, *t.shape[1:]).swapaxes(1, 2).reshape(t.shape)
        hf[n] = t
    return hf, {gguf_name(n): effective[gguf_name(n)] for n in hf_order}


# ---- main ------------------------------------------------------------------------------------------

def f64(w):
    return {k: v.to(DT) for k, v in w.items()}


def digest(w):
    h = hashlib.sha256()
    for k in sorted(w):
        h.update(k.encode())
        h.update(np.ascontiguousarray(w[k].numpy(), dtype=np.float32).tobytes())
    return h.hexdigest()


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "tests", "fixtures", "models")
    os.makedirs(out, exist_ok=True)
    g = torch.Generator().manual_seed(SEQ_SEED)
    seqs = [[1] + torch.randint(3, V, (n - 1,), generator=g).tolist() for n in SEQ_LENS]
    long_seq = [1] + torch.randint(3, V, (LONG_LEN - 1,), generator=g).tolist()
    manifest = {"tolerance_rel": TOL_REL, "vocab_size": V, "sequences": seqs,
                "long_sequence": long_seq, "long_positions": LONG_POSITIONS, "models": [],
                "greedy": {}, "families": {}}
    goldens = {}   # digest -> golden file (relative)

    def golden_for(fam, cfg, eff, label):
        key = digest(eff)
        if key in goldens:
            return goldens[key]
        w = f64(eff)
        rows = [forward(cfg, w, s) for s in seqs]
        rel = f"{fam}/golden_{label}.bin"
        with open(os.path.join(out, rel), "wb") as fh:
            for r in rows:
                fh.write(np.ascontiguousarray(r.numpy(), dtype="<f4").tobytes())
        long_rows = forward(cfg, w, long_seq)[LONG_POSITIONS]
        with open(os.path.join(out, rel.replace(".bin", "_long.bin")), "wb") as fh:
            fh.write(np.ascontiguousarray(long_rows.numpy(), dtype="<f4").tobytes())
        goldens[key] = rel
        return rel

    for fam, (cfg, seed) in family_configs().items():
        d, f, L, H, KV, hd = dims(cfg)
        os.makedirs(os.path.join(out, fam), exist_ok=True)
        w = make_weights(cfg, seed)
        arch = {"llama": "llama", "mistral": "mistral", "qwen2": "qwen2"}[cfg["model_type"]]
        manifest["families"][fam] = {
            "arch": arch, "dim": d, "ffn_dim": f, "n_layers": L, "n_heads": H, "n_kv_heads": KV,
            "head_dim": hd, "tied": cfg["tie_word_embeddings"],
            "sliding_window": cfg.get("sliding_window", 0) if arch == "mistral" else 0,
            "rope_theta": cfg["rope_theta"], "norm_eps": cfg["rms_norm_eps"],
            "rope_scaling": (cfg.get("rope_scaling") or {}).get("rope_type") or (cfg.get("rope_scaling") or {}).get("type") or "none"}

        def add(path, fmt, dtype, eff, label, rope_interleaved):
            manifest["models"].append({"path": path, "family": fam, "format": fmt, "dtype": dtype,
                                       "rope_interleaved": rope_interleaved,
                                       "golden": golden_for(fam, cfg, eff, label)})

        variants = [("F64" if fam == "llama_bias_linear" else "F32", w)]
        if fam == "llama_gqa":
            variants += [("BF16", {k: round_bf16(v) for k, v in w.items()}),
                         ("F16", {k: round_f16(v) for k, v in w.items()})]
        for dtype, eff in variants:
            folder = f"{fam}/hf_{dtype.lower()}"
            write_hf(os.path.join(out, folder), cfg, w, dtype)
            add(folder, "hf", dtype, eff, dtype.lower(), False)
        if fam == "llama_gqa":
            names = sorted(w)
            first = [n for n in names if n.startswith("model.embed") or n.startswith("model.layers.0.")]
            rest = [n for n in names if n not in first]
            folder = f"{fam}/hf_bf16_sharded"
            write_hf(os.path.join(out, folder), cfg, w, "BF16", shards=[first, rest])
            add(folder, "hf", "BF16", {k: round_bf16(v) for k, v in w.items()}, "bf16", False)

        gguf_types = ["F32"] + (["F16", "BF16", "Q8_0"] if fam == "llama_gqa" else []) + \
            (["Q8_0"] if fam == "qwen2_bias" else [])
        for ft in gguf_types:
            rel = f"{fam}/{fam}_{ft.lower()}.gguf"
            eff_hf, eff_gguf = write_gguf(os.path.join(out, rel), cfg, w, ft, fam)
            label = "gguf_" + ft.lower() if ft != "F32" else "f32"
            interleaved = cfg["model_type"] != "qwen2"
            add(rel, "gguf", ft, eff_hf, label, interleaved)
            if interleaved:
                # self-check: the permuted rows with interleaved RoPE give the HF logits
                perm = {n: eff_gguf[gguf_name(n)] for n in eff_hf}   # q/k rows as in the file
                for s in seqs[1:2]:
                    a = forward(cfg, f64(eff_hf), s)
                    b = forward(cfg, f64(perm), s, interleaved=True)
                    assert float((a - b).abs().max()) < 1e-9, (fam, ft)

        ids, margin = greedy(cfg, f64(w), seqs[0], GREEDY_NEW)
        assert margin > 1e-3, (fam, margin)
        manifest["greedy"][fam] = {"prompt": seqs[0], "ids": ids, "min_margin": margin}
        print(f"{fam}: greedy margin {margin:.4f}")

    with open(os.path.join(out, "manifest.json"), "w") as fh:
        fh.write(json.dumps(manifest, indent=1) + "\n")
    total = 0
    for root, _, files in os.walk(out):
        for fn in files:
            total += os.path.getsize(os.path.join(root, fn))
    print(f"{len(manifest['models'])} models, {len(goldens)} goldens, {total} bytes in {out}")


if __name__ == "__main__":
    main()
